//! Event-time buffering: each key's rows wait until the watermark passes
//! them and are then released in one deterministic order.
//!
//! Owns [`EventTimeBuffer`] and [`Released`]. Operators whose per-key results
//! depend on the order rows are processed in (count windows, keyed process
//! functions) buffer their input here: rows of one key reach a subtask in
//! different orders in pipelined and batch mode and at different
//! parallelism, but the set of rows at or below a watermark is a function of
//! the data alone (see ARCHITECTURE.md, "Why both modes give the same
//! rows"), so sorting that set by (event time, row content) gives every
//! executor the same sequence.
//!
//! May use `weir_core::operator`, `weir_core::key`, `weir_core::time`, `weir_core::memory`,
//! `weir_core::error` and the arrow crates. Never `crate::exec` or `crate::graph`.

use crate::batch_slab::BatchSlab;
use arrow_array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{Schema, SchemaRef};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{FastBuildHasher, KeyDictionary, KeyEncoder, KeyHandle};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::operator::{Ctx, OperatorMetrics};
pub(crate) use weir_core::spill::batch_bytes;
use weir_core::spill::SpillManager;
use weir_core::state::store::{self, SortedRuns};
use weir_core::time::{event_times, validate_time_column};

/// Spilled rows read back per step of a watermark (bounds the memory used
/// to release rows that were spilled).
const STEP_ROWS: usize = 4096;

/// Rows a watermark releases per [`EventTimeBuffer::take_many`] of its
/// operators (see [`EventTimeBuffer::chunk_len`]).
pub const RELEASE_ROWS: usize = 8192;

/// Bytes accounted per buffered row (its [`Entry`]).
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
/// Bytes accounted per key with buffered rows (map slot, vector header, due entry).
const KEY_BYTES: usize = 96;

/// The rows of one key that a watermark released, in release order.
#[derive(Debug, Clone)]
pub struct Released {
    /// The key's id in the buffer's dictionary (see [`EventTimeBuffer::take`]
    /// for how long it stays valid).
    pub key: u32,
    /// The rows, sorted by event time, ties by the full row content.
    pub rows: RecordBatch,
    /// The event time (ms) of each row of `rows`.
    pub times: Vec<i64>,
}

/// One buffered row: where it is and when it happened.
#[derive(Debug, Clone, Copy)]
struct Entry {
    time: i64,
    batch: u32,
    row: u32,
}

/// The buffered rows of one key.
#[derive(Debug)]
struct Pending {
    /// The buffer's hold on the key while it has rows of it.
    key: KeyHandle,
    entries: Vec<Entry>,
    /// True if `entries` is sorted by time.
    sorted: bool,
    /// The smallest time in `entries`.
    min: i64,
}

/// The event-time clock of an operator that waits for the watermark to pass
/// its rows, over an input with allowed lateness `lateness_ms`: sources admit
/// rows up to that far behind their watermark, so the operator runs at
/// `watermark - lateness` and every admitted row is still ahead of it (none
/// is dropped, and rows are released in event-time order whatever the
/// arrival order). The final watermark `i64::MAX` stays `i64::MAX`.
///
/// ```text
///  delay 1 s, lateness 10 s:  rows 10 s, 5 s, 20 s  → watermarks 8.999 s, 18.999 s
///                             operator clock        → -1.001 s, 8.999 s: 5 s waits, then
///                             5 s and 10 s are released together, in time order
/// ```
pub fn lateness_clock(watermark: i64, lateness_ms: i64) -> i64 {
    if watermark == i64::MAX {
        watermark
    } else {
        watermark.saturating_sub(lateness_ms.max(0))
    }
}

/// Buffers rows per key until the watermark passes them, then releases each
/// key's due rows sorted by (event time, row content).
///
/// ```text
///  push(batch) ──time <= watermark──► late: counted in late_rows, dropped
///       │ else
///       ▼
///  batches[slot] = batch (kept whole while any of its rows waits)
///  pending[key id] += Entry { time, slot, row }      due = {(min time, key id)}
///
///  advance(w) ──► keys whose min time <= w, in key-id order
///  take(key)  ──► entries with time <= w, stable-sorted by time
///             ──interleave──► rows ──ties? encode all columns (arrow-row), sort runs──take──►
///             Released { key, rows, times }; batches with no waiting row are dropped
/// ```
/// Keys are interned in a [`KeyDictionary`]; the buffer holds a reference to
/// a key id while it has rows of that key, and consumers keeping per-key
/// state add their own with [`EventTimeBuffer::retain_key`]. Everything
/// held (batches, entries, dictionary) is part of the owning operator's
/// state: it counts [`settled_bytes`](EventTimeBuffer::settled_bytes) in
/// its spillable reservation and calls
/// [`spill_rows`](EventTimeBuffer::spill_rows) when the pool refuses; the
/// buffered rows then go to runs sorted by event time and come back in
/// steps ([`EventTimeBuffer::next_step`]), held in the buffer's fixed
/// read-back reservation until the operator settles again. Without key
/// columns all rows form one group.
#[derive(Debug)]
pub struct EventTimeBuffer {
    // config
    time_column: usize,
    keys: Option<KeyEncoder>,
    schema: SchemaRef,
    key_schema: SchemaRef,
    /// Encodes whole rows to break ties between rows with equal times.
    content: RowConverterBox,
    // state
    dictionary: KeyDictionary,
    batches: BatchSlab,
    pending: HashMap<u32, Pending, FastBuildHasher>,
    /// `(min buffered time, key id)` of every key with buffered rows.
    due: BTreeSet<(i64, u32)>,
    watermark: Option<i64>,
    rows: usize,
    /// Bytes held when the owner last settled (what its reservation covers).
    settled: usize,
    // resources
    /// What rows read back from disk add to `settled`, until the owner
    /// settles again (fixed; made by [`EventTimeBuffer::open`]).
    read_back: MemoryReservation,
    /// Buffered rows spilled to disk, sorted by event time.
    spilled: SortedRuns,
}

/// A [`RowConverter`] with a `Debug` that does not print its internals.
struct RowConverterBox(RowConverter);

impl std::fmt::Debug for RowConverterBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowConverter")
    }
}

impl EventTimeBuffer {
    /// A buffer for rows of `input`, with event time in `time_column`, keyed
    /// by `keys` (empty: one group). Errors name `context`.
    pub fn try_new(
        input: &Schema,
        time_column: &str,
        keys: &[String],
        context: &str,
    ) -> Result<Self> {
        let time_column = validate_time_column(input, time_column, context)?;
        let encoder = KeyEncoder::optional(input, keys, context)?;
        let key_fields: Vec<_> = encoder
            .as_ref()
            .map(|e| {
                e.indices()
                    .iter()
                    .map(|&i| input.field(i).clone())
                    .collect()
            })
            .unwrap_or_default();
        let sort_fields = input
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let content = RowConverter::new(sort_fields).map_err(|e| Error::SchemaMismatch {
            location: context.to_string(),
            message: format!("rows of this input cannot be ordered for deterministic release: {e}"),
        })?;
        Ok(EventTimeBuffer {
            time_column,
            keys: encoder,
            schema: Arc::new(input.clone()),
            key_schema: Arc::new(Schema::new(key_fields)),
            content: RowConverterBox(content),
            dictionary: KeyDictionary::new(),
            batches: BatchSlab::default(),
            pending: HashMap::default(),
            due: BTreeSet::new(),
            watermark: None,
            rows: 0,
            settled: 0,
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
            spilled: SortedRuns::new(),
        })
    }

    /// Makes the buffer's read-back reservation (from its operator's `open`).
    pub fn open(&mut self, ctx: &Ctx) {
        self.read_back = ctx.fixed_reservation("buffer read-back");
    }

    /// The bytes its owner's spillable reservation must cover for the
    /// buffer: what it held when last [settled](Self::settle).
    pub fn settled_bytes(&self) -> usize {
        self.settled
    }

    /// Makes everything the buffer holds now part of its owner's state (the
    /// owner syncs its reservation right after): rows read back and not
    /// taken yet leave the read-back reservation.
    pub fn settle(&mut self) {
        self.settled = self.memory_size();
        self.read_back.free();
    }

    /// True if the buffer holds rows that [`spill_rows`](Self::spill_rows) would move.
    pub fn can_spill(&self) -> bool {
        self.rows > 0
    }

    /// The schema of buffered (and released) rows.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The schema of the key columns (no fields when there are no keys).
    pub fn key_schema(&self) -> &SchemaRef {
        &self.key_schema
    }

    /// The index of the event-time column.
    pub fn time_column(&self) -> usize {
        self.time_column
    }

    /// The highest watermark given to [`EventTimeBuffer::advance`], if any.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Number of rows waiting.
    pub fn buffered_rows(&self) -> usize {
        self.rows
    }

    /// Bytes this buffer accounts for (batches, entries, key dictionary).
    pub fn memory_size(&self) -> usize {
        self.batches.bytes()
            + self.rows * ENTRY_BYTES
            + self.pending.len() * KEY_BYTES
            + self.dictionary.memory_size()
    }

    /// Bytes counted for the buffer: settled (in the owner's reservation)
    /// and read back.
    pub fn reserved(&self) -> usize {
        self.settled + self.read_back.size()
    }

    /// Buffers the rows of `batch`. Rows at or below the watermark are late:
    /// they are counted in `ctx.metrics().late_rows` and dropped. Returns the
    /// number of late rows. The owner settles and syncs its reservation next.
    pub fn push(&mut self, batch: &RecordBatch, ctx: &Ctx) -> Result<usize> {
        if batch.num_rows() == 0 {
            return Ok(0);
        }
        self.check_schema(batch, ctx.operator())?;
        let times = event_times(batch, self.time_column, ctx.operator())?;
        let late = match self.watermark {
            Some(w) => times.iter().filter(|&&t| t <= w).count(),
            None => 0,
        };
        let (batch, times) = if late == 0 {
            (batch.clone(), times)
        } else {
            OperatorMetrics::add(&ctx.metrics().late_rows, late as u64);
            if late == batch.num_rows() {
                return Ok(late);
            }
            let w = self.watermark.unwrap_or(i64::MIN);
            let keep: BooleanArray = times.iter().map(|&t| Some(t > w)).collect();
            let kept = arrow_select::filter::filter_record_batch(batch, &keep)?;
            let kept_times = event_times(&kept, self.time_column, ctx.operator())?;
            (kept, kept_times)
        };
        self.store(batch, &times)?;
        Ok(late)
    }

    /// Buffers every row of `batch` (no lateness check, no reservation).
    fn store(&mut self, batch: RecordBatch, times: &[i64]) -> Result<()> {
        let encoded = match &self.keys {
            Some(enc) => Some(enc.encode(&batch)?),
            None => None,
        };
        let n = batch.num_rows();
        let slot = self.batches.insert(batch, n as u32);
        self.rows += n;
        for (row, &time) in times.iter().enumerate() {
            let key: &[u8] = encoded.as_ref().map_or(&[], |rows| rows.row(row).data());
            let id = self.dictionary.intern(key);
            let dictionary = &mut self.dictionary;
            let p = self.pending.entry(id).or_insert_with(|| Pending {
                key: dictionary.hold(id),
                entries: Vec::new(),
                sorted: true,
                min: time,
            });
            if p.entries.is_empty() {
                p.min = time;
                self.due.insert((time, id));
            } else if time < p.min {
                self.due.remove(&(p.min, id));
                self.due.insert((time, id));
                p.min = time;
            }
            if p.entries.last().is_some_and(|e| e.time > time) {
                p.sorted = false;
            }
            p.entries.push(Entry {
                time,
                batch: slot,
                row: row as u32,
            });
        }
        Ok(())
    }

    /// The next watermark to advance to on the way to `target`: `target`
    /// itself unless spilled rows wait, in which case a step that reads back
    /// about [`store::step_bytes`] of spilled rows, so memory stays bounded even when a
    /// watermark (like the final one) releases everything.
    pub fn next_step(&mut self, target: i64) -> Result<i64> {
        if self.spilled.is_empty() {
            return Ok(target);
        }
        let column = self.time_column;
        // in memory a row read back also costs its entry and its key's
        // bookkeeping: half the step's bytes on disk
        let step = self.spilled.next_step(
            &|b: &RecordBatch| event_times(b, column, "event-time buffer"),
            store::step_bytes(self.read_back.pool()) / 2,
        )?;
        Ok(match step {
            Some(s) if s < target => s,
            _ => target,
        })
    }

    /// Moves the watermark to `watermark` (it never goes back) and returns
    /// the keys with rows at or below it, in key-id order.
    ///
    /// Spilled rows at or below it are read back first, in a fixed
    /// reservation released by the `take`s that follow (call
    /// [`next_step`](Self::next_step) first to bound them).
    pub fn advance(&mut self, watermark: i64) -> Result<Vec<u32>> {
        let w = self.watermark.map_or(watermark, |old| old.max(watermark));
        self.watermark = Some(w);
        if !self.spilled.is_empty() {
            let column = self.time_column;
            let back = self.spilled.take_through(w, &|b: &RecordBatch| {
                event_times(b, column, "event-time buffer")
            })?;
            for batch in back {
                let times = event_times(&batch, column, "event-time buffer")?;
                self.store(batch, &times)?;
            }
            // a step is bounded by next_step (in bytes on disk; in memory a
            // row also costs its entry and key): counted even if the pool
            // is short, like every read-back step (store::reserve_step)
            let beyond = self.memory_size().saturating_sub(self.settled);
            let held = self.read_back.size();
            if beyond > held {
                store::reserve_step(&mut self.read_back, beyond - held);
            } else {
                self.read_back.shrink(held - beyond);
            }
        }
        let mut keys: Vec<u32> = self.due.range(..=(w, u32::MAX)).map(|&(_, k)| k).collect();
        keys.sort_unstable();
        Ok(keys)
    }

    /// Takes the rows of `key` at or below the watermark, sorted by (event
    /// time, row content), or `None` if there are none.
    ///
    /// When this empties the key's buffer, the buffer drops its reference to
    /// the key id: call [`EventTimeBuffer::retain_key`] before, if the id
    /// must stay valid (per-key state, decoding the key later).
    pub fn take(&mut self, key: u32) -> Result<Option<Released>> {
        // one key's rows are the whole gathered batch, so nothing else is kept
        Ok(self.take_many(&[key])?.pop())
    }

    /// Takes the due rows of each of `keys` (in that order), as
    /// [`take`](Self::take) does one key's, with one copy for all of them:
    /// each key's rows are a slice of one gathered batch. Keys without due
    /// rows are left out. Many small keys (a watermark releasing a row or
    /// two for each of a million auctions) then cost one gather, not one
    /// per key. The slices share the gathered batch: a caller that keeps
    /// one keeps all of it (copy what is kept, or use `take`).
    pub fn take_many(&mut self, keys: &[u32]) -> Result<Vec<Released>> {
        let Some(w) = self.watermark else {
            return Ok(Vec::new());
        };
        let mut taken: Vec<Entry> = Vec::new();
        // (key, rows taken)
        let mut spans: Vec<(u32, usize)> = Vec::with_capacity(keys.len());
        for &key in keys {
            let Some(p) = self.pending.get_mut(&key) else {
                continue;
            };
            if p.min > w {
                continue;
            }
            if !p.sorted {
                p.entries.sort_by_key(|e| e.time);
                p.sorted = true;
            }
            let n = p.entries.partition_point(|e| e.time <= w);
            taken.extend(p.entries.drain(..n));
            spans.push((key, n));
            self.due.remove(&(p.min, key));
            if let Some(first) = p.entries.first() {
                p.min = first.time;
                self.due.insert((p.min, key));
            } else {
                let p = self.pending.remove(&key).expect("found above");
                self.dictionary.release(p.key);
            }
        }
        if taken.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.gather(&taken)?;
        let times: Vec<i64> = taken.iter().map(|e| e.time).collect();
        let rows = self.order_ties(rows, &times, &spans)?;
        for e in &taken {
            self.unref_row(e.batch);
        }
        self.rows -= taken.len();
        self.shrink_reservation();
        if let [(key, _)] = spans[..] {
            // one key (`take`): its rows and times as they are
            return Ok(vec![Released { key, rows, times }]);
        }
        let mut start = 0;
        Ok(spans
            .into_iter()
            .map(|(key, n)| {
                let r = Released {
                    key,
                    rows: rows.slice(start, n),
                    times: times[start..start + n].to_vec(),
                };
                start += n;
                r
            })
            .collect())
    }

    /// How many rows `key` holds (due or not): a bound on what a
    /// [`take`](Self::take) of it returns.
    pub fn held_rows(&self, key: u32) -> usize {
        self.pending.get(&key).map_or(0, |p| p.entries.len())
    }

    /// How many of `keys` (at least one, if any) to
    /// [`take_many`](Self::take_many) at once: about [`RELEASE_ROWS`]
    /// rows' worth, so a watermark that releases everything (the last
    /// one of a batch run) copies its rows a chunk at a time.
    pub fn chunk_len(&self, keys: &[u32]) -> usize {
        let mut rows = 0;
        let mut n = 0;
        while n < keys.len() && (n == 0 || rows < RELEASE_ROWS) {
            // a key due only by its timers still costs a key decode and a call
            rows += self.held_rows(keys[n]).max(1);
            n += 1;
        }
        n
    }

    /// Advances to `watermark` and takes every due key's rows, in key-id
    /// order (ids as described at [`EventTimeBuffer::take`]; the rows are
    /// slices of one batch, as [`take_many`](Self::take_many) gives).
    pub fn release(&mut self, watermark: i64) -> Result<Vec<Released>> {
        let keys = self.advance(watermark)?;
        self.take_many(&keys)
    }

    /// A handle on key `id` (an id returned by this buffer that is still
    /// valid): the id stays valid until the handle is given back with
    /// [`release_key`](Self::release_key).
    pub fn retain_key(&mut self, id: u32) -> KeyHandle {
        self.dictionary.hold(id)
    }

    /// Gives back a handle taken with [`retain_key`](Self::retain_key) or
    /// [`intern_key`](Self::intern_key).
    pub fn release_key(&mut self, key: KeyHandle) {
        self.dictionary.release(key);
        self.shrink_reservation();
    }

    /// Gives back every handle of `keys`.
    pub fn release_keys(&mut self, keys: impl IntoIterator<Item = KeyHandle>) {
        self.dictionary.release_all(keys);
        self.shrink_reservation();
    }

    /// The encoded bytes of key `id` (empty without key columns).
    pub fn key_bytes(&self, id: u32) -> &[u8] {
        self.dictionary.key(id)
    }

    /// The key columns of `ids`, one row per id (no columns without keys).
    pub fn key_columns(&self, ids: &[u32]) -> Result<Vec<ArrayRef>> {
        match &self.keys {
            None => Ok(Vec::new()),
            Some(enc) => {
                let parser = enc.converter().parser();
                Ok(enc
                    .converter()
                    .convert_rows(ids.iter().map(|&id| parser.parse(self.dictionary.key(id))))?)
            }
        }
    }

    fn check_schema(&self, batch: &RecordBatch, operator: &str) -> Result<()> {
        let want = self.schema.fields();
        let got = batch.schema();
        let same = got.fields().len() == want.len()
            && got
                .fields()
                .iter()
                .zip(want.iter())
                .all(|(g, w)| g.data_type() == w.data_type());
        if same {
            return Ok(());
        }
        Err(Error::SchemaMismatch {
            location: operator.to_string(),
            message: format!("expected input columns {want:?}, got {:?}", got.fields()),
        })
    }

    /// Copies the rows `entries` point at into one batch, in that order.
    fn gather(&self, entries: &[Entry]) -> Result<RecordBatch> {
        let mut local: HashMap<u32, usize, FastBuildHasher> = HashMap::default();
        let mut sources: Vec<&RecordBatch> = Vec::new();
        let mut indices = Vec::with_capacity(entries.len());
        for e in entries {
            let next = sources.len();
            let idx = *local.entry(e.batch).or_insert(next);
            if idx == next {
                let stored = self
                    .batches
                    .get(e.batch)
                    .ok_or_else(|| Error::Plan("event-time buffer lost a batch".into()))?;
                sources.push(stored);
            }
            indices.push((idx, e.row as usize));
        }
        if sources.len() == 1 && indices.iter().enumerate().all(|(i, &(_, r))| i == r) {
            // one whole batch in its own order: no copy
            if indices.len() == sources[0].num_rows() {
                return Ok(sources[0].clone());
            }
        }
        Ok(arrow_select::interleave::interleave_record_batch(
            &sources, &indices,
        )?)
    }

    /// Orders rows with equal times by their full content (Arrow row
    /// format), within each key's run of rows (`spans`: key, rows; ties
    /// never cross keys).
    fn order_ties(
        &self,
        rows: RecordBatch,
        times: &[i64],
        spans: &[(u32, usize)],
    ) -> Result<RecordBatch> {
        // runs of equal times within one key's rows
        let mut ties = Vec::new();
        let mut at = 0;
        for &(_, n) in spans {
            for run in times[at..at + n].chunk_by(|a, b| a == b) {
                if run.len() > 1 {
                    ties.push(at..at + run.len());
                }
                at += run.len();
            }
        }
        if ties.is_empty() {
            return Ok(rows);
        }
        let encoded = self.content.0.convert_columns(rows.columns())?;
        let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
        for r in ties {
            order[r].sort_by(|&a, &b| encoded.row(a as usize).cmp(&encoded.row(b as usize)));
        }
        if order.iter().enumerate().all(|(i, &o)| i as u32 == o) {
            return Ok(rows);
        }
        Ok(arrow_select::take::take_record_batch(
            &rows,
            &UInt32Array::from(order),
        )?)
    }

    fn unref_row(&mut self, slot: u32) {
        self.batches.release(slot, 1);
    }

    /// Moves every buffered row to disk, sorted by event time (files named
    /// after `name`), and settles.
    pub fn spill_rows(&mut self, spill: &SpillManager, name: &str) -> Result<()> {
        let mut entries: Vec<Entry> = self
            .pending
            .values()
            .flat_map(|p| p.entries.iter().copied())
            .collect();
        entries.sort_by_key(|e| e.time);
        let mut writer = spill.create_writer(&self.schema, name)?;
        // small batches, so a step (see next_step) reads little past its boundary
        for chunk in entries.chunks(512) {
            writer.write(&self.gather(chunk)?)?;
        }
        self.spilled.add(writer.finish()?)?;
        for (_, p) in std::mem::take(&mut self.pending) {
            self.dictionary.release(p.key);
        }
        self.due.clear();
        self.batches.clear();
        self.rows = 0;
        self.settle();
        Ok(())
    }

    /// Gives back what the buffer no longer holds: read-back rows first.
    fn shrink_reservation(&mut self) {
        let beyond = self.memory_size().saturating_sub(self.settled);
        if beyond < self.read_back.size() {
            self.read_back.shrink(self.read_back.size() - beyond);
        }
    }
}

/// Checkpoints: copying the buffered rows out and putting them back.
impl EventTimeBuffer {
    /// Every buffered row, in memory and on disk, leaving the buffer as it
    /// is (spill runs are only read). Rows come in no particular order.
    pub fn snapshot_rows(&self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for p in self.pending.values() {
            for chunk in p.entries.chunks(STEP_ROWS) {
                out.push(self.gather(chunk)?);
            }
        }
        out.extend(self.spilled.remaining()?);
        Ok(out)
    }

    /// The key group of each row of `batch` (what the hash router computes
    /// from the key columns; all rows share one when there are no keys).
    pub fn key_groups(&self, batch: &RecordBatch) -> Result<Vec<u16>> {
        let group =
            |bytes: &[u8]| weir_core::key::key_group(weir_core::key::stable_hash(bytes)) as u16;
        Ok(match &self.keys {
            Some(enc) => enc
                .encode(batch)?
                .iter()
                .map(|r| group(r.as_ref()))
                .collect(),
            None => vec![group(&[]); batch.num_rows()],
        })
    }

    /// Buffers rows written by [`snapshot_rows`](Self::snapshot_rows)
    /// (no lateness check: they were buffered before); the owner syncs its
    /// reservation next, as after `push`.
    pub fn restore_rows(&mut self, batch: &RecordBatch, ctx: &Ctx) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.check_schema(batch, ctx.operator())?;
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?;
        let times = event_times(&batch, self.time_column, ctx.operator())?;
        self.store(batch, &times)
    }

    /// Sets the watermark of a restored buffer (before any row or advance).
    pub fn restore_watermark(&mut self, watermark: Option<i64>) {
        self.watermark = watermark;
    }

    /// A handle on the key encoded as `bytes` (a restored key), for the
    /// caller (give it back with [`release_key`](Self::release_key)).
    pub fn intern_key(&mut self, bytes: &[u8]) -> KeyHandle {
        self.dictionary.hold_key(bytes)
    }
}

#[cfg(test)]
mod tests;
