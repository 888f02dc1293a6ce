//! Aggregate functions and their per-group accumulators.
//!
//! An [`Agg`] is what a user asks for (`avg(speed) as avg_speed`); binding it
//! to a schema gives a [`BoundAgg`] that knows its input column, how values
//! are read ([`ValueKind`]), its output type and the columns of its partial
//! state; [`Accumulators`] hold the running values of many groups in flat,
//! typed vectors (one slot per group), are updated a batch at a time, merge
//! group by group (panes, sessions) and export / import partial states as
//! Arrow columns (spill, checkpoints). User-defined aggregates plug in through
//! [`AggregateUdf`].
//!
//! ```text
//!  Agg ──bind(schema)──► BoundAgg ──values(columns)──► Values (cast once per batch)
//!                           │                             │
//!                 Accumulators::new ──update(groups, rows, values, times)
//!                 merge / merge_groups / reset / to_state / merge_state ──► finish
//! ```
//!
//! Files: this one owns the user-facing types (`Agg`, `AggFn`, `BoundAgg`,
//! `Values`); `accumulators` the group-indexed state and its checks;
//! `numeric` count, sum and avg; `exact_sum` the order-independent float
//! sum they add in; `value` the typed values shared by
//! `extreme` (min, max, first, last), `retracting` (min and max over a
//! changelog) and `distinct` (count_distinct, sum_distinct,
//! avg_distinct); `udf`
//! the user-defined aggregates.
//! May use `weir_core::error` and the arrow crates only.

mod accumulators;
mod distinct;
mod exact_sum;
mod extreme;
mod numeric;
mod retracting;
mod udf;
mod value;

#[cfg(test)]
mod tests;

pub use accumulators::Accumulators;
pub use exact_sum::ExactSum;
pub use udf::{AggregateState, AggregateUdf, ScalarValueOrArray};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, UInt64Array};
use arrow_cast::CastOptions;
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// An aggregate function.
#[derive(Debug, Clone)]
pub enum AggFn {
    /// Number of rows (or of non-null values when a column is given).
    Count,
    /// Sum of non-null values (null if there are none).
    Sum,
    /// Smallest non-null value (floats: total order, NaN is largest).
    Min,
    /// Largest non-null value (floats: total order, NaN is largest).
    Max,
    /// Mean of non-null values, as Float64.
    Avg,
    /// The non-null value with the smallest event time; ties go to the
    /// smallest value, so the result never depends on arrival order.
    First,
    /// The non-null value with the largest event time; ties go to the
    /// largest value.
    Last,
    /// Number of distinct non-null values (exact; floats compare by bit
    /// pattern with `-0.0` as `0.0` and every NaN as one value).
    CountDistinct,
    /// Sum of the distinct non-null values (SQL's `SUM(DISTINCT x)`): Int64
    /// for integers, Float64 for floats, added in ascending order.
    SumDistinct,
    /// Mean of the distinct non-null values (`AVG(DISTINCT x)`), as Float64.
    AvgDistinct,
    /// `inner` (min, max, count_distinct, sum_distinct or avg_distinct)
    /// over rows that may be retracted: the Int64 column `sign` is each
    /// row's sign (+1 adds the value, -1 takes one occurrence of it back;
    /// null or 0 counts nothing). SQL's `MIN`, `MAX` and `DISTINCT`
    /// aggregates over a changelog. Built with [`Agg::retracting`].
    Retracting {
        /// The function over what is left.
        inner: Box<AggFn>,
        /// The sign column.
        sign: String,
    },
    /// A user-defined aggregate.
    Udf(Arc<dyn AggregateUdf>),
}

impl PartialEq for AggFn {
    /// Builtins compare by kind, user-defined aggregates by identity.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (AggFn::Udf(a), AggFn::Udf(b)) => Arc::ptr_eq(a, b),
            (
                AggFn::Retracting { inner, sign },
                AggFn::Retracting {
                    inner: other,
                    sign: other_sign,
                },
            ) => inner == other && sign == other_sign,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for AggFn {}

impl AggFn {
    /// Parses `count`, `sum`, `min`, `max`, `avg` (or `mean`), `first`,
    /// `last`, `count_distinct` (or `distinct_count`), `sum_distinct`,
    /// `avg_distinct` (or `mean_distinct`). User-defined
    /// aggregates are not parsed: build them with [`Agg::udf`].
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "count" => AggFn::Count,
            "sum" => AggFn::Sum,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "avg" | "mean" => AggFn::Avg,
            "first" => AggFn::First,
            "last" => AggFn::Last,
            "count_distinct" | "distinct_count" => AggFn::CountDistinct,
            "sum_distinct" => AggFn::SumDistinct,
            "avg_distinct" | "mean_distinct" => AggFn::AvgDistinct,
            other => {
                return Err(Error::option(
                    "fn",
                    format!(
                        "unknown aggregate `{other}` (use count, sum, min, max, avg, first, last, \
                         count_distinct, sum_distinct or avg_distinct)"
                    ),
                ))
            }
        })
    }

    /// The lower-case name (a user-defined aggregate's own name).
    pub fn name(&self) -> &str {
        match self {
            AggFn::Count => "count",
            AggFn::Sum => "sum",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::Avg => "avg",
            AggFn::First => "first",
            AggFn::Last => "last",
            AggFn::CountDistinct => "count_distinct",
            AggFn::SumDistinct => "sum_distinct",
            AggFn::AvgDistinct => "avg_distinct",
            AggFn::Retracting { inner, .. } => inner.name(),
            AggFn::Udf(udf) => udf.name(),
        }
    }
}

/// One requested aggregate: function, input column and output name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agg {
    /// The function.
    pub func: AggFn,
    /// The input column (`None` only for `count(*)`).
    pub column: Option<String>,
    /// The output column name (default `fn_column`, or `count`).
    pub alias: Option<String>,
}

impl Agg {
    /// `count(*)`: number of rows.
    pub fn count() -> Self {
        Agg {
            func: AggFn::Count,
            column: None,
            alias: None,
        }
    }
    /// `count(column)`: number of non-null values.
    pub fn count_column(column: impl Into<String>) -> Self {
        Agg::of(AggFn::Count, column)
    }
    /// `sum(column)`.
    pub fn sum(column: impl Into<String>) -> Self {
        Agg::of(AggFn::Sum, column)
    }
    /// `min(column)`.
    pub fn min(column: impl Into<String>) -> Self {
        Agg::of(AggFn::Min, column)
    }
    /// `max(column)`.
    pub fn max(column: impl Into<String>) -> Self {
        Agg::of(AggFn::Max, column)
    }
    /// `avg(column)`.
    pub fn avg(column: impl Into<String>) -> Self {
        Agg::of(AggFn::Avg, column)
    }
    /// `first(column)`: the value with the smallest event time.
    pub fn first(column: impl Into<String>) -> Self {
        Agg::of(AggFn::First, column)
    }
    /// `last(column)`: the value with the largest event time.
    pub fn last(column: impl Into<String>) -> Self {
        Agg::of(AggFn::Last, column)
    }
    /// `count_distinct(column)`: number of distinct non-null values.
    pub fn count_distinct(column: impl Into<String>) -> Self {
        Agg::of(AggFn::CountDistinct, column)
    }

    /// `sum_distinct(column)`: sum of the distinct non-null values.
    pub fn sum_distinct(column: impl Into<String>) -> Self {
        Agg::of(AggFn::SumDistinct, column)
    }

    /// `avg_distinct(column)`: mean of the distinct non-null values.
    pub fn avg_distinct(column: impl Into<String>) -> Self {
        Agg::of(AggFn::AvgDistinct, column)
    }
    /// This aggregate (min, max, or a distinct one) over rows that may be
    /// retracted: `sign` (an Int64 column) is +1 for a row that adds its
    /// value, -1 for one that takes it back (see [`AggFn::Retracting`];
    /// count, sum and avg are retracted with signed sums instead).
    ///
    /// # Examples
    /// ```
    /// use weir_functions::Agg;
    /// let top = Agg::max("price").retracting("sign").alias("top");
    /// assert_eq!(top.output_name(), "top");
    /// ```
    pub fn retracting(mut self, sign: impl Into<String>) -> Self {
        self.func = AggFn::Retracting {
            inner: Box::new(self.func),
            sign: sign.into(),
        };
        self
    }
    /// A user-defined aggregate over `column`.
    pub fn udf(udf: Arc<dyn AggregateUdf>, column: impl Into<String>) -> Self {
        Agg::of(AggFn::Udf(udf), column)
    }
    /// `func(column)`.
    pub fn of(func: AggFn, column: impl Into<String>) -> Self {
        Agg {
            func,
            column: Some(column.into()),
            alias: None,
        }
    }
    /// Names the output column.
    pub fn alias(mut self, name: impl Into<String>) -> Self {
        self.alias = Some(name.into());
        self
    }

    /// The output column name.
    pub fn output_name(&self) -> String {
        match (&self.alias, &self.column) {
            (Some(a), _) => a.clone(),
            (None, Some(c)) => format!("{}_{c}", self.func.name()),
            (None, None) => self.func.name().to_string(),
        }
    }

    /// Resolves the input column in `schema` and checks its type.
    pub fn bind(&self, schema: &Schema, context: &str) -> Result<BoundAgg> {
        let name = self.output_name();
        if let AggFn::Retracting { inner, sign } = &self.func {
            return self.bind_retracting(inner, sign, schema, context);
        }
        let Some(column) = &self.column else {
            if self.func != AggFn::Count {
                return Err(Error::option(
                    self.func.name(),
                    "needs a column (only count may omit it)",
                ));
            }
            return Ok(BoundAgg {
                func: AggFn::Count,
                input: None,
                sign: None,
                kind: ValueKind::Int,
                state_fields: accumulators::state_fields(&AggFn::Count, ValueKind::Int, &name)?,
                field: Field::new(name, DataType::Int64, false),
            });
        };
        let (idx, field) = schema.column_with_name(column).ok_or_else(|| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            Error::column(
                column,
                context,
                format!(
                    "aggregate input not found; available columns: {}",
                    names.join(", ")
                ),
            )
        })?;
        let ty = field.data_type();
        let numeric = ty.is_integer()
            || matches!(
                ty,
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            );
        let kind = match &self.func {
            AggFn::Retracting { .. } => unreachable!("bound by bind_retracting above"),
            AggFn::Count => Some(ValueKind::Int),
            AggFn::Udf(_) => Some(ValueKind::Raw),
            AggFn::Sum | AggFn::SumDistinct if ty.is_floating() => Some(ValueKind::Float),
            // distinct UInt64 values stay exact (as u64) for their sum and mean
            AggFn::SumDistinct | AggFn::AvgDistinct if ty == &DataType::UInt64 => {
                Some(ValueKind::UInt)
            }
            AggFn::Avg | AggFn::AvgDistinct if ty.is_floating() || ty == &DataType::UInt64 => {
                Some(ValueKind::Float)
            }
            AggFn::Sum | AggFn::Avg | AggFn::SumDistinct | AggFn::AvgDistinct => {
                numeric.then_some(ValueKind::Int)
            }
            AggFn::Min | AggFn::Max | AggFn::First | AggFn::Last | AggFn::CountDistinct => match ty
            {
                DataType::UInt64 => Some(ValueKind::UInt),
                t if t.is_floating() => Some(ValueKind::Float),
                DataType::Boolean => Some(ValueKind::Bool),
                DataType::Utf8 | DataType::LargeUtf8 => Some(ValueKind::Str),
                _ => numeric.then_some(ValueKind::Int),
            },
        };
        let Some(kind) = kind else {
            let needs = match self.func {
                AggFn::Sum | AggFn::Avg | AggFn::SumDistinct | AggFn::AvgDistinct => {
                    "a numeric column"
                }
                _ => "a numeric, temporal, boolean or string column",
            };
            return Err(Error::column(
                column,
                context,
                format!("{} needs {needs}, found {ty}", self.func.name()),
            ));
        };
        let out_ty = match (&self.func, kind) {
            (AggFn::Retracting { .. }, _) => unreachable!("bound by bind_retracting above"),
            (AggFn::Count | AggFn::CountDistinct, _) => DataType::Int64,
            (AggFn::Avg | AggFn::AvgDistinct, _) => DataType::Float64,
            (AggFn::Sum | AggFn::SumDistinct, ValueKind::Float) => DataType::Float64,
            (AggFn::Sum | AggFn::SumDistinct, _) => DataType::Int64,
            (AggFn::Min | AggFn::Max | AggFn::First | AggFn::Last, _) => ty.clone(),
            (AggFn::Udf(udf), _) => udf
                .return_type(ty)
                .map_err(|e| Error::column(column, context, format!("{}: {e}", udf.name())))?,
        };
        let state_fields = match &self.func {
            AggFn::Udf(udf) => {
                let state = udf
                    .state_type(ty)
                    .map_err(|e| Error::column(column, context, format!("{}: {e}", udf.name())))?;
                vec![Field::new(format!("{name}.state"), state, true)]
            }
            func => accumulators::state_fields(func, kind, &name)?,
        };
        let counts = matches!(self.func, AggFn::Count | AggFn::CountDistinct);
        Ok(BoundAgg {
            func: self.func.clone(),
            input: Some(idx),
            sign: None,
            kind,
            field: Field::new(name, out_ty, !counts),
            state_fields,
        })
    }
}

impl Agg {
    /// [`Agg::bind`] of `inner` over retracted rows signed by `sign`: read
    /// and typed as `inner` is, its state the multiset of values.
    fn bind_retracting(
        &self,
        inner: &AggFn,
        sign: &str,
        schema: &Schema,
        context: &str,
    ) -> Result<BoundAgg> {
        let name = self.output_name();
        let udf = matches!(inner, AggFn::Udf(u) if u.retracts());
        if !udf
            && !matches!(
                inner,
                AggFn::Min
                    | AggFn::Max
                    | AggFn::CountDistinct
                    | AggFn::SumDistinct
                    | AggFn::AvgDistinct
            )
        {
            return Err(Error::option(
                inner.name(),
                "takes no rows back: min, max, count_distinct, sum_distinct, avg_distinct and \
                 user aggregates that retract do (count, sum and avg take rows back as signed \
                 sums)",
            ));
        }
        let plain = Agg {
            func: inner.clone(),
            column: self.column.clone(),
            alias: Some(name.clone()),
        }
        .bind(schema, context)?;
        let (i, f) = schema.column_with_name(sign).ok_or_else(|| {
            Error::column(
                sign,
                context,
                format!("the sign column of {name} is not there"),
            )
        })?;
        if f.data_type() != &DataType::Int64 {
            return Err(Error::column(
                sign,
                context,
                format!("a sign column is Int64 (+1, -1), found {}", f.data_type()),
            ));
        }
        Ok(BoundAgg {
            func: self.func.clone(),
            input: plain.input,
            sign: Some(i),
            kind: plain.kind,
            // a user aggregate keeps its own state (it takes rows back itself)
            state_fields: if udf {
                plain.state_fields
            } else {
                accumulators::state_fields(&self.func, plain.kind, &name)?
            },
            field: plain.field,
        })
    }
}

/// How an aggregate reads its input values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// As `i64`: integers (except UInt64 for min/max/first/last/distinct),
    /// timestamps and dates. Also used by counts, which read no values.
    Int,
    /// As `u64`: UInt64 for min, max, first, last and count_distinct.
    UInt,
    /// As `f64`: floating point.
    Float,
    /// As booleans.
    Bool,
    /// As strings (Utf8 or LargeUtf8).
    Str,
    /// The column as it is, for user-defined aggregates.
    Raw,
}

/// An aggregate resolved against an input schema (made by [`Agg::bind`]).
#[derive(Debug, Clone)]
pub struct BoundAgg {
    /// The function.
    pub func: AggFn,
    /// Input column index (`None` for `count(*)`).
    pub input: Option<usize>,
    /// The sign column's index (min and max over retracted rows).
    pub sign: Option<usize>,
    /// How values are read.
    pub kind: ValueKind,
    /// The output field.
    pub field: Field,
    /// The columns of a partial state (see [`Accumulators::state_fields`]).
    state_fields: Vec<Field>,
}

/// The input values of one aggregate for one batch, cast once.
#[derive(Debug, Clone)]
pub enum Values {
    /// `count(*)`, or a count over a column without nulls: no values needed.
    Rows,
    /// A count over a column with nulls: which rows are valid.
    Valid(arrow_buffer::NullBuffer),
    /// Signed integer-like values.
    Int(Int64Array),
    /// Unsigned 64-bit values.
    UInt(UInt64Array),
    /// Floating values.
    Float(Float64Array),
    /// Booleans.
    Bool(BooleanArray),
    /// The column as it is: strings (Utf8 or LargeUtf8) and the input of
    /// user-defined aggregates.
    Array(ArrayRef),
    /// Values with each row's sign (+1 add, -1 take back): the input of
    /// min and max over retracted rows.
    Signed {
        /// The values.
        values: Box<Values>,
        /// Each row's sign.
        signs: Int64Array,
    },
}

impl Values {
    /// Number of rows, or `None` for [`Values::Rows`].
    pub fn len(&self) -> Option<usize> {
        Some(match self {
            Values::Rows => return None,
            Values::Valid(n) => n.len(),
            Values::Int(a) => a.len(),
            Values::UInt(a) => a.len(),
            Values::Float(a) => a.len(),
            Values::Bool(a) => a.len(),
            Values::Array(a) => a.len(),
            Values::Signed { signs, .. } => signs.len(),
        })
    }

    /// A short description for error messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Values::Rows => "no values (row counts)".into(),
            Values::Valid(_) => "no values (validity)".into(),
            Values::Int(_) => "Int64 values".into(),
            Values::UInt(_) => "UInt64 values".into(),
            Values::Float(_) => "Float64 values".into(),
            Values::Bool(_) => "Boolean values".into(),
            Values::Array(a) => format!("a {} column", a.data_type()),
            Values::Signed { values, .. } => format!("signed {}", values.describe()),
        }
    }

    /// True if there are known to be no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl BoundAgg {
    /// Casts this aggregate's input column of `columns` for accumulation.
    pub fn values(&self, columns: &[ArrayRef]) -> Result<Values> {
        let Some(idx) = self.input else {
            return Ok(Values::Rows);
        };
        let col = columns.get(idx).ok_or_else(|| {
            Error::column(
                self.field.name(),
                "aggregate",
                format!(
                    "input column {idx} missing: the batch has {} columns",
                    columns.len()
                ),
            )
        })?;
        if self.func == AggFn::Count {
            return Ok(match col.logical_nulls() {
                Some(nulls) if nulls.null_count() > 0 => Values::Valid(nulls),
                _ => Values::Rows,
            });
        }
        let cast = |to: &DataType| {
            let exact = CastOptions {
                safe: false,
                ..Default::default()
            };
            arrow_cast::cast_with_options(col, to, &exact).map_err(|e| {
                Error::column(
                    self.field.name(),
                    "aggregate",
                    format!("cannot read {} as {to}: {e}", col.data_type()),
                )
            })
        };
        let values = match self.kind {
            ValueKind::Int => {
                Values::Int(cast(&DataType::Int64)?.as_primitive::<Int64Type>().clone())
            }
            ValueKind::UInt => Values::UInt(
                cast(&DataType::UInt64)?
                    .as_primitive::<UInt64Type>()
                    .clone(),
            ),
            ValueKind::Float => Values::Float(
                cast(&DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
            ValueKind::Bool => Values::Bool(cast(&DataType::Boolean)?.as_boolean().clone()),
            ValueKind::Str | ValueKind::Raw => Values::Array(col.clone()),
        };
        let Some(sign) = self.sign else {
            return Ok(values);
        };
        let signs = columns.get(sign).ok_or_else(|| {
            Error::column(
                self.field.name(),
                "aggregate",
                format!(
                    "sign column {sign} missing: the batch has {} columns",
                    columns.len()
                ),
            )
        })?;
        let signs = signs.as_primitive_opt::<Int64Type>().ok_or_else(|| {
            Error::column(
                self.field.name(),
                "aggregate",
                format!("the sign column is {}, not Int64", signs.data_type()),
            )
        })?;
        Ok(Values::Signed {
            values: Box::new(values),
            signs: signs.clone(),
        })
    }
}
