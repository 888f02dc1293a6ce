//! Shards as processes (`weir run --shard I/N`): three processes writing
//! one output directory give the rows of one process, in both modes; each
//! commits its own parts and marker, `weir status` names a missing shard,
//! and a target of another kind of run is refused, untouched.

mod common;

use common::finish;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use weir::compare::same_rows;

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.env_remove("WEIR_SHARD").env_remove("CHECKPOINT_DIR");
    c
}

/// The seed's OBD-vs-app job (keyed by vehicle on both sides, no re-keying).
fn seed_job(dir: &Path) -> PathBuf {
    common::seed_job(dir, 200, 4)
}

fn spawn_shard(job: &Path, out: &Path, shard: &str, mode: &str, p: &str) -> Child {
    weir()
        .arg("run")
        .arg(job)
        .args([
            "--mode",
            mode,
            "--parallelism",
            p,
            "--shard",
            shard,
            "--output",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn status(target: &Path, json: bool) -> (bool, String) {
    let mut c = weir();
    c.arg("status").arg(target);
    if json {
        c.arg("--json");
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// The names in `dir`, none if it does not exist.
fn names_if_any(dir: &Path) -> Vec<String> {
    if dir.exists() {
        names(dir)
    } else {
        Vec::new()
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn three_shard_processes_write_one_process_rows_into_one_target() {
    let tmp = tempfile::tempdir().unwrap();
    let job = seed_job(tmp.path());
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    assert!(expected.iter().map(|b| b.num_rows()).sum::<usize>() > 3000);
    let schema = expected[0].schema();
    for mode in ["pipelined", "batch"] {
        let out = tmp.path().join(format!("out-{mode}"));
        let shards: Vec<Child> = (0..3)
            .map(|i| spawn_shard(&job, &out, &format!("{i}/3"), mode, "2"))
            .collect();
        shards.into_iter().for_each(|c| drop(finish(c)));
        same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9)
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let files = names(&out);
        for i in 0..3 {
            assert!(
                files.contains(&format!(".weir-shard-{i}-of-3")),
                "{files:?}"
            );
            for s in 0..2 {
                let part = format!("part-shard-{i}-of-3-{s:05}.parquet");
                assert!(files.contains(&part), "{mode}: {part} in {files:?}");
            }
        }
        let staging = names_if_any(&out.join(".weir-staging"));
        assert!(staging.is_empty(), "staging leftovers: {staging:?}");
        let (ok, text) = status(&out, false);
        assert!(
            ok && text.contains("3 of 3 shards committed (6 parts)"),
            "{text}"
        );
        let (_, json) = status(&out, true);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["shards"], 3);
        assert_eq!(v["committed"], serde_json::json!([0, 1, 2]));
    }
    // a shard run again (other parallelism) replaces only its own parts
    let out = tmp.path().join("out-batch");
    finish(spawn_shard(&job, &out, "1/3", "batch", "1"));
    let files = names(&out);
    assert!(files.contains(&"part-shard-1-of-3-00000.parquet".to_string()));
    assert!(
        !files.contains(&"part-shard-1-of-3-00001.parquet".to_string()),
        "{files:?}"
    );
    assert!(files.contains(&"part-shard-0-of-3-00001.parquet".to_string()));
    same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9).unwrap();
}

#[test]
fn status_names_a_missing_shard_and_other_runs_targets_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let job = seed_job(tmp.path());
    let out = tmp.path().join("out");
    for i in [0, 2] {
        finish(spawn_shard(&job, &out, &format!("{i}/3"), "batch", "1"));
    }
    let (ok, text) = status(&out, false);
    assert!(!ok, "incomplete: {text}");
    assert!(
        text.contains("2 of 3 shards committed") && text.contains("missing: shard 1/3"),
        "{text}"
    );
    // shard 1, found from a StatefulSet pod name, completes it
    let done = weir()
        .arg("run")
        .arg(&job)
        .args([
            "--mode",
            "batch",
            "--parallelism",
            "1",
            "--shard-from-hostname",
            "3",
        ])
        .env("HOSTNAME", "weir-1")
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(status(&out, false).0);
    let before = names(&out);
    // a run as 2 shards would mix its rows with the 3 shards': refused, nothing touched
    let refused = spawn_shard(&job, &out, "0/2", "batch", "1")
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains("holds the output of a run as 3 shards") && err.contains("shard 0/2"),
        "{err}"
    );
    assert_eq!(names(&out), before);
    // so would a checkpointed run as one process (it keeps published parts)
    let o = weir()
        .arg("run")
        .arg(&job)
        .arg("--checkpoint-dir")
        .arg(tmp.path().join("ckpt"))
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("holds the output of a run as 3 shards"),
        "{err}"
    );
    assert_eq!(names(&out), before);
    // bad shard options are named
    for (args, says) in [
        (vec!["--shard", "3/3"], "index must be in 0..3"),
        (vec!["--shard", "two"], "not a shard"),
        (
            vec!["--shard-from-hostname", "3"],
            "does not end in -ORDINAL",
        ),
    ] {
        let o = weir()
            .arg("run")
            .arg(&job)
            .args(&args)
            .env("HOSTNAME", "laptop")
            .arg("--output")
            .arg(tmp.path().join("never"))
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(says), "{args:?}: {e}");
        assert!(!tmp.path().join("never").exists());
    }
    // shards write a directory together, never one file
    let o = weir()
        .arg("run")
        .arg(&job)
        .args(["--mode", "batch", "--shard", "0/3", "--output"])
        .arg(tmp.path().join("one.parquet"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("shards write one directory"),
        "{e}"
    );
    assert!(!tmp.path().join("one.parquet").exists());
    // a directory another tool wrote is not weir's
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let o = spawn_shard(&job, &foreign, "0/3", "batch", "1")
        .wait_with_output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(names(&foreign), ["notes.txt"]);
    let (ok, _) = status(&foreign, false);
    assert!(!ok);
}

fn spawn_checkpointed(job: &Path, out: &Path, ckpt: &Path, shard: &str) -> Child {
    weir()
        .arg("run")
        .arg(job)
        .args([
            "--parallelism",
            "2",
            "--json",
            "--speed",
            "60x",
            "--shard",
            shard,
        ])
        .arg("--output")
        .arg(out)
        .arg("--checkpoint-dir")
        .arg(ckpt)
        .args(["--checkpoint-interval", "40ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_shard_killed_five_times_rejoins_and_the_output_equals_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("obd");
    common::generate_obd(&data, 30, 600, 3); // 10 minutes of event time: ~10 s at 60x
    let job = tmp.path().join("windows.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"sharded\"\n[source]\npath = \"{}\"\ntime_column = \"event_time\"\n\
             watermark_delay = \"30s\"\nbatch_size = 500\n\
             [[steps]]\nkey_by = [\"vehicle_id\"]\n\
             [[steps]]\nwindow = {{ kind = \"tumbling\", size = \"10s\" }}\n\
             aggregates = [{{ fn = \"sum\", column = \"speed\", as = \"total\" }}, \
             {{ fn = \"count\", as = \"n\" }}]\n\
             [sink]\ntype = \"parquet\"\npath = \"unused\"\n",
            data.display()
        ),
    )
    .unwrap();
    let expected = common::batch_reference(&job, &tmp.path().join("reference"));
    let schema = expected[0].schema();
    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("ckpt"));
    let others: Vec<Child> = [0, 2]
        .iter()
        .map(|i| spawn_checkpointed(&job, &out, &ckpt, &format!("{i}/3")))
        .collect();
    let (last, kills) = common::kill_until_done(
        5,
        21,
        (300, 900),
        || spawn_checkpointed(&job, &out, &ckpt, "1/3"),
        || assert!(!status(&out, false).0, "a killed shard is missing"),
    );
    assert!(kills >= 5, "the shard finished after {kills} kills");
    let metrics: serde_json::Value = serde_json::from_slice(&last.stdout).unwrap();
    assert!(
        metrics["checkpoints"]["restored_from"].is_u64(),
        "the last run of shard 1 restored its checkpoint"
    );
    others.into_iter().for_each(|c| drop(finish(c)));
    let (ok, text) = status(&out, false);
    assert!(ok, "{text}");
    same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9).unwrap();
    // killed between its final checkpoint and its marker: the next run finds
    // the job finished and writes the marker
    std::fs::remove_file(out.join(".weir-shard-1-of-3")).unwrap();
    assert!(!status(&out, false).0);
    let again = finish(spawn_checkpointed(&job, &out, &ckpt, "1/3"));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
    assert!(status(&out, false).0, "the marker is back");
    same_rows(&common::read_parquet_parts(&out), &expected, &schema, 1e-9).unwrap();
    // a shard's checkpoint holds its key groups only: restoring it as a
    // shard of another count is refused by name
    let own = ckpt.join("shard-1-of-3/sharded");
    let last = names(&own)
        .into_iter()
        .rfind(|n| n.starts_with("chk-"))
        .unwrap();
    let o = weir()
        .arg("run")
        .arg(&job)
        .args(["--shard", "1/2", "--output"])
        .arg(tmp.path().join("other"))
        .arg("--checkpoint-dir")
        .arg(tmp.path().join("ckpt2"))
        .arg("--restore")
        .arg(own.join(&last))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("[shard 1/3]") && e.contains("[shard 1/2]"),
        "{e}"
    );
    // each shard kept its own checkpoints
    for i in 0..3 {
        assert!(ckpt.join(format!("shard-{i}-of-3/sharded")).is_dir());
    }
    let staging: Vec<String> = std::fs::read_dir(out.join(".weir-staging"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(staging.is_empty(), "staging leftovers: {staging:?}");
}

/// The StatefulSet in deploy/k8s runs N pods as shards: its replica count
/// is the N its pods give `--shard-from-hostname`, and its container's
/// arguments are ones `weir sql` accepts (checked here on a local script
/// with a pod's host name; the Dockerfile builds and runs that binary).
#[test]
fn the_statefulset_and_dockerfile_run_weir_as_shards() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("deploy/k8s/weir-statefulset.yaml")).unwrap();
    let replicas: usize = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("replicas:"))
        .and_then(|r| r.split('#').next())
        .map(|r| r.trim().parse().unwrap())
        .expect("replicas");
    let args: Vec<String> = yaml
        .lines()
        .skip_while(|l| l.trim() != "args:")
        .skip(1)
        .take_while(|l| l.trim().starts_with("- "))
        .map(|l| l.trim().trim_start_matches("- ").to_string())
        .collect();
    assert_eq!(args[0], "sql");
    assert!(
        args.contains(&format!("--shard-from-hostname={replicas}")),
        "{args:?}"
    );
    for env in ["WEIR_REPARTITION_BROKERS", "WEIR_RUN_ID"] {
        assert!(yaml.contains(&format!("name: {env}")), "{env}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("obd");
    common::generate_obd(&data, 4, 10, 1);
    let script = tmp.path().join("job.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             CREATE TABLE out (vehicle_id BIGINT, speed DOUBLE) WITH ('connector' = \
             'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO out SELECT vehicle_id, speed FROM obd WHERE speed > 50;",
            data.display(),
            tmp.path().join("out").display()
        ),
    )
    .unwrap();
    let ckpt = tmp.path().join("ckpt");
    let o = weir()
        .arg("sql")
        .arg(&script)
        .args(
            args[2..]
                .iter()
                .filter(|a| !a.starts_with("--http"))
                .map(|a| a.replace("/var/lib/weir/checkpoints", ckpt.to_str().unwrap())),
        )
        .env("HOSTNAME", "weir-1")
        .env("WEIR_RUN_ID", "run-1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(tmp.path().join("out/.weir-shard-1-of-3").is_file());
    assert!(ckpt.join("shard-1-of-3").is_dir());
    let docker = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(docker.contains("cargo build --release --locked --bin weir"));
    assert!(docker.contains("ENTRYPOINT [\"/usr/local/bin/weir\"]"));
}

/// While a shard of 3 writes a target, neither a run as one process nor a
/// shard of another count may start on it (each is refused at once, naming
/// the holder), and nothing in the target changes.
#[test]
fn a_target_has_one_kind_of_writer_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let job = seed_job(tmp.path());
    let out = tmp.path().join("out");
    let mut running = weir()
        .arg("run")
        .arg(&job)
        .args(["--shard", "1/3", "--speed", "5x", "--output"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = tmp.path().join(".out.weir-lock-shard-1-of-3");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !lock.exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(lock.exists(), "the shard took its lock");
    for (args, says) in [
        (vec!["--shard", "0/2"], "a run as 3 shards writes it"),
        (vec![], "a run as 3 shards writes it"),
    ] {
        let o = weir()
            .arg("run")
            .arg(&job)
            .args(["--mode", "batch"])
            .args(&args)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(says), "{args:?}: {e}");
    }
    assert!(
        running.try_wait().unwrap().is_none(),
        "the shard still runs"
    );
    running.kill().unwrap();
    running.wait().unwrap();
    assert!(!out.join(".weir-shard-1-of-3").exists());
}
