//! A key's window in memory: how it is kept ([`Mode`]: incremental
//! accumulators, the last rows of a sliding window, or rows with eviction),
//! its kept rows ([`Chunk`]) and counters ([`KeyWindow`]), and the windows
//! fired during one watermark ([`Firings`]).
//!
//! May use what the parent module imports.

use super::*;

/// How the operator keeps a key's window.
#[derive(Debug, Clone)]
pub(super) enum Mode {
    /// Accumulators per key, updated as rows come (no eviction).
    Incremental { trigger: Arc<dyn WindowTrigger> },
    /// Rows kept: the last `size`; fire every `slide`.
    Sliding { size: u64, slide: u64 },
    /// Rows kept; after a `Fire` only the latest `keep`.
    Evicting {
        trigger: Arc<dyn WindowTrigger>,
        keep: u64,
    },
}

/// Rows of one key kept by a window, with their event times and aggregate
/// inputs (cast once).
pub(super) struct Chunk {
    pub(super) batch: RecordBatch,
    pub(super) times: Vec<i64>,
    pub(super) values: Vec<Values>,
    pub(super) bytes: usize,
}

impl Chunk {
    pub(super) fn new(batch: RecordBatch, times: Vec<i64>, aggs: &[BoundAgg]) -> Result<Self> {
        let values = aggs
            .iter()
            .map(|a| a.values(batch.columns()))
            .collect::<Result<Vec<_>>>()?;
        let bytes = batch_bytes(&batch) + times.len() * 8 * (1 + aggs.len());
        Ok(Chunk {
            batch,
            times,
            values,
            bytes,
        })
    }

    pub(super) fn len(&self) -> u64 {
        self.times.len() as u64
    }
}

/// The window state of one key.
#[derive(Default)]
pub(super) struct KeyWindow {
    /// The window's hold on its key (set by `new_window`).
    pub(super) key: Option<KeyHandle>,
    /// Incremental mode: rows in the window, first and last row's time, and
    /// the accumulator slot.
    pub(super) count: u64,
    pub(super) first_time: i64,
    pub(super) last_time: i64,
    pub(super) slot: u32,
    /// Sliding mode: rows since the last firing.
    pub(super) since_fire: u64,
    /// Row modes: kept rows, oldest first. Rows are numbered from the key's
    /// first row: `chunks[0]` starts at `base`, the window at `start`.
    pub(super) chunks: VecDeque<Chunk>,
    pub(super) base: u64,
    pub(super) start: u64,
    pub(super) bytes: usize,
}

impl KeyWindow {
    /// The number of the row after the last kept one.
    pub(super) fn end(&self) -> u64 {
        self.base + self.chunks.iter().map(Chunk::len).sum::<u64>()
    }

    /// Event time of row number `at` (a kept row).
    pub(super) fn time_at(&self, at: u64) -> Option<i64> {
        let mut first = self.base;
        for c in &self.chunks {
            if at < first + c.len() {
                return c.times.get((at - first) as usize).copied();
            }
            first += c.len();
        }
        None
    }

    /// Drops rows before `start`, compacts a mostly dropped first chunk and
    /// merges small trailing chunks (each row is copied O(log n) times).
    pub(super) fn trim(&mut self, aggs: &[BoundAgg], schema: &SchemaRef) -> Result<()> {
        while let Some(c) = self.chunks.front() {
            if self.base + c.len() > self.start {
                break;
            }
            self.base += c.len();
            self.chunks.pop_front();
        }
        if let Some(c) = self.chunks.front() {
            let skip = self.start - self.base;
            if skip > 0 && skip * 2 >= c.len() {
                let c = self.chunks.pop_front().expect("checked above");
                self.chunks.push_front(tail(c, skip as usize, aggs)?);
                self.base = self.start;
            }
        }
        while self.chunks.len() >= 2 {
            let n = self.chunks.len();
            if self.chunks[n - 1].len() * 2 < self.chunks[n - 2].len() {
                break;
            }
            let b = self.chunks.pop_back().expect("two chunks");
            let mut a = self.chunks.pop_back().expect("two chunks");
            if self.chunks.is_empty() && self.start > self.base {
                a = tail(a, (self.start - self.base) as usize, aggs)?;
                self.base = self.start;
            }
            let batch = arrow_select::concat::concat_batches(schema, [&a.batch, &b.batch])?;
            let mut times = a.times;
            times.extend(b.times);
            self.chunks.push_back(Chunk::new(batch, times, aggs)?);
        }
        self.bytes = self.chunks.iter().map(|c| c.bytes).sum();
        Ok(())
    }
}

/// The rows of `c` from row `skip` on, copied.
pub(super) fn tail(c: Chunk, skip: usize, aggs: &[BoundAgg]) -> Result<Chunk> {
    let n = c.times.len();
    let idx = UInt32Array::from_iter_values((skip as u32)..(n as u32));
    let batch = arrow_select::take::take_record_batch(&c.batch, &idx)?;
    Chunk::new(batch, c.times[skip..].to_vec(), aggs)
}

/// The windows fired during one watermark: one group per firing.
pub(super) struct Firings {
    pub(super) keys: Vec<u32>,
    pub(super) starts: Vec<i64>,
    pub(super) ends: Vec<i64>,
    pub(super) accs: Vec<Accumulators>,
}

impl Firings {
    pub(super) fn new(aggs: &[BoundAgg]) -> Self {
        Firings {
            keys: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            accs: aggs.iter().map(Accumulators::new).collect(),
        }
    }

    /// A new firing; returns its group.
    pub(super) fn push(&mut self, key: u32, start: i64, end: i64) -> u32 {
        self.keys.push(key);
        self.starts.push(start);
        self.ends.push(end);
        for a in &mut self.accs {
            a.resize(self.keys.len());
        }
        (self.keys.len() - 1) as u32
    }
}
