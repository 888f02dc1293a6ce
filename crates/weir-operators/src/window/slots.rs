//! Where each key's partial state sits in one pane ([`PaneSlots`]): a table
//! indexed by key id while the dictionary's ids are few next to the pane's
//! keys, a hash map otherwise.
//!
//! May use `std` and `weir_core::key`.

use std::collections::HashMap;
use weir_core::key::FastBuildHasher;

/// A dense table entry no key has.
const VACANT: u32 = u32::MAX;
/// A dense table turns hashed when it would be more than this many times
/// larger than the pane's slot count (plus [`SLACK`]).
const TO_HASHED: usize = 16;
/// A hashed map turns dense when a table for its largest id would be at most
/// this many times its slot count (hysteresis against [`TO_HASHED`]).
const TO_DENSE: usize = 4;
/// Entries a dense table may always have, however few its slots.
const SLACK: usize = 64;

/// The slot of each key id (interned in the operator's dictionary) in one pane.
///
/// ```text
///  key id ──► Dense: table[id] (VACANT = absent)      one load, 4 bytes per id up to the largest
///         └─► Hashed: map[id]                         for ids spread far wider than the pane's keys
///  dense table past 16 × slots + 64 entries ──► hashed;  hashed with largest id + 1 ≤ 4 × slots ──► dense
/// ```
/// A pane of a keyed window usually holds most of the subtask's keys, and
/// the dictionary keeps ids dense (freed ids are reused), so the table is
/// the common case: a row's slot costs one load from a table of a few KiB,
/// where a hash map's probe cost two cache misses per row (a quarter of a
/// tumbling window's CPU time on 10M rows of 10,000 keys).
#[derive(Debug)]
pub(crate) enum PaneSlots {
    /// `table[id]` is the slot of key `id`, or [`VACANT`].
    Dense(Vec<u32>),
    /// Slots by key id, and the largest id held.
    Hashed(HashMap<u32, u32, FastBuildHasher>, u32),
}

impl Default for PaneSlots {
    fn default() -> Self {
        PaneSlots::Dense(Vec::new())
    }
}

impl PaneSlots {
    /// The slot of `id`; if absent, `make()` (called once) gives it. `slots`
    /// is the number of slots the pane has before this call.
    #[inline]
    pub(crate) fn get_or_insert(
        &mut self,
        id: u32,
        slots: usize,
        make: impl FnOnce() -> u32,
    ) -> u32 {
        let i = id as usize;
        match self {
            PaneSlots::Dense(table) => {
                if let Some(&s) = table.get(i) {
                    if s != VACANT {
                        return s;
                    }
                } else {
                    let want = (i + 1).next_power_of_two().max(SLACK);
                    if want > TO_HASHED * (slots + 1) + SLACK {
                        self.make_hashed();
                        return self.get_or_insert(id, slots, make);
                    }
                    table.resize(want, VACANT);
                }
                let s = make();
                table[i] = s;
                s
            }
            PaneSlots::Hashed(map, largest) => {
                if let Some(&s) = map.get(&id) {
                    return s;
                }
                let s = make();
                map.insert(id, s);
                *largest = (*largest).max(id);
                if (*largest as usize + 1) <= TO_DENSE * (slots + 1) {
                    self.make_dense();
                }
                s
            }
        }
    }

    fn make_hashed(&mut self) {
        if let PaneSlots::Dense(table) = self {
            let mut map = HashMap::with_hasher(FastBuildHasher::default());
            let mut largest = 0;
            for (id, &s) in table.iter().enumerate() {
                if s != VACANT {
                    map.insert(id as u32, s);
                    largest = id as u32;
                }
            }
            *self = PaneSlots::Hashed(map, largest);
        }
    }

    fn make_dense(&mut self) {
        if let PaneSlots::Hashed(map, largest) = self {
            let mut table = vec![VACANT; (*largest as usize + 1).next_power_of_two().max(SLACK)];
            for (&id, &s) in map.iter() {
                table[id as usize] = s;
            }
            *self = PaneSlots::Dense(table);
        }
    }

    /// Bytes beyond the per-slot bytes the pane counts itself.
    pub(crate) fn extra_bytes(&self) -> usize {
        match self {
            PaneSlots::Dense(table) => table.capacity() * 4,
            PaneSlots::Hashed(..) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts ids in order; returns the slots given, checking them against a plain map.
    fn run(ids: &[u32]) -> (PaneSlots, Vec<u32>) {
        let mut slots = PaneSlots::default();
        let mut oracle: HashMap<u32, u32> = HashMap::new();
        let mut given = Vec::new();
        for &id in ids {
            let n = oracle.len();
            let s = slots.get_or_insert(id, n, || n as u32);
            let expected = *oracle.entry(id).or_insert(n as u32);
            assert_eq!(s, expected, "id {id}");
            given.push(s);
        }
        // every id still maps to its slot after any conversions
        for (&id, &s) in &oracle {
            assert_eq!(
                slots.get_or_insert(id, oracle.len(), || panic!("{id} lost")),
                s
            );
        }
        (slots, given)
    }

    #[test]
    fn dense_ids_stay_in_a_table() {
        let ids: Vec<u32> = (0..5000).map(|i| (i * 7919) % 5000).collect();
        let (slots, _) = run(&ids);
        assert!(matches!(slots, PaneSlots::Dense(_)));
        assert!(slots.extra_bytes() <= 8192 * 4);
    }

    #[test]
    fn a_few_keys_with_far_ids_are_hashed_and_turn_dense_when_the_pane_fills() {
        let (slots, _) = run(&[1_000_000, 3, 999_999]);
        assert!(matches!(slots, PaneSlots::Hashed(..)));
        assert_eq!(slots.extra_bytes(), 0);
        // the same far id first, then most ids below it: dense again
        let mut ids = vec![4000];
        ids.extend(0..3000);
        let (slots, given) = run(&ids);
        assert!(matches!(slots, PaneSlots::Dense(_)));
        assert_eq!(given[0], 0);
        assert_eq!(given[1..], (1..3001).collect::<Vec<u32>>()[..]);
    }

    #[test]
    fn repeated_ids_keep_their_slot_through_conversions() {
        // pseudo-random ids over a growing range, each seen several times
        let mut x = 12345u64;
        let ids: Vec<u32> = (0..20_000)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) % (64 + i as u64 * 4)) as u32
            })
            .collect();
        run(&ids);
    }
}
