//! What the JSON API serves and the report inlines: [`JobView`] (the run
//! now: graph, figures per operator and subtask, checkpoints, errors) and
//! [`History`] (one sample per second of the last ten minutes). Their
//! shape is documented by `schema/job.schema.json`.
//!
//! Rates (rows per second, busy / idle / back-pressured milliseconds per
//! second, Flink's `busyTimeMsPerSecond`) are differences between the
//! newest sample and the one about five seconds before it while the run
//! goes, and averages over the whole run once it ended.
//!
//! May use `super::monitor` and `weir-core`'s observer types.

use crate::monitor::{Sample, Seen};
use serde::Serialize;
use std::time::Duration;
use weir_core::observe::{OperatorProgress, SubtaskProgress};

/// The window rates are measured over while a run goes.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// The run now (`/api/v1/job`).
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The run's title (its job file, or the bench case).
    pub title: String,
    /// `created`, `running`, `finished` or `failed`.
    pub state: String,
    /// `pipelined` or `batch`.
    pub mode: String,
    /// When the monitor started, epoch milliseconds.
    pub started_ms: i64,
    /// Seconds since the run started (at its latest figures).
    pub elapsed_s: f64,
    /// Where the HTTP server listens, if one does.
    pub address: Option<String>,
    /// Rows the sources read.
    pub rows_read: u64,
    /// Rows the sources will read in all, when known.
    pub total_rows: Option<u64>,
    /// Rows read per second (see the module docs).
    pub rows_per_s: f64,
    /// The highest watermark a sink has seen, epoch milliseconds.
    pub watermark: Option<i64>,
    /// Wall clock minus that watermark, milliseconds.
    pub watermark_lag_ms: Option<i64>,
    /// The memory pool.
    pub memory: MemoryView,
    /// Spill files.
    pub spill: SpillView,
    /// Malformed records the sources met.
    pub bad_records: u64,
    /// Batch runs: the stage running.
    pub stage: Option<StageView>,
    /// Every operator, in plan order.
    pub operators: Vec<OperatorView>,
    /// The edges between them.
    pub edges: Vec<EdgeView>,
    /// Checkpoints.
    pub checkpoints: CheckpointsView,
    /// Restarts from a checkpoint after a failure.
    pub restarts: u64,
    /// Errors: each restart's cause, and the one that ended the run.
    pub errors: Vec<String>,
    /// The final metrics of a finished run (`weir run --json`'s output).
    pub result: Option<serde_json::Value>,
}

/// The memory pool.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryView {
    /// The budget, bytes.
    pub budget: u64,
    /// Reserved now, bytes.
    pub reserved: u64,
}

/// Spill files written so far.
#[derive(Debug, Clone, Serialize)]
pub struct SpillView {
    /// Bytes.
    pub bytes: u64,
    /// Files.
    pub files: u64,
}

/// The stage a batch run is in.
#[derive(Debug, Clone, Serialize)]
pub struct StageView {
    /// From 1.
    pub index: usize,
    /// Stages in all.
    pub count: usize,
    /// Its operators.
    pub operators: Vec<String>,
}

/// One operator now.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorView {
    /// Its index in `operators`.
    pub id: usize,
    /// Its name.
    pub name: String,
    /// `source`, `operator` or `sink`.
    pub kind: String,
    /// Subtasks.
    pub parallelism: usize,
    /// The task (chain of operators sharing a thread) it runs in.
    pub task: usize,
    /// Rows received, over subtasks.
    pub rows_in: u64,
    /// Rows emitted.
    pub rows_out: u64,
    /// Arrow bytes received.
    pub bytes_in: u64,
    /// Arrow bytes emitted.
    pub bytes_out: u64,
    /// Rows received per second.
    pub rows_in_per_s: f64,
    /// Rows emitted per second.
    pub rows_out_per_s: f64,
    /// Milliseconds per second its task worked, averaged over subtasks.
    pub busy_ms_per_s: f64,
    /// Milliseconds per second its task waited for input.
    pub idle_ms_per_s: f64,
    /// Milliseconds per second its task waited for room downstream.
    pub backpressured_ms_per_s: f64,
    /// The lowest watermark over its subtasks, epoch milliseconds.
    pub watermark: Option<i64>,
    /// Sources: the spread of their subtasks' watermarks, milliseconds.
    pub event_time_skew_ms: Option<i64>,
    /// Messages waiting in its input queues over their capacity, 0 to 1.
    pub queue_fill: f64,
    /// Bytes its state holds in memory.
    pub state_bytes: u64,
    /// Bytes of its state spilled to disk so far.
    pub spilled_state_bytes: u64,
    /// Rows it dropped as late.
    pub late_rows: u64,
    /// Malformed records it skipped.
    pub bad_records: u64,
    /// Broker sources: records behind the head.
    pub records_behind: Option<u64>,
    /// Per subtask.
    pub subtasks: Vec<SubtaskView>,
}

/// One operator instance now.
#[derive(Debug, Clone, Serialize)]
pub struct SubtaskView {
    /// Its index.
    pub subtask: usize,
    /// Rows received.
    pub rows_in: u64,
    /// Rows emitted.
    pub rows_out: u64,
    /// Arrow bytes received.
    pub bytes_in: u64,
    /// Arrow bytes emitted.
    pub bytes_out: u64,
    /// Its watermark, epoch milliseconds.
    pub watermark: Option<i64>,
    /// Seconds its task worked so far.
    pub busy_s: f64,
    /// Seconds its task waited for input so far.
    pub idle_s: f64,
    /// Seconds its task waited for room downstream so far.
    pub backpressured_s: f64,
    /// Messages in its input queue.
    pub queue_len: u64,
    /// Its input queue's capacity (0: none).
    pub queue_capacity: u64,
    /// Bytes its state holds in memory.
    pub state_bytes: u64,
}

/// One edge.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeView {
    /// Producer id.
    pub from: usize,
    /// Consumer id.
    pub to: usize,
    /// `chained`, `forward`, `hash`, `broadcast` or `rebalance`.
    pub kind: String,
    /// The producer's output port.
    pub port: usize,
}

/// Checkpoints of the run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointsView {
    /// Completed.
    pub count: u64,
    /// Failed.
    pub failures: u64,
    /// The latest, newest last (at most 100).
    pub history: Vec<CheckpointView>,
}

/// One completed checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointView {
    /// Its id.
    pub id: u64,
    /// Seconds after the start it completed.
    pub completed_s: f64,
    /// Trigger to manifest, milliseconds.
    pub duration_ms: f64,
    /// The longest barrier alignment, milliseconds.
    pub alignment_ms: f64,
    /// State bytes.
    pub bytes: u64,
    /// A savepoint.
    pub savepoint: bool,
}

/// The last minutes (`/api/v1/metrics`), oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// Operator names, in the order of each sample's `operators`.
    pub operators: Vec<String>,
    /// One per second.
    pub samples: Vec<SampleView>,
}

/// One second of a run.
#[derive(Debug, Clone, Serialize)]
pub struct SampleView {
    /// Seconds since the start.
    pub t: f64,
    /// Rows read so far.
    pub rows_read: u64,
    /// Rows read per second since the previous sample.
    pub rows_per_s: f64,
    /// The sinks' watermark, epoch milliseconds.
    pub watermark: Option<i64>,
    /// Memory reserved, bytes.
    pub memory_reserved: u64,
    /// Spilled bytes so far.
    pub spilled_bytes: u64,
    /// Per operator since the previous sample.
    pub operators: Vec<SampleOperator>,
}

/// One operator over one second.
#[derive(Debug, Clone, Serialize)]
pub struct SampleOperator {
    /// Rows emitted per second.
    pub rows_out_per_s: f64,
    /// Busy milliseconds per second (averaged over subtasks).
    pub busy_ms_per_s: f64,
    /// Back-pressured milliseconds per second.
    pub backpressured_ms_per_s: f64,
}

/// The run now, from what the monitor saw.
pub(crate) fn job(seen: &Seen, started_ms: i64) -> JobView {
    let p = &seen.latest;
    let now = weir_core::operator::now_ms();
    let lag = |w: i64| (w > i64::MIN && w < i64::MAX).then(|| now.saturating_sub(w));
    let (old, new) = rate_window(seen);
    let secs = new.at.saturating_sub(old.at).as_secs_f64().max(1e-3);
    let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let operators = seen
        .graph
        .operators
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let o = p.operators.get(i).cloned().unwrap_or_default();
            let (a, b) = (old.operators.get(i), new.operators.get(i));
            let rate = |k: usize| per_s(a.map_or(0, |a| a[k]), b.map_or(0, |b| b[k]));
            let per_subtask_ms = |k: usize| rate(k) / 1e6 / g.parallelism.max(1) as f64;
            operator(g, &o, [rate(0), rate(1)], [2, 3, 4].map(per_subtask_ms))
        })
        .collect();
    JobView {
        title: seen.title.clone(),
        state: seen.run.name().into(),
        mode: seen.graph.mode.clone(),
        started_ms,
        elapsed_s: p.elapsed.as_secs_f64(),
        address: seen.address.clone(),
        rows_read: p.rows_read,
        total_rows: p.total_rows,
        rows_per_s: per_s(old.rows_read, new.rows_read),
        watermark: p.watermark,
        watermark_lag_ms: p.watermark.and_then(lag),
        memory: MemoryView {
            budget: p.memory_budget.max(seen.graph.memory_budget),
            reserved: p.memory_reserved,
        },
        spill: SpillView {
            bytes: p.spilled_bytes,
            files: p.spill_files,
        },
        bad_records: p.bad_records,
        stage: p.stage.as_ref().map(|s| StageView {
            index: s.index,
            count: s.count,
            operators: s.operators.clone(),
        }),
        operators,
        edges: seen
            .graph
            .edges
            .iter()
            .map(|e| EdgeView {
                from: e.from,
                to: e.to,
                kind: e.kind.clone(),
                port: e.port,
            })
            .collect(),
        checkpoints: CheckpointsView {
            count: seen.checkpoints_total,
            failures: seen.checkpoint_failures,
            history: seen
                .checkpoints
                .iter()
                .map(|c| CheckpointView {
                    id: c.event.id,
                    completed_s: c.at.as_secs_f64(),
                    duration_ms: c.event.duration.as_secs_f64() * 1e3,
                    alignment_ms: c.event.alignment.as_secs_f64() * 1e3,
                    bytes: c.event.bytes,
                    savepoint: c.event.savepoint,
                })
                .collect(),
        },
        restarts: seen.restarts,
        errors: seen.errors.clone(),
        result: seen.final_metrics.clone(),
    }
}

fn operator(
    g: &weir_core::observe::GraphOperator,
    o: &OperatorProgress,
    rows: [f64; 2],
    times_ms: [f64; 3],
) -> OperatorView {
    let sum = |f: fn(&SubtaskProgress) -> u64| o.subtasks.iter().map(f).sum::<u64>();
    let marks: Vec<i64> = o
        .subtasks
        .iter()
        .filter_map(|s| s.watermark)
        .filter(|&w| w < i64::MAX)
        .collect();
    let capacity = sum(|s| s.queue_capacity);
    OperatorView {
        id: g.id,
        name: g.name.clone(),
        kind: g.kind.clone(),
        parallelism: g.parallelism,
        task: g.task,
        rows_in: sum(|s| s.rows_in),
        rows_out: sum(|s| s.rows_out),
        bytes_in: sum(|s| s.bytes_in),
        bytes_out: sum(|s| s.bytes_out),
        rows_in_per_s: rows[0],
        rows_out_per_s: rows[1],
        busy_ms_per_s: times_ms[0].min(1000.0),
        idle_ms_per_s: times_ms[1].min(1000.0),
        backpressured_ms_per_s: times_ms[2].min(1000.0),
        watermark: marks.iter().copied().min(),
        event_time_skew_ms: (g.kind == "source" && marks.len() > 1).then(|| {
            marks.iter().max().copied().unwrap_or(0) - marks.iter().min().copied().unwrap_or(0)
        }),
        queue_fill: if capacity == 0 {
            0.0
        } else {
            sum(|s| s.queue_len) as f64 / capacity as f64
        },
        state_bytes: sum(|s| s.state_bytes),
        spilled_state_bytes: o.spilled_state_bytes,
        late_rows: o.late_rows,
        bad_records: o.bad_records,
        records_behind: o.records_behind,
        subtasks: o
            .subtasks
            .iter()
            .enumerate()
            .map(|(i, s)| SubtaskView {
                subtask: i,
                rows_in: s.rows_in,
                rows_out: s.rows_out,
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
                watermark: s.watermark,
                busy_s: s.busy.as_secs_f64(),
                idle_s: s.idle.as_secs_f64(),
                backpressured_s: s.backpressured.as_secs_f64(),
                queue_len: s.queue_len,
                queue_capacity: s.queue_capacity,
                state_bytes: s.state_bytes,
            })
            .collect(),
    }
}

/// The two samples rates are measured between: about [`RATE_WINDOW`]
/// apart while the run goes, start to end once it ended.
fn rate_window(seen: &Seen) -> (Sample, Sample) {
    let newest = Sample::of(&seen.latest);
    let zero = Sample {
        at: Duration::ZERO,
        rows_read: 0,
        watermark: None,
        memory_reserved: 0,
        spilled_bytes: 0,
        operators: Vec::new(),
    };
    let running = seen.run == crate::RunState::Running;
    let older = seen
        .history
        .iter()
        .rev()
        .find(|s| running && newest.at.saturating_sub(s.at) >= RATE_WINDOW)
        .or_else(|| seen.history.front().filter(|_| running))
        .filter(|s| s.at < newest.at)
        .cloned()
        .unwrap_or(zero);
    (older, newest)
}

/// The last minutes, from what the monitor saw.
pub(crate) fn history(seen: &Seen) -> History {
    let parallelism: Vec<f64> = seen
        .graph
        .operators
        .iter()
        .map(|o| o.parallelism.max(1) as f64)
        .collect();
    let mut samples = Vec::with_capacity(seen.history.len());
    let mut previous: Option<&Sample> = None;
    for s in &seen.history {
        let secs = previous
            .map_or(s.at, |p| s.at.saturating_sub(p.at))
            .as_secs_f64()
            .max(1e-3);
        let before = |i: usize, k: usize| {
            previous
                .and_then(|p| p.operators.get(i))
                .map_or(0, |o| o[k])
        };
        samples.push(SampleView {
            t: s.at.as_secs_f64(),
            rows_read: s.rows_read,
            rows_per_s: s
                .rows_read
                .saturating_sub(previous.map_or(0, |p| p.rows_read)) as f64
                / secs,
            watermark: s.watermark,
            memory_reserved: s.memory_reserved,
            spilled_bytes: s.spilled_bytes,
            operators: s
                .operators
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let p = parallelism.get(i).copied().unwrap_or(1.0);
                    let rate = |k: usize| o[k].saturating_sub(before(i, k)) as f64 / secs;
                    SampleOperator {
                        rows_out_per_s: rate(1),
                        busy_ms_per_s: (rate(2) / 1e6 / p).min(1000.0),
                        backpressured_ms_per_s: (rate(4) / 1e6 / p).min(1000.0),
                    }
                })
                .collect(),
        });
        previous = Some(s);
    }
    History {
        operators: seen
            .graph
            .operators
            .iter()
            .map(|o| o.name.clone())
            .collect(),
        samples,
    }
}
