//! Unit tests of `crates/weir-connectors/src/live/decode.rs`.

use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType};
use arrow_schema::TimeUnit;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("v", DataType::Float64, true),
    ]))
}

fn rec(i: i64, s: &str) -> RawRecord {
    RawRecord {
        partition: 0,
        position: Position::Offset(i),
        payload: s.as_bytes().to_vec(),
    }
}

#[test]
fn good_records_take_the_fast_path_in_order() {
    let mut d = JsonDecoder::try_new(schema(), vec![0]).unwrap();
    let recs = [
        rec(0, r#"{"t": 5, "v": 1.5}"#),
        rec(1, r#"{"v": 2, "t": 7, "x": "ignored"}"#),
    ];
    let (b, bad) = d.decode(&recs).unwrap();
    assert!(bad.is_empty());
    let t: Vec<i64> = b
        .column(0)
        .as_primitive::<TimestampMillisecondType>()
        .values()
        .to_vec();
    assert_eq!(t, vec![5, 7]);
    let v: Vec<f64> = b.column(1).as_primitive::<Float64Type>().values().to_vec();
    assert_eq!(v, vec![1.5, 2.0]);
}

#[test]
fn malformed_records_become_dead_letters_with_reasons() {
    let mut d = JsonDecoder::try_new(schema(), vec![0]).unwrap();
    let recs = [
        rec(0, r#"{"t": 1, "v": 1}"#),
        rec(1, r#"{"t": 2, "v": "#),
        rec(2, r#"{"t": 3, "v": "fast"}"#),
        rec(3, r#"{"v": 4}"#),
        rec(4, r#"{"t": 5} {"t": 6}"#),
        rec(5, r#"{"t": 7, "v": 7}"#),
    ];
    let (b, bad) = d.decode(&recs).unwrap();
    let t: Vec<i64> = b
        .column(0)
        .as_primitive::<TimestampMillisecondType>()
        .values()
        .to_vec();
    assert_eq!(t, vec![1, 7]);
    let positions: Vec<String> = bad.iter().map(|l| l.position.to_string()).collect();
    assert_eq!(positions, vec!["1", "2", "3", "4"]);
    assert!(
        bad[1].reason.contains("fast") || bad[1].reason.to_lowercase().contains("parse"),
        "{}",
        bad[1].reason
    );
    assert!(bad[2].reason.contains("`t`"), "{}", bad[2].reason);
    assert!(
        bad[3].reason.contains("one JSON object"),
        "{}",
        bad[3].reason
    );
    // the decoder recovers: the next call is clean
    let (b, bad) = d.decode(&[rec(6, r#"{"t": 8}"#)]).unwrap();
    assert_eq!((b.num_rows(), bad.len()), (1, 0));
}

fn times(b: &RecordBatch) -> Vec<i64> {
    b.column(0)
        .as_primitive::<TimestampMillisecondType>()
        .values()
        .to_vec()
}

#[test]
fn event_times_out_of_range_are_refused_never_clamped() {
    let mut d = JsonDecoder::try_new(schema(), vec![0])
        .unwrap()
        .with_time_column(0);
    let recs = [
        rec(0, r#"{"t": 1000}"#),
        rec(1, r#"{"t": 100000000000000000000000}"#),
        rec(2, r#"{"t": -1e30}"#),
        rec(3, r#"{"t": 9223372036854775807}"#),
        rec(4, r#"{"t": 1700000000000000}"#),
        rec(5, r#"{"t": 253402300799999}"#),
        rec(6, r#"{"t": "1970-01-01T00:00:02Z"}"#),
    ];
    let (b, bad) = d.decode(&recs).unwrap();
    assert_eq!(times(&b), vec![1000, 253_402_300_799_999, 2000]);
    let positions: Vec<String> = bad.iter().map(|l| l.position.to_string()).collect();
    assert_eq!(positions, vec!["1", "2", "3", "4"]);
    for l in &bad {
        assert!(
            l.reason.contains("event time `t` out of range"),
            "{}",
            l.reason
        );
    }
    assert!(
        bad[3].reason.contains("1700000000000000 ms"),
        "{}",
        bad[3].reason
    );
    // seconds that overflow milliseconds
    let s = Arc::new(Schema::new(vec![Field::new(
        "t",
        DataType::Timestamp(TimeUnit::Second, None),
        true,
    )]));
    let mut d = JsonDecoder::try_new(s, vec![0])
        .unwrap()
        .with_time_column(0);
    let (b, bad) = d
        .decode(&[rec(0, r#"{"t": 10}"#), rec(1, r#"{"t": 9223372036854775}"#)])
        .unwrap();
    assert_eq!((b.num_rows(), bad.len()), (1, 1));
}

#[test]
fn non_finite_floats_read_as_strings_or_bare_tokens() {
    let mut d = JsonDecoder::try_new(schema(), vec![0]).unwrap();
    let recs = [
        rec(0, r#"{"t": 1, "v": "NaN"}"#),
        rec(1, r#"{"t": 2, "v": "Infinity"}"#),
        rec(2, r#"{"t": 3, "v": "-Infinity"}"#),
        rec(3, r#"{"t": 4, "v": NaN}"#),
        rec(4, r#"{"t": 5, "v": -Infinity}"#),
        rec(5, r#"{"t": 6, "v": null}"#),
    ];
    let (b, bad) = d.decode(&recs).unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    let v = b.column(1).as_primitive::<Float64Type>();
    assert!(v.value(0).is_nan() && v.value(3).is_nan());
    assert_eq!(v.value(1), f64::INFINITY);
    assert_eq!(v.value(2), f64::NEG_INFINITY);
    assert_eq!(v.value(4), f64::NEG_INFINITY);
    assert!(v.is_null(5));
}

#[test]
fn a_schema_column_given_twice_is_refused() {
    let mut d = JsonDecoder::try_new(schema(), vec![0]).unwrap();
    let recs = [
        rec(0, r#"{"t": 1, "v": 1, "v": 2}"#),
        rec(1, r#"{"t": 2, "x": 1, "x": 2}"#),
    ];
    let (b, bad) = d.decode(&recs).unwrap();
    assert_eq!(
        times(&b),
        vec![2],
        "a repeated field outside the schema is ignored"
    );
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].reason.contains("`v` is given more than once"),
        "{}",
        bad[0].reason
    );
    let dup = Arc::new(Schema::new(vec![
        Field::new("v", DataType::Int64, true),
        Field::new("v", DataType::Utf8, true),
    ]));
    let err = JsonDecoder::try_new(dup, vec![]).unwrap_err().to_string();
    assert!(err.contains("`v`") && err.contains("unique"), "{err}");
}

#[test]
fn dead_letter_rows_name_source_partition_and_position() {
    let l = DeadLetter {
        partition: 1,
        position: Position::Id("5-0".into()),
        reason: "bad".into(),
        record: "{".into(),
    };
    let b = dead_letter_batch("redis", &["a".into(), "b".into()], &[l]).unwrap();
    assert_eq!(b.column(1).as_string::<i32>().value(0), "b");
    assert_eq!(b.column(2).as_string::<i32>().value(0), "5-0");
}
