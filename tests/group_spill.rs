//! A non-windowed group aggregate whose keys far exceed the memory budget
//! spills its state and still upserts to the brute-force group-by, in both
//! modes at parallelism 1 and 3: batch runs emit every key once after
//! merging the spilled runs, pipelined runs look spilled keys up so each
//! changelog row is the key's full aggregate (`insert` the first time, then
//! `update`). Spill files are written, none remains, the pool ends at zero.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use weir::{Agg, ExecConfig, ExecMode, Job, JobMetrics, WatermarkStrategy};

/// Distinct keys in the input.
const KEYS: u64 = 40_000;
/// Rows in the input (about three per key).
const ROWS: u64 = 120_000;

/// key → (count, sum, min, max, first value by time, last value by time, distinct values)
type Table = HashMap<String, (i64, i64, i64, i64, i64, i64, i64)>;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("vehicle", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// `(vehicle, ts, v)` rows: keys in shuffled order, every timestamp distinct
/// and rising within each split (so `first`/`last` have no ties and no row
/// is late).
fn rows() -> Vec<(String, i64, i64)> {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..ROWS)
        .map(|i| {
            // every key at least once, the rest at random
            let key = if i < KEYS {
                (i * 7919) % KEYS
            } else {
                next() % KEYS
            };
            (
                format!("vehicle-{key:06}"),
                i as i64,
                (next() % 50) as i64 - 10,
            )
        })
        .collect()
}

/// The rows in two splits of 997-row batches (split 0: the first half).
fn splits(rows: &[(String, i64, i64)]) -> Vec<Vec<RecordBatch>> {
    let half = rows.len() / 2;
    [&rows[..half], &rows[half..]]
        .iter()
        .map(|part| {
            part.chunks(997)
                .map(|c| {
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(StringArray::from_iter_values(c.iter().map(|r| &r.0)))
                                as ArrayRef,
                            Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.1))),
                            Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.2))),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect()
}

fn oracle(rows: &[(String, i64, i64)]) -> Table {
    let mut by_key: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for (k, t, v) in rows {
        by_key.entry(k).or_default().push((*t, *v));
    }
    by_key
        .into_iter()
        .map(|(k, mut tv)| {
            tv.sort();
            let vs: Vec<i64> = tv.iter().map(|x| x.1).collect();
            let distinct = vs.iter().collect::<BTreeSet<_>>().len() as i64;
            (
                k.to_string(),
                (
                    vs.len() as i64,
                    vs.iter().sum(),
                    *vs.iter().min().unwrap(),
                    *vs.iter().max().unwrap(),
                    vs[0],
                    vs[vs.len() - 1],
                    distinct,
                ),
            )
        })
        .collect()
}

/// Runs the aggregate; returns the materialized changelog (last row per
/// key, checking `insert` comes first and `update` after), the number of
/// rows emitted and the metrics.
fn run(
    mode: ExecMode,
    p: usize,
    memory: usize,
    dir: &std::path::Path,
) -> (Table, usize, JobMetrics) {
    let job = Job::new();
    let out = job
        .from_batches(schema(), splits(&rows()))
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(3600)),
        )
        .unwrap()
        .key_by(["vehicle"])
        .unwrap()
        .aggregate([
            Agg::count().alias("n"),
            Agg::sum("v").alias("total"),
            Agg::min("v").alias("lo"),
            Agg::max("v").alias("hi"),
            Agg::first("v").alias("first_v"),
            Agg::last("v").alias("last_v"),
            Agg::count_distinct("v").alias("distinct_v"),
        ])
        .unwrap()
        .collect()
        .unwrap();
    let m = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(p)
                .with_memory(memory)
                .with_spill_dir(dir),
        )
        .unwrap_or_else(|e| panic!("{mode} p={p} memory {memory}: {e}"));
    let mut table = Table::new();
    let mut emitted = 0;
    for b in out.batches() {
        let int = |c: &str| {
            b.column_by_name(c)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let keys = b.column_by_name("vehicle").unwrap().as_string::<i32>();
        let ops = b.column_by_name("op").unwrap().as_string::<i32>();
        let cols = ["n", "total", "lo", "hi", "first_v", "last_v", "distinct_v"].map(int);
        for i in 0..b.num_rows() {
            let key = keys.value(i).to_string();
            let want_op = if table.contains_key(&key) {
                "update"
            } else {
                "insert"
            };
            assert_eq!(ops.value(i), want_op, "{mode} p={p}: op of {key}");
            let v = |c: usize| cols[c].value(i);
            table.insert(key, (v(0), v(1), v(2), v(3), v(4), v(5), v(6)));
            emitted += 1;
        }
    }
    (table, emitted, m)
}

/// Compares two tables key by key, naming the first difference.
fn assert_same(got: &Table, want: &Table, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of keys");
    for (k, w) in want {
        assert_eq!(got.get(k), Some(w), "{what}: key {k}");
    }
}

#[test]
fn group_state_far_beyond_the_budget_spills_and_upserts_to_the_brute_force_group_by() {
    let want = oracle(&rows());
    assert_eq!(want.len() as u64, KEYS);
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let (free, _, free_m) = run(mode, p, usize::MAX, dir.path());
            assert_same(&free, &want, &format!("{mode} p={p} unconstrained"));
            assert_eq!(
                free_m.spill_files, 0,
                "{mode} p={p}: nothing spills without a budget"
            );
            for budget in [256 << 10, 1 << 20, 4 << 20] {
                let what = format!("{mode} p={p} budget {budget}");
                assert!(
                    free_m.peak_memory >= 3 * budget as u64,
                    "{what}: the state must be at least 3x the budget, was {}",
                    free_m.peak_memory
                );
                let (got, emitted, m) = run(mode, p, budget, dir.path());
                assert!(
                    m.spill_files > 0 && m.spilled_bytes > 0,
                    "{what}: spilled: {m:?}"
                );
                assert_same(&got, &want, &what);
                assert_same(&got, &free, &format!("{what} vs unconstrained"));
                if mode == ExecMode::Batch {
                    assert_eq!(emitted as u64, KEYS, "{what}: batch emits every key once");
                }
                assert_eq!(m.memory_reserved_at_end, 0, "{what}: pool back to zero");
                let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
                assert!(left.is_empty(), "{what}: no spill file remains: {left:?}");
            }
        }
    }
}
