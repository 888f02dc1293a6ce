//! Executors: run a [`Job`]'s physical plan pipelined (threads and bounded
//! channels) or as blocking batch stages (rayon and spillable buffers).
//!
//! Both drive the same operator instances through the same [`chain`] code;
//! only the transport between tasks differs. May use every layer below
//! (`graph`, `operators`, `operator`, `spill`, `memory`, `time`, ...).

mod chain;
mod pipelined;
pub mod progress;
mod recovery;
mod rescale;
mod route;
mod signals;
mod staged;

use crate::checkpoint::{CheckpointConfig, CheckpointStats, RestartStrategy};
use crate::graph::{Job, LogicalPlan, Outputs, PhysicalPlan};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::error::{Error, Result};
use weir_core::lock::LockFile;
use weir_core::observe::{RunObserver, StderrMessages};
use weir_core::operator::{OperatorMetrics, RuntimeEnv, StopSignal};
use weir_core::shard::Shard;
use weir_core::spill::SpillCompression;

/// How a job is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// Every batch flows on at once over bounded channels (streaming).
    Pipelined,
    /// Each stage runs to completion; its output is buffered (spilling to disk) for the next.
    Batch,
}

impl std::str::FromStr for ExecMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "pipelined" | "stream" | "streaming" => Ok(ExecMode::Pipelined),
            "batch" | "staged" => Ok(ExecMode::Batch),
            other => Err(Error::option(
                "mode",
                format!("`{other}` is not a mode (use pipelined or batch)"),
            )),
        }
    }
}

impl std::fmt::Display for ExecMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExecMode::Pipelined => "pipelined",
            ExecMode::Batch => "batch",
        })
    }
}

/// Execution settings.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Pipelined or batch.
    pub mode: ExecMode,
    /// Default parallelism of every operator (default: number of cores).
    pub parallelism: usize,
    /// Memory budget in bytes for state and buffers.
    pub memory: usize,
    /// Maximum rows per batch on an edge (larger batches are sliced).
    pub batch_rows: usize,
    /// Rows a pipelined channel may hold before the sender blocks.
    pub channel_rows: usize,
    /// Parent directory for spill files (default: the system temp directory).
    pub spill_dir: Option<PathBuf>,
    /// How spill files are compressed (default: not at all).
    pub spill_compression: SpillCompression,
    /// Who watches the run: progress, warnings, signals, restarts (default
    /// [`StderrMessages`]: messages on stderr, no progress).
    pub observer: Arc<dyn RunObserver>,
    /// Raised to stop live sources cleanly (the job then drains and commits).
    pub stop: StopSignal,
    /// Pipelined runs: every source subtask sends a latency marker this
    /// often (`None`: never). Default 200 ms.
    pub latency_interval: Option<Duration>,
    /// Pipelined runs: take checkpoints (`None`: never). Batch runs ignore it.
    pub checkpoint: Option<CheckpointConfig>,
    /// Checkpointed runs: how often to restart from the last checkpoint
    /// after a failure.
    pub restart: RestartStrategy,
    /// Run as shard `i` of `N` processes (`--shard i/N`): see
    /// [`LogicalPlan::for_shard`]. File sinks then write this shard's parts
    /// into a shared target, and checkpoints go to `DIR/shard-i-of-N`.
    pub shard: Option<Shard>,
    /// Shards: the channel that carries re-keyed rows to the shard of
    /// their new key (`None`: a job that re-keys is refused).
    pub repartition: Option<Arc<dyn weir_core::operator::Repartitioner>>,
    /// Checkpointed pipelined runs: each source subtask stops reading once
    /// its event-time watermark reaches this (epoch ms); when all have (or
    /// ended), the job takes a savepoint and stops. Every run of the same
    /// input stops at the same rows, so the savepoints of a job's shards
    /// fit together at another shard count (`--savepoint-at`).
    pub savepoint_at: Option<i64>,
}

impl ExecConfig {
    /// Pipelined defaults.
    pub fn pipelined() -> Self {
        ExecConfig {
            mode: ExecMode::Pipelined,
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            memory: 512 * 1024 * 1024,
            batch_rows: 8192,
            channel_rows: 8 * 8192,
            spill_dir: None,
            spill_compression: SpillCompression::default(),
            observer: Arc::new(StderrMessages),
            stop: StopSignal::new(),
            latency_interval: Some(Duration::from_millis(200)),
            checkpoint: None,
            restart: RestartStrategy::default(),
            shard: None,
            repartition: None,
            savepoint_at: None,
        }
    }

    /// Batch defaults.
    pub fn batch() -> Self {
        ExecConfig {
            mode: ExecMode::Batch,
            ..ExecConfig::pipelined()
        }
    }

    /// Defaults for `mode`.
    pub fn new(mode: ExecMode) -> Self {
        ExecConfig {
            mode,
            ..ExecConfig::pipelined()
        }
    }

    /// Sets the default parallelism.
    pub fn with_parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism;
        self
    }

    /// Sets the memory budget in bytes.
    pub fn with_memory(mut self, bytes: usize) -> Self {
        self.memory = bytes;
        self
    }

    /// Sets where spill files go.
    pub fn with_spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Sets how spill files are compressed.
    pub fn with_spill_compression(mut self, compression: SpillCompression) -> Self {
        self.spill_compression = compression;
        self
    }

    /// Reports the run to `observer` (see [`RunObserver`]); the CLI's
    /// progress line is one.
    pub fn with_observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Takes a savepoint and stops where every source's watermark reaches
    /// `ms` (see [`ExecConfig::savepoint_at`]).
    pub fn with_savepoint_at(mut self, ms: i64) -> Self {
        self.savepoint_at = Some(ms);
        self
    }

    /// Uses `stop` to end live sources cleanly (see [`StopSignal`]).
    pub fn with_stop(mut self, stop: StopSignal) -> Self {
        self.stop = stop;
        self
    }

    /// Takes checkpoints in pipelined runs (see [`CheckpointConfig`]).
    pub fn with_checkpoints(mut self, checkpoints: CheckpointConfig) -> Self {
        self.checkpoint = Some(checkpoints);
        self
    }

    /// Restarts a failed checkpointed run from its last checkpoint.
    pub fn with_restart(mut self, restart: RestartStrategy) -> Self {
        self.restart = restart;
        self
    }

    /// Runs as one shard of several processes (see [`ExecConfig::shard`]).
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = Some(shard);
        self
    }

    /// Shards: re-keys through `repartition` (see [`ExecConfig::repartition`]).
    pub fn with_repartition(
        mut self,
        repartition: Arc<dyn weir_core::operator::Repartitioner>,
    ) -> Self {
        self.repartition = Some(repartition);
        self
    }

    /// Sets the maximum batch size on edges.
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Sets the rows a pipelined channel holds.
    pub fn with_channel_rows(mut self, rows: usize) -> Self {
        self.channel_rows = rows.max(1);
        self
    }

    /// Messages per channel: enough for `channel_rows`, at least 2.
    pub(crate) fn channel_capacity(&self) -> usize {
        (self.channel_rows / self.batch_rows.max(1)).max(2)
    }
}

/// Counters of one operator after a run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OperatorStats {
    /// The operator's name.
    pub name: String,
    /// Its parallelism.
    pub parallelism: usize,
    /// Rows received.
    pub rows_in: u64,
    /// Rows emitted.
    pub rows_out: u64,
    /// Rows dropped as late.
    pub late_rows: u64,
    /// Malformed records skipped (sources with a dead-letter output).
    pub bad_records: u64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct JobMetrics {
    /// The mode it ran in.
    pub mode: ExecMode,
    /// Wall time.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// Rows read by all sources (including rows then dropped as late).
    pub rows_in: u64,
    /// Result rows: received by the sinks of the job's results (not those
    /// of late rows or dead letters, counted below).
    pub rows_out: u64,
    /// Late rows written by late-row sinks (`late_rows()`, `[late_sink]`).
    pub late_rows_out: u64,
    /// Dead letters written by dead-letter sinks (`dead_letters()`, `[dead_letter_sink]`).
    pub dead_letters_out: u64,
    /// Rows dropped as late (behind the watermark), over all operators.
    pub late_rows: u64,
    /// Malformed input records sent to dead-letter outputs, over all sources.
    pub bad_records: u64,
    /// Spill files written.
    pub spill_files: u64,
    /// Bytes written to spill files.
    pub spilled_bytes: u64,
    /// Rows written to spill files.
    pub spilled_rows: u64,
    /// Bytes of in-memory state that stateful operators moved to disk
    /// (as counted in the pool); see [`JobMetrics::spill_write_amplification`].
    pub spilled_state_bytes: u64,
    /// Largest amount of memory reserved at once.
    pub peak_memory: u64,
    /// The memory budget.
    pub memory_budget: u64,
    /// Bytes still reserved after the run (0 unless something leaked).
    pub memory_reserved_at_end: u64,
    /// The process's peak resident set size so far (Linux `VmHWM`), if known.
    /// Only meaningful when one process runs one job, as `weir bench` does.
    pub peak_rss: Option<u64>,
    /// Pipelined runs: source-to-sink transit of latency markers (queues
    /// and operators, not the time rows wait inside windows).
    pub latency: Option<LatencyStats>,
    /// Checkpointed pipelined runs: what checkpointing did.
    pub checkpoints: Option<CheckpointStats>,
    /// Per operator.
    pub operators: Vec<OperatorStats>,
}

/// Percentiles of latency-marker transit times, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencyStats {
    /// Markers that reached a sink.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl LatencyStats {
    /// Percentiles of sorted samples in µs (`None` if there are none).
    pub fn from_sorted_us(v: &[u64]) -> Option<Self> {
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
        (!v.is_empty()).then(|| LatencyStats {
            samples: v.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl JobMetrics {
    /// Spill write amplification: bytes written to spill files per byte of
    /// state spilled from memory (`None` if no state was spilled). Above 1
    /// when spilled state is rewritten (merged runs, state carried over a
    /// merge); files written by batch shuffles count too.
    pub fn spill_write_amplification(&self) -> Option<f64> {
        (self.spilled_state_bytes > 0)
            .then(|| self.spilled_bytes as f64 / self.spilled_state_bytes as f64)
    }

    /// Input rows per second of wall time.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows_in as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs a job.
///
/// Builds the physical plan, runs it in `config.mode`, and publishes sink
/// output only if every task succeeded. Spill files are removed on every
/// exit path; on error the first error (naming its operator) is returned.
pub fn execute(job: &Job, config: &ExecConfig) -> Result<JobMetrics> {
    let result = execute_job(job, config);
    // once, however the run ended (restarts included)
    config.observer.on_finish();
    result
}

/// [`execute`] but for telling the observer that the run ended.
fn execute_job(job: &Job, config: &ExecConfig) -> Result<JobMetrics> {
    let plan = match config.shard {
        Some(shard) => job.plan().for_shard(shard, config.repartition.as_deref())?,
        None => job.plan(),
    };
    let physical = PhysicalPlan::try_new(&plan, config.parallelism)?;
    let (plan, physical) = (&plan, &physical);
    if config.mode == ExecMode::Batch {
        for (id, n) in plan.nodes.iter().enumerate() {
            if let crate::graph::NodeKind::Source(spec) = &n.kind {
                if physical.is_live(id)
                    && spec.boundedness() == weir_core::operator::Boundedness::Unbounded
                {
                    return Err(Error::Plan(format!(
                        "source `{}` ({}) is unbounded: batch mode needs bounded input \
                         (run it pipelined, or give it an end such as `bounded = true`)",
                        n.name,
                        spec.name()
                    )));
                }
            }
        }
    }
    if config.savepoint_at.is_some()
        && (config.mode != ExecMode::Pipelined || config.checkpoint.is_none())
    {
        return Err(Error::option(
            "savepoint-at",
            "a savepoint needs a checkpointed pipelined run: give --checkpoint-dir (and no \
             --mode batch)",
        ));
    }
    if config.savepoint_at.is_some() {
        check_savepoint_at(plan, physical)?;
    }
    // no sink writes into an input or another sink's output; one run per output
    let outputs = plan.check_paths(physical)?;
    let _locks = lock_outputs(&outputs, config.shard)?;
    if let Some(dir) = &config.spill_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    match (&config.checkpoint, config.mode) {
        (Some(checkpoints), ExecMode::Pipelined) => match config.shard {
            // each shard keeps its own checkpoints: DIR/shard-i-of-N/<job>/...
            Some(shard) => {
                let mut checkpoints = checkpoints.clone();
                checkpoints.dir = checkpoints.dir.join(shard.tag());
                recovery::execute_checkpointed(plan, physical, config, &checkpoints, &outputs)
            }
            None => recovery::execute_checkpointed(plan, physical, config, checkpoints, &outputs),
        },
        // batch mode takes no checkpoints (as in Flink): a failed batch job runs again
        _ => execute_once(plan, physical, config, None, &outputs).map(|(m, _)| m),
    }
}

/// `--savepoint-at` stops sources by their event time: one must have it,
/// and an unbounded one without it would never stop (nor end).
fn check_savepoint_at(plan: &LogicalPlan, physical: &PhysicalPlan) -> Result<()> {
    let sources: Vec<&crate::graph::Node> = (0..plan.nodes.len())
        .filter(|&id| physical.is_live(id) && plan.nodes[id].kind.is_source())
        .map(|id| &plan.nodes[id])
        .collect();
    let timeless_unbounded = sources.iter().find(|n| {
        n.definition.is_none()
            && matches!(&n.kind, crate::graph::NodeKind::Source(spec)
                if spec.boundedness() == weir_core::operator::Boundedness::Unbounded)
    });
    if let Some(n) = timeless_unbounded {
        return Err(Error::option(
            "savepoint-at",
            format!(
                "source `{}` is unbounded and has no event time, so it would never stop \
                 there: give it a time column (time_column / WATERMARK FOR)",
                n.name
            ),
        ));
    }
    if sources.iter().all(|n| n.definition.is_none()) {
        return Err(Error::option(
            "savepoint-at",
            "no source of this job has event time, so none would stop: give the source a \
             time column (time_column / WATERMARK FOR)",
        ));
    }
    Ok(())
}

/// Locks every file output for the run ([`weir_core::lock::for_writer`]):
/// a second run writing the same output fails at once, naming this process.
fn lock_outputs(outputs: &Outputs, shard: Option<Shard>) -> Result<Vec<LockFile>> {
    outputs
        .outputs
        .iter()
        .map(|o| {
            weir_core::lock::for_writer(
                &o.canonical,
                &format!("output {}", o.path.display()),
                shard,
            )
        })
        .collect()
}

/// One run of the plan; with `checkpoints`, a checkpointed pipelined run
/// that starts from their restore set. Publishes sink output on success
/// (unless the run stopped at a savepoint) and discards it on failure.
fn execute_once(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    config: &ExecConfig,
    checkpoints: Option<recovery::CheckpointRun>,
    outputs: &Outputs,
) -> Result<(JobMetrics, Option<pipelined::CheckpointOutcome>)> {
    let mut env = RuntimeEnv::try_with_spill(
        config.memory,
        config.spill_dir.as_deref(),
        config.spill_compression,
    )?;
    env.stop = config.stop.clone();
    env.observer = config.observer.clone();
    env.shard = config.shard;
    let metrics: Vec<Arc<OperatorMetrics>> = (0..plan.nodes.len())
        .map(|id| {
            let parallelism = if physical.is_live(id) {
                physical.parallelism[id]
            } else {
                0
            };
            Arc::new(OperatorMetrics::with_subtasks(parallelism))
        })
        .collect();
    let times = progress::TaskTimes::new(physical);
    config.observer.on_start(&progress::graph(
        plan,
        physical,
        config.mode,
        env.pool.budget() as u64,
    ));
    let started = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let first_error = FirstError::new();
    let policy = signals::OnSignal::of(plan, physical, checkpoints.is_some());
    // batch mode: the stage (task) running, from 1, for the progress line
    let stage = std::sync::atomic::AtomicUsize::new(0);
    let result = std::thread::scope(|scope| {
        if config.observer.wants_progress() {
            let counters = progress::Counters {
                plan,
                physical,
                env: &env,
                metrics: &metrics,
                times: &times,
                total_rows: source_rows(plan, physical),
                stage: (config.mode == ExecMode::Batch).then_some(&stage),
            };
            let (done, observer) = (&done, &*config.observer);
            scope.spawn(move || progress::report(&counters, done, observer));
        }
        let (stop, first, done_ref) = (&config.stop, &first_error, &done);
        let observer = &*config.observer;
        scope.spawn(move || signals::watch(stop, policy, first, outputs, done_ref, observer));
        let run = RunContext {
            plan,
            physical,
            env: &env,
            metrics: &metrics,
            times: &times,
            config,
            first_error: &first_error,
        };
        let result = match config.mode {
            ExecMode::Pipelined => {
                let (restore, coordinator) = match checkpoints {
                    Some(run) => {
                        let coordinator = run.coordinator(plan, physical, &env);
                        (Some(run.restore), Some(coordinator))
                    }
                    None => (None, None),
                };
                pipelined::run(run, restore.as_ref(), coordinator)
            }
            ExecMode::Batch => (staged::run(run, &stage), None),
        };
        done.store(true, Ordering::Release);
        result
    });
    let (result, outcome) = result;
    let stopped_at_savepoint = matches!(
        &outcome,
        Some(pipelined::CheckpointOutcome {
            end: crate::checkpoint::coordinator::LoopEnd::Savepoint(_),
            ..
        })
    );
    match result {
        // rows after a savepoint are not published: a resumed job reads them again
        Ok(()) if stopped_at_savepoint => env.commits.abort_all(),
        Ok(()) => env.commits.commit_all()?,
        Err(e) => {
            env.commits.abort_all();
            return Err(e);
        }
    }
    let mut metrics = collect_metrics(
        plan,
        physical,
        &env,
        &metrics,
        config.mode,
        started.elapsed(),
    );
    metrics.checkpoints = outcome.as_ref().map(|o| o.stats.clone());
    Ok((metrics, outcome))
}

/// Rows the job's sources will read, when all of them know it (Parquet
/// footers, after pruning row groups by a time range).
fn source_rows(plan: &LogicalPlan, physical: &PhysicalPlan) -> Option<u64> {
    let mut total = 0;
    let live = plan
        .nodes
        .iter()
        .enumerate()
        .filter(|(id, _)| physical.is_live(*id));
    for (_, n) in live.filter(|(_, n)| n.kind.is_source()) {
        match &n.kind {
            crate::graph::NodeKind::Source(spec) => total += spec.rows_to_read()?,
            _ => return None,
        }
    }
    Some(total)
}

fn collect_metrics(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    env: &RuntimeEnv,
    metrics: &[Arc<OperatorMetrics>],
    mode: ExecMode,
    elapsed: Duration,
) -> JobMetrics {
    let load = |m: &std::sync::atomic::AtomicU64| m.load(Ordering::Relaxed);
    let live: Vec<usize> = (0..plan.nodes.len())
        .filter(|&id| physical.is_live(id))
        .collect();
    let operators: Vec<OperatorStats> = live
        .iter()
        .map(|&id| (id, (&plan.nodes[id], &metrics[id])))
        .map(|(id, (n, m))| OperatorStats {
            name: n.name.clone(),
            parallelism: physical.parallelism[id],
            // a source's input is what it read: what it emitted plus what it dropped as late
            rows_in: if n.kind.is_source() {
                load(&m.rows_out) + load(&m.late_rows)
            } else {
                load(&m.rows_in)
            },
            rows_out: load(&m.rows_out),
            late_rows: load(&m.late_rows),
            bad_records: load(&m.bad_records),
        })
        .collect();
    let spill = env.spill.metrics();
    let sink_rows = |role: SinkRole| -> u64 {
        live.iter()
            .zip(&operators)
            .filter(|(&id, _)| matches!(plan.nodes[id].kind, crate::graph::NodeKind::Sink(_)))
            .filter(|(&id, _)| sink_role(plan, id) == role)
            .map(|(_, o)| o.rows_in)
            .sum()
    };
    JobMetrics {
        mode,
        elapsed,
        rows_in: live
            .iter()
            .map(|&id| &plan.nodes[id])
            .zip(&operators)
            .filter(|(n, _)| n.kind.is_source() && !n.channel)
            .map(|(_, o)| o.rows_in)
            .sum(),
        rows_out: sink_rows(SinkRole::Results),
        late_rows_out: sink_rows(SinkRole::LateRows),
        dead_letters_out: sink_rows(SinkRole::DeadLetters),
        late_rows: operators.iter().map(|o| o.late_rows).sum(),
        bad_records: operators.iter().map(|o| o.bad_records).sum(),
        spill_files: spill.files(),
        spilled_bytes: spill.bytes(),
        spilled_rows: spill.rows(),
        spilled_state_bytes: spill.state_bytes(),
        peak_memory: env.pool.peak() as u64,
        memory_budget: env.pool.budget() as u64,
        memory_reserved_at_end: env.pool.reserved() as u64,
        peak_rss: peak_rss(),
        latency: LatencyStats::from_sorted_us(&env.latency.sorted()),
        checkpoints: None,
        operators,
    }
}

/// What a sink writes: results, or rows a source set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SinkRole {
    /// A repartition channel's sink: rows on their way to another shard.
    Channel,
    Results,
    LateRows,
    DeadLetters,
}

/// The role of sink `id`: a repartition channel's, else the side output
/// (port 1 late rows, port 2 dead letters) nearest upstream on its first
/// input path, else results.
fn sink_role(plan: &LogicalPlan, id: usize) -> SinkRole {
    if plan.nodes[id].channel {
        return SinkRole::Channel;
    }
    let mut node = id;
    while let Some(edge) = plan.nodes[node].inputs.first() {
        match edge.port {
            1 => return SinkRole::LateRows,
            weir_core::operator::DEAD_LETTER_PORT => return SinkRole::DeadLetters,
            _ => node = edge.from,
        }
    }
    SinkRole::Results
}

/// The peak resident set size of this process (Linux only).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Job {
    /// Runs this job with `config`; see [`execute`].
    pub fn run(&self, config: &ExecConfig) -> Result<JobMetrics> {
        execute(self, config)
    }
}

/// Turns a panic payload into an error naming the task.
pub(crate) fn panic_error(task: &str, payload: Box<dyn std::any::Any + Send>) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    Error::Panic {
        operator: task.to_string(),
        message,
    }
}

/// What every subtask of one run shares, in both executors: the plans,
/// the job's resources and counters, the settings and the first error.
#[derive(Clone, Copy)]
pub(crate) struct RunContext<'a> {
    pub plan: &'a LogicalPlan,
    pub physical: &'a PhysicalPlan,
    pub env: &'a RuntimeEnv,
    pub metrics: &'a [Arc<OperatorMetrics>],
    pub times: &'a progress::TaskTimes,
    pub config: &'a ExecConfig,
    pub first_error: &'a FirstError,
}

/// Records the first real error of a run and signals cancellation.
pub(crate) struct FirstError {
    error: std::sync::Mutex<Option<Error>>,
    cancelled: std::sync::atomic::AtomicBool,
    cancel_tx: std::sync::Mutex<Option<crossbeam_channel::Sender<()>>>,
    /// Disconnected once the run is cancelled; `select!` on it to stop waiting.
    pub(crate) cancel_rx: crossbeam_channel::Receiver<()>,
}

impl FirstError {
    pub(crate) fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        FirstError {
            error: std::sync::Mutex::new(None),
            cancelled: std::sync::atomic::AtomicBool::new(false),
            cancel_tx: std::sync::Mutex::new(Some(tx)),
            cancel_rx: rx,
        }
    }

    /// Keeps `e` if it is the first real error, and cancels the run.
    pub(crate) fn record(&self, e: Error) {
        {
            let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() && !matches!(e, Error::Cancelled) {
                *slot = Some(e);
            }
        }
        self.cancel();
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.cancel_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The run's outcome: the first real error (taken), cancelled, or Ok.
    pub(crate) fn take_result(&self) -> Result<()> {
        let first = self.error.lock().unwrap_or_else(|p| p.into_inner()).take();
        match first {
            Some(e) => Err(e),
            None if self.cancelled.load(Ordering::SeqCst) => Err(Error::Cancelled),
            None => Ok(()),
        }
    }
}
