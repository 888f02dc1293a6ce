//! A group's live rows as a multiset, the state of the aggregates that
//! plan Top-N and joins over a changelog: each row in the arrow row format
//! with a signed count (an insert adds one, a delete takes one back; a
//! partial state may go below zero until merged with the one that holds
//! the insert), finished as the group's best N rows or as a join's pairs.
//!
//! Owns [`RowBag`], [`Finish`], [`RowBagUdf`] (the aggregate over it), the packed format ([`pack`],
//! [`unpack`], [`pack_pair`], [`unpack_pairs`]) and [`old_and_new`], which
//! pairs a retracting aggregate's old and new result per key. May use the aggregate UDF
//! traits, the join type and the arrow crates.
//!
//! ```text
//!  update(rows) / retract(rows) ─► rows: BTreeMap<row bytes, count> (0 → removed)
//!  state() / merge_state() ─► [len u32][row][count i64]…   (spill, checkpoints, merges)
//!  finish() ─► Best { n }:   the first n rows in byte order (= rank order), each
//!                            as often as it is live: [len u32][row]…
//!              Pairs(type):  rows tagged by side (first byte 0 left, 1 right);
//!                            every left × right row, and with an outer type a
//!                            side's rows alone while the other has none:
//!                            [len u32 | u32::MAX for none][left][len][right]…
//! ```

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;
use weir_core::error::{Error, Result};
use weir_functions::aggregate::{AggregateState, AggregateUdf};
use weir_operators::join::JoinType;
use weir_operators::OP_COLUMN;

/// Bytes accounted per kept row besides its bytes (map entry and count).
const ROW_BYTES: usize = 64;
/// The length written for the missing side of a padded pair.
const NONE: u32 = u32::MAX;

/// What a [`RowBag`] gives when finished.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finish {
    /// The best `n` rows; `append_only`: rows are never taken back, so
    /// only those are kept.
    Best { n: usize, append_only: bool },
    /// The pairs a regular join of this key's tagged rows gives.
    Pairs(JoinType),
}

/// One group's live rows: row bytes → how many times it is live.
#[derive(Debug)]
pub(crate) struct RowBag {
    // config
    finish: Finish,
    // state
    rows: BTreeMap<Vec<u8>, i64>,
    /// Rows with a negative count (a delete whose insert another partial
    /// state holds; an error when finished).
    negative: usize,
    /// Bytes of `rows`, as accounted.
    bytes: usize,
}

fn state_error(message: impl Into<String>) -> Error {
    Error::State {
        operator: "changelog rows".into(),
        message: message.into(),
    }
}

impl RowBag {
    pub(crate) fn new(finish: Finish) -> Self {
        RowBag {
            finish,
            rows: BTreeMap::new(),
            negative: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, row: &[u8], by: i64) {
        let (was, now) = match self.rows.get_mut(row) {
            Some(n) => {
                let was = *n;
                *n += by;
                let now = *n;
                if now == 0 {
                    self.rows.remove(row);
                    self.bytes -= row.len() + ROW_BYTES;
                }
                (was, now)
            }
            None if by != 0 => {
                self.rows.insert(row.to_vec(), by);
                self.bytes += row.len() + ROW_BYTES;
                (0, by)
            }
            None => (0, 0),
        };
        match (was < 0, now < 0) {
            (false, true) => self.negative += 1,
            (true, false) => self.negative -= 1,
            _ => {}
        }
        if let Finish::Best {
            n,
            append_only: true,
        } = self.finish
        {
            self.keep_best(n);
        }
    }

    /// Append-only rows: drops every row after the best `n` (counting
    /// each row as often as it occurs).
    fn keep_best(&mut self, n: usize) {
        // append-only: every count is positive
        let mut seen = 0usize;
        let mut cut = None;
        for (row, &count) in &self.rows {
            if seen >= n {
                cut = Some(row.clone());
                break;
            }
            seen = seen.saturating_add(count.max(0) as usize);
        }
        if let Some(cut) = cut {
            for (row, _) in self.rows.split_off(&cut) {
                self.bytes -= row.len() + ROW_BYTES;
            }
        }
    }

    fn apply(&mut self, values: &ArrayRef, rows: &[u32], by: i64) -> Result<()> {
        let values = values
            .as_binary_opt::<i32>()
            .ok_or_else(|| state_error(format!("rows are Binary, not {}", values.data_type())))?;
        for &r in rows {
            self.add(values.value(r as usize), by);
        }
        Ok(())
    }

    /// The live rows with their counts; a negative count means a delete of
    /// a row never inserted.
    fn live(&self) -> Result<impl Iterator<Item = (&[u8], usize)>> {
        if self.negative > 0 {
            return Err(state_error("the changelog deleted a row it never inserted"));
        }
        Ok(self.rows.iter().map(|(r, &n)| (r.as_slice(), n as usize)))
    }

    fn best(&self, n: usize) -> Result<Vec<u8>> {
        let mut best: Vec<&[u8]> = Vec::with_capacity(n.min(self.rows.len()));
        for (row, count) in self.live()? {
            best.extend(std::iter::repeat_n(row, count.min(n - best.len())));
            if best.len() == n {
                break;
            }
        }
        Ok(pack(best.into_iter().map(|r| (r, None))))
    }

    fn pairs(&self, ty: JoinType) -> Result<Vec<u8>> {
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for (row, count) in self.live()? {
            match row.split_first() {
                Some((0, r)) => left.push((r, count)),
                Some((1, r)) => right.push((r, count)),
                _ => return Err(state_error("a join row without its side")),
            }
        }
        let mut out = Vec::new();
        for &(l, cl) in &left {
            for &(r, cr) in &right {
                for _ in 0..cl * cr {
                    pack_pair(&mut out, Some(l), Some(r));
                }
            }
        }
        if right.is_empty() && ty.keeps_left() {
            for &(l, cl) in &left {
                for _ in 0..cl {
                    pack_pair(&mut out, Some(l), None);
                }
            }
        }
        if left.is_empty() && ty.keeps_right() {
            for &(r, cr) in &right {
                for _ in 0..cr {
                    pack_pair(&mut out, None, Some(r));
                }
            }
        }
        Ok(out)
    }
}

/// `rows` packed as one value: each as its length (u32, little-endian)
/// then its bytes, and with a count, then the count (i64, little-endian).
pub(crate) fn pack<'a>(rows: impl Iterator<Item = (&'a [u8], Option<i64>)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (row, count) in rows {
        out.extend_from_slice(&(row.len() as u32).to_le_bytes());
        out.extend_from_slice(row);
        if let Some(n) = count {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    out
}

/// Splits `n` bytes off the front of `bytes`.
fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    let head = bytes
        .get(..n)
        .ok_or_else(|| state_error("a packed row list is cut short"))?;
    *bytes = &bytes[n..];
    Ok(head)
}

fn take_u32(bytes: &mut &[u8]) -> Result<u32> {
    let b = take(bytes, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The rows (and counts, if `counts`; else 1) [`pack`] packed, or an
/// error for bytes it did not write (a foreign or corrupt checkpoint).
pub(crate) fn unpack(mut bytes: &[u8], counts: bool) -> Result<Vec<(&[u8], i64)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = take_u32(&mut bytes)? as usize;
        let row = take(&mut bytes, len)?;
        let n = if counts {
            let b = take(&mut bytes, 8)?;
            i64::from_le_bytes(b.try_into().expect("8 bytes were taken"))
        } else {
            1
        };
        out.push((row, n));
    }
    Ok(out)
}

/// Appends a join pair: each side's length (u32::MAX when padded) and bytes.
pub(crate) fn pack_pair(out: &mut Vec<u8>, left: Option<&[u8]>, right: Option<&[u8]>) {
    for side in [left, right] {
        match side {
            Some(r) => {
                out.extend_from_slice(&(r.len() as u32).to_le_bytes());
                out.extend_from_slice(r);
            }
            None => out.extend_from_slice(&NONE.to_le_bytes()),
        }
    }
}

/// A join pair as [`pack_pair`] packed it: the whole entry (its bytes
/// order pairs) and each side.
pub(crate) type Pair<'a> = (&'a [u8], Option<&'a [u8]>, Option<&'a [u8]>);

/// One side of a packed pair (`None`: padded).
fn pair_side<'a>(bytes: &mut &'a [u8]) -> Result<Option<&'a [u8]>> {
    match take_u32(bytes)? {
        NONE => Ok(None),
        len => take(bytes, len as usize).map(Some),
    }
}

/// The pairs [`pack_pair`] packed, in order.
pub(crate) fn unpack_pairs(mut bytes: &[u8]) -> Result<Vec<Pair<'_>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let whole = bytes;
        let l = pair_side(&mut bytes)?;
        let r = pair_side(&mut bytes)?;
        let used = whole.len() - bytes.len();
        out.push((&whole[..used], l, r));
    }
    Ok(out)
}

/// Column `name` of `batch` (an aggregate's rows this module planned).
pub(crate) fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| state_error(format!("no column `{name}` in the aggregate's rows")))
}

/// Pairs up a retracting aggregate's rows (`keys` | result | `op`) per
/// key: the row of its old result (a `delete`) and of its new one (an
/// `insert`), each key in the order first met. A key met again after its
/// pair is complete starts a new pair (the first is diffed first).
pub(crate) fn old_and_new(
    batch: &RecordBatch,
    keys: &[String],
) -> Result<Vec<(Option<usize>, Option<usize>)>> {
    let op = column(batch, OP_COLUMN)?
        .as_string_opt::<i32>()
        .ok_or_else(|| state_error("the aggregate's `op` is not a string"))?;
    let key_columns = keys
        .iter()
        .map(|k| column(batch, k).cloned())
        .collect::<Result<Vec<_>>>()?;
    let key_fields = key_columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let encoded = RowConverter::new(key_fields)
        .and_then(|c| c.convert_columns(&key_columns))
        .map_err(|e| state_error(e.to_string()))?;
    let mut order: Vec<&[u8]> = Vec::new();
    let mut pending: HashMap<&[u8], (Option<usize>, Option<usize>)> = HashMap::new();
    let mut pairs: Vec<(Option<usize>, Option<usize>)> = Vec::new();
    for i in 0..batch.num_rows() {
        let key = encoded.row(i).data();
        let delete = op.value(i) == "delete";
        let entry = pending.entry(key).or_insert_with(|| {
            order.push(key);
            (None, None)
        });
        if entry.1.is_some() || (delete && entry.0.is_some()) {
            pairs.push(std::mem::take(entry));
        }
        if delete {
            entry.0 = Some(i);
        } else {
            entry.1 = Some(i);
        }
    }
    pairs.extend(order.iter().map(|k| pending[k]));
    Ok(pairs)
}

/// The aggregate whose state is a [`RowBag`] finished as `0` says: a
/// Top-N's partition or a join's key over `encode_rows`' rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowBagUdf(pub Finish);

impl AggregateUdf for RowBagUdf {
    fn name(&self) -> &str {
        match self.0 {
            Finish::Best { .. } => "top_rows",
            Finish::Pairs(_) => "join_rows",
        }
    }

    fn return_type(&self, _input: &DataType) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn state_type(&self, _input: &DataType) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn create(&self) -> Box<dyn AggregateState> {
        Box::new(RowBag::new(self.0))
    }

    /// Rows are taken back unless they never are (append-only Top-N).
    fn retracts(&self) -> bool {
        !matches!(
            self.0,
            Finish::Best {
                append_only: true,
                ..
            }
        )
    }
}

fn binary(value: Vec<u8>) -> ArrayRef {
    Arc::new(BinaryArray::from_vec(vec![value.as_slice()]))
}

impl AggregateState for RowBag {
    fn update(&mut self, values: &ArrayRef, rows: &[u32], _times: &[i64]) -> Result<()> {
        self.apply(values, rows, 1)
    }

    fn retract(&mut self, values: &ArrayRef, rows: &[u32], _times: &[i64]) -> Result<()> {
        self.apply(values, rows, -1)
    }

    fn merge(&mut self, other: &dyn AggregateState) -> Result<()> {
        let other = other
            .as_any()
            .downcast_ref::<RowBag>()
            .ok_or_else(|| state_error("merged with another aggregate's state"))?;
        for (row, &n) in &other.rows {
            self.add(row, n);
        }
        Ok(())
    }

    fn state(&self) -> Result<ArrayRef> {
        Ok(binary(pack(
            self.rows.iter().map(|(r, &n)| (r.as_slice(), Some(n))),
        )))
    }

    fn merge_state(&mut self, state: &ArrayRef, row: usize) -> Result<()> {
        let state = state.as_binary_opt::<i32>().ok_or_else(|| {
            state_error(format!(
                "a state column of {}, not Binary",
                state.data_type()
            ))
        })?;
        if state.is_null(row) {
            return Ok(());
        }
        for (r, n) in unpack(state.value(row), true)? {
            self.add(r, n);
        }
        Ok(())
    }

    fn finish(&self) -> Result<ArrayRef> {
        Ok(binary(match self.finish {
            Finish::Best { n, .. } => self.best(n)?,
            Finish::Pairs(ty) => self.pairs(ty)?,
        }))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(rows: &[&[u8]]) -> ArrayRef {
        Arc::new(BinaryArray::from_vec(rows.to_vec()))
    }

    /// A pair with its sides owned.
    type Owned = (Option<Vec<u8>>, Option<Vec<u8>>);

    fn pairs(bag: &RowBag) -> Vec<Owned> {
        let out = bag.finish().unwrap();
        unpack_pairs(out.as_binary::<i32>().value(0))
            .unwrap()
            .into_iter()
            .map(|(_, l, r)| (l.map(<[u8]>::to_vec), r.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn a_key_gives_every_pair_and_pads_a_side_alone_by_join_type() {
        let v = values(&[b"\x00a", b"\x00b", b"\x01x", b"\x01x"]);
        let s = |x: &[u8]| Some(x.to_vec());
        for (ty, want_alone) in [(JoinType::Inner, false), (JoinType::Left, true)] {
            let mut bag = RowBag::new(Finish::Pairs(ty));
            bag.update(&v, &[0, 1], &[]).unwrap();
            let alone = vec![(s(b"a"), None), (s(b"b"), None)];
            assert_eq!(pairs(&bag), if want_alone { alone } else { vec![] });
            // a right row twice: each left row pairs twice
            bag.update(&v, &[2, 3], &[]).unwrap();
            assert_eq!(
                pairs(&bag),
                vec![
                    (s(b"a"), s(b"x")),
                    (s(b"a"), s(b"x")),
                    (s(b"b"), s(b"x")),
                    (s(b"b"), s(b"x"))
                ]
            );
            bag.retract(&v, &[0, 1], &[]).unwrap();
            assert!(pairs(&bag).is_empty(), "{ty:?}: right rows alone");
        }
        let mut full = RowBag::new(Finish::Pairs(JoinType::Full));
        full.update(&v, &[2], &[]).unwrap();
        assert_eq!(pairs(&full), vec![(None, s(b"x"))]);
        let mut bad = RowBag::new(Finish::Pairs(JoinType::Inner));
        bad.update(&values(&[b"\x07?"]), &[0], &[]).unwrap();
        assert!(bad.finish().is_err(), "a row without its side");
    }

    #[test]
    fn packed_lists_round_trip_and_corrupt_ones_are_an_error() {
        assert!(unpack(&[5, 0, 0, 0, 1], false).is_err());
        assert!(unpack(&[1, 0, 0, 0, 9, 1], true).is_err());
        let rows: Vec<(&[u8], Option<i64>)> = vec![(b"xy", Some(-2)), (b"", Some(1))];
        let packed = pack(rows.into_iter());
        assert_eq!(
            unpack(&packed, true).unwrap(),
            vec![(&b"xy"[..], -2), (&b""[..], 1)]
        );
        let mut out = Vec::new();
        pack_pair(&mut out, Some(b"l"), None);
        pack_pair(&mut out, None, Some(b""));
        let back = unpack_pairs(&out).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].1, back[0].2), (Some(&b"l"[..]), None));
        assert_eq!((back[1].1, back[1].2), (None, Some(&b""[..])));
        assert_eq!(back[0].0.len() + back[1].0.len(), out.len());
        assert!(unpack_pairs(&out[..out.len() - 1]).is_err());
    }

    #[test]
    fn old_and_new_pairs_each_keys_delete_with_its_insert() {
        use arrow_array::{Int64Array, StringArray};
        let batch = RecordBatch::try_from_iter([
            (
                "k",
                Arc::new(Int64Array::from(vec![1, 2, 1, 3, 2, 1, 1])) as ArrayRef,
            ),
            (
                OP_COLUMN,
                Arc::new(StringArray::from(vec![
                    "delete", "delete", "insert", "insert", "insert", "delete", "insert",
                ])) as ArrayRef,
            ),
        ])
        .unwrap();
        // key 1 is met again after its pair is complete: two pairs, in order
        assert_eq!(
            old_and_new(&batch, &["k".to_string()]).unwrap(),
            vec![
                (Some(0), Some(2)),
                (Some(5), Some(6)),
                (Some(1), Some(4)),
                (None, Some(3)),
            ]
        );
        assert!(old_and_new(&batch, &["nope".to_string()]).is_err());
    }

    #[test]
    fn a_bag_emptied_gives_its_bytes_back() {
        let mut bag = RowBag::new(Finish::Best {
            n: 3,
            append_only: false,
        });
        let v = values(&[b"abc", b"abc"]);
        bag.update(&v, &[0, 1], &[]).unwrap();
        assert!(bag.memory_size() > std::mem::size_of::<RowBag>());
        bag.retract(&v, &[1, 0], &[]).unwrap();
        assert_eq!(bag.memory_size(), std::mem::size_of::<RowBag>());
    }
}
