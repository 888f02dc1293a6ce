//! Test harness for operator snapshots (unit tests only): drives keyed
//! operator instances the way the executor does, takes a snapshot of every
//! subtask after event `cut`, restores fresh instances (at the same or a
//! different parallelism) and feeds them the rest.
//!
//! ```text
//!  events ──route by key group (p_before)──► ops ──snapshot at cut──► states
//!  states ──StateReader::for_subtask(p_after)──► fresh ops ──rest of events──►
//!  output = everything emitted before the cut + everything after
//! ```
//! Compare with [`run_uninterrupted`] (same events, one instance, no snapshot).

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::key::{key_group, subtask_for_key_group, KeyEncoder};
use weir_core::message::{Message, Watermark};
use weir_core::operator::{Ctx, Operator, OperatorMetrics, Output, RuntimeEnv, TaskInfo};
use weir_core::state::{StateReader, StateWriter, SubtaskState};

/// One input event.
#[derive(Debug, Clone)]
pub enum Event {
    /// Rows on input `0` or `1`.
    Batch(usize, RecordBatch),
    /// The combined input watermark advanced.
    Watermark(i64),
}

/// Builds an operator instance for a subtask.
pub type Make<'a> = &'a dyn Fn(&TaskInfo) -> Result<Box<dyn Operator>>;

struct Instance {
    op: Box<dyn Operator>,
    ctx: Ctx,
}

fn instance(make: Make<'_>, env: &RuntimeEnv, subtask: usize, parallelism: usize) -> Instance {
    let info = TaskInfo {
        operator: "op".into(),
        subtask,
        parallelism,
    };
    let mut op = make(&info).expect("the operator builds");
    let mut ctx = Ctx::new(info, env.clone(), Arc::new(OperatorMetrics::default()));
    op.open(&mut ctx).expect("the operator opens");
    Instance { op, ctx }
}

fn feed(inst: &mut Instance, ev: &Event, out: &mut Vec<RecordBatch>) {
    let mut o = Output::new();
    match ev {
        Event::Batch(input, b) => inst
            .op
            .on_batch(*input, b.clone(), &mut inst.ctx, &mut o)
            .expect("on_batch"),
        Event::Watermark(t) => {
            inst.ctx.set_watermark(Watermark::EventTime(*t));
            inst.op
                .on_watermark(Watermark::EventTime(*t), &mut inst.ctx, &mut o)
                .expect("on_watermark")
        }
    }
    collect(o, out);
}

fn collect(mut o: Output, out: &mut Vec<RecordBatch>) {
    for m in o.take() {
        if let Message::Data(b) = m {
            out.push(b);
        }
    }
}

fn finish(inst: &mut Instance, out: &mut Vec<RecordBatch>) {
    let mut o = Output::new();
    inst.op
        .on_end_of_input(&mut inst.ctx, &mut o)
        .expect("on_end_of_input");
    collect(o, out);
}

/// Routes `ev` to the subtasks of `parallelism` (rows by the key group of
/// `keys[input]`, as the hash router does; watermarks to all).
fn route(ev: &Event, keys: &[KeyEncoder], parallelism: usize) -> Vec<(usize, Event)> {
    match ev {
        Event::Watermark(_) => (0..parallelism).map(|s| (s, ev.clone())).collect(),
        Event::Batch(input, b) => {
            let hashes = keys[*input].hashes(b).expect("key hashes");
            let mut parts: Vec<Vec<u32>> = vec![Vec::new(); parallelism];
            for (i, h) in hashes.iter().enumerate() {
                parts[subtask_for_key_group(key_group(*h), parallelism)].push(i as u32);
            }
            parts
                .into_iter()
                .enumerate()
                .filter(|(_, rows)| !rows.is_empty())
                .map(|(s, rows)| {
                    let idx = arrow_array::UInt32Array::from(rows);
                    let part = arrow_select::take::take_record_batch(b, &idx).expect("take");
                    (s, Event::Batch(*input, part))
                })
                .collect()
        }
    }
}

/// A seeded pseudo-random source for test streams: `rand(m)` is in
/// `0..m` (a 64-bit LCG's high bits; the same seed gives the same stream).
pub fn lcg(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed;
    move |m: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    }
}

/// Key encoders for each input's key columns.
pub fn encoders(schemas: &[&Schema], keys: &[&[&str]]) -> Vec<KeyEncoder> {
    schemas
        .iter()
        .zip(keys)
        .map(|(s, k)| {
            let cols: Vec<String> = k.iter().map(|c| c.to_string()).collect();
            KeyEncoder::try_new(s, &cols, "test").expect("key columns exist")
        })
        .collect()
}

/// Runs every event through one instance (parallelism 1), then ends input.
pub fn run_uninterrupted(make: Make<'_>, events: &[Event]) -> Vec<RecordBatch> {
    run_uninterrupted_budget(make, events, usize::MAX / 2)
}

/// [`run_uninterrupted`] with a memory budget (to make the operator spill).
pub fn run_uninterrupted_budget(
    make: Make<'_>,
    events: &[Event],
    budget: usize,
) -> Vec<RecordBatch> {
    let env = RuntimeEnv::try_new(budget, None).expect("env");
    let mut inst = instance(make, &env, 0, 1);
    let mut out = Vec::new();
    for ev in events {
        feed(&mut inst, ev, &mut out);
    }
    finish(&mut inst, &mut out);
    out
}

/// Runs `events[..cut]` at `p_before` keyed subtasks, snapshots each
/// subtask (state bytes go through encode/decode), restores fresh instances
/// at `p_after` and runs the rest. Returns everything emitted. Also
/// asserts the memory pool is back to zero once the instances are dropped.
pub fn run_with_restore(
    make: Make<'_>,
    keys: &[KeyEncoder],
    events: &[Event],
    cut: usize,
    p_before: usize,
    p_after: usize,
) -> Vec<RecordBatch> {
    run_with_restore_in(make, keys, events, cut, p_before, p_after, usize::MAX / 2).output
}

/// What [`run_with_restore_in`] observed.
#[derive(Debug)]
pub struct Restored {
    /// Everything emitted, before and after the cut.
    pub output: Vec<RecordBatch>,
    /// Spill files on disk when the snapshots were taken (state spilled at the cut).
    pub spill_files_at_cut: usize,
    /// Encoded bytes of all snapshots.
    pub state_bytes: usize,
}

/// [`run_with_restore`] with a memory budget of `budget` bytes shared by
/// all instances (spilling operators spill under a small one); also reports
/// how many spill files existed at the cut.
pub fn run_with_restore_in(
    make: Make<'_>,
    keys: &[KeyEncoder],
    events: &[Event],
    cut: usize,
    p_before: usize,
    p_after: usize,
    budget: usize,
) -> Restored {
    let env = RuntimeEnv::try_new(budget, None).expect("env");
    let mut out = Vec::new();
    let spill_files_at_cut;
    let mut state_bytes = 0;
    let states: Vec<SubtaskState> = {
        let mut before: Vec<Instance> = (0..p_before)
            .map(|s| instance(make, &env, s, p_before))
            .collect();
        for ev in &events[..cut] {
            for (s, e) in route(ev, keys, p_before) {
                feed(&mut before[s], &e, &mut out);
            }
        }
        spill_files_at_cut = std::fs::read_dir(env.spill.dir())
            .map(|d| d.count())
            .unwrap_or(0);
        before
            .iter_mut()
            .map(|inst| {
                let mut w = StateWriter::for_checkpoint(1);
                inst.op.snapshot(&mut inst.ctx, &mut w).expect("snapshot");
                let bytes = w.finish().encode().expect("encode");
                state_bytes += bytes.len();
                SubtaskState::decode(&bytes).expect("decode")
            })
            .collect()
    };
    let last_wm = events[..cut]
        .iter()
        .filter_map(|e| match e {
            Event::Watermark(t) => Some(*t),
            _ => None,
        })
        .max();
    let states = Arc::new(states);
    let mut after: Vec<Instance> = (0..p_after)
        .map(|s| {
            let mut inst = instance(make, &env, s, p_after);
            if let Some(w) = last_wm {
                // the executor restores the context's watermark
                inst.ctx.set_watermark(Watermark::EventTime(w));
            }
            let reader = StateReader::for_subtask(states.clone(), s, p_after);
            inst.op.restore(&mut inst.ctx, &reader).expect("restore");
            inst
        })
        .collect();
    for ev in &events[cut..] {
        for (s, e) in route(ev, keys, p_after) {
            feed(&mut after[s], &e, &mut out);
        }
    }
    for inst in &mut after {
        finish(inst, &mut out);
    }
    drop(after);
    assert_eq!(env.pool.reserved(), 0, "memory released after restore run");
    Restored {
        output: out,
        spill_files_at_cut,
        state_bytes,
    }
}

/// The rows of `batches` as sorted display strings (an order-free multiset).
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let row: Vec<String> = b
                .columns()
                .iter()
                .map(|c| arrow_cast::display::array_value_to_string(c, i).expect("displayable"))
                .collect();
            rows.push(row.join("|"));
        }
    }
    rows.sort();
    rows
}
