//! Typed values for the generic accumulators.
//!
//! [`Val`] is implemented for the five native value types (`i64`, `u64`,
//! `f64`, `bool`, `String`): how to read them from [`Values`], order them
//! totally (so ties break the same way whatever the arrival order), key them
//! for distinct sets, measure their heap bytes and build Arrow arrays from
//! them. `extreme` and `distinct` are written once against this trait.
//! May use `weir_core::error` and the arrow crates only.

use super::{ValueKind, Values};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BooleanArray, Float64Array, GenericStringArray,
    Int64Array, LargeStringArray, OffsetSizeTrait, PrimitiveArray, UInt64Array,
};
use arrow_schema::DataType;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

/// A native value type of the generic accumulators.
pub(super) trait Val: Clone + Debug + Send + Sync + 'static {
    /// A borrowed value (`&str` for strings, the value itself otherwise).
    type Ref<'a>: Copy
    where
        Self: 'a;
    /// The hashable form used in distinct sets.
    type Key: Hash + Eq + Clone + Debug + Send + Sync + 'static;

    /// The Arrow type of arrays built by [`Val::build`].
    fn data_type() -> DataType;
    /// Borrows a stored value.
    fn borrow(&self) -> Self::Ref<'_>;
    /// Stores `value` in `slot`, reusing its allocation if it has one.
    fn assign(slot: &mut Option<Self>, value: Self::Ref<'_>);
    /// A total order (floats: `total_cmp`).
    fn order(a: Self::Ref<'_>, b: Self::Ref<'_>) -> Ordering;
    /// Heap bytes owned by a stored value.
    fn heap(&self) -> usize {
        0
    }
    /// The distinct-set key of `value`.
    fn key(value: Self::Ref<'_>) -> Self::Key;
    /// The value a key stands for.
    fn key_value(key: &Self::Key) -> Self::Ref<'_>;
    /// Heap bytes owned by a key.
    fn key_heap(_key: &Self::Key) -> usize {
        0
    }
    /// Whether `set` holds `value` (without allocating a key if possible).
    fn contains(set: &HashSet<Self::Key>, value: Self::Ref<'_>) -> bool {
        set.contains(&Self::key(value))
    }
    /// Calls `f(group, row, value)` for every `(groups[i], rows[i])` whose
    /// value is not null. False if `values` do not hold this type.
    fn visit<'a>(
        values: &'a Values,
        groups: &[u32],
        rows: &[u32],
        f: impl FnMut(u32, u32, Self::Ref<'a>),
    ) -> bool;
    /// An array of [`Val::data_type`] from optional values.
    fn build<'a>(items: impl Iterator<Item = Option<Self::Ref<'a>>>) -> ArrayRef;
    /// Reads an array built by [`Val::build`] back as values (`None` if it
    /// has another type).
    fn read(array: &ArrayRef) -> Option<Values>;
}

/// The native Arrow type of values of `kind` (`Raw` reads as strings).
pub(super) fn native_type(kind: ValueKind) -> DataType {
    match kind {
        ValueKind::Int => i64::data_type(),
        ValueKind::UInt => u64::data_type(),
        ValueKind::Float => f64::data_type(),
        ValueKind::Bool => bool::data_type(),
        ValueKind::Str | ValueKind::Raw => String::data_type(),
    }
}

/// `f(group, row, value)` for every non-null `rows[i]` of `array`.
fn visit_primitive<T: ArrowPrimitiveType>(
    array: &PrimitiveArray<T>,
    groups: &[u32],
    rows: &[u32],
    mut f: impl FnMut(u32, u32, T::Native),
) {
    let values = array.values();
    match array.nulls().filter(|n| n.null_count() > 0) {
        None => {
            for (&g, &r) in groups.iter().zip(rows) {
                f(g, r, values[r as usize]);
            }
        }
        Some(nulls) => {
            for (&g, &r) in groups.iter().zip(rows) {
                if nulls.is_valid(r as usize) {
                    f(g, r, values[r as usize]);
                }
            }
        }
    }
}

macro_rules! integer_val {
    ($native:ty, $variant:ident, $arrow:ty, $array:ty, $dt:expr) => {
        impl Val for $native {
            type Ref<'a> = $native;
            type Key = $native;
            fn data_type() -> DataType {
                $dt
            }
            fn borrow(&self) -> $native {
                *self
            }
            fn assign(slot: &mut Option<Self>, value: $native) {
                *slot = Some(value);
            }
            fn order(a: $native, b: $native) -> Ordering {
                a.cmp(&b)
            }
            fn key(value: $native) -> $native {
                value
            }
            fn key_value(key: &$native) -> $native {
                *key
            }
            fn visit<'a>(
                values: &'a Values,
                groups: &[u32],
                rows: &[u32],
                f: impl FnMut(u32, u32, Self::Ref<'a>),
            ) -> bool {
                let Values::$variant(array) = values else {
                    return false;
                };
                visit_primitive(array, groups, rows, f);
                true
            }
            fn build<'a>(items: impl Iterator<Item = Option<Self::Ref<'a>>>) -> ArrayRef {
                Arc::new(items.collect::<$array>())
            }
            fn read(array: &ArrayRef) -> Option<Values> {
                let typed = array.as_primitive_opt::<$arrow>()?;
                Some(Values::$variant(typed.clone()))
            }
        }
    };
}

integer_val!(i64, Int, Int64Type, Int64Array, DataType::Int64);
integer_val!(u64, UInt, UInt64Type, UInt64Array, DataType::UInt64);

impl Val for f64 {
    type Ref<'a> = f64;
    /// Bit pattern, with `-0.0` as `0.0` and every NaN as the canonical NaN.
    type Key = u64;
    fn data_type() -> DataType {
        DataType::Float64
    }
    fn borrow(&self) -> f64 {
        *self
    }
    fn assign(slot: &mut Option<Self>, value: f64) {
        *slot = Some(value);
    }
    fn order(a: f64, b: f64) -> Ordering {
        a.total_cmp(&b)
    }
    fn key(value: f64) -> u64 {
        if value.is_nan() {
            f64::NAN.to_bits()
        } else if value == 0.0 {
            0.0f64.to_bits()
        } else {
            value.to_bits()
        }
    }
    fn key_value(key: &u64) -> f64 {
        f64::from_bits(*key)
    }
    fn visit<'a>(
        values: &'a Values,
        groups: &[u32],
        rows: &[u32],
        f: impl FnMut(u32, u32, Self::Ref<'a>),
    ) -> bool {
        let Values::Float(array) = values else {
            return false;
        };
        visit_primitive(array, groups, rows, f);
        true
    }
    fn build<'a>(items: impl Iterator<Item = Option<Self::Ref<'a>>>) -> ArrayRef {
        Arc::new(items.collect::<Float64Array>())
    }
    fn read(array: &ArrayRef) -> Option<Values> {
        let typed = array.as_primitive_opt::<arrow_array::types::Float64Type>()?;
        Some(Values::Float(typed.clone()))
    }
}

impl Val for bool {
    type Ref<'a> = bool;
    type Key = bool;
    fn data_type() -> DataType {
        DataType::Boolean
    }
    fn borrow(&self) -> bool {
        *self
    }
    fn assign(slot: &mut Option<Self>, value: bool) {
        *slot = Some(value);
    }
    fn order(a: bool, b: bool) -> Ordering {
        a.cmp(&b)
    }
    fn key(value: bool) -> bool {
        value
    }
    fn key_value(key: &bool) -> bool {
        *key
    }
    fn visit<'a>(
        values: &'a Values,
        groups: &[u32],
        rows: &[u32],
        mut f: impl FnMut(u32, u32, Self::Ref<'a>),
    ) -> bool {
        let Values::Bool(array) = values else {
            return false;
        };
        for (&g, &r) in groups.iter().zip(rows) {
            if array.is_valid(r as usize) {
                f(g, r, array.value(r as usize));
            }
        }
        true
    }
    fn build<'a>(items: impl Iterator<Item = Option<Self::Ref<'a>>>) -> ArrayRef {
        Arc::new(items.collect::<BooleanArray>())
    }
    fn read(array: &ArrayRef) -> Option<Values> {
        Some(Values::Bool(array.as_boolean_opt()?.clone()))
    }
}

/// `f(group, row, value)` for every non-null `rows[i]` of a string array.
fn visit_strings<'a, O: OffsetSizeTrait>(
    array: &'a GenericStringArray<O>,
    groups: &[u32],
    rows: &[u32],
    mut f: impl FnMut(u32, u32, &'a str),
) {
    for (&g, &r) in groups.iter().zip(rows) {
        if array.is_valid(r as usize) {
            f(g, r, array.value(r as usize));
        }
    }
}

impl Val for String {
    type Ref<'a> = &'a str;
    type Key = Box<str>;
    /// Always LargeUtf8, so building never overflows 32-bit offsets.
    fn data_type() -> DataType {
        DataType::LargeUtf8
    }
    fn borrow(&self) -> &str {
        self
    }
    fn assign(slot: &mut Option<Self>, value: &str) {
        match slot {
            Some(s) => {
                s.clear();
                s.push_str(value);
            }
            None => *slot = Some(value.to_string()),
        }
    }
    fn order(a: &str, b: &str) -> Ordering {
        a.cmp(b)
    }
    fn heap(&self) -> usize {
        self.capacity()
    }
    fn key(value: &str) -> Box<str> {
        value.into()
    }
    fn key_value(key: &Box<str>) -> &str {
        key
    }
    fn key_heap(key: &Box<str>) -> usize {
        key.len()
    }
    fn contains(set: &HashSet<Box<str>>, value: &str) -> bool {
        set.contains(value)
    }
    fn visit<'a>(
        values: &'a Values,
        groups: &[u32],
        rows: &[u32],
        f: impl FnMut(u32, u32, Self::Ref<'a>),
    ) -> bool {
        let Values::Array(array) = values else {
            return false;
        };
        if let Some(a) = array.as_string_opt::<i32>() {
            visit_strings(a, groups, rows, f);
        } else if let Some(a) = array.as_string_opt::<i64>() {
            visit_strings(a, groups, rows, f);
        } else {
            return false;
        }
        true
    }
    fn build<'a>(items: impl Iterator<Item = Option<Self::Ref<'a>>>) -> ArrayRef {
        Arc::new(items.collect::<LargeStringArray>())
    }
    fn read(array: &ArrayRef) -> Option<Values> {
        matches!(array.data_type(), DataType::Utf8 | DataType::LargeUtf8)
            .then(|| Values::Array(array.clone()))
    }
}
