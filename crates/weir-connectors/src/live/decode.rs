//! Turns raw records (newline-free JSON objects) into Arrow rows of a given
//! schema, separating malformed records with the reason they were refused.
//!
//! Owns [`JsonDecoder`], [`RawRecord`], [`Position`] and [`DeadLetter`]. May
//! use `weir_core::error` and the arrow crates.

use super::json_scan::{self, Scanned};
use super::line_reader::PREFIX_BYTES;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_json::reader::Decoder;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_core::error::{Error, Result};

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

impl DeadLetter {
    /// The dead letter of a record of `len` bytes, longer than `max`, of
    /// which `prefix` was kept (cut to [`PREFIX_BYTES`] and marked `…`).
    pub fn too_long(
        partition: usize,
        position: Position,
        prefix: &[u8],
        len: u64,
        max: usize,
    ) -> DeadLetter {
        let kept = &prefix[..prefix.len().min(PREFIX_BYTES)];
        let mut record = String::from_utf8_lossy(kept).into_owned();
        record.push('…');
        DeadLetter {
            partition,
            position,
            reason: format!(
                "record of {len} bytes is longer than max_record_bytes ({max}); \
                 the dead letter keeps its first {} bytes",
                kept.len()
            ),
            record,
        }
    }
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
    let now = weir_core::operator::now_ms();
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

/// The event times a live JSON record may carry, in epoch milliseconds:
/// 0001-01-01T00:00:00Z through 9999-12-31T23:59:59.999Z. A record outside
/// (a number beyond 64 bits decodes to the saturated `i64::MIN`/`MAX`,
/// which are refused too) is a malformed record: one such record would
/// otherwise move its partition's watermark to the end of time and make
/// every later record late.
pub const EVENT_TIME_RANGE: std::ops::RangeInclusive<i64> =
    -62_135_596_800_000..=253_402_300_799_999;

/// Decodes JSON records into batches of one schema.
///
/// ```text
///  records ─► json_scan: repeated key ─► DeadLetter; bare NaN/Infinity ─► quoted
///     ─► one buffer, '\n'-separated ─► arrow-json ─► rows == records?
///                                             │ ok: one batch (fast path)
///                                             └ error or count off: record by
///                                               record; bad ones ─► DeadLetter
///     ─► rows with a null required column or an event time out of
///        [`EVENT_TIME_RANGE`] ─► DeadLetter
/// ```
/// A record must hold exactly one JSON object whose fields convert to the
/// schema's types; fields not in the schema are ignored, missing nullable
/// fields are null, a schema field given twice is refused. Float columns
/// read `"NaN"`, `"Infinity"`, `"-Infinity"` (strings, as weir's JSON sinks
/// write them, or bare tokens). Rows whose `required` columns (e.g. the
/// event time) are null are refused too. Letters come in record order.
pub struct JsonDecoder {
    // config
    schema: SchemaRef,
    /// `schema` with named time zones dropped (arrow-json reads those only
    /// with chrono-tz); decoded columns are relabelled to `schema` after.
    decode_schema: SchemaRef,
    required: Vec<usize>,
    time_column: Option<usize>,
    max_record_bytes: usize,
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
    /// (indices) are refused. Fails if two columns share a name.
    pub fn try_new(schema: SchemaRef, required: Vec<usize>) -> Result<Self> {
        check_unique_names(&schema, "JSON record schema")?;
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
            time_column: None,
            max_record_bytes: usize::MAX,
            decoder,
            buf: Vec::new(),
        })
    }

    /// Refuses rows whose `column` (the event time, Int64 epoch ms or a
    /// Timestamp) lies outside [`EVENT_TIME_RANGE`].
    pub fn with_time_column(mut self, column: usize) -> Self {
        self.time_column = Some(column);
        self
    }

    /// Refuses records longer than `max` bytes (their dead letter keeps a
    /// prefix).
    pub fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max.max(1);
        self
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
        // (record index, reason), sorted by index at the end
        let mut refused: Vec<(usize, String)> = Vec::new();
        let mut too_long: Vec<DeadLetter> = Vec::new();
        // the records to decode: index and payload (rewritten if needed)
        let mut kept: Vec<(usize, std::borrow::Cow<'_, [u8]>)> = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if r.payload.len() > self.max_record_bytes {
                too_long.push(DeadLetter::too_long(
                    r.partition,
                    r.position.clone(),
                    &r.payload,
                    r.payload.len() as u64,
                    self.max_record_bytes,
                ));
                continue;
            }
            match json_scan::scan(&r.payload) {
                Scanned::Clean => kept.push((i, r.payload.as_slice().into())),
                Scanned::Rewritten(b) => kept.push((i, b.into())),
                Scanned::Repeated(key) if self.schema.column_with_name(&key).is_some() => {
                    refused.push((i, format!("column `{key}` is given more than once")));
                }
                Scanned::Repeated(_) => kept.push((i, r.payload.as_slice().into())),
            }
        }
        let batch = match self.try_all(&kept) {
            Some(batch) => batch,
            None => {
                // slow path: one record at a time
                self.decoder = Self::fresh(&self.decode_schema)?;
                let mut good = Vec::with_capacity(kept.len());
                let mut decoded = Vec::with_capacity(kept.len());
                for (i, payload) in kept {
                    match self.decode_one(&payload) {
                        Ok(batch) => {
                            good.push(batch);
                            decoded.push((i, payload));
                        }
                        Err(reason) => {
                            self.decoder = Self::fresh(&self.decode_schema)?;
                            refused.push((i, reason));
                        }
                    }
                }
                kept = decoded;
                arrow_select::concat::concat_batches(&self.schema, &good)?
            }
        };
        let bad_rows = self.check_rows(&batch)?;
        let batch = if bad_rows.is_empty() {
            batch
        } else {
            let mut keep = vec![true; batch.num_rows()];
            for (row, reason) in bad_rows {
                keep[row] = false;
                refused.push((kept[row].0, reason));
            }
            let keep = arrow_array::BooleanArray::from(keep);
            arrow_select::filter::filter_record_batch(&batch, &keep)?
        };
        refused.sort_by_key(|(i, _)| *i);
        let mut letters: Vec<DeadLetter> = refused
            .into_iter()
            .map(|(i, reason)| letter(&records[i], reason))
            .collect();
        if !too_long.is_empty() {
            letters.append(&mut too_long);
            letters.sort_by(|a, b| a.position.cmp(&b.position));
        }
        Ok((batch, letters))
    }

    /// All records in one go; `None` if anything is off.
    fn try_all(&mut self, records: &[(usize, std::borrow::Cow<'_, [u8]>)]) -> Option<RecordBatch> {
        if records.is_empty() {
            return Some(RecordBatch::new_empty(self.schema.clone()));
        }
        self.buf.clear();
        for (_, payload) in records {
            if payload.contains(&b'\n') {
                return None;
            }
            self.buf.extend_from_slice(payload);
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

    /// Rows to refuse, with why: a null in a required column, an event
    /// time out of range.
    fn check_rows(&self, batch: &RecordBatch) -> Result<Vec<(usize, String)>> {
        let mut bad: Vec<(usize, String)> = Vec::new();
        let nulls = self
            .required
            .iter()
            .any(|&c| batch.column(c).null_count() > 0);
        if nulls {
            for row in 0..batch.num_rows() {
                let missing: Vec<&str> = self
                    .required
                    .iter()
                    .filter(|&&c| batch.column(c).is_null(row))
                    .map(|&c| self.schema.field(c).name().as_str())
                    .collect();
                if !missing.is_empty() {
                    bad.push((
                        row,
                        format!(
                            "required column `{}` is missing or null",
                            missing.join("`, `")
                        ),
                    ));
                }
            }
        }
        if let Some(c) = self.time_column {
            let name = self.schema.field(c).name();
            let column = batch.column(c);
            for (row, ms) in event_time_millis(column)?.into_iter().enumerate() {
                let Some(reason) = ms.and_then(|ms| time_out_of_range(name, ms)) else {
                    continue;
                };
                if !bad.iter().any(|(r, _)| *r == row) {
                    bad.push((row, reason));
                }
            }
        }
        bad.sort_by_key(|(r, _)| *r);
        Ok(bad)
    }
}

/// Why an event time is refused, if it is: `ms` is `Err` when the value
/// does not fit 64-bit epoch milliseconds.
fn time_out_of_range(column: &str, ms: std::result::Result<i64, ()>) -> Option<String> {
    let valid = "valid event times are 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z";
    match ms {
        Ok(ms) if EVENT_TIME_RANGE.contains(&ms) => None,
        Ok(ms) => Some(format!(
            "event time `{column}` out of range: {ms} ms since the epoch ({valid}; \
             a value in micro- or nanoseconds where milliseconds were meant?)"
        )),
        Err(()) => Some(format!(
            "event time `{column}` out of range: it does not fit 64-bit epoch milliseconds ({valid})"
        )),
    }
}

/// Each row's time in epoch ms (`None` for nulls, `Err` when the value was
/// saturated by decoding or does not fit milliseconds).
#[allow(clippy::type_complexity)]
fn event_time_millis(column: &ArrayRef) -> Result<Vec<Option<std::result::Result<i64, ()>>>> {
    use arrow_schema::TimeUnit;
    let to_ms: fn(i64) -> Option<i64> = match column.data_type() {
        DataType::Int64 | DataType::Timestamp(TimeUnit::Millisecond, _) => Some,
        DataType::Timestamp(TimeUnit::Second, _) => |s| s.checked_mul(1000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => |us| Some(us.div_euclid(1000)),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => |ns| Some(ns.div_euclid(1_000_000)),
        other => {
            return Err(Error::Plan(format!(
                "event time column of type {other}: expected Int64 or Timestamp"
            )))
        }
    };
    // every one of these types holds i64 values: read them as Int64
    let data = column
        .to_data()
        .into_builder()
        .data_type(DataType::Int64)
        .build()?;
    let values = arrow_array::Int64Array::from(data);
    Ok(values
        .iter()
        .map(|v| {
            // i64::MIN/MAX are what an out-of-range JSON number decodes to
            v.map(|v| match v {
                i64::MIN | i64::MAX => Err(()),
                v => to_ms(v).ok_or(()),
            })
        })
        .collect())
}

/// Fails if two fields of `schema` share a name (`context` says whose).
pub fn check_unique_names(schema: &Schema, context: &str) -> Result<()> {
    let fields = schema.fields();
    for (i, f) in fields.iter().enumerate() {
        if fields[..i].iter().any(|g| g.name() == f.name()) {
            return Err(Error::column(
                f.name(),
                context,
                "the name is used by more than one column; column names must be unique",
            ));
        }
    }
    Ok(())
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
mod tests;
