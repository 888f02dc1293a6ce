//! A regular inner join of 1M × 1M rows on 200K keys: batch mode's
//! sort-merge join against pipelined mode's symmetric hash join, unlimited
//! and under a 64 MiB budget (both spill).
//!
//! `cargo bench --bench joins`

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir::operators::join::JoinSpec;
use weir::{ExecConfig, ExecMode, Job};

fn main() {
    divan::main();
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn side(salt: i64) -> Vec<Vec<RecordBatch>> {
    (0..2)
        .map(|split| {
            (0..500_000i64)
                .step_by(8192)
                .map(|start| {
                    let ids: Vec<i64> = (start..(start + 8192).min(500_000))
                        .map(|i| i * 2 + split)
                        .collect();
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| (i * salt) % 200_000),
                            )),
                            Arc::new(Int64Array::from(ids)),
                        ],
                    )
                    .expect("batch")
                })
                .collect()
        })
        .collect()
}

fn join(mode: ExecMode, memory: usize) -> usize {
    let job = Job::new();
    let l = job.from_batches(schema(), side(7)).expect("left");
    let r = job.from_batches(schema(), side(13)).expect("right");
    let out = l
        .join(&r, JoinSpec::regular().on(["k"], ["k"]))
        .expect("join")
        .collect()
        .expect("sink");
    job.run(&ExecConfig::new(mode).with_memory(memory))
        .expect("run");
    out.num_rows()
}

#[divan::bench(sample_count = 3, args = [usize::MAX, 64 << 20])]
fn sort_merge_batch(memory: usize) -> usize {
    join(ExecMode::Batch, memory)
}

#[divan::bench(sample_count = 3, args = [usize::MAX, 64 << 20])]
fn symmetric_hash_pipelined(memory: usize) -> usize {
    join(ExecMode::Pipelined, memory)
}
