//! Keyed state over the memory budget: states of cold keys go to a
//! [`StateLog`] and come back when their key runs; the [`SpillableState`]
//! impl the pool drives.
//!
//! May use what the parent module imports.

use super::*;

impl<P: KeyedProcessFunction> KeyedProcessOperator<P> {
    pub(super) fn state_bytes(&self) -> usize {
        self.timer_index.len() * TIMER_BYTES
            + self.states.len() * KEY_STATE_BYTES
            + self.states_size
            + self.spilled.as_ref().map_or(0, StateLog::memory_size)
    }

    /// Matches the reservation to the state, spilling states while the
    /// pool refuses (see [`store::sync`] and the [`SpillableState`] impl).
    pub(super) fn sync_reservation(&mut self, ctx: &Ctx) -> Result<()> {
        // rows the buffer read back and did not release yet become state
        self.buffer.settle();
        store::sync(self, ctx.spill())
    }

    /// Writes in-memory states to the log and drops them from memory: all
    /// of them, or (`cold_only`) those of keys not run since the last spill.
    pub(super) fn spill_states(
        &mut self,
        spill: &Arc<SpillManager>,
        cold_only: bool,
    ) -> Result<()> {
        let recent = std::mem::take(&mut self.recent);
        let log = self
            .spilled
            .get_or_insert_with(|| StateLog::new(spill, &self.pctx.operator));
        let mut encoded: Vec<(u32, Vec<u8>)> = Vec::with_capacity(self.states.len());
        for (&key, state) in &self.states {
            if cold_only && recent.contains(&key) {
                continue;
            }
            let bytes = postcard::to_stdvec(state).map_err(|e| Error::State {
                operator: self.pctx.operator.clone(),
                message: format!("cannot serialize a key's state to spill it: {e}"),
            })?;
            encoded.push((key, bytes));
        }
        log.append(
            encoded
                .iter()
                .map(|(key, bytes)| (self.buffer.key_bytes(*key), bytes.as_slice())),
        )?;
        let keys: Vec<u32> = encoded.iter().map(|(k, _)| *k).collect();
        for key in &keys {
            let state = self.states.remove(key).expect("encoded from the map");
            self.states_size -= self.function.state_size(&state);
        }
        for key in keys {
            // the key is still held if it has timers
            self.settle_key(key);
        }
        Ok(())
    }

    /// Brings `key`'s state back from the log, if it was spilled.
    pub(super) fn load_state(&mut self, key: u32) -> Result<()> {
        let Some(log) = self.spilled.as_mut() else {
            return Ok(());
        };
        if log.is_empty() || self.states.contains_key(&key) {
            return Ok(());
        }
        let Some(bytes) = log.take(self.buffer.key_bytes(key))? else {
            return Ok(());
        };
        let state: P::State = postcard::from_bytes(&bytes).map_err(|e| Error::State {
            operator: self.pctx.operator.clone(),
            message: format!("cannot read a spilled state back: {e}"),
        })?;
        self.states_size += self.function.state_size(&state);
        self.states.insert(key, state);
        self.settle_key(key);
        Ok(())
    }
}

/// Spilling writes the rows waiting in the buffer first, then the states of
/// keys not run since the last spill (second chance), then, if the pool
/// still refuses, every state.
impl<P: KeyedProcessFunction> SpillableState for KeyedProcessOperator<P> {
    fn memory_bytes(&self) -> usize {
        self.state_bytes() + self.buffer.settled_bytes()
    }

    fn can_spill(&self) -> bool {
        !self.states.is_empty()
            || self.buffer.can_spill()
            || self.spilled.as_ref().is_some_and(StateLog::has_taken)
    }

    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        if self.buffer.can_spill() {
            let name = self.reservation.consumer().to_string();
            return self.buffer.spill_rows(spill, &name);
        }
        let cold = self.states.keys().any(|k| !self.recent.contains(k));
        self.spill_states(spill, cold && !self.recent.is_empty())?;
        // the keys of spilled states left the buffer's dictionary
        self.buffer.settle();
        Ok(())
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}
