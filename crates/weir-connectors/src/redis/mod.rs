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
        Ok(LiveSourceSpec::new(name, schema, factory, bounded))
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

/// One owned stream's reading state.
struct KeyState {
    key: String,
    /// Entries after this id are next.
    after: EntryId,
    /// Bounded reads end at this id (inclusive).
    end: Option<EntryId>,
    done: bool,
}

/// Reads the streams of one subtask.
pub struct RedisConnector {
    // config
    config: Arc<RedisSourceConfig>,
    // resources
    redis: Redis,
    // state
    streams: Vec<KeyState>,
    entries: Vec<(EntryId, Option<Vec<u8>>)>,
}

impl RedisConnector {
    fn open(config: Arc<RedisSourceConfig>, keys: Vec<String>) -> Result<Self> {
        let block = Duration::from_millis(config.block_ms);
        let mut redis = Redis::connect(&config.url, config.timeout, block)?;
        let mut streams = Vec::with_capacity(keys.len());
        for key in keys {
            let last = if config.bounded || config.start == StartFrom::Latest {
                redis.last_id(&key)?
            } else {
                None
            };
            let after = match &config.start {
                StartFrom::Earliest => EntryId(0, 0),
                StartFrom::Latest => last.unwrap_or_default(),
                StartFrom::Timestamp(ms) => EntryId(u64::try_from(*ms).unwrap_or(0), 0).before(),
                StartFrom::Positions(map) => match map.get(&key) {
                    Some(Position::Id(id)) => EntryId::parse(id).ok_or_else(|| {
                        Error::option("redis.start", format!("`{id}` is not an entry id"))
                    })?,
                    Some(p) => {
                        return Err(Error::option(
                            "redis.start",
                            format!("position `{p}` of {key} is not a stream entry id"),
                        ))
                    }
                    None => EntryId(0, 0),
                },
            };
            let end = config.bounded.then(|| last.unwrap_or_default());
            let done = end.is_some_and(|e| after >= e);
            streams.push(KeyState {
                key,
                after,
                end,
                done,
            });
        }
        Ok(RedisConnector {
            config,
            redis,
            streams,
            entries: Vec::new(),
        })
    }

    /// One XREAD over the active streams (at most `max` entries in all).
    /// Returns the streams (indices) that got entries.
    fn read(&mut self, max: usize, block: bool, out: &mut Vec<RawRecord>) -> Result<Vec<usize>> {
        let active: Vec<usize> = (0..self.streams.len())
            .filter(|&i| !self.streams[i].done)
            .take(max.max(1))
            .collect();
        let count = (max / active.len().max(1)).clamp(1, self.config.count);
        let mut cmd = ::redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count);
        if block {
            cmd.arg("BLOCK").arg(self.config.block_ms);
        }
        cmd.arg("STREAMS");
        for &i in &active {
            cmd.arg(&self.streams[i].key);
        }
        for &i in &active {
            cmd.arg(self.streams[i].after.to_string());
        }
        let keys_label = active
            .iter()
            .map(|&i| self.streams[i].key.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let reply: Value = self.redis.query(&keys_label, &cmd)?;
        let mut got = Vec::new();
        for (key, entries) in
            stream_replies(&reply).map_err(|m| self.redis.bad_reply(&keys_label, m))?
        {
            let Some(i) = active.iter().copied().find(|&i| self.streams[i].key == key) else {
                continue;
            };
            self.entries.clear();
            parse_entries(entries, &self.config.field, &mut self.entries)
                .map_err(|m| self.redis.bad_reply(&key, m))?;
            let stream = &mut self.streams[i];
            for (id, payload) in self.entries.drain(..) {
                if stream.end.is_some_and(|e| id > e) {
                    stream.done = true;
                    break;
                }
                stream.after = id;
                out.push(RawRecord {
                    partition: i,
                    position: Position::Id(id.to_string()),
                    // an entry without the field becomes a dead letter
                    payload: payload.unwrap_or_default(),
                });
            }
            if stream.end.is_some_and(|e| stream.after >= e) {
                stream.done = true;
            }
            got.push(i);
        }
        if !block && self.config.bounded {
            // a non-blocking read returns every stream that has entries
            // after its id: the others have none left before their end
            for &i in &active {
                if !got.contains(&i) {
                    self.streams[i].done = true;
                }
            }
        }
        Ok(got)
    }
}

impl Connector for RedisConnector {
    fn partitions(&self) -> Vec<String> {
        self.streams.iter().map(|s| s.key.clone()).collect()
    }

    fn fetch(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<Fetch> {
        if self.streams.iter().all(|s| s.done) {
            return Ok(Fetch::End);
        }
        let before = out.len();
        let got = self.read(max, false, out)?;
        if got.is_empty() && !self.config.bounded {
            self.read(max, true, out)?;
        }
        Ok(if self.streams.iter().all(|s| s.done) {
            Fetch::End
        } else if out.len() == before {
            Fetch::Idle
        } else {
            Fetch::Records
        })
    }

    fn finished_partitions(&self) -> Vec<usize> {
        (0..self.streams.len())
            .filter(|&i| self.streams[i].done)
            .collect()
    }

    fn positions(&self) -> BTreeMap<String, Position> {
        self.streams
            .iter()
            .map(|s| (s.key.clone(), Position::Id(s.after.to_string())))
            .collect()
    }

    /// The positions, and `KEY#end` (a bounded read's last id).
    fn checkpoint(&self) -> Result<BTreeMap<String, Position>> {
        let mut saved = self.positions();
        for s in &self.streams {
            if let Some(end) = s.end {
                saved.insert(format!("{}{END}", s.key), Position::Id(end.to_string()));
            }
        }
        Ok(saved)
    }

    fn seek(&mut self, saved: &BTreeMap<String, Position>) -> Result<()> {
        let id = |key: &str, name: &str| -> Result<Option<EntryId>> {
            match saved.get(name) {
                None => Ok(None),
                Some(Position::Id(text)) => {
                    EntryId::parse(text)
                        .map(Some)
                        .ok_or_else(|| Error::Checkpoint {
                            location: format!("redis stream {key}"),
                            message: format!("`{text}` is not an entry id"),
                        })
                }
                Some(other) => Err(Error::Checkpoint {
                    location: format!("redis stream {key}"),
                    message: format!("position `{other}` is not a stream entry id"),
                }),
            }
        };
        for i in 0..self.streams.len() {
            let key = self.streams[i].key.clone();
            let Some(after) = id(&key, &key)? else {
                continue;
            };
            let end = id(&key, &format!("{key}{END}"))?;
            let stream = &mut self.streams[i];
            stream.after = after;
            if self.config.bounded {
                stream.end = end.or(stream.end);
            }
            stream.done = stream.end.is_some_and(|e| after >= e);
        }
        Ok(())
    }
}

/// Checkpoint key suffix of a bounded read's last entry id.
const END: &str = "#end";

/// The `(key, entries)` pairs of an XREAD reply (RESP2 arrays or RESP3 maps).
fn stream_replies(reply: &Value) -> std::result::Result<Vec<(String, &Value)>, String> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        other => Err(format!("expected a stream key, found {other:?}")),
    };
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Array(pair) if pair.len() == 2 => Ok((text(&pair[0])?, &pair[1])),
                other => Err(format!("expected [key, entries], found {other:?}")),
            })
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(k, v)| Ok((text(k)?, v))).collect(),
        other => Err(format!("expected streams, found {other:?}")),
    }
}

/// Appends the `(id, value of field)` pairs of an entry list (`[[id,
/// [f, v, ...]], ...]`); an empty `field` takes no value.
fn parse_entries(
    entries: &Value,
    field: &str,
    out: &mut Vec<(EntryId, Option<Vec<u8>>)>,
) -> std::result::Result<(), String> {
    let Value::Array(entries) = entries else {
        return match entries {
            Value::Nil => Ok(()),
            other => Err(format!("expected entries, found {other:?}")),
        };
    };
    for entry in entries {
        let Value::Array(parts) = entry else {
            return Err(format!("expected an entry, found {entry:?}"));
        };
        let id = match parts.first() {
            Some(Value::BulkString(b)) => std::str::from_utf8(b).ok().and_then(EntryId::parse),
            Some(Value::SimpleString(s)) => EntryId::parse(s),
            _ => None,
        }
        .ok_or_else(|| format!("expected an entry id, found {:?}", parts.first()))?;
        let mut value = None;
        match parts.get(1) {
            Some(Value::Array(fields)) => {
                for pair in fields.chunks_exact(2) {
                    if matches!(&pair[0], Value::BulkString(f) if f == field.as_bytes()) {
                        if let Value::BulkString(v) = &pair[1] {
                            value = Some(v.clone());
                        }
                    }
                }
            }
            Some(Value::Map(fields)) => {
                for (f, v) in fields {
                    if matches!(f, Value::BulkString(f) if f == field.as_bytes()) {
                        if let Value::BulkString(v) = v {
                            value = Some(v.clone());
                        }
                    }
                }
            }
            _ => {}
        }
        out.push((id, value));
    }
    Ok(())
}

/// Where and how a Redis Streams sink writes: each row becomes one entry
/// whose `field` holds the row as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSinkSpec {
    /// The server, e.g. `redis://127.0.0.1:6379`.
    pub url: String,
    /// The stream key.
    pub key: String,
    /// The entry field (default `data`).
    pub field: String,
    /// Trim the stream to about this many entries (`MAXLEN ~ N`).
    pub max_len: Option<usize>,
    /// Entries per pipeline (default 10 000).
    pub batch_records: usize,
    /// Bound on connecting and on every command (default 10 s).
    pub timeout: Duration,
}

impl RedisSinkSpec {
    /// Appends to stream `key` on `url`, field `data`, no trimming.
    pub fn new(url: &str, key: &str) -> Self {
        RedisSinkSpec {
            url: url.to_string(),
            key: key.to_string(),
            field: "data".into(),
            max_len: None,
            batch_records: 10_000,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The entry field holding the JSON object.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = field.to_string();
        self
    }

    /// Trims the stream to about `n` entries as it appends.
    pub fn with_max_len(mut self, n: usize) -> Self {
        self.max_len = Some(n);
        self
    }

    /// Bound on connecting and on every command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the server and the key (it must be a stream or absent).
    pub fn check(&self) -> Result<()> {
        if self.key.is_empty() || self.field.is_empty() {
            return Err(Error::option(
                "redis sink",
                "key and field must not be empty",
            ));
        }
        let mut redis = Redis::connect(&self.url, self.timeout, Duration::ZERO)?;
        let kind: String = redis.query(&self.key, ::redis::cmd("TYPE").arg(&self.key))?;
        if kind != "stream" && kind != "none" {
            return Err(Error::Connector {
                endpoint: redis.endpoint(&self.key),
                message: format!("the key holds a {kind}, not a stream"),
            });
        }
        Ok(())
    }

    /// The sink instance of one subtask (connects now).
    pub fn create(self: &Arc<Self>) -> Result<RedisSink> {
        Ok(RedisSink {
            spec: self.clone(),
            redis: Redis::connect(&self.url, self.timeout, Duration::ZERO)?,
        })
    }
}

/// One subtask of a Redis Streams sink.
pub struct RedisSink {
    // config
    spec: Arc<RedisSinkSpec>,
    // resources
    redis: Redis,
}

impl Operator for RedisSink {
    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        _: &mut Ctx,
        _: &mut Output,
    ) -> Result<()> {
        let rows = super::kafka::json_rows(&batch, &format!("redis sink {}", self.spec.key))?;
        let spec = &self.spec;
        for chunk in rows.chunks(spec.batch_records.max(1)) {
            let mut pipe = ::redis::pipe();
            for row in chunk {
                let cmd = pipe.cmd("XADD").arg(&spec.key);
                if let Some(n) = spec.max_len {
                    cmd.arg("MAXLEN").arg("~").arg(n);
                }
                cmd.arg("*").arg(&spec.field).arg(row.as_slice()).ignore();
            }
            self.redis.run(&spec.key, |c| pipe.query::<()>(c))?;
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

    /// Nothing is buffered (every batch is appended before `on_batch`
    /// returns), so nothing to flush or save: at-least-once, rows since
    /// the last checkpoint are appended again after a restore.
    fn snapshot(&mut self, _ctx: &mut Ctx, _state: &mut StateWriter) -> Result<()> {
        Ok(())
    }

    /// Nothing to restore (the snapshot saves nothing).
    fn restore(&mut self, _ctx: &mut Ctx, _state: &StateReader) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_parse_order_and_step_back() {
        assert_eq!(EntryId::parse("5-3"), Some(EntryId(5, 3)));
        assert_eq!(EntryId::parse("5"), Some(EntryId(5, 0)));
        assert_eq!(EntryId::parse("x-1"), None);
        assert!(EntryId(5, 3) < EntryId(6, 0));
        assert_eq!(EntryId(6, 0).before(), EntryId(5, u64::MAX));
        assert_eq!(EntryId(6, 2).before(), EntryId(6, 1));
        assert_eq!(EntryId(6, 2).to_string(), "6-2");
    }

    #[test]
    fn urls_are_shown_without_passwords() {
        assert_eq!(
            display_url("redis://:secret@10.0.0.1:6379/2"),
            "redis://10.0.0.1:6379/2"
        );
        assert_eq!(display_url("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn replies_parse_into_ids_and_fields() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("data"), bulk("{}")]),
                ]),
                Value::Array(vec![bulk("1-1"), Value::Array(vec![bulk("x"), bulk("y")])]),
            ]),
        ])]);
        let streams = stream_replies(&reply).unwrap();
        assert_eq!(streams.len(), 1);
        let mut out = Vec::new();
        parse_entries(streams[0].1, "data", &mut out).unwrap();
        assert_eq!(
            out,
            vec![(EntryId(1, 0), Some(b"{}".to_vec())), (EntryId(1, 1), None)]
        );
    }

    #[test]
    fn an_unreachable_server_is_an_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        let err = RedisSourceConfig::new(&url, ["s"])
            .with_timeout(Duration::from_millis(300))
            .into_spec(Arc::new(arrow_schema::Schema::empty()))
            .err()
            .unwrap();
        assert!(err.to_string().contains(&url), "{err}");
    }
}
