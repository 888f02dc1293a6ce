//! Spilling count windows: the per-key state of [`CountWindowAggregate`]
//! (counters, the partial states of a key's accumulators, the rows its
//! window keeps) to a [`StateLog`], read back before the key is next
//! touched. See the type's docs for the path.

use super::codec::RowCodec;
use super::{
    apply_rows, Chunk, CountWindowAggregate, Firings, KeyWindow, Mode, TriggerAction, WindowTrigger,
};
use crate::keyed_state::{self, state_error};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::key::KeyHandle;
use weir_core::operator::Output;
use weir_core::spill::SpillManager;
use weir_core::state::store::{self, SpillableState, StateLog};
use weir_core::time::event_times;
use weir_functions::aggregate::{Accumulators, BoundAgg};

/// Firings gathered while visiting spilled windows before they are emitted
/// (and the keys they pin are given back).
const FLUSH_FIRINGS: usize = 4096;

/// Bytes accounted per key fed since the last spill (set slot).
pub(super) const RECENT_BYTES: usize = 16;

/// A window on disk: what [`KeyWindow`] holds, its kept rows renumbered
/// from the window's start (as in checkpoints). Stored as
/// `postcard(Header) | accs length u32 | accs | rows`, so a watermark reads
/// the header alone.
struct SpilledWindow {
    header: Header,
    /// Incremental mode: the partial states of the key's accumulators, one
    /// encoded row.
    accs: Vec<u8>,
    /// Row modes: the kept rows from the window's start, oldest first
    /// (framed, see [`RowCodec::encode_framed`]).
    rows: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    count: u64,
    first_time: i64,
    last_time: i64,
    since_fire: u64,
    /// Rows kept (row modes).
    kept: u64,
}

/// How spilled windows are encoded: kept rows with the input's schema,
/// partial states with the accumulators' state layout.
#[derive(Debug)]
pub(super) struct Codecs {
    rows: RowCodec,
    accs: RowCodec,
    acc_schema: SchemaRef,
}

impl Codecs {
    pub(super) fn new(input: SchemaRef, aggs: &[BoundAgg]) -> Self {
        let acc_schema = keyed_state::layout(Vec::new(), aggs);
        Codecs {
            rows: RowCodec::new(input),
            accs: RowCodec::new(acc_schema.clone()),
            acc_schema,
        }
    }
}

/// The state of a spilled window as checkpoints write it.
pub(super) struct SpilledEntry {
    pub(super) key: Vec<u8>,
    pub(super) count: u64,
    pub(super) first_time: i64,
    pub(super) last_time: i64,
    pub(super) since_fire: u64,
    /// Incremental mode: the encoded partial states (see [`Codecs`]).
    accs: Vec<u8>,
    /// Row modes: the kept rows, oldest first (`None`: no row).
    pub(super) rows: Option<RecordBatch>,
}

impl CountWindowAggregate {
    /// The name spilled state and its errors go by: `count_window[0]`.
    fn spill_name(&self) -> String {
        self.reservation.consumer().to_string()
    }

    fn incremental(&self) -> bool {
        matches!(self.mode, Mode::Incremental { .. })
    }

    /// Encodes `w` (its accumulators' partial states already encoded in
    /// `accs`, incremental mode).
    fn encode_window(&self, w: &KeyWindow, accs: Vec<u8>, name: &str) -> Result<Vec<u8>> {
        let mut rows = Vec::new();
        let mut kept = 0;
        let mut chunk_first = w.base;
        for c in &w.chunks {
            let skip = w.start.saturating_sub(chunk_first).min(c.len()) as usize;
            chunk_first += c.len();
            let n = c.times.len() - skip;
            if n == 0 {
                continue;
            }
            let slice = c.batch.slice(skip, n);
            self.codecs
                .rows
                .encode_framed(slice.columns(), &mut rows, name)?;
            kept += n as u64;
        }
        let header = Header {
            count: w.count,
            first_time: w.first_time,
            last_time: w.last_time,
            since_fire: w.since_fire,
            kept,
        };
        let mut out = postcard::to_stdvec(&header)
            .map_err(|e| state_error(name, format!("cannot encode a window to spill it: {e}")))?;
        let accs_len = u32::try_from(accs.len()).map_err(|_| {
            state_error(name, "a key's partial states of 4 GiB or more cannot spill")
        })?;
        out.reserve(4 + accs.len() + rows.len());
        out.extend_from_slice(&accs_len.to_le_bytes());
        out.extend_from_slice(&accs);
        out.extend_from_slice(&rows);
        Ok(out)
    }

    /// The encoded partial states of `slots`, one item per slot.
    fn encode_accs(&self, slots: &[u32], name: &str) -> Result<Vec<Vec<u8>>> {
        if !self.incremental() || slots.is_empty() {
            return Ok(vec![Vec::new(); slots.len()]);
        }
        let columns = keyed_state::acc_columns(&self.accs, slots)?;
        self.codecs.accs.encode_each(&columns, name)
    }

    /// A window of `key` (a valid id) from its spilled form, holding the
    /// key (and, incremental, a slot with its partial states).
    fn decode_window(&mut self, key: u32, s: SpilledWindow, name: &str) -> Result<KeyWindow> {
        let mut w = self.new_window(key);
        w.count = s.header.count;
        w.first_time = s.header.first_time;
        w.last_time = s.header.last_time;
        w.since_fire = s.header.since_fire;
        if self.incremental() && !s.accs.is_empty() {
            let columns = self.codecs.accs.decode(&[&s.accs], name)?;
            let batch = RecordBatch::try_new(self.codecs.acc_schema.clone(), columns)?;
            keyed_state::merge_acc_columns(&mut self.accs, &self.aggs, &[w.slot], &batch, 0)?;
        }
        if let Some(rows) = self.decode_rows(&s.rows, name)? {
            let times = event_times(&rows, self.buffer.time_column(), name)?.to_vec();
            let chunk = Chunk::new(rows, times, &self.aggs)?;
            w.bytes = chunk.bytes;
            w.chunks.push_back(chunk);
        }
        Ok(w)
    }

    fn decode_rows(&self, blob: &[u8], name: &str) -> Result<Option<RecordBatch>> {
        if blob.is_empty() {
            return Ok(None);
        }
        let items = RowCodec::frames(blob, name)?;
        let columns = self.codecs.rows.decode(&items, name)?;
        Ok(Some(RecordBatch::try_new(self.input.clone(), columns)?))
    }

    /// Writes windows to the log and drops them from memory, giving their
    /// keys and slots back: all of them, or (`cold_only`) those of keys not
    /// fed since the last spill.
    pub(super) fn spill_windows(
        &mut self,
        spill: &Arc<SpillManager>,
        cold_only: bool,
    ) -> Result<()> {
        let recent = std::mem::take(&mut self.recent);
        let name = self.spill_name();
        let mut ids: Vec<u32> = self
            .windows
            .keys()
            .filter(|k| !(cold_only && recent.contains(k)))
            .copied()
            .collect();
        ids.sort_unstable();
        let slots: Vec<u32> = ids.iter().map(|id| self.windows[id].slot).collect();
        let accs = self.encode_accs(&slots, &name)?;
        let mut encoded = Vec::with_capacity(ids.len());
        for (id, accs) in ids.iter().zip(accs) {
            encoded.push(self.encode_window(&self.windows[id], accs, &name)?);
        }
        let log = self
            .spilled
            .get_or_insert_with(|| StateLog::new(spill, name));
        log.append(
            ids.iter()
                .zip(&encoded)
                .map(|(id, v)| (self.buffer.key_bytes(*id), v.as_slice())),
        )?;
        drop(encoded);
        let mut release = Vec::with_capacity(ids.len());
        for id in ids {
            let w = self.windows.remove(&id).expect("listed from the map");
            release.push(self.drop_window(w));
        }
        self.buffer.release_keys(release);
        self.compact_slots()?;
        if self.windows.capacity() > 4 * self.windows.len() + 64 {
            self.windows.shrink_to_fit();
        }
        Ok(())
    }

    /// Forgets a window taken out of the map: its bytes and slot; returns
    /// its hold on the key.
    fn drop_window(&mut self, mut w: KeyWindow) -> KeyHandle {
        self.kept_bytes -= w.bytes;
        if self.incremental() {
            for a in &mut self.accs {
                a.reset(w.slot);
            }
            self.free_slots.push(w.slot);
        }
        w.key.take().expect("a kept window holds its key")
    }

    /// Renumbers the slots of the windows in memory from 0 when most slots
    /// are free, so the accumulators' vectors shrink with what they hold.
    fn compact_slots(&mut self) -> Result<()> {
        let total = self.accs.first().map_or(0, Accumulators::len);
        if !self.incremental() || self.free_slots.len() * 2 <= total {
            return Ok(());
        }
        let mut ids: Vec<u32> = self.windows.keys().copied().collect();
        ids.sort_unstable();
        let old: Vec<u32> = ids.iter().map(|id| self.windows[id].slot).collect();
        let new: Vec<u32> = (0..ids.len() as u32).collect();
        let mut accs: Vec<Accumulators> = self.aggs.iter().map(Accumulators::new).collect();
        for (into, from) in accs.iter_mut().zip(&self.accs) {
            into.resize(ids.len());
            into.merge_state(&new, &from.to_state(&old)?)?;
        }
        for (id, slot) in ids.iter().zip(new) {
            self.windows.get_mut(id).expect("listed from the map").slot = slot;
        }
        self.accs = accs;
        self.free_slots = Vec::new();
        Ok(())
    }

    /// Brings `key`'s window back from the log, if it was spilled.
    pub(super) fn load_window(&mut self, key: u32) -> Result<()> {
        let Some(log) = self.spilled.as_mut() else {
            return Ok(());
        };
        if log.is_empty() || self.windows.contains_key(&key) {
            return Ok(());
        }
        let Some(bytes) = log.take(self.buffer.key_bytes(key))? else {
            return Ok(());
        };
        let name = self.spill_name();
        let w = self.decode_window(key, decode(&bytes, &name)?, &name)?;
        self.kept_bytes += w.bytes;
        self.windows.insert(key, w);
        Ok(())
    }

    /// While rows are fed (the buffer's rows cannot move then): once the
    /// state grew a read-back step past its reservation, spills windows,
    /// coldest first, while the pool refuses what the state grew to. What
    /// is still over is settled by the sync at the step's end.
    pub(super) fn relieve(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        let slack = store::step_bytes(self.read_back.pool());
        loop {
            let bytes = self.memory_bytes();
            let held = self.reservation.size();
            if bytes <= held + slack || self.reservation.try_grow(bytes - held).is_ok() {
                return Ok(());
            }
            if self.windows.is_empty() {
                return Ok(());
            }
            let cold = self.windows.keys().any(|k| !self.recent.contains(k));
            self.spill_windows(spill, cold && !self.recent.is_empty())?;
            let after = self.memory_bytes();
            spill.metrics().record_state_spilled_by(
                self.reservation.consumer(),
                bytes.saturating_sub(after) as u64,
            );
        }
    }

    /// Calls the trigger's `on_watermark` for every spilled window: the log
    /// is read in steps (in key order, each held in the read-back
    /// reservation); a window the trigger acts on is taken out, changed,
    /// and written back unless it emptied. Nothing spills meanwhile, so
    /// no window is visited twice.
    pub(super) fn spilled_watermark_triggers(
        &mut self,
        trigger: &Arc<dyn WindowTrigger>,
        wm: i64,
        fired: &mut Firings,
        release: &mut Vec<KeyHandle>,
        out: &mut Output,
    ) -> Result<()> {
        let name = self.spill_name();
        let step = store::step_bytes(self.read_back.pool());
        let mut after: Option<Vec<u8>> = None;
        loop {
            let Some(log) = &self.spilled else {
                return Ok(());
            };
            let entries = log.entries_after(after.as_deref(), step)?;
            let Some((last, _)) = entries.last() else {
                self.read_back.free();
                return Ok(());
            };
            after = Some(last.clone());
            let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
            let held = self.read_back.size();
            store::reserve_step(&mut self.read_back, bytes.saturating_sub(held));
            let mut back: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for (key, value) in entries {
                let header = decode_header(&value, &name)?.0;
                let n = match self.mode {
                    Mode::Incremental { .. } => header.count,
                    _ => header.kept,
                };
                if n == 0 {
                    continue;
                }
                let action = trigger.on_watermark(n, wm);
                if action == TriggerAction::Continue {
                    continue;
                }
                if let Some(log) = self.spilled.as_mut() {
                    log.take(&key)?;
                }
                let lookup = self.buffer.intern_key(&key);
                let id = lookup.id();
                // pinned until the firings are emitted
                release.push(lookup);
                let mut w = self.decode_window(id, decode(&value, &name)?, &name)?;
                let end = w.end();
                match self.mode {
                    Mode::Incremental { .. } => {
                        self.apply_incremental(id, &mut w, action, fired)?
                    }
                    Mode::Evicting { keep, .. } => {
                        apply_rows(&mut w, id, end, action, keep, &self.aggs, fired)?;
                        w.trim(&self.aggs, &self.input)?;
                    }
                    Mode::Sliding { .. } => {}
                }
                let empty = match self.mode {
                    Mode::Incremental { .. } => w.count == 0,
                    _ => w.start == w.end(),
                };
                if !empty {
                    let accs = self.encode_accs(&[w.slot], &name)?;
                    let accs = accs.into_iter().next().unwrap_or_default();
                    back.push((key, self.encode_window(&w, accs, &name)?));
                }
                self.kept_bytes += w.bytes;
                let handle = self.drop_window(w);
                self.buffer.release_key(handle);
            }
            if let Some(log) = self.spilled.as_mut() {
                log.append(back.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
            }
            if fired.keys.len() >= FLUSH_FIRINGS {
                self.flush(fired, release, out)?;
            }
        }
    }

    /// Emits the firings so far and gives back the keys they pinned.
    pub(super) fn flush(
        &mut self,
        fired: &mut Firings,
        release: &mut Vec<KeyHandle>,
        out: &mut Output,
    ) -> Result<()> {
        let emitted = self.build_output(fired);
        self.buffer.release_keys(std::mem::take(release));
        *fired = Firings::new(&self.aggs);
        if let Some(batch) = emitted? {
            out.emit(batch);
        }
        Ok(())
    }

    /// Every spilled window, for a checkpoint (the log is left as it is).
    pub(super) fn spilled_entries(&self) -> Result<Vec<SpilledEntry>> {
        let Some(log) = &self.spilled else {
            return Ok(Vec::new());
        };
        let name = self.spill_name();
        let mut out = Vec::with_capacity(log.len());
        for (key, value) in log.entries()? {
            let s = decode(&value, &name)?;
            out.push(SpilledEntry {
                key,
                count: s.header.count,
                first_time: s.header.first_time,
                last_time: s.header.last_time,
                since_fire: s.header.since_fire,
                rows: self.decode_rows(&s.rows, &name)?,
                accs: s.accs,
            });
        }
        Ok(out)
    }

    /// The partial-state columns of `entries` (incremental mode), laid out
    /// as in the checkpoint's keys entry.
    pub(super) fn spilled_acc_columns(&self, entries: &[SpilledEntry]) -> Result<Vec<ArrayRef>> {
        let name = self.spill_name();
        if entries.is_empty() {
            let empty = RecordBatch::new_empty(Arc::new(Schema::new(
                self.codecs.acc_schema.fields().clone(),
            )));
            return Ok(empty.columns().to_vec());
        }
        let items: Vec<&[u8]> = entries.iter().map(|e| e.accs.as_slice()).collect();
        self.codecs.accs.decode(&items, &name)
    }
}

/// The header of a spilled window, and the bytes after it.
fn decode_header<'a>(bytes: &'a [u8], name: &str) -> Result<(Header, &'a [u8])> {
    postcard::take_from_bytes(bytes)
        .map_err(|e| state_error(name, format!("cannot read a spilled window back: {e}")))
}

fn decode(bytes: &[u8], name: &str) -> Result<SpilledWindow> {
    let (header, rest) = decode_header(bytes, name)?;
    let cut = || state_error(name, "a spilled window is cut short");
    let len = rest
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(cut)?;
    let accs = rest.get(4..4 + len).ok_or_else(cut)?;
    Ok(SpilledWindow {
        header,
        accs: accs.to_vec(),
        rows: rest[4 + len..].to_vec(),
    })
}

/// Spilling writes the rows waiting in the buffer first, then the windows
/// of keys not fed since the last spill (second chance), then, if the pool
/// still refuses, every window.
impl SpillableState for CountWindowAggregate {
    fn memory_bytes(&self) -> usize {
        self.state_bytes() + self.buffer.settled_bytes()
    }

    fn can_spill(&self) -> bool {
        self.buffer.can_spill()
            || !self.windows.is_empty()
            || self.spilled.as_ref().is_some_and(StateLog::has_taken)
    }

    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        if self.buffer.can_spill() {
            let name = self.spill_name();
            return self.buffer.spill_rows(spill, &name);
        }
        let cold = self.windows.keys().any(|k| !self.recent.contains(k));
        self.spill_windows(spill, cold && !self.recent.is_empty())?;
        // the keys of spilled windows left the buffer's dictionary
        self.buffer.settle();
        Ok(())
    }

    fn reservation(&mut self) -> &mut weir_core::memory::MemoryReservation {
        &mut self.reservation
    }
}
