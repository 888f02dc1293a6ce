//! Functions the operators apply: scalar built-ins and the registry that
//! resolves function names (`scalar`), and aggregate functions
//! (accumulators, distinct, min/max by, user-defined aggregates).
//!
//! May use `expr`, `key`, `memory`, `state`, `time`, `error`. Never
//! `operators`, `connectors`, `exec`, `graph` or `cli`.

pub mod aggregate;
pub mod classes;
pub mod scalar;

pub use aggregate::{Agg, AggFn};
pub use classes::FunctionClass;
pub use scalar::FunctionRegistry;
