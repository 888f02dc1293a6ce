//! Streaming SQL in Flink's dialect, planned onto weir's operator graph:
//! the same `Job` the builder API and job files make, so a SQL job runs
//! pipelined or in batch stages and gives the same rows either way.
//!
//! What it plans: `CREATE TABLE` (Parquet, Kafka, Redis and Nexmark
//! sources with `WATERMARK FOR`; Parquet, JSON, print, Kafka and Redis
//! sinks), `CREATE VIEW`, `INSERT INTO … SELECT` (several become one
//! graph), a bare `SELECT`, `SET`, `EXPLAIN`; queries with `WITH`,
//! subqueries, `UNION ALL`, joins (window, interval, regular; comma joins;
//! one-sided conditions filter below an inner join), window table
//! functions and legacy group windows, `GROUP BY` (windowed, or a
//! changelog), `DISTINCT`/`FILTER` aggregates and aggregate UDFs, window
//! Top-N (`rank.rs`), Top-N and deduplication over a stream as a changelog
//! (`top_n.rs`; also `ORDER BY … LIMIT n`, a global one), event-time temporal joins (`temporal.rs`), `OVER` aggregations (`over.rs`), and scalar
//! expressions with the function library and scalar UDFs (`expr.rs`;
//! `text.rs` is the same grammar for job files). Anything else is refused
//! by name with its line and column.
//!
//! May use `weir-core`, `weir-functions`, `weir-operators`' join spec and
//! process functions, `weir-connectors`' broker configs, `weir-engine`'s
//! builder and `weir-workloads`' Nexmark generator.
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
mod encode_rows;
mod error;
mod expr;
mod job;
mod join;
mod join_changelog;
mod kafka;
mod over;
mod partitioned;
mod pruning;
mod query;
mod rank;
mod redis;
mod row_bag;
mod script;
mod sort;
mod temporal;
mod text;
mod top_n;
mod top_n_changelog;

pub use dialect::FlinkDialect;
pub use error::SqlError;
pub use job::SqlJob;
pub use script::{Script, ScriptOptions, Settings};
pub use text::{parse_expr, parse_expr_with};
