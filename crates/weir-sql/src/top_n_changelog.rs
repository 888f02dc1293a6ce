//! Top-N over rows in arrival order (Flink's retractable Top-N):
//! `ROW_NUMBER() OVER (PARTITION BY k ORDER BY …)` bounded by `rownum <= N`,
//! and `ORDER BY … LIMIT n`, over a changelog (another `GROUP BY`'s result,
//! planned as retractions) or over rows without an event time (a window
//! aggregation's, ranked across windows).
//!
//! Owns [`arrival_top_n`] (planning) and [`Explode`] (the aggregate's results
//! back to rows: what changed in a partition's best N). May use
//! `super::encode_rows` (rows in the ranking's byte order), `super::row_bag`
//! (the aggregate keeping a partition's rows), `super::top_n`'s row layout
//! and changes, `super::error`, the engine's builder and the arrow crates.
//!
//! ```text
//!  rows (changelog: insert / delete of whole rows; or append-only) ─► __weir_sign ±1,
//!     __weir_row = the row encoded (ORDER BY columns with their direction, then the others)
//!   ─► key_by(PARTITION BY …).aggregate_retracting(RowBagUdf(Best N) of __weir_row [by sign])
//!        per partition: its live rows as a multiset (row bytes → count; append-only:
//!        only the best N are kept); after each batch, the partitions it changed:
//!        delete (the old best N), insert (the new best N); batch runs: every
//!        partition once at end of input, insert (its best N)
//!   ─► Explode: per partition of the batch, old vs new best N (top_n::changes):
//!        rownum kept: upserts by (partition, rownum), a place left empty → delete
//!        rownum dropped: rows that left → delete, rows that came → insert
//!   ─► rows | rownum | op
//! ```
//! A changelog's partition keeps every live row (as Flink's retractable
//! Top-N does: a deleted best row is replaced by the next one), in the
//! aggregate's spillable, checkpointed state. Rows are taken in arrival
//! order, so the changelog differs between modes (a batch run's input
//! holds final rows only), but the rows it materializes do not: ties are
//! broken by the whole row.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use sqlparser::ast;
use weir_core::error::{Error, Result};
use weir_engine::graph::Stream;
use weir_functions::Agg;
use weir_operators::OP_COLUMN;

use crate::encode_rows::{op_column, EncodeRows, ROW, SIGN};
use crate::error::{at_node, engine, SqlError};
use crate::rank::OrderKey;
use crate::row_bag::{unpack, Finish, RowBagUdf};
use crate::top_n::{changes, row_layout, Emit, TopLimit};

/// A partition's best rows, packed.
const TOP: &str = "__weir_top";

/// Plans the ranking of `input`'s rows per `partition` by `order`, kept to
/// `limit`, in arrival order: the rows, the rank column `name` (`BIGINT`)
/// and `op`. `input` is a changelog of insert and delete rows, or rows that
/// are never taken back.
pub(crate) fn arrival_top_n(
    input: &Stream,
    partition: &[String],
    order: &[OrderKey],
    name: &str,
    limit: TopLimit,
    node: &impl ast::Spanned,
) -> Result<Stream, SqlError> {
    let schema = input.schema();
    let op = op_column(schema).map_err(|m| at_node(node, m))?;
    let (columns, fields) = row_layout(schema, order, node)?;
    let keys = partition
        .iter()
        .map(|k| schema.index_of(k).map_err(|e| engine(node, e.into())))
        .collect::<Result<Vec<_>, _>>()?;
    let encode = EncodeRows::new(schema, keys, partition, columns.clone(), fields.clone(), op);
    let finish = Finish::Best {
        n: limit.n,
        append_only: op.is_none(),
    };
    let mut agg = Agg::udf(Arc::new(RowBagUdf(finish)), ROW).alias(TOP);
    if op.is_some() {
        agg = agg.retracting(SIGN);
    }
    let tops = input
        .map_batches_with_schema(encode.schema(), move |b| encode.on_batch(&b))
        .key_by(partition)
        .and_then(|k| k.aggregate_retracting([agg]))
        .map_err(|e| engine(node, e))?;
    // the output: the input's columns but `op`, the rank, `op`
    let mut out_fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != OP_COLUMN)
        .cloned()
        .collect();
    if out_fields.iter().any(|f| f.name() == name) {
        return Err(at_node(
            node,
            format!("`{name}` is already a column: name the rank otherwise"),
        ));
    }
    let positions: Vec<usize> = columns
        .iter()
        .map(|&i| {
            let n = schema.field(i).name();
            out_fields
                .iter()
                .position(|f| f.name() == n)
                .expect("every layout column but op is an output column")
        })
        .collect();
    out_fields.push(Arc::new(Field::new(name, DataType::Int64, false)));
    out_fields.push(Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false)));
    let output = Arc::new(Schema::new(out_fields));
    let explode = Explode {
        keys: partition.to_vec(),
        positions,
        fields,
        emit: limit.emit(),
        schema: output.clone(),
    };
    Ok(tops.map_batches_with_schema(output, move |b| explode.on_batch(&b)))
}

/// Turns the aggregate's rows (partition keys | packed best rows | op)
/// into the ranking's changelog (see the module's diagram).
pub(crate) struct Explode {
    // config
    keys: Vec<String>,
    /// The output column of each row-format column.
    positions: Vec<usize>,
    fields: Vec<SortField>,
    emit: Emit,
    schema: SchemaRef,
}

impl Explode {
    fn on_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let fail = |e: ArrowError| Error::Expr {
            expr: "ROW_NUMBER() OVER (… ORDER BY …)".into(),
            message: e.to_string(),
        };
        let top = crate::row_bag::column(batch, TOP)?.as_binary::<i32>();
        let pairs = crate::row_bag::old_and_new(batch, &self.keys)?;
        let list = |row: Option<usize>| -> Result<Vec<&[u8]>> {
            match row {
                Some(i) if top.is_valid(i) => Ok(unpack(top.value(i), false)?
                    .into_iter()
                    .map(|(r, _)| r)
                    .collect()),
                _ => Ok(Vec::new()),
            }
        };
        let mut all = Vec::new();
        for (old, new) in pairs {
            all.extend(changes(&list(old)?, &list(new)?, self.emit));
        }
        let converter = RowConverter::new(self.fields.clone()).map_err(fail)?;
        let parser = converter.parser();
        let decoded = converter
            .convert_rows(all.iter().map(|(b, _, _)| parser.parse(b)))
            .map_err(fail)?;
        let width = self.schema.fields().len();
        let mut out: Vec<Option<ArrayRef>> = vec![None; width];
        for (array, &i) in decoded.into_iter().zip(&self.positions) {
            out[i] = Some(array);
        }
        out[width - 2] = Some(Arc::new(Int64Array::from_iter_values(
            all.iter().map(|&(_, rank, _)| rank as i64),
        )));
        out[width - 1] = Some(Arc::new(StringArray::from_iter_values(
            all.iter().map(|&(_, _, op)| op),
        )));
        let columns = out
            .into_iter()
            .map(|c| c.expect("the layout, rank and op cover every output column"))
            .collect();
        RecordBatch::try_new(self.schema.clone(), columns).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::BinaryArray;
    use weir_functions::aggregate::{AggregateState, AggregateUdf};

    fn state(n: usize, append_only: bool) -> Box<dyn AggregateState> {
        RowBagUdf(Finish::Best { n, append_only }).create()
    }

    fn values(rows: &[&[u8]]) -> ArrayRef {
        Arc::new(BinaryArray::from_vec(rows.to_vec()))
    }

    fn best(s: &dyn AggregateState) -> Vec<Vec<u8>> {
        let out = s.finish().unwrap();
        unpack(out.as_binary::<i32>().value(0), false)
            .unwrap()
            .into_iter()
            .map(|(r, _)| r.to_vec())
            .collect()
    }

    #[test]
    fn a_deleted_best_row_is_replaced_by_the_next_and_duplicates_count_twice() {
        let mut s = state(2, false);
        let v = values(&[b"c", b"a", b"b", b"a"]);
        s.update(&v, &[0, 1, 2, 3], &[]).unwrap();
        assert_eq!(best(s.as_ref()), vec![b"a".to_vec(), b"a".to_vec()]);
        s.retract(&v, &[1], &[]).unwrap();
        assert_eq!(best(s.as_ref()), vec![b"a".to_vec(), b"b".to_vec()]);
        s.retract(&v, &[3, 2], &[]).unwrap();
        assert_eq!(best(s.as_ref()), vec![b"c".to_vec()]);
        // through its packed state, and a partial state that deletes what
        // another holds cancels it when merged
        let mut copy = state(2, false);
        copy.merge_state(&s.state().unwrap(), 0).unwrap();
        assert_eq!(best(copy.as_ref()), vec![b"c".to_vec()]);
        let mut partial = state(2, false);
        partial.retract(&v, &[0], &[]).unwrap();
        assert!(partial.finish().is_err(), "a delete never inserted");
        let empty = copy.memory_size();
        copy.merge(partial.as_ref()).unwrap();
        assert!(best(copy.as_ref()).is_empty());
        assert!(copy.memory_size() < empty, "the row's bytes are given back");
    }

    #[test]
    fn append_only_rows_keep_only_the_best_n() {
        let mut s = state(2, true);
        let v = values(&[b"d", b"b", b"b", b"a", b"c"]);
        s.update(&v, &[0, 1, 2, 3, 4], &[]).unwrap();
        assert_eq!(best(s.as_ref()), vec![b"a".to_vec(), b"b".to_vec()]);
        let kept = unpack(s.state().unwrap().as_binary::<i32>().value(0), true)
            .unwrap()
            .len();
        assert_eq!(kept, 2, "a and b (twice): c and d are gone");
    }
}
