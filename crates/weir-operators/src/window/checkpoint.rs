//! Snapshot and restore of [`WindowAggregate`].
//!
//! ```text
//!  window.meta   put        watermark, early tick, windows (end, start, fired)
//!  window.panes  put_keyed  the run layout: pane | key | partial states...  (memory panes,
//!                           then the rows still in spill runs, read without taking them)
//!  window.marks  put_keyed  kind | end | start | key | count: per (window, key) bookkeeping:
//!                           emitted (next result is an update), early-firing row counts,
//!                           keys pending an interval firing, dirty (always empty between calls)
//! ```
//! Key groups: `stable_hash` of the encoded key, which is the hash router's
//! (the operator's `KeyEncoder` is over the edge's key columns). A global
//! window has one empty key and runs at parallelism 1.
//!
//! Restore puts every pane in memory (rows of one pane and key from memory
//! and from runs merge with `merge_state`), then the reservation is synced,
//! which spills again if the pool refuses the state. After a
//! rescale the metadata of every old subtask is merged: the highest
//! watermark, the earliest early tick, and the union of the windows (every
//! subtask saw the same watermarks, so a window's fired flag agrees; a
//! window without rows of this subtask's keys fires empty, emitting nothing).

use super::WindowAggregate;
use crate::keyed_state::{self, check_layout, column, key_groups};
use arrow_array::{BinaryArray, Int64Array, RecordBatch, UInt64Array, UInt8Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::state::{StateReader, StateWriter};

const META: &str = "window.meta";
const PANES: &str = "window.panes";
const MARKS: &str = "window.marks";

/// The unkeyed part of the state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    watermark: Option<i64>,
    early_tick: Option<i64>,
    /// `(end, start, fired)` of every window not done yet.
    windows: Vec<(i64, i64, bool)>,
}

/// What a row of `window.marks` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mark {
    Emitted = 0,
    EarlyCount = 1,
    EarlyPending = 2,
    Dirty = 3,
}

impl Mark {
    fn from_u8(v: u8) -> Option<Mark> {
        [
            Mark::Emitted,
            Mark::EarlyCount,
            Mark::EarlyPending,
            Mark::Dirty,
        ]
        .into_iter()
        .find(|m| *m as u8 == v)
    }
}

fn marks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kind", DataType::UInt8, false),
        Field::new("end", DataType::Int64, false),
        Field::new("start", DataType::Int64, false),
        Field::new("key", DataType::Binary, false),
        Field::new("count", DataType::UInt64, false),
    ]))
}

/// Rows of `window.marks` being collected.
#[derive(Default)]
struct Marks {
    kind: Vec<u8>,
    end: Vec<i64>,
    start: Vec<i64>,
    key: Vec<u32>,
    count: Vec<u64>,
}

impl Marks {
    fn push(&mut self, kind: Mark, (end, start): (i64, i64), key: u32, count: u64) {
        self.kind.push(kind as u8);
        self.end.push(end);
        self.start.push(start);
        self.key.push(key);
        self.count.push(count);
    }
}

impl WindowAggregate {
    /// Writes the state (see the module docs).
    pub(super) fn write_state(&self, state: &mut StateWriter) -> Result<()> {
        let meta = Meta {
            watermark: self.watermark,
            early_tick: self.early_tick,
            windows: self
                .windows
                .iter()
                .map(|(&(end, start), &fired)| (end, start, fired))
                .collect(),
        };
        state.put(META, &meta)?;
        let mut panes = self
            .spilled
            .pane_batches(&self.panes, &self.dictionary, false)?;
        panes.extend(self.spilled.remaining()?);
        for batch in &panes {
            let keys = batch
                .column(1)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .expect("run layout: key is Binary");
            state.put_keyed(PANES, batch, &key_groups(keys.iter().flatten()))?;
        }
        let mut marks = Marks::default();
        for (&w, keys) in &self.emitted {
            keys.ids().for_each(|k| marks.push(Mark::Emitted, w, k, 0));
        }
        for (&w, counts) in &self.early_counts {
            counts
                .counts
                .iter()
                .for_each(|(&k, &c)| marks.push(Mark::EarlyCount, w, k, c));
        }
        for (&w, keys) in &self.early_pending {
            keys.ids()
                .for_each(|k| marks.push(Mark::EarlyPending, w, k, 0));
        }
        for (&w, keys) in &self.dirty {
            keys.ids().for_each(|k| marks.push(Mark::Dirty, w, k, 0));
        }
        if !marks.kind.is_empty() {
            let keys =
                BinaryArray::from_iter_values(marks.key.iter().map(|&id| self.dictionary.key(id)));
            let groups = key_groups(keys.iter().flatten());
            let batch = RecordBatch::try_new(
                marks_schema(),
                vec![
                    Arc::new(UInt8Array::from(marks.kind)),
                    Arc::new(Int64Array::from(marks.end)),
                    Arc::new(Int64Array::from(marks.start)),
                    Arc::new(keys),
                    Arc::new(UInt64Array::from(marks.count)),
                ],
            )?;
            state.put_keyed(MARKS, &batch, &groups)?;
        }
        Ok(())
    }

    /// Reads the state written by [`write_state`](Self::write_state) (by
    /// one or, after a rescale, several old subtasks) into this fresh
    /// instance; the caller syncs the reservation.
    pub(super) fn read_state(&mut self, state: &StateReader, operator: &str) -> Result<()> {
        for meta in state.values::<Meta>(META)? {
            self.watermark = keyed_state::max_watermark([self.watermark, meta.watermark]);
            self.early_tick = match (self.early_tick, meta.early_tick) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            for (end, start, fired) in meta.windows {
                let f = self.windows.entry((end, start)).or_insert(false);
                *f |= fired;
            }
        }
        let layout: SchemaRef = self.spilled.schema().clone();
        for batch in state.keyed(PANES)? {
            check_layout(&batch, &layout, PANES, operator)?;
            self.merge_pane_rows(&batch)?;
        }
        let marks_layout = marks_schema();
        for batch in state.keyed(MARKS)? {
            check_layout(&batch, &marks_layout, MARKS, operator)?;
            let kind = column::<UInt8Array>(&batch, "kind", MARKS, operator)?;
            let end = column::<Int64Array>(&batch, "end", MARKS, operator)?;
            let start = column::<Int64Array>(&batch, "start", MARKS, operator)?;
            let key = column::<BinaryArray>(&batch, "key", MARKS, operator)?;
            let count = column::<UInt64Array>(&batch, "count", MARKS, operator)?;
            for r in 0..batch.num_rows() {
                let w = (end.value(r), start.value(r));
                // each set holds the keys it names
                let id = self.dictionary.intern(key.value(r));
                let dictionary = &mut self.dictionary;
                match Mark::from_u8(kind.value(r)) {
                    Some(Mark::Emitted) => {
                        self.emitted.entry(w).or_default().insert(dictionary, id);
                    }
                    Some(Mark::EarlyCount) => {
                        let counts = self.early_counts.entry(w).or_default();
                        counts.held.insert(dictionary, id);
                        counts.counts.insert(id, count.value(r));
                    }
                    Some(Mark::EarlyPending) => {
                        self.early_pending
                            .entry(w)
                            .or_default()
                            .insert(dictionary, id);
                    }
                    Some(Mark::Dirty) => {
                        self.dirty.entry(w).or_default().insert(dictionary, id);
                    }
                    None => {
                        dictionary.forget_unused(id);
                        return Err(keyed_state::state_error(
                            operator,
                            format!("`{MARKS}` has an unknown kind {}", kind.value(r)),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
