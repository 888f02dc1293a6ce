//! Scalar functions in expressions: the contract every built-in function
//! and every user-defined function (UDF) meets.
//!
//! Owns [`ScalarFunction`] (name, return type from argument types, a
//! whole-batch `invoke`), [`FunctionRef`] (the shared handle an
//! [`super::Expr::Function`] node holds, equal by name) and
//! [`ColumnarValue`] (an argument: a column, or one value for every row).
//! The library of built-ins lives in `weir-functions`; resolving a name to
//! a function is the parser's job. May use the arrow crates.

use std::fmt;
use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, UInt32Array};
use arrow_schema::{ArrowError, DataType};

/// A scalar function: one output value per row, computed from the
/// arguments' values in that row, over whole Arrow arrays.
///
/// Built-ins (`upper`, `floor`, `date_format`, …) and user functions
/// implement the same trait, so a UDF is registered, type-checked,
/// printed and evaluated exactly like a built-in.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{cast::AsArray, types::Int64Type, ArrayRef, Int64Array, RecordBatch};
/// use arrow_schema::{ArrowError, DataType};
/// use weir::expr::{col, ColumnarValue, Expr, FunctionRef, ScalarFunction};
///
/// /// `twice(x)`: x + x for 64-bit integers.
/// #[derive(Debug)]
/// struct Twice;
///
/// impl ScalarFunction for Twice {
///     fn name(&self) -> &str {
///         "twice"
///     }
///     fn return_type(&self, args: &[DataType]) -> Result<DataType, String> {
///         match args {
///             [DataType::Int64] => Ok(DataType::Int64),
///             other => Err(format!("takes one bigint, not {other:?}")),
///         }
///     }
///     fn invoke(&self, args: &[ColumnarValue], rows: usize) -> Result<ArrayRef, ArrowError> {
///         let x = args[0].to_array(rows)?;
///         let out: Int64Array = x.as_primitive::<Int64Type>().unary(|v| v.wrapping_mul(2));
///         Ok(Arc::new(out))
///     }
/// }
///
/// let e = Expr::call(FunctionRef::new(Twice), vec![col("a")]);
/// let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
/// let batch = RecordBatch::try_from_iter([("a", a)])?;
/// assert_eq!(e.to_string(), "twice(a)");
/// assert_eq!(e.evaluate(&batch)?.as_primitive::<Int64Type>().values(), &[2, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ScalarFunction: Send + Sync + fmt::Debug {
    /// The name it is called by (lower case; matched case-insensitively).
    fn name(&self) -> &str;

    /// The result type for arguments of these types, or why they do not
    /// fit (the message names what the function takes).
    fn return_type(&self, args: &[DataType]) -> Result<DataType, String>;

    /// Computes `rows` results. Each argument has the type
    /// [`ScalarFunction::return_type`] accepted; the result must have the
    /// type it returned and exactly `rows` values.
    fn invoke(&self, args: &[ColumnarValue], rows: usize) -> Result<ArrayRef, ArrowError>;
}

/// A shared handle to a [`ScalarFunction`]; two handles are equal when
/// their functions have the same name.
#[derive(Clone)]
pub struct FunctionRef(Arc<dyn ScalarFunction>);

impl FunctionRef {
    /// Wraps a function.
    pub fn new(function: impl ScalarFunction + 'static) -> Self {
        FunctionRef(Arc::new(function))
    }

    /// Wraps an already shared function.
    pub fn from_arc(function: Arc<dyn ScalarFunction>) -> Self {
        FunctionRef(function)
    }

    /// The function.
    pub fn function(&self) -> &dyn ScalarFunction {
        self.0.as_ref()
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }
}

impl PartialEq for FunctionRef {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl fmt::Debug for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}()", self.name())
    }
}

/// A function argument: a whole column, or one value (from literals only)
/// that stands for every row.
#[derive(Debug, Clone)]
pub enum ColumnarValue {
    /// One value per row.
    Array(ArrayRef),
    /// Exactly one value, the same in every row.
    Scalar(ArrayRef),
}

impl ColumnarValue {
    /// The value's type.
    pub fn data_type(&self) -> &DataType {
        match self {
            ColumnarValue::Array(a) | ColumnarValue::Scalar(a) => a.data_type(),
        }
    }

    /// The values as an array of `rows` (a scalar repeated).
    pub fn to_array(&self, rows: usize) -> Result<ArrayRef, ArrowError> {
        match self {
            ColumnarValue::Array(a) => Ok(Arc::clone(a)),
            ColumnarValue::Scalar(s) => broadcast(s, rows),
        }
    }

    /// The single value's array (length 1) if this is a scalar.
    pub fn as_scalar(&self) -> Option<&ArrayRef> {
        match self {
            ColumnarValue::Scalar(s) => Some(s),
            ColumnarValue::Array(_) => None,
        }
    }
}

/// Repeats the single value of `scalar` `len` times.
pub(super) fn broadcast(scalar: &ArrayRef, len: usize) -> Result<ArrayRef, ArrowError> {
    if scalar.logical_null_count() > 0 {
        return Ok(new_null_array(scalar.data_type(), len));
    }
    let indices = UInt32Array::from_value(0, len);
    arrow_select::take::take(scalar.as_ref(), &indices, None)
}
