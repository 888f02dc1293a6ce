//! Unit tests of `crates/weir-connectors/src/parquet/reader.rs`.

use super::*;
use crate::replay::{ReplaySpeed, TimeRange};
use crate::source_harness::{
    assert_every_cut, info, rescaled_rows, row_multiset, uninterrupted, with_restore, Item,
    MakeSource, Running,
};
use arrow_array::Int64Array;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::time::Duration;
use weir_core::state::SubtaskState;
use weir_core::time::WatermarkStrategy;

/// Writes row groups of `(id, t)` rows, one per inner Vec.
fn write(path: &Path, groups: &[Vec<(i64, i64)>]) {
    let props = WriterProperties::builder()
        .set_data_page_row_count_limit(3)
        .set_write_batch_size(3)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = None;
    for g in groups {
        let b = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from_iter_values(g.iter().map(|r| r.0))) as _,
            ),
            (
                "t",
                Arc::new(Int64Array::from_iter_values(g.iter().map(|r| r.1))) as _,
            ),
        ])
        .unwrap();
        let w = w.get_or_insert_with(|| {
            ArrowWriter::try_new(file.try_clone().unwrap(), b.schema(), Some(props.clone()))
                .unwrap()
        });
        w.write(&b).unwrap();
        w.flush().unwrap();
    }
    w.unwrap().close().unwrap();
}

/// Two files, five row groups of 7 to 17 rows whose time ranges
/// overlap (so unread splits hold the watermark), with rows far behind
/// (late) and rows that do not raise the watermark.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut id = 0;
    let mut group = |base: i64, n: i64| -> Vec<(i64, i64)> {
        (0..n)
            .map(|k| {
                id += 1;
                let t = match k % 5 {
                    3 => base + k - 20, // late
                    4 => base + k - 3,  // behind, within the delay
                    _ => base + k * 2,
                };
                (id, t)
            })
            .collect()
    };
    let a = vec![group(100, 13), group(40, 7), group(160, 17)];
    let b = vec![group(60, 11), group(130, 16)];
    let paths = vec![dir.join("a.parquet"), dir.join("b.parquet")];
    write(&paths[0], &a);
    write(&paths[1], &b);
    paths
}

fn spec(paths: &[std::path::PathBuf], read_ahead: usize) -> ParquetSourceSpec {
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(5));
    ParquetSourceSpec::try_new(paths)
        .unwrap()
        .with_batch_size(4)
        .with_read_ahead(read_ahead)
        .with_event_time("t", strategy)
        .unwrap()
}

fn maker(spec: ParquetSourceSpec) -> impl Fn(&TaskInfo) -> Result<Box<dyn Source>> {
    let spec = Arc::new(spec);
    move |info| Ok(Box::new(spec.create(info)) as Box<dyn Source>)
}

#[test]
fn a_restore_after_any_poll_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path());
    for read_ahead in [0, 2] {
        let make = maker(spec(&paths, read_ahead));
        let (all, _) = uninterrupted(&make, 0, 1);
        assert!(
            all.iter().any(|i| matches!(i, Item::Side(1, _))),
            "late rows"
        );
        assert_eq!(row_multiset(all).len(), 64);
        for p in [1, 2] {
            assert_every_cut(&make, p);
        }
    }
}

#[test]
fn a_restore_with_a_time_range_counts_the_filtered_rows() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path());
    let range = TimeRange {
        from: Some(50),
        until: Some(170),
    };
    let make = maker(spec(&paths, 1).with_time_range("t", range).unwrap());
    assert_every_cut(&make, 1);
}

#[test]
fn a_rescale_reads_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path());
    let make: MakeSource<'_> = &maker(spec(&paths, 1));
    let input = row_multiset(uninterrupted(make, 0, 1).0);
    for cuts in [[0, 0], [1, 3], [3, 1], [4, 6], [7, 2], [100, 5]] {
        for p_after in [1, 3] {
            let got = rescaled_rows(make, &cuts, p_after);
            assert_eq!(got, input, "cuts {cuts:?} -> p {p_after}");
        }
    }
}

#[test]
fn a_restore_inside_a_row_group_skips_the_rows_read_before() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path());
    let first = maker(spec(&paths, 0));
    // 5 polls: the first split by time (7 rows: 2 batches and its
    // end), then 8 of the second's 11 rows (batch size 4)
    let mut items = Vec::new();
    let mut r = Running::new(&first, 0, 1);
    r.poll_n(5, &mut items);
    let state = Arc::new(vec![r.snapshot()]);
    let second = Arc::new(spec(&paths, 0));
    let metrics = second.metrics();
    let make = move |info: &TaskInfo| Ok(Box::new(second.create(info)) as Box<dyn Source>);
    Running::restored(&make, &state, 0, 1).run_to_end(&mut items);
    assert_eq!(items, uninterrupted(&first, 0, 1).0);
    assert_eq!(
        metrics.snapshot().rows_read,
        64 - 15,
        "skipped, not decoded"
    );
}

#[test]
fn a_paced_reader_restores_without_its_held_batch() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path());
    // ~180 ms of event time at 4x: 45 ms per run
    let make = maker(
        spec(&paths, 1)
            .with_replay_speed("t", ReplaySpeed::Times(4.0))
            .unwrap(),
    );
    let (oracle, _) = uninterrupted(&make, 0, 1);
    // snapshot right when a batch is held (a poll that emitted nothing)
    let mut held_cuts = 0;
    let spec = Arc::new(
        spec(&paths, 1)
            .with_replay_speed("t", ReplaySpeed::Times(4.0))
            .unwrap(),
    );
    for cut in 1..40 {
        let mut items = Vec::new();
        let mut r = Running::typed(Box::new(spec.create(&info(0, 1))), info(0, 1));
        r.poll_n(cut, &mut items);
        let held = r.source().held_meta.is_some();
        let state = Arc::new(vec![r.snapshot()]);
        drop(r);
        Running::restored(&make, &state, 0, 1).run_to_end(&mut items);
        assert_eq!(items, oracle, "cut {cut}");
        held_cuts += usize::from(held);
    }
    assert!(held_cuts > 0, "some cut fell on a held batch");
    assert_eq!(with_restore(&make, 0, 1, 5), oracle);
}

#[test]
fn a_changed_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path());
    let make = maker(spec(&paths, 0));
    let mut r = Running::new(&make, 0, 1);
    r.poll_n(2, &mut Vec::new());
    let state: Arc<Vec<SubtaskState>> = Arc::new(vec![r.snapshot()]);
    let fewer = Arc::new(spec(&paths[..1], 0));
    let mut r = Running::typed(Box::new(fewer.create(&info(0, 1))), info(0, 1));
    let err = r.restore(&state).unwrap_err();
    assert!(err.to_string().contains("a.parquet"), "{err}");
}

/// The read-ahead is counted in the pool, bounded by a 64th of the
/// budget (at least one chunk) however large the row groups, and given
/// back when the source ends.
#[test]
fn read_ahead_is_reserved_bounded_and_given_back() {
    use weir_core::operator::{OperatorMetrics, RuntimeEnv};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    // one row group of 200,000 rows: about 3 MB decoded
    let rows: Vec<(i64, i64)> = (0..200_000).map(|i| (i, i)).collect();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let b = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as _,
        ),
        (
            "t",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as _,
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut w = ArrowWriter::try_new(file, b.schema(), Some(props)).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let spec = Arc::new(
        ParquetSourceSpec::try_new(&[path])
            .unwrap()
            .with_batch_size(8192)
            .with_read_ahead(2),
    );
    for budget in [4usize << 20, 256 << 20] {
        let env = RuntimeEnv::try_new(budget, None).unwrap();
        let mut ctx = Ctx::new(info(0, 1), env, Arc::new(OperatorMetrics::default()));
        let mut src = spec.create(&info(0, 1));
        let mut out = Output::new();
        src.poll_next(&mut ctx, &mut out).unwrap();
        let ahead: usize = ctx
            .pool()
            .consumers()
            .iter()
            .filter(|(name, _, _)| name.contains("read-ahead"))
            .map(|(_, _, bytes)| *bytes)
            .sum();
        // a chunk is 32,768 rows of 16 bytes (two Int64 columns)
        let chunk = 32_768 * 16;
        assert!(ahead >= chunk / 2, "{budget}: reserved {ahead}");
        assert!(
            ahead <= (budget / 64).max(chunk * 2),
            "{budget}: reserved {ahead}"
        );
        let mut n = 0;
        while !matches!(
            src.poll_next(&mut ctx, &mut out).unwrap(),
            SourcePoll::Exhausted
        ) {
            n += 1;
            assert!(n < 10_000, "the source ends");
        }
        assert_eq!(ctx.pool().reserved(), 0, "{budget}: given back at the end");
    }
}
