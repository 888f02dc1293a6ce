//! `weir sql` with checkpoints and replay: a script run with
//! `--checkpoint-dir` and SIGKILLed at random moments (at least 5 times),
//! then restarted until it finishes, commits exactly the rows of an
//! uninterrupted batch run; `SET 'state.checkpoints.dir'` and
//! `'execution.checkpointing.interval'` take checkpoints too (an interval
//! without a directory is refused); a Parquet table's `'scan.from'`,
//! `'scan.until'` (time travel) and `'scan.speed'` (pacing) options keep
//! and pace exactly the rows in range.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sql::{input_rows, refused, sql};

fn script(data: &Path, out: &Path, table_options: &str, set: &str) -> String {
    format!(
        "{set}CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
         WATERMARK FOR event_time AS event_time - INTERVAL '1' MINUTE)\n  \
         WITH ('connector' = 'parquet', 'path' = '{}'{table_options});\n\
         CREATE TABLE out (vehicle_id BIGINT, window_end BIGINT, n BIGINT, top DOUBLE)\n  \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO out SELECT vehicle_id, window_end, COUNT(*), MAX(speed)\n\
         FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND))\n\
         GROUP BY window_start, window_end, vehicle_id;",
        data.display(),
        out.display()
    )
}

/// Waits up to `d` for `child` to exit on its own.
fn wait_for(child: &mut std::process::Child, d: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn a_killed_script_resumes_from_its_checkpoints_and_commits_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    // one file: one split, paced as one 600 s replay
    common::generate_obd(&data, 40, 600, 1);
    // the reference: the same script, uninterrupted, in batch
    let reference = dir.path().join("reference");
    sql(
        dir.path(),
        &script(&data, &reference, "", ""),
        &["--mode", "batch"],
    );
    let expected = common::read_parquet_parts(&reference);
    assert!(expected.iter().map(|b| b.num_rows()).sum::<usize>() > 2000);
    // paced: 600 s of event time at 100x, about 6 s a run
    let out = dir.path().join("out");
    let file = dir.path().join("paced.sql");
    std::fs::write(&file, script(&data, &out, ", 'scan.speed' = '100x'", "")).unwrap();
    let ckpt = dir.path().join("ckpt");
    let mut seed = 11u64;
    let mut kills = 0;
    let mut last = None;
    for _ in 0..60 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("sql")
            .arg(&file)
            .args([
                "--parallelism",
                "2",
                "--json",
                "--checkpoint-interval",
                "40ms",
            ])
            .arg("--checkpoint-dir")
            .arg(&ckpt)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if kills < 5 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let delay = Duration::from_millis(150 + (seed >> 33) % 300);
            if wait_for(&mut child, delay).is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        last = Some(String::from_utf8_lossy(&output.stdout).to_string());
        break;
    }
    assert_eq!(kills, 5, "killed five times before finishing");
    let metrics: serde_json::Value = serde_json::from_str(&last.expect("finished")).unwrap();
    assert!(
        metrics["checkpoints"]["restored_from"].is_u64(),
        "the last run restored a checkpoint: {metrics}"
    );
    assert!(
        ckpt.join("paced").is_dir(),
        "checkpoints under the script's name"
    );
    let got = common::read_parquet_parts(&out);
    weir::compare::same_rows(&got, &expected, &expected[0].schema(), 1e-9)
        .unwrap_or_else(|e| panic!("after {kills} kills: {e}"));
}

#[test]
fn set_options_take_checkpoints_and_an_interval_needs_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 10, 120, 2);
    let out = dir.path().join("out");
    let set =
        "SET 'state.checkpoints.dir' = 'ckpt';\nSET 'execution.checkpointing.interval' = '30ms';\n";
    let stdout = sql(
        dir.path(),
        &script(&data, &out, ", 'scan.speed' = '300x'", set),
        &["--json"],
    );
    let metrics: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        metrics["checkpoints"]["completed"].as_u64().unwrap_or(0) > 0,
        "checkpoints were taken: {metrics}"
    );
    // relative to the script's folder, under the script's name
    assert!(dir.path().join("ckpt").join("job").is_dir());
    refused(
        dir.path(),
        &script(
            &data,
            &dir.path().join("out2"),
            "",
            "SET 'execution.checkpointing.interval' = '1s';\n",
        ),
        "checkpoints need a directory",
    );
    refused(
        dir.path(),
        &script(
            &data,
            &dir.path().join("out3"),
            ", 'scan.speed' = 'fast-ish'",
            "",
        ),
        "is not a speed",
    );
}

#[test]
fn scan_from_and_until_keep_exactly_the_rows_in_range_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 20, 120, 2);
    let rows = input_rows(&data);
    let t0 = rows.iter().map(|r| r.1).min().unwrap();
    let (from, until) = (t0 + 30_000, t0 + 75_000);
    let mut want: Vec<(i64, i64)> = rows
        .iter()
        .filter(|r| r.1 >= from && r.1 < until)
        .map(|r| (r.0, r.1))
        .collect();
    want.sort();
    assert!(want.len() > 1000 && want.len() < rows.len() / 2);
    for mode in ["batch", "pipelined"] {
        let out = dir.path().join(format!("range-{mode}"));
        let text = format!(
            "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
             WATERMARK FOR event_time AS event_time - INTERVAL '1' MINUTE)\n  \
             WITH ('connector' = 'parquet', 'path' = '{}', 'scan.from' = '{from}', 'scan.until' = '{until}');\n\
             CREATE TABLE out (vehicle_id BIGINT, t BIGINT) WITH ('connector' = 'parquet', 'path' = '{}');\n\
             INSERT INTO out SELECT vehicle_id, CAST(event_time AS BIGINT) FROM obd;",
            data.display(),
            out.display()
        );
        sql(dir.path(), &text, &["--mode", mode]);
        let mut got: Vec<(i64, i64)> = Vec::new();
        for b in common::read_parquet_parts(&out) {
            use arrow_array::cast::AsArray;
            use arrow_array::types::Int64Type;
            let (v, t) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(1).as_primitive::<Int64Type>(),
            );
            got.extend((0..b.num_rows()).map(|i| (v.value(i), t.value(i))));
        }
        got.sort();
        assert_eq!(got, want, "{mode}");
    }
}
