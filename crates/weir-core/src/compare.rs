//! Comparing job results independent of row order and float rounding.
//!
//! Pipelined runs interleave producers nondeterministically, so float sums
//! may differ in the last bits between modes; everything else must match
//! exactly. Used by `weir demo`, `weir bench` and the tests. May use arrow only.

use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_ord::sort::{lexsort_to_indices, SortColumn, SortOptions};
use arrow_schema::{DataType, SchemaRef};

/// Concatenates `batches` and sorts the rows by every column (floats rounded
/// for ordering, so near-equal values sort alike).
pub fn canonical(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let all = arrow_select::concat::concat_batches(schema, batches)?;
    if all.num_rows() == 0 {
        return Ok(all);
    }
    let keys: Vec<SortColumn> = all
        .columns()
        .iter()
        .map(|c| {
            let values = match c.data_type() {
                // Round floats to 9 significant digits for ordering only.
                DataType::Float64 | DataType::Float32 => round_for_order(c),
                _ => c.clone(),
            };
            SortColumn {
                values,
                options: Some(SortOptions::default()),
            }
        })
        .collect();
    let indices = lexsort_to_indices(&keys, None)?;
    Ok(arrow_select::take::take_record_batch(&all, &indices)?)
}

fn round_for_order(c: &ArrayRef) -> ArrayRef {
    let f = arrow_cast::cast(c, &DataType::Float64).expect("floats cast to Float64");
    let f = f.as_primitive::<Float64Type>();
    let rounded: arrow_array::Float64Array = f
        .iter()
        .map(|v| {
            v.map(|x| {
                if x == 0.0 || !x.is_finite() {
                    x
                } else {
                    format!("{x:.8e}").parse().unwrap_or(x)
                }
            })
        })
        .collect();
    std::sync::Arc::new(rounded)
}

/// Checks that two results hold the same rows in any order; floats may
/// differ by a relative `tolerance` (an absolute one for values below 1). The error says where they first differ.
pub fn same_rows(
    left: &[RecordBatch],
    right: &[RecordBatch],
    schema: &SchemaRef,
    tolerance: f64,
) -> Result<()> {
    let a = canonical(schema, left)?;
    let b = canonical(schema, right)?;
    let differ = |message: String| Error::Plan(format!("results differ: {message}"));
    if a.num_rows() != b.num_rows() {
        return Err(differ(format!(
            "{} rows vs {} rows",
            a.num_rows(),
            b.num_rows()
        )));
    }
    for (i, field) in schema.fields().iter().enumerate() {
        let (x, y) = (a.column(i), b.column(i));
        match field.data_type() {
            DataType::Float64 | DataType::Float32 => {
                let x = arrow_cast::cast(x, &DataType::Float64)?;
                let y = arrow_cast::cast(y, &DataType::Float64)?;
                let (x, y) = (
                    x.as_primitive::<Float64Type>(),
                    y.as_primitive::<Float64Type>(),
                );
                for r in 0..x.len() {
                    let ok = match (x.is_valid(r), y.is_valid(r)) {
                        (true, true) => {
                            let (p, q) = (x.value(r), y.value(r));
                            // relative, and absolute below magnitude 1: the difference
                            // of two nearly equal averages is ~0 give or take rounding
                            p == q || (p - q).abs() <= tolerance * p.abs().max(q.abs()).max(1.0)
                        }
                        (a, b) => a == b,
                    };
                    if !ok {
                        return Err(differ(format!(
                            "column `{}` row {r}: {:?} vs {:?}",
                            field.name(),
                            x.is_valid(r).then(|| x.value(r)),
                            y.is_valid(r).then(|| y.value(r))
                        )));
                    }
                }
            }
            _ => {
                if x.to_data() != y.to_data() {
                    let r = (0..x.len())
                        .find(|&r| x.slice(r, 1).to_data() != y.slice(r, 1).to_data())
                        .unwrap_or(0);
                    return Err(differ(format!(
                        "column `{}` first differs at sorted row {r}",
                        field.name()
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array};
    use std::sync::Arc;

    fn b(k: Vec<i64>, v: Vec<f64>) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(k)) as _),
            ("v", Arc::new(Float64Array::from(v)) as _),
        ])
        .unwrap()
    }

    #[test]
    fn order_and_rounding_do_not_matter_but_values_do() {
        let x = b(vec![1, 2, 3], vec![0.1 + 0.2, 5.0, 7.0]);
        let y = b(vec![3, 1, 2], vec![7.0, 0.3, 5.0]);
        let s = x.schema();
        same_rows(
            std::slice::from_ref(&x),
            &[y.slice(0, 1), y.slice(1, 2)],
            &s,
            1e-9,
        )
        .unwrap();
        let z = b(vec![3, 1, 2], vec![7.0, 0.31, 5.0]);
        assert!(same_rows(std::slice::from_ref(&x), &[z], &s, 1e-9).is_err());
        let w = b(vec![3, 1, 4], vec![7.0, 0.3, 5.0]);
        let err = same_rows(std::slice::from_ref(&x), &[w], &s, 1e-9).unwrap_err();
        assert!(err.to_string().contains("column `k`"), "{err}");
        assert!(same_rows(std::slice::from_ref(&x), &[x.slice(0, 2)], &s, 1e-9).is_err());
    }

    #[test]
    fn near_zero_floats_compare_with_an_absolute_tolerance() {
        // the difference of two averages summed in different orders
        let x = b(vec![1], vec![7.105427357601002e-15]);
        let y = b(vec![1], vec![0.0]);
        let s = x.schema();
        same_rows(std::slice::from_ref(&x), std::slice::from_ref(&y), &s, 1e-9).unwrap();
        let z = b(vec![1], vec![1e-6]);
        assert!(same_rows(std::slice::from_ref(&z), &[y], &s, 1e-9).is_err());
    }
}
