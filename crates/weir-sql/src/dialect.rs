//! Flink's SQL syntax on top of `sqlparser`: [`FlinkDialect`] (the generic
//! dialect plus `TABLE name` as an argument of a window table function and
//! Flink's `CREATE [TEMPORARY [SYSTEM]] FUNCTION name AS 'class'`) and
//! [`take_watermarks`], which lifts `WATERMARK FOR col AS expr` out of
//! `CREATE TABLE` column lists before parsing (blanking it in place, so every
//! line and column the parser reports stays the user's).
//!
//! May use `sqlparser` and `super::error`.

use crate::error::{at, SqlError};
use sqlparser::ast::{Expr, Ident, Statement};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// The marker a `TABLE name` argument parses to: `__table__.name`, or
/// `__table__.name.__partition_by__.k1.k2` with `PARTITION BY k1, k2`.
pub(crate) const TABLE_ARG: &str = "__table__";

/// See [`TABLE_ARG`].
pub(crate) const PARTITION_MARK: &str = "__partition_by__";

/// Generic SQL plus Flink's `TABLE name` table arguments.
#[derive(Debug, Default)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect {}.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect {}.is_identifier_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        // Flink quotes identifiers with backticks; standard double quotes too
        ch == '`' || ch == '"'
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    // `t FOR SYSTEM_TIME AS OF ts` parses, so a temporal join is refused
    // by name rather than with a parse error
    fn supports_table_versioning(&self) -> bool {
        true
    }

    // Flink's `CREATE [TEMPORARY [SYSTEM]] FUNCTION …` (the generic dialect
    // has no CREATE FUNCTION of this form)
    fn parse_statement(&self, parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
        if !peek_word(parser, 0, Keyword::CREATE) {
            return None;
        }
        let mut at = 1;
        let temporary = peek_word(parser, at, Keyword::TEMPORARY);
        if temporary {
            at += 1;
            if peek_word(parser, at, Keyword::SYSTEM) {
                at += 1;
            }
        }
        if !peek_word(parser, at, Keyword::FUNCTION) {
            return None;
        }
        for _ in 0..=at {
            parser.next_token();
        }
        Some(parse_create_function(parser, temporary))
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        // `TABLE bids` inside TUMBLE(...), HOP(...): a table argument
        if parser.peek_keyword(Keyword::TABLE) {
            if let Token::Word(_) = parser.peek_nth_token(1).token {
                parser.next_token();
                // TABLE name [PARTITION BY k, …] (SESSION's argument)
                return Some(parser.parse_identifier().and_then(|name| {
                    let mut parts = vec![Ident::new(TABLE_ARG), name];
                    // one key, or several in parentheses (as Flink)
                    if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
                        parts.push(Ident::new(PARTITION_MARK));
                        if parser.consume_token(&Token::LParen) {
                            parts.extend(parser.parse_comma_separated(|p| p.parse_identifier())?);
                            parser.expect_token(&Token::RParen)?;
                        } else {
                            parts.push(parser.parse_identifier()?);
                        }
                    }
                    Ok(Expr::CompoundIdentifier(parts))
                }));
            }
        }
        None
    }
}

/// Whether the `n`th token ahead is the keyword `k`.
fn peek_word(parser: &Parser, n: usize, k: Keyword) -> bool {
    matches!(&parser.peek_nth_token(n).token, Token::Word(w) if w.keyword == k)
}

/// The rest of Flink's `CREATE [TEMPORARY [SYSTEM]] FUNCTION` after
/// `FUNCTION`: `[IF NOT EXISTS] name AS 'identifier' [LANGUAGE JAVA |
/// SCALA | PYTHON] [USING JAR 'uri' [, JAR 'uri']…]`, as a
/// [`Statement::CreateFunction`] whose body is the identifier (the first
/// jar, if any, is its `using`: the planner refuses it by name).
fn parse_create_function(parser: &mut Parser, temporary: bool) -> Result<Statement, ParserError> {
    use sqlparser::ast::{CreateFunction, CreateFunctionBody, CreateFunctionUsing, Value};
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false)?;
    parser.expect_keyword_is(Keyword::AS)?;
    let span = parser.peek_token().span;
    let identifier = parser.parse_literal_string()?;
    let language = if parser.parse_keyword(Keyword::LANGUAGE) {
        Some(parser.parse_identifier()?)
    } else {
        None
    };
    let mut using = None;
    if parser.parse_keyword(Keyword::USING) {
        loop {
            parser.expect_keyword_is(Keyword::JAR)?;
            let uri = parser.parse_literal_string()?;
            using.get_or_insert(CreateFunctionUsing::Jar(uri));
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
    }
    Ok(Statement::CreateFunction(CreateFunction {
        or_alter: false,
        or_replace: false,
        temporary,
        if_not_exists,
        name,
        args: None,
        return_type: None,
        function_body: Some(CreateFunctionBody::AsBeforeOptions {
            body: Expr::Value(Value::SingleQuotedString(identifier).with_span(span)),
            link_symbol: None,
        }),
        behavior: None,
        called_on_null: None,
        parallel: None,
        security: None,
        set_params: vec![],
        using,
        language,
        determinism_specifier: None,
        options: None,
        remote_connection: None,
    }))
}

/// A `WATERMARK FOR column AS expr` clause of a `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WatermarkClause {
    /// The table it belongs to (as written, unquoted).
    pub table: String,
    /// The time column.
    pub column: String,
    /// The watermark expression, as written.
    pub expr: String,
    /// Where `WATERMARK` starts (line, column), for errors.
    pub line: u64,
    pub col: u64,
}

/// Removes every `WATERMARK FOR … AS …` clause from `text` (replacing it and
/// the comma before it by spaces, so positions do not move) and returns
/// them with the table each belongs to.
pub(crate) fn take_watermarks(text: &str) -> Result<(String, Vec<WatermarkClause>), SqlError> {
    let tokens = Tokenizer::new(&FlinkDialect, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::new(e.to_string()))?;
    let code: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let offsets = LineOffsets::new(text);
    let mut out = text.to_string();
    let mut clauses = Vec::new();
    let mut table: Option<String> = None;
    let mut i = 0;
    while i < code.len() {
        if is_keyword(code[i], Keyword::CREATE) {
            // CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name
            let mut j = i + 1;
            if is_keyword_at(&code, j, Keyword::TEMPORARY) {
                j += 1;
            }
            if is_keyword_at(&code, j, Keyword::TABLE) {
                j += 1;
                if is_keyword_at(&code, j, Keyword::IF) {
                    j += 3;
                }
                table = code.get(j).and_then(|t| word(&t.token));
            }
        }
        let starts = matches!(&code[i].token, Token::Word(w) if w.value.eq_ignore_ascii_case("WATERMARK"))
            && is_keyword_at(&code, i + 1, Keyword::FOR)
            && i > 0
            && code[i - 1].token == Token::Comma;
        if !starts {
            i += 1;
            continue;
        }
        let Some(table) = table.clone() else {
            return Err(at(
                code[i].span.start.line,
                code[i].span.start.column,
                "WATERMARK FOR belongs in a CREATE TABLE column list",
            ));
        };
        let column = code
            .get(i + 2)
            .and_then(|t| word(&t.token))
            .ok_or_else(|| {
                at(
                    code[i].span.start.line,
                    code[i].span.start.column,
                    "WATERMARK FOR needs a column: WATERMARK FOR ts AS ts - INTERVAL '5' SECOND",
                )
            })?;
        if !is_keyword_at(&code, i + 3, Keyword::AS) {
            return Err(at(
                code[i].span.start.line,
                code[i].span.start.column,
                "WATERMARK FOR needs AS and an expression: WATERMARK FOR ts AS ts - INTERVAL '5' SECOND",
            ));
        }
        // the expression runs to the `,` or `)` that closes it
        let mut j = i + 4;
        let mut depth = 0i32;
        while j < code.len() {
            match code[j].token {
                Token::LParen => depth += 1,
                Token::RParen if depth == 0 => break,
                Token::RParen => depth -= 1,
                Token::Comma if depth == 0 => break,
                _ => {}
            }
            j += 1;
        }
        if j == i + 4 || j == code.len() {
            return Err(at(
                code[i].span.start.line,
                code[i].span.start.column,
                "WATERMARK FOR … AS needs an expression before the column list closes",
            ));
        }
        let from = offsets.at(code[i - 1].span.start.line, code[i - 1].span.start.column);
        let expr_from = offsets.at(code[i + 4].span.start.line, code[i + 4].span.start.column);
        let to = offsets.at(code[j - 1].span.end.line, code[j - 1].span.end.column);
        clauses.push(WatermarkClause {
            table,
            column,
            expr: text[expr_from..to].to_string(),
            line: code[i].span.start.line,
            col: code[i].span.start.column,
        });
        let blank: String = text[from..to]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        // spaces are one byte: keep the byte length where the text had wider characters
        let pad = (to - from).saturating_sub(blank.len());
        out.replace_range(from..to, &(blank + &" ".repeat(pad)));
        i = j;
    }
    Ok((out, clauses))
}

fn is_keyword(t: &TokenWithSpan, k: Keyword) -> bool {
    matches!(&t.token, Token::Word(w) if w.keyword == k)
}

fn is_keyword_at(code: &[&TokenWithSpan], i: usize, k: Keyword) -> bool {
    code.get(i).is_some_and(|t| is_keyword(t, k))
}

fn word(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) => Some(w.value.clone()),
        _ => None,
    }
}

/// Byte offsets of (line, column) positions (both from 1, columns in chars).
struct LineOffsets<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineOffsets<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineOffsets { text, starts }
    }

    fn at(&self, line: u64, column: u64) -> usize {
        let start = self.starts[(line.max(1) - 1) as usize];
        self.text[start..]
            .char_indices()
            .nth((column.max(1) - 1) as usize)
            .map_or(self.text.len(), |(i, _)| start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_are_lifted_out_and_positions_kept() {
        let sql = "CREATE TABLE bids (\n  auction BIGINT,\n  ts BIGINT,\n  WATERMARK FOR ts AS ts - INTERVAL '4' SECOND\n) WITH ('connector' = 'parquet');\nSELECT nope FROM bids";
        let (text, clauses) = take_watermarks(sql).unwrap();
        assert_eq!(text.len(), sql.len());
        assert_eq!(text.lines().count(), sql.lines().count());
        assert!(!text.contains("WATERMARK"));
        assert_eq!(
            clauses,
            vec![WatermarkClause {
                table: "bids".into(),
                column: "ts".into(),
                expr: "ts - INTERVAL '4' SECOND".into(),
                line: 4,
                col: 3,
            }]
        );
        // the rest parses, and its positions are the original ones
        let parsed = Parser::parse_sql(&FlinkDialect, &text).unwrap();
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn a_watermark_outside_a_table_or_without_an_expression_is_refused() {
        let e = take_watermarks("SELECT a, WATERMARK FOR ts AS ts FROM t").unwrap_err();
        assert!(e.to_string().contains("line 1, column 11"), "{e}");
        let e = take_watermarks("CREATE TABLE t (ts BIGINT, WATERMARK FOR ts)").unwrap_err();
        assert!(e.to_string().contains("needs AS"), "{e}");
    }

    #[test]
    fn table_arguments_of_window_functions_parse() {
        let sql = "SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))";
        assert!(Parser::parse_sql(&FlinkDialect, sql).is_ok());
        let sql = "SELECT * FROM TABLE(SESSION(TABLE bids PARTITION BY (a, b), DESCRIPTOR(ts), INTERVAL '1' MINUTE))";
        let parsed = Parser::parse_sql(&FlinkDialect, sql).unwrap();
        assert!(
            parsed[0]
                .to_string()
                .contains("__table__.bids.__partition_by__.a.b"),
            "{}",
            parsed[0]
        );
    }
}
