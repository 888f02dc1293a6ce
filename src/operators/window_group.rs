//! Aggregation of rows that already carry a window (cascading windows):
//! group by keys and `window_start`/`window_end`, fire when the watermark
//! passes the window's end.
//!
//! Owns [`WindowGroupAggregate`]. May use the aggregate accumulators,
//! `crate::operator`, `crate::key`, `crate::memory`, `crate::error` and the
//! arrow crates.

use super::aggregate::{Accumulators, Agg, BoundAgg};
use super::window::WindowAggregate;
use crate::error::{Error, Result};
use crate::key::{KeyDictionary, KeyEncoder};
use crate::memory::MemoryReservation;
use crate::message::Watermark;
use crate::operator::{Ctx, Operator, OperatorMetrics, Output};
use crate::time::Window;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use std::collections::BTreeSet;

/// Groups rows by (keys, `window_start`, `window_end`) and emits each
/// group's aggregates once the watermark passes the window's end: the
/// second level of a cascade (e.g. the largest count per window over the
/// counts a window aggregate emitted).
///
/// ```text
///  row (keys, ws, we) ──► group id (KeyDictionary) ──► accumulators; due += (we, id)
///  watermark W ──► groups with we - 1 <= W: key columns | ws | we | aggregates ──► dropped
///  a row whose window already fired (we - 1 <= W on arrival) is late: counted, dropped
/// ```
/// Upstream window operators emit a window's rows before they forward the
/// watermark that closes it, so every row of a window arrives before it
/// fires, in every mode: the output is final (no `op` column).
pub struct WindowGroupAggregate {
    // config
    keys: KeyEncoder,
    end_column: usize,
    aggs: Vec<BoundAgg>,
    schema: SchemaRef,
    // state
    dictionary: KeyDictionary,
    accs: Vec<Accumulators>,
    live: Vec<bool>,
    due: BTreeSet<(i64, u32)>,
    watermark: i64,
    // resources
    reservation: Option<MemoryReservation>,
}

impl std::fmt::Debug for WindowGroupAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowGroupAggregate")
            .field("groups", &self.due.len())
            .finish()
    }
}

impl WindowGroupAggregate {
    /// Aggregates `aggs` per `keys` (may be empty) and window of `input`,
    /// which must have Int64 `window_start` and `window_end` columns.
    pub fn try_new(input: &Schema, keys: &[String], aggs: &[Agg], context: &str) -> Result<Self> {
        if aggs.is_empty() {
            return Err(Error::option(
                "aggregates",
                "an aggregation needs at least one aggregate",
            ));
        }
        if input.index_of(super::window::OP_COLUMN).is_ok() {
            return Err(Error::column(
                super::window::OP_COLUMN,
                context,
                "the input is a changelog (early firings or allowed lateness); aggregating its updates again is not supported",
            ));
        }
        for c in ["window_start", "window_end"] {
            let f = input.field_with_name(c).map_err(|_| {
                Error::column(
                    c,
                    context,
                    "aggregating per window needs window_start and window_end (a window's output)",
                )
            })?;
            if f.data_type() != &DataType::Int64 {
                return Err(Error::column(c, context, "must be Int64 (epoch ms)"));
            }
        }
        let aggs_bound = aggs
            .iter()
            .map(|a| a.bind(input, context))
            .collect::<Result<Vec<_>>>()?;
        if let Some(a) = aggs_bound
            .iter()
            .find(|a| Accumulators::new(a).uses_times())
        {
            return Err(Error::column(
                a.field.name(),
                context,
                "first and last need event time, which window output does not have",
            ));
        }
        let mut group_columns: Vec<String> = keys.to_vec();
        group_columns.extend(["window_start".to_string(), "window_end".to_string()]);
        Ok(WindowGroupAggregate {
            keys: KeyEncoder::try_new(input, &group_columns, context)?,
            end_column: input.index_of("window_end").expect("checked above"),
            schema: WindowAggregate::output_schema(input, keys, aggs, false, context)?,
            accs: aggs_bound.iter().map(Accumulators::new).collect(),
            aggs: aggs_bound,
            dictionary: KeyDictionary::new(),
            live: Vec::new(),
            due: BTreeSet::new(),
            watermark: i64::MIN,
            reservation: None,
        })
    }

    /// The output schema: keys, `window_start`, `window_end`, aggregates.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Emits and drops every group whose window ends at or before `t + 1`.
    fn fire(&mut self, t: i64, out: &mut Output) -> Result<()> {
        let mut ids = Vec::new();
        while let Some(&(end, id)) = self.due.first() {
            if Window::max_timestamp(end) > t {
                break;
            }
            self.due.pop_first();
            ids.push(id);
        }
        for chunk in ids.chunks(8192) {
            let parser = self.keys.converter().parser();
            let mut columns: Vec<ArrayRef> = self.keys.converter().convert_rows(
                chunk
                    .iter()
                    .map(|&id| parser.parse(self.dictionary.key(id))),
            )?;
            for (acc, agg) in self.accs.iter().zip(&self.aggs) {
                columns.push(acc.finish(chunk, agg)?);
            }
            out.emit(RecordBatch::try_new(self.schema.clone(), columns)?);
        }
        for id in ids {
            for a in &mut self.accs {
                a.reset(id);
            }
            self.live[id as usize] = false;
            self.dictionary.release(id);
        }
        Ok(())
    }

    fn sync(&mut self, ctx: &Ctx) -> Result<()> {
        let bytes = self.dictionary.memory_size()
            + self.due.len() * 32
            + self
                .accs
                .iter()
                .map(Accumulators::memory_size)
                .sum::<usize>();
        self.reservation
            .get_or_insert_with(|| MemoryReservation::new(ctx.pool(), ctx.operator()))
            .try_resize(bytes)
    }
}

impl Operator for WindowGroupAggregate {
    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        _out: &mut Output,
    ) -> Result<()> {
        let encoded = self.keys.encode(&batch)?;
        let ends = batch.column(self.end_column).as_primitive::<Int64Type>();
        let (mut groups, mut rows) = (Vec::new(), Vec::new());
        let mut late = 0u64;
        for r in 0..batch.num_rows() {
            let end = ends.value(r);
            if Window::max_timestamp(end) <= self.watermark {
                late += 1;
                continue;
            }
            let id = self.dictionary.intern(encoded.row(r).as_ref());
            let slot = id as usize;
            if slot >= self.live.len() {
                self.live.resize(slot + 1, false);
                for a in &mut self.accs {
                    a.resize(slot + 1);
                }
            }
            if !self.live[slot] {
                self.live[slot] = true;
                self.dictionary.retain(id);
                self.due.insert((end, id));
            }
            groups.push(id);
            rows.push(r as u32);
        }
        if late > 0 {
            OperatorMetrics::add(&ctx.metrics().late_rows, late);
        }
        for (acc, agg) in self.accs.iter_mut().zip(&self.aggs) {
            let values = agg.values(batch.columns())?;
            acc.update(&groups, &rows, &values, &[], agg.field.name())?;
        }
        self.sync(ctx)
    }

    fn on_watermark(&mut self, wm: Watermark, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            self.fire(t, out)?;
            self.watermark = self.watermark.max(t);
            self.sync(ctx)?;
        }
        out.emit_watermark(wm);
        Ok(())
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.fire(i64::MAX, out)?;
        self.sync(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Field;

    #[test]
    fn a_changelog_input_is_refused_with_the_op_column_named() {
        let schema = Schema::new(vec![
            Field::new("window_start", DataType::Int64, false),
            Field::new("window_end", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
            Field::new("op", DataType::Utf8, false),
        ]);
        let err = WindowGroupAggregate::try_new(&schema, &[], &[Agg::sum("n")], "per_window")
            .unwrap_err()
            .to_string();
        assert!(err.contains("op") && err.contains("changelog"), "{err}");
        let plain = Schema::new(schema.fields()[..3].to_vec());
        assert!(WindowGroupAggregate::try_new(&plain, &[], &[Agg::sum("n")], "per_window").is_ok());
    }
}
