//! Turns raw records (newline-free JSON objects) into Arrow rows of a given
//! schema, separating malformed records with the reason they were refused.
//!
//! Owns [`JsonDecoder`], [`RawRecord`], [`Position`] and [`DeadLetter`]. May
//! use `crate::error` and the arrow crates.

use crate::error::{Error, Result};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_json::reader::Decoder;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where a record sits in its partition: a broker offset, a stream entry
/// id, or a line number. Sources resume after a stored position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Position {
    /// A numeric offset (Kafka offsets, line numbers, sequence numbers).
    Offset(i64),
    /// A textual id (Redis stream entry ids such as `1700000000000-0`).
    Id(String),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Offset(o) => write!(f, "{o}"),
            Position::Id(id) => f.write_str(id),
        }
    }
}

/// One record as a connector read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Index of the partition (in the connector's `partitions()` list).
    pub partition: usize,
    /// The record's position in its partition.
    pub position: Position,
    /// The payload: one JSON object.
    pub payload: Vec<u8>,
}

/// A record that could not be decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Index of the partition it came from.
    pub partition: usize,
    /// Its position.
    pub position: Position,
    /// Why it was refused (the decoder's message).
    pub reason: String,
    /// The record itself (lossy UTF-8).
    pub record: String,
}

/// The schema of a source's dead-letter output.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("partition", DataType::Utf8, false),
        Field::new("position", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, false),
        Field::new("seen_at", DataType::Int64, false),
    ]))
}

/// Builds the dead-letter rows of `source` (`partitions` names the partitions).
pub fn dead_letter_batch(
    source: &str,
    partitions: &[String],
    letters: &[DeadLetter],
) -> Result<RecordBatch> {
    let now = crate::operator::now_ms();
    let str_col = |f: &dyn Fn(&DeadLetter) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(letters.iter().map(f)))
    };
    let columns = vec![
        str_col(&|_| source.to_string()),
        str_col(&|d| partitions.get(d.partition).cloned().unwrap_or_default()),
        str_col(&|d| d.position.to_string()),
        str_col(&|d| d.reason.clone()),
        str_col(&|d| d.record.clone()),
        Arc::new(Int64Array::from(vec![now; letters.len()])) as ArrayRef,
    ];
    Ok(RecordBatch::try_new(dead_letter_schema(), columns)?)
}

/// Decodes JSON records into batches of one schema.
///
/// ```text
///  records ─► one buffer, '\n'-separated ─► arrow-json ─► rows == records?
///                                             │ ok: one batch (fast path)
///                                             └ error or count off: record by
///                                               record; bad ones ─► DeadLetter
/// ```
/// A record must hold exactly one JSON object whose fields convert to the
/// schema's types; fields not in the schema are ignored, missing nullable
/// fields are null. Rows whose `required` columns (e.g. the event time) are
/// null are refused too.
pub struct JsonDecoder {
    // config
    schema: SchemaRef,
    /// `schema` with named time zones dropped (arrow-json reads those only
    /// with chrono-tz); decoded columns are relabelled to `schema` after.
    decode_schema: SchemaRef,
    required: Vec<usize>,
    // state
    decoder: Decoder,
    buf: Vec<u8>,
}

impl std::fmt::Debug for JsonDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonDecoder")
            .field("schema", &self.schema)
            .finish()
    }
}

impl JsonDecoder {
    /// A decoder into `schema`; rows with a null in a `required` column
    /// (indices) are refused.
    pub fn try_new(schema: SchemaRef, required: Vec<usize>) -> Result<Self> {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Timestamp(unit, Some(_)) => f
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Timestamp(*unit, None)),
                _ => f.as_ref().clone(),
            })
            .collect();
        let decode_schema = Arc::new(Schema::new(fields));
        let decoder = Self::fresh(&decode_schema)?;
        Ok(JsonDecoder {
            schema,
            decode_schema,
            required,
            decoder,
            buf: Vec::new(),
        })
    }

    /// Records decoded in one go (arrow-json preallocates for this many).
    const CHUNK: usize = 4096;

    fn fresh(schema: &SchemaRef) -> Result<Decoder> {
        Ok(arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(Self::CHUNK)
            .build_decoder()?)
    }

    /// The schema of decoded batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes `records`: the good ones as one batch (in order), the bad ones
    /// with their reasons.
    pub fn decode(&mut self, records: &[RawRecord]) -> Result<(RecordBatch, Vec<DeadLetter>)> {
        if records.len() <= Self::CHUNK {
            return self.decode_chunk(records);
        }
        let mut batches = Vec::new();
        let mut letters = Vec::new();
        for chunk in records.chunks(Self::CHUNK) {
            let (b, mut l) = self.decode_chunk(chunk)?;
            batches.push(b);
            letters.append(&mut l);
        }
        let batch = arrow_select::concat::concat_batches(&self.schema, &batches)?;
        Ok((batch, letters))
    }

    fn decode_chunk(&mut self, records: &[RawRecord]) -> Result<(RecordBatch, Vec<DeadLetter>)> {
        if records.is_empty() {
            return Ok((RecordBatch::new_empty(self.schema.clone()), Vec::new()));
        }
        if let Some(batch) = self.try_all(records) {
            if let Some(bad) = self.null_required(&batch) {
                return self.filter_required(records, batch, bad);
            }
            return Ok((batch, Vec::new()));
        }
        // slow path: one record at a time
        self.decoder = Self::fresh(&self.decode_schema)?;
        let mut good = Vec::with_capacity(records.len());
        let mut kept = Vec::with_capacity(records.len());
        let mut letters = Vec::new();
        for r in records {
            match self.decode_one(&r.payload) {
                Ok(batch) => {
                    good.push(batch);
                    kept.push(r.clone());
                }
                Err(reason) => {
                    self.decoder = Self::fresh(&self.decode_schema)?;
                    letters.push(letter(r, reason));
                }
            }
        }
        let batch = arrow_select::concat::concat_batches(&self.schema, &good)?;
        if let Some(bad) = self.null_required(&batch) {
            let (batch, mut more) = self.filter_required(&kept, batch, bad)?;
            letters.append(&mut more);
            return Ok((batch, letters));
        }
        Ok((batch, letters))
    }

    /// All records in one go; `None` if anything is off.
    fn try_all(&mut self, records: &[RawRecord]) -> Option<RecordBatch> {
        self.buf.clear();
        for r in records {
            if r.payload.contains(&b'\n') {
                return None;
            }
            self.buf.extend_from_slice(&r.payload);
            self.buf.push(b'\n');
        }
        let consumed = self.decoder.decode(&self.buf);
        let ok = matches!(consumed, Ok(n) if n == self.buf.len())
            && !self.decoder.has_partial_record()
            && self.decoder.len() == records.len();
        if !ok {
            return None;
        }
        match self.decoder.flush() {
            Ok(Some(b)) if b.num_rows() == records.len() => self.relabel(b).ok(),
            _ => None,
        }
    }

    fn decode_one(&mut self, payload: &[u8]) -> std::result::Result<RecordBatch, String> {
        let text_end = payload.len();
        let n = self
            .decoder
            .decode(payload)
            .map_err(|e| clean(e.to_string()))?;
        if n != text_end || self.decoder.has_partial_record() {
            return Err("incomplete JSON object".into());
        }
        if self.decoder.len() != 1 {
            return Err(format!(
                "expected one JSON object per record, found {}",
                self.decoder.len()
            ));
        }
        match self.decoder.flush() {
            Ok(Some(b)) if b.num_rows() == 1 => self.relabel(b).map_err(|e| e.to_string()),
            Ok(_) => Err("expected one JSON object per record".into()),
            Err(e) => Err(clean(e.to_string())),
        }
    }

    /// Gives decoded columns the schema's time zones (same epoch values).
    fn relabel(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if Arc::ptr_eq(&self.schema, &self.decode_schema) || self.schema == self.decode_schema {
            return Ok(batch.with_schema(self.schema.clone())?);
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    let data = c
                        .to_data()
                        .into_builder()
                        .data_type(f.data_type().clone())
                        .build()?;
                    Ok(arrow_array::make_array(data))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Indices of rows with a null in a required column, if any.
    fn null_required(&self, batch: &RecordBatch) -> Option<Vec<bool>> {
        let mut bad: Option<Vec<bool>> = None;
        for &c in &self.required {
            let col = batch.column(c);
            if col.null_count() == 0 {
                continue;
            }
            let bad = bad.get_or_insert_with(|| vec![false; batch.num_rows()]);
            for (i, b) in bad.iter_mut().enumerate() {
                *b |= col.is_null(i);
            }
        }
        bad
    }

    fn filter_required(
        &self,
        records: &[RawRecord],
        batch: RecordBatch,
        bad: Vec<bool>,
    ) -> Result<(RecordBatch, Vec<DeadLetter>)> {
        let mut letters = Vec::new();
        for (i, _) in bad.iter().enumerate().filter(|(_, b)| **b) {
            let missing: Vec<&str> = self
                .required
                .iter()
                .filter(|&&c| batch.column(c).is_null(i))
                .map(|&c| self.schema.field(c).name().as_str())
                .collect();
            let r = &records[i];
            letters.push(letter(
                r,
                format!(
                    "required column `{}` is missing or null",
                    missing.join("`, `")
                ),
            ));
        }
        let keep = arrow_array::BooleanArray::from_iter(bad.iter().map(|b| Some(!b)));
        let batch = arrow_select::filter::filter_record_batch(&batch, &keep)?;
        Ok((batch, letters))
    }
}

fn letter(r: &RawRecord, reason: String) -> DeadLetter {
    DeadLetter {
        partition: r.partition,
        position: r.position.clone(),
        reason,
        record: String::from_utf8_lossy(&r.payload).into_owned(),
    }
}

/// Drops arrow's error-kind prefixes ("Json error: ...").
fn clean(message: String) -> String {
    message
        .trim_start_matches("Json error: ")
        .trim_start_matches("Parser error: ")
        .to_string()
}

/// The error that stops a job on a malformed record (when dead letters are off).
pub fn malformed_error(source: &str, partition: &str, letter: &DeadLetter) -> Error {
    let mut record = letter.record.clone();
    if record.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| record.is_char_boundary(i))
            .unwrap_or(0);
        record.truncate(cut);
        record.push('…');
    }
    Error::BadRecord {
        source_name: source.to_string(),
        partition: partition.to_string(),
        position: letter.position.to_string(),
        message: format!("{} (record: {record})", letter.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, TimestampMillisecondType};
    use arrow_schema::TimeUnit;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("v", DataType::Float64, true),
        ]))
    }

    fn rec(i: i64, s: &str) -> RawRecord {
        RawRecord {
            partition: 0,
            position: Position::Offset(i),
            payload: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn good_records_take_the_fast_path_in_order() {
        let mut d = JsonDecoder::try_new(schema(), vec![0]).unwrap();
        let recs = [
            rec(0, r#"{"t": 5, "v": 1.5}"#),
            rec(1, r#"{"v": 2, "t": 7, "x": "ignored"}"#),
        ];
        let (b, bad) = d.decode(&recs).unwrap();
        assert!(bad.is_empty());
        let t: Vec<i64> = b
            .column(0)
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec();
        assert_eq!(t, vec![5, 7]);
        let v: Vec<f64> = b.column(1).as_primitive::<Float64Type>().values().to_vec();
        assert_eq!(v, vec![1.5, 2.0]);
    }

    #[test]
    fn malformed_records_become_dead_letters_with_reasons() {
        let mut d = JsonDecoder::try_new(schema(), vec![0]).unwrap();
        let recs = [
            rec(0, r#"{"t": 1, "v": 1}"#),
            rec(1, r#"{"t": 2, "v": "#),
            rec(2, r#"{"t": 3, "v": "fast"}"#),
            rec(3, r#"{"v": 4}"#),
            rec(4, r#"{"t": 5} {"t": 6}"#),
            rec(5, r#"{"t": 7, "v": 7}"#),
        ];
        let (b, bad) = d.decode(&recs).unwrap();
        let t: Vec<i64> = b
            .column(0)
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec();
        assert_eq!(t, vec![1, 7]);
        let positions: Vec<String> = bad.iter().map(|l| l.position.to_string()).collect();
        assert_eq!(positions, vec!["1", "2", "4", "3"]);
        assert!(
            bad[1].reason.contains("fast") || bad[1].reason.to_lowercase().contains("parse"),
            "{}",
            bad[1].reason
        );
        assert!(bad[3].reason.contains("`t`"), "{}", bad[3].reason);
        assert!(
            bad[2].reason.contains("one JSON object"),
            "{}",
            bad[2].reason
        );
        // the decoder recovers: the next call is clean
        let (b, bad) = d.decode(&[rec(6, r#"{"t": 8}"#)]).unwrap();
        assert_eq!((b.num_rows(), bad.len()), (1, 0));
    }

    #[test]
    fn dead_letter_rows_name_source_partition_and_position() {
        let l = DeadLetter {
            partition: 1,
            position: Position::Id("5-0".into()),
            reason: "bad".into(),
            record: "{".into(),
        };
        let b = dead_letter_batch("redis", &["a".into(), "b".into()], &[l]).unwrap();
        assert_eq!(b.column(1).as_string::<i32>().value(0), "b");
        assert_eq!(b.column(2).as_string::<i32>().value(0), "5-0");
    }
}
