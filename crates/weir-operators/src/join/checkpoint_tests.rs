//! Snapshot/restore of the pipelined join, checked against the uninterrupted
//! run (the oracle) for every kind and type, at several cut points, at the
//! same parallelism and rescaled.

use super::{JoinKind, JoinLayout, JoinSpec, JoinType, SymmetricHashJoin};
use crate::checkpoint_harness::{
    encoders, run_uninterrupted, run_with_restore, run_with_restore_in, sorted_rows, Event,
};
use arrow_array::{Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
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

/// (parallelism before, after) pairs: unchanged and rescaled.
const PARALLELISM: [(usize, usize); 4] = [(1, 1), (2, 2), (2, 3), (3, 1)];

fn schema(id: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("t", DataType::Int64, false),
        Field::new(id, DataType::Int64, false),
    ]))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A deterministic stream over 9 keys (and a null key now and then):
/// batches on both inputs with times a little ahead of the watermark (some
/// rows late, `with_late`), a watermark after every third batch. Every row
/// has a unique id.
fn events(n: usize, seed: u64, with_late: bool) -> Vec<Event> {
    let mut rand = crate::checkpoint_harness::lcg(seed);
    let mut out = Vec::new();
    let mut id = 0i64;
    for i in 0..n {
        let base = i as i64 * 10;
        let input = rand(2) as usize;
        let rows = 1 + rand(4) as usize;
        let (mut k, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rows {
            let key = rand(10) as i64;
            k.push((key != 9).then_some(key));
            // late rows (behind the last watermark, base - 25 or less): the
            // first of a batch right after a watermark, and one in twelve
            let late = with_late && i > 0 && ((i % 3 == 0 && t.is_empty()) || rand(12) == 0);
            t.push(if late {
                base - 30
            } else {
                base + rand(30) as i64
            });
            v.push(id);
            id += 1;
        }
        let s = schema(if input == 0 { "lv" } else { "rv" });
        let batch = RecordBatch::try_new(
            s,
            vec![
                Arc::new(Int64Array::from(k)),
                Arc::new(Int64Array::from(t)),
                Arc::new(Int64Array::from(v)),
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

fn layout(spec: JoinSpec) -> JoinLayout {
    JoinLayout::try_new(
        &schema("lv"),
        &schema("rv"),
        Some("t"),
        Some("t"),
        &spec.on(["k"], ["k"]),
    )
    .expect("valid join")
}

fn keys() -> Vec<KeyEncoder> {
    encoders(&[&schema("lv"), &schema("rv")], &[&["k"], &["k"]])
}

/// Checks every type of `spec` at several cuts and parallelisms against the
/// uninterrupted run; returns how many restored runs were compared.
fn check_kind(spec: JoinSpec) -> usize {
    let evs = events(60, 7, true);
    let keys = keys();
    let mut compared = 0;
    for ty in TYPES {
        let layout = layout(spec.clone().with_type(ty));
        let make = move |_: &TaskInfo| -> weir_core::error::Result<Box<dyn Operator>> {
            Ok(Box::new(SymmetricHashJoin::try_new(layout.clone())?))
        };
        let want = sorted_rows(&run_uninterrupted(&make, &evs));
        assert!(!want.is_empty(), "{ty:?}: the oracle produced rows");
        if ty != JoinType::Inner {
            assert!(
                want.iter().any(|r| r.contains("||")),
                "{ty:?}: the oracle has padded rows"
            );
        }
        // cuts: first batch, waiting rows, right before and after watermarks, near the end
        for cut in [1, 2, 7, 8, 30, 31, 55, evs.len() - 1] {
            for (p0, p1) in PARALLELISM {
                let got = sorted_rows(&run_with_restore(&make, &keys, &evs, cut, p0, p1));
                assert_eq!(
                    got, want,
                    "{:?} {ty:?}: cut {cut}, parallelism {p0} -> {p1}",
                    spec.kind
                );
                compared += 1;
            }
        }
    }
    compared
}

#[test]
fn tumbling_window_join_restores() {
    assert!(check_kind(JoinSpec::window(Window::tumbling(ms(50)))) > 0);
}

#[test]
fn sliding_window_join_restores() {
    check_kind(JoinSpec::window(Window::sliding(ms(60), ms(20))));
}

#[test]
fn cumulative_window_join_restores() {
    check_kind(JoinSpec::window(Window::cumulative(ms(20), ms(60))));
}

#[test]
fn session_window_join_restores() {
    check_kind(JoinSpec::window(Window::session(ms(15))));
}

#[test]
fn interval_join_restores() {
    check_kind(JoinSpec::interval_ms(-20, 10));
}

#[test]
fn regular_join_restores_with_retractions() {
    let spec = JoinSpec::regular();
    assert!(spec.clone().with_type(JoinType::Left).emits_changelog());
    check_kind(spec);
}

#[test]
fn regular_join_with_ttl_restores() {
    check_kind(JoinSpec::regular().with_ttl(ms(40)));
}

/// A budget so small that both sides spill before the cut: the snapshot
/// must carry the rows on disk with their epochs and matched flags.
#[test]
fn spilled_rows_are_restored() {
    // no late rows: a spilled interval join pairs a late row with rows on
    // disk that the join in memory had dropped already (its result then
    // depends on when it spilled, with or without a checkpoint)
    let evs = events(120, 11, false);
    let keys = keys();
    // (spec, budget): bounded kinds hold less, so they get less
    let specs = [
        (JoinSpec::regular(), 8 << 10),
        (
            JoinSpec::interval_ms(-20, 10).with_type(JoinType::Full),
            3 << 10,
        ),
        (
            JoinSpec::window(Window::tumbling(ms(50))).with_type(JoinType::Left),
            1280,
        ),
        (
            JoinSpec::window(Window::session(ms(15))).with_type(JoinType::Full),
            1280,
        ),
    ];
    for (spec, budget) in specs {
        let kind = spec.kind;
        let layout = layout(spec);
        let make = move |_: &TaskInfo| -> weir_core::error::Result<Box<dyn Operator>> {
            Ok(Box::new(SymmetricHashJoin::try_new(layout.clone())?))
        };
        let want = sorted_rows(&run_uninterrupted(&make, &evs));
        let spilled = sorted_rows(&crate::checkpoint_harness::run_uninterrupted_budget(
            &make, &evs, budget,
        ));
        assert_eq!(spilled, want, "{kind:?}: spilling changes nothing");
        // cuts where every kind has state on disk (window joins bring rows back)
        // (a step of an interval join's end holds every row of a key: its
        // budget is larger, so its state reaches disk later)
        let cuts: &[usize] = match kind {
            JoinKind::Interval { .. } => &[157],
            _ => &[59, 94, 157],
        };
        for &cut in cuts {
            for (p0, p1) in PARALLELISM {
                let r = run_with_restore_in(&make, &keys, &evs, cut, p0, p1, budget);
                assert!(
                    r.spill_files_at_cut > 0,
                    "{kind:?}: cut {cut}, {p0} -> {p1}: state was on disk at the cut"
                );
                assert_eq!(
                    sorted_rows(&r.output),
                    want,
                    "{kind:?}: cut {cut}, parallelism {p0} -> {p1}"
                );
            }
        }
    }
}

/// Restoring a join into an operator of another kind's checkpoint layout is
/// an error naming the operator, not a panic.
#[test]
fn foreign_state_is_an_error() {
    use weir_core::state::{StateReader, StateWriter};
    let mut w = StateWriter::new();
    w.put("join", &(0i64, 0u32)).expect("put");
    let b = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .expect("batch");
    w.put_keyed("left_rows", &b, &[0]).expect("put_keyed");
    let reader = StateReader::single(w.finish());
    let mut op = SymmetricHashJoin::try_new(layout(JoinSpec::regular())).expect("join");
    let mut ctx = crate::basic::tests::test_ctx();
    let err = op.restore(&mut ctx, &reader).expect_err("foreign state");
    assert!(err.to_string().contains("left_rows"), "{err}");
    assert!(
        err.to_string().contains("test"),
        "names the operator: {err}"
    );
}

/// A regular join that spilled forwards the watermark of its first spill
/// from then on (its pairs across epochs come at end of input, each later
/// than it), also after a restore.
#[test]
fn a_spilled_join_holds_the_watermark_it_forwards_across_restore() {
    use weir_core::message::{Message, Watermark};
    use weir_core::operator::{Ctx, Output, RuntimeEnv};
    use weir_core::state::{StateReader, StateWriter};
    let forwarded = |out: &mut Output| -> Vec<i64> {
        out.take()
            .into_iter()
            .filter_map(|m| match m {
                Message::Watermark(Watermark::EventTime(t)) => Some(t),
                _ => None,
            })
            .collect()
    };
    let env = RuntimeEnv::try_new(8 * 1024, None).expect("env");
    let info = TaskInfo {
        operator: "join".into(),
        subtask: 0,
        parallelism: 1,
    };
    let mut ctx = Ctx::new(info.clone(), env.clone(), Default::default());
    let mut op = SymmetricHashJoin::try_new(layout(JoinSpec::regular())).expect("join");
    op.open(&mut ctx).expect("open");
    let mut out = Output::new();
    op.on_watermark(Watermark::EventTime(100), &mut ctx, &mut out)
        .expect("watermark");
    assert_eq!(
        forwarded(&mut out),
        [100],
        "not spilled: forwarded as it comes"
    );
    // rows enough to pass the tiny budget: the join spills at watermark 100
    let rows = 2000;
    let batch = RecordBatch::try_new(
        schema("lv"),
        vec![
            Arc::new(Int64Array::from_iter((0..rows).map(|i| Some(i % 50)))),
            Arc::new(Int64Array::from_iter_values((0..rows).map(|i| 101 + i))),
            Arc::new(Int64Array::from_iter_values(0..rows)),
        ],
    )
    .expect("batch");
    op.on_batch(0, batch, &mut ctx, &mut out).expect("batch");
    assert!(env.spill.metrics().bytes() > 0, "the join spilled");
    op.on_watermark(Watermark::EventTime(5000), &mut ctx, &mut out)
        .expect("watermark");
    assert_eq!(
        forwarded(&mut out),
        [100],
        "held at the first spill's watermark"
    );
    let mut w = StateWriter::new();
    op.snapshot(&mut ctx, &mut w).expect("snapshot");
    let reader = StateReader::single(w.finish());
    let mut restored = SymmetricHashJoin::try_new(layout(JoinSpec::regular())).expect("join");
    let mut ctx2 = Ctx::new(info, env, Default::default());
    restored.open(&mut ctx2).expect("open");
    restored.restore(&mut ctx2, &reader).expect("restore");
    restored
        .on_watermark(Watermark::EventTime(6000), &mut ctx2, &mut out)
        .expect("watermark");
    assert_eq!(forwarded(&mut out), [100], "still held after restore");
}

/// `schema(id)` with a window aggregate's `window_start`/`window_end`.
fn windowed_schema(id: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("t", DataType::Int64, false),
        Field::new("window_start", DataType::Int64, false),
        Field::new("window_end", DataType::Int64, false),
        Field::new(id, DataType::Int64, false),
    ]))
}

/// A batch of [`events`] with the 50 ms window of each row's time.
fn windowed(input: usize, batch: &RecordBatch) -> RecordBatch {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let t = batch.column(1).as_primitive::<Int64Type>();
    let start: Int64Array = t.values().iter().map(|t| t.div_euclid(50) * 50).collect();
    let end: Int64Array = start.values().iter().map(|s| s + 50).collect();
    let cols = vec![
        batch.column(0).clone(),
        batch.column(1).clone(),
        Arc::new(start) as _,
        Arc::new(end) as _,
        batch.column(2).clone(),
    ];
    let id = if input == 0 { "lv" } else { "rv" };
    RecordBatch::try_new(windowed_schema(id), cols).expect("valid batch")
}

/// The (left id, right id) pairs of the output rows (`None` for a padded side).
fn id_pairs(batches: &[RecordBatch]) -> Vec<(Option<i64>, Option<i64>)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let mut pairs = Vec::new();
    for b in batches {
        let l = b
            .column_by_name("lv")
            .expect("lv")
            .as_primitive::<Int64Type>();
        let r = b
            .column_by_name("rv")
            .expect("rv")
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            pairs.push((
                l.is_valid(i).then(|| l.value(i)),
                r.is_valid(i).then(|| r.value(i)),
            ));
        }
    }
    pairs.sort_unstable();
    pairs
}

/// A same-window join (keys leave a side and come back, so slots are freed
/// and reused by other keys while the other side still has rows) equals a
/// brute-force join on (key, window) uninterrupted, and after a restore at
/// any cut and parallelism.
#[test]
fn same_window_join_equals_brute_force_and_restores() {
    let evs: Vec<Event> = events(90, 5, false)
        .into_iter()
        .map(|e| match e {
            Event::Batch(i, b) => Event::Batch(i, windowed(i, &b)),
            w => w,
        })
        .collect();
    // brute force: every row is on time (no late rows), so every pair of
    // rows with the same non-null key and window matches
    let mut rows: [Vec<(Option<i64>, i64, i64)>; 2] = [Vec::new(), Vec::new()];
    for e in &evs {
        if let Event::Batch(i, b) = e {
            let ids = id_pairs_side(b);
            rows[*i].extend(ids);
        }
    }
    let oracle = |ty: JoinType| {
        let mut want = Vec::new();
        let matches = |a: &(Option<i64>, i64, i64), b: &(Option<i64>, i64, i64)| {
            a.0.is_some() && a.0 == b.0 && a.1 == b.1
        };
        for l in &rows[0] {
            let mut any = false;
            for r in rows[1].iter().filter(|r| matches(l, r)) {
                want.push((Some(l.2), Some(r.2)));
                any = true;
            }
            if !any && ty.keeps(0) {
                want.push((Some(l.2), None));
            }
        }
        if ty.keeps(1) {
            for r in &rows[1] {
                if !rows[0].iter().any(|l| matches(l, r)) {
                    want.push((None, Some(r.2)));
                }
            }
        }
        want.sort_unstable();
        want
    };
    let keys = encoders(
        &[&windowed_schema("lv"), &windowed_schema("rv")],
        &[&["k"], &["k"]],
    );
    for ty in TYPES {
        let layout = JoinLayout::try_new(
            &windowed_schema("lv"),
            &windowed_schema("rv"),
            Some("t"),
            Some("t"),
            &JoinSpec::same_window().with_type(ty).on(["k"], ["k"]),
        )
        .expect("valid join");
        let make = move |_: &TaskInfo| -> weir_core::error::Result<Box<dyn Operator>> {
            Ok(Box::new(SymmetricHashJoin::try_new(layout.clone())?))
        };
        let whole = run_uninterrupted(&make, &evs);
        let want = oracle(ty);
        assert!(want.iter().any(|p| p.0.is_some() && p.1.is_some()));
        assert_eq!(id_pairs(&whole), want, "{ty:?}: uninterrupted");
        for cut in [1, 2, 7, 8, 40, 41, evs.len() - 1] {
            for (p0, p1) in PARALLELISM {
                let got = run_with_restore(&make, &keys, &evs, cut, p0, p1);
                assert_eq!(id_pairs(&got), want, "{ty:?}: cut {cut}, {p0} -> {p1}");
            }
        }
    }
}

/// (key, window start, id) of every row of an input batch.
fn id_pairs_side(b: &RecordBatch) -> Vec<(Option<i64>, i64, i64)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let k = b.column(0).as_primitive::<Int64Type>();
    let s = b.column(2).as_primitive::<Int64Type>();
    let id = b.column(4).as_primitive::<Int64Type>();
    (0..b.num_rows())
        .map(|i| (k.is_valid(i).then(|| k.value(i)), s.value(i), id.value(i)))
        .collect()
}
