//! Window-aware lateness, decided at the source split: a row is late only
//! when its first window (the one that fires first) is done at the split's
//! watermark, so it reaches every window that has not fired (the seed's
//! rule). Checked against a brute-force oracle of that rule for tumbling,
//! sliding, cumulative and session windows (sessions keep the per-row rule),
//! in both modes, at parallelism 1 and 3, in random batch sizes, and with a
//! tiny memory budget: the window output and the late output together hold
//! every input row exactly once per window it belongs to. Count windows with
//! allowed lateness give the same rows whatever the batch size, mode or
//! parallelism, and never drop a row.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use common::{admitted_and_late_by, batches_of, schema, split_strategy, Row, Split};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, WatermarkStrategy};

const DELAY: i64 = 300;
const GAP: i64 = 700;

fn window(kind: u8) -> Window {
    let ms = Duration::from_millis;
    match kind {
        0 => Window::tumbling(ms(1000)).with_offset(ms(250)),
        1 => Window::sliding(ms(2000), ms(500)),
        2 => Window::cumulative(ms(500), ms(2000)),
        _ => Window::session(ms(GAP as u64)),
    }
}

/// Brute force: the windows `(start, end)` containing `t`, by containment.
fn windows_of(kind: u8, t: i64) -> Vec<(i64, i64)> {
    match kind {
        0 => (t - 1000..=t)
            .filter(|s| (s - 250).rem_euclid(1000) == 0 && t < s + 1000)
            .map(|s| (s, s + 1000))
            .collect(),
        1 => (t - 2500..=t)
            .filter(|s| s.rem_euclid(500) == 0 && t < s + 2000)
            .map(|s| (s, s + 2000))
            .collect(),
        _ => {
            let base = t - t.rem_euclid(2000);
            (1..=4)
                .map(|k| (base, base + 500 * k))
                .filter(|&(_, e)| t < e)
                .collect()
        }
    }
}

/// The oracle's deadline: the max timestamp of the row's first window to
/// fire; sessions keep the row's own time.
fn deadline(kind: u8, t: i64) -> i64 {
    if kind == 3 {
        return t;
    }
    windows_of(kind, t)
        .iter()
        .map(|&(_, e)| e - 1)
        .min()
        .unwrap()
}

/// (count, sum of row ids) per (key, start, end), from the admitted rows.
fn oracle(kind: u8, rows: &[Row]) -> BTreeMap<(i64, i64, i64), (i64, i64)> {
    let mut out: BTreeMap<(i64, i64, i64), (i64, i64)> = BTreeMap::new();
    if kind == 3 {
        let mut by_key: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
        for r in rows {
            by_key.entry(r.key).or_default().push(r);
        }
        for (key, mut rs) in by_key {
            rs.sort_by_key(|r| r.ts);
            let mut cur: Option<(i64, i64, (i64, i64))> = None;
            for r in rs {
                match &mut cur {
                    Some((_, end, acc)) if r.ts <= *end => {
                        *end = (*end).max(r.ts + GAP);
                        *acc = (acc.0 + 1, acc.1 + r.value);
                    }
                    _ => {
                        if let Some((s, e, acc)) = cur.take() {
                            out.insert((key, s, e), acc);
                        }
                        cur = Some((r.ts, r.ts + GAP, (1, r.value)));
                    }
                }
            }
            if let Some((s, e, acc)) = cur {
                out.insert((key, s, e), acc);
            }
        }
        return out;
    }
    for r in rows {
        for (s, e) in windows_of(kind, r.ts) {
            let acc = out.entry((r.key, s, e)).or_default();
            *acc = (acc.0 + 1, acc.1 + r.value);
        }
    }
    out
}

/// Gives every row a unique id in `value` (the window sums identify rows).
fn number(splits: &mut [Split]) {
    let mut id = 0;
    for s in splits {
        for r in &mut s.rows {
            r.value = id;
            id += 1;
        }
    }
}

/// Applies a changelog keyed by (key, start, end): (count, sum of ids).
fn materialize(batches: &[RecordBatch]) -> BTreeMap<(i64, i64, i64), (i64, i64)> {
    let mut live = BTreeMap::new();
    for b in batches {
        let op = b.column_by_name("op").map(|c| c.as_string::<i32>().clone());
        let c = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (k, s, e, n, ids) = (
            c("key"),
            c("window_start"),
            c("window_end"),
            c("n"),
            c("ids"),
        );
        for i in 0..b.num_rows() {
            let key = (k.value(i), s.value(i), e.value(i));
            match op.as_ref().map(|o| o.value(i)) {
                Some("delete") => {
                    live.remove(&key);
                }
                Some(_) => {
                    live.insert(key, (n.value(i), ids.value(i)));
                }
                None => {
                    let old = live.insert(key, (n.value(i), ids.value(i)));
                    assert!(
                        old.is_none(),
                        "window {key:?} fired twice without a changelog"
                    );
                }
            }
        }
    }
    live
}

type Table = BTreeMap<(i64, i64, i64), (i64, i64)>;

fn run(
    splits: &[Split],
    kind: u8,
    lateness: i64,
    mode: ExecMode,
    p: usize,
    memory: usize,
) -> (Table, Vec<i64>, u64) {
    let job = Job::new();
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(DELAY as u64))
        .with_allowed_lateness(Duration::from_millis(lateness as u64));
    let timed = job
        .from_batches(schema(), splits.iter().map(batches_of).collect())
        .unwrap()
        .assign_timestamps("ts", strategy)
        .unwrap();
    let late = timed.late_rows().unwrap().collect().unwrap();
    let out = timed
        .key_by(["key"])
        .unwrap()
        .window(window(kind))
        .aggregate([Agg::count().alias("n"), Agg::sum("value").alias("ids")])
        .unwrap()
        .collect()
        .unwrap();
    let m = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(p)
                .with_memory(memory)
                .with_batch_rows(23),
        )
        .unwrap_or_else(|e| panic!("kind {kind} {mode} p={p} memory {memory}: {e}"));
    let mut late_ids: Vec<i64> = late
        .batches()
        .iter()
        .flat_map(|b| {
            let v = b.column_by_name("value").unwrap();
            v.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect();
    late_ids.sort_unstable();
    (materialize(&out.batches()), late_ids, m.late_rows)
}

fn check(mut splits: Vec<Split>, kind: u8, lateness: i64) -> Result<(), TestCaseError> {
    number(&mut splits);
    let (rows, late) = admitted_and_late_by(&splits, DELAY, lateness, &|t| deadline(kind, t));
    let want = oracle(kind, &rows);
    let mut want_late: Vec<i64> = late.iter().map(|r| r.value).collect();
    want_late.sort_unstable();
    let memberships = |rs: &[Row]| -> i64 {
        if kind == 3 {
            rs.len() as i64
        } else {
            rs.iter().map(|r| windows_of(kind, r.ts).len() as i64).sum()
        }
    };
    let all: Vec<Row> = splits.iter().flat_map(|s| s.rows.clone()).collect();
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        // the last: 2 KiB, so shuffle buffers and most window states spill
        for (p, memory) in [(1, usize::MAX), (3, usize::MAX), (3, 2 << 10)] {
            let (got, late_ids, counted) = run(&splits, kind, lateness, mode, p, memory);
            let ctx = format!("kind {kind} lateness {lateness} {mode} p={p} memory {memory}");
            prop_assert_eq!(&late_ids, &want_late, "late output, {}", ctx);
            prop_assert_eq!(counted, want_late.len() as u64, "late count, {}", ctx);
            prop_assert_eq!(&got, &want, "window output, {}", ctx);
            // every input row once per window it belongs to: in a window or late
            let in_windows: i64 = got.values().map(|&(n, _)| n).sum();
            let late_rows: Vec<Row> = all
                .iter()
                .filter(|r| late_ids.binary_search(&r.value).is_ok())
                .cloned()
                .collect();
            if kind != 3 {
                prop_assert_eq!(
                    in_windows + memberships(&late_rows),
                    memberships(&all),
                    "{}",
                    ctx
                );
            } else {
                prop_assert_eq!(in_windows + late_rows.len() as i64, all.len() as i64);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn rows_reach_every_window_that_has_not_fired_in_every_mode(
        splits in prop::collection::vec(split_strategy(4), 1..5),
        kind in 0u8..4,
        lateness in prop::sample::select(vec![0i64, 400]),
    ) {
        check(splits, kind, lateness)?;
    }
}

/// The property's inputs hold rows the per-row rule calls late but whose
/// window is still open: the cases where the two rules differ.
#[test]
fn the_inputs_exercise_rows_behind_the_watermark_in_open_windows() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let splits: Vec<Split> = (0..3)
        .map(|_| split_strategy(4).new_tree(&mut runner).unwrap().current())
        .collect();
    for kind in 0..3 {
        let (_, per_row) = admitted_and_late_by(&splits, DELAY, 0, &|t| t);
        let (_, aware) = admitted_and_late_by(&splits, DELAY, 0, &|t| deadline(kind, t));
        assert!(
            aware.len() < per_row.len() && !aware.is_empty(),
            "kind {kind}: {} vs {}",
            aware.len(),
            per_row.len()
        );
    }
}

/// The seed's example end to end: window [0, 5 s), watermark delay 2 s. A
/// row at 4 s after one at 6.9 s is counted in [0, 5 s); after one at 7 s
/// it is late (the watermark reached 4.999 s: the window fired).
#[test]
fn the_seeds_example_in_both_modes() {
    for (max, counted) in [(6_900, true), (7_000, false)] {
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            let rows = vec![
                Row {
                    key: 1,
                    ts: max,
                    value: 1,
                    speed: 0.0,
                },
                Row {
                    key: 1,
                    ts: 4_000,
                    value: 2,
                    speed: 0.0,
                },
            ];
            let job = Job::new();
            let timed = job
                .from_batches(schema(), vec![vec![common::to_batch(&rows)]])
                .unwrap()
                .assign_timestamps(
                    "ts",
                    WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2)),
                )
                .unwrap();
            let late = timed.late_rows().unwrap().collect().unwrap();
            let out = timed
                .key_by(["key"])
                .unwrap()
                .window(Window::tumbling(Duration::from_secs(5)))
                .aggregate([Agg::count().alias("n"), Agg::sum("value").alias("ids")])
                .unwrap()
                .collect()
                .unwrap();
            let m = job.run(&ExecConfig::new(mode).with_parallelism(2)).unwrap();
            let got = materialize(&out.batches());
            let first = got.get(&(1, 0, 5_000)).copied();
            if counted {
                assert_eq!(first, Some((1, 2)), "{mode}: 4 s reaches [0, 5 s)");
                assert_eq!(m.late_rows, 0);
            } else {
                assert_eq!(first, None, "{mode}: [0, 5 s) fired before 4 s was read");
                assert_eq!(m.late_rows, 1);
                assert_eq!(late.num_rows(), 1);
            }
        }
    }
}

/// The count-window repro: one file, k = [1, 1, 1], t = [10 s, 5 s,
/// 20 s], v = [1, 2, 3], delay 1 s, allowed lateness 10 s, a count window of
/// 2 rows. Rows within the lateness wait for `watermark - lateness`, so every
/// batch size, mode and parallelism fires the same window over the rows in
/// event-time order ({5000, n 2, sum 3}) and nothing is lost or late.
#[test]
fn count_windows_with_allowed_lateness_are_deterministic_and_lose_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("in.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 1])),
            Arc::new(Int64Array::from(vec![10_000, 5_000, 20_000])),
            Arc::new(Int64Array::from(vec![1, 2, 3])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(&data).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    for batch_size in [1, 8192] {
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            for p in [1, 3] {
                let job = Job::new();
                let timed = job
                    .parquet_with(std::slice::from_ref(&data), batch_size)
                    .unwrap()
                    .assign_timestamps(
                        "t",
                        WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1))
                            .with_allowed_lateness(Duration::from_secs(10)),
                    )
                    .unwrap();
                let late = timed.late_rows().unwrap().collect().unwrap();
                let out = timed
                    .key_by(["k"])
                    .unwrap()
                    .count_window(2)
                    .aggregate([Agg::count().alias("n"), Agg::sum("v").alias("sum")])
                    .unwrap()
                    .collect()
                    .unwrap();
                let m = job.run(&ExecConfig::new(mode).with_parallelism(p)).unwrap();
                let ctx = format!("batch_size {batch_size} {mode} p={p}");
                let rows: Vec<(i64, i64, i64)> = out
                    .batches()
                    .iter()
                    .flat_map(|b| {
                        let c = |n: &str| {
                            b.column_by_name(n)
                                .unwrap()
                                .as_primitive::<Int64Type>()
                                .clone()
                        };
                        let (s, n, sum) = (c("window_start"), c("n"), c("sum"));
                        (0..b.num_rows())
                            .map(move |i| (s.value(i), n.value(i), sum.value(i)))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                assert_eq!(rows, vec![(5_000, 2, 3)], "{ctx}");
                assert_eq!(
                    m.late_rows, 0,
                    "{ctx}: a late row must reach the late output"
                );
                assert_eq!(late.num_rows(), 0, "{ctx}");
            }
        }
    }
}
