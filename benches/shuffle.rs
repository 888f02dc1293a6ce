//! Hash shuffle: splitting batches by key group (the routing of a keyed
//! edge), and whole jobs moving 2M rows between two subtasks by forward
//! (fused, no channel), rebalance (channel, no hashing) and hash edges.
//!
//! `cargo bench --bench shuffle`

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use divan::counter::ItemsCount;
use std::sync::{Arc, OnceLock};
use weir::key::{split_by_key, KeyEncoder};
use weir::{col, lit, ExecConfig, ExecMode, Job};

fn main() {
    divan::main();
}

const ROWS_PER_SPLIT: i64 = 1_000_000;

/// Two splits of (k: Int64 over 100K keys, s: Utf8 key, v: Int64).
fn splits() -> &'static (SchemaRef, Vec<Vec<RecordBatch>>) {
    static DATA: OnceLock<(SchemaRef, Vec<Vec<RecordBatch>>)> = OnceLock::new();
    DATA.get_or_init(|| {
        let splits: Vec<Vec<RecordBatch>> = (0..2i64)
            .map(|split| {
                (0..ROWS_PER_SPLIT)
                    .step_by(8192)
                    .map(|start| {
                        let ids: Vec<i64> = (start..(start + 8192).min(ROWS_PER_SPLIT))
                            .map(|i| i * 2 + split)
                            .collect();
                        let keys = ids.iter().map(|i| (i * 7919) % 100_000);
                        RecordBatch::try_from_iter([
                            (
                                "k",
                                Arc::new(Int64Array::from_iter_values(keys.clone())) as _,
                            ),
                            (
                                "s",
                                Arc::new(StringArray::from_iter_values(
                                    keys.map(|k| format!("vehicle-{k}")),
                                )) as _,
                            ),
                            ("v", Arc::new(Int64Array::from(ids)) as _),
                        ])
                        .expect("batch")
                    })
                    .collect()
            })
            .collect();
        (splits[0][0].schema(), splits)
    })
}

/// Splitting one split's batches (1M rows) by key into `targets` parts.
#[divan::bench(args = [2, 8], sample_count = 5)]
fn split_int_key(bencher: divan::Bencher, targets: usize) {
    split(bencher, "k", targets);
}

/// The same with a string key.
#[divan::bench(args = [2, 8], sample_count = 5)]
fn split_string_key(bencher: divan::Bencher, targets: usize) {
    split(bencher, "s", targets);
}

fn split(bencher: divan::Bencher, key: &str, targets: usize) {
    let (schema, data) = splits();
    let keys = KeyEncoder::try_new(schema, &[key.to_string()], "bench").expect("key");
    bencher
        .counter(ItemsCount::new(ROWS_PER_SPLIT as usize))
        .bench_local(|| {
            let mut parts = 0;
            for b in &data[0] {
                parts += split_by_key(b, &keys, targets).expect("split").len();
            }
            divan::black_box(parts)
        });
}

#[derive(Debug, Clone, Copy)]
enum Edge {
    Forward,
    Rebalance,
    HashInt,
    HashString,
}

/// A filter at parallelism 2 behind the given edge, into a sink.
fn job(edge: Edge) -> usize {
    let (schema, data) = splits();
    let job = Job::new();
    let source = job
        .from_batches(schema.clone(), data.clone())
        .expect("source");
    let shuffled = match edge {
        Edge::Forward => source,
        Edge::Rebalance => source.rebalance(),
        Edge::HashInt => source.partition_by(["k"]).expect("k"),
        Edge::HashString => source.partition_by(["s"]).expect("s"),
    };
    let out = shuffled
        .filter(col("v").gt_eq(lit(0i64)))
        .expect("filter")
        .collect()
        .expect("sink");
    job.run(
        &ExecConfig::new(ExecMode::Pipelined)
            .with_parallelism(2)
            .with_memory(1 << 30),
    )
    .expect("run");
    out.num_rows()
}

/// 2M rows through forward, rebalance and hash edges (pipelined, 2 subtasks).
#[divan::bench(
    args = [Edge::Forward, Edge::Rebalance, Edge::HashInt, Edge::HashString],
    sample_count = 5
)]
fn edge(bencher: divan::Bencher, edge: Edge) {
    splits();
    bencher
        .counter(ItemsCount::new(2 * ROWS_PER_SPLIT as usize))
        .bench_local(|| divan::black_box(job(edge)));
}
