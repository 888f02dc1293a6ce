//! Streaming SQL in Flink's dialect, planned onto weir's operator graph:
//! the same `Job` the builder API and job files make, so a SQL job runs
//! pipelined or in batch stages and gives the same rows either way.
//!
//! This is the first part of weir SQL: `CREATE TABLE` (Parquet sources
//! with `WATERMARK FOR`, Parquet / JSON / print sinks), `CREATE VIEW`,
//! `INSERT INTO … SELECT` (several become one graph), a bare `SELECT`
//! (printed), `SET` of the run mode and parallelism; queries with `WITH`,
//! joins (window joins of windowed aggregations, interval joins, regular
//! joins),
//! `UNION ALL`, projections, `WHERE`, window table functions `TUMBLE`,
//! `HOP`, `CUMULATE` and `SESSION … PARTITION BY` with `GROUP BY window_start, window_end, …`,
//! `GROUP BY keys` without a window (a changelog with an `op` column),
//! `COUNT`/`SUM`/`AVG`/`MIN`/`MAX` and `HAVING`; `CASE`, `COALESCE`, and
//! `IN` and `BETWEEN` as comparisons. Anything else is refused by name with its line and column.
//!
//! May use `weir-core`, `weir-functions`, `weir-operators`' join spec and
//! `weir-engine`'s builder.
//!
//! ```text
//!  text ─► dialect::take_watermarks ─► sqlparser (FlinkDialect) ─► statements
//!     CREATE TABLE / VIEW ─► catalog        SET ─► settings
//!     INSERT INTO t SELECT … / SELECT … ─► query::plan ─► Stream ─► sink ─► one Job
//! ```
//!
//! # Examples
//!
//! ```
//! let script = weir_sql::Script::try_new(
//!     "CREATE TABLE t (k BIGINT, v DOUBLE) WITH ('connector' = 'print');",
//!     std::path::Path::new("."),
//! )?;
//! assert_eq!(script.tables(), vec!["t".to_string()]);
//! assert_eq!(script.queries(), 0);
//! let e = weir_sql::Script::try_new("SELECT a FROM nowhere", std::path::Path::new("."));
//! assert!(e.unwrap_err().to_string().contains("line 1, column 15: no table or view `nowhere`"));
//! # Ok::<(), weir_core::error::Error>(())
//! ```

mod broker;
mod catalog;
mod dialect;
mod error;
mod expr;
mod job;
mod join;
mod kafka;
mod over;
mod query;
mod rank;
mod redis;
mod script;
mod text;

pub use dialect::FlinkDialect;
pub use error::SqlError;
pub use job::SqlJob;
pub use script::{Script, ScriptOptions, Settings};
pub use text::{parse_expr, parse_expr_with};
