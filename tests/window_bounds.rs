//! Window arithmetic never overflows: a row whose window cannot be
//! represented in 64-bit milliseconds is an error naming the time column,
//! the operator and the row's time (never an overlapping or shrunken
//! window), rows just inside the range get exact windows, and window
//! lengths beyond `i64::MAX` ms are refused where they are parsed or built.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, WatermarkStrategy};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
    ]))
}

fn batch(times: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![1; times.len()])),
            Arc::new(Int64Array::from(times.to_vec())),
        ],
    )
    .unwrap()
}

/// Runs a keyed count per window over `times` (one split, in order).
fn counts(
    times: &[i64],
    window: Window,
    mode: ExecMode,
) -> weir::Result<BTreeMap<(i64, i64), i64>> {
    let job = Job::new();
    let out = job
        .from_batches(schema(), vec![times.chunks(100).map(batch).collect()])?
        .assign_timestamps("t", WatermarkStrategy::monotonous())?
        .key_by(["k"])?
        .window(window)
        .aggregate([Agg::count().alias("n")])?
        .collect()?;
    job.run(&ExecConfig::new(mode).with_parallelism(2))?;
    let mut table = BTreeMap::new();
    for b in out.batches() {
        let c = |name: &str| {
            b.column_by_name(name)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (s, e, n) = (c("window_start"), c("window_end"), c("n"));
        for i in 0..b.num_rows() {
            assert!(
                table.insert((s.value(i), e.value(i)), n.value(i)).is_none(),
                "window fired twice"
            );
        }
    }
    Ok(table)
}

fn assert_names_the_row(err: weir::Error, time: i64) {
    let text = err.to_string();
    assert!(text.contains("`t`"), "names the time column: {text}");
    assert!(text.contains("window"), "names the operator: {text}");
    assert!(
        text.contains(&time.to_string()),
        "names the row's time: {text}"
    );
    assert!(text.contains("64-bit"), "says why: {text}");
}

#[test]
fn tumbling_windows_near_i64_min_never_overlap() {
    // i64::MIN is 808 ms past a second boundary: its window would start before it.
    // Saturating that start gave [MIN, MIN+1000) overlapping [MIN+808, MIN+1808):
    // 1,000 rows were counted 1,192 times.
    let times: Vec<i64> = (0..1000).map(|i| i64::MIN + i).collect();
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let err = counts(&times, Window::tumbling(Duration::from_secs(1)), mode).unwrap_err();
        assert_names_the_row(err, i64::MIN);
    }
    // just inside the range: exact, disjoint windows holding every row once
    let lo = i64::MIN + 808;
    let times: Vec<i64> = (0..2000).map(|i| lo + i).collect();
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let got = counts(&times, Window::tumbling(Duration::from_secs(1)), mode).unwrap();
        let want = BTreeMap::from([((lo, lo + 1000), 1000), ((lo + 1000, lo + 2000), 1000)]);
        assert_eq!(got, want, "{mode}");
    }
}

#[test]
fn windows_past_i64_max_are_errors_not_saturated_ends() {
    let sliding = Window::sliding(Duration::from_secs(10), Duration::from_secs(1));
    let cases = [
        (Window::tumbling(Duration::from_secs(1)), i64::MAX - 5),
        (sliding, i64::MAX - 5_000),
        (
            Window::cumulative(Duration::from_secs(1), Duration::from_secs(4)),
            i64::MAX - 100,
        ),
        (Window::session(Duration::from_secs(1)), i64::MAX - 999),
    ];
    for (window, t) in cases {
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            let err = counts(&[0, 1, t], window, mode).unwrap_err();
            assert_names_the_row(err, t);
        }
    }
    // the last valid sliding row: every one of its ten windows ends by i64::MAX
    let hi = (i64::MAX - 10_000) / 1000 * 1000 + 999;
    let got = counts(&[hi], sliding, ExecMode::Batch).unwrap();
    assert_eq!(got.len(), 10);
    assert!(got
        .keys()
        .all(|&(s, e)| e - s == 10_000 && s <= hi && hi < e));
}

#[test]
fn window_lengths_beyond_i64_milliseconds_are_refused() {
    let huge = Duration::from_secs(u64::MAX);
    for w in [
        Window::tumbling(huge),
        Window::sliding(huge, Duration::from_secs(1)),
        Window::cumulative(Duration::from_secs(1), huge),
        Window::session(huge),
        Window::tumbling(Duration::from_secs(1)).with_offset(huge),
    ] {
        let job = Job::new();
        let err = job
            .from_batches(schema(), vec![vec![batch(&[1])]])
            .unwrap()
            .assign_timestamps("t", WatermarkStrategy::monotonous())
            .unwrap()
            .key_by(["k"])
            .unwrap()
            .window(w)
            .aggregate([Agg::count()])
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("out of range"), "{w:?}: {text}");
        assert!(text.contains("window."), "names the option: {text}");
    }
}

#[test]
fn count_window_ends_past_i64_max_are_errors() {
    let job = Job::new();
    let _out = job
        .from_batches(schema(), vec![vec![batch(&[1, i64::MAX])]])
        .unwrap()
        .assign_timestamps("t", WatermarkStrategy::monotonous())
        .unwrap()
        .key_by(["k"])
        .unwrap()
        .count_window(2)
        .aggregate([Agg::count()])
        .unwrap()
        .collect()
        .unwrap();
    let err = job.run(&ExecConfig::batch()).unwrap_err().to_string();
    assert!(
        err.contains(&i64::MAX.to_string()) && err.contains("`t`"),
        "{err}"
    );
}

#[test]
fn a_job_file_window_size_beyond_i64_milliseconds_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("in.parquet");
    let file = std::fs::File::create(&data).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
    w.write(&batch(&[1, 2, 3])).unwrap();
    w.close().unwrap();
    for (window, field) in [
        (
            r#"{ kind = "tumbling", size = "99999999999999999d" }"#,
            "window.size",
        ),
        (
            r#"{ kind = "session", gap = "9223372036854775808ms" }"#,
            "window.gap",
        ),
        (
            r#"{ kind = "sliding", size = "10s", slide = "1s", offset = "106751991168d" }"#,
            "window.offset",
        ),
    ] {
        let job = dir.path().join("job.toml");
        std::fs::write(
            &job,
            format!(
                "[source]\npath = {data:?}\ntime_column = \"t\"\nwatermark_delay = \"1s\"\n\n\
                 [[steps]]\nkey_by = [\"k\"]\n\n[[steps]]\nwindow = {window}\n\
                 aggregates = [{{ fn = \"count\", as = \"n\" }}]\n\n\
                 [sink]\npath = {:?}\n",
                dir.path().join("out.parquet")
            ),
        )
        .unwrap();
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&job)
            .args(["--mode", "batch"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{window}: accepted");
        assert!(
            stderr.contains(field) && stderr.contains("out of range"),
            "{window}: {stderr}"
        );
        assert!(!dir.path().join("out.parquet").exists());
    }
}
