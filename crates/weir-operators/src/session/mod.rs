//! Keyed (or global) event-time session windows.
//!
//! Owns [`SessionWindowAggregate`]; its state spills to sorted runs on disk
//! (see `spill`). May use the aggregate accumulators, `weir_core::operator`,
//! `weir_core::key`, `weir_core::time`, `weir_core::memory`, `weir_core::spill`,
//! `weir_core::error` and the arrow crates.

mod checkpoint;
#[cfg(test)]
mod checkpoint_tests;
mod fire;
mod spill;

use super::window::WindowAggregate;
use crate::keyed_state;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Schema, SchemaRef};
use spill::{SpilledSession, SpilledSessions, FIXED_COLUMNS};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{FastBuildHasher, KeyDictionary, KeyEncoder, KeyHandle};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, OperatorMetrics, Output};
use weir_core::spill::SpillManager;
use weir_core::state::store::{self, SpillableState};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::{event_times, validate_time_column, Window};
use weir_functions::aggregate::{Accumulators, Agg, BoundAgg};

/// A result row to build: key id, start, end, accumulator slot, op.
type OutRow = (u32, i64, i64, u32, &'static str);

/// Rows per result batch of a firing.
const OUT_BATCH_ROWS: usize = 8192;

/// One session of one key: `[start, end)` with `end = last row + gap`.
#[derive(Debug, Clone, Copy)]
struct Session {
    start: i64,
    end: i64,
    slot: u32,
    /// The bounds last emitted, if any (to retract them when the session grows).
    emitted: Option<(i64, i64)>,
    /// True if rows were added since the last emission (only when spilled
    /// fragments merged with it; see [`SessionWindowAggregate::hydrate`]).
    dirty: bool,
}

/// Session windows: per key, rows closer than `gap` form one session;
/// a row that bridges two sessions merges them.
///
/// ```text
///  key k, gap 5:   rows at 0, 3        → session [0, 8)
///                  row at 12           → session [12, 17)
///                  row at 9 (bridges)  → [0, 8) + [9, 14) + [12, 17) merge → [0, 17)
///  watermark w ──► sessions with end <= w fire (op insert): a row at exactly
///                  `end` would still extend the session, so it must be late first
///  a late row that changes a fired session ──► op delete for the old bounds,
///                                             op insert (or update, same bounds) for the new
///  sessions with end + lateness <= w are dropped
///  over budget ──► every session spills to a sorted run (see SpilledSessions);
///                  a watermark brings fragments back in steps before firing
/// ```
/// Sessions touching at the boundary merge (as in Flink: a row exactly
/// `gap` after the last one extends the session). Partial aggregates of
/// merged sessions are combined with [`Accumulators::merge`].
///
/// A late row that changes a session already spilled to disk is merged with
/// it when the watermark next brings it back, so its update is emitted then,
/// rather than with the row's batch: the changelog folds to the same result.
pub struct SessionWindowAggregate {
    // config
    gap_ms: i64,
    lateness_ms: i64,
    time_column: usize,
    keys: Option<KeyEncoder>,
    aggs: Vec<BoundAgg>,
    schema: SchemaRef,
    emit_op: bool,
    // state
    dictionary: KeyDictionary,
    sessions: HashMap<u32, Vec<Session>, FastBuildHasher>,
    /// The hold on every key with sessions in memory.
    held: HashMap<u32, KeyHandle, FastBuildHasher>,
    /// `(end, key id, start)` of every live session, for firing and cleanup.
    by_end: BTreeSet<(i64, u32, i64)>,
    accs: Vec<Accumulators>,
    slots: u32,
    free: Vec<u32>,
    /// Emitted sessions merged away in this batch: `(key, start, end, slot)`.
    retract: Vec<(u32, i64, i64, u32)>,
    /// Heap bytes of the per-key session lists (see [`list_bytes`]).
    list_bytes: usize,
    watermark: Option<i64>,
    // resources
    /// Sessions and key dictionary (spillable; made by `open`).
    reservation: MemoryReservation,
    /// The sessions of the keys a merge of spilled runs works on, one
    /// chunk at a time (fixed).
    read_back: MemoryReservation,
    spilled: SpilledSessions,
}

impl SessionWindowAggregate {
    /// A session operator; same output columns as [`WindowAggregate`].
    pub fn try_new(
        input: &Schema,
        time_column: &str,
        keys: &[String],
        gap_ms: i64,
        lateness_ms: i64,
        aggs: &[Agg],
        context: &str,
    ) -> Result<Self> {
        Window::Session { gap_ms }.validate()?;
        if aggs.is_empty() {
            return Err(Error::option(
                "aggregates",
                "a window needs at least one aggregate",
            ));
        }
        let time_column = validate_time_column(input, time_column, context)?;
        let key_encoder = KeyEncoder::optional(input, keys, context)?;
        let emit_op = lateness_ms > 0;
        let schema = WindowAggregate::output_schema(input, keys, aggs, emit_op, context)?;
        let aggs = aggs
            .iter()
            .map(|a| a.bind(input, context))
            .collect::<Result<Vec<_>>>()?;
        let spilled = SpilledSessions::new(&aggs);
        Ok(SessionWindowAggregate {
            gap_ms,
            lateness_ms: lateness_ms.max(0),
            time_column,
            keys: key_encoder,
            accs: aggs.iter().map(Accumulators::new).collect(),
            aggs,
            schema,
            emit_op,
            dictionary: KeyDictionary::new(),
            sessions: HashMap::default(),
            held: HashMap::default(),
            by_end: BTreeSet::new(),
            slots: 0,
            free: Vec::new(),
            retract: Vec::new(),
            list_bytes: 0,
            watermark: None,
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
            spilled,
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn new_slot(&mut self) -> u32 {
        if let Some(s) = self.free.pop() {
            return s;
        }
        self.slots += 1;
        for a in &mut self.accs {
            a.resize(self.slots as usize);
        }
        self.slots - 1
    }

    fn release_slot(&mut self, slot: u32, pending_free: &mut Vec<u32>) {
        for a in &mut self.accs {
            a.reset(slot);
        }
        pending_free.push(slot);
    }

    /// Adds a row of `key` at `t`; returns the slot its values go to.
    fn place(
        &mut self,
        key: u32,
        t: i64,
        forward: &mut HashMap<u32, u32>,
        pending_free: &mut Vec<u32>,
    ) -> Result<u32> {
        let fragment = Session {
            start: t,
            end: t.saturating_add(self.gap_ms),
            slot: u32::MAX,
            emitted: None,
            dirty: false,
        };
        self.merge_fragment(key, fragment, forward, pending_free)
    }

    /// Adds the fragment `[start, end)` of `key` (with its emitted bounds
    /// and dirty flag; its slot is ignored), merging it with the sessions it
    /// overlaps or touches; returns the slot its values go to.
    fn merge_fragment(
        &mut self,
        key: u32,
        fragment: Session,
        forward: &mut HashMap<u32, u32>,
        pending_free: &mut Vec<u32>,
    ) -> Result<u32> {
        let (t, end) = (fragment.start, fragment.end);
        let list = self.sessions.entry(key).or_default();
        let before = list_bytes(list);
        // sessions overlapping or touching [t, t + gap)
        let first = list.partition_point(|s| s.end < t);
        let mut last = first;
        while last < list.len() && list[last].start <= end {
            last += 1;
        }
        if first == last {
            let is_new_key = list.is_empty();
            let slot = self.new_slot();
            let list = self.sessions.get_mut(&key).expect("entry created above");
            if list.capacity() == 0 {
                // most keys have one session: no room for four
                list.reserve_exact(1);
            }
            list.insert(first, Session { slot, ..fragment });
            self.list_bytes = self.list_bytes - before + list_bytes(list);
            self.by_end.insert((end, key, t));
            if is_new_key {
                self.held.insert(key, self.dictionary.hold(key));
            }
            return Ok(slot);
        }
        let merged: Vec<Session> = list.drain(first..last).collect();
        let target = merged[0];
        let start = merged.iter().map(|s| s.start).min().unwrap_or(t).min(t);
        let new_end = merged.iter().map(|s| s.end).max().unwrap_or(end).max(end);
        for s in &merged {
            self.by_end.remove(&(s.end, key, s.start));
        }
        for s in &merged[1..] {
            for a in &mut self.accs {
                // partial state of `from`, merged into `into` of the same accumulators
                let state = a.to_state(&[s.slot])?;
                a.merge_state(&[target.slot], &state)?;
            }
            forward.insert(s.slot, target.slot);
            self.release_slot(s.slot, pending_free);
        }
        // a fired session that disappears into the merge is retracted
        let mut emitted = merged
            .iter()
            .chain(std::iter::once(&fragment))
            .filter_map(|s| s.emitted);
        let keep = emitted.next();
        for (ps, pe) in emitted {
            self.retract.push((key, ps, pe, target.slot));
        }
        let session = Session {
            start,
            end: new_end,
            slot: target.slot,
            emitted: keep,
            // an emitted result that gained rows (an on_batch caller emits it at once)
            dirty: keep.is_some() || merged.iter().any(|s| s.dirty) || fragment.dirty,
        };
        let list = self.sessions.get_mut(&key).expect("has sessions");
        list.insert(first, session);
        self.list_bytes = self.list_bytes - before + list_bytes(list);
        self.by_end.insert((new_end, key, start));
        Ok(target.slot)
    }

    /// Merges fragments of the run layout into memory (their intervals and
    /// partial states); slots merged away are recorded in `forward` and
    /// queued in `pending_free`. The layout must be this operator's (runs
    /// are; restored rows are checked first).
    fn merge_fragment_rows(
        &mut self,
        batch: &RecordBatch,
        forward: &mut HashMap<u32, u32>,
        pending_free: &mut Vec<u32>,
    ) -> Result<()> {
        let widths: Vec<usize> = self
            .aggs
            .iter()
            .map(|a| Accumulators::state_fields(a).len())
            .collect();
        {
            let mut slots = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                let f = spill::read_row(batch, row);
                let key = self.dictionary.intern(f.key);
                let fragment = Session {
                    start: f.start,
                    end: f.end,
                    slot: u32::MAX,
                    emitted: f.emitted,
                    dirty: f.dirty,
                };
                slots.push(self.merge_fragment(key, fragment, forward, pending_free)?);
                // a key seen only on disk: merge_fragment retained it when it had no sessions
                self.dictionary.forget_unused(key);
            }
            // fragments merged later in this batch forward to their target
            let slots: Vec<u32> = slots.iter().map(|&s| resolve(forward, s)).collect();
            let mut col = FIXED_COLUMNS;
            for (acc, &width) in self.accs.iter_mut().zip(&widths) {
                let state: Vec<ArrayRef> = (col..col + width)
                    .map(|c| batch.column(c).clone())
                    .collect();
                acc.merge_state(&slots, &state)?;
                col += width;
            }
        }
        Ok(())
    }

    /// Every in-memory session as a fragment of the run layout, sorted by
    /// (key, start).
    fn fragments<'a>(
        sessions: &'a HashMap<u32, Vec<Session>, FastBuildHasher>,
        dictionary: &'a KeyDictionary,
    ) -> Vec<SpilledSession<'a>> {
        let mut all: Vec<SpilledSession<'a>> = Vec::new();
        for (&key, list) in sessions {
            let bytes = dictionary.key(key);
            all.extend(list.iter().map(|s| SpilledSession {
                start: s.start,
                end: s.end,
                key: bytes,
                emitted: s.emitted,
                dirty: s.dirty,
                slot: s.slot,
            }));
        }
        all.sort_unstable_by(|a, b| (a.key, a.start).cmp(&(b.key, b.start)));
        all
    }

    /// Writes every in-memory session to a sorted run and empties memory.
    fn spill_sessions(&mut self, spill: &SpillManager) -> Result<()> {
        let all = Self::fragments(&self.sessions, &self.dictionary);
        self.spilled
            .spill(&all, &self.accs, spill, self.reservation.consumer())?;
        drop(all);
        self.clear_memory();
        Ok(())
    }

    /// Drops every in-memory session (written elsewhere first), giving the
    /// memory of every structure back, not only its contents.
    fn clear_memory(&mut self) {
        self.dictionary
            .release_all(std::mem::take(&mut self.held).into_values());
        self.sessions = HashMap::default();
        self.list_bytes = 0;
        self.by_end.clear();
        self.accs = self.aggs.iter().map(Accumulators::new).collect();
        self.slots = 0;
        self.free = Vec::new();
    }

    /// Bytes the in-memory state takes: what the pool is told. Tables are
    /// counted by capacity (what they allocated), the ordered index by a
    /// B-tree node's share per entry.
    fn state_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u32, Vec<Session>)>() + 1;
        self.dictionary.memory_size()
            + self.sessions.capacity() * entry
            + self.held.capacity() * (std::mem::size_of::<(u32, KeyHandle)>() + 1)
            + self.list_bytes
            + self.by_end.len() * BY_END_ENTRY_BYTES
            + self.free.capacity() * 4
            + self.retract.capacity() * std::mem::size_of::<(u32, i64, i64, u32)>()
            + self
                .accs
                .iter()
                .map(Accumulators::memory_size)
                .sum::<usize>()
    }

    /// Matches the reservation to the state, spilling every session while
    /// the pool refuses (see [`store::sync`]); fragments read back to fire
    /// are released from the fixed reservation first.
    fn sync_reservation(&mut self, ctx: &Ctx) -> Result<()> {
        self.read_back.free();
        store::sync(self, ctx.spill())
    }
}

impl SpillableState for SessionWindowAggregate {
    fn memory_bytes(&self) -> usize {
        self.state_bytes()
    }

    fn can_spill(&self) -> bool {
        !self.sessions.is_empty()
    }

    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        self.spill_sessions(spill)
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}

/// Bytes of one entry of the `by_end` B-tree: 24 bytes of key in leaves of
/// 11, about two thirds full, plus the nodes' headers.
const BY_END_ENTRY_BYTES: usize = 48;

/// Heap bytes of one key's session list: its capacity plus the
/// allocator's header.
fn list_bytes(list: &Vec<Session>) -> usize {
    match list.capacity() {
        0 => 0,
        n => n * std::mem::size_of::<Session>() + 16,
    }
}

/// Follows `forward` from a slot merged away to the slot that absorbed it.
fn resolve(forward: &HashMap<u32, u32>, mut slot: u32) -> u32 {
    while let Some(&next) = forward.get(&slot) {
        slot = next;
    }
    slot
}

impl Operator for SessionWindowAggregate {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.reservation = ctx.spillable_reservation();
        self.read_back = ctx.fixed_reservation("read-back");
        Ok(())
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let times = event_times(&batch, self.time_column, ctx.operator())?;
        let column = batch.schema().field(self.time_column).name().clone();
        Window::Session {
            gap_ms: self.gap_ms,
        }
        .check_times(&times, &column, ctx.operator())?;
        let rows = match &self.keys {
            Some(enc) => Some(enc.encode(&batch)?),
            None => None,
        };
        let mut order: Vec<(u32, i64, u32)> = Vec::with_capacity(times.len());
        let mut late = 0u64;
        for (i, &t) in times.iter().enumerate() {
            let done_at = t
                .saturating_add(self.gap_ms)
                .saturating_add(self.lateness_ms);
            if self.watermark.is_some_and(|w| done_at <= w) {
                late += 1;
                continue;
            }
            let key: &[u8] = rows.as_ref().map_or(&[], |rows| rows.row(i).data());
            let id = self.dictionary.intern(key);
            order.push((id, t, i as u32));
        }
        if late > 0 {
            OperatorMetrics::add(&ctx.metrics().late_rows, late);
        }
        order.sort_unstable();
        let mut forward: HashMap<u32, u32> = HashMap::new();
        let mut pending_free = Vec::new();
        let mut placed: Vec<(u32, u32, u32)> = Vec::with_capacity(order.len()); // (slot, row, key)
        for &(key, t, r) in &order {
            let slot = self.place(key, t, &mut forward, &mut pending_free)?;
            placed.push((slot, r, key));
        }
        // a slot merged away later in the batch forwards to its target
        let groups: Vec<u32> = placed.iter().map(|p| resolve(&forward, p.0)).collect();
        let row_ids: Vec<u32> = placed.iter().map(|p| p.1).collect();
        let values = self
            .aggs
            .iter()
            .map(|a| a.values(batch.columns()))
            .collect::<Result<Vec<_>>>()?;
        for ((acc, agg), vals) in self.accs.iter_mut().zip(&self.aggs).zip(&values) {
            acc.update(&groups, &row_ids, vals, &times, agg.field.name())?;
        }
        self.free.extend(pending_free);
        // late rows that changed fired sessions: re-emit them now
        let mut rows_out = Vec::new();
        for (key, ps, pe, slot) in std::mem::take(&mut self.retract) {
            rows_out.push(self.retraction(key, ps, pe, resolve(&forward, slot))?);
        }
        let changed: BTreeSet<u32> = groups.iter().copied().collect();
        let touched: BTreeSet<u32> = placed.iter().map(|p| p.2).collect();
        for key in touched {
            let Some(list) = self.sessions.get_mut(&key) else {
                continue;
            };
            let mut changes = Vec::new();
            for s in list.iter_mut().filter(|s| changed.contains(&s.slot)) {
                if let Some(prev) = s.emitted {
                    let now = (s.start, s.end);
                    s.emitted = Some(now);
                    s.dirty = false;
                    changes.push((prev, now, s.slot));
                }
            }
            for (prev, now, slot) in changes {
                if prev != now {
                    rows_out.push(self.retraction(key, prev.0, prev.1, slot)?);
                    rows_out.push(self.row(key, now.0, now.1, slot, "insert")?);
                } else {
                    rows_out.push(self.row(key, now.0, now.1, slot, "update")?);
                }
            }
        }
        if !rows_out.is_empty() {
            out.emit(arrow_select::concat::concat_batches(
                &self.schema,
                &rows_out,
            )?);
        }
        self.sync_reservation(ctx)
    }

    fn on_watermark(&mut self, wm: Watermark, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            self.advance(t, ctx, out)?;
        }
        out.emit_watermark(wm);
        Ok(())
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.advance(i64::MAX, ctx, out)
    }

    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        self.write_state(state)
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.read_state(state, ctx)
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))?;
        self.sync_reservation(ctx)
    }
}
