//! `'connector' = 'kafka'` tables: a topic of JSON records as a source
//! (Flink's option names) or a sink.
//!
//! Owns the mapping of a table's `WITH` options onto weir's Kafka source
//! and sink (`weir-connectors`, behind the `kafka` feature):
//!
//! | option | meaning |
//! |---|---|
//! | `topic` | the topic |
//! | `properties.bootstrap.servers` | `host:port[,host:port…]` |
//! | `format` | `json` (the one format) |
//! | `scan.startup.mode` | `earliest-offset` (default), `latest-offset`, `timestamp` |
//! | `scan.startup.timestamp-millis` | with `timestamp` |
//! | `scan.bounded.mode` | `latest-offset`: read what the topic holds when the job starts, then end (batch mode needs it); `unbounded` (default) |
//! | `key.fields` | sink: the column whose value keys each record |
//!
//! May use `weir-connectors`' Kafka connector, the engine's builder and
//! `super::error`.

use std::collections::BTreeMap;

use arrow_schema::SchemaRef;
use weir_engine::graph::{Job, Stream};

use crate::error::SqlError;

/// The options a Kafka table takes.
pub(crate) const OPTIONS: &[&str] = &[
    "connector",
    "topic",
    "properties.bootstrap.servers",
    "format",
    "value.format",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "key.fields",
];

/// A Kafka table's settings, checked.
pub(crate) struct KafkaTable {
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    brokers: Vec<String>,
    topic: String,
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    start: weir_connectors::live::StartFrom,
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    bounded: bool,
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    key: Option<String>,
}

impl KafkaTable {
    /// Reads `options`; `err` makes an error about the table.
    pub fn try_new(
        options: &BTreeMap<String, String>,
        err: &dyn Fn(String) -> SqlError,
    ) -> Result<Self, SqlError> {
        crate::catalog::only_options(options, OPTIONS, "kafka", err)?;
        let get = |k: &str| options.get(k).map(|v| v.trim().to_string());
        let topic = get("topic").ok_or_else(|| err("needs WITH ('topic' = …)".into()))?;
        let brokers =
            crate::catalog::list(&get("properties.bootstrap.servers").ok_or_else(|| {
                err("needs WITH ('properties.bootstrap.servers' = 'host:port')".into())
            })?);
        if brokers.is_empty() {
            return Err(err("'properties.bootstrap.servers' lists no broker".into()));
        }
        crate::broker::json_format(options, "kafka", err)?;
        let crate::broker::Scan { start, bounded } = crate::broker::scan(options, err)?;
        Ok(KafkaTable {
            brokers,
            topic,
            start,
            bounded,
            key: get("key.fields"),
        })
    }

    /// The topic as a source of rows of `schema` (JSON records).
    #[cfg(feature = "kafka")]
    pub fn source(&self, job: &Job, schema: SchemaRef) -> weir_core::error::Result<Stream> {
        let spec =
            weir_connectors::kafka::KafkaSourceConfig::new(self.brokers.clone(), &self.topic)
                .with_start(self.start.clone())
                .with_bounded(self.bounded)
                .into_spec(schema)?;
        Ok(job.live_source(spec))
    }

    /// The topic as a source (this build has no Kafka connector).
    #[cfg(not(feature = "kafka"))]
    pub fn source(&self, _job: &Job, _schema: SchemaRef) -> weir_core::error::Result<Stream> {
        Err(not_built())
    }

    /// Writes `stream` to the topic as JSON records.
    #[cfg(feature = "kafka")]
    pub fn sink(&self, stream: &Stream) -> weir_core::error::Result<()> {
        let mut spec =
            weir_connectors::kafka::KafkaSinkSpec::new(self.brokers.clone(), &self.topic);
        if let Some(k) = &self.key {
            spec = spec.with_key(k);
        }
        stream.sink_kafka(spec)
    }

    /// Writes to the topic (this build has no Kafka connector).
    #[cfg(not(feature = "kafka"))]
    pub fn sink(&self, _stream: &Stream) -> weir_core::error::Result<()> {
        Err(not_built())
    }

    /// The topic, for messages.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

#[cfg(not(feature = "kafka"))]
fn not_built() -> weir_core::error::Error {
    weir_core::error::Error::option(
        "connector",
        "this weir was built without the kafka feature (cargo build --features kafka)",
    )
}
