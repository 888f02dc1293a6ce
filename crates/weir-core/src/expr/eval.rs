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
    RecordBatch, Scalar, StringArray,
};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_ord::cmp;
use arrow_schema::{ArrowError, DataType, Schema};

use super::coerce::{check_boolean, plan_binary, plan_cast, plan_negative, BinaryPlan};
use super::function::{broadcast, ColumnarValue as Value};
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
            Expr::Case {
                branches,
                otherwise,
            } => {
                let mut values = Vec::with_capacity(branches.len() + 1);
                for (c, v) in branches {
                    let t = c.type_in(schema, root)?;
                    check_boolean("when", "", &t).map_err(|m| self.type_error(m))?;
                    values.push(v.type_in(schema, root)?);
                }
                if let Some(e) = otherwise {
                    values.push(e.type_in(schema, root)?);
                }
                case_type(&values).map_err(|m| self.type_error(m))
            }
            Expr::Function { func, args } => {
                let mut types = Vec::with_capacity(args.len());
                for a in args {
                    types.push(a.type_in(schema, root)?);
                }
                func.function()
                    .return_type(&types)
                    .map_err(|m| self.type_error(format!("{}(): {m}", func.name())))
            }
            Expr::Like { expr, pattern, .. } => {
                for (what, e) in [("value", expr), ("pattern", pattern)] {
                    let t = e.type_in(schema, root)?;
                    check_string(what, &t).map_err(|m| self.type_error(m))?;
                }
                Ok(DataType::Boolean)
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
            Expr::Case {
                branches,
                otherwise,
            } => self.eval_case(branches, otherwise.as_deref(), batch, root),
            Expr::Function { func, args } => {
                let mut values = Vec::with_capacity(args.len());
                let mut types = Vec::with_capacity(args.len());
                for a in args {
                    let v = a.eval_in(batch, root)?;
                    types.push(v.data_type().clone());
                    values.push(v);
                }
                let f = func.function();
                let want = f
                    .return_type(&types)
                    .map_err(|m| self.type_error(format!("{}(): {m}", func.name())))?;
                let all_scalar = values.iter().all(|v| matches!(v, Value::Scalar(_)));
                let rows = if all_scalar { 1 } else { batch.num_rows() };
                let out = f.invoke(&values, rows).map_err(|e| self.kernel_error(e))?;
                if out.data_type() != &want || out.len() != rows {
                    return Err(self.type_error(format!(
                        "{}() returned {} values of type {}, not {rows} of type {want}",
                        func.name(),
                        out.len(),
                        out.data_type()
                    )));
                }
                Ok(if all_scalar {
                    Value::Scalar(out)
                } else {
                    Value::Array(out)
                })
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let v = expr.eval_in(batch, root)?;
                let p = pattern.eval_in(batch, root)?;
                for (what, x) in [("value", &v), ("pattern", &p)] {
                    check_string(what, x.data_type()).map_err(|m| self.type_error(m))?;
                }
                if v.data_type() == &DataType::Null || p.data_type() == &DataType::Null {
                    let rows = match (&v, &p) {
                        (Value::Scalar(_), Value::Scalar(_)) => 1,
                        _ => batch.num_rows(),
                    };
                    let nulls = new_null_array(&DataType::Boolean, rows);
                    return Ok(if rows == 1 && matches!(v, Value::Scalar(_)) {
                        Value::Scalar(nulls)
                    } else {
                        Value::Array(nulls)
                    });
                }
                let v = v
                    .cast_to(&DataType::Utf8)
                    .map_err(|e| self.kernel_error(e))?;
                let p = p
                    .cast_to(&DataType::Utf8)
                    .map_err(|e| self.kernel_error(e))?;
                let kernel = match (negated, case_insensitive) {
                    (false, false) => arrow_string::like::like,
                    (true, false) => arrow_string::like::nlike,
                    (false, true) => arrow_string::like::ilike,
                    (true, true) => arrow_string::like::nilike,
                };
                apply2(&v, &p, compare(kernel)).map_err(|e| self.kernel_error(e))
            }
        }
    }

    /// `case`: from the last branch to the first, each row takes the
    /// branch's value where its condition is true, else what it had.
    ///
    /// ```text
    ///  result = otherwise (or nulls)
    ///  for (cond, value) in branches, last first: result = zip(cond is true, value, result)
    /// ```
    fn eval_case(
        &self,
        branches: &[(Expr, Expr)],
        otherwise: Option<&Expr>,
        batch: &RecordBatch,
        root: &Expr,
    ) -> Result<Value> {
        let n = batch.num_rows();
        let mut values = Vec::with_capacity(branches.len());
        for (_, v) in branches {
            values.push(v.eval_in(batch, root)?);
        }
        let otherwise = otherwise.map(|e| e.eval_in(batch, root)).transpose()?;
        let mut types: Vec<DataType> = values.iter().map(|v| v.data_type().clone()).collect();
        types.extend(otherwise.iter().map(|v| v.data_type().clone()));
        let out = case_type(&types).map_err(|m| self.type_error(m))?;
        let full = |v: Value| -> std::result::Result<ArrayRef, ArrowError> {
            match v.cast_to(&out)? {
                Value::Array(a) => Ok(a),
                Value::Scalar(s) => broadcast(&s, n),
            }
        };
        let mut result = match otherwise {
            Some(v) => full(v).map_err(|e| self.kernel_error(e))?,
            None => new_null_array(&out, n),
        };
        for ((c, _), v) in branches.iter().zip(values).rev() {
            let cond = c.eval_in(batch, root)?;
            check_boolean("when", "", cond.data_type()).map_err(|m| self.type_error(m))?;
            let cond = match cond.cast_to(&DataType::Boolean) {
                Ok(Value::Array(a)) => a,
                Ok(Value::Scalar(s)) => broadcast(&s, n).map_err(|e| self.kernel_error(e))?,
                Err(e) => return Err(self.kernel_error(e)),
            };
            // a null condition is not true
            let cond = as_bool(&cond);
            let mask = match cond.nulls() {
                Some(_) => arrow_select::filter::prep_null_mask_filter(cond),
                None => cond.clone(),
            };
            let value = full(v).map_err(|e| self.kernel_error(e))?;
            result =
                arrow_select::zip::zip(&mask, &value, &result).map_err(|e| self.kernel_error(e))?;
        }
        Ok(Value::Array(result))
    }
}

/// `like` takes strings (or an untyped null).
fn check_string(what: &str, t: &DataType) -> std::result::Result<(), String> {
    if super::coerce::is_string(t) || t == &DataType::Null {
        Ok(())
    } else {
        Err(format!("`like` needs a string {what}, not {t}"))
    }
}

/// The type of a `case`'s values: the one non-null type, numbers widened
/// as in arithmetic; anything else mixed is an error.
fn case_type(types: &[DataType]) -> std::result::Result<DataType, String> {
    let mut out = DataType::Null;
    for t in types {
        out = match (&out, t) {
            (_, DataType::Null) => out,
            (DataType::Null, t) => t.clone(),
            (a, b) if a == b => out,
            (a, b)
                if (a.is_integer() || a.is_floating()) && (b.is_integer() || b.is_floating()) =>
            {
                super::coerce::common_numeric(a, b)
            }
            (a, b) => return Err(format!("`case` values have different types: {a} and {b}")),
        };
    }
    Ok(out)
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

// An intermediate result is a `ColumnarValue`: a full column, or a
// literal-derived length-1 array that stands for the same value in every row.
impl Value {
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
mod tests;
