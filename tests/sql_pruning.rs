//! Projection pushdown: a SQL table's source reads only the columns its
//! queries name (Parquet decodes no other column), and the rows are the
//! same as reading every column. Anything that reads columns without
//! naming them (`*`) reads them all; errors still name every column the
//! table holds; a declared column missing from the files is still an error
//! when no query reads it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::sql::{data, in_every_mode, input_rows, obd_table, refused, sql};

/// The source line of an `EXPLAIN`'s logical plan.
fn source_line(explained: &str) -> String {
    explained
        .lines()
        .find(|l| l.contains("parquet_source"))
        .unwrap_or_else(|| panic!("no source in {explained}"))
        .to_string()
}

#[test]
fn a_source_reads_only_the_columns_queries_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let table = obd_table(&data, "'10' MINUTE");
    let counts = "SELECT vehicle_id, COUNT(*) AS n, window_start \
        FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) \
        GROUP BY vehicle_id, window_start, window_end";
    let explained = sql(
        dir.path(),
        &format!("{table}EXPLAIN {counts};"),
        &["--mode", "batch"],
    );
    let line = source_line(&explained);
    assert!(
        line.contains("[vehicle_id, event_time]"),
        "speed is not read: {line}"
    );
    // with `*` somewhere in the script every column is read
    let explained = sql(
        dir.path(),
        &format!("{table}EXPLAIN SELECT * FROM obd WHERE speed > 1;"),
        &["--mode", "batch"],
    );
    let line = source_line(&explained);
    assert!(line.contains("[vehicle_id, event_time, speed]"), "{line}");

    // ROW_NUMBER() breaks ties by the rows' whole content: every column is
    // read, so a column no query names still decides as it would unpruned
    let explained = sql(
        dir.path(),
        &format!(
            "{table}EXPLAIN SELECT vehicle_id, event_time FROM (SELECT vehicle_id, event_time, \
             ROW_NUMBER() OVER (PARTITION BY vehicle_id ORDER BY event_time) AS rn FROM obd) \
             WHERE rn = 1;"
        ),
        &["--mode", "batch"],
    );
    let line = source_line(&explained);
    assert!(line.contains("[vehicle_id, event_time, speed]"), "{line}");

    // the pruned job's rows: the oracle's, in every mode (no row is late
    // behind a 10 minute watermark)
    let mut want: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for (v, t, _) in input_rows(&data) {
        *want.entry((v, t.div_euclid(10_000) * 10_000)).or_default() += 1;
    }
    let want: Vec<Vec<String>> = {
        let mut w: Vec<Vec<String>> = want
            .iter()
            .map(|((v, s), n)| vec![v.to_string(), n.to_string(), s.to_string()])
            .collect();
        w.sort();
        w
    };
    in_every_mode(
        dir.path(),
        "pruned",
        |out: &Path| {
            format!(
                "{table}CREATE TABLE o (vehicle_id BIGINT, n BIGINT, window_start TIMESTAMP(3)) \
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
                 INSERT INTO o {counts};",
                out.display()
            )
        },
        &want,
    );
}

#[test]
fn errors_still_name_the_columns_no_query_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let table = obd_table(&data, "'5' SECOND");
    // `speed` is named nowhere, so it is not read; the typo's hint still finds it
    let err = refused(
        dir.path(),
        &format!("{table}SELECT vehicle_id, MAX(sped) FROM obd GROUP BY vehicle_id;"),
        "unknown column `sped`; did you mean `speed`?",
    );
    assert!(err.contains("`speed`"), "{err}");
    // a declared column the files lack is an error even when no query reads it
    let missing = format!(
        "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), rpm DOUBLE, \
         WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND) WITH ('connector' = \
         'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
         SELECT vehicle_id, COUNT(*) FROM obd GROUP BY vehicle_id;",
        data.display()
    );
    let err = refused(dir.path(), &missing, "has no column `rpm`");
    assert!(err.contains("`speed`"), "names what the files hold: {err}");
}
