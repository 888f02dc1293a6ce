//! Window state spill under early firings: key ids stay stable, so the
//! `op` of every emitted row is the same as without spilling.
use arrow_array::cast::AsArray;
use arrow_array::{Int64Array, RecordBatch, StringArray};
use std::sync::Arc;
use std::time::Duration;
use weir::operator::{Ctx, Operator, OperatorMetrics, Output, RuntimeEnv, TaskInfo};
use weir::operators::{EarlyFiring, WindowAggregate, WindowConfig};
use weir::time::Window;
use weir::{Agg, Message, Watermark};

fn batch(keys: &[&str], ts: &[i64]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("k", Arc::new(StringArray::from(keys.to_vec())) as _),
        ("t", Arc::new(Int64Array::from(ts.to_vec())) as _),
    ])
    .unwrap()
}

fn rows(out: &mut Output) -> Vec<(String, i64, String)> {
    let mut v = vec![];
    for m in out.take() {
        if let Message::Data(b) = m {
            let k = b.column(0).as_string::<i32>();
            let n = b
                .column_by_name("n")
                .unwrap()
                .as_primitive::<arrow_array::types::Int64Type>();
            let op = b.column_by_name("op").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                v.push((k.value(i).to_string(), n.value(i), op.value(i).to_string()));
            }
        }
    }
    // the order of keys within one firing carries no meaning
    v.sort();
    v
}

/// (key, count, op) rows emitted at each step.
type Steps = Vec<Vec<(String, i64, String)>>;

fn run(memory: usize) -> (Steps, u64) {
    let b = batch(&["a"], &[1]);
    let mut w = WindowAggregate::try_new(
        &b.schema(),
        &WindowConfig {
            time_column: Some("t".into()),
            keys: vec!["k".into()],
            window: Window::tumbling(Duration::from_secs(1)),
            lateness_ms: 0,
            aggs: vec![Agg::count().alias("n")],
            early: Some(EarlyFiring {
                every_rows: Some(2),
                every_ms: None,
                purge: false,
            }),
        },
        "w",
    )
    .unwrap();
    let env = RuntimeEnv::try_new(memory, None).unwrap();
    let info = TaskInfo {
        operator: "w".into(),
        subtask: 0,
        parallelism: 1,
    };
    let mut ctx = Ctx::new(info, env.clone(), Arc::new(OperatorMetrics::default()));
    w.open(&mut ctx).unwrap();
    let mut out = Output::new();
    let mut steps = vec![];
    // a reaches 2 rows: early firing, a emitted
    w.on_batch(0, batch(&["a", "a"], &[100, 200]), &mut ctx, &mut out)
        .unwrap();
    steps.push(rows(&mut out));
    // c is new and reaches 2 rows: its first result
    w.on_batch(0, batch(&["c", "c"], &[150, 250]), &mut ctx, &mut out)
        .unwrap();
    steps.push(rows(&mut out));
    w.on_watermark(Watermark::EventTime(999), &mut ctx, &mut out)
        .unwrap();
    steps.push(rows(&mut out));
    w.on_end_of_input(&mut ctx, &mut out).unwrap();
    drop(w);
    assert_eq!(env.pool.reserved(), 0);
    (steps, env.spill.metrics().files())
}

#[test]
fn spilling_keeps_key_ids_so_early_firing_ops_stay_right() {
    let (unlimited, none) = run(1 << 30);
    // room for the key dictionary but hardly any pane: nearly every sync spills
    let (spilled, files) = run(300);
    assert_eq!(none, 0);
    assert!(files > 0, "the small budget must spill");
    assert_eq!(unlimited, spilled);
}
