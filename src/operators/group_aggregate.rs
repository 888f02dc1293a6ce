//! Non-windowed keyed aggregation (Flink's regular group aggregate): one
//! running result per key, emitted as a changelog.
//!
//! Owns [`GroupAggregate`] and [`GroupEmit`]. May use the aggregate
//! accumulators, `crate::operator`, `crate::key`, `crate::time`,
//! `crate::memory`, `crate::error` and the arrow crates.

use super::aggregate::{Accumulators, Agg, BoundAgg};
use super::window::{result_schema, OP_COLUMN};
use crate::error::{Error, Result};
use crate::key::{KeyDictionary, KeyEncoder};
use crate::memory::{ConsumerKind, MemoryReservation};
use crate::operator::{Ctx, Operator, Output};
use crate::operators::keyed_state::{self, check_layout, column, key_groups};
use crate::state::{StateReader, StateWriter};
use crate::time::{event_times, validate_time_column};
use arrow_array::{ArrayRef, BinaryArray, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// When a [`GroupAggregate`] emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEmit {
    /// After every input batch, the keys it changed (`insert` the first
    /// time, then `update`): live results (pipelined runs).
    EveryBatch,
    /// Every key once, at end of input, as `insert` (batch runs).
    AtEnd,
}

/// Running aggregates per key, as a changelog upserted by key.
///
/// ```text
///  batch ──► key ids (KeyDictionary) ──► Accumulators::update(groups = key ids)
///        ──EveryBatch──► touched keys: key columns | aggregates | op (insert first, then update)
///  end of input ──AtEnd──► every key once, op = insert
///  materialized (last row per key) = the same table in both policies
/// ```
/// `first`/`last` order rows by event time, so they need the input's time
/// column; an input that is itself a changelog (`op` column) is refused.
/// State is reserved from the memory pool and does not spill
/// (`ResourcesExhausted` names the operator).
pub struct GroupAggregate {
    // config
    keys: KeyEncoder,
    aggs: Vec<BoundAgg>,
    time_column: Option<usize>,
    schema: SchemaRef,
    emit: GroupEmit,
    // state
    dictionary: KeyDictionary,
    accs: Vec<Accumulators>,
    /// Per key id: emitted before (the next row is an `update`).
    emitted: Vec<bool>,
    // resources
    /// The groups and key dictionary (made by `open`).
    reservation: MemoryReservation,
}

impl std::fmt::Debug for GroupAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAggregate")
            .field("keys", &self.dictionary.len())
            .field("emit", &self.emit)
            .finish()
    }
}

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
            if let Some(a) = aggs.iter().find(|a| Accumulators::new(a).uses_times()) {
                return Err(Error::column(
                    a.field.name(),
                    context,
                    "first and last follow event time: the stream needs a time column",
                ));
            }
        }
        Ok(GroupAggregate {
            keys: KeyEncoder::try_new(input, keys, context)?,
            accs: aggs.iter().map(Accumulators::new).collect(),
            aggs,
            time_column,
            schema,
            emit,
            dictionary: KeyDictionary::new(),
            emitted: Vec::new(),
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The current result of key ids `ids`, with `op` per row.
    fn rows(&mut self, ids: &[u32]) -> Result<RecordBatch> {
        let parser = self.keys.converter().parser();
        let mut columns: Vec<ArrayRef> = self
            .keys
            .converter()
            .convert_rows(ids.iter().map(|&id| parser.parse(self.dictionary.key(id))))?;
        for (acc, agg) in self.accs.iter().zip(&self.aggs) {
            columns.push(acc.finish(ids, agg)?);
        }
        let ops: Vec<&str> = ids
            .iter()
            .map(|&id| {
                let seen = std::mem::replace(&mut self.emitted[id as usize], true);
                if seen {
                    "update"
                } else {
                    "insert"
                }
            })
            .collect();
        columns.push(Arc::new(StringArray::from(ops)));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    fn sync(&mut self, _ctx: &Ctx) -> Result<()> {
        let bytes = self.dictionary.memory_size()
            + self.emitted.len()
            + self
                .accs
                .iter()
                .map(Accumulators::memory_size)
                .sum::<usize>();
        self.reservation.try_resize(bytes)
    }
}

/// The keyed state entry: `key | emitted | partial states...`, one row per key.
const GROUPS: &str = "group_aggregate.groups";

impl GroupAggregate {
    /// The layout of [`GROUPS`].
    fn state_layout(&self) -> SchemaRef {
        keyed_state::layout(
            vec![
                Field::new("key", DataType::Binary, false),
                Field::new("emitted", DataType::Boolean, false),
            ],
            &self.aggs,
        )
    }

    /// Writes one row per key (ids are dense: keys are never forgotten).
    fn write_state(&self, state: &mut StateWriter) -> Result<()> {
        let n = self.dictionary.len() as u32;
        for chunk in (0..n).collect::<Vec<u32>>().chunks(8192) {
            let keys =
                BinaryArray::from_iter_values(chunk.iter().map(|&id| self.dictionary.key(id)));
            let groups = key_groups(keys.iter().flatten());
            let emitted: BooleanArray = chunk
                .iter()
                .map(|&id| Some(self.emitted.get(id as usize).copied().unwrap_or(false)))
                .collect();
            let mut columns: Vec<ArrayRef> = vec![Arc::new(keys), Arc::new(emitted)];
            columns.extend(keyed_state::acc_columns(&self.accs, chunk)?);
            let batch = RecordBatch::try_new(self.state_layout(), columns)?;
            state.put_keyed(GROUPS, &batch, &groups)?;
        }
        Ok(())
    }

    /// Reads the keys this subtask owns into a fresh instance.
    fn read_state(&mut self, state: &StateReader, operator: &str) -> Result<()> {
        let layout = self.state_layout();
        for batch in state.keyed(GROUPS)? {
            check_layout(&batch, &layout, GROUPS, operator)?;
            let keys = column::<BinaryArray>(&batch, "key", GROUPS, operator)?;
            let emitted = column::<BooleanArray>(&batch, "emitted", GROUPS, operator)?;
            let ids: Vec<u32> = (0..batch.num_rows())
                .map(|r| self.dictionary.intern(keys.value(r)))
                .collect();
            let slots = self.dictionary.len();
            self.emitted.resize(slots, false);
            for a in &mut self.accs {
                a.resize(slots);
            }
            for (r, &id) in ids.iter().enumerate() {
                self.emitted[id as usize] |= emitted.value(r);
            }
            keyed_state::merge_acc_columns(&mut self.accs, &self.aggs, &ids, &batch, 2)?;
        }
        Ok(())
    }
}

impl Operator for GroupAggregate {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.reservation = ctx.spillable_reservation();
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
        // keys are never released, so ids are dense: 0..number of keys
        let groups: Vec<u32> = (0..batch.num_rows())
            .map(|r| self.dictionary.intern(encoded.row(r).as_ref()))
            .collect();
        let slots = self.dictionary.len();
        if self.emitted.len() < slots {
            self.emitted.resize(slots, false);
            for a in &mut self.accs {
                a.resize(slots);
            }
        }
        let times = match self.time_column {
            Some(c) => event_times(&batch, c, ctx.operator())?.to_vec(),
            None => Vec::new(),
        };
        let rows: Vec<u32> = (0..batch.num_rows() as u32).collect();
        for (acc, agg) in self.accs.iter_mut().zip(&self.aggs) {
            let values = agg.values(batch.columns())?;
            acc.update(&groups, &rows, &values, &times, agg.field.name())?;
        }
        if self.emit == GroupEmit::EveryBatch && !groups.is_empty() {
            let mut touched = groups;
            touched.sort_unstable();
            touched.dedup();
            let b = self.rows(&touched)?;
            out.emit(b);
        }
        self.sync(ctx)
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if self.emit == GroupEmit::AtEnd {
            let ids: Vec<u32> = (0..self.dictionary.len() as u32).collect();
            for chunk in ids.chunks(8192) {
                let b = self.rows(chunk)?;
                out.emit(b);
            }
        }
        self.sync(ctx)
    }

    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        self.write_state(state)
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.read_state(state, ctx.operator())
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))?;
        self.sync(ctx)
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;
    use crate::operator::TaskInfo;
    use crate::operators::checkpoint_events::{assert_restores, events, rows, Gen};
    use crate::operators::checkpoint_harness::encoders;

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
        assert_restores(&make(GroupEmit::AtEnd), &keys, &ev, &cuts);
    }
}
