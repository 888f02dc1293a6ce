//! Spill fuzz: every stateful operator over random high-cardinality keys
//! under a random memory budget from 256 KiB to 4 MiB, in both modes at
//! parallelism 1 and 3. Each budgeted run must give the rows of the
//! unconstrained run (changelogs folded to their final table), and, where a
//! brute-force answer is cheap (tumbling windows, group aggregates, the
//! regular inner join, process functions), the oracle's; the pool must end
//! at zero and no spill file may remain.
//!
//! Inputs are drawn from a seed (the fuzzer shrinks the seed, sizes and
//! budget, not thousands of rows), so a failing case is a few numbers.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use common::{admitted_and_late_by, Row, Split};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use weir::compare::same_rows;
use weir::connectors::Collected;
use weir::operators::join::{JoinSpec, JoinType};
use weir::operators::{KeyRow, ProcessContext, ProcessFn};
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, JobMetrics, Stream, WatermarkStrategy};

/// Watermark delay at every source (ms).
const DELAY: i64 = 500;
/// Event time each split covers (ms): about 20 one-second windows.
const SPAN: i64 = 20_000;

/// One fuzz case: what to generate and the budget to run under.
#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    /// Rows per input (all splits together).
    rows: usize,
    /// Distinct keys drawn from.
    keys: i64,
    /// Splits (source subtasks' units of work) per input.
    splits: usize,
    /// Rows per batch on edges.
    batch_rows: usize,
    /// The memory budget of the constrained runs.
    budget: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        6_000usize..24_000,
        1_000i64..20_000,
        1usize..4,
        prop::sample::select(vec![512usize, 2048, 8192]),
        // log-uniform over [256 KiB, 4 MiB]
        (18u32..22, 0usize..1024),
    )
        .prop_map(|(seed, rows, keys, splits, batch_rows, (exp, frac))| Case {
            seed,
            rows,
            keys,
            splits,
            batch_rows,
            budget: ((1usize << exp) + (frac << (exp - 10))).min(4 << 20),
        })
}

/// splitmix64: a small, good generator for reproducible inputs.
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

/// The splits of one input: event time advances over [`SPAN`] per split,
/// most rows up to [`DELAY`] behind the clock, 1 % far behind (late), a
/// few ahead.
fn splits_of(c: &Case, salt: u64) -> Vec<Split> {
    let mut rng = Rng(c.seed ^ salt.wrapping_mul(0xA076_1D64_78BD_642F));
    let per_split = c.rows / c.splits;
    (0..c.splits)
        .map(|_| {
            let rows = (0..per_split)
                .map(|i| {
                    let clock = (i as i64 * SPAN) / per_split as i64;
                    let ts = match rng.below(100) {
                        0 => clock - DELAY * 3 - rng.below(1000) as i64,
                        1..=4 => clock + rng.below(200) as i64,
                        _ => clock - rng.below(DELAY as u64) as i64,
                    };
                    let value = rng.below(1000) as i64 - 100;
                    Row {
                        key: rng.below(c.keys as u64) as i64,
                        ts,
                        value,
                        speed: value as f64 * 0.5 + 0.25,
                    }
                })
                .collect();
            Split {
                rows,
                cuts: vec![c.batch_rows],
            }
        })
        .collect()
}

/// key, ts, value, tag (a short string, so rows have a variable-width part).
fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("value", DataType::Int64, false),
        Field::new("tag", DataType::Utf8, false),
    ]))
}

fn batches_of(split: &Split) -> Vec<RecordBatch> {
    split
        .rows
        .chunks(split.cuts[0])
        .map(|rows| {
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.key))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.ts))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.value))),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| format!("tag-{:05}", r.key % 9973)),
                    )),
                ],
            )
            .unwrap()
        })
        .collect()
}

/// The stateful operators under test.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Tumbling,
    Sliding,
    Cumulative,
    Session,
    CountWindow,
    GroupAggregate,
    /// A window aggregate aggregated again per window.
    Cascaded,
    Process,
    IntervalJoin(JoinType),
    /// 0 tumbling, 1 sliding, 2 cumulative, 3 session.
    WindowJoin(u8, JoinType),
    RegularJoin(JoinType),
    RegularTtlJoin(JoinType),
    /// Two window aggregates joined on their window (the seed's job).
    SameWindowJoin,
}

/// How to read an output: as is, or a changelog folded to its final table.
#[derive(Debug, Clone, Copy)]
enum Fold {
    /// Insert-only rows.
    Rows,
    /// Upserts by the `key` column (group aggregates).
    ByKey,
    /// Inserts and deletes of whole rows (regular outer joins).
    Multiset,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn source(job: &Job, splits: &[Split]) -> Stream {
    job.from_batches(schema(), splits.iter().map(batches_of).collect())
        .unwrap()
        .assign_timestamps(
            "ts",
            WatermarkStrategy::bounded_out_of_orderness(ms(DELAY as u64)),
        )
        .unwrap()
}

fn window_aggs() -> Vec<Agg> {
    vec![
        Agg::count().alias("n"),
        Agg::sum("value").alias("total"),
        Agg::max("tag").alias("top_tag"),
    ]
}

fn running_sum_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("running", DataType::Int64, false),
    ]))
}

/// Builds `op` over `left` (and `right` for joins); returns its collected
/// output and how to fold it.
fn build(op: Op, job: &Job, left: &[Split], right: &[Split]) -> (Collected, Fold) {
    let l = source(job, left);
    let keyed = || l.key_by(["key"]).unwrap();
    let join = |spec: JoinSpec| {
        let r = source(job, right);
        let fold = if spec.emits_changelog() {
            Fold::Multiset
        } else {
            Fold::Rows
        };
        (l.join(&r, spec.on(["key"], ["key"])).unwrap(), fold)
    };
    let (stream, fold) = match op {
        Op::Tumbling => (
            keyed()
                .window(Window::tumbling(ms(1000)))
                .aggregate(window_aggs())
                .unwrap(),
            Fold::Rows,
        ),
        Op::Sliding => (
            keyed()
                .window(Window::sliding(ms(2000), ms(500)))
                .aggregate(window_aggs())
                .unwrap(),
            Fold::Rows,
        ),
        Op::Cumulative => (
            keyed()
                .window(Window::cumulative(ms(500), ms(2000)))
                .aggregate(window_aggs())
                .unwrap(),
            Fold::Rows,
        ),
        Op::Session => (
            keyed()
                .window(Window::session(ms(300)))
                .aggregate(window_aggs())
                .unwrap(),
            Fold::Rows,
        ),
        Op::CountWindow => (
            keyed().count_window(2).aggregate(window_aggs()).unwrap(),
            Fold::Rows,
        ),
        Op::GroupAggregate => (
            keyed()
                .aggregate([Agg::count().alias("n"), Agg::sum("value").alias("total")])
                .unwrap(),
            Fold::ByKey,
        ),
        Op::Cascaded => (
            keyed()
                .window(Window::tumbling(ms(1000)))
                .aggregate(window_aggs())
                .unwrap()
                .aggregate_per_window(
                    &[],
                    [
                        Agg::max("n").alias("most"),
                        Agg::count().alias("keys"),
                        Agg::sum("total").alias("all"),
                    ],
                )
                .unwrap(),
            Fold::Rows,
        ),
        Op::Process => (
            keyed()
                .process(running_sum_schema(), || {
                    ProcessFn::new(
                        |key: &KeyRow,
                         rows: &RecordBatch,
                         sum: &mut i64,
                         ctx: &mut ProcessContext| {
                            let k = key.columns().column(0).as_primitive::<Int64Type>().value(0);
                            let mut running = Vec::with_capacity(rows.num_rows());
                            for v in rows.column(2).as_primitive::<Int64Type>().values() {
                                *sum += v;
                                running.push(*sum);
                            }
                            ctx.emit(RecordBatch::try_new(
                                running_sum_schema(),
                                vec![
                                    Arc::new(Int64Array::from(vec![k; rows.num_rows()])),
                                    rows.column(1).clone(),
                                    Arc::new(Int64Array::from(running)),
                                ],
                            )?)
                        },
                    )
                })
                .unwrap(),
            Fold::Rows,
        ),
        Op::IntervalJoin(ty) => join(JoinSpec::interval_ms(-300, 200).with_type(ty)),
        Op::WindowJoin(kind, ty) => join(
            JoinSpec::window(match kind {
                0 => Window::tumbling(ms(1000)),
                1 => Window::sliding(ms(2000), ms(500)),
                2 => Window::cumulative(ms(500), ms(2000)),
                _ => Window::session(ms(300)),
            })
            .with_type(ty),
        ),
        Op::RegularJoin(ty) => join(JoinSpec::regular().with_type(ty)),
        Op::RegularTtlJoin(ty) => join(JoinSpec::regular().with_ttl(ms(400)).with_type(ty)),
        Op::SameWindowJoin => {
            let agg = |s: &Stream| {
                s.key_by(["key"])
                    .unwrap()
                    .window(Window::tumbling(ms(1000)))
                    .aggregate([Agg::count().alias("n"), Agg::avg("value").alias("mean")])
                    .unwrap()
            };
            let r = source(job, right);
            (
                agg(&l)
                    .join(&agg(&r), JoinSpec::same_window().on(["key"], ["key"]))
                    .unwrap(),
                Fold::Rows,
            )
        }
    };
    (stream.collect().unwrap(), fold)
}

/// Rows identified by their display text (for folding changelogs).
fn row_texts(batch: &RecordBatch, columns: &[usize]) -> Vec<String> {
    let options = arrow_cast::display::FormatOptions::default();
    let formatters: Vec<_> = columns
        .iter()
        .map(|&c| arrow_cast::display::ArrayFormatter::try_new(batch.column(c), &options).unwrap())
        .collect();
    (0..batch.num_rows())
        .map(|r| {
            formatters
                .iter()
                .map(|f| f.value(r).to_string())
                .collect::<Vec<_>>()
                .join("\u{1f}")
        })
        .collect()
}

/// The final table of `batches`: a changelog folded (its `op` column
/// dropped), insert-only rows as they are.
fn fold(batches: &[RecordBatch], how: Fold) -> (Vec<RecordBatch>, Option<SchemaRef>) {
    let Some(first) = batches.first() else {
        return (Vec::new(), None);
    };
    let op_at = first.schema().index_of("op").ok();
    let (Some(op_at), Fold::ByKey | Fold::Multiset) = (op_at, how) else {
        return (batches.to_vec(), Some(first.schema()));
    };
    let all = arrow_select::concat::concat_batches(&first.schema(), batches).unwrap();
    let mut data = all.clone();
    data.remove_column(op_at);
    let ops = all.column(op_at).as_string::<i32>().clone();
    let whole: Vec<usize> = (0..data.num_columns()).collect();
    let keep: Vec<u32> = match how {
        Fold::ByKey => {
            let key = data.schema().index_of("key").unwrap();
            let ids = row_texts(&data, &[key]);
            let mut last: HashMap<&str, Option<u32>> = HashMap::new();
            for (r, id) in ids.iter().enumerate() {
                let live = (ops.value(r) != "delete").then_some(r as u32);
                last.insert(id, live);
            }
            last.into_values().flatten().collect()
        }
        _ => {
            let ids = row_texts(&data, &whole);
            let mut live: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
            for (r, id) in ids.iter().enumerate() {
                let rows = live.entry(id).or_default();
                if ops.value(r) == "delete" {
                    assert!(
                        rows.pop().is_some(),
                        "a delete of a row never inserted: {id}"
                    );
                } else {
                    rows.push(r as u32);
                }
            }
            live.into_values().flatten().collect()
        }
    };
    let taken = arrow_select::take::take_record_batch(&data, &UInt32Array::from(keep)).unwrap();
    let schema = taken.schema();
    (vec![taken], Some(schema))
}

/// One run's folded output and metrics; checks the pool ends at zero and
/// the spill directory is left empty.
fn run(
    op: Op,
    c: &Case,
    left: &[Split],
    right: &[Split],
    mode: ExecMode,
    p: usize,
    memory: usize,
) -> (Vec<RecordBatch>, Option<SchemaRef>, JobMetrics) {
    let dir = tempfile::tempdir().unwrap();
    let job = Job::new();
    let (out, how) = build(op, &job, left, right);
    let m = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(p)
                .with_batch_rows(c.batch_rows)
                .with_memory(memory)
                .with_spill_dir(dir.path()),
        )
        .unwrap_or_else(|e| panic!("{op:?} {mode} p={p} memory={memory}: {e}"));
    assert_eq!(
        m.memory_reserved_at_end, 0,
        "{op:?} {mode} p={p} memory={memory}: the pool ends at zero"
    );
    let left_over: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        left_over.is_empty(),
        "{op:?} {mode} p={p} memory={memory}: spill files remain: {left_over:?}"
    );
    let (rows, schema) = fold(&out.batches(), how);
    (rows, schema, m)
}

/// Int64 columns `names` of every row, sorted.
fn int_rows(batches: &[RecordBatch], names: &[&str]) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<_> = names
            .iter()
            .map(|n| {
                arrow_cast::cast(b.column_by_name(n).unwrap(), &DataType::Int64)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .clone()
            })
            .collect();
        for r in 0..b.num_rows() {
            out.push(cols.iter().map(|c| c.value(r)).collect());
        }
    }
    out.sort();
    out
}

/// The brute-force answer for `op`, as sorted Int64 rows of the named
/// output columns, if one is cheap.
fn oracle(op: Op, left: &[Split], right: &[Split]) -> Option<(Vec<&'static str>, Vec<Vec<i64>>)> {
    let per_row = |splits: &[Split]| admitted_and_late_by(splits, DELAY, 0, &|t| t).0;
    match op {
        Op::Tumbling => {
            let end = |t: i64| t - t.rem_euclid(1000) + 999;
            let (rows, _) = admitted_and_late_by(left, DELAY, 0, &end);
            let mut w: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
            for r in rows {
                let e = w.entry((r.key, r.ts - r.ts.rem_euclid(1000))).or_default();
                e.0 += 1;
                e.1 += r.value;
            }
            let rows = w.into_iter().map(|((k, s), (n, t))| vec![k, s, n, t]);
            Some((vec!["key", "window_start", "n", "total"], rows.collect()))
        }
        Op::GroupAggregate => {
            let mut g: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
            for r in per_row(left) {
                let e = g.entry(r.key).or_default();
                e.0 += 1;
                e.1 += r.value;
            }
            let rows = g.into_iter().map(|(k, (n, t))| vec![k, n, t]);
            Some((vec!["key", "n", "total"], rows.collect()))
        }
        Op::Process => {
            let mut by_key: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
            for r in per_row(left) {
                by_key.entry(r.key).or_default().push(r);
            }
            let mut out = Vec::new();
            for (k, mut rows) in by_key {
                rows.sort_by_key(|r| (r.ts, r.value));
                let mut sum = 0;
                for r in rows {
                    sum += r.value;
                    out.push(vec![k, r.ts, sum]);
                }
            }
            out.sort();
            Some((vec!["key", "ts", "running"], out))
        }
        Op::RegularJoin(JoinType::Inner) => {
            let mut right_of: HashMap<i64, Vec<Row>> = HashMap::new();
            for r in per_row(right) {
                right_of.entry(r.key).or_default().push(r);
            }
            let mut out = Vec::new();
            for l in per_row(left) {
                for r in right_of.get(&l.key).into_iter().flatten() {
                    out.push(vec![l.key, l.ts, l.value, r.ts, r.value]);
                }
            }
            out.sort();
            Some((vec!["key", "ts", "value", "right_ts", "right_value"], out))
        }
        _ => None,
    }
}

/// Runs `op` unconstrained (batch, parallelism 1) and under the case's
/// budget in both modes at parallelism 1 and 3; all must agree, and agree
/// with the oracle where there is one.
fn check(op: Op, c: &Case) -> Result<(), TestCaseError> {
    let left = splits_of(c, 1);
    let right = splits_of(c, 2);
    let (want, schema, free) = run(op, c, &left, &right, ExecMode::Batch, 1, usize::MAX);
    let expected = oracle(op, &left, &right);
    if let Some((columns, rows)) = &expected {
        prop_assert_eq!(
            &int_rows(&want, columns),
            rows,
            "{:?} unconstrained vs the oracle",
            op
        );
    }
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 3] {
            let (got, _, m) = run(op, c, &left, &right, mode, p, c.budget);
            let what = format!("{op:?} {mode} p={p} budget={} {c:?}", c.budget);
            // the pool lets a consumer over its share finish its step (until
            // its next sync), never grow without bound
            prop_assert!(
                m.peak_memory <= 2 * c.budget as u64,
                "{}: peak {}",
                what,
                m.peak_memory
            );
            if free.peak_memory > 2 * c.budget as u64 && mode == ExecMode::Batch {
                prop_assert!(m.spilled_bytes > 0, "{}: nothing spilled", what);
            }
            if let Some(schema) = &schema {
                if let Err(e) = same_rows(&got, &want, schema, 1e-9) {
                    return Err(TestCaseError::fail(format!("{what}: {e}")));
                }
            } else {
                prop_assert!(got.iter().all(|b| b.num_rows() == 0), "{}", what);
            }
            if let Some((columns, rows)) = &expected {
                prop_assert_eq!(&int_rows(&got, columns), rows, "{} vs the oracle", what);
            }
        }
    }
    Ok(())
}

fn join_type() -> impl Strategy<Value = JoinType> {
    prop::sample::select(vec![
        JoinType::Inner,
        JoinType::Left,
        JoinType::Right,
        JoinType::Full,
    ])
}

/// Two cases per operator (CI's budget); `SPILL_FUZZ_CASES=N` runs more.
/// The cases come from a fixed seed, so a run is reproducible and CI tests
/// the same cases every time; `SPILL_FUZZ_SEED=random` explores new ones
/// (the seed is printed, and a failure's log shows it) and
/// `SPILL_FUZZ_SEED=N` replays seed `N`.
fn config() -> ProptestConfig {
    let cases = std::env::var("SPILL_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let seed = match std::env::var("SPILL_FUZZ_SEED").as_deref() {
        Err(_) => 15,
        Ok("random") => {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(std::process::id())
        }
        Ok(n) => n
            .parse()
            .expect("SPILL_FUZZ_SEED is unset, `random` or a number"),
    };
    eprintln!("SPILL_FUZZ_SEED={seed} SPILL_FUZZ_CASES={cases}");
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
        fn tumbling_window(c in case()) {
        check(Op::Tumbling, &c)?;
    }

    #[test]
        fn sliding_window(c in case()) {
        check(Op::Sliding, &c)?;
    }

    #[test]
        fn cumulative_window(c in case()) {
        check(Op::Cumulative, &c)?;
    }

    #[test]
    fn session_window(c in case()) {
        check(Op::Session, &c)?;
    }

    #[test]
    fn count_window(c in case()) {
        check(Op::CountWindow, &c)?;
    }

    #[test]
    fn group_aggregate(c in case()) {
        check(Op::GroupAggregate, &c)?;
    }

    #[test]
    fn cascaded_window_aggregate(c in case()) {
        check(Op::Cascaded, &c)?;
    }

    #[test]
    fn process_function(c in case()) {
        check(Op::Process, &c)?;
    }

    #[test]
    fn interval_join(c in case(), ty in join_type()) {
        check(Op::IntervalJoin(ty), &c)?;
    }

    #[test]
    fn window_join(c in case(), kind in 0u8..4, ty in join_type()) {
        check(Op::WindowJoin(kind, ty), &c)?;
    }

    #[test]
    fn regular_join(c in case(), ty in join_type()) {
        check(Op::RegularJoin(ty), &c)?;
    }

    #[test]
    fn regular_join_with_ttl(c in case(), ty in join_type()) {
        check(Op::RegularTtlJoin(ty), &c)?;
    }

    #[test]
        fn same_window_join_of_window_aggregates(c in case()) {
        check(Op::SameWindowJoin, &c)?;
    }
}
