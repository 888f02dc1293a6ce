//! Expression text: the one grammar for a job file's `filter`,
//! `with_column.expr` and watermark predicates and for SQL's scalar
//! expressions. Owns [`parse_expr`] and [`parse_expr_with`]: the text is
//! read by `sqlparser` in weir's Flink dialect and translated by the same
//! code as a SQL query's expressions, so a job file can say everything a
//! `SELECT` list can (`CASE`, `IN`, `BETWEEN`, `LIKE`, functions, …).
//!
//! May use `super::expr` and `super::error`, `weir-core`'s expressions and
//! `weir-functions`' registry.

use sqlparser::ast::Expr as SqlExpr;
use sqlparser::parser::Parser;
use weir_core::error::{Error, Result};
use weir_core::expr::Expr;
use weir_functions::FunctionRegistry;

use crate::error::{at_node, parse_error, SqlError};
use crate::expr::scalar;

/// Parses `text`, an SQL scalar expression, into an [`Expr`] over columns
/// named as written (`"double quoted"` for names that are not plain
/// identifiers or are keywords), calling the built-in functions.
///
/// Everything a SQL `SELECT` item may hold except aggregates and
/// qualified names: arithmetic, comparisons (`=`, `<>`, `!=`), `AND`,
/// `OR`, `NOT`, `IS [NOT] NULL`, `CASE`, `IN (…)`, `BETWEEN`, `[NOT]
/// LIKE`/`ILIKE`, `CAST(x AS type)` (SQL types and weir's Arrow names such
/// as `int64`, `utf8`, `timestamp_ms`), `COALESCE`, `NULLIF`, `IF`, string,
/// math and time functions, `INTERVAL '5' SECOND` (its milliseconds) and
/// `TIMESTAMP '…'` literals. Keywords are case-insensitive; integer
/// literals are `Int64`, literals with a `.` or an exponent `Float64`,
/// strings `'single quoted'` (`''` for a quote). What an [`Expr`] prints
/// is what this reads back.
///
/// Fails with [`Error::Expr`] carrying the whole input and a message with
/// the line and column of the problem.
///
/// # Examples
///
/// ```
/// use weir_core::expr::{col, lit};
/// use weir_sql::parse_expr;
///
/// let e = parse_expr("a + 2 * b >= 10 and not done")?;
/// let expected = col("a")
///     .add(lit(2).mul(col("b")))
///     .gt_eq(lit(10))
///     .and(col("done").not());
/// assert_eq!(e, expected);
///
/// let e = parse_expr("CASE WHEN upper(kind) LIKE 'CAR%' THEN speed ELSE 0 END")?;
/// assert_eq!(e.columns(), vec!["kind", "speed"]);
///
/// let err = parse_expr("(a + )").unwrap_err();
/// assert!(err.to_string().contains("column 6"), "{err}");
/// # Ok::<(), weir_core::error::Error>(())
/// ```
pub fn parse_expr(text: &str) -> Result<Expr> {
    parse_expr_with(text, builtin())
}

/// [`parse_expr`] with the functions of `functions` (built-ins and UDFs).
pub fn parse_expr_with(text: &str, functions: &FunctionRegistry) -> Result<Expr> {
    // a one-line expression's place is its column: "line 1" would read as
    // the line of the job file it sits in
    let fail = |message: String| Error::Expr {
        expr: text.to_string(),
        message: match message.strip_prefix("line 1, column ") {
            Some(rest) if !text.contains('\n') => format!("column {rest}"),
            _ => message,
        },
    };
    let sql = Parser::new(&crate::FlinkDialect)
        .try_with_sql(text)
        .and_then(|mut p| {
            let e = p.parse_expr()?;
            p.expect_token(&sqlparser::tokenizer::Token::EOF)?;
            Ok(e)
        })
        .map_err(|e| fail(parse_error(&e, text).to_string()))?;
    scalar(&sql, &plain_column, functions).map_err(|e| fail(e.to_string()))
}

/// The built-in registry, made once.
fn builtin() -> &'static FunctionRegistry {
    static BUILTIN: std::sync::OnceLock<FunctionRegistry> = std::sync::OnceLock::new();
    BUILTIN.get_or_init(FunctionRegistry::builtin)
}

/// A column of the expression: its name as written; qualified names have
/// no table to qualify here.
fn plain_column(e: &SqlExpr, qualifier: Option<&str>, name: &str) -> Result<String, SqlError> {
    match qualifier {
        None => Ok(name.to_string()),
        Some(q) => Err(at_node(
            e,
            format!(
                "`{q}.{name}`: an expression here reads one stream's columns; write `{name}`, \
                 or \"{q}.{name}\" for a column named so"
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
