//! Dividing a job among shards (`--shard i/N`): which input each shard
//! reads, and which rows its keyed operators keep.
//!
//! ```text
//!  a source's ShardShare ─┬─ Partitions (Kafka, Redis): shard i reads partitions p mod N == i;
//!                         │    keyed operators see every key of those partitions
//!  no partitioned source ─┼─ keyed job: every shard reads all of its bounded inputs, and the
//!                         │    hash edges keep the rows of the shard's key groups
//!                         └─ job without keys: the splits (files, row groups) dealt out
//!  re-keying (a hash edge after another on other columns): cut through a repartition
//!    channel when one is given (operator/repartition.rs), refused otherwise
//!  refused, by name: an operator with state over all keys; a source that cannot divide
//! ```
//! May use the plan's nodes, `weir_core::shard` and `SourceSpec`; never names a connector.

use super::{Edge, LogicalPlan, Node, NodeId, NodeKind, Partitioning};
use weir_core::error::{Error, Result};
use weir_core::operator::{Boundedness, RepartitionEdge, Repartitioner, ShardShare};
use weir_core::shard::{KeyGroups, Shard};

impl LogicalPlan {
    /// The plan shard `shard` runs: its share of every source, and (for a
    /// keyed job over bounded inputs) its key groups on the hash edges.
    ///
    /// # Errors
    ///
    /// [`Error::Plan`] naming the operator or source when the job cannot be
    /// divided: see the module doc.
    pub fn for_shard(
        &self,
        shard: Shard,
        repartition: Option<&dyn Repartitioner>,
    ) -> Result<LogicalPlan> {
        let mut plan = self.clone();
        let live: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&id| !(self.nodes[id].replaced && self.consumers(id).is_empty()))
            .collect();
        let rekeyed = self.check_keys(&live, repartition.is_some())?;
        let hashed = live.iter().any(|&id| {
            self.nodes[id]
                .inputs
                .iter()
                .any(|e| matches!(e.partitioning, Partitioning::Hash(_)))
        });
        let sources: Vec<NodeId> = live
            .iter()
            .copied()
            .filter(|&id| self.nodes[id].kind.is_source())
            .collect();
        let shares: Vec<(NodeId, Option<ShardShare>)> = sources
            .iter()
            .map(|&id| match &self.nodes[id].kind {
                NodeKind::Source(spec) => (id, spec.for_shard(shard)),
                _ => unreachable!("filtered to sources"),
            })
            .collect();
        let partitioned = shares
            .iter()
            .any(|(_, s)| matches!(s, Some(ShardShare::Partitions(_))));
        for (id, share) in shares {
            let node = &self.nodes[id];
            let NodeKind::Source(spec) = &node.kind else {
                continue;
            };
            let cannot = |why: &str| {
                Error::Plan(format!(
                    "source `{}` ({}) cannot be divided among {} shards: {why}",
                    node.name,
                    spec.name(),
                    shard.count()
                ))
            };
            match share {
                Some(ShardShare::Partitions(s)) => plan.nodes[id].kind = NodeKind::Source(s),
                _ if partitioned => {
                    return Err(cannot(
                        "the job also reads a partitioned source (a broker topic or stream), \
                         whose shards own partitions, not key groups; read both from brokers",
                    ))
                }
                _ if hashed => {
                    if spec.boundedness() == Boundedness::Unbounded {
                        return Err(cannot(
                            "it is unbounded and has no numbered partitions to deal out",
                        ));
                    }
                    // every shard reads it all; the hash edges keep the shard's keys
                }
                Some(ShardShare::Splits(s)) => plan.nodes[id].kind = NodeKind::Source(s),
                None => {
                    return Err(cannot(
                        "it has no splits or partitions to deal out, and the job has no key \
                         by which shards could divide its rows",
                    ))
                }
            }
        }
        if hashed && !partitioned {
            plan.key_groups = Some(KeyGroups::of_shard(shard));
            plan.divide_side_outputs(&live)?;
        }
        if let Some(repartition) = repartition {
            let bounded = sources.iter().all(|&id| match &self.nodes[id].kind {
                NodeKind::Source(spec) => spec.boundedness() == Boundedness::Bounded,
                _ => true,
            });
            // highest consumer first: inserting a node shifts only later ids
            let mut rekeyed = rekeyed;
            rekeyed.sort_by(|a, b| b.cmp(a));
            for (consumer, input, keys) in rekeyed {
                plan.cut(consumer, input, keys, shard, bounded, repartition)?;
            }
        }
        Ok(plan)
    }

    /// Cuts the re-keying edge into input `input` of `consumer`: the
    /// upstream node feeds a repartition sink, and `consumer` reads a
    /// repartition source (inserted just before it) through `hash(keys)`.
    fn cut(
        &mut self,
        consumer: NodeId,
        input: usize,
        keys: Vec<String>,
        shard: Shard,
        bounded: bool,
        repartition: &dyn Repartitioner,
    ) -> Result<()> {
        let edge = self.nodes[consumer].inputs[input].clone();
        let upstream = &self.nodes[edge.from];
        let schema = match edge.port {
            0 => upstream.schema.clone(),
            p => match &upstream.kind {
                NodeKind::Source(spec) => {
                    spec.side_port_schema(p).unwrap_or(upstream.schema.clone())
                }
                _ => upstream.schema.clone(),
            },
        };
        let name = if input == 0 {
            self.nodes[consumer].name.clone()
        } else {
            format!("{}-{input}", self.nodes[consumer].name)
        };
        let spec = RepartitionEdge {
            name,
            schema: schema.clone(),
            keys: keys.clone(),
            shard,
            bounded,
        };
        let consumer_name = self.nodes[consumer].name.clone();
        let sink = Node {
            name: format!("repartition:{consumer_name}"),
            kind: NodeKind::Sink(repartition.sink(&spec)?),
            inputs: vec![Edge {
                from: edge.from,
                partitioning: Partitioning::Forward,
                port: edge.port,
            }],
            parallelism: upstream.parallelism,
            max_parallelism: None,
            schema: schema.clone(),
            passes: None,
            lateness_rule: None,
            replaced: false,
            idle_timeout: None,
            batch_variant: None,
            writes: None,
            definition: None,
            channel: true,
        };
        let source = Node {
            name: format!("repartitioned:{consumer_name}"),
            kind: NodeKind::Source(repartition.source(&spec)?),
            inputs: Vec::new(),
            parallelism: None,
            max_parallelism: Some(1),
            schema,
            passes: None,
            lateness_rule: None,
            replaced: false,
            idle_timeout: None,
            batch_variant: None,
            writes: None,
            definition: Some(repartition.describe(&spec)),
            channel: true,
        };
        self.nodes.push(sink);
        // the source goes right before its consumer (ids stay topological)
        for node in &mut self.nodes {
            for e in &mut node.inputs {
                if e.from >= consumer {
                    e.from += 1;
                }
            }
        }
        self.nodes.insert(consumer, source);
        self.nodes[consumer + 1].inputs[input] = Edge {
            from: consumer,
            partitioning: Partitioning::Hash(keys),
            port: 0,
        };
        Ok(())
    }

    /// Every shard reads the whole input, so each would write every late
    /// row its sources set aside: the edges leaving a source's side output
    /// become hash edges over all its columns, and each shard keeps the
    /// rows of its key groups (equal rows go to one shard).
    fn divide_side_outputs(&mut self, live: &[NodeId]) -> Result<()> {
        for &id in live {
            for i in 0..self.nodes[id].inputs.len() {
                let e = &self.nodes[id].inputs[i];
                let from = &self.nodes[e.from];
                if e.port == 0 || !from.kind.is_source() {
                    continue;
                }
                if e.port == weir_core::operator::DEAD_LETTER_PORT {
                    return Err(Error::Plan(format!(
                        "source `{}` sends malformed records to `{}`, but every shard reads \
                         all of it, so each would write them: give dead letters to one \
                         process, or read the input from a partitioned broker topic",
                        from.name, self.nodes[id].name
                    )));
                }
                let columns = from
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                self.nodes[id].inputs[i].partitioning = Partitioning::Hash(columns);
            }
        }
        Ok(())
    }

    /// Refuses operators whose state spans every key, and re-keying: the
    /// key columns a node's rows are divided by (several names for a
    /// join's output: either side's key) must stay the same downstream.
    /// Returns the re-keying edges (consumer, input, keys) when
    /// `repartition` allows them, and refuses them otherwise.
    fn check_keys(
        &self,
        live: &[NodeId],
        repartition: bool,
    ) -> Result<Vec<(NodeId, usize, Vec<String>)>> {
        // keys[id]: the key column lists rows of node id are divided by
        let mut keys: Vec<Option<Vec<Vec<String>>>> = vec![None; self.nodes.len()];
        let mut rekeyed = Vec::new();
        for &id in live {
            let node = &self.nodes[id];
            let mut own: Vec<Vec<String>> = Vec::new();
            let mut unkeyed_input = node.inputs.is_empty();
            for (input, e) in node.inputs.iter().enumerate() {
                match (&e.partitioning, &keys[e.from]) {
                    (Partitioning::Hash(k), Some(upstream)) if !upstream.contains(k) => {
                        if !repartition {
                            return Err(Error::Plan(format!(
                                "`{}` re-keys rows by ({}) after they were divided by ({}): \
                                 shards divide a job by one key, and moving rows to the shard \
                                 of another key goes through a broker topic: give \
                                 --repartition-brokers (and --run-id), or run this job as one \
                                 process",
                                node.name,
                                k.join(", "),
                                upstream[0].join(", ")
                            )));
                        }
                        rekeyed.push((id, input, k.clone()));
                        own.push(k.clone());
                    }
                    (Partitioning::Hash(k), _) => own.push(k.clone()),
                    (_, Some(upstream)) => own.extend(upstream.iter().cloned()),
                    (_, None) => unkeyed_input = true,
                }
            }
            let stateful = matches!(node.kind, NodeKind::Operator(_)) && node.definition.is_some();
            if stateful && unkeyed_input {
                return Err(Error::Plan(format!(
                    "`{}` keeps state over all of its input, not per key, so shards cannot \
                     divide it; key it (key_by / GROUP BY / PARTITION BY) or run the job as \
                     one process",
                    node.name
                )));
            }
            if !own.is_empty() {
                own.dedup();
                keys[id] = Some(own);
            }
        }
        Ok(rekeyed)
    }
}
