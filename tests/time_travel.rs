//! Time travel and replay pacing of the Parquet source: `from`/`until`
//! skip the row groups whose statistics lie outside the range and keep
//! exactly the rows inside it; a paced replay takes at least the event-time
//! span divided by the speed, and gives the same rows as a full-speed one.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::RecordBatch;
use std::process::Command;
use std::time::{Duration, Instant};
use weir::connectors::replay::{ReplaySpeed, TimeRange};
use weir::connectors::ParquetSourceSpec;
use weir::workloads::vehicles::{generate_obd, write_parquet_dir, DEMO_EPOCH_MS};
use weir::{ExecConfig, ExecMode, Job};

type Reading = (i64, i64, u64);

fn readings(batches: &[RecordBatch]) -> Vec<Reading> {
    let mut out = Vec::new();
    for b in batches {
        let v = b.column(0).as_primitive::<Int64Type>();
        let t = b.column(1).as_primitive::<TimestampMillisecondType>();
        let s = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((v.value(i), t.value(i), s.value(i).to_bits()));
        }
    }
    out.sort_unstable();
    out
}

/// 20 vehicles x 60 s in arrival order, as row groups of 300 rows.
fn data(dir: &std::path::Path) -> (std::path::PathBuf, Vec<RecordBatch>) {
    let batches = generate_obd(20, 60, 3, 300);
    let path = dir.join("obd");
    write_parquet_dir(&path, &batches, 1, 300).unwrap();
    (path, batches)
}

#[test]
fn from_until_prunes_row_groups_and_keeps_exactly_the_rows_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let (path, batches) = data(dir.path());
    let range = TimeRange {
        from: Some(DEMO_EPOCH_MS + 20_000),
        until: Some(DEMO_EPOCH_MS + 40_000),
    };
    // oracle: the row groups (chunks of 300 rows) whose times overlap the range
    let groups: Vec<(i64, i64)> = batches
        .iter()
        .map(|b| {
            let t = b.column(1).as_primitive::<TimestampMillisecondType>();
            (
                t.values().iter().copied().min().unwrap(),
                t.values().iter().copied().max().unwrap(),
            )
        })
        .collect();
    let overlapping = groups
        .iter()
        .filter(|&&(lo, hi)| hi >= 20_000 + DEMO_EPOCH_MS && lo < 40_000 + DEMO_EPOCH_MS)
        .count();
    assert!(
        overlapping < groups.len() && overlapping > 0,
        "{overlapping} of {}",
        groups.len()
    );
    let spec = ParquetSourceSpec::try_new(std::slice::from_ref(&path))
        .unwrap()
        .with_time_range("event_time", range)
        .unwrap();
    assert_eq!(
        spec.num_splits(),
        overlapping,
        "only overlapping row groups are read"
    );
    let want: Vec<Reading> = readings(&batches)
        .into_iter()
        .filter(|r| range.contains(r.1))
        .collect();
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let job = Job::new();
        let out = job.parquet_source(spec.clone()).unwrap().collect().unwrap();
        job.run(&ExecConfig::new(mode).with_parallelism(2)).unwrap();
        assert_eq!(readings(&out.batches()), want, "{mode}");
    }
}

#[test]
fn a_paced_replay_takes_the_span_over_the_speed_and_gives_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (path, batches) = data(dir.path());
    // 60 s of event time at 200x: at least 0.3 s (one reader: parallelism 1)
    let spec = ParquetSourceSpec::try_new(std::slice::from_ref(&path))
        .unwrap()
        .with_replay_speed("event_time", ReplaySpeed::Times(200.0))
        .unwrap();
    let job = Job::new();
    let out = job.parquet_source(spec).unwrap().collect().unwrap();
    let started = Instant::now();
    job.run(&ExecConfig::pipelined().with_parallelism(1))
        .unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert_eq!(readings(&out.batches()), readings(&batches));
}

#[test]
fn run_flags_from_until_and_speed_reach_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let (path, batches) = data(dir.path());
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[source]\npath = \"{}\"\ntime_column = \"event_time\"\nwatermark_delay = \"600s\"\n[sink]\npath = \"out.parquet\"\n",
            path.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out.parquet");
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&job)
        .args([
            "--from",
            "2026-11-01T00:00:10Z",
            "--until",
            "2026-11-01T00:00:15.5Z",
            "--speed",
            "max",
            "--output",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let file = std::fs::File::open(&out).unwrap();
    let got: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
    let want: Vec<Reading> = readings(&batches)
        .into_iter()
        .filter(|r| r.1 >= DEMO_EPOCH_MS + 10_000 && r.1 < DEMO_EPOCH_MS + 15_500)
        .collect();
    assert_eq!(readings(&got), want);
    let bad = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&job)
        .args(["--speed", "warp"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("speed"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
