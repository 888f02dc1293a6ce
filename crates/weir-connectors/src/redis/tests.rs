//! Unit tests of `crates/weir-connectors/src/redis/mod.rs`.

use super::source::stream_replies;
use super::*;

#[test]
fn entry_ids_parse_order_and_step_back() {
    assert_eq!(EntryId::parse("5-3"), Some(EntryId(5, 3)));
    assert_eq!(EntryId::parse("5"), Some(EntryId(5, 0)));
    assert_eq!(EntryId::parse("x-1"), None);
    assert!(EntryId(5, 3) < EntryId(6, 0));
    assert_eq!(EntryId(6, 0).before(), EntryId(5, u64::MAX));
    assert_eq!(EntryId(6, 2).before(), EntryId(6, 1));
    assert_eq!(EntryId(6, 2).to_string(), "6-2");
}

#[test]
fn urls_are_shown_without_passwords() {
    assert_eq!(
        display_url("redis://:secret@10.0.0.1:6379/2"),
        "redis://10.0.0.1:6379/2"
    );
    assert_eq!(display_url("redis://h:1"), "redis://h:1");
}

#[test]
fn replies_parse_into_ids_and_fields() {
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    let reply = Value::Array(vec![Value::Array(vec![
        bulk("s"),
        Value::Array(vec![
            Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("data"), bulk("{}")]),
            ]),
            Value::Array(vec![bulk("1-1"), Value::Array(vec![bulk("x"), bulk("y")])]),
        ]),
    ])]);
    let streams = stream_replies(&reply).unwrap();
    assert_eq!(streams.len(), 1);
    let mut out = Vec::new();
    parse_entries(streams[0].1, "data", &mut out).unwrap();
    assert_eq!(
        out,
        vec![(EntryId(1, 0), Some(b"{}".to_vec())), (EntryId(1, 1), None)]
    );
}

#[test]
fn an_unreachable_server_is_an_error_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let err = RedisSourceConfig::new(&url, ["s"])
        .with_timeout(Duration::from_millis(300))
        .into_spec(Arc::new(arrow_schema::Schema::empty()))
        .err()
        .unwrap();
    assert!(err.to_string().contains(&url), "{err}");
}
