//! String built-ins. Lengths and positions count characters (not bytes),
//! positions start at 1 (SQL's convention), except `split_index`'s index,
//! which starts at 0 (Flink's). Regular expressions use the `regex`
//! crate's syntax (Perl-like, no look-around or back-references); a
//! pattern must be a constant and is compiled once per batch.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Int32Array, Int64Array, StringArray};
use arrow_schema::{ArrowError, DataType};
use regex::Regex;
use weir_core::expr::ColumnarValue;

use super::{ints, literal_str, signature, strings, Builtin, Kind};

const S: Kind = Kind::Str;
const I: Kind = Kind::Int;

pub(super) const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "upper",
        ret: |a| signature(a, &[S], &[]).map(|_| DataType::Utf8),
        run: |a, n| map1(a, n, |s| Some(s.to_uppercase())),
    },
    Builtin {
        name: "lower",
        ret: |a| signature(a, &[S], &[]).map(|_| DataType::Utf8),
        run: |a, n| map1(a, n, |s| Some(s.to_lowercase())),
    },
    Builtin {
        name: "initcap",
        ret: |a| signature(a, &[S], &[]).map(|_| DataType::Utf8),
        run: |a, n| map1(a, n, |s| Some(initcap(s))),
    },
    Builtin {
        name: "reverse",
        ret: |a| signature(a, &[S], &[]).map(|_| DataType::Utf8),
        run: |a, n| map1(a, n, |s| Some(s.chars().rev().collect())),
    },
    Builtin {
        name: "char_length",
        ret: |a| signature(a, &[S], &[]).map(|_| DataType::Int32),
        run: char_length,
    },
    Builtin {
        name: "character_length",
        ret: |a| signature(a, &[S], &[]).map(|_| DataType::Int32),
        run: char_length,
    },
    Builtin {
        name: "length",
        ret: |a| signature(a, &[S], &[]).map(|_| DataType::Int32),
        run: char_length,
    },
    Builtin {
        name: "concat",
        ret: |a| variadic_strings(a, 1).map(|_| DataType::Utf8),
        run: concat,
    },
    Builtin {
        name: "concat_ws",
        ret: |a| variadic_strings(a, 2).map(|_| DataType::Utf8),
        run: concat_ws,
    },
    Builtin {
        name: "substring",
        ret: |a| signature(a, &[S, I], &[I]).map(|_| DataType::Utf8),
        run: substring,
    },
    Builtin {
        name: "substr",
        ret: |a| signature(a, &[S, I], &[I]).map(|_| DataType::Utf8),
        run: substring,
    },
    Builtin {
        name: "trim",
        ret: |a| signature(a, &[S], &[S]).map(|_| DataType::Utf8),
        run: |a, n| trim(a, n, true, true),
    },
    Builtin {
        name: "ltrim",
        ret: |a| signature(a, &[S], &[S]).map(|_| DataType::Utf8),
        run: |a, n| trim(a, n, true, false),
    },
    Builtin {
        name: "rtrim",
        ret: |a| signature(a, &[S], &[S]).map(|_| DataType::Utf8),
        run: |a, n| trim(a, n, false, true),
    },
    Builtin {
        name: "replace",
        ret: |a| signature(a, &[S, S, S], &[]).map(|_| DataType::Utf8),
        run: |a, n| map3(a, n, |s, from, to| Some(s.replace(from, to))),
    },
    Builtin {
        name: "position",
        ret: |a| signature(a, &[S, S], &[]).map(|_| DataType::Int32),
        run: position,
    },
    Builtin {
        name: "lpad",
        ret: |a| signature(a, &[S, I, S], &[]).map(|_| DataType::Utf8),
        run: |a, n| pad(a, n, true),
    },
    Builtin {
        name: "rpad",
        ret: |a| signature(a, &[S, I, S], &[]).map(|_| DataType::Utf8),
        run: |a, n| pad(a, n, false),
    },
    Builtin {
        name: "split_index",
        ret: |a| signature(a, &[S, S, I], &[]).map(|_| DataType::Utf8),
        run: split_index,
    },
    Builtin {
        name: "regexp",
        ret: |a| signature(a, &[S, S], &[]).map(|_| DataType::Boolean),
        run: regexp,
    },
    Builtin {
        name: "regexp_extract",
        ret: |a| signature(a, &[S, S], &[I]).map(|_| DataType::Utf8),
        run: regexp_extract,
    },
    Builtin {
        name: "regexp_replace",
        ret: |a| signature(a, &[S, S, S], &[]).map(|_| DataType::Utf8),
        run: regexp_replace,
    },
];

/// `f` over one string argument.
fn map1(
    a: &[ColumnarValue],
    n: usize,
    f: impl Fn(&str) -> Option<String>,
) -> Result<ArrayRef, ArrowError> {
    let s = strings(&a[0], n)?;
    let out: StringArray = s.iter().map(|v| v.and_then(&f)).collect();
    Ok(Arc::new(out))
}

/// `f` over three string arguments (null if any is null).
fn map3(
    a: &[ColumnarValue],
    n: usize,
    f: impl Fn(&str, &str, &str) -> Option<String>,
) -> Result<ArrayRef, ArrowError> {
    let (x, y, z) = (strings(&a[0], n)?, strings(&a[1], n)?, strings(&a[2], n)?);
    let out: StringArray = (0..n)
        .map(|i| {
            if x.is_null(i) || y.is_null(i) || z.is_null(i) {
                None
            } else {
                f(x.value(i), y.value(i), z.value(i))
            }
        })
        .collect();
    Ok(Arc::new(out))
}

fn variadic_strings(args: &[DataType], at_least: usize) -> Result<(), String> {
    if args.len() < at_least {
        return Err(format!(
            "takes at least {at_least} argument(s), not {}",
            args.len()
        ));
    }
    for (i, t) in args.iter().enumerate() {
        if !S.accepts(t) {
            return Err(format!("argument {} must be a string, not {t}", i + 1));
        }
    }
    Ok(())
}

fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        start = !c.is_alphanumeric();
    }
    out
}

fn char_length(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let s = strings(&a[0], n)?;
    let out: Int32Array = s
        .iter()
        .map(|v| v.map(|s| s.chars().count() as i32))
        .collect();
    Ok(Arc::new(out))
}

/// `concat(a, b, …)`: null if any argument is null (Flink's rule).
fn concat(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let parts = a
        .iter()
        .map(|v| strings(v, n))
        .collect::<Result<Vec<_>, _>>()?;
    let out: StringArray = (0..n)
        .map(|i| {
            let mut s = String::new();
            for p in &parts {
                if p.is_null(i) {
                    return None;
                }
                s.push_str(p.value(i));
            }
            Some(s)
        })
        .collect();
    Ok(Arc::new(out))
}

/// `concat_ws(sep, a, b, …)`: null arguments are skipped; null only when
/// the separator is.
fn concat_ws(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let sep = strings(&a[0], n)?;
    let parts = a[1..]
        .iter()
        .map(|v| strings(v, n))
        .collect::<Result<Vec<_>, _>>()?;
    let out: StringArray = (0..n)
        .map(|i| {
            if sep.is_null(i) {
                return None;
            }
            let values: Vec<&str> = parts
                .iter()
                .filter(|p| !p.is_null(i))
                .map(|p| p.value(i))
                .collect();
            Some(values.join(sep.value(i)))
        })
        .collect();
    Ok(Arc::new(out))
}

/// `substring(s, start [, length])`: characters `start ..= start+length-1`
/// counted from 1; a start before 1 still counts `length` from it (SQL).
fn substring(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let s = strings(&a[0], n)?;
    let start = ints(&a[1], n)?;
    let len = a.get(2).map(|v| ints(v, n)).transpose()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if s.is_null(i) || start.is_null(i) || len.as_ref().is_some_and(|l| l.is_null(i)) {
            out.push(None);
            continue;
        }
        let from = start.value(i);
        let end = match &len {
            Some(l) if l.value(i) < 0 => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "substring(): negative length {}",
                    l.value(i)
                )))
            }
            Some(l) => from.saturating_add(l.value(i)),
            None => i64::MAX,
        };
        let (lo, hi) = (from.max(1), end.max(1));
        let taken: String = s
            .value(i)
            .chars()
            .skip((lo - 1) as usize)
            .take(hi.saturating_sub(lo) as usize)
            .collect();
        out.push(Some(taken));
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// `trim(s [, characters])`: removes the characters (default: spaces).
fn trim(a: &[ColumnarValue], n: usize, left: bool, right: bool) -> Result<ArrayRef, ArrowError> {
    let s = strings(&a[0], n)?;
    let chars = a.get(1).map(|v| strings(v, n)).transpose()?;
    let out: StringArray = (0..n)
        .map(|i| {
            if s.is_null(i) || chars.as_ref().is_some_and(|c| c.is_null(i)) {
                return None;
            }
            let set: Vec<char> = match &chars {
                Some(c) => c.value(i).chars().collect(),
                None => vec![' '],
            };
            let mut v = s.value(i);
            if left {
                v = v.trim_start_matches(set.as_slice());
            }
            if right {
                v = v.trim_end_matches(set.as_slice());
            }
            Some(v.to_string())
        })
        .collect();
    Ok(Arc::new(out))
}

/// `position(needle, haystack)`: the 1-based character position of the
/// first occurrence, 0 if none.
fn position(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let (needle, hay) = (strings(&a[0], n)?, strings(&a[1], n)?);
    let out: Int32Array = (0..n)
        .map(|i| {
            if needle.is_null(i) || hay.is_null(i) {
                return None;
            }
            let h = hay.value(i);
            Some(match h.find(needle.value(i)) {
                Some(byte) => h[..byte].chars().count() as i32 + 1,
                None => 0,
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// `lpad(s, len, pad)` / `rpad`: pads (or cuts) to `len` characters; null
/// for a negative length or an empty pad that would be needed.
fn pad(a: &[ColumnarValue], n: usize, left: bool) -> Result<ArrayRef, ArrowError> {
    let (s, len, with) = (strings(&a[0], n)?, ints(&a[1], n)?, strings(&a[2], n)?);
    let out: StringArray = (0..n)
        .map(|i| {
            if s.is_null(i) || len.is_null(i) || with.is_null(i) || len.value(i) < 0 {
                return None;
            }
            let want = len.value(i) as usize;
            let chars: Vec<char> = s.value(i).chars().collect();
            if chars.len() >= want {
                return Some(chars[..want].iter().collect());
            }
            let fill: Vec<char> = with.value(i).chars().collect();
            if fill.is_empty() {
                return None;
            }
            let padding: String = fill.iter().cycle().take(want - chars.len()).collect();
            let body: String = chars.iter().collect();
            Some(if left {
                padding + &body
            } else {
                body + &padding
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// `split_index(s, separator, index)`: the index-th piece (from 0) of `s`
/// split at `separator`; null if there is no such piece.
fn split_index(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let (s, sep, idx) = (strings(&a[0], n)?, strings(&a[1], n)?, ints(&a[2], n)?);
    let out: StringArray = (0..n)
        .map(|i| {
            if s.is_null(i) || sep.is_null(i) || idx.is_null(i) || idx.value(i) < 0 {
                return None;
            }
            let sep = sep.value(i);
            if sep.is_empty() {
                return None;
            }
            s.value(i)
                .split(sep)
                .nth(idx.value(i) as usize)
                .map(str::to_string)
        })
        .collect();
    Ok(Arc::new(out))
}

/// The constant pattern argument, compiled.
fn pattern(v: &ColumnarValue, function: &str) -> Result<Option<Regex>, ArrowError> {
    literal_str(v, function, "pattern")?
        .map(|p| {
            Regex::new(&p).map_err(|e| {
                ArrowError::InvalidArgumentError(format!("{function}(): bad pattern {p:?}: {e}"))
            })
        })
        .transpose()
}

/// `regexp(s, pattern)`: true if the pattern matches anywhere in `s`.
fn regexp(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let s = strings(&a[0], n)?;
    let Some(re) = pattern(&a[1], "regexp")? else {
        return Ok(Arc::new(BooleanArray::new_null(n)));
    };
    let out: BooleanArray = s.iter().map(|v| v.map(|s| re.is_match(s))).collect();
    Ok(Arc::new(out))
}

/// `regexp_extract(s, pattern [, group])`: the text of the group (0: the
/// whole match; default 1 when the pattern has a group, else 0) in the
/// first match; null if nothing matches or the group did not take part.
fn regexp_extract(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let s = strings(&a[0], n)?;
    let Some(re) = pattern(&a[1], "regexp_extract")? else {
        return Ok(Arc::new(StringArray::new_null(n)));
    };
    let default = i64::from(re.captures_len() > 1);
    let group = match a.get(2) {
        Some(g) => ints(g, n)?,
        None => Int64Array::from_value(default, n),
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if s.is_null(i) || group.is_null(i) {
            out.push(None);
            continue;
        }
        let g = group.value(i);
        if g < 0 || g as usize >= re.captures_len() {
            return Err(ArrowError::InvalidArgumentError(format!(
                "regexp_extract(): group {g} does not exist; the pattern has {}",
                re.captures_len() - 1
            )));
        }
        out.push(
            re.captures(s.value(i))
                .and_then(|c| c.get(g as usize))
                .map(|m| m.as_str().to_string()),
        );
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// `regexp_replace(s, pattern, replacement)`: every match replaced;
/// `$1` / `${name}` in the replacement refer to groups.
fn regexp_replace(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let (s, with) = (strings(&a[0], n)?, strings(&a[2], n)?);
    let Some(re) = pattern(&a[1], "regexp_replace")? else {
        return Ok(Arc::new(StringArray::new_null(n)));
    };
    let out: StringArray = (0..n)
        .map(|i| {
            if s.is_null(i) || with.is_null(i) {
                return None;
            }
            Some(re.replace_all(s.value(i), with.value(i)).into_owned())
        })
        .collect();
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::super::tests::call;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use weir_core::expr::{col, lit};

    fn strs(name: &str, args: Vec<weir_core::expr::Expr>) -> Vec<Option<String>> {
        let a = call(name, args).unwrap_or_else(|e| panic!("{name}: {e}"));
        a.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    fn one(name: &str, args: Vec<weir_core::expr::Expr>) -> Option<String> {
        strs(name, args).remove(0)
    }

    #[test]
    fn case_length_and_concatenation() {
        assert_eq!(
            strs("upper", vec![col("s")]),
            vec![Some("HELLO, WORLD".into()), None]
        );
        assert_eq!(one("lower", vec![col("s")]), Some("hello, world".into()));
        assert_eq!(one("initcap", vec![lit("aBC dEF")]), Some("Abc Def".into()));
        assert_eq!(one("reverse", vec![lit("abc")]), Some("cba".into()));
        let len = call("char_length", vec![col("s")]).unwrap();
        let len: Vec<Option<i32>> = len.as_primitive::<Int32Type>().iter().collect();
        assert_eq!(len, vec![Some(12), None]);
        assert_eq!(
            call("length", vec![lit("héllo")])
                .unwrap()
                .as_primitive::<Int32Type>()
                .value(0),
            5
        );
        assert_eq!(
            strs("concat", vec![lit("<"), col("s"), lit(">")]),
            vec![Some("<Hello, World>".into()), None]
        );
        assert_eq!(
            strs("concat_ws", vec![lit("-"), lit("a"), col("s"), lit("b")]),
            vec![Some("a-Hello, World-b".into()), Some("a-b".into())]
        );
    }

    #[test]
    fn substring_trim_pad_position_replace() {
        assert_eq!(
            one("substring", vec![col("s"), lit(8)]),
            Some("World".into())
        );
        assert_eq!(
            one("substring", vec![col("s"), lit(1), lit(5)]),
            Some("Hello".into())
        );
        // SQL: a start before 1 still counts the length from it
        assert_eq!(
            one("substr", vec![lit("hello"), lit(0), lit(2)]),
            Some("h".into())
        );
        assert_eq!(
            one("substring", vec![lit("héllo"), lit(2), lit(2)]),
            Some("él".into())
        );
        assert!(call("substring", vec![lit("x"), lit(1), lit(-1)]).is_err());
        assert_eq!(one("trim", vec![lit("  a b  ")]), Some("a b".into()));
        assert_eq!(
            one("ltrim", vec![lit("xxaxx"), lit("x")]),
            Some("axx".into())
        );
        assert_eq!(
            one("rtrim", vec![lit("xxaxx"), lit("x")]),
            Some("xxa".into())
        );
        assert_eq!(
            one("lpad", vec![lit("7"), lit(3), lit("0")]),
            Some("007".into())
        );
        assert_eq!(
            one("rpad", vec![lit("ab"), lit(5), lit("xy")]),
            Some("abxyx".into())
        );
        assert_eq!(
            one("lpad", vec![lit("abcd"), lit(2), lit("0")]),
            Some("ab".into())
        );
        let pos = call("position", vec![lit("World"), col("s")]).unwrap();
        let pos: Vec<Option<i32>> = pos.as_primitive::<Int32Type>().iter().collect();
        assert_eq!(pos, vec![Some(8), None]);
        assert_eq!(
            one("replace", vec![col("s"), lit("o"), lit("0")]),
            Some("Hell0, W0rld".into())
        );
    }

    #[test]
    fn split_index_counts_from_zero() {
        assert_eq!(
            one("split_index", vec![lit("a,b,c"), lit(","), lit(1)]),
            Some("b".into())
        );
        assert_eq!(
            one("split_index", vec![lit("a,b,c"), lit(","), lit(3)]),
            None
        );
        assert_eq!(
            one("split_index", vec![lit("a,b,c"), lit(","), lit(-1)]),
            None
        );
    }

    #[test]
    fn regular_expressions() {
        let m = call("regexp", vec![col("s"), lit("W.r")]).unwrap();
        let m: Vec<Option<bool>> = m.as_boolean().iter().collect();
        assert_eq!(m, vec![Some(true), None]);
        assert_eq!(
            one(
                "regexp_extract",
                vec![lit("foothebar"), lit("foo(.*?)(bar)"), lit(2)]
            ),
            Some("bar".into())
        );
        assert_eq!(
            one(
                "regexp_extract",
                vec![lit("foothebar"), lit("foo(.*?)(bar)")]
            ),
            Some("the".into())
        );
        assert_eq!(
            one("regexp_extract", vec![lit("foothebar"), lit("o+"), lit(0)]),
            Some("oo".into())
        );
        assert_eq!(one("regexp_extract", vec![lit("abc"), lit("x(y)")]), None);
        let err = call("regexp_extract", vec![lit("a"), lit("(a)"), lit(2)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("group 2 does not exist; the pattern has 1"),
            "{err}"
        );
        let err = call("regexp", vec![lit("a"), col("s")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("pattern must be a constant"), "{err}");
        let err = call("regexp", vec![lit("a"), lit("(")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad pattern"), "{err}");
        assert_eq!(
            one(
                "regexp_replace",
                vec![lit("a1b22"), lit("([0-9]+)"), lit("<$1>")]
            ),
            Some("a<1>b<22>".into())
        );
    }
}
