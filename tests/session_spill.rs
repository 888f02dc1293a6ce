//! Session windows over many keys under small memory budgets: the output
//! equals a brute-force session reference and the unlimited run in both
//! modes at parallelism 1 and 3, with watermarks that fire sessions while
//! state is on disk and with everything firing at the end; the pool ends at
//! zero, no spill file remains, and spilled bytes stay a small multiple of
//! the state spilled.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, JobMetrics, WatermarkStrategy};

const GAP_MS: i64 = 300;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// A small xorshift generator (reproducible without extra crates).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Four splits of `batches` batches of 1000 rows over `keys` keys; batch
/// `b` holds times in `[b * 250, b * 250 + 1000)`, shuffled, so a watermark
/// delay of 2 s never makes a row late.
fn input(seed: u64, keys: u64, batches: i64) -> Vec<Vec<RecordBatch>> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..4)
        .map(|_| {
            (0..batches)
                .map(|b| {
                    let n = 1000;
                    let k: Vec<i64> = (0..n).map(|_| rng.below(keys) as i64).collect();
                    let t: Vec<i64> = (0..n).map(|_| b * 250 + rng.below(1000) as i64).collect();
                    let v: Vec<i64> = (0..n).map(|_| rng.below(100) as i64 - 20).collect();
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from(k)),
                            Arc::new(Int64Array::from(t)),
                            Arc::new(Int64Array::from(v)),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect()
}

/// (key, start, end, count, sum, max), sorted.
type Sessions = Vec<(i64, i64, i64, i64, i64, i64)>;

/// Brute force: per key, rows sorted by time; a row at most `GAP_MS` after
/// the last one extends the session, whose end is the last row + gap.
fn reference(input: &[Vec<RecordBatch>]) -> Sessions {
    let mut by_key: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for b in input.iter().flatten() {
        let col = |i: usize| b.column(i).as_primitive::<Int64Type>().values().to_vec();
        let (k, t, v) = (col(0), col(1), col(2));
        for i in 0..b.num_rows() {
            by_key.entry(k[i]).or_default().push((t[i], v[i]));
        }
    }
    let mut out = Vec::new();
    for (k, mut rows) in by_key {
        rows.sort_unstable();
        let mut i = 0;
        while i < rows.len() {
            let (start, mut last) = (rows[i].0, rows[i].0);
            let (mut n, mut sum, mut max) = (0, 0, i64::MIN);
            while i < rows.len() && rows[i].0 <= last + GAP_MS {
                last = rows[i].0;
                n += 1;
                sum += rows[i].1;
                max = max.max(rows[i].1);
                i += 1;
            }
            out.push((k, start, last + GAP_MS, n, sum, max));
        }
    }
    out.sort_unstable();
    out
}

/// The job's sessions, sorted, by column name.
fn sessions(batches: &[RecordBatch]) -> Sessions {
    let mut out = Vec::new();
    for b in batches {
        let col = |name: &str| {
            b.column(b.schema().index_of(name).unwrap())
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        };
        let (k, s, e) = (col("k"), col("window_start"), col("window_end"));
        let (n, sum, max) = (col("n"), col("sum"), col("max"));
        for i in 0..b.num_rows() {
            out.push((k[i], s[i], e[i], n[i], sum[i], max[i]));
        }
    }
    out.sort_unstable();
    out
}

fn run(
    input: Vec<Vec<RecordBatch>>,
    delay: Duration,
    mode: ExecMode,
    parallelism: usize,
    memory: usize,
    spill_dir: &std::path::Path,
) -> (Sessions, JobMetrics) {
    let job = Job::new();
    let windows = job
        .from_batches(schema(), input)
        .unwrap()
        .assign_timestamps("t", WatermarkStrategy::bounded_out_of_orderness(delay))
        .unwrap()
        .key_by(["k"])
        .unwrap()
        .window(Window::session(Duration::from_millis(GAP_MS as u64)))
        .aggregate([
            Agg::count().alias("n"),
            Agg::sum("v").alias("sum"),
            Agg::max("v").alias("max"),
        ])
        .unwrap();
    let out = windows.collect().unwrap();
    let m = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(parallelism)
                .with_memory(memory)
                .with_spill_dir(spill_dir),
        )
        .unwrap();
    (sessions(&out.batches()), m)
}

#[test]
fn sessions_under_random_budgets_equal_the_reference_in_both_modes() {
    let mut rng = Rng(0x5E55_1011);
    // watermarks that fire sessions while others are on disk, and none before the end
    for (case, delay) in [Duration::from_secs(2), Duration::from_secs(3600)]
        .into_iter()
        .enumerate()
    {
        let data = input(case as u64 + 7, 30_000, 40);
        let want = reference(&data);
        assert!(want.len() > 60_000, "many sessions: {}", want.len());
        for parallelism in [1, 3] {
            for mode in [ExecMode::Pipelined, ExecMode::Batch] {
                let dir = tempfile::tempdir().unwrap();
                let (free, _) = run(
                    data.clone(),
                    delay,
                    mode,
                    parallelism,
                    usize::MAX,
                    dir.path(),
                );
                assert_eq!(free, want, "{mode} p{parallelism}: unlimited run");
                let budget = (256 << 10) + rng.below((4 << 20) - (256 << 10)) as usize;
                let (got, m) = run(data.clone(), delay, mode, parallelism, budget, dir.path());
                let what = format!("{mode} p{parallelism} delay {delay:?} budget {budget}");
                assert!(
                    m.spill_files > 0 && m.spilled_bytes > 0,
                    "{what}: spilled: {m:?}"
                );
                assert_eq!(m.memory_reserved_at_end, 0, "{what}: pool back to zero");
                let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
                assert!(left.is_empty(), "{what}: no spill file remains: {left:?}");
                assert!(
                    got == want,
                    "{what}: {} sessions, want {}",
                    got.len(),
                    want.len()
                );
            }
        }
    }
}

/// Every key is written to disk many times over (the budget is a small
/// fraction of the state, nothing fires before the end): what reaches the
/// disk stays a small multiple of the state spilled, because runs are
/// merged in tiers and the end reads them back without writing them again.
#[test]
fn spilled_bytes_stay_a_small_multiple_of_the_state_spilled() {
    let data = input(3, 20_000, 60);
    let want = reference(&data);
    for mode in [ExecMode::Pipelined, ExecMode::Batch] {
        let dir = tempfile::tempdir().unwrap();
        let (got, m) = run(
            data.clone(),
            Duration::from_secs(3600),
            mode,
            1,
            512 << 10,
            dir.path(),
        );
        assert!(
            got == want,
            "{mode}: {} sessions, want {}",
            got.len(),
            want.len()
        );
        assert!(m.spill_files >= 20, "{mode}: spilled repeatedly: {m:?}");
        let amplification = m.spill_write_amplification().expect("state was spilled");
        assert!(
            amplification <= 3.0,
            "{mode}: {} bytes written for {} bytes of state ({amplification:.2}x)",
            m.spilled_bytes,
            m.spilled_state_bytes
        );
        assert_eq!(m.memory_reserved_at_end, 0);
    }
}
