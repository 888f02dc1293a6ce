//! Checkpoint state of bounded sources that read splits in order (Parquet
//! row groups, in-memory splits): how far each split got, and where a
//! restored subtask (at the same or another parallelism) starts.
//!
//! ```text
//!  snapshot of one subtask:  splits 0 ✓ 3 ✓ 6 (1 024 rows, generator g6) ; watermark W
//!  restore at the same p:    plan = [6 from row 1 024 with g6, 9, 12, ...], emitted = W
//!  restore at another p:     union of all old subtasks' progress; keep the splits the new
//!                            assignment gives me; emitted = none (the clock is rebuilt
//!                            from my remaining splits; partial splits keep their generator)
//! ```
//! `done` counts a source's own unit: raw rows of a row group (Parquet,
//! before the time-range filter) or batches (memory). May use `state`,
//! `time` and `error`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_core::error::{Error, Result};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::{GeneratorState, SplitClock};

/// How far one split got (one entry per split a subtask started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SplitProgress {
    /// The split's index in the source's split list.
    pub split: u64,
    /// Units emitted from the start of the split (rows or batches).
    pub done: u64,
    /// True once the split's end was seen.
    pub finished: bool,
    /// The split's watermark generator, while it is being read.
    pub generator: Option<GeneratorState>,
}

/// One subtask's split state, written under one name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SplitsState {
    /// Number of splits of the whole source (detects a changed input).
    pub total: u64,
    /// The splits this subtask started.
    pub progress: Vec<SplitProgress>,
    /// The last watermark the subtask emitted.
    pub watermark: Option<i64>,
}

/// A split still to read, and where to start in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitResume {
    /// The split's index in the source's split list.
    pub split: usize,
    /// Units to skip (already emitted before the checkpoint).
    pub skip: u64,
    /// The split's generator to continue (`None`: a fresh one).
    pub generator: Option<GeneratorState>,
}

impl SplitResume {
    /// A split read from its start.
    pub fn fresh(split: usize) -> Self {
        SplitResume {
            split,
            skip: 0,
            generator: None,
        }
    }
}

/// What a restored subtask does: the splits left (in read order), the
/// splits it owns that were finished, and the watermark to continue above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RestorePlan {
    /// Splits to read, in the order of the fresh assignment.
    pub plan: Vec<SplitResume>,
    /// Owned splits already finished (kept for later checkpoints).
    pub finished: Vec<usize>,
    /// The last emitted watermark (unchanged parallelism only).
    pub watermark: Option<i64>,
}

/// Progress of a running subtask: splits finished, the current one.
#[derive(Debug, Clone, Default)]
pub(crate) struct SplitCursor {
    /// Splits to read, in order.
    pub plan: Vec<SplitResume>,
    /// Index into `plan` of the split being read.
    pub pos: usize,
    /// Units of `plan[pos]` emitted (from its start, skipped ones included).
    pub done: u64,
    /// Splits owned and finished before the last restore.
    pub finished_before: Vec<usize>,
}

impl SplitCursor {
    /// A cursor over `splits`, each from its start.
    pub fn new(splits: &[usize]) -> Self {
        SplitCursor {
            plan: splits.iter().map(|&s| SplitResume::fresh(s)).collect(),
            ..SplitCursor::default()
        }
    }

    /// A cursor continuing `restored`.
    pub fn restored(restored: RestorePlan) -> Self {
        let done = restored.plan.first().map_or(0, |r| r.skip);
        SplitCursor {
            plan: restored.plan,
            pos: 0,
            done,
            finished_before: restored.finished,
        }
    }

    /// A cursor continuing `restored`, with the watermark clock that
    /// `clock` builds over the splits left, resumed above the restored
    /// watermark.
    pub fn restored_with_clock(
        restored: RestorePlan,
        clock: impl FnOnce(&[usize]) -> Option<SplitClock>,
    ) -> (Self, Option<SplitClock>) {
        let left: Vec<usize> = restored.plan.iter().map(|r| r.split).collect();
        let mut clock = clock(&left);
        if let Some(c) = clock.as_mut() {
            c.restore_emitted(restored.watermark);
        }
        (SplitCursor::restored(restored), clock)
    }

    /// The split being read (index into the source's split list).
    pub fn current(&self) -> Option<&SplitResume> {
        self.plan.get(self.pos)
    }

    /// The current split ended; moves to the next.
    pub fn finish_split(&mut self) {
        self.pos += 1;
        self.done = self.plan.get(self.pos).map_or(0, |r| r.skip);
    }

    /// The state to write: finished splits, then the current one if started.
    pub fn state(
        &self,
        total: usize,
        generator: Option<GeneratorState>,
        watermark: Option<i64>,
    ) -> SplitsState {
        let finished = |split: usize| SplitProgress {
            split: split as u64,
            done: 0,
            finished: true,
            generator: None,
        };
        let mut progress: Vec<SplitProgress> = self
            .finished_before
            .iter()
            .chain(
                self.plan[..self.pos.min(self.plan.len())]
                    .iter()
                    .map(|r| &r.split),
            )
            .map(|&s| finished(s))
            .collect();
        if let Some(cur) = self.current() {
            if self.done > 0 || generator.is_some() {
                progress.push(SplitProgress {
                    split: cur.split as u64,
                    done: self.done,
                    finished: false,
                    generator,
                });
            }
        }
        SplitsState {
            total: total as u64,
            progress,
            watermark,
        }
    }
}

/// The current split ended: the cursor moves to the next and the clock
/// closes the split's watermark generator.
pub(crate) fn end_split(cursor: &mut SplitCursor, clock: Option<&mut SplitClock>) {
    cursor.finish_split();
    if let Some(c) = clock {
        c.end_split();
    }
}

/// Emits the watermark `clock` can advance to now, if any.
pub(crate) fn emit_watermark(
    clock: Option<&mut SplitClock>,
    out: &mut weir_core::operator::Output,
) {
    if let Some(wm) = clock.and_then(|c| c.advance()) {
        out.emit_watermark(wm);
    }
}

/// Snapshots a source that reads splits in order: `cursor`'s progress over
/// `total` splits and `clock`'s generator and watermark, under `name`.
pub(crate) fn snapshot(
    out: &mut StateWriter,
    name: &str,
    cursor: &SplitCursor,
    total: usize,
    clock: Option<&SplitClock>,
) -> Result<()> {
    let state = cursor.state(
        total,
        clock.and_then(SplitClock::active_state),
        clock.and_then(SplitClock::emitted),
    );
    write(out, name, &state)
}

/// Restores a source that reads splits in order (see [`plan_restore`] for
/// the arguments): the cursor over the splits left and the watermark clock
/// `clock` builds over them, or `None` if nothing was saved.
pub(crate) fn restore(
    reader: &StateReader,
    name: &str,
    mine: &[usize],
    total: usize,
    units: &dyn Fn(usize) -> u64,
    context: &str,
    clock: impl FnOnce(&[usize]) -> Option<SplitClock>,
) -> Result<Option<(SplitCursor, Option<SplitClock>)>> {
    Ok(plan_restore(reader, name, mine, total, units, context)?
        .map(|plan| SplitCursor::restored_with_clock(plan, clock)))
}

/// Writes `state` under `name`.
pub(crate) fn write(out: &mut StateWriter, name: &str, state: &SplitsState) -> Result<()> {
    out.put(name, state)
}

/// Reads the split states under `name` and plans what `mine` (the splits
/// the fresh assignment gives this subtask, in read order) still has to
/// read. `None` if nothing was saved. `units(i)` is split `i`'s size in the
/// source's unit. Errors name `context` when the input changed (another
/// number of splits), two old subtasks claim one split, or a saved split
/// index or position lies outside the input (a checkpoint is not trusted).
pub(crate) fn plan_restore(
    reader: &StateReader,
    name: &str,
    mine: &[usize],
    total: usize,
    units: &dyn Fn(usize) -> u64,
    context: &str,
) -> Result<Option<RestorePlan>> {
    if !reader.shard_origins().is_empty() {
        return plan_from_shards(reader, name, mine, total, units, context);
    }
    let saved: Vec<SplitsState> = reader.values(name)?;
    if saved.is_empty() {
        return Ok(None);
    }
    let by_split = progress_by_split(&saved, total, units, context)?;
    let mut plan = RestorePlan {
        watermark: if reader.is_rescaled() {
            None
        } else {
            saved.first().and_then(|s| s.watermark)
        },
        ..RestorePlan::default()
    };
    plan_splits(&mut plan, &by_split, mine);
    Ok(Some(plan))
}

/// Adds `mine`'s splits to `plan`: finished ones, and the rest with where
/// `by_split` says they got (from the start if they were not begun).
fn plan_splits(plan: &mut RestorePlan, by_split: &BTreeMap<u64, SplitProgress>, mine: &[usize]) {
    for &split in mine {
        match by_split.get(&(split as u64)) {
            Some(p) if p.finished => plan.finished.push(split),
            Some(p) => plan.plan.push(SplitResume {
                split,
                skip: p.done,
                generator: p.generator,
            }),
            None => plan.plan.push(SplitResume::fresh(split)),
        }
    }
}

/// The progress the old subtasks in `saved` made, by split; refuses a
/// changed input, a split or position outside it, and a split two
/// subtasks claim.
fn progress_by_split(
    saved: &[SplitsState],
    total: usize,
    units: &dyn Fn(usize) -> u64,
    context: &str,
) -> Result<BTreeMap<u64, SplitProgress>> {
    let mut by_split: BTreeMap<u64, SplitProgress> = BTreeMap::new();
    for s in saved {
        if s.total != total as u64 {
            return Err(Error::Checkpoint {
                location: context.to_string(),
                message: format!(
                    "the checkpoint was taken over {} splits, the input now has {total}: \
                     the input changed, restore is not possible",
                    s.total
                ),
            });
        }
        for p in &s.progress {
            let size = usize::try_from(p.split)
                .ok()
                .filter(|&i| i < total)
                .map(units);
            let Some(size) = size else {
                return Err(Error::Checkpoint {
                    location: context.to_string(),
                    message: format!(
                        "the checkpoint names split {}, but the input has {total} splits",
                        p.split
                    ),
                });
            };
            if p.done > size {
                return Err(Error::Checkpoint {
                    location: context.to_string(),
                    message: format!(
                        "the checkpoint is {} units into split {}, which has {size}",
                        p.done, p.split
                    ),
                });
            }
            if by_split.insert(p.split, p.clone()).is_some() {
                return Err(Error::Checkpoint {
                    location: context.to_string(),
                    message: format!("split {} was saved by two subtasks", p.split),
                });
            }
        }
    }
    Ok(by_split)
}

/// [`plan_restore`] from the checkpoints of several old shards (`--restore
/// shards:N`): each read every split of a keyed job and kept its own key
/// groups. Their state fits together only if they stopped at the same
/// place in every split (then their operators saw the same watermarks
/// too): `--savepoint-at` stops them there. Otherwise the restore is
/// refused, naming the first split where they differ.
///
/// ```text
///  split 4:  old 0/2 at 3 000 units   old 1/2 at 3 000 units  ─► skip 3 000 (either's generator)
///  split 5:  old 0/2 at 3 000 units   old 1/2 finished        ─► refused: not one place
/// ```
fn plan_from_shards(
    reader: &StateReader,
    name: &str,
    mine: &[usize],
    total: usize,
    units: &dyn Fn(usize) -> u64,
    context: &str,
) -> Result<Option<RestorePlan>> {
    let saved: Vec<(usize, SplitsState)> = reader.values_from(name)?;
    let mut shards: Vec<(weir_core::shard::Shard, BTreeMap<u64, SplitProgress>)> = Vec::new();
    for origin in reader.shard_origins() {
        let states: Vec<SplitsState> = saved
            .iter()
            .filter(|(old, _)| reader.origin(*old) == Some(origin))
            .map(|(_, s)| s.clone())
            .collect();
        let by_split = progress_by_split(&states, total, units, context).map_err(|e| match e {
            Error::Checkpoint { location, message } => Error::Checkpoint {
                location,
                message: format!("old shard {}: {message}", origin.shard),
            },
            e => e,
        })?;
        shards.push((origin.shard, by_split));
    }
    if shards.iter().all(|(_, by_split)| by_split.is_empty()) {
        return Ok(None);
    }
    // where an old shard stopped in a split: (units emitted, finished)
    let place = |by_split: &BTreeMap<u64, SplitProgress>, split: usize| {
        by_split
            .get(&(split as u64))
            .map_or((0, false), |p| (p.done, p.finished))
    };
    for split in 0..total {
        let (first, first_progress) = &shards[0];
        let at = place(first_progress, split);
        if let Some((other, progress)) = shards.iter().find(|(_, p)| place(p, split) != at) {
            let show = |(done, finished): (u64, bool)| {
                if finished {
                    "its end".to_string()
                } else {
                    format!("unit {done}")
                }
            };
            let there = place(progress, split);
            return Err(Error::Checkpoint {
                location: context.to_string(),
                message: format!(
                    "the old shards stopped at different places (split {split}: shard {first} \
                     at {}, shard {other} at {}), so their state does not fit together at \
                     another shard count. Take the savepoints at one event time in every \
                     shard: run (or restore) each old shard with --savepoint-at TIME, which \
                     stops it where its sources' watermarks reach TIME, at the same rows in \
                     every shard",
                    show(at),
                    show(there)
                ),
            });
        }
    }
    let mut plan = RestorePlan::default(); // the clock is rebuilt from the splits
    plan_splits(&mut plan, &shards[0].1, mine);
    Ok(Some(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_core::state::SubtaskState;

    #[test]
    fn a_rescale_gives_each_split_to_its_new_owner_once() {
        // old p = 2: subtask 0 read splits 0 (done) and 2 (5 units);
        // subtask 1 finished 1 and 3
        let mut c0 = SplitCursor::new(&[0, 2, 4]);
        c0.finish_split();
        c0.done = 5;
        let g = GeneratorState {
            max_ts: Some(7),
            watermark: None,
        };
        let mut c1 = SplitCursor::new(&[1, 3, 5]);
        c1.finish_split();
        c1.finish_split();
        let states: Vec<SubtaskState> = [c0.state(6, Some(g), Some(3)), c1.state(6, None, None)]
            .iter()
            .map(|s| {
                let mut w = StateWriter::new();
                write(&mut w, "splits", s).unwrap();
                w.finish()
            })
            .collect();
        let states = Arc::new(states);
        // new p = 3: subtask s owns splits s and s + 3
        let plans: Vec<RestorePlan> = (0..3)
            .map(|s| {
                let r = StateReader::for_subtask(states.clone(), s, 3);
                plan_restore(&r, "splits", &[s, s + 3], 6, &|_| 10, "test")
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_eq!(plans[0].finished, vec![0, 3]);
        assert!(plans[0].plan.is_empty());
        assert_eq!(plans[1].finished, vec![1]);
        assert_eq!(plans[1].plan, vec![SplitResume::fresh(4)]);
        assert_eq!(
            plans[2].plan,
            vec![
                SplitResume {
                    split: 2,
                    skip: 5,
                    generator: Some(g)
                },
                SplitResume::fresh(5)
            ]
        );
        assert!(plans.iter().all(|p| p.watermark.is_none()), "rescaled");
        // a changed input is refused
        let r = StateReader::for_subtask(states, 0, 3);
        assert!(plan_restore(&r, "splits", &[0], 7, &|_| 10, "test").is_err());
    }

    /// Old shards `i/n` each saved `states` (one per old subtask).
    fn from_shards(saved: &[Vec<SplitsState>]) -> StateReader {
        let mut states = Vec::new();
        let mut origins = Vec::new();
        for (i, shard) in saved.iter().enumerate() {
            for s in shard {
                let mut w = StateWriter::new();
                write(&mut w, "splits", s).unwrap();
                states.push(w.finish());
                origins.push(weir_core::state::ShardOrigin {
                    shard: weir_core::shard::Shard::try_new(i, saved.len()).unwrap(),
                    checkpoint: 4,
                });
            }
        }
        StateReader::for_subtask(Arc::new(states), 0, 1).with_origins(Arc::new(origins))
    }

    #[test]
    fn shards_stopped_at_the_same_rows_restore_together_and_others_are_refused() {
        let g = GeneratorState {
            max_ts: Some(9),
            watermark: Some(2),
        };
        let at = |done: u64| {
            let mut c = SplitCursor::new(&[0, 1]);
            c.finish_split();
            c.done = done;
            c.state(2, Some(g), Some(2))
        };
        // two shards, each at parallelism 1, both in split 1 at 40
        let plan = plan_restore(
            &from_shards(&[vec![at(40)], vec![at(40)]]),
            "splits",
            &[0, 1],
            2,
            &|_| 100,
            "src",
        )
        .unwrap()
        .unwrap();
        assert_eq!(plan.finished, vec![0]);
        assert_eq!(
            plan.plan,
            vec![SplitResume {
                split: 1,
                skip: 40,
                generator: Some(g)
            }]
        );
        assert_eq!(plan.watermark, None, "the clock is rebuilt from the splits");
        let e = plan_restore(
            &from_shards(&[vec![at(40)], vec![at(60)]]),
            "splits",
            &[1],
            2,
            &|_| 100,
            "src",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("split 1: shard 0/2 at unit 40, shard 1/2 at unit 60")
                && e.contains("--savepoint-at"),
            "{e}"
        );
    }

    #[test]
    fn saved_splits_and_positions_outside_the_input_are_refused() {
        let save = |split: u64, done: u64| {
            let s = SplitsState {
                total: 3,
                progress: vec![SplitProgress {
                    split,
                    done,
                    finished: false,
                    generator: None,
                }],
                watermark: None,
            };
            let mut w = StateWriter::new();
            write(&mut w, "splits", &s).unwrap();
            StateReader::for_subtask(Arc::new(vec![w.finish()]), 0, 1)
        };
        let plan = |r: &StateReader| plan_restore(r, "splits", &[0, 1, 2], 3, &|_| 100, "src");
        assert_eq!(plan(&save(2, 100)).unwrap().unwrap().plan[2].skip, 100);
        let e = plan(&save(3, 0)).unwrap_err().to_string();
        assert!(e.contains("split 3") && e.contains("3 splits"), "{e}");
        let e = plan(&save(1, 101)).unwrap_err().to_string();
        assert!(e.contains("101 units into split 1"), "{e}");
    }
}
