//! `'connector' = 'redis'` tables: Redis streams of JSON entries as a
//! source or a sink (Flink has no standard Redis connector; the options
//! follow its Kafka ones where they mean the same).
//!
//! | option | meaning |
//! |---|---|
//! | `url` | `redis://host:port` |
//! | `keys` | source: the stream keys, comma-separated (one partition each) |
//! | `key` | sink: the stream key |
//! | `field` | the entry field holding the JSON record (default `data`) |
//! | `scan.startup.mode` | `earliest-offset` (default), `latest-offset`, `timestamp` |
//! | `scan.startup.timestamp-millis` | with `timestamp` |
//! | `scan.bounded.mode` | `latest-offset`: read what the streams hold when the job starts, then end (batch mode needs it); `unbounded` (default) |
//! | `sink.max-len` | sink: trim the stream to about this many entries |
//!
//! May use `weir-connectors`' Redis connector, the engine's builder and
//! `super::error`.

use std::collections::BTreeMap;

use arrow_schema::SchemaRef;
use weir_connectors::live::StartFrom;
use weir_engine::graph::{Job, Stream};

use crate::error::SqlError;

/// The options a Redis table takes.
pub(crate) const OPTIONS: &[&str] = &[
    "connector",
    "url",
    "keys",
    "key",
    "field",
    "format",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "sink.max-len",
];

/// A Redis table's settings, checked.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct RedisTable {
    url: String,
    keys: Vec<String>,
    field: Option<String>,
    start: StartFrom,
    bounded: bool,
    max_len: Option<usize>,
}

impl RedisTable {
    /// Reads `options`; `err` makes an error about the table.
    pub fn try_new(
        options: &BTreeMap<String, String>,
        err: &dyn Fn(String) -> SqlError,
    ) -> Result<Self, SqlError> {
        crate::catalog::only_options(options, OPTIONS, "redis", err)?;
        let get = |k: &str| options.get(k).map(|v| v.trim().to_string());
        let url =
            get("url").ok_or_else(|| err("needs WITH ('url' = 'redis://host:port')".into()))?;
        let keys = crate::catalog::list(&get("keys").or_else(|| get("key")).ok_or_else(|| {
            err("needs WITH ('keys' = 'stream[,stream…]') or a sink's 'key'".into())
        })?);
        if keys.is_empty() {
            return Err(err("names no stream key".into()));
        }
        crate::broker::json_format(options, "redis", err)?;
        let crate::broker::Scan { start, bounded } = crate::broker::scan(options, err)?;
        let max_len = get("sink.max-len")
            .map(|n| {
                n.parse()
                    .map_err(|_| err(format!("'sink.max-len' = '{n}' is not a count of entries")))
            })
            .transpose()?;
        Ok(RedisTable {
            url,
            keys,
            field: get("field"),
            start,
            bounded,
            max_len,
        })
    }

    /// The streams, for messages.
    pub fn keys(&self) -> String {
        self.keys.join(", ")
    }

    /// The streams as a source of rows of `schema` (JSON entries).
    #[cfg(feature = "redis")]
    pub fn source(&self, job: &Job, schema: SchemaRef) -> weir_core::error::Result<Stream> {
        let mut c = weir_connectors::redis::RedisSourceConfig::new(&self.url, self.keys.clone())
            .with_start(self.start.clone())
            .with_bounded(self.bounded);
        if let Some(f) = &self.field {
            c = c.with_field(f);
        }
        Ok(job.live_source(c.into_spec(schema)?))
    }

    /// The streams as a source (this build has no Redis connector).
    #[cfg(not(feature = "redis"))]
    pub fn source(&self, _job: &Job, _schema: SchemaRef) -> weir_core::error::Result<Stream> {
        Err(not_built())
    }

    /// Appends `stream`'s rows to the (one) stream key as JSON entries.
    #[cfg(feature = "redis")]
    pub fn sink(&self, stream: &Stream) -> weir_core::error::Result<()> {
        let [key] = self.keys.as_slice() else {
            return Err(weir_core::error::Error::option(
                "key",
                "a redis sink writes one stream: give one 'key'",
            ));
        };
        let mut s = weir_connectors::redis::RedisSinkSpec::new(&self.url, key);
        if let Some(f) = &self.field {
            s = s.with_field(f);
        }
        if let Some(n) = self.max_len {
            s = s.with_max_len(n);
        }
        stream.sink_redis(s)
    }

    /// Writes to the stream (this build has no Redis connector).
    #[cfg(not(feature = "redis"))]
    pub fn sink(&self, _stream: &Stream) -> weir_core::error::Result<()> {
        Err(not_built())
    }
}

#[cfg(not(feature = "redis"))]
fn not_built() -> weir_core::error::Error {
    weir_core::error::Error::option(
        "connector",
        "this weir was built without the redis feature (cargo build --features redis)",
    )
}
