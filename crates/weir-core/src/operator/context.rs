//! What an operator instance runs with: its [`Ctx`] (name, subtask,
//! reservations, spill, counters, commit log, stop signal), the job-wide
//! [`RuntimeEnv`], the per-operator [`OperatorMetrics`] (in `metrics.rs`), latency samples
//! and the clocks (`now_ms`, `now_us`).
//!
//! May use `memory`, `spill`, `state`, `error` and the sibling modules.

use super::OperatorMetrics;
use super::{CommitLog, StopSignal, TaskInfo};
use crate::error::Result;
use crate::memory::{MemoryPool, MemoryReservation};
use crate::message::Watermark;
use crate::observe::{RunMessage, RunObserver, StderrMessages};
use crate::spill::{SpillCompression, SpillManager};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Job-wide resources shared by every operator instance.
#[derive(Debug, Clone)]
pub struct RuntimeEnv {
    /// The memory budget all large consumers reserve from.
    pub pool: Arc<MemoryPool>,
    /// Where spill files go (removed when the job ends).
    pub spill: Arc<SpillManager>,
    /// Sink files waiting for the job to succeed.
    pub commits: Arc<CommitLog>,
    /// Set when the job should stop (Ctrl-C, SIGTERM, or a caller).
    pub stop: StopSignal,
    /// Latency-marker samples recorded by the subtasks that end in sinks.
    pub latency: Arc<LatencySamples>,
    /// Who watches the run: operators' warnings go there ([`Ctx::warn`]).
    pub observer: Arc<dyn RunObserver>,
    /// The shard this process is, when the job runs as several (`--shard i/N`).
    pub shard: Option<crate::shard::Shard>,
}

/// Latency-marker transit times (microseconds), from sources to sinks.
#[derive(Debug, Default)]
pub struct LatencySamples {
    samples: Mutex<Vec<u64>>,
}

impl LatencySamples {
    /// Records a marker sent at `sent_us` (epoch µs) arriving now.
    pub fn record(&self, sent_us: i64) {
        let took = now_us().saturating_sub(sent_us).max(0) as u64;
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(took);
    }

    /// All samples so far, sorted (µs).
    pub fn sorted(&self) -> Vec<u64> {
        let mut v = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        v.sort_unstable();
        v
    }
}

/// The current wall-clock time in epoch microseconds (latency markers).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl RuntimeEnv {
    /// An environment with the given memory budget and a fresh spill directory
    /// under `spill_parent` (or the system temp directory).
    pub fn try_new(memory_budget: usize, spill_parent: Option<&std::path::Path>) -> Result<Self> {
        Self::try_with_spill(memory_budget, spill_parent, SpillCompression::default())
    }

    /// [`RuntimeEnv::try_new`] with spill files compressed by `compression`.
    pub fn try_with_spill(
        memory_budget: usize,
        spill_parent: Option<&std::path::Path>,
        compression: SpillCompression,
    ) -> Result<Self> {
        Ok(RuntimeEnv {
            pool: MemoryPool::new(memory_budget),
            spill: SpillManager::try_with_compression(spill_parent, compression)?,
            commits: Arc::new(CommitLog::default()),
            stop: StopSignal::new(),
            latency: Arc::default(),
            observer: Arc::new(StderrMessages),
            shard: None,
        })
    }
}

/// What an operator instance can see and use while it runs.
#[derive(Debug)]
pub struct Ctx {
    // config
    info: TaskInfo,
    // resources
    env: RuntimeEnv,
    metrics: Arc<OperatorMetrics>,
    // state
    watermark: Option<i64>,
    processing_timer: Option<i64>,
}

/// The current wall-clock time in epoch milliseconds (processing time).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Ctx {
    /// A context for one operator instance.
    pub fn new(info: TaskInfo, env: RuntimeEnv, metrics: Arc<OperatorMetrics>) -> Self {
        Ctx {
            info,
            env,
            metrics,
            watermark: None,
            processing_timer: None,
        }
    }

    /// Processing time: the wall clock, epoch milliseconds.
    pub fn processing_time(&self) -> i64 {
        now_ms()
    }

    /// Asks for a call to [`super::Operator::on_processing_time`] once the wall
    /// clock reaches `time` (replacing an earlier request; `None` cancels).
    /// Pipelined runs honour it; batch runs never call it: operators flush
    /// processing-time state at end of input instead (as Flink's BATCH mode).
    pub fn set_processing_timer(&mut self, time: Option<i64>) {
        self.processing_timer = time;
    }

    /// The pending processing-time timer, if any.
    pub fn processing_timer(&self) -> Option<i64> {
        self.processing_timer
    }

    /// Who this instance is.
    pub fn info(&self) -> &TaskInfo {
        &self.info
    }

    /// The operator's name.
    pub fn operator(&self) -> &str {
        &self.info.operator
    }

    /// The memory pool.
    pub fn pool(&self) -> &Arc<MemoryPool> {
        &self.env.pool
    }

    /// This instance's name in memory reports and errors: `window[1]`.
    pub fn instance_name(&self) -> String {
        format!("{}[{}]", self.info.operator, self.info.subtask)
    }

    /// A reservation for this instance's state that can spill (see
    /// [`crate::state::store`]): made in [`super::Operator::open`].
    pub fn spillable_reservation(&self) -> MemoryReservation {
        MemoryReservation::spillable(&self.env.pool, self.instance_name())
    }

    /// A reservation for memory of this instance that cannot spill (rows
    /// read back from disk, buffers bounded by construction), named
    /// `window[1] what`: made in [`super::Operator::open`].
    pub fn fixed_reservation(&self, what: &str) -> MemoryReservation {
        MemoryReservation::fixed(&self.env.pool, format!("{} {what}", self.instance_name()))
    }

    /// The spill manager.
    pub fn spill(&self) -> &Arc<SpillManager> {
        &self.env.spill
    }

    /// True once the job was asked to stop: live sources then end their
    /// input as if exhausted, so operators flush and sinks commit.
    pub fn stop_requested(&self) -> bool {
        self.env.stop.is_stopped()
    }

    /// The shard this process is when the job runs as several (`--shard i/N`):
    /// file sinks name their parts and commit markers after it.
    pub fn shard(&self) -> Option<crate::shard::Shard> {
        self.env.shard
    }

    /// The job's commit log (sinks stage their output here).
    pub fn commits(&self) -> &Arc<CommitLog> {
        &self.env.commits
    }

    /// Tells the run's observer something that deserves a look but does
    /// not stop the run (e.g. leftovers of a killed run removed).
    pub fn warn(&self, message: impl Into<String>) {
        self.env
            .observer
            .on_message(&RunMessage::Warning(message.into()));
    }

    /// This operator's counters.
    pub fn metrics(&self) -> &OperatorMetrics {
        &self.metrics
    }

    /// Counts a batch of `rows` rows and `bytes` Arrow bytes as received by
    /// this instance (executors call this).
    pub fn count_in(&self, rows: u64, bytes: u64) {
        self.metrics.on_rows_in(self.info.subtask, rows, bytes);
    }

    /// Records that this instance waited `d` inside a call (e.g. a paced
    /// source napping until its next batch is due): the run's figures show
    /// it as idle time of its task, not as work.
    pub fn record_wait(&self, d: std::time::Duration) {
        if let Some(s) = self.metrics.subtask(self.info.subtask) {
            OperatorMetrics::add(&s.waited_ns, d.as_nanos() as u64);
        }
    }

    /// Counts a batch of `rows` rows and `bytes` Arrow bytes as emitted by
    /// this instance (executors call this).
    pub fn count_out(&self, rows: u64, bytes: u64) {
        self.metrics.on_rows_out(self.info.subtask, rows, bytes);
    }

    /// The last watermark delivered to this operator, if any.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Records the watermark delivered to this operator (executors call this).
    pub fn set_watermark(&mut self, wm: Watermark) {
        if let Watermark::EventTime(t) = wm {
            self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
            self.metrics.watermark.fetch_max(t, Ordering::Relaxed);
            if let Some(s) = self.metrics.subtask(self.info.subtask) {
                s.watermark.fetch_max(t, Ordering::Relaxed);
            }
        }
    }
}
