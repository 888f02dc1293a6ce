//! `weir bench`: the same job in several modes, side by side.
//!
//! Each run is a child process (`weir run JOB --mode M --json`), so peak RSS
//! is per run. Mode `scan` is the baseline: a bare arrow-rs read of the job's
//! Parquet input, decoding every column, with no operator at all.

use crate::error::{Error, Result};
use crate::memory::format_bytes;
use crate::operators::list_parquet_files;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The figures of one mode (medians over runs).
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    /// scan, batch or pipelined.
    pub mode: String,
    /// Median wall time in seconds.
    pub seconds: f64,
    /// Input rows per second (median time).
    pub rows_per_sec: f64,
    /// Rows read.
    pub rows_in: u64,
    /// Rows written by the sink.
    pub rows_out: u64,
    /// Highest peak RSS over the runs, in bytes.
    pub peak_rss: u64,
    /// Peak bytes reserved from the memory pool.
    pub peak_memory: u64,
    /// Bytes spilled to disk.
    pub spilled_bytes: u64,
    /// Wall time relative to the scan baseline (if measured).
    pub vs_scan: Option<f64>,
}

/// Reads every row group of every file in `paths` with arrow-rs and counts rows.
pub fn bare_scan(paths: &[PathBuf]) -> Result<u64> {
    let mut files = Vec::new();
    for p in paths {
        // exactly the files a Parquet source over `paths` reads
        list_parquet_files(p, &mut files)?;
    }
    let mut rows = 0u64;
    for f in files {
        let file = std::fs::File::open(&f).map_err(|e| Error::io(&f, e))?;
        let perr = |e: parquet::errors::ParquetError| Error::Parquet {
            path: f.clone(),
            message: e.to_string(),
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(perr)?
            .with_batch_size(8192)
            .build()
            .map_err(perr)?;
        for b in reader {
            rows += b?.num_rows() as u64;
        }
    }
    Ok(rows)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `job` in each of `modes` `runs` times through `exe` (the weir binary).
pub fn bench(
    exe: &Path,
    job: &Path,
    inputs: &[PathBuf],
    modes: &[String],
    runs: usize,
    extra: &[String],
) -> Result<Vec<ModeResult>> {
    let mut results = Vec::new();
    for mode in modes {
        let mut times = Vec::new();
        let mut last: Option<serde_json::Value> = None;
        let mut peak_rss = 0u64;
        for _ in 0..runs.max(1) {
            if mode == "scan" {
                let mut cmd = Command::new(exe);
                cmd.arg("scan").args(inputs);
                let started = Instant::now();
                let out = cmd.output().map_err(|e| Error::io(exe, e))?;
                times.push(started.elapsed().as_secs_f64());
                if !out.status.success() {
                    return Err(Error::Plan(format!(
                        "scan failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )));
                }
                let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                    .map_err(|e| Error::Plan(format!("scan printed no JSON: {e}")))?;
                peak_rss = peak_rss.max(v["peak_rss"].as_u64().unwrap_or(0));
                last = Some(v);
                continue;
            }
            let mut cmd = Command::new(exe);
            cmd.arg("run")
                .arg(job)
                .args(["--mode", mode, "--json"])
                .args(extra);
            let started = Instant::now();
            let out = cmd.output().map_err(|e| Error::io(exe, e))?;
            times.push(started.elapsed().as_secs_f64());
            if !out.status.success() {
                return Err(Error::Plan(format!(
                    "{mode} run failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| Error::Plan(format!("{mode} run printed no JSON metrics: {e}")))?;
            peak_rss = peak_rss.max(v["peak_rss"].as_u64().unwrap_or(0));
            last = Some(v);
        }
        let v = last.expect("at least one run");
        let seconds = median(times);
        let rows_in = v["rows_in"].as_u64().unwrap_or(0);
        results.push(ModeResult {
            mode: mode.clone(),
            seconds,
            rows_per_sec: rows_in as f64 / seconds.max(1e-9),
            rows_in,
            rows_out: v["rows_out"].as_u64().unwrap_or(0),
            peak_rss,
            peak_memory: v["peak_memory"].as_u64().unwrap_or(0),
            spilled_bytes: v["spilled_bytes"].as_u64().unwrap_or(0),
            vs_scan: None,
        });
    }
    if let Some(scan) = results.iter().find(|r| r.mode == "scan").map(|r| r.seconds) {
        for r in &mut results {
            r.vs_scan = Some(r.seconds / scan.max(1e-9));
        }
    }
    Ok(results)
}

/// A side-by-side table of bench results.
pub fn table(results: &[ModeResult]) -> String {
    let mut s = format!(
        "{:<10} {:>10} {:>14} {:>12} {:>10} {:>12} {:>12} {:>10}\n",
        "mode", "time", "rows/s", "rows out", "peak RSS", "pool peak", "spilled", "vs scan"
    );
    for r in results {
        s.push_str(&format!(
            "{:<10} {:>8.2} s {:>14} {:>12} {:>10} {:>12} {:>12} {:>10}\n",
            r.mode,
            r.seconds,
            super::rate(r.rows_per_sec) + "rows/s",
            super::thousands(r.rows_out),
            format_bytes(r.peak_rss),
            format_bytes(r.peak_memory),
            format_bytes(r.spilled_bytes),
            r.vs_scan.map_or("-".into(), |x| format!("{x:.2}x")),
        ));
    }
    s
}
