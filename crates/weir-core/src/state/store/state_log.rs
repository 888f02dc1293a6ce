//! Per-key values on disk, for keyed state that outgrew the memory budget
//! and is read back one key at a time.
//!
//! Owns [`StateLog`] (key-sorted runs with a sparse block index and a
//! Bloom filter each, tombstones for keys taken back). May use `crate::key`
//! (hashing), `crate::spill` (files and metrics) and `crate::error`.

use super::bloom::Bloom;
use crate::error::{Error, Result};
use crate::spill::{SpillManager, SpillMetrics};
use std::collections::HashSet;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::sync::Arc;

/// Records are grouped into blocks of about this many bytes on disk; the
/// first key of every block is the sparse index, and a lookup reads one
/// block per run it cannot rule out.
const BLOCK_BYTES: usize = 4096;

/// Runs kept before all of them are merged into one (so a lookup reads at
/// most this many blocks, and usually one: the Bloom filters rule out the
/// others).
const MAX_RUNS: usize = 8;

/// Bytes accounted per entry of a block index or of the taken set, besides
/// the key bytes themselves (box, offset, length, set slot).
const ENTRY_OVERHEAD: usize = 40;

/// The value length that marks a tombstone (the key was taken back).
const TOMBSTONE: u32 = u32::MAX;

/// Keyed values spilled to key-sorted runs on disk; only a sparse index
/// and Bloom filters stay in memory.
///
/// ```text
///  append([(key, value)...]) ──sort by key──► run n: | block 0 | block 1 | ...
///      each block (≈ 4 KiB): | klen u32 | key | vlen u32 | value | ...
///      plus a tombstone (vlen = u32::MAX) for every key taken since the last append
///      in memory per run: first key of every block, last key, Bloom filter
///  take(key): taken since the last append? ──► None (every copy on disk is dead)
///      else runs newest → oldest: Bloom filter or [first, last] rules it out ──► next;
///      else read the one block that can hold it: a value ──► remember the key as taken,
///      return it; a tombstone ──► None
///  more than 8 runs ──► k-way merge of the newest runs (size-tiered: each older run
///      joins while it is at most twice the newer ones together) into one (one block
///      per run in memory; the newest copy wins; tombstones dropped once the merge
///      reaches the oldest run)
/// ```
/// Memory: about `(key + 40) / records per block` bytes a key for the
/// indexes, 1.25 bytes a key for the Bloom filters, and `key + 40` bytes for
/// each key taken since the last append (a key its operator holds in memory
/// anyway, and spills again with the next append). The run files are
/// deleted when the log is dropped.
pub struct StateLog {
    // config
    name: String,
    spill: Arc<SpillManager>,
    // state
    /// Oldest first.
    runs: Vec<Run>,
    /// Keys taken back since the last append: every copy on disk is dead;
    /// the next append writes their tombstones.
    taken: HashSet<Box<[u8]>>,
    taken_bytes: usize,
    /// Values appended and not taken back since.
    live: usize,
}

/// One key-sorted run on disk.
struct Run {
    // state
    /// `(first key, offset, length)` of every block.
    blocks: Vec<(Box<[u8]>, u64, u32)>,
    last_key: Box<[u8]>,
    bloom: Bloom,
    /// Bytes of the run's file.
    bytes: u64,
    // resources (deleted on drop)
    file: tempfile::NamedTempFile,
}

/// What a run holds for a key.
enum Found {
    Value(Vec<u8>),
    Tombstone,
}

impl Run {
    fn index_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|(k, _, _)| k.len() + ENTRY_OVERHEAD)
            .sum::<usize>()
            + self.last_key.len()
            + self.bloom.bytes()
    }

    fn read_block(&self, block: usize, name: &str) -> Result<Vec<u8>> {
        let (_, offset, len) = &self.blocks[block];
        let mut buf = vec![0u8; *len as usize];
        let mut f = self.file.as_file();
        f.seek(SeekFrom::Start(*offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| io_error(self.file.path(), name, e))?;
        Ok(buf)
    }

    /// What this run holds for `key`, if anything.
    fn get(&self, key: &[u8], name: &str) -> Result<Option<Found>> {
        if !self.bloom.may_contain(key) || key > &*self.last_key {
            return Ok(None);
        }
        // the last block whose first key is <= key
        let block = self.blocks.partition_point(|(first, _, _)| &**first <= key);
        if block == 0 {
            return Ok(None);
        }
        let data = self.read_block(block - 1, name)?;
        let mut at = 0;
        while at < data.len() {
            let (k, v, next) = record_at(&data, at, name, self.file.path())?;
            match data[k].cmp(key) {
                std::cmp::Ordering::Less => at = next,
                std::cmp::Ordering::Equal => {
                    return Ok(Some(match v {
                        Some(v) => Found::Value(data[v].to_vec()),
                        None => Found::Tombstone,
                    }))
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        Ok(None)
    }
}

impl std::fmt::Debug for StateLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateLog")
            .field("name", &self.name)
            .field("runs", &self.runs.len())
            .field("live", &self.live)
            .field("taken", &self.taken.len())
            .finish()
    }
}

impl StateLog {
    /// An empty log; its runs are created in `spill`'s directory.
    pub fn new(spill: &Arc<SpillManager>, name: impl Into<String>) -> Self {
        StateLog {
            name: name.into(),
            spill: Arc::clone(spill),
            runs: Vec::new(),
            taken: HashSet::new(),
            taken_bytes: 0,
            live: 0,
        }
    }

    /// Number of keys in the log (values appended and not taken back; a
    /// key appended again while it is still in the log counts twice).
    pub fn len(&self) -> usize {
        self.live
    }

    /// True if no key is in the log.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Bytes of memory the log uses (what a reservation should hold): the
    /// runs' sparse indexes and Bloom filters, and the keys taken since the
    /// last append.
    pub fn memory_size(&self) -> usize {
        self.runs.iter().map(Run::index_bytes).sum::<usize>() + self.taken_bytes
    }

    /// True if keys were taken since the last append: an
    /// [`append`](Self::append), even of nothing, writes their tombstones
    /// and frees the memory that remembers them.
    pub fn has_taken(&self) -> bool {
        !self.taken.is_empty()
    }

    /// Appends `records` as one run, with tombstones for the keys taken
    /// since the last append (a key already in the log is replaced: the
    /// last wins, within one call too).
    pub fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<()> {
        let taken = std::mem::take(&mut self.taken);
        self.taken_bytes = 0;
        let mut sorted: Vec<(&[u8], Option<&[u8]>)> = taken.iter().map(|k| (&**k, None)).collect();
        // stable: a value follows the tombstone of its key; of equal keys
        // the last appended stays last
        sorted.extend(records.into_iter().map(|(k, v)| (k, Some(v))));
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut deduped: Vec<(&[u8], Option<&[u8]>)> = Vec::with_capacity(sorted.len());
        for record in sorted {
            match deduped.last_mut() {
                Some(last) if last.0 == record.0 => *last = record,
                _ => deduped.push(record),
            }
        }
        if deduped.is_empty() {
            return Ok(());
        }
        let mut writer = RunWriter::try_new(&self.spill, &self.name, deduped.len())?;
        for (key, value) in &deduped {
            writer.push(key, *value)?;
        }
        self.live += writer.values;
        self.runs.push(writer.finish()?);
        if self.runs.len() > MAX_RUNS {
            self.merge_runs()?;
        }
        Ok(())
    }

    /// Removes `key` from the log and returns its value, if it is there.
    pub fn take(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.taken.contains(key) {
            return Ok(None);
        }
        for run in self.runs.iter().rev() {
            match run.get(key, &self.name)? {
                None => continue,
                Some(Found::Tombstone) => return Ok(None),
                Some(Found::Value(value)) => {
                    self.live = self.live.saturating_sub(1);
                    self.taken_bytes += key.len() + ENTRY_OVERHEAD;
                    self.taken.insert(key.into());
                    return Ok(Some(value));
                }
            }
        }
        Ok(None)
    }

    /// Every live `(key, value)` in the log, in key order, leaving it
    /// unchanged (checkpoints copy spilled state).
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.merge(|k, v| {
            if let Some(v) = v {
                if !self.taken.contains(k) {
                    out.push((k.to_vec(), v.to_vec()));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The live `(key, value)` pairs whose keys come after `after` (all of
    /// them with `None`), in key order, until about `max_bytes` of keys and
    /// values (at least one pair): a scan of the log in steps, each
    /// resuming after the last key of the one before (appends and takes in
    /// between are seen). Leaves the log unchanged.
    pub fn entries_after(
        &self,
        after: Option<&[u8]>,
        max_bytes: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        self.merge_from(after, |k, v| {
            if let Some(v) = v {
                if !self.taken.contains(k) {
                    bytes += k.len() + v.len();
                    out.push((k.to_vec(), v.to_vec()));
                }
            }
            Ok(bytes < max_bytes)
        })?;
        Ok(out)
    }

    /// Hands the newest record of every key to `f` in key order (`None`
    /// for a tombstone): a k-way merge over the runs holding one block of
    /// each in memory.
    fn merge(&self, mut f: impl FnMut(&[u8], Option<&[u8]>) -> Result<()>) -> Result<()> {
        self.merge_from(None, |k, v| f(k, v).map(|()| true))
    }

    /// [`merge`](Self::merge) from the first key after `after`, until `f`
    /// returns false.
    fn merge_from(
        &self,
        after: Option<&[u8]>,
        f: impl FnMut(&[u8], Option<&[u8]>) -> Result<bool>,
    ) -> Result<()> {
        self.merge_runs_from(0, after, f)
    }

    /// [`merge_from`](Self::merge_from) over the runs from index `first`
    /// (the newest ones) only.
    fn merge_runs_from(
        &self,
        first: usize,
        after: Option<&[u8]>,
        mut f: impl FnMut(&[u8], Option<&[u8]>) -> Result<bool>,
    ) -> Result<()> {
        let mut cursors: Vec<Cursor<'_>> = self.runs[first..]
            .iter()
            .map(|run| Cursor::open(run, after, &self.name))
            .collect::<Result<_>>()?;
        loop {
            // the smallest key; of equal keys, the newest run's (the last)
            let mut best: Option<usize> = None;
            for (i, c) in cursors.iter().enumerate() {
                let Some((k, _)) = c.current() else { continue };
                match best {
                    Some(b) if cursors[b].current().expect("a current record").0 < k => {}
                    _ => best = Some(i),
                }
            }
            let Some(best) = best else { return Ok(()) };
            let (key, value) = cursors[best].current().expect("chosen above");
            let key = key.to_vec();
            if !f(&key, value)? {
                return Ok(());
            }
            for c in &mut cursors {
                if c.current().is_some_and(|(k, _)| k == key.as_slice()) {
                    c.advance(&self.name)?;
                }
            }
        }
    }

    /// Merges runs, size-tiered: the newest runs, and each older one no
    /// larger than twice all newer ones together, into one (the newest
    /// copy of each key wins). Tombstones are kept unless the merge reaches
    /// the oldest run (then nothing older is left for them to shadow). A
    /// record is so rewritten about once per doubling of what was spilled
    /// after it, not at every merge.
    fn merge_runs(&mut self) -> Result<()> {
        let mut first = self.runs.len() - 1;
        let mut newer = self.runs[first].bytes;
        while first > 0 && (self.runs[first - 1].bytes <= 2 * newer || self.runs.len() - first < 2)
        {
            first -= 1;
            newer += self.runs[first].bytes;
        }
        let keep_tombstones = first > 0;
        let mut writer = RunWriter::try_new(&self.spill, &self.name, self.live)?;
        self.merge_runs_from(first, None, |k, v| {
            match v {
                Some(v) => writer.push(k, Some(v))?,
                None if keep_tombstones => writer.push(k, None)?,
                None => {}
            }
            Ok(true)
        })?;
        if !keep_tombstones {
            // every live value is in the merged run now
            self.live = writer.values;
        }
        let run = writer.finish()?;
        self.runs.truncate(first);
        if !run.blocks.is_empty() {
            self.runs.push(run);
        }
        Ok(())
    }
}

/// Reads one run in key order, one block at a time.
struct Cursor<'a> {
    run: &'a Run,
    block: usize,
    data: Vec<u8>,
    /// The current record's key and value (`None`: a tombstone) in `data`.
    current: Option<(Range<usize>, Option<Range<usize>>)>,
    next: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor on the first record of `run` whose key comes after `after`
    /// (the first record with `None`), reading from the one block that can
    /// hold it on.
    fn open(run: &'a Run, after: Option<&[u8]>, name: &str) -> Result<Self> {
        let block = after.map_or(0, |a| {
            run.blocks
                .partition_point(|(first, _, _)| &**first <= a)
                .saturating_sub(1)
        });
        let mut c = Cursor {
            run,
            block,
            data: Vec::new(),
            current: None,
            next: 0,
        };
        if block < run.blocks.len() {
            c.data = run.read_block(block, name)?;
        }
        c.advance(name)?;
        if let Some(a) = after {
            while c.current().is_some_and(|(k, _)| k <= a) {
                c.advance(name)?;
            }
        }
        Ok(c)
    }

    fn current(&self) -> Option<(&[u8], Option<&[u8]>)> {
        self.current.as_ref().map(|(k, v)| {
            (
                &self.data[k.clone()],
                v.as_ref().map(|v| &self.data[v.clone()]),
            )
        })
    }

    fn advance(&mut self, name: &str) -> Result<()> {
        loop {
            if self.next < self.data.len() {
                let (k, v, next) = record_at(&self.data, self.next, name, self.run.file.path())?;
                self.current = Some((k, v));
                self.next = next;
                return Ok(());
            }
            self.block += 1;
            if self.block >= self.run.blocks.len() {
                self.current = None;
                return Ok(());
            }
            self.data = self.run.read_block(self.block, name)?;
            self.next = 0;
        }
    }
}

/// Writes one run: records pushed in key order, each key once.
struct RunWriter<'a> {
    // config
    name: &'a str,
    path: std::path::PathBuf,
    // state
    bloom: Bloom,
    blocks: Vec<(Box<[u8]>, u64, u32)>,
    block: Vec<u8>,
    block_first: Option<Box<[u8]>>,
    last_key: Box<[u8]>,
    end: u64,
    /// Values (not tombstones) written.
    values: usize,
    metrics: Arc<SpillMetrics>,
    // resources
    writer: BufWriter<std::fs::File>,
    file: tempfile::NamedTempFile,
}

impl<'a> RunWriter<'a> {
    /// A writer for a run of about `keys` records.
    fn try_new(spill: &Arc<SpillManager>, name: &'a str, keys: usize) -> Result<Self> {
        let file = tempfile::Builder::new()
            .prefix(&format!("{}-state-", safe(name)))
            .suffix(".run")
            .tempfile_in(spill.dir())
            .map_err(|e| Error::io(spill.dir(), e))?;
        let path = file.path().to_path_buf();
        let handle = file.reopen().map_err(|e| io_error(&path, name, e))?;
        Ok(RunWriter {
            name,
            path,
            bloom: Bloom::with_keys(keys),
            blocks: Vec::new(),
            block: Vec::with_capacity(BLOCK_BYTES * 2),
            block_first: None,
            last_key: Box::default(),
            end: 0,
            values: 0,
            metrics: Arc::clone(spill.metrics()),
            writer: BufWriter::new(handle),
            file,
        })
    }

    /// Writes `key`'s value, or its tombstone (`None`).
    fn push(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.bloom.insert(key);
        if self.block_first.is_none() {
            self.block_first = Some(key.into());
        }
        encode(&mut self.block, key, value, self.name)?;
        self.last_key = key.into();
        self.values += usize::from(value.is_some());
        if self.block.len() >= BLOCK_BYTES {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        let Some(first) = self.block_first.take() else {
            return Ok(());
        };
        self.writer
            .write_all(&self.block)
            .map_err(|e| io_error(&self.path, self.name, e))?;
        let len =
            u32::try_from(self.block.len()).map_err(|_| too_big(self.name, self.block.len()))?;
        self.blocks.push((first, self.end, len));
        self.end += self.block.len() as u64;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<Run> {
        self.flush_block()?;
        self.writer
            .flush()
            .map_err(|e| io_error(&self.path, self.name, e))?;
        self.metrics.record_file(self.end, 0);
        Ok(Run {
            blocks: self.blocks,
            last_key: self.last_key,
            bloom: self.bloom,
            bytes: self.end,
            file: self.file,
        })
    }
}

/// The record at `at` in a block: its key's range, its value's range
/// (`None` for a tombstone) and where the next record starts.
fn record_at(
    data: &[u8],
    at: usize,
    name: &str,
    path: &std::path::Path,
) -> Result<(Range<usize>, Option<Range<usize>>, usize)> {
    let corrupt = || {
        io_error(
            path,
            name,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a spilled state record is truncated",
            ),
        )
    };
    let u32_at = |at: usize| -> Result<u32> {
        let bytes = data.get(at..at + 4).ok_or_else(corrupt)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    };
    let klen = u32_at(at)? as usize;
    let key = at + 4..at + 4 + klen;
    let vlen = u32_at(key.end)?;
    if vlen == TOMBSTONE {
        return Ok((key.clone(), None, key.end + 4));
    }
    let value = key.end + 4..key.end + 4 + vlen as usize;
    if value.end > data.len() {
        return Err(corrupt());
    }
    Ok((key, Some(value.clone()), value.end))
}

/// An I/O error on a run file, its message naming the operator.
fn io_error(path: &std::path::Path, name: &str, e: std::io::Error) -> Error {
    Error::io(path, std::io::Error::new(e.kind(), format!("{name}: {e}")))
}

/// A file-name-safe version of an operator name.
fn safe(name: &str) -> String {
    name.chars()
        .take(48)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn too_big(name: &str, bytes: usize) -> Error {
    Error::State {
        operator: name.to_string(),
        message: format!(
            "a key's state of {bytes} bytes is too large to spill (the limit is 4 GiB)"
        ),
    }
}

/// Appends one record (a tombstone when `value` is `None`) to `buf`.
fn encode(buf: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>, name: &str) -> Result<()> {
    let size = key.len() + value.map_or(0, <[u8]>::len);
    let klen = u32::try_from(key.len()).map_err(|_| too_big(name, size))?;
    let vlen = match value {
        Some(v) => u32::try_from(v.len())
            .ok()
            .filter(|&n| n != TOMBSTONE)
            .ok_or_else(|| too_big(name, size))?,
        None => TOMBSTONE,
    };
    buf.extend_from_slice(&klen.to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&vlen.to_le_bytes());
    buf.extend_from_slice(value.unwrap_or_default());
    Ok(())
}

#[cfg(test)]
mod tests;
