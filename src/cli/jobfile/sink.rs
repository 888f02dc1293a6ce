//! The `[sink]`, `[late_sink]` and `[dead_letter_sink]` tables, typed: a
//! file sink (`parquet`, `json`, `stdout`, or the path's extension), Kafka
//! or Redis, each taking only its own keys; and wiring a stream to one
//! (`--output` replaces a file sink's path).
//!
//! May use the sibling `table` module and the connectors' sink specs.

use super::table::{field_names, refuse_rest, take, take_type, KeyError};
use super::*;
use crate::connectors::files::{CommitTrigger, PartitionCommit, PartitionSpec};
use toml::Table;

/// A sink table.
#[derive(Debug, Clone)]
pub enum SinkSpec {
    /// `type = "parquet" | "json" | "jsonl" | "csv" | "stdout"`, or no `type` (the
    /// format follows the path's extension; no path: standard output).
    File {
        /// The declared `type`.
        kind: Option<String>,
        /// Output file or directory.
        path: Option<PathBuf>,
        /// `partition_by` and the partition commit keys, if partitioned.
        partitioned: Option<PartitionedSinkTable>,
    },
    /// `type = "kafka"`.
    Kafka(KafkaSinkTable),
    /// `type = "redis"`.
    Redis(RedisSinkTable),
}

/// A file sink's keys.
#[derive(Debug, Clone, Default, Deserialize)]
struct FileSinkTable {
    #[serde(default)]
    path: Option<PathBuf>,
}

/// A partitioned directory sink's keys (Hive layout `k=v/…`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PartitionedSinkTable {
    /// Partition columns, outermost directory first.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// `"partition-time"` or `"process-time"`: write `_SUCCESS` files.
    #[serde(default)]
    pub partition_commit: Option<String>,
    /// How long after its time a partition commits (`"1m"`).
    #[serde(default)]
    pub partition_commit_delay: Option<String>,
    /// The partition's time from its values (`"$dt $hm:00"`; default `$`
    /// and the first partition column).
    #[serde(default)]
    pub partition_time_pattern: Option<String>,
}

impl PartitionedSinkTable {
    /// The sink's partitioning, or `None` if not partitioned; errors name the key.
    fn spec(&self) -> std::result::Result<Option<PartitionSpec>, KeyError> {
        if self.partition_by.is_empty() {
            for (key, given) in [
                ("partition_commit", self.partition_commit.is_some()),
                (
                    "partition_commit_delay",
                    self.partition_commit_delay.is_some(),
                ),
                (
                    "partition_time_pattern",
                    self.partition_time_pattern.is_some(),
                ),
            ] {
                if given {
                    return Err(KeyError::new(Some(key), "needs partition_by".to_string()));
                }
            }
            return Ok(None);
        }
        let spec = PartitionSpec::by(self.partition_by.iter().cloned());
        let delay_ms = match &self.partition_commit_delay {
            None => 0,
            Some(d) => weir_core::time::parse_duration("partition_commit_delay", d)
                .map(weir_core::time::duration_ms)
                .map_err(|e| KeyError::new(Some("partition_commit_delay"), e.to_string()))?,
        };
        let trigger = match self.partition_commit.as_deref() {
            None => {
                for (key, given) in [
                    (
                        "partition_commit_delay",
                        self.partition_commit_delay.is_some(),
                    ),
                    (
                        "partition_time_pattern",
                        self.partition_time_pattern.is_some(),
                    ),
                ] {
                    if given {
                        return Err(KeyError::new(
                            Some(key),
                            "needs partition_commit = \"partition-time\" or \"process-time\""
                                .to_string(),
                        ));
                    }
                }
                return Ok(Some(spec));
            }
            Some("process-time") if self.partition_time_pattern.is_some() => {
                return Err(KeyError::new(
                    Some("partition_time_pattern"),
                    "is for partition_commit = \"partition-time\" (process-time commits by \
                     the wall clock)"
                        .to_string(),
                ))
            }
            Some("process-time") => CommitTrigger::ProcessTime,
            Some("partition-time") => CommitTrigger::PartitionTime {
                pattern: self
                    .partition_time_pattern
                    .clone()
                    .unwrap_or_else(|| format!("${}", self.partition_by[0])),
            },
            Some(other) => {
                return Err(KeyError::new(
                    Some("partition_commit"),
                    format!("`{other}`: use \"partition-time\" or \"process-time\""),
                ))
            }
        };
        Ok(Some(
            spec.with_commit(PartitionCommit { trigger, delay_ms }),
        ))
    }
}

/// `type = "kafka"`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KafkaSinkTable {
    /// Bootstrap brokers (`host:port`).
    #[serde(default)]
    pub brokers: Vec<String>,
    /// The topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// The column whose value is the record key (partitioning).
    #[serde(default)]
    pub key_column: Option<String>,
    /// The column whose time becomes the record timestamp.
    #[serde(default)]
    pub timestamp_column: Option<String>,
}

/// `type = "redis"`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RedisSinkTable {
    /// The server URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The stream key.
    #[serde(default)]
    pub key: Option<String>,
    /// The entry field for the JSON row (default `data`).
    #[serde(default)]
    pub field: Option<String>,
    /// Trim the stream to about this many entries.
    #[serde(default)]
    pub max_len: Option<usize>,
}

impl SinkSpec {
    /// Reads a sink table: `type` says which keys it may hold.
    pub(crate) fn from_table(mut table: Table) -> std::result::Result<Self, KeyError> {
        let kind = take_type(&mut table)?;
        let what = format!("a `{}` sink", kind.as_deref().unwrap_or("file"));
        let spec = match kind.as_deref() {
            None | Some("parquet" | "json" | "jsonl" | "csv") => {
                let file: FileSinkTable = take(&mut table)?;
                let partitioned: PartitionedSinkTable = take(&mut table)?;
                refuse_rest(
                    &table,
                    &what,
                    &[
                        field_names::<FileSinkTable>(),
                        field_names::<PartitionedSinkTable>(),
                    ],
                )?;
                partitioned.spec()?;
                SinkSpec::File {
                    kind,
                    path: file.path,
                    partitioned: Some(partitioned).filter(|p| !p.partition_by.is_empty()),
                }
            }
            Some("stdout") => {
                refuse_rest(&table, &what, &[])?;
                SinkSpec::File {
                    kind,
                    path: None,
                    partitioned: None,
                }
            }
            Some("kafka") => {
                let spec = SinkSpec::Kafka(take(&mut table)?);
                refuse_rest(&table, &what, &[field_names::<KafkaSinkTable>()])?;
                spec
            }
            Some("redis") => {
                let spec = SinkSpec::Redis(take(&mut table)?);
                refuse_rest(&table, &what, &[field_names::<RedisSinkTable>()])?;
                spec
            }
            Some(other) => {
                return Err(KeyError::new(
                    Some("type"),
                    format!(
                        "unknown sink type `{other}` (use parquet, json, stdout, kafka or redis)"
                    ),
                ))
            }
        };
        Ok(spec)
    }
}

impl LoadedJob {
    /// Reads the sink table at `field`; errors name the key and its line.
    pub(super) fn typed_sink(&self, table: &Spanned<Table>, field: &str) -> Result<SinkSpec> {
        SinkSpec::from_table(table.get_ref().clone())
            .map_err(|e| self.key_error(table.span(), field, e))
    }

    /// Wires `stream` to the sink table at `field` (`None`: the job file
    /// has none); `output` replaces a file sink's path.
    pub(super) fn sink_to(
        &self,
        stream: &Stream,
        table: Option<&Spanned<Table>>,
        output: Option<&Path>,
        field: &str,
    ) -> Result<()> {
        let span = table.map_or(0..0, |t| t.span());
        let spec = table.map(|t| self.typed_sink(t, field)).transpose()?;
        let missing = |f: &str| self.error(span.clone(), &format!("{field}.{f}"), "missing");
        let (declared, written, partitioned) = match spec {
            Some(SinkSpec::File {
                kind,
                path,
                partitioned,
            }) => (kind, path.map(|p| self.resolve(&p)), partitioned),
            None => (None, None, None),
            Some(SinkSpec::Kafka(k)) => {
                self.no_output(output, field, "kafka")?;
                return self.kafka_sink(stream, k, span.clone(), field, &missing);
            }
            Some(SinkSpec::Redis(r)) => {
                self.no_output(output, field, "redis")?;
                return self.redis_sink(stream, r, span.clone(), field, &missing);
            }
        };
        let declared = declared.map(|k| if k == "jsonl" { "json".into() } else { k });
        // the path, and the option that gave it (for errors)
        let (path, option) = match output {
            Some(o) => (Some(o.to_path_buf()), "--output".to_string()),
            None => (written, format!("{field}.path")),
        };
        let fail = |message: String| match output {
            Some(_) => Error::option("--output", message),
            None => self.error(span.clone(), &option, message),
        };
        // the format follows the sink type; an extension naming another is refused
        let named = match &path {
            Some(p) => FileFormat::named_by(p).map_err(fail)?.map(FileFormat::name),
            None => None,
        };
        let kind = match (declared.as_deref(), named, &path) {
            (Some(d @ ("parquet" | "json" | "csv")), Some(n), Some(p)) if d != n => {
                return Err(fail(format!(
                    "{} names a {n} file, but the sink type is {d}: use a .{} path, \
                     or one without extension for a directory of part files",
                    p.display(),
                    match d {
                        "json" => "jsonl",
                        other => other,
                    }
                )))
            }
            // --output turns a stdout sink (or none) into a file sink
            (None | Some("stdout"), n, Some(_)) => n.unwrap_or("parquet"),
            (Some(k), _, _) => k,
            (None, _, None) => "stdout",
        };
        if let Some(table) = partitioned {
            let format = match kind {
                "parquet" => FileFormat::Parquet,
                "json" => FileFormat::JsonLines,
                "csv" => FileFormat::Csv,
                _ => {
                    return Err(self.error(
                        span,
                        &format!("{field}.partition_by"),
                        "a partitioned sink writes parquet, json or csv files",
                    ))
                }
            };
            let Some(p) = path else {
                return Err(self.error(
                    span,
                    &format!("{field}.path"),
                    "missing (or pass --output)",
                ));
            };
            let spec = table
                .spec()
                .map_err(|e| self.key_error(span.clone(), field, e))?
                .expect("partition_by is given");
            return stream.sink_partitioned(p, format, spec);
        }
        match (kind, path) {
            ("parquet", Some(p)) => stream.sink_parquet(p),
            ("json", Some(p)) => stream.sink_json(p),
            ("csv", Some(p)) => stream.sink_csv(p),
            ("parquet" | "json" | "csv", None) => {
                Err(self.error(span, &format!("{field}.path"), "missing (or pass --output)"))
            }
            _ => {
                stream.sink_stdout();
                Ok(())
            }
        }
    }

    /// `--output` applies to file sinks only.
    fn no_output(&self, output: Option<&Path>, field: &str, kind: &str) -> Result<()> {
        match output {
            Some(_) => Err(Error::option(
                "--output",
                format!(
                    "the job's [{field}] is a {kind} sink; --output applies to file sinks \
                     (parquet, json, csv)"
                ),
            )),
            None => Ok(()),
        }
    }

    /// A Kafka sink.
    #[cfg_attr(not(feature = "kafka"), allow(unused_variables))]
    fn kafka_sink(
        &self,
        stream: &Stream,
        s: KafkaSinkTable,
        span: Range<usize>,
        field: &str,
        missing: &dyn Fn(&str) -> Error,
    ) -> Result<()> {
        #[cfg(feature = "kafka")]
        {
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
        #[cfg(not(feature = "kafka"))]
        Err(self.error(
            span,
            &format!("{field}.type"),
            super::super::not_built("kafka"),
        ))
    }

    /// A Redis sink.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    fn redis_sink(
        &self,
        stream: &Stream,
        s: RedisSinkTable,
        span: Range<usize>,
        field: &str,
        missing: &dyn Fn(&str) -> Error,
    ) -> Result<()> {
        #[cfg(feature = "redis")]
        {
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
        #[cfg(not(feature = "redis"))]
        Err(self.error(
            span,
            &format!("{field}.type"),
            super::super::not_built("redis"),
        ))
    }
}
