//! The operators: stateless transforms, windows, sessions, count windows,
//! keyed process functions, joins and group aggregates.
//!
//! Every operator implements [`weir_core::operator::Operator`] and is built per
//! subtask by a factory. May use `functions`, `operator`, `state`, `expr`,
//! `time`, `key`, `memory`, `spill`, `message`, `error`. Never `connectors`
//! (sources and sinks are connectors), `exec` or `graph`: operators do not
//! know which executor runs them (`tests/architecture.rs` enforces this).

mod basic;
mod batch_slab;
#[cfg(test)]
mod checkpoint_events;
/// Test harness for operator snapshots (every cut, rescales); compiled for
/// this crate's tests and, through the `test-harness` feature, for the
/// tests of crates above (workloads' Nexmark operators).
#[cfg(any(test, feature = "test-harness"))]
#[allow(dead_code)] // each test uses part of it
#[doc(hidden)]
pub mod checkpoint_harness;
mod count_window;
mod event_buffer;
mod group_aggregate;
mod ingestion;
pub mod join;
mod keyed_state;
mod process;
mod session;
mod window;
mod window_group;

pub use basic::{BatchFn, Filter, MapBatches, Passthrough, Project};
pub use count_window::{
    CountTrigger, CountWindow, CountWindowAggregate, TriggerAction, WindowTrigger,
};
pub use event_buffer::{EventTimeBuffer, Released};
pub use group_aggregate::{GroupAggregate, GroupEmit};
pub use ingestion::IngestionTime;
pub use process::{KeyRow, KeyedProcessFunction, KeyedProcessOperator, ProcessContext, ProcessFn};
pub use session::SessionWindowAggregate;
pub use window::{EarlyFiring, WindowAggregate, WindowConfig, OP_COLUMN};
pub use window_group::WindowGroupAggregate;
