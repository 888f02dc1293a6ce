//! # weir-engine: plans and runs a job
//!
//! Owns the job builder ([`graph::Job`], `Stream`, `KeyedStream`, …), the
//! logical and physical plans, the two executors (pipelined and staged,
//! sharing one operator chain), checkpoints and recovery, and the text
//! [`format`] of a run's figures.
//!
//! May use `weir-core`, `weir-functions`, `weir-operators` and
//! `weir-connectors`. The builder names connectors and operators (it is the
//! user's API); the planner and executors see only `NodeKind::Source(Arc<dyn
//! SourceSpec>) | Operator | Sink` and never name one.

pub mod checkpoint;
pub mod exec;
pub mod format;
pub mod graph;
