//! The operators: sources, stateless transforms, event-time operators and sinks.
//!
//! Every operator implements [`crate::operator::Operator`] (or
//! [`crate::operator::Source`]) and is built per subtask by a factory. May use
//! `operator`, `expr`, `time`, `key`, `memory`, `spill`, `message`, `error`.
//! Never `exec` or `graph`: operators do not know which executor runs them
//! (`tests/architecture.rs` enforces this).

pub mod aggregate;
mod basic;
mod memory_source;
mod parquet_source;
mod session;
mod sinks;
mod window;

pub use aggregate::{Agg, AggFn};
pub use basic::{BatchFn, Filter, MapBatches, Passthrough, Project};
pub use memory_source::{MemorySource, MemorySourceSpec};
pub use parquet_source::{ParquetSource, ParquetSourceSpec};
pub use session::SessionWindowAggregate;
pub use sinks::{CollectSink, Collected, FileFormat, FileSink, FileSinkSpec, StdoutSink};
pub use window::{WindowAggregate, OP_COLUMN};
