//! Unit tests of `crates/weir-core/src/expr/parse.rs`.

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
        msg.starts_with(
            "unexpected `blob` at position 10, expected a type name (one of boolean, bool, int8,"
        ),
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
