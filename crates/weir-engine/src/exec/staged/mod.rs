//! The batch (staged) executor: each task is a stage that runs to completion.
//!
//! ```text
//!  stage 0: [source→filter] x p on rayon ──router──► PartitionedBuffer per subtask
//!                                           (memory pool; over budget → IPC file)
//!  stage 1: [window→sink] x p: subtask j reads partition j of every producer
//!           (memory batches, then spill files through mmap), then
//!           Watermark::MAX, then end of input
//! ```
//! The exchange between stages is `exchange.rs` ([`PartitionedBuffer`]:
//! spillable partitions with watermark marks); `replay.rs` feeds a consumer.
//! Watermarks cross stage boundaries as marks in the partition buffers; a
//! consumer replays them while reading (see `replay::replay`), so windows fire
//! during the stage and state stays bounded. Results equal the pipelined
//! executor's since late rows are decided at the sources, per split.

mod exchange;
mod replay;

use exchange::{Partition, PartitionedBuffer};

use super::chain::{Chain, Emit};
use super::route::Router;
use super::{panic_error, RunContext};
use replay::{replay, Replayed};
use weir_core::error::{Error, Result};

use rayon::prelude::*;
use std::sync::Mutex;
use weir_core::message::{Message, Watermark};
use weir_core::operator::SourcePoll;

/// Inputs of one consumer subtask: (logical input, partitions from producers).
type SubtaskInputs = Vec<(usize, Vec<Partition>)>;

/// A consumer subtask's chain as the target of [`replay`].
struct ChainHead<'c, 'e> {
    chain: &'c mut Chain,
    emit: &'c mut Emit<'e>,
}

impl Replayed for ChainHead<'_, '_> {
    fn on_batch(&mut self, input: usize, batch: arrow_array::RecordBatch) -> Result<()> {
        self.chain.on_batch(input, Message::Data(batch), self.emit)
    }

    fn on_watermark(&mut self, watermark: Watermark) -> Result<()> {
        self.chain.on_watermark(watermark, self.emit)
    }
}

pub(super) fn run(run: RunContext<'_>, stage: &std::sync::atomic::AtomicUsize) -> Result<()> {
    let RunContext {
        plan,
        physical,
        first_error,
        ..
    } = run;
    // edge id -> per producer subtask -> per consumer subtask partition
    let mut edge_outputs: Vec<Option<Vec<Vec<Option<Partition>>>>> =
        (0..physical.edges.len()).map(|_| None).collect();
    for task in &physical.tasks {
        stage.store(task.id + 1, std::sync::atomic::Ordering::Relaxed);
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
                    run_subtask(run, task.id, s, input)
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
    first_error.take_result()
}

fn run_subtask(
    run: RunContext<'_>,
    t: usize,
    s: usize,
    inputs: SubtaskInputs,
) -> Result<Vec<Vec<Partition>>> {
    let RunContext {
        plan,
        physical,
        env,
        metrics,
        times,
        config,
        first_error,
    } = run;
    let task = &physical.tasks[t];
    let _running = times.start(t, s);
    let mut chain = Chain::try_new(plan, physical, task, s, env, metrics, true, None)?;
    let out_edges: Vec<_> = task.outputs.iter().map(|&e| &physical.edges[e]).collect();
    let targets: Vec<usize> = out_edges
        .iter()
        .map(|e| physical.tasks[e.to_task].parallelism)
        .collect();
    let mut router = Router::try_new(
        &out_edges,
        &targets,
        s,
        config.batch_rows,
        plan.key_groups.as_ref(),
    )?;
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
                Message::Watermark(Watermark::EventTime(t)) => {
                    buffers[edge].push_watermark(target, t);
                    Ok(())
                }
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
            let name = &plan.nodes[task.nodes[0]].name;
            let mut head = ChainHead {
                chain: &mut chain,
                emit: &mut emit,
            };
            replay(inputs, &mut head, first_error).map_err(|e| e.in_operator(name, s))?;
            chain.finish(&mut emit)?;
        }
    }
    buffers
        .into_iter()
        .map(|b| b.finish().map_err(|e| e.in_operator(last, s)))
        .collect()
}
