//! Shards restore at another shard count: `--savepoint-at TIME` stops every
//! shard at the same rows with a savepoint, and `--restore shards:N`
//! restores the N old shards' savepoints at M shards (2 → 3 → 2 here);
//! the output equals one process. Savepoints taken at different rows
//! (SIGTERM at two moments), a missing shard, a changed job and a job
//! whose shards do not divide it by key groups are refused by name,
//! leaving the output untouched.

mod common;

use common::finish;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use weir::compare::same_rows;

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.env_remove("WEIR_SHARD").env_remove("CHECKPOINT_DIR");
    c
}

/// A keyed job over 10 minutes of OBD readings (some late): per-vehicle
/// 10 s windows; `size` lets a test change its definition.
fn windows_job(dir: &Path, size: &str) -> PathBuf {
    let data = dir.join("obd");
    if !data.exists() {
        common::generate_obd(&data, 30, 600, 3);
    }
    let job = dir.join(format!("windows-{size}.toml"));
    std::fs::write(
        &job,
        format!(
            "name = \"sharded\"\n[source]\npath = \"{}\"\ntime_column = \"event_time\"\n\
             watermark_delay = \"30s\"\nbatch_size = 500\n\
             [[steps]]\nkey_by = [\"vehicle_id\"]\n\
             [[steps]]\nwindow = {{ kind = \"tumbling\", size = \"{size}\" }}\n\
             aggregates = [{{ fn = \"sum\", column = \"speed\", as = \"total\" }}, \
             {{ fn = \"count\", as = \"n\" }}]\n\
             [sink]\ntype = \"parquet\"\npath = \"unused\"\n",
            data.display()
        ),
    )
    .unwrap();
    job
}

/// One shard of a checkpointed pipelined run, with `extra` flags.
fn spawn(job: &Path, out: &Path, ckpt: &Path, shard: &str, extra: &[&str]) -> Child {
    weir()
        .arg("run")
        .arg(job)
        .args(["--parallelism", "2", "--json", "--shard", shard])
        .arg("--output")
        .arg(out)
        .arg("--checkpoint-dir")
        .arg(ckpt)
        .args(["--checkpoint-interval", "50ms"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs every shard of `count` to its end; their outputs.
fn run_shards(job: &Path, out: &Path, ckpt: &Path, count: usize, extra: &[&str]) -> Vec<Output> {
    let children: Vec<Child> = (0..count)
        .map(|i| spawn(job, out, ckpt, &format!("{i}/{count}"), extra))
        .collect();
    children.into_iter().map(finish).collect()
}

fn metrics(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap()
}

fn status(target: &Path) -> (bool, serde_json::Value) {
    let o = weir()
        .arg("status")
        .arg(target)
        .arg("--json")
        .output()
        .unwrap();
    (
        o.status.success(),
        serde_json::from_slice(&o.stdout).unwrap(),
    )
}

/// Every name under `dir`, recursively, with its size (what a refused run must not touch).
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            let name = e.path().display().to_string();
            if meta.is_dir() {
                out.push((name.clone(), 0));
                out.extend(listing(&e.path()));
            } else {
                out.push((name, meta.len()));
            }
        }
    }
    out.sort();
    out
}

const AT_3: &str = "2026-11-01T00:03:00Z";
const AT_6: &str = "2026-11-01T00:06:00Z";

#[test]
fn two_shards_stopped_at_one_event_time_continue_as_three_then_as_two() {
    let tmp = tempfile::tempdir().unwrap();
    let job = windows_job(tmp.path(), "10s");
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    let schema = expected[0].schema();
    let total: usize = expected.iter().map(|b| b.num_rows()).sum();
    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("ckpt"));

    // 2 shards until 00:03 of event time
    let first = run_shards(&job, &out, &ckpt, 2, &["--savepoint-at", AT_3]);
    let mut written = 0;
    for o in &first {
        let m = metrics(o);
        assert!(m["checkpoints"]["savepoint"].is_string(), "{m}");
        written += m["rows_out"].as_u64().unwrap() as usize;
        assert!(String::from_utf8_lossy(&o.stderr).contains("stopped with savepoint"));
    }
    assert!(
        written > 0 && written < total / 2,
        "stopped early: {written} of {total}"
    );
    let (complete, _) = status(&out);
    assert!(!complete, "a target stopped at a savepoint is not complete");

    // 3 shards from the 2 savepoints, until 00:06
    let second = run_shards(
        &job,
        &out,
        &ckpt,
        3,
        &["--restore", "shards:2", "--savepoint-at", AT_6],
    );
    for o in &second {
        let m = metrics(o);
        assert_eq!(
            m["checkpoints"]["restored_from_shards"],
            serde_json::json!([[0, 1], [1, 1]]),
            "{m}"
        );
    }
    // back to 2 shards (their own checkpoints from the first run are older)
    let third = run_shards(&job, &out, &ckpt, 2, &["--restore", "shards:3"]);
    for o in &third {
        let m = metrics(o);
        assert_eq!(
            m["checkpoints"]["restored_from_shards"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(m["checkpoints"]["savepoint"].is_null());
    }
    let (complete, st) = status(&out);
    assert!(complete, "{st}");
    assert_eq!(st["shards"], 2);
    assert!(st["adopted"].as_u64().unwrap() > 0, "{st}");
    same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9).unwrap();

    // a shard restarted later restores its own checkpoint (the job had finished)
    let again = finish(spawn(&job, &out, &ckpt, "1/2", &["--restore", "shards:3"]));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
    same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9).unwrap();
    // a fresh start at 2 shards would mix its rows with the adopted ones: refused
    let before = listing(&out);
    let o = weir()
        .arg("run")
        .arg(&job)
        .args(["--shard", "0/2", "--output"])
        .arg(&out)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("a run as 3 shards"),
        "{e}"
    );
    assert_eq!(
        listing(&out),
        before,
        "a refused run leaves the target as it was"
    );
}

#[test]
fn the_seed_join_restores_at_another_shard_count() {
    let tmp = tempfile::tempdir().unwrap();
    let job = common::seed_job(tmp.path(), 400, 3);
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    let schema = expected[0].schema();
    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("ckpt"));
    // the app side's watermark lags 9 minutes: its source reads further before it stops
    let first = run_shards(
        &job,
        &out,
        &ckpt,
        2,
        &["--savepoint-at", "2026-11-01T00:02:00Z"],
    );
    assert!(first
        .iter()
        .all(|o| metrics(o)["checkpoints"]["savepoint"].is_string()));
    run_shards(&job, &out, &ckpt, 3, &["--restore", "shards:2"]);
    let (complete, st) = status(&out);
    assert!(complete, "{st}");
    same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9).unwrap();
}

#[test]
fn savepoints_at_different_rows_are_refused_until_the_shards_stop_at_one_time() {
    let tmp = tempfile::tempdir().unwrap();
    let job = windows_job(tmp.path(), "10s");
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    let schema = expected[0].schema();
    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("ckpt"));
    // SIGTERM takes a savepoint where each shard happens to be
    let paced = ["--speed", "60x"];
    let shards: Vec<Child> = (0..2)
        .map(|i| spawn(&job, &out, &ckpt, &format!("{i}/2"), &paced))
        .collect();
    for (child, wait) in shards.iter().zip([1500, 3000]) {
        std::thread::sleep(std::time::Duration::from_millis(wait));
        // SAFETY: kill has no memory-safety preconditions
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    for child in shards {
        let o = child.wait_with_output().unwrap();
        assert!(String::from_utf8_lossy(&o.stderr).contains("stopped with savepoint"));
    }
    let before = listing(&out);
    let o = finish_err(spawn(&job, &out, &ckpt, "0/3", &["--restore", "shards:2"]));
    assert!(
        o.contains("stopped at different rows") && o.contains("--savepoint-at"),
        "{o}"
    );
    assert_eq!(listing(&out), before, "a refused restore touches nothing");
    // each old shard continues at 2 until one event time, then the rescale works
    run_shards(
        &job,
        &out,
        &ckpt,
        2,
        &["--savepoint-at", "2026-11-01T00:08:00Z"],
    );
    run_shards(&job, &out, &ckpt, 3, &["--restore", "shards:2"]);
    assert!(status(&out).0);
    same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9).unwrap();
}

/// The stderr of a run that must fail.
fn finish_err(child: Child) -> String {
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "the run should have been refused");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn restores_that_cannot_fit_together_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let job = windows_job(tmp.path(), "10s");
    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("ckpt"));
    // only shard 0 of 2 took its savepoint
    finish(spawn(&job, &out, &ckpt, "0/2", &["--savepoint-at", AT_3]));
    let before = listing(&out);
    let e = finish_err(spawn(&job, &out, &ckpt, "0/3", &["--restore", "shards:2"]));
    assert!(e.contains("shard 1/2 has no complete checkpoint"), "{e}");
    assert_eq!(listing(&out), before);
    finish(spawn(&job, &out, &ckpt, "1/2", &["--savepoint-at", AT_3]));
    let before = listing(&out);
    // the job changed: its window is another size
    let changed = windows_job(tmp.path(), "20s");
    let e = finish_err(spawn(
        &changed,
        &out,
        &ckpt,
        "0/3",
        &["--restore", "shards:2"],
    ));
    assert!(
        e.contains("changed since shard 0/2 took this checkpoint"),
        "{e}"
    );
    assert_eq!(listing(&out), before);
    // shards:N restores into shards, and a savepoint needs checkpoints
    let o = weir()
        .arg("run")
        .arg(&job)
        .arg("--output")
        .arg(tmp.path().join("one"))
        .arg("--checkpoint-dir")
        .arg(&ckpt)
        .args(["--restore", "shards:2"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("give --shard I/M"), "{e}");
    for bad in [
        vec!["--savepoint-at", AT_3],
        vec!["--savepoint-at", "noon"],
        vec!["--restore", "shards:x"],
    ] {
        let o = weir()
            .arg("run")
            .arg(&job)
            .arg("--output")
            .arg(tmp.path().join("one"))
            .args(&bad)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad:?}");
        assert!(
            e.contains("savepoint-at") || e.contains("shards:N") || e.contains("--checkpoint-dir"),
            "{bad:?}: {e}"
        );
    }
    assert!(
        !tmp.path().join("one").exists(),
        "refused runs write nothing"
    );
    // a job without event time would never stop at a time
    let timeless = tmp.path().join("timeless.toml");
    std::fs::write(
        &timeless,
        format!(
            "name = \"timeless\"\n[source]\npath = \"{}\"\n\
             [[steps]]\nfilter = \"speed > 10\"\n\
             [sink]\ntype = \"parquet\"\npath = \"unused\"\n",
            tmp.path().join("obd").display()
        ),
    )
    .unwrap();
    let o = weir()
        .arg("run")
        .arg(&timeless)
        .arg("--output")
        .arg(tmp.path().join("one"))
        .arg("--checkpoint-dir")
        .arg(tmp.path().join("ckpt-timeless"))
        .args(["--savepoint-at", AT_3])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("no source of this job has event time"),
        "{e}"
    );
    assert!(!tmp.path().join("one").exists());
}

#[test]
fn a_job_whose_shards_deal_out_splits_restores_only_at_its_own_count() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("obd");
    common::generate_obd(&data, 30, 300, 3);
    let job = tmp.path().join("plain.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"plain\"\n[source]\npath = \"{}\"\ntime_column = \"event_time\"\n\
             watermark_delay = \"30s\"\nbatch_size = 500\n\
             [[steps]]\nfilter = \"speed > 10\"\n\
             [sink]\ntype = \"parquet\"\npath = \"unused\"\n",
            data.display()
        ),
    )
    .unwrap();
    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("ckpt"));
    run_shards(
        &job,
        &out,
        &ckpt,
        2,
        &["--savepoint-at", "2026-11-01T00:02:00Z"],
    );
    let before = listing(&out);
    let e = finish_err(spawn(&job, &out, &ckpt, "0/3", &["--restore", "shards:2"]));
    assert!(
        e.contains("cannot restore the checkpoints of 2 shards at 3")
            && e.contains("do not divide it by key groups"),
        "{e}"
    );
    assert_eq!(listing(&out), before);
}

#[test]
fn one_process_stops_at_an_event_time_and_continues_at_another_parallelism() {
    let tmp = tempfile::tempdir().unwrap();
    let job = windows_job(tmp.path(), "10s");
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    let schema = expected[0].schema();
    let total: usize = expected.iter().map(|b| b.num_rows()).sum();
    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("ckpt"));
    let run = |extra: &[&str]| {
        let o = weir()
            .arg("run")
            .arg(&job)
            .args(["--json", "--output"])
            .arg(&out)
            .arg("--checkpoint-dir")
            .arg(&ckpt)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        metrics(&o)
    };
    // before the first row's watermark: stops at once, nothing published
    let m = run(&[
        "--parallelism",
        "2",
        "--savepoint-at",
        "2026-10-31T00:00:00Z",
    ]);
    assert!(m["checkpoints"]["savepoint"].is_string(), "{m}");
    assert_eq!(m["rows_out"], 0);
    let m = run(&["--parallelism", "2", "--savepoint-at", AT_6]);
    let first = m["rows_out"].as_u64().unwrap() as usize;
    assert!(first > 0 && first < total, "{first} of {total}");
    // restored where its watermark is already there: it reads nothing more
    let m = run(&[
        "--parallelism",
        "2",
        "--savepoint-at",
        AT_6,
        "--restore",
        "latest",
    ]);
    assert!(m["checkpoints"]["savepoint"].is_string(), "{m}");
    assert_eq!(
        (m["rows_in"].as_u64(), m["rows_out"].as_u64()),
        (Some(0), Some(0)),
        "{m}"
    );
    // after the last row: the run ends without a savepoint
    let m = run(&[
        "--parallelism",
        "3",
        "--savepoint-at",
        "2026-11-02T00:00:00Z",
        "--restore",
        "latest",
    ]);
    assert!(m["checkpoints"]["savepoint"].is_null(), "{m}");
    assert_eq!(m["rows_out"].as_u64().unwrap() as usize, total - first);
    same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9).unwrap();
}
