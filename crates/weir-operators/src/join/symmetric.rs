//! The pipelined join: a symmetric hash join whose outer rows and state
//! cleanup are driven by the watermark.

use super::sort_merge::null_key_rows;
use super::spill::{self, JoinRuns, SpillRow};
use super::{join_by_window, padded, JoinKind, JoinLayout, OutRow};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::HashMap;
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{key_group, stable_hash, FastBuildHasher, KeyEncoder};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, OperatorMetrics, Output};
use weir_core::spill::{batch_bytes, SpillManager};
use weir_core::state::store::{self, SpillableState};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::Window;

/// Bytes accounted per stored row (its [`Entry`] and map share).
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>() + 8;
/// Bytes accounted per key with stored rows, besides the key bytes.
const KEY_BYTES: usize = 64;
/// Spilled rows read back per step.
const STEP_ROWS: usize = 8192;
/// Stored rows per keyed state batch of a checkpoint.
const SNAPSHOT_ROWS: usize = 8192;
/// The unkeyed checkpoint value (see [`JoinMeta`]).
const META_ENTRY: &str = "join";
/// The keyed checkpoint entries of the stored rows of each side.
const SIDE_ENTRIES: [&str; 2] = ["left_rows", "right_rows"];

/// The unkeyed part of a join's checkpoint.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct JoinMeta {
    /// The last watermark processed (windows up to it fired).
    watermark: i64,
    /// The epoch of rows arriving now (spills so far).
    epoch: u32,
}

/// A stored row of one side.
#[derive(Debug, Clone, Copy)]
struct Entry {
    batch: u32,
    row: u32,
    time: i64,
    window: (i64, i64),
    /// True once the row matched (a padded row of it was retracted, if emitted).
    matched: bool,
    /// The spill epoch the row arrived in (regular joins: rows of different
    /// epochs are joined at end of input).
    epoch: u32,
}

#[derive(Debug)]
struct Stored {
    batch: RecordBatch,
    /// Entries still pointing at `batch`.
    live: u32,
    bytes: usize,
}

/// The stored rows of one input.
#[derive(Debug)]
struct Side {
    // config
    keys: KeyEncoder,
    empty: RecordBatch,
    // state
    batches: Vec<Option<Stored>>,
    free: Vec<u32>,
    by_key: HashMap<Vec<u8>, Vec<Entry>, FastBuildHasher>,
    entries: usize,
    key_bytes: usize,
    batch_bytes: usize,
}

impl Side {
    fn store(&mut self, batch: RecordBatch) -> u32 {
        let stored = Stored {
            bytes: batch_bytes(&batch),
            batch,
            live: 0,
        };
        self.batch_bytes += stored.bytes;
        match self.free.pop() {
            Some(slot) => {
                self.batches[slot as usize] = Some(stored);
                slot
            }
            None => {
                self.batches.push(Some(stored));
                (self.batches.len() - 1) as u32
            }
        }
    }

    fn unref(&mut self, slot: u32, n: u32) {
        let stored = self.batches[slot as usize]
            .as_mut()
            .expect("a live entry's batch is stored");
        stored.live -= n;
        if stored.live == 0 {
            self.batch_bytes -= stored.bytes;
            self.batches[slot as usize] = None;
            self.free.push(slot);
        }
    }

    /// Sets how many stored entries point at a new batch (freed at 0).
    fn settle(&mut self, slot: u32, live: u32) {
        self.batches[slot as usize]
            .as_mut()
            .expect("stored by this batch")
            .live = live + 1;
        self.unref(slot, 1);
    }

    fn sources(&self) -> Vec<&RecordBatch> {
        self.batches
            .iter()
            .map(|b| b.as_ref().map_or(&self.empty, |s| &s.batch))
            .collect()
    }

    fn bytes(&self) -> usize {
        self.batch_bytes + self.entries * ENTRY_BYTES + self.key_bytes
    }

    /// Stores `entry` under `key`.
    fn push(&mut self, key: &[u8], entry: Entry) {
        match self.by_key.get_mut(key) {
            Some(list) => list.push(entry),
            None => {
                self.key_bytes += key.len() + KEY_BYTES;
                self.by_key.insert(key.to_vec(), vec![entry]);
            }
        }
        self.entries += 1;
    }

    /// Drops every stored row and batch.
    fn clear(&mut self) {
        self.by_key.clear();
        self.batches.clear();
        self.free.clear();
        self.entries = 0;
        self.key_bytes = 0;
        self.batch_bytes = 0;
    }

    /// Every key with stored rows on `self` or `other`, once.
    fn keys_with(&self, other: &Side) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.by_key.keys().cloned().collect();
        keys.extend(
            other
                .by_key
                .keys()
                .filter(|k| !self.by_key.contains_key(*k))
                .cloned(),
        );
        keys
    }
}

/// Joins two inputs as they stream (pipelined mode).
///
/// ```text
///  row x of side s, key k ──► probe the other side's rows of k:
///     regular:  every row → (x, y); y padded before? → delete padded(y) first
///     interval: rows with r.t + lower <= l.t <= r.t + upper → (x, y)
///     window:   nothing yet
///  x stored under k (regular outer without a match: insert padded(x) now)
///  watermark W (min of both inputs; every later row has t > W):
///     interval: left l is done when l.t - lower <= W, right r when r.t + upper <= W
///               → padded if never matched (outer), then dropped
///     window:   windows with max timestamp in (previous W, W] fire per key
///               (join_by_window) → rows whose last window fired are dropped
///  end of input = W = i64::MAX; regular joins keep everything until then
///
///  the pool refuses (see state::store::sync) ──► every stored row to runs:
///     window:  sorted by the max timestamp of its next window; a watermark
///              brings back, in steps, the rows whose next window it closes, then fires
///     regular, interval: sorted by key hash, with its epoch and matched flag; epoch += 1
///              (new rows probe memory only: pairs within an epoch are emitted live)
///              end of input ──► all rows merged by hash step: pairs of different
///              epochs, and a delete of each live padded row that found one
/// ```
/// State is reserved from the memory pool. Interval joins spill like
/// regular ones (their rows are then kept, not dropped, and the padding of
/// never-matched rows is decided at end of input). A spilled regular or
/// interval join emits the pairs across epochs at end of input, not live.
///
/// Checkpoints (`snapshot` / `restore`):
/// ```text
///  put("join")              {watermark, epoch}                 unkeyed; rescale: max of each
///  put_keyed("left_rows")   left input columns | __weir_join_age u32 | __weir_join_matched bool
///  put_keyed("right_rows")  right input columns | ... (same)   key group = of the row's join key
///     every stored row, in memory and on disk (runs are read, not consumed);
///     age = current epoch - row's epoch (0: the rows in memory)
///  restore: epoch E = max old epoch, row epoch = E - age; age 0 and every
///     window-join row → memory (spilled again if over budget); older rows of
///     regular and interval joins → a run by key hash, as spill_state writes them
/// ```
pub struct SymmetricHashJoin {
    // config
    layout: JoinLayout,
    // state
    sides: [Side; 2],
    /// The last watermark processed (windows up to it fired).
    watermark: i64,
    /// No window or interval cleanup is due before this watermark.
    next_due: i64,
    /// Spills so far (regular joins: the epoch of new rows).
    epoch: u32,
    // resources
    /// Both sides' stored rows (spillable; made by `open`).
    reservation: MemoryReservation,
    /// Spilled rows read back (fixed): a window's rows, or an epoch-join step.
    read_back: MemoryReservation,
    runs: JoinRuns,
}

impl std::fmt::Debug for SymmetricHashJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SymmetricHashJoin")
            .field("spec", self.layout.spec())
            .field("rows", &(self.sides[0].entries + self.sides[1].entries))
            .finish()
    }
}

impl SymmetricHashJoin {
    /// A symmetric hash join laid out by `layout`.
    pub fn try_new(layout: JoinLayout) -> Result<Self> {
        let side = |s: usize| -> Result<Side> {
            Ok(Side {
                keys: layout.key_encoder(s)?,
                empty: RecordBatch::new_empty(layout.input(s).clone()),
                batches: Vec::new(),
                free: Vec::new(),
                by_key: HashMap::default(),
                entries: 0,
                key_bytes: 0,
                batch_bytes: 0,
            })
        };
        let sides = [side(0)?, side(1)?];
        Ok(SymmetricHashJoin {
            sides,
            runs: JoinRuns::new(&layout),
            layout,
            watermark: i64::MIN,
            next_due: i64::MIN,
            epoch: 0,
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        self.layout.schema()
    }

    /// The state columns of a side's checkpoint rows: the input columns,
    /// then the row's epoch age (current epoch minus its epoch) and matched flag.
    fn state_schema(&self, s: usize) -> SchemaRef {
        let mut fields: Vec<Arc<Field>> = self.layout.input(s).fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            "__weir_join_age",
            DataType::UInt32,
            false,
        )));
        fields.push(Arc::new(Field::new(
            "__weir_join_matched",
            DataType::Boolean,
            false,
        )));
        Arc::new(Schema::new(fields))
    }

    /// Writes the input rows `input` of side `s` with their epochs and
    /// matched flags as keyed state (key group of the row's join key).
    fn put_side_rows(
        &self,
        s: usize,
        input: &RecordBatch,
        epochs: &[u32],
        matched: &[bool],
        state: &mut StateWriter,
    ) -> Result<()> {
        if input.num_rows() == 0 {
            return Ok(());
        }
        let keys = self.sides[s].keys.encode(input)?;
        let groups: Vec<u16> = (0..input.num_rows())
            .map(|r| key_group(stable_hash(keys.row(r).as_ref())) as u16)
            .collect();
        let ages = epochs.iter().map(|&e| self.epoch.saturating_sub(e));
        let mut columns: Vec<ArrayRef> = input.columns().to_vec();
        columns.push(Arc::new(UInt32Array::from_iter_values(ages)));
        columns.push(Arc::new(BooleanArray::from(matched.to_vec())));
        let batch = RecordBatch::try_new(self.state_schema(s), columns)?;
        state.put_keyed(SIDE_ENTRIES[s], &batch, &groups)
    }

    /// Writes every stored row of both sides, in memory and on disk (the
    /// runs are only read), and the watermark and epoch.
    fn snapshot_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.put(
            META_ENTRY,
            &JoinMeta {
                watermark: self.watermark,
                epoch: self.epoch,
            },
        )?;
        for s in 0..2 {
            let entries: Vec<Entry> = self.sides[s]
                .by_key
                .values()
                .flat_map(|list| list.iter().copied())
                .collect();
            let sources = self.sides[s].sources();
            for chunk in entries.chunks(SNAPSHOT_ROWS) {
                let idx: Vec<(usize, usize)> = chunk
                    .iter()
                    .map(|e| (e.batch as usize, e.row as usize))
                    .collect();
                let input = arrow_select::interleave::interleave_record_batch(&sources, &idx)?;
                let epochs: Vec<u32> = chunk.iter().map(|e| e.epoch).collect();
                let matched: Vec<bool> = chunk.iter().map(|e| e.matched).collect();
                self.put_side_rows(s, &input, &epochs, &matched, state)?;
            }
            for batch in self.runs.peek(s)? {
                let (meta, input) = spill::split(&batch);
                let epochs: Vec<u32> = meta.iter().map(|m| m.epoch).collect();
                let matched: Vec<bool> = meta.iter().map(|m| m.matched).collect();
                self.put_side_rows(s, &input, &epochs, &matched, state)?;
            }
        }
        Ok(())
    }

    /// Restores rows written by [`snapshot_state`](Self::snapshot_state),
    /// possibly by several old subtasks (a rescale).
    ///
    /// Merging: the watermark is the highest of the old subtasks' (they are
    /// equal in an aligned checkpoint: every subtask saw the same watermarks
    /// before the barrier; the window operators merge the same way); the epoch of new rows is the highest
    /// old epoch `E`, and a row of age `a` gets epoch `E - a`. All rows of a
    /// key come from one old subtask, so rows of a key that shared an epoch
    /// still do, and rows of the current epoch (age 0, the ones that were in
    /// memory) are again in the current one. Regular and interval joins put
    /// older rows back on disk (they pair with newer rows only at end of
    /// input); window joins keep every row in memory and spill again if the
    /// budget asks for it.
    fn restore_state(&mut self, ctx: &Ctx, state: &StateReader) -> Result<()> {
        let metas: Vec<JoinMeta> = state.values(META_ENTRY)?;
        let (Some(watermark), Some(epoch)) = (
            metas.iter().map(|m| m.watermark).max(),
            metas.iter().map(|m| m.epoch).max(),
        ) else {
            return Ok(());
        };
        self.watermark = watermark;
        self.epoch = epoch;
        self.next_due = i64::MIN;
        let by_epoch = matches!(
            self.layout.spec().kind,
            JoinKind::Regular | JoinKind::Interval { .. }
        );
        for (s, entry) in SIDE_ENTRIES.into_iter().enumerate() {
            for batch in state.keyed(entry)? {
                let n = batch.num_columns();
                if n < 2 || batch.schema().field(n - 2).name() != "__weir_join_age" {
                    return Err(Error::State {
                        operator: ctx.operator().to_string(),
                        message: format!(
                            "checkpoint entry `{entry}` lacks the join's age and matched columns"
                        ),
                    });
                }
                let ages = batch.column(n - 2).as_primitive::<UInt32Type>().clone();
                let matched = batch.column(n - 1).as_boolean().clone();
                let input = batch.project(&(0..n - 2).collect::<Vec<_>>())?;
                let input =
                    RecordBatch::try_new(self.layout.input(s).clone(), input.columns().to_vec())?;
                let epochs: Vec<u32> = ages
                    .values()
                    .iter()
                    .map(|&a| epoch.saturating_sub(a))
                    .collect();
                let on_disk: Vec<bool> = ages.values().iter().map(|&a| by_epoch && a > 0).collect();
                // rows of the current epoch (and every window-join row): memory
                let keep: BooleanArray = on_disk.iter().map(|&d| Some(!d)).collect();
                let in_memory = arrow_select::filter::filter_record_batch(
                    &run_batch(&self.runs, s, &batch, &epochs, &matched)?,
                    &keep,
                )?;
                self.hydrate(s, vec![in_memory], ctx)?;
                // older epochs of regular and interval joins: back to disk
                if on_disk.iter().any(|&d| d) {
                    let keys = self.sides[s].keys.encode(&input)?;
                    let mut rows: Vec<SpillRow> = (0..input.num_rows())
                        .filter(|&r| on_disk[r])
                        .map(|r| SpillRow {
                            sort: stable_hash(keys.row(r).as_ref()) as i64,
                            epoch: epochs[r],
                            matched: matched.value(r),
                            at: (0, r),
                        })
                        .collect();
                    self.runs
                        .write(s, &[&input], &mut rows, ctx.spill(), ctx.operator())?;
                }
            }
        }
        self.sync(ctx)
    }

    /// Matches the reservation to the state, spilling every stored row
    /// while the pool refuses (see [`store::sync`]); rows read back are
    /// released from the fixed reservation first.
    fn sync(&mut self, ctx: &Ctx) -> Result<()> {
        self.read_back.free();
        store::sync(self, ctx.spill())
    }

    /// Writes every stored row of both sides to runs and empties memory.
    fn spill_state(&mut self, spill: &SpillManager) -> Result<()> {
        let name = self.reservation.consumer().to_string();
        // regular and interval joins: by key hash (joined by epoch at the end)
        let regular = matches!(
            self.layout.spec().kind,
            JoinKind::Regular | JoinKind::Interval { .. }
        );
        let session = self.layout.spec().kind.is_session();
        for s in 0..2 {
            let mut rows: Vec<SpillRow> = Vec::with_capacity(self.sides[s].entries);
            for (key, entries) in &self.sides[s].by_key {
                let hash = stable_hash(key) as i64;
                rows.extend(entries.iter().map(|e| SpillRow {
                    sort: if regular {
                        hash
                    } else if session {
                        // a step brings back every row at or before it
                        e.time
                    } else {
                        self.due_at(s, e)
                    },
                    epoch: e.epoch,
                    matched: e.matched,
                    at: (e.batch as usize, e.row as usize),
                }));
            }
            let sources = self.sides[s].sources();
            self.runs.write(s, &sources, &mut rows, spill, &name)?;
            self.sides[s].clear();
        }
        self.epoch += 1;
        Ok(())
    }

    /// Stores spilled rows of side `s` again (window joins), without probing.
    fn hydrate(&mut self, s: usize, batches: Vec<RecordBatch>, ctx: &Ctx) -> Result<()> {
        for batch in batches {
            let (meta, input) = spill::split(&batch);
            let keys = self.sides[s].keys.encode(&input)?;
            let times = self.layout.row_times(s, &input, ctx.operator())?;
            let slot = self.sides[s].store(input);
            for (r, m) in meta.iter().enumerate() {
                let entry = Entry {
                    batch: slot,
                    row: r as u32,
                    time: times.time(r),
                    window: times.window(r),
                    matched: m.matched,
                    epoch: m.epoch,
                };
                self.next_due = self.next_due.min(self.due_at(s, &entry));
                self.sides[s].push(keys.row(r).as_ref(), entry);
            }
            self.sides[s].settle(slot, meta.len() as u32);
        }
        let bytes = self.sides[0].bytes() + self.sides[1].bytes();
        self.read_back
            .resize(bytes.saturating_sub(self.reservation.size()));
        Ok(())
    }

    /// End of input of a regular or interval join that spilled: joins the
    /// rows of different epochs (all on disk now), a hash step at a time.
    fn join_epochs(&mut self, ctx: &Ctx, out: &mut Output) -> Result<()> {
        self.spill_state(ctx.spill())?;
        self.sync(ctx)?;
        let step_bytes = store::step_bytes(self.read_back.pool());
        while let Some(step) = self.runs.next_step(step_bytes)? {
            let left = self.runs.take_through(0, step)?;
            let right = self.runs.take_through(1, step)?;
            let bytes: usize = left.iter().chain(&right).map(batch_bytes).sum();
            // a step holds every row of its key hashes
            store::reserve_step(&mut self.read_back, bytes);
            let result = self.join_epoch_step(&left, &right, out);
            self.read_back.shrink(bytes);
            result?;
        }
        Ok(())
    }

    fn join_epoch_step(
        &self,
        left: &[RecordBatch],
        right: &[RecordBatch],
        out: &mut Output,
    ) -> Result<()> {
        type Rows = Vec<((usize, usize), spill::ReadRow, i64)>;
        let mut groups: HashMap<Vec<u8>, [Rows; 2]> = HashMap::new();
        let mut inputs: [Vec<RecordBatch>; 2] = [Vec::new(), Vec::new()];
        for (s, batches) in [left, right].into_iter().enumerate() {
            for (b, batch) in batches.iter().enumerate() {
                let (meta, input) = spill::split(batch);
                let keys = self.sides[s].keys.encode(&input)?;
                let times = self.layout.row_times(s, &input, "join")?;
                for (r, m) in meta.into_iter().enumerate() {
                    let t = times.time(r);
                    groups.entry(keys.row(r).as_ref().to_vec()).or_default()[s].push((
                        (b, r),
                        m,
                        t,
                    ));
                }
                inputs[s].push(input);
            }
        }
        let spec = self.layout.spec();
        let ty = spec.join_type;
        let (mut rows, mut ops): (Vec<OutRow>, Vec<&str>) = (Vec::new(), Vec::new());
        for [l, r] in groups.values() {
            let mut crossed = [vec![false; l.len()], vec![false; r.len()]];
            for (i, (la, lm, lt)) in l.iter().enumerate() {
                for (j, (ra, rm, rt)) in r.iter().enumerate() {
                    if lm.epoch != rm.epoch && spec.times_match(*lt, *rt) {
                        crossed[0][i] = true;
                        crossed[1][j] = true;
                        rows.push((Some(*la), Some(*ra), None));
                        ops.push("insert");
                    }
                }
            }
            // regular: a padded row still live (never matched in its epoch)
            // that now has a match is retracted; interval: a row never
            // matched in any epoch is padded now
            let regular = spec.kind == JoinKind::Regular;
            for (s, list) in [l, r].into_iter().enumerate() {
                let keeps = ty.keeps(s);
                for (i, (at, m, _)) in list.iter().enumerate() {
                    let pad = padded(s, *at, None);
                    if keeps && !m.matched && regular && crossed[s][i] {
                        rows.push(pad);
                        ops.push("delete");
                    } else if keeps && !m.matched && !regular && !crossed[s][i] {
                        rows.push(pad);
                        ops.push("insert");
                    }
                }
            }
        }
        if !rows.is_empty() {
            let l: Vec<&RecordBatch> = inputs[0].iter().collect();
            let r: Vec<&RecordBatch> = inputs[1].iter().collect();
            let ops = self
                .layout
                .spec()
                .emits_changelog()
                .then_some(ops.as_slice());
            for (chunk, ops) in chunks(&rows, ops, STEP_ROWS) {
                out.emit(self.layout.assemble(&l, &r, chunk, ops)?);
            }
        }
        Ok(())
    }

    /// The windows of a row: assigned from its time, or its own columns.
    fn windows(&self, e: &Entry) -> Vec<(i64, i64)> {
        match self.layout.spec().kind {
            // sessions depend on the other rows (see advance_sessions)
            JoinKind::Window(Window::Session { .. }) => Vec::new(),
            JoinKind::Window(w) => w
                .windows_of_pane(w.pane_of(e.time))
                .into_iter()
                .filter(|&(s, end)| s <= e.time && e.time < end)
                .collect(),
            JoinKind::SameWindow => vec![e.window],
            _ => Vec::new(),
        }
    }

    /// The watermark at which a stored row is done (no later row can match it).
    fn done_at(&self, side: usize, e: &Entry) -> i64 {
        match self.layout.spec().kind {
            // the earliest its session can close
            JoinKind::Window(Window::Session { gap_ms }) => e.time.saturating_add(gap_ms),
            // one window per row (no allocation on this per-row path)
            JoinKind::SameWindow => Window::max_timestamp(e.window.1),
            JoinKind::Interval { lower_ms, upper_ms } => {
                if side == 0 {
                    e.time.saturating_sub(lower_ms)
                } else {
                    e.time.saturating_add(upper_ms)
                }
            }
            JoinKind::Window(_) => self
                .windows(e)
                .iter()
                .map(|&(_, end)| Window::max_timestamp(end))
                .max()
                .unwrap_or(i64::MIN),
            JoinKind::Regular => self
                .layout
                .spec()
                .ttl_ms
                .map_or(i64::MAX, |ttl| e.time.saturating_add(ttl)),
        }
    }

    /// The next watermark at which something of a stored row is due.
    fn due_at(&self, side: usize, e: &Entry) -> i64 {
        match self.layout.spec().kind {
            JoinKind::Window(Window::Session { .. }) | JoinKind::SameWindow => {
                let t = self.done_at(side, e);
                if t > self.watermark {
                    t
                } else {
                    i64::MIN
                }
            }
            JoinKind::Window(_) => self
                .windows(e)
                .iter()
                .map(|&(_, end)| Window::max_timestamp(end))
                .filter(|&t| t > self.watermark)
                .min()
                .unwrap_or(i64::MIN),
            _ => self.done_at(side, e),
        }
    }

    fn emit(&self, rows: &[OutRow], ops: &[&str], out: &mut Output) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let (l, r) = (self.sides[0].sources(), self.sides[1].sources());
        let ops = self.layout.spec().emits_changelog().then_some(ops);
        out.emit(self.layout.assemble(&l, &r, rows, ops)?);
        Ok(())
    }

    /// Fires what watermark `w` completes; with spilled window-join rows,
    /// in steps that each bring back a bounded number first.
    fn advance(&mut self, w: i64, ctx: &Ctx, out: &mut Output) -> Result<()> {
        let windowed = matches!(
            self.layout.spec().kind,
            JoinKind::Window(_) | JoinKind::SameWindow
        );
        if !windowed || self.runs.is_empty() {
            return self.advance_to(w, out);
        }
        loop {
            let step = match self
                .runs
                .next_step(store::step_bytes(self.read_back.pool()))?
            {
                Some(b) if b < w => b,
                _ => w,
            };
            for s in 0..2 {
                let batches = self.runs.take_through(s, step)?;
                self.hydrate(s, batches, ctx)?;
            }
            self.advance_to(step, out)?;
            if step >= w {
                return Ok(());
            }
        }
    }

    /// Session-window joins at watermark `w`: per key, sessions over the
    /// rows of both sides; each session ending at or before `w` is joined
    /// and its rows dropped (a later row has `t > w >= end`: it cannot touch).
    fn advance_sessions(&mut self, w: i64, gap_ms: i64, out: &mut Output) -> Result<()> {
        let ty = self.layout.spec().join_type;
        let keys = self.sides[0].keys_with(&self.sides[1]);
        let mut rows: Vec<OutRow> = Vec::new();
        let mut next_due = i64::MAX;
        // (key, side, rows of the side's list to drop)
        let mut finished: Vec<(Vec<u8>, [Vec<bool>; 2])> = Vec::new();
        for key in keys {
            let mut refs: [Vec<super::SideRow>; 2] = [Vec::new(), Vec::new()];
            for (s, refs) in refs.iter_mut().enumerate() {
                if let Some(entries) = self.sides[s].by_key.get(&key) {
                    refs.extend(entries.iter().map(|e| super::SideRow {
                        at: (e.batch as usize, e.row as usize),
                        time: e.time,
                        window: e.window,
                    }));
                }
            }
            let mut lists: [Vec<((i64, i64), usize)>; 2] = [Vec::new(), Vec::new()];
            let mut done = [vec![false; refs[0].len()], vec![false; refs[1].len()]];
            for (window, members) in super::sessions_of(&refs[0], &refs[1], gap_ms) {
                if window.1 > w {
                    next_due = next_due.min(window.1);
                    continue;
                }
                for s in 0..2 {
                    for &i in &members[s] {
                        lists[s].push((window, i));
                        done[s][i] = true;
                    }
                }
            }
            if lists.iter().all(Vec::is_empty) {
                continue;
            }
            for list in &mut lists {
                list.sort_unstable();
            }
            join_by_window(ty, &refs[0], &refs[1], &lists[0], &lists[1], &mut rows);
            finished.push((key, done));
        }
        self.watermark = w;
        self.next_due = next_due;
        let ops = vec!["insert"; rows.len()];
        self.emit(&rows, &ops, out)?;
        // drop the rows of closed sessions (after emitting: rows point into their batches)
        for (key, done) in finished {
            for (s, done) in done.iter().enumerate() {
                let side = &mut self.sides[s];
                let Some(entries) = side.by_key.remove(&key) else {
                    continue;
                };
                let mut kept = Vec::new();
                for (e, &d) in entries.into_iter().zip(done) {
                    if d {
                        side.entries -= 1;
                        side.unref(e.batch, 1);
                    } else {
                        kept.push(e);
                    }
                }
                if kept.is_empty() {
                    side.key_bytes -= key.len() + KEY_BYTES;
                } else {
                    side.by_key.insert(key.clone(), kept);
                }
            }
        }
        Ok(())
    }

    /// Fires what watermark `w` completes and drops what it finishes.
    fn advance_to(&mut self, w: i64, out: &mut Output) -> Result<()> {
        if w <= self.watermark {
            return Ok(());
        }
        let spec = self.layout.spec().clone();
        // Regular and interval joins keep finished rows once they have
        // spilled: a row on disk (an earlier epoch) may still pair with them
        // at end of input, which also decides the interval join's padding.
        let by_epoch = matches!(spec.kind, JoinKind::Regular | JoinKind::Interval { .. });
        let keeps_all = (spec.kind == JoinKind::Regular && spec.ttl_ms.is_none())
            || (by_epoch && !self.runs.is_empty());
        if keeps_all || w < self.next_due {
            self.watermark = w;
            return Ok(());
        }
        if let JoinKind::Window(Window::Session { gap_ms }) = spec.kind {
            return self.advance_sessions(w, gap_ms, out);
        }
        let mut rows: Vec<OutRow> = Vec::new();
        let mut next_due = i64::MAX;
        let prev = self.watermark;
        if matches!(spec.kind, JoinKind::Window(_) | JoinKind::SameWindow) {
            let keys = self.sides[0].keys_with(&self.sides[1]);
            for key in keys {
                let mut lists: [Vec<((i64, i64), usize)>; 2] = [Vec::new(), Vec::new()];
                let mut refs: [Vec<super::SideRow>; 2] = [Vec::new(), Vec::new()];
                for s in 0..2 {
                    let Some(entries) = self.sides[s].by_key.get(&key) else {
                        continue;
                    };
                    for e in entries {
                        let i = refs[s].len();
                        refs[s].push(super::SideRow {
                            at: (e.batch as usize, e.row as usize),
                            time: e.time,
                            window: e.window,
                        });
                        for win in self.windows(e) {
                            let t = Window::max_timestamp(win.1);
                            if t > prev && t <= w {
                                lists[s].push((win, i));
                            }
                        }
                    }
                    lists[s].sort_unstable();
                }
                join_by_window(
                    spec.join_type,
                    &refs[0],
                    &refs[1],
                    &lists[0],
                    &lists[1],
                    &mut rows,
                );
            }
        } else {
            for s in 0..2 {
                let keeps = spec.join_type.keeps(s);
                for entries in self.sides[s].by_key.values() {
                    for e in entries {
                        // regular joins padded their rows on arrival
                        let pads = keeps && spec.kind != JoinKind::Regular;
                        if self.done_at(s, e) <= w && !e.matched && pads {
                            rows.push(padded(s, (e.batch as usize, e.row as usize), None));
                        }
                    }
                }
            }
        }
        self.watermark = w;
        let ops = vec!["insert"; rows.len()];
        self.emit(&rows, &ops, out)?;
        // drop finished rows
        for s in 0..2 {
            let mut released: Vec<u32> = Vec::new();
            let mut by_key = std::mem::take(&mut self.sides[s].by_key);
            by_key.retain(|key, entries| {
                entries.retain(|e| {
                    if self.done_at(s, e) <= w {
                        released.push(e.batch);
                        false
                    } else {
                        next_due = next_due.min(self.due_at(s, e));
                        true
                    }
                });
                if entries.is_empty() {
                    self.sides[s].key_bytes -= key.len() + KEY_BYTES;
                }
                !entries.is_empty()
            });
            self.sides[s].by_key = by_key;
            self.sides[s].entries -= released.len();
            for slot in released {
                self.sides[s].unref(slot, 1);
            }
        }
        self.next_due = next_due;
        Ok(())
    }
}

impl SpillableState for SymmetricHashJoin {
    fn memory_bytes(&self) -> usize {
        self.sides[0].bytes() + self.sides[1].bytes()
    }

    fn can_spill(&self) -> bool {
        self.sides.iter().any(|s| s.entries > 0)
    }

    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        self.spill_state(spill)
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}

impl Operator for SymmetricHashJoin {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.reservation = ctx.spillable_reservation();
        self.read_back = ctx.fixed_reservation("read-back");
        Ok(())
    }

    fn on_batch(
        &mut self,
        port: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let s = port.min(1);
        let o = 1 - s;
        let spec = self.layout.spec().clone();
        let keeps = |side: usize| spec.join_type.keeps(side);
        let keys = self.sides[s].keys.encode(&batch)?;
        let null_key = null_key_rows(&batch, self.sides[s].keys.indices());
        let times = self.layout.row_times(s, &batch, ctx.operator())?;
        let slot = self.sides[s].store(batch);
        let pair = |x: (usize, usize), y: (usize, usize)| -> OutRow {
            if s == 0 {
                (Some(x), Some(y), None)
            } else {
                (Some(y), Some(x), None)
            }
        };
        let mut rows: Vec<OutRow> = Vec::new();
        let mut ops: Vec<&str> = Vec::new();
        let mut stored = 0u32;
        let mut late = 0u64;
        let n = keys.num_rows();
        for r in 0..n {
            let x = (slot as usize, r);
            let entry = Entry {
                batch: slot,
                row: r as u32,
                time: times.time(r),
                window: times.window(r),
                matched: false,
                epoch: self.epoch,
            };
            if null_key.as_ref().is_some_and(|f| f[r]) {
                // matches nothing, ever
                if keeps(s) {
                    let mut wins = self.windows(&entry);
                    if let JoinKind::Window(Window::Session { gap_ms }) = spec.kind {
                        // its own session: no other row shares its key
                        wins.push((entry.time, entry.time.saturating_add(gap_ms)));
                    }
                    if wins.is_empty() {
                        rows.push(padded(s, x, None));
                        ops.push("insert");
                    }
                    for win in wins {
                        rows.push(padded(s, x, Some(win)));
                        ops.push("insert");
                    }
                }
                continue;
            }
            let key = keys.row(r);
            let mut entry = entry;
            match spec.kind {
                JoinKind::Regular | JoinKind::Interval { .. } => {
                    let other_keeps = keeps(o);
                    if let Some(others) = self.sides[o].by_key.get_mut(key.as_ref()) {
                        for y in others.iter_mut() {
                            let (lt, rt) = if s == 0 {
                                (entry.time, y.time)
                            } else {
                                (y.time, entry.time)
                            };
                            if !spec.times_match(lt, rt) {
                                continue;
                            }
                            let at = (y.batch as usize, y.row as usize);
                            if spec.kind == JoinKind::Regular && !y.matched && other_keeps {
                                rows.push(padded(o, at, None));
                                ops.push("delete");
                            }
                            y.matched = true;
                            entry.matched = true;
                            rows.push(pair(x, at));
                            ops.push("insert");
                        }
                    }
                    if spec.kind == JoinKind::Regular && !entry.matched && keeps(s) {
                        rows.push(padded(s, x, None));
                        ops.push("insert");
                    }
                    if self.done_at(s, &entry) <= self.watermark && self.runs.is_empty() {
                        // behind the watermark (inputs with allowed lateness): no later
                        // row can match it, so it is finished now
                        if !entry.matched && keeps(s) && spec.kind != JoinKind::Regular {
                            rows.push(padded(s, x, None));
                            ops.push("insert");
                        }
                        continue;
                    }
                }
                JoinKind::Window(_) | JoinKind::SameWindow => {
                    if self.done_at(s, &entry) <= self.watermark {
                        late += 1;
                        continue;
                    }
                }
            }
            self.next_due = self.next_due.min(self.due_at(s, &entry));
            self.sides[s].push(key.as_ref(), entry);
            stored += 1;
        }
        if late > 0 {
            OperatorMetrics::add(&ctx.metrics().late_rows, late);
        }
        let result = self.emit(&rows, &ops, out);
        self.sides[s].settle(slot, stored);
        result?;
        self.sync(ctx)
    }

    fn on_watermark(&mut self, wm: Watermark, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            self.advance(t, ctx, out)?;
            self.sync(ctx)?;
        }
        out.emit_watermark(wm);
        Ok(())
    }

    fn snapshot(&mut self, _ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        self.snapshot_state(state)
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.restore_state(ctx, state)
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        let by_epoch = matches!(
            self.layout.spec().kind,
            JoinKind::Regular | JoinKind::Interval { .. }
        );
        if by_epoch && !self.runs.is_empty() {
            self.join_epochs(ctx, out)?;
        } else if self.layout.spec().kind != JoinKind::Regular {
            self.advance(i64::MAX, ctx, out)?;
        }
        for side in &mut self.sides {
            side.clear();
        }
        self.sync(ctx)
    }
}

/// `rows` (and `ops`, if any) in chunks of at most `n`.
fn chunks<'a>(
    rows: &'a [OutRow],
    ops: Option<&'a [&'a str]>,
    n: usize,
) -> impl Iterator<Item = (&'a [OutRow], Option<&'a [&'a str]>)> {
    rows.chunks(n)
        .enumerate()
        .map(move |(i, c)| (c, ops.map(|o| &o[i * n..i * n + c.len()])))
}

/// Side `s`'s checkpoint rows `batch` (input columns, age, matched) in the
/// layout of a spill run (sort key 0, epoch, matched, input columns).
fn run_batch(
    runs: &JoinRuns,
    s: usize,
    batch: &RecordBatch,
    epochs: &[u32],
    matched: &BooleanArray,
) -> Result<RecordBatch> {
    let n = batch.num_columns();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![0i64; batch.num_rows()])),
        Arc::new(Int64Array::from_iter_values(
            epochs.iter().map(|&e| i64::from(e)),
        )),
        Arc::new(matched.clone()),
    ];
    columns.extend(batch.columns()[..n - 2].iter().cloned());
    Ok(RecordBatch::try_new(runs.schema(s).clone(), columns)?)
}
