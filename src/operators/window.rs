//! Keyed tumbling event-time window aggregation.

use super::aggregate::{Accumulators, Agg, BoundAgg};
use crate::error::{Error, Result};
use crate::key::{FastBuildHasher, KeyDictionary, KeyEncoder};
use crate::memory::MemoryReservation;
use crate::message::Watermark;
use crate::operator::{Ctx, Operator, OperatorMetrics, Output};
use crate::time::{event_times, validate_time_column, TumblingWindow};
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Aggregates rows per (key, tumbling window) and emits one row per group
/// when the watermark passes the window's end.
///
/// ```text
///  batch ─► window start per row ─► group rows by start ─► per window:
///            (t - offset) mod size                          key bytes ─► group id
///                                                           accumulators[agg][group] += value
///  watermark w ─► every window with start + size - 1 <= w fires, in start order:
///                 key columns | window_start | window_end | agg columns
/// ```
/// Keys are interned once in a [`KeyDictionary`] (shared by all open
/// windows); each window maps key ids to group slots. State is reserved from
/// the memory pool. A row whose window already fired is
/// late: it is counted in the operator's `late_rows` and not aggregated.
/// Output columns: the key columns, `window_start`, `window_end` (epoch ms,
/// end exclusive), then one column per aggregate.
pub struct TumblingWindowAggregate {
    // config
    window: TumblingWindow,
    time_column: usize,
    keys: KeyEncoder,
    aggs: Vec<BoundAgg>,
    schema: SchemaRef,
    // state
    windows: BTreeMap<i64, WindowState>,
    dictionary: KeyDictionary,
    fired_up_to: Option<i64>,
    /// Groups in the last fired window: the capacity hint for new windows.
    last_groups: usize,
    // resources
    reservation: Option<MemoryReservation>,
}

/// The groups of one window: key id -> group index, and the accumulators.
struct WindowState {
    groups: HashMap<u32, u32, FastBuildHasher>,
    key_ids: Vec<u32>,
    accs: Vec<Accumulators>,
    bytes: usize,
}

impl TumblingWindowAggregate {
    /// The output schema of a window over `input` keyed by `keys` computing `aggs`.
    pub fn output_schema(
        input: &Schema,
        keys: &[String],
        aggs: &[Agg],
        context: &str,
    ) -> Result<SchemaRef> {
        let mut fields = Vec::new();
        for k in keys {
            let f = input
                .field_with_name(k)
                .map_err(|_| Error::column(k, context, "key column not found"))?;
            fields.push(f.clone());
        }
        fields.push(Field::new("window_start", DataType::Int64, false));
        fields.push(Field::new("window_end", DataType::Int64, false));
        for a in aggs {
            fields.push(a.bind(input, context)?.field);
        }
        let names: Vec<&String> = fields.iter().map(|f| f.name()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(Error::option(
                    "aggregates",
                    format!("output column `{n}` appears twice; give aggregates distinct names"),
                ));
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// A window operator over `input`; validates every column.
    pub fn try_new(
        input: &Schema,
        time_column: &str,
        keys: &[String],
        window: TumblingWindow,
        aggs: &[Agg],
        context: &str,
    ) -> Result<Self> {
        window.validate()?;
        if aggs.is_empty() {
            return Err(Error::option(
                "aggregates",
                "a window needs at least one aggregate",
            ));
        }
        let time_column = validate_time_column(input, time_column, context)?;
        let key_encoder = KeyEncoder::try_new(input, keys, context)?;
        let schema = Self::output_schema(input, keys, aggs, context)?;
        let aggs = aggs
            .iter()
            .map(|a| a.bind(input, context))
            .collect::<Result<Vec<_>>>()?;
        Ok(TumblingWindowAggregate {
            window,
            time_column,
            keys: key_encoder,
            aggs,
            schema,
            windows: BTreeMap::new(),
            dictionary: KeyDictionary::new(),
            fired_up_to: None,
            last_groups: 0,
            reservation: None,
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn new_window(&self) -> WindowState {
        WindowState {
            groups: HashMap::with_capacity_and_hasher(self.last_groups, FastBuildHasher::default()),
            key_ids: Vec::with_capacity(self.last_groups),
            accs: self.aggs.iter().map(Accumulators::new).collect(),
            bytes: 0,
        }
    }

    fn per_group_bytes(&self) -> usize {
        let accs: usize = self
            .aggs
            .iter()
            .map(|a| Accumulators::new(a).bytes_per_group())
            .sum();
        accs + 48
    }

    /// Emits every window whose end the watermark `t` has passed.
    fn fire_up_to(&mut self, t: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        let boundary = t.saturating_sub(self.window.size_ms - 1).saturating_add(1);
        let keep = if t == i64::MAX {
            BTreeMap::new()
        } else {
            self.windows.split_off(&boundary)
        };
        let ready = std::mem::replace(&mut self.windows, keep);
        for (start, state) in ready {
            out.emit(self.emit_window(start, &state)?);
            self.last_groups = state.key_ids.len();
            let before = self.dictionary.memory_size();
            for &id in &state.key_ids {
                self.dictionary.release(id);
            }
            let freed = state.bytes + before - self.dictionary.memory_size();
            if let Some(r) = self.reservation.as_mut() {
                r.shrink(freed.min(r.size()));
            }
        }
        self.fired_up_to = Some(self.fired_up_to.map_or(t, |f| f.max(t)));
        let _ = ctx;
        Ok(())
    }

    fn emit_window(&self, start: i64, state: &WindowState) -> Result<RecordBatch> {
        let n = state.key_ids.len();
        let parser = self.keys.converter().parser();
        let rows = state
            .key_ids
            .iter()
            .map(|&id| parser.parse(self.dictionary.key(id)));
        let mut columns: Vec<ArrayRef> = self.keys.converter().convert_rows(rows)?;
        let end = start.saturating_add(self.window.size_ms);
        columns.push(Arc::new(Int64Array::from(vec![start; n])));
        columns.push(Arc::new(Int64Array::from(vec![end; n])));
        let order: Vec<u32> = (0..n as u32).collect();
        for (acc, agg) in state.accs.iter().zip(&self.aggs) {
            columns.push(acc.finish(&order, agg)?);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// Orders `(start, row)` pairs by window start: a counting sort when the
/// batch spans few windows (the usual case), else a comparison sort.
fn group_by_start(order: &mut Vec<(i64, u32)>, size: i64) {
    let (Some(min), Some(max)) = (
        order.iter().map(|o| o.0).min(),
        order.iter().map(|o| o.0).max(),
    ) else {
        return;
    };
    let span = (max - min) / size + 1;
    if span == 1 {
        return;
    }
    if span > 4096 {
        order.sort_unstable();
        return;
    }
    let bucket = |start: i64| ((start - min) / size) as usize;
    let mut offsets = vec![0usize; span as usize + 1];
    for o in order.iter() {
        offsets[bucket(o.0) + 1] += 1;
    }
    for i in 1..offsets.len() {
        offsets[i] += offsets[i - 1];
    }
    let mut sorted = vec![(0i64, 0u32); order.len()];
    for &o in order.iter() {
        let b = bucket(o.0);
        sorted[offsets[b]] = o;
        offsets[b] += 1;
    }
    *order = sorted;
}

impl Operator for TumblingWindowAggregate {
    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        let times = event_times(&batch, self.time_column, ctx.operator())?;
        let rows = self.keys.encode(&batch)?;
        let mut order: Vec<(i64, u32)> = Vec::with_capacity(times.len());
        let mut late = 0u64;
        for (i, &t) in times.iter().enumerate() {
            let start = self.window.start_of(t);
            if self
                .fired_up_to
                .is_some_and(|f| self.window.max_timestamp(start) <= f)
            {
                late += 1;
            } else {
                order.push((start, i as u32));
            }
        }
        if late > 0 {
            OperatorMetrics::add(&ctx.metrics().late_rows, late);
        }
        group_by_start(&mut order, self.window.size_ms);
        let columns = batch.columns();
        let values = self
            .aggs
            .iter()
            .map(|a| a.values(columns))
            .collect::<Result<Vec<_>>>()?;
        let per_group = self.per_group_bytes();
        let dict_before = self.dictionary.memory_size();
        let mut added_bytes = 0usize;
        let mut groups: Vec<u32> = Vec::with_capacity(order.len());
        let mut row_ids: Vec<u32> = Vec::with_capacity(order.len());
        let mut i = 0;
        while i < order.len() {
            let start = order[i].0;
            let mut j = i;
            while j < order.len() && order[j].0 == start {
                j += 1;
            }
            if !self.windows.contains_key(&start) {
                let w = self.new_window();
                self.windows.insert(start, w);
            }
            let state = self.windows.get_mut(&start).expect("inserted above");
            groups.clear();
            row_ids.clear();
            for &(_, r) in &order[i..j] {
                let id = self.dictionary.intern(rows.row(r as usize).as_ref());
                let next = state.key_ids.len() as u32;
                let g = *state.groups.entry(id).or_insert_with(|| {
                    state.key_ids.push(id);
                    state.bytes += per_group;
                    added_bytes += per_group;
                    self.dictionary.retain(id);
                    next
                });
                groups.push(g);
                row_ids.push(r);
            }
            let n = state.key_ids.len();
            for ((acc, agg), vals) in state.accs.iter_mut().zip(&self.aggs).zip(&values) {
                acc.resize(n);
                acc.update(&groups, &row_ids, vals, agg.field.name())?;
            }
            i = j;
        }
        let added_bytes = added_bytes + self.dictionary.memory_size().saturating_sub(dict_before);
        if added_bytes > 0 {
            let pool = ctx.pool().clone();
            let name = ctx.operator().to_string();
            self.reservation
                .get_or_insert_with(|| MemoryReservation::new(&pool, name))
                .try_grow(added_bytes)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: Watermark, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            self.fire_up_to(t, ctx, out)?;
        }
        out.emit_watermark(wm);
        Ok(())
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.fire_up_to(i64::MAX, ctx, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::basic::tests::{batches, test_ctx};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{Float64Array, StringArray};
    use std::time::Duration;

    fn input(keys: Vec<&str>, times: Vec<i64>, speeds: Vec<f64>) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(keys)) as _),
            ("t", Arc::new(Int64Array::from(times)) as _),
            ("speed", Arc::new(Float64Array::from(speeds)) as _),
        ])
        .unwrap()
    }

    #[test]
    fn fires_windows_in_order_when_the_watermark_passes_and_counts_late_rows() {
        let b = input(
            vec!["a", "b", "a", "a"],
            vec![100, 200, 1500, 900],
            vec![1.0, 2.0, 3.0, 5.0],
        );
        let mut w = TumblingWindowAggregate::try_new(
            &b.schema(),
            "t",
            &["k".into()],
            TumblingWindow::of(Duration::from_secs(1)),
            &[Agg::count().alias("n"), Agg::avg("speed")],
            "window",
        )
        .unwrap();
        let mut ctx = test_ctx();
        let mut out = Output::new();
        w.on_batch(0, b, &mut ctx, &mut out).unwrap();
        w.on_watermark(Watermark::EventTime(998), &mut ctx, &mut out)
            .unwrap();
        assert!(
            batches(&mut out).is_empty(),
            "window [0,1000) must not fire at 998"
        );
        w.on_watermark(Watermark::EventTime(999), &mut ctx, &mut out)
            .unwrap();
        let got = batches(&mut out);
        assert_eq!(got.len(), 1);
        let g = &got[0];
        let keys: Vec<&str> = g
            .column(0)
            .as_string::<i32>()
            .iter()
            .map(|k| k.unwrap())
            .collect();
        assert_eq!(keys, vec!["a", "b"]);
        assert_eq!(
            g.column(1).as_primitive::<Int64Type>().values().to_vec(),
            vec![0, 0]
        );
        assert_eq!(
            g.column(2).as_primitive::<Int64Type>().values().to_vec(),
            vec![1000, 1000]
        );
        assert_eq!(
            g.column(3).as_primitive::<Int64Type>().values().to_vec(),
            vec![2, 1]
        );
        assert_eq!(
            g.column(4).as_primitive::<Float64Type>().values().to_vec(),
            vec![3.0, 2.0]
        );

        // a row for the fired window is late; a row for [1000,2000) is not
        let late = input(vec!["a", "a"], vec![10, 1999], vec![7.0, 9.0]);
        w.on_batch(0, late, &mut ctx, &mut out).unwrap();
        assert_eq!(
            ctx.metrics()
                .late_rows
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        w.on_end_of_input(&mut ctx, &mut out).unwrap();
        let got = batches(&mut out);
        assert_eq!(
            got[0]
                .column(3)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            vec![2]
        );
        assert_eq!(
            got[0]
                .column(4)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec(),
            vec![6.0]
        );
        assert_eq!(
            ctx.pool().reserved(),
            0,
            "fired windows release their memory"
        );
    }

    #[test]
    fn rejects_bad_columns() {
        let b = input(vec!["a"], vec![1], vec![1.0]);
        let w = TumblingWindow::of(Duration::from_secs(1));
        let err = TumblingWindowAggregate::try_new(
            &b.schema(),
            "time",
            &["k".into()],
            w,
            &[Agg::count()],
            "win",
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("`time`"), "{err}");
        let err = TumblingWindowAggregate::try_new(
            &b.schema(),
            "k",
            &["k".into()],
            w,
            &[Agg::count()],
            "win",
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("Int64 (epoch ms) or Timestamp"),
            "{err}"
        );
    }
}
