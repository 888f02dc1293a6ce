//! Spilling session-window state to disk when it outgrows the memory budget.
//!
//! Owns [`SpilledSessions`] and [`SpilledSession`]. May use `crate::spill`,
//! `crate::key`, the aggregate accumulators and the arrow crates.

use crate::error::Result;
use crate::operators::aggregate::{Accumulators, BoundAgg};
use crate::spill::SpillManager;
use crate::state::store::SortedRuns;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, Int64Array, RecordBatch};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// Rows written per batch of a run.
const RUN_BATCH_ROWS: usize = 8192;

/// Columns before the partial states: start, end, key, emitted start/end, dirty.
pub(super) const FIXED_COLUMNS: usize = 6;

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

/// Sorted runs of session fragments on disk.
///
/// ```text
///  memory full ─► every in-memory session, sorted by start, as rows
///                 (start | end | key bytes | emitted bounds | dirty | partial state...)
///                 ─► one IPC spill file (a run) ─► sessions and accumulators dropped
///  new rows of a spilled key ─► new in-memory fragments (not merged with disk yet)
///  watermark w, in steps s1 < s2 < ... <= w:
///     take_through(s): fragments starting at or before s come back and merge
///     with the in-memory ones (merge_state) ─► sessions ending at or before s fire
/// ```
/// A fragment still on disk starts after `s`, so it cannot touch a session
/// ending at or before `s`: every session that fires is complete. Partial
/// aggregates merge in any order, so a session split over memory and runs
/// gives the same result as one that never left memory.
pub(super) struct SpilledSessions {
    // config
    schema: SchemaRef,
    // resources
    runs: SortedRuns,
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
            runs: SortedRuns::new(),
        }
    }

    /// True if nothing is on disk.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The layout of a run (and of sessions in a checkpoint).
    pub(super) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Writes `sessions` (sorted by start) as one run; `accs` hold their state.
    pub(super) fn spill(
        &mut self,
        sessions: &[SpilledSession<'_>],
        accs: &[Accumulators],
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        let mut writer = spill.create_writer(&self.schema, name)?;
        for batch in self.fragment_batches(sessions, accs)? {
            writer.write(&batch)?;
        }
        self.runs.add(writer.finish()?)
    }

    /// Writes fragments already in the run layout (restored from a
    /// checkpoint) as one run, sorted by start.
    pub(super) fn spill_rows(
        &mut self,
        batches: &[RecordBatch],
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        let all = arrow_select::concat::concat_batches(&self.schema, batches)?;
        let order = arrow_ord::sort::sort_to_indices(all.column(0), None, None)?;
        let sorted = arrow_select::take::take_record_batch(&all, &order)?;
        let mut writer = spill.create_writer(&self.schema, name)?;
        let mut at = 0;
        while at < sorted.num_rows() {
            let n = RUN_BATCH_ROWS.min(sorted.num_rows() - at);
            writer.write(&sorted.slice(at, n))?;
            at += n;
        }
        self.runs.add(writer.finish()?)
    }

    /// Every spilled fragment not read back yet, left on disk (for checkpoints).
    pub(super) fn remaining(&self) -> Result<Vec<RecordBatch>> {
        self.runs.remaining()
    }

    /// `sessions` as batches of the run layout; `accs` hold their state.
    pub(super) fn fragment_batches(
        &self,
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
            out.push(RecordBatch::try_new(self.schema.clone(), columns)?);
        }
        Ok(out)
    }

    /// A boundary that reads back about `rows` fragments, or `None` if every
    /// run is read (see [`SortedRuns::next_step`]).
    pub(super) fn next_step(&mut self, bytes: usize) -> Result<Option<i64>> {
        self.runs.next_step(&start_of, bytes)
    }

    /// Removes and returns, from every run, the fragments starting at or before `last`.
    pub(super) fn take_through(&mut self, last: i64) -> Result<Vec<RecordBatch>> {
        self.runs.take_through(last, &start_of)
    }
}

/// The sort key of a run: the session start.
fn start_of(batch: &RecordBatch) -> Result<ScalarBuffer<i64>> {
    Ok(batch.column(0).as_primitive::<Int64Type>().values().clone())
}

/// Reads one row of a run batch back.
pub(super) fn read_row(batch: &RecordBatch, row: usize) -> SpilledSession<'_> {
    let int = |c: usize| batch.column(c).as_primitive::<Int64Type>();
    let emitted = (!int(3).is_null(row)).then(|| (int(3).value(row), int(4).value(row)));
    SpilledSession {
        start: int(0).value(row),
        end: int(1).value(row),
        key: batch.column(2).as_binary::<i32>().value(row),
        emitted,
        dirty: batch.column(5).as_boolean().value(row),
        slot: row as u32,
    }
}
