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
use crate::error::{Error, Result};
use crate::graph::{LogicalPlan, NodeKind, PhysicalPlan, TaskPlan};
use crate::message::{Message, Watermark};
use crate::operator::{
    Ctx, Operator, OperatorMetrics, Output, RuntimeEnv, Source, SourcePoll, TaskInfo,
};
use std::sync::Arc;

/// The operators of one subtask of a task.
pub(crate) struct Chain {
    // state
    source: Option<(Box<dyn Source>, Ctx)>,
    ops: Vec<(Box<dyn Operator>, Ctx)>,
    ended: bool,
}

/// Called with each message leaving the chain.
pub(crate) type Emit<'a> = dyn FnMut(Message) -> Result<()> + 'a;

impl Chain {
    /// Instantiates every node of `task` for `subtask`.
    pub(crate) fn try_new(
        plan: &LogicalPlan,
        physical: &PhysicalPlan,
        task: &TaskPlan,
        subtask: usize,
        env: &RuntimeEnv,
        metrics: &[Arc<OperatorMetrics>],
    ) -> Result<Self> {
        let mut source = None;
        let mut ops = Vec::new();
        for &id in &task.nodes {
            let node = &plan.nodes[id];
            let info = TaskInfo {
                operator: node.name.clone(),
                subtask,
                parallelism: physical.parallelism[id],
            };
            let ctx = Ctx::new(info.clone(), env.clone(), metrics[id].clone());
            let wrap = |e: Error| e.in_operator(&node.name, subtask);
            match &node.kind {
                NodeKind::Parquet(spec) => {
                    source = Some((Box::new(spec.create(&info)) as Box<dyn Source>, ctx))
                }
                NodeKind::Memory(spec) => {
                    source = Some((Box::new(spec.create(&info)) as Box<dyn Source>, ctx))
                }
                NodeKind::Source(f) => source = Some((f(&info).map_err(wrap)?, ctx)),
                NodeKind::Operator(f) | NodeKind::Sink(f) => {
                    ops.push((f(&info).map_err(wrap)?, ctx))
                }
            }
        }
        Ok(Chain {
            source,
            ops,
            ended: false,
        })
    }

    /// True if the chain starts with a source.
    pub(crate) fn has_source(&self) -> bool {
        self.source.is_some()
    }

    /// Polls the source once and pushes what it emitted through the chain.
    /// On exhaustion, sends `Watermark::MAX` and end of input.
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
        let items = out.take();
        for m in &items {
            if let Message::Data(b) = m {
                OperatorMetrics::add(&ctx.metrics().rows_out, b.num_rows() as u64);
            }
        }
        for m in items {
            self.feed(0, 0, m, emit)?;
        }
        if poll == SourcePoll::Exhausted {
            self.feed(0, 0, Message::Watermark(Watermark::MAX), emit)?;
            self.finish(emit)?;
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
        self.feed(0, input, msg, emit)
    }

    /// Delivers the (already combined) input watermark to the head operator.
    pub(crate) fn on_watermark(&mut self, wm: Watermark, emit: &mut Emit<'_>) -> Result<()> {
        self.feed(0, 0, Message::Watermark(wm), emit)
    }

    /// Ends the input: every operator flushes in order, then `End` is emitted.
    pub(crate) fn finish(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        self.feed(0, 0, Message::End, emit)
    }

    fn feed(
        &mut self,
        level: usize,
        input: usize,
        msg: Message,
        emit: &mut Emit<'_>,
    ) -> Result<()> {
        let Some((op, ctx)) = self.ops.get_mut(level) else {
            return emit(msg);
        };
        if let Message::Side(..) = msg {
            // a side output is only consumed when its producer ends the chain
            return Ok(());
        }
        let mut out = Output::new();
        let is_end = matches!(msg, Message::End);
        let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match msg {
            Message::Data(batch) => {
                OperatorMetrics::add(&ctx.metrics().rows_in, batch.num_rows() as u64);
                op.on_batch(input, batch, ctx, &mut out)
            }
            Message::Watermark(wm) => {
                ctx.set_watermark(wm);
                op.on_watermark(wm, ctx, &mut out)
            }
            Message::Barrier(id) => {
                out.push(Message::Barrier(id));
                Ok(())
            }
            Message::End => op.on_end_of_input(ctx, &mut out),
            Message::Side(..) => unreachable!("side outputs are handled above"),
        }));
        let result = call.unwrap_or_else(|payload| Err(panic_error(ctx.operator(), payload)));
        result.map_err(|e| e.in_operator(ctx.operator(), ctx.info().subtask))?;
        let items = out.take();
        for m in &items {
            if let Message::Data(b) = m {
                OperatorMetrics::add(&ctx.metrics().rows_out, b.num_rows() as u64);
            }
        }
        for m in items {
            self.feed(level + 1, 0, m, emit)?;
        }
        if is_end {
            self.feed(level + 1, 0, Message::End, emit)?;
        }
        Ok(())
    }
}
