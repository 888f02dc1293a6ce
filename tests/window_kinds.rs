//! Every time-window kind (tumbling with offset, sliding, cumulative,
//! session), with and without allowed lateness, against a brute-force oracle:
//! pipelined == batch == oracle at parallelism 1 and 3, over random
//! out-of-order input in random batch sizes. With lateness the output is a
//! changelog (`op`); its materialized result is what is compared.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use common::{admitted, admitted_and_late_by, batches_of, schema, split_strategy, Row, Split};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use weir::compare::same_rows;
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, WatermarkStrategy};

const DELAY: i64 = 300;

fn window(kind: u8) -> Window {
    let ms = Duration::from_millis;
    match kind {
        0 => Window::tumbling(ms(1000)).with_offset(ms(250)),
        1 => Window::sliding(ms(2000), ms(500)),
        2 => Window::cumulative(ms(500), ms(2000)),
        _ => Window::session(ms(700)),
    }
}

#[derive(Debug, Default, Clone)]
struct Acc {
    n: i64,
    total: i64,
    min: Option<f64>,
    max: Option<f64>,
    first: Option<(i64, i64)>,
    last: Option<(i64, i64)>,
    distinct: BTreeSet<i64>,
}

impl Acc {
    fn add(&mut self, r: &Row) {
        self.n += 1;
        self.total += r.value;
        self.min = Some(self.min.map_or(r.speed, |m| m.min(r.speed)));
        self.max = Some(self.max.map_or(r.speed, |m| m.max(r.speed)));
        let tv = (r.ts, r.value);
        self.first = Some(self.first.map_or(tv, |f| f.min(tv)));
        self.last = Some(self.last.map_or(tv, |l| l.max(tv)));
        self.distinct.insert(r.value);
    }
}

/// Brute force: the windows of every admitted row, by containment.
fn oracle(kind: u8, rows: &[Row]) -> BTreeMap<(i64, i64, i64), Acc> {
    let mut out: BTreeMap<(i64, i64, i64), Acc> = BTreeMap::new();
    if kind == 3 {
        let mut by_key: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
        for r in rows {
            by_key.entry(r.key).or_default().push(r);
        }
        for (key, mut rs) in by_key {
            rs.sort_by_key(|r| r.ts);
            let mut cur: Option<(i64, i64, Acc)> = None;
            for r in rs {
                match &mut cur {
                    Some((_, end, acc)) if r.ts <= *end => {
                        *end = (*end).max(r.ts + 700);
                        acc.add(r);
                    }
                    _ => {
                        if let Some((s, e, acc)) = cur.take() {
                            out.insert((key, s, e), acc);
                        }
                        let mut acc = Acc::default();
                        acc.add(r);
                        cur = Some((r.ts, r.ts + 700, acc));
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
        let t = r.ts;
        let windows: Vec<(i64, i64)> = match kind {
            0 => {
                let s = t - (t - 250).rem_euclid(1000);
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
        };
        for (s, e) in windows {
            out.entry((r.key, s, e)).or_default().add(r);
        }
    }
    out
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
        Field::new("first_value", DataType::Int64, true),
        Field::new("last_value", DataType::Int64, true),
        Field::new("distinct", DataType::Int64, true),
    ]))
}

fn table(groups: &BTreeMap<(i64, i64, i64), Acc>) -> RecordBatch {
    let k: Vec<&(i64, i64, i64)> = groups.keys().collect();
    let a: Vec<&Acc> = groups.values().collect();
    let col = |f: &dyn Fn(&Acc) -> i64| {
        Arc::new(Int64Array::from_iter_values(a.iter().map(|x| f(x)))) as _
    };
    RecordBatch::try_new(
        output_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(k.iter().map(|x| x.0))),
            Arc::new(Int64Array::from_iter_values(k.iter().map(|x| x.1))),
            Arc::new(Int64Array::from_iter_values(k.iter().map(|x| x.2))),
            col(&|x| x.n),
            col(&|x| x.total),
            Arc::new(Float64Array::from_iter(a.iter().map(|x| x.min))),
            Arc::new(Float64Array::from_iter(a.iter().map(|x| x.max))),
            col(&|x| x.first.unwrap().1),
            col(&|x| x.last.unwrap().1),
            col(&|x| x.distinct.len() as i64),
        ],
    )
    .unwrap()
}

/// Applies a changelog (`op` = insert/update/delete) keyed by (key, start, end).
fn materialize(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    let Some(first) = batches.first() else {
        return vec![];
    };
    let Some(op_idx) = first.schema().index_of("op").ok() else {
        return batches.to_vec();
    };
    let mut live: BTreeMap<(i64, i64, i64), RecordBatch> = BTreeMap::new();
    for b in batches {
        let ops = b.column(op_idx).as_string::<i32>();
        for i in 0..b.num_rows() {
            let id = |c: usize| b.column(c).as_primitive::<Int64Type>().value(i);
            let key = (id(0), id(1), id(2));
            match ops.value(i) {
                "delete" => {
                    live.remove(&key);
                }
                _ => {
                    let row = b
                        .slice(i, 1)
                        .project(&(0..op_idx).collect::<Vec<_>>())
                        .unwrap();
                    live.insert(key, row);
                }
            }
        }
    }
    live.into_values().collect()
}

fn run(
    splits: &[Split],
    kind: u8,
    lateness: i64,
    mode: ExecMode,
    p: usize,
    memory: usize,
) -> (Vec<RecordBatch>, u64) {
    let job = Job::new();
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(DELAY as u64))
        .with_allowed_lateness(Duration::from_millis(lateness as u64));
    let out = job
        .from_batches(schema(), splits.iter().map(batches_of).collect())
        .unwrap()
        .assign_timestamps("ts", strategy)
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .window(window(kind))
        .aggregate([
            Agg::count().alias("n"),
            Agg::sum("value").alias("total"),
            Agg::min("speed"),
            Agg::max("speed"),
            Agg::first("value").alias("first_value"),
            Agg::last("value").alias("last_value"),
            Agg::count_distinct("value").alias("distinct"),
        ])
        .unwrap()
        .collect()
        .unwrap();
    let m = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(p)
                .with_memory(memory)
                .with_batch_rows(17),
        )
        .unwrap();
    (out.batches(), m.late_rows)
}

/// Window-aware lateness: the max timestamp of the row's first window (the
/// row's own time for sessions, which keep the per-row rule).
fn deadline(kind: u8, t: i64) -> i64 {
    let first_end = match kind {
        0 => t - (t - 250).rem_euclid(1000) + 1000,
        1 => t - t.rem_euclid(500) + 500,
        2 => t - t.rem_euclid(500) + 500,
        _ => return t,
    };
    first_end - 1
}

fn check(splits: &[Split], kind: u8, lateness: i64) -> Result<(), TestCaseError> {
    let (rows, late) = admitted_and_late_by(splits, DELAY, lateness, &|t| deadline(kind, t));
    let late = late.len() as u64;
    let want = table(&oracle(kind, &rows));
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        // the last: window state spills after almost every batch
        for (p, memory) in [(1, usize::MAX), (3, usize::MAX), (2, 12 << 10)] {
            let (got, late_rows) = run(splits, kind, lateness, mode, p, memory);
            if lateness == 0 {
                prop_assert!(got.iter().all(|b| b.schema().index_of("op").is_err()));
            }
            let got = materialize(&got);
            if let Err(e) = same_rows(&got, std::slice::from_ref(&want), &output_schema(), 1e-9) {
                prop_assert!(
                    false,
                    "kind {kind} lateness {lateness} {mode} p={p} memory {memory}: {e}"
                );
            }
            prop_assert_eq!(late_rows, late, "late rows, kind {} {} p={}", kind, mode, p);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_window_kind_matches_the_oracle_in_both_modes(
        splits in prop::collection::vec(split_strategy(4), 1..5),
        kind in 0u8..4,
        lateness in prop::sample::select(vec![0i64, 400]),
    ) {
        check(&splits, kind, lateness)?;
    }
}

#[test]
fn lateness_produces_updates_and_the_changelog_materializes_to_the_oracle() {
    // one split: the watermark passes window [0,1000) (row at 1400 → wm 1099),
    // then a row at 900 arrives within the lateness of 400 ms; a row at -500
    // is not: its window [-1000, 0) was done at 1099 - 400 = 699
    let rows = |v: &[(i64, i64)]| -> Vec<Row> {
        v.iter()
            .map(|&(key, ts)| Row {
                key,
                ts,
                value: 1,
                speed: 1.0,
            })
            .collect()
    };
    let split = Split {
        rows: rows(&[(1, 100), (1, 1400), (1, 900), (1, -500)]),
        cuts: vec![1],
    };
    let job = Job::new();
    let out = job
        .from_batches(schema(), vec![batches_of(&split)])
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(DELAY as u64))
                .with_allowed_lateness(Duration::from_millis(400)),
        )
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .window(Window::tumbling(Duration::from_secs(1)))
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .collect()
        .unwrap();
    let m = job
        .run(&ExecConfig::pipelined().with_parallelism(1))
        .unwrap();
    // [0, 1000) is not done for 900 (999 > 699); [-1000, 0) is for -500
    assert_eq!(m.late_rows, 1);
    let got = out.batches();
    let ops: Vec<String> = got
        .iter()
        .flat_map(|b| {
            let ops = b.column_by_name("op").unwrap().as_string::<i32>().clone();
            (0..ops.len()).map(move |i| ops.value(i).to_string())
        })
        .collect();
    assert_eq!(
        ops,
        vec!["insert", "update", "insert"],
        "window [0,1000) fired, updated; then [1000,2000)"
    );
    let counts: Vec<i64> = materialize(&got)
        .iter()
        .map(|b| {
            b.column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0)
        })
        .collect();
    assert_eq!(counts, vec![2, 1]);
}

#[test]
fn the_property_inputs_exercise_sessions_merging_and_late_rows() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let splits: Vec<Split> = (0..3)
        .map(|_| split_strategy(4).new_tree(&mut runner).unwrap().current())
        .collect();
    let (rows, late) = admitted(&splits, DELAY, 0);
    assert!(late > 0);
    let sessions = oracle(3, &rows);
    assert!(
        sessions.values().any(|a| a.n > 3),
        "some sessions span several rows"
    );
    assert!(
        oracle(1, &rows).len() > oracle(0, &rows).len(),
        "sliding windows overlap"
    );
}
