//! One subtask of a file sink: its open parts (one per partition of a
//! partitioned sink, else one), how they are staged, and how they are
//! published (at the end of a run, or checkpoint by checkpoint).
//!
//! May use the rest of `files`, `weir_core` and arrow/parquet.

use super::partition::{self, Splitter, SUCCESS_FILE};
use super::{create_dirs, flushed, parquet_error, shards, target, FileFormat, FileSinkSpec};
use super::{StagedDir, StagedFile};
use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::operator::{Ctx, Operator, Output, PendingCommit};
use weir_core::state::{StateReader, StateWriter};

enum Writer {
    Parquet(ArrowWriter<File>),
    Json(arrow_json::LineDelimitedWriter<Counted>),
    Csv(Box<arrow_csv::Writer<Counted>>),
}

/// A buffered file that counts the bytes written into it (a rolling
/// policy's size of a JSON or CSV part, buffered bytes included).
struct Counted {
    inner: BufWriter<File>,
    bytes: Arc<AtomicU64>,
}

impl Counted {
    fn new(file: File) -> (Counted, Arc<AtomicU64>) {
        let bytes = Arc::new(AtomicU64::new(0));
        let counted = Counted {
            inner: BufWriter::new(file),
            bytes: Arc::clone(&bytes),
        };
        (counted, bytes)
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A part being written: its writer and its staged file.
struct Open {
    writer: Writer,
    staged: StagedFile,
    /// Wall clock (ms) when it was opened and when last written (rolling).
    opened_ms: i64,
    written_ms: i64,
    /// Bytes written into a JSON or CSV part (Parquet reports its own).
    counted: Option<Arc<AtomicU64>>,
}

impl Open {
    /// Bytes the part holds so far (Parquet: with its row group in progress).
    fn size(&self) -> u64 {
        match &self.writer {
            Writer::Parquet(w) => (w.bytes_written() + w.in_progress_size()) as u64,
            Writer::Json(_) | Writer::Csv(_) => self
                .counted
                .as_ref()
                .map_or(0, |c| c.load(Ordering::Relaxed)),
        }
    }

    /// Finishes the part (footer, flush, fsync): its staged file.
    #[must_use = "a staged file dropped uncommitted is deleted"]
    fn close(self) -> Result<StagedFile> {
        let target = &self.staged.staging;
        let sync = |file: &File| file.sync_all().map_err(|e| Error::io(target, e));
        match self.writer {
            Writer::Parquet(w) => {
                let file = w.into_inner().map_err(|e| parquet_error(target, e))?;
                sync(&file)?
            }
            Writer::Json(mut w) => {
                w.finish().map_err(Error::Arrow)?;
                sync(&flushed(w.into_inner().inner, target)?)?
            }
            Writer::Csv(w) => sync(&flushed((*w).into_inner().inner, target)?)?,
        }
        Ok(self.staged)
    }
}

/// State entry: partitions written but not committed yet (path → the
/// wall clock of their first row). A restore commits every partition in
/// the target that no old subtask lists here (a crash may have come
/// between the checkpoint and its `_SUCCESS` files).
const UNCOMMITTED: &str = "partitions_uncommitted";

/// One subtask of a Parquet, JSON-lines or CSV sink.
///
/// In a checkpointed run it is a two-phase-commit sink:
/// ```text
///  rows ─► out/avg/.weir-staging/inprogress-<run>-<s>-<seq>.ext   (one per partition;
///          a rolling policy closes it early and opens the next: kept for barrier N)
///  barrier N ─► close + fsync ─► rename to .weir-staging/[k=v/…/]part-<N>-<s>[-r<k>].ext (pre-commit),
///               listed in the state for the coordinator; partitions now due listed too
///  checkpoint N complete ─► the coordinator renames them to out/avg/[k=v/…/]part-<N>-<s>.ext
///               (commit), then writes the due partitions' _SUCCESS files
///  restore from N ─► N's renames and _SUCCESS files again (idempotent); staging
///               leftovers and parts of later checkpoints removed
/// ```
pub struct FileSink {
    // config
    spec: Arc<FileSinkSpec>,
    subtask: usize,
    parallelism: usize,
    checkpointed: bool,
    // state
    part_seq: u64,
    /// Open parts by partition path (`""` for an unpartitioned sink).
    open: BTreeMap<String, Open>,
    /// Partitions written and not committed yet, with their first row's wall clock.
    uncommitted: BTreeMap<String, i64>,
    /// Parts closed by the rolling policy, waiting for the next checkpoint
    /// (checkpointed runs), with their partition paths.
    rolled: Vec<(StagedFile, String)>,
    /// Per partition path, the parts this subtask opened (a run without
    /// checkpoints names its K-th part by K when the sink rolls).
    parts: BTreeMap<String, u64>,
    /// The input ended (every partition is then complete).
    ended: bool,
}

impl FileSink {
    pub(super) fn new(spec: Arc<FileSinkSpec>, subtask: usize, parallelism: usize) -> Self {
        FileSink {
            spec,
            subtask,
            parallelism,
            checkpointed: false,
            part_seq: 0,
            open: BTreeMap::new(),
            uncommitted: BTreeMap::new(),
            rolled: Vec::new(),
            parts: BTreeMap::new(),
            ended: false,
        }
    }

    fn splitter(&self) -> Option<&Splitter> {
        self.spec.partitioning.as_ref().map(|(_, s)| s)
    }

    /// The open part of partition `rel`, created (and staged) if needed.
    fn writer(&mut self, ctx: &Ctx, rel: &str) -> Result<&mut Writer> {
        if !self.open.contains_key(rel) {
            if let Some((partitioning, _)) = &self.spec.partitioning {
                partitioning.time_of(rel)?; // a partition that could never commit is refused
            }
            let open = self.open_part(ctx, rel)?;
            if self.spec.partitioning.is_some() {
                self.uncommitted
                    .entry(rel.to_string())
                    .or_insert_with(weir_core::operator::now_ms);
            }
            self.open.insert(rel.to_string(), open);
        }
        Ok(&mut self.open.get_mut(rel).expect("opened above").writer)
    }

    fn open_part(&mut self, ctx: &Ctx, rel: &str) -> Result<Open> {
        let spec = self.spec.clone();
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
            let dir = spec.staging_dir(run).join(rel);
            let k = self.parts.get(rel).copied().unwrap_or(0);
            let roll = if spec.rolling.rolls() {
                super::rolling::roll_suffix(k)
            } else {
                String::new()
            };
            let name = format!("part-{:05}{roll}.{}", self.subtask, spec.format.extension());
            (dir.clone(), dir.join(name), None)
        };
        if !self.checkpointed {
            // (checkpointed parts are numbered at each snapshot)
            *self.parts.entry(rel.to_string()).or_default() += 1;
        }
        let created_dirs = create_dirs(&dir)?;
        let mut staged = StagedFile {
            staging,
            target,
            created_dirs,
            committed: false,
        };
        if !spec.single_file && !self.checkpointed && ctx.shard().is_none() {
            // the staging directory and its partitions, deepest first, go
            // when empty (StagedDir removes the rest)
            staged.created_dirs = Path::new(rel)
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .map(|a| spec.staging_dir(run).join(a))
                .chain([spec.staging_dir(run)])
                .collect();
        }
        let file = File::create(&staged.staging).map_err(|e| Error::io(&staged.staging, e))?;
        let schema = spec.file_schema();
        let mut counted = None;
        let writer = match spec.format {
            FileFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                Writer::Parquet(
                    ArrowWriter::try_new(file, schema.clone(), Some(props))
                        .map_err(|e| parquet_error(&staged.staging, e))?,
                )
            }
            FileFormat::JsonLines => {
                let (out, bytes) = Counted::new(file);
                counted = Some(bytes);
                Writer::Json(super::super::json_out::writer(out))
            }
            FileFormat::Csv => {
                // the header is written here, so a part without rows has it too
                let (mut out, bytes) = Counted::new(file);
                counted = Some(bytes);
                let header: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| super::csv_field(f.name()))
                    .collect();
                writeln!(out, "{}", header.join(",")).map_err(|e| Error::io(&staged.staging, e))?;
                Writer::Csv(Box::new(
                    arrow_csv::WriterBuilder::new()
                        .with_header(false)
                        .build(out),
                ))
            }
        };
        let now = weir_core::operator::now_ms();
        Ok(Open {
            writer,
            staged,
            opened_ms: now,
            written_ms: now,
            counted,
        })
    }

    /// Writes `batch` into the open part of partition `rel`.
    fn write(&mut self, ctx: &mut Ctx, rel: &str, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            // no part for no rows (an empty result gets its one at the end)
            return Ok(());
        }
        self.writer(ctx, rel)?;
        let sink = &self.spec.path;
        let open = self.open.get_mut(rel).expect("opened above");
        let target = &open.staged.staging;
        let io = |e: arrow_schema::ArrowError| match e {
            arrow_schema::ArrowError::IoError(_, io) => Error::io(target, io),
            other => Error::Arrow(other),
        };
        match &mut open.writer {
            Writer::Parquet(w) => w.write(batch).map_err(|e| parquet_error(target, e)),
            Writer::Json(w) => w
                .write(&super::super::json_out::prepare(
                    batch,
                    &format!("JSON sink {}", sink.display()),
                )?)
                .map_err(io),
            Writer::Csv(w) => w.write(batch).map_err(io),
        }?;
        let rolling = self.spec.rolling;
        if rolling.rolls() {
            let now = weir_core::operator::now_ms();
            open.written_ms = now;
            let due = rolling.due(open.size(), open.opened_ms, now, now);
            if due {
                self.roll(ctx, rel)?;
            }
            self.arm(ctx);
        }
        Ok(())
    }

    /// Asks for the next processing-time check of a timed rolling policy
    /// while parts are open.
    fn arm(&self, ctx: &mut Ctx) {
        let rolling = self.spec.rolling;
        if rolling.timed() && !self.open.is_empty() {
            let next = weir_core::operator::now_ms().saturating_add(rolling.check_ms());
            let at = ctx.processing_timer().map_or(next, |t| t.min(next));
            ctx.set_processing_timer(Some(at));
        }
    }

    /// Closes the open part of partition `rel` (the rolling policy says
    /// so): checkpointed, it waits for the next checkpoint; otherwise it is
    /// published with the run, as the last part will be.
    fn roll(&mut self, ctx: &mut Ctx, rel: &str) -> Result<()> {
        let Some(open) = self.open.remove(rel) else {
            return Ok(());
        };
        let mut staged = open.close()?;
        if self.checkpointed {
            self.rolled.push((staged, rel.to_string()));
        } else {
            if ctx.shard().is_some() {
                staged.target = None; // renamed by the shard's commit
            }
            ctx.commits().stage(Box::new(staged));
        }
        Ok(())
    }

    /// End of input in shard `shard`: stages the last part (checkpointed:
    /// the final checkpoint publishes it) and, once per run, the shard's commit.
    fn end_shard(&mut self, ctx: &mut Ctx, shard: weir_core::shard::Shard) -> Result<()> {
        if !self.checkpointed {
            // (checkpointed: the final checkpoint closes and publishes the open part)
            if self.parts.is_empty() {
                self.writer(ctx, "")?; // an empty result still produces a (valid, empty) file
            }
            for (mut staged, _) in self.close_all()? {
                staged.target = None; // renamed by the shard's commit
                ctx.commits().stage(Box::new(staged));
            }
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
                rolls: spec.rolling.rolls(),
            })
        });
        Ok(())
    }

    /// Finishes every open part (footer, flush, fsync): their staged files
    /// and partition paths.
    #[must_use = "a staged file dropped uncommitted is deleted"]
    fn close_all(&mut self) -> Result<Vec<(StagedFile, String)>> {
        let mut closed = Vec::new();
        for (rel, open) in std::mem::take(&mut self.open) {
            closed.push((open.close()?, rel));
        }
        Ok(closed)
    }

    /// The uncommitted partitions that are complete now, removed from the
    /// uncommitted set: by the lowest watermark every subtask reported (an
    /// ended subtask's is the end of time) or by the wall clock, as the
    /// commit trigger says.
    fn take_due(&mut self, lowest_watermark: Option<i64>) -> Result<Vec<String>> {
        let Some((partitioning, _)) = &self.spec.partitioning else {
            return Ok(Vec::new());
        };
        let Some(commit) = &partitioning.commit else {
            self.uncommitted.clear();
            return Ok(Vec::new());
        };
        let now = weir_core::operator::now_ms();
        let all_ended = lowest_watermark == Some(i64::MAX);
        let mut due = Vec::new();
        for (rel, first) in &self.uncommitted {
            let ready = match &commit.trigger {
                partition::CommitTrigger::ProcessTime => {
                    all_ended || now >= first.saturating_add(commit.delay_ms)
                }
                partition::CommitTrigger::PartitionTime { .. } => {
                    match (partitioning.time_of(rel)?, lowest_watermark) {
                        (Some(t), Some(w)) => w >= t.saturating_add(commit.delay_ms),
                        _ => false,
                    }
                }
            };
            if ready {
                due.push(rel.clone());
            }
        }
        for rel in &due {
            self.uncommitted.remove(rel);
        }
        Ok(due)
    }

    /// Every partition this subtask wrote (a run without checkpoints
    /// publishes them all at once, when every subtask finished), if the
    /// sink commits partitions.
    fn take_all(&mut self) -> Vec<String> {
        let all = std::mem::take(&mut self.uncommitted);
        let commits = matches!(&self.spec.partitioning, Some((p, _)) if p.commit.is_some());
        if commits {
            all.into_keys().collect()
        } else {
            Vec::new()
        }
    }

    /// Writes `_SUCCESS` into every partition of the target with parts
    /// that is not in `pending` (when the sink commits partitions).
    fn commit_finished(&self, pending: &std::collections::BTreeSet<String>) -> Result<()> {
        let Some((partitioning, _)) = &self.spec.partitioning else {
            return Ok(());
        };
        // one subtask walks the target for all (every old subtask's pending set is read)
        if partitioning.commit.is_none() || self.subtask != 0 || !self.spec.path.is_dir() {
            return Ok(());
        }
        commit_partitions(&self.spec.path, partitioning.columns.len(), pending)
    }
}

/// Writes `_SUCCESS` into every partition `depth` levels under `target`
/// that holds parts and is not in `pending`.
fn commit_partitions(
    target: &Path,
    depth: usize,
    pending: &std::collections::BTreeSet<String>,
) -> Result<()> {
    SuccessFiles {
        target: target.to_path_buf(),
        partitions: target::partition_leaves(target, depth)?
            .into_iter()
            .filter(|rel| !pending.contains(rel))
            .collect(),
    }
    .write()
}

/// Writes the `_SUCCESS` file of each partition (kept if there already).
struct SuccessFiles {
    target: PathBuf,
    partitions: Vec<String>,
}

impl PendingCommit for SuccessFiles {
    fn commit(self: Box<Self>) -> Result<()> {
        self.write()
    }
}

impl SuccessFiles {
    /// Writes the files now (into a staging directory: published with it).
    fn write(&self) -> Result<()> {
        for rel in &self.partitions {
            // only into a partition directory weir made (a real one, not a
            // link): a name from a checkpoint never creates a directory
            let dir = self.target.join(rel);
            if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let path = dir.join(SUCCESS_FILE);
            match File::create_new(&path) {
                Ok(f) => f.sync_all().map_err(|e| Error::io(&path, e))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Ok(())
    }
}

/// Writes `_SUCCESS` into every partition of a finished job's target.
struct EveryPartition {
    target: PathBuf,
    depth: usize,
}

impl PendingCommit for EveryPartition {
    fn commit(self: Box<Self>) -> Result<()> {
        commit_partitions(&self.target, self.depth, &Default::default())
    }
}

impl Operator for FileSink {
    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        let ext = self.spec.format.extension();
        let mut published = Vec::new();
        // the parts rolled since the last checkpoint, then the open ones;
        // with a rolling policy each is the K-th of its partition (in order)
        let mut parts = std::mem::take(&mut self.rolled);
        parts.extend(self.close_all()?);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (mut staged, rel) in parts {
            let k = counts.entry(rel.clone()).or_default();
            let roll = if self.spec.rolling.rolls() {
                super::rolling::roll_suffix(*k)
            } else {
                String::new()
            };
            *k += 1;
            let name = format!(
                "part-{}{:08}-{:05}{roll}.{ext}",
                target::shard_tag(ctx.shard()),
                state.checkpoint(),
                self.subtask
            );
            let dir = self.spec.path.join(target::CHECKPOINT_STAGING).join(&rel);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let pending = dir.join(&name);
            std::fs::rename(&staged.staging, &pending).map_err(|e| Error::io(&pending, e))?;
            staged.committed = true; // from here on the checkpoint owns the file
            published.push((pending, self.spec.path.join(&rel).join(name)));
        }
        if !published.is_empty() {
            state.publish(&published)?;
        }
        if self.spec.partitioning.is_some() {
            let watermark = if self.ended {
                Some(i64::MAX)
            } else {
                ctx.watermark()
            };
            let lowest = self
                .spec
                .watermarks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .report(
                    ctx.commits().run_id(),
                    state.checkpoint(),
                    self.subtask,
                    self.parallelism,
                    watermark,
                );
            let due = self.take_due(lowest)?;
            state.put(UNCOMMITTED, &self.uncommitted)?;
            if !due.is_empty() {
                ctx.commits().stage_for(
                    state.checkpoint(),
                    Box::new(SuccessFiles {
                        target: self.spec.path.clone(),
                        partitions: due,
                    }),
                );
            }
        }
        Ok(())
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.checkpointed = true;
        self.spec.prepare(
            ctx,
            ctx.commits().run_id(),
            Some(state.checkpoint()),
            &state.shard_origins(),
        )?;
        if self.spec.partitioning.is_none() {
            return Ok(());
        }
        // nothing in a checkpoint is trusted to name a path
        let checked = |rel: &String| -> Result<()> {
            if partition::is_partition_path(Path::new(rel)) {
                Ok(())
            } else {
                Err(Error::UnsafePath {
                    path: self.spec.path.join(rel),
                    message: "the checkpoint names this as a partition of the sink, but it is \
                              not a k=v/… path inside the target"
                        .into(),
                })
            }
        };
        for old in state.values::<BTreeMap<String, i64>>(UNCOMMITTED)? {
            for (rel, first) in old {
                checked(&rel)?;
                let at = self.uncommitted.entry(rel).or_insert(first);
                *at = (*at).min(first);
            }
        }
        // what no old subtask still waited for was committed by the restored
        // checkpoint or an earlier one; its _SUCCESS may not have been written
        let mut pending = std::collections::BTreeSet::new();
        for old in state.every_value::<BTreeMap<String, i64>>(UNCOMMITTED)? {
            pending.extend(old.into_keys());
        }
        self.commit_finished(&pending)
    }

    fn on_already_finished(&mut self, ctx: &mut Ctx) -> Result<()> {
        // killed between the final checkpoint and its _SUCCESS files: every
        // partition is complete
        self.commit_finished(&Default::default())?;
        // a shard killed between its final checkpoint and its marker
        match ctx.shard() {
            Some(shard) if !self.spec.single_file && self.spec.path.is_dir() => {
                Box::new(shards::ShardCommit {
                    dir: self.spec.path.clone(),
                    shard,
                    staged_prefix: None,
                    extension: self.spec.format.extension(),
                    rolls: self.spec.rolling.rolls(),
                })
                .commit()
            }
            _ => Ok(()),
        }
    }

    fn on_processing_time(&mut self, now: i64, ctx: &mut Ctx, _: &mut Output) -> Result<()> {
        let rolling = self.spec.rolling;
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| rolling.due_by_time(o.opened_ms, o.written_ms, now))
            .map(|(rel, _)| rel.clone())
            .collect();
        for rel in due {
            self.roll(ctx, &rel)?;
        }
        ctx.set_processing_timer(None);
        self.arm(ctx);
        Ok(())
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        match self.splitter() {
            None => self.write(ctx, "", &batch),
            Some(s) => {
                for (rel, rows) in s.split(&batch)? {
                    self.write(ctx, &rel, &rows)?;
                }
                Ok(())
            }
        }
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, _: &mut Output) -> Result<()> {
        self.ended = true;
        if let Some(shard) = ctx.shard() {
            return self.end_shard(ctx, shard);
        }
        if self.checkpointed {
            // the final checkpoint closes and publishes the open parts; once
            // it completed and the job succeeded, every partition is complete
            if let Some((p, _)) = self
                .spec
                .partitioning
                .as_ref()
                .filter(|(p, _)| p.commit.is_some())
            {
                let (target, depth) = (self.spec.path.clone(), p.columns.len());
                ctx.commits()
                    .stage_once(&format!("partitions of {}", target.display()), || {
                        Box::new(EveryPartition { target, depth })
                    });
            }
            return Ok(());
        }
        if self.spec.partitioning.is_none() && self.parts.is_empty() {
            self.writer(ctx, "")?; // an empty result still produces a (valid, empty) file
        }
        let spec = self.spec.clone();
        let run = ctx.commits().run_id();
        let staging = spec.staging_dir(run);
        if !spec.single_file {
            // a partitioned sink without rows still replaces its target (with an empty one)
            spec.prepare(ctx, run, None, &[])?;
            create_dirs(&staging)?;
        }
        for (staged, _) in self.close_all()? {
            ctx.commits().stage(Box::new(staged));
        }
        // every partition is complete once every subtask succeeded, which
        // is when the staging directory goes in: its _SUCCESS goes in with it
        let due = self.take_all();
        SuccessFiles {
            target: staging.clone(),
            partitions: due,
        }
        .write()?;
        if !spec.single_file {
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
