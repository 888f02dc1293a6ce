//! One window's join: a hash table over the right side's rows, probed by
//! every left row; pairs and padded rows as two index arrays for `take`.
//!
//! May use what the parent module imports.

use super::*;
use arrow_array::builder::UInt32Builder;
use std::collections::hash_map::Entry as MapEntry;

use weir_core::key::FastBuildHasher;

/// End of a chain of right rows with equal keys.
const NONE: u32 = u32::MAX;

/// Bytes the join of a window builds per row of its two sides: the hash
/// table's slot and chain link, the encoded key, the pair indexes.
pub(super) const BYTES_PER_ROW: usize = 48;

/// The rows of one window's join, as indexes into the left and right
/// batches (a null pads that side), in left row order, then the right
/// rows no left row matched (outer joins keeping the right side).
///
/// ```text
///  right rows:  0:k1 1:k2 2:k1      heads {k1 → 0, k2 → 1}   next [2, -, -]
///  left rows:   0:k1 1:k3           li [0 0 1]   ri [0 2 null]   (left join)
/// ```
/// A row with a null key matches nothing.
pub(super) fn pair_rows(
    keys: &[KeyEncoder; 2],
    join_type: JoinType,
    left: &RecordBatch,
    right: &RecordBatch,
) -> Result<(UInt32Array, UInt32Array)> {
    let (nl, nr) = (left.num_rows(), right.num_rows());
    if u32::try_from(nl.max(nr)).is_err() || nr == NONE as usize {
        return Err(Error::Arrow(arrow_schema::ArrowError::ComputeError(
            format!(
                "join: a window holds {} rows on one side, more than a window join can index ({})",
                nl.max(nr),
                u32::MAX - 1
            ),
        )));
    }
    let mut li = UInt32Builder::with_capacity(nl.max(nr));
    let mut ri = UInt32Builder::with_capacity(nl.max(nr));
    let mut right_matched = vec![false; if join_type.keeps(1) { nr } else { 0 }];
    if nl > 0 && nr > 0 {
        let lk = keys[0].encode(left)?;
        let rk = keys[1].encode(right)?;
        let (l_null, r_null) = (
            null_key_rows(left, keys[0].indices()),
            null_key_rows(right, keys[1].indices()),
        );
        // chains in row order: build from the last row back
        let mut heads: HashMap<&[u8], u32, FastBuildHasher> =
            HashMap::with_capacity_and_hasher(nr, FastBuildHasher::default());
        let mut next = vec![NONE; nr];
        for j in (0..nr).rev() {
            if r_null.as_ref().is_some_and(|n| n[j]) {
                continue;
            }
            match heads.entry(rk.row(j).data()) {
                MapEntry::Occupied(mut e) => {
                    next[j] = *e.get();
                    *e.get_mut() = j as u32;
                }
                MapEntry::Vacant(e) => {
                    e.insert(j as u32);
                }
            }
        }
        for i in 0..nl {
            let mut j = if l_null.as_ref().is_some_and(|n| n[i]) {
                NONE
            } else {
                heads.get(lk.row(i).data()).copied().unwrap_or(NONE)
            };
            if j == NONE {
                if join_type.keeps(0) {
                    li.append_value(i as u32);
                    ri.append_null();
                }
                continue;
            }
            while j != NONE {
                li.append_value(i as u32);
                ri.append_value(j);
                if let Some(m) = right_matched.get_mut(j as usize) {
                    *m = true;
                }
                j = next[j as usize];
            }
        }
    } else if join_type.keeps(0) {
        for i in 0..nl {
            li.append_value(i as u32);
            ri.append_null();
        }
    }
    for (j, _) in right_matched.iter().enumerate().filter(|(_, &m)| !m) {
        li.append_null();
        ri.append_value(j as u32);
    }
    Ok((li.finish(), ri.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array};
    use arrow_schema::{DataType, Field, Schema};

    fn side(keys: &[Option<i64>]) -> RecordBatch {
        RecordBatch::try_from_iter([("k", Arc::new(Int64Array::from(keys.to_vec())) as ArrayRef)])
            .expect("batch")
    }

    fn encoders() -> [KeyEncoder; 2] {
        let schema = Schema::new(vec![Field::new("k", DataType::Int64, true)]);
        let e = || KeyEncoder::try_new(&schema, &["k".to_string()], "test").expect("encoder");
        [e(), e()]
    }

    /// The pairs as (left, right) options, sorted.
    fn pairs(
        ty: JoinType,
        l: &[Option<i64>],
        r: &[Option<i64>],
    ) -> Vec<(Option<u32>, Option<u32>)> {
        let (li, ri) = pair_rows(&encoders(), ty, &side(l), &side(r)).expect("join");
        let mut v: Vec<_> = li.iter().zip(ri.iter()).collect();
        v.sort();
        v
    }

    #[test]
    fn pairs_equal_keys_and_pads_what_the_type_keeps() {
        let l = [Some(1), Some(3), None, Some(1)];
        let r = [Some(1), Some(2), Some(1), None];
        // hand-computed: left 0 and 3 (k1) meet right 0 and 2; null keys match nothing
        let inner = vec![
            (Some(0), Some(0)),
            (Some(0), Some(2)),
            (Some(3), Some(0)),
            (Some(3), Some(2)),
        ];
        assert_eq!(pairs(JoinType::Inner, &l, &r), inner);
        let mut left = inner.clone();
        left.extend([(Some(1), None), (Some(2), None)]);
        left.sort();
        assert_eq!(pairs(JoinType::Left, &l, &r), left);
        let mut right = inner.clone();
        right.extend([(None, Some(1)), (None, Some(3))]);
        right.sort();
        assert_eq!(pairs(JoinType::Right, &l, &r), right);
        let mut full = left.clone();
        full.extend([(None, Some(1)), (None, Some(3))]);
        full.sort();
        assert_eq!(pairs(JoinType::Full, &l, &r), full);
    }

    #[test]
    fn an_empty_side_pads_the_other_or_gives_nothing() {
        assert!(pairs(JoinType::Inner, &[Some(1)], &[]).is_empty());
        assert_eq!(
            pairs(JoinType::Left, &[Some(1)], &[]),
            vec![(Some(0), None)]
        );
        assert_eq!(
            pairs(JoinType::Full, &[], &[Some(4)]),
            vec![(None, Some(0))]
        );
        assert!(pairs(JoinType::Left, &[], &[Some(4)]).is_empty());
    }
}
