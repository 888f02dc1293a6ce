//! Re-keying between shards through a broker: per-vehicle averages (keyed
//! by vehicle), then each window's three fastest vehicles (keyed by the
//! window), run as three `weir sql --shard I/3 --repartition-brokers …`
//! processes, equal a brute-force oracle and one process, pipelined and in
//! batch; a shard SIGKILLed five times and restarted from its checkpoints
//! leaves no row lost or repeated. Skipped with one line when no tansu
//! broker is installed (see tests/common/brokers.rs).

mod common;

use common::brokers::Tansu;
use common::sql::{exact_sum, input_rows, rows};
use common::{finish, same};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    for v in [
        "WEIR_SHARD",
        "CHECKPOINT_DIR",
        "WEIR_REPARTITION_BROKERS",
        "WEIR_RUN_ID",
    ] {
        c.env_remove(v);
    }
    c
}

/// The three fastest vehicles (mean speed) of every 1 s window
/// (examples/top3_windows.sql), with no row late.
fn script(data: &Path, out: &Path, speed: &str) -> String {
    script_with(data, out, speed, "'10' MINUTE")
}

/// [`script`] with the watermark `delay` (an INTERVAL literal):
/// examples/top3_windows.sql on `data`, writing `out`, paced at `speed`.
fn script_with(data: &Path, out: &Path, speed: &str, delay: &str) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/top3_windows.sql");
    let text = std::fs::read_to_string(example).unwrap();
    let swap = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the example has {from}");
        text.replace(from, to)
    };
    let text = swap(text, "'../data/obd'", &format!("'{}'", data.display()));
    let text = swap(text, "'../out/top3'", &format!("'{}'", out.display()));
    let text = swap(
        text,
        "'scan.speed' = 'max'",
        &format!("'scan.speed' = '{speed}'"),
    );
    swap(text, "INTERVAL '30' SECOND", &format!("INTERVAL {delay}"))
}

/// Brute force over every reading (none is late at a 10 minute delay).
fn oracle(data: &Path) -> Vec<Vec<String>> {
    let mut windows: BTreeMap<(i64, i64), Vec<f64>> = BTreeMap::new();
    for (v, t, s) in input_rows(data) {
        windows
            .entry((t.div_euclid(1000) * 1000, v))
            .or_default()
            .push(s);
    }
    let mut by_window: BTreeMap<i64, Vec<(f64, i64)>> = BTreeMap::new();
    for ((start, v), speeds) in &windows {
        let mean = exact_sum(speeds) / speeds.len() as f64;
        by_window.entry(*start).or_default().push((mean, *v));
    }
    let mut want = Vec::new();
    for (start, mut vs) in by_window {
        vs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (rank, (mean, v)) in vs.iter().take(3).enumerate() {
            want.push(vec![
                start.to_string(),
                v.to_string(),
                format!("{mean:?}"),
                (rank + 1).to_string(),
            ]);
        }
    }
    want.sort();
    want
}

fn spawn(file: &Path, shard: &str, brokers: &str, run: &str, extra: &[&str]) -> Child {
    weir()
        .arg("sql")
        .arg(file)
        .args([
            "--shard",
            shard,
            "--repartition-brokers",
            brokers,
            "--run-id",
            run,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn three_shards_rekey_through_the_broker_and_equal_the_oracle_in_both_modes() {
    let Some(tansu) = Tansu::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let brokers = tansu.brokers().join(",");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 40, 120, 3);
    let want = oracle(&data);
    assert!(want.len() > 300);
    for (mode, run) in [("pipelined", "p1"), ("batch", "b1")] {
        let out = dir.path().join(format!("out-{mode}"));
        let file = dir.path().join(format!("top3-{mode}.sql"));
        std::fs::write(&file, script(&data, &out, "max")).unwrap();
        let shards: Vec<Child> = (0..3)
            .map(|i| {
                let shard = format!("{i}/3");
                let args = ["--mode", mode, "--parallelism", "2", "--json"];
                spawn(&file, &shard, &brokers, run, &args)
            })
            .collect();
        let metrics: Vec<serde_json::Value> = shards
            .into_iter()
            .map(|c| serde_json::from_slice(&finish(c).stdout).unwrap())
            .collect();
        same(&rows(&out), &want, mode);
        // each shard read all of the input (the rows it got through the topic
        // are not input) and wrote its share of the results (not counting
        // the rows it sent to the others)
        let total = |k: &str| metrics.iter().map(|m| m[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(
            total("rows_in"),
            3 * input_rows(&data).len() as u64,
            "{mode}"
        );
        assert_eq!(total("rows_out"), want.len() as u64, "{mode}");
        // and one process gives the same rows
        let one = dir.path().join(format!("one-{mode}"));
        let file = dir.path().join(format!("one-{mode}.sql"));
        std::fs::write(&file, script(&data, &one, "max")).unwrap();
        let o = weir()
            .arg("sql")
            .arg(&file)
            .args(["--mode", mode])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        same(&rows(&one), &want, &format!("one process, {mode}"));
    }
    // a 40 s delay: windows fire while the input is read (watermarks cross
    // the topic) and some rows are late; the shards equal one process
    let one = dir.path().join("one-40s");
    let file = dir.path().join("one-40s.sql");
    std::fs::write(&file, script_with(&data, &one, "max", "'40' SECOND")).unwrap();
    let o = weir().arg("sql").arg(&file).arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(m["late_rows"].as_u64().unwrap() > 0, "some rows are late");
    let out = dir.path().join("out-40s");
    let file = dir.path().join("top3-40s.sql");
    std::fs::write(&file, script_with(&data, &out, "max", "'40' SECOND")).unwrap();
    let shards: Vec<Child> = (0..3)
        .map(|i| {
            spawn(
                &file,
                &format!("{i}/3"),
                &brokers,
                "w40",
                &["--parallelism", "2"],
            )
        })
        .collect();
    shards.into_iter().for_each(|c| drop(finish(c)));
    same(&rows(&out), &rows(&one), "40 s delay");
    // without a broker the re-keying job is refused by name
    let file = dir.path().join("refused.sql");
    std::fs::write(&file, script(&data, &dir.path().join("never"), "max")).unwrap();
    let o = weir()
        .arg("sql")
        .arg(&file)
        .args(["--shard", "0/3"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("--repartition-brokers"),
        "{e}"
    );
    // a run id names the topics: required
    let o = weir()
        .arg("sql")
        .arg(&file)
        .args(["--shard", "0/3", "--repartition-brokers", &brokers])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--run-id"), "{e}");
    assert!(!dir.path().join("never").exists());
}

#[test]
fn a_shard_killed_five_times_repeats_no_row_through_the_topic() {
    let Some(tansu) = Tansu::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let brokers = tansu.brokers().join(",");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 30, 480, 3); // 8 minutes of event time: ~8 s at 60x
                                             // a 40 s delay: windows fire all along, so re-keyed rows cross the topic
                                             // while the shard is killed; the reference is one uninterrupted process
    let reference = dir.path().join("reference");
    let file = dir.path().join("reference.sql");
    std::fs::write(&file, script_with(&data, &reference, "max", "'40' SECOND")).unwrap();
    let o = weir().arg("sql").arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = rows(&reference);
    assert!(want.len() > 1000);
    let out = dir.path().join("out");
    let ckpt = dir.path().join("ckpt");
    let file = dir.path().join("top3.sql");
    std::fs::write(&file, script_with(&data, &out, "60x", "'40' SECOND")).unwrap();
    let checkpointed = [
        "--parallelism",
        "2",
        "--json",
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
        "--checkpoint-interval",
        "100ms",
    ];
    let others: Vec<Child> = [0, 2]
        .iter()
        .map(|i| spawn(&file, &format!("{i}/3"), &brokers, "k1", &checkpointed))
        .collect();
    let (last, kills) = common::kill_until_done(
        5,
        5,
        (500, 1000),
        || spawn(&file, "1/3", &brokers, "k1", &checkpointed),
        || {},
    );
    assert!(kills >= 5, "the shard finished after {kills} kills");
    let metrics: serde_json::Value = serde_json::from_slice(&last.stdout).unwrap();
    assert!(
        metrics["checkpoints"]["restored_from"].is_u64(),
        "the last run of shard 1 restored its checkpoint"
    );
    others.into_iter().for_each(|c| drop(finish(c)));
    same(
        &rows(&out),
        &want,
        &format!("after {kills} kills of shard 1"),
    );
}
