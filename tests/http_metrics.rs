//! `weir run --http`: while a job runs, `/metrics` is Prometheus text whose
//! counters move, `/api/v1/job` fits its documented JSON Schema, and once
//! it ends the served figures equal the run's own metrics (`--json`); a
//! sink that cannot keep up shows as back-pressured time on its upstream;
//! addresses that are not loopback must be written out, and the flags'
//! mistakes are refused before anything is written.

mod common;

use common::watch::{get, parse_prometheus, sample, schema_violations, sum, window_job, Watched};
use std::process::{Command, Stdio};
use std::time::Duration;

fn data(dir: &std::path::Path) -> std::path::PathBuf {
    let data = dir.join("obd");
    // 100 vehicles, 3 readings/s, 600 s of event time: 180,000 rows
    common::generate_obd(&data, 100, 600, 2);
    data
}

/// A `[sink]` table writing Parquet to `out`.
fn parquet_sink(out: &std::path::Path) -> String {
    format!(
        "[sink]\ntype = \"parquet\"\npath = {:?}",
        out.display().to_string()
    )
}

#[test]
fn a_running_job_serves_moving_prometheus_counters_and_ends_with_its_own_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("out");
    // paced at 100x: the 600 s of event time take about 6 s
    let job = window_job(dir.path(), &data, "speed = \"100x\"", &parquet_sink(&out));
    let checkpoints = dir.path().join("checkpoints");
    let w = Watched::start(
        &job,
        &[
            "--parallelism",
            "2",
            "--json",
            "--linger",
            "30s",
            "--checkpoint-dir",
            checkpoints.to_str().unwrap(),
            "--checkpoint-interval",
            "500ms",
        ],
        Stdio::piped(),
    );

    // while it runs: valid text, every operator instance present, counters move
    let first = w.wait_for("past its first rows", |j| {
        j["state"] == "running" && j["operators"][2]["rows_in"].as_u64().unwrap_or(0) > 0
    });
    let (status, text) = w.get("/metrics");
    assert!(status.contains("200"), "{status}");
    let before = parse_prometheus(&text);
    for op in ["parquet_source", "window", "parquet_sink"] {
        for s in ["0", "1"] {
            let labels = [("operator", op), ("subtask", s)];
            for name in [
                "weir_operator_rows_in_total",
                "weir_operator_busy_seconds_total",
            ] {
                assert!(
                    sample(&before, name, &labels).is_some(),
                    "{name}{labels:?}:\n{text}"
                );
            }
        }
    }
    let budget = sample(&before, "weir_memory_budget_bytes", &[]).unwrap();
    assert_eq!(budget, 512.0 * 1024.0 * 1024.0, "the default --memory");
    let info = before.iter().find(|s| s.name == "weir_job_info").unwrap();
    assert_eq!(info.labels["title"], "watched");
    assert_eq!(info.labels["mode"], "pipelined");
    assert!(first["total_rows"] == 180_000, "{first}");

    std::thread::sleep(Duration::from_millis(1500));
    let after = parse_prometheus(&w.get("/metrics").1);
    let sink_rows = |s: &[common::watch::PromSample]| {
        sum(
            s,
            "weir_operator_rows_in_total",
            &[("operator", "parquet_sink")],
        )
    };
    assert!(
        sink_rows(&after) > sink_rows(&before),
        "the sink's rows moved: {} then {}",
        sink_rows(&before),
        sink_rows(&after)
    );
    for (a, b) in before
        .iter()
        .filter(|s| s.name.ends_with("_total"))
        .map(|b| {
            let a = after
                .iter()
                .find(|a| a.name == b.name && a.labels == b.labels);
            (a.map(|a| a.value), b)
        })
    {
        assert!(
            a.is_some_and(|a| a >= b.value),
            "a counter went back: {b:?} then {a:?}"
        );
    }

    // the documented schema, while running
    let schema: serde_json::Value = w.json("/api/v1/schema/job");
    let running = w.json("/api/v1/job");
    assert_eq!(schema_violations(&schema, &running), Vec::<String>::new());
    let history = w.json("/api/v1/metrics");
    assert_eq!(
        history["operators"],
        serde_json::json!(["parquet_source", "window", "parquet_sink"])
    );
    assert!(!history["samples"].as_array().unwrap().is_empty());

    // the end: the served figures are the run's metrics
    let done = w.wait_for("finished", |j| j["state"] == "finished");
    assert_eq!(schema_violations(&schema, &done), Vec::<String>::new());
    let result = &done["result"];
    // the paced source mostly naps until its rows are due: idle, not busy
    let source = &done["operators"][0];
    let total = |k: &str| -> f64 {
        source["subtasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[k].as_f64().unwrap())
            .sum()
    };
    assert!(total("idle_s") > 2.0 * total("busy_s"), "{source}");
    let end = parse_prometheus(&w.get("/metrics").1);
    for op in result["operators"].as_array().unwrap() {
        let name = op["name"].as_str().unwrap();
        let labels = [("operator", name)];
        assert_eq!(
            sum(&end, "weir_operator_rows_out_total", &labels),
            op["rows_out"].as_u64().unwrap() as f64,
            "{name} rows out"
        );
        if name != "parquet_source" {
            assert_eq!(
                sum(&end, "weir_operator_rows_in_total", &labels),
                op["rows_in"].as_u64().unwrap() as f64,
                "{name} rows in"
            );
        }
        assert_eq!(
            sample(&end, "weir_operator_late_rows_total", &labels),
            Some(op["late_rows"].as_u64().unwrap() as f64),
            "{name} late rows"
        );
    }
    assert_eq!(
        sample(&end, "weir_rows_read_total", &[]),
        Some(result["rows_in"].as_u64().unwrap() as f64)
    );
    let completed = result["checkpoints"]["completed"].as_u64().unwrap();
    assert!(completed >= 2, "{result}");
    assert_eq!(
        sample(&end, "weir_checkpoints_total", &[]),
        Some(completed as f64)
    );
    assert_eq!(done["checkpoints"]["count"], completed);
    let newest = done["checkpoints"]["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(newest["id"], result["checkpoints"]["last_id"]);
    assert_eq!(
        sample(&end, "weir_checkpoint_last_size_bytes", &[]),
        Some(result["checkpoints"]["last_bytes"].as_u64().unwrap() as f64)
    );
    // every series the Grafana dashboard plots is served (a Kafka source's
    // lag only by a job reading Kafka)
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/weir.json"),
    )
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut plotted = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("weir_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                plotted.push(name);
            }
        }
    }
    assert!(plotted.len() > 15, "{plotted:?}");
    for name in plotted
        .iter()
        .filter(|n| *n != "weir_source_records_behind")
    {
        assert!(
            end.iter().any(|s| &s.name == name),
            "the dashboard plots {name}, not served"
        );
    }
    assert_eq!(result["rows_in"], 180_000);
    // 100 vehicles x 600 windows of 1 s
    assert_eq!(result["rows_out"], 60_000);

    // and the process printed the same metrics, with the address
    let mut w = w;
    let _ = w.child.kill();
    let output = w.child.wait_with_output_taken();
    let printed: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(
        printed["http"],
        serde_json::Value::String(w.address.clone())
    );
    assert_eq!(printed["rows_out"], result["rows_out"]);
    assert_eq!(printed["operators"], result["operators"]);
}

trait TakeOutput {
    fn wait_with_output_taken(&mut self) -> String;
}

impl TakeOutput for std::process::Child {
    /// Stdout of a child that printed its JSON, then was killed lingering.
    fn wait_with_output_taken(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        self.stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let _ = self.wait();
        text
    }
}

#[test]
fn a_sink_that_cannot_keep_up_shows_as_back_pressure_on_its_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    // no sink: results go to stdout, a pipe this test does not read at first
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[source]\npath = {:?}\n\n[[steps]]\nfilter = \"speed >= 0\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let mut w = Watched::start(
        &job,
        &["--parallelism", "2", "--linger", "30s"],
        Stdio::piped(),
    );
    // (before the run starts the job has no operators yet)
    let pressured = w.wait_for("back-pressured", |j| {
        j["operators"][0]["subtasks"]
            .as_array()
            .is_some_and(|subtasks| {
                subtasks
                    .iter()
                    .any(|s| s["backpressured_s"].as_f64().unwrap_or(0.0) > 0.2)
            })
    });
    let ops = pressured["operators"].as_array().unwrap();
    assert_eq!(ops[0]["kind"], "source");
    let sink = ops.iter().find(|o| o["kind"] == "sink").unwrap();
    assert_eq!(
        sink["backpressured_ms_per_s"], 0.0,
        "the sink is blocked writing, not waiting on a queue: {sink}"
    );
    let text = w.get("/metrics").1;
    let m = parse_prometheus(&text);
    assert!(
        sum(
            &m,
            "weir_operator_backpressured_seconds_total",
            &[("operator", ops[0]["name"].as_str().unwrap())]
        ) > 0.2,
        "{text}"
    );
    // now read the results: the job finishes with every row
    let mut stdout = w.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let done = w.wait_for("finished", |j| j["state"] == "finished");
    assert_eq!(done["result"]["rows_out"], 180_000);
    let _ = w.child.kill();
    let printed = reader.join().unwrap();
    assert!(printed.lines().count() >= 180_000, "every row was printed");
}

#[test]
fn addresses_beyond_loopback_must_be_written_out_and_bad_flags_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("out.parquet");
    let job = window_job(dir.path(), &data, "", &parquet_sink(&out));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&job)
            .args(args)
            .output()
            .unwrap()
    };
    for (args, says) in [
        (
            &["--http", "metrics.example.com:8081"][..],
            "host names are not resolved",
        ),
        (&["--http", "localhost:http"][..], "is not a port number"),
        (&["--linger", "5s"][..], "lingers only with --http"),
        (&["--http=127.0.0.1:0", "--linger", "soon"][..], "--linger"),
        (&["--report", "."][..], "is a directory"),
    ] {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} must fail");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !out.exists(),
            "{args:?}: nothing is written when a flag is wrong"
        );
    }
    // a report never replaces the job's input or the job file
    for input in [&job, &data.join("part-00000.parquet")] {
        let before = std::fs::read(input).unwrap();
        let o = run(&["--report", input.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("is an input of the job"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(input).unwrap(),
            before,
            "{} untouched",
            input.display()
        );
    }
    // a port in use is named
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let o = run(&["--http", &at]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains(&at), "{err}");
    assert!(!out.exists());
    // the job file's [http] says the same, with the same rules
    let with_http = |table: &str| {
        let file = dir.path().join("http_job.toml");
        let text = std::fs::read_to_string(&job).unwrap();
        std::fs::write(&file, format!("{text}\n[http]\n{table}\n")).unwrap();
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&file)
            .output()
            .unwrap()
    };
    let o = with_http("address = \"example.com:80\"");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("host names are not resolved"),
        "{err}"
    );
    assert!(!out.exists());
    let o = with_http("address = \"127.0.0.1:0\"\nlinger = \"0s\"");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("weir: watching on http://127.0.0.1:"), "{err}");
    std::fs::remove_file(&out).unwrap();
    let o = with_http("adress = \"9000\"");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("adress"),
        "an unknown key is named: {err}"
    );
    // loopback by default: `--http` alone and a bare port listen on 127.0.0.1
    let w = Watched::start(&job, &["--linger", "10s"], Stdio::null());
    assert!(w.address.starts_with("127.0.0.1:"), "{}", w.address);
    let (status, _) = get(&w.address, "/api/v1/job");
    assert!(status.contains("200"));
}

#[test]
fn a_report_is_one_self_contained_page_of_the_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("out.parquet");
    let job = window_job(dir.path(), &data, "", &parquet_sink(&out));
    let report = dir.path().join("run.html");
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&job)
        .args(["--mode", "batch", "--json", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let metrics: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(!page.contains("src=\"app.js\"") && !page.contains("href=\"style.css\""));
    let data_line = page
        .lines()
        .find_map(|l| l.strip_prefix("<script>window.WEIR_REPORT = "))
        .expect("the run's data is inlined");
    let embedded: serde_json::Value =
        serde_json::from_str(data_line.trim_end_matches(";</script>")).unwrap();
    let run = &embedded["runs"][0];
    assert_eq!(run["job"]["state"], "finished");
    assert_eq!(run["job"]["mode"], "batch");
    assert_eq!(run["job"]["result"]["rows_out"], metrics["rows_out"]);
    assert_eq!(run["job"]["operators"].as_array().unwrap().len(), 3);
}
