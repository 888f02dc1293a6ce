//! A run reports to its observer: progress while it goes and final figures
//! when it ends (every row read, the stage in batch mode, none pipelined),
//! then `on_finish` once, also when the run fails; an observer that wants
//! no progress gets none.

use arrow_array::{Int64Array, RecordBatch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir::observe::{Progress, RunObserver};
use weir::{Agg, ExecConfig, ExecMode, Job, TumblingWindow, WatermarkStrategy};

/// Records every progress report and graph, and counts `on_finish`.
struct Recorder {
    wants: bool,
    reports: Mutex<Vec<Progress>>,
    graphs: Mutex<Vec<weir::observe::RunGraph>>,
    finished: AtomicUsize,
}

impl Recorder {
    fn new(wants: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            wants,
            reports: Mutex::new(Vec::new()),
            graphs: Mutex::new(Vec::new()),
            finished: AtomicUsize::new(0),
        })
    }
}

impl RunObserver for Recorder {
    fn wants_progress(&self) -> bool {
        self.wants
    }

    fn on_progress(&self, progress: &Progress) {
        self.reports.lock().unwrap().push(progress.clone());
    }

    fn on_start(&self, graph: &weir::observe::RunGraph) {
        self.graphs.lock().unwrap().push(graph.clone());
    }

    fn on_finish(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// 4 splits of 5 batches of 1000 rows: (key, t).
fn input(job: &Job) -> weir::Stream {
    let splits: Vec<Vec<RecordBatch>> = (0..4i64)
        .map(|s| {
            (0..5i64)
                .map(|b| {
                    let first = (s * 5 + b) * 1000;
                    let keys = Int64Array::from_iter_values((first..first + 1000).map(|i| i % 7));
                    let times = Int64Array::from_iter_values(first..first + 1000);
                    RecordBatch::try_from_iter([
                        ("k", Arc::new(keys) as _),
                        ("t", Arc::new(times) as _),
                    ])
                    .unwrap()
                })
                .collect()
        })
        .collect();
    job.from_batches(splits[0][0].schema(), splits)
        .unwrap()
        .assign_timestamps(
            "t",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10)),
        )
        .unwrap()
}

fn run(mode: ExecMode, observer: Arc<Recorder>) {
    run_at(mode, 2, observer);
}

fn run_at(mode: ExecMode, parallelism: usize, observer: Arc<Recorder>) -> weir::exec::JobMetrics {
    let job = Job::new();
    input(&job)
        .key_by(["k"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .collect()
        .unwrap();
    job.run(
        &ExecConfig::new(mode)
            .with_parallelism(parallelism)
            .with_observer(observer),
    )
    .unwrap()
}

#[test]
fn the_graph_and_the_figures_per_instance_add_up_to_the_runs_metrics() {
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for parallelism in [1, 3] {
            let observer = Recorder::new(true);
            let metrics = run_at(mode, parallelism, observer.clone());
            let at = format!("{mode} p={parallelism}");
            let graphs = observer.graphs.lock().unwrap().clone();
            assert_eq!(graphs.len(), 1, "{at}: told once, before the run");
            let graph = &graphs[0];
            assert_eq!(graph.mode, mode.to_string());
            let names: Vec<&str> = graph.operators.iter().map(|o| o.name.as_str()).collect();
            let expected: Vec<&str> = metrics.operators.iter().map(|o| o.name.as_str()).collect();
            assert_eq!(names, expected, "{at}: the live operators, in plan order");
            assert_eq!(graph.operators[0].kind, "source");
            assert_eq!(graph.operators.last().unwrap().kind, "sink");
            // the window is fed by a hash edge from the source's task
            let window = names.iter().position(|n| *n == "window").unwrap();
            assert!(
                graph
                    .edges
                    .iter()
                    .any(|e| e.to == window && e.kind == "hash"),
                "{at}: {:?}",
                graph.edges
            );
            let last = observer.reports.lock().unwrap().last().cloned().unwrap();
            assert_eq!(last.operators.len(), graph.operators.len(), "{at}");
            for ((op, g), m) in last
                .operators
                .iter()
                .zip(&graph.operators)
                .zip(&metrics.operators)
            {
                assert_eq!(op.subtasks.len(), g.parallelism, "{at} {}", g.name);
                assert_eq!(g.parallelism, m.parallelism, "{at} {}", g.name);
                let rows_out: u64 = op.subtasks.iter().map(|s| s.rows_out).sum();
                assert_eq!(rows_out, m.rows_out, "{at} {} rows out", g.name);
                if g.kind != "source" {
                    let rows_in: u64 = op.subtasks.iter().map(|s| s.rows_in).sum();
                    assert_eq!(rows_in, m.rows_in, "{at} {} rows in", g.name);
                    let bytes: u64 = op.subtasks.iter().map(|s| s.bytes_in).sum();
                    // two i64 columns per input row at least (the window's input)
                    assert!(g.name != "window" || bytes >= 16 * rows_in, "{at}: {bytes}");
                }
                for s in &op.subtasks {
                    let spent = s.busy + s.idle + s.backpressured;
                    assert!(
                        spent > Duration::ZERO,
                        "{at} {}: a subtask that ran took time",
                        g.name
                    );
                    assert!(
                        spent <= metrics.elapsed + Duration::from_millis(50),
                        "{at} {}",
                        g.name
                    );
                }
            }
            // by hand: t = 0..20,000 ms, k = i mod 7: 20 windows of 1 s x 7 keys
            assert_eq!(metrics.operators[window].rows_out, 140, "{at}");
            assert_eq!(last.memory_budget, 512 << 20);
        }
    }
}

#[test]
fn the_last_report_has_every_row_and_batch_runs_name_their_stage() {
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let observer = Recorder::new(true);
        run(mode, observer.clone());
        let reports = observer.reports.lock().unwrap().clone();
        let last = reports.last().expect("at least the final report");
        assert_eq!(last.rows_read, 20_000, "{mode}");
        assert!(
            reports.windows(2).all(|w| w[0].rows_read <= w[1].rows_read),
            "{mode}: rows read never go back"
        );
        assert!(last.watermark.is_some(), "{mode}: the sink saw watermarks");
        match mode {
            ExecMode::Batch => {
                let stage = last.stage.as_ref().expect("batch runs have stages");
                assert!(
                    stage.count >= 2 && (1..=stage.count).contains(&stage.index),
                    "{stage:?}"
                );
                assert!(!stage.operators.is_empty(), "{stage:?}");
            }
            ExecMode::Pipelined => assert!(last.stage.is_none()),
        }
        assert_eq!(observer.finished.load(Ordering::SeqCst), 1, "{mode}");
    }
}

#[test]
fn an_observer_that_wants_no_progress_gets_none() {
    let observer = Recorder::new(false);
    run(ExecMode::Batch, observer.clone());
    assert!(observer.reports.lock().unwrap().is_empty());
    assert_eq!(observer.finished.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failed_run_still_finishes_its_observer_once() {
    let observer = Recorder::new(true);
    let job = Job::new();
    input(&job)
        .map_batches(|_| {
            Err(weir::Error::Connector {
                endpoint: "test".into(),
                message: "broken".into(),
            })
        })
        .collect()
        .unwrap();
    let err = job
        .run(&ExecConfig::batch().with_observer(observer.clone()))
        .unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
    assert_eq!(observer.finished.load(Ordering::SeqCst), 1);
}

/// Records the messages a run tells.
#[derive(Default)]
struct Messages(Mutex<Vec<weir::observe::RunMessage>>);

impl RunObserver for Messages {
    fn on_message(&self, message: &weir::observe::RunMessage) {
        self.0.lock().unwrap().push(message.clone());
    }
}

#[test]
fn a_sinks_warning_reaches_the_observer_and_the_foreign_file_stays() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    // a killed run's staging directory holding a file weir did not write
    let staging = dir.path().join(".out.weir-staging-123-4");
    std::fs::create_dir(&staging).unwrap();
    let foreign = staging.join("notes.txt");
    std::fs::write(&foreign, "mine").unwrap();
    let job = Job::new();
    input(&job).sink_parquet(&target).unwrap();
    let messages = Arc::new(Messages::default());
    job.run(&ExecConfig::batch().with_observer(messages.clone()))
        .unwrap();
    let told = messages.0.lock().unwrap().clone();
    assert!(
        matches!(told.as_slice(), [weir::observe::RunMessage::Warning(w)]
            if w.contains("notes.txt") && w.contains("weir did not write it")),
        "{told:?}"
    );
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "mine");
    assert!(target.is_dir());
}
