//! Event-time temporal joins in SQL (`JOIN versions FOR SYSTEM_TIME AS OF
//! l.event_time ON l.k = r.k`): each left row meets the right row of its
//! key with the greatest time at or before its own (at equal times, the
//! greatest by content). Inner and LEFT joins equal a brute-force oracle
//! pipelined and in batch at parallelism 1 and 3; a processing-time or
//! keyless one is refused by name.

mod common;

use std::path::Path;

use common::sql::{data, in_every_mode, input_rows, obd_table, refused};

#[test]
fn each_row_meets_the_version_current_at_its_time_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let left = data(dir.path());
    let right = dir.path().join("versions");
    // 30 vehicles for 90 s (the left has 50 for 120 s): later left rows
    // keep the last version, other vehicles have none
    common::generate_obd(&right, 30, 90, 3);
    let versions = input_rows(&right);
    let lefts: Vec<(i64, i64, f64)> = input_rows(&left)
        .into_iter()
        .filter(|r| r.0 % 4 == 1)
        .collect();
    for outer in [false, true] {
        let mut want = Vec::new();
        for &(v, t, s) in &lefts {
            // the version: greatest (time, speed) at or before t
            let version = versions
                .iter()
                .filter(|r| r.0 == v && r.1 <= t)
                .max_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)));
            match version {
                Some(&(_, rt, rs)) => want.push(vec![
                    v.to_string(),
                    t.to_string(),
                    format!("{s:?}"),
                    format!("{rs:?}"),
                    rt.to_string(),
                ]),
                None if outer => want.push(vec![
                    v.to_string(),
                    t.to_string(),
                    format!("{s:?}"),
                    "null".into(),
                    "null".into(),
                ]),
                None => {}
            }
        }
        want.sort();
        assert!(want.len() > 1000);
        if outer {
            assert!(
                want.iter().any(|r| r[3] == "null"),
                "rows without a version"
            );
        }
        let script = |out: &Path| {
            format!(
                "{}CREATE TABLE versions (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
                 WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n  \
                 WITH ('connector' = 'parquet', 'path' = '{}');\n\
                 CREATE TABLE out (vehicle_id BIGINT, t BIGINT, speed DOUBLE, ref DOUBLE, rt BIGINT) \
                 WITH ('connector' = 'parquet', 'path' = '{}');\n\
                 INSERT INTO out SELECT o.vehicle_id, CAST(o.event_time AS BIGINT), o.speed, r.speed, \
                 CAST(r.event_time AS BIGINT)\n\
                 FROM obd AS o {} JOIN versions FOR SYSTEM_TIME AS OF o.event_time AS r\n  \
                 ON o.vehicle_id = r.vehicle_id\nWHERE o.vehicle_id % 4 = 1;",
                obd_table(&left, "'10' MINUTE"),
                right.display(),
                out.display(),
                if outer { "LEFT" } else { "" }
            )
        };
        in_every_mode(
            dir.path(),
            if outer { "left" } else { "inner" },
            script,
            &want,
        );
    }
}

#[test]
fn temporal_joins_it_cannot_run_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let table = obd_table(&data, "'1' SECOND");
    // the same rows without a WATERMARK: no versions in time
    let plain = format!(
        "CREATE TABLE plain (vehicle_id BIGINT, speed DOUBLE) WITH ('connector' = 'parquet', 'path' = '{}');\n",
        data.display()
    );
    let cases = [
        (
            format!("{table}SELECT o.speed FROM obd o JOIN obd FOR SYSTEM_TIME AS OF o.speed AS r ON o.vehicle_id = r.vehicle_id"),
            "FOR SYSTEM_TIME AS OF `speed`: the left side's event time is `event_time`",
        ),
        (
            format!("{table}SELECT o.speed FROM obd o JOIN obd FOR SYSTEM_TIME AS OF o.event_time AS r ON o.speed > r.speed"),
            "a temporal join needs a key equality",
        ),
        (
            format!("{table}{plain}SELECT o.speed FROM obd o JOIN plain FOR SYSTEM_TIME AS OF o.event_time AS r ON o.vehicle_id = r.vehicle_id"),
            "a temporal join's right side is a versioned table",
        ),
    ];
    for (text, says) in cases {
        refused(dir.path(), &text, says);
    }
}
