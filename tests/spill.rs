//! Batch mode under a tiny memory budget: shuffled data far beyond the
//! budget spills to disk and gives the same result as an unlimited run; the
//! pool ends at zero and the spill directory is left empty.

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use std::time::Duration;
use weir::compare::same_rows;
use weir::spill::SpillCompression;
use weir::{Agg, ExecConfig, Job, JobMetrics, TumblingWindow, WatermarkStrategy};

const MIB: usize = 1024 * 1024;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("value", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, false),
    ]))
}

/// 8 splits of 75 batches of 1000 rows: 600k rows, ~55 MiB in Arrow memory.
fn input() -> Vec<Vec<RecordBatch>> {
    let payload: String = "x".repeat(80);
    (0..8)
        .map(|split| {
            (0..75)
                .map(|b| {
                    let base = (split * 75 + b) as i64 * 1000;
                    let ids: Vec<i64> = (base..base + 1000).collect();
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i % 97))),
                            // 8 s of event time in every split, in order
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| (i - split as i64 * 75_000) / 10),
                            )),
                            Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i % 1000))),
                            Arc::new(StringArray::from_iter_values(
                                ids.iter().map(|_| payload.as_str()),
                            )),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect()
}

fn run(
    splits: Vec<Vec<RecordBatch>>,
    config: ExecConfig,
) -> (Vec<RecordBatch>, SchemaRef, JobMetrics) {
    let job = Job::new();
    let windows = job
        .from_batches(schema(), splits)
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1)),
        )
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([
            Agg::count().alias("n"),
            Agg::sum("value"),
            Agg::max("value"),
        ])
        .unwrap();
    let schema = windows.schema().clone();
    let out = windows.collect().unwrap();
    let metrics = job.run(&config).unwrap();
    (out.batches(), schema, metrics)
}

#[test]
fn one_mib_budget_spills_and_matches_the_unlimited_run() {
    let splits = input();
    let bytes: usize = splits
        .iter()
        .flatten()
        .map(|b| b.get_array_memory_size())
        .sum();
    assert!(
        bytes >= 50 * MIB,
        "input must be at least 50 MiB, is {bytes}"
    );
    let spill_dir = tempfile::tempdir().unwrap();

    let (unlimited, schema, m0) = run(
        splits.clone(),
        ExecConfig::batch()
            .with_parallelism(4)
            .with_memory(usize::MAX),
    );
    assert_eq!(m0.spill_files, 0, "nothing spills without a budget");

    let tight = ExecConfig::batch()
        .with_parallelism(4)
        .with_memory(MIB)
        .with_spill_compression(SpillCompression::None)
        .with_spill_dir(spill_dir.path());
    let (spilled, _, m1) = run(splits.clone(), tight.clone());

    // compressed spill files: the same rows, a fraction of the bytes
    for compression in [SpillCompression::Lz4, SpillCompression::Zstd] {
        let config = tight.clone().with_spill_compression(compression);
        let (rows, _, m) = run(splits.clone(), config);
        same_rows(&rows, &unlimited, &schema, 0.0).unwrap();
        assert!(m.spill_files > 0, "{compression}: {m:?}");
        assert!(
            m.spilled_bytes * 2 < m1.spilled_bytes,
            "{compression} spilled {} bytes, uncompressed {}",
            m.spilled_bytes,
            m1.spilled_bytes
        );
        assert_eq!(
            m.memory_reserved_at_end, 0,
            "{compression}: pool back to zero"
        );
        assert_eq!(std::fs::read_dir(spill_dir.path()).unwrap().count(), 0);
    }

    assert!(m1.spill_files > 0, "spill files were written: {m1:?}");
    assert!(
        m1.spilled_bytes as usize >= 40 * MIB,
        "most of the shuffle went to disk: {}",
        m1.spilled_bytes
    );
    assert!(
        m1.peak_memory as usize <= MIB,
        "never reserved beyond the budget: {}",
        m1.peak_memory
    );
    assert_eq!(m1.memory_reserved_at_end, 0, "the pool is back to zero");
    let left: Vec<_> = std::fs::read_dir(spill_dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "spill directory is empty afterwards: {left:?}"
    );

    same_rows(&spilled, &unlimited, &schema, 0.0).unwrap();
    // independent check: every row is counted once (no row is late: each split is in order)
    let total: i64 = spilled
        .iter()
        .map(|b| {
            let n = b.column_by_name("n").unwrap();
            arrow_arith::aggregate::sum(n.as_any().downcast_ref::<Int64Array>().unwrap()).unwrap()
        })
        .sum();
    assert_eq!(total, 600_000);
    assert_eq!(m1.rows_in, 600_000);
    assert_eq!(m1.late_rows, 0);
}

/// Batch stages replay watermarks, so windows fire during the stage: a job
/// whose 400k windows would need ~40 MiB if all were open at once runs in 4 MiB.
#[test]
fn batch_windows_fire_during_the_stage_so_state_stays_bounded() {
    let rows_per_split = 100_000i64;
    let splits: Vec<Vec<RecordBatch>> = (0..4)
        .map(|split| {
            (0..rows_per_split / 5000)
                .map(|b| {
                    let ids: Vec<i64> = (b * 5000..(b + 1) * 5000).collect();
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| (i * 7 + split) % 200),
                            )),
                            // one row per key and second; split k holds seconds [500k, 500k + 500),
                            // like time-ordered files: 400k (key, window) groups in all
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| (split * 500 + i / 200) * 1000),
                            )),
                            Arc::new(Int64Array::from_iter_values(ids.iter().map(|_| 1))),
                            Arc::new(StringArray::from_iter_values(ids.iter().map(|_| ""))),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect();
    let (out, _, m) = run(
        splits,
        ExecConfig::batch().with_parallelism(2).with_memory(4 * MIB),
    );
    assert_eq!(m.rows_in, 400_000);
    assert!(m.peak_memory <= 4 * MIB as u64);
    assert_eq!(m.memory_reserved_at_end, 0);
    let windows: usize = out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(
        windows,
        200 * 2000,
        "every (key, second) window of the 2000 s"
    );
}
