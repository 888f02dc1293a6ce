//! Sinks: Parquet and JSON-lines files, stdout, and an in-memory collector.
//!
//! File sinks write to hidden staging files beside the target and stage
//! [`PendingCommit`]s in the job's commit log; the executor publishes them
//! (atomic renames) only after the whole job succeeded. A failed job leaves
//! the output path untouched: staging files are removed on drop. A
//! [`RollingPolicy`] (`rolling.rs`) closes a directory sink's parts by
//! size, age or inactivity; rolled parts are published the same way.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use weir_core::error::{Error, Result};
use weir_core::message::CheckpointId;
use weir_core::operator::{Ctx, Operator, Output, PendingCommit, TaskInfo};
use weir_core::state::{StateReader, StateWriter};

mod partition;
mod rolling;
mod shards;
mod sink;
mod target;

pub use partition::{
    CommitTrigger, PartitionCommit, PartitionSpec, DEFAULT_PARTITION, SUCCESS_FILE,
};
pub use rolling::RollingPolicy;
pub use shards::{target_status, TargetStatus};
pub use sink::FileSink;

/// The on-disk format of a file sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet (zstd).
    Parquet,
    /// Newline-delimited JSON objects.
    JsonLines,
    /// Comma-separated values with a header line (RFC 4180 quoting; nulls
    /// are empty fields).
    Csv,
}

impl FileFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::JsonLines => "jsonl",
            FileFormat::Csv => "csv",
        }
    }

    /// The format a sink path names: `Ok(None)` for a path without
    /// extension or ending in `/` (a directory of part files), an error
    /// for an extension of a format weir does not write (`out.csv`).
    pub fn named_by(path: &Path) -> std::result::Result<Option<Self>, String> {
        if path.as_os_str().to_string_lossy().ends_with('/') || path.extension().is_none() {
            return Ok(None);
        }
        match Self::from_path(path) {
            Some(f) => Ok(Some(f)),
            None => Err(format!(
                "{}: weir writes Parquet (.parquet), JSON lines (.jsonl, .json, .ndjson) or \
                 CSV (.csv), not .{}; use one of these for one file, or a path without extension \
                 (or ending in /) for a directory of part files",
                path.display(),
                path.extension().unwrap_or_default().to_string_lossy()
            )),
        }
    }

    /// Its name in messages and job files.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::JsonLines => "json",
            FileFormat::Csv => "csv",
        }
    }

    /// Guesses the format from a path's extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "parquet" => Some(FileFormat::Parquet),
            "jsonl" | "json" | "ndjson" => Some(FileFormat::JsonLines),
            "csv" => Some(FileFormat::Csv),
            _ => None,
        }
    }
}

/// Where a file sink writes: one file (the sink runs with parallelism 1) or
/// a directory of `part-NNNNN.<ext>` files, one per subtask.
///
/// ```text
///  one file:   out/avg.parquet     staged as out/.avg.parquet.weir-P-R.inprogress, renamed on commit
///  directory:  out/avg/part-N.ext  staged in out/.avg.weir-staging-P-R/ (with the .weir-target
///                                  marker), which replaces out/avg/ as a whole on commit
/// ```
/// `P` is the process and `R` the run, so re-running a job never mixes its
/// files with an earlier run's; a failed run removes its staging files and
/// directories. A directory target must be new, empty or marked by weir,
/// holding only weir's part files (`target.rs` has the exact names); the
/// executor locks the target for the run, and the first subtask of a run
/// removes what killed runs left behind.
#[derive(Debug)]
pub struct FileSinkSpec {
    // config
    path: PathBuf,
    format: FileFormat,
    single_file: bool,
    schema: SchemaRef,
    /// Partition columns (and how to split rows by them), if partitioned.
    partitioning: Option<(PartitionSpec, partition::Splitter)>,
    /// When a part is closed and the next one started.
    rolling: RollingPolicy,
    // state: the watermarks the subtasks reported (a partitioned sink
    // commits partitions by the lowest)
    pub(super) watermarks: Mutex<partition::Watermarks>,
    // state: the last run that prepared the target (cleaned and checked it)
    prepared: Mutex<Option<u64>>,
}

impl FileSinkSpec {
    /// A sink writing `format` to `path`. If `path` has the format's
    /// extension it is one file, otherwise a directory of part files.
    pub fn new(path: impl Into<PathBuf>, format: FileFormat, schema: SchemaRef) -> Arc<Self> {
        let path = path.into();
        let single_file = FileFormat::from_path(&path).is_some();
        Arc::new(FileSinkSpec {
            path,
            format,
            single_file,
            schema,
            partitioning: None,
            rolling: RollingPolicy::default(),
            watermarks: Mutex::default(),
            prepared: Mutex::new(None),
        })
    }

    /// A directory sink writing each partition of `partitioning` into its
    /// own `k=v/…` directory (Hive layout; the files omit the partition
    /// columns), with `_SUCCESS` files if `partitioning` commits.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use arrow_schema::{DataType, Field, Schema};
    /// use weir::connectors::files::{FileFormat, FileSinkSpec, PartitionSpec};
    ///
    /// let schema = Arc::new(Schema::new(vec![
    ///     Field::new("price", DataType::Int64, false),
    ///     Field::new("dt", DataType::Utf8, false),
    /// ]));
    /// let dir = tempfile::tempdir().unwrap();
    /// let spec = FileSinkSpec::try_new_partitioned(
    ///     dir.path().join("bids"),
    ///     FileFormat::Csv,
    ///     schema.clone(),
    ///     PartitionSpec::by(["dt"]),
    /// )
    /// .unwrap();
    /// assert_eq!(spec.file_schema().fields().len(), 1); // `dt` is in the path
    /// // one file cannot be partitioned
    /// let one = dir.path().join("bids.csv");
    /// assert!(FileSinkSpec::try_new_partitioned(one, FileFormat::Csv, schema, PartitionSpec::by(["dt"])).is_err());
    /// ```
    pub fn try_new_partitioned(
        path: impl Into<PathBuf>,
        format: FileFormat,
        schema: SchemaRef,
        partitioning: PartitionSpec,
    ) -> Result<Arc<Self>> {
        let path = path.into();
        if FileFormat::from_path(&path).is_some() {
            return Err(Error::option(
                "sink.path",
                format!(
                    "{}: a partitioned sink writes a directory (k=v/… inside); give a path \
                     without the .{} extension",
                    path.display(),
                    format.extension()
                ),
            ));
        }
        let splitter = partitioning.try_splitter(&schema)?;
        Ok(Arc::new(FileSinkSpec {
            path,
            format,
            single_file: false,
            schema,
            partitioning: Some((partitioning, splitter)),
            rolling: RollingPolicy::default(),
            watermarks: Mutex::default(),
            prepared: Mutex::new(None),
        }))
    }

    /// This sink with `policy` rolling its parts (a directory target: one
    /// file cannot roll). Set before the sink is shared.
    pub fn try_with_rolling(mut self: Arc<Self>, policy: RollingPolicy) -> Result<Arc<Self>> {
        if self.single_file && policy.rolls() {
            return Err(Error::option(
                "sink.rolling-policy",
                format!(
                    "{} is one file, which cannot roll into several: give a directory path \
                     (without the .{} extension)",
                    self.path.display(),
                    self.format.extension()
                ),
            ));
        }
        Arc::get_mut(&mut self)
            .ok_or_else(|| {
                Error::Plan("a file sink's rolling policy is set before it is shared".into())
            })?
            .rolling = policy;
        Ok(self)
    }

    /// The schema of the files: the rows' without the partition columns.
    pub fn file_schema(&self) -> SchemaRef {
        match &self.partitioning {
            Some((_, s)) => s.data_schema().clone(),
            None => self.schema.clone(),
        }
    }

    /// Checks that a directory target is new, empty, or marked by weir and
    /// holds only weir's part files (it is replaced as a whole), so no user
    /// file is ever deleted; the error names the first file weir did not write.
    pub fn check_target(&self) -> Result<()> {
        if self.single_file {
            if self.path.is_dir() {
                return Err(Error::UnsafePath {
                    path: self.path.clone(),
                    message: "the sink writes one file here, but this is a directory".into(),
                });
            }
            return Ok(());
        }
        target::check_dir(&self.path).map(|_| ())
    }

    /// True if the sink writes one file (and so must run with parallelism 1).
    pub fn is_single_file(&self) -> bool {
        self.single_file
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parent(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn base_name(&self) -> String {
        target::base_name(&self.path)
    }

    /// The staging directory of run `run` (directory targets).
    fn staging_dir(&self, run: u64) -> PathBuf {
        self.parent().join(format!(
            ".{}.weir-staging-{}-{run}",
            self.base_name(),
            std::process::id()
        ))
    }

    /// The sink instance of one subtask.
    pub fn create(self: &Arc<Self>, info: &TaskInfo) -> FileSink {
        FileSink::new(self.clone(), info.subtask, info.parallelism)
    }

    /// Once per run, before any subtask writes: removes what killed runs
    /// left (under the target's lock) and checks the target again.
    /// Checkpointed runs also mark the target and remove, exactly by name,
    /// what no checkpoint published: staging leftovers and parts of
    /// checkpoints after `restored` (all parts on a fresh start).
    fn prepare(
        &self,
        ctx: &Ctx,
        run: u64,
        checkpointed: Option<Option<CheckpointId>>,
        adopting: &[weir_core::state::ShardOrigin],
    ) -> Result<()> {
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if *prepared == Some(run) {
            return Ok(());
        }
        if let Some(shard) = ctx.shard() {
            if self.single_file {
                return Err(Error::option(
                    "sink.path",
                    format!(
                        "{}: shards write one directory of part files together (each its \
                         own parts); give a directory path without the .{} extension",
                        self.path.display(),
                        self.format.extension()
                    ),
                ));
            }
            if self.partitioning.is_some() {
                return Err(Error::option(
                    "PARTITIONED BY",
                    format!(
                        "{}: shards (--shard) do not write partitioned targets yet; run the \
                         job as one process, or write unpartitioned parts",
                        self.path.display()
                    ),
                ));
            }
            shards::prepare(&self.path, shard, checkpointed, adopting)?;
            *prepared = Some(run);
            return Ok(());
        }
        for w in target::clean_leftovers(&self.path)? {
            ctx.warn(w.to_string());
        }
        self.check_target()?;
        if let Some(restored) = checkpointed {
            self.prepare_checkpointed(restored)?;
        }
        *prepared = Some(run);
        Ok(())
    }

    fn prepare_checkpointed(&self, restored: Option<CheckpointId>) -> Result<()> {
        if self.single_file {
            return Err(Error::option(
                "sink.path",
                format!(
                    "{}: a checkpointed job writes a directory of part files (one per \
                     subtask and checkpoint, published as each checkpoint completes); \
                     give a directory path without the .{} extension",
                    self.path.display(),
                    self.format.extension()
                ),
            ));
        }
        create_dirs(&self.path)?;
        target::mark(&self.path)?;
        shards::refuse_shard_output(&self.path)?;
        let staging = self.path.join(target::CHECKPOINT_STAGING);
        if staging.exists() {
            let left = target::remove_staging_files(&staging)?;
            if let Some(p) = left.first() {
                return Err(Error::UnsafePath {
                    path: p.clone(),
                    message: "weir did not write this into its staging directory".into(),
                });
            }
        }
        target::remove_unpublished(&self.path, restored, false)
    }
}

/// Missing directories on the way to `dir`, deepest first, then creates them.
pub(crate) fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    Ok(missing)
}

/// A staged output file: renamed to its target on commit (single-file
/// sinks) or left for its directory's commit; removed if never committed,
/// with any directories created for it.
struct StagedFile {
    staging: PathBuf,
    target: Option<PathBuf>,
    created_dirs: Vec<PathBuf>,
    committed: bool,
}

impl PendingCommit for StagedFile {
    fn commit(mut self: Box<Self>) -> Result<()> {
        if let Some(target) = &self.target {
            std::fs::rename(&self.staging, target).map_err(|e| Error::io(target, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.staging);
            // deepest first; fails harmlessly if something else is still there
            for d in &self.created_dirs {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// Replaces a directory target with the run's staging directory.
///
/// ```text
///  staging + marker ─► target still weir's? ─► target parked as STAGING.old ─► staging → target
///     ─► weir's files in .old deleted; anything else (put there meanwhile) moved back
/// ```
struct StagedDir {
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PendingCommit for StagedDir {
    fn commit(mut self: Box<Self>) -> Result<()> {
        target::mark(&self.staging)?;
        let old = self.staging.with_extension("old");
        let parked = match target::check_dir(&self.target)? {
            target::Target::Missing => false,
            target::Target::Empty | target::Target::Owned => {
                std::fs::rename(&self.target, &old).map_err(|e| Error::io(&self.target, e))?;
                true
            }
        };
        if let Err(e) = std::fs::rename(&self.staging, &self.target) {
            if parked {
                let _ = std::fs::rename(&old, &self.target); // put the previous output back
            }
            return Err(Error::io(&self.target, e));
        }
        self.committed = true;
        if parked {
            // only weir's files go; anything that appeared since the check
            // stays the user's: moved back, or (if that place is taken) left
            // in the parked directory, which the next run names in a warning.
            // The new output is in place: nothing here fails the commit.
            if let Ok(foreign) = target::remove_owned(&old) {
                move_back(&foreign, &old, &self.target);
                let _ = target::remove_owned(&old); // the partitions emptied above
            }
        }
        Ok(())
    }

    fn phase(&self) -> u8 {
        1
    }
}

/// Moves the `foreign` entries found in the parked output `old` back to
/// the same place under `target` (inside their partition), never over
/// another entry; returns the ones left in `old` because theirs was taken.
fn move_back(foreign: &[PathBuf], old: &Path, target: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for p in foreign {
        let Ok(rel) = p.strip_prefix(old) else {
            continue;
        };
        let back = target.join(rel);
        if let Some(dir) = back.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let is_dir = std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
        let moved = if is_dir {
            // a folder cannot be linked: renamed only while its place is free
            std::fs::symlink_metadata(&back).is_err() && std::fs::rename(p, &back).is_ok()
        } else {
            // a hard link never replaces what is there; then the old name goes
            std::fs::hard_link(p, &back).is_ok() && std::fs::remove_file(p).is_ok()
        };
        if !moved {
            left.push(p.clone());
        }
    }
    left
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed && self.staging.is_dir() {
            let _ = target::remove_owned(&self.staging);
        }
    }
}

fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => Error::io(path, *io),
                Err(other) => Error::Parquet {
                    path: path.to_path_buf(),
                    message: other.to_string(),
                },
            }
        }
        other => Error::Parquet {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// Prints every batch to standard output as JSON lines.
#[derive(Debug, Clone, Default)]
pub struct StdoutSink;

impl Operator for StdoutSink {
    fn snapshot(&mut self, _: &mut Ctx, _: &mut StateWriter) -> Result<()> {
        Ok(()) // stateless
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        _: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        let mut w = super::json_out::writer(&mut lock);
        w.write(&super::json_out::prepare(&batch, "stdout sink")?)?;
        w.finish()?;
        Ok(())
    }
}

/// The batches collected by [`CollectSink`]s of one job, available after it succeeded.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

impl Collected {
    /// Everything collected (in commit order).
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Total rows collected.
    pub fn num_rows(&self) -> usize {
        self.batches().iter().map(|b| b.num_rows()).sum()
    }

    /// Forgets what was collected (to run the job again).
    pub fn clear(&self) {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Keeps every batch in memory; published to a [`Collected`] when the job succeeds.
#[derive(Debug)]
///
/// In a checkpointed run the rows between two barriers are published when
/// that checkpoint completes, so a restart inside the process (the restart
/// strategy) neither loses nor repeats rows. The collected rows live in
/// memory: a killed process loses them (use a file sink for that).
pub struct CollectSink {
    // config
    target: Collected,
    checkpointed: bool,
    // state
    buffered: Vec<RecordBatch>,
}

impl CollectSink {
    /// A sink adding to `target`.
    pub fn new(target: Collected) -> Self {
        CollectSink {
            target,
            checkpointed: false,
            buffered: Vec::new(),
        }
    }
}

struct CollectCommit {
    target: Collected,
    batches: Vec<RecordBatch>,
}

impl PendingCommit for CollectCommit {
    fn commit(self: Box<Self>) -> Result<()> {
        let mut all = self
            .target
            .batches
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.extend(self.batches);
        Ok(())
    }
}

impl Operator for CollectSink {
    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        _: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        self.buffered.push(batch);
        Ok(())
    }

    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        ctx.commits().stage_for(
            state.checkpoint(),
            Box::new(CollectCommit {
                target: self.target.clone(),
                batches: std::mem::take(&mut self.buffered),
            }),
        );
        Ok(())
    }

    fn restore(&mut self, _: &mut Ctx, _: &StateReader) -> Result<()> {
        self.checkpointed = true;
        Ok(())
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, _: &mut Output) -> Result<()> {
        if self.checkpointed {
            return Ok(()); // published by the final checkpoint
        }
        ctx.commits().stage(Box::new(CollectCommit {
            target: self.target.clone(),
            batches: std::mem::take(&mut self.buffered),
        }));
        Ok(())
    }
}

/// The file under `buf`, its buffered bytes written.
fn flushed(mut buf: BufWriter<File>, target: &Path) -> Result<File> {
    buf.flush().map_err(|e| Error::io(target, e))?;
    buf.into_inner()
        .map_err(|e| Error::io(target, e.into_error()))
}

/// `name` as a CSV field: quoted (quotes doubled) if it holds a comma, a
/// quote or a line break.
fn csv_field(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_put_into_the_old_output_goes_back_to_its_partition() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, target) = (tmp.path().join("old"), tmp.path().join("out"));
        for d in ["dt=1", "dt=2"] {
            std::fs::create_dir_all(old.join(d)).unwrap();
            std::fs::write(old.join(d).join("notes.txt"), d).unwrap();
        }
        std::fs::create_dir_all(target.join("dt=2")).unwrap();
        let foreign = [old.join("dt=1/notes.txt"), old.join("dt=2/notes.txt")];
        assert!(move_back(&foreign[..1], &old, &target).is_empty());
        assert_eq!(
            std::fs::read_to_string(target.join("dt=1/notes.txt")).unwrap(),
            "dt=1"
        );
        assert!(!old.join("dt=1/notes.txt").exists());
        // never over a file already there: the user's file stays where it is
        std::fs::write(target.join("dt=2/notes.txt"), "new").unwrap();
        assert_eq!(
            move_back(&foreign[1..], &old, &target),
            [old.join("dt=2/notes.txt")]
        );
        // a folder goes back while its place is free
        std::fs::create_dir_all(old.join("archive")).unwrap();
        assert!(move_back(&[old.join("archive")], &old, &target).is_empty());
        assert!(target.join("archive").is_dir() && !old.join("archive").exists());
        assert_eq!(
            std::fs::read_to_string(old.join("dt=2/notes.txt")).unwrap(),
            "dt=2"
        );
        assert_eq!(
            std::fs::read_to_string(target.join("dt=2/notes.txt")).unwrap(),
            "new"
        );
    }
}
