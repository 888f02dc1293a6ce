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
