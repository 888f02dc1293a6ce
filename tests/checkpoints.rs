//! Checkpoints in one process: barriers flow, checkpoints complete and are
//! retained, a restart from the last checkpoint neither loses nor repeats
//! rows, a corrupt checkpoint falls back to the previous one, and an
//! operator that cannot be checkpointed is named in a clear error.

use arrow_array::{Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weir::checkpoint::{CheckpointConfig, RestartStrategy, RestoreFrom};
use weir::observe::{RunMessage, RunObserver};
use weir::operator::{Ctx, Output, Source, SourcePoll, TaskInfo};
use weir::state::{StateReader, StateWriter};
use weir::{col, lit, ExecConfig, Job, Watermark};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

/// Emits its share of `0..n` (values with `v % parallelism == subtask`),
/// `per_poll` at a time, pausing `nap` between polls; the position is the
/// next value. Checkpointable.
struct Counting {
    next: i64,
    n: i64,
    step: i64,
    per_poll: i64,
    nap: Duration,
}

impl Source for Counting {
    fn poll_next(&mut self, _: &mut Ctx, out: &mut Output) -> weir::Result<SourcePoll> {
        if self.next >= self.n {
            return Ok(SourcePoll::Exhausted);
        }
        let vals: Vec<i64> = (0..self.per_poll)
            .map(|i| self.next + i * self.step)
            .filter(|&v| v < self.n)
            .collect();
        self.next += self.per_poll * self.step;
        let last = *vals.last().expect("at least one value");
        out.emit(RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vals))]).unwrap());
        out.emit_watermark(Watermark::EventTime(last));
        std::thread::sleep(self.nap);
        Ok(SourcePoll::Ready)
    }

    fn snapshot(&mut self, _: &mut Ctx, state: &mut StateWriter) -> weir::Result<()> {
        state.put("next", &self.next)
    }

    fn restore(&mut self, _: &mut Ctx, state: &StateReader) -> weir::Result<()> {
        if let Some(next) = state.value::<i64>("next")? {
            self.next = next;
        }
        Ok(())
    }
}

fn counting_job(
    n: i64,
    nap: Duration,
    fail_at: Option<(i64, Arc<AtomicBool>)>,
) -> (Job, weir::Collected) {
    let job = Job::new();
    let factory: weir::operator::SourceFactory = Arc::new(move |info: &TaskInfo| {
        Ok(Box::new(Counting {
            next: info.subtask as i64,
            n,
            step: info.parallelism as i64,
            per_poll: 50,
            nap,
        }) as Box<dyn Source>)
    });
    let s = job
        .source("counting", schema(), factory)
        .filter(col("v").gt_eq(lit(0i64)))
        .unwrap()
        .rebalance()
        .map_batches(move |b| {
            if let Some((at, failed)) = &fail_at {
                let v = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                if v.values().contains(at) && !failed.swap(true, Ordering::SeqCst) {
                    return Err(
                        weir::Error::Plan(format!("injected failure at {at}")).into_runtime()
                    );
                }
            }
            Ok(b)
        });
    let out = s.collect().unwrap();
    (job, out)
}

trait IntoRuntime {
    fn into_runtime(self) -> weir::Error;
}

impl IntoRuntime for weir::Error {
    /// A plan error is not restarted; wrap it as an operator's runtime error.
    fn into_runtime(self) -> weir::Error {
        weir::Error::Connector {
            endpoint: "test".into(),
            message: self.to_string(),
        }
    }
}

fn values(out: &weir::Collected) -> Vec<i64> {
    let mut v: Vec<i64> = out
        .batches()
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    v.sort_unstable();
    v
}

/// Asserts `got` (sorted) is exactly `0..n`, naming what is missing or repeated.
fn assert_exactly_once(got: &[i64], n: i64, what: &str) {
    let mut counts = vec![0u32; n as usize];
    let mut outside = Vec::new();
    for &v in got {
        match counts.get_mut(v as usize) {
            Some(c) if v >= 0 => *c += 1,
            _ => outside.push(v),
        }
    }
    let missing: Vec<usize> = (0..n as usize).filter(|&i| counts[i] == 0).collect();
    let repeated: Vec<usize> = (0..n as usize).filter(|&i| counts[i] > 1).collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && outside.is_empty(),
        "{what}: {} rows; {} missing (first {:?}), {} repeated (first {:?}), {} unexpected",
        got.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        repeated.len(),
        &repeated[..repeated.len().min(5)],
        outside.len()
    );
}

fn config(dir: &std::path::Path, parallelism: usize) -> ExecConfig {
    ExecConfig::pipelined()
        .with_parallelism(parallelism)
        .with_checkpoints(
            CheckpointConfig::new(dir, "counting")
                .with_interval(Duration::from_millis(20))
                .with_retain(2),
        )
}

#[test]
fn checkpoints_complete_while_the_job_runs_and_old_ones_are_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, out) = counting_job(20_000, Duration::from_millis(2), None);
    let m = job.run(&config(tmp.path(), 2)).unwrap();
    assert_exactly_once(&values(&out), 20_000, "uninterrupted");
    let stats = m.checkpoints.expect("checkpoint stats");
    assert!(stats.completed >= 3, "{stats:?}");
    assert!(stats.restored_from.is_none());
    let dirs: Vec<String> = std::fs::read_dir(tmp.path().join("counting"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(dirs.len(), 2, "retain 2: {dirs:?}");
    // the newest is final: a restart has nothing left to do
    let (job2, out2) = counting_job(20_000, Duration::ZERO, None);
    let m2 = job2.run(&config(tmp.path(), 2)).unwrap();
    assert!(m2.checkpoints.unwrap().already_finished);
    assert_eq!(out2.num_rows(), 0);
}

/// Records what a run tells its observer.
#[derive(Default)]
struct Messages(std::sync::Mutex<Vec<RunMessage>>);

impl RunObserver for Messages {
    fn on_message(&self, message: &RunMessage) {
        self.0.lock().unwrap().push(message.clone());
    }
}

#[test]
fn a_failure_restarts_from_the_last_checkpoint_without_loss_or_duplicates() {
    for parallelism in [1, 3] {
        let tmp = tempfile::tempdir().unwrap();
        let failed = Arc::new(AtomicBool::new(false));
        let (job, out) = counting_job(
            30_000,
            Duration::from_millis(1),
            Some((17_000, failed.clone())),
        );
        let messages = Arc::new(Messages::default());
        let cfg = config(tmp.path(), parallelism)
            .with_restart(RestartStrategy {
                attempts: 2,
                backoff: Duration::from_millis(10),
            })
            .with_observer(messages.clone());
        let m = job.run(&cfg).unwrap();
        assert!(failed.load(Ordering::SeqCst), "the failure was injected");
        // the restart was told to the observer, not printed by the executor
        let told = messages.0.lock().unwrap().clone();
        assert!(
            matches!(told.as_slice(), [RunMessage::Restart { error, attempt: 1, attempts: 2, .. }]
                if error.contains("injected failure at 17000")),
            "{told:?}"
        );
        let stats = m.checkpoints.unwrap();
        assert_eq!(stats.restarts, 1);
        assert!(stats.restored_from.is_some(), "{stats:?}");
        assert_exactly_once(&values(&out), 30_000, &format!("p={parallelism}"));
    }
}

#[test]
fn without_restarts_the_failure_is_reported_and_a_rerun_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let failed = Arc::new(AtomicBool::new(false));
    let (job, out) = counting_job(30_000, Duration::from_millis(1), Some((20_000, failed)));
    let e = job.run(&config(tmp.path(), 2)).unwrap_err().to_string();
    assert!(e.contains("injected failure at 20000"), "{e}");
    let before = values(&out);
    assert!(
        !before.is_empty() && before.len() < 30_000,
        "{}",
        before.len()
    );
    // the same job, run again with the same directory, continues
    let m = job.run(&config(tmp.path(), 2)).unwrap();
    assert!(m.checkpoints.unwrap().restored_from.is_some());
    assert_exactly_once(&values(&out), 30_000, "rerun");
}

#[test]
fn an_operator_without_snapshot_support_is_named() {
    struct Plain;
    impl Source for Plain {
        fn poll_next(&mut self, _: &mut Ctx, _: &mut Output) -> weir::Result<SourcePoll> {
            std::thread::sleep(Duration::from_millis(5));
            Ok(SourcePoll::Pending)
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let job = Job::new();
    let f: weir::operator::SourceFactory =
        Arc::new(|_: &TaskInfo| Ok(Box::new(Plain) as Box<dyn Source>));
    job.source("plain", schema(), f).sink_stdout();
    let e = job.run(&config(tmp.path(), 1)).unwrap_err().to_string();
    assert!(
        e.contains("`plain`") && e.contains("does not support checkpoints"),
        "{e}"
    );
}

#[test]
fn restore_from_a_given_id_and_a_missing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, _) = counting_job(2_000, Duration::ZERO, None);
    let cfg = config(tmp.path(), 1);
    job.run(&cfg).unwrap();
    let mut missing = cfg.clone();
    missing.checkpoint = missing
        .checkpoint
        .map(|c| c.with_restore(RestoreFrom::Id(999)));
    let e = job.run(&missing).unwrap_err().to_string();
    assert!(e.contains("chk-00000999"), "{e}");
    let _ = AtomicU64::new(0);
}
