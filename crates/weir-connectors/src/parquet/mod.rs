//! The bounded Parquet source: a finite stream of row groups.
//!
//! ```text
//!  paths: files | folders (recursive *.parquet) | patterns (*, ?, [abc], **)
//!  ─► files (each once) + key=value folders below the root = partition columns
//!  ─► one schema: file columns unified (widened, missing = nulls), then partitions
//!  ─► row groups = splits ─(pruned by time-range statistics, sorted by min event time)─►
//!  split i goes to subtask i % parallelism ─► a decode thread reads its splits ahead:
//!     row group (projected columns) ─► adapt ─► time-range filter ─► bounded channel
//!  ─► per-split generator drops late rows ─► pacing ─► emit
//!     watermark = min(current split's watermark, min over its unread splits' stats)
//!  after the last split: Exhausted (the executor sends Watermark::MAX, then End)
//! ```
//! Each split has its own watermark generator, so which rows are late depends
//! only on the row order inside a row group: the same at any parallelism,
//! batch size, read-ahead or executor.
//!
//! - **Paths** ([`ParquetSourceSpec::try_new`]): a file, a folder (every
//!   `*.parquet` below it, hidden and `_` files skipped) or a glob pattern
//!   with `*`, `?`, `[abc]` in any component and `**` for any depth
//!   (`data/obd/date=2026-11-*/*.parquet`). A path that exists is taken
//!   literally. A matched folder means every `*.parquet` below it. A pattern
//!   matching no file is an error naming it. A file named twice is read once.
//! - **Hive partitions**: folders named `key=value` between the root (the
//!   given folder, or a pattern's part before its first wildcard) and a file
//!   become columns appended after the file columns, with the same value on
//!   every row of that file: Int64 if every value of the key parses as an
//!   integer, else Utf8; `__HIVE_DEFAULT_PARTITION__` is null; values are
//!   %-decoded. All files under one root must have the same keys (else an
//!   error naming two files); a key that is also a file column is an error
//!   naming the file and the key. A file given directly has no partitions.
//! - **Schema widening**: see the `schema` module: columns missing from a file
//!   are nulls there; integer, float, string and timestamp-unit differences
//!   are widened by casting; anything else is [`Error::SchemaMismatch`]
//!   naming both files, the column and both types.
//! - **Projection** ([`ParquetSourceSpec::with_projection`]): only the named
//!   columns are decoded and emitted, in the order given. The event-time
//!   column must be among them; a time-range or pacing column that is not is
//!   still read, used and dropped.
//! - **Time travel** ([`ParquetSourceSpec::with_time_range`]) drops row groups
//!   whose statistics lie outside `[from, until)` and the rows outside it,
//!   before watermarks are generated; replay pacing
//!   ([`ParquetSourceSpec::with_replay_speed`]) holds each batch (and the
//!   watermark after it) until its event time is due.
//! - **Time columns and statistics**: every file must have the event-time,
//!   time-range or pacing column (its rows would otherwise have no time: an
//!   error naming the file). A split without statistics for it has unknown
//!   bounds: it is never pruned, and it is read before the splits with known
//!   minimums, because until it starts it holds its subtask's watermark at
//!   the minimum. A partition column can be the time column (its value is
//!   then the split's bounds).
//! - **Metrics** ([`ParquetSourceSpec::metrics`]): [`ScanMetrics`], shared by
//!   every subtask (and every clone of the spec).
//! - **Read-ahead** ([`ParquetSourceSpec::with_read_ahead`]): see `reader`.
//!
//! Owns [`ParquetSourceSpec`], [`ParquetSource`], [`ScanMetrics`] and
//! [`list_parquet_files`]. May use `operator`, `time`, `error`, the sibling
//! `replay` module and the arrow/parquet crates.

mod discover;

mod layout;
mod reader;
mod schema;

pub use discover::list_parquet_files;
pub use reader::ParquetSource;

use super::replay::{Pacer, ReplaySpeed, TimeRange};
use arrow_array::Array;
use arrow_schema::{Field, Schema, SchemaRef};
use discover::{PartValue, Partitions};
use layout::{Layout, LayoutInput};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::operator::{Source, TaskInfo};
use weir_core::time::{validate_time_column, LatenessRule, SplitClock, WatermarkStrategy};

/// One Parquet file, its parsed footer and its partition values.
#[derive(Debug, Clone)]
struct ParquetFile {
    path: PathBuf,
    meta: ArrowReaderMetadata,
    /// One per partition column of the source.
    partitions: Vec<PartValue>,
}

/// A row group's smallest and largest time in epoch ms, where known.
type Bounds = (Option<i64>, Option<i64>);

/// One row group: the unit of work and of watermarking.
#[derive(Debug, Clone, Copy)]
struct Split {
    file: usize,
    row_group: usize,
    min_time: Option<i64>,
}

/// Scan counters of one source, summed over its subtasks (relaxed atomics).
#[derive(Debug, Default)]
pub struct ScanMetrics {
    /// Row groups in all files.
    pub row_groups_total: AtomicU64,
    /// Row groups skipped by time-range statistics (never opened).
    pub row_groups_pruned: AtomicU64,
    /// Row groups opened and decoded.
    pub row_groups_read: AtomicU64,
    /// Rows decoded (before the time-range filter).
    pub rows_read: AtomicU64,
    /// Rows emitted downstream (after the time-range filter; late rows,
    /// which go to the side output, not counted).
    pub rows_emitted: AtomicU64,
    /// Compressed bytes of the column chunks decoded (from the footers;
    /// only the projected columns count).
    pub bytes_read: AtomicU64,
}

/// A plain copy of [`ScanMetrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCounts {
    /// See [`ScanMetrics::row_groups_total`].
    pub row_groups_total: u64,
    /// See [`ScanMetrics::row_groups_pruned`].
    pub row_groups_pruned: u64,
    /// See [`ScanMetrics::row_groups_read`].
    pub row_groups_read: u64,
    /// See [`ScanMetrics::rows_read`].
    pub rows_read: u64,
    /// See [`ScanMetrics::rows_emitted`].
    pub rows_emitted: u64,
    /// See [`ScanMetrics::bytes_read`].
    pub bytes_read: u64,
}

impl ScanMetrics {
    /// The counters now.
    pub fn snapshot(&self) -> ScanCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ScanCounts {
            row_groups_total: get(&self.row_groups_total),
            row_groups_pruned: get(&self.row_groups_pruned),
            row_groups_read: get(&self.row_groups_read),
            rows_read: get(&self.rows_read),
            rows_emitted: get(&self.rows_emitted),
            bytes_read: get(&self.bytes_read),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What a Parquet source reads: files, their schema, their row groups.
/// Built once per job; [`ParquetSourceSpec::create`] makes each subtask's reader.
#[derive(Debug, Clone)]
pub struct ParquetSourceSpec {
    // config
    /// The paths as given (files, folders, patterns).
    given: Vec<PathBuf>,
    files: Vec<ParquetFile>,
    /// Unified file columns, then partition columns.
    full: SchemaRef,
    /// How many of `full`'s columns come from the files.
    file_columns: usize,
    splits: Vec<Split>,
    batch_size: usize,
    /// Row groups each subtask decodes ahead (0: none, decode when polled).
    read_ahead: usize,
    /// Emitted columns (indices into `full`).
    projection: Option<Vec<usize>>,
    event_time: Option<(String, WatermarkStrategy)>,
    /// Rows kept, by the time in this column.
    range: Option<(String, TimeRange)>,
    /// Replay pacing by the time in this column: `factor`× real time.
    pace: Option<(String, f64)>,
    // derived
    layout: Arc<Layout>,
    // shared
    metrics: Arc<ScanMetrics>,
}

impl ParquetSourceSpec {
    /// Finds the files (files, folders searched recursively for
    /// `*.parquet`, glob patterns), reads their footers, unifies their
    /// schemas, adds the Hive partition columns and lists the row groups.
    pub fn try_new(paths: &[PathBuf]) -> Result<Self> {
        let found = discover::discover(paths)?;
        let parts = Partitions::new(&found);
        let mut files = Vec::with_capacity(found.len());
        let mut folder_keys = Vec::with_capacity(found.len());
        for (f, values) in found.into_iter().zip(parts.values) {
            let path = f.path;
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            let meta =
                ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| {
                    Error::Parquet {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
            for (key, _) in &f.partitions {
                if meta.schema().field_with_name(key).is_ok() {
                    return Err(Error::SchemaMismatch {
                        location: path.display().to_string(),
                        message: format!(
                            "partition key `{key}` (folder {key}=...) is also a column of the file"
                        ),
                    });
                }
            }
            folder_keys.push(f.partitions.into_iter().map(|(k, _)| k).collect::<Vec<_>>());
            files.push(ParquetFile {
                path,
                meta,
                partitions: values,
            });
        }
        let schemas: Vec<_> = files
            .iter()
            .map(|f| (f.path.as_path(), f.meta.schema().as_ref()))
            .collect();
        let unified = schema::unify(&schemas)?;
        // a key one file has as a folder and another as a column
        for field in &parts.fields {
            let key = field.name();
            let column = files
                .iter()
                .find(|f| f.meta.schema().field_with_name(key).is_ok());
            let folder = files
                .iter()
                .zip(&folder_keys)
                .find(|(_, keys)| keys.contains(key));
            if let (Some(c), Some((p, _))) = (column, folder) {
                return Err(Error::SchemaMismatch {
                    location: p.path.display().to_string(),
                    message: format!(
                        "partition key `{key}` (folder {key}=...) is also a column of {}",
                        c.path.display()
                    ),
                });
            }
        }
        let file_columns = unified.fields().len();
        let fields: Vec<Field> = unified
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .chain(parts.fields)
            .collect();
        let full = Arc::new(Schema::new(fields));
        let splits: Vec<Split> = files
            .iter()
            .enumerate()
            .flat_map(|(file, f)| {
                (0..f.meta.metadata().num_row_groups()).map(move |row_group| Split {
                    file,
                    row_group,
                    min_time: None,
                })
            })
            .collect();
        let metrics = Arc::new(ScanMetrics::default());
        metrics
            .row_groups_total
            .store(splits.len() as u64, Ordering::Relaxed);
        let mut spec = ParquetSourceSpec {
            given: paths.to_vec(),
            files,
            full,
            file_columns,
            splits,
            batch_size: 8192,
            read_ahead: 1,
            projection: None,
            event_time: None,
            range: None,
            pace: None,
            layout: Arc::new(Layout {
                schema: Arc::new(Schema::empty()),
                scan_schema: Arc::new(Schema::empty()),
                event: None,
                range: None,
                pace: None,
                files: Vec::new(),
            }),
            metrics,
        };
        spec.relayout()?;
        Ok(spec)
    }

    /// Everything this source reads, for the planner's check that no sink
    /// writes into its input: every file, and every given folder or file
    /// (a glob pattern stands for what it matches now).
    pub fn input_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.files.iter().map(|f| f.path.clone()).collect();
        out.extend(super::glob::given_paths(&self.given));
        out
    }

    fn relayout(&mut self) -> Result<()> {
        self.layout = Arc::new(Layout::new(LayoutInput {
            full: &self.full,
            file_columns: self.file_columns,
            files: self
                .files
                .iter()
                .map(|f| (f.meta.schema().as_ref(), f.partitions.as_slice()))
                .collect(),
            projection: self.projection.as_deref(),
            event: self.event_time.as_ref().map(|e| e.0.as_str()),
            range: self.range.as_ref().map(|(c, r)| (c.as_str(), *r)),
            pace: self.pace.as_ref().map(|p| p.0.as_str()),
        })?);
        Ok(())
    }

    fn context(&self) -> String {
        let first = self.files.first().map(|f| f.path.display().to_string());
        format!("parquet source {}", first.unwrap_or_default())
    }

    /// Rows per emitted batch (default 8192).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// How many row groups each subtask decodes ahead on a background
    /// thread while the current one is emitted (default 1; 0 decodes in
    /// the polling thread).
    pub fn with_read_ahead(mut self, row_groups: usize) -> Self {
        self.read_ahead = row_groups;
        self
    }

    /// Reads and emits only `columns`, in this order (file or partition
    /// columns). An unknown or repeated name is an error, as is leaving out
    /// the event-time column once event time is assigned.
    pub fn with_projection(mut self, columns: &[&str]) -> Result<Self> {
        let context = self.context();
        if columns.is_empty() {
            return Err(Error::option(
                "source.columns",
                "name at least one column to read",
            ));
        }
        let mut idx = Vec::with_capacity(columns.len());
        for &c in columns {
            let i = self.full.index_of(c).map_err(|_| {
                let names: Vec<&str> = self
                    .full
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                Error::column(
                    c,
                    &context,
                    format!(
                        "projected column not found; available columns: {}",
                        names.join(", ")
                    ),
                )
            })?;
            if idx.contains(&i) {
                return Err(Error::column(c, &context, "projected twice"));
            }
            idx.push(i);
        }
        self.projection = Some(idx);
        self.relayout()?;
        Ok(self)
    }

    /// The time bounds of every row group of every file in epoch ms
    /// (`[file][row_group] = (min, max)`), from statistics or partition
    /// values; unknown where neither tells. Fails, naming the file, if a
    /// file has no such column.
    fn time_bounds(&self, column: &str) -> Result<Vec<Vec<Bounds>>> {
        let idx = self.full.index_of(column)?;
        let target = self.full.field(idx).data_type();
        let missing = |f: &ParquetFile| {
            Error::column(
                column,
                format!("parquet file {}", f.path.display()),
                "the time column is missing from this file (its rows would have no time)",
            )
        };
        self.files
            .iter()
            .map(|f| {
                let meta = f.meta.metadata();
                let n = meta.num_row_groups();
                if idx >= self.file_columns {
                    return match &f.partitions[idx - self.file_columns] {
                        PartValue::Int(v) => Ok(vec![(Some(*v), Some(*v)); n]),
                        _ => Err(missing(f)),
                    };
                }
                let schema = f.meta.schema();
                if schema.field_with_name(column).is_err() {
                    return Err(missing(f));
                }
                let conv = StatisticsConverter::try_new(
                    column,
                    schema,
                    meta.file_metadata().schema_descr(),
                );
                let stats = conv.and_then(|c| {
                    Ok((
                        c.row_group_mins(meta.row_groups().iter())?,
                        c.row_group_maxes(meta.row_groups().iter())?,
                    ))
                });
                let (mins, maxes) = stats.map_err(|e| Error::Parquet {
                    path: f.path.clone(),
                    message: format!("statistics of `{column}`: {e}"),
                })?;
                let millis = |a: &dyn Array| -> Result<Vec<Option<i64>>> {
                    if a.data_type() == target {
                        return schema::to_millis(a);
                    }
                    match arrow_cast::cast(a, target) {
                        Ok(c) => schema::to_millis(&c),
                        Err(_) => Ok(vec![None; a.len()]),
                    }
                };
                let (mins, maxes) = (millis(&mins)?, millis(&maxes)?);
                Ok((0..n)
                    .map(|rg| {
                        (
                            mins.get(rg).copied().flatten(),
                            maxes.get(rg).copied().flatten(),
                        )
                    })
                    .collect())
            })
            .collect()
    }

    /// Decides late rows with `rule` (set by the planner from the operators
    /// this source feeds); no effect without event time.
    pub fn with_lateness_rule(mut self, rule: LatenessRule) -> Self {
        if let Some((_, strategy)) = self.event_time.as_mut() {
            strategy.lateness_rule = rule;
        }
        self
    }

    /// Assigns event time from `column` with `strategy`, per row group, and
    /// orders row groups by their minimum event time (from statistics;
    /// unknown minimums first).
    pub fn with_event_time(mut self, column: &str, strategy: WatermarkStrategy) -> Result<Self> {
        validate_time_column(&self.layout.schema, column, &self.context())?;
        let bounds = self.time_bounds(column)?;
        for s in &mut self.splits {
            s.min_time = bounds[s.file][s.row_group].0;
        }
        self.splits
            .sort_by_key(|s| (s.min_time, s.file, s.row_group));
        self.event_time = Some((column.to_string(), strategy));
        self.relayout()?;
        Ok(self)
    }

    /// Time travel: only rows whose `column` time is in `range`; row groups
    /// whose statistics show no such row are not read at all. `column` need
    /// not be projected.
    pub fn with_time_range(mut self, column: &str, range: TimeRange) -> Result<Self> {
        validate_time_column(&self.full, column, &self.context())?;
        let bounds = self.time_bounds(column)?;
        self.splits.retain(|s| {
            let (min, max) = bounds[s.file][s.row_group];
            range.overlaps(min, max)
        });
        let total = self.metrics.row_groups_total.load(Ordering::Relaxed);
        self.metrics.row_groups_pruned.store(
            total.saturating_sub(self.splits.len() as u64),
            Ordering::Relaxed,
        );
        self.range = Some((column.to_string(), range));
        self.relayout()?;
        Ok(self)
    }

    /// Replay pacing: rows are emitted when their `column` time is due at
    /// `speed` (per reader, from its first row); `Max` turns pacing off.
    /// `column` need not be projected.
    pub fn with_replay_speed(mut self, column: &str, speed: ReplaySpeed) -> Result<Self> {
        validate_time_column(&self.full, column, &self.context())?;
        self.pace = match speed {
            ReplaySpeed::Max => None,
            ReplaySpeed::Times(f) => {
                self.time_bounds(column)?;
                Some((column.to_string(), f))
            }
        };
        self.relayout()?;
        Ok(self)
    }

    /// The schema of every batch this source emits.
    pub fn schema(&self) -> &SchemaRef {
        &self.layout.schema
    }

    /// The files read, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// Number of row groups that will be read (after time-range pruning).
    pub fn num_splits(&self) -> usize {
        self.splits.len()
    }

    /// Rows of the row groups this source will read: after pruning by
    /// the time range, before filtering rows by it.
    pub fn rows_to_read(&self) -> u64 {
        self.splits
            .iter()
            .map(|s| {
                let meta = self.files[s.file].meta.metadata();
                meta.row_group(s.row_group).num_rows().max(0) as u64
            })
            .sum()
    }

    /// Total rows over all files.
    pub fn num_rows(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.meta.metadata().file_metadata().num_rows().max(0) as u64)
            .sum()
    }

    /// The scan counters, shared by every reader of this source.
    pub fn metrics(&self) -> Arc<ScanMetrics> {
        self.metrics.clone()
    }

    /// The reader of subtask `info.subtask`: every `parallelism`-th split.
    pub fn create(self: &Arc<Self>, info: &TaskInfo) -> ParquetSource {
        let splits: Vec<usize> = (0..self.splits.len())
            .filter(|i| i % info.parallelism.max(1) == info.subtask)
            .collect();
        let clock = self.clock(&splits);
        let pacer = self.pace.as_ref().map(|(_, f)| Pacer::new(*f));
        ParquetSource::new(self.clone(), splits, clock, pacer, info)
    }

    /// The event-time clock of a reader of `splits` (in this order).
    fn clock(&self, splits: &[usize]) -> Option<SplitClock> {
        self.event_time.as_ref().map(|(_, strategy)| {
            let mins: Vec<Option<i64>> = splits.iter().map(|&i| self.splits[i].min_time).collect();
            SplitClock::new(strategy.clone(), &mins)
        })
    }
}

impl weir_core::operator::SourceSpec for ParquetSourceSpec {
    fn name(&self) -> &str {
        "parquet"
    }

    fn schema(&self) -> &SchemaRef {
        &self.layout.schema
    }

    fn boundedness(&self) -> weir_core::operator::Boundedness {
        weir_core::operator::Boundedness::Bounded
    }

    fn input_paths(&self) -> Vec<PathBuf> {
        ParquetSourceSpec::input_paths(self)
    }

    fn rows_to_read(&self) -> Option<u64> {
        Some(ParquetSourceSpec::rows_to_read(self))
    }

    fn rows_read(&self) -> Option<u64> {
        // rows decoded, those outside a --from/--until range included
        Some(
            self.metrics
                .rows_read
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    weir_core::operator::event_time_pushdown!();

    fn for_shard(&self, shard: weir_core::shard::Shard) -> Option<weir_core::operator::ShardShare> {
        // row groups dealt out in their reading order (by minimum event time)
        let mut share = self.clone();
        share.splits = shard.share(share.splits);
        Some(weir_core::operator::ShardShare::Splits(Arc::new(share)))
    }

    fn create(self: Arc<Self>, task: &TaskInfo) -> Result<Box<dyn Source>> {
        Ok(Box::new(ParquetSourceSpec::create(&self, task)))
    }
}
