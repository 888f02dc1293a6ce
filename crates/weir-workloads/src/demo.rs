//! `weir demo`'s work: sample vehicle-speed data, the windowed job in both
//! modes, the seed's join in both modes and as a paced live replay, and
//! whether every pair gave the same rows.
//!
//! Generates OBD speed readings in `data/obd/` if absent (see
//! [`super::vehicles`]), then runs "1 s tumbling averages per vehicle" in
//! batch mode and pipelined mode. May use every layer below `workloads`.

use super::vehicles::seed;
use super::vehicles::{ensure_obd_data, speed_job};
use arrow_array::RecordBatch;
use std::path::{Path, PathBuf};
use weir_core::compare::same_rows;
use weir_core::error::Result;
use weir_engine::exec::{ExecConfig, ExecMode, JobMetrics};

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
    pub deviation: seed::Deviation,
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
    seed::ensure_app_data(&app, opts.vehicles, opts.seconds)?;
    let mut join_runs = Vec::new();
    let mut joined = Vec::new();
    let mut join_schema = None;
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let seed = seed::seed_job(&opts.data_dir, &app)?;
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
    let seed = seed::seed_job_paced(
        &opts.data_dir,
        &app,
        weir_connectors::replay::ReplaySpeed::Times(live_speed),
    )?;
    let config = ExecConfig::pipelined()
        .with_parallelism(opts.parallelism)
        .with_memory(opts.memory);
    let live_run = seed.job.run(&config)?;
    let live_identical =
        same_rows(&joined[0], &seed.out.batches(), &join_schema, 1e-9).map_err(|e| e.to_string());
    let count = |r: &Vec<RecordBatch>| r.iter().map(|b| b.num_rows()).sum();
    let deviation = seed::deviation(&joined[0], 5);
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
