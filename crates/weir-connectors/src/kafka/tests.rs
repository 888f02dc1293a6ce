//! Unit tests of `crates/weir-connectors/src/kafka/mod.rs`.

use super::sink::{key_texts, murmur2};
use super::*;
use crate::json_out::json_rows;

#[test]
fn murmur2_matches_kafka() {
    // values from Kafka's UtilsTest.testMurmur2
    let cases: [(&[u8], i32); 5] = [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58897971,
        ),
    ];
    for (data, want) in cases {
        assert_eq!(
            murmur2(data) as i32,
            want,
            "{:?}",
            std::str::from_utf8(data)
        );
    }
}

#[test]
fn rows_become_one_json_object_each() {
    let batch = RecordBatch::try_from_iter([
        (
            "k",
            Arc::new(arrow_array::Int64Array::from(vec![Some(1), None])) as _,
        ),
        (
            "s",
            Arc::new(arrow_array::StringArray::from(vec!["a\nb", "c"])) as _,
        ),
    ])
    .unwrap();
    let rows = json_rows(&batch, "test").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], br#"{"k":1,"s":"a\nb"}"#.to_vec());
    assert_eq!(key_texts(&batch, 0).unwrap(), vec![Some("1".into()), None]);
}

#[test]
fn an_unreachable_broker_is_an_error_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let err = KafkaSourceConfig::new([addr.as_str()], "orders")
        .with_timeout(Duration::from_millis(500))
        .into_spec(Arc::new(arrow_schema::Schema::empty()))
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(msg.contains(&addr) && msg.contains("orders"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_listed_earliest_offset_is_corrected_only_by_records_before_it() {
    // tansu listed a later batch's offset: the fetch at 0 found record 0
    assert_eq!(checked_earliest(1649, Ok(Some(0))), 0);
    // a probe finding records from the middle still moves the start back
    assert_eq!(checked_earliest(1649, Ok(Some(1200))), 1200);
    // a log that really starts later: the fetch at 0 is out of range
    assert_eq!(
        checked_earliest(1649, Err("offset out of range".into())),
        1649
    );
    // nothing found, or only records at or after the listed offset
    assert_eq!(checked_earliest(1649, Ok(None)), 1649);
    assert_eq!(checked_earliest(1649, Ok(Some(1700))), 1649);
}
