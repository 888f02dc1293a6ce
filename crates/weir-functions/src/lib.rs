//! Functions the operators apply: aggregate functions (accumulators,
//! distinct, min/max by, user-defined aggregates).
//!
//! May use `expr`, `key`, `memory`, `state`, `time`, `error`. Never
//! `operators`, `connectors`, `exec`, `graph` or `cli`.

pub mod aggregate;

pub use aggregate::{Agg, AggFn};
