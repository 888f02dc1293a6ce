//! Regular joins over a changelog in SQL: `JOIN`, `LEFT JOIN` and `FULL
//! JOIN` of two `GROUP BY` results, and of a table's rows with one, are
//! changelogs of inserted and deleted pairs; the table each leaves equals
//! a brute-force join of the aggregates computed here, pipelined and in
//! batch at parallelism 1 and 3.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::Array;
use arrow_schema::DataType;
use std::collections::BTreeMap;
use std::path::Path;

use common::sql::{data, input_rows, obd_table, sql};

/// The rows the insert/delete changelog in `dir` leaves (without `op`),
/// sorted, and how many changes it held.
fn table(dir: &Path) -> (Vec<Vec<String>>, usize) {
    let mut live: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut changes = 0;
    for b in common::read_parquet_parts(dir) {
        for i in 0..b.num_rows() {
            let mut row: Vec<String> = b
                .columns()
                .iter()
                .map(|c| match c.data_type() {
                    _ if c.is_null(i) => "null".to_string(),
                    DataType::Float64 => format!("{:?}", c.as_primitive::<Float64Type>().value(i)),
                    DataType::Int64 => c.as_primitive::<Int64Type>().value(i).to_string(),
                    DataType::Utf8 => c.as_string::<i32>().value(i).to_string(),
                    other => panic!("unexpected type {other}"),
                })
                .collect();
            changes += 1;
            match row.pop().unwrap().as_str() {
                "insert" => *live.entry(row).or_default() += 1,
                "delete" => {
                    let n = live.get_mut(&row).expect("a delete of a live row");
                    *n -= 1;
                    if *n == 0 {
                        live.remove(&row);
                    }
                }
                other => panic!("op {other}"),
            }
        }
    }
    let rows = live
        .into_iter()
        .flat_map(|(r, n)| std::iter::repeat_n(r, n))
        .collect();
    (rows, changes)
}

/// Runs `text` (writing `out`) in every mode; its table must be `want`.
/// Returns how many changes the pipelined run at parallelism 1 wrote.
fn in_every_mode(dir: &Path, text: &str, out: &Path, want: &[Vec<String>]) -> usize {
    let mut pipelined = 0;
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            std::fs::remove_dir_all(out).ok();
            sql(dir, text, &["--mode", mode, "--parallelism", p]);
            let (got, n) = table(out);
            assert_eq!(got, want, "{mode} p={p}");
            if mode == "pipelined" && p == "1" {
                pipelined = n;
            }
        }
    }
    pipelined
}

/// Per vehicle: (readings, top speed over 100 if any, readings under 20).
fn per_vehicle(data: &Path) -> BTreeMap<i64, (i64, Option<f64>, i64)> {
    let mut per: BTreeMap<i64, (i64, Option<f64>, i64)> = BTreeMap::new();
    for (v, _, s) in input_rows(data) {
        let e = per.entry(v).or_default();
        e.0 += 1;
        if s > 100.0 {
            e.1 = Some(e.1.map_or(s, |t: f64| t.max(s)));
        }
        if s < 20.0 {
            e.2 += 1;
        }
    }
    per
}

const COUNTS: &str = "(SELECT vehicle_id, COUNT(*) AS n FROM obd GROUP BY vehicle_id)";
const FAST: &str =
    "(SELECT vehicle_id, MAX(speed) AS top FROM obd WHERE speed > 100 GROUP BY vehicle_id)";
const SLOW: &str =
    "(SELECT vehicle_id, COUNT(*) AS n FROM obd WHERE speed < 20 GROUP BY vehicle_id)";

fn f(x: f64) -> String {
    format!("{x:?}")
}

#[test]
fn inner_left_and_right_joins_of_two_group_bys_equal_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let per = per_vehicle(&data);
    let fast = per.values().filter(|p| p.1.is_some()).count();
    assert!(
        fast > 5 && fast < per.len(),
        "{fast} of {} vehicles pass 100",
        per.len()
    );
    // (the same left join written as a right join, its sides swapped)
    for (from, keeps_all) in [
        (format!("{COUNTS} a JOIN {FAST} b"), false),
        (format!("{COUNTS} a LEFT JOIN {FAST} b"), true),
        (format!("{FAST} b RIGHT JOIN {COUNTS} a"), true),
    ] {
        let kind = &from;
        let out = dir.path().join("joined");
        let text = format!(
            "{}CREATE TABLE joined (vehicle_id BIGINT, n BIGINT, top DOUBLE, op STRING) \
             WITH ('connector' = 'parquet', 'path' = '{}');\n\
             INSERT INTO joined SELECT a.vehicle_id, a.n, b.top FROM {from}\n  \
             ON a.vehicle_id = b.vehicle_id;",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        );
        let mut want: Vec<Vec<String>> = per
            .iter()
            .filter(|(_, p)| keeps_all || p.1.is_some())
            .map(|(v, p)| {
                vec![
                    v.to_string(),
                    p.0.to_string(),
                    p.1.map_or("null".to_string(), f),
                ]
            })
            .collect();
        want.sort();
        let changes = in_every_mode(dir.path(), &text, &out, &want);
        // pipelined, a pair is deleted and inserted again as its counts grow
        assert!(changes > want.len(), "{kind}: {changes} changes");
    }
}

#[test]
fn a_full_join_of_two_group_bys_pads_either_side_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let per = per_vehicle(&data);
    let out = dir.path().join("joined");
    let text = format!(
        "{}CREATE TABLE joined (slow_id BIGINT, slow BIGINT, fast_id BIGINT, top DOUBLE, op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO joined SELECT s.vehicle_id, s.n, q.vehicle_id, q.top FROM {SLOW} s\n  \
         FULL JOIN {FAST} q ON s.vehicle_id = q.vehicle_id;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let null = || "null".to_string();
    let mut want: Vec<Vec<String>> = per
        .iter()
        .filter(|(_, p)| p.1.is_some() || p.2 > 0)
        .map(|(v, p)| {
            let slow = (p.2 > 0).then(|| (v.to_string(), p.2.to_string()));
            let fast = p.1.map(|t| (v.to_string(), f(t)));
            let (a, b) = slow.unwrap_or_else(|| (null(), null()));
            let (c, d) = fast.unwrap_or_else(|| (null(), null()));
            vec![a, b, c, d]
        })
        .collect();
    want.sort();
    assert!(
        want.iter().any(|r| r[0] == "null") && want.iter().any(|r| r[2] == "null"),
        "both sides are padded somewhere: {want:?}"
    );
    in_every_mode(dir.path(), &text, &out, &want);
}

#[test]
fn a_tables_rows_joined_with_a_group_by_keep_the_pairs_its_filter_passes() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("fastest");
    // each vehicle's readings at its top speed: a reading joined with its
    // vehicle's running maximum, the pair kept while they are equal
    let text = format!(
        "{}CREATE TABLE fastest (vehicle_id BIGINT, event_time BIGINT, speed DOUBLE, op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO fastest SELECT o.vehicle_id, CAST(o.event_time AS BIGINT), o.speed\n\
         FROM obd o JOIN (SELECT vehicle_id, MAX(speed) AS top FROM obd GROUP BY vehicle_id) m\n  \
         ON o.vehicle_id = m.vehicle_id WHERE o.speed = m.top;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let rows = input_rows(&data);
    let mut top: BTreeMap<i64, f64> = BTreeMap::new();
    for &(v, _, s) in &rows {
        let e = top.entry(v).or_insert(f64::MIN);
        *e = e.max(s);
    }
    let mut want: Vec<Vec<String>> = rows
        .iter()
        .filter(|&&(v, _, s)| s == top[&v])
        .map(|&(v, t, s)| vec![v.to_string(), t.to_string(), f(s)])
        .collect();
    want.sort();
    assert!(want.len() >= top.len());
    in_every_mode(dir.path(), &text, &out, &want);
}

#[test]
fn a_null_key_never_matches_and_an_outer_side_keeps_it_padded() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let per = per_vehicle(&data);
    let out = dir.path().join("joined");
    // every fifth vehicle's readings are counted under a null key
    let text = format!(
        "{}CREATE TABLE joined (k BIGINT, n BIGINT, top DOUBLE, op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO joined SELECT a.k, a.n, b.top FROM (\n  \
           SELECT k, COUNT(*) AS n FROM (\n    \
             SELECT CASE WHEN vehicle_id % 5 = 0 THEN NULL ELSE vehicle_id END AS k FROM obd)\n  \
           GROUP BY k) a\n  \
         LEFT JOIN (SELECT vehicle_id, MAX(speed) AS top FROM obd GROUP BY vehicle_id) b\n  \
         ON a.k = b.vehicle_id;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let mut top: BTreeMap<i64, f64> = BTreeMap::new();
    for (v, _, s) in input_rows(&data) {
        let e = top.entry(v).or_insert(f64::MIN);
        *e = e.max(s);
    }
    let mut want: Vec<Vec<String>> = per
        .iter()
        .filter(|(v, _)| *v % 5 != 0)
        .map(|(v, p)| vec![v.to_string(), p.0.to_string(), f(top[v])])
        .collect();
    let nulls: i64 = per
        .iter()
        .filter(|(v, _)| *v % 5 == 0)
        .map(|(_, p)| p.0)
        .sum();
    assert!(nulls > 0);
    want.push(vec!["null".into(), nulls.to_string(), "null".into()]);
    want.sort();
    in_every_mode(dir.path(), &text, &out, &want);
}

#[test]
fn a_ranking_joined_keeps_each_rows_current_rank_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("podium");
    // the two fastest vehicles of each fleet with their rank, joined with
    // their readings: a row that moves from rank 1 to 2 must be taken back
    // at rank 1 (the join reads the ranking as retractions)
    let text = format!(
        "{}CREATE TABLE podium (fleet BIGINT, vehicle_id BIGINT, rn BIGINT, n BIGINT, op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO podium SELECT r.fleet, r.vehicle_id, r.rn, c.n FROM (\n  \
           SELECT * FROM (\n    \
             SELECT *, ROW_NUMBER() OVER (PARTITION BY fleet ORDER BY top DESC) AS rn FROM (\n      \
               SELECT fleet, vehicle_id, MAX(speed) AS top\n      \
               FROM (SELECT vehicle_id % 4 AS fleet, vehicle_id, speed FROM obd)\n      \
               GROUP BY fleet, vehicle_id))\n  \
           WHERE rn <= 2) r\n\
         JOIN {COUNTS} c ON r.vehicle_id = c.vehicle_id;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let per = per_vehicle(&data);
    let mut top: BTreeMap<i64, f64> = BTreeMap::new();
    for (v, _, s) in input_rows(&data) {
        let e = top.entry(v).or_insert(f64::MIN);
        *e = e.max(s);
    }
    let mut fleets: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for (v, t) in &top {
        fleets.entry(v % 4).or_default().push((*v, *t));
    }
    let mut want = Vec::new();
    for (fleet, mut list) in fleets {
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (i, (v, _)) in list.iter().take(2).enumerate() {
            want.push(vec![
                fleet.to_string(),
                v.to_string(),
                (i + 1).to_string(),
                per[v].0.to_string(),
            ]);
        }
    }
    want.sort();
    in_every_mode(dir.path(), &text, &out, &want);
}

#[test]
fn a_tables_op_column_that_is_not_insert_or_delete_fails_the_join_by_name() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let t = dir.path().join("cdc");
    std::fs::create_dir_all(&t).unwrap();
    let batch = arrow_array::RecordBatch::try_from_iter([
        (
            "vehicle_id",
            Arc::new(arrow_array::Int64Array::from(vec![1, 2])) as arrow_array::ArrayRef,
        ),
        (
            "op",
            Arc::new(arrow_array::StringArray::from(vec!["c", "u"])) as arrow_array::ArrayRef,
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(t.join("part-0.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let out = dir.path().join("joined");
    let text = format!(
        "{}CREATE TABLE cdc (vehicle_id BIGINT, op STRING) WITH ('connector' = 'parquet', \
         'path' = '{}');\n\
         CREATE TABLE joined (vehicle_id BIGINT, n BIGINT, op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO joined SELECT d.vehicle_id, c.n FROM cdc d JOIN {COUNTS} c \
         ON d.vehicle_id = c.vehicle_id;",
        obd_table(&data, "'10' MINUTE"),
        t.display(),
        out.display()
    );
    let file = dir.path().join("bad.sql");
    std::fs::write(&file, text).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("sql")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("op is Some(\"c\"), not insert or delete"),
        "{err}"
    );
    // nothing published: the run failed before its end
    assert!(common::read_parquet_parts(&out).is_empty() || !out.exists());
}
