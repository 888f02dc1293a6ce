//! Time built-ins, in UTC. A timestamp argument is a `Timestamp` column or
//! `Int64` milliseconds since the epoch (SQL's `TIMESTAMP(3)` in weir);
//! `date_trunc` returns the kind it was given (a `Timestamp` in
//! milliseconds), `to_timestamp` returns milliseconds. Formats are Java's
//! `SimpleDateFormat` patterns, as in Flink (`yyyy-MM-dd HH:mm:ss.SSS`);
//! a letter weir does not know is refused by name. Text that does not
//! parse gives null (Flink's rule), a bad format is an error.

use std::sync::Arc;

use arrow_arith::temporal::{date_part, DatePart};
use arrow_array::{ArrayRef, Int64Array, StringArray};
use arrow_cast::cast;
use arrow_schema::{ArrowError, DataType, TimeUnit};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use weir_core::expr::ColumnarValue;

use super::{ints, literal_str, millis, signature, strings, Builtin, Kind};

const S: Kind = Kind::Str;
const T: Kind = Kind::Time;
const I: Kind = Kind::Int;

/// Flink's default format for `to_timestamp`, `from_unixtime`, ….
const DEFAULT_FORMAT: &str = "yyyy-MM-dd HH:mm:ss";

macro_rules! part {
    ($name:literal, $part:expr) => {
        Builtin {
            name: $name,
            ret: |a| signature(a, &[T], &[]).map(|_| DataType::Int64),
            run: |a, n| part(a, n, $part),
        }
    };
}

pub(super) const BUILTINS: &[Builtin] = &[
    part!("year", DatePart::Year),
    part!("quarter", DatePart::Quarter),
    part!("month", DatePart::Month),
    part!("week", DatePart::WeekISO),
    part!("dayofyear", DatePart::DayOfYear),
    part!("dayofmonth", DatePart::Day),
    part!("dayofweek", DatePart::DayOfWeekSunday1),
    part!("hour", DatePart::Hour),
    part!("minute", DatePart::Minute),
    part!("second", DatePart::Second),
    part!("millisecond", DatePart::Millisecond),
    Builtin {
        name: "date_trunc",
        ret: |a| {
            signature(a, &[S, T], &[])?;
            Ok(match &a[1] {
                DataType::Timestamp(_, tz) => {
                    DataType::Timestamp(TimeUnit::Millisecond, tz.clone())
                }
                _ => DataType::Int64,
            })
        },
        run: date_trunc,
    },
    Builtin {
        name: "date_format",
        ret: |a| signature(a, &[T, S], &[]).map(|_| DataType::Utf8),
        run: date_format,
    },
    Builtin {
        name: "to_timestamp",
        ret: |a| signature(a, &[S], &[S]).map(|_| DataType::Int64),
        run: |a, n| parse_millis(a, n, "to_timestamp", 1),
    },
    Builtin {
        name: "unix_timestamp",
        ret: |a| signature(a, &[S], &[S]).map(|_| DataType::Int64),
        run: |a, n| parse_millis(a, n, "unix_timestamp", 1000),
    },
    Builtin {
        name: "from_unixtime",
        ret: |a| signature(a, &[I], &[S]).map(|_| DataType::Utf8),
        run: from_unixtime,
    },
];

/// A date part of each timestamp, as `Int64`.
fn part(a: &[ColumnarValue], n: usize, p: DatePart) -> Result<ArrayRef, ArrowError> {
    let ms: ArrayRef = Arc::new(millis(&a[0], n)?);
    let ts = cast(&ms, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    cast(&date_part(&ts, p)?, &DataType::Int64)
}

/// The units `date_trunc` (and SQL's `FLOOR(ts TO unit)`) knows.
pub(crate) const UNITS: &[&str] = &[
    "millisecond",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "quarter",
    "year",
];

/// `date_trunc(unit, ts)`: the start of the unit holding `ts` (weeks start
/// on Monday, as in ISO 8601).
fn date_trunc(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let unit = literal_str(&a[0], "date_trunc", "unit")?
        .unwrap_or_default()
        .to_ascii_lowercase();
    let ms = millis(&a[1], n)?;
    const DAY: i64 = 86_400_000;
    let fixed = |u: i64| -> Int64Array { ms.unary(|v| v.div_euclid(u) * u) };
    let out: Int64Array = match unit.as_str() {
        "millisecond" => ms.clone(),
        "second" => fixed(1_000),
        "minute" => fixed(60_000),
        "hour" => fixed(3_600_000),
        "day" => fixed(DAY),
        // 1970-01-01 was a Thursday: shift so weeks start on Monday
        "week" => ms.unary(|v| (v + 3 * DAY).div_euclid(7 * DAY) * 7 * DAY - 3 * DAY),
        "month" | "quarter" | "year" => ms
            .iter()
            .map(|v| {
                let d = DateTime::from_timestamp_millis(v?)?.date_naive();
                let month = match unit.as_str() {
                    "month" => d.month(),
                    "quarter" => (d.month() - 1) / 3 * 3 + 1,
                    _ => 1,
                };
                let start = NaiveDate::from_ymd_opt(d.year(), month, 1)?;
                Some(start.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
            })
            .collect(),
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "date_trunc(): unknown unit {other:?}; known: {}",
                UNITS.join(", ")
            )))
        }
    };
    let want = match a[1].data_type() {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        _ => DataType::Int64,
    };
    cast(&(Arc::new(out) as ArrayRef), &want)
}

/// A Java `SimpleDateFormat` pattern as a chrono `strftime` format.
pub(crate) fn java_format(pattern: &str) -> Result<String, ArrowError> {
    let bad =
        |what: String| ArrowError::InvalidArgumentError(format!("date format {pattern:?}: {what}"));
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        if c == '\'' {
            // 'quoted text', '' is a quote
            if run >= 2 && run % 2 == 0 {
                out.push_str(&"'".repeat(run / 2));
                i += run;
                continue;
            }
            let mut j = i + 1;
            loop {
                match (chars.get(j), chars.get(j + 1)) {
                    (None, _) => return Err(bad("an unclosed quote".into())),
                    (Some('\''), Some('\'')) => {
                        out.push('\'');
                        j += 2;
                    }
                    (Some('\''), _) => break,
                    (Some(&q), _) => {
                        push_literal(&mut out, q);
                        j += 1;
                    }
                }
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let spec = match (c, run) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('D', _) => "%j",
            ('Z' | 'X', _) => "%z",
            _ => {
                return Err(bad(format!(
                    "the letter {:?} (×{run}) is not supported; use y M d H h m s S a E D Z, \
                     and quote text ('T')",
                    c
                )))
            }
        };
        out.push_str(spec);
        i += run;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// The constant format argument (or the default) as strftime.
fn format_arg(a: Option<&ColumnarValue>, function: &str) -> Result<Option<String>, ArrowError> {
    match a {
        None => java_format(DEFAULT_FORMAT).map(Some),
        Some(v) => literal_str(v, function, "format")?
            .map(|f| java_format(&f))
            .transpose(),
    }
}

fn format_millis(ms: &Int64Array, fmt: &str) -> StringArray {
    ms.iter()
        .map(|v| DateTime::<Utc>::from_timestamp_millis(v?).map(|t| t.format(fmt).to_string()))
        .collect()
}

/// `date_format(ts, format)`.
fn date_format(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let ms = millis(&a[0], n)?;
    let Some(fmt) = format_arg(a.get(1), "date_format")? else {
        return Ok(Arc::new(StringArray::new_null(n)));
    };
    Ok(Arc::new(format_millis(&ms, &fmt)))
}

/// `from_unixtime(seconds [, format])`.
fn from_unixtime(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let secs = ints(&a[0], n)?;
    let ms: Int64Array = secs.iter().map(|s| s?.checked_mul(1000)).collect();
    let Some(fmt) = format_arg(a.get(1), "from_unixtime")? else {
        return Ok(Arc::new(StringArray::new_null(n)));
    };
    Ok(Arc::new(format_millis(&ms, &fmt)))
}

/// Parses text to milliseconds (then divides by `per`); null where the text
/// does not parse. Without a format, `yyyy-MM-dd HH:mm:ss` with an optional
/// fraction and an optional `T` are accepted.
fn parse_millis(
    a: &[ColumnarValue],
    n: usize,
    function: &str,
    per: i64,
) -> Result<ArrayRef, ArrowError> {
    let s = strings(&a[0], n)?;
    let fmt = match a.get(1) {
        None => None,
        Some(v) => match literal_str(v, function, "format")? {
            Some(f) => Some(java_format(&f)?),
            None => return Ok(Arc::new(Int64Array::new_null(n))),
        },
    };
    let parse = |text: &str| -> Option<i64> {
        let t = match &fmt {
            Some(f) => NaiveDateTime::parse_from_str(text, f).ok().or_else(|| {
                NaiveDate::parse_from_str(text, f)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })?,
            None => ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text.trim(), f).ok())
                .or_else(|| {
                    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                })?,
        };
        Some(t.and_utc().timestamp_millis().div_euclid(per))
    };
    let out: Int64Array = s.iter().map(|v| v.and_then(parse)).collect();
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::super::tests::call;
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use weir_core::expr::{lit, Expr};

    /// 2024-02-29 13:45:07.123 UTC (a Thursday), by hand:
    /// 19782 days × 86 400 000 + 13 h 45 m 7.123 s.
    const T0: i64 = 19_782 * 86_400_000 + (13 * 3600 + 45 * 60 + 7) * 1000 + 123;

    fn int(name: &str, args: Vec<Expr>) -> Option<i64> {
        let a = call(name, args).unwrap_or_else(|e| panic!("{name}: {e}"));
        a.as_primitive::<Int64Type>().iter().next().flatten()
    }

    fn text(name: &str, args: Vec<Expr>) -> Option<String> {
        let a = call(name, args).unwrap_or_else(|e| panic!("{name}: {e}"));
        a.as_string::<i32>()
            .iter()
            .next()
            .flatten()
            .map(str::to_string)
    }

    #[test]
    fn date_parts_of_a_known_instant() {
        for (name, want) in [
            ("year", 2024),
            ("quarter", 1),
            ("month", 2),
            ("dayofmonth", 29),
            ("dayofyear", 60),
            ("dayofweek", 5), // Thursday, Sunday = 1
            ("week", 9),
            ("hour", 13),
            ("minute", 45),
            ("second", 7),
            ("millisecond", 123),
        ] {
            assert_eq!(int(name, vec![lit(T0)]), Some(want), "{name}");
        }
    }

    #[test]
    fn truncation_to_every_unit() {
        let day = 19_782 * 86_400_000;
        for (unit, want) in [
            ("millisecond", T0),
            ("second", T0 - 123),
            ("minute", T0 - 7_123),
            ("hour", day + 13 * 3_600_000),
            ("day", day),
            ("week", day - 3 * 86_400_000), // Monday 2024-02-26
            ("month", day - 28 * 86_400_000),
            ("quarter", (19_782 - 59) * 86_400_000), // 2024-01-01
            ("year", (19_782 - 59) * 86_400_000),
        ] {
            assert_eq!(
                int("date_trunc", vec![lit(unit), lit(T0)]),
                Some(want),
                "{unit}"
            );
        }
        // before the epoch, floors (not truncates toward zero)
        assert_eq!(int("date_trunc", vec![lit("second"), lit(-1)]), Some(-1000));
        let err = call("date_trunc", vec![lit("fortnight"), lit(0)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown unit \"fortnight\""), "{err}");
    }

    #[test]
    fn formats_and_parses_java_patterns() {
        assert_eq!(
            text("date_format", vec![lit(T0), lit("yyyy-MM-dd HH:mm:ss.SSS")]),
            Some("2024-02-29 13:45:07.123".into())
        );
        assert_eq!(
            text(
                "date_format",
                vec![lit(T0), lit("yyyyMMdd'T'HH 'o''clock' 100%")]
            ),
            Some("20240229T13 o'clock 100%".into())
        );
        assert_eq!(
            int("to_timestamp", vec![lit("2024-02-29 13:45:07.123")]),
            Some(T0)
        );
        assert_eq!(
            int(
                "to_timestamp",
                vec![lit("29/02/2024 13:45"), lit("dd/MM/yyyy HH:mm")]
            ),
            Some(T0 - 7_123)
        );
        assert_eq!(
            int("to_timestamp", vec![lit("2024-02-29"), lit("yyyy-MM-dd")]),
            Some(19_782 * 86_400_000)
        );
        assert_eq!(int("to_timestamp", vec![lit("not a time")]), None);
        assert_eq!(
            int("unix_timestamp", vec![lit("1970-01-01 00:01:40")]),
            Some(100)
        );
        assert_eq!(
            text("from_unixtime", vec![lit(100)]),
            Some("1970-01-01 00:01:40".into())
        );
        let err = call("date_format", vec![lit(0), lit("yyyy-QQ")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("the letter 'Q'"), "{err}");
    }

    #[test]
    fn timestamp_columns_keep_their_kind() {
        let ts: ArrayRef = Arc::new(arrow_array::TimestampMicrosecondArray::from(vec![
            T0 * 1000 + 999,
        ]));
        let v = ColumnarValue::Array(ts);
        let out = date_trunc(
            &[
                ColumnarValue::Scalar(Arc::new(StringArray::from(vec!["second"]))),
                v,
            ],
            1,
        )
        .unwrap();
        assert_eq!(
            out.data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        );
        let out = cast(&out, &DataType::Int64).unwrap();
        assert_eq!(out.as_primitive::<Int64Type>().value(0), T0 - 123);
    }
}
