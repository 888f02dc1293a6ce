//! The sink side: [`RedisSinkSpec`] → [`RedisSink`] per subtask, one
//! `XADD` per row with the row as a JSON object.
//!
//! May use what the parent module imports.

use super::*;

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
        let rows = crate::json_out::json_rows(&batch, &format!("redis sink {}", self.spec.key))?;
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
