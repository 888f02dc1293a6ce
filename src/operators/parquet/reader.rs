//! One subtask's reader: its row groups decoded ahead on a background
//! thread, emitted in order with per-split watermarks and pacing.
//!
//! ```text
//!  decode thread (Decoder): for each split, in order:
//!     open row group (projection mask) ─► batch ─► adapt (widen, nulls, partitions)
//!     ─► time-range filter ─► event/pacing times ─► hidden columns dropped
//!     ─► chunks of ~32K rows ─► bounded channel (about `read_ahead` row groups) ─► ... SplitEnd
//!  poll_next: recv ─► SplitClock (late rows → side output 1) ─► pacing (hold)
//!     ─► emit ─► watermark
//! ```
//! One thread decodes a subtask's splits one after another and the channel
//! is FIFO, so batches, splits and watermarks come out exactly as without
//! read-ahead. A decode error is sent as the next item (then the thread
//! stops); a panic while decoding becomes an [`Error::Parquet`] naming the
//! file and row group. Dropping the reader drops the receiver, which wakes a
//! thread blocked on the full channel, and joins the thread (it finishes at
//! most the batch it is decoding). With read-ahead 0, or if no thread can be
//! started, the same decoder runs in the polling thread.
//!
//! Owns [`ParquetSource`]. May use the parent module's spec, `operator`,
//! `time`, `error` and the arrow/parquet/crossbeam crates.

use super::{ParquetSourceSpec, ScanMetrics, Split};
use crate::error::{Error, Result};
use crate::operator::{Ctx, Output, Source, SourcePoll, TaskInfo};
use crate::operators::replay::{HeldBatch, Pacer, Release};
use crate::time::{event_times, SplitClock};
use arrow_array::{BooleanArray, RecordBatch};
use arrow_buffer::ScalarBuffer;
use crossbeam_channel::{bounded, Receiver};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Rows per hand-over from the decode thread (whole batches; a split's end
/// closes a chunk early).
const CHUNK_ROWS: usize = 32_768;

/// What the decoder hands the reader, in split order.
enum Decoded {
    /// Rows of the current split, with their event times and pacing times
    /// (if the source has them).
    Batch {
        batch: RecordBatch,
        times: Option<ScalarBuffer<i64>>,
        pace: Option<ScalarBuffer<i64>>,
    },
    /// The current split has no more rows.
    SplitEnd,
}

/// Decodes a subtask's splits in order (on the background thread, or inline).
struct Decoder {
    // config
    spec: Arc<ParquetSourceSpec>,
    splits: Vec<usize>,
    // state
    pos: usize,
    reader: Option<ParquetRecordBatchReader>,
    failed: bool,
}

impl Decoder {
    fn split(&self) -> Option<Split> {
        self.splits.get(self.pos).map(|&i| self.spec.splits[i])
    }

    fn error(&self, split: &Split, message: impl std::fmt::Display) -> Error {
        Error::Parquet {
            path: self.spec.files[split.file].path.clone(),
            message: format!("row group {}: {message}", split.row_group),
        }
    }

    fn open(&self, split: &Split) -> Result<ParquetRecordBatchReader> {
        let f = &self.spec.files[split.file];
        let plan = &self.spec.layout.files[split.file];
        let descr = f.meta.parquet_schema();
        let mask = ProjectionMask::roots(descr, plan.roots.iter().copied());
        let file = File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, f.meta.clone())
            .with_row_groups(vec![split.row_group])
            .with_batch_size(self.spec.batch_size)
            .with_projection(mask)
            .build()
            .map_err(|e| self.error(split, e))?;
        let rg = f.meta.metadata().row_group(split.row_group);
        let bytes: i64 = (0..rg.num_columns())
            .filter(|&leaf| plan.roots.contains(&descr.get_column_root_idx(leaf)))
            .map(|leaf| rg.column(leaf).compressed_size())
            .sum();
        let m = &self.spec.metrics;
        ScanMetrics::add(&m.row_groups_read, 1);
        ScanMetrics::add(&m.bytes_read, bytes.max(0) as u64);
        Ok(reader)
    }

    fn decode(&self, split: &Split, raw: &RecordBatch) -> Result<Decoded> {
        ScanMetrics::add(&self.spec.metrics.rows_read, raw.num_rows() as u64);
        let layout = &self.spec.layout;
        let scan = layout
            .adapt(split.file, raw)
            .map_err(|e| self.error(split, e))?;
        let context = || {
            format!(
                "{} row group {}",
                self.spec.files[split.file].path.display(),
                split.row_group
            )
        };
        let scan = match &layout.range {
            Some((col, range)) => {
                let times = event_times(&scan, *col, &context())?;
                range.filter(scan, &times)?
            }
            None => scan,
        };
        let pace = match layout.pace {
            Some(col) => Some(event_times(&scan, col, &context())?),
            None => None,
        };
        let batch = layout.visible(scan)?;
        let times = match layout.event {
            Some(col) if Some(col) == layout.pace => pace.clone(),
            Some(col) => Some(event_times(&batch, col, &context())?),
            None => None,
        };
        Ok(Decoded::Batch { batch, times, pace })
    }

    /// The next item of `split`, opening it first if needed.
    fn step(&mut self, split: &Split) -> Result<Decoded> {
        if self.reader.is_none() {
            self.reader = Some(self.open(split)?);
        }
        match self.reader.as_mut().and_then(Iterator::next) {
            Some(Ok(raw)) => self.decode(split, &raw),
            Some(Err(e)) => Err(self.error(split, e)),
            None => {
                self.reader = None;
                self.pos += 1;
                Ok(Decoded::SplitEnd)
            }
        }
    }

    /// The error for a panic while decoding the current split.
    fn panicked(&self, payload: Box<dyn std::any::Any + Send>) -> Error {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        match self.split() {
            Some(split) => self.error(&split, format!("decoder panicked: {message}")),
            None => Error::Panic {
                operator: "parquet decoder".into(),
                message,
            },
        }
    }
}

impl Iterator for Decoder {
    type Item = Result<Decoded>;

    fn next(&mut self) -> Option<Result<Decoded>> {
        if self.failed {
            return None;
        }
        let split = self.split()?;
        let item = self.step(&split);
        self.failed = item.is_err();
        Some(item)
    }
}

/// Where the reader gets decoded batches from.
enum Feed {
    Inline(Box<Decoder>),
    Ahead {
        rx: Option<Receiver<Vec<Result<Decoded>>>>,
        /// The rest of the last chunk received.
        buffer: VecDeque<Result<Decoded>>,
        worker: Option<JoinHandle<()>>,
    },
}

/// One subtask's reader over its splits, in order.
pub struct ParquetSource {
    // config
    spec: Arc<ParquetSourceSpec>,
    splits: Vec<usize>,
    thread_name: String,
    // state
    feed: Option<Feed>,
    /// Splits finished.
    pos: usize,
    in_split: bool,
    clock: Option<SplitClock>,
    pacer: Option<Pacer>,
    /// A batch waiting for its pacing deadline.
    held: HeldBatch,
}

impl ParquetSource {
    pub(super) fn new(
        spec: Arc<ParquetSourceSpec>,
        splits: Vec<usize>,
        clock: Option<SplitClock>,
        pacer: Option<Pacer>,
        info: &TaskInfo,
    ) -> Self {
        ParquetSource {
            spec,
            splits,
            thread_name: format!("weir-parquet-{}-{}", info.operator, info.subtask),
            feed: None,
            pos: 0,
            in_split: false,
            clock,
            pacer,
            held: HeldBatch::default(),
        }
    }

    fn decoder(&self) -> Box<Decoder> {
        Box::new(Decoder {
            spec: self.spec.clone(),
            splits: self.splits.clone(),
            pos: 0,
            reader: None,
            failed: false,
        })
    }

    /// Starts decoding: on a thread `read_ahead` row groups ahead, or inline.
    fn start(&self) -> Feed {
        let ahead = self.spec.read_ahead;
        if ahead == 0 {
            return Feed::Inline(self.decoder());
        }
        // items travel in chunks of about CHUNK_ROWS rows (a split's end
        // closes its chunk): one hand-over per chunk, not per batch
        let batch = self.spec.batch_size.max(1);
        let per_chunk = CHUNK_ROWS.div_ceil(batch).max(1);
        let per_group = self
            .splits
            .iter()
            .map(|&i| {
                let s = &self.spec.splits[i];
                let rows = self.spec.files[s.file]
                    .meta
                    .metadata()
                    .row_group(s.row_group)
                    .num_rows();
                (rows.max(0) as usize).div_ceil(batch).div_ceil(per_chunk) + 1
            })
            .max()
            .unwrap_or(1);
        let capacity = ahead.saturating_mul(per_group).clamp(1, 4096);
        let (tx, rx) = bounded::<Vec<Result<Decoded>>>(capacity);
        let mut decoder = self.decoder();
        let worker = std::thread::Builder::new()
            .name(self.thread_name.clone())
            .spawn(move || {
                let mut chunk = Vec::with_capacity(per_chunk + 1);
                loop {
                    let item =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decoder.next()));
                    let item = match item {
                        Ok(Some(item)) => item,
                        Ok(None) => break,
                        Err(payload) => Err(decoder.panicked(payload)),
                    };
                    let failed = item.is_err();
                    let close = !matches!(item, Ok(Decoded::Batch { .. }));
                    chunk.push(item);
                    if close || chunk.len() >= per_chunk {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(per_chunk + 1));
                        // a send fails once the reader is dropped: stop
                        if tx.send(full).is_err() || failed {
                            return;
                        }
                    }
                }
                if !chunk.is_empty() {
                    let _ = tx.send(chunk);
                }
            });
        match worker {
            Ok(worker) => Feed::Ahead {
                rx: Some(rx),
                buffer: VecDeque::new(),
                worker: Some(worker),
            },
            Err(_) => Feed::Inline(self.decoder()),
        }
    }

    /// The next decoded item, waiting for the decode thread if needed.
    fn next_decoded(&mut self) -> Result<Decoded> {
        if self.feed.is_none() {
            self.feed = Some(self.start());
        }
        let next = match self.feed.as_mut() {
            Some(Feed::Inline(d)) => d.next(),
            Some(Feed::Ahead {
                rx: Some(rx),
                buffer,
                ..
            }) => {
                if buffer.is_empty() {
                    buffer.extend(rx.recv().into_iter().flatten());
                }
                buffer.pop_front()
            }
            _ => None,
        };
        next.unwrap_or_else(|| {
            let split = self.spec.splits[self.splits[self.pos]];
            Err(Error::Parquet {
                path: self.spec.files[split.file].path.clone(),
                message: format!(
                    "row group {}: decoding stopped before the end",
                    split.row_group
                ),
            })
        })
    }

    /// Emits the held batch once it is due (then the watermark after it).
    fn release_held(&mut self, out: &mut Output) -> Option<SourcePoll> {
        let batch = match self.held.poll() {
            Release::Nothing => return None,
            Release::Waiting => return Some(SourcePoll::Ready),
            Release::Due(batch) => batch,
        };
        self.emit(batch, out);
        if let Some(wm) = self.clock.as_mut().and_then(|c| c.advance()) {
            out.emit_watermark(wm);
        }
        Some(SourcePoll::Ready)
    }

    fn emit(&self, batch: RecordBatch, out: &mut Output) {
        ScanMetrics::add(&self.spec.metrics.rows_emitted, batch.num_rows() as u64);
        out.emit(batch);
    }

    /// Per-split lateness and pacing of one decoded batch; `true` if it is
    /// held for pacing (its watermark waits with it).
    fn on_batch(
        &mut self,
        batch: RecordBatch,
        times: Option<ScalarBuffer<i64>>,
        pace: Option<ScalarBuffer<i64>>,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<bool> {
        let (batch, pace) = match (self.clock.as_mut(), times) {
            (Some(clock), Some(times)) => match clock.on_batch(&batch, &times)? {
                None => (batch, pace),
                Some(keep) => {
                    let pace = pace.map(|p| kept(&p, &keep));
                    (crate::operators::split_late(&batch, &keep, ctx, out)?, pace)
                }
            },
            _ => (batch, pace),
        };
        if let (Some(pacer), Some(pace)) = (self.pacer.as_mut(), pace) {
            if let Some(&last) = pace.iter().max() {
                let due = pacer.due(last);
                if Instant::now() < due {
                    self.held.hold(batch, due);
                    return Ok(true);
                }
            }
        }
        self.emit(batch, out);
        Ok(false)
    }
}

/// The values of `v` where `keep` is true.
fn kept(v: &ScalarBuffer<i64>, keep: &BooleanArray) -> ScalarBuffer<i64> {
    v.iter()
        .zip(keep.iter())
        .filter(|(_, k)| k.unwrap_or(false))
        .map(|(&t, _)| t)
        .collect::<Vec<_>>()
        .into()
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
        if self.pos >= self.splits.len() {
            return Ok(SourcePoll::Exhausted);
        }
        let next = self.next_decoded()?;
        if !self.in_split {
            self.in_split = true;
            if let Some(c) = self.clock.as_mut() {
                c.start_split();
            }
        }
        match next {
            Decoded::Batch { batch, times, pace } => {
                if self.on_batch(batch, times, pace, ctx, out)? {
                    return Ok(SourcePoll::Ready);
                }
            }
            Decoded::SplitEnd => {
                self.in_split = false;
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

impl Drop for ParquetSource {
    fn drop(&mut self) {
        if let Some(Feed::Ahead { rx, worker, .. }) = self.feed.as_mut() {
            // disconnects the channel: a send blocked on a full channel fails
            drop(rx.take());
            if let Some(w) = worker.take() {
                let _ = w.join();
            }
        }
    }
}
