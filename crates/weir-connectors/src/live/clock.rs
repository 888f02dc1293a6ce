//! Per-partition watermarks for a live source subtask that reads several
//! partitions (broker partitions, streams, connections) at once.
//!
//! Owns [`PartitionClock`]. May use `weir_core::time` and `weir_core::message`.

use arrow_array::{BooleanArray, RecordBatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir_core::error::Result;
use weir_core::message::Watermark;
use weir_core::time::{GeneratorState, WatermarkGenerator, WatermarkStrategy};

/// The event-time clock of one live source subtask.
///
/// ```text
///  partition 0: rows ─► generator 0 (late rows decided here) ─┐
///  partition 1: rows ─► generator 1 ──────────────────────────┼─► min ─► watermark
///  partition 2: no rows yet: holds at MIN (unless idle) ──────┘  (never below `floor`,
///  finished partitions and partitions idle past the timeout       never backwards)
///  no longer count
/// ```
/// Each partition's lateness is decided by its own generator over its own
/// order, so replaying a partition from an offset gives the same late rows.
///
/// Checkpoints ([`ClockState`]): each partition's generator and finished
/// flag by partition name, and the last watermark emitted. Restored at the
/// same parallelism it is exact. After a rescale each partition still gets
/// its own generator back (partitions move whole), and the last watermark
/// becomes the smallest any old subtask emitted (none if one had none):
/// rows below it were behind every old subtask's watermark, so they stay
/// late, and nothing later than that is assumed.
#[derive(Debug)]
pub struct PartitionClock {
    // config
    strategy: WatermarkStrategy,
    // state
    parts: Vec<Part>,
    emitted: Option<i64>,
}

/// What a [`PartitionClock`] saves in a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockState {
    /// Per partition name: its generator and whether it finished.
    pub parts: BTreeMap<String, (GeneratorState, bool)>,
    /// The last watermark emitted (or the floor).
    pub emitted: Option<i64>,
}

#[derive(Debug)]
struct Part {
    generator: WatermarkGenerator,
    last_rows: Instant,
    finished: bool,
}

impl PartitionClock {
    /// A clock over `partitions` partitions with `strategy` (its idle
    /// timeout, if any, also applies per partition).
    pub fn new(strategy: WatermarkStrategy, partitions: usize) -> Self {
        let now = Instant::now();
        let parts = (0..partitions)
            .map(|_| Part {
                generator: strategy.generator(),
                last_rows: now,
                finished: false,
            })
            .collect();
        PartitionClock {
            strategy,
            parts,
            emitted: None,
        }
    }

    /// Starts above `floor`: watermarks at or below it are not emitted again
    /// (the hybrid source's hand-off carries the history's watermark).
    pub fn with_floor(mut self, floor: Option<i64>) -> Self {
        self.emitted = self.emitted.max(floor);
        self
    }

    /// The state to checkpoint; `names[i]` is partition i's name.
    pub fn state(&self, names: &[String]) -> ClockState {
        ClockState {
            parts: names
                .iter()
                .zip(&self.parts)
                .map(|(n, p)| (n.clone(), (p.generator.state(), p.finished)))
                .collect(),
            emitted: self.emitted,
        }
    }

    /// Continues from saved states (`names[i]` is partition i's name):
    /// one state at unchanged parallelism, every old subtask's after a
    /// rescale (see the type's docs). Partitions no state names start fresh.
    pub fn restore(&mut self, names: &[String], saved: &[ClockState], rescaled: bool) {
        let now = Instant::now();
        for (name, part) in names.iter().zip(self.parts.iter_mut()) {
            if let Some((g, finished)) = saved.iter().find_map(|s| s.parts.get(name)) {
                part.generator = self.strategy.generator().with_state(*g);
                part.finished = *finished;
            }
            part.last_rows = now;
        }
        self.emitted = if rescaled {
            saved.iter().map(|s| s.emitted).min().flatten()
        } else {
            saved.first().and_then(|s| s.emitted)
        };
    }

    /// Classifies the next rows of `partition`: `None` if none is late,
    /// else a mask with `false` for late rows.
    pub fn on_batch(
        &mut self,
        partition: usize,
        batch: &RecordBatch,
        times: &[i64],
    ) -> Result<Option<BooleanArray>> {
        let part = &mut self.parts[partition];
        part.last_rows = Instant::now();
        let mut mask = part.generator.on_batch(batch, times)?;
        // rows at or below a carried floor are late too: the watermark
        // downstream already passed them
        let lateness = self.strategy.allowed_lateness_ms.max(0);
        if let Some(floor) = self.emitted.map(|e| e.saturating_sub(lateness)) {
            let strategy = &self.strategy;
            if times.iter().any(|&t| strategy.is_late(t, floor)) {
                let base: Vec<bool> = match &mask {
                    Some(m) => m.iter().map(|v| v.unwrap_or(false)).collect(),
                    None => vec![true; times.len()],
                };
                let keep = base
                    .iter()
                    .zip(times)
                    .map(|(k, &t)| Some(*k && !strategy.is_late(t, floor)));
                mask = Some(BooleanArray::from_iter(keep));
            }
        }
        Ok(mask)
    }

    /// `partition` has no more rows (a bounded read reached its end).
    pub fn finish_partition(&mut self, partition: usize) {
        self.parts[partition].finished = true;
    }

    /// The watermark to emit, if it rose since the last call. Never returns
    /// `Watermark::MAX`: the executor sends that when the source ends.
    pub fn advance(&mut self) -> Option<Watermark> {
        let idle = self.strategy.idle_timeout;
        let is_idle = |p: &Part| idle.is_some_and(|t: Duration| p.last_rows.elapsed() >= t);
        let mut wm = i64::MAX;
        let mut counted = 0;
        for p in self.parts.iter().filter(|p| !p.finished) {
            if is_idle(p) {
                continue;
            }
            counted += 1;
            wm = wm.min(p.generator.current().unwrap_or(i64::MIN));
        }
        if counted == 0 || wm == i64::MIN || wm == i64::MAX || self.emitted.is_some_and(|e| wm <= e)
        {
            return None;
        }
        self.emitted = Some(wm);
        Some(Watermark::EventTime(wm))
    }

    /// The last watermark emitted (or the floor).
    pub fn current(&self) -> Option<i64> {
        self.emitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use std::sync::Arc;

    fn rows(clock: &mut PartitionClock, p: usize, times: &[i64]) -> Option<Vec<bool>> {
        let b =
            RecordBatch::try_from_iter([("t", Arc::new(Int64Array::from(times.to_vec())) as _)])
                .unwrap();
        clock
            .on_batch(p, &b, times)
            .unwrap()
            .map(|m| m.iter().map(|v| v.unwrap()).collect())
    }

    #[test]
    fn the_slowest_partition_holds_the_watermark() {
        let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10));
        let mut c = PartitionClock::new(s, 2);
        rows(&mut c, 0, &[100]);
        assert_eq!(c.advance(), None, "partition 1 has no rows yet");
        rows(&mut c, 1, &[50]);
        assert_eq!(c.advance(), Some(Watermark::EventTime(39)));
        // a row late in partition 1 only by partition 1's own clock
        assert_eq!(
            rows(&mut c, 1, &[200, 195, 189]),
            Some(vec![true, true, false])
        );
        assert_eq!(c.advance(), Some(Watermark::EventTime(89)));
        c.finish_partition(0);
        assert_eq!(c.advance(), Some(Watermark::EventTime(189)));
    }

    #[test]
    fn a_carried_floor_is_never_emitted_again_and_rows_below_it_are_late() {
        let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(0));
        let mut c = PartitionClock::new(s, 1).with_floor(Some(500));
        assert_eq!(rows(&mut c, 0, &[400, 600]), Some(vec![false, true]));
        assert_eq!(c.advance(), Some(Watermark::EventTime(599)));
        let mut c = PartitionClock::new(
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(0)),
            1,
        )
        .with_floor(Some(500));
        rows(&mut c, 0, &[501]);
        assert_eq!(c.advance(), None, "500 is not above the floor");
    }

    #[test]
    fn idle_partitions_stop_counting() {
        let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(0))
            .with_idle_timeout(Duration::from_millis(30));
        let mut c = PartitionClock::new(s, 2);
        rows(&mut c, 0, &[100]);
        assert_eq!(c.advance(), None);
        std::thread::sleep(Duration::from_millis(40));
        rows(&mut c, 0, &[101]);
        assert_eq!(c.advance(), Some(Watermark::EventTime(100)));
    }
}
