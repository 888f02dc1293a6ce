//! The rows a window hash join keeps: per window, each side's batches of
//! that window's rows, ordered by the window's end (the order windows fire
//! in), with the bytes they take.
//!
//! May use what the parent module imports.

use super::*;
use std::collections::BTreeMap;

/// Bytes accounted per window held, besides its rows (its map entry and
/// two vectors).
const WINDOW_BYTES: usize = 128;
/// Bytes accounted per batch held, besides its column values (the batch,
/// its place in the vector).
const BATCH_BYTES: usize = 64;
/// Bytes accounted per column of a batch held, besides its values (the
/// array, its data and buffer headers, an allocation's rounding).
const COLUMN_BYTES: usize = 192;
/// A window side's batches are compacted this many at a time, when all
/// are small (so a stream of tiny batches does not keep one per arrival).
const COMPACT_AT: usize = 64;
/// Rows under which a batch counts as small.
const SMALL_ROWS: usize = 1024;

/// One window's rows: per side, the batches holding them.
pub(super) type WindowRows = [Vec<RecordBatch>; 2];

/// Rows by window, keyed `(end, start)` so the first window is the next
/// to fire.
///
/// ```text
///  (end 2000, start 1000): left [b0 b3]  right [b1]      ← fires at watermark 1999
///  (end 3000, start 2000): left [b4]     right [b2 b5]
///  pop_due(2500) → the first window; (3000, 2000) waits until 2999
/// ```
#[derive(Debug, Default)]
pub(super) struct Buckets {
    // state
    windows: BTreeMap<(i64, i64), WindowRows>,
    bytes: usize,
}

impl Buckets {
    /// Keeps `batch`, rows of side `s` all in `window` (`(start, end)`).
    /// When a window side ends in 64 small batches, they are copied into one.
    pub(super) fn add(&mut self, s: usize, window: (i64, i64), batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let bytes = &mut self.bytes;
        let rows = self.windows.entry((window.1, window.0)).or_insert_with(|| {
            *bytes += WINDOW_BYTES;
            [Vec::new(), Vec::new()]
        });
        *bytes += Self::batch_cost(&batch);
        let side = &mut rows[s];
        side.push(batch);
        // the run of small batches at the end: 64 of them become one
        let small = side
            .iter()
            .rev()
            .take(COMPACT_AT)
            .take_while(|b| b.num_rows() < SMALL_ROWS)
            .count();
        if small == COMPACT_AT {
            let tail = side.len() - COMPACT_AT;
            let merged =
                arrow_select::concat::concat_batches(side[tail].schema_ref(), &side[tail..])?;
            let before: usize = side[tail..].iter().map(Self::batch_cost).sum();
            *bytes = *bytes - before + Self::batch_cost(&merged);
            side.truncate(tail);
            side.push(merged);
        }
        Ok(())
    }

    /// Bytes accounted for a batch held.
    fn batch_cost(batch: &RecordBatch) -> usize {
        batch_bytes(batch) + BATCH_BYTES + COLUMN_BYTES * batch.num_columns()
    }

    /// Takes out the first window if it fires at watermark `w` (its max
    /// timestamp, `end - 1`, is at most `w`): `((start, end), rows)`.
    pub(super) fn pop_due(&mut self, w: i64) -> Option<((i64, i64), WindowRows)> {
        let entry = self.windows.first_entry()?;
        let (end, start) = *entry.key();
        if Window::max_timestamp(end) > w {
            return None;
        }
        let rows = entry.remove();
        self.bytes -= Self::cost(&rows);
        Some(((start, end), rows))
    }

    /// The first window to fire, `(start, end)`, if any is held.
    pub(super) fn first_window(&self) -> Option<(i64, i64)> {
        self.windows.keys().next().map(|&(end, start)| (start, end))
    }

    /// Every window's rows of side `s`, windows in firing order.
    pub(super) fn side(&self, s: usize) -> impl Iterator<Item = &RecordBatch> {
        self.windows.values().flat_map(move |rows| rows[s].iter())
    }

    /// Bytes held (rows and bookkeeping).
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// True if no window is held.
    pub(super) fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Drops every window.
    pub(super) fn clear(&mut self) {
        self.windows.clear();
        self.bytes = 0;
    }

    fn cost(rows: &WindowRows) -> usize {
        WINDOW_BYTES + rows.iter().flatten().map(Self::batch_cost).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array};

    fn batch(n: i64) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "x",
            Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
        )])
        .expect("batch")
    }

    #[test]
    fn windows_fire_in_end_order_and_bytes_return_to_zero() {
        let mut b = Buckets::default();
        b.add(0, (2000, 3000), batch(3)).expect("add");
        b.add(1, (1000, 2000), batch(2)).expect("add");
        b.add(0, (1000, 2000), batch(1)).expect("add");
        b.add(0, (5000, 6000), batch(0)).expect("add"); // no rows: nothing kept
        assert_eq!(b.first_window(), Some((1000, 2000)));
        assert!(b.bytes() >= 6 * 8);
        assert!(b.pop_due(1998).is_none());
        let (w, rows) = b.pop_due(2500).expect("first window due");
        assert_eq!(w, (1000, 2000));
        assert_eq!((rows[0].len(), rows[1].len()), (1, 1));
        assert!(b.pop_due(2500).is_none());
        assert_eq!(b.side(0).map(RecordBatch::num_rows).sum::<usize>(), 3);
        let (w, _) = b.pop_due(i64::MAX).expect("second window");
        assert_eq!(w, (2000, 3000));
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn tiny_batches_are_compacted_in_order() {
        let mut b = Buckets::default();
        for i in 0..130 {
            let one = RecordBatch::try_from_iter([(
                "x",
                Arc::new(Int64Array::from(vec![i])) as ArrayRef,
            )])
            .expect("batch");
            b.add(1, (0, 10), one).expect("add");
        }
        // at the 64th: 64 in one; at the 128th: that one and the next 63
        // (all still small) in one; the last 2 as they came
        let batches: Vec<&RecordBatch> = b.side(1).collect();
        assert_eq!(
            batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            vec![127, 1, 1, 1]
        );
        let values: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("int64")
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(values, (0..130).collect::<Vec<i64>>());
        let held = b.bytes();
        let (_, rows) = b.pop_due(i64::MAX).expect("the window");
        assert_eq!(rows[1].len(), 4);
        assert!(held > 0);
        assert_eq!(b.bytes(), 0, "compaction kept the byte count exact");
    }

    #[test]
    fn batches_of_some_rows_stay_few() {
        let mut b = Buckets::default();
        for _ in 0..1000 {
            b.add(0, (0, 10), batch(20)).expect("add");
        }
        // 20,000 rows: merged 64 at a time (1,280 rows, no longer small),
        // never more than 64 small ones waiting
        let batches: Vec<&RecordBatch> = b.side(0).collect();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 20_000);
        assert!(batches.len() <= 15 + 64, "{} batches kept", batches.len());
        let (_, rows) = b.pop_due(i64::MAX).expect("the window");
        assert!(!rows[0].is_empty());
        assert_eq!(b.bytes(), 0);
    }
}
