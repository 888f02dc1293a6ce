//! The batch join: blocking, both inputs sorted by key hash (spilling to
//! sorted runs under the memory budget), merged a step at a time.

use super::{join_group, JoinLayout, OutRow, SideRow};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::HashMap;
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::key::KeyEncoder;
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, Output};
use weir_core::spill::{batch_bytes, SpillManager};
use weir_core::state::store::SortedRuns;
use weir_core::state::store::{self, SpillableState};

/// Rows read back from the runs per merge step (both sides together).
const STEP_ROWS: usize = 8192;
/// Output rows per emitted batch.
const OUT_ROWS: usize = 8192;

/// One input side: batches in memory (hash column first) and spilled runs.
struct Side {
    // config
    keys: KeyEncoder,
    /// The side's schema with the `__hash` column in front.
    run_schema: SchemaRef,
    // state
    batches: Vec<RecordBatch>,
    bytes: usize,
    // resources
    runs: SortedRuns,
}

/// Joins two bounded inputs as a sort-merge join (batch mode).
///
/// ```text
///  on_batch(side) ──► prepend __hash = hash(key) ──► memory (spillable reservation)
///       the pool refuses ──► both sides' memory sorted by __hash ─► one run each
///  watermarks are held back: nothing is emitted before the end of input
///  end of input ──► memory becomes a last run per side; then in steps:
///       b = smallest next_step over both sides' runs
///       take_through(b) on each side ──► group rows by exact key bytes
///       ──► join_group(key) per key ──► output; step memory released
/// ```
/// Equal keys have equal hashes, so every row of a key comes back in the
/// same step, from both sides; a hot key comes back whole (its step is
/// larger than [`STEP_ROWS`]; the fixed read-back reservation must hold it). Without spill the
/// same steps run over each side's memory sorted by hash. The result is the same as the pipelined
/// [`super::SymmetricHashJoin`]'s, materialized: padded rows appear once,
/// with `op` = `insert` in changelog joins.
pub struct SortMergeJoin {
    // config
    layout: JoinLayout,
    // state
    sides: [Side; 2],
    // resources
    /// Both sides' rows in memory (spillable; made by `open`).
    reservation: MemoryReservation,
    /// The rows of one merge step read back from the runs (fixed).
    read_back: MemoryReservation,
}

impl std::fmt::Debug for SortMergeJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SortMergeJoin")
            .field("spec", self.layout.spec())
            .finish()
    }
}

impl SortMergeJoin {
    /// A sort-merge join laid out by `layout`.
    pub fn try_new(layout: JoinLayout) -> Result<Self> {
        let side = |s: usize| -> Result<Side> {
            let mut fields = vec![Arc::new(Field::new("__hash", DataType::Int64, false))];
            fields.extend(layout.input(s).fields().iter().cloned());
            Ok(Side {
                keys: layout.key_encoder(s)?,
                run_schema: Arc::new(Schema::new(fields)),
                batches: Vec::new(),
                bytes: 0,
                runs: SortedRuns::new(),
            })
        };
        Ok(SortMergeJoin {
            sides: [side(0)?, side(1)?],
            layout,
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        self.layout.schema()
    }

    /// Side `s`'s in-memory rows as one batch sorted by hash (memory emptied).
    fn sorted_memory(&mut self, s: usize) -> Result<RecordBatch> {
        let side = &mut self.sides[s];
        let all = arrow_select::concat::concat_batches(&side.run_schema, &side.batches)?;
        side.batches.clear();
        let order = arrow_ord::sort::sort_to_indices(all.column(0), None, None)?;
        Ok(arrow_select::take::take_record_batch(&all, &order)?)
    }

    /// Sorts each side's memory by hash and writes it as a run.
    fn spill_sides(&mut self, spill: &SpillManager) -> Result<()> {
        for s in 0..2 {
            if self.sides[s].batches.is_empty() {
                continue;
            }
            let sorted = self.sorted_memory(s)?;
            let name = self.reservation.consumer().to_string();
            let side = &mut self.sides[s];
            let mut writer = spill.create_writer(&side.run_schema, &name)?;
            let mut offset = 0;
            while offset < sorted.num_rows() {
                let n = STEP_ROWS.min(sorted.num_rows() - offset);
                writer.write(&sorted.slice(offset, n))?;
                offset += n;
            }
            side.runs.add(writer.finish()?)?;
            side.bytes = 0;
        }
        Ok(())
    }

    fn sync(&mut self, ctx: &Ctx) -> Result<()> {
        store::sync(self, ctx.spill())
    }

    /// Joins `left` and `right` (run-schema batches: hash column first),
    /// all rows of every key they hold being present.
    fn join_batches(
        &self,
        left: &[RecordBatch],
        right: &[RecordBatch],
        ctx: &Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let spec = self.layout.spec();
        // key bytes → (left rows, right rows); rows with a null key apart
        let mut groups: HashMap<Vec<u8>, [Vec<SideRow>; 2]> = HashMap::new();
        let mut lonely: [Vec<SideRow>; 2] = [Vec::new(), Vec::new()];
        for (s, batches) in [left, right].into_iter().enumerate() {
            for (b, batch) in batches.iter().enumerate() {
                let input = strip_hash(batch)?;
                let keys = self.sides[s].keys.encode(&input)?;
                let null_key = null_key_rows(&input, self.sides[s].keys.indices());
                let times = self.layout.row_times(s, &input, ctx.operator())?;
                for r in 0..input.num_rows() {
                    let row = SideRow {
                        at: (b, r),
                        time: times.time(r),
                        window: times.window(r),
                    };
                    if null_key.as_ref().is_some_and(|n| n[r]) {
                        lonely[s].push(row);
                    } else {
                        groups.entry(keys.row(r).as_ref().to_vec()).or_default()[s].push(row);
                    }
                }
            }
        }
        let inputs: [Vec<RecordBatch>; 2] = [
            left.iter().map(strip_hash).collect::<Result<_>>()?,
            right.iter().map(strip_hash).collect::<Result<_>>()?,
        ];
        let l: Vec<&RecordBatch> = inputs[0].iter().collect();
        let r: Vec<&RecordBatch> = inputs[1].iter().collect();
        let mut rows: Vec<OutRow> = Vec::new();
        let mut flush = |rows: &mut Vec<OutRow>, force: bool| -> Result<()> {
            if rows.len() >= OUT_ROWS || (force && !rows.is_empty()) {
                out.emit(self.layout.assemble(&l, &r, rows, None)?);
                rows.clear();
            }
            Ok(())
        };
        for [lrows, rrows] in groups.values() {
            join_group(spec, lrows, rrows, &mut rows);
            flush(&mut rows, false)?;
        }
        // a null key matches nothing: each such row is its own group
        for row in &lonely[0] {
            join_group(spec, std::slice::from_ref(row), &[], &mut rows);
        }
        for row in &lonely[1] {
            join_group(spec, &[], std::slice::from_ref(row), &mut rows);
        }
        flush(&mut rows, true)
    }
}

/// The input columns of a run-schema batch (without `__hash`).
fn strip_hash(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut b = batch.clone();
    b.remove_column(0);
    Ok(b)
}

/// `Some(flags)` marking rows with a null in any key column (`None` if none has).
pub(super) fn null_key_rows(batch: &RecordBatch, keys: &[usize]) -> Option<Vec<bool>> {
    let cols: Vec<&ArrayRef> = keys.iter().map(|&k| batch.column(k)).collect();
    if cols.iter().all(|c| c.logical_null_count() == 0) {
        return None;
    }
    Some(
        (0..batch.num_rows())
            .map(|r| cols.iter().any(|c| c.is_null(r)))
            .collect(),
    )
}

fn hash_of(batch: &RecordBatch) -> Result<ScalarBuffer<i64>> {
    Ok(batch.column(0).as_primitive::<Int64Type>().values().clone())
}

impl SpillableState for SortMergeJoin {
    fn memory_bytes(&self) -> usize {
        self.sides.iter().map(|s| s.bytes).sum()
    }

    fn can_spill(&self) -> bool {
        self.sides.iter().any(|s| !s.batches.is_empty())
    }

    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        self.spill_sides(spill)
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}

impl Operator for SortMergeJoin {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.reservation = ctx.spillable_reservation();
        self.read_back = ctx.fixed_reservation("read-back");
        Ok(())
    }

    fn on_batch(
        &mut self,
        port: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        _out: &mut Output,
    ) -> Result<()> {
        let s = port.min(1);
        let hashes = self.sides[s].keys.hashes(&batch)?;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
            hashes.iter().map(|&h| h as i64),
        ))];
        columns.extend(batch.columns().iter().cloned());
        let batch = RecordBatch::try_new(self.sides[s].run_schema.clone(), columns)?;
        let bytes = batch_bytes(&batch);
        self.sides[s].batches.push(batch);
        self.sides[s].bytes += bytes;
        self.sync(ctx)
    }

    fn on_watermark(&mut self, _: Watermark, _: &mut Ctx, _: &mut Output) -> Result<()> {
        // blocking: every row is emitted at the end, then the final watermark
        Ok(())
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if self.sides.iter().all(|s| s.runs.is_empty()) {
            // all in memory: sort each side by hash and merge in the same
            // steps as from disk (small hash maps per step stay in cache)
            let left = self.sorted_memory(0)?;
            let right = self.sorted_memory(1)?;
            let (lh, rh) = (hash_of(&left)?, hash_of(&right)?);
            let (mut i, mut j) = (0, 0);
            while i < lh.len() || j < rh.len() {
                let ahead = |h: &[i64], at: usize| {
                    (at < h.len()).then(|| h[(at + STEP_ROWS / 2).min(h.len()) - 1])
                };
                let step = match (ahead(&lh, i), ahead(&rh, j)) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => unreachable!("loop condition"),
                };
                let i2 = i + lh[i..].partition_point(|&h| h <= step);
                let j2 = j + rh[j..].partition_point(|&h| h <= step);
                self.join_batches(
                    &[left.slice(i, i2 - i)],
                    &[right.slice(j, j2 - j)],
                    ctx,
                    out,
                )?;
                (i, j) = (i2, j2);
            }
            drop((left, right));
            for s in &mut self.sides {
                s.bytes = 0;
            }
            return self.sync(ctx);
        }
        self.spill_sides(ctx.spill())?;
        self.sync(ctx)?;
        let step_bytes = store::step_bytes(self.read_back.pool());
        loop {
            let mut step: Option<i64> = None;
            for side in &mut self.sides {
                if let Some(b) = side.runs.next_step(&hash_of, step_bytes / 2)? {
                    step = Some(step.map_or(b, |s: i64| s.min(b)));
                }
            }
            let Some(step) = step else { break };
            let left = self.sides[0].runs.take_through(step, &hash_of)?;
            let right = self.sides[1].runs.take_through(step, &hash_of)?;
            let bytes: usize = left.iter().chain(&right).map(batch_bytes).sum();
            // a step holds every row of its keys: a hot key comes back whole
            store::reserve_step(&mut self.read_back, bytes);
            let result = self.join_batches(&left, &right, ctx, out);
            self.read_back.shrink(bytes);
            result?;
        }
        self.sync(ctx)
    }
}
