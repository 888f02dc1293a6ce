//! The pipelined join of tumbling-window and same-window joins: rows kept
//! per window, each window joined by one hash join when the watermark
//! closes it.
//!
//! May use what the parent module imports.

mod buckets;
mod checkpoint;
mod probe;

use super::sort_merge::null_key_rows;
use super::{JoinKind, JoinLayout, JoinSpec, JoinType};
use arrow_array::{RecordBatch, UInt32Array};
use arrow_buffer::ScalarBuffer;
use arrow_schema::SchemaRef;
use buckets::{Buckets, WindowRows};
use std::collections::HashMap;
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::KeyEncoder;
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, OperatorMetrics, Output};
use weir_core::spill::{batch_bytes, SpillManager};
use weir_core::state::store::{self, SortedRuns, SpillableState};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::Window;

/// Output rows per emitted batch (a window with more is emitted in parts).
const OUT_ROWS: usize = 64 * 1024;

/// Joins two inputs window by window as they stream (pipelined mode), for
/// joins whose rows each fall in one window: tumbling-window joins and
/// same-window joins of two window aggregates.
///
/// ```text
///  batch of side s ──► rows grouped by window (one batch as is when all share one)
///     null key: matches nothing → padded now (outer side), not kept
///     window already fired (end - 1 <= watermark): late, dropped, counted
///     else kept in its window's bucket (Buckets: by (end, start))
///  watermark W: every window with end - 1 <= W, in end order:
///     left rows ⋈ right rows by one hash join (probe::pair_rows) → take → emitted
///     the window's rows dropped
///  end of input = W = i64::MAX
///
///  the pool refuses (see state::store::sync) ──► every kept row to a run per
///  side, windows in end order (sorted by end - 1); a watermark brings back,
///  in steps of a bounded size, the rows of the windows it fires, and joins
///  them with the window's rows in memory
/// ```
/// Each window's rows are touched once when kept and once when fired: no
/// per-key lists and no per-key timers. The result equals
/// [`SymmetricHashJoin`](super::SymmetricHashJoin)'s for these kinds (the
/// tests check it), and checkpoints share its layout (see `checkpoint`).
pub struct WindowHashJoin {
    // config
    layout: JoinLayout,
    keys: [KeyEncoder; 2],
    /// Batch mode: watermarks are held back and every window fires at end
    /// of input, so no row is ever late (see [`with_blocking`](Self::with_blocking)).
    blocking: bool,
    // state
    buckets: Buckets,
    /// The last watermark processed (windows up to it fired).
    watermark: i64,
    // resources
    /// The rows kept in memory (spillable; made by `open`).
    reservation: MemoryReservation,
    /// Spilled rows read back to fire their windows (fixed).
    read_back: MemoryReservation,
    /// Per side, the spilled rows, sorted by their window's end.
    runs: [SortedRuns; 2],
}

impl std::fmt::Debug for WindowHashJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowHashJoin")
            .field("spec", self.layout.spec())
            .field("bytes", &self.buckets.bytes())
            .finish()
    }
}

/// A side's rows of one batch, grouped: kept rows and padded rows by window.
struct Grouped {
    kept: Vec<((i64, i64), RecordBatch)>,
    padded: Vec<((i64, i64), RecordBatch)>,
    late: u64,
}

impl WindowHashJoin {
    /// True for the joins this operator runs: same-window joins and
    /// tumbling-window joins (one window per row).
    pub fn supports(spec: &JoinSpec) -> bool {
        matches!(
            spec.kind,
            JoinKind::SameWindow | JoinKind::Window(Window::Tumbling { .. })
        )
    }

    /// A window hash join laid out by `layout`; refuses the kinds it does
    /// not run (see [`supports`](Self::supports)).
    pub fn try_new(layout: JoinLayout) -> Result<Self> {
        if !Self::supports(layout.spec()) {
            return Err(Error::Plan(format!(
                "join: the window hash join runs same-window and tumbling-window joins, not {:?}",
                layout.spec().kind
            )));
        }
        let keys = [layout.key_encoder(0)?, layout.key_encoder(1)?];
        Ok(WindowHashJoin {
            layout,
            keys,
            blocking: false,
            buckets: Buckets::default(),
            watermark: i64::MIN,
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
            runs: [SortedRuns::new(), SortedRuns::new()],
        })
    }

    /// Batch mode (`true`): holds watermarks back and fires every window at
    /// end of input, as the sort-merge join does. A batch stage may forward
    /// a watermark before rows it emits at its end (a `GROUP BY`'s result),
    /// which a watermark-driven join would drop as late; blocking, it
    /// joins every row it is given.
    pub fn with_blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        self.layout.schema()
    }

    /// Groups the rows of side `s`'s `batch` by window: rows to keep,
    /// null-key rows to pad now (if the join keeps side `s`), and, if
    /// `drop_late`, the count of late rows (their window fired), which are
    /// dropped (else they are kept: their window fires at the next watermark).
    fn group(
        &self,
        s: usize,
        batch: &RecordBatch,
        drop_late: bool,
        context: &str,
    ) -> Result<Grouped> {
        let mut grouped = Grouped {
            kept: Vec::new(),
            padded: Vec::new(),
            late: 0,
        };
        let n = batch.num_rows();
        if n == 0 {
            return Ok(grouped);
        }
        let windows = windows_of(&self.layout, s, batch, context)?;
        let null = null_key_rows(batch, self.keys[s].indices());
        let open = |w: (i64, i64)| !drop_late || Window::max_timestamp(w.1) > self.watermark;
        if null.is_none() && windows.iter().all(|&w| w == windows[0]) && open(windows[0]) {
            // one window, every row kept (window aggregates emit runs of a window)
            grouped.kept.push((windows[0], batch.clone()));
            return Ok(grouped);
        }
        let keeps = self.layout.spec().join_type.keeps(s);
        let mut kept: Groups = Groups::default();
        let mut padded: Groups = Groups::default();
        for (r, &w) in windows.iter().enumerate() {
            if null.as_ref().is_some_and(|f| f[r]) {
                // matches nothing, ever (padded even if late, as the
                // symmetric join does)
                if keeps {
                    padded.push(w, r);
                }
            } else if open(w) {
                kept.push(w, r);
            } else {
                grouped.late += 1;
            }
        }
        grouped.kept = kept.take(batch)?;
        grouped.padded = padded.take(batch)?;
        Ok(grouped)
    }

    /// Keeps the grouped rows of side `s`.
    fn keep(&mut self, s: usize, kept: Vec<((i64, i64), RecordBatch)>) -> Result<()> {
        for (w, rows) in kept {
            self.buckets.add(s, w, rows)?;
        }
        Ok(())
    }

    /// Joins one window's rows and emits the result. What the join builds
    /// besides the rows (their copy into one batch per side, the hash
    /// table, the pair indexes) is held in the fixed read-back reservation
    /// while it lives.
    fn fire(&mut self, window: (i64, i64), rows: WindowRows, out: &mut Output) -> Result<()> {
        let [left, right] = rows;
        let copies: usize = [&left, &right]
            .iter()
            .filter(|b| b.len() > 1)
            .flat_map(|b| b.iter())
            .map(batch_bytes)
            .sum();
        let table = [&left, &right]
            .iter()
            .map(|b| b.iter().map(RecordBatch::num_rows).sum::<usize>())
            .sum::<usize>()
            * probe::BYTES_PER_ROW;
        let transient = copies + table;
        store::reserve_step(&mut self.read_back, transient);
        let result = self.join_window(window, left, right, out);
        debug_assert!(self.read_back.size() >= transient);
        self.read_back.shrink(transient);
        result
    }

    fn join_window(
        &mut self,
        window: (i64, i64),
        left: Vec<RecordBatch>,
        right: Vec<RecordBatch>,
        out: &mut Output,
    ) -> Result<()> {
        let left = concat(self.layout.input(0), left)?;
        let right = concat(self.layout.input(1), right)?;
        let (li, ri) = probe::pair_rows(&self.keys, self.layout.spec().join_type, &left, &right)?;
        // the pair indexes (8 bytes a pair) beyond what was reserved per row
        let pairs = (li.len() * 8).saturating_sub((left.num_rows() + right.num_rows()) * 8);
        store::reserve_step(&mut self.read_back, pairs);
        let emit = |out: &mut Output| -> Result<()> {
            let n = li.len();
            for at in (0..n).step_by(OUT_ROWS) {
                let len = OUT_ROWS.min(n - at);
                let (l, r) = (li.slice(at, len), ri.slice(at, len));
                out.emit(self.layout.assemble_window(&left, &right, &l, &r, window)?);
            }
            Ok(())
        };
        let result = emit(out);
        debug_assert!(self.read_back.size() >= pairs);
        self.read_back.shrink(pairs);
        result
    }

    /// Fires every window that watermark `w` closes, in end order; with
    /// spilled rows, in steps that each bring back a bounded amount first.
    fn advance(&mut self, w: i64, out: &mut Output) -> Result<()> {
        // (at an equal watermark only restored rows behind it are due: a
        // rescale keeps the highest of the old subtasks' watermarks)
        if w < self.watermark {
            return Ok(());
        }
        if self.runs.iter().all(SortedRuns::is_empty) {
            self.fire_merged(w, Buckets::default(), out)?;
            self.watermark = w;
            return Ok(());
        }
        let step_bytes = store::step_bytes(self.read_back.pool());
        loop {
            let mut step: Option<i64> = None;
            for s in 0..2 {
                let key = run_key(&self.layout, s);
                if let Some(b) = self.runs[s].next_step(&key, step_bytes / 2)? {
                    step = Some(step.map_or(b, |x| x.min(b)));
                }
            }
            let step = match step {
                Some(b) if b < w => b,
                _ => w,
            };
            // the rows on disk of the windows firing by `step`, by window
            // (held in the fixed reservation, not the spillable one)
            let mut back = Buckets::default();
            let mut bytes = 0;
            for s in 0..2 {
                let key = run_key(&self.layout, s);
                for batch in self.runs[s].take_through(step, &key)? {
                    bytes += batch_bytes(&batch);
                    for (win, rows) in self.group(s, &batch, false, "join (read back)")?.kept {
                        back.add(s, win, rows)?;
                    }
                }
            }
            // a step holds whole windows, which nothing can split
            store::reserve_step(&mut self.read_back, bytes);
            let fired = self.fire_merged(step, back, out);
            self.read_back.free();
            fired?;
            if step >= w {
                break;
            }
        }
        self.watermark = w;
        Ok(())
    }

    /// Fires the windows closed by `step`: those in memory and those read
    /// back (`back`), a window's rows from both places together, in end
    /// order.
    fn fire_merged(&mut self, step: i64, mut back: Buckets, out: &mut Output) -> Result<()> {
        let due = |b: &Buckets| {
            b.first_window()
                .filter(|w| Window::max_timestamp(w.1) <= step)
        };
        // windows ordered as the buckets order them: by (end, start)
        let order = |w: (i64, i64)| (w.1, w.0);
        loop {
            let window = match (due(&self.buckets), due(&back)) {
                (None, None) => return Ok(()),
                (Some(m), Some(d)) => std::cmp::min_by_key(m, d, |&w| order(w)),
                (m, d) => m.or(d).expect("one is some"),
            };
            let mut rows: WindowRows = [Vec::new(), Vec::new()];
            for from in [&mut self.buckets, &mut back] {
                if from.first_window() == Some(window) {
                    let (_, more) = from.pop_due(step).expect("the first window is due");
                    for (s, batches) in more.into_iter().enumerate() {
                        rows[s].extend(batches);
                    }
                }
            }
            self.fire(window, rows, out)?;
        }
    }

    /// Matches the reservation to the rows in memory, spilling them while
    /// the pool refuses (see [`store::sync`]).
    fn sync(&mut self, ctx: &Ctx) -> Result<()> {
        store::sync(self, ctx.spill())
    }
}

/// Row indexes by window, in the order windows first appear.
#[derive(Default)]
struct Groups {
    windows: Vec<((i64, i64), Vec<u32>)>,
    index: HashMap<(i64, i64), usize>,
}

impl Groups {
    fn push(&mut self, w: (i64, i64), r: usize) {
        // consecutive rows usually share a window
        if let Some((last, rows)) = self.windows.last_mut() {
            if *last == w {
                rows.push(r as u32);
                return;
            }
        }
        let i = *self.index.entry(w).or_insert_with(|| {
            self.windows.push((w, Vec::new()));
            self.windows.len() - 1
        });
        self.windows[i].1.push(r as u32);
    }

    /// Each window's rows of `batch`.
    fn take(self, batch: &RecordBatch) -> Result<Vec<((i64, i64), RecordBatch)>> {
        self.windows
            .into_iter()
            .map(|(w, rows)| {
                let rows = if rows.len() == batch.num_rows() {
                    batch.clone()
                } else {
                    arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))?
                };
                Ok((w, rows))
            })
            .collect()
    }
}

/// The window `(start, end)` of every row of side `s`'s `batch`: its
/// `window_start`/`window_end` (same-window joins) or the tumbling window
/// of its event time.
fn windows_of(
    layout: &JoinLayout,
    s: usize,
    batch: &RecordBatch,
    context: &str,
) -> Result<Vec<(i64, i64)>> {
    let times = layout.row_times(s, batch, context)?;
    let n = batch.num_rows();
    Ok(match layout.spec().kind {
        JoinKind::Window(w) => (0..n)
            .map(|r| w.last_window_of_pane(w.pane_of(times.time(r))))
            .collect(),
        _ => (0..n).map(|r| times.window(r)).collect(),
    })
}

/// The sort key of side `s`'s spilled rows: the max timestamp of their window.
fn run_key(
    layout: &JoinLayout,
    s: usize,
) -> impl Fn(&RecordBatch) -> Result<ScalarBuffer<i64>> + '_ {
    move |batch: &RecordBatch| {
        let windows = windows_of(layout, s, batch, "join (spilled rows)")?;
        Ok(windows
            .iter()
            .map(|w| Window::max_timestamp(w.1))
            .collect::<Vec<_>>()
            .into())
    }
}

/// One batch of `batches` (empty, shaped like `schema`, if there are none).
fn concat(schema: &SchemaRef, mut batches: Vec<RecordBatch>) -> Result<RecordBatch> {
    Ok(match batches.len() {
        0 => RecordBatch::new_empty(schema.clone()),
        1 => batches.pop().expect("one batch"),
        _ => arrow_select::concat::concat_batches(schema, &batches)?,
    })
}

impl SpillableState for WindowHashJoin {
    fn memory_bytes(&self) -> usize {
        self.buckets.bytes()
    }

    fn can_spill(&self) -> bool {
        !self.buckets.is_empty()
    }

    /// Writes every kept row to one run per side, windows in end order.
    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        let name = self.reservation.consumer().to_string();
        for s in 0..2 {
            let mut batches = self.buckets.side(s).peekable();
            if batches.peek().is_none() {
                continue;
            }
            let mut writer = spill.create_writer(self.layout.input(s), &name)?;
            for batch in batches {
                writer.write(batch)?;
            }
            self.runs[s].add(writer.finish()?)?;
        }
        self.buckets.clear();
        Ok(())
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}

impl Operator for WindowHashJoin {
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
        let grouped = self.group(s, &batch, true, ctx.operator())?;
        if grouped.late > 0 {
            OperatorMetrics::add(&ctx.metrics().late_rows, grouped.late);
        }
        for (window, rows) in grouped.padded {
            let empty = RecordBatch::new_empty(self.layout.input(1 - s).clone());
            let pads = UInt32Array::new_null(rows.num_rows());
            let own = UInt32Array::from_iter_values(0..rows.num_rows() as u32);
            let (left, right, li, ri) = if s == 0 {
                (&rows, &empty, &own, &pads)
            } else {
                (&empty, &rows, &pads, &own)
            };
            out.emit(self.layout.assemble_window(left, right, li, ri, window)?);
        }
        self.keep(s, grouped.kept)?;
        self.sync(ctx)
    }

    fn on_watermark(&mut self, wm: Watermark, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if self.blocking {
            // held back: every row is emitted at end of input (the next
            // stage's replay ends with the final watermark)
            return Ok(());
        }
        if let Watermark::EventTime(t) = wm {
            self.advance(t, out)?;
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
        self.advance(i64::MAX, out)?;
        self.buckets.clear();
        self.sync(ctx)
    }
}

#[cfg(test)]
mod tests;
