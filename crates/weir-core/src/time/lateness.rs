//! Which rows a source split calls late: the rule the first stateful
//! operators downstream of the source allow.
//!
//! Owns [`LatenessRule`]. May use the window assigners of this module.

use super::Window;

/// How a source split decides that a row is late, given the watermark `W`
/// its split had reached when the row was read and the allowed lateness `L`:
/// the row is late iff `deadline(t) + L <= W`.
///
/// ```text
///  PerRow                      deadline(t) = t
///  FirstWindow([w1, w2, ..])   deadline(t) = min over wi of the max timestamp (end - 1)
///                              of t's first window in wi (the one that fires first)
///
///  window [0, 5 s), delay 2 s:   after a row at 6.9 s W = 4.899 s: a row at 4 s has
///                                deadline 4.999 s > W  → on time, reaches [0, 5 s)
///                                after a row at 7 s  W = 4.999 s: deadline <= W → late
/// ```
/// The planner picks the rule from the first stateful operators the source
/// feeds (through filter/select/with_column/union steps and shuffles):
/// tumbling, sliding and cumulative windows (aggregates and window joins)
/// allow `FirstWindow`; every other operator (sessions, count windows,
/// process functions, interval and regular joins, group aggregates) needs
/// `PerRow`. Several consumers get the strictest deadline of them all.
/// Deciding at the source keeps the result a function of the data: the
/// operator's watermark never passes the split's watermark before the row
/// arrives (see `ARCHITECTURE.md`, "Why both modes give the same rows").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LatenessRule {
    /// Late iff `t + L <= W` (the row's own time is behind the watermark).
    #[default]
    PerRow,
    /// Late iff the first window of the row in any of these pane windows
    /// (tumbling, sliding, cumulative) is done: `end - 1 + L <= W`. A row
    /// on time is on time for every one of its windows.
    FirstWindow(Vec<Window>),
}

impl LatenessRule {
    /// The rule a consumer windowing its input by `window` allows
    /// (`PerRow` for sessions).
    pub fn for_window(window: Window) -> Self {
        if window.is_session() {
            LatenessRule::PerRow
        } else {
            LatenessRule::FirstWindow(vec![window])
        }
    }

    /// The rule that satisfies both `self` and `other` (the stricter deadline per row).
    pub fn and(self, other: LatenessRule) -> Self {
        match (self, other) {
            (LatenessRule::FirstWindow(mut a), LatenessRule::FirstWindow(b)) => {
                for w in b {
                    if !a.contains(&w) {
                        a.push(w);
                    }
                }
                LatenessRule::FirstWindow(a)
            }
            _ => LatenessRule::PerRow,
        }
    }

    /// True for [`LatenessRule::PerRow`].
    pub fn is_per_row(&self) -> bool {
        matches!(self, LatenessRule::PerRow)
    }

    /// The event time the watermark (minus the allowed lateness) must reach
    /// for a row at `t` to be late; never below `t`. Times outside a
    /// window's valid range keep `t` (the window operator refuses them).
    #[inline]
    pub fn deadline(&self, t: i64) -> i64 {
        match self {
            LatenessRule::PerRow => t,
            LatenessRule::FirstWindow(windows) => windows
                .iter()
                .map(|w| w.first_window_max_timestamp(t).unwrap_or(t))
                .min()
                .unwrap_or(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_deadline_is_the_first_window_to_fire() {
        let s = Duration::from_secs;
        let tumbling = LatenessRule::for_window(Window::tumbling(s(5)));
        assert_eq!(tumbling.deadline(4_000), 4_999);
        assert_eq!(tumbling.deadline(5_000), 9_999);
        // sliding 10 s every 1 s: the first window of 4.5 s is [-5 s, 5 s)
        let sliding = LatenessRule::for_window(Window::sliding(s(10), s(1)));
        assert_eq!(sliding.deadline(4_500), 4_999);
        let cumulative = LatenessRule::for_window(Window::cumulative(s(1), s(4)));
        assert_eq!(cumulative.deadline(6_200), 6_999);
        assert_eq!(
            LatenessRule::for_window(Window::session(s(5))),
            LatenessRule::PerRow
        );
        assert_eq!(LatenessRule::PerRow.deadline(4_000), 4_000);
        // two consumers: the stricter deadline; any per-row consumer wins
        let both = tumbling.clone().and(cumulative.clone());
        assert_eq!(both.deadline(6_200), 6_999);
        assert_eq!(both.deadline(5_000), 5_999);
        assert!(both.and(LatenessRule::PerRow).is_per_row());
        // out of a window's range: the row's own time (the operator errors)
        assert_eq!(tumbling.deadline(i64::MIN), i64::MIN);
    }
}
