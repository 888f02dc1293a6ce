//! CSV sources: each file a split with its own watermarks, so a windowed
//! job over CSV files gives the oracle's windows and late rows in both
//! modes and at any parallelism; the job file's `type = "csv"` runs the
//! same job from the command line; a sink is never allowed into the
//! input folder.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use common::{admitted_and_late_by, split_strategy, Row, Split};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weir::connectors::CsvSourceSpec;
use weir::{Agg, ExecConfig, ExecMode, Job, TumblingWindow, WatermarkStrategy};

/// Writes each split as one CSV file (rows in arrival order).
fn write_csv(dir: &Path, splits: &[Split]) {
    for (i, split) in splits.iter().enumerate() {
        let mut text = String::from("key,ts,value,speed\n");
        for r in &split.rows {
            text.push_str(&format!("{},{},{},{}\n", r.key, r.ts, r.value, r.speed));
        }
        std::fs::write(dir.join(format!("part-{i:02}.csv")), text).unwrap();
    }
}

/// (key, window start) -> (count, sum of value): the oracle's windows.
fn oracle(rows: &[Row]) -> BTreeMap<(i64, i64), (i64, i64)> {
    let mut out = BTreeMap::new();
    for r in rows {
        let e = out
            .entry((r.key, r.ts - r.ts.rem_euclid(1000)))
            .or_insert((0, 0));
        e.0 += 1;
        e.1 += r.value;
    }
    out
}

fn sorted_rows(batches: &[RecordBatch]) -> Vec<(i64, i64, i64)> {
    let mut v: Vec<(i64, i64, i64)> = batches
        .iter()
        .flat_map(|b| {
            let c = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .clone()
            };
            let (k, t, v) = (c("key"), c("ts"), c("value"));
            (0..b.num_rows()).map(move |i| (k.value(i), t.value(i), v.value(i)))
        })
        .collect();
    v.sort();
    v
}

/// The windowed job over the CSV files in `dir`: windows and late rows.
fn run(dir: &Path, mode: ExecMode, p: usize) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
    let job = Job::new();
    // the schema is given: a file may hold no rows (inference is unit-tested)
    let spec =
        CsvSourceSpec::try_with_options(&[dir.to_path_buf()], Some(common::schema()), true, b',')
            .unwrap()
            .with_batch_size(7);
    let timed = job
        .source_spec(Arc::new(spec))
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(200)),
        )
        .unwrap();
    let late = timed.late_rows().unwrap().collect().unwrap();
    let windows = timed
        .key_by(["key"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([Agg::count().alias("n"), Agg::sum("value").alias("s")])
        .unwrap()
        .collect()
        .unwrap();
    job.run(&ExecConfig::new(mode).with_parallelism(p)).unwrap();
    (windows.batches(), late.batches())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn windows_over_csv_files_match_the_oracle_in_both_modes_at_any_parallelism(
        splits in prop::collection::vec(split_strategy(4), 1..5),
    ) {
        let dir = tempfile::tempdir().unwrap();
        write_csv(dir.path(), &splits);
        let deadline = |t: i64| t - t.rem_euclid(1000) + 999;
        let (kept, late) = admitted_and_late_by(&splits, 200, 0, &deadline);
        let want = oracle(&kept);
        let mut want_late: Vec<(i64, i64, i64)> = late.iter().map(|r| (r.key, r.ts, r.value)).collect();
        want_late.sort();
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            for p in [1, 3] {
                let (windows, late_rows) = run(dir.path(), mode, p);
                let got = common::window_table(&windows, "key", "n", "s");
                prop_assert_eq!(&got, &want, "{} p={}", mode, p);
                prop_assert_eq!(sorted_rows(&late_rows), want_late.clone(), "{} p={}", mode, p);
            }
        }
    }
}

fn weir(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .unwrap()
}

const JOB: &str = r#"name = "csv"
[source]
type = "csv"
path = "in"
columns = ["key", "ts", "value"]
time_column = "ts"
watermark_delay = "200ms"
[[steps]]
key_by = ["key"]
[[steps]]
window = { kind = "tumbling", size = "1s" }
aggregates = [{ fn = "count", as = "n" }, { fn = "sum", column = "value", as = "s" }]
[sink]
type = "parquet"
path = "OUT"
"#;

/// Rows spread over three files, in order within each: nothing is late.
fn ordered_input(dir: &Path) -> Vec<Row> {
    let rows: Vec<Row> = (0..600)
        .map(|i| Row {
            key: i % 5,
            ts: i * 37,
            value: i % 11,
            speed: 0.5,
        })
        .collect();
    let splits: Vec<Split> = rows
        .chunks(200)
        .map(|c| Split {
            rows: c.to_vec(),
            cuts: vec![50],
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    write_csv(dir, &splits);
    rows
}

#[test]
fn a_job_file_with_a_csv_source_runs_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ordered_input(&dir.path().join("in"));
    let job = dir.path().join("job.toml");
    std::fs::write(&job, JOB.replace("OUT", "out")).unwrap();
    for mode in ["batch", "pipelined"] {
        let out = weir(&["run", job.to_str().unwrap(), "--mode", mode]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = common::window_table(
            &common::read_parquet_parts(&dir.path().join("out")),
            "key",
            "n",
            "s",
        );
        assert_eq!(got, oracle(&rows), "{mode}");
    }
}

#[test]
fn a_bad_csv_option_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    ordered_input(&dir.path().join("in"));
    let job = dir.path().join("job.toml");
    let text = JOB
        .replace("OUT", "out")
        .replace("type = \"csv\"\n", "type = \"csv\"\ndelimiter = \"ab\"\n");
    std::fs::write(&job, text).unwrap();
    let out = weir(&["run", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("delimiter") && err.contains("ab"), "{err}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_sink_inside_the_csv_input_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    ordered_input(&dir.path().join("in"));
    let job = dir.path().join("job.toml");
    std::fs::write(&job, JOB.replace("OUT", "in/out")).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path().join("in"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let out = weir(&["run", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refusing to touch") && err.contains("an input of source `csv_source"),
        "{err}"
    );
    let after: Vec<_> = std::fs::read_dir(dir.path().join("in"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after, "the input folder is untouched");
}
