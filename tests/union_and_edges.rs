//! Union, rebalance and broadcast edges, per-operator parallelism, and
//! projections: pipelined == batch == a hand-computed table, at parallelism 1 and 3.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use std::time::Duration;
use weir::compare::same_rows;
use weir::{col, lit, Agg, ExecConfig, ExecMode, Job, TumblingWindow, WatermarkStrategy};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn batch(rows: &[(i64, i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap()
}

/// left: k=1 at 100 (v 1), 1500 (v 2); k=2 at 200 (v 3)
/// right: k=1 at 900 (v 10); k=2 at 1600 (v 20), 300 (v 30: late, its window
/// [0, 1000) fired once 1600 with 500 delay set the split's watermark to 1099)
fn run(mode: ExecMode, parallelism: usize) -> (Vec<RecordBatch>, SchemaRef, u64) {
    let job = Job::new();
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500));
    let left = job
        .from_batches(
            schema(),
            vec![
                vec![batch(&[(1, 100, 1), (2, 200, 3)])],
                vec![batch(&[(1, 1500, 2)])],
            ],
        )
        .unwrap()
        .assign_timestamps("t", strategy.clone())
        .unwrap();
    let right = job
        .from_batches(
            schema(),
            vec![vec![
                batch(&[(1, 900, 10), (2, 1600, 20)]),
                batch(&[(2, 300, 30)]),
            ]],
        )
        .unwrap()
        .assign_timestamps("t", strategy)
        .unwrap()
        .with_parallelism(1)
        .unwrap();
    let windows = left
        .union(&right)
        .unwrap()
        .rebalance()
        .with_column("v2", col("v").mul(lit(2)))
        .unwrap()
        .with_parallelism(2)
        .unwrap()
        .select(["k", "t", "v2"])
        .unwrap()
        .key_by(["k"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([Agg::sum("v2").alias("total"), Agg::count().alias("n")])
        .unwrap();
    let schema = windows.schema().clone();
    let out = windows.collect().unwrap();
    let m = job
        .run(&ExecConfig::new(mode).with_parallelism(parallelism))
        .unwrap();
    (out.batches(), schema, m.late_rows)
}

#[test]
fn union_rebalance_and_projection_agree_with_the_hand_computed_table() {
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 3] {
            let (got, schema, late) = run(mode, p);
            assert_eq!(late, 1, "{mode} p={p}: (2, 300) is late in its split");
            // (k, window_start, window_end, sum(2v), count)
            let want = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(vec![1, 1, 2, 2])),
                    Arc::new(Int64Array::from(vec![0, 1000, 0, 1000])),
                    Arc::new(Int64Array::from(vec![1000, 2000, 1000, 2000])),
                    Arc::new(Int64Array::from(vec![22, 4, 6, 40])),
                    Arc::new(Int64Array::from(vec![2, 1, 1, 1])),
                ],
            )
            .unwrap();
            same_rows(&got, &[want], &schema, 0.0).unwrap_or_else(|e| panic!("{mode} p={p}: {e}"));
        }
    }
}

#[test]
fn broadcast_delivers_every_row_to_every_subtask() {
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let job = Job::new();
        let out = job
            .from_batches(schema(), vec![vec![batch(&[(1, 1, 5), (2, 2, 7)])]])
            .unwrap()
            .broadcast()
            .filter(col("v").gt(lit(0)))
            .unwrap()
            .with_parallelism(3)
            .unwrap()
            .collect()
            .unwrap();
        job.run(&ExecConfig::new(mode).with_parallelism(1)).unwrap();
        let mut v: Vec<i64> = out
            .batches()
            .iter()
            .flat_map(|b| b.column(2).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        v.sort();
        assert_eq!(v, vec![5, 5, 5, 7, 7, 7], "{mode}");
    }
}
