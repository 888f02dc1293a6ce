//! Running `weir sql` in tests: the OBD sample as a table, a script run
//! in every mode, and its Parquet output read back as comparable rows.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::RecordBatch;
use std::path::{Path, PathBuf};
use std::process::Command;

/// 50 vehicles, 3 readings/s, 120 s: 18,000 rows in 2 files.
pub fn data(dir: &Path) -> PathBuf {
    let d = dir.join("obd");
    super::generate_obd(&d, 50, 120, 2);
    d
}

/// (vehicle_id, event_time, speed) of every input row.
pub fn input_rows(data: &Path) -> Vec<(i64, i64, f64)> {
    let mut rows = Vec::new();
    for b in super::read_parquet_parts(data) {
        let v = b
            .column_by_name("vehicle_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let t = b
            .column_by_name("event_time")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        let s = b
            .column_by_name("speed")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            rows.push((v.value(i), t.value(i), s.value(i)));
        }
    }
    rows
}

/// Runs `weir sql` on `text` (a file in `dir`) with `args`; panics with
/// its stderr on failure.
pub fn sql(dir: &Path, text: &str, args: &[&str]) -> String {
    let file = dir.join("job.sql");
    std::fs::write(&file, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("sql")
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "weir sql failed: {err}");
    String::from_utf8(o.stdout).unwrap()
}

/// The rows of the Parquet parts in `dir`, each as its columns' values
/// (integers exact, floats by bits), sorted.
pub fn rows(dir: &Path) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for b in super::read_parquet_parts(dir) {
        for i in 0..b.num_rows() {
            out.push(row(&b, i));
        }
    }
    out.sort();
    out
}

pub fn row(b: &RecordBatch, i: usize) -> Vec<String> {
    b.columns()
        .iter()
        .map(|c| match c.data_type() {
            _ if arrow_array::Array::is_null(c, i) => "null".to_string(),
            arrow_schema::DataType::Int64 => c.as_primitive::<Int64Type>().value(i).to_string(),
            arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, _) => c
                .as_primitive::<TimestampMillisecondType>()
                .value(i)
                .to_string(),
            arrow_schema::DataType::Float64 => {
                format!("{:?}", c.as_primitive::<Float64Type>().value(i))
            }
            arrow_schema::DataType::Utf8 => c.as_string::<i32>().value(i).to_string(),
            other => panic!("unexpected column type {other}"),
        })
        .collect()
}

/// Runs `script(out)` pipelined and in batch at parallelism 1 and 3, each
/// into its own folder, and checks its rows are `want`.
pub fn in_every_mode(
    dir: &Path,
    name: &str,
    script: impl Fn(&Path) -> String,
    want: &[Vec<String>],
) {
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            let out = dir.join(format!("{name}-{mode}-{p}"));
            sql(dir, &script(&out), &["--mode", mode, "--parallelism", p]);
            assert_eq!(rows(&out), want, "{mode} p={p}");
        }
    }
}

pub fn obd_table(data: &Path, delay: &str) -> String {
    format!(
        "CREATE TABLE obd (\n  vehicle_id BIGINT,\n  event_time TIMESTAMP(3),\n  speed DOUBLE,\n  \
         WATERMARK FOR event_time AS event_time - INTERVAL {delay}\n) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'parquet');\n",
        data.display()
    )
}

/// The exact sum of `xs` (each a multiple of 2^-60), rounded once: what
/// weir's float sums give.
pub fn exact_sum(xs: &[f64]) -> f64 {
    let scale = 2f64.powi(60);
    let mut acc: i128 = 0;
    for &x in xs {
        let scaled = x * scale;
        assert_eq!(scaled.fract(), 0.0, "{x} is not a multiple of 2^-60");
        acc += scaled as i128;
    }
    acc as f64 / scale
}

/// Runs `weir sql` on `text` (a file `bad.sql` in `dir`), which must fail
/// with stderr containing `says`; returns the stderr.
pub fn refused(dir: &Path, text: &str, says: &str) -> String {
    let file = dir.join("bad.sql");
    std::fs::write(&file, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("sql")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "must fail: {text}");
    assert!(err.contains(says), "{text}\n  wanted: {says}\n  got: {err}");
    err.to_string()
}
