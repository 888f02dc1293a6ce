//! Column expressions over Arrow record batches.
//!
//! Owns the expression tree ([`Expr`], [`ScalarValue`], [`BinaryOp`]), its
//! builder functions ([`col`], [`lit`] and the `Expr` methods) and the
//! column walk ([`Expr::columns`]). Type checking and evaluation live in
//! `eval.rs` (with the coercion rules in `coerce.rs`), scalar functions'
//! contract in `function.rs`, the text form in `display.rs` (printing; the
//! parser is SQL's, in `weir-sql`). May use `crate::error` and the arrow
//! crates, nothing else.

mod coerce;
mod display;
mod eval;
mod function;

pub use display::{type_from_name, type_names};
pub use function::{ColumnarValue, FunctionRef, ScalarFunction};

use arrow_schema::DataType;

/// A scalar expression over the columns of one record batch.
///
/// Build one with [`col`], [`lit`] and the builder methods, or parse one
/// from text with `weir::expr::parse_expr` (SQL's grammar); then type-check it with
/// [`Expr::data_type`] and run it with [`Expr::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The column with this name.
    Column(String),
    /// A constant.
    Literal(ScalarValue),
    /// `left op right`.
    Binary {
        /// The left operand.
        left: Box<Expr>,
        /// The operator.
        op: BinaryOp,
        /// The right operand.
        right: Box<Expr>,
    },
    /// Boolean negation (Kleene: `not null` is null).
    Not(Box<Expr>),
    /// Arithmetic negation.
    Negative(Box<Expr>),
    /// True where the operand is null; never null itself.
    IsNull(Box<Expr>),
    /// True where the operand is not null; never null itself.
    IsNotNull(Box<Expr>),
    /// Converts the operand to another type; a value that does not fit is an
    /// error, not a silent null.
    Cast {
        /// The operand.
        expr: Box<Expr>,
        /// The target type.
        to: DataType,
    },
    /// `case when c1 then v1 when c2 then v2 … else e end`: per row, the
    /// value of the first branch whose condition is true (a null condition
    /// is not true), else `otherwise` (null without one). The values share
    /// one type (numbers widen as in arithmetic).
    Case {
        /// (condition, value) in order.
        branches: Vec<(Expr, Expr)>,
        /// The value when no condition holds.
        otherwise: Option<Box<Expr>>,
    },
    /// A call of a scalar function (built-in or user-defined).
    Function {
        /// The function.
        func: FunctionRef,
        /// Its arguments, in order.
        args: Vec<Expr>,
    },
    /// `expr [not] like pattern` (`ilike`: ignoring case): SQL patterns,
    /// `%` any run of characters, `_` one character, `\` escapes. Null
    /// where either side is null.
    Like {
        /// The string tested.
        expr: Box<Expr>,
        /// The pattern.
        pattern: Box<Expr>,
        /// `not like`.
        negated: bool,
        /// `ilike`: ignore case.
        case_insensitive: bool,
    },
}

/// A constant value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarValue {
    /// The untyped null; takes the type of whatever it is combined with.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A 64-bit signed integer (every integer literal is one).
    Int64(i64),
    /// A 64-bit float.
    Float64(f64),
    /// A UTF-8 string.
    Utf8(String),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`; integer division (truncating) on integers.
    Div,
    /// `%`; remainder, with the sign of the dividend.
    Mod,
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `and` (Kleene logic).
    And,
    /// `or` (Kleene logic).
    Or,
}

impl BinaryOp {
    /// The operator's text form, as SQL reads it.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }

    /// True for `+ - * / %`.
    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod
        )
    }

    /// True for `= != < <= > >=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }
}

/// A reference to the column `name`.
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Column(name.into())
}

/// A constant; accepts `bool`, `i32`, `i64`, `f64`, `&str`, `String` and
/// [`ScalarValue`].
pub fn lit(value: impl Into<ScalarValue>) -> Expr {
    Expr::Literal(value.into())
}

impl From<bool> for ScalarValue {
    fn from(v: bool) -> Self {
        ScalarValue::Boolean(v)
    }
}

impl From<i32> for ScalarValue {
    fn from(v: i32) -> Self {
        ScalarValue::Int64(i64::from(v))
    }
}

impl From<i64> for ScalarValue {
    fn from(v: i64) -> Self {
        ScalarValue::Int64(v)
    }
}

impl From<f64> for ScalarValue {
    fn from(v: f64) -> Self {
        ScalarValue::Float64(v)
    }
}

impl From<&str> for ScalarValue {
    fn from(v: &str) -> Self {
        ScalarValue::Utf8(v.to_string())
    }
}

impl From<String> for ScalarValue {
    fn from(v: String) -> Self {
        ScalarValue::Utf8(v)
    }
}

impl ScalarValue {
    /// The Arrow type of this value (`Null` for [`ScalarValue::Null`]).
    pub fn data_type(&self) -> DataType {
        match self {
            ScalarValue::Null => DataType::Null,
            ScalarValue::Boolean(_) => DataType::Boolean,
            ScalarValue::Int64(_) => DataType::Int64,
            ScalarValue::Float64(_) => DataType::Float64,
            ScalarValue::Utf8(_) => DataType::Utf8,
        }
    }
}

// The builder names mirror the operators on purpose (`a.add(b)`, `a.eq(b)`),
// so they shadow the std operator traits' method names.
#[allow(clippy::should_implement_trait)]
impl Expr {
    fn binary(self, op: BinaryOp, right: Expr) -> Expr {
        Expr::Binary {
            left: Box::new(self),
            op,
            right: Box::new(right),
        }
    }

    /// `self + right`
    pub fn add(self, right: Expr) -> Expr {
        self.binary(BinaryOp::Add, right)
    }

    /// `self - right`
    pub fn sub(self, right: Expr) -> Expr {
        self.binary(BinaryOp::Sub, right)
    }

    /// `self * right`
    pub fn mul(self, right: Expr) -> Expr {
        self.binary(BinaryOp::Mul, right)
    }

    /// `self / right`
    pub fn div(self, right: Expr) -> Expr {
        self.binary(BinaryOp::Div, right)
    }

    /// `self % right`
    pub fn modulo(self, right: Expr) -> Expr {
        self.binary(BinaryOp::Mod, right)
    }

    /// `self = right`
    pub fn eq(self, right: Expr) -> Expr {
        self.binary(BinaryOp::Eq, right)
    }

    /// `self != right`
    pub fn not_eq(self, right: Expr) -> Expr {
        self.binary(BinaryOp::NotEq, right)
    }

    /// `self < right`
    pub fn lt(self, right: Expr) -> Expr {
        self.binary(BinaryOp::Lt, right)
    }

    /// `self <= right`
    pub fn lt_eq(self, right: Expr) -> Expr {
        self.binary(BinaryOp::LtEq, right)
    }

    /// `self > right`
    pub fn gt(self, right: Expr) -> Expr {
        self.binary(BinaryOp::Gt, right)
    }

    /// `self >= right`
    pub fn gt_eq(self, right: Expr) -> Expr {
        self.binary(BinaryOp::GtEq, right)
    }

    /// `self and right`
    pub fn and(self, right: Expr) -> Expr {
        self.binary(BinaryOp::And, right)
    }

    /// `self or right`
    pub fn or(self, right: Expr) -> Expr {
        self.binary(BinaryOp::Or, right)
    }

    /// `not self`
    pub fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }

    /// `-self`
    pub fn neg(self) -> Expr {
        Expr::Negative(Box::new(self))
    }

    /// `self is null`
    pub fn is_null(self) -> Expr {
        Expr::IsNull(Box::new(self))
    }

    /// `self is not null`
    pub fn is_not_null(self) -> Expr {
        Expr::IsNotNull(Box::new(self))
    }

    /// `cast(self as to)`
    pub fn cast(self, to: DataType) -> Expr {
        Expr::Cast {
            expr: Box::new(self),
            to,
        }
    }

    /// `func(args…)`
    pub fn call(func: FunctionRef, args: Vec<Expr>) -> Expr {
        Expr::Function { func, args }
    }

    /// `self like pattern`
    pub fn like(self, pattern: Expr) -> Expr {
        Expr::Like {
            expr: Box::new(self),
            pattern: Box::new(pattern),
            negated: false,
            case_insensitive: false,
        }
    }

    /// The distinct column names this expression reads, in the order they
    /// first appear (left to right).
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns(&self, out: &mut Vec<String>) {
        match self {
            Expr::Column(name) => {
                if !out.iter().any(|c| c == name) {
                    out.push(name.clone());
                }
            }
            Expr::Literal(_) => {}
            Expr::Binary { left, right, .. } => {
                left.collect_columns(out);
                right.collect_columns(out);
            }
            Expr::Not(e)
            | Expr::Negative(e)
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::Cast { expr: e, .. } => e.collect_columns(out),
            Expr::Case {
                branches,
                otherwise,
            } => {
                for (c, v) in branches {
                    c.collect_columns(out);
                    v.collect_columns(out);
                }
                if let Some(e) = otherwise {
                    e.collect_columns(out);
                }
            }
            Expr::Function { args, .. } => {
                for a in args {
                    a.collect_columns(out);
                }
            }
            Expr::Like { expr, pattern, .. } => {
                expr.collect_columns(out);
                pattern.collect_columns(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_build_the_expected_tree() {
        let e = col("a")
            .add(lit(1))
            .gt(lit(2.5))
            .and(col("b").is_null().not());
        let expected = Expr::Binary {
            left: Box::new(Expr::Binary {
                left: Box::new(Expr::Binary {
                    left: Box::new(Expr::Column("a".into())),
                    op: BinaryOp::Add,
                    right: Box::new(Expr::Literal(ScalarValue::Int64(1))),
                }),
                op: BinaryOp::Gt,
                right: Box::new(Expr::Literal(ScalarValue::Float64(2.5))),
            }),
            op: BinaryOp::And,
            right: Box::new(Expr::Not(Box::new(Expr::IsNull(Box::new(Expr::Column(
                "b".into(),
            )))))),
        };
        assert_eq!(e, expected);
    }

    #[test]
    fn literal_conversions() {
        assert_eq!(lit(true), Expr::Literal(ScalarValue::Boolean(true)));
        assert_eq!(lit(7i32), Expr::Literal(ScalarValue::Int64(7)));
        assert_eq!(lit(-7i64), Expr::Literal(ScalarValue::Int64(-7)));
        assert_eq!(lit(0.5), Expr::Literal(ScalarValue::Float64(0.5)));
        assert_eq!(lit("x"), Expr::Literal(ScalarValue::Utf8("x".into())));
        assert_eq!(
            lit(String::from("y")),
            Expr::Literal(ScalarValue::Utf8("y".into()))
        );
        assert_eq!(lit(ScalarValue::Null), Expr::Literal(ScalarValue::Null));
    }

    #[test]
    fn columns_are_distinct_in_first_seen_order() {
        let e = col("b")
            .add(col("a"))
            .mul(col("b").neg())
            .gt(col("c").cast(DataType::Int64))
            .or(col("a").is_not_null());
        assert_eq!(e.columns(), vec!["b", "a", "c"]);
        assert!(lit(1).add(lit(2)).columns().is_empty());
    }
}
