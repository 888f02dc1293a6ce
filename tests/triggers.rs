//! Early-firing triggers on time windows (with and without allowed
//! lateness): every N rows of a key, in
//! accumulate mode (the changelog materializes to the oracle's final
//! windows) and purge mode (the deltas add up to them), in both modes and at
//! parallelism 1 and 3.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use common::{admitted_and_late_by, batches_of, schema, split_strategy, Split};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;
use weir::operators::EarlyFiring;
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, WatermarkStrategy};

type Table = BTreeMap<(i64, i64, i64), (i64, i64)>; // (key, start, end) -> (count, sum)

fn window(kind: u8) -> Window {
    let ms = Duration::from_millis;
    match kind {
        0 => Window::tumbling(ms(1000)),
        1 => Window::sliding(ms(2000), ms(500)),
        _ => Window::cumulative(ms(500), ms(2000)),
    }
}

fn windows_of(kind: u8, ts: i64) -> Vec<(i64, i64)> {
    match kind {
        0 => vec![(ts - ts.rem_euclid(1000), ts - ts.rem_euclid(1000) + 1000)],
        1 => (ts - 2500..=ts)
            .filter(|s| s.rem_euclid(500) == 0 && ts < s + 2000)
            .map(|s| (s, s + 2000))
            .collect(),
        _ => {
            let b = ts - ts.rem_euclid(2000);
            (1..=4)
                .map(|k| (b, b + 500 * k))
                .filter(|&(_, e)| ts < e)
                .collect()
        }
    }
}

fn oracle(kind: u8, splits: &[Split], lateness: i64) -> Table {
    // window-aware: late only once the row's first window is done
    let deadline = |t: i64| {
        windows_of(kind, t)
            .iter()
            .map(|&(_, e)| e - 1)
            .min()
            .unwrap()
    };
    let (rows, _) = admitted_and_late_by(splits, 300, lateness, &deadline);
    let mut t = Table::new();
    for r in rows {
        for (s, e) in windows_of(kind, r.ts) {
            let v = t.entry((r.key, s, e)).or_insert((0, 0));
            v.0 += 1;
            v.1 += r.value;
        }
    }
    t
}

fn run(
    splits: &[Split],
    kind: u8,
    purge: bool,
    lateness: i64,
    mode: ExecMode,
    p: usize,
) -> Vec<RecordBatch> {
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
        .window(window(kind))
        .trigger(EarlyFiring {
            every_rows: Some(3),
            every_ms: None,
            purge,
        })
        .aggregate([Agg::count().alias("n"), Agg::sum("value").alias("total")])
        .unwrap()
        .collect()
        .unwrap();
    job.run(
        &ExecConfig::new(mode)
            .with_parallelism(p)
            .with_batch_rows(11),
    )
    .unwrap();
    out.batches()
}

/// Accumulate: the last row per window is final. Purge: deltas add up.
/// Also returns how many rows were emitted before the final one.
fn materialize(batches: &[RecordBatch], purge: bool) -> (Table, usize) {
    let mut t = Table::new();
    let mut updates = 0;
    for b in batches {
        let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let (k, s, e, n, total) = (c(0), c(1), c(2), c(3), c(4));
        let ops = b.column(5).as_string::<i32>();
        for i in 0..b.num_rows() {
            let key = (k.value(i), s.value(i), e.value(i));
            let v = (
                n.value(i),
                if total.is_null(i) { 0 } else { total.value(i) },
            );
            if purge {
                assert_eq!(ops.value(i), "insert", "purge mode emits deltas as inserts");
                let cur = t.entry(key).or_insert((0, 0));
                cur.0 += v.0;
                cur.1 += v.1;
            } else {
                if t.insert(key, v).is_some() {
                    updates += 1;
                    assert_eq!(ops.value(i), "update");
                } else {
                    assert_eq!(ops.value(i), "insert");
                }
            }
        }
    }
    // a purged window may have emitted an empty delta for keys with no rows since
    t.retain(|_, v| v.0 > 0);
    (t, updates)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn early_firings_materialize_to_the_final_windows(
        splits in prop::collection::vec(split_strategy(3), 1..4),
        kind in 0u8..3,
        purge in any::<bool>(),
        lateness in prop::sample::select(vec![0i64, 400]),
    ) {
        let purge = purge && kind == 0;
        let want = oracle(kind, &splits, lateness);
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            for p in [1, 3] {
                let (got, _) = materialize(&run(&splits, kind, purge, lateness, mode, p), purge);
                prop_assert_eq!(&got, &want, "kind {} purge {} lateness {} {} p={}", kind, purge, lateness, mode, p);
            }
        }
    }
}

#[test]
fn a_window_with_more_rows_than_the_count_fires_early() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    use proptest::strategy::ValueTree;
    let splits: Vec<Split> = (0..2)
        .map(|_| split_strategy(2).new_tree(&mut runner).unwrap().current())
        .collect();
    let (_, updates) = materialize(&run(&splits, 0, false, 0, ExecMode::Pipelined, 1), false);
    assert!(
        updates > 0,
        "some windows hold more than 3 rows of a key and emit updates"
    );
    let err = Job::new()
        .from_batches(schema(), vec![])
        .unwrap()
        .assign_timestamps("ts", WatermarkStrategy::monotonous())
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .window(Window::sliding(
            Duration::from_secs(2),
            Duration::from_secs(1),
        ))
        .trigger(EarlyFiring {
            every_rows: Some(3),
            every_ms: None,
            purge: true,
        })
        .aggregate([Agg::count()])
        .unwrap_err();
    assert!(err.to_string().contains("tumbling"), "{err}");
}
