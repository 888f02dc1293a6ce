//! Firing: when the watermark (or an early-firing timer) passes a
//! window's end, its panes are merged into window results, emitted
//! (with a changelog `op` after late updates), and panes no window needs
//! any more are dropped; spilled panes fire from their sorted runs.
//!
//! May use what the parent module imports.

use super::*;

impl WindowAggregate {
    /// Processing time: asks for a timer at the end of the next window to fire.
    pub(super) fn schedule(&mut self, ctx: &mut Ctx) {
        let window_end = if self.time_column.is_none() {
            self.windows
                .iter()
                .find(|(_, fired)| !**fired)
                .map(|((end, _), _)| *end)
        } else {
            None
        };
        if let Some(every) = self.early.and_then(|e| e.every_ms) {
            if self.early_pending.is_empty() {
                self.early_tick = None;
            } else if self.early_tick.is_none() {
                self.early_tick = Some(ctx.processing_time().saturating_add(every));
            }
        }
        let next = match (window_end, self.early_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ctx.set_processing_timer(next);
    }

    /// The op of a result for `key` of window `(end, start)`: `update` if
    /// that key was emitted before (accumulating), else `insert`.
    pub(super) fn op_for(&self, window: (i64, i64), key: u32) -> &'static str {
        let purge = self.early.is_some_and(|e| e.purge);
        if !purge && self.emitted.get(&window).is_some_and(|k| k.contains(key)) {
            "update"
        } else {
            "insert"
        }
    }

    /// Emits the early results of `keys` in window `(end, start)`, then
    /// remembers them as emitted (or purges them).
    /// `keys` must be held (by the early-firing bookkeeping) while it runs.
    pub(super) fn fire_early(
        &mut self,
        window: (i64, i64),
        keys: &BTreeSet<u32>,
        out: &mut Output,
    ) -> Result<()> {
        let (end, start) = window;
        self.hydrate(end)?;
        if let Some(b) = self.evaluate(start, end, Some(keys), &|k| self.op_for(window, k))? {
            out.emit(b);
        }
        if self.early.is_some_and(|e| e.purge) {
            // tumbling: one pane per window
            self.purge_keys(start, Some(keys));
        } else {
            hold_in(
                &mut self.emitted,
                window,
                &mut self.dictionary,
                keys.iter().copied(),
            );
        }
        Ok(())
    }

    /// The result of window `[start, end)` for `only` keys (all keys if `None`).
    pub(super) fn evaluate(
        &self,
        start: i64,
        end: i64,
        only: Option<&BTreeSet<u32>>,
        op: &dyn Fn(u32) -> &'static str,
    ) -> Result<Option<RecordBatch>> {
        let mut panes = self.panes.range(start..end).map(|(_, p)| p).peekable();
        let Some(first) = panes.peek() else {
            return Ok(None);
        };
        let single = self.panes.range(start..end).count() == 1;
        let (key_ids, columns): (Vec<u32>, Vec<ArrayRef>) = if single && only.is_none() {
            let order: Vec<u32> = (0..first.key_ids.len() as u32).collect();
            let cols = first
                .accs
                .iter()
                .zip(&self.aggs)
                .map(|(acc, agg)| acc.finish(&order, agg))
                .collect::<Result<_>>()?;
            (first.key_ids.iter().map(KeyHandle::id).collect(), cols)
        } else {
            let mut out: Vec<Accumulators> = self.aggs.iter().map(Accumulators::new).collect();
            let mut slots: HashMap<u32, u32, FastBuildHasher> = HashMap::default();
            let mut key_ids = Vec::new();
            for pane in panes {
                for (slot, id) in pane.key_ids.iter().map(KeyHandle::id).enumerate() {
                    if only.is_some_and(|keys| !keys.contains(&id)) {
                        continue;
                    }
                    let next = key_ids.len() as u32;
                    let target = *slots.entry(id).or_insert_with(|| {
                        key_ids.push(id);
                        next
                    });
                    for (o, acc) in out.iter_mut().zip(&pane.accs) {
                        o.resize(key_ids.len());
                        o.merge(target, acc, slot as u32)?;
                    }
                }
            }
            let order: Vec<u32> = (0..key_ids.len() as u32).collect();
            let cols = out
                .iter()
                .zip(&self.aggs)
                .map(|(acc, agg)| acc.finish(&order, agg))
                .collect::<Result<_>>()?;
            (key_ids, cols)
        };
        let n = key_ids.len();
        if n == 0 {
            return Ok(None);
        }
        let mut columns_out: Vec<ArrayRef> = match &self.keys {
            Some(enc) => {
                let parser = enc.converter().parser();
                enc.converter().convert_rows(
                    key_ids
                        .iter()
                        .map(|&id| parser.parse(self.dictionary.key(id))),
                )?
            }
            None => Vec::new(),
        };
        columns_out.push(Arc::new(Int64Array::from(vec![start; n])));
        columns_out.push(Arc::new(Int64Array::from(vec![end; n])));
        columns_out.extend(columns);
        if self.emit_op {
            columns_out.push(Arc::new(StringArray::from_iter_values(
                key_ids.iter().map(|&k| op(k)),
            )));
        }
        Ok(Some(RecordBatch::try_new(
            self.schema.clone(),
            columns_out,
        )?))
    }

    /// The keys with state in window `[start, end)`.
    pub(super) fn window_keys(&self, start: i64, end: i64) -> BTreeSet<u32> {
        self.panes
            .range(start..end)
            .flat_map(|(_, p)| p.key_ids.iter().map(KeyHandle::id))
            .collect()
    }

    pub(super) fn purge_keys(&mut self, start: i64, keys: Option<&BTreeSet<u32>>) {
        if let Some(pane) = self.panes.get_mut(&start) {
            for (slot, id) in pane.key_ids.iter().map(KeyHandle::id).enumerate() {
                if keys.is_none_or(|k| k.contains(&id)) {
                    for acc in &mut pane.accs {
                        acc.reset(slot as u32);
                    }
                }
            }
        }
    }

    pub(super) fn emit_dirty(&mut self, out: &mut Output) -> Result<()> {
        let purge = self.early.is_some_and(|e| e.purge);
        for ((end, start), held) in std::mem::take(&mut self.dirty) {
            self.hydrate(end)?;
            let w = (end, start);
            let keys: BTreeSet<u32> = held.ids().collect();
            if let Some(b) = self.evaluate(start, end, Some(&keys), &|k| self.op_for(w, k))? {
                out.emit(b);
            }
            if purge {
                self.purge_keys(start, Some(&keys));
            } else {
                hold_in(&mut self.emitted, w, &mut self.dictionary, keys);
            }
            held.release(&mut self.dictionary);
        }
        Ok(())
    }

    /// True if the due windows can fire straight from the runs: state was
    /// spilled, no result changes later (no lateness, no early firing), and
    /// each window is one pane that no other window shares (tumbling).
    pub(super) fn fires_from_runs(&self, due: &[(i64, i64)]) -> bool {
        !self.spilled.is_empty()
            && !due.is_empty()
            && self.lateness_ms == 0
            && self.early.is_none()
            && due
                .iter()
                .all(|&(end, start)| self.window.windows_of_pane(start) == [(start, end)])
    }

    /// True if the spilled rows of the due windows fit one read-back step:
    /// they are read back whole, and the runs of later panes stay as they
    /// are (a merge would rewrite them at every firing).
    pub(super) fn due_fits(&mut self, due: &[(i64, i64)]) -> Result<bool> {
        let boundary = due.last().map_or(i64::MIN, |w| w.0);
        self.spilled.due_fits(boundary)
    }

    /// Fires the due windows (tumbling, see [`Self::fires_from_runs`]) by a
    /// merge of the runs, a chunk of keys at a time, instead of reading
    /// their panes back whole: the in-memory panes before the last due end
    /// are spilled first, so each (pane, key) comes out of the merge once
    /// with its partial states merged. The merge's batches are held in the
    /// fixed read-back reservation.
    pub(super) fn fire_from_runs(
        &mut self,
        due: &[(i64, i64)],
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let boundary = due.last().map_or(i64::MIN, |w| w.0);
        if self.panes.range(..boundary).next().is_some() {
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
        let fired: BTreeSet<(i64, i64)> = due.iter().map(|&(e, s)| (s, e)).collect();
        let (keys, aggs, schema, widths) = (
            &self.keys,
            &self.aggs,
            &self.schema,
            self.spilled.widths().to_vec(),
        );
        let mut fire = |batch: &RecordBatch| -> Result<()> {
            for (start, end, b) in pane_results(batch, keys, aggs, &widths, schema, &fired)? {
                debug_assert!(fired.contains(&(start, end)));
                out.emit(b);
            }
            Ok(())
        };
        let mut spilled =
            std::mem::replace(&mut self.spilled, spill::SpilledPanes::new(&self.aggs));
        let result = spilled.fire_through(boundary, &self.aggs, ctx.spill(), &name, &mut fire);
        self.spilled = spilled;
        self.read_back.free();
        result?;
        for &w in due {
            self.windows.insert(w, true);
        }
        Ok(())
    }

    /// Fires due windows, then drops what no window needs any more.
    pub(super) fn advance(&mut self, t: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        let due: Vec<(i64, i64)> = self
            .windows
            .iter()
            .take_while(|((end, _), _)| Window::max_timestamp(*end) <= t)
            .filter(|(_, fired)| !**fired)
            .map(|(w, _)| *w)
            .collect();
        let due = if self.fires_from_runs(&due) && !self.due_fits(&due)? {
            self.fire_from_runs(&due, ctx, out)?;
            Vec::new()
        } else {
            due
        };
        for (end, start) in due {
            let w = (end, start);
            if let Some(c) = self.early_counts.remove(&w) {
                c.held.release(&mut self.dictionary);
            }
            if let Some(p) = self.early_pending.remove(&w) {
                p.release(&mut self.dictionary);
            }
            self.hydrate(end)?;
            if let Some(b) = self.evaluate(start, end, None, &|k| self.op_for(w, k))? {
                out.emit(b);
            }
            // keys emitted now: a late row later updates them (until cleanup)
            if self.lateness_ms > 0 && !self.early.is_some_and(|e| e.purge) {
                let keys: BTreeSet<u32> = self.window_keys(start, end);
                hold_in(&mut self.emitted, w, &mut self.dictionary, keys);
            } else if let Some(e) = self.emitted.remove(&w) {
                e.release(&mut self.dictionary);
            }
            if self.early.is_some_and(|e| e.purge) {
                self.purge_keys(start, None);
            }
            self.windows.insert(w, true);
            // panes whose windows all fired and that no late row can reach
            self.drop_panes(t, Some((end, start)));
        }
        let lateness = self.lateness_ms;
        while let Some((&(end, start), _)) = self.windows.first_key_value() {
            if Window::max_timestamp(end).saturating_add(lateness) > t {
                break;
            }
            self.windows.pop_first();
            if let Some(e) = self.emitted.remove(&(end, start)) {
                e.release(&mut self.dictionary);
            }
        }
        self.drop_panes(t, None);
        self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
        self.sync_reservation(ctx)
    }

    /// Drops panes that no late row can reach at watermark `t` and, if
    /// `fired_up_to` is given, whose windows all fired (in `(end, start)` order).
    pub(super) fn drop_panes(&mut self, t: i64, fired_up_to: Option<(i64, i64)>) {
        while let Some((&pane, _)) = self.panes.first_key_value() {
            // the pane's last window in firing order (end, start)
            let (start, end) = self.window.last_window_of_pane(pane);
            let last = (end, start);
            if self.pane_done_at(pane) > t || fired_up_to.is_some_and(|w| last > w) {
                break;
            }
            let (_, p) = self.panes.pop_first().expect("checked above");
            self.last_groups = p.key_ids.len();
            self.dictionary.release_all(p.key_ids);
        }
    }
}

/// The results of the windows `fired` (`(start, end)`, one pane each) from
/// merged run rows (pane | key | partial states, one row per (pane, key)):
/// one batch per pane, as `(start, end, batch)`; rows of other panes are
/// skipped (none in a correct run).
pub(super) fn pane_results(
    batch: &RecordBatch,
    keys: &Option<KeyEncoder>,
    aggs: &[BoundAgg],
    widths: &[usize],
    schema: &SchemaRef,
    fired: &BTreeSet<(i64, i64)>,
) -> Result<Vec<(i64, i64, RecordBatch)>> {
    let panes = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("run layout: pane is Int64");
    let key_bytes = batch
        .column(1)
        .as_any()
        .downcast_ref::<arrow_array::BinaryArray>()
        .expect("run layout: key is Binary");
    let mut out = Vec::new();
    let mut i = 0;
    while i < batch.num_rows() {
        let start = panes.value(i);
        let mut j = i;
        while j < batch.num_rows() && panes.value(j) == start {
            j += 1;
        }
        let window = fired
            .range((start, i64::MIN)..)
            .next()
            .filter(|w| w.0 == start);
        if let Some(&(_, end)) = window {
            let n = j - i;
            let mut accs: Vec<Accumulators> = aggs.iter().map(Accumulators::new).collect();
            let slots: Vec<u32> = (0..n as u32).collect();
            spill::merge_run_rows(&mut accs, widths, batch, i, &slots, n)?;
            let mut columns: Vec<ArrayRef> = match keys {
                Some(enc) => {
                    let parser = enc.converter().parser();
                    enc.converter()
                        .convert_rows((i..j).map(|r| parser.parse(key_bytes.value(r))))?
                }
                None => Vec::new(),
            };
            columns.push(Arc::new(Int64Array::from(vec![start; n])));
            columns.push(Arc::new(Int64Array::from(vec![end; n])));
            for (acc, agg) in accs.iter().zip(aggs) {
                columns.push(acc.finish(&slots, agg)?);
            }
            out.push((start, end, RecordBatch::try_new(schema.clone(), columns)?));
        }
        i = j;
    }
    Ok(out)
}

/// Orders `(start, row)` pairs by start: a counting sort when the batch
/// spans few periods (the usual case), else a comparison sort.
pub(super) fn group_by_start(order: &mut Vec<(i64, u32)>, period: i64) {
    let (Some(min), Some(max)) = (
        order.iter().map(|o| o.0).min(),
        order.iter().map(|o| o.0).max(),
    ) else {
        return;
    };
    let span = match max.checked_sub(min) {
        Some(d) => d / period + 1,
        None => i64::MAX,
    };
    if span == 1 {
        return;
    }
    if span > 4096 {
        order.sort_unstable();
        return;
    }
    let bucket = |start: i64| ((start - min) / period) as usize;
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
