//! Routing a task's output to the subtasks of the tasks that consume it.
//!
//! ```text
//!  forward    subtask i ──────────────► subtask i
//!  rebalance  subtask i ──batch 1──► 0, batch 2 ──► 1, ... (round-robin)
//!  broadcast  subtask i ──every batch──► all
//!  hash(k)    subtask i ──rows split by key group of k──► owner subtasks
//!  watermarks, barriers, End ──► every connected consumer subtask
//! ```
//! Large batches are sliced to `max_rows` first (zero-copy), so a channel's
//! bound in batches is also a bound in rows.

use crate::graph::{Partitioning, PhysicalEdge};
use arrow_array::RecordBatch;
use weir_core::error::Result;
use weir_core::key::{split_by_key_in, KeyEncoder};
use weir_core::message::Message;
use weir_core::shard::KeyGroups;

struct Route {
    // config
    partitioning: Partitioning,
    port: usize,
    targets: usize,
    keys: Option<KeyEncoder>,
    // state
    next: usize,
}

/// Splits and addresses the messages leaving one subtask.
pub(crate) struct Router {
    // config
    subtask: usize,
    max_rows: usize,
    /// The key groups of this run (a shard's, or all): hash edges keep only their rows.
    key_groups: KeyGroups,
    // state
    routes: Vec<Route>,
}

impl Router {
    /// A router for `subtask` over `edges` (the task's outputs, in order);
    /// `targets[i]` is the parallelism of edge i's consumer. With
    /// `key_groups` (a shard's), hash edges drop rows of other key groups.
    pub(crate) fn try_new(
        edges: &[&PhysicalEdge],
        targets: &[usize],
        subtask: usize,
        max_rows: usize,
        key_groups: Option<&KeyGroups>,
    ) -> Result<Self> {
        let routes = edges
            .iter()
            .zip(targets)
            .map(|(e, &n)| {
                let keys = match &e.partitioning {
                    Partitioning::Hash(k) => Some(KeyEncoder::try_new(&e.schema, k, "key_by")?),
                    _ => None,
                };
                Ok(Route {
                    partitioning: e.partitioning.clone(),
                    port: e.port,
                    targets: n,
                    keys,
                    next: subtask % n.max(1),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Router {
            subtask,
            max_rows: max_rows.max(1),
            key_groups: key_groups.cloned().unwrap_or_default(),
            routes,
        })
    }

    /// Sends `msg` on every output edge: `send(edge_index, target_subtask, msg)`.
    pub(crate) fn route(
        &mut self,
        msg: Message,
        send: &mut dyn FnMut(usize, usize, Message) -> Result<()>,
    ) -> Result<()> {
        match msg {
            Message::Data(batch) => self.route_port(0, batch, send),
            Message::Side(port, batch) => self.route_port(port, batch, send),
            Message::Latency(t) => {
                // one consumer per edge, in turn (a marker samples a path)
                for edge in 0..self.routes.len() {
                    let route = &mut self.routes[edge];
                    let target = if route.partitioning == Partitioning::Forward {
                        self.subtask
                    } else {
                        let t = route.next % route.targets.max(1);
                        route.next = (t + 1) % route.targets.max(1);
                        t
                    };
                    if route.port == 0 {
                        send(edge, target, Message::Latency(t))?;
                    }
                }
                Ok(())
            }
            control => {
                for (edge, route) in self.routes.iter().enumerate() {
                    if route.partitioning == Partitioning::Forward {
                        send(edge, self.subtask, control.clone())?;
                    } else {
                        for t in 0..route.targets {
                            send(edge, t, control.clone())?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Sends rows of output `port` to the edges reading that port, in slices of `max_rows`.
    fn route_port(
        &mut self,
        port: usize,
        batch: RecordBatch,
        send: &mut dyn FnMut(usize, usize, Message) -> Result<()>,
    ) -> Result<()> {
        let mut offset = 0;
        let total = batch.num_rows();
        while offset < total {
            let len = self.max_rows.min(total - offset);
            let slice = if offset == 0 && len == total {
                batch.clone()
            } else {
                batch.slice(offset, len)
            };
            for edge in 0..self.routes.len() {
                if self.routes[edge].port == port {
                    self.route_batch(edge, slice.clone(), send)?;
                }
            }
            offset += len;
        }
        Ok(())
    }

    fn route_batch(
        &mut self,
        edge: usize,
        batch: RecordBatch,
        send: &mut dyn FnMut(usize, usize, Message) -> Result<()>,
    ) -> Result<()> {
        let route = &mut self.routes[edge];
        match &route.partitioning {
            Partitioning::Forward => send(edge, self.subtask, Message::Data(batch)),
            Partitioning::Rebalance => {
                let t = route.next;
                route.next = (route.next + 1) % route.targets;
                send(edge, t, Message::Data(batch))
            }
            Partitioning::Broadcast => {
                for t in 0..route.targets {
                    send(edge, t, Message::Data(batch.clone()))?;
                }
                Ok(())
            }
            Partitioning::Hash(_) => {
                let keys = route.keys.as_ref().expect("hash routes have a key encoder");
                for (t, part) in split_by_key_in(&batch, keys, route.targets, &self.key_groups)? {
                    send(edge, t, Message::Data(part))?;
                }
                Ok(())
            }
        }
    }
}
