//! Shared test inputs: random out-of-order splits, batch cutting, and the
//! per-split lateness rule every oracle applies first.
#![allow(dead_code)]

pub mod brokers;
pub mod sql;
pub mod watch;
pub mod windows;

use arrow_array::{Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use proptest::prelude::*;
use std::sync::Arc;

/// One input row.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: i64,
    pub ts: i64,
    pub value: i64,
    pub speed: f64,
}

/// key, ts, value, speed.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("value", DataType::Int64, false),
        Field::new("speed", DataType::Float64, false),
    ]))
}

pub fn to_batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.key))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.ts))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.value))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.speed))),
        ],
    )
    .unwrap()
}

/// One split: rows in arrival order plus the batch sizes to cut them into.
#[derive(Debug, Clone)]
pub struct Split {
    pub rows: Vec<Row>,
    pub cuts: Vec<usize>,
}

/// Event time advances ~40 ms per row; most rows are a little behind, some
/// far behind (late), a few ahead. `keys` distinct keys.
pub fn split_strategy(keys: i64) -> impl Strategy<Value = Split> {
    (
        0usize..250,
        prop::collection::vec(
            (0i64..keys, 0i64..400, -20i64..100, 0u8..10, 0i64..5_000),
            250,
        ),
        prop::collection::vec(1usize..60, 1..20),
    )
        .prop_map(|(n, raw, cuts)| {
            let mut clock = 0i64;
            let rows = raw
                .into_iter()
                .take(n)
                .map(|(key, step, value, kind, back)| {
                    clock += step / 10;
                    let ts = match kind {
                        0 => clock - back,
                        1 => clock + back / 10,
                        _ => clock - back / 20,
                    };
                    Row {
                        key,
                        ts,
                        value,
                        speed: value as f64 * 0.5 + 0.25,
                    }
                })
                .collect();
            Split { rows, cuts }
        })
}

pub fn batches_of(split: &Split) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut c = 0;
    while i < split.rows.len() {
        let n = split.cuts[c % split.cuts.len()].min(split.rows.len() - i);
        out.push(to_batch(&split.rows[i..i + n]));
        i += n;
        c += 1;
    }
    out
}

/// The rows a source admits: per split, a row is late if its time is at or
/// below `max(earlier admitted rows) - delay - 1 - lateness`.
pub fn admitted(splits: &[Split], delay: i64, lateness: i64) -> (Vec<Row>, u64) {
    let (rows, late) = admitted_and_late(splits, delay, lateness);
    (rows, late.len() as u64)
}

/// Like [`admitted`], also returning the late rows themselves.
pub fn admitted_and_late(splits: &[Split], delay: i64, lateness: i64) -> (Vec<Row>, Vec<Row>) {
    admitted_and_late_by(splits, delay, lateness, &|t| t)
}

/// The window-aware rule: per split, a row is late if `deadline(ts)` (the
/// max timestamp of its first window; `ts` itself for the per-row rule) is
/// at or below `max(earlier admitted rows) - delay - 1 - lateness`.
pub fn admitted_and_late_by(
    splits: &[Split],
    delay: i64,
    lateness: i64,
    deadline: &dyn Fn(i64) -> i64,
) -> (Vec<Row>, Vec<Row>) {
    let mut rows = Vec::new();
    let mut late = Vec::new();
    for split in splits {
        let mut max: Option<i64> = None;
        for r in &split.rows {
            if max.is_some_and(|m| deadline(r.ts) < m - delay - lateness) {
                late.push(r.clone());
                continue;
            }
            max = Some(max.map_or(r.ts, |m| m.max(r.ts)));
            rows.push(r.clone());
        }
    }
    (rows, late)
}

/// Window results by (key, window start) -> (count, sum), read from the
/// Int64-castable columns `key`, `window_start`, `count` and `sum`;
/// fails if a window fired twice.
pub fn window_table(
    batches: &[RecordBatch],
    key: &str,
    count: &str,
    sum: &str,
) -> std::collections::BTreeMap<(i64, i64), (i64, i64)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let mut out = std::collections::BTreeMap::new();
    for b in batches {
        let int = |name: &str| {
            let c = b
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no column {name}"));
            arrow_cast::cast(c, &DataType::Int64).unwrap()
        };
        let cols = [int(key), int("window_start"), int(count), int(sum)];
        let [k, start, n, s] = cols.each_ref().map(|c| c.as_primitive::<Int64Type>());
        for i in 0..b.num_rows() {
            let old = out.insert((k.value(i), start.value(i)), (n.value(i), s.value(i)));
            assert!(old.is_none(), "window fired twice");
        }
    }
    out
}

/// Every row of the Parquet part files directly in `dir` (none if it does
/// not exist). A file that is not whole Parquet fails the test, naming it.
pub fn read_parquet_parts(dir: &std::path::Path) -> Vec<RecordBatch> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "parquet"));
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let file = std::fs::File::open(&p).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap_or_else(|e| panic!("{} is not a whole Parquet file: {e}", p.display()))
            .build()
            .unwrap();
        out.extend(reader.map(|b| b.unwrap()));
    }
    out
}

/// Runs job file `job` with the `weir` binary in batch mode (no
/// checkpoints) into `out` and returns its rows: the uninterrupted reference.
pub fn batch_reference(job: &std::path::Path, out: &std::path::Path) -> Vec<RecordBatch> {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(job)
        .args(["--mode", "batch", "--parallelism", "2", "--output"])
        .arg(out)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the reference run failed");
    read_parquet_parts(out)
}

/// Writes sample OBD readings (`weir generate`) into `dir`.
pub fn generate_obd(dir: &std::path::Path, vehicles: usize, seconds: usize, files: usize) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["generate", "--out"])
        .arg(dir)
        .args(["--vehicles", &vehicles.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .args(["--files", &files.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "weir generate failed");
}

/// A deterministic generator (kill delays of the crash tests).
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number below `below`.
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Waits for `child`; fails the test with its stderr if it failed.
pub fn finish(child: std::process::Child) -> std::process::Output {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a weir process failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts `spawn()` again and again, SIGKILLing it `kills` times at random
/// moments (`min_ms` plus up to `spread_ms`, drawn from `seed`; `on_kill`
/// runs after each kill), then lets a run finish: returns its output, which
/// must be a success, and the number of kills.
pub fn kill_until_done(
    kills: usize,
    seed: u64,
    (min_ms, spread_ms): (u64, u64),
    mut spawn: impl FnMut() -> std::process::Child,
    mut on_kill: impl FnMut(),
) -> (std::process::Output, usize) {
    let mut rng = Lcg(seed);
    let mut done = 0;
    loop {
        let mut child = spawn();
        if done < kills {
            std::thread::sleep(std::time::Duration::from_millis(
                min_ms + rng.next(spread_ms),
            ));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                done += 1;
                on_kill();
                continue;
            }
        }
        return (finish(child), done);
    }
}

/// Asserts equal sorted row lists, printing counts and the first difference
/// rather than both lists.
pub fn same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], context: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        let at = at.unwrap_or(got.len().min(want.len()));
        panic!(
            "{context}: {} rows, expected {}; first difference at {at}: {:?} vs {:?}",
            got.len(),
            want.len(),
            got.get(at),
            want.get(at)
        );
    }
}

/// The seed's OBD-vs-app job (`examples/seed_join.toml`) over `seconds` of
/// 30 vehicles' generated readings in `dir` (OBD in `obd_files` files).
pub fn seed_job(dir: &std::path::Path, seconds: usize, obd_files: usize) -> std::path::PathBuf {
    let (obd, app) = (dir.join("obd"), dir.join("app"));
    generate_obd(&obd, 30, seconds, obd_files);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["generate", "--kind", "app", "--out"])
        .arg(&app)
        .args([
            "--vehicles",
            "30",
            "--seconds",
            &seconds.to_string(),
            "--files",
            "3",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "weir generate --kind app failed");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed_join.toml"),
    )
    .unwrap()
    .replace("../data/obd", &obd.display().to_string())
    .replace("../data/app", &app.display().to_string());
    let job = dir.join("seed.toml");
    std::fs::write(&job, text).unwrap();
    job
}

/// The fields of one CSV line (RFC 4180: quoted fields with doubled quotes).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("one field at least");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => field.push(c),
        }
    }
    fields
}
