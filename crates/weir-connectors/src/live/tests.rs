//! Unit tests of `crates/weir-connectors/src/live/mod.rs`.

use super::memory::MemoryConnector;
use super::*;
use crate::source_harness::{
    assert_every_cut, rescaled_rows, row_multiset, uninterrupted, Item, MakeSource, Running,
};
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
    ]))
}

/// 4 partitions of 5 to 14 records with times from `from`; some far
/// behind (late), some within the delay.
fn partitions(from: i64) -> Arc<Vec<Vec<String>>> {
    let mut id = 1000 * from;
    Arc::new(
        (0..4i64)
            .map(|p| {
                (0..5 + p * 3)
                    .map(|k| {
                        id += 1;
                        let t = match k % 4 {
                            2 => from + p * 7 + k * 3 - 25,
                            3 => from + p * 7 + k * 3 - 2,
                            _ => from + p * 7 + k * 3,
                        };
                        format!(r#"{{"id":{id},"t":{t}}}"#)
                    })
                    .collect()
            })
            .collect(),
    )
}

fn spec(data: Arc<Vec<Vec<String>>>) -> LiveSourceSpec {
    let factory: ConnectorFactory = Arc::new(move |info| {
        Ok(Box::new(MemoryConnector::new(
            data.clone(),
            info,
            &BTreeMap::new(),
            true,
        )) as _)
    });
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(4));
    LiveSourceSpec::new("memory broker", schema(), factory, true)
        .with_max_records(3)
        .with_event_time("t", strategy)
        .expect("t is a time column")
}

fn maker(spec: LiveSourceSpec) -> impl Fn(&TaskInfo) -> Result<Box<dyn Source>> {
    let spec = Arc::new(spec);
    move |info| Ok(Box::new(spec.create(info)?) as Box<dyn Source>)
}

/// Writes `(id, t)` rows as Parquet row groups of 4 rows.
fn history(dir: &Path, rows: &[(i64, i64)]) -> PathBuf {
    let path = dir.join("history.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
    for chunk in rows.chunks(4) {
        let b = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.1))),
            ],
        )
        .unwrap();
        w.write(&b).unwrap();
        w.flush().unwrap();
    }
    w.close().unwrap();
    path
}

#[test]
fn a_restore_after_any_poll_continues_exactly() {
    let make = maker(spec(partitions(100)));
    let (all, _) = uninterrupted(&make, 0, 1);
    assert!(
        all.iter().any(|i| matches!(i, Item::Side(1, _))),
        "late rows"
    );
    assert_eq!(row_multiset(all).len(), 5 + 8 + 11 + 14);
    for p in [1, 2, 3] {
        assert_every_cut(&make, p);
    }
}

#[test]
fn a_rescale_reads_every_record_exactly_once() {
    let make: MakeSource<'_> = &maker(spec(partitions(100)));
    let input = row_multiset(uninterrupted(make, 0, 1).0);
    for cuts in [[0, 0], [1, 2], [3, 1], [4, 5], [100, 2]] {
        for p_after in [1, 3] {
            let got = rescaled_rows(make, &cuts, p_after);
            assert_eq!(got, input, "cuts {cuts:?} -> p {p_after}");
        }
    }
}

#[test]
fn a_hybrid_source_restores_in_its_history_and_after_the_hand_off() {
    let dir = tempfile::tempdir().unwrap();
    // history: t < 200 (with rows at and after the hand-off that must be
    // dropped); live: partitions from 180 (rows before 200 dropped)
    let rows: Vec<(i64, i64)> = (0..30).map(|i| (i, 150 + i * 2 - (i % 5) * 3)).collect();
    let path = history(dir.path(), &rows);
    let history = ParquetSourceSpec::try_new(&[path])
        .unwrap()
        .with_batch_size(3);
    let hybrid = spec(partitions(180))
        .with_history(history, "t", 200)
        .unwrap();
    let make: MakeSource<'_> = &maker(hybrid);
    let (all, polls) = uninterrupted(make, 0, 1);
    assert!(polls > 10);
    assert!(all.contains(&Item::Row("0|150".into())), "history rows");
    assert!(
        !all.contains(&Item::Row("29|201".into())),
        "history after T dropped"
    );
    for p in [1, 2] {
        assert_every_cut(make, p);
    }
    let input = row_multiset(all);
    for cuts in [[0, 0], [2, 9], [9, 2], [30, 30]] {
        assert_eq!(rescaled_rows(make, &cuts, 3), input, "cuts {cuts:?}");
    }
}

#[test]
fn a_source_that_cannot_replay_refuses_a_snapshot_naming_itself() {
    let factory: ConnectorFactory = Arc::new(|_| {
        let input = std::io::Cursor::new(b"{\"id\":1,\"t\":5}\n".to_vec());
        Ok(Box::new(lines::LinesConnector::from_reader(
            "tcp localhost:9",
            input,
        )?) as _)
    });
    let spec = Arc::new(LiveSourceSpec::new("sensor feed", schema(), factory, true));
    let make = move |info: &TaskInfo| Ok(Box::new(spec.create(info)?) as Box<dyn Source>);
    let mut r = Running::new(&make, 0, 1);
    r.poll_n(1, &mut Vec::new());
    let err = r.try_snapshot().unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
    let text = err.to_string();
    for part in ["sensor feed", "tcp localhost:9", "replayable", "Kafka"] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
}
