use super::*;
use crate::basic::tests::{batches, test_ctx};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Float64Array, StringArray};

fn input(rows: &[(&str, i64, f64)]) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "k",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
        ),
        (
            "t",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as _,
        ),
        (
            "v",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))) as _,
        ),
    ])
    .unwrap()
}

/// `(key, start, end, count, sum)` rows, sorted.
fn table(got: &[RecordBatch]) -> Vec<(String, i64, i64, i64, f64)> {
    let mut v = Vec::new();
    for b in got {
        let k = b.column(0).as_string::<i32>();
        let s = b.column(1).as_primitive::<Int64Type>();
        let e = b.column(2).as_primitive::<Int64Type>();
        let n = b.column(3).as_primitive::<Int64Type>();
        let sum = b.column(4).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            v.push((
                k.value(i).to_string(),
                s.value(i),
                e.value(i),
                n.value(i),
                sum.value(i),
            ));
        }
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

/// Key a: 7 rows at 10..70 (v = 1..7); key b: 5 rows, two with equal time.
fn rows() -> Vec<(&'static str, i64, f64)> {
    vec![
        ("a", 10, 1.0),
        ("a", 20, 2.0),
        ("a", 30, 3.0),
        ("a", 40, 4.0),
        ("a", 50, 5.0),
        ("a", 60, 6.0),
        ("a", 70, 7.0),
        ("b", 15, 10.0),
        ("b", 25, 20.0),
        ("b", 25, 30.0),
        ("b", 35, 40.0),
        ("b", 45, 50.0),
    ]
}

fn shuffled() -> Vec<(&'static str, i64, f64)> {
    let r = rows();
    [11, 3, 0, 9, 6, 1, 10, 4, 8, 2, 7, 5]
        .iter()
        .map(|&i| r[i])
        .collect()
}

/// Runs the operator over `rows` in batches of `batch` rows; after each
/// batch the watermark moves to just below the smallest time still to come.
fn run(spec: CountWindow, rows: &[(&str, i64, f64)], batch: usize) -> Vec<RecordBatch> {
    let schema = input(&rows[..1]).schema();
    let mut op = CountWindowAggregate::try_new(
        &schema,
        "t",
        &["k".into()],
        spec,
        &[Agg::count().alias("n"), Agg::sum("v")],
        "count",
    )
    .unwrap();
    let (mut ctx, mut out) = (test_ctx(), Output::new());
    op.open(&mut ctx).unwrap();
    let mut got = Vec::new();
    for (i, chunk) in rows.chunks(batch).enumerate() {
        op.on_batch(0, input(chunk), &mut ctx, &mut out).unwrap();
        let rest = &rows[((i + 1) * batch).min(rows.len())..];
        if let Some(min) = rest.iter().map(|r| r.1).min() {
            op.on_watermark(Watermark::EventTime(min - 1), &mut ctx, &mut out)
                .unwrap();
        }
        got.extend(batches(&mut out));
    }
    op.on_watermark(Watermark::MAX, &mut ctx, &mut out).unwrap();
    op.on_end_of_input(&mut ctx, &mut out).unwrap();
    got.extend(batches(&mut out));
    assert_eq!(ctx.pool().reserved(), 0, "memory returned at end of input");
    assert_eq!(
        ctx.metrics()
            .late_rows
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    got
}

#[test]
fn tumbling_count_window_is_the_same_for_shuffled_and_sorted_input() {
    let spec = || CountWindow::Tumbling { size: 3 };
    let want = vec![
        ("a".to_string(), 10, 31, 3, 6.0),
        ("a".to_string(), 40, 61, 3, 15.0),
        // b's rows in order: 15/10, 25/20, 25/30 (tie by content), 35/40, 45/50
        ("b".to_string(), 15, 26, 3, 60.0),
    ];
    assert_eq!(table(&run(spec(), &rows(), 12)), want);
    for batch in [1, 2, 5] {
        assert_eq!(table(&run(spec(), &shuffled(), batch)), want, "{batch}");
    }
}

#[test]
fn sliding_count_window_is_the_same_for_shuffled_and_sorted_input() {
    let spec = || CountWindow::Sliding { size: 4, slide: 2 };
    let want = vec![
        ("a".to_string(), 10, 21, 2, 3.0),
        ("a".to_string(), 10, 41, 4, 10.0),
        ("a".to_string(), 30, 61, 4, 18.0),
        ("b".to_string(), 15, 26, 2, 30.0),
        ("b".to_string(), 15, 36, 4, 100.0),
    ];
    assert_eq!(table(&run(spec(), &rows(), 12)), want);
    for batch in [1, 3, 4] {
        assert_eq!(table(&run(spec(), &shuffled(), batch)), want, "{batch}");
    }
}

#[test]
fn sliding_with_slide_larger_than_size_and_size_one() {
    let want = vec![
        ("a".to_string(), 30, 41, 2, 7.0),
        ("b".to_string(), 25, 36, 2, 70.0),
    ];
    let spec = || CountWindow::Sliding { size: 2, slide: 4 };
    assert_eq!(table(&run(spec(), &shuffled(), 2)), want);
    let spec = || CountWindow::Sliding { size: 1, slide: 1 };
    assert_eq!(table(&run(spec(), &shuffled(), 3)).len(), 12);
}

/// Fires every 2 rows, and flushes whatever is left at end of input.
#[derive(Debug)]
struct PairsThenFlush;

impl WindowTrigger for PairsThenFlush {
    fn on_row(&self, count: u64, _time: i64) -> TriggerAction {
        if count == 2 {
            TriggerAction::FireAndPurge
        } else {
            TriggerAction::Continue
        }
    }
    fn on_watermark(&self, _count: u64, watermark: i64) -> TriggerAction {
        if watermark == i64::MAX {
            TriggerAction::FireAndPurge
        } else {
            TriggerAction::Continue
        }
    }
}

#[test]
fn global_window_trigger_flushes_at_end_of_input() {
    let spec = || CountWindow::Global {
        trigger: Arc::new(PairsThenFlush),
        evict_to: None,
    };
    let want = vec![
        ("a".to_string(), 10, 21, 2, 3.0),
        ("a".to_string(), 30, 41, 2, 7.0),
        ("a".to_string(), 50, 61, 2, 11.0),
        ("a".to_string(), 70, 71, 1, 7.0),
        ("b".to_string(), 15, 26, 2, 30.0),
        ("b".to_string(), 25, 36, 2, 70.0),
        ("b".to_string(), 45, 46, 1, 50.0),
    ];
    assert_eq!(table(&run(spec(), &rows(), 12)), want);
    assert_eq!(table(&run(spec(), &shuffled(), 1)), want);
}

#[test]
fn global_window_with_count_trigger_and_eviction() {
    // fire when the window holds 3 rows, keep the latest 1 after firing:
    // windows of 3 rows overlapping by one
    let spec = || CountWindow::Global {
        trigger: Arc::new(CountTrigger {
            every: 3,
            purge: false,
        }),
        evict_to: Some(1),
    };
    let want = vec![
        ("a".to_string(), 10, 31, 3, 6.0),
        ("a".to_string(), 30, 51, 3, 12.0),
        ("a".to_string(), 50, 71, 3, 18.0),
        ("b".to_string(), 15, 26, 3, 60.0),
        ("b".to_string(), 25, 46, 3, 120.0),
    ];
    assert_eq!(table(&run(spec(), &rows(), 12)), want);
    assert_eq!(table(&run(spec(), &shuffled(), 2)), want);
    // without eviction and purge: cumulative firings every 3 rows
    let spec = CountWindow::Global {
        trigger: Arc::new(CountTrigger {
            every: 3,
            purge: false,
        }),
        evict_to: None,
    };
    assert_eq!(
        table(&run(spec, &shuffled(), 5)),
        vec![
            ("a".to_string(), 10, 31, 3, 6.0),
            ("a".to_string(), 10, 61, 6, 21.0),
            ("b".to_string(), 15, 26, 3, 60.0),
        ]
    );
}

#[test]
fn long_key_history_keeps_few_chunks_and_bounded_rows() {
    let schema = input(&rows()[..1]).schema();
    let mut op = CountWindowAggregate::try_new(
        &schema,
        "t",
        &[],
        CountWindow::Sliding { size: 5, slide: 3 },
        &[Agg::sum("v")],
        "count",
    )
    .unwrap();
    let (mut ctx, mut out) = (test_ctx(), Output::new());
    op.open(&mut ctx).unwrap();
    let mut fired = 0;
    for t in 0..300 {
        op.on_batch(0, input(&[("x", t, t as f64)]), &mut ctx, &mut out)
            .unwrap();
        op.on_watermark(Watermark::EventTime(t), &mut ctx, &mut out)
            .unwrap();
        for b in batches(&mut out) {
            for i in 0..b.num_rows() {
                // window of the last 5 rows ending at the firing row
                let end = b.column(1).as_primitive::<Int64Type>().value(i);
                let sum = b.column(2).as_primitive::<Float64Type>().value(i);
                let last = end - 1;
                let first = (last - 4).max(0);
                assert_eq!(sum, ((first..=last).sum::<i64>()) as f64);
                fired += 1;
            }
        }
        let w = op.windows.values().next().unwrap();
        assert!(w.end() - w.start <= 5);
        assert!(w.chunks.len() <= 4, "{}", w.chunks.len());
    }
    assert_eq!(fired, 100);
    op.on_end_of_input(&mut ctx, &mut out).unwrap();
    assert_eq!(ctx.pool().reserved(), 0);
}

#[test]
fn rejects_bad_options_and_columns() {
    let schema = input(&rows()[..1]).schema();
    let make = |spec, time: &str, aggs: &[Agg]| {
        CountWindowAggregate::try_new(&schema, time, &["k".into()], spec, aggs, "cw")
    };
    let err = make(CountWindow::Tumbling { size: 0 }, "t", &[Agg::count()]).unwrap_err();
    assert!(err.to_string().contains("size >= 1"), "{err}");
    let err = make(
        CountWindow::Sliding { size: 3, slide: 0 },
        "t",
        &[Agg::count()],
    )
    .unwrap_err();
    assert!(err.to_string().contains("slide"), "{err}");
    let err = make(CountWindow::Tumbling { size: 2 }, "time", &[Agg::count()]).unwrap_err();
    assert!(err.to_string().contains("`time`"), "{err}");
    let err = make(CountWindow::Tumbling { size: 2 }, "t", &[]).unwrap_err();
    assert!(err.to_string().contains("aggregate"), "{err}");
    let op = make(CountWindow::Tumbling { size: 2 }, "t", &[Agg::max("v")]).unwrap();
    let names: Vec<&str> = op
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, vec!["k", "window_start", "window_end", "max_v"]);
}

#[test]
fn late_rows_are_counted_and_dropped() {
    let schema = input(&rows()[..1]).schema();
    let mut op = CountWindowAggregate::try_new(
        &schema,
        "t",
        &["k".into()],
        CountWindow::Tumbling { size: 1 },
        &[Agg::count()],
        "cw",
    )
    .unwrap();
    let (mut ctx, mut out) = (test_ctx(), Output::new());
    op.open(&mut ctx).unwrap();
    op.on_watermark(Watermark::EventTime(100), &mut ctx, &mut out)
        .unwrap();
    op.on_batch(
        0,
        input(&[("a", 100, 1.0), ("a", 101, 1.0)]),
        &mut ctx,
        &mut out,
    )
    .unwrap();
    op.on_end_of_input(&mut ctx, &mut out).unwrap();
    assert_eq!(
        ctx.metrics()
            .late_rows
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let got: usize = batches(&mut out).iter().map(|b| b.num_rows()).sum();
    assert_eq!(got, 1);
}
