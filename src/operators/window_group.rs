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
use crate::key::{KeyDictionary, KeyEncoder, KeyHandle};
use crate::memory::{ConsumerKind, MemoryReservation};
use crate::message::Watermark;
use crate::operator::{Ctx, Operator, OperatorMetrics, Output};
use crate::operators::keyed_state::{self, check_layout, column, key_groups};
use crate::state::{StateReader, StateWriter};
use crate::time::Window;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeSet;
use std::sync::Arc;

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
    /// The hold on each live group's key, by group id.
    live: Vec<Option<KeyHandle>>,
    due: BTreeSet<(i64, u32)>,
    watermark: i64,
    // resources
    /// The groups and key dictionary (made by `open`).
    reservation: MemoryReservation,
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
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
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
            if let Some(held) = self.live[id as usize].take() {
                self.dictionary.release(held);
            }
        }
        Ok(())
    }

    fn sync(&mut self, _ctx: &Ctx) -> Result<()> {
        let bytes = self.dictionary.memory_size()
            + self.due.len() * 32
            + self
                .accs
                .iter()
                .map(Accumulators::memory_size)
                .sum::<usize>();
        self.reservation.try_resize(bytes)
    }
}

/// The keyed state entry: `key | end | partial states...`, one row per open
/// group; `key` is the encoded group (keys, window_start, window_end: the
/// columns the input is hash-partitioned by).
const GROUPS: &str = "window_group.groups";
/// The unkeyed entry: the watermark (`i64::MIN` before the first).
const WATERMARK: &str = "window_group.watermark";

impl WindowGroupAggregate {
    /// The layout of [`GROUPS`].
    fn state_layout(&self) -> SchemaRef {
        keyed_state::layout(
            vec![
                Field::new("key", DataType::Binary, false),
                Field::new("end", DataType::Int64, false),
            ],
            &self.aggs,
        )
    }

    /// Writes every open group (in firing order) and the watermark.
    fn write_state(&self, state: &mut StateWriter) -> Result<()> {
        state.put(WATERMARK, &self.watermark)?;
        let open: Vec<(i64, u32)> = self.due.iter().copied().collect();
        for chunk in open.chunks(8192) {
            let ids: Vec<u32> = chunk.iter().map(|&(_, id)| id).collect();
            let keys = BinaryArray::from_iter_values(ids.iter().map(|&id| self.dictionary.key(id)));
            let groups = key_groups(keys.iter().flatten());
            let ends = Int64Array::from_iter_values(chunk.iter().map(|&(end, _)| end));
            let mut columns: Vec<ArrayRef> = vec![Arc::new(keys), Arc::new(ends)];
            columns.extend(keyed_state::acc_columns(&self.accs, &ids)?);
            let batch = RecordBatch::try_new(self.state_layout(), columns)?;
            state.put_keyed(GROUPS, &batch, &groups)?;
        }
        Ok(())
    }

    /// Reads the groups this subtask owns; after a rescale the watermark is
    /// the highest saved (all subtasks saw the same watermarks).
    fn read_state(&mut self, state: &StateReader, operator: &str) -> Result<()> {
        for w in state.values::<i64>(WATERMARK)? {
            self.watermark = self.watermark.max(w);
        }
        let layout = self.state_layout();
        for batch in state.keyed(GROUPS)? {
            check_layout(&batch, &layout, GROUPS, operator)?;
            let keys = column::<BinaryArray>(&batch, "key", GROUPS, operator)?;
            let ends = column::<Int64Array>(&batch, "end", GROUPS, operator)?;
            let mut ids = Vec::with_capacity(batch.num_rows());
            for r in 0..batch.num_rows() {
                let id = self.dictionary.intern(keys.value(r));
                let slot = id as usize;
                if slot >= self.live.len() {
                    self.live.resize_with(slot + 1, || None);
                    for a in &mut self.accs {
                        a.resize(slot + 1);
                    }
                }
                if self.live[slot].is_none() {
                    self.live[slot] = Some(self.dictionary.hold(id));
                    self.due.insert((ends.value(r), id));
                }
                ids.push(id);
            }
            keyed_state::merge_acc_columns(&mut self.accs, &self.aggs, &ids, &batch, 2)?;
        }
        Ok(())
    }
}

impl Operator for WindowGroupAggregate {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.reservation = ctx.spillable_reservation();
        Ok(())
    }

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
                self.live.resize_with(slot + 1, || None);
                for a in &mut self.accs {
                    a.resize(slot + 1);
                }
            }
            if self.live[slot].is_none() {
                self.live[slot] = Some(self.dictionary.hold(id));
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

    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        self.write_state(state)
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.read_state(state, ctx.operator())
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))?;
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

#[cfg(test)]
mod checkpoint_tests {
    use super::*;
    use crate::operator::TaskInfo;
    use crate::operators::checkpoint_events::assert_restores;
    use crate::operators::checkpoint_harness::{encoders, Event};
    use arrow_array::StringArray;

    /// Output of an upstream sliding window (size 1000, slide 500): rows of
    /// windows ending at `e` and `e + 500` arrive, then the watermark `e - 1`.
    fn window_output() -> Vec<Event> {
        let mut ev = Vec::new();
        let mut seed = 17u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for w in 1..16i64 {
            for part in 0..2i64 {
                let end = (w + part) * 500;
                let n = 2 + next(4) as usize;
                let keys: Vec<String> = (0..n).map(|_| format!("k{}", next(5))).collect();
                let batch = RecordBatch::try_from_iter([
                    ("k", Arc::new(StringArray::from(keys)) as ArrayRef),
                    (
                        "window_start",
                        Arc::new(Int64Array::from(vec![end - 1000; n])) as _,
                    ),
                    ("window_end", Arc::new(Int64Array::from(vec![end; n])) as _),
                    (
                        "n",
                        Arc::new(Int64Array::from_iter_values((0..n).map(|_| next(9) as i64))) as _,
                    ),
                ])
                .expect("columns of equal length");
                ev.push(Event::Batch(0, batch));
            }
            ev.push(Event::Watermark(w * 500 - 1));
        }
        // a row of a fired window (a guard: a window never emits it) is dropped
        let late = RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(vec!["k1"])) as ArrayRef),
            ("window_start", Arc::new(Int64Array::from(vec![-500])) as _),
            ("window_end", Arc::new(Int64Array::from(vec![500])) as _),
            ("n", Arc::new(Int64Array::from(vec![100])) as _),
        ])
        .expect("columns of equal length");
        ev.push(Event::Batch(0, late));
        ev
    }

    fn make(keys: &'static [&'static str]) -> impl Fn(&TaskInfo) -> Result<Box<dyn Operator>> {
        move |info: &TaskInfo| {
            let schema = match &window_output()[0] {
                Event::Batch(_, b) => b.schema(),
                Event::Watermark(_) => unreachable!("the first event is a batch"),
            };
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            let aggs = [
                Agg::max("n"),
                Agg::sum("n").alias("total"),
                Agg::count().alias("rows"),
            ];
            Ok(Box::new(WindowGroupAggregate::try_new(
                &schema,
                &keys,
                &aggs,
                &info.operator,
            )?) as _)
        }
    }

    #[test]
    fn per_window_groups_restore_at_every_cut_and_parallelism() {
        let ev = window_output();
        let Event::Batch(_, first) = &ev[0] else {
            unreachable!("the first event is a batch")
        };
        let schema = first.schema();
        // the edge is hash-partitioned by the keys and both window bounds
        let cuts = [0, 1, 2, ev.len() / 2, ev.len() / 2 + 1, ev.len() - 1];
        let by_window = encoders(&[&schema], &[&["window_start", "window_end"]]);
        assert_restores(&make(&[]), &by_window, &ev, &cuts);
        let by_key = encoders(&[&schema], &[&["k", "window_start", "window_end"]]);
        assert_restores(&make(&["k"]), &by_key, &ev, &cuts);
    }
}
