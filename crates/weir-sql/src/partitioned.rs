//! The `WITH` options of a partitioned filesystem sink (`CREATE TABLE …
//! PARTITIONED BY (…) WITH ('connector' = 'filesystem', …)`), as Flink
//! names them, mapped onto the file sink's [`PartitionSpec`].
//!
//! May use `catalog` (the table) and `weir_connectors::files`.

use crate::catalog::Table;
use crate::error::SqlError;
use weir_connectors::files::{
    CommitTrigger, PartitionCommit, PartitionSpec, RollingPolicy, SUCCESS_FILE,
};

/// The options a partitioned filesystem table takes besides the file ones.
pub(crate) const OPTIONS: &[&str] = &[
    "sink.partition-commit.trigger",
    "sink.partition-commit.delay",
    "sink.partition-commit.policy.kind",
    "sink.partition-commit.success-file.name",
    "partition.time-extractor.kind",
    "partition.time-extractor.timestamp-pattern",
    "partition.time-extractor.timestamp-formatter",
    "partition.default-name",
];

/// Flink's rolling options, which every filesystem sink with a directory
/// path takes (`weir_connectors::files::RollingPolicy`).
pub(crate) const ROLLING_OPTIONS: &[&str] = &[
    "sink.rolling-policy.rollover-interval",
    "sink.rolling-policy.check-interval",
    "sink.rolling-policy.file-size",
    "sink.rolling-policy.inactivity-interval",
];

/// The rolling policy `table`'s options give (the default rolls nothing).
pub(crate) fn rolling(
    table: &Table,
    err: &dyn Fn(String) -> SqlError,
) -> Result<RollingPolicy, SqlError> {
    let option = |k: &str| table.options.get(k).map(|v| v.trim().to_string());
    let mut policy = RollingPolicy::default();
    let duration = |k: &str| -> Result<Option<std::time::Duration>, SqlError> {
        let Some(v) = option(k) else {
            return Ok(None);
        };
        match duration_ms(&v) {
            Some(ms) if ms > 0 => Ok(Some(std::time::Duration::from_millis(ms as u64))),
            _ => Err(err(format!(
                "'{k}' = '{v}' is not a duration (such as '1 min', '30 s', '2 h')"
            ))),
        }
    };
    let engine = |e: weir_core::error::Error| err(e.to_string());
    if let Some(d) = duration("sink.rolling-policy.rollover-interval")? {
        policy = policy.with_rollover(d).map_err(engine)?;
    }
    if let Some(d) = duration("sink.rolling-policy.inactivity-interval")? {
        policy = policy.with_inactivity(d).map_err(engine)?;
    }
    if let Some(d) = duration("sink.rolling-policy.check-interval")? {
        policy = policy.with_check_interval(d).map_err(engine)?;
    }
    if let Some(v) = option("sink.rolling-policy.file-size") {
        let size = bytes(&v).ok_or_else(|| {
            err(format!(
                "'sink.rolling-policy.file-size' = '{v}' is not a size (such as '128MB')"
            ))
        })?;
        policy = policy.with_file_size(size).map_err(engine)?;
    }
    Ok(policy)
}

/// The partitioning `table` declares.
pub(crate) fn spec(
    table: &Table,
    err: &dyn Fn(String) -> SqlError,
) -> Result<PartitionSpec, SqlError> {
    let option = |k: &str| table.options.get(k).map(|v| v.trim().to_string());
    let spec = PartitionSpec::by(table.partition_by.iter().cloned());
    if let Some(v) = option("sink.partition-commit.delay") {
        duration_ms(&v).ok_or_else(|| {
            err(format!(
                "'sink.partition-commit.delay' = '{v}' is not a duration (such as '1 min', \
                 '30 s', '2 h')"
            ))
        })?;
    }
    if let Some(v) = option("partition.default-name") {
        if v != weir_connectors::files::DEFAULT_PARTITION {
            return Err(err(format!(
                "'partition.default-name' = '{v}': weir names the partition of null and empty \
                 values {} only",
                weir_connectors::files::DEFAULT_PARTITION
            )));
        }
    }
    if let Some(v) = option("partition.time-extractor.kind") {
        if !v.eq_ignore_ascii_case("default") {
            return Err(err(format!(
                "'partition.time-extractor.kind' = '{v}': only 'default' is supported"
            )));
        }
    }
    if let Some(v) = option("partition.time-extractor.timestamp-formatter") {
        if v != "yyyy-MM-dd HH:mm:ss" {
            return Err(err(format!(
                "'partition.time-extractor.timestamp-formatter' = '{v}': only \
                 'yyyy-MM-dd HH:mm:ss' (also taking yyyy-MM-dd and yyyy-MM-dd HH:mm) is \
                 supported"
            )));
        }
    }
    if let Some(v) = option("sink.partition-commit.success-file.name") {
        if v != SUCCESS_FILE {
            return Err(err(format!(
                "'sink.partition-commit.success-file.name' = '{v}': weir writes {SUCCESS_FILE} \
                 only"
            )));
        }
    }
    let policies: Vec<String> = option("sink.partition-commit.policy.kind")
        .map(|v| crate::catalog::list(&v))
        .unwrap_or_default();
    for p in &policies {
        if !p.eq_ignore_ascii_case("success-file") {
            return Err(err(format!(
                "'sink.partition-commit.policy.kind' = '{p}' is not supported: weir commits \
                 partitions with 'success-file' (it has no metastore, and no custom policies)"
            )));
        }
    }
    let delay_ms = option("sink.partition-commit.delay")
        .and_then(|v| duration_ms(&v))
        .unwrap_or(0);
    let trigger = match option("sink.partition-commit.trigger").as_deref() {
        None | Some("process-time") => CommitTrigger::ProcessTime,
        Some("partition-time") => CommitTrigger::PartitionTime {
            pattern: option("partition.time-extractor.timestamp-pattern")
                .unwrap_or_else(|| format!("${}", table.partition_by[0])),
        },
        Some(other) => {
            return Err(err(format!(
                "'sink.partition-commit.trigger' = '{other}': use 'process-time' or \
                 'partition-time'"
            )))
        }
    };
    if policies.is_empty() {
        if option("sink.partition-commit.trigger").is_some() {
            return Err(err(
                "'sink.partition-commit.trigger' without 'sink.partition-commit.policy.kind' \
                 commits nothing: add 'sink.partition-commit.policy.kind' = 'success-file'"
                    .into(),
            ));
        }
        return Ok(spec);
    }
    Ok(spec.with_commit(PartitionCommit { trigger, delay_ms }))
}

/// A Flink duration (`'1 min'`, `'30s'`, `'2 h'`, `'100 ms'`, `'1d'`) in ms.
pub(crate) fn duration_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().ok()?;
    let per = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "mins" | "minute" | "minutes" | "m" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(per)
}

/// A Flink memory size (`'128MB'`, `'1 gb'`, `'1024'`) in bytes.
fn bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let per: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tebibytes" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_durations_and_sizes() {
        assert_eq!(duration_ms("1 min"), Some(60_000));
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("2 h"), Some(7_200_000));
        assert_eq!(duration_ms("100"), Some(100));
        assert_eq!(duration_ms("1 fortnight"), None);
        assert_eq!(duration_ms("min"), None);
        assert_eq!(bytes("128MB"), Some(128 << 20));
        assert_eq!(bytes("1 gb"), Some(1 << 30));
        assert_eq!(bytes("lots"), None);
    }
}
