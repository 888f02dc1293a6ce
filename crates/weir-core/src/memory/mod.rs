//! The memory pool: one byte budget shared by every memory-hungry consumer,
//! and the one policy that decides who gets how much of it.
//!
//! Owns [`MemoryPool`], [`MemoryReservation`], [`ConsumerKind`] and the size
//! helpers [`parse_size`] and [`format_bytes`]. Every large consumer holds a
//! reservation, declared [spillable](MemoryReservation::spillable) or
//! [fixed](MemoryReservation::fixed) when it is made; the pool decides, the
//! consumers never re-derive the policy: a spillable consumer that is
//! refused spills (see `crate::state::store::sync`) and asks again, a fixed
//! one fails with [`Error::ResourcesExhausted`] naming itself, its share,
//! the budget and a budget that would work. May use only [`crate::error`].

mod policy;
mod size;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

#[cfg(test)]
use crate::error::Error;
use crate::error::Result;
pub use policy::{FIXED_SHARE_DIVISOR, SPILLABLE_SHARE};
pub use size::{format_bytes, parse_size};

/// What a consumer does when the pool refuses it more memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerKind {
    /// It can move its state to disk and ask again (window panes, sessions,
    /// join rows, shuffle buffers, ...). Spillable consumers share what the
    /// fixed ones leave, each guaranteed a fair share.
    Spillable,
    /// It cannot leave memory (rows being read back, channel buffers,
    /// snapshot bytes, ...): it is bounded by construction, and a refusal is
    /// an error. Fixed consumers are guaranteed a share of the budget that
    /// spillable ones never take.
    Fixed,
}

impl ConsumerKind {
    /// `"spillable"` or `"fixed"`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerKind::Spillable => "spillable",
            ConsumerKind::Fixed => "fixed",
        }
    }
}

/// A byte budget shared by all [`MemoryReservation`]s made against it, and
/// the policy that splits it.
///
/// The pool only counts: it never allocates. Each consumer holds a
/// reservation; the pool's `reserved` is the sum of their sizes.
///
/// ```text
///   budget B ┌──────────────────────────────────────────┬───────────────┐
///            │ spillable: at most B - max(fixed, B/4)    │ fixed: B/4    │
///            │ ┌──────────┬──────────┬──────────┐        │ guaranteed,   │
///            │ │ window[0]│ window[1]│ join[0]  │ free   │ may grow past │
///            │ └──────────┴──────────┴──────────┘        │ it while the  │
///            │  fair share = spillable limit / active    │ budget lasts  │
///            └──────────────────────────────────────────┴───────────────┘
///
///  spillable try_grow(n): never past the budget; granted if the consumer
///      stays within its fair share (the limit over the spillable consumers
///      holding memory, itself included), or if all spillable consumers
///      together stay within the limit. Refused ─► it spills, asks again;
///      what it keeps after spilling everything is granted within its share
///      even past the budget (try_grow_within_share).
///  over its share while others are owed theirs ─► must_yield: it spills at
///      its next sync although it asked for nothing.
///  fixed try_grow(n): granted while the pool stays within the budget, and
///      always while the fixed consumers stay within B/4. Refused ─► error.
/// ```
///
/// A consumer over its fair share is refused as soon as the spillable limit
/// is reached, and asked to yield while the pool is over its limits, so
/// when a new consumer starts to fill its share the others spill down to
/// theirs at their next sync: every spillable consumer can reach its fair
/// share, and the fixed consumers always have their quarter. Only these two
/// guarantees take the pool past its budget, transiently: until the
/// consumers over their shares next sync and spill.
#[derive(Debug)]
pub struct MemoryPool {
    // config
    /// Bytes the pool hands out in total.
    budget: usize,
    // state
    /// Who holds what (one entry per live reservation).
    state: Mutex<policy::PoolState>,
    /// Bytes currently held by all reservations (mirrors `state`, read without the lock).
    reserved: AtomicUsize,
    /// Highest value `reserved` has reached.
    peak: AtomicUsize,
}

impl MemoryPool {
    /// A pool that hands out at most `budget` bytes.
    pub fn new(budget: usize) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            budget,
            state: Mutex::new(policy::PoolState::default()),
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

    /// Bytes held by reservations of `kind`.
    pub fn reserved_by(&self, kind: ConsumerKind) -> usize {
        self.lock().held(kind)
    }

    /// The fair share a spillable consumer holding memory gets now: the
    /// spillable limit divided by the spillable consumers holding memory.
    pub fn fair_share(&self) -> usize {
        let state = self.lock();
        policy::fair_share(&state, self.budget, false)
    }

    /// Every live reservation as `(consumer, kind, bytes)`, largest first.
    pub fn consumers(&self) -> Vec<(String, ConsumerKind, usize)> {
        self.lock().consumers()
    }

    fn lock(&self) -> MutexGuard<'_, policy::PoolState> {
        // the state is a set of counters updated in one step: a panic
        // elsewhere cannot leave it half-updated
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the new total after a change made under the lock.
    fn publish(&self, state: &policy::PoolState) {
        let total = state.total();
        self.reserved.store(total, Ordering::Release);
        self.peak.fetch_max(total, Ordering::AcqRel);
    }

    /// The pool behind reservations made before their operator was opened:
    /// budget 0, so such a reservation can hold nothing.
    fn unopened() -> &'static Arc<MemoryPool> {
        static POOL: OnceLock<Arc<MemoryPool>> = OnceLock::new();
        POOL.get_or_init(|| MemoryPool::new(0))
    }
}

/// One consumer's share of a [`MemoryPool`], declared spillable or fixed
/// when made.
///
/// The reservation's `size` is part of the pool's `reserved` until it is
/// shrunk, freed or dropped. See [`MemoryPool`] for the policy.
///
/// # Examples
///
/// ```
/// use weir::memory::{MemoryPool, MemoryReservation};
///
/// let pool = MemoryPool::new(1000);
/// // spillable consumers share 3/4 of the budget; fixed ones have 1/4 for sure
/// let mut window = MemoryReservation::spillable(&pool, "window");
/// window.try_grow(700).unwrap();
/// assert!(window.try_grow(100).is_err()); // past the spillable limit: spill
///
/// let mut read_back = MemoryReservation::fixed(&pool, "read back");
/// read_back.try_grow(250).unwrap(); // the fixed quarter is always there
///
/// let mut join = MemoryReservation::spillable(&pool, "join");
/// // join's fair share is 750 / 2: granted although the pool is nearly full;
/// // window, far over its share now, is refused until it spills
/// join.try_grow(50).unwrap();
/// assert!(window.try_grow(1).is_err());
/// window.shrink(700);
///
/// drop(read_back); // dropping returns the bytes
/// assert_eq!(pool.reserved(), 50);
/// assert_eq!(pool.peak(), 1000);
/// ```
#[derive(Debug)]
pub struct MemoryReservation {
    // config
    /// Who holds the reservation; named in errors.
    consumer: String,
    /// What it does when refused.
    kind: ConsumerKind,
    // state
    /// Bytes this reservation holds in the pool.
    size: usize,
    /// Its entry in the pool's table of consumers.
    slot: usize,
    // resources
    /// The pool the bytes are counted in.
    pool: Arc<MemoryPool>,
}

impl MemoryReservation {
    /// An empty reservation of a consumer that can spill.
    pub fn spillable(pool: &Arc<MemoryPool>, consumer: impl Into<String>) -> Self {
        MemoryReservation::with_kind(pool, consumer, ConsumerKind::Spillable)
    }

    /// An empty reservation of a consumer that cannot spill.
    pub fn fixed(pool: &Arc<MemoryPool>, consumer: impl Into<String>) -> Self {
        MemoryReservation::with_kind(pool, consumer, ConsumerKind::Fixed)
    }

    /// An empty reservation of `kind`.
    pub fn with_kind(
        pool: &Arc<MemoryPool>,
        consumer: impl Into<String>,
        kind: ConsumerKind,
    ) -> Self {
        let consumer = consumer.into();
        let slot = pool.lock().register(&consumer, kind);
        MemoryReservation {
            consumer,
            kind,
            size: 0,
            slot,
            pool: Arc::clone(pool),
        }
    }

    /// A placeholder for an operator that is not opened yet (its
    /// `Operator::open` replaces it with a real reservation): it can hold
    /// nothing, and asking it for memory fails with an error saying so.
    pub fn unopened(kind: ConsumerKind) -> Self {
        MemoryReservation::with_kind(MemoryPool::unopened(), "(not opened)", kind)
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Spillable or fixed.
    pub fn kind(&self) -> ConsumerKind {
        self.kind
    }

    /// Bytes currently held.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The pool this reservation counts against.
    pub fn pool(&self) -> &Arc<MemoryPool> {
        &self.pool
    }

    /// Reserves `bytes` more if the pool's policy allows it (see
    /// [`MemoryPool`]); on refusal nothing changes and the error names the
    /// consumer, its share, the budget and a budget that would work.
    /// Concurrent calls never overshoot the budget except as the policy's
    /// guarantees allow. Asking for nothing always succeeds.
    pub fn try_grow(&mut self, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let mut state = self.pool.lock();
        match policy::decide(&state, self.pool.budget, self.kind, self.size, bytes) {
            Ok(()) => {
                state.add(self.slot, bytes);
                self.pool.publish(&state);
                drop(state);
                self.size += bytes;
                Ok(())
            }
            Err(refusal) => {
                let err = refusal.into_error(&state, &self.consumer, self.pool.budget);
                Err(err)
            }
        }
    }

    /// True if this spillable consumer should spill although it asked for
    /// nothing: it holds more than its fair share while the pool is over its
    /// limits because others were granted theirs. `crate::state::store::sync`
    /// asks this after every change, so shares rebalance without the pool
    /// having to call anyone back.
    pub fn must_yield(&self) -> bool {
        if self.kind != ConsumerKind::Spillable || self.size == 0 {
            return false;
        }
        let state = self.pool.lock();
        policy::must_yield(&state, self.pool.budget, self.size)
    }

    /// Reserves `bytes` more for state that is left after spilling
    /// everything that could spill: granted if this spillable consumer stays
    /// within its fair share, even when that takes the pool past its
    /// budget (the consumers over their shares then must yield: see
    /// [`must_yield`](Self::must_yield)). This is the fair-share guarantee;
    /// `crate::state::store::sync` is its one caller.
    pub fn try_grow_within_share(&mut self, bytes: usize) -> Result<()> {
        if self.kind != ConsumerKind::Spillable {
            return self.try_grow(bytes);
        }
        let fits = {
            let state = self.pool.lock();
            policy::within_fair_share(&state, self.pool.budget, self.size, bytes)
        };
        if fits {
            self.grow(bytes);
            Ok(())
        } else {
            self.try_grow(bytes)
        }
    }

    /// Reserves `bytes` more without asking (for memory that is already
    /// held and must be counted); the pool may go over budget.
    pub fn grow(&mut self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut state = self.pool.lock();
        state.add(self.slot, bytes);
        self.pool.publish(&state);
        drop(state);
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
        if bytes == 0 {
            return;
        }
        let mut state = self.pool.lock();
        state.sub(self.slot, bytes);
        self.pool.publish(&state);
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
        self.shrink(freed);
        freed
    }

    /// Moves `bytes` of this reservation into a new reservation of the same
    /// kind and pool, named `consumer`. The pool's `reserved` does not
    /// change, so no other consumer can take the bytes in between.
    ///
    /// # Panics
    ///
    /// If `bytes` is more than [`MemoryReservation::size`].
    pub fn split(&mut self, bytes: usize, consumer: impl Into<String>) -> MemoryReservation {
        self.split_as(bytes, consumer, self.kind)
    }

    /// Like [`split`](Self::split), but the new reservation is of `kind`
    /// (e.g. a shuffle buffer's batches become fixed once it is finished:
    /// they can no longer spill, only be read).
    ///
    /// # Panics
    ///
    /// If `bytes` is more than [`MemoryReservation::size`].
    pub fn split_as(
        &mut self,
        bytes: usize,
        consumer: impl Into<String>,
        kind: ConsumerKind,
    ) -> MemoryReservation {
        self.size = self
            .size
            .checked_sub(bytes)
            .expect("a reservation can only split off at most its size");
        let consumer = consumer.into();
        let mut state = self.pool.lock();
        let slot = state.register(&consumer, kind);
        state.sub(self.slot, bytes);
        state.add(slot, bytes);
        drop(state);
        MemoryReservation {
            consumer,
            kind,
            size: bytes,
            slot,
            pool: Arc::clone(&self.pool),
        }
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        state.sub(self.slot, self.size);
        state.unregister(self.slot);
        self.pool.publish(&state);
    }
}

#[cfg(test)]
mod tests;
