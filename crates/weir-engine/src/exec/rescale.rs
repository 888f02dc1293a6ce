//! Restoring the checkpoints of `N` shards at another shard count `M`
//! (`--shard i/M --restore shards:N`): key groups move with their state.
//!
//! ```text
//!  every old shard ran to --savepoint-at T: the same rows of every source, same watermarks
//!  CHECKPOINT_DIR/shard-0-of-2/<job>/chk-…7   kg [0, 64)    positions P
//!  CHECKPOINT_DIR/shard-1-of-2/<job>/chk-…5   kg [64, 128)  positions P (byte-equal source state)
//!        │  newest valid checkpoint of each old shard (all are needed; sources that
//!        ▼  stopped at different rows are refused: their operators' state would not fit)
//!  shard 1/3 (kg [43, 86)) restores every old subtask's state:
//!     keyed state ─► the rows of kg [43, 86), by key group (as any rescale)
//!     sources     ─► the agreed positions P (split_progress::plan_from_shards)
//!     watermarks  ─► the lowest old one (all equal here)
//!     file sink   ─► the old shards' published parts stay, adopted by the new count
//! ```
//! Only a keyed job over bounded inputs divides by key groups (every shard
//! reads all of the input); shards over broker partitions, over dealt-out
//! splits, or re-keying through a topic are refused by name. The new
//! shard's own checkpoints start afresh in `CHECKPOINT_DIR/shard-i-of-M`;
//! once it has one, it restores that instead. May use `checkpoint`,
//! `graph`, `chain` and `weir_core`.

use super::chain::RestoreSet;
use crate::checkpoint::store::{CheckpointStore, Loaded};
use crate::checkpoint::CheckpointStats;
use crate::graph::{LogicalPlan, PhysicalPlan};
use std::path::{Path, PathBuf};
use weir_core::error::{Error, Result};
use weir_core::shard::Shard;
use weir_core::state::ShardOrigin;

/// The checkpoints to restore: those of the `count` shards of job `job`
/// under `root` (`CHECKPOINT_DIR`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OldShards<'a> {
    pub(crate) root: &'a Path,
    pub(crate) job: &'a str,
    pub(crate) count: usize,
}

/// The restore set of shard `shard` from the newest checkpoint of each of
/// the `old.count` old shards, after publishing what their checkpoints had
/// staged.
///
/// # Errors
///
/// [`Error::Plan`] when the job's shards do not divide it by key groups;
/// [`Error::Checkpoint`] when an old shard has no complete checkpoint, its
/// operators were defined differently, or the old shards stopped at
/// different rows.
pub(crate) fn restore_set(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    shard: Shard,
    old: OldShards<'_>,
    targets: &[PathBuf],
    stats: &mut CheckpointStats,
) -> Result<RestoreSet> {
    let OldShards {
        root,
        job,
        count: old_count,
    } = old;
    check_plan(plan, shard, old_count)?;
    let mut loaded: Vec<(Shard, Loaded)> = Vec::with_capacity(old_count);
    for k in 0..old_count {
        let old = Shard::try_new(k, old_count)?;
        let store = CheckpointStore::existing(&root.join(old.tag()), job)?;
        let (newest, warnings) = if store.root().is_dir() {
            store.latest_valid()?
        } else {
            (None, Vec::new())
        };
        stats.warnings.extend(warnings);
        let Some(l) = newest else {
            return Err(Error::Checkpoint {
                location: store.root().display().to_string(),
                message: format!(
                    "shard {old} has no complete checkpoint: restoring {old_count} shards at \
                     {} needs every old shard's, taken at one event time (run each old shard \
                     with --savepoint-at TIME, then start the new shards with --restore \
                     shards:{old_count})",
                    shard.count()
                ),
            });
        };
        check_definitions(plan, physical, shard, old, &l)?;
        loaded.push((old, l));
    }
    check_same_place(plan, physical, &loaded)?;
    if loaded.iter().all(|(_, l)| l.manifest.is_final) {
        return Err(Error::Checkpoint {
            location: root.display().to_string(),
            message: format!(
                "the {old_count} shards had finished the job (their checkpoints are final): \
                 there is nothing left to run at {} shards",
                shard.count()
            ),
        });
    }
    // a crash between a manifest and its renames left some unpublished
    for (_, l) in &loaded {
        for p in &l.manifest.publish {
            p.check(targets)?;
        }
        for p in &l.manifest.publish {
            p.apply()?;
        }
    }
    let mut set = RestoreSet::from_shards();
    for id in (0..plan.nodes.len()).filter(|&id| physical.is_live(id)) {
        let name = &plan.nodes[id].name;
        let mut states = Vec::new();
        let mut origins = Vec::new();
        for (old, l) in &mut loaded {
            let checkpoint = l.manifest.id;
            for state in l.take_operator_states(name)?.unwrap_or_default() {
                states.push(state);
                origins.push(ShardOrigin {
                    shard: *old,
                    checkpoint,
                });
            }
        }
        if !states.is_empty() {
            set.insert_with_origins(name, states, Some(origins))?;
        }
    }
    stats.restored_from_shards = loaded
        .iter()
        .map(|(old, l)| (old.index(), l.manifest.id))
        .collect();
    Ok(set)
}

/// When the newest complete checkpoint of any of the old shards was taken
/// (epoch ms; `None` if they have none). A shard that returns to a count it
/// ran at before has checkpoints of its own from then: `--restore
/// shards:N` restores them only if they are newer than the old shards'.
pub(crate) fn newest_completed(old: &OldShards<'_>) -> Result<Option<i64>> {
    let mut newest = None;
    for k in 0..old.count {
        let store = CheckpointStore::existing(
            &old.root.join(Shard::try_new(k, old.count)?.tag()),
            old.job,
        )?;
        if !store.root().is_dir() {
            continue;
        }
        for id in store.ids_on_disk()?.into_iter().rev() {
            let path = store.dir_of(id).join(crate::checkpoint::store::MANIFEST);
            let Ok(text) = std::fs::read(&path) else {
                continue; // in progress or abandoned
            };
            if let Ok(m) = serde_json::from_slice::<crate::checkpoint::store::Manifest>(&text) {
                newest = newest.max(Some(m.completed_ms));
                break;
            }
        }
    }
    Ok(newest)
}

/// Refuses jobs whose shards do not divide their state by key groups.
fn check_plan(plan: &LogicalPlan, shard: Shard, old_count: usize) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::Plan(format!(
            "cannot restore the checkpoints of {old_count} shards at {} shards: {why}; \
             restore them at {old_count} shards (or start over with --restore fresh)",
            shard.count()
        )))
    };
    if plan.nodes.iter().any(|n| n.channel) {
        return refuse(
            "the job re-keys through a broker topic, whose records in flight belong to the \
             old shards' producers",
        );
    }
    if plan.key_groups.is_none() {
        return refuse(
            "its shards do not divide it by key groups (they read broker partitions, whose \
             keys' state moves with the partitions, or deal out the input's splits)",
        );
    }
    Ok(())
}

/// Refuses old shards that did not stop at the same rows of every source:
/// their keyed state and watermarks would not fit together. A source's
/// saved position is deterministic, so shards stopped at the same rows
/// (`--savepoint-at`, at one parallelism) saved byte-identical states; the
/// manifests' checksums say whether they did.
fn check_same_place(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    loaded: &[(Shard, Loaded)],
) -> Result<()> {
    let sources = (0..plan.nodes.len())
        .filter(|&id| physical.is_live(id) && plan.nodes[id].kind.is_source())
        .map(|id| plan.nodes[id].name.as_str());
    for name in sources {
        let saved = |l: &Loaded| {
            l.manifest
                .operators
                .iter()
                .find(|o| o.name == name)
                .map(|o| o.files.iter().map(|f| f.checksum).collect::<Vec<u64>>())
        };
        let (first, first_loaded) = &loaded[0];
        let expected = saved(first_loaded);
        for (old, l) in &loaded[1..] {
            let here = saved(l);
            if here == expected {
                continue;
            }
            let why = match (&expected, &here) {
                (Some(a), Some(b)) if a.len() != b.len() => format!(
                    "shard {first} ran it at parallelism {}, shard {old} at {}",
                    a.len(),
                    b.len()
                ),
                _ => format!("shards {first} and {old} stopped at different rows"),
            };
            return Err(Error::Checkpoint {
                location: l.dir.display().to_string(),
                message: format!(
                    "the old shards' checkpoints do not fit together at another shard count: \
                     at source `{name}`, {why}. Take the savepoints at one event time in every \
                     shard, at one parallelism: run (or restore) each old shard with \
                     --savepoint-at TIME, which stops it where its sources' watermarks reach \
                     TIME, at the same rows in every shard"
                ),
            });
        }
    }
    Ok(())
}

/// A definition without the ` [shard i/N]` its plan appends.
fn unsharded(definition: &Option<String>, shard: Shard) -> Option<String> {
    let tag = format!(" [shard {shard}]");
    definition
        .as_ref()
        .map(|d| d.strip_suffix(&tag).unwrap_or(d).to_string())
}

/// Refuses old shard `old`'s checkpoint if an operator it saved was
/// defined differently or is gone (as `recovery::check_definitions`).
fn check_definitions(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    shard: Shard,
    old: Shard,
    loaded: &Loaded,
) -> Result<()> {
    for op in &loaded.manifest.operators {
        let node = (0..plan.nodes.len())
            .filter(|&id| physical.is_live(id))
            .map(|id| &plan.nodes[id])
            .find(|n| n.name == op.name);
        let Some(node) = node else {
            if op.files.is_empty() {
                continue;
            }
            return Err(Error::Checkpoint {
                location: loaded.dir.display().to_string(),
                message: format!(
                    "it holds state of operator `{}`, which this job does not have (was the \
                     job changed?)",
                    op.name
                ),
            });
        };
        let (was, now) = (
            unsharded(&op.definition, old),
            unsharded(&node.definition, shard),
        );
        if was != now {
            let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "(stateless)".into());
            return Err(Error::Checkpoint {
                location: loaded.dir.display().to_string(),
                message: format!(
                    "operator `{}` changed since shard {old} took this checkpoint: it holds \
                     state of `{}`, the job now defines `{}`; restoring would mix both jobs' \
                     results. Start over with `--restore fresh`",
                    op.name,
                    show(&was),
                    show(&now)
                ),
            });
        }
    }
    Ok(())
}
