//! Reading a consumer's input partitions back in event-time order.
//!
//! May use `super::exchange` and `weir-core`'s time; the consumer is behind
//! the [`Replayed`] trait, so this is unit-tested without a chain.

use super::exchange::PartitionReader;
use super::SubtaskInputs;
use crate::exec::FirstError;
use arrow_array::RecordBatch;
use std::collections::VecDeque;
use weir_core::error::{Error, Result};
use weir_core::message::Watermark;
use weir_core::time::WatermarkTracker;

/// What [`replay`] feeds: rows of a logical input, and the combined
/// watermark whenever it rises.
pub(super) trait Replayed {
    /// Rows that arrived on logical input `input`.
    fn on_batch(&mut self, input: usize, batch: RecordBatch) -> Result<()>;
    /// The minimum watermark over the producers rose to `watermark`.
    fn on_watermark(&mut self, watermark: Watermark) -> Result<()>;
}

/// One producer's partition being read back, with its watermark marks.
struct Cursor {
    input: usize,
    reader: PartitionReader,
    marks: VecDeque<(u64, i64)>,
    read: u64,
    watermark: i64,
}

/// Feeds a consumer its input partitions, interleaved so that event time
/// advances as in a pipelined run: always read on from the producer whose
/// watermark is lowest, replaying its recorded watermarks at the positions
/// they were emitted. Windows therefore fire during the stage, and state
/// stays bounded by the disorder, not by the input size.
///
/// ```text
///  producer 0: b b |wm 10| b b b |wm 20| b      cursor with lowest watermark
///  producer 1: b |wm 5| b b |wm 25| b b    ──►  reads until its next mark
///  tracker (min over producers) ──► on_watermark when it rises
/// ```
pub(super) fn replay(
    inputs: SubtaskInputs,
    to: &mut dyn Replayed,
    first_error: &FirstError,
) -> Result<()> {
    let mut cursors: Vec<Cursor> = inputs
        .into_iter()
        .flat_map(|(input, parts)| parts.into_iter().map(move |p| (input, p)))
        .map(|(input, p)| Cursor {
            input,
            marks: p.watermarks().iter().copied().collect(),
            reader: p.into_batches(),
            read: 0,
            watermark: i64::MIN,
        })
        .collect();
    let mut tracker = WatermarkTracker::new(cursors.len());
    let mut open: Vec<usize> = (0..cursors.len()).collect();
    while let Some(pos) = (0..open.len()).min_by_key(|&k| cursors[open[k]].watermark) {
        let ci = open[pos];
        let c = &mut cursors[ci];
        // read this producer up to its next watermark mark
        loop {
            if first_error.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if let Some(&(at, t)) = c.marks.front() {
                if at <= c.read {
                    c.marks.pop_front();
                    c.watermark = t;
                    if let Some(w) = tracker.update(ci, Watermark::EventTime(t)) {
                        to.on_watermark(w)?;
                    }
                    break;
                }
            }
            match c.reader.next() {
                Some(batch) => {
                    to.on_batch(c.input, batch?)?;
                    c.read += 1;
                }
                None => {
                    open.swap_remove(pos);
                    if let Some(w) = tracker.on_end(ci) {
                        if !open.is_empty() {
                            to.on_watermark(w)?;
                        }
                    }
                    break;
                }
            }
        }
    }
    // Bounded inputs end with Watermark::MAX; make sure the consumer sees it.
    if tracker.current() != Some(Watermark::MAX) {
        to.on_watermark(Watermark::MAX)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::exchange::PartitionedBuffer;
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    use weir_core::memory::MemoryPool;
    use weir_core::spill::SpillManager;

    /// What the consumer saw, in order: `b<input>:<first value>` or `w<t>`.
    #[derive(Default)]
    struct Seen(Vec<String>);

    impl Replayed for Seen {
        fn on_batch(&mut self, input: usize, batch: RecordBatch) -> Result<()> {
            let v = batch.column(0).as_primitive::<Int64Type>().value(0);
            self.0.push(format!("b{input}:{v}"));
            Ok(())
        }
        fn on_watermark(&mut self, watermark: Watermark) -> Result<()> {
            self.0.push(match watermark {
                w if w == Watermark::MAX => "wMAX".into(),
                Watermark::EventTime(t) => format!("w{t}"),
                Watermark::Idle => "idle".into(),
            });
            Ok(())
        }
    }

    fn batch(v: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
    }

    /// One producer's partition: `b` pushes a batch, a number a watermark.
    fn partition(
        pool: &Arc<MemoryPool>,
        spill: &Arc<SpillManager>,
        items: &[&str],
    ) -> super::super::exchange::Partition {
        let schema = batch(0).schema();
        let mut buf = PartitionedBuffer::new("test", schema, 1, pool, spill);
        for item in items {
            match item.strip_prefix('b') {
                Some(v) => buf.push(0, batch(v.parse().unwrap())).unwrap(),
                None => buf.push_watermark(0, item.parse().unwrap()),
            }
        }
        buf.finish().unwrap().pop().unwrap()
    }

    /// The diagram's example: the producer with the lowest watermark is
    /// read on, marks are replayed where they were emitted, and the
    /// consumer's watermark is the minimum over producers; the end adds MAX.
    #[test]
    fn reads_the_lowest_watermark_first_and_replays_marks_in_place() {
        let pool = Arc::new(MemoryPool::new(1 << 20));
        let spill = Arc::new(SpillManager::try_new(None).unwrap());
        let p0 = partition(
            &pool,
            &spill,
            &["b1", "b2", "10", "b3", "b4", "b5", "20", "b6"],
        );
        let p1 = partition(&pool, &spill, &["b101", "5", "b102", "b103", "25", "b104"]);
        let mut seen = Seen::default();
        replay(
            vec![(0, vec![p0]), (1, vec![p1])],
            &mut seen,
            &FirstError::new(),
        )
        .unwrap();
        let want = [
            // both at MIN: producer 0 first (lowest index) up to its mark 10
            "b0:1", "b0:2",
            // producer 1 (still MIN) up to its mark 5: min(10, 5) = 5
            "b1:101", "w5",
            // producer 1 is lowest (5): reads to 25; min(10, 25) = 10
            "b1:102", "b1:103", "w10", // producer 0 (10) reads to 20: min(20, 25) = 20
            "b0:3", "b0:4", "b0:5", "w20",
            // producer 0 (20) ends: the minimum is producer 1's 25
            "b0:6", "w25", // producer 1 ends: MAX
            "b1:104", "wMAX",
        ];
        assert_eq!(seen.0, want);
        assert_eq!(pool.reserved(), 0, "every buffered batch was handed out");
    }

    /// A cancelled run stops reading at once.
    #[test]
    fn stops_when_the_run_is_cancelled() {
        let pool = Arc::new(MemoryPool::new(1 << 20));
        let spill = Arc::new(SpillManager::try_new(None).unwrap());
        let p0 = partition(&pool, &spill, &["b1", "b2"]);
        let cancelled = FirstError::new();
        cancelled.cancel();
        let mut seen = Seen::default();
        let err = replay(vec![(0, vec![p0])], &mut seen, &cancelled).unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        assert!(seen.0.is_empty());
    }
}
