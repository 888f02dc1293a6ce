//! Unit tests of `crates/weir-operators/src/process/mod.rs`.

use super::*;
use crate::basic::tests::{batches, test_ctx};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, StringArray};
use arrow_schema::{DataType, Field};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn input(rows: &[(&str, i64, i64)]) -> RecordBatch {
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
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))) as _,
        ),
    ])
    .unwrap()
}

fn out_schema(last: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("t", DataType::Int64, false),
        Field::new(last, DataType::Int64, false),
    ]))
}

fn output_batch(schema: &SchemaRef, k: &KeyRow, t: Vec<i64>, x: Vec<i64>) -> RecordBatch {
    let key = k.columns().column(0).as_string::<i32>().value(0);
    let n = t.len();
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![key; n])),
            Arc::new(Int64Array::from(t)),
            Arc::new(Int64Array::from(x)),
        ],
    )
    .unwrap()
}

fn table(got: &[RecordBatch]) -> Vec<(String, i64, i64)> {
    let mut v = Vec::new();
    for b in got {
        let k = b.column(0).as_string::<i32>();
        let t = b.column(1).as_primitive::<Int64Type>();
        let x = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            v.push((k.value(i).to_string(), t.value(i), x.value(i)));
        }
    }
    v.sort();
    v
}

/// Feeds `rows` in batches of `batch`; after each batch the watermark
/// goes to just below the smallest time still to come.
fn run<P: KeyedProcessFunction>(
    op: &mut KeyedProcessOperator<P>,
    rows: &[(&str, i64, i64)],
    batch: usize,
) -> Vec<RecordBatch> {
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
    assert_eq!(ctx.metrics().late_rows.load(Ordering::Relaxed), 0);
    got
}

fn running_sum() -> KeyedProcessOperator<impl KeyedProcessFunction> {
    let schema = out_schema("sum");
    let out = schema.clone();
    let f = ProcessFn::new(
        move |k: &KeyRow, rows: &RecordBatch, sum: &mut i64, ctx: &mut ProcessContext| {
            let t = rows.column(1).as_primitive::<Int64Type>();
            let v = rows.column(2).as_primitive::<Int64Type>();
            let mut sums = Vec::new();
            for x in v.values() {
                *sum += x;
                sums.push(*sum);
            }
            ctx.emit(output_batch(&out, k, t.values().to_vec(), sums))
        },
    );
    KeyedProcessOperator::try_new(
        &input(&[]).schema(),
        "t",
        &["k".into()],
        schema,
        f,
        "running",
    )
    .unwrap()
}

fn sum_rows() -> Vec<(&'static str, i64, i64)> {
    vec![
        ("a", 1, 1),
        ("a", 2, 2),
        ("a", 3, 4),
        ("a", 4, 8),
        ("b", 10, 10),
        ("b", 20, 30),
        ("b", 20, 20),
        ("b", 30, 40),
        ("a", 5, 16),
    ]
}

#[test]
fn running_sum_is_the_same_for_shuffled_and_sorted_input() {
    let want = vec![
        ("a".to_string(), 1, 1),
        ("a".to_string(), 2, 3),
        ("a".to_string(), 3, 7),
        ("a".to_string(), 4, 15),
        ("a".to_string(), 5, 31),
        ("b".to_string(), 10, 10),
        // ties at 20 in content order: v = 20 before v = 30
        ("b".to_string(), 20, 30),
        ("b".to_string(), 20, 60),
        ("b".to_string(), 30, 100),
    ];
    let rows = sum_rows();
    assert_eq!(table(&run(&mut running_sum(), &rows, rows.len())), want);
    for perm in [[8, 3, 6, 0, 5, 2, 7, 1, 4], [7, 6, 5, 4, 3, 2, 1, 0, 8]] {
        let shuffled: Vec<_> = perm.iter().map(|&i| rows[i]).collect();
        for batch in [1, 2, 4] {
            assert_eq!(
                table(&run(&mut running_sum(), &shuffled, batch)),
                want,
                "{perm:?} {batch}"
            );
        }
    }
}

/// Each row sets a timer 500 ms later; a timer emits the number of the
/// key's rows in the last 1000 ms `(T - 1000, T]`.
struct RecentCount {
    schema: SchemaRef,
}

impl KeyedProcessFunction for RecentCount {
    type State = VecDeque<i64>;

    fn on_rows(
        &mut self,
        _key: &KeyRow,
        rows: &RecordBatch,
        state: &mut VecDeque<i64>,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        for &t in rows.column(1).as_primitive::<Int64Type>().values() {
            state.push_back(t);
            ctx.register_event_timer(t + 500);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        key: &KeyRow,
        time: i64,
        state: &mut VecDeque<i64>,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        while state.front().is_some_and(|&t| t <= time - 1000) {
            state.pop_front();
        }
        let n = state.iter().filter(|&&t| t <= time).count() as i64;
        ctx.emit(output_batch(&self.schema, key, vec![time], vec![n]))?;
        if state.is_empty() {
            ctx.clear_state();
        }
        Ok(())
    }
}

fn recent_count() -> KeyedProcessOperator<RecentCount> {
    let schema = out_schema("n");
    KeyedProcessOperator::try_new(
        &input(&[]).schema(),
        "t",
        &["k".into()],
        schema.clone(),
        RecentCount { schema },
        "recent",
    )
    .unwrap()
}

#[test]
fn timers_count_recent_rows_after_the_rows_up_to_their_time() {
    let rows = vec![
        ("a", 100, 0),
        ("a", 500, 0),
        ("a", 900, 0),
        ("a", 1200, 0),
        ("a", 2500, 0),
        ("b", 1000, 0),
        ("b", 1500, 1),
        ("b", 1500, 2),
    ];
    // a: timers 600, 1000, 1400, 1700, 3000; b: timers 1500 (after its
    // rows at 1500), 2000 (registered twice, fires once)
    let want = vec![
        ("a".to_string(), 600, 2),
        ("a".to_string(), 1000, 3),
        ("a".to_string(), 1400, 3),
        ("a".to_string(), 1700, 2),
        ("a".to_string(), 3000, 1),
        ("b".to_string(), 1500, 3),
        ("b".to_string(), 2000, 2),
    ];
    assert_eq!(table(&run(&mut recent_count(), &rows, rows.len())), want);
    let shuffled: Vec<_> = [7, 4, 0, 5, 2, 6, 3, 1].iter().map(|&i| rows[i]).collect();
    for batch in [1, 3] {
        assert_eq!(table(&run(&mut recent_count(), &shuffled, batch)), want);
    }
    // watermarks one ms at a time give the same calls
    let mut op = recent_count();
    let (mut ctx, mut out) = (test_ctx(), Output::new());
    op.open(&mut ctx).unwrap();
    op.on_batch(0, input(&rows), &mut ctx, &mut out).unwrap();
    for w in (0..3100).step_by(7) {
        op.on_watermark(Watermark::EventTime(w), &mut ctx, &mut out)
            .unwrap();
    }
    op.on_end_of_input(&mut ctx, &mut out).unwrap();
    assert_eq!(table(&batches(&mut out)), want);
    assert!(op.states.is_empty(), "state dropped at end of input");
    assert_eq!(ctx.pool().reserved(), 0);
}

#[test]
fn late_rows_are_counted_and_dropped() {
    let mut op = running_sum();
    let (mut ctx, mut out) = (test_ctx(), Output::new());
    op.open(&mut ctx).unwrap();
    op.on_watermark(Watermark::EventTime(100), &mut ctx, &mut out)
        .unwrap();
    op.on_batch(
        0,
        input(&[("a", 100, 1), ("a", 50, 2), ("a", 150, 4)]),
        &mut ctx,
        &mut out,
    )
    .unwrap();
    op.on_end_of_input(&mut ctx, &mut out).unwrap();
    assert_eq!(ctx.metrics().late_rows.load(Ordering::Relaxed), 2);
    assert_eq!(table(&batches(&mut out)), vec![("a".to_string(), 150, 4)]);
    assert_eq!(ctx.pool().reserved(), 0);
}

/// Records the calls it gets; registers a timer in the past and deletes
/// one, and clears its state at the second timer.
struct Recorder {
    calls: Vec<String>,
}

impl KeyedProcessFunction for Recorder {
    type State = i64;

    fn on_rows(
        &mut self,
        _key: &KeyRow,
        rows: &RecordBatch,
        state: &mut i64,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        *state += rows.num_rows() as i64;
        self.calls.push(format!(
            "rows@{} n={} state={state}",
            ctx.time(),
            rows.num_rows()
        ));
        if ctx.time() == 10 {
            ctx.register_event_timer(5); // in the past: fires right after
            ctx.register_event_timer(25);
            ctx.register_event_timer(40);
            ctx.register_event_timer(99);
        }
        if ctx.time() == 30 {
            ctx.delete_event_timer(99);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        _key: &KeyRow,
        time: i64,
        state: &mut i64,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        self.calls.push(format!("timer@{time} state={state}"));
        if time == 25 {
            ctx.clear_state();
        }
        Ok(())
    }
}

#[test]
fn rows_and_timers_interleave_by_time_and_state_can_be_cleared() {
    let schema = out_schema("x");
    let mut op = KeyedProcessOperator::try_new(
        &input(&[]).schema(),
        "t",
        &[],
        schema,
        Recorder { calls: Vec::new() },
        "rec",
    )
    .unwrap();
    let rows = [
        ("a", 30, 1),
        ("b", 10, 1),
        ("a", 10, 2),
        ("a", 40, 3),
        ("c", 20, 1),
    ];
    run(&mut op, &rows, 2);
    assert_eq!(
        op.function().calls,
        vec![
            "rows@10 n=2 state=2",
            "timer@5 state=2",
            "rows@20 n=1 state=3",
            "timer@25 state=3",
            "rows@30 n=1 state=1",
            "rows@40 n=1 state=2",
            "timer@40 state=2",
        ]
    );
}

#[test]
fn emitting_another_schema_names_the_operator() {
    let schema = out_schema("x");
    let f = ProcessFn::new(
        |_k: &KeyRow, rows: &RecordBatch, _s: &mut (), ctx: &mut ProcessContext| {
            ctx.emit(rows.clone())
        },
    );
    let mut op = KeyedProcessOperator::try_new(
        &input(&[]).schema(),
        "t",
        &["k".into()],
        schema,
        f,
        "my_process",
    )
    .unwrap();
    let (mut ctx, mut out) = (test_ctx(), Output::new());
    op.open(&mut ctx).unwrap();
    op.on_batch(0, input(&[("a", 1, 1)]), &mut ctx, &mut out)
        .unwrap();
    let err = op.on_end_of_input(&mut ctx, &mut out).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("my_process"), "{msg}");
    assert!(
        msg.contains("v: Int64") && msg.contains("x: Int64"),
        "{msg}"
    );
    let err = KeyedProcessOperator::try_new(
        &input(&[]).schema(),
        "nope",
        &[],
        out_schema("x"),
        ProcessFn::new(|_: &KeyRow, _: &RecordBatch, _: &mut (), _: &mut ProcessContext| Ok(())),
        "p",
    )
    .unwrap_err();
    assert!(err.to_string().contains("`nope`"), "{err}");
}
