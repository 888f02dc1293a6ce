//! Two-phase commit of sink output: the [`PendingCommit`] a sink stages and
//! the job's [`CommitLog`], which publishes everything staged only when the
//! whole job succeeded (or a checkpoint takes it over).
//!
//! May use `error`.

use crate::error::Result;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Output staged by a sink that becomes visible only when the job succeeds.
///
/// Dropping it without calling `commit` must discard the staged output.
pub trait PendingCommit: Send {
    /// Publishes the staged output (e.g. an atomic rename).
    fn commit(self: Box<Self>) -> Result<()>;

    /// Commits with a higher phase run after all lower ones (e.g. moving a
    /// directory after the files inside it were finished).
    fn phase(&self) -> u8 {
        0
    }
}

/// Pending sink output of a job: committed all together when every task
/// succeeded, discarded (by dropping) otherwise.
pub struct CommitLog {
    // config
    run: u64,
    // state
    pending: Mutex<Vec<Box<dyn PendingCommit>>>,
    keys: Mutex<std::collections::HashSet<String>>,
    by_checkpoint: Mutex<Vec<(crate::message::CheckpointId, Box<dyn PendingCommit>)>>,
}

impl Default for CommitLog {
    fn default() -> Self {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        CommitLog {
            run: RUNS.fetch_add(1, Ordering::Relaxed),
            pending: Mutex::default(),
            keys: Mutex::default(),
            by_checkpoint: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for CommitLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLog")
            .field("pending", &self.len())
            .finish()
    }
}

impl CommitLog {
    /// Adds staged output to publish on success.
    pub fn stage(&self, commit: Box<dyn PendingCommit>) {
        self.lock().push(commit);
    }

    /// Stages `commit` unless something was already staged under `key` in
    /// this run (for per-output actions shared by several subtasks).
    pub fn stage_once(&self, key: &str, commit: impl FnOnce() -> Box<dyn PendingCommit>) {
        let first = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string());
        if first {
            self.stage(commit());
        }
    }

    /// A number unique to this run in this process (for staging names).
    pub fn run_id(&self) -> u64 {
        self.run
    }

    /// Adds output to publish when checkpoint `id` completes (in-memory
    /// sinks; file sinks list their files with `StateWriter::publish`).
    pub fn stage_for(&self, id: crate::message::CheckpointId, commit: Box<dyn PendingCommit>) {
        self.by_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, commit));
    }

    /// Publishes everything staged for checkpoints up to `id`, in order.
    pub fn commit_upto(&self, id: crate::message::CheckpointId) -> Result<()> {
        let due: Vec<Box<dyn PendingCommit>> = {
            let mut all = self.by_checkpoint.lock().unwrap_or_else(|e| e.into_inner());
            let (due, later): (Vec<_>, Vec<_>) = all.drain(..).partition(|(c, _)| *c <= id);
            *all = later;
            due.into_iter().map(|(_, c)| c).collect()
        };
        for c in due {
            c.commit()?;
        }
        Ok(())
    }

    /// Number of staged items.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True if nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes everything staged, by phase, then in staging order.
    pub fn commit_all(&self) -> Result<()> {
        let mut pending = std::mem::take(&mut *self.lock());
        pending.sort_by_key(|p| p.phase());
        for p in pending {
            p.commit()?;
        }
        Ok(())
    }

    /// Discards everything staged.
    pub fn abort_all(&self) {
        self.lock().clear();
        self.by_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn PendingCommit>>> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
