//! Decoding live JSON records: weir's `JsonDecoder` (the json_scan pre-pass
//! for repeated fields and bare NaN/Infinity, arrow-json, the required-column
//! and event-time range checks) against arrow-json alone on the same
//! records, and the pre-pass by itself. 100K records of the OBD shape.
//!
//! `cargo bench --bench json_decode`

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use divan::counter::ItemsCount;
use std::sync::{Arc, OnceLock};
use weir::connectors::live::{json_scan, JsonDecoder, Position, RawRecord};

fn main() {
    divan::main();
}

const RECORDS: usize = 100_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("vehicle_id", DataType::Int64, true),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("speed", DataType::Float64, true),
    ]))
}

fn records() -> &'static Vec<RawRecord> {
    static DATA: OnceLock<Vec<RawRecord>> = OnceLock::new();
    DATA.get_or_init(|| {
        (0..RECORDS)
            .map(|i| RawRecord {
                partition: 0,
                position: Position::Offset(i as i64),
                payload: format!(
                    r#"{{"vehicle_id":{},"event_time":{},"speed":{:.2}}}"#,
                    i % 1000,
                    1_700_000_000_000i64 + i as i64 * 37,
                    (i % 1300) as f64 / 10.0
                )
                .into_bytes(),
            })
            .collect()
    })
}

/// weir's decoder, in the chunks a live source decodes (8192 records).
#[divan::bench(sample_count = 10)]
fn weir_decoder(bencher: divan::Bencher) {
    let recs = records();
    bencher.counter(ItemsCount::new(RECORDS)).bench(|| {
        let mut d = JsonDecoder::try_new(schema(), vec![1])
            .expect("decoder")
            .with_time_column(1)
            .with_max_record_bytes(1 << 20);
        let mut rows = 0;
        for chunk in recs.chunks(8192) {
            rows += d.decode(chunk).expect("decode").0.num_rows();
        }
        assert_eq!(rows, RECORDS);
    });
}

/// arrow-json alone: the same records, newline-joined per 8192.
#[divan::bench(sample_count = 10)]
fn arrow_json_alone(bencher: divan::Bencher) {
    let recs = records();
    bencher.counter(ItemsCount::new(RECORDS)).bench(|| {
        let mut d = arrow_json::ReaderBuilder::new(schema())
            .with_batch_size(8192)
            .build_decoder()
            .expect("decoder");
        let mut rows = 0;
        let mut buf = Vec::new();
        for chunk in recs.chunks(8192) {
            buf.clear();
            for r in chunk {
                buf.extend_from_slice(&r.payload);
                buf.push(b'\n');
            }
            d.decode(&buf).expect("decode");
            rows += d.flush().expect("flush").map_or(0, |b| b.num_rows());
        }
        assert_eq!(rows, RECORDS);
    });
}

/// The pre-pass alone.
#[divan::bench(sample_count = 10)]
fn json_scan_alone(bencher: divan::Bencher) {
    let recs = records();
    bencher.counter(ItemsCount::new(RECORDS)).bench(|| {
        recs.iter()
            .filter(|r| json_scan::scan(&r.payload) == json_scan::Scanned::Clean)
            .count()
    });
}
