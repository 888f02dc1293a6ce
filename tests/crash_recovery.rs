//! Exactly-once recovery through real process kills: a checkpointed job
//! runs as a child process and is SIGKILLed at random moments (at least 20
//! times, each at a different point), then restarted with the same
//! checkpoint directory until it finishes. Its committed output must equal
//! an uninterrupted batch run's: no row lost, none repeated.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn job_file(dir: &Path, data: &Path, steps: &str) -> PathBuf {
    let path = dir.join("job.toml");
    let text = format!(
        r#"
name = "crash"

[source]
type = "parquet"
path = "{data}"
time_column = "event_time"
watermark_delay = "30s"
batch_size = 500

{steps}

[sink]
type = "parquet"
path = "unused"
"#,
        data = data.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

const WINDOW_STEPS: &str = r#"
[[steps]]
filter = "speed >= 0"

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = { kind = "tumbling", size = "10s" }
aggregates = [
  { fn = "sum", column = "speed", as = "total" },
  { fn = "max", column = "speed", as = "top" },
  { fn = "count", as = "n" },
]
"#;

fn spawn_run(job: &Path, out: &Path, ckpt: &Path, speed: &str) -> Child {
    weir()
        .arg("run")
        .arg(job)
        .args(["--parallelism", "2", "--json", "--speed", speed])
        .arg("--output")
        .arg(out)
        .arg("--checkpoint-dir")
        .arg(ckpt)
        .args(["--checkpoint-interval", "40ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits up to `d` for `child` to exit on its own.
fn wait_for(child: &mut Child, d: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn crash_until_done(
    job: &Path,
    out: &Path,
    ckpt: &Path,
    min_kills: usize,
    seed: u64,
) -> (usize, String) {
    let mut rng = common::Lcg(seed);
    let mut kills = 0;
    let mut delays = std::collections::BTreeSet::new();
    for _attempt in 0..200 {
        let mut child = spawn_run(job, out, ckpt, "60x");
        if kills < min_kills + 4 {
            let delay = Duration::from_millis(120 + rng.next(380));
            if wait_for(&mut child, delay).is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                delays.insert(delay);
                continue;
            }
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "the last run failed: {stderr}");
        assert!(
            kills >= min_kills,
            "the job finished after only {kills} kills"
        );
        assert!(
            delays.len() >= min_kills.min(kills) / 2,
            "kill points vary: {delays:?}"
        );
        return (kills, String::from_utf8_lossy(&output.stdout).to_string());
    }
    panic!("the job never finished");
}

#[test]
fn killed_twenty_times_the_output_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::generate_obd(&data, 40, 600, 3); // 72 000 readings over 10 minutes, ~10 s at 60x
    let job = job_file(tmp.path(), &data, WINDOW_STEPS);

    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    assert!(expected.iter().map(|b| b.num_rows()).sum::<usize>() > 2000);

    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    let (kills, stdout) = crash_until_done(&job, &out, &ckpt, 20, 7);
    let metrics: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        metrics["checkpoints"]["restored_from"].is_u64(),
        "the last run restored a checkpoint: {stdout}"
    );
    let got = common::read_parquet_parts(&out);
    let schema = expected[0].schema();
    weir::compare::same_rows(&got, &expected, &schema, 1e-9)
        .unwrap_or_else(|e| panic!("after {kills} kills: {e}"));
    // nothing half-written is visible
    let staging = out.join(".weir-staging");
    let leftovers: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "staging leftovers: {leftovers:?}");
    // a further restart finds the final checkpoint and does nothing
    let again = spawn_run(&job, &out, &ckpt, "max")
        .wait_with_output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
    weir::compare::same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9).unwrap();
}

#[test]
fn a_corrupt_latest_checkpoint_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::generate_obd(&data, 20, 300, 3);
    let job = job_file(tmp.path(), &data, WINDOW_STEPS);
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    // run until at least two checkpoints are complete, then kill
    let mut child = spawn_run(&job, &out, &ckpt, "60x");
    let complete = |ckpt: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(ckpt.join("crash"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.join("_manifest.json").exists());
        v.sort();
        v
    };
    let until = Instant::now() + Duration::from_secs(20);
    while complete(&ckpt).len() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let dirs = complete(&ckpt);
    assert!(dirs.len() >= 2, "{dirs:?}");
    // truncate a state file of the newest
    let newest = dirs.last().unwrap();
    let state = std::fs::read_dir(newest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "state"))
        .unwrap();
    let len = std::fs::metadata(&state).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&state)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let resumed = spawn_run(&job, &out, &ckpt, "max")
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    let name = newest.file_name().unwrap().to_string_lossy();
    assert!(
        stderr.contains("warning: skipping checkpoint") && stderr.contains(&*name),
        "{stderr}"
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&resumed.stdout)).unwrap();
    let restored = metrics["checkpoints"]["restored_from"].as_u64().unwrap();
    assert!(
        !name.ends_with(&format!("{restored:08}")),
        "restored {restored}, not the corrupt one"
    );
    weir::compare::same_rows(
        &common::read_parquet_parts(&out),
        &expected,
        &expected[0].schema(),
        1e-9,
    )
    .unwrap();
}
