//! Min, max, first and last: one generic accumulator, [`Extreme`].
//!
//! Min and max keep the smallest / largest value in the total order of
//! [`Val::order`]. First and last keep the smallest / largest `(event time,
//! value)` pair: the earliest / latest value, ties broken by the value, so
//! the result is the same for any arrival order or merge tree. Nulls are
//! skipped. Partial state: `[value]`, or `[time, value]` when timed (both
//! null for an empty group). May use `weir_core::error` and the arrow crates only.

use super::accumulators::{downcast, wrong_input, GroupAcc};
use super::value::Val;
use super::Values;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array};
use std::any::Any;
use std::cmp::Ordering;
use std::sync::Arc;
use weir_core::error::Result;

/// The best value per group (and its event time when `timed`).
#[derive(Debug)]
pub(super) struct Extreme<T: Val> {
    /// Keep the largest (max, last) instead of the smallest (min, first).
    max: bool,
    /// Order by `(time, value)` (first, last) instead of by value.
    timed: bool,
    values: Vec<Option<T>>,
    /// Event time of each group's value; empty unless `timed`.
    times: Vec<i64>,
    /// Heap bytes owned by `values` (strings).
    heap: usize,
}

impl<T: Val> Extreme<T> {
    /// Min (`max = false`) or max; first / last when `timed`.
    pub(super) fn new(max: bool, timed: bool) -> Self {
        Extreme {
            max,
            timed,
            values: Vec::new(),
            times: Vec::new(),
            heap: 0,
        }
    }

    /// Keeps `(time, value)` in `group` if it beats the current one.
    #[inline]
    fn offer(&mut self, group: usize, time: i64, value: T::Ref<'_>) {
        let slot = &mut self.values[group];
        let better = match slot {
            None => true,
            Some(current) => {
                let by_value = || T::order(value, current.borrow());
                let ord = if self.timed {
                    time.cmp(&self.times[group]).then_with(by_value)
                } else {
                    by_value()
                };
                ord == if self.max {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
        };
        if better {
            let before = slot.as_ref().map_or(0, T::heap);
            T::assign(slot, value);
            self.heap = self.heap + slot.as_ref().map_or(0, T::heap) - before;
            if self.timed {
                self.times[group] = time;
            }
        }
    }
}

impl<T: Val> GroupAcc for Extreme<T> {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn resize(&mut self, n: usize) {
        let dropped: usize = self.values.iter().skip(n).flatten().map(T::heap).sum();
        self.heap -= dropped;
        self.values.resize(n, None);
        if self.timed {
            self.times.resize(n, 0);
        }
    }

    fn slot_bytes(&self) -> usize {
        std::mem::size_of::<Option<T>>() + if self.timed { 8 } else { 0 }
    }

    fn uses_times(&self) -> bool {
        self.timed
    }

    fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        times: &[i64],
        column: &str,
    ) -> Result<()> {
        let timed = self.timed;
        let read = T::visit(values, groups, rows, |g, r, v| {
            let t = if timed { times[r as usize] } else { 0 };
            self.offer(g as usize, t, v);
        });
        if !read {
            let expected = format!("expects {} values", T::data_type());
            return Err(wrong_input(column, &expected, values.describe()));
        }
        Ok(())
    }

    fn merge(&mut self, into: usize, other: &dyn GroupAcc, from: usize, _: &str) -> Result<()> {
        let other = downcast::<Self>(other);
        if let Some(v) = &other.values[from] {
            let t = other.times.get(from).copied().unwrap_or(0);
            self.offer(into, t, v.borrow());
        }
        Ok(())
    }

    fn reset(&mut self, group: usize) {
        if let Some(v) = self.values[group].take() {
            self.heap -= v.heap();
        }
        if self.timed {
            self.times[group] = 0;
        }
    }

    fn finish(&self, groups: &[u32], _: &str) -> Result<ArrayRef> {
        let picked = groups
            .iter()
            .map(|&g| self.values[g as usize].as_ref().map(T::borrow));
        Ok(T::build(picked))
    }

    fn memory_size(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<Option<T>>()
            + self.times.capacity() * 8
            + self.heap
    }

    fn to_state(&self, groups: &[u32], column: &str) -> Result<Vec<ArrayRef>> {
        let values = self.finish(groups, column)?;
        if !self.timed {
            return Ok(vec![values]);
        }
        let times = groups.iter().map(|&g| {
            let g = g as usize;
            self.values[g].as_ref().map(|_| self.times[g])
        });
        Ok(vec![Arc::new(times.collect::<Int64Array>()), values])
    }

    fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef], column: &str) -> Result<()> {
        let value_column = &state[usize::from(self.timed)];
        let values = T::read(value_column)
            .ok_or_else(|| wrong_input(column, "bad partial state", value_column.data_type()))?;
        let times: &[i64] = if self.timed {
            state[0]
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| wrong_input(column, "bad partial state", state[0].data_type()))?
                .values()
        } else {
            &[]
        };
        let rows: Vec<u32> = (0..groups.len() as u32).collect();
        self.update(groups, &rows, &values, times, column)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
