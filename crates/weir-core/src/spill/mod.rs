//! Spilling: moving Arrow data that does not fit the memory budget to disk
//! and reading it back.
//!
//! Owns [`SpillManager`] (the per-job temporary directory and its
//! [`SpillMetrics`]), the spill file types in `file.rs` ([`SpillWriter`],
//! [`SpillFile`], [`SpillReader`]: Arrow IPC files read back through `mmap`)
//! and [`batch_bytes`]. The staged executor's shuffle buffers that spill
//! through these files are `weir-engine`'s `exec/staged/exchange.rs`. The
//! structures operator state is
//! spilled into (sorted runs, the state log) are in `crate::state::store`.
//! May use [`crate::error`] and [`crate::memory`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_schema::SchemaRef;

use crate::error::{Error, Result};
use arrow_array::RecordBatch;

mod file;
mod owner;

pub use file::{owned_copy, SpillFile, SpillReader, SpillWriter};

/// Bytes of the part of the buffers `batch` covers (a slice of a larger
/// batch counts only its own rows, not the whole parent buffer).
pub fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// Counters of what was spilled, shared by all writers of one [`SpillManager`].
///
/// Updated when a [`SpillWriter`] is finished; unfinished (failed or dropped)
/// files are not counted.
#[derive(Default, Debug)]
pub struct SpillMetrics {
    // state
    /// Spill files finished.
    files: AtomicU64,
    /// Bytes in finished spill files.
    bytes: AtomicU64,
    /// Rows in finished spill files.
    rows: AtomicU64,
    /// Bytes of memory that spills freed (the state that was moved out).
    state_bytes: AtomicU64,
    /// The same per memory consumer, where the spiller named it.
    by_consumer: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl SpillMetrics {
    /// Number of spill files written.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// Bytes written to spill files (their sizes on disk).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Rows written to spill files.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Bytes of in-memory state that spills moved out (what the state
    /// store's `sync` freed, and shuffle batches written to disk).
    pub fn state_bytes(&self) -> u64 {
        self.state_bytes.load(Ordering::Relaxed)
    }

    /// Spill write amplification: bytes written to spill files per byte of
    /// in-memory state spilled (re-spills and compactions raise it; `None`
    /// before anything was spilled).
    pub fn write_amplification(&self) -> Option<f64> {
        let state = self.state_bytes();
        (state > 0).then(|| self.bytes() as f64 / state as f64)
    }

    /// Counts `bytes` of in-memory state moved to disk by a spill.
    pub fn record_state_spilled(&self, bytes: u64) {
        self.state_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// [`SpillMetrics::record_state_spilled`] for the state of the memory
    /// consumer named `consumer` (its reservation's name, e.g. `window[1]`),
    /// which [`SpillMetrics::state_bytes_by_consumer`] then reports.
    pub fn record_state_spilled_by(&self, consumer: &str, bytes: u64) {
        self.record_state_spilled(bytes);
        if bytes == 0 {
            return;
        }
        // spills are rare and large: a lock per spill costs nothing
        let mut by = self.by_consumer.lock().unwrap_or_else(|e| e.into_inner());
        match by.get_mut(consumer) {
            Some(n) => *n += bytes,
            None => {
                by.insert(consumer.to_string(), bytes);
            }
        }
    }

    /// State bytes spilled so far per consumer (see
    /// [`SpillMetrics::record_state_spilled_by`]).
    pub fn state_bytes_by_consumer(&self) -> Vec<(String, u64)> {
        let by = self.by_consumer.lock().unwrap_or_else(|e| e.into_inner());
        by.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Counts one finished file of `bytes` bytes holding `rows` rows.
    pub(crate) fn record_file(&self, bytes: u64, rows: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
    }
}

/// How spill files are compressed (Arrow IPC buffer compression).
///
/// Spilled state (keys, timestamps, counters) compresses several times
/// over, so [`SpillCompression::Lz4`] writes and reads a fraction of the
/// bytes where disk is the limit, at some CPU (a batch shuffle that spills
/// 240 MB at the default budget runs ~1.2x slower with it, measured from
/// the page cache). [`SpillCompression::Zstd`] writes less still at more
/// CPU. The default, [`SpillCompression::None`], keeps files
/// memory-mappable without a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpillCompression {
    /// Uncompressed: batches are read back straight from the map (the default).
    #[default]
    None,
    /// LZ4 frames: fast, about 2-3x smaller on typical state.
    Lz4,
    /// Zstandard: smaller than LZ4, slower to write.
    Zstd,
}

impl SpillCompression {
    /// The IPC codec, if any.
    pub(crate) fn codec(self) -> Option<arrow_ipc::CompressionType> {
        match self {
            SpillCompression::None => None,
            SpillCompression::Lz4 => Some(arrow_ipc::CompressionType::LZ4_FRAME),
            SpillCompression::Zstd => Some(arrow_ipc::CompressionType::ZSTD),
        }
    }
}

impl std::fmt::Display for SpillCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SpillCompression::None => "none",
            SpillCompression::Lz4 => "lz4",
            SpillCompression::Zstd => "zstd",
        })
    }
}

impl std::str::FromStr for SpillCompression {
    type Err = Error;

    /// `none`, `lz4` or `zstd` (any case).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(SpillCompression::None),
            "lz4" => Ok(SpillCompression::Lz4),
            "zstd" => Ok(SpillCompression::Zstd),
            _ => Err(Error::option(
                "--spill-compression",
                format!("`{s}` is not one of none, lz4, zstd"),
            )),
        }
    }
}

/// Owns the temporary directory spill files live in, and the spill metrics.
///
/// The directory (`weir-spill-XXXX`, owner-only: 0700, files 0600) is
/// created by [`SpillManager::try_new`] and removed, with anything left in
/// it, when the manager is dropped. A locked `.weir-spill-XXXX.lock` beside
/// it marks it as a live run's while the manager lives, so the next run with the same parent can tell a killed
/// run's directory from a live one and removes it. Keep the manager alive
/// while spill files are read: [`Partition`]s hold a reference to it for
/// that reason.
#[derive(Debug)]
pub struct SpillManager {
    // config
    /// How files are compressed.
    compression: SpillCompression,
    // state
    /// Makes spill file names unique.
    next_file: AtomicU64,
    // resources (dropped in this order: the directory, then its lock)
    /// The directory; removed on drop.
    dir: tempfile::TempDir,
    /// Locked for the manager's life: the directory belongs to a live run.
    _lock: owner::DirLock,
    /// What has been spilled.
    metrics: Arc<SpillMetrics>,
}

impl SpillManager {
    /// Creates a fresh `weir-spill-XXXX` directory (mode 0700) under
    /// `parent`, or under [`std::env::temp_dir`] when `parent` is `None`,
    /// after removing the spill directories killed runs left there.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the parent directory if the directory cannot be
    /// created.
    pub fn try_new(parent: Option<&Path>) -> Result<Arc<SpillManager>> {
        Self::try_with_compression(parent, SpillCompression::default())
    }

    /// [`SpillManager::try_new`] writing files compressed with `compression`.
    ///
    /// # Errors
    ///
    /// As [`SpillManager::try_new`].
    pub fn try_with_compression(
        parent: Option<&Path>,
        compression: SpillCompression,
    ) -> Result<Arc<SpillManager>> {
        use std::os::unix::fs::PermissionsExt;
        let parent = match parent {
            Some(parent) => parent.to_path_buf(),
            None => std::env::temp_dir(),
        };
        owner::remove_leftovers(&parent);
        let dir = tempfile::Builder::new()
            .prefix(owner::PREFIX)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        let lock = owner::lock(dir.path())?;
        Ok(Arc::new(SpillManager {
            compression,
            next_file: AtomicU64::new(0),
            dir,
            _lock: lock,
            metrics: Arc::default(),
        }))
    }

    /// How this manager's files are compressed.
    pub fn compression(&self) -> SpillCompression {
        self.compression
    }

    /// The spill directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What has been spilled through this manager so far.
    pub fn metrics(&self) -> &Arc<SpillMetrics> {
        &self.metrics
    }

    /// Starts a new spill file for batches of `schema`. `name` (e.g. the
    /// buffer and partition) becomes part of the file name, made unique with
    /// a counter; characters other than ASCII letters, digits, `-`, `_` and
    /// `.` are replaced by `_`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file if it cannot be created.
    pub fn create_writer(&self, schema: &SchemaRef, name: &str) -> Result<SpillWriter> {
        let id = self.next_file.fetch_add(1, Ordering::Relaxed);
        let safe_name: String = name
            .chars()
            .take(64)
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
                _ => '_',
            })
            .collect();
        let path = self.dir().join(format!("{safe_name}-{id}.arrow"));
        let codec = self.compression.codec();
        SpillWriter::create(path, schema, codec, Arc::clone(&self.metrics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dir_is_created_under_parent_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let manager = SpillManager::try_new(Some(parent.path())).unwrap();
        let dir = manager.dir().to_path_buf();
        assert!(dir.is_dir());
        assert_eq!(dir.parent(), Some(parent.path()));
        let dir_name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(dir_name.starts_with("weir-spill-"), "{dir_name}");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "owner only");
        let schema = Arc::new(arrow_schema::Schema::empty());
        let file = manager
            .create_writer(&schema, "x")
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(mode(file.path()), 0o600, "owner only");
        drop(file);
        // Leave a stray file behind: the directory goes anyway.
        std::fs::write(dir.join("stray"), b"x").unwrap();
        drop(manager);
        assert!(!dir.exists());
    }

    #[test]
    fn a_dead_runs_directory_is_removed_and_a_live_or_foreign_one_kept() {
        let parent = tempfile::tempdir().unwrap();
        let live = SpillManager::try_new(Some(parent.path())).unwrap();
        // a killed run: its lock file is there, nobody holds it
        let dead = parent.path().join("weir-spill-dead01");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(parent.path().join(".weir-spill-dead01.lock"), b"").unwrap();
        std::fs::write(dead.join("x-0.arrow"), b"rows").unwrap();
        // not weir's: no lock file
        let foreign = parent.path().join("weir-spill-notes");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("keep"), b"x").unwrap();
        let next = SpillManager::try_new(Some(parent.path())).unwrap();
        assert!(!dead.exists(), "a dead run's spill directory goes");
        assert!(live.dir().is_dir(), "a live run's stays");
        assert!(
            foreign.join("keep").exists(),
            "a directory weir cannot prove is its own stays"
        );
        drop((live, next));
        let left: Vec<_> = std::fs::read_dir(parent.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("weir-spill-notes")]);
    }

    #[test]
    fn default_parent_is_the_system_temp_dir() {
        let manager = SpillManager::try_new(None).unwrap();
        assert_eq!(manager.dir().parent(), Some(std::env::temp_dir().as_path()));
    }

    #[test]
    fn a_missing_parent_is_an_io_error_naming_it() {
        let parent = tempfile::tempdir().unwrap();
        let missing = parent.path().join("no/such/dir");
        let err = SpillManager::try_new(Some(&missing)).unwrap_err();
        assert!(
            matches!(&err, Error::Io { path, .. } if *path == missing),
            "{err}"
        );
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }

    #[test]
    fn writer_names_are_unique_and_sanitised() {
        let manager = SpillManager::try_new(None).unwrap();
        let schema = Arc::new(arrow_schema::Schema::empty());
        let a = manager.create_writer(&schema, "shuffle/p 1").unwrap();
        let b = manager.create_writer(&schema, "shuffle/p 1").unwrap();
        let a = a.finish().unwrap();
        let b = b.finish().unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(a.path().parent(), Some(manager.dir()));
        let name = a.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("shuffle_p_1-"), "{name}");
        assert_eq!(manager.metrics().files(), 2);
    }
}
