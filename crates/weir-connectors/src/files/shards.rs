//! A directory target that several shards write (`--shard I/N`): each
//! shard replaces only its own parts, and says so with its own marker.
//!
//! ```text
//!  prepare (once per run, holding .NAME.weir-lock-shard-I-of-N):
//!     NAME/ created and marked; refused if it holds another run's kind of parts
//!     (one process's, or another shard count's); this shard's staging leftovers removed
//!  subtasks write NAME/.weir-staging/inprogress-shard-I-of-N-PID-RUN-S-SEQ.EXT
//!  commit (the run succeeded):
//!     .weir-shard-I-of-N removed ─► this shard's old parts removed ─► its new parts renamed
//!     to part-shard-I-of-N-SSSSS.EXT (-rKKKKK with a rolling policy: in sequence order)
//!     ─► .weir-shard-I-of-N written (JSON: its parts)
//!  checkpointed runs publish parts per checkpoint (part-shard-I-of-N-C-S[-rK].EXT) and write
//!  the marker when the run ends
//! ```
//! A shard killed mid-commit leaves no marker: `target_status` then names it
//! as missing, and its next run replaces its parts. May use `target`,
//! `rolling` and `weir_core`.

use super::target::{self, shard_tag};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use weir_core::error::{Error, Result};
use weir_core::message::CheckpointId;
use weir_core::operator::PendingCommit;
use weir_core::shard::Shard;
use weir_core::state::ShardOrigin;

/// The names in `dir`, sorted (none if it does not exist).
fn names(dir: &Path) -> Result<Vec<String>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    Ok(target::entries(dir)?.into_iter().map(|(n, _)| n).collect())
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Before shard `shard` writes into `dir` (once per run): creates and marks
/// it, refuses parts of another kind of run, removes this shard's staging
/// leftovers; a checkpointed run (`Some(restored)`) also removes its marker
/// and the parts no checkpoint up to `restored` published.
pub(crate) fn prepare(
    dir: &Path,
    shard: Shard,
    checkpointed: Option<Option<CheckpointId>>,
    adopting: &[ShardOrigin],
) -> Result<()> {
    super::create_dirs(dir)?;
    target::check_dir(dir)?;
    target::mark(dir)?;
    if !adopting.is_empty() {
        adopt(dir, shard, adopting)?;
    } else {
        drop_stale_record(dir, shard)?;
    }
    // parts of another count are this run's only when it continues the run
    // that adopted them (restoring its own checkpoint, or adopting them now)
    let adopted = match checkpointed {
        Some(Some(_)) => read_adopted(dir, shard.count())?,
        _ if !adopting.is_empty() => read_adopted(dir, shard.count())?,
        _ => Vec::new(),
    };
    let mine = Some((shard.index(), shard.count()));
    for name in names(dir)? {
        let other = match (target::part_shard(&name), target::shard_marker(&name)) {
            _ if adopted.contains(&name) => None,
            (Some(None), _) => Some("a run as one process".to_string()),
            (Some(Some((_, n))), _) | (None, Some((_, n))) if n != shard.count() => {
                Some(format!("a run as {n} shards"))
            }
            _ => None,
        };
        if let Some(other) = other {
            return Err(Error::UnsafePath {
                path: dir.join(&name),
                message: format!(
                    "the output directory {} holds the output of {other}; shard {shard} of a \
                     run as {} shards would mix its rows with it: remove the directory (weir \
                     wrote all of it) or choose another output path",
                    dir.display(),
                    shard.count()
                ),
            });
        }
    }
    let staging = dir.join(target::CHECKPOINT_STAGING);
    for name in names(&staging)? {
        let own_leftover = target::inprogress_shard(&name) == Some(mine)
            || (checkpointed.is_some() && target::part_shard(&name) == Some(mine));
        if own_leftover {
            remove(&staging.join(&name))?;
        }
    }
    if let Some(restored) = checkpointed {
        remove(&dir.join(target::shard_marker_name(shard)))?;
        for name in names(dir)? {
            // parts of this tag that an earlier count's run wrote were adopted, not written
            if target::part_shard(&name) != Some(mine) || adopted.contains(&name) {
                continue;
            }
            let stale = match (target::part_checkpoint(&name), restored) {
                (Some(id), Some(r)) => id > r,
                (_, None) => true,
                (None, Some(_)) => false,
            };
            if stale {
                remove(&dir.join(&name))?;
            }
        }
    }
    Ok(())
}

/// `.weir-adopted` of `dir`, if there is one.
///
/// # Errors
///
/// An unreadable record, naming it.
fn read_record(dir: &Path) -> Result<Option<Adopted>> {
    let path = dir.join(target::ADOPTED);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::UnsafePath {
            path: path.clone(),
            message: format!("weir's record of adopted parts is unreadable: {e}"),
        })
}

/// What `.weir-adopted` says: the parts of earlier shard counts that the
/// `count` shards writing `dir` took over (none if it is missing or names
/// another count).
fn read_adopted(dir: &Path, count: usize) -> Result<Vec<String>> {
    Ok(read_record(dir)?
        .filter(|r| r.shards == count)
        .map_or_else(Vec::new, |r| r.parts))
}

/// Removes a `.weir-adopted` left by shards of another count that never
/// published a part (a rescale that failed before its first checkpoint,
/// after which the old count went on): it no longer describes the target.
fn drop_stale_record(dir: &Path, shard: Shard) -> Result<()> {
    let Some(record) = read_record(dir).ok().flatten() else {
        return Ok(());
    };
    let wrote = names(dir)?.iter().any(|n| {
        matches!(target::part_shard(n), Some(Some((_, c))) if c == record.shards)
            || matches!(target::shard_marker(n), Some((_, c)) if c == record.shards)
    });
    if record.shards != shard.count() && !wrote {
        remove(&dir.join(target::ADOPTED))?;
    }
    Ok(())
}

/// `.weir-adopted`: the parts the `shards` shards took over.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Adopted {
    weir_adopted: u32,
    /// The shard count that adopted them (writes the target now).
    shards: usize,
    /// The shard count whose checkpoints it restored.
    from: usize,
    /// Part names, sorted.
    parts: Vec<String>,
}

/// Shard `shard` restores the checkpoints `old` of every shard of an
/// earlier count (`--restore shards:N`): what those checkpoints published
/// stays as output, adopted by the new count; parts an old shard published
/// after the restored checkpoint, and the old shards' markers, are
/// removed. Every new shard computes the same record from the same names,
/// so they may adopt at the same time.
///
/// ```text
///  part-shard-0-of-2-00000007-00000.parquet  old 0/2 restored at 7: adopted
///  part-shard-0-of-2-00000009-00000.parquet  published after 7: removed (read again)
///  .weir-shard-0-of-2                        removed: the target is 3 shards' now
/// ```
fn adopt(dir: &Path, shard: Shard, old: &[ShardOrigin]) -> Result<()> {
    let from = old[0].shard.count();
    let restored = |i: usize| {
        old.iter()
            .find(|o| o.shard.index() == i)
            .map(|o| o.checkpoint)
    };
    let mut parts = read_adopted(dir, from)?; // what the old count had adopted
    parts.extend(read_adopted(dir, shard.count())?); // another new shard was first
    for name in names(dir)? {
        if let Some((_, n)) = target::shard_marker(&name) {
            if n == from {
                remove(&dir.join(&name))?;
            }
            continue;
        }
        let Some(Some((i, n))) = target::part_shard(&name) else {
            continue;
        };
        if n != from || parts.contains(&name) {
            continue;
        }
        match (target::part_checkpoint(&name), restored(i)) {
            (Some(c), Some(r)) if c <= r => parts.push(name),
            (Some(_), Some(_)) => remove(&dir.join(&name))?,
            _ => {
                return Err(Error::UnsafePath {
                    path: dir.join(&name),
                    message: format!(
                        "shard {} of {} restores the checkpoints of {from} shards, but this \
                         part was not published by one of them (a run without checkpoints \
                         wrote it): remove the directory (weir wrote all of it) or choose \
                         another output path",
                        shard.index(),
                        shard.count()
                    ),
                })
            }
        }
    }
    parts.sort();
    parts.dedup();
    let record = Adopted {
        weir_adopted: 1,
        shards: shard.count(),
        from,
        parts,
    };
    let tmp = dir.join(format!(".weir-adopted-{}.tmp", shard.tag()));
    let text = serde_json::to_string_pretty(&record).expect("the record serializes");
    std::fs::write(&tmp, format!("{text}\n")).map_err(|e| Error::io(&tmp, e))?;
    let path = dir.join(target::ADOPTED);
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

/// Before a checkpointed run as one process writes into `dir` (it keeps
/// the parts its checkpoints published): refuses a target shards wrote.
pub(crate) fn refuse_shard_output(dir: &Path) -> Result<()> {
    for name in names(dir)? {
        let shards = match (target::part_shard(&name), target::shard_marker(&name)) {
            (Some(Some((_, n))), _) | (None, Some((_, n))) => n,
            _ => continue,
        };
        return Err(Error::UnsafePath {
            path: dir.join(&name),
            message: format!(
                "the output directory {} holds the output of a run as {shards} shards; a \
                 checkpointed run as one process would mix its rows with it: remove the \
                 directory (weir wrote all of it) or choose another output path",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// Publishes shard `shard`'s output in `dir` when its run succeeded (see
/// the module doc); a checkpointed run's parts were published by its
/// checkpoints, so only the marker is written.
pub(crate) struct ShardCommit {
    pub(crate) dir: PathBuf,
    pub(crate) shard: Shard,
    /// `inprogress-<tag>PID-RUN-` of this run's staged parts; `None`:
    /// checkpointed (nothing to rename).
    pub(crate) staged_prefix: Option<String>,
    pub(crate) extension: &'static str,
    /// The sink has a rolling policy: every part carries its roll index.
    pub(crate) rolls: bool,
}

impl ShardCommit {
    fn own_parts(&self) -> Result<Vec<String>> {
        let mine = Some((self.shard.index(), self.shard.count()));
        Ok(names(&self.dir)?
            .into_iter()
            .filter(|n| target::part_shard(n) == Some(mine))
            .collect())
    }
}

impl PendingCommit for ShardCommit {
    fn commit(self: Box<Self>) -> Result<()> {
        let marker = self.dir.join(target::shard_marker_name(self.shard));
        if let Some(prefix) = &self.staged_prefix {
            remove(&marker)?;
            for old in self.own_parts()? {
                remove(&self.dir.join(old))?;
            }
            let staging = self.dir.join(target::CHECKPOINT_STAGING);
            let tag = shard_tag(Some(self.shard));
            // per subtask its staged parts by sequence (a rolling policy
            // closes several): part-S-rK in order with a policy (or if there
            // are several), else part-S
            let mut staged: BTreeMap<usize, Vec<(u64, String)>> = BTreeMap::new();
            for name in names(&staging)? {
                let Some(rest) = name.strip_prefix(prefix.as_str()) else {
                    continue;
                };
                if target::inprogress_shard(&name).is_none() {
                    continue;
                }
                let stem = rest.rsplit_once('.').map_or(rest, |(s, _)| s);
                let mut fields = stem.split('-').map(str::parse::<u64>);
                let (Some(Ok(subtask)), Some(Ok(seq))) = (fields.next(), fields.next()) else {
                    continue;
                };
                staged
                    .entry(subtask as usize)
                    .or_default()
                    .push((seq, name));
            }
            for (subtask, mut parts) in staged {
                parts.sort_unstable();
                let indexed = self.rolls || parts.len() > 1;
                for (k, (_, name)) in parts.into_iter().enumerate() {
                    let roll = if indexed {
                        super::rolling::roll_suffix(k as u64)
                    } else {
                        String::new()
                    };
                    let to = self
                        .dir
                        .join(format!("part-{tag}{subtask:05}{roll}.{}", self.extension));
                    std::fs::rename(staging.join(&name), &to).map_err(|e| Error::io(&to, e))?;
                }
            }
            // the staging directory stays: another shard may be about to write in it
        }
        let text = serde_json::json!({
            "weir_shard": 1,
            "shard": self.shard.index(),
            "shards": self.shard.count(),
            "parts": self.own_parts()?,
            "written_by": format!("weir {}", env!("CARGO_PKG_VERSION")),
            "committed_ms": weir_core::operator::now_ms(),
        });
        std::fs::write(&marker, format!("{text}\n")).map_err(|e| Error::io(&marker, e))
    }

    fn phase(&self) -> u8 {
        1 // after every subtask's file was finished
    }
}

/// What a directory target holds, by its writers ([`target_status`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetStatus {
    /// The target directory.
    pub path: PathBuf,
    /// The number of shards that write it (`None`: one process does).
    pub shards: Option<usize>,
    /// Shards whose marker is there, whose parts all are.
    pub committed: Vec<usize>,
    /// Shards without a (valid) marker: not finished, failed or killed.
    pub missing: Vec<usize>,
    /// Part files in the target.
    pub parts: usize,
    /// Of those, parts written by an earlier shard count whose checkpoints
    /// the shards writing the target now restored (`--restore shards:N`).
    pub adopted: usize,
    /// What is wrong besides missing shards (a marker naming a part that
    /// is gone, parts of several shard counts).
    pub problems: Vec<String>,
    /// A partitioned target's partitions (`k=v/…` directories holding
    /// parts, counted in `parts` too), each with whether it is committed
    /// (holds `_SUCCESS`).
    pub partitions: Vec<(String, bool)>,
}

impl TargetStatus {
    /// True when every writer committed and nothing is wrong.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.problems.is_empty()
    }
}

/// Reads a directory target: which shards committed their output (`weir
/// status`). A target one process wrote is complete once it exists (it is
/// replaced as a whole).
///
/// # Errors
///
/// [`Error::UnsafePath`] if `dir` is not a directory weir marked.
pub fn target_status(dir: &Path) -> Result<TargetStatus> {
    if target::check_dir(dir)? != target::Target::Owned {
        return Err(Error::UnsafePath {
            path: dir.to_path_buf(),
            message: "no output of weir is here (a directory target has a .weir-target marker)"
                .into(),
        });
    }
    let all = names(dir)?;
    let adopted = read_record(dir).ok().flatten();
    let mut counts = std::collections::BTreeSet::new();
    let mut parts = 0;
    let mut adopted_parts = 0;
    for name in &all {
        if let Some(shard) = target::part_shard(name) {
            parts += 1;
            match (&adopted, shard) {
                (Some(a), _) if a.parts.contains(name) => adopted_parts += 1,
                (_, Some((_, n))) => {
                    counts.insert(n);
                }
                _ => {}
            }
        }
        if let Some((_, n)) = target::shard_marker(name) {
            counts.insert(n);
        }
    }
    if let Some(a) = &adopted {
        counts.insert(a.shards);
    }
    let partitions = target::partitions_of(dir)?;
    parts += partitions.iter().map(|p| p.parts).sum::<usize>();
    let mut status = TargetStatus {
        path: dir.to_path_buf(),
        shards: counts.iter().next_back().copied(),
        committed: Vec::new(),
        missing: Vec::new(),
        parts,
        adopted: adopted_parts,
        problems: Vec::new(),
        partitions: partitions
            .into_iter()
            .map(|p| (p.path, p.committed))
            .collect(),
    };
    if let Some(a) = adopted.as_ref().filter(|a| a.parts.len() != adopted_parts) {
        status.problems.push(format!(
            "{} of the {} parts adopted from {} shards are gone",
            a.parts.len() - adopted_parts,
            a.parts.len(),
            a.from
        ));
    }
    if counts.len() > 1 {
        status.problems.push(format!(
            "parts of runs with different shard counts ({}) are mixed",
            counts
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let Some(n) = status.shards else {
        return Ok(status);
    };
    let Ok(last) = Shard::try_new(n - 1, n) else {
        status.problems.push(format!(
            "names a run of {n} shards, more than the {} key groups",
            weir_core::key::KEY_GROUPS
        ));
        return Ok(status);
    };
    for i in 0..n {
        let shard = Shard::try_new(i, last.count()).expect("i < n, checked just above");
        let marker = dir.join(target::shard_marker_name(shard));
        let listed: Option<Vec<String>> = std::fs::read_to_string(&marker)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| serde_json::from_value(v.get("parts")?.clone()).ok());
        match listed {
            None => status.missing.push(i),
            Some(parts) => {
                let gone: Vec<&String> = parts.iter().filter(|p| !all.contains(p)).collect();
                if gone.is_empty() {
                    status.committed.push(i);
                } else {
                    status.missing.push(i);
                    status.problems.push(format!(
                        "shard {shard} committed {} but it is gone",
                        gone[0]
                    ));
                }
            }
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), b"x").unwrap();
    }

    fn origin(i: usize, n: usize, checkpoint: CheckpointId) -> ShardOrigin {
        ShardOrigin {
            shard: Shard::try_new(i, n).unwrap(),
            checkpoint,
        }
    }

    #[test]
    fn new_shards_adopt_what_the_old_checkpoints_published() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        target::mark(&dir).unwrap();
        // shard 0/2 restored at 7 published 5 and 7, then 9 after it; shard 1/2 at 5
        for name in [
            "part-shard-0-of-2-00000005-00000.parquet",
            "part-shard-0-of-2-00000007-00000.parquet",
            "part-shard-0-of-2-00000009-00000.parquet",
            "part-shard-1-of-2-00000005-00000.parquet",
            ".weir-shard-0-of-2",
        ] {
            touch(&dir, name);
        }
        let old = [origin(0, 2, 7), origin(1, 2, 5)];
        let new = Shard::try_new(1, 3).unwrap();
        prepare(&dir, new, Some(None), &old).unwrap();
        let left = names(&dir).unwrap();
        assert!(!left.contains(&"part-shard-0-of-2-00000009-00000.parquet".to_string()));
        assert!(!left.contains(&".weir-shard-0-of-2".to_string()));
        let adopted = read_adopted(&dir, 3).unwrap();
        assert_eq!(
            adopted,
            vec![
                "part-shard-0-of-2-00000005-00000.parquet",
                "part-shard-0-of-2-00000007-00000.parquet",
                "part-shard-1-of-2-00000005-00000.parquet",
            ]
        );
        // another new shard adopting at the same time computes the same record
        prepare(&dir, Shard::try_new(0, 3).unwrap(), Some(None), &old).unwrap();
        assert_eq!(read_adopted(&dir, 3).unwrap(), adopted);
        // a new shard restoring its own checkpoint keeps them
        touch(&dir, "part-shard-1-of-3-00000001-00000.parquet");
        prepare(&dir, new, Some(Some(1)), &[]).unwrap();
        assert_eq!(names(&dir).unwrap().len(), left.len() + 1);
        // a fresh start would mix its rows with them: refused, nothing removed
        let before = names(&dir).unwrap();
        let e = prepare(&dir, new, Some(None), &[]).unwrap_err().to_string();
        assert!(e.contains("a run as 2 shards"), "{e}");
        let e = prepare(&dir, new, None, &[]).unwrap_err().to_string();
        assert!(e.contains("a run as 2 shards"), "{e}");
        assert_eq!(names(&dir).unwrap(), before);
        let status = target_status(&dir).unwrap();
        assert_eq!((status.shards, status.adopted), (Some(3), 3));
        assert!(status.problems.is_empty(), "{:?}", status.problems);
    }

    #[test]
    fn adoption_refuses_parts_no_checkpoint_published_and_back_at_the_old_count_keeps_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        target::mark(&dir).unwrap();
        touch(&dir, "part-shard-0-of-2-00000.parquet"); // a run without checkpoints
        let old = [origin(0, 2, 3), origin(1, 2, 3)];
        let e = prepare(&dir, Shard::try_new(0, 3).unwrap(), Some(None), &old)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not published by one of them"), "{e}");
        std::fs::remove_file(dir.join("part-shard-0-of-2-00000.parquet")).unwrap();
        // 2 → 3 → 2: the parts of the first 2 shards stay adopted with the second 2's
        touch(&dir, "part-shard-0-of-2-00000003-00000.parquet");
        prepare(&dir, Shard::try_new(0, 3).unwrap(), Some(None), &old).unwrap();
        touch(&dir, "part-shard-0-of-3-00000001-00000.parquet");
        let three = [origin(0, 3, 1), origin(1, 3, 1), origin(2, 3, 1)];
        prepare(&dir, Shard::try_new(0, 2).unwrap(), Some(None), &three).unwrap();
        assert_eq!(
            read_adopted(&dir, 2).unwrap(),
            vec![
                "part-shard-0-of-2-00000003-00000.parquet",
                "part-shard-0-of-3-00000001-00000.parquet",
            ]
        );
        assert_eq!(names(&dir).unwrap().len(), 4, "{:?}", names(&dir));
    }

    #[test]
    fn a_record_of_shards_that_never_published_is_dropped_by_the_old_count() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        target::mark(&dir).unwrap();
        touch(&dir, "part-shard-0-of-2-00000003-00000.parquet");
        let old = [origin(0, 2, 3), origin(1, 2, 3)];
        prepare(&dir, Shard::try_new(0, 3).unwrap(), Some(None), &old).unwrap();
        assert!(dir.join(target::ADOPTED).exists());
        // the 3 shards failed before publishing; shard 0/2 goes on from its checkpoint
        prepare(&dir, Shard::try_new(0, 2).unwrap(), Some(Some(3)), &[]).unwrap();
        assert!(!dir.join(target::ADOPTED).exists());
        assert!(dir
            .join("part-shard-0-of-2-00000003-00000.parquet")
            .exists());
        // once the new count published, the record stays (and the old count is refused)
        prepare(&dir, Shard::try_new(0, 3).unwrap(), Some(None), &old).unwrap();
        touch(&dir, "part-shard-0-of-3-00000001-00000.parquet");
        let e = prepare(&dir, Shard::try_new(0, 2).unwrap(), Some(Some(3)), &[]).unwrap_err();
        assert!(e.to_string().contains("a run as 3 shards"), "{e}");
        assert!(dir.join(target::ADOPTED).exists());
    }
}

#[cfg(test)]
mod rolled_tests {
    use super::*;

    #[test]
    fn a_shards_rolled_parts_are_published_in_order_under_distinct_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let staging = dir.join(target::CHECKPOINT_STAGING);
        std::fs::create_dir_all(&staging).unwrap();
        target::mark(&dir).unwrap();
        // subtask 0 rolled twice (sequences 2 and 10: sorted as numbers),
        // subtask 1 wrote one part; another run's file is left alone
        let prefix = "inprogress-shard-0-of-2-77-5-";
        for (name, text) in [
            ("inprogress-shard-0-of-2-77-5-0-10.csv", "third"),
            ("inprogress-shard-0-of-2-77-5-0-2.csv", "second"),
            ("inprogress-shard-0-of-2-77-5-0-1.csv", "first"),
            ("inprogress-shard-0-of-2-77-5-1-3.csv", "only"),
            ("inprogress-shard-0-of-2-78-5-0-1.csv", "other run"),
        ] {
            std::fs::write(staging.join(name), text).unwrap();
        }
        Box::new(ShardCommit {
            dir: dir.clone(),
            shard: Shard::try_new(0, 2).unwrap(),
            staged_prefix: Some(prefix.to_string()),
            extension: "csv",
            rolls: false,
        })
        .commit()
        .unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        assert_eq!(read("part-shard-0-of-2-00000-r00000.csv"), "first");
        assert_eq!(read("part-shard-0-of-2-00000-r00001.csv"), "second");
        assert_eq!(read("part-shard-0-of-2-00000-r00002.csv"), "third");
        assert_eq!(read("part-shard-0-of-2-00001.csv"), "only");
        assert!(staging
            .join("inprogress-shard-0-of-2-78-5-0-1.csv")
            .exists());
        let marker = read(".weir-shard-0-of-2");
        assert!(
            marker.contains("part-shard-0-of-2-00000-r00002.csv"),
            "{marker}"
        );
    }
}
