//! Exact count_distinct, sum_distinct and avg_distinct: one hash set of
//! keys per group, [`Distinct`]; the sum and mean add floats exactly
//! (rounded once, as `sum` and `avg` do), so they give the same bits
//! whatever order rows came in.
//!
//! Keys come from [`Val::key`] (floats: bit patterns with `-0.0` and NaN
//! normalised). Memory is tracked incrementally: the estimated table bytes of
//! each set plus the heap bytes of its keys. Partial state: one LargeList
//! column holding each group's keys, sorted, so exported states are
//! deterministic. May use `weir_core::error` and the arrow crates only.

use super::accumulators::{downcast, wrong_input, GroupAcc};
use super::exact_sum::ExactSum;
use super::value::Val;
use super::Values;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, LargeListArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field};
use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// What [`Distinct`] reports of each group's distinct values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Report {
    /// How many (Int64).
    Count,
    /// Their sum (Int64 for integers, an error if it does not fit; Float64).
    Sum,
    /// Their mean (Float64).
    Mean,
}

/// The distinct non-null values of each group.
#[derive(Debug)]
pub(super) struct Distinct<T: Val> {
    report: Report,
    sets: Vec<HashSet<T::Key>>,
    /// Table bytes of every set plus heap bytes of every key.
    heap: usize,
}

/// Estimated bytes of a hash table holding `capacity` keys of `K`
/// (buckets of key + control byte, power-of-two bucket count).
pub(super) fn table_bytes<K>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).max(capacity + 1).next_power_of_two();
    buckets * (std::mem::size_of::<K>() + 1) + 16
}

impl<T: Val> Distinct<T> {
    /// No groups; `report` says what [`GroupAcc::finish`] gives.
    pub(super) fn new(report: Report) -> Self {
        Distinct {
            report,
            sets: Vec::new(),
            heap: 0,
        }
    }

    fn insert(&mut self, group: usize, value: T::Ref<'_>) {
        let set = &mut self.sets[group];
        if T::contains(set, value) {
            return;
        }
        let before = set.capacity();
        let key = T::key(value);
        self.heap += T::key_heap(&key);
        set.insert(key);
        let after = set.capacity();
        if after != before {
            self.heap = self.heap + table_bytes::<T::Key>(after) - table_bytes::<T::Key>(before);
        }
    }

    fn group_heap(set: &HashSet<T::Key>) -> usize {
        table_bytes::<T::Key>(set.capacity()) + set.iter().map(T::key_heap).sum::<usize>()
    }
}

impl<T: Val> GroupAcc for Distinct<T> {
    fn len(&self) -> usize {
        self.sets.len()
    }

    fn resize(&mut self, n: usize) {
        let dropped: usize = self.sets.iter().skip(n).map(Self::group_heap).sum();
        self.heap -= dropped;
        self.sets.resize_with(n, HashSet::new);
    }

    fn slot_bytes(&self) -> usize {
        std::mem::size_of::<HashSet<T::Key>>()
    }

    fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        _: &[i64],
        column: &str,
    ) -> Result<()> {
        let read = T::visit(values, groups, rows, |g, _, v| self.insert(g as usize, v));
        if !read {
            let expected = format!("expects {} values", T::data_type());
            return Err(wrong_input(column, &expected, values.describe()));
        }
        Ok(())
    }

    fn merge(&mut self, into: usize, other: &dyn GroupAcc, from: usize, _: &str) -> Result<()> {
        for key in &downcast::<Self>(other).sets[from] {
            self.insert(into, T::key_value(key));
        }
        Ok(())
    }

    fn reset(&mut self, group: usize) {
        let set = std::mem::take(&mut self.sets[group]);
        self.heap -= Self::group_heap(&set);
    }

    fn finish(&self, groups: &[u32], column: &str) -> Result<ArrayRef> {
        let sets = groups
            .iter()
            .map(|&g| self.sets[g as usize].iter().map(T::key_value).collect());
        report::<T>(self.report, sets, column)
    }

    fn memory_size(&self) -> usize {
        self.sets.capacity() * self.slot_bytes() + self.heap
    }

    fn to_state(&self, groups: &[u32], _: &str) -> Result<Vec<ArrayRef>> {
        let mut items = Vec::new();
        let mut lengths = Vec::with_capacity(groups.len());
        for &g in groups {
            let start = items.len();
            items.extend(self.sets[g as usize].iter().map(T::key_value));
            items[start..].sort_unstable_by(|a, b| T::order(*a, *b));
            lengths.push(items.len() - start);
        }
        let values = T::build(items.into_iter().map(Some));
        let item = Arc::new(Field::new_list_field(T::data_type(), false));
        let offsets = OffsetBuffer::<i64>::from_lengths(lengths);
        Ok(vec![Arc::new(LargeListArray::try_new(
            item, offsets, values, None,
        )?)])
    }

    fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef], column: &str) -> Result<()> {
        let list = state[0]
            .as_list_opt::<i64>()
            .ok_or_else(|| wrong_input(column, "bad partial state", state[0].data_type()))?;
        let values = T::read(list.values()).ok_or_else(|| {
            wrong_input(column, "bad partial state items", list.values().data_type())
        })?;
        let (item_groups, item_rows) = list_items(groups, list, column)?;
        self.update(&item_groups, &item_rows, &values, &[], column)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What `report` says of each group's distinct values (`groups`: each
/// group's values, in any order): their count, or their sum or mean
/// (floats added exactly, rounded once, in ascending order so that even the
/// plain f64 fallback of too wide a range gives one answer; integers in 128
/// bits). Shared with the retracting distinct aggregates.
pub(super) fn report<'a, T: Val>(
    report: Report,
    groups: impl ExactSizeIterator<Item = Vec<T::Ref<'a>>>,
    column: &str,
) -> Result<ArrayRef> {
    if report == Report::Count {
        let counts = groups.map(|items| items.len() as i64);
        return Ok(Arc::new(Int64Array::from_iter_values(counts)));
    }
    let mut out_int: Vec<Option<i64>> = Vec::with_capacity(groups.len());
    let mut out_float: Vec<Option<f64>> = Vec::with_capacity(groups.len());
    let ty = T::data_type();
    let float = ty.is_floating();
    for mut items in groups {
        if float {
            items.sort_unstable_by(|a, b| T::order(*a, *b));
        }
        let n = items.len();
        let values = T::build(items.into_iter().map(Some));
        if n == 0 {
            out_int.push(None);
            out_float.push(None);
            continue;
        }
        let sum: i128 = if float {
            let v = arrow_cast::cast(&values, &DataType::Float64)?;
            let mut sum = ExactSum::default();
            v.as_primitive::<Float64Type>()
                .values()
                .iter()
                .for_each(|&x| sum.add(x));
            out_float.push(Some(match report {
                Report::Mean => sum.value() / n as f64,
                _ => sum.value(),
            }));
            continue;
        } else if ty == DataType::UInt64 {
            let v = arrow_cast::cast(&values, &DataType::UInt64)?;
            v.as_primitive::<UInt64Type>()
                .values()
                .iter()
                .map(|&x| x as i128)
                .sum()
        } else {
            let v = arrow_cast::cast(&values, &DataType::Int64)?;
            v.as_primitive::<Int64Type>()
                .values()
                .iter()
                .map(|&x| x as i128)
                .sum()
        };
        match report {
            Report::Mean => out_float.push(Some(sum as f64 / n as f64)),
            _ => out_int.push(Some(i64::try_from(sum).map_err(|_| {
                Error::column(
                    column,
                    "sum_distinct",
                    format!("the sum {sum} does not fit in Int64"),
                )
            })?)),
        }
    }
    Ok(match (report, float) {
        (Report::Sum, false) => Arc::new(Int64Array::from(out_int)),
        _ => Arc::new(Float64Array::from(out_float)),
    })
}

/// For a partial state's list column `list` (row `i` holding group
/// `groups[i]`'s items), each item's group and its row in the list's
/// values: what `update` takes to merge the items in. Null lists hold none.
pub(super) fn list_items(
    groups: &[u32],
    list: &LargeListArray,
    column: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let offsets = list.value_offsets();
    let mut item_groups = Vec::new();
    let mut item_rows = Vec::new();
    for (i, &g) in groups.iter().enumerate() {
        if list.is_valid(i) {
            let row = |o: i64| {
                u32::try_from(o)
                    .map_err(|_| wrong_input(column, "partial state too large: list offset", o))
            };
            let (start, end) = (row(offsets[i])?, row(offsets[i + 1])?);
            item_groups.extend(std::iter::repeat_n(g, end.saturating_sub(start) as usize));
            item_rows.extend(start..end);
        }
    }
    Ok((item_groups, item_rows))
}
