//! Time windows: which windows a timestamp belongs to, cut into panes.
//!
//! Tumbling, sliding and cumulative windows are unions of fixed-size
//! **panes**, so a row updates exactly one pane and a window's result is the
//! merge of its panes' partial aggregates (the slicing of Arroyo and Flink):
//!
//! ```text
//!  sliding size 3s, slide 1s  → pane 1s (gcd)
//!  panes:    [0,1) [1,2) [2,3) [3,4) [4,5)
//!  windows:  [0,3) = p0+p1+p2;  [1,4) = p1+p2+p3;  [2,5) = p2+p3+p4 ...
//!  cumulative step 1s, max 3s → pane 1s
//!  windows:  [0,1) [0,2) [0,3) | [3,4) [3,5) [3,6) | ...
//! ```
//! Session windows have no panes: each key's sessions grow and merge with
//! the data (see the session operator).

use super::window::align;
use super::{duration_ms, TumblingWindow};
use crate::{Error, Result};
use std::time::Duration;

/// An event-time window definition. All times are epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `[start, start + size)`, starts aligned to `offset` modulo `size`.
    Tumbling {
        /// Window length.
        size_ms: i64,
        /// Alignment offset.
        offset_ms: i64,
    },
    /// `[start, start + size)` every `slide`, overlapping when `slide < size`.
    Sliding {
        /// Window length.
        size_ms: i64,
        /// Distance between window starts.
        slide_ms: i64,
        /// Alignment offset.
        offset_ms: i64,
    },
    /// Flink's CUMULATE: windows `[s, s + k * step)` for `k = 1..=max/step`,
    /// with `s` aligned to `max_size`.
    Cumulative {
        /// Growth step.
        step_ms: i64,
        /// Largest window (a multiple of the step).
        max_size_ms: i64,
        /// Alignment offset.
        offset_ms: i64,
    },
    /// A window per burst of activity of a key, closed after `gap` without rows.
    Session {
        /// Inactivity that closes a session.
        gap_ms: i64,
    },
}

impl From<TumblingWindow> for Window {
    fn from(w: TumblingWindow) -> Self {
        Window::Tumbling {
            size_ms: w.size_ms,
            offset_ms: w.offset_ms,
        }
    }
}

/// The most windows one row may belong to (sliding `size / slide`,
/// cumulative `max / step`): beyond it a row would cost too much to place.
pub const MAX_WINDOWS_PER_ROW: i64 = 10_000;

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Window {
    /// Tumbling windows of `size`.
    pub fn tumbling(size: Duration) -> Self {
        TumblingWindow::of(size).into()
    }

    /// Sliding windows of `size` starting every `slide`.
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        Window::Sliding {
            size_ms: duration_ms(size),
            slide_ms: duration_ms(slide),
            offset_ms: 0,
        }
    }

    /// Cumulative windows growing by `step` up to `max_size`.
    pub fn cumulative(step: Duration, max_size: Duration) -> Self {
        Window::Cumulative {
            step_ms: duration_ms(step),
            max_size_ms: duration_ms(max_size),
            offset_ms: 0,
        }
    }

    /// Session windows closed by `gap` of inactivity.
    pub fn session(gap: Duration) -> Self {
        Window::Session {
            gap_ms: duration_ms(gap),
        }
    }

    /// Shifts window alignment by `offset` (no effect on sessions).
    pub fn with_offset(self, offset: Duration) -> Self {
        let o = duration_ms(offset);
        match self {
            Window::Tumbling { size_ms, .. } => Window::Tumbling {
                size_ms,
                offset_ms: o,
            },
            Window::Sliding {
                size_ms, slide_ms, ..
            } => Window::Sliding {
                size_ms,
                slide_ms,
                offset_ms: o,
            },
            Window::Cumulative {
                step_ms,
                max_size_ms,
                ..
            } => Window::Cumulative {
                step_ms,
                max_size_ms,
                offset_ms: o,
            },
            s @ Window::Session { .. } => s,
        }
    }

    /// Checks sizes; errors name the option.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: i64| {
            if v <= 0 {
                Err(Error::option(name, "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        let offset = |o: i64, period: i64| {
            if o < 0 || o >= period {
                Err(Error::option(
                    "window.offset",
                    "must be at least 0 and smaller than the window size",
                ))
            } else {
                Ok(())
            }
        };
        match *self {
            Window::Tumbling { size_ms, offset_ms } => {
                positive("window.size", size_ms)?;
                offset(offset_ms, size_ms)
            }
            Window::Sliding {
                size_ms,
                slide_ms,
                offset_ms,
            } => {
                positive("window.size", size_ms)?;
                positive("window.slide", slide_ms)?;
                if slide_ms > size_ms {
                    return Err(Error::option(
                        "window.slide",
                        "must not exceed the window size (rows would be skipped)",
                    ));
                }
                if size_ms / slide_ms > MAX_WINDOWS_PER_ROW {
                    return Err(Error::option(
                        "window.slide",
                        format!(
                            "gives {} windows per row; at most {MAX_WINDOWS_PER_ROW} are supported",
                            size_ms / slide_ms
                        ),
                    ));
                }
                offset(offset_ms, slide_ms)
            }
            Window::Cumulative {
                step_ms,
                max_size_ms,
                offset_ms,
            } => {
                positive("window.step", step_ms)?;
                positive("window.max_size", max_size_ms)?;
                if max_size_ms % step_ms != 0 {
                    return Err(Error::option(
                        "window.max_size",
                        "must be a multiple of the step",
                    ));
                }
                if max_size_ms / step_ms > MAX_WINDOWS_PER_ROW {
                    return Err(Error::option(
                        "window.step",
                        format!(
                            "gives {} windows per row; at most {MAX_WINDOWS_PER_ROW} are supported",
                            max_size_ms / step_ms
                        ),
                    ));
                }
                offset(offset_ms, max_size_ms)
            }
            Window::Session { gap_ms } => positive("window.gap", gap_ms),
        }
    }

    /// True for session windows (which merge instead of using panes).
    pub fn is_session(&self) -> bool {
        matches!(self, Window::Session { .. })
    }

    /// Pane length: every window is a union of whole panes.
    pub fn pane_ms(&self) -> i64 {
        match *self {
            Window::Tumbling { size_ms, .. } => size_ms,
            Window::Sliding {
                size_ms, slide_ms, ..
            } => gcd(size_ms, slide_ms),
            Window::Cumulative { step_ms, .. } => step_ms,
            Window::Session { gap_ms } => gap_ms,
        }
    }

    fn offset_ms(&self) -> i64 {
        match *self {
            Window::Tumbling { offset_ms, .. }
            | Window::Sliding { offset_ms, .. }
            | Window::Cumulative { offset_ms, .. } => offset_ms,
            Window::Session { .. } => 0,
        }
    }

    /// Start of the pane holding event time `t`.
    #[inline]
    pub fn pane_of(&self, t: i64) -> i64 {
        align(t, self.offset_ms(), self.pane_ms())
    }

    /// The windows `(start, end)` that contain the pane starting at `pane`,
    /// in increasing `(end, start)` order.
    pub fn windows_of_pane(&self, pane: i64) -> Vec<(i64, i64)> {
        let off = self.offset_ms();
        let mut out = match *self {
            Window::Tumbling { size_ms, .. } => {
                let s = align(pane, off, size_ms);
                vec![(s, s.saturating_add(size_ms))]
            }
            Window::Sliding {
                size_ms, slide_ms, ..
            } => {
                let mut v = Vec::new();
                let mut s = align(pane, off, slide_ms);
                // windows starting after pane - size; 128-bit so times near
                // i64::MIN (where starts saturate) still get their window
                while i128::from(s) > i128::from(pane) - i128::from(size_ms) {
                    v.push((s, s.saturating_add(size_ms)));
                    match s.checked_sub(slide_ms) {
                        Some(next) => s = next,
                        None => break,
                    }
                }
                v
            }
            Window::Cumulative {
                step_ms,
                max_size_ms,
                ..
            } => {
                let base = align(pane, off, max_size_ms);
                let last = base.saturating_add(max_size_ms);
                let mut v = Vec::new();
                let mut end = pane.checked_add(step_ms);
                while let Some(e) = end.filter(|&e| e <= last) {
                    v.push((base, e));
                    end = e.checked_add(step_ms);
                }
                if end.is_none() && v.last().is_none_or(|w| w.1 < last) {
                    // the window past i64::MAX ends there
                    v.push((base, last));
                }
                v
            }
            Window::Session { .. } => Vec::new(),
        };
        out.sort_by_key(|&(s, e)| (e, s));
        out
    }

    /// The last window (largest `(end, start)`) containing the pane at
    /// `pane`: equal to `windows_of_pane(pane).last()`, without allocating
    /// (it is asked for every row).
    pub fn last_window_of_pane(&self, pane: i64) -> (i64, i64) {
        let off = self.offset_ms();
        match *self {
            Window::Tumbling { size_ms, .. } => {
                let s = align(pane, off, size_ms);
                (s, s.saturating_add(size_ms))
            }
            Window::Sliding {
                size_ms, slide_ms, ..
            } => {
                let s = align(pane, off, slide_ms);
                (s, s.saturating_add(size_ms))
            }
            Window::Cumulative { max_size_ms, .. } => {
                let base = align(pane, off, max_size_ms);
                (base, base.saturating_add(max_size_ms))
            }
            Window::Session { .. } => (pane, pane),
        }
    }

    /// Windows fire when the watermark reaches `end - 1`.
    #[inline]
    pub fn max_timestamp(end: i64) -> i64 {
        end.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_windows(w: &Window, t: i64) -> Vec<(i64, i64)> {
        // every candidate window over a generous range, filtered by containment
        let mut v = Vec::new();
        for s in (t - 100_000)..=t {
            let ok = match *w {
                Window::Tumbling { size_ms, offset_ms } => {
                    (s - offset_ms).rem_euclid(size_ms) == 0 && t < s + size_ms
                }
                Window::Sliding {
                    size_ms,
                    slide_ms,
                    offset_ms,
                } => (s - offset_ms).rem_euclid(slide_ms) == 0 && t < s + size_ms,
                Window::Cumulative { .. } | Window::Session { .. } => false,
            };
            if ok {
                let size = match *w {
                    Window::Tumbling { size_ms, .. } | Window::Sliding { size_ms, .. } => size_ms,
                    _ => 0,
                };
                v.push((s, s + size));
            }
        }
        v.sort_by_key(|&(s, e)| (e, s));
        v
    }

    #[test]
    fn pane_windows_match_brute_force_containment() {
        let cases = [
            Window::tumbling(Duration::from_millis(1000)),
            Window::sliding(Duration::from_millis(3000), Duration::from_millis(1000)),
            Window::sliding(Duration::from_millis(1000), Duration::from_millis(400)),
            Window::sliding(Duration::from_millis(1000), Duration::from_millis(400))
                .with_offset(Duration::from_millis(100)),
        ];
        for w in cases {
            w.validate().unwrap();
            for t in [-2500i64, -1, 0, 1, 999, 1000, 4321, 99_999] {
                // a row's windows = windows of its pane
                assert_eq!(
                    w.windows_of_pane(w.pane_of(t)),
                    brute_windows(&w, t),
                    "{w:?} t={t}"
                );
                let p = w.pane_of(t);
                assert_eq!(
                    Some(w.last_window_of_pane(p)),
                    w.windows_of_pane(p).last().copied()
                );
            }
        }
    }

    #[test]
    fn cumulative_windows_grow_by_step_within_max() {
        let w = Window::cumulative(Duration::from_secs(1), Duration::from_secs(3));
        assert_eq!(w.pane_of(4500), 4000);
        assert_eq!(w.windows_of_pane(4000), vec![(3000, 5000), (3000, 6000)]);
        assert_eq!(
            w.windows_of_pane(3000),
            vec![(3000, 4000), (3000, 5000), (3000, 6000)]
        );
        assert_eq!(w.windows_of_pane(5000), vec![(3000, 6000)]);
        for p in [3000, 4000, 5000, i64::MAX - 10, i64::MIN] {
            let p = w.pane_of(p);
            assert_eq!(
                Some(w.last_window_of_pane(p)),
                w.windows_of_pane(p).last().copied()
            );
        }
        assert!(
            Window::cumulative(Duration::from_secs(2), Duration::from_secs(3))
                .validate()
                .is_err()
        );
        assert!(
            Window::sliding(Duration::from_secs(1), Duration::from_secs(2))
                .validate()
                .is_err()
        );
        assert_eq!(
            Window::sliding(Duration::from_secs(10), Duration::from_secs(4)).pane_ms(),
            2000
        );
    }
}
