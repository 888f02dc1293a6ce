//! Two-input equi-joins: window, interval and regular joins, inner and
//! outer, with one result in every mode.
//!
//! Owns [`JoinSpec`] (what to join), [`JoinType`], [`JoinKind`], the output
//! layout ([`JoinLayout`]) and the physical operators: the pipelined
//! [`SymmetricHashJoin`] (probe on arrival, watermark-driven outer rows and
//! cleanup), the pipelined [`WindowHashJoin`] (tumbling and same-window
//! joins: rows kept by window, one hash join per window as it closes) and
//! the batch [`SortMergeJoin`] (blocking: both inputs in runs
//! sorted by key hash, spilled under the budget, merged a step at a time).
//! All compute, per key, the same set of rows as [`join_group`], which
//! defines the semantics:
//!
//! ```text
//!  window [s,e):  l ⋈ r  iff key(l) = key(r) and both rows are in [s,e);
//!                 outer: a row with no partner in one of its windows, padded, per window
//!                 (session windows: sessions over the rows of both sides of a key)
//!  interval:      l ⋈ r  iff key(l) = key(r) and r.t + lower <= l.t <= r.t + upper;
//!                 outer: a row with no partner at all, padded, once
//!  regular:       l ⋈ r  iff key(l) = key(r) (and |l.t - r.t| <= ttl, with a TTL);
//!                 outer as interval
//!  null keys never match (they are padded in outer joins)
//! ```
//! May use `weir_core::operator`, `weir_core::key`, `weir_core::time`, `weir_core::memory`,
//! `weir_core::spill`, `weir_core::error` and the arrow crates.

#[cfg(test)]
mod checkpoint_tests;
mod layout;
mod side_state;
mod sort_merge;
mod spill;
mod symmetric;
mod window_hash;

pub use layout::{JoinLayout, RowTimes};
pub use sort_merge::SortMergeJoin;
pub use symmetric::SymmetricHashJoin;
pub use window_hash::WindowHashJoin;

use weir_core::error::{Error, Result};
use weir_core::time::Window;

/// Which unmatched rows a join keeps (padded with nulls on the other side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinType {
    /// Only matches.
    Inner,
    /// Matches, and left rows without one.
    Left,
    /// Matches, and right rows without one.
    Right,
    /// Matches, and rows of either side without one.
    Full,
}

impl JoinType {
    /// True if unmatched left rows are kept.
    pub fn keeps_left(self) -> bool {
        matches!(self, JoinType::Left | JoinType::Full)
    }

    /// True if unmatched right rows are kept.
    pub fn keeps_right(self) -> bool {
        matches!(self, JoinType::Right | JoinType::Full)
    }

    /// True if unmatched rows of `side` (0 left, 1 right) are kept.
    pub fn keeps(self, side: usize) -> bool {
        if side == 0 {
            self.keeps_left()
        } else {
            self.keeps_right()
        }
    }
}

impl std::str::FromStr for JoinType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "inner" => Ok(JoinType::Inner),
            "left" | "left_outer" => Ok(JoinType::Left),
            "right" | "right_outer" => Ok(JoinType::Right),
            "full" | "full_outer" | "outer" => Ok(JoinType::Full),
            other => Err(Error::option(
                "join type",
                format!("unknown join type `{other}`; expected inner, left, right or full"),
            )),
        }
    }
}

/// Which rows of equal keys match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Rows in the same event-time window (tumbling, sliding or cumulative).
    Window(Window),
    /// Rows whose inputs already carry `window_start` and `window_end`
    /// columns (window aggregates): rows of the same window match.
    SameWindow,
    /// `right.t + lower_ms <= left.t <= right.t + upper_ms`.
    Interval {
        /// Lower bound (ms, may be negative).
        lower_ms: i64,
        /// Upper bound (ms, at least `lower_ms`).
        upper_ms: i64,
    },
    /// Every pair of rows with equal keys; unbounded state.
    Regular,
}

impl JoinKind {
    /// True for session-window joins.
    pub fn is_session(&self) -> bool {
        matches!(self, JoinKind::Window(w) if w.is_session())
    }
}

/// What to join: key columns of each side, the kind and the type.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use weir::operators::join::{JoinSpec, JoinType};
/// use weir::time::Window;
/// let spec = JoinSpec::window(Window::tumbling(Duration::from_secs(1)))
///     .on(["vehicle_id"], ["vehicle_id"])
///     .with_type(JoinType::Left);
/// assert!(spec.validate().is_ok());
/// // right.t - 5 s <= left.t <= right.t
/// assert!(JoinSpec::interval(Duration::from_secs(5), Duration::ZERO)
///     .on(["k"], ["k"])
///     .validate()
///     .is_ok());
/// assert!(JoinSpec::interval_ms(100, -100).on(["k"], ["k"]).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinSpec {
    /// Key columns of the left input.
    pub left_keys: Vec<String>,
    /// Key columns of the right input (same count and types as the left ones).
    pub right_keys: Vec<String>,
    /// Which rows of equal keys match.
    pub kind: JoinKind,
    /// Which unmatched rows are kept.
    pub join_type: JoinType,
    /// Regular joins: rows more than this far apart in event time do not
    /// match, so state older than the watermark minus the TTL is dropped.
    pub ttl_ms: Option<i64>,
}

impl JoinSpec {
    /// Rows of equal keys in the same event-time window.
    pub fn window(window: Window) -> Self {
        Self::of(JoinKind::Window(window))
    }

    /// Rows of equal keys and equal `window_start`/`window_end` columns
    /// (both inputs are window aggregates).
    pub fn same_window() -> Self {
        Self::of(JoinKind::SameWindow)
    }

    /// Rows of equal keys with `right.t - lower <= left.t <= right.t + upper`.
    pub fn interval(lower: std::time::Duration, upper: std::time::Duration) -> Self {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self::of(JoinKind::Interval {
            lower_ms: ms(lower).saturating_neg(),
            upper_ms: ms(upper),
        })
    }

    /// Interval bounds in signed milliseconds: `right.t + lower_ms <= left.t <= right.t + upper_ms`.
    pub fn interval_ms(lower_ms: i64, upper_ms: i64) -> Self {
        Self::of(JoinKind::Interval { lower_ms, upper_ms })
    }

    /// Every pair of rows with equal keys.
    pub fn regular() -> Self {
        Self::of(JoinKind::Regular)
    }

    fn of(kind: JoinKind) -> Self {
        JoinSpec {
            left_keys: Vec::new(),
            right_keys: Vec::new(),
            kind,
            join_type: JoinType::Inner,
            ttl_ms: None,
        }
    }

    /// The key columns of each side.
    pub fn on<L, R>(mut self, left: L, right: R) -> Self
    where
        L: IntoIterator,
        L::Item: Into<String>,
        R: IntoIterator,
        R::Item: Into<String>,
    {
        self.left_keys = left.into_iter().map(Into::into).collect();
        self.right_keys = right.into_iter().map(Into::into).collect();
        self
    }

    /// Regular joins: a state time-to-live in event time. Rows match only
    /// if their times are at most `ttl` apart, and a stored row is dropped
    /// once the watermark passes its time plus `ttl`, so state stays bounded.
    /// (Flink's TTL is in processing time, which makes results depend on
    /// timing; in event time the result is the same in every mode.)
    pub fn with_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl_ms = Some(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self
    }

    /// Inner (default), left, right or full outer.
    pub fn with_type(mut self, join_type: JoinType) -> Self {
        self.join_type = join_type;
        self
    }

    /// Checks the options (not the schemas: see [`JoinLayout::try_new`]).
    pub fn validate(&self) -> Result<()> {
        if self.left_keys.is_empty() || self.left_keys.len() != self.right_keys.len() {
            return Err(Error::option(
                "join keys",
                format!(
                    "need the same number (at least one) of key columns on each side, got {:?} and {:?}",
                    self.left_keys, self.right_keys
                ),
            ));
        }
        match self.kind {
            JoinKind::Window(w) => w.validate()?,
            _ if self.ttl_ms.is_some() && self.kind != JoinKind::Regular => {
                return Err(Error::option(
                    "join ttl",
                    "only regular joins take a TTL (window and interval joins are bounded already)",
                ));
            }
            JoinKind::Regular if self.ttl_ms.is_some_and(|t| t <= 0) => {
                return Err(Error::option("join ttl", "must be positive"));
            }
            JoinKind::Interval { lower_ms, upper_ms } if lower_ms > upper_ms => {
                return Err(Error::option(
                    "join interval",
                    format!("lower bound {lower_ms} ms is above the upper bound {upper_ms} ms"),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// True if this join needs event time on both inputs.
    pub fn needs_event_time(&self) -> bool {
        matches!(self.kind, JoinKind::Window(_) | JoinKind::Interval { .. })
            || self.ttl_ms.is_some()
    }

    /// True if rows at `left` and `right` (ms) may match under the kind's
    /// time condition (interval bounds or TTL); window joins check windows.
    pub fn times_match(&self, left: i64, right: i64) -> bool {
        match self.kind {
            JoinKind::Interval { lower_ms, upper_ms } => {
                interval_match(left, right, lower_ms, upper_ms)
            }
            JoinKind::Regular => self
                .ttl_ms
                .is_none_or(|ttl| left.abs_diff(right) <= ttl.unsigned_abs()),
            _ => true,
        }
    }

    /// True if the output is a changelog (`op` column): regular outer joins
    /// in pipelined mode retract a padded row when its first match arrives.
    pub fn emits_changelog(&self) -> bool {
        self.kind == JoinKind::Regular && self.join_type != JoinType::Inner
    }
}

/// One row of a side, as the join core sees it.
#[derive(Debug, Clone, Copy)]
pub struct SideRow {
    /// Where the row is (a caller-defined source index and row).
    pub at: (usize, usize),
    /// Its event time (0 for regular joins).
    pub time: i64,
    /// Its window, for `SameWindow` joins (start, end).
    pub window: (i64, i64),
}

/// One output row: left and right positions (`None` = padded) and window.
pub type OutRow = (
    Option<(usize, usize)>,
    Option<(usize, usize)>,
    Option<(i64, i64)>,
);

/// Row `at` of `side` (0 left, 1 right) padded with nulls on the other side.
pub fn padded(side: usize, at: (usize, usize), window: Option<(i64, i64)>) -> OutRow {
    if side == 0 {
        (Some(at), None, window)
    } else {
        (None, Some(at), window)
    }
}

/// The join of all rows of one key, both sides complete: what every
/// physical join must produce for that key (in some order).
pub fn join_group(spec: &JoinSpec, left: &[SideRow], right: &[SideRow], out: &mut Vec<OutRow>) {
    let ty = spec.join_type;
    match spec.kind {
        JoinKind::Window(Window::Session { gap_ms }) => {
            let mut lw: Vec<((i64, i64), usize)> = Vec::new();
            let mut rw: Vec<((i64, i64), usize)> = Vec::new();
            for (window, [l, r]) in sessions_of(left, right, gap_ms) {
                lw.extend(l.into_iter().map(|i| (window, i)));
                rw.extend(r.into_iter().map(|i| (window, i)));
            }
            lw.sort_unstable();
            rw.sort_unstable();
            join_by_window(ty, left, right, &lw, &rw, out);
        }
        JoinKind::Window(w) => {
            let windows = |rows: &[SideRow]| -> Vec<((i64, i64), usize)> {
                let mut v: Vec<((i64, i64), usize)> = rows
                    .iter()
                    .enumerate()
                    .flat_map(|(i, r)| {
                        w.windows_of_pane(w.pane_of(r.time))
                            .into_iter()
                            .filter(move |&(s, e)| s <= r.time && r.time < e)
                            .map(move |win| (win, i))
                    })
                    .collect();
                v.sort_unstable();
                v
            };
            join_by_window(ty, left, right, &windows(left), &windows(right), out);
        }
        JoinKind::SameWindow => {
            let windows = |rows: &[SideRow]| -> Vec<((i64, i64), usize)> {
                let mut v: Vec<_> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.window, i))
                    .collect();
                v.sort_unstable();
                v
            };
            join_by_window(ty, left, right, &windows(left), &windows(right), out);
        }
        JoinKind::Interval { .. } | JoinKind::Regular => {
            let mut right_matched = vec![false; right.len()];
            for l in left {
                let mut matched = false;
                for (j, r) in right.iter().enumerate() {
                    if spec.times_match(l.time, r.time) {
                        matched = true;
                        right_matched[j] = true;
                        out.push((Some(l.at), Some(r.at), None));
                    }
                }
                if !matched && ty.keeps_left() {
                    out.push((Some(l.at), None, None));
                }
            }
            if ty.keeps_right() {
                for (j, r) in right.iter().enumerate() {
                    if !right_matched[j] {
                        out.push((None, Some(r.at), None));
                    }
                }
            }
        }
    }
}

/// A session `[start, end)` and the indexes of its left and right rows.
pub type SessionRows = ((i64, i64), [Vec<usize>; 2]);

/// The sessions of one key over the rows of both sides: rows at most `gap`
/// apart (a row exactly `gap` after the last one still extends it, as in the
/// session window) form one session `[first, last + gap)`; returns each
/// session with the indexes of its left and right rows.
pub fn sessions_of(left: &[SideRow], right: &[SideRow], gap_ms: i64) -> Vec<SessionRows> {
    let mut all: Vec<(i64, usize, usize)> = left
        .iter()
        .enumerate()
        .map(|(i, r)| (r.time, 0, i))
        .chain(right.iter().enumerate().map(|(i, r)| (r.time, 1, i)))
        .collect();
    all.sort_unstable();
    let mut out: Vec<SessionRows> = Vec::new();
    for (t, side, i) in all {
        match out.last_mut() {
            Some(((_, end), members)) if t <= *end => {
                *end = (*end).max(t.saturating_add(gap_ms));
                members[side].push(i);
            }
            _ => {
                let mut members = [Vec::new(), Vec::new()];
                members[side].push(i);
                out.push(((t, t.saturating_add(gap_ms)), members));
            }
        }
    }
    out
}

/// True if `r.t + lower <= l.t <= r.t + upper`.
pub fn interval_match(left: i64, right: i64, lower_ms: i64, upper_ms: i64) -> bool {
    right.saturating_add(lower_ms) <= left && left <= right.saturating_add(upper_ms)
}

/// Joins rows grouped by window (`(window, row index)`, sorted).
pub(super) fn join_by_window(
    ty: JoinType,
    left: &[SideRow],
    right: &[SideRow],
    lw: &[((i64, i64), usize)],
    rw: &[((i64, i64), usize)],
    out: &mut Vec<OutRow>,
) {
    let (mut i, mut j) = (0, 0);
    while i < lw.len() || j < rw.len() {
        let w = match (lw.get(i), rw.get(j)) {
            (Some(a), Some(b)) => a.0.min(b.0),
            (Some(a), None) => a.0,
            (None, Some(b)) => b.0,
            (None, None) => unreachable!("loop condition"),
        };
        let i_end = i + lw[i..].iter().take_while(|x| x.0 == w).count();
        let j_end = j + rw[j..].iter().take_while(|x| x.0 == w).count();
        let (ls, rs) = (&lw[i..i_end], &rw[j..j_end]);
        for &(_, a) in ls {
            for &(_, b) in rs {
                out.push((Some(left[a].at), Some(right[b].at), Some(w)));
            }
        }
        if rs.is_empty() && ty.keeps_left() {
            out.extend(ls.iter().map(|&(_, a)| (Some(left[a].at), None, Some(w))));
        }
        if ls.is_empty() && ty.keeps_right() {
            out.extend(rs.iter().map(|&(_, b)| (None, Some(right[b].at), Some(w))));
        }
        i = i_end;
        j = j_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(times: &[i64]) -> Vec<SideRow> {
        times
            .iter()
            .enumerate()
            .map(|(i, &t)| SideRow {
                at: (0, i),
                time: t,
                window: (0, 0),
            })
            .collect()
    }

    #[test]
    fn sessions_merge_rows_exactly_gap_apart_across_both_sides() {
        // gap 10: left 0 and right 10 touch → [0, 20); left 31 → [31, 41)
        let got = sessions_of(&rows(&[0, 31]), &rows(&[10]), 10);
        let empty: Vec<usize> = Vec::new();
        assert_eq!(
            got,
            vec![((0, 20), [vec![0], vec![0]]), ((31, 41), [vec![1], empty])]
        );
    }

    #[test]
    fn interval_group_table() {
        // left at 10, 20; right at 5, 100: lower -5, upper +5 → 10 ⋈ 5 only
        let mut out = Vec::new();
        let spec = JoinSpec::interval_ms(-5, 5).with_type(JoinType::Full);
        join_group(&spec, &rows(&[10, 20]), &rows(&[5, 100]), &mut out);
        out.sort();
        assert_eq!(
            out,
            vec![
                (None, Some((0, 1)), None),
                (Some((0, 0)), Some((0, 0)), None),
                (Some((0, 1)), None, None),
            ]
        );
    }

    #[test]
    fn sliding_window_group_pads_per_window() {
        // size 10 slide 5: left at 7 is in [0,10) and [5,15); right at 12 only in [5,15) and [10,20)
        let w = Window::sliding(
            std::time::Duration::from_millis(10),
            std::time::Duration::from_millis(5),
        );
        let mut out = Vec::new();
        join_group(
            &JoinSpec::window(w).with_type(JoinType::Full),
            &rows(&[7]),
            &rows(&[12]),
            &mut out,
        );
        out.sort();
        assert_eq!(
            out,
            vec![
                (None, Some((0, 0)), Some((10, 20))),
                (Some((0, 0)), None, Some((0, 10))),
                (Some((0, 0)), Some((0, 0)), Some((5, 15))),
            ]
        );
    }
}
