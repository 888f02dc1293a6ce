//! Aggregate functions and their per-group accumulators.
//!
//! An [`Agg`] is what a user asks for (`avg(speed) as avg_speed`); binding it
//! to a schema gives a [`BoundAgg`] that knows its input column and output
//! type; [`Accumulators`] hold the running values of many groups in flat,
//! typed vectors (one slot per group) and are updated a batch at a time.

use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, PrimitiveArray};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    /// Number of rows (or of non-null values when a column is given).
    Count,
    /// Sum of non-null values (null if there are none).
    Sum,
    /// Smallest non-null value.
    Min,
    /// Largest non-null value.
    Max,
    /// Mean of non-null values, as Float64.
    Avg,
}

impl AggFn {
    /// Parses `count`, `sum`, `min`, `max`, `avg` (or `mean`).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "count" => AggFn::Count,
            "sum" => AggFn::Sum,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "avg" | "mean" => AggFn::Avg,
            other => {
                return Err(Error::option(
                    "fn",
                    format!("unknown aggregate `{other}` (use count, sum, min, max or avg)"),
                ))
            }
        })
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::Sum => "sum",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::Avg => "avg",
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
        let Some(column) = &self.column else {
            if self.func != AggFn::Count {
                return Err(Error::option(
                    self.func.name(),
                    "needs a column (only count may omit it)",
                ));
            }
            return Ok(BoundAgg {
                func: self.func,
                input: None,
                kind: ValueKind::Int,
                field: Field::new(self.output_name(), DataType::Int64, false),
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
        let ty = field.data_type().clone();
        let kind = if self.func == AggFn::Count {
            ValueKind::Int
        } else if ty.is_floating() {
            ValueKind::Float
        } else if ty.is_integer()
            || matches!(
                ty,
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            )
        {
            ValueKind::Int
        } else {
            return Err(Error::column(
                column,
                context,
                format!("{} needs a numeric column, found {ty}", self.func.name()),
            ));
        };
        let out_ty = match (self.func, kind) {
            (AggFn::Count, _) => DataType::Int64,
            (AggFn::Avg, _) => DataType::Float64,
            (AggFn::Sum, ValueKind::Int) => DataType::Int64,
            (AggFn::Sum, ValueKind::Float) => DataType::Float64,
            (AggFn::Min | AggFn::Max, _) => ty.clone(),
        };
        Ok(BoundAgg {
            func: self.func,
            input: Some(idx),
            kind,
            field: Field::new(self.output_name(), out_ty, self.func != AggFn::Count),
        })
    }
}

/// Whether values are accumulated as `i64` or `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Integers, timestamps and dates.
    Int,
    /// Floating point.
    Float,
}

/// An aggregate resolved against an input schema.
#[derive(Debug, Clone)]
pub struct BoundAgg {
    /// The function.
    pub func: AggFn,
    /// Input column index (`None` for `count(*)`).
    pub input: Option<usize>,
    /// How values are accumulated.
    pub kind: ValueKind,
    /// The output field.
    pub field: Field,
}

/// The input values of one aggregate for one batch, cast once.
pub enum Values {
    /// `count(*)`, or a count over a column without nulls: no values needed.
    Rows,
    /// A count over a column with nulls: which rows are valid.
    Valid(arrow_buffer::NullBuffer),
    /// Integer-like values.
    Int(Int64Array),
    /// Floating values.
    Float(Float64Array),
}

impl BoundAgg {
    /// Casts this aggregate's input column of `columns` for accumulation.
    pub fn values(&self, columns: &[ArrayRef]) -> Result<Values> {
        let Some(idx) = self.input else {
            return Ok(Values::Rows);
        };
        let col = &columns[idx];
        if self.func == AggFn::Count {
            return Ok(match col.logical_nulls() {
                Some(nulls) if nulls.null_count() > 0 => Values::Valid(nulls),
                _ => Values::Rows,
            });
        }
        Ok(match self.kind {
            ValueKind::Int => Values::Int(
                arrow_cast::cast(col, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            ValueKind::Float => Values::Float(
                arrow_cast::cast(col, &DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
        })
    }
}

/// Running values of one aggregate for many groups, indexed by group id.
#[derive(Debug, Clone)]
pub enum Accumulators {
    /// Counts.
    Count(Vec<i64>),
    /// Integer sums (`None` until a value is seen).
    SumInt(Vec<Option<i64>>),
    /// Float sums.
    SumFloat(Vec<Option<f64>>),
    /// Integer min or max.
    ExtremeInt {
        /// True for max.
        max: bool,
        /// Current extreme per group.
        values: Vec<Option<i64>>,
    },
    /// Float min or max.
    ExtremeFloat {
        /// True for max.
        max: bool,
        /// Current extreme per group.
        values: Vec<Option<f64>>,
    },
    /// Sum and count of non-null values.
    Avg(Vec<(f64, i64)>),
}

impl Accumulators {
    /// Empty accumulators for `agg`.
    pub fn new(agg: &BoundAgg) -> Self {
        match (agg.func, agg.kind) {
            (AggFn::Count, _) => Accumulators::Count(Vec::new()),
            (AggFn::Sum, ValueKind::Int) => Accumulators::SumInt(Vec::new()),
            (AggFn::Sum, ValueKind::Float) => Accumulators::SumFloat(Vec::new()),
            (AggFn::Min | AggFn::Max, ValueKind::Int) => Accumulators::ExtremeInt {
                max: agg.func == AggFn::Max,
                values: Vec::new(),
            },
            (AggFn::Min | AggFn::Max, ValueKind::Float) => Accumulators::ExtremeFloat {
                max: agg.func == AggFn::Max,
                values: Vec::new(),
            },
            (AggFn::Avg, _) => Accumulators::Avg(Vec::new()),
        }
    }

    /// Bytes used per group (for memory accounting).
    pub fn bytes_per_group(&self) -> usize {
        match self {
            Accumulators::Count(_) => 8,
            Accumulators::SumInt(_) | Accumulators::ExtremeInt { .. } => 16,
            Accumulators::SumFloat(_)
            | Accumulators::ExtremeFloat { .. }
            | Accumulators::Avg(_) => 16,
        }
    }

    /// Makes room for groups `0..n`.
    pub fn resize(&mut self, n: usize) {
        match self {
            Accumulators::Count(v) => v.resize(n, 0),
            Accumulators::SumInt(v) => v.resize(n, None),
            Accumulators::SumFloat(v) => v.resize(n, None),
            Accumulators::ExtremeInt { values, .. } => values.resize(n, None),
            Accumulators::ExtremeFloat { values, .. } => values.resize(n, None),
            Accumulators::Avg(v) => v.resize(n, (0.0, 0)),
        }
    }

    /// Adds row `rows[i]` of `values` to group `groups[i]`, for every `i`.
    pub fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        column: &str,
    ) -> Result<()> {
        fn each<T: arrow_array::ArrowPrimitiveType>(
            groups: &[u32],
            rows: &[u32],
            arr: &PrimitiveArray<T>,
            mut f: impl FnMut(usize, T::Native) -> Result<()>,
        ) -> Result<()> {
            let vals = arr.values();
            if arr.null_count() == 0 {
                for (&g, &r) in groups.iter().zip(rows) {
                    f(g as usize, vals[r as usize])?;
                }
            } else {
                for (&g, &r) in groups.iter().zip(rows) {
                    if arr.is_valid(r as usize) {
                        f(g as usize, vals[r as usize])?;
                    }
                }
            }
            Ok(())
        }
        match (self, values) {
            (Accumulators::Count(c), Values::Rows) => {
                for &g in groups {
                    c[g as usize] += 1;
                }
            }
            (Accumulators::Count(c), Values::Valid(nulls)) => {
                for (&g, &r) in groups.iter().zip(rows) {
                    c[g as usize] += i64::from(nulls.is_valid(r as usize));
                }
            }
            (Accumulators::SumInt(s), Values::Int(a)) => each(groups, rows, a, |g, v| {
                let next = s[g]
                    .unwrap_or(0)
                    .checked_add(v)
                    .ok_or_else(|| Error::column(column, "sum", "Int64 overflow while summing"))?;
                s[g] = Some(next);
                Ok(())
            })?,
            (Accumulators::SumFloat(s), Values::Float(a)) => each(groups, rows, a, |g, v| {
                s[g] = Some(s[g].unwrap_or(0.0) + v);
                Ok(())
            })?,
            (Accumulators::ExtremeInt { max, values: m }, Values::Int(a)) => {
                let max = *max;
                each(groups, rows, a, |g, v| {
                    m[g] = Some(match m[g] {
                        None => v,
                        Some(cur) if max => cur.max(v),
                        Some(cur) => cur.min(v),
                    });
                    Ok(())
                })?
            }
            (Accumulators::ExtremeFloat { max, values: m }, Values::Float(a)) => {
                let max = *max;
                each(groups, rows, a, |g, v| {
                    m[g] = Some(match m[g] {
                        None => v,
                        Some(cur) if max => cur.max(v),
                        Some(cur) => cur.min(v),
                    });
                    Ok(())
                })?
            }
            (Accumulators::Avg(s), Values::Int(a)) => each(groups, rows, a, |g, v| {
                s[g].0 += v as f64;
                s[g].1 += 1;
                Ok(())
            })?,
            (Accumulators::Avg(s), Values::Float(a)) => each(groups, rows, a, |g, v| {
                s[g].0 += v;
                s[g].1 += 1;
                Ok(())
            })?,
            _ => unreachable!("values are cast to the accumulator's kind by BoundAgg::values"),
        }
        Ok(())
    }

    /// The final values of `groups`, in that order, as `agg.field`'s type.
    pub fn finish(&self, groups: &[u32], agg: &BoundAgg) -> Result<ArrayRef> {
        let pick = |g: &u32| *g as usize;
        let array: ArrayRef = match self {
            Accumulators::Count(c) => Arc::new(Int64Array::from_iter_values(
                groups.iter().map(|g| c[pick(g)]),
            )),
            Accumulators::SumInt(s) => {
                Arc::new(groups.iter().map(|g| s[pick(g)]).collect::<Int64Array>())
            }
            Accumulators::SumFloat(s) => {
                Arc::new(groups.iter().map(|g| s[pick(g)]).collect::<Float64Array>())
            }
            Accumulators::ExtremeInt { values, .. } => Arc::new(
                groups
                    .iter()
                    .map(|g| values[pick(g)])
                    .collect::<Int64Array>(),
            ),
            Accumulators::ExtremeFloat { values, .. } => Arc::new(
                groups
                    .iter()
                    .map(|g| values[pick(g)])
                    .collect::<Float64Array>(),
            ),
            Accumulators::Avg(s) => Arc::new(
                groups
                    .iter()
                    .map(|g| {
                        let (sum, n) = s[pick(g)];
                        (n > 0).then(|| sum / n as f64)
                    })
                    .collect::<Float64Array>(),
            ),
        };
        if array.data_type() == agg.field.data_type() {
            Ok(array)
        } else {
            Ok(arrow_cast::cast(&array, agg.field.data_type())?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int32Array;

    #[test]
    fn accumulators_match_hand_computed_values_with_nulls() {
        let schema = Schema::new(vec![Field::new("v", DataType::Int32, true)]);
        let col: ArrayRef = Arc::new(Int32Array::from(vec![
            Some(4),
            None,
            Some(-2),
            Some(7),
            None,
        ]));
        let groups = [0u32, 0, 0, 1, 2];
        let rows = [0u32, 1, 2, 3, 4];
        let expect: [(Agg, Vec<Option<f64>>); 6] = [
            (Agg::count(), vec![Some(3.0), Some(1.0), Some(1.0)]),
            (
                Agg::count_column("v"),
                vec![Some(2.0), Some(1.0), Some(0.0)],
            ),
            (Agg::sum("v"), vec![Some(2.0), Some(7.0), None]),
            (Agg::min("v"), vec![Some(-2.0), Some(7.0), None]),
            (Agg::max("v"), vec![Some(4.0), Some(7.0), None]),
            (Agg::avg("v"), vec![Some(1.0), Some(7.0), None]),
        ];
        for (agg, want) in expect {
            let bound = agg.bind(&schema, "test").unwrap();
            let mut acc = Accumulators::new(&bound);
            acc.resize(3);
            let values = bound.values(std::slice::from_ref(&col)).unwrap();
            acc.update(&groups, &rows, &values, "v").unwrap();
            let out = acc.finish(&[0, 1, 2], &bound).unwrap();
            assert_eq!(out.data_type(), bound.field.data_type());
            let out = arrow_cast::cast(&out, &DataType::Float64).unwrap();
            let got: Vec<Option<f64>> = out.as_primitive::<Float64Type>().iter().collect();
            assert_eq!(got, want, "{:?}", agg.func);
        }
    }

    #[test]
    fn binding_checks_columns_and_types() {
        let schema = Schema::new(vec![Field::new("s", DataType::Utf8, true)]);
        assert!(Agg::sum("s")
            .bind(&schema, "w")
            .unwrap_err()
            .to_string()
            .contains("numeric"));
        assert!(Agg::sum("x").bind(&schema, "w").is_err());
        assert!(Agg::count_column("s").bind(&schema, "w").is_ok());
        assert_eq!(Agg::avg("speed").output_name(), "avg_speed");
        assert_eq!(AggFn::parse("MEAN").unwrap(), AggFn::Avg);
        assert!(AggFn::parse("median").is_err());
    }
}
