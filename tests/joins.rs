//! Every join kind (tumbling, sliding, cumulative and session window joins,
//! interval join, regular join with and without an event-time TTL) × inner/left/right/full against a nested-loop oracle
//! over random out-of-order input: pipelined == batch == oracle at
//! parallelism 1 and 3. A regular outer join's pipelined changelog
//! (padded rows retracted by their first match) materializes to the oracle.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use common::{admitted_and_late_by, batches_of, schema, split_strategy, Row, Split};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;
use weir::operators::join::{JoinSpec, JoinType};
use weir::time::Window;
use weir::{ExecConfig, ExecMode, Job, WatermarkStrategy};

const DELAY: i64 = 300;

/// (key, ts, value) of a side, or padded.
type Side = Option<(i64, i64, i64)>;
/// One output row: left, right, window.
type Out = (Side, Side, Option<(i64, i64)>);

fn spec(kind: u8) -> JoinSpec {
    let ms = Duration::from_millis;
    match kind {
        0 => JoinSpec::window(Window::tumbling(ms(1000))),
        1 => JoinSpec::window(Window::sliding(ms(2000), ms(500))),
        2 => JoinSpec::window(Window::cumulative(ms(500), ms(2000))),
        3 => JoinSpec::interval_ms(-300, 200),
        4 => JoinSpec::regular(),
        5 => JoinSpec::regular().with_ttl(ms(400)),
        _ => JoinSpec::window(Window::session(ms(300))),
    }
}

fn windows_of(kind: u8, t: i64) -> Vec<(i64, i64)> {
    match kind {
        0 => {
            let s = t - t.rem_euclid(1000);
            vec![(s, s + 1000)]
        }
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

fn side(r: &Row) -> Side {
    Some((r.key, r.ts, r.value))
}

/// Nested loops over every pair of admitted rows.
fn oracle(kind: u8, ty: JoinType, left: &[Row], right: &[Row]) -> Vec<Out> {
    let mut out = Vec::new();
    let keep_l = matches!(ty, JoinType::Left | JoinType::Full);
    let keep_r = matches!(ty, JoinType::Right | JoinType::Full);
    if kind == 6 {
        // sessions per key over the rows of both sides: a row at most 300 ms
        // after the session's last row extends it
        let mut keys: Vec<i64> = left.iter().chain(right).map(|r| r.key).collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            let mut rows: Vec<(i64, bool, &Row)> = left
                .iter()
                .filter(|r| r.key == k)
                .map(|r| (r.ts, true, r))
                .chain(
                    right
                        .iter()
                        .filter(|r| r.key == k)
                        .map(|r| (r.ts, false, r)),
                )
                .collect();
            rows.sort_by_key(|x| x.0);
            let mut i = 0;
            while i < rows.len() {
                let (start, mut end) = (rows[i].0, rows[i].0 + 300);
                let mut j = i + 1;
                while j < rows.len() && rows[j].0 <= end {
                    end = end.max(rows[j].0 + 300);
                    j += 1;
                }
                let w = Some((start, end));
                let ls: Vec<&Row> = rows[i..j].iter().filter(|x| x.1).map(|x| x.2).collect();
                let rs: Vec<&Row> = rows[i..j].iter().filter(|x| !x.1).map(|x| x.2).collect();
                for l in &ls {
                    for r in &rs {
                        out.push((side(l), side(r), w));
                    }
                }
                if rs.is_empty() && keep_l {
                    out.extend(ls.iter().map(|l| (side(l), None, w)));
                }
                if ls.is_empty() && keep_r {
                    out.extend(rs.iter().map(|r| (None, side(r), w)));
                }
                i = j;
            }
        }
    } else if kind <= 2 {
        for l in left {
            for w in windows_of(kind, l.ts) {
                let mut any = false;
                for r in right {
                    if r.key == l.key && windows_of(kind, r.ts).contains(&w) {
                        any = true;
                        out.push((side(l), side(r), Some(w)));
                    }
                }
                if !any && keep_l {
                    out.push((side(l), None, Some(w)));
                }
            }
        }
        if keep_r {
            for r in right {
                for w in windows_of(kind, r.ts) {
                    let any = left
                        .iter()
                        .any(|l| l.key == r.key && windows_of(kind, l.ts).contains(&w));
                    if !any {
                        out.push((None, side(r), Some(w)));
                    }
                }
            }
        }
    } else {
        let matches = |l: &Row, r: &Row| {
            l.key == r.key
                && match kind {
                    3 => r.ts - 300 <= l.ts && l.ts <= r.ts + 200,
                    4 => true,
                    _ => (l.ts - r.ts).abs() <= 400,
                }
        };
        for l in left {
            let mut any = false;
            for r in right {
                if matches(l, r) {
                    any = true;
                    out.push((side(l), side(r), None));
                }
            }
            if !any && keep_l {
                out.push((side(l), None, None));
            }
        }
        if keep_r {
            for r in right {
                if !left.iter().any(|l| matches(l, r)) {
                    out.push((None, side(r), None));
                }
            }
        }
    }
    out.sort();
    out
}

/// Output rows as tuples; a changelog (`op`) is applied as a multiset.
fn rows_of(batches: &[RecordBatch]) -> Vec<Out> {
    let mut live: BTreeMap<Out, i64> = BTreeMap::new();
    for b in batches {
        let int = |name: &str| {
            b.column_by_name(name)
                .map(|c| c.as_primitive::<Int64Type>().clone())
        };
        let (lk, lt, lv) = (
            int("key").unwrap(),
            int("ts").unwrap(),
            int("value").unwrap(),
        );
        let (rk, rt, rv) = (
            int("right_key").unwrap(),
            int("right_ts").unwrap(),
            int("right_value").unwrap(),
        );
        let (ws, we) = (int("window_start"), int("window_end"));
        let op = b.column_by_name("op").map(|c| c.as_string::<i32>().clone());
        for i in 0..b.num_rows() {
            let l = (!lk.is_null(i)).then(|| (lk.value(i), lt.value(i), lv.value(i)));
            let r = (!rk.is_null(i)).then(|| (rk.value(i), rt.value(i), rv.value(i)));
            let w = ws
                .as_ref()
                .map(|s| (s.value(i), we.as_ref().unwrap().value(i)));
            let delta = match op.as_ref().map(|o| o.value(i)) {
                Some("delete") => -1,
                _ => 1,
            };
            *live.entry((l, r, w)).or_default() += delta;
        }
    }
    let mut out = Vec::new();
    for (row, n) in live {
        assert!(n >= 0, "a delete without its insert: {row:?}");
        out.extend(std::iter::repeat_n(row, n as usize));
    }
    out
}

fn run(
    left: &[Split],
    right: &[Split],
    kind: u8,
    ty: JoinType,
    mode: ExecMode,
    p: usize,
    memory: usize,
) -> Vec<RecordBatch> {
    let job = Job::new();
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(DELAY as u64));
    let input = |splits: &[Split]| {
        job.from_batches(schema(), splits.iter().map(batches_of).collect())
            .unwrap()
            .assign_timestamps("ts", strategy.clone())
            .unwrap()
    };
    let (l, r) = (input(left), input(right));
    let out = l
        .join(&r, spec(kind).on(["key"], ["key"]).with_type(ty))
        .unwrap()
        .collect()
        .unwrap();
    job.run(
        &ExecConfig::new(mode)
            .with_parallelism(p)
            .with_memory(memory)
            .with_batch_rows(17),
    )
    .unwrap();
    out.batches()
}

fn check(left: &[Split], right: &[Split], kind: u8, ty: JoinType) -> Result<(), TestCaseError> {
    // window joins keep a row whose first window has not fired; the other
    // kinds (sessions, interval, regular) need rows after the watermark
    let deadline = |t: i64| match kind {
        0..=2 => windows_of(kind, t)
            .iter()
            .map(|&(_, e)| e - 1)
            .min()
            .unwrap(),
        _ => t,
    };
    let (lrows, _) = admitted_and_late_by(left, DELAY, 0, &deadline);
    let (rrows, _) = admitted_and_late_by(right, DELAY, 0, &deadline);
    let want = oracle(kind, ty, &lrows, &rrows);
    for mode in [ExecMode::Pipelined, ExecMode::Batch] {
        // the last: join state spills after almost every batch
        for (p, memory) in [(1, usize::MAX), (3, usize::MAX), (2, 16 << 10)] {
            let got = rows_of(&run(left, right, kind, ty, mode, p, memory));
            prop_assert!(
                got == want,
                "kind {} {:?} {} p={} memory {}: got {} rows, want {}; first difference {:?}",
                kind,
                ty,
                mode,
                p,
                memory,
                got.len(),
                want.len(),
                got.iter().zip(&want).find(|(a, b)| a != b)
            );
        }
    }
    Ok(())
}

fn join_type(i: u8) -> JoinType {
    [
        JoinType::Inner,
        JoinType::Left,
        JoinType::Right,
        JoinType::Full,
    ][i as usize]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 70, ..ProptestConfig::default() })]

    #[test]
    fn every_join_kind_and_type_matches_the_nested_loop_oracle_in_both_modes(
        left in prop::collection::vec(split_strategy(4), 1..4),
        right in prop::collection::vec(split_strategy(4), 1..4),
        kind in 0u8..7,
        ty in 0u8..4,
    ) {
        check(&left, &right, kind, join_type(ty))?;
    }
}

/// Null keys never match (not even each other); outer joins pad them, in
/// both modes, for regular and interval joins (hand-computed table).
#[test]
fn null_keys_never_match_and_outer_joins_pad_them() {
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, true),
        Field::new("ts", DataType::Int64, false),
        Field::new("value", DataType::Int64, false),
    ]));
    let batch = |k: Vec<Option<i64>>, t: Vec<i64>, v: Vec<i64>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(k)),
                Arc::new(Int64Array::from(t)),
                Arc::new(Int64Array::from(v)),
            ],
        )
        .unwrap()
    };
    let left = batch(
        vec![Some(1), None, Some(2)],
        vec![100, 100, 100],
        vec![1, 2, 3],
    );
    let right = batch(
        vec![Some(1), None, Some(3)],
        vec![100, 100, 100],
        vec![10, 20, 30],
    );
    for spec in [
        JoinSpec::regular(),
        JoinSpec::interval_ms(-50, 50),
        JoinSpec::window(Window::session(Duration::from_millis(300))),
    ] {
        for mode in [ExecMode::Pipelined, ExecMode::Batch] {
            let job = Job::new();
            let input = |b: &RecordBatch| {
                job.from_batches(schema.clone(), vec![vec![b.clone()]])
                    .unwrap()
                    .assign_timestamps(
                        "ts",
                        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10)),
                    )
                    .unwrap()
            };
            let out = input(&left)
                .join(
                    &input(&right),
                    spec.clone().on(["key"], ["key"]).with_type(JoinType::Full),
                )
                .unwrap()
                .collect()
                .unwrap();
            job.run(&ExecConfig::new(mode).with_parallelism(2)).unwrap();
            let mut got: Vec<(Option<i64>, Option<i64>)> = Vec::new();
            for b in out.batches() {
                let v = b
                    .column_by_name("value")
                    .unwrap()
                    .as_primitive::<Int64Type>();
                let rv = b
                    .column_by_name("right_value")
                    .unwrap()
                    .as_primitive::<Int64Type>();
                let op = b.column_by_name("op").map(|c| c.as_string::<i32>().clone());
                for i in 0..b.num_rows() {
                    let row = (
                        (!v.is_null(i)).then(|| v.value(i)),
                        (!rv.is_null(i)).then(|| rv.value(i)),
                    );
                    if op.as_ref().is_some_and(|o| o.value(i) == "delete") {
                        let at = got
                            .iter()
                            .position(|r| *r == row)
                            .expect("deleted row was inserted");
                        got.remove(at);
                    } else {
                        got.push(row);
                    }
                }
            }
            got.sort();
            assert_eq!(
                got,
                vec![
                    (None, Some(20)),
                    (None, Some(30)),
                    (Some(1), Some(10)),
                    (Some(2), None),
                    (Some(3), None),
                ],
                "{spec:?} {mode}"
            );
        }
    }
}

/// Joins that drop state as the watermark passes refuse inputs with allowed
/// lateness (a late row could miss its match in one mode and not the
/// other); a regular join without a TTL takes them.
#[test]
fn bounded_joins_refuse_inputs_with_allowed_lateness() {
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("window_start", DataType::Int64, false),
        Field::new("window_end", DataType::Int64, false),
    ]));
    let one = || {
        RecordBatch::try_new(
            schema.clone(),
            (0..4)
                .map(|_| Arc::new(Int64Array::from(vec![1])) as _)
                .collect(),
        )
        .unwrap()
    };
    let specs = [
        (
            JoinSpec::window(Window::tumbling(Duration::from_secs(1))),
            true,
        ),
        (JoinSpec::same_window(), true),
        (
            JoinSpec::interval(Duration::from_secs(1), Duration::ZERO),
            true,
        ),
        (JoinSpec::regular().with_ttl(Duration::from_secs(1)), true),
        (JoinSpec::regular(), false),
    ];
    for (spec, refused) in specs {
        for (l, r) in [(50u64, 0u64), (0, 70)] {
            let job = Job::new();
            let side = |lateness: u64| {
                job.from_batches(schema.clone(), vec![vec![one()]])
                    .unwrap()
                    .assign_timestamps(
                        "ts",
                        WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO)
                            .with_allowed_lateness(Duration::from_millis(lateness)),
                    )
                    .unwrap()
            };
            let kind = spec.kind;
            let joined = side(l).join(&side(r), spec.clone().on(["key"], ["key"]));
            match joined {
                Err(e) if refused => {
                    let msg = e.to_string();
                    let want = format!("allowed lateness (left {l} ms, right {r} ms)");
                    assert!(msg.contains(&want), "{kind:?}: {msg}");
                }
                Ok(_) if !refused => {}
                other => panic!(
                    "{kind:?} ({l}/{r} ms): refused {refused} expected, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
    }
}

/// A same-window join refuses an updating window result (a window
/// aggregate with allowed lateness or early firing emits a window's rows
/// again, with `op`): it would join every version of a row.
#[test]
fn same_window_joins_refuse_updating_window_results() {
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    use weir::Agg;
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
    ]));
    let one = || {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1])) as _,
                Arc::new(Int64Array::from(vec![5])) as _,
            ],
        )
        .unwrap()
    };
    for lateness in [0u64, 100] {
        let job = Job::new();
        let counts = |lateness: u64| {
            job.from_batches(schema.clone(), vec![vec![one()]])
                .unwrap()
                .assign_timestamps(
                    "ts",
                    WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO)
                        .with_allowed_lateness(Duration::from_millis(lateness)),
                )
                .unwrap()
                .key_by(["key"])
                .unwrap()
                .window(Window::tumbling(Duration::from_secs(1)))
                .aggregate([Agg::count().alias("n")])
                .unwrap()
        };
        let joined =
            counts(lateness).join(&counts(0), JoinSpec::same_window().on(["key"], ["key"]));
        match joined {
            Ok(_) => assert_eq!(lateness, 0, "an updating result was accepted"),
            Err(e) => {
                assert!(lateness > 0, "final results refused: {e}");
                let msg = e.to_string();
                assert!(
                    msg.contains("updating window result (the left input's `op` column"),
                    "{msg}"
                );
            }
        }
    }
}
