//! What a keyed process function sees: [`KeyedProcessFunction`] (the
//! user's trait), [`ProcessContext`] (emit, timers, watermark, clearing
//! state), [`KeyRow`] and the closure adapter [`ProcessFn`].
//!
//! May use what the parent module imports.

use super::*;

/// The key the function is called for.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub(super) columns: RecordBatch,
}

impl KeyRow {
    /// The key's column values: one row, one column per key column (no
    /// columns when the stream is not keyed).
    pub fn columns(&self) -> &RecordBatch {
        &self.columns
    }
}

/// What a [`KeyedProcessFunction`] can do during a call: emit rows, manage
/// the key's event-time timers, read the watermark, drop the key's state.
#[derive(Debug)]
pub struct ProcessContext {
    // config
    pub(super) operator: String,
    pub(super) schema: SchemaRef,
    // state
    pub(super) watermark: i64,
    pub(super) time: i64,
    pub(super) timers: BTreeSet<i64>,
    pub(super) processing_timers: BTreeSet<i64>,
    pub(super) clear: bool,
    pub(super) emitted: Vec<RecordBatch>,
}

impl ProcessContext {
    pub(super) fn new(operator: &str, schema: SchemaRef) -> Self {
        ProcessContext {
            operator: operator.to_string(),
            schema,
            watermark: i64::MIN,
            time: i64::MIN,
            timers: BTreeSet::new(),
            processing_timers: BTreeSet::new(),
            clear: false,
            emitted: Vec::new(),
        }
    }

    /// Emits rows; they must have the operator's declared output schema
    /// (same column names and types, no nulls in non-nullable columns).
    pub fn emit(&mut self, batch: RecordBatch) -> Result<()> {
        let mismatch = |message: String| Error::SchemaMismatch {
            location: format!("keyed process function `{}`", self.operator),
            message,
        };
        let want = self.schema.fields();
        let got = batch.schema();
        let same = got.fields().len() == want.len()
            && got
                .fields()
                .iter()
                .zip(want.iter())
                .all(|(g, w)| g.name() == w.name() && g.data_type() == w.data_type());
        if !same {
            return Err(mismatch(format!(
                "emitted columns ({}) differ from the declared output ({})",
                describe(&got),
                describe(&self.schema)
            )));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(|e| mismatch(format!("emitted rows do not fit the declared output: {e}")))?;
        self.emitted.push(batch);
        Ok(())
    }

    /// Asks for [`KeyedProcessFunction::on_timer`] at event time `time` for
    /// this key (once per distinct time). A time at or before the rows or
    /// timer being processed fires right after the current call.
    pub fn register_event_timer(&mut self, time: i64) {
        self.timers.insert(time);
    }

    /// Cancels this key's timer at `time`, if any.
    pub fn delete_event_timer(&mut self, time: i64) {
        self.timers.remove(&time);
    }

    /// Asks for [`KeyedProcessFunction::on_processing_timer`] once the wall
    /// clock reaches `time` (epoch ms) for this key. Pipelined runs fire it
    /// then; batch runs fire every pending processing-time timer at end of
    /// input (as Flink's BATCH mode). Results then depend on timing.
    pub fn register_processing_timer(&mut self, time: i64) {
        self.processing_timers.insert(time);
    }

    /// Cancels this key's processing-time timer at `time`, if any.
    pub fn delete_processing_timer(&mut self, time: i64) {
        self.processing_timers.remove(&time);
    }

    /// The wall clock, epoch milliseconds.
    pub fn processing_time(&self) -> i64 {
        weir_core::operator::now_ms()
    }

    /// This key's pending event-time timers, in time order.
    pub fn event_timers(&self) -> impl Iterator<Item = i64> + '_ {
        self.timers.iter().copied()
    }

    /// The watermark being processed: every row and timer handed to the
    /// function now is at or below it.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// The event time of the rows or the timer being processed.
    pub fn time(&self) -> i64 {
        self.time
    }

    /// Drops this key's state after the current call; the next call for
    /// the key starts from `State::default()`. Timers are kept.
    pub fn clear_state(&mut self) {
        self.clear = true;
    }

    /// The declared output schema.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// `name: type, ...` of `schema`, for errors.
pub(super) fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A user function called per key with its rows in event-time order and
/// its timers (Flink's `KeyedProcessFunction`).
///
/// For one key, calls come in increasing event time: all rows with one
/// event time in one `on_rows` call, and a timer at `t` after the rows with
/// time `<= t` and before later rows. Calls for different keys may come in
/// any order: keep per-key data in `State`, not in `self`, or results will
/// depend on the parallelism.
pub trait KeyedProcessFunction: Send {
    /// Per-key state (value, list and map state are fields of this type).
    /// It is serialized (with `postcard`, a compact binary serde format that
    /// keeps every `f64`, NaN included) when keyed state spills to disk:
    /// derive `Serialize` and `Deserialize`. Types that need a
    /// self-describing format (`#[serde(untagged)]` enums,
    /// `serde_json::Value`) are refused with an error naming the operator.
    type State: Default + Send + serde::Serialize + serde::de::DeserializeOwned + 'static;

    /// Bytes of memory `state` uses, for the memory budget. The default is
    /// its shallow size; override it when the state owns heap memory
    /// (vectors, maps, strings), or the state will spill later than it should.
    fn state_size(&self, state: &Self::State) -> usize {
        let _ = state;
        std::mem::size_of::<Self::State>()
    }

    /// Rows of one key whose time the watermark passed, all with the same
    /// event time ([`ProcessContext::time`]), ties ordered by row content.
    fn on_rows(
        &mut self,
        key: &KeyRow,
        rows: &RecordBatch,
        state: &mut Self::State,
        ctx: &mut ProcessContext,
    ) -> Result<()>;

    /// An event-time timer of this key fired (`time` <= watermark), after
    /// rows up to `time` were delivered.
    fn on_timer(
        &mut self,
        key: &KeyRow,
        time: i64,
        state: &mut Self::State,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let _ = (key, time, state, ctx);
        Ok(())
    }

    /// A processing-time timer of this key fired (the wall clock reached `time`).
    fn on_processing_timer(
        &mut self,
        key: &KeyRow,
        time: i64,
        state: &mut Self::State,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let _ = (key, time, state, ctx);
        Ok(())
    }
}

/// A [`KeyedProcessFunction`] made of a closure over rows (no timer callback).
pub struct ProcessFn<S, F> {
    // config
    f: F,
    _state: PhantomData<fn() -> S>,
}

impl<S, F> ProcessFn<S, F> {
    /// Wraps `f`, called as `on_rows`.
    pub fn new(f: F) -> Self {
        ProcessFn {
            f,
            _state: PhantomData,
        }
    }
}

impl<S, F> std::fmt::Debug for ProcessFn<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProcessFn")
    }
}

impl<S, F> KeyedProcessFunction for ProcessFn<S, F>
where
    S: Default + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    F: FnMut(&KeyRow, &RecordBatch, &mut S, &mut ProcessContext) -> Result<()> + Send,
{
    type State = S;

    fn on_rows(
        &mut self,
        key: &KeyRow,
        rows: &RecordBatch,
        state: &mut S,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        (self.f)(key, rows, state, ctx)
    }
}
