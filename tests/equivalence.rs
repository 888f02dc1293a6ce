//! The central property: pipelined output == batch output == a brute-force
//! oracle, for filter → key_by → tumbling window, at parallelism 1 and 4,
//! over random out-of-order input cut into random batch sizes.

mod common;

use arrow_array::{Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use common::{admitted_and_late_by, batches_of, schema, Split};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir::compare::same_rows;
use weir::{col, lit, Agg, ExecConfig, ExecMode, Job, TumblingWindow, WatermarkStrategy};

const DELAY_MS: i64 = 300;
const WINDOW_MS: i64 = 1_000;

/// The max timestamp of a row's window: the window-aware rule calls the row
/// late only once that is at or below its split's watermark.
fn deadline(ts: i64) -> i64 {
    ts.div_euclid(WINDOW_MS) * WINDOW_MS + WINDOW_MS - 1
}

/// Brute force: per split, a row is late if its window's max timestamp is
/// <= max(ts of earlier rows) - delay - 1 (the window fired); then filter
/// value >= 0; then group by (key, window start).
fn oracle(splits: &[Split]) -> RecordBatch {
    #[derive(Default)]
    struct Acc {
        count: i64,
        sum: i64,
        min: Option<f64>,
        max: Option<f64>,
    }
    let mut groups: BTreeMap<(i64, i64), Acc> = BTreeMap::new();
    for split in splits {
        let mut max: Option<i64> = None;
        for r in &split.rows {
            if max.is_some_and(|m| deadline(r.ts) < m - DELAY_MS /* <= watermark */) {
                continue;
            }
            max = Some(max.map_or(r.ts, |m| m.max(r.ts)));
            if r.value < 0 {
                continue;
            }
            let start = r.ts.div_euclid(WINDOW_MS) * WINDOW_MS;
            let a = groups.entry((r.key, start)).or_default();
            a.count += 1;
            a.sum += r.value;
            a.min = Some(a.min.map_or(r.speed, |m: f64| m.min(r.speed)));
            a.max = Some(a.max.map_or(r.speed, |m: f64| m.max(r.speed)));
        }
    }
    let keys: Vec<&(i64, i64)> = groups.keys().collect();
    let accs: Vec<&Acc> = groups.values().collect();
    RecordBatch::try_new(
        output_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(keys.iter().map(|k| k.0))),
            Arc::new(Int64Array::from_iter_values(keys.iter().map(|k| k.1))),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| k.1 + WINDOW_MS),
            )),
            Arc::new(Int64Array::from_iter_values(accs.iter().map(|a| a.count))),
            Arc::new(Int64Array::from_iter(accs.iter().map(|a| Some(a.sum)))),
            Arc::new(Float64Array::from_iter(accs.iter().map(|a| a.min))),
            Arc::new(Float64Array::from_iter(accs.iter().map(|a| a.max))),
            Arc::new(Float64Array::from_iter(
                accs.iter().map(|a| Some(a.sum as f64 / a.count as f64)),
            )),
        ],
    )
    .unwrap()
}

fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("window_start", DataType::Int64, false),
        Field::new("window_end", DataType::Int64, false),
        Field::new("n", DataType::Int64, false),
        Field::new("total", DataType::Int64, true),
        Field::new("min_speed", DataType::Float64, true),
        Field::new("max_speed", DataType::Float64, true),
        Field::new("avg_value", DataType::Float64, true),
    ]))
}

fn run(
    splits: &[Split],
    mode: ExecMode,
    parallelism: usize,
    batch_rows: usize,
) -> (Vec<RecordBatch>, u64) {
    let job = Job::new();
    let out = job
        .from_batches(schema(), splits.iter().map(batches_of).collect())
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(DELAY_MS as u64)),
        )
        .unwrap()
        .filter(col("value").gt_eq(lit(0)))
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_millis(WINDOW_MS as u64)))
        .aggregate([
            Agg::count().alias("n"),
            Agg::sum("value").alias("total"),
            Agg::min("speed"),
            Agg::max("speed"),
            Agg::avg("value").alias("avg_value"),
        ])
        .unwrap()
        .collect()
        .unwrap();
    let config = ExecConfig::new(mode)
        .with_parallelism(parallelism)
        .with_batch_rows(batch_rows)
        .with_channel_rows(batch_rows * 2);
    let metrics = job.run(&config).unwrap();
    (out.batches(), metrics.late_rows)
}

fn expected_late(splits: &[Split]) -> u64 {
    admitted_and_late_by(splits, DELAY_MS, 0, &deadline).1.len() as u64
}

fn split_strategy() -> impl Strategy<Value = Split> {
    common::split_strategy(6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn pipelined_equals_batch_equals_oracle(
        splits in prop::collection::vec(split_strategy(), 1..6),
        batch_rows in 1usize..100,
    ) {
        let want = oracle(&splits);
        let late = expected_late(&splits);
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            for parallelism in [1, 4] {
                let (got, late_rows) = run(&splits, mode, parallelism, batch_rows);
                if let Err(e) = same_rows(&got, std::slice::from_ref(&want), &output_schema(), 1e-9) {
                    prop_assert!(false, "{mode} p={parallelism}: {e}");
                }
                prop_assert_eq!(late_rows, late, "{} p={}: late row count", mode, parallelism);
            }
        }
    }
}

#[test]
fn the_oracle_sees_late_rows_and_several_windows() {
    // Guard against a vacuous property: typical inputs have late rows and many groups.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let splits: Vec<Split> = (0..4)
        .map(|_| split_strategy().new_tree(&mut runner).unwrap().current())
        .collect();
    assert!(expected_late(&splits) > 0);
    assert!(oracle(&splits).num_rows() > 10);
    let (got, _) = run(&splits, ExecMode::Pipelined, 3, 7);
    same_rows(&got, &[oracle(&splits)], &output_schema(), 1e-9).unwrap();
}
