//! The CLI does what it says, with no silent surprises: stdin and TCP jobs
//! run at any parallelism, output formats follow the sink, paths in a job
//! file are relative to it, time-travel options are checked and named,
//! errors name rows by their place in the file, progress totals follow the
//! replayed slice, and the reported figures count what they say.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// Runs `weir args…` in `cwd` with `input` on stdin.
fn run_in(cwd: &Path, args: &[&str], input: &str) -> Output {
    let mut child = weir()
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // a job that fails before reading closes the pipe: not an error here
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn a_stdin_job_runs_as_written_at_any_parallelism() {
    // the README's example: `echo '{...}' | weir run job.toml`, on a 4-core machine
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("job.toml"),
        r#"
[source]
type = "stdin"
schema = ["vehicle_id: int64", "event_time: timestamp", "speed: float64"]
time_column = "event_time"
watermark_delay = "0s"

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = { kind = "tumbling", size = "1s" }
aggregates = [{ fn = "avg", column = "speed", as = "avg_speed" }, { fn = "count", as = "readings" }]

[sink]
path = "out.jsonl"
"#,
    );
    let input = (0..40)
        .map(|i| {
            format!(
                "{{\"vehicle_id\":{},\"event_time\":{},\"speed\":{}}}\n",
                i % 4,
                1000 + i * 100,
                i
            )
        })
        .collect::<String>();
    for p in ["4", "3"] {
        let out = run_in(dir.path(), &["run", "job.toml", "--parallelism", p], &input);
        assert!(out.status.success(), "p={p}: {}", text(&out.stderr));
        // vehicle v, window w: rows i = 10w + k with i % 4 == v
        let mut got: Vec<(i64, i64, i64)> = std::fs::read_to_string(dir.path().join("out.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["vehicle_id"].as_i64().unwrap(),
                    v["window_start"].as_i64().unwrap(),
                    v["readings"].as_i64().unwrap(),
                )
            })
            .collect();
        got.sort();
        let mut expected = Vec::new();
        for v in 0..4i64 {
            for w in 0..4i64 {
                let n = (10 * w..10 * w + 10).filter(|i| i % 4 == v).count() as i64;
                expected.push((v, 1000 + w * 1000, n));
            }
        }
        assert_eq!(got, expected, "p={p}");
    }
    // asking for more than one subtask for stdin is refused, naming it
    let job = std::fs::read_to_string(dir.path().join("job.toml")).unwrap();
    write(
        &dir.path().join("job.toml"),
        &job.replace(
            "watermark_delay = \"0s\"",
            "watermark_delay = \"0s\"\nparallelism = 2",
        ),
    );
    let out = run_in(dir.path(), &["run", "job.toml"], &input);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("parallelism") && err.contains("at most 1"),
        "{err}"
    );
}

/// `n` rows `(vehicle_id, event_time ms, speed)` in time order, one per
/// 10 ms from 0, written as row groups of `group` rows; `null_at` gets a
/// null event time.
fn write_readings(path: &Path, n: usize, group: usize, null_at: Option<usize>) {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    let times: Vec<Option<i64>> = (0..n)
        .map(|i| (Some(i) != null_at).then_some(i as i64 * 10))
        .collect();
    let batch = RecordBatch::try_from_iter([
        (
            "vehicle_id",
            std::sync::Arc::new(Int64Array::from_iter_values((0..n).map(|i| i as i64 % 3)))
                as ArrayRef,
        ),
        (
            "event_time",
            std::sync::Arc::new(Int64Array::from(times)) as ArrayRef,
        ),
        (
            "speed",
            std::sync::Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64)))
                as ArrayRef,
        ),
    ])
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// A job over `input` (per-vehicle 1 s counts), sink as given.
fn readings_job(dir: &Path, input: &str, sink: &str) -> PathBuf {
    write(
        &dir.join("job.toml"),
        &format!(
            r#"
[source]
path = "{input}"
time_column = "event_time"
watermark_delay = "0s"

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = {{ kind = "tumbling", size = "1s" }}
aggregates = [{{ fn = "count", as = "n" }}]
{sink}
"#
        ),
    )
}

#[test]
fn the_output_format_follows_the_sink_and_a_mismatching_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_readings(&dir.path().join("in.parquet"), 300, 100, None);
    readings_job(dir.path(), "in.parquet", "[sink]\npath = \"out.parquet\"");
    // an extension weir does not write: refused, naming it and the formats
    let out = run_in(dir.path(), &["run", "job.toml", "--output", "x.avro"], "");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--output") && err.contains(".avro") && err.contains(".parquet"),
        "{err}"
    );
    assert!(!dir.path().join("x.avro").exists(), "nothing written");
    // a JSON sink given a Parquet path: refused, naming both
    readings_job(
        dir.path(),
        "in.parquet",
        "[sink]\ntype = \"json\"\npath = \"out.jsonl\"",
    );
    let out = run_in(
        dir.path(),
        &["run", "job.toml", "--output", "y.parquet"],
        "",
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("y.parquet") && err.contains("json") && err.contains("parquet"),
        "{err}"
    );
    assert!(!dir.path().join("y.parquet").exists());
    // the sink's type decides the format of a directory output
    let out = run_in(dir.path(), &["run", "job.toml", "--output", "parts"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let names: Vec<String> = std::fs::read_dir(dir.path().join("parts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-"))
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.ends_with(".jsonl")),
        "{names:?}"
    );
}

#[test]
fn a_job_without_a_sink_says_where_its_output_goes() {
    let dir = tempfile::tempdir().unwrap();
    write_readings(&dir.path().join("in.parquet"), 300, 100, None);
    readings_job(dir.path(), "in.parquet", "");
    let out = run_in(dir.path(), &["run", "job.toml", "--parallelism", "1"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("no [sink]") && err.contains("standard output"),
        "{err}"
    );
    assert_eq!(
        text(&out.stdout).lines().count(),
        9,
        "3 vehicles x 3 windows"
    );
}

#[test]
fn relative_paths_in_a_job_file_are_relative_to_the_job_file() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    // the job's input beside it; a decoy of the same name where weir runs
    write_readings(&jobs.join("in.parquet"), 300, 100, None);
    write_readings(&elsewhere.join("in.parquet"), 50, 100, None);
    readings_job(&jobs, "in.parquet", "[sink]\npath = \"out.jsonl\"");
    let out = run_in(
        &elsewhere,
        &["run", "../jobs/job.toml", "--parallelism", "1"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !elsewhere.join("out.jsonl").exists(),
        "written beside the job, not here"
    );
    let rows = std::fs::read_to_string(jobs.join("out.jsonl")).unwrap();
    assert_eq!(
        rows.lines().count(),
        9,
        "read the job's input (300 rows), not the decoy:\n{rows}"
    );
    // --output stays relative to where weir runs
    let out = run_in(
        &elsewhere,
        &[
            "run",
            "../jobs/job.toml",
            "--parallelism",
            "1",
            "--output",
            "mine.jsonl",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(elsewhere.join("mine.jsonl").exists());
}

#[test]
fn time_travel_options_are_checked_and_named() {
    let dir = tempfile::tempdir().unwrap();
    write_readings(&dir.path().join("in.parquet"), 300, 100, None);
    readings_job(dir.path(), "in.parquet", "[sink]\npath = \"out.jsonl\"");
    let run = |args: &[&str]| {
        let mut all = vec!["run", "job.toml"];
        all.extend_from_slice(args);
        let out = run_in(dir.path(), &all, "");
        (out.status.success(), text(&out.stderr))
    };
    let (ok, err) = run(&["--from", "2000", "--until", "1000"]);
    assert!(
        !ok && err.contains("--from") && err.contains("before"),
        "{err}"
    );
    let (ok, err) = run(&["--from", "yesterday"]);
    assert!(
        !ok && err.contains("--from") && !err.contains("job.toml"),
        "{err}"
    );
    let (ok, err) = run(&["--until", "1000", "--speed", "fast-ish"]);
    assert!(!ok && err.contains("--speed"), "{err}");
    assert!(!dir.path().join("out.jsonl").exists());
    // a range set in the job file is named there
    let job = std::fs::read_to_string(dir.path().join("job.toml")).unwrap();
    write(
        &dir.path().join("job.toml"),
        &job.replace(
            "watermark_delay",
            "from = \"3000\"\nuntil = \"2000\"\nwatermark_delay",
        ),
    );
    let (ok, err) = run(&[]);
    assert!(
        !ok && err.contains("job.toml") && err.contains("source.from"),
        "{err}"
    );
}

#[test]
fn an_error_names_the_row_by_its_place_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // rows 0..300 in row groups of 100; row 250 (row group 2, row 50) has no time
    write_readings(&dir.path().join("in.parquet"), 300, 100, Some(250));
    readings_job(dir.path(), "in.parquet", "[sink]\npath = \"out.jsonl\"");
    let out = run_in(dir.path(), &["run", "job.toml", "--parallelism", "1"], "");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("in.parquet") && err.contains("row group 2"),
        "{err}"
    );
    assert!(
        err.contains("row 50 (row 250 of the file)") && err.contains("`event_time`"),
        "{err}"
    );
}

/// Runs `weir args…` in `cwd` with stderr on a pseudo-terminal (so it draws
/// progress) and returns what it drew.
fn run_on_terminal(cwd: &Path, args: &[&str]) -> (bool, String) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    let slave = unsafe { std::os::fd::OwnedFd::from_raw_fd(slave) };
    let mut master = unsafe { std::fs::File::from_raw_fd(master) };
    let mut child = weir()
        .args(args)
        .current_dir(cwd)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // the child holds the only slave end now: reading ends (EIO) when it exits
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let ok = child.wait().unwrap().success();
    (ok, reader.join().unwrap())
}

#[test]
fn progress_counts_the_replayed_slice_and_names_batch_stages() {
    let dir = tempfile::tempdir().unwrap();
    // 100 s of rows in row groups of 10 s; [30 s, 60 s) is row groups 3 to 5
    write_readings(&dir.path().join("in.parquet"), 10_000, 1000, None);
    readings_job(dir.path(), "in.parquet", "[sink]\npath = \"out.jsonl\"");
    for mode in ["pipelined", "batch"] {
        let args = [
            "run",
            "job.toml",
            "--mode",
            mode,
            "--parallelism",
            "1",
            "--from",
            "30000",
            "--until",
            "60000",
            "--speed",
            "25x",
        ];
        let (ok, drawn) = run_on_terminal(dir.path(), &args);
        assert!(ok, "{mode}: {drawn}");
        assert!(
            drawn.contains("/3000 rows"),
            "{mode}: total is the slice's rows: {drawn}"
        );
        assert!(!drawn.contains("/10000 rows"), "{mode}: {drawn}");
        if mode == "batch" {
            assert!(drawn.contains("stage 1/2: parquet_source"), "{drawn}");
        }
    }
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

fn lines_in(path: &Path) -> u64 {
    std::fs::read_to_string(path).unwrap().lines().count() as u64
}

#[test]
fn rows_out_counts_results_apart_from_late_rows_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("job.toml"),
        r#"
[source]
type = "stdin"
schema = ["sensor: int64", "t: timestamp", "v: int64"]
time_column = "t"
watermark_delay = "0s"
on_error = "dead_letter"

[[steps]]
key_by = ["sensor"]

[[steps]]
window = { kind = "tumbling", size = "1s" }
aggregates = [{ fn = "count", as = "n" }]

[sink]
path = "out.jsonl"

[late_sink]
path = "late.jsonl"

[dead_letter_sink]
path = "dead.jsonl"
"#,
    );
    // 2 result windows; 2 late rows (behind 2500); 3 malformed records
    let input = "{\"sensor\":1,\"t\":1000,\"v\":1}\n{\"sensor\":1,\"t\":2500,\"v\":1}\n\
                 {\"sensor\":1,\"t\":1200,\"v\":1}\n{\"sensor\":1,\"t\":900,\"v\":1}\n\
                 {\"sensor\":1,\"t\":\n{\"sensor\":\"x\",\"t\":3000}\nnot json\n";
    let args = ["run", "job.toml", "--json", "--parallelism", "1"];
    let m = json_of(&run_in(dir.path(), &args, input));
    assert_eq!(m["rows_out"], lines_in(&dir.path().join("out.jsonl")));
    assert_eq!(m["rows_out"], 2);
    assert_eq!(m["late_rows_out"], 2);
    assert_eq!(m["late_rows_out"], lines_in(&dir.path().join("late.jsonl")));
    assert_eq!(m["dead_letters_out"], 3);
    assert_eq!(
        m["dead_letters_out"],
        lines_in(&dir.path().join("dead.jsonl"))
    );
}

#[test]
fn weir_nexmark_per_core_counts_the_rows_the_query_reads() {
    // q3 reads persons and auctions: 4 of every 50 events
    let out = weir()
        .args(["nexmark", "q3", "--events", "50000", "--modes", "batch"])
        .args(["--parallelism", "1", "--json"])
        .output()
        .unwrap();
    let v = json_of(&out);
    let (events, read) = (
        v["events"].as_u64().unwrap(),
        v["rows_read"].as_u64().unwrap(),
    );
    assert_eq!(events, 50_000);
    assert_eq!(read, v["rows_in"].as_u64().unwrap());
    assert_eq!(read, 4000, "1 person and 3 auctions per 50 events");
    let per_core = v["rows_read_per_second_per_core"].as_f64().unwrap();
    let expected = read as f64 / v["seconds"].as_f64().unwrap();
    assert!(
        (per_core - expected).abs() / expected < 1e-9,
        "{per_core} vs {expected}"
    );
}

#[test]
fn the_bench_chart_has_axes_units_and_the_ratio_to_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    write_readings(&dir.path().join("in.parquet"), 3000, 1000, None);
    readings_job(dir.path(), "in.parquet", "[sink]\npath = \"out.jsonl\"");
    let out = weir()
        .args(["bench", "job.toml", "--modes", "scan,batch", "--runs", "1"])
        .args(["--parallelism", "1", "--plot", "chart.svg"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("slower") || table.contains("faster"),
        "{table}"
    );
    let svg = std::fs::read_to_string(dir.path().join("chart.svg")).unwrap();
    for part in [
        "input rows per second (rows/s)",
        "peak resident memory (bytes)",
        ">mode<",
    ] {
        assert!(svg.contains(part), "`{part}` missing: {svg}");
    }
    assert!(
        svg.contains("x slower than scan<") || svg.contains("x faster than scan<"),
        "{svg}"
    );
    // y axes: tick labels with units
    assert!(
        svg.contains(" rows/s</text>") && svg.contains("B</text>"),
        "{svg}"
    );
}

#[test]
fn spill_compression_is_an_option_named_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    write_readings(&dir.path().join("in.parquet"), 60_000, 5_000, None);
    let job = readings_job(dir.path(), "in.parquet", "");
    let job = job.to_str().unwrap();
    let mut outputs = Vec::new();
    for compression in ["none", "lz4", "zstd"] {
        let out = format!("out-{compression}.jsonl");
        let args = [
            "run",
            job,
            "--mode",
            "batch",
            "--memory",
            "64KiB",
            "--parallelism",
            "2",
            "--json",
            "--spill-compression",
            compression,
            "--output",
            &out,
        ];
        let m = json_of(&run_in(dir.path(), &args, ""));
        assert!(m["spill_files"].as_u64().unwrap() > 0, "{compression}: {m}");
        let mut lines: Vec<String> = std::fs::read_to_string(dir.path().join(&out))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        // 600 s of readings, 3 vehicles, 1 s windows: 1800 results
        assert_eq!(lines.len(), 1800, "{compression}");
        let counted: i64 = lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                    .as_i64()
                    .unwrap()
            })
            .sum();
        assert_eq!(counted, 60_000, "{compression}: every reading counted once");
        outputs.push(lines);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);

    let args = [
        "run",
        job,
        "--spill-compression",
        "gzip",
        "--output",
        "bad.jsonl",
    ];
    let out = run_in(dir.path(), &args, "");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--spill-compression") && err.contains("gzip"),
        "{err}"
    );
    assert!(!dir.path().join("bad.jsonl").exists(), "nothing written");
}
