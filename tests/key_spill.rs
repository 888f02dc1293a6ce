//! The key dictionary leaves memory with the state that holds its keys: a
//! tumbling-window job whose distinct keys alone are more than ten times
//! the memory budget completes in both modes, at parallelism 1 and 3, with
//! exactly the results of a brute-force reference; the pool ends at zero
//! and no spill file remains.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, JobMetrics, WatermarkStrategy};

const KEYS: u64 = 140_000;
const HOUR: i64 = 3_600_000;
const BUDGET: usize = 512 << 10;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("t", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// 40-byte keys: the distinct keys' bytes alone are `KEYS * 40`.
fn key(i: u64) -> String {
    format!("vehicle-{:032}", i)
}

/// `(key, time, value)`: every key twice in the first hour (far apart in
/// the input), a third of them once in the second hour; 3 splits.
fn rows() -> Vec<Vec<(u64, i64, i64)>> {
    let mut splits = vec![Vec::new(); 3];
    for round in 0..3u64 {
        for i in 0..KEYS {
            if round == 2 && i % 3 != 0 {
                continue;
            }
            let k = (i * 7919 + round * 104_729) % KEYS;
            let n = (round * KEYS + i) as i64;
            let t = if round == 2 {
                HOUR + (n * 131) % HOUR
            } else {
                (n * 977) % HOUR
            };
            splits[(i % 3) as usize].push((k, t, n % 97));
        }
    }
    // out of order by up to 10 s within a split: the 30 s watermark delay
    // keeps every row, and the first hour fires while the second is read
    for s in &mut splits {
        s.sort_by_key(|r| (r.1 / 10_000, (r.1 * 31) % 1_000_003));
    }
    splits
}

fn input() -> Vec<Vec<RecordBatch>> {
    rows()
        .into_iter()
        .map(|split| {
            split
                .chunks(5000)
                .map(|c| {
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(StringArray::from_iter_values(c.iter().map(|r| key(r.0)))),
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

type Table = BTreeMap<(String, i64, i64), (i64, i64)>;

/// The brute-force reference: (key, start, end) -> (count, sum).
fn reference() -> Table {
    let mut t = Table::new();
    for (k, time, v) in rows().into_iter().flatten() {
        let start = time.div_euclid(HOUR) * HOUR;
        let e = t.entry((key(k), start, start + HOUR)).or_insert((0, 0));
        e.0 += 1;
        e.1 += v;
    }
    t
}

fn run(
    mode: ExecMode,
    parallelism: usize,
    memory: usize,
    dir: &std::path::Path,
) -> (Table, JobMetrics) {
    let job = Job::new();
    let out = job
        .from_batches(schema(), input())
        .unwrap()
        .assign_timestamps(
            "t",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(30)),
        )
        .unwrap()
        .key_by(["k"])
        .unwrap()
        .window(Window::tumbling(Duration::from_secs(3600)))
        .aggregate([Agg::count().alias("n"), Agg::sum("v").alias("s")])
        .unwrap()
        .collect()
        .unwrap();
    let m = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(parallelism)
                .with_memory(memory)
                .with_spill_dir(dir),
        )
        .unwrap_or_else(|e| panic!("{mode} x{parallelism} at {memory} bytes: {e}"));
    let mut got = Table::new();
    for b in out.batches() {
        let k = b.column(0).as_string::<i32>();
        let (s, e) = (
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Int64Type>(),
        );
        let (n, sum) = (
            b.column(3).as_primitive::<Int64Type>(),
            b.column(4).as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            let prev = got.insert(
                (k.value(r).to_string(), s.value(r), e.value(r)),
                (n.value(r), sum.value(r)),
            );
            assert!(prev.is_none(), "{mode}: a window emitted twice for one key");
        }
    }
    (got, m)
}

#[test]
fn a_window_whose_keys_alone_are_ten_times_the_budget_completes_with_exact_results() {
    let want = reference();
    let key_bytes = KEYS as usize * key(0).len();
    assert!(key_bytes >= 10 * BUDGET, "{key_bytes}");
    assert_eq!(
        want.len() as u64,
        KEYS + KEYS.div_ceil(3),
        "reference shape"
    );
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for parallelism in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let (got, m) = run(mode, parallelism, BUDGET, dir.path());
            assert!(
                m.spill_files > 0 && m.spilled_bytes > 0,
                "{mode} x{parallelism}: the keys were spilled: {m:?}"
            );
            assert_eq!(
                m.memory_reserved_at_end, 0,
                "{mode} x{parallelism}: pool back to zero"
            );
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(
                left.is_empty(),
                "{mode} x{parallelism}: no spill file remains: {left:?}"
            );
            assert!(
                m.peak_memory <= 2 * BUDGET as u64,
                "{mode} x{parallelism}: the pool stayed near its budget: peak {}",
                m.peak_memory
            );
            assert_eq!(got.len(), want.len(), "{mode} x{parallelism}: windows");
            for (k, v) in &want {
                assert_eq!(got.get(k), Some(v), "{mode} x{parallelism}: {k:?}");
            }
        }
    }
}
