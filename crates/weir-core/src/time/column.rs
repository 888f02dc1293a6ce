//! Reading the event-time column of a batch as epoch milliseconds.

use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Schema, TimeUnit};

/// Checks that `column` exists in `schema` and can serve as event time
/// (Int64 epoch milliseconds, or any Timestamp). Returns its index.
pub fn validate_time_column(schema: &Schema, column: &str, context: &str) -> Result<usize> {
    let (idx, field) = schema.column_with_name(column).ok_or_else(|| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::column(
            column,
            context,
            format!(
                "time column not found; available columns: {}",
                names.join(", ")
            ),
        )
    })?;
    match field.data_type() {
        DataType::Int64 | DataType::Timestamp(_, _) => Ok(idx),
        other => Err(Error::column(
            column,
            context,
            format!("time column must be Int64 (epoch ms) or Timestamp, found {other}"),
        )),
    }
}

/// The event times of `batch`'s column `idx` in epoch milliseconds.
///
/// Fails, naming the column and row, if a value is null.
pub fn event_times(batch: &RecordBatch, idx: usize, context: &str) -> Result<ScalarBuffer<i64>> {
    let array = batch.column(idx);
    let name = batch.schema().field(idx).name().clone();
    if array.null_count() > 0 {
        let row = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
        return Err(Error::column(
            name,
            context,
            format!("null event time at row {row} of a batch"),
        ));
    }
    let scale = |values: &ScalarBuffer<i64>, f: fn(i64) -> i64| -> ScalarBuffer<i64> {
        values.iter().map(|&v| f(v)).collect::<Vec<_>>().into()
    };
    Ok(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().values().clone(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .clone(),
        DataType::Timestamp(TimeUnit::Second, _) => {
            scale(array.as_primitive::<TimestampSecondType>().values(), |v| {
                v.saturating_mul(1000)
            })
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => scale(
            array.as_primitive::<TimestampMicrosecondType>().values(),
            |v| v.div_euclid(1000),
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => scale(
            array.as_primitive::<TimestampNanosecondType>().values(),
            |v| v.div_euclid(1_000_000),
        ),
        other => {
            return Err(Error::column(
                name,
                context,
                format!("time column must be Int64 (epoch ms) or Timestamp, found {other}"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::Field;
    use std::sync::Arc;

    #[test]
    fn timestamps_of_any_unit_become_millis() {
        let micros = TimestampMicrosecondArray::from(vec![1_500, -1_500, 2_000_000]);
        let batch = RecordBatch::try_from_iter([("t", Arc::new(micros) as _)]).unwrap();
        let ms = event_times(&batch, 0, "test").unwrap();
        assert_eq!(ms.to_vec(), vec![1, -2, 2000]);
    }

    #[test]
    fn wrong_type_and_nulls_are_named() {
        let schema = Schema::new(vec![Field::new("t", DataType::Utf8, false)]);
        let err = validate_time_column(&schema, "t", "source x").unwrap_err();
        assert!(err.to_string().contains("column `t`"), "{err}");
        let err = validate_time_column(&schema, "ts", "source x").unwrap_err();
        assert!(err.to_string().contains("available columns: t"), "{err}");

        let batch = RecordBatch::try_from_iter([(
            "t",
            Arc::new(Int64Array::from(vec![Some(1), None])) as _,
        )])
        .unwrap();
        let err = event_times(&batch, 0, "op").unwrap_err();
        assert!(
            err.to_string().contains("null event time at row 1"),
            "{err}"
        );
        let s = RecordBatch::try_from_iter([("t", Arc::new(StringArray::from(vec!["a"])) as _)])
            .unwrap();
        assert!(event_times(&s, 0, "op").is_err());
    }
}
