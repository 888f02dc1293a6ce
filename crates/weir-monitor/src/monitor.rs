//! The [`Monitor`]: a run observer that remembers what it saw (the graph,
//! the latest figures, a sample per second of the last ten minutes, the
//! checkpoints, restarts and errors) for the HTTP server and the report,
//! and forwards every call to the observer it wraps (the CLI's progress
//! line), so watching a job over HTTP changes nothing on the terminal.
//!
//! May use `weir-core`'s observer types and `super::view`.

use crate::view::{self, History, JobView};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use weir_core::observe::{CheckpointEvent, Progress, RunGraph, RunMessage, RunObserver};

/// Samples kept: one per second, ten minutes.
const HISTORY: usize = 600;
/// Checkpoints kept in the history table.
const CHECKPOINTS: usize = 100;

/// Where a watched run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Not started yet (no graph).
    Created,
    /// Running.
    Running,
    /// Ended successfully.
    Finished,
    /// Ended with an error.
    Failed,
}

impl RunState {
    /// `created`, `running`, `finished` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
        }
    }
}

/// Watches a run for the HTTP server and the report (see the crate docs).
#[derive(Debug)]
pub struct Monitor {
    // config
    inner: Arc<dyn RunObserver>,
    started: Instant,
    started_ms: i64,
    // state
    state: Mutex<Seen>,
}

/// What the monitor saw.
#[derive(Debug)]
pub(crate) struct Seen {
    pub title: String,
    pub address: Option<String>,
    pub run: RunState,
    pub graph: RunGraph,
    pub latest: Progress,
    pub history: VecDeque<Sample>,
    pub checkpoints: VecDeque<CheckpointRecord>,
    pub checkpoints_total: u64,
    pub checkpoint_failures: u64,
    pub restarts: u64,
    pub errors: Vec<String>,
    /// The final metrics a caller handed over (JSON), if any.
    pub final_metrics: Option<serde_json::Value>,
}

/// One second of history: cumulative counters at time `at`.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub at: Duration,
    pub rows_read: u64,
    pub watermark: Option<i64>,
    pub memory_reserved: u64,
    pub spilled_bytes: u64,
    /// Per operator: rows in, rows out, busy, idle and back-pressured
    /// nanoseconds summed over subtasks.
    pub operators: Vec<[u64; 5]>,
}

/// A completed checkpoint, with when it completed.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointRecord {
    pub event: CheckpointEvent,
    pub at: Duration,
}

impl Monitor {
    /// A monitor forwarding every call to `inner` (e.g. the progress line).
    pub fn new(inner: Arc<dyn RunObserver>) -> Self {
        Monitor {
            inner,
            started: Instant::now(),
            started_ms: weir_core::operator::now_ms(),
            state: Mutex::new(Seen {
                title: "weir job".into(),
                address: None,
                run: RunState::Created,
                graph: RunGraph::default(),
                latest: Progress::default(),
                history: VecDeque::new(),
                checkpoints: VecDeque::new(),
                checkpoints_total: 0,
                checkpoint_failures: 0,
                restarts: 0,
                errors: Vec::new(),
                final_metrics: None,
            }),
        }
    }

    /// Names the run in the UI and the report (e.g. the job file).
    pub fn with_title(self, title: impl Into<String>) -> Self {
        self.seen().title = title.into();
        self
    }

    pub(crate) fn seen(&self) -> MutexGuard<'_, Seen> {
        // the state is replaced field by field: a panic elsewhere leaves it usable
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records where the HTTP server listens (shown in the JSON).
    pub fn set_address(&self, address: impl Into<String>) {
        self.seen().address = Some(address.into());
    }

    /// The run ended: `Ok` with its final metrics as JSON (shown by the
    /// API and the report), or the error that ended it.
    pub fn on_result(&self, result: std::result::Result<serde_json::Value, String>) {
        let mut seen = self.seen();
        match result {
            Ok(metrics) => {
                seen.run = RunState::Finished;
                seen.final_metrics = Some(metrics);
            }
            Err(e) => {
                seen.run = RunState::Failed;
                seen.errors.push(e);
            }
        }
    }

    /// Where the run is.
    pub fn run_state(&self) -> RunState {
        self.seen().run
    }

    /// The run now, as `/api/v1/job` serves it.
    pub fn job(&self) -> JobView {
        view::job(&self.seen(), self.started_ms)
    }

    /// The last minutes, as `/api/v1/metrics` serves them.
    pub fn history(&self) -> History {
        view::history(&self.seen())
    }

    /// The metrics in the Prometheus text format, as `/metrics` serves them.
    pub fn prometheus_text(&self) -> String {
        crate::prometheus::encode(&self.job())
    }
}

impl RunObserver for Monitor {
    fn wants_progress(&self) -> bool {
        true
    }

    fn on_start(&self, graph: &RunGraph) {
        {
            let mut seen = self.seen();
            seen.graph = graph.clone();
            seen.run = RunState::Running;
            // a restart begins its counters at zero: so does its history
            seen.history.clear();
        }
        self.inner.on_start(graph);
    }

    fn on_progress(&self, progress: &Progress) {
        {
            let at = progress.elapsed;
            let mut seen = self.seen();
            seen.latest = progress.clone();
            let due = seen
                .history
                .back()
                .is_none_or(|s| at.saturating_sub(s.at) >= Duration::from_millis(950));
            if due {
                let sample = Sample::of(progress);
                if seen.history.len() == HISTORY {
                    seen.history.pop_front();
                }
                seen.history.push_back(sample);
            }
        }
        if self.inner.wants_progress() {
            self.inner.on_progress(progress);
        }
    }

    fn on_checkpoint(&self, checkpoint: &CheckpointEvent) {
        {
            let at = self.started.elapsed();
            let mut seen = self.seen();
            seen.checkpoints_total += 1;
            if seen.checkpoints.len() == CHECKPOINTS {
                seen.checkpoints.pop_front();
            }
            seen.checkpoints.push_back(CheckpointRecord {
                event: checkpoint.clone(),
                at,
            });
        }
        self.inner.on_checkpoint(checkpoint);
    }

    fn on_checkpoint_failed(&self, error: &str) {
        self.seen().checkpoint_failures += 1;
        self.inner.on_checkpoint_failed(error);
    }

    fn on_message(&self, message: &RunMessage) {
        if let RunMessage::Restart { error, .. } = message {
            let mut seen = self.seen();
            seen.restarts += 1;
            seen.errors.push(error.clone());
        }
        self.inner.on_message(message);
    }

    fn on_finish(&self) {
        self.inner.on_finish();
    }
}

impl Sample {
    /// The cumulative counters of `p`, at its time.
    pub(crate) fn of(p: &Progress) -> Self {
        let ns = |d: Duration| d.as_nanos() as u64;
        Sample {
            at: p.elapsed,
            rows_read: p.rows_read,
            watermark: p.watermark,
            memory_reserved: p.memory_reserved,
            spilled_bytes: p.spilled_bytes,
            operators: p
                .operators
                .iter()
                .map(|o| {
                    o.subtasks.iter().fold([0u64; 5], |mut acc, s| {
                        acc[0] += s.rows_in;
                        acc[1] += s.rows_out;
                        acc[2] += ns(s.busy);
                        acc[3] += ns(s.idle);
                        acc[4] += ns(s.backpressured);
                        acc
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::observe::{GraphOperator, OperatorProgress, StderrMessages, SubtaskProgress};

    fn graph() -> RunGraph {
        RunGraph {
            mode: "pipelined".into(),
            memory_budget: 1 << 20,
            operators: vec![GraphOperator {
                id: 0,
                name: "source".into(),
                kind: "source".into(),
                parallelism: 1,
                task: 0,
            }],
            edges: vec![],
        }
    }

    fn progress(rows: u64) -> Progress {
        Progress {
            rows_read: rows,
            operators: vec![OperatorProgress {
                subtasks: vec![SubtaskProgress {
                    rows_out: rows,
                    ..SubtaskProgress::default()
                }],
                ..OperatorProgress::default()
            }],
            ..Progress::default()
        }
    }

    #[test]
    fn it_keeps_the_latest_figures_one_sample_a_second_and_restarts() {
        let m = Monitor::new(Arc::new(StderrMessages));
        assert_eq!(m.run_state(), RunState::Created);
        m.on_start(&graph());
        assert_eq!(m.run_state(), RunState::Running);
        m.on_progress(&progress(10));
        m.on_progress(&progress(20)); // within the same second: no new sample
        assert_eq!(m.seen().history.len(), 1);
        assert_eq!(m.seen().latest.rows_read, 20);
        m.on_message(&RunMessage::Restart {
            error: "operator `x` failed".into(),
            wait: Duration::ZERO,
            attempt: 1,
            attempts: 2,
        });
        m.on_checkpoint_failed("disk full");
        m.on_start(&graph());
        assert!(m.seen().history.is_empty(), "counters restart from zero");
        let job = m.job();
        assert_eq!(job.restarts, 1);
        assert_eq!(job.checkpoints.failures, 1);
        assert_eq!(job.errors, vec!["operator `x` failed".to_string()]);
        m.on_result(Ok(serde_json::json!({"rows_in": 20})));
        assert_eq!(m.run_state(), RunState::Finished);
    }
}
