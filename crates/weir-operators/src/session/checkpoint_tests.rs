//! Snapshot/restore tests of [`SessionWindowAggregate`]: the oracle is the
//! uninterrupted run of the same events on one instance.

use super::SessionWindowAggregate;
use crate::checkpoint_events::{
    assert_restores, assert_restores_spilled, assert_restores_spilled_by, events, folded, rows, Gen,
};
use crate::checkpoint_harness::{encoders, run_uninterrupted, sorted_rows, Event};
use arrow_array::RecordBatch;
use weir_core::error::Result;
use weir_core::operator::{Operator, TaskInfo};
use weir_functions::aggregate::Agg;

fn make(gap_ms: i64, lateness_ms: i64) -> impl Fn(&TaskInfo) -> Result<Box<dyn Operator>> {
    move |info: &TaskInfo| {
        let schema = rows(&[]).schema();
        let aggs = [
            Agg::count().alias("n"),
            Agg::sum("v"),
            Agg::min("v"),
            Agg::last("v").alias("last_v"),
            Agg::count_distinct("v").alias("dv"),
        ];
        let op = SessionWindowAggregate::try_new(
            &schema,
            "t",
            &["k".into()],
            gap_ms,
            lateness_ms,
            &aggs,
            &info.operator,
        )?;
        Ok(Box::new(op) as _)
    }
}

fn cuts(ev: &[Event]) -> Vec<usize> {
    let mid = ev.len() / 2;
    let after = |batch: bool| {
        (mid..ev.len())
            .find(|&i| matches!(ev[i - 1], Event::Batch(..)) == batch)
            .unwrap_or(mid)
    };
    vec![0, 1, after(true), after(false), ev.len() - 1]
}

#[test]
fn sessions_restore_at_every_cut_and_parallelism() {
    let mut ev = events(Gen {
        keys: 14,
        ..Gen::default()
    });
    // a row behind the restored watermark (a guard: sources never send it) is dropped
    ev.push(Event::Batch(0, rows(&[("k1".into(), 0, 1)])));
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    let make = make(200, 0);
    let want = sorted_rows(&run_uninterrupted(&make, &ev));
    assert!(want.len() > 40, "several sessions per key: {}", want.len());
    assert_restores(&make, &keys, &ev, &cuts(&ev));
}

#[test]
fn fired_sessions_changed_by_late_rows_retract_after_restore() {
    // emitted bounds and dirty flags: a late row after the cut that extends
    // or merges a fired session must delete the old bounds it was emitted with
    let ev = events(Gen {
        keys: 14,
        lateness: 400,
        seed: 9,
        ..Gen::default()
    });
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    let make = make(200, 400);
    let want = sorted_rows(&run_uninterrupted(&make, &ev));
    assert!(
        want.iter().any(|r| r.ends_with("|delete")),
        "the data merges fired sessions"
    );
    assert_restores(&make, &keys, &ev, &cuts(&ev));
}

#[test]
fn spilled_sessions_are_in_the_snapshot() {
    let ev = events(Gen {
        keys: 60,
        rows: 60,
        disorder: 1500,
        ..Gen::default()
    });
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    let cut = ev.len() / 2;
    assert_restores_spilled(&make(400, 0), &keys, &ev, cut, 24 * 1024);
}

#[test]
fn spilled_sessions_with_lateness_keep_their_emitted_bounds() {
    let ev = events(Gen {
        keys: 60,
        rows: 60,
        disorder: 1500,
        lateness: 600,
        seed: 21,
        wm_every: 3,
        ..Gen::default()
    });
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    // spilling alone moves updates of spilled sessions to the watermark that
    // brings them back (see the operator's docs): compare the folded table
    let table = |b: &[RecordBatch]| folded(b, 3);
    let want = table(&run_uninterrupted(&make(300, 600), &ev));
    assert!(want.len() > 40, "many sessions: {}", want.len());
    // cuts right after batches: spilled fragments of emitted sessions wait
    // on disk until the next watermark merges them with late rows
    for cut in (ev.len() / 3..ev.len() * 2 / 3).filter(|&i| matches!(ev[i - 1], Event::Batch(..))) {
        assert_restores_spilled_by(&make(300, 600), &keys, &ev, cut, 24 * 1024, &table);
    }
}
