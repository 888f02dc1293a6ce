//! Count windows and the keyed process function process each key's rows in
//! event-time order (ties by row content), so pipelined == batch == oracle
//! at parallelism 1 and 3 over random out-of-order input. With allowed
//! lateness they wait for `watermark - lateness`: every row the sources
//! admit (the per-row rule) is processed, in order.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use common::{admitted, batches_of, schema, split_strategy, Row, Split};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir::operators::{KeyRow, ProcessContext, ProcessFn};
use weir::{Agg, ExecConfig, ExecMode, Job, WatermarkStrategy};

/// Each key's admitted rows in (time, value) order.
fn ordered(splits: &[Split], lateness: i64) -> BTreeMap<i64, Vec<Row>> {
    let (rows, _) = admitted(splits, 300, lateness);
    let mut by_key: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
    for r in rows {
        by_key.entry(r.key).or_default().push(r);
    }
    for v in by_key.values_mut() {
        v.sort_by_key(|r| (r.ts, r.value));
    }
    by_key
}

/// (key, window_start, window_end, count, sum) of Flink-style count windows.
fn count_oracle(
    splits: &[Split],
    size: usize,
    slide: Option<usize>,
    lateness: i64,
) -> Vec<(i64, i64, i64, i64, i64)> {
    let mut out = Vec::new();
    for (key, rows) in ordered(splits, lateness) {
        let mut fire = |w: &[Row]| {
            out.push((
                key,
                w[0].ts,
                w[w.len() - 1].ts + 1,
                w.len() as i64,
                w.iter().map(|r| r.value).sum(),
            ));
        };
        match slide {
            None => rows.chunks_exact(size).for_each(&mut fire),
            Some(slide) => {
                for n in (slide..=rows.len()).step_by(slide) {
                    fire(&rows[n.saturating_sub(size)..n]);
                }
            }
        }
    }
    out.sort();
    out
}

fn run_count(
    splits: &[Split],
    size: u64,
    slide: Option<u64>,
    lateness: i64,
    mode: ExecMode,
    p: usize,
) -> Vec<(i64, i64, i64, i64, i64)> {
    let job = Job::new();
    let keyed = job
        .from_batches(schema(), splits.iter().map(batches_of).collect())
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(300))
                .with_allowed_lateness(Duration::from_millis(lateness as u64)),
        )
        .unwrap()
        .key_by(["key"])
        .unwrap();
    let windows = match slide {
        None => keyed.count_window(size),
        Some(s) => keyed.count_window_sliding(size, s),
    };
    let out = windows
        .aggregate([Agg::count().alias("n"), Agg::sum("value").alias("total")])
        .unwrap()
        .collect()
        .unwrap();
    job.run(
        &ExecConfig::new(mode)
            .with_parallelism(p)
            .with_batch_rows(13),
    )
    .unwrap();
    let mut v = Vec::new();
    for b in out.batches() {
        let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let (k, s, e, n, t) = (c(0), c(1), c(2), c(3), c(4));
        for i in 0..b.num_rows() {
            v.push((k.value(i), s.value(i), e.value(i), n.value(i), t.value(i)));
        }
    }
    v.sort();
    v
}

fn sums_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("running", DataType::Int64, false),
    ]))
}

/// A running sum per key: one output row per input row.
fn run_process(splits: &[Split], lateness: i64, mode: ExecMode, p: usize) -> Vec<(i64, i64, i64)> {
    let job = Job::new();
    let out = job
        .from_batches(schema(), splits.iter().map(batches_of).collect())
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(300))
                .with_allowed_lateness(Duration::from_millis(lateness as u64)),
        )
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .process(sums_schema(), || {
            ProcessFn::new(
                |key: &KeyRow, rows: &RecordBatch, sum: &mut i64, ctx: &mut ProcessContext| {
                    let k = key.columns().column(0).as_primitive::<Int64Type>().value(0);
                    let ts = rows.column(1).as_primitive::<Int64Type>();
                    let vals = rows.column(2).as_primitive::<Int64Type>();
                    let mut running = Vec::new();
                    for v in vals.values() {
                        *sum += v;
                        running.push(*sum);
                    }
                    ctx.emit(RecordBatch::try_new(
                        sums_schema(),
                        vec![
                            Arc::new(Int64Array::from(vec![k; rows.num_rows()])),
                            Arc::new(ts.clone()),
                            Arc::new(Int64Array::from(running)),
                        ],
                    )?)
                },
            )
        })
        .unwrap()
        .collect()
        .unwrap();
    job.run(
        &ExecConfig::new(mode)
            .with_parallelism(p)
            .with_batch_rows(13),
    )
    .unwrap();
    let mut v = Vec::new();
    for b in out.batches() {
        let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let (k, t, r) = (c(0), c(1), c(2));
        for i in 0..b.num_rows() {
            v.push((k.value(i), t.value(i), r.value(i)));
        }
    }
    v.sort();
    v
}

fn process_oracle(splits: &[Split], lateness: i64) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    for (key, rows) in ordered(splits, lateness) {
        let mut sum = 0;
        for r in rows {
            sum += r.value;
            out.push((key, r.ts, sum));
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20, ..ProptestConfig::default() })]

    #[test]
    fn count_windows_and_process_functions_match_the_oracle(
        splits in prop::collection::vec(split_strategy(3), 1..4),
        size in 1u64..6,
        slide in prop::option::of(1u64..4),
        lateness in prop::sample::select(vec![0i64, 400]),
    ) {
        let want = count_oracle(&splits, size as usize, slide.map(|s| s as usize), lateness);
        let sums = process_oracle(&splits, lateness);
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            for p in [1, 3] {
                prop_assert_eq!(run_count(&splits, size, slide, lateness, mode, p), want.clone(), "count {} p={}", mode, p);
                prop_assert_eq!(run_process(&splits, lateness, mode, p), sums.clone(), "process {} p={}", mode, p);
            }
        }
    }
}
