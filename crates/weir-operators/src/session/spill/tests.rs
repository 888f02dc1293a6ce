//! Unit tests of `crates/weir-operators/src/session/spill.rs`.

use super::*;

/// A run-layout batch of (key, start) rows, end = start + 10, no aggregates.
fn rows(schema: &SchemaRef, rows: &[(&str, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1 + 10))),
            Arc::new(BinaryArray::from_iter_values(
                rows.iter().map(|r| r.0.as_bytes()),
            )),
            Arc::new(Int64Array::from(vec![None; rows.len()])),
            Arc::new(Int64Array::from(vec![None; rows.len()])),
            Arc::new(BooleanArray::from(vec![false; rows.len()])),
        ],
    )
    .unwrap()
}

fn keys(batches: &[RecordBatch]) -> Vec<(String, i64)> {
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| {
                let r = read_row(b, i);
                (String::from_utf8(r.key.to_vec()).unwrap(), r.start)
            })
        })
        .collect()
}

#[test]
fn chunks_hold_whole_keys_in_order_and_files_go_away() {
    let spill = SpillManager::try_new(None).unwrap();
    let mut runs = SpilledSessions::new(&[]);
    let schema = runs.schema().clone();
    runs.spill_rows(
        &[rows(
            &schema,
            &[("d", 1), ("a", 5), ("c", 2), ("a", 1), ("f", 0)],
        )],
        &spill,
        "t",
    )
    .unwrap();
    runs.spill_rows(
        &[rows(&schema, &[("c", 7), ("e", 3), ("b", 4), ("c", 0)])],
        &spill,
        "t",
    )
    .unwrap();
    assert_eq!(
        (runs.len(), runs.min_start(), runs.min_end()),
        (2, Some(0), Some(10))
    );
    assert_eq!(keys(&runs.remaining().unwrap()).len(), 9);
    let mut merge = runs.take_merge();
    assert!(runs.is_empty());
    let mut chunks = Vec::new();
    while let Some(chunk) = merge.next_chunk(2).unwrap() {
        let mut k = keys(&chunk);
        k.sort();
        chunks.push(k);
    }
    let flat: Vec<(String, i64)> = chunks.iter().flatten().cloned().collect();
    let mut want: Vec<(String, i64)> = [
        ("a", 1),
        ("a", 5),
        ("b", 4),
        ("c", 0),
        ("c", 2),
        ("c", 7),
        ("d", 1),
        ("e", 3),
        ("f", 0),
    ]
    .iter()
    .map(|(k, s)| (k.to_string(), *s))
    .collect();
    want.sort();
    assert_eq!(flat, want, "every row once, keys ascending");
    // no key is split over two chunks
    for pair in chunks.windows(2) {
        assert!(
            pair[0].last().unwrap().0 < pair[1].first().unwrap().0,
            "{chunks:?}"
        );
    }
    assert!(chunks.len() >= 3, "small steps: {chunks:?}");
    drop(merge);
    assert_eq!(std::fs::read_dir(spill.dir()).unwrap().count(), 0);
}

#[test]
fn many_runs_compact_into_one_sorted_run_keeping_every_row() {
    let spill = SpillManager::try_new(None).unwrap();
    let mut runs = SpilledSessions::new(&[]);
    let schema = runs.schema().clone();
    let mut want = Vec::new();
    for r in 0..MAX_RUNS as i64 {
        let names: Vec<String> = (0..5)
            .map(|i| format!("k{}", (r * 7 + i * 3) % 11))
            .collect();
        let batch: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), r)).collect();
        want.extend(names.iter().map(|n| (n.clone(), r)));
        runs.spill_rows(&[rows(&schema, &batch)], &spill, "t")
            .unwrap();
    }
    assert_eq!(runs.len(), MAX_RUNS - COMPACT_RUNS + 1);
    let compacted = runs.runs.iter().max_by_key(|r| r.rows).unwrap().rows;
    assert_eq!(compacted, (COMPACT_RUNS * 5) as u64);
    let mut got = keys(&runs.remaining().unwrap());
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // each run, compacted or not, is sorted by key
    for run in &runs.runs {
        let k = keys(&run.reader.peek_rest().unwrap());
        assert!(k.windows(2).all(|w| w[0] <= w[1]), "{k:?}");
    }
    assert_eq!(
        std::fs::read_dir(spill.dir()).unwrap().count(),
        runs.len(),
        "merged runs' files are deleted"
    );
}
