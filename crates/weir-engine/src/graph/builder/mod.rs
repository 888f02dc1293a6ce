//! The fluent builder: `Job` → `Stream` → `KeyedStream` → `WindowedStream`.
//!
//! This file holds `Job` and `Stream` and their stateless steps; by
//! concept: `sources.rs` (sources and event time), `windows.rs` (keyed and
//! windowed streams), `joins.rs`, `sinks.rs`.

mod joins;
mod sinks;
mod sources;
mod windows;

pub use windows::{CountWindowedStream, KeyedStream, WindowedStream};

use super::{Edge, LogicalPlan, Node, NodeId, NodeKind, Partitioning};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
#[cfg(feature = "kafka")]
use weir_connectors::kafka::KafkaSinkSpec;
use weir_connectors::live::LiveSourceSpec;
#[cfg(feature = "redis")]
use weir_connectors::redis::RedisSinkSpec;
use weir_connectors::{
    CollectSink, Collected, FileFormat, FileSinkSpec, MemorySourceSpec, ParquetSourceSpec,
    StdoutSink,
};
use weir_core::error::{Error, Result};
use weir_core::expr::Expr;
use weir_core::operator::{
    Boundedness, Operator, OperatorFactory, Source, SourceFactory, SourceSpec, TaskInfo,
    DEAD_LETTER_PORT,
};
use weir_core::time::{validate_time_column, LatenessRule, WatermarkStrategy, Window};
use weir_functions::Agg;
use weir_operators::join::{
    JoinKind, JoinLayout, JoinSpec, SortMergeJoin, SymmetricHashJoin, WindowHashJoin,
};
use weir_operators::{
    BatchFn, Filter, IngestionTime, MapBatches, Passthrough, Project, SessionWindowAggregate,
    WindowAggregate,
};
use weir_operators::{
    CountWindow, CountWindowAggregate, EarlyFiring, KeyedProcessFunction, KeyedProcessOperator,
    WindowConfig, WindowTrigger,
};
use weir_operators::{GroupAggregate, GroupEmit, WindowGroupAggregate};

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
        plan.nodes.push(Node::new(name, kind, inputs, schema));
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
            // an aggregate over a changelog says so (and by which sign column)
            let call = match &a.func {
                weir_functions::aggregate::AggFn::Retracting { sign, .. } => {
                    format!("{}({col}) retracting by {sign}", a.func.name())
                }
                f => format!("{}({col})", f.name()),
            };
            match &a.alias {
                Some(alias) => format!("{call} as {alias}"),
                None => call,
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

    /// This stream's place in the plan: the node that produces it and
    /// which of its outputs it reads. Clones of a stream share it; streams
    /// of different operators never do (a planner can annotate streams by
    /// it, as the SQL planner does with window attributes).
    pub fn id(&self) -> (NodeId, usize) {
        (self.node, self.port)
    }

    /// The job this stream belongs to.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The same rows with their event-time column an ordinary column (SQL's
    /// projection of a time attribute away): what follows cannot window by
    /// event time, and may drop or rename the column. Watermarks still flow
    /// to the sinks.
    pub fn without_event_time(&self) -> Stream {
        Stream {
            time_column: None,
            lateness_ms: 0,
            ..self.clone()
        }
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

    /// Partitions the stream by the given key columns.
    pub fn key_by<S: AsRef<str>>(
        &self,
        columns: impl IntoIterator<Item = S>,
    ) -> Result<KeyedStream> {
        let keys: Vec<String> = columns
            .into_iter()
            .map(|c| c.as_ref().to_string())
            .collect();
        weir_core::key::KeyEncoder::try_new(&self.schema, &keys, "key_by")?;
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
        weir_core::key::KeyEncoder::try_new(&self.schema, &keys, "partition_by")?;
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
}
