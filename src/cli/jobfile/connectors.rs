//! Sources of job files other than Parquet: CSV files (`type = "csv"`) and
//! the live ones, `type = "stdin" | "tcp" | "dir" | "kafka" | "redis" |
//! "generator"`, optionally with a Parquet `history` (hybrid).
//!
//! Owns the mapping from the typed `[source]` tables (`source.rs`) to
//! [`CsvSourceSpec`]s, [`LiveSourceSpec`]s and generator streams. May use
//! the engine's graph, the connectors and the workloads' generators.

use super::source::{CsvTable, EventTimeSpec, FileTable, GeneratorTable, LiveConnector, LiveTable};
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "kafka")]
use weir_connectors::kafka::KafkaSourceConfig;
use weir_connectors::live::dir::WatchedDir;
use weir_connectors::live::lines::LinesConnector;
use weir_connectors::live::{LiveSourceSpec, OnError, StartFrom};
#[cfg(feature = "redis")]
use weir_connectors::redis::RedisSourceConfig;
use weir_connectors::replay::{parse_time, ReplaySpeed};
use weir_connectors::{parse_schema, CsvSourceSpec, ParquetSourceSpec};
use weir_core::error::{Error, Result};
use weir_core::time::parse_duration;
use weir_engine::graph::{Job, Stream};
use weir_workloads::generators::{GeneratorKind, GeneratorSpec};

/// Builds the CSV source a `[source]` table with `type = "csv"` describes
/// (`path`/`paths`, `columns`, `schema`, `header`, `delimiter`,
/// `batch_size`); event time is assigned by the caller.
pub(crate) fn csv_stream(
    job: &Job,
    files: &FileTable,
    spec: &CsvTable,
    paths: Vec<PathBuf>,
    err: &dyn Fn(&str, Error) -> Error,
) -> Result<Stream> {
    let schema = if spec.schema.is_empty() {
        None
    } else {
        Some(parse_schema(&spec.schema).map_err(|e| err("schema", e))?)
    };
    let delimiter = match spec.delimiter.as_deref() {
        None => b',',
        Some("\\t" | "tab") => b'\t',
        Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
        Some(d) => {
            return Err(err(
                "delimiter",
                Error::option(
                    "delimiter",
                    format!("`{d}` is not one ASCII character (e.g. \",\", \";\", \"tab\")"),
                ),
            ))
        }
    };
    let mut source =
        CsvSourceSpec::try_with_options(&paths, schema, spec.header.unwrap_or(true), delimiter)
            .map_err(|e| err("path", e))?
            .with_batch_size(files.batch_size.unwrap_or(8192));
    if let Some(columns) = &files.columns {
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        source = source
            .with_projection(&names)
            .map_err(|e| err("columns", e))?;
    }
    Ok(job.source_spec(Arc::new(source)))
}

/// Builds the live source a `[source]` table describes; event time is
/// assigned by the caller.
pub(crate) fn live_stream(
    job: &Job,
    spec: &LiveTable,
    connector: &LiveConnector,
    time: &EventTimeSpec,
    resolve: &dyn Fn(&Path) -> PathBuf,
    err: &dyn Fn(&str, Error) -> Error,
) -> Result<Stream> {
    let schema = parse_schema(&spec.schema).map_err(|e| err("schema", e))?;
    let bounded = spec.bounded.unwrap_or(false);
    let on_error: OnError = spec
        .on_error
        .as_deref()
        .unwrap_or("fail")
        .parse()
        .map_err(|e| err("on_error", e))?;
    let mut start = parse_start(spec.start.as_deref()).map_err(|e| err("start", e))?;
    // a hybrid source starts its broker at the hand-off time
    if let (Some(h), StartFrom::Earliest) = (&spec.history, &start) {
        let t = parse_time("history.handoff", &h.handoff).map_err(|e| err("history.handoff", e))?;
        start = StartFrom::Timestamp(t);
    }
    let live = match connector {
        // one stream each: one subtask reads it, the rest of the job keeps its parallelism
        LiveConnector::Stdin => LiveSourceSpec::new(
            "stdin",
            schema,
            Arc::new(|_| Ok(Box::new(LinesConnector::stdin()?) as _)),
            true,
        )
        .with_max_parallelism(1),
        LiveConnector::Tcp(tcp) => {
            let address = tcp.address.clone().ok_or_else(|| {
                err(
                    "address",
                    Error::option("address", "missing: give `host:port`"),
                )
            })?;
            let name = format!("tcp {address}");
            LiveSourceSpec::new(
                name,
                schema,
                Arc::new(move |_| Ok(Box::new(LinesConnector::connect_tcp(&address)?) as _)),
                true,
            )
            .with_max_parallelism(1)
        }
        LiveConnector::Dir(dir) => {
            let path = dir.path.as_deref().map(resolve).ok_or_else(|| {
                err(
                    "path",
                    Error::option("path", "missing: the directory to watch"),
                )
            })?;
            let interval = match &dir.poll_interval {
                Some(d) => {
                    parse_duration("poll_interval", d).map_err(|e| err("poll_interval", e))?
                }
                None => std::time::Duration::from_millis(200),
            };
            let start_after = match &start {
                StartFrom::Positions(p) => p.values().next().map(|v| v.to_string()),
                _ => None,
            };
            let name = format!("dir {}", path.display());
            let file_schema = schema.clone();
            let watched = path.clone();
            LiveSourceSpec::new(
                name,
                schema,
                Arc::new(move |info| {
                    Ok(Box::new(WatchedDir::try_new(
                        &path,
                        file_schema.clone(),
                        info,
                        bounded,
                        interval,
                        start_after.clone(),
                    )?) as _)
                }),
                bounded,
            )
            .with_input_paths(vec![watched])
        }
        #[cfg(feature = "kafka")]
        LiveConnector::Kafka(kafka) => {
            let topic = kafka
                .topic
                .clone()
                .ok_or_else(|| err("topic", Error::option("topic", "missing")))?;
            if kafka.brokers.is_empty() {
                return Err(err(
                    "brokers",
                    Error::option("brokers", "missing: list `host:port`s"),
                ));
            }
            KafkaSourceConfig::new(kafka.brokers.clone(), &topic)
                .with_start(start)
                .with_bounded(bounded)
                .into_spec(schema)
                .map_err(|e| err("type", e))?
        }
        #[cfg(feature = "redis")]
        LiveConnector::Redis(redis) => {
            let url = redis.url.clone().ok_or_else(|| {
                err(
                    "url",
                    Error::option("url", "missing: e.g. redis://127.0.0.1:6379"),
                )
            })?;
            if redis.keys.is_empty() {
                return Err(err(
                    "keys",
                    Error::option("keys", "missing: the stream keys"),
                ));
            }
            let mut r = RedisSourceConfig::new(&url, redis.keys.clone())
                .with_start(start)
                .with_bounded(bounded);
            if let Some(f) = &redis.field {
                r = r.with_field(f);
            }
            r.into_spec(schema).map_err(|e| err("type", e))?
        }
        #[cfg(not(feature = "kafka"))]
        LiveConnector::Kafka(_) => return Err(err("type", super::super::not_built("kafka"))),
        #[cfg(not(feature = "redis"))]
        LiveConnector::Redis(_) => return Err(err("type", super::super::not_built("redis"))),
    };
    let mut live = live.with_on_error(on_error);
    if let Some(size) = &spec.max_record_bytes {
        let max = size
            .bytes("max_record_bytes")
            .map_err(|e| err("max_record_bytes", e))?;
        live = live.with_max_record_bytes(max);
    }
    if let Some(h) = &spec.history {
        let time = time.time_column.as_deref().ok_or_else(|| {
            err(
                "time_column",
                Error::option("time_column", "a source with `history` needs `time_column`"),
            )
        })?;
        let handoff =
            parse_time("history.handoff", &h.handoff).map_err(|e| err("history.handoff", e))?;
        let paths: Vec<PathBuf> = h.path.iter().chain(&h.paths).map(|p| resolve(p)).collect();
        if paths.is_empty() {
            return Err(err(
                "history.path",
                Error::option("history.path", "missing"),
            ));
        }
        live = live
            .with_history(ParquetSourceSpec::try_new(&paths)?, time, handoff)
            .map_err(|e| err("history", e))?;
    }
    Ok(job.live_source(live))
}

pub(crate) fn generator(
    job: &Job,
    spec: &GeneratorTable,
    time: &EventTimeSpec,
    err: &dyn Fn(&str, Error) -> Error,
) -> Result<Stream> {
    let kind: GeneratorKind = spec
        .generator
        .as_deref()
        .unwrap_or("vehicles")
        .parse()
        .map_err(|e| err("generator", e))?;
    let kind = match (kind, spec.vehicles) {
        (GeneratorKind::Vehicles { .. }, Some(v)) => GeneratorKind::Vehicles { vehicles: v.max(1) },
        (k, _) => k,
    };
    // the generator sets its own watermarks: refuse what it would ignore
    let ignored = [
        ("watermark_column", time.watermark_column.is_some()),
        ("watermark_predicate", time.watermark_predicate.is_some()),
        ("allowed_lateness", time.allowed_lateness.is_some()),
        ("idle_timeout", time.idle_timeout.is_some()),
    ];
    if let Some((key, _)) = ignored.iter().find(|(_, given)| *given) {
        return Err(err(
            key,
            Error::option(
                *key,
                "a generator sets its own watermarks (from `watermark_delay`)",
            ),
        ));
    }
    let mut g = GeneratorSpec::new(kind);
    g.events = spec.events;
    if let Some(r) = spec.rate {
        g.events_per_second = r.max(1);
    }
    if let Some(s) = &spec.speed {
        g.speed = s.parse::<ReplaySpeed>().map_err(|e| err("speed", e))?;
    }
    if let Some(d) = &time.watermark_delay {
        let d = parse_duration("watermark_delay", d).map_err(|e| err("watermark_delay", e))?;
        g.max_delay_ms = d.as_millis().min(i64::MAX as u128) as i64;
    }
    if let Some(t) = &time.time_column {
        if t != g.time_column() {
            return Err(err(
                "time_column",
                Error::option(
                    "time_column",
                    format!("the generator's event time is `{}`", g.time_column()),
                ),
            ));
        }
    }
    let mut stream = g.stream(job)?;
    if let Some(n) = time.parallelism {
        stream = stream.with_parallelism(n)?;
    }
    Ok(stream)
}

/// `earliest`, `latest`, `after:NAME` (a stored position, e.g. a file) or an event time.
fn parse_start(s: Option<&str>) -> Result<StartFrom> {
    Ok(match s.map(str::trim) {
        None | Some("earliest") => StartFrom::Earliest,
        Some("latest") => StartFrom::Latest,
        Some(s) if s.starts_with("after:") => StartFrom::Positions(
            [(
                String::new(),
                weir_connectors::live::Position::Id(s["after:".len()..].to_string()),
            )]
            .into(),
        ),
        Some(s) => StartFrom::Timestamp(parse_time("start", s)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start(None).unwrap(), StartFrom::Earliest);
        assert_eq!(parse_start(Some("latest")).unwrap(), StartFrom::Latest);
        assert_eq!(
            parse_start(Some("1000")).unwrap(),
            StartFrom::Timestamp(1000)
        );
        assert!(parse_start(Some("yesterday")).is_err());
    }
}
