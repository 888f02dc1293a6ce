//! `weir bench --speed` and `weir nexmark --speed`: the pipelined runs
//! replay their Parquet input paced by event time (latency under a load
//! below the maximum), give the same rows as the unpaced batch run, and a
//! speed that cannot be honoured is refused with the option's name.

use std::process::Command;

#[test]
fn a_paced_nexmark_bench_lasts_the_event_time_span_over_the_factor_and_agrees() {
    let dir = tempfile::tempdir().unwrap();
    // 200,000 events at 10,000 per second of event time: 20 s; at 40x,
    // 0.5 s (less the first batch of each reader, which sets the origin)
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["bench", "nexmark:q1", "--events", "200000", "--runs", "1"])
        .args(["--modes", "batch,pipelined", "--parallelism", "2"])
        .args(["--speed", "40x", "--json", "--data"])
        .arg(dir.path().join("events"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let modes = v.as_array().unwrap();
    let (batch, pipelined) = (&modes[0], &modes[1]);
    assert_eq!(pipelined["mode"], "pipelined");
    let paced = pipelined["seconds"].as_f64().unwrap();
    assert!(
        paced >= 0.4,
        "paced run took {paced} s, well under 20 s / 40"
    );
    // q1 maps every bid (46 of every 50 events)
    assert_eq!(batch["rows_out"], 184_000);
    assert_eq!(pipelined["rows_out"], 184_000);
    assert_eq!(pipelined["identical"], true, "{pipelined}");
    assert!(
        pipelined["latency_p99_ms"].as_f64().is_some(),
        "{pipelined}"
    );
}

#[test]
fn nexmark_speed_needs_parquet_to_replay() {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["nexmark", "q1", "--events", "1000", "--speed", "2x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--speed") && err.contains("--data"), "{err}");
}

#[test]
fn bench_refuses_a_speed_it_cannot_parse_before_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["bench", "nexmark:q1", "--events", "1000", "--speed", "soon"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`soon` is not a speed"), "{err}");
    assert!(!data.exists(), "nothing was written for a refused bench");
}
