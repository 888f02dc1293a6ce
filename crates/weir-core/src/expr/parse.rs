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
mod tests {
    use super::super::{col, lit};
    use super::*;
    use arrow_schema::{DataType, TimeUnit};
    use proptest::prelude::*;

    fn parse(text: &str) -> Expr {
        parse_expr(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The message of the parse error for `text`, checking it quotes `text`.
    fn parse_error(text: &str) -> String {
        match parse_expr(text) {
            Err(Error::Expr { expr, message }) => {
                assert_eq!(expr, text);
                message
            }
            other => panic!("expected a parse error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn precedence() {
        assert_eq!(parse("1 + 2 * 3"), lit(1).add(lit(2).mul(lit(3))));
        assert_eq!(parse("(1 + 2) * 3"), lit(1).add(lit(2)).mul(lit(3)));
        assert_eq!(parse("a or b and c"), col("a").or(col("b").and(col("c"))));
        assert_eq!(parse("not a = b"), col("a").eq(col("b")).not());
        assert_eq!(parse("a - b - c"), col("a").sub(col("b")).sub(col("c")));
        assert_eq!(parse("a / b % c"), col("a").div(col("b")).modulo(col("c")));
        assert_eq!(parse("-a * b"), col("a").neg().mul(col("b")));
        assert_eq!(parse("a + 1 is null"), col("a").add(lit(1)).is_null());
        assert_eq!(
            parse("a = b is not null"),
            col("a").eq(col("b").is_not_null())
        );
        assert_eq!(
            parse("NOT x IS NOT NULL AnD y <> 2 Or z"),
            col("x")
                .is_not_null()
                .not()
                .and(col("y").not_eq(lit(2)))
                .or(col("z"))
        );
        assert_eq!(parse("not not a"), col("a").not().not());
        assert_eq!(parse("a < b = c"), col("a").lt(col("b")).eq(col("c")));
    }

    #[test]
    fn operators_and_their_spellings() {
        let cases = [
            ("a = 1", col("a").eq(lit(1))),
            ("a == 1", col("a").eq(lit(1))),
            ("a != 1", col("a").not_eq(lit(1))),
            ("a <> 1", col("a").not_eq(lit(1))),
            ("a<1", col("a").lt(lit(1))),
            ("a<=1", col("a").lt_eq(lit(1))),
            ("a>1", col("a").gt(lit(1))),
            ("a>=1", col("a").gt_eq(lit(1))),
            ("a-1", col("a").sub(lit(1))),
            ("a--1", col("a").sub(lit(-1))),
            ("a % 2", col("a").modulo(lit(2))),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), want, "{text}");
        }
    }

    #[test]
    fn literals_and_names() {
        assert_eq!(parse("42"), lit(42));
        assert_eq!(parse("-42"), lit(-42));
        assert_eq!(parse("- 42"), lit(-42));
        assert_eq!(parse("-(42)"), lit(42).neg());
        assert_eq!(parse("9223372036854775807"), lit(i64::MAX));
        assert_eq!(parse("-9223372036854775808"), lit(i64::MIN));
        assert_eq!(parse("1.5"), lit(1.5));
        assert_eq!(parse("1e3"), lit(1000.0));
        assert_eq!(parse("2.5E-1"), lit(0.25));
        assert_eq!(parse(".5"), lit(0.5));
        assert_eq!(parse("'it''s'"), lit("it's"));
        assert_eq!(parse("''"), lit(""));
        assert_eq!(parse("TRUE"), lit(true));
        assert_eq!(parse("false"), lit(false));
        assert_eq!(parse("Null"), lit(ScalarValue::Null));
        assert_eq!(parse("_a1"), col("_a1"));
        assert_eq!(parse("CamelCase"), col("CamelCase"));
        assert_eq!(parse("\"my col\""), col("my col"));
        assert_eq!(parse("\"and\""), col("and"));
        assert_eq!(parse("\"a\"\"b\""), col("a\"b"));
        assert_eq!(parse("\"é\" = 'ü'"), col("é").eq(lit("ü")));
    }

    #[test]
    fn casts() {
        assert_eq!(parse("cast(a as BIGINT)"), col("a").cast(DataType::Int64));
        assert_eq!(
            parse("CAST(a + 1 AS double)"),
            col("a").add(lit(1)).cast(DataType::Float64)
        );
        assert_eq!(parse("cast(a as int)"), col("a").cast(DataType::Int32));
        assert_eq!(parse("cast(a as uint16)"), col("a").cast(DataType::UInt16));
        assert_eq!(parse("cast(a as float)"), col("a").cast(DataType::Float32));
        assert_eq!(parse("cast(a as string)"), col("a").cast(DataType::Utf8));
        assert_eq!(parse("cast(a as varchar)"), col("a").cast(DataType::Utf8));
        assert_eq!(
            parse("cast(a as boolean)"),
            col("a").cast(DataType::Boolean)
        );
        assert_eq!(
            parse("cast(t as timestamp_ms) > 5"),
            col("t")
                .cast(DataType::Timestamp(TimeUnit::Millisecond, None))
                .gt(lit(5))
        );
    }

    #[test]
    fn error_positions() {
        let cases = [
            (
                "",
                "unexpected end of input at position 0, expected an expression",
            ),
            (
                "1 + (2 *)",
                "unexpected `)` at position 8, expected an expression",
            ),
            (
                "(a + 1",
                "unexpected end of input at position 6, expected `)`",
            ),
            (
                "a b",
                "unexpected `b` at position 2, expected an operator or end of input",
            ),
            (
                "a + 1)",
                "unexpected `)` at position 5, expected an operator or end of input",
            ),
            ("'abc", "unterminated string starting at position 0"),
            ("a = \"x", "unterminated quoted name starting at position 4"),
            ("a # b", "unexpected character `#` at position 2"),
            ("a ! b", "unexpected `!` at position 2, expected `!=`"),
            (
                "a is 5",
                "unexpected `5` at position 5, expected `null` or `not null`",
            ),
            (
                "a is not true",
                "unexpected `true` at position 9, expected `null`",
            ),
            (
                "and",
                "unexpected `and` at position 0, expected an expression",
            ),
            (
                "a = not b",
                "unexpected `not` at position 4, expected an expression",
            ),
            (
                "cast a",
                "unexpected `a` at position 5, expected `(` after `cast`",
            ),
            (
                "cast(a int)",
                "unexpected `int` at position 7, expected `as`",
            ),
            (
                "cast(a as int",
                "unexpected end of input at position 13, expected `)`",
            ),
            (
                "99999999999999999999",
                "number `99999999999999999999` at position 0 does not fit in a 64-bit integer",
            ),
            ("1 + ü", "unexpected character `ü` at position 4"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_error(text), want, "{text:?}");
        }
        let msg = parse_error("cast(a as blob)");
        assert!(
            msg.starts_with("unexpected `blob` at position 10, expected a type name (one of boolean, bool, int8,"),
            "{msg}"
        );
    }

    #[test]
    fn parsed_expressions_evaluate() {
        use arrow_array::{cast::AsArray, ArrayRef, Int64Array, RecordBatch};
        use std::sync::Arc;
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(7)]));
        let batch = RecordBatch::try_from_iter([("a", a)]).expect("valid batch");
        let out = parse("a * 2 + 1 > 5 or a is null")
            .evaluate(&batch)
            .expect("evaluates");
        let got: Vec<Option<bool>> = out.as_boolean().iter().collect();
        assert_eq!(got, vec![Some(false), Some(true), Some(true)]);
    }

    #[test]
    fn display_round_trips() {
        let exprs = [
            lit(1).add(lit(2).mul(lit(3))),
            col("a").or(col("b").and(col("c"))),
            col("a").eq(col("b")).not(),
            col("a").not().eq(col("b")),
            col("a").add(lit(1)).is_null().is_not_null(),
            col("a").neg().neg(),
            lit(5).neg(),
            lit(-5).neg(),
            lit(-5),
            lit(i64::MIN),
            lit(-0.0).neg(),
            lit(0.1).add(lit(1e-7)).sub(lit(1e300)),
            lit(f64::INFINITY).mul(lit(f64::NEG_INFINITY)),
            lit(2.0).neg(),
            lit("it's \"quoted\"\n"),
            col("select")
                .add(col("my col"))
                .add(col("x\"y"))
                .add(col("OR"))
                .add(col("")),
            col("a")
                .cast(DataType::Int32)
                .cast(DataType::Timestamp(TimeUnit::Nanosecond, None)),
            col("a").is_null().cast(DataType::Utf8).neg(),
            lit(ScalarValue::Null).not().lt_eq(lit(true)),
            col("a").sub(lit(1).neg()),
        ];
        for e in exprs {
            let text = e.to_string();
            assert_eq!(parse(&text), e, "{text}");
        }
    }

    fn arb_scalar() -> impl Strategy<Value = ScalarValue> {
        prop_oneof![
            Just(ScalarValue::Null),
            any::<bool>().prop_map(ScalarValue::Boolean),
            any::<i64>().prop_map(ScalarValue::Int64),
            any::<f64>()
                .prop_filter("NaN never equals itself", |v| !v.is_nan())
                .prop_map(ScalarValue::Float64),
            "[a-z' \"é]{0,6}".prop_map(ScalarValue::Utf8),
        ]
    }

    fn arb_expr() -> impl Strategy<Value = Expr> {
        let names = ["a", "b_1", "my col", "and", "Null", "x\"y", "é", "", "9z"];
        let leaf = prop_oneof![
            prop::sample::select(names.to_vec()).prop_map(col),
            arb_scalar().prop_map(Expr::Literal),
        ];
        let ops = [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Mod,
            BinaryOp::Eq,
            BinaryOp::NotEq,
            BinaryOp::Lt,
            BinaryOp::LtEq,
            BinaryOp::Gt,
            BinaryOp::GtEq,
            BinaryOp::And,
            BinaryOp::Or,
        ];
        let types = [
            DataType::Boolean,
            DataType::Int8,
            DataType::UInt64,
            DataType::Float32,
            DataType::Float64,
            DataType::Utf8,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Millisecond, None),
        ];
        leaf.prop_recursive(5, 48, 2, move |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop::sample::select(ops.to_vec()),
                    inner.clone()
                )
                    .prop_map(|(l, op, r)| binary(l, op, r)),
                inner.clone().prop_map(Expr::not),
                inner.clone().prop_map(Expr::neg),
                inner.clone().prop_map(Expr::is_null),
                inner.clone().prop_map(Expr::is_not_null),
                (inner, prop::sample::select(types.to_vec())).prop_map(|(e, t)| e.cast(t)),
            ]
        })
    }

    proptest! {
        #[test]
        fn generated_expressions_round_trip(e in arb_expr()) {
            let text = e.to_string();
            let parsed = parse_expr(&text);
            prop_assert!(parsed.is_ok(), "{text}: {parsed:?}");
            prop_assert_eq!(parsed.ok(), Some(e), "{}", text);
        }
    }
}
