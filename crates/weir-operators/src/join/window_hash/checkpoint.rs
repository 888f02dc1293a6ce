//! The window hash join's checkpoint, in the symmetric join's layout (so a
//! checkpoint of either restores into the other): the unkeyed watermark,
//! and per side every kept row (in memory and spilled) with its key group.
//!
//! May use what the parent module imports.

use super::*;
use crate::join::side_state::{self, JoinMeta, EXTRA, META_ENTRY, SIDE_ENTRIES};

impl WindowHashJoin {
    /// Writes the rows `input` of side `s` as keyed state, with age 0 and
    /// unmatched (see [`side_state::put_side_rows`]).
    fn put_side_rows(&self, s: usize, input: &RecordBatch, state: &mut StateWriter) -> Result<()> {
        let n = input.num_rows();
        side_state::put_side_rows(
            s,
            self.layout.input(s),
            &self.keys[s],
            input,
            vec![0; n],
            vec![false; n],
            state,
        )
    }

    /// Writes the watermark and every kept row, in memory and on disk (the
    /// runs are only read).
    pub(super) fn snapshot_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.put(
            META_ENTRY,
            &JoinMeta {
                watermark: self.watermark,
                epoch: 0,
            },
        )?;
        for s in 0..2 {
            for batch in self.buckets.side(s) {
                self.put_side_rows(s, batch, state)?;
            }
            for batch in self.runs[s].remaining()? {
                self.put_side_rows(s, &batch, state)?;
            }
        }
        Ok(())
    }

    /// Restores rows written by [`snapshot_state`](Self::snapshot_state) or
    /// by the symmetric join, possibly by several old subtasks (a rescale:
    /// the watermark is the highest, equal in an aligned checkpoint).
    pub(super) fn restore_state(&mut self, ctx: &Ctx, state: &StateReader) -> Result<()> {
        let metas: Vec<JoinMeta> = state.values(META_ENTRY)?;
        let Some(watermark) = metas.iter().map(|m| m.watermark).max() else {
            return Ok(());
        };
        self.watermark = watermark;
        for (s, entry) in SIDE_ENTRIES.into_iter().enumerate() {
            for batch in state.keyed(entry)? {
                let n = batch.num_columns();
                let names = batch.schema();
                if n < 2
                    || names.field(n - 2).name() != EXTRA[0]
                    || names.field(n - 1).name() != EXTRA[1]
                {
                    return Err(Error::State {
                        operator: ctx.operator().to_string(),
                        message: format!(
                            "checkpoint entry `{entry}` lacks the join's age and matched columns"
                        ),
                    });
                }
                let input = RecordBatch::try_new(
                    self.layout.input(s).clone(),
                    batch.columns()[..n - 2].to_vec(),
                )
                .map_err(|e| Error::State {
                    operator: ctx.operator().to_string(),
                    message: format!(
                        "checkpoint entry `{entry}` does not fit the join's input: {e}"
                    ),
                })?;
                // every row comes back, even one behind the highest old
                // watermark (a checkpoint not aligned): it fires next
                let grouped = self.group(s, &input, false, ctx.operator())?;
                self.keep(s, grouped.kept)?;
            }
        }
        self.sync(ctx)
    }
}
