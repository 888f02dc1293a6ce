//! `weir bench --json`: every field for every mode, and the modes' outputs
//! compared (identical for an event-time job).

use std::process::Command;

#[test]
fn bench_json_has_every_field_for_every_mode_and_checks_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    let batches = weir::cli::demo::generate_obd(10, 60, 4, 500);
    weir::cli::demo::write_parquet_dir(&data, &batches, 2, 500).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/avg_speed.toml"
    ))
    .unwrap()
    .replace("data/obd", data.to_str().unwrap())
    .replace(
        "out/avg_speed.parquet",
        dir.path().join("out.parquet").to_str().unwrap(),
    );
    let job = dir.path().join("job.toml");
    std::fs::write(&job, example).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("bench")
        .arg(&job)
        .args([
            "--modes",
            "scan,batch,pipelined",
            "--runs",
            "1",
            "--json",
            "--plot",
        ])
        .arg(dir.path().join("bench.svg"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let modes = v.as_array().unwrap();
    assert_eq!(modes.len(), 3);
    for m in modes {
        for field in [
            "mode",
            "seconds",
            "rows_per_sec",
            "rows_in",
            "rows_out",
            "rows_out_per_sec",
            "latency_p50_ms",
            "latency_p99_ms",
            "peak_rss",
            "peak_memory",
            "spilled_bytes",
            "vs_scan",
            "identical",
            "difference",
        ] {
            assert!(m.get(field).is_some(), "{field} missing in {m}");
        }
        assert!(m["seconds"].as_f64().unwrap() > 0.0);
        assert_eq!(m["rows_in"], 10 * 60 * 3, "{m}");
    }
    assert_eq!(modes[2]["mode"], "pipelined");
    assert_eq!(modes[2]["identical"], true, "{}", modes[2]);
    // latency markers are a pipelined figure
    let p50 = modes[2]["latency_p50_ms"]
        .as_f64()
        .expect("pipelined latency");
    let p99 = modes[2]["latency_p99_ms"].as_f64().unwrap();
    assert!(0.0 <= p50 && p50 <= p99, "{}", modes[2]);
    assert!(
        modes[1]["latency_p50_ms"].is_null(),
        "batch has no latency: {}",
        modes[1]
    );
    assert!(modes[1]["rows_out"].as_u64().unwrap() > 500);
    let svg = std::fs::read_to_string(dir.path().join("bench.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains(">pipelined</text>"),
        "{svg}"
    );
    // the job's own sink path was not written: each mode wrote a copy elsewhere
    assert!(!dir.path().join("out.parquet").exists());
}
