//! Unit tests of `crates/weir-core/src/expr/eval.rs`.

use super::super::{col, lit};
use super::*;
use arrow_array::types::Int64Type;
use arrow_array::{
    Date32Array, Float32Array, Int32Array, Int8Array, LargeStringArray, StringViewArray,
    TimestampMillisecondArray, UInt32Array, UInt8Array,
};
use arrow_schema::{Fields, TimeUnit};

/// i32: [1, 2, null, 4], i64: [10, null, 30, 40], f64: [0.5, 1.5, null, -2.0],
/// s: ["a", "b", null, "a"], zero: [2, 5, 0, 4], nz: [2, null(0 underneath), 5, 4]
fn batch() -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "i32",
            Arc::new(Int32Array::from(vec![Some(1), Some(2), None, Some(4)])) as ArrayRef,
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![Some(10), None, Some(30), Some(40)])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![
                Some(0.5),
                Some(1.5),
                None,
                Some(-2.0),
            ])),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("b"),
                None,
                Some("a"),
            ])),
        ),
        ("zero", Arc::new(Int64Array::from(vec![2, 5, 0, 4]))),
        (
            "nz",
            Arc::new(Int64Array::from(vec![Some(2), None, Some(5), Some(4)])),
        ),
    ])
    .expect("valid batch")
}

/// Evaluates `e`, checking the result's length and that `data_type`
/// predicted its type.
fn eval(e: &Expr, batch: &RecordBatch) -> ArrayRef {
    let out = e.evaluate(batch).unwrap_or_else(|err| panic!("{e}: {err}"));
    let predicted = e.data_type(batch.schema_ref()).expect("type-checks");
    assert_eq!(&predicted, out.data_type(), "data_type disagrees for {e}");
    assert_eq!(out.len(), batch.num_rows(), "length of {e}");
    out
}

fn i64s(a: &ArrayRef) -> Vec<Option<i64>> {
    a.as_primitive::<Int64Type>().iter().collect()
}

fn f64s(a: &ArrayRef) -> Vec<Option<f64>> {
    a.as_primitive::<arrow_array::types::Float64Type>()
        .iter()
        .collect()
}

fn bools(a: &ArrayRef) -> Vec<Option<bool>> {
    a.as_boolean().iter().collect()
}

/// The message of an `Error::Expr`, checking it names `expr`.
fn expr_error(result: Result<impl std::fmt::Debug>, expr: &str) -> String {
    match result {
        Err(Error::Expr { expr: e, message }) => {
            assert_eq!(e, expr);
            message
        }
        other => panic!("expected Error::Expr for {expr}, got {other:?}"),
    }
}

#[test]
fn integer_arithmetic_with_nulls() {
    let b = batch();
    let out = eval(&col("i32").add(col("i64")), &b);
    assert_eq!(out.data_type(), &DataType::Int64);
    assert_eq!(i64s(&out), vec![Some(11), None, None, Some(44)]);

    let out = eval(&col("i32").add(col("i32")), &b);
    assert_eq!(
        out.as_ref(),
        &Int32Array::from(vec![Some(2), Some(4), None, Some(8)])
    );

    let out = eval(&col("i64").sub(col("i32")), &b);
    assert_eq!(i64s(&out), vec![Some(9), None, None, Some(36)]);
    let out = eval(&col("i32").mul(lit(3)), &b);
    assert_eq!(i64s(&out), vec![Some(3), Some(6), None, Some(12)]);
    let out = eval(&lit(100).sub(col("i64")), &b);
    assert_eq!(i64s(&out), vec![Some(90), None, Some(70), Some(60)]);
}

#[test]
fn integer_division_truncates_and_mod_is_remainder() {
    let b = batch();
    assert_eq!(
        i64s(&eval(&col("i64").div(lit(4)), &b)),
        vec![Some(2), None, Some(7), Some(10)]
    );
    assert_eq!(
        i64s(&eval(&col("i64").modulo(lit(4)), &b)),
        vec![Some(2), None, Some(2), Some(0)]
    );
    assert_eq!(i64s(&eval(&lit(-7).div(lit(2)), &b)), vec![Some(-3); 4]);
    assert_eq!(i64s(&eval(&lit(-7).modulo(lit(2)), &b)), vec![Some(-1); 4]);
    // A null divisor slot holds 0 underneath; it must not count as a zero.
    assert_eq!(
        i64s(&eval(&col("i64").div(col("nz")), &b)),
        vec![Some(5), None, Some(6), Some(10)]
    );
}

#[test]
fn mixed_int_float_coerces_to_float64() {
    let b = batch();
    let out = eval(&col("i32").add(col("f64")), &b);
    assert_eq!(f64s(&out), vec![Some(1.5), Some(3.5), None, Some(2.0)]);
    let out = eval(&col("i64").div(lit(4.0)), &b);
    assert_eq!(f64s(&out), vec![Some(2.5), None, Some(7.5), Some(10.0)]);
    let out = eval(&col("f64").neg(), &b);
    assert_eq!(f64s(&out), vec![Some(-0.5), Some(-1.5), None, Some(2.0)]);
    let out = eval(&col("i32").neg(), &b);
    assert_eq!(
        out.as_ref(),
        &Int32Array::from(vec![Some(-1), Some(-2), None, Some(-4)])
    );
    // float division by zero follows IEEE 754
    let out = eval(&col("f64").div(lit(0.0)), &b);
    assert_eq!(
        f64s(&out),
        vec![
            Some(f64::INFINITY),
            Some(f64::INFINITY),
            None,
            Some(f64::NEG_INFINITY)
        ]
    );
}

#[test]
fn mixed_integer_widths() {
    let b = RecordBatch::try_from_iter([
        ("u8", Arc::new(UInt8Array::from(vec![200, 1])) as ArrayRef),
        ("i8", Arc::new(Int8Array::from(vec![-100, 1]))),
        ("u32", Arc::new(UInt32Array::from(vec![70000, 2]))),
        ("f32", Arc::new(Float32Array::from(vec![0.5, 2.0]))),
    ])
    .expect("valid batch");
    assert_eq!(
        i64s(&eval(&col("u8").add(col("i8")), &b)),
        vec![Some(100), Some(2)]
    );
    let out = eval(&col("u8").add(col("u32")), &b);
    assert_eq!(out.as_ref(), &UInt32Array::from(vec![70200, 3]));
    let out = eval(&col("f32").mul(col("f32")), &b);
    assert_eq!(out.as_ref(), &Float32Array::from(vec![0.25, 4.0]));
    assert_eq!(
        bools(&eval(&col("u8").gt(col("i8")), &b)),
        vec![Some(true), Some(false)]
    );
}

#[test]
fn comparisons_with_literals_on_either_side() {
    let b = batch();
    let want = vec![Some(false), None, Some(true), Some(true)];
    assert_eq!(bools(&eval(&col("i64").gt(lit(15)), &b)), want);
    assert_eq!(bools(&eval(&lit(15).lt(col("i64")), &b)), want);
    assert_eq!(
        bools(&eval(&lit(2.0).lt_eq(col("i32")), &b)),
        vec![Some(false), Some(true), None, Some(true)]
    );
    assert_eq!(
        bools(&eval(&col("i32").gt_eq(lit(2)), &b)),
        vec![Some(false), Some(true), None, Some(true)]
    );
    assert_eq!(
        bools(&eval(&col("i64").eq(lit(30)), &b)),
        vec![Some(false), None, Some(true), Some(false)]
    );
    assert_eq!(
        bools(&eval(&col("i64").not_eq(lit(30)), &b)),
        vec![Some(true), None, Some(false), Some(true)]
    );
    assert_eq!(
        bools(&eval(&col("f64").lt(col("i32")), &b)),
        vec![Some(true), Some(true), None, Some(true)]
    );
    assert_eq!(bools(&eval(&lit(1).lt(lit(2)), &b)), vec![Some(true); 4]);
}

#[test]
fn string_comparisons() {
    let b = batch();
    assert_eq!(
        bools(&eval(&col("s").eq(lit("a")), &b)),
        vec![Some(true), Some(false), None, Some(true)]
    );
    assert_eq!(
        bools(&eval(&lit("a").lt(col("s")), &b)),
        vec![Some(false), Some(true), None, Some(false)]
    );
    let b = RecordBatch::try_from_iter([
        (
            "large",
            Arc::new(LargeStringArray::from(vec!["x", "y"])) as ArrayRef,
        ),
        ("view", Arc::new(StringViewArray::from(vec!["x", "z"]))),
        ("plain", Arc::new(StringArray::from(vec!["x", "y"]))),
    ])
    .expect("valid batch");
    assert_eq!(
        bools(&eval(&col("large").eq(lit("y")), &b)),
        vec![Some(false), Some(true)]
    );
    assert_eq!(
        bools(&eval(&col("view").eq(col("large")), &b)),
        vec![Some(true), Some(false)]
    );
    assert_eq!(
        bools(&eval(&col("view").eq(col("view")), &b)),
        vec![Some(true), Some(true)]
    );
    assert_eq!(
        bools(&eval(&col("plain").not_eq(col("view")), &b)),
        vec![Some(false), Some(true)]
    );
}

#[test]
fn temporal_columns_compare_with_integers() {
    let b = RecordBatch::try_from_iter([
        (
            "ts",
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1000),
                Some(2000),
                None,
            ])) as ArrayRef,
        ),
        (
            "day",
            Arc::new(Date32Array::from(vec![
                Some(18000),
                Some(19000),
                Some(20000),
            ])),
        ),
    ])
    .expect("valid batch");
    assert_eq!(
        bools(&eval(&col("ts").gt(lit(1500)), &b)),
        vec![Some(false), Some(true), None]
    );
    assert_eq!(
        bools(&eval(&lit(1500).lt(col("ts")), &b)),
        vec![Some(false), Some(true), None]
    );
    assert_eq!(
        bools(&eval(&col("day").eq(lit(19000)), &b)),
        vec![Some(false), Some(true), Some(false)]
    );
    let e = col("ts").gt(lit("x"));
    assert!(expr_error(e.evaluate(&b), "(ts > 'x')").starts_with("cannot compare Timestamp"));
    let out = eval(&col("ts").eq(lit(1000)).cast(DataType::Int64), &b);
    assert_eq!(i64s(&out), vec![Some(1), Some(0), None]);
    let ts_type = DataType::Timestamp(TimeUnit::Millisecond, None);
    assert_eq!(
        eval(&lit(5).cast(ts_type.clone()), &b).data_type(),
        &ts_type
    );
}

fn kleene_batch() -> RecordBatch {
    let t = Some(true);
    let f = Some(false);
    RecordBatch::try_from_iter([
        (
            "a",
            Arc::new(BooleanArray::from(vec![t, t, t, f, f, f, None, None, None])) as ArrayRef,
        ),
        (
            "b",
            Arc::new(BooleanArray::from(vec![t, f, None, t, f, None, t, f, None])),
        ),
    ])
    .expect("valid batch")
}

#[test]
fn kleene_and_or_not() {
    let b = kleene_batch();
    let (t, f, n) = (Some(true), Some(false), None);
    assert_eq!(
        bools(&eval(&col("a").and(col("b")), &b)),
        vec![t, f, n, f, f, f, n, f, n]
    );
    assert_eq!(
        bools(&eval(&col("a").or(col("b")), &b)),
        vec![t, t, t, t, f, n, t, n, n]
    );
    assert_eq!(
        bools(&eval(&col("a").not(), &b)),
        vec![f, f, f, t, t, t, n, n, n]
    );
    assert_eq!(bools(&eval(&col("a").and(lit(false)), &b)), vec![f; 9]);
    assert_eq!(bools(&eval(&lit(true).or(col("b")), &b)), vec![t; 9]);
    assert_eq!(
        bools(&eval(&col("a").or(lit(ScalarValue::Null)), &b)),
        vec![t, t, t, n, n, n, n, n, n]
    );
    assert_eq!(
        bools(&eval(&lit(ScalarValue::Null).and(col("b")), &b)),
        vec![n, f, n, n, f, n, n, f, n]
    );
    assert_eq!(bools(&eval(&lit(ScalarValue::Null).not(), &b)), vec![n; 9]);
    assert_eq!(
        bools(&eval(&lit(true).and(lit(false).not()), &b)),
        vec![t; 9]
    );
}

#[test]
fn boolean_operators_reject_other_types() {
    let b = batch();
    let e = col("i64").and(lit(true));
    let msg = expr_error(e.evaluate(&b), "(i64 and true)");
    assert_eq!(msg, "`and` needs boolean operands, found Int64 on the left");
    let msg = expr_error(e.data_type(b.schema_ref()), "(i64 and true)");
    assert_eq!(msg, "`and` needs boolean operands, found Int64 on the left");
    let e = lit(true).or(col("s"));
    assert_eq!(
        expr_error(e.evaluate(&b), "(true or s)"),
        "`or` needs boolean operands, found Utf8 on the right"
    );
    let e = col("f64").not();
    assert_eq!(
        expr_error(e.evaluate(&b), "(not f64)"),
        "`not` needs boolean operands, found Float64"
    );
}

#[test]
fn is_null_and_is_not_null() {
    let b = batch();
    let (t, f) = (Some(true), Some(false));
    assert_eq!(bools(&eval(&col("i64").is_null(), &b)), vec![f, t, f, f]);
    assert_eq!(bools(&eval(&col("s").is_not_null(), &b)), vec![t, t, f, t]);
    assert_eq!(
        bools(&eval(&col("i32").add(col("i64")).is_null(), &b)),
        vec![f, t, t, f]
    );
    assert_eq!(
        bools(&eval(&lit(ScalarValue::Null).is_null(), &b)),
        vec![t; 4]
    );
    assert_eq!(bools(&eval(&lit(1).is_null(), &b)), vec![f; 4]);
    assert_eq!(bools(&eval(&lit(1).is_not_null(), &b)), vec![t; 4]);
}

#[test]
fn casts() {
    let b = batch();
    assert_eq!(
        i64s(&eval(&col("f64").cast(DataType::Int64), &b)),
        vec![Some(0), Some(1), None, Some(-2)]
    );
    let out = eval(&col("i32").cast(DataType::Utf8), &b);
    assert_eq!(
        out.as_ref(),
        &StringArray::from(vec![Some("1"), Some("2"), None, Some("4")])
    );
    assert_eq!(
        i64s(&eval(&lit("42").cast(DataType::Int64), &b)),
        vec![Some(42); 4]
    );
    let out = eval(&col("i64").cast(DataType::Float64).div(lit(4)), &b);
    assert_eq!(f64s(&out), vec![Some(2.5), None, Some(7.5), Some(10.0)]);

    let e = col("s").cast(DataType::Int64);
    let msg = expr_error(e.evaluate(&b), "cast(s as bigint)");
    assert!(msg.contains("'a'"), "{msg}");
    let e = col("i64").cast(DataType::Struct(Fields::empty()));
    let msg = expr_error(e.data_type(b.schema_ref()), &e.to_string());
    assert_eq!(msg, "cannot cast Int64 to Struct()");
    assert!(e.evaluate(&b).is_err());
}

#[test]
fn division_by_zero_is_an_error_naming_the_expression() {
    let b = batch();
    let e = col("i64").div(col("zero"));
    assert_eq!(
        expr_error(e.evaluate(&b), "(i64 / zero)"),
        "division by zero"
    );
    let e = col("i64").add(lit(1)).modulo(lit(0));
    assert_eq!(
        expr_error(e.evaluate(&b), "((i64 + 1) % 0)"),
        "division by zero"
    );
    let e = lit(1).div(lit(0)).add(col("i64"));
    assert_eq!(expr_error(e.evaluate(&b), "(1 / 0)"), "division by zero");
    let e = lit(i64::MAX).add(col("i64"));
    assert!(expr_error(e.evaluate(&b), &e.to_string()).starts_with("arithmetic overflow"));
}

#[test]
fn missing_column_names_the_available_ones() {
    let b = batch();
    let e = col("i64").add(col("nope"));
    for err in [
        e.evaluate(&b).map(|_| ()),
        e.data_type(b.schema_ref()).map(|_| ()),
    ] {
        match err {
            Err(Error::Column {
                column,
                context,
                message,
            }) => {
                assert_eq!(column, "nope");
                assert_eq!(context, "expression `(i64 + nope)`");
                assert_eq!(
                    message,
                    "not found; available columns: i32, i64, f64, s, zero, nz"
                );
            }
            other => panic!("expected a column error, got {other:?}"),
        }
    }
    let text = e.evaluate(&b).unwrap_err().to_string();
    assert_eq!(
        text,
        "column `nope` (expression `(i64 + nope)`): not found; available columns: i32, i64, f64, s, zero, nz"
    );
}

#[test]
fn type_errors_name_the_expression() {
    let b = batch();
    let e = col("s").add(lit(1));
    assert_eq!(
        expr_error(e.data_type(b.schema_ref()), "(s + 1)"),
        "cannot apply `+` to Utf8 and Int64: arithmetic needs integer or float operands"
    );
    assert!(e.evaluate(&b).is_err());
    let e = col("s").lt(col("i32"));
    assert_eq!(
        expr_error(e.evaluate(&b), "(s < i32)"),
        "cannot compare Utf8 with Int32 using `<`"
    );
    let e = col("s").neg();
    assert!(expr_error(e.evaluate(&b), "-s").starts_with("cannot negate Utf8"));
}

#[test]
fn null_literal_takes_the_other_sides_type() {
    let b = batch();
    let null = || lit(ScalarValue::Null);
    let out = eval(&col("i32").add(null()), &b);
    assert_eq!(out.data_type(), &DataType::Int32);
    assert_eq!(out.null_count(), 4);
    let out = eval(&null().mul(col("f64")), &b);
    assert_eq!(out.data_type(), &DataType::Float64);
    assert_eq!(out.null_count(), 4);
    assert_eq!(bools(&eval(&col("s").eq(null()), &b)), vec![None; 4]);
    assert_eq!(bools(&eval(&null().gt(col("i64")), &b)), vec![None; 4]);
    let out = eval(&null().add(null()), &b);
    assert_eq!(out.data_type(), &DataType::Null);
    assert_eq!(out.logical_null_count(), 4);
    assert_eq!(eval(&null().neg(), &b).data_type(), &DataType::Null);
}

#[test]
fn literal_only_expressions_fill_the_batch() {
    let b = batch();
    assert_eq!(i64s(&eval(&lit(1).add(lit(2)), &b)), vec![Some(3); 4]);
    let out = eval(&lit("x"), &b);
    assert_eq!(out.as_ref(), &StringArray::from(vec!["x"; 4]));
    assert_eq!(
        f64s(&eval(&lit(2).mul(lit(0.25)).neg(), &b)),
        vec![Some(-0.5); 4]
    );
    assert_eq!(
        bools(&eval(&lit(true).and(lit(ScalarValue::Null)), &b)),
        vec![None; 4]
    );
    let empty = b.slice(0, 0);
    assert_eq!(eval(&lit(7), &empty).len(), 0);
    assert_eq!(eval(&col("i64").add(lit(1)), &empty).len(), 0);
}

/// Every operator over a spread of operand types: wherever `data_type`
/// accepts an expression, `evaluate` returns exactly that type.
#[test]
fn data_type_agrees_with_evaluate_for_every_operator() {
    let b = batch();
    let kleene = kleene_batch();
    let operands = || {
        vec![
            col("i32"),
            col("i64"),
            col("f64"),
            col("s"),
            lit(3),
            lit(1.5),
            lit("a"),
            lit(true),
            lit(ScalarValue::Null),
        ]
    };
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
    let mut checked = 0;
    for op in ops {
        for l in operands() {
            for r in operands() {
                let e = Expr::Binary {
                    left: Box::new(l.clone()),
                    op,
                    right: Box::new(r),
                };
                match e.data_type(b.schema_ref()) {
                    Ok(t) => {
                        eval(&e, &b);
                        if t == DataType::Boolean {
                            eval(&e.not(), &b);
                        }
                        checked += 1;
                    }
                    Err(_) => assert!(
                        e.evaluate(&b).is_err(),
                        "{e} evaluated but does not type-check"
                    ),
                }
            }
        }
    }
    // 5 ops x 6x6 (i32 i64 f64 3 1.5 null) = 180; comparisons: 6 ops x
    // (5x5 numeric + 2x2 strings + bool=bool + 17 pairs with a null) = 282;
    // and/or: 2 ops x 2x2 (true, null) = 8.
    assert_eq!(checked, 180 + 282 + 8);
    for e in [
        col("a").and(col("b")),
        col("a").or(lit(false)),
        col("a").not(),
    ] {
        eval(&e, &kleene);
    }
    for e in operands() {
        let unaries = [
            e.clone().neg(),
            e.clone().not(),
            e.clone().is_null(),
            e.clone().is_not_null(),
        ];
        let casts = [
            DataType::Int64,
            DataType::Utf8,
            DataType::Float32,
            DataType::Boolean,
        ]
        .map(|t| e.clone().cast(t));
        for u in unaries.into_iter().chain(casts) {
            match u.evaluate(&b) {
                Ok(out) => assert_eq!(
                    &u.data_type(b.schema_ref()).expect("type-checks"),
                    out.data_type(),
                    "{u}"
                ),
                // only a value cast ('a' to int64) may fail at run time
                Err(_) => assert!(
                    u.data_type(b.schema_ref()).is_err() || matches!(u, Expr::Cast { .. }),
                    "{u}"
                ),
            }
        }
    }
}

#[test]
fn case_takes_the_first_true_branch_widens_numbers_and_treats_null_as_false() {
    let b = batch();
    // i32: [1, 2, null, 4]; f64: [0.5, 1.5, null, -2.0]
    let e = Expr::Case {
        branches: vec![
            (col("i32").gt(lit(3)), col("f64")),
            (col("i32").gt(lit(1)), lit(7)),
        ],
        otherwise: Some(Box::new(lit(-1))),
    };
    assert_eq!(e.data_type(b.schema_ref()).unwrap(), DataType::Float64);
    let out = e.evaluate(&b).unwrap();
    // row 2: i32 is null, both conditions null: the else
    assert_eq!(
        out.as_primitive::<arrow_array::types::Float64Type>(),
        &Float64Array::from(vec![-1.0, 7.0, -1.0, -2.0])
    );
    // conditions without nulls, and a literal condition
    let e = Expr::Case {
        branches: vec![
            (col("zero").gt(lit(2)), lit("big")),
            (lit(true), lit("small")),
        ],
        otherwise: None,
    };
    let out = e.evaluate(&b).unwrap();
    assert_eq!(
        out.as_string::<i32>(),
        &StringArray::from(vec!["small", "big", "small", "big"])
    );
    // no else: null where nothing holds
    let e = Expr::Case {
        branches: vec![(col("s").eq(lit("a")), col("i64"))],
        otherwise: None,
    };
    let out = e.evaluate(&b).unwrap();
    assert_eq!(
        out.as_primitive::<Int64Type>(),
        &Int64Array::from(vec![Some(10), None, None, Some(40)])
    );
    assert_eq!(e.to_string(), "(case when (s = 'a') then i64 end)");
    assert_eq!(e.columns(), vec!["s".to_string(), "i64".to_string()]);
    // values of unrelated types, and a condition that is not boolean, are refused
    let mixed = Expr::Case {
        branches: vec![(col("i32").gt(lit(1)), col("s"))],
        otherwise: Some(Box::new(lit(1))),
    };
    assert!(mixed
        .data_type(b.schema_ref())
        .unwrap_err()
        .to_string()
        .contains("different types"));
    let not_bool = Expr::Case {
        branches: vec![(col("i32"), lit(1))],
        otherwise: None,
    };
    assert!(not_bool.evaluate(&b).is_err());
}
