//! Live figures of a running job for its [`RunObserver`]: rows read, the
//! total when known, watermark, memory, spill, bad records and, in batch
//! mode, the stage.
//!
//! Reads the same atomic counters the final [`super::JobMetrics`] come from,
//! every 200 ms and once at the end, from its own thread; draws nothing
//! (the CLI's observer does). May use `graph`, `operator`, `observe`.

use crate::graph::{LogicalPlan, NodeKind, PhysicalPlan};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::observe::{Progress, RunObserver, Stage};
use weir_core::operator::{OperatorMetrics, RuntimeEnv};

/// What [`report`] reads.
pub(crate) struct Counters<'a> {
    pub plan: &'a LogicalPlan,
    pub env: &'a RuntimeEnv,
    pub metrics: &'a [Arc<OperatorMetrics>],
    /// Rows the sources will read in all, when known.
    pub total_rows: Option<u64>,
    /// Batch runs: the plan's stages and the one running (from 1).
    pub stages: Option<(&'a PhysicalPlan, &'a AtomicUsize)>,
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
    let sources = (0..plan.nodes.len()).filter(|&i| plan.nodes[i].kind.is_source());
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
    let stage = c.stages.map(|(physical, running)| {
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
    }
}
