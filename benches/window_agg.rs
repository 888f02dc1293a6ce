//! Windowed aggregation in both modes beside a bare arrow-rs scan of the same
//! Parquet files (1 s tumbling windows per vehicle).
//!
//! `cargo bench --bench window_agg` (rows: `WEIR_BENCH_ROWS`, default 1M;
//! the 10M-row figures come from `weir bench`, see the README).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use weir::{Agg, ExecConfig, ExecMode, Job, TumblingWindow, WatermarkStrategy};

fn main() {
    divan::main();
}

fn data() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = DIR.get_or_init(|| {
        let rows: usize = std::env::var("WEIR_BENCH_ROWS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(1_000_000);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("obd");
        let seconds = (rows / 3000).max(1);
        let batches = weir::workloads::vehicles::generate_obd(1000, seconds, 42, 65_536);
        weir::workloads::vehicles::write_parquet_dir(&path, &batches, 4, 131_072)
            .expect("write bench data");
        (dir, path)
    });
    p
}

#[divan::bench(sample_count = 5)]
fn bare_scan() -> u64 {
    weir::bench::bare_scan(&[data().to_path_buf()]).expect("scan")
}

fn window_job(mode: ExecMode) -> u64 {
    let job = Job::new();
    let out = job
        .parquet(data())
        .expect("source")
        .assign_timestamps(
            "event_time",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(30)),
        )
        .expect("timestamps")
        .key_by(["vehicle_id"])
        .expect("key")
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([Agg::avg("speed"), Agg::count()])
        .expect("window")
        .collect()
        .expect("sink");
    let m = job.run(&ExecConfig::new(mode)).expect("run");
    divan::black_box(out.num_rows());
    m.rows_in
}

#[divan::bench(sample_count = 5)]
fn window_batch() -> u64 {
    window_job(ExecMode::Batch)
}

#[divan::bench(sample_count = 5)]
fn window_pipelined() -> u64 {
    window_job(ExecMode::Pipelined)
}
