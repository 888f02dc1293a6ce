//! Partitioned directory targets (Hive layout, as Flink's filesystem
//! sink writes them): rows go to `TARGET/k1=v1/k2=v2/part-….EXT` by the
//! values of the partition columns, which the files themselves omit; a
//! partition is *committed* by a `_SUCCESS` file once it is complete.
//!
//! ```text
//!  batch ─► format the partition columns per row ─► escape ─► "dt=2026-12-07/hm=10%3A05"
//!        ─► rows grouped by that path (runs kept in order) ─► one open part per path
//!  commit policy success-file:
//!    partition-time: committed when watermark ≥ time(values) + delay
//!    process-time:   committed when now ≥ first row's wall clock + delay
//!    (checked at each checkpoint after its parts are published; at the
//!     end of a run without checkpoints every partition is committed)
//! ```
//! Values are escaped like Hive's and Flink's (`%XX` for `/`, `:`, `=`, `%`,
//! control characters, …); a null or empty value is `__DEFAULT_PARTITION__`.
//!
//! May use `weir_core::error`, `crate::replay` (time parsing), arrow and std.

use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_schema::{Schema, SchemaRef};
use std::collections::HashMap;
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// The file that says a partition is complete.
pub const SUCCESS_FILE: &str = "_SUCCESS";

use weir_core::paths::unescape_partition as unescape;
pub use weir_core::paths::DEFAULT_PARTITION;
pub(crate) use weir_core::paths::{
    escape_partition as escape, is_partition_dir, is_partition_path,
};

/// When a partition counts as complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitTrigger {
    /// When the watermark passes the time the partition's values name
    /// (`pattern` with `$column` placeholders, e.g. `$dt $hm:00`) plus the delay.
    PartitionTime {
        /// The timestamp pattern over the partition columns.
        pattern: String,
    },
    /// When the wall clock passes the partition's first row plus the delay.
    ProcessTime,
}

/// How a partitioned sink commits partitions (`_SUCCESS` files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionCommit {
    /// When a partition is complete.
    pub trigger: CommitTrigger,
    /// How long after its time a partition is committed.
    pub delay_ms: i64,
}

/// The partition columns of a directory sink and how partitions commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    /// Partition columns, outermost directory first.
    pub columns: Vec<String>,
    /// `_SUCCESS` files, or none.
    pub commit: Option<PartitionCommit>,
}

impl PartitionSpec {
    /// PartitionSpec by `columns` without commit files.
    pub fn by(columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        PartitionSpec {
            columns: columns.into_iter().map(Into::into).collect(),
            commit: None,
        }
    }

    /// Adds `_SUCCESS` files written as `commit` says.
    pub fn with_commit(mut self, commit: PartitionCommit) -> Self {
        self.commit = Some(commit);
        self
    }

    /// Checks the columns against the rows' `schema` and the time pattern
    /// against the columns; returns the splitter for the sink's subtasks.
    pub(crate) fn try_splitter(&self, schema: &SchemaRef) -> Result<Splitter> {
        let fail = |m: String| Error::option("PARTITIONED BY", m);
        if self.columns.is_empty() {
            return Err(fail("names no column".into()));
        }
        let mut indices = Vec::new();
        for c in &self.columns {
            let Ok(i) = schema.index_of(c) else {
                return Err(fail(format!(
                    "the rows have no column `{c}` (they have {})",
                    names(schema)
                )));
            };
            if indices.contains(&i) {
                return Err(fail(format!("`{c}` is named twice")));
            }
            if !is_partition_dir(&format!("{}=x", escape(c))) {
                return Err(fail(format!(
                    "`{c}` cannot name a partition directory (`{c}=…` would be hidden or \
                     malformed): rename the column"
                )));
            }
            if schema.field(i).data_type().is_nested() {
                return Err(fail(format!(
                    "`{c}` is a {} column: a partition value must be a plain value",
                    schema.field(i).data_type()
                )));
            }
            indices.push(i);
        }
        if indices.len() == schema.fields().len() {
            return Err(fail(
                "every column is a partition column: the files would hold nothing".into(),
            ));
        }
        if self.commit.as_ref().is_some_and(|c| c.delay_ms < 0) {
            return Err(Error::option(
                "sink.partition-commit.delay",
                "is negative".to_string(),
            ));
        }
        if let Some(PartitionCommit {
            trigger: CommitTrigger::PartitionTime { pattern },
            ..
        }) = &self.commit
        {
            for name in placeholders(pattern) {
                if !self.columns.contains(&name) {
                    return Err(Error::option(
                        "partition.time-extractor.timestamp-pattern",
                        format!(
                            "`${name}` is not a partition column (they are {})",
                            self.columns
                                .iter()
                                .map(|c| format!("`{c}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        let data = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(i, _)| !indices.contains(i))
                .map(|(_, f)| f.clone())
                .collect::<Vec<_>>(),
        ));
        Ok(Splitter {
            names: self.columns.iter().map(|c| escape(c)).collect(),
            indices,
            data,
        })
    }

    /// The time partition `rel` (a path [`Splitter::split`] made) stands
    /// for under the partition-time trigger, in epoch milliseconds
    /// (`None` under another trigger); an error names the partition whose
    /// values do not form a time by the pattern.
    pub(crate) fn time_of(&self, rel: &str) -> Result<Option<i64>> {
        let Some(PartitionCommit {
            trigger: CommitTrigger::PartitionTime { pattern },
            ..
        }) = &self.commit
        else {
            return Ok(None);
        };
        let values: Vec<(&String, String)> = self
            .columns
            .iter()
            .zip(rel.split('/'))
            .map(|(c, component)| {
                let value = component.split_once('=').and_then(|(_, v)| unescape(v));
                (c, value.unwrap_or_default())
            })
            .collect();
        // one pass over the pattern: at each `$`, the longest column name
        // that follows (`$dt` before `$d`); values are never read as pattern
        let mut text = String::new();
        let mut rest = pattern.as_str();
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let hit = values
                .iter()
                .filter(|(c, _)| rest.starts_with(c.as_str()))
                .max_by_key(|(c, _)| c.len());
            match hit {
                Some((c, v)) => {
                    text.push_str(v);
                    rest = &rest[c.len()..];
                }
                None => text.push('$'),
            }
        }
        text.push_str(rest);
        partition_time(&text).map(Some).ok_or_else(|| {
            Error::option(
                "partition.time-extractor.timestamp-pattern",
                format!(
                    "partition `{rel}`: '{pattern}' gives `{text}`, which is not a time \
                     (yyyy-MM-dd, yyyy-MM-dd HH:mm or yyyy-MM-dd HH:mm:ss, UTC), so the \
                     partition could never be committed by partition time"
                ),
            )
        })
    }
}

/// The watermarks the subtasks of a partitioned sink reported, by
/// checkpoint, in one run: a checkpoint's partitions commit by the lowest
/// of each subtask's watermark at that checkpoint (its latest report at a
/// checkpoint up to it), as Flink's committer waits for every writer. A
/// subtask that ran ahead (ended, its final checkpoint later) cannot let a
/// slower one commit a partition whose later parts it has not published.
///
/// ```text
///  subtask 0: ckpt 4 → w=120   ckpt 5 → w=180
///  subtask 1: ckpt 4 → w=100   ckpt 5 (final) → MAX
///  lowest at 4 = min(120, 100) = 100      lowest at 5 = min(180, MAX) = 180
/// ```
#[derive(Debug, Default)]
pub(crate) struct Watermarks {
    // state
    run: u64,
    /// Per subtask: (checkpoint, watermark), oldest first, the last few.
    of: Vec<Vec<(u64, i64)>>,
}

impl Watermarks {
    /// How many reports of a subtask are kept (subtasks are at most a few
    /// checkpoints apart).
    const KEPT: usize = 16;

    /// Records subtask `subtask`'s `watermark` (of `parallelism`) at
    /// `checkpoint` in `run` (a new run starts over); the lowest of all the
    /// subtasks' watermarks at `checkpoint`, once all reported.
    pub fn report(
        &mut self,
        run: u64,
        checkpoint: u64,
        subtask: usize,
        parallelism: usize,
        watermark: Option<i64>,
    ) -> Option<i64> {
        if self.run != run || self.of.len() != parallelism {
            self.run = run;
            self.of = vec![Vec::new(); parallelism];
        }
        if let (Some(mine), Some(w)) = (self.of.get_mut(subtask), watermark) {
            let w = mine.last().map_or(w, |&(_, before)| before.max(w));
            mine.retain(|&(c, _)| c < checkpoint);
            mine.push((checkpoint, w));
            if mine.len() > Self::KEPT {
                mine.remove(0);
            }
        }
        self.of
            .iter()
            .map(|reports| {
                reports
                    .iter()
                    .rev()
                    .find(|&&(c, _)| c <= checkpoint)
                    .map(|&(_, w)| w)
            })
            .min()
            .flatten()
    }
}

/// `$name` placeholders of a timestamp pattern.
fn placeholders(pattern: &str) -> Vec<String> {
    pattern
        .split('$')
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .collect()
}

/// `yyyy-MM-dd`, `yyyy-MM-dd HH:mm` or `yyyy-MM-dd HH:mm:ss` (UTC) in ms.
fn partition_time(text: &str) -> Option<i64> {
    let t = text.trim();
    let t = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix("+00:00"))
        .unwrap_or(t);
    let full = match t.len() {
        10 => format!("{t} 00:00:00Z"),
        16 => format!("{t}:00Z"),
        _ => format!("{t}Z"),
    };
    crate::replay::parse_time("partition time", &full).ok()
}

fn names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("`{}`", f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits batches into the rows of each partition.
#[derive(Debug, Clone)]
pub(crate) struct Splitter {
    // config
    /// Escaped partition column names.
    names: Vec<String>,
    /// Their indices in the rows.
    indices: Vec<usize>,
    /// The rows without the partition columns: what the files hold.
    data: SchemaRef,
}

impl Splitter {
    /// The schema of the files.
    pub fn data_schema(&self) -> &SchemaRef {
        &self.data
    }

    /// The rows of `batch` by partition path (`k1=v1/k2=v2`), without the
    /// partition columns, in the order each path first appears.
    pub fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        let data_columns: Vec<usize> = (0..batch.num_columns())
            .filter(|i| !self.indices.contains(i))
            .collect();
        let data = batch.project(&data_columns)?;
        let n = batch.num_rows();
        // each partition column as text, and each row's value as a small id
        // per column (0: null or blank, the default partition)
        let texts = self
            .indices
            .iter()
            .map(|&i| as_text(batch.column(i)))
            .collect::<Result<Vec<_>>>()?;
        let mut ids: Vec<Vec<u32>> = Vec::with_capacity(texts.len());
        let mut values: Vec<Vec<&str>> = Vec::with_capacity(texts.len());
        for t in &texts {
            let mut seen: HashMap<&str, u32> = HashMap::new();
            let mut distinct = vec![""];
            let column = (0..n)
                .map(|row| {
                    let v = if t.is_null(row) { "" } else { t.value(row) };
                    if v.trim().is_empty() {
                        return 0;
                    }
                    *seen.entry(v).or_insert_with(|| {
                        distinct.push(v);
                        (distinct.len() - 1) as u32
                    })
                })
                .collect();
            ids.push(column);
            values.push(distinct);
        }
        // the rows of each combination of ids, in order of first appearance
        let mut groups: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut rows: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
        let mut key = Vec::with_capacity(ids.len());
        for row in 0..n {
            key.clear();
            key.extend(ids.iter().map(|c| c[row]));
            match groups.get(&key) {
                Some(&g) => rows[g].1.push(row as u32),
                None => {
                    groups.insert(key.clone(), rows.len());
                    rows.push((key.clone(), vec![row as u32]));
                }
            }
        }
        let path = |key: &[u32]| -> String {
            let mut path = String::new();
            for (k, (name, &id)) in self.names.iter().zip(key).enumerate() {
                if k > 0 {
                    path.push('/');
                }
                path.push_str(name);
                path.push('=');
                match id {
                    0 => path.push_str(DEFAULT_PARTITION),
                    _ => path.push_str(&escape(values[k][id as usize])),
                }
            }
            path
        };
        if rows.len() == 1 {
            return Ok(vec![(path(&rows[0].0), data)]);
        }
        let mut out = Vec::with_capacity(rows.len());
        for (key, indices) in rows {
            let take = UInt32Array::from(indices);
            let columns = data
                .columns()
                .iter()
                .map(|c| arrow_select::take::take(c.as_ref(), &take, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            out.push((path(&key), RecordBatch::try_new(data.schema(), columns)?));
        }
        Ok(out)
    }
}

/// `column` as text: a string column as it is, any other cast (arrow's
/// display of each value; nulls stay null).
fn as_text(column: &arrow_array::ArrayRef) -> Result<arrow_array::StringArray> {
    use arrow_array::cast::AsArray;
    let text = arrow_cast::cast(column, &arrow_schema::DataType::Utf8)?;
    Ok(text.as_string::<i32>().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field};

    #[test]
    fn rows_split_by_partition_without_the_partition_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("dt", DataType::Utf8, true),
            Field::new("hm", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
                Arc::new(StringArray::from(vec![
                    Some("d1"),
                    Some("d1"),
                    Some("d2"),
                    None,
                    Some("d1"),
                ])),
                Arc::new(StringArray::from(vec![
                    "10:00", "10:00", "10:00", "x", "10:01",
                ])),
            ],
        )
        .unwrap();
        let s = PartitionSpec::by(["dt", "hm"])
            .try_splitter(&schema)
            .unwrap();
        assert_eq!(s.data_schema().fields().len(), 1);
        let got: Vec<(String, Vec<i64>)> = s
            .split(&batch)
            .unwrap()
            .into_iter()
            .map(|(p, b)| {
                let v = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                (p, v.values().to_vec())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("dt=d1/hm=10%3A00".to_string(), vec![1, 2]),
                ("dt=d2/hm=10%3A00".to_string(), vec![3]),
                ("dt=__DEFAULT_PARTITION__/hm=x".to_string(), vec![4]),
                ("dt=d1/hm=10%3A01".to_string(), vec![5]),
            ]
        );
        // a number column: its text, a null to the default partition
        let numbers = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            numbers.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Int64Array::from(vec![Some(-7), None, Some(-7)])),
            ],
        )
        .unwrap();
        let split = PartitionSpec::by(["n"])
            .try_splitter(&numbers)
            .unwrap()
            .split(&b)
            .unwrap();
        let paths: Vec<(&str, usize)> = split
            .iter()
            .map(|(p, b)| (p.as_str(), b.num_rows()))
            .collect();
        assert_eq!(paths, [("n=-7", 2), ("n=__DEFAULT_PARTITION__", 1)]);
        let hidden = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new(".x", DataType::Utf8, true),
        ]));
        let e = PartitionSpec::by([".x"]).try_splitter(&hidden).unwrap_err();
        assert!(
            e.to_string().contains("cannot name a partition directory"),
            "{e}"
        );
        let e = PartitionSpec::by(["day"])
            .try_splitter(&schema)
            .unwrap_err();
        assert!(
            e.to_string().contains("`day`") && e.to_string().contains("`dt`"),
            "{e}"
        );
        let e = PartitionSpec::by(["v", "dt", "hm"])
            .try_splitter(&schema)
            .unwrap_err();
        assert!(e.to_string().contains("every column"), "{e}");
    }

    #[test]
    fn partitions_commit_by_the_lowest_watermark_of_the_run() {
        let mut w = Watermarks::default();
        assert_eq!(
            w.report(1, 4, 0, 2, Some(120)),
            None,
            "subtask 1 has not reported"
        );
        assert_eq!(w.report(1, 4, 1, 2, Some(100)), Some(100));
        assert_eq!(
            w.report(1, 4, 1, 2, Some(90)),
            Some(100),
            "a watermark never goes back"
        );
        // subtask 1 ended and took its final checkpoint 5 before subtask 0
        // took 5: at 4, subtask 1 still counts with its watermark at 4
        assert_eq!(w.report(1, 5, 1, 2, Some(i64::MAX)), Some(120));
        assert_eq!(
            w.report(1, 4, 0, 2, Some(130)),
            Some(100),
            "checkpoint 4 again"
        );
        assert_eq!(w.report(1, 5, 0, 2, Some(180)), Some(180));
        assert_eq!(w.report(2, 1, 0, 2, Some(5)), None, "a new run starts over");
    }

    #[test]
    fn partition_time_follows_the_pattern() {
        let p = PartitionSpec::by(["dt", "hm"]).with_commit(PartitionCommit {
            trigger: CommitTrigger::PartitionTime {
                pattern: "$dt $hm:00".into(),
            },
            delay_ms: 60_000,
        });
        // 2026-12-07T10:05:00Z
        assert_eq!(
            p.time_of("dt=2026-12-07/hm=10%3A05").unwrap(),
            Some(1_796_637_900_000)
        );
        let e = p.time_of("dt=2026-12-07/hm=x").unwrap_err().to_string();
        assert!(
            e.contains("dt=2026-12-07/hm=x") && e.contains("2026-12-07 x:00"),
            "{e}"
        );
        assert!(p.time_of("dt=__DEFAULT_PARTITION__/hm=10%3A05").is_err());
        // a value is never read as the pattern: `$hm` inside dt stays text
        let e = p.time_of("dt=%24hm/hm=10%3A05").unwrap_err().to_string();
        assert!(e.contains("gives `$hm 10:05:00`"), "{e}");
        // a timestamp column's own text, and `$d` beside `$dt`
        let q = PartitionSpec::by(["d", "dt"]).with_commit(PartitionCommit {
            trigger: CommitTrigger::PartitionTime {
                pattern: "$dt".into(),
            },
            delay_ms: 0,
        });
        assert_eq!(
            q.time_of("d=x/dt=2026-12-07T10%3A05%3A00Z").unwrap(),
            Some(1_796_637_900_000)
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("dt", DataType::Utf8, true),
            Field::new("hm", DataType::Utf8, true),
        ]));
        let bad = PartitionSpec::by(["dt"]).with_commit(PartitionCommit {
            trigger: CommitTrigger::PartitionTime {
                pattern: "$dt $hm:00".into(),
            },
            delay_ms: 0,
        });
        let e = bad.try_splitter(&schema).unwrap_err().to_string();
        assert!(
            e.contains("timestamp-pattern") && e.contains("`$hm`"),
            "{e}"
        );
    }
}
