//! The bounded Parquet source: a finite stream of row groups.
//!
//! ```text
//!  files (sorted) ─► row groups = splits ─(sorted by min event time from stats)─►
//!  split i goes to subtask i % parallelism ─► read split by split:
//!     batch ─► event times ─► per-split generator drops late rows ─► emit
//!     watermark = min(current split's watermark, min over its unread splits' stats)
//!  after the last split: Exhausted (the executor sends Watermark::MAX, then End)
//! ```
//! Each split has its own watermark generator, so which rows are late depends
//! only on the row order inside a row group: the same at any parallelism,
//! batch size or executor.
//!
//! Time travel ([`ParquetSourceSpec::with_time_range`]) drops row groups
//! whose statistics lie outside `[from, until)` and the rows outside it,
//! before watermarks are generated; replay pacing
//! ([`ParquetSourceSpec::with_replay_speed`]) holds each batch (and the
//! watermark after it) until its event time is due.

use super::replay::{Pacer, ReplaySpeed, TimeRange};
use crate::error::{Error, Result};
use crate::operator::{Ctx, Output, Source, SourcePoll, TaskInfo};
use crate::time::{event_times, validate_time_column, SplitClock, WatermarkStrategy};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::Array;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One Parquet file and its parsed footer.
#[derive(Debug, Clone)]
struct ParquetFile {
    path: PathBuf,
    meta: ArrowReaderMetadata,
}

/// One row group: the unit of work and of watermarking.
#[derive(Debug, Clone, Copy)]
struct Split {
    file: usize,
    row_group: usize,
    min_time: Option<i64>,
}

#[derive(Debug, Clone)]
struct EventTime {
    column: usize,
    strategy: WatermarkStrategy,
}

/// What a Parquet source reads: files, their schema, their row groups.
/// Built once per job; [`ParquetSourceSpec::create`] makes each subtask's reader.
#[derive(Debug, Clone)]
pub struct ParquetSourceSpec {
    // config
    files: Vec<ParquetFile>,
    schema: SchemaRef,
    splits: Vec<Split>,
    batch_size: usize,
    event_time: Option<EventTime>,
    /// Rows kept, by the time in this column.
    range: Option<(usize, TimeRange)>,
    /// Replay pacing by the time in this column: `factor`× real time.
    pace: Option<(usize, f64)>,
}

impl ParquetSourceSpec {
    /// Opens every file (a path may be a file or a directory, searched
    /// recursively for `*.parquet`), reads the footers, checks that all
    /// schemas agree, and lists the row groups.
    pub fn try_new(paths: &[PathBuf]) -> Result<Self> {
        let mut names = Vec::new();
        for p in paths {
            list_parquet_files(p, &mut names)?;
        }
        if names.is_empty() {
            let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(Error::option(
                "source.path",
                format!("no .parquet files found in {}", shown.join(", ")),
            ));
        }
        let mut files = Vec::with_capacity(names.len());
        for path in names {
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            let meta =
                ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| {
                    Error::Parquet {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
            files.push(ParquetFile { path, meta });
        }
        let first = files[0].meta.schema().clone();
        for f in &files[1..] {
            check_same_schema(&first, f.meta.schema(), &files[0].path, &f.path)?;
        }
        // One schema for every batch: dictionaries unpacked, nullable where
        // any file is, no per-file metadata.
        let fields: Vec<Field> = first
            .fields()
            .iter()
            .map(|f| {
                let nullable = files.iter().any(|file| {
                    file.meta
                        .schema()
                        .field_with_name(f.name())
                        .map_or(true, |g| g.is_nullable())
                });
                let ty = match f.data_type() {
                    DataType::Dictionary(_, v) => (**v).clone(),
                    t => t.clone(),
                };
                Field::new(f.name(), ty, nullable)
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let splits = files
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
        Ok(ParquetSourceSpec {
            files,
            schema,
            splits,
            batch_size: 8192,
            event_time: None,
            range: None,
            pace: None,
        })
    }

    /// Rows per emitted batch (default 8192).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Assigns event time from `column` with `strategy`, per row group, and
    /// orders row groups by their minimum event time (from statistics).
    pub fn with_event_time(mut self, column: &str, strategy: WatermarkStrategy) -> Result<Self> {
        let context = format!("parquet source {}", self.files[0].path.display());
        let idx = validate_time_column(&self.schema, column, &context)?;
        for (fi, f) in self.files.iter().enumerate() {
            let meta = f.meta.metadata();
            let mins = StatisticsConverter::try_new(
                column,
                &self.schema,
                meta.file_metadata().schema_descr(),
            )
            .and_then(|c| c.row_group_mins(meta.row_groups().iter()))
            .map_err(|e| Error::Parquet {
                path: f.path.clone(),
                message: format!("statistics of `{column}`: {e}"),
            })?;
            let mins = to_millis(&mins)?;
            for s in self.splits.iter_mut().filter(|s| s.file == fi) {
                s.min_time = mins.get(s.row_group).copied().flatten();
            }
        }
        if self.splits.iter().all(|s| s.min_time.is_some()) {
            self.splits
                .sort_by_key(|s| (s.min_time, s.file, s.row_group));
        }
        self.event_time = Some(EventTime {
            column: idx,
            strategy,
        });
        Ok(self)
    }

    /// Time travel: only rows whose `column` time is in `range`; row groups
    /// whose statistics show no such row are not read at all.
    pub fn with_time_range(mut self, column: &str, range: TimeRange) -> Result<Self> {
        let context = format!("parquet source {}", self.files[0].path.display());
        let idx = validate_time_column(&self.schema, column, &context)?;
        for (fi, f) in self.files.iter().enumerate() {
            let meta = f.meta.metadata();
            let conv = StatisticsConverter::try_new(
                column,
                &self.schema,
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
            let (mins, maxes) = (to_millis(&mins)?, to_millis(&maxes)?);
            self.splits.retain(|s| {
                s.file != fi
                    || range.overlaps(
                        mins.get(s.row_group).copied().flatten(),
                        maxes.get(s.row_group).copied().flatten(),
                    )
            });
        }
        self.range = Some((idx, range));
        Ok(self)
    }

    /// Replay pacing: rows are emitted when their `column` time is due at
    /// `speed` (per reader, from its first row); `Max` turns pacing off.
    pub fn with_replay_speed(mut self, column: &str, speed: ReplaySpeed) -> Result<Self> {
        let context = format!("parquet source {}", self.files[0].path.display());
        let idx = validate_time_column(&self.schema, column, &context)?;
        self.pace = match speed {
            ReplaySpeed::Max => None,
            ReplaySpeed::Times(f) => Some((idx, f)),
        };
        Ok(self)
    }

    /// The schema of every batch this source emits.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Number of row groups over all files.
    pub fn num_splits(&self) -> usize {
        self.splits.len()
    }

    /// Total rows over all files.
    pub fn num_rows(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.meta.metadata().file_metadata().num_rows().max(0) as u64)
            .sum()
    }

    /// The reader of subtask `info.subtask`: every `parallelism`-th split.
    pub fn create(self: &Arc<Self>, info: &TaskInfo) -> ParquetSource {
        let splits: Vec<usize> = (0..self.splits.len())
            .filter(|i| i % info.parallelism == info.subtask)
            .collect();
        let clock = self.event_time.as_ref().map(|et| {
            let mins: Vec<Option<i64>> = splits.iter().map(|&i| self.splits[i].min_time).collect();
            SplitClock::new(et.strategy.clone(), &mins)
        });
        ParquetSource {
            pacer: self.pace.map(|(_, f)| Pacer::new(f)),
            spec: self.clone(),
            splits,
            pos: 0,
            reader: None,
            clock,
            held: None,
        }
    }
}

/// Gives `batch` the source's schema: unpacks dictionaries and relabels
/// nullability and metadata, so every file's batches look alike downstream.
fn normalize(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema_ref().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                arrow_cast::cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

/// Row-group statistics in epoch ms, rounded down like `event_times` (so a
/// pre-1970 sub-millisecond time lands in the same millisecond both ways).
fn to_millis(stats: &dyn Array) -> Result<Vec<Option<i64>>> {
    let per_ms: i64 = match stats.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => -1000,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => 1,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000_000,
        _ => return Ok(vec![None; stats.len()]),
    };
    let raw = arrow_cast::cast(stats, &DataType::Int64)?;
    Ok(raw
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| {
            v.map(|v| match per_ms {
                // seconds: multiply
                p if p < 0 => v.saturating_mul(-p),
                p => v.div_euclid(p),
            })
        })
        .collect())
}

fn check_same_schema(
    first: &SchemaRef,
    other: &SchemaRef,
    first_path: &Path,
    path: &Path,
) -> Result<()> {
    let mismatch = |message: String| Error::SchemaMismatch {
        location: path.display().to_string(),
        message,
    };
    for f in first.fields() {
        match other.field_with_name(f.name()) {
            Err(_) => {
                return Err(mismatch(format!(
                    "column `{}` is missing (it is in {})",
                    f.name(),
                    first_path.display()
                )))
            }
            Ok(o) if o.data_type() != f.data_type() => {
                return Err(mismatch(format!(
                    "column `{}` is {} here but {} in {}",
                    f.name(),
                    o.data_type(),
                    f.data_type(),
                    first_path.display()
                )))
            }
            Ok(_) => {}
        }
    }
    if other.fields().len() != first.fields().len() {
        let extra: Vec<&str> = other
            .fields()
            .iter()
            .filter(|o| first.field_with_name(o.name()).is_err())
            .map(|o| o.name().as_str())
            .collect();
        return Err(mismatch(format!(
            "extra columns {} not in {}",
            extra.join(", "),
            first_path.display()
        )));
    }
    Ok(())
}

/// Collects `*.parquet` files under `path` (or `path` itself), sorted.
/// Hidden files and files starting with `_` (e.g. `_SUCCESS`) are skipped.
pub fn list_parquet_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(path, err)))
        .collect::<Result<_>>()?;
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if p.is_dir() {
            list_parquet_files(&p, out)?;
        } else if name.ends_with(".parquet") {
            out.push(p);
        }
    }
    Ok(())
}

/// One subtask's reader over its splits, in order.
pub struct ParquetSource {
    // config
    spec: Arc<ParquetSourceSpec>,
    splits: Vec<usize>,
    // state
    pos: usize,
    reader: Option<ParquetRecordBatchReader>,
    clock: Option<SplitClock>,
    pacer: Option<Pacer>,
    /// A batch waiting for its pacing deadline.
    held: Option<(RecordBatch, std::time::Instant)>,
}

impl ParquetSource {
    fn open(&self, split: &Split) -> Result<ParquetRecordBatchReader> {
        let f = &self.spec.files[split.file];
        let file = File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, f.meta.clone())
            .with_row_groups(vec![split.row_group])
            .with_batch_size(self.spec.batch_size)
            .build()
            .map_err(|e| Error::Parquet {
                path: f.path.clone(),
                message: format!("row group {}: {e}", split.row_group),
            })
    }
}

impl ParquetSource {
    /// Emits the held batch once it is due (then the watermark after it).
    fn release_held(&mut self, out: &mut Output) -> Option<SourcePoll> {
        let (batch, due) = self.held.take()?;
        let now = std::time::Instant::now();
        if now < due {
            // short naps keep cancellation responsive; Ready (not Pending) so
            // a reader holding rows is never taken for idle, which would let
            // other readers' watermarks pass the rows it holds
            std::thread::sleep((due - now).min(std::time::Duration::from_millis(20)));
            self.held = Some((batch, due));
            return Some(SourcePoll::Ready);
        }
        out.emit(batch);
        if let Some(wm) = self.clock.as_mut().and_then(|c| c.advance()) {
            out.emit_watermark(wm);
        }
        Some(SourcePoll::Ready)
    }
}

impl ParquetSource {
    /// The last watermark this reader emitted (a hybrid source carries it
    /// over to its live part).
    pub fn last_watermark(&self) -> Option<i64> {
        self.clock.as_ref().and_then(|c| c.emitted())
    }
}

impl Source for ParquetSource {
    fn poll_next(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<SourcePoll> {
        if let Some(poll) = self.release_held(out) {
            return Ok(poll);
        }
        if self.reader.is_none() {
            if self.pos >= self.splits.len() {
                return Ok(SourcePoll::Exhausted);
            }
            let split = self.spec.splits[self.splits[self.pos]];
            self.reader = Some(self.open(&split)?);
            if let Some(c) = self.clock.as_mut() {
                c.start_split();
            }
        }
        let split = self.spec.splits[self.splits[self.pos]];
        let next = self.reader.as_mut().expect("opened above").next();
        match next {
            Some(Ok(batch)) => {
                let batch = normalize(batch, &self.spec.schema)?;
                let path = &self.spec.files[split.file].path;
                let context = || format!("{} row group {}", path.display(), split.row_group);
                let batch = match &self.spec.range {
                    Some((col, range)) => {
                        let times = event_times(&batch, *col, &context())?;
                        range.filter(batch, &times)?
                    }
                    None => batch,
                };
                let batch = match (&self.spec.event_time, self.clock.as_mut()) {
                    (Some(et), Some(clock)) => {
                        let times = event_times(&batch, et.column, &context())?;
                        match clock.on_batch(&batch, &times)? {
                            None => batch,
                            Some(mask) => super::split_late(&batch, &mask, ctx, out)?,
                        }
                    }
                    _ => batch,
                };
                if let (Some(pacer), Some((col, _))) = (self.pacer.as_mut(), self.spec.pace) {
                    let times = event_times(&batch, col, &context())?;
                    if let Some(&last) = times.iter().max() {
                        let due = pacer.due(last);
                        if std::time::Instant::now() < due {
                            // the watermark waits with the batch
                            self.held = Some((batch, due));
                            return Ok(SourcePoll::Ready);
                        }
                    }
                }
                out.emit(batch);
            }
            Some(Err(e)) => {
                return Err(Error::Parquet {
                    path: self.spec.files[split.file].path.clone(),
                    message: format!("row group {}: {e}", split.row_group),
                })
            }
            None => {
                self.reader = None;
                self.pos += 1;
                if let Some(c) = self.clock.as_mut() {
                    c.end_split();
                }
            }
        }
        if let Some(wm) = self.clock.as_mut().and_then(|c| c.advance()) {
            out.emit_watermark(wm);
        }
        Ok(SourcePoll::Ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{TimestampMicrosecondArray, TimestampSecondArray};

    #[test]
    fn statistics_round_down_to_milliseconds_like_event_times() {
        // -1500 µs is in millisecond -2 (floor), not -1 (truncation)
        let us = TimestampMicrosecondArray::from(vec![Some(-1500), Some(2500), None]);
        assert_eq!(to_millis(&us).unwrap(), vec![Some(-2), Some(2), None]);
        let s = TimestampSecondArray::from(vec![-3]);
        assert_eq!(to_millis(&s).unwrap(), vec![Some(-3000)]);
        assert_eq!(
            to_millis(&arrow_array::Float64Array::from(vec![1.0])).unwrap(),
            vec![None]
        );
    }
}
