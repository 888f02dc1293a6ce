//! Unit tests of `crates/weir-connectors/src/live/dir.rs`.

use super::*;
use crate::live::{ConnectorFactory, LiveSourceSpec};
use crate::source_harness::{assert_every_cut, rescaled_rows, row_multiset, uninterrupted, Item};
use arrow_array::Int64Array;
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;
use weir_core::operator::Source;
use weir_core::time::WatermarkStrategy;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
    ]))
}

fn json(dir: &Path, name: &str, rows: std::ops::Range<i64>) {
    let text: Vec<String> = rows
        .map(|i| match i % 7 {
            3 => String::new(), // blank lines carry no record
            _ => format!(r#"{{"id":{i},"t":{}}}"#, i * 2 - (i % 4) * 9),
        })
        .collect();
    std::fs::write(dir.join(name), text.join("\n")).unwrap();
}

fn parquet(dir: &Path, name: &str, rows: std::ops::Range<i64>) {
    let b = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.clone())),
            Arc::new(Int64Array::from_iter_values(
                rows.map(|i| i / 100 - (i % 3) * 5),
            )),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dir.join(name)).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
}

#[test]
fn a_restored_directory_skips_finished_files_and_resumes_inside_one() {
    let dir = tempfile::tempdir().unwrap();
    json(dir.path(), "a.json", 0..12);
    // two reader batches of 8192 rows: a cut falls inside the file
    parquet(dir.path(), "b.parquet", 1000..(1000 + 8192 + 40));
    json(dir.path(), "c.jsonl", 20_000..20_010);
    json(dir.path(), "d.ndjson", 30_000..30_005);
    let path = dir.path().to_path_buf();
    let factory: ConnectorFactory = Arc::new(move |info| {
        let d = WatchedDir::try_new(&path, schema(), info, true, Duration::ZERO, None)?;
        Ok(Box::new(d) as _)
    });
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(6));
    let spec = Arc::new(
        LiveSourceSpec::new("watched", schema(), factory, true)
            .with_max_records(4)
            .with_event_time("t", strategy)
            .unwrap(),
    );
    let make = move |info: &TaskInfo| Ok(Box::new(spec.create(info)?) as Box<dyn Source>);
    let (all, _) = uninterrupted(&make, 0, 1);
    assert!(
        all.iter().any(|i| matches!(i, Item::Side(1, _))),
        "late rows"
    );
    let input = row_multiset(all);
    assert_eq!(input.len(), 8232 + 10 + 8 + 5, "blank lines skipped");
    for p in [1, 2] {
        assert_every_cut(&make, p);
    }
    for cuts in [[1, 1], [3, 2], [2, 6]] {
        let got = rescaled_rows(&make, &cuts, 3);
        // (not assert_eq: thousands of rows would flood the report)
        assert!(
            got == input,
            "cuts {cuts:?}: {} rows, {} expected",
            got.len(),
            input.len()
        );
    }
}

#[test]
fn files_are_shared_stably_between_subtasks() {
    let names = ["a.json", "b.json", "c.parquet", "d.jsonl", "e.json"];
    let owners: Vec<usize> = names.iter().map(|n| owner(n, 3)).collect();
    assert_eq!(
        owners,
        names.iter().map(|n| owner(n, 3)).collect::<Vec<_>>()
    );
    assert!(owners.iter().all(|&o| o < 3));
    assert!(names.iter().all(|n| owner(n, 1) == 0));
}
