//! Regular joins over a changelog (Flink's regular join of updating
//! tables): `l [LEFT | RIGHT | FULL] JOIN r ON l.k = r.k` where either side
//! is a changelog (another `GROUP BY`'s or a Top-N's result, planned as
//! retractions); the result is a changelog of inserted and deleted pairs.
//!
//! Owns [`changelog_join`] (planning) and the batch functions it plans
//! besides `super::encode_rows` (a side's rows as `keys | side-tagged row |
//! sign`): [`Padded`] (an outer side's rows with a null key, which never
//! match) and [`PairsOut`] (what changed in a key's pairs, as output rows).
//! May use `super::encode_rows`, `super::row_bag`, `super::top_n`'s changes,
//! `super::error`, the engine's builder, the join layout and the arrow crates.
//!
//! ```text
//!  left  ─► EncodeRows(side 0): keys | [0] ++ row (arrow row format) | sign (±1) ─┐
//!  right ─► EncodeRows(side 1): keys | [1] ++ row | sign ─────────────────────────┴► union
//!   ─► key_by(keys).aggregate_retracting(RowBagUdf(Pairs(type)) of the tagged rows by sign)
//!        per key: both sides' live rows; after each batch, the keys it changed:
//!        delete (old pairs), insert (new pairs): every left × right row, and an
//!        outer side's rows alone (padded) while the other side has none
//!   ─► PairsOut: per key, old vs new pairs ─► deleted pairs, inserted pairs
//!  outer side's rows with a null key ─► Padded: the row with nulls, its op ─► union ─► out
//! ```
//! State is every live row of both sides (as Flink's), in the aggregate's
//! spillable, checkpointed state. A key's pairs are recomputed when it
//! changes: work per change grows with the product of the key's rows on
//! the two sides (built for joins of aggregations, a few rows per key).
//! Rows are joined as they arrive, so the changelog differs between modes;
//! the table it leaves does not.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use sqlparser::ast;
use weir_core::error::{Error, Result};
use weir_engine::graph::Stream;
use weir_functions::Agg;
use weir_operators::join::{JoinLayout, JoinSpec, JoinType};
use weir_operators::OP_COLUMN;

use crate::encode_rows::{keyed_rows, op_column, signs, EncodeRows, ROW, SIGN};
use crate::error::{engine, SqlError};
use crate::row_bag::{column, old_and_new, unpack_pairs, Finish, RowBagUdf};
use crate::top_n::{changes, Emit};

/// A key's pairs, packed.
const PAIRS: &str = "__weir_pairs";

/// Plans `left JOIN right ON left.lk = right.rk` of type `ty` where either
/// side is a changelog: a changelog of the pairs (see the module's diagram),
/// with the columns and names a regular join gives, then `op`.
pub(crate) fn changelog_join(
    left: &Stream,
    right: &Stream,
    lk: &[String],
    rk: &[String],
    ty: JoinType,
    node: &impl ast::Spanned,
) -> Result<Stream, SqlError> {
    let fail = |e: Error| engine(node, e);
    let inputs = [without_op(left.schema()), without_op(right.schema())];
    let spec = JoinSpec::regular()
        .on(lk.to_vec(), rk.to_vec())
        .with_type(ty);
    let layout = JoinLayout::try_new(&inputs[0], &inputs[1], None, None, &spec).map_err(fail)?;
    let mut fields: Vec<Arc<Field>> = layout.schema().fields().iter().cloned().collect();
    if !fields.iter().any(|f| f.name() == OP_COLUMN) {
        fields.push(Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false)));
    }
    let output = Arc::new(Schema::new(fields));
    let keys: Vec<String> = (0..lk.len()).map(|i| format!("__weir_k{i}")).collect();
    let mut tagged = Vec::with_capacity(2);
    let mut padded = Vec::new();
    for (s, (side, side_keys)) in [(left, lk), (right, rk)].into_iter().enumerate() {
        let schema = side.schema();
        let key_at = |k: &String| schema.index_of(k).map_err(|e| fail(e.into()));
        let key_columns = side_keys
            .iter()
            .map(key_at)
            .collect::<Result<Vec<_>, _>>()?;
        let columns: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| schema.field(i).name() != OP_COLUMN)
            .collect();
        let op = op_column(schema).map_err(|m| crate::error::at_node(node, m))?;
        let fields = columns
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect();
        let tag = EncodeRows::new(
            schema,
            key_columns.clone(),
            &keys,
            columns.clone(),
            fields,
            op,
        )
        .for_join_side(s as u8);
        tagged.push(side.map_batches_with_schema(tag.schema(), move |b| tag.on_batch(&b)));
        if ty.keeps(s) {
            let pad = Padded {
                side: s,
                keys: key_columns,
                columns,
                op,
                schema: output.clone(),
            };
            padded.push(side.map_batches_with_schema(output.clone(), move |b| pad.on_batch(&b)));
        }
    }
    let agg = Agg::udf(Arc::new(RowBagUdf(Finish::Pairs(ty))), ROW)
        .retracting(SIGN)
        .alias(PAIRS);
    let pairs = tagged[0]
        .union(&tagged[1])
        .and_then(|u| u.key_by(&keys))
        .and_then(|k| k.aggregate_retracting([agg]))
        .map_err(fail)?;
    let converters = [0, 1].map(|s| {
        (0..inputs[s].fields().len())
            .map(|i| SortField::new(inputs[s].field(i).data_type().clone()))
            .collect::<Vec<_>>()
    });
    let out = PairsOut {
        keys,
        fields: converters,
        schema: output.clone(),
    };
    let mut joined = pairs.map_batches_with_schema(output, move |b| out.on_batch(&b));
    for p in padded {
        joined = joined.union(&p).map_err(fail)?;
    }
    Ok(joined)
}

/// `schema` without its `op` column.
fn without_op(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != OP_COLUMN)
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

fn arrow_error(e: ArrowError) -> Error {
    Error::Expr {
        expr: "JOIN … ON (a changelog)".into(),
        message: e.to_string(),
    }
}

/// An outer side's rows whose key has a null, as output rows: the row,
/// nulls for the other side, its op (they never match, so never change).
struct Padded {
    // config
    side: usize,
    keys: Vec<usize>,
    columns: Vec<usize>,
    op: Option<usize>,
    schema: SchemaRef,
}

impl Padded {
    fn on_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let unkeyed = keyed_rows(batch, &self.keys, false);
        let batch = arrow_select::filter::filter_record_batch(batch, &unkeyed)?;
        let n = batch.num_rows();
        let width = self.schema.fields().len() - 1;
        let own = self.columns.len();
        // left's columns come first in the output, then right's
        let start = if self.side == 0 { 0 } else { width - own };
        let mut columns: Vec<ArrayRef> = (0..width)
            .map(|i| match i.checked_sub(start).filter(|&j| j < own) {
                Some(j) => Arc::clone(batch.column(self.columns[j])),
                None => new_null_array(self.schema.field(i).data_type(), n),
            })
            .collect();
        // a changelog's own op (insert or delete: checked), or an insert
        columns.push(match self.op {
            Some(op) => {
                signs(batch.column(op)).map_err(|message| Error::Expr {
                    expr: "JOIN … ON (a changelog)".into(),
                    message,
                })?;
                Arc::clone(batch.column(op))
            }
            None => Arc::new(StringArray::from(vec!["insert"; n])),
        });
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// The aggregate's rows (keys | packed pairs | op) as the join's changelog.
struct PairsOut {
    // config
    keys: Vec<String>,
    /// Each side's row-format fields (its columns but `op`).
    fields: [Vec<SortField>; 2],
    schema: SchemaRef,
}

impl PairsOut {
    fn on_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let packed = column(batch, PAIRS)?.as_binary::<i32>();
        let list = |row: Option<usize>| -> Result<Vec<&[u8]>> {
            let mut entries: Vec<&[u8]> = match row {
                Some(i) if packed.is_valid(i) => unpack_pairs(packed.value(i))?
                    .into_iter()
                    .map(|(entry, _, _)| entry)
                    .collect(),
                _ => Vec::new(),
            };
            entries.sort_unstable();
            Ok(entries)
        };
        let mut changed = Vec::new();
        for (old, new) in old_and_new(batch, &self.keys)? {
            changed.extend(changes(&list(old)?, &list(new)?, Emit::Rows));
        }
        let mut sides: [Vec<Option<&[u8]>>; 2] = [Vec::new(), Vec::new()];
        for (entry, _, _) in &changed {
            let (_, l, r) = unpack_pairs(entry)?
                .pop()
                .expect("a change is one packed pair");
            sides[0].push(l);
            sides[1].push(r);
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (s, rows) in sides.iter().enumerate() {
            columns.extend(self.decode(s, rows)?);
        }
        columns.push(Arc::new(StringArray::from_iter_values(
            changed.iter().map(|&(_, _, op)| op),
        )));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Side `s`'s columns of `rows` (`None`: padded, all null).
    fn decode(&self, s: usize, rows: &[Option<&[u8]>]) -> Result<Vec<ArrayRef>> {
        let converter = RowConverter::new(self.fields[s].clone()).map_err(arrow_error)?;
        let parser = converter.parser();
        let present: Vec<&[u8]> = rows.iter().flatten().copied().collect();
        let decoded = converter
            .convert_rows(present.iter().map(|b| parser.parse(b)))
            .map_err(arrow_error)?;
        if present.len() == rows.len() {
            return Ok(decoded);
        }
        // padded rows take a null index
        let mut next = 0u32;
        let indices: UInt32Array = rows
            .iter()
            .map(|r| {
                r.map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        decoded
            .iter()
            .map(|a| Ok(arrow_select::take::take(a.as_ref(), &indices, None)?))
            .collect()
    }
}
