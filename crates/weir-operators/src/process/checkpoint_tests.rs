//! Snapshot/restore of the keyed process operator, checked against the
//! uninterrupted run (the oracle): buffered rows, per-key state (in memory
//! and spilled), event-time and processing-time timers, at several cuts, at
//! the same parallelism and rescaled.

use super::checkpoint::{KEYS_ENTRY, META_ENTRY};
use super::*;
use crate::checkpoint_harness::{
    encoders, run_uninterrupted, run_with_restore, run_with_restore_in, sorted_rows, Event,
};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::Int64Array;
use weir_core::key::KeyEncoder;
use weir_core::operator::{Operator, TaskInfo};

/// (parallelism before, after) pairs: unchanged and rescaled.
const PARALLELISM: [(usize, usize); 4] = [(1, 1), (2, 2), (2, 3), (3, 1)];

/// A processing-time timer far in the future: it fires at end of input
/// (the harness never advances the wall clock), so results stay deterministic.
const FAR: i64 = 1 << 50;

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("what", DataType::Utf8, false),
        Field::new("t", DataType::Int64, false),
        Field::new("x", DataType::Int64, false),
    ]))
}

fn emit(ctx: &mut ProcessContext, key: &KeyRow, what: &str, t: i64, x: i64) -> Result<()> {
    let k = key.columns().column(0).as_primitive::<Int64Type>().value(0);
    ctx.emit(RecordBatch::try_new(
        output_schema(),
        vec![
            Arc::new(Int64Array::from(vec![k])),
            Arc::new(arrow_array::StringArray::from(vec![what])),
            Arc::new(Int64Array::from(vec![t])),
            Arc::new(Int64Array::from(vec![x])),
        ],
    )?)
}

/// Per key: a running sum and the times seen (state that grows); each row
/// sets an event timer 25 ms later that reports the count of rows in the
/// last 40 ms and clears the state once the key went quiet; the first row
/// of a key sets a processing-time timer that reports the sum.
#[derive(Debug, Default)]
struct Tracker;

/// The tracker's per-key state.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Tracked {
    sum: i64,
    times: Vec<i64>,
    processing_set: bool,
}

impl KeyedProcessFunction for Tracker {
    type State = Tracked;

    fn state_size(&self, state: &Tracked) -> usize {
        std::mem::size_of::<Tracked>() + state.times.capacity() * 8
    }

    fn on_rows(
        &mut self,
        key: &KeyRow,
        rows: &RecordBatch,
        state: &mut Tracked,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let t = rows.column(1).as_primitive::<Int64Type>();
        let v = rows.column(2).as_primitive::<Int64Type>();
        for i in 0..rows.num_rows() {
            state.sum += v.value(i);
            state.times.push(t.value(i));
            ctx.register_event_timer(t.value(i) + 25);
            emit(ctx, key, "sum", t.value(i), state.sum)?;
        }
        if !state.processing_set {
            state.processing_set = true;
            ctx.register_processing_timer(FAR + ctx.time());
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        key: &KeyRow,
        time: i64,
        state: &mut Tracked,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        state.times.retain(|&t| t > time - 40);
        emit(ctx, key, "recent", time, state.times.len() as i64)?;
        if state.times.is_empty() {
            ctx.clear_state();
        }
        Ok(())
    }

    fn on_processing_timer(
        &mut self,
        key: &KeyRow,
        time: i64,
        state: &mut Tracked,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        emit(ctx, key, "processing", time, state.sum)
    }
}

fn make(info: &TaskInfo) -> Result<Box<dyn Operator>> {
    Ok(Box::new(KeyedProcessOperator::try_new(
        &input_schema(),
        "t",
        &["k".into()],
        output_schema(),
        Tracker,
        &info.operator,
    )?))
}

fn keys() -> Vec<KeyEncoder> {
    encoders(&[&input_schema()], &[&["k"]])
}

/// Batches over 12 keys with times a little ahead of the watermark (one
/// row in ten late), in any order within a batch; a watermark after every
/// other batch.
fn events(n: usize, rows_per_batch: u64, seed: u64) -> Vec<Event> {
    let mut rand = crate::checkpoint_harness::lcg(seed);
    let mut out = Vec::new();
    for i in 0..n {
        let base = i as i64 * 10;
        let rows = 1 + rand(rows_per_batch) as usize;
        let (mut k, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rows {
            k.push(rand(12) as i64);
            // late rows (behind the last watermark, base - 15): the first of
            // a batch right after a watermark, and one in ten
            let late = i > 0 && ((i % 2 == 0 && t.is_empty()) || rand(10) == 0);
            t.push(if late {
                base - 20
            } else {
                base + rand(40) as i64
            });
            v.push(rand(100) as i64);
        }
        let batch = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(Int64Array::from(k)),
                Arc::new(Int64Array::from(t)),
                Arc::new(Int64Array::from(v)),
            ],
        )
        .expect("valid batch");
        out.push(Event::Batch(0, batch));
        if i % 2 == 1 {
            out.push(Event::Watermark(base - 5));
        }
    }
    out
}

#[test]
fn process_function_restores_rows_state_and_timers() {
    let evs = events(50, 4, 3);
    let want = sorted_rows(&run_uninterrupted(&make, &evs));
    for what in ["sum", "recent", "processing"] {
        assert!(
            want.iter().any(|r| r.contains(what)),
            "the oracle has {what} rows"
        );
    }
    let keys = keys();
    // cuts: rows buffered before any watermark, between a batch and its
    // watermark (rows waiting, timers pending), right after a watermark, the end
    for cut in [1, 2, 3, 10, 11, 40, 41, evs.len() - 1, evs.len()] {
        for (p0, p1) in PARALLELISM {
            let got = sorted_rows(&run_with_restore(&make, &keys, &evs, cut, p0, p1));
            assert_eq!(got, want, "cut {cut}, parallelism {p0} -> {p1}");
        }
    }
}

/// A budget so small that buffered rows go to sorted runs and key states
/// to the state log before the cut: both must be in the snapshot.
#[test]
fn spilled_rows_and_states_are_restored() {
    let evs = events(120, 8, 5);
    let want = sorted_rows(&run_uninterrupted(&make, &evs));
    let keys = keys();
    for cut in [60, 61, 150] {
        for (p0, p1) in PARALLELISM {
            let r = run_with_restore_in(&make, &keys, &evs, cut, p0, p1, 6 << 10);
            assert!(
                r.spill_files_at_cut > 0,
                "cut {cut}, {p0} -> {p1}: state was on disk at the cut"
            );
            assert_eq!(
                sorted_rows(&r.output),
                want,
                "cut {cut}, parallelism {p0} -> {p1}"
            );
        }
    }
}

#[test]
fn foreign_state_is_an_error_naming_the_operator() {
    use weir_core::state::{StateReader, StateWriter};
    let mut w = StateWriter::new();
    w.put(META_ENTRY, &(None::<i64>, 0i64)).expect("put");
    let b = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .expect("batch");
    w.put_keyed(KEYS_ENTRY, &b, &[0]).expect("put_keyed");
    let reader = StateReader::single(w.finish());
    let info = TaskInfo {
        operator: "my_process".into(),
        subtask: 0,
        parallelism: 1,
    };
    let mut op = make(&info).expect("builds");
    let mut ctx = crate::basic::tests::test_ctx();
    let err = op.restore(&mut ctx, &reader).expect_err("foreign state");
    let msg = err.to_string();
    assert!(
        msg.contains("my_process") && msg.contains(KEYS_ENTRY),
        "{msg}"
    );
}
