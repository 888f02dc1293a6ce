//! The user-defined functions the Nexmark benchmark's Flink queries call,
//! registered under the Java class names their `CREATE FUNCTION`
//! statements give, so the published query text runs unchanged (q14:
//! `CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar'`).
//!
//! Owns [`CountChar`], [`COUNT_CHAR_CLASS`] and [`with_udfs`]. May use
//! `weir-core`'s expression contract, `weir-functions`' registry and the
//! arrow crates.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array};
use arrow_cast::cast;
use arrow_schema::{ArrowError, DataType};
use weir_core::error::Result;
use weir_core::expr::{ColumnarValue, ScalarFunction};
use weir_functions::FunctionRegistry;

/// The class name Nexmark's q14 binds `count_char` to.
pub const COUNT_CHAR_CLASS: &str = "com.github.nexmark.flink.udf.CountChar";

/// `count_char(s, c)`: how many characters of `s` equal the first
/// character of `c` (`BIGINT`), as the Nexmark project's `CountChar`:
/// 0 when `s` is null; null when `c` is null or empty (where the Java
/// function would throw).
///
/// # Examples
///
/// ```
/// use arrow_array::{cast::AsArray, types::Int64Type, ArrayRef, StringArray};
/// use std::sync::Arc;
/// use weir::expr::{ColumnarValue, ScalarFunction};
/// use weir::workloads::nexmark::CountChar;
///
/// let s: ArrayRef = Arc::new(StringArray::from(vec![Some("cacao"), None]));
/// let c: ArrayRef = Arc::new(StringArray::from(vec!["c"]));
/// let out = CountChar
///     .invoke(&[ColumnarValue::Array(s), ColumnarValue::Scalar(c)], 2)
///     .unwrap();
/// assert_eq!(out.as_primitive::<Int64Type>().values(), &[2, 0]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountChar;

impl ScalarFunction for CountChar {
    fn name(&self) -> &str {
        "count_char"
    }

    fn return_type(&self, args: &[DataType]) -> std::result::Result<DataType, String> {
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            )
        };
        match args {
            [s, c] if text(s) && text(c) => Ok(DataType::Int64),
            other => Err(format!(
                "count_char(s, c) takes two strings, not ({})",
                other
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn invoke(
        &self,
        args: &[ColumnarValue],
        rows: usize,
    ) -> std::result::Result<ArrayRef, ArrowError> {
        let [s, c] = args else {
            return Err(ArrowError::InvalidArgumentError(
                "count_char takes two arguments".into(),
            ));
        };
        let utf8 = |a: ArrayRef| cast(&a, &DataType::Utf8);
        let s = utf8(s.to_array(rows)?)?;
        let c = utf8(c.to_array(rows)?)?;
        let (s, c) = (s.as_string::<i32>(), c.as_string::<i32>());
        let out: Int64Array = (0..rows)
            .map(|i| {
                let wanted = c.is_valid(i).then(|| c.value(i).chars().next()).flatten()?;
                Some(if s.is_valid(i) {
                    s.value(i).chars().filter(|&x| x == wanted).count() as i64
                } else {
                    0
                })
            })
            .collect();
        Ok(Arc::new(out))
    }
}

/// `registry` with the Nexmark UDFs registered under their class names
/// (those already registered are kept as they are).
pub fn with_udfs(registry: FunctionRegistry) -> Result<FunctionRegistry> {
    if registry.has_class(COUNT_CHAR_CLASS) {
        return Ok(registry);
    }
    registry.with_class(COUNT_CHAR_CLASS, Arc::new(CountChar))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Int64Type;
    use arrow_array::StringArray;

    #[test]
    fn counts_the_first_character_of_c_and_nulls_as_nexmark_does() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some("ccc"),
            Some(""),
            None,
            Some("écoé"),
            Some("abc"),
            Some("abc"),
        ]));
        let c: ArrayRef = Arc::new(StringArray::from(vec![
            Some("c"),
            Some("c"),
            Some("c"),
            Some("éx"),
            None,
            Some(""),
        ]));
        let out = CountChar
            .invoke(&[ColumnarValue::Array(s), ColumnarValue::Array(c)], 6)
            .unwrap();
        let out = out.as_primitive::<Int64Type>();
        let got: Vec<Option<i64>> = out.iter().collect();
        assert_eq!(got, vec![Some(3), Some(0), Some(0), Some(2), None, None]);
        assert!(CountChar
            .return_type(&[DataType::Int64, DataType::Utf8])
            .is_err());
    }

    #[test]
    fn registering_twice_keeps_one_class() {
        let r = with_udfs(with_udfs(FunctionRegistry::builtin()).unwrap()).unwrap();
        assert!(r.has_class(COUNT_CHAR_CLASS));
    }
}
