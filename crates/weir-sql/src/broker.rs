//! The options broker tables (`kafka`, `redis`) share: the JSON format,
//! where a read starts (`scan.startup.mode`, `scan.startup.timestamp-millis`)
//! and whether it ends (`scan.bounded.mode`), with Flink's names.
//!
//! May use `weir-connectors`' live-source types and `super::error`.

use std::collections::BTreeMap;

use weir_connectors::live::StartFrom;

use crate::error::SqlError;

/// Where a broker read starts and whether it ends.
pub(crate) struct Scan {
    /// `scan.startup.mode`.
    pub start: StartFrom,
    /// `scan.bounded.mode` = `latest-offset`.
    pub bounded: bool,
}

/// Checks `format` (or `value.format`) is JSON, the one format of `connector`.
pub(crate) fn json_format(
    options: &BTreeMap<String, String>,
    connector: &str,
    err: &dyn Fn(String) -> SqlError,
) -> Result<(), SqlError> {
    let format = options
        .get("format")
        .or_else(|| options.get("value.format"));
    match format.map(|f| f.trim().to_ascii_lowercase()).as_deref() {
        None | Some("json") => Ok(()),
        Some(other) => Err(err(format!(
            "format `{other}` is not supported for {connector} yet (json)"
        ))),
    }
}

/// The `scan.*` options.
pub(crate) fn scan(
    options: &BTreeMap<String, String>,
    err: &dyn Fn(String) -> SqlError,
) -> Result<Scan, SqlError> {
    let get = |k: &str| options.get(k).map(|v| v.trim().to_string());
    let start = match get("scan.startup.mode").as_deref() {
        None | Some("earliest-offset") => StartFrom::Earliest,
        Some("latest-offset") => StartFrom::Latest,
        Some("timestamp") => {
            let t = get("scan.startup.timestamp-millis").ok_or_else(|| {
                err(
                    "'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis'"
                        .into(),
                )
            })?;
            StartFrom::Timestamp(t.parse().map_err(|_| {
                err(format!(
                    "'scan.startup.timestamp-millis' = '{t}' is not epoch milliseconds"
                ))
            })?)
        }
        Some(other) => {
            return Err(err(format!(
                "'scan.startup.mode' = '{other}' (earliest-offset, latest-offset, timestamp)"
            )))
        }
    };
    let bounded = match get("scan.bounded.mode").as_deref() {
        None | Some("unbounded") => false,
        Some("latest-offset") => true,
        Some(other) => {
            return Err(err(format!(
                "'scan.bounded.mode' = '{other}' (latest-offset, unbounded)"
            )))
        }
    };
    Ok(Scan { start, bounded })
}
