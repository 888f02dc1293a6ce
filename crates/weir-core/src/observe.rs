//! Watching a run: the [`RunObserver`] trait through which the executors
//! report progress, warnings, signals and restarts, so that they never
//! print or draw themselves.
//!
//! Owns [`RunObserver`], [`Progress`], [`Stage`], [`RunMessage`] and
//! [`StderrMessages`] (the default: prints messages, draws nothing). The
//! CLI's progress bar is an observer (`cli/progress.rs`); so is anything
//! that wants a run's figures while it goes (a metrics endpoint, a test).
//! May use nothing of weir.
//!
//! ```text
//!  execute ──every 200 ms (and once at the end)──► observer.on_progress(&Progress)
//!     │ recovery: corrupt checkpoint skipped ──► on_message(Warning)
//!     │ recovery: restart after a failure    ──► on_message(Restart)
//!     │ signals: SIGINT/SIGTERM acted upon   ──► on_message(Signal)
//!     └ the run ends                         ──► on_finish()
//! ```

use std::time::Duration;

/// A run's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Rows the sources read (Parquet: decoded, those outside a time range
    /// included; others: emitted plus late).
    pub rows_read: u64,
    /// Rows the sources will read in all, when known before the run.
    pub total_rows: Option<u64>,
    /// The highest watermark any sink has seen (epoch ms), if any.
    pub watermark: Option<i64>,
    /// Bytes reserved in the memory pool now.
    pub memory_reserved: u64,
    /// Bytes spilled so far.
    pub spilled_bytes: u64,
    /// Malformed records the sources met so far.
    pub bad_records: u64,
    /// Batch runs: the stage running.
    pub stage: Option<Stage>,
}

impl Progress {
    /// Rows read per second so far.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows_read as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// The stage a batch run is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// From 1.
    pub index: usize,
    /// Stages in all.
    pub count: usize,
    /// The operators of the stage, in order.
    pub operators: Vec<String>,
}

/// Something a run has to tell whoever runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMessage {
    /// The run goes on, but something deserves a look (e.g. a corrupt
    /// checkpoint skipped on restore).
    Warning(String),
    /// A signal was acted upon: what the run does now.
    Signal(String),
    /// A checkpointed run failed and restarts from its last checkpoint.
    Restart {
        /// The failure.
        error: String,
        /// The wait before the restart.
        wait: Duration,
        /// This restart, from 1.
        attempt: u32,
        /// Restarts allowed in all.
        attempts: u32,
    },
}

impl std::fmt::Display for RunMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunMessage::Warning(w) => write!(f, "weir: warning: {w}"),
            RunMessage::Signal(s) => write!(f, "weir: {s}"),
            RunMessage::Restart {
                error,
                wait,
                attempt,
                attempts,
            } => write!(
                f,
                "weir: {error}\nweir: restarting from the last checkpoint in {wait:?} \
                 (restart {attempt} of {attempts})"
            ),
        }
    }
}

/// Watches a run. Every method has a default: an observer implements what
/// it cares about. Called from the run's threads: implementations must be
/// quick and must not panic.
pub trait RunObserver: Send + Sync {
    /// True if it wants [`RunObserver::on_progress`] (the run then reads
    /// its counters every 200 ms on a thread of its own).
    fn wants_progress(&self) -> bool {
        false
    }

    /// The run's figures now; every 200 ms and once when it ends.
    fn on_progress(&self, _progress: &Progress) {}

    /// Something the run has to tell. The default prints it on stderr, so
    /// an observer that does not handle messages never hides them.
    fn on_message(&self, message: &RunMessage) {
        eprintln!("{message}");
    }

    /// The run ended (successfully or not); no call follows.
    fn on_finish(&self) {}
}

impl std::fmt::Debug for dyn RunObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunObserver")
            .field("wants_progress", &self.wants_progress())
            .finish()
    }
}

/// The default observer: messages on stderr, no progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrMessages;

impl RunObserver for StderrMessages {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_the_cli_prints_them() {
        assert_eq!(
            RunMessage::Warning("checkpoint 7 is corrupt; using 6".into()).to_string(),
            "weir: warning: checkpoint 7 is corrupt; using 6"
        );
        assert_eq!(
            RunMessage::Signal("SIGTERM: cancelling the run".into()).to_string(),
            "weir: SIGTERM: cancelling the run"
        );
        let restart = RunMessage::Restart {
            error: "operator `x` failed".into(),
            wait: Duration::from_millis(200),
            attempt: 1,
            attempts: 3,
        };
        assert_eq!(
            restart.to_string(),
            "weir: operator `x` failed\nweir: restarting from the last checkpoint in 200ms \
             (restart 1 of 3)"
        );
    }

    #[test]
    fn the_rate_is_rows_over_elapsed_time() {
        let p = Progress {
            elapsed: Duration::from_secs(2),
            rows_read: 1000,
            ..Progress::default()
        };
        assert_eq!(p.rows_per_sec(), 500.0);
        assert!(!StderrMessages.wants_progress());
    }
}
