//! The operators: sources, stateless transforms, event-time operators and sinks.
//!
//! Every operator implements [`crate::operator::Operator`] (or
//! [`crate::operator::Source`]) and is built per subtask by a factory. May use
//! `operator`, `state`, `expr`, `time`, `key`, `memory`, `spill`, `message`, `error`.
//! Never `exec` or `graph`: operators do not know which executor runs them
//! (`tests/architecture.rs` enforces this).

pub mod aggregate;
mod basic;
#[cfg(test)]
mod checkpoint_events;
#[cfg(test)]
#[allow(dead_code)] // used by the operators' snapshot tests
pub(crate) mod checkpoint_harness;
mod count_window;
mod event_buffer;
mod group_aggregate;
mod ingestion;
pub mod join;
pub mod json_out;
mod keyed_state;
pub mod live;
mod memory_source;
mod parquet;
mod process;
pub mod replay;
mod session;
mod sinks;
#[cfg(test)]
#[allow(dead_code)] // used by the sources' snapshot tests
pub(crate) mod source_harness;
pub(crate) mod split_progress;
mod window;
mod window_group;

pub use aggregate::{Agg, AggFn};
pub use basic::{BatchFn, Filter, MapBatches, Passthrough, Project};
pub use count_window::{
    CountTrigger, CountWindow, CountWindowAggregate, TriggerAction, WindowTrigger,
};
pub use event_buffer::{EventTimeBuffer, Released};
pub use group_aggregate::{GroupAggregate, GroupEmit};
pub use ingestion::IngestionTime;
pub use memory_source::{MemorySource, MemorySourceSpec};
pub use parquet::{list_parquet_files, ParquetSource, ParquetSourceSpec, ScanCounts, ScanMetrics};
pub use process::{KeyRow, KeyedProcessFunction, KeyedProcessOperator, ProcessContext, ProcessFn};
pub use session::SessionWindowAggregate;
pub use sinks::{CollectSink, Collected, FileFormat, FileSink, FileSinkSpec, StdoutSink};
pub use window::{EarlyFiring, WindowAggregate, WindowConfig, OP_COLUMN};
pub use window_group::WindowGroupAggregate;

/// Splits a source batch by its keep-mask: late rows are counted and sent
/// to side output 1 (the late-row stream); the rest is returned.
pub(crate) fn split_late(
    batch: &arrow_array::RecordBatch,
    keep: &arrow_array::BooleanArray,
    ctx: &mut crate::operator::Ctx,
    out: &mut crate::operator::Output,
) -> crate::Result<arrow_array::RecordBatch> {
    let late = (keep.len() - keep.true_count()) as u64;
    crate::operator::OperatorMetrics::add(&ctx.metrics().late_rows, late);
    let dropped = arrow_arith::boolean::not(keep)?;
    out.emit_side(
        1,
        arrow_select::filter::filter_record_batch(batch, &dropped)?,
    );
    Ok(arrow_select::filter::filter_record_batch(batch, keep)?)
}
