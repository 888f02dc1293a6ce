//! What a count or global window is ([`CountWindow`]) and when it fires:
//! the [`WindowTrigger`] trait, its [`TriggerAction`]s and the built-in
//! [`CountTrigger`].
//!
//! May use what the parent module imports.

use super::*;

/// What a trigger tells the window of one key to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerAction {
    /// Nothing.
    Continue,
    /// Emit the window's aggregates and keep its rows (then evict, if the
    /// window has `evict_to`).
    Fire,
    /// Emit the window's aggregates, then empty it.
    FireAndPurge,
    /// Empty the window without emitting.
    Purge,
}

/// Decides when the global window of a key fires (Flink's `Trigger`, without
/// timers). A trigger is shared by all keys and holds no state: it sees the
/// window's row count.
///
/// Rows are fed in (event time, row content) order, so what `on_row`
/// decides is the same in every execution mode. `on_watermark` sees
/// watermarks, whose values differ between executors and parallelism: a
/// trigger that fires on them gives mode-dependent results, except when it
/// only acts on the final watermark `i64::MAX` (end of input), which every
/// run delivers exactly once.
pub trait WindowTrigger: Send + Sync + std::fmt::Debug {
    /// Called for each row of a key in event-time order; `count` = rows in
    /// the window now (including this one).
    fn on_row(&self, count: u64, time: i64) -> TriggerAction;

    /// Called when the watermark passes `time` (after the key's rows up to
    /// it were fed), for every key whose window is not empty.
    fn on_watermark(&self, count: u64, watermark: i64) -> TriggerAction {
        let _ = (count, watermark);
        TriggerAction::Continue
    }

    /// Whether `on_watermark` can do anything; `false` saves visiting every
    /// key on each watermark. Defaults to `true`.
    fn watches_watermarks(&self) -> bool {
        true
    }
}

/// Fires whenever the window's row count is a positive multiple of `every`
/// (Flink's `CountTrigger`), purging the window if `purge` (Flink's
/// `PurgingTrigger.of(CountTrigger.of(every))`). `every = 0` never fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountTrigger {
    /// Fire every this many rows.
    pub every: u64,
    /// Empty the window when it fires.
    pub purge: bool,
}

impl WindowTrigger for CountTrigger {
    fn on_row(&self, count: u64, _time: i64) -> TriggerAction {
        match count.checked_rem(self.every) {
            Some(0) if count > 0 && self.purge => TriggerAction::FireAndPurge,
            Some(0) if count > 0 => TriggerAction::Fire,
            _ => TriggerAction::Continue,
        }
    }

    fn watches_watermarks(&self) -> bool {
        false
    }
}

/// Which count window.
#[derive(Debug, Clone)]
pub enum CountWindow {
    /// Flink's `countWindow(size)`: every `size` rows of a key, fire over
    /// them and start again.
    Tumbling {
        /// Rows per window (>= 1).
        size: u64,
    },
    /// Flink's `countWindow(size, slide)`: every `slide` rows of a key, fire
    /// over its last `size` rows (fewer at first: the first firing, after
    /// `slide` rows, covers `min(slide, size)` rows).
    Sliding {
        /// Rows per window (>= 1).
        size: u64,
        /// Rows between firings (>= 1).
        slide: u64,
    },
    /// One window per key that never ends; `trigger` decides when it fires
    /// or purges.
    Global {
        /// When to fire.
        trigger: Arc<dyn WindowTrigger>,
        /// Keep at most this many (the latest) rows after a `Fire`; `None`
        /// keeps all (aggregated incrementally, rows are not kept).
        evict_to: Option<u64>,
    },
}
