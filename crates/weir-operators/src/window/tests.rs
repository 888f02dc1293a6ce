//! Unit tests of `crates/weir-operators/src/window/mod.rs`.

use super::*;
use crate::basic::tests::{batches, test_ctx};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Float64Array, StringArray};
use std::time::Duration;

fn input(keys: Vec<&str>, times: Vec<i64>, speeds: Vec<f64>) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("k", Arc::new(StringArray::from(keys)) as _),
        ("t", Arc::new(Int64Array::from(times)) as _),
        ("speed", Arc::new(Float64Array::from(speeds)) as _),
    ])
    .unwrap()
}

#[test]
fn fires_windows_in_order_when_the_watermark_passes_and_counts_late_rows() {
    let b = input(
        vec!["a", "b", "a", "a"],
        vec![100, 200, 1500, 900],
        vec![1.0, 2.0, 3.0, 5.0],
    );
    let mut w = WindowAggregate::try_new(
        &b.schema(),
        &WindowConfig {
            time_column: Some("t".into()),
            keys: vec!["k".into()],
            window: Window::tumbling(Duration::from_secs(1)),
            lateness_ms: 0,
            aggs: vec![Agg::count().alias("n"), Agg::avg("speed")],
            early: None,
        },
        "window",
    )
    .unwrap();
    let mut ctx = test_ctx();
    w.open(&mut ctx).unwrap();
    let mut out = Output::new();
    w.on_batch(0, b, &mut ctx, &mut out).unwrap();
    w.on_watermark(Watermark::EventTime(998), &mut ctx, &mut out)
        .unwrap();
    assert!(
        batches(&mut out).is_empty(),
        "window [0,1000) must not fire at 998"
    );
    w.on_watermark(Watermark::EventTime(999), &mut ctx, &mut out)
        .unwrap();
    let got = batches(&mut out);
    assert_eq!(got.len(), 1);
    let g = &got[0];
    let keys: Vec<&str> = g
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(|k| k.unwrap())
        .collect();
    assert_eq!(keys, vec!["a", "b"]);
    assert_eq!(
        g.column(1).as_primitive::<Int64Type>().values().to_vec(),
        vec![0, 0]
    );
    assert_eq!(
        g.column(2).as_primitive::<Int64Type>().values().to_vec(),
        vec![1000, 1000]
    );
    assert_eq!(
        g.column(3).as_primitive::<Int64Type>().values().to_vec(),
        vec![2, 1]
    );
    assert_eq!(
        g.column(4).as_primitive::<Float64Type>().values().to_vec(),
        vec![3.0, 2.0]
    );

    // a row for the fired window is late; a row for [1000,2000) is not
    let late = input(vec!["a", "a"], vec![10, 1999], vec![7.0, 9.0]);
    w.on_batch(0, late, &mut ctx, &mut out).unwrap();
    assert_eq!(
        ctx.metrics()
            .late_rows
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    w.on_end_of_input(&mut ctx, &mut out).unwrap();
    let got = batches(&mut out);
    assert_eq!(
        got[0]
            .column(3)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec(),
        vec![2]
    );
    assert_eq!(
        got[0]
            .column(4)
            .as_primitive::<Float64Type>()
            .values()
            .to_vec(),
        vec![6.0]
    );
    assert_eq!(
        ctx.pool().reserved(),
        0,
        "fired windows release their memory"
    );
}

#[test]
fn a_global_window_given_only_late_rows_keeps_no_key_and_no_memory() {
    let b = input(vec!["a", "b"], vec![100, 200], vec![1.0, 2.0]);
    let mut w = WindowAggregate::try_new(
        &b.schema(),
        &WindowConfig {
            time_column: Some("t".into()),
            keys: vec![],
            window: Window::tumbling(Duration::from_secs(1)),
            lateness_ms: 0,
            aggs: vec![Agg::count().alias("n")],
            early: None,
        },
        "window",
    )
    .unwrap();
    let mut ctx = test_ctx();
    w.open(&mut ctx).unwrap();
    let mut out = Output::new();
    w.on_batch(0, b, &mut ctx, &mut out).unwrap();
    w.on_watermark(Watermark::EventTime(999), &mut ctx, &mut out)
        .unwrap();
    let got = batches(&mut out);
    assert_eq!(
        got[0]
            .column(2)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec(),
        vec![2]
    );
    // every row late, then an empty batch: nothing is interned
    let late = input(vec!["c"], vec![500], vec![3.0]);
    w.on_batch(0, late, &mut ctx, &mut out).unwrap();
    w.on_batch(0, input(vec![], vec![], vec![]), &mut ctx, &mut out)
        .unwrap();
    assert!(w.dictionary.is_empty(), "no key interned for late rows");
    w.on_end_of_input(&mut ctx, &mut out).unwrap();
    assert!(batches(&mut out).is_empty());
    assert_eq!(ctx.pool().reserved(), 0);
}

#[test]
fn rejects_bad_columns() {
    let b = input(vec!["a"], vec![1], vec![1.0]);
    let w = Window::tumbling(Duration::from_secs(1));
    let err = WindowAggregate::try_new(
        &b.schema(),
        &WindowConfig {
            time_column: Some("time".into()),
            keys: vec!["k".into()],
            window: w,
            lateness_ms: 0,
            aggs: vec![Agg::count()],
            early: None,
        },
        "win",
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("`time`"), "{err}");
    let err = WindowAggregate::try_new(
        &b.schema(),
        &WindowConfig {
            time_column: Some("k".into()),
            keys: vec!["k".into()],
            window: w,
            lateness_ms: 0,
            aggs: vec![Agg::count()],
            early: None,
        },
        "win",
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("Int64 (epoch ms) or Timestamp"),
        "{err}"
    );
}

fn window_rows(got: &[RecordBatch]) -> Vec<(String, i64, i64, i64)> {
    let mut v = Vec::new();
    for b in got {
        let k = b.column(0).as_string::<i32>();
        let s = b.column(1).as_primitive::<Int64Type>();
        let e = b.column(2).as_primitive::<Int64Type>();
        let n = b.column(3).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            v.push((k.value(i).to_string(), s.value(i), e.value(i), n.value(i)));
        }
    }
    v.sort();
    v
}

#[test]
fn sliding_windows_merge_panes() {
    let b = input(
        vec!["a", "a", "a", "b"],
        vec![500, 1500, 2500, 1200],
        vec![1.0; 4],
    );
    let mut w = WindowAggregate::try_new(
        &b.schema(),
        &WindowConfig {
            time_column: Some("t".into()),
            keys: vec!["k".into()],
            window: Window::sliding(Duration::from_secs(2), Duration::from_secs(1)),
            lateness_ms: 0,
            aggs: vec![Agg::count().alias("n")],
            early: None,
        },
        "w",
    )
    .unwrap();
    let (mut ctx, mut out) = (test_ctx(), Output::new());
    w.open(&mut ctx).unwrap();
    w.on_batch(0, b, &mut ctx, &mut out).unwrap();
    w.on_watermark(Watermark::EventTime(1999), &mut ctx, &mut out)
        .unwrap();
    // windows ending at <= 2000: [-1000,1000) and [0,2000)
    assert_eq!(
        window_rows(&batches(&mut out)),
        vec![
            ("a".into(), -1000, 1000, 1),
            ("a".into(), 0, 2000, 2),
            ("b".into(), 0, 2000, 1)
        ]
    );
    w.on_end_of_input(&mut ctx, &mut out).unwrap();
    assert_eq!(
        window_rows(&batches(&mut out)),
        vec![
            ("a".into(), 1000, 3000, 2),
            ("a".into(), 2000, 4000, 1),
            ("b".into(), 1000, 3000, 1)
        ]
    );
    assert_eq!(ctx.pool().reserved(), 0);
}

#[test]
fn late_rows_within_lateness_update_fired_windows() {
    let b = input(vec!["a", "a"], vec![100, 200], vec![1.0, 2.0]);
    let mut w = WindowAggregate::try_new(
        &b.schema(),
        &WindowConfig {
            time_column: Some("t".into()),
            keys: vec!["k".into()],
            window: Window::tumbling(Duration::from_secs(1)),
            lateness_ms: 500,
            aggs: vec![Agg::count().alias("n")],
            early: None,
        },
        "w",
    )
    .unwrap();
    assert_eq!(w.schema().fields().last().unwrap().name(), OP_COLUMN);
    let (mut ctx, mut out) = (test_ctx(), Output::new());
    w.open(&mut ctx).unwrap();
    w.on_batch(0, b, &mut ctx, &mut out).unwrap();
    w.on_watermark(Watermark::EventTime(1200), &mut ctx, &mut out)
        .unwrap();
    let first = batches(&mut out);
    assert_eq!(window_rows(&first), vec![("a".into(), 0, 1000, 2)]);
    assert_eq!(first[0].column(4).as_string::<i32>().value(0), "insert");
    // within lateness (window done at 999 + 500): an update for the same window
    w.on_batch(
        0,
        input(vec!["a"], vec![300], vec![3.0]),
        &mut ctx,
        &mut out,
    )
    .unwrap();
    let upd = batches(&mut out);
    assert_eq!(window_rows(&upd), vec![("a".into(), 0, 1000, 3)]);
    assert_eq!(upd[0].column(4).as_string::<i32>().value(0), "update");
    // past the lateness the window's state is gone and the row is counted late
    w.on_watermark(Watermark::EventTime(1499), &mut ctx, &mut out)
        .unwrap();
    w.on_batch(
        0,
        input(vec!["a"], vec![400], vec![3.0]),
        &mut ctx,
        &mut out,
    )
    .unwrap();
    assert!(batches(&mut out).is_empty());
    assert_eq!(
        ctx.metrics()
            .late_rows
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
