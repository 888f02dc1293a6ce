//! The process operator's checkpoint: the unkeyed watermarks, the
//! buffered rows and one row per key with its state and timers (layout in
//! [`KeyedProcessOperator`]'s type doc).
//!
//! May use what the parent module imports.

use super::function::describe;
use super::*;

/// Checkpoint entries: the unkeyed [`ProcessMeta`], the buffered input rows
/// and one row per key with state or timers.
pub(super) const META_ENTRY: &str = "process";

const BUFFER_ENTRY: &str = "buffered";

pub(super) const KEYS_ENTRY: &str = "keys";

/// Keys per keyed state batch of a checkpoint.
const SNAPSHOT_KEYS: usize = 4096;

/// The unkeyed part of a process operator's checkpoint.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct ProcessMeta {
    /// The event-time buffer's watermark (rows at or below it were released).
    watermark: Option<i64>,
    /// The watermark the function last saw ([`ProcessContext::watermark`]).
    function_watermark: i64,
}

/// A key's timers in a checkpoint: event time, processing time.
type KeyTimers = (Vec<i64>, Vec<i64>);

/// A key's checkpoint row: encoded key, postcard state (if any), timers.
type KeyEntry = (Vec<u8>, (Option<Vec<u8>>, KeyTimers));

impl<P: KeyedProcessFunction> KeyedProcessOperator<P> {
    /// The schema of the per-key checkpoint rows.
    pub(super) fn keys_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, false),
            Field::new("state", DataType::Binary, true),
            Field::new("timers", DataType::Binary, false),
        ]))
    }

    /// Writes the buffered rows, every key's state (in memory and in the
    /// spill log) and timers, and the watermarks.
    pub(super) fn snapshot_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.put(
            META_ENTRY,
            &ProcessMeta {
                watermark: self.buffer.watermark(),
                function_watermark: self.pctx.watermark,
            },
        )?;
        for rows in self.buffer.snapshot_rows()? {
            let groups = self.buffer.key_groups(&rows)?;
            if !groups.is_empty() {
                state.put_keyed(BUFFER_ENTRY, &rows, &groups)?;
            }
        }
        // key bytes -> (state, timers); spilled states are disjoint from
        // those in memory (loading one takes it out of the log)
        let mut keys: HashMap<Vec<u8>, (Option<Vec<u8>>, KeyTimers)> = HashMap::new();
        let ids: BTreeSet<u32> = self
            .states
            .keys()
            .chain(self.timers.keys())
            .chain(self.processing_timers.keys())
            .copied()
            .collect();
        for id in ids {
            let encoded = match self.states.get(&id) {
                Some(st) => Some(postcard::to_stdvec(st).map_err(|e| {
                    self.state_error(format!("cannot serialize a key's state: {e}"))
                })?),
                None => None,
            };
            let timers = |m: &HashMap<u32, BTreeSet<i64>, FastBuildHasher>| -> Vec<i64> {
                m.get(&id)
                    .map(|t| t.iter().copied().collect())
                    .unwrap_or_default()
            };
            keys.insert(
                self.buffer.key_bytes(id).to_vec(),
                (
                    encoded,
                    (timers(&self.timers), timers(&self.processing_timers)),
                ),
            );
        }
        if let Some(log) = &self.spilled {
            for (key, value) in log.entries()? {
                keys.entry(key).or_default().0 = Some(value);
            }
        }
        let keys: Vec<KeyEntry> = keys.into_iter().collect();
        for chunk in keys.chunks(SNAPSHOT_KEYS) {
            let mut timers = Vec::with_capacity(chunk.len());
            for (_, (_, t)) in chunk {
                timers.push(postcard::to_stdvec(t).map_err(|e| {
                    self.state_error(format!("cannot serialize a key's timers: {e}"))
                })?);
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(BinaryArray::from_iter_values(
                    chunk.iter().map(|(k, _)| k.as_slice()),
                )),
                Arc::new(BinaryArray::from_iter(
                    chunk.iter().map(|(_, (st, _))| st.as_deref()),
                )),
                Arc::new(BinaryArray::from_iter_values(timers.iter())),
            ];
            let batch = RecordBatch::try_new(Self::keys_schema(), columns)?;
            let groups: Vec<u16> = chunk
                .iter()
                .map(|(k, _)| weir_core::key::key_group(weir_core::key::stable_hash(k)) as u16)
                .collect();
            state.put_keyed(KEYS_ENTRY, &batch, &groups)?;
        }
        Ok(())
    }

    /// Restores what [`snapshot_state`](Self::snapshot_state) wrote, possibly
    /// by several old subtasks (a rescale): the keyed rows are this
    /// subtask's now; the watermarks are the highest of the old subtasks'
    /// (equal in an aligned checkpoint, where every subtask saw the same
    /// watermarks before the barrier; the window operators merge the same way). States come back into memory and
    /// spill again if the budget asks for it.
    pub(super) fn restore_state(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        let metas: Vec<ProcessMeta> = state.values(META_ENTRY)?;
        if metas.is_empty() {
            return Ok(());
        }
        let watermark = metas.iter().map(|m| m.watermark).max().flatten();
        self.buffer.restore_watermark(watermark);
        self.pctx.watermark = metas
            .iter()
            .map(|m| m.function_watermark)
            .max()
            .unwrap_or(i64::MIN);
        for rows in state.keyed(BUFFER_ENTRY)? {
            self.buffer.restore_rows(&rows, ctx)?;
            self.sync_reservation(ctx)?;
        }
        for batch in state.keyed(KEYS_ENTRY)? {
            if batch.schema().fields() != Self::keys_schema().fields() {
                return Err(self.state_error(format!(
                    "checkpoint entry `{KEYS_ENTRY}` has columns ({}), not the process operator's",
                    describe(&batch.schema())
                )));
            }
            let (keys, states, timers) = (
                batch.column(0).as_binary::<i32>(),
                batch.column(1).as_binary::<i32>(),
                batch.column(2).as_binary::<i32>(),
            );
            for r in 0..batch.num_rows() {
                let lookup = self.buffer.intern_key(keys.value(r));
                let id = lookup.id();
                if states.is_valid(r) {
                    let st: P::State = postcard::from_bytes(states.value(r)).map_err(|e| {
                        self.state_error(format!("cannot read a key's state back: {e}"))
                    })?;
                    self.states_size += self.function.state_size(&st);
                    self.states.insert(id, st);
                }
                let (event, processing): KeyTimers = postcard::from_bytes(timers.value(r))
                    .map_err(|e| {
                        self.state_error(format!("cannot read a key's timers back: {e}"))
                    })?;
                if !event.is_empty() {
                    self.timer_index.extend(event.iter().map(|&t| (t, id)));
                    self.timers.insert(id, event.into_iter().collect());
                }
                if !processing.is_empty() {
                    self.processing_index
                        .extend(processing.iter().map(|&t| (t, id)));
                    self.processing_timers
                        .insert(id, processing.into_iter().collect());
                }
                self.settle_key(id);
                self.buffer.release_key(lookup);
            }
        }
        ctx.set_processing_timer(self.processing_index.first().map(|&(t, _)| t));
        self.sync_reservation(ctx)
    }
}
