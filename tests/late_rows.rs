//! Late rows: those whose window is done (beyond the allowed lateness) go
//! to the late-row side output (exactly the rows the oracle calls late,
//! counted), the rest reach the window; the same in both modes and at any
//! parallelism.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use common::{admitted_and_late_by, batches_of, schema, split_strategy, Split};
use proptest::prelude::*;
use std::time::Duration;
use weir::{Agg, ExecConfig, ExecMode, Job, TumblingWindow, WatermarkStrategy};

fn rows_of(batches: &[RecordBatch]) -> Vec<(i64, i64, i64)> {
    let mut v: Vec<(i64, i64, i64)> = batches
        .iter()
        .flat_map(|b| {
            let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
            let (k, t, v) = (c(0), c(1), c(2));
            (0..b.num_rows()).map(move |i| (k.value(i), t.value(i), v.value(i)))
        })
        .collect();
    v.sort();
    v
}

fn run(splits: &[Split], lateness: u64, mode: ExecMode, p: usize) -> (Vec<RecordBatch>, i64, u64) {
    let job = Job::new();
    let timed = job
        .from_batches(schema(), splits.iter().map(batches_of).collect())
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(200))
                .with_allowed_lateness(Duration::from_millis(lateness)),
        )
        .unwrap();
    let late = timed.late_rows().unwrap().collect().unwrap();
    let windows = timed
        .key_by(["key"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .collect()
        .unwrap();
    let m = job.run(&ExecConfig::new(mode).with_parallelism(p)).unwrap();
    // with lateness the window output is a changelog: count only final inserts+updates per window
    let n: i64 = if lateness == 0 {
        windows
            .batches()
            .iter()
            .map(|b| {
                arrow_arith::aggregate::sum(b.column(3).as_primitive::<Int64Type>()).unwrap_or(0)
            })
            .sum()
    } else {
        let mut last = std::collections::BTreeMap::new();
        for b in windows.batches() {
            let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
            let (k, s, n) = (c(0), c(1), c(3));
            for i in 0..b.num_rows() {
                last.insert((k.value(i), s.value(i)), n.value(i));
            }
        }
        last.values().sum()
    };
    (late.batches(), n, m.late_rows)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn late_rows_reach_the_side_output_exactly(
        splits in prop::collection::vec(split_strategy(3), 1..4),
        lateness in prop::sample::select(vec![0u64, 300]),
    ) {
        // window-aware: late once the row's 1 s window is done in its split
        let deadline = |t: i64| t - t.rem_euclid(1000) + 999;
        let (kept, late) = admitted_and_late_by(&splits, 200, lateness as i64, &deadline);
        let want: Vec<(i64, i64, i64)> = {
            let mut v: Vec<_> = late.iter().map(|r| (r.key, r.ts, r.value)).collect();
            v.sort();
            v
        };
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            for p in [1, 3] {
                let (side, windowed, counted) = run(&splits, lateness, mode, p);
                prop_assert_eq!(rows_of(&side), want.clone(), "{} p={}", mode, p);
                prop_assert_eq!(counted, want.len() as u64);
                prop_assert_eq!(windowed, kept.len() as i64, "every admitted row is in exactly one window");
            }
        }
    }
}
