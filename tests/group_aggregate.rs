//! Non-windowed keyed aggregation: the changelog (insert, then update per
//! key) of a pipelined run and the final rows of a batch run, upserted by
//! key, equal a brute-force group-by over the admitted rows, at parallelism
//! 1 and 3, over random out-of-order input in random batch sizes.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::RecordBatch;
use common::{admitted, batches_of, schema, split_strategy, Split};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use weir::{Agg, ExecConfig, ExecMode, Job, WatermarkStrategy};

/// key → (count, sum, max speed, first value by time, distinct values)
type Table = BTreeMap<i64, (i64, i64, u64, i64, i64)>;

fn run(splits: &[Split], mode: ExecMode, p: usize) -> (Vec<RecordBatch>, Table) {
    let job = Job::new();
    let out = job
        .from_batches(schema(), splits.iter().map(batches_of).collect())
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(300)),
        )
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .aggregate([
            Agg::count().alias("n"),
            Agg::sum("value").alias("total"),
            Agg::max("speed").alias("top"),
            Agg::first("value").alias("first_value"),
            Agg::count_distinct("value").alias("distinct"),
        ])
        .unwrap()
        .collect()
        .unwrap();
    job.run(
        &ExecConfig::new(mode)
            .with_parallelism(p)
            .with_batch_rows(13),
    )
    .unwrap();
    let batches = out.batches();
    // upsert by key: the last row of a key wins
    let mut table = Table::new();
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    for b in &batches {
        let int = |c: &str| {
            b.column_by_name(c)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (k, n, t, f, d) = (
            int("key"),
            int("n"),
            int("total"),
            int("first_value"),
            int("distinct"),
        );
        let top = b
            .column_by_name("top")
            .unwrap()
            .as_primitive::<Float64Type>();
        let op = b.column_by_name("op").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            let first_time = seen.insert(k.value(i));
            assert_eq!(
                op.value(i),
                if first_time { "insert" } else { "update" },
                "{mode}"
            );
            table.insert(
                k.value(i),
                (
                    n.value(i),
                    t.value(i),
                    top.value(i).to_bits(),
                    f.value(i),
                    d.value(i),
                ),
            );
        }
    }
    (batches, table)
}

fn oracle(splits: &[Split]) -> Table {
    let (rows, _) = admitted(splits, 300, 0);
    let mut by_key: BTreeMap<i64, Vec<&common::Row>> = BTreeMap::new();
    for r in &rows {
        by_key.entry(r.key).or_default().push(r);
    }
    by_key
        .into_iter()
        .map(|(k, rs)| {
            let n = rs.len() as i64;
            let total = rs.iter().map(|r| r.value).sum();
            let top = rs
                .iter()
                .map(|r| r.speed)
                .fold(f64::MIN, f64::max)
                .to_bits();
            // first by event time, ties by the smaller value (as the accumulators)
            let first = rs.iter().map(|r| (r.ts, r.value)).min().unwrap().1;
            let distinct = rs.iter().map(|r| r.value).collect::<BTreeSet<_>>().len() as i64;
            (k, (n, total, top, first, distinct))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn group_aggregates_upsert_to_the_brute_force_group_by_in_both_modes(
        splits in prop::collection::vec(split_strategy(5), 1..4),
    ) {
        let want = oracle(&splits);
        for mode in [ExecMode::Pipelined, ExecMode::Batch] {
            for p in [1, 3] {
                let (batches, got) = run(&splits, mode, p);
                prop_assert_eq!(&got, &want, "{} p={}", mode, p);
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                if mode == ExecMode::Batch {
                    prop_assert_eq!(rows, want.len(), "batch: one row per key");
                }
            }
        }
    }
}
