//! `weir bench`: the same job in several modes, side by side.
//!
//! Each run is a child process (`weir run JOB --mode M --json`, or `weir
//! nexmark Q --data D --modes M --json` for a Nexmark query), so peak RSS is
//! per run. Mode `scan` is the baseline: a bare arrow-rs read of the job's
//! Parquet input, decoding every column, with no operator at all.
//!
//! ```text
//!   input ready (a job's Parquet, or Nexmark events written once)
//!     ├─ scan       × runs ─┐
//!     ├─ batch      × runs ─┼─ median time, max RSS, last run's metrics
//!     └─ pipelined  × runs ─┘   (+ latency, + checkpoints if asked)
//!   each mode's output copy ── compared with the first engine mode's
//! ```
//!
//! May use every layer of the library (`workloads`, `graph`, `exec`,
//! `format`, ...); never `cli`: `main.rs` calls it.

mod output;
mod plot;

pub use output::{compare_outputs, read_output, Comparison};
pub use plot::plot_svg;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use weir_connectors::list_parquet_files;
use weir_core::error::{Error, Result};
use weir_core::memory::format_bytes;

/// The figures of one mode (medians over runs).
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    /// scan, batch or pipelined.
    pub mode: String,
    /// Parallelism of the run (1 for `scan`, which reads on one thread).
    pub parallelism: usize,
    /// Median wall time in seconds.
    pub seconds: f64,
    /// Input rows per second (median time).
    pub rows_per_sec: f64,
    /// Input rows per second per core (`rows_per_sec / parallelism`).
    pub rows_per_sec_per_core: f64,
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
    /// Output rows per second (median time).
    pub rows_out_per_sec: f64,
    /// Pipelined: median source-to-sink latency-marker transit (ms).
    pub latency_p50_ms: Option<f64>,
    /// Pipelined: 99th percentile of the same (ms).
    pub latency_p99_ms: Option<f64>,
    /// Pipelined runs with `--checkpoint-interval`: what checkpointing did.
    pub checkpoints: Option<BenchCheckpoints>,
    /// Wall time relative to the scan baseline (if measured).
    pub vs_scan: Option<f64>,
    /// Whether this mode's output holds the same rows as the first engine
    /// mode's (`None` for that mode, for `scan`, and for changelog outputs
    /// with an `op` column, whose rows legitimately differ between modes).
    pub identical: Option<bool>,
    /// Why the outputs differ, when they do.
    pub difference: Option<String>,
}

/// Checkpoint figures of one mode (from the run with the median time).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchCheckpoints {
    /// Checkpoints completed, including the final one.
    pub completed: u64,
    /// Median trigger-to-manifest time, ms.
    pub median_duration_ms: f64,
    /// Longest trigger-to-manifest time, ms.
    pub max_duration_ms: f64,
    /// The largest checkpoint's state bytes.
    pub max_bytes: u64,
}

/// What `weir bench` runs.
#[derive(Debug, Clone)]
pub enum BenchTarget {
    /// A job file, its Parquet inputs (for `scan`) and its sink's path.
    Job {
        /// The job file.
        path: PathBuf,
        /// Its Parquet inputs.
        inputs: Vec<PathBuf>,
        /// Its sink's path (the output copies get the same kind).
        sink_path: Option<PathBuf>,
    },
    /// A SQL script (`weir sql`), and the Parquet files it reads (for `scan`).
    Sql {
        /// The script.
        path: PathBuf,
        /// Its Parquet inputs.
        inputs: Vec<PathBuf>,
    },
    /// A built-in Nexmark query replayed from Parquet events under `data`.
    Nexmark {
        /// q0 to q8.
        query: String,
        /// Events in `data`.
        events: u64,
        /// A directory written by [`weir_workloads::nexmark::ensure_parquet`].
        data: PathBuf,
    },
}

impl BenchTarget {
    fn inputs(&self) -> Vec<PathBuf> {
        match self {
            BenchTarget::Job { inputs, .. } | BenchTarget::Sql { inputs, .. } => inputs.clone(),
            BenchTarget::Nexmark { data, .. } => ["person", "auction", "bid"]
                .iter()
                .map(|k| data.join(k))
                .collect(),
        }
    }

    /// The child command of one engine run writing to `output`.
    fn command(&self, exe: &Path, mode: &str, output: &Path) -> Command {
        let mut cmd = Command::new(exe);
        match self {
            BenchTarget::Job { path, .. } => {
                cmd.arg("run").arg(path).args(["--mode", mode]);
            }
            BenchTarget::Sql { path, .. } => {
                cmd.arg("sql").arg(path).args(["--mode", mode]);
            }
            BenchTarget::Nexmark {
                query,
                events,
                data,
            } => {
                cmd.args(["nexmark", query, "--modes", mode, "--data"])
                    .arg(data)
                    .args(["--events", &events.to_string()]);
            }
        }
        cmd.args(["--json", "--output"]).arg(output);
        cmd
    }
}

/// How `weir bench` runs each mode.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// scan, batch, pipelined, in the order to run and report.
    pub modes: Vec<String>,
    /// Runs per mode (the median time is reported).
    pub runs: usize,
    /// Parallelism of every engine run.
    pub parallelism: usize,
    /// Memory budget, as given (e.g. `512MiB`).
    pub memory: String,
    /// Checkpoint pipelined runs at this interval (e.g. `1s`).
    pub checkpoint_interval: Option<String>,
    /// Replay speed of the pipelined runs' sources (`--speed` of `weir run`
    /// and `weir nexmark`), for latency under a paced load; `None`: max.
    pub speed: Option<String>,
    /// Watch the first run of each engine mode over HTTP at this address
    /// (`weir run --http`; job files only).
    pub http: Option<String>,
    /// Write the first run of each engine mode, side by side, to this
    /// HTML report (job files only).
    pub report: Option<PathBuf>,
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

/// Runs a child and parses the JSON it printed.
fn run_child(exe: &Path, mut cmd: Command, what: &str) -> Result<(f64, serde_json::Value)> {
    let started = Instant::now();
    let out = cmd.output().map_err(|e| Error::io(exe, e))?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(Error::Plan(format!(
            "{what} run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let v = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Plan(format!("{what} run printed no JSON metrics: {e}")))?;
    Ok((seconds, v))
}

/// Runs `target` in each of `options.modes`, `options.runs` times, through
/// `exe` (the weir binary), and compares the modes' outputs.
pub fn bench(exe: &Path, target: &BenchTarget, options: &BenchOptions) -> Result<Vec<ModeResult>> {
    let scratch = tempfile::Builder::new()
        .prefix("weir-bench-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    // each mode writes its own copy of the output: the job sink's kind, but a
    // directory of part files for Nexmark and for checkpointed runs
    let output_of = |mode: &str| {
        let ext = match target {
            BenchTarget::Job { sink_path, .. } if options.checkpoint_interval.is_none() => {
                sink_path
                    .as_deref()
                    .and_then(|p| p.extension())
                    .map(|e| format!(".{}", e.to_string_lossy()))
                    .unwrap_or_default()
            }
            _ => String::new(),
        };
        scratch.path().join(format!("{mode}{ext}"))
    };
    if (options.http.is_some() || options.report.is_some())
        && matches!(target, BenchTarget::Nexmark { .. })
    {
        return Err(Error::option(
            "--http",
            "--http and --report watch job files; a built-in Nexmark query has no job file \
             (run `weir nexmark` for its figures)",
        ));
    }
    let mut report_data = Vec::new();
    let mut results = Vec::new();
    for mode in &options.modes {
        // (seconds, metrics) per run
        let mut runs: Vec<(f64, serde_json::Value)> = Vec::new();
        for run in 0..options.runs.max(1) {
            if mode == "scan" {
                let mut cmd = Command::new(exe);
                cmd.arg("scan").args(target.inputs());
                runs.push(run_child(exe, cmd, "scan")?);
                continue;
            }
            let mut cmd = target.command(exe, mode, &output_of(mode));
            cmd.args(["--memory", &options.memory])
                .args(["--parallelism", &options.parallelism.to_string()]);
            if let (Some(speed), "pipelined") = (&options.speed, mode.as_str()) {
                cmd.args(["--speed", speed]);
            }
            if let (Some(interval), "pipelined") = (&options.checkpoint_interval, mode.as_str()) {
                cmd.arg("--checkpoint-dir")
                    .arg(scratch.path().join(format!("checkpoints-{run}")))
                    .args(["--checkpoint-interval", interval]);
                if matches!(target, BenchTarget::Job { .. }) {
                    // every run starts from scratch, never from an earlier run's checkpoint
                    cmd.args(["--restore", "fresh"]);
                }
            }
            if run == 0 {
                if let Some(http) = &options.http {
                    cmd.arg(format!("--http={http}"));
                }
                if options.report.is_some() {
                    let data = scratch.path().join(format!("report-{mode}.json"));
                    cmd.arg("--report-data").arg(&data);
                    report_data.push(data);
                }
            }
            runs.push(run_child(exe, cmd, mode)?);
        }
        let peak_rss = runs
            .iter()
            .map(|(_, v)| v["peak_rss"].as_u64().unwrap_or(0))
            .max()
            .unwrap_or(0);
        let seconds = median(runs.iter().map(|(s, _)| *s).collect());
        // the other figures come from the run with the median time
        let v = &runs
            .iter()
            .find(|(s, _)| *s == seconds)
            .expect("the median is one of the runs")
            .1;
        let rows_in = v["rows_in"].as_u64().unwrap_or(0);
        let rows_out = v["rows_out"].as_u64().unwrap_or(0);
        let parallelism = if mode == "scan" {
            1
        } else {
            options.parallelism
        };
        let rows_per_sec = rows_in as f64 / seconds.max(1e-9);
        let c = &v["checkpoints"];
        results.push(ModeResult {
            mode: mode.clone(),
            parallelism,
            seconds,
            rows_per_sec,
            rows_per_sec_per_core: rows_per_sec / parallelism as f64,
            rows_in,
            rows_out,
            rows_out_per_sec: rows_out as f64 / seconds.max(1e-9),
            latency_p50_ms: v["latency"]["p50_ms"].as_f64(),
            latency_p99_ms: v["latency"]["p99_ms"].as_f64(),
            checkpoints: c.is_object().then(|| BenchCheckpoints {
                completed: c["completed"].as_u64().unwrap_or(0),
                median_duration_ms: c["median_duration_ms"].as_f64().unwrap_or(0.0),
                max_duration_ms: c["max_duration_ms"].as_f64().unwrap_or(0.0),
                max_bytes: c["max_bytes"].as_u64().unwrap_or(0),
            }),
            peak_rss,
            peak_memory: v["peak_memory"].as_u64().unwrap_or(0),
            spilled_bytes: v["spilled_bytes"].as_u64().unwrap_or(0),
            vs_scan: None,
            identical: None,
            difference: None,
        });
    }
    let engine: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].mode != "scan")
        .collect();
    if let Some((&first, rest)) = engine.split_first() {
        let reference = read_output(&output_of(&results[first].mode))?;
        for &i in rest {
            let got = read_output(&output_of(&results[i].mode))?;
            match compare_outputs(&reference, &got) {
                Comparison::Same => results[i].identical = Some(true),
                Comparison::Changelog => {}
                Comparison::Differ(why) => {
                    results[i].identical = Some(false);
                    results[i].difference = Some(why);
                }
            }
        }
    }
    if let Some(scan) = results.iter().find(|r| r.mode == "scan").map(|r| r.seconds) {
        for r in &mut results {
            r.vs_scan = Some(r.seconds / scan.max(1e-9));
        }
    }
    if let Some(path) = &options.report {
        let mut runs = Vec::new();
        for data in &report_data {
            let text = std::fs::read_to_string(data).map_err(|e| Error::io(data, e))?;
            let run: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::Plan(format!("{}: {e}", data.display())))?;
            runs.push(run);
        }
        weir_monitor::report::write_html(path, &weir_monitor::report::html_of(runs))?;
        eprintln!("weir: report written to {}", path.display());
    }
    Ok(results)
}

/// A side-by-side table of bench results.
pub fn table(results: &[ModeResult]) -> String {
    let mut s = format!(
        "{:<10} {:>10} {:>14} {:>14} {:>12} {:>14} {:>10} {:>12} {:>12} {:>16} {:>13}\n",
        "mode",
        "time",
        "rows/s in",
        "per core",
        "rows out",
        "rows/s out",
        "peak RSS",
        "pool peak",
        "spilled",
        "latency p50/p99",
        "time vs scan"
    );
    for r in results {
        let latency = match (r.latency_p50_ms, r.latency_p99_ms) {
            (Some(a), Some(b)) => format!("{a:.1}/{b:.1} ms"),
            _ => "-".into(),
        };
        s.push_str(&format!(
            "{:<10} {:>8.2} s {:>14} {:>14} {:>12} {:>14} {:>10} {:>12} {:>12} {:>16} {:>13}\n",
            r.mode,
            r.seconds,
            weir_engine::format::rate(r.rows_per_sec) + "rows/s",
            weir_engine::format::rate(r.rows_per_sec_per_core) + "rows/s",
            weir_engine::format::thousands(r.rows_out),
            weir_engine::format::rate(r.rows_out_per_sec) + "rows/s",
            format_bytes(r.peak_rss),
            format_bytes(r.peak_memory),
            format_bytes(r.spilled_bytes),
            latency,
            r.vs_scan
                .filter(|_| r.mode != "scan")
                .map_or("-".into(), |x| {
                    plot::vs_scan_words(x).replace(" than scan", "")
                }),
        ));
    }
    for r in results {
        if let Some(c) = &r.checkpoints {
            s.push_str(&format!(
                "{}: {}\n",
                r.mode,
                weir_engine::format::checkpoint_figures(
                    c.completed,
                    c.median_duration_ms,
                    c.max_duration_ms,
                    c.max_bytes
                )
            ));
        }
    }
    let differ: Vec<String> = results
        .iter()
        .filter(|r| r.identical == Some(false))
        .map(|r| format!("{}: {}", r.mode, r.difference.as_deref().unwrap_or("?")))
        .collect();
    let checked = results.iter().any(|r| r.identical.is_some());
    s.push_str(&if !differ.is_empty() {
        format!(
            "\nresults identical in all modes: NO ({})\n",
            differ.join("; ")
        )
    } else if checked {
        "\nresults identical in all modes: yes\n".to_string()
    } else {
        "\nresults identical in all modes: not checked (one mode, or a changelog output)\n"
            .to_string()
    });
    s
}
