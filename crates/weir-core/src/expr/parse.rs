//! The text form of expressions: parsing.
//!
//! Owns [`parse_expr`]: a tokenizer and a recursive-descent parser for a
//! small SQL-like syntax. Precedence, lowest first: `or`, `and`, `not`,
//! comparisons (`=` `==` `!=` `<>` `<` `<=` `>` `>=`), postfix
//! `is [not] null`, `+ -`, `* / %`, unary `-`, primaries. Errors give the
//! byte offset of the offending token. May use `crate::error`, the type
//! table in `display.rs` and the expression types.

use super::display::{type_from_name, type_names, KEYWORDS};
use super::{BinaryOp, Expr, ScalarValue};
use crate::error::{Error, Result};

/// Parses `text` into an [`Expr`].
///
/// Keywords (`and or not is null true false cast as` and type names) are
/// case-insensitive. Integer literals are `Int64`, literals with a `.` or
/// an exponent are `Float64`, strings are `'single quoted'` (`''` for a
/// quote), and a column whose name is not a plain identifier or is a
/// keyword is written `"double quoted"` (`""` for a quote). A `-` directly
/// before a number makes a negative literal. `cast(e as T)` accepts the
/// type names boolean, int8..int64, uint8..uint64, float16, float32,
/// float64 and their aliases (`int`, `bigint`, `float`, `double`, `string`,
/// `utf8`, `varchar`, ...), date32, date64 and `timestamp_s/ms/us/ns`.
///
/// Fails with [`Error::Expr`] carrying the whole input and a message with
/// the byte position of the problem and what was expected there.
///
/// # Examples
///
/// ```
/// use weir::expr::{col, lit, parse_expr};
///
/// let e = parse_expr("a + 2 * b >= 10 and not done")?;
/// let expected = col("a")
///     .add(lit(2).mul(col("b")))
///     .gt_eq(lit(10))
///     .and(col("done").not());
/// assert_eq!(e, expected);
///
/// let err = parse_expr("(a + )").unwrap_err();
/// assert!(err.to_string().contains("unexpected `)` at position 5"));
/// # Ok::<(), weir::Error>(())
/// ```
pub fn parse_expr(text: &str) -> Result<Expr> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        text,
        tokens,
        next: 0,
    };
    let expr = parser.or()?;
    if parser.peek().kind != Kind::End {
        return Err(parser.unexpected("an operator or end of input"));
    }
    Ok(expr)
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A bare word: a keyword or a column name.
    Word(String),
    /// A `"double quoted"` column name, unescaped.
    QuotedName(String),
    /// A number as written; `float` if it has a `.` or an exponent.
    Number {
        float: bool,
    },
    /// A `'single quoted'` string, unescaped.
    Str(String),
    LParen,
    RParen,
    /// An operator symbol, normalised (`==` is `=`, `<>` is `!=`).
    Op(&'static str),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// Byte offset of the first character.
    start: usize,
    /// Byte offset one past the last character.
    end: usize,
}

fn syntax_error(text: &str, message: String) -> Error {
    Error::Expr {
        expr: text.to_string(),
        message,
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let bytes = text.as_bytes();
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = at(i);
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Kind::LParen
            }
            b')' => {
                i += 1;
                Kind::RParen
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'=' | b'!' | b'<' | b'>' => {
                let two = [c, at(i + 1)];
                let (op, len) = match &two {
                    b"==" => ("=", 2),
                    b"!=" | b"<>" => ("!=", 2),
                    b"<=" => ("<=", 2),
                    b">=" => (">=", 2),
                    [b'!', _] => {
                        return Err(syntax_error(
                            text,
                            format!("unexpected `!` at position {start}, expected `!=`"),
                        ))
                    }
                    [b'+', _] => ("+", 1),
                    [b'-', _] => ("-", 1),
                    [b'*', _] => ("*", 1),
                    [b'/', _] => ("/", 1),
                    [b'%', _] => ("%", 1),
                    [b'=', _] => ("=", 1),
                    [b'<', _] => ("<", 1),
                    _ => (">", 1),
                };
                i += len;
                Kind::Op(op)
            }
            b'0'..=b'9' | b'.' if c != b'.' || at(i + 1).is_ascii_digit() => {
                let mut float = false;
                while at(i).is_ascii_digit() {
                    i += 1;
                }
                if at(i) == b'.' && at(i + 1).is_ascii_digit() {
                    float = true;
                    i += 1;
                    while at(i).is_ascii_digit() {
                        i += 1;
                    }
                }
                let sign = usize::from(matches!(at(i + 1), b'+' | b'-'));
                if matches!(at(i), b'e' | b'E') && at(i + 1 + sign).is_ascii_digit() {
                    float = true;
                    i += 1 + sign;
                    while at(i).is_ascii_digit() {
                        i += 1;
                    }
                }
                Kind::Number { float }
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                while at(i).is_ascii_alphanumeric() || at(i) == b'_' {
                    i += 1;
                }
                Kind::Word(text[start..i].to_string())
            }
            b'\'' | b'"' => {
                let (body, len) = quoted(text, start).ok_or_else(|| {
                    let what = if c == b'"' { "quoted name" } else { "string" };
                    syntax_error(
                        text,
                        format!("unterminated {what} starting at position {start}"),
                    )
                })?;
                i += len;
                if c == b'"' {
                    Kind::QuotedName(body)
                } else {
                    Kind::Str(body)
                }
            }
            _ => {
                let ch = text[start..].chars().next().unwrap_or('?');
                return Err(syntax_error(
                    text,
                    format!("unexpected character `{ch}` at position {start}"),
                ));
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens.push(Token {
        kind: Kind::End,
        start: text.len(),
        end: text.len(),
    });
    Ok(tokens)
}

/// Reads the quoted text starting at `start` (which holds the quote
/// character); a doubled quote stands for one. Returns the unescaped body
/// and the token's length in bytes, or `None` if it never closes.
fn quoted(text: &str, start: usize) -> Option<(String, usize)> {
    let quote = text[start..].chars().next()?;
    let mut body = String::new();
    let mut chars = text[start + 1..].char_indices().peekable();
    while let Some((offset, ch)) = chars.next() {
        if ch != quote {
            body.push(ch);
        } else if chars.peek().is_some_and(|&(_, next)| next == quote) {
            body.push(quote);
            chars.next();
        } else {
            return Some((body, offset + 2));
        }
    }
    None
}

struct Parser<'a> {
    text: &'a str,
    /// Always ends with a `Kind::End` token.
    tokens: Vec<Token>,
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[self.next.min(last)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        self.next += 1;
        token
    }

    /// True (and consumes it) if the next token is the keyword `word`.
    fn eat_keyword(&mut self, word: &str) -> bool {
        let found = matches!(&self.peek().kind, Kind::Word(w) if w.eq_ignore_ascii_case(word));
        if found {
            self.next += 1;
        }
        found
    }

    /// Consumes the next token if it is one of the operators in `ops`.
    fn eat_op(&mut self, ops: &[(&str, BinaryOp)]) -> Option<BinaryOp> {
        let Kind::Op(sym) = self.peek().kind else {
            return None;
        };
        let op = ops.iter().find(|(s, _)| *s == sym).map(|(_, op)| *op)?;
        self.next += 1;
        Some(op)
    }

    /// The error for the next token, which is not what was `expected`.
    fn unexpected(&self, expected: &str) -> Error {
        let token = self.peek();
        let found = match token.kind {
            Kind::End => "end of input".to_string(),
            _ => format!("`{}`", &self.text[token.start..token.end]),
        };
        syntax_error(
            self.text,
            format!(
                "unexpected {found} at position {}, expected {expected}",
                token.start
            ),
        )
    }

    fn expect(&mut self, kind: Kind, what: &str) -> Result<()> {
        if self.peek().kind == kind {
            self.next += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        while self.eat_keyword("or") {
            left = left.or(self.and()?);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr> {
        let mut left = self.not()?;
        while self.eat_keyword("and") {
            left = left.and(self.not()?);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr> {
        if self.eat_keyword("not") {
            return Ok(self.not()?.not());
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr> {
        const OPS: &[(&str, BinaryOp)] = &[
            ("=", BinaryOp::Eq),
            ("!=", BinaryOp::NotEq),
            ("<", BinaryOp::Lt),
            ("<=", BinaryOp::LtEq),
            (">", BinaryOp::Gt),
            (">=", BinaryOp::GtEq),
        ];
        let mut left = self.is_null()?;
        while let Some(op) = self.eat_op(OPS) {
            left = binary(left, op, self.is_null()?);
        }
        Ok(left)
    }

    fn is_null(&mut self) -> Result<Expr> {
        let mut expr = self.additive()?;
        while self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            if !self.eat_keyword("null") {
                let expected = if negated {
                    "`null`"
                } else {
                    "`null` or `not null`"
                };
                return Err(self.unexpected(expected));
            }
            expr = if negated {
                expr.is_not_null()
            } else {
                expr.is_null()
            };
        }
        Ok(expr)
    }

    fn additive(&mut self) -> Result<Expr> {
        const OPS: &[(&str, BinaryOp)] = &[("+", BinaryOp::Add), ("-", BinaryOp::Sub)];
        let mut left = self.multiplicative()?;
        while let Some(op) = self.eat_op(OPS) {
            left = binary(left, op, self.multiplicative()?);
        }
        Ok(left)
    }

    fn multiplicative(&mut self) -> Result<Expr> {
        const OPS: &[(&str, BinaryOp)] = &[
            ("*", BinaryOp::Mul),
            ("/", BinaryOp::Div),
            ("%", BinaryOp::Mod),
        ];
        let mut left = self.unary()?;
        while let Some(op) = self.eat_op(OPS) {
            left = binary(left, op, self.unary()?);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.peek().kind != Kind::Op("-") {
            return self.primary();
        }
        let minus = self.advance();
        if let Kind::Number { float } = self.peek().kind {
            let number = self.advance();
            let digits = &self.text[number.start..number.end];
            return self.number(&format!("-{digits}"), float, minus.start);
        }
        Ok(self.unary()?.neg())
    }

    fn number(&self, literal: &str, float: bool, start: usize) -> Result<Expr> {
        let value = if float {
            literal.parse::<f64>().map(ScalarValue::Float64).ok()
        } else {
            literal.parse::<i64>().map(ScalarValue::Int64).ok()
        };
        value.map(Expr::Literal).ok_or_else(|| {
            syntax_error(
                self.text,
                format!("number `{literal}` at position {start} does not fit in a 64-bit integer"),
            )
        })
    }

    fn primary(&mut self) -> Result<Expr> {
        let token = self.peek().clone();
        match &token.kind {
            Kind::Number { float } => {
                self.next += 1;
                self.number(&self.text[token.start..token.end], *float, token.start)
            }
            Kind::Str(s) => {
                self.next += 1;
                Ok(Expr::Literal(ScalarValue::Utf8(s.clone())))
            }
            Kind::QuotedName(name) => {
                self.next += 1;
                Ok(Expr::Column(name.clone()))
            }
            Kind::LParen => {
                self.next += 1;
                let inner = self.or()?;
                self.expect(Kind::RParen, "`)`")?;
                Ok(inner)
            }
            Kind::Word(word) => {
                let lower = word.to_ascii_lowercase();
                let literal = match lower.as_str() {
                    "true" => Some(ScalarValue::Boolean(true)),
                    "false" => Some(ScalarValue::Boolean(false)),
                    "null" => Some(ScalarValue::Null),
                    _ => None,
                };
                if let Some(value) = literal {
                    self.next += 1;
                    Ok(Expr::Literal(value))
                } else if lower == "cast" {
                    self.next += 1;
                    self.cast()
                } else if KEYWORDS.contains(&lower.as_str()) {
                    Err(self.unexpected("an expression"))
                } else {
                    self.next += 1;
                    Ok(Expr::Column(word.clone()))
                }
            }
            _ => Err(self.unexpected("an expression")),
        }
    }

    /// `cast` has been read; reads `( expr as TYPE )`.
    fn cast(&mut self) -> Result<Expr> {
        self.expect(Kind::LParen, "`(` after `cast`")?;
        let expr = self.or()?;
        if !self.eat_keyword("as") {
            return Err(self.unexpected("`as`"));
        }
        let token = self.peek().clone();
        let to = match &token.kind {
            Kind::Word(name) => type_from_name(name),
            _ => None,
        };
        let Some(to) = to else {
            return Err(self.unexpected(&format!("a type name (one of {})", type_names())));
        };
        self.next += 1;
        self.expect(Kind::RParen, "`)`")?;
        Ok(expr.cast(to))
    }
}

fn binary(left: Expr, op: BinaryOp, right: Expr) -> Expr {
    Expr::Binary {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

#[cfg(test)]
mod tests;
