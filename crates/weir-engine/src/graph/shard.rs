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
//!  rows every shard has (read by all, not yet through a hash edge) reaching a sink, or
//!    meeting divided rows: that edge becomes a hash edge over the whole row
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
        let read = match (partitioned, hashed) {
            (true, _) => Division::Partitions,
            (false, true) => Division::Everything,
            (false, false) => Division::Unknown,
        };
        let Divided {
            rekeyed,
            whole_rows,
        } = self.divide(&live, read, repartition.is_some())?;
        for (id, input) in whole_rows {
            let e = &plan.nodes[id].inputs[input];
            let schema = self.port_schema(e.from, e.port);
            let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
            plan.nodes[id].inputs[input].partitioning = Partitioning::Hash(columns);
        }
        if hashed && !partitioned {
            plan.key_groups = Some(KeyGroups::of_shard(shard));
        }
        if let Some(repartition) = repartition.filter(|_| !rekeyed.is_empty()) {
            let bounded = sources.iter().all(|&id| match &self.nodes[id].kind {
                NodeKind::Source(spec) => spec.boundedness() == Boundedness::Bounded,
                _ => true,
            });
            plan = plan.cut(&rekeyed, shard, bounded, repartition)?;
        }
        // a checkpoint holds this shard's key groups and positions only: its
        // operators' definitions name the shard, so restoring it as another
        // shard (or another count, or one process) is refused by name
        for node in &mut plan.nodes {
            if let Some(d) = &mut node.definition {
                d.push_str(&format!(" [shard {shard}]"));
            }
        }
        Ok(plan)
    }

    /// The schema of output `port` of node `id`.
    fn port_schema(&self, id: NodeId, port: usize) -> arrow_schema::SchemaRef {
        let node = &self.nodes[id];
        match (&node.kind, port) {
            (NodeKind::Source(spec), p) if p > 0 => spec
                .side_port_schema(p)
                .unwrap_or_else(|| node.schema.clone()),
            _ => node.schema.clone(),
        }
    }

    /// Cuts the re-keying edges `(consumer, input, keys)`: each upstream
    /// node feeds a repartition sink placed right after it, and the
    /// consumer reads a repartition source placed right before it through
    /// `hash(keys)` (node ids stay topological; a batch run's stages run
    /// every shard's producers before its consumers).
    fn cut(
        &self,
        rekeyed: &[(NodeId, usize, Vec<String>)],
        shard: Shard,
        bounded: bool,
        repartition: &dyn Repartitioner,
    ) -> Result<LogicalPlan> {
        let mut sinks: Vec<Vec<Node>> = vec![Vec::new(); self.nodes.len()];
        let mut sources: Vec<Vec<(usize, Node, Vec<String>)>> = vec![Vec::new(); self.nodes.len()];
        for (consumer, input, keys) in rekeyed {
            let edge = &self.nodes[*consumer].inputs[*input];
            let upstream = &self.nodes[edge.from];
            let schema = self.port_schema(edge.from, edge.port);
            let name = match input {
                0 => self.nodes[*consumer].name.clone(),
                i => format!("{}-{i}", self.nodes[*consumer].name),
            };
            let spec = RepartitionEdge {
                name: name.clone(),
                schema: schema.clone(),
                keys: keys.clone(),
                shard,
                bounded,
            };
            let node = |kind: NodeKind, inputs: Vec<Edge>| Node {
                channel: true,
                ..Node::new(String::new(), kind, inputs, schema.clone())
            };
            let mut sink = node(
                NodeKind::Sink(repartition.sink(&spec)?),
                vec![Edge {
                    from: edge.from, // renumbered below
                    partitioning: Partitioning::Forward,
                    port: edge.port,
                }],
            );
            sink.name = format!("repartition:{name}");
            sink.parallelism = upstream.parallelism;
            sinks[edge.from].push(sink);
            let mut source = node(NodeKind::Source(repartition.source(&spec)?), Vec::new());
            source.name = format!("repartitioned:{name}");
            source.max_parallelism = Some(1);
            source.definition = Some(repartition.describe(&spec));
            sources[*consumer].push((*input, source, keys.clone()));
        }
        let mut plan = LogicalPlan {
            nodes: Vec::with_capacity(self.nodes.len() + 2 * rekeyed.len()),
            key_groups: self.key_groups.clone(),
        };
        let mut renumbered = vec![0; self.nodes.len()];
        for (id, node) in self.nodes.iter().enumerate() {
            let mut node = node.clone();
            for e in &mut node.inputs {
                e.from = renumbered[e.from];
            }
            for (input, source, keys) in std::mem::take(&mut sources[id]) {
                node.inputs[input] = Edge {
                    from: plan.nodes.len(),
                    partitioning: Partitioning::Hash(keys),
                    port: 0,
                };
                plan.nodes.push(source);
            }
            renumbered[id] = plan.nodes.len();
            plan.nodes.push(node);
            for mut sink in std::mem::take(&mut sinks[id]) {
                sink.inputs[0].from = renumbered[id];
                plan.nodes.push(sink);
            }
        }
        Ok(plan)
    }

    /// Follows how rows are divided among shards from the sources down
    /// (see [`Division`]), in node order: refuses state over all keys and
    /// (without a repartition channel) re-keying; returns the re-keying
    /// edges and the edges that must divide rows by a hash of the whole row.
    fn divide(&self, live: &[NodeId], read: Division, repartition: bool) -> Result<Divided> {
        let mut division: Vec<Division> = vec![Division::Unknown; self.nodes.len()];
        let mut out = Divided::default();
        for &id in live {
            let node = &self.nodes[id];
            if node.kind.is_source() {
                division[id] = read.clone();
                continue;
            }
            // what each input's rows are divided by, once through its edge
            let mut inputs: Vec<Division> = Vec::with_capacity(node.inputs.len());
            let mut hash_keys: Vec<Vec<String>> = Vec::new();
            for (input, e) in node.inputs.iter().enumerate() {
                let upstream = &division[e.from];
                let Partitioning::Hash(k) = &e.partitioning else {
                    inputs.push(upstream.clone());
                    continue;
                };
                let rekeys = match upstream {
                    Division::Everything | Division::Partitions => false,
                    Division::Keys(ks) => !ks.contains(k),
                    Division::Unknown => true,
                };
                if rekeys {
                    if !repartition {
                        let before = match upstream {
                            Division::Keys(ks) => format!("({})", ks[0].join(", ")),
                            _ => "no key (a hash of the whole row, or the input's splits)".into(),
                        };
                        return Err(Error::Plan(format!(
                            "`{}` re-keys rows by ({}) after they were divided by {before}: \
                             shards divide a job by one key, and moving rows to the shard of \
                             another key goes through a broker topic: give \
                             --repartition-brokers (and --run-id), or run this job as one \
                             process",
                            node.name,
                            k.join(", "),
                        )));
                    }
                    out.rekeyed.push((id, input, k.clone()));
                }
                hash_keys.push(k.clone());
                inputs.push(Division::Keys(vec![k.clone()]));
            }
            let stateful = matches!(node.kind, NodeKind::Operator(_)) && node.definition.is_some();
            let unkeyed = node.inputs.iter().zip(&inputs).any(|(e, d)| {
                !matches!(e.partitioning, Partitioning::Hash(_)) && !matches!(d, Division::Keys(_))
            });
            if stateful && unkeyed {
                return Err(Error::Plan(format!(
                    "`{}` keeps state over all of its input, not per key, so shards cannot \
                     divide it; key it (key_by / GROUP BY / PARTITION BY) or run the job as \
                     one process",
                    node.name
                )));
            }
            let everything = |d: &Division| matches!(d, Division::Everything);
            let is_sink = matches!(node.kind, NodeKind::Sink(_));
            if inputs.iter().all(everything) && !is_sink {
                division[id] = Division::Everything; // still in every shard
                continue;
            }
            // rows every shard has go on to a sink or meet divided rows:
            // each shard keeps those of its key groups by a hash of the row
            for (input, d) in inputs.iter_mut().enumerate() {
                if everything(d) {
                    out.whole_rows.push((id, input));
                    *d = Division::Unknown;
                }
            }
            division[id] = if !hash_keys.is_empty() {
                // a join: rows are divided by either side's key
                hash_keys.dedup();
                Division::Keys(hash_keys)
            } else {
                inputs
                    .into_iter()
                    .reduce(Division::common)
                    .unwrap_or(Division::Unknown)
            };
        }
        Ok(out)
    }
}

/// How a node's rows are divided among the shards.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Division {
    /// Every shard has every row (bounded inputs read by all, before a hash edge).
    Everything,
    /// By broker partition, keyed as the job's first hash edge (assumed).
    Partitions,
    /// By the key group of one of these key column lists.
    Keys(Vec<Vec<String>>),
    /// Divided, but by no key a hash edge could use (splits, a hash of the row).
    Unknown,
}

impl Division {
    /// The division of rows merged from two inputs (a union).
    fn common(self, other: Division) -> Division {
        match (self, other) {
            (Division::Keys(a), Division::Keys(b)) => {
                let both: Vec<Vec<String>> = a.into_iter().filter(|k| b.contains(k)).collect();
                if both.is_empty() {
                    Division::Unknown
                } else {
                    Division::Keys(both)
                }
            }
            (a, b) if a == b => a,
            _ => Division::Unknown,
        }
    }
}

/// What [`LogicalPlan::divide`] found.
#[derive(Debug, Default)]
struct Divided {
    /// Re-keying edges: (consumer, input, new keys).
    rekeyed: Vec<(NodeId, usize, Vec<String>)>,
    /// Edges (consumer, input) carrying rows every shard has into a sink or
    /// beside divided rows: they become hash edges over the whole row.
    whole_rows: Vec<(NodeId, usize)>,
}
