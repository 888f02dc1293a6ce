//! Re-keying between shards through a Kafka topic: the
//! [`Repartitioner`] of `weir run|sql --shard I/N --repartition-brokers …`.
//!
//! ```text
//!  topic weir.<job>.<run>.<edge>, N partitions: partition j holds what shard j reads
//!  producer (shard i, subtask s of P):
//!     rows ─► split by owner = key group of the new key * N / 128 ─► buffered per partition
//!     ─► record {rows, (i, s, P), epoch, seq++} (Arrow IPC) to the owner's partition
//!     watermark (at most every 100 ms) / end ─► a record to every partition (seq++)
//!     checkpointed: records of checkpoint C are kept in its state and produced only
//!     when C completes; a restore from C produces them again (same seq)
//!  consumer (shard j): partition j from its offset; per producer: drop seq <= last seen
//!     (a replay), refuse a second epoch (a producer restarted without its checkpoint);
//!     watermark = min over every producer of every shard (all N shards and their P
//!     subtasks must have spoken); ends when every producer ended
//! ```
//! Exactly once without broker transactions: a record is produced only from
//! state a completed checkpoint holds, and carries the same sequence number
//! every time it is produced. Without checkpoints (batch mode, or pipelined
//! without `--checkpoint-dir`) records are produced as they come, and a
//! shard that dies fails the run: all shards run again under a new run id.
//! May use the sibling Kafka client, `weir_core` and arrow-ipc.

use super::{block_on_timeout, Kafka, DEFAULT_TIMEOUT};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_core::error::{Error, Result};
use weir_core::key::{key_group, subtask_for_key_group, KeyEncoder};
use weir_core::message::Watermark;
use weir_core::operator::{
    Boundedness, Ctx, Operator, OperatorFactory, Output, PendingCommit, RepartitionEdge,
    Repartitioner, Source, SourcePoll, SourceSpec, TaskInfo,
};
use weir_core::shard::Shard;
use weir_core::state::{StateReader, StateWriter};

/// Rows a producer buffers per partition before it produces them.
const FLUSH_ROWS: usize = 16_384;
/// Least time between two watermark records of one producer.
const WATERMARK_EVERY: Duration = Duration::from_millis(100);
/// Largest Arrow IPC payload of one record.
const RECORD_BYTES: usize = 512 * 1024;
/// Largest sum of record values in one produce request.
const REQUEST_BYTES: usize = 900 * 1024;
/// How long a consumer's fetch waits for records.
const FETCH_WAIT_MS: i32 = 50;

/// Kafka topics as the repartition channels of a sharded job.
#[derive(Debug, Clone)]
pub struct KafkaRepartition {
    // config
    brokers: Vec<String>,
    job: String,
    run: String,
    timeout: Duration,
}

/// `name` is a non-empty topic name component.
fn check_name(option: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::option(
            option,
            format!("`{name}` cannot name a Kafka topic: use 1 to 80 letters, digits, - and _"),
        ))
    }
}

impl KafkaRepartition {
    /// Topics on `brokers` named after the job and the run: every shard of
    /// one run must give the same `job` and `run`; a new run (not a
    /// restore) needs a new `run`.
    pub fn try_new(
        brokers: impl IntoIterator<Item = impl Into<String>>,
        job: &str,
        run: &str,
    ) -> Result<Self> {
        let brokers: Vec<String> = brokers.into_iter().map(Into::into).collect();
        if brokers.is_empty() {
            return Err(Error::option("repartition-brokers", "names no broker"));
        }
        check_name("job name (the job or script file's name)", job)?;
        check_name("run-id", run)?;
        Ok(KafkaRepartition {
            brokers,
            job: job.to_string(),
            run: run.to_string(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Bounds every broker call (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The topic of `edge`: `weir.<job>.<run>.<edge>`.
    pub fn topic(&self, edge: &RepartitionEdge) -> String {
        let name: String = edge
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        // at most 5 + 80 + 1 + 80 + 1 + 80 = 247 characters (Kafka allows 249)
        format!("weir.{}.{}.{name}", self.job, self.run)
    }

    fn channel(&self, edge: &RepartitionEdge) -> Channel {
        Channel {
            brokers: self.brokers.clone(),
            topic: self.topic(edge),
            timeout: self.timeout,
            shard: edge.shard,
            schema: edge.schema.clone(),
        }
    }
}

impl Repartitioner for KafkaRepartition {
    fn sink(&self, edge: &RepartitionEdge) -> Result<OperatorFactory> {
        let channel = Arc::new(self.channel(edge));
        let keys = KeyEncoder::try_new(&edge.schema, &edge.keys, "repartition")?;
        drop(keys); // checked now; each subtask makes its own
        let keys = edge.keys.clone();
        Ok(Arc::new(move |info: &TaskInfo| {
            Ok(
                Box::new(RepartitionSink::try_new(channel.clone(), &keys, info)?)
                    as Box<dyn Operator>,
            )
        }))
    }

    fn source(&self, edge: &RepartitionEdge) -> Result<Arc<dyn SourceSpec>> {
        Ok(Arc::new(RepartitionSourceSpec {
            channel: self.channel(edge),
            bounded: edge.bounded,
        }))
    }

    fn describe(&self, edge: &RepartitionEdge) -> String {
        format!(
            "repartition by ({}) through kafka topic {} on {}",
            edge.keys.join(", "),
            self.topic(edge),
            self.brokers.join(",")
        )
    }
}

/// What both ends of one channel know.
#[derive(Debug, Clone)]
struct Channel {
    brokers: Vec<String>,
    topic: String,
    timeout: Duration,
    shard: Shard,
    schema: SchemaRef,
}

impl Channel {
    /// Connects, creating the topic with one partition per shard if it is
    /// missing (several shards may race to; all agree on its size).
    fn connect(&self) -> Result<Kafka> {
        let kafka = Kafka::connect(&self.brokers, &self.topic, self.timeout)?;
        let n = self.shard.count();
        let deadline = Instant::now() + self.timeout;
        loop {
            match kafka.partitions(&self.topic) {
                Ok(p) if p.len() == n => return Ok(kafka),
                Ok(p) if p.len() > n || Instant::now() >= deadline => {
                    return Err(Error::Connector {
                        endpoint: kafka.endpoint(None),
                        message: format!(
                            "the repartition topic has {} partitions, but this run has {n} \
                             shards: give this run its own --run-id",
                            p.len()
                        ),
                    })
                }
                Ok(_) => {} // created by another shard a moment ago
                Err(missing) => {
                    let controller =
                        kafka
                            .client
                            .controller_client()
                            .map_err(|e| Error::Connector {
                                endpoint: kafka.endpoint(None),
                                message: e.to_string(),
                            })?;
                    // another shard may create it first: its answer is "exists"
                    let created = block_on_timeout(
                        &kafka.rt,
                        self.timeout,
                        controller.create_topic(self.topic.clone(), n as i32, 1, 5_000),
                    );
                    if Instant::now() >= deadline {
                        return Err(match created {
                            Err(why) => Error::Connector {
                                endpoint: kafka.endpoint(None),
                                message: format!("cannot create the repartition topic: {why}"),
                            },
                            Ok(()) => missing,
                        });
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Who wrote a record: shard `shard`'s producer subtask `subtask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Producer {
    shard: u32,
    subtask: u32,
}

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rows,
    Watermark(i64),
    /// The producer has no input for now: leave it out of the watermark.
    Idle,
    End,
    /// The producer restored checkpoint `c` (sent before anything else).
    Restored(u64),
}

/// A record's header, before the Arrow IPC payload of `Rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Envelope {
    kind: Kind,
    producer: Producer,
    shards: u32,
    subtasks: u32,
    epoch: u64,
    seq: u64,
    /// The checkpoint whose state held the record (0: a run without checkpoints).
    checkpoint: u64,
}

const MAGIC: &[u8; 8] = b"WEIRRP02";
const HEADER: usize = 8 + 1 + 4 * 4 + 8 + 8 + 8 + 8;

impl Envelope {
    fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + payload.len());
        v.extend_from_slice(MAGIC);
        let (kind, arg) = match self.kind {
            Kind::Rows => (0u8, 0i64),
            Kind::Watermark(t) => (1, t),
            Kind::End => (2, i64::MAX),
            Kind::Idle => (3, 0),
            Kind::Restored(c) => (4, c as i64),
        };
        v.push(kind);
        for x in [
            self.producer.shard,
            self.shards,
            self.producer.subtask,
            self.subtasks,
        ] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&self.epoch.to_le_bytes());
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(&arg.to_le_bytes());
        v.extend_from_slice(&self.checkpoint.to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn decode(bytes: &[u8]) -> Option<(Envelope, &[u8])> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let arg = u64_at(41);
        let kind = match bytes[8] {
            0 => Kind::Rows,
            1 => Kind::Watermark(arg as i64),
            2 => Kind::End,
            3 => Kind::Idle,
            4 => Kind::Restored(arg),
            _ => return None,
        };
        let e = Envelope {
            kind,
            producer: Producer {
                shard: u32_at(9),
                subtask: u32_at(17),
            },
            shards: u32_at(13),
            subtasks: u32_at(21),
            epoch: u64_at(25),
            seq: u64_at(33),
            checkpoint: u64_at(49),
        };
        Some((e, &bytes[HEADER..]))
    }
}

fn ipc_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    Ok(out)
}

fn ipc_batches(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    let reader = arrow_ipc::reader::StreamReader::try_new(bytes, None)?;
    reader.map(|b| b.map_err(Error::Arrow)).collect()
}

/// The producing end's connection: one client per partition.
struct Outlet {
    kafka: Kafka,
    partitions: Vec<PartitionClient>,
}

impl Outlet {
    /// Produces `records` (partition, value) in order: per partition, in
    /// requests of at most [`REQUEST_BYTES`] (a broker refuses larger record
    /// batches; Kafka's default limit is 1 MiB).
    fn produce(&self, records: &[(u32, Vec<u8>)]) -> Result<()> {
        let mut by_partition: BTreeMap<u32, Vec<Vec<Record>>> = BTreeMap::new();
        let mut bytes: BTreeMap<u32, usize> = BTreeMap::new();
        for (p, value) in records {
            let requests = by_partition.entry(*p).or_default();
            let size = bytes.entry(*p).or_default();
            if requests.is_empty() || *size + value.len() > REQUEST_BYTES {
                requests.push(Vec::new());
                *size = 0;
            }
            *size += value.len();
            requests.last_mut().expect("pushed above").push(Record {
                key: None,
                value: Some(value.clone()),
                headers: BTreeMap::new(),
                timestamp: rskafka::chrono::Utc::now(),
            });
        }
        for (p, requests) in by_partition {
            let client = &self.partitions[p as usize];
            for recs in requests {
                self.kafka.call(
                    Some(p as i32),
                    "produce (repartition)",
                    Duration::ZERO,
                    client.produce(recs, Compression::NoCompression),
                )?;
            }
        }
        Ok(())
    }
}

/// A checkpoint's records, produced when it completes.
struct ProduceOnCommit {
    outlet: Arc<Mutex<Outlet>>,
    records: Vec<(u32, Vec<u8>)>,
}

impl PendingCommit for ProduceOnCommit {
    fn commit(self: Box<Self>) -> Result<()> {
        let outlet = self.outlet.lock().unwrap_or_else(|e| e.into_inner());
        outlet.produce(&self.records)
    }
}

/// What a producer keeps in a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct SinkState {
    epoch: u64,
    /// The last sequence number sent to each partition.
    seqs: Vec<u64>,
    /// The checkpoint's records (partition, value): produced again after a restore.
    records: Vec<(u32, Vec<u8>)>,
}

const SINK_STATE: &str = "repartition.sink";
const SOURCE_STATE: &str = "repartition.source";

/// A record made, its checkpoint not yet known.
struct Pending {
    partition: u32,
    envelope: Envelope,
    payload: Vec<u8>,
}

/// The producing end: one subtask of a shard's repartition sink.
pub struct RepartitionSink {
    // config
    channel: Arc<Channel>,
    keys: KeyEncoder,
    producer: Producer,
    subtasks: u32,
    // state
    checkpointed: bool,
    epoch: u64,
    /// The last sequence number of each partition (consecutive per partition,
    /// so a consumer sees a lost record as a jump).
    seqs: Vec<u64>,
    buffers: Vec<Vec<RecordBatch>>,
    buffered_rows: usize,
    /// Records made and not yet produced (checkpointed: not yet in a checkpoint).
    pending: Vec<Pending>,
    watermark: Option<i64>,
    idle: bool,
    sent_watermark: Option<i64>,
    sent_at: Instant,
    flushed_at: Instant,
    // resources
    outlet: Option<Arc<Mutex<Outlet>>>,
}

impl RepartitionSink {
    fn try_new(channel: Arc<Channel>, keys: &[String], info: &TaskInfo) -> Result<Self> {
        let n = channel.shard.count();
        Ok(RepartitionSink {
            keys: KeyEncoder::try_new(&channel.schema, keys, "repartition")?,
            producer: Producer {
                shard: channel.shard.index() as u32,
                subtask: info.subtask as u32,
            },
            subtasks: info.parallelism as u32,
            checkpointed: false,
            epoch: weir_core::operator::now_us() as u64,
            seqs: vec![0; n],
            buffers: vec![Vec::new(); n],
            buffered_rows: 0,
            pending: Vec::new(),
            watermark: None,
            idle: false,
            sent_watermark: None,
            sent_at: Instant::now(),
            flushed_at: Instant::now(),
            outlet: None,
            channel,
        })
    }

    fn envelope(&mut self, kind: Kind, partition: usize) -> Envelope {
        self.seqs[partition] += 1;
        Envelope {
            kind,
            producer: self.producer,
            shards: self.channel.shard.count() as u32,
            subtasks: self.subtasks,
            epoch: self.epoch,
            seq: self.seqs[partition],
            checkpoint: 0,
        }
    }

    /// Turns the buffered rows into records of at most [`RECORD_BYTES`] each.
    fn seal_rows(&mut self) -> Result<()> {
        for p in 0..self.buffers.len() {
            if self.buffers[p].is_empty() {
                continue;
            }
            let batches = std::mem::take(&mut self.buffers[p]);
            let batch = arrow_select::concat::concat_batches(&self.channel.schema, &batches)?;
            let row_bytes = (batch.get_array_memory_size() / batch.num_rows().max(1)).max(1);
            let per_record = (RECORD_BYTES / row_bytes).max(1);
            let mut offset = 0;
            while offset < batch.num_rows() {
                let len = per_record.min(batch.num_rows() - offset);
                let payload = ipc_bytes(&batch.slice(offset, len))?;
                let envelope = self.envelope(Kind::Rows, p);
                self.pending.push(Pending {
                    partition: p as u32,
                    envelope,
                    payload,
                });
                offset += len;
            }
        }
        self.buffered_rows = 0;
        self.flushed_at = Instant::now();
        Ok(())
    }

    /// A record of `kind` to every partition, after the rows buffered so far.
    fn seal_marker(&mut self, kind: Kind) -> Result<()> {
        self.seal_rows()?;
        for p in 0..self.buffers.len() {
            let envelope = self.envelope(kind, p);
            self.pending.push(Pending {
                partition: p as u32,
                envelope,
                payload: Vec::new(),
            });
        }
        Ok(())
    }

    /// The pending records, encoded as held by checkpoint `checkpoint` (0: none).
    fn take_records(&mut self, checkpoint: u64) -> Vec<(u32, Vec<u8>)> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|r| {
                let envelope = Envelope {
                    checkpoint,
                    ..r.envelope
                };
                (r.partition, envelope.encode(&r.payload))
            })
            .collect()
    }

    /// Without checkpoints: produces the records made so far.
    fn send(&mut self) -> Result<()> {
        if self.checkpointed || self.pending.is_empty() {
            return Ok(());
        }
        let records = self.take_records(0);
        let outlet = self.outlet.as_ref().expect("opened").clone();
        let outlet = outlet.lock().unwrap_or_else(|e| e.into_inner());
        outlet.produce(&records)
    }
}

impl Operator for RepartitionSink {
    fn open(&mut self, _ctx: &mut Ctx) -> Result<()> {
        let kafka = self.channel.connect()?;
        let partitions = (0..self.channel.shard.count() as i32)
            .map(|p| kafka.partition_client(p))
            .collect::<Result<Vec<_>>>()?;
        self.outlet = Some(Arc::new(Mutex::new(Outlet { kafka, partitions })));
        Ok(())
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut Ctx,
        _out: &mut Output,
    ) -> Result<()> {
        let n = self.buffers.len();
        let hashes = self.keys.hashes(&batch)?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (i, h) in hashes.iter().enumerate() {
            rows[subtask_for_key_group(key_group(*h), n)].push(i as u32);
        }
        for (p, idx) in rows.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let part = arrow_select::take::take_record_batch(
                &batch,
                &arrow_array::UInt32Array::from(idx),
            )?;
            self.buffered_rows += part.num_rows();
            self.buffers[p].push(part);
        }
        self.idle = false;
        // rows wait at most ~100 ms (or a checkpoint) however slowly they come
        if self.buffered_rows >= FLUSH_ROWS || self.flushed_at.elapsed() >= WATERMARK_EVERY {
            self.seal_rows()?;
            self.send()?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: Watermark, _ctx: &mut Ctx, _out: &mut Output) -> Result<()> {
        let Some(t) = wm.event_time() else {
            // idle: consumers leave this producer out of their watermark
            if !self.idle {
                self.idle = true;
                self.seal_marker(Kind::Idle)?;
                self.sent_watermark = None;
                self.send()?;
            }
            return Ok(());
        };
        self.idle = false;
        self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
        if self.watermark != self.sent_watermark && self.sent_at.elapsed() >= WATERMARK_EVERY {
            let w = self.watermark.expect("set above");
            self.seal_marker(Kind::Watermark(w))?;
            self.sent_watermark = self.watermark;
            self.sent_at = Instant::now();
            self.send()?;
        }
        Ok(())
    }

    fn on_end_of_input(&mut self, _ctx: &mut Ctx, _out: &mut Output) -> Result<()> {
        self.seal_marker(Kind::End)?;
        self.send()
    }

    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        self.seal_rows()?;
        if !self.idle && self.watermark != self.sent_watermark {
            let t = self.watermark.expect("differs from what was sent");
            self.seal_marker(Kind::Watermark(t))?;
            self.sent_watermark = self.watermark;
        }
        let saved = SinkState {
            epoch: self.epoch,
            seqs: self.seqs.clone(),
            records: self.take_records(state.checkpoint()),
        };
        state.put(SINK_STATE, &saved)?;
        if !saved.records.is_empty() {
            // kept in the state (encoded above), produced when it completes
            let outlet = self.outlet.as_ref().expect("opened").clone();
            let records = saved.records;
            ctx.commits().stage_for(
                state.checkpoint(),
                Box::new(ProduceOnCommit { outlet, records }),
            );
        }
        Ok(())
    }

    fn restore(&mut self, _ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.checkpointed = true;
        let Some(saved) = state.value::<SinkState>(SINK_STATE)? else {
            return Ok(());
        };
        self.epoch = saved.epoch;
        if saved.seqs.len() != self.seqs.len() {
            return Err(Error::Checkpoint {
                location: self.channel.topic.clone(),
                message: format!(
                    "the checkpoint's producer wrote {} partitions, the topic has {}",
                    saved.seqs.len(),
                    self.seqs.len()
                ),
            });
        }
        self.seqs = saved.seqs;
        let restored = state.checkpoint().unwrap_or(0);
        // first say which checkpoint this is (a consumer that saw records of
        // a later one refuses: rows would repeat), then produce that
        // checkpoint's records again: they may not all have gone out before
        // the process died, and consumers drop the ones they had
        let mut records: Vec<(u32, Vec<u8>)> = (0..self.buffers.len() as u32)
            .map(|p| {
                let envelope = Envelope {
                    kind: Kind::Restored(restored),
                    producer: self.producer,
                    shards: self.channel.shard.count() as u32,
                    subtasks: self.subtasks,
                    epoch: self.epoch,
                    seq: 0, // not a replay: never dropped
                    checkpoint: restored,
                };
                (p, envelope.encode(&[]))
            })
            .collect();
        records.extend(saved.records);
        let outlet = self.outlet.as_ref().expect("opened before restore").clone();
        let outlet = outlet.lock().unwrap_or_else(|e| e.into_inner());
        outlet.produce(&records)
    }
}

/// The consuming end: the source of the rows sent to this shard.
#[derive(Debug)]
pub struct RepartitionSourceSpec {
    channel: Channel,
    bounded: bool,
}

impl SourceSpec for RepartitionSourceSpec {
    fn name(&self) -> &str {
        "repartition"
    }

    fn schema(&self) -> &SchemaRef {
        &self.channel.schema
    }

    fn boundedness(&self) -> Boundedness {
        if self.bounded {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }

    fn max_parallelism(&self) -> Option<usize> {
        Some(1) // one partition per shard
    }

    fn create(self: Arc<Self>, _task: &TaskInfo) -> Result<Box<dyn Source>> {
        Ok(Box::new(RepartitionSource {
            spec: self,
            state: SourceState::default(),
            gap_since: None,
            inlet: None,
        }))
    }
}

/// What a consumer knows of one producer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProducerState {
    epoch: u64,
    last_seq: u64,
    watermark: Option<i64>,
    /// Said it has no input for now (left out of the watermark).
    idle: bool,
    ended: bool,
    /// The latest checkpoint whose records it sent.
    checkpoint: u64,
}

/// A consumer's position and producers (its checkpoint).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SourceState {
    next_offset: i64,
    /// Every producer heard of, by (shard, subtask).
    producers: BTreeMap<Producer, ProducerState>,
    /// The producer subtasks of each shard heard of.
    subtasks: BTreeMap<u32, u32>,
    emitted: Option<i64>,
}

/// One shard's consumer.
pub struct RepartitionSource {
    // config
    spec: Arc<RepartitionSourceSpec>,
    // state
    state: SourceState,
    /// Since when the next record is missing from what fetches return.
    gap_since: Option<Instant>,
    // resources
    inlet: Option<(Kafka, PartitionClient)>,
}

impl RepartitionSource {
    fn endpoint(&self) -> String {
        format!(
            "kafka {} topic {} partition {}",
            self.spec.channel.brokers.join(","),
            self.spec.channel.topic,
            self.spec.channel.shard.index()
        )
    }

    fn bad(&self, offset: i64, message: String) -> Error {
        Error::Connector {
            endpoint: self.endpoint(),
            message: format!("offset {offset}: {message}"),
        }
    }

    /// The lowest watermark of all producers of all shards, once every
    /// one has spoken (an ended producer counts as done, an idle one not at
    /// all; `None` while only idle ones are left).
    fn watermark(&self) -> Option<i64> {
        let n = self.spec.channel.shard.count() as u32;
        let mut min: Option<i64> = None;
        for shard in 0..n {
            let subtasks = *self.state.subtasks.get(&shard)?;
            for subtask in 0..subtasks {
                let p = self.state.producers.get(&Producer { shard, subtask })?;
                let w = match (p.ended, p.idle) {
                    (true, _) => i64::MAX,
                    (false, true) => continue,
                    (false, false) => p.watermark?,
                };
                min = Some(min.map_or(w, |m| m.min(w)));
            }
        }
        min
    }

    fn on_record(&mut self, offset: i64, value: &[u8], out: &mut Output) -> Result<()> {
        let n = self.spec.channel.shard.count() as u32;
        let (e, payload) = Envelope::decode(value)
            .ok_or_else(|| self.bad(offset, "not a record of weir's repartition".into()))?;
        if e.shards != n {
            return Err(self.bad(
                offset,
                format!(
                    "written by a run of {} shards, this one has {n}: give each run its own --run-id",
                    e.shards
                ),
            ));
        }
        let known = *self
            .state
            .subtasks
            .entry(e.producer.shard)
            .or_insert(e.subtasks);
        if known != e.subtasks {
            return Err(self.bad(
                offset,
                format!(
                    "shard {} changed its parallelism from {} to {} while its rows were in \
                     flight: restore it at its old parallelism",
                    e.producer.shard, known, e.subtasks
                ),
            ));
        }
        let epoch = self
            .state
            .producers
            .entry(e.producer)
            .or_insert(ProducerState {
                epoch: e.epoch,
                ..ProducerState::default()
            })
            .epoch;
        if epoch != e.epoch {
            return Err(self.bad(
                offset,
                format!(
                    "shard {} subtask {} started over without its checkpoint: the rows it sent \
                     before would count twice; run all shards again under a new --run-id",
                    e.producer.shard, e.producer.subtask
                ),
            ));
        }
        let p = self
            .state
            .producers
            .get_mut(&e.producer)
            .expect("inserted above");
        if let Kind::Restored(c) = e.kind {
            if c < p.checkpoint {
                let sent = p.checkpoint;
                return Err(self.bad(
                    offset,
                    format!(
                        "shard {} subtask {} restored checkpoint {c}, but had sent the rows of \
                         checkpoint {sent}: they would count twice; restore that shard from its \
                         newest checkpoint",
                        e.producer.shard, e.producer.subtask
                    ),
                ));
            }
            return Ok(());
        }
        if e.seq <= p.last_seq {
            return Ok(()); // a replay after the producer restored
        }
        if e.seq != p.last_seq + 1 {
            let last = p.last_seq;
            return Err(self.bad(
                offset,
                format!(
                    "shard {} subtask {} sent record {} after {last}: records in between are \
                     lost (was the topic truncated, or written by another program?)",
                    e.producer.shard, e.producer.subtask, e.seq
                ),
            ));
        }
        p.last_seq = e.seq;
        p.checkpoint = p.checkpoint.max(e.checkpoint);
        match e.kind {
            Kind::Watermark(t) => {
                p.watermark = Some(p.watermark.map_or(t, |w| w.max(t)));
                p.idle = false;
            }
            Kind::Idle => p.idle = true,
            Kind::End => p.ended = true,
            Kind::Restored(_) => unreachable!("handled above"),
            Kind::Rows => {
                p.idle = false;
                for batch in ipc_batches(payload)? {
                    if batch.schema().fields() != self.spec.channel.schema.fields() {
                        return Err(self.bad(offset, "rows of another schema".into()));
                    }
                    out.emit(batch);
                }
            }
        }
        Ok(())
    }
}

impl Source for RepartitionSource {
    fn open(&mut self, _ctx: &mut Ctx) -> Result<()> {
        let kafka = self.spec.channel.connect()?;
        let client = kafka.partition_client(self.spec.channel.shard.index() as i32)?;
        self.inlet = Some((kafka, client));
        Ok(())
    }

    fn poll_next(&mut self, _ctx: &mut Ctx, out: &mut Output) -> Result<SourcePoll> {
        let all_ended = !self.state.producers.is_empty()
            && self.watermark() == Some(i64::MAX)
            && self.state.producers.values().all(|p| p.ended);
        if all_ended {
            return Ok(SourcePoll::Exhausted);
        }
        let (kafka, client) = self.inlet.as_ref().expect("opened");
        let (records, _) = kafka.call(
            Some(client.partition()),
            "fetch (repartition)",
            Duration::from_millis(FETCH_WAIT_MS as u64),
            client.fetch_records(self.state.next_offset, 1..(8 << 20), FETCH_WAIT_MS),
        )?;
        let mut any = false;
        let mut records = records;
        records.sort_by_key(|r| r.offset);
        for r in records {
            if r.offset < self.state.next_offset {
                continue;
            }
            if r.offset > self.state.next_offset {
                // a repartition topic has no gaps (no compaction, no
                // transactions): records below this one are not visible yet
                // (seen with tansu under concurrent producers); fetch again
                let since = *self.gap_since.get_or_insert_with(Instant::now);
                if since.elapsed() > self.spec.channel.timeout {
                    return Err(self.bad(
                        self.state.next_offset,
                        format!(
                            "records {}..{} stay missing (a compacted topic, or one another \
                             program writes?)",
                            self.state.next_offset, r.offset
                        ),
                    ));
                }
                break;
            }
            self.gap_since = None;
            let value = r.record.value.unwrap_or_default();
            self.on_record(r.offset, &value, out)?;
            self.state.next_offset = r.offset + 1;
            any = true;
        }
        if let Some(w) = self.watermark() {
            if self.state.emitted.is_none_or(|e| w > e) && w != i64::MAX {
                out.emit_watermark(Watermark::EventTime(w));
                self.state.emitted = Some(w);
            }
        }
        Ok(if any {
            SourcePoll::Ready
        } else {
            SourcePoll::Pending
        })
    }

    fn snapshot(&mut self, _ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        state.put(SOURCE_STATE, &self.state)
    }

    fn restore(&mut self, _ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        if let Some(saved) = state.value::<SourceState>(SOURCE_STATE)? {
            self.state = saved;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_foreign_bytes_are_not_ours() {
        let e = Envelope {
            kind: Kind::Watermark(-5),
            producer: Producer {
                shard: 2,
                subtask: 1,
            },
            shards: 3,
            subtasks: 4,
            epoch: 77,
            seq: 9,
            checkpoint: 12,
        };
        let bytes = e.encode(b"payload");
        let (back, payload) = Envelope::decode(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(payload, b"payload");
        for kind in [Kind::Rows, Kind::Idle, Kind::End, Kind::Restored(5)] {
            let e = Envelope { kind, ..e };
            assert_eq!(Envelope::decode(&e.encode(&[])).unwrap().0, e);
        }
        assert!(Envelope::decode(b"{\"key\": 1}").is_none());
        assert!(Envelope::decode(&bytes[..HEADER - 1]).is_none());
    }

    /// A consumer of shard 0 of 2 (no broker: records are handed to it).
    fn consumer() -> RepartitionSource {
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "k",
            arrow_schema::DataType::Int64,
            false,
        )]));
        RepartitionSource {
            spec: Arc::new(RepartitionSourceSpec {
                channel: Channel {
                    brokers: vec!["unused:1".into()],
                    topic: "t".into(),
                    timeout: Duration::from_secs(1),
                    shard: Shard::try_new(0, 2).unwrap(),
                    schema,
                },
                bounded: true,
            }),
            state: SourceState::default(),
            gap_since: None,
            inlet: None,
        }
    }

    fn record(shard: u32, seq: u64, kind: Kind, checkpoint: u64, epoch: u64) -> Vec<u8> {
        Envelope {
            kind,
            producer: Producer { shard, subtask: 0 },
            shards: 2,
            subtasks: 1,
            epoch,
            seq,
            checkpoint,
        }
        .encode(&[])
    }

    #[test]
    fn a_consumer_waits_for_every_producer_drops_replays_and_refuses_rewinds() {
        let mut c = consumer();
        let mut out = Output::new();
        c.on_record(0, &record(0, 1, Kind::Watermark(100), 1, 7), &mut out)
            .unwrap();
        assert_eq!(c.watermark(), None, "shard 1 has not spoken");
        c.on_record(1, &record(1, 1, Kind::Watermark(50), 1, 8), &mut out)
            .unwrap();
        assert_eq!(c.watermark(), Some(50));
        // an idle producer is left out; a replayed watermark is dropped
        c.on_record(2, &record(1, 2, Kind::Idle, 2, 8), &mut out)
            .unwrap();
        assert_eq!(c.watermark(), Some(100));
        c.on_record(3, &record(1, 1, Kind::Watermark(10), 1, 8), &mut out)
            .unwrap();
        assert_eq!(c.watermark(), Some(100), "seq 1 was seen: a replay");
        // a restore of the checkpoint whose records it last sent is fine ...
        c.on_record(4, &record(0, 0, Kind::Restored(1), 1, 7), &mut out)
            .unwrap();
        // ... of an older one is refused: its rows since would repeat
        let e = c
            .on_record(5, &record(1, 0, Kind::Restored(1), 1, 8), &mut out)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("restored checkpoint 1") && e.contains("checkpoint 2"),
            "{e}"
        );
        // a record missing in between is an error, never a silent loss
        let e = c
            .on_record(6, &record(0, 5, Kind::Watermark(200), 1, 7), &mut out)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sent record 5 after 1") && e.contains("lost"),
            "{e}"
        );
        // a producer that started over (another epoch) is refused
        let e = c
            .on_record(6, &record(0, 9, Kind::End, 0, 99), &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("started over without its checkpoint"), "{e}");
        let e = c.on_record(7, b"{}", &mut out).unwrap_err().to_string();
        assert!(e.contains("offset 7") && e.contains("not a record"), "{e}");
    }

    #[test]
    fn topic_names_are_checked_and_edges_sanitised() {
        let r = KafkaRepartition::try_new(["localhost:9092"], "job-1", "run_2").unwrap();
        let edge = RepartitionEdge {
            name: "top n: window".into(),
            schema: Arc::new(arrow_schema::Schema::empty()),
            keys: vec![],
            shard: Shard::try_new(0, 2).unwrap(),
            bounded: true,
        };
        assert_eq!(r.topic(&edge), "weir.job-1.run_2.top_n__window");
        let e = KafkaRepartition::try_new(["b:1"], "job", "a/b").unwrap_err();
        assert!(e.to_string().contains("run-id"), "{e}");
        assert!(KafkaRepartition::try_new(Vec::<String>::new(), "j", "r").is_err());
    }
}
