//! Spilling session-window state to disk when it outgrows the memory budget.
//!
//! Owns [`SpilledSessions`] (runs of session fragments sorted by key),
//! [`RunWriter`], [`KeyMerge`] and [`SpilledSession`]. May use
//! `weir_core::spill`, the aggregate accumulators and the arrow crates.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, Int64Array, RecordBatch};
use arrow_ord::sort::{lexsort_to_indices, SortColumn};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::spill::{SpillFile, SpillManager, SpillReader, SpillWriter};
use weir_functions::aggregate::{Accumulators, BoundAgg};

/// Rows written per batch of a run: small, because a merge holds the
/// current batch of every run at once.
const RUN_BATCH_ROWS: usize = 1024;

/// Columns before the partial states: start, end, key, emitted start/end, dirty.
pub(super) const FIXED_COLUMNS: usize = 6;

/// The key column of the run layout.
const KEY: usize = 2;

/// Runs merged into one when a spill makes this many.
const MAX_RUNS: usize = 32;

/// Runs merged by one compaction (the smallest ones).
const COMPACT_RUNS: usize = 16;

/// One session as written to a run: its bounds, key and bookkeeping; the
/// partial aggregates are taken from the accumulators at `slot`.
#[derive(Debug, Clone, Copy)]
pub(super) struct SpilledSession<'a> {
    pub start: i64,
    pub end: i64,
    pub key: &'a [u8],
    pub emitted: Option<(i64, i64)>,
    pub dirty: bool,
    pub slot: u32,
}

/// Sorted runs of session fragments on disk, each sorted by (key, start).
///
/// ```text
///  memory full ─► every in-memory session, sorted by key, as rows
///                 (start | end | key bytes | emitted bounds | dirty | partial state...)
///                 ─► one run (IPC spill file, batches of 1024 rows) ─► memory emptied
///  32 runs ─► the 16 smallest are merged into one (rows interleaved by key, not
///             rewritten again until the next compaction of their tier)
///  watermark w that may fire a session touching the disk:
///     memory ─► one more run; KeyMerge walks all runs in key order, a chunk of
///     whole keys at a time ─► fragments of a key merge (merge_state) ─► sessions
///     ending <= w fire, expired ones drop ─► the rest go to one new run
/// ```
/// Each run records the smallest start and end of its fragments: a session
/// ending before every spilled start cannot touch the disk, so it fires
/// without reading anything back.
pub(super) struct SpilledSessions {
    // config
    schema: SchemaRef,
    // resources
    runs: Vec<KeyRun>,
}

/// A finished run being read forward once.
pub(super) struct KeyRun {
    // config
    /// Smallest start and end of its fragments.
    min_start: i64,
    min_end: i64,
    /// Rows and bytes written.
    rows: u64,
    bytes: u64,
    // state: the batch being read and its next row
    current: Option<(RecordBatch, usize)>,
    // resources (the file is deleted when the run is dropped)
    reader: SpillReader,
    _file: SpillFile,
}

impl KeyRun {
    fn open(file: SpillFile, min_start: i64, min_end: i64) -> Result<Self> {
        Ok(KeyRun {
            min_start,
            min_end,
            rows: file.rows(),
            bytes: file.bytes(),
            current: None,
            reader: file.read()?,
            _file: file,
        })
    }

    /// The batch being read and its next row, loading the next batch when
    /// the current one is used up; `None` once every row was read.
    fn peek(&mut self) -> Result<Option<(RecordBatch, usize)>> {
        loop {
            if let Some((b, offset)) = &self.current {
                if *offset < b.num_rows() {
                    return Ok(Some((b.clone(), *offset)));
                }
            }
            self.current = None;
            // what was read before the last batch is not needed in memory
            self.reader.release_consumed();
            match self.reader.next() {
                Some(b) => self.current = Some((b?, 0)),
                None => return Ok(None),
            }
        }
    }
}

/// Writes one run: fragments given sorted by (key, start).
pub(super) struct RunWriter {
    // config
    schema: SchemaRef,
    // state
    min_start: i64,
    min_end: i64,
    rows: usize,
    // resources
    writer: SpillWriter,
}

impl RunWriter {
    /// Writes fragments in the run layout (sorted, continuing the order of
    /// what was written before).
    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut at = 0;
        while at < batch.num_rows() {
            let n = RUN_BATCH_ROWS.min(batch.num_rows() - at);
            let part = batch.slice(at, n);
            let starts = part.column(0).as_primitive::<Int64Type>();
            let ends = part.column(1).as_primitive::<Int64Type>();
            self.min_start = starts
                .values()
                .iter()
                .fold(self.min_start, |m, &v| m.min(v));
            self.min_end = ends.values().iter().fold(self.min_end, |m, &v| m.min(v));
            self.writer.write(&part)?;
            self.rows += n;
            at += n;
        }
        Ok(())
    }

    /// Writes `sessions` (sorted by key, then start); `accs` hold their state.
    pub(super) fn write_sessions(
        &mut self,
        sessions: &[SpilledSession<'_>],
        accs: &[Accumulators],
    ) -> Result<()> {
        for batch in fragment_batches(&self.schema, sessions, accs)? {
            self.write(&batch)?;
        }
        Ok(())
    }

    /// The finished run, or `None` (and no file) if nothing was written.
    fn finish(self) -> Result<Option<KeyRun>> {
        let file = self.writer.finish()?;
        if self.rows == 0 {
            return Ok(None);
        }
        KeyRun::open(file, self.min_start, self.min_end).map(Some)
    }
}

impl SpilledSessions {
    /// Runs for the partial states of `aggs`.
    pub(super) fn new(aggs: &[BoundAgg]) -> Self {
        let mut fields = vec![
            Field::new("start", DataType::Int64, false),
            Field::new("end", DataType::Int64, false),
            Field::new("key", DataType::Binary, false),
            Field::new("emitted_start", DataType::Int64, true),
            Field::new("emitted_end", DataType::Int64, true),
            Field::new("dirty", DataType::Boolean, false),
        ];
        for a in aggs {
            fields.extend(Accumulators::state_fields(a));
        }
        SpilledSessions {
            schema: Arc::new(Schema::new(fields)),
            runs: Vec::new(),
        }
    }

    /// True if nothing is on disk.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Runs on disk.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.runs.len()
    }

    /// The smallest start of a fragment on disk.
    pub(super) fn min_start(&self) -> Option<i64> {
        self.runs.iter().map(|r| r.min_start).min()
    }

    /// The smallest end of a fragment on disk.
    pub(super) fn min_end(&self) -> Option<i64> {
        self.runs.iter().map(|r| r.min_end).min()
    }

    /// The layout of a run (and of sessions in a checkpoint).
    pub(super) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// A writer of a new run, added with [`add`](Self::add).
    pub(super) fn writer(&self, spill: &SpillManager, name: &str) -> Result<RunWriter> {
        Ok(RunWriter {
            schema: self.schema.clone(),
            min_start: i64::MAX,
            min_end: i64::MAX,
            rows: 0,
            writer: spill.create_writer(&self.schema, name)?,
        })
    }

    /// Adds the run `writer` wrote (nothing if it wrote no row), then
    /// merges the smallest runs if there are too many.
    pub(super) fn add(
        &mut self,
        writer: RunWriter,
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        if let Some(run) = writer.finish()? {
            self.runs.push(run);
        }
        if self.runs.len() >= MAX_RUNS {
            self.compact(spill, name)?;
        }
        Ok(())
    }

    /// Writes `sessions` (sorted by key, then start) as one run; `accs`
    /// hold their state.
    pub(super) fn spill(
        &mut self,
        sessions: &[SpilledSession<'_>],
        accs: &[Accumulators],
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        let mut writer = self.writer(spill, name)?;
        writer.write_sessions(sessions, accs)?;
        self.add(writer, spill, name)
    }

    /// Writes fragments already in the run layout (restored from a
    /// checkpoint) as one run, sorted by key and start.
    pub(super) fn spill_rows(
        &mut self,
        batches: &[RecordBatch],
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        let mut writer = self.writer(spill, name)?;
        writer.write(&sort_by_key(&self.schema, batches)?)?;
        self.add(writer, spill, name)
    }

    /// Merges the smallest runs into one: their rows interleaved by key
    /// (not combined: combining could merge sessions already emitted, whose
    /// retractions only a firing may send).
    fn compact(&mut self, spill: &SpillManager, name: &str) -> Result<()> {
        self.runs.sort_by_key(|r| std::cmp::Reverse(r.bytes));
        let smallest = self.runs.split_off(self.runs.len() - COMPACT_RUNS);
        let mut merge = KeyMerge { runs: smallest };
        let rows = merge.step_rows(4 << 20);
        let mut writer = self.writer(spill, name)?;
        while let Some(chunk) = merge.next_chunk(rows)? {
            writer.write(&sort_by_key(&self.schema, &chunk)?)?;
        }
        if let Some(run) = writer.finish()? {
            self.runs.push(run);
        }
        Ok(())
    }

    /// Takes every run out, to be merged in key order.
    pub(super) fn take_merge(&mut self) -> KeyMerge {
        KeyMerge {
            runs: std::mem::take(&mut self.runs),
        }
    }

    /// Every spilled fragment not read back yet, left on disk (for checkpoints).
    pub(super) fn remaining(&self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for run in &self.runs {
            if let Some((batch, offset)) = &run.current {
                if *offset < batch.num_rows() {
                    out.push(batch.slice(*offset, batch.num_rows() - offset));
                }
            }
            out.extend(run.reader.peek_rest()?);
        }
        Ok(out)
    }

    /// `sessions` as batches of the run layout; `accs` hold their state.
    pub(super) fn fragment_batches(
        &self,
        sessions: &[SpilledSession<'_>],
        accs: &[Accumulators],
    ) -> Result<Vec<RecordBatch>> {
        fragment_batches(&self.schema, sessions, accs)
    }
}

/// Runs read together in key order, a chunk of whole keys at a time.
///
/// ```text
///  run 0: [a a c | d f]        next_chunk(2 rows): boundary = min(run 0's key 2 rows
///  run 1: [b c c e]                    ahead, run 1's) = b ─► a a, b
///                              next_chunk(2 rows): boundary = c ─► c, c c
/// ```
/// A chunk holds every fragment of its keys; a run read to its end is
/// deleted, and the pages of what was read are released as it goes.
pub(super) struct KeyMerge {
    // resources
    runs: Vec<KeyRun>,
}

impl KeyMerge {
    /// Rows of about `bytes` bytes on disk (the runs' average row size).
    pub(super) fn step_rows(&self, bytes: usize) -> usize {
        let (rows, file_bytes) = self
            .runs
            .iter()
            .fold((0u64, 0u64), |(r, b), run| (r + run.rows, b + run.bytes));
        let row_bytes = file_bytes.checked_div(rows).unwrap_or(1).max(1);
        usize::try_from(bytes as u64 / row_bytes)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// The fragments of the next keys, about `rows` rows over all runs and
    /// never part of a key's: from every run, the rows whose key is at most
    /// the smallest key found `rows / runs` rows ahead in any run (or at the
    /// end of its current batch). `None` once every run is read.
    pub(super) fn next_chunk(&mut self, rows: usize) -> Result<Option<Vec<RecordBatch>>> {
        let ahead = (rows / self.runs.len().max(1)).max(1);
        let mut boundary: Option<Vec<u8>> = None;
        for run in &mut self.runs {
            if let Some((b, offset)) = run.peek()? {
                let keys = b.column(KEY).as_binary::<i32>();
                let at = keys.value((offset + ahead).min(b.num_rows()) - 1);
                if boundary.as_deref().is_none_or(|bd| at < bd) {
                    boundary = Some(at.to_vec());
                }
            }
        }
        let Some(boundary) = boundary else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for run in &mut self.runs {
            while let Some((b, offset)) = run.peek()? {
                let keys = b.column(KEY).as_binary::<i32>();
                let end = offset
                    + partition_point(b.num_rows() - offset, |i| {
                        keys.value(offset + i) <= boundary.as_slice()
                    });
                if end > offset {
                    out.push(b.slice(offset, end - offset));
                }
                run.current = Some((b.clone(), end));
                if end < b.num_rows() {
                    break;
                }
            }
        }
        self.runs.retain(|r| {
            r.current.as_ref().is_some_and(|(b, o)| *o < b.num_rows()) || !r.reader.is_finished()
        });
        Ok(Some(out))
    }
}

/// The first `i` in `0..n` for which `pred` is false (`pred` holds on a prefix).
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `batches` (run layout) as one batch sorted by key, then start.
fn sort_by_key(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let all = arrow_select::concat::concat_batches(schema, batches)?;
    let order = lexsort_to_indices(
        &[
            SortColumn {
                values: all.column(KEY).clone(),
                options: None,
            },
            SortColumn {
                values: all.column(0).clone(),
                options: None,
            },
        ],
        None,
    )?;
    Ok(arrow_select::take::take_record_batch(&all, &order)?)
}

/// `sessions` as batches of the run layout `schema`; `accs` hold their state.
fn fragment_batches(
    schema: &SchemaRef,
    sessions: &[SpilledSession<'_>],
    accs: &[Accumulators],
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for chunk in sessions.chunks(RUN_BATCH_ROWS) {
        let slots: Vec<u32> = chunk.iter().map(|s| s.slot).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|s| s.start))),
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|s| s.end))),
            Arc::new(BinaryArray::from_iter_values(chunk.iter().map(|s| s.key))),
            Arc::new(Int64Array::from_iter(
                chunk.iter().map(|s| s.emitted.map(|e| e.0)),
            )),
            Arc::new(Int64Array::from_iter(
                chunk.iter().map(|s| s.emitted.map(|e| e.1)),
            )),
            Arc::new(BooleanArray::from_iter(chunk.iter().map(|s| Some(s.dirty)))),
        ];
        for acc in accs {
            columns.extend(acc.to_state(&slots)?);
        }
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(out)
}

/// Reads one row of a run batch back.
pub(super) fn read_row(batch: &RecordBatch, row: usize) -> SpilledSession<'_> {
    let int = |c: usize| batch.column(c).as_primitive::<Int64Type>();
    let emitted = (!int(3).is_null(row)).then(|| (int(3).value(row), int(4).value(row)));
    SpilledSession {
        start: int(0).value(row),
        end: int(1).value(row),
        key: batch.column(KEY).as_binary::<i32>().value(row),
        emitted,
        dirty: batch.column(5).as_boolean().value(row),
        slot: row as u32,
    }
}

#[cfg(test)]
mod tests;
