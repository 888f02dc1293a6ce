//! Redis Streams as a live source and as a sink, through the `redis` crate's
//! synchronous API (no consumer groups: weir keeps the entry ids itself).
//!
//! Owns [`RedisSourceConfig`] (→ a [`LiveSourceSpec`]), the per-subtask
//! [`RedisConnector`] and [`RedisSinkSpec`] / [`RedisSink`]. May use
//! `weir_core::error`, `weir_core::operator` and the sibling live modules; never
//! `exec` or `graph`.
//!
//! ```text
//!  stream key = partition; key i is read by subtask i % parallelism
//!  start: Earliest = after 0-0 | Latest = after the last entry present
//!         | Timestamp ms = from id ms-0 | stored Positions (entry ids, read after them)
//!  bounded: end = each key's last entry id when the subtask starts
//!  fetch: XREAD COUNT n STREAMS k.. id.. (no wait); nothing ─► again with BLOCK block_ms
//!         entry field `field` (default "data") = one JSON object ─► RawRecord
//!  sink:  rows ─► JSON objects ─► pipelined XADD key [MAXLEN ~ N] * field json
//! ```
//!
//! Every connection has connect, read and write timeouts; a server that
//! goes away is retried until the timeout, then the job fails with
//! [`Error::Connector`] naming `redis URL key`. Resuming is exact (reading
//! after an id is idempotent); the sink is at-least-once (a pipeline cut
//! off by a dropped connection is re-sent whole, and a failed job re-run
//! appends its rows again).
//!
//! **Checkpoints:** the source saves, per key, the last entry id emitted
//! and `KEY#end` (a bounded read's last id); the sink writes each batch
//! before `on_batch` returns, so its snapshot has nothing to flush and
//! saves nothing (at-least-once: rows since the checkpoint are appended
//! again after a restore).

use super::live::{Connector, Fetch, LiveSourceSpec, Position, RawRecord, StartFrom};
use ::redis::{Connection, Value};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::error::{Error, Result};
use weir_core::operator::{Ctx, Operator, Output, TaskInfo};
use weir_core::state::{StateReader, StateWriter};

mod sink;
mod source;

pub use sink::{RedisSink, RedisSinkSpec};
use source::parse_entries;
pub use source::RedisConnector;

/// The default bound on connecting and on every command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream entry id `ms-seq`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EntryId(pub u64, pub u64);

impl EntryId {
    /// Parses `ms-seq` (or `ms`, meaning `ms-0`).
    pub fn parse(text: &str) -> Option<EntryId> {
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }

    /// The id just before `self` (ids after it include `self`).
    fn before(self) -> EntryId {
        match self {
            EntryId(0, 0) => EntryId(0, 0),
            EntryId(ms, 0) => EntryId(ms - 1, u64::MAX),
            EntryId(ms, seq) => EntryId(ms, seq - 1),
        }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// Where and how a Redis Streams source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSourceConfig {
    /// The server, e.g. `redis://127.0.0.1:6379` (`redis://:password@host:port/db`).
    pub url: String,
    /// The stream keys to read; each is one partition.
    pub keys: Vec<String>,
    /// The entry field holding the JSON object (default `data`).
    pub field: String,
    /// Where to start (default: earliest).
    pub start: StartFrom,
    /// Read up to the last entry present when each subtask starts, then end.
    pub bounded: bool,
    /// Most entries read per stream and command (default 8192).
    pub count: usize,
    /// How long a read may wait for new entries when there are none (ms, >= 1; default 10).
    pub block_ms: u64,
    /// Bound on connecting and on every command (default 10 s).
    pub timeout: Duration,
}

impl Default for RedisSourceConfig {
    fn default() -> Self {
        RedisSourceConfig {
            url: String::new(),
            keys: Vec::new(),
            field: "data".into(),
            start: StartFrom::Earliest,
            bounded: false,
            count: 8192,
            block_ms: 10,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl RedisSourceConfig {
    /// Reads `keys` on `url` with the defaults (earliest, unbounded, field `data`).
    pub fn new<S: Into<String>>(url: &str, keys: impl IntoIterator<Item = S>) -> Self {
        RedisSourceConfig {
            url: url.to_string(),
            keys: keys.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Where to start reading.
    pub fn with_start(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// Ends at the entries present when the job starts.
    pub fn with_bounded(mut self, bounded: bool) -> Self {
        self.bounded = bounded;
        self
    }

    /// The entry field holding the JSON object.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = field.to_string();
        self
    }

    /// Bound on connecting and on every command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The source's name in errors and dead letters: `redis URL` (no password).
    pub fn source_name(&self) -> String {
        format!("redis {}", display_url(&self.url))
    }

    fn validate(&self) -> Result<()> {
        if self.keys.is_empty() {
            return Err(Error::option("redis.keys", "names no stream"));
        }
        if self.field.is_empty() {
            return Err(Error::option("redis.field", "is empty"));
        }
        if self.count == 0 || self.block_ms == 0 || self.timeout.is_zero() {
            return Err(Error::option(
                "redis",
                "count, block_ms and timeout must be positive (a zero BLOCK waits forever)",
            ));
        }
        if let StartFrom::Positions(map) = &self.start {
            for (name, p) in map {
                let ok = matches!(p, Position::Id(id) if EntryId::parse(id).is_some());
                if !ok {
                    return Err(Error::option(
                        "redis.start",
                        format!("position `{p}` of {name} is not a stream entry id"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A live source over the streams, decoding field `field` of each entry
    /// (one JSON object) into `schema`. Connects once now: fails, naming the
    /// server, if it cannot be reached, or naming the key if a key holds
    /// something other than a stream. Key `i` is read by subtask
    /// `i % parallelism`; partition names are the keys.
    pub fn into_spec(self, schema: SchemaRef) -> Result<LiveSourceSpec> {
        self.validate()?;
        let mut redis = Redis::connect(&self.url, self.timeout, Duration::ZERO)?;
        for key in &self.keys {
            let kind: String = redis.query(key, ::redis::cmd("TYPE").arg(key))?;
            if kind != "stream" && kind != "none" {
                return Err(Error::Connector {
                    endpoint: redis.endpoint(key),
                    message: format!("the key holds a {kind}, not a stream"),
                });
            }
        }
        let name = self.source_name();
        let bounded = self.bounded;
        let config = Arc::new(self);
        let factory = Arc::new(move |info: &TaskInfo| {
            let owned: Vec<String> = (config.keys.iter().enumerate())
                .filter(|(i, _)| i % info.parallelism.max(1) == info.subtask)
                .map(|(_, k)| k.clone())
                .collect();
            Ok(Box::new(RedisConnector::open(config.clone(), owned)?) as Box<dyn Connector>)
        });
        Ok(LiveSourceSpec::new(name, schema, factory, bounded).with_numbered_partitions())
    }
}

/// `redis://user:password@host:port/db` without the user and password.
fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host_end = rest.find('/').unwrap_or(rest.len());
            match rest[..host_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// A connection with timeouts that reconnects, within the timeout, when
/// the server drops it.
struct Redis {
    // config
    shown: String,
    timeout: Duration,
    /// Extra read time for blocking reads.
    block: Duration,
    // resources
    client: ::redis::Client,
    conn: Option<Connection>,
}

impl Redis {
    fn connect(url: &str, timeout: Duration, block: Duration) -> Result<Self> {
        let shown = display_url(url);
        let client = ::redis::Client::open(url).map_err(|e| Error::Connector {
            endpoint: format!("redis {shown}"),
            message: format!("bad url: {e}"),
        })?;
        let mut r = Redis {
            shown,
            timeout,
            block,
            client,
            conn: None,
        };
        r.conn = Some(r.open().map_err(|e| Error::Connector {
            endpoint: format!("redis {}", r.shown),
            message: format!("cannot connect: {e}"),
        })?);
        Ok(r)
    }

    fn open(&self) -> ::redis::RedisResult<Connection> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout + self.block))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    fn endpoint(&self, key: &str) -> String {
        format!("redis {} {key}", self.shown)
    }

    /// Runs a command (or pipeline) through `run`; a dropped connection is
    /// reopened and the command re-sent until the timeout has passed.
    fn run<T>(
        &mut self,
        key: &str,
        mut run: impl FnMut(&mut Connection) -> ::redis::RedisResult<T>,
    ) -> Result<T> {
        let started = Instant::now();
        loop {
            let attempt = match self.conn.as_mut() {
                Some(conn) => run(conn),
                None => self.open().and_then(|mut c| {
                    let r = run(&mut c);
                    self.conn = Some(c);
                    r
                }),
            };
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let transient = e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_connection_refusal()
                        || e.is_timeout();
                    if transient {
                        self.conn = None;
                    }
                    if !transient || started.elapsed() >= self.timeout {
                        return Err(Error::Connector {
                            endpoint: self.endpoint(key),
                            message: e.to_string(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn query<T: ::redis::FromRedisValue>(&mut self, key: &str, cmd: &::redis::Cmd) -> Result<T> {
        self.run(key, |c| cmd.query(c))
    }

    /// The id of the last entry of `key`, if it has any.
    fn last_id(&mut self, key: &str) -> Result<Option<EntryId>> {
        let reply: Value = self.query(
            key,
            ::redis::cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1),
        )?;
        let mut entries = Vec::new();
        parse_entries(&reply, "", &mut entries).map_err(|m| self.bad_reply(key, m))?;
        Ok(entries.first().map(|e| e.0))
    }

    fn bad_reply(&self, key: &str, message: String) -> Error {
        Error::Connector {
            endpoint: self.endpoint(key),
            message: format!("unexpected reply: {message}"),
        }
    }
}

#[cfg(test)]
mod tests;
