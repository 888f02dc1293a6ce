//! Sinks: Parquet and JSON-lines files, stdout, and an in-memory collector.
//!
//! File sinks write to hidden staging files beside the target and stage
//! [`PendingCommit`]s in the job's commit log; the executor publishes them
//! (atomic renames) only after the whole job succeeded. A failed job leaves
//! the output path untouched: staging files are removed on drop.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use weir_core::error::{Error, Result};
use weir_core::message::CheckpointId;
use weir_core::operator::{Ctx, Operator, Output, PendingCommit, TaskInfo};
use weir_core::state::{StateReader, StateWriter};

mod shards;
mod target;

pub use shards::{target_status, TargetStatus};

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
            prepared: Mutex::new(None),
        })
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
        FileSink {
            spec: self.clone(),
            subtask: info.subtask,
            checkpointed: false,
            part_seq: 0,
            writer: None,
            staged: None,
        }
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
        for entry in std::fs::read_dir(&self.path).map_err(|e| Error::io(&self.path, e))? {
            let p = entry.map_err(|e| Error::io(&self.path, e))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let stale = match (target::part_checkpoint(name), restored) {
                (Some(id), Some(r)) => id > r,
                (_, None) => target::is_part(name),
                (None, Some(_)) => false,
            };
            if stale {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        Ok(())
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
            // only weir's files go; anything that appeared since the check stays the user's
            for p in target::remove_owned(&old)? {
                if let Some(name) = p.file_name() {
                    let back = self.target.join(name);
                    std::fs::rename(&p, &back).map_err(|e| Error::io(&back, e))?;
                }
            }
            let _ = std::fs::remove_dir(&old);
        }
        Ok(())
    }

    fn phase(&self) -> u8 {
        1
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed && self.staging.is_dir() {
            let _ = target::remove_owned(&self.staging);
        }
    }
}

enum Writer {
    Parquet(ArrowWriter<File>),
    Json(arrow_json::LineDelimitedWriter<BufWriter<File>>),
    Csv(arrow_csv::Writer<BufWriter<File>>),
}

/// One subtask of a Parquet or JSON-lines sink.
///
/// In a checkpointed run it is a two-phase-commit sink:
/// ```text
///  rows ─► out/avg/.weir-staging/inprogress-<run>-<s>-<seq>.ext
///  barrier N ─► close + fsync ─► rename to .weir-staging/part-<N>-<s>.ext (pre-commit),
///               listed in the state for the coordinator
///  checkpoint N complete ─► the coordinator renames it to out/avg/part-<N>-<s>.ext (commit)
///  restore from N ─► N's renames again (idempotent); staging leftovers and
///               parts of later checkpoints removed
/// ```
pub struct FileSink {
    // config
    spec: Arc<FileSinkSpec>,
    subtask: usize,
    checkpointed: bool,
    // state
    part_seq: u64,
    writer: Option<Writer>,
    // resources
    staged: Option<StagedFile>,
}

impl FileSink {
    fn writer(&mut self, ctx: &Ctx) -> Result<&mut Writer> {
        if self.writer.is_none() {
            let spec = &self.spec;
            let run = ctx.commits().run_id();
            if !self.checkpointed {
                spec.prepare(ctx, run, None, &[])?;
            }
            let (dir, staging, target) = if self.checkpointed || ctx.shard().is_some() {
                let dir = spec.path.join(target::CHECKPOINT_STAGING);
                self.part_seq += 1;
                let name = format!(
                    "inprogress-{}{}-{run}-{}-{}.{}",
                    target::shard_tag(ctx.shard()),
                    std::process::id(),
                    self.subtask,
                    self.part_seq,
                    spec.format.extension()
                );
                (dir.clone(), dir.join(name), None)
            } else if spec.single_file {
                let dir = spec.parent();
                let name = format!(
                    ".{}.weir-{}-{run}.inprogress",
                    spec.base_name(),
                    std::process::id()
                );
                (dir.clone(), dir.join(name), Some(spec.path.clone()))
            } else {
                let dir = spec.staging_dir(run);
                let name = format!("part-{:05}.{}", self.subtask, spec.format.extension());
                (dir.clone(), dir.join(name), None)
            };
            let created_dirs = create_dirs(&dir)?;
            let mut staged = StagedFile {
                staging,
                target,
                created_dirs,
                committed: false,
            };
            if !spec.single_file && !self.checkpointed && ctx.shard().is_none() {
                // the staging directory itself is removed by StagedDir (or when empty)
                staged.created_dirs.insert(0, dir);
            }
            let file = File::create(&staged.staging).map_err(|e| Error::io(&staged.staging, e))?;
            let writer = match spec.format {
                FileFormat::Parquet => {
                    let props = WriterProperties::builder()
                        .set_compression(Compression::ZSTD(ZstdLevel::default()))
                        .build();
                    Writer::Parquet(
                        ArrowWriter::try_new(file, spec.schema.clone(), Some(props))
                            .map_err(|e| parquet_error(&staged.staging, e))?,
                    )
                }
                FileFormat::JsonLines => {
                    Writer::Json(super::json_out::writer(BufWriter::new(file)))
                }
                FileFormat::Csv => {
                    // the header is written here, so a part without rows has it too
                    let mut out = BufWriter::new(file);
                    let header: Vec<String> = spec
                        .schema
                        .fields()
                        .iter()
                        .map(|f| csv_field(f.name()))
                        .collect();
                    writeln!(out, "{}", header.join(","))
                        .map_err(|e| Error::io(&staged.staging, e))?;
                    Writer::Csv(
                        arrow_csv::WriterBuilder::new()
                            .with_header(false)
                            .build(out),
                    )
                }
            };
            self.staged = Some(staged);
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("created above"))
    }

    fn target(&self) -> PathBuf {
        match (&self.staged, self.spec.single_file) {
            (Some(s), _) => s.staging.clone(),
            (None, true) => self.spec.path.clone(),
            (None, false) => self.spec.path.join(format!("part-{:05}", self.subtask)),
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

impl FileSink {
    /// End of input in shard `shard`: stages the last part (checkpointed:
    /// the final checkpoint publishes it) and, once per run, the shard's commit.
    fn end_shard(&mut self, ctx: &mut Ctx, shard: weir_core::shard::Shard) -> Result<()> {
        if self.checkpointed {
            self.close_writer()?;
        } else {
            self.writer(ctx)?; // an empty result still produces a (valid, empty) file
            self.close_writer()?;
            let mut staged = self.staged.take().expect("created with the writer");
            staged.target = None; // renamed by the shard's commit
            ctx.commits().stage(Box::new(staged));
        }
        let spec = &self.spec;
        let staged_prefix = (!self.checkpointed).then(|| {
            format!(
                "inprogress-{}{}-{}-",
                target::shard_tag(Some(shard)),
                std::process::id(),
                ctx.commits().run_id()
            )
        });
        let key = format!("shard commit {}", spec.path.display());
        ctx.commits().stage_once(&key, || {
            Box::new(shards::ShardCommit {
                dir: spec.path.clone(),
                shard,
                staged_prefix,
                extension: spec.format.extension(),
            })
        });
        Ok(())
    }

    /// Finishes the open file (footer, flush, fsync), if any.
    fn close_writer(&mut self) -> Result<()> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let target = self.target();
        let sync = |file: &File| file.sync_all().map_err(|e| Error::io(&target, e));
        match writer {
            Writer::Parquet(w) => {
                let file = w.into_inner().map_err(|e| parquet_error(&target, e))?;
                sync(&file)
            }
            Writer::Json(mut w) => {
                w.finish().map_err(Error::Arrow)?;
                sync(&flushed(w.into_inner(), &target)?)
            }
            Writer::Csv(w) => sync(&flushed(w.into_inner(), &target)?),
        }
    }
}

impl Operator for FileSink {
    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        self.close_writer()?;
        let Some(mut staged) = self.staged.take() else {
            return Ok(()); // no rows since the last checkpoint: no part
        };
        let ext = self.spec.format.extension();
        let name = format!(
            "part-{}{:08}-{:05}.{ext}",
            target::shard_tag(ctx.shard()),
            state.checkpoint(),
            self.subtask
        );
        let pending = self.spec.path.join(target::CHECKPOINT_STAGING).join(&name);
        std::fs::rename(&staged.staging, &pending).map_err(|e| Error::io(&pending, e))?;
        staged.committed = true; // from here on the checkpoint owns the file
        state.publish(&[(pending, self.spec.path.join(name))])
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.checkpointed = true;
        self.spec.prepare(
            ctx,
            ctx.commits().run_id(),
            Some(state.checkpoint()),
            &state.shard_origins(),
        )
    }

    fn on_already_finished(&mut self, ctx: &mut Ctx) -> Result<()> {
        // a shard killed between its final checkpoint and its marker
        match ctx.shard() {
            Some(shard) if !self.spec.single_file && self.spec.path.is_dir() => {
                Box::new(shards::ShardCommit {
                    dir: self.spec.path.clone(),
                    shard,
                    staged_prefix: None,
                    extension: self.spec.format.extension(),
                })
                .commit()
            }
            _ => Ok(()),
        }
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        self.writer(ctx)?;
        let target = self.target();
        match self.writer.as_mut().expect("created above") {
            Writer::Parquet(w) => w.write(&batch).map_err(|e| parquet_error(&target, e)),
            Writer::Json(w) => w
                .write(&super::json_out::prepare(
                    &batch,
                    &format!("JSON sink {}", self.spec.path.display()),
                )?)
                .map_err(|e| match e {
                    arrow_schema::ArrowError::IoError(_, io) => Error::io(&target, io),
                    other => Error::Arrow(other),
                }),
            Writer::Csv(w) => w.write(&batch).map_err(|e| match e {
                arrow_schema::ArrowError::IoError(_, io) => Error::io(&target, io),
                other => Error::Arrow(other),
            }),
        }
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, _: &mut Output) -> Result<()> {
        if let Some(shard) = ctx.shard() {
            return self.end_shard(ctx, shard);
        }
        if self.checkpointed {
            // the last part is published by the final checkpoint
            return self.close_writer();
        }
        self.writer(ctx)?; // an empty result still produces a (valid, empty) file
        self.close_writer()?;
        let staged = self.staged.take().expect("created with the writer");
        ctx.commits().stage(Box::new(staged));
        if !self.spec.single_file {
            let spec = &self.spec;
            let staging = spec.staging_dir(ctx.commits().run_id());
            ctx.commits()
                .stage_once(&staging.display().to_string(), || {
                    Box::new(StagedDir {
                        staging: staging.clone(),
                        target: spec.path.clone(),
                        committed: false,
                    })
                });
        }
        Ok(())
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
