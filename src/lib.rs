//! # weir: one dataflow graph, pipelined or in batch stages
//!
//! weir runs a graph of operators over Arrow [`RecordBatch`](arrow_array::RecordBatch)es
//! either **pipelined** (every batch flows on at once, over bounded channels)
//! or as **blocking batch stages** (each stage runs to completion; its output
//! is buffered under a memory budget and spilled to Arrow IPC files, read back
//! through memory maps). Bounded Parquet input is a finite stream, so a job
//! over history and the same job over a live feed share code and answers.
//!
//! This package is the facade: it re-exports the workspace's crates under
//! one name, and holds the `weir` binary's CLI and the `weir bench` harness.
//! The crates are the layers (dependencies point down only; Cargo enforces it):
//! ```text
//!  weir (this facade)  cli (args, job files, progress, signals), bench
//!  weir-workloads      the seed's vehicles job, Nexmark, the demo
//!  weir-engine         graph (builder, plans), exec (pipelined, staged), checkpoint
//!  weir-operators      windows, sessions, joins, process, group aggregate
//!  weir-connectors     Parquet, CSV, files, live, Kafka, Redis (features)
//!  weir-functions      aggregate functions
//!  weir-core           operator contract, state, spill, memory, time, expr,
//!                      key, message, error, paths, lock
//! ```
//!
//! # Examples
//! See [`Job`] for a complete windowed aggregation.

pub mod bench;
pub mod cli;

pub use weir_connectors as connectors;
pub use weir_core::{
    compare, error, key, lock, memory, message, observe, operator, paths, shard, spill, state, time,
};

/// Column expressions: the tree, its builders and evaluation
/// (`weir-core`), and [`parse_expr`], which reads SQL's expression grammar
/// (`weir-sql`), the one grammar of job files and SQL.
pub mod expr {
    pub use weir_core::expr::*;
    pub use weir_sql::{parse_expr, parse_expr_with};
}
pub use weir_engine::{checkpoint, exec, format, graph};
pub use weir_functions as functions;
pub use weir_operators as operators;
pub use weir_sql as sql;
pub use weir_workloads as workloads;

pub use connectors::Collected;
pub use error::{Error, Result};
pub use exec::{execute, ExecConfig, ExecMode, JobMetrics};
pub use expr::{col, lit, Expr};
pub use functions::{Agg, AggFn};
pub use graph::{Job, KeyedStream, Stream, WindowedStream};
pub use message::{Message, Watermark};
pub use time::{TumblingWindow, WatermarkStrategy, Window};

/// The Arrow types a schema or a batch is made of, so that user code (and
/// the README's examples) need not name the arrow crates.
pub use arrow_array::RecordBatch;
pub use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
