//! Unit tests of `crates/weir-operators/src/group_aggregate/mod.rs`.

use super::*;
use crate::checkpoint_events::{events, rows, Gen};
use crate::checkpoint_harness::{run_uninterrupted_budget, sorted_rows, Event};
use weir_core::operator::{RuntimeEnv, TaskInfo};

fn make(emit: GroupEmit) -> impl Fn(&TaskInfo) -> Result<Box<dyn Operator>> {
    move |info: &TaskInfo| {
        let aggs = [Agg::count().alias("n"), Agg::sum("v"), Agg::last("v")];
        let schema = rows(&[]).schema();
        let op = GroupAggregate::try_new(
            &schema,
            &["k".into()],
            &aggs,
            Some("t"),
            emit,
            &info.operator,
        )?;
        Ok(Box::new(op) as _)
    }
}

/// Events with `keys` keys, most batches touching keys spilled before.
fn many_keys(keys: u64) -> Vec<Event> {
    events(Gen {
        keys,
        rows: 200,
        batches: 40,
        ..Gen::default()
    })
}

#[test]
fn under_a_tiny_budget_both_policies_emit_what_they_emit_unconstrained() {
    let ev = many_keys(3000);
    for emit in [GroupEmit::EveryBatch, GroupEmit::AtEnd] {
        let want = sorted_rows(&run_uninterrupted_budget(&make(emit), &ev, usize::MAX / 2));
        // small enough for many spills and compactions
        let got = sorted_rows(&run_uninterrupted_budget(&make(emit), &ev, 16 * 1024));
        assert_eq!(got.len(), want.len(), "{emit:?}: rows");
        assert!(got == want, "{emit:?}: same rows as unconstrained");
    }
}

#[test]
fn spills_compact_and_the_pool_and_disk_are_clean_after() {
    let env = RuntimeEnv::try_new(16 * 1024, None).unwrap();
    let info = TaskInfo {
        operator: "group".into(),
        subtask: 0,
        parallelism: 1,
    };
    let mut ctx = Ctx::new(info.clone(), env.clone(), Default::default());
    let mut op = make(GroupEmit::EveryBatch)(&info).unwrap();
    op.open(&mut ctx).unwrap();
    let mut out = Output::new();
    let mut most_runs = 0;
    for e in many_keys(3000) {
        if let Event::Batch(_, b) = e {
            op.on_batch(0, b, &mut ctx, &mut out).unwrap();
            let files = std::fs::read_dir(env.spill.dir()).unwrap().count();
            most_runs = most_runs.max(files);
        }
    }
    assert!(most_runs > 1, "state spilled to several runs");
    assert!(
        most_runs <= runs::MAX_RUNS + 1,
        "runs are compacted: at most {} files, saw {most_runs}",
        runs::MAX_RUNS + 1
    );
    // past the budget only by one batch's new keys and the read-back
    // blocks of at least 64 keys each (the state is ~20x the budget)
    assert!(env.pool.peak() <= 4 * 16 * 1024, "peak {}", env.pool.peak());
    op.on_end_of_input(&mut ctx, &mut out).unwrap();
    drop(op);
    assert_eq!(env.pool.reserved(), 0);
    assert_eq!(std::fs::read_dir(env.spill.dir()).unwrap().count(), 0);
}

/// The rows a retraction changelog leaves: inserts minus deletes (each
/// delete must take back a live row), without the op column, sorted.
fn materialized(batches: &[RecordBatch]) -> Vec<String> {
    let mut live: Vec<String> = Vec::new();
    for b in batches {
        let ops = b.column(b.num_columns() - 1).as_string::<i32>();
        let values = b
            .project(&(0..b.num_columns() - 1).collect::<Vec<_>>())
            .unwrap();
        for (i, row) in sorted_rows_in_order(&values).into_iter().enumerate() {
            match ops.value(i) {
                "insert" => live.push(row),
                "delete" => {
                    let at = live.iter().position(|r| *r == row);
                    live.remove(at.expect("a delete takes back a live row"));
                }
                other => panic!("a retraction changelog has no `{other}`"),
            }
        }
    }
    live.sort();
    live
}

/// Each row of `b` as text, in row order.
fn sorted_rows_in_order(b: &RecordBatch) -> Vec<String> {
    (0..b.num_rows())
        .map(|i| {
            b.columns()
                .iter()
                .map(|c| arrow_cast::display::array_value_to_string(c, i).unwrap())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

#[test]
fn retractions_materialize_to_the_batch_result_also_when_spilled() {
    let ev = many_keys(500);
    let at_end = run_uninterrupted_budget(&make(GroupEmit::AtEnd), &ev, usize::MAX / 2);
    let want = materialized(&at_end);
    assert_eq!(want.len(), 500, "one row per key");
    for budget in [usize::MAX / 2, 16 * 1024] {
        let out = run_uninterrupted_budget(&make(GroupEmit::Retractions), &ev, budget);
        let deletes: usize = out
            .iter()
            .map(|b| {
                let ops = b.column(b.num_columns() - 1).as_string::<i32>();
                ops.iter().filter(|o| *o == Some("delete")).count()
            })
            .sum();
        assert!(deletes > 500, "updates are retracted ({deletes} deletes)");
        assert_eq!(materialized(&out), want, "budget {budget}");
    }
}
