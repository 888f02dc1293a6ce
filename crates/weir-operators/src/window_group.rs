//! Aggregation of rows that already carry a window (cascading windows):
//! group by keys and `window_start`/`window_end`, fire when the watermark
//! passes the window's end.
//!
//! Owns [`WindowGroupAggregate`]. Its state has the shape of window panes
//! (per window, per group key, partial states), so it lives in the window
//! operator's [`Pane`]s and spills through its [`SpilledPanes`]. May use the
//! aggregate accumulators, the window operator's panes and spill runs,
//! `weir_core::operator`, `weir_core::key`, `weir_core::memory`, `weir_core::state`,
//! `weir_core::error` and the arrow crates.

use super::window::{merge_run_rows, Pane, SpilledPanes, WindowAggregate};
use crate::keyed_state::{self, check_layout, key_groups};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, BinaryArray, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{KeyDictionary, KeyEncoder};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, OperatorMetrics, Output};
use weir_core::spill::SpillManager;
use weir_core::state::store::{self, SpillableState};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::Window;
use weir_functions::aggregate::{Accumulators, Agg, BoundAgg};

/// Rows per emitted batch.
const CHUNK: usize = 8192;

/// Groups rows by (keys, `window_start`, `window_end`) and emits each
/// group's aggregates once the watermark passes the window's end: the
/// second level of a cascade (e.g. the largest count per window over the
/// counts a window aggregate emitted).
///
/// ```text
///  row (keys, ws, we) ──► window[we - 1] (a Pane) : group id (KeyDictionary) ──► slot ──► partial states
///  a row whose window already fired (we - 1 <= W on arrival) is late: counted, dropped
///  pool refuses (store::sync) ──► every window as one run of SpilledPanes, sorted by
///      (we - 1, group key bytes): pane | key | partial states ──► windows dropped,
///      key handles released, keys forgotten (memory back to the pool)
///  watermark W ──► windows with we - 1 <= W fire:
///      no runs, or their due rows fit one read-back step ──► due rows read back into
///          memory (merge_state) ──► key columns | ws | we | aggregates ──► dropped
///      otherwise ──► in-memory windows spilled too ──► k-way merge of the runs'
///          prefixes (we - 1 <= W) on (we - 1, key), equal rows merged, a chunk at a
///          time in the fixed read-back reservation ──► results (keys, ws, we decoded
///          from the key bytes); later windows stay in their runs, unread
///  checkpoint ──► in-memory windows + rows left in the runs, in the run layout
/// ```
/// Upstream window operators emit a window's rows before they forward the
/// watermark that closes it, so every row of a window arrives before it
/// fires, in every mode: the output is final (no `op` column). Each window
/// is one pane no other window shares (a tumbling window's shape), so a
/// window fires straight from the runs like a tumbling window does.
pub struct WindowGroupAggregate {
    // config
    keys: KeyEncoder,
    end_column: usize,
    aggs: Vec<BoundAgg>,
    schema: SchemaRef,
    // state
    dictionary: KeyDictionary,
    /// Open windows in memory by the watermark that fires them
    /// (`window_end - 1`): group key (keys, ws, we) -> partial states.
    windows: BTreeMap<i64, Pane>,
    watermark: i64,
    // resources
    /// The in-memory windows and key dictionary (spillable; made by `open`).
    reservation: MemoryReservation,
    /// Spilled rows read back to fire, until they are emitted (fixed).
    read_back: MemoryReservation,
    spilled: SpilledPanes,
}

impl std::fmt::Debug for WindowGroupAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowGroupAggregate")
            .field("windows", &self.windows.len())
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
            spilled: SpilledPanes::new(&aggs_bound),
            aggs: aggs_bound,
            dictionary: KeyDictionary::new(),
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
        })
    }

    /// The output schema: keys, `window_start`, `window_end`, aggregates.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The bytes the in-memory windows and the key dictionary take.
    fn state_bytes(&self) -> usize {
        self.dictionary.memory_size() + self.windows.values().map(Pane::memory_size).sum::<usize>()
    }

    /// Adds the rows of `batch` to their windows' partial states; rows of
    /// windows that already fired are counted late and dropped.
    fn add(&mut self, batch: &RecordBatch, ctx: &Ctx) -> Result<()> {
        let encoded = self.keys.encode(batch)?;
        let ends = batch.column(self.end_column).as_primitive::<Int64Type>();
        // (the watermark firing the row's window, row), grouped by window
        let mut order: Vec<(i64, u32)> = Vec::with_capacity(batch.num_rows());
        let mut late = 0u64;
        for (r, &end) in ends.values().iter().enumerate() {
            let fires_at = Window::max_timestamp(end);
            if fires_at <= self.watermark {
                late += 1;
            } else {
                order.push((fires_at, r as u32));
            }
        }
        if late > 0 {
            OperatorMetrics::add(&ctx.metrics().late_rows, late);
        }
        if order.windows(2).any(|w| w[0].0 > w[1].0) {
            order.sort_unstable();
        }
        let values = self
            .aggs
            .iter()
            .map(|a| a.values(batch.columns()))
            .collect::<Result<Vec<_>>>()?;
        let (mut groups, mut rows) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < order.len() {
            let fires_at = order[i].0;
            let j = i + order[i..].partition_point(|o| o.0 == fires_at);
            let pane = self
                .windows
                .entry(fires_at)
                .or_insert_with(|| Pane::new(&self.aggs, 0));
            groups.clear();
            rows.clear();
            for &(_, r) in &order[i..j] {
                let id = self.dictionary.intern(encoded.row(r as usize).as_ref());
                groups.push(pane.slot(&mut self.dictionary, id));
                rows.push(r);
            }
            let n = pane.key_ids.len();
            for ((acc, agg), vals) in pane.accs.iter_mut().zip(&self.aggs).zip(&values) {
                acc.resize(n);
                acc.update(&groups, &rows, vals, &[], agg.field.name())?;
            }
            i = j;
        }
        Ok(())
    }

    /// Emits and drops every window fired by watermark `t` (ending at or
    /// before `t + 1`), spilled or in memory.
    fn fire(&mut self, t: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        // windows firing at `t` or before: fires_at < boundary
        let boundary = t.saturating_add(1);
        if !self.spilled.is_empty() {
            if self.spilled.due_fits(boundary)? {
                self.hydrate(boundary)?;
            } else {
                self.fire_from_runs(boundary, ctx, out)?;
            }
        }
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() >= boundary {
                break;
            }
            let pane = entry.remove();
            let emitted = self.emit_pane(&pane, out);
            self.dictionary.release_all(pane.key_ids);
            emitted?;
        }
        Ok(())
    }

    /// Reads the spilled rows of windows firing before `boundary` back into
    /// memory (they fit one read-back step), merged into the in-memory
    /// windows. What the state grows by is counted at once; the sync after
    /// firing releases it.
    fn hydrate(&mut self, boundary: i64) -> Result<()> {
        for batch in self.spilled.take_up_to(boundary)? {
            self.spilled.merge_into(
                &mut self.windows,
                &mut self.dictionary,
                &self.aggs,
                0,
                &batch,
            )?;
        }
        let beyond = self.state_bytes().saturating_sub(self.reservation.size());
        self.reservation.grow(beyond);
        Ok(())
    }

    /// Fires the windows before `boundary` by a merge of the runs, a chunk
    /// of groups at a time, instead of reading them back whole: the
    /// in-memory windows are spilled first, so each group comes out of the
    /// merge once with its partial states merged. The merge's batches are
    /// held in the fixed read-back reservation.
    fn fire_from_runs(&mut self, boundary: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if self.windows.range(..boundary).next().is_some() {
            let before = self.state_bytes();
            SpillableState::spill(self, ctx.spill())?;
            let freed = before.saturating_sub(self.state_bytes());
            let consumer = SpillableState::reservation(self).consumer().to_string();
            ctx.spill()
                .metrics()
                .record_state_spilled_by(&consumer, freed as u64);
            store::sync(self, ctx.spill())?;
        }
        let name = self.reservation.consumer().to_string();
        store::reserve_step(&mut self.read_back, self.spilled.merge_bytes());
        let widths = self.spilled.widths().to_vec();
        let (keys, aggs, schema) = (&self.keys, &self.aggs, &self.schema);
        let mut fire = |batch: &RecordBatch| -> Result<()> {
            out.emit(run_results(batch, keys, aggs, &widths, schema)?);
            Ok(())
        };
        let result = self
            .spilled
            .fire_through(boundary, aggs, ctx.spill(), &name, &mut fire);
        self.read_back.free();
        result
    }

    /// Emits the results of one in-memory window, [`CHUNK`] groups per batch.
    fn emit_pane(&self, pane: &Pane, out: &mut Output) -> Result<()> {
        let slots: Vec<u32> = (0..pane.key_ids.len() as u32).collect();
        let parser = self.keys.converter().parser();
        for chunk in slots.chunks(CHUNK) {
            let mut columns: Vec<ArrayRef> = self.keys.converter().convert_rows(
                chunk
                    .iter()
                    .map(|&s| parser.parse(self.dictionary.key(pane.key_ids[s as usize].id()))),
            )?;
            for (acc, agg) in pane.accs.iter().zip(&self.aggs) {
                columns.push(acc.finish(chunk, agg)?);
            }
            out.emit(RecordBatch::try_new(self.schema.clone(), columns)?);
        }
        Ok(())
    }

    /// Matches the reservation to the state, spilling every window while
    /// the pool refuses (see [`store::sync`]); rows read back to fire are
    /// released from the fixed reservation first.
    fn sync(&mut self, ctx: &Ctx) -> Result<()> {
        self.read_back.free();
        store::sync(self, ctx.spill())
    }
}

/// The results of merged run rows (`pane | key | partial states`, one row
/// per group): the key columns (keys, ws, we) decoded from the key bytes,
/// then the aggregates.
fn run_results(
    batch: &RecordBatch,
    keys: &KeyEncoder,
    aggs: &[BoundAgg],
    widths: &[usize],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let key_bytes = batch
        .column(1)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .expect("run layout: key is Binary");
    let n = batch.num_rows();
    let slots: Vec<u32> = (0..n as u32).collect();
    let mut accs: Vec<Accumulators> = aggs.iter().map(Accumulators::new).collect();
    merge_run_rows(&mut accs, widths, batch, 0, &slots, n)?;
    let parser = keys.converter().parser();
    let mut columns: Vec<ArrayRef> = keys
        .converter()
        .convert_rows(key_bytes.iter().flatten().map(|k| parser.parse(k)))?;
    for (acc, agg) in accs.iter().zip(aggs) {
        columns.push(acc.finish(&slots, agg)?);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

impl SpillableState for WindowGroupAggregate {
    fn memory_bytes(&self) -> usize {
        self.state_bytes()
    }

    fn can_spill(&self) -> bool {
        !self.windows.is_empty()
    }

    /// Writes every in-memory window as one run sorted by (fires at, key)
    /// and drops them; keys only they held are forgotten.
    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        let name = self.reservation.consumer().to_string();
        self.spilled
            .spill(&self.windows, &self.dictionary, spill, &name)?;
        for (_, pane) in std::mem::take(&mut self.windows) {
            self.dictionary.release_all(pane.key_ids);
        }
        self.dictionary.shrink();
        Ok(())
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}

/// The keyed state entry, in the run layout: `pane | key | partial
/// states...`, one row per open group (in memory or spilled); `pane` is the
/// watermark that fires the group's window (`window_end - 1`), `key` the
/// encoded group (keys, window_start, window_end: the columns the input is
/// hash-partitioned by).
const GROUPS: &str = "window_group.groups";
/// The unkeyed entry: the watermark (`i64::MIN` before the first).
const WATERMARK: &str = "window_group.watermark";

impl WindowGroupAggregate {
    /// Writes every open group (in memory, then the rows left in the runs)
    /// and the watermark.
    fn write_state(&self, state: &mut StateWriter) -> Result<()> {
        state.put(WATERMARK, &self.watermark)?;
        let mut batches = self
            .spilled
            .pane_batches(&self.windows, &self.dictionary, false)?;
        batches.extend(self.spilled.remaining()?);
        for batch in &batches {
            let keys = batch
                .column(1)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .expect("run layout: key is Binary");
            state.put_keyed(GROUPS, batch, &key_groups(keys.iter().flatten()))?;
        }
        Ok(())
    }

    /// Reads the groups this subtask owns, syncing after each batch (which
    /// spills if the pool refuses); after a rescale the watermark is the
    /// highest saved (all subtasks saw the same watermarks).
    fn read_state(&mut self, state: &StateReader, ctx: &Ctx) -> Result<()> {
        for w in state.values::<i64>(WATERMARK)? {
            self.watermark = self.watermark.max(w);
        }
        let layout = self.spilled.schema().clone();
        for batch in state.keyed(GROUPS)? {
            check_layout(&batch, &layout, GROUPS, ctx.operator())?;
            self.spilled.merge_into(
                &mut self.windows,
                &mut self.dictionary,
                &self.aggs,
                0,
                &batch,
            )?;
            self.sync(ctx)?;
        }
        Ok(())
    }
}

impl Operator for WindowGroupAggregate {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.reservation = ctx.spillable_reservation();
        self.read_back = ctx.fixed_reservation("read-back");
        // two read-back steps: the merge that fires windows from the runs
        self.spilled
            .set_read_back(2 * store::step_bytes(self.read_back.pool()));
        Ok(())
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        _out: &mut Output,
    ) -> Result<()> {
        self.add(&batch, ctx)?;
        self.sync(ctx)
    }

    fn on_watermark(&mut self, wm: Watermark, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            self.fire(t, ctx, out)?;
            self.watermark = self.watermark.max(t);
            self.sync(ctx)?;
        }
        out.emit_watermark(wm);
        Ok(())
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.fire(i64::MAX, ctx, out)?;
        self.sync(ctx)
    }

    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        // one row per spilled group: the checkpoint holds the logical
        // state, not every run written since the window opened
        if self.spilled.worth_compacting() {
            let name = ctx.operator().to_string();
            self.spilled
                .compact(&self.aggs, ctx.spill(), &name)
                .map_err(|e| keyed_state::with_operator(e, ctx.operator()))?;
        }
        self.write_state(state)
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.read_state(state, ctx)
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
    use crate::checkpoint_events::{assert_restores, assert_restores_spilled};
    use crate::checkpoint_harness::{encoders, Event};
    use arrow_array::{Int64Array, StringArray};
    use weir_core::operator::TaskInfo;

    /// Output of an upstream sliding window (size 1000, slide 500): rows of
    /// windows ending at `e` and `e + 500` arrive, then the watermark `e - 1`.
    fn window_output() -> Vec<Event> {
        window_output_of(4, 5)
    }

    /// [`window_output`] with up to `rows` rows per batch (at least 2) of
    /// keys `k0..k{keys - 1}`.
    fn window_output_of(rows: u64, keys: u64) -> Vec<Event> {
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
                let n = 2 + next(rows) as usize;
                let keys: Vec<String> = (0..n).map(|_| format!("k{}", next(keys))).collect();
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

    #[test]
    fn spilled_groups_are_in_the_snapshot() {
        // ~200 keys per window: far more than a 32 KiB budget holds
        let ev = window_output_of(400, 1000);
        let Event::Batch(_, first) = &ev[0] else {
            unreachable!("the first event is a batch")
        };
        let by_key = encoders(&[&first.schema()], &[&["k", "window_start", "window_end"]]);
        assert_restores_spilled(&make(&["k"]), &by_key, &ev, ev.len() / 2, 32 * 1024);
    }
}
