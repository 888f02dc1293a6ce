//! Unit tests of `crates/weir-engine/src/checkpoint/store.rs`.

use super::*;
use weir_core::state::StateWriter;

fn manifest(store: &CheckpointStore, id: CheckpointId, value: u64) -> Manifest {
    store.begin(id).unwrap();
    let mut w = StateWriter::new();
    w.put("v", &value).unwrap();
    let bytes = w.finish().encode().unwrap();
    let file = store.write_state(id, 0, "op x", 0, &bytes).unwrap();
    Manifest {
        version: 1,
        job: "j".into(),
        id,
        completed_ms: 0,
        savepoint: false,
        is_final: false,
        operators: vec![OperatorEntry {
            name: "op x".into(),
            parallelism: 1,
            definition: None,
            files: vec![file],
        }],
        publish: vec![],
        checksum: 0,
    }
}

fn value(mut l: Loaded) -> u64 {
    let s = l.take_operator_states("op x").unwrap().unwrap();
    weir_core::state::StateReader::single(s[0].clone())
        .value::<u64>("v")
        .unwrap()
        .unwrap()
}

#[test]
fn a_checkpoint_exists_only_once_its_manifest_does() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CheckpointStore::try_new(tmp.path(), "j").unwrap();
    let m1 = manifest(&store, 1, 10);
    store.complete(&m1).unwrap();
    let _m2 = manifest(&store, 2, 20); // state written, never completed
    let (latest, warnings) = store.latest_valid().unwrap();
    assert!(warnings.is_empty());
    let latest = latest.unwrap();
    assert_eq!(latest.manifest.id, 1);
    assert_eq!(value(latest), 10);
}

#[test]
fn a_truncated_state_file_falls_back_to_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CheckpointStore::try_new(tmp.path(), "j").unwrap();
    for (id, v) in [(1, 10), (2, 20)] {
        let m = manifest(&store, id, v);
        store.complete(&m).unwrap();
    }
    let f = store
        .dir_of(2)
        .join(&store.latest_valid().unwrap().0.unwrap().manifest.operators[0].files[0].file);
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let (latest, warnings) = store.latest_valid().unwrap();
    assert_eq!(latest.unwrap().manifest.id, 1);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("checkpoint 2") && warnings[0].contains("corrupt"),
        "{warnings:?}"
    );
}

#[test]
fn retention_keeps_the_newest_and_savepoints() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CheckpointStore::try_new(tmp.path(), "j").unwrap();
    for id in 1..=5 {
        let mut m = manifest(&store, id, id);
        m.savepoint = id == 1;
        store.complete(&m).unwrap();
    }
    manifest(&store, 6, 6); // in progress: kept
    assert!(store.retain(2).unwrap().is_empty());
    assert_eq!(store.ids_on_disk().unwrap(), vec![1, 4, 5, 6]);
}

#[test]
fn retention_deletes_only_weirs_files_of_this_job() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CheckpointStore::try_new(tmp.path(), "j").unwrap();
    // an old unfinished checkpoint with a user's file in it
    let old = store.begin(1).unwrap();
    std::fs::write(old.join("notes.txt"), b"mine").unwrap();
    // another job's checkpoint copied in
    let mut other = manifest(&store, 2, 2);
    other.job = "other".into();
    store.complete(&other).unwrap();
    // look-alike names that are not weir's
    std::fs::create_dir(store.root().join("chk-3")).unwrap();
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep"), b"x").unwrap();
    std::os::unix::fs::symlink(&victim, store.dir_of(4)).unwrap();
    for id in 5..=7 {
        let m = manifest(&store, id, id);
        store.complete(&m).unwrap();
    }
    let warnings = store.retain(1).unwrap();
    assert!(
        warnings.len() == 1 && warnings[0].contains("notes.txt"),
        "{warnings:?}"
    );
    assert_eq!(std::fs::read(old.join("notes.txt")).unwrap(), b"mine");
    assert!(!old.join("n00-op_x.s0.state").exists(), "weir's file went");
    assert!(store.dir_of(2).join(MANIFEST).exists(), "another job's");
    assert!(store.root().join("chk-3").is_dir());
    assert_eq!(std::fs::read(victim.join("keep")).unwrap(), b"x");
    assert_eq!(store.ids_on_disk().unwrap(), vec![1, 2, 4, 7]);
    assert!(store.begin(4).is_err(), "never writes through a link");
}

#[test]
fn a_manifest_is_covered_by_its_checksum_and_names_only_state_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CheckpointStore::try_new(tmp.path(), "j").unwrap();
    let m = manifest(&store, 1, 10);
    let dir = store.complete(&m).unwrap();
    CheckpointStore::load(&dir).unwrap();
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"savepoint\": false", "\"savepoint\": true"),
    )
    .unwrap();
    let e = CheckpointStore::load(&dir).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    let mut bad = manifest(&store, 2, 20);
    bad.operators[0].files[0].file = "../../etc/passwd".into();
    let dir = store.complete(&bad).unwrap();
    let e = CheckpointStore::load(&dir).unwrap_err().to_string();
    assert!(e.contains("not a state file name"), "{e}");
    assert!(CheckpointStore::try_new(tmp.path(), "../escape").is_err());
}

#[test]
fn a_publish_goes_only_from_a_sinks_staging_into_its_target() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let target = base.join("out");
    std::fs::create_dir_all(target.join(weir_core::state::PUBLISH_STAGING)).unwrap();
    let ok = Publish {
        from: target.join(".weir-staging/part-00000001-00000.parquet"),
        to: target.join("part-00000001-00000.parquet"),
    };
    ok.check(std::slice::from_ref(&target)).unwrap();
    // a partitioned sink's part goes into the same partition path
    let partition = Publish {
        from: target.join(".weir-staging/dt=2026-12-07/hm=10%3A05/part-00000001-00000.csv"),
        to: target.join("dt=2026-12-07/hm=10%3A05/part-00000001-00000.csv"),
    };
    partition.check(std::slice::from_ref(&target)).unwrap();
    for (from, to) in [
        (base.join("victim"), target.join("victim")),
        (
            target.join(".weir-staging/dt=1/x.parquet"),
            target.join("dt=2/x.parquet"),
        ),
        (
            target.join(".weir-staging/sub/x.parquet"),
            target.join("sub/x.parquet"),
        ),
        (
            target.join(".weir-staging/dt=1/../../x.parquet"),
            target.join("x.parquet/../../x.parquet"),
        ),
        (
            target.join(".weir-staging/x.parquet"),
            base.join("x.parquet"),
        ),
        (
            target.join(".weir-staging/a.parquet"),
            target.join("b.parquet"),
        ),
        (
            target.join(".weir-staging/../../victim"),
            target.join("victim"),
        ),
    ] {
        let p = Publish { from, to };
        let e = p.check(std::slice::from_ref(&target)).unwrap_err();
        assert!(e.to_string().contains("refusing"), "{p:?}: {e}");
    }
}

#[test]
fn publishing_is_idempotent_and_a_lost_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let from = tmp.path().join("staged");
    let to = tmp.path().join("out/part");
    std::fs::write(&from, b"x").unwrap();
    let p = Publish {
        from,
        to: to.clone(),
    };
    p.apply().unwrap();
    p.apply().unwrap();
    assert_eq!(std::fs::read(&to).unwrap(), b"x");
    std::fs::remove_file(&to).unwrap();
    let e = p.apply().unwrap_err().to_string();
    assert!(e.contains("never published"), "{e}");
}

#[test]
fn a_publish_never_replaces_a_part_published_before() {
    let tmp = tempfile::tempdir().unwrap();
    let from = tmp.path().join("staged");
    let to = tmp.path().join("part");
    std::fs::write(&from, b"new").unwrap();
    std::fs::write(&to, b"adopted").unwrap();
    let p = Publish {
        from: from.clone(),
        to: to.clone(),
    };
    let e = p.apply().unwrap_err().to_string();
    assert!(e.contains("would replace this part"), "{e}");
    assert_eq!(std::fs::read(&to).unwrap(), b"adopted");
    assert!(from.exists(), "the staged file stays");
}
