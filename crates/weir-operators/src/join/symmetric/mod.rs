//! The pipelined join: a symmetric hash join whose outer rows and state
//! cleanup are driven by the watermark.

mod advance;
mod checkpoint;
mod overflow;
mod side;

use super::sort_merge::null_key_rows;
use super::spill::{self as runs, JoinRuns, SpillRow};
use super::{join_by_window, padded, JoinKind, JoinLayout, OutRow};
use super::{sessions_of, SideRow};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow_schema::SchemaRef;
use side::{Order, Side, Slot};
use std::collections::HashMap;
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{stable_hash, KeyEncoder};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, OperatorMetrics, Output};
use weir_core::spill::{batch_bytes, SpillManager};
use weir_core::state::store::{self, SpillableState};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::Window;

/// Bytes accounted per stored row (its [`Entry`] and map share).
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>() + 8;
/// Spilled rows read back per step.
const STEP_ROWS: usize = 8192;

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
///              from the first spill on, the forwarded watermark stays at the one
///              then (held): every pair emitted at the end is later than it
/// ```
/// State is reserved from the memory pool. Interval joins spill like
/// regular ones (their rows are then kept, not dropped, and the padding of
/// never-matched rows is decided at end of input). A spilled regular or
/// interval join emits the pairs across epochs at end of input, not live.
///
/// Checkpoints (`snapshot` / `restore`):
/// ```text
///  put("join")              {watermark, epoch}                 unkeyed; rescale: max of each
///  put("join_held")         the held watermark, once spilled   unkeyed; rescale: the lowest
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
    /// Spills so far (regular joins: the epoch of new rows).
    epoch: u32,
    /// Regular and interval joins, once spilled: the watermark they forward
    /// from then on (the one at their first spill). Their pairs across
    /// spill epochs come at end of input, and each is later than it, so no
    /// pair is ever behind the watermark downstream operators have seen.
    held: Option<i64>,
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
        let order = Order::of(layout.spec().kind, layout.spec().ttl_ms);
        let side = |s: usize| -> Result<Side> {
            Ok(Side::new(
                layout.key_encoder(s)?,
                order,
                RecordBatch::new_empty(layout.input(s).clone()),
            ))
        };
        let sides = [side(0)?, side(1)?];
        Ok(SymmetricHashJoin {
            sides,
            runs: JoinRuns::new(&layout),
            layout,
            watermark: i64::MIN,
            epoch: 0,
            held: None,
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        self.layout.schema()
    }

    /// Stores a row of side `s` under `key`; a key new to the side is
    /// linked with its slot on the other side (one lookup per new key).
    fn store_row(&mut self, s: usize, key: &[u8], entry: Entry, due: i64) {
        if let Some(slot) = self.sides[s].push(key, entry, due) {
            let partner = self.sides[1 - s].slot(key);
            self.sides[s].link(slot, partner);
            if let Some(p) = partner {
                self.sides[1 - s].link(p, Some(slot));
            }
        }
    }

    /// Drops finished rows of a key (see [`Side::finish_prefix`]); a key
    /// that leaves side `s` is unlinked on the other side.
    fn finish_prefix(&mut self, s: usize, slot: Slot, n: usize, head: Option<i64>) {
        if let Some(p) = self.sides[s].finish_prefix(slot, n, head) {
            self.sides[1 - s].link(p, None);
        }
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
                    if let Some(others) = self.sides[o].get_mut(key.as_ref()) {
                        for y in others.rows.iter_mut() {
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
            let due = self.due_at(s, &entry);
            self.store_row(s, key.as_ref(), entry, due);
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
            out.emit_watermark(Watermark::EventTime(self.held.map_or(t, |h| t.min(h))));
            return Ok(());
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
