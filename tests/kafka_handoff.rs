//! The hybrid source over a real broker: history from Parquet before the
//! hand-off time T, then a (tansu) Kafka topic from T. For several T, at
//! parallelism 1 and 3, the windows equal those of the same job over the
//! whole history, which equal a brute-force oracle.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use common::brokers::Tansu;
use std::collections::BTreeMap;
use std::time::Duration;
use weir::connectors::kafka::{create_topic, KafkaSinkSpec, KafkaSourceConfig};
use weir::connectors::live::StartFrom;
use weir::connectors::ParquetSourceSpec;
use weir::workloads::vehicles::{generate_obd, obd_schema, write_parquet_dir, DEMO_EPOCH_MS};
use weir::{Agg, ExecConfig, Job, TumblingWindow, WatermarkStrategy};

const WINDOW_MS: i64 = 5_000;
/// Longer than the generator's worst delay (90 s): no row is late anywhere.
const DELAY: Duration = Duration::from_secs(100);

/// (vehicle, window start) -> (rows, sum of speed * 100).
type Windows = BTreeMap<(i64, i64), (i64, i64)>;

fn run(stream: weir::Stream, job: &Job, parallelism: usize) -> Windows {
    let out = stream
        .assign_timestamps(
            "event_time",
            WatermarkStrategy::bounded_out_of_orderness(DELAY),
        )
        .unwrap()
        .with_column(
            "c",
            weir::col("speed")
                .mul(weir::lit(100.0))
                .cast(arrow_schema::DataType::Int64),
        )
        .unwrap()
        .key_by(["vehicle_id"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_millis(WINDOW_MS as u64)))
        .aggregate([Agg::count().alias("n"), Agg::sum("c").alias("centi")])
        .unwrap()
        .collect()
        .unwrap();
    let m = job
        .run(&ExecConfig::pipelined().with_parallelism(parallelism))
        .unwrap();
    assert_eq!(m.late_rows, 0);
    common::window_table(&out.batches(), "vehicle_id", "n", "centi")
}

/// Writes `batches` to topic `obd` through the Kafka sink, keyed by
/// vehicle, record timestamps = event times.
fn produce_obd(brokers: &[String], batches: &[RecordBatch]) {
    let job = Job::new();
    job.from_batches(obd_schema(), vec![batches.to_vec()])
        .unwrap()
        .sink_kafka(
            KafkaSinkSpec::new(brokers.iter().cloned(), "obd")
                .with_key("vehicle_id")
                .with_timestamp_column("event_time"),
        )
        .unwrap();
    job.run(&ExecConfig::pipelined().with_parallelism(1))
        .unwrap();
}

#[test]
fn parquet_history_then_kafka_from_the_hand_off_equals_the_whole_history() {
    let Some(broker) = Tansu::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let brokers = broker.brokers();
    let batches = generate_obd(6, 40, 9, 113);
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    write_parquet_dir(&history, &batches, 2, 150).unwrap();
    // the broker holds the same rows, record timestamps = event times
    create_topic(&brokers, "obd", 3).unwrap();
    produce_obd(&brokers, &batches);

    // oracle: brute force over the generated rows
    let mut oracle = Windows::new();
    for b in &batches {
        let v = b.column(0).as_primitive::<Int64Type>();
        let t = b
            .column(1)
            .as_primitive::<arrow_array::types::TimestampMillisecondType>();
        let s = b
            .column(2)
            .as_primitive::<arrow_array::types::Float64Type>();
        for i in 0..b.num_rows() {
            let e = oracle
                .entry((v.value(i), t.value(i).div_euclid(WINDOW_MS) * WINDOW_MS))
                .or_default();
            e.0 += 1;
            e.1 += (s.value(i) * 100.0) as i64;
        }
    }
    let whole = {
        let job = Job::new();
        let s = job.parquet(&history).unwrap();
        run(s, &job, 2)
    };
    assert_eq!(whole, oracle, "whole history vs oracle");

    for handoff_ms in [0, 13_137, 27_500, 45_000] {
        let handoff = DEMO_EPOCH_MS + handoff_ms;
        for parallelism in [1, 3] {
            let spec = KafkaSourceConfig::new(brokers.clone(), "obd")
                .with_start(StartFrom::Timestamp(handoff))
                .with_bounded(true)
                .into_spec(obd_schema())
                .unwrap()
                .with_history(
                    ParquetSourceSpec::try_new(std::slice::from_ref(&history)).unwrap(),
                    "event_time",
                    handoff,
                )
                .unwrap();
            let job = Job::new();
            let s = job.live_source(spec);
            let got = run(s, &job, parallelism);
            assert_eq!(
                got, oracle,
                "hand-off at +{handoff_ms} ms, parallelism {parallelism}"
            );
        }
    }
}

/// The same hand-off from a job file through the CLI: `type = "kafka"`
/// with `history`, bounded, and a Kafka sink that the test reads back.
#[test]
fn a_job_file_hands_off_from_parquet_to_kafka_and_writes_to_kafka() {
    let Some(broker) = Tansu::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let brokers = broker.brokers();
    let batches = generate_obd(4, 30, 3, 97);
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    write_parquet_dir(&history, &batches, 1, 100).unwrap();
    create_topic(&brokers, "obd", 2).unwrap();
    create_topic(&brokers, "counts", 1).unwrap();
    produce_obd(&brokers, &batches);
    let total = batches.iter().map(|b| b.num_rows()).sum::<usize>() as i64;
    let handoff = DEMO_EPOCH_MS + 12_345;
    let text = format!(
        r#"
[source]
type = "kafka"
brokers = ["{b}"]
topic = "obd"
bounded = true
schema = ["vehicle_id: int64", "event_time: timestamp", "speed: float64"]
time_column = "event_time"
watermark_delay = "100s"
history = {{ path = "{h}", handoff = "{handoff}" }}

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
aggregates = [{{ fn = "count", as = "n" }}]

[sink]
type = "kafka"
brokers = ["{b}"]
topic = "counts"
key_column = "vehicle_id"
"#,
        b = brokers[0],
        h = history.display()
    );
    let path = dir.path().join("job.toml");
    std::fs::write(&path, text).unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run"])
        .arg(&path)
        .args(["--json", "--parallelism", "2"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let metrics: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    // every row once: the history's part plus the topic's part after the hand-off
    assert_eq!(metrics["late_rows"], 0);
    // the running count per vehicle, folded: the last value of each key
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for (_, _, value) in common::brokers::read_partition(&brokers, "counts", 0) {
        let v: serde_json::Value = serde_json::from_slice(&value).unwrap();
        let n = v["n"].as_i64().unwrap();
        let e = last.entry(v["vehicle_id"].as_i64().unwrap()).or_insert(0);
        *e = (*e).max(n);
    }
    assert_eq!(last.len(), 4);
    assert_eq!(last.values().sum::<i64>(), total, "{last:?}");
}
