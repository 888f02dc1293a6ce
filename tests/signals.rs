//! SIGTERM, Ctrl-C (SIGINT) and `weir stop` end every job cleanly, as real
//! child processes of the `weir` binary: a bounded job is cancelled
//! (nothing published, staging and spill files removed, exit 128 + the
//! signal, within seconds), a checkpointed one takes a savepoint it can
//! resume from, a live one drains and a second signal cancels it; and
//! what a SIGKILLed run left (staging files, spill directories) is removed
//! by the next run on the same target and spill directory, and nothing else.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// 20 vehicles x `seconds` s x 3 readings in two files.
fn input(dir: &Path, seconds: usize) -> PathBuf {
    let data = dir.join("data");
    common::generate_obd(&data, 20, seconds, 2);
    data
}

/// A per-vehicle 1 s count over `data` into `sink`, read in small batches
/// (so `--speed` paces it).
fn job(dir: &Path, data: &Path, sink: &Path) -> PathBuf {
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "signals"

[source]
path = "{}"
time_column = "event_time"
watermark_delay = "30s"
batch_size = 200

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = {{ kind = "tumbling", size = "1s" }}
aggregates = [{{ fn = "count", as = "n" }}]

[sink]
path = "{}"
"#,
            data.display(),
            sink.display()
        ),
    )
    .unwrap();
    path
}

fn spawn(job: &Path, args: &[&str]) -> Child {
    weir()
        .arg("run")
        .arg(job)
        .args(["--parallelism", "2"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn kill(child: &Child, signal: i32) {
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

/// Waits for `child` at most `limit`; returns its exit code and stderr.
fn finish(child: Child, limit: Duration) -> (Option<i32>, String) {
    let started = Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running {limit:?} after the signal: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The names in `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `ready()` (the run got somewhere), at most 10 s.
fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_cancels_a_bounded_job_at_once_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 120);
    let out = tmp.path().join("out");
    let spill = tmp.path().join("spill");
    let job = job(tmp.path(), &data, &out);
    let before = names(tmp.path());
    // 12 s at 10x; stopped after its sink started writing
    let child = spawn(
        &job,
        &["--speed", "10x", "--spill-dir", spill.to_str().unwrap()],
    );
    wait_until("the sink never staged a file", || {
        names(tmp.path())
            .iter()
            .any(|n| n.contains(".weir-staging-"))
    });
    kill(&child, libc::SIGTERM);
    let (code, err) = finish(child, Duration::from_secs(5));
    assert_eq!(code, Some(128 + libc::SIGTERM), "{err}");
    assert!(
        err.contains("stopped by SIGTERM") && err.contains("cancelled"),
        "says what happened: {err}"
    );
    assert!(err.contains(&out.display().to_string()), "{err}");
    // no output, no staging, no lock, no spill directory
    let mut after = names(tmp.path());
    after.remove("spill");
    assert_eq!(after, before);
    assert!(names(&spill).is_empty(), "{:?}", names(&spill));
}

#[test]
fn ctrl_c_cancels_a_spilling_batch_job() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 120);
    let out = tmp.path().join("out.parquet");
    let spill = tmp.path().join("spill");
    let job = job(tmp.path(), &data, &out);
    let before = names(tmp.path());
    let child = spawn(
        &job,
        &[
            "--mode",
            "batch",
            "--speed",
            "10x",
            "--memory",
            "64KiB",
            "--spill-dir",
            spill.to_str().unwrap(),
        ],
    );
    wait_until("no spill directory", || {
        names(&spill).iter().any(|n| n.starts_with("weir-spill-"))
    });
    std::thread::sleep(Duration::from_millis(300));
    kill(&child, libc::SIGINT);
    let (code, err) = finish(child, Duration::from_secs(5));
    assert_eq!(code, Some(128 + libc::SIGINT), "{err}");
    assert!(err.contains("stopped by SIGINT"), "{err}");
    assert!(names(&spill).is_empty(), "{:?}", names(&spill));
    let mut after = names(tmp.path());
    after.remove("spill");
    assert_eq!(after, before, "nothing published");
}

#[test]
fn weir_stop_stops_a_job_without_live_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 120);
    let out = tmp.path().join("out");
    let job = job(tmp.path(), &data, &out);
    let child = spawn(&job, &["--speed", "10x"]);
    std::thread::sleep(Duration::from_millis(800));
    let started = Instant::now();
    let stop = weir()
        .args(["stop", &child.id().to_string()])
        .output()
        .unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "`weir stop` returned once the job ended"
    );
    let (code, err) = finish(child, Duration::from_secs(1));
    assert_eq!(code, Some(128 + libc::SIGTERM), "{err}");
    assert!(!out.exists());
}

#[test]
fn sigterm_takes_a_savepoint_of_a_checkpointed_job_that_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 120);
    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    let job = job(tmp.path(), &data, &out);
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    let ckpt_args = [
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
        "--checkpoint-interval",
        "300ms",
    ];
    let child = spawn(&job, &[&ckpt_args[..], &["--speed", "20x"]].concat());
    std::thread::sleep(Duration::from_millis(1500));
    kill(&child, libc::SIGTERM);
    let (code, err) = finish(child, Duration::from_secs(5));
    assert_eq!(code, Some(128 + libc::SIGTERM), "{err}");
    let savepoint = err
        .lines()
        .find_map(|l| l.strip_prefix("weir: stopped with savepoint "))
        .unwrap_or_else(|| panic!("no savepoint: {err}"))
        .to_string();
    assert!(err.contains("--restore"), "says how to resume: {err}");
    let partial: usize = common::read_parquet_parts(&out)
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let total: usize = expected.iter().map(|b| b.num_rows()).sum();
    assert!(partial < total, "stopped part-way: {partial} of {total}");
    let resumed = weir()
        .arg("run")
        .arg(&job)
        .args(["--parallelism", "2", "--restore", &savepoint])
        .args(ckpt_args)
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
}

#[test]
fn a_second_signal_cancels_a_draining_live_job() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 120);
    let out = tmp.path().join("out");
    // live vehicles, united with history replayed at 2x (a minute to drain)
    let job = tmp.path().join("live.toml");
    std::fs::write(
        &job,
        format!(
            r#"
[source]
type = "generator"
generator = "vehicles"
vehicles = 5
watermark_delay = "2s"

[[steps]]
union = {{ path = "{}", time_column = "event_time", watermark_delay = "30s", speed = "2x", batch_size = 200 }}

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = {{ kind = "tumbling", size = "1s" }}
aggregates = [{{ fn = "count", as = "n" }}]

[sink]
path = "{}"
"#,
            data.display(),
            out.display()
        ),
    )
    .unwrap();
    let before = names(tmp.path());
    let child = spawn(&job, &[]);
    std::thread::sleep(Duration::from_millis(1000));
    kill(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(700));
    let mut child = child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal drains: the history is still being replayed"
    );
    kill(&child, libc::SIGTERM);
    let (code, err) = finish(child, Duration::from_secs(5));
    assert_eq!(code, Some(128 + libc::SIGTERM), "{err}");
    assert!(
        err.contains("drains") && err.contains("cancelling"),
        "says what happened each time: {err}"
    );
    assert_eq!(names(tmp.path()), before, "nothing published");
}

#[test]
fn a_sigkilled_runs_staging_and_spill_files_are_removed_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 120);
    let out = tmp.path().join("out.parquet");
    let spill = tmp.path().join("spill");
    let job = job(tmp.path(), &data, &out);
    let spill_arg = spill.to_str().unwrap().to_string();
    let staged = |n: &String| n.starts_with(".out.parquet.weir-") && n.ends_with(".inprogress");
    // a batch run killed while it holds a spill directory, then a pipelined
    // run killed while its sink stages the output file
    let mut batch = spawn(
        &job,
        &[
            "--mode",
            "batch",
            "--speed",
            "10x",
            "--spill-dir",
            &spill_arg,
        ],
    );
    wait_until("no spill directory", || {
        names(&spill).iter().any(|n| n.starts_with("weir-spill-"))
    });
    batch.kill().unwrap();
    batch.wait().unwrap();
    let mut piped = spawn(&job, &["--speed", "10x", "--spill-dir", &spill_arg]);
    wait_until("the sink never staged its file", || {
        names(tmp.path()).iter().any(staged)
    });
    piped.kill().unwrap();
    piped.wait().unwrap();
    let left = names(tmp.path());
    assert!(left.iter().any(staged), "{left:?}");
    // (each run removes what the runs before it left: here the batch run's)
    assert_eq!(
        names(&spill)
            .iter()
            .filter(|n| n.starts_with("weir-spill-"))
            .count(),
        1,
        "{:?}",
        names(&spill)
    );
    // look-alikes that are not weir's
    std::fs::write(tmp.path().join(".out.parquet.weir-notes.txt"), b"mine").unwrap();
    std::fs::create_dir(spill.join("weir-spill-mine")).unwrap();
    std::fs::write(spill.join("weir-spill-mine/keep"), b"mine").unwrap();
    let next = weir()
        .arg("run")
        .arg(&job)
        .args(["--parallelism", "2", "--spill-dir", &spill_arg])
        .output()
        .unwrap();
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let after = names(tmp.path());
    assert!(!after.iter().any(staged), "{after:?}");
    assert!(after.contains(".out.parquet.weir-notes.txt"));
    assert!(
        !after.iter().any(|n| n.ends_with(".weir-lock")),
        "{after:?}"
    );
    assert_eq!(
        names(&spill),
        BTreeSet::from(["weir-spill-mine".to_string()]),
        "only the killed runs' spill directories went"
    );
    assert_eq!(
        std::fs::read(spill.join("weir-spill-mine/keep")).unwrap(),
        b"mine"
    );
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    let file = std::fs::File::open(&out).unwrap();
    let got: Vec<_> = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    weir::compare::same_rows(&got, &expected, &expected[0].schema(), 1e-9).unwrap();
}
