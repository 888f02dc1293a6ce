//! A shard's Parquet reader keeps the rows of its key groups before it
//! decodes their other columns (`SourceSpec::with_key_filter`).
//!
//! ```text
//!  row group ─► predicate pass (parquet RowFilter, eager): key columns + event time of
//!     every row, batch by batch as the unfiltered reader would cut them
//!       ─► key group of each row (as the hash router) ─► own? ; logged: (rows, times, own)
//!  ─► projection pass: every column of the own rows only (pages of others are skipped)
//!  ─► re-cut per logged batch: (own rows, all rows' times, own mask, rows consumed)
//!  poll side: the split's clock sees every row's time (watermarks and lateness exactly as
//!     unfiltered); the own rows that are not late are emitted
//! ```
//! Only where nothing is lost by it: the source's rows all go into hash
//! edges on these key columns (the planner asks only then, and the router
//! still drops any other key), no side output is read, the key columns
//! come from the files, and watermarks are bounded out-of-orderness (or
//! none) with no time range or pacing on another column. Row-group
//! statistics cannot prune a hash, so every row's key and time columns are
//! still decoded. May use the parent module's layout, `weir_core::key`,
//! `weir_core::shard` and the arrow/parquet crates.

use super::layout::{ColumnFrom, FilePlan, Layout};
use arrow_array::{Array, BooleanArray, RecordBatch, RecordBatchReader};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{ArrowError, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ParquetRecordBatchReader, RowFilter};
use parquet::arrow::ProjectionMask;
use parquet::schema::types::SchemaDescriptor;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use weir_core::key::{key_group, KeyEncoder};
use weir_core::shard::KeyGroups;

/// The key columns and key groups a shard's reader keeps.
#[derive(Debug)]
pub(crate) struct KeyFilter {
    // config
    /// Key columns (indices into the layout's emitted schema).
    keys: Vec<usize>,
    key_schema: SchemaRef,
    groups: KeyGroups,
    // resources
    encoder: KeyEncoder,
}

impl KeyFilter {
    /// A filter on `columns` of `layout`, or `None` where it would change
    /// what the source emits (see the module doc; `bounded_time` says the
    /// watermarks are bounded out-of-orderness or absent).
    pub(crate) fn try_new(
        layout: &Layout,
        file_columns: &[String],
        columns: &[String],
        groups: KeyGroups,
        bounded_time: bool,
    ) -> Option<Self> {
        if !bounded_time
            || layout.range.is_some()
            || layout.pace.is_some_and(|p| Some(p) != layout.event)
        {
            return None;
        }
        let keys: Vec<usize> = columns
            .iter()
            .map(|c| layout.schema.index_of(c).ok())
            .collect::<Option<_>>()?;
        if !columns.iter().all(|c| file_columns.contains(c)) {
            return None; // partition columns: constant per file, nothing to skip
        }
        let key_schema = Arc::new(Schema::new(
            keys.iter()
                .map(|&k| layout.schema.field(k).clone())
                .collect::<Vec<_>>(),
        ));
        let names: Vec<String> = columns.to_vec();
        let encoder = KeyEncoder::try_new(&key_schema, &names, "shard key filter").ok()?;
        Some(KeyFilter {
            keys,
            key_schema,
            groups,
            encoder,
        })
    }

    /// The row filter for one row group of a file laid out by `plan`, and
    /// the log its predicate fills; `None` if a key or the event-time
    /// column is not in this file (it is then read unfiltered).
    pub(crate) fn row_filter(
        self: &Arc<Self>,
        layout: &Layout,
        plan: &FilePlan,
        descr: &SchemaDescriptor,
    ) -> Option<(RowFilter, Arc<Mutex<VecDeque<Logged>>>)> {
        let root_of = |scan: usize| match plan.columns.get(scan)? {
            ColumnFrom::File(i) => plan.roots.get(*i).copied(),
            _ => None,
        };
        let key_roots: Vec<usize> = self
            .keys
            .iter()
            .map(|&k| root_of(k))
            .collect::<Option<_>>()?;
        let time = match layout.event {
            Some(e) => Some((root_of(e)?, layout.schema.field(e).clone())),
            None => None,
        };
        let mut roots: Vec<usize> = key_roots
            .iter()
            .copied()
            .chain(time.iter().map(|t| t.0))
            .collect();
        roots.sort_unstable();
        roots.dedup();
        let position = |root: usize| roots.iter().position(|&r| r == root).expect("listed");
        let key_at: Vec<usize> = key_roots.iter().map(|&r| position(r)).collect();
        let time_at = time.map(|(r, field)| (position(r), field));
        let mask = ProjectionMask::roots(descr, roots.iter().copied());
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (filter, sink) = (self.clone(), log.clone());
        let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            let logged = filter.classify(&batch, &key_at, time_at.as_ref())?;
            let own = logged.own.clone();
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(logged);
            Ok(own)
        });
        Some((RowFilter::new(vec![Box::new(predicate)]), log))
    }

    /// Which rows of a predicate batch are this shard's, and every row's time.
    fn classify(
        &self,
        batch: &RecordBatch,
        key_at: &[usize],
        time_at: Option<&(usize, arrow_schema::Field)>,
    ) -> Result<Logged, ArrowError> {
        let columns = key_at
            .iter()
            .zip(self.key_schema.fields())
            .map(|(&i, f)| arrow_cast::cast(batch.column(i), f.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let keys = RecordBatch::try_new_with_options(self.key_schema.clone(), columns, &options)?;
        let hashes = self
            .encoder
            .hashes(&keys)
            .map_err(|e| ArrowError::ComputeError(e.to_string()))?;
        let mut own: Vec<bool> = hashes
            .iter()
            .map(|&h| self.groups.contains(key_group(h)))
            .collect();
        let times = match time_at {
            None => None,
            Some((i, field)) => {
                let t = arrow_cast::cast(batch.column(*i), field.data_type())?;
                if t.null_count() > 0 {
                    // decoded and refused by name as an unfiltered reader would
                    own.iter_mut().for_each(|o| *o = true);
                    Some(vec![i64::MIN; t.len()].into())
                } else {
                    let single = RecordBatch::try_from_iter([(field.name().as_str(), t)])?;
                    Some(
                        weir_core::time::event_times(&single, 0, "shard key filter")
                            .map_err(|e| ArrowError::ComputeError(e.to_string()))?,
                    )
                }
            }
        };
        Ok(Logged {
            rows: batch.num_rows(),
            times,
            own: BooleanArray::from(own),
        })
    }
}

/// One predicate batch: as many rows as the unfiltered reader's batch.
#[derive(Debug)]
pub(crate) struct Logged {
    /// Rows of the row group it covers.
    pub rows: usize,
    /// Every row's event time (epoch ms), if the source has event time.
    pub times: Option<ScalarBuffer<i64>>,
    /// Which rows are this shard's.
    pub own: BooleanArray,
}

/// A filtered row group: the own rows, re-cut to the logged batches.
pub(crate) struct Filtered {
    // state
    reader: ParquetRecordBatchReader,
    log: VecDeque<Logged>,
    /// Own rows read but not yet handed out.
    carry: Option<RecordBatch>,
}

impl Filtered {
    /// Over `reader` (built with the row filter, which filled `log`).
    pub(crate) fn new(reader: ParquetRecordBatchReader, log: &Mutex<VecDeque<Logged>>) -> Self {
        let log = std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()));
        Filtered {
            reader,
            log,
            carry: None,
        }
    }

    /// The own rows of the next logged batch (possibly none) with its log.
    pub(crate) fn next(&mut self) -> Option<Result<(RecordBatch, Logged), ArrowError>> {
        let logged = self.log.pop_front()?;
        let want = logged.own.true_count();
        let mut parts: Vec<RecordBatch> = Vec::new();
        let mut have = 0;
        while have < want {
            let next = match self.carry.take() {
                Some(b) => b,
                None => match self.reader.next() {
                    Some(Ok(b)) => b,
                    Some(Err(e)) => return Some(Err(e)),
                    None => {
                        return Some(Err(ArrowError::ComputeError(format!(
                            "the filtered read ended {} rows short",
                            want - have
                        ))))
                    }
                },
            };
            let take = (want - have).min(next.num_rows());
            if take < next.num_rows() {
                self.carry = Some(next.slice(take, next.num_rows() - take));
            }
            have += take;
            parts.push(next.slice(0, take));
        }
        let schema = match parts.first() {
            Some(b) => b.schema(),
            None => self.reader.schema(),
        };
        Some(arrow_select::concat::concat_batches(&schema, &parts).map(|b| (b, logged)))
    }
}
