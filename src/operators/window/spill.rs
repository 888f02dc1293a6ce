//! Spilling window panes to disk when their state outgrows the memory budget.

use super::Pane;
use crate::error::Result;
use crate::key::KeyDictionary;
use crate::operators::aggregate::{Accumulators, BoundAgg};
use crate::spill::SpillManager;
use crate::state::store::{RunRest, SortedRuns};
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Rows per merged batch of a compaction or a firing from runs.
const CHUNK: usize = 8192;

/// Most rows per batch written to a run: a merge holds one batch per run,
/// so this bounds what reading the runs back takes (fewer rows under small
/// budgets, see [`SpilledPanes::set_read_back`]).
const RUN_BATCH_ROWS: usize = 1024;

/// One run being merged: its current batch, the next row, and the rows
/// taken from this batch that are not merged into the chunk yet.
struct Cursor {
    // resources
    rest: RunRest,
    // state
    batch: Option<(RecordBatch, Int64Array, BinaryArray)>,
    row: usize,
    pending_from: usize,
    pending: Vec<u32>,
}

impl Cursor {
    fn try_new(rest: RunRest) -> Result<Self> {
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
pub(in crate::operators) fn merge_run_rows(
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
pub(in crate::operators) struct SpilledPanes {
    // config
    schema: SchemaRef,
    /// Partial-state columns per aggregate.
    widths: Vec<usize>,
    /// Bytes a merge may hold (one batch per run plus a chunk).
    read_back_bytes: usize,
    // state
    /// Largest bytes per row seen in a spill (for sizing batches and merges).
    row_bytes: usize,
    // resources
    runs: SortedRuns,
}

impl SpilledPanes {
    /// Runs for the partial states of `aggs`.
    pub(in crate::operators) fn new(aggs: &[BoundAgg]) -> Self {
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
        }
    }

    /// Bounds what a merge of the runs holds to about `bytes`.
    pub(in crate::operators) fn set_read_back(&mut self, bytes: usize) {
        self.read_back_bytes = bytes;
    }

    /// Rows per batch written to a run.
    fn batch_rows(&self) -> usize {
        (self.read_back_bytes / 16 / self.row_bytes).clamp(64, RUN_BATCH_ROWS)
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
        (self.read_back_bytes / 4 / self.row_bytes).clamp(64, CHUNK)
    }

    /// Bytes a merge of the runs holds, at most: what to reserve for it.
    pub(in crate::operators) fn merge_bytes(&self) -> usize {
        (self.runs.len().min(self.fan_in()) * self.batch_rows() + self.chunk_rows())
            * self.row_bytes
    }

    /// Writes `batch` to `writer` in batches of [`Self::batch_rows`].
    fn write_sliced(
        &self,
        writer: &mut crate::spill::SpillWriter,
        batch: &RecordBatch,
    ) -> Result<()> {
        let rows = self.batch_rows();
        let mut at = 0;
        while at < batch.num_rows() {
            let n = rows.min(batch.num_rows() - at);
            writer.write(&batch.slice(at, n))?;
            at += n;
        }
        Ok(())
    }

    /// Merges runs in groups of [`Self::fan_in`] until at most that many
    /// are left, so a merge over all of them holds its bound.
    pub(in crate::operators) fn reduce_fan_in(
        &mut self,
        aggs: &[BoundAgg],
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        let fan_in = self.fan_in();
        while self.runs.len() > fan_in {
            let mut cursors = self
                .runs
                .drain_first(fan_in)
                .into_iter()
                .map(Cursor::try_new)
                .collect::<Result<Vec<_>>>()?;
            let mut writer = spill.create_writer(&self.schema, name)?;
            while let Some(batch) = self.merge_chunk(&mut cursors, aggs)? {
                self.write_sliced(&mut writer, &batch)?;
            }
            drop(cursors); // deletes the merged runs' files
            self.runs.add(writer.finish()?)?;
        }
        Ok(())
    }

    /// True if nothing is on disk.
    pub(in crate::operators) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Partial-state columns per aggregate in the run layout.
    pub(in crate::operators) fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// The layout of a run (and of the panes in a checkpoint).
    pub(in crate::operators) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// `panes` (in start order) as rows of the run layout, one batch per
    /// pane; with `sorted`, each pane's keys in byte order.
    pub(in crate::operators) fn pane_batches(
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
    pub(in crate::operators) fn spill(
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
        let bytes: usize = batches.iter().map(crate::spill::batch_bytes).sum();
        if rows > 0 {
            self.row_bytes = self.row_bytes.max(bytes.div_ceil(rows));
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
    pub(in crate::operators) fn merge_into(
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
    pub(in crate::operators) fn worth_compacting(&self) -> bool {
        let rows = self.runs.run_rows();
        let largest = rows.iter().copied().max().unwrap_or(0);
        let others: u64 = rows.iter().sum::<u64>() - largest;
        rows.len() > 1 && 2 * others >= largest
    }

    /// Merges every run into one holding one row per (pane, key), with the
    /// partial states of equal rows merged.
    pub(in crate::operators) fn compact(
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
    fn merge_chunk(
        &self,
        cursors: &mut [Cursor],
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

    /// Merges every run (one row per (pane, key), partial states merged) and
    /// hands the merged rows of panes before `boundary` to `fire`, in (pane,
    /// key) order, at most [`CHUNK`] rows at a time; the rows of later panes
    /// go to one new run that replaces the old ones. Memory held: one
    /// batch per run and one chunk.
    pub(in crate::operators) fn fire_through(
        &mut self,
        boundary: i64,
        aggs: &[BoundAgg],
        spill: &SpillManager,
        name: &str,
        fire: &mut dyn FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let mut cursors = self
            .runs
            .drain()
            .into_iter()
            .map(Cursor::try_new)
            .collect::<Result<Vec<_>>>()?;
        let mut rest = None;
        while let Some(batch) = self.merge_chunk(&mut cursors, aggs)? {
            let panes = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("run layout: pane is Int64");
            let due = panes.values().partition_point(|&p| p < boundary);
            if due > 0 {
                fire(&batch.slice(0, due))?;
            }
            if due < batch.num_rows() {
                if rest.is_none() {
                    rest = Some(spill.create_writer(&self.schema, name)?);
                }
                let writer = rest.as_mut().expect("created above");
                self.write_sliced(writer, &batch.slice(due, batch.num_rows() - due))?;
            }
        }
        drop(cursors); // deletes the old runs' files
        if let Some(writer) = rest {
            self.runs.add(writer.finish()?)?;
        }
        Ok(())
    }

    /// Every spilled row not read back yet, left on disk (for checkpoints).
    pub(in crate::operators) fn remaining(&self) -> Result<Vec<RecordBatch>> {
        self.runs.remaining()
    }

    /// Removes and returns, from every run, the rows of panes starting before `boundary`.
    pub(in crate::operators) fn take_up_to(&mut self, boundary: i64) -> Result<Vec<RecordBatch>> {
        self.runs.take_up_to(boundary, &pane_of)
    }

    /// True if the spilled rows of panes starting before `boundary` fit
    /// one read-back step, so reading them back whole stays bounded and
    /// costs less than a merge that rewrites every later pane.
    pub(in crate::operators) fn due_fits(&mut self, boundary: i64) -> Result<bool> {
        if self.runs.is_empty() {
            return Ok(true);
        }
        let step = self.runs.next_step(&pane_of, self.read_back_bytes)?;
        Ok(step.is_none_or(|s| s >= boundary))
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
