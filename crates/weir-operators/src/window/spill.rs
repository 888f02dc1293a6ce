//! Spilling window panes to disk when their state outgrows the memory budget.

use super::Pane;
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::key::KeyDictionary;
use weir_core::spill::SpillManager;
use weir_core::state::store::{RunKey, SortedRuns};
use weir_functions::aggregate::{Accumulators, BoundAgg};

/// Rows per merged batch of a compaction or a firing from runs.
const CHUNK: usize = 8192;

/// Most rows per batch written to a run: a merge holds one batch per run,
/// so this bounds what reading the runs back takes (fewer rows under small
/// budgets, see [`SpilledPanes::set_read_back`]).
const RUN_BATCH_ROWS: usize = 1024;

/// One run being merged: its current batch, the next row, and the rows
/// taken from this batch that are not merged into the chunk yet.
struct Cursor<I> {
    // resources
    rest: I,
    // state
    batch: Option<(RecordBatch, Int64Array, BinaryArray)>,
    row: usize,
    pending_from: usize,
    pending: Vec<u32>,
}

impl<I: Iterator<Item = Result<RecordBatch>>> Cursor<I> {
    fn try_new(rest: I) -> Result<Self> {
        let mut c = Cursor {
            rest,
            batch: None,
            row: 0,
            pending_from: 0,
            pending: Vec::new(),
        };
        c.load()?;
        Ok(c)
    }

    /// Reads the next non-empty batch (or none at the end).
    fn load(&mut self) -> Result<()> {
        self.batch = None;
        self.row = 0;
        self.pending_from = 0;
        for b in self.rest.by_ref() {
            let b = b?;
            if b.num_rows() == 0 {
                continue;
            }
            let panes = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("run layout: pane is Int64")
                .clone();
            let keys = b
                .column(1)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .expect("run layout: key is Binary")
                .clone();
            self.batch = Some((b, panes, keys));
            break;
        }
        Ok(())
    }

    /// The (pane, key) of the next row.
    fn head(&self) -> Option<(i64, &[u8])> {
        self.batch
            .as_ref()
            .map(|(_, panes, keys)| (panes.value(self.row), keys.value(self.row)))
    }

    /// Takes the next row into `slot` of the chunk.
    fn take_row(&mut self, slot: u32, accs: &mut [Accumulators], widths: &[usize]) -> Result<()> {
        self.pending.push(slot);
        self.row += 1;
        let len = self.batch.as_ref().map_or(0, |(b, _, _)| b.num_rows());
        if self.row == len {
            self.flush(accs, widths, slot as usize + 1)?;
            self.load()?;
        }
        Ok(())
    }

    /// Merges the pending rows' partial states into their slots (of `slots`).
    fn flush(&mut self, accs: &mut [Accumulators], widths: &[usize], slots: usize) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (batch, _, _) = self.batch.as_ref().expect("pending rows come from a batch");
        merge_run_rows(accs, widths, batch, self.pending_from, &self.pending, slots)?;
        self.pending_from = self.row;
        self.pending.clear();
        Ok(())
    }
}

/// Merges the partial states of rows `offset..offset + groups.len()` of
/// `batch` (the run layout; `widths`: state columns per aggregate) into
/// `accs`, row `i` into group `groups[i]`, after growing `accs` to `size` groups.
pub(crate) fn merge_run_rows(
    accs: &mut [Accumulators],
    widths: &[usize],
    batch: &RecordBatch,
    offset: usize,
    groups: &[u32],
    size: usize,
) -> Result<()> {
    let mut col = 2;
    for (acc, &width) in accs.iter_mut().zip(widths) {
        if acc.len() < size {
            acc.resize(size);
        }
        let state: Vec<ArrayRef> = (col..col + width)
            .map(|c| batch.column(c).slice(offset, groups.len()))
            .collect();
        acc.merge_state(groups, &state)?;
        col += width;
    }
    Ok(())
}

/// Sorted runs of partial window state on disk.
///
/// ```text
///  memory full ─► every in-memory pane, in start order, keys in byte order, as rows
///                 (pane start | key bytes | partial state of each aggregate...)
///                 ─► one IPC spill file (a run, sorted by (pane, key)) ─► panes dropped
///  checkpoint, when the runs besides the largest hold half its rows or more
///                 ─► compact: k-way merge on (pane, key), equal rows' partial
///                 states merged ─► one run (one row per pane and key)
///  window [s, e) about to fire ─► take_up_to(e): from every run, the rows of
///                 panes < e (each run is read forward once, like a merge)
///                 ─► merged back into in-memory panes with merge_state ─► fire
/// ```
/// Partial aggregates merge in any order, so a pane split over memory and
/// several runs gives the same result as one that never left memory.
/// Compaction bounds a checkpoint's size (and the disk used by a
/// checkpointed job) by the logical state rather than by the rows read
/// since the window opened: every spill writes the keys seen since the last
/// one, so without it the same keys pile up run after run. Spills do not
/// compact: in batch runs the merge at firing does the same work once, and
/// compacting at spill time cost 1.5x in a 1M-key, 1 h window job.
pub(crate) struct SpilledPanes {
    // config
    schema: SchemaRef,
    /// Partial-state columns per aggregate.
    widths: Vec<usize>,
    /// Bytes a merge may hold (one batch per run plus a chunk).
    read_back_bytes: usize,
    // state
    /// Largest bytes per row seen in a spill (for sizing batches and merges).
    row_bytes: usize,
    /// Largest bytes per row the spilled panes took in memory (keys, slots,
    /// partial states): what a row read back whole takes again.
    memory_row_bytes: usize,
    // resources
    runs: SortedRuns,
}

impl SpilledPanes {
    /// Runs for the partial states of `aggs`.
    pub(crate) fn new(aggs: &[BoundAgg]) -> Self {
        let mut fields = vec![
            Field::new("pane", DataType::Int64, false),
            Field::new("key", DataType::Binary, false),
        ];
        for a in aggs {
            fields.extend(Accumulators::state_fields(a));
        }
        SpilledPanes {
            schema: Arc::new(Schema::new(fields)),
            widths: aggs
                .iter()
                .map(|a| Accumulators::state_fields(a).len())
                .collect(),
            runs: SortedRuns::new(),
            read_back_bytes: usize::MAX,
            row_bytes: 64,
            memory_row_bytes: 64,
        }
    }

    /// Bounds what a merge of the runs holds to about `bytes`.
    pub(crate) fn set_read_back(&mut self, bytes: usize) {
        self.read_back_bytes = bytes;
    }

    /// Rows per batch written to a run.
    fn batch_rows(&self) -> usize {
        (self.read_back_bytes / 16 / self.row_bytes).clamp(8, RUN_BATCH_ROWS)
    }

    /// Runs merged at once: as many batches as fit the read-back bytes
    /// after the merged chunk, at least 2.
    fn fan_in(&self) -> usize {
        let per_run = self.batch_rows().saturating_mul(self.row_bytes);
        (self
            .read_back_bytes
            .saturating_sub(self.chunk_rows() * self.row_bytes)
            / per_run)
            .max(2)
    }

    /// Rows per merged chunk.
    fn chunk_rows(&self) -> usize {
        (self.read_back_bytes / 4 / self.row_bytes).clamp(8, CHUNK)
    }

    /// Bytes a merge of the runs holds, at most: what to reserve for it.
    pub(crate) fn merge_bytes(&self) -> usize {
        (self.runs.len().min(self.fan_in()) * self.batch_rows() + self.chunk_rows())
            * self.row_bytes
    }

    /// Writes `batch` to `writer` in batches of [`Self::batch_rows`].
    fn write_sliced(
        &self,
        writer: &mut weir_core::spill::SpillWriter,
        batch: &RecordBatch,
    ) -> Result<()> {
        write_in_batches(writer, batch, self.batch_rows())
    }

    /// True if nothing is on disk.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Partial-state columns per aggregate in the run layout.
    pub(crate) fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// The layout of a run (and of the panes in a checkpoint).
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// `panes` (in start order) as rows of the run layout, one batch per
    /// pane; with `sorted`, each pane's keys in byte order.
    pub(crate) fn pane_batches(
        &self,
        panes: &BTreeMap<i64, Pane>,
        dictionary: &KeyDictionary,
        sorted: bool,
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::with_capacity(panes.len());
        for (&start, pane) in panes {
            let n = pane.key_ids.len();
            if n == 0 {
                continue;
            }
            let mut slots: Vec<u32> = (0..n as u32).collect();
            if sorted {
                slots.sort_unstable_by(|&a, &b| {
                    dictionary
                        .key(pane.key_ids[a as usize].id())
                        .cmp(dictionary.key(pane.key_ids[b as usize].id()))
                });
            }
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(vec![start; n])),
                Arc::new(BinaryArray::from_iter_values(
                    slots
                        .iter()
                        .map(|&s| dictionary.key(pane.key_ids[s as usize].id())),
                )),
            ];
            for acc in &pane.accs {
                columns.extend(acc.to_state(&slots)?);
            }
            out.push(RecordBatch::try_new(self.schema.clone(), columns)?);
        }
        Ok(out)
    }

    /// Writes `panes` (in start order, keys in byte order) as one run.
    pub(crate) fn spill(
        &mut self,
        panes: &BTreeMap<i64, Pane>,
        dictionary: &KeyDictionary,
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        let mut writer = spill.create_writer(&self.schema, name)?;
        let batches = self.pane_batches(panes, dictionary, true)?;
        // the bytes the rows take (not the buffers' capacity: a pane of a
        // few keys would make every row look kilobytes wide and every merge
        // reserve that many times its rows)
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let bytes: usize = batches.iter().map(weir_core::spill::batch_bytes).sum();
        if rows > 0 {
            self.row_bytes = self.row_bytes.max(bytes.div_ceil(rows));
            let memory =
                dictionary.memory_size() + panes.values().map(Pane::memory_size).sum::<usize>();
            self.memory_row_bytes = self.memory_row_bytes.max(memory.div_ceil(rows));
        }
        for batch in &batches {
            self.write_sliced(&mut writer, batch)?;
        }
        self.runs.add(writer.finish()?)
    }

    /// Merges rows of the run layout (`batch`: pane | key | partial states,
    /// grouped by pane) into `panes`, which hold their keys; a pane not in
    /// memory is made with room for `groups` keys. The layout must be this
    /// one's (runs are; restored rows are checked by the caller).
    pub(crate) fn merge_into(
        &self,
        panes: &mut BTreeMap<i64, Pane>,
        dictionary: &mut KeyDictionary,
        aggs: &[BoundAgg],
        groups: usize,
        batch: &RecordBatch,
    ) -> Result<()> {
        let starts = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("run layout: pane is Int64");
        let keys = batch
            .column(1)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .expect("run layout: key is Binary");
        let mut i = 0;
        while i < batch.num_rows() {
            let start = starts.value(i);
            let mut j = i;
            while j < batch.num_rows() && starts.value(j) == start {
                j += 1;
            }
            let pane = panes
                .entry(start)
                .or_insert_with(|| Pane::new(aggs, groups));
            let slots: Vec<u32> = (i..j)
                .map(|r| {
                    let id = dictionary.intern(keys.value(r));
                    pane.slot(dictionary, id)
                })
                .collect();
            let n = pane.key_ids.len();
            merge_run_rows(&mut pane.accs, &self.widths, batch, i, &slots, n)?;
            i = j;
        }
        Ok(())
    }

    /// Runs on disk.
    #[cfg(test)]
    pub(super) fn runs(&self) -> usize {
        self.runs.len()
    }

    /// True if the runs besides the largest hold at least half its rows:
    /// then a merge removes enough duplicates to pay for rewriting the
    /// largest run (size-tiered: a row is rewritten only when at least half
    /// as many new rows join it).
    pub(crate) fn worth_compacting(&self) -> bool {
        let rows = self.runs.run_rows();
        let largest = rows.iter().copied().max().unwrap_or(0);
        let others: u64 = rows.iter().sum::<u64>() - largest;
        rows.len() > 1 && 2 * others >= largest
    }

    /// Merges every run into one holding one row per (pane, key), with the
    /// partial states of equal rows merged.
    pub(crate) fn compact(
        &mut self,
        aggs: &[BoundAgg],
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        if self.runs.len() < 2 {
            return Ok(());
        }
        let mut cursors = self
            .runs
            .drain()
            .into_iter()
            .map(Cursor::try_new)
            .collect::<Result<Vec<_>>>()?;
        let mut writer = spill.create_writer(&self.schema, name)?;
        while let Some(batch) = self.merge_chunk(&mut cursors, aggs)? {
            self.write_sliced(&mut writer, &batch)?;
        }
        drop(cursors); // deletes the old runs' files
        self.runs.add(writer.finish()?)
    }

    /// The next up to [`CHUNK`] merged rows, or `None` when every cursor is done.
    fn merge_chunk<I: Iterator<Item = Result<RecordBatch>>>(
        &self,
        cursors: &mut [Cursor<I>],
        aggs: &[BoundAgg],
    ) -> Result<Option<RecordBatch>> {
        let widths = &self.widths;
        let mut accs: Vec<Accumulators> = aggs.iter().map(Accumulators::new).collect();
        let mut panes: Vec<i64> = Vec::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let chunk = self.chunk_rows();
        while panes.len() < chunk {
            let mut best: Option<(i64, &[u8])> = None;
            for c in cursors.iter() {
                if let Some(h) = c.head() {
                    if best.is_none_or(|b| h < b) {
                        best = Some(h);
                    }
                }
            }
            let Some((pane, key)) = best else { break };
            let key = key.to_vec();
            let slot = panes.len() as u32;
            panes.push(pane);
            for c in cursors.iter_mut() {
                if c.head() == Some((pane, key.as_slice())) {
                    c.take_row(slot, &mut accs, widths)?;
                }
            }
            keys.push(key);
        }
        if panes.is_empty() {
            return Ok(None);
        }
        for c in cursors.iter_mut() {
            c.flush(&mut accs, widths, panes.len())?;
        }
        for acc in &mut accs {
            if acc.len() < panes.len() {
                acc.resize(panes.len());
            }
        }
        let slots: Vec<u32> = (0..panes.len() as u32).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(panes)),
            Arc::new(BinaryArray::from_iter_values(keys)),
        ];
        for acc in &accs {
            columns.extend(acc.to_state(&slots)?);
        }
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }

    /// Merges the rows of panes before `boundary` over every run (one row
    /// per (pane, key), partial states merged) and hands them to `fire` in
    /// (pane, key) order, at most [`CHUNK`] rows at a time. The rows of
    /// later panes stay where they are: runs are sorted by pane, so a run
    /// is read only up to the boundary, and nothing is rewritten but the
    /// due rows of more runs than one merge may hold
    /// ([`Self::fan_in`]), which are first merged in groups into runs of
    /// due rows alone. Memory held: one batch per merged run and one chunk.
    ///
    /// ```text
    ///  run 0: | p1 p1 p2 | p3 p4 |     boundary = p3: merge(run 0 [p1 p1 p2], run 1 [p1 p2])
    ///  run 1: | p1 p2 p3 p4 |           ─► fire; runs keep [p3 p4] and [p3 p4]
    ///  more runs with due rows than fan_in ─► merge the due prefixes of fan_in of them
    ///  into one run (due rows only), repeat, then merge and fire
    /// ```
    pub(crate) fn fire_through(
        &mut self,
        boundary: i64,
        aggs: &[BoundAgg],
        spill: &SpillManager,
        name: &str,
        fire: &mut dyn FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let Some(last) = boundary.checked_sub(1) else {
            return Ok(());
        };
        let fan_in = self.fan_in();
        loop {
            let due = self.runs_with_rows_through(last)?;
            if due.len() <= fan_in {
                break;
            }
            let mut writer = spill.create_writer(&self.schema, name)?;
            let rows = self.batch_rows();
            self.merge_prefixes(&due[..fan_in], last, aggs, &mut |batch| {
                write_in_batches(&mut writer, batch, rows)
            })?;
            self.runs.drop_finished();
            self.runs.add(writer.finish()?)?;
        }
        let due = self.runs_with_rows_through(last)?;
        self.merge_prefixes(&due, last, aggs, fire)?;
        self.runs.drop_finished();
        Ok(())
    }

    /// The runs with a row of a pane at or before `last`.
    fn runs_with_rows_through(&mut self, last: i64) -> Result<Vec<usize>> {
        let mut due = Vec::new();
        for i in 0..self.runs.len() {
            if self.runs.has_through(i, last, &pane_of)? {
                due.push(i);
            }
        }
        Ok(due)
    }

    /// Merges the rows of panes at or before `last` of the runs `which`,
    /// handing the merged chunks to `f`; the runs keep their later rows.
    fn merge_prefixes(
        &mut self,
        which: &[usize],
        last: i64,
        aggs: &[BoundAgg],
        f: &mut dyn FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let runs = RefCell::new(std::mem::take(&mut self.runs));
        let result = (|| {
            let mut cursors = which
                .iter()
                .map(|&run| {
                    Cursor::try_new(Prefix {
                        runs: &runs,
                        run,
                        last,
                        key: &pane_of,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            while let Some(batch) = self.merge_chunk(&mut cursors, aggs)? {
                f(&batch)?;
            }
            Ok(())
        })();
        self.runs = runs.into_inner();
        result
    }

    /// Every spilled row not read back yet, left on disk (for checkpoints).
    pub(crate) fn remaining(&self) -> Result<Vec<RecordBatch>> {
        self.runs.remaining()
    }

    /// Removes and returns, from every run, the rows of panes starting before `boundary`.
    pub(crate) fn take_up_to(&mut self, boundary: i64) -> Result<Vec<RecordBatch>> {
        self.runs.take_up_to(boundary, &pane_of)
    }

    /// True if the spilled rows of panes starting before `boundary` fit
    /// one read-back step, so reading them back whole stays bounded and
    /// costs less than a merge that rewrites every later pane.
    pub(crate) fn due_fits(&mut self, boundary: i64) -> Result<bool> {
        if self.runs.is_empty() {
            return Ok(true);
        }
        // rows as they take memory once merged back (not as stored on disk)
        let rows = (self.read_back_bytes / self.memory_row_bytes.max(1)).max(1);
        let step = self.runs.next_step_rows(&pane_of, rows)?;
        Ok(step.is_none_or(|s| s >= boundary))
    }
}

/// Writes `batch` to `writer` in batches of at most `rows` rows.
fn write_in_batches(
    writer: &mut weir_core::spill::SpillWriter,
    batch: &RecordBatch,
    rows: usize,
) -> Result<()> {
    let mut at = 0;
    while at < batch.num_rows() {
        let n = rows.min(batch.num_rows() - at);
        writer.write(&batch.slice(at, n))?;
        at += n;
    }
    Ok(())
}

/// The rows of one run up to a pane, batch by batch, leaving the rest in
/// the run (the runs are shared by the cursors of one merge).
struct Prefix<'a, 'k> {
    runs: &'a RefCell<SortedRuns>,
    run: usize,
    last: i64,
    key: RunKey<'k>,
}

impl Iterator for Prefix<'_, '_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.runs
            .borrow_mut()
            .take_batch_through(self.run, self.last, self.key)
            .transpose()
    }
}

/// The pane column of a run batch.
fn pane_of(b: &RecordBatch) -> Result<arrow_buffer::ScalarBuffer<i64>> {
    Ok(b.column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("the run schema's first column is Int64")
        .values()
        .clone())
}
