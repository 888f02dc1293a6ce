//! The seed's job: OBD speed readings joined with phone-app speed readings.
//!
//! The OBD feed has 3 readings a second per vehicle, up to 30 s out of
//! order (watermark delay 30 s); the app has about one reading a second, up
//! to 9 minutes late (watermark delay 9 min). Per vehicle, each side is
//! averaged in 1-second tumbling windows; the two averages are joined on
//! (vehicle, window) and the difference reported. Owns the app-data
//! generator and [`seed_job`]. May use everything below `cli`.

use super::demo::{obd_schema, true_speed, write_parquet_dir, Rng, DEMO_EPOCH_MS, OBD_DELAY};
use crate::col;
use crate::error::Result;
use crate::graph::{Job, Stream};
use crate::operators::join::JoinSpec;
use crate::operators::{Agg, Collected};
use crate::time::{WatermarkStrategy, Window};
use arrow_array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::SchemaRef;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The maximum delay of the app feed (the seed's watermark delay for it).
pub const APP_DELAY: Duration = Duration::from_secs(9 * 60);

/// Generates about one app reading per second per vehicle (90% of seconds),
/// in arrival order: delays mostly under 2 s, 19% up to a minute, 1% up to
/// 9 minutes (never beyond [`APP_DELAY`]). Same schema as the OBD data.
pub fn generate_app(
    vehicles: usize,
    seconds: usize,
    seed: u64,
    batch_rows: usize,
) -> Vec<RecordBatch> {
    let mut rng = Rng::new(seed ^ 0xA99);
    let mut rows: Vec<(i64, i64, i64, f64)> = Vec::with_capacity(vehicles * seconds);
    for s in 0..seconds as i64 {
        for v in 0..vehicles as i64 {
            if rng.below(10) == 0 {
                continue;
            }
            let ts = DEMO_EPOCH_MS + s * 1000 + rng.below(1000) as i64;
            let r = rng.unit();
            let delay = if r < 0.8 {
                rng.below(2_000)
            } else if r < 0.99 {
                rng.below(60_000)
            } else {
                rng.below(APP_DELAY.as_millis() as u64 - 1)
            } as i64;
            let reading = (true_speed(v, s) + (rng.unit() - 0.5) * 4.0).max(0.0);
            rows.push((ts + delay, v, ts, (reading * 100.0).round() / 100.0));
        }
    }
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

/// Makes sure `dir` holds app readings; generates them if absent.
pub fn ensure_app_data(dir: &Path, vehicles: usize, seconds: usize) -> Result<()> {
    let has_data = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        })
        .unwrap_or(false);
    if !has_data {
        let batches = generate_app(vehicles, seconds, 42, 65_536);
        write_parquet_dir(dir, &batches, 4, 131_072)?;
    }
    Ok(())
}

/// Per-vehicle 1-second averages of `speed`, named `alias`.
fn per_second(stream: Stream, alias: &str) -> Result<Stream> {
    stream
        .key_by(["vehicle_id"])?
        .window(Window::tumbling(Duration::from_secs(1)))
        .aggregate([Agg::avg("speed").alias(alias)])
}

/// What [`seed_job`] builds: the job and where its rows go.
#[derive(Debug)]
pub struct SeedJob {
    /// The job (run it with `Job::run`).
    pub job: Job,
    /// `vehicle_id, window_start, window_end, obd_speed, app_speed, speed_diff`.
    pub out: Collected,
    /// Its schema.
    pub schema: SchemaRef,
    /// OBD readings later than the watermark delay (not in any average).
    pub late_obd: Collected,
}

/// The seed's job over OBD readings in `obd` and app readings in `app`.
///
/// # Examples
/// ```no_run
/// use weir::cli::seed::seed_job;
/// use weir::ExecConfig;
/// let seed = seed_job("data/obd".as_ref(), "data/app".as_ref())?;
/// seed.job.run(&ExecConfig::batch())?;
/// println!("{} joined seconds", seed.out.batches().iter().map(|b| b.num_rows()).sum::<usize>());
/// # Ok::<(), weir::Error>(())
/// ```
pub fn seed_job(obd: &Path, app: &Path) -> Result<SeedJob> {
    let job = Job::new();
    let obd_rows = job.parquet(obd)?.assign_timestamps(
        "event_time",
        WatermarkStrategy::bounded_out_of_orderness(OBD_DELAY),
    )?;
    let late_obd = obd_rows.late_rows()?.collect()?;
    let app_rows = job.parquet(app)?.assign_timestamps(
        "event_time",
        WatermarkStrategy::bounded_out_of_orderness(APP_DELAY),
    )?;
    let joined = per_second(obd_rows, "obd_speed")?
        .join(
            &per_second(app_rows, "app_speed")?,
            JoinSpec::same_window().on(["vehicle_id"], ["vehicle_id"]),
        )?
        .with_column("speed_diff", col("obd_speed").sub(col("app_speed")))?
        .select([
            "vehicle_id",
            "window_start",
            "window_end",
            "obd_speed",
            "app_speed",
            "speed_diff",
        ])?;
    let schema = joined.schema().clone();
    let out = joined.collect()?;
    Ok(SeedJob {
        job,
        out,
        schema,
        late_obd,
    })
}
