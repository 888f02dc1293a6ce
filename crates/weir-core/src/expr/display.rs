//! The text form of expressions: printing.
//!
//! Owns `Display` for [`Expr`] and [`ScalarValue`], the quoting of column
//! names and string literals, and the table of type names shared with the
//! parser. The printed form is SQL, which `weir::expr::parse_expr` reads back to an
//! equal `Expr`: every binary operation, `not` and `is [not] null` is
//! parenthesised, so precedence never matters. May use the arrow schema
//! types, nothing else.

use std::fmt;

use arrow_schema::{DataType, TimeUnit};

use super::{Expr, ScalarValue};

/// Words SQL's parser reserves; a column with one of these names is printed
/// double-quoted.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "is",
    "null",
    "true",
    "false",
    "cast",
    "as",
    "case",
    "when",
    "then",
    "else",
    "end",
    "like",
    "ilike",
    "in",
    "between",
    "escape",
    "similar",
    "distinct",
    "from",
    "interval",
    "timestamp",
    "date",
    "time",
    "exists",
    "select",
    "with",
    "extract",
    "substring",
    "trim",
    "position",
    "floor",
    "ceil",
    "ceiling",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
];

/// Type names accepted by `cast(.. as TYPE)`. The first name listed for a
/// type is the one printed.
const TYPE_NAMES: &[(&str, DataType)] = &[
    ("boolean", DataType::Boolean),
    ("bool", DataType::Boolean),
    ("tinyint", DataType::Int8),
    ("int8", DataType::Int8),
    ("smallint", DataType::Int16),
    ("int16", DataType::Int16),
    ("int", DataType::Int32),
    ("int32", DataType::Int32),
    ("integer", DataType::Int32),
    ("bigint", DataType::Int64),
    ("int64", DataType::Int64),
    ("uint8", DataType::UInt8),
    ("uint16", DataType::UInt16),
    ("uint32", DataType::UInt32),
    ("uint64", DataType::UInt64),
    ("float16", DataType::Float16),
    ("float", DataType::Float32),
    ("float32", DataType::Float32),
    ("double", DataType::Float64),
    ("float64", DataType::Float64),
    ("string", DataType::Utf8),
    ("utf8", DataType::Utf8),
    ("varchar", DataType::Utf8),
    ("large_utf8", DataType::LargeUtf8),
    ("utf8_view", DataType::Utf8View),
    ("binary", DataType::Binary),
    ("date32", DataType::Date32),
    ("date64", DataType::Date64),
    ("timestamp_s", DataType::Timestamp(TimeUnit::Second, None)),
    (
        "timestamp_ms",
        DataType::Timestamp(TimeUnit::Millisecond, None),
    ),
    (
        "timestamp_us",
        DataType::Timestamp(TimeUnit::Microsecond, None),
    ),
    (
        "timestamp_ns",
        DataType::Timestamp(TimeUnit::Nanosecond, None),
    ),
];

/// The type called `name` (case-insensitive) in `cast(.. as name)`: SQL's
/// names and Arrow's (`int8` … `uint64`, `float16` … `float64`, `utf8`,
/// `large_utf8`, `utf8_view`, `date32`, `date64`, `timestamp_s/ms/us/ns`).
pub fn type_from_name(name: &str) -> Option<DataType> {
    TYPE_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, t)| t.clone())
}

/// Every accepted type name, comma-separated, for error messages.
pub fn type_names() -> String {
    let names: Vec<&str> = TYPE_NAMES.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

/// The printed name of `dt`, if the parser knows one.
fn type_name(dt: &DataType) -> Option<&'static str> {
    TYPE_NAMES.iter().find(|(_, t)| t == dt).map(|(n, _)| *n)
}

/// True if `name` can be printed bare: an identifier that is not a keyword.
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_well
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// Writes `text` between `quote`s, doubling any `quote` inside it.
fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str, quote: char) -> fmt::Result {
    let doubled: String = [quote, quote].iter().collect();
    write!(
        f,
        "{quote}{}{quote}",
        text.replace(quote, &doubled),
        quote = quote
    )
}

impl fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScalarValue::Null => f.write_str("null"),
            ScalarValue::Boolean(b) => write!(f, "{b}"),
            ScalarValue::Int64(v) => write!(f, "{v}"),
            // `{:?}` is the shortest form that reads back to the same bits
            // and always has a `.` or an exponent, so it lexes as a float.
            ScalarValue::Float64(v) if v.is_finite() => write!(f, "{v:?}"),
            // 1e999 overflows to infinity when read back.
            ScalarValue::Float64(v) if v.is_infinite() && *v > 0.0 => f.write_str("1e999"),
            ScalarValue::Float64(v) if v.is_infinite() => f.write_str("-1e999"),
            // NaN has no literal; this evaluates to NaN (but NaN != NaN, so
            // it cannot round-trip to an equal `Expr` anyway).
            ScalarValue::Float64(_) => f.write_str("(0.0 / 0.0)"),
            ScalarValue::Utf8(s) => write_quoted(f, s, '\''),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(name) if is_plain_identifier(name) => f.write_str(name),
            Expr::Column(name) => write_quoted(f, name, '"'),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Binary { left, op, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "(not {e})"),
            // The parser folds `-` followed by a number into a negative
            // literal, and `--` starts an SQL comment: only a column is
            // negated without parentheses.
            Expr::Negative(e) => match e.as_ref() {
                Expr::Column(_) => write!(f, "-{e}"),
                _ => write!(f, "-({e})"),
            },
            Expr::IsNull(e) => write!(f, "({e} is null)"),
            Expr::IsNotNull(e) => write!(f, "({e} is not null)"),
            Expr::Cast { expr, to } => match type_name(to) {
                Some(name) => write!(f, "cast({expr} as {name})"),
                // Not parseable, but still tells a reader what was meant.
                None => write!(f, "cast({expr} as {to})"),
            },
            Expr::Case {
                branches,
                otherwise,
            } => {
                f.write_str("(case")?;
                for (c, v) in branches {
                    write!(f, " when {c} then {v}")?;
                }
                if let Some(e) = otherwise {
                    write!(f, " else {e}")?;
                }
                f.write_str(" end)")
            }
            Expr::Function { func, args } => {
                write!(f, "{}(", func.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let not = if *negated { "not " } else { "" };
                let op = if *case_insensitive { "ilike" } else { "like" };
                write!(f, "({expr} {not}{op} {pattern})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{col, lit};
    use super::*;

    #[test]
    fn prints_fully_parenthesised() {
        let e = col("a")
            .add(lit(1))
            .mul(col("b"))
            .gt(lit(2.5))
            .or(col("c").not());
        assert_eq!(e.to_string(), "((((a + 1) * b) > 2.5) or (not c))");
        assert_eq!(col("a").is_null().to_string(), "(a is null)");
        assert_eq!(col("a").is_not_null().to_string(), "(a is not null)");
        assert_eq!(
            col("a")
                .cast(DataType::Timestamp(TimeUnit::Millisecond, None))
                .to_string(),
            "cast(a as timestamp_ms)"
        );
    }

    #[test]
    fn quotes_names_and_strings() {
        assert_eq!(col("my col").to_string(), "\"my col\"");
        assert_eq!(col("Or").to_string(), "\"Or\"");
        assert_eq!(col("a\"b").to_string(), "\"a\"\"b\"");
        assert_eq!(col("_x9").to_string(), "_x9");
        assert_eq!(col("9x").to_string(), "\"9x\"");
        assert_eq!(lit("it's").to_string(), "'it''s'");
    }

    #[test]
    fn prints_numbers_so_they_read_back() {
        assert_eq!(lit(1.0).to_string(), "1.0");
        assert_eq!(lit(1e300).to_string(), "1e300");
        assert_eq!(lit(-0.25).to_string(), "-0.25");
        assert_eq!(lit(f64::INFINITY).to_string(), "1e999");
        assert_eq!(lit(-5).to_string(), "-5");
        assert_eq!(lit(5).neg().to_string(), "-(5)");
        assert_eq!(lit(-5).neg().to_string(), "-(-5)");
        assert_eq!(col("a").neg().to_string(), "-a");
    }

    #[test]
    fn type_names_resolve_case_insensitively() {
        assert_eq!(type_from_name("BIGINT"), Some(DataType::Int64));
        assert_eq!(type_from_name("Double"), Some(DataType::Float64));
        assert_eq!(type_from_name("varchar"), Some(DataType::Utf8));
        assert_eq!(type_from_name("nope"), None);
        assert_eq!(type_name(&DataType::Int32), Some("int"));
    }
}
