//! A task's chain of fused operators, driven by either executor.
//!
//! ```text
//!  source.poll_next ─► out ─► op[0].on_* ─► out ─► op[1].on_* ─► ... ─► emit(msg)
//!                                                                      (router)
//! ```
//! Messages an operator emits are fed to the next operator at once, in
//! order, so a fused chain behaves exactly like separate tasks joined by
//! forward edges. A panic inside an operator is caught here and reported as
//! [`Error::Panic`] naming that operator.

use super::panic_error;
use crate::graph::{LogicalPlan, NodeKind, PhysicalPlan, TaskPlan};
use arrow_array::RecordBatch;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::error::{Error, Result};
use weir_core::message::CheckpointId;
use weir_core::message::{Message, Watermark};
use weir_core::operator::{
    Ctx, Operator, OperatorMetrics, Output, RuntimeEnv, Source, SourcePoll, TaskInfo,
};
use weir_core::spill::batch_bytes;
use weir_core::state::{ShardOrigin, StateReader, StateWriter, SubtaskState, CONTEXT_ENTRY};

/// The operators of one subtask of a task.
pub(crate) struct Chain {
    // state
    source: Option<(Box<dyn Source>, Ctx)>,
    ops: Vec<(Box<dyn Operator>, Ctx)>,
    /// Plan node ids: the source's (if any) first, then the operators'.
    node_ids: Vec<usize>,
    ended: bool,
    idle: IdleState,
}

/// Called with each message leaving the chain.
pub(crate) type Emit<'a> = dyn FnMut(Message) -> Result<()> + 'a;

impl Chain {
    /// Instantiates every node of `task` for `subtask`. With `restore`
    /// (checkpointed runs), every node then restores its state: what the
    /// checkpoint holds for it, or nothing on a fresh start.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn try_new(
        plan: &LogicalPlan,
        physical: &PhysicalPlan,
        task: &TaskPlan,
        subtask: usize,
        env: &RuntimeEnv,
        metrics: &[Arc<OperatorMetrics>],
        batch: bool,
        restore: Option<&RestoreSet>,
    ) -> Result<Self> {
        let mut source = None;
        let mut ops = Vec::new();
        let mut node_ids = Vec::new();
        for &id in &task.nodes {
            node_ids.push(id);
            let node = &plan.nodes[id];
            let info = TaskInfo {
                operator: node.name.clone(),
                subtask,
                parallelism: physical.parallelism[id],
            };
            let ctx = Ctx::new(info.clone(), env.clone(), metrics[id].clone());
            let wrap = |e: Error| e.in_operator(&node.name, subtask);
            match &node.kind {
                NodeKind::Source(spec) => {
                    source = Some((Arc::clone(spec).create(&info).map_err(wrap)?, ctx))
                }
                NodeKind::Operator(f) | NodeKind::Sink(f) => {
                    // batch mode runs the blocking variant where there is one
                    let f = match (&node.batch_variant, batch) {
                        (Some(variant), true) => variant,
                        _ => f,
                    };
                    ops.push((f(&info).map_err(wrap)?, ctx))
                }
            }
        }
        let timeout = task
            .nodes
            .iter()
            .find_map(|&id| plan.nodes[id].idle_timeout);
        let mut chain = Chain {
            source,
            ops,
            node_ids,
            ended: false,
            idle: IdleState {
                timeout,
                last_data: Instant::now(),
                idle: false,
                last_watermark: None,
            },
        };
        chain.open()?;
        if let Some(set) = restore {
            chain.restore(plan, set, subtask)?;
        }
        Ok(chain)
    }

    /// Opens every node (see [`Operator::open`]), source first.
    fn open(&mut self) -> Result<()> {
        if let Some((source, ctx)) = self.source.as_mut() {
            in_node(ctx, |ctx| source.open(ctx))?;
        }
        for (op, ctx) in self.ops.iter_mut() {
            in_node(ctx, |ctx| op.open(ctx))?;
        }
        Ok(())
    }

    /// Restores every node from `set` (see [`Chain::try_new`]).
    fn restore(&mut self, plan: &LogicalPlan, set: &RestoreSet, subtask: usize) -> Result<()> {
        let mut ids = self.node_ids.iter().map(|&id| plan.nodes[id].name.as_str());
        if let Some((source, ctx)) = self.source.as_mut() {
            let name = ids.next().expect("a source has a node id");
            let reader = set.reader(name, subtask, ctx, plan)?;
            in_node(ctx, |ctx| source.restore(ctx, &reader))?;
            self.idle.last_watermark = ctx.watermark().map(Watermark::EventTime);
        }
        for ((op, ctx), name) in self.ops.iter_mut().zip(ids) {
            let reader = set.reader(name, subtask, ctx, plan)?;
            in_node(ctx, |ctx| op.restore(ctx, &reader))?;
        }
        Ok(())
    }

    /// Snapshots every node for checkpoint `id` (a barrier is passing the
    /// whole chain at once: nothing runs between the nodes' snapshots).
    pub(crate) fn snapshot(&mut self, id: CheckpointId) -> Result<Vec<(usize, SubtaskState)>> {
        let mut out = Vec::with_capacity(self.node_ids.len());
        let mut ids = self.node_ids.iter().copied();
        if let Some((source, ctx)) = self.source.as_mut() {
            let node = ids.next().expect("a source has a node id");
            out.push((node, snapshot_node(id, ctx, |c, w| source.snapshot(c, w))?));
        }
        for ((op, ctx), node) in self.ops.iter_mut().zip(ids) {
            out.push((node, snapshot_node(id, ctx, |c, w| op.snapshot(c, w))?));
        }
        Ok(out)
    }

    /// True if the chain starts with a source.
    pub(crate) fn has_source(&self) -> bool {
        self.source.is_some()
    }

    /// The last event-time watermark the chain's source emitted.
    pub(crate) fn source_watermark(&self) -> Option<i64> {
        match self.idle.last_watermark {
            Some(Watermark::EventTime(t)) => Some(t),
            _ => None,
        }
    }

    /// Polls the source once and pushes what it emitted through the chain.
    /// On exhaustion, sends `Watermark::MAX` and end of input. A source
    /// with an idle timeout that has been pending that long sends
    /// `Watermark::Idle`, and its last watermark again when rows resume.
    pub(crate) fn poll_source(&mut self, emit: &mut Emit<'_>) -> Result<SourcePoll> {
        let (source, ctx) = self
            .source
            .as_mut()
            .expect("poll_source on a chain without source");
        let mut out = Output::new();
        let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            source.poll_next(ctx, &mut out)
        }));
        let poll = call
            .unwrap_or_else(|payload| Err(panic_error(ctx.operator(), payload)))
            .map_err(|e| e.in_operator(ctx.operator(), ctx.info().subtask))?;
        let mut calls = Vec::new();
        let mut has_data = false;
        for m in out.take() {
            match &m {
                Message::Watermark(w @ Watermark::EventTime(t)) => {
                    self.idle.last_watermark = Some(*w);
                    // saved with the source's context: a restore knows where it was
                    ctx.set_watermark(*w);
                    ctx.metrics().on_watermark_out(ctx.info().subtask, *t);
                }
                Message::Data(_) => has_data = true,
                _ => {}
            }
            calls.push(Call::counted_out(m, ctx));
        }
        if has_data {
            self.idle.last_data = Instant::now();
            if std::mem::take(&mut self.idle.idle) {
                if let Some(w) = self.idle.last_watermark {
                    calls.insert(0, Call::Msg(Message::Watermark(w)));
                }
            }
        }
        for call in calls {
            self.feed(0, 0, call, emit)?;
        }
        match poll {
            SourcePoll::Exhausted => {
                self.feed(0, 0, Call::Msg(Message::Watermark(Watermark::MAX)), emit)?;
                self.finish(emit)?;
            }
            SourcePoll::Pending => {
                let due = self
                    .idle
                    .timeout
                    .is_some_and(|t| self.idle.last_data.elapsed() >= t);
                if due && !self.idle.idle {
                    self.idle.idle = true;
                    self.feed(0, 0, Call::Msg(Message::Watermark(Watermark::Idle)), emit)?;
                }
            }
            SourcePoll::Ready => {}
        }
        Ok(poll)
    }

    /// Delivers rows from input `input` to the head operator.
    pub(crate) fn on_batch(
        &mut self,
        input: usize,
        msg: Message,
        emit: &mut Emit<'_>,
    ) -> Result<()> {
        self.feed(0, input, Call::Msg(msg), emit)
    }

    /// Sends a latency marker stamped `now` from this chain's source.
    pub(crate) fn send_latency_marker(&mut self, now: i64, emit: &mut Emit<'_>) -> Result<()> {
        self.feed(0, 0, Call::Msg(Message::Latency(now)), emit)
    }

    /// Delivers the (already combined) input watermark to the head operator.
    pub(crate) fn on_watermark(&mut self, wm: Watermark, emit: &mut Emit<'_>) -> Result<()> {
        self.feed(0, 0, Call::Msg(Message::Watermark(wm)), emit)
    }

    /// The earliest processing-time timer any operator asked for.
    pub(crate) fn next_timer(&self) -> Option<i64> {
        self.ops
            .iter()
            .filter_map(|(_, c)| c.processing_timer())
            .min()
    }

    /// Calls `on_processing_time` of every operator whose timer is due.
    pub(crate) fn fire_timers(&mut self, now: i64, emit: &mut Emit<'_>) -> Result<()> {
        for level in 0..self.ops.len() {
            if self.ops[level]
                .1
                .processing_timer()
                .is_some_and(|t| t <= now)
            {
                self.ops[level].1.set_processing_timer(None);
                self.feed(level, 0, Call::Timer(now), emit)?;
            }
        }
        Ok(())
    }

    /// Ends the input: every operator flushes in order, then `End` is emitted.
    pub(crate) fn finish(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        self.feed(0, 0, Call::Msg(Message::End), emit)
    }

    fn feed(&mut self, level: usize, input: usize, call: Call, emit: &mut Emit<'_>) -> Result<()> {
        let Some((op, ctx)) = self.ops.get_mut(level) else {
            return match call {
                Call::Msg(msg) => emit(msg),
                Call::Counted(batch, _) => emit(Message::Data(batch)),
                Call::Timer(_) => Ok(()),
            };
        };
        if let Call::Msg(Message::Side(..)) = call {
            // a side output is only consumed when its producer ends the chain
            return Ok(());
        }
        let mut out = Output::new();
        let is_end = matches!(call, Call::Msg(Message::End));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match call {
            Call::Msg(Message::Data(batch)) => {
                ctx.count_in(batch.num_rows() as u64, batch_bytes(&batch) as u64);
                op.on_batch(input, batch, ctx, &mut out)
            }
            Call::Counted(batch, bytes) => {
                ctx.count_in(batch.num_rows() as u64, bytes);
                op.on_batch(input, batch, ctx, &mut out)
            }
            Call::Msg(Message::Watermark(wm)) => {
                ctx.set_watermark(wm);
                op.on_watermark(wm, ctx, &mut out)
            }
            Call::Msg(Message::Barrier(id)) => {
                out.push(Message::Barrier(id));
                Ok(())
            }
            Call::Msg(Message::Latency(t)) => {
                out.push(Message::Latency(t));
                Ok(())
            }
            Call::Msg(Message::End) => op.on_end_of_input(ctx, &mut out),
            Call::Msg(Message::Side(..)) => unreachable!("side outputs are handled above"),
            Call::Timer(now) => op.on_processing_time(now, ctx, &mut out),
        }))
        .unwrap_or_else(|payload| Err(panic_error(ctx.operator(), payload)));
        result.map_err(|e| e.in_operator(ctx.operator(), ctx.info().subtask))?;
        let calls: Vec<Call> = out
            .take()
            .into_iter()
            .map(|m| Call::counted_out(m, ctx))
            .collect();
        for call in calls {
            self.feed(level + 1, 0, call, emit)?;
        }
        if is_end {
            self.feed(level + 1, 0, Call::Msg(Message::End), emit)?;
        }
        Ok(())
    }
}

/// What the chain delivers to an operator.
enum Call {
    Msg(Message),
    /// Rows an operator of the chain emitted, with the Arrow bytes counted
    /// then: the next operator counts them in without measuring again.
    Counted(RecordBatch, u64),
    Timer(i64),
}

impl Call {
    /// `m`, emitted by the operator of `ctx`: rows are counted out (their
    /// bytes measured once) and travel on as [`Call::Counted`].
    fn counted_out(m: Message, ctx: &Ctx) -> Call {
        match m {
            Message::Data(batch) => {
                let bytes = batch_bytes(&batch) as u64;
                ctx.count_out(batch.num_rows() as u64, bytes);
                Call::Counted(batch, bytes)
            }
            other => Call::Msg(other),
        }
    }
}

/// Idle detection of a chain's source.
struct IdleState {
    timeout: Option<Duration>,
    last_data: Instant,
    idle: bool,
    last_watermark: Option<Watermark>,
}

/// The watermark and processing timer of an operator's context, saved
/// with its state so a restored operator sees the same time.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SavedContext {
    watermark: Option<i64>,
    timer: Option<i64>,
}

/// Runs `f` on a node, naming the node in its error.
fn in_node<T>(ctx: &mut Ctx, f: impl FnOnce(&mut Ctx) -> Result<T>) -> Result<T> {
    let (name, subtask) = (ctx.operator().to_string(), ctx.info().subtask);
    f(ctx).map_err(|e| e.in_operator(&name, subtask))
}

/// One node's state for checkpoint `id`: what `snapshot` writes, plus the
/// context's watermark and processing timer.
fn snapshot_node(
    id: CheckpointId,
    ctx: &mut Ctx,
    snapshot: impl FnOnce(&mut Ctx, &mut StateWriter) -> Result<()>,
) -> Result<SubtaskState> {
    let mut w = StateWriter::for_checkpoint(id);
    in_node(ctx, |ctx| snapshot(ctx, &mut w))?;
    w.put(
        CONTEXT_ENTRY,
        &SavedContext {
            watermark: ctx.watermark(),
            timer: ctx.processing_timer(),
        },
    )?;
    Ok(w.finish())
}

/// The states a checkpointed run starts from: per operator name, every
/// old subtask's state (empty on a fresh start).
#[derive(Debug, Default)]
pub(crate) struct RestoreSet {
    // config
    pub(crate) checkpoint: Option<CheckpointId>,
    // state
    nodes: HashMap<String, NodeState>,
}

/// One operator's saved state, split once when the checkpoint is loaded.
#[derive(Debug)]
struct NodeState {
    /// What the operator wrote, per old subtask (shared by every reader).
    own: Arc<Vec<SubtaskState>>,
    /// The executor's saved context, per old subtask.
    contexts: Vec<Option<SavedContext>>,
    /// Restored from several shards' checkpoints: where each old subtask's
    /// state comes from (see [`RestoreSet::from_shards`]).
    origins: Option<Arc<Vec<ShardOrigin>>>,
}

impl RestoreSet {
    /// An empty set for checkpoint `id`, filled with [`RestoreSet::insert`].
    pub(crate) fn from_checkpoint(id: CheckpointId) -> Self {
        RestoreSet {
            checkpoint: Some(id),
            nodes: HashMap::new(),
        }
    }

    /// An empty set for the checkpoints of several old shards restored
    /// together at another shard count (`--restore shards:N`); no
    /// checkpoint id: this shard's own checkpoints start afresh.
    pub(crate) fn from_shards() -> Self {
        RestoreSet::default()
    }

    /// Adds operator `name`'s states (one per old subtask), moving the
    /// executor's reserved entries out of what the operator will read.
    pub(crate) fn insert(&mut self, name: &str, states: Vec<SubtaskState>) -> Result<()> {
        self.insert_with_origins(name, states, None)
    }

    /// [`insert`](Self::insert) for states of several old shards:
    /// `origins[i]` is where old subtask `i` comes from.
    pub(crate) fn insert_with_origins(
        &mut self,
        name: &str,
        states: Vec<SubtaskState>,
        origins: Option<Vec<ShardOrigin>>,
    ) -> Result<()> {
        let mut own = Vec::with_capacity(states.len());
        let mut contexts = Vec::with_capacity(states.len());
        for state in states {
            let (reserved, entries): (Vec<_>, Vec<_>) = state
                .entries
                .into_iter()
                .partition(|e| e.name.starts_with("__"));
            let context = reserved
                .iter()
                .find(|e| e.name == CONTEXT_ENTRY)
                .map(|e| postcard::from_bytes::<SavedContext>(&e.bytes))
                .transpose()
                .map_err(|e| Error::Checkpoint {
                    location: format!("operator `{name}`"),
                    message: format!("unreadable saved context: {e}"),
                })?;
            contexts.push(context);
            own.push(SubtaskState { entries });
        }
        let node = NodeState {
            own: Arc::new(own),
            contexts,
            origins: origins.map(Arc::new),
        };
        self.nodes.insert(name.to_string(), node);
        Ok(())
    }

    /// The reader for `subtask` of operator `name`; restores the context's
    /// watermark (the lowest of the inherited ones) and timer on the way.
    fn reader(
        &self,
        name: &str,
        subtask: usize,
        ctx: &mut Ctx,
        plan: &LogicalPlan,
    ) -> Result<StateReader> {
        let reader = match self.nodes.get(name) {
            None => StateReader::empty(),
            Some(node) => {
                let parallelism = ctx.info().parallelism;
                let rescaled = node.contexts.len() != parallelism || node.origins.is_some();
                let inherited: Vec<&SavedContext> = if rescaled {
                    node.contexts.iter().flatten().collect()
                } else {
                    node.contexts.get(subtask).into_iter().flatten().collect()
                };
                if let Some(w) = inherited.iter().filter_map(|c| c.watermark).min() {
                    ctx.set_watermark(Watermark::EventTime(w));
                }
                if !rescaled {
                    if let Some(t) = inherited.iter().filter_map(|c| c.timer).min() {
                        ctx.set_processing_timer(Some(t));
                    }
                }
                let reader = StateReader::for_subtask(node.own.clone(), subtask, parallelism)
                    .with_key_groups(plan.key_groups.clone().unwrap_or_default());
                match &node.origins {
                    Some(origins) => reader.with_origins(origins.clone()),
                    None => reader,
                }
            }
        };
        Ok(match self.checkpoint {
            Some(id) => reader.with_checkpoint(id),
            None => reader,
        })
    }
}
