//! How a file's decoded batch becomes a batch of the source.
//!
//! ```text
//!  file columns read (projection mask, file order) ─► adapt: per scan column
//!     File(i) (cast if widened) | Missing (nulls) | Partition (constant)
//!  scan batch = visible columns ++ hidden time columns (range / pacing only)
//!  ─► time-range filter, pacing times ─► visible(): hidden columns dropped
//! ```
//! Owns [`Layout`] and [`FilePlan`]. May use `weir_core::error`, `weir_core::time`,
//! the sibling `discover` and `replay` types and the arrow crates.

use super::discover::PartValue;
use crate::replay::TimeRange;
use arrow_array::{new_null_array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, Schema, SchemaRef};
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// Where one scan column of one file comes from.
#[derive(Debug, Clone)]
pub enum ColumnFrom {
    /// Position in the decoded (projected) batch.
    File(usize),
    /// Not in this file: nulls.
    Missing,
    /// A partition folder's value.
    Partition(PartValue),
}

/// What to read from one file and how to lay it out.
#[derive(Debug, Clone)]
pub struct FilePlan {
    /// Root columns of the file to decode (ascending).
    pub roots: Vec<usize>,
    /// One entry per scan column.
    pub columns: Vec<ColumnFrom>,
}

/// The column layout every subtask of a source reads with.
#[derive(Debug, Clone)]
pub struct Layout {
    /// What the source emits.
    pub schema: SchemaRef,
    /// `schema`'s columns, then hidden ones read only for the time range
    /// or pacing.
    pub scan_schema: SchemaRef,
    /// Event-time column (in `schema`).
    pub event: Option<usize>,
    /// Time-range column (in `scan_schema`) and the range.
    pub range: Option<(usize, TimeRange)>,
    /// Pacing column (in `scan_schema`).
    pub pace: Option<usize>,
    /// Per file.
    pub files: Vec<FilePlan>,
}

/// What a [`Layout`] is built from.
pub struct LayoutInput<'a> {
    /// File columns (unified) then partition columns.
    pub full: &'a Schema,
    /// How many of `full`'s columns come from files.
    pub file_columns: usize,
    /// Each file's own schema and partition values.
    pub files: Vec<(&'a Schema, &'a [PartValue])>,
    /// Emitted columns (indices into `full`); `None` is all.
    pub projection: Option<&'a [usize]>,
    /// Event-time column name.
    pub event: Option<&'a str>,
    /// Time-range column name and range.
    pub range: Option<(&'a str, TimeRange)>,
    /// Pacing column name.
    pub pace: Option<&'a str>,
}

impl Layout {
    /// Lays out the scan; a named column missing from `full` is an error.
    pub fn new(input: LayoutInput<'_>) -> Result<Layout> {
        let full = input.full;
        let visible: Vec<usize> = match input.projection {
            Some(p) => p.to_vec(),
            None => (0..full.fields().len()).collect(),
        };
        let index = |name: &str| {
            full.index_of(name)
                .map_err(|_| Error::column(name, "parquet source", "not a column of the source"))
        };
        let mut scan = visible.clone();
        for name in [input.range.map(|r| r.0), input.pace].into_iter().flatten() {
            let i = index(name)?;
            if !scan.contains(&i) {
                scan.push(i);
            }
        }
        let position = |name: &str| -> Result<usize> {
            let i = index(name)?;
            scan.iter()
                .position(|&s| s == i)
                .ok_or_else(|| Error::column(name, "parquet source", "not read"))
        };
        let event = match input.event {
            Some(name) => {
                let p = position(name)?;
                if p >= visible.len() {
                    return Err(Error::column(
                        name,
                        "parquet source",
                        "the event-time column must be among the projected columns",
                    ));
                }
                Some(p)
            }
            None => None,
        };
        let range = match input.range {
            Some((name, r)) => Some((position(name)?, r)),
            None => None,
        };
        let pace = input.pace.map(position).transpose()?;
        let files = input
            .files
            .iter()
            .map(|(schema, parts)| {
                let mut roots: Vec<usize> = scan
                    .iter()
                    .filter(|&&i| i < input.file_columns)
                    .filter_map(|&i| schema.index_of(full.field(i).name()).ok())
                    .collect();
                roots.sort_unstable();
                roots.dedup();
                let columns = scan
                    .iter()
                    .map(|&i| {
                        if i >= input.file_columns {
                            let v = parts.get(i - input.file_columns);
                            return ColumnFrom::Partition(v.cloned().unwrap_or(PartValue::Null));
                        }
                        match schema.index_of(full.field(i).name()) {
                            Ok(root) => ColumnFrom::File(
                                roots.iter().position(|&r| r == root).unwrap_or_default(),
                            ),
                            Err(_) => ColumnFrom::Missing,
                        }
                    })
                    .collect();
                FilePlan { roots, columns }
            })
            .collect();
        let pick = |idx: &[usize]| {
            Arc::new(Schema::new(
                idx.iter()
                    .map(|&i| full.field(i).clone())
                    .collect::<Vec<_>>(),
            ))
        };
        Ok(Layout {
            schema: pick(&visible),
            scan_schema: pick(&scan),
            event,
            range,
            pace,
            files,
        })
    }

    /// Turns a batch decoded from file `file` (its projected columns) into a
    /// scan batch: widened, missing columns as nulls, partition values added.
    pub fn adapt(&self, file: usize, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let n = batch.num_rows();
        let columns = self.files[file]
            .columns
            .iter()
            .zip(self.scan_schema.fields())
            .map(|(from, field)| {
                let ty = field.data_type();
                Ok(match from {
                    ColumnFrom::File(i) => {
                        let c = batch.column(*i);
                        if c.data_type() == ty {
                            c.clone()
                        } else {
                            arrow_cast::cast(c, ty).map_err(|e| {
                                ArrowError::CastError(format!("column `{}`: {e}", field.name()))
                            })?
                        }
                    }
                    ColumnFrom::Missing | ColumnFrom::Partition(PartValue::Null) => {
                        new_null_array(ty, n)
                    }
                    ColumnFrom::Partition(PartValue::Int(v)) => {
                        Arc::new(Int64Array::from_value(*v, n)) as ArrayRef
                    }
                    ColumnFrom::Partition(PartValue::Str(s)) => {
                        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s, n)))
                    }
                })
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(n));
        RecordBatch::try_new_with_options(self.scan_schema.clone(), columns, &options)
    }

    /// The emitted part of a scan batch (hidden time columns dropped).
    pub fn visible(&self, scan: RecordBatch) -> Result<RecordBatch, ArrowError> {
        let n = self.schema.fields().len();
        if scan.num_columns() == n {
            return Ok(scan);
        }
        scan.project(&(0..n).collect::<Vec<_>>())
    }
}
