//! Count windows and global windows with a trigger, keyed or global.
//!
//! Owns [`CountWindowAggregate`], [`CountWindow`], the [`WindowTrigger`]
//! trait, [`TriggerAction`] and [`CountTrigger`]. Count windows depend on
//! the order of a key's rows, so the input goes through an
//! [`EventTimeBuffer`] and each key's rows are fed in (event time, row
//! content) order once the watermark passed them: every executor and
//! parallelism fires the same windows over the same rows.
//!
//! The trigger contract and the count window are in `trigger.rs`, one
//! key's open window and its firings in `key_window.rs`. Per-key windows
//! spill to a [`StateLog`] (`spill.rs`; encodings in `codec.rs`);
//! checkpoints are in `checkpoint.rs`.
//!
//! May use `weir_core::operator`, `weir_core::message`, `weir_functions::aggregate`,
//! `weir_core::key`, `weir_core::time`, `weir_core::memory`, `weir_core::state`, `weir_core::spill`,
//! `weir_core::error` and the arrow crates. Never `crate::exec` or `crate::graph`.

use super::event_buffer::{batch_bytes, lateness_clock, EventTimeBuffer, Released};
use super::window::WindowAggregate;
use crate::keyed_state::{self, check_layout, column, key_groups};
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{FastBuildHasher, KeyHandle};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, Output};
use weir_core::state::store::{self, StateLog};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::event_times;
use weir_functions::aggregate::{Accumulators, Agg, BoundAgg, Values};

/// Bytes accounted per key with window state (map slot, counters).
const KEY_STATE_BYTES: usize = 128;

/// Count-window (and global-window) aggregation per key.
///
/// ```text
///  batch ──► EventTimeBuffer (per key, until the clock passes the rows)
///  watermark W ──► clock w = W - allowed lateness (lateness_clock; the sources admit rows
///                  up to that far behind, so none is behind w) ──► forwarded downstream
///  w ──► per due key: rows <= w in (time, content) order
///     Tumbling(n)      ──► accumulators of the key; every n-th row: fire + reset
///     Sliding(n, s)    ──► last n rows kept; every s-th row: fire over them
///     Global(trigger)  ──► trigger.on_row(count, t): Continue | Fire | FireAndPurge | Purge
///                          (evict_to: rows kept, only the latest k survive a Fire)
///              ──► then trigger.on_watermark(count, w) for every non-empty window
///  firings ──► key | window_start (first row's time) | window_end (last row's time + 1) | aggs
/// ```
/// A key that never reaches the count never fires: its rows are dropped at
/// end of input (as in Flink). A global trigger can flush such windows by
/// firing from `on_watermark` at `i64::MAX` (it sees the watermark, not the
/// steps the buffer's read-back takes towards it). Sliding windows keep the
/// last `size` rows of every key until end of input; a global window without
/// eviction keeps one accumulator slot per key until it is purged.
///
/// The buffer, the windows (kept rows, counters, accumulator slots) and the
/// state log's index are reserved from the memory pool; over budget:
/// ```text
///  sync ──► pool refuses ──► 1. buffer rows ──► sorted runs (EventTimeBuffer::spill_rows)
///                            2. windows of keys not fed since the last spill, then all:
///     KeyWindow ──► postcard(count, first/last time, since_fire, kept) | accs len u32
///                   | partial states (to_state, arrow-row bytes) | kept rows from start
///                   (arrow-row bytes, framed) ──► StateLog::append (one key-sorted run)
///                   ──► key handle given back, slot freed (slots renumbered when most are free)
///  key due ──► StateLog::take(key) ──► KeyWindow (new slot, merge_state; rows renumbered from 0)
///              ──► fed; while a step feeds, windows spill once the state passes its
///                  reservation by a read-back step (relieve)
///  watermark, trigger watches it ──► windows in memory, then the log in key-ordered steps
///     (entries_after, held in a fixed read-back reservation): header only ──► on_watermark
///     ──► Continue: stays on disk | else take, apply, write back unless emptied
///  checkpoint ──► windows in memory + StateLog::entries, the same keyed entries
/// ```
pub struct CountWindowAggregate {
    // config
    mode: Mode,
    /// Allowed lateness of the input: rows wait for `watermark - lateness`.
    lateness_ms: i64,
    aggs: Vec<BoundAgg>,
    schema: SchemaRef,
    input: SchemaRef,
    // state
    /// Rows waiting for the watermark, and the key dictionary.
    buffer: EventTimeBuffer,
    windows: HashMap<u32, KeyWindow, FastBuildHasher>,
    /// Incremental mode: one group slot per key.
    accs: Vec<Accumulators>,
    free_slots: Vec<u32>,
    kept_bytes: usize,
    /// Keys fed since the last spill (kept in memory by the first spill attempt).
    recent: HashSet<u32, FastBuildHasher>,
    /// How spilled windows are encoded.
    codecs: spill::Codecs,
    // resources
    /// The kept rows, windows, accumulators and the state log's index (made by `open`).
    reservation: MemoryReservation,
    /// Spilled windows read back to visit them on a watermark (fixed; made by `open`).
    read_back: MemoryReservation,
    /// Windows spilled to disk (created on the first spill).
    spilled: Option<StateLog>,
}

impl std::fmt::Debug for CountWindowAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountWindowAggregate")
            .field("mode", &self.mode)
            .field("keys", &self.windows.len())
            .finish()
    }
}

impl CountWindowAggregate {
    /// A count-window operator over `input`, keyed by `keys` (empty: one
    /// group), ordering rows by `time_column`. Output columns: the keys,
    /// `window_start`, `window_end`, then one column per aggregate.
    pub fn try_new(
        input: &Schema,
        time_column: &str,
        keys: &[String],
        spec: CountWindow,
        aggs: &[Agg],
        context: &str,
    ) -> Result<Self> {
        let mode = match spec {
            CountWindow::Tumbling { size } => {
                if size == 0 {
                    return Err(Error::option("size", "a count window needs size >= 1"));
                }
                Mode::Incremental {
                    trigger: Arc::new(CountTrigger {
                        every: size,
                        purge: true,
                    }),
                }
            }
            CountWindow::Sliding { size, slide } => {
                if size == 0 || slide == 0 {
                    return Err(Error::option(
                        "size",
                        format!("a sliding count window needs size and slide >= 1 (got {size}, {slide})"),
                    ));
                }
                Mode::Sliding { size, slide }
            }
            CountWindow::Global {
                trigger,
                evict_to: None,
            } => Mode::Incremental { trigger },
            CountWindow::Global {
                trigger,
                evict_to: Some(keep),
            } => Mode::Evicting { trigger, keep },
        };
        if aggs.is_empty() {
            return Err(Error::option(
                "aggregates",
                "a window needs at least one aggregate",
            ));
        }
        let buffer = EventTimeBuffer::try_new(input, time_column, keys, context)?;
        let schema = WindowAggregate::output_schema(input, keys, aggs, false, context)?;
        let aggs = aggs
            .iter()
            .map(|a| a.bind(input, context))
            .collect::<Result<Vec<_>>>()?;
        let input = Arc::new(input.clone());
        Ok(CountWindowAggregate {
            mode,
            lateness_ms: 0,
            accs: aggs.iter().map(Accumulators::new).collect(),
            codecs: spill::Codecs::new(input.clone(), &aggs),
            aggs,
            schema,
            input,
            buffer,
            windows: HashMap::default(),
            free_slots: Vec::new(),
            kept_bytes: 0,
            recent: HashSet::default(),
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
            spilled: None,
        })
    }

    /// The input's allowed lateness: rows up to this far behind the
    /// watermark are admitted by the sources, so windows run at
    /// `watermark - lateness` ([`lateness_clock`]) and take every row in
    /// event-time order (the output stays final: no `op` column). The
    /// forwarded watermark is that clock too.
    pub fn with_lateness(mut self, lateness_ms: i64) -> Self {
        self.lateness_ms = lateness_ms.max(0);
        self
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn state_bytes(&self) -> usize {
        self.kept_bytes
            + self.windows.len() * KEY_STATE_BYTES
            + self
                .accs
                .iter()
                .map(Accumulators::memory_size)
                .sum::<usize>()
            + self.free_slots.capacity() * 4
            + self.recent.len() * spill::RECENT_BYTES
            + self.spilled.as_ref().map_or(0, StateLog::memory_size)
    }

    fn sync_reservation(&mut self, ctx: &Ctx) -> Result<()> {
        // rows the buffer read back and did not release yet become state
        self.buffer.settle();
        store::sync(self, ctx.spill())
    }

    /// A new, empty window for `key`, holding the key.
    fn new_window(&mut self, key: u32) -> KeyWindow {
        let mut w = KeyWindow {
            key: Some(self.buffer.retain_key(key)),
            ..KeyWindow::default()
        };
        if let Mode::Incremental { .. } = self.mode {
            w.slot = match self.free_slots.pop() {
                Some(s) => s,
                None => {
                    let s = self.accs.first().map_or(0, Accumulators::len) as u32;
                    for a in &mut self.accs {
                        a.resize(s as usize + 1);
                    }
                    s
                }
            };
        }
        w
    }

    /// Puts `w` back, or drops it (queueing its key for release) if empty.
    fn put_back(
        &mut self,
        key: u32,
        mut w: KeyWindow,
        old_bytes: usize,
        release: &mut Vec<KeyHandle>,
    ) {
        self.kept_bytes = self.kept_bytes - old_bytes + w.bytes;
        let empty = match self.mode {
            Mode::Incremental { .. } => w.count == 0,
            Mode::Evicting { .. } => w.start == w.end(),
            Mode::Sliding { .. } => false,
        };
        if empty {
            self.kept_bytes -= w.bytes;
            if let Mode::Incremental { .. } = self.mode {
                for a in &mut self.accs {
                    a.reset(w.slot);
                }
                self.free_slots.push(w.slot);
            }
            release.push(w.key.take().expect("a kept window holds its key"));
        } else {
            self.windows.insert(key, w);
        }
    }

    /// Feeds one key's released rows to its window.
    fn feed(
        &mut self,
        r: Released,
        fired: &mut Firings,
        release: &mut Vec<KeyHandle>,
    ) -> Result<()> {
        let key = r.key;
        self.load_window(key)?;
        self.recent.insert(key);
        let mut w = match self.windows.remove(&key) {
            Some(w) => w,
            None => self.new_window(key),
        };
        let old_bytes = w.bytes;
        match self.mode.clone() {
            Mode::Incremental { trigger } => {
                let values = self
                    .aggs
                    .iter()
                    .map(|a| a.values(r.rows.columns()))
                    .collect::<Result<Vec<_>>>()?;
                let mut seg = 0usize;
                for (i, &t) in r.times.iter().enumerate() {
                    if w.count == 0 {
                        w.first_time = t;
                    }
                    w.count += 1;
                    w.last_time = t;
                    let action = trigger.on_row(w.count, t);
                    if action != TriggerAction::Continue {
                        self.update_slot(w.slot, seg..i + 1, &values, &r.times)?;
                        seg = i + 1;
                        self.apply_incremental(key, &mut w, action, fired)?;
                    }
                }
                self.update_slot(w.slot, seg..r.times.len(), &values, &r.times)?;
            }
            Mode::Sliding { size, slide } => {
                let first = w.end();
                let n = r.times.len() as u64;
                w.chunks.push_back(Chunk::new(r.rows, r.times, &self.aggs)?);
                for at in first..first + n {
                    w.since_fire += 1;
                    let end = at + 1;
                    w.start = w.start.max(end.saturating_sub(size));
                    if w.since_fire == slide {
                        w.since_fire = 0;
                        fire_rows(&w, key, w.start, end, &self.aggs, fired)?;
                    }
                }
                w.trim(&self.aggs, &self.input)?;
            }
            Mode::Evicting { trigger, keep } => {
                let first = w.end();
                let n = r.times.len() as u64;
                let times = r.times.clone();
                w.chunks.push_back(Chunk::new(r.rows, r.times, &self.aggs)?);
                for (at, &t) in (first..first + n).zip(&times) {
                    let end = at + 1;
                    let action = trigger.on_row(end - w.start, t);
                    apply_rows(&mut w, key, end, action, keep, &self.aggs, fired)?;
                }
                w.trim(&self.aggs, &self.input)?;
            }
        }
        self.put_back(key, w, old_bytes, release);
        Ok(())
    }

    fn update_slot(
        &mut self,
        slot: u32,
        rows: std::ops::Range<usize>,
        values: &[Values],
        times: &[i64],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let groups = vec![slot; rows.len()];
        let rows: Vec<u32> = rows.map(|r| r as u32).collect();
        for ((acc, agg), vals) in self.accs.iter_mut().zip(&self.aggs).zip(values) {
            acc.update(&groups, &rows, vals, times, agg.field.name())?;
        }
        Ok(())
    }

    fn apply_incremental(
        &mut self,
        key: u32,
        w: &mut KeyWindow,
        action: TriggerAction,
        fired: &mut Firings,
    ) -> Result<()> {
        if matches!(action, TriggerAction::Fire | TriggerAction::FireAndPurge) && w.count > 0 {
            let g = fired.push(key, w.first_time, w.last_time.saturating_add(1));
            for (out, acc) in fired.accs.iter_mut().zip(&self.accs) {
                out.merge(g, acc, w.slot)?;
            }
        }
        if matches!(action, TriggerAction::FireAndPurge | TriggerAction::Purge) {
            for a in &mut self.accs {
                a.reset(w.slot);
            }
            w.count = 0;
        }
        Ok(())
    }

    /// Calls the trigger's `on_watermark` for every non-empty window.
    fn watermark_triggers(
        &mut self,
        wm: i64,
        fired: &mut Firings,
        release: &mut Vec<KeyHandle>,
        out: &mut Output,
    ) -> Result<()> {
        let trigger = match &self.mode {
            Mode::Incremental { trigger } | Mode::Evicting { trigger, .. } => trigger.clone(),
            Mode::Sliding { .. } => return Ok(()),
        };
        if !trigger.watches_watermarks() {
            return Ok(());
        }
        let mut keys: Vec<u32> = self.windows.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let Some(mut w) = self.windows.remove(&key) else {
                continue;
            };
            let old_bytes = w.bytes;
            match self.mode.clone() {
                Mode::Incremental { .. } => {
                    if w.count > 0 {
                        let action = trigger.on_watermark(w.count, wm);
                        self.apply_incremental(key, &mut w, action, fired)?;
                    }
                }
                Mode::Evicting { keep, .. } => {
                    let end = w.end();
                    if end > w.start {
                        let action = trigger.on_watermark(end - w.start, wm);
                        apply_rows(&mut w, key, end, action, keep, &self.aggs, fired)?;
                        w.trim(&self.aggs, &self.input)?;
                    }
                }
                Mode::Sliding { .. } => {}
            }
            self.put_back(key, w, old_bytes, release);
        }
        if self.spilled.as_ref().is_some_and(|l| !l.is_empty()) {
            self.spilled_watermark_triggers(&trigger, wm, fired, release, out)?;
        }
        Ok(())
    }

    /// Advances to watermark `wm`: feeds due rows, asks the trigger, emits.
    fn advance(&mut self, wm: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        // in steps when rows were spilled, so reading them back stays bounded
        loop {
            let step = self.buffer.next_step(wm)?;
            // the trigger sees the watermark, not the steps towards it
            self.advance_step(step, step >= wm, ctx, out)?;
            if step >= wm {
                return Ok(());
            }
        }
    }

    fn advance_step(&mut self, wm: i64, last: bool, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if self.buffer.watermark().is_some_and(|w| w >= wm) {
            return Ok(());
        }
        let due = self.buffer.advance(wm)?;
        let mut fired = Firings::new(&self.aggs);
        // keys stay valid until the output is built: pinned, released after
        let mut release = Vec::with_capacity(due.len());
        for key in due {
            release.push(self.buffer.retain_key(key));
            if let Some(r) = self.buffer.take(key)? {
                self.feed(r, &mut fired, &mut release)?;
                self.relieve(ctx.spill())?;
            }
        }
        if last {
            self.watermark_triggers(wm, &mut fired, &mut release, out)?;
        }
        let emitted = self.build_output(&fired);
        self.buffer.release_keys(release);
        if let Some(batch) = emitted? {
            out.emit(batch);
        }
        self.sync_reservation(ctx)
    }

    fn build_output(&self, fired: &Firings) -> Result<Option<RecordBatch>> {
        let n = fired.keys.len();
        if n == 0 {
            return Ok(None);
        }
        let mut columns: Vec<ArrayRef> = self.buffer.key_columns(&fired.keys)?;
        columns.push(Arc::new(Int64Array::from(fired.starts.clone())));
        columns.push(Arc::new(Int64Array::from(fired.ends.clone())));
        let order: Vec<u32> = (0..n as u32).collect();
        for (acc, agg) in fired.accs.iter().zip(&self.aggs) {
            columns.push(acc.finish(&order, agg)?);
        }
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }
}

/// Applies `action` to a window that keeps rows, the current row being
/// number `end - 1`.
fn apply_rows(
    w: &mut KeyWindow,
    key: u32,
    end: u64,
    action: TriggerAction,
    keep: u64,
    aggs: &[BoundAgg],
    fired: &mut Firings,
) -> Result<()> {
    match action {
        TriggerAction::Continue => {}
        TriggerAction::Fire => {
            fire_rows(w, key, w.start, end, aggs, fired)?;
            w.start = w.start.max(end.saturating_sub(keep));
        }
        TriggerAction::FireAndPurge => {
            fire_rows(w, key, w.start, end, aggs, fired)?;
            w.start = end;
        }
        TriggerAction::Purge => w.start = end,
    }
    Ok(())
}

/// Emits the aggregates of the kept rows numbered `from..to`.
fn fire_rows(
    w: &KeyWindow,
    key: u32,
    from: u64,
    to: u64,
    aggs: &[BoundAgg],
    fired: &mut Firings,
) -> Result<()> {
    let (Some(first), Some(last)) = (
        w.time_at(from),
        to.checked_sub(1).and_then(|l| w.time_at(l)),
    ) else {
        return Ok(());
    };
    if from >= to {
        return Ok(());
    }
    let g = fired.push(key, first, last.saturating_add(1));
    let mut chunk_first = w.base;
    for c in &w.chunks {
        let lo = from.max(chunk_first);
        let hi = to.min(chunk_first + c.len());
        if lo < hi {
            let rows: Vec<u32> = ((lo - chunk_first) as u32..(hi - chunk_first) as u32).collect();
            let groups = vec![g; rows.len()];
            for ((acc, agg), vals) in fired.accs.iter_mut().zip(aggs).zip(&c.values) {
                acc.update(&groups, &rows, vals, &c.times, agg.field.name())?;
            }
        }
        chunk_first += c.len();
    }
    Ok(())
}

impl Operator for CountWindowAggregate {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.buffer.open(ctx);
        self.reservation = ctx.spillable_reservation();
        self.read_back = ctx.fixed_reservation("state read-back");
        Ok(())
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        _out: &mut Output,
    ) -> Result<()> {
        // a window ends 1 ms after its last row: that bound must fit in i64
        let c = self.buffer.time_column();
        if event_times(&batch, c, ctx.operator())?.contains(&i64::MAX) {
            return Err(Error::column(
                batch.schema().field(c).name(),
                ctx.operator(),
                format!(
                    "event time {} ms: a count window ending 1 ms after it does not fit \
                     in 64-bit milliseconds",
                    i64::MAX
                ),
            ));
        }
        self.buffer.push(&batch, ctx)?;
        self.sync_reservation(ctx)
    }

    fn on_watermark(&mut self, wm: Watermark, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        let wm = match wm {
            Watermark::EventTime(t) => {
                let t = lateness_clock(t, self.lateness_ms);
                self.advance(t, ctx, out)?;
                Watermark::EventTime(t)
            }
            idle => idle,
        };
        out.emit_watermark(wm);
        Ok(())
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.advance(i64::MAX, ctx, out)?;
        // windows that never fired are dropped, as in Flink
        let mut keys: Vec<u32> = self.windows.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            if let Some(held) = self.windows.remove(&key).and_then(|mut w| w.key.take()) {
                self.buffer.release_key(held);
            }
        }
        self.kept_bytes = 0;
        self.free_slots = Vec::new();
        self.recent.clear();
        self.spilled = None;
        self.read_back.free();
        self.accs = self.aggs.iter().map(Accumulators::new).collect();
        self.sync_reservation(ctx)
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

mod checkpoint;
mod codec;
mod key_window;
mod spill;
mod trigger;

use key_window::{Chunk, Firings, KeyWindow, Mode};
pub use trigger::{CountTrigger, CountWindow, TriggerAction, WindowTrigger};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod checkpoint_tests;
