//! Errors of SQL planning: a message with the line and column it points
//! at, turned into weir's one [`weir_core::error::Error`] at the boundary.
//!
//! May use `sqlparser`'s spans.

use sqlparser::ast::Spanned;

/// A planning error, with where it points.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlError {
    message: String,
}

impl SqlError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        SqlError {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<SqlError> for weir_core::error::Error {
    fn from(e: SqlError) -> Self {
        weir_core::error::Error::Plan(format!("SQL: {}", e.message))
    }
}

/// An error at (line, column).
pub(crate) fn at(line: u64, column: u64, message: impl AsRef<str>) -> SqlError {
    SqlError::new(format!(
        "line {line}, column {column}: {}",
        message.as_ref()
    ))
}

/// An error at the start of `node`'s span (or without a place when the
/// parser recorded none).
pub(crate) fn at_node(node: &impl Spanned, message: impl AsRef<str>) -> SqlError {
    let start = node.span().start;
    if start.line == 0 {
        SqlError::new(message.as_ref().to_string())
    } else {
        at(start.line, start.column, message)
    }
}

/// A construct this version does not support, named.
pub(crate) fn unsupported(node: &impl Spanned, construct: &str) -> SqlError {
    at_node(
        node,
        format!("{construct} is not supported in weir SQL yet"),
    )
}

/// A weir error met while planning `node` (e.g. the builder refusing a
/// column), placed at the node.
pub(crate) fn engine(node: &impl Spanned, e: weir_core::error::Error) -> SqlError {
    at_node(node, e.to_string())
}

/// An error at `id`.
pub(crate) fn at_ident(id: &sqlparser::ast::Ident, message: impl AsRef<str>) -> SqlError {
    let start = id.span.start;
    if start.line == 0 {
        SqlError::new(message.as_ref().to_string())
    } else {
        at(start.line, start.column, message)
    }
}

/// A parser error as "line L, column C: what"; an error at the end of
/// the input (sqlparser gives no place) points just past `text`'s end.
pub(crate) fn parse_error(e: &sqlparser::parser::ParserError, text: &str) -> SqlError {
    let message = e.to_string().replace("sql parser error: ", "");
    if let Some((what, place)) = message.rsplit_once(" at Line: ") {
        if let Some((line, column)) = place.split_once(", Column: ") {
            return SqlError::new(format!("line {line}, column {column}: {what}"));
        }
    }
    let line = text.matches('\n').count() + 1;
    let column = text.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    at(
        line as u64,
        column as u64,
        message.replace("found: EOF", "found the end of the input"),
    )
}
