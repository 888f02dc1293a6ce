//! Keyed (or global) event-time window aggregation over panes: tumbling,
//! sliding and cumulative windows, with allowed lateness and updates.

use weir_functions::aggregate::{Accumulators, Agg, BoundAgg};
mod checkpoint;
mod fire;
use fire::group_by_start;
#[cfg(test)]
mod checkpoint_tests;
mod slots;
mod spill;

use slots::PaneSlots;

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
    groups: PaneSlots,
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
            groups: PaneSlots::default(),
            key_ids: Vec::with_capacity(groups),
            accs: aggs.iter().map(Accumulators::new).collect(),
        }
    }

    /// The slot of key `id` (interned in `dictionary`), added and held if new.
    #[inline]
    pub(crate) fn slot(&mut self, dictionary: &mut KeyDictionary, id: u32) -> u32 {
        let next = self.key_ids.len();
        self.groups.get_or_insert(id, next, || {
            self.key_ids.push(dictionary.hold(id));
            next as u32
        })
    }

    /// Bytes the pane's keys and partial states take.
    pub(crate) fn memory_size(&self) -> usize {
        self.key_ids.len() * 24
            + self.groups.extra_bytes()
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
        // (before interning: an error leaves no key interned that nobody holds)
        let values = self
            .aggs
            .iter()
            .map(|a| a.values(batch.columns()))
            .collect::<Result<Vec<_>>>()?;
        // every key interned first, in one pass: the slot lookups below then
        // form a tight loop whose table loads overlap
        let ids: Vec<u32> = match &rows {
            Some(rows) => order
                .iter()
                .map(|&(_, r)| self.dictionary.intern(rows.row(r as usize).data()))
                .collect(),
            None if order.is_empty() => Vec::new(),
            None => {
                let id = self.dictionary.intern(&[]);
                vec![id; order.len()]
            }
        };
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
            for (&(_, r), &id) in order[i..j].iter().zip(&ids[i..j]) {
                groups.push(pane.slot(&mut self.dictionary, id));
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

#[cfg(test)]
mod tests;
