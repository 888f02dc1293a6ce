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
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "safety"

[source]
path = "{}"
time_column = "event_time"
watermark_delay = "30s"
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
