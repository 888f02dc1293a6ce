//! Count windows and global windows with a trigger, keyed or global.
//!
//! Owns [`CountWindowAggregate`], [`CountWindow`], the [`WindowTrigger`]
//! trait, [`TriggerAction`] and [`CountTrigger`]. Count windows depend on
//! the order of a key's rows, so the input goes through an
//! [`EventTimeBuffer`] and each key's rows are fed in (event time, row
//! content) order once the watermark passed them: every executor and
//! parallelism fires the same windows over the same rows.
//!
//! May use `crate::operator`, `crate::message`, `crate::operators::aggregate`,
//! `crate::key`, `crate::time`, `crate::memory`, `crate::error` and the arrow
//! crates. Never `crate::exec` or `crate::graph`.

use super::aggregate::{Accumulators, Agg, BoundAgg, Values};
use super::event_buffer::{batch_bytes, lateness_clock, EventTimeBuffer, Released};
use super::window::WindowAggregate;
use crate::error::{Error, Result};
use crate::key::{FastBuildHasher, KeyHandle};
use crate::memory::{ConsumerKind, MemoryReservation};
use crate::message::Watermark;
use crate::operator::{Ctx, Operator, Output};
use crate::operators::keyed_state::{self, check_layout, column, key_groups};
use crate::spill::SpillManager;
use crate::state::store::{self, SpillableState};
use crate::state::{StateReader, StateWriter};
use crate::time::event_times;
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Bytes accounted per key with window state (map slot, counters).
const KEY_STATE_BYTES: usize = 128;

/// What a trigger tells the window of one key to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerAction {
    /// Nothing.
    Continue,
    /// Emit the window's aggregates and keep its rows (then evict, if the
    /// window has `evict_to`).
    Fire,
    /// Emit the window's aggregates, then empty it.
    FireAndPurge,
    /// Empty the window without emitting.
    Purge,
}

/// Decides when the global window of a key fires (Flink's `Trigger`, without
/// timers). A trigger is shared by all keys and holds no state: it sees the
/// window's row count.
///
/// Rows are fed in (event time, row content) order, so what `on_row`
/// decides is the same in every execution mode. `on_watermark` sees
/// watermarks, whose values differ between executors and parallelism: a
/// trigger that fires on them gives mode-dependent results, except when it
/// only acts on the final watermark `i64::MAX` (end of input), which every
/// run delivers exactly once.
pub trait WindowTrigger: Send + Sync + std::fmt::Debug {
    /// Called for each row of a key in event-time order; `count` = rows in
    /// the window now (including this one).
    fn on_row(&self, count: u64, time: i64) -> TriggerAction;

    /// Called when the watermark passes `time` (after the key's rows up to
    /// it were fed), for every key whose window is not empty.
    fn on_watermark(&self, count: u64, watermark: i64) -> TriggerAction {
        let _ = (count, watermark);
        TriggerAction::Continue
    }

    /// Whether `on_watermark` can do anything; `false` saves visiting every
    /// key on each watermark. Defaults to `true`.
    fn watches_watermarks(&self) -> bool {
        true
    }
}

/// Fires whenever the window's row count is a positive multiple of `every`
/// (Flink's `CountTrigger`), purging the window if `purge` (Flink's
/// `PurgingTrigger.of(CountTrigger.of(every))`). `every = 0` never fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountTrigger {
    /// Fire every this many rows.
    pub every: u64,
    /// Empty the window when it fires.
    pub purge: bool,
}

impl WindowTrigger for CountTrigger {
    fn on_row(&self, count: u64, _time: i64) -> TriggerAction {
        match count.checked_rem(self.every) {
            Some(0) if count > 0 && self.purge => TriggerAction::FireAndPurge,
            Some(0) if count > 0 => TriggerAction::Fire,
            _ => TriggerAction::Continue,
        }
    }

    fn watches_watermarks(&self) -> bool {
        false
    }
}

/// Which count window.
#[derive(Debug, Clone)]
pub enum CountWindow {
    /// Flink's `countWindow(size)`: every `size` rows of a key, fire over
    /// them and start again.
    Tumbling {
        /// Rows per window (>= 1).
        size: u64,
    },
    /// Flink's `countWindow(size, slide)`: every `slide` rows of a key, fire
    /// over its last `size` rows (fewer at first: the first firing, after
    /// `slide` rows, covers `min(slide, size)` rows).
    Sliding {
        /// Rows per window (>= 1).
        size: u64,
        /// Rows between firings (>= 1).
        slide: u64,
    },
    /// One window per key that never ends; `trigger` decides when it fires
    /// or purges.
    Global {
        /// When to fire.
        trigger: Arc<dyn WindowTrigger>,
        /// Keep at most this many (the latest) rows after a `Fire`; `None`
        /// keeps all (aggregated incrementally, rows are not kept).
        evict_to: Option<u64>,
    },
}

/// How the operator keeps a key's window.
#[derive(Debug, Clone)]
enum Mode {
    /// Accumulators per key, updated as rows come (no eviction).
    Incremental { trigger: Arc<dyn WindowTrigger> },
    /// Rows kept: the last `size`; fire every `slide`.
    Sliding { size: u64, slide: u64 },
    /// Rows kept; after a `Fire` only the latest `keep`.
    Evicting {
        trigger: Arc<dyn WindowTrigger>,
        keep: u64,
    },
}

/// Rows of one key kept by a window, with their event times and aggregate
/// inputs (cast once).
struct Chunk {
    batch: RecordBatch,
    times: Vec<i64>,
    values: Vec<Values>,
    bytes: usize,
}

impl Chunk {
    fn new(batch: RecordBatch, times: Vec<i64>, aggs: &[BoundAgg]) -> Result<Self> {
        let values = aggs
            .iter()
            .map(|a| a.values(batch.columns()))
            .collect::<Result<Vec<_>>>()?;
        let bytes = batch_bytes(&batch) + times.len() * 8 * (1 + aggs.len());
        Ok(Chunk {
            batch,
            times,
            values,
            bytes,
        })
    }

    fn len(&self) -> u64 {
        self.times.len() as u64
    }
}

/// The window state of one key.
#[derive(Default)]
struct KeyWindow {
    /// The window's hold on its key (set by `new_window`).
    key: Option<KeyHandle>,
    /// Incremental mode: rows in the window, first and last row's time, and
    /// the accumulator slot.
    count: u64,
    first_time: i64,
    last_time: i64,
    slot: u32,
    /// Sliding mode: rows since the last firing.
    since_fire: u64,
    /// Row modes: kept rows, oldest first. Rows are numbered from the key's
    /// first row: `chunks[0]` starts at `base`, the window at `start`.
    chunks: VecDeque<Chunk>,
    base: u64,
    start: u64,
    bytes: usize,
}

impl KeyWindow {
    /// The number of the row after the last kept one.
    fn end(&self) -> u64 {
        self.base + self.chunks.iter().map(Chunk::len).sum::<u64>()
    }

    /// Event time of row number `at` (a kept row).
    fn time_at(&self, at: u64) -> Option<i64> {
        let mut first = self.base;
        for c in &self.chunks {
            if at < first + c.len() {
                return c.times.get((at - first) as usize).copied();
            }
            first += c.len();
        }
        None
    }

    /// Drops rows before `start`, compacts a mostly dropped first chunk and
    /// merges small trailing chunks (each row is copied O(log n) times).
    fn trim(&mut self, aggs: &[BoundAgg], schema: &SchemaRef) -> Result<()> {
        while let Some(c) = self.chunks.front() {
            if self.base + c.len() > self.start {
                break;
            }
            self.base += c.len();
            self.chunks.pop_front();
        }
        if let Some(c) = self.chunks.front() {
            let skip = self.start - self.base;
            if skip > 0 && skip * 2 >= c.len() {
                let c = self.chunks.pop_front().expect("checked above");
                self.chunks.push_front(tail(c, skip as usize, aggs)?);
                self.base = self.start;
            }
        }
        while self.chunks.len() >= 2 {
            let n = self.chunks.len();
            if self.chunks[n - 1].len() * 2 < self.chunks[n - 2].len() {
                break;
            }
            let b = self.chunks.pop_back().expect("two chunks");
            let mut a = self.chunks.pop_back().expect("two chunks");
            if self.chunks.is_empty() && self.start > self.base {
                a = tail(a, (self.start - self.base) as usize, aggs)?;
                self.base = self.start;
            }
            let batch = arrow_select::concat::concat_batches(schema, [&a.batch, &b.batch])?;
            let mut times = a.times;
            times.extend(b.times);
            self.chunks.push_back(Chunk::new(batch, times, aggs)?);
        }
        self.bytes = self.chunks.iter().map(|c| c.bytes).sum();
        Ok(())
    }
}

/// The rows of `c` from row `skip` on, copied.
fn tail(c: Chunk, skip: usize, aggs: &[BoundAgg]) -> Result<Chunk> {
    let n = c.times.len();
    let idx = UInt32Array::from_iter_values((skip as u32)..(n as u32));
    let batch = arrow_select::take::take_record_batch(&c.batch, &idx)?;
    Chunk::new(batch, c.times[skip..].to_vec(), aggs)
}

/// The windows fired during one watermark: one group per firing.
struct Firings {
    keys: Vec<u32>,
    starts: Vec<i64>,
    ends: Vec<i64>,
    accs: Vec<Accumulators>,
}

impl Firings {
    fn new(aggs: &[BoundAgg]) -> Self {
        Firings {
            keys: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            accs: aggs.iter().map(Accumulators::new).collect(),
        }
    }

    /// A new firing; returns its group.
    fn push(&mut self, key: u32, start: i64, end: i64) -> u32 {
        self.keys.push(key);
        self.starts.push(start);
        self.ends.push(end);
        for a in &mut self.accs {
            a.resize(self.keys.len());
        }
        (self.keys.len() - 1) as u32
    }
}

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
/// firing from `on_watermark` at `i64::MAX`. Sliding windows keep the last
/// `size` rows of every key until end of input; a global window without
/// eviction keeps one accumulator slot per key until it is purged. The
/// buffer, kept rows and accumulators are reserved from the memory pool.
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
    // resources
    /// The kept rows, windows and accumulators (made by `open`).
    reservation: MemoryReservation,
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
        Ok(CountWindowAggregate {
            mode,
            lateness_ms: 0,
            accs: aggs.iter().map(Accumulators::new).collect(),
            aggs,
            schema,
            input: Arc::new(input.clone()),
            buffer,
            windows: HashMap::default(),
            free_slots: Vec::new(),
            kept_bytes: 0,
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
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
        Ok(())
    }

    /// Advances to watermark `wm`: feeds due rows, asks the trigger, emits.
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
        let due = self.buffer.advance(wm)?;
        let mut fired = Firings::new(&self.aggs);
        // keys stay valid until the output is built: pinned, released after
        let mut release = Vec::with_capacity(due.len());
        for key in due {
            release.push(self.buffer.retain_key(key));
            if let Some(r) = self.buffer.take(key)? {
                self.feed(r, &mut fired, &mut release)?;
            }
        }
        self.watermark_triggers(wm, &mut fired, &mut release)?;
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

/// Entry names of the state (see [`CountWindowAggregate::write_state`]).
const BUFFER: &str = "count_window.buffer";
const BUFFER_WATERMARK: &str = "count_window.buffer.watermark";
const KEYS: &str = "count_window.keys";
const ROWS: &str = "count_window.rows";
/// The key column prepended to kept rows in [`ROWS`].
const ROW_KEY: &str = "__weir_count_window_key";

impl CountWindowAggregate {
    /// The layout of [`KEYS`]: one row per key with a window; the partial
    /// states only in incremental mode.
    fn keys_layout(&self) -> SchemaRef {
        let fixed = vec![
            Field::new("key", DataType::Binary, false),
            Field::new("count", DataType::UInt64, false),
            Field::new("first_time", DataType::Int64, false),
            Field::new("last_time", DataType::Int64, false),
            Field::new("since_fire", DataType::UInt64, false),
        ];
        match self.mode {
            Mode::Incremental { .. } => keyed_state::layout(fixed, &self.aggs),
            _ => Arc::new(Schema::new(fixed)),
        }
    }

    /// The layout of [`ROWS`]: the key, then the input columns.
    fn rows_layout(&self) -> SchemaRef {
        let mut fields = vec![Arc::new(Field::new(ROW_KEY, DataType::Binary, false))];
        fields.extend(self.input.fields().iter().cloned());
        Arc::new(Schema::new(fields))
    }

    /// Writes the state:
    ///
    /// ```text
    ///  count_window.buffer      rows waiting for the watermark (EventTimeBuffer::snapshot_rows),
    ///                           keyed; its watermark in count_window.buffer.watermark
    ///  count_window.keys        key | count, first/last time (incremental) | since_fire
    ///                           (sliding) [| partial states (incremental)]
    ///  count_window.rows        key | input columns: the rows a window keeps (sliding,
    ///                           evicting), from the window's start, oldest first
    /// ```
    /// Kept rows are renumbered from 0 on restore: only distances between
    /// the window's start and end matter.
    fn write_state(&self, state: &mut StateWriter) -> Result<()> {
        state.put(BUFFER_WATERMARK, &self.buffer.watermark())?;
        for rows in self.buffer.snapshot_rows()? {
            let groups = self.buffer.key_groups(&rows)?;
            state.put_keyed(BUFFER, &rows, &groups)?;
        }
        let mut ids: Vec<u32> = self.windows.keys().copied().collect();
        ids.sort_unstable();
        let incremental = matches!(self.mode, Mode::Incremental { .. });
        for chunk in ids.chunks(8192) {
            let windows: Vec<&KeyWindow> = chunk.iter().map(|id| &self.windows[id]).collect();
            let keys =
                BinaryArray::from_iter_values(chunk.iter().map(|&id| self.buffer.key_bytes(id)));
            let groups = key_groups(keys.iter().flatten());
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(keys),
                Arc::new(UInt64Array::from_iter_values(
                    windows.iter().map(|w| w.count),
                )),
                Arc::new(Int64Array::from_iter_values(
                    windows.iter().map(|w| w.first_time),
                )),
                Arc::new(Int64Array::from_iter_values(
                    windows.iter().map(|w| w.last_time),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    windows.iter().map(|w| w.since_fire),
                )),
            ];
            if incremental {
                let slots: Vec<u32> = windows.iter().map(|w| w.slot).collect();
                columns.extend(keyed_state::acc_columns(&self.accs, &slots)?);
            }
            state.put_keyed(
                KEYS,
                &RecordBatch::try_new(self.keys_layout(), columns)?,
                &groups,
            )?;
        }
        if incremental {
            return Ok(());
        }
        let layout = self.rows_layout();
        for &id in &ids {
            let w = &self.windows[&id];
            let key = self.buffer.key_bytes(id);
            let kg = key_groups([key])[0];
            let mut chunk_first = w.base;
            for c in &w.chunks {
                let skip = w.start.saturating_sub(chunk_first).min(c.len()) as usize;
                chunk_first += c.len();
                let n = c.times.len() - skip;
                if n == 0 {
                    continue;
                }
                let rows = c.batch.slice(skip, n);
                let mut columns: Vec<ArrayRef> = vec![Arc::new(BinaryArray::from_iter_values(
                    std::iter::repeat_n(key, n),
                ))];
                columns.extend(rows.columns().iter().cloned());
                state.put_keyed(
                    ROWS,
                    &RecordBatch::try_new(layout.clone(), columns)?,
                    &vec![kg; n],
                )?;
            }
        }
        Ok(())
    }

    /// Reads the state of the keys this subtask owns into a fresh instance.
    fn read_state(&mut self, state: &StateReader, ctx: &Ctx) -> Result<()> {
        let operator = ctx.operator();
        // every old subtask saw the same watermarks: the highest is the one reached
        let watermarks = state.values::<Option<i64>>(BUFFER_WATERMARK)?;
        self.buffer
            .restore_watermark(keyed_state::max_watermark(watermarks));
        for rows in state.keyed(BUFFER)? {
            check_layout(&rows, self.buffer.schema(), BUFFER, operator)?;
            self.buffer.restore_rows(&rows, ctx)?;
            self.sync_reservation(ctx)?;
        }
        let layout = self.keys_layout();
        let incremental = matches!(self.mode, Mode::Incremental { .. });
        for batch in state.keyed(KEYS)? {
            check_layout(&batch, &layout, KEYS, operator)?;
            let keys = column::<BinaryArray>(&batch, "key", KEYS, operator)?;
            let count = column::<UInt64Array>(&batch, "count", KEYS, operator)?;
            let first = column::<Int64Array>(&batch, "first_time", KEYS, operator)?;
            let last = column::<Int64Array>(&batch, "last_time", KEYS, operator)?;
            let since = column::<UInt64Array>(&batch, "since_fire", KEYS, operator)?;
            let mut slots = Vec::with_capacity(batch.num_rows());
            for r in 0..batch.num_rows() {
                let lookup = self.buffer.intern_key(keys.value(r));
                let id = lookup.id();
                if self.windows.contains_key(&id) {
                    self.buffer.release_key(lookup);
                    return Err(keyed_state::state_error(
                        operator,
                        format!("`{KEYS}` holds a key twice"),
                    ));
                }
                let mut w = self.new_window(id);
                // new_window took the window's hold on the key
                self.buffer.release_key(lookup);
                w.count = count.value(r);
                w.first_time = first.value(r);
                w.last_time = last.value(r);
                w.since_fire = since.value(r);
                slots.push(w.slot);
                self.windows.insert(id, w);
            }
            if incremental {
                keyed_state::merge_acc_columns(&mut self.accs, &self.aggs, &slots, &batch, 5)?;
            }
        }
        let layout = self.rows_layout();
        for batch in state.keyed(ROWS)? {
            check_layout(&batch, &layout, ROWS, operator)?;
            let keys = column::<BinaryArray>(&batch, ROW_KEY, ROWS, operator)?;
            let mut r = 0;
            while r < batch.num_rows() {
                let mut end = r + 1;
                while end < batch.num_rows() && keys.value(end) == keys.value(r) {
                    end += 1;
                }
                let lookup = self.buffer.intern_key(keys.value(r));
                let id = lookup.id();
                // the window holds the key (checked below): give the lookup's hold back
                self.buffer.release_key(lookup);
                let rows = batch.slice(r, end - r);
                let mut rows = rows.project(&(1..rows.num_columns()).collect::<Vec<_>>())?;
                rows = RecordBatch::try_new(self.input.clone(), rows.columns().to_vec())?;
                let times = event_times(&rows, self.buffer.time_column(), operator)?.to_vec();
                let chunk = Chunk::new(rows, times, &self.aggs)?;
                let w = self.windows.get_mut(&id).ok_or_else(|| {
                    keyed_state::state_error(
                        operator,
                        format!("`{ROWS}` holds rows of a key without a window"),
                    )
                })?;
                w.bytes += chunk.bytes;
                self.kept_bytes += chunk.bytes;
                w.chunks.push_back(chunk);
                r = end;
            }
        }
        Ok(())
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

/// Spilling writes the rows waiting in the buffer; the windows' kept rows
/// and accumulators stay in memory.
impl SpillableState for CountWindowAggregate {
    fn memory_bytes(&self) -> usize {
        self.state_bytes() + self.buffer.settled_bytes()
    }

    fn can_spill(&self) -> bool {
        self.buffer.can_spill()
    }

    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        let name = self.reservation.consumer().to_string();
        self.buffer.spill_rows(spill, &name)
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}

impl Operator for CountWindowAggregate {
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
        self.free_slots.clear();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::basic::tests::{batches, test_ctx};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{Float64Array, StringArray};

    fn input(rows: &[(&str, i64, f64)]) -> RecordBatch {
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
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))) as _,
            ),
        ])
        .unwrap()
    }

    /// `(key, start, end, count, sum)` rows, sorted.
    fn table(got: &[RecordBatch]) -> Vec<(String, i64, i64, i64, f64)> {
        let mut v = Vec::new();
        for b in got {
            let k = b.column(0).as_string::<i32>();
            let s = b.column(1).as_primitive::<Int64Type>();
            let e = b.column(2).as_primitive::<Int64Type>();
            let n = b.column(3).as_primitive::<Int64Type>();
            let sum = b.column(4).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                v.push((
                    k.value(i).to_string(),
                    s.value(i),
                    e.value(i),
                    n.value(i),
                    sum.value(i),
                ));
            }
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }

    /// Key a: 7 rows at 10..70 (v = 1..7); key b: 5 rows, two with equal time.
    fn rows() -> Vec<(&'static str, i64, f64)> {
        vec![
            ("a", 10, 1.0),
            ("a", 20, 2.0),
            ("a", 30, 3.0),
            ("a", 40, 4.0),
            ("a", 50, 5.0),
            ("a", 60, 6.0),
            ("a", 70, 7.0),
            ("b", 15, 10.0),
            ("b", 25, 20.0),
            ("b", 25, 30.0),
            ("b", 35, 40.0),
            ("b", 45, 50.0),
        ]
    }

    fn shuffled() -> Vec<(&'static str, i64, f64)> {
        let r = rows();
        [11, 3, 0, 9, 6, 1, 10, 4, 8, 2, 7, 5]
            .iter()
            .map(|&i| r[i])
            .collect()
    }

    /// Runs the operator over `rows` in batches of `batch` rows; after each
    /// batch the watermark moves to just below the smallest time still to come.
    fn run(spec: CountWindow, rows: &[(&str, i64, f64)], batch: usize) -> Vec<RecordBatch> {
        let schema = input(&rows[..1]).schema();
        let mut op = CountWindowAggregate::try_new(
            &schema,
            "t",
            &["k".into()],
            spec,
            &[Agg::count().alias("n"), Agg::sum("v")],
            "count",
        )
        .unwrap();
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
        assert_eq!(
            ctx.metrics()
                .late_rows
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        got
    }

    #[test]
    fn tumbling_count_window_is_the_same_for_shuffled_and_sorted_input() {
        let spec = || CountWindow::Tumbling { size: 3 };
        let want = vec![
            ("a".to_string(), 10, 31, 3, 6.0),
            ("a".to_string(), 40, 61, 3, 15.0),
            // b's rows in order: 15/10, 25/20, 25/30 (tie by content), 35/40, 45/50
            ("b".to_string(), 15, 26, 3, 60.0),
        ];
        assert_eq!(table(&run(spec(), &rows(), 12)), want);
        for batch in [1, 2, 5] {
            assert_eq!(table(&run(spec(), &shuffled(), batch)), want, "{batch}");
        }
    }

    #[test]
    fn sliding_count_window_is_the_same_for_shuffled_and_sorted_input() {
        let spec = || CountWindow::Sliding { size: 4, slide: 2 };
        let want = vec![
            ("a".to_string(), 10, 21, 2, 3.0),
            ("a".to_string(), 10, 41, 4, 10.0),
            ("a".to_string(), 30, 61, 4, 18.0),
            ("b".to_string(), 15, 26, 2, 30.0),
            ("b".to_string(), 15, 36, 4, 100.0),
        ];
        assert_eq!(table(&run(spec(), &rows(), 12)), want);
        for batch in [1, 3, 4] {
            assert_eq!(table(&run(spec(), &shuffled(), batch)), want, "{batch}");
        }
    }

    #[test]
    fn sliding_with_slide_larger_than_size_and_size_one() {
        let want = vec![
            ("a".to_string(), 30, 41, 2, 7.0),
            ("b".to_string(), 25, 36, 2, 70.0),
        ];
        let spec = || CountWindow::Sliding { size: 2, slide: 4 };
        assert_eq!(table(&run(spec(), &shuffled(), 2)), want);
        let spec = || CountWindow::Sliding { size: 1, slide: 1 };
        assert_eq!(table(&run(spec(), &shuffled(), 3)).len(), 12);
    }

    /// Fires every 2 rows, and flushes whatever is left at end of input.
    #[derive(Debug)]
    struct PairsThenFlush;

    impl WindowTrigger for PairsThenFlush {
        fn on_row(&self, count: u64, _time: i64) -> TriggerAction {
            if count == 2 {
                TriggerAction::FireAndPurge
            } else {
                TriggerAction::Continue
            }
        }
        fn on_watermark(&self, _count: u64, watermark: i64) -> TriggerAction {
            if watermark == i64::MAX {
                TriggerAction::FireAndPurge
            } else {
                TriggerAction::Continue
            }
        }
    }

    #[test]
    fn global_window_trigger_flushes_at_end_of_input() {
        let spec = || CountWindow::Global {
            trigger: Arc::new(PairsThenFlush),
            evict_to: None,
        };
        let want = vec![
            ("a".to_string(), 10, 21, 2, 3.0),
            ("a".to_string(), 30, 41, 2, 7.0),
            ("a".to_string(), 50, 61, 2, 11.0),
            ("a".to_string(), 70, 71, 1, 7.0),
            ("b".to_string(), 15, 26, 2, 30.0),
            ("b".to_string(), 25, 36, 2, 70.0),
            ("b".to_string(), 45, 46, 1, 50.0),
        ];
        assert_eq!(table(&run(spec(), &rows(), 12)), want);
        assert_eq!(table(&run(spec(), &shuffled(), 1)), want);
    }

    #[test]
    fn global_window_with_count_trigger_and_eviction() {
        // fire when the window holds 3 rows, keep the latest 1 after firing:
        // windows of 3 rows overlapping by one
        let spec = || CountWindow::Global {
            trigger: Arc::new(CountTrigger {
                every: 3,
                purge: false,
            }),
            evict_to: Some(1),
        };
        let want = vec![
            ("a".to_string(), 10, 31, 3, 6.0),
            ("a".to_string(), 30, 51, 3, 12.0),
            ("a".to_string(), 50, 71, 3, 18.0),
            ("b".to_string(), 15, 26, 3, 60.0),
            ("b".to_string(), 25, 46, 3, 120.0),
        ];
        assert_eq!(table(&run(spec(), &rows(), 12)), want);
        assert_eq!(table(&run(spec(), &shuffled(), 2)), want);
        // without eviction and purge: cumulative firings every 3 rows
        let spec = CountWindow::Global {
            trigger: Arc::new(CountTrigger {
                every: 3,
                purge: false,
            }),
            evict_to: None,
        };
        assert_eq!(
            table(&run(spec, &shuffled(), 5)),
            vec![
                ("a".to_string(), 10, 31, 3, 6.0),
                ("a".to_string(), 10, 61, 6, 21.0),
                ("b".to_string(), 15, 26, 3, 60.0),
            ]
        );
    }

    #[test]
    fn long_key_history_keeps_few_chunks_and_bounded_rows() {
        let schema = input(&rows()[..1]).schema();
        let mut op = CountWindowAggregate::try_new(
            &schema,
            "t",
            &[],
            CountWindow::Sliding { size: 5, slide: 3 },
            &[Agg::sum("v")],
            "count",
        )
        .unwrap();
        let (mut ctx, mut out) = (test_ctx(), Output::new());
        op.open(&mut ctx).unwrap();
        let mut fired = 0;
        for t in 0..300 {
            op.on_batch(0, input(&[("x", t, t as f64)]), &mut ctx, &mut out)
                .unwrap();
            op.on_watermark(Watermark::EventTime(t), &mut ctx, &mut out)
                .unwrap();
            for b in batches(&mut out) {
                for i in 0..b.num_rows() {
                    // window of the last 5 rows ending at the firing row
                    let end = b.column(1).as_primitive::<Int64Type>().value(i);
                    let sum = b.column(2).as_primitive::<Float64Type>().value(i);
                    let last = end - 1;
                    let first = (last - 4).max(0);
                    assert_eq!(sum, ((first..=last).sum::<i64>()) as f64);
                    fired += 1;
                }
            }
            let w = op.windows.values().next().unwrap();
            assert!(w.end() - w.start <= 5);
            assert!(w.chunks.len() <= 4, "{}", w.chunks.len());
        }
        assert_eq!(fired, 100);
        op.on_end_of_input(&mut ctx, &mut out).unwrap();
        assert_eq!(ctx.pool().reserved(), 0);
    }

    #[test]
    fn rejects_bad_options_and_columns() {
        let schema = input(&rows()[..1]).schema();
        let make = |spec, time: &str, aggs: &[Agg]| {
            CountWindowAggregate::try_new(&schema, time, &["k".into()], spec, aggs, "cw")
        };
        let err = make(CountWindow::Tumbling { size: 0 }, "t", &[Agg::count()]).unwrap_err();
        assert!(err.to_string().contains("size >= 1"), "{err}");
        let err = make(
            CountWindow::Sliding { size: 3, slide: 0 },
            "t",
            &[Agg::count()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("slide"), "{err}");
        let err = make(CountWindow::Tumbling { size: 2 }, "time", &[Agg::count()]).unwrap_err();
        assert!(err.to_string().contains("`time`"), "{err}");
        let err = make(CountWindow::Tumbling { size: 2 }, "t", &[]).unwrap_err();
        assert!(err.to_string().contains("aggregate"), "{err}");
        let op = make(CountWindow::Tumbling { size: 2 }, "t", &[Agg::max("v")]).unwrap();
        let names: Vec<&str> = op
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, vec!["k", "window_start", "window_end", "max_v"]);
    }

    #[test]
    fn late_rows_are_counted_and_dropped() {
        let schema = input(&rows()[..1]).schema();
        let mut op = CountWindowAggregate::try_new(
            &schema,
            "t",
            &["k".into()],
            CountWindow::Tumbling { size: 1 },
            &[Agg::count()],
            "cw",
        )
        .unwrap();
        let (mut ctx, mut out) = (test_ctx(), Output::new());
        op.open(&mut ctx).unwrap();
        op.on_watermark(Watermark::EventTime(100), &mut ctx, &mut out)
            .unwrap();
        op.on_batch(
            0,
            input(&[("a", 100, 1.0), ("a", 101, 1.0)]),
            &mut ctx,
            &mut out,
        )
        .unwrap();
        op.on_end_of_input(&mut ctx, &mut out).unwrap();
        assert_eq!(
            ctx.metrics()
                .late_rows
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let got: usize = batches(&mut out).iter().map(|b| b.num_rows()).sum();
        assert_eq!(got, 1);
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;
    use crate::operator::TaskInfo;
    use crate::operators::checkpoint_events::{
        assert_restores, assert_restores_spilled, events, rows, Gen,
    };
    use crate::operators::checkpoint_harness::{encoders, Event};

    /// Fires every 4th row, keeps the last 2 after a firing, and flushes
    /// what is left at the final watermark.
    #[derive(Debug)]
    struct FourThenFlush;

    impl WindowTrigger for FourThenFlush {
        fn on_row(&self, count: u64, _time: i64) -> TriggerAction {
            if count.is_multiple_of(4) {
                TriggerAction::Fire
            } else {
                TriggerAction::Continue
            }
        }

        fn on_watermark(&self, _count: u64, watermark: i64) -> TriggerAction {
            if watermark == i64::MAX {
                TriggerAction::FireAndPurge
            } else {
                TriggerAction::Continue
            }
        }
    }

    fn make(spec: CountWindow) -> impl Fn(&TaskInfo) -> Result<Box<dyn Operator>> {
        move |info: &TaskInfo| {
            let schema = rows(&[]).schema();
            let aggs = [
                Agg::count().alias("n"),
                Agg::sum("v"),
                Agg::last("v").alias("last_v"),
                Agg::count_distinct("v").alias("dv"),
            ];
            let op = CountWindowAggregate::try_new(
                &schema,
                "t",
                &["k".into()],
                spec.clone(),
                &aggs,
                &info.operator,
            )?;
            Ok(Box::new(op) as _)
        }
    }

    fn specs() -> Vec<CountWindow> {
        vec![
            CountWindow::Tumbling { size: 3 },
            CountWindow::Sliding { size: 5, slide: 2 },
            CountWindow::Global {
                trigger: Arc::new(FourThenFlush),
                evict_to: Some(2),
            },
            CountWindow::Global {
                trigger: Arc::new(FourThenFlush),
                evict_to: None,
            },
        ]
    }

    fn cuts(ev: &[Event]) -> Vec<usize> {
        // 1: rows buffered, nothing released; then after a batch (rows
        // waiting in the buffer and in windows) and after a watermark
        let mid = ev.len() / 2;
        let after = |batch: bool| {
            (mid..ev.len())
                .find(|&i| matches!(ev[i - 1], Event::Batch(..)) == batch)
                .unwrap_or(mid)
        };
        vec![0, 1, after(true), after(false), ev.len() - 1]
    }

    #[test]
    fn count_windows_restore_buffered_rows_counts_and_kept_rows() {
        let mut ev = events(Gen {
            keys: 5,
            ..Gen::default()
        });
        // rows behind the restored watermark (a guard: sources never send them) are dropped
        ev.push(Event::Batch(
            0,
            rows(&[("k1".into(), 0, 1), ("k1".into(), 1, 2)]),
        ));
        let schema = rows(&[]).schema();
        let keys = encoders(&[&schema], &[&["k"]]);
        for spec in specs() {
            assert_restores(&make(spec), &keys, &ev, &cuts(&ev));
        }
    }

    #[test]
    fn spilled_buffered_rows_are_in_the_snapshot() {
        let mut ev = events(Gen {
            keys: 5,
            rows: 60,
            wm_every: 4,
            ..Gen::default()
        });
        // no watermark for a while before the cut: many rows wait (and spill)
        let cut = ev.len() / 2;
        ev.retain(|e| !matches!(e, Event::Watermark(w) if *w > 1500 && *w < 3000));
        let schema = rows(&[]).schema();
        let keys = encoders(&[&schema], &[&["k"]]);
        assert_restores_spilled(
            &make(CountWindow::Sliding { size: 5, slide: 2 }),
            &keys,
            &ev,
            cut,
            16 * 1024,
        );
    }
}
