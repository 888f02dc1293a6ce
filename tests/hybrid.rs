//! The hybrid source: history from Parquet up to a hand-off time T, then a
//! live connector from T. The same windowed job over (history < T, then
//! live >= T) gives exactly the windows of the job over the whole history,
//! for any T, in every mode and at parallelism 1 and 3; and both equal a
//! brute-force oracle.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir::connectors::live::memory::MemoryConnector;
use weir::connectors::live::LiveSourceSpec;
use weir::connectors::ParquetSourceSpec;
use weir::workloads::vehicles::{generate_obd, obd_schema, write_parquet_dir, DEMO_EPOCH_MS};
use weir::{Agg, ExecConfig, Job, TumblingWindow, WatermarkStrategy};

const SECONDS: usize = 40;
const VEHICLES: usize = 6;
const WINDOW_MS: i64 = 5_000;
/// Longer than the generator's worst delay (90 s): no row is late anywhere.
const DELAY: Duration = Duration::from_secs(100);

type Windows = BTreeMap<(i64, i64), (i64, i64)>;

struct Data {
    _dir: tempfile::TempDir,
    history: std::path::PathBuf,
    /// The same rows as JSON, in arrival order, in 3 partitions by vehicle.
    partitions: Arc<Vec<Vec<String>>>,
    /// Rows per (vehicle, window).
    counts: BTreeMap<(i64, i64), i64>,
}

fn data(seed: u64) -> Data {
    let batches = generate_obd(VEHICLES, SECONDS, seed, 97);
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    write_parquet_dir(&history, &batches, 2, 150).unwrap();
    let mut partitions = vec![Vec::new(); 3];
    let mut counts = BTreeMap::new();
    for b in &batches {
        let v = b.column(0).as_primitive::<Int64Type>();
        let t = b.column(1).as_primitive::<TimestampMillisecondType>();
        let s = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let (v, t, s) = (v.value(i), t.value(i), s.value(i));
            partitions[(v % 3) as usize].push(format!(
                r#"{{"vehicle_id": {v}, "event_time": {t}, "speed": {s}}}"#
            ));
            let start = t.div_euclid(WINDOW_MS) * WINDOW_MS;
            *counts.entry((v, start)).or_default() += 1;
        }
    }
    Data {
        _dir: dir,
        history,
        partitions: Arc::new(partitions),
        counts,
    }
}

/// The job: per vehicle, 5 s tumbling count and an order-free speed checksum.
fn run(stream: weir::Stream, job: &Job, config: &ExecConfig) -> Windows {
    let out = stream
        .assign_timestamps(
            "event_time",
            WatermarkStrategy::bounded_out_of_orderness(DELAY),
        )
        .unwrap()
        .with_column(
            "bits",
            weir::col("speed").cast(arrow_schema::DataType::Int64),
        )
        .unwrap()
        .key_by(["vehicle_id"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_millis(WINDOW_MS as u64)))
        .aggregate([Agg::count().alias("n"), Agg::sum("bits").alias("bits")])
        .unwrap()
        .collect()
        .unwrap();
    let metrics = job.run(config).unwrap();
    assert_eq!(metrics.late_rows, 0);
    common::window_table(&out.batches(), "vehicle_id", "n", "bits")
}

fn hybrid(d: &Data, handoff: i64, bounded: bool) -> (Job, weir::Stream) {
    let partitions = d.partitions.clone();
    let spec = LiveSourceSpec::new(
        "memory broker",
        obd_schema(),
        Arc::new(move |info| {
            Ok(Box::new(MemoryConnector::new(
                partitions.clone(),
                info,
                &BTreeMap::new(),
                bounded,
            )) as _)
        }),
        bounded,
    )
    .with_history(
        ParquetSourceSpec::try_new(std::slice::from_ref(&d.history)).unwrap(),
        "event_time",
        handoff,
    )
    .unwrap();
    let job = Job::new();
    let s = job.live_source(spec);
    (job, s)
}

/// The oracle with speeds as the job sees them: cast to Int64 (truncated).
fn oracle_truncated(d: &Data) -> Windows {
    let mut out = Windows::new();
    for part in d.partitions.iter() {
        for rec in part {
            let j: serde_json::Value = serde_json::from_str(rec).unwrap();
            let v = j["vehicle_id"].as_i64().unwrap();
            let t = j["event_time"].as_i64().unwrap();
            let s = j["speed"].as_f64().unwrap() as i64;
            let e = out
                .entry((v, t.div_euclid(WINDOW_MS) * WINDOW_MS))
                .or_default();
            e.0 += 1;
            e.1 = e.1.wrapping_add(s);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn hand_off_at_any_time_gives_the_whole_history_result(
        seed in 0u64..1000,
        handoff_s in 0i64..=(SECONDS as i64 + 2),
    ) {
        let d = data(seed);
        let want = oracle_truncated(&d);
        let counts: BTreeMap<(i64, i64), i64> = want.iter().map(|(k, v)| (*k, v.0)).collect();
        prop_assert_eq!(&counts, &d.counts);
        let handoff = DEMO_EPOCH_MS + handoff_s * 1000 + 137;
        let whole = {
            let job = Job::new();
            let s = job.parquet(&d.history).unwrap();
            run(s, &job, &ExecConfig::pipelined().with_parallelism(2))
        };
        prop_assert_eq!(&whole, &want, "whole history vs oracle");
        for (config, bounded) in [
            (ExecConfig::pipelined().with_parallelism(1), true),
            (ExecConfig::pipelined().with_parallelism(3), true),
            (ExecConfig::batch().with_parallelism(3), true),
        ] {
            let (job, s) = hybrid(&d, handoff, bounded);
            let got = run(s, &job, &config);
            prop_assert_eq!(&got, &want, "hybrid at {} in {:?} p={}", handoff_s, config.mode, config.parallelism);
        }
    }
}

/// An unbounded live part: the job keeps running after the history until
/// it is stopped; it then drains, and the result is the whole history's.
#[test]
fn an_unbounded_hybrid_runs_until_stopped_and_then_drains() {
    let d = data(5);
    let want = oracle_truncated(&d);
    let (job, s) = hybrid(&d, DEMO_EPOCH_MS + 20_000, false);
    let stop = weir::operator::StopSignal::new();
    let config = ExecConfig::pipelined()
        .with_parallelism(2)
        .with_stop(stop.clone());
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        stop.stop();
    });
    let started = std::time::Instant::now();
    let got = run(s, &job, &config);
    stopper.join().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "ran until stopped"
    );
    assert_eq!(got, want);
}

#[test]
fn batch_mode_refuses_an_unbounded_live_source() {
    let d = data(1);
    let (job, s) = hybrid(&d, DEMO_EPOCH_MS, false);
    s.sink_stdout();
    let err = job.run(&ExecConfig::batch()).unwrap_err().to_string();
    assert!(
        err.contains("unbounded") && err.contains("memory broker"),
        "{err}"
    );
}
