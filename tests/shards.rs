//! Shards (`--shard i/N`): N runs of one job, each on its share, together
//! give exactly the rows of one run and of a brute-force oracle; a job
//! that cannot be divided is refused by name.
//!
//! In-process shards here (`ExecConfig::with_shard`); `shard_processes.rs`
//! runs them as processes writing one target.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use common::{admitted_and_late_by, batches_of, schema, Row, Split};
use proptest::strategy::{Strategy, ValueTree};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir::compare::same_rows;
use weir::shard::Shard;
use weir::{col, lit, Agg, ExecConfig, ExecMode, Job, TumblingWindow, WatermarkStrategy};

const DELAY_MS: i64 = 300;
const WINDOW_MS: i64 = 1_000;

fn deadline(ts: i64) -> i64 {
    ts.div_euclid(WINDOW_MS) * WINDOW_MS + WINDOW_MS - 1
}

fn splits() -> Vec<Split> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..5)
        .map(|_| {
            common::split_strategy(40)
                .new_tree(&mut runner)
                .unwrap()
                .current()
        })
        .collect()
}

fn window_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("window_start", DataType::Int64, false),
        Field::new("n", DataType::Int64, false),
        Field::new("total", DataType::Int64, true),
    ]))
}

/// Brute force: the window-aware lateness rule per split, then count and
/// sum of `value` per (key, 1 s window) over the admitted rows.
fn oracle(splits: &[Split]) -> (RecordBatch, Vec<Row>) {
    let (admitted, late) = admitted_and_late_by(splits, DELAY_MS, 0, &deadline);
    let mut groups: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for r in &admitted {
        let g = groups
            .entry((r.key, r.ts.div_euclid(WINDOW_MS) * WINDOW_MS))
            .or_default();
        g.0 += 1;
        g.1 += r.value;
    }
    let batch = RecordBatch::try_new(
        window_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(groups.keys().map(|k| k.0))),
            Arc::new(Int64Array::from_iter_values(groups.keys().map(|k| k.1))),
            Arc::new(Int64Array::from_iter_values(groups.values().map(|v| v.0))),
            Arc::new(Int64Array::from_iter_values(groups.values().map(|v| v.1))),
        ],
    )
    .unwrap();
    (batch, late)
}

/// The windowed job; returns (window rows, late rows) of one run.
fn windows(
    splits: &[Split],
    mode: ExecMode,
    p: usize,
    shard: Option<Shard>,
) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
    let job = Job::new();
    let rows = timed(&job, splits);
    let late = rows.late_rows().unwrap().collect().unwrap();
    let out = rows
        .key_by(["key"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_millis(WINDOW_MS as u64)))
        .aggregate([Agg::count().alias("n"), Agg::sum("value").alias("total")])
        .unwrap()
        .select(["key", "window_start", "n", "total"])
        .unwrap()
        .collect()
        .unwrap();
    let mut config = ExecConfig::new(mode)
        .with_parallelism(p)
        .with_batch_rows(37);
    if let Some(s) = shard {
        config = config.with_shard(s);
    }
    job.run(&config).unwrap();
    (out.batches(), late.batches())
}

/// `splits` as a memory source of `job`, with event time `ts` (300 ms delay).
fn timed(job: &Job, splits: &[Split]) -> weir::Stream {
    job.from_batches(schema(), splits.iter().map(batches_of).collect())
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(DELAY_MS as u64)),
        )
        .unwrap()
}

fn late_rows(batches: &[RecordBatch]) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let (k, t, v) = (c(0), c(1), c(2));
        for i in 0..b.num_rows() {
            out.push((k.value(i), t.value(i), v.value(i)));
        }
    }
    out.sort_unstable();
    out
}

#[test]
fn three_shards_of_a_keyed_job_give_the_oracles_rows_in_both_modes() {
    let splits = splits();
    let (want, late) = oracle(&splits);
    assert!(want.num_rows() > 50 && !late.is_empty(), "a vacuous input");
    let mut want_late: Vec<(i64, i64, i64)> = late.iter().map(|r| (r.key, r.ts, r.value)).collect();
    want_late.sort_unstable();
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 3] {
            let (mut all, mut all_late) = (Vec::new(), Vec::new());
            let mut per_shard = Vec::new();
            for i in 0..3 {
                let (w, l) = windows(&splits, mode, p, Some(Shard::try_new(i, 3).unwrap()));
                per_shard.push(w.iter().map(|b| b.num_rows()).sum::<usize>());
                all.extend(w);
                all_late.extend(l);
            }
            same_rows(&all, std::slice::from_ref(&want), &window_schema(), 0.0)
                .unwrap_or_else(|e| panic!("{mode} p={p}: {e}"));
            assert_eq!(
                late_rows(&all_late),
                want_late,
                "{mode} p={p}: late rows once each"
            );
            // each shard did a real share of the keys
            assert!(
                per_shard.iter().all(|&n| n > 0),
                "{mode} p={p}: {per_shard:?}"
            );
            let (one, one_late) = windows(&splits, mode, p, None);
            same_rows(&one, std::slice::from_ref(&want), &window_schema(), 0.0).unwrap();
            assert_eq!(late_rows(&one_late), want_late);
        }
    }
}

#[test]
fn shards_of_a_job_without_keys_read_disjoint_splits() {
    let splits = splits();
    let want: Vec<(i64, i64, i64)> = {
        let mut v: Vec<_> = splits
            .iter()
            .flat_map(|s| &s.rows)
            .filter(|r| r.value >= 50)
            .map(|r| (r.key, r.ts, r.value))
            .collect();
        v.sort_unstable();
        v
    };
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 2] {
            let mut got = Vec::new();
            for i in 0..2 {
                let job = Job::new();
                let out = job
                    .from_batches(schema(), splits.iter().map(batches_of).collect())
                    .unwrap()
                    .filter(col("value").gt_eq(lit(50)))
                    .unwrap()
                    .collect()
                    .unwrap();
                let config = ExecConfig::new(mode)
                    .with_parallelism(p)
                    .with_shard(Shard::try_new(i, 2).unwrap());
                let m = job.run(&config).unwrap();
                let total: usize = splits.iter().map(|s| s.rows.len()).sum();
                assert!(
                    m.rows_in > 0 && (m.rows_in as usize) < total,
                    "{mode}: shard {i} read only its splits"
                );
                got.extend(out.batches());
            }
            assert_eq!(late_rows(&got), want, "{mode} p={p}");
        }
    }
}

#[test]
fn jobs_shards_cannot_divide_are_refused_by_name() {
    let splits = splits();
    let shard = Shard::try_new(1, 2).unwrap();
    let config = ExecConfig::pipelined()
        .with_parallelism(2)
        .with_shard(shard);
    let source = |job: &Job| timed(job, &splits);
    // re-keying: per-key windows, then keyed by the window
    let job = Job::new();
    source(&job)
        .key_by(["key"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .key_by(["window_start"])
        .unwrap()
        .aggregate([Agg::max("n")])
        .unwrap()
        .collect()
        .unwrap();
    let e = job.run(&config).unwrap_err().to_string();
    assert!(
        e.contains("re-keys rows by (window_start)") && e.contains("--repartition-brokers"),
        "{e}"
    );
    // state over every key
    let job = Job::new();
    source(&job)
        .window_all(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .collect()
        .unwrap();
    let e = job.run(&config).unwrap_err().to_string();
    assert!(
        e.contains("not per key") && e.contains("shards cannot"),
        "{e}"
    );
    // more subtasks than the shard's key groups (128 / 64 = 2 each)
    let job = Job::new();
    source(&job)
        .key_by(["key"])
        .unwrap()
        .window(TumblingWindow::of(Duration::from_secs(1)))
        .aggregate([Agg::count().alias("n")])
        .unwrap()
        .collect()
        .unwrap();
    let config = ExecConfig::batch()
        .with_parallelism(3)
        .with_shard(Shard::try_new(5, 64).unwrap());
    let e = job.run(&config).unwrap_err().to_string();
    assert!(
        e.contains("3 exceeds the 2 key groups this shard owns"),
        "{e}"
    );
}

#[test]
fn rows_every_shard_reads_are_written_once_beside_a_keyed_branch() {
    // a keyed window and, from the same source, a plain filter into a sink:
    // each shard reads every row, and each filtered row (not late: the
    // source decides lateness for the window) is written once
    let splits = splits();
    let (admitted, _) = admitted_and_late_by(&splits, DELAY_MS, 0, &deadline);
    let want: Vec<(i64, i64, i64)> = {
        let mut v: Vec<_> = admitted
            .iter()
            .filter(|r| r.value >= 90)
            .map(|r| (r.key, r.ts, r.value))
            .collect();
        v.sort_unstable();
        v
    };
    let (windows_want, _) = oracle(&splits);
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        let (mut plain, mut windowed) = (Vec::new(), Vec::new());
        for i in 0..3 {
            let job = Job::new();
            let rows = timed(&job, &splits);
            let fast = rows
                .filter(col("value").gt_eq(lit(90)))
                .unwrap()
                .collect()
                .unwrap();
            let w = rows
                .key_by(["key"])
                .unwrap()
                .window(TumblingWindow::of(Duration::from_millis(WINDOW_MS as u64)))
                .aggregate([Agg::count().alias("n"), Agg::sum("value").alias("total")])
                .unwrap()
                .select(["key", "window_start", "n", "total"])
                .unwrap()
                .collect()
                .unwrap();
            let config = ExecConfig::new(mode)
                .with_parallelism(2)
                .with_shard(Shard::try_new(i, 3).unwrap());
            job.run(&config).unwrap();
            plain.extend(fast.batches());
            windowed.extend(w.batches());
        }
        assert_eq!(late_rows(&plain), want, "{mode}: each filtered row once");
        same_rows(
            &windowed,
            std::slice::from_ref(&windows_want),
            &window_schema(),
            0.0,
        )
        .unwrap();
    }
}

#[test]
fn a_union_of_rows_keyed_otherwise_is_re_keying() {
    let splits = splits();
    let job = Job::new();
    let source = || timed(&job, &splits);
    let per = |s: weir::Stream, key: &str| {
        s.key_by([key])
            .unwrap()
            .window(TumblingWindow::of(Duration::from_secs(1)))
            .aggregate([Agg::count().alias("n")])
            .unwrap()
            .select(["window_start", "n"])
            .unwrap()
    };
    // per key and per value windows, unioned, then keyed by window: the
    // union's rows are divided by two different keys
    per(source(), "key")
        .union(&per(source(), "value"))
        .unwrap()
        .key_by(["window_start"])
        .unwrap()
        .aggregate([Agg::sum("n")])
        .unwrap()
        .collect()
        .unwrap();
    let config = ExecConfig::batch().with_shard(Shard::try_new(0, 2).unwrap());
    let e = job.run(&config).unwrap_err().to_string();
    assert!(e.contains("re-keys rows by (window_start)"), "{e}");
}

/// A repartition channel that is only planned, never run.
#[derive(Debug)]
struct Planned;

impl weir::operator::Repartitioner for Planned {
    fn sink(
        &self,
        _: &weir::operator::RepartitionEdge,
    ) -> weir::Result<weir::operator::OperatorFactory> {
        Ok(Arc::new(|_: &weir::operator::TaskInfo| {
            unreachable!("planned only")
        }))
    }
    fn source(
        &self,
        edge: &weir::operator::RepartitionEdge,
    ) -> weir::Result<Arc<dyn weir::operator::SourceSpec>> {
        Ok(Arc::new(
            weir::connectors::MemorySourceSpec::try_new(edge.schema.clone(), vec![]).unwrap(),
        ))
    }
    fn describe(&self, edge: &weir::operator::RepartitionEdge) -> String {
        format!("planned {}", edge.name)
    }
}

#[test]
fn a_join_of_two_re_keyed_sides_is_cut_twice_with_topological_ids() {
    let splits = splits();
    let job = Job::new();
    let source = || timed(&job, &splits);
    let per_key = |s: weir::Stream, n: &str| {
        s.key_by(["key"])
            .unwrap()
            .window(TumblingWindow::of(Duration::from_secs(1)))
            .aggregate([Agg::count().alias(n)])
            .unwrap()
    };
    // both sides keyed by `key`, joined on the window: both re-key
    per_key(source(), "a")
        .join(
            &per_key(source(), "b"),
            weir::operators::join::JoinSpec::same_window().on(["window_start"], ["window_start"]),
        )
        .unwrap()
        .collect()
        .unwrap();
    let plan = job
        .plan()
        .for_shard(Shard::try_new(1, 2).unwrap(), Some(&Planned))
        .unwrap();
    let channels: Vec<&str> = plan
        .nodes
        .iter()
        .filter(|n| n.channel)
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(channels.len(), 4, "{channels:?}");
    let mut unique = channels.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "names are unique: {channels:?}");
    for (id, n) in plan.nodes.iter().enumerate() {
        assert!(
            n.inputs.iter().all(|e| e.from < id),
            "`{}` reads a later node",
            n.name
        );
    }
    // each repartition sink comes right after the node it drains
    for (id, n) in plan.nodes.iter().enumerate() {
        if n.channel && !n.kind.is_source() {
            assert_eq!(n.inputs[0].from + 1, id, "{}", n.name);
        }
    }
    weir::graph::PhysicalPlan::try_new(&plan, 2).unwrap();
}
