//! The stored rows of one join input: the batches they point into, each
//! key's rows in the order their work falls due, and the index of keys by
//! the watermark at which each next has work (so a watermark visits only
//! the keys it makes due, never every key).
//!
//! May use what the parent module imports.

use super::*;
use crate::batch_slab::BatchSlab;
use std::collections::{BTreeMap, VecDeque};
use weir_core::key::KeyMap;

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
    /// The key's bytes (its join key, as the side's encoder writes it).
    pub(super) key: Box<[u8]>,
    /// Where the key is in `Side::heads` (None: not indexed, or taken).
    pub(super) due: Option<i64>,
    /// Sorted by [`Order::value`] (arrival order among equal values).
    pub(super) rows: VecDeque<Entry>,
    /// The same key's slot on the other side, while it has rows there
    /// (kept by the join: [`Side::link`]), so a watermark pairs a due key
    /// with its other side without hashing its bytes.
    pub(super) partner: Option<Slot>,
}

/// A key's place in a side's [`Side::lists`] (stable while it has rows).
pub(super) type Slot = u32;

/// The stored rows of one input.
///
/// Keys are found by their bytes once, on arrival ([`Side::slot`]); the
/// due index and a watermark's work then name them by [`Slot`], so firing
/// a key neither hashes nor copies its bytes.
#[derive(Debug)]
pub(super) struct Side {
    // config
    pub(super) keys: KeyEncoder,
    pub(super) order: Order,
    empty: RecordBatch,
    // state
    batches: BatchSlab,
    /// Key bytes → slot of every key with stored rows.
    slots: KeyMap<Slot>,
    /// Per slot, the key's rows (`None`: a free slot).
    lists: Vec<Option<KeyRows>>,
    /// Slots free for the next new key.
    free: Vec<Slot>,
    /// Slots by the watermark at which each next has work (ordered sides).
    /// A slot is listed at its `KeyRows::due`; a listing at another time
    /// is stale (the key moved earlier, or left) and skipped when taken.
    heads: BTreeMap<i64, Vec<Slot>>,
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
            slots: KeyMap::default(),
            lists: Vec::new(),
            free: Vec::new(),
            heads: BTreeMap::new(),
            entries: 0,
            key_bytes: 0,
        }
    }

    /// Keeps `batch` until [`settle`](Self::settle) says how many rows point at it.
    pub(super) fn store(&mut self, batch: RecordBatch) -> u32 {
        self.batches.insert(batch, 0)
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

    /// Bytes accounted for a key (its map entry and its copy in the list).
    fn key_cost(key: &[u8]) -> usize {
        key.len() * 2 + KEY_BYTES
    }

    /// The slot of `key`, if it has rows here.
    pub(super) fn slot(&self, key: &[u8]) -> Option<Slot> {
        self.slots.get(key).copied()
    }

    /// The rows of `key`, if it has any here, to update.
    pub(super) fn get_mut(&mut self, key: &[u8]) -> Option<&mut KeyRows> {
        let s = self.slot(key)?;
        self.lists[s as usize].as_mut()
    }

    /// The rows of a live `slot`.
    pub(super) fn list(&self, slot: Slot) -> &KeyRows {
        self.lists[slot as usize]
            .as_ref()
            .expect("a slot handed out has rows until finish_prefix frees it")
    }

    /// Every key's rows.
    pub(super) fn lists(&self) -> impl Iterator<Item = &KeyRows> {
        self.lists.iter().flatten()
    }

    /// Sets the partner of a live `slot` (the key's slot on the other side).
    pub(super) fn link(&mut self, slot: Slot, partner: Option<Slot>) {
        if let Some(list) = self.lists[slot as usize].as_mut() {
            list.partner = partner;
        }
    }

    /// Stores `entry` under `key`; `due` is the watermark at which it next
    /// has work (ignored by unordered sides). Returns the key's slot if
    /// the key is new here (its partner is not linked yet).
    pub(super) fn push(&mut self, key: &[u8], entry: Entry, due: i64) -> Option<Slot> {
        let order = self.order;
        self.entries += 1;
        match self.slots.get(key) {
            Some(&slot) => {
                let list = self.lists[slot as usize]
                    .as_mut()
                    .expect("a mapped slot has rows");
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
                    self.heads.entry(due).or_default().push(slot);
                }
                None
            }
            None => {
                self.key_bytes += Self::key_cost(key);
                let list = KeyRows {
                    key: key.into(),
                    due: order.indexed().then_some(due),
                    rows: VecDeque::from([entry]),
                    partner: None,
                };
                let slot = match self.free.pop() {
                    Some(s) => {
                        self.lists[s as usize] = Some(list);
                        s
                    }
                    None => {
                        self.lists.push(Some(list));
                        (self.lists.len() - 1) as Slot
                    }
                };
                self.slots.insert(key, slot);
                if order.indexed() {
                    self.heads.entry(due).or_default().push(slot);
                }
                Some(slot)
            }
        }
    }

    /// The earliest watermark at which an indexed key may have work (a
    /// stale listing can make it early, never late).
    pub(super) fn next_due(&self) -> Option<i64> {
        self.heads.keys().next().copied()
    }

    /// Takes the slots with work at or before watermark `w` out of the
    /// index, into `slots` (each goes back with
    /// [`finish_prefix`](Self::finish_prefix)).
    pub(super) fn take_due(&mut self, w: i64, slots: &mut Vec<Slot>) {
        while let Some(entry) = self.heads.first_entry() {
            if *entry.key() > w {
                break;
            }
            let (due, listed) = entry.remove_entry();
            for slot in listed {
                let Some(list) = self.lists[slot as usize].as_mut() else {
                    continue; // freed
                };
                if list.due != Some(due) {
                    continue; // stale (or freed and taken by another key)
                }
                list.due = None;
                slots.push(slot);
            }
        }
    }

    /// True if `slot`'s key was taken by [`take_due`](Self::take_due)
    /// (an indexed side lists every key it has rows of).
    pub(super) fn was_taken(&self, slot: Slot) -> bool {
        self.list(slot).due.is_none()
    }

    /// Drops `slot`'s first `n` rows (finished), then indexes the key
    /// again at `head`, the due watermark of its new first row, or frees
    /// the slot if no row is left. Returns the freed key's partner slot
    /// (to unlink on the other side).
    pub(super) fn finish_prefix(
        &mut self,
        slot: Slot,
        n: usize,
        head: Option<i64>,
    ) -> Option<Slot> {
        let list = self.lists[slot as usize].as_mut()?;
        let mut partner = None;
        // rows point into their batches: each finished one releases its batch
        for e in list.rows.drain(..n) {
            self.batches.release(e.batch, 1);
        }
        self.entries -= n;
        match head {
            Some(d) => {
                if list.due != Some(d) {
                    // a listing at another time goes stale
                    list.due = Some(d);
                    self.heads.entry(d).or_default().push(slot);
                }
            }
            None => {
                let list = self.lists[slot as usize].take().expect("checked above");
                self.slots.remove(&list.key);
                self.key_bytes -= Self::key_cost(&list.key);
                self.free.push(slot);
                partner = list.partner;
            }
        }
        partner
    }

    /// Drops every stored row and batch.
    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.lists.clear();
        self.free.clear();
        self.heads.clear();
        self.batches.clear();
        self.entries = 0;
        self.key_bytes = 0;
    }
}
