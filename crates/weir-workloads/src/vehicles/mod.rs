//! The vehicle workload: OBD speed readings (3 readings per second per
//! vehicle, equal timestamps, up to 30 s of disorder and a few rows later
//! than that), written as Parquet, and the per-vehicle 1 s tumbling job over
//! them ([`speed_job`]); [`seed`] adds the phone-app readings and the seed's
//! OBD-vs-app join.
//!
//! May use every layer below `workloads`; never `cli`.

pub mod seed;

pub use crate::rng::Rng;

use arrow_array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weir_connectors::Collected;
use weir_core::error::{Error, Result};
use weir_core::expr::{col, lit};
use weir_core::time::{TumblingWindow, WatermarkStrategy};
use weir_engine::graph::Job;
use weir_functions::Agg;

/// 2026-11-01T00:00:00Z in epoch milliseconds: where the sample data starts.
pub const DEMO_EPOCH_MS: i64 = 1_793_491_200_000;

/// The maximum disorder of the OBD feed (the seed's watermark delay).
pub const OBD_DELAY: Duration = Duration::from_secs(30);

/// The true speed (km/h) of `vehicle` at second `s` of the sample data:
/// what both the OBD and the phone-app feeds measure, with their own noise.
pub fn true_speed(vehicle: i64, s: i64) -> f64 {
    let base = 30.0 + (weir_core::key::stable_hash(&vehicle.to_le_bytes()) % 60) as f64;
    let phase = vehicle as f64 * 0.7;
    (base + 25.0 * (s as f64 / 45.0 + phase).sin() + 5.0 * (s as f64 / 7.0).cos()).clamp(0.0, 180.0)
}

/// The schema of OBD readings.
pub fn obd_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("vehicle_id", DataType::Int64, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("speed", DataType::Float64, false),
    ]))
}

/// Generates `vehicles × seconds × 3` OBD readings in arrival order (event
/// time plus a random delay: mostly under 1 s, 10% up to 30 s, 0.1% up to 90 s,
/// which arrive too late), as batches of at most `batch_rows`.
pub fn generate_obd(
    vehicles: usize,
    seconds: usize,
    seed: u64,
    batch_rows: usize,
) -> Vec<RecordBatch> {
    let mut rng = Rng::new(seed);
    let n = vehicles * seconds * 3;
    let mut rows: Vec<(i64, i64, i64, f64)> = Vec::with_capacity(n); // (arrival, vehicle, ts, speed)
    for s in 0..seconds as i64 {
        for v in 0..vehicles {
            let speed = &true_speed(v as i64, s);
            let base = DEMO_EPOCH_MS + s * 1000;
            let offsets = if rng.below(3) == 0 {
                [0, 0, 500]
            } else {
                [0, 333, 666]
            };
            for off in offsets {
                let ts = base + off;
                let r = rng.unit();
                let delay = if r < 0.899 {
                    rng.below(1000) as i64
                } else if r < 0.999 {
                    rng.below(30_000) as i64
                } else {
                    30_000 + rng.below(60_000) as i64
                };
                let reading = (*speed + (rng.unit() - 0.5) * 2.0).max(0.0);
                rows.push((ts + delay, v as i64, ts, (reading * 100.0).round() / 100.0));
            }
        }
    }
    readings_in_arrival_order(rows, batch_rows)
}

/// Speed readings `(arrival, vehicle, event time, speed)` sorted by arrival
/// (then vehicle), as batches of at most `batch_rows` in the OBD schema.
pub(crate) fn readings_in_arrival_order(
    mut rows: Vec<(i64, i64, i64, f64)>,
    batch_rows: usize,
) -> Vec<RecordBatch> {
    rows.sort_by_key(|r| (r.0, r.1));
    rows.chunks(batch_rows.max(1))
        .map(|chunk| {
            RecordBatch::try_new(
                obd_schema(),
                vec![
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.1))),
                    Arc::new(
                        TimestampMillisecondArray::from_iter_values(chunk.iter().map(|r| r.2))
                            .with_timezone("UTC"),
                    ),
                    Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r.3))),
                ],
            )
            .expect("columns match obd_schema")
        })
        .collect()
}

/// True if `dir` holds at least one `.parquet` file.
pub(crate) fn has_parquet(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        })
        .unwrap_or(false)
}

/// Writes `batches` as `files` Parquet files in `dir` with row groups of `row_group_rows`.
/// Files are written to a temporary name and renamed, so a killed run leaves no half file.
pub fn write_parquet_dir(
    dir: &Path,
    batches: &[RecordBatch],
    files: usize,
    row_group_rows: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(obd_schema);
    let per_file = batches.len().div_ceil(files.max(1)).max(1);
    for (i, chunk) in batches.chunks(per_file).enumerate() {
        let path = dir.join(format!("part-{i:05}.parquet"));
        let tmp = dir.join(format!(".part-{i:05}.parquet.tmp"));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(row_group_rows))
            .build();
        let perr = |e: parquet::errors::ParquetError| Error::Parquet {
            path: tmp.clone(),
            message: e.to_string(),
        };
        let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(perr)?;
        for b in chunk {
            w.write(b).map_err(perr)?;
        }
        w.close().map_err(perr)?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Makes sure `dir` holds the demo's OBD data; generates it if absent.
/// Returns the number of rows.
pub fn ensure_obd_data(dir: &Path, vehicles: usize, seconds: usize) -> Result<u64> {
    if !has_parquet(dir) {
        let batches = generate_obd(vehicles, seconds, 42, 65_536);
        write_parquet_dir(dir, &batches, 4, 131_072)?;
    }
    Ok(weir_connectors::ParquetSourceSpec::try_new(&[dir.to_path_buf()])?.num_rows())
}

/// The demo's job: per vehicle, 1 s tumbling windows over OBD speed.
pub fn speed_job(data: &Path) -> Result<(Job, Collected, SchemaRef)> {
    let job = Job::new();
    let windows = job
        .parquet(data)?
        .assign_timestamps(
            "event_time",
            WatermarkStrategy::bounded_out_of_orderness(OBD_DELAY),
        )?
        .filter(col("speed").gt_eq(lit(0.0)))?
        .key_by(["vehicle_id"])?
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([
            Agg::avg("speed").alias("avg_speed"),
            Agg::min("speed").alias("min_speed"),
            Agg::max("speed").alias("max_speed"),
            Agg::count().alias("readings"),
        ])?;
    let schema = windows.schema().clone();
    let out = windows.collect()?;
    Ok((job, out, schema))
}
