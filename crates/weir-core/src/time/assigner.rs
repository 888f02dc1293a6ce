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
use super::{window_ms, TumblingWindow, OUT_OF_RANGE_MS};
use crate::error::{Error, Result};
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
            size_ms: window_ms(size),
            slide_ms: window_ms(slide),
            offset_ms: 0,
        }
    }

    /// Cumulative windows growing by `step` up to `max_size`.
    pub fn cumulative(step: Duration, max_size: Duration) -> Self {
        Window::Cumulative {
            step_ms: window_ms(step),
            max_size_ms: window_ms(max_size),
            offset_ms: 0,
        }
    }

    /// Session windows closed by `gap` of inactivity.
    pub fn session(gap: Duration) -> Self {
        Window::Session {
            gap_ms: window_ms(gap),
        }
    }

    /// Shifts window alignment by `offset` (no effect on sessions).
    pub fn with_offset(self, offset: Duration) -> Self {
        let o = window_ms(offset);
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
        let out_of_range = |name: &str| {
            Error::option(
                name,
                format!(
                    "is out of range: at most {} ms (about 292 million years)",
                    i64::MAX
                ),
            )
        };
        let positive = |name: &str, v: i64| {
            if v == OUT_OF_RANGE_MS {
                Err(out_of_range(name))
            } else if v <= 0 {
                Err(Error::option(name, "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        let offset = |o: i64, period: i64| {
            if o == OUT_OF_RANGE_MS {
                Err(out_of_range("window.offset"))
            } else if o < 0 || o >= period {
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

    /// The max timestamp (`end - 1`) of the first window of event time `t`
    /// (the one that ends, and so fires, first), or `None` for sessions and
    /// for times outside [`valid_times`](Self::valid_times). A row's windows
    /// all stay open while this one is.
    pub fn first_window_max_timestamp(&self, t: i64) -> Option<i64> {
        let (lo, hi) = self.valid_times();
        if t < lo || t > hi {
            return None;
        }
        let wide = |v: i64| i128::from(v);
        let align =
            |t: i128, offset: i64, period: i64| t - (t - wide(offset)).rem_euclid(wide(period));
        let end = match *self {
            Window::Tumbling { size_ms, offset_ms } => {
                align(wide(t), offset_ms, size_ms) + wide(size_ms)
            }
            // the window starting first after t - size
            Window::Sliding {
                size_ms,
                slide_ms,
                offset_ms,
            } => {
                align(wide(t) - wide(size_ms), offset_ms, slide_ms) + wide(slide_ms) + wide(size_ms)
            }
            // the window ending with the row's pane
            Window::Cumulative {
                step_ms, offset_ms, ..
            } => align(wide(t), offset_ms, step_ms) + wide(step_ms),
            Window::Session { .. } => return None,
        };
        i64::try_from(end - 1).ok()
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

    /// The event times `[lo, hi]` whose windows all lie within `i64`
    /// milliseconds: every start and end computed for such a time is exact
    /// (no saturation, so windows never overlap or shrink). Sessions: rows
    /// with `t + gap <= i64::MAX`.
    ///
    /// ```text
    ///  tumbling 1 s:  i64::MIN = ...-808 ms past a second boundary, so the window of
    ///                 i64::MIN would start 192 ms before it: lo = i64::MIN + 808
    /// ```
    pub fn valid_times(&self) -> (i64, i64) {
        const MIN: i128 = i64::MIN as i128;
        const MAX: i128 = i64::MAX as i128;
        // the first aligned start >= MIN and the last one with start + len <= MAX
        let starts = |offset: i64, period: i64, len: i64| -> (i128, i128) {
            let (o, p, l) = (i128::from(offset), i128::from(period), i128::from(len));
            let first = MIN + (o - MIN).rem_euclid(p);
            let top = MAX - l;
            (first, top - (top - o).rem_euclid(p))
        };
        let (lo, hi) = match *self {
            Window::Tumbling { size_ms, offset_ms } if size_ms > 0 => {
                let (first, last) = starts(offset_ms, size_ms, size_ms);
                (first, last + i128::from(size_ms) - 1)
            }
            Window::Sliding {
                size_ms,
                slide_ms,
                offset_ms,
            } if size_ms > 0 && slide_ms > 0 => {
                // the earliest window of t starts after t - size, the latest at align(t)
                let (first, last) = starts(offset_ms, slide_ms, size_ms);
                let (size, slide) = (i128::from(size_ms), i128::from(slide_ms));
                (first + size - slide, last + slide - 1)
            }
            Window::Cumulative {
                max_size_ms,
                offset_ms,
                ..
            } if max_size_ms > 0 => {
                let (first, last) = starts(offset_ms, max_size_ms, max_size_ms);
                (first, last + i128::from(max_size_ms) - 1)
            }
            Window::Session { gap_ms } => (MIN, MAX - i128::from(gap_ms.max(0))),
            // invalid sizes are refused by `validate`
            _ => (MIN, MAX),
        };
        let clamp = |v: i128| i64::try_from(v.clamp(MIN, MAX)).expect("clamped to i64");
        (clamp(lo), clamp(hi))
    }

    /// Fails if a time in `times` lies outside [`valid_times`](Self::valid_times),
    /// naming the time column, `context` (the operator) and the row's time.
    pub fn check_times(&self, times: &[i64], column: &str, context: &str) -> Result<()> {
        let (lo, hi) = self.valid_times();
        match times.iter().find(|&&t| t < lo || t > hi) {
            None => Ok(()),
            Some(&t) => Err(Error::column(
                column,
                context,
                format!(
                    "event time {t} ms lies in a window that does not fit in 64-bit \
                     milliseconds (this {} accepts event times from {lo} to {hi})",
                    self.describe()
                ),
            )),
        }
    }

    /// A short description for messages, e.g. `tumbling window of 1000 ms`.
    pub fn describe(&self) -> String {
        match *self {
            Window::Tumbling { size_ms, offset_ms } => {
                format!("tumbling window of {size_ms} ms (offset {offset_ms} ms)")
            }
            Window::Sliding {
                size_ms,
                slide_ms,
                offset_ms,
            } => format!(
                "sliding window of {size_ms} ms every {slide_ms} ms (offset {offset_ms} ms)"
            ),
            Window::Cumulative {
                step_ms,
                max_size_ms,
                offset_ms,
            } => format!(
                "cumulative window growing by {step_ms} ms up to {max_size_ms} ms (offset {offset_ms} ms)"
            ),
            Window::Session { gap_ms } => format!("session window with a {gap_ms} ms gap"),
        }
    }
}

#[cfg(test)]
mod tests;
