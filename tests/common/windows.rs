//! The windowed job the broker tests share (per-key 1 s windows of the
//! common schema: sum of value, count, mean speed) and its rows as tuples.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::RecordBatch;
use std::time::Duration;
use weir::{Agg, TumblingWindow, WatermarkStrategy};

/// (key, window_start, sum(value), count, avg(speed) * 1e6 rounded)
pub type WindowRow = (i64, i64, i64, i64, i64);

/// The rows of [`windowed`]'s output, sorted.
pub fn window_rows(batches: &[RecordBatch]) -> Vec<WindowRow> {
    let mut v = Vec::new();
    for b in batches {
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        let (k, s, sum, n, avg) = (
            col("key"),
            col("window_start"),
            col("sum_value"),
            col("n"),
            col("avg_speed"),
        );
        for i in 0..b.num_rows() {
            v.push((
                k.as_primitive::<Int64Type>().value(i),
                s.as_primitive::<Int64Type>().value(i),
                sum.as_primitive::<Int64Type>().value(i),
                n.as_primitive::<Int64Type>().value(i),
                (avg.as_primitive::<Float64Type>().value(i) * 1e6).round() as i64,
            ));
        }
    }
    v.sort_unstable();
    v
}

/// Per-key 1 s windows of `stream` (event time `ts`, 200 ms delay).
pub fn windowed(stream: weir::Stream) -> weir::Collected {
    stream
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(200)),
        )
        .unwrap()
        .key_by(["key"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([
            Agg::sum("value").alias("sum_value"),
            Agg::count().alias("n"),
            Agg::avg("speed").alias("avg_speed"),
        ])
        .unwrap()
        .collect()
        .unwrap()
}
