//! Window attributes through renames (Flink's window properties): a window
//! aggregation's `window_start`/`window_end`, renamed by its select list
//! (`window_start AS ws`), are still its rows' window bounds to a query
//! reading it. Grouping by both aggregates per window again (cascading
//! windows), and an `ON` equating both sides' bounds is a same-window join
//! (Nexmark q5 does both; `tests/nexmark_sql.rs` runs it). Results equal a
//! brute-force oracle pipelined and in batch at parallelism 1 and 3.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::sql::{data, in_every_mode, input_rows, obd_table, refused};

/// (vehicle, 10 s window start) → the speeds of its rows.
fn per_vehicle_window(rows: &[(i64, i64, f64)]) -> BTreeMap<(i64, i64), Vec<f64>> {
    let mut out: BTreeMap<(i64, i64), Vec<f64>> = BTreeMap::new();
    for &(v, t, s) in rows {
        out.entry((v, t.div_euclid(10_000) * 10_000))
            .or_default()
            .push(s);
    }
    out
}

/// The per-vehicle window counts, renamed, as a subquery.
const COUNTS: &str = "SELECT vehicle_id, vehicle_id % 2 AS parity, COUNT(*) AS n, \
    window_start AS ws, window_end AS we \
    FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) \
    GROUP BY vehicle_id, window_start, window_end";

#[test]
fn grouping_by_renamed_window_bounds_aggregates_per_window_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let windows = per_vehicle_window(&input_rows(&data));
    // per window and parity: the largest count, how many vehicles, their
    // rows, of the vehicles with more than 25 rows in the window and not
    // picked out by (vehicle + window number) % 3 = 0
    let mut want: BTreeMap<(i64, i64), (i64, i64, i64)> = BTreeMap::new();
    for ((v, start), speeds) in &windows {
        let n = speeds.len() as i64;
        if n <= 25 || (v + start / 10_000) % 3 == 0 {
            continue;
        }
        let e = want.entry((*start, v % 2)).or_insert((0, 0, 0));
        e.0 = e.0.max(n);
        e.1 += 1;
        e.2 += n;
    }
    // HAVING: the groups of at least the median group's vehicles (some
    // groups are kept, some dropped)
    let mut sizes: Vec<i64> = want.values().map(|g| g.1).collect();
    sizes.sort();
    let least = sizes[sizes.len() / 2];
    assert!(
        sizes[0] < least && least <= sizes[sizes.len() - 1],
        "{sizes:?}"
    );
    let want: Vec<Vec<String>> = want
        .into_iter()
        .filter(|(_, (_, vehicles, _))| *vehicles >= least)
        .map(|((start, parity), (most, vehicles, total))| {
            vec![
                start.to_string(),
                (start + 10_000).to_string(),
                parity.to_string(),
                most.to_string(),
                vehicles.to_string(),
                total.to_string(),
            ]
        })
        .collect();
    assert!(want.len() > 5, "{} groups", want.len());
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE per_window (ws BIGINT, we BIGINT, parity BIGINT, most BIGINT, \
             vehicles BIGINT, total BIGINT) WITH ('connector' = 'parquet', 'path' = '{}');\n\
             INSERT INTO per_window SELECT c.ws, c.we, c.parity, MAX(c.n), COUNT(*), SUM(n)\n\
             FROM ({COUNTS}) AS c WHERE c.n > 25 AND (c.vehicle_id + c.ws / 10000) % 3 <> 0\n\
             GROUP BY c.ws, c.parity, c.we HAVING COUNT(*) >= {least};",
            obd_table(&data, "'10' MINUTE"),
            out.display()
        )
    };
    in_every_mode(dir.path(), "cascaded", script, &want);
}

#[test]
fn joining_on_renamed_window_bounds_is_a_same_window_join() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let rows = input_rows(&data);
    let windows = per_vehicle_window(&rows);
    // counted: the rows faster than the median speed (so counts differ)
    let mut speeds: Vec<f64> = rows.iter().map(|r| r.2).collect();
    speeds.sort_by(f64::total_cmp);
    let fast = speeds[speeds.len() / 2].floor() as i64;
    // each vehicle's count and top speed per window, where the count is
    // the window's largest among vehicles of its parity (a renamed side
    // joined with a side that kept the names, on a key and the window)
    let count = |speeds: &[f64]| speeds.iter().filter(|s| **s > fast as f64).count();
    let mut most: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for ((v, start), speeds) in &windows {
        let m = most.entry((*start, v % 2)).or_default();
        *m = (*m).max(count(speeds));
    }
    let mut want: Vec<Vec<String>> = windows
        .iter()
        .filter(|((v, start), speeds)| count(speeds) > 0 && most[&(*start, v % 2)] == count(speeds))
        .map(|((v, start), speeds)| {
            let top = speeds.iter().cloned().fold(f64::MIN, f64::max);
            vec![
                v.to_string(),
                start.to_string(),
                (start + 10_000).to_string(),
                count(speeds).to_string(),
                format!("{top:?}"),
            ]
        })
        .collect();
    want.sort();
    // a few leaders per window and parity, not every vehicle
    assert!(
        want.len() >= 24 && want.len() < windows.len() * 3 / 4,
        "{} rows of {}",
        want.len(),
        windows.len()
    );
    let script = |out: &Path| {
        format!(
            "{}CREATE TABLE leaders (vehicle_id BIGINT, ws BIGINT, we BIGINT, n BIGINT, top DOUBLE) \
             WITH ('connector' = 'parquet', 'path' = '{}');\n\
             CREATE VIEW counts AS {};\n\
             CREATE VIEW most AS SELECT parity, MAX(n) AS most, ws AS s, we AS e \
             FROM counts GROUP BY parity, ws, we;\n\
             CREATE VIEW tops AS SELECT vehicle_id, MAX(speed) AS top, window_start, window_end \
             FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) \
             GROUP BY vehicle_id, window_start, window_end;\n\
             INSERT INTO leaders SELECT c.vehicle_id, c.ws, c.we, c.n, t.top\n\
             FROM (SELECT c.vehicle_id, c.ws, c.we, c.n FROM counts c JOIN most m \
             ON c.parity = m.parity AND c.ws = m.s AND c.we = m.e AND c.n = m.most) c \
             JOIN tops t ON c.vehicle_id = t.vehicle_id AND c.ws = t.window_start \
             AND c.we = t.window_end;",
            obd_table(&data, "'10' MINUTE"),
            out.display(),
            COUNTS.replace(" GROUP BY", &format!(" WHERE speed > {fast} GROUP BY"))
        )
    };
    in_every_mode(dir.path(), "joined", script, &want);
}

#[test]
fn renamed_bounds_that_clash_are_refused_and_one_bound_alone_is_an_ordinary_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let table = obd_table(&data, "'10' MINUTE");
    // the rows also have a column under the name a bound is read as
    refused(
        dir.path(),
        &format!(
            "{table}SELECT ws, we, MAX(window_start) FROM (SELECT window_start AS ws, \
             window_end AS we, vehicle_id AS window_start \
             FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) \
             GROUP BY vehicle_id, window_start, window_end) GROUP BY ws, we;"
        ),
        "reads the window bounds `ws` and `we` as window_start and window_end, but the rows \
         also have a `window_start` column",
    );
    // one bound alone is an ordinary key: a running aggregate (a changelog)
    let out = dir.path().join("half");
    common::sql::sql(
        dir.path(),
        &format!(
            "{table}CREATE TABLE half (ws BIGINT, vehicles BIGINT) WITH ('connector' = 'parquet', \
             'path' = '{}', 'changelog' = 'op');\n\
             INSERT INTO half SELECT ws, COUNT(*) FROM ({COUNTS}) GROUP BY ws;",
            out.display()
        ),
        &["--mode", "batch"],
    );
    let rows = common::sql::rows(&out);
    // an aggregate of a bound itself reads it; one bound alone in an ON
    // is an ordinary key (a regular join)
    let per = dir.path().join("per");
    let joined = dir.path().join("joined");
    common::sql::sql(
        dir.path(),
        &format!(
            "{table}CREATE TABLE per (ws BIGINT, vehicles BIGINT, lowest BIGINT) \
             WITH ('connector' = 'parquet', 'path' = '{}');\n\
             CREATE TABLE joined (vehicle_id BIGINT, ws BIGINT, n BIGINT) \
             WITH ('connector' = 'parquet', 'path' = '{}');\n\
             INSERT INTO per SELECT ws, COUNT(ws), MIN(ws) FROM ({COUNTS}) GROUP BY ws, we;\n\
             INSERT INTO joined SELECT a.vehicle_id, a.ws, b.n FROM ({COUNTS}) a JOIN ({COUNTS}) b \
             ON a.ws = b.ws AND a.vehicle_id = b.vehicle_id;",
            per.display(),
            joined.display()
        ),
        &["--mode", "batch"],
    );
    let windows = per_vehicle_window(&input_rows(&data));
    let mut vehicles: BTreeMap<i64, i64> = BTreeMap::new();
    for (_, start) in windows.keys() {
        *vehicles.entry(*start).or_default() += 1;
    }
    let want: Vec<Vec<String>> = vehicles
        .iter()
        .map(|(s, n)| vec![s.to_string(), n.to_string(), s.to_string()])
        .collect();
    assert_eq!(common::sql::rows(&per), want);
    let want: Vec<Vec<String>> = windows
        .iter()
        .map(|((v, s), speeds)| vec![v.to_string(), s.to_string(), speeds.len().to_string()])
        .collect();
    let mut want = want;
    want.sort();
    assert_eq!(common::sql::rows(&joined), want);

    // counts only grow: a window's final count is its largest
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r[2] != "delete") {
        let e = last.entry(r[0].parse().unwrap()).or_default();
        *e = (*e).max(r[1].parse().unwrap());
    }
    let mut want: BTreeMap<i64, i64> = BTreeMap::new();
    for (_, start) in windows.keys() {
        *want.entry(*start).or_default() += 1;
    }
    assert_eq!(last, want);
}
