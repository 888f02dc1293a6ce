//! Timestamp assignment in the middle of a stream.
//!
//! Sources assign timestamps per split themselves (see
//! [`super::ParquetSource`]); this operator serves streams whose time column
//! is only known after some transformation. It treats its whole input as one
//! ordered stream, so its lateness decisions are as deterministic as the
//! order of its input.

use crate::error::Result;
use crate::message::Watermark;
use crate::operator::{Ctx, Operator, OperatorMetrics, Output};
use crate::time::{event_times, WatermarkGenerator, WatermarkStrategy};
use arrow_array::RecordBatch;

/// Reads event times from a column, drops (and counts) late rows, and emits
/// watermarks following a [`WatermarkStrategy`]. Upstream watermarks are
/// replaced, except the final `Watermark::MAX` and `Idle`.
#[derive(Debug, Clone)]
pub struct AssignTimestamps {
    // config
    column: usize,
    // state
    generator: WatermarkGenerator,
    emitted: Option<i64>,
}

impl AssignTimestamps {
    /// Uses the column at index `column` (validated by the caller).
    pub fn new(column: usize, strategy: WatermarkStrategy) -> Self {
        AssignTimestamps {
            column,
            generator: strategy.generator(),
            emitted: None,
        }
    }
}

impl Operator for AssignTimestamps {
    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let times = event_times(&batch, self.column, ctx.operator())?;
        let keep = self.generator.on_times(&times);
        match keep {
            None => out.emit(batch),
            Some(mask) => {
                let late = mask.len() - mask.true_count();
                OperatorMetrics::add(&ctx.metrics().late_rows, late as u64);
                out.emit(arrow_select::filter::filter_record_batch(&batch, &mask)?);
            }
        }
        if let Some(wm) = self.generator.current() {
            if self.emitted.is_none_or(|e| wm > e) {
                self.emitted = Some(wm);
                out.emit_watermark(Watermark::EventTime(wm));
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: Watermark, _: &mut Ctx, out: &mut Output) -> Result<()> {
        if wm == Watermark::MAX || wm == Watermark::Idle {
            out.emit_watermark(wm);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::operators::basic::tests::test_ctx;
    use arrow_array::Int64Array;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn drops_late_rows_counts_them_and_emits_rising_watermarks() {
        let mut op = AssignTimestamps::new(
            0,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
        );
        let mut ctx = test_ctx();
        let mut out = Output::new();
        let b = |v: Vec<i64>| {
            RecordBatch::try_from_iter([("t", Arc::new(Int64Array::from(v)) as _)]).unwrap()
        };
        op.on_batch(0, b(vec![1000, 950, 800]), &mut ctx, &mut out)
            .unwrap();
        op.on_batch(0, b(vec![990, 1200]), &mut ctx, &mut out)
            .unwrap();
        op.on_watermark(Watermark::EventTime(5), &mut ctx, &mut out)
            .unwrap();
        op.on_watermark(Watermark::MAX, &mut ctx, &mut out).unwrap();
        let msgs = out.take();
        let rows: Vec<usize> = msgs.iter().map(|m| m.num_rows()).collect();
        let wms: Vec<Watermark> = msgs
            .iter()
            .filter_map(|m| match m {
                Message::Watermark(w) => Some(*w),
                _ => None,
            })
            .collect();
        // 800 is late (<= 1000 - 100 - 1); 990 is not (wm 899); 1200 advances.
        assert_eq!(rows.iter().sum::<usize>(), 4);
        assert_eq!(
            wms,
            vec![
                Watermark::EventTime(899),
                Watermark::EventTime(1099),
                Watermark::MAX
            ]
        );
        assert_eq!(ctx.metrics().late_rows.load(Ordering::Relaxed), 1);
    }
}
