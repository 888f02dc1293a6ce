//! Window state far beyond the memory budget spills to sorted runs on disk
//! and is merged back when windows fire: the output equals the unlimited
//! run, spill files are written, the pool ends at zero and no file remains.

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use std::time::Duration;
use weir::compare::same_rows;
use weir::time::Window;
use weir::{Agg, ExecConfig, ExecMode, Job, JobMetrics, WatermarkStrategy};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// 3000 keys x 40 one-second windows, rows shuffled in time within each
/// split; the watermark delay (1 h) keeps every window open to the end.
fn input() -> Vec<Vec<RecordBatch>> {
    (0..4)
        .map(|split: i64| {
            (0..30)
                .map(|b: i64| {
                    let ids: Vec<i64> = (0..4000).map(|i| (b * 4000 + i) * 4 + split).collect();
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| (i * 7919) % 3000),
                            )),
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| (i * 104_729) % 40_000),
                            )),
                            Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i % 13))),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect()
}

fn run(
    window: Window,
    mode: ExecMode,
    memory: usize,
    spill_dir: &std::path::Path,
) -> (Vec<RecordBatch>, SchemaRef, JobMetrics) {
    let job = Job::new();
    let windows = job
        .from_batches(schema(), input())
        .unwrap()
        .assign_timestamps(
            "t",
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(3600)),
        )
        .unwrap()
        .key_by(["k"])
        .unwrap()
        .window(window)
        .aggregate([
            Agg::count().alias("n"),
            Agg::sum("v"),
            Agg::avg("v"),
            Agg::min("v"),
            Agg::count_distinct("v").alias("distinct_v"),
        ])
        .unwrap();
    let schema = windows.schema().clone();
    let out = windows.collect().unwrap();
    let m = job
        .run(
            &ExecConfig::new(mode)
                .with_parallelism(2)
                .with_memory(memory)
                .with_spill_dir(spill_dir),
        )
        .unwrap();
    (out.batches(), schema, m)
}

#[test]
fn window_and_session_state_ten_times_the_budget_spills_and_matches_the_unlimited_run() {
    let budget = 1 << 20;
    for window in [
        Window::tumbling(Duration::from_secs(1)),
        Window::sliding(Duration::from_secs(2), Duration::from_secs(1)),
        // ~100 sessions per key, merging across spills
        Window::session(Duration::from_millis(100)),
    ] {
        for mode in [ExecMode::Pipelined, ExecMode::Batch] {
            let dir = tempfile::tempdir().unwrap();
            let (want, schema, free) = run(window, mode, usize::MAX, dir.path());
            assert!(
                free.peak_memory >= 10 * budget as u64,
                "{mode}: the state must be at least 10x the budget, was {}",
                free.peak_memory
            );
            let (got, _, m) = run(window, mode, budget, dir.path());
            assert!(
                m.spill_files > 0 && m.spilled_bytes > 0,
                "{mode}: state was spilled: {m:?}"
            );
            assert_eq!(m.memory_reserved_at_end, 0, "{mode}: pool back to zero");
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(left.is_empty(), "{mode}: no spill file remains: {left:?}");
            same_rows(&got, &want, &schema, 1e-9)
                .unwrap_or_else(|e| panic!("{window:?} {mode}: {e}"));
            let windows: usize = got.iter().map(|b| b.num_rows()).sum();
            assert!(windows >= 3000 * 40, "{windows}");
        }
    }
}

/// Count windows buffer rows until the watermark passes them; with the
/// watermark held back, the buffer holds the whole input and spills.
#[test]
fn count_window_buffers_spill_and_match_the_unlimited_run() {
    let budget = 1 << 20;
    let run = |memory: usize, mode: ExecMode, dir: &std::path::Path| {
        let job = Job::new();
        // 300 keys: the windows' own state (5 kept rows per key) is small and
        // fits; the rows waiting for the watermark are what outgrows the budget
        let windows = job
            .from_batches(schema(), input())
            .unwrap()
            .assign_timestamps(
                "t",
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(3600)),
            )
            .unwrap()
            .with_column("k", weir::col("k").modulo(weir::lit(300i64)))
            .unwrap()
            .key_by(["k"])
            .unwrap()
            .count_window_sliding(5, 2)
            .aggregate([
                Agg::count().alias("n"),
                Agg::sum("v"),
                Agg::first("v"),
                Agg::last("v"),
            ])
            .unwrap();
        let schema = windows.schema().clone();
        let out = windows.collect().unwrap();
        let m = job
            .run(
                &ExecConfig::new(mode)
                    .with_parallelism(2)
                    .with_memory(memory)
                    .with_spill_dir(dir),
            )
            .unwrap();
        (out.batches(), schema, m)
    };
    for mode in [ExecMode::Pipelined, ExecMode::Batch] {
        let dir = tempfile::tempdir().unwrap();
        let (want, schema, free) = run(usize::MAX, mode, dir.path());
        if mode == ExecMode::Pipelined {
            assert!(
                free.peak_memory >= 10 * budget as u64,
                "buffered rows are 10x the budget: {}",
                free.peak_memory
            );
        }
        let (got, _, m) = run(budget, mode, dir.path());
        assert!(m.spill_files > 0, "{mode}: {m:?}");
        assert_eq!(m.memory_reserved_at_end, 0, "{mode}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{mode}");
        same_rows(&got, &want, &schema, 0.0).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(got.iter().map(|b| b.num_rows()).sum::<usize>() > 100_000);
    }
}

/// A keyed process function's waiting rows spill the same way: a running
/// count per key gives the same rows under a 1 MiB budget as without one.
#[test]
fn process_function_buffers_spill_and_match_the_unlimited_run() {
    use arrow_array::cast::AsArray;
    use weir::operators::{KeyRow, ProcessContext, ProcessFn};
    let out_schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("running", DataType::Int64, false),
    ]));
    let run = |memory: usize, dir: &std::path::Path| {
        let job = Job::new();
        let s = out_schema.clone();
        let out = job
            .from_batches(schema(), input())
            .unwrap()
            .assign_timestamps(
                "t",
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(3600)),
            )
            .unwrap()
            .with_column("k", weir::col("k").modulo(weir::lit(300i64)))
            .unwrap()
            .key_by(["k"])
            .unwrap()
            .process(out_schema.clone(), move || {
                let s = s.clone();
                ProcessFn::new(
                    move |key: &KeyRow,
                          rows: &RecordBatch,
                          n: &mut i64,
                          ctx: &mut ProcessContext| {
                        let k = key
                            .columns()
                            .column(0)
                            .as_primitive::<arrow_array::types::Int64Type>()
                            .value(0);
                        let t = ctx.time();
                        let running: Vec<i64> = (0..rows.num_rows())
                            .map(|_| {
                                *n += 1;
                                *n
                            })
                            .collect();
                        let m = running.len();
                        ctx.emit(RecordBatch::try_new(
                            s.clone(),
                            vec![
                                Arc::new(Int64Array::from(vec![k; m])),
                                Arc::new(Int64Array::from(vec![t; m])),
                                Arc::new(Int64Array::from(running)),
                            ],
                        )?)
                    },
                )
            })
            .unwrap()
            .collect()
            .unwrap();
        let m = job
            .run(
                &ExecConfig::pipelined()
                    .with_parallelism(2)
                    .with_memory(memory)
                    .with_spill_dir(dir),
            )
            .unwrap();
        (out.batches(), m)
    };
    let dir = tempfile::tempdir().unwrap();
    let (want, _) = run(usize::MAX, dir.path());
    let (got, m) = run(1 << 20, dir.path());
    assert!(m.spill_files > 0, "{m:?}");
    assert_eq!(m.memory_reserved_at_end, 0);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    same_rows(&got, &want, &out_schema, 0.0).unwrap();
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 480_000);
}

/// Keyed process-function state (a list of every value a key saw) ten
/// times the budget spills to the state log and comes back per key: each
/// key's final list length equals its row count in the input, and the
/// output equals the unlimited run, in both modes.
#[test]
fn process_function_state_ten_times_the_budget_spills_and_matches_the_unlimited_run() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use std::collections::HashMap;
    use weir::operators::{KeyRow, KeyedProcessFunction, ProcessContext};
    let out_schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("seen", DataType::Int64, false),
        Field::new("sum", DataType::Int64, false),
    ]));
    struct Seen(SchemaRef);
    impl KeyedProcessFunction for Seen {
        /// The values seen, and a float that is NaN once the key ran (it
        /// must survive the spill bit for bit).
        type State = (Vec<i64>, f64);
        fn state_size(&self, state: &(Vec<i64>, f64)) -> usize {
            32 + 8 * state.0.capacity()
        }
        fn on_rows(
            &mut self,
            key: &KeyRow,
            rows: &RecordBatch,
            state: &mut (Vec<i64>, f64),
            ctx: &mut ProcessContext,
        ) -> weir::Result<()> {
            assert!(state.0.is_empty() || state.1.is_nan(), "NaN came back");
            state.1 = f64::NAN;
            let state = &mut state.0;
            let k = key.columns().column(0).as_primitive::<Int64Type>().value(0);
            let v = rows
                .column_by_name("v")
                .unwrap()
                .as_primitive::<Int64Type>();
            let (mut seen, mut sum) = (Vec::new(), Vec::new());
            let mut total: i64 = state.iter().sum();
            for x in v.values() {
                state.push(*x);
                total += x;
                seen.push(state.len() as i64);
                sum.push(total);
            }
            let n = seen.len();
            ctx.emit(RecordBatch::try_new(
                self.0.clone(),
                vec![
                    Arc::new(Int64Array::from(vec![k; n])),
                    Arc::new(Int64Array::from(seen)),
                    Arc::new(Int64Array::from(sum)),
                ],
            )?)
        }
    }
    let run = |memory: usize, mode: ExecMode, dir: &std::path::Path| {
        let job = Job::new();
        let s = out_schema.clone();
        let out = job
            .from_batches(schema(), input())
            .unwrap()
            .assign_timestamps(
                "t",
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(3600)),
            )
            .unwrap()
            // 3000 keys of 160 values each: the lists dwarf the log's index
            .key_by(["k"])
            .unwrap()
            .process(out_schema.clone(), move || Seen(s.clone()))
            .unwrap()
            .collect()
            .unwrap();
        let m = job
            .run(
                &ExecConfig::new(mode)
                    .with_parallelism(2)
                    .with_memory(memory)
                    .with_spill_dir(dir),
            )
            .unwrap();
        (out.batches(), m)
    };
    // oracle: rows per key, straight from the input
    let mut rows_per_key: HashMap<i64, i64> = HashMap::new();
    for b in input().iter().flatten() {
        for k in b.column(0).as_primitive::<Int64Type>().values() {
            *rows_per_key.entry(*k).or_default() += 1;
        }
    }
    let budget = 512 << 10;
    for mode in [ExecMode::Pipelined, ExecMode::Batch] {
        let dir = tempfile::tempdir().unwrap();
        let (want, free) = run(usize::MAX, mode, dir.path());
        assert!(
            free.peak_memory >= 10 * budget as u64,
            "{mode}: state and rows are 10x the budget: {}",
            free.peak_memory
        );
        let (got, m) = run(budget, mode, dir.path());
        assert!(m.spill_files > 0, "{mode}: {m:?}");
        assert_eq!(m.memory_reserved_at_end, 0, "{mode}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{mode}");
        same_rows(&got, &want, &out_schema, 0.0).unwrap_or_else(|e| panic!("{mode}: {e}"));
        let mut last: HashMap<i64, i64> = HashMap::new();
        for b in &got {
            let k = b.column(0).as_primitive::<Int64Type>();
            let seen = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let e = last.entry(k.value(i)).or_default();
                *e = (*e).max(seen.value(i));
            }
        }
        assert_eq!(
            last, rows_per_key,
            "{mode}: every key's list holds all its rows"
        );
    }
}

/// Many keys with tiny states: what stays in memory after a spill must not
/// grow with the number of spilled keys (a per-key index of 48 bytes for
/// 40,000 keys is 3.7x this budget). Running sums per key, against a
/// brute-force oracle, in both modes at parallelism 1 and 3.
#[test]
fn process_function_with_more_spilled_keys_than_an_index_of_them_fits() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use std::collections::BTreeMap;
    use weir::operators::{KeyRow, ProcessContext, ProcessFn};
    let out_schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("running", DataType::Int64, false),
    ]));
    const KEYS: i64 = 40_000;
    // two rows per key, the second an hour later, so every key's state
    // lives until the end and is spilled in between
    let batches: Vec<Vec<RecordBatch>> = (0..2)
        .map(|split: i64| {
            (0..8)
                .map(|b: i64| {
                    let ids: Vec<i64> = (0..KEYS / 8).map(|i| b * (KEYS / 8) + i).collect();
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| (i * 7919) % KEYS),
                            )),
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| split * 3_600_000 + i),
                            )),
                            Arc::new(Int64Array::from_iter_values(
                                ids.iter().map(|i| i % 97 + split),
                            )),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect();
    let mut want: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
    let mut rows: Vec<(i64, i64, i64)> = Vec::new();
    for b in batches.iter().flatten() {
        let c = |i: usize| b.column(i).as_primitive::<Int64Type>().values().to_vec();
        let (k, t, v) = (c(0), c(1), c(2));
        rows.extend((0..k.len()).map(|i| (t[i], k[i], v[i])));
    }
    rows.sort();
    for (_, k, v) in rows {
        let s = sums.entry(k).or_default();
        *s += v;
        *want.entry((k, *s)).or_default() += 1;
    }
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let job = Job::new();
            let s = out_schema.clone();
            let out = job
                .from_batches(schema(), batches.clone())
                .unwrap()
                .assign_timestamps(
                    "t",
                    WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1)),
                )
                .unwrap()
                .key_by(["k"])
                .unwrap()
                .process(out_schema.clone(), move || {
                    let s = s.clone();
                    ProcessFn::new(
                        move |key: &KeyRow,
                              rows: &RecordBatch,
                              sum: &mut i64,
                              ctx: &mut ProcessContext| {
                            let k = key.columns().column(0).as_primitive::<Int64Type>().value(0);
                            let running: Vec<i64> = rows
                                .column(2)
                                .as_primitive::<Int64Type>()
                                .values()
                                .iter()
                                .map(|v| {
                                    *sum += v;
                                    *sum
                                })
                                .collect();
                            ctx.emit(RecordBatch::try_new(
                                s.clone(),
                                vec![
                                    Arc::new(Int64Array::from(vec![k; running.len()])),
                                    Arc::new(Int64Array::from(running)),
                                ],
                            )?)
                        },
                    )
                })
                .unwrap()
                .collect()
                .unwrap();
            let m = job
                .run(
                    &ExecConfig::new(mode)
                        .with_parallelism(p)
                        .with_memory(512 << 10)
                        .with_spill_dir(dir.path()),
                )
                .unwrap_or_else(|e| panic!("{mode} p={p}: {e}"));
            assert!(m.spill_files > 0, "{mode} p={p}: spilled");
            assert_eq!(m.memory_reserved_at_end, 0, "{mode} p={p}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            let mut got: BTreeMap<(i64, i64), usize> = BTreeMap::new();
            for b in out.batches() {
                let k = b.column(0).as_primitive::<Int64Type>();
                let r = b.column(1).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    *got.entry((k.value(i), r.value(i))).or_default() += 1;
                }
            }
            assert_eq!(got, want, "{mode} p={p}: the running sums");
        }
    }
}

/// Panics with the first differences if `got` is not `want`.
fn same_firings<K: Ord + std::fmt::Debug>(
    got: &std::collections::BTreeMap<K, usize>,
    want: &std::collections::BTreeMap<K, usize>,
    what: &str,
) {
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, n)| got.get(*k) != Some(*n))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|(k, n)| want.get(*k) != Some(*n))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} firings, {} expected; missing {missing:?}, unexpected {extra:?}",
        got.values().sum::<usize>(),
        want.values().sum::<usize>()
    );
}

/// Fires every 3 rows (keeping the rows), and fires and purges what is
/// left at the final watermark: it watches watermarks, so spilled windows
/// are visited on them too.
#[derive(Debug)]
struct EveryThreeThenFlush;

impl weir::operators::WindowTrigger for EveryThreeThenFlush {
    fn on_row(&self, count: u64, _time: i64) -> weir::operators::TriggerAction {
        if count.is_multiple_of(3) {
            weir::operators::TriggerAction::Fire
        } else {
            weir::operators::TriggerAction::Continue
        }
    }
    fn on_watermark(&self, _count: u64, watermark: i64) -> weir::operators::TriggerAction {
        if watermark == i64::MAX {
            weir::operators::TriggerAction::FireAndPurge
        } else {
            weir::operators::TriggerAction::Continue
        }
    }
}

/// Many keys whose count-window state alone (the rows a sliding or
/// evicting window keeps, the accumulators of a tumbling or global window)
/// is over 10x the budget: it spills to the state log and comes back when
/// a key is next fed or a watermark visits it. Every window is checked
/// against a brute-force oracle, in both modes at parallelism 1 and 3.
#[test]
fn count_window_state_ten_times_the_budget_spills_and_matches_an_oracle() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use std::collections::BTreeMap;
    use weir::operators::WindowTrigger;
    const KEYS: i64 = 8_000;
    const ROUNDS: i64 = 6;
    let budget = 256 << 10;
    // one row per key and round, rounds an hour apart (the watermark, 60 s
    // behind, releases a round while the next comes in), keys shuffled
    // within a round (20 s of event time)
    let value = |k: i64, r: i64| (k * 31 + r * 7) % 1000;
    let batches: Vec<Vec<RecordBatch>> = (0..2)
        .map(|split: i64| {
            (0..ROUNDS)
                .flat_map(|r| (0..4).map(move |b| (r, b)))
                .map(|(r, b)| {
                    let ids: Vec<i64> = (0..KEYS / 8)
                        .map(|i| (b * 2 + split) * (KEYS / 8) + i)
                        .collect();
                    let k: Vec<i64> = ids.iter().map(|i| (i * 7919) % KEYS).collect();
                    RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from(k.clone())),
                            Arc::new(Int64Array::from_iter_values(
                                k.iter().map(|k| r * 3_600_000 + k),
                            )),
                            Arc::new(Int64Array::from_iter_values(k.iter().map(|k| value(*k, r)))),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect();
    // (key, window_start, window_end, count, sum) of every firing
    type Firing = (i64, i64, i64, i64, i64);
    let window = |k: i64, rows: std::ops::Range<i64>| -> Firing {
        let (first, last) = (rows.start, rows.end - 1);
        let sum = rows.clone().map(|r| value(k, r)).sum();
        (
            k,
            first * 3_600_000 + k,
            last * 3_600_000 + k + 1,
            rows.end - rows.start,
            sum,
        )
    };
    enum Spec {
        Sliding,
        Tumbling,
        Global(Option<u64>),
    }
    let oracle = |spec: &Spec| -> BTreeMap<Firing, usize> {
        let mut want = BTreeMap::new();
        for k in 0..KEYS {
            let mut start = 0;
            for i in 1..=ROUNDS {
                let fired = match spec {
                    // countWindow(4, 2): the last 4 rows every 2 rows
                    Spec::Sliding => (i % 2 == 0).then(|| window(k, (i - 4).max(0)..i)),
                    // countWindow(4): rows 0..4; rows 4 and 5 never fire
                    Spec::Tumbling => (i % 4 == 0).then(|| window(k, i - 4..i)),
                    Spec::Global(keep) => {
                        let fire = (i - start) % 3 == 0;
                        let w = fire.then(|| window(k, start..i));
                        if fire {
                            if let Some(keep) = keep {
                                start = start.max(i - *keep as i64);
                            }
                        }
                        w
                    }
                };
                if let Some(f) = fired {
                    *want.entry(f).or_default() += 1;
                }
            }
            if let Spec::Global(_) = spec {
                *want.entry(window(k, start..ROUNDS)).or_default() += 1;
            }
        }
        want
    };
    let run = |spec: &Spec, mode: ExecMode, p: usize, memory: usize, dir: &std::path::Path| {
        let job = Job::new();
        let keyed = job
            .from_batches(schema(), batches.clone())
            .unwrap()
            .assign_timestamps(
                "t",
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(60)),
            )
            .unwrap()
            .key_by(["k"])
            .unwrap();
        let windows = match spec {
            Spec::Sliding => keyed.count_window_sliding(4, 2),
            Spec::Tumbling => keyed.count_window(4),
            Spec::Global(keep) => {
                let trigger: Arc<dyn WindowTrigger> = Arc::new(EveryThreeThenFlush);
                keyed.global_window(trigger, *keep)
            }
        };
        let out = windows
            .aggregate([
                Agg::count().alias("n"),
                Agg::sum("v"),
                Agg::count_distinct("v").alias("dv"),
            ])
            .unwrap()
            .collect()
            .unwrap();
        let m = job
            .run(
                &ExecConfig::new(mode)
                    .with_parallelism(p)
                    .with_memory(memory)
                    .with_spill_dir(dir),
            )
            .unwrap_or_else(|e| panic!("{mode} p={p}: {e}"));
        let mut got: BTreeMap<Firing, usize> = BTreeMap::new();
        for b in out.batches() {
            let c = |i: usize| b.column(i).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let f = (
                    c(0).value(i),
                    c(1).value(i),
                    c(2).value(i),
                    c(3).value(i),
                    c(4).value(i),
                );
                *got.entry(f).or_default() += 1;
            }
        }
        (got, m)
    };
    for (name, spec) in [
        ("sliding", Spec::Sliding),
        ("tumbling", Spec::Tumbling),
        ("global", Spec::Global(None)),
        ("global evicting", Spec::Global(Some(2))),
    ] {
        let want = oracle(&spec);
        let dir = tempfile::tempdir().unwrap();
        let (free, m) = run(&spec, ExecMode::Pipelined, 1, usize::MAX, dir.path());
        same_firings(&free, &want, &format!("{name}: unlimited run"));
        assert!(
            m.peak_memory >= 10 * budget as u64,
            "{name}: the windows' state is 10x the budget: {}",
            m.peak_memory
        );
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            for p in [1, 3] {
                let (got, m) = run(&spec, mode, p, budget, dir.path());
                assert!(m.spill_files > 0, "{name} {mode} p={p}: spilled: {m:?}");
                assert_eq!(m.memory_reserved_at_end, 0, "{name} {mode} p={p}");
                assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
                same_firings(&got, &want, &format!("{name} {mode} p={p}"));
            }
        }
    }
}
