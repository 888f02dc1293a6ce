//! Keyed and windowed streams: `key_by` → `KeyedStream` (windows, count
//! windows, process functions, group aggregates) → `WindowedStream`, and
//! cascaded window aggregates.

use super::*;

impl Stream {
    /// Groups all rows into event-time windows (no key): one result row per
    /// window, computed by a single subtask.
    pub fn window_all(&self, window: impl Into<Window>) -> WindowedStream {
        WindowedStream {
            stream: self.clone(),
            keys: Vec::new(),
            window: window.into(),
            processing_time: false,
            early: None,
        }
    }

    /// Aggregates a window's output again, per `keys` (may be empty) and
    /// window (`window_start`/`window_end`), emitting each group once the
    /// watermark passes the window's end (cascading windows, e.g. the
    /// largest count per window). The output has the same layout as a window
    /// aggregate's and no event time.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use weir::time::Window;
    /// use weir::{Agg, ExecConfig, Job, WatermarkStrategy};
    /// let bids = RecordBatch::try_from_iter([
    ///     ("auction", Arc::new(Int64Array::from(vec![1, 1, 2, 3])) as _),
    ///     ("t", Arc::new(Int64Array::from(vec![100, 200, 300, 1500])) as _),
    /// ])
    /// .unwrap();
    /// let job = Job::new();
    /// let counts = job
    ///     .from_batches(bids.schema(), vec![vec![bids]])?
    ///     .assign_timestamps("t", WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO))?
    ///     .key_by(["auction"])?
    ///     .window(Window::tumbling(Duration::from_secs(1)))
    ///     .aggregate([Agg::count().alias("n")])?;
    /// let top = counts
    ///     .aggregate_per_window(&[], [Agg::max("n").alias("top")])?
    ///     .collect()?;
    /// job.run(&ExecConfig::pipelined())?;
    /// assert_eq!(top.num_rows(), 2); // [0, 1000): 2 (auction 1); [1000, 2000): 1
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn aggregate_per_window(
        &self,
        keys: &[&str],
        aggs: impl IntoIterator<Item = Agg>,
    ) -> Result<Stream> {
        let aggs: Vec<Agg> = aggs.into_iter().collect();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let input = self.schema.clone();
        let check = WindowGroupAggregate::try_new(&input, &keys, &aggs, "aggregate_per_window")?;
        let schema = check.schema().clone();
        let (k, a) = (keys.clone(), aggs.clone());
        let fac: OperatorFactory = Arc::new(move |info: &TaskInfo| {
            Ok(Box::new(WindowGroupAggregate::try_new(
                &input,
                &k,
                &a,
                &info.operator,
            )?) as Box<dyn Operator>)
        });
        let mut partition = keys;
        partition.extend(["window_start".to_string(), "window_end".to_string()]);
        let mut s = self.clone();
        let definition = format!(
            "aggregate per window by [{}]: {}",
            partition.join(", "),
            describe_aggs(&aggs)
        );
        s.next_partitioning = Partitioning::Hash(partition);
        let mut out = s.then("aggregate_per_window", NodeKind::Operator(fac), schema);
        out.define(definition);
        out.time_column = None;
        out.lateness_ms = 0;
        Ok(out)
    }
}

/// A stream partitioned by key: rows with equal keys meet in one subtask.
#[derive(Debug, Clone)]
pub struct KeyedStream {
    pub(super) stream: Stream,
    pub(super) keys: Vec<String>,
}

impl KeyedStream {
    /// The key columns.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Groups rows into event-time windows per key: tumbling, sliding,
    /// cumulative or session ([`Window`]; a [`weir_core::time::TumblingWindow`] converts).
    pub fn window(&self, window: impl Into<Window>) -> WindowedStream {
        WindowedStream {
            stream: self.stream.clone(),
            keys: self.keys.clone(),
            window: window.into(),
            processing_time: false,
            early: None,
        }
    }
}

impl KeyedStream {
    /// Flink's `countWindow(size)`: every `size` rows of a key (in event-time
    /// order, once the watermark passed them) form a window. With allowed
    /// lateness the rows wait for `watermark - lateness`, so rows admitted
    /// behind the watermark still take their place in the order.
    pub fn count_window(&self, size: u64) -> CountWindowedStream {
        self.count_windows(CountWindow::Tumbling { size })
    }

    /// Flink's `countWindow(size, slide)`: every `slide` rows of a key, a
    /// window over its last `size` rows.
    pub fn count_window_sliding(&self, size: u64, slide: u64) -> CountWindowedStream {
        self.count_windows(CountWindow::Sliding { size, slide })
    }

    /// A global window per key, fired by a custom `trigger`; after a firing
    /// at most `evict_to` rows are kept (all if `None`).
    pub fn global_window(
        &self,
        trigger: Arc<dyn WindowTrigger>,
        evict_to: Option<u64>,
    ) -> CountWindowedStream {
        self.count_windows(CountWindow::Global { trigger, evict_to })
    }

    fn count_windows(&self, spec: CountWindow) -> CountWindowedStream {
        CountWindowedStream {
            stream: self.stream.clone(),
            keys: self.keys.clone(),
            spec,
        }
    }

    /// A keyed process function (Flink's KeyedProcessFunction): per-key state
    /// and event-time timers; each key's rows arrive in event-time order once
    /// the watermark passed them, so results are the same in every mode.
    /// With allowed lateness, rows and event-time timers run at
    /// `watermark - lateness` (the forwarded watermark too), so no row the
    /// sources admit is dropped.
    /// `make` builds one function per subtask; it emits rows of `output`.
    pub fn process<P, F>(&self, output: SchemaRef, make: F) -> Result<Stream>
    where
        P: KeyedProcessFunction + 'static,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let s = &self.stream;
        let time = s.time_column.clone().ok_or_else(|| {
            Error::Plan("process needs event time: assign timestamps at the source".into())
        })?;
        let (input, keys, out_schema) = (s.schema.clone(), self.keys.clone(), output.clone());
        KeyedProcessOperator::try_new(&input, &time, &keys, out_schema.clone(), make(), "process")?;
        let lateness = s.lateness_ms;
        let fac: OperatorFactory = Arc::new(move |info: &TaskInfo| {
            Ok(Box::new(
                KeyedProcessOperator::try_new(
                    &input,
                    &time,
                    &keys,
                    out_schema.clone(),
                    make(),
                    &info.operator,
                )?
                .with_lateness(lateness),
            ) as Box<dyn Operator>)
        });
        let mut keyed = s.clone();
        keyed.next_partitioning = Partitioning::Hash(self.keys.clone());
        let definition = format!(
            "process {} by [{}], output [{}]",
            std::any::type_name::<P>(),
            self.keys.join(", "),
            output
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut out = keyed.then("process", NodeKind::Operator(fac), output);
        out.define(definition);
        out.time_column = None;
        out.lateness_ms = 0;
        Ok(out)
    }

    /// Running aggregates per key without windows (Flink's regular group
    /// aggregate), as a changelog: key columns, one column per aggregate and
    /// `op`. Pipelined runs emit each changed key after every batch
    /// (`insert`, then `update`); batch runs emit every key once at the end.
    /// Upserted by key, both give the same table. `first`/`last` need event time.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use weir::{Agg, ExecConfig, Job};
    /// let batch = RecordBatch::try_from_iter([
    ///     ("k", Arc::new(Int64Array::from(vec![1, 2, 1])) as _),
    ///     ("v", Arc::new(Int64Array::from(vec![10, 20, 30])) as _),
    /// ])
    /// .unwrap();
    /// let job = Job::new();
    /// let totals = job
    ///     .from_batches(batch.schema(), vec![vec![batch]])?
    ///     .key_by(["k"])?
    ///     .aggregate([Agg::sum("v").alias("total")])?
    ///     .collect()?;
    /// job.run(&ExecConfig::batch())?;
    /// assert_eq!(totals.num_rows(), 2); // k = 1: 40, k = 2: 20
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn aggregate(&self, aggs: impl IntoIterator<Item = Agg>) -> Result<Stream> {
        self.running_aggregate(aggs.into_iter().collect(), GroupEmit::EveryBatch)
    }

    /// [`aggregate`](Self::aggregate) as a retraction changelog: pipelined
    /// runs emit a changed key's previous row as `delete` and its new row
    /// as `insert` (no `update`), so a consumer needs no key to apply it
    /// (another aggregation over it subtracts what is deleted). Batch runs
    /// emit every key once at the end, as `aggregate` does.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{cast::AsArray, Int64Array, RecordBatch};
    /// use weir::{Agg, ExecConfig, Job};
    /// let batch = |k: i64, v: i64| {
    ///     RecordBatch::try_from_iter([
    ///         ("k", Arc::new(Int64Array::from(vec![k])) as _),
    ///         ("v", Arc::new(Int64Array::from(vec![v])) as _),
    ///     ])
    ///     .unwrap()
    /// };
    /// let job = Job::new();
    /// let totals = job
    ///     .from_batches(batch(1, 1).schema(), vec![vec![batch(1, 10), batch(1, 30)]])?
    ///     .key_by(["k"])?
    ///     .aggregate_retracting([Agg::sum("v").alias("total")])?
    ///     .collect()?;
    /// job.run(&ExecConfig::pipelined())?;
    /// let ops: Vec<String> = totals
    ///     .batches()
    ///     .iter()
    ///     .flat_map(|b| b.column(2).as_string::<i32>().iter().map(|o| o.unwrap().to_string()).collect::<Vec<_>>())
    ///     .collect();
    /// assert_eq!(ops, ["insert", "delete", "insert"]); // 10, then 10 replaced by 40
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn aggregate_retracting(&self, aggs: impl IntoIterator<Item = Agg>) -> Result<Stream> {
        self.running_aggregate(aggs.into_iter().collect(), GroupEmit::Retractions)
    }

    fn running_aggregate(&self, aggs: Vec<Agg>, pipelined: GroupEmit) -> Result<Stream> {
        let s = &self.stream;
        let (input, keys, time) = (s.schema.clone(), self.keys.clone(), s.time_column.clone());
        let check = GroupAggregate::try_new(
            &input,
            &keys,
            &aggs,
            time.as_deref(),
            GroupEmit::EveryBatch,
            "aggregate",
        )?;
        let definition = format!(
            "aggregate by [{}]: {}",
            self.keys.join(", "),
            describe_aggs(&aggs)
        );
        let schema = check.schema().clone();
        let make = move |emit: GroupEmit| -> OperatorFactory {
            let (input, keys, aggs, time) =
                (input.clone(), keys.clone(), aggs.clone(), time.clone());
            Arc::new(move |info: &TaskInfo| {
                Ok(Box::new(GroupAggregate::try_new(
                    &input,
                    &keys,
                    &aggs,
                    time.as_deref(),
                    emit,
                    &info.operator,
                )?) as Box<dyn Operator>)
            })
        };
        let mut keyed = s.clone();
        keyed.next_partitioning = Partitioning::Hash(self.keys.clone());
        let mut out = keyed.then("aggregate", NodeKind::Operator(make(pipelined)), schema);
        self.stream.job.plan.borrow_mut().nodes[out.node].batch_variant =
            Some(make(GroupEmit::AtEnd));
        out.define(definition);
        out.time_column = None;
        out.lateness_ms = 0;
        Ok(out)
    }
}

/// Keyed rows grouped into count (or global, triggered) windows.
#[derive(Debug, Clone)]
pub struct CountWindowedStream {
    stream: Stream,
    keys: Vec<String>,
    spec: CountWindow,
}

impl CountWindowedStream {
    /// One row per fired window: key columns, `window_start` (first row's
    /// time), `window_end` (last row's time + 1), one column per aggregate.
    pub fn aggregate(&self, aggs: impl IntoIterator<Item = Agg>) -> Result<Stream> {
        let aggs: Vec<Agg> = aggs.into_iter().collect();
        let aggs_for_definition = aggs.clone();
        let s = &self.stream;
        let time = s.time_column.clone().ok_or_else(|| {
            Error::Plan("count windows need event time: assign timestamps at the source".into())
        })?;
        let (input, keys, spec) = (s.schema.clone(), self.keys.clone(), self.spec.clone());
        let probe = CountWindowAggregate::try_new(
            &input,
            &time,
            &keys,
            spec.clone(),
            &aggs,
            "count_window",
        )?;
        let schema = probe.schema().clone();
        let lateness = s.lateness_ms;
        let fac: OperatorFactory = Arc::new(move |info: &TaskInfo| {
            Ok(Box::new(
                CountWindowAggregate::try_new(
                    &input,
                    &time,
                    &keys,
                    spec.clone(),
                    &aggs,
                    &info.operator,
                )?
                .with_lateness(lateness),
            ) as Box<dyn Operator>)
        });
        let mut keyed = s.clone();
        keyed.next_partitioning = Partitioning::Hash(self.keys.clone());
        let definition = format!(
            "count window {:?} by [{}]: {}",
            self.spec,
            self.keys.join(", "),
            describe_aggs(&aggs_for_definition)
        );
        let mut out = keyed.then("count_window", NodeKind::Operator(fac), schema);
        out.define(definition);
        out.time_column = None;
        out.lateness_ms = 0;
        Ok(out)
    }
}

/// Rows grouped into windows (per key, or all together), waiting for aggregates.
#[derive(Debug, Clone)]
pub struct WindowedStream {
    stream: Stream,
    keys: Vec<String>,
    window: Window,
    processing_time: bool,
    early: Option<EarlyFiring>,
}

impl WindowedStream {
    /// Emits results before windows close ([`EarlyFiring`]: every N rows of
    /// a key, or every interval of processing time; accumulating or purging).
    /// The output gains the `op` changelog column.
    pub fn trigger(&self, early: EarlyFiring) -> WindowedStream {
        let mut w = self.clone();
        w.early = Some(early);
        w
    }

    /// Windows over processing time (the wall clock when rows arrive)
    /// instead of event time. Pipelined runs fire them on timers; batch runs
    /// fire everything at end of input. Results depend on timing.
    pub fn processing_time(&self) -> WindowedStream {
        let mut w = self.clone();
        w.processing_time = true;
        w
    }

    /// One output row per key and window: the key columns, `window_start`,
    /// `window_end` (epoch ms, end exclusive), one column per aggregate, and,
    /// when results can change (allowed lateness, early firings), an `op`
    /// column (`insert`, `update`, `delete`) so a sink can upsert by key and
    /// window.
    pub fn aggregate(&self, aggs: impl IntoIterator<Item = Agg>) -> Result<Stream> {
        let s = &self.stream;
        let time_column = if self.processing_time {
            None
        } else {
            Some(s.time_column.clone().ok_or_else(|| {
                Error::Plan(
                    "a window needs event time: call assign_timestamps on the source first".into(),
                )
            })?)
        };
        let config = WindowConfig {
            time_column,
            keys: self.keys.clone(),
            window: self.window,
            lateness_ms: if self.processing_time {
                0
            } else {
                s.lateness_ms
            },
            aggs: aggs.into_iter().collect(),
            early: self.early,
        };
        if config.early.is_some() && config.window.is_session() {
            return Err(Error::option(
                "trigger",
                "early firings are not supported on session windows",
            ));
        }
        let input = s.schema.clone();
        let emit_op = config.lateness_ms > 0 || config.early.is_some();
        let schema =
            WindowAggregate::output_schema(&input, &config.keys, &config.aggs, emit_op, "window")?;
        let definition = format!(
            "window {:?} over {} by [{}], lateness {} ms, early firings {:?}: {}",
            config.window,
            config.time_column.as_deref().unwrap_or("processing time"),
            config.keys.join(", "),
            config.lateness_ms,
            config.early,
            describe_aggs(&config.aggs)
        );
        let build = move |name: &str| -> Result<Box<dyn Operator>> {
            Ok(match (config.window, &config.time_column) {
                (Window::Session { gap_ms }, Some(time)) => {
                    Box::new(SessionWindowAggregate::try_new(
                        &input,
                        time,
                        &config.keys,
                        gap_ms,
                        config.lateness_ms,
                        &config.aggs,
                        name,
                    )?)
                }
                (Window::Session { .. }, None) => {
                    return Err(Error::option("window", "session windows need event time"))
                }
                _ => Box::new(WindowAggregate::try_new(&input, &config, name)?),
            })
        };
        // Validate now, so errors surface while building.
        build("window")?;
        let fac: OperatorFactory = Arc::new(move |info: &TaskInfo| build(&info.operator));
        let mut input_stream = s.clone();
        input_stream.next_partitioning = if self.keys.is_empty() {
            Partitioning::Rebalance
        } else {
            Partitioning::Hash(self.keys.clone())
        };
        let name = if self.processing_time {
            "processing_time_window"
        } else {
            "window"
        };
        let mut out = input_stream.then(name, NodeKind::Operator(fac), schema);
        out.define(definition);
        {
            let mut plan = self.stream.job.plan.borrow_mut();
            if self.keys.is_empty() {
                plan.nodes[out.node].max_parallelism = Some(1);
            }
            if !self.processing_time {
                plan.nodes[out.node].lateness_rule = Some(LatenessRule::for_window(self.window));
            }
        }
        out.time_column = None;
        out.lateness_ms = 0;
        Ok(out)
    }
}
