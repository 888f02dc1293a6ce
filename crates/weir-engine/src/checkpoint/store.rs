//! The on-disk layout of checkpoints and the rules that keep it consistent.
//!
//! ```text
//!  CHECKPOINT_DIR/<job>/
//!    chk-00000007/                      one directory per checkpoint id
//!      n03-window.s1.state              one file per operator subtask (magic + postcard, Arrow IPC inside)
//!      _manifest.json                   written LAST: temp file, fsync, rename, fsync dir
//!    chk-00000008/                      no manifest yet: in progress or abandoned (ignored, removed later)
//!    .weir-lock                         held by the run using this directory (weir_core::lock)
//! ```
//! A checkpoint exists only once its manifest does. The manifest lists
//! every state file with its size and checksum and carries a checksum of
//! itself, so a truncated or damaged file makes that checkpoint invalid:
//! [`CheckpointStore::latest_valid`] then warns and falls back to the one
//! before. Completed checkpoints beyond the newest `retain` are deleted
//! (savepoints are kept).
//!
//! Nothing in a checkpoint is trusted to name files: the job name is one
//! plain path component, a publish is only `TARGET/.weir-staging/[P/]NAME` →
//! `TARGET/[P/]NAME` for a file sink of the running job, `P` a partition
//! path `k=v/…` ([`Publish::check`]),
//! and retention deletes only `chk-NNNNNNNN` directories of this job, and
//! in them only the files weir writes there.
//!
//! May use `state`, `message`, `error`, `paths`.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use weir_core::error::{Error, Result};
use weir_core::message::CheckpointId;
use weir_core::state::{checksum, SubtaskState};

/// The manifest file name inside a checkpoint directory.
pub const MANIFEST: &str = "_manifest.json";

/// One state file of one subtask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// The subtask index.
    pub subtask: usize,
    /// File name inside the checkpoint directory.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// FNV-1a checksum of its contents.
    pub checksum: u64,
}

/// The saved state of one operator (plan node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorEntry {
    /// The operator's name in the plan.
    pub name: String,
    /// Its parallelism when the checkpoint was taken.
    pub parallelism: usize,
    /// What it computes (stateful operators and sources with event time):
    /// a restore refuses state whose definition differs from the job's.
    #[serde(default)]
    pub definition: Option<String>,
    /// One file per subtask, in subtask order.
    pub files: Vec<StateFile>,
}

/// A staged sink file to publish when the checkpoint completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// The staged file.
    pub from: PathBuf,
    /// Where it becomes visible.
    pub to: PathBuf,
}

impl Publish {
    /// Checks that this rename is one a file sink of this job asks for:
    /// `from` is `T/.weir-staging/[P/]NAME` and `to` is `T/[P/]NAME` (`P` a
    /// partition path `k=v/…`) for one of the
    /// canonical sink `targets` `T`, after canonicalising both. A crafted
    /// checkpoint can therefore never move a file anywhere else.
    pub fn check(&self, targets: &[PathBuf]) -> Result<()> {
        let refuse = |why: String| Error::UnsafePath {
            path: self.to.clone(),
            message: format!(
                "the checkpoint asks to rename {} to {}, but {why}",
                self.from.display(),
                self.to.display()
            ),
        };
        let name = match (self.from.file_name(), self.to.file_name()) {
            (Some(a), Some(b)) if a == b => a.to_string_lossy().into_owned(),
            _ => return Err(refuse("a publish keeps the file's name".into())),
        };
        weir_core::paths::check_component("publish", &name).map_err(|e| refuse(e.to_string()))?;
        if name.starts_with('.') {
            return Err(refuse("a published file is never hidden".into()));
        }
        let parent = |p: &Path| -> Result<PathBuf> {
            weir_core::paths::canonical(p.parent().unwrap_or(Path::new(".")))
        };
        let (from_dir, to_dir) = (parent(&self.from)?, parent(&self.to)?);
        // into T itself, or into a partition directory T/k=v/… of a partitioned sink
        let ok = targets.iter().any(|t| {
            let staging = t.join(weir_core::state::PUBLISH_STAGING);
            match (to_dir.strip_prefix(t), from_dir.strip_prefix(&staging)) {
                (Ok(to), Ok(from)) if to == from => {
                    to.as_os_str().is_empty() || weir_core::paths::is_partition_path(to)
                }
                _ => false,
            }
        });
        if ok {
            return Ok(());
        }
        let shown: Vec<String> = targets.iter().map(|t| t.display().to_string()).collect();
        Err(refuse(format!(
            "checkpoints only publish from a file sink's staging directory \
             (TARGET/{}/) into its target, and this job's file sinks write [{}]",
            weir_core::state::PUBLISH_STAGING,
            shown.join(", ")
        )))
    }

    /// Renames `from` to `to` unless that already happened (idempotent, so
    /// a restore can run it again after a crash in the middle). Call
    /// [`check`](Self::check) first.
    pub fn apply(&self) -> Result<()> {
        if self.from.exists() {
            // another file of this name was published before: never replaced
            if self.to.exists() && self.from.exists() {
                return Err(Error::UnsafePath {
                    path: self.to.clone(),
                    message: format!(
                        "publishing {} would replace this part, which weir published \
                         earlier (checkpoint ids started over while the output kept its \
                         parts: keep the checkpoint directory with the output, or write \
                         to a new output)",
                        self.from.display()
                    ),
                });
            }
            if let Some(dir) = self.to.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            match std::fs::rename(&self.from, &self.to) {
                // shards restoring the same old checkpoint publish its files together
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.to.exists() => {
                    return Ok(())
                }
                r => r.map_err(|e| Error::io(&self.to, e))?,
            }
            if let Some(dir) = self.to.parent() {
                sync_dir(dir)?;
            }
            Ok(())
        } else if self.to.exists() {
            Ok(())
        } else {
            Err(Error::Checkpoint {
                location: self.to.display().to_string(),
                message: format!(
                    "staged file {} is gone and was never published",
                    self.from.display()
                ),
            })
        }
    }
}

/// The manifest format this weir writes and reads.
pub const MANIFEST_VERSION: u32 = 2;

/// What a checkpoint holds; written last, as the commit point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// The job's name.
    pub job: String,
    /// The checkpoint id.
    pub id: CheckpointId,
    /// Wall-clock time it completed (epoch ms).
    pub completed_ms: i64,
    /// A savepoint (taken on request, never deleted by retention).
    pub savepoint: bool,
    /// Every task had finished: the job's output is complete.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Per operator.
    pub operators: Vec<OperatorEntry>,
    /// Sink files published by this checkpoint.
    pub publish: Vec<Publish>,
    /// FNV-1a checksum of the manifest's compact JSON with this field 0
    /// (set by [`CheckpointStore::complete`], verified by [`CheckpointStore::load`]).
    #[serde(default)]
    pub checksum: u64,
}

impl Manifest {
    /// The checksum this manifest should carry.
    pub fn compute_checksum(&self) -> u64 {
        let mut zeroed = self.clone();
        zeroed.checksum = 0;
        checksum(&serde_json::to_vec(&zeroed).expect("a manifest serializes"))
    }

    /// Total bytes of state files.
    pub fn state_bytes(&self) -> u64 {
        self.operators
            .iter()
            .flat_map(|o| &o.files)
            .map(|f| f.bytes)
            .sum()
    }
}

/// A loaded, verified checkpoint: its manifest and the bytes of its state
/// files (read once, when they were verified).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    // state: verified file contents by file name, taken as they are decoded
    files: std::collections::HashMap<String, Vec<u8>>,
}

impl Loaded {
    /// Decodes the state of every subtask of operator `name` (old
    /// parallelism = length), or `None` if the checkpoint has no entry for
    /// it. The file bytes are released as they are decoded.
    pub fn take_operator_states(&mut self, name: &str) -> Result<Option<Vec<SubtaskState>>> {
        let Some(op) = self.manifest.operators.iter().find(|o| o.name == name) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(op.files.len());
        for f in &op.files {
            let path = self.dir.join(&f.file);
            let bytes = self
                .files
                .remove(&f.file)
                .ok_or_else(|| Error::Checkpoint {
                    location: path.display().to_string(),
                    message: "state file already taken".into(),
                })?;
            let state = SubtaskState::decode(&bytes).map_err(|e| Error::Checkpoint {
                location: path.display().to_string(),
                message: e.to_string(),
            })?;
            out.push(state);
        }
        Ok(Some(out))
    }
}

/// The checkpoints of one job in one directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    // config
    root: PathBuf,
    job: String,
}

impl CheckpointStore {
    /// The store for `job` under `dir` (created if missing). `job` must be
    /// one plain directory name (no `/`, not `..`).
    pub fn try_new(dir: &Path, job: &str) -> Result<Self> {
        let store = Self::existing(dir, job)?;
        std::fs::create_dir_all(&store.root).map_err(|e| Error::io(&store.root, e))?;
        Ok(store)
    }

    /// The store for `job` under `dir`, without creating anything (to read
    /// another job's checkpoints).
    pub fn existing(dir: &Path, job: &str) -> Result<Self> {
        weir_core::paths::check_component("checkpoint job name", job)?;
        Ok(CheckpointStore {
            root: dir.join(job),
            job: job.to_string(),
        })
    }

    /// `CHECKPOINT_DIR/<job>`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The job's name.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The directory of checkpoint `id`.
    pub fn dir_of(&self, id: CheckpointId) -> PathBuf {
        self.root.join(format!("chk-{id:08}"))
    }

    /// Every checkpoint id on disk (complete or not, named exactly
    /// `chk-NNNNNNNN`, whatever the entry is), ascending. Only real
    /// directories among them are read or deleted ([`Self::is_checkpoint_dir`]).
    pub fn ids_on_disk(&self) -> Result<Vec<CheckpointId>> {
        let mut ids = Vec::new();
        let entries = std::fs::read_dir(&self.root).map_err(|e| Error::io(&self.root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.root, e))?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<CheckpointId>().ok())
            else {
                continue;
            };
            // exactly the name weir gives (whatever it is: new ids go above it)
            if self.dir_of(id).file_name() == Some(name.as_os_str()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// True if checkpoint `id`'s path is a real directory (not a link).
    pub fn is_checkpoint_dir(&self, id: CheckpointId) -> bool {
        std::fs::symlink_metadata(self.dir_of(id)).is_ok_and(|m| m.file_type().is_dir())
    }

    /// Creates the directory for checkpoint `id`, which must not exist.
    pub fn begin(&self, id: CheckpointId) -> Result<PathBuf> {
        let dir = self.dir_of(id);
        std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }

    /// Writes one subtask's state of checkpoint `id` (fsynced).
    pub fn write_state(
        &self,
        id: CheckpointId,
        node: usize,
        name: &str,
        subtask: usize,
        bytes: &[u8],
    ) -> Result<StateFile> {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let file = format!("n{node:02}-{safe}.s{subtask}.state");
        let path = self.dir_of(id).join(&file);
        write_synced(&path, bytes)?;
        Ok(StateFile {
            subtask,
            file,
            bytes: bytes.len() as u64,
            checksum: checksum(bytes),
        })
    }

    /// Makes checkpoint `manifest.id` complete: writes its manifest
    /// atomically (temp file, fsync, rename, fsync of the directory).
    pub fn complete(&self, manifest: &Manifest) -> Result<PathBuf> {
        let dir = self.dir_of(manifest.id);
        let mut manifest = manifest.clone();
        manifest.version = MANIFEST_VERSION;
        manifest.checksum = manifest.compute_checksum();
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Checkpoint {
            location: dir.display().to_string(),
            message: format!("manifest: {e}"),
        })?;
        let tmp = dir.join(MANIFEST_TMP);
        write_synced(&tmp, &text)?;
        let path = dir.join(MANIFEST);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(&dir)?;
        Ok(dir)
    }

    /// Reads and verifies the checkpoint in `dir`: its manifest parses and
    /// every state file has the recorded size and checksum.
    pub fn load(dir: &Path) -> Result<Loaded> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| Error::Checkpoint {
            location: path.display().to_string(),
            message: format!("unreadable manifest: {e}"),
        })?;
        if manifest.version != MANIFEST_VERSION {
            return Err(Error::Checkpoint {
                location: path.display().to_string(),
                message: format!(
                    "manifest version {} (this weir reads {MANIFEST_VERSION}); start over with \
                     `--restore fresh`",
                    manifest.version
                ),
            });
        }
        if manifest.checksum != manifest.compute_checksum() {
            return Err(Error::Checkpoint {
                location: path.display().to_string(),
                message: "corrupt manifest: its checksum does not match its contents".into(),
            });
        }
        let mut files = std::collections::HashMap::new();
        for f in manifest.operators.iter().flat_map(|o| &o.files) {
            if !is_state_file(&f.file) {
                return Err(Error::Checkpoint {
                    location: path.display().to_string(),
                    message: format!("`{}` is not a state file name", f.file),
                });
            }
            let p = dir.join(&f.file);
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            if bytes.len() as u64 != f.bytes || checksum(&bytes) != f.checksum {
                return Err(Error::Checkpoint {
                    location: p.display().to_string(),
                    message: format!(
                        "corrupt state file: {} bytes (expected {}), checksum {}",
                        bytes.len(),
                        f.bytes,
                        if checksum(&bytes) == f.checksum {
                            "ok"
                        } else {
                            "wrong"
                        }
                    ),
                });
            }
            files.insert(f.file.clone(), bytes);
        }
        Ok(Loaded {
            dir: dir.to_path_buf(),
            manifest,
            files,
        })
    }

    /// The newest complete checkpoint that verifies. Newer ones that do not
    /// (truncated file, bad manifest) are skipped; each skip is returned as
    /// a warning naming the checkpoint and the problem.
    pub fn latest_valid(&self) -> Result<(Option<Loaded>, Vec<String>)> {
        let mut warnings = Vec::new();
        for id in self.ids_on_disk()?.into_iter().rev() {
            let dir = self.dir_of(id);
            if !self.is_checkpoint_dir(id) || !dir.join(MANIFEST).exists() {
                continue; // never completed, or not weir's
            }
            match Self::load(&dir) {
                Ok(loaded) => return Ok((Some(loaded), warnings)),
                Err(e) => warnings.push(format!(
                    "skipping checkpoint {id} ({}): {e}; using the previous one",
                    dir.display()
                )),
            }
        }
        Ok((None, warnings))
    }

    /// Deletes completed checkpoints older than the newest `retain`
    /// (savepoints excepted) and unfinished ones older than the newest
    /// complete checkpoint: only directories of this job (a manifest naming
    /// another job is left alone), and in them only the files weir writes
    /// (state files, the manifest); a directory holding anything else is
    /// kept with the other files, and a warning is returned for it.
    pub fn retain(&self, retain: usize) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        let mut ids = self.ids_on_disk()?;
        ids.retain(|&id| self.is_checkpoint_dir(id));
        let complete: Vec<CheckpointId> = ids
            .iter()
            .copied()
            .filter(|&id| self.dir_of(id).join(MANIFEST).exists())
            .collect();
        let Some(&newest) = complete.last() else {
            return Ok(warnings);
        };
        let keep_from = complete
            .len()
            .checked_sub(retain.max(1))
            .map_or(0, |i| complete[i]);
        for id in ids {
            let dir = self.dir_of(id);
            let done = dir.join(MANIFEST).exists();
            let drop = if done { id < keep_from } else { id < newest };
            let manifest = done.then(|| read_manifest(&dir)).flatten();
            let ours = !done || manifest.as_ref().is_some_and(|m| m.job == self.job);
            let savepoint = manifest.as_ref().is_some_and(|m| m.savepoint);
            if drop && ours && !savepoint {
                let left = remove_checkpoint_dir(&dir)?;
                if !left.is_empty() {
                    warnings.push(format!(
                        "kept {} after retention: it holds files weir did not write ({})",
                        dir.display(),
                        left.join(", ")
                    ));
                }
            }
        }
        Ok(warnings)
    }
}

/// The manifest in `dir`, if it parses.
fn read_manifest(dir: &Path) -> Option<Manifest> {
    std::fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_slice::<Manifest>(&t).ok())
}

/// A state file name as [`CheckpointStore::write_state`] writes it:
/// `nNN-NAME.sS.state` with NAME of ASCII letters, digits, `_` and `-`.
fn is_state_file(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix('n')
        .and_then(|n| n.strip_suffix(".state"))
    else {
        return false;
    };
    let Some((head, subtask)) = rest.rsplit_once(".s") else {
        return false;
    };
    let Some((node, op)) = head.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(node)
        && digits(subtask)
        && op
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Deletes weir's files in a checkpoint directory, then the directory if
/// nothing else is there; returns the names of what was left.
fn remove_checkpoint_dir(dir: &Path) -> Result<Vec<String>> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = entry.file_type().is_ok_and(|t| t.is_file());
        let ours = is_state_file(&name) || name == MANIFEST || name == MANIFEST_TMP;
        if file && ours {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        } else {
            left.push(name);
        }
    }
    if left.is_empty() {
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    left.sort();
    Ok(left)
}

/// The manifest's temporary name while it is written.
const MANIFEST_TMP: &str = "_manifest.json.tmp";

/// Writes `bytes` to `path` and fsyncs the file.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Fsyncs a directory so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests;
