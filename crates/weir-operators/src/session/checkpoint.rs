//! Snapshot and restore of [`SessionWindowAggregate`].
//!
//! ```text
//!  session.watermark  put        the watermark (late-row check)
//!  session.memory     put_keyed  the run layout: start | end | key | emitted start/end |
//!                                dirty | partial states...: every in-memory session
//!  session.spilled    put_keyed  same layout: the fragments still in spill runs (read
//!                                without taking them)
//! ```
//! Key groups: `stable_hash` of the encoded key (the router's). Restore
//! merges the in-memory sessions back into memory and writes the spilled
//! fragments as one new run sorted by start, so fragments that were on disk
//! still come back (and merge with newer in-memory fragments of their key)
//! when a watermark reaches their start, as they would have without the
//! checkpoint; then the reservation is synced (spilling if over budget).
//! After a rescale the highest saved watermark is taken (every subtask saw
//! the same watermarks). Within one key, in-memory sessions never overlap,
//! and a key's state comes from one old subtask, so restoring them merges
//! nothing.

use super::SessionWindowAggregate;
use crate::keyed_state::{self, check_layout, key_groups};
use arrow_array::{BinaryArray, RecordBatch};
use std::collections::HashMap;
use weir_core::error::Result;
use weir_core::operator::Ctx;
use weir_core::state::{StateReader, StateWriter};

const WATERMARK: &str = "session.watermark";
const MEMORY: &str = "session.memory";
const SPILLED: &str = "session.spilled";

/// The key groups of the rows of a batch in the run layout.
fn groups_of(batch: &RecordBatch) -> Vec<u16> {
    let keys = batch
        .column(2)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .expect("run layout: key is Binary");
    key_groups(keys.iter().flatten())
}

impl SessionWindowAggregate {
    /// Writes the state (see the module docs).
    pub(super) fn write_state(&self, state: &mut StateWriter) -> Result<()> {
        debug_assert!(
            self.retract.is_empty(),
            "retractions are emitted within the callback that makes them"
        );
        state.put(WATERMARK, &self.watermark)?;
        let fragments = Self::fragments(&self.sessions, &self.dictionary);
        for batch in self.spilled.fragment_batches(&fragments, &self.accs)? {
            state.put_keyed(MEMORY, &batch, &groups_of(&batch))?;
        }
        for batch in self.spilled.remaining()? {
            state.put_keyed(SPILLED, &batch, &groups_of(&batch))?;
        }
        Ok(())
    }

    /// Reads the sessions of the keys this subtask owns into this fresh
    /// instance; the caller syncs the reservation.
    pub(super) fn read_state(&mut self, state: &StateReader, ctx: &Ctx) -> Result<()> {
        let operator = ctx.operator();
        for w in state.values::<Option<i64>>(WATERMARK)? {
            self.watermark = keyed_state::max_watermark([self.watermark, w]);
        }
        let layout = self.spilled.schema().clone();
        let mut forward = HashMap::new();
        let mut pending_free = Vec::new();
        for batch in state.keyed(MEMORY)? {
            check_layout(&batch, &layout, MEMORY, operator)?;
            self.merge_fragment_rows(&batch, &mut forward, &mut pending_free)?;
        }
        self.free.extend(pending_free);
        let spilled = state.keyed(SPILLED)?;
        for batch in &spilled {
            check_layout(batch, &layout, SPILLED, operator)?;
        }
        self.spilled.spill_rows(&spilled, ctx.spill(), operator)
    }
}
