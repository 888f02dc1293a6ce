//! What a file sink owns in and beside its target, recognised by exact
//! names, and the only deletions it ever makes.
//!
//! ```text
//!  PARENT/
//!    .NAME.weir-lock                      lock of the run writing NAME (weir_core::lock)
//!    .NAME.weir-lock-shard-I-of-N         lock of shard I of N writing NAME (shards share NAME)
//!    .NAME.weir-PID-RUN.inprogress        staging of a one-file target
//!    .NAME.weir-staging-PID-RUN/          staging of a directory target (parts + marker),
//!    .NAME.weir-staging-PID-RUN.old/      which replaces NAME/ at commit (the old one parks here)
//!    NAME/                                a directory target
//!      .weir-target                       the marker: weir owns this directory
//!      part-SSSSS.EXT                     part of subtask S (a run without checkpoints)
//!      part-CCCCCCCC-SSSSS.EXT            part of subtask S published by checkpoint C
//!      part-SSSSS-rKKKKK.EXT,             with a rolling policy (rolling.rs): the subtask's
//!      part-CCCCCCCC-SSSSS-rKKKKK.EXT     K-th part (of the run, or of checkpoint C)
//!      .weir-staging/                     checkpointed runs: inprogress-PID-RUN-S-SEQ.EXT
//!                                         and part-C-S.EXT waiting for checkpoint C
//!      k1=v1/k2=v2/                       a partitioned sink's partitions (partition.rs):
//!        part-….EXT, _SUCCESS             the parts above and the partition's commit file
//!                                         (in .weir-staging/ too: k1=v1/…/part-C-S.EXT)
//!    with shards (`--shard I/N`), every part and staging name above carries the tag
//!    `shard-I-of-N-` after `part-` or `inprogress-` (part-shard-1-of-3-00000.parquet),
//!    a shard stages in NAME/.weir-staging/ even without checkpoints, and
//!      .weir-shard-I-of-N                 says shard I committed (JSON: its parts)
//!      .weir-adopted                      parts of an earlier shard count that the shards
//!                                         restoring its checkpoints took over (JSON)
//! ```
//! A directory target must be new, empty, or marked; a marked one may hold
//! only the names above. Anything else (another tool's `part-0-<uuid>.parquet`,
//! a folder `part-archive/`) is an error naming it, never deleted. The
//! marker is a small JSON object written with the first output. Every name
//! starting with `.weir-` inside a marked directory is reserved for weir's
//! bookkeeping (as the shards' commit markers).
//!
//! Leftovers of a killed run (staging files and directories of a PID that
//! no longer holds the target's lock) are removed by the next run on the
//! same target, which holds that lock, so no live run's files are touched.
//!
//! May use `weir_core::error`, `weir_core::lock`, `weir_core::paths`, `weir_core::shard`,
//! `weir_core::state` and std.

use std::path::{Path, PathBuf};
use weir_core::error::{Error, Result};
use weir_core::shard::Shard;

use super::partition::{is_partition_dir, SUCCESS_FILE};

/// The marker file that makes a directory weir's own.
pub(crate) const MARKER: &str = ".weir-target";

/// The record of parts written by shards of another count that the shards
/// writing the target now adopted when they restored those shards'
/// checkpoints (`--restore shards:N`); JSON, replaced by rename from
/// `.weir-adopted-shard-I-of-N.tmp`.
pub(crate) const ADOPTED: &str = ".weir-adopted";

/// `.weir-adopted` or a shard's temporary copy of it.
pub(crate) fn is_adopted_record(name: &str) -> bool {
    name == ADOPTED
        || name
            .strip_prefix(".weir-adopted-")
            .and_then(|r| r.strip_suffix(".tmp"))
            .and_then(strip_shard_tag)
            .is_some()
}

/// `shard-I-of-N` (a whole tag, without the trailing dash).
fn strip_shard_tag(tag: &str) -> Option<(usize, usize)> {
    let (i, n) = tag.strip_prefix("shard-")?.split_once("-of-")?;
    if !(digits(i, 1) && digits(n, 1)) {
        return None;
    }
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// The hidden directory inside a checkpointed sink's target where part
/// files are written and wait for their checkpoint.
pub(crate) const CHECKPOINT_STAGING: &str = weir_core::state::PUBLISH_STAGING;

/// File extensions weir's sinks write.
const EXTENSIONS: [&str; 3] = ["parquet", "jsonl", "csv"];

/// `digits` is all ASCII digits and at least `min` long.
fn digits(s: &str, min: usize) -> bool {
    s.len() >= min && s.bytes().all(|b| b.is_ascii_digit())
}

/// Splits `stem.ext` with `ext` one of weir's extensions.
fn weir_ext(name: &str) -> Option<&str> {
    let (stem, ext) = name.rsplit_once('.')?;
    EXTENSIONS.contains(&ext).then_some(stem)
}

/// The name tag of shard `I` of `N` in part, staging and marker names:
/// `shard-I-of-N-` (empty for a run as one process).
pub(crate) fn shard_tag(shard: Option<Shard>) -> String {
    shard.map_or(String::new(), |s| format!("{}-", s.tag()))
}

/// Splits an optional `shard-I-of-N-` off `rest`: (the shard's (I, N), the rest).
fn strip_shard(rest: &str) -> Option<(Option<(usize, usize)>, &str)> {
    let Some(r) = rest.strip_prefix("shard-") else {
        return Some((None, rest));
    };
    let (i, r) = r.split_once("-of-")?;
    let (n, r) = r.split_once('-')?;
    if !(digits(i, 1) && digits(n, 1)) {
        return None;
    }
    Some((Some((i.parse().ok()?, n.parse().ok()?)), r))
}

/// `part-[shard-I-of-N-]SSSSS[-rKKKKK].EXT` (a run without checkpoints) or
/// `part-[shard-I-of-N-]CCCCCCCC-SSSSS[-rKKKKK].EXT` (published by
/// checkpoint C; `-rKKKKK`: the K-th part of a rolling policy):
/// `Some(shard)` for a part (`Some(None)`: of a run as one process).
pub(crate) fn part_shard(name: &str) -> Option<Option<(usize, usize)>> {
    let rest = super::rolling::strip_roll(weir_ext(name)?).strip_prefix("part-")?;
    let (shard, rest) = strip_shard(rest)?;
    let ok = match rest.split_once('-') {
        None => digits(rest, 5),
        Some((c, s)) => digits(c, 8) && digits(s, 5),
    };
    ok.then_some(shard)
}

/// A part file's name (see [`part_shard`]).
pub(crate) fn is_part(name: &str) -> bool {
    part_shard(name).is_some()
}

/// The checkpoint of a checkpointed part `part-[shard-I-of-N-]CCCCCCCC-SSSSS[-rKKKKK].EXT`.
pub(crate) fn part_checkpoint(name: &str) -> Option<u64> {
    if !is_part(name) {
        return None;
    }
    let rest = super::rolling::strip_roll(weir_ext(name)?).strip_prefix("part-")?;
    let (_, rest) = strip_shard(rest)?;
    rest.split_once('-')?.0.parse().ok()
}

/// `inprogress-[shard-I-of-N-]PID-RUN-S-SEQ.EXT` in a target's staging
/// directory: `Some(shard)` for such a name.
pub(crate) fn inprogress_shard(name: &str) -> Option<Option<(usize, usize)>> {
    let rest = weir_ext(name)?.strip_prefix("inprogress-")?;
    let (shard, rest) = strip_shard(rest)?;
    let parts: Vec<&str> = rest.split('-').collect();
    (parts.len() == 4 && parts.iter().all(|p| digits(p, 1))).then_some(shard)
}

fn is_inprogress(name: &str) -> bool {
    inprogress_shard(name).is_some()
}

/// `.weir-shard-I-of-N`: shard I of N committed its parts (JSON).
pub(crate) fn shard_marker(name: &str) -> Option<(usize, usize)> {
    let (i, n) = name.strip_prefix(".weir-shard-")?.split_once("-of-")?;
    if !(digits(i, 1) && digits(n, 1)) {
        return None;
    }
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// The commit marker's name of `shard`.
pub(crate) fn shard_marker_name(shard: Shard) -> String {
    format!(".weir-{}", shard.tag())
}

/// The name of a regular file, not a link, or `None`.
fn regular_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

fn real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

/// The entries of `dir` by name.
pub(crate) fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push((name, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// What a directory sink may find in its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Not there yet: weir creates and marks it.
    Missing,
    /// An empty directory: weir may use and mark it.
    Empty,
    /// A directory weir marked: only weir's files inside.
    Owned,
}

/// Checks the directory target `dir` and says what it is; an error names
/// the first entry weir did not write, or explains why `dir` is not weir's.
pub(crate) fn check_dir(dir: &Path) -> Result<Target> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Target::Missing),
        Err(e) => return Err(Error::io(dir, e)),
    };
    if !meta.is_dir() {
        return Err(Error::UnsafePath {
            path: dir.to_path_buf(),
            message: "the sink writes a directory of part files here, but this is a file \
                      (give a path ending in the format's extension to write one file)"
                .into(),
        });
    }
    let all = entries(dir)?;
    if all.is_empty() {
        return Ok(Target::Empty);
    }
    if !regular_file(&dir.join(MARKER)) {
        let (name, _) = &all[0];
        return Err(Error::UnsafePath {
            path: dir.join(name),
            message: format!(
                "the output directory {} is not empty and was not written by weir (no {MARKER} \
                 marker), so weir will not replace what it holds; choose a new or empty directory",
                dir.display()
            ),
        });
    }
    if let Some(foreign) = foreign_entries(dir)?.first() {
        return Err(Error::UnsafePath {
            path: foreign.clone(),
            message: format!(
                "weir did not write this: the output directory {} may hold only weir's part \
                 files (part-SSSSS.EXT, part-CCCCCCCC-SSSSS.EXT, part-shard-I-of-N-…, each with -rKKKKK when it rolled), \
                 {MARKER} and .weir-shard-I-of-N markers, and partition directories \
                 (k=v/…) of part files and {SUCCESS_FILE}; move it away or choose another \
                 output path",
                dir.display()
            ),
        });
    }
    Ok(Target::Owned)
}

/// Entries of a marked directory that are not weir's (checked by name and type).
fn foreign_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut foreign = Vec::new();
    for (name, path) in entries(dir)? {
        // inside weir's directories, the entries weir did not write are named
        if name == CHECKPOINT_STAGING && real_dir(&path) {
            foreign.extend(foreign_staging(&path)?);
            continue;
        }
        if is_partition_dir(&name) && real_dir(&path) {
            foreign.extend(partition_tree(&path, false)?);
            continue;
        }
        let ours = {
            (name == MARKER
                || is_part(&name)
                || shard_marker(&name).is_some()
                || is_adopted_record(&name))
                && regular_file(&path)
        };
        // Another shard may rename or remove its own file between the listing
        // and the look: what is gone holds nothing to protect.
        if !ours && !vanished(&path) {
            foreign.push(path);
        }
    }
    Ok(foreign)
}

/// Whether `path` is no longer there (a concurrent shard moved it).
fn vanished(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// Entries of a checkpointed staging directory that are not weir's.
fn foreign_staging(dir: &Path) -> Result<Vec<PathBuf>> {
    weir_tree(dir, Tree::Staging, false)
}

/// The entries of the partition directory `dir` (and the ones below it)
/// that are not weir's: weir's are part files, `_SUCCESS` and partition
/// directories. With `remove`, weir's files are deleted, and each
/// directory left empty too.
pub(crate) fn partition_tree(dir: &Path, remove: bool) -> Result<Vec<PathBuf>> {
    weir_tree(dir, Tree::Partition, remove)
}

/// A directory of weir's inside a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    /// `.weir-staging/`: parts, in-progress files, partition directories of parts.
    Staging,
    /// `k=v/`: parts, `_SUCCESS`, partition directories.
    Partition,
}

/// The entries under `dir` (a `kind` directory) that are not weir's; with
/// `remove`, weir's files are deleted, and each directory left empty too.
/// What another shard moved away meanwhile is not foreign.
fn weir_tree(dir: &Path, kind: Tree, remove: bool) -> Result<Vec<PathBuf>> {
    let all = match entries(dir) {
        Err(_) if vanished(dir) => return Ok(Vec::new()),
        other => other?,
    };
    let mut foreign = Vec::new();
    for (name, path) in all {
        let ours = is_part(&name)
            || match kind {
                Tree::Staging => is_inprogress(&name),
                Tree::Partition => name == SUCCESS_FILE,
            };
        if is_partition_dir(&name) && real_dir(&path) {
            foreign.extend(weir_tree(&path, Tree::Partition, remove)?);
        } else if ours && regular_file(&path) {
            if remove {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        } else if !vanished(&path) {
            foreign.push(path);
        }
    }
    if remove && foreign.is_empty() {
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(foreign)
}

/// Writes the marker into `dir` (a directory weir just created or checked).
pub(crate) fn mark(dir: &Path) -> Result<()> {
    let path = dir.join(MARKER);
    if regular_file(&path) {
        return Ok(());
    }
    let text = serde_json::json!({
        "weir_target": 1,
        "written_by": format!("weir {}", env!("CARGO_PKG_VERSION")),
        "created_ms": weir_core::operator::now_ms(),
    });
    std::fs::write(&path, format!("{text}\n")).map_err(|e| Error::io(&path, e))
}

/// Deletes weir's files in a marked directory `dir` (parts, staging, the
/// marker) and then `dir` itself if nothing else is left. Returns what was
/// left (entries weir did not write).
pub(crate) fn remove_owned(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut left = Vec::new();
    for (name, path) in entries(dir)? {
        if name == CHECKPOINT_STAGING && real_dir(&path) {
            left.extend(remove_staging_files(&path)?);
        } else if is_partition_dir(&name) && real_dir(&path) {
            left.extend(partition_tree(&path, true)?);
        } else if (name == MARKER
            || is_part(&name)
            || shard_marker(&name).is_some()
            || is_adopted_record(&name))
            && regular_file(&path)
        {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        } else {
            left.push(path);
        }
    }
    if left.is_empty() {
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(left)
}

/// Deletes the weir files of a checkpointed staging directory, and the
/// directory if it is then empty; returns what was left.
pub(crate) fn remove_staging_files(dir: &Path) -> Result<Vec<PathBuf>> {
    weir_tree(dir, Tree::Staging, true)
}

/// Removes from the checkpointed target `dir` the parts no checkpoint up
/// to `restored` published (every part on a fresh start, and then the
/// partitions' `_SUCCESS` files too), in its partition directories as
/// well; a partition directory left empty goes.
pub(crate) fn remove_unpublished(
    dir: &Path,
    restored: Option<u64>,
    in_partition: bool,
) -> Result<()> {
    let mut removed_part = false;
    for (name, path) in entries(dir)? {
        if is_partition_dir(&name) && real_dir(&path) {
            remove_unpublished(&path, restored, true)?;
            let _ = std::fs::remove_dir(&path); // only when empty
            continue;
        }
        if !regular_file(&path) {
            continue;
        }
        let stale = match (part_checkpoint(&name), restored) {
            (Some(id), Some(r)) => id > r,
            (_, None) => is_part(&name) || (in_partition && name == SUCCESS_FILE),
            (None, Some(_)) => false,
        };
        if stale {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            removed_part |= is_part(&name);
        }
    }
    // a partition that lost parts is not complete any more
    let success = dir.join(SUCCESS_FILE);
    if in_partition && removed_part && regular_file(&success) {
        std::fs::remove_file(&success).map_err(|e| Error::io(&success, e))?;
    }
    Ok(())
}

/// One partition of a partitioned target, as `weir status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionSummary {
    /// `k1=v1/k2=v2`.
    pub path: String,
    /// Part files in it.
    pub parts: usize,
    /// It holds `_SUCCESS`.
    pub committed: bool,
}

/// The partition directories under the target `dir` (at any depth) that
/// hold parts, with their parts and commit file.
pub(crate) fn partitions_of(dir: &Path) -> Result<Vec<PartitionSummary>> {
    let mut out = Vec::new();
    let mut walk = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = walk.pop() {
        let mut parts = 0;
        let mut committed = false;
        for (name, path) in entries(&d)? {
            if is_partition_dir(&name) && real_dir(&path) {
                let rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                walk.push((path, rel));
            } else if !rel.is_empty() && is_part(&name) && regular_file(&path) {
                parts += 1;
            } else if !rel.is_empty() && name == SUCCESS_FILE && regular_file(&path) {
                committed = true;
            }
        }
        if parts > 0 {
            out.push(PartitionSummary {
                path: rel,
                parts,
                committed,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The partition directories `depth` levels under the target `dir` that
/// hold parts, as relative paths `k1=v1/k2=v2`.
pub(crate) fn partition_leaves(dir: &Path, depth: usize) -> Result<Vec<String>> {
    Ok(partitions_of(dir)?
        .into_iter()
        .filter(|p| p.path.split('/').count() == depth)
        .map(|p| p.path)
        .collect())
}

/// `NAME` of the target `PARENT/NAME`.
pub(crate) fn base_name(target: &Path) -> String {
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into())
}

/// What a staging entry beside target `NAME` is, by its exact name.
#[derive(Debug, PartialEq, Eq)]
enum Staging {
    /// `.NAME.weir-PID-RUN.inprogress`
    File,
    /// `.NAME.weir-staging-PID-RUN`
    Dir,
    /// `.NAME.weir-staging-PID-RUN.old`
    OldDir,
}

fn staging_kind(base: &str, name: &str) -> Option<Staging> {
    let rest = name.strip_prefix('.')?.strip_prefix(base)?;
    let pid_run = |s: &str| {
        s.split_once('-')
            .is_some_and(|(p, r)| digits(p, 1) && digits(r, 1))
    };
    if let Some(r) = rest.strip_prefix(".weir-staging-") {
        return match r.strip_suffix(".old") {
            Some(r) if pid_run(r) => Some(Staging::OldDir),
            None if pid_run(r) => Some(Staging::Dir),
            _ => None,
        };
    }
    let r = rest.strip_prefix(".weir-")?.strip_suffix(".inprogress")?;
    pid_run(r).then_some(Staging::File)
}

/// Removes what killed runs left beside and inside `target`: staging files
/// and directories (a parked previous output whose target is missing is put
/// back instead) and the checkpoint staging directory's in-progress files.
/// Must be called while holding the target's lock, which proves that no
/// live run owns them. Returns a warning per entry it left alone.
pub(crate) fn clean_leftovers(target: &Path) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let locked = weir_core::paths::canonical(target)
        .is_ok_and(|c| weir_core::lock::is_held(&weir_core::lock::for_output(&c)));
    if !locked || !parent.is_dir() {
        return Ok(warnings); // only a lock holder may decide what is stale
    }
    let base = base_name(target);
    let mut warn_left = |left: Vec<PathBuf>, dir: &Path| {
        for p in left {
            warnings.push(format!(
                "left {} in the staging directory {} of a stopped run: weir did not write it",
                p.display(),
                dir.display()
            ));
        }
    };
    for (name, path) in entries(&parent)? {
        match staging_kind(&base, &name) {
            Some(Staging::File) if regular_file(&path) => {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
            Some(Staging::OldDir) if real_dir(&path) && !target.exists() => {
                // killed between parking the old output and moving the new one in
                std::fs::rename(&path, target).map_err(|e| Error::io(target, e))?;
            }
            Some(Staging::Dir | Staging::OldDir) if real_dir(&path) => {
                let left = remove_owned(&path)?;
                warn_left(left, &path);
            }
            _ => {}
        }
    }
    let staging = target.join(CHECKPOINT_STAGING);
    if real_dir(&staging) {
        for (name, path) in entries(&staging)? {
            if is_inprogress(&name) && regular_file(&path) {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_are_exact() {
        for ours in [
            "part-00000.parquet",
            "part-00012.jsonl",
            "part-123456.parquet",
            "part-00000007-00001.parquet",
            "part-00000-r00000.parquet",
            "part-00000007-00001-r00012.csv",
            "part-shard-1-of-3-00000-r00001.jsonl",
        ] {
            assert!(is_part(ours), "{ours}");
        }
        assert_eq!(part_checkpoint("part-00000007-00001-r00012.csv"), Some(7));
        assert_eq!(
            part_checkpoint("part-00003-r00001.csv"),
            None,
            "no checkpoint"
        );
        for theirs in [
            "part-00000-3f2a9c1e-1111-2222-3333-444455556666-c000.snappy.parquet",
            "part-archive",
            "part-0.parquet",
            "part-00000.txt",
            "part-0000007-00001.parquet",
            "part-shard-1-of-x-00000.parquet",
            "part-shard-1-00000.parquet",
            "part-00000007-00001.parquet.bak",
            "xpart-00000.parquet",
            "part-00000-r1.parquet",
            "part-r00001.parquet",
            "part-00000-r00001-r00002.parquet",
        ] {
            assert!(!is_part(theirs), "{theirs}");
        }
        for ours in [
            "part-00000.csv",
            "part-shard-1-of-3-00000.parquet",
            "part-shard-0-of-2-00000007-00001.jsonl",
        ] {
            assert!(is_part(ours), "{ours}");
        }
        assert_eq!(
            part_shard("part-shard-2-of-3-00004.csv"),
            Some(Some((2, 3)))
        );
        assert_eq!(part_shard("part-00004.csv"), Some(None));
        assert_eq!(
            part_checkpoint("part-shard-2-of-3-00000009-00004.csv"),
            Some(9)
        );
        assert_eq!(shard_marker(".weir-shard-2-of-3"), Some((2, 3)));
        assert_eq!(shard_marker(".weir-shard-2-of-"), None);
        assert_eq!(
            inprogress_shard("inprogress-shard-1-of-2-12-0-1-3.csv"),
            Some(Some((1, 2)))
        );
        assert_eq!(part_checkpoint("part-00000007-00001.parquet"), Some(7));
        assert_eq!(part_checkpoint("part-00001.parquet"), None);
        assert!(is_inprogress("inprogress-12-0-1-3.parquet"));
        assert!(!is_inprogress("inprogress-12-0-1.parquet"));
    }

    #[test]
    fn staging_names_belong_to_their_target_only() {
        assert_eq!(
            staging_kind("avg.parquet", ".avg.parquet.weir-123-4.inprogress"),
            Some(Staging::File)
        );
        assert_eq!(
            staging_kind("avg", ".avg.weir-staging-123-4"),
            Some(Staging::Dir)
        );
        assert_eq!(
            staging_kind("avg", ".avg.weir-staging-123-4.old"),
            Some(Staging::OldDir)
        );
        assert_eq!(staging_kind("avg", ".avg2.weir-staging-123-4"), None);
        assert_eq!(staging_kind("avg", ".avg.weir-staging-x-4"), None);
        assert_eq!(staging_kind("avg", ".avg.weir-1.inprogress.keep"), None);
    }

    #[test]
    fn a_target_is_new_empty_or_marked_with_only_weir_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("out");
        assert_eq!(check_dir(&d).unwrap(), Target::Missing);
        std::fs::create_dir(&d).unwrap();
        assert_eq!(check_dir(&d).unwrap(), Target::Empty);
        std::fs::write(d.join("part-00000.parquet"), b"x").unwrap();
        let e = check_dir(&d).unwrap_err().to_string();
        assert!(
            e.contains("part-00000.parquet") && e.contains(MARKER),
            "{e}"
        );
        mark(&d).unwrap();
        assert_eq!(check_dir(&d).unwrap(), Target::Owned);
        std::fs::create_dir(d.join("part-archive")).unwrap();
        let e = check_dir(&d).unwrap_err().to_string();
        assert!(e.contains("part-archive"), "{e}");
        assert_eq!(remove_owned(&d).unwrap(), vec![d.join("part-archive")]);
        assert!(d.join("part-archive").is_dir() && !d.join("part-00000.parquet").exists());
    }

    #[test]
    fn a_restore_removes_later_parts_and_the_commit_of_their_partition() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("out");
        for (p, files) in [
            ("dt=1", &["part-00000001-00000.csv", "_SUCCESS"][..]),
            (
                "dt=2",
                &[
                    "part-00000001-00000.csv",
                    "part-00000003-00000.csv",
                    "_SUCCESS",
                ],
            ),
            ("dt=3", &["part-00000003-00000.csv"]),
        ] {
            std::fs::create_dir_all(d.join(p)).unwrap();
            for f in files {
                std::fs::write(d.join(p).join(f), "x").unwrap();
            }
        }
        remove_unpublished(&d, Some(2), false).unwrap();
        assert!(
            d.join("dt=1/_SUCCESS").exists(),
            "untouched partition stays committed"
        );
        assert!(d.join("dt=2/part-00000001-00000.csv").exists());
        assert!(!d.join("dt=2/part-00000003-00000.csv").exists());
        assert!(
            !d.join("dt=2/_SUCCESS").exists(),
            "a partition that lost parts is open again"
        );
        assert!(!d.join("dt=3").exists(), "an emptied partition goes");
        assert_eq!(partition_leaves(&d, 1).unwrap(), ["dt=1", "dt=2"]);
        remove_unpublished(&d, None, false).unwrap();
        assert_eq!(
            entries(&d).unwrap(),
            vec![],
            "a fresh start removes every part and commit"
        );
    }

    #[test]
    fn files_another_shard_moved_away_are_not_foreign() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = tmp.path().join(CHECKPOINT_STAGING);
        // The staging directory another shard removed between two looks.
        assert!(vanished(&staging));
        assert!(foreign_staging(&staging).unwrap().is_empty());
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("notes.txt"), b"x").unwrap();
        assert!(!vanished(&staging.join("notes.txt")));
        assert_eq!(
            foreign_staging(&staging).unwrap(),
            vec![staging.join("notes.txt")]
        );
    }
}
