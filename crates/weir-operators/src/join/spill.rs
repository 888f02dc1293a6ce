//! Spilled rows of the pipelined join: per side, runs of stored rows
//! sorted by an i64 (the key hash for regular joins, the next due window
//! for window joins), with the row's epoch and matched flag.

use super::JoinLayout;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::spill::SpillManager;
use weir_core::state::store::SortedRuns;

/// Rows per batch written to a run.
const RUN_ROWS: usize = 8192;

/// Columns in front of the input columns: sort key, epoch, matched.
const META: usize = 3;

/// One stored row to spill: its sort key, epoch, matched flag and place.
#[derive(Debug, Clone, Copy)]
pub(super) struct SpillRow {
    pub sort: i64,
    pub epoch: u32,
    pub matched: bool,
    pub at: (usize, usize),
}

/// A spilled row read back.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadRow {
    pub epoch: u32,
    pub matched: bool,
}

/// Both sides' runs.
pub(super) struct JoinRuns {
    // config
    schemas: [SchemaRef; 2],
    // resources
    runs: [SortedRuns; 2],
}

impl JoinRuns {
    /// Empty runs for the inputs of `layout`.
    pub(super) fn new(layout: &JoinLayout) -> Self {
        let schema = |s: usize| {
            let mut fields = vec![
                Arc::new(Field::new("__sort", DataType::Int64, false)),
                Arc::new(Field::new("__epoch", DataType::Int64, false)),
                Arc::new(Field::new("__matched", DataType::Boolean, false)),
            ];
            fields.extend(layout.input(s).fields().iter().cloned());
            Arc::new(Schema::new(fields))
        };
        JoinRuns {
            schemas: [schema(0), schema(1)],
            runs: [SortedRuns::new(), SortedRuns::new()],
        }
    }

    /// True if neither side has rows on disk.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.iter().all(SortedRuns::is_empty)
    }

    /// Writes `rows` of side `s` (taken from `sources`) as one run, sorted by `sort`.
    pub(super) fn write(
        &mut self,
        s: usize,
        sources: &[&RecordBatch],
        rows: &mut [SpillRow],
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        rows.sort_unstable_by_key(|r| r.sort);
        let mut writer = spill.create_writer(&self.schemas[s], name)?;
        for chunk in rows.chunks(RUN_ROWS) {
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.sort))),
                Arc::new(Int64Array::from_iter_values(
                    chunk.iter().map(|r| i64::from(r.epoch)),
                )),
                Arc::new(BooleanArray::from_iter(
                    chunk.iter().map(|r| Some(r.matched)),
                )),
            ];
            let idx: Vec<(usize, usize)> = chunk.iter().map(|r| r.at).collect();
            for c in 0..self.schemas[s].fields().len() - META {
                let arrays: Vec<&dyn Array> =
                    sources.iter().map(|b| b.column(c).as_ref()).collect();
                columns.push(arrow_select::interleave::interleave(&arrays, &idx)?);
            }
            writer.write(&RecordBatch::try_new(self.schemas[s].clone(), columns)?)?;
        }
        self.runs[s].add(writer.finish()?)
    }

    /// A boundary that reads back about `bytes` bytes over both sides, or
    /// `None` if both are read.
    pub(super) fn next_step(&mut self, bytes: usize) -> Result<Option<i64>> {
        let mut step: Option<i64> = None;
        for runs in &mut self.runs {
            if let Some(b) = runs.next_step(&sort_of, bytes / 2)? {
                step = Some(step.map_or(b, |s| s.min(b)));
            }
        }
        Ok(step)
    }

    /// Every row of side `s` still on disk, in run layout, leaving the runs
    /// unchanged (checkpoints).
    pub(super) fn peek(&self, s: usize) -> Result<Vec<RecordBatch>> {
        self.runs[s].remaining()
    }

    /// The run layout of side `s`: sort key, epoch, matched, input columns.
    pub(super) fn schema(&self, s: usize) -> &SchemaRef {
        &self.schemas[s]
    }

    /// Removes and returns side `s`'s rows with sort key at most `last`.
    pub(super) fn take_through(&mut self, s: usize, last: i64) -> Result<Vec<RecordBatch>> {
        self.runs[s].take_through(last, &sort_of)
    }
}

fn sort_of(batch: &RecordBatch) -> Result<ScalarBuffer<i64>> {
    Ok(batch.column(0).as_primitive::<Int64Type>().values().clone())
}

/// Splits a run batch into its rows' (epoch, matched) and the input columns.
pub(super) fn split(batch: &RecordBatch) -> (Vec<ReadRow>, RecordBatch) {
    let epochs = batch.column(1).as_primitive::<Int64Type>();
    let matched = batch.column(2).as_boolean();
    let rows = (0..batch.num_rows())
        .map(|i| ReadRow {
            epoch: epochs.value(i) as u32,
            matched: matched.value(i),
        })
        .collect();
    let input = batch.project(&(META..batch.num_columns()).collect::<Vec<_>>());
    (rows, input.expect("projecting existing columns"))
}
