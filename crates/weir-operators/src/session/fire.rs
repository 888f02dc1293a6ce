//! Firing sessions: advancing the clock, merging spilled fragments of the
//! keys that may fire, and emitting closed sessions (and retractions of
//! results a late row changed) as batches.
//!
//! May use what the parent module imports.

use super::*;

impl SessionWindowAggregate {
    pub(super) fn row(
        &self,
        key: u32,
        start: i64,
        end: i64,
        slot: u32,
        op: &'static str,
    ) -> Result<RecordBatch> {
        self.rows_batch(&[(key, start, end, slot, op)])
    }

    /// One batch of result rows `(key, start, end, slot, op)`, read from
    /// the dictionary and accumulators as they are now.
    pub(super) fn rows_batch(&self, rows: &[OutRow]) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = match &self.keys {
            Some(enc) => {
                let parser = enc.converter().parser();
                enc.converter()
                    .convert_rows(rows.iter().map(|r| parser.parse(self.dictionary.key(r.0))))?
            }
            None => Vec::new(),
        };
        cols.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.1),
        )));
        cols.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.2),
        )));
        let slots: Vec<u32> = rows.iter().map(|r| r.3).collect();
        for (acc, agg) in self.accs.iter().zip(&self.aggs) {
            cols.push(acc.finish(&slots, agg)?);
        }
        if self.emit_op {
            cols.push(Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.4),
            )));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    pub(super) fn retraction(
        &self,
        key: u32,
        start: i64,
        end: i64,
        slot: u32,
    ) -> Result<RecordBatch> {
        // the values of a delete row are those of the session now replacing it
        self.row(key, start, end, slot, "delete")
    }

    /// Fires and drops sessions up to watermark `t`. With sessions on disk
    /// that may touch one ending by `t`, merges memory and disk first, a
    /// chunk of keys at a time (see [`merge_spilled`](Self::merge_spilled)).
    pub(super) fn advance(&mut self, t: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if self.disk_may_fire(t) {
            self.merge_spilled(t, ctx, out)?;
        } else {
            let mut rows = Vec::new();
            self.fire(t, t, &mut rows)?;
            for batch in rows {
                out.emit(batch);
            }
        }
        self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
        self.sync_reservation(ctx)
    }

    /// True if firing at `t` needs the spilled fragments: one of them ends
    /// by `t`, or an in-memory session ending by `t` ends at or after the
    /// earliest spilled start (so a spilled fragment of its key may touch it).
    /// Otherwise no spilled fragment can touch a session that fires: it
    /// would start at or before that session's end.
    pub(super) fn disk_may_fire(&self, t: i64) -> bool {
        let (Some(min_start), Some(min_end)) = (self.spilled.min_start(), self.spilled.min_end())
        else {
            return false;
        };
        min_end <= t
            || (min_start <= t
                && self
                    .by_end
                    .range((min_start, 0, i64::MIN)..=(t, u32::MAX, i64::MAX))
                    .next()
                    .is_some())
    }

    /// Fires at `t` with spilled state: memory is written as one more run,
    /// then every run is read in key order, a chunk of whole keys at a time
    /// into memory (its own fixed reservation of about one read-back step):
    /// the chunk's sessions are complete, so those ending by `t` fire and
    /// the expired ones drop, and the rest go to one new run.
    ///
    /// ```text
    ///  memory ─► run ─┐
    ///  run 1 ─────────┼─► KeyMerge ─► chunk of keys ─► merge fragments ─► fire / drop
    ///  run n ─────────┘                                  └─► the rest ─► new run
    /// ```
    pub(super) fn merge_spilled(&mut self, t: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        let spill = ctx.spill().clone();
        let name = ctx.operator().to_string();
        if !self.sessions.is_empty() {
            let before = self.state_bytes();
            self.spill_sessions(&spill)?;
            let consumer = SpillableState::reservation(self).consumer().to_string();
            spill.metrics().record_state_spilled_by(
                &consumer,
                before.saturating_sub(self.state_bytes()) as u64,
            );
        }
        store::sync(self, &spill)?;
        let mut merge = self.spilled.take_merge();
        let step = store::step_bytes(self.read_back.pool());
        let rows = merge.step_rows(step);
        let mut writer = self.spilled.writer(&spill, &name)?;
        while let Some(chunk) = merge.next_chunk(rows)? {
            let mut forward: HashMap<u32, u32> = HashMap::new();
            let mut pending_free = Vec::new();
            for batch in &chunk {
                self.merge_fragment_rows(batch, &mut forward, &mut pending_free)?;
            }
            self.free.extend(pending_free);
            let grow = self.state_bytes().saturating_sub(self.read_back.size());
            store::reserve_step(&mut self.read_back, grow);
            let mut rows_out = Vec::new();
            for (key, ps, pe, slot) in std::mem::take(&mut self.retract) {
                rows_out.push(self.retraction(key, ps, pe, resolve(&forward, slot))?);
            }
            self.fire(t, t, &mut rows_out)?;
            if !rows_out.is_empty() {
                out.emit(arrow_select::concat::concat_batches(
                    &self.schema,
                    &rows_out,
                )?);
            }
            let rest = Self::fragments(&self.sessions, &self.dictionary);
            writer.write_sessions(&rest, &self.accs)?;
            drop(rest);
            self.clear_memory();
            self.read_back.free();
        }
        self.spilled.add(writer, &spill, &name)
    }

    /// Emits sessions ending at or before `step` that changed since they
    /// were last emitted, then drops those no late row can reach at `t`.
    pub(super) fn fire(&mut self, step: i64, t: i64, rows: &mut Vec<RecordBatch>) -> Result<()> {
        let due: Vec<(i64, u32, i64)> = self
            .by_end
            .iter()
            .take_while(|(end, _, _)| *end <= step)
            .copied()
            .collect();
        // result rows are gathered and built a batch at a time (before the
        // sessions below are dropped and their slots reset)
        let mut out: Vec<OutRow> = Vec::new();
        for (end, key, start) in due {
            let Some(list) = self.sessions.get_mut(&key) else {
                continue;
            };
            let Some(s) = list.iter_mut().find(|s| s.start == start && s.end == end) else {
                continue;
            };
            let dirty = std::mem::take(&mut s.dirty);
            if s.emitted != Some((start, end)) {
                let prev = s.emitted.replace((start, end));
                let slot = s.slot;
                if let Some((ps, pe)) = prev {
                    // the values of a delete row are those of the session now replacing it
                    out.push((key, ps, pe, slot, "delete"));
                }
                out.push((key, start, end, slot, "insert"));
            } else if dirty {
                out.push((key, start, end, s.slot, "update"));
            }
        }
        for chunk in out.chunks(OUT_BATCH_ROWS) {
            rows.push(self.rows_batch(chunk)?);
        }
        // drop sessions no late row can reach any more (all their fragments are in memory)
        let mut pending_free = Vec::new();
        while let Some(&(end, key, start)) = self.by_end.first() {
            if end > step || end.saturating_add(self.lateness_ms) > t {
                break;
            }
            self.by_end.pop_first();
            let Some(list) = self.sessions.get_mut(&key) else {
                continue;
            };
            let removed = list
                .iter()
                .position(|s| s.start == start && s.end == end)
                .map(|pos| list.remove(pos));
            let now_empty = list.is_empty();
            if let Some(s) = removed {
                self.release_slot(s.slot, &mut pending_free);
            }
            if now_empty {
                if let Some(list) = self.sessions.remove(&key) {
                    self.list_bytes -= list_bytes(&list);
                }
                let held = self.held.remove(&key).expect("a key with sessions is held");
                self.dictionary.release(held);
            }
        }
        self.free.extend(pending_free);
        Ok(())
    }
}
