//! A stream's rows as the input of the row-bag aggregates (`row_bag.rs`):
//! `keys | row | sign`, each row in the arrow row format (optionally
//! tagged with its join side) and signed by its changelog `op`. Top-N and
//! joins over a changelog plan it the same way.
//!
//! Owns [`EncodeRows`], [`op_column`] and [`signs`]. May use
//! `super::error` and the arrow crates.
//!
//! ```text
//!  batch ─► (rows with a null key dropped, for a join) ─► keys as they are
//!        ─► row: [tag] ++ the row-format bytes of `columns` ─► sign: +1 insert, -1 delete
//!           (no op column: +1; any other op: an error naming it)
//! ```

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Int64Builder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use weir_core::error::{Error, Result};
use weir_operators::OP_COLUMN;

/// The encoded row column.
pub(crate) const ROW: &str = "__weir_row";
/// The sign column.
pub(crate) const SIGN: &str = "__weir_sign";

/// The index of `schema`'s changelog `op` column, if it has one, or why it
/// cannot be one (it must be a string).
pub(crate) fn op_column(schema: &Schema) -> std::result::Result<Option<usize>, String> {
    match schema.index_of(OP_COLUMN) {
        Err(_) => Ok(None),
        Ok(i) if schema.field(i).data_type() == &DataType::Utf8 => Ok(Some(i)),
        Ok(i) => Err(format!(
            "a changelog's op is a string (insert or delete), not {}",
            schema.field(i).data_type()
        )),
    }
}

/// The sign of each changelog row by its `op`: +1 `insert`, -1 `delete`;
/// any other value (or a column that is not a string) is an error naming it.
pub(crate) fn signs(op: &ArrayRef) -> std::result::Result<Vec<i64>, String> {
    let Some(op) = op.as_string_opt::<i32>() else {
        return Err(format!(
            "a changelog's op is {}, not a string",
            op.data_type()
        ));
    };
    (0..op.len())
        .map(|i| match op.is_valid(i).then(|| op.value(i)) {
            Some("insert") => Ok(1),
            Some("delete") => Ok(-1),
            other => Err(format!(
                "a changelog row's op is {other:?}, not insert or delete"
            )),
        })
        .collect()
}

/// Turns a stream's batches into `keys | ROW | SIGN` (see the module doc).
pub(crate) struct EncodeRows {
    // config
    /// The key columns (kept as they are, under the names of `schema`).
    keys: Vec<usize>,
    /// The columns encoded into a row, and their row-format fields.
    columns: Vec<usize>,
    fields: Vec<SortField>,
    /// A first byte for every row (a join's side).
    tag: Option<u8>,
    op: Option<usize>,
    /// Rows with a null key are dropped (a join's: they match nothing).
    keyed_only: bool,
    schema: SchemaRef,
}

impl EncodeRows {
    /// Rows of `input` keyed by its columns `keys` (named `key_names` in
    /// the output), encoded from `columns` by `fields`, signed by `op`.
    pub(crate) fn new(
        input: &Schema,
        keys: Vec<usize>,
        key_names: &[String],
        columns: Vec<usize>,
        fields: Vec<SortField>,
        op: Option<usize>,
    ) -> Self {
        let mut out: Vec<Field> = keys
            .iter()
            .zip(key_names)
            .map(|(&i, name)| Field::new(name, input.field(i).data_type().clone(), true))
            .collect();
        out.push(Field::new(ROW, DataType::Binary, false));
        out.push(Field::new(SIGN, DataType::Int64, false));
        EncodeRows {
            keys,
            columns,
            fields,
            tag: None,
            op,
            keyed_only: false,
            schema: Arc::new(Schema::new(out)),
        }
    }

    /// Every row starts with `tag` (a join's side) and rows with a null
    /// key are dropped.
    pub(crate) fn for_join_side(mut self, tag: u8) -> Self {
        self.tag = Some(tag);
        self.keyed_only = true;
        self
    }

    /// The output schema.
    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub(crate) fn on_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let fail = |message: String| Error::Expr {
            expr: "a changelog's rows".into(),
            message,
        };
        let filtered;
        let batch = if self.keyed_only {
            filtered = arrow_select::filter::filter_record_batch(
                batch,
                &keyed_rows(batch, &self.keys, true),
            )?;
            &filtered
        } else {
            batch
        };
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let rows = RowConverter::new(self.fields.clone())
            .and_then(|c| c.convert_columns(&arrays))
            .map_err(|e| fail(e.to_string()))?;
        let n = batch.num_rows();
        let mut encoded = BinaryBuilder::with_capacity(n, rows.size() + n);
        let mut bytes = Vec::new();
        for row in rows.iter() {
            bytes.clear();
            bytes.extend(self.tag);
            bytes.extend_from_slice(row.as_ref());
            encoded.append_value(&bytes);
        }
        let mut sign = Int64Builder::with_capacity(n);
        match self.op {
            None => sign.append_slice(&vec![1; n]),
            Some(op) => sign.append_slice(&signs(batch.column(op)).map_err(fail)?),
        }
        let mut columns: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|&k| Arc::clone(batch.column(k)))
            .collect();
        columns.push(Arc::new(encoded.finish()));
        columns.push(Arc::new(sign.finish()));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// The rows whose key columns are all set (`keyed`), or the others.
pub(crate) fn keyed_rows(batch: &RecordBatch, keys: &[usize], keyed: bool) -> BooleanArray {
    (0..batch.num_rows())
        .map(|i| Some(keys.iter().all(|&k| batch.column(k).is_valid(i)) == keyed))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};

    #[test]
    fn signs_refuse_an_op_that_is_neither_insert_nor_delete() {
        let ok: ArrayRef = Arc::new(StringArray::from(vec!["insert", "delete"]));
        assert_eq!(signs(&ok).unwrap(), vec![1, -1]);
        let bad: ArrayRef = Arc::new(StringArray::from(vec![Some("insert"), Some("u")]));
        assert!(signs(&bad).unwrap_err().contains("\"u\""));
        let null: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>]));
        assert!(signs(&null).is_err());
        let number: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        assert!(signs(&number).unwrap_err().contains("not a string"));
    }

    #[test]
    fn a_join_sides_rows_are_tagged_and_lose_null_keys() {
        let batch = RecordBatch::try_from_iter([
            (
                "k",
                Arc::new(Int64Array::from(vec![Some(1), None, Some(2)])) as ArrayRef,
            ),
            (
                OP_COLUMN,
                Arc::new(StringArray::from(vec!["insert", "insert", "delete"])) as ArrayRef,
            ),
        ])
        .unwrap();
        let fields = vec![SortField::new(DataType::Int64)];
        let names = ["key".to_string()];
        let plain = EncodeRows::new(
            &batch.schema(),
            vec![0],
            &names,
            vec![0],
            fields.clone(),
            Some(1),
        );
        let out = plain.on_batch(&batch).unwrap();
        assert_eq!(out.num_rows(), 3, "a Top-N keeps null keys");
        let join = EncodeRows::new(&batch.schema(), vec![0], &names, vec![0], fields, Some(1))
            .for_join_side(1);
        let out = join.on_batch(&batch).unwrap();
        assert_eq!(out.num_rows(), 2);
        let rows = out.column(1).as_binary::<i32>();
        assert!(rows.iter().all(|r| r.unwrap()[0] == 1), "tagged by side");
        assert_eq!(
            out.column(2)
                .as_primitive::<arrow_array::types::Int64Type>()
                .values(),
            &[1, -1]
        );
        assert_eq!(out.schema().field(0).name(), "key");
    }
}
