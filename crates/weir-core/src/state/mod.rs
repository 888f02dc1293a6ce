//! Operator state for checkpoints: what an operator writes when a barrier
//! passes it, and what it reads back when a job restores.
//!
//! Owns [`StateWriter`], [`StateReader`] and the on-disk encoding of one
//! subtask's state ([`SubtaskState`]). May use `error`, `key` and `message`; used by
//! `operator`, `operators` (every stateful operator and source) and `exec`
//! (which stores the encoded bytes in checkpoint directories).
//!
//! Three kinds of entries, by how they follow a change of parallelism:
//!
//! ```text
//!  put(name, value)          small serde metadata     same parallelism: back to the same subtask
//!  put_table(name, batches)  Arrow rows, not keyed    rescaled: every new subtask sees every old
//!                                                     subtask's entries (union; the operator
//!                                                     keeps what is its own, e.g. source splits)
//!  put_keyed(name, batch,    Arrow rows of keys,      rescaled: each row goes to the subtask that
//!            key_groups)     one key group per row    owns its key group now (as the hash router)
//!
//!  old p=2:  s0 {kg 0..63}   s1 {kg 64..127}
//!  new p=3:  s0 {kg 0..42} ◄─ rows of s0     s1 {kg 43..85} ◄─ rows of s0 and s1   s2 ◄─ rows of s1
//! ```
//! Keyed rows must carry the key group the hash router gives their key
//! ([`key_group`](crate::key::key_group) of the [`KeyEncoder`](crate::key::KeyEncoder)
//! hash), or they would land on a subtask that never sees that key again.

pub mod store;

use crate::error::{Error, Result};
use crate::message::CheckpointId;
use arrow_array::{Array, RecordBatch, UInt16Array};
use arrow_schema::{DataType, Field, Schema};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::Arc;

/// Reserved entry: the staged sink files `(staged, final)` to publish when
/// the checkpoint completes (see [`StateWriter::publish`]).
pub const PUBLISH_ENTRY: &str = "__publish";

/// Where a sink stages the files it publishes: `TARGET/.weir-staging/NAME`
/// becomes `TARGET/NAME`. A checkpoint performs no other rename (see
/// `checkpoint::store::Publish::check`).
pub const PUBLISH_STAGING: &str = ".weir-staging";

/// Reserved entry: the executor's per-operator context (watermark, timer).
pub const CONTEXT_ENTRY: &str = "__context";

/// The name of the key-group column appended to keyed state rows.
const KEY_GROUP_COLUMN: &str = "__weir_key_group";

/// How an entry follows a change of parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// serde (postcard) bytes of one value.
    Value,
    /// Arrow IPC stream of unkeyed rows.
    Table,
    /// Arrow IPC stream of keyed rows with a key-group column.
    Keyed,
}

/// One named piece of a subtask's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The operator-chosen name.
    pub name: String,
    /// How it is encoded and redistributed.
    pub kind: EntryKind,
    /// The encoded bytes.
    pub bytes: Vec<u8>,
}

/// Everything one subtask of one operator wrote for one checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubtaskState {
    /// The entries, in the order they were written.
    pub entries: Vec<Entry>,
}

/// Magic bytes at the start of an encoded [`SubtaskState`].
const MAGIC: &[u8; 8] = b"WEIRST01";

impl SubtaskState {
    /// Encodes the state (magic, postcard body).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        postcard::to_io(self, &mut out).map_err(|e| state_error("encode", e))?;
        Ok(out)
    }

    /// Decodes bytes written by [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| state_error("decode", "not a weir state file (bad magic)"))?;
        postcard::from_bytes(body).map_err(|e| state_error("decode", e))
    }

    /// Total encoded payload bytes (for metrics).
    pub fn size(&self) -> usize {
        self.entries.iter().map(|e| e.bytes.len()).sum()
    }
}

fn state_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::State {
        operator: "checkpoint".into(),
        message: format!("{what}: {e}"),
    }
}

/// Collects a subtask's state while a barrier passes it.
///
/// # Examples
/// ```
/// use weir::state::{StateReader, StateWriter};
/// let mut w = StateWriter::new();
/// w.put("count", &42u64).unwrap();
/// let r = StateReader::single(w.finish());
/// assert_eq!(r.value::<u64>("count").unwrap(), Some(42));
/// ```
#[derive(Debug, Default)]
pub struct StateWriter {
    // config
    checkpoint: CheckpointId,
    // state
    state: SubtaskState,
}

impl StateWriter {
    /// An empty writer (checkpoint 0: tests and examples).
    pub fn new() -> Self {
        StateWriter::default()
    }

    /// An empty writer for checkpoint `id`.
    pub fn for_checkpoint(id: CheckpointId) -> Self {
        StateWriter {
            checkpoint: id,
            state: SubtaskState::default(),
        }
    }

    /// The checkpoint being taken (sinks name their staged files by it).
    pub fn checkpoint(&self) -> CheckpointId {
        self.checkpoint
    }

    /// Writes a small serde value (positions, counters, flags).
    pub fn put<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<()> {
        let bytes = postcard::to_stdvec(value).map_err(|e| state_error(name, e))?;
        self.push(name, EntryKind::Value, bytes);
        Ok(())
    }

    /// Writes unkeyed rows (kept by this subtask; a union on rescale).
    pub fn put_table(&mut self, name: &str, batches: &[RecordBatch]) -> Result<()> {
        let bytes = encode_ipc(name, batches)?;
        self.push(name, EntryKind::Table, bytes);
        Ok(())
    }

    /// Writes keyed rows; `key_groups[i]` is row i's key group. May be
    /// called several times under one name (the rows are appended).
    pub fn put_keyed(&mut self, name: &str, batch: &RecordBatch, key_groups: &[u16]) -> Result<()> {
        if key_groups.len() != batch.num_rows() {
            return Err(state_error(
                name,
                format!(
                    "{} key groups for {} rows",
                    key_groups.len(),
                    batch.num_rows()
                ),
            ));
        }
        let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            KEY_GROUP_COLUMN,
            DataType::UInt16,
            false,
        )));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(UInt16Array::from(key_groups.to_vec())));
        let with_kg = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let bytes = encode_ipc(name, &[with_kg])?;
        self.push(name, EntryKind::Keyed, bytes);
        Ok(())
    }

    /// Sinks: files staged for this checkpoint, `(staged, final)`, each
    /// `TARGET/`[`PUBLISH_STAGING`]`/NAME` to `TARGET/NAME`. The coordinator
    /// renames each to its final path once the checkpoint is complete, and
    /// again (idempotently) when a job restores it.
    pub fn publish(&mut self, files: &[(std::path::PathBuf, std::path::PathBuf)]) -> Result<()> {
        self.put(PUBLISH_ENTRY, files)
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.state.entries.is_empty()
    }

    /// The state written so far.
    pub fn finish(self) -> SubtaskState {
        self.state
    }

    fn push(&mut self, name: &str, kind: EntryKind, bytes: Vec<u8>) {
        self.state.entries.push(Entry {
            name: name.to_string(),
            kind,
            bytes,
        });
    }
}

fn encode_ipc(name: &str, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    {
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &first.schema())
            .map_err(|e| state_error(name, e))?;
        for b in batches {
            w.write(b).map_err(|e| state_error(name, e))?;
        }
        w.finish().map_err(|e| state_error(name, e))?;
    }
    Ok(out)
}

fn decode_ipc(name: &str, bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| state_error(name, e))?;
    reader
        .map(|b| b.map_err(|e| state_error(name, e)))
        .collect()
}

/// The state a restored subtask reads: its own old state, or on a change of
/// parallelism the parts of every old subtask it inherits (see the module
/// docs). An empty reader means "start fresh".
#[derive(Debug, Default, Clone)]
pub struct StateReader {
    // config
    subtask: usize,
    parallelism: usize,
    old_parallelism: usize,
    checkpoint: Option<CheckpointId>,
    /// The key groups this run's keyed operators own (a shard's, or all).
    key_groups: crate::shard::KeyGroups,
    // state: every old subtask's state (shared, never copied) and the
    // indices of those this subtask inherits
    old: Arc<Vec<SubtaskState>>,
    inherited: Vec<usize>,
    /// Restored from several shards' checkpoints (`--restore shards:N`):
    /// the shard and checkpoint each old subtask's state comes from.
    origins: Option<Arc<Vec<ShardOrigin>>>,
}

/// Where one old subtask's state comes from when shards of another count
/// are restored together (`--restore shards:N`): its shard, whose key
/// groups its keyed state and source positions cover, and the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardOrigin {
    /// The old shard.
    pub shard: crate::shard::Shard,
    /// Its checkpoint that was restored.
    pub checkpoint: CheckpointId,
}

impl StateReader {
    /// Nothing to restore.
    pub fn empty() -> Self {
        StateReader::default()
    }

    /// One subtask's own state, at unchanged parallelism 1 (tests, examples).
    pub fn single(state: SubtaskState) -> Self {
        StateReader {
            subtask: 0,
            parallelism: 1,
            old_parallelism: 1,
            checkpoint: None,
            key_groups: Default::default(),
            old: Arc::new(vec![state]),
            inherited: vec![0],
            origins: None,
        }
    }

    /// The reader for `subtask` of `parallelism`, given every old subtask's
    /// state (`old[i]` is old subtask i's, `old.len()` the old parallelism).
    pub fn for_subtask(old: Arc<Vec<SubtaskState>>, subtask: usize, parallelism: usize) -> Self {
        let old_parallelism = old.len();
        let inherited: Vec<usize> = if old_parallelism == parallelism {
            (subtask < old_parallelism)
                .then_some(subtask)
                .into_iter()
                .collect()
        } else {
            (0..old_parallelism).collect()
        };
        StateReader {
            subtask,
            parallelism,
            old_parallelism,
            checkpoint: None,
            key_groups: Default::default(),
            old,
            inherited,
            origins: None,
        }
    }

    /// The state of several shards' checkpoints restored together at
    /// another shard count: `origins[i]` says where old subtask `i`'s
    /// state comes from. Every new subtask inherits every old subtask (a
    /// rescale), keyed rows go by key group as always.
    pub fn with_origins(mut self, origins: Arc<Vec<ShardOrigin>>) -> Self {
        self.inherited = (0..self.old.len()).collect();
        self.origins = Some(origins);
        self
    }

    /// Where old subtask `old` comes from, when shards were restored
    /// together ([`with_origins`](Self::with_origins)).
    pub fn origin(&self, old: usize) -> Option<ShardOrigin> {
        self.origins.as_ref().and_then(|o| o.get(old).copied())
    }

    /// The old shards restored together, each once, in shard order
    /// (empty unless [`with_origins`](Self::with_origins)).
    pub fn shard_origins(&self) -> Vec<ShardOrigin> {
        let mut all: Vec<ShardOrigin> = self
            .origins
            .iter()
            .flat_map(|o| o.iter().copied())
            .collect();
        all.sort_by_key(|o| o.shard.index());
        all.dedup();
        all
    }

    /// The key groups this run's keyed operators own.
    pub fn key_groups(&self) -> &crate::shard::KeyGroups {
        &self.key_groups
    }

    /// Keyed rows go to subtasks over `key_groups` (a shard's) instead of
    /// all key groups; rows of other key groups are not this run's.
    pub fn with_key_groups(mut self, key_groups: crate::shard::KeyGroups) -> Self {
        self.key_groups = key_groups;
        self
    }

    /// Notes which checkpoint this state comes from.
    pub fn with_checkpoint(mut self, id: CheckpointId) -> Self {
        self.checkpoint = Some(id);
        self
    }

    /// The checkpoint being restored (`None`: a fresh start of a
    /// checkpointed job, whose operators get an empty reader).
    pub fn checkpoint(&self) -> Option<CheckpointId> {
        self.checkpoint
    }

    /// True when there is nothing to restore.
    pub fn is_empty(&self) -> bool {
        self.inherited
            .iter()
            .all(|&i| self.old[i].entries.is_empty())
    }

    /// True when the job restored at a different parallelism than it saved.
    pub fn is_rescaled(&self) -> bool {
        !self.inherited.is_empty()
            && (self.old_parallelism != self.parallelism || self.origins.is_some())
    }

    /// The parallelism the state was written at.
    pub fn old_parallelism(&self) -> usize {
        self.old_parallelism
    }

    fn entries<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (usize, &'a Entry)> + 'a {
        self.inherited.iter().flat_map(move |&old| {
            self.old[old]
                .entries
                .iter()
                .filter(move |e| e.name == name)
                .map(move |e| (old, e))
        })
    }

    /// Every value written under `name` by the old subtasks this one
    /// inherits, with the old subtask index: its own at unchanged
    /// parallelism, every old subtask's after a rescale.
    pub fn values_from<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<(usize, T)>> {
        self.entries(name)
            .map(|(old, e)| {
                check_kind(e, EntryKind::Value)?;
                let v = postcard::from_bytes(&e.bytes).map_err(|err| state_error(name, err))?;
                Ok((old, v))
            })
            .collect()
    }

    /// Every value written under `name` by every old subtask, inherited or
    /// not: for a decision that needs the whole operator's picture (a sink
    /// deciding which partitions every subtask finished).
    pub fn every_value<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>> {
        self.old
            .iter()
            .flat_map(|state| state.entries.iter().filter(move |e| e.name == name))
            .map(|e| {
                check_kind(e, EntryKind::Value)?;
                postcard::from_bytes(&e.bytes).map_err(|err| state_error(name, err))
            })
            .collect()
    }

    /// Like [`values_from`](Self::values_from), without the indices.
    pub fn values<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>> {
        Ok(self
            .values_from(name)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// The one value under `name`: this subtask's own. After a rescale a
    /// value that is not keyed cannot be split, so more than one is an error
    /// naming the entry (use [`values`](Self::values) to merge them).
    pub fn value<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let mut all = self.values(name)?;
        match all.len() {
            0 => Ok(None),
            1 => Ok(all.pop()),
            n => Err(state_error(
                name,
                format!(
                    "{n} old subtasks wrote this value and it cannot be split \
                     (restore at parallelism {})",
                    self.old_parallelism
                ),
            )),
        }
    }

    /// Every unkeyed table written under `name` by the inherited subtasks.
    pub fn tables(&self, name: &str) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for (_, e) in self.entries(name) {
            check_kind(e, EntryKind::Table)?;
            out.extend(decode_ipc(name, &e.bytes)?);
        }
        Ok(out)
    }

    /// The keyed rows under `name` whose key group this subtask owns now
    /// (the key-group column removed).
    pub fn keyed(&self, name: &str) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for (_, e) in self.entries(name) {
            check_kind(e, EntryKind::Keyed)?;
            for b in decode_ipc(name, &e.bytes)? {
                let kg_idx = b.num_columns() - 1;
                let kgs = b
                    .column(kg_idx)
                    .as_any()
                    .downcast_ref::<UInt16Array>()
                    .ok_or_else(|| state_error(name, "key-group column is not UInt16"))?;
                let mut keep = b.clone();
                keep.remove_column(kg_idx);
                if !self.is_rescaled() && self.key_groups.is_all() {
                    out.push(keep);
                    continue;
                }
                let mask: arrow_array::BooleanArray = kgs
                    .values()
                    .iter()
                    .map(|&kg| {
                        let kg = kg as usize;
                        Some(
                            self.key_groups.contains(kg)
                                && self.key_groups.subtask(kg, self.parallelism) == self.subtask,
                        )
                    })
                    .collect();
                let kept = arrow_select::filter::filter_record_batch(&keep, &mask)?;
                if kept.num_rows() > 0 {
                    out.push(kept);
                }
            }
        }
        Ok(out)
    }
}

fn check_kind(e: &Entry, kind: EntryKind) -> Result<()> {
    if e.kind == kind {
        Ok(())
    } else {
        Err(state_error(
            &e.name,
            format!("written as {:?}, read as {kind:?}", e.kind),
        ))
    }
}

/// A stable checksum of bytes (FNV-1a, 64 bits) for checkpoint files.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h: u64, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::subtask_for_key_group;
    use arrow_array::Int64Array;

    fn batch(v: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(v.to_vec())) as _)]).unwrap()
    }

    fn ints(batches: &[RecordBatch]) -> Vec<i64> {
        let mut v: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn values_tables_and_keyed_rows_round_trip_through_bytes() {
        let mut w = StateWriter::new();
        w.put("pos", &(3u32, "file.parquet".to_string())).unwrap();
        w.put_table("buf", &[batch(&[1, 2]), batch(&[3])]).unwrap();
        w.put_keyed("acc", &batch(&[10, 20]), &[0, 127]).unwrap();
        let bytes = w.finish().encode().unwrap();
        let r = StateReader::single(SubtaskState::decode(&bytes).unwrap());
        assert_eq!(
            r.value::<(u32, String)>("pos").unwrap(),
            Some((3, "file.parquet".into()))
        );
        assert_eq!(ints(&r.tables("buf").unwrap()), vec![1, 2, 3]);
        let keyed = r.keyed("acc").unwrap();
        assert_eq!(keyed[0].num_columns(), 1, "key-group column removed");
        assert_eq!(ints(&keyed), vec![10, 20]);
        assert!(r.value::<u8>("missing").unwrap().is_none());
        assert!(r.tables("pos").is_err(), "kind is checked");
    }

    #[test]
    fn keyed_rows_follow_their_key_group_on_rescale() {
        // old p = 2: subtask 0 owns kg 0..63, subtask 1 owns 64..127
        let kgs: Vec<u16> = (0..128).collect();
        let rows: Vec<i64> = (0..128).collect();
        let mut old = Vec::new();
        for s in 0..2usize {
            let (lo, hi) = (s * 64, s * 64 + 64);
            let mut w = StateWriter::new();
            w.put_keyed("acc", &batch(&rows[lo..hi]), &kgs[lo..hi])
                .unwrap();
            w.put("wm", &(s as i64 * 100)).unwrap();
            old.push(w.finish());
        }
        let old = Arc::new(old);
        let mut seen = Vec::new();
        for s in 0..3 {
            let r = StateReader::for_subtask(old.clone(), s, 3);
            assert!(r.is_rescaled());
            let mine = ints(&r.keyed("acc").unwrap());
            // oracle: the hash router's owner of each key group
            let expect: Vec<i64> = (0..128)
                .filter(|&kg| subtask_for_key_group(kg as usize, 3) == s)
                .collect();
            assert_eq!(mine, expect);
            seen.extend(mine);
            assert_eq!(r.values::<i64>("wm").unwrap(), vec![0, 100]);
            assert!(
                r.value::<i64>("wm").is_err(),
                "an unkeyed value cannot be split"
            );
        }
        seen.sort();
        assert_eq!(seen, rows, "every row restored exactly once");
        // unchanged parallelism: each subtask gets its own state only
        let r = StateReader::for_subtask(old, 1, 2);
        assert!(!r.is_rescaled());
        assert_eq!(r.value::<i64>("wm").unwrap(), Some(100));
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        let mut w = StateWriter::new();
        w.put_table("buf", &[batch(&[1, 2, 3])]).unwrap();
        let bytes = w.finish().encode().unwrap();
        for cut in [0, 4, 9, bytes.len() / 2, bytes.len() - 1] {
            let decoded = SubtaskState::decode(&bytes[..cut]);
            if let Ok(s) = decoded {
                assert!(StateReader::single(s).tables("buf").is_err(), "cut {cut}");
            }
        }
        assert_ne!(checksum(&bytes), checksum(&bytes[..bytes.len() - 1]));
    }

    #[test]
    fn state_of_several_shards_is_inherited_whole_and_keyed_rows_by_key_group() {
        let old = |kg: u16| {
            let mut w = StateWriter::new();
            w.put("v", &(kg as u64)).unwrap();
            w.put_keyed("k", &batch(&[kg as i64]), &[kg]).unwrap();
            w.finish()
        };
        let origins = Arc::new(
            (0..2)
                .map(|i| ShardOrigin {
                    shard: crate::shard::Shard::try_new(i, 2).unwrap(),
                    checkpoint: 3 + i as u64,
                })
                .collect::<Vec<_>>(),
        );
        // same parallelism as the old shards' subtasks: still a rescale
        let shard = crate::shard::Shard::try_new(1, 3).unwrap();
        let r = StateReader::for_subtask(Arc::new(vec![old(50), old(70)]), 0, 2)
            .with_key_groups(crate::shard::KeyGroups::of_shard(shard))
            .with_origins(origins.clone());
        assert!(r.is_rescaled());
        assert_eq!(r.values::<u64>("v").unwrap(), vec![50, 70]);
        assert_eq!(r.origin(1), Some(origins[1]));
        assert_eq!(r.shard_origins(), origins.to_vec());
        // kg 50 and 70 are shard 1/3's (43..86): 50 is its subtask 0's of 2
        assert_eq!(ints(&r.keyed("k").unwrap()), vec![50]);
    }
}
