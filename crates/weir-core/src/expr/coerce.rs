//! Type coercion: which types a node's operands are cast to, and what it
//! returns.
//!
//! Owns the per-node plans shared by `Expr::data_type` and `Expr::evaluate`
//! (in `eval.rs`), so the type one predicts is the type the other returns.
//! Decides from types alone and never touches data. May use the arrow schema
//! types and `arrow_cast::can_cast_types`.
//!
//! Coercion rules:
//! - arithmetic needs integer or float operands; differing types are cast to
//!   a common type: any float gives `Float64`, two signed (or two unsigned)
//!   integers give the wider one, signed with unsigned gives `Int64`.
//! - comparisons coerce numbers the same way; a `Timestamp`/`Date` compared
//!   with an integer casts the integer side to the temporal type (when arrow
//!   casts that integer type to it directly, e.g. `Int64`); strings of
//!   different encodings (`Utf8`, `LargeUtf8`, `Utf8View`) are cast to `Utf8`;
//!   otherwise both sides must have the same (non-nested) type.
//! - an untyped `null` with anything gives all nulls of the result type.
//! - `and`, `or` and `not` need `Boolean` (or untyped `null`) operands.

use arrow_cast::can_cast_types;
use arrow_schema::DataType;

use super::BinaryOp;

/// How a binary operation runs, decided from its operand types alone.
#[derive(Debug, PartialEq)]
pub(super) struct BinaryPlan {
    /// The type the left operand is cast to.
    pub(super) left: DataType,
    /// The type the right operand is cast to.
    pub(super) right: DataType,
    /// The result type.
    pub(super) output: DataType,
    /// The result is all nulls of `output` (an untyped `null` operand).
    pub(super) all_null: bool,
}

impl BinaryPlan {
    fn run(left: DataType, right: DataType, output: DataType) -> Self {
        BinaryPlan {
            left,
            right,
            output,
            all_null: false,
        }
    }

    fn null(output: DataType) -> Self {
        BinaryPlan {
            left: DataType::Null,
            right: DataType::Null,
            output,
            all_null: true,
        }
    }
}

fn is_number(t: &DataType) -> bool {
    t.is_integer() || t.is_floating()
}

pub(super) fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The type two different numeric types are both cast to.
pub(super) fn common_numeric(l: &DataType, r: &DataType) -> DataType {
    if l == r {
        return l.clone();
    }
    if l.is_floating() || r.is_floating() {
        return DataType::Float64;
    }
    let same_signedness = l.is_signed_integer() == r.is_signed_integer();
    if !same_signedness {
        return DataType::Int64;
    }
    let width = |t: &DataType| t.primitive_width().unwrap_or(8);
    if width(l) >= width(r) {
        l.clone()
    } else {
        r.clone()
    }
}

/// Why `t` is not a valid operand of the boolean operator `op`, if it is not.
pub(super) fn check_boolean(op: &str, side: &str, t: &DataType) -> std::result::Result<(), String> {
    match t {
        DataType::Boolean | DataType::Null => Ok(()),
        other => Err(format!(
            "`{op}` needs boolean operands, found {other}{side}"
        )),
    }
}

pub(super) fn plan_binary(
    op: BinaryOp,
    l: &DataType,
    r: &DataType,
) -> std::result::Result<BinaryPlan, String> {
    use DataType::{Boolean, Null, Utf8};
    let sym = op.symbol();
    if op.is_arithmetic() {
        return match (l, r) {
            (Null, Null) => Ok(BinaryPlan::null(Null)),
            (Null, t) | (t, Null) if is_number(t) => Ok(BinaryPlan::null(t.clone())),
            (l, r) if is_number(l) && is_number(r) => {
                let t = common_numeric(l, r);
                Ok(BinaryPlan::run(t.clone(), t.clone(), t))
            }
            _ => Err(format!(
                "cannot apply `{sym}` to {l} and {r}: arithmetic needs integer or float operands"
            )),
        };
    }
    if op.is_comparison() {
        let temporal = |t: &DataType| {
            matches!(
                t,
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            )
        };
        return match (l, r) {
            (Null, _) | (_, Null) => Ok(BinaryPlan::null(Boolean)),
            (l, r) if is_number(l) && is_number(r) => {
                let t = common_numeric(l, r);
                Ok(BinaryPlan::run(t.clone(), t, Boolean))
            }
            (t, i) | (i, t) if temporal(t) && i.is_integer() && can_cast_types(i, t) => {
                Ok(BinaryPlan::run(t.clone(), t.clone(), Boolean))
            }
            (l, r) if l == r && !l.is_nested() => {
                Ok(BinaryPlan::run(l.clone(), r.clone(), Boolean))
            }
            (l, r) if is_string(l) && is_string(r) => Ok(BinaryPlan::run(Utf8, Utf8, Boolean)),
            _ => Err(format!("cannot compare {l} with {r} using `{sym}`")),
        };
    }
    // `and` / `or`
    check_boolean(sym, " on the left", l)?;
    check_boolean(sym, " on the right", r)?;
    Ok(BinaryPlan::run(Boolean, Boolean, Boolean))
}

pub(super) fn plan_negative(t: &DataType) -> std::result::Result<(), String> {
    match t {
        t if t.is_signed_integer() || t.is_floating() => Ok(()),
        DataType::Null | DataType::Duration(_) | DataType::Interval(_) => Ok(()),
        other => Err(format!(
            "cannot negate {other}: needs a signed integer, float or duration"
        )),
    }
}

pub(super) fn plan_cast(from: &DataType, to: &DataType) -> std::result::Result<(), String> {
    if can_cast_types(from, to) {
        Ok(())
    } else {
        Err(format!("cannot cast {from} to {to}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_numeric_types() {
        use DataType::*;
        let cases = [
            (Int8, Int16, Int16),
            (Int32, Int64, Int64),
            (UInt8, UInt32, UInt32),
            (UInt8, Int8, Int64),
            (UInt64, Int64, Int64),
            (Float32, Int64, Float64),
            (Float32, Float64, Float64),
            (Float32, Float32, Float32),
            (Int32, Int32, Int32),
        ];
        for (l, r, want) in cases {
            assert_eq!(common_numeric(&l, &r), want, "{l} with {r}");
            assert_eq!(common_numeric(&r, &l), want, "{r} with {l}");
        }
    }

    #[test]
    fn binary_plans() {
        use DataType::*;
        let ts = Timestamp(arrow_schema::TimeUnit::Millisecond, None);
        let cases = [
            (BinaryOp::Add, Int32, Null, BinaryPlan::null(Int32)),
            (BinaryOp::Lt, Null, Utf8, BinaryPlan::null(Boolean)),
            (BinaryOp::Mul, Null, Null, BinaryPlan::null(Null)),
            (
                BinaryOp::Div,
                Int32,
                Float32,
                BinaryPlan::run(Float64, Float64, Float64),
            ),
            (
                BinaryOp::Eq,
                Int64,
                ts.clone(),
                BinaryPlan::run(ts.clone(), ts.clone(), Boolean),
            ),
            (
                BinaryOp::Gt,
                Date32,
                Int32,
                BinaryPlan::run(Date32, Date32, Boolean),
            ),
            (
                BinaryOp::NotEq,
                LargeUtf8,
                Utf8View,
                BinaryPlan::run(Utf8, Utf8, Boolean),
            ),
            (
                BinaryOp::Eq,
                Utf8View,
                Utf8View,
                BinaryPlan::run(Utf8View, Utf8View, Boolean),
            ),
            (
                BinaryOp::Eq,
                Boolean,
                Boolean,
                BinaryPlan::run(Boolean, Boolean, Boolean),
            ),
            (
                BinaryOp::Or,
                Null,
                Boolean,
                BinaryPlan::run(Boolean, Boolean, Boolean),
            ),
        ];
        for (op, l, r, want) in cases {
            assert_eq!(plan_binary(op, &l, &r), Ok(want), "{l} {op:?} {r}");
        }
        let errors = [
            (BinaryOp::Add, Utf8, Utf8),
            (BinaryOp::Sub, ts.clone(), Int64),
            (BinaryOp::Add, Boolean, Int64),
            (BinaryOp::Eq, Boolean, Int64),
            (BinaryOp::Lt, ts, Utf8),
            // arrow has no direct UInt8 -> Date32 cast
            (BinaryOp::Gt, Date32, UInt8),
            (BinaryOp::And, Boolean, Int8),
        ];
        for (op, l, r) in errors {
            assert!(plan_binary(op, &l, &r).is_err(), "{l} {op:?} {r}");
        }
    }

    #[test]
    fn unary_plans() {
        assert!(plan_negative(&DataType::Int8).is_ok());
        assert!(plan_negative(&DataType::Float32).is_ok());
        assert_eq!(
            plan_negative(&DataType::UInt8),
            Err("cannot negate UInt8: needs a signed integer, float or duration".to_string())
        );
        assert!(plan_cast(&DataType::Utf8, &DataType::Int64).is_ok());
        assert_eq!(
            plan_cast(&DataType::Boolean, &DataType::Date32),
            Err("cannot cast Boolean to Date32".to_string())
        );
    }
}
