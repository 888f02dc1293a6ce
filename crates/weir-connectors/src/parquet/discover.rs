//! Which files a Parquet source reads, and their Hive-style partition values.
//!
//! ```text
//!  given path                     root                 files
//!  data/obd/part-0.parquet        (its folder)         the file (no partitions)
//!  data/obd                       data/obd             every *.parquet below, recursively
//!  data/obd/date=2026-11-*/*.parquet
//!                                 data/obd (the part   what the pattern matches; a matched
//!                                 before a wildcard)   folder means every *.parquet below it
//!
//!  root/date=2026-11-01/hour=07/part-0.parquet ─► partitions [(date, "2026-11-01"), (hour, "07")]
//! ```
//! A path that exists is taken literally, even if it contains `*`, `?` or
//! `[`. Folders named `key=value` between the root and a file are its
//! partitions (values are %-decoded, `__HIVE_DEFAULT_PARTITION__` and
//! Flink's `__DEFAULT_PARTITION__` are null;
//! folders without `=` are ignored). All files under one root must have the
//! same partition keys. A partition key becomes an Int64 column if every
//! value of it parses as an integer, else Utf8.
//!
//! Owns [`discover`], [`list_parquet_files`] (also used by `weir bench`'s
//! scan) and [`Partitions`]. May use
//! `weir_core::error`, `weir_core::paths` (the default partition's name),
//! the sibling `glob` module and arrow's schema types.

use super::super::glob;
use arrow_schema::{DataType, Field};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use weir_core::error::{Error, Result};

/// The value Hive writes for a null partition value.
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// One file to read and the raw `key=value` folders above it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The file.
    pub path: PathBuf,
    /// `(key, value)` in folder order; `None` is the Hive null value.
    pub partitions: Vec<(String, Option<String>)>,
}

/// Resolves the source paths (files, folders, patterns) to files, each
/// once by canonical path (first mention wins), with their partition folders.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Found>> {
    let mut out: Vec<Found> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for given in paths {
        let (root, files) = resolve(given)?;
        let mut first: Option<(PathBuf, Vec<String>)> = None;
        for path in files {
            // each file once, however it was reached (links, `..`, two paths)
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            if !seen.insert(canonical) {
                continue;
            }
            let partitions = match &root {
                Some(root) => partitions_of(root, &path),
                None => Vec::new(),
            };
            let mut keys: Vec<String> = partitions.iter().map(|(k, _)| k.clone()).collect();
            keys.sort();
            match &first {
                None => first = Some((path.clone(), keys)),
                Some((other, other_keys)) if *other_keys != keys => {
                    let shown = |k: &[String]| {
                        if k.is_empty() {
                            "none".to_string()
                        } else {
                            k.join(", ")
                        }
                    };
                    return Err(Error::SchemaMismatch {
                        location: path.display().to_string(),
                        message: format!(
                            "partition keys [{}] differ from [{}] of {} (same root {})",
                            shown(&keys),
                            shown(other_keys),
                            other.display(),
                            given.display()
                        ),
                    });
                }
                Some(_) => {}
            }
            out.push(Found { path, partitions });
        }
    }
    if out.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::option(
            "source.path",
            format!("no .parquet files found in {}", shown.join(", ")),
        ));
    }
    Ok(out)
}

/// The partition root (if partitions apply) and the files of one given path.
fn resolve(given: &Path) -> Result<(Option<PathBuf>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    list_parquet_files(given, &mut files)?;
    let root = match std::fs::metadata(given) {
        Ok(meta) if meta.is_file() => None,
        Ok(_) => Some(given.to_path_buf()),
        Err(_) => Some(glob::split(given).0),
    };
    Ok((root, files))
}

/// The `key=value` folders between `root` and `file`.
fn partitions_of(root: &Path, file: &Path) -> Vec<(String, Option<String>)> {
    let Ok(rel) = file.strip_prefix(root) else {
        return Vec::new();
    };
    let Some(folders) = rel.parent() else {
        return Vec::new();
    };
    folders
        .components()
        .filter_map(|c| {
            let text = c.as_os_str().to_str()?;
            let (key, value) = text.split_once('=')?;
            if key.is_empty() {
                return None;
            }
            let value = percent_decode(value);
            // Hive's and Spark's null, and Flink's (what weir's partitioned sink writes)
            let null = value == HIVE_NULL || value == weir_core::paths::DEFAULT_PARTITION;
            Some((percent_decode(key), (!null).then_some(value)))
        })
        .collect()
}

/// Decodes `%XX` escapes (as Hive and Spark write special characters);
/// anything else is kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One partition value of one file.
#[derive(Debug, Clone, PartialEq)]
pub enum PartValue {
    /// Null (`__HIVE_DEFAULT_PARTITION__`, or a key this file's root lacks).
    Null,
    /// An Int64 key's value.
    Int(i64),
    /// A Utf8 key's value.
    Str(String),
}

/// The partition columns of a source: their fields (appended after the
/// file columns) and every file's value of each.
#[derive(Debug, Clone, Default)]
pub struct Partitions {
    /// One field per key, in order of first appearance.
    pub fields: Vec<Field>,
    /// `values[file][key]`.
    pub values: Vec<Vec<PartValue>>,
}

impl Partitions {
    /// Types the keys of `found`: Int64 if every non-null value of a key
    /// parses as an integer (and there is one), else Utf8.
    pub fn new(found: &[Found]) -> Self {
        let mut keys: Vec<String> = Vec::new();
        for f in found {
            for (k, _) in &f.partitions {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let value = |f: &Found, key: &str| -> Option<Option<String>> {
            f.partitions
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let mut fields = Vec::new();
        let mut values = vec![Vec::new(); found.len()];
        for key in &keys {
            let raw: Vec<Option<String>> = found.iter().map(|f| value(f, key).flatten()).collect();
            let int = raw.iter().any(Option::is_some)
                && raw.iter().flatten().all(|v| v.parse::<i64>().is_ok());
            let nullable = raw.iter().any(Option::is_none);
            let ty = if int { DataType::Int64 } else { DataType::Utf8 };
            fields.push(Field::new(key, ty, nullable));
            for (vals, r) in values.iter_mut().zip(raw) {
                vals.push(match r {
                    None => PartValue::Null,
                    Some(v) if int => v.parse().map_or(PartValue::Null, PartValue::Int),
                    Some(v) => PartValue::Str(v),
                });
            }
        }
        Partitions { fields, values }
    }
}

/// Collects `*.parquet` files under `path` (or `path` itself), sorted.
/// Hidden files and files starting with `_` (e.g. `_SUCCESS`) are skipped.
/// A `path` that does not exist but has wildcards is a glob pattern: the
/// files it matches, and the `*.parquet` files below the folders it
/// matches; matching nothing is an error naming the pattern.
///
/// The walk is finite and exact: links are followed, but a folder already
/// visited (by device and inode, so `self -> .` and loops between folders)
/// is not entered again; anything that is neither a regular file nor a
/// folder (a FIFO, a socket, a device) is skipped with a warning, so a FIFO
/// named `x.parquet` never blocks the job. [`discover`] then keeps each
/// file once by its canonical path.
pub fn list_parquet_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut visited = HashSet::new();
    list(path, out, &mut visited)
}

/// A file or folder's identity: (device, inode).
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// What a non-regular file is, for warnings.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

fn skip_warning(path: &Path, meta: &std::fs::Metadata) {
    eprintln!(
        "weir: warning: skipping {}: {} (only regular files are read)",
        path.display(),
        kind_of(meta)
    );
}

fn list(path: &Path, out: &mut Vec<PathBuf>, visited: &mut HashSet<(u64, u64)>) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if !glob::has_wildcards(&path.to_string_lossy()) => return Err(Error::io(path, e)),
        Err(_) => {
            let matched = glob::expand(path)?;
            if matched.is_empty() {
                return Err(Error::option(
                    "source.path",
                    format!("pattern `{}` matches no file", path.display()),
                ));
            }
            for m in matched {
                list(&m, out, visited)?;
            }
            return Ok(());
        }
    };
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if !meta.is_dir() {
        skip_warning(path, &meta);
        return Ok(());
    }
    if !visited.insert(identity(&meta)) {
        return Ok(()); // a folder seen before (a link loop or a second way in)
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(path, err)))
        .collect::<Result<_>>()?;
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => list(&p, out, visited)?,
            Ok(_) if !name.ends_with(".parquet") => {}
            Ok(m) if m.is_file() => out.push(p),
            Ok(m) => skip_warning(&p, &m),
            // a broken link named *.parquet: reading it names the file
            Err(_) if name.ends_with(".parquet") => out.push(p),
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }

    #[test]
    fn partitions_come_from_key_value_folders_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(d, "t/date=2026-11-01/hour=07/a.parquet");
        touch(
            d,
            "t/date=2026-11-02/hour=__HIVE_DEFAULT_PARTITION__/b.parquet",
        );
        touch(d, "t/date=a%2Fb/hour=-3/c.parquet");
        // Flink's null, as weir's partitioned sink writes it
        touch(d, "t/date=__DEFAULT_PARTITION__/hour=5/d.parquet");
        let found = discover(&[d.join("t")]).unwrap();
        let parts: Vec<_> = found.iter().map(|f| f.partitions.clone()).collect();
        let kv = |k: &str, v: Option<&str>| (k.to_string(), v.map(str::to_string));
        assert_eq!(
            parts,
            vec![
                vec![kv("date", Some("2026-11-01")), kv("hour", Some("07"))],
                vec![kv("date", Some("2026-11-02")), kv("hour", None)],
                vec![kv("date", None), kv("hour", Some("5"))],
                vec![kv("date", Some("a/b")), kv("hour", Some("-3"))],
            ]
        );
        let p = Partitions::new(&found);
        assert_eq!(p.fields[0].data_type(), &DataType::Utf8);
        assert_eq!(p.fields[1].data_type(), &DataType::Int64);
        assert!(p.fields[1].is_nullable() && p.fields[0].is_nullable());
        assert_eq!(p.values[0][1], PartValue::Int(7));
        assert_eq!(p.values[1][1], PartValue::Null);
        assert_eq!(p.values[2][0], PartValue::Null);
        assert_eq!(p.values[3][0], PartValue::Str("a/b".into()));
        // a file given directly has no partitions
        let one = discover(&[d.join("t/date=2026-11-01/hour=07/a.parquet")]).unwrap();
        assert!(one[0].partitions.is_empty());
    }

    #[test]
    fn different_key_sets_under_one_root_name_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(d, "t/date=1/a.parquet");
        touch(d, "t/hour=2/b.parquet");
        let err = discover(&[d.join("t")]).unwrap_err().to_string();
        assert!(
            err.contains("a.parquet") && err.contains("b.parquet") && err.contains("date"),
            "{err}"
        );
    }

    #[test]
    fn patterns_select_files_and_folders_and_name_themselves_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(d, "t/date=2026-11-01/a.parquet");
        touch(d, "t/date=2026-11-02/b.parquet");
        touch(d, "t/date=2026-12-01/c.parquet");
        let found = discover(&[d.join("t/date=2026-11-*")]).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.parquet", "b.parquet"]);
        assert_eq!(found[1].partitions[0].1.as_deref(), Some("2026-11-02"));
        // the same file twice is read once
        let twice = discover(&[d.join("t/*/a.parquet"), d.join("t/date=2026-11-01")]).unwrap();
        assert_eq!(twice.len(), 1);
        let err = discover(&[d.join("t/date=2027-*/*.parquet")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("date=2027-*/*.parquet"), "{err}");
        assert!(discover(&[d.join("t/missing")]).is_err());
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("a%3Ab%2"), "a:b%2");
        assert_eq!(percent_decode("plain"), "plain");
    }
}
