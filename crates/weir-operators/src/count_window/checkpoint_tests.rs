use super::*;
use crate::checkpoint_events::{assert_restores, assert_restores_spilled, events, rows, Gen};
use crate::checkpoint_harness::{encoders, Event};
use weir_core::operator::TaskInfo;

/// Fires every 4th row, keeps the last 2 after a firing, and flushes
/// what is left at the final watermark.
#[derive(Debug)]
struct FourThenFlush;

impl WindowTrigger for FourThenFlush {
    fn on_row(&self, count: u64, _time: i64) -> TriggerAction {
        if count.is_multiple_of(4) {
            TriggerAction::Fire
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

fn make(spec: CountWindow) -> impl Fn(&TaskInfo) -> Result<Box<dyn Operator>> {
    move |info: &TaskInfo| {
        let schema = rows(&[]).schema();
        let aggs = [
            Agg::count().alias("n"),
            Agg::sum("v"),
            Agg::last("v").alias("last_v"),
            Agg::count_distinct("v").alias("dv"),
        ];
        let op = CountWindowAggregate::try_new(
            &schema,
            "t",
            &["k".into()],
            spec.clone(),
            &aggs,
            &info.operator,
        )?;
        Ok(Box::new(op) as _)
    }
}

fn specs() -> Vec<CountWindow> {
    vec![
        CountWindow::Tumbling { size: 3 },
        CountWindow::Sliding { size: 5, slide: 2 },
        CountWindow::Global {
            trigger: Arc::new(FourThenFlush),
            evict_to: Some(2),
        },
        CountWindow::Global {
            trigger: Arc::new(FourThenFlush),
            evict_to: None,
        },
    ]
}

fn cuts(ev: &[Event]) -> Vec<usize> {
    // 1: rows buffered, nothing released; then after a batch (rows
    // waiting in the buffer and in windows) and after a watermark
    let mid = ev.len() / 2;
    let after = |batch: bool| {
        (mid..ev.len())
            .find(|&i| matches!(ev[i - 1], Event::Batch(..)) == batch)
            .unwrap_or(mid)
    };
    vec![0, 1, after(true), after(false), ev.len() - 1]
}

#[test]
fn count_windows_restore_buffered_rows_counts_and_kept_rows() {
    let mut ev = events(Gen {
        keys: 5,
        ..Gen::default()
    });
    // rows behind the restored watermark (a guard: sources never send them) are dropped
    ev.push(Event::Batch(
        0,
        rows(&[("k1".into(), 0, 1), ("k1".into(), 1, 2)]),
    ));
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    for spec in specs() {
        assert_restores(&make(spec), &keys, &ev, &cuts(&ev));
    }
}

#[test]
fn spilled_buffered_rows_are_in_the_snapshot() {
    let mut ev = events(Gen {
        keys: 5,
        rows: 60,
        wm_every: 4,
        ..Gen::default()
    });
    // no watermark for a while before the cut: many rows wait (and spill)
    let cut = ev.len() / 2;
    ev.retain(|e| !matches!(e, Event::Watermark(w) if *w > 1500 && *w < 3000));
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    assert_restores_spilled(
        &make(CountWindow::Sliding { size: 5, slide: 2 }),
        &keys,
        &ev,
        cut,
        16 * 1024,
    );
}

#[test]
fn spilled_windows_are_in_the_snapshot() {
    // 400 keys, a watermark after every batch: the windows (not the rows
    // waiting for the watermark) outgrow the budget and spill
    let ev = events(Gen {
        keys: 400,
        rows: 60,
        batches: 24,
        wm_every: 1,
        ..Gen::default()
    });
    let cut = ev.len() / 2;
    let schema = rows(&[]).schema();
    let keys = encoders(&[&schema], &[&["k"]]);
    for spec in specs() {
        assert_restores_spilled(&make(spec), &keys, &ev, cut, 16 * 1024);
    }
}
