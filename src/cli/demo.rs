//! `weir demo`: sample vehicle-speed data and the windowed job in both modes.
//!
//! Generates OBD speed readings in `data/obd/` if absent (3 readings per
//! second per vehicle, equal timestamps, up to 30 s of disorder and a few
//! rows later than that), then runs "1 s tumbling averages per vehicle" in
//! batch mode and pipelined mode and checks that both give the same rows.

use crate::compare::same_rows;
use crate::connectors::Collected;
use crate::error::{Error, Result};
use crate::exec::{ExecConfig, ExecMode, JobMetrics};
use crate::functions::Agg;
use crate::graph::Job;
use crate::time::{TumblingWindow, WatermarkStrategy};
use crate::{col, lit};
use arrow_array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// 2026-11-01T00:00:00Z in epoch milliseconds: where the sample data starts.
pub const DEMO_EPOCH_MS: i64 = 1_793_491_200_000;

/// The maximum disorder of the OBD feed (the seed's watermark delay).
pub const OBD_DELAY: Duration = Duration::from_secs(30);

/// The true speed (km/h) of `vehicle` at second `s` of the sample data:
/// what both the OBD and the phone-app feeds measure, with their own noise.
pub fn true_speed(vehicle: i64, s: i64) -> f64 {
    let base = 30.0 + (crate::key::stable_hash(&vehicle.to_le_bytes()) % 60) as f64;
    let phase = vehicle as f64 * 0.7;
    (base + 25.0 * (s as f64 / 45.0 + phase).sin() + 5.0 * (s as f64 / 7.0).cos()).clamp(0.0, 180.0)
}

/// A small deterministic generator (SplitMix64), so sample data is identical everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
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
    Ok(crate::connectors::ParquetSourceSpec::try_new(&[dir.to_path_buf()])?.num_rows())
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

/// Max minus min of the Int64 / Timestamp column `name` over `batches` (ms).
fn time_span(batches: &[RecordBatch], name: &str) -> i64 {
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for b in batches {
        let Some(c) = b.column_by_name(name) else {
            continue;
        };
        let Ok(c) = arrow_cast::cast(c, &arrow_schema::DataType::Int64) else {
            continue;
        };
        let c = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(&c);
        for v in c.iter().flatten() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    hi.saturating_sub(lo).max(0)
}

/// Options of `weir demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the sample data lives (`data/obd`).
    pub data_dir: PathBuf,
    /// Vehicles to generate (when the data is absent).
    pub vehicles: usize,
    /// Seconds of history to generate.
    pub seconds: usize,
    /// Parallelism of both runs.
    pub parallelism: usize,
    /// Memory budget of both runs.
    pub memory: usize,
}

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Rows in the sample data.
    pub input_rows: u64,
    /// One entry per mode, batch first.
    pub runs: Vec<JobMetrics>,
    /// Rows each mode produced.
    pub output_rows: Vec<usize>,
    /// `Ok` if both modes produced the same rows.
    pub identical: std::result::Result<(), String>,
    /// The seed's join job (OBD vs app speed), batch then pipelined.
    pub join_runs: Vec<JobMetrics>,
    /// Rows the join produced in each mode.
    pub join_rows: Vec<usize>,
    /// `Ok` if both modes of the join produced the same rows.
    pub join_identical: std::result::Result<(), String>,
    /// How far the app's speed is from the OBD's (from the batch run).
    pub deviation: super::seed::Deviation,
    /// The seed's join again, pipelined, both inputs replayed paced by
    /// event time at this factor: history standing in for the live feeds.
    pub live_speed: f64,
    /// That live replay's run.
    pub live_run: JobMetrics,
    /// `Ok` if the live replay produced the batch run's rows.
    pub live_identical: std::result::Result<(), String>,
}

/// Where the demo keeps app readings: `app` beside the OBD directory.
pub fn app_dir(obd: &Path) -> PathBuf {
    obd.with_file_name("app")
}

/// Generates data if needed and runs the job in batch, then pipelined mode.
pub fn run_demo(opts: &DemoOptions) -> Result<DemoReport> {
    let input_rows = ensure_obd_data(&opts.data_dir, opts.vehicles, opts.seconds)?;
    let mut runs = Vec::new();
    let mut results = Vec::new();
    let mut schema = None;
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let (job, out, s) = speed_job(&opts.data_dir)?;
        let config = ExecConfig::new(mode)
            .with_parallelism(opts.parallelism)
            .with_memory(opts.memory);
        runs.push(job.run(&config)?);
        results.push(out.batches());
        schema = Some(s);
    }
    let schema = schema.expect("two runs happened");
    let identical = same_rows(&results[0], &results[1], &schema, 1e-9).map_err(|e| e.to_string());
    // the seed's job: OBD joined with phone-app readings
    let app = app_dir(&opts.data_dir);
    super::seed::ensure_app_data(&app, opts.vehicles, opts.seconds)?;
    let mut join_runs = Vec::new();
    let mut joined = Vec::new();
    let mut join_schema = None;
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let seed = super::seed::seed_job(&opts.data_dir, &app)?;
        let config = ExecConfig::new(mode)
            .with_parallelism(opts.parallelism)
            .with_memory(opts.memory);
        join_runs.push(seed.job.run(&config)?);
        joined.push(seed.out.batches());
        join_schema = Some(seed.schema);
    }
    let join_schema = join_schema.expect("two runs happened");
    let join_identical =
        same_rows(&joined[0], &joined[1], &join_schema, 1e-9).map_err(|e| e.to_string());
    // the same join as a live replay: paced so the history takes about 3 s
    // (the span comes from the data: a reused directory may hold more history)
    let span_ms = time_span(&joined[0], "window_start");
    let live_speed = (span_ms as f64 / 3000.0).max(1.0);
    let seed = super::seed::seed_job_paced(
        &opts.data_dir,
        &app,
        crate::connectors::replay::ReplaySpeed::Times(live_speed),
    )?;
    let config = ExecConfig::pipelined()
        .with_parallelism(opts.parallelism)
        .with_memory(opts.memory);
    let live_run = seed.job.run(&config)?;
    let live_identical =
        same_rows(&joined[0], &seed.out.batches(), &join_schema, 1e-9).map_err(|e| e.to_string());
    let count = |r: &Vec<RecordBatch>| r.iter().map(|b| b.num_rows()).sum();
    let deviation = super::seed::deviation(&joined[0], 5);
    Ok(DemoReport {
        live_speed,
        live_run,
        live_identical,
        deviation,
        join_runs,
        join_rows: joined.iter().map(count).collect(),
        join_identical,
        input_rows,
        runs,
        output_rows: results
            .iter()
            .map(|r| r.iter().map(|b| b.num_rows()).sum())
            .collect(),
        identical,
    })
}
