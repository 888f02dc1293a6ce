//! Stop with a savepoint at parallelism 2, resume from it at parallelism 3:
//! the output equals an uninterrupted run (keyed window state and source
//! positions are redistributed by key group and split).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn job_file(dir: &Path, data: &Path) -> PathBuf {
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "rescale"

[source]
type = "parquet"
path = "{}"
time_column = "event_time"
watermark_delay = "30s"
batch_size = 500

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = {{ kind = "sliding", size = "20s", slide = "10s" }}
aggregates = [{{ fn = "sum", column = "speed", as = "total" }}, {{ fn = "count", as = "n" }}]

[sink]
type = "parquet"
path = "unused"
"#,
            data.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_savepoint_at_parallelism_2_resumes_at_3_with_the_same_output() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::generate_obd(&data, 60, 600, 3);
    let job = job_file(tmp.path(), &data);
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));

    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    let run = |extra: &[&str]| {
        let mut c = weir();
        c.arg("run")
            .arg(&job)
            .arg("--output")
            .arg(&out)
            .arg("--checkpoint-dir")
            .arg(&ckpt)
            .args(["--checkpoint-interval", "200ms"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    // about 10 s at 60x; ask for a savepoint after 2 s
    let child = run(&["--parallelism", "2", "--speed", "60x"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let stop = weir()
        .args(["stop", "--savepoint", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    let started = Instant::now();
    let stopped = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stopped.stderr).to_string();
    assert!(stopped.status.success(), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped promptly"
    );
    let savepoint = stderr
        .lines()
        .find_map(|l| l.strip_prefix("weir: stopped with savepoint "))
        .unwrap_or_else(|| panic!("no savepoint reported: {stderr}"))
        .to_string();
    let partial: usize = common::read_parquet_parts(&out)
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let total: usize = expected.iter().map(|b| b.num_rows()).sum();
    assert!(
        partial < total,
        "stopped before the end: {partial} of {total} rows"
    );

    let resumed = run(&["--parallelism", "3", "--restore", &savepoint])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    weir::compare::same_rows(
        &common::read_parquet_parts(&out),
        &expected,
        &expected[0].schema(),
        1e-9,
    )
    .unwrap();
    // the savepoint outlives retention
    assert!(Path::new(&savepoint).join("_manifest.json").exists());
}
