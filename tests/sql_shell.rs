//! `weir sql` without a script: the interactive shell keeps definitions
//! for the session, prints a SELECT's rows as a table equal to an oracle
//! computed here, runs INSERTs, survives a mistake (naming it) and leaves
//! on `quit;`; a pipe without `--shell` is read as one script; the shell
//! refuses the flags that only make sense for a script and writes a
//! history file only when `--history` names it.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `weir sql ARGS` with `input` on its standard input.
fn weir_sql(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("sql")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // a run that refuses its flags exits before reading its input: the
    // pipe is then closed, and what it said is in its output
    match child.stdin.take().unwrap().write_all(input.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    child.wait_with_output().unwrap()
}

const TABLE: &str =
    "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
                     WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n  \
                     WITH ('connector' = 'parquet', 'path' = 'obd');\n";

/// The rows of the tables printed in `out` (header lines, which name
/// `vehicle_id`, left out), each as its cells.
fn table_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| l.starts_with("| ") && !l.contains("vehicle_id"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_shell_keeps_definitions_prints_tables_and_survives_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    common::generate_obd(&dir.path().join("obd"), 5, 20, 1);
    // the oracle: readings and top speed per vehicle
    let mut want: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    for b in common::read_parquet_parts(&dir.path().join("obd")) {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Float64Type, Int64Type};
        let v = b
            .column_by_name("vehicle_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let s = b
            .column_by_name("speed")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let e = want.entry(v.value(i)).or_insert((0, f64::MIN));
            e.0 += 1;
            e.1 = e.1.max(s.value(i));
        }
    }
    let session = format!(
        "{TABLE}SELECT nope FROM obd;\n\
         SELECT vehicle_id, COUNT(*) AS n, MAX(speed) AS top\n  \
         FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' HOUR))\n  \
         GROUP BY window_start, window_end, vehicle_id;\n\
         CREATE TABLE fast (vehicle_id BIGINT, speed DOUBLE) WITH ('connector' = 'parquet', 'path' = 'fast');\n\
         INSERT INTO fast SELECT vehicle_id, speed FROM obd WHERE speed > 60;\n\
         SHOW TABLES;\n\
         quit;\n\
         SELECT 'never run';\n"
    );
    let o = weir_sql(dir.path(), &["--shell", "--mode", "batch"], &session);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    // a mistake is named, and the session goes on (the exit status says one failed)
    assert!(
        err.contains("line 1, column 8: unknown column `nope`"),
        "places count from the statement typed: {err}"
    );
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    // the SELECT's rows, as a table, equal the oracle
    let rows = table_rows(&out);
    let mut got: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.len() == 3) {
        got.insert(
            r[0].parse().unwrap(),
            (r[1].parse().unwrap(), r[2].parse().unwrap()),
        );
    }
    assert_eq!(got, want, "{out}");
    assert!(out.contains("| vehicle_id | n "), "{out}");
    assert!(out.contains(&format!("({} rows)", want.len())), "{out}");
    // the INSERT ran, and the definitions stayed for SHOW TABLES
    let written: usize = common::read_parquet_parts(&dir.path().join("fast"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert!(written > 0);
    assert!(out.contains(&format!("{written} rows written")), "{out}");
    assert!(out.contains("\nfast\nobd\n"), "{out}");
    assert!(!out.contains("never run"), "quit; leaves");
    // no history file appears without --history
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "only obd/ and fast/: {names:?}");
}

#[test]
fn a_pipe_is_a_script_and_the_shell_refuses_script_flags() {
    let dir = tempfile::tempdir().unwrap();
    common::generate_obd(&dir.path().join("obd"), 3, 10, 1);
    let o = weir_sql(
        dir.path(),
        &["--mode", "batch"],
        &format!("{TABLE}SELECT vehicle_id FROM obd WHERE speed < 0;"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for flag in ["--json", "--explain"] {
        let o = weir_sql(dir.path(), &["--shell", flag], "quit;\n");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(flag), "{flag}: {err}");
    }
    let o = weir_sql(dir.path(), &["--shell", "--history", "obd"], "quit;\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--history"), "{err}");
    // --history keeps the statements in the file it names, and reads them back
    let o = weir_sql(
        dir.path(),
        &["--shell", "--history", "h.txt"],
        &format!("{}\nSHOW TABLES;\nquit;\n", TABLE.replace('\n', " ")),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let kept = std::fs::read_to_string(dir.path().join("h.txt")).unwrap();
    assert!(
        kept.contains("SHOW TABLES;") && kept.contains("CREATE TABLE obd"),
        "{kept}"
    );
    let o = weir_sql(dir.path(), &["--shell", "--history", "h.txt"], "quit;\n");
    assert!(o.status.success());
    let again = std::fs::read_to_string(dir.path().join("h.txt")).unwrap();
    assert!(again.contains("SHOW TABLES;"), "{again}");
}

#[test]
fn a_function_created_in_the_shell_stays_for_the_session() {
    let dir = tempfile::tempdir().unwrap();
    common::generate_obd(&dir.path().join("obd"), 4, 5, 1);
    let session = format!(
        "{TABLE}CREATE FUNCTION cc AS 'com.github.nexmark.flink.udf.CountChar';\n\
         CREATE FUNCTION cc AS 'com.github.nexmark.flink.udf.CountChar';\n\
         SELECT DISTINCT vehicle_id, cc('cacc', 'c') AS n FROM obd;\n\
         quit;\n"
    );
    let o = weir_sql(dir.path(), &["--shell", "--mode", "batch"], &session);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    // the second CREATE met the first one's binding
    assert!(err.contains("cc() already exists"), "{err}");
    let rows = table_rows(&out);
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows.iter().all(|r| r[1] == "3"), "{out}");
}
