//! The counters an operator's instances keep while a job runs:
//! [`OperatorMetrics`] (summed over subtasks, what `JobMetrics` reports)
//! and one [`SubtaskMetrics`] per subtask (what a metrics endpoint shows).
//!
//! Plain atomics, written by the executor's threads with relaxed ordering
//! and read by whoever watches the run. May use `spill::batch_bytes`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters of one operator, summed over its subtasks, plus one slot per
/// subtask for the figures a dashboard shows per instance.
#[derive(Debug)]
pub struct OperatorMetrics {
    /// Rows received.
    pub rows_in: AtomicU64,
    /// Rows emitted.
    pub rows_out: AtomicU64,
    /// Rows that arrived behind the watermark and were not processed.
    pub late_rows: AtomicU64,
    /// The highest watermark delivered to any subtask (`i64::MIN` before the first).
    pub watermark: AtomicI64,
    /// Malformed input records a source skipped (sent to its dead-letter output).
    pub bad_records: AtomicU64,
    /// Per subtask (empty for an instance made outside a run, e.g. a test).
    subtasks: Box<[SubtaskMetrics]>,
}

/// The counters of one subtask of an operator.
#[derive(Debug)]
pub struct SubtaskMetrics {
    /// Rows received.
    pub rows_in: AtomicU64,
    /// Rows emitted.
    pub rows_out: AtomicU64,
    /// Arrow bytes received (see [`crate::spill::batch_bytes`]).
    pub bytes_in: AtomicU64,
    /// Arrow bytes emitted.
    pub bytes_out: AtomicU64,
    /// Its current watermark: delivered to it, or emitted by it for a
    /// source (`i64::MIN` before the first).
    pub watermark: AtomicI64,
    /// Nanoseconds it waited inside its own calls (a paced source's naps):
    /// its task's idle time, not work.
    pub waited_ns: AtomicU64,
}

impl Default for SubtaskMetrics {
    fn default() -> Self {
        SubtaskMetrics {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            waited_ns: AtomicU64::new(0),
        }
    }
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        OperatorMetrics::with_subtasks(0)
    }
}

impl OperatorMetrics {
    /// Counters for an operator running `parallelism` subtasks.
    pub fn with_subtasks(parallelism: usize) -> Self {
        OperatorMetrics {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            late_rows: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            bad_records: AtomicU64::new(0),
            subtasks: (0..parallelism)
                .map(|_| SubtaskMetrics::default())
                .collect(),
        }
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtask `s`'s counters, if this operator keeps them.
    pub fn subtask(&self, s: usize) -> Option<&SubtaskMetrics> {
        self.subtasks.get(s)
    }

    /// Every subtask's counters.
    pub fn subtasks(&self) -> &[SubtaskMetrics] {
        &self.subtasks
    }

    /// Counts a batch of `rows` rows and `bytes` Arrow bytes (see
    /// [`crate::spill::batch_bytes`]) as received by subtask `s`.
    pub fn on_rows_in(&self, s: usize, rows: u64, bytes: u64) {
        Self::add(&self.rows_in, rows);
        if let Some(sub) = self.subtasks.get(s) {
            Self::add(&sub.rows_in, rows);
            Self::add(&sub.bytes_in, bytes);
        }
    }

    /// Counts a batch of `rows` rows and `bytes` Arrow bytes as emitted by
    /// subtask `s`.
    pub fn on_rows_out(&self, s: usize, rows: u64, bytes: u64) {
        Self::add(&self.rows_out, rows);
        if let Some(sub) = self.subtasks.get(s) {
            Self::add(&sub.rows_out, rows);
            Self::add(&sub.bytes_out, bytes);
        }
    }

    /// Records a watermark subtask `s` emitted (sources).
    pub fn on_watermark_out(&self, s: usize, watermark: i64) {
        self.watermark.fetch_max(watermark, Ordering::Relaxed);
        if let Some(sub) = self.subtasks.get(s) {
            sub.watermark.fetch_max(watermark, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spill::batch_bytes;
    use arrow_array::{Int64Array, RecordBatch};
    use std::sync::Arc;

    fn batch(n: i64) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "v",
            Arc::new(Int64Array::from_iter_values(0..n)) as arrow_array::ArrayRef,
        )])
        .unwrap()
    }

    #[test]
    fn rows_and_bytes_count_per_subtask_and_in_all() {
        let m = OperatorMetrics::with_subtasks(2);
        let count = |n: i64| (n as u64, batch_bytes(&batch(n)) as u64);
        let (rows, bytes) = count(100);
        m.on_rows_in(1, rows, bytes);
        let (rows, bytes) = count(10);
        m.on_rows_out(1, rows, bytes);
        let (rows, bytes) = count(1);
        m.on_rows_in(0, rows, bytes);
        let (rows, bytes) = count(5);
        m.on_rows_in(7, rows, bytes); // no such subtask: only the sum counts it
        assert_eq!(m.rows_in.load(Ordering::Relaxed), 106);
        assert_eq!(m.subtask(1).unwrap().rows_in.load(Ordering::Relaxed), 100);
        assert_eq!(m.subtask(1).unwrap().rows_out.load(Ordering::Relaxed), 10);
        assert_eq!(m.subtask(0).unwrap().rows_in.load(Ordering::Relaxed), 1);
        // 100 i64 values occupy at least 800 bytes
        assert!(m.subtask(1).unwrap().bytes_in.load(Ordering::Relaxed) >= 800);
        m.on_watermark_out(0, 42);
        m.on_watermark_out(0, 7);
        assert_eq!(m.subtask(0).unwrap().watermark.load(Ordering::Relaxed), 42);
        assert_eq!(
            m.subtask(1).unwrap().watermark.load(Ordering::Relaxed),
            i64::MIN
        );
    }
}
