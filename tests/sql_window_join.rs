//! Window joins of window table functions' raw rows in SQL (Flink's window
//! join): `TABLE(TUMBLE(…)) L JOIN TABLE(TUMBLE(…)) R ON L.k = R.k AND
//! L.window_start = R.window_start AND L.window_end = R.window_end` pairs
//! the rows of each key within each window (a HOP's rows in every window
//! they fall in). The pairs equal a brute-force oracle pipelined and in
//! batch at parallelism 1 and 3, inner and left outer.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::sql::{data, in_every_mode, input_rows, obd_table};

/// The windows a row at time `t` falls in.
type WindowsOf = Box<dyn Fn(i64) -> Vec<(i64, i64)>>;

/// (vehicle, window start, window end) → the (time, speed) of its rows.
type Windows = BTreeMap<(i64, i64, i64), Vec<(i64, f64)>>;

fn windows(rows: &[(i64, i64, f64)], of: impl Fn(i64) -> Vec<(i64, i64)>) -> Windows {
    let mut out = Windows::new();
    for &(v, t, s) in rows {
        for (start, end) in of(t) {
            out.entry((v, start, end)).or_default().push((t, s));
        }
    }
    out
}

#[test]
fn window_joins_of_raw_rows_pair_each_keys_rows_within_each_window() {
    let dir = tempfile::tempdir().unwrap();
    let left = data(dir.path());
    let right = dir.path().join("other");
    common::generate_obd(&right, 30, 90, 3);
    let (l_rows, r_rows): (Vec<_>, Vec<_>) = (
        input_rows(&left).into_iter().filter(|r| r.0 < 8).collect(),
        input_rows(&right).into_iter().filter(|r| r.0 < 8).collect(),
    );
    let tumble = |t: i64| {
        let s = t.div_euclid(10_000) * 10_000;
        vec![(s, s + 10_000)]
    };
    let hop = |t: i64| {
        let s = t.div_euclid(5_000) * 5_000;
        vec![(s, s + 10_000), (s - 5_000, s + 5_000)]
    };
    let cases: [(&str, &str, WindowsOf); 4] = [
        (
            "HOP",
            "INTERVAL '5' SECOND, INTERVAL '10' SECOND",
            Box::new(hop),
        ),
        ("TUMBLE", "INTERVAL '10' SECOND", Box::new(tumble)),
        ("TUMBLE", "INTERVAL '10' SECOND", Box::new(tumble)),
        (
            "HOP",
            "INTERVAL '5' SECOND, INTERVAL '10' SECOND",
            Box::new(hop),
        ),
    ];
    for (case, (tvf, args, of)) in cases.into_iter().enumerate() {
        // the third case: a left outer join (left rows without a partner
        // in their window come once, with nulls)
        let outer = case == 2;
        let (lw, rw) = (windows(&l_rows, &of), windows(&r_rows, &of));
        let mut want = Vec::new();
        for (k, ls) in &lw {
            let rs = rw.get(k);
            for (lt, lspeed) in ls {
                match rs {
                    Some(rs) => {
                        for (rt, rspeed) in rs {
                            want.push(vec![
                                k.0.to_string(),
                                k.1.to_string(),
                                k.2.to_string(),
                                lt.to_string(),
                                format!("{lspeed:?}"),
                                rt.to_string(),
                                format!("{rspeed:?}"),
                            ]);
                        }
                    }
                    None if outer => want.push(vec![
                        k.0.to_string(),
                        k.1.to_string(),
                        k.2.to_string(),
                        lt.to_string(),
                        format!("{lspeed:?}"),
                        "null".into(),
                        "null".into(),
                    ]),
                    None => {}
                }
            }
        }
        want.sort();
        assert!(want.len() > 1000, "{tvf}: {} pairs", want.len());
        if outer {
            assert!(
                want.iter().any(|r| r[5] == "null"),
                "left rows without a partner"
            );
        }
        // the first case joins the window functions directly, the others
        // subqueries of their rows (which carry the window's columns)
        let (l_from, r_from, filter) = if case == 0 {
            (
                format!("TABLE({tvf}(TABLE obd, DESCRIPTOR(event_time), {args})) L"),
                format!("TABLE({tvf}(TABLE other, DESCRIPTOR(event_time), {args})) R"),
                "\nWHERE L.vehicle_id < 8 AND R.vehicle_id < 8",
            )
        } else {
            (
                format!("(SELECT * FROM TABLE({tvf}(TABLE obd, DESCRIPTOR(event_time), {args})) WHERE vehicle_id < 8) L"),
                format!("(SELECT * FROM TABLE({tvf}(TABLE other, DESCRIPTOR(event_time), {args})) WHERE vehicle_id < 8) R"),
                "",
            )
        };
        let script = |out: &Path| {
            format!(
                "{}CREATE TABLE other (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
                 WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n  \
                 WITH ('connector' = 'parquet', 'path' = '{}');\n\
                 CREATE TABLE pairs (vehicle_id BIGINT, window_start BIGINT, window_end BIGINT, lt BIGINT, \
                 ls DOUBLE, rt BIGINT, rs DOUBLE) WITH ('connector' = 'parquet', 'path' = '{}');\n\
                 INSERT INTO pairs SELECT L.vehicle_id, L.window_start, R.window_end, \
                 CAST(L.event_time AS BIGINT), L.speed, CAST(R.event_time AS BIGINT), R.speed\n\
                 FROM {l_from}\n{} JOIN {r_from}\n\
                 ON L.vehicle_id = R.vehicle_id AND L.window_start = R.window_start AND L.window_end = R.window_end{filter};",
                obd_table(&left, "'10' MINUTE"),
                right.display(),
                out.display(),
                if outer { "LEFT" } else { "" }
            )
        };
        in_every_mode(dir.path(), &format!("{tvf}-{case}"), script, &want);
    }
}
