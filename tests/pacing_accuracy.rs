//! Real-time pacing accuracy (a measurement, not a test of speed): how late
//! rows leave a paced source compared with their schedule. Run with
//! `cargo test --release --test pacing_accuracy -- --ignored --nocapture`.
//!
//! The one always-run check: a paced generator never emits a row before its
//! time is due, and emits all of them.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use std::sync::{Arc, Mutex};
use weir::connectors::replay::ReplaySpeed;
use weir::workloads::generators::{GeneratorKind, GeneratorSpec};
use weir::{ExecConfig, Job};

/// Runs a vehicle generator at `speed` for `events` rows; returns, per row,
/// how many ms after its due time it passed the first operator.
fn lags(speed: f64, events: u64) -> Vec<f64> {
    let start = weir::operator::now_ms() + 200;
    let mut spec = GeneratorSpec::new(GeneratorKind::Vehicles { vehicles: 50 });
    spec.events = Some(events);
    spec.speed = ReplaySpeed::Times(speed);
    spec.start_ms = Some(start);
    spec.max_delay_ms = 0;
    let seen: Arc<Mutex<Vec<f64>>> = Arc::default();
    let s2 = seen.clone();
    let job = Job::new();
    let origin: Arc<Mutex<Option<i64>>> = Arc::default();
    spec.stream(&job)
        .unwrap()
        .map_batches(move |b| {
            let now = weir::operator::now_ms();
            let t = b
                .column_by_name("event_time")
                .unwrap()
                .as_primitive::<TimestampMillisecondType>();
            // the pacer's clock starts at the first batch: align on it
            let first = *origin.lock().unwrap().get_or_insert(now);
            let mut seen = s2.lock().unwrap();
            for &t in t.values() {
                let due = first as f64 + (t - start) as f64 / speed;
                seen.push(now as f64 - due);
            }
            Ok(b)
        })
        .collect()
        .unwrap();
    job.run(&ExecConfig::pipelined().with_parallelism(1))
        .unwrap();
    let v = seen.lock().unwrap().clone();
    v
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn a_paced_generator_emits_every_row_and_none_early() {
    // 50 vehicles x 3 readings/s at 20x: 1500 rows in about 0.5 s
    let mut v = lags(20.0, 1500);
    assert_eq!(v.len(), 1500);
    let min = percentile(&mut v, 0.0);
    // a slice is due at its latest row: its earlier rows leave up to one
    // slice (20 ms of wall time) before their own time
    assert!(min >= -22.0, "a row left {min} ms before its due time");
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn pacing_accuracy_report() {
    for speed in [1.0, 10.0, 100.0] {
        let events = (150.0 * 3.0 * speed) as u64; // about 3 s of wall time
        let mut v = lags(speed, events);
        println!(
            "speed {speed}x: {} rows, lag vs schedule p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            v.len(),
            percentile(&mut v, 0.5),
            percentile(&mut v, 0.99),
            percentile(&mut v, 1.0)
        );
    }
}
