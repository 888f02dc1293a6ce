//! The operator contract: the one interface every executor drives.
//!
//! Owns [`Operator`], [`Source`] and their factories; its rooms hold
//! [`SourceSpec`] (the connector contract, `source_spec.rs`), [`Ctx`] and
//! [`RuntimeEnv`] (`context.rs`), [`Output`] (`output.rs`), the
//! [`CommitLog`] that sinks stage their files in (`commit.rs`) and the
//! [`StopSignal`] (`stop.rs`). Operators are synchronous and
//! push-based: an executor calls `on_batch`, `on_watermark` and
//! `on_end_of_input`, then takes what the operator put in its [`Output`]. No
//! operator knows whether it runs pipelined or in batch stages.
//!
//! May use `error`, `message`, `memory`, `spill`, `state`, `time`. Never `exec` or `graph`.

mod commit;
mod context;
mod metrics;
mod output;
mod repartition;
mod source_spec;
mod stop;

pub use crate::event_time_pushdown;
pub use commit::{CommitLog, PendingCommit};
pub use context::{now_ms, now_us, Ctx, LatencySamples, RuntimeEnv};
pub use metrics::{OperatorMetrics, SubtaskMetrics};
pub use output::Output;
pub use repartition::{RepartitionEdge, Repartitioner};
pub use source_spec::{Boundedness, ShardShare, SourceSpec, DEAD_LETTER_PORT};
pub use stop::{signal_name, ProcessSignals, StopSignal};

use crate::error::Result;
use crate::message::Watermark;
use crate::state::{StateReader, StateWriter};
use arrow_array::RecordBatch;
use std::sync::Arc;

/// Which parallel instance of an operator this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The operator's name in the plan (unique within a job).
    pub operator: String,
    /// This instance's index, `0..parallelism`.
    pub subtask: usize,
    /// Number of parallel instances of this operator.
    pub parallelism: usize,
}

/// A streaming operator. Executors call it from one thread at a time.
///
/// The executor calls [`open`](Operator::open) once, before `restore` and
/// any input; then the callbacks. The default `on_watermark` forwards the
/// watermark; the default `on_end_of_input` does nothing.
pub trait Operator: Send {
    /// Makes the instance's per-task resources: its memory reservations
    /// ([`Ctx::spillable_reservation`], [`Ctx::fixed_reservation`]) and
    /// anything else that needs the runtime. Called once, first.
    fn open(&mut self, _ctx: &mut Ctx) -> Result<()> {
        Ok(())
    }

    /// Rows arrived on `input` (0 for single-input operators).
    fn on_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()>;

    /// Event time advanced to `wm` (already the minimum over all inputs).
    fn on_watermark(&mut self, wm: Watermark, _ctx: &mut Ctx, out: &mut Output) -> Result<()> {
        out.emit_watermark(wm);
        Ok(())
    }

    /// The wall clock reached the time requested with
    /// [`Ctx::set_processing_timer`] (pipelined runs only).
    fn on_processing_time(&mut self, _now: i64, _ctx: &mut Ctx, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// All inputs are finished: flush remaining state.
    fn on_end_of_input(&mut self, _ctx: &mut Ctx, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// A checkpointed job restored its final checkpoint: it had finished,
    /// so nothing runs, and this is called instead on subtask 0 of every
    /// sink (after `open`), so a sink can redo an idempotent end-of-job
    /// step a crash may have cut short (a shard's commit marker). Default:
    /// nothing.
    fn on_already_finished(&mut self, _ctx: &mut Ctx) -> Result<()> {
        Ok(())
    }

    /// A checkpoint barrier passed this operator (aligned over all inputs):
    /// write everything needed to continue from here into `state`.
    ///
    /// The default refuses, so a stateful operator that does not implement
    /// it can never lose its state silently; stateless operators return
    /// `Ok(())`. The executor saves the watermark and processing timer.
    fn snapshot(&mut self, ctx: &mut Ctx, _state: &mut StateWriter) -> Result<()> {
        Err(not_checkpointable(ctx.operator()))
    }

    /// Called once, before any input, when the job restores a checkpoint.
    /// An empty `state` means the operator had nothing saved (or is new).
    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        restore_nothing(ctx, state)
    }
}

/// The error of an operator or source that cannot be checkpointed.
pub fn not_checkpointable(operator: &str) -> crate::error::Error {
    crate::error::Error::Checkpoint {
        location: format!("operator `{operator}`"),
        message: "this operator does not support checkpoints yet; \
                  run the job without a checkpoint interval"
            .into(),
    }
}

/// The default `restore`: fine when nothing was saved, an error otherwise.
fn restore_nothing(ctx: &Ctx, state: &StateReader) -> Result<()> {
    if state.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::Checkpoint {
            location: format!("operator `{}`", ctx.operator()),
            message: "the checkpoint holds state this operator cannot read".into(),
        })
    }
}

/// What a source reports after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePoll {
    /// It emitted something, or may have more right away.
    Ready,
    /// Nothing available now (live sources); poll again later.
    Pending,
    /// A bounded source has delivered everything. The executor then sends
    /// `Watermark::MAX` and end of input downstream.
    Exhausted,
}

/// A source instance: reads its share of the input and emits batches and
/// watermarks into `out`.
pub trait Source: Send {
    /// Makes the instance's per-task resources (memory reservations for
    /// what it reads ahead). Called once, before `restore` and the first poll.
    fn open(&mut self, _ctx: &mut Ctx) -> Result<()> {
        Ok(())
    }

    /// Emits the next rows (and watermarks), or reports that it has none.
    fn poll_next(&mut self, ctx: &mut Ctx, out: &mut Output) -> Result<SourcePoll>;

    /// Records the position reached (everything emitted so far is before
    /// the barrier that follows) and the watermark clock, so a restored
    /// source continues with the next row and the same watermarks.
    fn snapshot(&mut self, ctx: &mut Ctx, _state: &mut StateWriter) -> Result<()> {
        Err(not_checkpointable(ctx.operator()))
    }

    /// Called once, before the first poll, when the job restores.
    fn restore(&mut self, ctx: &mut Ctx, state: &StateReader) -> Result<()> {
        restore_nothing(ctx, state)
    }
}

/// Builds one instance of an operator for a subtask.
pub type OperatorFactory = Arc<dyn Fn(&TaskInfo) -> Result<Box<dyn Operator>> + Send + Sync>;

/// Builds one instance of a source for a subtask.
pub type SourceFactory = Arc<dyn Fn(&TaskInfo) -> Result<Box<dyn Source>> + Send + Sync>;
