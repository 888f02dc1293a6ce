//! Watching a weir run from outside: a [`Monitor`] (a
//! [`weir_core::observe::RunObserver`]) keeps the run's shape, its latest
//! figures and a few minutes of history; an [`HttpServer`] serves them as
//! Prometheus metrics (`/metrics`), JSON (`/api/v1/job`, `/api/v1/metrics`)
//! and a web UI (`/`); [`report`] writes the same page as one
//! self-contained HTML file for a finished run.
//!
//! May use `weir-core` (the observer contract) only: it sees what every
//! observer sees, never an operator or an executor.
//!
//! ```text
//!  executors ──RunObserver──► Monitor ──(latest Progress, history, checkpoints)──┐
//!                               │ forwards every call to the CLI's observer      │
//!  GET /metrics ───────────────────────── prometheus::encode(view) ◄─────────────┤
//!  GET /api/v1/job, /api/v1/metrics ───── view::JobView / view::History ◄────────┤
//!  GET / (ui/index.html + app.js) ─ polls the JSON API every second              │
//!  report::write(path) ─ the page with the views inlined, no server ◄────────────┘
//! ```
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use weir_core::observe::{RunObserver, StderrMessages};
//! use weir_monitor::{HttpServer, Monitor};
//!
//! let monitor = Arc::new(Monitor::new(Arc::new(StderrMessages)));
//! let server = HttpServer::try_bind("127.0.0.1:0", monitor.clone()).unwrap();
//! assert!(server.local_addr().ip().is_loopback());
//! // pass `monitor` to the run as its observer (ExecConfig::with_observer)
//! assert!(monitor.wants_progress());
//! ```

mod http;
mod monitor;
mod prometheus;
pub mod report;
pub mod view;

pub use http::{parse_address, HttpServer, DEFAULT_ADDRESS};
pub use monitor::{Monitor, RunState};

/// The JSON Schema of `/api/v1/job` (also served at `/api/v1/schema/job`).
pub const JOB_SCHEMA: &str = include_str!("../schema/job.schema.json");
