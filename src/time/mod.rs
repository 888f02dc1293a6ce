//! Event time: watermark strategies and generators, the multi-input
//! watermark tracker, window assigners, and reading a batch's time column.
//!
//! May use `error`, `message` and arrow. Knows nothing of operators or executors.

mod assigner;
mod column;
mod split;
mod tracker;
mod watermark;
mod window;

pub use assigner::Window;
pub use column::{event_times, validate_time_column};
pub use split::SplitClock;
pub use tracker::WatermarkTracker;
pub use watermark::{GeneratorState, WatermarkGenerator, WatermarkStrategy};
pub use window::TumblingWindow;

use crate::{Error, Result};
use std::time::Duration;

/// Parses a duration such as `500ms`, `30s`, `9m`, `2h`, `1d` (a bare number is milliseconds).
///
/// `option` names the field in errors.
pub fn parse_duration(option: &str, text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        Error::option(
            option,
            format!("`{text}` is not a duration (examples: 500ms, 30s, 9m, 2h)"),
        )
    })?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => value,
        "s" | "sec" | "secs" => value * 1e3,
        "m" | "min" | "mins" => value * 60e3,
        "h" | "hour" | "hours" => value * 3600e3,
        "d" | "day" | "days" => value * 86_400e3,
        other => {
            return Err(Error::option(
                option,
                format!("unknown unit `{other}` in `{text}` (use ms, s, m, h or d)"),
            ))
        }
    };
    if !ms.is_finite() || ms < 0.0 {
        return Err(Error::option(option, format!("`{text}` must be >= 0")));
    }
    Ok(Duration::from_millis(ms.round() as u64))
}

/// Milliseconds of `d` as `i64`, saturating.
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
    }
}
