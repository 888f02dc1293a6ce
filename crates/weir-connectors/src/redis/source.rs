//! The source side: [`RedisConnector`], one per subtask, reading the
//! stream keys it owns with `XRANGE`/`XREAD` from their start entries, and
//! the entry parsing it needs.
//!
//! May use what the parent module imports.

use super::*;

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
    pub(super) fn open(config: Arc<RedisSourceConfig>, keys: Vec<String>) -> Result<Self> {
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
pub(super) fn stream_replies(reply: &Value) -> std::result::Result<Vec<(String, &Value)>, String> {
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
pub(super) fn parse_entries(
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
