//! User-defined aggregates: the [`AggregateUdf`] / [`AggregateState`]
//! traits and their group-indexed accumulator, [`UdfAcc`].
//!
//! A UDAF keeps one boxed state per group, created lazily on the group's
//! first row (an empty group finishes as a fresh state would). Rows of a
//! batch are handed to each group's state in one call per group. Memory is
//! tracked from the states' own [`AggregateState::memory_size`], re-read
//! whenever a state changes. May use `weir_core::error` and the arrow crates only.

use super::accumulators::{downcast, wrong_input, GroupAcc};
use super::Values;
use arrow_array::{new_empty_array, Array, ArrayRef};
use arrow_schema::DataType;
use std::any::Any;
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// One row of a UDAF's state column: a length-1 array of its `state_type`.
pub type ScalarValueOrArray = ArrayRef;

/// A user-defined aggregate function: a factory of per-group states.
///
/// Use it with [`Agg::udf`](super::Agg::udf); it then works everywhere a
/// builtin aggregate does (windows, merging, partial states).
///
/// # Examples
///
/// A sum of squares over a Float64 column:
///
/// ```
/// use std::any::Any;
/// use std::sync::Arc;
/// use arrow_array::cast::AsArray;
/// use arrow_array::types::Float64Type;
/// use arrow_array::{Array, ArrayRef, Float64Array};
/// use arrow_schema::{DataType, Field, Schema};
/// use weir::functions::aggregate::{
///     Accumulators, Agg, AggregateState, AggregateUdf, ScalarValueOrArray,
/// };
/// use weir::{Error, Result};
///
/// #[derive(Debug)]
/// struct SumSquares;
///
/// impl AggregateUdf for SumSquares {
///     fn name(&self) -> &str {
///         "sum_squares"
///     }
///     fn return_type(&self, input: &DataType) -> Result<DataType> {
///         match input {
///             DataType::Float64 => Ok(DataType::Float64),
///             other => Err(Error::option("sum_squares", format!("needs Float64, got {other}"))),
///         }
///     }
///     fn state_type(&self, _input: &DataType) -> Result<DataType> {
///         Ok(DataType::Float64)
///     }
///     fn create(&self) -> Box<dyn AggregateState> {
///         Box::new(Squares(0.0))
///     }
/// }
///
/// #[derive(Debug)]
/// struct Squares(f64);
///
/// impl AggregateState for Squares {
///     fn update(&mut self, values: &ArrayRef, rows: &[u32], _times: &[i64]) -> Result<()> {
///         let values = values.as_primitive::<Float64Type>();
///         for &r in rows {
///             if values.is_valid(r as usize) {
///                 self.0 += values.value(r as usize).powi(2);
///             }
///         }
///         Ok(())
///     }
///     fn merge(&mut self, other: &dyn AggregateState) -> Result<()> {
///         let other = other.as_any().downcast_ref::<Squares>().expect("same UDAF");
///         self.0 += other.0;
///         Ok(())
///     }
///     fn state(&self) -> Result<ScalarValueOrArray> {
///         Ok(Arc::new(Float64Array::from(vec![self.0])))
///     }
///     fn merge_state(&mut self, state: &ArrayRef, row: usize) -> Result<()> {
///         self.0 += state.as_primitive::<Float64Type>().value(row);
///         Ok(())
///     }
///     fn finish(&self) -> Result<ArrayRef> {
///         self.state()
///     }
///     fn as_any(&self) -> &dyn Any {
///         self
///     }
///     fn memory_size(&self) -> usize {
///         std::mem::size_of::<Self>()
///     }
/// }
///
/// let schema = Schema::new(vec![Field::new("x", DataType::Float64, true)]);
/// let agg = Agg::udf(Arc::new(SumSquares), "x").bind(&schema, "example")?;
/// assert_eq!(agg.field.name(), "sum_squares_x");
/// let column: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.0), None, Some(2.0), Some(3.0)]));
/// let values = agg.values(&[column])?;
/// let mut acc = Accumulators::new(&agg);
/// acc.resize(2);
/// acc.update(&[0, 0, 0, 1], &[0, 1, 2, 3], &values, &[0, 0, 0, 0], "sum_squares_x")?;
/// let out = acc.finish(&[0, 1], &agg)?;
/// assert_eq!(out.as_primitive::<Float64Type>().values(), &[5.0, 9.0]);
/// # Ok::<(), weir::Error>(())
/// ```
pub trait AggregateUdf: Send + Sync + std::fmt::Debug {
    /// The function's name (the default output column is `name_column`).
    fn name(&self) -> &str;
    /// The output type for an input column of type `input` (an error
    /// rejects the column when the aggregate is bound).
    fn return_type(&self, input: &DataType) -> Result<DataType>;
    /// The type of the one partial-state column (use a Struct or Binary for
    /// complex states).
    fn state_type(&self, input: &DataType) -> Result<DataType>;
    /// A fresh, empty state.
    fn create(&self) -> Box<dyn AggregateState>;
    /// Whether its states take rows back ([`AggregateState::retract`]), so
    /// it can aggregate a changelog (another aggregation's result), as a
    /// Flink `AggregateFunction` with a `retract` method can. Default: no.
    fn retracts(&self) -> bool {
        false
    }
}

/// The running state of a user-defined aggregate for one group.
pub trait AggregateState: Send + std::fmt::Debug {
    /// Adds rows `rows` of `values` (the input column of a batch, as it
    /// is); `times[r]` is the event time (ms) of row `r` (`i64::MIN` when
    /// the rows have none, as another aggregation's changelog).
    fn update(&mut self, values: &ArrayRef, rows: &[u32], times: &[i64]) -> Result<()>;
    /// Takes back rows `rows` of `values` (a changelog's deleted rows).
    /// Each was added by [`update`](Self::update), but not necessarily to
    /// this state: partial states of one group are merged later (spill,
    /// parallel parts), so a state may see a retraction whose addition
    /// another state holds, and [`merge`](Self::merge) must cancel the two
    /// (a multiset with signed counts does). Only called when the UDAF
    /// says it [`retracts`](AggregateUdf::retracts); the default refuses.
    fn retract(&mut self, values: &ArrayRef, rows: &[u32], times: &[i64]) -> Result<()> {
        let _ = (values, rows, times);
        Err(Error::option(
            "aggregate",
            "this user-defined aggregate does not take rows back (implement retract)",
        ))
    }
    /// Merges another state of the same UDAF (downcast it with `as_any`).
    fn merge(&mut self, other: &dyn AggregateState) -> Result<()>;
    /// The partial state as a length-1 array of the UDAF's `state_type`.
    fn state(&self) -> Result<ScalarValueOrArray>;
    /// Merges row `row` of a state column built from [`AggregateState::state`].
    fn merge_state(&mut self, state: &ArrayRef, row: usize) -> Result<()>;
    /// The result as a length-1 array of the UDAF's `return_type`.
    fn finish(&self) -> Result<ArrayRef>;
    /// `self`, for downcasting in `merge`.
    fn as_any(&self) -> &dyn Any;
    /// Bytes owned by this state (for the memory pool).
    fn memory_size(&self) -> usize;
}

/// The states of a user-defined aggregate for many groups.
#[derive(Debug)]
pub(super) struct UdfAcc {
    udf: Arc<dyn AggregateUdf>,
    state_type: DataType,
    /// `None` until the group's first row.
    states: Vec<Option<Box<dyn AggregateState>>>,
    /// Sum of the states' `memory_size`.
    heap: usize,
}

impl UdfAcc {
    /// No groups of `udf`, whose state column has type `state_type`.
    pub(super) fn new(udf: Arc<dyn AggregateUdf>, state_type: DataType) -> Self {
        UdfAcc {
            udf,
            state_type,
            states: Vec::new(),
            heap: 0,
        }
    }

    /// Runs `f` on `group`'s state (created if needed), keeping `heap` true.
    fn with_state(
        &mut self,
        group: usize,
        f: impl FnOnce(&mut dyn AggregateState) -> Result<()>,
    ) -> Result<()> {
        let slot = &mut self.states[group];
        let before = slot.as_ref().map_or(0, |s| s.memory_size());
        let state = slot.get_or_insert_with(|| self.udf.create());
        let result = f(state.as_mut());
        self.heap = (self.heap + state.memory_size()).saturating_sub(before);
        result
    }

    /// Concatenates length-1 arrays returned by the UDAF into one column.
    fn concat(&self, parts: Vec<ArrayRef>, ty: &DataType, what: &str) -> Result<ArrayRef> {
        if let Some(bad) = parts.iter().find(|p| p.len() != 1 || p.data_type() != ty) {
            return Err(Error::column(
                self.udf.name(),
                "user-defined aggregate",
                format!(
                    "{what} returned {} rows of {}, expected 1 row of {ty}",
                    bad.len(),
                    bad.data_type()
                ),
            ));
        }
        if parts.is_empty() {
            return Ok(new_empty_array(ty));
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|p| p.as_ref()).collect();
        Ok(arrow_select::concat::concat(&refs)?)
    }

    /// Applies `f` to the state of each group (a fresh one if it is empty).
    fn per_group(
        &self,
        groups: &[u32],
        f: impl Fn(&dyn AggregateState) -> Result<ArrayRef>,
    ) -> Result<Vec<ArrayRef>> {
        let empty = self.udf.create();
        groups
            .iter()
            .map(|&g| f(self.states[g as usize].as_deref().unwrap_or(empty.as_ref())))
            .collect()
    }
}

impl GroupAcc for UdfAcc {
    fn len(&self) -> usize {
        self.states.len()
    }

    fn resize(&mut self, n: usize) {
        let dropped: usize = self
            .states
            .iter()
            .skip(n)
            .flatten()
            .map(|s| s.memory_size())
            .sum();
        self.heap = self.heap.saturating_sub(dropped);
        self.states.resize_with(n, || None);
    }

    fn slot_bytes(&self) -> usize {
        std::mem::size_of::<Option<Box<dyn AggregateState>>>()
    }

    fn uses_times(&self) -> bool {
        true
    }

    fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        times: &[i64],
        column: &str,
    ) -> Result<()> {
        // over a changelog: each row's sign says add (+1) or take back (-1)
        let (array, signs) = match values {
            Values::Array(array) => (array, None),
            Values::Signed { values, signs } => match values.as_ref() {
                Values::Array(array) => (array, Some(signs)),
                other => {
                    return Err(wrong_input(
                        column,
                        "expects the input column as is",
                        other.describe(),
                    ))
                }
            },
            other => {
                return Err(wrong_input(
                    column,
                    "expects the input column as is",
                    other.describe(),
                ))
            }
        };
        // a null sign counts as 0 (the row is skipped), as for the built-ins
        let sign = |i: usize| {
            signs.map_or(1, |s| {
                let r = rows[i] as usize;
                if s.is_valid(r) {
                    s.value(r).signum()
                } else {
                    0
                }
            })
        };
        // a group's rows in arrival order (the sort is stable), in runs of
        // one sign: a delete comes after the insert it takes back
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by_key(|&i| groups[i]);
        let mut run = Vec::new();
        for chunk in order.chunk_by(|&a, &b| groups[a] == groups[b]) {
            let group = groups[chunk[0]] as usize;
            for signed in chunk.chunk_by(|&a, &b| (sign(a) > 0) == (sign(b) > 0)) {
                run.clear();
                run.extend(signed.iter().filter(|&&i| sign(i) != 0).map(|&i| rows[i]));
                if run.is_empty() {
                    continue;
                }
                if sign(signed[0]) > 0 {
                    self.with_state(group, |s| s.update(array, &run, times))?;
                } else {
                    self.with_state(group, |s| s.retract(array, &run, times))?;
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, into: usize, other: &dyn GroupAcc, from: usize, _: &str) -> Result<()> {
        match &downcast::<Self>(other).states[from] {
            Some(theirs) => self.with_state(into, |s| s.merge(theirs.as_ref())),
            None => Ok(()),
        }
    }

    fn reset(&mut self, group: usize) {
        if let Some(s) = self.states[group].take() {
            self.heap = self.heap.saturating_sub(s.memory_size());
        }
    }

    fn finish(&self, groups: &[u32], _: &str) -> Result<ArrayRef> {
        let parts = self.per_group(groups, |s| s.finish())?;
        let ty = match parts.first() {
            Some(p) => p.data_type().clone(),
            None => return Ok(new_empty_array(&DataType::Null)),
        };
        self.concat(parts, &ty, "finish")
    }

    fn memory_size(&self) -> usize {
        self.states.capacity() * self.slot_bytes() + self.heap
    }

    fn to_state(&self, groups: &[u32], _: &str) -> Result<Vec<ArrayRef>> {
        let parts = self.per_group(groups, |s| s.state())?;
        Ok(vec![self.concat(parts, &self.state_type, "state")?])
    }

    fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef], column: &str) -> Result<()> {
        let column_state = &state[0];
        if column_state.data_type() != &self.state_type {
            let what = format!("partial state must be {}", self.state_type);
            return Err(wrong_input(column, &what, column_state.data_type()));
        }
        for (row, &g) in groups.iter().enumerate() {
            self.with_state(g as usize, |s| s.merge_state(column_state, row))?;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
