//! Watching a run: the [`RunObserver`] trait through which the executors
//! report progress, warnings, signals and restarts, so that they never
//! print or draw themselves.
//!
//! Owns [`RunObserver`], [`Progress`] (with [`OperatorProgress`] and
//! [`SubtaskProgress`] per instance), [`RunGraph`], [`CheckpointEvent`],
//! [`Stage`], [`RunMessage`] and [`StderrMessages`] (the default: prints
//! messages, draws nothing). The
//! CLI's progress bar is an observer (`cli/progress.rs`); so is anything
//! that wants a run's figures while it goes (a metrics endpoint, a test).
//! May use nothing of weir.
//!
//! ```text
//!  execute ──once per attempt, before any row──────► observer.on_start(&RunGraph)
//!     │ ─every 200 ms (and once at the end)──► observer.on_progress(&Progress)
//!     │ checkpoint completed / failed         ──► on_checkpoint(&CheckpointEvent) / on_checkpoint_failed
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
    /// The memory budget.
    pub memory_budget: u64,
    /// Spill files written so far.
    pub spill_files: u64,
    /// Per operator of [`RunGraph::operators`], in the same order.
    pub operators: Vec<OperatorProgress>,
}

/// One operator's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorProgress {
    /// Rows dropped as late, over its subtasks.
    pub late_rows: u64,
    /// Malformed records it skipped (sources), or dead letters it wrote (sinks).
    pub bad_records: u64,
    /// Bytes of its state that spills moved to disk so far.
    pub spilled_state_bytes: u64,
    /// Sources reading a broker: records between their positions and the
    /// head of what they read (Kafka: the partitions' high watermarks).
    pub records_behind: Option<u64>,
    /// Per subtask.
    pub subtasks: Vec<SubtaskProgress>,
}

/// One operator instance's figures at one moment. The times are those of
/// the task (thread) it runs in: operators chained into one task share them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubtaskProgress {
    /// Rows received.
    pub rows_in: u64,
    /// Rows emitted.
    pub rows_out: u64,
    /// Arrow bytes received.
    pub bytes_in: u64,
    /// Arrow bytes emitted.
    pub bytes_out: u64,
    /// Its watermark (epoch ms), if one arrived.
    pub watermark: Option<i64>,
    /// Time its task spent working.
    pub busy: Duration,
    /// Time its task waited for input.
    pub idle: Duration,
    /// Time its task waited for room downstream (back pressure).
    pub backpressured: Duration,
    /// Messages waiting in its task's input queue.
    pub queue_len: u64,
    /// Messages its task's input queue holds at most (0: no queue, a source
    /// or a batch stage).
    pub queue_capacity: u64,
    /// Bytes its state holds in the memory pool now.
    pub state_bytes: u64,
}

/// The shape of a run, told once before it starts (and again when a
/// checkpointed run restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunGraph {
    /// `pipelined` or `batch`.
    pub mode: String,
    /// The memory budget in bytes.
    pub memory_budget: u64,
    /// Every operator, sources and sinks included, in plan order.
    pub operators: Vec<GraphOperator>,
    /// The edges between them.
    pub edges: Vec<GraphEdge>,
}

/// One operator of a [`RunGraph`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphOperator {
    /// Its index in [`RunGraph::operators`].
    pub id: usize,
    /// Its name (unique in the job).
    pub name: String,
    /// `source`, `operator` or `sink`.
    pub kind: String,
    /// Its subtasks.
    pub parallelism: usize,
    /// The task (thread group, a chain of operators) it runs in.
    pub task: usize,
}

/// One edge of a [`RunGraph`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphEdge {
    /// The producing operator's id.
    pub from: usize,
    /// The consuming operator's id.
    pub to: usize,
    /// How rows move: `chained` (same thread), `forward`, `hash`,
    /// `broadcast` or `rebalance`.
    pub kind: String,
    /// The producer's output port (0: main output, 1: late rows, 2: dead letters).
    pub port: usize,
}

/// A checkpoint that completed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointEvent {
    /// Its id.
    pub id: u64,
    /// Trigger to manifest.
    pub duration: Duration,
    /// The longest barrier alignment of any subtask.
    pub alignment: Duration,
    /// State bytes written.
    pub bytes: u64,
    /// True for a savepoint.
    pub savepoint: bool,
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

    /// The run's shape, before its first row (again after each restart).
    fn on_start(&self, _graph: &RunGraph) {}

    /// The run's figures now; every 200 ms and once when it ends.
    fn on_progress(&self, _progress: &Progress) {}

    /// A checkpoint completed (pipelined runs with checkpoints).
    fn on_checkpoint(&self, _checkpoint: &CheckpointEvent) {}

    /// A checkpoint failed (the run then fails, or restarts): why.
    fn on_checkpoint_failed(&self, _error: &str) {}

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
