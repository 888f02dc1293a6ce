//! Keyed process functions with event-time timers (Flink's
//! `KeyedProcessFunction`), made deterministic by event-time buffering.
//!
//! Owns [`KeyedProcessFunction`], [`KeyedProcessOperator`],
//! [`ProcessContext`], [`KeyRow`] and the closure adapter [`ProcessFn`].
//! Rows of a key are held in an [`EventTimeBuffer`] until the watermark
//! passes them, then handed to the function in (event time, row content)
//! order, interleaved with the key's timers by time: the sequence of calls
//! a key sees is a function of the data only, whatever the executor,
//! parallelism, batching or watermark schedule.
//!
//! May use `weir_core::operator`, `weir_core::message`, `weir_core::key`, `weir_core::time`,
//! `weir_core::memory`, `weir_core::error` and the arrow crates. Never `crate::exec`
//! or `crate::graph`.

mod checkpoint;
mod function;
mod spill;

pub use function::{KeyRow, KeyedProcessFunction, ProcessContext, ProcessFn};

use super::event_buffer::{lateness_clock, EventTimeBuffer, Released};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{FastBuildHasher, KeyHandle};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, Output};
use weir_core::spill::SpillManager;
use weir_core::state::store::StateLog;
use weir_core::state::store::{self, SpillableState};
use weir_core::state::{StateReader, StateWriter};

/// Bytes accounted per registered timer (per-key set and global index).
const TIMER_BYTES: usize = 64;
/// Bytes accounted per key with state, besides the state value itself.
const KEY_STATE_BYTES: usize = 48;

/// Runs a [`KeyedProcessFunction`] per key over event-time-ordered rows.
///
/// ```text
///  batch ──► EventTimeBuffer (per key until the clock passes the rows)
///  watermark W ──► clock w = W - allowed lateness (lateness_clock) ──► keys with rows <= w or timers <= w, in key-id order; per key:
///     rows (time, content order) and timers <= w, merged by time:
///        next row time r, next timer t:  t < r ? on_timer(t) : on_rows(rows at time r)
///        (a timer registered during a call joins the merge at once)
///     state: HashMap<key id, State> (Default on first use; clear_state drops it)
///            over budget ──► the States of keys not run since the last spill (then, if
///            still over, every State) to a StateLog on disk (postcard, key-sorted runs);
///            a key's state comes back when the key next runs
///  emitted rows of all keys ──concat──► out, then the watermark is forwarded
///  end of input = watermark i64::MAX: all rows and timers, then state is dropped
/// ```
/// The buffered rows are reserved from the memory pool, as are timers and
/// each key's `State` (as measured by
/// [`KeyedProcessFunction::state_size`]). When the pool passes half its
/// budget, the buffered rows spill to sorted runs and the states to a
/// [`StateLog`]; only the log's sparse index and Bloom filters (a few
/// bytes a key) and the keys taken back since its last merge stay in
/// memory. State lives until `clear_state`.
/// Processing-time timers are not supported here.
///
/// A function that keeps registering later timers from `on_timer` loops at
/// end of input until it stops (as in Flink): guard such timers with state.
///
/// Checkpoints (`snapshot` / `restore`):
/// ```text
///  put("process")          {buffer watermark, function watermark}   unkeyed; rescale: the highest
///  put_keyed("buffered")   input rows waiting for the watermark, in memory and spilled
///  put_keyed("keys")       key: Binary (arrow-row key) | state: Binary? (postcard State,
///                          in memory or from the state log) | timers: Binary (postcard
///                          (event-time timers, processing-time timers))
///  key group of both keyed entries = key_group(stable_hash(encoded key)), as the router
///  restore: rows back into the buffer, states into memory (spilled again over budget)
/// ```
pub struct KeyedProcessOperator<P: KeyedProcessFunction> {
    // config
    schema: SchemaRef,
    function: P,
    /// Allowed lateness of the input: rows and timers run at `watermark - lateness`.
    lateness_ms: i64,
    // state
    /// Rows waiting for the watermark, and the key dictionary.
    buffer: EventTimeBuffer,
    states: HashMap<u32, P::State, FastBuildHasher>,
    timers: HashMap<u32, BTreeSet<i64>, FastBuildHasher>,
    /// `(time, key id)` of every pending timer.
    timer_index: BTreeSet<(i64, u32)>,
    processing_timers: HashMap<u32, BTreeSet<i64>, FastBuildHasher>,
    /// `(time, key id)` of every pending processing-time timer.
    processing_index: BTreeSet<(i64, u32)>,
    pctx: ProcessContext,
    /// Sum of `state_size` over `states`.
    states_size: usize,
    /// Keys run since the last spill (kept in memory by the first spill attempt).
    recent: HashSet<u32, FastBuildHasher>,
    /// The operator's hold on every key it has a state or timers for
    /// (matched by `settle_key`).
    held: HashMap<u32, KeyHandle, FastBuildHasher>,
    // resources
    /// The states, timers and state log index (made by `open`).
    reservation: MemoryReservation,
    /// States spilled to disk (created on the first spill).
    spilled: Option<StateLog>,
}

impl<P: KeyedProcessFunction> std::fmt::Debug for KeyedProcessOperator<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedProcessOperator")
            .field("schema", &self.schema)
            .field("keys", &self.states.len())
            .field("timers", &self.timer_index.len())
            .finish()
    }
}

impl<P: KeyedProcessFunction> KeyedProcessOperator<P> {
    /// A process operator over `input`, keyed by `keys` (empty: one group),
    /// ordering rows by `time_column`; `function` emits rows of `output`.
    pub fn try_new(
        input: &Schema,
        time_column: &str,
        keys: &[String],
        output: SchemaRef,
        function: P,
        context: &str,
    ) -> Result<Self> {
        let buffer = EventTimeBuffer::try_new(input, time_column, keys, context)?;
        Ok(KeyedProcessOperator {
            pctx: ProcessContext::new(context, output.clone()),
            schema: output,
            function,
            lateness_ms: 0,
            buffer,
            states: HashMap::default(),
            timers: HashMap::default(),
            timer_index: BTreeSet::new(),
            processing_timers: HashMap::default(),
            processing_index: BTreeSet::new(),
            states_size: 0,
            recent: HashSet::default(),
            held: HashMap::default(),
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            spilled: None,
        })
    }

    /// The input's allowed lateness: rows up to this far behind the
    /// watermark are admitted by the sources, so rows and event-time timers
    /// run at `watermark - lateness` ([`lateness_clock`], also the
    /// forwarded watermark) and no admitted row is dropped.
    pub fn with_lateness(mut self, lateness_ms: i64) -> Self {
        self.lateness_ms = lateness_ms.max(0);
        self
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The function (e.g. to inspect it after a test run).
    pub fn function(&self) -> &P {
        &self.function
    }

    fn size_of_state(&self, key: u32) -> usize {
        self.states
            .get(&key)
            .map_or(0, |s| self.function.state_size(s))
    }

    fn holds(&self, key: u32) -> bool {
        self.states.contains_key(&key)
            || self.timers.contains_key(&key)
            || self.processing_timers.contains_key(&key)
    }

    /// Matches the operator's hold on `key` (a valid id) to whether it has a
    /// state or timers for it: taken when it starts to, given back when it
    /// stops (the key is then forgotten unless the buffer has rows of it).
    fn settle_key(&mut self, key: u32) {
        if self.holds(key) {
            if !self.held.contains_key(&key) {
                let handle = self.buffer.retain_key(key);
                self.held.insert(key, handle);
            }
        } else if let Some(handle) = self.held.remove(&key) {
            self.buffer.release_key(handle);
        }
    }

    /// Moves `key`'s processing-time timers into the context (and back with `store`).
    fn load_processing_timers(&mut self, key: u32) {
        let timers = self.processing_timers.remove(&key).unwrap_or_default();
        for &t in &timers {
            self.processing_index.remove(&(t, key));
        }
        self.pctx.processing_timers = timers;
    }

    fn store_processing_timers(&mut self, key: u32) {
        let timers = std::mem::take(&mut self.pctx.processing_timers);
        if !timers.is_empty() {
            self.processing_index
                .extend(timers.iter().map(|&t| (t, key)));
            self.processing_timers.insert(key, timers);
        }
    }

    /// Calls `on_processing_timer` for every timer at or before `now`.
    fn fire_processing_timers(&mut self, now: i64) -> Result<()> {
        let mut keys: Vec<u32> = self
            .processing_index
            .range(..=(now, u32::MAX))
            .map(|&(_, k)| k)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            self.load_state(key)?;
            self.recent.insert(key);
            let size_before = self.size_of_state(key);
            // the id stays valid while the timers run
            let pin = self.buffer.retain_key(key);
            let key_row = self.key_row(key)?;
            self.load_processing_timers(key);
            let mut result = Ok(());
            while let Some(t) = self
                .pctx
                .processing_timers
                .first()
                .copied()
                .filter(|&t| t <= now)
            {
                self.pctx.processing_timers.remove(&t);
                let state = self.states.entry(key).or_default();
                result = self
                    .function
                    .on_processing_timer(&key_row, t, state, &mut self.pctx);
                if std::mem::take(&mut self.pctx.clear) {
                    self.states.remove(&key);
                }
                if result.is_err() {
                    break;
                }
            }
            self.store_processing_timers(key);
            self.states_size = self.states_size - size_before + self.size_of_state(key);
            self.settle_key(key);
            self.buffer.release_key(pin);
            result?;
        }
        Ok(())
    }

    fn emit_pending(&mut self, out: &mut Output) -> Result<()> {
        let emitted = std::mem::take(&mut self.pctx.emitted);
        if !emitted.is_empty() {
            out.emit(arrow_select::concat::concat_batches(
                &self.schema,
                &emitted,
            )?);
        }
        Ok(())
    }

    fn key_row(&self, key: u32) -> Result<KeyRow> {
        Ok(KeyRow {
            columns: self.key_rows(&[key])?,
        })
    }

    /// The key columns of `keys`, one row each, decoded at once.
    fn key_rows(&self, keys: &[u32]) -> Result<RecordBatch> {
        let columns = self.buffer.key_columns(keys)?;
        let options = RecordBatchOptions::new().with_row_count(Some(keys.len()));
        Ok(RecordBatch::try_new_with_options(
            self.buffer.key_schema().clone(),
            columns,
            &options,
        )?)
    }

    fn state_error(&self, message: String) -> Error {
        Error::State {
            operator: self.pctx.operator.clone(),
            message,
        }
    }

    /// Advances to watermark `wm`: runs every key with due rows or timers.
    fn advance(&mut self, wm: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        // in steps when rows were spilled, so reading them back stays bounded
        loop {
            let step = self.buffer.next_step(wm)?;
            self.advance_step(step, ctx, out)?;
            if step >= wm {
                return Ok(());
            }
        }
    }

    fn advance_step(&mut self, wm: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if self.buffer.watermark().is_some_and(|w| w >= wm) {
            return Ok(());
        }
        let mut keys = self.buffer.advance(wm)?;
        keys.extend(self.timer_index.range(..=(wm, u32::MAX)).map(|&(_, k)| k));
        keys.sort_unstable();
        keys.dedup();
        self.pctx.watermark = wm;
        // keys in chunks (EventTimeBuffer::chunk_len): their rows are gathered
        // with one copy (and their key rows decoded at once), not one per key
        let mut at = 0;
        while at < keys.len() {
            let end = at + self.buffer.chunk_len(&keys[at..]);
            self.process_keys(&keys[at..end], wm)?;
            at = end;
        }
        let emitted = std::mem::take(&mut self.pctx.emitted);
        if !emitted.is_empty() {
            out.emit(arrow_select::concat::concat_batches(
                &self.schema,
                &emitted,
            )?);
        }
        self.sync_reservation(ctx)
    }

    /// Runs `keys` (in order) at watermark `wm`: their due rows and timers.
    fn process_keys(&mut self, keys: &[u32], wm: i64) -> Result<()> {
        // the ids stay valid while the keys run
        let pins: Vec<_> = keys.iter().map(|&k| self.buffer.retain_key(k)).collect();
        let result = self.process_pinned(keys, wm);
        self.buffer.release_keys(pins);
        result
    }

    fn process_pinned(&mut self, keys: &[u32], wm: i64) -> Result<()> {
        let released = self.buffer.take_many(keys)?;
        let key_rows = self.key_rows(keys)?;
        let mut released = released.into_iter().peekable();
        for (i, &key) in keys.iter().enumerate() {
            let rows = released.next_if(|r| r.key == key);
            let key_row = KeyRow {
                columns: key_rows.slice(i, 1),
            };
            self.process_key(key, key_row, rows, wm)?;
        }
        Ok(())
    }

    fn process_key(
        &mut self,
        key: u32,
        key_row: KeyRow,
        released: Option<Released>,
        wm: i64,
    ) -> Result<()> {
        self.load_state(key)?;
        self.recent.insert(key);
        let size_before = self.size_of_state(key);
        let timers = self.timers.remove(&key).unwrap_or_default();
        for &t in &timers {
            self.timer_index.remove(&(t, key));
        }
        self.pctx.timers = timers;
        self.load_processing_timers(key);
        let result = self.run_key(key, &key_row, released, wm);
        self.states_size = self.states_size - size_before + self.size_of_state(key);
        self.store_processing_timers(key);
        let timers = std::mem::take(&mut self.pctx.timers);
        self.pctx.clear = false;
        if !timers.is_empty() {
            self.timer_index.extend(timers.iter().map(|&t| (t, key)));
            self.timers.insert(key, timers);
        }
        self.settle_key(key);
        result
    }

    /// Merges the key's rows and due timers by time and calls the function.
    fn run_key(
        &mut self,
        key: u32,
        key_row: &KeyRow,
        released: Option<Released>,
        wm: i64,
    ) -> Result<()> {
        let (rows, times) = match released {
            Some(r) => (Some(r.rows), r.times),
            None => (None, Vec::new()),
        };
        let mut pos = 0;
        loop {
            let next_row = times.get(pos).copied();
            let next_timer = self.pctx.timers.first().copied().filter(|&t| t <= wm);
            match (next_row, next_timer, &rows) {
                (_, Some(t), _) if next_row.is_none_or(|r| t < r) => {
                    self.pctx.timers.remove(&t);
                    self.pctx.time = t;
                    let state = self.states.entry(key).or_default();
                    self.function.on_timer(key_row, t, state, &mut self.pctx)?;
                }
                (Some(r), _, Some(rows)) => {
                    let n = times[pos..].iter().take_while(|&&x| x == r).count();
                    let slice = rows.slice(pos, n);
                    pos += n;
                    self.pctx.time = r;
                    let state = self.states.entry(key).or_default();
                    self.function
                        .on_rows(key_row, &slice, state, &mut self.pctx)?;
                }
                _ => break,
            }
            if std::mem::take(&mut self.pctx.clear) {
                self.states.remove(&key);
            }
        }
        Ok(())
    }
}

impl<P: KeyedProcessFunction> Operator for KeyedProcessOperator<P> {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.buffer.open(ctx);
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
        ctx.set_processing_timer(self.processing_index.first().map(|&(t, _)| t));
        out.emit_watermark(wm);
        Ok(())
    }

    fn on_processing_time(&mut self, now: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.fire_processing_timers(now)?;
        self.emit_pending(out)?;
        ctx.set_processing_timer(self.processing_index.first().map(|&(t, _)| t));
        self.sync_reservation(ctx)
    }

    fn snapshot(&mut self, _ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        self.snapshot_state(state)
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.restore_state(ctx, state)
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.advance(i64::MAX, ctx, out)?;
        // Processing-time timers still pending fire now (bounded rounds: a
        // function that keeps re-registering timers stops after 100).
        for _ in 0..100 {
            if self.processing_index.is_empty() {
                break;
            }
            self.fire_processing_timers(i64::MAX)?;
        }
        self.emit_pending(out)?;
        self.processing_timers.clear();
        self.processing_index.clear();
        ctx.set_processing_timer(None);
        self.states.clear();
        self.states_size = 0;
        self.recent.clear();
        self.spilled = None;
        self.timers.clear();
        self.timer_index.clear();
        let held = std::mem::take(&mut self.held);
        self.buffer.release_keys(held.into_values());
        self.sync_reservation(ctx)
    }
}

#[cfg(test)]
mod checkpoint_tests;

#[cfg(test)]
mod tests;
