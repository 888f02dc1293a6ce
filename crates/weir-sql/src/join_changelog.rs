//! Regular joins over a changelog (Flink's regular join of updating
//! tables): `l [LEFT | RIGHT | FULL] JOIN r ON l.k = r.k` where either side
//! is a changelog (another `GROUP BY`'s or a Top-N's result, planned as
//! retractions); the result is a changelog of inserted and deleted pairs.
//!
//! Owns [`changelog_join`] (planning) and the batch functions it plans:
//! [`Tag`] (a side's rows as `keys | side-tagged row | sign`), [`Padded`]
//! (an outer side's rows with a null key, which never match) and [`PairsOut`]
//! (what changed in a key's pairs, as output rows). May use `super::row_bag`,
//! `super::top_n`'s changes, `super::error`, the engine's builder, the
//! join layout and the arrow crates.
//!
//! ```text
//!  left  ─► Tag(0): keys | [0] ++ row (arrow row format) | sign (+1 insert, -1 delete) ─┐
//!  right ─► Tag(1): keys | [1] ++ row | sign ───────────────────────────────────────────┴► union
//!   ─► key_by(keys).aggregate_retracting(RowBag(Pairs(type)) of the tagged rows by sign)
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

use arrow_array::builder::{BinaryBuilder, Int64Builder};
use arrow_array::cast::AsArray;
use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array,
};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use sqlparser::ast;
use weir_core::error::{Error, Result};
use weir_engine::graph::Stream;
use weir_functions::aggregate::{AggregateState, AggregateUdf};
use weir_functions::Agg;
use weir_operators::join::{JoinLayout, JoinSpec, JoinType};
use weir_operators::OP_COLUMN;

use crate::error::{engine, SqlError};
use crate::row_bag::{column, old_and_new, unpack_pairs, Finish, RowBag};
use crate::top_n::{changes, Emit};

/// A side's row, tagged with its side.
const ROW: &str = "__weir_row";
/// A row's sign.
const SIGN: &str = "__weir_sign";
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
    for side in [left, right] {
        if let Ok(op) = side.schema().field_with_name(OP_COLUMN) {
            if op.data_type() != &DataType::Utf8 {
                return Err(crate::error::at_node(
                    node,
                    format!(
                        "a changelog's op is a string (insert or delete), not {}",
                        op.data_type()
                    ),
                ));
            }
        }
    }
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
        let op = schema.index_of(OP_COLUMN).ok();
        let mut tagged_fields: Vec<Field> = key_columns
            .iter()
            .zip(&keys)
            .map(|(&i, name)| Field::new(name, schema.field(i).data_type().clone(), true))
            .collect();
        tagged_fields.push(Field::new(ROW, DataType::Binary, false));
        tagged_fields.push(Field::new(SIGN, DataType::Int64, false));
        let tag = Tag {
            side: s as u8,
            keys: key_columns.clone(),
            fields: columns
                .iter()
                .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                .collect(),
            columns: columns.clone(),
            op,
            schema: Arc::new(Schema::new(tagged_fields)),
        };
        tagged.push(side.map_batches_with_schema(tag.schema.clone(), move |b| tag.on_batch(&b)));
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
    let agg = Agg::udf(Arc::new(JoinRows(ty)), ROW)
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

/// The sign of each row of a changelog's `op` column (`None`: no column,
/// every row an insert).
fn signs(batch: &RecordBatch, op: Option<usize>) -> Result<Vec<i64>> {
    match op {
        None => Ok(vec![1; batch.num_rows()]),
        Some(op) => crate::row_bag::signs(batch.column(op)).map_err(|message| Error::Expr {
            expr: "JOIN … ON (a changelog)".into(),
            message,
        }),
    }
}

/// The rows whose key columns are all set (`keyed`), or the others.
fn keyed_rows(batch: &RecordBatch, keys: &[usize], keyed: bool) -> BooleanArray {
    (0..batch.num_rows())
        .map(|i| Some(keys.iter().all(|&k| batch.column(k).is_valid(i)) == keyed))
        .collect()
}

/// A side's rows with a whole key as `keys | [side] ++ row | sign`.
struct Tag {
    // config
    side: u8,
    /// The side's key columns.
    keys: Vec<usize>,
    /// The side's columns but `op`, and their row-format fields.
    columns: Vec<usize>,
    fields: Vec<SortField>,
    op: Option<usize>,
    schema: SchemaRef,
}

impl Tag {
    fn on_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        // a null key never equals anything: such rows do not join
        let keyed = keyed_rows(batch, &self.keys, true);
        let batch = arrow_select::filter::filter_record_batch(batch, &keyed)?;
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let rows = RowConverter::new(self.fields.clone())
            .and_then(|c| c.convert_columns(&arrays))
            .map_err(arrow_error)?;
        let mut tagged =
            BinaryBuilder::with_capacity(batch.num_rows(), rows.size() + batch.num_rows());
        let mut bytes = Vec::new();
        for row in rows.iter() {
            bytes.clear();
            bytes.push(self.side);
            bytes.extend_from_slice(row.as_ref());
            tagged.append_value(&bytes);
        }
        let mut sign = Int64Builder::with_capacity(batch.num_rows());
        sign.append_slice(&signs(&batch, self.op)?);
        let mut columns: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|&k| Arc::clone(batch.column(k)))
            .collect();
        columns.push(Arc::new(tagged.finish()));
        columns.push(Arc::new(sign.finish()));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
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
        let ops = signs(&batch, self.op)?;
        columns.push(Arc::new(StringArray::from_iter_values(
            ops.iter().map(|&s| if s > 0 { "insert" } else { "delete" }),
        )));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// The aggregate keeping a key's rows of both sides and giving its pairs.
#[derive(Debug, Clone, Copy)]
struct JoinRows(JoinType);

impl AggregateUdf for JoinRows {
    fn name(&self) -> &str {
        "join_rows"
    }

    fn return_type(&self, _input: &DataType) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn state_type(&self, _input: &DataType) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn create(&self) -> Box<dyn AggregateState> {
        Box::new(RowBag::new(Finish::Pairs(self.0)))
    }

    fn retracts(&self) -> bool {
        true
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
