//! Job files: the shipped example runs in both modes through the CLI, both
//! outputs hold the same rows, and they equal the same job built with the
//! library API.

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use weir::compare::same_rows;
use weir::{col, lit, Agg, ExecConfig, Job, TumblingWindow, WatermarkStrategy};

/// The rows of one Parquet file; hidden files (weir's `.weir-target`
/// marker in an output directory) hold none.
fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    {
        return Vec::new();
    }
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

#[test]
fn example_job_gives_the_same_rows_in_both_modes_and_as_the_builder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    let batches = weir::workloads::vehicles::generate_obd(30, 90, 7, 1000);
    weir::workloads::vehicles::write_parquet_dir(&data, &batches, 3, 2000).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/avg_speed.toml"
    ))
    .unwrap();
    let job_path = dir.path().join("job.toml");
    std::fs::write(
        &job_path,
        example.replace("../data/obd", data.to_str().unwrap()),
    )
    .unwrap();

    let mut outputs = Vec::new();
    for mode in ["batch", "pipelined"] {
        let out = dir.path().join(format!("{mode}.parquet"));
        let run = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run"])
            .arg(&job_path)
            .args(["--mode", mode, "--parallelism", "3", "--json", "--output"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let metrics: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(metrics["rows_in"], 30 * 90 * 3);
        assert!(
            metrics["late_rows"].as_u64().unwrap() > 0,
            "the sample data has late rows"
        );
        outputs.push(read_parquet(&out));
    }
    let schema = outputs[0][0].schema();
    same_rows(&outputs[0], &outputs[1], &schema, 1e-9).unwrap();

    let job = Job::new();
    let built = job
        .parquet(&data)
        .unwrap()
        .assign_timestamps(
            "event_time",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(30)),
        )
        .unwrap()
        .filter(col("speed").gt_eq(lit(0)).and(col("speed").lt(lit(250))))
        .unwrap()
        .with_column("kmh", col("speed").mul(lit(1.0)))
        .unwrap()
        .key_by(["vehicle_id"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([
            Agg::avg("speed").alias("avg_speed"),
            Agg::max("speed").alias("max_speed"),
            Agg::count().alias("readings"),
        ])
        .unwrap()
        .collect()
        .unwrap();
    job.run(&ExecConfig::batch().with_parallelism(1)).unwrap();
    same_rows(&outputs[0], &built.batches(), &schema, 1e-9).unwrap();
    // 30 vehicles x 90 s: nearly every (vehicle, second) has a window
    assert!(built.num_rows() > 30 * 85, "{}", built.num_rows());
}

/// The event-time example (sliding window, lateness, early firings, late
/// sink) gives the same materialized windows and the same late rows in both modes.
#[test]
fn event_time_example_agrees_between_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    let batches = weir::workloads::vehicles::generate_obd(20, 300, 11, 2000);
    weir::workloads::vehicles::write_parquet_dir(&data, &batches, 2, 1000).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/event_time.toml"
    ))
    .unwrap();
    let mut results = Vec::new();
    for mode in ["batch", "pipelined"] {
        let late = dir.path().join(format!("late-{mode}.jsonl"));
        let job_path = dir.path().join(format!("job-{mode}.toml"));
        let text = example
            .replace("../data/obd", data.to_str().unwrap())
            .replace("../out/late_obd.jsonl", late.to_str().unwrap());
        std::fs::write(&job_path, text).unwrap();
        let out = dir.path().join(format!("{mode}.parquet"));
        run_cli(&job_path, mode, &out);
        let mut late_lines: Vec<String> = std::fs::read_to_string(&late)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        late_lines.sort();
        results.push((materialize(&read_parquet(&out)), late_lines));
    }
    assert!(
        !results[0].1.is_empty(),
        "the sample data has rows beyond the lateness"
    );
    assert_eq!(results[0].1, results[1].1, "same late rows");
    assert_eq!(results[0].0.len(), results[1].0.len());
    for (k, a) in &results[0].0 {
        let b = &results[1].0[k];
        assert!(
            (a.0 - b.0).abs() <= 1e-9 * a.0.abs().max(1.0) && a.1 == b.1,
            "{k:?}: {a:?} vs {b:?}"
        );
    }
}

/// Applies the `op` changelog: (vehicle, start, end) -> (avg_speed, readings).
fn materialize(batches: &[RecordBatch]) -> std::collections::BTreeMap<(i64, i64, i64), (f64, i64)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    let mut t = std::collections::BTreeMap::new();
    for b in batches {
        let i64c = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (v, s, e, n) = (
            i64c("vehicle_id"),
            i64c("window_start"),
            i64c("window_end"),
            i64c("readings"),
        );
        let avg = b
            .column_by_name("avg_speed")
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone();
        let op = b.column_by_name("op").unwrap().as_string::<i32>().clone();
        for i in 0..b.num_rows() {
            let key = (v.value(i), s.value(i), e.value(i));
            if op.value(i) == "delete" {
                t.remove(&key);
            } else {
                t.insert(key, (avg.value(i), n.value(i)));
            }
        }
    }
    t
}

/// Count windows and a global sliding window from a job file agree between modes.
#[test]
fn count_window_job_agrees_between_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    let batches = weir::workloads::vehicles::generate_obd(5, 60, 3, 300);
    weir::workloads::vehicles::write_parquet_dir(&data, &batches, 2, 400).unwrap();
    let job = format!(
        r#"
[source]
path = "{}"
time_column = "event_time"
watermark_delay = "30s"

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = {{ kind = "count", rows = 4, slide_rows = 2 }}
aggregates = [{{ fn = "avg", column = "speed", as = "avg_speed" }}, {{ fn = "count", as = "n" }}]
"#,
        data.display()
    );
    let job_path = dir.path().join("count.toml");
    std::fs::write(&job_path, job).unwrap();
    let mut outs = Vec::new();
    for mode in ["batch", "pipelined"] {
        let out = dir.path().join(format!("count-{mode}.parquet"));
        run_cli(&job_path, mode, &out);
        outs.push(read_parquet(&out));
    }
    let rows: usize = outs[0].iter().map(|b| b.num_rows()).sum();
    // each vehicle has ~180 admitted rows: one firing every 2 rows
    assert!(rows >= 5 * 80, "{rows}");
    same_rows(&outs[0], &outs[1], &outs[0][0].schema(), 1e-9).unwrap();
}

/// The seed's join example (a join step whose right input has its own
/// source and steps) gives, in both modes through the CLI, the rows of the
/// same job built with the library (`weir::workloads::vehicles::seed::seed_job`).
#[test]
fn seed_join_example_matches_the_library_job_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let (obd, app) = (dir.path().join("obd"), dir.path().join("app"));
    weir::workloads::vehicles::write_parquet_dir(
        &obd,
        &weir::workloads::vehicles::generate_obd(20, 120, 3, 1000),
        2,
        1000,
    )
    .unwrap();
    weir::workloads::vehicles::write_parquet_dir(
        &app,
        &weir::workloads::vehicles::seed::generate_app(20, 120, 3, 500),
        2,
        1000,
    )
    .unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/seed_join.toml"
    ))
    .unwrap()
    .replace("../data/obd", obd.to_str().unwrap())
    .replace("../data/app", app.to_str().unwrap());
    let job_path = dir.path().join("seed.toml");
    std::fs::write(&job_path, example).unwrap();
    let seed = weir::workloads::vehicles::seed::seed_job(&obd, &app).unwrap();
    seed.job.run(&ExecConfig::batch()).unwrap();
    let want = seed.out.batches();
    assert!(want.iter().map(|b| b.num_rows()).sum::<usize>() > 20 * 100);
    for mode in ["batch", "pipelined"] {
        let out = dir.path().join(format!("{mode}-out"));
        run_cli(&job_path, mode, &out);
        let got: Vec<RecordBatch> = std::fs::read_dir(&out)
            .unwrap()
            .flat_map(|e| read_parquet(&e.unwrap().path()))
            .collect();
        same_rows(&got, &want, &seed.schema, 1e-9).unwrap_or_else(|e| panic!("{mode}: {e}"));
    }
}

/// An interval left join and a regular join with a TTL written as job
/// files give, in both modes through the CLI, the rows of the same joins
/// built with the library.
#[test]
fn interval_and_ttl_join_steps_match_the_builder_in_both_modes() {
    use weir::operators::join::{JoinSpec, JoinType};
    let dir = tempfile::tempdir().unwrap();
    let (obd, app) = (dir.path().join("obd"), dir.path().join("app"));
    weir::workloads::vehicles::write_parquet_dir(
        &obd,
        &weir::workloads::vehicles::generate_obd(5, 60, 9, 500),
        2,
        500,
    )
    .unwrap();
    weir::workloads::vehicles::write_parquet_dir(
        &app,
        &weir::workloads::vehicles::seed::generate_app(5, 60, 9, 200),
        1,
        500,
    )
    .unwrap();
    let job_text = |join: &str| {
        format!(
            r#"
[source]
path = "{obd}"
time_column = "event_time"
watermark_delay = "90s"

[[steps]]
[steps.join]
on = ["vehicle_id"]
{join}

[steps.join.right.source]
path = "{app}"
time_column = "event_time"
watermark_delay = "9m"

[sink]
path = "out"
"#,
            obd = obd.display(),
            app = app.display()
        )
    };
    let cases = [
        (
            "kind = \"interval\"\ntype = \"left\"\nlower = \"-200ms\"\nupper = \"100ms\"",
            JoinSpec::interval_ms(-200, 100).with_type(JoinType::Left),
        ),
        (
            "kind = \"regular\"\ntype = \"full\"\nttl = \"150ms\"",
            JoinSpec::regular()
                .with_ttl(Duration::from_millis(150))
                .with_type(JoinType::Full),
        ),
    ];
    for (i, (join, spec)) in cases.into_iter().enumerate() {
        let job_path = dir.path().join(format!("join{i}.toml"));
        std::fs::write(&job_path, job_text(join)).unwrap();
        let job = Job::new();
        let ts = |d| WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(d));
        let l = job
            .parquet(&obd)
            .unwrap()
            .assign_timestamps("event_time", ts(90))
            .unwrap();
        let r = job
            .parquet(&app)
            .unwrap()
            .assign_timestamps("event_time", ts(540))
            .unwrap();
        let joined = l.join(&r, spec.on(["vehicle_id"], ["vehicle_id"])).unwrap();
        let out = joined.collect().unwrap();
        job.run(&ExecConfig::batch()).unwrap();
        let want = out.batches();
        assert!(
            want.iter().map(|b| b.num_rows()).sum::<usize>() > 100,
            "case {i}"
        );
        for mode in ["batch", "pipelined"] {
            let dest = dir.path().join(format!("out{i}-{mode}"));
            run_cli(&job_path, mode, &dest);
            let got: Vec<RecordBatch> = std::fs::read_dir(&dest)
                .unwrap()
                .flat_map(|e| read_parquet(&e.unwrap().path()))
                .collect();
            assert_eq!(join_rows(&got), join_rows(&want), "case {i} {mode}");
        }
    }
}

/// Join output rows as sorted strings of (vehicle_id, event_time, speed,
/// right event_time, right speed), with `op = delete` rows removing their insert.
fn join_rows(batches: &[RecordBatch]) -> Vec<String> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    let mut rows: Vec<String> = Vec::new();
    for b in batches {
        let cols: Vec<String> = [
            "vehicle_id",
            "event_time",
            "speed",
            "right_event_time",
            "right_speed",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect();
        let arrays: Vec<_> = cols
            .iter()
            .map(|c| {
                // timestamps as epoch ms (casting "UTC" to text needs chrono-tz)
                let a = b.column_by_name(c).unwrap();
                let a = match a.data_type() {
                    arrow_schema::DataType::Timestamp(..) => {
                        arrow_cast::cast(a, &arrow_schema::DataType::Int64).unwrap()
                    }
                    _ => a.clone(),
                };
                arrow_cast::cast(&a, &arrow_schema::DataType::Utf8).unwrap()
            })
            .collect();
        let op = b.column_by_name("op").map(|c| c.as_string::<i32>().clone());
        for i in 0..b.num_rows() {
            let key: Vec<String> = arrays
                .iter()
                .map(|a| {
                    if a.is_null(i) {
                        "null".to_string()
                    } else {
                        a.as_string::<i32>().value(i).to_string()
                    }
                })
                .collect();
            let key = key.join("|");
            if op.as_ref().is_some_and(|o| o.value(i) == "delete") {
                let at = rows
                    .iter()
                    .position(|r| *r == key)
                    .expect("delete of an inserted row");
                rows.remove(at);
            } else {
                rows.push(key);
            }
        }
    }
    rows.sort();
    rows
}

/// `key_by` followed by an `aggregates` step without a window: a running
/// aggregate per key; both modes through the CLI, upserted by key, equal a
/// brute-force group-by of the input.
#[test]
fn aggregates_without_window_upsert_to_the_group_by_in_both_modes() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    let batches = weir::workloads::vehicles::generate_obd(7, 40, 5, 300);
    weir::workloads::vehicles::write_parquet_dir(&data, &batches, 2, 500).unwrap();
    let job_path = dir.path().join("totals.toml");
    std::fs::write(
        &job_path,
        format!(
            r#"
[source]
path = "{}"

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
aggregates = [{{ fn = "count", as = "readings" }}, {{ fn = "max", column = "speed", as = "top" }}]

[sink]
path = "out"
"#,
            data.display()
        ),
    )
    .unwrap();
    // oracle: per vehicle, count and max speed of every reading
    let mut want: std::collections::BTreeMap<i64, (i64, u64)> = Default::default();
    for b in &batches {
        let v = b.column(0).as_primitive::<Int64Type>();
        let s = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let e = want.entry(v.value(i)).or_insert((0, f64::MIN.to_bits()));
            e.0 += 1;
            e.1 = f64::from_bits(e.1).max(s.value(i)).to_bits();
        }
    }
    for mode in ["batch", "pipelined"] {
        let dest = dir.path().join(format!("totals-{mode}"));
        run_cli(&job_path, mode, &dest);
        let mut got: std::collections::BTreeMap<i64, (i64, u64)> = Default::default();
        // part files hold the changelog in order per key (one subtask per key)
        for entry in std::fs::read_dir(&dest).unwrap() {
            for b in read_parquet(&entry.unwrap().path()) {
                let v = b
                    .column_by_name("vehicle_id")
                    .unwrap()
                    .as_primitive::<Int64Type>();
                let n = b
                    .column_by_name("readings")
                    .unwrap()
                    .as_primitive::<Int64Type>();
                let top = b
                    .column_by_name("top")
                    .unwrap()
                    .as_primitive::<Float64Type>();
                for i in 0..b.num_rows() {
                    let e = got.entry(v.value(i)).or_insert((0, 0));
                    // counts only grow: the largest is the latest
                    if n.value(i) >= e.0 {
                        *e = (n.value(i), top.value(i).to_bits());
                    }
                }
            }
        }
        assert_eq!(got, want, "{mode}");
    }
}

/// `weir run JOB --mode MODE --parallelism 2 --output OUT`, which must succeed.
fn run_cli(job: &Path, mode: &str, out: &Path) {
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(job)
        .args(["--mode", mode, "--parallelism", "2", "--output"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{mode}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `[source] columns` projects a Hive-partitioned glob: the output has
/// exactly those columns, with the folder's value in `date`.
#[test]
fn source_columns_project_a_partitioned_glob() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMillisecondType};
    let dir = tempfile::tempdir().unwrap();
    let batches = weir::workloads::vehicles::generate_obd(5, 20, 3, 100);
    let (first, second) = batches.split_at(batches.len() / 2);
    let mut want = Vec::new();
    for (date, part) in [("2026-11-01", first), ("2026-11-02", second)] {
        let folder = dir.path().join(format!("obd/date={date}"));
        weir::workloads::vehicles::write_parquet_dir(&folder, part, 1, 1000).unwrap();
        for b in part {
            let v = b.column(0).as_primitive::<Int64Type>();
            let t = b.column(1).as_primitive::<TimestampMillisecondType>();
            for i in 0..b.num_rows() {
                want.push((t.value(i), v.value(i), date.to_string()));
            }
        }
    }
    let glob = dir.path().join("obd/date=*/*.parquet");
    let job = |columns: &str| {
        let path = dir.path().join("job.toml");
        std::fs::write(
            &path,
            format!(
                "[source]\npath = \"{}\"\ntime_column = \"event_time\"\nwatermark_delay = \"600s\"\ncolumns = {columns}\n",
                glob.display()
            ),
        )
        .unwrap();
        path
    };
    let out = dir.path().join("out.parquet");
    run_cli(
        &job(r#"["event_time", "vehicle_id", "date"]"#),
        "batch",
        &out,
    );
    let got_batches = read_parquet(&out);
    let names: Vec<String> = got_batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["event_time", "vehicle_id", "date"]);
    let mut got = Vec::new();
    for b in &got_batches {
        let t = b.column(0).as_primitive::<TimestampMillisecondType>();
        let v = b.column(1).as_primitive::<Int64Type>();
        let d = b.column(2).as_string::<i32>();
        for i in 0..b.num_rows() {
            got.push((t.value(i), v.value(i), d.value(i).to_string()));
        }
    }
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let bad = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(job(r#"["event_time", "rpm"]"#))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("columns") && stderr.contains("rpm"),
        "{stderr}"
    );
}

/// A job file's `filter` and `with_column` speak SQL's expression grammar:
/// `CASE`, `IN`, `BETWEEN`, `LIKE` and functions give the rows of an oracle
/// computed here, in both modes.
#[test]
fn job_file_expressions_are_sql_expressions_in_both_modes() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
    let dir = tempfile::tempdir().unwrap();
    let batches = weir::workloads::vehicles::generate_obd(20, 30, 3, 100);
    let data = dir.path().join("obd");
    weir::workloads::vehicles::write_parquet_dir(&data, &batches, 2, 1000).unwrap();
    let mut want = Vec::new();
    for b in &batches {
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
            let (v, t, s) = (v.value(i), t.value(i), s.value(i));
            let name = format!("car-{v}");
            let listed = [1, 3, 5, 7, 11].contains(&v) || (15..=17).contains(&v);
            if !listed || !name.ends_with(['1', '5', '7']) || v == 17 {
                continue;
            }
            let band = if s >= 80.0 { "FAST" } else { "slow" };
            let minute = t.div_euclid(60_000) * 60_000;
            want.push(format!(
                "{v} {t} {band} {minute} {:?}",
                (s * 10.0).round() / 10.0
            ));
        }
    }
    want.sort();
    assert!(want.len() > 50);
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[source]\npath = {:?}\ntime_column = \"event_time\"\nwatermark_delay = \"10m\"\n\n\
             [[steps]]\nfilter = \"(vehicle_id IN (1, 3, 5, 7, 11) OR vehicle_id BETWEEN 15 AND 17) \
             AND REGEXP(CONCAT('car-', CAST(vehicle_id AS STRING)), '[157]$') \
             AND CAST(vehicle_id AS STRING) NOT LIKE '_7'\"\n",
            data.display().to_string()
        )
            + "\n[[steps]]\nwith_column = { name = \"band\", expr = \"CASE WHEN speed >= 80 THEN upper('fast') ELSE 'slow' END\" }\n\n\
               [[steps]]\nwith_column = { name = \"minute\", expr = \"FLOOR(event_time TO MINUTE)\" }\n\n\
               [[steps]]\nwith_column = { name = \"speed1\", expr = \"ROUND(speed, 1)\" }\n\n\
               [[steps]]\nselect = [\"vehicle_id\", \"event_time\", \"band\", \"minute\", \"speed1\"]\n",
    )
    .unwrap();
    for mode in ["batch", "pipelined"] {
        let out = dir.path().join(format!("{mode}.parquet"));
        run_cli(&job, mode, &out);
        let mut got = Vec::new();
        for b in read_parquet(&out) {
            let v = b.column(0).as_primitive::<Int64Type>();
            let t = b.column(1).as_primitive::<TimestampMillisecondType>();
            let band = b.column(2).as_string::<i32>();
            let m = b.column(3).as_primitive::<TimestampMillisecondType>();
            let s = b.column(4).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                got.push(format!(
                    "{} {} {} {} {:?}",
                    v.value(i),
                    t.value(i),
                    band.value(i),
                    m.value(i),
                    s.value(i)
                ));
            }
        }
        got.sort();
        assert_eq!(got, want, "{mode}");
    }
}

/// `sql = """…"""` gives a job file's whole job in SQL: the rows equal the
/// same script run by `weir sql` and an oracle, in both modes; mixing it
/// with `[source]`, replay flags or `SET` is refused by name.
#[test]
fn a_job_file_can_hold_its_job_as_sql() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    let dir = tempfile::tempdir().unwrap();
    let batches = weir::workloads::vehicles::generate_obd(12, 40, 3, 100);
    let data = dir.path().join("obd");
    weir::workloads::vehicles::write_parquet_dir(&data, &batches, 2, 1000).unwrap();
    // relative paths in the SQL are relative to the job file, as in [source]
    let script = "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
                  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n  \
                  WITH ('connector' = 'filesystem', 'path' = 'obd', 'format' = 'parquet');\n\
                  CREATE TABLE out (vehicle_id BIGINT, top DOUBLE, n BIGINT)\n  \
                  WITH ('connector' = 'filesystem', 'path' = 'never-written', 'format' = 'parquet');\n\
                  INSERT INTO out SELECT vehicle_id, MAX(speed) AS top, COUNT(*) AS n\n\
                  FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' HOUR))\n\
                  GROUP BY window_start, window_end, vehicle_id;";
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!("name = \"sql-job\"\nsql = \"\"\"\n{script}\n\"\"\"\n"),
    )
    .unwrap();
    let mut oracle: std::collections::BTreeMap<i64, (f64, i64)> = Default::default();
    for b in &batches {
        let v = b
            .column_by_name("vehicle_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let s = b
            .column_by_name("speed")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let e = oracle.entry(v.value(i)).or_insert((f64::MIN, 0));
            e.0 = e.0.max(s.value(i));
            e.1 += 1;
        }
    }
    let mut want: Vec<String> = oracle
        .iter()
        .map(|(v, (top, n))| format!("{v} {top:?} {n}"))
        .collect();
    want.sort();
    let read = |out: &Path| {
        let mut got = Vec::new();
        for entry in std::fs::read_dir(out).unwrap() {
            for b in read_parquet(&entry.unwrap().path()) {
                let v = b.column(0).as_primitive::<Int64Type>();
                let t = b.column(1).as_primitive::<Float64Type>();
                let n = b.column(2).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    got.push(format!("{} {:?} {}", v.value(i), t.value(i), n.value(i)));
                }
            }
        }
        got.sort();
        got
    };
    for mode in ["batch", "pipelined"] {
        let out = dir.path().join(format!("{mode}-out"));
        run_cli(&job, mode, &out);
        assert_eq!(read(&out), want, "{mode}");
    }
    let sql_file = dir.path().join("same.sql");
    std::fs::write(&sql_file, script).unwrap();
    let by_sql = dir.path().join("by-sql");
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("sql")
        .arg(&sql_file)
        .arg("--output")
        .arg(&by_sql)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read(&by_sql), want, "weir sql, same script");
    assert!(!dir.path().join("never-written").exists());

    let refuse = |text: String, args: &[&str], says: &str| {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&bad)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{says}: {err}");
    };
    refuse(
        format!(
            "sql = \"\"\"{script}\"\"\"\n[source]\npath = \"obd\"\ntime_column = \"event_time\"\n"
        ),
        &[],
        "(source): the job is given in `sql` (line 1)",
    );
    refuse(
        format!("sql = \"\"\"{script}\"\"\"\n"),
        &["--from", "2026-01-01T00:00:00Z"],
        "--from",
    );
    refuse(
        format!("sql = \"\"\"SET 'parallelism.default' = '2';\n{script}\"\"\"\n"),
        &[],
        "SET in a job file's sql",
    );
    refuse(
        "sql = \"\"\"SELECT nothing FROM nowhere\"\"\"\n".to_string(),
        &[],
        "(sql): plan: SQL: line 1, column 21: no table or view `nowhere`",
    );
    refuse("name = \"x\"\n".to_string(), &[], "needs a [source] table");
}
