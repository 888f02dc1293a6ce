//! Per-split watermarks for a source subtask that reads its splits in order.

use super::{GeneratorState, WatermarkGenerator, WatermarkStrategy};
use crate::error::Result;
use crate::message::Watermark;
use arrow_array::{BooleanArray, RecordBatch};

/// The event-time clock of one source subtask reading several splits one after another.
///
/// ```text
///  splits of this subtask:   [ s0 done ][ s1 reading ][ s2 unread ][ s3 unread ]
///  watermark = min( s1's generator,  initial(s2), initial(s3) )
///              (finished splits no longer count; unread ones count with the
///               bound their statistics give, or hold the watermark at MIN)
/// ```
/// Lateness is decided by the reading split's own generator, so it does not
/// depend on which subtask reads the split, nor when.
#[derive(Debug, Clone)]
pub struct SplitClock {
    // config
    strategy: WatermarkStrategy,
    initial: Vec<i64>,
    suffix_min: Vec<i64>,
    // state
    pos: usize,
    active: Option<WatermarkGenerator>,
    emitted: Option<i64>,
}

impl SplitClock {
    /// A clock for splits read in the given order; `min_times` are their
    /// smallest event times where known (from statistics).
    pub fn new(strategy: WatermarkStrategy, min_times: &[Option<i64>]) -> Self {
        // One extra millisecond: statistics in finer units are truncated to ms.
        let initial: Vec<i64> = min_times
            .iter()
            .map(|&m| strategy.initial_watermark(m).saturating_sub(1))
            .collect();
        let mut suffix_min = vec![i64::MAX; initial.len() + 1];
        for k in (0..initial.len()).rev() {
            suffix_min[k] = suffix_min[k + 1].min(initial[k]);
        }
        SplitClock {
            strategy,
            initial,
            suffix_min,
            pos: 0,
            active: None,
            emitted: None,
        }
    }

    /// Starts reading the next split.
    pub fn start_split(&mut self) {
        self.active = Some(self.strategy.generator());
    }

    /// Starts reading the next split where a checkpoint left it: its
    /// generator continues from `state` (the rows before were read already).
    pub fn resume_split(&mut self, state: GeneratorState) {
        self.active = Some(self.strategy.generator().with_state(state));
    }

    /// The current split's generator state, if a split is being read.
    pub fn active_state(&self) -> Option<GeneratorState> {
        self.active.as_ref().map(WatermarkGenerator::state)
    }

    /// Restores the last emitted watermark (a checkpoint at unchanged
    /// parallelism): only higher ones are emitted from here.
    pub fn restore_emitted(&mut self, emitted: Option<i64>) {
        self.emitted = emitted;
    }

    /// Classifies the next rows of the current split: `None` if none is late,
    /// else a mask with `false` for late rows.
    pub fn on_batch(&mut self, batch: &RecordBatch, times: &[i64]) -> Result<Option<BooleanArray>> {
        let strategy = &self.strategy;
        self.active
            .get_or_insert_with(|| strategy.generator())
            .on_batch(batch, times)
    }

    /// The last watermark [`advance`](Self::advance) returned.
    pub fn emitted(&self) -> Option<i64> {
        self.emitted
    }

    /// The current split is finished.
    pub fn end_split(&mut self) {
        self.active = None;
        self.pos += 1;
    }

    /// The watermark to emit, if it rose since the last call. Never returns
    /// `Watermark::MAX`: the executor sends that when the source is exhausted.
    pub fn advance(&mut self) -> Option<Watermark> {
        let (current, rest) = match &self.active {
            Some(g) => (
                g.current()
                    .unwrap_or(self.initial.get(self.pos).copied().unwrap_or(i64::MIN)),
                self.pos + 1,
            ),
            None => (i64::MAX, self.pos),
        };
        let wm = current.min(self.suffix_min[rest.min(self.initial.len())]);
        if wm == i64::MAX || wm == i64::MIN || self.emitted.is_some_and(|e| wm <= e) {
            return None;
        }
        self.emitted = Some(wm);
        Some(Watermark::EventTime(wm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use std::sync::Arc;

    impl SplitClock {
        fn on_times(&mut self, times: &[i64]) -> Option<BooleanArray> {
            let b = RecordBatch::try_from_iter([(
                "t",
                Arc::new(Int64Array::from(times.to_vec())) as _,
            )])
            .unwrap();
            self.on_batch(&b, times).unwrap()
        }
    }
    use std::time::Duration;

    #[test]
    fn unread_splits_hold_the_watermark_back() {
        let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10));
        let mut c = SplitClock::new(s, &[Some(100), Some(50)]);
        c.start_split();
        assert!(c.on_times(&[100, 200]).is_none());
        // split 0 is at 200 - 10 - 1 = 189, but split 1 may still hold time 50
        assert_eq!(c.advance(), Some(Watermark::EventTime(50 - 10 - 1 - 1)));
        c.end_split();
        assert_eq!(c.advance(), None, "unchanged");
        c.start_split();
        let mask = c.on_times(&[60, 40]).expect("40 is late in split 1");
        assert_eq!(
            mask.iter().collect::<Vec<_>>(),
            vec![Some(true), Some(false)]
        );
        assert!(c.on_times(&[100, 48]).is_some());
        assert_eq!(c.advance(), Some(Watermark::EventTime(89)));
        c.end_split();
        assert_eq!(c.advance(), None, "MAX is left to the executor");
    }

    #[test]
    fn unknown_statistics_hold_at_min_until_the_split_starts() {
        let s = WatermarkStrategy::monotonous();
        let mut c = SplitClock::new(s, &[None, None]);
        c.start_split();
        c.on_times(&[5, 6]);
        assert_eq!(c.advance(), None);
        c.end_split();
        c.start_split();
        c.on_times(&[1]);
        assert_eq!(c.advance(), Some(Watermark::EventTime(0)));
    }
}
