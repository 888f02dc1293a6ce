//! The job graph: the fluent [`Stream`] builder API, the logical plan it
//! produces, and the physical plan (parallelism, edges, fused tasks).
//!
//! May use `operators`, `connectors`, `functions`, `operator`, `expr`, `time`,
//! `key`, `error`. Never
//! `exec`: executors take a finished [`Job`] and its [`PhysicalPlan`].

mod builder;
mod lateness;
mod paths;
mod physical;
mod shard;

pub use builder::{CountWindowedStream, Job, KeyedStream, Stream, WindowedStream};
pub use paths::{Output, Outputs};
pub use physical::{PhysicalEdge, PhysicalPlan, TaskPlan};

use arrow_schema::SchemaRef;
use std::sync::Arc;
use weir_core::operator::{OperatorFactory, SourceSpec};
use weir_core::time::LatenessRule;

/// Index of a node in a [`LogicalPlan`].
pub type NodeId = usize;

/// How rows move from one operator's subtasks to the next one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// Subtask i feeds subtask i (only between equal parallelism; fused when possible).
    Forward,
    /// Rows go to the subtask owning their key's key group.
    Hash(Vec<String>),
    /// Every row goes to every subtask.
    Broadcast,
    /// Batches go round-robin to the subtasks.
    Rebalance,
}

impl std::fmt::Display for Partitioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partitioning::Forward => write!(f, "forward"),
            Partitioning::Hash(k) => write!(f, "hash({})", k.join(", ")),
            Partitioning::Broadcast => write!(f, "broadcast"),
            Partitioning::Rebalance => write!(f, "rebalance"),
        }
    }
}

/// What a node runs.
#[derive(Clone)]
pub enum NodeKind {
    /// A source: any connector, known to the planner only through its
    /// [`SourceSpec`] (so `assign_timestamps` can be pushed into it).
    Source(Arc<dyn SourceSpec>),
    /// A transforming operator.
    Operator(OperatorFactory),
    /// A terminal operator.
    Sink(OperatorFactory),
}

impl NodeKind {
    /// True for sources.
    pub fn is_source(&self) -> bool {
        matches!(self, NodeKind::Source(_))
    }
}

/// An input of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The upstream node.
    pub from: NodeId,
    /// How its rows are distributed.
    pub partitioning: Partitioning,
    /// Which output of the upstream node: 0 is the main output, 1 the
    /// late-row side output, 2 a live source's dead letters.
    pub port: usize,
}

/// One operator of the logical plan.
#[derive(Clone)]
pub struct Node {
    /// Unique name, used in errors and metrics.
    pub name: String,
    /// What it runs.
    pub kind: NodeKind,
    /// Its inputs, in input-index order.
    pub inputs: Vec<Edge>,
    /// Requested parallelism (`None`: the job's default).
    pub parallelism: Option<usize>,
    /// Upper bound (1 for single-file sinks).
    pub max_parallelism: Option<usize>,
    /// Schema of its output.
    pub schema: SchemaRef,
    /// For stateless, order-preserving operators (filter, select,
    /// with_column, union): the columns passed through unchanged. Event time
    /// can be assigned at the source through the single-input ones, and a
    /// source's lateness rule is decided by the operators after them.
    pub passes: Option<Vec<String>>,
    /// For stateful operators that may be the first after a source: the
    /// lateness rule they allow at the source (`None`: per row). See
    /// [`LogicalPlan::resolve_lateness`].
    pub lateness_rule: Option<LatenessRule>,
    /// Superseded by a copy (timestamp pushdown); dropped from the plan
    /// unless something still reads it.
    pub replaced: bool,
    /// For sources: after this long without rows, the source is idle and
    /// stops holding back the watermark (pipelined runs).
    pub idle_timeout: Option<std::time::Duration>,
    /// For operators with a blocking physical variant (the sort-merge
    /// join): what batch mode runs instead of `kind`'s factory.
    pub batch_variant: Option<OperatorFactory>,
    /// For file sinks: the output path (a file or a directory), checked
    /// against every input and other output and locked while the job runs.
    pub writes: Option<std::path::PathBuf>,
    /// For stateful operators (and sources with event time): what the
    /// operator computes (window, keys, aggregates, join, watermarks), kept
    /// in checkpoints so that state is never restored into a changed operator.
    pub definition: Option<String>,
    /// An end of a repartition channel between shards (`for_shard`): its
    /// rows count neither as the job's input nor as its results.
    pub channel: bool,
}

impl Node {
    /// A node with no parallelism set, no lateness rule, definition or
    /// output path: what a builder step fills in afterwards.
    pub fn new(name: String, kind: NodeKind, inputs: Vec<Edge>, schema: SchemaRef) -> Node {
        Node {
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
            channel: false,
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .field("parallelism", &self.parallelism)
            .finish()
    }
}

/// The operators of a job and their connections; node ids are in
/// topological order (a node's inputs always have smaller ids).
#[derive(Debug, Clone, Default)]
pub struct LogicalPlan {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// A shard's key groups ([`LogicalPlan::for_shard`]): hash edges keep
    /// only rows of these and spread them over the consumer's subtasks.
    pub key_groups: Option<weir_core::shard::KeyGroups>,
}

impl LogicalPlan {
    /// One line per operator, in the order they were added: its id, name,
    /// inputs (`#id` and how rows reach it), output columns, and what a
    /// stateful operator computes (its definition). What `EXPLAIN` prints
    /// as the logical plan, before the physical one (tasks and edges).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (id, n) in self.nodes.iter().enumerate() {
            if n.replaced && self.consumers(id).is_empty() {
                continue;
            }
            let inputs: Vec<String> = n
                .inputs
                .iter()
                .map(|e| match e.port {
                    0 => format!("#{} {}", e.from, e.partitioning),
                    p => format!("#{}.{p} {}", e.from, e.partitioning),
                })
                .collect();
            let columns: Vec<&str> = n
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            s.push_str(&format!("#{id} {}", n.name));
            if !inputs.is_empty() {
                s.push_str(&format!(" <- {}", inputs.join(", ")));
            }
            s.push_str(&format!(" [{}]", columns.join(", ")));
            if let Some(d) = &n.definition {
                s.push_str(&format!(": {d}"));
            }
            s.push('\n');
        }
        s
    }

    /// Ids of the nodes that read from `id`.
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.inputs.iter().any(|e| e.from == id))
            .map(|(i, _)| i)
            .collect()
    }
}
