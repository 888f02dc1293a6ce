//! Scanning one Parquet file of 4M rows in 20 row groups (zstd; vehicle id,
//! event time, speed, a status string): a bare `ParquetRecordBatchReader`
//! against weir's `ParquetSource` polled directly at full speed, with and
//! without event time, decoding inline (read-ahead 0) or on a background
//! thread 1 or 2 row groups ahead, and (last group) with a sort of every
//! batch standing in for the downstream operators fused into the source's
//! thread; and a whole windowed job in both modes at parallelism 2.
//!
//! `cargo bench --bench parquet_scan`
//!
//! One run on a quiet 2-core machine (medians): bare reader 84.6 ms; the
//! source without event time 87.6 ms (read-ahead 0), with event time
//! 97.9 / 96.9 / 99.1 ms (read-ahead 0 / 1 / 2); with the sort downstream
//! 178.4 / 93.6 / 94.2 ms (read-ahead pays 1.9x); with nothing downstream
//! read-ahead costs 5-40% (the threads meet per chunk for no overlap); the
//! whole job 764 / 740 ms (both cores busy anyway).

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use divan::counter::ItemsCount;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use weir::connectors::ParquetSourceSpec;
use weir::operator::{Ctx, OperatorMetrics, Output, RuntimeEnv, Source, SourcePoll, TaskInfo};
use weir::{col, lit, Agg, ExecConfig, Job, Message, TumblingWindow, WatermarkStrategy};

const ROWS: usize = 4_000_000;
const GROUPS: usize = 20;

fn main() {
    divan::main();
}

/// The file, written once per run into a temporary folder.
fn file() -> &'static PathBuf {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &FILE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("scan.parquet");
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level")))
                .set_max_row_group_row_count(Some(ROWS / GROUPS))
                .build();
            let per_group = ROWS / GROUPS;
            let mut writer = None;
            let statuses = ["ok", "idle", "moving", "braking", "fault"];
            for g in 0..GROUPS {
                let start = g * per_group;
                let rows = start as i64..(start + per_group) as i64;
                let b = RecordBatch::try_from_iter([
                    (
                        "vehicle_id",
                        Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| i % 5000))) as _,
                    ),
                    (
                        "event_time",
                        Arc::new(TimestampMillisecondArray::from_iter_values(
                            rows.clone()
                                .map(|i| 1_793_491_200_000 + i * 3 - (i * 7919) % 50),
                        )) as _,
                    ),
                    (
                        "speed",
                        Arc::new(Float64Array::from_iter_values(
                            rows.clone().map(|i| ((i * 31) % 1300) as f64 / 10.0),
                        )) as _,
                    ),
                    (
                        "status",
                        Arc::new(StringArray::from_iter_values(
                            rows.map(|i| statuses[(i as usize / 7) % statuses.len()]),
                        )) as _,
                    ),
                ])
                .expect("batch");
                let w = writer.get_or_insert_with(|| {
                    let f = std::fs::File::create(&path).expect("create");
                    ArrowWriter::try_new(f, b.schema(), Some(props.clone())).expect("writer")
                });
                w.write(&b).expect("write");
            }
            writer.expect("written").close().expect("close");
            (dir, path)
        })
        .1
}

#[divan::bench(sample_count = 5)]
fn bare_reader(bencher: divan::Bencher) {
    let path = file();
    bencher.counter(ItemsCount::new(ROWS)).bench_local(|| {
        let f = std::fs::File::open(path).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .expect("footer")
            .with_batch_size(8192)
            .build()
            .expect("reader");
        let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
        divan::black_box(rows)
    });
}

/// Stands in for a fused downstream chain: sorts each batch by speed.
fn busy(m: &Message) -> usize {
    match m {
        Message::Data(b) => {
            let idx = arrow_ord::sort::sort_to_indices(b.column(2), None, None).expect("sort");
            idx.len()
        }
        _ => 0,
    }
}

/// Polls one subtask of `spec` until it is exhausted, handing each message
/// to `work`; returns what `work` returned, summed.
fn drain(spec: &Arc<ParquetSourceSpec>, work: fn(&Message) -> usize) -> usize {
    let info = TaskInfo {
        operator: "bench".into(),
        subtask: 0,
        parallelism: 1,
    };
    let mut source = spec.create(&info);
    let env = RuntimeEnv::try_new(1 << 32, None).expect("env");
    let mut ctx = Ctx::new(info, env, Arc::new(OperatorMetrics::default()));
    let mut rows = 0;
    loop {
        let mut out = Output::new();
        let poll = source.poll_next(&mut ctx, &mut out).expect("poll");
        rows += out.take().iter().map(work).sum::<usize>();
        if poll == SourcePoll::Exhausted {
            return rows;
        }
    }
}

fn spec(read_ahead: usize, event_time: bool) -> Arc<ParquetSourceSpec> {
    let spec = ParquetSourceSpec::try_new(std::slice::from_ref(file()))
        .expect("spec")
        .with_read_ahead(read_ahead);
    Arc::new(if event_time {
        spec.with_event_time(
            "event_time",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
        )
        .expect("event time")
    } else {
        spec
    })
}

#[divan::bench(sample_count = 5, args = [0, 1, 2])]
fn weir_source(bencher: divan::Bencher, read_ahead: usize) {
    let spec = spec(read_ahead, false);
    bencher
        .counter(ItemsCount::new(ROWS))
        .bench_local(|| divan::black_box(drain(&spec, Message::num_rows)));
}

#[divan::bench(sample_count = 5, args = [0, 1, 2])]
fn weir_source_event_time(bencher: divan::Bencher, read_ahead: usize) {
    let spec = spec(read_ahead, true);
    bencher
        .counter(ItemsCount::new(ROWS))
        .bench_local(|| divan::black_box(drain(&spec, Message::num_rows)));
}

/// With downstream work in the polling thread (as a fused chain would do):
/// here read-ahead overlaps decoding with that work.
#[divan::bench(sample_count = 5, args = [0, 1, 2])]
fn weir_source_event_time_then_sort(bencher: divan::Bencher, read_ahead: usize) {
    let spec = spec(read_ahead, true);
    bencher
        .counter(ItemsCount::new(ROWS))
        .bench_local(|| divan::black_box(drain(&spec, busy)));
}

/// A whole job (pipelined and batch, parallelism 2 on this 2-core machine):
/// event time, a filter and a keyed 10 s window count. With every core
/// already running a source subtask, read-ahead has less idle time to use.
#[divan::bench(sample_count = 5, args = [0, 1])]
fn job_window_count(bencher: divan::Bencher, read_ahead: usize) {
    let spec = ParquetSourceSpec::try_new(std::slice::from_ref(file()))
        .expect("spec")
        .with_read_ahead(read_ahead);
    bencher.counter(ItemsCount::new(ROWS)).bench_local(|| {
        for config in [ExecConfig::pipelined(), ExecConfig::batch()] {
            let job = Job::new();
            job.parquet_source(spec.clone())
                .and_then(|s| {
                    s.assign_timestamps(
                        "event_time",
                        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
                    )
                })
                .and_then(|s| s.filter(col("speed").gt_eq(lit(10.0))))
                .and_then(|s| s.key_by(["vehicle_id"]))
                .and_then(|k| {
                    k.window(TumblingWindow::of(Duration::from_secs(10)))
                        .aggregate([Agg::count().alias("n")])
                })
                .and_then(|s| s.collect())
                .expect("job");
            divan::black_box(job.run(&config.with_parallelism(2)).expect("run"));
        }
    });
}
