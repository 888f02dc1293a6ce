//! Aggregations over a changelog in SQL (a `GROUP BY` over another
//! `GROUP BY`'s result, or over a Top-N): the inner query is planned as
//! retractions (a changed row is deleted, then its new value inserted),
//! the outer one subtracts what is deleted. The table the result's
//! changelog leaves equals a brute-force oracle, pipelined and in batch at
//! parallelism 1 and 3 (`MIN`, `MAX` and the `DISTINCT` aggregates too: a
//! deleted extreme gives way to the group's next); what cannot take a row
//! back is refused by name.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use std::collections::BTreeMap;
use std::path::Path;

use common::sql::{data, exact_sum, input_rows, obd_table, refused, sql};

/// The rows an upsert changelog in `dir` leaves, keyed by its first
/// column (`delete` drops a key), each as (its other columns but `op`),
/// and how many keys were ever live.
fn table(dir: &Path) -> (BTreeMap<i64, Vec<String>>, usize) {
    let mut live: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for b in common::read_parquet_parts(dir) {
        let op = b.column(b.num_columns() - 1).as_string::<i32>();
        let key = b.column(0).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let values: Vec<String> = (1..b.num_columns() - 1)
                .map(|c| {
                    let col = b.column(c);
                    match col.data_type() {
                        _ if arrow_array::Array::is_null(col, i) => "null".into(),
                        arrow_schema::DataType::Float64 => {
                            format!("{:?}", col.as_primitive::<Float64Type>().value(i))
                        }
                        _ => col.as_primitive::<Int64Type>().value(i).to_string(),
                    }
                })
                .collect();
            match op.value(i) {
                "delete" => {
                    assert!(
                        live.remove(&key.value(i)).is_some(),
                        "a delete of a live key"
                    );
                }
                "insert" => {
                    seen.insert(key.value(i));
                    assert!(
                        live.insert(key.value(i), values).is_none(),
                        "an insert of a new key"
                    );
                }
                "update" => {
                    live.insert(key.value(i), values);
                }
                other => panic!("op {other}"),
            }
        }
    }
    (live, seen.len())
}

fn in_every_mode(dir: &Path, text: &str, out: &Path, want: &BTreeMap<i64, Vec<String>>) {
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            std::fs::remove_dir_all(out).ok();
            sql(dir, text, &["--mode", mode, "--parallelism", p]);
            let (got, _) = table(out);
            assert_eq!(&got, want, "{mode} p={p}");
        }
    }
}

#[test]
fn an_aggregation_of_a_group_bys_changelog_equals_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("buckets");
    // per vehicle its readings and top speed; then per bucket (hundreds of
    // readings, and vehicle_id % 3): vehicles, readings, mean top speed. A
    // vehicle moves to the next bucket every 100 readings, so buckets also
    // empty out.
    let text = format!(
        "{}CREATE TABLE buckets (bucket BIGINT, vehicles BIGINT, readings BIGINT, mean_top DOUBLE, \
         tops BIGINT, op STRING) WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO buckets\n\
         SELECT CAST(n / 100 AS BIGINT) * 10 + vehicle_id % 3 AS bucket, COUNT(*) AS vehicles,\n  \
           SUM(n) AS readings, AVG(top) AS mean_top, COUNT(top) AS tops\n\
         FROM (SELECT vehicle_id, MAX(speed) AS top, COUNT(*) AS n FROM obd GROUP BY vehicle_id) AS per\n\
         GROUP BY CAST(n / 100 AS BIGINT) * 10 + vehicle_id % 3\n\
         HAVING COUNT(*) > 0;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let mut per: BTreeMap<i64, (f64, i64)> = BTreeMap::new();
    for (v, _, s) in input_rows(&data) {
        let e = per.entry(v).or_insert((f64::MIN, 0));
        e.0 = e.0.max(s);
        e.1 += 1;
    }
    let mut buckets: BTreeMap<i64, (i64, i64, Vec<f64>)> = BTreeMap::new();
    for (v, (top, n)) in &per {
        let e = buckets.entry(n / 100 * 10 + v % 3).or_default();
        e.0 += 1;
        e.1 += n;
        e.2.push(*top);
    }
    let want: BTreeMap<i64, Vec<String>> = buckets
        .iter()
        .map(|(b, (v, n, tops))| {
            let mean = exact_sum(tops) / tops.len() as f64;
            (
                *b,
                vec![
                    v.to_string(),
                    n.to_string(),
                    format!("{mean:?}"),
                    tops.len().to_string(),
                ],
            )
        })
        .collect();
    assert_eq!(want.len(), 3, "every vehicle ends with 360 readings");
    in_every_mode(dir.path(), &text, &out, &want);
    // pipelined, vehicles leave buckets as their readings grow
    std::fs::remove_dir_all(&out).ok();
    sql(
        dir.path(),
        &text,
        &["--mode", "pipelined", "--parallelism", "1"],
    );
    let (_, seen) = table(&out);
    assert!(seen > 3, "buckets filled and emptied out ({seen} seen)");
}

#[test]
fn an_aggregation_of_a_top_n_equals_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("groups");
    // the three fastest readings of each vehicle, summed per vehicle_id % 5
    let text = format!(
        "{}CREATE TABLE groups (g BIGINT, readings BIGINT, total DOUBLE, op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO groups\n\
         SELECT vehicle_id % 5 AS g, COUNT(*) AS readings, SUM(speed) AS total FROM (\n  \
           SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY vehicle_id ORDER BY speed DESC) \
         AS rn FROM obd) WHERE rn <= 3\n) GROUP BY vehicle_id % 5;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let mut per: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (v, _, s) in input_rows(&data) {
        per.entry(v).or_default().push(s);
    }
    let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (v, mut speeds) in per {
        speeds.sort_by(|a, b| b.total_cmp(a));
        groups
            .entry(v % 5)
            .or_default()
            .extend(speeds.into_iter().take(3));
    }
    let want: BTreeMap<i64, Vec<String>> = groups
        .iter()
        .map(|(g, xs)| {
            (
                *g,
                vec![xs.len().to_string(), format!("{:?}", exact_sum(xs))],
            )
        })
        .collect();
    assert_eq!(want.len(), 5);
    in_every_mode(dir.path(), &text, &out, &want);
}

#[test]
fn min_max_and_distinct_of_a_changelog_take_back_deleted_values_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("extremes");
    // per vehicle_id % 5, the slowest and fastest of each vehicle's three
    // fastest readings: as faster readings arrive, a Top-N deletes the
    // slowest of its three, so the minimum must rise again (its value taken
    // back, the group's next smallest found); and the largest and smallest
    // vehicle reading counts of a GROUP BY's changelog
    let text = format!(
        "{}CREATE TABLE extremes (g BIGINT, slowest DOUBLE, fastest DOUBLE, readings BIGINT, \
         op STRING) WITH ('connector' = 'parquet', 'path' = '{}');\n\
         CREATE TABLE counts (g BIGINT, fewest BIGINT, most BIGINT, tens BIGINT, mean_ten DOUBLE, \
         op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO extremes\n\
         SELECT vehicle_id % 5 AS g, MIN(speed), MAX(speed), COUNT(*) FROM (\n  \
           SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY vehicle_id ORDER BY speed DESC) \
         AS rn FROM obd) WHERE rn <= 3\n) GROUP BY vehicle_id % 5;\n\
         INSERT INTO counts\n\
         SELECT vehicle_id % 4 AS g, MIN(n), MAX(n), COUNT(DISTINCT CAST(n / 10 AS BIGINT)), \
         AVG(DISTINCT CAST(n / 10 AS BIGINT)) FROM \
         (SELECT vehicle_id, COUNT(*) AS n FROM obd WHERE speed > 40 GROUP BY vehicle_id) \
         GROUP BY vehicle_id % 4;",
        obd_table(&data, "'10' MINUTE"),
        out.display(),
        dir.path().join("counts").display()
    );
    let mut per: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (v, _, s) in input_rows(&data) {
        per.entry(v).or_default().push(s);
    }
    let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut counts: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (v, speeds) in &per {
        let mut sorted = speeds.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        groups
            .entry(v % 5)
            .or_default()
            .extend(sorted.into_iter().take(3));
        let fast = speeds.iter().filter(|s| **s > 40.0).count() as i64;
        if fast > 0 {
            counts.entry(v % 4).or_default().push(fast);
        }
    }
    let want: BTreeMap<i64, Vec<String>> = groups
        .iter()
        .map(|(g, xs)| {
            let lo = xs.iter().cloned().fold(f64::MAX, f64::min);
            let hi = xs.iter().cloned().fold(f64::MIN, f64::max);
            (
                *g,
                vec![format!("{lo:?}"), format!("{hi:?}"), xs.len().to_string()],
            )
        })
        .collect();
    let want_counts: BTreeMap<i64, Vec<String>> = counts
        .iter()
        .map(|(g, ns)| {
            let (lo, hi) = (ns.iter().min().unwrap(), ns.iter().max().unwrap());
            let tens: std::collections::BTreeSet<i64> = ns.iter().map(|n| n / 10).collect();
            let mean = tens.iter().sum::<i64>() as f64 / tens.len() as f64;
            (
                *g,
                vec![
                    lo.to_string(),
                    hi.to_string(),
                    tens.len().to_string(),
                    format!("{mean:?}"),
                ],
            )
        })
        .collect();
    assert_eq!((want.len(), want_counts.len()), (5, 4));
    assert!(
        want_counts.values().any(|r| r[0] != r[1] && r[2] != "1"),
        "counts differ within a group"
    );
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            std::fs::remove_dir_all(&out).ok();
            std::fs::remove_dir_all(dir.path().join("counts")).ok();
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            assert_eq!(table(&out).0, want, "{mode} p={p}");
            assert_eq!(
                table(&dir.path().join("counts")).0,
                want_counts,
                "{mode} p={p}"
            );
        }
    }
}

#[test]
fn aggregates_that_cannot_take_a_row_back_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "CREATE TABLE t (k BIGINT, op STRING) WITH ('connector' = 'parquet', 'path' = 'nowhere');\n\
             SELECT k, COUNT(*) FROM t GROUP BY k"
                .to_string(),
            "table `t` has an `op` column",
        ),
    ];
    for (text, says) in cases {
        refused(dir.path(), &text, says);
    }
}
