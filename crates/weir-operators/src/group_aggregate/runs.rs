//! Key-sorted runs of a group aggregate's partial states, and the k-way
//! merge over them.
//!
//! Owns [`KeyRuns`] (spill files of `key | emitted | partial states...`
//! rows sorted by key bytes, each key once per run, with the first key of
//! every block kept in memory as a sparse index), [`Combine`] (how copies
//! of one key in several sources combine) and [`Merge`] (the k-way merge
//! that hands out [`Chunk`]s of distinct keys in key order). May use the
//! aggregate accumulators, `weir_core::state::store` (read-back steps),
//! `weir_core::spill` (files), `weir_core::memory` and the arrow crates.

use crate::keyed_state;
use arrow_array::builder::BinaryBuilder;
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::memory::MemoryReservation;
use weir_core::spill::{SpillFile, SpillManager, SpillReader};
use weir_core::state::store::reserve_step;
use weir_functions::aggregate::{Accumulators, BoundAgg};

/// The column of the partial states in a run row (after `key`, `emitted`).
pub(super) const FIRST_STATE_COLUMN: usize = 2;

/// Most runs kept before they are compacted into one: also the fan-in of
/// every merge, so a merge holds at most this many blocks plus one source
/// in memory.
pub(super) const MAX_RUNS: usize = 8;

/// How the rows of one key found in several sources combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Combine {
    /// Every row is a partial state of the key: merge them all (batch runs,
    /// where a key's rows spread over runs and are never looked up).
    Merge,
    /// Every row is the key's full state when written: the newest source
    /// (the highest index) wins (pipelined runs, where a key's spilled
    /// state is looked up and merged into memory before it changes, so an
    /// older row is superseded by a newer one).
    NewestWins,
}

/// One run on disk.
struct Run {
    // state
    /// The first key of every block (the sparse index).
    first_keys: Vec<Box<[u8]>>,
    /// The run's last key.
    last_key: Box<[u8]>,
    // resources (the file is deleted when the run is dropped)
    file: SpillFile,
}

impl Run {
    /// Average bytes of one block on disk (what a read-back step reserves).
    fn block_bytes(&self) -> usize {
        let blocks = self.first_keys.len().max(1) as u64;
        usize::try_from(self.file.bytes() / blocks).unwrap_or(usize::MAX)
    }

    /// Bytes of the sparse index in memory.
    fn index_bytes(&self) -> usize {
        self.first_keys
            .iter()
            .chain(std::iter::once(&self.last_key))
            .map(|k| k.len() + 16)
            .sum()
    }
}

/// Runs of `key | emitted | partial states...` rows, each sorted by key
/// bytes with every key at most once, oldest first.
///
/// ```text
///  run 0 (oldest) ┌ block 0: k=a … k=f ┐┌ block 1: k=g … k=p ┐ …   index: [a, g, …], last key
///  run 1          ┌ block 0: k=b … k=m ┐ …
///  memory (newest) unsorted key ids ──sorted at spill──► run 2
///
///  lookup(k): runs newest → oldest, skipping runs whose [first, last] misses k;
///             block = last index entry <= k; decode that block, binary search
///  merge:     k-way over runs (+ memory), one block per source in a fixed
///             reservation; Combine::Merge merges all copies, NewestWins keeps one
///  more than MAX_RUNS ──► compact: merge them all into one run (stale copies dropped,
///             partial states merged), so a key is rewritten once per compaction
/// ```
pub(super) struct KeyRuns {
    // config
    /// The row layout (key, emitted, partial states).
    layout: SchemaRef,
    // state
    /// Oldest first.
    runs: Vec<Run>,
}

impl std::fmt::Debug for KeyRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRuns")
            .field("runs", &self.runs.len())
            .finish()
    }
}

/// A source of a merge: batches of the run layout, sorted by key, with the
/// bytes each holds in memory (reserved while the batch is merged).
pub(super) type Source<'a> = Box<dyn Iterator<Item = Result<(RecordBatch, usize)>> + 'a>;

impl KeyRuns {
    /// No runs, rows laid out as `layout`.
    pub(super) fn new(layout: SchemaRef) -> Self {
        KeyRuns {
            layout,
            runs: Vec::new(),
        }
    }

    /// True if nothing is on disk.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Runs on disk.
    pub(super) fn len(&self) -> usize {
        self.runs.len()
    }

    /// Bytes the sparse indexes take in memory.
    pub(super) fn index_bytes(&self) -> usize {
        self.runs.iter().map(Run::index_bytes).sum()
    }

    /// Writes `batches` (sorted by key, each key once, in the layout) as a
    /// new, newest run; writes nothing if they hold no row.
    pub(super) fn write_run(
        &mut self,
        spill: &SpillManager,
        batches: impl Iterator<Item = Result<RecordBatch>>,
    ) -> Result<()> {
        if let Some(run) = write(spill, &self.layout, batches)? {
            self.runs.push(run);
        }
        Ok(())
    }

    /// One source per run, oldest first, reading a block at a time.
    pub(super) fn sources(&self) -> Result<Vec<Source<'_>>> {
        self.runs
            .iter()
            .map(|run| {
                let reader = run.file.read()?;
                let bytes = run.block_bytes();
                Ok(Box::new(reader.map(move |b| b.map(|b| (b, bytes)))) as Source<'_>)
            })
            .collect()
    }

    /// Merges every run into one (see the type doc), reading back through
    /// the fixed `read_back` reservation, `rows` keys per block.
    pub(super) fn compact(
        &mut self,
        spill: &SpillManager,
        aggs: &[BoundAgg],
        combine: Combine,
        read_back: &mut MemoryReservation,
        rows: usize,
    ) -> Result<()> {
        let merged = {
            let mut merge = Merge::new(self.sources()?, combine, aggs, rows, read_back);
            let layout = Arc::clone(&self.layout);
            let chunks = std::iter::from_fn(|| merge.next_chunk().transpose());
            write(
                spill,
                &layout,
                chunks.map(|c| c.and_then(|c| c.to_batch(&layout))),
            )?
        };
        self.runs.clear();
        self.runs.extend(merged);
        Ok(())
    }

    /// Finds the newest row of every key in `keys` (sorted ascending, each
    /// once, with the memory slot it belongs to) and hands the rows found
    /// to `on_found(batch, rows, slots)`, one decoded block at a time, each
    /// reserved in the fixed `read_back` reservation while it is searched.
    pub(super) fn lookup(
        &self,
        keys: &[(&[u8], u32)],
        read_back: &mut MemoryReservation,
        mut on_found: impl FnMut(&RecordBatch, &[u32], &[u32]) -> Result<()>,
    ) -> Result<()> {
        let mut pending: Vec<(&[u8], u32)> = keys.to_vec();
        for run in self.runs.iter().rev() {
            if pending.is_empty() {
                break;
            }
            let first = run.first_keys[0].as_ref();
            let last = run.last_key.as_ref();
            // the pending keys this run's key range covers
            let lo = pending.partition_point(|(k, _)| *k < first);
            let hi = pending.partition_point(|(k, _)| *k <= last);
            if lo >= hi {
                continue;
            }
            let reader = run.file.read()?;
            let mut found = vec![false; hi - lo];
            let mut at = lo;
            while at < hi {
                let block = run
                    .first_keys
                    .partition_point(|f| f.as_ref() <= pending[at].0)
                    - 1;
                let end = match run.first_keys.get(block + 1) {
                    Some(next) => at + pending[at..hi].partition_point(|(k, _)| *k < next.as_ref()),
                    None => hi,
                };
                let bytes = run.block_bytes();
                reserve_step(read_back, bytes);
                let searched = search_block(&reader, block, &pending[at..end], &mut on_found);
                read_back.shrink(bytes);
                for i in searched? {
                    found[at - lo + i] = true;
                }
                at = end;
            }
            let mut i = 0;
            pending.retain(|_| {
                let keep = !(lo..hi).contains(&i) || !found[i - lo];
                i += 1;
                keep
            });
        }
        Ok(())
    }
}

/// Searches block `block` of `reader` for `keys` (sorted, all within the
/// block's range); hands the rows found to `on_found` and returns the
/// indexes (into `keys`) of the keys found.
fn search_block(
    reader: &SpillReader,
    block: usize,
    keys: &[(&[u8], u32)],
    on_found: &mut impl FnMut(&RecordBatch, &[u32], &[u32]) -> Result<()>,
) -> Result<Vec<usize>> {
    let batch = reader.batch(block)?;
    let column = key_column(&batch)?;
    let stored: Vec<&[u8]> = (0..column.len()).map(|r| column.value(r)).collect();
    let (mut rows, mut slots, mut hits) = (Vec::new(), Vec::new(), Vec::new());
    let mut from = 0;
    for (i, (key, slot)) in keys.iter().enumerate() {
        // keys are sorted: search only past the last hit
        if let Ok(r) = stored[from..].binary_search(key) {
            rows.push((from + r) as u32);
            slots.push(*slot);
            hits.push(i);
            from += r + 1;
        }
    }
    if !rows.is_empty() {
        on_found(&batch, &rows, &slots)?;
    }
    Ok(hits)
}

/// The `key` column of a run batch.
fn key_column(batch: &RecordBatch) -> Result<&BinaryArray> {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| corrupt_run("its first column is not the keys"))
}

/// The `emitted` column of a run batch.
fn emitted_column(batch: &RecordBatch) -> Result<&BooleanArray> {
    batch
        .column(1)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| corrupt_run("its second column is not the emitted flags"))
}

/// The error for a run that does not hold what this module wrote.
fn corrupt_run(what: &str) -> Error {
    keyed_state::state_error(
        "group aggregate",
        format!("a spilled run is unreadable: {what}"),
    )
}

/// Writes sorted `batches` to a new spill file; `None` if they hold no row.
fn write(
    spill: &SpillManager,
    layout: &SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<Option<Run>> {
    let mut writer = spill.create_writer(layout, "group_aggregate")?;
    let mut first_keys = Vec::new();
    let mut last_key: Box<[u8]> = Box::new([]);
    for batch in batches {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let keys = key_column(&batch)?;
        first_keys.push(keys.value(0).into());
        last_key = keys.value(keys.len() - 1).into();
        writer.write(&batch)?;
    }
    if first_keys.is_empty() {
        // dropping the unfinished writer removes its file
        return Ok(None);
    }
    Ok(Some(Run {
        first_keys,
        last_key,
        file: writer.finish()?,
    }))
}

/// Distinct keys in key order with their combined states (see [`Merge`]).
pub(super) struct Chunk {
    /// The keys, ascending.
    pub(super) keys: BinaryArray,
    /// Per key: a row was emitted for it before.
    pub(super) emitted: Vec<bool>,
    /// The combined state of key `i` in group `i`.
    pub(super) accs: Vec<Accumulators>,
}

impl Chunk {
    /// The chunk as a run batch: `key | emitted | partial states...`.
    pub(super) fn to_batch(&self, layout: &SchemaRef) -> Result<RecordBatch> {
        let groups: Vec<u32> = (0..self.keys.len() as u32).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.keys.clone()),
            Arc::new(BooleanArray::from(self.emitted.clone())),
        ];
        columns.extend(keyed_state::acc_columns(&self.accs, &groups)?);
        Ok(RecordBatch::try_new(Arc::clone(layout), columns)?)
    }
}

/// A source's batch being merged.
struct Cursor {
    batch: RecordBatch,
    keys: BinaryArray,
    emitted: BooleanArray,
    /// The next row.
    at: usize,
    /// Rows of this batch taken into the chunk being built, and their slots.
    rows: Vec<u32>,
    slots: Vec<u32>,
    /// Bytes reserved for the batch.
    bytes: usize,
}

/// A k-way merge of sorted sources (oldest first) into [`Chunk`]s of at
/// most `rows` distinct keys, the copies of a key combined as `combine`
/// says. Each source's current batch is reserved in the fixed `read_back`
/// reservation until the chunk that used it is handed out.
///
/// ```text
///  sources: [a c f] [a b]  [c d]      chunk: a (merged from 0 and 1, or 1's
///   min key over the cursors ─► slot       copy alone if NewestWins), b, c, d, f
/// ```
pub(super) struct Merge<'a, 'r> {
    // config
    combine: Combine,
    aggs: &'a [BoundAgg],
    rows: usize,
    // state
    sources: Vec<Source<'a>>,
    cursors: Vec<Option<Cursor>>,
    /// Rows taken from batches whose cursor moved on, per chunk.
    retired: Vec<(RecordBatch, Vec<u32>, Vec<u32>, usize)>,
    // resources
    read_back: &'r mut MemoryReservation,
}

impl<'a, 'r> Merge<'a, 'r> {
    /// A merge of `sources` (oldest first).
    pub(super) fn new(
        sources: Vec<Source<'a>>,
        combine: Combine,
        aggs: &'a [BoundAgg],
        rows: usize,
        read_back: &'r mut MemoryReservation,
    ) -> Self {
        let cursors = sources.iter().map(|_| None).collect();
        Merge {
            combine,
            aggs,
            rows: rows.max(1),
            sources,
            cursors,
            retired: Vec::new(),
            read_back,
        }
    }

    /// Makes sure source `s` has a batch with rows left, if it has any.
    fn fill(&mut self, s: usize) -> Result<()> {
        loop {
            if let Some(c) = &self.cursors[s] {
                if c.at < c.batch.num_rows() {
                    return Ok(());
                }
            }
            if let Some(c) = self.cursors[s].take() {
                self.retired.push((c.batch, c.rows, c.slots, c.bytes));
            }
            let Some(next) = self.sources[s].next() else {
                return Ok(());
            };
            let (batch, bytes) = next?;
            reserve_step(self.read_back, bytes);
            let keys = key_column(&batch)?.clone();
            let emitted = emitted_column(&batch)?.clone();
            self.cursors[s] = Some(Cursor {
                batch,
                keys,
                emitted,
                at: 0,
                rows: Vec::new(),
                slots: Vec::new(),
                bytes,
            });
        }
    }

    /// The next chunk of distinct keys, or `None` once every source is read.
    pub(super) fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let mut keys = BinaryBuilder::new();
        let mut emitted: Vec<bool> = Vec::new();
        let mut equal: Vec<usize> = Vec::new();
        while emitted.len() < self.rows {
            for s in 0..self.cursors.len() {
                self.fill(s)?;
            }
            // the smallest key over the cursors, and every cursor holding it
            equal.clear();
            let mut min: Option<&[u8]> = None;
            for (s, c) in self.cursors.iter().enumerate() {
                let Some(c) = c else { continue };
                let k = c.keys.value(c.at);
                match min {
                    Some(m) if k > m => {}
                    Some(m) if k == m => equal.push(s),
                    _ => {
                        min = Some(k);
                        equal.clear();
                        equal.push(s);
                    }
                }
            }
            let Some(min) = min else { break };
            keys.append_value(min);
            let slot = emitted.len() as u32;
            let newest = *equal.last().expect("the smallest key has a source");
            let mut flag = false;
            for &s in &equal {
                let c = self.cursors[s].as_mut().expect("a cursor holding the key");
                if self.combine == Combine::Merge || s == newest {
                    c.rows.push(c.at as u32);
                    c.slots.push(slot);
                    flag |= c.emitted.value(c.at);
                }
                c.at += 1;
            }
            emitted.push(flag);
        }
        if emitted.is_empty() {
            return Ok(None);
        }
        // combine the rows taken into fresh accumulators, slot = key index
        let mut accs: Vec<Accumulators> = self.aggs.iter().map(Accumulators::new).collect();
        for a in &mut accs {
            a.resize(emitted.len());
        }
        let mut pieces = std::mem::take(&mut self.retired);
        for c in self.cursors.iter_mut().flatten() {
            pieces.push((
                c.batch.clone(),
                std::mem::take(&mut c.rows),
                std::mem::take(&mut c.slots),
                0,
            ));
        }
        for (batch, rows, slots, bytes) in pieces {
            if !rows.is_empty() {
                let taken = arrow_select::take::take_record_batch(
                    &batch,
                    &UInt32Array::from(rows.clone()),
                )?;
                keyed_state::merge_acc_columns(
                    &mut accs,
                    self.aggs,
                    &slots,
                    &taken,
                    FIRST_STATE_COLUMN,
                )?;
            }
            // a retired batch is done with: its step goes back
            self.read_back.shrink(bytes);
        }
        Ok(Some(Chunk {
            keys: keys.finish(),
            emitted,
            accs,
        }))
    }
}

impl Drop for Merge<'_, '_> {
    fn drop(&mut self) {
        let held: usize = self.retired.iter().map(|r| r.3).sum::<usize>()
            + self
                .cursors
                .iter()
                .flatten()
                .map(|c| c.bytes)
                .sum::<usize>();
        self.read_back.shrink(held.min(self.read_back.size()));
    }
}
