//! Unit tests of the CSV source: inference, projection, headers, errors,
//! and exact continuation after a checkpoint at any poll, at any
//! parallelism.

use super::*;
use crate::source_harness::{
    assert_every_cut_of_a_timed_source, assert_rescales_read_every_row_once, row_multiset,
    uninterrupted, MakeSource,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::Array;
use arrow_schema::{DataType, Field};
use std::time::Duration;

/// Writes `files` (name, text) into a fresh folder.
fn folder(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// `rows` readings `id,t,speed` from `first`, times jumping back past the
/// delay now and then (late rows), one quoted field with a comma.
fn readings(first: i64, rows: i64) -> String {
    let mut text = String::from("id,t,speed,note\n");
    for i in first..first + rows {
        let t = i * 10 - if i % 7 == 3 { 60 } else { 0 };
        let note = if i % 5 == 0 { "\"a, b\"" } else { "x" };
        text.push_str(&format!("{i},{t},{}.5,{note}\n", i % 90));
    }
    text
}

fn spec(dir: &Path, batch: usize) -> Arc<CsvSourceSpec> {
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(20));
    Arc::new(
        CsvSourceSpec::try_new(&[dir.to_path_buf()])
            .unwrap()
            .with_batch_size(batch)
            .with_event_time("t", strategy)
            .unwrap(),
    )
}

fn make(spec: &Arc<CsvSourceSpec>) -> impl Fn(&TaskInfo) -> Result<Box<dyn Source>> + '_ {
    move |info| Ok(Box::new(CsvSourceSpec::create(spec, info)) as Box<dyn Source>)
}

/// Every batch subtask 0 of 1 emits on its main output, or its first error.
fn read_all(spec: &Arc<CsvSourceSpec>) -> Result<Vec<RecordBatch>> {
    let info = crate::source_harness::info(0, 1);
    let env = weir_core::operator::RuntimeEnv::try_new(usize::MAX / 2, None)?;
    let mut ctx = Ctx::new(
        info.clone(),
        env,
        Arc::new(weir_core::operator::OperatorMetrics::default()),
    );
    let mut source = CsvSourceSpec::create(spec, &info);
    let mut out = Output::new();
    while source.poll_next(&mut ctx, &mut out)? != SourcePoll::Exhausted {}
    Ok(out
        .take()
        .into_iter()
        .filter_map(|m| match m {
            weir_core::message::Message::Data(b) => Some(b),
            _ => None,
        })
        .collect())
}

/// Three files of 0, 23 and 40 rows (one empty but for its header).
fn three_files() -> tempfile::TempDir {
    folder(&[
        ("a.csv", readings(0, 23)),
        ("b.csv", "id,t,speed,note\n".to_string()),
        ("sub/c.CSV", readings(100, 40)),
        ("ignored.txt", "not,csv\n".to_string()),
        (".hidden.csv", "x\n".to_string()),
    ])
}

#[test]
fn infers_types_reads_every_row_and_skips_other_files() {
    let dir = three_files();
    let spec = spec(dir.path(), 8);
    assert_eq!(spec.files().len(), 3, "{:?}", spec.files());
    let types: Vec<&DataType> = spec.schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        [
            &DataType::Int64,
            &DataType::Int64,
            &DataType::Float64,
            &DataType::Utf8
        ]
    );
    let (all, _) = uninterrupted(&make(&spec), 0, 1);
    let rows = row_multiset(all);
    assert_eq!(rows.len(), 63);
}

#[test]
fn inference_looks_past_a_header_only_file_and_empty_columns_are_text() {
    let dir = folder(&[
        ("a.csv", "id,t,speed,note\n".to_string()),
        (
            "b.csv",
            "id,t,speed,note\n1,10,2.5,\n2,20,3.5,\n".to_string(),
        ),
    ]);
    let spec = CsvSourceSpec::try_new(&[dir.path().to_path_buf()]).unwrap();
    let types: Vec<&DataType> = spec.schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        [
            &DataType::Int64,
            &DataType::Int64,
            &DataType::Float64,
            &DataType::Utf8
        ]
    );
    // nothing to infer from at all: text, and event time on it is refused by name
    let empty = folder(&[("a.csv", "id,t\n".to_string())]);
    let spec = CsvSourceSpec::try_new(&[empty.path().to_path_buf()]).unwrap();
    assert!(spec
        .schema
        .fields()
        .iter()
        .all(|f| f.data_type() == &DataType::Utf8));
    let err = spec
        .with_event_time("t", WatermarkStrategy::monotonous())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`t`") && err.contains("Utf8"), "{err}");
}

#[test]
fn projection_reads_only_the_columns_named_in_that_order() {
    let dir = folder(&[("a.csv", readings(0, 30))]);
    let spec = Arc::new(
        CsvSourceSpec::try_new(&[dir.path().to_path_buf()])
            .unwrap()
            .with_projection(&["speed", "id"])
            .unwrap(),
    );
    let names: Vec<&str> = spec
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["speed", "id"]);
    let batches = read_all(&spec).unwrap();
    let speeds: Vec<f64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
        .collect();
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, (0..30).collect::<Vec<_>>());
    assert_eq!(speeds, (0..30).map(|i| i as f64 + 0.5).collect::<Vec<_>>());
    let err = CsvSourceSpec::try_new(&[dir.path().to_path_buf()])
        .unwrap()
        .with_projection(&["id", "sped"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sped") && err.contains("speed"), "{err}");
}

#[test]
fn a_restore_after_any_poll_continues_exactly() {
    let dir = three_files();
    // batches of 8 rows end mid-file: positions are byte offsets inside files
    let spec = spec(dir.path(), 8);
    assert_every_cut_of_a_timed_source(&make(&spec));
}

#[test]
fn a_rescale_reads_every_row_exactly_once() {
    let dir = three_files();
    let spec = spec(dir.path(), 8);
    let make: MakeSource<'_> = &make(&spec);
    let input =
        assert_rescales_read_every_row_once(make, &[[0, 0], [1, 2], [3, 1], [5, 5], [9, 0]]);
    assert_eq!(input.len(), 63);
}

#[test]
fn a_header_that_differs_is_an_error_naming_the_file_and_column() {
    let dir = folder(&[
        ("a.csv", readings(0, 3)),
        ("b.csv", "id,time,speed,note\n1,2,3.5,x\n".to_string()),
    ]);
    let err = CsvSourceSpec::try_new(&[dir.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("b.csv") && err.contains("column 2"), "{err}");
}

#[test]
fn a_malformed_row_is_an_error_naming_the_file() {
    // past the rows schema inference looks at, so `t` is inferred Int64
    let mut text = readings(0, 1200);
    text.push_str("1200,not-a-time,1.5,x\n");
    let dir = folder(&[("bad.csv", text)]);
    let spec = Arc::new(CsvSourceSpec::try_new(&[dir.path().to_path_buf()]).unwrap());
    let err = read_all(&spec).unwrap_err().to_string();
    assert!(
        err.contains("bad.csv") && err.contains("not-a-time"),
        "{err}"
    );
}

#[test]
fn missing_paths_and_empty_folders_are_errors() {
    let dir = folder(&[("notes.txt", "x".to_string())]);
    let err = CsvSourceSpec::try_new(&[dir.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no CSV files"), "{err}");
    let missing = dir.path().join("nope.csv");
    let err = CsvSourceSpec::try_new(&[missing]).unwrap_err().to_string();
    assert!(err.contains("nope.csv"), "{err}");
}

#[test]
fn files_without_a_header_read_with_a_given_schema_and_delimiter() {
    let dir = folder(&[("a.csv", "1;10;2.5\n2;20;\n".to_string())]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("speed", DataType::Float64, true),
    ]));
    let err = CsvSourceSpec::try_with_options(&[dir.path().to_path_buf()], None, false, b';')
        .unwrap_err()
        .to_string();
    assert!(err.contains("need a schema"), "{err}");
    let spec = Arc::new(
        CsvSourceSpec::try_with_options(&[dir.path().to_path_buf()], Some(schema), false, b';')
            .unwrap(),
    );
    let batches = read_all(&spec).unwrap();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 2);
    let speed = batch.column(2).as_primitive::<Float64Type>();
    assert_eq!((speed.value(0), speed.is_null(1)), (2.5, true));
}
