//! Snapshot/restore tests of [`WindowAggregate`]: the oracle is the
//! uninterrupted run of the same events on one instance.

use super::{EarlyFiring, WindowAggregate, WindowConfig};
use crate::checkpoint_events::{
    assert_restores, assert_restores_spilled, assert_same, events, rows, Gen,
};
use crate::checkpoint_harness::{encoders, run_uninterrupted, sorted_rows, Event};
use std::sync::Arc;
use std::time::Duration;
use weir_core::error::Result;
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, OperatorMetrics, Output, RuntimeEnv, TaskInfo};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::Window;
use weir_functions::aggregate::Agg;

fn config(window: Window, lateness_ms: i64, early: Option<EarlyFiring>) -> WindowConfig {
    WindowConfig {
        time_column: Some("t".into()),
        keys: vec!["k".into()],
        window,
        lateness_ms,
        aggs: vec![
            Agg::count().alias("n"),
            Agg::sum("v"),
            Agg::max("v"),
            Agg::first("v"),
            Agg::count_distinct("v").alias("dv"),
        ],
        early,
    }
}

fn make(config: WindowConfig) -> impl Fn(&TaskInfo) -> Result<Box<dyn Operator>> {
    move |info: &TaskInfo| {
        let schema = rows(&[]).schema();
        Ok(Box::new(WindowAggregate::try_new(&schema, &config, &info.operator)?) as _)
    }
}

/// Cuts: before anything, after the first batch (nothing fired, rows
/// pending), in the middle right after a batch (out-of-order rows pending)
/// and right after a watermark (between firings), and near the end.
fn cuts(events: &[Event]) -> Vec<usize> {
    let mid = events.len() / 2;
    let after_batch = (mid..events.len())
        .find(|&i| matches!(events[i - 1], Event::Batch(..)))
        .unwrap_or(mid);
    let after_wm = (mid..events.len())
        .find(|&i| matches!(events[i - 1], Event::Watermark(_)))
        .unwrap_or(mid);
    vec![0, 1, after_batch, after_wm, events.len() - 1]
}

fn check(config: WindowConfig, gen: Gen) {
    let ev = events(gen);
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    let make = make(config);
    assert_restores(&make, &keys, &ev, &cuts(&ev));
}

#[test]
fn tumbling_windows_restore_at_every_cut_and_parallelism() {
    let mut ev = events(Gen::default());
    // a row behind the restored watermark (a guard: sources never send it) is dropped
    ev.push(Event::Batch(0, rows(&[("k1".into(), 0, 1)])));
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    let make = make(config(
        Window::tumbling(Duration::from_millis(500)),
        0,
        None,
    ));
    assert_restores(&make, &keys, &ev, &cuts(&ev));
}

#[test]
fn sliding_and_cumulative_windows_restore_their_panes() {
    check(
        config(
            Window::sliding(Duration::from_millis(1000), Duration::from_millis(250)),
            0,
            None,
        ),
        Gen::default(),
    );
    check(
        config(
            Window::cumulative(Duration::from_millis(250), Duration::from_millis(1000)),
            0,
            None,
        ),
        Gen {
            seed: 11,
            ..Gen::default()
        },
    );
}

#[test]
fn allowed_lateness_updates_continue_after_restore() {
    // fired windows keep their panes and emitted keys: late rows after the
    // cut must become `update`s, not `insert`s
    check(
        config(
            Window::sliding(Duration::from_millis(500), Duration::from_millis(250)),
            400,
            None,
        ),
        Gen {
            lateness: 400,
            seed: 3,
            ..Gen::default()
        },
    );
}

#[test]
fn early_firings_by_row_count_restore_counts_and_emitted_keys() {
    let every = |purge| {
        Some(EarlyFiring {
            every_rows: Some(3),
            every_ms: None,
            purge,
        })
    };
    let gen = Gen {
        keys: 4,
        seed: 5,
        ..Gen::default()
    };
    check(
        config(
            Window::tumbling(Duration::from_millis(750)),
            0,
            every(false),
        ),
        gen,
    );
    check(
        config(Window::tumbling(Duration::from_millis(750)), 0, every(true)),
        gen,
    );
    check(
        config(
            Window::sliding(Duration::from_millis(1000), Duration::from_millis(500)),
            300,
            every(false),
        ),
        Gen {
            lateness: 300,
            ..gen
        },
    );
}

#[test]
fn a_global_window_restores_at_parallelism_one() {
    let mut c = config(Window::tumbling(Duration::from_millis(500)), 0, None);
    c.keys.clear();
    let ev = events(Gen::default());
    let make = make(c);
    let want = sorted_rows(&run_uninterrupted(&make, &ev));
    let schema = rows(&[]).schema();
    // one subtask: the router's key is irrelevant
    let keys = encoders(&[&schema], &[&["k"]]);
    for cut in cuts(&ev) {
        let got = sorted_rows(&crate::checkpoint_harness::run_with_restore(
            &make, &keys, &ev, cut, 1, 1,
        ));
        assert_same(&got, &want, &format!("global, cut {cut}"));
    }
}

#[test]
fn spilled_panes_are_in_the_snapshot() {
    let gen = Gen {
        keys: 40,
        rows: 40,
        disorder: 1000,
        ..Gen::default()
    };
    let ev = events(gen);
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    let make = make(config(
        Window::sliding(Duration::from_millis(1000), Duration::from_millis(250)),
        0,
        None,
    ));
    let cut = ev.len() / 2;
    assert_restores_spilled(&make, &keys, &ev, cut, 32 * 1024);
    // with lateness and early firings: emitted keys of spilled panes
    let ev = events(Gen {
        lateness: 500,
        seed: 13,
        ..gen
    });
    let make = super::checkpoint_tests::make(config(
        Window::tumbling(Duration::from_millis(500)),
        500,
        Some(EarlyFiring {
            every_rows: Some(2),
            every_ms: None,
            purge: false,
        }),
    ));
    assert_restores_spilled(&make, &keys, &ev, ev.len() / 2, 32 * 1024);
}

fn instance(env: &RuntimeEnv, config: &WindowConfig) -> (WindowAggregate, Ctx) {
    let info = TaskInfo {
        operator: "w".into(),
        subtask: 0,
        parallelism: 1,
    };
    let mut op = WindowAggregate::try_new(&rows(&[]).schema(), config, "w").expect("valid");
    let mut ctx = Ctx::new(info, env.clone(), Arc::new(OperatorMetrics::default()));
    op.open(&mut ctx).expect("opens");
    (op, ctx)
}

fn data(out: &mut Output) -> Vec<arrow_array::RecordBatch> {
    out.take()
        .into_iter()
        .filter_map(|m| match m {
            weir_core::message::Message::Data(b) => Some(b),
            _ => None,
        })
        .collect()
}

#[test]
fn interval_early_firings_keep_pending_keys_and_their_tick() {
    // processing time: the oracle is the original instance, driven the same way
    let c = config(
        Window::tumbling(Duration::from_millis(1000)),
        0,
        Some(EarlyFiring {
            every_rows: None,
            every_ms: Some(50),
            purge: false,
        }),
    );
    let env = RuntimeEnv::try_new(usize::MAX / 2, None).expect("env");
    let (mut a, mut ctx_a) = instance(&env, &c);
    let mut out = Output::new();
    let first = rows(&[
        ("a".into(), 10, 1),
        ("b".into(), 20, 2),
        ("a".into(), 1500, 3),
    ]);
    a.on_batch(0, first, &mut ctx_a, &mut out).expect("batch");
    assert!(a.early_tick.is_some(), "an interval firing is pending");
    let mut w = StateWriter::new();
    a.snapshot(&mut ctx_a, &mut w).expect("snapshot");
    let (mut b, mut ctx_b) = instance(&env, &c);
    ctx_b.set_processing_timer(ctx_a.processing_timer());
    b.restore(&mut ctx_b, &StateReader::single(w.finish()))
        .expect("restore");
    let rest = |op: &mut WindowAggregate, ctx: &mut Ctx| {
        let mut out = Output::new();
        op.on_processing_time(i64::MAX / 4, ctx, &mut out)
            .expect("timer");
        let second = rows(&[("a".into(), 30, 4), ("c".into(), 1700, 5)]);
        op.on_batch(0, second, ctx, &mut out).expect("batch");
        op.on_processing_time(i64::MAX / 2, ctx, &mut out)
            .expect("timer");
        ctx.set_watermark(Watermark::EventTime(999));
        op.on_watermark(Watermark::EventTime(999), ctx, &mut out)
            .expect("watermark");
        op.on_end_of_input(ctx, &mut out).expect("end");
        sorted_rows(&data(&mut out))
    };
    let want = rest(&mut a, &mut ctx_a);
    let got = rest(&mut b, &mut ctx_b);
    assert!(
        want.iter().any(|r| r.ends_with("|update")),
        "early results then updates: {want:?}"
    );
    assert_same(&got, &want, "interval early firing");
}

#[test]
fn a_snapshot_compacts_spilled_runs_to_one_row_per_pane_and_key() {
    // an hour-long window that never fires while the same 30 keys come back
    // batch after batch: every spill writes all of them again
    let c = config(Window::tumbling(Duration::from_secs(3600)), 0, None);
    let small = RuntimeEnv::try_new(12 * 1024, None).expect("env");
    let big = RuntimeEnv::try_new(usize::MAX / 2, None).expect("env");
    let (mut a, mut ctx_a) = instance(&small, &c);
    let (mut b, mut ctx_b) = instance(&big, &c);
    let (mut out_a, mut out_b) = (Output::new(), Output::new());
    for round in 0..60i64 {
        let batch = rows(
            &(0..30i64)
                .map(|k| (format!("key-{k}"), round * 30 + k, (round * 7 + k) % 11))
                .collect::<Vec<_>>(),
        );
        a.on_batch(0, batch.clone(), &mut ctx_a, &mut out_a)
            .expect("a");
        b.on_batch(0, batch, &mut ctx_b, &mut out_b).expect("b");
    }
    let spills = small.spill.metrics().files();
    assert!(spills >= 8, "the small budget spills often: {spills} files");
    assert!(a.spilled.runs() >= 8, "{} runs", a.spilled.runs());
    // a snapshot compacts: one row per (pane, key) on disk, whatever the spills
    let mut w = StateWriter::new();
    a.snapshot(&mut ctx_a, &mut w).expect("snapshot");
    assert_eq!(a.spilled.runs(), 1);
    let on_disk: usize = a
        .spilled
        .remaining()
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert!(on_disk <= 30, "{on_disk} spilled rows for 30 keys");
    // and restoring it gives the uninterrupted run's results
    let (mut r, mut ctx_r) = instance(&small, &c);
    r.restore(&mut ctx_r, &StateReader::single(w.finish()))
        .expect("restore");
    let finish = |op: &mut WindowAggregate, ctx: &mut Ctx, mut out: Output| {
        ctx.set_watermark(Watermark::EventTime(i64::MAX));
        op.on_watermark(Watermark::EventTime(i64::MAX), ctx, &mut out)
            .expect("watermark");
        op.on_end_of_input(ctx, &mut out).expect("end");
        sorted_rows(&data(&mut out))
    };
    let want = finish(&mut b, &mut ctx_b, out_b);
    assert_eq!(want.len(), 30);
    assert_same(&finish(&mut a, &mut ctx_a, out_a), &want, "compacted");
    assert_same(
        &finish(&mut r, &mut ctx_r, Output::new()),
        &want,
        "restored",
    );
    // merged rows gave back the references of the rows they replaced
    assert_eq!(b.dictionary.len(), 0, "the oracle forgets fired keys");
    assert_eq!(a.dictionary.len(), 0, "no key is held by a merged-away row");
    assert_eq!(r.dictionary.len(), 0);
    drop((a, r));
    assert_eq!(small.pool.reserved(), 0, "the pool is back to zero");
}
