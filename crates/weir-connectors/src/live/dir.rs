//! A watched directory: new Parquet and newline-delimited JSON files are
//! read as they appear.
//!
//! Owns [`WatchedDir`]. May use the sibling modules, `weir_core::error` and the
//! parquet reader.
//!
//! ```text
//!  every poll interval: list DIR ─► files not seen yet (by name order),
//!    this subtask's share (hash of the name) ─► queue
//!  queue head: *.parquet ─► batches (columns by name, cast to the schema)
//!              *.json / *.jsonl / *.ndjson ─► one record per line
//!  bounded: only the files present at the first listing, then End
//! ```
//! Writers must make a file appear complete: write it under a hidden name
//! (`.name`, `_name`, or a `.tmp` / `.inprogress` suffix, all ignored) and
//! rename it into place, as weir's own sinks do. A file's position is its
//! name: a restart from a stored position skips files whose names sort at
//! or before it, so name files in arrival order (e.g. by time).
//!
//! **Bad files** (`on_error = "dead_letter"`): a file that cannot be
//! opened, is not Parquet, or whose columns cannot be cast to the source's
//! schema (a required column such as the event time missing) is one dead
//! letter (position `NAME:0`, the record is its path) and the next file is
//! read. A Parquet file that fails part-way (a corrupt page, a value that
//! does not cast) keeps the rows emitted before and dead-letters the rest
//! (position `NAME:ROW`). Parquet rows with a null required column are dead
//! letters each (the record is the row as JSON); JSON lines go through the
//! decoder like any record, lines over `max_record_bytes` skipped without
//! being held. Under `on_error = "fail"` the first one fails the job.
//!
//! **Checkpoints:** the checkpoint names every file this subtask finished
//! (`file NAME` → offset -1) and the file being read with the records
//! (JSON lines, blank ones included) or Parquet rows read so far (`file
//! NAME` → count). A restored subtask skips the finished files it owns
//! (after a rescale: owns now), reads the partial file first, skipping its
//! first records (Parquet rows through the reader's offset, JSON lines by
//! reading past them), then the rest in name order. The list of finished
//! files grows with every file read (a name per file in each checkpoint).

use super::line_reader::{Line, LineReader};
use super::{Connector, DeadLetter, Fetch, Position, RawRecord, RecordRules};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weir_core::error::{Error, Result};
use weir_core::operator::TaskInfo;

enum Reading {
    Json {
        lines: LineReader<std::fs::File>,
        line: i64,
    },
    Parquet {
        reader: ParquetRecordBatchReader,
        /// Rows read so far.
        rows: i64,
    },
}

impl Reading {
    /// Records (JSON lines) or rows (Parquet) read so far.
    fn consumed(&self) -> i64 {
        match self {
            Reading::Json { line, .. } => *line,
            Reading::Parquet { rows, .. } => *rows,
        }
    }
}

/// Checkpoint key prefix of a file's progress.
const FILE: &str = "file ";
/// Checkpoint value of a finished file.
const FINISHED: i64 = -1;

/// Reads the files appearing in one directory (this subtask's share).
pub struct WatchedDir {
    // config
    dir: PathBuf,
    schema: SchemaRef,
    subtask: usize,
    parallelism: usize,
    bounded: bool,
    interval: Duration,
    start_after: Option<String>,
    rules: RecordRules,
    // state
    letters: Vec<DeadLetter>,
    seen: HashSet<String>,
    queue: VecDeque<String>,
    current: Option<(String, Reading)>,
    last_done: Option<String>,
    last_list: Option<Instant>,
    listed_once: bool,
    /// Files finished (this run and, restored, before it).
    finished: BTreeSet<String>,
    /// Restored partial files and the records to skip in each (one at
    /// unchanged parallelism, possibly more after a rescale).
    resume: BTreeMap<String, i64>,
}

impl WatchedDir {
    /// Watches `dir` for files whose rows have `schema`, listing it every
    /// `interval`; resumes after file `start_after` if given. `bounded`:
    /// read only the files present at the first listing.
    pub fn try_new(
        dir: &Path,
        schema: SchemaRef,
        info: &TaskInfo,
        bounded: bool,
        interval: Duration,
        start_after: Option<String>,
    ) -> Result<Self> {
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !meta.is_dir() {
            return Err(Error::option(
                "source.path",
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(WatchedDir {
            dir: dir.to_path_buf(),
            schema,
            subtask: info.subtask,
            parallelism: info.parallelism.max(1),
            bounded,
            interval,
            start_after,
            rules: RecordRules::default(),
            letters: Vec::new(),
            seen: HashSet::new(),
            queue: VecDeque::new(),
            current: None,
            last_done: None,
            last_list: None,
            listed_once: false,
            finished: BTreeSet::new(),
            resume: BTreeMap::new(),
        })
    }

    fn name(&self) -> String {
        format!("dir {}#{}", self.dir.display(), self.subtask)
    }

    /// Lists the directory, queueing this subtask's new files by name.
    fn list(&mut self) -> Result<()> {
        if self.bounded && self.listed_once {
            return Ok(());
        }
        let due = self.last_list.is_none_or(|t| t.elapsed() >= self.interval);
        if !due {
            return Ok(());
        }
        self.last_list = Some(Instant::now());
        self.listed_once = true;
        let mut new = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let hidden = name.starts_with('.')
                || name.starts_with('_')
                || name.ends_with(".tmp")
                || name.ends_with(".inprogress");
            let known = [".parquet", ".json", ".jsonl", ".ndjson"]
                .iter()
                .any(|ext| name.ends_with(ext));
            if hidden || !known || self.seen.contains(&name) || self.finished.contains(&name) {
                continue;
            }
            if self
                .start_after
                .as_ref()
                .is_some_and(|s| name.as_str() <= s.as_str())
            {
                continue;
            }
            if owner(&name, self.parallelism) != self.subtask {
                continue;
            }
            new.push(name);
        }
        new.sort();
        for n in new {
            self.seen.insert(n.clone());
            self.queue.push_back(n);
        }
        // files restored half-read go first, as they went before
        for name in self.resume.keys().rev() {
            if let Some(i) = self.queue.iter().position(|n| n == name) {
                let name = self.queue.remove(i).expect("found at i");
                self.queue.push_front(name);
            }
        }
        Ok(())
    }

    /// Opens the next queued file, if any; a file that cannot be read as
    /// the source's rows becomes a dead letter and the next one is tried.
    fn open_next(&mut self) -> Result<bool> {
        while self.current.is_none() {
            let Some(name) = self.queue.pop_front() else {
                return Ok(false);
            };
            let skip = self.resume.remove(&name).unwrap_or(0).max(0);
            match self.open(&name, skip) {
                Ok(reading) => self.current = Some((name, reading)),
                Err(reason) => {
                    self.refuse_file(&name, skip, reason);
                    self.finished.insert(name.clone());
                    self.last_done = Some(name);
                }
            }
        }
        Ok(true)
    }

    /// Opens file `name`, skipping its first `skip` records (rows).
    fn open(&self, name: &str, skip: i64) -> std::result::Result<Reading, String> {
        let path = self.dir.join(name);
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot open: {e}"))?;
        if name.ends_with(".parquet") {
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| format!("not a readable Parquet file: {e}"))?;
            check_columns(builder.schema(), &self.schema, &self.rules)?;
            let reader = builder
                .with_batch_size(8192)
                .with_offset(usize::try_from(skip).unwrap_or(usize::MAX))
                .build()
                .map_err(|e| format!("not a readable Parquet file: {e}"))?;
            Ok(Reading::Parquet { reader, rows: skip })
        } else {
            let mut lines = LineReader::new(file, self.rules.max_record_bytes);
            for _ in 0..skip {
                if let Err(e) = lines.next_line() {
                    return Err(format!("read failed: {e}"));
                }
            }
            Ok(Reading::Json { lines, line: skip })
        }
    }

    /// A dead letter for file `name` from record (row) `at` on.
    fn refuse_file(&mut self, name: &str, at: i64, reason: String) {
        let path = self.dir.join(name);
        self.letters.push(DeadLetter {
            partition: 0,
            position: Position::Id(format!("{name}:{at}")),
            reason: if at > 0 {
                format!(
                    "file {}: {reason} (records from {at} on skipped)",
                    path.display()
                )
            } else {
                format!("file {}: {reason}", path.display())
            },
            record: path.display().to_string(),
        });
    }

    fn finish_current(&mut self) {
        if let Some((name, _)) = self.current.take() {
            self.finished.insert(name.clone());
            self.last_done = Some(name);
        }
    }

    fn at_end(&self) -> bool {
        self.bounded && self.listed_once && self.queue.is_empty() && self.current.is_none()
    }
}

/// Which subtask reads file `name` (FNV-1a of the name: stable across runs).
fn owner(name: &str, parallelism: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % parallelism as u64) as usize
}

/// Casts that fail on a value they cannot convert (instead of making it null).
const STRICT: arrow_cast::CastOptions<'static> = arrow_cast::CastOptions {
    safe: false,
    format_options: arrow_cast::display::FormatOptions::new(),
};

/// Why a file with columns `file` cannot give rows of `schema`, if so: a
/// column that cannot be cast, or a missing required or non-null one.
fn check_columns(
    file: &arrow_schema::Schema,
    schema: &SchemaRef,
    rules: &RecordRules,
) -> std::result::Result<(), String> {
    for f in schema.fields() {
        match file.field_with_name(f.name()) {
            Ok(c) if arrow_cast::can_cast_types(c.data_type(), f.data_type()) => {}
            Ok(c) => {
                return Err(format!(
                    "column `{}` is {} in the file, {} in the source schema, and cannot be cast",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                ))
            }
            Err(_) if !f.is_nullable() || rules.required.contains(f.name()) => {
                return Err(format!("column `{}` is missing", f.name()))
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// `batch` with the columns of `schema`, by name, cast where needed.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let col = match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            Some(c) => arrow_cast::cast_with_options(c, f.data_type(), &STRICT).map_err(|e| {
                format!(
                    "column `{}` is {} in the file, {} in the source schema: {e}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                )
            })?,
            None if f.is_nullable() => arrow_array::new_null_array(f.data_type(), batch.num_rows()),
            None => return Err(format!("column `{}` is missing", f.name())),
        };
        columns.push(col);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// Rows of `batch` with a null in a `required` column: removed, each a dead
/// letter (the row as JSON) at position `name:first_row + i`.
fn split_null_required(
    batch: RecordBatch,
    required: &[String],
    name: &str,
    first_row: i64,
    letters: &mut Vec<DeadLetter>,
) -> Result<RecordBatch> {
    let columns: Vec<(&String, &arrow_array::ArrayRef)> = required
        .iter()
        .filter_map(|c| batch.column_by_name(c).map(|a| (c, a)))
        .filter(|(_, a)| a.null_count() > 0)
        .collect();
    if columns.is_empty() {
        return Ok(batch);
    }
    let mut keep = vec![true; batch.num_rows()];
    for (row, k) in keep.iter_mut().enumerate() {
        let missing: Vec<&str> = columns
            .iter()
            .filter(|(_, a)| a.is_null(row))
            .map(|(c, _)| c.as_str())
            .collect();
        if missing.is_empty() {
            continue;
        }
        *k = false;
        let one = batch.slice(row, 1);
        let mut text = Vec::new();
        {
            let mut w = crate::json_out::writer(&mut text);
            let prepared = crate::json_out::prepare(&one, name)?;
            w.write(&prepared)?;
            w.finish()?;
        }
        letters.push(DeadLetter {
            partition: 0,
            position: Position::Id(format!("{name}:{}", first_row + row as i64)),
            reason: format!(
                "required column `{}` is missing or null",
                missing.join("`, `")
            ),
            record: String::from_utf8_lossy(&text).trim_end().to_string(),
        });
    }
    let keep = arrow_array::BooleanArray::from(keep);
    Ok(arrow_select::filter::filter_record_batch(&batch, &keep)?)
}

impl Connector for WatchedDir {
    fn partitions(&self) -> Vec<String> {
        vec![self.name()]
    }

    fn set_record_rules(&mut self, rules: &RecordRules) {
        self.rules = rules.clone();
    }

    fn take_dead_letters(&mut self, out: &mut Vec<DeadLetter>) {
        out.append(&mut self.letters);
    }

    fn take_batch(&mut self) -> Result<Option<(usize, RecordBatch)>> {
        let Some((name, Reading::Parquet { reader, rows })) = self.current.as_mut() else {
            return Ok(None);
        };
        let first_row = *rows;
        let batch = match reader.next() {
            Some(Ok(batch)) => conform(&batch, &self.schema),
            Some(Err(e)) => Err(format!("not a readable Parquet file: {e}")),
            None => {
                self.finish_current();
                return Ok(None);
            }
        };
        match batch {
            Ok(batch) => {
                *rows += batch.num_rows() as i64;
                let name = name.clone();
                let batch = split_null_required(
                    batch,
                    &self.rules.required,
                    &name,
                    first_row,
                    &mut self.letters,
                )?;
                Ok(Some((0, batch)))
            }
            Err(reason) => {
                let name = name.clone();
                self.refuse_file(&name, first_row, reason);
                self.finish_current();
                Ok(None)
            }
        }
    }

    fn fetch(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<Fetch> {
        self.list()?;
        if !self.open_next()? {
            if self.at_end() {
                return Ok(Fetch::End);
            }
            std::thread::sleep(Duration::from_millis(5));
            return Ok(Fetch::Idle);
        }
        let Some((name, Reading::Json { lines, line })) = self.current.as_mut() else {
            // a Parquet file: its rows come through take_batch
            return Ok(Fetch::Records);
        };
        let mut refused = 0;
        while out.len() + refused < max {
            match lines.next_line() {
                Ok(Some(Line::Record(text))) => {
                    let position = Position::Id(format!("{name}:{line}"));
                    *line += 1;
                    if text.iter().all(|b| b.is_ascii_whitespace()) {
                        continue;
                    }
                    out.push(RawRecord {
                        partition: 0,
                        position,
                        payload: text,
                    });
                }
                Ok(Some(Line::TooLong { prefix, len })) => {
                    let position = Position::Id(format!("{name}:{line}"));
                    *line += 1;
                    refused += 1;
                    let max = self.rules.max_record_bytes;
                    self.letters
                        .push(DeadLetter::too_long(0, position, &prefix, len, max));
                }
                Err(e) => {
                    let (name, at) = (name.clone(), *line);
                    self.refuse_file(&name, at, format!("read failed: {e}"));
                    self.finish_current();
                    break;
                }
                Ok(None) => {
                    self.finish_current();
                    break;
                }
            }
        }
        Ok(Fetch::Records)
    }

    fn finished_partitions(&self) -> Vec<usize> {
        if self.at_end() {
            vec![0]
        } else {
            Vec::new()
        }
    }

    fn positions(&self) -> BTreeMap<String, Position> {
        match &self.last_done {
            Some(n) => BTreeMap::from([(self.name(), Position::Id(n.clone()))]),
            None => BTreeMap::new(),
        }
    }

    fn checkpoint(&self) -> Result<BTreeMap<String, Position>> {
        let mut saved: BTreeMap<String, Position> = self
            .finished
            .iter()
            .map(|n| (format!("{FILE}{n}"), Position::Offset(FINISHED)))
            .collect();
        if let Some((name, reading)) = &self.current {
            saved.insert(
                format!("{FILE}{name}"),
                Position::Offset(reading.consumed()),
            );
        }
        Ok(saved)
    }

    fn seek(&mut self, saved: &BTreeMap<String, Position>) -> Result<()> {
        for (key, position) in saved {
            let Some(name) = key.strip_prefix(FILE) else {
                continue;
            };
            if owner(name, self.parallelism) != self.subtask {
                continue;
            }
            match position {
                Position::Offset(FINISHED) => {
                    self.finished.insert(name.to_string());
                }
                Position::Offset(n) => {
                    self.resume.insert(name.to_string(), *n);
                }
                Position::Id(id) => {
                    return Err(Error::Checkpoint {
                        location: self.name(),
                        message: format!("position `{id}` of file {name} is not a count"),
                    })
                }
            }
        }
        self.last_done = self.finished.iter().next_back().cloned();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
