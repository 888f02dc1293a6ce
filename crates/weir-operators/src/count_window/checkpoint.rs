//! Checkpoints of the count-window operator: what [`CountWindowAggregate`] writes and reads back.

use super::*;

/// Entry names of the state (see [`CountWindowAggregate::write_state`]).
const BUFFER: &str = "count_window.buffer";
const BUFFER_WATERMARK: &str = "count_window.buffer.watermark";
const KEYS: &str = "count_window.keys";
const ROWS: &str = "count_window.rows";
/// The key column prepended to kept rows in [`ROWS`].
const ROW_KEY: &str = "__weir_count_window_key";

impl CountWindowAggregate {
    /// The layout of [`KEYS`]: one row per key with a window; the partial
    /// states only in incremental mode.
    fn keys_layout(&self) -> SchemaRef {
        let fixed = vec![
            Field::new("key", DataType::Binary, false),
            Field::new("count", DataType::UInt64, false),
            Field::new("first_time", DataType::Int64, false),
            Field::new("last_time", DataType::Int64, false),
            Field::new("since_fire", DataType::UInt64, false),
        ];
        match self.mode {
            Mode::Incremental { .. } => keyed_state::layout(fixed, &self.aggs),
            _ => Arc::new(Schema::new(fixed)),
        }
    }

    /// The layout of [`ROWS`]: the key, then the input columns.
    fn rows_layout(&self) -> SchemaRef {
        let mut fields = vec![Arc::new(Field::new(ROW_KEY, DataType::Binary, false))];
        fields.extend(self.input.fields().iter().cloned());
        Arc::new(Schema::new(fields))
    }

    /// Writes the state:
    ///
    /// ```text
    ///  count_window.buffer      rows waiting for the watermark (EventTimeBuffer::snapshot_rows),
    ///                           keyed; its watermark in count_window.buffer.watermark
    ///  count_window.keys        key | count, first/last time (incremental) | since_fire
    ///                           (sliding) [| partial states (incremental)]
    ///  count_window.rows        key | input columns: the rows a window keeps (sliding,
    ///                           evicting), from the window's start, oldest first
    /// ```
    /// Kept rows are renumbered from 0 on restore: only distances between
    /// the window's start and end matter.
    pub(super) fn write_state(&self, state: &mut StateWriter) -> Result<()> {
        state.put(BUFFER_WATERMARK, &self.buffer.watermark())?;
        for rows in self.buffer.snapshot_rows()? {
            let groups = self.buffer.key_groups(&rows)?;
            state.put_keyed(BUFFER, &rows, &groups)?;
        }
        let mut ids: Vec<u32> = self.windows.keys().copied().collect();
        ids.sort_unstable();
        let incremental = matches!(self.mode, Mode::Incremental { .. });
        for chunk in ids.chunks(8192) {
            let windows: Vec<&KeyWindow> = chunk.iter().map(|id| &self.windows[id]).collect();
            let keys =
                BinaryArray::from_iter_values(chunk.iter().map(|&id| self.buffer.key_bytes(id)));
            let groups = key_groups(keys.iter().flatten());
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(keys),
                Arc::new(UInt64Array::from_iter_values(
                    windows.iter().map(|w| w.count),
                )),
                Arc::new(Int64Array::from_iter_values(
                    windows.iter().map(|w| w.first_time),
                )),
                Arc::new(Int64Array::from_iter_values(
                    windows.iter().map(|w| w.last_time),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    windows.iter().map(|w| w.since_fire),
                )),
            ];
            if incremental {
                let slots: Vec<u32> = windows.iter().map(|w| w.slot).collect();
                columns.extend(keyed_state::acc_columns(&self.accs, &slots)?);
            }
            state.put_keyed(
                KEYS,
                &RecordBatch::try_new(self.keys_layout(), columns)?,
                &groups,
            )?;
        }
        self.write_spilled(state)?;
        if incremental {
            return Ok(());
        }
        let layout = self.rows_layout();
        for &id in &ids {
            let w = &self.windows[&id];
            let key = self.buffer.key_bytes(id);
            let kg = key_groups([key])[0];
            let mut chunk_first = w.base;
            for c in &w.chunks {
                let skip = w.start.saturating_sub(chunk_first).min(c.len()) as usize;
                chunk_first += c.len();
                let n = c.times.len() - skip;
                if n == 0 {
                    continue;
                }
                let rows = c.batch.slice(skip, n);
                let mut columns: Vec<ArrayRef> = vec![Arc::new(BinaryArray::from_iter_values(
                    std::iter::repeat_n(key, n),
                ))];
                columns.extend(rows.columns().iter().cloned());
                state.put_keyed(
                    ROWS,
                    &RecordBatch::try_new(layout.clone(), columns)?,
                    &vec![kg; n],
                )?;
            }
        }
        Ok(())
    }

    /// Writes the spilled windows as [`write_state`](Self::write_state)
    /// writes those in memory (a key is in one place or the other: loading
    /// a window takes it out of the log).
    fn write_spilled(&self, state: &mut StateWriter) -> Result<()> {
        let entries = self.spilled_entries()?;
        let incremental = matches!(self.mode, Mode::Incremental { .. });
        for chunk in entries.chunks(8192) {
            let keys = BinaryArray::from_iter_values(chunk.iter().map(|e| e.key.as_slice()));
            let groups = key_groups(keys.iter().flatten());
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(keys),
                Arc::new(UInt64Array::from_iter_values(chunk.iter().map(|e| e.count))),
                Arc::new(Int64Array::from_iter_values(
                    chunk.iter().map(|e| e.first_time),
                )),
                Arc::new(Int64Array::from_iter_values(
                    chunk.iter().map(|e| e.last_time),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    chunk.iter().map(|e| e.since_fire),
                )),
            ];
            if incremental {
                columns.extend(self.spilled_acc_columns(chunk)?);
            }
            state.put_keyed(
                KEYS,
                &RecordBatch::try_new(self.keys_layout(), columns)?,
                &groups,
            )?;
        }
        let layout = self.rows_layout();
        for e in &entries {
            let Some(rows) = &e.rows else { continue };
            let n = rows.num_rows();
            let mut columns: Vec<ArrayRef> = vec![Arc::new(BinaryArray::from_iter_values(
                std::iter::repeat_n(e.key.as_slice(), n),
            ))];
            columns.extend(rows.columns().iter().cloned());
            let kg = key_groups([e.key.as_slice()])[0];
            state.put_keyed(
                ROWS,
                &RecordBatch::try_new(layout.clone(), columns)?,
                &vec![kg; n],
            )?;
        }
        Ok(())
    }

    /// Reads the state of the keys this subtask owns into a fresh instance;
    /// windows spill as they come in, over budget.
    pub(super) fn read_state(&mut self, state: &StateReader, ctx: &Ctx) -> Result<()> {
        let operator = ctx.operator();
        // every old subtask saw the same watermarks: the highest is the one reached
        let watermarks = state.values::<Option<i64>>(BUFFER_WATERMARK)?;
        self.buffer
            .restore_watermark(keyed_state::max_watermark(watermarks));
        for rows in state.keyed(BUFFER)? {
            check_layout(&rows, self.buffer.schema(), BUFFER, operator)?;
            self.buffer.restore_rows(&rows, ctx)?;
            self.sync_reservation(ctx)?;
        }
        let layout = self.keys_layout();
        let incremental = matches!(self.mode, Mode::Incremental { .. });
        for batch in state.keyed(KEYS)? {
            check_layout(&batch, &layout, KEYS, operator)?;
            let keys = column::<BinaryArray>(&batch, "key", KEYS, operator)?;
            let count = column::<UInt64Array>(&batch, "count", KEYS, operator)?;
            let first = column::<Int64Array>(&batch, "first_time", KEYS, operator)?;
            let last = column::<Int64Array>(&batch, "last_time", KEYS, operator)?;
            let since = column::<UInt64Array>(&batch, "since_fire", KEYS, operator)?;
            let mut slots = Vec::with_capacity(batch.num_rows());
            for r in 0..batch.num_rows() {
                let lookup = self.buffer.intern_key(keys.value(r));
                let id = lookup.id();
                if self.windows.contains_key(&id) {
                    self.buffer.release_key(lookup);
                    return Err(keyed_state::state_error(
                        operator,
                        format!("`{KEYS}` holds a key twice"),
                    ));
                }
                let mut w = self.new_window(id);
                // new_window took the window's hold on the key
                self.buffer.release_key(lookup);
                w.count = count.value(r);
                w.first_time = first.value(r);
                w.last_time = last.value(r);
                w.since_fire = since.value(r);
                slots.push(w.slot);
                self.windows.insert(id, w);
            }
            if incremental {
                keyed_state::merge_acc_columns(&mut self.accs, &self.aggs, &slots, &batch, 5)?;
            }
            self.sync_reservation(ctx)?;
        }
        let layout = self.rows_layout();
        for batch in state.keyed(ROWS)? {
            check_layout(&batch, &layout, ROWS, operator)?;
            let keys = column::<BinaryArray>(&batch, ROW_KEY, ROWS, operator)?;
            let mut r = 0;
            while r < batch.num_rows() {
                let mut end = r + 1;
                while end < batch.num_rows() && keys.value(end) == keys.value(r) {
                    end += 1;
                }
                let lookup = self.buffer.intern_key(keys.value(r));
                let id = lookup.id();
                // a window spilled since its keys entry came back (holding the key)
                let loaded = self.load_window(id);
                // the window holds the key (checked below): give the lookup's hold back
                self.buffer.release_key(lookup);
                loaded?;
                let rows = batch.slice(r, end - r);
                let mut rows = rows.project(&(1..rows.num_columns()).collect::<Vec<_>>())?;
                rows = RecordBatch::try_new(self.input.clone(), rows.columns().to_vec())?;
                let times = event_times(&rows, self.buffer.time_column(), operator)?.to_vec();
                let chunk = Chunk::new(rows, times, &self.aggs)?;
                let w = self.windows.get_mut(&id).ok_or_else(|| {
                    keyed_state::state_error(
                        operator,
                        format!("`{ROWS}` holds rows of a key without a window"),
                    )
                })?;
                w.bytes += chunk.bytes;
                self.kept_bytes += chunk.bytes;
                w.chunks.push_back(chunk);
                r = end;
            }
            self.sync_reservation(ctx)?;
        }
        Ok(())
    }
}
