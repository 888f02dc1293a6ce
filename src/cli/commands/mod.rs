//! The `weir` subcommands, one file each: its clap arguments (`*Args`) and
//! its `run`, which returns the process's exit code. `main.rs` only parses
//! and dispatches.
//!
//! May use every layer of the library.

pub mod bench;
pub mod demo;
pub mod generate;
pub mod nexmark;
pub mod run;
pub mod scan;
pub mod sql;
pub mod sql_shell;
pub mod status;
pub mod stop;

pub(crate) use crate::cli::jobfile::LoadedJob;
pub(crate) use crate::{ExecConfig, ExecMode, Result};
pub(crate) use std::path::PathBuf;
pub(crate) use std::process::ExitCode;
pub(crate) use weir_core::memory::parse_size;
pub(crate) use weir_engine::format::metrics_table;
pub(crate) use weir_engine::graph::PhysicalPlan;
pub(crate) use weir_workloads::demo::{run_demo, DemoOptions};

/// Exit status 128 + `signal` (the shell's convention for a process a
/// signal stopped).
pub fn signal_exit(signal: i32) -> ExitCode {
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
}

/// The default parallelism: the number of cores.
pub(crate) fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
