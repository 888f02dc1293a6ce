//! Live figures of a running job for its [`RunObserver`]: the run's shape
//! ([`RunGraph`]) once, then every 200 ms rows read, the total when known,
//! watermark, memory, spill, bad records, the stage of a batch run, and per
//! operator and subtask rows and bytes in/out, watermarks, state bytes and
//! busy / idle / back-pressured time.
//!
//! Reads the same atomic counters the final [`super::JobMetrics`] come from,
//! plus [`TaskTimes`] (which the executors keep), from its own thread;
//! draws nothing (the CLI's observers do). May use `graph`, `operator`,
//! `observe`.
//!
//! ```text
//!  subtask thread:  start ─┬─ work ── recv blocks (idle) ── work ── send blocks (back-pressured) ─┬─ end
//!                          └──────────── busy = (end or now) − start − idle − back-pressured ─────┘
//! ```

use crate::graph::{LogicalPlan, NodeKind, Partitioning, PhysicalPlan};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::observe::{
    GraphEdge, GraphOperator, OperatorProgress, Progress, RunGraph, RunObserver, Stage,
    SubtaskProgress,
};
use weir_core::operator::{OperatorMetrics, RuntimeEnv};

/// What [`report`] reads.
pub(crate) struct Counters<'a> {
    pub plan: &'a LogicalPlan,
    pub physical: &'a PhysicalPlan,
    pub env: &'a RuntimeEnv,
    pub metrics: &'a [Arc<OperatorMetrics>],
    pub times: &'a TaskTimes,
    /// Rows the sources will read in all, when known.
    pub total_rows: Option<u64>,
    /// Batch runs: the stage running (from 1).
    pub stage: Option<&'a AtomicUsize>,
}

/// Where each task's subtasks spent their time, and their input queues.
#[derive(Debug)]
pub(crate) struct TaskTimes {
    origin: Instant,
    /// Per task, per subtask.
    tasks: Vec<Vec<SubtaskTimes>>,
}

/// One subtask's clock. Times in nanoseconds; `started`/`ended` are
/// offsets from the run's start plus one (0: not yet).
#[derive(Debug, Default)]
pub(crate) struct SubtaskTimes {
    started: AtomicU64,
    ended: AtomicU64,
    idle: AtomicU64,
    backpressured: AtomicU64,
    /// When the wait for input in progress began (offset + 1; 0: none).
    idle_since: AtomicU64,
    /// When the wait for room downstream in progress began (0: none).
    backpressured_since: AtomicU64,
    queue_len: AtomicU64,
    queue_capacity: AtomicU64,
    /// The busy, idle and back-pressured times last reported: a reading
    /// never shows less (a wait ending between two loads, or a nap counted
    /// once it ends, would otherwise make a counter go back).
    shown: [AtomicU64; 3],
}

impl TaskTimes {
    pub(crate) fn new(physical: &PhysicalPlan) -> Self {
        TaskTimes {
            origin: Instant::now(),
            tasks: physical
                .tasks
                .iter()
                .map(|t| {
                    (0..t.parallelism)
                        .map(|_| SubtaskTimes::default())
                        .collect()
                })
                .collect(),
        }
    }

    /// `times` (busy, idle, back-pressured) of task `t`'s subtask `s`, each
    /// at least what was reported before: counters that never go back.
    fn monotone(&self, t: usize, s: usize, times: [Duration; 3]) -> [Duration; 3] {
        let at = self.at(t, s);
        let mut out = times;
        for (shown, time) in at.shown.iter().zip(out.iter_mut()) {
            let ns = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
            *time = Duration::from_nanos(shown.fetch_max(ns, Ordering::Relaxed).max(ns));
        }
        out
    }

    fn at(&self, t: usize, s: usize) -> &SubtaskTimes {
        &self.tasks[t][s]
    }

    fn since_origin(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64 + 1
    }

    /// Subtask `s` of task `t` starts now; it ends when the guard drops.
    pub(crate) fn start(&self, t: usize, s: usize) -> Running<'_> {
        self.at(t, s)
            .started
            .store(self.since_origin(), Ordering::Relaxed);
        Running { times: self, t, s }
    }

    /// Subtask `s` of task `t` waits for `what` until the guard drops; the
    /// wait counts while it lasts (a subtask blocked for a minute shows a
    /// minute of waiting, not of work).
    pub(crate) fn wait(&self, t: usize, s: usize, what: Wait) -> Waiting<'_> {
        let at = self.at(t, s);
        let since = match what {
            Wait::Input => &at.idle_since,
            Wait::Room => &at.backpressured_since,
        };
        since.store(self.since_origin(), Ordering::Relaxed);
        Waiting {
            times: self,
            at,
            what,
        }
    }

    /// The subtask's input queue now holds `len` of at most `capacity` messages.
    pub(crate) fn set_queue(&self, t: usize, s: usize, len: usize, capacity: usize) {
        let at = self.at(t, s);
        at.queue_len.store(len as u64, Ordering::Relaxed);
        at.queue_capacity.store(capacity as u64, Ordering::Relaxed);
    }

    /// (busy, idle, back-pressured, queue length, queue capacity) now.
    fn read(&self, t: usize, s: usize) -> (Duration, Duration, Duration, u64, u64) {
        let at = self.at(t, s);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (started, ended) = (load(&at.started), load(&at.ended));
        let now = self.since_origin();
        let ongoing = |since: &AtomicU64| match load(since) {
            0 => 0,
            from => now.saturating_sub(from),
        };
        let idle = load(&at.idle) + ongoing(&at.idle_since);
        let bp = load(&at.backpressured) + ongoing(&at.backpressured_since);
        let busy = match (started, ended) {
            (0, _) => 0,
            (from, 0) => now.saturating_sub(from),
            (from, to) => to.saturating_sub(from),
        }
        .saturating_sub(idle + bp);
        let ns = Duration::from_nanos;
        (
            ns(busy),
            ns(idle),
            ns(bp),
            load(&at.queue_len),
            load(&at.queue_capacity),
        )
    }
}

/// What a subtask waits for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Input (idle time).
    Input,
    /// Room in a full queue downstream (back-pressured time).
    Room,
}

/// A wait in progress; adds its time when dropped (however it ended).
pub(crate) struct Waiting<'a> {
    times: &'a TaskTimes,
    at: &'a SubtaskTimes,
    what: Wait,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let (since, total) = match self.what {
            Wait::Input => (&self.at.idle_since, &self.at.idle),
            Wait::Room => (&self.at.backpressured_since, &self.at.backpressured),
        };
        let from = since.swap(0, Ordering::Relaxed);
        if from > 0 {
            let took = self.times.since_origin().saturating_sub(from);
            total.fetch_add(took, Ordering::Relaxed);
        }
    }
}

/// A running subtask; records its end when dropped (however it ended).
pub(crate) struct Running<'a> {
    times: &'a TaskTimes,
    t: usize,
    s: usize,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let at = self.times.at(self.t, self.s);
        at.ended.store(self.times.since_origin(), Ordering::Relaxed);
        at.queue_len.store(0, Ordering::Relaxed);
    }
}

/// The plan's live operators, in plan order: `RunGraph` ids index this.
pub(crate) fn live_nodes(plan: &LogicalPlan, physical: &PhysicalPlan) -> Vec<usize> {
    (0..plan.nodes.len())
        .filter(|&id| physical.is_live(id))
        .collect()
}

/// The run's shape for [`RunObserver::on_start`].
pub(crate) fn graph(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    mode: super::ExecMode,
    memory_budget: u64,
) -> RunGraph {
    let live = live_nodes(plan, physical);
    let index = |node: usize| live.iter().position(|&n| n == node);
    let operators = live
        .iter()
        .enumerate()
        .map(|(id, &node)| GraphOperator {
            id,
            name: plan.nodes[node].name.clone(),
            kind: match plan.nodes[node].kind {
                NodeKind::Source(_) => "source",
                NodeKind::Sink(_) => "sink",
                _ => "operator",
            }
            .into(),
            parallelism: physical.parallelism[node],
            task: physical.task_of[node],
        })
        .collect();
    let mut edges = Vec::new();
    for (to, &node) in live.iter().enumerate() {
        for e in &plan.nodes[node].inputs {
            let Some(from) = index(e.from) else { continue };
            let fused = physical.task_of[e.from] == physical.task_of[node];
            let kind = match (&e.partitioning, fused) {
                (_, true) => "chained",
                (Partitioning::Forward, _) => "forward",
                (Partitioning::Hash(_), _) => "hash",
                (Partitioning::Broadcast, _) => "broadcast",
                (Partitioning::Rebalance, _) => "rebalance",
            };
            edges.push(GraphEdge {
                from,
                to,
                kind: kind.into(),
                port: e.port,
            });
        }
    }
    RunGraph {
        mode: mode.to_string(),
        memory_budget,
        operators,
        edges,
    }
}

/// Reports progress to `observer` every 200 ms until `done` is set, then
/// once more (the final figures).
pub(crate) fn report(counters: &Counters<'_>, done: &AtomicBool, observer: &dyn RunObserver) {
    let started = Instant::now();
    loop {
        let finished = done.load(Ordering::Acquire);
        observer.on_progress(&snapshot(counters, started.elapsed()));
        if finished {
            return;
        }
        // wake early when the run ends, so the last figures are the final ones
        let tick = Instant::now();
        while tick.elapsed() < Duration::from_millis(200) && !done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The figures now.
pub(crate) fn snapshot(c: &Counters<'_>, elapsed: Duration) -> Progress {
    let (plan, metrics) = (c.plan, c.metrics);
    // live sources only: a source whose event time was pushed into a copy
    // shares its counters with the copy, and would count every row twice
    let sources =
        (0..plan.nodes.len()).filter(|&i| plan.nodes[i].kind.is_source() && c.physical.is_live(i));
    let rows_read = sources
        .clone()
        .map(|i| {
            let counted = match &plan.nodes[i].kind {
                // e.g. Parquet: rows decoded, those outside a --from/--until range included
                NodeKind::Source(spec) => spec.rows_read(),
                _ => None,
            };
            counted.unwrap_or_else(|| {
                metrics[i].rows_out.load(Ordering::Relaxed)
                    + metrics[i].late_rows.load(Ordering::Relaxed)
            })
        })
        .sum();
    let bad_records = sources
        .map(|i| metrics[i].bad_records.load(Ordering::Relaxed))
        .sum();
    let watermark = (0..plan.nodes.len())
        .filter(|&i| matches!(plan.nodes[i].kind, NodeKind::Sink(_)))
        .map(|i| metrics[i].watermark.load(Ordering::Relaxed))
        .max()
        .filter(|&w| w > i64::MIN);
    let physical = c.physical;
    let stage = c.stage.map(|running| {
        let count = physical.tasks.len();
        let index = running.load(Ordering::Relaxed).clamp(1, count.max(1));
        let operators = physical
            .tasks
            .get(index - 1)
            .map(|t| {
                t.nodes
                    .iter()
                    .map(|&id| plan.nodes[id].name.clone())
                    .collect()
            })
            .unwrap_or_default();
        Stage {
            index,
            count,
            operators,
        }
    });
    Progress {
        elapsed,
        rows_read,
        total_rows: c.total_rows,
        watermark,
        memory_reserved: c.env.pool.reserved() as u64,
        spilled_bytes: c.env.spill.metrics().bytes(),
        bad_records,
        stage,
        memory_budget: c.env.pool.budget() as u64,
        spill_files: c.env.spill.metrics().files(),
        operators: operators(c),
    }
}

/// Per live operator and subtask.
fn operators(c: &Counters<'_>) -> Vec<OperatorProgress> {
    let (plan, physical) = (c.plan, c.physical);
    let consumers: Vec<(String, u64)> = c
        .env
        .pool
        .consumers()
        .into_iter()
        .map(|(name, _, size)| (name, size as u64))
        .collect();
    let spilled = c.env.spill.metrics().state_bytes_by_consumer();
    live_nodes(plan, physical)
        .into_iter()
        .map(|node| {
            let m = &c.metrics[node];
            let name = &plan.nodes[node].name;
            let task = physical.task_of[node];
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let subtasks = m
                .subtasks()
                .iter()
                .enumerate()
                .map(|(s, sub)| {
                    let (busy, idle, backpressured, queue_len, queue_capacity) =
                        c.times.read(task, s);
                    // waits inside the task's own calls (a paced source's
                    // naps) are idle time, not work
                    let napped = Duration::from_nanos(
                        physical.tasks[task]
                            .nodes
                            .iter()
                            .filter_map(|&n| c.metrics[n].subtask(s))
                            .map(|x| x.waited_ns.load(Ordering::Relaxed))
                            .sum(),
                    )
                    .min(busy);
                    let [busy, idle, backpressured] =
                        c.times
                            .monotone(task, s, [busy - napped, idle + napped, backpressured]);
                    let watermark = sub.watermark.load(Ordering::Relaxed);
                    SubtaskProgress {
                        rows_in: load(&sub.rows_in),
                        rows_out: load(&sub.rows_out),
                        bytes_in: load(&sub.bytes_in),
                        bytes_out: load(&sub.bytes_out),
                        watermark: (watermark > i64::MIN).then_some(watermark),
                        busy,
                        idle,
                        backpressured,
                        queue_len,
                        queue_capacity,
                        state_bytes: instance_bytes(&consumers, name, s),
                    }
                })
                .collect();
            OperatorProgress {
                late_rows: load(&m.late_rows),
                bad_records: load(&m.bad_records),
                spilled_state_bytes: (0..m.subtasks().len())
                    .map(|s| instance_bytes(&spilled, name, s))
                    .sum(),
                records_behind: match &plan.nodes[node].kind {
                    NodeKind::Source(spec) => spec.records_behind(),
                    _ => None,
                },
                subtasks,
            }
        })
        .collect()
}

/// Bytes of the consumers of instance `operator[subtask]`: its memory
/// reservations are named `operator[subtask]`, optionally followed by a
/// space and what they hold.
fn instance_bytes(consumers: &[(String, u64)], operator: &str, subtask: usize) -> u64 {
    let instance = format!("{operator}[{subtask}]");
    consumers
        .iter()
        .filter(|(name, _)| {
            name.strip_prefix(instance.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        .map(|(_, size)| *size)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn state_bytes_are_those_of_the_instance_only() {
        let c = |n: &str, size| (n.to_string(), size);
        let consumers = [
            c("window[0]", 100),
            c("window[0] read back", 20),
            c("window[1]", 7),
            c("window[10]", 1000),
            c("window2[0]", 5000),
        ];
        assert_eq!(instance_bytes(&consumers, "window", 0), 120);
        assert_eq!(instance_bytes(&consumers, "window", 1), 7);
        assert_eq!(instance_bytes(&consumers, "window", 10), 1000);
        assert_eq!(instance_bytes(&consumers, "window", 3), 0);
    }

    #[test]
    fn busy_time_is_running_time_less_waits() {
        let times = TaskTimes {
            origin: Instant::now() - Duration::from_secs(10),
            tasks: vec![vec![SubtaskTimes::default()]],
        };
        assert_eq!(times.read(0, 0).0, Duration::ZERO, "not started: not busy");
        {
            let _running = times.start(0, 0);
            drop(times.wait(0, 0, Wait::Input));
            {
                let _blocked = times.wait(0, 0, Wait::Room);
                std::thread::sleep(Duration::from_millis(60));
                let (_, _, bp, _, _) = times.read(0, 0);
                assert!(
                    bp >= Duration::from_millis(60),
                    "a wait counts while it lasts: {bp:?}"
                );
            }
            let (_, _, bp, _, _) = times.read(0, 0);
            std::thread::sleep(Duration::from_millis(30));
            let (busy, idle, bp_later, _, _) = times.read(0, 0);
            assert_eq!(bp, bp_later, "an ended wait stays");
            assert!(idle < Duration::from_millis(5), "{idle:?}");
            assert!(busy >= Duration::from_millis(30), "{busy:?}");
        }
        let (ended, _, _, _, _) = times.read(0, 0);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            times.read(0, 0).0,
            ended,
            "an ended subtask's busy time stays"
        );
    }

    #[test]
    fn reported_times_never_go_back() {
        let times = TaskTimes {
            origin: Instant::now(),
            tasks: vec![vec![SubtaskTimes::default()]],
        };
        let ms = Duration::from_millis;
        assert_eq!(
            times.monotone(0, 0, [ms(30), ms(5), ms(1)]),
            [ms(30), ms(5), ms(1)]
        );
        // a nap counted once it ended: the busy time read lower
        assert_eq!(
            times.monotone(0, 0, [ms(25), ms(12), ms(1)]),
            [ms(30), ms(12), ms(1)]
        );
        assert_eq!(
            times.monotone(0, 0, [ms(40), ms(12), ms(2)]),
            [ms(40), ms(12), ms(2)]
        );
    }
}
