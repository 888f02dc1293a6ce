//! The sink side: [`KafkaSinkSpec`] → [`PreparedKafkaSink`] →
//! [`KafkaSink`] per subtask, producing one JSON record per row to the
//! partition Kafka's default partitioner picks for its key; and the JSON
//! rows and key texts the Redis sink shares.
//!
//! May use what the parent module imports.

use super::*;

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
        let json =
            crate::json_out::json_rows(batch, &format!("kafka sink {}", self.sink.spec.topic))?;
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
pub(super) fn murmur2(data: &[u8]) -> u32 {
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
