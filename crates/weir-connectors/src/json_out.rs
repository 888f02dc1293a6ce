//! The JSON text weir writes for rows: JSON-lines files, stdout, and the
//! Kafka and Redis sinks all go through here, so every JSON output has the
//! same, documented encoding, which weir's own JSON readers read back:
//!
//! - one object per row with **every column present**: a null is `null`
//!   (never an omitted field), so a null key reads back as a null key;
//! - floats as JSON numbers, except the values JSON has no number for:
//!   `"NaN"`, `"Infinity"`, `"-Infinity"` (strings);
//! - timestamps as RFC 3339 text (UTC as `Z`; other named zones as UTC
//!   instants). A time that cannot be written so (beyond the
//!   years ±262,143) is an error naming the column and value, never a text
//!   such as `ERROR: Cast error…` in place of the value.
//!
//! Owns [`writer`] and [`prepare`]. May use `weir_core::error` and the arrow crates.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray, RecordBatch};
use arrow_json::writer::{LineDelimited, NullableEncoder, WriterBuilder};
use arrow_json::{Encoder, EncoderFactory, EncoderOptions};
use arrow_schema::{ArrowError, DataType, FieldRef, TimeUnit};
use std::io::Write;
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// A JSON-lines writer with weir's encoding (see the module doc). Pass it
/// batches that went through [`prepare`].
pub fn writer<W: Write>(out: W) -> arrow_json::LineDelimitedWriter<W> {
    WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(NonFinite))
        .build::<W, LineDelimited>(out)
}

/// `batch` ready for [`writer`]: time zones as offsets, and an error naming
/// `context` (the sink), the column and the value if a time cannot be
/// written as RFC 3339 text.
pub fn prepare(batch: &RecordBatch, context: &str) -> Result<RecordBatch> {
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if let Some(bad) = unwritable_time(c)? {
            return Err(Error::column(
                f.name(),
                context,
                format!(
                    "{bad} ({}) cannot be written as an RFC 3339 time in JSON; \
                     cast the column to int64 to write the raw number",
                    f.data_type()
                ),
            ));
        }
    }
    json_compatible(batch)
}

/// JSON output needs time zones as offsets (named zones need a time-zone
/// database weir does not ship): UTC becomes `+00:00`; other named zones are
/// written as plain UTC instants (the stored values are UTC anyway).
fn json_compatible(batch: &RecordBatch) -> Result<RecordBatch> {
    let needs = |tz: &str| !(tz.starts_with('+') || tz.starts_with('-'));
    let fixes = batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(_, Some(tz)) if needs(tz)));
    if !fixes {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        match f.data_type() {
            DataType::Timestamp(unit, Some(tz)) if needs(tz) => {
                let ty = DataType::Timestamp(*unit, Some("+00:00".into()));
                // same instants, new label: no conversion of values
                let data = c.to_data().into_builder().data_type(ty.clone()).build()?;
                columns.push(arrow_array::make_array(data));
                fields.push(f.as_ref().clone().with_data_type(ty));
            }
            _ => {
                columns.push(c.clone());
                fields.push(f.as_ref().clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(arrow_schema::Schema::new(fields)),
        columns,
    )?)
}

/// The first value of a date/time column that has no calendar date (the
/// smallest or largest value: the valid range is one interval).
fn unwritable_time(column: &ArrayRef) -> Result<Option<i64>> {
    use arrow_array::temporal_conversions::{as_date, as_datetime};
    fn extremes<T: ArrowPrimitiveType>(a: &dyn Array) -> [Option<T::Native>; 2] {
        let a: &PrimitiveArray<T> = a.as_primitive();
        [
            arrow_arith::aggregate::min(a),
            arrow_arith::aggregate::max(a),
        ]
    }
    fn first_bad<T: ArrowPrimitiveType>(
        a: &dyn Array,
        ok: impl Fn(T::Native) -> bool,
    ) -> Option<i64>
    where
        T::Native: Into<i64>,
    {
        extremes::<T>(a)
            .into_iter()
            .flatten()
            .find(|v| !ok(*v))
            .map(Into::into)
    }
    let c = column.as_ref();
    Ok(match c.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            first_bad::<TimestampSecondType>(c, |v| as_datetime::<TimestampSecondType>(v).is_some())
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            first_bad::<TimestampMillisecondType>(c, |v| {
                as_datetime::<TimestampMillisecondType>(v).is_some()
            })
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            first_bad::<TimestampMicrosecondType>(c, |v| {
                as_datetime::<TimestampMicrosecondType>(v).is_some()
            })
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => None, // every i64 is a date
        DataType::Date32 => {
            first_bad::<Date32Type>(c, |v| as_date::<Date32Type>(v.into()).is_some())
        }
        DataType::Date64 => first_bad::<Date64Type>(c, |v| as_date::<Date64Type>(v).is_some()),
        _ => None,
    })
}

/// Writes float columns that hold NaN or infinities (arrow-json would write
/// `null`, losing the value) with those as strings.
#[derive(Debug)]
struct NonFinite;

impl EncoderFactory for NonFinite {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> std::result::Result<Option<NullableEncoder<'a>>, ArrowError> {
        fn make<'a, T: ArrowPrimitiveType>(array: &'a dyn Array) -> Option<NullableEncoder<'a>>
        where
            T::Native: Into<f64>,
        {
            let a: &PrimitiveArray<T> = array.as_primitive();
            let any = a.iter().any(|v| v.is_some_and(|v| !v.into().is_finite()));
            any.then(|| {
                let encoder = Box::new(FloatText(a.values().iter().map(|&v| v.into()).collect()));
                NullableEncoder::new(encoder, a.nulls().cloned())
            })
        }
        Ok(match array.data_type() {
            DataType::Float64 => make::<Float64Type>(array),
            DataType::Float32 => make::<Float32Type>(array),
            DataType::Float16 => {
                let a = array.as_primitive::<Float16Type>();
                let any = a.iter().any(|v| v.is_some_and(|v| !v.is_finite()));
                any.then(|| {
                    let values = a.values().iter().map(|v| v.to_f64()).collect();
                    NullableEncoder::new(Box::new(FloatText(values)), a.nulls().cloned())
                })
            }
            _ => None,
        })
    }
}

/// Float values as JSON: shortest round-trip numbers, non-finite as strings.
struct FloatText(Vec<f64>);

impl Encoder for FloatText {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = self.0[idx];
        if v.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if v == f64::INFINITY {
            out.extend_from_slice(b"\"Infinity\"");
        } else if v == f64::NEG_INFINITY {
            out.extend_from_slice(b"\"-Infinity\"");
        } else {
            // `{:?}` is the shortest text that reads back to the same f64
            let _ = write!(out, "{v:?}");
        }
    }
}

/// Each row of `batch` as one JSON object (no trailing newline).
#[cfg_attr(not(any(feature = "kafka", feature = "redis")), allow(dead_code))]
pub(crate) fn json_rows(batch: &RecordBatch, context: &str) -> Result<Vec<Vec<u8>>> {
    let batch = prepare(batch, context)?;
    let mut buf = Vec::with_capacity(batch.num_rows() * 64);
    {
        let mut w = writer(&mut buf);
        w.write(&batch)?;
        w.finish()?;
    }
    // the writer escapes newlines inside strings: every '\n' ends a row
    let rows: Vec<Vec<u8>> = buf
        .split(|&b| b == b'\n')
        .filter(|r| !r.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if rows.len() != batch.num_rows() {
        return Err(Error::Plan(format!(
            "JSON encoding gave {} objects for {} rows",
            rows.len(),
            batch.num_rows()
        )));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, TimestampMillisecondArray};
    use arrow_schema::{Field, Schema};

    fn text(batch: &RecordBatch) -> String {
        let mut buf = Vec::new();
        let mut w = writer(&mut buf);
        w.write(&prepare(batch, "test").unwrap()).unwrap();
        w.finish().unwrap();
        drop(w);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn nulls_are_explicit_and_non_finite_floats_are_strings() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![None, Some(1), Some(2), Some(3)])),
                Arc::new(Float64Array::from(vec![
                    Some(f64::NAN),
                    Some(f64::INFINITY),
                    Some(-0.1),
                    None,
                ])),
            ],
        )
        .unwrap();
        assert_eq!(
            text(&b),
            "{\"k\":null,\"v\":\"NaN\"}\n{\"k\":1,\"v\":\"Infinity\"}\n\
             {\"k\":2,\"v\":-0.1}\n{\"k\":3,\"v\":null}\n"
        );
    }

    #[test]
    fn a_time_json_cannot_express_is_an_error_naming_column_and_value() {
        let t =
            TimestampMillisecondArray::from(vec![0, 92_233_720_368_547_758]).with_timezone("UTC");
        let b = RecordBatch::try_from_iter([("t", Arc::new(t) as ArrayRef)]).unwrap();
        let err = prepare(&b, "sink out.jsonl").unwrap_err().to_string();
        assert!(
            err.contains("`t`") && err.contains("sink out.jsonl"),
            "{err}"
        );
        assert!(err.contains("92233720368547758"), "{err}");
        let ok = TimestampMillisecondArray::from(vec![0, 1000]).with_timezone("UTC");
        let b = RecordBatch::try_from_iter([("t", Arc::new(ok) as ArrayRef)]).unwrap();
        assert_eq!(
            text(&b),
            "{\"t\":\"1970-01-01T00:00:00Z\"}\n{\"t\":\"1970-01-01T00:00:01Z\"}\n"
        );
    }
}
