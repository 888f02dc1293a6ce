//! Min, max and the distinct aggregates that take back what is deleted:
//! [`Retracting`], for aggregations over a changelog (SQL's `MIN`, `MAX`,
//! `COUNT(DISTINCT …)` over another `GROUP BY`'s result), where a row may
//! later be retracted.
//!
//! Each group keeps the multiset of its values (value → signed count), and
//! min and max their current best value. A row adds its sign (+1 insert,
//! -1 delete, from the sign column bound with the aggregate) to its
//! value's count; a value whose count reaches 0 leaves the multiset, and
//! when it was the best the group's values are scanned for the new best (as
//! Flink's `MaxWithRetractAggFunction` does). The distinct aggregates
//! report on the values with a positive count, as `distinct` does on its
//! sets. Nulls are skipped. Partial state:
//! each group's values, sorted, and their counts, as two LargeList columns,
//! so exported states are deterministic.
//!
//! ```text
//!  +x ──► counts[x] += 1 ──► x beats best? best = x
//!  -x ──► counts[x] -= 1 ──► 0: remove x; x was best? best = scan(counts)
//!  finish: best (null when the multiset is empty)
//! ```
//!
//! May use `weir_core::error` and the arrow crates only.

use super::accumulators::{downcast, wrong_input, GroupAcc};
use super::distinct::{list_items, report, table_bytes, Report};
use super::value::Val;
use super::Values;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, LargeListArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::Field;
use std::any::Any;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use weir_core::error::Result;

/// What [`Retracting`] gives of each group's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// Their count, sum or mean (as the distinct aggregates).
    Distinct(Report),
}

/// Each group's multiset of values and (min, max) its best one.
#[derive(Debug)]
pub(super) struct Retracting<T: Val> {
    // config
    keep: Keep,
    // state
    counts: Vec<HashMap<T::Key, i64>>,
    best: Vec<Option<T::Key>>,
    /// Table bytes of every multiset plus heap bytes of every key (in the
    /// multisets and as a best value).
    heap: usize,
}

impl<T: Val> Retracting<T> {
    /// Giving `keep` of each group's values.
    pub(super) fn new(keep: Keep) -> Self {
        Retracting {
            keep,
            counts: Vec::new(),
            best: Vec::new(),
            heap: 0,
        }
    }

    /// Whether `a` beats `b` (larger for max, smaller for min).
    fn beats(&self, a: T::Ref<'_>, b: T::Ref<'_>) -> bool {
        T::order(a, b)
            == if self.keep == Keep::Max {
                Ordering::Greater
            } else {
                Ordering::Less
            }
    }

    /// Adds `sign` occurrences of `value` to `group` (negative: removes).
    fn add(&mut self, group: usize, value: T::Ref<'_>, sign: i64) {
        if sign == 0 {
            return;
        }
        let key = T::key(value);
        let map = &mut self.counts[group];
        let before = map.capacity();
        let count = match map.get_mut(&key) {
            Some(c) => {
                *c += sign;
                *c
            }
            None => {
                self.heap += T::key_heap(&key);
                map.insert(key.clone(), sign);
                sign
            }
        };
        if count == 0 {
            map.remove(&key);
            self.heap -= T::key_heap(&key);
        }
        let after = map.capacity();
        if after != before {
            self.heap = self.heap + table_bytes::<(T::Key, i64)>(after)
                - table_bytes::<(T::Key, i64)>(before);
        }
        if matches!(self.keep, Keep::Distinct(_)) {
            return;
        }
        let present = count > 0;
        let new_best = match self.best[group].as_ref() {
            Some(b) if *b == key && !present => Some(self.scan(group)),
            Some(b) if present && self.beats(value, T::key_value(b)) => Some(Some(key)),
            None if present => Some(Some(key)),
            _ => None,
        };
        if let Some(best) = new_best {
            self.set_best(group, best);
        }
    }

    /// Makes `best` the best value of `group`, counting its heap bytes.
    fn set_best(&mut self, group: usize, best: Option<T::Key>) {
        if let Some(old) = &self.best[group] {
            self.heap -= T::key_heap(old);
        }
        if let Some(new) = &best {
            self.heap += T::key_heap(new);
        }
        self.best[group] = best;
    }

    /// The best value of `group` with a positive count.
    fn scan(&self, group: usize) -> Option<T::Key> {
        let mut best: Option<&T::Key> = None;
        for (k, _) in self.counts[group].iter().filter(|(_, &c)| c > 0) {
            if best.is_none_or(|b| self.beats(T::key_value(k), T::key_value(b))) {
                best = Some(k);
            }
        }
        best.cloned()
    }

    fn group_heap(map: &HashMap<T::Key, i64>) -> usize {
        table_bytes::<(T::Key, i64)>(map.capacity()) + map.keys().map(T::key_heap).sum::<usize>()
    }
}

impl<T: Val> GroupAcc for Retracting<T> {
    fn len(&self) -> usize {
        self.counts.len()
    }

    fn resize(&mut self, n: usize) {
        let dropped: usize = self
            .counts
            .iter()
            .skip(n)
            .map(Self::group_heap)
            .sum::<usize>()
            + self
                .best
                .iter()
                .skip(n)
                .flatten()
                .map(T::key_heap)
                .sum::<usize>();
        self.heap -= dropped;
        self.counts.resize_with(n, HashMap::new);
        self.best.resize(n, None);
    }

    fn slot_bytes(&self) -> usize {
        std::mem::size_of::<HashMap<T::Key, i64>>() + std::mem::size_of::<Option<T::Key>>()
    }

    fn update(
        &mut self,
        groups: &[u32],
        rows: &[u32],
        values: &Values,
        _: &[i64],
        column: &str,
    ) -> Result<()> {
        let Values::Signed { values, signs } = values else {
            return Err(wrong_input(
                column,
                "expects values with their signs",
                values.describe(),
            ));
        };
        // (rows are checked against the signs by `Accumulators::update`)
        if values.len().is_some_and(|n| n != signs.len()) {
            return Err(wrong_input(
                column,
                "values and signs differ in length",
                signs.len(),
            ));
        }
        let read = T::visit(values, groups, rows, |g, r, v| {
            // a null sign (neither insert nor delete) counts nothing
            let sign = if signs.is_valid(r as usize) {
                signs.value(r as usize)
            } else {
                0
            };
            self.add(g as usize, v, sign);
        });
        if !read {
            let expected = format!("expects {} values", T::data_type());
            return Err(wrong_input(column, &expected, values.describe()));
        }
        Ok(())
    }

    fn merge(&mut self, into: usize, other: &dyn GroupAcc, from: usize, _: &str) -> Result<()> {
        for (key, &count) in &downcast::<Self>(other).counts[from] {
            self.add(into, T::key_value(key), count);
        }
        Ok(())
    }

    fn reset(&mut self, group: usize) {
        let map = std::mem::take(&mut self.counts[group]);
        self.heap -= Self::group_heap(&map);
        self.set_best(group, None);
    }

    fn finish(&self, groups: &[u32], column: &str) -> Result<ArrayRef> {
        if let Keep::Distinct(r) = self.keep {
            let present = groups.iter().map(|&g| {
                self.counts[g as usize]
                    .iter()
                    .filter(|(_, &c)| c > 0)
                    .map(|(k, _)| T::key_value(k))
                    .collect()
            });
            return report::<T>(r, present, column);
        }
        Ok(T::build(groups.iter().map(|&g| {
            self.best[g as usize].as_ref().map(|k| T::key_value(k))
        })))
    }

    fn memory_size(&self) -> usize {
        self.counts.capacity() * self.slot_bytes() + self.heap
    }

    fn to_state(&self, groups: &[u32], _: &str) -> Result<Vec<ArrayRef>> {
        let mut items: Vec<(T::Ref<'_>, i64)> = Vec::new();
        let mut lengths = Vec::with_capacity(groups.len());
        for &g in groups {
            let start = items.len();
            items.extend(
                self.counts[g as usize]
                    .iter()
                    .map(|(k, &c)| (T::key_value(k), c)),
            );
            items[start..].sort_unstable_by(|a, b| T::order(a.0, b.0));
            lengths.push(items.len() - start);
        }
        let counts = Int64Array::from_iter_values(items.iter().map(|i| i.1));
        let values = T::build(items.into_iter().map(|i| Some(i.0)));
        let list = |values: ArrayRef| -> Result<ArrayRef> {
            let item = Arc::new(Field::new_list_field(values.data_type().clone(), false));
            let offsets = OffsetBuffer::<i64>::from_lengths(lengths.iter().copied());
            Ok(Arc::new(LargeListArray::try_new(
                item, offsets, values, None,
            )?))
        };
        Ok(vec![list(values)?, list(Arc::new(counts))?])
    }

    fn merge_state(&mut self, groups: &[u32], state: &[ArrayRef], column: &str) -> Result<()> {
        let lists = |i: usize| {
            state[i]
                .as_list_opt::<i64>()
                .ok_or_else(|| wrong_input(column, "bad partial state", state[i].data_type()))
        };
        let (values, counts) = (lists(0)?, lists(1)?);
        let items = T::read(values.values()).ok_or_else(|| {
            wrong_input(
                column,
                "bad partial state items",
                values.values().data_type(),
            )
        })?;
        let signs = counts
            .values()
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| {
                wrong_input(
                    column,
                    "bad partial state counts",
                    counts.values().data_type(),
                )
            })?
            .clone();
        if values.value_offsets() != counts.value_offsets() || items.len() != Some(signs.len()) {
            return Err(wrong_input(
                column,
                "partial state values and counts differ in length",
                signs.len(),
            ));
        }
        let (item_groups, item_rows) = list_items(groups, values, column)?;
        let signed = Values::Signed {
            values: Box::new(items),
            signs,
        };
        self.update(&item_groups, &item_rows, &signed, &[], column)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
