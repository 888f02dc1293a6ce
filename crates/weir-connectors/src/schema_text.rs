//! Column lists as text, `"name: type"`, as job files give the schema of
//! JSON records and CSV files: `["vehicle_id: int64", "event_time:
//! timestamp", "speed: float64"]`.
//!
//! Owns [`parse_schema`]. May use `weir_core::error` and the arrow crates.

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// `["vehicle_id: int64", "event_time: timestamp", "speed: float64"]`.
pub fn parse_schema(columns: &[String]) -> Result<SchemaRef> {
    if columns.is_empty() {
        return Err(Error::option(
            "schema",
            "missing: list the record's columns, e.g. schema = [\"id: int64\", \"t: timestamp\"]",
        ));
    }
    let mut fields = Vec::with_capacity(columns.len());
    for c in columns {
        let Some((name, ty)) = c.split_once(':') else {
            return Err(Error::option(
                "schema",
                format!("`{c}` is not `name: type`"),
            ));
        };
        let ty = match ty.trim().to_ascii_lowercase().as_str() {
            "int64" | "i64" | "long" | "bigint" => DataType::Int64,
            "int32" | "i32" | "int" => DataType::Int32,
            "float64" | "f64" | "double" => DataType::Float64,
            "float32" | "f32" | "float" => DataType::Float32,
            "string" | "utf8" | "str" | "text" => DataType::Utf8,
            "bool" | "boolean" => DataType::Boolean,
            "timestamp" | "timestamp_ms" => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            "timestamp_s" => DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            "timestamp_us" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            "timestamp_ns" => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            other => {
                return Err(Error::option(
                    "schema",
                    format!("`{other}` (column `{}`) is not a type: use int64, int32, float64, float32, string, bool or timestamp[_s|_ms|_us|_ns]", name.trim()),
                ))
            }
        };
        let name = name.trim();
        if fields.iter().any(|f: &Field| f.name() == name) {
            return Err(Error::option(
                "schema",
                format!("column `{name}` is listed twice; column names must be unique"),
            ));
        }
        fields.push(Field::new(name, ty, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse_and_bad_types_are_named() {
        let s = parse_schema(&[
            "a: int64".into(),
            " t : timestamp".into(),
            "s:string".into(),
        ])
        .unwrap();
        assert_eq!(s.field(1).name(), "t");
        assert_eq!(s.field(2).data_type(), &DataType::Utf8);
        let e = parse_schema(&["a: decimal".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("decimal") && e.contains("`a`"), "{e}");
        assert!(parse_schema(&["a int64".into()]).is_err());
        let e = parse_schema(&["a: int64".into(), "a : string".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`a` is listed twice"), "{e}");
    }
}
