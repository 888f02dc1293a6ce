//! # weir: one dataflow graph, pipelined or in batch stages
//!
//! weir runs a graph of operators over Arrow [`RecordBatch`](arrow_array::RecordBatch)es
//! either **pipelined** (every batch flows on at once, over bounded channels)
//! or as **blocking batch stages** (each stage runs to completion; its output
//! is buffered under a memory budget and spilled to Arrow IPC files, read back
//! through memory maps). Bounded Parquet input is a finite stream, so a job
//! over history and the same job over a live feed share code and answers.
//!
//! Layers (dependencies point down only):
//! ```text
//!  main.rs / cli    parse args, job files, run, print
//!  exec             pipelined and staged executors
//!  graph            Stream builder, logical plan, physical plan
//!  operators        sources, transforms, windows, sinks
//!  operator         Operator / Source traits, Ctx, Output
//!  state, spill, memory, time, expr, key, message, error, paths, lock
//! ```
//!
//! # Examples
//! See [`Job`] for a complete windowed aggregation.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod connectors;
pub mod error;
pub mod exec;
pub mod expr;
pub mod format;
pub mod functions;
pub mod graph;
pub mod key;
pub mod lock;
pub mod memory;
pub mod message;
pub mod observe;
pub mod operator;
pub mod operators;
pub mod paths;
pub mod spill;
pub mod state;
pub mod time;
pub mod workloads;

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
