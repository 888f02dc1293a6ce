//! Live (unbounded) sources: brokers, sockets, stdin, watched directories
//! and generators, behind one [`Source`] that decodes, timestamps and
//! watermarks their records.
//!
//! Owns the [`Connector`] contract (what a transport must do), the generic
//! [`LiveSource`] built from a [`LiveSourceSpec`], dead letters, start
//! positions and the positions a run ended at. May use `operator`, `time`,
//! `error`, `message` and the sibling `replay` module; never `exec`/`graph`.
//!
//! ```text
//!  connector.fetch ─► raw records (partition, position, JSON payload)
//!     ─► group by partition ─► JsonDecoder ─► bad records ─► dead letters (port 2)
//!     │                                     (or an error naming source + position)
//!     ─► time range filter (hybrid hand-off) ─► PartitionClock: late rows ─► port 1
//!     ─► emit rows, then the watermark (min over partitions)
//!  stop requested, or a bounded read reached its end offsets ─► Exhausted
//! ```
//!
//! **Checkpoints.** A snapshot (between two polls: everything fetched was
//! emitted) writes `live.positions` (the connector's
//! [`Connector::checkpoint`]: per partition name the position after the
//! last record, plus connector details), `live.clock` (each partition's
//! watermark generator by name and the last watermark, see
//! [`PartitionClock`]) and `live.in_history`; a hybrid source also writes
//! its history reader's state (`parquet.splits`), kept after the hand-off
//! so a later rescale never replays history. A restore merges every old
//! subtask's positions (partitions are named globally, so a rescaled
//! subtask finds its own) and [`Connector::seek`]s there. Connectors that
//! cannot replay (TCP, stdin) refuse the snapshot with an error naming the
//! source. Exactness: each partition continues with the same records and
//! generator; the interleaving of partitions is the same for the memory
//! and Redis connectors, for Kafka it depends on fetch sizes (as it does
//! between two uninterrupted runs).

pub mod clock;
pub mod decode;
pub mod dir;
pub mod json_scan;
pub mod line_reader;
pub mod lines;
pub mod memory;
mod source;

pub use clock::{ClockState, PartitionClock};
pub use decode::{dead_letter_schema, DeadLetter, JsonDecoder, Position, RawRecord};
pub use source::LiveSource;

use super::replay::TimeRange;
use super::{ParquetSource, ParquetSourceSpec};
use arrow_schema::SchemaRef;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use weir_core::error::{Error, Result};
use weir_core::operator::{Ctx, OperatorMetrics, Output, Source, SourcePoll, TaskInfo};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::{event_times, validate_time_column, LatenessRule, WatermarkStrategy};

pub use weir_core::operator::DEAD_LETTER_PORT;

/// What a connector's fetch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Records were appended (there may be more right away).
    Records,
    /// Nothing available now; fetch again later.
    Idle,
    /// No record will ever come (socket closed, bounded read at its end).
    End,
}

/// A transport that delivers records of one or more partitions to one
/// source subtask. Implementations: Kafka, Redis Streams, TCP, stdin,
/// watched directories.
pub trait Connector: Send {
    /// Names of the partitions this instance reads (e.g. `orders/0`), in
    /// the order `RawRecord::partition` indexes them.
    fn partitions(&self) -> Vec<String>;

    /// Appends up to `max` records to `out`, waiting at most a few
    /// milliseconds for them.
    fn fetch(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<Fetch>;

    /// What the source accepts (record size, required columns), given once
    /// before the first fetch. Connectors that read records themselves
    /// (lines, files) apply it while reading; the default ignores it (the
    /// source checks every record it decodes anyway).
    fn set_record_rules(&mut self, rules: &RecordRules) {
        let _ = rules;
    }

    /// Moves the records this connector refused by itself since the last
    /// call (lines over the size limit, unreadable or incompatible files)
    /// to `out`; the source sends them on as dead letters, or fails with
    /// the first under `OnError::Fail`.
    fn take_dead_letters(&mut self, out: &mut Vec<DeadLetter>) {
        let _ = out;
    }

    /// Rows that arrive already columnar (Parquet files in a watched
    /// directory): the partition and a batch in the source's schema. The
    /// source takes these before fetching records.
    fn take_batch(&mut self) -> Result<Option<(usize, arrow_array::RecordBatch)>> {
        Ok(None)
    }

    /// Partitions (indices) that reached their end in a bounded read.
    fn finished_partitions(&self) -> Vec<usize> {
        Vec::new()
    }

    /// Where each partition resumes: the position after the last record
    /// fetched (what a restart passes back as [`StartFrom::Positions`]).
    fn positions(&self) -> BTreeMap<String, Position>;

    /// Records between what it handed out and the head of what it reads
    /// (a broker's end offsets), when it knows: the source's lag.
    fn records_behind(&self) -> Option<u64> {
        None
    }

    /// Everything needed to continue exactly here, for a checkpoint: the
    /// position after the last record fetched of each partition (by name),
    /// plus connector details under keys that are not partition names
    /// (`NAME#end`, ...). The default refuses: the input cannot be replayed.
    fn checkpoint(&self) -> Result<BTreeMap<String, Position>> {
        Err(not_replayable(&self.partitions()))
    }

    /// Continues from `saved`, before the first fetch. `saved` merges the
    /// checkpoints of every old subtask after a rescale: a connector takes
    /// the partitions it owns and ignores the rest; an owned partition not
    /// in it starts where the connector was configured to start.
    fn seek(&mut self, saved: &BTreeMap<String, Position>) -> Result<()> {
        let _ = saved;
        Err(not_replayable(&self.partitions()))
    }
}

/// What a live source accepts of its connector's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRules {
    /// Longest record in bytes (default 1 MiB); a longer one is a dead
    /// letter keeping its first [`line_reader::PREFIX_BYTES`] bytes.
    pub max_record_bytes: usize,
    /// Columns a row must have (not null), e.g. the event time.
    pub required: Vec<String>,
}

impl Default for RecordRules {
    fn default() -> Self {
        RecordRules {
            max_record_bytes: 1 << 20,
            required: Vec::new(),
        }
    }
}

/// The error of a connector that cannot replay its input.
pub fn not_replayable(partitions: &[String]) -> Error {
    Error::Checkpoint {
        location: partitions.join(", "),
        message: "this input cannot be replayed, so a restored job would lose records; \
                  checkpoints need a replayable source (Parquet, Kafka, Redis Streams, \
                  a watched directory or a generator)"
            .into(),
    }
}

/// State entry: the connector's checkpoint.
const POSITIONS: &str = "live.positions";
/// State entry: the partition clock.
const CLOCK: &str = "live.clock";
/// State entry: true while a hybrid source still reads its history.
const IN_HISTORY: &str = "live.in_history";

/// Builds a subtask's connector.
pub type ConnectorFactory = Arc<dyn Fn(&TaskInfo) -> Result<Box<dyn Connector>> + Send + Sync>;

/// Where a broker source starts reading.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest retained record (the default).
    #[default]
    Earliest,
    /// Only records produced after the job started.
    Latest,
    /// The first record whose broker timestamp is at or after this epoch ms.
    Timestamp(i64),
    /// Stored positions per partition name (partitions not listed: earliest).
    Positions(BTreeMap<String, Position>),
}

/// What to do with a record that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop the job with an error naming the source, partition and position.
    #[default]
    Fail,
    /// Send it to the dead-letter output with its reason, count it, go on.
    DeadLetter,
}

impl std::str::FromStr for OnError {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "fail" | "error" => Ok(OnError::Fail),
            "dead_letter" | "deadletter" | "skip" => Ok(OnError::DeadLetter),
            _ => Err(Error::option(
                "on_error",
                format!("`{s}` is not a policy: use fail or dead_letter"),
            )),
        }
    }
}

/// The positions each partition of a source reached, shared by its
/// subtasks; read it after a run to resume from there.
pub type PositionLog = Arc<Mutex<BTreeMap<String, Position>>>;

/// A live source: a connector plus the schema its JSON records decode to,
/// event time, and the malformed-record policy.
#[derive(Clone)]
pub struct LiveSourceSpec {
    // config
    name: String,
    schema: SchemaRef,
    connector: ConnectorFactory,
    bounded: bool,
    event_time: Option<(usize, WatermarkStrategy)>,
    range: Option<(usize, TimeRange)>,
    on_error: OnError,
    max_records: usize,
    max_record_bytes: usize,
    /// At most this many subtasks (1 for sockets and stdin).
    max_parallelism: Option<usize>,
    /// Hybrid source: this history is read first, up to the hand-off time.
    history: Option<Arc<ParquetSourceSpec>>,
    /// Files or folders the connector reads (a watched directory).
    inputs: Vec<std::path::PathBuf>,
    /// The connector assigns numbered partitions by `p % parallelism ==
    /// subtask` (Kafka, Redis), so shards can divide them.
    partitioned: bool,
    /// Read only this shard's partitions (`p mod N == i`).
    shard: Option<weir_core::shard::Shard>,
    // state shared by the subtasks
    positions: PositionLog,
    /// Per subtask, the records its connector is behind the head, if known.
    behind: Arc<std::sync::Mutex<BTreeMap<usize, u64>>>,
}

impl std::fmt::Debug for LiveSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSourceSpec")
            .field("name", &self.name)
            .field("bounded", &self.bounded)
            .field("on_error", &self.on_error)
            .finish()
    }
}

impl LiveSourceSpec {
    /// A source named `name` (used in errors and dead letters) whose records
    /// decode to `schema`. `bounded` says whether the connector ends by
    /// itself (batch mode accepts only bounded sources).
    pub fn new(
        name: impl Into<String>,
        schema: SchemaRef,
        connector: ConnectorFactory,
        bounded: bool,
    ) -> Self {
        LiveSourceSpec {
            name: name.into(),
            schema,
            connector,
            bounded,
            event_time: None,
            range: None,
            on_error: OnError::Fail,
            max_records: 8192,
            max_record_bytes: RecordRules::default().max_record_bytes,
            max_parallelism: None,
            history: None,
            inputs: Vec::new(),
            partitioned: false,
            shard: None,
            positions: Arc::default(),
            behind: Arc::default(),
        }
    }

    /// Decides late rows with `rule` (set by the planner from the operators
    /// this source feeds), in the history too; no effect without event time.
    pub fn with_lateness_rule(mut self, rule: LatenessRule) -> Self {
        if let Some(h) = self.history.take() {
            self.history = Some(Arc::new((*h).clone().with_lateness_rule(rule.clone())));
        }
        if let Some((_, strategy)) = self.event_time.as_mut() {
            strategy.lateness_rule = rule;
        }
        self
    }

    /// Declares the files or folders the connector reads (a watched
    /// directory), so the planner can refuse a sink that writes into them.
    pub fn with_input_paths(mut self, paths: Vec<std::path::PathBuf>) -> Self {
        self.inputs = paths;
        self
    }

    /// Everything this source reads from the file system: the declared
    /// paths and the history's files.
    pub fn input_paths(&self) -> Vec<std::path::PathBuf> {
        let mut out = self.inputs.clone();
        if let Some(h) = &self.history {
            out.extend(h.input_paths());
        }
        out
    }

    /// Event time from `column`, watermarks per partition with `strategy`
    /// (and per row group in the history of a hybrid source).
    pub fn with_event_time(mut self, column: &str, strategy: WatermarkStrategy) -> Result<Self> {
        let idx = validate_time_column(&self.schema, column, &self.name)?;
        strategy.validate(&self.schema, &self.name)?;
        if let Some(h) = self.history.take() {
            self.history = Some(Arc::new(
                (*h).clone().with_event_time(column, strategy.clone())?,
            ));
        }
        self.event_time = Some((idx, strategy));
        Ok(self)
    }

    /// Makes this a hybrid source: every subtask first replays its share of
    /// `history` (rows with `column` time before `handoff`), then reads the
    /// connector keeping only rows at or after `handoff`.
    ///
    /// ```text
    ///  history (Parquet, t < T) ──► then ──► connector (t >= T)
    ///  watermark: the history's last one is the live part's floor (it never
    ///  goes back), so window state built during the replay carries on
    /// ```
    /// No gap and no duplicate as long as the history holds exactly the
    /// records with `t < T` and the connector starts at or before the first
    /// record with `t >= T` (start a broker at `StartFrom::Timestamp(T)` when
    /// its record timestamps are the event times, as weir's sinks write them).
    pub fn with_history(
        self,
        history: ParquetSourceSpec,
        column: &str,
        handoff: i64,
    ) -> Result<Self> {
        let context = format!("hybrid source {}", self.name);
        for f in self.schema.fields() {
            match history.schema().field_with_name(f.name()) {
                Ok(h) if h.data_type() == f.data_type() => {}
                Ok(h) => {
                    return Err(Error::SchemaMismatch {
                        location: context,
                        message: format!(
                            "column `{}` is {} in the history but {} in the live schema",
                            f.name(),
                            h.data_type(),
                            f.data_type()
                        ),
                    })
                }
                Err(_) => {
                    return Err(Error::SchemaMismatch {
                        location: context,
                        message: format!("column `{}` is missing in the history", f.name()),
                    })
                }
            }
        }
        if history.schema().fields().len() != self.schema.fields().len() {
            return Err(Error::SchemaMismatch {
                location: context,
                message: "the history has columns the live schema lacks".into(),
            });
        }
        let until = TimeRange {
            from: None,
            until: Some(handoff),
        };
        let history = history.with_time_range(column, until)?;
        let mut s = self.with_time_range(
            column,
            TimeRange {
                from: Some(handoff),
                until: None,
            },
        )?;
        if let Some((col, strategy)) = s.event_time.clone() {
            let name = s.schema.field(col).name().clone();
            s.history = Some(Arc::new(history.with_event_time(&name, strategy)?));
        } else {
            s.history = Some(Arc::new(history));
        }
        Ok(s)
    }

    /// Keeps only rows whose `column` time is in `range` (the hybrid
    /// source's hand-off uses `[T, ∞)`).
    pub fn with_time_range(mut self, column: &str, range: TimeRange) -> Result<Self> {
        let idx = validate_time_column(&self.schema, column, &self.name)?;
        self.range = Some((idx, range));
        Ok(self)
    }

    /// What to do with malformed records (default: fail).
    pub fn with_on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// Most records decoded per poll (default 8192).
    pub fn with_max_records(mut self, n: usize) -> Self {
        self.max_records = n.max(1);
        self
    }

    /// Longest record accepted, in bytes (default 1 MiB): a longer one is a
    /// malformed record whose dead letter keeps its first
    /// [`line_reader::PREFIX_BYTES`] bytes. Line and file connectors skip
    /// the rest of such a line without holding it in memory.
    pub fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max.max(1);
        self
    }

    /// Runs the source with at most `n` subtasks (a socket or stdin is one
    /// stream: 1); the operators after it keep their own parallelism.
    pub fn with_max_parallelism(mut self, n: usize) -> Self {
        self.max_parallelism = Some(n.max(1));
        self
    }

    /// The most subtasks the source can run with, if limited.
    pub fn max_parallelism(&self) -> Option<usize> {
        self.max_parallelism
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema of the rows it emits.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// True if the source ends by itself.
    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    /// The event-time column, if set.
    pub fn time_column(&self) -> Option<&str> {
        self.event_time
            .as_ref()
            .map(|(i, _)| self.schema.field(*i).name().as_str())
    }

    /// Records subtask `subtask`'s connector is behind the head of its input.
    pub(crate) fn set_records_behind(&self, subtask: usize, records: u64) {
        let mut behind = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        behind.insert(subtask, records);
    }

    /// Positions the subtasks reached (updated as they read).
    pub fn positions(&self) -> PositionLog {
        self.positions.clone()
    }

    /// Declares that the connector gives partition `p` (its position in
    /// the connector's list) to the subtask with `p % parallelism ==
    /// subtask`, so shards can divide the partitions (Kafka, Redis).
    pub fn with_numbered_partitions(mut self) -> Self {
        self.partitioned = true;
        self
    }

    /// Subtask `info`'s source.
    pub fn create(self: &Arc<Self>, info: &TaskInfo) -> Result<LiveSource> {
        let mut connector = match self.shard {
            // shard i of N, subtask s of p: partitions with P mod N == i and
            // (P div N) mod p == s, which is P mod N·p == i + N·s
            Some(shard) => (self.connector)(&TaskInfo {
                operator: info.operator.clone(),
                subtask: shard.index() + shard.count() * info.subtask,
                parallelism: shard.count() * info.parallelism.max(1),
            })?,
            None => (self.connector)(info)?,
        };
        let required: Vec<usize> = self.event_time.iter().map(|(i, _)| *i).collect();
        connector.set_record_rules(&RecordRules {
            max_record_bytes: self.max_record_bytes,
            required: required
                .iter()
                .map(|&i| self.schema.field(i).name().clone())
                .collect(),
        });
        let partitions = connector.partitions();
        let mut decoder = JsonDecoder::try_new(self.schema.clone(), required)?
            .with_max_record_bytes(self.max_record_bytes);
        if let Some((column, _)) = &self.event_time {
            decoder = decoder.with_time_column(*column);
        }
        let clock = self
            .event_time
            .as_ref()
            .map(|(_, s)| PartitionClock::new(s.clone(), partitions.len()));
        Ok(LiveSource {
            history: self.history.as_ref().map(|h| h.create(info)),
            history_done: false,
            spec: self.clone(),
            partitions,
            connector,
            decoder,
            clock,
            buf: Vec::new(),
            letters: Vec::new(),
            ended: false,
        })
    }
}

impl weir_core::operator::SourceSpec for LiveSourceSpec {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn boundedness(&self) -> weir_core::operator::Boundedness {
        if self.bounded {
            weir_core::operator::Boundedness::Bounded
        } else {
            weir_core::operator::Boundedness::Unbounded
        }
    }

    fn max_parallelism(&self) -> Option<usize> {
        self.max_parallelism
    }

    fn input_paths(&self) -> Vec<std::path::PathBuf> {
        LiveSourceSpec::input_paths(self)
    }

    fn side_port_schema(&self, port: usize) -> Option<SchemaRef> {
        (port == DEAD_LETTER_PORT).then(dead_letter_schema)
    }

    fn records_behind(&self) -> Option<u64> {
        let behind = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        (!behind.is_empty()).then(|| behind.values().sum())
    }

    weir_core::operator::event_time_pushdown!();

    fn for_shard(&self, shard: weir_core::shard::Shard) -> Option<weir_core::operator::ShardShare> {
        if !self.partitioned || self.history.is_some() {
            return None; // a socket, a watched folder, a hybrid source's history
        }
        let mut share = self.clone();
        share.shard = Some(shard);
        Some(weir_core::operator::ShardShare::Partitions(Arc::new(share)))
    }

    fn create(self: Arc<Self>, task: &TaskInfo) -> Result<Box<dyn Source>> {
        Ok(Box::new(LiveSourceSpec::create(&self, task)?))
    }
}

#[cfg(test)]
mod tests;
