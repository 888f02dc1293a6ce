//! Type checking and evaluation of expressions.
//!
//! Owns [`Expr::data_type`] and [`Expr::evaluate`]. Both walk the tree with
//! the same per-node plans from `coerce.rs`, so the type `data_type`
//! predicts is the type `evaluate` returns. Evaluation is whole-batch: every
//! node calls one Arrow kernel, and literals stay length-1 [`Scalar`]s until
//! a kernel needs an array or the final result is returned. May use
//! `crate::error`, `coerce.rs` and the arrow crates.

use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_arith::numeric;
use arrow_array::cast::AsArray;
use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, NullArray,
    RecordBatch, Scalar, StringArray, UInt32Array,
};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_ord::cmp;
use arrow_schema::{ArrowError, DataType, Schema};

use super::coerce::{check_boolean, plan_binary, plan_cast, plan_negative, BinaryPlan};
use super::{BinaryOp, Expr, ScalarValue};
use crate::error::{Error, Result};

impl Expr {
    /// The type [`Expr::evaluate`] would return for a batch with `schema`,
    /// found without touching data.
    ///
    /// Fails with [`Error::Column`] for a column not in `schema` and with
    /// [`Error::Expr`] for operands of the wrong type.
    pub fn data_type(&self, schema: &Schema) -> Result<DataType> {
        self.type_in(schema, self)
    }

    /// Evaluates the expression over every row of `batch`.
    ///
    /// Always returns an array of `batch.num_rows()` values, even when the
    /// expression reads no column. Fails like [`Expr::data_type`], and also
    /// on a kernel error (integer division by zero, overflow, a value a
    /// `cast` cannot convert), naming the sub-expression that failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{cast::AsArray, ArrayRef, BooleanArray, Int64Array, RecordBatch};
    /// use weir::expr::{col, lit};
    ///
    /// let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(5)]));
    /// let batch = RecordBatch::try_from_iter([("a", a)])?;
    ///
    /// let out = col("a").mul(lit(2)).gt(lit(3)).evaluate(&batch)?;
    /// assert_eq!(
    ///     out.as_boolean(),
    ///     &BooleanArray::from(vec![Some(false), None, Some(true)])
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        match self.eval_in(batch, self)? {
            Value::Array(array) => Ok(array),
            Value::Scalar(scalar) => {
                broadcast(&scalar, batch.num_rows()).map_err(|e| self.kernel_error(e))
            }
        }
    }

    /// An [`Error::Expr`] about this (sub-)expression.
    fn type_error(&self, message: String) -> Error {
        Error::Expr {
            expr: self.to_string(),
            message,
        }
    }

    /// An [`Error::Expr`] for a kernel failure in this (sub-)expression.
    fn kernel_error(&self, error: ArrowError) -> Error {
        let message = match error {
            ArrowError::DivideByZero => "division by zero".to_string(),
            ArrowError::ArithmeticOverflow(m) => format!("arithmetic overflow: {m}"),
            other => other.to_string(),
        };
        self.type_error(message)
    }

    fn type_in(&self, schema: &Schema, root: &Expr) -> Result<DataType> {
        match self {
            Expr::Column(name) => match schema.field_with_name(name) {
                Ok(field) => Ok(field.data_type().clone()),
                Err(_) => Err(missing_column(name, root, schema)),
            },
            Expr::Literal(value) => Ok(value.data_type()),
            Expr::Binary { left, op, right } => {
                let l = left.type_in(schema, root)?;
                let r = right.type_in(schema, root)?;
                let plan = plan_binary(*op, &l, &r).map_err(|m| self.type_error(m))?;
                Ok(plan.output)
            }
            Expr::Not(e) => {
                let t = e.type_in(schema, root)?;
                check_boolean("not", "", &t).map_err(|m| self.type_error(m))?;
                Ok(DataType::Boolean)
            }
            Expr::Negative(e) => {
                let t = e.type_in(schema, root)?;
                plan_negative(&t).map_err(|m| self.type_error(m))?;
                Ok(t)
            }
            Expr::IsNull(e) | Expr::IsNotNull(e) => {
                e.type_in(schema, root)?;
                Ok(DataType::Boolean)
            }
            Expr::Cast { expr, to } => {
                let from = expr.type_in(schema, root)?;
                plan_cast(&from, to).map_err(|m| self.type_error(m))?;
                Ok(to.clone())
            }
        }
    }

    fn eval_in(&self, batch: &RecordBatch, root: &Expr) -> Result<Value> {
        match self {
            Expr::Column(name) => match batch.column_by_name(name) {
                Some(array) => Ok(Value::Array(Arc::clone(array))),
                None => Err(missing_column(name, root, batch.schema_ref())),
            },
            Expr::Literal(value) => Ok(Value::Scalar(scalar_array(value))),
            Expr::Binary { left, op, right } => {
                let l = left.eval_in(batch, root)?;
                let r = right.eval_in(batch, root)?;
                let plan = plan_binary(*op, l.data_type(), r.data_type())
                    .map_err(|m| self.type_error(m))?;
                run_binary(*op, l, r, &plan).map_err(|e| self.kernel_error(e))
            }
            Expr::Not(e) => {
                let v = e.eval_in(batch, root)?;
                check_boolean("not", "", v.data_type()).map_err(|m| self.type_error(m))?;
                v.cast_to(&DataType::Boolean)
                    .and_then(|v| v.map(|a| Ok(Arc::new(not(as_bool(a))?) as ArrayRef)))
                    .map_err(|e| self.kernel_error(e))
            }
            Expr::Negative(e) => {
                let v = e.eval_in(batch, root)?;
                plan_negative(v.data_type()).map_err(|m| self.type_error(m))?;
                if v.data_type() == &DataType::Null {
                    return Ok(v);
                }
                v.map(|a| numeric::neg(a.as_ref()))
                    .map_err(|e| self.kernel_error(e))
            }
            Expr::IsNull(e) => e
                .eval_in(batch, root)?
                .map(|a| Ok(Arc::new(is_null(a.as_ref())?) as ArrayRef))
                .map_err(|e| self.kernel_error(e)),
            Expr::IsNotNull(e) => e
                .eval_in(batch, root)?
                .map(|a| Ok(Arc::new(is_not_null(a.as_ref())?) as ArrayRef))
                .map_err(|e| self.kernel_error(e)),
            Expr::Cast { expr, to } => {
                let v = expr.eval_in(batch, root)?;
                plan_cast(v.data_type(), to).map_err(|m| self.type_error(m))?;
                v.cast_to(to).map_err(|e| self.kernel_error(e))
            }
        }
    }
}

/// The [`Error::Column`] for a column missing from `schema`.
fn missing_column(name: &str, root: &Expr, schema: &Schema) -> Error {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let available = if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    };
    Error::column(
        name,
        format!("expression `{root}`"),
        format!("not found; available columns: {available}"),
    )
}

/// An intermediate result: a full column, or a literal-derived length-1
/// array that stands for the same value in every row.
enum Value {
    Array(ArrayRef),
    /// Always exactly one element.
    Scalar(ArrayRef),
}

impl Value {
    fn data_type(&self) -> &DataType {
        match self {
            Value::Array(a) | Value::Scalar(a) => a.data_type(),
        }
    }

    /// Applies a length-preserving kernel, keeping the shape.
    fn map(
        self,
        f: impl FnOnce(&ArrayRef) -> Result<ArrayRef, ArrowError>,
    ) -> Result<Value, ArrowError> {
        Ok(match self {
            Value::Array(a) => Value::Array(f(&a)?),
            Value::Scalar(a) => Value::Scalar(f(&a)?),
        })
    }

    /// Casts to `to` (no-op if already of that type); values that do not
    /// fit are errors, not nulls.
    fn cast_to(self, to: &DataType) -> Result<Value, ArrowError> {
        if self.data_type() == to {
            return Ok(self);
        }
        let options = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        self.map(|a| cast_with_options(a.as_ref(), to, &options))
    }
}

/// Repeats the single value of `scalar` `len` times.
fn broadcast(scalar: &ArrayRef, len: usize) -> Result<ArrayRef, ArrowError> {
    if scalar.logical_null_count() > 0 {
        return Ok(new_null_array(scalar.data_type(), len));
    }
    let indices = UInt32Array::from_value(0, len);
    arrow_select::take::take(scalar.as_ref(), &indices, None)
}

/// The length-1 array holding `value`.
fn scalar_array(value: &ScalarValue) -> ArrayRef {
    match value {
        ScalarValue::Null => Arc::new(NullArray::new(1)),
        ScalarValue::Boolean(b) => Arc::new(BooleanArray::from(vec![*b])),
        ScalarValue::Int64(v) => Arc::new(Int64Array::from(vec![*v])),
        ScalarValue::Float64(v) => Arc::new(Float64Array::from(vec![*v])),
        ScalarValue::Utf8(s) => Arc::new(StringArray::from(vec![s.as_str()])),
    }
}

fn as_bool(array: &ArrayRef) -> &BooleanArray {
    array
        .as_boolean_opt()
        .expect("the plan cast every boolean operand to Boolean")
}

/// Calls a two-operand kernel, passing scalars as [`Scalar`] datums so they
/// are never broadcast. The result is a scalar only if both operands are.
fn apply2(
    l: &Value,
    r: &Value,
    f: impl Fn(&dyn Datum, &dyn Datum) -> Result<ArrayRef, ArrowError>,
) -> Result<Value, ArrowError> {
    Ok(match (l, r) {
        (Value::Array(a), Value::Array(b)) => Value::Array(f(a, b)?),
        (Value::Array(a), Value::Scalar(b)) => Value::Array(f(a, &Scalar::new(b))?),
        (Value::Scalar(a), Value::Array(b)) => Value::Array(f(&Scalar::new(a), b)?),
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(f(&Scalar::new(a), &Scalar::new(b))?),
    })
}

fn compare(
    kernel: fn(&dyn Datum, &dyn Datum) -> Result<BooleanArray, ArrowError>,
) -> impl Fn(&dyn Datum, &dyn Datum) -> Result<ArrayRef, ArrowError> {
    move |a, b| Ok(Arc::new(kernel(a, b)?) as ArrayRef)
}

fn run_binary(op: BinaryOp, l: Value, r: Value, plan: &BinaryPlan) -> Result<Value, ArrowError> {
    if plan.all_null {
        return Ok(match (&l, &r) {
            (Value::Array(a), _) | (_, Value::Array(a)) => {
                Value::Array(new_null_array(&plan.output, a.len()))
            }
            _ => Value::Scalar(new_null_array(&plan.output, 1)),
        });
    }
    let l = l.cast_to(&plan.left)?;
    let r = r.cast_to(&plan.right)?;
    match op {
        BinaryOp::Add => apply2(&l, &r, numeric::add),
        BinaryOp::Sub => apply2(&l, &r, numeric::sub),
        BinaryOp::Mul => apply2(&l, &r, numeric::mul),
        BinaryOp::Div => apply2(&l, &r, numeric::div),
        BinaryOp::Mod => apply2(&l, &r, numeric::rem),
        BinaryOp::Eq => apply2(&l, &r, compare(cmp::eq)),
        BinaryOp::NotEq => apply2(&l, &r, compare(cmp::neq)),
        BinaryOp::Lt => apply2(&l, &r, compare(cmp::lt)),
        BinaryOp::LtEq => apply2(&l, &r, compare(cmp::lt_eq)),
        BinaryOp::Gt => apply2(&l, &r, compare(cmp::gt)),
        BinaryOp::GtEq => apply2(&l, &r, compare(cmp::gt_eq)),
        BinaryOp::And => logical(l, r, and_kleene),
        BinaryOp::Or => logical(l, r, or_kleene),
    }
}

/// Runs a Kleene boolean kernel; these need equal-length arrays, so a
/// scalar next to an array is broadcast to the array's length.
fn logical(
    l: Value,
    r: Value,
    kernel: fn(&BooleanArray, &BooleanArray) -> Result<BooleanArray, ArrowError>,
) -> Result<Value, ArrowError> {
    let run = |a: &ArrayRef, b: &ArrayRef| -> Result<ArrayRef, ArrowError> {
        Ok(Arc::new(kernel(as_bool(a), as_bool(b))?))
    };
    Ok(match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(run(&a, &b)?),
        (Value::Array(a), Value::Array(b)) => Value::Array(run(&a, &b)?),
        (Value::Array(a), Value::Scalar(b)) => Value::Array(run(&a, &broadcast(&b, a.len())?)?),
        (Value::Scalar(a), Value::Array(b)) => Value::Array(run(&broadcast(&a, b.len())?, &b)?),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{col, lit};
    use super::*;
    use arrow_array::types::Int64Type;
    use arrow_array::{
        Date32Array, Float32Array, Int32Array, Int8Array, LargeStringArray, StringViewArray,
        TimestampMillisecondArray, UInt32Array, UInt8Array,
    };
    use arrow_schema::{Fields, TimeUnit};

    /// i32: [1, 2, null, 4], i64: [10, null, 30, 40], f64: [0.5, 1.5, null, -2.0],
    /// s: ["a", "b", null, "a"], zero: [2, 5, 0, 4], nz: [2, null(0 underneath), 5, 4]
    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "i32",
                Arc::new(Int32Array::from(vec![Some(1), Some(2), None, Some(4)])) as ArrayRef,
            ),
            (
                "i64",
                Arc::new(Int64Array::from(vec![Some(10), None, Some(30), Some(40)])),
            ),
            (
                "f64",
                Arc::new(Float64Array::from(vec![
                    Some(0.5),
                    Some(1.5),
                    None,
                    Some(-2.0),
                ])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("a"),
                ])),
            ),
            ("zero", Arc::new(Int64Array::from(vec![2, 5, 0, 4]))),
            (
                "nz",
                Arc::new(Int64Array::from(vec![Some(2), None, Some(5), Some(4)])),
            ),
        ])
        .expect("valid batch")
    }

    /// Evaluates `e`, checking the result's length and that `data_type`
    /// predicted its type.
    fn eval(e: &Expr, batch: &RecordBatch) -> ArrayRef {
        let out = e.evaluate(batch).unwrap_or_else(|err| panic!("{e}: {err}"));
        let predicted = e.data_type(batch.schema_ref()).expect("type-checks");
        assert_eq!(&predicted, out.data_type(), "data_type disagrees for {e}");
        assert_eq!(out.len(), batch.num_rows(), "length of {e}");
        out
    }

    fn i64s(a: &ArrayRef) -> Vec<Option<i64>> {
        a.as_primitive::<Int64Type>().iter().collect()
    }

    fn f64s(a: &ArrayRef) -> Vec<Option<f64>> {
        a.as_primitive::<arrow_array::types::Float64Type>()
            .iter()
            .collect()
    }

    fn bools(a: &ArrayRef) -> Vec<Option<bool>> {
        a.as_boolean().iter().collect()
    }

    /// The message of an `Error::Expr`, checking it names `expr`.
    fn expr_error(result: Result<impl std::fmt::Debug>, expr: &str) -> String {
        match result {
            Err(Error::Expr { expr: e, message }) => {
                assert_eq!(e, expr);
                message
            }
            other => panic!("expected Error::Expr for {expr}, got {other:?}"),
        }
    }

    #[test]
    fn integer_arithmetic_with_nulls() {
        let b = batch();
        let out = eval(&col("i32").add(col("i64")), &b);
        assert_eq!(out.data_type(), &DataType::Int64);
        assert_eq!(i64s(&out), vec![Some(11), None, None, Some(44)]);

        let out = eval(&col("i32").add(col("i32")), &b);
        assert_eq!(
            out.as_ref(),
            &Int32Array::from(vec![Some(2), Some(4), None, Some(8)])
        );

        let out = eval(&col("i64").sub(col("i32")), &b);
        assert_eq!(i64s(&out), vec![Some(9), None, None, Some(36)]);
        let out = eval(&col("i32").mul(lit(3)), &b);
        assert_eq!(i64s(&out), vec![Some(3), Some(6), None, Some(12)]);
        let out = eval(&lit(100).sub(col("i64")), &b);
        assert_eq!(i64s(&out), vec![Some(90), None, Some(70), Some(60)]);
    }

    #[test]
    fn integer_division_truncates_and_mod_is_remainder() {
        let b = batch();
        assert_eq!(
            i64s(&eval(&col("i64").div(lit(4)), &b)),
            vec![Some(2), None, Some(7), Some(10)]
        );
        assert_eq!(
            i64s(&eval(&col("i64").modulo(lit(4)), &b)),
            vec![Some(2), None, Some(2), Some(0)]
        );
        assert_eq!(i64s(&eval(&lit(-7).div(lit(2)), &b)), vec![Some(-3); 4]);
        assert_eq!(i64s(&eval(&lit(-7).modulo(lit(2)), &b)), vec![Some(-1); 4]);
        // A null divisor slot holds 0 underneath; it must not count as a zero.
        assert_eq!(
            i64s(&eval(&col("i64").div(col("nz")), &b)),
            vec![Some(5), None, Some(6), Some(10)]
        );
    }

    #[test]
    fn mixed_int_float_coerces_to_float64() {
        let b = batch();
        let out = eval(&col("i32").add(col("f64")), &b);
        assert_eq!(f64s(&out), vec![Some(1.5), Some(3.5), None, Some(2.0)]);
        let out = eval(&col("i64").div(lit(4.0)), &b);
        assert_eq!(f64s(&out), vec![Some(2.5), None, Some(7.5), Some(10.0)]);
        let out = eval(&col("f64").neg(), &b);
        assert_eq!(f64s(&out), vec![Some(-0.5), Some(-1.5), None, Some(2.0)]);
        let out = eval(&col("i32").neg(), &b);
        assert_eq!(
            out.as_ref(),
            &Int32Array::from(vec![Some(-1), Some(-2), None, Some(-4)])
        );
        // float division by zero follows IEEE 754
        let out = eval(&col("f64").div(lit(0.0)), &b);
        assert_eq!(
            f64s(&out),
            vec![
                Some(f64::INFINITY),
                Some(f64::INFINITY),
                None,
                Some(f64::NEG_INFINITY)
            ]
        );
    }

    #[test]
    fn mixed_integer_widths() {
        let b = RecordBatch::try_from_iter([
            ("u8", Arc::new(UInt8Array::from(vec![200, 1])) as ArrayRef),
            ("i8", Arc::new(Int8Array::from(vec![-100, 1]))),
            ("u32", Arc::new(UInt32Array::from(vec![70000, 2]))),
            ("f32", Arc::new(Float32Array::from(vec![0.5, 2.0]))),
        ])
        .expect("valid batch");
        assert_eq!(
            i64s(&eval(&col("u8").add(col("i8")), &b)),
            vec![Some(100), Some(2)]
        );
        let out = eval(&col("u8").add(col("u32")), &b);
        assert_eq!(out.as_ref(), &UInt32Array::from(vec![70200, 3]));
        let out = eval(&col("f32").mul(col("f32")), &b);
        assert_eq!(out.as_ref(), &Float32Array::from(vec![0.25, 4.0]));
        assert_eq!(
            bools(&eval(&col("u8").gt(col("i8")), &b)),
            vec![Some(true), Some(false)]
        );
    }

    #[test]
    fn comparisons_with_literals_on_either_side() {
        let b = batch();
        let want = vec![Some(false), None, Some(true), Some(true)];
        assert_eq!(bools(&eval(&col("i64").gt(lit(15)), &b)), want);
        assert_eq!(bools(&eval(&lit(15).lt(col("i64")), &b)), want);
        assert_eq!(
            bools(&eval(&lit(2.0).lt_eq(col("i32")), &b)),
            vec![Some(false), Some(true), None, Some(true)]
        );
        assert_eq!(
            bools(&eval(&col("i32").gt_eq(lit(2)), &b)),
            vec![Some(false), Some(true), None, Some(true)]
        );
        assert_eq!(
            bools(&eval(&col("i64").eq(lit(30)), &b)),
            vec![Some(false), None, Some(true), Some(false)]
        );
        assert_eq!(
            bools(&eval(&col("i64").not_eq(lit(30)), &b)),
            vec![Some(true), None, Some(false), Some(true)]
        );
        assert_eq!(
            bools(&eval(&col("f64").lt(col("i32")), &b)),
            vec![Some(true), Some(true), None, Some(true)]
        );
        assert_eq!(bools(&eval(&lit(1).lt(lit(2)), &b)), vec![Some(true); 4]);
    }

    #[test]
    fn string_comparisons() {
        let b = batch();
        assert_eq!(
            bools(&eval(&col("s").eq(lit("a")), &b)),
            vec![Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            bools(&eval(&lit("a").lt(col("s")), &b)),
            vec![Some(false), Some(true), None, Some(false)]
        );
        let b = RecordBatch::try_from_iter([
            (
                "large",
                Arc::new(LargeStringArray::from(vec!["x", "y"])) as ArrayRef,
            ),
            ("view", Arc::new(StringViewArray::from(vec!["x", "z"]))),
            ("plain", Arc::new(StringArray::from(vec!["x", "y"]))),
        ])
        .expect("valid batch");
        assert_eq!(
            bools(&eval(&col("large").eq(lit("y")), &b)),
            vec![Some(false), Some(true)]
        );
        assert_eq!(
            bools(&eval(&col("view").eq(col("large")), &b)),
            vec![Some(true), Some(false)]
        );
        assert_eq!(
            bools(&eval(&col("view").eq(col("view")), &b)),
            vec![Some(true), Some(true)]
        );
        assert_eq!(
            bools(&eval(&col("plain").not_eq(col("view")), &b)),
            vec![Some(false), Some(true)]
        );
    }

    #[test]
    fn temporal_columns_compare_with_integers() {
        let b = RecordBatch::try_from_iter([
            (
                "ts",
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1000),
                    Some(2000),
                    None,
                ])) as ArrayRef,
            ),
            (
                "day",
                Arc::new(Date32Array::from(vec![
                    Some(18000),
                    Some(19000),
                    Some(20000),
                ])),
            ),
        ])
        .expect("valid batch");
        assert_eq!(
            bools(&eval(&col("ts").gt(lit(1500)), &b)),
            vec![Some(false), Some(true), None]
        );
        assert_eq!(
            bools(&eval(&lit(1500).lt(col("ts")), &b)),
            vec![Some(false), Some(true), None]
        );
        assert_eq!(
            bools(&eval(&col("day").eq(lit(19000)), &b)),
            vec![Some(false), Some(true), Some(false)]
        );
        let e = col("ts").gt(lit("x"));
        assert!(expr_error(e.evaluate(&b), "(ts > 'x')").starts_with("cannot compare Timestamp"));
        let out = eval(&col("ts").eq(lit(1000)).cast(DataType::Int64), &b);
        assert_eq!(i64s(&out), vec![Some(1), Some(0), None]);
        let ts_type = DataType::Timestamp(TimeUnit::Millisecond, None);
        assert_eq!(
            eval(&lit(5).cast(ts_type.clone()), &b).data_type(),
            &ts_type
        );
    }

    fn kleene_batch() -> RecordBatch {
        let t = Some(true);
        let f = Some(false);
        RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(BooleanArray::from(vec![t, t, t, f, f, f, None, None, None])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![t, f, None, t, f, None, t, f, None])),
            ),
        ])
        .expect("valid batch")
    }

    #[test]
    fn kleene_and_or_not() {
        let b = kleene_batch();
        let (t, f, n) = (Some(true), Some(false), None);
        assert_eq!(
            bools(&eval(&col("a").and(col("b")), &b)),
            vec![t, f, n, f, f, f, n, f, n]
        );
        assert_eq!(
            bools(&eval(&col("a").or(col("b")), &b)),
            vec![t, t, t, t, f, n, t, n, n]
        );
        assert_eq!(
            bools(&eval(&col("a").not(), &b)),
            vec![f, f, f, t, t, t, n, n, n]
        );
        assert_eq!(bools(&eval(&col("a").and(lit(false)), &b)), vec![f; 9]);
        assert_eq!(bools(&eval(&lit(true).or(col("b")), &b)), vec![t; 9]);
        assert_eq!(
            bools(&eval(&col("a").or(lit(ScalarValue::Null)), &b)),
            vec![t, t, t, n, n, n, n, n, n]
        );
        assert_eq!(
            bools(&eval(&lit(ScalarValue::Null).and(col("b")), &b)),
            vec![n, f, n, n, f, n, n, f, n]
        );
        assert_eq!(bools(&eval(&lit(ScalarValue::Null).not(), &b)), vec![n; 9]);
        assert_eq!(
            bools(&eval(&lit(true).and(lit(false).not()), &b)),
            vec![t; 9]
        );
    }

    #[test]
    fn boolean_operators_reject_other_types() {
        let b = batch();
        let e = col("i64").and(lit(true));
        let msg = expr_error(e.evaluate(&b), "(i64 and true)");
        assert_eq!(msg, "`and` needs boolean operands, found Int64 on the left");
        let msg = expr_error(e.data_type(b.schema_ref()), "(i64 and true)");
        assert_eq!(msg, "`and` needs boolean operands, found Int64 on the left");
        let e = lit(true).or(col("s"));
        assert_eq!(
            expr_error(e.evaluate(&b), "(true or s)"),
            "`or` needs boolean operands, found Utf8 on the right"
        );
        let e = col("f64").not();
        assert_eq!(
            expr_error(e.evaluate(&b), "(not f64)"),
            "`not` needs boolean operands, found Float64"
        );
    }

    #[test]
    fn is_null_and_is_not_null() {
        let b = batch();
        let (t, f) = (Some(true), Some(false));
        assert_eq!(bools(&eval(&col("i64").is_null(), &b)), vec![f, t, f, f]);
        assert_eq!(bools(&eval(&col("s").is_not_null(), &b)), vec![t, t, f, t]);
        assert_eq!(
            bools(&eval(&col("i32").add(col("i64")).is_null(), &b)),
            vec![f, t, t, f]
        );
        assert_eq!(
            bools(&eval(&lit(ScalarValue::Null).is_null(), &b)),
            vec![t; 4]
        );
        assert_eq!(bools(&eval(&lit(1).is_null(), &b)), vec![f; 4]);
        assert_eq!(bools(&eval(&lit(1).is_not_null(), &b)), vec![t; 4]);
    }

    #[test]
    fn casts() {
        let b = batch();
        assert_eq!(
            i64s(&eval(&col("f64").cast(DataType::Int64), &b)),
            vec![Some(0), Some(1), None, Some(-2)]
        );
        let out = eval(&col("i32").cast(DataType::Utf8), &b);
        assert_eq!(
            out.as_ref(),
            &StringArray::from(vec![Some("1"), Some("2"), None, Some("4")])
        );
        assert_eq!(
            i64s(&eval(&lit("42").cast(DataType::Int64), &b)),
            vec![Some(42); 4]
        );
        let out = eval(&col("i64").cast(DataType::Float64).div(lit(4)), &b);
        assert_eq!(f64s(&out), vec![Some(2.5), None, Some(7.5), Some(10.0)]);

        let e = col("s").cast(DataType::Int64);
        let msg = expr_error(e.evaluate(&b), "cast(s as int64)");
        assert!(msg.contains("'a'"), "{msg}");
        let e = col("i64").cast(DataType::Struct(Fields::empty()));
        let msg = expr_error(e.data_type(b.schema_ref()), &e.to_string());
        assert_eq!(msg, "cannot cast Int64 to Struct()");
        assert!(e.evaluate(&b).is_err());
    }

    #[test]
    fn division_by_zero_is_an_error_naming_the_expression() {
        let b = batch();
        let e = col("i64").div(col("zero"));
        assert_eq!(
            expr_error(e.evaluate(&b), "(i64 / zero)"),
            "division by zero"
        );
        let e = col("i64").add(lit(1)).modulo(lit(0));
        assert_eq!(
            expr_error(e.evaluate(&b), "((i64 + 1) % 0)"),
            "division by zero"
        );
        let e = lit(1).div(lit(0)).add(col("i64"));
        assert_eq!(expr_error(e.evaluate(&b), "(1 / 0)"), "division by zero");
        let e = lit(i64::MAX).add(col("i64"));
        assert!(expr_error(e.evaluate(&b), &e.to_string()).starts_with("arithmetic overflow"));
    }

    #[test]
    fn missing_column_names_the_available_ones() {
        let b = batch();
        let e = col("i64").add(col("nope"));
        for err in [
            e.evaluate(&b).map(|_| ()),
            e.data_type(b.schema_ref()).map(|_| ()),
        ] {
            match err {
                Err(Error::Column {
                    column,
                    context,
                    message,
                }) => {
                    assert_eq!(column, "nope");
                    assert_eq!(context, "expression `(i64 + nope)`");
                    assert_eq!(
                        message,
                        "not found; available columns: i32, i64, f64, s, zero, nz"
                    );
                }
                other => panic!("expected a column error, got {other:?}"),
            }
        }
        let text = e.evaluate(&b).unwrap_err().to_string();
        assert_eq!(
            text,
            "column `nope` (expression `(i64 + nope)`): not found; available columns: i32, i64, f64, s, zero, nz"
        );
    }

    #[test]
    fn type_errors_name_the_expression() {
        let b = batch();
        let e = col("s").add(lit(1));
        assert_eq!(
            expr_error(e.data_type(b.schema_ref()), "(s + 1)"),
            "cannot apply `+` to Utf8 and Int64: arithmetic needs integer or float operands"
        );
        assert!(e.evaluate(&b).is_err());
        let e = col("s").lt(col("i32"));
        assert_eq!(
            expr_error(e.evaluate(&b), "(s < i32)"),
            "cannot compare Utf8 with Int32 using `<`"
        );
        let e = col("s").neg();
        assert!(expr_error(e.evaluate(&b), "-s").starts_with("cannot negate Utf8"));
    }

    #[test]
    fn null_literal_takes_the_other_sides_type() {
        let b = batch();
        let null = || lit(ScalarValue::Null);
        let out = eval(&col("i32").add(null()), &b);
        assert_eq!(out.data_type(), &DataType::Int32);
        assert_eq!(out.null_count(), 4);
        let out = eval(&null().mul(col("f64")), &b);
        assert_eq!(out.data_type(), &DataType::Float64);
        assert_eq!(out.null_count(), 4);
        assert_eq!(bools(&eval(&col("s").eq(null()), &b)), vec![None; 4]);
        assert_eq!(bools(&eval(&null().gt(col("i64")), &b)), vec![None; 4]);
        let out = eval(&null().add(null()), &b);
        assert_eq!(out.data_type(), &DataType::Null);
        assert_eq!(out.logical_null_count(), 4);
        assert_eq!(eval(&null().neg(), &b).data_type(), &DataType::Null);
    }

    #[test]
    fn literal_only_expressions_fill_the_batch() {
        let b = batch();
        assert_eq!(i64s(&eval(&lit(1).add(lit(2)), &b)), vec![Some(3); 4]);
        let out = eval(&lit("x"), &b);
        assert_eq!(out.as_ref(), &StringArray::from(vec!["x"; 4]));
        assert_eq!(
            f64s(&eval(&lit(2).mul(lit(0.25)).neg(), &b)),
            vec![Some(-0.5); 4]
        );
        assert_eq!(
            bools(&eval(&lit(true).and(lit(ScalarValue::Null)), &b)),
            vec![None; 4]
        );
        let empty = b.slice(0, 0);
        assert_eq!(eval(&lit(7), &empty).len(), 0);
        assert_eq!(eval(&col("i64").add(lit(1)), &empty).len(), 0);
    }

    /// Every operator over a spread of operand types: wherever `data_type`
    /// accepts an expression, `evaluate` returns exactly that type.
    #[test]
    fn data_type_agrees_with_evaluate_for_every_operator() {
        let b = batch();
        let kleene = kleene_batch();
        let operands = || {
            vec![
                col("i32"),
                col("i64"),
                col("f64"),
                col("s"),
                lit(3),
                lit(1.5),
                lit("a"),
                lit(true),
                lit(ScalarValue::Null),
            ]
        };
        let ops = [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Mod,
            BinaryOp::Eq,
            BinaryOp::NotEq,
            BinaryOp::Lt,
            BinaryOp::LtEq,
            BinaryOp::Gt,
            BinaryOp::GtEq,
            BinaryOp::And,
            BinaryOp::Or,
        ];
        let mut checked = 0;
        for op in ops {
            for l in operands() {
                for r in operands() {
                    let e = Expr::Binary {
                        left: Box::new(l.clone()),
                        op,
                        right: Box::new(r),
                    };
                    match e.data_type(b.schema_ref()) {
                        Ok(t) => {
                            eval(&e, &b);
                            if t == DataType::Boolean {
                                eval(&e.not(), &b);
                            }
                            checked += 1;
                        }
                        Err(_) => assert!(
                            e.evaluate(&b).is_err(),
                            "{e} evaluated but does not type-check"
                        ),
                    }
                }
            }
        }
        // 5 ops x 6x6 (i32 i64 f64 3 1.5 null) = 180; comparisons: 6 ops x
        // (5x5 numeric + 2x2 strings + bool=bool + 17 pairs with a null) = 282;
        // and/or: 2 ops x 2x2 (true, null) = 8.
        assert_eq!(checked, 180 + 282 + 8);
        for e in [
            col("a").and(col("b")),
            col("a").or(lit(false)),
            col("a").not(),
        ] {
            eval(&e, &kleene);
        }
        for e in operands() {
            let unaries = [
                e.clone().neg(),
                e.clone().not(),
                e.clone().is_null(),
                e.clone().is_not_null(),
            ];
            let casts = [
                DataType::Int64,
                DataType::Utf8,
                DataType::Float32,
                DataType::Boolean,
            ]
            .map(|t| e.clone().cast(t));
            for u in unaries.into_iter().chain(casts) {
                match u.evaluate(&b) {
                    Ok(out) => assert_eq!(
                        &u.data_type(b.schema_ref()).expect("type-checks"),
                        out.data_type(),
                        "{u}"
                    ),
                    // only a value cast ('a' to int64) may fail at run time
                    Err(_) => assert!(
                        u.data_type(b.schema_ref()).is_err() || matches!(u, Expr::Cast { .. }),
                        "{u}"
                    ),
                }
            }
        }
    }
}
