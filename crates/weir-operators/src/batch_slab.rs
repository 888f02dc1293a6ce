//! Input batches kept whole while some of their rows are held
//! ([`BatchSlab`]): the event-time buffer and the symmetric hash join point
//! into them by (slot, row) and release rows one by one.
//!
//! May use `weir_core::spill` and the arrow crates.

use arrow_array::RecordBatch;
use weir_core::spill::batch_bytes;

/// A batch and how many held rows still point at it.
#[derive(Debug)]
struct Stored {
    batch: RecordBatch,
    /// Rows still pointing at `batch`; it is dropped at 0.
    live: u32,
    /// Bytes accounted for `batch`.
    bytes: usize,
}

/// Batches by slot, each dropped when its last held row is released;
/// freed slots are reused.
///
/// ```text
///  insert(batch, live = n) → slot      rows (slot, 0..n) point at it
///  release(slot, k)        live -= k   live = 0 → batch dropped, slot free
/// ```
#[derive(Debug, Default)]
pub(crate) struct BatchSlab {
    batches: Vec<Option<Stored>>,
    free: Vec<u32>,
    bytes: usize,
}

impl BatchSlab {
    /// Keeps `batch` for `live` rows (0: until [`set_live`](Self::set_live)).
    pub(crate) fn insert(&mut self, batch: RecordBatch, live: u32) -> u32 {
        let stored = Stored {
            bytes: batch_bytes(&batch),
            batch,
            live,
        };
        self.bytes += stored.bytes;
        match self.free.pop() {
            Some(slot) => {
                self.batches[slot as usize] = Some(stored);
                slot
            }
            None => {
                self.batches.push(Some(stored));
                (self.batches.len() - 1) as u32
            }
        }
    }

    /// Releases `n` rows of `slot`'s batch, dropping it when none is left.
    pub(crate) fn release(&mut self, slot: u32, n: u32) {
        let Some(stored) = self.batches.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        stored.live = stored.live.saturating_sub(n);
        if stored.live == 0 {
            self.bytes -= stored.bytes;
            self.batches[slot as usize] = None;
            self.free.push(slot);
        }
    }

    /// Sets how many rows point at `slot`'s batch (dropped at 0).
    pub(crate) fn set_live(&mut self, slot: u32, live: u32) {
        if let Some(stored) = self.batches.get_mut(slot as usize).and_then(Option::as_mut) {
            stored.live = live + 1;
        }
        self.release(slot, 1);
    }

    /// The batch in `slot`, if it is kept.
    pub(crate) fn get(&self, slot: u32) -> Option<&RecordBatch> {
        self.batches
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map(|s| &s.batch)
    }

    /// Every slot's batch, `empty` for a free slot (indexable by slot).
    pub(crate) fn sources<'a>(&'a self, empty: &'a RecordBatch) -> Vec<&'a RecordBatch> {
        self.batches
            .iter()
            .map(|b| b.as_ref().map_or(empty, |s| &s.batch))
            .collect()
    }

    /// Bytes of the kept batches.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Drops every batch.
    pub(crate) fn clear(&mut self) {
        self.batches.clear();
        self.free.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use std::sync::Arc;

    fn batch(n: i64) -> RecordBatch {
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from_iter_values(0..n)) as _)])
            .expect("batch")
    }

    #[test]
    fn a_batch_goes_with_its_last_row_and_its_slot_is_reused() {
        let mut slab = BatchSlab::default();
        let a = slab.insert(batch(3), 3);
        let b = slab.insert(batch(2), 2);
        assert_eq!((a, b), (0, 1));
        let both = slab.bytes();
        slab.release(a, 2);
        assert_eq!(slab.get(a).map(|b| b.num_rows()), Some(3));
        slab.release(a, 1);
        assert!(slab.get(a).is_none());
        assert!(slab.bytes() < both);
        // the freed slot comes back first
        assert_eq!(slab.insert(batch(1), 1), a);
        slab.set_live(b, 0);
        assert!(slab.get(b).is_none());
        slab.release(a, 1);
        assert_eq!(slab.bytes(), 0);
    }
}
