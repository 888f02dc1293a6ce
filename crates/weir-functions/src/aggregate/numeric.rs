//! The simple numeric functions: count, sum (Int64 or Float64) and avg,
//! each one flat vector indexed by group id.
//!
//! Float sums and averages add in an [`ExactSum`], so their result does not
//! depend on row order. Partial states: count `[count]`, integer sum
//! `[sum]` (null while empty), float sum `[sum, sum_lo, sum_exp]` (the
//! exact sum's parts; null while empty), avg `[sum, sum_lo, sum_exp,
//! count]`. Integer sums and counts fail on overflow instead of wrapping. May use `weir_core::error` and the arrow crates only.

use super::accumulators::{downcast, wrong_input, GroupAcc};
use super::exact_sum::ExactSum;
use super::value::Val;
use super::Values;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int32Array, Int64Array};
use std::any::Any;
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// Reads state column `i` as Int64 or Float64 (`T`).
fn state_column<T: arrow_array::ArrowPrimitiveType>(
    state: &[ArrayRef],
    i: usize,
    column: &str,
) -> Result<Vec<Option<T::Native>>> {
    let array = state[i]
        .as_primitive_opt::<T>()
        .ok_or_else(|| wrong_input(column, "bad partial state", state[i].data_type()))?;
    Ok(array.iter().collect())
}

fn checked_add(a: i64, b: i64, column: &str) -> Result<i64> {
    a.checked_add(b)
        .ok_or_else(|| Error::column(column, "aggregate", "Int64 overflow"))
}

/// Row and non-null counts.
#[derive(Debug, Default)]
pub(super) struct Count(Vec<i64>);

impl GroupAcc for Count {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn resize(&mut self, n: usize) {
        self.0.resize(n, 0);
    }
    fn slot_bytes(&self) -> usize {
        8
    }
    fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        _: &[i64],
        column: &str,
    ) -> Result<()> {
        match values {
            Values::Valid(nulls) => {
                for (&g, &r) in groups.iter().zip(rows) {
                    self.0[g as usize] += i64::from(nulls.is_valid(r as usize));
                }
            }
            Values::Rows => {
                for &g in groups {
                    self.0[g as usize] += 1;
                }
            }
            other => {
                return Err(wrong_input(
                    column,
                    "count reads no values",
                    other.describe(),
                ))
            }
        }
        Ok(())
    }
    fn merge(
        &mut self,
        into: usize,
        other: &dyn GroupAcc,
        from: usize,
        column: &str,
    ) -> Result<()> {
        let other = downcast::<Self>(other);
        self.0[into] = checked_add(self.0[into], other.0[from], column)?;
        Ok(())
    }
    fn reset(&mut self, group: usize) {
        self.0[group] = 0;
    }
    fn finish(&self, groups: &[u32], _: &str) -> Result<ArrayRef> {
        let counts = groups.iter().map(|&g| self.0[g as usize]);
        Ok(Arc::new(Int64Array::from_iter_values(counts)))
    }
    fn memory_size(&self) -> usize {
        self.0.capacity() * 8
    }
    fn to_state(&self, groups: &[u32], column: &str) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.finish(groups, column)?])
    }
    fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef], column: &str) -> Result<()> {
        let counts = state_column::<Int64Type>(state, 0, column)?;
        for (&g, c) in groups.iter().zip(counts) {
            self.0[g as usize] = checked_add(self.0[g as usize], c.unwrap_or(0), column)?;
        }
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Integer sums (`None` until a value is seen), kept in 128 bits so that
/// only a final sum outside Int64 is an error, whatever the row order.
#[derive(Debug, Default)]
pub(super) struct SumInt(Vec<Option<i128>>);

impl SumInt {
    fn add(&mut self, g: usize, v: i128) {
        // 2^64 rows of |v| < 2^63 cannot overflow 2^127
        let slot = &mut self.0[g];
        *slot = Some(slot.unwrap_or(0).saturating_add(v));
    }
}

impl GroupAcc for SumInt {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn resize(&mut self, n: usize) {
        self.0.resize(n, None);
    }
    fn slot_bytes(&self) -> usize {
        std::mem::size_of::<Option<i128>>()
    }
    fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        _: &[i64],
        column: &str,
    ) -> Result<()> {
        let mut adds = Vec::with_capacity(groups.len());
        let read = i64::visit(values, groups, rows, |g, _, v| adds.push((g, v)));
        if !read {
            return Err(wrong_input(
                column,
                "sum expects Int64 values",
                values.describe(),
            ));
        }
        for (g, v) in adds {
            self.add(g as usize, i128::from(v));
        }
        Ok(())
    }
    fn merge(&mut self, into: usize, other: &dyn GroupAcc, from: usize, _: &str) -> Result<()> {
        if let Some(v) = downcast::<Self>(other).0[from] {
            self.add(into, v);
        }
        Ok(())
    }
    fn reset(&mut self, group: usize) {
        self.0[group] = None;
    }
    fn finish(&self, groups: &[u32], column: &str) -> Result<ArrayRef> {
        let sums = groups
            .iter()
            .map(|&g| {
                self.0[g as usize]
                    .map(|s| {
                        i64::try_from(s).map_err(|_| {
                            Error::column(
                                column,
                                "sum",
                                format!("the sum {s} does not fit in Int64"),
                            )
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Int64Array>>()?;
        Ok(Arc::new(sums))
    }
    fn memory_size(&self) -> usize {
        self.0.capacity() * self.slot_bytes()
    }
    fn to_state(&self, groups: &[u32], _: &str) -> Result<Vec<ArrayRef>> {
        let state = groups
            .iter()
            .map(|&g| self.0[g as usize])
            .collect::<arrow_array::Decimal128Array>()
            .with_precision_and_scale(38, 0)?;
        Ok(vec![Arc::new(state)])
    }
    fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef], column: &str) -> Result<()> {
        let dec = state[0]
            .as_any()
            .downcast_ref::<arrow_array::Decimal128Array>()
            .ok_or_else(|| wrong_input(column, "bad partial state", state[0].data_type()))?;
        if dec.len() != groups.len() {
            return Err(wrong_input(
                column,
                "partial state length differs from groups",
                state[0].data_type(),
            ));
        }
        for (i, &g) in groups.iter().enumerate() {
            if (g as usize) >= self.0.len() {
                return Err(Error::column(column, "sum", "group id out of range"));
            }
            if dec.is_valid(i) {
                self.add(g as usize, dec.value(i));
            }
        }
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Float sums, exact while they can be ([`ExactSum`]; `None` until a value is seen).
#[derive(Debug, Default)]
pub(super) struct SumFloat(Vec<Option<ExactSum>>);

impl GroupAcc for SumFloat {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn resize(&mut self, n: usize) {
        self.0.resize(n, None);
    }
    fn slot_bytes(&self) -> usize {
        std::mem::size_of::<Option<ExactSum>>()
    }
    fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        _: &[i64],
        column: &str,
    ) -> Result<()> {
        let sums = &mut self.0;
        let read = f64::visit(values, groups, rows, |g, _, v| {
            sums[g as usize].get_or_insert(ExactSum::ZERO).add(v);
        });
        if !read {
            return Err(wrong_input(
                column,
                "sum expects Float64 values",
                values.describe(),
            ));
        }
        Ok(())
    }
    fn merge(&mut self, into: usize, other: &dyn GroupAcc, from: usize, _: &str) -> Result<()> {
        if let Some(v) = downcast::<Self>(other).0[from] {
            self.0[into].get_or_insert(ExactSum::ZERO).merge(&v);
        }
        Ok(())
    }
    fn reset(&mut self, group: usize) {
        self.0[group] = None;
    }
    fn finish(&self, groups: &[u32], _: &str) -> Result<ArrayRef> {
        Ok(Arc::new(
            groups
                .iter()
                .map(|&g| self.0[g as usize].map(|s| s.value()))
                .collect::<Float64Array>(),
        ))
    }
    fn memory_size(&self) -> usize {
        self.0.capacity() * self.slot_bytes()
    }
    fn to_state(&self, groups: &[u32], _: &str) -> Result<Vec<ArrayRef>> {
        Ok(sum_parts(groups.iter().map(|&g| self.0[g as usize])))
    }
    fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef], column: &str) -> Result<()> {
        let sums = read_sum_parts(state, column)?;
        for (&g, sum) in groups.iter().zip(sums) {
            if let Some(sum) = sum {
                self.0[g as usize].get_or_insert(ExactSum::ZERO).merge(&sum);
            }
        }
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The three state columns of exact sums: high and low 64 bits, exponent;
/// the high part is null where no value was seen (`None`).
fn sum_parts(sums: impl Iterator<Item = Option<ExactSum>>) -> Vec<ArrayRef> {
    let parts: Vec<Option<(i64, i64, i32)>> = sums.map(|s| s.map(|s| s.to_parts())).collect();
    let part = |p: &Option<(i64, i64, i32)>| p.unwrap_or_default();
    vec![
        Arc::new(parts.iter().map(|p| p.map(|p| p.0)).collect::<Int64Array>()),
        Arc::new(Int64Array::from_iter_values(
            parts.iter().map(|p| part(p).1),
        )),
        Arc::new(Int32Array::from_iter_values(
            parts.iter().map(|p| part(p).2),
        )),
    ]
}

/// Reads [`sum_parts`] back (`None` where the high part is null).
fn read_sum_parts(state: &[ArrayRef], column: &str) -> Result<Vec<Option<ExactSum>>> {
    let hi = state_column::<Int64Type>(state, 0, column)?;
    let lo = state_column::<Int64Type>(state, 1, column)?;
    let lsb = state_column::<Int32Type>(state, 2, column)?;
    Ok(hi
        .into_iter()
        .zip(lo)
        .zip(lsb)
        .map(|((hi, lo), lsb)| {
            hi.map(|hi| ExactSum::from_parts(hi, lo.unwrap_or(0), lsb.unwrap_or(0)))
        })
        .collect())
}

/// Sum (exact while it can be, see [`ExactSum`]) and count of non-null values.
#[derive(Debug, Default)]
pub(super) struct Avg(Vec<(ExactSum, i64)>);

impl GroupAcc for Avg {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn resize(&mut self, n: usize) {
        self.0.resize(n, (ExactSum::ZERO, 0));
    }
    fn slot_bytes(&self) -> usize {
        std::mem::size_of::<(ExactSum, i64)>()
    }
    fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        _: &[i64],
        column: &str,
    ) -> Result<()> {
        let sums = &mut self.0;
        let read = i64::visit(values, groups, rows, |g, _, v| {
            let s = &mut sums[g as usize];
            s.0.add(v as f64);
            s.1 += 1;
        }) || f64::visit(values, groups, rows, |g, _, v| {
            let s = &mut sums[g as usize];
            s.0.add(v);
            s.1 += 1;
        });
        if !read {
            return Err(wrong_input(
                column,
                "avg expects Int64 or Float64 values",
                values.describe(),
            ));
        }
        Ok(())
    }
    fn merge(
        &mut self,
        into: usize,
        other: &dyn GroupAcc,
        from: usize,
        column: &str,
    ) -> Result<()> {
        let (sum, n) = downcast::<Self>(other).0[from];
        let s = &mut self.0[into];
        s.0.merge(&sum);
        s.1 = checked_add(s.1, n, column)?;
        Ok(())
    }
    fn reset(&mut self, group: usize) {
        self.0[group] = (ExactSum::ZERO, 0);
    }
    fn finish(&self, groups: &[u32], _: &str) -> Result<ArrayRef> {
        let means = groups.iter().map(|&g| {
            let (sum, n) = self.0[g as usize];
            (n > 0).then(|| sum.value() / n as f64)
        });
        Ok(Arc::new(means.collect::<Float64Array>()))
    }
    fn memory_size(&self) -> usize {
        self.0.capacity() * self.slot_bytes()
    }
    fn to_state(&self, groups: &[u32], _: &str) -> Result<Vec<ArrayRef>> {
        let mut state = sum_parts(groups.iter().map(|&g| Some(self.0[g as usize].0)));
        state.push(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|&g| self.0[g as usize].1),
        )));
        Ok(state)
    }
    fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef], column: &str) -> Result<()> {
        let sums = read_sum_parts(state, column)?;
        let counts = state_column::<Int64Type>(state, 3, column)?;
        for ((&g, sum), n) in groups.iter().zip(sums).zip(counts) {
            let s = &mut self.0[g as usize];
            s.0.merge(&sum.unwrap_or_default());
            s.1 = checked_add(s.1, n.unwrap_or(0), column)?;
        }
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
