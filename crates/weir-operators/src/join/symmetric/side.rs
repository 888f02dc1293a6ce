//! The stored rows of one join input: the batches they point into, each
//! key's rows in the order their work falls due, and the index of keys by
//! the watermark at which each next has work (so a watermark visits only
//! the keys it makes due, never every key).
//!
//! May use what the parent module imports.

use super::*;
use crate::batch_slab::BatchSlab;
use std::collections::{BTreeMap, VecDeque};

/// Bytes accounted per key with stored rows, besides the key bytes.
const KEY_BYTES: usize = 64;

/// How a key's rows are ordered, which decides whether they are indexed
/// by due time.
///
/// Each ordered kind keeps a key's rows sorted by a value that its due
/// times grow with: a row later in the list is never due earlier than the
/// first row (its next window ends no earlier, it is done no earlier).
/// So a key's next due time is its first row's, the rows a watermark `w`
/// fires are a prefix (order value `<= w`), and the finished ones too.
///
/// ```text
///  heads (per side)          by_key
///  (due 999,  key a)  ──►    a: [t=10, t=400, t=990]   rows sorted by order value
///  (due 1999, key b)  ──►    b: [t=1200, t=1500]
///  watermark 1000: pop heads with due <= 1000 → key a only;
///    fire a's prefix (t <= 1000), drop its finished prefix,
///    re-register a at the due of its new first row
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// Arrival order, no index: nothing falls due before end of input
    /// (regular joins without a TTL).
    Arrival,
    /// By event time: tumbling, sliding, cumulative and session window
    /// joins, interval joins and regular joins with a TTL. (A session join
    /// lists a key at the end of its first open session, which only later
    /// rows can move, and only later; closed sessions precede open ones.)
    Time,
    /// By the end of the row's own window (same-window joins).
    WindowEnd,
}

impl Order {
    /// The order of a join of `kind`.
    pub(super) fn of(kind: JoinKind, ttl_ms: Option<i64>) -> Order {
        match kind {
            JoinKind::Regular if ttl_ms.is_none() => Order::Arrival,
            JoinKind::SameWindow => Order::WindowEnd,
            _ => Order::Time,
        }
    }

    /// The value a key's rows are sorted by.
    pub(super) fn value(self, e: &Entry) -> i64 {
        match self {
            Order::Arrival => 0,
            Order::Time => e.time,
            Order::WindowEnd => Window::max_timestamp(e.window.1),
        }
    }

    fn indexed(self) -> bool {
        self != Order::Arrival
    }
}

/// One key's stored rows.
#[derive(Debug)]
pub(super) struct KeyRows {
    /// Where the key is in `Side::heads` (None: not indexed).
    pub(super) due: Option<i64>,
    /// Sorted by [`Order::value`] (arrival order among equal values).
    pub(super) rows: VecDeque<Entry>,
}

/// The stored rows of one input.
#[derive(Debug)]
pub(super) struct Side {
    // config
    pub(super) keys: KeyEncoder,
    pub(super) order: Order,
    empty: RecordBatch,
    // state
    batches: BatchSlab,
    pub(super) by_key: HashMap<Vec<u8>, KeyRows, FastBuildHasher>,
    /// Keys by the watermark at which each next has work (ordered sides).
    /// A key is listed at its `KeyRows::due`; a listing at another time is
    /// stale (the key moved earlier) and skipped when taken.
    heads: BTreeMap<i64, Vec<Vec<u8>>>,
    pub(super) entries: usize,
    key_bytes: usize,
}

impl Side {
    /// An empty side of rows shaped like `empty`, keyed by `keys`.
    pub(super) fn new(keys: KeyEncoder, order: Order, empty: RecordBatch) -> Side {
        Side {
            keys,
            order,
            empty,
            batches: BatchSlab::default(),
            by_key: HashMap::default(),
            heads: BTreeMap::new(),
            entries: 0,
            key_bytes: 0,
        }
    }

    /// Keeps `batch` until [`settle`](Self::settle) says how many rows point at it.
    pub(super) fn store(&mut self, batch: RecordBatch) -> u32 {
        self.batches.insert(batch, 0)
    }

    /// Releases `n` rows of `slot`'s batch.
    pub(super) fn unref(&mut self, slot: u32, n: u32) {
        self.batches.release(slot, n);
    }

    /// Sets how many stored entries point at a new batch (freed at 0).
    pub(super) fn settle(&mut self, slot: u32, live: u32) {
        self.batches.set_live(slot, live);
    }

    pub(super) fn sources(&self) -> Vec<&RecordBatch> {
        self.batches.sources(&self.empty)
    }

    pub(super) fn bytes(&self) -> usize {
        self.batches.bytes() + self.entries * ENTRY_BYTES + self.key_bytes
    }

    /// Bytes accounted for a key (its map entry and, if indexed, its head).
    fn key_cost(&self, key: &[u8]) -> usize {
        let copies = if self.order.indexed() { 2 } else { 1 };
        key.len() * copies + KEY_BYTES
    }

    /// Stores `entry` under `key`; `due` is the watermark at which it next
    /// has work (ignored by unordered sides).
    pub(super) fn push(&mut self, key: &[u8], entry: Entry, due: i64) {
        let order = self.order;
        match self.by_key.get_mut(key) {
            Some(list) => {
                let v = order.value(&entry);
                // in order (the common case) without a search
                let at = if !order.indexed() || list.rows.back().is_none_or(|x| order.value(x) <= v)
                {
                    list.rows.len()
                } else {
                    list.rows.partition_point(|x| order.value(x) <= v)
                };
                list.rows.insert(at, entry);
                if order.indexed() && list.due.is_none_or(|d| due < d) {
                    // the old listing goes stale
                    list.due = Some(due);
                    self.heads.entry(due).or_default().push(key.to_vec());
                }
            }
            None => {
                self.key_bytes += self.key_cost(key);
                let due = order.indexed().then(|| {
                    self.heads.entry(due).or_default().push(key.to_vec());
                    due
                });
                self.by_key.insert(
                    key.to_vec(),
                    KeyRows {
                        due,
                        rows: VecDeque::from([entry]),
                    },
                );
            }
        }
        self.entries += 1;
    }

    /// The earliest watermark at which an indexed key may have work (a
    /// stale listing can make it early, never late).
    pub(super) fn next_due(&self) -> Option<i64> {
        self.heads.keys().next().copied()
    }

    /// Takes the keys with work at or before watermark `w` out of the
    /// index (each goes back with [`finish_prefix`](Self::finish_prefix)),
    /// except keys `skip` says were taken already.
    pub(super) fn take_due(
        &mut self,
        w: i64,
        keys: &mut Vec<Vec<u8>>,
        skip: impl Fn(&[u8]) -> bool,
    ) {
        while let Some(entry) = self.heads.first_entry() {
            if *entry.key() > w {
                break;
            }
            let (due, listed) = entry.remove_entry();
            for key in listed {
                let Some(list) = self.by_key.get_mut(&key) else {
                    continue;
                };
                if list.due != Some(due) {
                    continue; // stale
                }
                list.due = None;
                if !skip(&key) {
                    keys.push(key);
                }
            }
        }
    }

    /// True if `key` has rows here that [`take_due`](Self::take_due) took.
    pub(super) fn was_taken(&self, key: &[u8]) -> bool {
        self.by_key.get(key).is_some_and(|l| l.due.is_none())
    }

    /// Drops `key`'s first `n` rows (finished), then indexes the key again
    /// at `head`, the due watermark of its new first row, or forgets the
    /// key if no row is left.
    pub(super) fn finish_prefix(&mut self, key: &[u8], n: usize, head: Option<i64>) {
        let Some(list) = self.by_key.get_mut(key) else {
            return;
        };
        let mut released: Vec<u32> = Vec::with_capacity(n);
        released.extend(list.rows.drain(..n).map(|e| e.batch));
        match head {
            Some(d) => {
                if list.due != Some(d) {
                    // a listing at another time goes stale
                    list.due = Some(d);
                    self.heads.entry(d).or_default().push(key.to_vec());
                }
            }
            None => {
                self.by_key.remove(key);
                self.key_bytes -= self.key_cost(key);
            }
        }
        self.entries -= released.len();
        for slot in released {
            self.unref(slot, 1);
        }
    }

    /// Drops every stored row and batch.
    pub(super) fn clear(&mut self) {
        self.by_key.clear();
        self.heads.clear();
        self.batches.clear();
        self.entries = 0;
        self.key_bytes = 0;
    }
}
