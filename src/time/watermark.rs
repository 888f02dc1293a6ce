//! Watermark strategies and the per-stream (or per-split) generator.
//!
//! ```text
//!  rows of one split, in read order          running max    watermark after row
//!  t=10_000                                   10_000         10_000 - delay - 1
//!  t= 9_200  (behind max by 800 <= delay)     10_000         unchanged       -> kept
//!  t= 2_000  (2_000 <= watermark)             10_000         unchanged       -> late
//! ```
//! A row is *late* when its timestamp is at or below the watermark produced by
//! the rows before it in the same split. That rule depends only on the split's
//! row order, never on batch sizes, parallelism or timing, which is what makes
//! pipelined, batch and replayed runs agree.

use super::duration_ms;
use arrow_array::BooleanArray;
use std::time::Duration;

/// How a source turns event times into watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkStrategy {
    /// Rows may arrive up to `max_delay_ms` behind the largest time seen so
    /// far; the watermark trails the maximum by that much (Flink's
    /// `forBoundedOutOfOrderness`). A delay of 0 is Flink's `forMonotonousTimestamps`.
    BoundedOutOfOrderness {
        /// Allowed disorder in milliseconds.
        max_delay_ms: i64,
    },
}

impl WatermarkStrategy {
    /// Bounded out-of-orderness with the given maximum delay.
    pub fn bounded_out_of_orderness(max_delay: Duration) -> Self {
        WatermarkStrategy::BoundedOutOfOrderness {
            max_delay_ms: duration_ms(max_delay),
        }
    }

    /// Timestamps never go backwards (delay 0).
    pub fn monotonous() -> Self {
        WatermarkStrategy::BoundedOutOfOrderness { max_delay_ms: 0 }
    }

    /// A fresh generator for one split or stream.
    pub fn generator(&self) -> WatermarkGenerator {
        match *self {
            WatermarkStrategy::BoundedOutOfOrderness { max_delay_ms } => WatermarkGenerator {
                delay: max_delay_ms.max(0),
                max_ts: None,
            },
        }
    }

    /// The watermark a split may claim before it has produced a row, given
    /// that none of its rows is earlier than `min_ts` (from file statistics).
    pub fn initial_watermark(&self, min_ts: Option<i64>) -> i64 {
        match (*self, min_ts) {
            (WatermarkStrategy::BoundedOutOfOrderness { max_delay_ms }, Some(t)) => {
                t.saturating_sub(max_delay_ms.max(0)).saturating_sub(1)
            }
            (_, None) => i64::MIN,
        }
    }
}

/// Tracks the running maximum of one split and classifies rows as late.
#[derive(Debug, Clone)]
pub struct WatermarkGenerator {
    // config
    delay: i64,
    // state
    max_ts: Option<i64>,
}

impl WatermarkGenerator {
    /// The current watermark (`max - delay - 1`), or `None` before the first row.
    pub fn current(&self) -> Option<i64> {
        self.max_ts
            .map(|m| m.saturating_sub(self.delay).saturating_sub(1))
    }

    /// Consumes the times of the next rows, in order, and returns which rows
    /// to keep: `None` if none is late, else a mask with `false` for late rows.
    pub fn on_times(&mut self, times: &[i64]) -> Option<BooleanArray> {
        let mut max = self.max_ts.unwrap_or(i64::MIN);
        let mut wm = self.current().unwrap_or(i64::MIN);
        let mut keep: Option<Vec<bool>> = None;
        for (i, &t) in times.iter().enumerate() {
            if self.max_ts.is_some() && t <= wm {
                keep.get_or_insert_with(|| vec![true; times.len()])[i] = false;
                continue;
            }
            if t > max || self.max_ts.is_none() {
                max = t;
                self.max_ts = Some(max);
                wm = max.saturating_sub(self.delay).saturating_sub(1);
            }
        }
        keep.map(BooleanArray::from)
    }

    /// Number of late rows in a mask returned by [`on_times`](Self::on_times).
    pub fn late_count(mask: &Option<BooleanArray>) -> usize {
        mask.as_ref().map_or(0, |m| m.len() - m.true_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: a row is late if it is <= (max of earlier kept rows) - delay - 1.
    fn oracle(times: &[i64], delay: i64) -> Vec<bool> {
        let mut max: Option<i64> = None;
        times
            .iter()
            .map(|&t| {
                // late: t <= watermark, i.e. t <= m - delay - 1
                let late = max.is_some_and(|m| t < m - delay);
                if !late {
                    max = Some(max.map_or(t, |m| m.max(t)));
                }
                !late
            })
            .collect()
    }

    #[test]
    fn late_rows_are_those_behind_the_running_watermark() {
        let times = [10_000, 9_200, 2_000, 10_500, 9_499, 9_500, 20_000, 18_999];
        let mut g = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1)).generator();
        let keep = g.on_times(&times).expect("there are late rows");
        let keep: Vec<bool> = keep.iter().map(|v| v.unwrap()).collect();
        assert_eq!(
            keep,
            vec![true, true, false, true, false, true, true, false]
        );
        assert_eq!(keep, oracle(&times, 1000));
        assert_eq!(g.current(), Some(20_000 - 1000 - 1));
    }

    #[test]
    fn batch_boundaries_do_not_change_lateness() {
        let times: Vec<i64> = (0..500).map(|i| (i * 7919) % 1000 + i * 3).collect();
        let whole = {
            let mut g =
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50)).generator();
            let m = g.on_times(&times);
            (0..times.len())
                .map(|i| m.as_ref().is_none_or(|m| m.value(i)))
                .collect::<Vec<_>>()
        };
        let mut g =
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50)).generator();
        let mut pieces = Vec::new();
        for chunk in times.chunks(37) {
            let m = g.on_times(chunk);
            pieces.extend((0..chunk.len()).map(|i| m.as_ref().is_none_or(|m| m.value(i))));
        }
        assert_eq!(whole, pieces);
        assert_eq!(whole, oracle(&times, 50));
        assert!(whole.iter().any(|k| !k), "test data must contain late rows");
    }

    #[test]
    fn initial_watermark_uses_statistics() {
        let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2));
        assert_eq!(s.initial_watermark(Some(10_000)), 7_999);
        assert_eq!(s.initial_watermark(None), i64::MIN);
    }
}
