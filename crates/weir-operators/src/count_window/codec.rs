//! Rows of a fixed schema as bytes and back, for the count windows' spilled
//! state: the partial states of a key's accumulators and the rows its
//! window keeps.

use crate::keyed_state::state_error;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use weir_core::error::Result;

/// Encodes rows of `schema`: arrow-row bytes when the row format supports
/// every column (it round-trips every value, NaN and -0.0 included;
/// dictionaries come back as their value type and are cast back), else a
/// one-row IPC stream per row.
///
/// ```text
///  encode_each(columns)  ──► one item per row
///  encode_framed(columns, out) ──► out += | len u32 | item | per row
///  decode(items) ──► columns of `schema`, one row per item
/// ```
pub(super) struct RowCodec {
    // config
    schema: SchemaRef,
    /// `None`: a column the row format does not support (IPC instead).
    rows: Option<RowConverter>,
}

impl std::fmt::Debug for RowCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowCodec")
            .field("row_format", &self.rows.is_some())
            .finish()
    }
}

impl RowCodec {
    pub(super) fn new(schema: SchemaRef) -> Self {
        let fields: Vec<SortField> = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let rows = if RowConverter::supports_fields(&fields) {
            RowConverter::new(fields).ok()
        } else {
            None
        };
        RowCodec { schema, rows }
    }

    /// One encoded item per row of `columns` (laid out as the schema).
    pub(super) fn encode_each(&self, columns: &[ArrayRef], name: &str) -> Result<Vec<Vec<u8>>> {
        let Some(conv) = &self.rows else {
            let batch = RecordBatch::try_new(self.schema.clone(), columns.to_vec())?;
            return (0..batch.num_rows())
                .map(|r| encode_ipc(&batch.slice(r, 1), name))
                .collect();
        };
        let rows = conv.convert_columns(columns)?;
        Ok(rows.iter().map(|r| r.as_ref().to_vec()).collect())
    }

    /// Appends every row of `columns` to `out` as `len u32 | item`.
    pub(super) fn encode_framed(
        &self,
        columns: &[ArrayRef],
        out: &mut Vec<u8>,
        name: &str,
    ) -> Result<()> {
        let mut push = |item: &[u8]| -> Result<()> {
            let len = u32::try_from(item.len())
                .map_err(|_| state_error(name, "a kept row of 4 GiB or more cannot spill"))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(item);
            Ok(())
        };
        match &self.rows {
            Some(conv) => {
                for r in conv.convert_columns(columns)?.iter() {
                    push(r.as_ref())?;
                }
            }
            None => {
                for item in self.encode_each(columns, name)? {
                    push(&item)?;
                }
            }
        }
        Ok(())
    }

    /// The items of a blob written by [`encode_framed`](Self::encode_framed).
    pub(super) fn frames<'a>(blob: &'a [u8], name: &str) -> Result<Vec<&'a [u8]>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < blob.len() {
            let len = blob
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| state_error(name, "a spilled window's rows are cut short"))?;
            let item = blob
                .get(at + 4..at + 4 + len)
                .ok_or_else(|| state_error(name, "a spilled window's rows are cut short"))?;
            out.push(item);
            at += 4 + len;
        }
        Ok(out)
    }

    /// The columns of the rows `items` (one row each), as the schema's types.
    pub(super) fn decode(&self, items: &[&[u8]], name: &str) -> Result<Vec<ArrayRef>> {
        let Some(conv) = &self.rows else {
            let mut batches = Vec::with_capacity(items.len());
            for item in items {
                batches.extend(decode_ipc(item, name)?);
            }
            let batch = arrow_select::concat::concat_batches(&self.schema, &batches)?;
            return Ok(batch.columns().to_vec());
        };
        let parser = conv.parser();
        let columns = conv.convert_rows(items.iter().map(|b| parser.parse(b)))?;
        columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c)
                } else {
                    Ok(arrow_cast::cast(&c, f.data_type())?)
                }
            })
            .collect()
    }
}

fn encode_ipc(batch: &RecordBatch, name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
        .map_err(|e| state_error(name, e))?;
    w.write(batch).map_err(|e| state_error(name, e))?;
    w.finish().map_err(|e| state_error(name, e))?;
    drop(w);
    Ok(out)
}

fn decode_ipc(bytes: &[u8], name: &str) -> Result<Vec<RecordBatch>> {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| state_error(name, e))?;
    reader
        .map(|b| b.map_err(|e| state_error(name, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Int32Type;
    use arrow_array::{Array, DictionaryArray, Float64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn rows_come_back_bit_for_bit_in_both_encodings() {
        let dict: DictionaryArray<Int32Type> = ["a", "b", "a"].into_iter().collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("d", dict.data_type().clone(), false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(-0.0), None])),
            Arc::new(StringArray::from(vec![Some("x"), None, Some("")])),
            Arc::new(dict),
        ];
        let mut codecs = vec![RowCodec::new(schema.clone())];
        codecs.push(RowCodec {
            schema: schema.clone(),
            rows: None,
        });
        for codec in codecs {
            let each = codec.encode_each(&columns, "cw").unwrap();
            let items: Vec<&[u8]> = each.iter().map(Vec::as_slice).collect();
            let back = codec.decode(&items, "cw").unwrap();
            let mut framed = Vec::new();
            codec.encode_framed(&columns, &mut framed, "cw").unwrap();
            let again = codec
                .decode(&RowCodec::frames(&framed, "cw").unwrap(), "cw")
                .unwrap();
            for got in [back, again] {
                assert_eq!(got[1].to_data(), columns[1].to_data());
                assert_eq!(got[2].to_data(), columns[2].to_data());
                let f = got[0].as_any().downcast_ref::<Float64Array>().unwrap();
                assert!(f.value(0).is_nan() && f.value(1).is_sign_negative() && f.is_null(2));
            }
        }
        let err = RowCodec::frames(&[9, 0, 0, 0, 1], "cw[0]").unwrap_err();
        assert!(err.to_string().contains("cw[0]"), "{err}");
    }
}
