//! Float sums and averages are the same bits in every mode, at every
//! parallelism and in every run, and equal the exactly rounded sum: rows
//! arrive in a different order and grouping each time (splits interleave,
//! panes and partial states merge), and plain `f64` addition would give
//! different last bits for the same window.
//!
//! Oracle: the values are multiples of 2^-6 with up to 53 significant bits,
//! summed exactly as integers and rounded once.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir::{Agg, ExecConfig, ExecMode, Job, WatermarkStrategy, Window};

/// (key, window start) → (sum, average).
type Windows = BTreeMap<(i64, i64), (f64, f64)>;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
    ]))
}

/// Rows as (key, ts, n) with value n / 64: big and small magnitudes mixed,
/// in a scrambled order (ts disorder below the 2 s watermark delay).
fn rows() -> Vec<(i64, i64, i64)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..6_000)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = (x % 7) as i64;
            let ts = (i as i64 * 3) + (x >> 20) as i64 % 1_500;
            let n = match x % 4 {
                // up to 2^53 (exact as f64): 47 integer bits and 6 fractional
                0 => (x >> 11) as i64,
                1 => -((x >> 12) as i64),
                _ => (x >> 40) as i64 % 997, // small fractions
            };
            (key, ts, n)
        })
        .collect()
}

/// The exactly rounded sum and average per key and 1 s window.
fn oracle() -> Windows {
    let mut sums: BTreeMap<(i64, i64), (i128, i64)> = BTreeMap::new();
    for (key, ts, n) in rows() {
        let s = sums.entry((key, ts - ts.rem_euclid(1000))).or_default();
        s.0 += i128::from(n);
        s.1 += 1;
    }
    sums.into_iter()
        .map(|(k, (sum, count))| {
            let sum = sum as f64 / 64.0; // one rounding, then an exact scaling
            (k, (sum, sum / count as f64))
        })
        .collect()
}

fn run(mode: ExecMode, parallelism: usize, memory: usize) -> (Windows, u64) {
    let all = rows();
    // three splits, each taking every third row
    let splits: Vec<Vec<RecordBatch>> = (0..3)
        .map(|s| {
            let mine: Vec<&(i64, i64, i64)> = all.iter().skip(s).step_by(3).collect();
            mine.chunks(97)
                .map(|c| {
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.0))),
                            Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.1))),
                            Arc::new(Float64Array::from_iter_values(
                                c.iter().map(|r| r.2 as f64 / 64.0),
                            )),
                        ],
                    )
                    .expect("batch")
                })
                .collect()
        })
        .collect();
    let job = Job::new();
    let out = job
        .from_batches(schema(), splits)
        .expect("source")
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2)),
        )
        .expect("event time")
        .key_by(["key"])
        .expect("key")
        .window(Window::tumbling(Duration::from_secs(1)))
        .aggregate([Agg::sum("v").alias("s"), Agg::avg("v").alias("a")])
        .expect("window")
        .collect()
        .expect("sink");
    let metrics = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(parallelism)
                .with_memory(memory),
        )
        .expect("run");
    let mut got = BTreeMap::new();
    for b in out.batches() {
        let col = |n: &str| b.column(b.schema().index_of(n).expect("column")).clone();
        let (key, start) = (col("key"), col("window_start"));
        let (s, a) = (col("s"), col("a"));
        for r in 0..b.num_rows() {
            let start = start
                .as_primitive_opt::<Int64Type>()
                .map(|c| c.value(r))
                .unwrap_or_else(|| {
                    start
                        .as_primitive::<arrow_array::types::TimestampMillisecondType>()
                        .value(r)
                });
            got.insert(
                (key.as_primitive::<Int64Type>().value(r), start),
                (
                    s.as_primitive::<Float64Type>().value(r),
                    a.as_primitive::<Float64Type>().value(r),
                ),
            );
        }
    }
    (got, metrics.spilled_bytes)
}

fn bits(m: &Windows) -> Vec<((i64, i64), u64, u64)> {
    m.iter()
        .map(|(k, (s, a))| (*k, s.to_bits(), a.to_bits()))
        .collect()
}

#[test]
fn the_data_is_order_sensitive_for_plain_f64_addition() {
    // guards the test below: without exact sums it would see different bits
    let mut groups: BTreeMap<(i64, i64), Vec<f64>> = BTreeMap::new();
    for (key, ts, n) in rows() {
        groups
            .entry((key, ts - ts.rem_euclid(1000)))
            .or_default()
            .push(n as f64 / 64.0);
    }
    let differ = groups
        .values()
        .filter(|v| {
            let fwd: f64 = v.iter().sum();
            let back: f64 = v.iter().rev().sum();
            fwd.to_bits() != back.to_bits()
        })
        .count();
    assert!(differ > groups.len() / 4, "{differ} of {}", groups.len());
}

#[test]
fn sums_and_averages_are_the_exactly_rounded_bits_in_every_mode() {
    let want = bits(&oracle());
    let mut spilled = 0;
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for parallelism in [1, 3] {
            // a large budget, and one small enough that partial states spill
            for memory in [64 << 20, 256 << 10] {
                let (got, spill) = run(mode, parallelism, memory);
                let got = bits(&got);
                let case = format!("{mode:?} p{parallelism} {memory} B");
                assert_eq!(got.len(), want.len(), "{case}");
                assert!(got == want, "{case}: bits differ from the oracle");
                spilled += spill;
            }
        }
    }
    assert!(
        spilled > 0,
        "no run spilled: partial states were not exercised"
    );
}
