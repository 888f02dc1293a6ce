//! `weir bench`: the same job in several modes, side by side.
//!
//! Each run is a child process (`weir run JOB --mode M --json`), so peak RSS
//! is per run. Mode `scan` is the baseline: a bare arrow-rs read of the job's
//! Parquet input, decoding every column, with no operator at all.

use crate::error::{Error, Result};
use crate::memory::format_bytes;
use crate::operators::list_parquet_files;
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
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
    /// Output rows per second (median time).
    pub rows_out_per_sec: f64,
    /// Pipelined: median source-to-sink latency-marker transit (ms).
    pub latency_p50_ms: Option<f64>,
    /// Pipelined: 99th percentile of the same (ms).
    pub latency_p99_ms: Option<f64>,
    /// Wall time relative to the scan baseline (if measured).
    pub vs_scan: Option<f64>,
    /// Whether this mode's output holds the same rows as the first engine
    /// mode's (`None` for that mode, for `scan`, and for changelog outputs
    /// with an `op` column, whose rows legitimately differ between modes).
    pub identical: Option<bool>,
    /// Why the outputs differ, when they do.
    pub difference: Option<String>,
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
    sink_path: Option<&Path>,
) -> Result<Vec<ModeResult>> {
    let outputs = tempfile::Builder::new()
        .prefix("weir-bench-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    // each mode writes its own copy of the output (same file kind as the job's sink)
    let output_of = |mode: &str| {
        let ext = sink_path
            .and_then(|p| p.extension())
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        outputs.path().join(format!("{mode}{ext}"))
    };
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
                .args(["--mode", mode, "--json", "--output"])
                .arg(output_of(mode))
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
            rows_out_per_sec: v["rows_out"].as_u64().unwrap_or(0) as f64 / seconds.max(1e-9),
            latency_p50_ms: v["latency"]["p50_ms"].as_f64(),
            latency_p99_ms: v["latency"]["p99_ms"].as_f64(),
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
    Ok(results)
}

/// Every batch of a job's output: one Parquet or JSON-lines file, or a
/// directory of part files.
pub fn read_output(path: &Path) -> Result<Vec<RecordBatch>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        f.sort();
        f
    } else if path.exists() {
        vec![path.to_path_buf()]
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for file in files {
        let open = || std::fs::File::open(&file).map_err(|e| Error::io(&file, e));
        if file.extension().is_some_and(|e| e == "parquet") {
            let perr = |e: parquet::errors::ParquetError| Error::Parquet {
                path: file.clone(),
                message: e.to_string(),
            };
            let reader = ParquetRecordBatchReaderBuilder::try_new(open()?)
                .map_err(perr)?
                .build()
                .map_err(perr)?;
            for b in reader {
                out.push(b?);
            }
        } else {
            let mut buf = std::io::BufReader::new(open()?);
            let (schema, _) = arrow_json::reader::infer_json_schema(&mut buf, None)?;
            let reader = arrow_json::ReaderBuilder::new(Arc::new(schema))
                .build(std::io::BufReader::new(open()?))?;
            for b in reader {
                out.push(b?);
            }
        }
    }
    Ok(out)
}

/// How two outputs compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// The same rows (floats within 1e-9).
    Same,
    /// Changelogs (`op` column): their rows may differ between modes.
    Changelog,
    /// Different rows, and where.
    Differ(String),
}

/// Compares two outputs as sets of rows (see [`crate::compare::same_rows`]).
pub fn compare_outputs(a: &[RecordBatch], b: &[RecordBatch]) -> Comparison {
    let schema = match a.first().or(b.first()) {
        Some(batch) => batch.schema(),
        None => return Comparison::Same,
    };
    if schema.index_of("op").is_ok() {
        return Comparison::Changelog;
    }
    match crate::compare::same_rows(a, b, &schema, 1e-9) {
        Ok(()) => Comparison::Same,
        Err(e) => Comparison::Differ(e.to_string()),
    }
}

/// A side-by-side table of bench results.
pub fn table(results: &[ModeResult]) -> String {
    let mut s = format!(
        "{:<10} {:>10} {:>14} {:>12} {:>14} {:>10} {:>12} {:>12} {:>16} {:>10}\n",
        "mode",
        "time",
        "rows/s in",
        "rows out",
        "rows/s out",
        "peak RSS",
        "pool peak",
        "spilled",
        "latency p50/p99",
        "vs scan"
    );
    for r in results {
        let latency = match (r.latency_p50_ms, r.latency_p99_ms) {
            (Some(a), Some(b)) => format!("{a:.1}/{b:.1} ms"),
            _ => "-".into(),
        };
        s.push_str(&format!(
            "{:<10} {:>8.2} s {:>14} {:>12} {:>14} {:>10} {:>12} {:>12} {:>16} {:>10}\n",
            r.mode,
            r.seconds,
            super::rate(r.rows_per_sec) + "rows/s",
            super::thousands(r.rows_out),
            super::rate(r.rows_out_per_sec) + "rows/s",
            format_bytes(r.peak_rss),
            format_bytes(r.peak_memory),
            format_bytes(r.spilled_bytes),
            latency,
            r.vs_scan.map_or("-".into(), |x| format!("{x:.2}x")),
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};

    fn batch(k: Vec<i64>, op: Option<Vec<&str>>) -> RecordBatch {
        let mut cols: Vec<(&str, arrow_array::ArrayRef)> =
            vec![("k", Arc::new(Int64Array::from(k)) as _)];
        if let Some(op) = op {
            cols.push(("op", Arc::new(StringArray::from(op)) as _));
        }
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn outputs_compare_as_row_sets_and_changelogs_are_not_judged() {
        let a = [batch(vec![1, 2, 3], None)];
        let shuffled = [batch(vec![3], None), batch(vec![1, 2], None)];
        assert_eq!(compare_outputs(&a, &shuffled), Comparison::Same);
        // a deliberately different result is flagged
        let other = [batch(vec![1, 2, 4], None)];
        assert!(matches!(compare_outputs(&a, &other), Comparison::Differ(_)));
        let fewer = [batch(vec![1, 2], None)];
        assert!(matches!(compare_outputs(&a, &fewer), Comparison::Differ(_)));
        let log = [batch(vec![1], Some(vec!["insert"]))];
        assert_eq!(compare_outputs(&log, &log), Comparison::Changelog);
    }
}

/// A chart panel: its title, the value per mode, and how to label a value.
type Panel = (&'static str, fn(&ModeResult) -> f64, fn(f64) -> String);

/// An SVG chart of bench results: throughput and peak RSS per mode, as
/// two bar panels (written directly, no plotting crate).
pub fn plot_svg(results: &[ModeResult], title: &str) -> String {
    let (w, h, pad) = (720.0_f64, 320.0_f64, 50.0_f64);
    let panel = (w - 3.0 * pad) / 2.0;
    let colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        w / 2.0,
        escape(title)
    );
    let panels: [Panel; 2] = [
        ("rows/s", |r| r.rows_per_sec, super::rate),
        (
            "peak RSS",
            |r| r.peak_rss as f64,
            |v| format_bytes(v as u64),
        ),
    ];
    for (p, (name, value, label)) in panels.iter().enumerate() {
        let x0 = pad + p as f64 * (panel + pad);
        let (top, bottom) = (40.0, h - pad);
        let max = results.iter().map(value).fold(0.0_f64, f64::max).max(1e-9);
        let bar = panel / results.len().max(1) as f64;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{name}</text>\n\
             <line x1=\"{x0}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>\n",
            x0 + panel / 2.0,
            top - 4.0,
            x0 + panel
        ));
        for (i, r) in results.iter().enumerate() {
            let v = value(r);
            let height = (bottom - top - 20.0) * v / max;
            let x = x0 + i as f64 * bar + bar * 0.15;
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{}\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                bottom - height,
                bar * 0.7,
                colors[i % colors.len()],
                x + bar * 0.35,
                bottom - height - 4.0,
                escape(&label(v)),
                x + bar * 0.35,
                bottom + 16.0,
                escape(&r.mode),
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod plot_tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_and_a_label_per_mode_and_panel() {
        let r = |mode: &str, rate: f64, rss: u64| ModeResult {
            mode: mode.into(),
            seconds: 1.0,
            rows_per_sec: rate,
            rows_in: 10,
            rows_out: 1,
            rows_out_per_sec: 1.0,
            latency_p50_ms: None,
            latency_p99_ms: None,
            peak_rss: rss,
            peak_memory: 0,
            spilled_bytes: 0,
            vs_scan: None,
            identical: None,
            difference: None,
        };
        let svg = plot_svg(
            &[r("batch", 2e6, 1 << 20), r("pipelined", 1e6, 2 << 20)],
            "a<b",
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 4, "{svg}");
        assert_eq!(svg.matches(">pipelined</text>").count(), 2);
        assert!(svg.contains("a&lt;b"));
        // the larger value gets the taller bar in each panel
        let heights: Vec<f64> = svg
            .lines()
            .filter(|l| l.starts_with("<rect x="))
            .map(|l| {
                l.split("height=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(
            heights[0] > heights[1] && heights[3] > heights[2],
            "{heights:?}"
        );
    }
}
