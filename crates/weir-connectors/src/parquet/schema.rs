//! One schema for files whose schemas differ, and statistics in epoch ms.
//!
//! ```text
//!  file a: id Int32, speed Float32, t Timestamp(ms)
//!  file b: id Int64,                t Timestamp(µs), note Utf8
//!  unified: id Int64, speed Float64 (nullable: missing in b), t Timestamp(µs), note Utf8 (nullable)
//! ```
//! Column order: the first file's, then new columns in order of first
//! appearance. A column missing from a file is read as nulls there.
//! Widening (any two types of one family become the family's type):
//! integers Int8/16/32/64 and UInt8/16/32 → Int64; Float32/64 → Float64;
//! Utf8/LargeUtf8/Utf8View → Utf8; timestamps of one time zone → the finest
//! unit. Dictionaries are unpacked first. Anything else is an
//! [`Error::SchemaMismatch`] naming both files, the column and both types.
//!
//! Owns [`unify`], [`widen`], [`plain`] and [`to_millis`]. May use
//! `weir_core::error` and the arrow crates.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::Array;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use std::path::Path;
use weir_core::error::{Error, Result};

/// The type a column of type `t` is read as: dictionaries unpacked.
pub fn plain(t: &DataType) -> DataType {
    match t {
        DataType::Dictionary(_, v) => plain(v),
        t => t.clone(),
    }
}

fn is_widening_int(t: &DataType) -> bool {
    use DataType::*;
    matches!(t, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32)
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn unit_rank(u: &TimeUnit) -> u8 {
    match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    }
}

/// The type both `a` and `b` widen to, if any (see the module doc).
pub fn widen(a: &DataType, b: &DataType) -> Option<DataType> {
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        (a, b) if is_widening_int(a) && is_widening_int(b) => Some(DataType::Int64),
        (DataType::Float32 | DataType::Float64, DataType::Float32 | DataType::Float64) => {
            Some(DataType::Float64)
        }
        (a, b) if is_string(a) && is_string(b) => Some(DataType::Utf8),
        (DataType::Timestamp(ua, za), DataType::Timestamp(ub, zb)) if za == zb => {
            let unit = if unit_rank(ua) >= unit_rank(ub) {
                ua
            } else {
                ub
            };
            Some(DataType::Timestamp(*unit, za.clone()))
        }
        _ => None,
    }
}

/// The unified columns of files given as `(path, schema)`, in order (see
/// the module doc).
pub fn unify(files: &[(&Path, &Schema)]) -> Result<Schema> {
    struct Column {
        name: String,
        ty: DataType,
        nullable: bool,
        /// (file, its type) for every file that has the column.
        seen: Vec<(usize, DataType)>,
    }
    let mut columns: Vec<Column> = Vec::new();
    for (fi, (path, schema)) in files.iter().enumerate() {
        for field in schema.fields() {
            let ty = plain(field.data_type());
            let Some(col) = columns.iter_mut().find(|c| c.name == *field.name()) else {
                columns.push(Column {
                    name: field.name().clone(),
                    ty: ty.clone(),
                    nullable: field.is_nullable(),
                    seen: vec![(fi, ty)],
                });
                continue;
            };
            match widen(&col.ty, &ty) {
                Some(w) => col.ty = w,
                None => {
                    // name a file whose own type cannot meet this one
                    let (other, other_ty) = col
                        .seen
                        .iter()
                        .find(|(_, t)| widen(t, &ty).is_none())
                        .unwrap_or(&col.seen[0]);
                    return Err(Error::SchemaMismatch {
                        location: path.display().to_string(),
                        message: format!(
                            "column `{}` is {ty} here but {other_ty} in {}; \
                             only integer, float, string and timestamp-unit differences are widened",
                            col.name,
                            files[*other].0.display()
                        ),
                    });
                }
            }
            col.nullable |= field.is_nullable();
            col.seen.push((fi, ty));
        }
    }
    Ok(Schema::new(
        columns
            .into_iter()
            .map(|c| {
                let everywhere = c.seen.len() == files.len();
                Field::new(c.name, c.ty, c.nullable || !everywhere)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Row-group statistics in epoch ms, rounded down like `event_times` (so a
/// pre-1970 sub-millisecond time lands in the same millisecond both ways).
/// Types that are not times give unknown (`None`) bounds.
pub fn to_millis(stats: &dyn Array) -> Result<Vec<Option<i64>>> {
    let per_ms: i64 = match stats.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => -1000,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => 1,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000_000,
        _ => return Ok(vec![None; stats.len()]),
    };
    let raw = arrow_cast::cast(stats, &DataType::Int64)?;
    Ok(raw
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| {
            v.map(|v| match per_ms {
                // seconds: multiply
                p if p < 0 => v.saturating_mul(-p),
                p => v.div_euclid(p),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{TimestampMicrosecondArray, TimestampSecondArray};
    use std::sync::Arc;

    #[test]
    fn statistics_round_down_to_milliseconds_like_event_times() {
        // -1500 µs is in millisecond -2 (floor), not -1 (truncation)
        let us = TimestampMicrosecondArray::from(vec![Some(-1500), Some(2500), None]);
        assert_eq!(to_millis(&us).unwrap(), vec![Some(-2), Some(2), None]);
        let s = TimestampSecondArray::from(vec![-3]);
        assert_eq!(to_millis(&s).unwrap(), vec![Some(-3000)]);
        assert_eq!(
            to_millis(&arrow_array::Float64Array::from(vec![1.0])).unwrap(),
            vec![None]
        );
    }

    #[test]
    fn widening_table() {
        use DataType::*;
        let ts = |u| Timestamp(u, None);
        let utc = |u| Timestamp(u, Some(Arc::from("UTC")));
        let table = [
            (Int32, Int64, Some(Int64)),
            (Int8, Int16, Some(Int64)),
            (UInt32, Int64, Some(Int64)),
            (UInt64, Int64, None),
            (Float32, Float64, Some(Float64)),
            (Float32, Int64, None),
            (LargeUtf8, Utf8, Some(Utf8)),
            (Utf8, Int64, None),
            (
                ts(TimeUnit::Millisecond),
                ts(TimeUnit::Microsecond),
                Some(ts(TimeUnit::Microsecond)),
            ),
            (
                utc(TimeUnit::Second),
                utc(TimeUnit::Millisecond),
                Some(utc(TimeUnit::Millisecond)),
            ),
            (ts(TimeUnit::Second), utc(TimeUnit::Second), None),
            (Int64, ts(TimeUnit::Millisecond), None),
            (Boolean, Boolean, Some(Boolean)),
        ];
        for (a, b, want) in table {
            assert_eq!(widen(&a, &b), want, "{a} + {b}");
            assert_eq!(widen(&b, &a), want, "{b} + {a}");
        }
    }

    #[test]
    fn unified_order_nullability_and_mismatch() {
        let a = Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new(
                "s",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                false,
            ),
        ]);
        let b = Schema::new(vec![
            Field::new("x", DataType::Float32, false),
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::LargeUtf8, false),
        ]);
        let u = unify(&[(Path::new("a"), &a), (Path::new("b"), &b)]).unwrap();
        let got: Vec<(String, DataType, bool)> = u
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id".into(), DataType::Int64, false),
                ("s".into(), DataType::Utf8, false),
                ("x".into(), DataType::Float32, true),
            ]
        );
        let c = Schema::new(vec![Field::new("id", DataType::Utf8, false)]);
        let err = unify(&[(Path::new("a.parquet"), &a), (Path::new("c.parquet"), &c)])
            .unwrap_err()
            .to_string();
        for part in ["a.parquet", "c.parquet", "`id`", "Utf8", "Int32"] {
            assert!(err.contains(part), "{part} in {err}");
        }
    }
}
