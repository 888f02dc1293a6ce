//! Both executors fail cleanly when an operator fails.
//!
//! For `ExecMode::Pipelined` and `ExecMode::Batch` at parallelism 1 and 3:
//! an operator that returns an error or panics makes `Job::run` return an
//! error naming the operator and the cause, promptly (every run happens on
//! its own thread and is given 60 s to answer, so a hang fails the test
//! instead of blocking it); a failed job publishes no sink output, leaves no
//! staging files and no spill files; and a failure downstream of full,
//! blocked pipelined channels still ends the run at once.

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use weir::{Error, ExecConfig, ExecMode, Job, Stream};

/// Longest a failing run may take before we call it a hang.
const HANG: Duration = Duration::from_secs(60);

/// Every executor configuration under test.
fn configs() -> Vec<ExecConfig> {
    let mut out = Vec::new();
    for mode in [ExecMode::Pipelined, ExecMode::Batch] {
        for parallelism in [1, 3] {
            out.push(ExecConfig::new(mode).with_parallelism(parallelism));
        }
    }
    out
}

fn label(config: &ExecConfig) -> String {
    format!("{} p={}", config.mode, config.parallelism)
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// `batches` batches of `rows` rows, dealt round-robin into `splits` splits.
fn splits(batches: usize, rows: usize, splits: usize) -> Vec<Vec<RecordBatch>> {
    let mut out = vec![Vec::new(); splits.max(1)];
    for b in 0..batches {
        let start = (b * rows) as i64;
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    (start..start + rows as i64).map(|i| i % 7),
                )),
                Arc::new(Int64Array::from_iter_values(start..start + rows as i64)),
            ],
        )
        .expect("columns match the schema");
        let n = out.len();
        out[b % n].push(batch);
    }
    out
}

/// A source over `batches` x `rows` rows, split for `parallelism` subtasks.
fn source(job: &Job, batches: usize, rows: usize, parallelism: usize) -> Stream {
    job.from_batches(schema(), splits(batches, rows, parallelism))
        .expect("a valid memory source")
}

/// Runs `f` on its own thread; fails the test if it takes longer than [`HANG`].
/// Returns `f`'s result and how long it took.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> (T, Duration) {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG) {
        Ok(v) => (v, started.elapsed()),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: no answer within {HANG:?}: the run hangs")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the run thread panicked"),
    }
}

/// A `map_batches` closure that calls `fail` on the `n`-th batch it sees
/// (counting from 1, over all subtasks) and passes every other batch on.
fn nth_batch<F>(
    n: usize,
    fail: F,
) -> impl Fn(RecordBatch) -> weir::Result<RecordBatch> + Send + Sync + 'static
where
    F: Fn() -> weir::Result<RecordBatch> + Send + Sync + 'static,
{
    let seen = AtomicUsize::new(0);
    move |batch| {
        if seen.fetch_add(1, Ordering::SeqCst) + 1 == n {
            fail()
        } else {
            Ok(batch)
        }
    }
}

fn boom() -> weir::Result<RecordBatch> {
    Err(Error::option("boom", "the fifth batch is bad"))
}

/// Asserts `err` is the failure of `map_batches` caused by [`boom`].
fn assert_boom(what: &str, err: &Error) {
    assert_boom_in(what, err, "map_batches");
}

/// Asserts `err` is the failure of operator `name` caused by [`boom`].
fn assert_boom_in(what: &str, err: &Error, name: &str) {
    let msg = err.to_string();
    match err {
        Error::Operator {
            operator, source, ..
        } => {
            assert_eq!(operator, name, "{what}: {msg}");
            assert!(
                matches!(**source, Error::InvalidOption { ref option, .. } if option == "boom"),
                "{what}: wrong cause: {msg}"
            );
        }
        other => panic!("{what}: expected Error::Operator, got {other:?}"),
    }
    assert!(
        msg.contains("map_batches") && msg.contains("the fifth batch is bad"),
        "{what}: {msg}"
    );
}

/// Every entry under `dir`, recursively (relative names).
fn entries(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, p: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            out.push(
                path.strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn staging_files(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|n| n.ends_with(".inprogress"))
        .collect()
}

#[test]
fn a_failing_operator_fails_the_job_naming_it() {
    for config in configs() {
        let what = label(&config);
        let (result, took) = bounded(&what, move || {
            let job = Job::new();
            let out = source(&job, 40, 100, 3)
                .map_batches(nth_batch(5, boom))
                .collect()
                .unwrap();
            let result = job.run(&config);
            (result.map(|m| m.rows_out), out.num_rows())
        });
        let (result, _) = result;
        let err = result.expect_err(&format!("{what}: the job succeeded"));
        assert_boom(&what, &err);
        assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
    }
}

/// An error before a shuffle and one after it: both name `map_batches`.
#[test]
fn a_failing_operator_after_a_shuffle_fails_the_job_naming_it() {
    for config in configs() {
        let what = label(&config);
        let (result, _) = bounded(&what, move || {
            let job = Job::new();
            source(&job, 40, 100, 3)
                .rebalance()
                .map_batches(nth_batch(5, boom))
                .collect()
                .unwrap();
            job.run(&config).map(|m| m.rows_out)
        });
        assert_boom(
            &what,
            &result.expect_err(&format!("{what}: the job succeeded")),
        );
    }
}

/// A closure that panics on the fifth batch fails a job in `mode` with
/// [`Error::Panic`] naming `map_batches` and carrying the panic message.
fn check_panic_is_reported(mode: ExecMode) {
    for parallelism in [1, 3] {
        let config = ExecConfig::new(mode).with_parallelism(parallelism);
        let what = label(&config);
        let (result, took) = bounded(&what, move || {
            let job = Job::new();
            source(&job, 40, 100, 3)
                .map_batches(nth_batch(5, || panic!("kaboom in the fifth batch")))
                .collect()
                .unwrap();
            job.run(&config).map(|m| m.rows_out)
        });
        match result {
            Err(Error::Panic { operator, message }) => {
                assert!(
                    operator.contains("map_batches"),
                    "{what}: panic blamed on `{operator}`"
                );
                assert!(
                    message.contains("kaboom in the fifth batch"),
                    "{what}: {message}"
                );
            }
            other => panic!("{what}: expected Error::Panic, got {other:?}"),
        }
        assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
    }
}

#[test]
fn a_panicking_operator_fails_a_pipelined_job_naming_it() {
    check_panic_is_reported(ExecMode::Pipelined);
}

#[test]
fn a_panicking_operator_fails_a_batch_job_naming_it() {
    check_panic_is_reported(ExecMode::Batch);
}

/// The sink has written part of the output to its staging file when the
/// failure comes; nothing may be published and the staging file must go.
#[test]
fn a_failed_job_publishes_no_parquet_output() {
    for config in configs() {
        let what = label(&config);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.parquet");
        // In these configurations the sink runs while the map does, so it
        // must have started its staging file before the failure.
        let sink_runs_concurrently = config.mode == ExecMode::Pipelined || config.parallelism == 1;
        let saw_staging = Arc::new(AtomicBool::new(false));
        let (dir_path, out_path, saw) = (
            dir.path().to_path_buf(),
            target.clone(),
            saw_staging.clone(),
        );
        let (result, _) = bounded(&what, move || {
            let fail = move || {
                // Wait (briefly) for the sink to start writing, then fail.
                let deadline = Instant::now() + Duration::from_secs(5);
                while sink_runs_concurrently && Instant::now() < deadline {
                    if !staging_files(&dir_path).is_empty() {
                        saw.store(true, Ordering::SeqCst);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                boom()
            };
            let job = Job::new();
            source(&job, 40, 100, 3)
                .map_batches(nth_batch(20, fail))
                .sink_parquet(out_path)
                .unwrap();
            job.run(&config).map(|m| m.rows_out)
        });
        assert_boom(
            &what,
            &result.expect_err(&format!("{what}: the job succeeded")),
        );
        if sink_runs_concurrently {
            assert!(
                saw_staging.load(Ordering::SeqCst),
                "{what}: the sink never started a staging file"
            );
        }
        assert!(
            !target.exists(),
            "{what}: {} was published",
            target.display()
        );
        assert_eq!(
            entries(dir.path()),
            Vec::<String>::new(),
            "{what}: files left behind"
        );
    }
}

/// Batch mode with a 64 KiB budget spills its shuffle buffers; the failure
/// comes in the next stage while spill files exist, and they are removed.
#[test]
fn a_failed_batch_job_leaves_no_spill_files() {
    for parallelism in [1, 3] {
        let what = format!("batch p={parallelism}");
        let spill = tempfile::tempdir().unwrap();
        let config = ExecConfig::batch()
            .with_parallelism(parallelism)
            .with_memory(64 * 1024)
            .with_spill_dir(spill.path());
        let spill_files_at_failure = Arc::new(AtomicUsize::new(0));
        let (spill_path, seen) = (spill.path().to_path_buf(), spill_files_at_failure.clone());
        let (result, _) = bounded(&what, move || {
            let fail = move || {
                let files = entries(&spill_path)
                    .iter()
                    .filter(|e| e.ends_with(".arrow") || e.contains('/'))
                    .count();
                seen.store(files, Ordering::SeqCst);
                boom()
            };
            let job = Job::new();
            // 60 x 2000 rows x 16 bytes = 1.9 MB through a 64 KiB budget.
            source(&job, 60, 2000, parallelism)
                .rebalance()
                .map_batches(nth_batch(5, fail))
                .collect()
                .unwrap();
            job.run(&config).map(|m| m.spill_files)
        });
        assert_boom(
            &what,
            &result.expect_err(&format!("{what}: the job succeeded")),
        );
        assert!(
            spill_files_at_failure.load(Ordering::SeqCst) > 0,
            "{what}: nothing was spilled before the failure, so this test shows nothing"
        );
        assert_eq!(
            entries(spill.path()),
            Vec::<String>::new(),
            "{what}: spill files left behind"
        );
    }
}

/// 200 batches of 10k rows through channels of 1000 rows: the sources block
/// on full channels while the map after `rebalance()` fails. The run must
/// still end promptly, without the sources reading all their input.
#[test]
fn a_failure_behind_full_channels_ends_the_run_promptly() {
    for parallelism in [1, 3] {
        let what = format!("pipelined p={parallelism}");
        let produced = Arc::new(AtomicUsize::new(0));
        let count = produced.clone();
        let (result, took) = bounded(&what, move || {
            let fail = || {
                // Let the upstream fill every channel and block.
                std::thread::sleep(Duration::from_millis(300));
                boom()
            };
            let job = Job::new();
            let config = ExecConfig::pipelined()
                .with_parallelism(parallelism)
                .with_channel_rows(1000);
            source(&job, 200, 10_000, parallelism)
                .map_batches(move |b| {
                    count.fetch_add(1, Ordering::SeqCst);
                    Ok(b)
                })
                .rebalance()
                .map_batches(nth_batch(5, fail))
                .collect()
                .unwrap();
            job.run(&config).map(|m| m.rows_out)
        });
        // The second `map_batches` of the job is named `map_batches-2`.
        let err = result.expect_err(&format!("{what}: the job succeeded"));
        assert_boom_in(&what, &err, "map_batches-2");
        let produced = produced.load(Ordering::SeqCst);
        assert!(
            produced < 200,
            "{what}: the sources read all {produced} batches: they were not stopped"
        );
        assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
    }
}

/// The helpers work: a job without a failure succeeds in every
/// configuration and returns every row, so the failures above are real.
#[test]
fn the_same_jobs_succeed_without_a_failure() {
    for config in configs() {
        let what = label(&config);
        let dir = tempfile::tempdir().unwrap();
        let target: PathBuf = dir.path().join("out.parquet");
        let out_path = target.clone();
        let (result, _) = bounded(&what, move || {
            let job = Job::new();
            let s = source(&job, 40, 100, 3).map_batches(nth_batch(1000, boom));
            let out = s.collect().unwrap();
            s.rebalance()
                .map_batches(Ok)
                .sink_parquet(out_path)
                .unwrap();
            job.run(&config).map(|m| (m.rows_out, out.num_rows()))
        });
        let (rows_out, collected) = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(collected, 4000, "{what}");
        assert_eq!(rows_out, 8000, "{what}");
        assert!(target.is_file(), "{what}: no output");
        assert!(staging_files(dir.path()).is_empty(), "{what}");
    }
}
