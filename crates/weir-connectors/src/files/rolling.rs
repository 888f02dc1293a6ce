//! When a file sink closes a part and starts the next one (Flink's rolling
//! policy): by size, by age, by inactivity. A rolled part is final; it is
//! published with the next checkpoint, or at the end of a run without
//! checkpoints, as the parts of a sink without a policy are.
//!
//! Owns [`RollingPolicy`] and the roll-index suffix of part names
//! ([`roll_suffix`], [`strip_roll`]). May use `weir_core`'s error.
//!
//! ```text
//!  write(batch) into part p ─► p's size >= file_size, or now - opened >= rollover ─► roll p
//!  processing-time tick (every check_interval, pipelined runs) ─►
//!     now - opened >= rollover, or now - last write >= inactivity ─► roll p
//!  roll p: close (footer, fsync) ─► pending; the next row of p's partition opens part k+1
//!  names with a policy: part-S-rKKKKK.EXT (no checkpoints), part-C-S-rKKKKK.EXT
//!  (checkpoint C), K counting a subtask's parts of a partition: names sort in write order
//!  (up to 99,999 parts; later ones are still distinct)
//! ```

use std::time::Duration;

use weir_core::error::{Error, Result};

/// When a part is closed and the next one started. The default rolls
/// nothing (one part per subtask and partition, per checkpoint).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::connectors::files::RollingPolicy;
///
/// let policy = RollingPolicy::default()
///     .with_file_size(128 << 20)?
///     .with_rollover(Duration::from_secs(30 * 60))?;
/// assert!(policy.rolls());
/// assert!(!RollingPolicy::default().rolls());
/// assert!(RollingPolicy::default().with_file_size(0).is_err());
/// # Ok::<(), weir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingPolicy {
    /// Roll a part once it holds this many bytes.
    file_size: Option<u64>,
    /// Roll a part this long after it was opened (ms).
    rollover_ms: Option<i64>,
    /// Roll a part this long after its last row (ms).
    inactivity_ms: Option<i64>,
    /// How often the time limits are checked (ms).
    check_ms: i64,
}

impl Default for RollingPolicy {
    fn default() -> Self {
        RollingPolicy {
            file_size: None,
            rollover_ms: None,
            inactivity_ms: None,
            check_ms: 60_000,
        }
    }
}

fn millis(what: &str, d: Duration) -> Result<i64> {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if ms <= 0 {
        return Err(Error::option(
            format!("sink.rolling-policy.{what}"),
            "must be at least 1 ms",
        ));
    }
    Ok(ms)
}

impl RollingPolicy {
    /// Rolls a part once it holds `bytes` bytes (checked after each batch:
    /// a part may end one batch over it). At least 1.
    pub fn with_file_size(mut self, bytes: u64) -> Result<Self> {
        if bytes == 0 {
            return Err(Error::option(
                "sink.rolling-policy.file-size",
                "must be at least 1 byte",
            ));
        }
        self.file_size = Some(bytes);
        Ok(self)
    }

    /// Rolls a part `after` it was opened.
    pub fn with_rollover(mut self, after: Duration) -> Result<Self> {
        self.rollover_ms = Some(millis("rollover-interval", after)?);
        Ok(self)
    }

    /// Rolls a part `after` its last row.
    pub fn with_inactivity(mut self, after: Duration) -> Result<Self> {
        self.inactivity_ms = Some(millis("inactivity-interval", after)?);
        Ok(self)
    }

    /// Checks the time limits every `every` (default 1 minute).
    pub fn with_check_interval(mut self, every: Duration) -> Result<Self> {
        self.check_ms = millis("check-interval", every)?;
        Ok(self)
    }

    /// True if any limit is set (part names then carry a roll index).
    pub fn rolls(&self) -> bool {
        self.file_size.is_some() || self.rollover_ms.is_some() || self.inactivity_ms.is_some()
    }

    /// True if time limits are set (checked on processing-time ticks).
    pub(super) fn timed(&self) -> bool {
        self.rollover_ms.is_some() || self.inactivity_ms.is_some()
    }

    pub(super) fn check_ms(&self) -> i64 {
        self.check_ms
    }

    /// Whether a part of `size` bytes, opened at `opened` and last written
    /// at `written` (wall clock ms), rolls at `now`.
    pub(super) fn due(&self, size: u64, opened: i64, written: i64, now: i64) -> bool {
        self.file_size.is_some_and(|max| size >= max) || self.due_by_time(opened, written, now)
    }

    /// Whether a part opened at `opened` and last written at `written`
    /// rolls at `now` by the time limits alone.
    pub(super) fn due_by_time(&self, opened: i64, written: i64, now: i64) -> bool {
        self.rollover_ms
            .is_some_and(|d| now.saturating_sub(opened) >= d)
            || self
                .inactivity_ms
                .is_some_and(|d| now.saturating_sub(written) >= d)
    }
}

/// The roll-index suffix of the `k`-th part: `-rKKKKK`.
pub(super) fn roll_suffix(k: u64) -> String {
    format!("-r{k:05}")
}

/// A part name's stem without its roll-index suffix, if it has one.
pub(super) fn strip_roll(stem: &str) -> &str {
    match stem.rsplit_once("-r") {
        Some((head, k)) if k.len() >= 5 && k.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_rolls_by_size_age_or_inactivity() {
        let none = RollingPolicy::default();
        assert!(!none.due(u64::MAX, 0, 0, i64::MAX), "no policy: never");
        let size = RollingPolicy::default().with_file_size(100).unwrap();
        assert!(
            !size.due_by_time(0, 0, i64::MAX),
            "size alone: never by time"
        );
        assert!(!size.due(99, 0, 0, 10));
        assert!(size.due(100, 0, 0, 10));
        let age = RollingPolicy::default()
            .with_rollover(Duration::from_secs(1))
            .unwrap();
        assert!(!age.due(0, 1_000, 1_900, 1_999));
        assert!(age.due(0, 1_000, 1_900, 2_000));
        let idle = RollingPolicy::default()
            .with_inactivity(Duration::from_millis(500))
            .unwrap();
        assert!(!idle.due(0, 0, 1_000, 1_499));
        assert!(idle.due(0, 0, 1_000, 1_500));
        assert!(RollingPolicy::default()
            .with_rollover(Duration::ZERO)
            .is_err());
    }

    #[test]
    fn roll_suffixes_sort_in_write_order_and_strip() {
        assert!(roll_suffix(9) < roll_suffix(10));
        assert_eq!(roll_suffix(3), "-r00003");
        assert_eq!(strip_roll("00000-r00003"), "00000");
        assert_eq!(strip_roll("00000007-00001-r00012"), "00000007-00001");
        assert_eq!(strip_roll("00000"), "00000");
        assert_eq!(
            strip_roll("00000-r12"),
            "00000-r12",
            "too short: not a roll index"
        );
        assert_eq!(strip_roll("00000-rx0000"), "00000-rx0000");
    }
}
