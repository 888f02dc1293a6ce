//! A user's data is sacred: weir never overwrites or deletes its own input,
//! deletes only files it wrote in directories it marked, runs one job per
//! checkpoint directory and output, reads each input file once (no
//! symlink loops, no FIFOs), refuses to restore state into a changed job,
//! never lets a checkpoint name files outside its sink, and keeps spill
//! files private. Every test ends by checking that the input files'
//! bytes are unchanged.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// Every file below `dir` (links not followed) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let meta = std::fs::symlink_metadata(p).unwrap();
        if meta.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        } else if meta.is_file() {
            out.insert(p.to_path_buf(), std::fs::read(p).unwrap());
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// The input bytes are what they were.
fn assert_unchanged(before: &BTreeMap<PathBuf, Vec<u8>>, dir: &Path) {
    let after = snapshot(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files under {} changed",
        dir.display()
    );
    for (p, bytes) in before {
        assert!(after[p] == *bytes, "{} changed", p.display());
    }
}

/// Small OBD input: `vehicles` x `seconds` x 3 rows in `files` files.
fn input(dir: &Path, vehicles: usize, seconds: usize, files: usize) -> PathBuf {
    let data = dir.join("data");
    common::generate_obd(&data, vehicles, seconds, files);
    data
}

/// A per-vehicle 1 s count job reading `source` and writing `sink`;
/// `extra` is appended (more tables).
fn job(dir: &Path, source: &Path, sink: &Path, extra: &str) -> PathBuf {
    job_with(dir, source, sink, WINDOW_STEPS, extra)
}

const WINDOW_STEPS: &str = r#"
[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = { kind = "tumbling", size = "1s" }
aggregates = [{ fn = "count", as = "n" }]
"#;

/// A job over OBD readings with `steps`.
fn job_with(dir: &Path, source: &Path, sink: &Path, steps: &str, extra: &str) -> PathBuf {
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("job-{n}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
name = "safety"

[source]
path = "{}"
time_column = "event_time"
watermark_delay = "30s"
batch_size = 200
{steps}
[sink]
path = "{}"
{extra}
"#,
            source.display(),
            sink.display()
        ),
    )
    .unwrap();
    path
}

fn run(job: &Path, extra: &[&str]) -> Output {
    let mut c = weir();
    c.arg("run").arg(job).args(extra);
    if !extra.contains(&"--parallelism") {
        c.args(["--parallelism", "2"]);
    }
    c.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn canon(p: &Path) -> String {
    p.canonicalize().unwrap().display().to_string()
}

// ---- 1. a sink never overwrites or deletes its own input ----

#[test]
fn a_sink_path_equal_to_its_source_file_is_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 60, 1);
    let file = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let before = snapshot(&data);
    let out = run(&job(tmp.path(), &file, &file, ""), &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "the input was replaced: {err}");
    assert!(
        err.contains("refusing to touch") && err.contains(&canon(&file)) && err.contains("input"),
        "{err}"
    );
    assert_unchanged(&before, &data);
}

#[test]
fn a_job_writing_into_the_directory_it_reads_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 60, 2);
    // an earlier run's part-file directory (a filtered copy) ...
    let parts = tmp.path().join("parts");
    let copy = "\n[[steps]]\nfilter = \"speed >= 0\"\n";
    let first = run(
        &job_with(tmp.path(), &data, &parts, copy, ""),
        &["--mode", "batch"],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let before_parts = snapshot(&parts);
    let before = snapshot(&data);
    // ... read and written back by the next job
    let out = run(&job(tmp.path(), &parts, &parts, ""), &["--mode", "batch"]);
    assert!(!out.status.success(), "its own input was replaced");
    assert!(stderr(&out).contains(&canon(&parts)), "{}", stderr(&out));
    // a sink inside the input folder, and one reached through a link to it
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    for sink in [
        data.join("result"),
        link.join("result.parquet"),
        link.clone(),
    ] {
        let out = run(&job(tmp.path(), &data, &sink, ""), &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{} was accepted", sink.display());
        assert!(
            err.contains(&canon(&data)) && err.contains("input"),
            "{}: {err}",
            sink.display()
        );
    }
    assert_unchanged(&before_parts, &parts);
    assert_unchanged(&before, &data);
}

#[test]
fn two_sinks_sharing_a_path_are_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 60, 1);
    let before = snapshot(&data);
    let out_dir = tmp.path().join("out");
    for late in [out_dir.clone(), out_dir.join("late.parquet")] {
        let extra = format!("\n[late_sink]\npath = \"{}\"\n", late.display());
        let out = run(&job(tmp.path(), &data, &out_dir, &extra), &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{} was accepted", late.display());
        assert!(
            err.contains("late_sink") || err.contains("sink `parquet_sink"),
            "names the sinks: {err}"
        );
        assert!(err.contains("every sink needs its own path"), "{err}");
        assert!(!out_dir.exists(), "nothing was written");
    }
    assert_unchanged(&before, &data);
}

#[test]
fn the_library_refuses_a_sink_over_its_source_too() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 10, 30, 1);
    let before = snapshot(&data);
    let job = weir::Job::new();
    let e = job
        .parquet(&data)
        .unwrap()
        .sink_parquet(data.join("again.parquet"))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&canon(&data)), "while building: {e}");
    // a source added after the sink is checked when the job runs
    let prev = tmp.path().join("prev");
    std::fs::create_dir(&prev).unwrap();
    std::fs::copy(
        std::fs::read_dir(&data)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
        prev.join("x.parquet"),
    )
    .unwrap();
    let before_prev = snapshot(&prev);
    let job = weir::Job::new();
    job.parquet(&data)
        .unwrap()
        .sink_parquet(prev.join("x.parquet"))
        .unwrap();
    job.parquet(&prev)
        .unwrap()
        .sink_parquet(tmp.path().join("other.parquet"))
        .unwrap();
    let e = job
        .run(&weir::ExecConfig::batch().with_parallelism(2))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&canon(&prev.join("x.parquet"))), "{e}");
    assert_unchanged(&before_prev, &prev);
    assert_unchanged(&before, &data);
}

// ---- 2. a directory sink deletes only what weir wrote ----

/// A directory with another tool's files that start with `part-`.
fn foreign_output(dir: &Path) -> PathBuf {
    let out = dir.join("out");
    std::fs::create_dir_all(out.join("part-archive")).unwrap();
    std::fs::write(out.join("part-archive/keep.txt"), b"my archive").unwrap();
    std::fs::write(
        out.join("part-00000-3f2a9c1e-1111-2222-3333-444455556666-c000.snappy.parquet"),
        b"spark output",
    )
    .unwrap();
    out
}

#[test]
fn a_directory_sink_never_deletes_files_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 60, 2);
    let before = snapshot(&data);
    let out = foreign_output(tmp.path());
    let theirs = snapshot(&out);
    let job = job(tmp.path(), &data, &out, "");
    for mode in ["batch", "pipelined"] {
        let o = run(&job, &["--mode", mode]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{mode}: their files were replaced");
        assert!(err.contains("part-") && err.contains("weir"), "{err}");
        assert_unchanged(&theirs, &out);
    }
    // checkpointed runs publish into the target one part at a time
    let ckpt = tmp.path().join("ckpt");
    let o = run(&job, &["--checkpoint-dir", ckpt.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "checkpointed: their files were deleted"
    );
    assert_unchanged(&theirs, &out);
    assert_unchanged(&before, &data);
}

#[test]
fn a_marked_output_is_replaced_but_a_foreign_file_in_it_stops_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 60, 2);
    let before = snapshot(&data);
    let out = tmp.path().join("out");
    let job = job(tmp.path(), &data, &out, "");
    let first = run(&job, &["--mode", "batch"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(out.join(".weir-target").is_file(), "weir marks its output");
    let rows = common::read_parquet_parts(&out);
    // weir's own earlier output is replaced, at another parallelism too
    let again = run(&job, &["--mode", "batch", "--parallelism", "1"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let n = |b: &[arrow_array::RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
    assert_eq!(n(&common::read_parquet_parts(&out)), n(&rows));
    // a file the user put there stops the next run, which names it
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let ours = snapshot(&out);
    let o = run(&job, &["--mode", "batch"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("notes.txt"), "{}", stderr(&o));
    assert_unchanged(&ours, &out);
    // a non-empty directory weir never marked is not weir's, whatever its names
    let unmarked = tmp.path().join("unmarked");
    std::fs::create_dir(&unmarked).unwrap();
    std::fs::write(unmarked.join("part-00000.parquet"), b"not weir's").unwrap();
    let o = run(
        &job,
        &["--mode", "batch", "--output", unmarked.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains(".weir-target"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(unmarked.join("part-00000.parquet")).unwrap(),
        b"not weir's"
    );
    assert_unchanged(&before, &data);
}

// ---- 4. input discovery is finite and exact ----

/// Runs `weir run JOB --json` as a child, killed after `limit`; returns the
/// metrics, or panics naming what went wrong.
fn run_json(job: &Path, extra: &[&str], limit: Duration) -> (serde_json::Value, String) {
    let mut child = weir()
        .arg("run")
        .arg(job)
        .args(["--json", "--parallelism", "2"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("weir run did not finish within {limit:?} (hung)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    (serde_json::from_slice(&out.stdout).unwrap(), err)
}

#[test]
fn link_loops_fifos_and_aliases_are_read_once_and_never_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 60, 2); // 3,600 rows in two files
    let first = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let before = snapshot(&data);
    let link = |to: &Path, at: &Path| std::os::unix::fs::symlink(to, at).unwrap();
    link(Path::new("."), &data.join("self"));
    std::fs::create_dir(data.join("a")).unwrap();
    std::fs::create_dir(data.join("b")).unwrap();
    link(Path::new("../b"), &data.join("a/loop"));
    link(Path::new("../a"), &data.join("b/loop"));
    link(&first, &data.join("alias.parquet"));
    let fifo = data.join("pipe.parquet");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // the same file named three more ways: through `..`, a link, a second path
    let job = job(tmp.path(), &data, &tmp.path().join("out"), "");
    let text = std::fs::read_to_string(&job).unwrap().replace(
        &format!("path = \"{}\"", data.display()),
        &format!(
            "paths = [\"{}\", \"{}\", \"{}\"]",
            data.display(),
            data.join("../data")
                .join(first.file_name().unwrap())
                .display(),
            data.join("self/self").display()
        ),
    );
    std::fs::write(&job, text).unwrap();
    for mode in ["batch", "pipelined"] {
        let (metrics, err) = run_json(&job, &["--mode", mode], Duration::from_secs(60));
        assert_eq!(metrics["rows_in"], 3600, "{mode}: every row once; {err}");
        assert!(
            err.contains("pipe.parquet") && err.contains("FIFO"),
            "the FIFO is skipped with a warning: {err}"
        );
    }
    std::fs::remove_file(&fifo).unwrap();
    for l in ["self", "a/loop", "b/loop", "alias.parquet"] {
        std::fs::remove_file(data.join(l)).unwrap();
    }
    std::fs::remove_dir(data.join("a")).unwrap();
    std::fs::remove_dir(data.join("b")).unwrap();
    assert_unchanged(&before, &data);
}

// ---- 3. one run per checkpoint directory and output ----

/// Waits until the run checkpointing into `dir` took a checkpoint, at most 10 s.
fn wait_for_checkpoint(dir: &Path) {
    let started = Instant::now();
    let taken = || {
        std::fs::read_dir(dir).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("chk-"))
        })
    };
    while !taken() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no checkpoint in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_run_on_the_same_checkpoints_or_output_fails_at_once_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 120, 2);
    let before = snapshot(&data);
    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    let job = job(tmp.path(), &data, &out, "");
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    // about 6 s at 20x
    let first = weir()
        .arg("run")
        .arg(&job)
        .args(["--parallelism", "2", "--speed", "20x"])
        .args(["--checkpoint-interval", "200ms", "--checkpoint-dir"])
        .arg(&ckpt)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = format!("PID {}", first.id());
    wait_for_checkpoint(&ckpt.join("safety"));
    let ckpt_arg = ckpt.to_str().unwrap();
    let out_b = tmp.path().join("out-b");
    for (extra, what) in [
        (
            vec![
                "--checkpoint-dir",
                ckpt_arg,
                "--output",
                out_b.to_str().unwrap(),
            ],
            "checkpoint directory",
        ),
        (vec!["--mode", "batch"], "output"),
        (vec!["--checkpoint-dir", ckpt_arg], "output"),
    ] {
        let started = Instant::now();
        let second = run(&job, &extra);
        let err = stderr(&second);
        assert!(
            !second.status.success(),
            "{extra:?}: a second run was let in"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{extra:?}: it failed at once"
        );
        assert!(err.contains(&pid) && err.contains(what), "{extra:?}: {err}");
    }
    assert!(!out_b.exists(), "the refused run wrote nothing");
    let done = first.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", stderr(&done));
    // exactly once: the first run's output alone
    weir::compare::same_rows(
        &common::read_parquet_parts(&out),
        &expected,
        &expected[0].schema(),
        1e-9,
    )
    .unwrap();
    assert!(
        !ckpt.join("safety/.weir-lock").exists(),
        "released at the end"
    );
    assert_unchanged(&before, &data);
}

// ---- 5. restoring into a changed job is refused ----

const SLIDING: &str = r#"
[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = { kind = "sliding", size = "10s", slide = "1s" }
aggregates = [{ fn = "count", as = "n" }]
"#;

const TUMBLING_5S: &str = r#"
[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = { kind = "tumbling", size = "5s" }
aggregates = [{ fn = "count", as = "n" }]
"#;

#[test]
fn restoring_a_checkpoint_into_a_changed_window_is_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 120, 2);
    let before = snapshot(&data);
    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    let ckpt_args = [
        "--checkpoint-interval",
        "200ms",
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
    ];
    let sliding = job_with(tmp.path(), &data, &out, SLIDING, "");
    // stopped with a savepoint part-way through (about 6 s at 20x)
    let first = weir()
        .arg("run")
        .arg(&sliding)
        .args(["--parallelism", "2", "--speed", "20x"])
        .args(ckpt_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let stop = weir()
        .args(["stop", "--savepoint", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    let stopped = first.wait_with_output().unwrap();
    let err = stderr(&stopped);
    let savepoint = err
        .lines()
        .find_map(|l| l.strip_prefix("weir: stopped with savepoint "))
        .unwrap_or_else(|| panic!("no savepoint: {err}"))
        .to_string();
    // the same checkpoints, now under a tumbling 5 s window
    let tumbling = job_with(tmp.path(), &data, &out, TUMBLING_5S, "");
    for restore in [vec![], vec!["--restore", savepoint.as_str()]] {
        let mut extra = ckpt_args.to_vec();
        extra.extend(&restore);
        let o = run(&tumbling, &extra);
        let err = stderr(&o);
        assert!(
            !o.status.success(),
            "{restore:?}: restored into a changed job"
        );
        assert!(
            err.contains("operator `window`")
                && err.contains("Sliding")
                && err.contains("Tumbling")
                && err.contains("--restore fresh"),
            "{restore:?}: {err}"
        );
    }
    // the way out: start over
    let mut extra = ckpt_args.to_vec();
    extra.extend(["--restore", "fresh"]);
    let o = run(&tumbling, &extra);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = common::batch_reference(&tumbling, &tmp.path().join("reference"));
    weir::compare::same_rows(
        &common::read_parquet_parts(&out),
        &expected,
        &expected[0].schema(),
        1e-9,
    )
    .unwrap();
    // a finished job's final checkpoint is no way around it either
    let o = run(&sliding, &ckpt_args);
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("operator `window`"),
        "{err}"
    );
    assert_unchanged(&before, &data);
}

// ---- 9. checkpoint contents are not trusted to name files ----

/// Writes a complete checkpoint `id` of job `job` under `ckpt` by hand:
/// no state, the given publish list, a manifest checksum that matches
/// (`valid`) or not.
fn crafted_checkpoint(
    ckpt: &Path,
    job: &str,
    id: u64,
    publish: &[(PathBuf, PathBuf)],
    valid: bool,
) {
    let dir = ckpt.join(job).join(format!("chk-{id:08}"));
    std::fs::create_dir_all(&dir).unwrap();
    let publish: Vec<String> = publish
        .iter()
        .map(|(from, to)| format!(r#"{{"from":"{}","to":"{}"}}"#, from.display(), to.display()))
        .collect();
    // the manifest's own fields, in order, as weir serializes them
    let body = |checksum: u64| {
        format!(
            r#"{{"version":2,"job":"{job}","id":{id},"completed_ms":0,"savepoint":false,"final":false,"operators":[],"publish":[{}],"checksum":{checksum}}}"#,
            publish.join(",")
        )
    };
    let sum = weir::state::checksum(body(0).as_bytes());
    let text = body(if valid { sum } else { sum ^ 1 });
    std::fs::write(dir.join("_manifest.json"), text).unwrap();
}

#[test]
fn a_crafted_checkpoint_cannot_rename_files_outside_its_sink() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 60, 1);
    let before = snapshot(&data);
    let file = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    let job = job(tmp.path(), &data, &out, "");
    let args = ["--checkpoint-dir", ckpt.to_str().unwrap()];
    let moved = tmp.path().join("moved.txt");
    // a checkpoint that verifies, asking to move a file of the user's, and
    // to move the input over itself through the sink's staging directory
    crafted_checkpoint(&ckpt, "safety", 5, &[(victim.clone(), moved.clone())], true);
    let o = run(&job, &args);
    let err = stderr(&o);
    assert!(!o.status.success(), "the crafted publish was applied");
    assert!(
        err.contains("refusing to touch") && err.contains("victim.txt"),
        "{err}"
    );
    crafted_checkpoint(
        &ckpt,
        "safety",
        6,
        &[(
            out.join(".weir-staging/../../data")
                .join(file.file_name().unwrap()),
            out.join("x.parquet"),
        )],
        true,
    );
    let o = run(&job, &args);
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("refusing to touch"), "{}", stderr(&o));
    // a manifest edited without its checksum is corrupt: skipped, never applied
    std::fs::remove_dir_all(&ckpt).unwrap();
    crafted_checkpoint(
        &ckpt,
        "safety",
        5,
        &[(victim.clone(), moved.clone())],
        false,
    );
    let o = run(&job, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("corrupt manifest"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!moved.exists());
    assert_unchanged(&before, &data);
}

#[test]
fn a_job_name_is_one_directory_and_retention_deletes_only_weirs_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 60, 2);
    let before = snapshot(&data);
    let ckpt = tmp.path().join("ckpt");
    let args = [
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
        "--checkpoint-interval",
        "50ms",
    ];
    let escaping = job(tmp.path(), &data, &tmp.path().join("out1"), "");
    let text = std::fs::read_to_string(&escaping).unwrap();
    std::fs::write(
        &escaping,
        text.replace("name = \"safety\"", "name = \"../escape\""),
    )
    .unwrap();
    let o = run(&escaping, &args);
    assert!(
        !o.status.success(),
        "a job name left the checkpoint directory"
    );
    assert!(stderr(&o).contains("job name"), "{}", stderr(&o));
    assert!(!tmp.path().join("escape").exists());
    // what looks like checkpoints but is not weir's survives retention
    let mine = ckpt.join("safety/chk-00000001");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"mine").unwrap();
    std::fs::create_dir_all(ckpt.join("safety/chk-1")).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("keep"), b"x").unwrap();
    std::os::unix::fs::symlink(&elsewhere, ckpt.join("safety/chk-00000002")).unwrap();
    let job = job_with(
        tmp.path(),
        &data,
        &tmp.path().join("out2"),
        WINDOW_STEPS,
        "\n[checkpoint]\nretain = 1\n",
    );
    let o = run(&job, &[&args[..], &["--speed", "60x"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(mine.join("notes.txt")).unwrap(), b"mine");
    assert!(ckpt.join("safety/chk-1").is_dir());
    assert_eq!(std::fs::read(elsewhere.join("keep")).unwrap(), b"x");
    assert_unchanged(&before, &data);
}

// ---- 10. spill files are the owner's only ----

#[test]
fn spill_directories_and_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = input(tmp.path(), 20, 60, 1);
    let before = snapshot(&data);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let parent = tmp.path().join("spill");
    std::fs::create_dir(&parent).unwrap();
    let manager = weir::spill::SpillManager::try_new(Some(&parent)).unwrap();
    assert_eq!(mode(manager.dir()), 0o700, "spill directory");
    let batch = common::to_batch(&[common::Row {
        key: 1,
        ts: 2,
        value: 3,
        speed: 4.0,
    }]);
    let mut w = manager.create_writer(&batch.schema(), "rows").unwrap();
    w.write(&batch).unwrap();
    let file = w.finish().unwrap();
    assert_eq!(mode(file.path()), 0o600, "spill file");
    drop(file);
    drop(manager);
    // a job that spills leaves nothing in its spill directory
    let job = job(tmp.path(), &data, &tmp.path().join("out"), "");
    let o = run(
        &job,
        &[
            "--mode",
            "batch",
            "--memory",
            "64KiB",
            "--spill-dir",
            parent.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&parent).unwrap().count(), 0);
    assert_unchanged(&before, &data);
}
