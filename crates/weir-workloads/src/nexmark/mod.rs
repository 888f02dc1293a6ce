//! Nexmark: a deterministic generator of persons, auctions and bids, and
//! the benchmark's queries as weir jobs.
//!
//! Owns [`NexmarkConfig`], [`Events`], [`generate`] and [`query`]; `udf.rs`
//! holds the UDFs the benchmark's Flink queries create ([`CountChar`]). Event `n`
//! is a person, an auction or a bid in the standard proportions 1:3:46
//! (`n % 50`: 0 person, 1–3 auction, else bid), with event time advancing
//! `1000 / events_per_second` ms per event and an optional arrival delay.
//! Split `s` holds the events `n ≡ s (mod splits)`, generated in parallel
//! (each split has its own random stream) and kept in arrival order.
//! May use everything below `workloads`; never `cli`.

mod closed;
mod flink;
mod udf;

pub use flink::{flink_tables, FlinkTables};
pub use udf::{with_udfs, CountChar, COUNT_CHAR_CLASS};

use super::Rng;
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weir_connectors::replay::ReplaySpeed;
use weir_connectors::{Collected, ParquetSourceSpec};
use weir_core::error::{Error, Result};
use weir_core::expr::{col, lit};
use weir_core::time::{WatermarkStrategy, Window};
use weir_engine::graph::{Job, Stream};
use weir_functions::Agg;
use weir_operators::join::JoinSpec;

/// How many events and how they are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NexmarkConfig {
    /// Events in total (persons + auctions + bids).
    pub events: u64,
    /// Event-time rate: events per second of event time.
    pub events_per_second: u64,
    /// Arrival delay: each event arrives up to this many ms after its time.
    pub max_delay_ms: i64,
    /// Splits (parallel source partitions) per stream.
    pub splits: usize,
    /// Generator seed.
    pub seed: u64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            events: 1_000_000,
            events_per_second: 10_000,
            max_delay_ms: 500,
            splits: 4,
            seed: 7,
        }
    }
}

/// The event time of the first event (2026-11-01T00:00:00Z).
pub const NEXMARK_EPOCH_MS: i64 = 1_793_491_200_000;

/// The generated streams, each as splits of batches in arrival order.
#[derive(Debug, Clone)]
pub struct Events {
    /// `id, name, email, city, state, date_time`.
    pub persons: Vec<Vec<RecordBatch>>,
    /// `id, item_name, initial_bid, reserve, date_time, expires, seller, category`.
    pub auctions: Vec<Vec<RecordBatch>>,
    /// `auction, bidder, price, channel, date_time`.
    pub bids: Vec<Vec<RecordBatch>>,
}

/// Schema of persons.
pub fn person_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("date_time", DataType::Int64, false),
    ]))
}

/// Schema of auctions.
pub fn auction_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("item_name", DataType::Utf8, false),
        Field::new("initial_bid", DataType::Int64, false),
        Field::new("reserve", DataType::Int64, false),
        Field::new("date_time", DataType::Int64, false),
        Field::new("expires", DataType::Int64, false),
        Field::new("seller", DataType::Int64, false),
        Field::new("category", DataType::Int64, false),
    ]))
}

/// Schema of bids.
pub fn bid_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, false),
        Field::new("bidder", DataType::Int64, false),
        Field::new("price", DataType::Int64, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("date_time", DataType::Int64, false),
    ]))
}

const FIRST_NAMES: [&str; 8] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie",
];
const LAST_NAMES: [&str; 8] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones",
];
const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// Ids of persons and auctions start here (as in the reference generator).
const FIRST_ID: i64 = 1000;

/// One generated event, before it is put into batches.
enum Event {
    Person {
        id: i64,
        name: String,
        email: String,
        city: &'static str,
        state: &'static str,
    },
    Auction {
        id: i64,
        item: String,
        initial: i64,
        reserve: i64,
        expires: i64,
        seller: i64,
        category: i64,
    },
    Bid {
        auction: i64,
        bidder: i64,
        price: i64,
        channel: &'static str,
    },
}

/// Generates `config.events` events.
///
/// # Examples
/// ```
/// use weir::workloads::nexmark::{generate, NexmarkConfig};
/// let e = generate(&NexmarkConfig { events: 500, ..NexmarkConfig::default() });
/// let rows = |s: &Vec<Vec<arrow_array::RecordBatch>>| {
///     s.iter().flatten().map(|b| b.num_rows()).sum::<usize>()
/// };
/// assert_eq!((rows(&e.persons), rows(&e.auctions), rows(&e.bids)), (10, 30, 460));
/// ```
pub fn generate(config: &NexmarkConfig) -> Events {
    use rayon::prelude::*;
    let splits = config.splits.max(1);
    let parts: Vec<[Vec<RecordBatch>; 3]> = (0..splits)
        .into_par_iter()
        .map(|s| generate_split(config, s, splits))
        .collect();
    let mut events = Events {
        persons: Vec::with_capacity(splits),
        auctions: Vec::with_capacity(splits),
        bids: Vec::with_capacity(splits),
    };
    for [p, a, b] in parts {
        events.persons.push(p);
        events.auctions.push(a);
        events.bids.push(b);
    }
    events
}

/// Split `s` of `splits`: events `n ≡ s (mod splits)` with the split's own
/// random stream (so splits generate in parallel), in arrival order.
fn generate_split(config: &NexmarkConfig, s: usize, splits: usize) -> [Vec<RecordBatch>; 3] {
    SplitGenerator::new(config, s, splits, NEXMARK_EPOCH_MS).next_chunk(u64::MAX)
}

/// One split's events, generated a chunk at a time (the live generator
/// source paces them); chunk after chunk gives the same events as one
/// call for everything, each chunk in arrival order.
#[derive(Debug, Clone)]
pub struct SplitGenerator {
    // config
    config: NexmarkConfig,
    splits: usize,
    epoch_ms: i64,
    // state
    rng: Rng,
    next: u64,
}

impl SplitGenerator {
    /// Split `s` of `splits` of `config`, event time starting at `epoch_ms`.
    pub fn new(config: &NexmarkConfig, s: usize, splits: usize, epoch_ms: i64) -> Self {
        SplitGenerator {
            config: *config,
            splits: splits.max(1),
            epoch_ms,
            rng: Rng::new(config.seed ^ (s as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            next: s as u64,
        }
    }

    /// True once every event of the split was generated.
    pub fn is_done(&self) -> bool {
        self.next >= self.config.events
    }

    /// The next (up to) `count` events of the split as persons, auctions
    /// and bids, in arrival order within the chunk.
    pub fn next_chunk(&mut self, count: u64) -> [Vec<RecordBatch>; 3] {
        let config = &self.config;
        let splits = self.splits;
        let rng = &mut self.rng;
        let step = 1000.0 / config.events_per_second.max(1) as f64;
        let first = self.next;
        let end = first
            .saturating_add(count.saturating_mul(splits as u64))
            .min(config.events);
        if first < end {
            self.next = first + (end - first).div_ceil(splits as u64) * splits as u64;
        }
        let mut events: Vec<(i64, i64, Event)> =
            Vec::with_capacity((end.saturating_sub(first) as usize).div_ceil(splits));
        for n in (first..end).step_by(splits) {
            let time = self.epoch_ms + (n as f64 * step) as i64;
            let epoch = (n / 50) as i64;
            let offset = n % 50;
            // the newest person and auction ids so far
            let last_person = FIRST_ID + epoch;
            let last_auction = FIRST_ID + epoch * 3 + (offset.clamp(1, 3) as i64 - 1);
            let event = match offset {
                0 => {
                    let first = FIRST_NAMES[rng.below(8) as usize];
                    let last = LAST_NAMES[rng.below(8) as usize];
                    let city = rng.below(10) as usize;
                    Event::Person {
                        id: last_person,
                        name: format!("{first} {last}"),
                        email: format!("{}@{}.com", first.to_lowercase(), last.to_lowercase()),
                        city: CITIES[city],
                        state: STATES[city * 6 / 10],
                    }
                }
                1..=3 => {
                    let initial = 100 + rng.below(1000) as i64;
                    Event::Auction {
                        id: last_auction,
                        item: format!("item-{}", rng.below(10_000)),
                        initial,
                        reserve: initial + rng.below(2000) as i64,
                        expires: time + 2_000 + rng.below(20_000) as i64,
                        // mostly one of the 20 newest persons
                        seller: (last_person - rng.below(20) as i64).max(FIRST_ID),
                        category: 10 + rng.below(5) as i64,
                    }
                }
                _ => {
                    // hot auctions: 9 in 10 bids go to one of the 10 newest
                    let auction = if rng.below(10) < 9 {
                        last_auction - rng.below(10) as i64
                    } else {
                        last_auction - rng.below(1000) as i64
                    }
                    .max(FIRST_ID);
                    Event::Bid {
                        auction,
                        bidder: (last_person - rng.below(100) as i64).max(FIRST_ID),
                        price: 100 + rng.below(100_000) as i64,
                        channel: CHANNELS[rng.below(4) as usize],
                    }
                }
            };
            let delay = if config.max_delay_ms > 0 {
                rng.below(config.max_delay_ms as u64 + 1) as i64
            } else {
                0
            };
            events.push((time + delay, time, event));
        }
        events.sort_by_key(|e| e.0);
        let mut cols: [Vec<(i64, &Event)>; 3] = Default::default();
        for (_, time, e) in &events {
            let kind = match e {
                Event::Person { .. } => 0,
                Event::Auction { .. } => 1,
                Event::Bid { .. } => 2,
            };
            cols[kind].push((*time, e));
        }
        [
            batches(&cols[0], person_batch),
            batches(&cols[1], auction_batch),
            batches(&cols[2], bid_batch),
        ]
    }
}

fn batches(rows: &[(i64, &Event)], make: fn(&[(i64, &Event)]) -> RecordBatch) -> Vec<RecordBatch> {
    rows.chunks(8192).map(make).collect()
}

fn person_batch(rows: &[(i64, &Event)]) -> RecordBatch {
    let mut id = Vec::new();
    let (mut name, mut email, mut city, mut state) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (_, e) in rows {
        if let Event::Person {
            id: i,
            name: n,
            email: m,
            city: c,
            state: s,
        } = e
        {
            id.push(*i);
            name.push(n.as_str());
            email.push(m.as_str());
            city.push(*c);
            state.push(*s);
        }
    }
    RecordBatch::try_new(
        person_schema(),
        vec![
            Arc::new(Int64Array::from(id)),
            Arc::new(StringArray::from(name)),
            Arc::new(StringArray::from(email)),
            Arc::new(StringArray::from(city)),
            Arc::new(StringArray::from(state)),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ],
    )
    .expect("columns match person_schema")
}

fn auction_batch(rows: &[(i64, &Event)]) -> RecordBatch {
    let mut c: [Vec<i64>; 6] = Default::default();
    let mut item = Vec::new();
    for (_, e) in rows {
        if let Event::Auction {
            id,
            item: it,
            initial,
            reserve,
            expires,
            seller,
            category,
        } = e
        {
            for (v, x) in c
                .iter_mut()
                .zip([*id, *initial, *reserve, *expires, *seller, *category])
            {
                v.push(x);
            }
            item.push(it.as_str());
        }
    }
    let [id, initial, reserve, expires, seller, category] = c;
    RecordBatch::try_new(
        auction_schema(),
        vec![
            Arc::new(Int64Array::from(id)),
            Arc::new(StringArray::from(item)),
            Arc::new(Int64Array::from(initial)),
            Arc::new(Int64Array::from(reserve)),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from(expires)),
            Arc::new(Int64Array::from(seller)),
            Arc::new(Int64Array::from(category)),
        ],
    )
    .expect("columns match auction_schema")
}

fn bid_batch(rows: &[(i64, &Event)]) -> RecordBatch {
    let mut c: [Vec<i64>; 3] = Default::default();
    let mut channel = Vec::new();
    for (_, e) in rows {
        if let Event::Bid {
            auction,
            bidder,
            price,
            channel: ch,
        } = e
        {
            for (v, x) in c.iter_mut().zip([*auction, *bidder, *price]) {
                v.push(x);
            }
            channel.push(*ch);
        }
    }
    let [auction, bidder, price] = c;
    RecordBatch::try_new(
        bid_schema(),
        vec![
            Arc::new(Int64Array::from(auction)),
            Arc::new(Int64Array::from(bidder)),
            Arc::new(Int64Array::from(price)),
            Arc::new(StringArray::from(channel)),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ],
    )
    .expect("columns match bid_schema")
}

/// The queries built here.
pub const QUERIES: [&str; 9] = ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"];

/// A Nexmark query as a job over `events`: the job, where its rows go,
/// and their schema. Event time is `date_time`, watermark delay
/// `max_delay_ms`.
pub fn query(
    name: &str,
    events: &Events,
    max_delay_ms: i64,
) -> Result<(Job, Collected, SchemaRef)> {
    query_over(name, Input::Memory(events), max_delay_ms)
}

/// Where a query reads its events from.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Generated batches in memory.
    Memory(&'a Events),
    /// Parquet written by [`write_parquet`]: `person/`, `auction/`, `bid/` under a directory.
    Parquet(&'a Path),
    /// The same Parquet replayed at a pace (see
    /// [`ParquetSourceSpec::with_replay_speed`]): each stream's rows are
    /// emitted when their `date_time` is due, a live load for latency.
    PacedParquet(&'a Path, ReplaySpeed),
}

/// The three streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Person,
    Auction,
    Bid,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Person => "person",
            Kind::Auction => "auction",
            Kind::Bid => "bid",
        }
    }
}

/// Writes `events` as Parquet under `dir` (`person/`, `auction/`, `bid/`,
/// one file per split, row groups of 65 536 rows) for replays.
pub fn write_parquet(events: &Events, dir: &Path) -> Result<()> {
    for (kind, splits) in [
        (Kind::Person, &events.persons),
        (Kind::Auction, &events.auctions),
        (Kind::Bid, &events.bids),
    ] {
        let sub = dir.join(kind.dir());
        std::fs::create_dir_all(&sub).map_err(|e| Error::io(&sub, e))?;
        for (i, split) in splits.iter().enumerate() {
            super::vehicles::write_parquet_dir(
                &sub.join(format!("split-{i:03}")),
                split,
                1,
                65_536,
            )?;
        }
    }
    Ok(())
}

/// The file under a Parquet event directory recording what it holds.
const MARKER: &str = "nexmark.json";

/// Makes sure `dir` holds `events` generated events as Parquet (in `splits`
/// files per stream), writing them if it is empty. A directory holding a
/// different number of events is an error naming it, never overwritten.
pub fn ensure_parquet(events: u64, splits: usize, dir: &Path) -> Result<()> {
    let marker = dir.join(MARKER);
    if marker.exists() {
        let text = std::fs::read_to_string(&marker).map_err(|e| Error::io(&marker, e))?;
        let held: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::option("--data", format!("{}: {e}", marker.display())))?;
        return match held["events"].as_u64() {
            Some(n) if n == events => Ok(()),
            n => Err(Error::option(
                "--data",
                format!(
                    "{} holds {} events, not {events}; choose another directory or remove it",
                    dir.display(),
                    n.map_or("an unknown number of".into(), |n| n.to_string())
                ),
            )),
        };
    }
    if dir.join("bid").exists() {
        return Err(Error::option(
            "--data",
            format!(
                "{} holds events without {MARKER}; choose another directory or remove it",
                dir.display()
            ),
        ));
    }
    let config = NexmarkConfig {
        events,
        splits: splits.max(1),
        ..NexmarkConfig::default()
    };
    write_parquet(&generate(&config), dir)?;
    // written last: a directory without it was not finished
    let text = serde_json::json!({ "events": events, "splits": config.splits }).to_string();
    std::fs::write(&marker, text).map_err(|e| Error::io(&marker, e))
}

/// A Nexmark query over `input` (see [`query`]).
pub fn query_over(
    name: &str,
    input: Input<'_>,
    max_delay_ms: i64,
) -> Result<(Job, Collected, SchemaRef)> {
    let (job, out) = query_stream(name, input, max_delay_ms)?;
    let schema = out.schema().clone();
    let collected = out.collect()?;
    Ok((job, collected, schema))
}

/// A Nexmark query over `input` up to its result stream, without a sink.
pub fn query_stream(name: &str, input: Input<'_>, max_delay_ms: i64) -> Result<(Job, Stream)> {
    let job = Job::new();
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
        max_delay_ms.max(0) as u64,
    ));
    let stream = |kind: Kind| -> Result<Stream> {
        let s = match input {
            Input::Memory(events) => {
                let (schema, splits) = match kind {
                    Kind::Person => (person_schema(), &events.persons),
                    Kind::Auction => (auction_schema(), &events.auctions),
                    Kind::Bid => (bid_schema(), &events.bids),
                };
                job.from_batches(schema, splits.clone())?
            }
            Input::Parquet(dir) => job.parquet(dir.join(kind.dir()))?,
            Input::PacedParquet(dir, speed) => job.parquet_source(
                ParquetSourceSpec::try_new(&[dir.join(kind.dir())])?
                    .with_replay_speed("date_time", speed)?,
            )?,
        };
        s.assign_timestamps("date_time", strategy.clone())
    };
    let ten_s = Window::tumbling(Duration::from_secs(10));
    let out = match name {
        // pass-through
        "q0" => stream(Kind::Bid)?,
        // dollars to euros
        "q1" => stream(Kind::Bid)?.with_column(
            "price",
            col("price").cast(DataType::Float64).mul(lit(0.908)),
        )?,
        // a few auctions
        "q2" => stream(Kind::Bid)?
            .filter(col("auction").modulo(lit(123i64)).eq(lit(0i64)))?
            .select(["auction", "price", "date_time"])?,
        // local item suggestion: persons in OR, ID or CA selling in category 10
        "q3" => {
            let persons = stream(Kind::Person)?.filter(
                col("state")
                    .eq(lit("OR"))
                    .or(col("state").eq(lit("ID")))
                    .or(col("state").eq(lit("CA"))),
            )?;
            let auctions = stream(Kind::Auction)?.filter(col("category").eq(lit(10i64)))?;
            persons
                .join(&auctions, JoinSpec::regular().on(["id"], ["seller"]))?
                .select(["name", "city", "state", "right_id"])?
        }
        // average final price per category (closed auctions; a changelog)
        "q4" => closed::q4(&stream(Kind::Auction)?, &stream(Kind::Bid)?)?,
        // average final price of each seller's last 10 closed auctions
        "q6" => closed::q6(&stream(Kind::Auction)?, &stream(Kind::Bid)?)?,
        // hot items: per sliding window (10 s every 2 s), the auctions with the most bids
        "q5" => {
            let counts = stream(Kind::Bid)?
                .key_by(["auction"])?
                .window(Window::sliding(
                    Duration::from_secs(10),
                    Duration::from_secs(2),
                ))
                .aggregate([Agg::count().alias("num")])?;
            let most = counts.aggregate_per_window(&[], [Agg::max("num").alias("num")])?;
            counts
                .join(&most, JoinSpec::same_window().on(["num"], ["num"]))?
                .select(["auction", "num", "window_start", "window_end"])?
        }
        // highest bid per 10 s window: the bids whose price is the window's maximum
        "q7" => {
            let bids = stream(Kind::Bid)?;
            let with_window = bids
                .with_column(
                    "window_start",
                    col("date_time").sub(col("date_time").modulo(lit(10_000i64))),
                )?
                .with_column("window_end", col("window_start").add(lit(10_000i64)))?;
            let max = bids
                .window_all(ten_s)
                .aggregate([Agg::max("price").alias("price")])?;
            with_window
                .join(&max, JoinSpec::same_window().on(["price"], ["price"]))?
                .select([
                    "auction",
                    "price",
                    "bidder",
                    "date_time",
                    "window_start",
                    "window_end",
                ])?
        }
        // new users: persons who opened an auction in the 10 s window they joined in
        "q8" => {
            let persons = stream(Kind::Person)?
                .key_by(["id", "name"])?
                .window(ten_s)
                .aggregate([Agg::count().alias("n")])?;
            let sellers = stream(Kind::Auction)?
                .key_by(["seller"])?
                .window(ten_s)
                .aggregate([Agg::count().alias("auctions")])?;
            persons
                .join(&sellers, JoinSpec::same_window().on(["id"], ["seller"]))?
                .select(["id", "name", "window_start"])?
        }
        other => {
            return Err(Error::option(
                "query",
                format!(
                    "unknown Nexmark query `{other}` (built: {})",
                    QUERIES.join(", ")
                ),
            ))
        }
    };
    Ok((job, out))
}
