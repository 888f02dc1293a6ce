//! Partitioned filesystem sinks (`PARTITIONED BY` in SQL, Hive layout
//! `TARGET/k=v/…/part-….EXT`): the rows read back from every partition,
//! with the values its path names, equal the input (an oracle computed
//! here), pipelined and in batch at parallelism 1 and 3; the files omit
//! the partition columns; `_SUCCESS` files follow the commit trigger
//! (checked at a savepoint between partitions, then after the restore,
//! which repeats and loses no row); files weir did not write in a
//! partitioned target are refused by name and left alone; bad
//! declarations are refused by name.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use common::sql::{data, input_rows, obd_table, refused, sql};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The partition directories under `dir` (depth `depth`), by the values
/// their path names (unescaped).
fn partitions(dir: &Path, depth: usize) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut walk = vec![(dir.to_path_buf(), Vec::new())];
    while let Some((d, values)) = walk.pop() {
        if values.len() == depth {
            out.insert(values, d);
            continue;
        }
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') || !p.is_dir() {
                continue;
            }
            let (_, v) = name.split_once('=').expect("k=v directories");
            let mut vs = values.clone();
            vs.push(v.replace("%3A", ":"));
            walk.push((p, vs));
        }
    }
    out
}

/// `HH:mm` of epoch milliseconds (UTC).
fn minute(ms: i64) -> String {
    let m = ms.rem_euclid(86_400_000) / 60_000;
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn obd_sink(out: &Path, with: &str) -> String {
    format!(
        "CREATE TABLE out (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE, \
         bucket STRING, hm STRING) PARTITIONED BY (bucket, hm) WITH ('connector' = \
         'filesystem', 'path' = '{}', 'format' = 'parquet'{with});\n",
        out.display()
    )
}

/// The OBD sample (10 minutes of disorder allowed: no row late) into a
/// table partitioned by (bucket, hm) at `out`, with `with` options.
fn obd_script(data: &Path, out: &Path, with: &str) -> String {
    format!(
        "{}{}{OBD_INSERT}",
        obd_table(data, "'10' MINUTE"),
        obd_sink(out, with)
    )
}

const OBD_INSERT: &str = "INSERT INTO out SELECT vehicle_id, event_time, speed, \
     CAST(vehicle_id % 3 AS VARCHAR), DATE_FORMAT(event_time, 'HH:mm') FROM obd;\n";

#[test]
fn partitions_hold_exactly_their_rows_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let mut want: BTreeMap<Vec<String>, Vec<Vec<String>>> = BTreeMap::new();
    for (v, t, s) in input_rows(&data) {
        want.entry(vec![(v % 3).to_string(), minute(t)])
            .or_default()
            .push(vec![v.to_string(), t.to_string(), format!("{s:?}")]);
    }
    want.values_mut().for_each(|rows| rows.sort());
    assert!(want.len() >= 6, "several partitions: {:?}", want.keys());
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            let out = dir.path().join(format!("out-{mode}-{p}"));
            let text = obd_script(
                &data,
                &out,
                ", 'sink.partition-commit.policy.kind' = 'success-file'",
            );
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            let got = partitions(&out, 2);
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{mode} p={p}"
            );
            for (values, path) in got {
                assert!(path.join("_SUCCESS").is_file(), "{}", path.display());
                let batches = common::read_parquet_parts(&path);
                for b in &batches {
                    let schema = b.schema();
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    assert_eq!(
                        names,
                        ["vehicle_id", "event_time", "speed"],
                        "no partition columns"
                    );
                }
                let mut rows: Vec<Vec<String>> = batches
                    .iter()
                    .flat_map(|b| (0..b.num_rows()).map(|i| common::sql::row(b, i)))
                    .collect();
                rows.sort();
                assert_eq!(rows, want[&values], "{mode} p={p} partition {values:?}");
            }
        }
    }
}

/// Nexmark bids (200 s from 2026-11-01T00:00Z) into `dt=…/hm=…`
/// partitions, committed one minute after the minute's start by the watermark.
fn bids_script(out: &Path) -> String {
    format!(
        "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, \
         url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR, \
         WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND) \
         WITH ('connector' = 'nexmark', 'events' = '200000', 'events-per-second' = '1000');\n\
         CREATE TABLE out (auction BIGINT, price BIGINT, dateTime TIMESTAMP(3), dt STRING, \
         hm STRING) PARTITIONED BY (dt, hm) WITH ('connector' = 'filesystem', 'path' = '{}', \
         'format' = 'parquet', 'sink.partition-commit.trigger' = 'partition-time', \
         'sink.partition-commit.delay' = '1 min', \
         'sink.partition-commit.policy.kind' = 'success-file', \
         'partition.time-extractor.timestamp-pattern' = '$dt $hm:00');\n\
         INSERT INTO out SELECT auction, price, dateTime, DATE_FORMAT(dateTime, 'yyyy-MM-dd'), \
         DATE_FORMAT(dateTime, 'HH:mm') FROM bid;\n",
        out.display()
    )
}

/// (auction, price, dateTime) of every row by its partition's minute.
fn bid_rows(out: &Path) -> BTreeMap<String, Vec<(i64, i64, i64)>> {
    let mut all = BTreeMap::new();
    for (values, path) in partitions(out, 2) {
        assert_eq!(values[0], "2026-11-01");
        let mut rows = Vec::new();
        for b in common::read_parquet_parts(&path) {
            let col = |n: &str| -> Vec<i64> {
                let c = b.column_by_name(n).unwrap();
                match c.data_type() {
                    arrow_schema::DataType::Int64 => {
                        c.as_primitive::<Int64Type>().values().to_vec()
                    }
                    _ => c
                        .as_primitive::<arrow_array::types::TimestampMillisecondType>()
                        .values()
                        .to_vec(),
                }
            };
            let (a, p, t) = (col("auction"), col("price"), col("dateTime"));
            rows.extend((0..a.len()).map(|i| (a[i], p[i], t[i])));
        }
        rows.sort();
        all.insert(values[1].clone(), rows);
    }
    all
}

#[test]
fn partition_time_commits_follow_the_watermark_across_a_savepoint() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    // the oracle: one uninterrupted run without checkpoints
    let reference = dir.path().join("reference");
    sql(dir.path(), &bids_script(&reference), &["--mode", "batch"]);
    let want = bid_rows(&reference);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        ["00:00", "00:01", "00:02", "00:03"]
    );
    let n: usize = want.values().map(Vec::len).sum();
    assert!(n > 150_000, "{n} bids");
    let out = dir.path().join("out");
    let ck_arg = ck.to_str().unwrap();
    // stop at 00:02:30: the minutes 00:00 and 00:01 are complete (their
    // time + 1 min is behind the watermark), 00:02 is not
    sql(
        dir.path(),
        &bids_script(&out),
        &[
            "--checkpoint-dir",
            ck_arg,
            "--parallelism",
            "2",
            "--savepoint-at",
            "2026-11-01T00:02:30Z",
        ],
    );
    let at_savepoint = partitions(&out, 2);
    let committed: Vec<&str> = at_savepoint
        .iter()
        .filter(|(_, p)| p.join("_SUCCESS").is_file())
        .map(|(v, _)| v[1].as_str())
        .collect();
    assert_eq!(committed, ["00:00", "00:01"]);
    // weir status names the partition not committed yet
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["status", out.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!(
            "partitions: {} (2 committed with _SUCCESS)",
            at_savepoint.len()
        )) && text.contains("not committed: dt=2026-11-01/hm=00%3A02"),
        "{text}"
    );
    let got = bid_rows(&out);
    for minute in ["00:00", "00:01"] {
        assert!(
            got[minute] == want[minute],
            "{minute}: a committed partition is whole"
        );
    }
    assert!(got["00:02"].len() < want["00:02"].len());
    // the restore finishes the job: every partition whole and committed once
    sql(
        dir.path(),
        &bids_script(&out),
        &["--checkpoint-dir", ck_arg, "--parallelism", "2"],
    );
    let done = partitions(&out, 2);
    assert!(done.values().all(|p| p.join("_SUCCESS").is_file()));
    let got = bid_rows(&out);
    for (minute, rows) in &want {
        assert!(
            got[minute] == *rows,
            "{minute}: {} rows, want {} (no row lost or repeated)",
            got[minute].len(),
            rows.len()
        );
    }
    assert_eq!(got.len(), want.len());
    // killed after the final checkpoint, before its _SUCCESS files: the
    // next run finds the job finished and commits every partition
    for p in done.values() {
        std::fs::remove_file(p.join("_SUCCESS")).unwrap();
    }
    sql(
        dir.path(),
        &bids_script(&out),
        &["--checkpoint-dir", ck_arg, "--parallelism", "2"],
    );
    assert!(partitions(&out, 2)
        .values()
        .all(|p| p.join("_SUCCESS").is_file()));
    assert_eq!(bid_rows(&out), want, "and writes nothing again");
}

#[test]
fn a_partitioned_table_reads_back_what_it_wrote_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let table = dir.path().join("table");
    // bucket values look like integers: read back as the declared STRING
    let text = obd_script(&data, &table, "");
    sql(dir.path(), &text, &["--mode", "batch"]);
    let mut want: Vec<Vec<String>> = input_rows(&data)
        .into_iter()
        .map(|(v, t, s)| {
            vec![
                v.to_string(),
                t.to_string(),
                format!("{s:?}"),
                (v % 3).to_string(),
                minute(t),
            ]
        })
        .collect();
    want.sort();
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            let out = dir.path().join(format!("back-{mode}-{p}"));
            let read = format!(
                "CREATE TABLE t (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE, \
                 bucket STRING, hm STRING, WATERMARK FOR event_time AS event_time - INTERVAL \
                 '10' MINUTE) PARTITIONED BY (bucket, hm) WITH ('connector' = 'filesystem', \
                 'path' = '{}', 'format' = 'parquet');\n\
                 CREATE TABLE o (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE, \
                 bucket STRING, hm STRING) WITH ('connector' = 'filesystem', 'path' = '{}', \
                 'format' = 'parquet');\nINSERT INTO o SELECT * FROM t;\n",
                table.display(),
                out.display()
            );
            sql(dir.path(), &read, &["--mode", mode, "--parallelism", p]);
            assert_eq!(common::sql::rows(&out), want, "{mode} p={p}");
        }
    }
}

#[test]
fn files_weir_did_not_write_in_a_partitioned_target_are_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("out");
    let text = obd_script(&data, &out, "");
    sql(dir.path(), &text, &[]);
    let first = partitions(&out, 2);
    let (_, some) = first.iter().next().unwrap();
    assert!(
        !some.join("_SUCCESS").exists(),
        "no commit policy, no _SUCCESS"
    );
    // a note beside weir's parts in a partition, then a folder at the top
    let note = some.join("notes.txt");
    std::fs::write(&note, "mine").unwrap();
    for args in [&[][..], &["--checkpoint-dir", "ck"][..]] {
        let file = dir.path().join("again.sql");
        std::fs::write(&file, &text).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .current_dir(dir.path())
            .arg("sql")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("notes.txt"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&note).unwrap(), "mine");
        assert_eq!(
            partitions(&out, 2).len(),
            first.len(),
            "the output is untouched"
        );
    }
    std::fs::remove_file(&note).unwrap();
    // a rerun replaces the partitions as a whole: only bucket 0 now
    let only_zero = text.replace("FROM obd;", "FROM obd WHERE vehicle_id % 3 = 0;");
    sql(dir.path(), &only_zero, &[]);
    let again = partitions(&out, 2);
    assert!(
        !again.is_empty() && again.keys().all(|v| v[0] == "0"),
        "{again:?}"
    );
}

#[test]
fn a_job_file_sink_partitions_as_the_sql_table_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let sql_out = dir.path().join("sql-out");
    let text = obd_script(
        &data,
        &sql_out,
        ", 'sink.partition-commit.policy.kind' = 'success-file', \
             'sink.partition-commit.trigger' = 'partition-time', \
             'partition.time-extractor.timestamp-pattern' = '2026-11-01 $hm:00', \
             'sink.partition-commit.delay' = '1 min'",
    );
    sql(dir.path(), &text, &["--mode", "batch"]);
    let want: BTreeMap<Vec<String>, Vec<Vec<String>>> = partitions(&sql_out, 2)
        .into_iter()
        .map(|(v, p)| (v, rows_in(&p)))
        .collect();
    assert!(want.len() >= 6);
    let job = |out: &Path, keys: &str| {
        format!(
            "name = \"partitioned\"\n[source]\ntype = \"parquet\"\npath = \"{}\"\n\
             time_column = \"event_time\"\nwatermark_delay = \"10m\"\n\
             [[steps]]\nwith_column = {{ name = \"bucket\", expr = \"CAST(vehicle_id % 3 AS VARCHAR)\" }}\n\
             [[steps]]\nwith_column = {{ name = \"hm\", expr = \"DATE_FORMAT(event_time, 'HH:mm')\" }}\n\
             [sink]\ntype = \"parquet\"\npath = \"{}\"\n{keys}",
            data.display(),
            out.display()
        )
    };
    let keys = "partition_by = [\"bucket\", \"hm\"]\npartition_commit = \"partition-time\"\n\
                partition_time_pattern = \"2026-11-01 $hm:00\"\npartition_commit_delay = \"1m\"\n";
    for mode in ["batch", "pipelined"] {
        let out = dir.path().join(format!("job-{mode}"));
        let file = dir.path().join("job.toml");
        std::fs::write(&file, job(&out, keys)).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "run",
                file.to_str().unwrap(),
                "--mode",
                mode,
                "--parallelism",
                "3",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = partitions(&out, 2);
        assert!(got.values().all(|p| p.join("_SUCCESS").is_file()), "{mode}");
        let got: BTreeMap<Vec<String>, Vec<Vec<String>>> =
            got.into_iter().map(|(v, p)| (v, rows_in(&p))).collect();
        assert_eq!(got, want, "{mode}");
    }
    // a commit key without partition_by, and an unknown trigger, are named
    let file = dir.path().join("bad.toml");
    for (keys, says) in [
        ("partition_commit = \"process-time\"\n", "partition_commit"),
        (
            "partition_by = [\"hm\"]\npartition_commit = \"process-time\"\n\
             partition_time_pattern = \"$hm\"\n",
            "is for partition_commit = \"partition-time\"",
        ),
        (
            "partition_by = [\"hm\"]\npartition_commit = \"soon\"\n",
            "`soon`: use \"partition-time\" or \"process-time\"",
        ),
    ] {
        std::fs::write(&file, job(&dir.path().join("bad-out"), keys)).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", file.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{keys}: {err}");
        assert!(!dir.path().join("bad-out").exists());
    }
}

/// The rows of the Parquet parts of one partition directory, sorted.
fn rows_in(dir: &Path) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = common::read_parquet_parts(dir)
        .iter()
        .flat_map(|b| {
            (0..b.num_rows())
                .map(|i| common::sql::row(b, i))
                .collect::<Vec<_>>()
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn bad_partitioned_tables_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("out");
    let source = obd_table(&data, "'10' MINUTE");
    let sink = |partitioned: &str, with: &str| {
        format!(
            "{source}CREATE TABLE out (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE, \
             bucket STRING, hm STRING) {partitioned} WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'parquet'{with});\n{OBD_INSERT}",
            out.display()
        )
    };
    let by = "PARTITIONED BY (bucket, hm)";
    for (text, says) in [
        (
            sink("PARTITIONED BY (bucket, day)", ""),
            "PARTITIONED BY `day`: table `out` has no such column",
        ),
        (
            sink(
                by,
                ", 'sink.partition-commit.policy.kind' = 'metastore,success-file'",
            ),
            "'sink.partition-commit.policy.kind' = 'metastore' is not supported",
        ),
        (
            sink(by, ", 'sink.partition-commit.trigger' = 'partition-time'"),
            "without 'sink.partition-commit.policy.kind' commits nothing",
        ),
        (
            sink("", ", 'sink.partition-commit.policy.kind' = 'success-file'"),
            "it needs PARTITIONED BY",
        ),
        (
            sink(
                by,
                ", 'sink.partition-commit.policy.kind' = 'success-file', \
                 'sink.partition-commit.trigger' = 'partition-time', \
                 'partition.time-extractor.timestamp-pattern' = '$day $hm:00'",
            ),
            "`$day` is not a partition column",
        ),
        (
            sink(
                by,
                ", 'sink.partition-commit.policy.kind' = 'success-file', \
                 'sink.partition-commit.trigger' = 'partition-time', \
                 'partition.time-extractor.timestamp-pattern' = '$hm'",
            ),
            "'$hm' gives `00:00`, which is not a time",
        ),
        (
            sink("", ", 'sink.rolling-policy.file-size' = 'huge'"),
            "'sink.rolling-policy.file-size' = 'huge' is not a size",
        ),
        (
            sink(by, ", 'sink.partition-commit.delay' = 'soon'"),
            "'sink.partition-commit.delay' = 'soon' is not a duration",
        ),
        (
            sink(by, "").replace(&format!("'{}'", out.display()), "'hdfs://nn/out'"),
            "the hdfs:// file system is not supported",
        ),
        (
            sink(by, "").replace(
                &format!("'{}'", out.display()),
                &format!("'{}.parquet'", out.display()),
            ),
            "a partitioned sink writes a directory",
        ),
        (
            sink(by, "")
                .replace("'format' = 'parquet'", "'format' = 'csv'")
                .replace(OBD_INSERT, "INSERT INTO out SELECT * FROM out;\n"),
            "weir reads k=v/… partitions of Parquet files, not of csv",
        ),
    ] {
        refused(dir.path(), &text, says);
        assert!(!out.exists(), "a refused script wrote {}", out.display());
    }
}
