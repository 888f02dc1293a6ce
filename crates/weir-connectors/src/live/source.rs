//! One subtask of a live source ([`LiveSource`]): polls its connector,
//! decodes records into batches (dead letters to their port), keeps the
//! partitions' clocks and positions, and snapshots them.
//!
//! May use what the parent module imports.

use super::*;

/// One subtask of a live source.
pub struct LiveSource {
    // config
    pub(super) spec: Arc<LiveSourceSpec>,
    pub(super) partitions: Vec<String>,
    // resources
    pub(super) connector: Box<dyn Connector>,
    // state
    /// The history of a hybrid source (kept after the hand-off: its state
    /// says which splits were read).
    pub(super) history: Option<ParquetSource>,
    /// True once the history was read to its end.
    pub(super) history_done: bool,
    pub(super) decoder: JsonDecoder,
    pub(super) clock: Option<PartitionClock>,
    pub(super) buf: Vec<RawRecord>,
    pub(super) letters: Vec<DeadLetter>,
    pub(super) ended: bool,
}

impl LiveSource {
    fn publish_positions(&self) {
        let mut log = self
            .spec
            .positions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        log.extend(self.connector.positions());
    }

    /// Decodes and emits the records of one partition.
    fn emit_partition(
        &mut self,
        records: &[RawRecord],
        partition: usize,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let (batch, letters) = self.decoder.decode(records)?;
        self.refuse(&letters, ctx, out)?;
        self.emit_rows(partition, batch, ctx, out)
    }

    /// Malformed records: the error naming the first (`OnError::Fail`), or
    /// dead letters, counted.
    fn refuse(&self, letters: &[DeadLetter], ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        let Some(first) = letters.first() else {
            return Ok(());
        };
        match self.spec.on_error {
            OnError::Fail => {
                let name = self
                    .partitions
                    .get(first.partition)
                    .map_or("", String::as_str);
                Err(decode::malformed_error(&self.spec.name, name, first))
            }
            OnError::DeadLetter => {
                OperatorMetrics::add(&ctx.metrics().bad_records, letters.len() as u64);
                let rows = decode::dead_letter_batch(&self.spec.name, &self.partitions, letters)?;
                out.emit_side(DEAD_LETTER_PORT, rows);
                Ok(())
            }
        }
    }

    /// What the connector refused by itself, as dead letters.
    fn connector_letters(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.connector.take_dead_letters(&mut self.letters);
        let letters = std::mem::take(&mut self.letters);
        let result = self.refuse(&letters, ctx, out);
        self.letters = letters;
        self.letters.clear();
        result
    }

    /// Filters, timestamps and emits decoded rows of one partition.
    fn emit_rows(
        &mut self,
        partition: usize,
        batch: arrow_array::RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let context = || format!("{} {}", self.spec.name, self.partitions[partition]);
        let batch = match &self.spec.range {
            Some((col, range)) => {
                let times = event_times(&batch, *col, &context())?;
                range.filter(batch, &times)?
            }
            None => batch,
        };
        let batch = match (&self.spec.event_time, self.clock.as_mut()) {
            (Some((col, _)), Some(clock)) => {
                let times = event_times(&batch, *col, &context())?;
                match clock.on_batch(partition, &batch, &times)? {
                    None => batch,
                    Some(mask) => crate::split_late(&batch, &mask, ctx, out)?,
                }
            }
            _ => batch,
        };
        out.emit(batch);
        Ok(())
    }
}

impl Source for LiveSource {
    fn poll_next(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<SourcePoll> {
        if self.ended || ctx.stop_requested() {
            self.publish_positions();
            return Ok(SourcePoll::Exhausted);
        }
        if let Some(history) = self.history.as_mut().filter(|_| !self.history_done) {
            match history.poll_next(ctx, out)? {
                SourcePoll::Exhausted => {
                    // hand-off: the live part starts where the history's watermark is
                    let floor = history.last_watermark();
                    self.history_done = true;
                    self.clock = self.clock.take().map(|c| c.with_floor(floor));
                    return Ok(SourcePoll::Ready);
                }
                poll => return Ok(poll),
            }
        }
        let batch = self.connector.take_batch()?;
        self.connector_letters(ctx, out)?;
        if let Some((partition, batch)) = batch {
            self.emit_rows(partition, batch, ctx, out)?;
            if let Some(wm) = self.clock.as_mut().and_then(|c| c.advance()) {
                out.emit_watermark(wm);
            }
            return Ok(SourcePoll::Ready);
        }
        self.buf.clear();
        let fetch = self.connector.fetch(self.spec.max_records, &mut self.buf)?;
        if let Some(behind) = self.connector.records_behind() {
            self.spec.set_records_behind(ctx.info().subtask, behind);
        }
        self.connector_letters(ctx, out)?;
        let mut records = std::mem::take(&mut self.buf);
        // group by partition, keeping each partition's order
        records.sort_by_key(|r| r.partition);
        let mut start = 0;
        while start < records.len() {
            let p = records[start].partition;
            let end = start + records[start..].partition_point(|r| r.partition == p);
            self.emit_partition(&records[start..end], p, ctx, out)?;
            start = end;
        }
        self.buf = records;
        if let Some(clock) = self.clock.as_mut() {
            for p in self.connector.finished_partitions() {
                clock.finish_partition(p);
            }
            if let Some(wm) = clock.advance() {
                out.emit_watermark(wm);
            }
        }
        // an idle poll moved nothing
        if fetch != Fetch::Idle {
            self.publish_positions();
        }
        Ok(match fetch {
            Fetch::Records => SourcePoll::Ready,
            Fetch::Idle if out.is_empty() => SourcePoll::Pending,
            Fetch::Idle => SourcePoll::Ready,
            Fetch::End => {
                self.ended = true;
                SourcePoll::Ready
            }
        })
    }

    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        let positions = self
            .connector
            .checkpoint()
            .map_err(|e| self.checkpoint_error(e))?;
        state.put(POSITIONS, &positions)?;
        if let Some(clock) = &self.clock {
            state.put(CLOCK, &clock.state(&self.partitions))?;
        }
        let in_history = self.history.is_some() && !self.history_done;
        state.put(IN_HISTORY, &in_history)?;
        if let Some(history) = self.history.as_mut() {
            history.snapshot(ctx, state)?;
        }
        Ok(())
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let mut positions = BTreeMap::new();
        for saved in state.values::<BTreeMap<String, Position>>(POSITIONS)? {
            positions.extend(saved);
        }
        self.connector
            .seek(&positions)
            .map_err(|e| self.checkpoint_error(e))?;
        if let Some(clock) = self.clock.as_mut() {
            let saved: Vec<ClockState> = state.values(CLOCK)?;
            clock.restore(&self.partitions, &saved, state.is_rescaled());
        }
        let in_history: Vec<bool> = state.values(IN_HISTORY)?;
        if let Some(history) = self.history.as_mut() {
            history.restore(ctx, state)?;
            // after a rescale the history reader finds out itself: it ends
            // at once if every split it now owns was read
            self.history_done = !state.is_rescaled() && in_history.iter().all(|h| !h);
        }
        Ok(())
    }
}

impl LiveSource {
    /// A connector's checkpoint error, located at this source.
    fn checkpoint_error(&self, e: Error) -> Error {
        match e {
            Error::Checkpoint { location, message } => Error::Checkpoint {
                location: format!("source `{}` ({location})", self.spec.name),
                message,
            },
            other => other,
        }
    }
}
