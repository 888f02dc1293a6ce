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
/// Checkpoint entries: the unkeyed [`ProcessMeta`], the buffered input rows
/// and one row per key with state or timers.
const META_ENTRY: &str = "process";
const BUFFER_ENTRY: &str = "buffered";
const KEYS_ENTRY: &str = "keys";
/// Keys per keyed state batch of a checkpoint.
const SNAPSHOT_KEYS: usize = 4096;

/// The unkeyed part of a process operator's checkpoint.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct ProcessMeta {
    /// The event-time buffer's watermark (rows at or below it were released).
    watermark: Option<i64>,
    /// The watermark the function last saw ([`ProcessContext::watermark`]).
    function_watermark: i64,
}

/// A key's timers in a checkpoint: event time, processing time.
type KeyTimers = (Vec<i64>, Vec<i64>);
/// A key's checkpoint row: encoded key, postcard state (if any), timers.
type KeyEntry = (Vec<u8>, (Option<Vec<u8>>, KeyTimers));

/// The key the function is called for.
#[derive(Debug, Clone)]
pub struct KeyRow {
    columns: RecordBatch,
}

impl KeyRow {
    /// The key's column values: one row, one column per key column (no
    /// columns when the stream is not keyed).
    pub fn columns(&self) -> &RecordBatch {
        &self.columns
    }
}

/// What a [`KeyedProcessFunction`] can do during a call: emit rows, manage
/// the key's event-time timers, read the watermark, drop the key's state.
#[derive(Debug)]
pub struct ProcessContext {
    // config
    operator: String,
    schema: SchemaRef,
    // state
    watermark: i64,
    time: i64,
    timers: BTreeSet<i64>,
    processing_timers: BTreeSet<i64>,
    clear: bool,
    emitted: Vec<RecordBatch>,
}

impl ProcessContext {
    fn new(operator: &str, schema: SchemaRef) -> Self {
        ProcessContext {
            operator: operator.to_string(),
            schema,
            watermark: i64::MIN,
            time: i64::MIN,
            timers: BTreeSet::new(),
            processing_timers: BTreeSet::new(),
            clear: false,
            emitted: Vec::new(),
        }
    }

    /// Emits rows; they must have the operator's declared output schema
    /// (same column names and types, no nulls in non-nullable columns).
    pub fn emit(&mut self, batch: RecordBatch) -> Result<()> {
        let mismatch = |message: String| Error::SchemaMismatch {
            location: format!("keyed process function `{}`", self.operator),
            message,
        };
        let want = self.schema.fields();
        let got = batch.schema();
        let same = got.fields().len() == want.len()
            && got
                .fields()
                .iter()
                .zip(want.iter())
                .all(|(g, w)| g.name() == w.name() && g.data_type() == w.data_type());
        if !same {
            return Err(mismatch(format!(
                "emitted columns ({}) differ from the declared output ({})",
                describe(&got),
                describe(&self.schema)
            )));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(|e| mismatch(format!("emitted rows do not fit the declared output: {e}")))?;
        self.emitted.push(batch);
        Ok(())
    }

    /// Asks for [`KeyedProcessFunction::on_timer`] at event time `time` for
    /// this key (once per distinct time). A time at or before the rows or
    /// timer being processed fires right after the current call.
    pub fn register_event_timer(&mut self, time: i64) {
        self.timers.insert(time);
    }

    /// Cancels this key's timer at `time`, if any.
    pub fn delete_event_timer(&mut self, time: i64) {
        self.timers.remove(&time);
    }

    /// Asks for [`KeyedProcessFunction::on_processing_timer`] once the wall
    /// clock reaches `time` (epoch ms) for this key. Pipelined runs fire it
    /// then; batch runs fire every pending processing-time timer at end of
    /// input (as Flink's BATCH mode). Results then depend on timing.
    pub fn register_processing_timer(&mut self, time: i64) {
        self.processing_timers.insert(time);
    }

    /// Cancels this key's processing-time timer at `time`, if any.
    pub fn delete_processing_timer(&mut self, time: i64) {
        self.processing_timers.remove(&time);
    }

    /// The wall clock, epoch milliseconds.
    pub fn processing_time(&self) -> i64 {
        weir_core::operator::now_ms()
    }

    /// This key's pending event-time timers, in time order.
    pub fn event_timers(&self) -> impl Iterator<Item = i64> + '_ {
        self.timers.iter().copied()
    }

    /// The watermark being processed: every row and timer handed to the
    /// function now is at or below it.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// The event time of the rows or the timer being processed.
    pub fn time(&self) -> i64 {
        self.time
    }

    /// Drops this key's state after the current call; the next call for
    /// the key starts from `State::default()`. Timers are kept.
    pub fn clear_state(&mut self) {
        self.clear = true;
    }

    /// The declared output schema.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.schema
    }
}

fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A user function called per key with its rows in event-time order and
/// its timers (Flink's `KeyedProcessFunction`).
///
/// For one key, calls come in increasing event time: all rows with one
/// event time in one `on_rows` call, and a timer at `t` after the rows with
/// time `<= t` and before later rows. Calls for different keys may come in
/// any order: keep per-key data in `State`, not in `self`, or results will
/// depend on the parallelism.
pub trait KeyedProcessFunction: Send {
    /// Per-key state (value, list and map state are fields of this type).
    /// It is serialized (with `postcard`, a compact binary serde format that
    /// keeps every `f64`, NaN included) when keyed state spills to disk:
    /// derive `Serialize` and `Deserialize`. Types that need a
    /// self-describing format (`#[serde(untagged)]` enums,
    /// `serde_json::Value`) are refused with an error naming the operator.
    type State: Default + Send + serde::Serialize + serde::de::DeserializeOwned + 'static;

    /// Bytes of memory `state` uses, for the memory budget. The default is
    /// its shallow size; override it when the state owns heap memory
    /// (vectors, maps, strings), or the state will spill later than it should.
    fn state_size(&self, state: &Self::State) -> usize {
        let _ = state;
        std::mem::size_of::<Self::State>()
    }

    /// Rows of one key whose time the watermark passed, all with the same
    /// event time ([`ProcessContext::time`]), ties ordered by row content.
    fn on_rows(
        &mut self,
        key: &KeyRow,
        rows: &RecordBatch,
        state: &mut Self::State,
        ctx: &mut ProcessContext,
    ) -> Result<()>;

    /// An event-time timer of this key fired (`time` <= watermark), after
    /// rows up to `time` were delivered.
    fn on_timer(
        &mut self,
        key: &KeyRow,
        time: i64,
        state: &mut Self::State,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let _ = (key, time, state, ctx);
        Ok(())
    }

    /// A processing-time timer of this key fired (the wall clock reached `time`).
    fn on_processing_timer(
        &mut self,
        key: &KeyRow,
        time: i64,
        state: &mut Self::State,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let _ = (key, time, state, ctx);
        Ok(())
    }
}

/// A [`KeyedProcessFunction`] made of a closure over rows (no timer callback).
pub struct ProcessFn<S, F> {
    // config
    f: F,
    _state: PhantomData<fn() -> S>,
}

impl<S, F> ProcessFn<S, F> {
    /// Wraps `f`, called as `on_rows`.
    pub fn new(f: F) -> Self {
        ProcessFn {
            f,
            _state: PhantomData,
        }
    }
}

impl<S, F> std::fmt::Debug for ProcessFn<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProcessFn")
    }
}

impl<S, F> KeyedProcessFunction for ProcessFn<S, F>
where
    S: Default + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    F: FnMut(&KeyRow, &RecordBatch, &mut S, &mut ProcessContext) -> Result<()> + Send,
{
    type State = S;

    fn on_rows(
        &mut self,
        key: &KeyRow,
        rows: &RecordBatch,
        state: &mut S,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        (self.f)(key, rows, state, ctx)
    }
}

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

    fn state_bytes(&self) -> usize {
        self.timer_index.len() * TIMER_BYTES
            + self.states.len() * KEY_STATE_BYTES
            + self.states_size
            + self.spilled.as_ref().map_or(0, StateLog::memory_size)
    }

    /// Matches the reservation to the state, spilling states while the
    /// pool refuses (see [`store::sync`] and the [`SpillableState`] impl).
    fn sync_reservation(&mut self, ctx: &Ctx) -> Result<()> {
        // rows the buffer read back and did not release yet become state
        self.buffer.settle();
        store::sync(self, ctx.spill())
    }

    /// Writes in-memory states to the log and drops them from memory: all
    /// of them, or (`cold_only`) those of keys not run since the last spill.
    fn spill_states(&mut self, spill: &Arc<SpillManager>, cold_only: bool) -> Result<()> {
        let recent = std::mem::take(&mut self.recent);
        let log = self
            .spilled
            .get_or_insert_with(|| StateLog::new(spill, &self.pctx.operator));
        let mut encoded: Vec<(u32, Vec<u8>)> = Vec::with_capacity(self.states.len());
        for (&key, state) in &self.states {
            if cold_only && recent.contains(&key) {
                continue;
            }
            let bytes = postcard::to_stdvec(state).map_err(|e| Error::State {
                operator: self.pctx.operator.clone(),
                message: format!("cannot serialize a key's state to spill it: {e}"),
            })?;
            encoded.push((key, bytes));
        }
        log.append(
            encoded
                .iter()
                .map(|(key, bytes)| (self.buffer.key_bytes(*key), bytes.as_slice())),
        )?;
        let keys: Vec<u32> = encoded.iter().map(|(k, _)| *k).collect();
        for key in &keys {
            let state = self.states.remove(key).expect("encoded from the map");
            self.states_size -= self.function.state_size(&state);
        }
        for key in keys {
            // the key is still held if it has timers
            self.settle_key(key);
        }
        Ok(())
    }

    /// Brings `key`'s state back from the log, if it was spilled.
    fn load_state(&mut self, key: u32) -> Result<()> {
        let Some(log) = self.spilled.as_mut() else {
            return Ok(());
        };
        if log.is_empty() || self.states.contains_key(&key) {
            return Ok(());
        }
        let Some(bytes) = log.take(self.buffer.key_bytes(key))? else {
            return Ok(());
        };
        let state: P::State = postcard::from_bytes(&bytes).map_err(|e| Error::State {
            operator: self.pctx.operator.clone(),
            message: format!("cannot read a spilled state back: {e}"),
        })?;
        self.states_size += self.function.state_size(&state);
        self.states.insert(key, state);
        self.settle_key(key);
        Ok(())
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
        let columns = self.buffer.key_columns(&[key])?;
        let options = RecordBatchOptions::new().with_row_count(Some(1));
        let columns =
            RecordBatch::try_new_with_options(self.buffer.key_schema().clone(), columns, &options)?;
        Ok(KeyRow { columns })
    }

    fn state_error(&self, message: String) -> Error {
        Error::State {
            operator: self.pctx.operator.clone(),
            message,
        }
    }

    /// The schema of the per-key checkpoint rows.
    fn keys_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, false),
            Field::new("state", DataType::Binary, true),
            Field::new("timers", DataType::Binary, false),
        ]))
    }

    /// Writes the buffered rows, every key's state (in memory and in the
    /// spill log) and timers, and the watermarks.
    fn snapshot_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.put(
            META_ENTRY,
            &ProcessMeta {
                watermark: self.buffer.watermark(),
                function_watermark: self.pctx.watermark,
            },
        )?;
        for rows in self.buffer.snapshot_rows()? {
            let groups = self.buffer.key_groups(&rows)?;
            if !groups.is_empty() {
                state.put_keyed(BUFFER_ENTRY, &rows, &groups)?;
            }
        }
        // key bytes -> (state, timers); spilled states are disjoint from
        // those in memory (loading one takes it out of the log)
        let mut keys: HashMap<Vec<u8>, (Option<Vec<u8>>, KeyTimers)> = HashMap::new();
        let ids: BTreeSet<u32> = self
            .states
            .keys()
            .chain(self.timers.keys())
            .chain(self.processing_timers.keys())
            .copied()
            .collect();
        for id in ids {
            let encoded = match self.states.get(&id) {
                Some(st) => Some(postcard::to_stdvec(st).map_err(|e| {
                    self.state_error(format!("cannot serialize a key's state: {e}"))
                })?),
                None => None,
            };
            let timers = |m: &HashMap<u32, BTreeSet<i64>, FastBuildHasher>| -> Vec<i64> {
                m.get(&id)
                    .map(|t| t.iter().copied().collect())
                    .unwrap_or_default()
            };
            keys.insert(
                self.buffer.key_bytes(id).to_vec(),
                (
                    encoded,
                    (timers(&self.timers), timers(&self.processing_timers)),
                ),
            );
        }
        if let Some(log) = &self.spilled {
            for (key, value) in log.entries()? {
                keys.entry(key).or_default().0 = Some(value);
            }
        }
        let keys: Vec<KeyEntry> = keys.into_iter().collect();
        for chunk in keys.chunks(SNAPSHOT_KEYS) {
            let mut timers = Vec::with_capacity(chunk.len());
            for (_, (_, t)) in chunk {
                timers.push(postcard::to_stdvec(t).map_err(|e| {
                    self.state_error(format!("cannot serialize a key's timers: {e}"))
                })?);
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(BinaryArray::from_iter_values(
                    chunk.iter().map(|(k, _)| k.as_slice()),
                )),
                Arc::new(BinaryArray::from_iter(
                    chunk.iter().map(|(_, (st, _))| st.as_deref()),
                )),
                Arc::new(BinaryArray::from_iter_values(timers.iter())),
            ];
            let batch = RecordBatch::try_new(Self::keys_schema(), columns)?;
            let groups: Vec<u16> = chunk
                .iter()
                .map(|(k, _)| weir_core::key::key_group(weir_core::key::stable_hash(k)) as u16)
                .collect();
            state.put_keyed(KEYS_ENTRY, &batch, &groups)?;
        }
        Ok(())
    }

    /// Restores what [`snapshot_state`](Self::snapshot_state) wrote, possibly
    /// by several old subtasks (a rescale): the keyed rows are this
    /// subtask's now; the watermarks are the highest of the old subtasks'
    /// (equal in an aligned checkpoint, where every subtask saw the same
    /// watermarks before the barrier; the window operators merge the same way). States come back into memory and
    /// spill again if the budget asks for it.
    fn restore_state(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        let metas: Vec<ProcessMeta> = state.values(META_ENTRY)?;
        if metas.is_empty() {
            return Ok(());
        }
        let watermark = metas.iter().map(|m| m.watermark).max().flatten();
        self.buffer.restore_watermark(watermark);
        self.pctx.watermark = metas
            .iter()
            .map(|m| m.function_watermark)
            .max()
            .unwrap_or(i64::MIN);
        for rows in state.keyed(BUFFER_ENTRY)? {
            self.buffer.restore_rows(&rows, ctx)?;
            self.sync_reservation(ctx)?;
        }
        for batch in state.keyed(KEYS_ENTRY)? {
            if batch.schema().fields() != Self::keys_schema().fields() {
                return Err(self.state_error(format!(
                    "checkpoint entry `{KEYS_ENTRY}` has columns ({}), not the process operator's",
                    describe(&batch.schema())
                )));
            }
            let (keys, states, timers) = (
                batch.column(0).as_binary::<i32>(),
                batch.column(1).as_binary::<i32>(),
                batch.column(2).as_binary::<i32>(),
            );
            for r in 0..batch.num_rows() {
                let lookup = self.buffer.intern_key(keys.value(r));
                let id = lookup.id();
                if states.is_valid(r) {
                    let st: P::State = postcard::from_bytes(states.value(r)).map_err(|e| {
                        self.state_error(format!("cannot read a key's state back: {e}"))
                    })?;
                    self.states_size += self.function.state_size(&st);
                    self.states.insert(id, st);
                }
                let (event, processing): KeyTimers = postcard::from_bytes(timers.value(r))
                    .map_err(|e| {
                        self.state_error(format!("cannot read a key's timers back: {e}"))
                    })?;
                if !event.is_empty() {
                    self.timer_index.extend(event.iter().map(|&t| (t, id)));
                    self.timers.insert(id, event.into_iter().collect());
                }
                if !processing.is_empty() {
                    self.processing_index
                        .extend(processing.iter().map(|&t| (t, id)));
                    self.processing_timers
                        .insert(id, processing.into_iter().collect());
                }
                self.settle_key(id);
                self.buffer.release_key(lookup);
            }
        }
        ctx.set_processing_timer(self.processing_index.first().map(|&(t, _)| t));
        self.sync_reservation(ctx)
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
        for key in keys {
            self.process_key(key, wm)?;
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

    fn process_key(&mut self, key: u32, wm: i64) -> Result<()> {
        self.load_state(key)?;
        self.recent.insert(key);
        let size_before = self.size_of_state(key);
        // the id stays valid while the key runs
        let pin = self.buffer.retain_key(key);
        let released = self.buffer.take(key)?;
        let timers = self.timers.remove(&key).unwrap_or_default();
        for &t in &timers {
            self.timer_index.remove(&(t, key));
        }
        self.pctx.timers = timers;
        self.load_processing_timers(key);
        let result = self.run_key(key, released, wm);
        self.states_size = self.states_size - size_before + self.size_of_state(key);
        self.store_processing_timers(key);
        let timers = std::mem::take(&mut self.pctx.timers);
        self.pctx.clear = false;
        if !timers.is_empty() {
            self.timer_index.extend(timers.iter().map(|&t| (t, key)));
            self.timers.insert(key, timers);
        }
        self.settle_key(key);
        self.buffer.release_key(pin);
        result
    }

    /// Merges the key's rows and due timers by time and calls the function.
    fn run_key(&mut self, key: u32, released: Option<Released>, wm: i64) -> Result<()> {
        let key_row = self.key_row(key)?;
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
                    self.function.on_timer(&key_row, t, state, &mut self.pctx)?;
                }
                (Some(r), _, Some(rows)) => {
                    let n = times[pos..].iter().take_while(|&&x| x == r).count();
                    let slice = rows.slice(pos, n);
                    pos += n;
                    self.pctx.time = r;
                    let state = self.states.entry(key).or_default();
                    self.function
                        .on_rows(&key_row, &slice, state, &mut self.pctx)?;
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

/// Spilling writes the rows waiting in the buffer first, then the states of
/// keys not run since the last spill (second chance), then, if the pool
/// still refuses, every state.
impl<P: KeyedProcessFunction> SpillableState for KeyedProcessOperator<P> {
    fn memory_bytes(&self) -> usize {
        self.state_bytes() + self.buffer.settled_bytes()
    }

    fn can_spill(&self) -> bool {
        !self.states.is_empty()
            || self.buffer.can_spill()
            || self.spilled.as_ref().is_some_and(StateLog::has_taken)
    }

    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        if self.buffer.can_spill() {
            let name = self.reservation.consumer().to_string();
            return self.buffer.spill_rows(spill, &name);
        }
        let cold = self.states.keys().any(|k| !self.recent.contains(k));
        self.spill_states(spill, cold && !self.recent.is_empty())?;
        // the keys of spilled states left the buffer's dictionary
        self.buffer.settle();
        Ok(())
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
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
mod tests {
    use super::*;
    use crate::basic::tests::{batches, test_ctx};
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::{DataType, Field};
    use std::collections::VecDeque;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    fn input(rows: &[(&str, i64, i64)]) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "k",
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
            ),
            (
                "t",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as _,
            ),
            (
                "v",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))) as _,
            ),
        ])
        .unwrap()
    }

    fn out_schema(last: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("t", DataType::Int64, false),
            Field::new(last, DataType::Int64, false),
        ]))
    }

    fn output_batch(schema: &SchemaRef, k: &KeyRow, t: Vec<i64>, x: Vec<i64>) -> RecordBatch {
        let key = k.columns().column(0).as_string::<i32>().value(0);
        let n = t.len();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![key; n])),
                Arc::new(Int64Array::from(t)),
                Arc::new(Int64Array::from(x)),
            ],
        )
        .unwrap()
    }

    fn table(got: &[RecordBatch]) -> Vec<(String, i64, i64)> {
        let mut v = Vec::new();
        for b in got {
            let k = b.column(0).as_string::<i32>();
            let t = b.column(1).as_primitive::<Int64Type>();
            let x = b.column(2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                v.push((k.value(i).to_string(), t.value(i), x.value(i)));
            }
        }
        v.sort();
        v
    }

    /// Feeds `rows` in batches of `batch`; after each batch the watermark
    /// goes to just below the smallest time still to come.
    fn run<P: KeyedProcessFunction>(
        op: &mut KeyedProcessOperator<P>,
        rows: &[(&str, i64, i64)],
        batch: usize,
    ) -> Vec<RecordBatch> {
        let (mut ctx, mut out) = (test_ctx(), Output::new());
        op.open(&mut ctx).unwrap();
        let mut got = Vec::new();
        for (i, chunk) in rows.chunks(batch).enumerate() {
            op.on_batch(0, input(chunk), &mut ctx, &mut out).unwrap();
            let rest = &rows[((i + 1) * batch).min(rows.len())..];
            if let Some(min) = rest.iter().map(|r| r.1).min() {
                op.on_watermark(Watermark::EventTime(min - 1), &mut ctx, &mut out)
                    .unwrap();
            }
            got.extend(batches(&mut out));
        }
        op.on_watermark(Watermark::MAX, &mut ctx, &mut out).unwrap();
        op.on_end_of_input(&mut ctx, &mut out).unwrap();
        got.extend(batches(&mut out));
        assert_eq!(ctx.pool().reserved(), 0, "memory returned at end of input");
        assert_eq!(ctx.metrics().late_rows.load(Ordering::Relaxed), 0);
        got
    }

    fn running_sum() -> KeyedProcessOperator<impl KeyedProcessFunction> {
        let schema = out_schema("sum");
        let out = schema.clone();
        let f = ProcessFn::new(
            move |k: &KeyRow, rows: &RecordBatch, sum: &mut i64, ctx: &mut ProcessContext| {
                let t = rows.column(1).as_primitive::<Int64Type>();
                let v = rows.column(2).as_primitive::<Int64Type>();
                let mut sums = Vec::new();
                for x in v.values() {
                    *sum += x;
                    sums.push(*sum);
                }
                ctx.emit(output_batch(&out, k, t.values().to_vec(), sums))
            },
        );
        KeyedProcessOperator::try_new(
            &input(&[]).schema(),
            "t",
            &["k".into()],
            schema,
            f,
            "running",
        )
        .unwrap()
    }

    fn sum_rows() -> Vec<(&'static str, i64, i64)> {
        vec![
            ("a", 1, 1),
            ("a", 2, 2),
            ("a", 3, 4),
            ("a", 4, 8),
            ("b", 10, 10),
            ("b", 20, 30),
            ("b", 20, 20),
            ("b", 30, 40),
            ("a", 5, 16),
        ]
    }

    #[test]
    fn running_sum_is_the_same_for_shuffled_and_sorted_input() {
        let want = vec![
            ("a".to_string(), 1, 1),
            ("a".to_string(), 2, 3),
            ("a".to_string(), 3, 7),
            ("a".to_string(), 4, 15),
            ("a".to_string(), 5, 31),
            ("b".to_string(), 10, 10),
            // ties at 20 in content order: v = 20 before v = 30
            ("b".to_string(), 20, 30),
            ("b".to_string(), 20, 60),
            ("b".to_string(), 30, 100),
        ];
        let rows = sum_rows();
        assert_eq!(table(&run(&mut running_sum(), &rows, rows.len())), want);
        for perm in [[8, 3, 6, 0, 5, 2, 7, 1, 4], [7, 6, 5, 4, 3, 2, 1, 0, 8]] {
            let shuffled: Vec<_> = perm.iter().map(|&i| rows[i]).collect();
            for batch in [1, 2, 4] {
                assert_eq!(
                    table(&run(&mut running_sum(), &shuffled, batch)),
                    want,
                    "{perm:?} {batch}"
                );
            }
        }
    }

    /// Each row sets a timer 500 ms later; a timer emits the number of the
    /// key's rows in the last 1000 ms `(T - 1000, T]`.
    struct RecentCount {
        schema: SchemaRef,
    }

    impl KeyedProcessFunction for RecentCount {
        type State = VecDeque<i64>;

        fn on_rows(
            &mut self,
            _key: &KeyRow,
            rows: &RecordBatch,
            state: &mut VecDeque<i64>,
            ctx: &mut ProcessContext,
        ) -> Result<()> {
            for &t in rows.column(1).as_primitive::<Int64Type>().values() {
                state.push_back(t);
                ctx.register_event_timer(t + 500);
            }
            Ok(())
        }

        fn on_timer(
            &mut self,
            key: &KeyRow,
            time: i64,
            state: &mut VecDeque<i64>,
            ctx: &mut ProcessContext,
        ) -> Result<()> {
            while state.front().is_some_and(|&t| t <= time - 1000) {
                state.pop_front();
            }
            let n = state.iter().filter(|&&t| t <= time).count() as i64;
            ctx.emit(output_batch(&self.schema, key, vec![time], vec![n]))?;
            if state.is_empty() {
                ctx.clear_state();
            }
            Ok(())
        }
    }

    fn recent_count() -> KeyedProcessOperator<RecentCount> {
        let schema = out_schema("n");
        KeyedProcessOperator::try_new(
            &input(&[]).schema(),
            "t",
            &["k".into()],
            schema.clone(),
            RecentCount { schema },
            "recent",
        )
        .unwrap()
    }

    #[test]
    fn timers_count_recent_rows_after_the_rows_up_to_their_time() {
        let rows = vec![
            ("a", 100, 0),
            ("a", 500, 0),
            ("a", 900, 0),
            ("a", 1200, 0),
            ("a", 2500, 0),
            ("b", 1000, 0),
            ("b", 1500, 1),
            ("b", 1500, 2),
        ];
        // a: timers 600, 1000, 1400, 1700, 3000; b: timers 1500 (after its
        // rows at 1500), 2000 (registered twice, fires once)
        let want = vec![
            ("a".to_string(), 600, 2),
            ("a".to_string(), 1000, 3),
            ("a".to_string(), 1400, 3),
            ("a".to_string(), 1700, 2),
            ("a".to_string(), 3000, 1),
            ("b".to_string(), 1500, 3),
            ("b".to_string(), 2000, 2),
        ];
        assert_eq!(table(&run(&mut recent_count(), &rows, rows.len())), want);
        let shuffled: Vec<_> = [7, 4, 0, 5, 2, 6, 3, 1].iter().map(|&i| rows[i]).collect();
        for batch in [1, 3] {
            assert_eq!(table(&run(&mut recent_count(), &shuffled, batch)), want);
        }
        // watermarks one ms at a time give the same calls
        let mut op = recent_count();
        let (mut ctx, mut out) = (test_ctx(), Output::new());
        op.open(&mut ctx).unwrap();
        op.on_batch(0, input(&rows), &mut ctx, &mut out).unwrap();
        for w in (0..3100).step_by(7) {
            op.on_watermark(Watermark::EventTime(w), &mut ctx, &mut out)
                .unwrap();
        }
        op.on_end_of_input(&mut ctx, &mut out).unwrap();
        assert_eq!(table(&batches(&mut out)), want);
        assert!(op.states.is_empty(), "state dropped at end of input");
        assert_eq!(ctx.pool().reserved(), 0);
    }

    #[test]
    fn late_rows_are_counted_and_dropped() {
        let mut op = running_sum();
        let (mut ctx, mut out) = (test_ctx(), Output::new());
        op.open(&mut ctx).unwrap();
        op.on_watermark(Watermark::EventTime(100), &mut ctx, &mut out)
            .unwrap();
        op.on_batch(
            0,
            input(&[("a", 100, 1), ("a", 50, 2), ("a", 150, 4)]),
            &mut ctx,
            &mut out,
        )
        .unwrap();
        op.on_end_of_input(&mut ctx, &mut out).unwrap();
        assert_eq!(ctx.metrics().late_rows.load(Ordering::Relaxed), 2);
        assert_eq!(table(&batches(&mut out)), vec![("a".to_string(), 150, 4)]);
        assert_eq!(ctx.pool().reserved(), 0);
    }

    /// Records the calls it gets; registers a timer in the past and deletes
    /// one, and clears its state at the second timer.
    struct Recorder {
        calls: Vec<String>,
    }

    impl KeyedProcessFunction for Recorder {
        type State = i64;

        fn on_rows(
            &mut self,
            _key: &KeyRow,
            rows: &RecordBatch,
            state: &mut i64,
            ctx: &mut ProcessContext,
        ) -> Result<()> {
            *state += rows.num_rows() as i64;
            self.calls.push(format!(
                "rows@{} n={} state={state}",
                ctx.time(),
                rows.num_rows()
            ));
            if ctx.time() == 10 {
                ctx.register_event_timer(5); // in the past: fires right after
                ctx.register_event_timer(25);
                ctx.register_event_timer(40);
                ctx.register_event_timer(99);
            }
            if ctx.time() == 30 {
                ctx.delete_event_timer(99);
            }
            Ok(())
        }

        fn on_timer(
            &mut self,
            _key: &KeyRow,
            time: i64,
            state: &mut i64,
            ctx: &mut ProcessContext,
        ) -> Result<()> {
            self.calls.push(format!("timer@{time} state={state}"));
            if time == 25 {
                ctx.clear_state();
            }
            Ok(())
        }
    }

    #[test]
    fn rows_and_timers_interleave_by_time_and_state_can_be_cleared() {
        let schema = out_schema("x");
        let mut op = KeyedProcessOperator::try_new(
            &input(&[]).schema(),
            "t",
            &[],
            schema,
            Recorder { calls: Vec::new() },
            "rec",
        )
        .unwrap();
        let rows = [
            ("a", 30, 1),
            ("b", 10, 1),
            ("a", 10, 2),
            ("a", 40, 3),
            ("c", 20, 1),
        ];
        run(&mut op, &rows, 2);
        assert_eq!(
            op.function().calls,
            vec![
                "rows@10 n=2 state=2",
                "timer@5 state=2",
                "rows@20 n=1 state=3",
                "timer@25 state=3",
                "rows@30 n=1 state=1",
                "rows@40 n=1 state=2",
                "timer@40 state=2",
            ]
        );
    }

    #[test]
    fn emitting_another_schema_names_the_operator() {
        let schema = out_schema("x");
        let f = ProcessFn::new(
            |_k: &KeyRow, rows: &RecordBatch, _s: &mut (), ctx: &mut ProcessContext| {
                ctx.emit(rows.clone())
            },
        );
        let mut op = KeyedProcessOperator::try_new(
            &input(&[]).schema(),
            "t",
            &["k".into()],
            schema,
            f,
            "my_process",
        )
        .unwrap();
        let (mut ctx, mut out) = (test_ctx(), Output::new());
        op.open(&mut ctx).unwrap();
        op.on_batch(0, input(&[("a", 1, 1)]), &mut ctx, &mut out)
            .unwrap();
        let err = op.on_end_of_input(&mut ctx, &mut out).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("my_process"), "{msg}");
        assert!(
            msg.contains("v: Int64") && msg.contains("x: Int64"),
            "{msg}"
        );
        let err = KeyedProcessOperator::try_new(
            &input(&[]).schema(),
            "nope",
            &[],
            out_schema("x"),
            ProcessFn::new(
                |_: &KeyRow, _: &RecordBatch, _: &mut (), _: &mut ProcessContext| Ok(()),
            ),
            "p",
        )
        .unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
    }
}
