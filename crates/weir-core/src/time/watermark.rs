//! Watermark strategies and the per-stream (or per-split) generator.
//!
//! ```text
//!  rows of one split, in read order          running max    watermark after row
//!  t=10_000                                   10_000         10_000 - delay - 1
//!  t= 9_200  (behind max by 800 <= delay)     10_000         unchanged       -> kept
//!  t= 2_000  (2_000 <= watermark - lateness)  10_000         unchanged       -> late
//! ```
//! A row is *late* when its deadline (its own time, or with a window-aware
//! [`LatenessRule`] the max timestamp of its first window) is at or below the
//! watermark produced by the rows before it in the same split, minus the
//! allowed lateness. That rule depends only on the split's row order, never
//! on batch sizes, parallelism or timing, which is what makes pipelined,
//! batch and replayed runs agree. Rows behind the watermark but within the
//! allowed lateness are kept; windows they belong to may have fired already
//! and then emit updates.

use super::{duration_ms, LatenessRule};
use crate::error::{Error, Result};
use crate::expr::Expr;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Schema};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where watermarks come from.
#[derive(Debug, Clone, PartialEq)]
pub enum WatermarkKind {
    /// Rows may arrive up to `max_delay_ms` behind the largest time seen so
    /// far; the watermark trails the maximum by that much (Flink's
    /// `forBoundedOutOfOrderness`; a delay of 0 is `forMonotonousTimestamps`).
    BoundedOutOfOrderness {
        /// Allowed disorder in milliseconds.
        max_delay_ms: i64,
    },
    /// Punctuated: every non-null value of this Int64/Timestamp column is a
    /// watermark (epoch ms) that holds after its row.
    Column(String),
    /// Punctuated: a row for which this boolean expression is true moves the
    /// watermark to that row's event time.
    Predicate(Expr),
}

/// How a stream turns event times into watermarks, and how late a row may be.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkStrategy {
    /// Where watermarks come from.
    pub kind: WatermarkKind,
    /// Rows up to this far behind the watermark are still processed (windows
    /// emit updated results); rows further behind are late.
    pub allowed_lateness_ms: i64,
    /// An input without rows for this long stops holding back the watermark
    /// (pipelined runs of live sources).
    pub idle_timeout: Option<Duration>,
    /// Which rows are late: per row (the default) or window-aware. The
    /// planner sets it from the operators the source feeds.
    pub lateness_rule: LatenessRule,
}

impl WatermarkStrategy {
    /// Bounded out-of-orderness with the given maximum delay.
    pub fn bounded_out_of_orderness(max_delay: Duration) -> Self {
        WatermarkStrategy {
            kind: WatermarkKind::BoundedOutOfOrderness {
                max_delay_ms: duration_ms(max_delay),
            },
            allowed_lateness_ms: 0,
            idle_timeout: None,
            lateness_rule: LatenessRule::PerRow,
        }
    }

    /// Timestamps never go backwards (delay 0).
    pub fn monotonous() -> Self {
        Self::bounded_out_of_orderness(Duration::ZERO)
    }

    /// Watermarks read from a column (punctuated).
    pub fn from_column(column: impl Into<String>) -> Self {
        WatermarkStrategy {
            kind: WatermarkKind::Column(column.into()),
            allowed_lateness_ms: 0,
            idle_timeout: None,
            lateness_rule: LatenessRule::PerRow,
        }
    }

    /// A watermark at every row matching `predicate` (punctuated).
    pub fn from_predicate(predicate: Expr) -> Self {
        WatermarkStrategy {
            kind: WatermarkKind::Predicate(predicate),
            allowed_lateness_ms: 0,
            idle_timeout: None,
            lateness_rule: LatenessRule::PerRow,
        }
    }

    /// Keeps rows up to `lateness` behind the watermark (windows update their results).
    pub fn with_allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness_ms = duration_ms(lateness);
        self
    }

    /// Decides lateness with `rule` (see [`LatenessRule`]).
    pub fn with_lateness_rule(mut self, rule: LatenessRule) -> Self {
        self.lateness_rule = rule;
        self
    }

    /// True if a row at `t` is late against `threshold` (the watermark
    /// minus the allowed lateness).
    #[inline]
    pub fn is_late(&self, t: i64, threshold: i64) -> bool {
        t <= threshold && self.lateness_rule.deadline(t) <= threshold
    }

    /// Marks an input idle after `timeout` without rows.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Checks the strategy's columns against `schema`.
    pub fn validate(&self, schema: &Schema, context: &str) -> Result<()> {
        match &self.kind {
            WatermarkKind::BoundedOutOfOrderness { .. } => Ok(()),
            WatermarkKind::Column(c) => {
                let f = schema
                    .field_with_name(c)
                    .map_err(|_| Error::column(c, context, "watermark column not found"))?;
                match f.data_type() {
                    DataType::Int64 | DataType::Timestamp(_, _) => Ok(()),
                    other => Err(Error::column(
                        c,
                        context,
                        format!(
                            "watermark column must be Int64 (epoch ms) or Timestamp, found {other}"
                        ),
                    )),
                }
            }
            WatermarkKind::Predicate(p) => match p.data_type(schema)? {
                DataType::Boolean => Ok(()),
                other => Err(Error::Expr {
                    expr: p.to_string(),
                    message: format!("a watermark predicate must be boolean, this one is {other}"),
                }),
            },
        }
    }

    /// A fresh generator for one split or stream.
    pub fn generator(&self) -> WatermarkGenerator {
        WatermarkGenerator {
            kind: self.kind.clone(),
            rule: self.lateness_rule.clone(),
            lateness: self.allowed_lateness_ms.max(0),
            max_ts: None,
            watermark: None,
        }
    }

    /// The watermark a split may claim before it has produced a row, given
    /// that none of its rows is earlier than `min_ts` (from file statistics).
    pub fn initial_watermark(&self, min_ts: Option<i64>) -> i64 {
        match (&self.kind, min_ts) {
            (WatermarkKind::BoundedOutOfOrderness { max_delay_ms }, Some(t)) => {
                t.saturating_sub((*max_delay_ms).max(0)).saturating_sub(1)
            }
            (_, Some(t)) => t.saturating_sub(1),
            (_, None) => i64::MIN,
        }
    }
}

/// What a [`WatermarkGenerator`] has seen, for checkpoints: with the
/// strategy it rebuilds the generator exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorState {
    /// The largest event time seen (bounded out-of-orderness).
    pub max_ts: Option<i64>,
    /// The last punctuated watermark (column or predicate strategies).
    pub watermark: Option<i64>,
}

/// Tracks one split's watermark and classifies rows as late.
#[derive(Debug, Clone)]
pub struct WatermarkGenerator {
    // config
    kind: WatermarkKind,
    rule: LatenessRule,
    lateness: i64,
    // state
    max_ts: Option<i64>,
    watermark: Option<i64>,
}

impl WatermarkGenerator {
    /// What this generator has seen (for checkpoints).
    pub fn state(&self) -> GeneratorState {
        GeneratorState {
            max_ts: self.max_ts,
            watermark: self.watermark,
        }
    }

    /// This generator continued from `state` (taken with the same strategy).
    pub fn with_state(mut self, state: GeneratorState) -> Self {
        self.max_ts = state.max_ts;
        self.watermark = state.watermark;
        self
    }

    /// The current watermark, or `None` before it exists.
    pub fn current(&self) -> Option<i64> {
        match self.kind {
            WatermarkKind::BoundedOutOfOrderness { max_delay_ms } => self
                .max_ts
                .map(|m| m.saturating_sub(max_delay_ms.max(0)).saturating_sub(1)),
            _ => self.watermark,
        }
    }

    /// Consumes the times of the next rows, in order (bounded
    /// out-of-orderness only), and returns which rows to keep: `None` if
    /// none is late, else a mask with `false` for late rows.
    pub fn on_times(&mut self, times: &[i64]) -> Option<BooleanArray> {
        let WatermarkKind::BoundedOutOfOrderness { max_delay_ms } = self.kind else {
            panic!("on_times is for bounded out-of-orderness; use on_batch")
        };
        let delay = max_delay_ms.max(0);
        let mut max = self.max_ts.unwrap_or(i64::MIN);
        let mut threshold = self.threshold();
        let mut keep: Option<Vec<bool>> = None;
        for (i, &t) in times.iter().enumerate() {
            if threshold.is_some_and(|th| t <= th && self.rule.deadline(t) <= th) {
                keep.get_or_insert_with(|| vec![true; times.len()])[i] = false;
                continue;
            }
            if t > max || self.max_ts.is_none() {
                max = t;
                self.max_ts = Some(max);
                threshold = Some(
                    max.saturating_sub(delay)
                        .saturating_sub(1)
                        .saturating_sub(self.lateness),
                );
            }
        }
        keep.map(BooleanArray::from)
    }

    /// Like [`on_times`](Self::on_times) for any strategy: punctuated
    /// strategies read their column or predicate from `batch`.
    pub fn on_batch(&mut self, batch: &RecordBatch, times: &[i64]) -> Result<Option<BooleanArray>> {
        let marks: Vec<Option<i64>> = match &self.kind {
            WatermarkKind::BoundedOutOfOrderness { .. } => return Ok(self.on_times(times)),
            WatermarkKind::Column(c) => {
                let idx = batch
                    .schema()
                    .index_of(c)
                    .map_err(|_| Error::column(c, "watermark", "not found"))?;
                let col = arrow_cast::cast(batch.column(idx), &DataType::Int64)?;
                col.as_primitive::<Int64Type>().iter().collect()
            }
            WatermarkKind::Predicate(p) => {
                let m = p.evaluate(batch)?;
                let m = m.as_boolean_opt().ok_or_else(|| Error::Expr {
                    expr: p.to_string(),
                    message: "did not evaluate to booleans".into(),
                })?;
                (0..m.len())
                    .map(|i| (m.is_valid(i) && m.value(i)).then_some(times[i]))
                    .collect()
            }
        };
        let mut keep: Option<Vec<bool>> = None;
        for (i, &t) in times.iter().enumerate() {
            if self
                .threshold()
                .is_some_and(|th| t <= th && self.rule.deadline(t) <= th)
            {
                keep.get_or_insert_with(|| vec![true; times.len()])[i] = false;
            }
            if let Some(w) = marks[i] {
                self.watermark = Some(self.watermark.map_or(w, |c| c.max(w)));
            }
        }
        Ok(keep.map(BooleanArray::from))
    }

    /// Rows at or below this are late (none before the first watermark).
    fn threshold(&self) -> Option<i64> {
        self.current().map(|w| w.saturating_sub(self.lateness))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{col, lit};
    use arrow_array::Int64Array;
    use std::sync::Arc;

    /// Brute force: a row is late if it is <= (max of earlier kept rows) - delay - 1 - lateness.
    fn oracle(times: &[i64], delay: i64, lateness: i64) -> Vec<bool> {
        let mut max: Option<i64> = None;
        times
            .iter()
            .map(|&t| {
                let late = max.is_some_and(|m| t < m - delay - lateness);
                if !late {
                    max = Some(max.map_or(t, |m| m.max(t)));
                }
                !late
            })
            .collect()
    }

    fn kept(mask: &Option<BooleanArray>, n: usize) -> Vec<bool> {
        (0..n)
            .map(|i| mask.as_ref().is_none_or(|m| m.value(i)))
            .collect()
    }

    #[test]
    fn late_rows_are_those_behind_the_running_watermark() {
        let times = [10_000, 9_200, 2_000, 10_500, 9_499, 9_500, 20_000, 18_999];
        let mut g = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1)).generator();
        let keep = g.on_times(&times);
        assert_eq!(
            kept(&keep, 8),
            vec![true, true, false, true, false, true, true, false]
        );
        assert_eq!(kept(&keep, 8), oracle(&times, 1000, 0));
        assert_eq!(g.current(), Some(20_000 - 1000 - 1));
    }

    /// The seed's example (section 6): window [0, 5 s), watermark delay 2 s.
    /// The window fires once the watermark reaches 4.999 s (a row at 7 s);
    /// until then a row at 4 s still reaches it.
    #[test]
    fn the_seeds_window_takes_a_row_until_it_fires() {
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2))
            .with_lateness_rule(LatenessRule::for_window(crate::time::Window::tumbling(
                Duration::from_secs(5),
            )));
        let mut g = strategy.generator();
        assert_eq!(kept(&g.on_times(&[6_900, 4_000]), 2), vec![true, true]);
        assert_eq!(
            g.current(),
            Some(4_899),
            "below the window's max timestamp 4_999"
        );
        let mut g = strategy.generator();
        assert_eq!(kept(&g.on_times(&[7_000, 4_000]), 2), vec![true, false]);
        assert_eq!(g.current(), Some(4_999), "[0, 5 s) has fired");
        // the per-row rule called both late (4 s <= 4.899 s)
        let mut g = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2)).generator();
        assert_eq!(kept(&g.on_times(&[6_900, 4_000]), 2), vec![true, false]);
    }

    #[test]
    fn allowed_lateness_keeps_rows_a_little_behind_the_watermark() {
        let times = [10_000, 8_600, 8_400, 8_499];
        let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1))
            .with_allowed_lateness(Duration::from_millis(500));
        let mut g = s.generator();
        // watermark 8_999; lateness 500: threshold 8_499
        assert_eq!(kept(&g.on_times(&times), 4), vec![true, true, false, false]);
        assert_eq!(kept(&g.on_times(&times), 4), oracle(&times, 1000, 500));
    }

    #[test]
    fn batch_boundaries_do_not_change_lateness() {
        let times: Vec<i64> = (0..500).map(|i| (i * 7919) % 1000 + i * 3).collect();
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50));
        let whole = kept(&strategy.generator().on_times(&times), times.len());
        let mut g = strategy.generator();
        let mut pieces = Vec::new();
        for chunk in times.chunks(37) {
            pieces.extend(kept(&g.on_times(chunk), chunk.len()));
        }
        assert_eq!(whole, pieces);
        assert_eq!(whole, oracle(&times, 50, 0));
        assert!(whole.iter().any(|k| !k), "test data must contain late rows");
    }

    #[test]
    fn punctuated_watermarks_come_from_a_column_or_a_predicate() {
        let batch = RecordBatch::try_from_iter([
            (
                "t",
                Arc::new(Int64Array::from(vec![5, 20, 7, 30, 12, 40])) as _,
            ),
            (
                "wm",
                Arc::new(Int64Array::from(vec![
                    None,
                    Some(10),
                    None,
                    None,
                    None,
                    None,
                ])) as _,
            ),
        ])
        .unwrap();
        let times = [5, 20, 7, 30, 12, 40];
        let mut g = WatermarkStrategy::from_column("wm").generator();
        // after row 1 the watermark is 10: row 2 (7) is late, row 4 (12) is not
        let keep = g.on_batch(&batch, &times).unwrap();
        assert_eq!(kept(&keep, 6), vec![true, true, false, true, true, true]);
        assert_eq!(g.current(), Some(10));

        let mut g = WatermarkStrategy::from_predicate(col("t").gt_eq(lit(30))).generator();
        let keep = g.on_batch(&batch, &times).unwrap();
        // row 3 (30) sets the watermark to 30: row 4 (12) is late
        assert_eq!(kept(&keep, 6), vec![true, true, true, true, false, true]);
        assert_eq!(g.current(), Some(40));
        let schema = batch.schema();
        assert!(WatermarkStrategy::from_column("nope")
            .validate(&schema, "x")
            .is_err());
        assert!(WatermarkStrategy::from_predicate(col("t"))
            .validate(&schema, "x")
            .is_err());
    }

    #[test]
    fn initial_watermark_uses_statistics() {
        let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2));
        assert_eq!(s.initial_watermark(Some(10_000)), 7_999);
        assert_eq!(s.initial_watermark(None), i64::MIN);
        assert_eq!(
            WatermarkStrategy::from_column("w").initial_watermark(Some(10)),
            9
        );
    }
}
