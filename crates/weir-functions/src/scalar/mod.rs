//! Scalar functions: the built-in library and the registry that resolves a
//! name to a function, built-in or user-defined.
//!
//! Owns [`FunctionRegistry`] and the built-ins, one file per family:
//! `string.rs` (upper, substring, split_index, regexp_extract, …),
//! `math.rs` (abs, round, power, …) and `time.rs` (date_trunc,
//! date_format, to_timestamp, hour, …). Every built-in runs over whole
//! Arrow arrays and returns null where an argument is null (unless its doc
//! says otherwise). Times are UTC; a timestamp is either a
//! `Timestamp` column or milliseconds since the epoch in an `Int64`
//! (SQL's `TIMESTAMP(3)` in weir). May use `weir-core`'s expression
//! contract and the arrow crates, chrono and regex.

mod math;
mod string;
mod time;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow_cast::cast;
use arrow_schema::{ArrowError, DataType, TimeUnit};
use weir_core::error::{Error, Result};
use weir_core::expr::{ColumnarValue, FunctionRef, ScalarFunction};

/// The functions a query may call by name: the built-ins plus any
/// user-defined functions registered with [`FunctionRegistry::with_udf`].
///
/// # Examples
///
/// ```
/// use weir::functions::FunctionRegistry;
///
/// let registry = FunctionRegistry::builtin();
/// assert!(registry.get("UPPER").is_some());
/// assert!(registry.get("no_such_function").is_none());
/// ```
#[derive(Clone, Debug)]
pub struct FunctionRegistry {
    pub(crate) functions: BTreeMap<String, FunctionRef>,
    pub(crate) aggregates: BTreeMap<String, Arc<dyn crate::aggregate::AggregateUdf>>,
    /// Implementations a script binds to a name with `CREATE FUNCTION name
    /// AS 'identifier'` (see [`FunctionRegistry::with_class`]).
    pub(crate) classes: BTreeMap<String, crate::classes::FunctionClass>,
}

/// The built-in aggregates' names (taken for UDAFs too).
const BUILTIN_AGGREGATES: &[&str] = &["count", "sum", "avg", "min", "max"];

impl Default for FunctionRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl FunctionRegistry {
    /// Every built-in function.
    pub fn builtin() -> Self {
        let mut functions = BTreeMap::new();
        for b in string::BUILTINS
            .iter()
            .chain(math::BUILTINS)
            .chain(time::BUILTINS)
        {
            functions.insert(b.name.to_string(), FunctionRef::new(*b));
        }
        FunctionRegistry {
            functions,
            aggregates: BTreeMap::new(),
            classes: BTreeMap::new(),
        }
    }

    /// Adds a user-defined function. Refuses a name that is already taken
    /// (a built-in or an earlier UDF): a query must never silently call a
    /// different function than the one its author read about.
    pub fn with_udf(mut self, function: Arc<dyn ScalarFunction>) -> Result<Self> {
        let name = function.name().to_ascii_lowercase();
        if self.taken(&name) {
            return Err(Error::InvalidOption {
                option: "udf".into(),
                message: format!("a function named {name}() already exists"),
            });
        }
        self.functions.insert(name, FunctionRef::from_arc(function));
        Ok(self)
    }

    /// Adds a user-defined aggregate function (UDAF), called by its name in
    /// a grouped `SELECT` (`SELECT k, sum_squares(x) … GROUP BY …`). Refuses
    /// a taken name, as [`FunctionRegistry::with_udf`] does.
    pub fn with_aggregate_udf(
        mut self,
        function: Arc<dyn crate::aggregate::AggregateUdf>,
    ) -> Result<Self> {
        let name = function.name().to_ascii_lowercase();
        if self.taken(&name) {
            return Err(Error::InvalidOption {
                option: "udf".into(),
                message: format!("a function named {name}() already exists"),
            });
        }
        self.aggregates.insert(name, function);
        Ok(self)
    }

    /// The user-defined aggregate called `name` (case-insensitive).
    pub fn aggregate(&self, name: &str) -> Option<&Arc<dyn crate::aggregate::AggregateUdf>> {
        self.aggregates.get(&name.to_ascii_lowercase())
    }

    pub(crate) fn taken(&self, name: &str) -> bool {
        self.functions.contains_key(name)
            || self.aggregates.contains_key(name)
            || BUILTIN_AGGREGATES.contains(&name)
    }

    /// The function called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&FunctionRef> {
        self.functions.get(&name.to_ascii_lowercase())
    }

    /// Every name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }
}

/// A built-in: a name, its typing rule and its kernel.
#[derive(Clone, Copy)]
struct Builtin {
    name: &'static str,
    ret: fn(&[DataType]) -> std::result::Result<DataType, String>,
    run: fn(&[ColumnarValue], usize) -> std::result::Result<ArrayRef, ArrowError>,
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}()", self.name)
    }
}

impl ScalarFunction for Builtin {
    fn name(&self) -> &str {
        self.name
    }

    fn return_type(&self, args: &[DataType]) -> std::result::Result<DataType, String> {
        (self.ret)(args)
    }

    fn invoke(
        &self,
        args: &[ColumnarValue],
        rows: usize,
    ) -> std::result::Result<ArrayRef, ArrowError> {
        (self.run)(args, rows)
    }
}

// ---- argument kinds shared by the families ----

/// What an argument may be, for typing rules and their messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// A string (any encoding) or untyped null.
    Str,
    /// An integer or float, or untyped null.
    Num,
    /// An integer, or untyped null.
    Int,
    /// A timestamp: `Timestamp(_)` or `Int64` milliseconds, or untyped null.
    Time,
}

impl Kind {
    fn accepts(self, t: &DataType) -> bool {
        if t == &DataType::Null {
            return true;
        }
        match self {
            Kind::Str => matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
            Kind::Num => t.is_integer() || t.is_floating(),
            Kind::Int => t.is_integer(),
            Kind::Time => matches!(t, DataType::Timestamp(..) | DataType::Int64),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Num => "a number",
            Kind::Int => "an integer",
            Kind::Time => "a timestamp (TIMESTAMP(3) or BIGINT milliseconds)",
        }
    }
}

/// Checks `args` against `required` then `optional` kinds.
fn signature(
    args: &[DataType],
    required: &[Kind],
    optional: &[Kind],
) -> std::result::Result<(), String> {
    let most = required.len() + optional.len();
    if args.len() < required.len() || args.len() > most {
        let count = if optional.is_empty() {
            format!("{}", required.len())
        } else {
            format!("{} to {most}", required.len())
        };
        return Err(format!("takes {count} argument(s), not {}", args.len()));
    }
    for (i, (t, k)) in args.iter().zip(required.iter().chain(optional)).enumerate() {
        if !k.accepts(t) {
            return Err(format!("argument {} must be {}, not {t}", i + 1, k.noun()));
        }
    }
    Ok(())
}

/// The argument as `Utf8`.
fn strings(v: &ColumnarValue, rows: usize) -> std::result::Result<StringArray, ArrowError> {
    let a = cast(&v.to_array(rows)?, &DataType::Utf8)?;
    Ok(a.as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8 gives a StringArray")
        .clone())
}

/// The argument as `Float64`.
fn floats(v: &ColumnarValue, rows: usize) -> std::result::Result<Float64Array, ArrowError> {
    let a = cast(&v.to_array(rows)?, &DataType::Float64)?;
    Ok(a.as_any()
        .downcast_ref::<Float64Array>()
        .expect("cast to Float64 gives a Float64Array")
        .clone())
}

/// The argument as `Int64`.
fn ints(v: &ColumnarValue, rows: usize) -> std::result::Result<Int64Array, ArrowError> {
    let a = cast(&v.to_array(rows)?, &DataType::Int64)?;
    Ok(a.as_any()
        .downcast_ref::<Int64Array>()
        .expect("cast to Int64 gives an Int64Array")
        .clone())
}

/// A timestamp argument as milliseconds since the epoch.
fn millis(v: &ColumnarValue, rows: usize) -> std::result::Result<Int64Array, ArrowError> {
    let a = v.to_array(rows)?;
    let a = match a.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => a,
        DataType::Timestamp(..) => cast(&a, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
        _ => a,
    };
    let a = cast(&a, &DataType::Int64)?;
    Ok(a.as_any()
        .downcast_ref::<Int64Array>()
        .expect("cast to Int64 gives an Int64Array")
        .clone())
}

/// The value of a literal argument that must be the same in every row
/// (a pattern, a unit), or why not.
fn literal_str(
    v: &ColumnarValue,
    function: &str,
    what: &str,
) -> std::result::Result<Option<String>, ArrowError> {
    let Some(s) = v.as_scalar() else {
        return Err(ArrowError::InvalidArgumentError(format!(
            "{function}(): the {what} must be a constant, not a column"
        )));
    };
    let s = cast(s, &DataType::Utf8)?;
    let s = s
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8 gives a StringArray");
    Ok((!s.is_null(0)).then(|| s.value(0).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::RecordBatch;
    use weir_core::expr::{col, lit, Expr};

    /// Evaluates `name(args)` over a batch with a string column `s`, an
    /// integer column `i` and a float column `f`.
    pub(super) fn call(name: &str, args: Vec<Expr>) -> weir_core::Result<ArrayRef> {
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("Hello, World"), None]));
        let i: ArrayRef = Arc::new(Int64Array::from(vec![Some(-7), Some(3)]));
        let f: ArrayRef = Arc::new(Float64Array::from(vec![Some(2.5), None]));
        let batch = RecordBatch::try_from_iter([("s", s), ("i", i), ("f", f)])
            .expect("columns of equal length");
        let func = FunctionRegistry::builtin()
            .get(name)
            .unwrap_or_else(|| panic!("{name} is a built-in"))
            .clone();
        Expr::call(func, args).evaluate(&batch)
    }

    #[test]
    fn registry_resolves_case_insensitively_and_refuses_a_taken_name() {
        let r = FunctionRegistry::builtin();
        assert_eq!(r.get("Upper").map(|f| f.name()), Some("upper"));
        assert!(r.names().count() > 30);
        let taken = Arc::new(Builtin {
            name: "upper",
            ret: |_| Ok(DataType::Utf8),
            run: |a, n| a[0].to_array(n),
        });
        let err = r.with_udf(taken).unwrap_err().to_string();
        assert!(err.contains("upper() already exists"), "{err}");
    }

    #[test]
    fn wrong_arguments_name_the_function_and_the_argument() {
        let err = call("upper", vec![col("i")]).unwrap_err().to_string();
        assert!(
            err.contains("upper(): argument 1 must be a string, not Int64"),
            "{err}"
        );
        let err = call("upper", vec![]).unwrap_err().to_string();
        assert!(err.contains("takes 1 argument(s), not 0"), "{err}");
        let err = call("round", vec![col("f"), lit(1), lit(2)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes 1 to 2 argument(s), not 3"), "{err}");
    }
}
