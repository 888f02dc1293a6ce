//! Spilling window panes to disk when their state outgrows the memory budget.

use super::Pane;
use crate::error::Result;
use crate::key::KeyDictionary;
use crate::operators::aggregate::{Accumulators, BoundAgg};
use crate::spill::{SortedRuns, SpillManager};
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Sorted runs of partial window state on disk.
///
/// ```text
///  memory full ─► every in-memory pane, in start order, as rows
///                 (pane start | key bytes | partial state of each aggregate...)
///                 ─► one IPC spill file (a run, sorted by pane start) ─► panes dropped
///  window [s, e) about to fire ─► take_up_to(e): from every run, the rows of
///                 panes < e (each run is read forward once, like a merge)
///                 ─► merged back into in-memory panes with merge_state ─► fire
/// ```
/// Partial aggregates merge in any order, so a pane split over memory and
/// several runs gives the same result as one that never left memory.
pub(super) struct SpilledPanes {
    // config
    schema: SchemaRef,
    // resources
    runs: SortedRuns,
}

impl SpilledPanes {
    /// Runs for the partial states of `aggs`.
    pub(super) fn new(aggs: &[BoundAgg]) -> Self {
        let mut fields = vec![
            Field::new("pane", DataType::Int64, false),
            Field::new("key", DataType::Binary, false),
        ];
        for a in aggs {
            fields.extend(Accumulators::state_fields(a));
        }
        SpilledPanes {
            schema: Arc::new(Schema::new(fields)),
            runs: SortedRuns::new(),
        }
    }

    /// True if nothing is on disk.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The layout of a run (and of the panes in a checkpoint).
    pub(super) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// `panes` (in start order) as rows of the run layout, one batch per pane.
    pub(super) fn pane_batches(
        &self,
        panes: &BTreeMap<i64, Pane>,
        dictionary: &KeyDictionary,
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::with_capacity(panes.len());
        for (&start, pane) in panes {
            let n = pane.key_ids.len();
            if n == 0 {
                continue;
            }
            let slots: Vec<u32> = (0..n as u32).collect();
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(vec![start; n])),
                Arc::new(BinaryArray::from_iter_values(
                    pane.key_ids.iter().map(|&id| dictionary.key(id)),
                )),
            ];
            for acc in &pane.accs {
                columns.extend(acc.to_state(&slots)?);
            }
            out.push(RecordBatch::try_new(self.schema.clone(), columns)?);
        }
        Ok(out)
    }

    /// Writes `panes` (in start order) as one run.
    pub(super) fn spill(
        &mut self,
        panes: &BTreeMap<i64, Pane>,
        dictionary: &KeyDictionary,
        spill: &SpillManager,
        name: &str,
    ) -> Result<()> {
        let mut writer = spill.create_writer(&self.schema, name)?;
        for batch in self.pane_batches(panes, dictionary)? {
            writer.write(&batch)?;
        }
        self.runs.add(writer.finish()?)
    }

    /// Every spilled row not read back yet, left on disk (for checkpoints).
    pub(super) fn remaining(&self) -> Result<Vec<RecordBatch>> {
        self.runs.remaining()
    }

    /// Removes and returns, from every run, the rows of panes starting before `boundary`.
    pub(super) fn take_up_to(&mut self, boundary: i64) -> Result<Vec<RecordBatch>> {
        self.runs.take_up_to(boundary, &|b: &RecordBatch| {
            Ok(b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("the run schema's first column is Int64")
                .values()
                .clone())
        })
    }
}
