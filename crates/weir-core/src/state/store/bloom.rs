//! A Bloom filter over key bytes, for spilled runs: a lookup skips a run
//! that certainly does not hold a key without reading it.
//!
//! Owns [`Bloom`]. May use `crate::key` (hashing).

use crate::key::stable_hash;

/// Bits per key (about 1 % false positives with 4 probes).
const BITS_PER_KEY: usize = 10;
const PROBES: u64 = 4;

/// A Bloom filter over key bytes.
pub struct Bloom {
    bits: Vec<u64>,
}

impl Bloom {
    /// An empty filter sized for about `keys` keys.
    pub fn with_keys(keys: usize) -> Self {
        let words = (keys * BITS_PER_KEY).div_ceil(64).max(1);
        Bloom {
            bits: vec![0; words],
        }
    }

    /// Bytes the filter takes in memory.
    pub fn bytes(&self) -> usize {
        self.bits.len() * 8
    }

    fn probes(words: usize, key: &[u8]) -> impl Iterator<Item = usize> {
        let h = stable_hash(key);
        let (h1, h2) = (h, h.rotate_left(32) | 1);
        let n = (words * 64) as u64;
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % n) as usize)
    }

    /// Adds `key`.
    pub fn insert(&mut self, key: &[u8]) {
        for bit in Self::probes(self.bits.len(), key) {
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// False if `key` was certainly never added.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        Self::probes(self.bits.len(), key).all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_keys_are_always_found_and_few_others_are() {
        let mut bloom = Bloom::with_keys(10_000);
        for i in 0..10_000u32 {
            bloom.insert(&i.to_le_bytes());
        }
        assert!((0..10_000u32).all(|i| bloom.may_contain(&i.to_le_bytes())));
        let false_positives = (10_000..110_000u32)
            .filter(|i| bloom.may_contain(&i.to_le_bytes()))
            .count();
        assert!(false_positives < 3_000, "{false_positives} of 100,000");
        assert!(bloom.bytes() <= 10_000 * 10 / 8 + 8);
    }
}
