//! Unit tests of `crates/weir-operators/src/event_buffer.rs`.

use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, StringArray};
use proptest::prelude::*;
use std::sync::atomic::Ordering;
use weir_core::operator::{RuntimeEnv, TaskInfo};

pub(crate) fn ctx_with_budget(budget: usize) -> Ctx {
    let env = RuntimeEnv::try_new(budget, None).unwrap();
    let info = TaskInfo {
        operator: "buffer".into(),
        subtask: 0,
        parallelism: 1,
    };
    Ctx::new(info, env, Arc::new(OperatorMetrics::default()))
}

fn rows_batch(rows: &[(u8, i64, i64)]) -> RecordBatch {
    let keys: Vec<String> = rows.iter().map(|r| format!("k{}", r.0)).collect();
    RecordBatch::try_from_iter([
        ("k", Arc::new(StringArray::from(keys)) as ArrayRef),
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

/// `(key, [(t, v)])` per release, flattened per key in release order.
fn per_key(released: &[Released]) -> Vec<(String, Vec<(i64, i64)>)> {
    let mut out: Vec<(String, Vec<(i64, i64)>)> = Vec::new();
    for r in released {
        // the id may already be recycled: read the key from the rows
        let k = r.rows.column(0).as_string::<i32>().value(0).to_string();
        let t = r.rows.column(1).as_primitive::<Int64Type>();
        let v = r.rows.column(2).as_primitive::<Int64Type>();
        assert_eq!(t.values().to_vec(), r.times);
        let rows: Vec<(i64, i64)> = (0..r.rows.num_rows())
            .map(|i| (t.value(i), v.value(i)))
            .collect();
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some((_, v)) => v.extend(rows),
            None => out.push((k, rows)),
        }
    }
    out.sort();
    out
}

/// The operator a buffer belongs to: its reservation covers the buffer.
struct Owner {
    buf: EventTimeBuffer,
    reservation: MemoryReservation,
}

impl Owner {
    fn sync(&mut self, ctx: &Ctx) -> Result<()> {
        self.buf.settle();
        store::sync(self, ctx.spill())
    }
}

impl store::SpillableState for Owner {
    fn memory_bytes(&self) -> usize {
        self.buf.settled_bytes()
    }
    fn can_spill(&self) -> bool {
        self.buf.can_spill()
    }
    fn spill(&mut self, spill: &Arc<weir_core::spill::SpillManager>) -> Result<()> {
        self.buf.spill_rows(spill, "owner")
    }
    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}

fn new_buffer() -> EventTimeBuffer {
    let b = rows_batch(&[(0, 0, 0)]);
    EventTimeBuffer::try_new(&b.schema(), "t", &["k".into()], "buffer").unwrap()
}

#[test]
fn releases_due_rows_sorted_by_time_then_content_and_counts_late_rows() {
    let mut buf = new_buffer();
    let ctx = ctx_with_budget(usize::MAX);
    buf.open(&ctx);
    buf.push(
        &rows_batch(&[(1, 30, 2), (0, 10, 5), (1, 10, 9), (1, 10, 3), (0, 40, 1)]),
        &ctx,
    )
    .unwrap();
    assert!(buf.release(9).unwrap().is_empty());
    let got = buf.release(30).unwrap();
    assert_eq!(
        per_key(&got),
        vec![
            ("k0".into(), vec![(10, 5)]),
            ("k1".into(), vec![(10, 3), (10, 9), (30, 2)]),
        ]
    );
    // at or below the watermark: late
    let late = buf
        .push(&rows_batch(&[(0, 30, 0), (0, 31, 0)]), &ctx)
        .unwrap();
    assert_eq!(late, 1);
    assert_eq!(ctx.metrics().late_rows.load(Ordering::Relaxed), 1);
    assert_eq!(buf.buffered_rows(), 2);
    let got = buf.release(i64::MAX).unwrap();
    assert_eq!(per_key(&got), vec![("k0".into(), vec![(31, 0), (40, 1)])]);
    assert_eq!(buf.buffered_rows(), 0);
    assert_eq!(buf.reserved(), 0);
    assert_eq!(ctx.pool().reserved(), 0, "everything released");
}

#[test]
fn take_many_gives_each_key_its_own_due_rows_with_ties_kept_within_keys() {
    let mut buf = new_buffer();
    let ctx = ctx_with_budget(usize::MAX);
    buf.open(&ctx);
    // keys 0, 1 and 2 share time 10 (ties across keys must not mix), key
    // 3 has nothing due
    buf.push(
        &rows_batch(&[
            (2, 10, 7),
            (1, 10, 9),
            (0, 10, 5),
            (1, 10, 3),
            (3, 50, 1),
            (0, 20, 4),
            (2, 10, 1),
            (1, 60, 0),
        ]),
        &ctx,
    )
    .unwrap();
    let keys = buf.advance(30).unwrap();
    assert_eq!(keys.len(), 3, "keys 0, 1 and 2 are due");
    assert_eq!(buf.held_rows(keys[1]) + buf.held_rows(keys[0]), 5);
    let got = buf.take_many(&keys).unwrap();
    assert_eq!(got.iter().map(|r| r.key).collect::<Vec<_>>(), keys);
    assert_eq!(
        per_key(&got),
        vec![
            ("k0".into(), vec![(10, 5), (20, 4)]),
            ("k1".into(), vec![(10, 3), (10, 9)]),
            ("k2".into(), vec![(10, 1), (10, 7)]),
        ]
    );
    for r in &got {
        let k = r.rows.column(0).as_string::<i32>();
        assert!(
            (0..r.rows.num_rows()).all(|i| k.value(i) == k.value(0)),
            "one key per slice"
        );
    }
    assert_eq!(buf.buffered_rows(), 2, "key 1's row at 60 and key 3's wait");
    assert!(
        buf.take_many(&keys).unwrap().is_empty(),
        "nothing due is left"
    );
    let rest = buf.release(i64::MAX).unwrap();
    assert_eq!(
        per_key(&rest),
        vec![("k1".into(), vec![(60, 0)]), ("k3".into(), vec![(50, 1)])]
    );
    drop(got);
    assert_eq!(ctx.pool().reserved(), 0, "everything released");
}

#[test]
fn retained_keys_survive_and_decode() {
    let mut buf = new_buffer();
    let ctx = ctx_with_budget(usize::MAX);
    buf.open(&ctx);
    buf.push(&rows_batch(&[(7, 1, 1)]), &ctx).unwrap();
    let keys = buf.advance(5).unwrap();
    assert_eq!(keys.len(), 1);
    let held = buf.retain_key(keys[0]);
    let r = buf.take(keys[0]).unwrap().unwrap();
    assert!(buf.memory_size() > 0, "the retained key is still accounted");
    let cols = buf.key_columns(&[r.key]).unwrap();
    assert_eq!(cols[0].as_string::<i32>().value(0), "k7");
    buf.release_key(held);
    assert_eq!(buf.memory_size(), 0);
    assert_eq!(ctx.pool().reserved(), 0);
}

#[test]
fn without_keys_all_rows_form_one_group() {
    let b = rows_batch(&[(0, 5, 1), (1, 3, 2), (2, 5, 0)]);
    let mut buf = EventTimeBuffer::try_new(&b.schema(), "t", &[], "buffer").unwrap();
    let ctx = ctx_with_budget(usize::MAX);
    buf.open(&ctx);
    buf.push(&b, &ctx).unwrap();
    let got = buf.release(i64::MAX).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].times, vec![3, 5, 5]);
    assert!(buf.key_columns(&[got[0].key]).unwrap().is_empty());
    let v = got[0].rows.column(2).as_primitive::<Int64Type>();
    // ties at 5 by content: key column first ("k0" < "k2")
    assert_eq!(v.values().to_vec(), vec![2, 1, 0]);
}

#[test]
fn over_budget_rows_spill_and_come_back_in_the_same_order() {
    let input: Vec<RecordBatch> = (0..20)
        .map(|b| {
            let rows: Vec<(u8, i64, i64)> = (0..50)
                .map(|i| ((i % 3) as u8, (b * 37 + i * 11) % 400, i))
                .collect();
            rows_batch(&rows)
        })
        .collect();
    let run = |budget: usize| {
        let ctx = ctx_with_budget(budget);
        let mut owner = Owner {
            buf: new_buffer(),
            reservation: ctx.spillable_reservation(),
        };
        owner.buf.open(&ctx);
        let mut released = Vec::new();
        // spilled rows come back a step at a time, as operators take them
        let mut release_to = |buf: &mut EventTimeBuffer, target: i64| loop {
            let step = buf.next_step(target).unwrap();
            released.extend(buf.release(step).unwrap());
            if step == target {
                break;
            }
        };
        for (i, b) in input.iter().enumerate() {
            owner.buf.push(b, &ctx).unwrap();
            owner.sync(&ctx).unwrap();
            if i % 7 == 6 {
                release_to(&mut owner.buf, 100 + i as i64 * 10);
                owner.sync(&ctx).unwrap();
            }
        }
        release_to(&mut owner.buf, i64::MAX);
        owner.sync(&ctx).unwrap();
        let released = per_key(&released);
        let files = ctx.spill().metrics().files();
        drop(owner);
        assert_eq!(ctx.pool().reserved(), 0);
        assert_eq!(std::fs::read_dir(ctx.spill().dir()).unwrap().count(), 0);
        (released, files)
    };
    let (want, none) = run(usize::MAX);
    let (got, files) = run(2048);
    assert_eq!(none, 0);
    assert!(files > 0, "the small budget spills");
    assert_eq!(got, want);
}

#[test]
fn rejects_a_batch_of_another_schema() {
    let mut buf = new_buffer();
    let ctx = ctx_with_budget(usize::MAX);
    buf.open(&ctx);
    let other =
        RecordBatch::try_from_iter([("t", Arc::new(Int64Array::from(vec![1])) as ArrayRef)])
            .unwrap();
    let err = buf.push(&other, &ctx).unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
}

/// Pushes `rows` in the order `perm`, in batches of `sizes`, advancing the
/// watermark after a batch when `advance` says so (as far as the rows
/// still to come allow); returns the released rows per key.
fn run(
    rows: &[(u8, i64, i64)],
    perm: &[usize],
    sizes: &[usize],
    advance: &[bool],
) -> Vec<(String, Vec<(i64, i64)>)> {
    let mut buf = new_buffer();
    let ctx = ctx_with_budget(usize::MAX);
    buf.open(&ctx);
    let ordered: Vec<(u8, i64, i64)> = perm.iter().map(|&i| rows[i]).collect();
    let mut released = Vec::new();
    let mut at = 0;
    let mut step = 0;
    while at < ordered.len() {
        let n = sizes[step % sizes.len()].clamp(1, ordered.len() - at);
        buf.push(&rows_batch(&ordered[at..at + n]), &ctx).unwrap();
        at += n;
        if advance[step % advance.len()] {
            let next_min = ordered[at..].iter().map(|r| r.1).min().unwrap_or(i64::MAX);
            released.extend(buf.release(next_min - 1).unwrap());
        }
        step += 1;
    }
    released.extend(buf.release(i64::MAX).unwrap());
    assert_eq!(ctx.metrics().late_rows.load(Ordering::Relaxed), 0);
    assert_eq!(ctx.pool().reserved(), 0);
    per_key(&released)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn release_order_does_not_depend_on_arrival_order_or_batching(
        rows in prop::collection::vec((0u8..3, 0i64..12, 0i64..4), 1..50),
        keys in prop::collection::vec(any::<u32>(), 50),
        sizes in prop::collection::vec(1usize..8, 1..6),
        advance in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let sorted: Vec<usize> = (0..rows.len()).collect();
        let mut shuffled = sorted.clone();
        shuffled.sort_by_key(|&i| (keys[i], i));
        let reference = run(&rows, &sorted, &[rows.len()], &[false]);
        let got = run(&rows, &shuffled, &sizes, &advance);
        prop_assert_eq!(&got, &reference);
        // and the reference is (time, content) order per key
        for (k, released) in &reference {
            let mut want: Vec<(i64, i64)> = rows
                .iter()
                .filter(|r| format!("k{}", r.0) == *k)
                .map(|r| (r.1, r.2))
                .collect();
            want.sort();
            prop_assert_eq!(released, &want);
        }
    }
}
