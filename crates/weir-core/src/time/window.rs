//! `TumblingWindow`, the shorthand for `Window::Tumbling`, and window alignment.

use super::window_ms;
use std::time::Duration;

/// Fixed-size, non-overlapping event-time windows `[start, start + size)`,
/// aligned to `offset` (Flink's `TumblingEventTimeWindows.of(size, offset)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TumblingWindow {
    /// Window length in milliseconds (> 0).
    pub size_ms: i64,
    /// Alignment offset in milliseconds (`0 <= offset < size`).
    pub offset_ms: i64,
}

impl TumblingWindow {
    /// Windows of `size`, aligned to the epoch.
    pub fn of(size: Duration) -> Self {
        TumblingWindow {
            size_ms: window_ms(size),
            offset_ms: 0,
        }
    }

    /// Shifts window boundaries by `offset` (e.g. time zones for daily windows).
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset_ms = window_ms(offset);
        self
    }
}

/// The largest `s <= t` with `s ≡ offset (mod period)`, computed without
/// overflow (saturating at `i64::MIN` for times near the minimum).
#[inline]
pub(crate) fn align(t: i64, offset: i64, period: i64) -> i64 {
    match t
        .checked_sub(offset)
        .and_then(|d| t.checked_sub(d.rem_euclid(period)))
    {
        Some(s) => s,
        None => {
            let (t, o, p) = (i128::from(t), i128::from(offset), i128::from(period));
            i64::try_from(t - (t - o).rem_euclid(p)).unwrap_or(i64::MIN)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Window;

    #[test]
    fn starts_align_to_size_and_offset_including_negative_times() {
        let w = Window::from(TumblingWindow::of(Duration::from_secs(1)));
        assert_eq!(w.pane_of(0), 0);
        assert_eq!(w.pane_of(999), 0);
        assert_eq!(w.pane_of(1000), 1000);
        assert_eq!(w.pane_of(-1), -1000);
        let w = w.with_offset(Duration::from_millis(250));
        assert_eq!(w.pane_of(1000), 250);
        assert_eq!(w.pane_of(1250), 1250);
        assert_eq!(Window::max_timestamp(w.last_window_of_pane(250).1), 1249);
        assert!(Window::from(TumblingWindow::of(Duration::ZERO))
            .validate()
            .is_err());
        // extreme times do not overflow
        let w = Window::from(
            TumblingWindow::of(Duration::from_secs(1)).with_offset(Duration::from_millis(250)),
        );
        assert_eq!(w.pane_of(i64::MIN), i64::MIN);
        assert_eq!(w.pane_of(i64::MIN + 100), i64::MIN + 58); // ≡ 250 (mod 1000)
        assert!(w.pane_of(i64::MAX) > i64::MAX - 1000);
        let plain = Window::from(TumblingWindow::of(Duration::from_secs(1)));
        assert_eq!(plain.pane_of(i64::MIN + 1), i64::MIN, "below MIN saturates");
    }
}
