//! Unit tests of `crates/weir-sql/src/text.rs`: the job file's expression
//! grammar, read by the SQL parser.

use super::*;
use arrow_schema::{DataType, TimeUnit};
use proptest::prelude::*;
use weir_core::expr::{col, lit, BinaryOp, ScalarValue};

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
    assert_eq!(
        parse("NOT x IS NOT NULL AnD y <> 2 Or z"),
        col("x")
            .is_not_null()
            .not()
            .and(col("y").not_eq(lit(2)))
            .or(col("z"))
    );
    assert_eq!(parse("not not a"), col("a").not().not());
}

#[test]
fn operators_and_their_spellings() {
    let cases = [
        ("a = 1", col("a").eq(lit(1))),
        ("a != 1", col("a").not_eq(lit(1))),
        ("a <> 1", col("a").not_eq(lit(1))),
        ("a<1", col("a").lt(lit(1))),
        ("a<=1", col("a").lt_eq(lit(1))),
        ("a>1", col("a").gt(lit(1))),
        ("a>=1", col("a").gt_eq(lit(1))),
        ("a-1", col("a").sub(lit(1))),
        ("a - -1", col("a").sub(lit(-1))),
        ("a % 2", col("a").modulo(lit(2))),
        ("mod(a, 2)", col("a").modulo(lit(2))),
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
    assert_eq!(parse("INTERVAL '5' SECOND"), lit(5_000));
    assert_eq!(parse("TIMESTAMP '1970-01-01 00:00:01.5'"), lit(1_500));
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
    assert_eq!(parse("cast(a as utf8)"), col("a").cast(DataType::Utf8));
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
    // SQL's TIMESTAMP(3) is weir's event time: milliseconds in an Int64
    assert_eq!(
        parse("cast(s as timestamp(3))"),
        col("s")
            .cast(DataType::Timestamp(TimeUnit::Millisecond, None))
            .cast(DataType::Int64)
    );
}

#[test]
fn what_the_job_file_gained() {
    let f = |name: &str| {
        weir_functions::FunctionRegistry::builtin()
            .get(name)
            .expect("a built-in")
            .clone()
    };
    assert_eq!(
        parse("a IN (1, 2)"),
        col("a").eq(lit(1)).or(col("a").eq(lit(2)))
    );
    assert_eq!(
        parse("a BETWEEN 1 AND 2"),
        lit(1).lt_eq(col("a")).and(col("a").lt_eq(lit(2)))
    );
    assert_eq!(parse("name LIKE 'a%'"), col("name").like(lit("a%")));
    assert_eq!(
        parse("upper(name) || '!'"),
        Expr::call(
            f("concat"),
            vec![Expr::call(f("upper"), vec![col("name")]), lit("!")]
        )
    );
    assert_eq!(
        parse("FLOOR(ts TO HOUR)"),
        Expr::call(f("date_trunc"), vec![lit("hour"), col("ts")])
    );
    assert_eq!(
        parse("EXTRACT(MINUTE FROM ts)"),
        Expr::call(f("minute"), vec![col("ts")])
    );
    assert_eq!(
        parse("SUBSTRING(s FROM 2 FOR 3)"),
        Expr::call(f("substring"), vec![col("s"), lit(2), lit(3)])
    );
    assert!(matches!(
        parse("CASE WHEN a > 1 THEN 'big' ELSE 'small' END"),
        Expr::Case { .. }
    ));
}

#[test]
fn error_positions() {
    let cases = [
        (
            "",
            "column 1: Expected: an expression, found the end of the input",
        ),
        ("1 + (2 *)", "column 9: Expected: an expression, found: )"),
        ("(a + 1", "column 7"),
        ("a b", "column 3"),
        ("a + 1)", "column 6"),
        ("'abc", "column 1: Unterminated string literal"),
        ("cast(a as int", "column 14"),
        ("a +\n  * b", "line 2, column 3"),
        (
            "t.a > 1",
            "`t.a`: an expression here reads one stream's columns",
        ),
        ("uper(a)", "unknown function uper() (did you mean upper()?)"),
        ("now() > ts", "now() depends on when the job runs"),
        (
            "sum(a) > 1",
            "the aggregate sum() belongs in a SELECT with GROUP BY",
        ),
        ("a LIKE 'x' ESCAPE '!'", "LIKE ANY or LIKE … ESCAPE"),
        ("CEIL(ts TO HOUR)", "CEIL(… TO unit)"),
    ];
    let mut wrong = Vec::new();
    for (text, want) in cases {
        let got = parse_error(text);
        if !got.contains(want) {
            wrong.push(format!("{text:?}: {got}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let msg = parse_error("cast(a as blob)");
    assert!(msg.contains("the type BLOB is not supported"), "{msg}");
}

#[test]
fn parsed_expressions_evaluate() {
    use arrow_array::{cast::AsArray, ArrayRef, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(7)]));
    let s: ArrayRef = Arc::new(StringArray::from(vec![Some("car-1"), Some("bus"), None]));
    let batch = RecordBatch::try_from_iter([("a", a), ("s", s)]).expect("valid batch");
    let out = parse("a * 2 + 1 > 5 or a is null")
        .evaluate(&batch)
        .expect("evaluates");
    let got: Vec<Option<bool>> = out.as_boolean().iter().collect();
    assert_eq!(got, vec![Some(false), Some(true), Some(true)]);
    let out = parse("CASE WHEN s LIKE 'car%' THEN upper(s) WHEN a IS NULL THEN 'none' END")
        .evaluate(&batch)
        .expect("evaluates");
    let got: Vec<Option<&str>> = out.as_string::<i32>().iter().collect();
    assert_eq!(got, vec![Some("CAR-1"), Some("none"), None]);
}

/// Every word the SQL parser reserves still reads back as a column.
#[test]
fn keyword_columns_round_trip() {
    let mut broken = Vec::new();
    for k in sqlparser::keywords::ALL_KEYWORDS {
        for name in [k.to_string(), k.to_ascii_lowercase()] {
            let e = col(name.as_str()).eq(lit(1));
            if parse_expr(&e.to_string()).ok() != Some(e) {
                broken.push(name);
            }
        }
    }
    assert!(broken.is_empty(), "print these quoted: {broken:?}");
}

#[test]
fn display_round_trips() {
    let f = |name: &str| {
        weir_functions::FunctionRegistry::builtin()
            .get(name)
            .expect("a built-in")
            .clone()
    };
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
            .add(col("OR")),
        col("a")
            .cast(DataType::Int32)
            .cast(DataType::Timestamp(TimeUnit::Nanosecond, None)),
        col("a").is_null().cast(DataType::Utf8).neg(),
        lit(ScalarValue::Null).not().lt_eq(lit(true)),
        col("a").sub(lit(1).neg()),
        Expr::call(f("substring"), vec![col("s"), lit(1), lit(2)]),
        Expr::Like {
            expr: Box::new(col("s")),
            pattern: Box::new(lit("a_%")),
            negated: true,
            case_insensitive: true,
        },
        Expr::Case {
            branches: vec![(col("a").gt(lit(1)), lit("x"))],
            otherwise: Some(Box::new(lit("y"))),
        },
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
        "[a-z' \"é\\\\%_-]{0,6}".prop_map(ScalarValue::Utf8),
    ]
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let names = [
        "a", "b_1", "my col", "and", "Null", "x\"y", "é", "9z", "year", "select",
    ];
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
    leaf.prop_recursive(5, 48, 3, move |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(ops.to_vec()),
                inner.clone()
            )
                .prop_map(|(l, op, r)| Expr::Binary {
                    left: Box::new(l),
                    op,
                    right: Box::new(r)
                }),
            inner.clone().prop_map(Expr::not),
            inner.clone().prop_map(Expr::neg),
            inner.clone().prop_map(Expr::is_null),
            inner.clone().prop_map(Expr::is_not_null),
            (inner.clone(), inner.clone(), any::<bool>(), any::<bool>()).prop_map(
                |(e, p, negated, case_insensitive)| Expr::Like {
                    expr: Box::new(e),
                    pattern: Box::new(p),
                    negated,
                    case_insensitive
                }
            ),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, v, o)| Expr::Case {
                branches: vec![(c, v)],
                otherwise: Some(Box::new(o))
            }),
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
