//! The operators: stateless transforms, windows, sessions, count windows,
//! keyed process functions, joins and group aggregates.
//!
//! Every operator implements [`crate::operator::Operator`] and is built per
//! subtask by a factory. May use `functions`, `operator`, `state`, `expr`,
//! `time`, `key`, `memory`, `spill`, `message`, `error`. Never `connectors`
//! (sources and sinks are connectors), `exec` or `graph`: operators do not
//! know which executor runs them (`tests/architecture.rs` enforces this).

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
