//! Ingestion time: stamping rows with the wall-clock time they entered weir.

use arrow_array::{RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, Output};
use weir_core::state::{StateReader, StateWriter};

/// Appends a `Timestamp(ms, UTC)` column holding the processing time at
/// which each batch passed, never decreasing within a subtask, and emits a
/// watermark just below it after every batch, so no row is ever late.
///
/// ```text
///  batch ──► + column `ingested_at` = max(now, last stamp) ──► batch
///        ──► Watermark(stamp - 1)
/// ```
/// Results over ingestion time depend on when rows arrive, so they differ
/// between runs (use event time for reproducible results). Upstream
/// watermarks are replaced, except the final `Watermark::MAX`.
#[derive(Debug, Clone)]
pub struct IngestionTime {
    // config
    schema: SchemaRef,
    // state
    last: i64,
}

impl IngestionTime {
    /// The output schema: `input` plus `column`.
    pub fn output_schema(input: &Schema, column: &str) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(
            column,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ));
        Arc::new(Schema::new(fields))
    }

    /// Stamps into `column` (which must not exist yet).
    pub fn new(input: &Schema, column: &str) -> Self {
        IngestionTime {
            schema: Self::output_schema(input, column),
            last: i64::MIN,
        }
    }
}

impl Operator for IngestionTime {
    fn snapshot(&mut self, _: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        state.put("last", &self.last)
    }

    fn restore(&mut self, _: &mut Ctx, state: &StateReader) -> Result<()> {
        // after a rescale: the latest stamp of any old subtask keeps time monotonic
        self.last = state
            .values::<i64>("last")?
            .into_iter()
            .fold(self.last, i64::max);
        Ok(())
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        self.last = self.last.max(ctx.processing_time());
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(
            TimestampMillisecondArray::from(vec![self.last; batch.num_rows()]).with_timezone("UTC"),
        ));
        out.emit(RecordBatch::try_new(self.schema.clone(), columns)?);
        out.emit_watermark(Watermark::EventTime(self.last - 1));
        Ok(())
    }

    fn on_watermark(&mut self, wm: Watermark, _: &mut Ctx, out: &mut Output) -> Result<()> {
        if wm == Watermark::MAX {
            out.emit_watermark(wm);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basic::tests::test_ctx;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMillisecondType;
    use arrow_array::Int64Array;
    use weir_core::message::Message;

    #[test]
    fn stamps_rows_with_non_decreasing_wall_clock_time_and_watermarks_below_it() {
        let b = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2])) as _)])
            .unwrap();
        let mut op = IngestionTime::new(&b.schema(), "ingested_at");
        let (mut ctx, mut out) = (test_ctx(), Output::new());
        let before = weir_core::operator::now_ms();
        op.on_batch(0, b.clone(), &mut ctx, &mut out).unwrap();
        op.on_batch(0, b, &mut ctx, &mut out).unwrap();
        let after = weir_core::operator::now_ms();
        let msgs = out.take();
        let mut stamps = Vec::new();
        for m in &msgs {
            match m {
                Message::Data(b) => {
                    let c = b.column(1).as_primitive::<TimestampMillisecondType>();
                    stamps.extend(c.values().iter().copied());
                }
                Message::Watermark(Watermark::EventTime(w)) => {
                    assert!(*w < stamps[stamps.len() - 1] + 1)
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(stamps.len(), 4);
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
        assert!(stamps[0] >= before && stamps[3] <= after);
    }
}
