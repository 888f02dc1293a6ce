//! The bounded Parquet source: glob patterns, Hive partitions, schema
//! widening, projection, time-range pruning with scan metrics, and
//! read-ahead decoding, each checked against what the test wrote (or a
//! plain `ParquetRecordBatchReader`), not against the source itself.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir::connectors::replay::TimeRange;
use weir::connectors::ParquetSourceSpec;
use weir::operator::{Ctx, OperatorMetrics, Output, RuntimeEnv, Source, SourcePoll, TaskInfo};
use weir::{Agg, ExecConfig, Job, Message, TumblingWindow, WatermarkStrategy};

/// Writes `batches` to `path`, one row group per batch.
fn write(path: &Path, batches: &[RecordBatch]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        w.write(b).unwrap();
        w.flush().unwrap();
    }
    w.close().unwrap();
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

fn ids(range: std::ops::Range<i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(range))
}

/// Every message one reader emits, polled directly until exhausted.
fn drain(spec: &Arc<ParquetSourceSpec>, subtask: usize, parallelism: usize) -> Vec<Message> {
    try_drain(spec, subtask, parallelism).unwrap()
}

fn try_drain(
    spec: &Arc<ParquetSourceSpec>,
    subtask: usize,
    parallelism: usize,
) -> weir::Result<Vec<Message>> {
    let info = TaskInfo {
        operator: "parquet_source".into(),
        subtask,
        parallelism,
    };
    let mut source = spec.create(&info);
    let env = RuntimeEnv::try_new(1 << 30, None)?;
    let mut ctx = Ctx::new(info, env, Arc::new(OperatorMetrics::default()));
    let mut all = Vec::new();
    loop {
        let mut out = Output::new();
        let poll = source.poll_next(&mut ctx, &mut out)?;
        all.extend(out.take());
        if poll == SourcePoll::Exhausted {
            return Ok(all);
        }
    }
}

fn data(messages: &[Message]) -> Vec<RecordBatch> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Data(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn read_all(spec: ParquetSourceSpec) -> RecordBatch {
    let spec = Arc::new(spec);
    let schema = spec.schema().clone();
    arrow_select::concat::concat_batches(&schema, &data(&drain(&spec, 0, 1))).unwrap()
}

fn int_column(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let c = arrow_cast::cast(b.column_by_name(name).unwrap(), &DataType::Int64).unwrap();
    c.as_primitive::<Int64Type>().iter().collect()
}

/// `root/date=2026-MM-DD/part-K.parquet`, K in 0..2, with `10 * (d + K + 1)` rows each.
fn dated_files(root: &Path, dates: &[&str]) -> Vec<(PathBuf, usize)> {
    let mut out = Vec::new();
    for (d, date) in dates.iter().enumerate() {
        for k in 0..2 {
            let rows = 10 * (d + k + 1);
            let path = root.join(format!("date={date}/part-{k}.parquet"));
            write(&path, &[batch(vec![("id", ids(0..rows as i64))])]);
            out.push((path, rows));
        }
    }
    out
}

#[test]
fn a_glob_selects_exactly_the_matching_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("obd");
    let written = dated_files(
        &root,
        &["2026-11-01", "2026-11-02", "2026-11-13", "2026-12-01"],
    );
    std::fs::write(root.join("date=2026-11-01/_SUCCESS"), b"").unwrap();
    std::fs::write(root.join("date=2026-11-01/.part-0.parquet.crc"), b"x").unwrap();
    type Wanted<'a> = &'a dyn Fn(&Path) -> bool;
    let cases: [(&str, Wanted); 6] = [
        // hidden and _ files are not matched by a wildcard
        ("date=2026-11-01/*", &|p| {
            p.to_str().unwrap().contains("2026-11-01")
        }),
        ("date=2026-11-*/*.parquet", &|p| {
            p.to_str().unwrap().contains("2026-11-")
        }),
        ("date=2026-11-0?/part-1.parquet", &|p| {
            p.to_str().unwrap().contains("2026-11-0") && p.ends_with("part-1.parquet")
        }),
        ("date=2026-1[2]-*", &|p| {
            p.to_str().unwrap().contains("2026-12")
        }),
        ("**/part-0.parquet", &|p| p.ends_with("part-0.parquet")),
        ("date=2026-11-[!0]*/*", &|p| {
            p.to_str().unwrap().contains("2026-11-13")
        }),
    ];
    for (pattern, wanted) in cases {
        let want: Vec<&(PathBuf, usize)> = written.iter().filter(|(p, _)| wanted(p)).collect();
        let spec = ParquetSourceSpec::try_new(&[root.join(pattern)]).unwrap();
        let files: Vec<PathBuf> = want.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(spec.files(), files, "{pattern}");
        let rows: usize = want.iter().map(|(_, n)| n).sum();
        assert_eq!(spec.num_rows(), rows as u64, "{pattern}");
        assert_eq!(read_all(spec).num_rows(), rows, "{pattern}");
    }
    let err = ParquetSourceSpec::try_new(&[root.join("date=2027-*/*.parquet")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("date=2027-*/*.parquet"), "{err}");
}

#[test]
fn hive_partition_columns_carry_the_folder_values_on_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    // (region folder, day folder, first id, rows)
    let layout = [
        ("eu", "1", 0, 5),
        ("eu", "2", 100, 7),
        ("us", "1", 200, 3),
        ("__HIVE_DEFAULT_PARTITION__", "3", 300, 4),
    ];
    let mut oracle: BTreeMap<i64, (Option<&str>, i64)> = BTreeMap::new();
    for (region, day, first, rows) in layout {
        let path = root.join(format!("region={region}/day={day}/data.parquet"));
        let b = batch(vec![
            ("id", ids(first..first + rows)),
            (
                "v",
                Arc::new(Float64Array::from_iter_values((0..rows).map(|r| r as f64))),
            ),
        ]);
        write(&path, &[b]);
        let region = (region != "__HIVE_DEFAULT_PARTITION__").then_some(region);
        for id in first..first + rows {
            oracle.insert(id, (region, day.parse().unwrap()));
        }
    }
    for path in [root.clone(), root.join("region=*/day=*/*.parquet")] {
        let spec = ParquetSourceSpec::try_new(&[path]).unwrap();
        let names: Vec<(&str, &DataType)> = spec
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        assert_eq!(
            names,
            [
                ("id", &DataType::Int64),
                ("v", &DataType::Float64),
                ("region", &DataType::Utf8),
                ("day", &DataType::Int64)
            ]
        );
        let all = read_all(spec);
        let regions = all.column(2).as_string::<i32>();
        let days = all.column(3).as_primitive::<Int64Type>();
        let mut got = BTreeMap::new();
        for (i, id) in int_column(&all, "id").into_iter().enumerate() {
            let region = regions.is_valid(i).then(|| regions.value(i));
            got.insert(id.unwrap(), (region, days.value(i)));
        }
        assert_eq!(got, oracle);
    }
}

#[test]
fn partition_keys_that_clash_or_differ_are_errors_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let clash = dir.path().join("clash/id=1/a.parquet");
    write(&clash, &[batch(vec![("id", ids(0..3))])]);
    let err = ParquetSourceSpec::try_new(&[dir.path().join("clash")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.parquet") && err.contains("`id`"),
        "key and file named: {err}"
    );

    let a = dir.path().join("mixed/date=1/a.parquet");
    let b = dir.path().join("mixed/hour=2/b.parquet");
    write(&a, &[batch(vec![("x", ids(0..3))])]);
    write(&b, &[batch(vec![("x", ids(0..3))])]);
    let err = ParquetSourceSpec::try_new(&[dir.path().join("mixed")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.parquet") && err.contains("b.parquet"),
        "{err}"
    );
}

#[test]
fn differing_schemas_widen_to_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("w/a.parquet");
    let b = dir.path().join("w/b.parquet");
    write(
        &a,
        &[batch(vec![
            ("id", Arc::new(Int32Array::from(vec![1, 2]))),
            ("speed", Arc::new(Float32Array::from(vec![1.5, 2.25]))),
            ("name", Arc::new(StringArray::from(vec!["x", "y"]))),
            (
                "t",
                Arc::new(TimestampMillisecondArray::from(vec![1_000, 2_000])),
            ),
        ])],
    );
    write(
        &b,
        &[batch(vec![
            (
                "t",
                Arc::new(TimestampMicrosecondArray::from(vec![3_000_500])),
            ),
            ("speed", Arc::new(Float64Array::from(vec![0.1]))),
            ("id", Arc::new(Int64Array::from(vec![1_i64 << 40]))),
            ("extra", Arc::new(Int16Array::from(vec![-7]))),
        ])],
    );
    let spec = ParquetSourceSpec::try_new(&[dir.path().join("w")]).unwrap();
    let want_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("speed", DataType::Float64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        // in one file only: nothing to widen, nulls elsewhere
        Field::new("extra", DataType::Int16, true),
    ]));
    assert_eq!(spec.schema(), &want_schema);
    let want = RecordBatch::try_new(
        want_schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 1 << 40])),
            Arc::new(Float64Array::from(vec![1.5, 2.25, 0.1])),
            Arc::new(StringArray::from(vec![Some("x"), Some("y"), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                1_000_000, 2_000_000, 3_000_500,
            ])),
            Arc::new(Int16Array::from(vec![None, None, Some(-7)])),
        ],
    )
    .unwrap();
    assert_eq!(read_all(spec), want);

    // incompatible: Utf8 vs Int64
    let c = dir.path().join("bad/c.parquet");
    let d = dir.path().join("bad/d.parquet");
    write(
        &c,
        &[batch(vec![(
            "code",
            Arc::new(StringArray::from(vec!["7"])),
        )])],
    );
    write(&d, &[batch(vec![("code", ids(0..1))])]);
    let err = ParquetSourceSpec::try_new(&[dir.path().join("bad")]).unwrap_err();
    assert!(matches!(err, weir::Error::SchemaMismatch { .. }), "{err}");
    let err = err.to_string();
    for part in ["c.parquet", "d.parquet", "`code`", "Utf8", "Int64"] {
        assert!(err.contains(part), "{part} missing in: {err}");
    }
}

/// 20 row groups of 100 rows; group `g` holds times `g * 1000 + (37 * r) % 1000`
/// (disjoint ranges, unordered inside a group), `id = g * 100 + r`, and a
/// string column to make projection worth it.
fn timed_file(path: &Path) -> Vec<(i64, i64)> {
    let mut rows = Vec::new();
    let batches: Vec<RecordBatch> = (0..20)
        .map(|g| {
            let t: Vec<i64> = (0..100).map(|r| g * 1000 + (37 * r) % 1000).collect();
            let id: Vec<i64> = (0..100).map(|r| g * 100 + r).collect();
            rows.extend(id.iter().copied().zip(t.iter().copied()));
            batch(vec![
                ("id", Arc::new(Int64Array::from(id.clone()))),
                ("t", Arc::new(TimestampMillisecondArray::from(t))),
                (
                    "note",
                    Arc::new(StringArray::from_iter_values(
                        id.iter().map(|i| format!("note number {i}")),
                    )),
                ),
            ])
        })
        .collect();
    write(path, &batches);
    rows
}

#[test]
fn from_until_reads_only_the_row_groups_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timed.parquet");
    let rows = timed_file(&path);
    // covers group 5 (partly), 6 (fully) and 7 (partly)
    let range = TimeRange {
        from: Some(5_500),
        until: Some(7_250),
    };
    let spec = ParquetSourceSpec::try_new(std::slice::from_ref(&path))
        .unwrap()
        .with_batch_size(30)
        .with_time_range("t", range)
        .unwrap();
    let metrics = spec.metrics();
    let job = Job::new();
    let out = job
        .parquet_source(spec)
        .unwrap()
        .assign_timestamps(
            "t",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1)),
        )
        .unwrap()
        .collect()
        .unwrap();
    job.run(&ExecConfig::pipelined().with_parallelism(2))
        .unwrap();
    let mut want: Vec<(i64, i64)> = rows
        .iter()
        .copied()
        .filter(|&(_, t)| (5_500..7_250).contains(&t))
        .collect();
    want.sort_unstable();
    let mut got: Vec<(i64, i64)> = Vec::new();
    for b in out.batches() {
        let id = int_column(&b, "id");
        let t = int_column(&b, "t");
        got.extend(id.into_iter().zip(t).map(|(i, t)| (i.unwrap(), t.unwrap())));
    }
    got.sort_unstable();
    assert_eq!(got, want);
    let m = metrics.snapshot();
    assert_eq!(m.row_groups_total, 20);
    assert_eq!(m.row_groups_read, 3, "{m:?}");
    assert_eq!(m.row_groups_pruned, 17, "{m:?}");
    assert_eq!(m.rows_read, 300, "{m:?}");
    assert_eq!(m.rows_emitted, want.len() as u64, "{m:?}");
    // the compressed size of exactly groups 5, 6, 7 (oracle: the footer)
    let file = std::fs::File::open(&path).unwrap();
    let meta = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .metadata()
        .clone();
    let bytes: i64 = (5..8).map(|g| meta.row_group(g).compressed_size()).sum();
    assert_eq!(m.bytes_read, bytes as u64);
}

#[test]
fn projection_reads_only_the_named_columns_with_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p/day=4/timed.parquet");
    timed_file(&path);
    let root = dir.path().join("p");
    let full_spec = ParquetSourceSpec::try_new(std::slice::from_ref(&root)).unwrap();
    let full_metrics = full_spec.metrics();
    let full = read_all(full_spec);
    let spec = ParquetSourceSpec::try_new(std::slice::from_ref(&root))
        .unwrap()
        .with_projection(&["day", "t", "id"])
        .unwrap();
    let metrics = spec.metrics();
    let got = read_all(spec);
    let names: Vec<&str> = got
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["day", "t", "id"]);
    for name in names {
        assert_eq!(
            got.column_by_name(name).unwrap(),
            full.column_by_name(name).unwrap(),
            "{name}"
        );
    }
    // bytes: the id and t chunks only (oracle: the footer)
    let file = std::fs::File::open(&path).unwrap();
    let meta = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .metadata()
        .clone();
    let chunks = |cols: &[usize]| -> u64 {
        meta.row_groups()
            .iter()
            .flat_map(|rg| cols.iter().map(move |&c| rg.column(c).compressed_size()))
            .sum::<i64>() as u64
    };
    assert_eq!(full_metrics.snapshot().bytes_read, chunks(&[0, 1, 2]));
    assert_eq!(metrics.snapshot().bytes_read, chunks(&[0, 1]));
    // only a partition column: no file column decoded, rows still counted
    let only_day = ParquetSourceSpec::try_new(std::slice::from_ref(&root))
        .unwrap()
        .with_projection(&["day"])
        .unwrap();
    let days = read_all(only_day);
    assert_eq!(int_column(&days, "day"), vec![Some(4); 2000]);

    let err = ParquetSourceSpec::try_new(std::slice::from_ref(&root))
        .unwrap()
        .with_projection(&["id", "speed"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`speed`"), "{err}");

    // a time range on a column left out is still applied
    let hidden = ParquetSourceSpec::try_new(std::slice::from_ref(&root))
        .unwrap()
        .with_projection(&["id"])
        .unwrap()
        .with_time_range(
            "t",
            TimeRange {
                from: Some(1_000),
                until: Some(1_010),
            },
        )
        .unwrap();
    let got = read_all(hidden);
    assert_eq!(got.num_columns(), 1);
    // group 1: r with (37 r) % 1000 < 10 is r = 0 and r = 27 (999 % 1000 = 999, no)
    let want: Vec<Option<i64>> = (0..100)
        .filter(|r| (37 * r) % 1000 < 10)
        .map(|r| Some(100 + r))
        .collect();
    assert_eq!(int_column(&got, "id"), want);
}

/// A plain reader's batches of each row group in `order`.
fn plain_batches(path: &Path, order: &[usize], batch_size: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for &g in order {
        let file = std::fs::File::open(path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .with_row_groups(vec![g])
            .with_batch_size(batch_size)
            .build()
            .unwrap();
        out.extend(reader.map(|b| b.unwrap()));
    }
    out
}

fn without_metadata(batches: Vec<RecordBatch>, schema: &SchemaRef) -> Vec<RecordBatch> {
    batches
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()).unwrap())
        .collect()
}

#[test]
fn read_ahead_keeps_the_exact_order_of_batches_and_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.parquet");
    // row groups out of time order in the file: event time reorders them
    let groups: Vec<i64> = vec![3, 0, 7, 1, 5, 2, 6, 4];
    let batches: Vec<RecordBatch> = groups
        .iter()
        .map(|&g| {
            // a late row every 17 rows (far behind its predecessors)
            let t: Vec<i64> = (0..250)
                .map(|r| g * 10_000 + if r % 17 == 16 { r } else { r * 20 })
                .collect();
            batch(vec![
                ("id", ids(g * 1000..g * 1000 + 250)),
                ("t", Arc::new(Int64Array::from(t))),
            ])
        })
        .collect();
    write(&path, &batches);
    let schema = batches[0].schema();

    // without event time: file order; with it: by min time
    let by_time: Vec<usize> = {
        let mut idx: Vec<usize> = (0..groups.len()).collect();
        idx.sort_by_key(|&i| groups[i]);
        idx
    };
    let file_order: Vec<usize> = (0..groups.len()).collect();
    for read_ahead in [0, 1, 3] {
        let spec = ParquetSourceSpec::try_new(std::slice::from_ref(&path))
            .unwrap()
            .with_batch_size(100)
            .with_read_ahead(read_ahead);
        let got = data(&drain(&Arc::new(spec.clone()), 0, 1));
        let want = without_metadata(plain_batches(&path, &file_order, 100), &schema);
        assert_eq!(got, want, "read-ahead {read_ahead}, no event time");

        let timed = Arc::new(
            spec.with_event_time(
                "t",
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
            )
            .unwrap(),
        );
        let messages = drain(&timed, 0, 1);
        let mut max = i64::MIN;
        // oracle: plain batches in time order, late rows (per group, by the
        // rule "t <= max so far - 100 - 1") split off
        // oracle: a plain reader's rows in time order of the groups, minus
        // the late ones (per group: t < max so far - 100)
        let mut want_rows = Vec::new();
        let mut want_late = 0;
        for b in plain_batches(&path, &by_time, 100) {
            for (id, t) in int_column(&b, "id").into_iter().zip(int_column(&b, "t")) {
                let (id, t) = (id.unwrap(), t.unwrap());
                if id % 1000 == 0 {
                    max = i64::MIN;
                }
                if max != i64::MIN && t < max - 100 {
                    want_late += 1;
                } else {
                    want_rows.push(Some(id));
                }
                max = max.max(t);
            }
        }
        let late_rows: usize = messages
            .iter()
            .map(|m| match m {
                Message::Side(1, b) => b.num_rows(),
                _ => 0,
            })
            .sum();
        assert!(want_late > 0);
        assert_eq!(late_rows, want_late, "read-ahead {read_ahead}");
        let got_rows: Vec<Option<i64>> = data(&messages)
            .iter()
            .flat_map(|b| int_column(b, "id"))
            .collect();
        assert_eq!(got_rows, want_rows, "read-ahead {read_ahead}");
        // and the whole message sequence equals the one without read-ahead
        if read_ahead > 0 {
            let inline = Arc::new(
                ParquetSourceSpec::try_new(std::slice::from_ref(&path))
                    .unwrap()
                    .with_batch_size(100)
                    .with_read_ahead(0)
                    .with_event_time(
                        "t",
                        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
                    )
                    .unwrap(),
            );
            let plain = drain(&inline, 0, 1);
            assert_eq!(plain.len(), messages.len());
            for (a, b) in plain.iter().zip(&messages) {
                match (a, b) {
                    (Message::Data(x), Message::Data(y)) => assert_eq!(x, y),
                    (Message::Side(p, x), Message::Side(q, y)) => {
                        assert_eq!((p, x), (q, y))
                    }
                    (Message::Watermark(x), Message::Watermark(y)) => assert_eq!(x, y),
                    (a, b) => panic!("{a:?} vs {b:?}"),
                }
            }
        }
    }
}

#[test]
fn a_corrupt_row_group_is_an_error_naming_the_file_and_row_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.parquet");
    timed_file(&path);
    let file = std::fs::File::open(&path).unwrap();
    let meta = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .metadata()
        .clone();
    // overwrite the page headers of row group 4's first column
    let start = meta.row_group(4).column(0).data_page_offset() as usize;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[start..start + 24].fill(0xff);
    std::fs::write(&path, bytes).unwrap();
    for read_ahead in [0, 2] {
        let spec = Arc::new(
            ParquetSourceSpec::try_new(std::slice::from_ref(&path))
                .unwrap()
                .with_read_ahead(read_ahead),
        );
        let err = try_drain(&spec, 0, 1).unwrap_err();
        assert!(matches!(err, weir::Error::Parquet { .. }), "{err}");
        let err = err.to_string();
        assert!(
            err.contains("corrupt.parquet") && err.contains("row group 4"),
            "read-ahead {read_ahead}: {err}"
        );
    }
}

#[test]
fn dropping_a_reader_stops_its_decode_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    timed_file(&path);
    // 10 rows a batch: the channel (one row group ahead) fills at once
    let spec = Arc::new(
        ParquetSourceSpec::try_new(std::slice::from_ref(&path))
            .unwrap()
            .with_batch_size(10),
    );
    let info = TaskInfo {
        operator: "p".into(),
        subtask: 0,
        parallelism: 1,
    };
    let mut source = spec.create(&info);
    let env = RuntimeEnv::try_new(1 << 30, None).unwrap();
    let mut ctx = Ctx::new(info, env, Arc::new(OperatorMetrics::default()));
    let mut out = Output::new();
    source.poll_next(&mut ctx, &mut out).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // the decode thread holds the spec while it runs
    assert_eq!(Arc::strong_count(&spec), 3);
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        drop(source);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("drop returns promptly");
    assert_eq!(Arc::strong_count(&spec), 1, "the decode thread ended");
}

/// `obd/date=2026-11-0D/hour=H/part-K.parquet`: rows of vehicles 0..4 every
/// 250 ms, in time order per file.
fn hive_obd(root: &Path) -> Vec<(String, i64, i64, i64, f64)> {
    let mut rows = Vec::new();
    for day in 1..=3 {
        for hour in 0..2 {
            for part in 0..2 {
                let base = (day * 24 + hour) * 3_600_000 + part * 30_000;
                let mut v = Vec::new();
                let mut t = Vec::new();
                let mut s = Vec::new();
                for i in 0..240 {
                    let vehicle = i % 4;
                    let time = base + i * 250;
                    let speed = ((i * 7 + day * 3 + hour) % 50) as f64 + 0.5;
                    v.push(vehicle);
                    t.push(time);
                    s.push(speed);
                    rows.push((format!("2026-11-0{day}"), hour, vehicle, time, speed));
                }
                let path = root.join(format!(
                    "date=2026-11-0{day}/hour={hour}/part-{part}.parquet"
                ));
                let b = batch(vec![
                    ("vehicle_id", Arc::new(Int64Array::from(v))),
                    ("event_time", Arc::new(TimestampMillisecondArray::from(t))),
                    ("speed", Arc::new(Float64Array::from(s))),
                ]);
                // two row groups per file
                write(&path, &[b.slice(0, 120), b.slice(120, 120)]);
            }
        }
    }
    rows
}

#[test]
fn a_job_over_a_hive_partitioned_glob_matches_a_brute_force_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("obd");
    let rows = hive_obd(&root);
    let pattern = root.join("date=2026-11-0[12]/*/*.parquet");
    // oracle: per (date, hour, vehicle, 10 s window) count and speed sum
    let mut want: BTreeMap<(String, i64, i64, i64), (i64, f64)> = BTreeMap::new();
    for (date, hour, vehicle, t, speed) in &rows {
        if date == "2026-11-03" || *speed < 10.0 {
            continue;
        }
        let start = t - t.rem_euclid(10_000);
        let e = want
            .entry((date.clone(), *hour, *vehicle, start))
            .or_default();
        e.0 += 1;
        e.1 += speed;
    }
    for config in [
        ExecConfig::batch().with_parallelism(1),
        ExecConfig::batch().with_parallelism(3),
        ExecConfig::pipelined().with_parallelism(1),
        ExecConfig::pipelined().with_parallelism(3),
    ] {
        let job = Job::new();
        let out = job
            .parquet_files(std::slice::from_ref(&pattern))
            .unwrap()
            .assign_timestamps("event_time", WatermarkStrategy::monotonous())
            .unwrap()
            .filter(weir::col("speed").gt_eq(weir::lit(10.0)))
            .unwrap()
            .key_by(["date", "hour", "vehicle_id"])
            .unwrap()
            .window(TumblingWindow::of(Duration::from_secs(10)))
            .aggregate([Agg::count().alias("n"), Agg::sum("speed").alias("total")])
            .unwrap()
            .collect()
            .unwrap();
        job.run(&config).unwrap();
        let mut got = BTreeMap::new();
        for b in out.batches() {
            let date = b.column_by_name("date").unwrap().as_string::<i32>().clone();
            let hour = int_column(&b, "hour");
            let vehicle = int_column(&b, "vehicle_id");
            let start = int_column(&b, "window_start");
            let n = int_column(&b, "n");
            let total =
                arrow_cast::cast(b.column_by_name("total").unwrap(), &DataType::Float64).unwrap();
            let total = total.as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                got.insert(
                    (
                        date.value(i).to_string(),
                        hour[i].unwrap(),
                        vehicle[i].unwrap(),
                        start[i].unwrap(),
                    ),
                    (n[i].unwrap(), total.value(i)),
                );
            }
        }
        assert_eq!(got.len(), want.len(), "{config:?}");
        for (k, (n, total)) in &want {
            let (gn, gt) = got[k];
            assert!(
                gn == *n && (gt - total).abs() < 1e-9,
                "{config:?} {k:?}: {gn} {gt} vs {n} {total}"
            );
        }
    }
}
