//! The memory pool: one byte budget shared by every memory-hungry consumer.
//!
//! Owns [`MemoryPool`], [`MemoryReservation`], and the size helpers
//! [`parse_size`] and [`format_bytes`]. Consumers (buffers, joins,
//! aggregations) reserve bytes before they hold data and give them back when
//! they release it; a consumer that is refused spills to disk (see
//! `crate::spill`) or fails with [`Error::ResourcesExhausted`]. May use only
//! [`crate::error`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A byte budget shared by all [`MemoryReservation`]s made against it.
///
/// The pool only counts: it never allocates. Each consumer holds a
/// reservation; the pool's `reserved` is the sum of their sizes.
///
/// ```text
///                 MemoryPool { budget: 64 MiB }
///                 reserved = Σ reservation sizes   (peak = max ever)
///                ┌──────────────┬────────────┬───────────┬ ─ ─ ─ ─ ─ ─ ┐
///                │ sort: 30 MiB │ join: 20MiB│ shuffle:4 │     free
///                └──────▲───────┴─────▲──────┴─────▲─────┴ ─ ─ ─ ─ ─ ─ ┘
///                       │             │            │
///   MemoryReservation ──┘             │            └── try_grow / shrink / Drop
///   ("sort", size 30 MiB)    MemoryReservation("join")
/// ```
///
/// `try_grow` fails instead of letting `reserved` pass `budget`; `grow`
/// always succeeds (for memory that is already held) and may overshoot.
#[derive(Debug)]
pub struct MemoryPool {
    // config
    /// Bytes that `try_grow` will hand out in total.
    budget: usize,
    // state
    /// Bytes currently held by all reservations.
    reserved: AtomicUsize,
    /// Highest value `reserved` has reached.
    peak: AtomicUsize,
}

impl MemoryPool {
    /// A pool that hands out at most `budget` bytes through `try_grow`.
    pub fn new(budget: usize) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            budget,
            reserved: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    /// A pool without a limit (budget `usize::MAX`); it still tracks usage.
    pub fn unbounded() -> Arc<MemoryPool> {
        MemoryPool::new(usize::MAX)
    }

    /// The pool's budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes currently reserved by all reservations.
    pub fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Acquire)
    }

    /// The highest `reserved` ever seen.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    /// Records `reserved` as a candidate for the peak.
    fn note_peak(&self, reserved: usize) {
        self.peak.fetch_max(reserved, Ordering::AcqRel);
    }

    /// Adds `bytes` if the total stays within the budget; returns the
    /// `reserved` value seen when refusing.
    fn try_add(&self, bytes: usize, limit: usize) -> std::result::Result<(), usize> {
        let limit = limit.min(self.budget);
        let mut current = self.reserved.load(Ordering::Acquire);
        loop {
            let new = match current.checked_add(bytes) {
                Some(new) if new <= limit => new,
                _ => return Err(current),
            };
            match self.reserved.compare_exchange_weak(
                current,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.note_peak(new);
                    return Ok(());
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Adds `bytes` unconditionally (saturating at `usize::MAX`).
    fn add(&self, bytes: usize) {
        let previous = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                Some(r.saturating_add(bytes))
            })
            .expect("the update closure always returns Some");
        self.note_peak(previous.saturating_add(bytes));
    }

    /// Returns `bytes` to the pool.
    fn sub(&self, bytes: usize) {
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                Some(r.saturating_sub(bytes))
            })
            .expect("the update closure always returns Some");
    }
}

/// One consumer's share of a [`MemoryPool`].
///
/// The reservation's `size` is part of the pool's `reserved` until it is
/// shrunk, freed or dropped. See [`MemoryPool`] for how the two relate.
///
/// # Examples
///
/// ```
/// use weir::memory::{MemoryPool, MemoryReservation};
///
/// let pool = MemoryPool::new(1000);
/// let mut sort = MemoryReservation::new(&pool, "sort");
/// sort.try_grow(600).unwrap();
///
/// let mut join = MemoryReservation::new(&pool, "join");
/// let err = join.try_grow(600).unwrap_err();
/// assert!(err.is_resources_exhausted());
/// assert_eq!(pool.reserved(), 600); // the refused request left no trace
///
/// sort.shrink(200);
/// join.try_grow(600).unwrap();
/// assert_eq!(pool.reserved(), 1000);
///
/// drop(sort); // dropping returns the bytes
/// assert_eq!(pool.reserved(), 600);
/// assert_eq!(pool.peak(), 1000);
/// ```
#[derive(Debug)]
pub struct MemoryReservation {
    // config
    /// Who holds the reservation; named in errors.
    consumer: String,
    // state
    /// Bytes this reservation holds in the pool.
    size: usize,
    // resources
    /// The pool the bytes are counted in.
    pool: Arc<MemoryPool>,
}

impl MemoryReservation {
    /// An empty reservation for `consumer` against `pool`.
    pub fn new(pool: &Arc<MemoryPool>, consumer: impl Into<String>) -> Self {
        MemoryReservation {
            consumer: consumer.into(),
            size: 0,
            pool: Arc::clone(pool),
        }
    }

    /// The consumer's name, as given to [`MemoryReservation::new`].
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Bytes currently held.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The pool this reservation counts against.
    pub fn pool(&self) -> &Arc<MemoryPool> {
        &self.pool
    }

    /// Reserves `bytes` more, or fails with [`Error::ResourcesExhausted`] if
    /// the pool's total would pass its budget. On failure nothing changes.
    /// Concurrent calls never overshoot the budget.
    pub fn try_grow(&mut self, bytes: usize) -> Result<()> {
        self.try_grow_below(bytes, usize::MAX)
    }

    /// Growth of a consumer that can spill: refused once the whole pool
    /// would pass half its budget, so that state which cannot spill (and
    /// data read back from disk to be processed) always finds room. On
    /// refusal the caller spills and tries again.
    pub fn try_grow_spillable(&mut self, bytes: usize) -> Result<()> {
        let limit = self.pool.budget / 2;
        self.try_grow_below(bytes, limit)
    }

    /// Like [`try_grow`](Self::try_grow), but fails unless the whole pool
    /// stays at or below `limit` bytes. Spillable consumers use a limit below
    /// the budget so that state which cannot spill always finds room.
    pub fn try_grow_below(&mut self, bytes: usize, limit: usize) -> Result<()> {
        if bytes == 0 {
            // asking for nothing never fails, even when others overshot the budget
            return Ok(());
        }
        match self.pool.try_add(bytes, limit) {
            Ok(()) => {
                self.size += bytes;
                Ok(())
            }
            Err(reserved) => Err(Error::ResourcesExhausted {
                consumer: self.consumer.clone(),
                requested: bytes,
                reserved,
                budget: self.pool.budget,
            }),
        }
    }

    /// Reserves `bytes` more without checking the budget (for memory that is
    /// already held and must be counted); the pool may go over budget.
    pub fn grow(&mut self, bytes: usize) {
        self.pool.add(bytes);
        self.size += bytes;
    }

    /// Gives `bytes` back to the pool.
    ///
    /// # Panics
    ///
    /// If `bytes` is more than [`MemoryReservation::size`]: a consumer may
    /// only return what it reserved.
    pub fn shrink(&mut self, bytes: usize) {
        self.size = self
            .size
            .checked_sub(bytes)
            .expect("a reservation can only shrink by at most its size");
        self.pool.sub(bytes);
    }

    /// Grows (with [`MemoryReservation::try_grow`]) or shrinks to `new_size`.
    pub fn try_resize(&mut self, new_size: usize) -> Result<()> {
        if new_size >= self.size {
            self.try_grow(new_size - self.size)
        } else {
            self.shrink(self.size - new_size);
            Ok(())
        }
    }

    /// Sizes the reservation to `new_size` bytes of state that cannot spill
    /// (any more): like [`MemoryReservation::try_resize`], except that a
    /// size within half the budget is always granted. Spillable state stops
    /// at half the budget so that this half is there for what cannot spill;
    /// whatever holds it past the budget meanwhile (rows another subtask
    /// read back from disk, panes being fired) is released right after.
    pub fn try_resize_unspillable(&mut self, new_size: usize) -> Result<()> {
        match self.try_resize(new_size) {
            Err(_) if new_size <= self.pool.budget() / 2 => {
                self.resize(new_size);
                Ok(())
            }
            other => other,
        }
    }

    /// Grows (unconditionally) or shrinks to `new_size`.
    pub fn resize(&mut self, new_size: usize) {
        if new_size >= self.size {
            self.grow(new_size - self.size);
        } else {
            self.shrink(self.size - new_size);
        }
    }

    /// Returns all bytes to the pool; returns how many were freed.
    pub fn free(&mut self) -> usize {
        let freed = self.size;
        if freed > 0 {
            self.shrink(freed);
        }
        freed
    }

    /// Moves `bytes` of this reservation into a new reservation with the same
    /// pool, named `consumer`. The pool's `reserved` does not change, so no
    /// other consumer can take the bytes in between.
    ///
    /// # Panics
    ///
    /// If `bytes` is more than [`MemoryReservation::size`].
    pub fn split(&mut self, bytes: usize, consumer: impl Into<String>) -> MemoryReservation {
        self.size = self
            .size
            .checked_sub(bytes)
            .expect("a reservation can only split off at most its size");
        MemoryReservation {
            consumer: consumer.into(),
            size: bytes,
            pool: Arc::clone(&self.pool),
        }
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        self.free();
    }
}

/// The size forms [`parse_size`] accepts, for error messages.
const ACCEPTED_SIZES: &str = "a byte count such as `1048576`, a number with a unit \
     (B, KB, MB, GB, TB = powers of 1000; KiB, MiB, GiB, TiB = powers of 1024; \
     case-insensitive, e.g. `256MiB`, `1.5 GiB`, `512kb`), or `unlimited`";

/// Parses a human-written byte size for `option` (named in the error).
///
/// Accepts `"1048576"`, `"256MiB"`, `"1GiB"`, `"512kb"`, `"2 GB"`, `"1.5GiB"`
/// and `"unlimited"` (which is `usize::MAX`). KiB/MiB/GiB/TiB are powers of
/// 1024, B/KB/MB/GB/TB powers of 1000; units are case-insensitive. Fractions
/// are rounded down to whole bytes.
///
/// # Errors
///
/// [`Error::InvalidOption`] naming the text and the accepted forms.
pub fn parse_size(option: &str, text: &str) -> Result<usize> {
    let invalid = |why: &str| {
        Error::option(
            option,
            format!("`{text}` is not a size ({why}); expected {ACCEPTED_SIZES}"),
        )
    };
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower == "unlimited" {
        return Ok(usize::MAX);
    }
    let number_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(number_end);
    let multiplier: u128 = match unit.trim_start() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(invalid("unknown unit")),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(invalid("no number"));
    }
    if fraction.contains('.') {
        return Err(invalid("more than one decimal point"));
    }
    let too_large = || invalid("too large");
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole_value.checked_mul(multiplier).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        // Only the digits that can matter for a whole byte count: 1 TiB < 10^13.
        let digits = &fraction[..fraction.len().min(18)];
        let numerator: u128 = digits.parse().map_err(|_| too_large())?;
        let denominator = 10u128.pow(digits.len() as u32);
        bytes += numerator * multiplier / denominator;
    }
    usize::try_from(bytes).map_err(|_| too_large())
}

/// Formats a byte count for reports: `"512 B"`, `"1.5 MiB"`, `"2.0 GiB"`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspillable_state_within_half_the_budget_is_granted_past_transient_overshoot() {
        let pool = MemoryPool::new(100);
        // rows read back from disk by another subtask take the pool past its budget
        let mut read_back = MemoryReservation::new(&pool, "read back");
        read_back.grow(90);
        let mut state = MemoryReservation::new(&pool, "state");
        assert!(state.try_resize(20).is_err());
        state.try_resize_unspillable(20).unwrap();
        assert_eq!((state.size(), pool.reserved()), (20, 110));
        // beyond half the budget it is a real exhaustion, and nothing changes
        let err = state.try_resize_unspillable(51).unwrap_err();
        assert!(matches!(err, Error::ResourcesExhausted { .. }), "{err:?}");
        assert_eq!(state.size(), 20);
        drop(read_back);
        state.try_resize_unspillable(51).unwrap();
        drop(state);
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    fn try_grow_beyond_budget_fails_and_leaves_reserved_unchanged() {
        let pool = MemoryPool::new(100);
        let mut a = MemoryReservation::new(&pool, "a");
        a.try_grow(70).unwrap();
        let mut b = MemoryReservation::new(&pool, "b");
        let err = b.try_grow(31).unwrap_err();
        match err {
            Error::ResourcesExhausted {
                consumer,
                requested,
                reserved,
                budget,
            } => {
                assert_eq!(consumer, "b");
                assert_eq!(requested, 31);
                assert_eq!(reserved, 70);
                assert_eq!(budget, 100);
            }
            other => panic!("expected ResourcesExhausted, got {other:?}"),
        }
        assert_eq!(pool.reserved(), 70);
        assert_eq!(b.size(), 0);
        b.try_grow(30).unwrap();
        assert_eq!(pool.reserved(), 100);
        // usize overflow is a refusal too, not a wrap-around.
        let unbounded = MemoryPool::unbounded();
        let mut c = MemoryReservation::new(&unbounded, "c");
        c.try_grow(10).unwrap();
        assert!(c.try_grow(usize::MAX).is_err());
        assert_eq!(unbounded.reserved(), 10);
    }

    #[test]
    fn drop_returns_bytes_and_peak_is_kept() {
        let pool = MemoryPool::new(1000);
        {
            let mut a = MemoryReservation::new(&pool, "a");
            a.try_grow(400).unwrap();
            let mut b = MemoryReservation::new(&pool, "b");
            b.grow(300);
            assert_eq!(pool.reserved(), 700);
            b.shrink(100);
            assert_eq!(pool.reserved(), 600);
        }
        assert_eq!(pool.reserved(), 0);
        assert_eq!(pool.peak(), 700);
    }

    #[test]
    fn grow_may_exceed_budget_and_is_counted() {
        let pool = MemoryPool::new(10);
        let mut a = MemoryReservation::new(&pool, "a");
        a.grow(25);
        assert_eq!(pool.reserved(), 25);
        assert_eq!(pool.peak(), 25);
        assert!(a.try_grow(1).is_err());
        assert_eq!(a.free(), 25);
        assert_eq!(pool.reserved(), 0);
        assert_eq!(a.free(), 0);
    }

    #[test]
    fn resize_and_split_keep_the_pool_total() {
        let pool = MemoryPool::new(100);
        let mut a = MemoryReservation::new(&pool, "a");
        a.try_resize(60).unwrap();
        assert_eq!(pool.reserved(), 60);
        assert!(a.try_resize(101).is_err());
        assert_eq!(a.size(), 60);
        a.try_resize(20).unwrap();
        assert_eq!(pool.reserved(), 20);
        a.resize(150);
        assert_eq!(pool.reserved(), 150);
        a.resize(50);
        let part = a.split(30, "part");
        assert_eq!((a.size(), part.size()), (20, 30));
        assert_eq!(part.consumer(), "part");
        assert_eq!(pool.reserved(), 50);
        drop(part);
        assert_eq!(pool.reserved(), 20);
        drop(a);
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    #[should_panic(expected = "at most its size")]
    fn shrinking_more_than_held_is_a_bug() {
        let pool = MemoryPool::new(100);
        let mut a = MemoryReservation::new(&pool, "a");
        a.try_grow(10).unwrap();
        a.shrink(11);
    }

    #[test]
    fn concurrent_try_grow_never_exceeds_the_budget() {
        const BUDGET: usize = 1_000;
        let pool = MemoryPool::new(BUDGET);
        let max_seen = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let pool = Arc::clone(&pool);
                let max_seen = Arc::clone(&max_seen);
                std::thread::spawn(move || {
                    let mut r = MemoryReservation::new(&pool, format!("t{t}"));
                    let mut granted = 0usize;
                    for i in 0..20_000usize {
                        let bytes = 1 + (i * 7 + t) % 97;
                        if r.try_grow(bytes).is_ok() {
                            granted += 1;
                        }
                        max_seen.fetch_max(pool.reserved(), Ordering::Relaxed);
                        if i % 8 == 0 {
                            r.shrink(r.size() / 2);
                        }
                    }
                    granted
                })
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(granted > 0);
        assert!(max_seen.load(Ordering::Relaxed) <= BUDGET);
        assert!(pool.peak() <= BUDGET, "peak {} > budget", pool.peak());
        assert!(
            pool.peak() > BUDGET / 2,
            "the test should get near the budget"
        );
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    fn parse_size_table() {
        let ok = [
            ("1048576", 1_048_576),
            ("0", 0),
            ("256MiB", 256 << 20),
            ("1GiB", 1 << 30),
            ("1gib", 1 << 30),
            ("512kb", 512_000),
            ("512KiB", 512 << 10),
            ("2 GB", 2_000_000_000),
            ("  3 mb ", 3_000_000),
            ("1.5GiB", 3 << 29),
            ("1TiB", 1 << 40),
            ("7B", 7),
            ("unlimited", usize::MAX),
            ("UNLIMITED", usize::MAX),
        ];
        for (text, want) in ok {
            assert_eq!(parse_size("memory", text).unwrap(), want, "{text}");
        }
        for text in [
            "",
            "MiB",
            "12 parsecs",
            "-5",
            "1..5GB",
            "99999999999999999999999TiB",
        ] {
            let err = parse_size("memory", text).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::InvalidOption { .. }), "{text}: {msg}");
            assert!(msg.contains("option `memory`"), "{msg}");
            assert!(msg.contains(&format!("`{text}`")), "{msg}");
            assert!(msg.contains("MiB") && msg.contains("unlimited"), "{msg}");
        }
    }

    #[test]
    fn format_bytes_table() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(3 << 19), "1.5 MiB");
        assert_eq!(format_bytes(5 << 30), "5.0 GiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
    }
}
