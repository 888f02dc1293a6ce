//! Rate-controlled live generators: vehicle-speed sensors (the seed's OBD
//! readings) and Nexmark persons, auctions and bids, as live sources.
//!
//! Owns [`GeneratorSpec`] and its source. Rows are a function of the seed,
//! the start time and the parallelism only; pacing decides *when* they are
//! emitted, never *which*, so a run at `max` speed and a real-time run give
//! the same results. May use `graph`, `operators`, `time`, `cli::nexmark`
//! and `cli::demo`.

use super::demo::{obd_schema, true_speed, Rng};
use super::nexmark::{auction_schema, bid_schema, person_schema, NexmarkConfig, SplitGenerator};
use crate::error::{Error, Result};
use crate::graph::{Job, Stream};
use crate::operator::{Ctx, Output, Source, SourcePoll, TaskInfo};
use crate::operators::live::PartitionClock;
use crate::operators::replay::{HeldBatch, Pacer, Release, ReplaySpeed};
use crate::time::{event_times, WatermarkStrategy};
use arrow_array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::SchemaRef;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// use weir::cli::generators::{GeneratorKind, GeneratorSpec};
    /// use weir::operators::replay::ReplaySpeed;
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
        spec.start_ms = Some(spec.start_ms.unwrap_or_else(crate::operator::now_ms));
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

/// One subtask of a generator.
struct GeneratorSource {
    // config
    time_column: usize,
    // state
    chunks: Chunks,
    queue: VecDeque<RecordBatch>,
    clock: PartitionClock,
    pacer: Option<Pacer>,
    held: HeldBatch,
    done: bool,
}

impl GeneratorSource {
    fn new(spec: &GeneratorSpec, info: &TaskInfo) -> Self {
        let start = spec.start_ms.unwrap_or(0);
        let chunks: Chunks = match spec.kind {
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
        };
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
            spec.max_delay_ms.max(0) as u64,
        ));
        let schema = spec.schema();
        GeneratorSource {
            time_column: schema
                .index_of(spec.time_column())
                .expect("generator schemas have their time column"),
            chunks,
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
        let times = event_times(&batch, self.time_column, "generator")?;
        let batch = match self.clock.on_batch(0, &batch, &times)? {
            None => batch,
            Some(keep) => {
                // cannot happen by construction (delays stay within the bound)
                let late = (keep.len() - keep.true_count()) as u64;
                crate::operator::OperatorMetrics::add(&ctx.metrics().late_rows, late);
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
            Release::Waiting => return Ok(SourcePoll::Ready),
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
