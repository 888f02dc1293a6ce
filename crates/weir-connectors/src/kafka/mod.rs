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

mod repartition;
mod sink;
mod source;

pub use repartition::{
    KafkaRepartition, RepartitionSink, RepartitionSource, RepartitionSourceSpec,
};
pub use sink::{kafka_partition, KafkaSink, KafkaSinkSpec, PreparedKafkaSink};
pub use source::KafkaConnector;

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
        Ok(LiveSourceSpec::new(name, schema, factory, bounded).with_numbered_partitions())
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
        let (_, fetched) = self.call(
            Some(p),
            "fetch (end offset)",
            Duration::ZERO,
            client.fetch_records(from, 1..1024, 1),
        )?;
        // under load tansu's fetch answer carried a high watermark behind
        // records it had acknowledged (a bounded read then ended early, one
        // run in a few): the listed latest offset is asked too
        let mut end = fetched.max(self.offset(client, OffsetAt::Latest)?);
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

    /// The partition's first offset, from `ListOffsets(Earliest)`, checked
    /// by a fetch at offset 0 when it is not 0: tansu 0.6 (memory storage)
    /// was seen listing a later batch's first offset as the earliest (one
    /// partition in a few runs), and a bounded read from there silently
    /// missed the rows before it. A broker whose log really starts later
    /// answers that fetch with an error (offset out of range) or with
    /// nothing before the listed offset, and the listed offset stands.
    fn earliest(&self, client: &PartitionClient) -> Result<i64> {
        let listed = self.offset(client, OffsetAt::Earliest)?;
        if listed <= 0 {
            return Ok(listed);
        }
        let probe = block_on_timeout(&self.rt, self.timeout, client.fetch_records(0, 1..1024, 1));
        Ok(checked_earliest(
            listed,
            probe.map(|(records, _)| records.iter().map(|r| r.offset).min()),
        ))
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

/// The first offset of a partition whose listed earliest offset is
/// `listed`, given what a fetch at offset 0 found: the first offset it
/// returned, `None` if nothing, an error if it failed. Records before the
/// listed offset prove the listing wrong; an error (a log that really
/// starts later: offset out of range) or nothing earlier leaves it.
fn checked_earliest(listed: i64, probe: std::result::Result<Option<i64>, String>) -> i64 {
    match probe {
        Ok(Some(first)) => first.min(listed),
        Ok(None) | Err(_) => listed,
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

#[cfg(test)]
mod tests;
