//! The batch (staged) executor: each task is a stage that runs to completion.
//!
//! ```text
//!  stage 0: [source→filter] x p on rayon ──router──► PartitionedBuffer per subtask
//!                                           (memory pool; over budget → IPC file)
//!  stage 1: [window→sink] x p: subtask j reads partition j of every producer
//!           (memory batches, then spill files through mmap), then
//!           Watermark::MAX, then end of input
//! ```
//! Watermarks inside a stage flow through its chain as usual; at a stage
//! boundary they are dropped, because the next stage sees all its input
//! before `Watermark::MAX`. Results equal the pipelined executor's since
//! late rows are decided at the sources, per split.

use super::chain::Chain;
use super::route::Router;
use super::{panic_error, ExecConfig, FirstError};
use crate::error::{Error, Result};
use crate::graph::{LogicalPlan, PhysicalPlan};
use crate::message::{Message, Watermark};
use crate::operator::{OperatorMetrics, RuntimeEnv, SourcePoll};
use crate::spill::{Partition, PartitionedBuffer};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Inputs of one consumer subtask: (logical input, partitions from producers).
type SubtaskInputs = Vec<(usize, Vec<Partition>)>;

pub(super) fn run(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    env: &RuntimeEnv,
    metrics: &[Arc<OperatorMetrics>],
    config: &ExecConfig,
) -> Result<()> {
    // edge id -> per producer subtask -> per consumer subtask partition
    let mut edge_outputs: Vec<Option<Vec<Vec<Option<Partition>>>>> =
        (0..physical.edges.len()).map(|_| None).collect();
    let first_error = FirstError::new();
    for task in &physical.tasks {
        // Gather each subtask's inputs from the finished stages.
        let mut inputs: Vec<SubtaskInputs> = (0..task.parallelism).map(|_| Vec::new()).collect();
        for &e in &task.inputs {
            let edge = &physical.edges[e];
            let from_par = physical.tasks[edge.from_task].parallelism;
            let mut produced = edge_outputs[e]
                .take()
                .expect("inputs run in earlier stages");
            for (s, input) in inputs.iter_mut().enumerate() {
                let parts = edge
                    .producers_of(s, from_par)
                    .into_iter()
                    .filter_map(|p| produced[p][s].take())
                    .collect();
                input.push((edge.to_input, parts));
            }
        }
        let inputs: Vec<Mutex<Option<SubtaskInputs>>> =
            inputs.into_iter().map(|i| Mutex::new(Some(i))).collect();
        let results: Vec<Result<Vec<Vec<Partition>>>> = (0..task.parallelism)
            .into_par_iter()
            .map(|s| {
                let input = inputs[s]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_default();
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_subtask(
                        plan,
                        physical,
                        task.id,
                        s,
                        env,
                        metrics,
                        config,
                        input,
                        &first_error,
                    )
                }));
                let result = match run {
                    Ok(r) => r,
                    Err(payload) => Err(panic_error(&plan.nodes[task.nodes[0]].name, payload)),
                };
                if let Err(e) = &result {
                    if !matches!(e, Error::Cancelled) {
                        first_error.cancel();
                    }
                }
                result
            })
            .collect();
        let mut outputs_per_subtask = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(o) => outputs_per_subtask.push(o),
                Err(e) => first_error.record(e),
            }
        }
        if first_error.is_cancelled() {
            break;
        }
        // Transpose: per subtask per edge -> per edge per subtask.
        for (k, &e) in task.outputs.iter().enumerate() {
            let per_producer = outputs_per_subtask
                .iter_mut()
                .map(|o| std::mem::take(&mut o[k]).into_iter().map(Some).collect())
                .collect();
            edge_outputs[e] = Some(per_producer);
        }
    }
    first_error.into_result()
}

#[allow(clippy::too_many_arguments)]
fn run_subtask(
    plan: &LogicalPlan,
    physical: &PhysicalPlan,
    t: usize,
    s: usize,
    env: &RuntimeEnv,
    metrics: &[Arc<OperatorMetrics>],
    config: &ExecConfig,
    inputs: SubtaskInputs,
    first_error: &FirstError,
) -> Result<Vec<Vec<Partition>>> {
    let task = &physical.tasks[t];
    let mut chain = Chain::try_new(plan, physical, task, s, env, metrics)?;
    let out_edges: Vec<_> = task.outputs.iter().map(|&e| &physical.edges[e]).collect();
    let targets: Vec<usize> = out_edges
        .iter()
        .map(|e| physical.tasks[e.to_task].parallelism)
        .collect();
    let mut router = Router::try_new(&out_edges, &targets, s, config.batch_rows)?;
    let last = &plan.nodes[*task.nodes.last().expect("a task has nodes")].name;
    let mut buffers: Vec<PartitionedBuffer> = out_edges
        .iter()
        .zip(&targets)
        .map(|(e, &n)| {
            PartitionedBuffer::new(
                format!("{last}#{s} -> edge {}", e.id),
                e.schema.clone(),
                n,
                &env.pool,
                &env.spill,
            )
        })
        .collect();
    {
        let mut send = |edge: usize, target: usize, msg: Message| -> Result<()> {
            match msg {
                Message::Data(batch) => buffers[edge]
                    .push(target, batch)
                    .map_err(|e| e.in_operator(last, s)),
                _ => Ok(()),
            }
        };
        let mut emit = |msg: Message| router.route(msg, &mut send);
        if chain.has_source() {
            loop {
                if first_error.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                match chain.poll_source(&mut emit)? {
                    SourcePoll::Ready => {}
                    SourcePoll::Pending => std::thread::yield_now(),
                    SourcePoll::Exhausted => break,
                }
            }
        } else {
            for (input, partitions) in inputs {
                for partition in partitions {
                    for batch in partition.into_batches() {
                        if first_error.is_cancelled() {
                            return Err(Error::Cancelled);
                        }
                        let batch =
                            batch.map_err(|e| e.in_operator(&plan.nodes[task.nodes[0]].name, s))?;
                        chain.on_batch(input, Message::Data(batch), &mut emit)?;
                    }
                }
            }
            chain.on_watermark(Watermark::MAX, &mut emit)?;
            chain.finish(&mut emit)?;
        }
    }
    buffers
        .into_iter()
        .map(|b| b.finish().map_err(|e| e.in_operator(last, s)))
        .collect()
}
