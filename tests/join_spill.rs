//! Join state far beyond the memory budget: the batch sort-merge join
//! spills both inputs to hash-sorted runs, the pipelined symmetric hash
//! join spills its stored rows by epoch, and both still give the oracle's
//! rows; a hot key holding half the rows completes; the pool ends at zero
//! and no spill file remains.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::HashMap;
use std::sync::Arc;
use weir::operators::join::JoinSpec;
use weir::{ExecConfig, ExecMode, Job, JobMetrics};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn side(keys: impl Fn(i64) -> i64, n: i64, salt: i64) -> Vec<Vec<RecordBatch>> {
    (0..2)
        .map(|split| {
            (0..n / 2)
                .step_by(4096)
                .map(|start| {
                    let ids: Vec<i64> = (start..(start + 4096).min(n / 2))
                        .map(|i| i * 2 + split)
                        .collect();
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from_iter_values(ids.iter().map(|&i| keys(i)))),
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|&i| i * salt % 1000),
                            )),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect()
}

/// (rows, sum of left v + right v over all output rows) of an inner join, by brute force per key.
fn oracle(left: &[Vec<RecordBatch>], right: &[Vec<RecordBatch>]) -> (u64, i64) {
    let stats = |input: &[Vec<RecordBatch>]| {
        let mut m: HashMap<i64, (i64, i64)> = HashMap::new();
        for b in input.iter().flatten() {
            let k = b.column(0).as_primitive::<Int64Type>();
            let v = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let e = m.entry(k.value(i)).or_default();
                e.0 += 1;
                e.1 += v.value(i);
            }
        }
        m
    };
    let (l, r) = (stats(left), stats(right));
    let mut rows = 0u64;
    let mut sum = 0i64;
    for (k, (lc, ls)) in &l {
        if let Some((rc, rs)) = r.get(k) {
            rows += (lc * rc) as u64;
            sum += ls * rc + rs * lc;
        }
    }
    (rows, sum)
}

fn run(
    left: &[Vec<RecordBatch>],
    right: &[Vec<RecordBatch>],
    mode: ExecMode,
    memory: usize,
    dir: &std::path::Path,
) -> (u64, i64, JobMetrics) {
    let job = Job::new();
    let l = job.from_batches(schema(), left.to_vec()).unwrap();
    let r = job.from_batches(schema(), right.to_vec()).unwrap();
    let out = l
        .join(&r, JoinSpec::regular().on(["k"], ["k"]))
        .unwrap()
        .collect()
        .unwrap();
    let m = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(2)
                .with_memory(memory)
                .with_spill_dir(dir),
        )
        .unwrap();
    let mut rows = 0u64;
    let mut sum = 0i64;
    for b in out.batches() {
        rows += b.num_rows() as u64;
        for c in ["v", "right_v"] {
            sum += b
                .column_by_name(c)
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>();
        }
    }
    (rows, sum, m)
}

#[test]
fn join_state_ten_times_the_budget_spills_and_matches_the_oracle_in_both_modes() {
    let left = side(|i| i % 50_000, 300_000, 7);
    let right = side(|i| (i * 7) % 50_000, 300_000, 13);
    let want = oracle(&left, &right);
    assert!(want.0 > 500_000, "{want:?}");
    let budget = 1 << 20;
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let dir = tempfile::tempdir().unwrap();
        let (rows, sum, free) = run(&left, &right, mode, usize::MAX, dir.path());
        assert_eq!((rows, sum), want, "{mode} unlimited");
        assert!(
            free.peak_memory >= 10 * budget as u64,
            "{mode}: state is 10x the budget: {}",
            free.peak_memory
        );
        let (rows, sum, m) = run(&left, &right, mode, budget, dir.path());
        assert_eq!((rows, sum), want, "{mode} under a 1 MiB budget");
        assert!(m.spill_files > 0 && m.spilled_bytes > 0, "{mode}: {m:?}");
        assert_eq!(m.memory_reserved_at_end, 0, "{mode}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{mode}");
    }
}

#[test]
fn a_hot_key_with_half_the_rows_completes_in_both_modes() {
    // left: half the rows have key 0; right: 20 rows of key 0 among 20 000
    let left = side(|i| if i % 2 == 0 { 0 } else { i }, 40_000, 3);
    let right = side(|i| if i < 20 { 0 } else { i + 1 }, 20_000, 5);
    let want = oracle(&left, &right);
    assert!(want.0 >= 400_000, "{want:?}");
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let dir = tempfile::tempdir().unwrap();
        let memory = if mode == ExecMode::Batch {
            256 << 10
        } else {
            usize::MAX
        };
        let (rows, sum, m) = run(&left, &right, mode, memory, dir.path());
        assert_eq!((rows, sum), want, "{mode}");
        assert_eq!(m.memory_reserved_at_end, 0, "{mode}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{mode}");
    }
}
