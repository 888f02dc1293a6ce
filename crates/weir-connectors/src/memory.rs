//! A bounded source over batches held in memory (tests, examples, benchmarks).
//!
//! Each inner `Vec` is one split, read in order, with its own watermark
//! generator, exactly like a Parquet row group.
//!
//! Checkpoints: the state (`memory.splits`, see `split_progress`) is the
//! batches emitted of each split started, the current split's generator
//! and the last watermark; a restore at another parallelism takes the
//! splits the new assignment gives it and rebuilds the watermark clock
//! from them (finished splits no longer count, partial ones keep their
//! generator), emitting only watermarks above nothing yet.

use super::split_progress::{self, SplitCursor};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::operator::{Ctx, Output, Source, SourcePoll, TaskInfo};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::{
    event_times, validate_time_column, LatenessRule, SplitClock, WatermarkStrategy,
};

/// The splits of an in-memory source.
#[derive(Debug, Clone)]
pub struct MemorySourceSpec {
    // config
    schema: SchemaRef,
    splits: Vec<Vec<RecordBatch>>,
    event_time: Option<(usize, WatermarkStrategy)>,
    /// Smallest event time of each split (like Parquet statistics).
    min_times: Vec<Option<i64>>,
}

impl MemorySourceSpec {
    /// A source over `splits`; every batch must have `schema`.
    pub fn try_new(schema: SchemaRef, splits: Vec<Vec<RecordBatch>>) -> Result<Self> {
        for (i, b) in splits.iter().flatten().enumerate() {
            if b.schema().fields() != schema.fields() {
                return Err(Error::SchemaMismatch {
                    location: format!("memory source batch {i}"),
                    message: "batch schema differs from the source schema".into(),
                });
            }
        }
        let min_times = vec![None; splits.len()];
        Ok(MemorySourceSpec {
            schema,
            splits,
            event_time: None,
            min_times,
        })
    }

    /// Decides late rows with `rule` (set by the planner from the operators
    /// this source feeds); no effect without event time.
    pub fn with_lateness_rule(mut self, rule: LatenessRule) -> Self {
        if let Some((_, strategy)) = self.event_time.as_mut() {
            strategy.lateness_rule = rule;
        }
        self
    }

    /// Assigns event time from `column`, per split.
    pub fn with_event_time(mut self, column: &str, strategy: WatermarkStrategy) -> Result<Self> {
        let idx = validate_time_column(&self.schema, column, "memory source")?;
        self.event_time = Some((idx, strategy));
        self.min_times = self
            .splits
            .iter()
            .map(|split| {
                let mut min: Option<i64> = None;
                for b in split {
                    let times = event_times(b, idx, "memory source")?;
                    if let Some(&m) = times.iter().min() {
                        min = Some(min.map_or(m, |x| x.min(m)));
                    }
                }
                Ok(min)
            })
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// The schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Subtask `info.subtask` reads every `parallelism`-th split.
    pub fn create(self: &Arc<Self>, info: &TaskInfo) -> MemorySource {
        let splits: Vec<usize> = (0..self.splits.len())
            .filter(|i| i % info.parallelism == info.subtask)
            .collect();
        MemorySource {
            clock: self.clock(&splits),
            spec: self.clone(),
            cursor: SplitCursor::new(&splits),
            splits,
            in_split: false,
        }
    }

    /// A clock over `splits`, read in this order.
    fn clock(&self, splits: &[usize]) -> Option<SplitClock> {
        self.event_time.as_ref().map(|(_, s)| {
            let mins: Vec<Option<i64>> = splits.iter().map(|&i| self.min_times[i]).collect();
            SplitClock::new(s.clone(), &mins)
        })
    }
}

/// The state entry of a memory source.
const STATE: &str = "memory.splits";

/// One subtask of an in-memory source.
#[derive(Debug)]
pub struct MemorySource {
    // config
    spec: Arc<MemorySourceSpec>,
    /// The splits the assignment gives this subtask.
    splits: Vec<usize>,
    // state
    /// Splits left and batches emitted of the current one.
    cursor: SplitCursor,
    in_split: bool,
    clock: Option<SplitClock>,
}

impl Source for MemorySource {
    fn poll_next(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<SourcePoll> {
        let Some(current) = self.cursor.current().cloned() else {
            return Ok(SourcePoll::Exhausted);
        };
        let batches = &self.spec.splits[current.split];
        if !self.in_split {
            self.in_split = true;
            if let Some(c) = self.clock.as_mut() {
                match current.generator {
                    Some(g) => c.resume_split(g),
                    None => c.start_split(),
                }
            }
        }
        if let Some(batch) = usize::try_from(self.cursor.done)
            .ok()
            .and_then(|i| batches.get(i))
        {
            self.cursor.done += 1;
            let batch = match (self.spec.event_time.as_ref(), self.clock.as_mut()) {
                (Some(&(col, _)), Some(clock)) => {
                    let times = event_times(batch, col, "memory source")?;
                    match clock.on_batch(batch, &times)? {
                        None => batch.clone(),
                        Some(mask) => super::split_late(batch, &mask, ctx, out)?,
                    }
                }
                _ => batch.clone(),
            };
            out.emit(batch);
        }
        if self.cursor.done >= batches.len() as u64 {
            split_progress::end_split(&mut self.cursor, self.clock.as_mut());
            self.in_split = false;
        }
        split_progress::emit_watermark(self.clock.as_mut(), out);
        Ok(SourcePoll::Ready)
    }

    fn snapshot(&mut self, _ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        let total = self.spec.splits.len();
        split_progress::snapshot(state, STATE, &self.cursor, total, self.clock.as_ref())
    }

    fn restore(&mut self, _ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        let spec = &self.spec;
        if let Some((cursor, clock)) = split_progress::restore(
            state,
            STATE,
            &self.splits,
            spec.splits.len(),
            &|i| spec.splits[i].len() as u64,
            "memory source",
            |s| spec.clock(s),
        )? {
            (self.cursor, self.clock) = (cursor, clock);
            self.in_split = false;
        }
        Ok(())
    }
}

impl weir_core::operator::SourceSpec for MemorySourceSpec {
    fn name(&self) -> &str {
        "memory"
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn boundedness(&self) -> weir_core::operator::Boundedness {
        weir_core::operator::Boundedness::Bounded
    }

    weir_core::operator::event_time_pushdown!();

    fn for_shard(&self, shard: weir_core::shard::Shard) -> Option<weir_core::operator::ShardShare> {
        let mut share = self.clone();
        share.splits = shard.share(share.splits);
        share.min_times = shard.share(share.min_times);
        Some(weir_core::operator::ShardShare::Splits(Arc::new(share)))
    }

    fn create(self: Arc<Self>, task: &TaskInfo) -> Result<Box<dyn Source>> {
        Ok(Box::new(MemorySourceSpec::create(&self, task)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source_harness::{
        assert_every_cut_of_a_timed_source, assert_rescales_read_every_row_once, uninterrupted,
        MakeSource,
    };
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};
    use std::time::Duration;

    /// 5 splits of 0..4 batches; times jump back beyond the delay now and
    /// then, so every split has late rows.
    fn spec() -> Arc<MemorySourceSpec> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("t", DataType::Int64, false),
        ]));
        let mut id = 0;
        let splits: Vec<Vec<RecordBatch>> = (0..5i64)
            .map(|s| {
                (0..(s % 4 + 1) - i64::from(s == 3) * 4)
                    .map(|b| {
                        let ids: Vec<i64> = (0..3)
                            .map(|_| {
                                id += 1;
                                id
                            })
                            .collect();
                        let times: Vec<i64> = ids
                            .iter()
                            .map(|&i| s * 50 + (b / 2) * 30 + if i % 4 == 0 { -25 } else { i % 3 })
                            .collect();
                        RecordBatch::try_new(
                            schema.clone(),
                            vec![
                                Arc::new(Int64Array::from(ids)),
                                Arc::new(Int64Array::from(times)),
                            ],
                        )
                        .unwrap()
                    })
                    .collect()
            })
            .collect();
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(5));
        Arc::new(
            MemorySourceSpec::try_new(schema, splits)
                .unwrap()
                .with_event_time("t", strategy)
                .unwrap(),
        )
    }

    fn make(spec: &Arc<MemorySourceSpec>) -> impl Fn(&TaskInfo) -> Result<Box<dyn Source>> + '_ {
        move |info| Ok(Box::new(spec.create(info)) as Box<dyn Source>)
    }

    #[test]
    fn a_restore_after_any_poll_continues_exactly() {
        let spec = spec();
        assert_every_cut_of_a_timed_source(&make(&spec));
    }

    #[test]
    fn a_rescale_reads_every_row_exactly_once() {
        let spec = spec();
        let make: MakeSource<'_> = &make(&spec);
        let cuts = [[0, 0], [1, 2], [2, 1], [3, 3], [4, 0], [9, 9]];
        let input = assert_rescales_read_every_row_once(make, &cuts);
        assert_eq!(
            input.len(),
            spec.splits
                .iter()
                .flatten()
                .map(|b| b.num_rows())
                .sum::<usize>()
        );
    }

    #[test]
    fn a_restore_with_nothing_saved_starts_fresh() {
        let spec = spec();
        let make = make(&spec);
        let (all, _) = uninterrupted(&make, 0, 1);
        let empty = Arc::new(vec![weir_core::state::SubtaskState::default()]);
        let mut r = crate::source_harness::Running::restored(&make, &empty, 0, 1);
        let mut items = Vec::new();
        r.run_to_end(&mut items);
        assert_eq!(items, all);
    }
}
