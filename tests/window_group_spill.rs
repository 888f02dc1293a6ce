//! A per-window aggregate of window output (`aggregate_per_window`, the
//! second level of a cascade) whose own state is far beyond the memory
//! budget spills to sorted runs and fires from them: in both modes, at
//! parallelism 1 and 3, the output equals a brute-force answer, spill files
//! are written, the pool ends at zero and no file remains.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir::{Agg, ExecConfig, ExecMode, Job, JobMetrics, WatermarkStrategy};

/// Windows of the input (1 s tumbling, as a window aggregate emits them).
const WINDOWS: i64 = 6;
/// Rows per window.
const ROWS_PER_WINDOW: i64 = 30_000;
/// Keys drawn from per row: about 15 500 groups per window.
const KEYS: u64 = 20_000;
/// Splits of the source.
const SPLITS: i64 = 3;

/// Window output as a source: key, window bounds, event time, value, tag.
fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("window_start", DataType::Int64, false),
        Field::new("window_end", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("value", DataType::Int64, false),
        Field::new("tag", DataType::Utf8, false),
    ]))
}

/// One input row: key, window start, event time, value.
type Row = (i64, i64, i64, i64);

/// Every row of every split, in each split's order: split `s` holds
/// windows `2s` and `2s + 1` (time ranges apart, so the watermark moves on
/// while a split is read, also at parallelism 1), event times rising inside
/// each window; with a watermark delay of 1.5 windows no row is late.
fn rows() -> Vec<Vec<Row>> {
    let mut seed = 0x5EED_u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let per_split = WINDOWS / SPLITS;
    (0..SPLITS)
        .map(|s| {
            let mut split = Vec::new();
            for w in s * per_split..(s + 1) * per_split {
                let start = w * 1000;
                for i in 0..ROWS_PER_WINDOW {
                    let t = start + i * 1000 / ROWS_PER_WINDOW;
                    split.push((next(KEYS) as i64, start, t, next(1000) as i64 - 100));
                }
            }
            split
        })
        .collect()
}

fn tag(key: i64) -> String {
    format!("tag-{:05}", key % 9973)
}

fn batches(rows: &[Vec<Row>]) -> Vec<Vec<RecordBatch>> {
    rows.iter()
        .map(|split| {
            split
                .chunks(2048)
                .map(|rows| {
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                            Arc::new(Int64Array::from_iter_values(
                                rows.iter().map(|r| r.1 + 1000),
                            )),
                            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
                            Arc::new(StringArray::from_iter_values(
                                rows.iter().map(|r| tag(r.0 * 7 + r.3)),
                            )),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect()
}

/// Result rows: key, window_start, window_end, count, sum, min, max tag.
type Out = (i64, i64, i64, i64, i64, i64, String);

/// The brute-force answer.
fn oracle(rows: &[Vec<Row>]) -> Vec<Out> {
    let mut groups: BTreeMap<(i64, i64), (i64, i64, i64, String)> = BTreeMap::new();
    for &(key, start, _, value) in rows.iter().flatten() {
        let t = tag(key * 7 + value);
        let g = groups
            .entry((key, start))
            .or_insert((0, 0, i64::MAX, String::new()));
        g.0 += 1;
        g.1 += value;
        g.2 = g.2.min(value);
        if t > g.3 {
            g.3 = t;
        }
    }
    groups
        .into_iter()
        .map(|((k, s), (n, sum, min, top))| (k, s, s + 1000, n, sum, min, top))
        .collect()
}

fn results(batches: &[RecordBatch]) -> Vec<Out> {
    let mut out = Vec::new();
    for b in batches {
        let int = |name: &str| b.column_by_name(name).unwrap().as_primitive::<Int64Type>();
        let (k, s, e, n, sum, min) = (
            int("key"),
            int("window_start"),
            int("window_end"),
            int("n"),
            int("total"),
            int("low"),
        );
        let top = b.column_by_name("top_tag").unwrap().as_string::<i32>();
        for r in 0..b.num_rows() {
            out.push((
                k.value(r),
                s.value(r),
                e.value(r),
                n.value(r),
                sum.value(r),
                min.value(r),
                top.value(r).to_string(),
            ));
        }
    }
    out.sort();
    out
}

fn run(
    mode: ExecMode,
    p: usize,
    memory: usize,
    spill_dir: &std::path::Path,
) -> (Vec<Out>, JobMetrics) {
    let job = Job::new();
    let out = job
        .from_batches(schema(), batches(&rows()))
        .unwrap()
        .assign_timestamps(
            "t",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(1500)),
        )
        .unwrap()
        .aggregate_per_window(
            &["key"],
            [
                Agg::count().alias("n"),
                Agg::sum("value").alias("total"),
                Agg::min("value").alias("low"),
                Agg::max("tag").alias("top_tag"),
            ],
        )
        .unwrap()
        .collect()
        .unwrap();
    let m = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(p)
                .with_batch_rows(2048)
                .with_memory(memory)
                .with_spill_dir(spill_dir),
        )
        .unwrap_or_else(|e| panic!("{mode} p={p} memory={memory}: {e}"));
    (results(&out.batches()), m)
}

#[test]
fn per_window_aggregate_state_ten_times_the_budget_spills_and_matches_the_oracle() {
    let budget = 256 << 10;
    let want = oracle(&rows());
    assert!(want.len() > 80_000, "{} groups", want.len());
    for mode in [ExecMode::Pipelined, ExecMode::Batch] {
        for p in [1, 3] {
            let what = format!("{mode} p={p}");
            let dir = tempfile::tempdir().unwrap();
            let (free_rows, free) = run(mode, p, usize::MAX, dir.path());
            assert_eq!(free_rows, want, "{what} unconstrained vs the oracle");
            // in pipelined runs the per-window aggregate is the only
            // consumer; in batch runs the shuffle holds the input too
            assert!(
                free.peak_memory >= 10 * budget as u64,
                "{what}: the state must be at least 10x the budget, was {}",
                free.peak_memory
            );
            let (got, m) = run(mode, p, budget, dir.path());
            assert!(
                m.spill_files > 0 && m.spilled_state_bytes > 0,
                "{what}: state was spilled: {m:?}"
            );
            assert_eq!(m.late_rows, 0, "{what}: no row is late");
            assert!(
                m.peak_memory <= 2 * budget as u64,
                "{what}: peak {} for a budget of {budget}",
                m.peak_memory
            );
            assert_eq!(m.memory_reserved_at_end, 0, "{what}: pool back to zero");
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(left.is_empty(), "{what}: no spill file remains: {left:?}");
            eprintln!(
                "{what}: state {} B unconstrained; budget {budget} B: peak {} B, \
                 {} B of state spilled, {} spill files",
                free.peak_memory, m.peak_memory, m.spilled_state_bytes, m.spill_files
            );
            assert!(
                got == want,
                "{what}: {} rows vs {} of the oracle",
                got.len(),
                want.len()
            );
        }
    }
}
