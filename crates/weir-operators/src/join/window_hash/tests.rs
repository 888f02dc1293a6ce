//! The window hash join against the symmetric hash join (an independent
//! implementation of the same joins) on streams with late rows, null keys
//! and several windows per batch: uninterrupted, spilled under a tiny
//! budget, restored from checkpoints (its own and the symmetric join's) at
//! the same and another parallelism.

use super::super::{JoinLayout, JoinSpec, JoinType, SortMergeJoin, SymmetricHashJoin};
use super::WindowHashJoin;
use crate::checkpoint_harness::{
    encoders, run_uninterrupted, run_with_restore_in, sorted_rows, Event,
};
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;
use weir_core::key::KeyEncoder;
use weir_core::operator::{Operator, TaskInfo};
use weir_core::time::Window;

const TYPES: [JoinType; 4] = [
    JoinType::Inner,
    JoinType::Left,
    JoinType::Right,
    JoinType::Full,
];

/// (parallelism before, after): unchanged and rescaled.
const PARALLELISM: [(usize, usize); 3] = [(1, 1), (2, 3), (3, 1)];

/// Width of the windows the same-window inputs carry.
const SAME_WINDOW_MS: i64 = 40;

fn schema(id: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("t", DataType::Int64, false),
        Field::new(id, DataType::Int64, false),
        Field::new("window_start", DataType::Int64, false),
        Field::new("window_end", DataType::Int64, false),
    ]))
}

/// A deterministic stream over 9 keys and a null key: batches on either
/// input with times up to 60 ms ahead of the watermark (so a batch spans
/// several windows), late rows when `with_late`, a watermark after every
/// third batch. Every row has a unique id; `window_end` is the end of the
/// 40 ms window of `t`, `window_start` 40 ms before it, or 20 ms for one
/// row in four (a start only rows of the same start share).
fn events(n: usize, seed: u64, with_late: bool) -> Vec<Event> {
    let mut rand = crate::checkpoint_harness::lcg(seed);
    let mut out = Vec::new();
    let mut id = 0i64;
    for i in 0..n {
        let base = i as i64 * 10;
        let input = rand(2) as usize;
        let rows = 1 + rand(6) as usize;
        let (mut k, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rows {
            let key = rand(10) as i64;
            k.push((key != 9).then_some(key));
            let late = with_late && i > 3 && rand(8) == 0;
            t.push(if late {
                base - 60
            } else {
                base + rand(60) as i64
            });
            v.push(id);
            id += 1;
        }
        let end: Vec<i64> = t
            .iter()
            .map(|t| t - t.rem_euclid(SAME_WINDOW_MS) + SAME_WINDOW_MS)
            .collect();
        // one row in four: a shorter window with the same end (windows
        // that share an end but not a start are different windows)
        let start: Vec<i64> = end
            .iter()
            .map(|e| {
                e - if rand(4) == 0 {
                    SAME_WINDOW_MS / 2
                } else {
                    SAME_WINDOW_MS
                }
            })
            .collect();
        let batch = RecordBatch::try_new(
            schema(if input == 0 { "lv" } else { "rv" }),
            vec![
                Arc::new(Int64Array::from(k)),
                Arc::new(Int64Array::from(t)),
                Arc::new(Int64Array::from(v)),
                Arc::new(Int64Array::from(start)),
                Arc::new(Int64Array::from(end)),
            ],
        )
        .expect("valid batch");
        out.push(Event::Batch(input, batch));
        if i % 3 == 2 {
            out.push(Event::Watermark(base - 5));
        }
    }
    out
}

fn specs() -> Vec<JoinSpec> {
    vec![
        JoinSpec::window(Window::tumbling(Duration::from_millis(50))),
        JoinSpec::same_window(),
    ]
}

fn layout(spec: JoinSpec) -> JoinLayout {
    // the same-window inputs' own window columns become the output's
    let (left, right) = if spec.kind == super::JoinKind::SameWindow {
        (schema("lv"), schema("rv"))
    } else {
        let drop = |s: SchemaRef| Arc::new(s.project(&[0, 1, 2]).expect("project"));
        (drop(schema("lv")), drop(schema("rv")))
    };
    JoinLayout::try_new(&left, &right, Some("t"), Some("t"), &spec.on(["k"], ["k"]))
        .expect("valid join")
}

/// The events as the layout's inputs take them (tumbling: no window columns).
fn events_for(spec: &JoinSpec, events: &[Event]) -> Vec<Event> {
    if spec.kind == super::JoinKind::SameWindow {
        return events.to_vec();
    }
    events
        .iter()
        .map(|e| match e {
            Event::Batch(i, b) => Event::Batch(*i, b.project(&[0, 1, 2]).expect("project")),
            w => w.clone(),
        })
        .collect()
}

fn keys(layout: &JoinLayout) -> Vec<KeyEncoder> {
    encoders(&[layout.input(0), layout.input(1)], &[&["k"], &["k"]])
}

fn window_hash(
    layout: &JoinLayout,
) -> impl Fn(&TaskInfo) -> weir_core::error::Result<Box<dyn Operator>> + '_ {
    move |_: &TaskInfo| Ok(Box::new(WindowHashJoin::try_new(layout.clone())?) as Box<dyn Operator>)
}

fn symmetric(
    layout: &JoinLayout,
) -> impl Fn(&TaskInfo) -> weir_core::error::Result<Box<dyn Operator>> + '_ {
    move |_: &TaskInfo| {
        Ok(Box::new(SymmetricHashJoin::try_new(layout.clone())?) as Box<dyn Operator>)
    }
}

fn blocking(
    layout: &JoinLayout,
) -> impl Fn(&TaskInfo) -> weir_core::error::Result<Box<dyn Operator>> + '_ {
    move |_: &TaskInfo| {
        Ok(
            Box::new(WindowHashJoin::try_new(layout.clone())?.with_blocking(true))
                as Box<dyn Operator>,
        )
    }
}

fn sort_merge(
    layout: &JoinLayout,
) -> impl Fn(&TaskInfo) -> weir_core::error::Result<Box<dyn Operator>> + '_ {
    move |_: &TaskInfo| Ok(Box::new(SortMergeJoin::try_new(layout.clone())?) as Box<dyn Operator>)
}

#[test]
fn equals_the_symmetric_join_for_every_type() {
    let evs = events(90, 3, true);
    for spec in specs() {
        let evs = events_for(&spec, &evs);
        for ty in TYPES {
            let layout = layout(spec.clone().with_type(ty));
            let want = sorted_rows(&run_uninterrupted(&symmetric(&layout), &evs));
            let got = sorted_rows(&run_uninterrupted(&window_hash(&layout), &evs));
            assert!(
                want.len() > 20,
                "{:?} {ty:?}: the oracle joined rows",
                spec.kind
            );
            if ty != JoinType::Inner {
                assert!(
                    want.iter().any(|r| r.contains("||")),
                    "{:?} {ty:?}: the oracle has padded rows",
                    spec.kind
                );
            }
            assert_eq!(got, want, "{:?} {ty:?}", spec.kind);
        }
    }
}

#[test]
fn restores_at_every_cut_and_parallelism() {
    let evs = events(60, 7, true);
    for spec in specs() {
        let evs = events_for(&spec, &evs);
        for ty in [JoinType::Inner, JoinType::Full] {
            let layout = layout(spec.clone().with_type(ty));
            let make = window_hash(&layout);
            let want = sorted_rows(&run_uninterrupted(&make, &evs));
            for cut in [1, 2, 7, 8, 30, 31, evs.len() - 1] {
                for (p0, p1) in PARALLELISM {
                    let r = run_with_restore_in(
                        &make,
                        &keys(&layout),
                        &evs,
                        cut,
                        p0,
                        p1,
                        usize::MAX / 2,
                    );
                    assert_eq!(
                        sorted_rows(&r.output),
                        want,
                        "{:?} {ty:?}: cut {cut}, parallelism {p0} -> {p1}",
                        spec.kind
                    );
                }
            }
        }
    }
}

/// Under a budget of a few rows both sides spill: windows are fired from
/// disk and memory together, checkpoints carry the rows on disk, and the
/// pool is back to zero at the end (asserted by the harness).
#[test]
fn spills_and_restores_spilled_rows() {
    let evs = events(150, 11, true);
    for spec in specs() {
        let evs = events_for(&spec, &evs);
        for ty in TYPES {
            let layout = layout(spec.clone().with_type(ty));
            let make = window_hash(&layout);
            let want = sorted_rows(&run_uninterrupted(&symmetric(&layout), &evs));
            for cut in [60, 121] {
                for (p0, p1) in PARALLELISM {
                    let r = run_with_restore_in(&make, &keys(&layout), &evs, cut, p0, p1, 1536);
                    assert!(
                        r.spill_files_at_cut > 0,
                        "{:?}: cut {cut}, {p0} -> {p1}: rows were on disk at the cut",
                        spec.kind
                    );
                    assert_eq!(
                        sorted_rows(&r.output),
                        want,
                        "{:?} {ty:?}: cut {cut}, parallelism {p0} -> {p1}",
                        spec.kind
                    );
                }
            }
        }
    }
}

/// A checkpoint the symmetric join took restores into the window hash join
/// (a job upgraded between the two keeps its state), and back.
#[test]
fn shares_the_symmetric_joins_checkpoints() {
    let evs = events(60, 5, true);
    for spec in specs() {
        let evs = events_for(&spec, &evs);
        let layout = layout(spec.clone().with_type(JoinType::Left));
        let want = sorted_rows(&run_uninterrupted(&symmetric(&layout), &evs));
        for (first_symmetric, budget) in [
            (true, usize::MAX / 2),
            (false, usize::MAX / 2),
            // spilled at the cut: the symmetric join's runs carry ages above 0
            (true, 1536),
            (false, 1536),
        ] {
            for (p0, p1) in PARALLELISM {
                // the first p0 instances take the checkpoint, the rest restore it
                let made = Cell::new(0usize);
                let make = |info: &TaskInfo| -> weir_core::error::Result<Box<dyn Operator>> {
                    made.set(made.get() + 1);
                    if (made.get() <= p0) == first_symmetric {
                        symmetric(&layout)(info)
                    } else {
                        window_hash(&layout)(info)
                    }
                };
                let r = run_with_restore_in(&make, &keys(&layout), &evs, 31, p0, p1, budget);
                if budget < 1 << 20 {
                    assert!(r.spill_files_at_cut > 0, "rows were on disk at the cut");
                }
                assert_eq!(
                    sorted_rows(&r.output),
                    want,
                    "{:?}: symmetric first {first_symmetric}, budget {budget}, {p0} -> {p1}",
                    spec.kind
                );
            }
        }
    }
}

#[test]
fn refuses_the_kinds_it_does_not_run() {
    let spec = JoinSpec::window(Window::sliding(
        Duration::from_millis(60),
        Duration::from_millis(20),
    ));
    let err = WindowHashJoin::try_new(layout(spec)).expect_err("sliding windows refused");
    assert!(
        err.to_string().contains("same-window and tumbling"),
        "{err}"
    );
}

/// Batch mode: the blocking join holds watermarks back and joins every row
/// it is given, even rows behind a watermark that came first (a batch
/// stage's `GROUP BY` forwards its watermarks before its rows), as the
/// sort-merge join does; also spilled.
#[test]
fn blocking_joins_every_row_like_the_sort_merge_join() {
    let evs = events(90, 13, true);
    for spec in specs() {
        let evs = events_for(&spec, &evs);
        // the same rows after a watermark past all of them
        let mut ahead = vec![Event::Watermark(i64::MAX - 1)];
        ahead.extend(
            evs.iter()
                .filter(|e| matches!(e, Event::Batch(..)))
                .cloned(),
        );
        for ty in TYPES {
            let layout = layout(spec.clone().with_type(ty));
            for events in [&evs, &ahead] {
                let want = sorted_rows(&run_uninterrupted(&sort_merge(&layout), events));
                assert!(
                    want.len() > 20,
                    "{:?} {ty:?}: the oracle joined rows",
                    spec.kind
                );
                let got = sorted_rows(&run_uninterrupted(&blocking(&layout), events));
                assert_eq!(got, want, "{:?} {ty:?}", spec.kind);
                let spilled = run_with_restore_in(
                    &blocking(&layout),
                    &keys(&layout),
                    events,
                    events.len() - 1,
                    1,
                    2,
                    1536,
                );
                assert!(
                    spilled.spill_files_at_cut > 0,
                    "rows were on disk at the cut"
                );
                assert_eq!(
                    sorted_rows(&spilled.output),
                    want,
                    "{:?} {ty:?} spilled",
                    spec.kind
                );
            }
            // the watermark-driven join drops them as late (all but the
            // padded null-key rows of an outer side)
            let all = sorted_rows(&run_uninterrupted(&sort_merge(&layout), &ahead));
            let late = sorted_rows(&run_uninterrupted(&window_hash(&layout), &ahead));
            assert!(
                late.len() * 2 < all.len(),
                "{:?} {ty:?}: without blocking they are late",
                spec.kind
            );
        }
    }
}

/// One row of side `id` in the window [0, 40) with key `k` and value `v`.
fn row(id: &str, k: i64, v: i64) -> RecordBatch {
    let col = |x: i64| Arc::new(Int64Array::from(vec![x])) as arrow_array::ArrayRef;
    RecordBatch::try_new(schema(id), vec![col(k), col(5), col(v), col(0), col(40)])
        .expect("valid batch")
}

/// Rows restored behind the restored watermark (a rescale keeps the
/// highest of the old subtasks' watermarks, which need not be aligned)
/// still fire: at end of input, even when that watermark is already the
/// last one.
#[test]
fn restored_rows_behind_the_watermark_still_fire() {
    use weir_core::message::{Message, Watermark};
    use weir_core::operator::{Ctx, OperatorMetrics, Output, RuntimeEnv};
    use weir_core::state::{StateReader, StateWriter, SubtaskState};
    let layout = layout(JoinSpec::same_window());
    let env = RuntimeEnv::try_new(usize::MAX / 2, None).expect("env");
    let open = |subtask: usize, parallelism: usize| {
        let info = TaskInfo {
            operator: "op".into(),
            subtask,
            parallelism,
        };
        let mut op = WindowHashJoin::try_new(layout.clone()).expect("join");
        let mut ctx = Ctx::new(info, env.clone(), Arc::new(OperatorMetrics::default()));
        op.open(&mut ctx).expect("open");
        (op, ctx)
    };
    let snapshot = |op: &mut WindowHashJoin, ctx: &mut Ctx| {
        let mut w = StateWriter::for_checkpoint(1);
        op.snapshot(ctx, &mut w).expect("snapshot");
        SubtaskState::decode(&w.finish().encode().expect("encode")).expect("decode")
    };
    for watermark in [1_000, i64::MAX] {
        let mut out = Output::new();
        // old subtask 0: both rows of a key, its watermark still before them
        let (mut a, mut actx) = open(0, 2);
        a.on_batch(0, row("lv", 1, 10), &mut actx, &mut out)
            .expect("left");
        a.on_batch(1, row("rv", 1, 20), &mut actx, &mut out)
            .expect("right");
        // old subtask 1: its watermark past the window
        let (mut b, mut bctx) = open(1, 2);
        b.on_watermark(Watermark::EventTime(watermark), &mut bctx, &mut out)
            .expect("watermark");
        out.take();
        let states = Arc::new(vec![
            snapshot(&mut a, &mut actx),
            snapshot(&mut b, &mut bctx),
        ]);
        let (mut c, mut cctx) = open(0, 1);
        c.restore(&mut cctx, &StateReader::for_subtask(states, 0, 1))
            .expect("restore");
        c.on_end_of_input(&mut cctx, &mut out).expect("end");
        let batches: Vec<RecordBatch> = out
            .take()
            .into_iter()
            .filter_map(|m| match m {
                Message::Data(b) => Some(b),
                _ => None,
            })
            .collect();
        // hand-computed: k | t | lv | k | t | rv | window
        assert_eq!(
            sorted_rows(&batches),
            vec!["1|5|10|1|5|20|0|40".to_string()],
            "watermark {watermark}"
        );
    }
}

/// A blocking join forwards no watermark (the rows it holds are not
/// emitted yet); the watermark-driven one forwards each.
#[test]
fn blocking_holds_watermarks_back() {
    use weir_core::message::{Message, Watermark};
    use weir_core::operator::{Ctx, OperatorMetrics, Output, RuntimeEnv};
    let layout = layout(JoinSpec::same_window());
    let env = RuntimeEnv::try_new(usize::MAX / 2, None).expect("env");
    for blocking in [true, false] {
        let info = TaskInfo {
            operator: "op".into(),
            subtask: 0,
            parallelism: 1,
        };
        let mut op = WindowHashJoin::try_new(layout.clone())
            .expect("join")
            .with_blocking(blocking);
        let mut ctx = Ctx::new(info, env.clone(), Arc::new(OperatorMetrics::default()));
        op.open(&mut ctx).expect("open");
        let mut out = Output::new();
        op.on_batch(0, row("lv", 1, 10), &mut ctx, &mut out)
            .expect("left");
        op.on_batch(1, row("rv", 1, 20), &mut ctx, &mut out)
            .expect("right");
        op.on_watermark(Watermark::EventTime(100), &mut ctx, &mut out)
            .expect("watermark");
        let messages = out.take();
        let watermarks = messages
            .iter()
            .filter(|m| matches!(m, Message::Watermark(_)))
            .count();
        let rows: usize = messages
            .iter()
            .map(|m| match m {
                Message::Data(b) => b.num_rows(),
                _ => 0,
            })
            .sum();
        if blocking {
            assert_eq!((watermarks, rows), (0, 0), "held back");
            op.on_end_of_input(&mut ctx, &mut out).expect("end");
            let rows: usize = out
                .take()
                .iter()
                .map(|m| match m {
                    Message::Data(b) => b.num_rows(),
                    _ => 0,
                })
                .sum();
            assert_eq!(rows, 1, "joined at the end");
        } else {
            assert_eq!((watermarks, rows), (1, 1), "fired and forwarded");
        }
    }
}
