//! Sinks: Parquet and JSON-lines files, stdout, and an in-memory collector.
//!
//! File sinks write to a hidden staging file beside the target and stage a
//! [`PendingCommit`] in the job's commit log; the executor publishes every
//! staged file (atomic rename) only after the whole job succeeded. A failed
//! job leaves the output path untouched: staging files are removed on drop.

use crate::error::{Error, Result};
use crate::operator::{Ctx, Operator, Output, PendingCommit, TaskInfo};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};

/// The on-disk format of a file sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet (zstd).
    Parquet,
    /// Newline-delimited JSON objects.
    JsonLines,
}

impl FileFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::JsonLines => "jsonl",
        }
    }

    /// Guesses the format from a path's extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "parquet" => Some(FileFormat::Parquet),
            "jsonl" | "json" | "ndjson" => Some(FileFormat::JsonLines),
            _ => None,
        }
    }
}

/// Where a file sink writes: one file (the sink runs with parallelism 1) or
/// a directory of `part-NNNNN.<ext>` files, one per subtask.
#[derive(Debug)]
pub struct FileSinkSpec {
    // config
    path: PathBuf,
    format: FileFormat,
    single_file: bool,
    schema: SchemaRef,
    // state
    prepare_dir: Once,
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
            prepare_dir: Once::new(),
        })
    }

    /// True if the sink writes one file (and so must run with parallelism 1).
    pub fn is_single_file(&self) -> bool {
        self.single_file
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn target(&self, subtask: usize) -> PathBuf {
        if self.single_file {
            self.path.clone()
        } else {
            self.path
                .join(format!("part-{subtask:05}.{}", self.format.extension()))
        }
    }

    /// Creates the target directory and removes part files of earlier runs,
    /// once per job, when the first file is published.
    fn prepare(&self) -> Result<()> {
        let mut result = Ok(());
        self.prepare_dir.call_once(|| {
            result = (|| {
                let dir = if self.single_file {
                    match self.path.parent() {
                        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                        _ => return Ok(()),
                    }
                } else {
                    self.path.clone()
                };
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                if !self.single_file {
                    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                        let p = entry.map_err(|e| Error::io(&dir, e))?.path();
                        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        if name.starts_with("part-") {
                            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                        }
                    }
                }
                Ok(())
            })();
        });
        result
    }

    /// The sink instance of one subtask.
    pub fn create(self: &Arc<Self>, info: &TaskInfo) -> FileSink {
        FileSink {
            spec: self.clone(),
            subtask: info.subtask,
            writer: None,
            staged: None,
        }
    }
}

/// A staging file that becomes the target file on commit, or disappears
/// (with any directories created for it).
struct StagedFile {
    spec: Arc<FileSinkSpec>,
    staging: PathBuf,
    target: PathBuf,
    created_dirs: Vec<PathBuf>,
    committed: bool,
}

impl StagedFile {
    fn new(spec: &Arc<FileSinkSpec>, subtask: usize) -> Self {
        let target = spec.target(subtask);
        // Stage beside the top-level output path, so nothing appears inside it
        // before commit and the rename stays on one file system.
        let anchor = &spec.path;
        let dir = match anchor.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = anchor.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let staging = dir.join(format!(
            ".{base}.{subtask:05}.weir-{}-{}.inprogress",
            std::process::id(),
            unique()
        ));
        StagedFile {
            spec: spec.clone(),
            staging,
            target,
            created_dirs: Vec::new(),
            committed: false,
        }
    }

    /// Creates the staging file, and its missing parent directories
    /// (remembered, so an aborted job removes them again).
    fn create(&mut self) -> Result<File> {
        if let Some(dir) = self.staging.parent() {
            let mut missing = Vec::new();
            let mut d = Some(dir);
            while let Some(p) = d.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
                missing.push(p.to_path_buf());
                d = p.parent();
            }
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            self.created_dirs = missing;
        }
        File::create(&self.staging).map_err(|e| Error::io(&self.staging, e))
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl PendingCommit for StagedFile {
    fn commit(mut self: Box<Self>) -> Result<()> {
        self.spec.prepare()?;
        std::fs::rename(&self.staging, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.staging);
            // deepest first; fails harmlessly if something else was put there
            for d in &self.created_dirs {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

enum Writer {
    Parquet(ArrowWriter<File>),
    Json(arrow_json::LineDelimitedWriter<BufWriter<File>>),
}

/// One subtask of a Parquet or JSON-lines sink.
pub struct FileSink {
    // config
    spec: Arc<FileSinkSpec>,
    subtask: usize,
    // state
    writer: Option<Writer>,
    // resources
    staged: Option<StagedFile>,
}

impl FileSink {
    fn writer(&mut self) -> Result<&mut Writer> {
        if self.writer.is_none() {
            let mut staged = StagedFile::new(&self.spec, self.subtask);
            let file = staged.create()?;
            let writer = match self.spec.format {
                FileFormat::Parquet => {
                    let props = WriterProperties::builder()
                        .set_compression(Compression::ZSTD(ZstdLevel::default()))
                        .build();
                    Writer::Parquet(
                        ArrowWriter::try_new(file, self.spec.schema.clone(), Some(props))
                            .map_err(|e| parquet_error(&staged.target, e))?,
                    )
                }
                FileFormat::JsonLines => {
                    Writer::Json(arrow_json::LineDelimitedWriter::new(BufWriter::new(file)))
                }
            };
            self.staged = Some(staged);
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("created above"))
    }

    fn target(&self) -> PathBuf {
        self.spec.target(self.subtask)
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

impl Operator for FileSink {
    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        _: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        let target = self.target();
        match self.writer()? {
            Writer::Parquet(w) => w.write(&batch).map_err(|e| parquet_error(&target, e)),
            Writer::Json(w) => w.write(&batch).map_err(|e| match e {
                arrow_schema::ArrowError::IoError(_, io) => Error::io(&target, io),
                other => Error::Arrow(other),
            }),
        }
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, _: &mut Output) -> Result<()> {
        let target = self.target();
        self.writer()?; // an empty result still produces a (valid, empty) file
        let sync = |file: &File| file.sync_all().map_err(|e| Error::io(&target, e));
        match self.writer.take().expect("created above") {
            Writer::Parquet(w) => {
                let file = w.into_inner().map_err(|e| parquet_error(&target, e))?;
                sync(&file)?;
            }
            Writer::Json(mut w) => {
                w.finish().map_err(Error::Arrow)?;
                let mut buf = w.into_inner();
                buf.flush().map_err(|e| Error::io(&target, e))?;
                let file = buf
                    .into_inner()
                    .map_err(|e| Error::io(&target, e.into_error()))?;
                sync(&file)?;
            }
        }
        let staged = self.staged.take().expect("created with the writer");
        ctx.commits().stage(Box::new(staged));
        Ok(())
    }
}

/// Prints every batch to standard output as JSON lines.
#[derive(Debug, Clone, Default)]
pub struct StdoutSink;

impl Operator for StdoutSink {
    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        _: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        let mut w = arrow_json::LineDelimitedWriter::new(&mut lock);
        w.write(&batch)?;
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
pub struct CollectSink {
    target: Collected,
    buffered: Vec<RecordBatch>,
}

impl CollectSink {
    /// A sink adding to `target`.
    pub fn new(target: Collected) -> Self {
        CollectSink {
            target,
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

    fn on_end_of_input(&mut self, ctx: &mut Ctx, _: &mut Output) -> Result<()> {
        ctx.commits().stage(Box::new(CollectCommit {
            target: self.target.clone(),
            batches: std::mem::take(&mut self.buffered),
        }));
        Ok(())
    }
}
