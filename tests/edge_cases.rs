//! Edge cases found in review: sessions touched at their end, purge with lateness,
//! late rows alone, extreme timestamps for every window kind, zero-row batches.
mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use common::{schema, to_batch, Row};
use std::collections::BTreeMap;
use std::time::Duration;
use weir::operators::EarlyFiring;
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, WatermarkStrategy};

fn r(key: i64, ts: i64) -> Row {
    Row {
        key,
        ts,
        value: 1,
        speed: 1.0,
    }
}

/// splits: each split a list of batches, each batch a list of (key, ts)
fn splits(v: &[&[&[(i64, i64)]]]) -> Vec<Vec<RecordBatch>> {
    v.iter()
        .map(|s| {
            s.iter()
                .map(|b| to_batch(&b.iter().map(|&(k, t)| r(k, t)).collect::<Vec<_>>()))
                .collect()
        })
        .collect()
}

/// materialized changelog: (key, start, end) -> (n, op of last row)
fn materialize(batches: &[RecordBatch]) -> BTreeMap<(i64, i64, i64), i64> {
    let mut live = BTreeMap::new();
    for b in batches {
        let op = b.column_by_name("op").map(|c| c.as_string::<i32>().clone());
        let c = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (k, s, e, n) = (c("key"), c("window_start"), c("window_end"), c("n"));
        for i in 0..b.num_rows() {
            let key = (k.value(i), s.value(i), e.value(i));
            match op.as_ref().map(|o| o.value(i)) {
                Some("delete") => {
                    live.remove(&key);
                }
                _ => {
                    live.insert(key, n.value(i));
                }
            }
        }
    }
    live
}

fn run_window(
    input: Vec<Vec<RecordBatch>>,
    window: Window,
    delay: u64,
    lateness: u64,
    early: Option<EarlyFiring>,
    mode: ExecMode,
    p: usize,
) -> Vec<RecordBatch> {
    let job = Job::new();
    let mut w = job
        .from_batches(schema(), input)
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(delay))
                .with_allowed_lateness(Duration::from_millis(lateness)),
        )
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .window(window);
    if let Some(e) = early {
        w = w.trigger(e);
    }
    let out = w
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .collect()
        .unwrap();
    job.run(&ExecConfig::new(mode).with_parallelism(p)).unwrap();
    out.batches()
}

/// Session [0,10) of key 1 and a non-late row of key 1 at exactly 10 (touching):
/// they must merge (or not) the same way however the input is cut into batches.
#[test]
fn session_touching_row_gives_the_same_result_for_any_batching() {
    let gap = Window::session(Duration::from_millis(10));
    // same rows, same order, one split; only the batch cut differs
    let one = splits(&[&[&[(1, 0), (2, 10), (1, 10)]]]);
    let cut = splits(&[&[&[(1, 0)], &[(2, 10)], &[(1, 10)]]]);
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let a = materialize(&run_window(one.clone(), gap, 0, 0, None, mode, 1));
        let b = materialize(&run_window(cut.clone(), gap, 0, 0, None, mode, 1));
        assert_eq!(a, b, "{mode}: batch boundaries changed session results");
    }
}

/// Same as above with split order / parallelism as the only difference.
#[test]
fn session_touching_row_gives_the_same_result_at_any_parallelism() {
    let gap = Window::session(Duration::from_millis(10));
    let input = splits(&[&[&[(1, 0)], &[(2, 10)]], &[&[(3, 10)], &[(1, 10)]]]);
    let mut seen = BTreeMap::new();
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 2, 3] {
            let got = materialize(&run_window(input.clone(), gap, 0, 0, None, mode, p));
            seen.entry(format!("{got:?}"))
                .or_insert_with(Vec::new)
                .push(format!("{mode} p={p}"));
        }
    }
    assert_eq!(seen.len(), 1, "different results: {seen:#?}");
}

/// Purge-mode early firing + allowed lateness: the late update re-emits the
/// rows already emitted by the final firing.
#[test]
fn purge_with_lateness_counts_each_row_once() {
    let input = splits(&[&[
        &[(1, 100)],
        &[(1, 200)],
        &[(1, 300)],
        &[(2, 1200)],
        &[(1, 900)],
    ]]);
    let early = EarlyFiring {
        every_rows: Some(2),
        every_ms: None,
        purge: true,
    };
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let got = run_window(
            input.clone(),
            Window::tumbling(Duration::from_secs(1)),
            0,
            500,
            Some(early),
            mode,
            1,
        );
        let mut sum = 0;
        for b in &got {
            let k = b.column_by_name("key").unwrap().as_primitive::<Int64Type>();
            let s = b
                .column_by_name("window_start")
                .unwrap()
                .as_primitive::<Int64Type>();
            let n = b.column_by_name("n").unwrap().as_primitive::<Int64Type>();
            let op = b.column_by_name("op").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                assert_eq!(op.value(i), "insert", "{mode}: purge mode emits deltas");
                if k.value(i) == 1 && s.value(i) == 0 {
                    sum += n.value(i);
                }
            }
        }
        assert_eq!(
            sum, 4,
            "{mode}: deltas of key 1 in [0,1000) must add up to its 4 rows"
        );
    }
}

/// Only late rows are wanted (main stream unused): the late sink is fused
/// into the source task and receives the on-time rows instead.
#[test]
fn a_late_row_stream_alone_holds_the_late_rows() {
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let job = Job::new();
        let input = splits(&[&[&[(1, 1000), (1, 10)]], &[&[(2, 5000)]]]);
        let late = job
            .from_batches(schema(), input)
            .unwrap()
            .assign_timestamps("ts", WatermarkStrategy::monotonous())
            .unwrap()
            .late_rows()
            .unwrap()
            .collect()
            .unwrap();
        let m = job.run(&ExecConfig::new(mode).with_parallelism(2)).unwrap();
        let ts: Vec<i64> = late
            .batches()
            .iter()
            .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(m.late_rows, 1, "{mode}");
        assert_eq!(ts, vec![10], "{mode}");
    }
}

/// A row at i64::MIN in a 1 s tumbling window would need a window starting
/// before i64::MIN: an error naming the row's time, never a saturated window.
#[test]
fn tumbling_at_i64_min() {
    let job = Job::new();
    let _out = job
        .from_batches(schema(), splits(&[&[&[(1, i64::MIN), (1, 0)]]]))
        .unwrap()
        .assign_timestamps("ts", WatermarkStrategy::monotonous())
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .window(Window::tumbling(Duration::from_secs(1)))
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .collect()
        .unwrap();
    let err = job.run(&ExecConfig::batch()).unwrap_err().to_string();
    assert!(err.contains(&i64::MIN.to_string()), "{err}");
}

/// Every window kind places rows at the extreme ends of its valid range in
/// each of their windows exactly once; one step outside is an error.
#[test]
fn extreme_times_each_kind() {
    let ms = Duration::from_millis;
    let kinds = [
        Window::tumbling(ms(1000)),
        Window::sliding(ms(2000), ms(1000)),
        Window::cumulative(ms(1000), ms(3000)),
        Window::session(ms(1000)),
    ];
    for w in kinds {
        let (lo, hi) = w.valid_times();
        for t in [lo, lo + 1, hi - 1, hi] {
            for mode in [ExecMode::Batch, ExecMode::Pipelined] {
                let got = materialize(&run_window(splits(&[&[&[(1, t)]]]), w, 0, 0, None, mode, 1));
                let windows = match w {
                    Window::Tumbling { .. } | Window::Session { .. } => 1,
                    Window::Sliding { .. } => 2,
                    Window::Cumulative { .. } => w.windows_of_pane(w.pane_of(t)).len(),
                };
                assert_eq!(got.len(), windows, "t={t} {w:?} {mode}: {got:?}");
                assert!(
                    got.iter()
                        .all(|(&(_, s, e), &n)| n == 1 && s <= t && t < e.max(s + 1)),
                    "t={t} {w:?} {mode}: {got:?}"
                );
            }
        }
        for t in [lo.checked_sub(1), hi.checked_add(1)].into_iter().flatten() {
            let job = Job::new();
            let _out = job
                .from_batches(schema(), splits(&[&[&[(1, t)]]]))
                .unwrap()
                .assign_timestamps("ts", WatermarkStrategy::monotonous())
                .unwrap()
                .key_by(["key"])
                .unwrap()
                .window(w)
                .aggregate([Agg::count().alias("n")])
                .unwrap()
                .collect()
                .unwrap();
            let err = job.run(&ExecConfig::batch()).unwrap_err().to_string();
            assert!(err.contains(&t.to_string()), "t={t} {w:?}: {err}");
        }
    }
}

/// Windows of a pane near i64::MAX are listed in bounded time.
#[test]
fn cumulative_windows_near_max_end() {
    let w = Window::cumulative(Duration::from_millis(1000), Duration::from_millis(3000));
    let pane = w.pane_of(i64::MAX - 10);
    let v = w.windows_of_pane(pane);
    assert!(!v.is_empty() && v.len() <= 3, "{v:?}");
    assert!(v.iter().all(|&(s, e)| s <= pane && e > pane), "{v:?}");
}

/// Empty batches and empty splits change nothing, for every kind and both modes.
#[test]
fn zero_row_batches_everywhere() {
    let ms = Duration::from_millis;
    let empty: &[(i64, i64)] = &[];
    let input = splits(&[&[empty, &[(1, 5)], empty], &[empty], &[]]);
    for w in [
        Window::tumbling(ms(10)),
        Window::sliding(ms(20), ms(10)),
        Window::cumulative(ms(10), ms(30)),
        Window::session(ms(10)),
    ] {
        let want: BTreeMap<(i64, i64, i64), i64> = match w {
            Window::Tumbling { .. } => [((1, 0, 10), 1)].into(),
            Window::Sliding { .. } => [((1, -10, 10), 1), ((1, 0, 20), 1)].into(),
            Window::Cumulative { .. } => [((1, 0, 10), 1), ((1, 0, 20), 1), ((1, 0, 30), 1)].into(),
            Window::Session { .. } => [((1, 5, 15), 1)].into(),
        };
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            let early = (!w.is_session()).then_some(EarlyFiring {
                every_rows: Some(1),
                every_ms: None,
                purge: false,
            });
            let got = run_window(input.clone(), w, 0, 5, early, mode, 3);
            assert_eq!(materialize(&got), want, "{w:?} {mode}");
        }
    }
}
