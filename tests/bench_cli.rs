//! `weir bench --json`: every field for every mode, and the modes' outputs
//! compared (identical for an event-time job).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `weir bench` with the arguments `args` adds, expects success and
/// returns the JSON it printed.
fn bench_json(args: impl FnOnce(&mut Command) -> &mut Command) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("bench");
    let out = args(&mut cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `examples/avg_speed.toml` over generated OBD data under `dir`, its sink
/// moved to `dir/out.parquet`: the job file and the data directory.
fn avg_speed_job(dir: &Path, vehicles: usize, seconds: usize) -> (PathBuf, PathBuf) {
    let data = dir.join("obd");
    let batches = weir::workloads::vehicles::generate_obd(vehicles, seconds, 4, 500);
    weir::workloads::vehicles::write_parquet_dir(&data, &batches, 2, 500).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/avg_speed.toml"
    ))
    .unwrap()
    .replace("../data/obd", data.to_str().unwrap())
    .replace(
        "../out/avg_speed.parquet",
        dir.join("out.parquet").to_str().unwrap(),
    );
    let job = dir.join("job.toml");
    std::fs::write(&job, example).unwrap();
    (job, data)
}

#[test]
fn bench_json_has_every_field_for_every_mode_and_checks_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let (job, _) = avg_speed_job(dir.path(), 10, 60);
    let svg = dir.path().join("bench.svg");
    let v = bench_json(|c| {
        c.arg(&job)
            .args(["--modes", "scan,batch,pipelined", "--runs", "1"])
            .args(["--parallelism", "2", "--json", "--plot"])
            .arg(&svg)
    });
    let modes = v.as_array().unwrap();
    assert_eq!(modes.len(), 3);
    for m in modes {
        for field in [
            "mode",
            "parallelism",
            "seconds",
            "rows_per_sec",
            "rows_per_sec_per_core",
            "checkpoints",
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
        assert!(
            m["checkpoints"].is_null(),
            "no checkpoints were asked for: {m}"
        );
        let per_core = m["rows_per_sec"].as_f64().unwrap() / m["parallelism"].as_f64().unwrap();
        assert!((m["rows_per_sec_per_core"].as_f64().unwrap() - per_core).abs() < 1e-6);
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
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains(">pipelined</text>"),
        "{svg}"
    );
    // the job's own sink path was not written: each mode wrote a copy elsewhere
    assert!(!dir.path().join("out.parquet").exists());
}

#[test]
fn bench_runs_a_nexmark_query_with_checkpoints_and_every_mode_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events");
    let v = bench_json(|c| {
        c.args(["nexmark:q7", "--events", "30000", "--runs", "1"])
            .args([
                "--parallelism",
                "2",
                "--checkpoint-interval",
                "20ms",
                "--json",
            ])
            .arg("--data")
            .arg(&data)
    });
    let modes = v.as_array().unwrap();
    let names: Vec<&str> = modes.iter().map(|m| m["mode"].as_str().unwrap()).collect();
    assert_eq!(names, ["scan", "batch", "pipelined"]);
    // the oracle: q7 reads the bids only, 46 of every 50 events
    let events = weir::workloads::nexmark::generate(&weir::workloads::nexmark::NexmarkConfig {
        events: 30_000,
        splits: 2,
        ..Default::default()
    });
    let bids: usize = events.bids.iter().flatten().map(|b| b.num_rows()).sum();
    assert_eq!(bids, 27_600);
    assert_eq!(modes[0]["rows_in"], 30_000, "scan reads all three streams");
    for m in &modes[1..] {
        assert_eq!(m["rows_in"], bids as u64, "{m}");
        assert!(m["rows_out"].as_u64().unwrap() > 0, "{m}");
        assert_eq!(m["parallelism"], 2);
    }
    assert_eq!(modes[1]["rows_out"], modes[2]["rows_out"]);
    assert_eq!(modes[2]["identical"], true, "{}", modes[2]);
    // checkpoint figures for the pipelined run only
    assert!(modes[1]["checkpoints"].is_null());
    let c = &modes[2]["checkpoints"];
    assert!(c["completed"].as_u64().unwrap() >= 1, "{c}");
    assert!(c["max_bytes"].as_u64().unwrap() > 0, "{c}");
    assert!(c["max_duration_ms"].as_f64().unwrap() >= c["median_duration_ms"].as_f64().unwrap());
    // the events were written once and are reused by a second bench
    assert!(data.join("nexmark.json").exists());
    let again = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["bench", "nexmark:q2", "--events", "30000", "--runs", "1"])
        .args(["--modes", "batch", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(again.status.success());
    // a different event count is refused rather than mixed with these
    let other = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["bench", "nexmark:q2", "--events", "999", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(err.contains("holds 30000 events, not 999"), "{err}");
}

/// A stand-in for the weir binary that runs the real one, but gives the
/// pipelined run another job: the bench must say the results differ.
#[test]
fn bench_flags_a_mode_whose_result_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (job, data) = avg_speed_job(dir.path(), 6, 40);
    let example = std::fs::read_to_string(&job).unwrap();
    // the same job with one vehicle filtered out
    let other = dir.path().join("other.toml");
    assert!(example.contains("[[steps]]"), "the example has steps");
    let filtered = example.replacen(
        "[[steps]]",
        "[[steps]]\nfilter = \"vehicle_id != 3\"\n\n[[steps]]",
        1,
    );
    std::fs::write(&other, filtered).unwrap();
    let script = dir.path().join("weir-wrapper.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nargs=\"$*\"\ncase \"$args\" in\n  *pipelined*) shift 2; exec {weir} run {other} \"$@\";;\n  *) exec {weir} \"$@\";;\nesac\n",
            weir = env!("CARGO_BIN_EXE_weir"),
            other = other.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = weir::bench::BenchTarget::Job {
        path: job.clone(),
        inputs: vec![data.clone()],
        sink_path: None,
    };
    let options = weir::bench::BenchOptions {
        modes: vec!["batch".into(), "pipelined".into()],
        runs: 1,
        parallelism: 2,
        memory: "64MiB".into(),
        checkpoint_interval: None,
        speed: None,
        http: None,
        report: None,
    };
    let results = weir::bench::bench(&script, &target, &options).unwrap();
    assert_eq!(results[0].identical, None, "the reference mode");
    assert_eq!(results[1].identical, Some(false), "{:?}", results[1]);
    assert!(results[1].rows_out < results[0].rows_out);
    assert!(results[1].difference.is_some());
    let table = weir::bench::table(&results);
    assert!(
        table.contains("results identical in all modes: NO"),
        "{table}"
    );
}

#[test]
fn bench_report_puts_the_modes_first_runs_side_by_side_and_never_replaces_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let (job, data) = avg_speed_job(dir.path(), 20, 60);
    let report = dir.path().join("modes.html");
    let results = bench_json(|c| {
        c.arg(&job)
            .args(["--runs", "2", "--modes", "scan,batch,pipelined", "--json"])
            .args(["--parallelism", "2", "--report"])
            .arg(&report)
    });
    let page = std::fs::read_to_string(&report).unwrap();
    let data_line = page
        .lines()
        .find_map(|l| l.strip_prefix("<script>window.WEIR_REPORT = "))
        .expect("the runs' data is inlined");
    let embedded: serde_json::Value =
        serde_json::from_str(data_line.trim_end_matches(";</script>")).unwrap();
    let runs = embedded["runs"].as_array().unwrap();
    // one per engine mode (a scan is no job run), each finished with its rows
    let modes: Vec<&str> = runs
        .iter()
        .map(|r| r["job"]["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["batch", "pipelined"]);
    for (run, result) in runs.iter().zip(&results.as_array().unwrap()[1..]) {
        assert_eq!(run["job"]["state"], "finished");
        assert_eq!(
            run["job"]["result"]["rows_out"], result["rows_out"],
            "{result}"
        );
    }
    // a report is an output: never the job file or its data
    for input in [job.clone(), data.join("part-00000.parquet")] {
        let before = std::fs::read(&input).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("bench")
            .arg(&job)
            .args(["--runs", "1", "--report"])
            .arg(&input)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("is an input of the job"),
            "{err}"
        );
        assert_eq!(std::fs::read(&input).unwrap(), before);
    }
}

/// A `.sql` job benches like a job file: `weir sql` per mode, each writing a
/// copy of its one result (never the script's own sink path), the modes'
/// results compared, and the rows those of its job-file twin.
#[test]
fn bench_runs_a_sql_script_and_its_modes_agree_with_the_job_file() {
    let dir = tempfile::tempdir().unwrap();
    let (job, data) = avg_speed_job(dir.path(), 10, 60);
    let script = dir.path().join("job.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
             WATERMARK FOR event_time AS event_time - INTERVAL '30' SECOND)\n  \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             CREATE TABLE out (vehicle_id BIGINT, window_start BIGINT, avg_speed DOUBLE)\n  \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO out SELECT vehicle_id, window_start, AVG(speed) FROM TABLE(TUMBLE(TABLE obd, \
             DESCRIPTOR(event_time), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, vehicle_id;",
            data.display(),
            dir.path().join("sql-out").display()
        ),
    )
    .unwrap();
    let sql = bench_json(|c| {
        c.arg(&script)
            .args(["--modes", "scan,batch,pipelined", "--runs", "1"])
            .args(["--parallelism", "2", "--json"])
    });
    let toml = bench_json(|c| {
        c.arg(&job)
            .args(["--modes", "batch", "--runs", "1"])
            .args(["--parallelism", "2", "--json"])
    });
    let sql = sql.as_array().unwrap();
    assert_eq!(sql.len(), 3);
    assert_eq!(sql[0]["mode"], "scan");
    assert_eq!(
        sql[0]["rows_in"],
        10 * 60 * 3,
        "scan read the script's table"
    );
    assert_eq!(sql[2]["identical"], true, "{}", sql[2]);
    for m in &sql[1..] {
        assert_eq!(m["rows_in"], 10 * 60 * 3, "{m}");
        assert_eq!(m["rows_out"], toml[0]["rows_out"], "{m}");
    }
    assert!(
        !dir.path().join("sql-out").exists(),
        "the script's sink was left alone"
    );

    let refused = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("bench")
        .arg(&script)
        .args(["--speed", "2x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("--speed"),
        "{err}"
    );
}
