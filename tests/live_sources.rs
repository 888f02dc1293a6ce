//! Live sources through the CLI and the library: JSON lines over TCP and
//! stdin, a watched directory, the rate-controlled generator; malformed
//! records to a dead-letter sink or a clear error; SIGTERM stops a live job
//! cleanly with its sink committed.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weir::connectors::live::dir::WatchedDir;
use weir::connectors::live::LiveSourceSpec;
use weir::{Agg, ExecConfig, Job, TumblingWindow, WatermarkStrategy};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// `n` readings of 4 sensors, one per 100 ms, every 7th one malformed.
/// (sensor, window start) -> (count, sum).
type Windows = BTreeMap<(i64, i64), (i64, i64)>;

fn lines(n: usize) -> (String, Vec<usize>, Windows) {
    let mut text = String::new();
    let mut bad = Vec::new();
    let mut windows = BTreeMap::new();
    for i in 0..n {
        if i % 7 == 3 {
            bad.push(i);
            text.push_str(if i % 2 == 0 {
                "{\"sensor\": 1, \"t\": \n"
            } else {
                "{\"sensor\": \"x\", \"t\": 5, \"v\": 1}\n"
            });
            continue;
        }
        let (sensor, t, v) = (
            (i % 4) as i64,
            1_000_000 + i as i64 * 100,
            (i * 3 % 11) as i64,
        );
        text.push_str(&format!(
            "{{\"sensor\": {sensor}, \"t\": {t}, \"v\": {v}}}\n"
        ));
        let e = windows.entry((sensor, t / 1000 * 1000)).or_insert((0, 0));
        e.0 += 1;
        e.1 += v;
    }
    (text, bad, windows)
}

const JOB: &str = r#"
[source]
type = "TYPE"
schema = ["sensor: int64", "t: timestamp", "v: int64"]
time_column = "t"
watermark_delay = "0s"
on_error = "dead_letter"
parallelism = 1
EXTRA

[[steps]]
key_by = ["sensor"]

[[steps]]
window = { kind = "tumbling", size = "1s" }
aggregates = [{ fn = "count", as = "n" }, { fn = "sum", column = "v", as = "total" }]

[sink]
type = "json"
path = "OUT"

[dead_letter_sink]
type = "json"
path = "DEAD"
"#;

fn job_file(dir: &std::path::Path, kind: &str, extra: &str) -> std::path::PathBuf {
    let text = JOB
        .replace("TYPE", kind)
        .replace("EXTRA", extra)
        .replace("OUT", dir.join("out.json").to_str().unwrap())
        .replace("DEAD", dir.join("dead.json").to_str().unwrap());
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn json_rows(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn windows_of(rows: &[serde_json::Value]) -> Windows {
    rows.iter()
        .map(|r| {
            let start = match &r["window_start"] {
                serde_json::Value::Number(n) => n.as_i64().unwrap(),
                serde_json::Value::String(s) => {
                    weir::connectors::replay::parse_time("t", s).unwrap()
                }
                other => panic!("window_start {other}"),
            };
            (
                (r["sensor"].as_i64().unwrap(), start),
                (r["n"].as_i64().unwrap(), r["total"].as_i64().unwrap()),
            )
        })
        .collect()
}

fn check_dead(dir: &std::path::Path, bad: &[usize], source: &str) {
    let dead = json_rows(&dir.join("dead.json"));
    let positions: Vec<i64> = dead
        .iter()
        .map(|r| r["position"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(positions, bad.iter().map(|&b| b as i64).collect::<Vec<_>>());
    assert!(dead
        .iter()
        .all(|r| r["source"].as_str().unwrap().starts_with(source)));
    assert!(dead
        .iter()
        .all(|r| !r["reason"].as_str().unwrap().is_empty()));
}

#[test]
fn json_lines_over_tcp_with_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let (text, bad, want) = lines(500);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // in pieces, with pauses: records split across reads
        for chunk in text.as_bytes().chunks(777) {
            s.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let job = job_file(dir.path(), "tcp", &format!("address = \"{addr}\""));
    let run = weir()
        .args(["run"])
        .arg(&job)
        .args(["--json"])
        .output()
        .unwrap();
    server.join().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let metrics: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(metrics["bad_records"].as_u64().unwrap(), bad.len() as u64);
    assert_eq!(windows_of(&json_rows(&dir.path().join("out.json"))), want);
    check_dead(dir.path(), &bad, "tcp");
}

#[test]
fn json_lines_on_stdin_in_both_modes() {
    let (text, bad, want) = lines(300);
    for mode in ["pipelined", "batch"] {
        let dir = tempfile::tempdir().unwrap();
        let job = job_file(dir.path(), "stdin", "");
        let mut child = weir()
            .args(["run"])
            .arg(&job)
            .args(["--mode", mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            windows_of(&json_rows(&dir.path().join("out.json"))),
            want,
            "{mode}"
        );
        check_dead(dir.path(), &bad, "stdin");
    }
}

#[test]
fn a_malformed_record_stops_the_job_naming_source_and_line_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (text, bad, _) = lines(50);
    let job = job_file(dir.path(), "stdin", "");
    let strict = std::fs::read_to_string(&job)
        .unwrap()
        .replace("on_error = \"dead_letter\"", "on_error = \"fail\"");
    std::fs::write(
        &job,
        strict.replace(
            "[dead_letter_sink]\ntype = \"json\"",
            "[late_sink]\ntype = \"json\"",
        ),
    )
    .unwrap();
    let mut child = weir()
        .args(["run"])
        .arg(&job)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("source stdin") && err.contains(&format!("position {}", bad[0])),
        "{err}"
    );
    assert!(
        !dir.path().join("out.json").exists(),
        "nothing published after an error"
    );
}

#[test]
fn sigterm_stops_a_live_generator_job_cleanly_and_commits_its_sink() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            r#"
[source]
type = "generator"
generator = "vehicles"
vehicles = 20
watermark_delay = "2s"

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = {{ kind = "tumbling", size = "1s" }}
aggregates = [{{ fn = "count", as = "n" }}]

[sink]
type = "parquet"
path = "{}"
"#,
            dir.path().join("out.parquet").display()
        ),
    )
    .unwrap();
    let child = weir()
        .args(["run"])
        .arg(&job)
        .args(["--json", "--parallelism", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let started = Instant::now();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped promptly"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows_in = metrics["rows_in"].as_u64().unwrap();
    // about 2.5 s of 20 vehicles x 3 readings per second, real time
    assert!((60..=400).contains(&rows_in), "rows in {rows_in}");
    let file = std::fs::File::open(dir.path().join("out.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let counted: i64 = reader
        .map(|b| {
            let b = b.unwrap();
            b.column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(
        counted as u64, rows_in,
        "every row read is in a committed window (drained)"
    );
}

#[test]
fn a_watched_directory_picks_up_files_as_they_appear() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("in");
    std::fs::create_dir(&watched).unwrap();
    let (text, _, _) = lines(0);
    assert!(text.is_empty());
    let schema = weir::connectors::parse_schema(&[
        "sensor: int64".into(),
        "t: timestamp".into(),
        "v: int64".into(),
    ])
    .unwrap();
    // first file before the start, as Parquet
    let first = arrow_array::RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![1, 2])),
            std::sync::Arc::new(
                arrow_array::TimestampMillisecondArray::from(vec![1000, 1500]).with_timezone("UTC"),
            ),
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![10, 20])),
        ],
    )
    .unwrap();
    weir::workloads::vehicles::write_parquet_dir(&watched.join("tmp"), &[first], 1, 100).unwrap();
    std::fs::rename(
        watched.join("tmp/part-00000.parquet"),
        watched.join("a-000.parquet"),
    )
    .unwrap();
    std::fs::remove_dir(watched.join("tmp")).unwrap();
    let w = watched.clone();
    let s = schema.clone();
    let spec = LiveSourceSpec::new(
        "dir in",
        schema,
        std::sync::Arc::new(move |info| {
            Ok(Box::new(WatchedDir::try_new(
                &w,
                s.clone(),
                info,
                false,
                Duration::from_millis(20),
                None,
            )?) as _)
        }),
        false,
    );
    let job = Job::new();
    let out = job
        .live_source(spec)
        .assign_timestamps(
            "t",
            WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO),
        )
        .unwrap()
        .key_by(["sensor"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([Agg::sum("v").alias("total")])
        .unwrap()
        .collect()
        .unwrap();
    let stop = weir::operator::StopSignal::new();
    let writer = {
        let (watched, stop) = (watched.clone(), stop.clone());
        std::thread::spawn(move || {
            for k in 1..=3 {
                std::thread::sleep(Duration::from_millis(150));
                let tmp = watched.join(format!(".b-{k:03}.json"));
                let t = 1000 + k * 1000;
                std::fs::write(&tmp, format!("{{\"sensor\": 1, \"t\": {t}, \"v\": {k}}}\n{{\"sensor\": 2, \"t\": {}, \"v\": 100}}\n", t + 1)).unwrap();
                std::fs::rename(&tmp, watched.join(format!("b-{k:03}.json"))).unwrap();
            }
            std::thread::sleep(Duration::from_millis(300));
            stop.stop();
        })
    };
    job.run(&ExecConfig::pipelined().with_parallelism(2).with_stop(stop))
        .unwrap();
    writer.join().unwrap();
    let mut got = BTreeMap::new();
    for b in out.batches() {
        let k = b
            .column_by_name("sensor")
            .unwrap()
            .as_primitive::<Int64Type>();
        let v = b
            .column_by_name("total")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            *got.entry(k.value(i)).or_insert(0) += v.value(i);
        }
    }
    assert_eq!(got, BTreeMap::from([(1, 10 + 1 + 2 + 3), (2, 20 + 300)]));
}

#[test]
fn a_file_with_the_wrong_column_type_in_a_watched_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("in");
    std::fs::create_dir(&watched).unwrap();
    // `v` holds text where the job expects int64
    let wrong = arrow_array::RecordBatch::try_from_iter([
        (
            "sensor",
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![1])) as _,
        ),
        (
            "t",
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![1000])) as _,
        ),
        (
            "v",
            std::sync::Arc::new(arrow_array::StringArray::from(vec!["fast"])) as _,
        ),
    ])
    .unwrap();
    weir::workloads::vehicles::write_parquet_dir(&watched.join("x"), &[wrong], 1, 10).unwrap();
    std::fs::rename(
        watched.join("x/part-00000.parquet"),
        watched.join("bad.parquet"),
    )
    .unwrap();
    let job = job_file(
        dir.path(),
        "dir",
        &format!("path = \"{}\"\nbounded = true", watched.display()),
    );
    // with on_error = "fail" (dead letters: tests/hostile_input.rs)
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, text.replace("\"dead_letter\"", "\"fail\"")).unwrap();
    let run = weir().args(["run"]).arg(&job).output().unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("bad.parquet") && err.contains("`v`"), "{err}");
    assert!(!dir.path().join("out.json").exists(), "nothing published");
}

#[test]
fn processing_time_windows_work_on_a_live_source() {
    use weir::workloads::generators::{GeneratorKind, GeneratorSpec};
    let mut spec = GeneratorSpec::new(GeneratorKind::Vehicles { vehicles: 10 });
    spec.events = Some(600); // 20 s of event time at 20x: about 1 s
    spec.speed = weir::connectors::replay::ReplaySpeed::Times(20.0);
    let job = Job::new();
    let out = spec
        .stream(&job)
        .unwrap()
        .key_by(["vehicle_id"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_millis(200)))
        .processing_time()
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .collect()
        .unwrap();
    job.run(&ExecConfig::pipelined().with_parallelism(2))
        .unwrap();
    let batches = out.batches();
    let total: i64 = batches
        .iter()
        .map(|b| {
            b.column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(
        total, 600,
        "every row lands in exactly one processing-time window"
    );
    let windows: std::collections::BTreeSet<i64> = batches
        .iter()
        .flat_map(|b| {
            let c = arrow_cast::cast(
                b.column_by_name("window_start").unwrap(),
                &arrow_schema::DataType::Int64,
            )
            .unwrap();
            c.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect();
    assert!(
        windows.len() >= 2,
        "a paced source spreads over several wall-clock windows: {windows:?}"
    );
}
