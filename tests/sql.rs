//! `weir sql`: window aggregations (TUMBLE, HOP with WHERE and HAVING) and
//! projections written in Flink SQL give the rows of a brute-force oracle
//! computed here from the input, and exactly the rows of the same job
//! written as a job file, pipelined and in batch, at parallelism 1 and 3;
//! `SET` chooses the mode; mistakes are refused with their line, column
//! and construct.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::RecordBatch;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::sql::{data, exact_sum, in_every_mode, input_rows, obd_table, refused, rows, sql};

#[test]
fn a_tumbling_window_in_sql_equals_the_oracle_and_the_job_file_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    // a 10-minute delay: no row is late, so the oracle needs no lateness rule
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE out (vehicle_id BIGINT, window_start BIGINT, window_end BIGINT, \
             avg_speed DOUBLE, readings BIGINT)\n  WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = 'parquet');\nINSERT INTO out\nSELECT vehicle_id, window_start, window_end, \
             AVG(speed) AS avg_speed, COUNT(*) AS readings\nFROM TABLE(TUMBLE(TABLE obd, \
             DESCRIPTOR(event_time), INTERVAL '1' SECOND))\nGROUP BY window_start, window_end, vehicle_id;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    // the job-file form of the same job
    let job = dir.path().join("job.toml");
    let reference = dir.path().join("reference");
    std::fs::write(
        &job,
        format!(
            "[source]\npath = {:?}\ntime_column = \"event_time\"\nwatermark_delay = \"10m\"\n\n\
             [[steps]]\nkey_by = [\"vehicle_id\"]\n\n[[steps]]\nwindow = {{ kind = \"tumbling\", size = \"1s\" }}\n\
             aggregates = [ {{ fn = \"avg\", column = \"speed\", as = \"avg_speed\" }}, {{ fn = \"count\", as = \"readings\" }} ]\n\n\
             [sink]\ntype = \"parquet\"\npath = {:?}\n",
            data.display().to_string(),
            reference.display().to_string()
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&job)
        .args(["--mode", "batch", "--parallelism", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the job file writes its columns in its own order: compare as maps
    let by_key = |rows: Vec<RecordBatch>| {
        let mut m = BTreeMap::new();
        for b in rows {
            let col = |n: &str| b.column_by_name(n).unwrap().clone();
            let (v, s, e) = (col("vehicle_id"), col("window_start"), col("window_end"));
            let (a, n) = (col("avg_speed"), col("readings"));
            for i in 0..b.num_rows() {
                let key = (
                    v.as_primitive::<Int64Type>().value(i),
                    s.as_primitive::<Int64Type>().value(i),
                    e.as_primitive::<Int64Type>().value(i),
                );
                let value = (
                    a.as_primitive::<Float64Type>().value(i).to_bits(),
                    n.as_primitive::<Int64Type>().value(i),
                );
                assert!(m.insert(key, value).is_none(), "a window twice: {key:?}");
            }
        }
        m
    };
    let want = by_key(common::read_parquet_parts(&reference));
    // the oracle: every (vehicle, second) of the input, its mean and count
    let mut oracle: BTreeMap<(i64, i64), (f64, i64)> = BTreeMap::new();
    for (v, t, s) in input_rows(&data) {
        let w = oracle.entry((v, t.div_euclid(1000) * 1000)).or_default();
        w.0 += s;
        w.1 += 1;
    }
    assert_eq!(
        want.len(),
        oracle.len(),
        "the job file matches the oracle's windows"
    );
    for ((v, start), (sum, n)) in &oracle {
        let (avg, count) = want[&(*v, *start, start + 1000)];
        assert_eq!(count, *n);
        let expected = sum / *n as f64;
        assert!((f64::from_bits(avg) - expected).abs() <= 1e-9 * expected.abs().max(1.0));
    }
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            let out = dir.path().join(format!("sql-{mode}-{p}"));
            sql(
                dir.path(),
                &script(&out),
                &["--mode", mode, "--parallelism", p],
            );
            let got = by_key(common::read_parquet_parts(&out));
            assert_eq!(
                got, want,
                "{mode} p={p}: SQL equals the job file, bit for bit"
            );
        }
    }
}

#[test]
fn hop_with_where_and_having_equals_the_oracle_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    // the first question: max speed per vehicle over 20 s windows
    // sliding every 5 s, only readings above 40, only windows above 70
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE fast (vehicle_id BIGINT, window_end BIGINT, top DOUBLE, n BIGINT)\n  WITH \
             ('connector' = 'parquet', 'path' = '{}');\nINSERT INTO fast\nSELECT vehicle_id, window_end, \
             MAX(speed) AS top, COUNT(speed)\nFROM TABLE(HOP(TABLE obd, DESCRIPTOR(event_time), \
             INTERVAL '5' SECOND, INTERVAL '20' SECOND))\nWHERE speed > 40\nGROUP BY vehicle_id, \
             window_start, window_end\nHAVING MAX(speed) > 70;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut oracle: BTreeMap<(i64, i64), (f64, i64)> = BTreeMap::new();
    for (v, t, s) in input_rows(&data).into_iter().filter(|r| r.2 > 40.0) {
        // the windows [start, start + 20 s) with start a multiple of 5 s that hold t
        let last = t.div_euclid(5000) * 5000;
        for start in (0..4).map(|k| last - k * 5000) {
            let w = oracle.entry((v, start + 20_000)).or_insert((f64::MIN, 0));
            w.0 = w.0.max(s);
            w.1 += 1;
        }
    }
    let mut want: Vec<Vec<String>> = oracle
        .into_iter()
        .filter(|(_, (top, _))| *top > 70.0)
        .map(|((v, end), (top, n))| {
            vec![
                v.to_string(),
                end.to_string(),
                format!("{top:?}"),
                n.to_string(),
            ]
        })
        .collect();
    want.sort();
    assert!(want.len() > 100, "the oracle keeps windows: {}", want.len());
    in_every_mode(dir.path(), "hop", script, &want);
}

#[test]
fn a_projection_with_a_filter_and_set_mode_equals_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("kmh");
    let text = format!(
        "SET 'execution.runtime-mode' = 'batch';\nSET 'parallelism.default' = '3';\n{}\
         CREATE TABLE kmh (vehicle_id BIGINT, t BIGINT, kmh DOUBLE) WITH ('connector' = 'parquet', 'path' = '{}');\n\
         CREATE VIEW quick AS SELECT vehicle_id, event_time, speed FROM obd WHERE speed >= 100 AND NOT (vehicle_id = 7);\n\
         INSERT INTO kmh SELECT vehicle_id, event_time, speed * 3.6 FROM quick;",
        // no row is late at a 10-minute delay (weir drops late rows at the source)
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&sql(dir.path(), &text, &["--json"])).unwrap();
    assert_eq!(metrics["mode"], "batch", "SET chose the mode");
    assert!(metrics["operators"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["parallelism"] == 3));
    let mut want: Vec<Vec<String>> = input_rows(&data)
        .into_iter()
        .filter(|(v, _, s)| *s >= 100.0 && *v != 7)
        .map(|(v, t, s)| vec![v.to_string(), t.to_string(), format!("{:?}", s * 3.6)])
        .collect();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(rows(&out), want);
}

#[test]
fn mistakes_are_refused_with_line_column_and_construct() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let table = obd_table(&data, "'1' SECOND");
    let lines = table.lines().count();
    let next = lines + 1;
    let cases: Vec<(String, String)> = vec![
        (format!("{table}SELECT vehicle, speed FROM obd"), format!("line {next}, column 8: unknown column `vehicle`")),
        (format!("{table}SELECT vehicle_di FROM obd"), "did you mean `vehicle_id`?".into()),
        (format!("{table}SELECT speed FROM obdd"), format!("line {next}, column 19: no table or view `obdd`; did you mean `obd`?")),
        (format!("{table}SELECT speed FROM obd WHERE CAST(speed AS VARCHAR) LIKE '1!%' ESCAPE '!'"), format!("line {next}, column 34: LIKE ANY or LIKE … ESCAPE")),
        (format!("{table}SELECT speed FROM obd ORDER BY speed"), format!("line {next}, column 32: ORDER BY without LIMIT sorts rows that never end")),
        (format!("{table}SELECT a.speed FROM obd a JOIN obd b ON a.speed > b.speed"), "a join needs at least one key equality".into()),
        (format!("{table}SELECT speed FROM obd a JOIN obd b ON a.vehicle_id = b.vehicle_id"), "`speed` is ambiguous: qualify it (`a.speed` or `b.speed`)".into()),
        (
            format!("{table}SELECT vehicle_id, SUM(MAX(speed)) FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, vehicle_id"),
            format!("line {next}, column 24: an aggregate inside an aggregate"),
        ),
        (format!("{table}SELECT COUNT(*) FROM obd"), format!("line {next}, column 1: an aggregate over the whole stream needs GROUP BY")),
        (
            format!("{table}SELECT COUNT(*) FROM TABLE(SESSION(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, vehicle_id"),
            "SESSION without PARTITION BY".into(),
        ),
        (
            format!("{table}SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE obd PARTITION BY vehicle_id, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) GROUP BY window_start, window_end"),
            "TUMBLE takes no PARTITION BY".into(),
        ),
        (format!("{table}SELECT window_start, COUNT(*) FROM obd GROUP BY window_start"), "window_start and window_end come from a window table function".into()),
        (
            format!("{table}SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(speed), INTERVAL '1' SECOND)) GROUP BY window_start, window_end"),
            "DESCRIPTOR(speed): the table's event time is `event_time`".into(),
        ),
        (
            format!("{table}SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) GROUP BY vehicle_id"),
            "groups by window_start and window_end".into(),
        ),
        (
            "CREATE TABLE t (a BIGINT, WATERMARK FOR b AS b) WITH ('connector' = 'print');".into(),
            "line 1, column 27: WATERMARK FOR `b`: table `t` has no such column".into(),
        ),
        ("CREATE TABLE t (a BIGINT) WITH ('connector' = 'jdbc');\nINSERT INTO t SELECT 1 FROM t".into(), "connector `jdbc` is not supported".into()),
        ("CREATE TABLE t (a BIGINT) WITH ('connector' = 'kafka');\nINSERT INTO t SELECT 1 FROM t".into(), "table `t`: needs WITH ('topic' = …)".into()),
        ("CREATE TABLE t (a BIGINT) WITH ('connector' = 'kafka', 'topic' = 'x', 'properties.bootstrap.servers' = 'h:1', 'scan.bounded.mode' = 'forever');\nINSERT INTO t SELECT 1 FROM t".into(), "'scan.bounded.mode' = 'forever' (latest-offset, unbounded)".into()),
        ("CREATE TABLE t (a BIGINT) WITH ('connector' = 'nexmark', 'table' = 'bids');\nCREATE TABLE o (a BIGINT) WITH ('connector' = 'print');\nINSERT INTO o SELECT a FROM t".into(), "nexmark has the tables person, auction and bid, not `bids`".into()),
        (
            format!("{table}CREATE TABLE o (speed DOUBLE) WITH ('connector' = 'filesystem', 'path' = 'o', 'format' = 'csv', 'sink.parallelism' = '2');\nINSERT INTO o SELECT speed FROM obd"),
            "option `sink.parallelism` is not a csv option (connector, path, format, changelog".into(),
        ),
        (
            format!("{table}CREATE TABLE o (a BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'x');\nINSERT INTO o SELECT vehicle_id FROM obd"),
            "option `print-identifier` is not a print option".into(),
        ),
        ("SET 'pipeline.name' = 'x';".into(), "unknown option `pipeline.name`".into()),
        (format!("{table}SELECT speed FROM obd;\nSELEC 1"), format!("line {}, column 1: Expected: an SQL statement, found: SELEC", next + 1)),
    ];
    for (text, says) in cases {
        let err = refused(dir.path(), &text, &says);
        assert!(err.contains("bad.sql"), "the file is named: {err}");
    }
}

#[test]
fn the_example_script_runs_as_written_over_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("speed_windows");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/speed_windows.sql"
    ))
    .unwrap()
    .replace("../data/obd", data.to_str().unwrap())
    .replace("../out/speed_windows", out.to_str().unwrap());
    sql(dir.path(), &example, &["--parallelism", "2"]);
    // 50 vehicles x 120 one-second windows, less those whose rows were all late
    let n = rows(&out).len();
    assert!(n > 5_900 && n <= 6_000, "{n} windows");
}

#[test]
fn cumulate_equals_the_oracle_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE growing (vehicle_id BIGINT, window_start BIGINT, window_end BIGINT, n BIGINT, \
             top DOUBLE) WITH ('connector' = 'parquet', 'path' = '{}');\nINSERT INTO growing\n\
             SELECT vehicle_id, window_start, window_end, COUNT(*), MAX(speed)\nFROM TABLE(CUMULATE(TABLE obd, \
             DESCRIPTOR(event_time), INTERVAL '5' SECOND, INTERVAL '20' SECOND))\n\
             GROUP BY window_start, window_end, vehicle_id;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    // windows [s, s + 5k s) for k = 1..4, s the 20 s boundary at or before t
    let mut oracle: BTreeMap<(i64, i64, i64), (i64, f64)> = BTreeMap::new();
    for (v, t, s) in input_rows(&data) {
        let start = t.div_euclid(20_000) * 20_000;
        for k in 1..=4 {
            let end = start + k * 5000;
            if t < end {
                let w = oracle.entry((v, start, end)).or_insert((0, f64::MIN));
                w.0 += 1;
                w.1 = w.1.max(s);
            }
        }
    }
    let mut want: Vec<Vec<String>> = oracle
        .into_iter()
        .map(|((v, s, e), (n, top))| {
            vec![
                v.to_string(),
                s.to_string(),
                e.to_string(),
                n.to_string(),
                format!("{top:?}"),
            ]
        })
        .collect();
    want.sort();
    in_every_mode(dir.path(), "cumulate", script, &want);
}

#[test]
fn with_union_all_in_and_between_equal_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("picked");
    let text = format!(
        "{}CREATE TABLE picked (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO picked\nWITH slow AS (SELECT vehicle_id, event_time, speed FROM obd WHERE speed BETWEEN 10 AND 20),\n\
         chosen AS (SELECT * FROM obd WHERE vehicle_id IN (1, 2, 3) AND speed NOT BETWEEN 0 AND 60)\n\
         SELECT * FROM slow UNION ALL SELECT vehicle_id, event_time, speed FROM chosen;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    for mode in ["batch", "pipelined"] {
        std::fs::remove_dir_all(&out).ok();
        sql(dir.path(), &text, &["--mode", mode, "--parallelism", "3"]);
        let mut want: Vec<Vec<String>> = input_rows(&data)
            .into_iter()
            .filter(|(v, _, s)| {
                (10.0..=20.0).contains(s) || ([1, 2, 3].contains(v) && !(0.0..=60.0).contains(s))
            })
            .flat_map(|(v, t, s)| {
                // a row in both branches comes out twice (UNION ALL)
                let both = (10.0..=20.0).contains(&s)
                    && [1, 2, 3].contains(&v)
                    && !(0.0..=60.0).contains(&s);
                let row = vec![v.to_string(), t.to_string(), format!("{s:?}")];
                if both {
                    vec![row.clone(), row]
                } else {
                    vec![row]
                }
            })
            .collect();
        want.sort();
        let chosen = input_rows(&data)
            .iter()
            .filter(|(v, _, s)| [1, 2, 3].contains(v) && !(0.0..=60.0).contains(s))
            .count();
        assert!(
            want.len() > chosen && chosen > 10,
            "both branches give rows: {chosen} of {}",
            want.len()
        );
        assert_eq!(rows(&out), want, "{mode}");
    }
}

#[test]
fn a_group_by_without_a_window_is_a_changelog_whose_last_values_are_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("totals");
    let text = format!(
        "{}CREATE TABLE totals (vehicle_id BIGINT, n BIGINT, top DOUBLE, op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO totals SELECT vehicle_id, COUNT(*) AS n, MAX(speed) AS top FROM obd \
         WHERE vehicle_id < 10 GROUP BY vehicle_id HAVING COUNT(*) > 0;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let mut oracle: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    for (v, _, s) in input_rows(&data).into_iter().filter(|r| r.0 < 10) {
        let e = oracle.entry(v).or_insert((0, f64::MIN));
        e.0 += 1;
        e.1 = e.1.max(s);
    }
    assert_eq!(oracle.len(), 10);
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            std::fs::remove_dir_all(&out).ok();
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            // each key's rows come from one subtask's file, in order: the last is current
            let mut last: BTreeMap<i64, (i64, f64, String)> = BTreeMap::new();
            let mut updates = 0;
            for b in common::read_parquet_parts(&out) {
                let v = b.column(0).as_primitive::<Int64Type>();
                let n = b.column(1).as_primitive::<Int64Type>();
                let top = b.column(2).as_primitive::<Float64Type>();
                let op = b.column(3).as_string::<i32>();
                for i in 0..b.num_rows() {
                    // with HAVING, retractions: a changed key's old row is
                    // deleted, then its new row inserted
                    updates += usize::from(op.value(i) == "delete");
                    if op.value(i) == "delete" {
                        let gone = last.remove(&v.value(i));
                        assert_eq!(gone.map(|g| (g.0, g.1)), Some((n.value(i), top.value(i))));
                    } else {
                        assert_eq!(op.value(i), "insert");
                        let was = last.insert(
                            v.value(i),
                            (n.value(i), top.value(i), op.value(i).to_string()),
                        );
                        assert!(was.is_none(), "an insert of a live key");
                    }
                }
            }
            let got: BTreeMap<i64, (i64, f64)> =
                last.iter().map(|(k, (n, t, _))| (*k, (*n, *t))).collect();
            assert_eq!(got, oracle, "{mode} p={p}");
            if mode == "batch" {
                assert_eq!(updates, 0, "batch emits each key once, at the end");
            } else {
                assert!(updates > 0, "pipelined updates keys as rows arrive");
            }
        }
    }
}

/// Per-vehicle 1 s (sum, count) of `rows`.
fn per_second(rows: &[(i64, i64, f64)]) -> BTreeMap<(i64, i64), (f64, i64)> {
    let mut m: BTreeMap<(i64, i64), (f64, i64)> = BTreeMap::new();
    for (v, t, s) in rows {
        let w = m.entry((*v, t.div_euclid(1000) * 1000)).or_default();
        w.0 += s;
        w.1 += 1;
    }
    m
}

#[test]
fn a_join_of_window_aggregates_equals_the_oracle_in_both_modes() {
    // the seed's job: per-vehicle 1 s averages of two inputs joined on
    // (vehicle, window); here 50 vehicles against 30 of another run
    let dir = tempfile::tempdir().unwrap();
    let left = data(dir.path());
    let right = dir.path().join("other");
    common::generate_obd(&right, 30, 90, 3);
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE other (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
             WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n  WITH ('connector' = 'parquet', 'path' = '{}');\n\
             CREATE TABLE joined (vehicle_id BIGINT, window_end BIGINT, a DOUBLE, b DOUBLE, n BIGINT)\n  \
             WITH ('connector' = 'parquet', 'path' = '{}');\n\
             CREATE VIEW l AS SELECT vehicle_id, window_start, window_end, AVG(speed) AS avg_speed, COUNT(*) AS n\n  \
             FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, vehicle_id;\n\
             CREATE VIEW r AS SELECT vehicle_id, window_start, window_end, AVG(speed) AS avg_speed\n  \
             FROM TABLE(TUMBLE(TABLE other, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, vehicle_id;\n\
             INSERT INTO joined\nSELECT l.vehicle_id, l.window_end, l.avg_speed, r.avg_speed, n\n\
             FROM l JOIN r ON l.vehicle_id = r.vehicle_id AND l.window_start = r.window_start AND l.window_end = r.window_end;",
            obd_table(&left, "'10' MINUTE"),
            right.display(),
            out.display()
        )
    };
    let (a, b) = (
        per_second(&input_rows(&left)),
        per_second(&input_rows(&right)),
    );
    let mut want: Vec<(i64, i64, f64, f64, i64)> = a
        .iter()
        .filter_map(|(k, (sa, na))| {
            let (sb, nb) = b.get(k)?;
            Some((k.0, k.1 + 1000, sa / *na as f64, sb / *nb as f64, *na))
        })
        .collect();
    want.sort_by_key(|x| (x.0, x.1));
    assert!(want.len() > 1000, "{}", want.len());
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            let out = dir.path().join(format!("join-{mode}-{p}"));
            sql(
                dir.path(),
                &script(&out),
                &["--mode", mode, "--parallelism", p],
            );
            let mut got = Vec::new();
            for batch in common::read_parquet_parts(&out) {
                let i64s = |c: usize| batch.column(c).as_primitive::<Int64Type>().clone();
                let f64s = |c: usize| batch.column(c).as_primitive::<Float64Type>().clone();
                let (v, e, x, y, n) = (i64s(0), i64s(1), f64s(2), f64s(3), i64s(4));
                for i in 0..batch.num_rows() {
                    got.push((v.value(i), e.value(i), x.value(i), y.value(i), n.value(i)));
                }
            }
            got.sort_by_key(|x| (x.0, x.1));
            assert_eq!(got.len(), want.len(), "{mode} p={p}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!((g.0, g.1, g.4), (w.0, w.1, w.4), "{mode} p={p}");
                assert!(
                    (g.2 - w.2).abs() < 1e-9 && (g.3 - w.3).abs() < 1e-9,
                    "{mode} p={p}: {g:?} {w:?}"
                );
            }
        }
    }
}

#[test]
fn an_interval_join_equals_the_oracle_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let left = data(dir.path());
    let right = dir.path().join("other");
    common::generate_obd(&right, 10, 60, 2);
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE other (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
             WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n  WITH ('connector' = 'parquet', 'path' = '{}');\n\
             CREATE TABLE pairs (vehicle_id BIGINT, lt TIMESTAMP(3), rt TIMESTAMP(3), ls DOUBLE, rs DOUBLE)\n  \
             WITH ('connector' = 'parquet', 'path' = '{}');\n\
             INSERT INTO pairs\nSELECT o.vehicle_id, o.event_time, p.event_time, o.speed, p.speed\n\
             FROM obd o JOIN other p ON o.vehicle_id = p.vehicle_id\n  \
             AND o.event_time BETWEEN p.event_time - INTERVAL '1' SECOND AND p.event_time + INTERVAL '0.5' SECOND\n\
             WHERE o.speed > 30;",
            obd_table(&left, "'10' MINUTE"),
            right.display(),
            out.display()
        )
    };
    let (l, r) = (input_rows(&left), input_rows(&right));
    let mut want: Vec<Vec<String>> = Vec::new();
    for (lv, lt, ls) in l.iter().filter(|x| x.2 > 30.0) {
        for (rv, rt, rs) in &r {
            if lv == rv && *rt - 1000 <= *lt && *lt <= *rt + 500 {
                want.push(vec![
                    lv.to_string(),
                    lt.to_string(),
                    rt.to_string(),
                    format!("{ls:?}"),
                    format!("{rs:?}"),
                ]);
            }
        }
    }
    want.sort();
    assert!(want.len() > 1000, "{}", want.len());
    in_every_mode(dir.path(), "interval", script, &want);
}

#[test]
fn the_seeds_job_in_sql_gives_exactly_the_rows_of_its_job_file() {
    // the seed's OBD-vs-app join with its real delays (30 s and 9 min, so
    // rows are late), both example files pointed at the same data
    let dir = tempfile::tempdir().unwrap();
    let (obd, app) = (dir.path().join("obd"), dir.path().join("app"));
    use weir::workloads::vehicles::seed::generate_app;
    use weir::workloads::vehicles::{generate_obd, write_parquet_dir};
    write_parquet_dir(&obd, &generate_obd(30, 240, 7, 997), 3, 1000).unwrap();
    write_parquet_dir(&app, &generate_app(30, 240, 7, 389), 2, 1000).unwrap();
    let example = |name: &str| {
        std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .replace("../data/obd", obd.to_str().unwrap())
            .replace("../data/app", app.to_str().unwrap())
    };
    let toml_out = dir.path().join("toml");
    let job = dir.path().join("seed.toml");
    std::fs::write(
        &job,
        example("seed_join.toml").replace("../out/obd_vs_app", toml_out.to_str().unwrap()),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&job)
        .args(["--mode", "batch", "--parallelism", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = rows(&toml_out);
    assert!(want.len() > 5_000, "{}", want.len());
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            let out = dir.path().join(format!("seed-{mode}-{p}"));
            let text =
                example("seed_join.sql").replace("../out/obd_vs_app_sql", out.to_str().unwrap());
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            assert_eq!(
                rows(&out),
                want,
                "{mode} p={p}: the SQL gives the job file's rows, bit for bit"
            );
        }
    }
}

#[test]
fn case_and_coalesce_equal_the_oracle_in_rows_and_inside_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let (rows_out, agg_out) = (dir.path().join("banded"), dir.path().join("fast_share"));
    let text = format!(
        "{}CREATE TABLE banded (vehicle_id BIGINT, event_time TIMESTAMP(3), band STRING, over DOUBLE) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         CREATE TABLE fast_share (vehicle_id BIGINT, window_end BIGINT, fast BIGINT, n BIGINT) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO banded SELECT vehicle_id, event_time,\n  \
         CASE WHEN speed < 30 THEN 'slow' WHEN speed < 90 THEN 'cruise' ELSE 'fast' END,\n  \
         COALESCE(CASE WHEN speed > 100 THEN speed - 100 END, 0.0)\nFROM obd WHERE vehicle_id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);\n\
         INSERT INTO fast_share SELECT vehicle_id, window_end, SUM(CASE vehicle_id % 2 WHEN 0 THEN \
         CASE WHEN speed >= 60 THEN 1 ELSE 0 END ELSE 0 END), COUNT(*)\n\
         FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND))\n\
         GROUP BY window_start, window_end, vehicle_id;",
        obd_table(&data, "'10' MINUTE"),
        rows_out.display(),
        agg_out.display()
    );
    let input = input_rows(&data);
    let mut banded: Vec<Vec<String>> = input
        .iter()
        .filter(|(v, _, _)| (1..=12).contains(v))
        .map(|(v, t, s)| {
            let band = if *s < 30.0 {
                "slow"
            } else if *s < 90.0 {
                "cruise"
            } else {
                "fast"
            };
            let over = if *s > 100.0 { s - 100.0 } else { 0.0 };
            vec![
                v.to_string(),
                t.to_string(),
                band.to_string(),
                format!("{over:?}"),
            ]
        })
        .collect();
    banded.sort();
    let mut share: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for (v, t, s) in &input {
        let w = share
            .entry((*v, t.div_euclid(10_000) * 10_000 + 10_000))
            .or_default();
        w.0 += i64::from(v % 2 == 0 && *s >= 60.0);
        w.1 += 1;
    }
    let mut share: Vec<Vec<String>> = share
        .into_iter()
        .map(|((v, e), (f, n))| vec![v.to_string(), e.to_string(), f.to_string(), n.to_string()])
        .collect();
    share.sort();
    let bands: std::collections::BTreeSet<&str> = banded.iter().map(|r| r[2].as_str()).collect();
    assert!(
        bands.len() >= 2,
        "the rows fall in several bands: {bands:?}"
    );
    for mode in ["batch", "pipelined"] {
        std::fs::remove_dir_all(&rows_out).ok();
        std::fs::remove_dir_all(&agg_out).ok();
        sql(dir.path(), &text, &["--mode", mode, "--parallelism", "3"]);
        assert_eq!(rows(&rows_out), banded, "{mode}");
        assert_eq!(rows(&agg_out), share, "{mode}");
    }
}

#[test]
fn session_windows_partitioned_by_key_equal_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    // only fast readings: gaps between them make sessions
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE bursts (vehicle_id BIGINT, window_start BIGINT, window_end BIGINT, n BIGINT, top DOUBLE) \
             WITH ('connector' = 'parquet', 'path' = '{}');\nINSERT INTO bursts\n\
             SELECT vehicle_id, window_start, window_end, COUNT(*), MAX(speed)\n\
             FROM TABLE(SESSION(TABLE obd PARTITION BY vehicle_id, DESCRIPTOR(event_time), INTERVAL '2' SECOND))\n\
             WHERE speed > 80\nGROUP BY window_start, window_end, vehicle_id;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut by_vehicle: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for (v, t, s) in input_rows(&data).into_iter().filter(|r| r.2 > 80.0) {
        by_vehicle.entry(v).or_default().push((t, s));
    }
    let mut want = Vec::new();
    for (v, mut rows) in by_vehicle {
        rows.sort_by_key(|r| r.0);
        // a row at t spans [t, t + 2 s); spans that overlap or touch are
        // one session (as Flink merges windows: start <= other end)
        let mut cur: Option<(i64, i64, i64, f64)> = None;
        for (t, s) in rows {
            cur = match cur {
                Some((start, end, n, top)) if t <= end => {
                    Some((start, end.max(t + 2000), n + 1, top.max(s)))
                }
                done => {
                    if let Some((start, end, n, top)) = done {
                        want.push(vec![
                            v.to_string(),
                            start.to_string(),
                            end.to_string(),
                            n.to_string(),
                            format!("{top:?}"),
                        ]);
                    }
                    Some((t, t + 2000, 1, s))
                }
            };
        }
        if let Some((start, end, n, top)) = cur {
            want.push(vec![
                v.to_string(),
                start.to_string(),
                end.to_string(),
                n.to_string(),
                format!("{top:?}"),
            ]);
        }
    }
    want.sort();
    assert!(want.len() > 20, "{}", want.len());
    in_every_mode(dir.path(), "session", script, &want);
}

#[test]
fn explain_prints_the_plan_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("never");
    let text = format!(
        "{}CREATE TABLE never (vehicle_id BIGINT, n BIGINT) WITH ('connector' = 'parquet', 'path' = '{}');\n\
         EXPLAIN INSERT INTO never SELECT vehicle_id, COUNT(*) FROM TABLE(TUMBLE(TABLE obd, \
         DESCRIPTOR(event_time), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, vehicle_id;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let printed = sql(dir.path(), &text, &["--parallelism", "2"]);
    assert!(
        printed.starts_with("== EXPLAIN INSERT INTO never"),
        "{printed}"
    );
    for op in ["parquet_source", "window", "parquet_sink"] {
        assert!(printed.contains(op), "{op} in:\n{printed}");
    }
    // the logical plan: each operator with its inputs, columns and, for the
    // window, what it computes; then the physical plan's tasks
    let (logical, physical) = printed.split_once("-- physical plan").expect("both plans");
    assert!(logical.contains("-- logical plan"), "{printed}");
    let window = logical
        .lines()
        .find(|l| l.contains(" window <- "))
        .unwrap_or_else(|| panic!("a window line in:\n{logical}"));
    assert!(
        window.contains("hash([vehicle_id])") || window.contains("vehicle_id"),
        "{window}"
    );
    assert!(
        window.contains("[vehicle_id, window_start, window_end"),
        "{window}"
    );
    assert!(physical.contains("task 0 (parallelism"), "{physical}");
    assert!(
        printed.contains("FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time)"),
        "the statement as written: {printed}"
    );
    assert!(!out.exists(), "EXPLAIN runs nothing");
}

#[test]
fn scalar_functions_in_rows_filters_and_aggregates_equal_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let input = input_rows(&data);
    // string, math and time functions in a projection and its filter
    let projection = |out: &Path| {
        format!(
            "{}CREATE TABLE out (vehicle_id BIGINT, name STRING, hms STRING, minute TIMESTAMP(3), \
             dev DOUBLE, band STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO out\n\
             SELECT vehicle_id,\n  CONCAT('v-', LPAD(CAST(vehicle_id AS STRING), 3, '0')) AS name,\n  \
             DATE_FORMAT(event_time, 'HH:mm:ss') AS hms,\n  FLOOR(event_time TO MINUTE) AS minute,\n  \
             ROUND(ABS(speed - 50), 2) AS dev,\n  \
             CASE WHEN speed >= 100 THEN 'fast' WHEN speed >= 50 THEN 'cruise' ELSE 'slow' END AS band\n\
             FROM obd\nWHERE CAST(vehicle_id AS STRING) LIKE '1%' AND EXTRACT(SECOND FROM event_time) < 30;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut want: Vec<Vec<String>> = input
        .iter()
        .filter(|(v, t, _)| v.to_string().starts_with('1') && t.div_euclid(1000) % 60 < 30)
        .map(|(v, t, s)| {
            let secs = t.div_euclid(1000);
            let hms = format!(
                "{:02}:{:02}:{:02}",
                secs.rem_euclid(86_400) / 3600,
                secs.rem_euclid(3600) / 60,
                secs.rem_euclid(60)
            );
            let dev = ((s - 50.0).abs() * 100.0).round() / 100.0;
            let band = if *s >= 100.0 {
                "fast"
            } else if *s >= 50.0 {
                "cruise"
            } else {
                "slow"
            };
            vec![
                v.to_string(),
                format!("v-{v:03}"),
                hms,
                (t.div_euclid(60_000) * 60_000).to_string(),
                format!("{dev:?}"),
                band.to_string(),
            ]
        })
        .collect();
    want.sort();
    assert!(want.len() > 100, "the filter keeps rows: {}", want.len());
    in_every_mode(dir.path(), "projection", projection, &want);

    // functions inside an aggregate's argument and around its result, and a
    // function of a key in WHERE
    let windowed = |out: &Path| {
        format!(
            "{}CREATE TABLE out (vehicle_id BIGINT, window_start BIGINT, top DOUBLE, spread DOUBLE) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO out\n\
             SELECT vehicle_id, window_start, MAX(FLOOR(speed)) AS top, ROUND(MAX(speed) - MIN(speed), 1) AS spread\n\
             FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND))\n\
             WHERE MOD(vehicle_id, 3) = 0 AND POWER(speed, 2) > 100\n\
             GROUP BY window_start, window_end, vehicle_id;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut by_window: BTreeMap<(i64, i64), (f64, f64, f64)> = BTreeMap::new();
    for (v, t, s) in &input {
        if v % 3 != 0 || s * s <= 100.0 {
            continue;
        }
        let w = by_window
            .entry((*v, t.div_euclid(10_000) * 10_000))
            .or_insert((f64::MIN, f64::MIN, f64::MAX));
        w.0 = w.0.max(s.floor());
        w.1 = w.1.max(*s);
        w.2 = w.2.min(*s);
    }
    let mut want: Vec<Vec<String>> = by_window
        .into_iter()
        .map(|((v, start), (top, max, min))| {
            vec![
                v.to_string(),
                start.to_string(),
                format!("{top:?}"),
                format!("{:?}", ((max - min) * 10.0).round() / 10.0),
            ]
        })
        .collect();
    want.sort();
    assert!(!want.is_empty());
    in_every_mode(dir.path(), "windowed", windowed, &want);
}

#[test]
fn unknown_and_time_dependent_functions_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    for (query, says) in [
        (
            "SELECT UPPR(CAST(vehicle_id AS STRING)) FROM obd",
            "line 7, column 8: unknown function UPPR() (did you mean upper()?)",
        ),
        (
            "SELECT vehicle_id FROM obd WHERE event_time < NOW()",
            "NOW() depends on when the job runs",
        ),
        (
            "SELECT REGEXP_EXTRACT('a', CAST(vehicle_id AS STRING)) FROM obd",
            "the pattern must be a constant",
        ),
        (
            "SELECT DATE_FORMAT(event_time, 'yyyy-QQ') FROM obd",
            "the letter 'Q'",
        ),
        (
            "SELECT SUBSTRING(speed, 1) FROM obd",
            "substring(): argument 1 must be a string, not Float64",
        ),
        (
            "SELECT vehicle_id, ROW_NUMBER() OVER (PARTITION BY vehicle_id ORDER BY speed) AS rn FROM obd",
            "rank in a subquery and bound it outside",
        ),
        (
            "SELECT speed FROM obd FOR SYSTEM_TIME AS OF TIMESTAMP '2026-11-01 00:00:00'",
            "FOR SYSTEM_TIME AS OF outside a join",
        ),
        (
            "SELECT TUMBLE_START(event_time, INTERVAL '1' SECOND) FROM obd",
            "TUMBLE_START() belongs in GROUP BY",
        ),
        (
            "SELECT RANK() OVER (PARTITION BY window_start, window_end ORDER BY speed) FROM obd",
            "RANK() OVER (…) (OVER takes COUNT, SUM, AVG, MIN, MAX and ROW_NUMBER)",
        ),
        (
            "SELECT ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY event_time) AS rn \
             FROM TABLE(SESSION(TABLE obd PARTITION BY vehicle_id, DESCRIPTOR(event_time), INTERVAL '1' SECOND))",
            "ROW_NUMBER() over the rows of a SESSION",
        ),
    ] {
        refused(
            dir.path(),
            &format!("{}{query};", obd_table(&data, "'1' SECOND")),
            says,
        );
    }
}

#[test]
fn distinct_and_filtered_aggregates_equal_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE out (vehicle_id BIGINT, window_start BIGINT, speeds BIGINT, fast_sum DOUBLE, \
             slow BIGINT, top DOUBLE, bucket_sum BIGINT, bucket_avg DOUBLE) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO out\n\
             SELECT vehicle_id, window_start, COUNT(DISTINCT CAST(speed / 10 AS BIGINT)) AS speeds,\n  \
             SUM(speed) FILTER (WHERE speed > 60) AS fast_sum,\n  COUNT(*) FILTER (WHERE speed < 30) AS slow,\n  \
             MAX(DISTINCT speed) AS top, SUM(DISTINCT CAST(speed / 10 AS BIGINT)) AS bucket_sum,\n  \
             AVG(DISTINCT CAST(speed / 10 AS BIGINT)) AS bucket_avg\n\
             FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND))\n\
             GROUP BY window_start, window_end, vehicle_id;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    #[derive(Default)]
    struct W {
        buckets: std::collections::BTreeSet<i64>,
        fast: Vec<f64>,
        slow: i64,
        top: f64,
    }
    let mut by_window: BTreeMap<(i64, i64), W> = BTreeMap::new();
    for (v, t, s) in input_rows(&data) {
        let w = by_window
            .entry((v, t.div_euclid(10_000) * 10_000))
            .or_insert(W {
                top: f64::MIN,
                ..W::default()
            });
        w.buckets.insert((s / 10.0) as i64);
        if s > 60.0 {
            w.fast.push(s);
        }
        w.slow += i64::from(s < 30.0);
        w.top = w.top.max(s);
    }
    let mut saw_null = false;
    let mut want: Vec<Vec<String>> = Vec::new();
    for ((v, start), w) in by_window {
        // the exact sum is order-free, so adding in row order is the oracle
        let fast = if w.fast.is_empty() {
            saw_null = true;
            "null".to_string()
        } else {
            format!("{:?}", exact_sum(&w.fast))
        };
        want.push(vec![
            v.to_string(),
            start.to_string(),
            w.buckets.len().to_string(),
            fast,
            w.slow.to_string(),
            format!("{:?}", w.top),
            w.buckets.iter().sum::<i64>().to_string(),
            format!(
                "{:?}",
                w.buckets.iter().sum::<i64>() as f64 / w.buckets.len() as f64
            ),
        ]);
    }
    want.sort();
    assert!(
        saw_null,
        "some window has no fast reading: SUM of nothing is null"
    );
    in_every_mode(dir.path(), "distinct", script, &want);
}

/// The correctly rounded sum of `xs` (weir's float sums are exact): each
/// reading (two decimals, at least 2^-8 apart from 0) is an integer
/// multiple of 2^-60, so the sum is exact in 128-bit fixed point and
/// rounds once when converted back.
#[test]
fn output_redirects_the_one_result_and_refuses_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let declared = dir.path().join("declared");
    let insert = format!(
        "{}CREATE TABLE out (vehicle_id BIGINT, speed DOUBLE) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'parquet');\nINSERT INTO out SELECT vehicle_id, speed FROM obd WHERE speed > 100;\n",
        obd_table(&data, "'10' MINUTE"),
        declared.display()
    );
    let mut want: Vec<Vec<String>> = input_rows(&data)
        .into_iter()
        .filter(|(_, _, s)| *s > 100.0)
        .map(|(v, _, s)| vec![v.to_string(), format!("{s:?}")])
        .collect();
    want.sort();
    let redirected = dir.path().join("redirected");
    let out = redirected.to_str().unwrap().to_string();
    sql(dir.path(), &insert, &["--output", &out]);
    assert_eq!(rows(&redirected), want);
    assert!(!declared.exists(), "the table's own path is not written");

    // a bare SELECT goes to --output too, as JSON lines by its extension
    let select = format!(
        "{}SELECT vehicle_id, speed FROM obd WHERE speed > 100;",
        obd_table(&data, "'10' MINUTE")
    );
    let json = dir.path().join("rows.jsonl");
    sql(dir.path(), &select, &["--output", json.to_str().unwrap()]);
    let lines = std::fs::read_to_string(&json).unwrap();
    assert_eq!(lines.lines().count(), want.len());

    let two = format!("{insert}INSERT INTO out SELECT vehicle_id, speed FROM obd;");
    std::fs::write(dir.path().join("two.sql"), &two).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("sql")
        .arg(dir.path().join("two.sql"))
        .args(["--output", &out])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "two results into one --output");
    assert!(
        err.contains("--output replaces the script's one result"),
        "{err}"
    );
}

#[test]
fn window_top_n_equals_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let input = input_rows(&data);
    // per vehicle and 10 s window: the mean speed and the reading count
    let mut windows: BTreeMap<(i64, i64), Vec<f64>> = BTreeMap::new();
    for (v, t, s) in &input {
        windows
            .entry((t.div_euclid(10_000) * 10_000, *v))
            .or_default()
            .push(*s);
    }
    let aggregated = "SELECT window_start, window_end, vehicle_id, MOD(vehicle_id, 2) AS parity, \
                      AVG(speed) AS avg_speed, COUNT(*) AS n\n    \
                      FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND))\n    \
                      GROUP BY window_start, window_end, vehicle_id";
    // the three fastest vehicles of each window, per parity of their id
    let fastest = |out: &Path| {
        format!(
            "{}CREATE TABLE out (window_start BIGINT, parity BIGINT, vehicle_id BIGINT, avg_speed DOUBLE, \
             rownum BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO out\nSELECT window_start, parity, vehicle_id, avg_speed, rownum FROM (\n  \
             SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, parity ORDER BY avg_speed DESC) AS rownum\n  \
             FROM ({aggregated})\n) WHERE rownum <= 3;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut want = Vec::new();
    let mut by_window: BTreeMap<(i64, i64), Vec<(f64, i64)>> = BTreeMap::new();
    for ((start, v), speeds) in &windows {
        let mean = exact_sum(speeds) / speeds.len() as f64;
        by_window
            .entry((*start, v % 2))
            .or_default()
            .push((mean, *v));
    }
    for ((start, parity), mut vs) in by_window {
        // best first; a tie goes to the smaller id (the remaining columns decide)
        vs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (rank, (mean, v)) in vs.iter().take(3).enumerate() {
            want.push(vec![
                start.to_string(),
                parity.to_string(),
                v.to_string(),
                format!("{mean:?}"),
                (rank + 1).to_string(),
            ]);
        }
    }
    want.sort();
    in_every_mode(dir.path(), "fastest", fastest, &want);

    // every vehicle has 30 readings per window: ORDER BY n ranks all alike,
    // so the smallest ids (the next column) win, in every mode
    let ties = |out: &Path| {
        format!(
            "{}CREATE TABLE out (window_start BIGINT, vehicle_id BIGINT, rn BIGINT) WITH \
             ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             CREATE VIEW ranked AS SELECT window_start, vehicle_id, ROW_NUMBER() OVER \
             (PARTITION BY window_start, window_end ORDER BY n DESC) AS rn FROM ({aggregated});\n\
             INSERT INTO out SELECT * FROM ranked WHERE rn = 1 OR rn = 2;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut want = Vec::new();
    let starts: std::collections::BTreeSet<i64> = windows.keys().map(|(s, _)| *s).collect();
    for start in starts {
        let mut ids: Vec<i64> = windows
            .keys()
            .filter(|(s, _)| *s == start)
            .map(|(_, v)| *v)
            .collect();
        ids.sort();
        assert!(windows.iter().all(|(_, r)| r.len() == 30), "equal counts");
        for (rank, v) in ids.iter().take(2).enumerate() {
            want.push(vec![
                start.to_string(),
                v.to_string(),
                (rank + 1).to_string(),
            ]);
        }
    }
    want.sort();
    in_every_mode(dir.path(), "ties", ties, &want);
}

#[test]
fn session_windows_over_all_rows_equal_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    // readings of seconds 0-4, 20-24 and 40-44 of each minute only: a 10 s
    // gap closes a session for everyone
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE bursts (window_start BIGINT, window_end BIGINT, n BIGINT, top DOUBLE) \
             WITH ('connector' = 'parquet', 'path' = '{}');\nINSERT INTO bursts\n\
             SELECT window_start, window_end, COUNT(*), MAX(speed)\n\
             FROM TABLE(SESSION(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND))\n\
             WHERE MOD(EXTRACT(SECOND FROM event_time), 20) < 5\nGROUP BY window_start, window_end;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut rows: Vec<(i64, f64)> = input_rows(&data)
        .into_iter()
        .filter(|(_, t, _)| t.div_euclid(1000).rem_euclid(60) % 20 < 5)
        .map(|(_, t, s)| (t, s))
        .collect();
    rows.sort_by_key(|r| r.0);
    let mut want = Vec::new();
    let mut cur: Option<(i64, i64, i64, f64)> = None;
    let mut push = |c: (i64, i64, i64, f64)| {
        want.push(vec![
            c.0.to_string(),
            c.1.to_string(),
            c.2.to_string(),
            format!("{:?}", c.3),
        ])
    };
    for (t, s) in rows {
        cur = match cur {
            Some((start, end, n, top)) if t <= end => {
                Some((start, end.max(t + 10_000), n + 1, top.max(s)))
            }
            done => {
                if let Some(c) = done {
                    push(c);
                }
                Some((t, t + 10_000, 1, s))
            }
        };
    }
    push(cur.expect("rows"));
    want.sort();
    assert_eq!(want.len(), 6, "two minutes, three bursts each");
    in_every_mode(dir.path(), "global-session", script, &want);
}

#[test]
fn over_aggregations_equal_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let mut by_vehicle: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for (v, t, s) in input_rows(&data) {
        by_vehicle.entry(v).or_default().push((t, s));
    }
    for rows in by_vehicle.values_mut() {
        // the order weir gives peers: by content (time, then speed)
        rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    }
    let queries = [
        (
            "range",
            "AVG(speed) OVER w AS a, MAX(speed) OVER w AS b",
            "RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW",
            "a DOUBLE, b DOUBLE",
        ),
        (
            "rows",
            "SUM(speed) OVER w AS a, COUNT(*) OVER w AS b",
            "ROWS BETWEEN 4 PRECEDING AND CURRENT ROW",
            "a DOUBLE, b BIGINT",
        ),
        (
            "unbounded",
            "COUNT(speed) OVER w AS a, MIN(speed * 2) OVER w AS b",
            "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW",
            "a BIGINT, b DOUBLE",
        ),
    ];
    let mut want: BTreeMap<&str, Vec<Vec<String>>> = BTreeMap::new();
    for (v, rows) in &by_vehicle {
        for (i, (t, s)) in rows.iter().enumerate() {
            let range: Vec<f64> = rows
                .iter()
                .filter(|(u, _)| *t - 10_000 <= *u && u <= t)
                .map(|r| r.1)
                .collect();
            let last5: Vec<f64> = rows[i.saturating_sub(4)..=i].iter().map(|r| r.1).collect();
            let upto: Vec<f64> = rows.iter().filter(|(u, _)| u <= t).map(|r| r.1).collect();
            let row =
                |a: String, b: String| vec![v.to_string(), t.to_string(), format!("{s:?}"), a, b];
            want.entry("range").or_default().push(row(
                format!("{:?}", exact_sum(&range) / range.len() as f64),
                format!("{:?}", range.iter().cloned().fold(f64::MIN, f64::max)),
            ));
            want.entry("rows").or_default().push(row(
                format!("{:?}", exact_sum(&last5)),
                last5.len().to_string(),
            ));
            want.entry("unbounded").or_default().push(row(
                upto.len().to_string(),
                format!(
                    "{:?}",
                    upto.iter().map(|x| x * 2.0).fold(f64::MAX, f64::min)
                ),
            ));
        }
    }
    for rows in want.values_mut() {
        rows.sort();
    }
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            let mut text = obd_table(&data, "'10' MINUTE");
            for (name, aggs, frame, cols) in &queries {
                let out = dir.path().join(format!("over-{name}-{mode}-{p}"));
                text.push_str(&format!(
                    "CREATE TABLE {name} (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE, {cols}) \
                     WITH ('connector' = 'parquet', 'path' = '{}');\n\
                     INSERT INTO {name} SELECT vehicle_id, event_time, speed, {} FROM obd;\n",
                    out.display(),
                    aggs.replace(
                        "OVER w",
                        &format!("OVER (PARTITION BY vehicle_id ORDER BY event_time {frame})")
                    )
                ));
            }
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            for (name, ..) in &queries {
                let out = dir.path().join(format!("over-{name}-{mode}-{p}"));
                let got = rows(&out);
                let first = got.iter().zip(&want[name]).position(|(g, w)| g != w);
                assert!(
                    first.is_none() && got.len() == want[name].len(),
                    "{name} {mode} p={p}: {} rows, want {}; first difference: {:?}",
                    got.len(),
                    want[name].len(),
                    first.map(|i| (&got[i], &want[name][i]))
                );
            }
        }
    }
}

#[test]
fn comma_joins_and_an_inner_joins_other_conditions_filter_its_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let input = input_rows(&data);
    // every reading paired with the readings of its vehicle in the 2 s
    // before it (an interval join), kept where the later one is faster
    // (an inner join's other condition), in both spellings
    let mut want = Vec::new();
    for (v, t, s) in &input {
        for (w, u, r) in &input {
            if v == w && *v < 5 && t - 2000 <= *u && u <= t && s > r {
                want.push(vec![v.to_string(), t.to_string(), u.to_string()]);
            }
        }
    }
    want.sort();
    assert!(want.len() > 100);
    for (name, from) in [
        (
            "on",
            "FROM obd a JOIN obd b ON a.vehicle_id = b.vehicle_id AND \
             b.event_time BETWEEN a.event_time - INTERVAL '2' SECOND AND a.event_time AND a.speed > b.speed \
             WHERE a.vehicle_id < 5",
        ),
        (
            "comma",
            "FROM obd a, obd b WHERE a.vehicle_id = b.vehicle_id AND \
             b.event_time BETWEEN a.event_time - INTERVAL '2' SECOND AND a.event_time AND a.speed > b.speed \
             AND a.vehicle_id < 5",
        ),
    ] {
        let script = |out: &Path| {
            format!(
                "{}CREATE TABLE out (vehicle_id BIGINT, t BIGINT, u BIGINT) WITH ('connector' = 'parquet', 'path' = '{}');\n\
                 INSERT INTO out SELECT a.vehicle_id, CAST(a.event_time AS BIGINT), CAST(b.event_time AS BIGINT) {from};",
                obd_table(&data, "'10' MINUTE"),
                out.display()
            )
        };
        in_every_mode(dir.path(), name, script, &want);
    }
}

#[test]
fn legacy_group_windows_equal_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    // HOP(ts, 5 s, 10 s): every reading counts in two windows
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE out (vehicle_id BIGINT, n BIGINT, s BIGINT, e BIGINT, r BIGINT) WITH \
             ('connector' = 'parquet', 'path' = '{}');\nINSERT INTO out\n\
             SELECT o.vehicle_id, COUNT(*), HOP_START(o.event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND),\n  \
             HOP_END(o.event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND), \
             HOP_ROWTIME(o.event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)\n\
             FROM obd o WHERE o.vehicle_id < 10\n\
             GROUP BY HOP(o.event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND), o.vehicle_id;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut counts: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for (v, t, _) in input_rows(&data).into_iter().filter(|r| r.0 < 10) {
        let last = t.div_euclid(5_000) * 5_000;
        for start in [last - 5_000, last] {
            *counts.entry((v, start)).or_default() += 1;
        }
    }
    let mut want: Vec<Vec<String>> = counts
        .into_iter()
        .map(|((v, start), n)| {
            vec![
                v.to_string(),
                n.to_string(),
                start.to_string(),
                (start + 10_000).to_string(),
                (start + 9_999).to_string(),
            ]
        })
        .collect();
    want.sort();
    in_every_mode(dir.path(), "hop", script, &want);
}

#[test]
fn window_top_n_and_deduplication_over_a_tumbles_rows_equal_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let input = input_rows(&data);
    let mut windows: BTreeMap<(i64, i64), Vec<(i64, f64)>> = BTreeMap::new();
    for (v, t, s) in &input {
        windows
            .entry((*v, t.div_euclid(10_000) * 10_000))
            .or_default()
            .push((*t, *s));
    }
    // the two fastest readings of each vehicle and 10 s window (ties: the
    // other columns decide), and the first reading of each (deduplication)
    let top = |out: &Path| {
        format!(
            "{}CREATE TABLE out (vehicle_id BIGINT, window_start BIGINT, speed DOUBLE, t BIGINT, rn BIGINT) \
             WITH ('connector' = 'parquet', 'path' = '{}');\n\
             INSERT INTO out SELECT vehicle_id, window_start, speed, CAST(event_time AS BIGINT), rn FROM (\n  \
             SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, vehicle_id ORDER BY speed DESC) AS rn\n  \
             FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND))\n) WHERE rn <= 2;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut want = Vec::new();
    for ((v, start), rows) in &windows {
        let mut rows = rows.clone();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (rank, (t, s)) in rows.iter().take(2).enumerate() {
            want.push(vec![
                v.to_string(),
                start.to_string(),
                format!("{s:?}"),
                t.to_string(),
                (rank + 1).to_string(),
            ]);
        }
    }
    want.sort();
    in_every_mode(dir.path(), "top2", top, &want);

    let first = |out: &Path| {
        format!(
            "{}CREATE TABLE out (vehicle_id BIGINT, window_start BIGINT, window_end BIGINT, t BIGINT) \
             WITH ('connector' = 'parquet', 'path' = '{}');\n\
             INSERT INTO out SELECT vehicle_id, window_start, window_end, CAST(event_time AS BIGINT) FROM (\n  \
             SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, vehicle_id ORDER BY event_time) AS rownum\n  \
             FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) WHERE speed > 20\n) WHERE rownum = 1;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    let mut want: Vec<Vec<String>> = windows
        .iter()
        .filter_map(|((v, start), rows)| {
            let t = rows.iter().filter(|r| r.1 > 20.0).map(|r| r.0).min()?;
            Some(vec![
                v.to_string(),
                start.to_string(),
                (start + 10_000).to_string(),
                t.to_string(),
            ])
        })
        .collect();
    want.sort();
    in_every_mode(dir.path(), "first", first, &want);
}
