//! Top-N and deduplication over a stream in SQL (`ROW_NUMBER() OVER
//! (PARTITION BY k ORDER BY …)` bounded by `WHERE rownum <= N` outside):
//! the changelog of every key equals, row for row, the one a brute-force
//! oracle derives from the best N rows after each event time, pipelined
//! and in batch at parallelism 1 and 3; what it cannot rank is refused by
//! name. Window Top-N over a HOP's and a CUMULATE's raw rows (each row in
//! every window it falls in) equals its oracle too.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use std::collections::BTreeMap;
use std::path::Path;

use common::sql::{data, in_every_mode as rows_in_every_mode, input_rows, obd_table, refused, sql};

/// One reading: (vehicle_id, event_time, speed).
type Reading = (i64, i64, f64);

/// One changelog row: the reading, its rank (when the output has it), its op.
type Change = (i64, i64, u64, Option<i64>, String);

/// The changelog in `dir` per vehicle, in the order it was written (each
/// key's rows come from one subtask's files, in order).
fn changelog(dir: &Path, with_rank: bool) -> BTreeMap<i64, Vec<Change>> {
    let mut out: BTreeMap<i64, Vec<Change>> = BTreeMap::new();
    for b in common::read_parquet_parts(dir) {
        let v = b.column(0).as_primitive::<Int64Type>();
        let t = b.column(1).as_primitive::<TimestampMillisecondType>();
        let s = b.column(2).as_primitive::<Float64Type>();
        let rank = with_rank.then(|| b.column(3).as_primitive::<Int64Type>());
        let op = b.column(b.num_columns() - 1).as_string::<i32>();
        for i in 0..b.num_rows() {
            out.entry(v.value(i)).or_default().push((
                v.value(i),
                t.value(i),
                s.value(i).to_bits(),
                rank.map(|r| r.value(i)),
                op.value(i).to_string(),
            ));
        }
    }
    out
}

/// The rows of `best` not in `now` (they left), then those of `now` not
/// in `best` (they came), as multisets.
fn left_and_came(
    best: &[Reading],
    now: &[Reading],
    better: &impl Fn(&Reading, &Reading) -> std::cmp::Ordering,
) -> (Vec<Reading>, Vec<Reading>) {
    let mut left = best.to_vec();
    let mut came = Vec::new();
    for r in now {
        match left.iter().position(|b| better(b, r).is_eq()) {
            Some(i) => {
                left.remove(i);
            }
            None => came.push(*r),
        }
    }
    (left, came)
}

/// The oracle: per vehicle, after each event time, the best `n` readings
/// by `better` (ties by the other columns: vehicle, then time or speed);
/// the changes between consecutive lists, as the query states them.
fn oracle(
    readings: &[Reading],
    n: usize,
    with_rank: bool,
    better: impl Fn(&Reading, &Reading) -> std::cmp::Ordering,
) -> BTreeMap<i64, Vec<Change>> {
    let mut by_key: BTreeMap<i64, BTreeMap<i64, Vec<Reading>>> = BTreeMap::new();
    for r in readings {
        by_key
            .entry(r.0)
            .or_default()
            .entry(r.1)
            .or_default()
            .push(*r);
    }
    let change = |r: &Reading, rank: usize, op: &str| -> Change {
        (
            r.0,
            r.1,
            r.2.to_bits(),
            with_rank.then_some(rank as i64),
            op.to_string(),
        )
    };
    let mut out = BTreeMap::new();
    for (v, times) in by_key {
        let mut seen: Vec<Reading> = Vec::new();
        let mut best: Vec<Reading> = Vec::new();
        let mut changes = Vec::new();
        for (_, rows) in times {
            seen.extend(rows);
            seen.sort_by(&better);
            let now: Vec<Reading> = seen.iter().take(n).copied().collect();
            if with_rank {
                for (i, r) in now.iter().enumerate() {
                    match best.get(i) {
                        None => changes.push(change(r, i + 1, "insert")),
                        Some(b) if better(b, r).is_ne() => changes.push(change(r, i + 1, "update")),
                        Some(_) => {}
                    }
                }
            } else {
                let (left, came) = left_and_came(&best, &now, &better);
                changes.extend(left.iter().map(|r| change(r, 0, "delete")));
                changes.extend(came.iter().map(|r| change(r, 0, "insert")));
            }
            best = now;
        }
        out.insert(v, changes);
    }
    out
}

/// Runs `text` (writing to `out`) in both modes at parallelism 1 and 3 and
/// checks each run's changelog is `want`.
fn in_every_mode(
    dir: &Path,
    text: &str,
    out: &Path,
    with_rank: bool,
    want: &BTreeMap<i64, Vec<Change>>,
) {
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            std::fs::remove_dir_all(out).ok();
            sql(dir, text, &["--mode", mode, "--parallelism", p]);
            let got = changelog(out, with_rank);
            assert_eq!(got.len(), want.len(), "{mode} p={p}: keys");
            for (k, changes) in want {
                assert_eq!(got.get(k), Some(changes), "{mode} p={p}: vehicle {k}");
            }
        }
    }
}

#[test]
fn top_3_per_key_with_its_rank_is_the_oracles_changelog_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("top3");
    let text = format!(
        "{}CREATE TABLE top3 (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE, rn BIGINT, \
         op STRING) WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO top3 SELECT * FROM (\n  SELECT *, ROW_NUMBER() OVER (PARTITION BY vehicle_id \
         ORDER BY speed DESC) AS rn FROM obd\n) WHERE rn <= 3;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    // speed descending, then the other columns ascending
    let better =
        |a: &Reading, b: &Reading| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1));
    let want = oracle(&input_rows(&data), 3, true, better);
    let updates: usize = want
        .values()
        .map(|c| c.iter().filter(|x| x.4 == "update").count())
        .sum();
    assert!(updates > 100, "the oracle updates ranks ({updates})");
    in_every_mode(dir.path(), &text, &out, true, &want);
}

#[test]
fn deduplication_without_the_rank_deletes_what_leaves_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("latest");
    // the two latest readings per vehicle; the rank is not selected, so a
    // reading pushed out is deleted and the new one inserted
    let text = format!(
        "{}CREATE TABLE latest (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE, op STRING) \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO latest SELECT vehicle_id, event_time, speed FROM (\n  SELECT *, ROW_NUMBER() \
         OVER (PARTITION BY vehicle_id ORDER BY event_time DESC) AS rownum FROM obd\n) \
         WHERE 3 > rownum AND vehicle_id < 20;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    let better =
        |a: &Reading, b: &Reading| b.1.cmp(&a.1).then(a.0.cmp(&b.0)).then(a.2.total_cmp(&b.2));
    let readings: Vec<Reading> = input_rows(&data).into_iter().filter(|r| r.0 < 20).collect();
    let want = oracle(&readings, 2, false, better);
    assert!(want.values().all(|c| c.iter().any(|x| x.4 == "delete")));
    in_every_mode(dir.path(), &text, &out, false, &want);
    // what stays after the deletes is each vehicle's two latest readings
    for (k, changes) in changelog(&out, false) {
        let mut live: Vec<(i64, u64)> = Vec::new();
        for c in changes {
            if c.4 == "insert" {
                live.push((c.1, c.2));
            } else {
                let i = live
                    .iter()
                    .position(|x| *x == (c.1, c.2))
                    .expect("deletes a live row");
                live.remove(i);
            }
        }
        let mut mine: Vec<&Reading> = readings.iter().filter(|r| r.0 == k).collect();
        mine.sort_by(|a, b| better(a, b));
        live.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(f64::from_bits(a.1).total_cmp(&f64::from_bits(b.1)))
        });
        let top: Vec<(i64, u64)> = mine.iter().take(2).map(|r| (r.1, r.2.to_bits())).collect();
        assert_eq!(live, top, "vehicle {k}");
    }
}

#[test]
fn rankings_it_cannot_keep_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let table = obd_table(&data, "'1' SECOND");
    let ranked = "SELECT *, ROW_NUMBER() OVER (PARTITION BY vehicle_id ORDER BY speed DESC) AS rn";
    let cases = [
        (format!("{table}{ranked} FROM obd"), "rank in a subquery and bound it outside"),
        (format!("{table}SELECT * FROM ({ranked} FROM obd) WHERE rn > 3"), "rank in a subquery and bound it outside"),
        (format!("{table}SELECT * FROM ({ranked} FROM obd) WHERE rn <= 0"), "rank in a subquery and bound it outside"),
        (
            format!("{table}SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY op ORDER BY n DESC) AS rn FROM (SELECT vehicle_id, COUNT(*) AS n FROM obd GROUP BY vehicle_id)) WHERE rn <= 3"),
            "PARTITION BY op",
        ),
        (
            format!("{table}SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY vehicle_id ORDER BY op) AS rn FROM (SELECT vehicle_id, COUNT(*) AS n FROM obd GROUP BY vehicle_id)) WHERE rn <= 3"),
            "ORDER BY op",
        ),
        (format!("{table}SELECT x.* FROM obd"), "`x.*`: no table `x` in FROM"),
    ];
    for (text, says) in cases {
        refused(dir.path(), &text, says);
    }
}

#[test]
fn window_top_n_over_hop_and_cumulate_rows_equals_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let input: Vec<Reading> = input_rows(&data).into_iter().filter(|r| r.0 < 10).collect();
    // (window function, its windows of a time t)
    type Windows = Box<dyn Fn(i64) -> Vec<(i64, i64)>>;
    let hop: Windows = Box::new(|t: i64| {
        // 10 s windows every 5 s: the one starting last and the one before
        let last = t.div_euclid(5_000) * 5_000;
        vec![(last, last + 10_000), (last - 5_000, last + 5_000)]
    });
    let cumulate: Windows = Box::new(|t: i64| {
        let start = t.div_euclid(6_000) * 6_000;
        (1..=3)
            .map(|j| (start, start + j * 2_000))
            .filter(|&(_, end)| end > t)
            .collect()
    });
    let cases = [
        (
            "HOP(TABLE obd, DESCRIPTOR(event_time), INTERVAL '5' SECOND, INTERVAL '10' SECOND)",
            hop,
            "hop",
        ),
        (
            "CUMULATE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '2' SECOND, INTERVAL '6' SECOND)",
            cumulate,
            "cumulate",
        ),
    ];
    for (tvf, windows_of, name) in cases {
        let mut windows: BTreeMap<(i64, i64, i64), Vec<(i64, f64)>> = BTreeMap::new();
        for (v, t, s) in &input {
            for (start, end) in windows_of(*t) {
                windows.entry((*v, start, end)).or_default().push((*t, *s));
            }
        }
        // the two fastest readings of each vehicle and window; ties by the
        // other columns (the time)
        let mut want = Vec::new();
        for ((v, start, end), rows) in &windows {
            let mut rows = rows.clone();
            rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (rank, (t, s)) in rows.iter().take(2).enumerate() {
                want.push(vec![
                    v.to_string(),
                    start.to_string(),
                    end.to_string(),
                    format!("{s:?}"),
                    t.to_string(),
                    (rank + 1).to_string(),
                ]);
            }
        }
        want.sort();
        assert!(want.len() > 100, "{name}: several windows");
        let script = |out: &Path| {
            format!(
                "{}CREATE TABLE out (vehicle_id BIGINT, window_start BIGINT, window_end BIGINT, speed DOUBLE, \
                 t BIGINT, rn BIGINT) WITH ('connector' = 'parquet', 'path' = '{}');\n\
                 INSERT INTO out SELECT vehicle_id, window_start, window_end, speed, CAST(event_time AS BIGINT), rn \
                 FROM (\n  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, vehicle_id \
                 ORDER BY speed DESC) AS rn\n  FROM TABLE({tvf}) WHERE vehicle_id < 10\n) WHERE rn <= 2;",
                obd_table(&data, "'10' MINUTE"),
                out.display()
            )
        };
        rows_in_every_mode(dir.path(), name, script, &want);
    }
}

/// How one reading ranks before another.
type Better = fn(&Reading, &Reading) -> std::cmp::Ordering;

/// Every changelog row in `dir` in the order written (a global Top-N
/// runs on one subtask).
fn global_changelog(dir: &Path) -> Vec<Change> {
    let mut out = Vec::new();
    for b in common::read_parquet_parts(dir) {
        let v = b.column(0).as_primitive::<Int64Type>();
        let t = b.column(1).as_primitive::<TimestampMillisecondType>();
        let s = b.column(2).as_primitive::<Float64Type>();
        let op = b.column(b.num_columns() - 1).as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                v.value(i),
                t.value(i),
                s.value(i).to_bits(),
                None,
                op.value(i).to_string(),
            ));
        }
    }
    out
}

#[test]
fn order_by_limit_is_a_global_top_n_changelog_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let readings = input_rows(&data);
    let cases: [(&str, usize, Better); 3] = [
        // the five fastest readings of all (ties: vehicle, then time)
        ("ORDER BY speed DESC LIMIT 5", 5, |a, b| {
            b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1))
        }),
        // the standard spelling of the same
        ("ORDER BY speed DESC FETCH FIRST 5 ROWS ONLY", 5, |a, b| {
            b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1))
        }),
        // LIMIT alone: the first rows in event time (ties: vehicle, then speed)
        ("LIMIT 4", 4, |a, b| {
            a.1.cmp(&b.1).then(a.0.cmp(&b.0)).then(a.2.total_cmp(&b.2))
        }),
    ];
    for (clause, n, better) in cases {
        let out = dir.path().join("best");
        let text = format!(
            "{}CREATE TABLE best (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE, \
             op STRING) WITH ('connector' = 'parquet', 'path' = '{}');\n\
             INSERT INTO best SELECT vehicle_id, event_time, speed FROM obd {clause};",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        );
        // the oracle: after each event time, the best n of all readings so far
        let mut times: BTreeMap<i64, Vec<Reading>> = BTreeMap::new();
        for r in &readings {
            times.entry(r.1).or_default().push(*r);
        }
        let (mut seen, mut best, mut want) = (Vec::new(), Vec::<Reading>::new(), Vec::new());
        let change = |r: &Reading, op: &str| (r.0, r.1, r.2.to_bits(), None, op.to_string());
        for rows in times.into_values() {
            seen.extend(rows);
            seen.sort_by(better);
            let now: Vec<Reading> = seen.iter().take(n).copied().collect();
            let (left, came) = left_and_came(&best, &now, &better);
            want.extend(left.iter().map(|r| change(r, "delete")));
            want.extend(came.iter().map(|r| change(r, "insert")));
            best = now;
        }
        // the fastest change as readings come; the earliest never do
        assert!(
            want.len() > n || clause == "LIMIT 4",
            "{clause}: the best rows change"
        );
        assert!(want.len() >= n);
        for mode in ["batch", "pipelined"] {
            for p in ["1", "3"] {
                std::fs::remove_dir_all(&out).ok();
                sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
                assert_eq!(global_changelog(&out), want, "{clause}, {mode} p={p}");
            }
        }
    }
    let table = obd_table(&data, "'10' MINUTE");
    for (query, says) in [
        ("SELECT * FROM obd ORDER BY speed", "ORDER BY without LIMIT sorts rows that never end"),
        ("SELECT * FROM obd ORDER BY speed LIMIT 3 OFFSET 2", "OFFSET"),
        (
            "SELECT * FROM obd ORDER BY speed OFFSET 2 ROWS FETCH FIRST 3 ROWS ONLY",
            "OFFSET (skipping the first rows of a Top-N)",
        ),
        (
            "SELECT DISTINCT * FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))",
            "SELECT DISTINCT * over a window table function's rows",
        ),
        (
            "SELECT * FROM obd ORDER BY speed FETCH FIRST 10 PERCENT ROWS ONLY",
            "write FETCH FIRST n ROWS ONLY",
        ),
        ("SELECT * FROM obd ORDER BY speed * 2 LIMIT 3", "ORDER BY names a column of the result"),
        ("SELECT * FROM obd ORDER BY speed LIMIT 0", "LIMIT 0: give a count of rows of at least 1"),
        (
            "SELECT vehicle_id, MAX(speed) AS top FROM obd GROUP BY vehicle_id LIMIT 3",
            "LIMIT without ORDER BY keeps the first rows in event time",
        ),
    ] {
        refused(dir.path(), &format!("{table}{query};"), says);
    }
}
