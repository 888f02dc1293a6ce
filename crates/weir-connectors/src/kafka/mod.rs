//! Kafka as a live source and as a sink, through the pure-Rust client
//! `rskafka` (no librdkafka, no consumer groups: weir assigns partitions and
//! keeps the offsets itself).
//!
//! Owns [`KafkaSourceConfig`] (→ a [`LiveSourceSpec`]), the per-subtask
//! [`KafkaConnector`], [`KafkaSinkSpec`] / [`KafkaSink`] and
//! [`create_topic`]. May use `weir_core::error`, `weir_core::operator`, `weir_core::time`
//! and the sibling live modules; never `exec` or `graph`.
//!
//! ```text
//!  into_spec: metadata once ─► partitions 0..n; subtask s owns p with p % parallelism == s
//!  subtask: own current-thread tokio runtime, block_on every client call
//!           under `timeout` (broker gone ─► Error::Connector, never a hang)
//!    start offsets: Earliest (ListOffsets earliest) | Latest (fetch high watermark)
//!                   | Timestamp t (ListOffsets t as a lower bound, then skip records
//!                     until the first whose broker timestamp >= t) | stored Positions
//!    bounded: end = each partition's high watermark when the subtask starts
//!    fetch: owned partitions in turn ─► records (value = one JSON object) ─► RawRecord
//!           position = offset, `positions()` = next offset per `TOPIC/P`
//!  sink: rows ─► one JSON object each ─► partition = murmur2(key) % n (Kafka's
//!        default partitioner) or round-robin per batch ─► produce in batches
//! ```
//!
//! **Broker quirks (tansu 0.6, verified):** `ListOffsets(Latest)` answers the
//! base offset of the last record batch plus one (1 after a batch of five
//! records at offsets 0..4, then 6, then 11), while a fetch returns every
//! record and the right high watermark (15). `ListOffsets(Timestamp t)`
//! answers the first batch's base offset whatever `t` is. A fetch with
//! `max_wait_ms = 0` gets a response without any topic. So this module never
//! trusts `ListOffsets(Latest)` (end offsets come from a fetch's high
//! watermark), uses `ListOffsets(Timestamp)` only as a lower bound, and
//! never fetches with a zero wait. On Apache Kafka the same code is exact.
//! `rskafka` writes a request's length prefix and body separately on a
//! socket without `TCP_NODELAY`, so some request sizes (~35 KB here) wait
//! ~40 ms for a delayed ACK; large produce batches (the default 10 000
//! records) amortize it.
//!
//! Partitions are looked up once: partitions added to the topic later are
//! not read, and a subtask that owns none ends at once.
//!
//! **Checkpoints:** the source's checkpoint is, per partition `TOPIC/P`,
//! the next offset, plus `TOPIC/P#end` (a bounded read's end offset, so a
//! restored read ends where the original would have) and
//! `TOPIC/P#skip_before` (a timestamp start still skipping older records),
//! and `TOPIC#cursor` (the partition fetched next). Records fetched but not
//! handed out are fetched again after a restore. The sink's snapshot
//! produces everything buffered and saves nothing: at-least-once, rows
//! since the last checkpoint are produced again after a restore.
//!
//! **Delivery:** the source is replayable: a run's positions
//! ([`LiveSourceSpec::positions`]) passed back as [`StartFrom::Positions`]
//! resume exactly after the last record emitted. The sink is at-least-once:
//! `rskafka` has no transactions, so a failed and re-run job may produce a
//! record twice; exactly-once into Kafka is not possible with this client.
//! Transactional topics are read with `read_committed`; a partition whose
//! last entry before the end offset is a transaction marker keeps a bounded
//! read waiting (the client hides markers), a known limitation.

use super::live::{Connector, Fetch, LiveSourceSpec, Position, RawRecord, StartFrom};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use rskafka::BackoffConfig;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use weir_core::error::{Error, Result};
use weir_core::operator::{Ctx, Operator, Output, TaskInfo};
use weir_core::state::{StateReader, StateWriter};

/// The default bound on every broker call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how a Kafka source reads.
///
/// Turned into a [`LiveSourceSpec`] by [`into_spec`](Self::into_spec).
///
/// # Examples
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use arrow_schema::{DataType, Field, Schema};
/// use weir::connectors::kafka::{KafkaSinkSpec, KafkaSourceConfig};
/// use weir::connectors::live::{OnError, StartFrom};
/// use weir::{Agg, ExecConfig, Job, TumblingWindow, WatermarkStrategy};
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("vehicle_id", DataType::Int64, false),
///     Field::new("event_time", DataType::Int64, false),
///     Field::new("speed", DataType::Float64, true),
/// ]));
/// let spec = KafkaSourceConfig::new(["kafka1:9092"], "obd")
///     .with_start(StartFrom::Earliest)
///     .into_spec(schema)?
///     .with_on_error(OnError::DeadLetter);
/// let positions = spec.positions();
/// let job = Job::new();
/// let rows = job.live_source(spec).assign_timestamps(
///     "event_time",
///     WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(30)),
/// )?;
/// rows.dead_letters()?.sink_json("out/bad.jsonl")?;
/// rows.key_by(["vehicle_id"])?
///     .window(TumblingWindow::of(Duration::from_secs(1)))
///     .aggregate([Agg::avg("speed").alias("avg_speed")])?
///     .sink_kafka(KafkaSinkSpec::new(["kafka1:9092"], "avg_speed").with_key("vehicle_id"))?;
/// let stop = weir::operator::StopSignal::new();
/// job.run(&ExecConfig::pipelined().with_stop(stop.clone()))?;
/// // a restart resumes after the last record this run emitted
/// let resume = StartFrom::Positions(positions.lock().unwrap().clone());
/// # Ok::<(), weir::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// The topic to read (all its partitions).
    pub topic: String,
    /// Where to start (default: earliest).
    pub start: StartFrom,
    /// Read up to the end offsets seen when each subtask starts, then end
    /// (Flink's `setBounded(OffsetsInitializer.latest())`).
    pub bounded: bool,
    /// Most bytes one fetch asks for (per partition; default 4 MiB).
    pub fetch_max_bytes: i32,
    /// How long a fetch may wait for new records when a partition has none
    /// (milliseconds, at least 1; default 10).
    pub fetch_wait_ms: i32,
    /// Bound on every broker call (connect, metadata, fetch); default 10 s.
    pub timeout: Duration,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        KafkaSourceConfig {
            brokers: Vec::new(),
            topic: String::new(),
            start: StartFrom::Earliest,
            bounded: false,
            fetch_max_bytes: 4 << 20,
            fetch_wait_ms: 10,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl KafkaSourceConfig {
    /// Reads `topic` from `brokers` with the defaults (earliest, unbounded).
    pub fn new<S: Into<String>>(brokers: impl IntoIterator<Item = S>, topic: &str) -> Self {
        KafkaSourceConfig {
            brokers: brokers.into_iter().map(Into::into).collect(),
            topic: topic.to_string(),
            ..Default::default()
        }
    }

    /// Where to start reading.
    pub fn with_start(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// Ends at the offsets present when the job starts.
    pub fn with_bounded(mut self, bounded: bool) -> Self {
        self.bounded = bounded;
        self
    }

    /// Bound on every broker call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The source's name in errors and dead letters: `kafka TOPIC@BROKERS`.
    pub fn source_name(&self) -> String {
        format!("kafka {}@{}", self.topic, self.brokers.join(","))
    }

    fn validate(&self) -> Result<()> {
        if self.brokers.is_empty() {
            return Err(Error::option("kafka.brokers", "names no broker"));
        }
        if self.topic.is_empty() {
            return Err(Error::option("kafka.topic", "is empty"));
        }
        if self.fetch_max_bytes < 1 {
            return Err(Error::option("kafka.fetch_max_bytes", "must be at least 1"));
        }
        if self.fetch_wait_ms < 1 {
            // tansu answers a zero wait with an empty response
            return Err(Error::option("kafka.fetch_wait_ms", "must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(Error::option("kafka.timeout", "must be positive"));
        }
        if let StartFrom::Positions(map) = &self.start {
            if let Some((name, p)) = map.iter().find(|(_, p)| !matches!(p, Position::Offset(_))) {
                return Err(Error::option(
                    "kafka.start",
                    format!("position `{p}` of {name} is not a Kafka offset"),
                ));
            }
        }
        Ok(())
    }

    /// A live source over the topic, decoding each record's value (one JSON
    /// object) into `schema`. Looks the partitions up once, now: fails,
    /// naming the brokers and topic, if a broker cannot be reached or the
    /// topic does not exist. Partition `p` is read by subtask
    /// `p % parallelism`; partition names are `TOPIC/P`.
    pub fn into_spec(self, schema: SchemaRef) -> Result<LiveSourceSpec> {
        self.validate()?;
        let partitions = {
            let kafka = Kafka::connect(&self.brokers, &self.topic, self.timeout)?;
            kafka.partitions(&self.topic)?
        };
        let name = self.source_name();
        let bounded = self.bounded;
        let config = Arc::new(self);
        let factory = Arc::new(move |info: &TaskInfo| {
            let owned: Vec<i32> = partitions
                .iter()
                .copied()
                .filter(|&p| p as usize % info.parallelism.max(1) == info.subtask)
                .collect();
            Ok(Box::new(KafkaConnector::open(config.clone(), owned)?) as Box<dyn Connector>)
        });
        Ok(LiveSourceSpec::new(name, schema, factory, bounded))
    }
}

/// A client on its own current-thread runtime; every call is bounded.
struct Kafka {
    // config
    brokers: String,
    topic: String,
    timeout: Duration,
    // resources
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Kafka {
    fn connect(brokers: &[String], topic: &str, timeout: Duration) -> Result<Self> {
        let endpoint = format!("kafka {} topic {topic}", brokers.join(","));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::Connector {
                endpoint: endpoint.clone(),
                message: format!("cannot start the client runtime: {e}"),
            })?;
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            // retries end a little before the hard bound, so their error
            // (e.g. connection refused) is what the user sees
            deadline: Some(timeout.mul_f64(0.9)),
        };
        let builder = ClientBuilder::new(brokers.to_vec())
            .client_id("weir")
            .backoff_config(backoff);
        let client =
            block_on_timeout(&rt, timeout, builder.build()).map_err(|m| Error::Connector {
                endpoint,
                message: format!("cannot connect: {m}"),
            })?;
        Ok(Kafka {
            brokers: brokers.join(","),
            topic: topic.to_string(),
            timeout,
            rt,
            client,
        })
    }

    fn endpoint(&self, partition: Option<i32>) -> String {
        match partition {
            Some(p) => format!("kafka {} topic {} partition {p}", self.brokers, self.topic),
            None => format!("kafka {} topic {}", self.brokers, self.topic),
        }
    }

    /// Runs `fut` to completion within the timeout plus `extra`.
    fn call<T>(
        &self,
        partition: Option<i32>,
        what: &str,
        extra: Duration,
        fut: impl Future<Output = rskafka::client::error::Result<T>>,
    ) -> Result<T> {
        block_on_timeout(&self.rt, self.timeout + extra, fut).map_err(|m| Error::Connector {
            endpoint: self.endpoint(partition),
            message: format!("{what}: {m}"),
        })
    }

    /// The topic's partition ids, sorted.
    fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        let topics = self.call(None, "metadata", Duration::ZERO, self.client.list_topics())?;
        match topics.into_iter().find(|t| t.name == topic) {
            Some(t) if !t.partitions.is_empty() => Ok(t.partitions.into_iter().collect()),
            Some(_) => Err(Error::Connector {
                endpoint: self.endpoint(None),
                message: "the topic has no partitions".into(),
            }),
            None => Err(Error::Connector {
                endpoint: self.endpoint(None),
                message: "no such topic".into(),
            }),
        }
    }

    fn partition_client(&self, partition: i32) -> Result<PartitionClient> {
        self.call(
            Some(partition),
            "partition lookup",
            Duration::ZERO,
            self.client.partition_client(
                self.topic.clone(),
                partition,
                UnknownTopicHandling::Retry,
            ),
        )
    }

    /// The partition's high watermark, from a fetch (tansu's
    /// `ListOffsets(Latest)` is wrong; a fetch's watermark is right on
    /// every broker).
    ///
    /// tansu was also seen (once, under load) answering a high watermark
    /// that lagged a produce that had already been acknowledged, so the
    /// answer is checked by fetching at it (waiting up to 100 ms for
    /// records): records found there move the end past them.
    fn high_watermark(&self, client: &PartitionClient, from: i64) -> Result<i64> {
        let p = client.partition();
        let (_, mut end) = self.call(
            Some(p),
            "fetch (end offset)",
            Duration::ZERO,
            client.fetch_records(from, 1..1024, 1),
        )?;
        loop {
            let (records, hwm) = self.call(
                Some(p),
                "fetch (end offset check)",
                Duration::ZERO,
                // a short wait: under load tansu answered an immediate fetch
                // with nothing although records were there
                client.fetch_records(end.max(from), 1..(1 << 20), 100),
            )?;
            match records.iter().map(|r| r.offset + 1).max() {
                Some(past) if past > end => end = past.max(hwm),
                _ => return Ok(end.max(hwm)),
            }
        }
    }

    fn offset(&self, client: &PartitionClient, at: OffsetAt) -> Result<i64> {
        self.call(
            Some(client.partition()),
            "list offsets",
            Duration::ZERO,
            client.get_offset(at),
        )
    }
}

/// `rt.block_on(fut)` bounded by `timeout`; errors as text.
fn block_on_timeout<T, E: std::fmt::Display>(
    rt: &tokio::runtime::Runtime,
    timeout: Duration,
    fut: impl Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    match rt.block_on(async { tokio::time::timeout(timeout, fut).await }) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {timeout:?} (broker down, unreachable or overloaded)"
        )),
    }
}

/// One owned partition's reading state.
struct Part {
    // config
    name: String,
    end: Option<i64>,
    // resources
    client: PartitionClient,
    // state
    next: i64,
    /// Skip records older than this until the first that is not (timestamp start).
    skip_before: Option<i64>,
}

impl Part {
    fn done(&self) -> bool {
        self.end.is_some_and(|e| self.next >= e)
    }
}

/// A fetched record not handed out yet: partition index, offset, value
/// (`None`: skipped, only moves the position).
type Pending = (usize, i64, Option<Vec<u8>>);

/// Reads the partitions of one subtask.
pub struct KafkaConnector {
    // config
    config: Arc<KafkaSourceConfig>,
    // resources
    kafka: Kafka,
    // state
    parts: Vec<Part>,
    pending: VecDeque<Pending>,
    cursor: usize,
}

impl KafkaConnector {
    /// Connects and resolves the start offsets of `partitions`.
    fn open(config: Arc<KafkaSourceConfig>, partitions: Vec<i32>) -> Result<Self> {
        let kafka = Kafka::connect(&config.brokers, &config.topic, config.timeout)?;
        let mut parts = Vec::with_capacity(partitions.len());
        for p in partitions {
            let name = format!("{}/{p}", config.topic);
            let client = kafka.partition_client(p)?;
            let earliest = || kafka.offset(&client, OffsetAt::Earliest);
            let end = if config.bounded || config.start == StartFrom::Latest {
                Some(kafka.high_watermark(&client, earliest()?)?)
            } else {
                None
            };
            let (next, skip_before) = match &config.start {
                StartFrom::Earliest => (earliest()?, None),
                StartFrom::Latest => (end.unwrap_or_default(), None),
                StartFrom::Timestamp(t) => {
                    let at =
                        rskafka::chrono::DateTime::from_timestamp_millis(*t).ok_or_else(|| {
                            Error::option("kafka.start", format!("{t} is not a valid timestamp"))
                        })?;
                    let found = kafka.offset(&client, OffsetAt::Timestamp(at))?;
                    // Kafka answers -1 when no record is that recent: start at the end
                    let next = if found < 0 {
                        kafka.high_watermark(&client, earliest()?)?
                    } else {
                        found
                    };
                    (next, Some(*t))
                }
                StartFrom::Positions(map) => match map.get(&name) {
                    Some(Position::Offset(o)) => (*o, None),
                    Some(Position::Id(id)) => {
                        return Err(Error::option(
                            "kafka.start",
                            format!("position `{id}` of {name} is not a Kafka offset"),
                        ))
                    }
                    None => (earliest()?, None),
                },
            };
            let end = end.filter(|_| config.bounded);
            parts.push(Part {
                name,
                end,
                client,
                next,
                skip_before,
            });
        }
        Ok(KafkaConnector {
            config,
            kafka,
            parts,
            pending: VecDeque::new(),
            cursor: 0,
        })
    }

    /// Fetches from the owned partitions in turn until one has records.
    /// Returns false if none had any.
    fn fill(&mut self) -> Result<bool> {
        let n = self.parts.len();
        let active: Vec<usize> = (0..n)
            .map(|k| (self.cursor + k) % n)
            .filter(|&i| !self.parts[i].done())
            .collect();
        for (k, &i) in active.iter().enumerate() {
            // the last partition of an empty round may wait a little
            let wait = if k + 1 == active.len() {
                self.config.fetch_wait_ms
            } else {
                1
            };
            self.cursor = (i + 1) % n;
            if self.fetch_partition(i, wait)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn fetch_partition(&mut self, i: usize, wait_ms: i32) -> Result<bool> {
        let part = &self.parts[i];
        let wait = Duration::from_millis(wait_ms.max(1) as u64);
        let (records, _hwm) = self.kafka.call(
            Some(part.client.partition()),
            &format!("fetch at offset {}", part.next),
            wait,
            part.client
                .fetch_records(part.next, 1..self.config.fetch_max_bytes, wait_ms.max(1)),
        )?;
        let part = &mut self.parts[i];
        let before = self.pending.len();
        for r in records {
            if r.offset < part.next {
                continue;
            }
            if let Some(end) = part.end.filter(|&e| r.offset >= e) {
                // everything before the end was seen (offsets may have gaps)
                self.pending.push_back((i, end - 1, None));
                break;
            }
            let ts = r.record.timestamp.timestamp_millis();
            let skip = match part.skip_before {
                Some(t) if ts < t => true,
                Some(_) => {
                    part.skip_before = None;
                    false
                }
                None => false,
            };
            // null values (tombstones of compacted topics) carry no row
            let value = if skip { None } else { r.record.value };
            self.pending.push_back((i, r.offset, value));
        }
        Ok(self.pending.len() > before)
    }
}

impl Connector for KafkaConnector {
    fn partitions(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.name.clone()).collect()
    }

    fn fetch(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<Fetch> {
        if self.pending.is_empty() && !self.parts.iter().all(Part::done) {
            self.fill()?;
        }
        let mut moved = false;
        while out.len() < max {
            let Some((i, offset, value)) = self.pending.pop_front() else {
                break;
            };
            self.parts[i].next = offset + 1;
            moved = true;
            if let Some(payload) = value {
                out.push(RawRecord {
                    partition: i,
                    position: Position::Offset(offset),
                    payload,
                });
            }
        }
        Ok(
            if self.pending.is_empty() && self.parts.iter().all(Part::done) {
                // a subtask without partitions ends at once: it never gets input
                Fetch::End
            } else if out.is_empty() && !moved {
                Fetch::Idle
            } else {
                Fetch::Records
            },
        )
    }

    fn finished_partitions(&self) -> Vec<usize> {
        (0..self.parts.len())
            .filter(|&i| self.parts[i].done() && !self.pending.iter().any(|r| r.0 == i))
            .collect()
    }

    fn positions(&self) -> BTreeMap<String, Position> {
        self.parts
            .iter()
            .map(|p| (p.name.clone(), Position::Offset(p.next)))
            .collect()
    }

    fn checkpoint(&self) -> Result<BTreeMap<String, Position>> {
        let mut saved = self.positions();
        for p in &self.parts {
            if let Some(end) = p.end {
                saved.insert(format!("{}{END}", p.name), Position::Offset(end));
            }
            if let Some(t) = p.skip_before {
                saved.insert(format!("{}{SKIP}", p.name), Position::Offset(t));
            }
        }
        // records fetched but not handed out come again from this partition
        let next = self.pending.front().map_or(self.cursor, |r| r.0);
        if let Some(part) = self.parts.get(next) {
            let id = part.client.partition();
            saved.insert(self.cursor_key(), Position::Offset(i64::from(id)));
        }
        Ok(saved)
    }

    fn seek(&mut self, saved: &BTreeMap<String, Position>) -> Result<()> {
        self.pending.clear();
        for part in &mut self.parts {
            let Some(position) = saved.get(&part.name) else {
                continue;
            };
            part.next = match position {
                Position::Offset(o) => *o,
                Position::Id(id) => {
                    return Err(Error::Checkpoint {
                        location: part.name.clone(),
                        message: format!("position `{id}` is not a Kafka offset"),
                    })
                }
            };
            let detail = |suffix: &str| match saved.get(&format!("{}{suffix}", part.name)) {
                Some(Position::Offset(v)) => Some(*v),
                _ => None,
            };
            if self.config.bounded {
                part.end = detail(END).or(part.end);
            }
            part.skip_before = detail(SKIP);
        }
        if let Some(Position::Offset(id)) = saved.get(&self.cursor_key()) {
            if let Some(i) = self
                .parts
                .iter()
                .position(|p| i64::from(p.client.partition()) == *id)
            {
                self.cursor = i;
            }
        }
        Ok(())
    }
}

/// Checkpoint key suffix of a bounded read's end offset.
const END: &str = "#end";
/// Checkpoint key suffix of a timestamp start still skipping.
const SKIP: &str = "#skip_before";

impl KafkaConnector {
    /// Checkpoint key of the partition fetched next.
    fn cursor_key(&self) -> String {
        format!("{}#cursor", self.config.topic)
    }
}

/// Creates `topic` with `partitions` partitions (replication 1) and waits
/// until the brokers list it. For tests and the CLI.
pub fn create_topic(brokers: &[String], topic: &str, partitions: usize) -> Result<()> {
    let kafka = Kafka::connect(brokers, topic, DEFAULT_TIMEOUT)?;
    let n = i32::try_from(partitions)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| Error::option("partitions", "must be between 1 and 2^31 - 1"))?;
    let controller = kafka
        .client
        .controller_client()
        .map_err(|e| Error::Connector {
            endpoint: kafka.endpoint(None),
            message: e.to_string(),
        })?;
    kafka.call(
        None,
        "create topic",
        Duration::ZERO,
        controller.create_topic(topic, n, 1, 5_000),
    )?;
    let deadline = std::time::Instant::now() + DEFAULT_TIMEOUT;
    loop {
        match kafka.partitions(topic) {
            Ok(p) if p.len() == partitions => return Ok(()),
            Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(p) => {
                return Err(Error::Connector {
                    endpoint: kafka.endpoint(None),
                    message: format!("created with {partitions} partitions, lists {}", p.len()),
                })
            }
            Err(e) => return Err(e),
        }
    }
}

/// Where and how a Kafka sink writes: each row becomes one record whose
/// value is the row as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkSpec {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// The topic (it must exist; see [`create_topic`]).
    pub topic: String,
    /// The column whose value (as text) is the record key; rows are then
    /// partitioned like Kafka's default partitioner (murmur2 of the key),
    /// else round-robin, one batch at a time.
    pub key: Option<String>,
    /// The column giving each record's timestamp (event time, epoch ms or a
    /// Timestamp type); otherwise the time of producing.
    pub timestamp_column: Option<String>,
    /// Records per produce request and partition (default 10 000).
    pub batch_records: usize,
    /// Most time a record waits for its batch to fill in a pipelined run
    /// (default 100 ms); batch runs flush at end of input.
    pub linger: Duration,
    /// Bound on every broker call (default 10 s).
    pub timeout: Duration,
}

impl KafkaSinkSpec {
    /// Writes to `topic` on `brokers`, no key, producer timestamps.
    pub fn new<S: Into<String>>(brokers: impl IntoIterator<Item = S>, topic: &str) -> Self {
        KafkaSinkSpec {
            brokers: brokers.into_iter().map(Into::into).collect(),
            topic: topic.to_string(),
            key: None,
            timestamp_column: None,
            batch_records: 10_000,
            linger: Duration::from_millis(100),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Keys records by `column` (also chooses their partition).
    pub fn with_key(mut self, column: &str) -> Self {
        self.key = Some(column.to_string());
        self
    }

    /// Record timestamps from `column` (the event time).
    pub fn with_timestamp_column(mut self, column: &str) -> Self {
        self.timestamp_column = Some(column.to_string());
        self
    }

    /// Records per produce request and partition.
    pub fn with_batch_records(mut self, n: usize) -> Self {
        self.batch_records = n.max(1);
        self
    }

    /// Most time a record waits for its batch to fill (pipelined runs).
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Bound on every broker call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the columns against `schema` and the topic against the
    /// brokers; returns the sink's resolved form.
    pub fn prepare(self, schema: &SchemaRef) -> Result<PreparedKafkaSink> {
        if self.brokers.is_empty() {
            return Err(Error::option("kafka.brokers", "names no broker"));
        }
        let context = format!("kafka sink {}", self.topic);
        let key = match &self.key {
            Some(k) => Some(
                schema
                    .index_of(k)
                    .map_err(|_| Error::column(k, &context, "no such column"))?,
            ),
            None => None,
        };
        let time = match &self.timestamp_column {
            Some(c) => Some(weir_core::time::validate_time_column(schema, c, &context)?),
            None => None,
        };
        let partitions = Kafka::connect(&self.brokers, &self.topic, self.timeout)?
            .partitions(&self.topic)?
            .len();
        Ok(PreparedKafkaSink {
            spec: Arc::new(self),
            key,
            time,
            partitions,
        })
    }
}

/// A [`KafkaSinkSpec`] checked against its input schema and topic.
#[derive(Debug, Clone)]
pub struct PreparedKafkaSink {
    spec: Arc<KafkaSinkSpec>,
    key: Option<usize>,
    time: Option<usize>,
    partitions: usize,
}

impl PreparedKafkaSink {
    /// The sink instance of one subtask (connects now).
    pub fn create(&self, info: &TaskInfo) -> Result<KafkaSink> {
        let kafka = Kafka::connect(&self.spec.brokers, &self.spec.topic, self.spec.timeout)?;
        let clients = (0..self.partitions as i32)
            .map(|p| kafka.partition_client(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(KafkaSink {
            sink: self.clone(),
            kafka,
            clients,
            buffers: vec![Vec::new(); self.partitions],
            buffered: 0,
            next_partition: info.subtask,
        })
    }
}

/// One subtask of a Kafka sink.
pub struct KafkaSink {
    // config
    sink: PreparedKafkaSink,
    // resources
    kafka: Kafka,
    clients: Vec<PartitionClient>,
    // state
    buffers: Vec<Vec<Record>>,
    buffered: usize,
    next_partition: usize,
}

impl KafkaSink {
    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        let json = json_rows(batch, &format!("kafka sink {}", self.sink.spec.topic))?;
        let times = match self.sink.time {
            Some(c) => Some(weir_core::time::event_times(
                batch,
                c,
                &format!("kafka sink {}", self.sink.spec.topic),
            )?),
            None => None,
        };
        let keys = match self.sink.key {
            Some(c) => Some(key_texts(batch, c)?),
            None => None,
        };
        let now = weir_core::operator::now_ms();
        let round_robin = self.next_partition % self.clients.len();
        self.next_partition = self.next_partition.wrapping_add(1);
        for (row, value) in json.into_iter().enumerate().take(n) {
            let key = keys.as_ref().and_then(|k| k[row].clone());
            let partition = match &key {
                Some(k) => kafka_partition(k, self.clients.len()),
                None => round_robin,
            };
            let ms = times.as_ref().map_or(now, |t| t[row]);
            let timestamp =
                rskafka::chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| {
                    Error::column(
                        self.sink.spec.timestamp_column.clone().unwrap_or_default(),
                        format!("kafka sink {}", self.sink.spec.topic),
                        format!("{ms} is not a valid record timestamp"),
                    )
                })?;
            self.buffers[partition].push(Record {
                key: key.map(String::into_bytes),
                value: Some(value),
                headers: BTreeMap::new(),
                timestamp,
            });
            self.buffered += 1;
        }
        Ok(())
    }

    /// Produces the buffers of partitions holding at least `min` records:
    /// the partitions concurrently, each one's chunks in order.
    fn flush(&mut self, min: usize) -> Result<()> {
        let size = self.sink.spec.batch_records;
        let timeout = self.kafka.timeout;
        let mut work = Vec::new();
        for (p, buf) in self.buffers.iter_mut().enumerate() {
            if !buf.is_empty() && buf.len() >= min {
                let records = std::mem::take(buf);
                self.buffered -= records.len();
                work.push((p, records));
            }
        }
        if work.is_empty() {
            return Ok(());
        }
        let clients = &self.clients;
        let tasks: Vec<ProduceTask<'_>> = work
            .into_iter()
            .map(|(p, records)| {
                Box::pin(async move {
                    let mut records = records.into_iter().peekable();
                    while records.peek().is_some() {
                        let chunk: Vec<Record> = records.by_ref().take(size).collect();
                        let produce = clients[p].produce(chunk, Compression::NoCompression);
                        match tokio::time::timeout(timeout, produce).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => return Err((p, e.to_string())),
                            Err(_) => {
                                return Err((p, format!("no answer within {timeout:?}")));
                            }
                        }
                    }
                    Ok(())
                }) as ProduceTask<'_>
            })
            .collect();
        for result in self.kafka.rt.block_on(join_all(tasks)) {
            if let Err((p, message)) = result {
                return Err(Error::Connector {
                    endpoint: self.kafka.endpoint(Some(p as i32)),
                    message: format!("produce: {message}"),
                });
            }
        }
        Ok(())
    }
}

/// One partition's produce calls: its index and message on failure.
type ProduceTask<'a> =
    std::pin::Pin<Box<dyn Future<Output = std::result::Result<(), (usize, String)>> + 'a>>;

/// Runs futures concurrently on the current task; their outputs in order.
async fn join_all<T>(mut futures: Vec<std::pin::Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut done: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

impl Operator for KafkaSink {
    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.encode(&batch)?;
        self.flush(self.sink.spec.batch_records)?;
        if self.buffered > 0 && ctx.processing_timer().is_none() {
            let linger = i64::try_from(self.sink.spec.linger.as_millis()).unwrap_or(i64::MAX);
            ctx.set_processing_timer(Some(ctx.processing_time().saturating_add(linger)));
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        _: weir_core::message::Watermark,
        _: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        Ok(())
    }

    fn on_processing_time(&mut self, _: i64, ctx: &mut Ctx, _: &mut Output) -> Result<()> {
        ctx.set_processing_timer(None);
        self.flush(1)
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, _: &mut Output) -> Result<()> {
        ctx.set_processing_timer(None);
        self.flush(1)
    }

    /// Produces everything buffered and saves nothing (at-least-once: after
    /// a restore the rows since this checkpoint are produced again).
    fn snapshot(&mut self, ctx: &mut Ctx, _state: &mut StateWriter) -> Result<()> {
        ctx.set_processing_timer(None);
        self.flush(1)
    }

    /// Nothing to restore (the snapshot saves nothing).
    fn restore(&mut self, _ctx: &mut Ctx, _state: &StateReader) -> Result<()> {
        Ok(())
    }
}

/// Each row of `batch` as one JSON object (no trailing newline).
pub(crate) fn json_rows(batch: &RecordBatch, context: &str) -> Result<Vec<Vec<u8>>> {
    let batch = crate::json_out::prepare(batch, context)?;
    let mut buf = Vec::with_capacity(batch.num_rows() * 64);
    {
        let mut w = crate::json_out::writer(&mut buf);
        w.write(&batch)?;
        w.finish()?;
    }
    // the writer escapes newlines inside strings: every '\n' ends a row
    let rows: Vec<Vec<u8>> = buf
        .split(|&b| b == b'\n')
        .filter(|r| !r.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if rows.len() != batch.num_rows() {
        return Err(Error::Plan(format!(
            "JSON encoding gave {} objects for {} rows",
            rows.len(),
            batch.num_rows()
        )));
    }
    Ok(rows)
}

/// The values of column `col` as text (`None` for nulls).
pub(crate) fn key_texts(batch: &RecordBatch, col: usize) -> Result<Vec<Option<String>>> {
    let array = batch.column(col);
    let options = arrow_cast::display::FormatOptions::default();
    let fmt = arrow_cast::display::ArrayFormatter::try_new(array.as_ref(), &options)?;
    Ok((0..array.len())
        .map(|i| (!array.is_null(i)).then(|| fmt.value(i).to_string()))
        .collect())
}

/// The partition Kafka's default partitioner picks for `key`:
/// `murmur2(key) & 0x7fffffff % partitions`.
pub fn kafka_partition(key: &str, partitions: usize) -> usize {
    (murmur2(key.as_bytes()) & 0x7fff_ffff) as usize % partitions.max(1)
}

/// Kafka's murmur2 (seed 0x9747b28c), as in `org.apache.kafka.common.utils.Utils`.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in chunks.by_ref() {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // values from Kafka's UtilsTest.testMurmur2
        let cases: [(&[u8], i32); 5] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
        ];
        for (data, want) in cases {
            assert_eq!(
                murmur2(data) as i32,
                want,
                "{:?}",
                std::str::from_utf8(data)
            );
        }
    }

    #[test]
    fn rows_become_one_json_object_each() {
        let batch = RecordBatch::try_from_iter([
            (
                "k",
                Arc::new(arrow_array::Int64Array::from(vec![Some(1), None])) as _,
            ),
            (
                "s",
                Arc::new(arrow_array::StringArray::from(vec!["a\nb", "c"])) as _,
            ),
        ])
        .unwrap();
        let rows = json_rows(&batch, "test").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], br#"{"k":1,"s":"a\nb"}"#.to_vec());
        assert_eq!(key_texts(&batch, 0).unwrap(), vec![Some("1".into()), None]);
    }

    #[test]
    fn an_unreachable_broker_is_an_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let started = std::time::Instant::now();
        let err = KafkaSourceConfig::new([addr.as_str()], "orders")
            .with_timeout(Duration::from_millis(500))
            .into_spec(Arc::new(arrow_schema::Schema::empty()))
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.contains(&addr) && msg.contains("orders"), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
