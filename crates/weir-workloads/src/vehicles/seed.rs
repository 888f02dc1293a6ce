//! The seed's job: OBD speed readings joined with phone-app speed readings.
//!
//! The OBD feed has 3 readings a second per vehicle, up to 30 s out of
//! order (watermark delay 30 s); the app has about one reading a second, up
//! to 9 minutes late (watermark delay 9 min). Per vehicle, each side is
//! averaged in 1-second tumbling windows; the two averages are joined on
//! (vehicle, window) and the difference reported. Owns the app-data
//! generator and [`seed_job`]. May use everything below `workloads`; never `cli`.

use super::{
    has_parquet, readings_in_arrival_order, true_speed, write_parquet_dir, Rng, DEMO_EPOCH_MS,
    OBD_DELAY,
};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::path::Path;
use std::time::Duration;
use weir_connectors::replay::ReplaySpeed;
use weir_connectors::{Collected, ParquetSourceSpec};
use weir_core::error::Result;
use weir_core::expr::col;
use weir_core::time::{WatermarkStrategy, Window};
use weir_engine::graph::{Job, Stream};
use weir_functions::Agg;
use weir_operators::join::JoinSpec;

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
    readings_in_arrival_order(rows, batch_rows)
}

/// Makes sure `dir` holds app readings; generates them if absent.
pub fn ensure_app_data(dir: &Path, vehicles: usize, seconds: usize) -> Result<()> {
    if !has_parquet(dir) {
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
/// use weir::workloads::vehicles::seed::seed_job;
/// use weir::ExecConfig;
/// let seed = seed_job("data/obd".as_ref(), "data/app".as_ref())?;
/// seed.job.run(&ExecConfig::batch())?;
/// println!("{} joined seconds", seed.out.batches().iter().map(|b| b.num_rows()).sum::<usize>());
/// # Ok::<(), weir::Error>(())
/// ```
pub fn seed_job(obd: &Path, app: &Path) -> Result<SeedJob> {
    seed_job_paced(obd, app, ReplaySpeed::Max)
}

/// [`seed_job`] with both inputs replayed at `speed` (paced by event time):
/// history standing in for the live feeds.
pub fn seed_job_paced(obd: &Path, app: &Path, speed: ReplaySpeed) -> Result<SeedJob> {
    let job = Job::new();
    let source = |path: &Path| -> Result<Stream> {
        let spec = ParquetSourceSpec::try_new(&[path.to_path_buf()])?
            .with_replay_speed("event_time", speed)?;
        job.parquet_source(spec)
    };
    let obd_rows = source(obd)?.assign_timestamps(
        "event_time",
        WatermarkStrategy::bounded_out_of_orderness(OBD_DELAY),
    )?;
    let late_obd = obd_rows.late_rows()?.collect()?;
    let app_rows = source(app)?.assign_timestamps(
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

/// How far the app's speed is from the OBD's over the joined seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Deviation {
    /// Joined vehicle-seconds.
    pub seconds: usize,
    /// Mean of `obd_speed - app_speed` (km/h): the app's bias.
    pub mean: f64,
    /// Mean of `|obd_speed - app_speed|`.
    pub mean_abs: f64,
    /// 95th percentile of `|obd_speed - app_speed|` (nearest rank).
    pub p95_abs: f64,
    /// The vehicles whose app speed is most off: (vehicle, mean |diff|), worst first.
    pub worst: Vec<(i64, f64)>,
}

/// Deviation statistics of [`seed_job`]'s output (`vehicle_id`, `speed_diff`),
/// with the `top` worst vehicles.
pub fn deviation(batches: &[RecordBatch], top: usize) -> Deviation {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    let mut diffs: Vec<f64> = Vec::new();
    let mut per_vehicle: std::collections::BTreeMap<i64, (f64, usize)> = Default::default();
    for b in batches {
        let (Some(v), Some(d)) = (
            b.column_by_name("vehicle_id"),
            b.column_by_name("speed_diff"),
        ) else {
            continue;
        };
        let (v, d) = (
            v.as_primitive::<Int64Type>(),
            d.as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            diffs.push(d.value(i));
            let e = per_vehicle.entry(v.value(i)).or_default();
            e.0 += d.value(i).abs();
            e.1 += 1;
        }
    }
    let n = diffs.len();
    let mean = if n == 0 {
        0.0
    } else {
        diffs.iter().sum::<f64>() / n as f64
    };
    let mut abs: Vec<f64> = diffs.iter().map(|d| d.abs()).collect();
    let mean_abs = if n == 0 {
        0.0
    } else {
        abs.iter().sum::<f64>() / n as f64
    };
    abs.sort_by(f64::total_cmp);
    let p95_abs = if n == 0 {
        0.0
    } else {
        abs[((n as f64 * 0.95).ceil() as usize).clamp(1, n) - 1]
    };
    let mut worst: Vec<(i64, f64)> = per_vehicle
        .into_iter()
        .map(|(v, (sum, c))| (v, sum / c as f64))
        .collect();
    worst.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    worst.truncate(top);
    Deviation {
        seconds: n,
        mean,
        mean_abs,
        p95_abs,
        worst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array};
    use std::sync::Arc;

    #[test]
    fn deviation_table() {
        // vehicle 1: diffs 1, -3 (mean |d| 2); vehicle 2: diff 0.5
        let b = RecordBatch::try_from_iter([
            ("vehicle_id", Arc::new(Int64Array::from(vec![1, 1, 2])) as _),
            (
                "speed_diff",
                Arc::new(Float64Array::from(vec![1.0, -3.0, 0.5])) as _,
            ),
        ])
        .unwrap();
        let d = deviation(&[b], 1);
        assert_eq!(d.seconds, 3);
        assert!((d.mean - (-1.5 / 3.0)).abs() < 1e-12);
        assert!((d.mean_abs - 4.5 / 3.0).abs() < 1e-12);
        assert_eq!(d.p95_abs, 3.0);
        assert_eq!(d.worst, vec![(1, 2.0)]);
    }
}
