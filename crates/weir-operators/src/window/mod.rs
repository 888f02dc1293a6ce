//! Keyed (or global) event-time window aggregation over panes: tumbling,
//! sliding and cumulative windows, with allowed lateness and updates.

use weir_functions::aggregate::{Accumulators, Agg, BoundAgg};
mod checkpoint;
#[cfg(test)]
mod checkpoint_tests;
mod spill;

pub(crate) use spill::{merge_run_rows, SpilledPanes};

use crate::keyed_state;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{FastBuildHasher, HeldKeys, KeyDictionary, KeyEncoder, KeyHandle};
use weir_core::memory::{ConsumerKind, MemoryReservation};
use weir_core::message::Watermark;
use weir_core::operator::{Ctx, Operator, OperatorMetrics, Output};
use weir_core::spill::SpillManager;
use weir_core::state::store::{self, SpillableState};
use weir_core::state::{StateReader, StateWriter};
use weir_core::time::{event_times, validate_time_column, Window};

/// The name of the changelog column windows add when they can emit updates.
pub const OP_COLUMN: &str = "op";

/// Results before a window closes (Flink's early-firing triggers).
///
/// In *accumulate* mode every firing emits the window's running result
/// (`op` = `insert` the first time, `update` after), so the last row per
/// key and window is the final result. In *purge* mode (tumbling windows
/// only) every firing emits only the rows since the previous one, all as
/// `insert`: a sink adds the deltas up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EarlyFiring {
    /// Fire a key's window every time it received this many more rows.
    pub every_rows: Option<u64>,
    /// Fire windows with new rows every interval of processing time (pipelined runs).
    pub every_ms: Option<i64>,
    /// Purge after each firing instead of accumulating.
    pub purge: bool,
}

/// What a window operator computes.
#[derive(Debug, Clone)]
pub struct WindowConfig {
    /// The event-time column; `None` for processing-time windows (rows
    /// belong to the window of the wall-clock time they arrive at; windows
    /// fire on processing-time timers in pipelined runs, and at end of input
    /// in batch runs).
    pub time_column: Option<String>,
    /// Key columns (empty: one global group).
    pub keys: Vec<String>,
    /// The windows (not sessions: see the session operator).
    pub window: Window,
    /// Allowed lateness of the input stream, in ms.
    pub lateness_ms: i64,
    /// The aggregates.
    pub aggs: Vec<Agg>,
    /// Results before the windows close.
    pub early: Option<EarlyFiring>,
}

/// Window aggregation: rows update one pane each; a window's result is the
/// merge of its panes when the watermark passes its end.
///
/// ```text
///  row ──pane_of(t)──► pane[start] : key id ──► group slot ──► accumulators (partial aggregates)
///  watermark w ──► every window (end, start) with end - 1 <= w not fired yet, in end order:
///                  merge panes [start, end) per key ──► key | window_start | window_end | aggs [| op]
///              ──► windows with end - 1 + lateness <= w are done; panes no window needs are dropped
///  a late row (admitted by the source's allowed lateness) for a fired window ──►
///                  that window is re-emitted for that key at once, op = "update"
/// ```
/// With lateness 0 every window fires exactly once and the output has no
/// `op` column. State (panes and the key dictionary) is reserved from the
/// memory pool. A row whose every window is already done is counted in
/// `late_rows` and dropped (the sources' lateness rule makes that impossible
/// in a correctly built job; the counter guards it).
pub struct WindowAggregate {
    // config
    window: Window,
    lateness_ms: i64,
    /// The event-time column; `None` for processing-time windows.
    time_column: Option<usize>,
    keys: Option<KeyEncoder>,
    aggs: Vec<BoundAgg>,
    schema: SchemaRef,
    emit_op: bool,
    early: Option<EarlyFiring>,
    // state
    dictionary: KeyDictionary,
    panes: BTreeMap<i64, Pane>,
    /// Keys already emitted per window (their next row is an `update`).
    emitted: BTreeMap<(i64, i64), HeldKeys>,
    /// Rows per key since the last early firing, per open window.
    early_counts: BTreeMap<(i64, i64), EarlyCounts>,
    /// Keys with new rows since the last early firing, per open window.
    early_pending: BTreeMap<(i64, i64), HeldKeys>,
    /// Processing time of the next interval firing.
    early_tick: Option<i64>,
    /// Windows holding data that are not done yet: `(end, start) -> fired`.
    windows: BTreeMap<(i64, i64), bool>,
    /// Fired windows that received late rows, with the keys to re-emit.
    dirty: BTreeMap<(i64, i64), HeldKeys>,
    watermark: Option<i64>,
    last_groups: usize,
    // resources
    /// Panes and key dictionary (spillable; made by `open`).
    reservation: MemoryReservation,
    /// Spilled panes read back to fire, until they are dropped (fixed).
    read_back: MemoryReservation,
    spilled: spill::SpilledPanes,
}

/// Partial aggregates of one pane: key id -> group slot. The pane holds
/// each of its keys (`key_ids[slot]`). Also the state of one window of
/// [`super::window_group::WindowGroupAggregate`].
pub(crate) struct Pane {
    groups: HashMap<u32, u32, FastBuildHasher>,
    pub(crate) key_ids: Vec<KeyHandle>,
    pub(crate) accs: Vec<Accumulators>,
}

/// Rows per key since the last early firing of one window, each key held
/// while counted.
#[derive(Default)]
struct EarlyCounts {
    held: HeldKeys,
    counts: HashMap<u32, u64, FastBuildHasher>,
}

/// Adds `id` (held elsewhere right now) to the held set of `window` in `sets`.
fn hold_in(
    sets: &mut BTreeMap<(i64, i64), HeldKeys>,
    window: (i64, i64),
    dictionary: &mut KeyDictionary,
    ids: impl IntoIterator<Item = u32>,
) {
    let set = sets.entry(window).or_default();
    for id in ids {
        set.insert(dictionary, id);
    }
}

impl Pane {
    /// An empty pane for `aggs`, with room for `groups` keys.
    pub(crate) fn new(aggs: &[BoundAgg], groups: usize) -> Self {
        Pane {
            groups: HashMap::with_capacity_and_hasher(groups, FastBuildHasher::default()),
            key_ids: Vec::with_capacity(groups),
            accs: aggs.iter().map(Accumulators::new).collect(),
        }
    }

    /// The slot of key `id` (interned in `dictionary`), added and held if new.
    pub(crate) fn slot(&mut self, dictionary: &mut KeyDictionary, id: u32) -> u32 {
        let next = self.key_ids.len() as u32;
        *self.groups.entry(id).or_insert_with(|| {
            self.key_ids.push(dictionary.hold(id));
            next
        })
    }

    /// Bytes the pane's keys and partial states take.
    pub(crate) fn memory_size(&self) -> usize {
        self.key_ids.len() * 24
            + self
                .accs
                .iter()
                .map(Accumulators::memory_size)
                .sum::<usize>()
    }
}

impl WindowAggregate {
    /// The output schema for `window` over `input` keyed by `keys` (empty: one global group).
    pub fn output_schema(
        input: &Schema,
        keys: &[String],
        aggs: &[Agg],
        emit_op: bool,
        context: &str,
    ) -> Result<SchemaRef> {
        let window = [
            Field::new("window_start", DataType::Int64, false),
            Field::new("window_end", DataType::Int64, false),
        ];
        result_schema(input, keys, &window, aggs, emit_op, context)
    }

    /// A window operator over `input`; validates every column and option.
    /// `lateness_ms` is the allowed lateness of the input stream.
    pub fn try_new(input: &Schema, config: &WindowConfig, context: &str) -> Result<Self> {
        let WindowConfig {
            time_column,
            keys,
            window,
            lateness_ms,
            aggs,
            early,
        } = config;
        let (window, lateness_ms, early) = (*window, *lateness_ms, *early);
        window.validate()?;
        if let Some(e) = early {
            if e.every_rows.is_none() && e.every_ms.is_none() {
                return Err(Error::option(
                    "trigger",
                    "an early firing needs `every_rows` or `every`",
                ));
            }
            if e.every_rows == Some(0) || e.every_ms.is_some_and(|m| m <= 0) {
                return Err(Error::option(
                    "trigger",
                    "early firing intervals must be greater than 0",
                ));
            }
            if e.purge && !matches!(window, Window::Tumbling { .. }) {
                return Err(Error::option(
                    "trigger.purge",
                    "purging is only defined for tumbling windows (sliding and cumulative windows share panes)",
                ));
            }
        }
        if window.is_session() {
            return Err(Error::Plan(
                "session windows use the session operator".into(),
            ));
        }
        if aggs.is_empty() {
            return Err(Error::option(
                "aggregates",
                "a window needs at least one aggregate",
            ));
        }
        let time_column = match time_column {
            Some(c) => Some(validate_time_column(input, c, context)?),
            None if lateness_ms > 0 => {
                return Err(Error::option(
                    "lateness",
                    "processing-time windows have no lateness",
                ))
            }
            None => None,
        };
        let key_encoder = KeyEncoder::optional(input, keys, context)?;
        let emit_op = lateness_ms > 0 || early.is_some();
        let schema = Self::output_schema(input, keys, aggs, emit_op, context)?;
        let aggs = aggs
            .iter()
            .map(|a| a.bind(input, context))
            .collect::<Result<Vec<_>>>()?;
        Ok(WindowAggregate {
            spilled: spill::SpilledPanes::new(&aggs),
            window,
            lateness_ms: lateness_ms.max(0),
            time_column,
            keys: key_encoder,
            aggs,
            schema,
            emit_op,
            early,
            emitted: BTreeMap::new(),
            early_counts: BTreeMap::new(),
            early_pending: BTreeMap::new(),
            early_tick: None,
            dictionary: KeyDictionary::new(),
            panes: BTreeMap::new(),
            windows: BTreeMap::new(),
            dirty: BTreeMap::new(),
            watermark: None,
            last_groups: 0,
            reservation: MemoryReservation::unopened(ConsumerKind::Spillable),
            read_back: MemoryReservation::unopened(ConsumerKind::Fixed),
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Processing time: asks for a timer at the end of the next window to fire.
    fn schedule(&mut self, ctx: &mut Ctx) {
        let window_end = if self.time_column.is_none() {
            self.windows
                .iter()
                .find(|(_, fired)| !**fired)
                .map(|((end, _), _)| *end)
        } else {
            None
        };
        if let Some(every) = self.early.and_then(|e| e.every_ms) {
            if self.early_pending.is_empty() {
                self.early_tick = None;
            } else if self.early_tick.is_none() {
                self.early_tick = Some(ctx.processing_time().saturating_add(every));
            }
        }
        let next = match (window_end, self.early_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ctx.set_processing_timer(next);
    }

    /// The op of a result for `key` of window `(end, start)`: `update` if
    /// that key was emitted before (accumulating), else `insert`.
    fn op_for(&self, window: (i64, i64), key: u32) -> &'static str {
        let purge = self.early.is_some_and(|e| e.purge);
        if !purge && self.emitted.get(&window).is_some_and(|k| k.contains(key)) {
            "update"
        } else {
            "insert"
        }
    }

    /// Emits the early results of `keys` in window `(end, start)`, then
    /// remembers them as emitted (or purges them).
    /// `keys` must be held (by the early-firing bookkeeping) while it runs.
    fn fire_early(
        &mut self,
        window: (i64, i64),
        keys: &BTreeSet<u32>,
        out: &mut Output,
    ) -> Result<()> {
        let (end, start) = window;
        self.hydrate(end)?;
        if let Some(b) = self.evaluate(start, end, Some(keys), &|k| self.op_for(window, k))? {
            out.emit(b);
        }
        if self.early.is_some_and(|e| e.purge) {
            // tumbling: one pane per window
            self.purge_keys(start, Some(keys));
        } else {
            hold_in(
                &mut self.emitted,
                window,
                &mut self.dictionary,
                keys.iter().copied(),
            );
        }
        Ok(())
    }

    /// The watermark after which no row can reach the pane at `pane` any more.
    fn pane_done_at(&self, pane: i64) -> i64 {
        let (_, last_end) = self.window.last_window_of_pane(pane);
        Window::max_timestamp(last_end).saturating_add(self.lateness_ms)
    }

    fn new_pane(&self) -> Pane {
        Pane::new(&self.aggs, self.last_groups)
    }

    fn state_bytes(&self) -> usize {
        self.dictionary.memory_size() + self.panes.values().map(Pane::memory_size).sum::<usize>()
    }

    /// Matches the reservation to the state, spilling every pane while the
    /// pool refuses (see [`store::sync`]); panes read back to fire are
    /// released from the fixed reservation first.
    fn sync_reservation(&mut self, ctx: &Ctx) -> Result<()> {
        self.read_back.free();
        store::sync(self, ctx.spill())
    }

    /// Brings spilled partial state of panes starting before `boundary` back
    /// into memory (merged into the in-memory panes), before windows up to
    /// `boundary` are evaluated. What the state grows by is held in the
    /// fixed read-back reservation until the windows fired.
    fn hydrate(&mut self, boundary: i64) -> Result<()> {
        if self.spilled.is_empty() {
            return Ok(());
        }
        for batch in self.spilled.take_up_to(boundary)? {
            self.merge_pane_rows(&batch)?;
        }
        // whole panes come back: counted at once, spilled again by the sync
        // after firing if they do not fit
        let beyond = self.state_bytes().saturating_sub(self.reservation.size());
        self.reservation.grow(beyond);
        Ok(())
    }

    /// Merges rows of the run layout (pane | key | partial states) into the
    /// in-memory panes, which hold their keys. The layout must be this
    /// operator's (runs are; restored rows are checked).
    fn merge_pane_rows(&mut self, batch: &RecordBatch) -> Result<()> {
        self.spilled.merge_into(
            &mut self.panes,
            &mut self.dictionary,
            &self.aggs,
            self.last_groups,
            batch,
        )
    }

    /// The result of window `[start, end)` for `only` keys (all keys if `None`).
    fn evaluate(
        &self,
        start: i64,
        end: i64,
        only: Option<&BTreeSet<u32>>,
        op: &dyn Fn(u32) -> &'static str,
    ) -> Result<Option<RecordBatch>> {
        let mut panes = self.panes.range(start..end).map(|(_, p)| p).peekable();
        let Some(first) = panes.peek() else {
            return Ok(None);
        };
        let single = self.panes.range(start..end).count() == 1;
        let (key_ids, columns): (Vec<u32>, Vec<ArrayRef>) = if single && only.is_none() {
            let order: Vec<u32> = (0..first.key_ids.len() as u32).collect();
            let cols = first
                .accs
                .iter()
                .zip(&self.aggs)
                .map(|(acc, agg)| acc.finish(&order, agg))
                .collect::<Result<_>>()?;
            (first.key_ids.iter().map(KeyHandle::id).collect(), cols)
        } else {
            let mut out: Vec<Accumulators> = self.aggs.iter().map(Accumulators::new).collect();
            let mut slots: HashMap<u32, u32, FastBuildHasher> = HashMap::default();
            let mut key_ids = Vec::new();
            for pane in panes {
                for (slot, id) in pane.key_ids.iter().map(KeyHandle::id).enumerate() {
                    if only.is_some_and(|keys| !keys.contains(&id)) {
                        continue;
                    }
                    let next = key_ids.len() as u32;
                    let target = *slots.entry(id).or_insert_with(|| {
                        key_ids.push(id);
                        next
                    });
                    for (o, acc) in out.iter_mut().zip(&pane.accs) {
                        o.resize(key_ids.len());
                        o.merge(target, acc, slot as u32)?;
                    }
                }
            }
            let order: Vec<u32> = (0..key_ids.len() as u32).collect();
            let cols = out
                .iter()
                .zip(&self.aggs)
                .map(|(acc, agg)| acc.finish(&order, agg))
                .collect::<Result<_>>()?;
            (key_ids, cols)
        };
        let n = key_ids.len();
        if n == 0 {
            return Ok(None);
        }
        let mut columns_out: Vec<ArrayRef> = match &self.keys {
            Some(enc) => {
                let parser = enc.converter().parser();
                enc.converter().convert_rows(
                    key_ids
                        .iter()
                        .map(|&id| parser.parse(self.dictionary.key(id))),
                )?
            }
            None => Vec::new(),
        };
        columns_out.push(Arc::new(Int64Array::from(vec![start; n])));
        columns_out.push(Arc::new(Int64Array::from(vec![end; n])));
        columns_out.extend(columns);
        if self.emit_op {
            columns_out.push(Arc::new(StringArray::from_iter_values(
                key_ids.iter().map(|&k| op(k)),
            )));
        }
        Ok(Some(RecordBatch::try_new(
            self.schema.clone(),
            columns_out,
        )?))
    }

    /// The keys with state in window `[start, end)`.
    fn window_keys(&self, start: i64, end: i64) -> BTreeSet<u32> {
        self.panes
            .range(start..end)
            .flat_map(|(_, p)| p.key_ids.iter().map(KeyHandle::id))
            .collect()
    }

    fn purge_keys(&mut self, start: i64, keys: Option<&BTreeSet<u32>>) {
        if let Some(pane) = self.panes.get_mut(&start) {
            for (slot, id) in pane.key_ids.iter().map(KeyHandle::id).enumerate() {
                if keys.is_none_or(|k| k.contains(&id)) {
                    for acc in &mut pane.accs {
                        acc.reset(slot as u32);
                    }
                }
            }
        }
    }

    fn emit_dirty(&mut self, out: &mut Output) -> Result<()> {
        let purge = self.early.is_some_and(|e| e.purge);
        for ((end, start), held) in std::mem::take(&mut self.dirty) {
            self.hydrate(end)?;
            let w = (end, start);
            let keys: BTreeSet<u32> = held.ids().collect();
            if let Some(b) = self.evaluate(start, end, Some(&keys), &|k| self.op_for(w, k))? {
                out.emit(b);
            }
            if purge {
                self.purge_keys(start, Some(&keys));
            } else {
                hold_in(&mut self.emitted, w, &mut self.dictionary, keys);
            }
            held.release(&mut self.dictionary);
        }
        Ok(())
    }

    /// True if the due windows can fire straight from the runs: state was
    /// spilled, no result changes later (no lateness, no early firing), and
    /// each window is one pane that no other window shares (tumbling).
    fn fires_from_runs(&self, due: &[(i64, i64)]) -> bool {
        !self.spilled.is_empty()
            && !due.is_empty()
            && self.lateness_ms == 0
            && self.early.is_none()
            && due
                .iter()
                .all(|&(end, start)| self.window.windows_of_pane(start) == [(start, end)])
    }

    /// True if the spilled rows of the due windows fit one read-back step:
    /// they are read back whole, and the runs of later panes stay as they
    /// are (a merge would rewrite them at every firing).
    fn due_fits(&mut self, due: &[(i64, i64)]) -> Result<bool> {
        let boundary = due.last().map_or(i64::MIN, |w| w.0);
        self.spilled.due_fits(boundary)
    }

    /// Fires the due windows (tumbling, see [`Self::fires_from_runs`]) by a
    /// merge of the runs, a chunk of keys at a time, instead of reading
    /// their panes back whole: the in-memory panes before the last due end
    /// are spilled first, so each (pane, key) comes out of the merge once
    /// with its partial states merged. The merge's batches are held in the
    /// fixed read-back reservation.
    fn fire_from_runs(
        &mut self,
        due: &[(i64, i64)],
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let boundary = due.last().map_or(i64::MIN, |w| w.0);
        if self.panes.range(..boundary).next().is_some() {
            let before = self.state_bytes();
            SpillableState::spill(self, ctx.spill())?;
            let freed = before.saturating_sub(self.state_bytes());
            ctx.spill().metrics().record_state_spilled(freed as u64);
            store::sync(self, ctx.spill())?;
        }
        let name = self.reservation.consumer().to_string();
        store::reserve_step(&mut self.read_back, self.spilled.merge_bytes());
        let fired: BTreeSet<(i64, i64)> = due.iter().map(|&(e, s)| (s, e)).collect();
        let (keys, aggs, schema, widths) = (
            &self.keys,
            &self.aggs,
            &self.schema,
            self.spilled.widths().to_vec(),
        );
        let mut fire = |batch: &RecordBatch| -> Result<()> {
            for (start, end, b) in pane_results(batch, keys, aggs, &widths, schema, &fired)? {
                debug_assert!(fired.contains(&(start, end)));
                out.emit(b);
            }
            Ok(())
        };
        let mut spilled =
            std::mem::replace(&mut self.spilled, spill::SpilledPanes::new(&self.aggs));
        let result = spilled.fire_through(boundary, &self.aggs, ctx.spill(), &name, &mut fire);
        self.spilled = spilled;
        self.read_back.free();
        result?;
        for &w in due {
            self.windows.insert(w, true);
        }
        Ok(())
    }

    /// Fires due windows, then drops what no window needs any more.
    fn advance(&mut self, t: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        let due: Vec<(i64, i64)> = self
            .windows
            .iter()
            .take_while(|((end, _), _)| Window::max_timestamp(*end) <= t)
            .filter(|(_, fired)| !**fired)
            .map(|(w, _)| *w)
            .collect();
        let due = if self.fires_from_runs(&due) && !self.due_fits(&due)? {
            self.fire_from_runs(&due, ctx, out)?;
            Vec::new()
        } else {
            due
        };
        for (end, start) in due {
            let w = (end, start);
            if let Some(c) = self.early_counts.remove(&w) {
                c.held.release(&mut self.dictionary);
            }
            if let Some(p) = self.early_pending.remove(&w) {
                p.release(&mut self.dictionary);
            }
            self.hydrate(end)?;
            if let Some(b) = self.evaluate(start, end, None, &|k| self.op_for(w, k))? {
                out.emit(b);
            }
            // keys emitted now: a late row later updates them (until cleanup)
            if self.lateness_ms > 0 && !self.early.is_some_and(|e| e.purge) {
                let keys: BTreeSet<u32> = self.window_keys(start, end);
                hold_in(&mut self.emitted, w, &mut self.dictionary, keys);
            } else if let Some(e) = self.emitted.remove(&w) {
                e.release(&mut self.dictionary);
            }
            if self.early.is_some_and(|e| e.purge) {
                self.purge_keys(start, None);
            }
            self.windows.insert(w, true);
            // panes whose windows all fired and that no late row can reach
            self.drop_panes(t, Some((end, start)));
        }
        let lateness = self.lateness_ms;
        while let Some((&(end, start), _)) = self.windows.first_key_value() {
            if Window::max_timestamp(end).saturating_add(lateness) > t {
                break;
            }
            self.windows.pop_first();
            if let Some(e) = self.emitted.remove(&(end, start)) {
                e.release(&mut self.dictionary);
            }
        }
        self.drop_panes(t, None);
        self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
        self.sync_reservation(ctx)
    }

    /// Drops panes that no late row can reach at watermark `t` and, if
    /// `fired_up_to` is given, whose windows all fired (in `(end, start)` order).
    fn drop_panes(&mut self, t: i64, fired_up_to: Option<(i64, i64)>) {
        while let Some((&pane, _)) = self.panes.first_key_value() {
            // the pane's last window in firing order (end, start)
            let (start, end) = self.window.last_window_of_pane(pane);
            let last = (end, start);
            if self.pane_done_at(pane) > t || fired_up_to.is_some_and(|w| last > w) {
                break;
            }
            let (_, p) = self.panes.pop_first().expect("checked above");
            self.last_groups = p.key_ids.len();
            self.dictionary.release_all(p.key_ids);
        }
    }
}

/// The layout of grouped results: key columns, then `middle` (e.g. the
/// window bounds), one column per aggregate, and `op` when results change;
/// errors name a missing key or a name used twice.
pub(crate) fn result_schema(
    input: &Schema,
    keys: &[String],
    middle: &[Field],
    aggs: &[Agg],
    emit_op: bool,
    context: &str,
) -> Result<SchemaRef> {
    let mut fields = Vec::new();
    for k in keys {
        let f = input
            .field_with_name(k)
            .map_err(|_| Error::column(k, context, "key column not found"))?;
        fields.push(f.clone());
    }
    fields.extend(middle.iter().cloned());
    for a in aggs {
        fields.push(a.bind(input, context)?.field);
    }
    if emit_op {
        fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
    }
    let names: Vec<&String> = fields.iter().map(|f| f.name()).collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(Error::option(
                "aggregates",
                format!("output column `{n}` appears twice; give aggregates distinct names"),
            ));
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

impl SpillableState for WindowAggregate {
    fn memory_bytes(&self) -> usize {
        self.state_bytes()
    }

    fn can_spill(&self) -> bool {
        !self.panes.is_empty()
    }

    /// Writes every pane as one run sorted by (pane, key) and drops them.
    fn spill(&mut self, spill: &Arc<SpillManager>) -> Result<()> {
        let name = self.reservation.consumer().to_string();
        self.spilled
            .spill(&self.panes, &self.dictionary, spill, &name)?;
        // the run holds key bytes, not ids: keys only the panes held are
        // forgotten (the early-firing and emitted bookkeeping holds its own)
        for (_, pane) in std::mem::take(&mut self.panes) {
            self.dictionary.release_all(pane.key_ids);
        }
        self.dictionary.shrink();
        // panes made after a spill grow from small again
        self.last_groups = 0;
        Ok(())
    }

    fn reservation(&mut self) -> &mut MemoryReservation {
        &mut self.reservation
    }
}

impl Operator for WindowAggregate {
    fn open(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.reservation = ctx.spillable_reservation();
        self.read_back = ctx.fixed_reservation("read-back");
        // two read-back steps: the merge that fires windows from the runs
        self.spilled
            .set_read_back(2 * store::step_bytes(self.read_back.pool()));
        Ok(())
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let times = match self.time_column {
            Some(c) => {
                let times = event_times(&batch, c, ctx.operator())?;
                let column = batch.schema().field(c).name().clone();
                self.window.check_times(&times, &column, ctx.operator())?;
                times
            }
            None => vec![ctx.processing_time(); batch.num_rows()].into(),
        };
        let rows = match &self.keys {
            Some(enc) => Some(enc.encode(&batch)?),
            None => None,
        };
        let mut order: Vec<(i64, u32)> = Vec::with_capacity(times.len());
        let mut late = 0u64;
        for (i, &t) in times.iter().enumerate() {
            let pane = self.window.pane_of(t);
            if self.watermark.is_some_and(|w| self.pane_done_at(pane) <= w) {
                late += 1;
            } else {
                order.push((pane, i as u32));
            }
        }
        if late > 0 {
            OperatorMetrics::add(&ctx.metrics().late_rows, late);
        }
        group_by_start(&mut order, self.window.pane_ms());
        let values = self
            .aggs
            .iter()
            .map(|a| a.values(batch.columns()))
            .collect::<Result<Vec<_>>>()?;
        let mut groups: Vec<u32> = Vec::with_capacity(order.len());
        let mut row_ids: Vec<u32> = Vec::with_capacity(order.len());
        let mut due_early: BTreeMap<(i64, i64), BTreeSet<u32>> = BTreeMap::new();
        let mut i = 0;
        while i < order.len() {
            let pane_start = order[i].0;
            let mut j = i;
            while j < order.len() && order[j].0 == pane_start {
                j += 1;
            }
            if !self.panes.contains_key(&pane_start) {
                let p = self.new_pane();
                self.panes.insert(pane_start, p);
                for (s, e) in self.window.windows_of_pane(pane_start) {
                    self.windows.entry((e, s)).or_insert(false);
                }
            }
            let pane = self.panes.get_mut(&pane_start).expect("inserted above");
            groups.clear();
            row_ids.clear();
            for &(_, r) in &order[i..j] {
                let key: &[u8] = rows
                    .as_ref()
                    .map_or(&[], |rows| rows.row(r as usize).data());
                let id = self.dictionary.intern(key);
                let next = pane.key_ids.len() as u32;
                let g = *pane.groups.entry(id).or_insert_with(|| {
                    pane.key_ids.push(self.dictionary.hold(id));
                    next
                });
                groups.push(g);
                row_ids.push(r);
            }
            let n = pane.key_ids.len();
            for ((acc, agg), vals) in pane.accs.iter_mut().zip(&self.aggs).zip(&values) {
                acc.resize(n);
                acc.update(&groups, &row_ids, vals, &times, agg.field.name())?;
            }
            // late rows for windows that already fired: re-emit those keys;
            // open windows count rows towards early firings
            for (s, e) in self.window.windows_of_pane(pane_start) {
                let keys_of_rows = groups.iter().map(|&g| pane.key_ids[g as usize].id());
                if self.windows.get(&(e, s)) == Some(&true) {
                    hold_in(&mut self.dirty, (e, s), &mut self.dictionary, keys_of_rows);
                } else if let Some(early) = self.early {
                    if let Some(n) = early.every_rows {
                        let counts = self.early_counts.entry((e, s)).or_default();
                        for k in keys_of_rows.clone() {
                            counts.held.insert(&mut self.dictionary, k);
                            let c = counts.counts.entry(k).or_insert(0);
                            *c += 1;
                            if *c >= n {
                                *c = 0;
                                due_early.entry((e, s)).or_default().insert(k);
                            }
                        }
                    }
                    if early.every_ms.is_some() {
                        hold_in(
                            &mut self.early_pending,
                            (e, s),
                            &mut self.dictionary,
                            keys_of_rows,
                        );
                    }
                }
            }
            i = j;
        }
        for (w, keys) in due_early {
            // held by early_counts
            self.fire_early(w, &keys, out)?;
        }
        self.emit_dirty(out)?;
        self.schedule(ctx);
        self.sync_reservation(ctx)
    }

    fn on_watermark(&mut self, wm: Watermark, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if let (Watermark::EventTime(t), Some(_)) = (wm, self.time_column) {
            self.advance(t, ctx, out)?;
        }
        out.emit_watermark(wm);
        Ok(())
    }

    fn on_processing_time(&mut self, now: i64, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        if self.early_tick.is_some_and(|t| t <= now) {
            self.early_tick = None;
            for (w, held) in std::mem::take(&mut self.early_pending) {
                let keys: BTreeSet<u32> = held.ids().collect();
                let fired = self.fire_early(w, &keys, out);
                held.release(&mut self.dictionary);
                fired?;
            }
        }
        if self.time_column.is_none() {
            // windows ending at or before `now` are complete
            self.advance(now.saturating_sub(1), ctx, out)?;
        }
        self.schedule(ctx);
        Ok(())
    }

    fn on_end_of_input(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        self.advance(i64::MAX, ctx, out)
    }

    fn snapshot(&mut self, ctx: &mut Ctx, state: &mut StateWriter) -> Result<()> {
        // one row per spilled (pane, key): the checkpoint holds the logical
        // state, not every run written since the window opened
        if self.spilled.worth_compacting() {
            let name = ctx.operator().to_string();
            self.spilled
                .compact(&self.aggs, ctx.spill(), &name)
                .map_err(|e| keyed_state::with_operator(e, ctx.operator()))?;
        }
        self.write_state(state)
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))
    }

    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        self.read_state(state, ctx.operator())
            .map_err(|e| keyed_state::with_operator(e, ctx.operator()))?;
        self.sync_reservation(ctx)
    }
}

/// The results of the windows `fired` (`(start, end)`, one pane each) from
/// merged run rows (pane | key | partial states, one row per (pane, key)):
/// one batch per pane, as `(start, end, batch)`; rows of other panes are
/// skipped (none in a correct run).
fn pane_results(
    batch: &RecordBatch,
    keys: &Option<KeyEncoder>,
    aggs: &[BoundAgg],
    widths: &[usize],
    schema: &SchemaRef,
    fired: &BTreeSet<(i64, i64)>,
) -> Result<Vec<(i64, i64, RecordBatch)>> {
    let panes = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("run layout: pane is Int64");
    let key_bytes = batch
        .column(1)
        .as_any()
        .downcast_ref::<arrow_array::BinaryArray>()
        .expect("run layout: key is Binary");
    let mut out = Vec::new();
    let mut i = 0;
    while i < batch.num_rows() {
        let start = panes.value(i);
        let mut j = i;
        while j < batch.num_rows() && panes.value(j) == start {
            j += 1;
        }
        let window = fired
            .range((start, i64::MIN)..)
            .next()
            .filter(|w| w.0 == start);
        if let Some(&(_, end)) = window {
            let n = j - i;
            let mut accs: Vec<Accumulators> = aggs.iter().map(Accumulators::new).collect();
            let slots: Vec<u32> = (0..n as u32).collect();
            spill::merge_run_rows(&mut accs, widths, batch, i, &slots, n)?;
            let mut columns: Vec<ArrayRef> = match keys {
                Some(enc) => {
                    let parser = enc.converter().parser();
                    enc.converter()
                        .convert_rows((i..j).map(|r| parser.parse(key_bytes.value(r))))?
                }
                None => Vec::new(),
            };
            columns.push(Arc::new(Int64Array::from(vec![start; n])));
            columns.push(Arc::new(Int64Array::from(vec![end; n])));
            for (acc, agg) in accs.iter().zip(aggs) {
                columns.push(acc.finish(&slots, agg)?);
            }
            out.push((start, end, RecordBatch::try_new(schema.clone(), columns)?));
        }
        i = j;
    }
    Ok(out)
}

/// Orders `(start, row)` pairs by start: a counting sort when the batch
/// spans few periods (the usual case), else a comparison sort.
fn group_by_start(order: &mut Vec<(i64, u32)>, period: i64) {
    let (Some(min), Some(max)) = (
        order.iter().map(|o| o.0).min(),
        order.iter().map(|o| o.0).max(),
    ) else {
        return;
    };
    let span = match max.checked_sub(min) {
        Some(d) => d / period + 1,
        None => i64::MAX,
    };
    if span == 1 {
        return;
    }
    if span > 4096 {
        order.sort_unstable();
        return;
    }
    let bucket = |start: i64| ((start - min) / period) as usize;
    let mut offsets = vec![0usize; span as usize + 1];
    for o in order.iter() {
        offsets[bucket(o.0) + 1] += 1;
    }
    for i in 1..offsets.len() {
        offsets[i] += offsets[i - 1];
    }
    let mut sorted = vec![(0i64, 0u32); order.len()];
    for &o in order.iter() {
        let b = bucket(o.0);
        sorted[offsets[b]] = o;
        offsets[b] += 1;
    }
    *order = sorted;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basic::tests::{batches, test_ctx};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{Float64Array, StringArray};
    use std::time::Duration;

    fn input(keys: Vec<&str>, times: Vec<i64>, speeds: Vec<f64>) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(keys)) as _),
            ("t", Arc::new(Int64Array::from(times)) as _),
            ("speed", Arc::new(Float64Array::from(speeds)) as _),
        ])
        .unwrap()
    }

    #[test]
    fn fires_windows_in_order_when_the_watermark_passes_and_counts_late_rows() {
        let b = input(
            vec!["a", "b", "a", "a"],
            vec![100, 200, 1500, 900],
            vec![1.0, 2.0, 3.0, 5.0],
        );
        let mut w = WindowAggregate::try_new(
            &b.schema(),
            &WindowConfig {
                time_column: Some("t".into()),
                keys: vec!["k".into()],
                window: Window::tumbling(Duration::from_secs(1)),
                lateness_ms: 0,
                aggs: vec![Agg::count().alias("n"), Agg::avg("speed")],
                early: None,
            },
            "window",
        )
        .unwrap();
        let mut ctx = test_ctx();
        w.open(&mut ctx).unwrap();
        let mut out = Output::new();
        w.on_batch(0, b, &mut ctx, &mut out).unwrap();
        w.on_watermark(Watermark::EventTime(998), &mut ctx, &mut out)
            .unwrap();
        assert!(
            batches(&mut out).is_empty(),
            "window [0,1000) must not fire at 998"
        );
        w.on_watermark(Watermark::EventTime(999), &mut ctx, &mut out)
            .unwrap();
        let got = batches(&mut out);
        assert_eq!(got.len(), 1);
        let g = &got[0];
        let keys: Vec<&str> = g
            .column(0)
            .as_string::<i32>()
            .iter()
            .map(|k| k.unwrap())
            .collect();
        assert_eq!(keys, vec!["a", "b"]);
        assert_eq!(
            g.column(1).as_primitive::<Int64Type>().values().to_vec(),
            vec![0, 0]
        );
        assert_eq!(
            g.column(2).as_primitive::<Int64Type>().values().to_vec(),
            vec![1000, 1000]
        );
        assert_eq!(
            g.column(3).as_primitive::<Int64Type>().values().to_vec(),
            vec![2, 1]
        );
        assert_eq!(
            g.column(4).as_primitive::<Float64Type>().values().to_vec(),
            vec![3.0, 2.0]
        );

        // a row for the fired window is late; a row for [1000,2000) is not
        let late = input(vec!["a", "a"], vec![10, 1999], vec![7.0, 9.0]);
        w.on_batch(0, late, &mut ctx, &mut out).unwrap();
        assert_eq!(
            ctx.metrics()
                .late_rows
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        w.on_end_of_input(&mut ctx, &mut out).unwrap();
        let got = batches(&mut out);
        assert_eq!(
            got[0]
                .column(3)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            vec![2]
        );
        assert_eq!(
            got[0]
                .column(4)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec(),
            vec![6.0]
        );
        assert_eq!(
            ctx.pool().reserved(),
            0,
            "fired windows release their memory"
        );
    }

    #[test]
    fn rejects_bad_columns() {
        let b = input(vec!["a"], vec![1], vec![1.0]);
        let w = Window::tumbling(Duration::from_secs(1));
        let err = WindowAggregate::try_new(
            &b.schema(),
            &WindowConfig {
                time_column: Some("time".into()),
                keys: vec!["k".into()],
                window: w,
                lateness_ms: 0,
                aggs: vec![Agg::count()],
                early: None,
            },
            "win",
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("`time`"), "{err}");
        let err = WindowAggregate::try_new(
            &b.schema(),
            &WindowConfig {
                time_column: Some("k".into()),
                keys: vec!["k".into()],
                window: w,
                lateness_ms: 0,
                aggs: vec![Agg::count()],
                early: None,
            },
            "win",
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("Int64 (epoch ms) or Timestamp"),
            "{err}"
        );
    }

    fn window_rows(got: &[RecordBatch]) -> Vec<(String, i64, i64, i64)> {
        let mut v = Vec::new();
        for b in got {
            let k = b.column(0).as_string::<i32>();
            let s = b.column(1).as_primitive::<Int64Type>();
            let e = b.column(2).as_primitive::<Int64Type>();
            let n = b.column(3).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                v.push((k.value(i).to_string(), s.value(i), e.value(i), n.value(i)));
            }
        }
        v.sort();
        v
    }

    #[test]
    fn sliding_windows_merge_panes() {
        let b = input(
            vec!["a", "a", "a", "b"],
            vec![500, 1500, 2500, 1200],
            vec![1.0; 4],
        );
        let mut w = WindowAggregate::try_new(
            &b.schema(),
            &WindowConfig {
                time_column: Some("t".into()),
                keys: vec!["k".into()],
                window: Window::sliding(Duration::from_secs(2), Duration::from_secs(1)),
                lateness_ms: 0,
                aggs: vec![Agg::count().alias("n")],
                early: None,
            },
            "w",
        )
        .unwrap();
        let (mut ctx, mut out) = (test_ctx(), Output::new());
        w.open(&mut ctx).unwrap();
        w.on_batch(0, b, &mut ctx, &mut out).unwrap();
        w.on_watermark(Watermark::EventTime(1999), &mut ctx, &mut out)
            .unwrap();
        // windows ending at <= 2000: [-1000,1000) and [0,2000)
        assert_eq!(
            window_rows(&batches(&mut out)),
            vec![
                ("a".into(), -1000, 1000, 1),
                ("a".into(), 0, 2000, 2),
                ("b".into(), 0, 2000, 1)
            ]
        );
        w.on_end_of_input(&mut ctx, &mut out).unwrap();
        assert_eq!(
            window_rows(&batches(&mut out)),
            vec![
                ("a".into(), 1000, 3000, 2),
                ("a".into(), 2000, 4000, 1),
                ("b".into(), 1000, 3000, 1)
            ]
        );
        assert_eq!(ctx.pool().reserved(), 0);
    }

    #[test]
    fn late_rows_within_lateness_update_fired_windows() {
        let b = input(vec!["a", "a"], vec![100, 200], vec![1.0, 2.0]);
        let mut w = WindowAggregate::try_new(
            &b.schema(),
            &WindowConfig {
                time_column: Some("t".into()),
                keys: vec!["k".into()],
                window: Window::tumbling(Duration::from_secs(1)),
                lateness_ms: 500,
                aggs: vec![Agg::count().alias("n")],
                early: None,
            },
            "w",
        )
        .unwrap();
        assert_eq!(w.schema().fields().last().unwrap().name(), OP_COLUMN);
        let (mut ctx, mut out) = (test_ctx(), Output::new());
        w.open(&mut ctx).unwrap();
        w.on_batch(0, b, &mut ctx, &mut out).unwrap();
        w.on_watermark(Watermark::EventTime(1200), &mut ctx, &mut out)
            .unwrap();
        let first = batches(&mut out);
        assert_eq!(window_rows(&first), vec![("a".into(), 0, 1000, 2)]);
        assert_eq!(first[0].column(4).as_string::<i32>().value(0), "insert");
        // within lateness (window done at 999 + 500): an update for the same window
        w.on_batch(
            0,
            input(vec!["a"], vec![300], vec![3.0]),
            &mut ctx,
            &mut out,
        )
        .unwrap();
        let upd = batches(&mut out);
        assert_eq!(window_rows(&upd), vec![("a".into(), 0, 1000, 3)]);
        assert_eq!(upd[0].column(4).as_string::<i32>().value(0), "update");
        // past the lateness the window's state is gone and the row is counted late
        w.on_watermark(Watermark::EventTime(1499), &mut ctx, &mut out)
            .unwrap();
        w.on_batch(
            0,
            input(vec!["a"], vec![400], vec![3.0]),
            &mut ctx,
            &mut out,
        )
        .unwrap();
        assert!(batches(&mut out).is_empty());
        assert_eq!(
            ctx.metrics()
                .late_rows
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
