//! Sorted runs: spill files whose rows are sorted by an i64 key, read back
//! a prefix at a time (the rows with keys below a rising boundary).

use crate::error::Result;
use crate::spill::{SpillFile, SpillReader};
use arrow_array::RecordBatch;
use arrow_buffer::ScalarBuffer;

/// Computes the sort key of every row of a batch read back from a run.
pub type RunKey<'a> = &'a dyn Fn(&RecordBatch) -> Result<ScalarBuffer<i64>>;

/// A set of sorted runs, each read forward once.
///
/// ```text
///  run 0: [k=1 k=3 | k=7 k=9]      take_up_to(8): k=1 k=3 k=7 (from run 0)
///  run 1: [k=2 k=8 k=8]                           k=2         (from run 1)
///                                  take_up_to(10): k=9, k=8 k=8 ...
/// ```
/// A run whose rows were all taken is deleted. The caller merges what it
/// takes (the runs are not merged with each other).
#[derive(Default)]
pub struct SortedRuns {
    // state
    runs: Vec<Run>,
}

struct Run {
    // resources (the file is deleted when the run is dropped)
    reader: SpillReader,
    file: SpillFile,
    // state: the batch being read, its keys, and the next row
    current: Option<(RecordBatch, ScalarBuffer<i64>, usize)>,
}

impl std::fmt::Debug for SortedRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SortedRuns")
            .field("runs", &self.runs.len())
            .finish()
    }
}

impl SortedRuns {
    /// No runs.
    pub fn new() -> Self {
        SortedRuns::default()
    }

    /// True if nothing is on disk.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Adds a finished run (its rows sorted by the key).
    pub fn add(&mut self, file: SpillFile) -> Result<()> {
        let reader = file.read()?;
        self.runs.push(Run {
            reader,
            file,
            current: None,
        });
        Ok(())
    }

    /// A boundary that reads back about `bytes` bytes over all runs (see
    /// [`next_step_rows`](Self::next_step_rows); rows are converted with the
    /// runs' average row size on disk, which is their size in memory).
    pub fn next_step(&mut self, key: RunKey<'_>, bytes: usize) -> Result<Option<i64>> {
        let (rows, file_bytes) = self.runs.iter().fold((0u64, 0u64), |(r, b), run| {
            (r + run.file.rows(), b + run.file.bytes())
        });
        let row_bytes = file_bytes.checked_div(rows).unwrap_or(1).max(1);
        let rows = (bytes as u64 / row_bytes).max(1);
        self.next_step_rows(key, usize::try_from(rows).unwrap_or(usize::MAX))
    }

    /// A boundary that reads back about `rows` rows over all runs: the
    /// smallest key found `rows / runs` rows ahead in any run (or at the end
    /// of its current batch), or `None` if every run is read. Taking rows up
    /// to and including it always consumes at least one row.
    pub fn next_step_rows(&mut self, key: RunKey<'_>, rows: usize) -> Result<Option<i64>> {
        let ahead = (rows / self.runs.len().max(1)).max(1);
        let mut step: Option<i64> = None;
        for run in &mut self.runs {
            if run.current.is_none() {
                if let Some(b) = run.reader.next() {
                    let b = b?;
                    let k = key(&b)?;
                    run.current = Some((b, k, 0));
                }
            }
            if let Some((b, k, offset)) = &run.current {
                if b.num_rows() > *offset {
                    let at = k[(offset + ahead).min(b.num_rows()) - 1];
                    step = Some(step.map_or(at, |s| s.min(at)));
                }
            }
        }
        Ok(step)
    }

    /// Every row not taken yet, run by run, without taking it (for
    /// checkpoints: the runs stay as they are).
    pub fn remaining(&self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for run in &self.runs {
            if let Some((batch, _, offset)) = &run.current {
                if *offset < batch.num_rows() {
                    out.push(batch.slice(*offset, batch.num_rows() - offset));
                }
            }
            out.extend(run.reader.peek_rest()?);
        }
        Ok(out)
    }

    /// Runs on disk.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Rows written to each run's file (including rows already taken).
    pub fn run_rows(&self) -> Vec<u64> {
        self.runs.iter().map(|r| r.file.rows()).collect()
    }

    /// Takes every run out, each as the rest of its rows in order (for a
    /// merge); a run's file is deleted when its iterator is dropped.
    pub fn drain(&mut self) -> Vec<RunRest> {
        self.drain_first(self.runs.len())
    }

    /// Takes the first `n` runs out (all if fewer), like [`drain`](Self::drain).
    pub fn drain_first(&mut self, n: usize) -> Vec<RunRest> {
        let n = n.min(self.runs.len());
        self.runs
            .drain(..n)
            .map(|run| RunRest {
                first: run
                    .current
                    .filter(|(b, _, offset)| *offset < b.num_rows())
                    .map(|(b, _, offset)| b.slice(offset, b.num_rows() - offset)),
                reader: run.reader,
                _file: run.file,
            })
            .collect()
    }

    /// Removes and returns, from every run, the rows whose key is below `boundary`.
    pub fn take_up_to(&mut self, boundary: i64, key: RunKey<'_>) -> Result<Vec<RecordBatch>> {
        match boundary.checked_sub(1) {
            Some(last) => self.take_through(last, key),
            None => Ok(Vec::new()),
        }
    }

    /// Removes and returns, from every run, the rows whose key is at most
    /// `last` (every row when `last` is `i64::MAX`).
    pub fn take_through(&mut self, last: i64, key: RunKey<'_>) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for run in &mut self.runs {
            loop {
                let (batch, keys, offset) = match run.current.take() {
                    Some(c) => c,
                    None => match run.reader.next() {
                        Some(b) => {
                            let b = b?;
                            let k = key(&b)?;
                            (b, k, 0)
                        }
                        None => break,
                    },
                };
                let end = offset + keys[offset..].partition_point(|&k| k <= last);
                if end > offset {
                    out.push(batch.slice(offset, end - offset));
                }
                if end < batch.num_rows() {
                    run.current = Some((batch, keys, end));
                    break;
                }
            }
        }
        self.runs
            .retain(|r| r.current.is_some() || !r.reader.is_finished());
        Ok(out)
    }

    /// True if run `i` has a row not taken yet whose key is at most `last`.
    pub fn has_through(&mut self, i: usize, last: i64, key: RunKey<'_>) -> Result<bool> {
        let run = &mut self.runs[i];
        while run.current.is_none() {
            match run.reader.next() {
                Some(b) => {
                    let b = b?;
                    if b.num_rows() > 0 {
                        let k = key(&b)?;
                        run.current = Some((b, k, 0));
                    }
                }
                None => return Ok(false),
            }
        }
        Ok(run
            .current
            .as_ref()
            .is_some_and(|(b, k, offset)| *offset < b.num_rows() && k[*offset] <= last))
    }

    /// Takes from run `i` its next rows whose key is at most `last`, at
    /// most the rest of one batch (so a merge over several runs holds one
    /// batch of each); `None` when the run has no such row left. Rows with
    /// larger keys stay in the run. Call [`drop_finished`](Self::drop_finished)
    /// after the merge.
    pub fn take_batch_through(
        &mut self,
        i: usize,
        last: i64,
        key: RunKey<'_>,
    ) -> Result<Option<RecordBatch>> {
        loop {
            if !self.has_through(i, last, key)? {
                return Ok(None);
            }
            let run = &mut self.runs[i];
            let (batch, keys, offset) = run.current.take().expect("has_through loaded it");
            let end = offset + keys[offset..].partition_point(|&k| k <= last);
            let taken = batch.slice(offset, end - offset);
            if end < batch.num_rows() {
                run.current = Some((batch, keys, end));
            }
            if taken.num_rows() > 0 {
                return Ok(Some(taken));
            }
        }
    }

    /// Deletes the runs whose rows were all taken.
    pub fn drop_finished(&mut self) {
        self.runs
            .retain(|r| r.current.is_some() || !r.reader.is_finished());
    }
}

/// The rows of a run not taken yet, batch by batch (see [`SortedRuns::drain`]).
pub struct RunRest {
    // state: the rest of the batch being read when drained
    first: Option<RecordBatch>,
    // resources (the file is deleted when this is dropped)
    reader: SpillReader,
    _file: SpillFile,
}

impl Iterator for RunRest {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.first.take() {
            Some(b) => Some(Ok(b)),
            None => self.reader.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spill::SpillManager;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::Int64Array;
    use std::sync::Arc;

    /// Runs [1 3 | 7 9] and [2 8 8].
    fn two_runs(spill: &SpillManager) -> SortedRuns {
        let batch = |v: Vec<i64>| {
            RecordBatch::try_from_iter([("k", Arc::new(Int64Array::from(v)) as _)]).unwrap()
        };
        let mut runs = SortedRuns::new();
        for run in [vec![vec![1, 3], vec![7, 9]], vec![vec![2, 8, 8]]] {
            let mut w = spill.create_writer(&batch(vec![]).schema(), "r").unwrap();
            for b in run {
                w.write(&batch(b)).unwrap();
            }
            runs.add(w.finish().unwrap()).unwrap();
        }
        runs
    }

    #[test]
    fn prefixes_come_out_in_key_order_per_run_and_files_go_away() {
        let spill = SpillManager::try_new(None).unwrap();
        let mut runs = two_runs(&spill);
        let key: RunKey =
            &|b: &RecordBatch| Ok(b.column(0).as_primitive::<Int64Type>().values().clone());
        let flat = |bs: Vec<RecordBatch>| -> Vec<i64> {
            bs.iter()
                .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
                .collect()
        };
        assert_eq!(flat(runs.remaining().unwrap()), vec![1, 3, 7, 9, 2, 8, 8]);
        assert_eq!(flat(runs.take_up_to(8, key).unwrap()), vec![1, 3, 7, 2]);
        // remaining reads what is left without taking it
        assert_eq!(flat(runs.remaining().unwrap()), vec![9, 8, 8]);
        assert_eq!(flat(runs.remaining().unwrap()), vec![9, 8, 8]);
        assert_eq!(flat(runs.take_up_to(8, key).unwrap()), Vec::<i64>::new());
        assert_eq!(flat(runs.take_up_to(10, key).unwrap()), vec![9, 8, 8]);
        assert!(runs.is_empty());
        assert_eq!(std::fs::read_dir(spill.dir()).unwrap().count(), 0);
    }

    #[test]
    fn drain_hands_over_the_untaken_rows_and_files_go_with_them() {
        let spill = SpillManager::try_new(None).unwrap();
        let mut runs = two_runs(&spill);
        let key: RunKey =
            &|b: &RecordBatch| Ok(b.column(0).as_primitive::<Int64Type>().values().clone());
        runs.take_up_to(3, key).unwrap();
        assert_eq!(runs.len(), 2);
        let rests: Vec<Vec<i64>> = runs
            .drain()
            .into_iter()
            .map(|r| {
                r.flat_map(|b| {
                    b.unwrap()
                        .column(0)
                        .as_primitive::<Int64Type>()
                        .values()
                        .to_vec()
                })
                .collect()
            })
            .collect();
        assert_eq!(rests, vec![vec![3, 7, 9], vec![8, 8]]);
        assert!(runs.is_empty());
        assert_eq!(std::fs::read_dir(spill.dir()).unwrap().count(), 0);
    }

    #[test]
    fn prefixes_come_out_a_batch_at_a_time_and_the_rest_stays() {
        let spill = SpillManager::try_new(None).unwrap();
        let mut runs = two_runs(&spill);
        let key: RunKey =
            &|b: &RecordBatch| Ok(b.column(0).as_primitive::<Int64Type>().values().clone());
        let flat = |b: Option<RecordBatch>| -> Vec<i64> {
            b.map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
                .unwrap_or_default()
        };
        assert!(runs.has_through(0, 7, key).unwrap());
        assert!(runs.has_through(1, 7, key).unwrap());
        // run 0 is [1 3 | 7 9]: one batch at a time, up to 7
        assert_eq!(
            flat(runs.take_batch_through(0, 7, key).unwrap()),
            vec![1, 3]
        );
        assert_eq!(flat(runs.take_batch_through(0, 7, key).unwrap()), vec![7]);
        assert_eq!(runs.take_batch_through(0, 7, key).unwrap(), None);
        assert_eq!(flat(runs.take_batch_through(1, 7, key).unwrap()), vec![2]);
        assert!(!runs.has_through(1, 7, key).unwrap());
        runs.drop_finished();
        assert_eq!(runs.len(), 2, "both runs have rows left");
        assert_eq!(
            flat(runs.take_batch_through(1, 8, key).unwrap()),
            vec![8, 8]
        );
        runs.drop_finished();
        assert_eq!(runs.len(), 1, "run 1 is read: its file goes");
        let left: Vec<i64> = runs
            .remaining()
            .unwrap()
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(left, vec![9]);
        drop(runs);
        assert_eq!(std::fs::read_dir(spill.dir()).unwrap().count(), 0);
    }
}
