//! Connectors: the sources and sinks that touch the world outside weir.
//!
//! Each connector is one folder or file and implements the contract of
//! [`weir_core::operator`]: a source a [`weir_core::operator::SourceSpec`] (the
//! planner's view) and a [`weir_core::operator::Source`] per subtask; a sink an
//! [`weir_core::operator::Operator`] with a [`weir_core::operator::PendingCommit`].
//!
//! - `parquet/`: bounded Parquet files (glob, Hive partitions, schema
//!   widening, projection, read-ahead), time ranges and replay pacing
//!   (`replay`);
//! - `csv/`: bounded CSV files (header-inferred or given schema,
//!   projection, event time per file);
//! - `memory`: bounded in-memory batches (tests, examples, benchmarks);
//! - `live/`: the live-source framework (the `Connector` contract, JSON
//!   decoding, dead letters, per-partition watermarks, hybrid history) and
//!   its line (TCP/stdin), watched-directory and in-memory connectors;
//! - `kafka/`, `redis/`: broker sources and sinks;
//! - `files/`: the file sinks (Parquet, JSON lines, CSV), stdout and
//!   collect; `json_out`: the one JSON text every JSON output writes;
//! - `split_progress`: checkpoint state of sources that read splits;
//!   `glob`: glob patterns in source paths.
//!
//! May use `operator`, `state`, `expr`, `time`, `key`, `memory`, `spill`,
//! `message`, `paths`, `lock`, `error`. Never `operators`, `exec`, `graph` or
//! `cli` (`tests/architecture.rs` enforces this).

pub mod csv;
pub mod files;
pub(crate) mod glob;
pub mod json_out;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod live;
mod memory;
mod parquet;
#[cfg(feature = "redis")]
pub mod redis;
pub mod replay;
mod schema_text;
/// Test harness for sources (every cut of a checkpointed read, rescales);
/// compiled for this crate's tests and, through the `test-harness`
/// feature, for the tests of crates above (workloads' generators).
#[cfg(any(test, feature = "test-harness"))]
#[allow(dead_code)] // each test uses part of it
#[doc(hidden)]
pub mod source_harness;
pub(crate) mod split_progress;

pub use csv::{CsvSource, CsvSourceSpec};
pub use files::{
    target_status, CollectSink, Collected, FileFormat, FileSink, FileSinkSpec, StdoutSink,
    TargetStatus,
};
pub use memory::{MemorySource, MemorySourceSpec};
pub use parquet::{list_parquet_files, ParquetSource, ParquetSourceSpec, ScanCounts, ScanMetrics};
pub use schema_text::parse_schema;

/// Splits a source batch by its keep-mask: late rows are counted and sent
/// to side output 1 (the late-row stream); the rest is returned.
pub(crate) fn split_late(
    batch: &arrow_array::RecordBatch,
    keep: &arrow_array::BooleanArray,
    ctx: &mut weir_core::operator::Ctx,
    out: &mut weir_core::operator::Output,
) -> weir_core::error::Result<arrow_array::RecordBatch> {
    let late = (keep.len() - keep.true_count()) as u64;
    weir_core::operator::OperatorMetrics::add(&ctx.metrics().late_rows, late);
    let dropped = arrow_arith::boolean::not(keep)?;
    out.emit_side(
        1,
        arrow_select::filter::filter_record_batch(batch, &dropped)?,
    );
    Ok(arrow_select::filter::filter_record_batch(batch, keep)?)
}
