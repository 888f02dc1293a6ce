//! CSV sinks: `'format' = 'csv'` in SQL, `type = "csv"` in a job file and
//! `Stream::sink_csv` write a header line and one line per row (nulls as
//! empty fields); read back by a plain line split, the rows equal an
//! oracle computed from the input, pipelined and in batch at parallelism 1
//! and 3 (a directory of part files) and as one `.csv` file. Nested columns
//! and a path naming another format are refused by name.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::sql::{data, input_rows, obd_table, sql};

/// The data lines of every CSV file under `path` (a file, or a directory
/// of part files), each split at commas; every file starts with `header`.
fn csv_lines(path: &Path, header: &str) -> Vec<Vec<String>> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut f: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        f.sort();
        f
    } else {
        vec![path.to_path_buf()]
    };
    assert!(!files.is_empty(), "{} holds CSV files", path.display());
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(header), "{}: header", f.display());
        out.extend(lines.map(|l| l.split(',').map(str::to_string).collect()));
    }
    out
}

/// (vehicle, time, speed as written, fast) → comparable text: the speed
/// parsed back to its bits (the writer prints the shortest exact form).
fn normalized(rows: Vec<Vec<String>>) -> Vec<(i64, i64, u64, String)> {
    let mut out: Vec<(i64, i64, u64, String)> = rows
        .into_iter()
        .map(|r| {
            assert_eq!(r.len(), 4, "{r:?}");
            (
                r[0].parse().unwrap(),
                r[1].parse().unwrap(),
                r[2].parse::<f64>().unwrap().to_bits(),
                match r[3].as_str() {
                    "" => "null".to_string(),
                    s => format!("{:?}", s.parse::<f64>().unwrap()),
                },
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn csv_from_sql_and_job_files_equals_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let mut want: Vec<(i64, i64, u64, String)> = input_rows(&data)
        .into_iter()
        .filter(|r| r.2 > 60.0)
        .map(|(v, t, s)| {
            let fast = if s > 100.0 {
                format!("{s:?}")
            } else {
                "null".into()
            };
            (v, t, s.to_bits(), fast)
        })
        .collect();
    want.sort();
    assert!(want.iter().any(|r| r.3 == "null") && want.iter().any(|r| r.3 != "null"));
    let header = "vehicle_id,t,speed,fast";
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            let out = dir.path().join(format!("sql-{mode}-{p}"));
            let text = format!(
                "{}CREATE TABLE out (vehicle_id BIGINT, t BIGINT, speed DOUBLE, fast DOUBLE) \
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
                 INSERT INTO out SELECT vehicle_id, CAST(event_time AS BIGINT), speed, \
                 CASE WHEN speed > 100 THEN speed END FROM obd WHERE speed > 60;",
                obd_table(&data, "'10' MINUTE"),
                out.display()
            );
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            assert_eq!(
                normalized(csv_lines(&out, header)),
                want,
                "sql {mode} p={p}"
            );
            // run again: the directory of CSV parts is weir's to replace
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            assert_eq!(
                normalized(csv_lines(&out, header)),
                want,
                "rerun {mode} p={p}"
            );
        }
    }
    // a job file writing one .csv file
    let file = dir.path().join("one.csv");
    let job = dir.path().join("csv.toml");
    std::fs::write(
        &job,
        format!(
            "[source]\npath = \"{}\"\n\
             [[steps]]\nfilter = \"speed > 60\"\n\
             [[steps]]\nselect = [\"vehicle_id\", \"event_time\", \"speed\"]\n\
             [[steps]]\nwith_column = {{ name = \"t\", expr = \"CAST(event_time AS BIGINT)\" }}\n\
             [[steps]]\nwith_column = {{ name = \"fast\", expr = \"CASE WHEN speed > 100 THEN speed END\" }}\n\
             [[steps]]\nselect = [\"vehicle_id\", \"t\", \"speed\", \"fast\"]\n\
             [sink]\ntype = \"csv\"\npath = \"{}\"\n",
            data.display(),
            file.display()
        ),
    )
    .unwrap();
    for mode in ["batch", "pipelined"] {
        std::fs::remove_file(&file).ok();
        let o = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run"])
            .arg(&job)
            .args(["--mode", mode])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(file.is_file(), "one file");
        assert_eq!(
            normalized(csv_lines(&file, header)),
            want,
            "job file {mode}"
        );
    }
}

#[test]
fn what_csv_cannot_hold_is_refused_by_name() {
    use arrow_array::{ListArray, RecordBatch};
    let dir = tempfile::tempdir().unwrap();
    let list =
        ListArray::from_iter_primitive::<arrow_array::types::Int64Type, _, _>(vec![Some(vec![
            Some(1),
            Some(2),
        ])]);
    let batch = RecordBatch::try_from_iter([("xs", Arc::new(list) as _)]).unwrap();
    let job = weir::Job::new();
    let s = job.from_batches(batch.schema(), vec![vec![batch]]).unwrap();
    let err = s
        .sink_csv(dir.path().join("out.csv"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("xs") && err.contains("no CSV form"), "{err}");
    let err = s
        .sink_csv(dir.path().join("out.parquet"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("xs"), "the column is named first: {err}");
    // a path naming another format
    let ints =
        RecordBatch::try_from_iter([("k", Arc::new(arrow_array::Int64Array::from(vec![1])) as _)])
            .unwrap();
    let s = job.from_batches(ints.schema(), vec![vec![ints]]).unwrap();
    let err = s
        .sink_csv(dir.path().join("out.parquet"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("names a parquet file, but the sink writes csv"),
        "{err}"
    );
    assert!(!dir.path().join("out.parquet").exists());
}
