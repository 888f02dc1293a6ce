//! The symmetric hash join's checkpoint: the unkeyed watermarks and, per
//! side, the stored rows with their key groups (in memory and spilled).
//!
//! May use what the parent module imports.

use super::*;
use crate::join::side_state::{self, JoinMeta, META_ENTRY, SIDE_ENTRIES};

/// Stored rows per keyed state batch of a checkpoint.
const SNAPSHOT_ROWS: usize = 8192;

/// The unkeyed entry of the watermark a spilled join forwards (see
/// `SymmetricHashJoin::held`); absent when it never spilled, and in
/// checkpoints of versions before it.
const HELD_ENTRY: &str = "join_held";

impl SymmetricHashJoin {
    /// Writes the input rows `input` of side `s` with their epochs and
    /// matched flags as keyed state (see [`side_state::put_side_rows`]).
    pub(super) fn put_side_rows(
        &self,
        s: usize,
        input: &RecordBatch,
        epochs: &[u32],
        matched: &[bool],
        state: &mut StateWriter,
    ) -> Result<()> {
        let ages = epochs
            .iter()
            .map(|&e| self.epoch.saturating_sub(e))
            .collect();
        side_state::put_side_rows(
            s,
            self.layout.input(s),
            &self.sides[s].keys,
            input,
            ages,
            matched.to_vec(),
            state,
        )
    }

    /// Writes every stored row of both sides, in memory and on disk (the
    /// runs are only read), and the watermark and epoch.
    pub(super) fn snapshot_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.put(
            META_ENTRY,
            &JoinMeta {
                watermark: self.watermark,
                epoch: self.epoch,
            },
        )?;
        if let Some(held) = self.held {
            state.put(HELD_ENTRY, &held)?;
        }
        for s in 0..2 {
            let entries: Vec<Entry> = self.sides[s]
                .lists()
                .flat_map(|list| list.rows.iter().copied())
                .collect();
            let sources = self.sides[s].sources();
            for chunk in entries.chunks(SNAPSHOT_ROWS) {
                let idx: Vec<(usize, usize)> = chunk
                    .iter()
                    .map(|e| (e.batch as usize, e.row as usize))
                    .collect();
                let input = arrow_select::interleave::interleave_record_batch(&sources, &idx)?;
                let epochs: Vec<u32> = chunk.iter().map(|e| e.epoch).collect();
                let matched: Vec<bool> = chunk.iter().map(|e| e.matched).collect();
                self.put_side_rows(s, &input, &epochs, &matched, state)?;
            }
            for batch in self.runs.peek(s)? {
                let (meta, input) = runs::split(&batch);
                let epochs: Vec<u32> = meta.iter().map(|m| m.epoch).collect();
                let matched: Vec<bool> = meta.iter().map(|m| m.matched).collect();
                self.put_side_rows(s, &input, &epochs, &matched, state)?;
            }
        }
        Ok(())
    }

    /// Restores rows written by [`snapshot_state`](Self::snapshot_state),
    /// possibly by several old subtasks (a rescale).
    ///
    /// Merging: the watermark is the highest of the old subtasks' (they are
    /// equal in an aligned checkpoint: every subtask saw the same watermarks
    /// before the barrier; the window operators merge the same way); the epoch of new rows is the highest
    /// old epoch `E`, and a row of age `a` gets epoch `E - a`. All rows of a
    /// key come from one old subtask, so rows of a key that shared an epoch
    /// still do, and rows of the current epoch (age 0, the ones that were in
    /// memory) are again in the current one. Regular and interval joins put
    /// older rows back on disk (they pair with newer rows only at end of
    /// input); window joins keep every row in memory and spill again if the
    /// budget asks for it.
    pub(super) fn restore_state(&mut self, ctx: &Ctx, state: &StateReader) -> Result<()> {
        let metas: Vec<JoinMeta> = state.values(META_ENTRY)?;
        let (Some(watermark), Some(epoch)) = (
            metas.iter().map(|m| m.watermark).max(),
            metas.iter().map(|m| m.epoch).max(),
        ) else {
            return Ok(());
        };
        self.watermark = watermark;
        self.epoch = epoch;
        // rescaled: the lowest hold of the old subtasks
        let held: Vec<i64> = state.values(HELD_ENTRY)?;
        self.held = held.into_iter().min();
        let by_epoch = matches!(
            self.layout.spec().kind,
            JoinKind::Regular | JoinKind::Interval { .. }
        );
        for (s, entry) in SIDE_ENTRIES.into_iter().enumerate() {
            for batch in state.keyed(entry)? {
                let n = batch.num_columns();
                if n < 2 || batch.schema().field(n - 2).name() != "__weir_join_age" {
                    return Err(Error::State {
                        operator: ctx.operator().to_string(),
                        message: format!(
                            "checkpoint entry `{entry}` lacks the join's age and matched columns"
                        ),
                    });
                }
                let ages = batch.column(n - 2).as_primitive::<UInt32Type>().clone();
                let matched = batch.column(n - 1).as_boolean().clone();
                let input = batch.project(&(0..n - 2).collect::<Vec<_>>())?;
                let input =
                    RecordBatch::try_new(self.layout.input(s).clone(), input.columns().to_vec())?;
                let epochs: Vec<u32> = ages
                    .values()
                    .iter()
                    .map(|&a| epoch.saturating_sub(a))
                    .collect();
                let on_disk: Vec<bool> = ages.values().iter().map(|&a| by_epoch && a > 0).collect();
                // rows of the current epoch (and every window-join row): memory
                let keep: BooleanArray = on_disk.iter().map(|&d| Some(!d)).collect();
                let in_memory = arrow_select::filter::filter_record_batch(
                    &run_batch(&self.runs, s, &batch, &epochs, &matched)?,
                    &keep,
                )?;
                self.hydrate(s, vec![in_memory], ctx)?;
                // older epochs of regular and interval joins: back to disk
                if on_disk.iter().any(|&d| d) {
                    let keys = self.sides[s].keys.encode(&input)?;
                    let mut rows: Vec<SpillRow> = (0..input.num_rows())
                        .filter(|&r| on_disk[r])
                        .map(|r| SpillRow {
                            sort: stable_hash(keys.row(r).as_ref()) as i64,
                            epoch: epochs[r],
                            matched: matched.value(r),
                            at: (0, r),
                        })
                        .collect();
                    self.runs
                        .write(s, &[&input], &mut rows, ctx.spill(), ctx.operator())?;
                    // (a checkpoint of an older version: hold from here)
                    self.held.get_or_insert(watermark);
                }
            }
        }
        self.sync(ctx)
    }
}
