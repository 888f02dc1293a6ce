//! `SELECT DISTINCT` in SQL: over rows that are not a changelog, each
//! distinct row once (append-only, no `op`); over a changelog, the rows
//! that stay. Both equal a brute-force oracle pipelined and in batch at
//! parallelism 1 and 3.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use std::collections::{BTreeMap, BTreeSet};

use common::sql::{data, input_rows, obd_table, sql};

#[test]
fn distinct_rows_come_once_each_and_equal_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("bands");
    let text = format!(
        "{}CREATE TABLE bands (g BIGINT, band BIGINT) WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO bands SELECT DISTINCT vehicle_id % 7 AS g, CAST(speed / 40 AS BIGINT) AS band \
         FROM obd WHERE speed > 10;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let want: BTreeSet<(i64, i64)> = input_rows(&data)
        .into_iter()
        .filter(|r| r.2 > 10.0)
        .map(|(v, _, s)| (v % 7, (s / 40.0) as i64))
        .collect();
    assert!(want.len() > 7, "several bands");
    distinct_pairs_in_every_mode(dir.path(), &text, &out, &want, "SELECT DISTINCT g, band");
}

/// Runs `text` in both modes at parallelism 1 and 3: `out` holds each pair
/// of `want` once, in two columns (no `op`: the rows are final).
fn distinct_pairs_in_every_mode(
    dir: &std::path::Path,
    text: &str,
    out: &std::path::Path,
    want: &BTreeSet<(i64, i64)>,
    what: &str,
) {
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            std::fs::remove_dir_all(out).ok();
            sql(dir, text, &["--mode", mode, "--parallelism", p]);
            let mut got = Vec::new();
            for b in common::read_parquet_parts(out) {
                assert_eq!(
                    b.num_columns(),
                    2,
                    "{what}: no op column, the rows are final"
                );
                let (g, band) = (
                    b.column(0).as_primitive::<Int64Type>(),
                    b.column(1).as_primitive::<Int64Type>(),
                );
                got.extend((0..b.num_rows()).map(|i| (g.value(i), band.value(i))));
            }
            let unique: BTreeSet<(i64, i64)> = got.iter().copied().collect();
            assert_eq!(
                unique.len(),
                got.len(),
                "{what} {mode} p={p}: each row once"
            );
            assert_eq!(&unique, want, "{what} {mode} p={p}");
        }
    }
}

#[test]
fn distinct_over_a_changelog_keeps_the_rows_that_stay_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("levels");
    // each vehicle's reading count in hundreds changes as rows arrive: the
    // distinct (vehicle_id % 4, hundreds) pairs come and go
    let text = format!(
        "{}CREATE TABLE levels (g BIGINT, hundreds BIGINT, op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO levels SELECT DISTINCT vehicle_id % 4 AS g, CAST(n / 100 AS BIGINT) AS hundreds \
         FROM (SELECT vehicle_id, COUNT(*) AS n FROM obd GROUP BY vehicle_id);",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let mut per: BTreeMap<i64, i64> = BTreeMap::new();
    for (v, _, _) in input_rows(&data) {
        *per.entry(v).or_default() += 1;
    }
    let want: BTreeSet<(i64, i64)> = per.iter().map(|(v, n)| (v % 4, n / 100)).collect();
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            std::fs::remove_dir_all(&out).ok();
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            let mut live: BTreeSet<(i64, i64)> = BTreeSet::new();
            let mut seen = 0;
            for b in common::read_parquet_parts(&out) {
                let (g, h) = (
                    b.column(0).as_primitive::<Int64Type>(),
                    b.column(1).as_primitive::<Int64Type>(),
                );
                let op = b.column(2).as_string::<i32>();
                for i in 0..b.num_rows() {
                    let row = (g.value(i), h.value(i));
                    match op.value(i) {
                        "delete" => assert!(live.remove(&row), "a delete of a live row"),
                        _ => {
                            seen += 1;
                            live.insert(row);
                        }
                    }
                }
            }
            assert_eq!(live, want, "{mode} p={p}");
            if mode == "pipelined" {
                assert!(seen > want.len(), "pairs came and went ({seen} emitted)");
            }
        }
    }
}

#[test]
fn distinct_star_is_distinct_over_every_column_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("bands");
    let want: BTreeSet<(i64, i64)> = input_rows(&data)
        .into_iter()
        .filter(|r| r.2 > 10.0)
        .map(|(v, _, s)| (v % 7, (s / 40.0) as i64))
        .collect();
    let bands =
        "SELECT vehicle_id % 7 AS g, CAST(speed / 40 AS BIGINT) AS band FROM obd WHERE speed > 10";
    for query in [
        format!("SELECT DISTINCT * FROM ({bands})"),
        format!("SELECT DISTINCT b.* FROM ({bands}) b"),
        format!("WITH b AS ({bands}) SELECT DISTINCT * FROM b"),
        // a join: the columns of one side
        format!(
            "SELECT DISTINCT b.* FROM ({bands}) b JOIN (SELECT DISTINCT vehicle_id % 7 AS g FROM obd) k \
             ON b.g = k.g"
        ),
    ] {
        let text = format!(
            "{}CREATE TABLE bands (g BIGINT, band BIGINT) WITH ('connector' = 'parquet', 'path' = '{}');\n\
             INSERT INTO bands {query};",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        );
        distinct_pairs_in_every_mode(dir.path(), &text, &out, &want, &query);
    }
}
