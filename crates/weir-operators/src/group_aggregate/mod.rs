//! Non-windowed keyed aggregation (Flink's regular group aggregate): one
//! running result per key, emitted as a changelog.
//!
//! Owns [`GroupAggregate`] and [`GroupEmit`]; its spilled state lives in
//! key-sorted runs (`runs`). May use the aggregate accumulators,
//! `weir_core::operator`, `weir_core::key`, `weir_core::time`, `weir_core::memory`,
//! `weir_core::state` (the store's `sync`, checkpoints), `weir_core::spill`,
//! `weir_core::error` and the arrow crates.

mod runs;

use super::window::{result_schema, OP_COLUMN};
use crate::keyed_state::{self, check_layout, column, key_groups};
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, RecordBatch, StringArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use runs::{Chunk, Combine, KeyRuns, Merge, Source, FIRST_STATE_COLUMN, MAX_RUNS};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{KeyDictionary, KeyEncoder};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::operator::{Ctx, Operator, Output};
use weir_core::spill::SpillManager;
use weir_core::state::store::{self, step_bytes, SpillableState};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::{event_times, validate_time_column};
use weir_functions::aggregate::{Accumulators, Agg, AggFn, BoundAgg};

/// When a [`GroupAggregate`] emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEmit {
    /// After every input batch, the keys it changed (`insert` the first
    /// time, then `update`): live results (pipelined runs).
    EveryBatch,
    /// Every key once, at end of input, as `insert` (batch runs).
    AtEnd,
    /// After every input batch, the keys it changed, as retractions: a key
    /// emitted before gets a `delete` of its previous row, then every
    /// changed key an `insert` of its new one (pipelined runs whose
    /// changelog another aggregation consumes: no key needed to read it).
    Retractions,
}

/// Running aggregates per key, as a changelog upserted by key.
///
/// ```text
///  batch ──► key ids (KeyDictionary) ──► Accumulators::update(groups = key ids)
///        ──EveryBatch──► touched keys: key columns | aggregates | op (insert first, then update)
///        ──Retractions──► touched keys emitted before: their previous row, op = delete;
///                         then every touched key: its new row, op = insert
///  end of input ──AtEnd──► every key once, op = insert
///  materialized (last row per key) = the same table in both policies
///
///  state (keys + partial states) over the pool's share ──sync──► spill:
///     keys sorted by bytes ──► a run: key | emitted | partial states; memory starts empty
///     more than MAX_RUNS runs ──► compacted into one
///  AtEnd:      a key's partials spread over runs and memory; at end of input a k-way
///              merge (Combine::Merge) emits every key once
///  EveryBatch, Retractions: a key new to memory is looked up in the runs (newest first, sparse
///              index) and its full state merged back before the batch updates it, so
///              the row emitted is the key's full aggregate; a run's row is the key's
///              full state when written (Combine::NewestWins)
/// ```
/// `first`/`last` order rows by event time, so they need the input's time
/// column; an input that is itself a changelog (`op` column) is refused.
/// State is counted in a spillable reservation and spills through
/// [`store::sync`]; blocks read back (lookups, merges, compaction,
/// snapshots) are held one per source in a fixed reservation.
pub struct GroupAggregate {
    // config
    keys: KeyEncoder,
    aggs: Vec<BoundAgg>,
    time_column: Option<usize>,
    schema: SchemaRef,
    emit: GroupEmit,
    /// The row layout of runs and snapshots: `key | emitted | partial states...`.
    layout: SchemaRef,
    // state
    dictionary: KeyDictionary,
    accs: Vec<Accumulators>,
    /// Per key id: emitted before (the next row is an `update`).
    emitted: Vec<bool>,
    /// State spilled to disk.
    runs: KeyRuns,
    /// Keys per block of a run (and per chunk of a merge), set at each spill
    /// from the state's bytes per key and the read-back step.
    block_rows: usize,
    // resources
    /// The groups and key dictionary (made by `open`).
    reservation: MemoryReservation,
    /// Blocks read back from the runs (made by `open`).
    read_back: MemoryReservation,
}

impl std::fmt::Debug for GroupAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAggregate")
            .field("keys", &self.dictionary.len())
            .field("runs", &self.runs)
            .field("emit", &self.emit)
            .finish()
    }
}

/// Keys per block when nothing better is known.
const DEFAULT_BLOCK_ROWS: usize = 4096;

impl GroupAggregate {
    /// The output schema: key columns, aggregates, `op`.
    pub fn output_schema(
        input: &Schema,
        keys: &[String],
        aggs: &[Agg],
        context: &str,
    ) -> Result<SchemaRef> {
        result_schema(input, keys, &[], aggs, true, context)
    }

    /// A keyed aggregate over `input`; `time_column` orders `first`/`last`.
    pub fn try_new(
        input: &Schema,
        keys: &[String],
        aggs: &[Agg],
        time_column: Option<&str>,
        emit: GroupEmit,
        context: &str,
    ) -> Result<Self> {
        if aggs.is_empty() {
            return Err(Error::option(
                "aggregates",
                "an aggregation needs at least one aggregate",
            ));
        }
        if input.index_of(OP_COLUMN).is_ok() {
            return Err(Error::column(
                OP_COLUMN,
                context,
                "the input is a changelog; aggregating inserts, updates and deletes is not supported",
            ));
        }
        let schema = Self::output_schema(input, keys, aggs, context)?;
        let aggs = aggs
            .iter()
            .map(|a| a.bind(input, context))
            .collect::<Result<Vec<_>>>()?;
        let time_column = time_column
            .map(|t| validate_time_column(input, t, context))
            .transpose()?;
        if time_column.is_none() {
            // user aggregates read times too, but need none (they are given
            // i64::MIN when the rows have no event time, as a changelog's)
            if let Some(a) = aggs
                .iter()
                .find(|a| matches!(a.func, AggFn::First | AggFn::Last))
            {
                return Err(Error::column(
                    a.field.name(),
                    context,
                    "first and last follow event time: the stream needs a time column",
                ));
            }
        }
        let layout = keyed_state::layout(
            vec![
                Field::new("key", DataType::Binary, false),
                Field::new("emitted", DataType::Boolean, false),
            ],
            &aggs,
        );
        Ok(GroupAggregate {
            keys: KeyEncoder::try_new(input, keys, context)?,
            accs: aggs.iter().map(Accumulators::new).collect(),
            aggs,
            time_column,
            schema,
            emit,
            runs: KeyRuns::new(Arc::clone(&layout)),
            layout,
            dictionary: KeyDictionary::new(),
            emitted: Vec::new(),
            block_rows: DEFAULT_BLOCK_ROWS,
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// How copies of a key in the runs and memory combine (see [`Combine`]).
    fn combine(&self) -> Combine {
        match self.emit {
            GroupEmit::EveryBatch | GroupEmit::Retractions => Combine::NewestWins,
            GroupEmit::AtEnd => Combine::Merge,
        }
    }

    /// The memory ids of encoded `keys`, interning new ones. Pipelined
    /// (`EveryBatch`), a key new to memory whose state was spilled gets
    /// that state merged back first, so memory holds its full aggregate.
    fn intern<'k>(&mut self, keys: impl Iterator<Item = &'k [u8]>) -> Result<Vec<u32>> {
        // keys are never released, so ids are dense: 0..number of keys
        let before = self.dictionary.len() as u32;
        let ids: Vec<u32> = keys.map(|k| self.dictionary.intern(k)).collect();
        let slots = self.dictionary.len();
        if self.emitted.len() < slots {
            self.emitted.resize(slots, false);
            for a in &mut self.accs {
                a.resize(slots);
            }
        }
        if self.combine() == Combine::NewestWins && !self.runs.is_empty() {
            let mut new: Vec<(&[u8], u32)> = (before..slots as u32)
                .map(|id| (self.dictionary.key(id), id))
                .collect();
            new.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let (accs, aggs, emitted) = (&mut self.accs, &self.aggs, &mut self.emitted);
            self.runs
                .lookup(&new, &mut self.read_back, |batch, rows, slots| {
                    let taken = arrow_select::take::take_record_batch(
                        batch,
                        &UInt32Array::from(rows.to_vec()),
                    )?;
                    keyed_state::merge_acc_columns(accs, aggs, slots, &taken, FIRST_STATE_COLUMN)?;
                    let flags = taken.column(1).as_boolean();
                    for (i, &slot) in slots.iter().enumerate() {
                        emitted[slot as usize] |= flags.value(i);
                    }
                    Ok(())
                })?;
        }
        Ok(ids)
    }

    /// The current result of key ids `ids`, with `op` per row (`insert` the
    /// first time, then `update`; `Retractions`: always `insert`).
    fn rows(&mut self, ids: &[u32]) -> Result<RecordBatch> {
        let retract = self.emit == GroupEmit::Retractions;
        let ops: Vec<&str> = ids
            .iter()
            .map(|&id| {
                let seen = std::mem::replace(&mut self.emitted[id as usize], true);
                if seen && !retract {
                    "update"
                } else {
                    "insert"
                }
            })
            .collect();
        self.result(ids, ops)
    }

    /// The current result of key ids `ids`, with `ops`.
    fn result(&self, ids: &[u32], ops: Vec<&str>) -> Result<RecordBatch> {
        let parser = self.keys.converter().parser();
        let mut columns: Vec<ArrayRef> = self
            .keys
            .converter()
            .convert_rows(ids.iter().map(|&id| parser.parse(self.dictionary.key(id))))?;
        for (acc, agg) in self.accs.iter().zip(&self.aggs) {
            columns.push(acc.finish(ids, agg)?);
        }
        columns.push(Arc::new(StringArray::from(ops)));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Every key in memory and on disk, merged, in key order (for the end
    /// of a batch run and for snapshots): runs oldest first, memory newest.
    /// Returns the merge and what turns its chunks into result rows.
    fn merged(&mut self) -> Result<(Merge<'_, '_>, Results<'_>)> {
        let combine = self.combine();
        let GroupAggregate {
            keys,
            aggs,
            schema,
            layout,
            dictionary,
            accs,
            emitted,
            runs,
            block_rows,
            read_back,
            ..
        } = self;
        let mut sources = runs.sources()?;
        sources.push(memory_source(
            layout,
            dictionary,
            accs,
            emitted,
            *block_rows,
        ));
        let merge = Merge::new(sources, combine, aggs, *block_rows, read_back);
        Ok((merge, Results { keys, aggs, schema }))
    }

    /// Keys per block: about a 2 × (MAX_RUNS + 1)th of a read-back step, so
    /// a merge's blocks (one per source, and the one before it) fit a step.
    fn block_rows_now(&self) -> usize {
        let keys = self.dictionary.len().max(1);
        // in memory a key takes about twice its bytes on disk
        let per_key = (self.memory_bytes() / keys / 2).max(16);
        let step = step_bytes(self.reservation.pool()) / (2 * (MAX_RUNS + 1));
        (step / per_key).clamp(64, 16 * 1024)
    }
}

/// Turns merged chunks into result rows.
struct Results<'a> {
    keys: &'a KeyEncoder,
    aggs: &'a [BoundAgg],
    schema: &'a SchemaRef,
}

impl Results<'_> {
    /// The final rows of a merged chunk, as `insert`s.
    fn rows(&self, chunk: &Chunk) -> Result<RecordBatch> {
        let parser = self.keys.converter().parser();
        let mut columns: Vec<ArrayRef> = self
            .keys
            .converter()
            .convert_rows(chunk.keys.iter().flatten().map(|k| parser.parse(k)))?;
        let groups: Vec<u32> = (0..chunk.keys.len() as u32).collect();
        for (acc, agg) in chunk.accs.iter().zip(self.aggs) {
            columns.push(acc.finish(&groups, agg)?);
        }
        columns.push(Arc::new(StringArray::from(vec!["insert"; groups.len()])));
        Ok(RecordBatch::try_new(Arc::clone(self.schema), columns)?)
    }
}

/// The keys in memory, sorted by their bytes, as run batches of `rows` keys
/// (for a merge, memory is the newest source).
fn memory_source<'a>(
    layout: &'a SchemaRef,
    dictionary: &'a KeyDictionary,
    accs: &'a [Accumulators],
    emitted: &'a [bool],
    rows: usize,
) -> Source<'a> {
    let ids = sorted_ids(dictionary);
    let starts = (0..ids.len()).step_by(rows.max(1));
    Box::new(starts.map(move |start| {
        let chunk = &ids[start..(start + rows).min(ids.len())];
        let batch = memory_batch(layout, dictionary, accs, emitted, chunk)?;
        let bytes = batch.get_array_memory_size();
        Ok((batch, bytes))
    }))
}

/// Key ids `0..dictionary.len()` sorted by key bytes.
fn sorted_ids(dictionary: &KeyDictionary) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..dictionary.len() as u32).collect();
    ids.sort_unstable_by(|&a, &b| dictionary.key(a).cmp(dictionary.key(b)));
    ids
}

/// Key ids `ids` as a run (and snapshot) batch: `key | emitted | partial states...`.
fn memory_batch(
    layout: &SchemaRef,
    dictionary: &KeyDictionary,
    accs: &[Accumulators],
    emitted: &[bool],
    ids: &[u32],
) -> Result<RecordBatch> {
    let keys = BinaryArray::from_iter_values(ids.iter().map(|&id| dictionary.key(id)));
    let flags: BooleanArray = ids
        .iter()
        .map(|&id| Some(emitted.get(id as usize).copied().unwrap_or(false)))
        .collect();
    let mut columns: Vec<ArrayRef> = vec![Arc::new(keys), Arc::new(flags)];
    columns.extend(keyed_state::acc_columns(accs, ids)?);
    Ok(RecordBatch::try_new(Arc::clone(layout), columns)?)
}

impl SpillableState for GroupAggregate {
    fn memory_bytes(&self) -> usize {
        self.dictionary.memory_size()
            + self.emitted.len()
            + self
                .accs
                .iter()
                .map(Accumulators::memory_size)
                .sum::<usize>()
            + self.runs.index_bytes()
    }

    fn can_spill(&self) -> bool {
        !self.dictionary.is_empty()
    }

    /// Writes every key in memory as a new run, sorted by key bytes, and
    /// starts memory empty; compacts the runs once there are too many.
    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        self.block_rows = self.block_rows_now();
        let ids = sorted_ids(&self.dictionary);
        let (layout, dictionary, accs, emitted) =
            (&self.layout, &self.dictionary, &self.accs, &self.emitted);
        let batches = ids
            .chunks(self.block_rows)
            .map(|chunk| memory_batch(layout, dictionary, accs, emitted, chunk));
        self.runs.write_run(spill, batches)?;
        self.dictionary = KeyDictionary::new();
        self.accs = self.aggs.iter().map(Accumulators::new).collect();
        self.emitted = Vec::new();
        if self.runs.len() > MAX_RUNS {
            let combine = self.combine();
            self.runs.compact(
                spill,
                &self.aggs,
                combine,
                &mut self.read_back,
                self.block_rows,
            )?;
        }
        Ok(())
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}

/// The keyed state entry: `key | emitted | partial states...`, one row per key.
const GROUPS: &str = "group_aggregate.groups";

impl GroupAggregate {
    /// Writes one row per key: memory and runs merged, so a key is written
    /// once with its full state.
    fn write_state(&mut self, state: &mut StateWriter) -> Result<()> {
        if self.runs.is_empty() {
            // ids are dense: keys are never forgotten
            let ids: Vec<u32> = (0..self.dictionary.len() as u32).collect();
            for chunk in ids.chunks(8192) {
                let batch = memory_batch(
                    &self.layout,
                    &self.dictionary,
                    &self.accs,
                    &self.emitted,
                    chunk,
                )?;
                let groups = key_groups(batch.column(0).as_binary::<i32>().iter().flatten());
                state.put_keyed(GROUPS, &batch, &groups)?;
            }
            return Ok(());
        }
        let layout = Arc::clone(&self.layout);
        let (mut merge, _) = self.merged()?;
        while let Some(chunk) = merge.next_chunk()? {
            let batch = chunk.to_batch(&layout)?;
            let groups = key_groups(chunk.keys.iter().flatten());
            state.put_keyed(GROUPS, &batch, &groups)?;
        }
        Ok(())
    }

    /// Reads the keys this subtask owns into a fresh instance, spilling
    /// while the pool refuses.
    fn read_state(&mut self, state: &StateReader, ctx: &Ctx) -> Result<()> {
        let operator = ctx.operator();
        for batch in state.keyed(GROUPS)? {
            check_layout(&batch, &self.layout, GROUPS, operator)?;
            let keys = column::<BinaryArray>(&batch, "key", GROUPS, operator)?;
            let emitted = column::<BooleanArray>(&batch, "emitted", GROUPS, operator)?;
            let ids = self.intern((0..batch.num_rows()).map(|r| keys.value(r)))?;
            for (r, &id) in ids.iter().enumerate() {
                self.emitted[id as usize] |= emitted.value(r);
            }
            keyed_state::merge_acc_columns(&mut self.accs, &self.aggs, &ids, &batch, 2)?;
            store::sync(self, ctx.spill())?;
        }
        Ok(())
    }
}

impl Operator for GroupAggregate {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.reservation = ctx.spillable_reservation();
        self.read_back = ctx.fixed_reservation("read back");
        Ok(())
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let encoded = self.keys.encode(&batch)?;
        let groups = self.intern((0..batch.num_rows()).map(|r| encoded.row(r).data()))?;
        let times = match self.time_column {
            Some(c) => event_times(&batch, c, ctx.operator())?.to_vec(),
            None if self.accs.iter().any(|a| a.uses_times()) => {
                vec![i64::MIN; batch.num_rows()]
            }
            None => Vec::new(),
        };
        let rows: Vec<u32> = (0..batch.num_rows() as u32).collect();
        // the keys this batch changes (batch runs emit nothing per batch)
        let mut touched = Vec::new();
        if self.emit != GroupEmit::AtEnd {
            touched.extend_from_slice(&groups);
            touched.sort_unstable();
            touched.dedup();
        }
        // Retractions: the previous rows of keys emitted before (their full
        // state: `intern` merged spilled state back)
        let mut retracted = None;
        if self.emit == GroupEmit::Retractions {
            let before: Vec<u32> = touched
                .iter()
                .copied()
                .filter(|&id| self.emitted[id as usize])
                .collect();
            if !before.is_empty() {
                retracted = Some(self.result(&before, vec!["delete"; before.len()])?);
            }
        }
        for (acc, agg) in self.accs.iter_mut().zip(&self.aggs) {
            let values = agg.values(batch.columns())?;
            acc.update(&groups, &rows, &values, &times, agg.field.name())?;
        }
        if !touched.is_empty() {
            let b = self.rows(&touched)?;
            // one batch, deletes first: a consumer never sees a key's row
            // taken back without its new one
            let b = match retracted {
                Some(r) => arrow_select::concat::concat_batches(&self.schema, [&r, &b])?,
                None => b,
            };
            out.emit(b);
        }
        store::sync(self, ctx.spill())
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if self.emit == GroupEmit::AtEnd {
            if self.runs.is_empty() {
                let ids: Vec<u32> = (0..self.dictionary.len() as u32).collect();
                for chunk in ids.chunks(8192) {
                    let b = self.rows(chunk)?;
                    out.emit(b);
                }
            } else {
                let (mut merge, results) = self.merged()?;
                while let Some(chunk) = merge.next_chunk()? {
                    out.emit(results.rows(&chunk)?);
                }
            }
        }
        store::sync(self, ctx.spill())
    }

    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        self.write_state(state)
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.read_state(state, ctx)
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))?;
        store::sync(self, ctx.spill())
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;
    use crate::checkpoint_events::{assert_restores, assert_restores_spilled, events, rows, Gen};
    use crate::checkpoint_harness::encoders;
    use weir_core::operator::TaskInfo;

    fn make(emit: GroupEmit) -> impl Fn(&TaskInfo) -> Result<Box<dyn Operator>> {
        move |info: &TaskInfo| {
            let aggs = [
                Agg::count().alias("n"),
                Agg::sum("v"),
                Agg::avg("v"),
                Agg::first("v"),
                Agg::last("v").alias("last_v"),
                Agg::count_distinct("v").alias("dv"),
            ];
            let schema = rows(&[]).schema();
            let op = GroupAggregate::try_new(
                &schema,
                &["k".into()],
                &aggs,
                Some("t"),
                emit,
                &info.operator,
            )?;
            Ok(Box::new(op) as _)
        }
    }

    #[test]
    fn running_aggregates_and_their_changelog_continue_after_restore() {
        // every batch emits the keys it changed: `insert` the first time, then
        // `update`, which needs the restored emitted flags
        let ev = events(Gen {
            keys: 6,
            rows: 5,
            ..Gen::default()
        });
        let schema = rows(&[]).schema();
        let keys = encoders(&[&schema], &[&["k"]]);
        let cuts = [0, 1, 2, ev.len() / 2, ev.len() - 1];
        assert_restores(&make(GroupEmit::EveryBatch), &keys, &ev, &cuts);
        assert_restores(&make(GroupEmit::Retractions), &keys, &ev, &cuts);
        assert_restores(&make(GroupEmit::AtEnd), &keys, &ev, &cuts);
    }

    #[test]
    fn spilled_state_is_in_the_snapshot_and_continues_after_restore() {
        // 2,000 keys under a 24 KiB budget: most state is in runs at the cut;
        // the snapshot merges runs and memory, restore spills again as needed
        let ev = events(Gen {
            keys: 2000,
            rows: 150,
            batches: 16,
            ..Gen::default()
        });
        let schema = rows(&[]).schema();
        let keys = encoders(&[&schema], &[&["k"]]);
        for emit in [
            GroupEmit::EveryBatch,
            GroupEmit::Retractions,
            GroupEmit::AtEnd,
        ] {
            assert_restores_spilled(&make(emit), &keys, &ev, ev.len() / 2, 24 * 1024);
        }
    }
}

#[cfg(test)]
mod tests;
