//! One subtask's reader: its row groups decoded ahead on a background
//! thread, emitted in order with per-split watermarks and pacing.
//!
//! ```text
//!  decode thread (Decoder): for each split, in order:
//!     open row group (projection mask) ─► batch ─► adapt (widen, nulls, partitions)
//!     ─► time-range filter ─► event/pacing times ─► hidden columns dropped
//!     ─► chunks of ~32K rows ─► bounded channel (about `read_ahead` row groups) ─► ... SplitEnd
//!  poll_next: recv ─► pacing (hold) ─► SplitClock (late rows → side output 1)
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
//! **Checkpoints** (state `parquet.splits`, see `split_progress`): per split
//! started, the raw rows (before the time-range filter) emitted and, for
//! the split being read, its watermark generator; plus the last watermark.
//! Rows decoded ahead or held for pacing are not emitted yet, so they are
//! not counted (a held batch also has not touched the clock yet: lateness
//! is decided when it is released). A restored reader opens a partial row
//! group at its row offset (`with_offset`: pages before it are skipped by
//! the parquet reader rather than decoded into batches), and emits the
//! same batches as the uninterrupted run since offsets are batch-aligned.
//! After a rescale its clock is rebuilt from the splits it now owns (see
//! `split_progress`). Pacing restarts at the first row emitted after the
//! restore, at the wall-clock time it is emitted.
//!
//! Owns [`ParquetSource`]. May use the parent module's spec, `operator`,
//! `time`, `error` and the arrow/parquet/crossbeam crates.

use super::{ParquetSourceSpec, ScanMetrics, Split};
use crate::replay::{HeldBatch, Pacer, Release};
use crate::split_progress::{self, SplitCursor};
use arrow_array::{Array, RecordBatch};
use arrow_buffer::ScalarBuffer;
use crossbeam_channel::{bounded, Receiver};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use weir_core::error::{Error, Result};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::operator::{Ctx, Output, Source, SourcePoll, TaskInfo};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::{event_times, SplitClock};

/// The state entry of a Parquet source.
const STATE: &str = "parquet.splits";

/// Rows per hand-over from the decode thread (whole batches; a split's end
/// closes a chunk early).
const CHUNK_ROWS: usize = 32_768;

/// True for the codecs this build decodes: all but LZO (no Rust decoder),
/// through the parquet crate's `snap`, `flate2`, `lz4`, `brotli` and `zstd`
/// features.
fn codec_supported(codec: parquet::basic::Compression) -> bool {
    !matches!(codec, parquet::basic::Compression::LZO)
}

/// What the decoder hands the reader, in split order.
enum Decoded {
    /// Rows of the current split, with their event times and pacing times
    /// (if the source has them).
    Batch {
        batch: RecordBatch,
        times: Option<ScalarBuffer<i64>>,
        pace: Option<ScalarBuffer<i64>>,
        /// Rows of the row group this batch consumed (before the time-range filter).
        raw_rows: u64,
    },
    /// The current split has no more rows.
    SplitEnd,
}

/// Decodes a subtask's splits in order (on the background thread, or inline).
struct Decoder {
    // config
    spec: Arc<ParquetSourceSpec>,
    /// Splits to read and the rows to skip at the start of each.
    splits: Vec<(usize, u64)>,
    // state
    pos: usize,
    reader: Option<ParquetRecordBatchReader>,
    /// Rows of the current split read so far (from its skip on): errors
    /// name rows by their place in the file, not in a batch.
    done: u64,
    failed: bool,
}

impl Decoder {
    fn split(&self) -> Option<Split> {
        self.splits.get(self.pos).map(|&(i, _)| self.spec.splits[i])
    }

    /// Rows to skip at the start of the current split (a restore).
    fn skip(&self) -> u64 {
        self.splits.get(self.pos).map_or(0, |&(_, skip)| skip)
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
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, f.meta.clone())
            .with_row_groups(vec![split.row_group])
            .with_batch_size(self.spec.batch_size)
            .with_projection(mask);
        let skip = self.skip();
        if skip > 0 {
            let skip = usize::try_from(skip).map_err(|e| self.error(split, e))?;
            builder = builder.with_offset(skip);
        }
        let rg = f.meta.metadata().row_group(split.row_group);
        for leaf in 0..rg.num_columns() {
            let chunk = rg.column(leaf);
            if plan.roots.contains(&descr.get_column_root_idx(leaf))
                && !codec_supported(chunk.compression())
            {
                return Err(self.error(
                    split,
                    format!(
                        "column `{}` is compressed with {}, which weir cannot read \
                         (it reads uncompressed, snappy, gzip, lz4, lz4_raw, brotli and zstd)",
                        chunk.column_path().string(),
                        chunk.compression()
                    ),
                ));
            }
        }
        let reader = builder.build().map_err(|e| self.error(split, e))?;
        let bytes: i64 = (0..rg.num_columns())
            .filter(|&leaf| plan.roots.contains(&descr.get_column_root_idx(leaf)))
            .map(|leaf| rg.column(leaf).compressed_size())
            .sum();
        let m = &self.spec.metrics;
        ScanMetrics::add(&m.row_groups_read, 1);
        ScanMetrics::add(&m.bytes_read, bytes.max(0) as u64);
        Ok(reader)
    }

    /// Fails, naming the file, row group and row, if a time column of
    /// `scan` (the batch starting at row `self.done` of `split`) has a null.
    fn check_times(&self, split: &Split, scan: &RecordBatch) -> Result<()> {
        let layout = &self.spec.layout;
        let columns = [
            layout.event,
            layout.range.as_ref().map(|r| r.0),
            layout.pace,
        ];
        for c in columns.into_iter().flatten() {
            let array = scan.column(c);
            if array.null_count() == 0 {
                continue;
            }
            let row = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
            let in_group = self.done + row as u64;
            let meta = self.spec.files[split.file].meta.metadata();
            let before: i64 = (0..split.row_group)
                .map(|g| meta.row_group(g).num_rows())
                .sum();
            let name = layout.scan_schema.field(c).name();
            return Err(self.error(
                split,
                format!(
                    "row {in_group} (row {} of the file): column `{name}`: null event time",
                    before.max(0) as u64 + in_group
                ),
            ));
        }
        Ok(())
    }

    fn decode(&self, split: &Split, raw: &RecordBatch) -> Result<Decoded> {
        ScanMetrics::add(&self.spec.metrics.rows_read, raw.num_rows() as u64);
        let layout = &self.spec.layout;
        let scan = layout
            .adapt(split.file, raw)
            .map_err(|e| self.error(split, e))?;
        self.check_times(split, &scan)?;
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
        Ok(Decoded::Batch {
            batch,
            times,
            pace,
            raw_rows: raw.num_rows() as u64,
        })
    }

    /// The next item of `split`, opening it first if needed.
    fn step(&mut self, split: &Split) -> Result<Decoded> {
        if self.reader.is_none() {
            self.reader = Some(self.open(split)?);
            self.done = Decoder::skip(self);
        }
        match self.reader.as_mut().and_then(Iterator::next) {
            Some(Ok(raw)) => {
                let decoded = self.decode(split, &raw);
                self.done += raw.num_rows() as u64;
                decoded
            }
            Some(Err(e)) => Err(self.error(split, format!("rows from {}: {e}", self.done))),
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

/// A held batch's event times and the raw rows it consumed.
struct HeldMeta {
    times: Option<ScalarBuffer<i64>>,
    raw_rows: u64,
}

/// One subtask's reader over its splits, in order.
pub struct ParquetSource {
    // config
    spec: Arc<ParquetSourceSpec>,
    /// The splits the assignment gives this subtask.
    splits: Vec<usize>,
    thread_name: String,
    // state
    feed: Option<Feed>,
    /// Splits left, and raw rows emitted of the current one.
    cursor: SplitCursor,
    in_split: bool,
    clock: Option<SplitClock>,
    pacer: Option<Pacer>,
    /// A batch waiting for its pacing deadline (lateness not applied yet).
    held: HeldBatch,
    held_meta: Option<HeldMeta>,
    // resources
    /// The decoded chunks the read-ahead channel may hold (fixed).
    ahead_memory: MemoryReservation,
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
            cursor: SplitCursor::new(&splits),
            splits,
            thread_name: format!("weir-parquet-{}-{}", info.operator, info.subtask),
            feed: None,
            in_split: false,
            clock,
            pacer,
            held: HeldBatch::default(),
            held_meta: None,
            ahead_memory: MemoryReservation::unopened(ConsumerKind::Fixed),
        }
    }

    fn decoder(&self) -> Box<Decoder> {
        let left = &self.cursor.plan[self.cursor.pos.min(self.cursor.plan.len())..];
        Box::new(Decoder {
            spec: self.spec.clone(),
            splits: left.iter().map(|r| (r.split, r.skip)).collect(),
            pos: 0,
            reader: None,
            done: 0,
            failed: false,
        })
    }

    /// Starts decoding: on a thread `read_ahead` row groups ahead, or
    /// inline. What the channel may hold is also bounded in bytes (a 64th
    /// of the budget, at least one chunk) and reserved from the pool as a
    /// fixed consumer: a file of 1M-row row groups would otherwise hold a
    /// whole decoded row group per subtask outside the budget.
    fn start(&mut self, ctx: &Ctx) -> Feed {
        let ahead = self.spec.read_ahead;
        if ahead == 0 {
            return Feed::Inline(self.decoder());
        }
        // items travel in chunks of about CHUNK_ROWS rows (a split's end
        // closes its chunk): one hand-over per chunk, not per batch
        let batch = self.spec.batch_size.max(1);
        let per_chunk = CHUNK_ROWS.div_ceil(batch).max(1);
        let (per_group, row_bytes) = self
            .cursor
            .plan
            .iter()
            .map(|r| {
                let s = &self.spec.splits[r.split];
                let group = self.spec.files[s.file]
                    .meta
                    .metadata()
                    .row_group(s.row_group);
                let rows = group.num_rows().max(0) as usize;
                let bytes = group.total_byte_size().max(0) as usize;
                (
                    rows.div_ceil(batch).div_ceil(per_chunk) + 1,
                    bytes.checked_div(rows).unwrap_or(0),
                )
            })
            .fold((1, 0), |(g, b), (g2, b2)| (g.max(g2), b.max(b2)));
        // uncompressed bytes of every column: an upper bound for a projection
        let chunk_bytes = (per_chunk * batch).saturating_mul(row_bytes.max(1));
        let by_bytes = (ctx.pool().budget() / 64 / chunk_bytes.max(1)).max(1);
        let mut capacity = ahead.saturating_mul(per_group).min(by_bytes).clamp(1, 4096);
        self.ahead_memory = ctx.fixed_reservation("read-ahead");
        if self
            .ahead_memory
            .try_grow(capacity.saturating_mul(chunk_bytes))
            .is_err()
        {
            // one chunk ahead is what decoding on a thread needs
            capacity = 1;
            self.ahead_memory.grow(chunk_bytes);
        }
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
    fn next_decoded(&mut self, ctx: &Ctx) -> Result<Decoded> {
        if self.feed.is_none() {
            let feed = self.start(ctx);
            self.feed = Some(feed);
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
            let index = self.cursor.current().map_or(0, |r| r.split);
            let split = self.spec.splits[index];
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
    fn release_held(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<Option<SourcePoll>> {
        let batch = match self.held.poll() {
            Release::Nothing => return Ok(None),
            Release::Waiting(nap) => {
                ctx.record_wait(nap);
                return Ok(Some(SourcePoll::Ready));
            }
            Release::Due(batch) => batch,
        };
        let meta = self
            .held_meta
            .take()
            .expect("a held batch has its times and row count");
        self.emit_rows(batch, meta.times, meta.raw_rows, ctx, out)?;
        if let Some(wm) = self.clock.as_mut().and_then(|c| c.advance()) {
            out.emit_watermark(wm);
        }
        Ok(Some(SourcePoll::Ready))
    }

    fn emit(&self, batch: RecordBatch, out: &mut Output) {
        ScanMetrics::add(&self.spec.metrics.rows_emitted, batch.num_rows() as u64);
        out.emit(batch);
    }

    /// Pacing of one decoded batch; `true` if it is held (its lateness,
    /// rows and watermark wait with it).
    fn on_batch(
        &mut self,
        batch: RecordBatch,
        times: Option<ScalarBuffer<i64>>,
        pace: Option<ScalarBuffer<i64>>,
        raw_rows: u64,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<bool> {
        if let (Some(pacer), Some(pace)) = (self.pacer.as_mut(), pace) {
            if let Some(&last) = pace.iter().max() {
                let due = pacer.due(last);
                if Instant::now() < due {
                    self.held.hold(batch, due);
                    self.held_meta = Some(HeldMeta { times, raw_rows });
                    return Ok(true);
                }
            }
        }
        self.emit_rows(batch, times, raw_rows, ctx, out)?;
        Ok(false)
    }

    /// Per-split lateness of one batch, then its rows; counts its raw rows
    /// as emitted (the checkpoint position).
    fn emit_rows(
        &mut self,
        batch: RecordBatch,
        times: Option<ScalarBuffer<i64>>,
        raw_rows: u64,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let batch = match (self.clock.as_mut(), times) {
            (Some(clock), Some(times)) => match clock.on_batch(&batch, &times)? {
                None => batch,
                Some(keep) => crate::split_late(&batch, &keep, ctx, out)?,
            },
            _ => batch,
        };
        self.cursor.done += raw_rows;
        self.emit(batch, out);
        Ok(())
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
        if let Some(poll) = self.release_held(ctx, out)? {
            return Ok(poll);
        }
        let Some(resume) = self.cursor.current().map(|r| r.generator) else {
            self.ahead_memory.free();
            return Ok(SourcePoll::Exhausted);
        };
        let next = self.next_decoded(ctx)?;
        if !self.in_split {
            self.in_split = true;
            if let Some(c) = self.clock.as_mut() {
                match resume {
                    Some(g) => c.resume_split(g),
                    None => c.start_split(),
                }
            }
        }
        match next {
            Decoded::Batch {
                batch,
                times,
                pace,
                raw_rows,
            } => {
                if self.on_batch(batch, times, pace, raw_rows, ctx, out)? {
                    return Ok(SourcePoll::Ready);
                }
            }
            Decoded::SplitEnd => {
                self.in_split = false;
                split_progress::end_split(&mut self.cursor, self.clock.as_mut());
            }
        }
        split_progress::emit_watermark(self.clock.as_mut(), out);
        Ok(SourcePoll::Ready)
    }

    fn snapshot(&mut self, _ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        let clock = self.clock.as_ref();
        let generator = if self.in_split {
            clock.and_then(SplitClock::active_state)
        } else {
            None
        };
        let s = self.cursor.state(
            self.spec.splits.len(),
            generator,
            clock.and_then(SplitClock::emitted),
        );
        split_progress::write(state, STATE, &s)
    }

    fn restore(&mut self, _ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        let context = self.spec.context();
        if self.feed.is_some() {
            return Err(Error::Checkpoint {
                location: context,
                message: "restore after the reader started".into(),
            });
        }
        let total = self.spec.splits.len();
        let spec = &self.spec;
        let rows = |i: usize| {
            let split = &spec.splits[i];
            let rg = spec.files[split.file]
                .meta
                .metadata()
                .row_group(split.row_group);
            u64::try_from(rg.num_rows()).unwrap_or(0)
        };
        let Some(plan) =
            split_progress::plan_restore(state, STATE, &self.splits, total, &rows, &context)?
        else {
            return Ok(());
        };
        (self.cursor, self.clock) = SplitCursor::restored_with_clock(plan, |s| self.spec.clock(s));
        self.in_split = false;
        Ok(())
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

#[cfg(test)]
mod tests;
