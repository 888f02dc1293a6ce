//! Group-indexed accumulator state: the public [`Accumulators`], the
//! internal [`GroupAcc`] trait every function implements, and the
//! partial-state layout ([`state_fields`]).
//!
//! `Accumulators` checks its arguments (group ids in range, row ids inside
//! the values, state columns of the right count and length) once per call,
//! so the implementations (`numeric`, `extreme`, `distinct`, `udf`) can index
//! their vectors directly. May use `weir_core::error` and the arrow crates only.

use super::distinct::{Distinct, Report};
use super::extreme::Extreme;
use super::numeric::{Avg, Count, SumFloat, SumInt};
use super::retracting::{Keep, Retracting};
use super::udf::UdfAcc;
use super::value::native_type;
use super::{AggFn, BoundAgg, ValueKind, Values};
use arrow_array::{new_empty_array, ArrayRef};
use arrow_schema::{DataType, Field};
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// One aggregate's state for groups `0..len()`; see [`Accumulators`] for
/// the meaning of each method. Group and row ids are already checked.
pub(super) trait GroupAcc: Send + Debug {
    fn len(&self) -> usize;
    fn resize(&mut self, n: usize);
    /// Fixed bytes per group slot (variable-size data excluded).
    fn slot_bytes(&self) -> usize;
    /// Whether `update` reads event times.
    fn uses_times(&self) -> bool {
        false
    }
    fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        times: &[i64],
        column: &str,
    ) -> Result<()>;
    /// `other` has the same concrete type (checked by the caller via `as_any`).
    fn merge(&mut self, into: usize, other: &dyn GroupAcc, from: usize, column: &str)
        -> Result<()>;
    fn reset(&mut self, group: usize);
    /// Final values in the accumulator's native type.
    fn finish(&self, groups: &[u32], column: &str) -> Result<ArrayRef>;
    fn memory_size(&self) -> usize;
    fn to_state(&self, groups: &[u32], column: &str) -> Result<Vec<ArrayRef>>;
    fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef], column: &str) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
}

/// Running values of one aggregate for many groups, indexed by group id.
///
/// Every method taking group ids expects them below the size given to
/// [`Accumulators::resize`] and returns an error otherwise.
#[derive(Debug)]
pub struct Accumulators {
    /// The aggregate's output name, for error messages.
    name: String,
    /// Number of partial-state columns.
    state_width: usize,
    inner: Box<dyn GroupAcc>,
}

/// The partial-state columns of a builtin `func` reading `kind` values,
/// named `{name}.{part}`.
pub(super) fn state_fields(func: &AggFn, kind: ValueKind, name: &str) -> Result<Vec<Field>> {
    let field = |part: &str, ty: DataType, nullable: bool| {
        Field::new(format!("{name}.{part}"), ty, nullable)
    };
    let value = native_type(kind);
    Ok(match func {
        AggFn::Count => vec![field("count", DataType::Int64, false)],
        // an exact sum's parts (see exact_sum): high and low 64 bits, exponent
        AggFn::Sum if kind == ValueKind::Float => vec![
            field("sum", DataType::Int64, true),
            field("sum_lo", DataType::Int64, false),
            field("sum_exp", DataType::Int32, false),
        ],
        // 128-bit partial sums: overflow is judged on the final value only,
        // so it cannot depend on the order rows arrive in
        AggFn::Sum => vec![field("sum", DataType::Decimal128(38, 0), true)],
        AggFn::Avg => vec![
            field("sum", DataType::Int64, false),
            field("sum_lo", DataType::Int64, false),
            field("sum_exp", DataType::Int32, false),
            field("count", DataType::Int64, false),
        ],
        AggFn::Min | AggFn::Max => vec![field("value", value, true)],
        AggFn::First | AggFn::Last => vec![
            field("time", DataType::Int64, true),
            field("value", value, true),
        ],
        // each group's values and their signed counts, values sorted
        AggFn::Retracting { .. } => vec![
            field(
                "values",
                DataType::LargeList(Arc::new(Field::new_list_field(value, false))),
                false,
            ),
            field(
                "counts",
                DataType::LargeList(Arc::new(Field::new_list_field(DataType::Int64, false))),
                false,
            ),
        ],
        AggFn::CountDistinct | AggFn::SumDistinct | AggFn::AvgDistinct => {
            let item = Arc::new(Field::new_list_field(value, false));
            vec![field("distinct", DataType::LargeList(item), false)]
        }
        AggFn::Udf(udf) => {
            return Err(Error::option(
                udf.name(),
                "the state of a user-defined aggregate comes from its state_type",
            ))
        }
    })
}

/// `Box::new($make)` with `$t` bound to the native type of `$kind`.
macro_rules! typed {
    ($kind:expr, $t:ident => $make:expr) => {
        match $kind {
            ValueKind::Int => {
                type $t = i64;
                Box::new($make) as Box<dyn GroupAcc>
            }
            ValueKind::UInt => {
                type $t = u64;
                Box::new($make) as Box<dyn GroupAcc>
            }
            ValueKind::Float => {
                type $t = f64;
                Box::new($make) as Box<dyn GroupAcc>
            }
            ValueKind::Bool => {
                type $t = bool;
                Box::new($make) as Box<dyn GroupAcc>
            }
            ValueKind::Str | ValueKind::Raw => {
                type $t = String;
                Box::new($make) as Box<dyn GroupAcc>
            }
        }
    };
}

impl Accumulators {
    /// Empty accumulators for `agg` (no groups until [`Accumulators::resize`]).
    pub fn new(agg: &BoundAgg) -> Self {
        // a user aggregate over retractions takes rows back itself
        // (AggregateState::retract): the same accumulator
        let func = match &agg.func {
            AggFn::Retracting { inner, .. } if matches!(**inner, AggFn::Udf(_)) => &**inner,
            f => f,
        };
        let inner: Box<dyn GroupAcc> = match (func, agg.kind) {
            (AggFn::Count, _) => Box::new(Count::default()),
            (AggFn::Sum, ValueKind::Float) => Box::new(SumFloat::default()),
            (AggFn::Sum, _) => Box::new(SumInt::default()),
            (AggFn::Avg, _) => Box::new(Avg::default()),
            (AggFn::Min, k) => typed!(k, T => Extreme::<T>::new(false, false)),
            (AggFn::Max, k) => typed!(k, T => Extreme::<T>::new(true, false)),
            (AggFn::First, k) => typed!(k, T => Extreme::<T>::new(false, true)),
            (AggFn::Last, k) => typed!(k, T => Extreme::<T>::new(true, true)),
            (AggFn::Retracting { inner, .. }, k) => {
                let keep = match **inner {
                    AggFn::Min => Keep::Min,
                    AggFn::Max => Keep::Max,
                    AggFn::CountDistinct => Keep::Distinct(Report::Count),
                    AggFn::SumDistinct => Keep::Distinct(Report::Sum),
                    AggFn::AvgDistinct => Keep::Distinct(Report::Mean),
                    ref other => {
                        unreachable!("Agg::bind refuses {} over retractions", other.name())
                    }
                };
                typed!(k, T => Retracting::<T>::new(keep))
            }
            (AggFn::CountDistinct, k) => typed!(k, T => Distinct::<T>::new(Report::Count)),
            (AggFn::SumDistinct, k) => typed!(k, T => Distinct::<T>::new(Report::Sum)),
            (AggFn::AvgDistinct, k) => typed!(k, T => Distinct::<T>::new(Report::Mean)),
            (AggFn::Udf(udf), _) => {
                let state_type = agg
                    .state_fields
                    .first()
                    .map_or(DataType::Null, |f| f.data_type().clone());
                Box::new(UdfAcc::new(udf.clone(), state_type))
            }
        };
        Accumulators {
            name: agg.field.name().clone(),
            state_width: agg.state_fields.len(),
            inner,
        }
    }

    /// True if the aggregate reads event times (`first`, `last`, some UDAFs).
    pub fn uses_times(&self) -> bool {
        self.inner.uses_times()
    }

    /// Number of groups there is room for.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True if there is room for no group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for groups `0..n` (new groups are empty; shrinking drops
    /// the groups from `n` on).
    pub fn resize(&mut self, n: usize) {
        self.inner.resize(n);
    }

    /// Adds row `rows[i]` of `values` to group `groups[i]`, for every `i`.
    /// `times[r]` is the event time (ms) of row `r` of the batch; only first,
    /// last and user-defined aggregates read it. `column` names the
    /// aggregate in errors.
    pub fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        times: &[i64],
        column: &str,
    ) -> Result<()> {
        if groups.len() != rows.len() {
            return Err(Error::column(
                column,
                "aggregate",
                format!("{} group ids for {} rows", groups.len(), rows.len()),
            ));
        }
        self.check_groups(groups, column)?;
        let max_row = rows.iter().max().map(|&r| r as usize);
        if let (Some(r), Some(n)) = (max_row, values.len()) {
            if r >= n {
                return Err(Error::column(
                    column,
                    "aggregate",
                    format!("row {r} is outside the batch of {n} values"),
                ));
            }
        }
        if let (Some(r), true) = (max_row, self.inner.uses_times()) {
            if r >= times.len() {
                return Err(Error::column(
                    column,
                    "aggregate",
                    format!("row {r} has no event time ({} given)", times.len()),
                ));
            }
        }
        self.inner.update(groups, rows, values, times, column)
    }

    /// Merges group `from` of `other` into group `into` of `self`; both must
    /// come from the same [`BoundAgg`].
    pub fn merge(&mut self, into: u32, other: &Accumulators, from: u32) -> Result<()> {
        self.check_groups(&[into], &self.name)?;
        other.check_groups(&[from], &self.name)?;
        if self.inner.as_any().type_id() != other.inner.as_any().type_id() {
            return Err(Error::column(
                &self.name,
                "aggregate",
                format!("cannot merge the state of `{}` into it", other.name),
            ));
        }
        self.inner.merge(
            into as usize,
            other.inner.as_ref(),
            from as usize,
            &self.name,
        )
    }

    /// Merges group `from` into group `into` of the same accumulators (two
    /// sessions joined by a row). `from` is left as it was: reset it if it
    /// is no longer used. Merging a group into itself does nothing.
    pub fn merge_groups(&mut self, into: u32, from: u32) -> Result<()> {
        if into == from {
            return self.check_groups(&[into], &self.name);
        }
        let state = self.to_state(&[from])?;
        self.merge_state(&[into], &state)
    }

    /// Puts `group` back to the empty state, freeing what it held (a group
    /// out of range is already empty: nothing to do).
    pub fn reset(&mut self, group: u32) {
        if (group as usize) < self.len() {
            self.inner.reset(group as usize);
        }
    }

    /// The final values of `groups`, in that order, as `agg.field`'s type.
    pub fn finish(&self, groups: &[u32], agg: &BoundAgg) -> Result<ArrayRef> {
        let ty = agg.field.data_type();
        if groups.is_empty() {
            return Ok(new_empty_array(ty));
        }
        self.check_groups(groups, &self.name)?;
        let array = self.inner.finish(groups, &self.name)?;
        if array.data_type() == ty {
            Ok(array)
        } else {
            arrow_cast::cast(&array, ty).map_err(|e| {
                Error::column(
                    &self.name,
                    "aggregate",
                    format!("cannot return {} as {ty}: {e}", array.data_type()),
                )
            })
        }
    }

    /// Bytes used now: the group vectors plus strings, distinct sets and
    /// user-defined states.
    pub fn memory_size(&self) -> usize {
        self.inner.memory_size()
    }

    /// The columns of a partial state, named after `agg.field`.
    pub fn state_fields(agg: &BoundAgg) -> Vec<Field> {
        agg.state_fields.clone()
    }

    /// The partial states of `groups`, as columns matching
    /// [`Accumulators::state_fields`].
    pub fn to_state(&self, groups: &[u32]) -> Result<Vec<ArrayRef>> {
        self.check_groups(groups, &self.name)?;
        self.inner.to_state(groups, &self.name)
    }

    /// Merges row `i` of the partial-state columns `state` into `groups[i]`.
    pub fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef]) -> Result<()> {
        self.check_groups(groups, &self.name)?;
        let width = self.state_width;
        if state.len() != width || state.iter().any(|c| c.len() != groups.len()) {
            let lens: Vec<usize> = state.iter().map(|c| c.len()).collect();
            return Err(Error::column(
                &self.name,
                "aggregate",
                format!(
                    "partial state needs {width} columns of {} rows, got lengths {lens:?}",
                    groups.len()
                ),
            ));
        }
        self.inner.merge_state(groups, state, &self.name)
    }

    fn check_groups(&self, groups: &[u32], column: &str) -> Result<()> {
        match groups.iter().max() {
            Some(&g) if g as usize >= self.len() => Err(Error::column(
                column,
                "aggregate",
                format!("group {g} out of range: room for {} groups", self.len()),
            )),
            _ => Ok(()),
        }
    }
}

/// The error for values or state columns of an unexpected type.
pub(super) fn wrong_input(column: &str, what: &str, got: impl std::fmt::Display) -> Error {
    Error::column(column, "aggregate", format!("{what}, got {got}"))
}

/// `other` as the concrete type `T` (the caller checked the type ids).
pub(super) fn downcast<T: 'static>(other: &dyn GroupAcc) -> &T {
    other
        .as_any()
        .downcast_ref::<T>()
        .expect("Accumulators::merge checks both sides have the same type")
}
