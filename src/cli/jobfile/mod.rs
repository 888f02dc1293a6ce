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
//! `[source]` and sink tables are tagged by `type`: each connector takes
//! only its own keys (`source.rs`, `sink.rs`, read with `table.rs`).
//! Errors name the file, the line and the field.
//!
//! ```text
//! mod.rs         JobFile (the TOML), LoadedJob: load, errors, checkpoints, build
//! source.rs      [source] typed by `type`; Parquet, event time
//! connectors.rs  CSV, live and generator sources
//! steps.rs       [[steps]]: filter, map, key_by, windows, joins, aggregates
//! sink.rs        [sink] typed by `type`; file, Kafka and Redis sinks
//! table.rs       splitting a tagged table into typed parts
//! ```
//!
//! May use the engine's graph, the operators, functions and connectors,
//! and the workloads' generators.

mod connectors;
mod sink;
mod source;
mod steps;
mod table;

pub use sink::{KafkaSinkTable, RedisSinkTable, SinkSpec};
pub use source::{
    ByteSize, CsvTable, DirTable, EventTimeSpec, FileTable, GeneratorTable, HistorySpec,
    KafkaTable, LiveConnector, LiveTable, RedisTable, ReplayTable, SourceConnector, SourceSpec,
    TcpTable,
};
pub use steps::{
    AggSpec, JoinStepSpec, RightSpec, StepSpec, TriggerSpec, WindowSpec, WithColumnSpec,
};
use table::KeyError;

use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Spanned, Table};
use weir_connectors::replay::{parse_time, ReplaySpeed, TimeRange};
use weir_connectors::FileFormat;
use weir_connectors::ParquetSourceSpec;
use weir_core::error::{Error, Result};
use weir_core::time::{parse_duration, WatermarkStrategy, Window};
use weir_engine::graph::{Job, Stream};
use weir_functions::{Agg, AggFn};
use weir_operators::join::{JoinSpec, JoinType};
use weir_operators::EarlyFiring;
use weir_sql::parse_expr;

/// A parsed job file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// A name for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Where rows come from: a [`SourceSpec`] table (read when built, so
    /// that the command line's replay flags apply). Required unless `sql`
    /// gives the job.
    #[serde(default)]
    pub source: Option<Spanned<Table>>,
    /// The whole job as a weir SQL script (`sql = """CREATE TABLE …;
    /// INSERT INTO … SELECT …"""`), instead of `[source]`, `[[steps]]`
    /// and `[sink]`; `[checkpoint]`, `[http]` and `name` still apply.
    #[serde(default)]
    pub sql: Option<Spanned<String>>,
    /// Transformations, in order.
    #[serde(default)]
    pub steps: Vec<Spanned<StepSpec>>,
    /// Where results go (`--output` may replace the path): a [`SinkSpec`] table.
    #[serde(default)]
    pub sink: Option<Spanned<Table>>,
    /// Where the source's late rows go (beyond the allowed lateness).
    #[serde(default)]
    pub late_sink: Option<Spanned<Table>>,
    /// Where a live source's malformed records go (`on_error = "dead_letter"`).
    #[serde(default)]
    pub dead_letter_sink: Option<Spanned<Table>>,
    /// Checkpoints of pipelined runs (`weir run` flags override these).
    #[serde(default)]
    pub checkpoint: Option<Spanned<CheckpointSpec>>,
    /// Serve metrics, the JSON API and the web UI while the job runs
    /// (`--http` overrides it).
    #[serde(default)]
    pub http: Option<HttpSpec>,
}

/// `[http]`: watch the job over HTTP (see `weir run --http`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// Where to listen: `PORT`, `IP:PORT` or `localhost:PORT` (default
    /// `127.0.0.1:8081`; another interface only when written out).
    #[serde(default)]
    pub address: Option<String>,
    /// Keep serving this long after the job ends, e.g. `"30s"`.
    #[serde(default)]
    pub linger: Option<String>,
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
    /// Their values, replacing the job file's.
    replay_override: [Option<String>; 3],
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
        let given = [from.is_some(), until.is_some(), speed.is_some()];
        let Some(source) = &self.spec.source else {
            // a SQL job: its tables are read whole
            if let Some(i) = given.iter().position(|g| *g) {
                return Err(Error::option(
                    REPLAY_NAMES[i].1,
                    format!(
                        "applies to a job file's [source]; {} gives its job in `sql`, whose \
                         tables are read whole",
                        self.path.display()
                    ),
                ));
            }
            return Ok(());
        };
        let source = source.clone();
        self.replay_flags = given;
        self.replay_override = [from, until, speed];
        // a source that takes no replay settings says so now, naming the flag
        self.typed_source(&source, "source").map(|_| ())
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
        (self.spec.sink.is_none() && self.spec.sql.is_none() && output.is_none()).then(|| {
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

    /// The main sink's path, resolved against the job file's directory
    /// (`None`: no file sink, or an unreadable table, reported by `build`).
    pub fn sink_path(&self) -> Option<PathBuf> {
        let table = self.spec.sink.as_ref()?;
        match SinkSpec::from_table(table.get_ref().clone()) {
            Ok(SinkSpec::File { path: Some(p), .. }) => Some(self.resolve(&p)),
            _ => None,
        }
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
        let job = LoadedJob {
            path: path.to_path_buf(),
            text,
            spec,
            replay_flags: [false; 3],
            replay_override: Default::default(),
        };
        job.check_shape()?;
        job.check_tables()?;
        Ok(job)
    }

    /// A job file gives its job either as `sql` or as `[source]`, `[[steps]]`
    /// and `[sink]`, never both.
    fn check_shape(&self) -> Result<()> {
        let Some(sql) = &self.spec.sql else {
            if self.spec.source.is_none() {
                return Err(self.error(
                    0..0,
                    "source",
                    "the job needs a [source] table (or its whole job as `sql = \"\"\"…\"\"\"`)",
                ));
            }
            return Ok(());
        };
        let tables = [
            ("source", self.spec.source.as_ref().map(|t| t.span())),
            ("steps", self.spec.steps.first().map(|s| s.span())),
            ("sink", self.spec.sink.as_ref().map(|t| t.span())),
            ("late_sink", self.spec.late_sink.as_ref().map(|t| t.span())),
            (
                "dead_letter_sink",
                self.spec.dead_letter_sink.as_ref().map(|t| t.span()),
            ),
        ];
        for (field, span) in tables {
            if let Some(span) = span {
                return Err(self.error(
                    span,
                    field,
                    format!(
                        "the job is given in `sql` (line {}): its tables are CREATE TABLEs there; \
                         remove `{field}`",
                        line_of(&self.text, sql.span().start)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Plans the job file's `sql` (paths relative to the job file), its one
    /// result redirected to `output` when given.
    fn script(&self, sql: &Spanned<String>, output: Option<&Path>) -> Result<weir_sql::Script> {
        let base = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut options = weir_sql::ScriptOptions::default();
        if let Some(o) = output {
            options = options.with_output(o);
        }
        let script = weir_sql::Script::try_with(sql.get_ref(), &base, options)
            .map_err(|e| self.error(sql.span(), "sql", e))?;
        let refuse = |what: &str| {
            Err(self.error(
                sql.span(),
                "sql",
                format!("{what} in a job file's sql: give it to weir run (--mode, --parallelism, --explain)"),
            ))
        };
        if script.settings() != &weir_sql::Settings::default() {
            return refuse("SET");
        }
        if !script.explained().is_empty() {
            return refuse("EXPLAIN");
        }
        if script.queries() == 0 {
            return Err(self.error(
                sql.span(),
                "sql",
                "no INSERT INTO or SELECT: nothing to run",
            ));
        }
        Ok(script)
    }

    /// Reads every source and sink table, so that a bad key is reported
    /// when the file is loaded.
    fn check_tables(&self) -> Result<()> {
        if let Some(sql) = &self.spec.sql {
            return self.script(sql, None).map(|_| ());
        }
        if let Some(source) = &self.spec.source {
            self.typed_source(source, "source")?;
        }
        self.check_steps(&self.spec.steps, "")?;
        let sinks = [
            ("sink", &self.spec.sink),
            ("late_sink", &self.spec.late_sink),
            ("dead_letter_sink", &self.spec.dead_letter_sink),
        ];
        for (field, table) in sinks {
            if let Some(t) = table {
                self.typed_sink(t, field)?;
            }
        }
        Ok(())
    }

    /// Reads the source tables of `steps` (unions, joins' right inputs and
    /// their steps); `prefix` locates them (`steps[1].join.right.`).
    fn check_steps(&self, steps: &[Spanned<StepSpec>], prefix: &str) -> Result<()> {
        for (i, step) in steps.iter().enumerate() {
            let step = step.get_ref();
            if let Some(u) = &step.union {
                self.typed_source(u, &format!("{prefix}steps[{i}].union"))?;
            }
            if let Some(j) = &step.join {
                let right = format!("{prefix}steps[{i}].join.right.");
                self.typed_source(&j.right.source, &format!("{right}source"))?;
                self.check_steps(&j.right.steps, &right)?;
            }
        }
        Ok(())
    }

    /// The error for a key of the table at `field` (spanning `span`),
    /// at the key's line when the table is written one key per line.
    fn key_error(&self, span: Range<usize>, field: &str, e: KeyError) -> Error {
        let Some(key) = &e.key else {
            return self.error(span, field, e.message);
        };
        let at = key_offset(&self.text, span.start, key).unwrap_or(span.start);
        self.error(at..at, &format!("{field}.{key}"), e.message)
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

    /// The paths of the main source (files, or the watched directory), resolved.
    pub fn source_paths(&self) -> Vec<PathBuf> {
        if let Some(sql) = &self.spec.sql {
            return self
                .script(sql, None)
                .map(|s| s.source_paths())
                .unwrap_or_default();
        }
        let Some(source) = &self.spec.source else {
            return Vec::new();
        };
        let spec = match SourceSpec::from_table(source.get_ref().clone()) {
            Ok(spec) => spec,
            Err(_) => return Vec::new(),
        };
        let paths: Vec<&PathBuf> = match &spec.connector {
            SourceConnector::Parquet(f, _) | SourceConnector::Csv(f, _) => {
                f.path.iter().chain(&f.paths).collect()
            }
            SourceConnector::Live(_, LiveConnector::Dir(d)) => d.path.iter().collect(),
            _ => Vec::new(),
        };
        paths.into_iter().map(|p| self.resolve(p)).collect()
    }

    /// Builds the job. `output` replaces the sink's path (and picks its
    /// format from the extension when the file names no sink type).
    pub fn build(&self, output: Option<&Path>) -> Result<Job> {
        if let Some(sql) = &self.spec.sql {
            return Ok(self.script(sql, output)?.job().clone());
        }
        let job = Job::new();
        let main = self
            .spec
            .source
            .as_ref()
            .expect("check_shape: a job file without sql has a [source]");
        let source = self.source(&job, main, "source")?;
        let stream = self.apply_steps(&job, source.clone(), &self.spec.steps)?;
        self.sink_to(&stream, self.spec.sink.as_ref(), output, "sink")?;
        if let Some(late) = &self.spec.late_sink {
            let rows = stream
                .late_rows()
                .map_err(|e| self.error(late.span(), "late_sink", e))?;
            self.sink_to(&rows, Some(late), None, "late_sink")?;
        }
        if let Some(dead) = &self.spec.dead_letter_sink {
            let rows = source
                .dead_letters()
                .map_err(|e| self.error(dead.span(), "dead_letter_sink", e))?;
            self.sink_to(&rows, Some(dead), None, "dead_letter_sink")?;
        }
        Ok(job)
    }
}

/// Where `key = …` is written in the table starting at `start`: the first
/// line of the table's body that assigns it (`None`: not found, e.g. an
/// inline table).
fn key_offset(text: &str, start: usize, key: &str) -> Option<usize> {
    let mut offset = start.min(text.len());
    for (n, line) in text[offset..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if n > 0 && trimmed.starts_with('[') {
            return None;
        }
        let assigns = trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if assigns {
            return Some(offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    None
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests;
