//! Checkpoints: configuration, the coordinator that triggers and completes
//! them, and their on-disk store.
//!
//! Owns [`CheckpointConfig`], [`CheckpointStats`], the coordinator (used by
//! the pipelined executor) and [`store`]. May use `state`, `operator`,
//! `message`, `error`; used by `exec`. Operators only see `state`.
//!
//! ```text
//!  coordinator ──every interval: trigger(N)──► source subtasks: snapshot position, emit Barrier(N)
//!  Barrier(N) ──► operator subtask: block each input that delivered N until all have (aligned),
//!                 snapshot, forward Barrier(N), report Ack(N, state bytes)
//!  coordinator: write each state file as its Ack arrives; once every subtask acked (or had
//!               finished), write _manifest.json LAST (fsync + rename) ─► N is complete
//!               ─► publish the sink files staged for N ─► delete checkpoints beyond `retain`
//!  all subtasks finished ─► a final checkpoint (manifest `final: true`) publishes the rest
//! ```
//! Batch mode takes no checkpoints (as in Flink): a failed batch job is run
//! again; its stages' outputs are not kept between runs.

pub(crate) mod coordinator;
pub mod store;

use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use weir_core::message::CheckpointId;

/// Whether operators align barriers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointMode {
    /// Inputs that delivered a barrier wait for the others: state and
    /// output are consistent; with 2PC sinks, output is exactly once.
    ExactlyOnce,
    /// No alignment (no waiting): after a restore some rows are processed
    /// twice, so output is at least once.
    AtLeastOnce,
}

/// Which checkpoint a run starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreFrom {
    /// The newest valid checkpoint of this job, if there is one (restarting
    /// a job with the same checkpoint directory continues it).
    Auto,
    /// The newest valid checkpoint; an error if there is none.
    Latest,
    /// Checkpoint `id` of this job.
    Id(CheckpointId),
    /// A checkpoint or savepoint directory (`.../chk-00000007`), or another
    /// job's checkpoint root (its newest valid checkpoint).
    Path(PathBuf),
    /// Ignore existing checkpoints (new ones get higher ids).
    Fresh,
    /// A shard's own newest checkpoint if it has one, else the newest of
    /// each of the `N` shards of an earlier run at another shard count
    /// (`shards:N`, e.g. after stopping every shard with a savepoint): the
    /// key groups move with their state.
    Shards(usize),
}

impl std::str::FromStr for RestoreFrom {
    type Err = weir_core::error::Error;
    fn from_str(s: &str) -> weir_core::error::Result<Self> {
        Ok(match s {
            "latest" => RestoreFrom::Latest,
            "auto" => RestoreFrom::Auto,
            "none" | "fresh" => RestoreFrom::Fresh,
            _ if s.starts_with("shards:") => {
                let n = s["shards:".len()..].trim();
                match n.parse::<usize>() {
                    Ok(n) if n > 0 => RestoreFrom::Shards(n),
                    _ => {
                        return Err(weir_core::error::Error::option(
                            "restore",
                            format!(
                                "`{s}`: write shards:N with N the shard count of the run whose \
                                 checkpoints to restore, e.g. shards:2"
                            ),
                        ))
                    }
                }
            }
            _ => match s.parse::<CheckpointId>() {
                Ok(id) => RestoreFrom::Id(id),
                Err(_) => RestoreFrom::Path(PathBuf::from(s)),
            },
        })
    }
}

/// Checkpoint settings of a pipelined run.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use weir::checkpoint::CheckpointConfig;
/// let c = CheckpointConfig::new("/tmp/ckpt", "orders")
///     .with_interval(Duration::from_secs(1))
///     .with_retain(3);
/// assert_eq!(c.interval, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// `CHECKPOINT_DIR`; this job's checkpoints go to `dir/<job>/`.
    pub dir: PathBuf,
    /// The job's name (a directory name).
    pub job: String,
    /// Time from one checkpoint's completion to the next trigger.
    pub interval: Duration,
    /// Completed checkpoints to keep (savepoints are never deleted).
    pub retain: usize,
    /// Aligned (exactly once) or not (at least once).
    pub mode: CheckpointMode,
    /// Where to start from.
    pub restore: RestoreFrom,
    /// A checkpoint not complete after this long fails the job.
    pub timeout: Duration,
}

impl CheckpointConfig {
    /// Checkpoints of `job` under `dir`: every 10 s, keep 3, exactly once,
    /// continue from the newest valid checkpoint if there is one.
    pub fn new(dir: impl Into<PathBuf>, job: impl Into<String>) -> Self {
        CheckpointConfig {
            dir: dir.into(),
            job: job.into(),
            interval: Duration::from_secs(10),
            retain: 3,
            mode: CheckpointMode::ExactlyOnce,
            restore: RestoreFrom::Auto,
            timeout: Duration::from_secs(600),
        }
    }

    /// Sets the interval.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets how many completed checkpoints are kept (at least 1).
    pub fn with_retain(mut self, retain: usize) -> Self {
        self.retain = retain.max(1);
        self
    }

    /// Sets the mode.
    pub fn with_mode(mut self, mode: CheckpointMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets where the run starts from.
    pub fn with_restore(mut self, restore: RestoreFrom) -> Self {
        self.restore = restore;
        self
    }

    /// Sets the checkpoint timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What checkpointing did during a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CheckpointStats {
    /// Checkpoints completed (including the final one and savepoints).
    pub completed: u64,
    /// The checkpoint the run started from.
    pub restored_from: Option<CheckpointId>,
    /// Started from the checkpoints of another number of shards
    /// (`--restore shards:N`): `(old shard index, its checkpoint id)`.
    pub restored_from_shards: Vec<(usize, CheckpointId)>,
    /// The newest completed checkpoint.
    pub last_id: Option<CheckpointId>,
    /// Trigger to manifest of the newest, in milliseconds.
    pub last_duration_ms: f64,
    /// The longest trigger-to-manifest time, in milliseconds.
    pub max_duration_ms: f64,
    /// Median trigger-to-manifest time over this run's checkpoints, in
    /// milliseconds (0 if none completed).
    pub median_duration_ms: f64,
    /// State bytes of the newest.
    pub last_bytes: u64,
    /// The largest checkpoint's state bytes (the final checkpoint of a
    /// finished run is often small, so `last_bytes` understates it).
    pub max_bytes: u64,
    /// Every checkpoint's trigger-to-manifest time, in milliseconds, in order.
    pub durations_ms: Vec<f64>,
    /// Restarts by the restart strategy.
    pub restarts: u32,
    /// The savepoint the run stopped with, if it was asked to.
    pub savepoint: Option<PathBuf>,
    /// The job had already finished at the restored checkpoint: nothing ran.
    pub already_finished: bool,
    /// Checkpoints skipped on restore (corrupt or unreadable), with why.
    pub warnings: Vec<String>,
}

/// What to do when a checkpointed pipelined run fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartStrategy {
    /// Restarts allowed (0: fail at once).
    pub attempts: u32,
    /// Wait before the first restart; doubled for each one after.
    pub backoff: Duration,
}

impl Default for RestartStrategy {
    fn default() -> Self {
        RestartStrategy {
            attempts: 0,
            backoff: Duration::from_millis(500),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_names_parse_and_a_bad_shard_count_is_refused() {
        assert_eq!(
            "latest".parse::<RestoreFrom>().unwrap(),
            RestoreFrom::Latest
        );
        assert_eq!("7".parse::<RestoreFrom>().unwrap(), RestoreFrom::Id(7));
        assert_eq!(
            "shards:2".parse::<RestoreFrom>().unwrap(),
            RestoreFrom::Shards(2)
        );
        for bad in ["shards:0", "shards:", "shards:two"] {
            let e = bad.parse::<RestoreFrom>().unwrap_err().to_string();
            assert!(e.contains("shards:N") && e.contains(bad), "{bad}: {e}");
        }
    }
}
