//! The command-line layer: the subcommands (`commands/`, one file each:
//! arguments and what it runs), job files (`jobfile/`) and the
//! `weir nexmark` runner.
//!
//! `main.rs` parses arguments and dispatches to `commands`. May use every
//! layer.

pub mod commands;
pub mod jobfile;
pub mod nexmark_run;
pub mod progress;
pub mod signals;
pub mod watch;

/// The error for a job file naming a connector this binary was built
/// without (the `kafka` and `redis` cargo features).
#[cfg_attr(all(feature = "kafka", feature = "redis"), allow(dead_code))]
fn not_built(connector: &str) -> crate::Error {
    crate::Error::option(
        "type",
        format!(
            "this weir was built without the `{connector}` connector: rebuild with \
             `cargo build --release --features {connector}` (it is on by default)"
        ),
    )
}
