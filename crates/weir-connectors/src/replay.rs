//! Time travel and replay pacing for bounded sources: replay only
//! `[from, until)` of the history, as fast as possible or paced by event
//! time (real time, or N times faster), so history can stand in for a live feed.
//!
//! Owns [`TimeRange`], [`ReplaySpeed`], [`Pacer`] and [`parse_time`]. May
//! use `weir_core::error` and the arrow crates.

use arrow_array::{BooleanArray, RecordBatch};
use std::time::{Duration, Instant};
use weir_core::error::{Error, Result};

/// Event times `[from, until)` (epoch ms); `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// First event time kept.
    pub from: Option<i64>,
    /// First event time no longer kept.
    pub until: Option<i64>,
}

impl TimeRange {
    /// True if `t` is in the range.
    pub fn contains(&self, t: i64) -> bool {
        self.from.is_none_or(|f| t >= f) && self.until.is_none_or(|u| t < u)
    }

    /// True if some time in `[min, max]` may be in the range (unknown
    /// bounds: assume yes).
    pub fn overlaps(&self, min: Option<i64>, max: Option<i64>) -> bool {
        let before = matches!((max, self.from), (Some(m), Some(f)) if m < f);
        let after = matches!((min, self.until), (Some(m), Some(u)) if m >= u);
        !before && !after
    }

    /// The rows of `batch` whose time (`times[i]`) is in the range.
    pub fn filter(&self, batch: RecordBatch, times: &[i64]) -> Result<RecordBatch> {
        if times.iter().all(|&t| self.contains(t)) {
            return Ok(batch);
        }
        let keep = BooleanArray::from_iter(times.iter().map(|&t| Some(self.contains(t))));
        Ok(arrow_select::filter::filter_record_batch(&batch, &keep)?)
    }
}

/// The slowest replay accepted (a thousandth of real time).
pub const MIN_SPEED: f64 = 0.001;

/// How fast a bounded source replays its rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplaySpeed {
    /// As fast as the job goes (the default).
    Max,
    /// Event time advances this many times faster than the wall clock (1 = real time).
    Times(f64),
}

impl std::str::FromStr for ReplaySpeed {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "max" | "fast" | "asap" => Ok(ReplaySpeed::Max),
            "realtime" | "real-time" | "real time" | "1x" => Ok(ReplaySpeed::Times(1.0)),
            _ => match t.trim_end_matches('x').parse::<f64>() {
                Ok(f) if (MIN_SPEED..=f64::MAX).contains(&f) => Ok(ReplaySpeed::Times(f)),
                _ => Err(Error::option(
                    "speed",
                    format!(
                        "`{s}` is not a speed: use max, realtime or a factor of at least {MIN_SPEED}x such as 10x"
                    ),
                )),
            },
        }
    }
}

/// Paces one reader: the first row it emits sets the origin, and a row at
/// event time `t` is due `(t - t0) / factor` after it.
///
/// ```text
///  first batch (max time t0) ─► origin (t0, now)
///  batch with max time t ─► due = origin.now + (t - t0) / factor
///  before due: the batch waits (its watermark too, so nothing is late downstream)
/// ```
#[derive(Debug, Clone)]
pub struct Pacer {
    // config
    factor: f64,
    first: Option<i64>,
    // state
    origin: Option<(i64, Instant)>,
}

impl Pacer {
    /// A pacer for `factor`× real time.
    pub fn new(factor: f64) -> Self {
        Pacer {
            factor,
            first: None,
            origin: None,
        }
    }

    /// A pacer whose origin is event time `t0` (the clock starts at the
    /// first call to [`due`](Self::due)), for generators that know where
    /// event time starts.
    pub fn starting_at(factor: f64, t0: i64) -> Self {
        Pacer::new(factor).with_first(t0)
    }

    fn with_first(mut self, t0: i64) -> Self {
        self.first = Some(t0);
        self
    }

    /// The speed factor.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// When rows up to event time `t` are due.
    pub fn due(&mut self, t: i64) -> Instant {
        let first = self.first.unwrap_or(t);
        let (t0, start) = *self.origin.get_or_insert((first, Instant::now()));
        let ms = (t.saturating_sub(t0)).max(0) as f64 / self.factor;
        // centuries away is "never" in practice: cap instead of overflowing
        let wait = Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX);
        start
            .checked_add(wait)
            .unwrap_or(start + Duration::from_secs(100 * 365 * 86_400))
    }
}

/// What a [`HeldBatch`] gives on a poll.
#[derive(Debug)]
pub enum Release {
    /// Nothing is held.
    Nothing,
    /// A batch is held and not due yet: the caller napped this long (up to
    /// 20 ms). Report `Ready`, not `Pending`, so a reader holding rows is
    /// never taken for idle by the watermark (which would let other
    /// readers' watermarks pass them); tell the nap to `Ctx::record_wait`,
    /// so a run's figures show it as waiting, not working.
    Waiting(Duration),
    /// The held batch is due: emit it (then the watermark after it).
    Due(RecordBatch),
}

/// A paced source's batch waiting for its deadline.
#[derive(Debug, Default)]
pub struct HeldBatch {
    held: Option<(RecordBatch, Instant)>,
}

impl HeldBatch {
    /// Holds `batch` until `due`.
    pub fn hold(&mut self, batch: RecordBatch, due: Instant) {
        self.held = Some((batch, due));
    }

    /// Releases the batch once due; before that naps at most 20 ms, which
    /// keeps cancellation and stop requests responsive.
    pub fn poll(&mut self) -> Release {
        let Some((batch, due)) = self.held.take() else {
            return Release::Nothing;
        };
        let now = Instant::now();
        if now < due {
            let nap = (due - now).min(Duration::from_millis(20));
            std::thread::sleep(nap);
            self.held = Some((batch, due));
            return Release::Waiting(nap);
        }
        Release::Due(batch)
    }
}

/// Parses a point in time: epoch milliseconds (`1793491500000`) or an
/// RFC 3339 UTC time (`2026-11-01T00:05:00Z`, fractional seconds allowed).
///
/// # Examples
/// ```
/// use weir::connectors::replay::parse_time;
/// assert_eq!(parse_time("from", "1970-01-01T00:00:01.5Z").unwrap(), 1500);
/// assert_eq!(parse_time("from", "2026-11-01T00:00:00Z").unwrap(), 1_793_491_200_000);
/// assert_eq!(parse_time("from", "42").unwrap(), 42);
/// assert!(parse_time("from", "yesterday").is_err());
/// ```
pub fn parse_time(option: &str, text: &str) -> Result<i64> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        Error::option(
            option,
            format!(
                "`{text}` is not a time: use epoch ms or RFC 3339 UTC such as 2026-11-01T00:05:00Z"
            ),
        )
    };
    let t = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix("+00:00"))
        .ok_or_else(bad)?;
    let (date, clock) = t.split_once(['T', ' ']).ok_or_else(bad)?;
    // digits only: no signs, no spaces
    let num = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 4 {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let d: Vec<&str> = date.split('-').collect();
    let c: Vec<&str> = clock.split(':').collect();
    if d.len() != 3 || c.len() != 3 {
        return Err(bad());
    }
    let (y, m, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (sec, frac) = c[2].split_once('.').unwrap_or((c[2], ""));
    let (h, min, s) = (num(c[0])?, num(c[1])?, num(sec)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m)
        || day < 1
        || day > month_days[(m - 1) as usize]
        || h > 23
        || min > 59
        || s > 60
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let ms_frac = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        num(&digits)?
    };
    // days since 1970-01-01 (proleptic Gregorian, Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + h) * 60 + min) * 60_000 + s * 1000 + ms_frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_overlap_and_filter() {
        let r = TimeRange {
            from: Some(10),
            until: Some(20),
        };
        assert!(r.contains(10) && r.contains(19) && !r.contains(20) && !r.contains(9));
        assert!(r.overlaps(Some(0), Some(10)) && !r.overlaps(Some(0), Some(9)));
        assert!(!r.overlaps(Some(20), Some(30)) && r.overlaps(None, None));
        let b = RecordBatch::try_from_iter([(
            "t",
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![5, 10, 15, 20])) as _,
        )])
        .unwrap();
        assert_eq!(r.filter(b, &[5, 10, 15, 20]).unwrap().num_rows(), 2);
    }

    #[test]
    fn speeds_parse() {
        assert_eq!("max".parse::<ReplaySpeed>().unwrap(), ReplaySpeed::Max);
        assert_eq!(
            "realtime".parse::<ReplaySpeed>().unwrap(),
            ReplaySpeed::Times(1.0)
        );
        assert_eq!(
            "60x".parse::<ReplaySpeed>().unwrap(),
            ReplaySpeed::Times(60.0)
        );
        assert!(
            "-2x".parse::<ReplaySpeed>().is_err() && "fast-ish".parse::<ReplaySpeed>().is_err()
        );
        assert!("1e-15x".parse::<ReplaySpeed>().is_err());
    }

    #[test]
    fn pacing_is_relative_to_the_first_row() {
        let mut p = Pacer::new(10.0);
        let start = p.due(1_000);
        assert_eq!(p.due(2_000) - start, Duration::from_millis(100));
        assert_eq!(p.due(500), start, "earlier rows are due at once");
    }

    #[test]
    fn rfc3339_table() {
        assert_eq!(parse_time("t", "1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time("t", "2000-03-01T00:00:00Z").unwrap(),
            951_868_800_000
        );
        assert_eq!(
            parse_time("t", "2024-02-29T12:30:15.25Z").unwrap(),
            1_709_209_815_250
        );
        assert!(parse_time("t", "2024-13-01T00:00:00Z").is_err());
        assert!(parse_time("t", "2026-02-30T00:00:00Z").is_err());
        assert!(parse_time("t", "2026-02-01T-5:00:00Z").is_err());
        assert!(parse_time("t", "2026-02-01T05:00:00.-5Z").is_err());
        assert!(parse_time("t", "99999999999999999-01-01T00:00:00Z").is_err());
        assert!(parse_time("t", "2024-01-01T00:00:00+02:00").is_err());
    }
}
