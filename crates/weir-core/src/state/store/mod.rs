//! The state store: how operator state lives under the memory budget.
//!
//! Owns the [`SpillableState`] contract and [`sync`], the one function every
//! stateful operator calls after its state changed; and the structures
//! state is spilled into: [`SortedRuns`] (runs of rows sorted by an `i64`,
//! read back in steps) and [`StateLog`] (per-key values read back one key
//! at a time). May use [`crate::error`], [`crate::memory`], [`crate::spill`]
//! (files) and [`crate::key`] (hashing).
//!
//! ```text
//!  operator state changed ──► sync(state, spill)
//!     bytes = state.memory_bytes()
//!     ├─ bytes <= reserved ──────────────► shrink the reservation to bytes ─┐
//!     ├─ pool grants bytes - reserved ──────────────────────────────────────┤
//!     │                     over its fair share while others are owed theirs?
//!     │                                  no ─► done; yes ─► spill (as below) ┘
//!     └─ refused: state.can_spill()?
//!           ├─ yes ─► state.spill(spill) ─► memory freed ─► ask again (until no progress)
//!           └─ no ──► ResourcesExhausted (names the operator, its share, the budget,
//!                     and a budget that would work)
//! ```
//! The pool decides who must spill (see [`crate::memory::MemoryPool`]);
//! operators never compare sizes with the budget themselves. What an
//! operator keeps after a spill (bookkeeping that cannot leave memory)
//! stays in its spillable reservation and must fit its fair share; rows it
//! reads back from disk to work on are held in a
//! [fixed](crate::memory::MemoryReservation::fixed) reservation, in steps
//! bounded by construction.

mod bloom;
mod runs;
mod state_log;

pub use bloom::Bloom;

pub use runs::{RunKey, RunRest, SortedRuns};
pub use state_log::StateLog;

use crate::error::Result;
use crate::memory::{MemoryPool, MemoryReservation};
use crate::spill::SpillManager;
use std::sync::Arc;

/// Operator state that is counted in a spillable reservation and can move
/// (part of) itself to disk.
///
/// # Examples
///
/// ```
/// use weir::memory::{MemoryPool, MemoryReservation};
/// use weir::spill::SpillManager;
/// use weir::state::store::{sync, SpillableState};
/// use std::sync::Arc;
///
/// /// Values kept in memory until the pool refuses; then "written out".
/// struct Values {
///     memory: Vec<u64>,
///     on_disk: usize,
///     reservation: MemoryReservation,
/// }
///
/// impl SpillableState for Values {
///     fn memory_bytes(&self) -> usize {
///         self.memory.len() * 8
///     }
///     fn can_spill(&self) -> bool {
///         !self.memory.is_empty()
///     }
///     fn spill(&mut self, _spill: &Arc<SpillManager>) -> weir::Result<()> {
///         self.on_disk += self.memory.len(); // a real state writes a run here
///         self.memory.clear();
///         Ok(())
///     }
///     fn reservation(&mut self) -> &mut MemoryReservation {
///         &mut self.reservation
///     }
/// }
///
/// let pool = MemoryPool::new(1024); // spillable consumers share 768 bytes
/// let spill = SpillManager::try_new(None)?;
/// let reservation = MemoryReservation::spillable(&pool, "values");
/// let mut values = Values { memory: Vec::new(), on_disk: 0, reservation };
/// for v in 0..1000 {
///     values.memory.push(v);
///     sync(&mut values, &spill)?;
/// }
/// assert!(values.on_disk > 0);
/// assert_eq!(values.on_disk + values.memory.len(), 1000);
/// assert!(pool.peak() <= 768);
/// drop(values);
/// assert_eq!(pool.reserved(), 0);
/// # Ok::<(), weir::Error>(())
/// ```
pub trait SpillableState {
    /// Bytes the state holds in memory now: what its reservation must cover.
    fn memory_bytes(&self) -> usize;

    /// True if [`spill`](Self::spill) would free memory now.
    fn can_spill(&self) -> bool;

    /// Moves state to disk (all of it, or a part it judges cold) through
    /// `spill`, so that [`memory_bytes`](Self::memory_bytes) drops.
    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()>;

    /// The spillable reservation covering the state.
    fn reservation(&mut self) -> &mut MemoryReservation;
}

/// Bytes of spilled state one read-back step brings back into a fixed
/// reservation of `pool` (as stored on disk; in memory a row may take up
/// to twice that): a 32nd of the budget, between 256 bytes and 4 MiB, so
/// the steps of several operators fit the fixed consumers' guaranteed
/// quarter together.
pub fn step_bytes(pool: &MemoryPool) -> usize {
    (pool.budget() / 32).clamp(256, 4 << 20)
}

/// Reserves a read-back step of `bytes` in the fixed `reservation`. A step
/// holds at least every row of one key, which nothing can split: when the
/// pool refuses even that (a hot key larger than the fixed consumers'
/// share), the step is counted anyway and the pool passes its budget by it
/// until the step is released. Returns true if the pool granted it.
pub fn reserve_step(reservation: &mut MemoryReservation, bytes: usize) -> bool {
    if reservation.try_grow(bytes).is_ok() {
        return true;
    }
    reservation.grow(bytes);
    false
}

/// Matches `state`'s reservation to its memory, spilling while the pool
/// refuses (see the module docs). Call it after every change of the state.
///
/// # Errors
///
/// [`crate::error::Error::ResourcesExhausted`] when what is left after spilling
/// still does not fit; the spill's own errors (a full disk).
pub fn sync<S: SpillableState + ?Sized>(state: &mut S, spill: &Arc<SpillManager>) -> Result<()> {
    loop {
        let bytes = state.memory_bytes();
        let reservation = state.reservation();
        let held = reservation.size();
        let refused = if bytes <= held {
            reservation.shrink(held - bytes);
            None
        } else {
            reservation.try_grow(bytes - held).err()
        };
        let must_spill = match refused {
            Some(_) => true,
            // over its fair share while another consumer is owed its share
            None => state.reservation().must_yield(),
        };
        if !must_spill {
            return Ok(());
        }
        if !state.can_spill() {
            return keep_within_share(state, refused);
        }
        state.spill(spill)?;
        let after = state.memory_bytes();
        let consumer = state.reservation().consumer().to_string();
        spill
            .metrics()
            .record_state_spilled_by(&consumer, bytes.saturating_sub(after) as u64);
        if after >= bytes {
            // spilling freed nothing: asking again would loop
            return keep_within_share(state, refused);
        }
    }
}

/// The end of [`sync`] once nothing more can spill: what is left is kept if
/// it fits the consumer's fair share (even past the budget: the consumers
/// over their shares yield at their next sync), else the pool's refusal.
fn keep_within_share<S: SpillableState + ?Sized>(
    state: &mut S,
    refused: Option<crate::error::Error>,
) -> Result<()> {
    if refused.is_none() {
        return Ok(());
    }
    let bytes = state.memory_bytes();
    let reservation = state.reservation();
    let held = reservation.size();
    if bytes <= held {
        reservation.shrink(held - bytes);
        return Ok(());
    }
    // the error, if any, tells the shares as they are after spilling
    reservation.try_grow_within_share(bytes - held)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// State that spills half of what it holds each time.
    struct Halves {
        bytes: usize,
        spills: usize,
        reservation: MemoryReservation,
    }

    impl SpillableState for Halves {
        fn memory_bytes(&self) -> usize {
            self.bytes
        }
        fn can_spill(&self) -> bool {
            self.bytes > 10
        }
        fn spill(&mut self, _: &Arc<SpillManager>) -> Result<()> {
            self.spills += 1;
            self.bytes /= 2;
            Ok(())
        }
        fn reservation(&mut self) -> &mut MemoryReservation {
            &mut self.reservation
        }
    }

    #[test]
    fn spills_until_the_pool_grants_and_fails_once_nothing_is_left_to_spill() {
        let pool = MemoryPool::new(400); // spillable limit 300
        let spill = SpillManager::try_new(None).unwrap();
        let mut s = Halves {
            bytes: 1000,
            spills: 0,
            reservation: MemoryReservation::spillable(&pool, "halves"),
        };
        sync(&mut s, &spill).unwrap();
        // 1000 -> 500 -> 250: two spills
        assert_eq!((s.spills, s.bytes, pool.reserved()), (2, 250, 250));
        assert_eq!(spill.metrics().state_bytes(), 750);
        s.bytes = 100;
        sync(&mut s, &spill).unwrap();
        assert_eq!((s.spills, pool.reserved()), (2, 100));
        s.bytes = 0;
        sync(&mut s, &spill).unwrap();
        assert_eq!(pool.reserved(), 0);
        // a fixed consumer takes nearly the whole budget: 5 bytes left for `s`
        let mut fixed = MemoryReservation::fixed(&pool, "fixed");
        fixed.try_grow(395).unwrap();
        s.bytes = 40;
        let err = sync(&mut s, &spill).unwrap_err();
        assert!(err.is_resources_exhausted(), "{err}");
        assert!(err.to_string().contains("halves"), "{err}");
        // 40 -> 20 -> 10, then nothing left to spill
        assert_eq!(s.bytes, 10);
        assert_eq!(pool.reserved(), 395);
        drop((s, fixed));
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    fn a_consumer_over_its_share_yields_at_its_next_sync() {
        let pool = MemoryPool::new(400); // spillable limit 300
        let spill = SpillManager::try_new(None).unwrap();
        let halves = |name: &str, bytes: usize| Halves {
            bytes,
            spills: 0,
            reservation: MemoryReservation::spillable(&pool, name),
        };
        let mut a = halves("a", 300);
        sync(&mut a, &spill).unwrap();
        assert_eq!(a.spills, 0, "alone, `a` may fill the limit");
        // `b` is granted its fair share (150) though that passes the limit
        let mut b = halves("b", 100);
        sync(&mut b, &spill).unwrap();
        assert_eq!((b.spills, pool.reserved()), (0, 400));
        // `a` asks for nothing, but is over its share: it spills to 150
        sync(&mut a, &spill).unwrap();
        assert_eq!((a.spills, a.bytes), (1, 150));
        sync(&mut a, &spill).unwrap();
        assert_eq!(a.spills, 1, "within its share it stays");
        // with the fixed quarter taken, `b` still reaches its share
        let mut fixed = MemoryReservation::fixed(&pool, "fixed");
        fixed.try_grow(100).unwrap();
        b.bytes = 150;
        sync(&mut b, &spill).unwrap();
        assert_eq!((b.spills, pool.reserved()), (0, 400));
        drop((a, b, fixed));
        assert_eq!(pool.reserved(), 0);
    }
}
