//! Unit tests of `crates/weir-core/src/state/store/state_log.rs`.

use super::*;
use std::collections::HashMap;

#[test]
fn values_come_back_once_and_replacements_win() {
    let spill = SpillManager::try_new(None).unwrap();
    let mut log = StateLog::new(&spill, "op");
    log.append([(&b"a"[..], &b"1"[..]), (b"b", b"22")]).unwrap();
    log.append([(&b"a"[..], &b"333"[..])]).unwrap();
    assert_eq!(
        log.entries().unwrap(),
        vec![
            (b"a".to_vec(), b"333".to_vec()),
            (b"b".to_vec(), b"22".to_vec()),
        ],
        "the replaced record is not listed"
    );
    assert_eq!(log.take(b"a").unwrap().as_deref(), Some(&b"333"[..]));
    assert_eq!(log.take(b"a").unwrap(), None, "the older copy is dead");
    assert_eq!(log.take(b"zz").unwrap(), None);
    assert_eq!(log.take(b"b").unwrap().as_deref(), Some(&b"22"[..]));
    assert_eq!(log.entries().unwrap(), vec![]);
    // taken back, changed, spilled again: the new value wins
    log.append([(&b"b"[..], &b"4"[..])]).unwrap();
    assert_eq!(log.entries().unwrap(), vec![(b"b".to_vec(), b"4".to_vec())]);
    assert_eq!(log.take(b"b").unwrap().as_deref(), Some(&b"4"[..]));
    assert_eq!(log.take(b"b").unwrap(), None);
    assert_eq!(log.entries().unwrap(), vec![]);
    assert_eq!(spill.metrics().files(), 3);
    // `len` counts a key appended while still in the log twice (the
    // operators take a key back before they change it)
    assert_eq!(log.len(), 1);
    let mut fresh = StateLog::new(&spill, "op");
    assert!(fresh.is_empty());
    fresh.append([(&b"k"[..], &b"v"[..])]).unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh.take(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(fresh.is_empty());
}

/// Random appends and takes against a map, through merges.
#[test]
fn agrees_with_a_map_through_merges() {
    let spill = SpillManager::try_new(None).unwrap();
    let mut log = StateLog::new(&spill, "op");
    let mut oracle: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut x = 0x1234_5678_u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..60u64 {
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for _ in 0..(next() % 400) {
            let key = format!("key-{}", next() % 3000).into_bytes();
            if oracle.contains_key(&key) {
                continue; // the operator takes a key back before changing it
            }
            let value = vec![(round % 251) as u8; (next() % 64) as usize];
            batch.push((key, value));
        }
        for (k, v) in &batch {
            oracle.insert(k.clone(), v.clone());
        }
        log.append(batch.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
            .unwrap();
        assert!(log.runs.len() <= MAX_RUNS);
        for _ in 0..(next() % 300) {
            let key = format!("key-{}", next() % 3000).into_bytes();
            assert_eq!(
                log.take(&key).unwrap(),
                oracle.remove(&key),
                "round {round}"
            );
        }
        assert_eq!(log.len(), oracle.len());
    }
    let mut want: Vec<_> = oracle.into_iter().collect();
    want.sort();
    assert_eq!(log.entries().unwrap(), want);
    // read in steps of about 1 KiB, each resuming after the last key
    let mut stepped = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let step = log.entries_after(after.as_deref(), 1024).unwrap();
        let Some(last) = step.last() else { break };
        assert!(
            step.len() == 1
                || step.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() < 1024 + 80
        );
        after = Some(last.0.clone());
        stepped.extend(step);
    }
    assert_eq!(stepped, want, "the steps together are every entry once");
    let index = log.memory_size();
    assert!(
        index < 2 * want.len() * 16 + 64 * 1024,
        "the index ({index} B) is far below a per-key index"
    );
    drop(log);
    assert_eq!(std::fs::read_dir(spill.dir()).unwrap().count(), 0);
}

#[test]
fn a_truncated_run_is_an_error_naming_the_operator() {
    let spill = SpillManager::try_new(None).unwrap();
    let mut log = StateLog::new(&spill, "proc[0]");
    log.append([(&b"a"[..], &b"value"[..])]).unwrap();
    log.runs[0].file.as_file().set_len(3).unwrap();
    let err = log.take(b"a").unwrap_err().to_string();
    assert!(err.contains("proc[0]"), "{err}");
}
