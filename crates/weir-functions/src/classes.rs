//! User functions registered under a class identifier and bound to a name
//! by a script's `CREATE FUNCTION name AS 'identifier'`: where Flink loads
//! the Java class the identifier names, weir looks the identifier up among
//! the Rust implementations the program registered, so a Flink script's
//! text runs unchanged.
//!
//! Owns [`FunctionClass`] and the registry's class methods
//! ([`FunctionRegistry::with_class`], [`FunctionRegistry::with_aggregate_class`],
//! [`FunctionRegistry::bind`]). May use `weir-core`'s expression contract
//! and error, and the aggregate UDF traits.
//!
//! ```text
//!  program: registry.with_class("com.acme.CountChar", CountChar)   registered, not callable
//!  script:  CREATE FUNCTION count_char AS 'com.acme.CountChar'
//!             ──bind──► "count_char" → CountChar, called count_char()
//!             (a taken name, or an identifier nobody registered, is refused)
//!  query:   count_char(extra, 'c') ──► CountChar::invoke
//! ```

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::{ArrowError, DataType};
use weir_core::error::{Error, Result};
use weir_core::expr::{ColumnarValue, FunctionRef, ScalarFunction};

use crate::aggregate::{AggregateState, AggregateUdf};
use crate::FunctionRegistry;

/// An implementation a script can bind to a name with `CREATE FUNCTION`.
#[derive(Clone, Debug)]
pub enum FunctionClass {
    /// A scalar function (one value per row).
    Scalar(Arc<dyn ScalarFunction>),
    /// An aggregate function (one value per group).
    Aggregate(Arc<dyn AggregateUdf>),
}

/// An implementation called by the name a script bound it to.
#[derive(Debug)]
struct Named<T: ?Sized> {
    name: String,
    inner: Arc<T>,
}

impl ScalarFunction for Named<dyn ScalarFunction> {
    fn name(&self) -> &str {
        &self.name
    }

    fn return_type(&self, args: &[DataType]) -> std::result::Result<DataType, String> {
        self.inner.return_type(args)
    }

    fn invoke(
        &self,
        args: &[ColumnarValue],
        rows: usize,
    ) -> std::result::Result<ArrayRef, ArrowError> {
        self.inner.invoke(args, rows)
    }
}

impl AggregateUdf for Named<dyn AggregateUdf> {
    fn name(&self) -> &str {
        &self.name
    }

    fn return_type(&self, input: &DataType) -> Result<DataType> {
        self.inner.return_type(input)
    }

    fn state_type(&self, input: &DataType) -> Result<DataType> {
        self.inner.state_type(input)
    }

    fn create(&self) -> Box<dyn AggregateState> {
        self.inner.create()
    }

    fn retracts(&self) -> bool {
        self.inner.retracts()
    }
}

impl FunctionRegistry {
    /// Registers a scalar function under a class `identifier` (for
    /// example the Java class name a Flink script's `CREATE FUNCTION`
    /// gives). It is not callable until a script binds a name to it with
    /// `CREATE FUNCTION name AS 'identifier'`. Refuses an identifier
    /// already registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{ArrayRef, Int64Array};
    /// use arrow_schema::{ArrowError, DataType};
    /// use weir::expr::{ColumnarValue, ScalarFunction};
    /// use weir::functions::FunctionRegistry;
    ///
    /// #[derive(Debug)]
    /// struct One;
    /// impl ScalarFunction for One {
    ///     fn name(&self) -> &str { "one" }
    ///     fn return_type(&self, _: &[DataType]) -> Result<DataType, String> { Ok(DataType::Int64) }
    ///     fn invoke(&self, _: &[ColumnarValue], rows: usize) -> Result<ArrayRef, ArrowError> {
    ///         Ok(Arc::new(Int64Array::from(vec![1; rows])))
    ///     }
    /// }
    ///
    /// let mut registry = FunctionRegistry::builtin().with_class("com.acme.One", Arc::new(One))?;
    /// assert!(registry.get("unit").is_none());
    /// // what `CREATE FUNCTION unit AS 'com.acme.One'` does
    /// assert!(registry.bind("unit", "com.acme.One", false)?);
    /// assert_eq!(registry.get("UNIT").unwrap().name(), "unit");
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn with_class(self, identifier: &str, function: Arc<dyn ScalarFunction>) -> Result<Self> {
        self.with_function_class(identifier, FunctionClass::Scalar(function))
    }

    /// Registers an aggregate function under a class `identifier`, as
    /// [`FunctionRegistry::with_class`] does a scalar one.
    pub fn with_aggregate_class(
        self,
        identifier: &str,
        function: Arc<dyn AggregateUdf>,
    ) -> Result<Self> {
        self.with_function_class(identifier, FunctionClass::Aggregate(function))
    }

    fn with_function_class(mut self, identifier: &str, class: FunctionClass) -> Result<Self> {
        if identifier.trim().is_empty() {
            return Err(Error::option("class", "a class identifier is not empty"));
        }
        if self.classes.contains_key(identifier) {
            return Err(Error::option(
                "class",
                format!("a function is already registered as '{identifier}'"),
            ));
        }
        self.classes.insert(identifier.to_string(), class);
        Ok(self)
    }

    /// Whether an implementation is registered as `identifier`.
    pub fn has_class(&self, identifier: &str) -> bool {
        self.classes.contains_key(identifier)
    }

    /// Binds `name` to the implementation registered as `identifier`
    /// (`CREATE FUNCTION [IF NOT EXISTS] name AS 'identifier'`): from then
    /// on `name(…)` calls it. Returns `false` when `if_not_exists` and
    /// the name is already taken (nothing is bound, as in Flink).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when `name` is taken (a built-in or a
    /// function registered or bound before: a script never calls another
    /// function than the one its author read about) and `if_not_exists`
    /// is false, or when no implementation is registered as `identifier`
    /// (the message lists those that are).
    pub fn bind(&mut self, name: &str, identifier: &str, if_not_exists: bool) -> Result<bool> {
        let name = name.to_ascii_lowercase();
        if self.taken(&name) {
            if if_not_exists {
                return Ok(false);
            }
            return Err(Error::option(
                "CREATE FUNCTION",
                format!(
                    "a function named {name}() already exists (a built-in, or one registered \
                     or created before): choose another name"
                ),
            ));
        }
        let Some(class) = self.classes.get(identifier) else {
            let known: Vec<&str> = self.classes.keys().map(String::as_str).collect();
            return Err(Error::option(
                "CREATE FUNCTION",
                format!(
                    "no function is registered as '{identifier}': weir runs no JVM or Python; \
                     the program running the script registers a Rust implementation under \
                     this identifier (FunctionRegistry::with_class or with_aggregate_class); \
                     registered: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        match class.clone() {
            FunctionClass::Scalar(inner) => {
                let named: Arc<dyn ScalarFunction> = Arc::new(Named {
                    name: name.clone(),
                    inner,
                });
                self.functions.insert(name, FunctionRef::from_arc(named));
            }
            FunctionClass::Aggregate(inner) => {
                let named: Arc<dyn AggregateUdf> = Arc::new(Named {
                    name: name.clone(),
                    inner,
                });
                self.aggregates.insert(name, named);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::Int64Array;

    #[derive(Debug)]
    struct Plus(i64);

    impl ScalarFunction for Plus {
        fn name(&self) -> &str {
            "plus"
        }
        fn return_type(&self, _: &[DataType]) -> std::result::Result<DataType, String> {
            Ok(DataType::Int64)
        }
        fn invoke(
            &self,
            args: &[ColumnarValue],
            rows: usize,
        ) -> std::result::Result<ArrayRef, ArrowError> {
            let x = args[0].to_array(rows)?;
            let out: Int64Array = x.as_primitive::<Int64Type>().unary(|v| v + self.0);
            Ok(Arc::new(out))
        }
    }

    #[test]
    fn a_bound_class_is_called_by_its_new_name_and_names_stay_unique() {
        let mut r = FunctionRegistry::builtin()
            .with_class("a.One", Arc::new(Plus(1)))
            .unwrap()
            .with_class("a.Two", Arc::new(Plus(2)))
            .unwrap();
        assert!(r.get("plus").is_none(), "registered is not callable");
        assert!(r.bind("Inc", "a.One", false).unwrap());
        assert!(r.bind("inc2", "a.Two", false).unwrap());
        let f = r.get("INC").unwrap();
        assert_eq!(f.name(), "inc");
        let x: ArrayRef = Arc::new(Int64Array::from(vec![1, 5]));
        let out = f
            .function()
            .invoke(&[ColumnarValue::Array(x.clone())], 2)
            .unwrap();
        assert_eq!(out.as_primitive::<Int64Type>().values(), &[2, 6]);
        let out = r
            .get("inc2")
            .unwrap()
            .function()
            .invoke(&[ColumnarValue::Array(x)], 2)
            .unwrap();
        assert_eq!(out.as_primitive::<Int64Type>().values(), &[3, 7]);
        // a taken name: refused, or left alone with IF NOT EXISTS
        let e = r.bind("inc", "a.Two", false).unwrap_err().to_string();
        assert!(e.contains("inc() already exists"), "{e}");
        let e = r.bind("upper", "a.Two", false).unwrap_err().to_string();
        assert!(e.contains("upper() already exists"), "{e}");
        assert!(!r.bind("inc", "a.Two", true).unwrap());
        assert_eq!(
            r.get("inc")
                .unwrap()
                .function()
                .invoke(
                    &[ColumnarValue::Array(Arc::new(Int64Array::from(vec![0])))],
                    1
                )
                .unwrap()
                .as_primitive::<Int64Type>()
                .values(),
            &[1],
            "still the first binding"
        );
        // an identifier nobody registered names those that are
        let e = r.bind("x", "a.Three", false).unwrap_err().to_string();
        assert!(e.contains("'a.Three'") && e.contains("a.One, a.Two"), "{e}");
        // an identifier registered twice, or empty
        assert!(r.clone().with_class("a.One", Arc::new(Plus(3))).is_err());
        assert!(r.with_class(" ", Arc::new(Plus(3))).is_err());
    }
}
