//! The operator contract: the one interface every executor drives.
//!
//! Owns [`Operator`], [`Source`], [`SourceSpec`] (the connector contract),
//! [`Ctx`], [`Output`], [`RuntimeEnv`] and the [`CommitLog`] that sinks
//! stage their files in. Operators are synchronous and
//! push-based: an executor calls `on_batch`, `on_watermark` and
//! `on_end_of_input`, then takes what the operator put in its [`Output`]. No
//! operator knows whether it runs pipelined or in batch stages.
//!
//! May use `error`, `message`, `memory`, `spill`, `state`, `time`. Never `exec` or `graph`.

mod source_spec;

pub(crate) use source_spec::event_time_pushdown;
pub use source_spec::{Boundedness, SourceSpec, DEAD_LETTER_PORT};

use crate::memory::{MemoryPool, MemoryReservation};
use crate::message::{Message, Watermark};
use crate::spill::{SpillCompression, SpillManager};
use crate::state::{StateReader, StateWriter};
use crate::Result;
use arrow_array::RecordBatch;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Which parallel instance of an operator this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The operator's name in the plan (unique within a job).
    pub operator: String,
    /// This instance's index, `0..parallelism`.
    pub subtask: usize,
    /// Number of parallel instances of this operator.
    pub parallelism: usize,
}

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
        })
    }
}

/// SIGINT / SIGTERM received since [`StopSignal::follow_process_signals`] ran.
static PROCESS_SIGNALS: AtomicU64 = AtomicU64::new(0);

/// The last of them (its number).
static LAST_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Set by SIGUSR1 once [`StopSignal::follow_process_signals`] ran.
static PROCESS_SAVEPOINT: AtomicBool = AtomicBool::new(false);

/// A request to stop a job, shared by everything that may ask (the
/// caller, a test, or the process's Ctrl-C / SIGTERM handler).
///
/// - [`stop`](Self::stop): live sources report their input as finished,
///   so the job drains like a bounded one (windows fire, sinks commit):
///   Flink's `stop --drain`. Bounded sources ignore it.
/// - [`stop_with_savepoint`](Self::stop_with_savepoint): a checkpointed
///   job takes a savepoint and stops without draining.
/// - [`cancel`](Self::cancel): the job stops as soon as it can, publishes
///   nothing, removes its staging and spill files and fails with
///   [`Error::Stopped`](crate::Error::Stopped).
///
/// Process signals (once [`follow_process_signals`](Self::follow_process_signals)
/// ran) are turned into one of these by the executor, by the kind of job:
///
/// ```text
///  first SIGINT/SIGTERM:  checkpointed ─► savepoint, then stop (exit 128 + signal)
///                         live sources ─► drain and commit (exit 0)
///                         otherwise    ─► cancel (exit 128 + signal)
///  second:                cancel (a drain or savepoint in progress is abandoned)
///  third:                 exit at once; the next run removes what was left
///  SIGUSR1 (`weir stop --savepoint`): savepoint, then stop (exit 0)
/// ```
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    savepoint: Arc<AtomicBool>,
    cancelled: Arc<AtomicBool>,
    follows_process: bool,
}

impl StopSignal {
    /// A signal nobody has raised yet.
    pub fn new() -> Self {
        StopSignal::default()
    }

    /// Asks the job to stop: live sources end their input, the job drains.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// True once [`stop`](Self::stop) was called (the executor calls it
    /// for a process signal when the job drains).
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Asks a checkpointed job to take a savepoint and stop without
    /// draining (Flink's stop-with-savepoint); resume it from that savepoint.
    /// A job without checkpoints ignores it.
    pub fn stop_with_savepoint(&self) {
        self.savepoint.store(true, Ordering::Release);
    }

    /// True once a savepoint was asked for (or the process got SIGUSR1, if
    /// this signal follows process signals).
    pub fn savepoint_requested(&self) -> bool {
        self.savepoint.load(Ordering::Acquire)
            || (self.follows_process && PROCESS_SAVEPOINT.load(Ordering::Acquire))
    }

    /// Cancels the job: it stops as soon as it can and publishes nothing.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Also follows the process's SIGINT (Ctrl-C) and SIGTERM (see the
    /// type's table) and SIGUSR1 (savepoint). For the CLI.
    pub fn follow_process_signals(mut self) -> Self {
        install_signal_handlers();
        self.follows_process = true;
        self
    }

    /// SIGINT/SIGTERM received so far, if this signal follows them.
    pub fn process_signals(&self) -> u64 {
        if self.follows_process {
            PROCESS_SIGNALS.load(Ordering::Acquire)
        } else {
            0
        }
    }

    /// The last SIGINT/SIGTERM received, if this signal follows them and one came.
    pub fn process_signal(&self) -> Option<i32> {
        (self.process_signals() > 0).then(|| LAST_SIGNAL.load(Ordering::Acquire))
    }
}

/// The last SIGINT/SIGTERM the process got, once a [`StopSignal`] follows
/// process signals.
pub fn last_process_signal() -> Option<i32> {
    (PROCESS_SIGNALS.load(Ordering::Acquire) > 0).then(|| LAST_SIGNAL.load(Ordering::Acquire))
}

/// `SIGINT`, `SIGTERM`, or the number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

#[cfg(unix)]
fn install_signal_handlers() {
    extern "C" fn on_signal(signal: libc::c_int) {
        // only async-signal-safe calls here: atomics and _exit
        LAST_SIGNAL.store(signal, Ordering::Release);
        if PROCESS_SIGNALS.fetch_add(1, Ordering::AcqRel) >= 2 {
            // the third: the user insists; the next run removes what is left
            // SAFETY: _exit is async-signal-safe and ends the process.
            unsafe { libc::_exit(128 + signal) };
        }
    }
    extern "C" fn on_savepoint(_: libc::c_int) {
        PROCESS_SAVEPOINT.store(true, Ordering::Release);
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handlers only touch atomics and call _exit.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
            let savepoint = on_savepoint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::signal(libc::SIGUSR1, savepoint);
        }
    });
}

#[cfg(not(unix))]
fn install_signal_handlers() {}

/// Counters of one operator, summed over its subtasks.
#[derive(Debug)]
pub struct OperatorMetrics {
    /// Rows received.
    pub rows_in: AtomicU64,
    /// Rows emitted.
    pub rows_out: AtomicU64,
    /// Rows that arrived behind the watermark and were not processed.
    pub late_rows: AtomicU64,
    /// The highest watermark delivered to any subtask (`i64::MIN` before the first).
    pub watermark: AtomicI64,
    /// Malformed input records a source skipped (sent to its dead-letter output).
    pub bad_records: AtomicU64,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        OperatorMetrics {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            late_rows: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            bad_records: AtomicU64::new(0),
        }
    }
}

impl OperatorMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
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

    /// Asks for a call to [`Operator::on_processing_time`] once the wall
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
    /// [`crate::state::store`]): made in [`Operator::open`].
    pub fn spillable_reservation(&self) -> MemoryReservation {
        MemoryReservation::spillable(&self.env.pool, self.instance_name())
    }

    /// A reservation for memory of this instance that cannot spill (rows
    /// read back from disk, buffers bounded by construction), named
    /// `window[1] what`: made in [`Operator::open`].
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

    /// The job's commit log (sinks stage their output here).
    pub fn commits(&self) -> &Arc<CommitLog> {
        &self.env.commits
    }

    /// This operator's counters.
    pub fn metrics(&self) -> &OperatorMetrics {
        &self.metrics
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
        }
    }
}

/// Where an operator puts what it emits during one callback.
#[derive(Debug, Default)]
pub struct Output {
    items: Vec<Message>,
}

impl Output {
    /// An empty output buffer.
    pub fn new() -> Self {
        Output::default()
    }

    /// Emits rows downstream (empty batches are dropped).
    pub fn emit(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.items.push(Message::Data(batch));
        }
    }

    /// Emits rows on side output `port` (>= 1): they go only to the
    /// consumers of that port, e.g. a sink for late rows.
    pub fn emit_side(&mut self, port: usize, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.items.push(Message::Side(port, batch));
        }
    }

    /// Emits a watermark downstream.
    pub fn emit_watermark(&mut self, wm: Watermark) {
        self.items.push(Message::Watermark(wm));
    }

    /// Emits any message (barriers, for operators that forward them).
    pub fn push(&mut self, msg: Message) {
        self.items.push(msg);
    }

    /// True if nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes the emitted messages, in order.
    pub fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.items)
    }
}

/// A streaming operator. Executors call it from one thread at a time.
///
/// The executor calls [`open`](Operator::open) once, before `restore` and
/// any input; then the callbacks. The default `on_watermark` forwards the
/// watermark; the default `on_end_of_input` does nothing.
pub trait Operator: Send {
    /// Makes the instance's per-task resources: its memory reservations
    /// ([`Ctx::spillable_reservation`], [`Ctx::fixed_reservation`]) and
    /// anything else that needs the runtime. Called once, first.
    fn open(&mut self, _ctx: &mut Ctx) -> Result<()> {
        Ok(())
    }

    /// Rows arrived on `input` (0 for single-input operators).
    fn on_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()>;

    /// Event time advanced to `wm` (already the minimum over all inputs).
    fn on_watermark(&mut self, wm: Watermark, _ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        out.emit_watermark(wm);
        Ok(())
    }

    /// The wall clock reached the time requested with
    /// [`Ctx::set_processing_timer`] (pipelined runs only).
    fn on_processing_time(&mut self, _now: i64, _ctx: &mut Ctx, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// All inputs are finished: flush remaining state.
    fn on_end_of_input(&mut self, _ctx: &mut Ctx, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// A checkpoint barrier passed this operator (aligned over all inputs):
    /// write everything needed to continue from here into `state`.
    ///
    /// The default refuses, so a stateful operator that does not implement
    /// it can never lose its state silently; stateless operators return
    /// `Ok(())`. The executor saves the watermark and processing timer.
    fn snapshot(&mut self, ctx: &mut Ctx, _state: &mut StateWriter) -> Result<()> {
        Err(not_checkpointable(ctx.operator()))
    }

    /// Called once, before any input, when the job restores a checkpoint.
    /// An empty `state` means the operator had nothing saved (or is new).
    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        restore_nothing(ctx, state)
    }
}

/// The error of an operator or source that cannot be checkpointed.
pub fn not_checkpointable(operator: &str) -> crate::Error {
    crate::Error::Checkpoint {
        location: format!("operator `{operator}`"),
        message: "this operator does not support checkpoints yet; \
                  run the job without a checkpoint interval"
            .into(),
    }
}

/// The default `restore`: fine when nothing was saved, an error otherwise.
fn restore_nothing(ctx: &Ctx, state: &StateReader) -> Result<()> {
    if state.is_empty() {
        Ok(())
    } else {
        Err(crate::Error::Checkpoint {
            location: format!("operator `{}`", ctx.operator()),
            message: "the checkpoint holds state this operator cannot read".into(),
        })
    }
}

/// What a source reports after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePoll {
    /// It emitted something, or may have more right away.
    Ready,
    /// Nothing available now (live sources); poll again later.
    Pending,
    /// A bounded source has delivered everything. The executor then sends
    /// `Watermark::MAX` and end of input downstream.
    Exhausted,
}

/// A source instance: reads its share of the input and emits batches and
/// watermarks into `out`.
pub trait Source: Send {
    /// Makes the instance's per-task resources (memory reservations for
    /// what it reads ahead). Called once, before `restore` and the first poll.
    fn open(&mut self, _ctx: &mut Ctx) -> Result<()> {
        Ok(())
    }

    /// Emits the next rows (and watermarks), or reports that it has none.
    fn poll_next(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<SourcePoll>;

    /// Records the position reached (everything emitted so far is before
    /// the barrier that follows) and the watermark clock, so a restored
    /// source continues with the next row and the same watermarks.
    fn snapshot(&mut self, ctx: &mut Ctx, _state: &mut StateWriter) -> Result<()> {
        Err(not_checkpointable(ctx.operator()))
    }

    /// Called once, before the first poll, when the job restores.
    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        restore_nothing(ctx, state)
    }
}

/// Builds one instance of an operator for a subtask.
pub type OperatorFactory = Arc<dyn Fn(&TaskInfo) -> Result<Box<dyn Operator>> + Send + Sync>;

/// Builds one instance of a source for a subtask.
pub type SourceFactory = Arc<dyn Fn(&TaskInfo) -> Result<Box<dyn Source>> + Send + Sync>;

/// Output staged by a sink that becomes visible only when the job succeeds.
///
/// Dropping it without calling `commit` must discard the staged output.
pub trait PendingCommit: Send {
    /// Publishes the staged output (e.g. an atomic rename).
    fn commit(self: Box<Self>) -> Result<()>;

    /// Commits with a higher phase run after all lower ones (e.g. moving a
    /// directory after the files inside it were finished).
    fn phase(&self) -> u8 {
        0
    }
}

/// Pending sink output of a job: committed all together when every task
/// succeeded, discarded (by dropping) otherwise.
pub struct CommitLog {
    // config
    run: u64,
    // state
    pending: Mutex<Vec<Box<dyn PendingCommit>>>,
    keys: Mutex<std::collections::HashSet<String>>,
    by_checkpoint: Mutex<Vec<(crate::message::CheckpointId, Box<dyn PendingCommit>)>>,
}

impl Default for CommitLog {
    fn default() -> Self {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        CommitLog {
            run: RUNS.fetch_add(1, Ordering::Relaxed),
            pending: Mutex::default(),
            keys: Mutex::default(),
            by_checkpoint: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for CommitLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLog")
            .field("pending", &self.len())
            .finish()
    }
}

impl CommitLog {
    /// Adds staged output to publish on success.
    pub fn stage(&self, commit: Box<dyn PendingCommit>) {
        self.lock().push(commit);
    }

    /// Stages `commit` unless something was already staged under `key` in
    /// this run (for per-output actions shared by several subtasks).
    pub fn stage_once(&self, key: &str, commit: impl FnOnce() -> Box<dyn PendingCommit>) {
        let first = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string());
        if first {
            self.stage(commit());
        }
    }

    /// A number unique to this run in this process (for staging names).
    pub fn run_id(&self) -> u64 {
        self.run
    }

    /// Adds output to publish when checkpoint `id` completes (in-memory
    /// sinks; file sinks list their files with `StateWriter::publish`).
    pub fn stage_for(&self, id: crate::message::CheckpointId, commit: Box<dyn PendingCommit>) {
        self.by_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, commit));
    }

    /// Publishes everything staged for checkpoints up to `id`, in order.
    pub fn commit_upto(&self, id: crate::message::CheckpointId) -> Result<()> {
        let due: Vec<Box<dyn PendingCommit>> = {
            let mut all = self.by_checkpoint.lock().unwrap_or_else(|e| e.into_inner());
            let (due, later): (Vec<_>, Vec<_>) = all.drain(..).partition(|(c, _)| *c <= id);
            *all = later;
            due.into_iter().map(|(_, c)| c).collect()
        };
        for c in due {
            c.commit()?;
        }
        Ok(())
    }

    /// Number of staged items.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True if nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes everything staged, by phase, then in staging order.
    pub fn commit_all(&self) -> Result<()> {
        let mut pending = std::mem::take(&mut *self.lock());
        pending.sort_by_key(|p| p.phase());
        for p in pending {
            p.commit()?;
        }
        Ok(())
    }

    /// Discards everything staged.
    pub fn abort_all(&self) {
        self.lock().clear();
        self.by_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn PendingCommit>>> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
