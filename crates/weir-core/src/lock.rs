//! Exclusive locks held for the life of a run: one run per checkpoint
//! directory and per output, and the liveness test for leftovers of dead runs.
//!
//! ```text
//!  LockFile::try_acquire(path)
//!     open path (create, 0600, never through a symlink) ─► flock(EXCLUSIVE | NONBLOCK)
//!       held ─► Error::InUse naming path and the holder's PID (read from the file)
//!       got it ─► path still names this inode? no: a holder unlinked it while
//!                 releasing ─► retry; yes ─► write "PID\n" ─► LockFile
//!  drop ─► unlink path (still locked, so nobody takes a doomed inode) ─► close (unlock)
//! ```
//! The kernel releases a flock when its holder dies, SIGKILL included, so
//! a lock never outlives its run and the file a killed run left behind is
//! simply taken over. Where locks live:
//!
//! - [`for_output`]: `PARENT/.NAME.weir-lock` beside an output `PARENT/NAME`
//!   (a file or a directory), so locking never creates the output itself.
//! - [`for_dir`]: `DIR/.weir-lock` inside a directory weir owns (a job's
//!   checkpoint directory, a spill directory).
//!
//! Locks are advisory and per host: two machines writing one target over a
//! network file system must use distinct targets or names (a lock file name
//! can carry a suffix, see [`for_output_named`]).
//!
//! Owns [`LockFile`]. May use `crate::error`, `crate::shard` and std only.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file guarding output `target` (a file or directory):
/// `.NAME.weir-lock` beside it.
pub fn for_output(target: &Path) -> PathBuf {
    for_output_named(target, "weir-lock")
}

/// The lock file `.NAME.<suffix>` beside output `target`, for writers that
/// share one target and need one lock each (a suffix such as
/// `weir-lock-shard-3-of-4`).
pub fn for_output_named(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!(".{name}.{suffix}"))
}

/// Takes the lock of a writer of output `target` (canonical): one process's
/// `.NAME.weir-lock`, or shard I of N's `.NAME.weir-lock-shard-I-of-N` (the
/// shards of one run share a target). Then, holding it, fails with
/// [`Error::InUse`] if a writer that must not write beside this one holds
/// its own: a run as one process beside a shard, or shards of two counts
/// (both checking after taking their own, at least one of two racing runs
/// sees the other).
pub fn for_writer(
    target: &Path,
    what: &str,
    shard: Option<crate::shard::Shard>,
) -> Result<LockFile> {
    let lock = match shard {
        Some(s) => for_output_named(target, &format!("weir-lock-{}", s.tag())),
        None => for_output(target),
    };
    let held = LockFile::try_acquire(&lock, what)?;
    if let Some((other, who)) = other_writer(target, shard)? {
        return Err(Error::InUse {
            what: format!("{what} ({who} writes it)"),
            holder: holder_of(&other),
            path: other,
        });
    }
    Ok(held)
}

/// A live lock on `target` of a writer that must not write beside `shard`
/// (or one process): its path and who it is.
fn other_writer(
    target: &Path,
    shard: Option<crate::shard::Shard>,
) -> Result<Option<(PathBuf, String)>> {
    let one_process = for_output(target);
    let Some(parent) = one_process.parent() else {
        return Ok(None);
    };
    if shard.is_some() && is_held(&one_process) {
        return Ok(Some((one_process, "a run as one process".into())));
    }
    let prefix = format!(
        ".{}.weir-lock-shard-",
        target
            .file_name()
            .map_or("out".into(), |n| n.to_string_lossy())
    );
    let entries = match std::fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(parent, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(parent, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(tag) = name.strip_prefix(&prefix) else {
            continue;
        };
        let count = tag
            .rsplit_once("-of-")
            .and_then(|(_, n)| n.parse::<usize>().ok());
        let conflicts = shard.is_none_or(|s| count != Some(s.count()));
        if conflicts && is_held(&entry.path()) {
            let who = match count {
                Some(n) => format!("a run as {n} shards"),
                None => "another shard".into(),
            };
            return Ok(Some((entry.path(), who)));
        }
    }
    Ok(None)
}

/// The lock file of a directory weir owns: `DIR/.weir-lock`.
pub fn for_dir(dir: &Path) -> PathBuf {
    dir.join(".weir-lock")
}

/// An exclusive lock on a lock file, held until dropped (or the process dies).
#[derive(Debug)]
pub struct LockFile {
    // config
    path: PathBuf,
    // resources
    file: Option<File>,
    /// Directories created to hold the lock file, deepest first (removed
    /// with it when empty).
    created_dirs: Vec<PathBuf>,
}

impl LockFile {
    /// Takes the lock at `path` (created if missing, with its missing
    /// parent directories) at once or fails: `what` (e.g. "checkpoint
    /// directory ckpt/job") and the holder's PID are named in the
    /// [`Error::InUse`].
    pub fn try_acquire(path: &Path, what: &str) -> Result<LockFile> {
        let mut created_dirs = Vec::new();
        let mut d = path.parent();
        while let Some(p) = d.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
            created_dirs.push(p.to_path_buf());
            d = p.parent();
        }
        if let Some(parent) = created_dirs.first() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut lock = LockFile {
            path: path.to_path_buf(),
            file: None,
            created_dirs,
        };
        lock.file = Some(Self::lock(path, what)?);
        Ok(lock)
    }

    fn lock(path: &Path, what: &str) -> Result<File> {
        for _ in 0..100 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::InUse {
                        what: what.to_string(),
                        path: path.to_path_buf(),
                        holder: holder_of(path),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(path, e)),
            }
            // a releasing holder unlinks the file while locked: ours may be that
            // doomed inode, and a newcomer may have locked a new file at `path`
            let same = match (file.metadata(), std::fs::symlink_metadata(path)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if !same {
                continue;
            }
            file.set_len(0).map_err(|e| Error::io(path, e))?;
            file.write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(|e| Error::io(path, e))?;
            return Ok(file);
        }
        Err(Error::InUse {
            what: what.to_string(),
            path: path.to_path_buf(),
            holder: "a run that keeps replacing its lock file".into(),
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // unlink while still holding the lock, then unlock by closing
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
        drop(self.file.take());
        for d in &self.created_dirs {
            let _ = std::fs::remove_dir(d); // only if still empty
        }
    }
}

/// True if a live process holds the lock at `path`; false if nobody does
/// (the file is missing, or its holder died). Used to tell a running
/// run's directories from a dead run's leftovers.
pub fn is_held(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => false, // released when `file` closes
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => true, // cannot tell: treat as alive
    }
}

/// "PID n" as written in the lock file, retried briefly while the new
/// holder is writing it.
fn holder_of(path: &Path) -> String {
    for _ in 0..20 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse::<u32>() {
                return format!("PID {pid}");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    "PID unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_holder_and_a_dropped_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = for_dir(dir.path());
        let held = LockFile::try_acquire(&path, "test dir").unwrap();
        assert!(is_held(&path));
        let e = LockFile::try_acquire(&path, "test dir")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("PID {}", std::process::id())) && e.contains("test dir"),
            "{e}"
        );
        drop(held);
        assert!(!path.exists(), "the lock file goes with the lock");
        assert!(!is_held(&path));
        let again = LockFile::try_acquire(&path, "test dir").unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn a_leftover_lock_file_is_taken_over_and_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = for_output(&dir.path().join("out.parquet"));
        assert!(path.ends_with(".out.parquet.weir-lock"));
        std::fs::write(&path, b"999999\n").unwrap(); // a dead run's file
        assert!(!is_held(&path));
        drop(LockFile::try_acquire(&path, "output").unwrap());
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(LockFile::try_acquire(&path, "output").is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }
}
