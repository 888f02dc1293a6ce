//! Stored rows over the memory budget: both sides' rows go to sorted runs
//! (`super::super::spill`) and come back a step at a time; the
//! [`SpillableState`] impl the pool drives.
//!
//! May use what the parent module imports.

use super::*;

impl SymmetricHashJoin {
    /// Matches the reservation to the state, spilling every stored row
    /// while the pool refuses (see [`store::sync`]); rows read back are
    /// released from the fixed reservation first.
    pub(super) fn sync(&mut self, ctx: &Ctx) -> Result<()> {
        self.read_back.free();
        store::sync(self, ctx.spill())
    }

    /// Writes every stored row of both sides to runs and empties memory.
    pub(super) fn spill_state(&mut self, spill: &SpillManager) -> Result<()> {
        let name = self.reservation.consumer().to_string();
        // regular and interval joins: by key hash (joined by epoch at the end)
        let regular = matches!(
            self.layout.spec().kind,
            JoinKind::Regular | JoinKind::Interval { .. }
        );
        let session = self.layout.spec().kind.is_session();
        if regular {
            // pairs across epochs come at end of input, each later than this
            // watermark (its later row arrived after it): hold it from now on
            self.held.get_or_insert(self.watermark);
        }
        for s in 0..2 {
            let mut rows: Vec<SpillRow> = Vec::with_capacity(self.sides[s].entries);
            for entries in self.sides[s].lists() {
                let hash = stable_hash(&entries.key) as i64;
                rows.extend(entries.rows.iter().map(|e| SpillRow {
                    sort: if regular {
                        hash
                    } else if session {
                        // a step brings back every row at or before it
                        e.time
                    } else {
                        self.due_at(s, e)
                    },
                    epoch: e.epoch,
                    matched: e.matched,
                    at: (e.batch as usize, e.row as usize),
                }));
            }
            let sources = self.sides[s].sources();
            self.runs.write(s, &sources, &mut rows, spill, &name)?;
            self.sides[s].clear();
        }
        self.epoch += 1;
        Ok(())
    }

    /// Stores spilled rows of side `s` again (window joins), without probing.
    pub(super) fn hydrate(&mut self, s: usize, batches: Vec<RecordBatch>, ctx: &Ctx) -> Result<()> {
        for batch in batches {
            let (meta, input) = runs::split(&batch);
            let keys = self.sides[s].keys.encode(&input)?;
            let times = self.layout.row_times(s, &input, ctx.operator())?;
            let slot = self.sides[s].store(input);
            for (r, m) in meta.iter().enumerate() {
                let entry = Entry {
                    batch: slot,
                    row: r as u32,
                    time: times.time(r),
                    window: times.window(r),
                    matched: m.matched,
                    epoch: m.epoch,
                };
                let due = self.due_at(s, &entry);
                self.store_row(s, keys.row(r).as_ref(), entry, due);
            }
            self.sides[s].settle(slot, meta.len() as u32);
        }
        let bytes = self.sides[0].bytes() + self.sides[1].bytes();
        self.read_back
            .resize(bytes.saturating_sub(self.reservation.size()));
        Ok(())
    }
}

impl SpillableState for SymmetricHashJoin {
    fn memory_bytes(&self) -> usize {
        self.sides[0].bytes() + self.sides[1].bytes()
    }

    fn can_spill(&self) -> bool {
        self.sides.iter().any(|s| s.entries > 0)
    }

    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        self.spill_state(spill)
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}
