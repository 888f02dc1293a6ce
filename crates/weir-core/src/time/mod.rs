//! Event time: watermark strategies and generators, the multi-input
//! watermark tracker, window assigners, and reading a batch's time column.
//!
//! May use `error`, `message` and arrow. Knows nothing of operators or executors.

mod assigner;
mod column;
mod lateness;
mod split;
mod tracker;
mod watermark;
mod window;

pub use assigner::Window;
pub use column::{event_times, validate_time_column};
pub use lateness::LatenessRule;
pub use split::SplitClock;
pub use tracker::WatermarkTracker;
pub use watermark::{GeneratorState, WatermarkGenerator, WatermarkStrategy};
pub use window::TumblingWindow;

use crate::error::{Error, Result};
use std::time::Duration;

/// Parses a duration such as `500ms`, `30s`, `9m`, `2h`, `1d` (a bare number is milliseconds).
///
/// `option` names the field in errors. Whole numbers are exact; a fraction
/// (`1.5s`) is rounded to the millisecond. Durations beyond `i64::MAX`
/// milliseconds (about 292 million years) are refused, never saturated.
pub fn parse_duration(option: &str, text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let not_a_duration = || {
        Error::option(
            option,
            format!("`{text}` is not a duration (examples: 500ms, 30s, 9m, 2h)"),
        )
    };
    let per_unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1,
        "s" | "sec" | "secs" => 1_000,
        "m" | "min" | "mins" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        other => {
            return Err(Error::option(
                option,
                format!("unknown unit `{other}` in `{text}` (use ms, s, m, h or d)"),
            ))
        }
    };
    let too_large = || {
        Error::option(
            option,
            format!(
                "`{text}` is out of range: at most {} ms (about 292 million years)",
                i64::MAX
            ),
        )
    };
    let ms: u64 = if num.contains('.') {
        let value: f64 = num.parse().map_err(|_| not_a_duration())?;
        let ms = (value * per_unit as f64).round();
        // 2^63 is the first f64 past i64::MAX
        if !ms.is_finite() || ms >= 9_223_372_036_854_775_808.0 {
            return Err(too_large());
        }
        ms as u64
    } else {
        if num.is_empty() {
            return Err(not_a_duration());
        }
        num.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(per_unit))
            .ok_or_else(too_large)?
    };
    if i64::try_from(ms).is_err() {
        return Err(too_large());
    }
    Ok(Duration::from_millis(ms))
}

/// Milliseconds of `d` as `i64`, saturating (watermark delays and
/// lateness: a bound past `i64::MAX` means "never").
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds of a window length or offset: [`OUT_OF_RANGE_MS`] past
/// `i64::MAX`, which [`Window::validate`] refuses (a window bound must never
/// saturate).
pub(crate) fn window_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(OUT_OF_RANGE_MS)
}

/// What [`window_ms`] gives for a duration beyond `i64::MAX` ms.
pub(crate) const OUT_OF_RANGE_MS: i64 = i64::MIN;

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
pub fn format_event_time(ms: i64) -> String {
    if ms == i64::MAX {
        return "end".into();
    }
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        let cases = [
            ("250", 250),
            ("250ms", 250),
            ("30s", 30_000),
            ("1.5s", 1_500),
            ("9m", 540_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_duration("x", text).unwrap().as_millis(), ms, "{text}");
        }
        let err = parse_duration("watermark_delay", "30 parsecs").unwrap_err();
        assert!(err.to_string().contains("watermark_delay"), "{err}");
        assert!(parse_duration("x", "abc").is_err());
        assert!(parse_duration("x", "s").is_err());
        assert!(parse_duration("x", "-5s").is_err());
    }

    #[test]
    fn durations_beyond_i64_milliseconds_are_refused_not_saturated() {
        let max = i64::MAX.to_string();
        assert_eq!(
            parse_duration("x", &max).unwrap().as_millis(),
            i64::MAX as u128,
            "exact, not through f64"
        );
        for text in [
            "99999999999999999d",
            "9223372036854775808",
            "9223372036854776s",
            "1e400",
            "106751991168d",
            "99999999999999999999999999ms",
            "1.5e19",
            "9300000000000000000.5",
        ] {
            match parse_duration("window.size", text) {
                Ok(d) => panic!("{text} gave {d:?}"),
                Err(e) => assert!(e.to_string().contains("window.size"), "{text}: {e}"),
            }
        }
        assert!(parse_duration("x", "106751991167d").is_ok());
    }
}
