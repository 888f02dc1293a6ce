//! Processing-time behaviour in pipelined runs: idle sources stop holding
//! back the watermark only when idleness is configured; processing-time
//! windows fire on timers while input still arrives; ingestion time stamps
//! rows. (Batch runs fire processing-time windows at end of input.)

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use crossbeam_channel::{unbounded, Receiver};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::operator::{Ctx, Output, Source, SourceFactory, SourcePoll, TaskInfo};
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, Watermark};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
    ]))
}

fn batch(times: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![1; times.len()])),
            Arc::new(Int64Array::from(times.to_vec())),
        ],
    )
    .unwrap()
}

/// Emits its batches (each followed by watermark max - 1), optionally one
/// per `pace`, then waits (Pending) until `stop` is set.
struct TestSource {
    batches: Vec<RecordBatch>,
    pos: usize,
    pace: Duration,
    last: Instant,
    stop: Arc<AtomicBool>,
}

impl Source for TestSource {
    fn poll_next(&mut self, _: &mut Ctx, out: &mut Output) -> weir::Result<SourcePoll> {
        if self.pos < self.batches.len() && self.last.elapsed() >= self.pace {
            let b = self.batches[self.pos].clone();
            self.pos += 1;
            self.last = Instant::now();
            let max = b
                .column(1)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .copied()
                .max()
                .unwrap();
            out.emit(b);
            out.emit_watermark(Watermark::EventTime(max - 1));
            return Ok(SourcePoll::Ready);
        }
        if self.pos == self.batches.len() && self.stop.load(Ordering::SeqCst) {
            return Ok(SourcePoll::Exhausted);
        }
        Ok(SourcePoll::Pending)
    }
}

fn source(batches: Vec<RecordBatch>, pace: Duration, stop: &Arc<AtomicBool>) -> SourceFactory {
    let stop = stop.clone();
    Arc::new(move |_: &TaskInfo| {
        Ok(Box::new(TestSource {
            batches: batches.clone(),
            pos: 0,
            pace,
            last: Instant::now() - pace,
            stop: stop.clone(),
        }) as Box<dyn Source>)
    })
}

/// Runs a union of a quiet source (rows up to 500 ms, then silent) and a busy
/// one (rows up to 10 s); returns the window starts seen before `stop`.
fn windows_before_stop(idle_timeout: Option<Duration>) -> Vec<i64> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = unbounded::<i64>();
    let job = Job::new();
    let mut quiet = job
        .source(
            "quiet",
            schema(),
            source(vec![batch(&[100, 500])], Duration::ZERO, &stop),
        )
        .with_source_event_time("ts")
        .unwrap();
    if let Some(t) = idle_timeout {
        quiet = quiet.with_idle_timeout(t).unwrap();
    }
    let busy = job
        .source(
            "busy",
            schema(),
            source(
                vec![batch(&[200, 3_000, 6_000, 10_000])],
                Duration::ZERO,
                &stop,
            ),
        )
        .with_source_event_time("ts")
        .unwrap();
    quiet
        .union(&busy)
        .unwrap()
        .key_by(["k"])
        .unwrap()
        .window(Window::tumbling(Duration::from_secs(1)))
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .map_batches(move |b| {
            for s in b.column(1).as_primitive::<Int64Type>().values() {
                let _ = tx.send(*s);
            }
            Ok(b)
        })
        .collect()
        .unwrap();
    // the job runs here until the observer, after 1.5 s, lets the sources end
    let observer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let seen = collect_for(&rx, Duration::from_millis(1500));
            stop.store(true, Ordering::SeqCst);
            seen
        })
    };
    job.run(&ExecConfig::pipelined().with_parallelism(1))
        .unwrap();
    observer.join().unwrap()
}

fn collect_for(rx: &Receiver<i64>, d: Duration) -> Vec<i64> {
    let deadline = Instant::now() + d;
    let mut v = Vec::new();
    while let Ok(x) = rx.recv_deadline(deadline) {
        v.push(x);
    }
    v.sort();
    v
}

#[test]
fn an_idle_input_stops_holding_back_the_watermark_only_when_configured() {
    // window [0,1000) needs both inputs past 999: the quiet one stays at 499
    let stalled = windows_before_stop(None);
    assert!(
        stalled.is_empty(),
        "without idleness nothing fires: {stalled:?}"
    );
    let progressed = windows_before_stop(Some(Duration::from_millis(200)));
    assert_eq!(
        progressed,
        vec![0, 3000, 6000],
        "windows the busy input completed"
    );
}

#[test]
fn processing_time_windows_fire_on_timers_while_input_still_arrives() {
    let stop = Arc::new(AtomicBool::new(true));
    let (tx, rx) = unbounded::<i64>();
    let batches: Vec<RecordBatch> = (0..8).map(|i| batch(&[i, i, i])).collect();
    let job = Job::new();
    let started = Instant::now();
    let out = job
        .source(
            "paced",
            schema(),
            source(batches, Duration::from_millis(150), &stop),
        )
        .key_by(["k"])
        .unwrap()
        .window(Window::tumbling(Duration::from_millis(300)))
        .processing_time()
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .map_batches(move |b| {
            let _ = tx.send(started.elapsed().as_millis() as i64);
            Ok(b)
        })
        .collect()
        .unwrap();
    job.run(&ExecConfig::pipelined().with_parallelism(1))
        .unwrap();
    let total: i64 = out
        .batches()
        .iter()
        .map(|b| arrow_arith::aggregate::sum(b.column(3).as_primitive::<Int64Type>()).unwrap())
        .sum();
    assert_eq!(total, 24, "every row is in exactly one window");
    let firings: Vec<i64> = rx.try_iter().collect();
    let ran = started.elapsed().as_millis() as i64;
    assert!(
        firings.len() >= 2,
        "rows spread over ~1 s fill several 300 ms windows: {firings:?}"
    );
    assert!(
        firings[0] < ran - 200,
        "the first window fired before the input ended: {firings:?} of {ran} ms"
    );

    // batch mode: everything fires at end of input, nothing is lost
    let job = Job::new();
    let out = job
        .source(
            "paced",
            schema(),
            source((0..8).map(|i| batch(&[i])).collect(), Duration::ZERO, &stop),
        )
        .with_parallelism(1)
        .unwrap()
        .key_by(["k"])
        .unwrap()
        .window(Window::tumbling(Duration::from_millis(300)))
        .processing_time()
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .collect()
        .unwrap();
    job.run(&ExecConfig::new(ExecMode::Batch).with_parallelism(2))
        .unwrap();
    let total: i64 = out
        .batches()
        .iter()
        .map(|b| arrow_arith::aggregate::sum(b.column(3).as_primitive::<Int64Type>()).unwrap())
        .sum();
    assert_eq!(total, 8);
}

#[test]
fn ingestion_time_windows_count_every_row() {
    let stop = Arc::new(AtomicBool::new(true));
    for mode in [ExecMode::Pipelined, ExecMode::Batch] {
        let job = Job::new();
        let out = job
            .source(
                "s",
                schema(),
                source(
                    (0..5).map(|i| batch(&[i, i])).collect(),
                    Duration::ZERO,
                    &stop,
                ),
            )
            .with_ingestion_time("ingested_at")
            .unwrap()
            .key_by(["k"])
            .unwrap()
            .window(Window::tumbling(Duration::from_millis(100)))
            .aggregate([Agg::count().alias("n")])
            .unwrap()
            .collect()
            .unwrap();
        let m = job.run(&ExecConfig::new(mode).with_parallelism(1)).unwrap();
        assert_eq!(m.late_rows, 0);
        let total: i64 = out
            .batches()
            .iter()
            .map(|b| arrow_arith::aggregate::sum(b.column(3).as_primitive::<Int64Type>()).unwrap())
            .sum();
        assert_eq!(total, 10, "{mode}");
    }
}

#[test]
fn interval_early_firings_emit_running_results_before_the_window_closes() {
    let stop = Arc::new(AtomicBool::new(true));
    let (tx, rx) = unbounded::<(i64, String)>();
    // all rows fall in one 10 s event-time window; the source paces 6 batches 150 ms apart
    let batches: Vec<RecordBatch> = (0..6).map(|i| batch(&[i * 10, i * 10 + 1])).collect();
    let job = Job::new();
    let started = Instant::now();
    let out = job
        .source(
            "paced",
            schema(),
            source(batches, Duration::from_millis(150), &stop),
        )
        .with_source_event_time("ts")
        .unwrap()
        .key_by(["k"])
        .unwrap()
        .window(Window::tumbling(Duration::from_secs(10)))
        .trigger(weir::operators::EarlyFiring {
            every_rows: None,
            every_ms: Some(200),
            purge: false,
        })
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .map_batches(move |b| {
            let n = b.column(3).as_primitive::<Int64Type>();
            let op = b.column(4).as_string::<i32>();
            for i in 0..b.num_rows() {
                let _ = tx.send((n.value(i), op.value(i).to_string()));
            }
            Ok(b)
        })
        .collect()
        .unwrap();
    job.run(&ExecConfig::pipelined().with_parallelism(1))
        .unwrap();
    let ran = started.elapsed();
    let seen: Vec<(i64, String)> = rx.try_iter().collect();
    assert!(
        seen.len() >= 3,
        "several early firings over ~{ran:?}: {seen:?}"
    );
    assert_eq!(seen[0].1, "insert");
    assert!(seen[1..].iter().all(|s| s.1 == "update"), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "running counts grow: {seen:?}"
    );
    assert_eq!(
        seen.last().unwrap().0,
        12,
        "the final firing counts every row"
    );
    assert_eq!(out.num_rows(), seen.len());
}

/// A process function with processing-time timers: pipelined runs fire them
/// on the clock while input still arrives, batch runs at end of input; every
/// timer fires exactly once in both.
#[test]
fn process_functions_fire_processing_time_timers() {
    use weir::operators::{KeyRow, KeyedProcessFunction, ProcessContext};
    struct Remind;
    impl KeyedProcessFunction for Remind {
        type State = ();
        fn on_rows(
            &mut self,
            _: &KeyRow,
            _: &RecordBatch,
            _: &mut (),
            ctx: &mut ProcessContext,
        ) -> weir::Result<()> {
            let t = ctx.processing_time() + 100;
            ctx.register_processing_timer(t);
            Ok(())
        }
        fn on_processing_timer(
            &mut self,
            key: &KeyRow,
            _: i64,
            _: &mut (),
            ctx: &mut ProcessContext,
        ) -> weir::Result<()> {
            let k = key.columns().column(0).as_primitive::<Int64Type>().value(0);
            ctx.emit(RecordBatch::try_new(
                fired_schema(),
                vec![Arc::new(Int64Array::from(vec![k]))],
            )?)
        }
    }
    fn fired_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]))
    }
    let stop = Arc::new(AtomicBool::new(true));
    for (mode, pace) in [(ExecMode::Pipelined, 150), (ExecMode::Batch, 0)] {
        let (tx, rx) = unbounded::<Instant>();
        // 5 batches at distinct event times: each releases one on_rows call
        // distinct keys: timers of one key at the same millisecond would be one timer
        let batches: Vec<RecordBatch> = (0..5)
            .map(|i| {
                RecordBatch::try_new(
                    schema(),
                    vec![
                        Arc::new(Int64Array::from(vec![i])),
                        Arc::new(Int64Array::from(vec![i * 1000])),
                    ],
                )
                .unwrap()
            })
            .collect();
        let job = Job::new();
        let out = job
            .source(
                "paced",
                schema(),
                source(batches, Duration::from_millis(pace), &stop),
            )
            .with_parallelism(1)
            .unwrap()
            .with_source_event_time("ts")
            .unwrap()
            .key_by(["k"])
            .unwrap()
            .process(fired_schema(), || Remind)
            .unwrap()
            .map_batches(move |b| {
                let _ = tx.send(Instant::now());
                Ok(b)
            })
            .collect()
            .unwrap();
        let started = Instant::now();
        job.run(&ExecConfig::new(mode).with_parallelism(1)).unwrap();
        let ended = Instant::now();
        assert_eq!(out.num_rows(), 5, "{mode}: one firing per registered timer");
        let first = rx.try_iter().next().unwrap();
        if mode == ExecMode::Pipelined {
            assert!(
                first < ended - Duration::from_millis(100),
                "{mode}: a timer fired before the input ended ({:?} of {:?})",
                first - started,
                ended - started
            );
        }
    }
}
