//! The pool's one policy: who may grow, and the error when nobody may.
//!
//! Owns the pool's table of consumers ([`PoolState`]) and [`decide`]; the
//! parent module calls them under its lock. May use only
//! [`crate::error`] and the parent module.

use super::{format_bytes, ConsumerKind};
use crate::error::Error;

/// The fixed consumers' guaranteed share is `budget / FIXED_SHARE_DIVISOR`.
pub const FIXED_SHARE_DIVISOR: usize = 4;

/// The fraction of the budget spillable consumers share when the fixed ones
/// hold no more than their guaranteed share, as `(numerator, denominator)`.
pub const SPILLABLE_SHARE: (usize, usize) = (FIXED_SHARE_DIVISOR - 1, FIXED_SHARE_DIVISOR);

/// One live reservation.
#[derive(Debug)]
struct Entry {
    name: String,
    kind: ConsumerKind,
    size: usize,
}

/// The table of consumers and the totals the policy needs.
#[derive(Debug, Default)]
pub(super) struct PoolState {
    /// Slots of live reservations (`None`: free).
    entries: Vec<Option<Entry>>,
    /// Free slots.
    free: Vec<usize>,
    /// Bytes held by spillable reservations.
    spillable: usize,
    /// Bytes held by fixed reservations.
    fixed: usize,
    /// Spillable reservations holding memory (size > 0).
    active: usize,
}

impl PoolState {
    /// Adds a reservation of `kind` holding nothing; returns its slot.
    pub(super) fn register(&mut self, name: &str, kind: ConsumerKind) -> usize {
        let entry = Some(Entry {
            name: name.to_string(),
            kind,
            size: 0,
        });
        match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = entry;
                slot
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        }
    }

    /// Removes the reservation in `slot` (it holds nothing any more).
    pub(super) fn unregister(&mut self, slot: usize) {
        self.entries[slot] = None;
        self.free.push(slot);
    }

    fn entry(&mut self, slot: usize) -> &mut Entry {
        self.entries[slot]
            .as_mut()
            .expect("a live reservation's slot is registered")
    }

    /// Counts `bytes` more for the reservation in `slot`.
    pub(super) fn add(&mut self, slot: usize, bytes: usize) {
        let entry = self.entry(slot);
        let was_empty = entry.size == 0;
        entry.size = entry.size.saturating_add(bytes);
        match entry.kind {
            ConsumerKind::Spillable => {
                self.spillable = self.spillable.saturating_add(bytes);
                if was_empty && bytes > 0 {
                    self.active += 1;
                }
            }
            ConsumerKind::Fixed => self.fixed = self.fixed.saturating_add(bytes),
        }
    }

    /// Counts `bytes` less for the reservation in `slot`.
    pub(super) fn sub(&mut self, slot: usize, bytes: usize) {
        let entry = self.entry(slot);
        let was_empty = entry.size == 0;
        entry.size = entry.size.saturating_sub(bytes);
        let now_empty = entry.size == 0;
        match entry.kind {
            ConsumerKind::Spillable => {
                self.spillable = self.spillable.saturating_sub(bytes);
                if !was_empty && now_empty {
                    self.active -= 1;
                }
            }
            ConsumerKind::Fixed => self.fixed = self.fixed.saturating_sub(bytes),
        }
    }

    /// Bytes held by everyone.
    pub(super) fn total(&self) -> usize {
        self.spillable.saturating_add(self.fixed)
    }

    /// Bytes held by reservations of `kind`.
    pub(super) fn held(&self, kind: ConsumerKind) -> usize {
        match kind {
            ConsumerKind::Spillable => self.spillable,
            ConsumerKind::Fixed => self.fixed,
        }
    }

    /// Every live reservation as `(name, kind, size)`, largest first.
    pub(super) fn consumers(&self) -> Vec<(String, ConsumerKind, usize)> {
        let mut all: Vec<_> = self
            .entries
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.kind, e.size))
            .collect();
        all.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        all
    }
}

/// The fixed consumers' guaranteed share of `budget`.
pub(super) fn fixed_share(budget: usize) -> usize {
    budget / FIXED_SHARE_DIVISOR
}

/// What the spillable consumers may hold together: the budget less what the
/// fixed ones hold, and never their guaranteed share.
pub(super) fn spillable_limit(state: &PoolState, budget: usize) -> usize {
    budget.saturating_sub(state.fixed.max(fixed_share(budget)))
}

/// The fair share of a spillable consumer: the limit over the spillable
/// consumers holding memory, counting the asker if it holds none yet.
pub(super) fn fair_share(state: &PoolState, budget: usize, asker_is_new: bool) -> usize {
    let consumers = state.active + usize::from(asker_is_new);
    spillable_limit(state, budget) / consumers.max(1)
}

/// True if a spillable consumer holding `held` bytes should spill now
/// although it asked for nothing: it is over its fair share while the
/// spillable consumers together are over their limit (another consumer was
/// granted its share).
pub(super) fn must_yield(state: &PoolState, budget: usize, held: usize) -> bool {
    held > fair_share(state, budget, false)
        && (state.spillable > spillable_limit(state, budget) || state.total() > budget)
}

/// True if a spillable consumer holding `held` bytes stays within its fair
/// share with `bytes` more.
pub(super) fn within_fair_share(
    state: &PoolState,
    budget: usize,
    held: usize,
    bytes: usize,
) -> bool {
    held.saturating_add(bytes) <= fair_share(state, budget, held == 0)
}

/// Why a request was refused (turned into an error only when needed).
#[derive(Debug)]
pub(super) struct Refusal {
    kind: ConsumerKind,
    requested: usize,
    held: usize,
}

/// Decides whether a reservation of `kind` holding `held` bytes may grow by
/// `bytes` (see [`super::MemoryPool`] for the policy).
pub(super) fn decide(
    state: &PoolState,
    budget: usize,
    kind: ConsumerKind,
    held: usize,
    bytes: usize,
) -> Result<(), Refusal> {
    let refuse = Err(Refusal {
        kind,
        requested: bytes,
        held,
    });
    let Some(total) = state.total().checked_add(bytes) else {
        return refuse;
    };
    let Some(new_size) = held.checked_add(bytes) else {
        return refuse;
    };
    let granted = match kind {
        ConsumerKind::Fixed => {
            total <= budget || state.fixed.saturating_add(bytes) <= fixed_share(budget)
        }
        ConsumerKind::Spillable => {
            let within_fair = new_size <= fair_share(state, budget, held == 0);
            let within_limit =
                state.spillable.saturating_add(bytes) <= spillable_limit(state, budget);
            total <= budget && (within_fair || within_limit)
        }
    };
    if granted {
        Ok(())
    } else {
        refuse
    }
}

/// The smallest "round" budget (a power of two, at least 1 MiB) of at least `bytes`.
fn round_budget(bytes: usize) -> usize {
    bytes
        .max(1 << 20)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX)
}

/// `256MiB`, `2GiB`: a budget as `--memory` takes it.
fn budget_option(bytes: usize) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{}GiB", bytes >> 30)
    } else {
        format!("{}MiB", bytes.div_ceil(1 << 20))
    }
}

impl Refusal {
    /// The error for this refusal of `consumer`, with the shares as they are
    /// and a budget under which the request would have fitted.
    pub(super) fn into_error(self, state: &PoolState, consumer: &str, budget: usize) -> Error {
        let Refusal {
            kind,
            requested,
            held,
        } = self;
        let need = held.saturating_add(requested);
        let (share_text, suggested) = match kind {
            ConsumerKind::Fixed => {
                // the fixed consumers' quarter must hold them all
                let fixed_need = state.fixed.saturating_add(requested);
                let suggested = fixed_need.saturating_mul(FIXED_SHARE_DIVISOR);
                let text = format!(
                    "fixed consumers (which cannot spill) hold {} together and are guaranteed {} \
                     (a quarter of the budget); spillable consumers hold {}",
                    format_bytes(state.fixed as u64),
                    format_bytes(fixed_share(budget) as u64),
                    format_bytes(state.spillable as u64),
                );
                (text, suggested)
            }
            ConsumerKind::Spillable => {
                let consumers = (state.active + usize::from(held == 0)).max(1);
                let fair = fair_share(state, budget, held == 0);
                // its fair share must hold what it keeps after spilling
                let spill_need = need.saturating_mul(consumers);
                let suggested = spill_need
                    .saturating_mul(FIXED_SHARE_DIVISOR)
                    .div_ceil(FIXED_SHARE_DIVISOR - 1)
                    .max(spill_need.saturating_add(state.fixed));
                let text = format!(
                    "its fair share is {}: {consumers} spillable consumer{} holding memory share {} \
                     (the budget less the fixed consumers' {}, of which they hold {})",
                    format_bytes(fair as u64),
                    if consumers == 1 { "" } else { "s" },
                    format_bytes(spillable_limit(state, budget) as u64),
                    format_bytes(state.fixed.max(fixed_share(budget)) as u64),
                    format_bytes(state.fixed as u64),
                );
                (text, suggested)
            }
        };
        let suggested = round_budget(suggested.max(budget.saturating_add(1)));
        let message = format!(
            "{} consumer asked for {} more on top of the {} it holds, which the {} budget \
             cannot give: {share_text}; the pool holds {}. A budget of {} would fit it \
             (--memory {})",
            kind.name(),
            format_bytes(requested as u64),
            format_bytes(held as u64),
            format_bytes(budget as u64),
            format_bytes(state.total() as u64),
            format_bytes(suggested as u64),
            budget_option(suggested),
        );
        Error::ResourcesExhausted {
            consumer: consumer.to_string(),
            requested,
            budget,
            suggested,
            message,
        }
    }
}
