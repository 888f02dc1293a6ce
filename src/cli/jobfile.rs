//! Declarative job files (TOML) that map one-to-one onto the builder API.
//!
//! ```toml
//! [source]
//! path = "data/obd"              # a .parquet file or a directory of them
//! time_column = "event_time"     # Int64 epoch ms or Timestamp
//! watermark_delay = "30s"        # bounded out-of-orderness
//!
//! [[steps]]
//! filter = "speed >= 0"
//!
//! [[steps]]
//! key_by = ["vehicle_id"]
//!
//! [[steps]]
//! window = { kind = "tumbling", size = "1s" }
//! aggregates = [{ fn = "avg", column = "speed", as = "avg_speed" }, { fn = "count", as = "readings" }]
//!
//! [sink]
//! type = "parquet"               # parquet | json | stdout
//! path = "out/avg_speed.parquet"
//! ```
//! A `[steps.join]` step joins the stream with a right input that has its
//! own `source` and `steps` (`examples/seed_join.toml`).
//! Errors name the file, the line and the field. May use `graph`,
//! `operators`, `expr`, `time`.

use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use weir_connectors::replay::{parse_time, ReplaySpeed, TimeRange};
use weir_connectors::FileFormat;
use weir_connectors::ParquetSourceSpec;
use weir_core::error::{Error, Result};
use weir_core::expr::parse_expr;
use weir_core::time::{parse_duration, WatermarkStrategy, Window};
use weir_engine::graph::{Job, Stream};
use weir_functions::{Agg, AggFn};
use weir_operators::join::{JoinSpec, JoinType};
use weir_operators::EarlyFiring;

/// A parsed job file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// A name for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Where rows come from.
    pub source: Spanned<SourceSpec>,
    /// Transformations, in order.
    #[serde(default)]
    pub steps: Vec<Spanned<StepSpec>>,
    /// Where results go (`--output` may replace the path).
    #[serde(default)]
    pub sink: Option<Spanned<SinkSpec>>,
    /// Where the source's late rows go (beyond the allowed lateness).
    #[serde(default)]
    pub late_sink: Option<Spanned<SinkSpec>>,
    /// Where a live source's malformed records go (`on_error = "dead_letter"`).
    #[serde(default)]
    pub dead_letter_sink: Option<Spanned<SinkSpec>>,
    /// Checkpoints of pipelined runs (`weir run` flags override these).
    #[serde(default)]
    pub checkpoint: Option<Spanned<CheckpointSpec>>,
}

/// `[checkpoint]`: periodic checkpoints and restarts (pipelined runs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// `CHECKPOINT_DIR`; the job's checkpoints go to `dir/<job name>/`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Time between checkpoints, e.g. `"1s"` (default 10s).
    #[serde(default)]
    pub interval: Option<String>,
    /// Completed checkpoints kept (default 3).
    #[serde(default)]
    pub retain: Option<usize>,
    /// `exactly-once` (aligned barriers, default) or `at-least-once`.
    #[serde(default)]
    pub mode: Option<String>,
    /// A checkpoint not complete after this long fails the job (default 10m).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Restarts from the last checkpoint after a failure (default 0).
    #[serde(default)]
    pub restarts: Option<u32>,
    /// Wait before the first restart, doubled after each (default 500ms).
    #[serde(default)]
    pub restart_backoff: Option<String>,
}

/// `[source]`: a bounded Parquet or CSV source, or a live one, with event time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `parquet` (default), `csv`, or a live source (see `cli/sources.rs`).
    #[serde(default = "parquet", rename = "type")]
    pub kind: String,
    /// A file or directory; a relative path is relative to the job file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Several files or directories.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
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
    /// Rows per batch read.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Parallelism of the source.
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// Time travel: replay from this event time (RFC 3339 UTC or epoch ms).
    #[serde(default)]
    pub from: Option<String>,
    /// Time travel: replay up to (not including) this event time.
    #[serde(default)]
    pub until: Option<String>,
    /// Replay speed: `max` (default), `realtime`, or a factor such as `60x`.
    #[serde(default)]
    pub speed: Option<String>,
    /// Projection: read only these columns (must include `time_column`).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// CSV: the files start with a header line naming the columns (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// CSV: the field delimiter, one ASCII character or `tab` (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Live sources and CSV: the columns, `"name: type"` (CSV: inferred from
    /// the header and first rows when absent)
    /// (int64, int32, float64, float32, string, bool, timestamp[_s|_ms|_us|_ns]).
    #[serde(default)]
    pub schema: Vec<String>,
    /// Live sources: end by themselves (read what is there at start, then stop).
    #[serde(default)]
    pub bounded: Option<bool>,
    /// Live sources: `fail` (default) or `dead_letter` for malformed records.
    #[serde(default)]
    pub on_error: Option<String>,
    /// Live sources: the longest record, in bytes or as a size such as
    /// `"4MiB"` (default 1 MiB); longer records are malformed (dead letters
    /// keeping their first KiB).
    #[serde(default)]
    pub max_record_bytes: Option<ByteSize>,
    /// Brokers: `earliest` (default), `latest`, or an event time to start at.
    #[serde(default)]
    pub start: Option<String>,
    /// `tcp`: the `host:port` to connect to.
    #[serde(default)]
    pub address: Option<String>,
    /// `dir`: how often to look for new files (default `200ms`).
    #[serde(default)]
    pub poll_interval: Option<String>,
    /// `kafka`: bootstrap brokers (`host:port`).
    #[serde(default)]
    pub brokers: Vec<String>,
    /// `kafka`: the topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// `redis`: the server URL (`redis://host:port`).
    #[serde(default)]
    pub url: Option<String>,
    /// `redis`: the stream keys (one partition each).
    #[serde(default)]
    pub keys: Vec<String>,
    /// `redis`: the entry field holding the JSON record (default `data`).
    #[serde(default)]
    pub field: Option<String>,
    /// `generator`: vehicles, nexmark-persons, nexmark-auctions or nexmark-bids.
    #[serde(default)]
    pub generator: Option<String>,
    /// `generator`: number of vehicles (default 100).
    #[serde(default)]
    pub vehicles: Option<usize>,
    /// `generator`: stop after this many events (default: run until stopped).
    #[serde(default)]
    pub events: Option<u64>,
    /// `generator`: Nexmark events per second of event time (default 10000).
    #[serde(default)]
    pub rate: Option<u64>,
    /// Hybrid source: replay this Parquet history before the live part.
    #[serde(default)]
    pub history: Option<HistorySpec>,
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

fn parquet() -> String {
    "parquet".into()
}

/// `with_column = { name = "...", expr = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithColumnSpec {
    /// The new column.
    pub name: String,
    /// Its expression.
    pub expr: String,
}

/// `window = { kind = "tumbling", size = "1s", offset = "0s" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// tumbling, sliding, cumulative or session.
    #[serde(default = "tumbling")]
    pub kind: String,
    /// Window length (tumbling, sliding) or largest window (cumulative).
    #[serde(default)]
    pub size: Option<String>,
    /// Distance between window starts (sliding).
    #[serde(default)]
    pub slide: Option<String>,
    /// Growth step (cumulative).
    #[serde(default)]
    pub step: Option<String>,
    /// Inactivity closing a session (session).
    #[serde(default)]
    pub gap: Option<String>,
    /// Alignment offset.
    #[serde(default)]
    pub offset: Option<String>,
    /// `event` (default) or `processing` time.
    #[serde(default)]
    pub time: Option<String>,
    /// Rows per window (count windows).
    #[serde(default)]
    pub rows: Option<u64>,
    /// Fire every this many rows over the last `rows` (sliding count windows).
    #[serde(default)]
    pub slide_rows: Option<u64>,
}

/// `trigger = { every_rows = 100, every = "5s", purge = false }`: early firings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// Fire a key's window every this many rows.
    #[serde(default)]
    pub every_rows: Option<u64>,
    /// Fire windows with new rows every interval of processing time.
    #[serde(default)]
    pub every: Option<String>,
    /// Emit deltas instead of running results (tumbling windows).
    #[serde(default)]
    pub purge: bool,
}

fn tumbling() -> String {
    "tumbling".into()
}

/// One aggregate: `{ fn = "avg", column = "speed", as = "avg_speed" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggSpec {
    /// count, sum, min, max, avg.
    #[serde(rename = "fn")]
    pub func: String,
    /// Input column (omit for `count`).
    #[serde(default)]
    pub column: Option<String>,
    /// Output column name.
    #[serde(default, rename = "as")]
    pub alias: Option<String>,
}

/// One step: exactly one of the operation fields, plus options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Keep rows where this expression is true.
    pub filter: Option<String>,
    /// Keep these columns.
    pub select: Option<Vec<String>>,
    /// Add or replace a computed column.
    pub with_column: Option<WithColumnSpec>,
    /// Partition by these columns (followed by a window or an aggregates step).
    pub key_by: Option<Vec<String>>,
    /// A window (with `aggregates`).
    pub window: Option<WindowSpec>,
    /// The window's aggregates.
    pub aggregates: Option<Vec<AggSpec>>,
    /// Early firings of the window.
    pub trigger: Option<TriggerSpec>,
    /// Merge another Parquet source (same schema) into the stream.
    pub union: Option<SourceSpec>,
    /// Join the stream (left) with another pipeline (right).
    pub join: Option<Box<JoinStepSpec>>,
    /// Redistribute batches round-robin before this step's operator.
    #[serde(default)]
    pub rebalance: bool,
    /// Parallelism of this step's operator.
    pub parallelism: Option<usize>,
}

/// A `[steps.join]` table (`kind`, `on`, `type`, and `window` or
/// `lower`/`upper`), with the right input in `[steps.join.right.source]`
/// and `[[steps.join.right.steps]]` (see `examples/seed_join.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinStepSpec {
    /// regular (default), window, same_window or interval.
    #[serde(default = "regular")]
    pub kind: String,
    /// Key columns of the left side (and of the right, unless `right_on`).
    pub on: Vec<String>,
    /// Key columns of the right side.
    #[serde(default)]
    pub right_on: Option<Vec<String>>,
    /// inner (default), left, right or full.
    #[serde(default, rename = "type")]
    pub join_type: Option<String>,
    /// The window of a window join (tumbling, sliding or cumulative).
    #[serde(default)]
    pub window: Option<WindowSpec>,
    /// Interval join: `right.t + lower <= left.t` (e.g. `"-5s"`).
    #[serde(default)]
    pub lower: Option<String>,
    /// Interval join: `left.t <= right.t + upper` (e.g. `"5s"`).
    #[serde(default)]
    pub upper: Option<String>,
    /// Regular join: an event-time state TTL (e.g. `"1h"`).
    #[serde(default)]
    pub ttl: Option<String>,
    /// The right input.
    pub right: RightSpec,
}

/// The right input of a join: a source and its own steps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RightSpec {
    /// Where its rows come from.
    pub source: Spanned<SourceSpec>,
    /// Its transformations.
    #[serde(default)]
    pub steps: Vec<Spanned<StepSpec>>,
}

fn regular() -> String {
    "regular".into()
}

/// `[sink]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// parquet, json or stdout (default: from the path's extension).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Output file or directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `kafka`: bootstrap brokers (`host:port`).
    #[serde(default)]
    pub brokers: Vec<String>,
    /// `kafka`: the topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// `kafka`: the column whose value is the record key (partitioning).
    #[serde(default)]
    pub key_column: Option<String>,
    /// `kafka`: the column whose time becomes the record timestamp.
    #[serde(default)]
    pub timestamp_column: Option<String>,
    /// `redis`: the server URL.
    #[serde(default)]
    pub url: Option<String>,
    /// `redis`: the stream key.
    #[serde(default)]
    pub key: Option<String>,
    /// `redis`: the entry field for the JSON row (default `data`).
    #[serde(default)]
    pub field: Option<String>,
    /// `redis`: trim the stream to about this many entries.
    #[serde(default)]
    pub max_len: Option<usize>,
}

/// A job file with its text (for line numbers) and location.
#[derive(Debug)]
pub struct LoadedJob {
    /// The file.
    pub path: PathBuf,
    text: String,
    /// Its contents.
    pub spec: JobFile,
    /// Which of the main source's `from`, `until`, `speed` came from the
    /// command line (errors name `--from` rather than the job file).
    replay_flags: [bool; 3],
}

/// The names of the replay settings, in the job file and on the command line.
const REPLAY_NAMES: [(&str, &str); 3] = [
    ("from", "--from"),
    ("until", "--until"),
    ("speed", "--speed"),
];

impl LoadedJob {
    /// Replaces the main source's `from`, `until` and `speed` with those given
    /// (the `weir run --from/--until/--speed` flags), checking them first so
    /// that a bad value names the flag.
    pub fn override_replay(
        &mut self,
        from: Option<String>,
        until: Option<String>,
        speed: Option<String>,
    ) -> Result<()> {
        if let Some(f) = &from {
            parse_time("--from", f)?;
        }
        if let Some(u) = &until {
            parse_time("--until", u)?;
        }
        if let Some(v) = &speed {
            v.parse::<ReplaySpeed>().map_err(|e| match e {
                Error::InvalidOption { message, .. } => Error::option("--speed", message),
                other => other,
            })?;
        }
        self.replay_flags = [from.is_some(), until.is_some(), speed.is_some()];
        let source = self.spec.source.get_mut();
        source.from = from.or(source.from.take());
        source.until = until.or(source.until.take());
        source.speed = speed.or(source.speed.take());
        Ok(())
    }

    /// The error for replay setting `i` (see [`REPLAY_NAMES`]) of the
    /// source at `field`: naming the flag if it came from the command line.
    fn replay_error(
        &self,
        i: usize,
        field: &str,
        span: Range<usize>,
        e: impl std::fmt::Display,
    ) -> Error {
        let (name, flag) = REPLAY_NAMES[i];
        if field == "source" && self.replay_flags[i] {
            Error::option(flag, e.to_string())
        } else {
            self.error(span, &format!("{field}.{name}"), e)
        }
    }

    /// Where results go when the job file has no `[sink]` and no
    /// `--output` is given (a note for the user), else `None`.
    pub fn output_note(&self, output: Option<&Path>) -> Option<String> {
        (self.spec.sink.is_none() && output.is_none()).then(|| {
            format!(
                "weir: {} has no [sink]: results go to standard output as JSON lines \
                 (add a [sink] table, or pass --output PATH)",
                self.path.display()
            )
        })
    }

    /// The job's name: `name`, or the file name without its extension.
    pub fn job_name(&self) -> String {
        self.spec.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("job")
                .to_string()
        })
    }

    /// The checkpoint settings and restart strategy of `[checkpoint]`, with
    /// `dir` replaced by `dir_override` when given. `None` if the job file
    /// has no `[checkpoint]` and no directory is given.
    pub fn checkpoints(
        &self,
        dir_override: Option<&Path>,
    ) -> Result<
        Option<(
            weir_engine::checkpoint::CheckpointConfig,
            weir_engine::checkpoint::RestartStrategy,
        )>,
    > {
        use weir_engine::checkpoint::{CheckpointConfig, CheckpointMode, RestartStrategy};
        let spec = self.spec.checkpoint.as_ref();
        let span = spec.map_or(0..0, |s| s.span());
        let c = spec.map(|s| s.get_ref().clone()).unwrap_or_default();
        let dir = match (dir_override, &c.dir) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(d)) => self.resolve(d),
            (None, None) if spec.is_some() => {
                return Err(self.error(span, "checkpoint.dir", "a checkpoint directory is needed"))
            }
            (None, None) => return Ok(None),
        };
        let dur = |field: &str, v: &Option<String>| -> Result<Option<Duration>> {
            v.as_deref()
                .map(|t| weir_core::time::parse_duration(field, t))
                .transpose()
                .map_err(|e| self.error(span.clone(), field, e))
        };
        let mut config = CheckpointConfig::new(dir, self.job_name());
        if let Some(i) = dur("checkpoint.interval", &c.interval)? {
            config = config.with_interval(i);
        }
        if let Some(t) = dur("checkpoint.timeout", &c.timeout)? {
            config = config.with_timeout(t);
        }
        if let Some(r) = c.retain {
            config = config.with_retain(r);
        }
        match c.mode.as_deref() {
            None | Some("exactly-once") | Some("exactly_once") => {}
            Some("at-least-once") | Some("at_least_once") => {
                config = config.with_mode(CheckpointMode::AtLeastOnce)
            }
            Some(other) => {
                return Err(self.error(
                    span,
                    "checkpoint.mode",
                    format!("`{other}` is not a mode (use exactly-once or at-least-once)"),
                ))
            }
        }
        let mut restart = RestartStrategy {
            attempts: c.restarts.unwrap_or(0),
            ..RestartStrategy::default()
        };
        if let Some(b) = dur("checkpoint.restart_backoff", &c.restart_backoff)? {
            restart.backoff = b;
        }
        Ok(Some((config, restart)))
    }

    /// The main sink's path, resolved against the job file's directory.
    pub fn sink_path(&self) -> Option<PathBuf> {
        self.spec
            .sink
            .as_ref()
            .and_then(|s| s.get_ref().path.as_deref().map(|p| self.resolve(p)))
    }

    /// Reads and parses `path`; syntax and unknown-field errors name the line and field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, text)
    }

    /// Parses job-file `text` that came from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Self> {
        let spec: JobFile = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            Error::JobFile {
                path: path.to_path_buf(),
                message: match line {
                    Some(l) => format!("line {l}: {}", e.message()),
                    None => e.message().to_string(),
                },
            }
        })?;
        Ok(LoadedJob {
            path: path.to_path_buf(),
            text,
            spec,
            replay_flags: [false; 3],
        })
    }

    fn error(&self, span: Range<usize>, field: &str, e: impl std::fmt::Display) -> Error {
        Error::JobFile {
            path: self.path.clone(),
            message: format!("line {} ({field}): {e}", line_of(&self.text, span.start)),
        }
    }

    /// A path written in the job file: a relative one is relative to the
    /// job file's directory (as in a Cargo.toml), wherever weir runs from.
    /// Paths given on the command line stay relative to the current one.
    fn resolve(&self, p: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if !p.is_absolute() && !dir.as_os_str().is_empty() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// The Parquet paths of the main source, resolved.
    pub fn source_paths(&self) -> Vec<PathBuf> {
        let spec = self.spec.source.get_ref();
        spec.path
            .iter()
            .chain(&spec.paths)
            .map(|p| self.resolve(p))
            .collect()
    }

    fn source(
        &self,
        job: &Job,
        spec: &SourceSpec,
        span: Range<usize>,
        field: &str,
    ) -> Result<Stream> {
        let replay = [&spec.from, &spec.until, &spec.speed];
        if spec.kind != "parquet" {
            if let Some(i) = replay.iter().position(|v| v.is_some()) {
                return Err(self.replay_error(
                    i,
                    field,
                    span,
                    format!(
                        "time travel and replay speed apply to Parquet sources; this source is `{}`",
                        spec.kind
                    ),
                ));
            }
            let err = |f: &str, e: Error| self.error(span.clone(), &format!("{field}.{f}"), e);
            if spec.kind == "csv" {
                let mut paths: Vec<PathBuf> = spec.paths.iter().map(|p| self.resolve(p)).collect();
                if let Some(p) = &spec.path {
                    paths.insert(0, self.resolve(p));
                }
                let stream = super::sources::csv_stream(job, spec, paths, &err)?;
                return self.event_time(stream, spec, span, field);
            }
            let resolve = |p: &Path| self.resolve(p);
            let (stream, timed) = super::sources::live_stream(job, spec, &resolve, &err)?;
            return if timed {
                Ok(stream)
            } else {
                self.event_time(stream, spec, span, field)
            };
        }
        let mut paths: Vec<PathBuf> = spec.paths.iter().map(|p| self.resolve(p)).collect();
        if let Some(p) = &spec.path {
            paths.insert(0, self.resolve(p));
        }
        if paths.is_empty() {
            return Err(self.error(
                span,
                &format!("{field}.path"),
                "missing: give `path` or `paths`",
            ));
        }
        let mut source =
            ParquetSourceSpec::try_new(&paths)?.with_batch_size(spec.batch_size.unwrap_or(8192));
        if let Some(columns) = &spec.columns {
            let names: Vec<&str> = columns.iter().map(String::as_str).collect();
            source = source
                .with_projection(&names)
                .map_err(|e| self.error(span.clone(), &format!("{field}.columns"), e))?;
        }
        let timed = spec.from.is_some() || spec.until.is_some() || spec.speed.is_some();
        if let (true, Some(time)) = (timed, &spec.time_column) {
            let at = |i: usize| -> Result<Option<i64>> {
                let (name, _) = REPLAY_NAMES[i];
                replay[i]
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
                            spec.from.as_deref().unwrap_or_default(),
                            spec.until.as_deref().unwrap_or_default()
                        ),
                    ));
                }
            }
            if range != TimeRange::default() {
                source = source.with_time_range(time, range)?;
            }
            if let Some(speed) = &spec.speed {
                let speed: ReplaySpeed = speed
                    .parse()
                    .map_err(|e| self.replay_error(2, field, span.clone(), e))?;
                source = source.with_replay_speed(time, speed)?;
            }
        } else if timed {
            let i = replay.iter().position(|v| v.is_some()).unwrap_or(0);
            return Err(self.replay_error(
                i,
                field,
                span,
                "from, until and speed need the source's `time_column`",
            ));
        }
        let stream = job.parquet_source(source)?;
        self.event_time(stream, spec, span, field)
    }

    /// Sets the source's parallelism and assigns event time as the
    /// `[source]` table says.
    fn event_time(
        &self,
        mut stream: Stream,
        spec: &SourceSpec,
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

    /// Builds the job. `output` replaces the sink's path (and picks its
    /// format from the extension when the file names no sink type).
    pub fn build(&self, output: Option<&Path>) -> Result<Job> {
        let job = Job::new();
        let src = &self.spec.source;
        let source = self.source(&job, src.get_ref(), src.span(), "source")?;
        let stream = self.apply_steps(&job, source.clone(), &self.spec.steps)?;
        let (sink, span) = match &self.spec.sink {
            Some(s) => (Some(s.get_ref()), s.span()),
            None => (None, 0..0),
        };
        self.sink_to(&stream, sink, span, output, "sink")?;
        if let Some(late) = &self.spec.late_sink {
            let rows = stream
                .late_rows()
                .map_err(|e| self.error(late.span(), "late_sink", e))?;
            self.sink_to(&rows, Some(late.get_ref()), late.span(), None, "late_sink")?;
        }
        if let Some(dead) = &self.spec.dead_letter_sink {
            let rows = source
                .dead_letters()
                .map_err(|e| self.error(dead.span(), "dead_letter_sink", e))?;
            self.sink_to(
                &rows,
                Some(dead.get_ref()),
                dead.span(),
                None,
                "dead_letter_sink",
            )?;
        }
        Ok(job)
    }

    /// Applies `steps` to `stream` in order.
    fn apply_steps(
        &self,
        job: &Job,
        mut stream: Stream,
        steps: &[Spanned<StepSpec>],
    ) -> Result<Stream> {
        let mut keys: Option<(Vec<String>, Range<usize>)> = None;
        for (i, step) in steps.iter().enumerate() {
            let span = step.span();
            let s = step.get_ref();
            let field = |name: &str| format!("steps[{i}].{name}");
            let ops = [
                s.filter.is_some(),
                s.select.is_some(),
                s.with_column.is_some(),
                s.key_by.is_some(),
                s.window.is_some(),
                s.union.is_some(),
                s.join.is_some(),
                // aggregates without a window: a running aggregate per key
                s.aggregates.is_some() && s.window.is_none(),
            ];
            let count = ops.iter().filter(|&&b| b).count();
            if count != 1 {
                return Err(self.error(
                    span,
                    &format!("steps[{i}]"),
                    "a step needs exactly one of filter, select, with_column, key_by, window, aggregates, union, join",
                ));
            }
            if s.trigger.is_some() && s.window.is_none() {
                return Err(self.error(
                    span,
                    &field("trigger"),
                    "only a window step takes a trigger",
                ));
            }
            let grouped = s.aggregates.is_some() && s.window.is_none();
            if grouped && keys.is_none() {
                return Err(self.error(
                    span,
                    &field("aggregates"),
                    "aggregates without a window need a key_by step before them",
                ));
            }
            if keys.is_some() && s.window.is_none() && !grouped {
                return Err(self.error(
                    span,
                    &format!("steps[{i}]"),
                    "key_by must be followed by a window or aggregates step",
                ));
            }
            if s.rebalance {
                if s.key_by.is_some() || s.window.is_some() {
                    return Err(self.error(
                        span,
                        &field("rebalance"),
                        "a keyed window distributes rows by key; rebalance does not apply here",
                    ));
                }
                stream = stream.rebalance();
            }
            if s.parallelism.is_some() && s.key_by.is_some() {
                return Err(self.error(
                    span,
                    &field("parallelism"),
                    "key_by runs no operator: set parallelism on the window step after it",
                ));
            }
            let wrap = |name: &str, e: Error| self.error(span.clone(), &field(name), e);
            stream = if let Some(f) = &s.filter {
                let e = parse_expr(f).map_err(|e| wrap("filter", e))?;
                stream.filter(e).map_err(|e| wrap("filter", e))?
            } else if let Some(cols) = &s.select {
                stream.select(cols).map_err(|e| wrap("select", e))?
            } else if let Some(w) = &s.with_column {
                let e = parse_expr(&w.expr).map_err(|e| wrap("with_column.expr", e))?;
                stream
                    .with_column(&w.name, e)
                    .map_err(|e| wrap("with_column", e))?
            } else if let Some(k) = &s.key_by {
                stream.key_by(k).map_err(|e| wrap("key_by", e))?;
                keys = Some((k.clone(), span.clone()));
                continue;
            } else if let Some(u) = &s.union {
                let other = self.source(job, u, span.clone(), &field("union"))?;
                stream.union(&other).map_err(|e| wrap("union", e))?
            } else if grouped {
                let (k, _) = keys.take().expect("checked above");
                let aggs = self.aggregates(s, &span, i)?;
                stream
                    .key_by(&k)
                    .and_then(|keyed| keyed.aggregate(aggs))
                    .map_err(|e| wrap("aggregates", e))?
            } else if let Some(j) = &s.join {
                self.join_step(job, &stream, j, span.clone(), &field("join"))?
            } else {
                let w = s.window.as_ref().expect("counted above");
                self.window_step(&stream, w, s, keys.take(), span.clone(), i)?
            };
            if let Some(p) = s.parallelism {
                stream = stream
                    .with_parallelism(p)
                    .map_err(|e| wrap("parallelism", e))?;
            }
        }
        if let Some((_, span)) = keys {
            return Err(self.error(
                span,
                "key_by",
                "must be followed by a window or aggregates step",
            ));
        }
        Ok(stream)
    }

    fn join_step(
        &self,
        job: &Job,
        left: &Stream,
        j: &JoinStepSpec,
        span: Range<usize>,
        field: &str,
    ) -> Result<Stream> {
        let f = |name: &str| format!("{field}.{name}");
        let err = |name: &str, e: Error| self.error(span.clone(), &f(name), e);
        let right_src = &j.right.source;
        let right = self.source(
            job,
            right_src.get_ref(),
            right_src.span(),
            &f("right.source"),
        )?;
        let right = self.apply_steps(job, right, &j.right.steps)?;
        let signed = |name: &str, v: &Option<String>| -> Result<i64> {
            let text = v.as_deref().ok_or_else(|| {
                err(
                    name,
                    Error::option(f(name), "an interval join needs `lower` and `upper`"),
                )
            })?;
            let (neg, body) = match text.trim().strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.trim()),
            };
            let ms = weir_core::time::duration_ms(
                parse_duration(&f(name), body).map_err(|e| err(name, e))?,
            );
            Ok(if neg { -ms } else { ms })
        };
        let spec = match j.kind.as_str() {
            "regular" => JoinSpec::regular(),
            "same_window" => JoinSpec::same_window(),
            "interval" => JoinSpec::interval_ms(signed("lower", &j.lower)?, signed("upper", &j.upper)?),
            "window" => {
                let w = j.window.as_ref().ok_or_else(|| {
                    err("window", Error::option(f("window"), "a window join needs `window`"))
                })?;
                JoinSpec::window(self.time_window(w, span.clone(), &f("window"))?)
            }
            other => {
                return Err(err(
                    "kind",
                    Error::option(
                        f("kind"),
                        format!("unknown join kind `{other}` (use regular, window, same_window or interval)"),
                    ),
                ))
            }
        };
        let join_type: JoinType = j
            .join_type
            .as_deref()
            .unwrap_or("inner")
            .parse()
            .map_err(|e| err("type", e))?;
        let mut spec = spec
            .on(
                j.on.clone(),
                j.right_on.clone().unwrap_or_else(|| j.on.clone()),
            )
            .with_type(join_type);
        if let Some(ttl) = &j.ttl {
            spec = spec.with_ttl(parse_duration(&f("ttl"), ttl).map_err(|e| err("ttl", e))?);
        }
        left.join(&right, spec)
            .map_err(|e| self.error(span, field, e))
    }

    /// The time window `w` describes (not count windows); `field` names it in errors.
    fn time_window(&self, w: &WindowSpec, span: Range<usize>, field: &str) -> Result<Window> {
        let sub = |name: &str| format!("{field}.{name}");
        let duration = |name: &str, v: &Option<String>| -> Result<Option<Duration>> {
            v.as_ref()
                .map(|d| parse_duration(&sub(name), d))
                .transpose()
                .map_err(|e| self.error(span.clone(), &sub(name), e))
        };
        let need = |name: &str, v: Option<Duration>| -> Result<Duration> {
            v.ok_or_else(|| {
                self.error(
                    span.clone(),
                    &sub(name),
                    format!("a {} window needs `{name}`", w.kind),
                )
            })
        };
        let size = duration("size", &w.size)?;
        let mut window = match w.kind.as_str() {
            "tumbling" => Window::tumbling(need("size", size)?),
            "sliding" => Window::sliding(
                need("size", size)?,
                need("slide", duration("slide", &w.slide)?)?,
            ),
            "cumulative" => Window::cumulative(
                need("step", duration("step", &w.step)?)?,
                need("size", size)?,
            ),
            "session" => Window::session(need("gap", duration("gap", &w.gap)?)?),
            other => {
                return Err(self.error(
                    span,
                    &sub("kind"),
                    format!(
                        "unknown window kind `{other}` (use tumbling, sliding, cumulative, session or count)"
                    ),
                ))
            }
        };
        if let Some(off) = duration("offset", &w.offset)? {
            window = window.with_offset(off);
        }
        window
            .validate()
            .map_err(|e| self.error(span.clone(), field, e))?;
        Ok(window)
    }

    fn window_step(
        &self,
        stream: &Stream,
        w: &WindowSpec,
        step: &StepSpec,
        keys: Option<(Vec<String>, Range<usize>)>,
        span: Range<usize>,
        i: usize,
    ) -> Result<Stream> {
        let field = |name: &str| format!("steps[{i}].{name}");
        let duration = |name: &str, v: &Option<String>| -> Result<Option<Duration>> {
            v.as_ref()
                .map(|d| parse_duration(&field(name), d))
                .transpose()
                .map_err(|e| self.error(span.clone(), &field(name), e))
        };
        if w.kind == "count" {
            return self.count_window_step(stream, w, step, keys, span, i);
        }
        let window = self.time_window(w, span.clone(), &field("window"))?;
        let aggs = self.aggregates(step, &span, i)?;
        let mut windowed = match &keys {
            Some((keys, _)) => stream.key_by(keys)?.window(window),
            None => stream.window_all(window),
        };
        match w.time.as_deref() {
            None | Some("event") => {}
            Some("processing") => windowed = windowed.processing_time(),
            Some(other) => {
                return Err(self.error(
                    span,
                    &field("window.time"),
                    format!("`{other}` is not a time (use event or processing)"),
                ))
            }
        }
        if let Some(t) = &step.trigger {
            let every = duration("trigger.every", &t.every)?;
            windowed = windowed.trigger(EarlyFiring {
                every_rows: t.every_rows,
                every_ms: every.map(weir_core::time::duration_ms),
                purge: t.purge,
            });
        }
        windowed
            .aggregate(aggs)
            .map_err(|e| self.error(span, &field("window"), e))
    }

    fn count_window_step(
        &self,
        stream: &Stream,
        w: &WindowSpec,
        step: &StepSpec,
        keys: Option<(Vec<String>, Range<usize>)>,
        span: Range<usize>,
        i: usize,
    ) -> Result<Stream> {
        let field = |name: &str| format!("steps[{i}].{name}");
        let Some((keys, _)) = keys else {
            return Err(self.error(
                span,
                &field("window"),
                "count windows are per key: add a key_by step before",
            ));
        };
        let Some(rows) = w.rows else {
            return Err(self.error(span, &field("window.rows"), "a count window needs `rows`"));
        };
        if step.trigger.is_some() || w.time.is_some() {
            return Err(self.error(
                span,
                &field("window"),
                "count windows take no trigger or time",
            ));
        }
        let aggs = self.aggregates(step, &span, i)?;
        let keyed = stream.key_by(&keys)?;
        let windowed = match w.slide_rows {
            None => keyed.count_window(rows),
            Some(slide) => keyed.count_window_sliding(rows, slide),
        };
        windowed
            .aggregate(aggs)
            .map_err(|e| self.error(span, &field("window"), e))
    }

    fn aggregates(&self, step: &StepSpec, span: &Range<usize>, i: usize) -> Result<Vec<Agg>> {
        let Some(aggs) = step.aggregates.as_deref() else {
            return Err(self.error(
                span.clone(),
                &format!("steps[{i}].aggregates"),
                "a window step needs `aggregates`",
            ));
        };
        aggs.iter()
            .enumerate()
            .map(|(j, a)| {
                let name = |f: &str| format!("steps[{i}].aggregates[{j}].{f}");
                let func =
                    AggFn::parse(&a.func).map_err(|e| self.error(span.clone(), &name("fn"), e))?;
                let mut agg = match &a.column {
                    Some(c) => Agg::of(func, c),
                    None if func == AggFn::Count => Agg::count(),
                    None => {
                        return Err(self.error(
                            span.clone(),
                            &name("column"),
                            format!("{} needs a column", func.name()),
                        ))
                    }
                };
                if let Some(alias) = &a.alias {
                    agg = agg.alias(alias);
                }
                Ok(agg)
            })
            .collect()
    }

    /// Adds the sink `spec` (or stdout if none) to `stream`; `output` replaces its path.
    fn sink_to(
        &self,
        stream: &Stream,
        spec: Option<&SinkSpec>,
        span: Range<usize>,
        output: Option<&Path>,
        field: &str,
    ) -> Result<()> {
        let (declared, written) = match spec {
            Some(s) => (
                s.kind
                    .as_deref()
                    .map(|k| if k == "jsonl" { "json" } else { k }),
                s.path.as_deref().map(|p| self.resolve(p)),
            ),
            None => (None, None),
        };
        // the path, and the option that gave it (for errors)
        let (path, option) = match output {
            Some(o) => (Some(o.to_path_buf()), "--output".to_string()),
            None => (written, format!("{field}.path")),
        };
        let fail = |message: String| match output {
            Some(_) => Error::option("--output", message),
            None => self.error(span.clone(), &option, message),
        };
        if let (Some(_), Some(k @ ("kafka" | "redis"))) = (output, declared) {
            return Err(fail(format!(
                "the job's [{field}] is a {k} sink; --output applies to file sinks \
                 (parquet, json)"
            )));
        }
        // the format follows the sink type; an extension naming another is refused
        let named = match &path {
            Some(p) => FileFormat::named_by(p).map_err(fail)?.map(FileFormat::name),
            None => None,
        };
        let kind = match (declared, named, &path) {
            (Some(d @ ("parquet" | "json")), Some(n), Some(p)) if d != n => {
                return Err(fail(format!(
                    "{} names a {n} file, but the sink type is {d}: use a .{} path, \
                     or one without extension for a directory of part files",
                    p.display(),
                    if d == "json" { "jsonl" } else { "parquet" }
                )))
            }
            // --output turns a stdout sink (or none) into a file sink
            (None | Some("stdout"), n, Some(_)) if output.is_some() || declared.is_none() => {
                n.unwrap_or("parquet").to_string()
            }
            (Some(k), _, _) => k.to_string(),
            (None, _, _) => "stdout".into(),
        };
        #[cfg_attr(
            not(any(feature = "kafka", feature = "redis")),
            allow(unused_variables)
        )]
        let missing = |f: &str| self.error(span.clone(), &format!("{field}.{f}"), "missing");
        match (kind.as_str(), path) {
            #[cfg(feature = "kafka")]
            ("kafka", _) => {
                let s = spec.expect("a kafka sink comes from a [sink] table");
                let topic = s.topic.as_deref().ok_or_else(|| missing("topic"))?;
                if s.brokers.is_empty() {
                    return Err(missing("brokers"));
                }
                let mut k = weir_connectors::kafka::KafkaSinkSpec::new(s.brokers.clone(), topic);
                if let Some(c) = &s.key_column {
                    k = k.with_key(c);
                }
                if let Some(c) = &s.timestamp_column {
                    k = k.with_timestamp_column(c);
                }
                stream.sink_kafka(k).map_err(|e| self.error(span, field, e))
            }
            #[cfg(feature = "redis")]
            ("redis", _) => {
                let s = spec.expect("a redis sink comes from a [sink] table");
                let url = s.url.as_deref().ok_or_else(|| missing("url"))?;
                let key = s.key.as_deref().ok_or_else(|| missing("key"))?;
                let mut r = weir_connectors::redis::RedisSinkSpec::new(url, key);
                if let Some(f) = &s.field {
                    r = r.with_field(f);
                }
                if let Some(n) = s.max_len {
                    r = r.with_max_len(n);
                }
                stream.sink_redis(r).map_err(|e| self.error(span, field, e))
            }
            #[cfg(not(all(feature = "kafka", feature = "redis")))]
            (other @ ("kafka" | "redis"), _) => {
                Err(self.error(span, &format!("{field}.type"), super::not_built(other)))
            }
            ("stdout", _) => {
                stream.sink_stdout();
                Ok(())
            }
            ("parquet", Some(p)) => stream.sink_parquet(p),
            ("json" | "jsonl", Some(p)) => stream.sink_json(p),
            ("parquet" | "json" | "jsonl", None) => {
                Err(self.error(span, &format!("{field}.path"), "missing (or pass --output)"))
            }
            (other, _) => Err(self.error(
                span,
                &format!("{field}.type"),
                format!("unknown sink type `{other}` (use parquet, json, stdout, kafka or redis)"),
            )),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LoadedJob> {
        LoadedJob::parse(Path::new("job.toml"), text.to_string())
    }

    #[test]
    fn unknown_fields_name_line_and_field() {
        let err = parse("[source]\npath = \"x\"\n\n[[steps]]\nfitler = \"a > 1\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("job.toml"), "{msg}");
        assert!(msg.contains("line 5"), "{msg}");
        assert!(msg.contains("fitler"), "{msg}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("[source]\npath = \"x\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn a_step_with_two_operations_is_rejected_with_its_line() {
        let job = parse("[source]\npath = \"x\"\n\n[[steps]]\nfilter = \"a\"\nselect = [\"a\"]\n")
            .unwrap();
        let err = job.build(None).unwrap_err();
        // the source path does not exist: that is checked first
        assert!(err.to_string().contains("x"), "{err}");
    }
}
