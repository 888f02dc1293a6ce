//! CSV files: a bounded source with a header-inferred (or given) schema,
//! projection and event time.
//!
//! Owns [`CsvSourceSpec`] (the planner's view: files, schema, options) and
//! [`CsvSource`] (one subtask's reader). Each file is one split, read in
//! order by the subtask `file index % parallelism`, with its own watermark
//! generator, like a Parquet row group. May use `weir_core::operator`,
//! `weir_core::time`, `weir_core::state`, `weir_core::error`, the parent module's split
//! progress and glob helpers, and `arrow-csv`.
//!
//! ```text
//!  file ──BufReader──► arrow-csv Decoder ──batch_size rows──► flush ──► batch
//!                         │ bytes consumed up to the last row of the batch
//!                         └──► position (checkpoint: byte offset of the next row)
//!  restore: seek to the offset, decode without a header, same rows follow
//! ```
//!
//! Checkpoints: the state (`csv.splits`, see `split_progress`) is the byte
//! offset reached in each file started, the current file's watermark
//! generator and the last watermark; a restore at another parallelism
//! takes the files the new assignment gives it.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_csv::reader::{Decoder, Format, ReaderBuilder};
use arrow_schema::{DataType, Schema, SchemaRef};

use super::split_progress::{self, SplitCursor};
use weir_core::error::{Error, Result};
use weir_core::operator::{Boundedness, Ctx, Output, Source, SourcePoll, SourceSpec, TaskInfo};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::{
    event_times, validate_time_column, LatenessRule, SplitClock, WatermarkStrategy,
};

/// The state entry of a CSV source.
const STATE: &str = "csv.splits";
/// Rows read to infer a schema.
const INFER_ROWS: usize = 1000;

/// One CSV file to read.
#[derive(Debug, Clone)]
struct CsvFile {
    path: PathBuf,
    /// Size in bytes when planned (a checkpoint position must lie within).
    bytes: u64,
}

/// The files of a CSV source and how to read them.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weir::connectors::CsvSourceSpec;
/// use weir::{ExecConfig, Job, WatermarkStrategy};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("readings.csv");
/// std::fs::write(&path, "vehicle,t,speed\n1,1000,50.5\n2,2000,61.0\n1,9000,70.0\n")?;
/// let spec = CsvSourceSpec::try_new(&[path])?.with_projection(&["vehicle", "t"])?;
/// let job = Job::new();
/// let rows = job
///     .source_spec(Arc::new(spec))
///     .assign_timestamps("t", WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1)))?
///     .collect()?;
/// job.run(&ExecConfig::batch())?;
/// assert_eq!((rows.num_rows(), rows.batches()[0].num_columns()), (3, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CsvSourceSpec {
    // config
    /// The paths as given (files, folders, patterns).
    given: Vec<PathBuf>,
    files: Vec<CsvFile>,
    /// The columns of every file, in file order.
    file_schema: SchemaRef,
    /// The columns emitted (the projection of `file_schema`).
    schema: SchemaRef,
    /// Indices into `file_schema` of the emitted columns, if projected.
    projection: Option<Vec<usize>>,
    header: bool,
    delimiter: u8,
    batch_size: usize,
    event_time: Option<(usize, WatermarkStrategy)>,
}

impl CsvSourceSpec {
    /// The CSV files at `paths` (files, folders read recursively for
    /// `*.csv`, or glob patterns), with a header line naming the columns;
    /// column types are inferred from the first file's first 1000 rows.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming a path that does not exist or cannot be read;
    /// [`Error::Csv`] naming a file whose header differs from the first's,
    /// or when no CSV file was found.
    pub fn try_new(paths: &[PathBuf]) -> Result<Self> {
        CsvSourceSpec::build(paths, None, true, b',')
    }

    /// Like [`CsvSourceSpec::try_new`] with the options given: `schema`
    /// (the files' columns in order; inferred if `None`), whether the files
    /// start with a header line, and the field delimiter.
    ///
    /// # Errors
    ///
    /// As [`CsvSourceSpec::try_new`]; without a header a schema must be given.
    pub fn try_with_options(
        paths: &[PathBuf],
        schema: Option<SchemaRef>,
        header: bool,
        delimiter: u8,
    ) -> Result<Self> {
        CsvSourceSpec::build(paths, schema, header, delimiter)
    }

    fn build(
        paths: &[PathBuf],
        schema: Option<SchemaRef>,
        header: bool,
        delimiter: u8,
    ) -> Result<Self> {
        let mut listed = Vec::new();
        for p in paths {
            list_csv_files(p, &mut listed)?;
        }
        let Some(first) = listed.first() else {
            return Err(Error::Csv {
                path: paths.first().cloned().unwrap_or_default(),
                message: "no CSV files found (a folder is searched for *.csv)".into(),
            });
        };
        let file_schema = match schema {
            Some(s) => s,
            None if !header => {
                return Err(Error::Csv {
                    path: first.clone(),
                    message: "files without a header line need a schema".into(),
                })
            }
            None => Arc::new(infer_schema(&listed, delimiter)?),
        };
        let mut files = Vec::with_capacity(listed.len());
        for path in listed {
            if header {
                check_header(&path, &file_schema, delimiter)?;
            }
            let bytes = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len();
            files.push(CsvFile { path, bytes });
        }
        Ok(CsvSourceSpec {
            given: paths.to_vec(),
            files,
            schema: file_schema.clone(),
            file_schema,
            projection: None,
            header,
            delimiter,
            batch_size: 8192,
            event_time: None,
        })
    }

    /// Reads only `columns`, in this order (an event-time column must be
    /// among them).
    ///
    /// # Errors
    ///
    /// [`Error::Column`] naming a column the files do not have.
    pub fn with_projection(mut self, columns: &[&str]) -> Result<Self> {
        let indices = columns
            .iter()
            .map(|c| {
                self.file_schema.index_of(c).map_err(|_| {
                    Error::column(
                        *c,
                        "csv source projection",
                        format!("no such column; the files have {}", self.column_names()),
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let time = self
            .event_time
            .take()
            .map(|(i, strategy)| (self.schema.field(i).name().clone(), strategy));
        self.schema = Arc::new(self.file_schema.project(&indices)?);
        self.projection = Some(indices);
        match time {
            Some((column, strategy)) => self.with_event_time(&column, strategy),
            None => Ok(self),
        }
    }

    /// Rows per batch (default 8192).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Assigns event time from `column` with `strategy`, per file.
    ///
    /// # Errors
    ///
    /// [`Error::Column`] if `column` is missing or not an integer or
    /// timestamp column.
    pub fn with_event_time(mut self, column: &str, strategy: WatermarkStrategy) -> Result<Self> {
        let idx = validate_time_column(&self.schema, column, "csv source")?;
        strategy.validate(&self.schema, "csv source")?;
        self.event_time = Some((idx, strategy));
        Ok(self)
    }

    /// Decides late rows with `rule`; no effect without event time.
    pub fn with_lateness_rule(mut self, rule: LatenessRule) -> Self {
        if let Some((_, strategy)) = self.event_time.as_mut() {
            strategy.lateness_rule = rule;
        }
        self
    }

    /// The files read, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// The reader of subtask `info.subtask`: every `parallelism`-th file.
    pub fn create(self: &Arc<Self>, info: &TaskInfo) -> CsvSource {
        let splits: Vec<usize> = (0..self.files.len())
            .filter(|i| i % info.parallelism.max(1) == info.subtask)
            .collect();
        CsvSource {
            clock: self.clock(&splits),
            spec: Arc::clone(self),
            cursor: SplitCursor::new(&splits),
            splits,
            open: None,
        }
    }

    fn column_names(&self) -> String {
        let names: Vec<&str> = self
            .file_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        names.join(", ")
    }

    /// A watermark clock over `splits` (no statistics: minimums unknown).
    fn clock(&self, splits: &[usize]) -> Option<SplitClock> {
        self.event_time
            .as_ref()
            .map(|(_, s)| SplitClock::new(s.clone(), &vec![None; splits.len()]))
    }

    /// A decoder for file rows starting at byte `offset` (past the header
    /// when `offset > 0`).
    fn decoder(&self, offset: u64) -> Decoder {
        let mut builder = ReaderBuilder::new(self.file_schema.clone())
            .with_header(self.header && offset == 0)
            .with_delimiter(self.delimiter)
            .with_batch_size(self.batch_size);
        if let Some(p) = &self.projection {
            builder = builder.with_projection(p.clone());
        }
        builder.build_decoder()
    }
}

impl SourceSpec for CsvSourceSpec {
    fn name(&self) -> &str {
        "csv"
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn input_paths(&self) -> Vec<PathBuf> {
        // every file, and every given folder or file (a pattern stands for
        // what it matches now): no sink may write into them
        let mut out = self.files();
        out.extend(super::glob::given_paths(&self.given));
        out
    }

    weir_core::operator::event_time_pushdown!();

    fn for_shard(&self, shard: weir_core::shard::Shard) -> Option<weir_core::operator::ShardShare> {
        // whole files dealt out (a CSV file is one split)
        let mut share = self.clone();
        share.files = shard.share(share.files);
        Some(weir_core::operator::ShardShare::Splits(Arc::new(share)))
    }

    fn create(self: Arc<Self>, task: &TaskInfo) -> Result<Box<dyn Source>> {
        Ok(Box::new(CsvSourceSpec::create(&self, task)))
    }
}

/// The file being read.
struct OpenFile {
    reader: BufReader<File>,
    decoder: Decoder,
    /// Bytes of the file consumed by the decoder.
    offset: u64,
}

/// One subtask of a CSV source.
pub struct CsvSource {
    // config
    spec: Arc<CsvSourceSpec>,
    /// The files the assignment gives this subtask.
    splits: Vec<usize>,
    // state
    /// Files left and the byte offset reached in the current one.
    cursor: SplitCursor,
    clock: Option<SplitClock>,
    // resources
    open: Option<OpenFile>,
}

impl std::fmt::Debug for CsvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSource")
            .field("splits", &self.splits)
            .field("open", &self.open.is_some())
            .finish()
    }
}

impl CsvSource {
    /// Opens file `split` at the cursor's offset.
    fn open(&mut self, split: usize) -> Result<OpenFile> {
        let path = &self.spec.files[split].path;
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let offset = self.cursor.done;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io(path, e))?;
        }
        Ok(OpenFile {
            reader: BufReader::with_capacity(1 << 16, file),
            decoder: self.spec.decoder(offset),
            offset,
        })
    }

    /// Decodes the next batch of the open file; `None` at its end.
    fn next_batch(&mut self, split: usize) -> Result<Option<RecordBatch>> {
        let path = &self.spec.files[split].path;
        let open = self
            .open
            .as_mut()
            .expect("a split being read has its file open");
        loop {
            let buf = open.reader.fill_buf().map_err(|e| Error::io(path, e))?;
            if buf.is_empty() {
                break;
            }
            let used = open
                .decoder
                .decode(buf)
                .map_err(|e| csv_error(path, open.offset, e))?;
            if used == 0 {
                break;
            }
            open.reader.consume(used);
            open.offset += used as u64;
        }
        open.decoder
            .flush()
            .map_err(|e| csv_error(path, open.offset, e))
    }
}

impl Source for CsvSource {
    fn poll_next(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<SourcePoll> {
        let Some(current) = self.cursor.current().cloned() else {
            return Ok(SourcePoll::Exhausted);
        };
        if self.open.is_none() {
            self.open = Some(self.open(current.split)?);
            if let Some(c) = self.clock.as_mut() {
                match current.generator {
                    Some(g) => c.resume_split(g),
                    None => c.start_split(),
                }
            }
        }
        match self.next_batch(current.split)? {
            Some(batch) => {
                self.cursor.done = self.open.as_ref().map_or(0, |o| o.offset);
                let batch = match (self.spec.event_time.as_ref(), self.clock.as_mut()) {
                    (Some(&(col, _)), Some(clock)) => {
                        let context = self.spec.files[current.split].path.display().to_string();
                        let times = event_times(&batch, col, &context)?;
                        match clock.on_batch(&batch, &times)? {
                            None => batch,
                            Some(mask) => super::split_late(&batch, &mask, ctx, out)?,
                        }
                    }
                    _ => batch,
                };
                out.emit(batch);
            }
            None => {
                self.open = None;
                split_progress::end_split(&mut self.cursor, self.clock.as_mut());
            }
        }
        split_progress::emit_watermark(self.clock.as_mut(), out);
        Ok(SourcePoll::Ready)
    }

    fn snapshot(&mut self, _ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        let total = self.spec.files.len();
        split_progress::snapshot(state, STATE, &self.cursor, total, self.clock.as_ref())
    }

    fn restore(&mut self, _ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        let spec = &self.spec;
        if let Some((cursor, clock)) = split_progress::restore(
            state,
            STATE,
            &self.splits,
            spec.files.len(),
            &|i| spec.files[i].bytes,
            "csv source",
            |s| spec.clock(s),
        )? {
            (self.cursor, self.clock) = (cursor, clock);
            self.open = None;
        }
        Ok(())
    }
}

/// A decoding error naming the file and the byte offset near it.
fn csv_error(path: &Path, offset: u64, e: arrow_schema::ArrowError) -> Error {
    Error::Csv {
        path: path.to_path_buf(),
        message: format!("near byte {offset}: {e}"),
    }
}

/// Infers the columns from the first file's header and the first
/// [`INFER_ROWS`] rows of the files, in order (a file with a header only
/// adds no evidence). A column with no value in them is nullable text, as
/// DuckDB reads it; a header that differs is caught by [`check_header`].
fn infer_schema(files: &[PathBuf], delimiter: u8) -> Result<Schema> {
    let format = Format::default()
        .with_header(true)
        .with_delimiter(delimiter);
    let mut merged: Option<Schema> = None;
    let mut seen = 0;
    for path in files {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let (schema, rows) = format
            .infer_schema(BufReader::new(file), Some(INFER_ROWS - seen))
            .map_err(|e| Error::Csv {
                path: path.to_path_buf(),
                message: format!("cannot infer the columns: {e}"),
            })?;
        if schema.fields().is_empty() {
            return Err(Error::Csv {
                path: path.to_path_buf(),
                message: "the file has no header line".into(),
            });
        }
        merged = Some(match merged {
            None => schema,
            // another header: no evidence here (check_header names the file)
            Some(m) if !same_names(&m, &schema) => m,
            Some(m) => Schema::try_merge([m, schema]).map_err(|e| Error::Csv {
                path: path.to_path_buf(),
                message: format!("its column types differ from the first file's: {e}"),
            })?,
        });
        seen += rows;
        if seen >= INFER_ROWS {
            break;
        }
    }
    let merged = merged.expect("called with at least one file");
    let fields: Vec<arrow_schema::Field> = merged
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Null => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Utf8)
                .with_nullable(true),
            _ => f.as_ref().clone(),
        })
        .collect();
    Ok(Schema::new(fields))
}

/// True if `a` and `b` name the same columns in the same order.
fn same_names(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name())
}

/// Checks that the header of `path` names the columns of `schema`, in order.
fn check_header(path: &Path, schema: &Schema, delimiter: u8) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let format = Format::default()
        .with_header(true)
        .with_delimiter(delimiter);
    let (header, _) = format
        .infer_schema(BufReader::new(file), Some(0))
        .map_err(|e| Error::Csv {
            path: path.to_path_buf(),
            message: format!("unreadable header: {e}"),
        })?;
    let got: Vec<&str> = header.fields().iter().map(|f| f.name().as_str()).collect();
    let want: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if got != want {
        let at = got
            .iter()
            .zip(&want)
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        return Err(Error::Csv {
            path: path.to_path_buf(),
            message: format!(
                "the header differs from the other files' at column {}: has [{}], expected [{}]",
                at + 1,
                got.join(", "),
                want.join(", ")
            ),
        });
    }
    Ok(())
}

/// Adds the CSV files at `path` (a file, a folder searched recursively for
/// `*.csv`, or a glob pattern) to `out`, sorted within each folder.
fn list_csv_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let text = path.to_string_lossy();
    if super::glob::has_wildcards(&text) && !path.exists() {
        for p in super::glob::expand(path)? {
            list_csv_files(&p, out)?;
        }
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(path, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    for p in entries {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let hidden = name
            .as_deref()
            .is_some_and(|n| n.starts_with('.') || n.starts_with('_'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            list_csv_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
