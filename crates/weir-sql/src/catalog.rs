//! The tables and views a script declares, and how a table becomes a
//! source or a sink of the job (its `WITH` options name the connector).
//!
//! Connectors of this version: `'connector' = 'filesystem'` with
//! `'format' = 'parquet'` (source or sink) or `'json'` (sink), the same as
//! `'connector' = 'parquet'`, `'connector' = 'print'` (a sink to stdout),
//! `'kafka'` and `'redis'` (brokers, `kafka.rs` and `redis.rs`), and
//! `'connector' = 'nexmark'` (a source: the Nexmark generator's
//! `person`, `auction` or `bid` table as the Nexmark project's Flink
//! queries read them, generated once per configuration and script). Paths
//! are relative to the script's folder.
//!
//! May use `weir-engine`'s builder, `weir-workloads`' Nexmark generator,
//! `super::expr` and `super::error`.

use crate::dialect::WatermarkClause;
use crate::error::{at, at_ident, at_node, engine, SqlError};
use crate::expr::{arrow_type, fits, interval};
use arrow_schema::DataType;
use sqlparser::ast::{self, CreateTableOptions, SqlOption};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir_connectors::files::FileFormat;
use weir_connectors::ParquetSourceSpec;
use weir_core::time::WatermarkStrategy;
use weir_engine::graph::{Job, Stream};
use weir_workloads::nexmark::{flink_tables, generate, FlinkTables, NexmarkConfig};

/// Generated data the script's tables share: one Nexmark generation per
/// configuration, however many tables read it.
#[derive(Debug, Default)]
pub(crate) struct Generated {
    nexmark: RefCell<HashMap<NexmarkConfig, Arc<FlinkTables>>>,
}

/// The `WITH` options a `'connector' = 'nexmark'` table takes.
const NEXMARK_OPTIONS: &[&str] = &[
    "connector",
    "table",
    "events",
    "events-per-second",
    "max-delay-ms",
    "seed",
    "splits",
];

/// A `CREATE TABLE`.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub name: String,
    pub columns: Vec<(String, DataType)>,
    /// `PARTITIONED BY` columns (a partitioned filesystem sink).
    pub partition_by: Vec<String>,
    /// The event-time column and the watermark's delay behind it.
    pub watermark: Option<(String, Duration)>,
    /// `WITH` options, keys lowercased.
    pub options: BTreeMap<String, String>,
    /// The statement, for errors.
    pub at: (u64, u64),
}

impl Table {
    /// A table from its statement and the watermark clauses lifted out of
    /// the script.
    pub fn try_new(
        create: &ast::CreateTable,
        watermarks: &[WatermarkClause],
    ) -> Result<Table, SqlError> {
        let name = create.name.to_string();
        let start = ast::Spanned::span(&create.name).start;
        if create.partition_by.is_some() {
            return Err(at_ident(
                &create.name.0[0]
                    .as_ident()
                    .cloned()
                    .unwrap_or_else(|| ast::Ident::new(&name)),
                format!(
                    "table `{name}`: PARTITION BY an expression is not supported; a filesystem \
                     sink takes PARTITIONED BY (column, …)"
                ),
            ));
        }
        let mut columns = Vec::new();
        for c in &create.columns {
            if !c.options.is_empty() {
                return Err(at_ident(&c.name, "column options (NOT NULL, computed columns, …) are not supported in weir SQL yet"));
            }
            let t = arrow_type(&create.name, &c.data_type)
                .map_err(|e| at_ident(&c.name, format!("column `{}`: {e}", c.name.value)))?;
            if columns
                .iter()
                .any(|(n, _): &(String, DataType)| *n == c.name.value)
            {
                return Err(at_ident(
                    &c.name,
                    format!("column `{}` is declared twice", c.name.value),
                ));
            }
            columns.push((c.name.value.clone(), t));
        }
        let mut partition_by = Vec::new();
        if let ast::HiveDistributionStyle::PARTITIONED { columns: by } = &create.hive_distribution {
            for c in by {
                let Some((_, t)) = columns.iter().find(|(n, _)| *n == c.name.value) else {
                    return Err(at_ident(
                        &c.name,
                        format!(
                            "PARTITIONED BY `{}`: table `{name}` has no such column (it has {}); \
                             partition columns are declared among the columns",
                            c.name.value,
                            names(&columns)
                        ),
                    ));
                };
                if c.data_type != ast::DataType::Unspecified
                    && arrow_type(&create.name, &c.data_type).ok().as_ref() != Some(t)
                {
                    return Err(at_ident(
                        &c.name,
                        format!(
                            "PARTITIONED BY `{}` names a type other than the column's ({t}): \
                             name the column only",
                            c.name.value
                        ),
                    ));
                }
                if partition_by.contains(&c.name.value) {
                    return Err(at_ident(
                        &c.name,
                        format!("PARTITIONED BY names `{}` twice", c.name.value),
                    ));
                }
                partition_by.push(c.name.value.clone());
            }
        } else if create.hive_distribution != ast::HiveDistributionStyle::NONE {
            return Err(at(
                start.line,
                start.column,
                format!("table `{name}`: only PARTITIONED BY (column, …) distributes a table"),
            ));
        }
        let mut watermark = None;
        for w in watermarks.iter().filter(|w| w.table == name) {
            if !columns.iter().any(|(n, _)| *n == w.column) {
                return Err(at(
                    w.line,
                    w.col,
                    format!(
                        "WATERMARK FOR `{}`: table `{name}` has no such column (it has {})",
                        w.column,
                        names(&columns)
                    ),
                ));
            }
            if watermark.is_some() {
                return Err(at(
                    w.line,
                    w.col,
                    format!("table `{name}` has two watermarks"),
                ));
            }
            watermark = Some((w.column.clone(), watermark_delay(w)?));
        }
        let options = match &create.table_options {
            CreateTableOptions::With(opts) => opts
                .iter()
                .map(option)
                .collect::<Result<BTreeMap<_, _>, _>>()?,
            CreateTableOptions::None => BTreeMap::new(),
            _ => {
                return Err(at(
                    start.line,
                    start.column,
                    "table options go in WITH ('key' = 'value', …)",
                ))
            }
        };
        if !options.contains_key("connector") {
            return Err(at(
                start.line,
                start.column,
                format!("table `{name}` needs WITH ('connector' = 'filesystem' | 'parquet' | 'print', …)"),
            ));
        }
        Ok(Table {
            name,
            columns,
            partition_by,
            watermark,
            options,
            at: (start.line, start.column),
        })
    }

    fn err(&self, message: impl AsRef<str>) -> SqlError {
        at(
            self.at.0,
            self.at.1,
            format!("table `{}`: {}", self.name, message.as_ref()),
        )
    }

    fn path(&self, base: &Path) -> Result<PathBuf, SqlError> {
        let p = self
            .options
            .get("path")
            .ok_or_else(|| self.err("needs WITH ('path' = …)"))?;
        // Flink writes local paths as file:///…; other file systems are not local
        let p = match p.split_once("://") {
            None => p.as_str(),
            Some(("file", rest)) => rest,
            Some((scheme, _)) => {
                return Err(self.err(format!(
                    "'path' = '{p}': weir reads and writes local files; the {scheme}:// file \
                     system is not supported"
                )))
            }
        };
        Ok(base.join(p))
    }

    /// The table's file path, if it is a file table.
    pub fn file_path(&self, base: &Path) -> Option<PathBuf> {
        if self
            .options
            .get("connector")
            .is_some_and(|c| c.eq_ignore_ascii_case("nexmark"))
        {
            return None;
        }
        match self.kind() {
            Ok("parquet" | "json" | "csv") => self.path(base).ok(),
            _ => None,
        }
    }

    /// Writes `stream` into `path` instead of the table's own: in the
    /// table's file format, or by `path`'s extension for a print table.
    pub fn sink_to(
        &self,
        stream: &Stream,
        path: &Path,
        node: &impl ast::Spanned,
    ) -> Result<(), SqlError> {
        let kind = self.kind()?;
        let format = file_format(kind);
        match kind {
            // the table's rolling policy goes with its rows
            "parquet" | "json" | "csv" => {
                let rolling = crate::partitioned::rolling(self, &|m| self.err(m))?;
                stream
                    .sink_files(path, format, None, rolling)
                    .map_err(|e| engine(node, e))
            }
            "nexmark" | "kafka" | "redis" => Table::sink_by_extension(stream, path, node),
            _ => Table::sink_by_extension(stream, path, node),
        }
    }

    /// JSON lines for a `.json`/`.jsonl` path, CSV for `.csv`, else Parquet.
    pub fn sink_by_extension(
        stream: &Stream,
        path: &Path,
        node: &impl ast::Spanned,
    ) -> Result<(), SqlError> {
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("jsonl"));
        let csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if json {
            stream.sink_json(path).map_err(|e| engine(node, e))
        } else if csv {
            stream.sink_csv(path).map_err(|e| engine(node, e))
        } else {
            stream.sink_parquet(path).map_err(|e| engine(node, e))
        }
    }

    /// `parquet`, `json` or `print`, from `connector` and `format`; an
    /// option the file and print connectors do not take is refused by name
    /// (Flink's filesystem options such as `sink.rolling-policy.*` would
    /// otherwise be silently ignored).
    fn kind(&self) -> Result<&'static str, SqlError> {
        let kind = self.connector_kind()?;
        let allowed: &[&str] = match kind {
            "parquet" => &[
                "connector",
                "path",
                "format",
                "changelog",
                "scan.from",
                "scan.until",
                "scan.speed",
            ],
            "json" | "csv" => &["connector", "path", "format", "changelog"],
            "print" => &["connector", "changelog"],
            _ if !self.partition_by.is_empty() => {
                return Err(self.err(format!(
                    "PARTITIONED BY is a filesystem sink's (Parquet, JSON, CSV), not a {kind} \
                     table's"
                )))
            }
            _ => return Ok(kind), // the broker and generator tables check their own
        };
        let mut allowed = allowed.to_vec();
        if kind != "print" {
            allowed.extend(crate::partitioned::ROLLING_OPTIONS);
        }
        if !self.partition_by.is_empty() {
            if kind == "print" {
                return Err(self.err("a print table is not partitioned"));
            }
            allowed.extend(crate::partitioned::OPTIONS);
        }
        only_options(&self.options, &allowed, kind, &|m| {
            if crate::partitioned::OPTIONS
                .iter()
                .any(|o| m.contains(&format!("`{o}`")))
            {
                self.err(format!("{m}; it needs PARTITIONED BY (column, …)"))
            } else {
                self.err(m)
            }
        })?;
        Ok(kind)
    }

    fn connector_kind(&self) -> Result<&'static str, SqlError> {
        let connector = self.options["connector"].to_ascii_lowercase();
        let format = self.options.get("format").map(|f| f.to_ascii_lowercase());
        match (connector.as_str(), format.as_deref()) {
            ("parquet", None | Some("parquet")) | ("filesystem", Some("parquet")) => Ok("parquet"),
            ("filesystem", Some("json")) => Ok("json"),
            ("filesystem", Some("csv")) => Ok("csv"),
            ("filesystem", None) => {
                Err(self.err("a filesystem table needs 'format' = 'parquet', 'json' or 'csv'"))
            }
            ("filesystem" | "parquet", Some(f)) => Err(self.err(format!(
                "format `{f}` is not supported yet (parquet, json, csv)"
            ))),
            ("print", _) => Ok("print"),
            ("nexmark", _) => Ok("nexmark"),
            ("kafka", _) => Ok("kafka"),
            ("redis", _) => Ok("redis"),
            (c, _) => Err(self.err(format!(
                "connector `{c}` is not supported in weir SQL yet (filesystem, parquet, print, \
                 nexmark, kafka, redis)"
            ))),
        }
    }

    /// The table as a source: its declared columns that `reads` names (all
    /// of them when `None`, see `pruning`; the event-time, partition and
    /// `op` columns always), event time from its watermark.
    pub fn source(
        &self,
        job: &Job,
        base: &Path,
        generated: &Generated,
        reads: Option<&std::collections::BTreeSet<String>>,
    ) -> Result<Stream, SqlError> {
        let read = self.read_columns(reads);
        // the columns the connector holds, checked against the declared ones
        let mut holds: Option<arrow_schema::SchemaRef> = None;
        let (s, what) = match self.kind()? {
            k if !self.partition_by.is_empty() && k != "parquet" => {
                return Err(self.err(format!(
                    "is partitioned (PARTITIONED BY): weir reads k=v/… partitions of Parquet \
                     files, not of {k}"
                )))
            }
            "parquet" => {
                let path = self.path(base)?;
                let spec = self.replay(ParquetSourceSpec::try_new(std::slice::from_ref(&path)))?;
                holds = Some(spec.schema().clone());
                // decode only the columns read (declared ones missing from
                // the files are reported below, not here)
                let spec = if read.iter().all(|c| spec.schema().index_of(c).is_ok()) {
                    spec.with_projection(&read)
                        .map_err(|e| self.err(e.to_string()))?
                } else {
                    spec
                };
                let s = job
                    .parquet_source(spec)
                    .map_err(|e| self.err(e.to_string()))?;
                (s, path.display().to_string())
            }
            "nexmark" => self.nexmark(job, generated)?,
            "redis" => {
                let r = crate::redis::RedisTable::try_new(&self.options, &|m| self.err(m))?;
                let s = r
                    .source(job, self.declared_schema())
                    .map_err(|e| self.err(e.to_string()))?;
                (s, format!("redis streams `{}`", r.keys()))
            }
            "kafka" => {
                let k = self.kafka()?;
                let schema = Arc::new(arrow_schema::Schema::new(
                    self.columns
                        .iter()
                        .map(|(n, t)| arrow_schema::Field::new(n, t.clone(), true))
                        .collect::<Vec<_>>(),
                ));
                let s = k.source(job, schema).map_err(|e| self.err(e.to_string()))?;
                (s, format!("kafka topic `{}`", k.topic()))
            }
            _ => {
                return Err(self
                    .err("is a sink: only Parquet, Nexmark, Kafka and Redis tables can be read"))
            }
        };
        let holds = holds.unwrap_or_else(|| s.schema().clone());
        for (name, want) in &self.columns {
            let Some(field) = holds.fields().iter().find(|f| f.name() == name) else {
                return Err(self.err(format!(
                    "{what} has no column `{name}` (it has {})",
                    holds
                        .fields()
                        .iter()
                        .map(|f| format!("`{}`", f.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            // a partition column's values are typed from the folder names
            // (integers if all parse): read as declared
            if self.partition_by.contains(name) && !fits(want, field.data_type()) {
                continue;
            }
            if !fits(want, field.data_type()) {
                return Err(self.err(format!(
                    "column `{name}` is declared {want} but {what} holds {}",
                    field.data_type()
                )));
            }
        }
        let mut s = s;
        for (name, want) in self
            .columns
            .iter()
            .filter(|(n, _)| self.partition_by.contains(n))
        {
            let have = s
                .schema()
                .field_with_name(name)
                .map(|f| f.data_type().clone());
            if have.is_ok_and(|h| !fits(want, &h)) {
                s = s
                    .with_column(name, weir_core::expr::col(name).cast(want.clone()))
                    .map_err(|e| self.err(e.to_string()))?;
            }
        }
        // only the declared columns read, in order (connectors that cannot
        // project drop the others here, before any shuffle or state)
        let s = if s.schema().fields().iter().map(|f| f.name()).eq(read.iter()) {
            s
        } else {
            s.select(read.iter().copied())
                .map_err(|e| self.err(e.to_string()))?
        };
        match &self.watermark {
            None => Ok(s),
            Some((column, delay)) => s
                .assign_timestamps(column, WatermarkStrategy::bounded_out_of_orderness(*delay))
                .map_err(|e| self.err(e.to_string())),
        }
    }

    /// The declared columns a source reads, in order: those `reads` names
    /// (every one when `None`), its event-time, partition and `op`
    /// columns, and at least one (`COUNT(*)` reads rows, not columns).
    fn read_columns(&self, reads: Option<&std::collections::BTreeSet<String>>) -> Vec<&str> {
        let keep = |name: &str| {
            reads.is_none_or(|r| r.contains(&name.to_lowercase()))
                || self.watermark.as_ref().is_some_and(|(t, _)| t == name)
                || self.partition_by.iter().any(|p| p == name)
                || name == weir_operators::OP_COLUMN
        };
        let mut read: Vec<&str> = self
            .columns
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| keep(n))
            .collect();
        if read.is_empty() {
            read.extend(self.columns.first().map(|(n, _)| n.as_str()));
        }
        read
    }

    /// A Parquet table's replay options on `spec`: `'scan.from'` and
    /// `'scan.until'` (time travel: `[from, until)` of the WATERMARK's
    /// column, row groups pruned by their statistics; RFC 3339 or epoch
    /// milliseconds) and `'scan.speed'` (`max`, `realtime` or a factor such
    /// as `60x`: paced by event time), as a job file's `from`, `until` and
    /// `speed`.
    fn replay(
        &self,
        spec: weir_core::error::Result<ParquetSourceSpec>,
    ) -> Result<ParquetSourceSpec, SqlError> {
        use weir_connectors::replay::{parse_time, ReplaySpeed, TimeRange};
        let fail = |e: weir_core::error::Error| self.err(e.to_string());
        let mut spec = spec.map_err(fail)?.with_batch_size(8192);
        let option = |key: &str| self.options.get(key).map(|v| v.trim().to_string());
        let (from, until, speed) = (
            option("scan.from"),
            option("scan.until"),
            option("scan.speed"),
        );
        if from.is_none() && until.is_none() && speed.is_none() {
            return Ok(spec);
        }
        let Some((column, _)) = &self.watermark else {
            return Err(self.err(
                "'scan.from', 'scan.until' and 'scan.speed' follow event time: declare a WATERMARK",
            ));
        };
        let time = |key: &str, v: &Option<String>| -> Result<Option<i64>, SqlError> {
            v.as_deref()
                .map(|t| parse_time(key, t))
                .transpose()
                .map_err(fail)
        };
        let range = TimeRange {
            from: time("scan.from", &from)?,
            until: time("scan.until", &until)?,
        };
        if let (Some(f), Some(u)) = (range.from, range.until) {
            if f >= u {
                return Err(self.err("'scan.from' must be before 'scan.until'"));
            }
        }
        if range.from.is_some() || range.until.is_some() {
            spec = spec.with_time_range(column, range).map_err(fail)?;
        }
        if let Some(s) = speed {
            let speed: ReplaySpeed = s.parse().map_err(fail)?;
            spec = spec.with_replay_speed(column, speed).map_err(fail)?;
        }
        Ok(spec)
    }

    /// The declared columns as the schema of a broker's JSON records.
    fn declared_schema(&self) -> arrow_schema::SchemaRef {
        Arc::new(arrow_schema::Schema::new(
            self.columns
                .iter()
                .map(|(n, t)| arrow_schema::Field::new(n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    /// The Kafka settings of a `'connector' = 'kafka'` table.
    fn kafka(&self) -> Result<crate::kafka::KafkaTable, SqlError> {
        crate::kafka::KafkaTable::try_new(&self.options, &|m| self.err(m))
    }

    /// The Nexmark table this declares, and what errors call it.
    fn nexmark(&self, job: &Job, generated: &Generated) -> Result<(Stream, String), SqlError> {
        only_options(&self.options, NEXMARK_OPTIONS, "nexmark", &|m| self.err(m))?;
        let number = |key: &str, default: u64| -> Result<u64, SqlError> {
            match self.options.get(key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .replace('_', "")
                    .parse()
                    .map_err(|_| self.err(format!("'{key}' = '{v}' is not a whole number"))),
            }
        };
        let config = NexmarkConfig {
            events: number("events", 100_000)?,
            events_per_second: number("events-per-second", 10_000)?.max(1),
            max_delay_ms: number("max-delay-ms", 500)? as i64,
            seed: number("seed", 7)?,
            splits: (number("splits", 4)? as usize).max(1),
        };
        let table = self
            .options
            .get("table")
            .cloned()
            .unwrap_or_else(|| self.name.to_ascii_lowercase());
        let tables = {
            let mut cache = generated.nexmark.borrow_mut();
            match cache.get(&config) {
                Some(t) => Arc::clone(t),
                None => {
                    let t = Arc::new(
                        flink_tables(&generate(&config)).map_err(|e| self.err(e.to_string()))?,
                    );
                    cache.insert(config, Arc::clone(&t));
                    t
                }
            }
        };
        let Some((schema, splits)) = tables.table(&table) else {
            return Err(self.err(format!(
                "nexmark has the tables person, auction and bid, not `{table}` (say which with 'table' = …)"
            )));
        };
        let s = job
            .from_batches(schema.clone(), splits.clone())
            .map_err(|e| self.err(e.to_string()))?;
        Ok((s, format!("nexmark table `{table}`")))
    }

    /// Writes `stream` (whose columns are already the table's, in order)
    /// into the table.
    pub fn sink(
        &self,
        stream: &Stream,
        base: &Path,
        node: &impl ast::Spanned,
    ) -> Result<(), SqlError> {
        let kind = self.kind()?;
        let rolling = crate::partitioned::rolling(self, &|m| self.err(m))?;
        let format = file_format(kind);
        if !self.partition_by.is_empty() {
            let spec = crate::partitioned::spec(self, &|m| self.err(m))?;
            return stream
                .sink_files(self.path(base)?, format, Some(spec), rolling)
                .map_err(|e| engine(node, e));
        }
        match kind {
            "parquet" | "json" | "csv" => stream
                .sink_files(self.path(base)?, format, None, rolling)
                .map_err(|e| engine(node, e)),
            "nexmark" => Err(at_node(
                node,
                format!(
                    "table `{}` is a nexmark source: it cannot be written",
                    self.name
                ),
            )),
            "kafka" => self.kafka()?.sink(stream).map_err(|e| engine(node, e)),
            "redis" => crate::redis::RedisTable::try_new(&self.options, &|m| self.err(m))?
                .sink(stream)
                .map_err(|e| engine(node, e)),
            _ => {
                stream.sink_stdout();
                Ok(())
            }
        }
    }
}

/// Refuses an option `connector` does not take, listing the ones it does.
pub(crate) fn only_options(
    options: &BTreeMap<String, String>,
    allowed: &[&str],
    connector: &str,
    err: &dyn Fn(String) -> SqlError,
) -> Result<(), SqlError> {
    match options.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(err(format!(
            "option `{k}` is not a {connector} option ({})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A comma-separated option value's items, trimmed, empty ones dropped.
pub(crate) fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn names(columns: &[(String, DataType)]) -> String {
    columns
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `'key' = 'value'`.
fn option(o: &SqlOption) -> Result<(String, String), SqlError> {
    let SqlOption::KeyValue { key, value } = o else {
        return Err(at_node(o, "an option is 'key' = 'value'"));
    };
    let value = match value {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            ast::Value::Number(n, _) => n.clone(),
            ast::Value::Boolean(b) => b.to_string(),
            _ => return Err(at_node(value, "an option's value is a quoted string")),
        },
        _ => return Err(at_node(value, "an option's value is a quoted string")),
    };
    let key = key
        .to_string()
        .trim_matches(|c| c == '\'' || c == '"' || c == '`')
        .to_ascii_lowercase();
    Ok((key, value))
}

/// `ts` (no delay) or `ts - INTERVAL '5' SECOND`.
fn watermark_delay(w: &WatermarkClause) -> Result<Duration, SqlError> {
    let fail = |m: &str| {
        at(
            w.line,
            w.col,
            format!("WATERMARK FOR {} AS {}: {m}", w.column, w.expr),
        )
    };
    let e = sqlparser::parser::Parser::new(&crate::FlinkDialect)
        .try_with_sql(&w.expr)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| fail(&e.to_string()))?;
    let is_column = |x: &ast::Expr| matches!(x, ast::Expr::Identifier(i) if i.value == w.column);
    match &e {
        x if is_column(x) => Ok(Duration::ZERO),
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Minus,
            right,
        } if is_column(left) => interval(right).map_err(|e| fail(&e.to_string())),
        _ => Err(fail(&format!(
            "weir's watermark is the column less a fixed delay: `{c}` or `{c} - INTERVAL '5' SECOND`",
            c = w.column
        ))),
    }
}

/// The file format of a file table of `kind` (`parquet`, `json`, `csv`).
fn file_format(kind: &str) -> FileFormat {
    match kind {
        "json" => FileFormat::JsonLines,
        "csv" => FileFormat::Csv,
        _ => FileFormat::Parquet,
    }
}
