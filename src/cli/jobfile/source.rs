//! The `[source]` table, typed: its `type` picks the connector and the keys
//! it may hold ([`SourceConnector`]); the event-time keys are every
//! connector's ([`EventTimeSpec`]). A key the type does not take is refused
//! with its line, as is a value of the wrong type.
//!
//! Builds Parquet sources and assigns event time; the other connectors are
//! built in `connectors.rs`. May use the sibling `table` module.

use super::table::{field_names, refuse_rest, take, take_type, KeyError};
use super::*;
use toml::{Table, Value};

/// `[source]`: where rows come from and how event time is assigned.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The connector (`type`) and its settings.
    pub connector: SourceConnector,
    /// Event time, watermarks and parallelism (every connector).
    pub time: EventTimeSpec,
}

/// The connector of a `[source]`, by its `type`.
#[derive(Debug, Clone)]
pub enum SourceConnector {
    /// `type = "parquet"` (the default): files, with time travel.
    Parquet(FileTable, ReplayTable),
    /// `type = "csv"`: files with a header (or a schema).
    Csv(FileTable, CsvTable),
    /// `type = "stdin" | "tcp" | "dir" | "kafka" | "redis"`: JSON records as they come.
    Live(LiveTable, LiveConnector),
    /// `type = "generator"`: synthetic events.
    Generator(GeneratorTable),
}

/// The live connectors.
#[derive(Debug, Clone)]
pub enum LiveConnector {
    /// `stdin`: JSON lines on standard input.
    Stdin,
    /// `tcp`: JSON lines from a TCP server.
    Tcp(TcpTable),
    /// `dir`: JSON-lines files as they appear in a directory.
    Dir(DirTable),
    /// `kafka`: a topic.
    Kafka(KafkaTable),
    /// `redis`: streams.
    Redis(RedisTable),
}

/// Every source's event-time keys.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventTimeSpec {
    /// The event-time column.
    #[serde(default)]
    pub time_column: Option<String>,
    /// Bounded out-of-orderness, e.g. `"30s"`.
    #[serde(default)]
    pub watermark_delay: Option<String>,
    /// Punctuated watermarks: an Int64/Timestamp column whose values are watermarks.
    #[serde(default)]
    pub watermark_column: Option<String>,
    /// Punctuated watermarks: rows matching this expression set the watermark to their time.
    #[serde(default)]
    pub watermark_predicate: Option<String>,
    /// Rows up to this far behind the watermark still update their windows.
    #[serde(default)]
    pub allowed_lateness: Option<String>,
    /// After this long without rows the source stops holding back the watermark.
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// Parallelism of the source.
    #[serde(default)]
    pub parallelism: Option<usize>,
}

/// Parquet and CSV: which files and how to read them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FileTable {
    /// A file or directory; a relative path is relative to the job file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Several files or directories.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Projection: read only these columns (must include `time_column`).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Rows per batch read.
    #[serde(default)]
    pub batch_size: Option<usize>,
}

/// Parquet: time travel and replay speed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReplayTable {
    /// Replay from this event time (RFC 3339 UTC or epoch ms).
    #[serde(default)]
    pub from: Option<String>,
    /// Replay up to (not including) this event time.
    #[serde(default)]
    pub until: Option<String>,
    /// Replay speed: `max` (default), `realtime`, or a factor such as `60x`.
    #[serde(default)]
    pub speed: Option<String>,
}

/// CSV: the text format.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CsvTable {
    /// The files start with a header line naming the columns (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// The field delimiter, one ASCII character or `tab` (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// The columns, `"name: type"`; inferred from the header and first rows when absent.
    #[serde(default)]
    pub schema: Vec<String>,
}

/// Every live source's keys.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LiveTable {
    /// The columns, `"name: type"` (int64, int32, float64, float32, string,
    /// bool, timestamp[_s|_ms|_us|_ns]).
    #[serde(default)]
    pub schema: Vec<String>,
    /// End by themselves (read what is there at start, then stop).
    #[serde(default)]
    pub bounded: Option<bool>,
    /// `fail` (default) or `dead_letter` for malformed records.
    #[serde(default)]
    pub on_error: Option<String>,
    /// The longest record, in bytes or as a size such as `"4MiB"` (default
    /// 1 MiB); longer records are malformed (dead letters keeping their first KiB).
    #[serde(default)]
    pub max_record_bytes: Option<ByteSize>,
    /// `earliest` (default), `latest`, `after:NAME`, or an event time to start at.
    #[serde(default)]
    pub start: Option<String>,
    /// Hybrid source: replay this Parquet history before the live part.
    #[serde(default)]
    pub history: Option<HistorySpec>,
}

/// `tcp`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TcpTable {
    /// The `host:port` to connect to.
    #[serde(default)]
    pub address: Option<String>,
}

/// `dir`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DirTable {
    /// The directory to watch.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// How often to look for new files (default `200ms`).
    #[serde(default)]
    pub poll_interval: Option<String>,
}

/// `kafka`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KafkaTable {
    /// Bootstrap brokers (`host:port`).
    #[serde(default)]
    pub brokers: Vec<String>,
    /// The topic.
    #[serde(default)]
    pub topic: Option<String>,
}

/// `redis`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RedisTable {
    /// The server URL (`redis://host:port`).
    #[serde(default)]
    pub url: Option<String>,
    /// The stream keys (one partition each).
    #[serde(default)]
    pub keys: Vec<String>,
    /// The entry field holding the JSON record (default `data`).
    #[serde(default)]
    pub field: Option<String>,
}

/// `generator`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GeneratorTable {
    /// vehicles, nexmark-persons, nexmark-auctions or nexmark-bids.
    #[serde(default)]
    pub generator: Option<String>,
    /// Number of vehicles (default 100).
    #[serde(default)]
    pub vehicles: Option<usize>,
    /// Stop after this many events (default: run until stopped).
    #[serde(default)]
    pub events: Option<u64>,
    /// Nexmark events per second of event time (default 10000).
    #[serde(default)]
    pub rate: Option<u64>,
    /// Pace: `max` (default), `realtime`, or a factor such as `60x`.
    #[serde(default)]
    pub speed: Option<String>,
}

/// A size in a job file: a number of bytes or text such as `"4MiB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    /// Bytes.
    Bytes(u64),
    /// A size with a unit (`B`, `KiB`, `MiB`, `GiB`, ...).
    Text(String),
}

impl ByteSize {
    /// The size in bytes; `field` names it in errors.
    pub fn bytes(&self, field: &str) -> Result<usize> {
        match self {
            ByteSize::Bytes(0) => Err(Error::option(field, "must be at least 1 byte")),
            ByteSize::Bytes(n) => Ok(usize::try_from(*n).unwrap_or(usize::MAX)),
            ByteSize::Text(t) => weir_core::memory::parse_size(field, t),
        }
    }
}

/// `history = { path = "...", handoff = "2026-11-01T00:10:00Z" }`: rows
/// before `handoff` come from Parquet, the rest from the live source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySpec {
    /// A Parquet file or directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Several files or directories.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// The hand-off event time (RFC 3339 UTC or epoch ms).
    pub handoff: String,
}

/// The source types, for errors.
const SOURCE_TYPES: &str = "parquet, csv, stdin, tcp, dir, kafka, redis or generator";

impl SourceSpec {
    /// Reads a `[source]` table: `type` (default `parquet`) says which keys
    /// it may hold besides the event-time ones.
    pub(crate) fn from_table(mut table: Table) -> std::result::Result<Self, KeyError> {
        let kind = take_type(&mut table)?.unwrap_or_else(|| "parquet".into());
        // time travel belongs to Parquet: say so rather than "unknown field"
        for key in ["from", "until", "speed"] {
            let paced = key == "speed" && kind == "generator";
            if kind != "parquet" && !paced && table.contains_key(key) {
                return Err(KeyError::new(
                    Some(key),
                    format!(
                        "time travel and replay speed apply to Parquet sources; \
                         this source is `{kind}`"
                    ),
                ));
            }
        }
        let time: EventTimeSpec = take(&mut table)?;
        let mut takes = vec![field_names::<EventTimeSpec>()];
        let connector = match kind.as_str() {
            "parquet" => {
                takes.extend([field_names::<FileTable>(), field_names::<ReplayTable>()]);
                SourceConnector::Parquet(take(&mut table)?, take(&mut table)?)
            }
            "csv" => {
                takes.extend([field_names::<FileTable>(), field_names::<CsvTable>()]);
                SourceConnector::Csv(take(&mut table)?, take(&mut table)?)
            }
            "generator" => {
                takes.push(field_names::<GeneratorTable>());
                SourceConnector::Generator(take(&mut table)?)
            }
            "stdin" | "tcp" | "dir" | "kafka" | "redis" => {
                let live: LiveTable = take(&mut table)?;
                takes.push(field_names::<LiveTable>());
                let connector = match kind.as_str() {
                    "stdin" => LiveConnector::Stdin,
                    "tcp" => {
                        takes.push(field_names::<TcpTable>());
                        LiveConnector::Tcp(take(&mut table)?)
                    }
                    "dir" => {
                        takes.push(field_names::<DirTable>());
                        LiveConnector::Dir(take(&mut table)?)
                    }
                    "kafka" => {
                        takes.push(field_names::<KafkaTable>());
                        LiveConnector::Kafka(take(&mut table)?)
                    }
                    _ => {
                        takes.push(field_names::<RedisTable>());
                        LiveConnector::Redis(take(&mut table)?)
                    }
                };
                SourceConnector::Live(live, connector)
            }
            other => {
                return Err(KeyError::new(
                    Some("type"),
                    format!("unknown source type `{other}` (use {SOURCE_TYPES})"),
                ))
            }
        };
        refuse_rest(&table, &format!("a `{kind}` source"), &takes)?;
        Ok(SourceSpec { connector, time })
    }

    /// The `type` it was read from.
    pub fn kind(&self) -> &'static str {
        match &self.connector {
            SourceConnector::Parquet(..) => "parquet",
            SourceConnector::Csv(..) => "csv",
            SourceConnector::Generator(_) => "generator",
            SourceConnector::Live(_, live) => match live {
                LiveConnector::Stdin => "stdin",
                LiveConnector::Tcp(_) => "tcp",
                LiveConnector::Dir(_) => "dir",
                LiveConnector::Kafka(_) => "kafka",
                LiveConnector::Redis(_) => "redis",
            },
        }
    }
}

impl LoadedJob {
    /// Reads the source table at `field` (`source`, or a join's
    /// `steps[i].join.right.source`), with the command line's replay
    /// settings applied to the main one; errors name the key and its line,
    /// or the flag it came from.
    pub(super) fn typed_source(&self, table: &Spanned<Table>, field: &str) -> Result<SourceSpec> {
        let mut t = table.get_ref().clone();
        if field == "source" {
            for (i, (name, _)) in REPLAY_NAMES.iter().enumerate() {
                if let Some(v) = &self.replay_override[i] {
                    t.insert((*name).to_string(), Value::String(v.clone()));
                }
            }
        }
        SourceSpec::from_table(t).map_err(|e| {
            let flag = REPLAY_NAMES
                .iter()
                .position(|(name, _)| e.key.as_deref() == Some(*name))
                .filter(|&i| field == "source" && self.replay_flags[i]);
            match flag {
                Some(i) => Error::option(REPLAY_NAMES[i].1, e.message),
                None => self.key_error(table.span(), field, e),
            }
        })
    }

    /// Builds the source `table` at `field` describes.
    pub(super) fn source(&self, job: &Job, table: &Spanned<Table>, field: &str) -> Result<Stream> {
        let spec = self.typed_source(table, field)?;
        let span = table.span();
        let err = |f: &str, e: Error| {
            self.key_error(span.clone(), field, KeyError::new(Some(f), e.to_string()))
        };
        let resolve = |p: &Path| self.resolve(p);
        let files = |f: &FileTable| -> Result<Vec<PathBuf>> {
            let paths: Vec<PathBuf> = f
                .path
                .iter()
                .chain(&f.paths)
                .map(|p| self.resolve(p))
                .collect();
            if paths.is_empty() {
                return Err(err(
                    "path",
                    Error::option("path", "missing: give `path` or `paths`"),
                ));
            }
            Ok(paths)
        };
        let stream = match &spec.connector {
            SourceConnector::Parquet(f, replay) => {
                self.parquet(job, f, files(f)?, replay, &spec.time, span.clone(), field)?
            }
            SourceConnector::Csv(f, csv) => {
                super::connectors::csv_stream(job, f, csv, files(f)?, &err)?
            }
            SourceConnector::Live(live, connector) => {
                super::connectors::live_stream(job, live, connector, &spec.time, &resolve, &err)?
            }
            // generators carry their own event time
            SourceConnector::Generator(g) => {
                return super::connectors::generator(job, g, &spec.time, &err)
            }
        };
        self.event_time(stream, &spec.time, span, field)
    }

    /// A Parquet source with its time range and replay speed.
    #[allow(clippy::too_many_arguments)]
    fn parquet(
        &self,
        job: &Job,
        files: &FileTable,
        paths: Vec<PathBuf>,
        replay: &ReplayTable,
        time: &EventTimeSpec,
        span: Range<usize>,
        field: &str,
    ) -> Result<Stream> {
        let mut source =
            ParquetSourceSpec::try_new(&paths)?.with_batch_size(files.batch_size.unwrap_or(8192));
        if let Some(columns) = &files.columns {
            let names: Vec<&str> = columns.iter().map(String::as_str).collect();
            source = source
                .with_projection(&names)
                .map_err(|e| self.error(span.clone(), &format!("{field}.columns"), e))?;
        }
        let given = [&replay.from, &replay.until, &replay.speed];
        let Some(i) = given.iter().position(|v| v.is_some()) else {
            return job.parquet_source(source);
        };
        let Some(time) = &time.time_column else {
            return Err(self.replay_error(
                i,
                field,
                span,
                "from, until and speed need the source's `time_column`",
            ));
        };
        let at = |i: usize| -> Result<Option<i64>> {
            let (name, _) = REPLAY_NAMES[i];
            given[i]
                .as_deref()
                .map(|t| parse_time(&format!("{field}.{name}"), t))
                .transpose()
                .map_err(|e| self.replay_error(i, field, span.clone(), e))
        };
        let range = TimeRange {
            from: at(0)?,
            until: at(1)?,
        };
        if let (Some(f), Some(u)) = (range.from, range.until) {
            if f >= u {
                // name the flag if either came from the command line
                let i = if self.replay_flags[0] || !self.replay_flags[1] {
                    0
                } else {
                    1
                };
                return Err(self.replay_error(
                    i,
                    field,
                    span,
                    format!(
                        "from ({}) must be before until ({}): the range [from, until) is empty",
                        replay.from.as_deref().unwrap_or_default(),
                        replay.until.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        if range != TimeRange::default() {
            source = source.with_time_range(time, range)?;
        }
        if let Some(speed) = &replay.speed {
            let speed: ReplaySpeed = speed
                .parse()
                .map_err(|e| self.replay_error(2, field, span.clone(), e))?;
            source = source.with_replay_speed(time, speed)?;
        }
        job.parquet_source(source)
    }

    /// Sets the source's parallelism and assigns event time as the
    /// `[source]` table says.
    pub(super) fn event_time(
        &self,
        mut stream: Stream,
        spec: &EventTimeSpec,
        span: Range<usize>,
        field: &str,
    ) -> Result<Stream> {
        if let Some(n) = spec.parallelism {
            stream = stream.with_parallelism(n)?;
        }
        let Some(time) = &spec.time_column else {
            if spec.watermark_delay.is_some() {
                return Err(self.error(
                    span,
                    &format!("{field}.watermark_delay"),
                    "needs `time_column`",
                ));
            }
            return Ok(stream);
        };
        let duration = |name: &str, v: &Option<String>| -> Result<Option<std::time::Duration>> {
            v.as_ref()
                .map(|d| parse_duration(&format!("{field}.{name}"), d))
                .transpose()
                .map_err(|e| self.error(span.clone(), &format!("{field}.{name}"), e))
        };
        let delay = duration("watermark_delay", &spec.watermark_delay)?.unwrap_or_default();
        let mut strategy = match (&spec.watermark_column, &spec.watermark_predicate) {
            (Some(c), None) => WatermarkStrategy::from_column(c),
            (None, Some(p)) => WatermarkStrategy::from_predicate(parse_expr(p).map_err(|e| {
                self.error(span.clone(), &format!("{field}.watermark_predicate"), e)
            })?),
            (None, None) => WatermarkStrategy::bounded_out_of_orderness(delay),
            (Some(_), Some(_)) => {
                return Err(self.error(
                    span,
                    &format!("{field}.watermark_column"),
                    "give watermark_column or watermark_predicate, not both",
                ))
            }
        };
        if let Some(l) = duration("allowed_lateness", &spec.allowed_lateness)? {
            strategy = strategy.with_allowed_lateness(l);
        }
        if let Some(t) = duration("idle_timeout", &spec.idle_timeout)? {
            strategy = strategy.with_idle_timeout(t);
        }
        stream
            .assign_timestamps(time, strategy)
            .map_err(|e| self.error(span, &format!("{field}.time_column"), e))
    }
}
