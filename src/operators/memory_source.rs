//! A bounded source over batches held in memory (tests, examples, benchmarks).
//!
//! Each inner `Vec` is one split, read in order, with its own watermark
//! generator, exactly like a Parquet row group.

use crate::error::{Error, Result};
use crate::operator::{Ctx, Output, Source, SourcePoll, TaskInfo};
use crate::time::{event_times, validate_time_column, SplitClock, WatermarkStrategy};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::sync::Arc;

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
        let clock = self.event_time.as_ref().map(|(_, s)| {
            let mins: Vec<Option<i64>> = splits.iter().map(|&i| self.min_times[i]).collect();
            SplitClock::new(s.clone(), &mins)
        });
        MemorySource {
            spec: self.clone(),
            splits,
            split: 0,
            batch: 0,
            clock,
        }
    }
}

/// One subtask of an in-memory source.
#[derive(Debug)]
pub struct MemorySource {
    // config
    spec: Arc<MemorySourceSpec>,
    splits: Vec<usize>,
    // state
    split: usize,
    batch: usize,
    clock: Option<SplitClock>,
}

impl Source for MemorySource {
    fn poll_next(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<SourcePoll> {
        let Some(&split) = self.splits.get(self.split) else {
            return Ok(SourcePoll::Exhausted);
        };
        let batches = &self.spec.splits[split];
        if self.batch == 0 {
            if let Some(c) = self.clock.as_mut() {
                c.start_split();
            }
        }
        if let Some(batch) = batches.get(self.batch) {
            self.batch += 1;
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
        if self.batch >= batches.len() {
            self.split += 1;
            self.batch = 0;
            if let Some(c) = self.clock.as_mut() {
                c.end_split();
            }
        }
        if let Some(wm) = self.clock.as_mut().and_then(|c| c.advance()) {
            out.emit_watermark(wm);
        }
        Ok(SourcePoll::Ready)
    }
}
