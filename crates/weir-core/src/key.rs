//! Keys: encoding key columns with the Arrow row format, hashing them, and
//! mapping hashes to key groups and key groups to subtasks.
//!
//! ```text
//!  key columns ──RowConverter──► row bytes ──hash──► key group (0..KEY_GROUPS)
//!                                                        │ kg * parallelism / KEY_GROUPS
//!                                                        ▼
//!                                                     subtask
//! ```
//! Key groups are fixed, so state partitioned by key group can later be
//! redistributed to a different parallelism. May use `error` and arrow.

use crate::error::{Error, Result};
use arrow_array::RecordBatch;
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::Schema;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Number of key groups; the maximum parallelism of a keyed operator.
pub const KEY_GROUPS: usize = 128;

/// The key group of a key hash.
#[inline]
pub fn key_group(hash: u64) -> usize {
    (hash % KEY_GROUPS as u64) as usize
}

/// The subtask (of `parallelism`) that owns `key_group`.
#[inline]
pub fn subtask_for_key_group(key_group: usize, parallelism: usize) -> usize {
    key_group * parallelism / KEY_GROUPS
}

/// A 64-bit hash of a byte string that is stable across runs and machines
/// (unlike `std`'s randomly seeded hasher), so partitioning is deterministic.
#[inline]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0xCBF2_9CE4_8422_2325 ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes(c.try_into().expect("chunks_exact yields 8 bytes"));
        h = (h ^ v).wrapping_mul(K).rotate_left(29);
    }
    // the tail as a little-endian word, byte by byte: a variable-length
    // copy into a buffer compiles to a memcpy call, which quadrupled the cost
    // of hashing a 9-byte key (`cargo bench --bench shuffle`)
    let mut tail = 0u64;
    for (i, b) in chunks.remainder().iter().enumerate() {
        tail |= u64::from(*b) << (8 * i);
    }
    h = (h ^ tail).wrapping_mul(K);
    // fmix64 from MurmurHash3: spreads the bits over the whole word.
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// Encodes a batch's key columns as comparable, hashable rows.
pub struct KeyEncoder {
    // config
    indices: Vec<usize>,
    // resources
    converter: RowConverter,
}

impl std::fmt::Debug for KeyEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncoder")
            .field("indices", &self.indices)
            .finish()
    }
}

impl KeyEncoder {
    /// An encoder for `columns` of `schema`; errors name the missing column.
    pub fn try_new(schema: &Schema, columns: &[String], context: &str) -> Result<Self> {
        if columns.is_empty() {
            return Err(Error::option("key_by", "needs at least one column"));
        }
        let mut indices = Vec::with_capacity(columns.len());
        let mut fields = Vec::with_capacity(columns.len());
        for c in columns {
            let idx = schema.index_of(c).map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Error::column(
                    c,
                    context,
                    format!(
                        "key column not found; available columns: {}",
                        names.join(", ")
                    ),
                )
            })?;
            indices.push(idx);
            fields.push(SortField::new(schema.field(idx).data_type().clone()));
        }
        let converter = RowConverter::new(fields)?;
        Ok(KeyEncoder { indices, converter })
    }

    /// An encoder for `columns`, or `None` when there are none (one global group).
    pub fn optional(schema: &Schema, columns: &[String], context: &str) -> Result<Option<Self>> {
        if columns.is_empty() {
            Ok(None)
        } else {
            Self::try_new(schema, columns, context).map(Some)
        }
    }

    /// Column indices of the key in the input schema.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Encodes the key columns of `batch`.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
        let cols: Vec<_> = self
            .indices
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        Ok(self.converter.convert_columns(&cols)?)
    }

    /// The converter, to turn rows back into columns.
    pub fn converter(&self) -> &RowConverter {
        &self.converter
    }

    /// The hash of every row's key.
    pub fn hashes(&self, batch: &RecordBatch) -> Result<Vec<u64>> {
        let rows = self.encode(batch)?;
        Ok(rows.iter().map(|r| stable_hash(r.as_ref())).collect())
    }
}

/// Splits `batch` by the subtask (of `parallelism`) that owns each row's
/// key: `(subtask, rows)` pairs in subtask order, rows kept in input order,
/// no pair for a subtask without rows. A batch that goes whole to one
/// subtask is not copied. This is the hash shuffle of a keyed edge.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use weir::key::{split_by_key, KeyEncoder};
/// let batch = RecordBatch::try_from_iter([(
///     "k",
///     Arc::new(Int64Array::from_iter_values(0..1000)) as _,
/// )])
/// .unwrap();
/// let keys = KeyEncoder::try_new(&batch.schema(), &["k".to_string()], "example")?;
/// let parts = split_by_key(&batch, &keys, 4)?;
/// assert_eq!(parts.iter().map(|(_, p)| p.num_rows()).sum::<usize>(), 1000);
/// assert!(parts.windows(2).all(|w| w[0].0 < w[1].0));
/// # Ok::<(), weir::Error>(())
/// ```
pub fn split_by_key(
    batch: &RecordBatch,
    keys: &KeyEncoder,
    parallelism: usize,
) -> Result<Vec<(usize, RecordBatch)>> {
    split_by_key_in(batch, keys, parallelism, &crate::shard::KeyGroups::all())
}

/// [`split_by_key`] over the key groups `groups` (a shard's): rows of other
/// key groups are dropped (another shard owns them), the others go to the
/// subtask owning their key group among `groups` ([`KeyGroups::subtask`]).
///
/// [`KeyGroups::subtask`]: crate::shard::KeyGroups::subtask
pub fn split_by_key_in(
    batch: &RecordBatch,
    keys: &KeyEncoder,
    parallelism: usize,
    groups: &crate::shard::KeyGroups,
) -> Result<Vec<(usize, RecordBatch)>> {
    if parallelism <= 1 && groups.is_all() {
        return Ok(vec![(0, batch.clone())]);
    }
    let hashes = keys.hashes(batch)?;
    let parallelism = parallelism.max(1);
    let mut parts: Vec<Vec<u32>> = vec![Vec::new(); parallelism];
    for (i, h) in hashes.iter().enumerate() {
        let kg = key_group(*h);
        if groups.contains(kg) {
            parts[groups.subtask(kg, parallelism)].push(i as u32);
        }
    }
    let mut out = Vec::new();
    for (t, rows) in parts.into_iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let part = if rows.len() == batch.num_rows() {
            batch.clone()
        } else {
            arrow_select::take::take_record_batch(batch, &arrow_array::UInt32Array::from(rows))?
        };
        out.push((t, part));
    }
    Ok(out)
}

/// A `Hasher` for byte keys built on [`stable_hash`] (much faster than SipHash
/// for short keys) and for integer ids (a multiplicative mix).
#[derive(Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.rotate_left(5) ^ stable_hash(bytes);
    }
    fn write_usize(&mut self, _len: usize) {
        // The length prefix of a slice adds nothing: stable_hash mixes the length.
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (u64::from(v) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u128(&mut self, v: u128) {
        // short keys packed inline: both halves folded, then a full
        // avalanche (every input bit moves the bits the map indexes by)
        let mut x = (v as u64) ^ ((v >> 64) as u64).rotate_left(32) ^ self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^= x >> 33;
        self.0 = x;
    }
}

/// Builds [`FastHasher`]s.
pub type FastBuildHasher = BuildHasherDefault<FastHasher>;

/// A held reference to a key of a [`KeyDictionary`]: while it exists, its
/// id names the same key. Only the dictionary makes one
/// ([`KeyDictionary::hold`], [`KeyDictionary::hold_key`]) and only the
/// dictionary takes one back ([`KeyDictionary::release`], which consumes it).
/// It is neither `Clone` nor `Copy`, so a reference is given back at most
/// once: a second release of the same handle does not compile.
///
/// ```compile_fail
/// use weir::key::KeyDictionary;
/// let mut d = KeyDictionary::new();
/// let h = d.hold_key(b"vehicle-1");
/// d.release(h);
/// d.release(h); // error: use of moved value
/// ```
///
/// State that holds keys stores handles (not bare ids) and gives each back
/// when it drops the entry. A handle dropped without being given back
/// keeps its key in the dictionary until the dictionary is dropped (and the
/// dictionary's [`held`](KeyDictionary::held) count shows it).
#[must_use = "a key handle must be given back with KeyDictionary::release"]
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyHandle {
    id: u32,
}

impl KeyHandle {
    /// The key's id in its dictionary (valid while the handle exists).
    #[inline]
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// Keys held once each, by id: a set of [`KeyHandle`]s (e.g. the keys a
/// window emitted, which must keep naming the same key while the set
/// holds them). Give it back whole with [`HeldKeys::release`].
#[derive(Debug, Default)]
pub struct HeldKeys {
    // state
    keys: std::collections::BTreeMap<u32, KeyHandle>,
}

impl HeldKeys {
    /// An empty set.
    pub fn new() -> Self {
        HeldKeys::default()
    }

    /// Adds key `id` (an id held elsewhere right now), holding it once; false
    /// if it was in the set already.
    pub fn insert(&mut self, dictionary: &mut KeyDictionary, id: u32) -> bool {
        if self.keys.contains_key(&id) {
            return false;
        }
        self.keys.insert(id, dictionary.hold(id));
        true
    }

    /// True if key `id` is in the set.
    pub fn contains(&self, id: u32) -> bool {
        self.keys.contains_key(&id)
    }

    /// The ids in the set, in id order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// Number of keys in the set.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Gives every key back to `dictionary`.
    pub fn release(self, dictionary: &mut KeyDictionary) {
        dictionary.release_all(self.keys.into_values());
    }
}

/// Bytes the allocator hands out for a request of `len` bytes (a 16-byte
/// granule with an 8-byte header, 32 at least).
#[inline]
fn allocation(len: usize) -> usize {
    (len + 8).div_ceil(16).max(2) * 16
}

/// Keys up to this many bytes are packed inline in the dictionary's map
/// (a single Int64 key encodes to 9).
const INLINE_KEY: usize = 15;

/// `key` packed with its length into 16 bytes, if it fits.
#[inline]
fn pack(key: &[u8]) -> Option<u128> {
    // in registers: bytes stored then read back as words would stall the
    // loads (store forwarding fails across several small stores)
    fn word(bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .enumerate()
            .fold(0, |w, (i, &b)| w | (u64::from(b) << (8 * i)))
    }
    (key.len() <= INLINE_KEY).then(|| {
        let (lo, hi) = key.split_at(key.len().min(8));
        let hi = word(hi) | ((key.len() as u64) << 56);
        u128::from(word(lo)) | (u128::from(hi) << 64)
    })
}

/// A map from encoded key bytes to `V`: keys of at most [`INLINE_KEY`]
/// bytes (a single Int64 key encodes to 9) are packed into the map's own
/// key, so a lookup follows no pointer and compares no bytes; longer keys
/// are boxed.
#[derive(Debug)]
pub struct KeyMap<V> {
    small: HashMap<u128, V, FastBuildHasher>,
    large: HashMap<Box<[u8]>, V, FastBuildHasher>,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap {
            small: HashMap::default(),
            large: HashMap::default(),
        }
    }
}

impl<V> KeyMap<V> {
    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        match pack(key) {
            Some(p) => self.small.get(&p),
            None => self.large.get(key),
        }
    }

    /// Sets the value of `key`, returning the one it replaces.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        match pack(key) {
            Some(p) => self.small.insert(p, value),
            None => self.large.insert(key.into(), value),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        match pack(key) {
            Some(p) => self.small.remove(&p),
            None => self.large.remove(key),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.small.len() + self.large.len()
    }

    /// True if no key is in the map.
    pub fn is_empty(&self) -> bool {
        self.small.is_empty() && self.large.is_empty()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.small.clear();
        self.large.clear();
    }

    /// Gives back table memory beyond twice what the keys need (plus 1024 slots).
    pub fn shrink(&mut self) {
        if self.large.capacity() > 2 * self.large.len() + 1024 {
            self.large.shrink_to_fit();
        }
        if self.small.capacity() > 2 * self.small.len() + 1024 {
            self.small.shrink_to_fit();
        }
    }
}

/// Bytes accounted per known key besides its two copies: its map slot at
/// the map's load factor, its `keys` slot, its reference count.
const KEY_OVERHEAD: usize = 48;

/// Interns encoded keys as small integer ids, counting the
/// [`KeyHandle`]s held on each so ids of keys nobody holds are recycled.
///
/// ```text
///  row bytes ──intern──► id (u32) ──hold──► KeyHandle ──► keyed state (cheap to hash, no allocation)
///  state done with a key ──release(handle)──► refs[id] -= 1; at 0 the key is forgotten
///  every key forgotten (e.g. all state spilled with its key bytes) ──► the tables shrink
/// ```
/// [`memory_size`](Self::memory_size) is what the keys take (both copies,
/// their map and table slots): owners count it in their spillable
/// reservation, and state that spills writes key bytes, not ids, so
/// spilling forgets the keys only it held.
#[derive(Debug, Default)]
pub struct KeyDictionary {
    // state
    /// Key bytes → id.
    ids: KeyMap<u32>,
    keys: Vec<Box<[u8]>>,
    refs: Vec<u32>,
    free: Vec<u32>,
    bytes: usize,
    held: usize,
}

impl KeyDictionary {
    /// An empty dictionary.
    pub fn new() -> Self {
        KeyDictionary::default()
    }

    /// The id of `key`, adding it (held by nobody) if new. An id nobody
    /// holds stays valid until the next [`release`](Self::release) or
    /// [`forget_unused`](Self::forget_unused); hold it to keep it.
    pub fn intern(&mut self, key: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.keys[id as usize] = key.into();
                id
            }
            None => {
                self.keys.push(key.into());
                self.refs.push(0);
                (self.keys.len() - 1) as u32
            }
        };
        self.bytes += Self::key_bytes(key.len());
        self.ids.insert(key, id);
        id
    }

    fn key_bytes(len: usize) -> usize {
        2 * allocation(len) + KEY_OVERHEAD
    }

    /// A new handle on key `id` (a known key: interned, or held elsewhere).
    pub fn hold(&mut self, id: u32) -> KeyHandle {
        self.refs[id as usize] += 1;
        self.held += 1;
        KeyHandle { id }
    }

    /// Interns `key` and holds it.
    pub fn hold_key(&mut self, key: &[u8]) -> KeyHandle {
        let id = self.intern(key);
        self.hold(id)
    }

    /// The encoded key of `id`.
    pub fn key(&self, id: u32) -> &[u8] {
        &self.keys[id as usize]
    }

    /// Gives `handle` back; the key is forgotten when nobody holds it.
    pub fn release(&mut self, handle: KeyHandle) {
        let id = handle.id;
        let r = &mut self.refs[id as usize];
        debug_assert!(*r > 0, "a handle exists, so its key is held");
        *r -= 1;
        self.held -= 1;
        if *r == 0 {
            self.forget(id);
        }
    }

    /// Gives every handle of `handles` back.
    pub fn release_all(&mut self, handles: impl IntoIterator<Item = KeyHandle>) {
        for h in handles {
            self.release(h);
        }
    }

    /// Forgets `id` if nobody holds it (for keys interned but never held).
    pub fn forget_unused(&mut self, id: u32) {
        if self.refs[id as usize] == 0 {
            self.forget(id);
        }
    }

    fn forget(&mut self, id: u32) {
        let key = std::mem::take(&mut self.keys[id as usize]);
        if self.ids.remove(&key).is_some() {
            self.bytes -= Self::key_bytes(key.len());
            self.free.push(id);
        }
        if self.is_empty() {
            // nothing names an id: start over with empty tables, giving
            // their memory back (after a spill forgot every key)
            *self = KeyDictionary::default();
        }
    }

    /// Gives back table memory beyond what the keys known now need (after
    /// many keys were forgotten).
    pub fn shrink(&mut self) {
        self.ids.shrink();
    }

    /// Number of keys known.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if no key is known.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Handles given out and not given back.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Approximate bytes used.
    pub fn memory_size(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn hash_values_never_change() {
        // key groups are stored in checkpoints and savepoints: a changed hash
        // would send restored state and new rows of a key to different subtasks
        let data: Vec<u8> = (0..40u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(200))
            .collect();
        for (n, want) in [
            (0, 0x292f3a1075f4cce4u64),
            (3, 0x6a36b0c891fd03e),
            (9, 0xc7d6d6bec262815c),
            (17, 0x8944e0861483b2f9),
            (25, 0xcf3286b9998447e8),
        ] {
            assert_eq!(stable_hash(&data[..n]), want, "{n} bytes");
        }
    }

    #[test]
    fn hash_is_stable_and_spreads_keys_over_groups() {
        // fixed value: partitioning must not change between releases or runs
        assert_eq!(stable_hash(b"vehicle-1"), stable_hash(b"vehicle-1"));
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
        let mut counts = [0usize; KEY_GROUPS];
        for i in 0..12_800u64 {
            counts[key_group(stable_hash(&i.to_le_bytes()))] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50 && c < 150), "{counts:?}");
    }

    #[test]
    fn key_groups_map_to_contiguous_subtask_ranges() {
        let owners: Vec<usize> = (0..KEY_GROUPS)
            .map(|kg| subtask_for_key_group(kg, 3))
            .collect();
        assert_eq!(owners[0], 0);
        assert_eq!(owners[KEY_GROUPS - 1], 2);
        assert!(owners.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn dictionary_recycles_ids_of_released_keys() {
        let mut d = KeyDictionary::new();
        let a = d.intern(b"a");
        let b = d.intern(b"b");
        assert_eq!(d.intern(b"a"), a);
        assert_ne!(a, b);
        let h1 = d.hold(a);
        let h2 = d.hold_key(b"a");
        assert_eq!((h1.id(), h2.id(), d.held()), (a, a, 2));
        d.release(h1);
        assert_eq!(d.len(), 2);
        d.release(h2);
        assert_eq!(d.len(), 1, "a is forgotten once released by everyone");
        assert_eq!(d.held(), 0);
        let c = d.intern(b"c");
        assert_eq!(c, a, "its id is reused");
        assert_eq!(d.key(c), b"c");
        d.forget_unused(b);
        assert_eq!(d.len(), 1);
        d.forget_unused(c);
        assert!(d.is_empty());
        assert_eq!(d.memory_size(), 0);
    }

    #[test]
    fn handles_count_every_holder_and_the_last_release_forgets() {
        let mut d = KeyDictionary::new();
        let keys: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_le_bytes().to_vec()).collect();
        // three holders per key, released in a different order than taken
        let mut handles: Vec<KeyHandle> = Vec::new();
        for _ in 0..3 {
            for k in &keys {
                handles.push(d.hold_key(k));
            }
        }
        assert_eq!((d.len(), d.held()), (100, 300));
        let per_key = d.memory_size() / 100;
        assert!(per_key >= 2 * 32 + KEY_OVERHEAD, "{per_key}");
        handles.reverse();
        let rest = handles.split_off(150);
        d.release_all(handles);
        assert_eq!((d.len(), d.held()), (100, 150), "every key still held");
        let mut set = HeldKeys::new();
        for h in &rest[..10] {
            assert!(set.insert(&mut d, h.id()));
            assert!(!set.insert(&mut d, h.id()), "held once per set");
        }
        d.release_all(rest);
        assert_eq!((d.len(), d.held()), (10, 10), "the set holds ten keys");
        set.release(&mut d);
        assert_eq!((d.len(), d.held(), d.memory_size()), (0, 0, 0));
        // forgetting every key resets the tables: ids start over
        assert_eq!(d.hold_key(b"z").id(), 0);
    }

    #[test]
    fn equal_keys_hash_equal_across_batches() {
        let b1 = RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(vec!["x", "y"])) as _),
            ("n", Arc::new(Int64Array::from(vec![1, 2])) as _),
        ])
        .unwrap();
        let b2 = RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(vec!["y", "x"])) as _),
            ("n", Arc::new(Int64Array::from(vec![2, 1])) as _),
        ])
        .unwrap();
        let enc = KeyEncoder::try_new(&b1.schema(), &["k".into(), "n".into()], "t").unwrap();
        let h1 = enc.hashes(&b1).unwrap();
        let h2 = enc.hashes(&b2).unwrap();
        assert_eq!(h1[0], h2[1]);
        assert_eq!(h1[1], h2[0]);
        let err = KeyEncoder::try_new(&b1.schema(), &["nope".into()], "key_by").unwrap_err();
        assert!(err.to_string().contains("available columns: k, n"), "{err}");
    }

    #[test]
    fn short_and_long_keys_are_told_apart_by_their_bytes_and_length() {
        let mut d = KeyDictionary::new();
        // short keys are packed inline with their length: a key and the same
        // key with a trailing zero byte differ; 15 and 16 bytes cross over
        let keys: Vec<Vec<u8>> = vec![
            b"a".to_vec(),
            b"a\0".to_vec(),
            vec![],
            vec![7u8; 15],
            vec![7u8; 16],
            vec![7u8; 40],
        ];
        let ids: Vec<u32> = keys.iter().map(|k| d.intern(k)).collect();
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), keys.len(), "{ids:?}");
        for (k, &id) in keys.iter().zip(&ids) {
            assert_eq!(d.intern(k), id, "interning again gives the same id");
            assert_eq!(d.key(id), k.as_slice());
        }
        assert_eq!(d.len(), keys.len());
        let handles: Vec<KeyHandle> = ids.iter().map(|&id| d.hold(id)).collect();
        d.release_all(handles);
        assert!(d.is_empty());
        assert_eq!(d.memory_size(), 0);
    }

    #[test]
    fn key_map_keeps_short_and_long_keys_apart_and_whole() {
        // keys that differ only in length or in a late byte, around the inline limit
        let keys: Vec<Vec<u8>> = (0..=20usize)
            .flat_map(|len| [vec![0u8; len], vec![7u8; len]])
            .chain([b"abcdefghijklmnoX".to_vec(), b"abcdefghijklmnoY".to_vec()])
            .collect();
        let mut m = KeyMap::default();
        let mut oracle = std::collections::HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.insert(k, i), oracle.insert(k.clone(), i), "{k:?}");
        }
        assert_eq!(m.len(), oracle.len());
        for (k, v) in &oracle {
            assert_eq!(m.get(k), Some(v), "{k:?}");
        }
        for k in keys.iter().step_by(3) {
            assert_eq!(m.remove(k), oracle.remove(k));
            assert_eq!(m.get(k), None);
        }
        assert_eq!(m.len(), oracle.len());
        m.clear();
        assert!(m.is_empty());
    }
}
