//! Checkpointed runs: choosing the checkpoint to start from, restoring it,
//! and restarting after a failure.
//!
//! ```text
//!  restore = auto|latest|id|path ─► newest valid checkpoint (corrupt ones skipped with a warning)
//!     ─► publish its staged sink files again (idempotent: a crash may have cut that short)
//!     ─► final? the job had finished: nothing to run
//!     ─► run with every operator restored; new checkpoint ids continue after the highest on disk
//!  run fails and restarts are left ─► wait (backoff, doubled each time) ─► restore the newest again
//! ```

use super::chain::RestoreSet;
use super::{execute_once, ExecConfig, JobMetrics};
use crate::checkpoint::coordinator::{Coordinator, NodeInfo};
use crate::checkpoint::store::{CheckpointStore, Loaded, MANIFEST};
use crate::checkpoint::{CheckpointConfig, CheckpointStats, RestoreFrom};
use crate::graph::{LogicalPlan, Outputs, PhysicalPlan};
use std::path::Path;
use weir_core::error::{Error, Result};
use weir_core::lock::LockFile;
use weir_core::message::CheckpointId;
use weir_core::observe::RunMessage;
use weir_core::operator::RuntimeEnv;

/// What one checkpointed attempt starts with.
pub(crate) struct CheckpointRun {
    // config
    config: CheckpointConfig,
    store: CheckpointStore,
    first_id: CheckpointId,
    /// Canonical targets of the job's file sinks (what checkpoints may publish into).
    targets: Vec<std::path::PathBuf>,
    // state
    pub(crate) restore: RestoreSet,
    stats: CheckpointStats,
}

impl CheckpointRun {
    /// The coordinator of this attempt, over every live node and subtask.
    pub(crate) fn coordinator(
        &self,
        plan: &LogicalPlan,
        physical: &PhysicalPlan,
        env: &RuntimeEnv,
    ) -> Coordinator {
        let nodes = (0..plan.nodes.len())
            .filter(|&id| physical.is_live(id))
            .map(|id| NodeInfo {
                id,
                name: plan.nodes[id].name.clone(),
                parallelism: physical.parallelism[id],
                definition: plan.nodes[id].definition.clone(),
            })
            .collect();
        let subtasks = physical
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(t, task)| (0..task.parallelism).map(move |s| (t, s)))
            .collect();
        Coordinator::new(
            self.store.clone(),
            self.config.mode,
            self.config.interval,
            self.config.timeout,
            self.config.retain,
            nodes,
            subtasks,
            self.targets.clone(),
            self.first_id,
            env.commits.clone(),
            self.stats.clone(),
        )
        .with_observer(env.observer.clone())
    }
}

/// Runs a checkpointed pipelined job: restore, run, restart on failure.
pub(crate) fn execute_checkpointed(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    config: &ExecConfig,
    checkpoints: &CheckpointConfig,
    outputs: &Outputs,
) -> Result<JobMetrics> {
    let store = CheckpointStore::try_new(&checkpoints.dir, &checkpoints.job)?;
    let targets: Vec<std::path::PathBuf> = outputs
        .outputs
        .iter()
        .map(|o| o.canonical.clone())
        .collect();
    // one run per checkpoint directory, for the whole run (restarts included)
    let _lock = LockFile::try_acquire(
        &weir_core::lock::for_dir(store.root()),
        &format!("checkpoint directory {}", store.root().display()),
    )?;
    let mut from = checkpoints.restore.clone();
    // a fresh start ignores older checkpoints, also when it restarts later
    let min_id = match from {
        RestoreFrom::Fresh => store.ids_on_disk()?.last().map_or(1, |id| id + 1),
        _ => 0,
    };
    let mut restarts = 0;
    loop {
        let mut stats = CheckpointStats {
            restarts,
            ..CheckpointStats::default()
        };
        // --restore shards:N at another count: this shard's own newest checkpoint
        // if it is newer than the old shards' (a restart after the rescale), else theirs
        let old_shards = match (&from, config.shard) {
            (RestoreFrom::Shards(n), Some(shard)) if *n != shard.count() => Some((
                super::rescale::OldShards {
                    root: shards_root(&store)?,
                    job: &checkpoints.job,
                    count: *n,
                },
                shard,
            )),
            (RestoreFrom::Shards(n), None) => {
                return Err(Error::option(
                    "restore",
                    format!(
                        "shards:{n} restores the checkpoints of {n} shards into the shards of \
                         another count: give --shard I/M"
                    ),
                ))
            }
            _ => None,
        };
        let loaded = match (&from, &old_shards) {
            (_, Some((old, _))) => {
                let (loaded, warnings) = store.latest_valid()?;
                stats.warnings.extend(warnings);
                let old_newest = super::rescale::newest_completed(old)?;
                loaded.filter(|l| Some(l.manifest.completed_ms) > old_newest)
            }
            // shards:M at count M: this shard's own newest checkpoint, which must exist
            (RestoreFrom::Shards(n), None) => match choose(&store, &from, min_id, &mut stats)? {
                Some(l) => Some(l),
                None => {
                    return Err(Error::Checkpoint {
                        location: store.root().display().to_string(),
                        message: format!(
                            "--restore shards:{n}: this run is {n} shards already, and this \
                             shard has no complete checkpoint of its own to continue from"
                        ),
                    })
                }
            },
            _ => choose(&store, &from, min_id, &mut stats)?,
        };
        for w in &stats.warnings {
            config
                .observer
                .on_message(&RunMessage::Warning(w.to_string()));
        }
        let shown = stats.warnings.len();
        if let Some(l) = &loaded {
            check_definitions(plan, physical, l)?;
            // a crash between the manifest and the renames left some unpublished
            for p in &l.manifest.publish {
                p.check(&targets)?;
            }
            for p in &l.manifest.publish {
                p.apply()?;
            }
            stats.restored_from = Some(l.manifest.id);
            if l.manifest.is_final {
                stats.already_finished = true;
                finish_sinks(plan, physical, config)?;
                return Ok(finished_metrics(config, stats));
            }
        }
        let restore = match (loaded, old_shards) {
            (None, Some((old, shard))) => {
                super::rescale::restore_set(plan, physical, shard, old, &targets, &mut stats)?
            }
            (loaded, _) => restore_set(plan, physical, loaded)?,
        };
        for w in &stats.warnings[shown..] {
            config
                .observer
                .on_message(&RunMessage::Warning(w.to_string()));
        }
        let first_id = store
            .ids_on_disk()?
            .last()
            .map_or(1, |id| id + 1)
            .max(min_id);
        let run = CheckpointRun {
            config: checkpoints.clone(),
            store: store.clone(),
            first_id,
            targets: targets.clone(),
            restore,
            stats,
        };
        match execute_once(plan, physical, config, Some(run), outputs) {
            Ok((metrics, _)) => return Ok(metrics),
            Err(e) if restarts < config.restart.attempts && restartable(&e) => {
                let wait = config.restart.backoff * 2u32.saturating_pow(restarts);
                restarts += 1;
                config.observer.on_message(&RunMessage::Restart {
                    error: e.to_string(),
                    wait,
                    attempt: restarts,
                    attempts: config.restart.attempts,
                });
                std::thread::sleep(wait);
                // shards:N keeps its meaning: the shard's own checkpoint once it has one
                if !matches!(from, RestoreFrom::Shards(_))
                    && (from != RestoreFrom::Fresh || min_id > 0)
                {
                    from = RestoreFrom::Auto;
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// `CHECKPOINT_DIR` of a shard's store `CHECKPOINT_DIR/shard-i-of-M/<job>`:
/// where the other shards' checkpoints are.
fn shards_root(store: &CheckpointStore) -> Result<&Path> {
    store
        .root()
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| Error::Checkpoint {
            location: store.root().display().to_string(),
            message: "not inside a shard's checkpoint directory".into(),
        })
}

/// Errors worth a restart: not plan or option mistakes a restart repeats.
fn restartable(e: &Error) -> bool {
    !matches!(
        e,
        Error::Plan(_)
            | Error::InvalidOption { .. }
            | Error::JobFile { .. }
            | Error::Stopped { .. }
            | Error::InUse { .. }
            | Error::UnsafePath { .. }
    )
}

/// The checkpoint to start from, per `from` (`None`: a fresh start).
fn choose(
    store: &CheckpointStore,
    from: &RestoreFrom,
    min_id: CheckpointId,
    stats: &mut CheckpointStats,
) -> Result<Option<Loaded>> {
    let newest = |store: &CheckpointStore, stats: &mut CheckpointStats| -> Result<Option<Loaded>> {
        let (loaded, warnings) = store.latest_valid()?;
        stats.warnings.extend(warnings);
        Ok(loaded.filter(|l| l.manifest.id >= min_id))
    };
    match from {
        RestoreFrom::Fresh if min_id == 0 => Ok(None),
        RestoreFrom::Fresh | RestoreFrom::Auto => newest(store, stats),
        RestoreFrom::Latest => match newest(store, stats)? {
            Some(l) => Ok(Some(l)),
            None => Err(Error::Checkpoint {
                location: store.root().display().to_string(),
                message: "no complete checkpoint to restore (`--restore latest`)".into(),
            }),
        },
        RestoreFrom::Shards(_) => newest(store, stats),
        RestoreFrom::Id(id) => CheckpointStore::load(&store.dir_of(*id)).map(Some),
        RestoreFrom::Path(path) => {
            if path.join(MANIFEST).exists() {
                CheckpointStore::load(path).map(Some)
            } else {
                // another job's root: its newest valid checkpoint
                let parent = path.parent().unwrap_or(path);
                let name =
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .ok_or_else(|| Error::Checkpoint {
                            location: path.display().to_string(),
                            message: "not a checkpoint directory".into(),
                        })?;
                let other = CheckpointStore::existing(parent, name)?;
                if !other.root().is_dir() {
                    return Err(Error::Checkpoint {
                        location: path.display().to_string(),
                        message: "no such checkpoint directory".into(),
                    });
                }
                match newest(&other, stats)? {
                    Some(l) => Ok(Some(l)),
                    None => Err(Error::Checkpoint {
                        location: path.display().to_string(),
                        message: "neither a checkpoint (no _manifest.json) nor a job's \
                                  checkpoint directory with a complete checkpoint"
                            .into(),
                    }),
                }
            }
        }
    }
}

/// Refuses a checkpoint whose stateful operators were defined differently
/// (another window, key, aggregate, join or watermark strategy): their
/// state would mix two jobs' results. The way out is `--restore fresh`.
fn check_definitions(plan: &LogicalPlan, physical: &PhysicalPlan, loaded: &Loaded) -> Result<()> {
    for op in &loaded.manifest.operators {
        let Some(node) = (0..plan.nodes.len())
            .filter(|&id| physical.is_live(id))
            .map(|id| &plan.nodes[id])
            .find(|n| n.name == op.name)
        else {
            continue; // restore_set names operators the job no longer has
        };
        if op.definition != node.definition {
            let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "(stateless)".into());
            return Err(Error::Checkpoint {
                location: loaded.dir.display().to_string(),
                message: format!(
                    "operator `{}` changed since this checkpoint was taken: the checkpoint \
                     holds state of `{}`, the job now defines `{}`; restoring would mix both \
                     jobs' results. Start over with `--restore fresh` (or restore a checkpoint \
                     of this definition)",
                    op.name,
                    show(&op.definition),
                    show(&node.definition)
                ),
            });
        }
    }
    Ok(())
}

/// Loads the state of every operator of the plan from `loaded`.
fn restore_set(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    loaded: Option<Loaded>,
) -> Result<RestoreSet> {
    let Some(mut loaded) = loaded else {
        return Ok(RestoreSet::default());
    };
    let names: Vec<&str> = (0..plan.nodes.len())
        .filter(|&id| physical.is_live(id))
        .map(|id| plan.nodes[id].name.as_str())
        .collect();
    for op in &loaded.manifest.operators {
        if !names.contains(&op.name.as_str()) && !op.files.is_empty() {
            return Err(Error::Checkpoint {
                location: loaded.dir.display().to_string(),
                message: format!(
                    "it holds state of operator `{}`, which this job does not have \
                     (was the job changed?)",
                    op.name
                ),
            });
        }
    }
    let mut set = RestoreSet::from_checkpoint(loaded.manifest.id);
    for name in names {
        if let Some(states) = loaded.take_operator_states(name)? {
            set.insert(name, states)?;
        }
    }
    Ok(set)
}

/// The job had finished at its final checkpoint: lets subtask 0 of every
/// sink redo its idempotent end-of-job step ([`Operator::on_already_finished`]).
///
/// [`Operator::on_already_finished`]: weir_core::operator::Operator::on_already_finished
fn finish_sinks(plan: &LogicalPlan, physical: &PhysicalPlan, config: &ExecConfig) -> Result<()> {
    let mut env = RuntimeEnv::try_with_spill(
        config.memory,
        config.spill_dir.as_deref(),
        config.spill_compression,
    )?;
    env.observer = config.observer.clone();
    env.shard = config.shard;
    for (id, node) in plan.nodes.iter().enumerate() {
        let crate::graph::NodeKind::Sink(factory) = &node.kind else {
            continue;
        };
        if !physical.is_live(id) {
            continue;
        }
        let info = weir_core::operator::TaskInfo {
            operator: node.name.clone(),
            subtask: 0,
            parallelism: physical.parallelism[id],
        };
        let metrics = std::sync::Arc::new(weir_core::operator::OperatorMetrics::with_subtasks(1));
        let mut ctx = weir_core::operator::Ctx::new(info.clone(), env.clone(), metrics);
        let mut sink = factory(&info)?;
        sink.open(&mut ctx)?;
        sink.on_already_finished(&mut ctx)?;
    }
    Ok(())
}

fn finished_metrics(config: &ExecConfig, stats: CheckpointStats) -> JobMetrics {
    JobMetrics {
        mode: config.mode,
        elapsed: std::time::Duration::ZERO,
        rows_in: 0,
        rows_out: 0,
        late_rows_out: 0,
        dead_letters_out: 0,
        late_rows: 0,
        bad_records: 0,
        spill_files: 0,
        spilled_bytes: 0,
        spilled_rows: 0,
        spilled_state_bytes: 0,
        peak_memory: 0,
        memory_budget: config.memory as u64,
        memory_reserved_at_end: 0,
        peak_rss: super::peak_rss(),
        latency: None,
        checkpoints: Some(stats),
        operators: Vec::new(),
    }
}
