//! A regular inner join of 1M × 1M rows on 200K keys: batch mode's
//! sort-merge join against pipelined mode's symmetric hash join, unlimited
//! and under a 64 MiB budget (both spill). And the peers' W2 in small: 1 s
//! per-key averages of two inputs joined on (key, window), one input's
//! watermark lagging by `lag` seconds (the join holds that much state, and
//! each watermark must find only the windows it closes; the window hash
//! join keeps rows by window and joins a closed window at once), and a
//! session window join of the raw rows (200 ms gap: sessions close all the
//! time; the symmetric hash join's due index).
//!
//! `cargo bench --bench joins`

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use std::time::Duration;
use weir::operators::join::JoinSpec;
use weir::{Agg, Collected, ExecConfig, ExecMode, Job, Stream, WatermarkStrategy, Window};

fn main() {
    divan::main();
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn side(salt: i64) -> Vec<Vec<RecordBatch>> {
    (0..2)
        .map(|split| {
            (0..500_000i64)
                .step_by(8192)
                .map(|start| {
                    let ids: Vec<i64> = (start..(start + 8192).min(500_000))
                        .map(|i| i * 2 + split)
                        .collect();
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| (i * salt) % 200_000),
                            )),
                            Arc::new(Int64Array::from(ids)),
                        ],
                    )
                    .expect("batch")
                })
                .collect()
        })
        .collect()
}

fn join(mode: ExecMode, memory: usize) -> usize {
    let job = Job::new();
    let l = job.from_batches(schema(), side(7)).expect("left");
    let r = job.from_batches(schema(), side(13)).expect("right");
    let out = l
        .join(&r, JoinSpec::regular().on(["k"], ["k"]))
        .expect("join")
        .collect()
        .expect("sink");
    job.run(&ExecConfig::new(mode).with_memory(memory))
        .expect("run");
    out.num_rows()
}

#[divan::bench(sample_count = 3, args = [usize::MAX, 64 << 20])]
fn sort_merge_batch(memory: usize) -> usize {
    join(ExecMode::Batch, memory)
}

#[divan::bench(sample_count = 3, args = [usize::MAX, 64 << 20])]
fn symmetric_hash_pipelined(memory: usize) -> usize {
    join(ExecMode::Pipelined, memory)
}

/// 2,000 keys × 300 s: one row per key and 250 ms on the left, per key and
/// second on the right (event time in ms), in time order.
fn timed_side(per_second: i64) -> Vec<Vec<RecordBatch>> {
    let step = 1000 / per_second;
    let times: Vec<i64> = (0..300_000i64).step_by(step as usize).collect();
    let batches = times
        .chunks(4)
        .map(|ts| {
            let n = ts.len() * 2_000;
            let keys = (0..n as i64).map(|i| i % 2_000);
            let t = ts.iter().flat_map(|&t| std::iter::repeat_n(t, 2_000));
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from_iter_values(keys)),
                    Arc::new(Int64Array::from_iter_values(t)),
                ],
            )
            .expect("batch")
        })
        .collect();
    vec![batches]
}

/// `timed_side(per_second)` as a source of `job`, event time in `v`,
/// watermarks `lag` behind.
fn timed(job: &Job, per_second: i64, lag: Duration) -> Stream {
    job.from_batches(schema(), timed_side(per_second))
        .expect("source")
        .assign_timestamps("v", WatermarkStrategy::bounded_out_of_orderness(lag))
        .expect("event time")
}

/// Runs `job` pipelined at parallelism 2; the rows `out` collected.
fn run_pipelined(job: &Job, out: &Collected) -> usize {
    job.run(&ExecConfig::new(ExecMode::Pipelined).with_parallelism(2))
        .expect("run");
    out.num_rows()
}

fn window_join(lag_s: u64) -> usize {
    let job = Job::new();
    let agg = |per_second: i64, lag: u64| {
        timed(&job, per_second, Duration::from_secs(lag))
            .key_by(["k"])
            .expect("key")
            .window(Window::tumbling(Duration::from_secs(1)))
            .aggregate([Agg::count().alias("n")])
            .expect("window")
    };
    let out = agg(4, 0)
        .join(&agg(1, lag_s), JoinSpec::same_window().on(["k"], ["k"]))
        .expect("join")
        .collect()
        .expect("sink");
    run_pipelined(&job, &out)
}

#[divan::bench(sample_count = 3, args = [1, 120])]
fn same_window_pipelined(lag_s: u64) -> usize {
    window_join(lag_s)
}

fn session_join() -> usize {
    let job = Job::new();
    let lag = Duration::from_millis(100);
    let out = timed(&job, 4, lag)
        .join(
            &timed(&job, 1, lag),
            JoinSpec::window(Window::session(Duration::from_millis(200))).on(["k"], ["k"]),
        )
        .expect("join")
        .collect()
        .expect("sink");
    run_pipelined(&job, &out)
}

#[divan::bench(sample_count = 3)]
fn session_window_pipelined() -> usize {
    session_join()
}
