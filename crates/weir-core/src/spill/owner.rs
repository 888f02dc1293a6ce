//! Who owns a spill directory, and removing the ones dead runs left.
//!
//! ```text
//!  SpillManager::try_new(parent)
//!    parent/weir-spill-XXXXXX/ (0700)      created by tempfile; holds spill files only
//!    parent/.weir-spill-XXXXXX.lock.new (0600) ─► flock ─► rename to
//!    parent/.weir-spill-XXXXXX.lock        (so it appears already locked)
//!    every weir-spill-* in parent: a real directory of ours whose lock file
//!      nobody holds (its run died, e.g. SIGKILL) ─► removed, with the lock file
//!  drop: the directory goes, then the lock file is unlinked and unlocked
//! ```
//! A directory without a lock file (another program's, or one being set
//! up) is never touched, and a live run's lock is held, so only dead runs'
//! directories go. May use `crate::error`, `crate::lock` and std.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The prefix of every spill directory.
pub(super) const PREFIX: &str = "weir-spill-";

/// The lock file of spill directory `dir`: `.NAME.lock` beside it.
fn lock_path(dir: &Path) -> PathBuf {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    dir.with_file_name(format!(".{name}.lock"))
}

/// The lock of a live spill directory; unlinked (then unlocked) on drop.
#[derive(Debug)]
pub(super) struct DirLock {
    path: PathBuf,
    _file: File,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates the lock file of `dir` already locked (locked under a temporary
/// name, then renamed), so no other run ever sees it unlocked while `dir` lives.
pub(super) fn lock(dir: &Path) -> Result<DirLock> {
    let path = lock_path(dir);
    let tmp = path.with_extension("lock.new");
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    file.try_lock().map_err(|e| Error::io(&tmp, e.into()))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(DirLock { path, _file: file })
}

/// Removes the spill directories in `parent` that dead runs of this user
/// left; returns how many.
pub(super) fn remove_leftovers(parent: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = entry.path();
        let ours =
            std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_dir() && m.uid() == uid);
        let lock = lock_path(&dir);
        let lock_file = std::fs::symlink_metadata(&lock).is_ok_and(|m| m.file_type().is_file());
        if ours
            && lock_file
            && !crate::lock::is_held(&lock)
            && std::fs::remove_dir_all(&dir).is_ok()
        {
            let _ = std::fs::remove_file(&lock);
            removed += 1;
        }
    }
    removed
}
