//! The fluent builder: `Job` → `Stream` → `KeyedStream` → `WindowedStream`.

use super::{Edge, LogicalPlan, Node, NodeId, NodeKind, Partitioning};
use crate::connectors::kafka::KafkaSinkSpec;
use crate::connectors::live::LiveSourceSpec;
use crate::connectors::redis::RedisSinkSpec;
use crate::connectors::{
    CollectSink, Collected, FileFormat, FileSinkSpec, MemorySourceSpec, ParquetSourceSpec,
    StdoutSink,
};
use crate::error::{Error, Result};
use crate::expr::Expr;
use crate::functions::Agg;
use crate::operator::{
    Boundedness, Operator, OperatorFactory, Source, SourceFactory, SourceSpec, TaskInfo,
    DEAD_LETTER_PORT,
};
use crate::operators::join::{JoinKind, JoinLayout, JoinSpec, SortMergeJoin, SymmetricHashJoin};
use crate::operators::{
    BatchFn, Filter, IngestionTime, MapBatches, Passthrough, Project, SessionWindowAggregate,
    WindowAggregate,
};
use crate::operators::{
    CountWindow, CountWindowAggregate, EarlyFiring, KeyedProcessFunction, KeyedProcessOperator,
    WindowConfig, WindowTrigger,
};
use crate::operators::{GroupAggregate, GroupEmit, WindowGroupAggregate};
use crate::time::{validate_time_column, LatenessRule, WatermarkStrategy, Window};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// A dataflow job under construction. Cheap to clone (shared graph).
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use arrow_array::{Float64Array, Int64Array, RecordBatch};
/// use weir::{col, lit, Agg, ExecConfig, Job, TumblingWindow, WatermarkStrategy};
///
/// let batch = RecordBatch::try_from_iter([
///     ("vehicle", Arc::new(Int64Array::from(vec![1, 1, 2, 1])) as _),
///     ("ts", Arc::new(Int64Array::from(vec![100, 900, 500, 1500])) as _),
///     ("speed", Arc::new(Float64Array::from(vec![50.0, 70.0, 30.0, 10.0])) as _),
/// ]).unwrap();
/// let job = Job::new();
/// let out = job
///     .from_batches(batch.schema(), vec![vec![batch]]).unwrap()
///     .assign_timestamps("ts", WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1))).unwrap()
///     .filter(col("speed").gt(lit(20.0))).unwrap()
///     .key_by(["vehicle"]).unwrap()
///     .window(TumblingWindow::of(Duration::from_secs(1)))
///     .aggregate([Agg::avg("speed").alias("avg_speed"), Agg::count()]).unwrap()
///     .collect().unwrap();
/// job.run(&ExecConfig::batch().with_parallelism(2)).unwrap();
/// assert_eq!(out.num_rows(), 2); // (vehicle 1, [0,1000)) avg 60 and (vehicle 2, [0,1000)) avg 30
/// ```
#[derive(Clone, Default)]
pub struct Job {
    plan: Rc<RefCell<LogicalPlan>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("plan", &*self.plan.borrow())
            .finish()
    }
}

impl Job {
    /// An empty job.
    pub fn new() -> Self {
        Job::default()
    }

    /// A copy of the logical plan built so far, with every source's
    /// lateness rule resolved ([`LogicalPlan::resolve_lateness`]).
    pub fn plan(&self) -> LogicalPlan {
        let mut plan = self.plan.borrow().clone();
        plan.resolve_lateness();
        plan
    }

    fn add(&self, base_name: &str, kind: NodeKind, inputs: Vec<Edge>, schema: SchemaRef) -> NodeId {
        let mut plan = self.plan.borrow_mut();
        let taken = |n: &str| plan.nodes.iter().any(|node| node.name == n);
        let mut name = base_name.to_string();
        let mut i = 2;
        while taken(&name) {
            name = format!("{base_name}-{i}");
            i += 1;
        }
        plan.nodes.push(Node {
            name,
            kind,
            inputs,
            parallelism: None,
            max_parallelism: None,
            schema,
            passes: None,
            lateness_rule: None,
            replaced: false,
            idle_timeout: None,
            batch_variant: None,
            writes: None,
            definition: None,
        });
        plan.nodes.len() - 1
    }

    fn stream(&self, node: NodeId, schema: SchemaRef, time_column: Option<String>) -> Stream {
        Stream {
            job: self.clone(),
            node,
            schema,
            time_column,
            lateness_ms: 0,
            time_sources: Vec::new(),
            port: 0,
            next_partitioning: Partitioning::Forward,
        }
    }

    /// A bounded source over a Parquet file, a directory of Parquet files or
    /// a glob pattern (see [`ParquetSourceSpec`]: Hive partitions, schema
    /// widening). Fails now if a file is missing or unreadable, or if the
    /// files' schemas cannot be widened to one.
    pub fn parquet(&self, path: impl AsRef<Path>) -> Result<Stream> {
        self.parquet_files(&[path.as_ref().to_path_buf()])
    }

    /// A bounded source over several Parquet files, directories or patterns.
    pub fn parquet_files(&self, paths: &[PathBuf]) -> Result<Stream> {
        self.parquet_with(paths, 8192)
    }

    /// A bounded Parquet source reading `batch_size` rows at a time.
    pub fn parquet_with(&self, paths: &[PathBuf], batch_size: usize) -> Result<Stream> {
        self.parquet_source(ParquetSourceSpec::try_new(paths)?.with_batch_size(batch_size))
    }

    /// A bounded Parquet source configured beforehand: time travel
    /// (`with_time_range`), replay pacing (`with_replay_speed`), projection
    /// (`with_projection`), read-ahead, batch size.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    /// use weir::connectors::replay::{parse_time, ReplaySpeed, TimeRange};
    /// use weir::connectors::ParquetSourceSpec;
    /// use weir::{Job, WatermarkStrategy};
    /// let from = parse_time("from", "2026-11-01T00:05:00Z")?;
    /// let spec = ParquetSourceSpec::try_new(&["data/obd".into()])?
    ///     .with_time_range("event_time", TimeRange { from: Some(from), until: None })?
    ///     .with_replay_speed("event_time", ReplaySpeed::Times(60.0))?;
    /// let job = Job::new();
    /// let readings = job
    ///     .parquet_source(spec)?
    ///     .assign_timestamps("event_time", WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(30)))?;
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn parquet_source(&self, spec: ParquetSourceSpec) -> Result<Stream> {
        Ok(self.add_source("parquet_source", Arc::new(spec)))
    }

    /// A bounded source over in-memory batches; each inner `Vec` is a split.
    pub fn from_batches(&self, schema: SchemaRef, splits: Vec<Vec<RecordBatch>>) -> Result<Stream> {
        let spec = MemorySourceSpec::try_new(schema, splits)?;
        Ok(self.add_source("memory_source", Arc::new(spec)))
    }

    /// A live source (broker, socket, stdin, watched directory): records
    /// decoded from JSON into the spec's schema. Event time is assigned with
    /// [`Stream::assign_timestamps`] as for Parquet, and watermarks are then
    /// kept per partition.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use arrow_schema::{DataType, Field, Schema, TimeUnit};
    /// use weir::connectors::live::{lines::LinesConnector, LiveSourceSpec, OnError};
    /// use weir::{ExecConfig, Job, WatermarkStrategy};
    /// let schema = Arc::new(Schema::new(vec![
    ///     Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
    ///     Field::new("speed", DataType::Float64, true),
    /// ]));
    /// let text = "{\"t\": 1000, \"speed\": 50}\n{\"t\": oops}\n{\"t\": 2000, \"speed\": 70}\n";
    /// let spec = LiveSourceSpec::new("lines", schema, Arc::new(move |_| {
    ///     Ok(Box::new(LinesConnector::from_reader("text", std::io::Cursor::new(text))?) as _)
    /// }), true)
    /// .with_on_error(OnError::DeadLetter);
    /// let job = Job::new();
    /// let rows = job.live_source(spec).assign_timestamps("t", WatermarkStrategy::monotonous())?;
    /// let bad = rows.dead_letters()?.collect()?;
    /// let good = rows.collect()?;
    /// let metrics = job.run(&ExecConfig::pipelined().with_parallelism(1))?;
    /// assert_eq!((good.num_rows(), bad.num_rows(), metrics.bad_records), (2, 1, 1));
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn live_source(&self, spec: LiveSourceSpec) -> Stream {
        self.add_source("live_source", Arc::new(spec))
    }

    /// Any source, built per subtask by `factory`. It assigns its own event
    /// time, if any ([`Stream::with_source_event_time`]); boundedness is
    /// not declared ([`Boundedness::Unknown`]).
    pub fn source(&self, name: &str, schema: SchemaRef, factory: SourceFactory) -> Stream {
        let spec = FactorySource {
            name: name.to_string(),
            schema,
            factory,
        };
        self.add_source(name, Arc::new(spec))
    }

    /// A source over any connector: the node is named `<connector>_source`.
    /// See [`SourceSpec`] for an example.
    pub fn source_spec(&self, spec: Arc<dyn SourceSpec>) -> Stream {
        let name = format!("{}_source", spec.name());
        self.add_source(&name, spec)
    }

    /// Adds source node `name` reading `spec`.
    fn add_source(&self, name: &str, spec: Arc<dyn SourceSpec>) -> Stream {
        let schema = spec.schema().clone();
        let max_parallelism = spec.max_parallelism();
        let id = self.add(name, NodeKind::Source(spec), vec![], schema.clone());
        self.plan.borrow_mut().nodes[id].max_parallelism = max_parallelism;
        self.stream(id, schema, None)
    }
}

/// A source made by a bare factory ([`Job::source`]).
struct FactorySource {
    // config
    name: String,
    schema: SchemaRef,
    factory: SourceFactory,
}

impl SourceSpec for FactorySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn boundedness(&self) -> Boundedness {
        Boundedness::Unknown
    }

    fn create(self: Arc<Self>, task: &TaskInfo) -> Result<Box<dyn Source>> {
        (self.factory)(task)
    }
}

/// A stream of batches: the output of one node of the job.
#[derive(Clone)]
pub struct Stream {
    job: Job,
    node: NodeId,
    schema: SchemaRef,
    time_column: Option<String>,
    /// Allowed lateness of the event time (from the strategy), for windows.
    lateness_ms: i64,
    /// The source nodes that assign event time (their port 1 carries late rows).
    time_sources: Vec<NodeId>,
    /// Which output of `node` this stream reads.
    port: usize,
    next_partitioning: Partitioning,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("node", &self.node)
            .field("time_column", &self.time_column)
            .finish()
    }
}

/// `avg(speed) as avg_speed, count(*) as n`: aggregates in a definition.
fn describe_aggs(aggs: &[Agg]) -> String {
    aggs.iter()
        .map(|a| {
            let col = a.column.as_deref().unwrap_or("*");
            match &a.alias {
                Some(alias) => format!("{}({col}) as {alias}", a.func.name()),
                None => format!("{}({col})", a.func.name()),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn factory<O: Operator + Clone + Sync + 'static>(op: O) -> OperatorFactory {
    Arc::new(move |_: &TaskInfo| Ok(Box::new(op.clone()) as Box<dyn Operator>))
}

impl Stream {
    /// The schema of this stream's batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The event-time column, once timestamps are assigned.
    pub fn time_column(&self) -> Option<&str> {
        self.time_column.as_deref()
    }

    /// The job this stream belongs to.
    pub fn job(&self) -> &Job {
        &self.job
    }

    fn name(&self) -> String {
        self.job.plan.borrow().nodes[self.node].name.clone()
    }

    /// Records what this stream's operator computes (see [`super::Node::definition`]).
    fn define(&self, definition: String) {
        self.job.plan.borrow_mut().nodes[self.node].definition = Some(definition);
    }

    /// Adds a stateless, order-preserving operator that passes `passes` through unchanged.
    fn then_stateless(
        &self,
        name: &str,
        kind: NodeKind,
        schema: SchemaRef,
        passes: Vec<String>,
    ) -> Stream {
        let mut s = self.then(name, kind, schema);
        self.job.plan.borrow_mut().nodes[s.node].passes = Some(passes.clone());
        if s.time_column.as_ref().is_some_and(|t| !passes.contains(t)) {
            // the event-time column was redefined: its lateness no longer applies
            s.time_column = None;
            s.lateness_ms = 0;
        }
        s
    }

    fn then(&self, name: &str, kind: NodeKind, schema: SchemaRef) -> Stream {
        let edge = Edge {
            from: self.node,
            partitioning: self.next_partitioning.clone(),
            port: self.port,
        };
        let id = self.job.add(name, kind, vec![edge], schema.clone());
        let mut s = self.job.stream(id, schema, self.time_column.clone());
        s.lateness_ms = self.lateness_ms;
        s.time_sources = self.time_sources.clone();
        s
    }

    /// Keeps rows where `predicate` is true.
    pub fn filter(&self, predicate: Expr) -> Result<Stream> {
        let op = Filter::try_new(predicate, &self.schema)?;
        let all = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        Ok(self.then_stateless(
            "filter",
            NodeKind::Operator(factory(op)),
            self.schema.clone(),
            all,
        ))
    }

    /// Keeps only the named columns, in that order.
    pub fn select<S: AsRef<str>>(&self, columns: impl IntoIterator<Item = S>) -> Result<Stream> {
        let cols = columns
            .into_iter()
            .map(|c| (c.as_ref().to_string(), Expr::Column(c.as_ref().to_string())))
            .collect();
        self.select_exprs(cols)
    }

    /// Computes new columns `(name, expression)`; the time column must survive.
    /// Redefining the time column (`("t", col("t") + 5)`) ends event time:
    /// assign timestamps again at the source to use the new values.
    pub fn select_exprs(&self, columns: Vec<(String, Expr)>) -> Result<Stream> {
        let passes: Vec<String> = columns
            .iter()
            .filter(|(n, e)| matches!(e, Expr::Column(c) if c == n))
            .map(|(n, _)| n.clone())
            .collect();
        let op = Project::try_new(columns, &self.schema)?;
        let schema = op.schema().clone();
        if let Some(t) = &self.time_column {
            if schema.field_with_name(t).is_err() {
                return Err(Error::column(
                    t,
                    "select",
                    "the event-time column cannot be dropped",
                ));
            }
        }
        Ok(self.then_stateless("select", NodeKind::Operator(factory(op)), schema, passes))
    }

    /// Adds (or replaces) column `name` computed by `expr`.
    pub fn with_column(&self, name: &str, expr: Expr) -> Result<Stream> {
        let mut cols: Vec<(String, Expr)> = self
            .schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), Expr::Column(f.name().clone())))
            .collect();
        match cols.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = expr,
            None => cols.push((name.to_string(), expr)),
        }
        let passes: Vec<String> = cols
            .iter()
            .filter(|(n, e)| matches!(e, Expr::Column(c) if c == n))
            .map(|(n, _)| n.clone())
            .collect();
        let op = Project::try_new(cols, &self.schema)?;
        let schema = op.schema().clone();
        Ok(self.then_stateless(
            "with_column",
            NodeKind::Operator(factory(op)),
            schema,
            passes,
        ))
    }

    /// Applies `f` to every batch; `f` must keep the schema.
    pub fn map_batches(
        &self,
        f: impl Fn(RecordBatch) -> Result<RecordBatch> + Send + Sync + 'static,
    ) -> Stream {
        self.map_batches_with_schema(self.schema.clone(), f)
    }

    /// Applies `f` to every batch; `f` returns batches of `schema`.
    pub fn map_batches_with_schema(
        &self,
        schema: SchemaRef,
        f: impl Fn(RecordBatch) -> Result<RecordBatch> + Send + Sync + 'static,
    ) -> Stream {
        let f: BatchFn = Arc::new(f);
        let s = schema.clone();
        let fac: OperatorFactory = Arc::new(move |_: &TaskInfo| {
            Ok(Box::new(MapBatches::new(f.clone(), s.clone())) as Box<dyn Operator>)
        });
        let mut out = self.then("map_batches", NodeKind::Operator(fac), schema);
        // the function may change times or order: lateness decided upstream no longer applies
        out.time_column = None;
        out.lateness_ms = 0;
        out
    }

    /// Takes event time from `column` (Int64 epoch ms or Timestamp) and
    /// generates watermarks with `strategy`.
    ///
    /// Event time is always assigned where rows are read: per source split
    /// (a Parquet row group, an in-memory split), so which rows are late
    /// depends only on the data, never on parallelism, executor or timing.
    /// The stream must therefore come from a Parquet or in-memory source,
    /// possibly through `filter`, `select` and `with_column` steps that keep
    /// `column` unchanged (lateness is then judged on every row the source
    /// read, before those steps). Anything else is an error.
    pub fn assign_timestamps(&self, column: &str, strategy: WatermarkStrategy) -> Result<Stream> {
        let context = format!("assign_timestamps on `{}`", self.name());
        validate_time_column(&self.schema, column, &context)?;
        strategy.validate(&self.schema, &context)?;
        if let Some(t) = &self.time_column {
            return Err(Error::Plan(format!(
                "{context}: event time is already assigned (column `{t}`)"
            )));
        }
        if self.next_partitioning != Partitioning::Forward {
            return Err(Error::Plan(format!(
                "{context}: assign timestamps before rebalance/broadcast"
            )));
        }
        let mut plan = self.job.plan.borrow_mut();
        // Walk back to the source through operators that keep `column`.
        let mut path = vec![self.node];
        loop {
            let node = &plan.nodes[*path.last().expect("path starts non-empty")];
            if node.kind.is_source() {
                break;
            }
            let through = match (&node.passes, node.inputs.as_slice()) {
                (Some(passes), [e])
                    if e.partitioning == Partitioning::Forward
                        && e.port == 0
                        && passes.iter().any(|c| c == column) =>
                {
                    e.from
                }
                _ => {
                    return Err(Error::Plan(format!(
                        "{context}: event time must be assigned at a Parquet, in-memory or live source, \
                         through filter/select/with_column steps only (found `{}`); \
                         lateness decided elsewhere would depend on thread timing",
                        node.name
                    )))
                }
            };
            path.push(through);
        }
        path.reverse();
        let source = &plan.nodes[path[0]];
        let kind = match &source.kind {
            NodeKind::Source(spec) if spec.takes_event_time() => {
                NodeKind::Source(spec.with_event_time(column, &strategy)?)
            }
            _ => {
                return Err(Error::Plan(format!(
                    "{context}: `{}` is a custom source; it must assign event time itself",
                    source.name
                )))
            }
        };
        if self.port != 0 {
            return Err(Error::Plan(format!(
                "{context}: late rows already passed a source's event time"
            )));
        }
        // Copy the path with event time at its source; the originals stay for
        // any other branch that reads them (and are dropped if none does).
        let mut previous: Option<NodeId> = None;
        let source_copy = plan.nodes.len();
        for &id in &path {
            let mut copy = plan.nodes[id].clone();
            let original = &mut plan.nodes[id];
            original.replaced = true;
            original.name = format!("{} (without event time)", original.name);
            match previous {
                None => {
                    copy.kind = kind.clone();
                    copy.idle_timeout = strategy.idle_timeout;
                    copy.definition = Some(format!("event time {column}, {strategy:?}"));
                }
                Some(p) => copy.inputs[0].from = p,
            }
            plan.nodes.push(copy);
            previous = Some(plan.nodes.len() - 1);
        }
        drop(plan);
        let mut s = self.clone();
        s.node = previous.expect("the path holds at least the source");
        s.time_column = Some(column.to_string());
        s.lateness_ms = strategy.allowed_lateness_ms;
        s.time_sources = vec![source_copy];
        Ok(s)
    }

    /// Declares that this custom source (from [`Job::source`]) assigns event
    /// time itself from `column` and emits its own watermarks (per split,
    /// deciding late rows, like the built-in sources).
    pub fn with_source_event_time(&self, column: &str) -> Result<Stream> {
        let plan = self.job.plan.borrow();
        let custom = matches!(&plan.nodes[self.node].kind, NodeKind::Source(spec) if !spec.takes_event_time());
        if !custom || self.port != 0 {
            return Err(Error::Plan(
                "with_source_event_time applies to a custom source".into(),
            ));
        }
        drop(plan);
        validate_time_column(&self.schema, column, "with_source_event_time")?;
        let mut s = self.clone();
        s.time_column = Some(column.to_string());
        s.define(format!("event time {column} (assigned by the source)"));
        Ok(s)
    }

    /// Declares `column` this stream's event time where the producing
    /// operator guarantees no row is at or behind the watermark it has
    /// forwarded: an inner join's pairs stamped with the later of the two
    /// times, or rows a process function emits at an event-time timer for
    /// the timer's time. Crate-internal: a wrong claim would make results
    /// depend on timing.
    pub(crate) fn with_derived_event_time(&self, column: &str) -> Result<Stream> {
        validate_time_column(&self.schema, column, "with_derived_event_time")?;
        let mut s = self.clone();
        s.time_column = Some(column.to_string());
        s.lateness_ms = 0;
        Ok(s)
    }

    /// Marks this source idle after `timeout` without rows: it then stops
    /// holding back the watermark of downstream operators (pipelined runs;
    /// results then depend on timing, as in Flink).
    pub fn with_idle_timeout(&self, timeout: std::time::Duration) -> Result<Stream> {
        let mut plan = self.job.plan.borrow_mut();
        let node = &mut plan.nodes[self.node];
        if !node.kind.is_source() {
            return Err(Error::Plan(format!(
                "with_idle_timeout applies to sources, not `{}`",
                node.name
            )));
        }
        node.idle_timeout = Some(timeout);
        Ok(self.clone())
    }

    /// Adds `column` (Timestamp ms, UTC) with the wall-clock time each row
    /// passes this point, and makes it the event time (ingestion time).
    /// Watermarks follow the clock, so no row is late; results depend on
    /// timing. Put it right after a source for "time the row entered weir".
    pub fn with_ingestion_time(&self, column: &str) -> Result<Stream> {
        if self.schema.field_with_name(column).is_ok() {
            return Err(Error::column(
                column,
                "with_ingestion_time",
                "already exists",
            ));
        }
        let op = IngestionTime::new(&self.schema, column);
        let schema = IngestionTime::output_schema(&self.schema, column);
        let mut s = self.then("ingestion_time", NodeKind::Operator(factory(op)), schema);
        s.time_column = Some(column.to_string());
        s.lateness_ms = 0;
        Ok(s)
    }

    /// The rows the source dropped as late (behind the watermark by more
    /// than the allowed lateness), as their own stream: route them to a
    /// sink to keep them. They are counted in `late_rows` either way.
    pub fn late_rows(&self) -> Result<Stream> {
        if self.time_sources.is_empty() {
            return Err(Error::Plan(
                "late_rows needs a stream whose event time was assigned at its source".into(),
            ));
        }
        let mut streams = self.time_sources.iter().map(|&source| {
            let schema = self.job.plan.borrow().nodes[source].schema.clone();
            let mut s = self.job.stream(source, schema, None);
            s.port = 1;
            s
        });
        let first = streams.next().expect("checked non-empty");
        streams.try_fold(first, |acc, s| acc.union(&s))
    }

    /// The records the live source behind this stream could not decode
    /// (with `on_error = dead_letter`): columns `source`, `partition`,
    /// `position`, `reason`, `record`, `seen_at`. Call it on the stream you
    /// keep using (after `assign_timestamps`), so both read one source.
    pub fn dead_letters(&self) -> Result<Stream> {
        let plan = self.job.plan.borrow();
        let mut id = self.node;
        loop {
            let node = &plan.nodes[id];
            if let NodeKind::Source(spec) = &node.kind {
                if let Some(schema) = spec.side_port_schema(DEAD_LETTER_PORT) {
                    drop(plan);
                    let mut s = self.job.stream(id, schema, None);
                    s.port = DEAD_LETTER_PORT;
                    return Ok(s);
                }
            }
            match (node.passes.is_some(), node.inputs.as_slice()) {
                (true, [e]) if e.port == 0 && e.partitioning == Partitioning::Forward => {
                    id = e.from
                }
                _ => {
                    return Err(Error::Plan(format!(
                        "dead_letters needs a stream read from a live source through \
                         filter/select/with_column steps only (found `{}`)",
                        node.name
                    )))
                }
            }
        }
    }

    /// Partitions the stream by the given key columns.
    pub fn key_by<S: AsRef<str>>(
        &self,
        columns: impl IntoIterator<Item = S>,
    ) -> Result<KeyedStream> {
        let keys: Vec<String> = columns
            .into_iter()
            .map(|c| c.as_ref().to_string())
            .collect();
        crate::key::KeyEncoder::try_new(&self.schema, &keys, "key_by")?;
        Ok(KeyedStream {
            stream: self.clone(),
            keys,
        })
    }

    /// Merges `other` (same schema and time column) into this stream.
    pub fn union(&self, other: &Stream) -> Result<Stream> {
        if !Rc::ptr_eq(&self.job.plan, &other.job.plan) {
            return Err(Error::Plan("union of streams from different jobs".into()));
        }
        if self.schema.fields() != other.schema.fields() {
            return Err(Error::SchemaMismatch {
                location: "union".into(),
                message: format!(
                    "left has columns {:?}, right has {:?}",
                    self.schema
                        .fields()
                        .iter()
                        .map(|f| format!("{}: {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>(),
                    other
                        .schema
                        .fields()
                        .iter()
                        .map(|f| format!("{}: {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>()
                ),
            });
        }
        if self.time_column != other.time_column || self.lateness_ms != other.lateness_ms {
            return Err(Error::Plan(format!(
                "union: event time differs (column {:?} with lateness {} ms vs {:?} with {} ms)",
                self.time_column, self.lateness_ms, other.time_column, other.lateness_ms
            )));
        }
        let inputs = vec![
            Edge {
                from: self.node,
                partitioning: self.next_partitioning.clone(),
                port: self.port,
            },
            Edge {
                from: other.node,
                partitioning: other.next_partitioning.clone(),
                port: other.port,
            },
        ];
        let lateness_ms = self.lateness_ms;
        let id = self.job.add(
            "union",
            NodeKind::Operator(factory(Passthrough)),
            inputs,
            self.schema.clone(),
        );
        let all = self.schema.fields().iter().map(|f| f.name().clone());
        self.job.plan.borrow_mut().nodes[id].passes = Some(all.collect());
        let mut out = self
            .job
            .stream(id, self.schema.clone(), self.time_column.clone());
        out.lateness_ms = lateness_ms;
        out.time_sources = self
            .time_sources
            .iter()
            .chain(&other.time_sources)
            .copied()
            .collect();
        Ok(out)
    }

    /// The next operator receives batches round-robin from every subtask.
    pub fn rebalance(&self) -> Stream {
        let mut s = self.clone();
        s.next_partitioning = Partitioning::Rebalance;
        s
    }

    /// The next operator receives each row in the subtask that owns its
    /// key (a hash shuffle, as before a keyed operator, but the next
    /// operator may be any one: Flink's `keyBy` followed by a `map`).
    /// Errors name a missing key column.
    pub fn partition_by<S: AsRef<str>>(&self, keys: impl IntoIterator<Item = S>) -> Result<Stream> {
        let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_string()).collect();
        crate::key::KeyEncoder::try_new(&self.schema, &keys, "partition_by")?;
        let mut s = self.clone();
        s.next_partitioning = Partitioning::Hash(keys);
        Ok(s)
    }

    /// The next operator receives every batch in every subtask.
    pub fn broadcast(&self) -> Stream {
        let mut s = self.clone();
        s.next_partitioning = Partitioning::Broadcast;
        s
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

    /// Joins this stream (left) with `other` (right) on equal keys, as
    /// `spec` says: window, interval or regular, inner or outer. Both inputs
    /// are hash-partitioned by their keys. Pipelined runs use a symmetric
    /// hash join, batch runs a sort-merge join; both give the same rows (a
    /// regular outer join's changelog materializes to the batch result).
    /// The output has no event time.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use weir::operators::join::JoinSpec;
    /// use weir::{ExecConfig, Job};
    /// let batch = |k: Vec<i64>, v: Vec<i64>| {
    ///     RecordBatch::try_from_iter([
    ///         ("k", Arc::new(Int64Array::from(k)) as _),
    ///         ("v", Arc::new(Int64Array::from(v)) as _),
    ///     ])
    ///     .unwrap()
    /// };
    /// let left = batch(vec![1, 2], vec![10, 20]);
    /// let right = batch(vec![2, 3], vec![200, 300]);
    /// let job = Job::new();
    /// let l = job.from_batches(left.schema(), vec![vec![left]])?;
    /// let r = job.from_batches(right.schema(), vec![vec![right]])?;
    /// let joined = l.join(&r, JoinSpec::regular().on(["k"], ["k"]))?.collect()?;
    /// job.run(&ExecConfig::batch())?;
    /// let out = joined.batches();
    /// assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 1); // k = 2
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn join(&self, other: &Stream, spec: JoinSpec) -> Result<Stream> {
        if !Rc::ptr_eq(&self.job.plan, &other.job.plan) {
            return Err(Error::Plan("join of streams from different jobs".into()));
        }
        if spec.needs_event_time() && (self.lateness_ms > 0 || other.lateness_ms > 0) {
            return Err(Error::Plan(format!(
                "join: window, interval and TTL joins need inputs without allowed lateness (left {} ms, right {} ms): a row behind the watermark could miss its match",
                self.lateness_ms, other.lateness_ms
            )));
        }
        let layout = JoinLayout::try_new(
            &self.schema,
            &other.schema,
            self.time_column.as_deref(),
            other.time_column.as_deref(),
            &spec,
        )?;
        let inputs = vec![
            Edge {
                from: self.node,
                partitioning: Partitioning::Hash(spec.left_keys.clone()),
                port: self.port,
            },
            Edge {
                from: other.node,
                partitioning: Partitioning::Hash(spec.right_keys.clone()),
                port: other.port,
            },
        ];
        let streaming = layout.clone();
        let pipelined: OperatorFactory = Arc::new(move |_: &TaskInfo| {
            Ok(Box::new(SymmetricHashJoin::try_new(streaming.clone())?) as Box<dyn Operator>)
        });
        let blocking = layout.clone();
        let batch: OperatorFactory = Arc::new(move |_: &TaskInfo| {
            Ok(Box::new(SortMergeJoin::try_new(blocking.clone())?) as Box<dyn Operator>)
        });
        let schema = layout.schema().clone();
        let id = self.job.add(
            "join",
            NodeKind::Operator(pipelined),
            inputs,
            schema.clone(),
        );
        {
            let mut plan = self.job.plan.borrow_mut();
            plan.nodes[id].batch_variant = Some(batch);
            // a window join keeps a window's rows until it fires, like a window
            // aggregate; interval and regular joins need rows after the watermark
            if let JoinKind::Window(w) = layout.spec().kind {
                plan.nodes[id].lateness_rule = Some(LatenessRule::for_window(w));
            }
        }
        let mut out = self.job.stream(id, schema, None);
        out.define(format!("join {spec:?}"));
        out.time_sources = self
            .time_sources
            .iter()
            .chain(&other.time_sources)
            .copied()
            .collect();
        Ok(out)
    }

    /// Sets the parallelism of the operator that produces this stream.
    pub fn with_parallelism(&self, parallelism: usize) -> Result<Stream> {
        if parallelism == 0 {
            return Err(Error::option("parallelism", "must be at least 1"));
        }
        let mut plan = self.job.plan.borrow_mut();
        let node = &mut plan.nodes[self.node];
        if let Some(max) = node.max_parallelism.filter(|&m| parallelism > m) {
            return Err(Error::option(
                "parallelism",
                format!(
                    "`{}` runs with at most {max} subtask{} (asked for {parallelism})",
                    node.name,
                    if max == 1 { "" } else { "s" }
                ),
            ));
        }
        node.parallelism = Some(parallelism);
        drop(plan);
        Ok(self.clone())
    }

    fn sink(&self, name: &str, op: OperatorFactory, max_parallelism: Option<usize>) -> NodeId {
        let s = self.then(name, NodeKind::Sink(op), self.schema.clone());
        self.job.plan.borrow_mut().nodes[s.node].max_parallelism = max_parallelism;
        s.node
    }

    /// Writes Parquet: one file if `path` ends in `.parquet`, else a
    /// directory of part files. Published only when the job succeeds.
    pub fn sink_parquet(&self, path: impl Into<PathBuf>) -> Result<()> {
        self.sink_file(path.into(), FileFormat::Parquet)
    }

    /// Writes JSON lines: one file if `path` ends in `.jsonl`/`.json`, else a
    /// directory of part files. Published only when the job succeeds.
    pub fn sink_json(&self, path: impl Into<PathBuf>) -> Result<()> {
        self.sink_file(path.into(), FileFormat::JsonLines)
    }

    fn sink_file(&self, path: PathBuf, format: FileFormat) -> Result<()> {
        if path.as_os_str().is_empty() {
            return Err(Error::option("sink.path", "is empty"));
        }
        if path.is_dir() && FileFormat::from_path(&path).is_some() {
            return Err(Error::option(
                "sink.path",
                format!("{} is a directory but names a file", path.display()),
            ));
        }
        match FileFormat::named_by(&path) {
            Err(message) => return Err(Error::option("sink.path", message)),
            Ok(Some(named)) if named != format => {
                return Err(Error::option(
                    "sink.path",
                    format!(
                        "{} names a {} file, but the sink writes {}",
                        path.display(),
                        named.name(),
                        format.name()
                    ),
                ))
            }
            Ok(_) => {}
        }
        let name = format!("{}_sink", format.extension());
        self.job.plan.borrow().check_new_output(&name, &path)?;
        let spec = FileSinkSpec::new(path.clone(), format, self.schema.clone());
        spec.check_target()?;
        let single = spec.is_single_file();
        let fac: OperatorFactory =
            Arc::new(move |info: &TaskInfo| Ok(Box::new(spec.create(info)) as Box<dyn Operator>));
        let id = self.sink(&name, fac, single.then_some(1));
        self.job.plan.borrow_mut().nodes[id].writes = Some(path);
        Ok(())
    }

    /// Produces every row to a Kafka topic as one JSON object per record
    /// (at-least-once; see [`KafkaSinkSpec`]). Checks the key and timestamp
    /// columns and that the topic exists now.
    pub fn sink_kafka(&self, spec: KafkaSinkSpec) -> Result<()> {
        let sink = spec.prepare(&self.schema)?;
        let fac: OperatorFactory =
            Arc::new(move |info: &TaskInfo| Ok(Box::new(sink.create(info)?) as Box<dyn Operator>));
        self.sink("kafka_sink", fac, None);
        Ok(())
    }

    /// Appends every row to a Redis stream as one entry holding the JSON
    /// object (at-least-once; see [`RedisSinkSpec`]). Checks the server now.
    pub fn sink_redis(&self, spec: RedisSinkSpec) -> Result<()> {
        spec.check()?;
        let spec = Arc::new(spec);
        let fac: OperatorFactory =
            Arc::new(move |_: &TaskInfo| Ok(Box::new(spec.create()?) as Box<dyn Operator>));
        self.sink("redis_sink", fac, None);
        Ok(())
    }

    /// Prints rows to standard output as JSON lines.
    pub fn sink_stdout(&self) {
        self.sink("stdout_sink", factory(StdoutSink), Some(1));
    }

    /// Collects every row in memory; read them after the job ran.
    pub fn collect(&self) -> Result<Collected> {
        let target = Collected::default();
        let t = target.clone();
        let fac: OperatorFactory = Arc::new(move |_: &TaskInfo| {
            Ok(Box::new(CollectSink::new(t.clone())) as Box<dyn Operator>)
        });
        self.sink("collect_sink", fac, None);
        Ok(target)
    }
}

/// A stream partitioned by key: rows with equal keys meet in one subtask.
#[derive(Debug, Clone)]
pub struct KeyedStream {
    stream: Stream,
    keys: Vec<String>,
}

impl KeyedStream {
    /// The key columns.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Groups rows into event-time windows per key: tumbling, sliding,
    /// cumulative or session ([`Window`]; a [`crate::TumblingWindow`] converts).
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
        let aggs: Vec<Agg> = aggs.into_iter().collect();
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
        let mut out = keyed.then(
            "aggregate",
            NodeKind::Operator(make(GroupEmit::EveryBatch)),
            schema,
        );
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
