//! An append-only log of per-key values on disk, for keyed state that
//! outgrew the memory budget and is read back one key at a time.
//!
//! Owns [`StateLog`]. May use `crate::key` (hashing) and `crate::error`.

use crate::error::{Error, Result};
use crate::key::stable_hash;
use crate::spill::{SpillManager, SpillMetrics};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

/// Bytes accounted per key in the index (hash, offset, length, map slot).
pub const INDEX_BYTES_PER_KEY: usize = 48;

/// The log is rewritten when dead records pass this size and the live ones.
const COMPACT_MIN_DEAD: u64 = 4 << 20;

/// Keyed values spilled to one temporary file, with an in-memory index.
///
/// ```text
///  append([(key, value)...]) ──► file: | klen u32 | key | vlen u32 | value | ...
///                                index: hash(key) ─► [(offset, record length)]
///  take(key) ──► hash ─► candidate records ─► the one whose key matches is
///               read, removed from the index and counted dead
///  dead > live and > 4 MiB ──► live records copied to a new file (compaction)
/// ```
/// Only the index stays in memory (about [`INDEX_BYTES_PER_KEY`] per key);
/// the keys themselves are on disk. The file is deleted when the log is
/// dropped.
pub struct StateLog {
    // config
    name: String,
    spill: Arc<SpillManager>,
    // state
    index: HashMap<u64, Vec<(u64, u32)>>,
    keys: usize,
    end: u64,
    live: u64,
    // resources
    file: Option<tempfile::NamedTempFile>,
}

impl std::fmt::Debug for StateLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateLog")
            .field("name", &self.name)
            .field("keys", &self.keys)
            .field("bytes", &self.end)
            .finish()
    }
}

impl StateLog {
    /// An empty log; its file is created in `spill`'s directory on the first append.
    pub fn new(spill: &Arc<SpillManager>, name: impl Into<String>) -> Self {
        StateLog {
            name: name.into(),
            spill: Arc::clone(spill),
            index: HashMap::new(),
            keys: 0,
            end: 0,
            live: 0,
            file: None,
        }
    }

    /// Number of keys in the log.
    pub fn len(&self) -> usize {
        self.keys
    }

    /// True if no key is in the log.
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// Bytes of memory the index uses (what a reservation should hold).
    pub fn memory_size(&self) -> usize {
        self.keys * INDEX_BYTES_PER_KEY
    }

    fn metrics(&self) -> &SpillMetrics {
        self.spill.metrics()
    }

    fn path(&self) -> std::path::PathBuf {
        self.file.as_ref().map_or_else(
            || self.spill.dir().to_path_buf(),
            |f| f.path().to_path_buf(),
        )
    }

    fn create_file(&self) -> Result<tempfile::NamedTempFile> {
        let file = tempfile::Builder::new()
            .prefix(&format!("{}-state-", safe(&self.name)))
            .suffix(".log")
            .tempfile_in(self.spill.dir())
            .map_err(|e| Error::io(self.spill.dir(), e))?;
        self.metrics().record_file(0, 0);
        Ok(file)
    }

    /// Appends `records` (a key already in the log is replaced: the last wins).
    pub fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<()> {
        self.compact_if_mostly_dead()?;
        let mut buf = Vec::new();
        let mut added = Vec::new();
        for (key, value) in records {
            let offset = self.end + buf.len() as u64;
            let len = encode(&mut buf, key, value, &self.name)?;
            added.push((key, offset, len));
        }
        if added.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(self.create_file()?);
        }
        let path = self.path();
        let file = self.file.as_mut().expect("created above").as_file_mut();
        file.seek(SeekFrom::Start(self.end))
            .and_then(|_| file.write_all(&buf))
            .map_err(|e| Error::io(&path, e))?;
        for (key, offset, len) in added {
            // a replaced key's old record becomes dead
            let _ = self.take(key)?;
            self.index
                .entry(stable_hash(key))
                .or_default()
                .push((offset, len));
            self.keys += 1;
            self.live += u64::from(len);
        }
        self.end += buf.len() as u64;
        self.metrics().record_bytes(buf.len() as u64);
        Ok(())
    }

    /// Removes `key` from the log and returns its value, if it is there.
    pub fn take(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let hash = stable_hash(key);
        let Some(candidates) = self.index.get(&hash) else {
            return Ok(None);
        };
        let candidates = candidates.clone();
        for (i, &(offset, len)) in candidates.iter().enumerate() {
            let record = self.read(offset, len)?;
            let (k, v) = decode(&record, &self.name, &self.path())?;
            if k == key {
                let value = v.to_vec();
                let list = self.index.get_mut(&hash).expect("found above");
                list.swap_remove(i);
                if list.is_empty() {
                    self.index.remove(&hash);
                }
                self.keys -= 1;
                self.live -= u64::from(len);
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Every `(key, value)` in the log, leaving it unchanged (checkpoints
    /// copy spilled state), in file order.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut records: Vec<(u64, u32)> = self.index.values().flatten().copied().collect();
        records.sort_unstable();
        let path = self.path();
        records
            .into_iter()
            .map(|(offset, len)| {
                let record = self.read(offset, len)?;
                let (k, v) = decode(&record, &self.name, &path)?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>> {
        let path = self.path();
        let file = self
            .file
            .as_ref()
            .expect("an indexed record is in the file");
        let mut f = file.as_file();
        let mut buf = vec![0u8; len as usize];
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| Error::io(&path, e))?;
        Ok(buf)
    }

    /// Rewrites the live records to a new file when most of the log is dead.
    fn compact_if_mostly_dead(&mut self) -> Result<()> {
        let dead = self.end - self.live;
        if dead < COMPACT_MIN_DEAD || dead < self.live {
            return Ok(());
        }
        let mut records: Vec<(u64, u32)> = self.index.values().flatten().copied().collect();
        records.sort_unstable();
        let mut new = self.create_file()?;
        let new_path = new.path().to_path_buf();
        let mut index: HashMap<u64, Vec<(u64, u32)>> = HashMap::with_capacity(self.index.len());
        let mut end = 0u64;
        let mut writer = std::io::BufWriter::new(new.as_file_mut());
        for (offset, len) in records {
            let record = self.read(offset, len)?;
            let (key, _) = decode(&record, &self.name, &self.path())?;
            index.entry(stable_hash(key)).or_default().push((end, len));
            writer
                .write_all(&record)
                .map_err(|e| Error::io(&new_path, e))?;
            end += u64::from(len);
        }
        writer.flush().map_err(|e| Error::io(&new_path, e))?;
        drop(writer);
        self.index = index;
        self.end = end;
        self.live = end;
        self.file = Some(new);
        Ok(())
    }
}

/// A file-name-safe version of an operator name.
fn safe(name: &str) -> String {
    name.chars()
        .take(48)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn encode(buf: &mut Vec<u8>, key: &[u8], value: &[u8], name: &str) -> Result<u32> {
    let too_big = || Error::State {
        operator: name.to_string(),
        message: format!(
            "a key's state of {} bytes is too large to spill (the limit is 4 GiB)",
            key.len() + value.len()
        ),
    };
    let klen = u32::try_from(key.len()).map_err(|_| too_big())?;
    let vlen = u32::try_from(value.len()).map_err(|_| too_big())?;
    let start = buf.len();
    buf.extend_from_slice(&klen.to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&vlen.to_le_bytes());
    buf.extend_from_slice(value);
    u32::try_from(buf.len() - start).map_err(|_| too_big())
}

fn decode<'a>(
    record: &'a [u8],
    name: &str,
    path: &std::path::Path,
) -> Result<(&'a [u8], &'a [u8])> {
    let corrupt = || {
        Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{name}: a spilled state record is truncated"),
            ),
        )
    };
    let u32_at = |at: usize| -> Result<usize> {
        let bytes = record.get(at..at + 4).ok_or_else(corrupt)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize)
    };
    let klen = u32_at(0)?;
    let key = record.get(4..4 + klen).ok_or_else(corrupt)?;
    let vlen = u32_at(4 + klen)?;
    let value = record.get(8 + klen..8 + klen + vlen).ok_or_else(corrupt)?;
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_once_and_replacements_win() {
        let spill = SpillManager::try_new(None).unwrap();
        let mut log = StateLog::new(&spill, "op");
        log.append([(&b"a"[..], &b"1"[..]), (b"b", b"22")]).unwrap();
        log.append([(&b"a"[..], &b"333"[..])]).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log.memory_size(), 2 * INDEX_BYTES_PER_KEY);
        assert_eq!(
            log.entries().unwrap(),
            vec![
                (b"b".to_vec(), b"22".to_vec()),
                (b"a".to_vec(), b"333".to_vec())
            ],
            "the replaced record is not listed"
        );
        assert_eq!(log.len(), 2, "listing takes nothing");
        assert_eq!(log.take(b"a").unwrap().as_deref(), Some(&b"333"[..]));
        assert_eq!(log.take(b"a").unwrap(), None);
        assert_eq!(log.take(b"zz").unwrap(), None);
        assert_eq!(log.take(b"b").unwrap().as_deref(), Some(&b"22"[..]));
        assert!(log.is_empty());
        assert_eq!(spill.metrics().files(), 1);
    }

    #[test]
    fn compaction_keeps_live_records_and_the_file_goes_with_the_log() {
        let spill = SpillManager::try_new(None).unwrap();
        let mut log = StateLog::new(&spill, "op");
        let value = vec![7u8; 1 << 16];
        let keys: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_le_bytes().to_vec()).collect();
        log.append(keys.iter().map(|k| (k.as_slice(), value.as_slice())))
            .unwrap();
        // take most back: the dead part passes the threshold
        for k in &keys[..180] {
            assert_eq!(log.take(k).unwrap().unwrap().len(), value.len());
        }
        log.append([(&b"new"[..], &b"x"[..])]).unwrap();
        assert!(log.end < 30 * (1 << 16), "compacted: {}", log.end);
        for k in &keys[180..] {
            assert_eq!(log.take(k).unwrap().unwrap(), value);
        }
        assert_eq!(log.take(b"new").unwrap().as_deref(), Some(&b"x"[..]));
        drop(log);
        assert_eq!(std::fs::read_dir(spill.dir()).unwrap().count(), 0);
    }
}
