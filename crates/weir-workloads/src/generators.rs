//! Rate-controlled live generators: vehicle-speed sensors (the seed's OBD
//! readings) and Nexmark persons, auctions and bids, as live sources.
//!
//! Owns [`GeneratorSpec`] and its source. Rows are a function of the seed,
//! the start time and the parallelism only; pacing decides *when* they are
//! emitted, never *which*, so a run at `max` speed and a real-time run give
//! the same results. May use `graph`, `connectors`, `operators`, `time`, `workloads::nexmark`
//! and `workloads::vehicles`.
//!
//! **Checkpoints** (state `generator`): the start time, the parallelism,
//! the rows of the generated sequence emitted so far (a batch held for
//! pacing is not emitted yet) and the watermark clock. A restore rebuilds
//! the sequence from the saved start and skips the emitted rows (it
//! regenerates them: restore time grows with the position), so it emits
//! exactly what the original would have; pacing restarts at the first row
//! emitted after the restore, at the wall-clock time it is emitted. The
//! rows of a subtask depend on the parallelism, so a restore at another
//! parallelism is refused.

use super::nexmark::{auction_schema, bid_schema, person_schema, NexmarkConfig, SplitGenerator};
use super::vehicles::{obd_schema, true_speed};
use super::Rng;
use arrow_array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_connectors::live::{ClockState, PartitionClock};
use weir_connectors::replay::{HeldBatch, Pacer, Release, ReplaySpeed};
use weir_core::error::{Error, Result};
use weir_core::operator::{Ctx, Output, Source, SourcePoll, TaskInfo};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::{event_times, WatermarkStrategy};
use weir_engine::graph::{Job, Stream};

/// Which events a generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratorKind {
    /// OBD speed readings: 3 per second per vehicle, up to `max_delay_ms` late.
    Vehicles {
        /// Number of vehicles.
        vehicles: usize,
    },
    /// Nexmark persons (`0`), auctions (`1`) or bids (`2`) of one event stream.
    Nexmark {
        /// 0 persons, 1 auctions, 2 bids.
        stream: usize,
    },
}

impl std::str::FromStr for GeneratorKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vehicles" | "obd" => Ok(GeneratorKind::Vehicles { vehicles: 100 }),
            "nexmark-persons" | "persons" => Ok(GeneratorKind::Nexmark { stream: 0 }),
            "nexmark-auctions" | "auctions" => Ok(GeneratorKind::Nexmark { stream: 1 }),
            "nexmark-bids" | "bids" | "nexmark" => Ok(GeneratorKind::Nexmark { stream: 2 }),
            _ => Err(Error::option(
                "generator",
                format!("`{s}` is not a generator: use vehicles, nexmark-persons, nexmark-auctions or nexmark-bids"),
            )),
        }
    }
}

/// A live generator: what to make, how fast, for how long.
#[derive(Debug, Clone)]
pub struct GeneratorSpec {
    /// What to generate.
    pub kind: GeneratorKind,
    /// Stop after this many events (all streams, for Nexmark); `None`: run until stopped.
    pub events: Option<u64>,
    /// Nexmark: events per second of event time (vehicles: 3 per vehicle).
    pub events_per_second: u64,
    /// How fast event time passes: real time by default, `Max` for benchmarks.
    pub speed: ReplaySpeed,
    /// Event time of the first event (epoch ms); `None`: the wall clock at build time.
    pub start_ms: Option<i64>,
    /// Arrival delay bound (the watermark delay).
    pub max_delay_ms: i64,
    /// Random seed.
    pub seed: u64,
}

impl GeneratorSpec {
    /// A generator of `kind` with defaults: unbounded, real time, 10 000
    /// Nexmark events/s, up to 1 s delay.
    pub fn new(kind: GeneratorKind) -> Self {
        GeneratorSpec {
            kind,
            events: None,
            events_per_second: 10_000,
            speed: ReplaySpeed::Times(1.0),
            start_ms: None,
            max_delay_ms: 1000,
            seed: 42,
        }
    }

    /// The schema of the generated rows.
    pub fn schema(&self) -> SchemaRef {
        match self.kind {
            GeneratorKind::Vehicles { .. } => obd_schema(),
            GeneratorKind::Nexmark { stream: 0 } => person_schema(),
            GeneratorKind::Nexmark { stream: 1 } => auction_schema(),
            GeneratorKind::Nexmark { .. } => bid_schema(),
        }
    }

    /// The event-time column.
    pub fn time_column(&self) -> &'static str {
        match self.kind {
            GeneratorKind::Vehicles { .. } => "event_time",
            GeneratorKind::Nexmark { .. } => "date_time",
        }
    }

    /// A stream of generated rows with event time and per-subtask
    /// watermarks (bounded out-of-orderness of `max_delay_ms`).
    ///
    /// # Examples
    /// ```
    /// use weir::workloads::generators::{GeneratorKind, GeneratorSpec};
    /// use weir::connectors::replay::ReplaySpeed;
    /// use weir::{ExecConfig, Job};
    /// let mut spec = GeneratorSpec::new(GeneratorKind::Vehicles { vehicles: 10 });
    /// spec.events = Some(3_000);
    /// spec.speed = ReplaySpeed::Max;
    /// let job = Job::new();
    /// let out = spec.stream(&job)?.collect()?;
    /// job.run(&ExecConfig::pipelined().with_parallelism(2))?;
    /// assert_eq!(out.num_rows(), 3_000);
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn stream(&self, job: &Job) -> Result<Stream> {
        let mut spec = self.clone();
        spec.start_ms = Some(spec.start_ms.unwrap_or_else(weir_core::operator::now_ms));
        let spec = Arc::new(spec);
        let name = match self.kind {
            GeneratorKind::Vehicles { .. } => "vehicle_generator",
            GeneratorKind::Nexmark { stream: 0 } => "nexmark_persons",
            GeneratorKind::Nexmark { stream: 1 } => "nexmark_auctions",
            GeneratorKind::Nexmark { .. } => "nexmark_bids",
        };
        let s2 = spec.clone();
        let stream = job.source(
            name,
            spec.schema(),
            Arc::new(move |info: &TaskInfo| Ok(Box::new(GeneratorSource::new(&s2, info)) as _)),
        );
        stream.with_source_event_time(spec.time_column())
    }
}

type Chunks = Box<dyn FnMut() -> Option<Vec<RecordBatch>> + Send>;

/// The state entry of a generator.
const STATE: &str = "generator";
/// The one partition of a generator's clock.
const PARTITION: &str = "generator";

/// What a generator subtask saves in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedGenerator {
    start: i64,
    parallelism: usize,
    /// Rows of the generated sequence emitted.
    emitted: u64,
    clock: ClockState,
}

/// One subtask of a generator.
struct GeneratorSource {
    // config
    spec: GeneratorSpec,
    info: TaskInfo,
    start: i64,
    time_column: usize,
    // state
    chunks: Chunks,
    /// Rows of the generated sequence emitted (before the late filter).
    emitted: u64,
    queue: VecDeque<RecordBatch>,
    clock: PartitionClock,
    pacer: Option<Pacer>,
    held: HeldBatch,
    done: bool,
}

/// The generated sequence of subtask `info` from event time `start`.
fn chunks(spec: &GeneratorSpec, info: &TaskInfo, start: i64) -> Chunks {
    match spec.kind {
        GeneratorKind::Vehicles { vehicles } => vehicle_chunks(spec, info, vehicles, start),
        GeneratorKind::Nexmark { stream } => {
            let config = NexmarkConfig {
                events: spec.events.unwrap_or(u64::MAX),
                events_per_second: spec.events_per_second.max(1),
                max_delay_ms: spec.max_delay_ms,
                splits: info.parallelism,
                seed: spec.seed,
            };
            let mut g = SplitGenerator::new(&config, info.subtask, info.parallelism, start);
            // about a tenth of a second of events per chunk
            let per_chunk = (config.events_per_second / 10).clamp(100, 100_000);
            Box::new(move || {
                if g.is_done() {
                    return None;
                }
                let [p, a, b] = g.next_chunk(per_chunk);
                Some([p, a, b].into_iter().nth(stream).unwrap_or_default())
            })
        }
    }
}

impl GeneratorSource {
    fn new(spec: &GeneratorSpec, info: &TaskInfo) -> Self {
        let start = spec.start_ms.unwrap_or(0);
        let chunks = chunks(spec, info, start);
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
            spec.max_delay_ms.max(0) as u64,
        ));
        let schema = spec.schema();
        GeneratorSource {
            spec: spec.clone(),
            info: info.clone(),
            start,
            time_column: schema
                .index_of(spec.time_column())
                .expect("generator schemas have their time column"),
            chunks,
            emitted: 0,
            queue: VecDeque::new(),
            clock: PartitionClock::new(strategy, 1),
            pacer: match spec.speed {
                ReplaySpeed::Max => None,
                ReplaySpeed::Times(f) => Some(Pacer::starting_at(f, start)),
            },
            held: HeldBatch::default(),
            done: false,
        }
    }

    fn emit(&mut self, batch: RecordBatch, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.emitted += batch.num_rows() as u64;
        let times = event_times(&batch, self.time_column, "generator")?;
        let batch = match self.clock.on_batch(0, &batch, &times)? {
            None => batch,
            Some(keep) => {
                // cannot happen by construction (delays stay within the bound)
                let late = (keep.len() - keep.true_count()) as u64;
                weir_core::operator::OperatorMetrics::add(&ctx.metrics().late_rows, late);
                arrow_select::filter::filter_record_batch(&batch, &keep)?
            }
        };
        out.emit(batch);
        if let Some(wm) = self.clock.advance() {
            out.emit_watermark(wm);
        }
        Ok(())
    }
}

impl Source for GeneratorSource {
    fn poll_next(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<SourcePoll> {
        if ctx.stop_requested() {
            return Ok(SourcePoll::Exhausted);
        }
        match self.held.poll() {
            Release::Nothing => {}
            Release::Waiting(nap) => {
                ctx.record_wait(nap);
                return Ok(SourcePoll::Ready);
            }
            Release::Due(batch) => {
                self.emit(batch, ctx, out)?;
                return Ok(SourcePoll::Ready);
            }
        }
        if self.queue.is_empty() && !self.done {
            match (self.chunks)() {
                Some(batches) => self
                    .queue
                    .extend(batches.into_iter().filter(|b| b.num_rows() > 0)),
                None => self.done = true,
            }
        }
        let Some(mut batch) = self.queue.pop_front() else {
            return Ok(if self.done {
                SourcePoll::Exhausted
            } else {
                SourcePoll::Ready
            });
        };
        if let Some(pacer) = self.pacer.as_mut() {
            // emit in slices of about 20 ms of wall time, so no row leaves
            // much before its time (a batch is due at its latest row)
            let times = event_times(&batch, self.time_column, "generator")?;
            let span = (20.0 * pacer.factor()).max(1.0) as i64;
            let cut = times
                .iter()
                .position(|&t| t > times[0].saturating_add(span))
                .unwrap_or(times.len());
            if cut < times.len() {
                self.queue
                    .push_front(batch.slice(cut, batch.num_rows() - cut));
                batch = batch.slice(0, cut);
            }
            if let Some(&last) = times[..cut].iter().max() {
                let due = pacer.due(last);
                if Instant::now() < due {
                    self.held.hold(batch, due);
                    return Ok(SourcePoll::Ready);
                }
            }
        }
        self.emit(batch, ctx, out)?;
        Ok(SourcePoll::Ready)
    }

    fn snapshot(&mut self, _ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        let saved = SavedGenerator {
            start: self.start,
            parallelism: self.info.parallelism,
            emitted: self.emitted,
            clock: self.clock.state(&[PARTITION.to_string()]),
        };
        state.put(STATE, &saved)
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let location = format!("generator `{}`", ctx.operator());
        if state.is_rescaled() {
            return Err(Error::Checkpoint {
                location,
                message: format!(
                    "a generator's rows depend on its parallelism: restore it at parallelism {}",
                    state.old_parallelism()
                ),
            });
        }
        let saved: SavedGenerator = state.value(STATE)?.ok_or_else(|| Error::Checkpoint {
            location: location.clone(),
            message: "the checkpoint has no generator position".into(),
        })?;
        self.start = saved.start;
        self.chunks = chunks(&self.spec, &self.info, saved.start);
        self.skip(saved.emitted);
        self.emitted = saved.emitted;
        self.clock
            .restore(&[PARTITION.to_string()], &[saved.clock], false);
        // pacing restarts at the first row emitted from here, now
        if let ReplaySpeed::Times(f) = self.spec.speed {
            self.pacer = Some(Pacer::new(f));
        }
        Ok(())
    }
}

impl GeneratorSource {
    /// Drops the first `rows` rows of the sequence (emitted before a restore).
    fn skip(&mut self, mut rows: u64) {
        self.queue.clear();
        self.done = false;
        while rows > 0 {
            let Some(batches) = (self.chunks)() else {
                self.done = true;
                return;
            };
            for b in batches.into_iter().filter(|b| b.num_rows() > 0) {
                let n = b.num_rows() as u64;
                if rows >= n {
                    rows -= n;
                } else {
                    let cut = rows as usize;
                    rows = 0;
                    self.queue.push_back(b.slice(cut, b.num_rows() - cut));
                }
            }
        }
    }
}

/// Vehicle readings in chunks of whole seconds of event time: the vehicles `v` with
/// `v % parallelism == subtask`, 3 readings a second each (two patterns, as
/// the seed describes), each arriving up to `max_delay_ms` late (90% within
/// 1 s), in arrival order within the chunk.
fn vehicle_chunks(spec: &GeneratorSpec, info: &TaskInfo, vehicles: usize, start: i64) -> Chunks {
    let mine: Vec<i64> = (0..vehicles as i64)
        .filter(|v| (*v as usize) % info.parallelism == info.subtask)
        .collect();
    let mut rng =
        Rng::new(spec.seed ^ (info.subtask as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // events of this subtask: its share of the total
    let limit = spec.events.map(|n| {
        let per_second = 3 * vehicles as u64;
        let seconds = n / per_second.max(1);
        let rest = n % per_second.max(1);
        // whole seconds for everyone, then the rest in vehicle order
        let mine_rest = mine
            .iter()
            .map(|&v| (rest as i64 - 3 * v).clamp(0, 3) as u64)
            .sum::<u64>();
        seconds * 3 * mine.len() as u64 + mine_rest
    });
    let max_delay = spec.max_delay_ms.max(0) as u64;
    // paced: one second of event time per chunk, so rows leave on time;
    // at max speed: chunks of about 8K rows
    let chunk_seconds = match spec.speed {
        ReplaySpeed::Times(_) => 1,
        ReplaySpeed::Max => (8192 / (3 * mine.len()).max(1)).max(1) as i64,
    };
    let mut second: i64 = 0;
    let mut made: u64 = 0;
    Box::new(move || {
        if limit.is_some_and(|l| made >= l) || mine.is_empty() {
            return None;
        }
        let mut rows: Vec<(i64, i64, i64, f64)> = Vec::new(); // (arrival, vehicle, time, speed)
        'chunk: for s in second..second + chunk_seconds {
            for &v in &mine {
                let base = start + s * 1000;
                let offsets = if rng.below(3) == 0 {
                    [0, 0, 500]
                } else {
                    [0, 333, 666]
                };
                for off in offsets {
                    if limit.is_some_and(|l| made >= l) {
                        break 'chunk;
                    }
                    let t = base + off;
                    let delay = if rng.unit() < 0.9 {
                        rng.below(max_delay.min(999) + 1)
                    } else {
                        rng.below(max_delay + 1)
                    } as i64;
                    let speed = (true_speed(v, s) + (rng.unit() - 0.5) * 2.0).max(0.0);
                    rows.push((t + delay, v, t, (speed * 100.0).round() / 100.0));
                    made += 1;
                }
            }
        }
        second += chunk_seconds;
        rows.sort_by_key(|r| r.0);
        let batch = RecordBatch::try_new(
            obd_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.2))
                        .with_timezone("UTC"),
                ),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
            ],
        )
        .expect("columns match obd_schema");
        Some(vec![batch])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_connectors::source_harness::{assert_every_cut, uninterrupted, Item, Running};
    use weir_core::state::SubtaskState;

    fn maker(spec: GeneratorSpec) -> impl Fn(&TaskInfo) -> Result<Box<dyn Source>> {
        move |info| Ok(Box::new(GeneratorSource::new(&spec, info)) as Box<dyn Source>)
    }

    fn spec(kind: GeneratorKind, events: u64, speed: ReplaySpeed) -> GeneratorSpec {
        let mut s = GeneratorSpec::new(kind);
        s.events = Some(events);
        s.events_per_second = 1_000;
        s.speed = speed;
        s.start_ms = Some(1_700_000_000_000);
        s.max_delay_ms = 300;
        s
    }

    #[test]
    fn a_restored_nexmark_generator_continues_exactly() {
        for stream in [0, 2] {
            let make = maker(spec(
                GeneratorKind::Nexmark { stream },
                2_000,
                ReplaySpeed::Max,
            ));
            let (all, polls) = uninterrupted(&make, 0, 1);
            assert!(polls > 5, "several chunks");
            assert!(all.iter().any(|i| matches!(i, Item::Wm(_))));
            for p in [1, 2] {
                assert_every_cut(&make, p);
            }
        }
    }

    #[test]
    fn a_restored_paced_vehicle_generator_continues_exactly() {
        // 10 vehicles, 30 readings a second: 40 s of event time at 2000x
        // (20 ms), sliced into ~40 s / (20 ms * 2000) = 1 slice a second
        let vehicles = GeneratorKind::Vehicles { vehicles: 10 };
        let make = maker(spec(vehicles, 1_200, ReplaySpeed::Times(2_000.0)));
        let (all, polls) = uninterrupted(&make, 0, 1);
        assert!(polls > 5, "sliced for pacing: {polls}");
        assert_eq!(
            all.iter().filter(|i| matches!(i, Item::Row(_))).count(),
            1_200
        );
        assert_every_cut(&make, 1);
        let fast = maker(spec(vehicles, 1_200, ReplaySpeed::Max));
        assert_every_cut(&fast, 2);
    }

    #[test]
    fn a_generator_refuses_a_restore_at_another_parallelism() {
        let make = maker(spec(
            GeneratorKind::Nexmark { stream: 2 },
            500,
            ReplaySpeed::Max,
        ));
        let states: Vec<SubtaskState> = (0..2)
            .map(|s| {
                let mut r = Running::new(&make, s, 2);
                r.poll_n(1, &mut Vec::new());
                r.snapshot()
            })
            .collect();
        let mut r = Running::new(&make, 0, 3);
        let err = r.restore(&Arc::new(states)).unwrap_err();
        assert!(err.to_string().contains("parallelism 2"), "{err}");
    }
}
