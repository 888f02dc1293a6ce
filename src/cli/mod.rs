//! The command-line layer: the subcommands (`commands/`, one file each:
//! arguments and what it runs), job files (`jobfile`, `sources`) and the
//! `weir nexmark` runner.
//!
//! `main.rs` parses arguments and dispatches to `commands`. May use every
//! layer.

pub mod commands;
pub mod jobfile;
pub mod nexmark_run;
pub mod progress;
pub mod signals;
pub mod sources;
