//! Test inputs for the snapshot tests of windows and aggregates (unit
//! tests only): keyed rows with bounded disorder and watermarks that follow
//! the sources' lateness rule, and a check that restoring at every cut and
//! parallelism gives the uninterrupted run's rows.
//!
//! ```text
//!  batch i: rows k0..k{keys}, t in (wm - lateness, base_i + spread], v small ints
//!  then (every `wm_every` batches) watermark wm = base_i - disorder
//! ```

use super::checkpoint_harness::{
    run_uninterrupted, run_with_restore, run_with_restore_in, sorted_rows, Event, Make,
};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use std::sync::Arc;
use weir_core::key::KeyEncoder;

/// How to generate the events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gen {
    pub seed: u64,
    pub batches: usize,
    pub rows: usize,
    pub keys: u64,
    /// Event time advances this much per batch.
    pub step: i64,
    /// Rows reach this far behind the batch's base time.
    pub disorder: i64,
    /// Rows up to this far behind the last watermark (allowed lateness).
    pub lateness: i64,
    /// A watermark after every this many batches.
    pub wm_every: usize,
}

impl Default for Gen {
    fn default() -> Self {
        Gen {
            seed: 7,
            batches: 24,
            rows: 12,
            keys: 9,
            step: 250,
            disorder: 300,
            lateness: 0,
            wm_every: 2,
        }
    }
}

/// A deterministic pseudo-random sequence (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A batch of `(key, t, v)` rows with columns `k` (Utf8), `t`, `v` (Int64).
pub(crate) fn rows(rows: &[(String, i64, i64)]) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "k",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )) as ArrayRef,
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
    .expect("three columns of equal length")
}

/// The events described by `g`; rows are never at or behind
/// `watermark - lateness`, as the sources guarantee.
pub(crate) fn events(g: Gen) -> Vec<Event> {
    let mut rng = Rng(g.seed);
    let mut out = Vec::new();
    let mut wm: Option<i64> = None;
    for i in 0..g.batches {
        let base = i as i64 * g.step;
        let floor = wm.map_or(i64::MIN, |w| w - g.lateness + 1);
        let batch: Vec<(String, i64, i64)> = (0..g.rows)
            .map(|_| {
                let k = format!("k{}", rng.below(g.keys));
                let spread = g.disorder + g.step;
                let t = (base - g.disorder + rng.below(spread as u64) as i64).max(floor);
                let t = if g.lateness > 0 && rng.below(5) == 0 {
                    // a late row within the allowed lateness
                    wm.map_or(t, |w| (w - rng.below(g.lateness as u64) as i64).max(floor))
                } else {
                    t
                };
                (k, t.max(0), rng.below(10) as i64)
            })
            .collect();
        out.push(Event::Batch(0, rows(&batch)));
        if (i + 1) % g.wm_every.max(1) == 0 {
            let w = base - g.disorder;
            if wm.is_none_or(|old| w > old) {
                wm = Some(w);
                out.push(Event::Watermark(w));
            }
        }
    }
    out
}

/// The parallelism changes every restore is checked at.
pub(crate) const RESCALES: [(usize, usize); 4] = [(1, 1), (2, 2), (2, 3), (3, 1)];

/// Asserts that a snapshot after each of `cuts` (number of events before
/// it), restored at each of [`RESCALES`], gives exactly the rows of the
/// uninterrupted run.
pub(crate) fn assert_restores(
    make: Make<'_>,
    keys: &[KeyEncoder],
    events: &[Event],
    cuts: &[usize],
) {
    let want = sorted_rows(&run_uninterrupted(make, events));
    assert!(!want.is_empty(), "the uninterrupted run emits rows");
    for &cut in cuts {
        for (before, after) in RESCALES {
            let got = sorted_rows(&run_with_restore(make, keys, events, cut, before, after));
            assert_same(
                &got,
                &want,
                &format!("cut {cut}, parallelism {before} -> {after}"),
            );
        }
    }
}

/// Like [`assert_restores`] with a memory budget of `budget` bytes, at one
/// cut where state must be spilled; returns nothing, fails if nothing was
/// on disk at the cut.
pub(crate) fn assert_restores_spilled(
    make: Make<'_>,
    keys: &[KeyEncoder],
    events: &[Event],
    cut: usize,
    budget: usize,
) {
    assert_restores_spilled_by(make, keys, events, cut, budget, &sorted_rows);
}

/// Like [`assert_restores_spilled`], comparing `view` of the outputs (in
/// emission order; e.g. [`folded`] when spilling moves changelog updates).
pub(crate) fn assert_restores_spilled_by(
    make: Make<'_>,
    keys: &[KeyEncoder],
    events: &[Event],
    cut: usize,
    budget: usize,
    view: &dyn Fn(&[RecordBatch]) -> Vec<String>,
) {
    let want = view(&run_uninterrupted(make, events));
    for (before, after) in RESCALES {
        let r = run_with_restore_in(make, keys, events, cut, before, after, budget);
        assert!(
            r.spill_files_at_cut > 0,
            "state is spilled at the cut ({before} -> {after})"
        );
        let got = view(&r.output);
        assert_same(
            &got,
            &want,
            &format!("spilled, cut {cut}, {before} -> {after}"),
        );
    }
}

/// The table a changelog folds to: rows upserted by their first `id`
/// columns (`insert`/`update` set the row, `delete` removes it; the `op`
/// column is last), in emission order; sorted display strings.
pub(crate) fn folded(batches: &[RecordBatch], id: usize) -> Vec<String> {
    let mut table = std::collections::BTreeMap::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let row: Vec<String> = b
                .columns()
                .iter()
                .map(|c| arrow_cast::display::array_value_to_string(c, i).expect("displayable"))
                .collect();
            let (values, op) = row.split_at(row.len() - 1);
            let key = values[..id].join("|");
            if op[0] == "delete" {
                table.remove(&key);
            } else {
                table.insert(key, values[id..].join("|"));
            }
        }
    }
    table.into_iter().map(|(k, v)| format!("{k}|{v}")).collect()
}

/// Equal multisets of rows, or a failure listing the differences.
pub(crate) fn assert_same(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).take(8).collect();
    let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).take(8).collect();
    panic!(
        "{what}: {} rows, expected {}; missing {missing:?}; unexpected {extra:?}",
        got.len(),
        want.len()
    );
}
