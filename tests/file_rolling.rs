//! Rolling file sinks (Flink's `sink.rolling-policy.*`): a directory sink
//! closes a part once it holds `file-size` bytes, once it has been open
//! `rollover-interval`, or once no row came for `inactivity-interval`, and
//! starts the next one (`part-S-rKKKKK.EXT`, or `part-C-S-rKKKKK.EXT` in a
//! checkpointed run). Every row is written exactly once, in every mode and
//! with checkpoints; a one-file sink refuses to roll.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use std::path::Path;

use common::sql::{data, input_rows, obd_table, refused, sql};

/// The part files in `dir` (names), sorted.
fn parts(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-"))
        .collect();
    names.sort();
    names
}

/// Every (vehicle, time, speed bits) row in the Parquet parts of `dir`, sorted.
fn rows(dir: &Path) -> Vec<(i64, i64, u64)> {
    let mut out = Vec::new();
    for b in common::read_parquet_parts(dir) {
        let v = b.column(0).as_primitive::<Int64Type>();
        let t = b.column(1).as_primitive::<TimestampMillisecondType>();
        let s = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((v.value(i), t.value(i), s.value(i).to_bits()));
        }
    }
    out.sort();
    out
}

fn want(data: &Path) -> Vec<(i64, i64, u64)> {
    let mut w: Vec<(i64, i64, u64)> = input_rows(data)
        .into_iter()
        .map(|(v, t, s)| (v, t, s.to_bits()))
        .collect();
    w.sort();
    w
}

fn script(data: &Path, out: &Path, options: &str) -> String {
    format!(
        "{}CREATE TABLE copy (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE) \
         WITH ('connector' = 'filesystem', 'format' = 'parquet', 'path' = '{}'{options});\n\
         INSERT INTO copy SELECT * FROM obd;",
        obd_table(data, "'10' MINUTE"),
        out.display()
    )
}

/// `name` is `part-SSSSS-rKKKKK.parquet` (or with a checkpoint first).
fn rolled_name(name: &str, checkpointed: bool) -> bool {
    let Some(stem) = name
        .strip_prefix("part-")
        .and_then(|n| n.strip_suffix(".parquet"))
    else {
        return false;
    };
    let fields: Vec<&str> = stem.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match (checkpointed, fields.as_slice()) {
        (false, [s, r]) => digits(s, 5) && r.len() == 6 && digits(&r[1..], 5),
        (true, [c, s, r]) => digits(c, 8) && digits(s, 5) && r.len() == 6 && digits(&r[1..], 5),
        _ => false,
    }
}

#[test]
fn parts_roll_by_size_and_keep_every_row_once_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let want = want(&data);
    for mode in ["batch", "pipelined"] {
        for p in ["1", "2"] {
            let out = dir.path().join(format!("copy-{mode}-{p}"));
            let text = script(&data, &out, ", 'sink.rolling-policy.file-size' = '32KB'");
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            let names = parts(&out);
            // 18,000 rows of about 14 bytes each: some subtask rolled
            assert!(
                names.len() > p.parse::<usize>().unwrap(),
                "{mode} p={p}: {names:?}"
            );
            assert!(names.iter().all(|n| rolled_name(n, false)), "{names:?}");
            assert_eq!(rows(&out), want, "{mode} p={p}");
        }
    }
    // without a policy: one part per subtask, named as before
    let out = dir.path().join("one-part");
    sql(
        dir.path(),
        &script(&data, &out, ""),
        &["--parallelism", "2"],
    );
    assert_eq!(parts(&out), ["part-00000.parquet", "part-00001.parquet"]);
}

#[test]
fn a_checkpointed_run_publishes_its_rolled_parts_with_each_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("copy");
    let text = script(
        &data,
        &out,
        ", 'sink.rolling-policy.file-size' = '32KB', 'scan.speed' = '200x'",
    )
    .replace(
        "'format' = 'parquet');\n",
        "'format' = 'parquet', 'scan.speed' = '200x');\n",
    );
    sql(
        dir.path(),
        &text,
        &[
            "--mode",
            "pipelined",
            "--parallelism",
            "2",
            "--checkpoint-interval",
            "100ms",
            "--checkpoint-dir",
            dir.path().join("ck").to_str().unwrap(),
        ],
    );
    let names = parts(&out);
    assert!(names.iter().all(|n| rolled_name(n, true)), "{names:?}");
    let checkpoints: std::collections::BTreeSet<&str> = names.iter().map(|n| &n[5..13]).collect();
    assert!(
        checkpoints.len() > 1,
        "parts of several checkpoints: {names:?}"
    );
    assert_eq!(rows(&out), want(&data));
}

#[test]
fn parts_roll_on_time_while_a_paced_source_writes() {
    let dir = tempfile::tempdir().unwrap();
    // 20 s of readings in one file replayed at 10x: its 4 batches of 8192
    // rows are due 0.55 s apart (pacing holds each until its first row's
    // time), so parts roll on the timer between writes too
    let data = dir.path().join("obd");
    common::generate_obd(&data, 500, 20, 1);
    let out = dir.path().join("copy");
    let text = script(
        &data,
        &out,
        ", 'sink.rolling-policy.rollover-interval' = '300 ms', \
         'sink.rolling-policy.check-interval' = '50 ms'",
    )
    .replace(
        "'format' = 'parquet');\n",
        "'format' = 'parquet', 'scan.speed' = '10x');\n",
    );
    sql(
        dir.path(),
        &text,
        &["--mode", "pipelined", "--parallelism", "1"],
    );
    let names = parts(&out);
    // the batches are written at about 0, 0.55, 1.1 and 1.65 s: the first
    // part rolls on the timer at 0.3 s, before the second batch comes, and
    // so does the second (writes alone would roll only on the 2nd and 4th
    // write: two parts)
    assert!(names.len() >= 3, "rolled every 300 ms for 1.6 s: {names:?}");
    assert!(names.iter().all(|n| rolled_name(n, false)), "{names:?}");
    assert_eq!(rows(&out), want(&data));
}

#[test]
fn a_one_file_sink_refuses_to_roll_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let one = dir.path().join("copy.parquet");
    refused(
        dir.path(),
        &script(&data, &one, ", 'sink.rolling-policy.file-size' = '1MB'"),
        "is one file, which cannot roll into several",
    );
    let out = dir.path().join("copy");
    refused(
        dir.path(),
        &script(&data, &out, ", 'sink.rolling-policy.file-size' = 'huge'"),
        "'sink.rolling-policy.file-size' = 'huge' is not a size",
    );
    refused(
        dir.path(),
        &script(
            &data,
            &out,
            ", 'sink.rolling-policy.rollover-interval' = '0 s'",
        ),
        "'sink.rolling-policy.rollover-interval' = '0 s' is not a duration",
    );
    assert!(!one.exists() && !out.exists());
}

#[test]
fn a_partitioned_sink_rolls_each_partitions_parts_apart() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("by_parity");
    let text = format!(
        "{}CREATE TABLE by_parity (vehicle_id BIGINT, speed DOUBLE, parity STRING) \
         PARTITIONED BY (parity) WITH ('connector' = 'filesystem', 'format' = 'csv', \
         'path' = '{}', 'sink.rolling-policy.file-size' = '16KB');\n\
         INSERT INTO by_parity SELECT vehicle_id, speed, CAST(vehicle_id % 2 AS VARCHAR) FROM obd;",
        obd_table(&data, "'10' MINUTE"),
        out.display()
    );
    sql(
        dir.path(),
        &text,
        &["--mode", "batch", "--parallelism", "2"],
    );
    let mut want: std::collections::BTreeMap<String, Vec<(i64, u64)>> = Default::default();
    for (v, _, s) in input_rows(&data) {
        want.entry((v % 2).to_string())
            .or_default()
            .push((v, s.to_bits()));
    }
    for (parity, mut rows) in want {
        let partition = out.join(format!("parity={parity}"));
        let names: Vec<String> = parts(&partition);
        assert!(names.len() > 2, "{parity}: {names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.ends_with(".csv") && n.contains("-r0")),
            "{names:?}"
        );
        let mut got = Vec::new();
        for n in &names {
            let text = std::fs::read_to_string(partition.join(n)).unwrap();
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some("vehicle_id,speed"), "{n} has its header");
            for line in lines {
                let (v, s) = line.split_once(',').unwrap();
                got.push((
                    v.parse::<i64>().unwrap(),
                    s.parse::<f64>().unwrap().to_bits(),
                ));
            }
        }
        rows.sort();
        got.sort();
        assert_eq!(got, rows, "partition {parity}");
    }
}

#[test]
fn json_parts_roll_on_inactivity_and_an_empty_result_keeps_one_part_per_subtask() {
    let dir = tempfile::tempdir().unwrap();
    // 4 batches about 0.55 s apart (see parts_roll_on_time_while_a_paced_source_writes)
    let data = dir.path().join("obd");
    common::generate_obd(&data, 500, 20, 1);
    let json = |out: &Path, filter: &str, extra: &str| {
        format!(
            "{}CREATE TABLE copy (vehicle_id BIGINT, speed DOUBLE) WITH ('connector' = \
             'filesystem', 'format' = 'json', 'path' = '{}'{extra});\n\
             INSERT INTO copy SELECT vehicle_id, speed FROM obd{filter};",
            obd_table(&data, "'10' MINUTE").replace(
                "'format' = 'parquet');\n",
                "'format' = 'parquet', 'scan.speed' = '10x');\n",
            ),
            out.display()
        )
    };
    let out = dir.path().join("copy");
    let idle = ", 'sink.rolling-policy.inactivity-interval' = '150 ms', \
                'sink.rolling-policy.check-interval' = '20 ms'";
    sql(
        dir.path(),
        &json(&out, "", idle),
        &["--mode", "pipelined", "--parallelism", "1"],
    );
    let names = parts(&out);
    assert_eq!(
        names.len(),
        4,
        "each batch rolls 200 ms after it: {names:?}"
    );
    let mut got = Vec::new();
    for n in &names {
        assert!(n.ends_with(".jsonl") && n.contains("-r0000"), "{n}");
        for line in std::fs::read_to_string(out.join(n)).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            got.push((
                v["vehicle_id"].as_i64().unwrap(),
                v["speed"].as_f64().unwrap().to_bits(),
            ));
        }
    }
    let mut want: Vec<(i64, u64)> = input_rows(&data)
        .into_iter()
        .map(|(v, _, s)| (v, s.to_bits()))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // no rows: one (empty, valid) part per subtask, and none for the empty
    // batches a filter leaves
    let empty = dir.path().join("empty");
    let text = json(
        &empty,
        " WHERE speed < 0",
        ", 'sink.rolling-policy.file-size' = '1KB'",
    )
    .replace(", 'scan.speed' = '10x'", "");
    sql(
        dir.path(),
        &text,
        &["--mode", "pipelined", "--parallelism", "2"],
    );
    assert_eq!(
        parts(&empty),
        ["part-00000-r00000.jsonl", "part-00001-r00000.jsonl"]
    );
    for n in parts(&empty) {
        assert_eq!(std::fs::read_to_string(empty.join(&n)).unwrap(), "", "{n}");
    }
}

#[test]
fn shards_roll_their_own_parts_and_a_rerun_replaces_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("copy");
    let text = script(&data, &out, ", 'sink.rolling-policy.file-size' = '32KB'");
    let file = dir.path().join("shard.sql");
    std::fs::write(&file, &text).unwrap();
    let run = |shard: &str, p: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .env_remove("WEIR_SHARD")
            .env_remove("CHECKPOINT_DIR")
            .arg("sql")
            .arg(&file)
            .args(["--mode", "batch", "--parallelism", p, "--shard", shard])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run("0/2", "2");
    run("1/2", "1");
    let names = parts(&out);
    let of = |shard: &str| -> Vec<&String> {
        names
            .iter()
            .filter(|n| n.starts_with(&format!("part-shard-{shard}-of-2-")))
            .collect()
    };
    assert!(of("0").len() > 1 && !of("1").is_empty(), "{names:?}");
    assert!(
        names.iter().all(|n| n.contains("-r0")),
        "every part of a rolling sink has its index: {names:?}"
    );
    assert_eq!(rows(&out), want(&data));
    // shard 1 again, at another parallelism: its parts replaced, shard 0's kept
    let before: Vec<String> = of("0").into_iter().cloned().collect();
    run("1/2", "2");
    let names_after = parts(&out);
    for n in &before {
        assert!(names_after.contains(n), "{n} kept");
    }
    assert_eq!(rows(&out), want(&data), "each row once after the re-run");
}

#[test]
fn a_killed_checkpointed_run_keeps_each_rolled_row_exactly_once() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    // one file, paced: 300 s of event time at 100x, about 3 s a run; parts
    // roll every 8 KB, several times between two checkpoints (100 ms)
    let data = dir.path().join("obd");
    common::generate_obd(&data, 40, 300, 1);
    let out = dir.path().join("copy");
    let text = script(&data, &out, ", 'sink.rolling-policy.file-size' = '8KB'").replace(
        "'format' = 'parquet');\n",
        "'format' = 'parquet', 'scan.speed' = '100x');\n",
    );
    let file = dir.path().join("rolled.sql");
    std::fs::write(&file, text).unwrap();
    let ckpt = dir.path().join("ckpt");
    let mut seed = 7u64;
    let mut kills = 0;
    for _ in 0..40 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .env_remove("WEIR_SHARD")
            .env_remove("CHECKPOINT_DIR")
            .arg("sql")
            .arg(&file)
            .args(["--parallelism", "2", "--checkpoint-interval", "100ms"])
            .arg("--checkpoint-dir")
            .arg(&ckpt)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if kills < 3 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let until = Instant::now() + Duration::from_millis(300 + (seed >> 33) % 400);
            let mut done = None;
            while Instant::now() < until && done.is_none() {
                done = child.try_wait().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            if done.is_none() {
                child.kill().unwrap(); // SIGKILL, rolled parts waiting for a checkpoint
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        break;
    }
    assert_eq!(kills, 3, "killed three times before finishing");
    let names = parts(&out);
    assert!(names.iter().all(|n| rolled_name(n, true)), "{names:?}");
    assert!(names.len() >= 3, "{names:?}");
    assert_eq!(
        rows(&out),
        want(&data),
        "every row once after {kills} kills"
    );
}
