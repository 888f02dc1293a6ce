//! The physical plan: each node's parallelism, the edges between tasks, and
//! the fusion of forward-connected operators into one task (a chain).
//!
//! ```text
//!  logical:  source ─fwd─► filter ─hash(k)─► window ─fwd─► sink
//!  physical: [source→filter] ══hash══► [window→sink]
//!             task 0 (p=4)              task 1 (p=4)
//! ```
//! A node joins its input's task when it has exactly one input, that edge is
//! forward, both have the same parallelism, and the input has no other consumer.

use super::{LogicalPlan, NodeId, Partitioning};
use arrow_schema::SchemaRef;
use weir_core::error::{Error, Result};
use weir_core::key::KEY_GROUPS;

/// One task: a chain of fused nodes run by the same thread (per subtask).
#[derive(Debug, Clone)]
pub struct TaskPlan {
    /// Index in [`PhysicalPlan::tasks`].
    pub id: usize,
    /// The fused nodes, upstream first.
    pub nodes: Vec<NodeId>,
    /// Number of subtasks.
    pub parallelism: usize,
    /// Edges feeding this task.
    pub inputs: Vec<usize>,
    /// Edges leaving this task.
    pub outputs: Vec<usize>,
}

/// A connection between two tasks.
#[derive(Debug, Clone)]
pub struct PhysicalEdge {
    /// Index in [`PhysicalPlan::edges`].
    pub id: usize,
    /// Producing task.
    pub from_task: usize,
    /// Consuming task.
    pub to_task: usize,
    /// Which input of the consumer's head node this edge is.
    pub to_input: usize,
    /// Which output of the producer: 0 main, >= 1 a side output.
    pub port: usize,
    /// How rows are distributed ([`Partitioning::Forward`] only between equal parallelism).
    pub partitioning: Partitioning,
    /// Schema of the rows on the edge.
    pub schema: SchemaRef,
}

impl PhysicalEdge {
    /// Producer subtasks that send to consumer subtask `to` (`from_par` producers).
    pub fn producers_of(&self, to: usize, from_par: usize) -> Vec<usize> {
        match self.partitioning {
            Partitioning::Forward => vec![to],
            _ => (0..from_par).collect(),
        }
    }
}

/// Tasks and edges, in topological order.
#[derive(Debug, Clone)]
pub struct PhysicalPlan {
    /// The tasks; inputs of a task have smaller ids.
    pub tasks: Vec<TaskPlan>,
    /// The edges.
    pub edges: Vec<PhysicalEdge>,
    /// For each logical node, its task.
    pub task_of: Vec<usize>,
    /// For each logical node, its parallelism.
    pub parallelism: Vec<usize>,
}

impl PhysicalPlan {
    /// Plans `plan` with `default_parallelism` for nodes that set none.
    pub fn try_new(plan: &LogicalPlan, default_parallelism: usize) -> Result<Self> {
        if plan.nodes.is_empty() {
            return Err(Error::Plan("the job is empty".into()));
        }
        if default_parallelism == 0 {
            return Err(Error::option("parallelism", "must be at least 1"));
        }
        let mut parallelism = Vec::with_capacity(plan.nodes.len());
        for (id, node) in plan.nodes.iter().enumerate() {
            let mut p = node.parallelism.unwrap_or(default_parallelism);
            if let Some(max) = node.max_parallelism {
                p = p.min(max);
            }
            let hashed = node
                .inputs
                .iter()
                .any(|e| matches!(e.partitioning, Partitioning::Hash(_)));
            let groups = plan.key_groups.as_ref().map_or(KEY_GROUPS, |g| g.len());
            if hashed && p > groups {
                return Err(Error::option(
                    "parallelism",
                    match &plan.key_groups {
                        None => format!(
                            "{p} exceeds the {KEY_GROUPS} key groups of keyed operator `{}`",
                            node.name
                        ),
                        Some(_) => format!(
                            "{p} exceeds the {groups} key groups this shard owns (keyed \
                             operator `{}`): run fewer shards or a lower parallelism",
                            node.name
                        ),
                    },
                ));
            }
            if node.kind.is_source() != node.inputs.is_empty() {
                return Err(Error::Plan(format!(
                    "node `{}` has wrong inputs",
                    node.name
                )));
            }
            if node.inputs.iter().any(|e| e.from >= id) {
                return Err(Error::Plan(format!(
                    "node `{}` reads a later node",
                    node.name
                )));
            }
            parallelism.push(p);
        }
        // Nodes superseded by timestamp pushdown, and sources nobody reads,
        // are dropped (with everything that only feeds them).
        let mut live = vec![false; plan.nodes.len()];
        let mut has_sink = false;
        for id in (0..plan.nodes.len()).rev() {
            let node = &plan.nodes[id];
            let consumers = plan.consumers(id);
            live[id] = match node.kind {
                super::NodeKind::Sink(_) => {
                    has_sink = true;
                    true
                }
                _ => consumers.iter().any(|&c| live[c]),
            };
            if !live[id] && !node.replaced && !node.kind.is_source() {
                return Err(Error::Plan(format!(
                    "the output of `{}` goes nowhere: add a sink",
                    node.name
                )));
            }
        }
        if !has_sink {
            return Err(Error::Plan("the job has no sink".into()));
        }

        let mut tasks: Vec<TaskPlan> = Vec::new();
        let mut task_of = vec![usize::MAX; plan.nodes.len()];
        let mut edges: Vec<PhysicalEdge> = Vec::new();
        let live_consumers =
            |id: NodeId| plan.consumers(id).into_iter().filter(|&c| live[c]).count();
        for (id, node) in plan.nodes.iter().enumerate() {
            if !live[id] {
                continue;
            }
            let fuse_into = match node.inputs.as_slice() {
                [e] if e.partitioning == Partitioning::Forward
                    && e.port == 0
                    && parallelism[e.from] == parallelism[id]
                    && live_consumers(e.from) == 1 =>
                {
                    Some(task_of[e.from])
                }
                _ => None,
            };
            match fuse_into {
                Some(t) => {
                    tasks[t].nodes.push(id);
                    task_of[id] = t;
                }
                None => {
                    let t = tasks.len();
                    tasks.push(TaskPlan {
                        id: t,
                        nodes: vec![id],
                        parallelism: parallelism[id],
                        inputs: vec![],
                        outputs: vec![],
                    });
                    task_of[id] = t;
                    for (input, e) in node.inputs.iter().enumerate() {
                        let from_task = task_of[e.from];
                        let mut partitioning = e.partitioning.clone();
                        if partitioning == Partitioning::Forward
                            && parallelism[e.from] != parallelism[id]
                        {
                            partitioning = Partitioning::Rebalance;
                        }
                        let edge = PhysicalEdge {
                            id: edges.len(),
                            from_task,
                            to_task: t,
                            to_input: input,
                            port: e.port,
                            partitioning,
                            schema: match &plan.nodes[e.from].kind {
                                // a source's side outputs (dead letters) have their own schema
                                super::NodeKind::Source(spec) if e.port >= 2 => spec
                                    .side_port_schema(e.port)
                                    .unwrap_or_else(|| plan.nodes[e.from].schema.clone()),
                                _ => plan.nodes[e.from].schema.clone(),
                            },
                        };
                        tasks[from_task].outputs.push(edge.id);
                        tasks[t].inputs.push(edge.id);
                        edges.push(edge);
                    }
                }
            }
        }
        Ok(PhysicalPlan {
            tasks,
            edges,
            task_of,
            parallelism,
        })
    }

    /// True if node `id` runs (it is not dropped as unused).
    pub fn is_live(&self, id: NodeId) -> bool {
        self.task_of.get(id).is_some_and(|&t| t != usize::MAX)
    }

    /// A one-line-per-task description, e.g. for `weir run --explain`.
    pub fn describe(&self, plan: &LogicalPlan) -> String {
        let mut s = String::new();
        for t in &self.tasks {
            let names: Vec<&str> = t
                .nodes
                .iter()
                .map(|&n| plan.nodes[n].name.as_str())
                .collect();
            s.push_str(&format!(
                "task {} (parallelism {}): {}\n",
                t.id,
                t.parallelism,
                names.join(" -> ")
            ));
            for &e in &t.outputs {
                let e = &self.edges[e];
                s.push_str(&format!("  --{}--> task {}\n", e.partitioning, e.to_task));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::Job;
    use arrow_array::{Int64Array, RecordBatch};
    use std::sync::Arc;
    use std::time::Duration;
    use weir_core::expr::{col, lit};
    use weir_core::time::{TumblingWindow, WatermarkStrategy};
    use weir_functions::Agg;

    use super::*;

    fn job() -> (Job, crate::graph::Stream) {
        let b = RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(vec![1])) as _),
            ("t", Arc::new(Int64Array::from(vec![1])) as _),
        ])
        .unwrap();
        let job = Job::new();
        let s = job.from_batches(b.schema(), vec![vec![b]]).unwrap();
        (job, s)
    }

    #[test]
    fn forward_chains_fuse_and_shuffles_cut() {
        let (job, s) = job();
        s.assign_timestamps("t", WatermarkStrategy::monotonous())
            .unwrap()
            .filter(col("k").gt(lit(0)))
            .unwrap()
            .key_by(["k"])
            .unwrap()
            .window(TumblingWindow::of(Duration::from_secs(1)))
            .aggregate([Agg::count()])
            .unwrap()
            .sink_json("/tmp/never-written.jsonl")
            .unwrap();
        let plan = job.plan();
        let p = PhysicalPlan::try_new(&plan, 4).unwrap();
        // [source, filter] | [window] | [sink p=1]
        assert_eq!(p.tasks.len(), 3, "{}", p.describe(&plan));
        assert_eq!(p.tasks[0].nodes.len(), 2);
        assert_eq!(
            p.edges[0].partitioning,
            Partitioning::Hash(vec!["k".into()])
        );
        assert_eq!(
            p.edges[1].partitioning,
            Partitioning::Rebalance,
            "4 -> 1 cannot be forward"
        );
        assert_eq!(p.tasks[2].parallelism, 1);
    }

    #[test]
    fn a_job_without_sink_is_rejected() {
        let (job, s) = job();
        s.filter(col("k").gt(lit(0))).unwrap();
        let err = PhysicalPlan::try_new(&job.plan(), 2).unwrap_err();
        assert!(err.to_string().contains("add a sink"), "{err}");
    }
}
