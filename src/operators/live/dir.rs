//! A watched directory: new Parquet and newline-delimited JSON files are
//! read as they appear.
//!
//! Owns [`WatchedDir`]. May use the sibling modules, `crate::error` and the
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
//! **Checkpoints:** the checkpoint names every file this subtask finished
//! (`file NAME` → offset -1) and the file being read with the records
//! (JSON lines, blank ones included) or Parquet rows read so far (`file
//! NAME` → count). A restored subtask skips the finished files it owns
//! (after a rescale: owns now), reads the partial file first, skipping its
//! first records (Parquet rows through the reader's offset, JSON lines by
//! reading past them), then the rest in name order. The list of finished
//! files grows with every file read (a name per file in each checkpoint).

use super::{Connector, Fetch, Position, RawRecord};
use crate::error::{Error, Result};
use crate::operator::TaskInfo;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

enum Reading {
    Json {
        lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
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
    // state
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

    /// Opens the next queued file, if any.
    fn open_next(&mut self) -> Result<bool> {
        if self.current.is_some() {
            return Ok(true);
        }
        let Some(name) = self.queue.pop_front() else {
            return Ok(false);
        };
        let path = self.dir.join(&name);
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let skip = self.resume.remove(&name).unwrap_or(0).max(0);
        let reading = if name.ends_with(".parquet") {
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| {
                    b.with_batch_size(8192)
                        .with_offset(usize::try_from(skip).unwrap_or(usize::MAX))
                        .build()
                })
                .map_err(|e| Error::Parquet {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            Reading::Parquet { reader, rows: skip }
        } else {
            let mut lines = std::io::BufReader::with_capacity(1 << 16, file).lines();
            for _ in 0..skip {
                if let Some(Err(e)) = lines.next() {
                    return Err(Error::io(&path, e));
                }
            }
            Reading::Json { lines, line: skip }
        };
        self.current = Some((name, reading));
        Ok(true)
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

/// `batch` with the columns of `schema`, by name, cast where needed.
fn conform(batch: &RecordBatch, schema: &SchemaRef, path: &Path) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let col = match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            Some(c) => arrow_cast::cast_with_options(c, f.data_type(), &STRICT).map_err(|e| {
                Error::SchemaMismatch {
                    location: path.display().to_string(),
                    message: format!(
                        "column `{}` is {} in the file, {} in the source schema: {e}",
                        f.name(),
                        c.data_type(),
                        f.data_type()
                    ),
                }
            })?,
            None if f.is_nullable() => arrow_array::new_null_array(f.data_type(), batch.num_rows()),
            None => {
                return Err(Error::SchemaMismatch {
                    location: path.display().to_string(),
                    message: format!("column `{}` is missing", f.name()),
                })
            }
        };
        columns.push(col);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

impl Connector for WatchedDir {
    fn partitions(&self) -> Vec<String> {
        vec![self.name()]
    }

    fn take_batch(&mut self) -> Result<Option<(usize, RecordBatch)>> {
        let Some((name, Reading::Parquet { reader, rows })) = self.current.as_mut() else {
            return Ok(None);
        };
        let path = self.dir.join(name.as_str());
        match reader.next() {
            Some(Ok(batch)) => {
                *rows += batch.num_rows() as i64;
                Ok(Some((0, conform(&batch, &self.schema, &path)?)))
            }
            Some(Err(e)) => Err(Error::Parquet {
                path,
                message: e.to_string(),
            }),
            None => {
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
        while out.len() < max {
            match lines.next() {
                Some(Ok(text)) => {
                    let position = Position::Id(format!("{name}:{line}"));
                    *line += 1;
                    if text.trim().is_empty() {
                        continue;
                    }
                    out.push(RawRecord {
                        partition: 0,
                        position,
                        payload: text.into_bytes(),
                    });
                }
                Some(Err(e)) => {
                    let path = self.dir.join(name.as_str());
                    return Err(Error::io(path, e));
                }
                None => {
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
mod tests {
    use super::*;
    use crate::operator::Source;
    use crate::operators::live::{ConnectorFactory, LiveSourceSpec};
    use crate::operators::source_harness::{
        assert_every_cut, rescaled_rows, row_multiset, uninterrupted, Item,
    };
    use crate::time::WatermarkStrategy;
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("t", DataType::Int64, false),
        ]))
    }

    fn json(dir: &Path, name: &str, rows: std::ops::Range<i64>) {
        let text: Vec<String> = rows
            .map(|i| match i % 7 {
                3 => String::new(), // blank lines carry no record
                _ => format!(r#"{{"id":{i},"t":{}}}"#, i * 2 - (i % 4) * 9),
            })
            .collect();
        std::fs::write(dir.join(name), text.join("\n")).unwrap();
    }

    fn parquet(dir: &Path, name: &str, rows: std::ops::Range<i64>) {
        let b = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.clone())),
                Arc::new(Int64Array::from_iter_values(
                    rows.map(|i| i / 100 - (i % 3) * 5),
                )),
            ],
        )
        .unwrap();
        let file = std::fs::File::create(dir.join(name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn a_restored_directory_skips_finished_files_and_resumes_inside_one() {
        let dir = tempfile::tempdir().unwrap();
        json(dir.path(), "a.json", 0..12);
        // two reader batches of 8192 rows: a cut falls inside the file
        parquet(dir.path(), "b.parquet", 1000..(1000 + 8192 + 40));
        json(dir.path(), "c.jsonl", 20_000..20_010);
        json(dir.path(), "d.ndjson", 30_000..30_005);
        let path = dir.path().to_path_buf();
        let factory: ConnectorFactory = Arc::new(move |info| {
            let d = WatchedDir::try_new(&path, schema(), info, true, Duration::ZERO, None)?;
            Ok(Box::new(d) as _)
        });
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(6));
        let spec = Arc::new(
            LiveSourceSpec::new("watched", schema(), factory, true)
                .with_max_records(4)
                .with_event_time("t", strategy)
                .unwrap(),
        );
        let make = move |info: &TaskInfo| Ok(Box::new(spec.create(info)?) as Box<dyn Source>);
        let (all, _) = uninterrupted(&make, 0, 1);
        assert!(
            all.iter().any(|i| matches!(i, Item::Side(1, _))),
            "late rows"
        );
        let input = row_multiset(all);
        assert_eq!(input.len(), 8232 + 10 + 8 + 5, "blank lines skipped");
        for p in [1, 2] {
            assert_every_cut(&make, p);
        }
        for cuts in [[1, 1], [3, 2], [2, 6]] {
            let got = rescaled_rows(&make, &cuts, 3);
            // (not assert_eq: thousands of rows would flood the report)
            assert!(
                got == input,
                "cuts {cuts:?}: {} rows, {} expected",
                got.len(),
                input.len()
            );
        }
    }

    #[test]
    fn files_are_shared_stably_between_subtasks() {
        let names = ["a.json", "b.json", "c.parquet", "d.jsonl", "e.json"];
        let owners: Vec<usize> = names.iter().map(|n| owner(n, 3)).collect();
        assert_eq!(
            owners,
            names.iter().map(|n| owner(n, 3)).collect::<Vec<_>>()
        );
        assert!(owners.iter().all(|&o| o < 3));
        assert!(names.iter().all(|n| owner(n, 1) == 0));
    }
}
