//! A full disk while writing a checkpoint or a spill file: the job fails
//! with an error naming the device problem and the path, publishes nothing
//! partial, and a restart after space was freed completes with the same
//! output as an uninterrupted run. Uses a tiny tmpfs (needs root to mount;
//! the test says so and passes vacuously elsewhere).

mod common;

use arrow_array::RecordBatch;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Grows the tmpfs, keeping its files.
    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn job_file(dir: &Path, data: &Path) -> PathBuf {
    let path = dir.join("job.toml");
    let text = format!(
        r#"
name = "diskfull"

[source]
type = "parquet"
path = "{data}"
time_column = "event_time"
watermark_delay = "30s"

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = {{ kind = "tumbling", size = "10s" }}
aggregates = [{{ fn = "avg", column = "speed", as = "avg" }}, {{ fn = "count", as = "n" }}]

[sink]
type = "parquet"
path = "unused"
"#,
        data = data.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn setup(tmp: &Path) -> (PathBuf, Vec<RecordBatch>) {
    let data = tmp.join("data");
    common::generate_obd(&data, 200, 300, 2);
    let job = job_file(tmp, &data);
    let expected = common::batch_reference(&job, &tmp.join("reference"));
    (job, expected)
}

/// `weir run job --output out ARGS DIR_FLAG DIR`, stdout discarded.
fn run_job(job: &Path, out: &Path, args: &[&str], dir: (&str, &Path)) -> std::process::Output {
    weir()
        .arg("run")
        .arg(job)
        .args(args)
        .arg(dir.0)
        .arg(dir.1)
        .arg("--output")
        .arg(out)
        .stdout(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_full_checkpoint_disk_fails_cleanly_and_a_restart_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, expected) = setup(tmp.path());
    let Some(disk) = Tmpfs::mount(&tmp.path().join("ckpt"), "48k") else {
        eprintln!("skipped: cannot mount a tmpfs (not root)");
        return;
    };
    let out = tmp.path().join("out");
    let run = || {
        run_job(
            &job,
            &out,
            &[
                "--parallelism",
                "2",
                "--speed",
                "100x",
                "--checkpoint-interval",
                "30ms",
            ],
            ("--checkpoint-dir", &disk.0),
        )
    };
    let failed = run();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "the run should fail on a full disk"
    );
    assert!(
        stderr.contains("No space left on device") && stderr.contains(&*disk.0.to_string_lossy()),
        "{stderr}"
    );
    // what was published is whole files of complete checkpoints: a subset of the result
    let partial = common::read_parquet_parts(&out);
    let all = weir::compare::canonical(&expected[0].schema(), &expected).unwrap();
    let n = partial.iter().map(|b| b.num_rows()).sum::<usize>();
    assert!(n < all.num_rows(), "{n} rows published before the failure");

    disk.resize("64m");
    let again = run();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let got = common::read_parquet_parts(&out);
    weir::compare::same_rows(&got, &expected, &expected[0].schema(), 1e-9).unwrap();
}

#[test]
fn a_full_spill_disk_fails_cleanly_and_a_restart_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, expected) = setup(tmp.path());
    let Some(disk) = Tmpfs::mount(&tmp.path().join("spill"), "64k") else {
        eprintln!("skipped: cannot mount a tmpfs (not root)");
        return;
    };
    let out = tmp.path().join("out");
    let run = || {
        run_job(
            &job,
            &out,
            &["--mode", "batch", "--memory", "256KiB"],
            ("--spill-dir", &disk.0),
        )
    };
    let failed = run();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "the run should fail on a full spill disk"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(!out.exists(), "nothing published by the failed run");
    disk.resize("256m");
    let again = run();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    weir::compare::same_rows(
        &common::read_parquet_parts(&out),
        &expected,
        &expected[0].schema(),
        1e-9,
    )
    .unwrap();
}
