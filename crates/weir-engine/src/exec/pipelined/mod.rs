//! The pipelined executor: one thread per subtask, bounded channels between tasks.
//!
//! ```text
//!  [source→filter] x p ──(channel per consumer subtask, bounded: backpressure)──►
//!        router: hash/rebalance/broadcast/forward    [window→sink] x p
//!  each consumer: recv (channel_idx, msg)
//!     Data      ─► chain.on_batch(input of channel)
//!     Watermark ─► tracker.update(channel) ─► if the minimum rose: chain.on_watermark
//!     End       ─► tracker.on_end(channel); all ended ─► chain.finish ─► End downstream
//!  first error ─► recorded, cancel channel dropped ─► every blocked send/recv wakes up
//! ```

mod barriers;

use super::chain::{Chain, RestoreSet};
use super::progress::Wait;
use super::route::Router;
use super::{panic_error, RunContext};
use crate::checkpoint::coordinator::{CheckpointHandle, Coordinator, LoopEnd, Report};
use crate::checkpoint::CheckpointStats;
use barriers::Barriers;
use weir_core::error::{Error, Result};

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use weir_core::message::Message;
use weir_core::operator::{now_ms, SourcePoll};
use weir_core::time::WatermarkTracker;

use std::time::Duration;

type Envelope = (u32, Message);

/// Where a producer subtask sends on one output edge: per consumer subtask,
/// the channel and the channel index the consumer knows it by.
struct Outlet {
    targets: Vec<Option<(Sender<Envelope>, u32)>>,
}

/// How a checkpointed pipelined run ended, besides its result.
pub(super) struct CheckpointOutcome {
    pub(super) end: LoopEnd,
    pub(super) stats: CheckpointStats,
}

/// Runs the plan; with a coordinator, takes checkpoints while it runs
/// (and with `restore`, every operator starts from the restored state).
pub(super) fn run(
    run: RunContext<'_>,
    restore: Option<&RestoreSet>,
    coordinator: Option<Coordinator>,
) -> (Result<()>, Option<CheckpointOutcome>) {
    let RunContext {
        plan,
        physical,
        config,
        first_error,
        ..
    } = run;
    let capacity = config.channel_capacity();
    // One inbox per subtask of every task.
    let mut inboxes: Vec<Vec<(Sender<Envelope>, Receiver<Envelope>)>> = physical
        .tasks
        .iter()
        .map(|t| (0..t.parallelism).map(|_| bounded(capacity)).collect())
        .collect();
    // For each consumer subtask: channel index -> logical input; and for each
    // (edge, producer, consumer): the channel index.
    let mut channel_inputs: Vec<Vec<Vec<usize>>> = physical
        .tasks
        .iter()
        .map(|t| vec![Vec::new(); t.parallelism])
        .collect();
    // outlets[edge][producer] -> Outlet
    let mut outlets: Vec<Vec<Outlet>> = Vec::with_capacity(physical.edges.len());
    for edge in &physical.edges {
        let from_par = physical.tasks[edge.from_task].parallelism;
        let to_par = physical.tasks[edge.to_task].parallelism;
        let mut per_producer: Vec<Outlet> = (0..from_par)
            .map(|_| Outlet {
                targets: vec![None; to_par],
            })
            .collect();
        for to in 0..to_par {
            for p in edge.producers_of(to, from_par) {
                let inputs = &mut channel_inputs[edge.to_task][to];
                let idx = inputs.len() as u32;
                inputs.push(edge.to_input);
                per_producer[p].targets[to] = Some((inboxes[edge.to_task][to].0.clone(), idx));
            }
        }
        outlets.push(per_producer);
    }
    // Drop the inboxes' own senders so a channel disconnects when its producers finish.
    let receivers: Vec<Vec<Receiver<Envelope>>> = inboxes
        .iter_mut()
        .map(|subs| subs.drain(..).map(|(_, rx)| rx).collect())
        .collect();

    let handle = coordinator.as_ref().map(|c| c.handle());
    let savepoint_at = config
        .savepoint_at
        .filter(|_| coordinator.is_some())
        .map(|at| {
            let sources = physical
                .tasks
                .iter()
                .filter(|t| {
                    t.nodes
                        .first()
                        .is_some_and(|&n| plan.nodes[n].kind.is_source())
                })
                .map(|t| t.parallelism)
                .sum();
            SavepointAt::new(at, sources)
        });
    let savepoint_at = &savepoint_at;
    let mut outcome = None;
    std::thread::scope(|scope| {
        if let Some(mut coordinator) = coordinator {
            let stop = &config.stop;
            let outcome = &mut outcome;
            let body = move || {
                let end = coordinator.run(&|| first_error.is_cancelled(), &|| {
                    stop.savepoint_requested()
                        || savepoint_at.as_ref().is_some_and(|a| a.requested())
                });
                match end {
                    Ok(LoopEnd::Savepoint(dir)) => {
                        // the savepoint is complete: stop every task now, without draining
                        first_error.cancel();
                        *outcome = Some(CheckpointOutcome {
                            end: LoopEnd::Savepoint(dir),
                            stats: coordinator.stats().clone(),
                        });
                    }
                    Ok(end) => {
                        *outcome = Some(CheckpointOutcome {
                            end,
                            stats: coordinator.stats().clone(),
                        })
                    }
                    Err(e) => {
                        first_error.record(e);
                        *outcome = Some(CheckpointOutcome {
                            end: LoopEnd::Stopped,
                            stats: coordinator.stats().clone(),
                        });
                    }
                }
            };
            if let Err(e) = std::thread::Builder::new()
                .name("checkpoint-coordinator".into())
                .spawn_scoped(scope, body)
            {
                first_error.record(weir_spawn_error("checkpoint coordinator", e));
                return;
            }
        }
        let handle = handle.as_deref();
        for (t, task) in physical.tasks.iter().enumerate() {
            for s in 0..task.parallelism {
                let rx = receivers[t][s].clone();
                let inputs = channel_inputs[t][s].clone();
                let mut my_outlets: Vec<Outlet> = task
                    .outputs
                    .iter()
                    .map(|&e| std::mem::replace(&mut outlets[e][s], Outlet { targets: vec![] }))
                    .collect();
                // taken now: the coordinator's own sender is dropped once all are spawned
                let reports = handle.and_then(|h| h.sender());
                let name = format!(
                    "{}#{s}",
                    task.nodes
                        .iter()
                        .map(|&n| plan.nodes[n].name.as_str())
                        .collect::<Vec<_>>()
                        .join("->")
                );
                let thread_name = name.clone();
                let body = move || {
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let subtask = Subtask {
                            task: t,
                            subtask: s,
                            rx,
                            channel_inputs: inputs,
                            restore,
                            checkpoints: handle.zip(reports),
                            savepoint_at: savepoint_at.as_ref(),
                        };
                        run_subtask(run, subtask, &mut my_outlets)
                    }));
                    // Dropping the outlets disconnects our channels downstream.
                    drop(my_outlets);
                    match run {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => first_error.record(e),
                        Err(payload) => first_error.record(panic_error(&name, payload)),
                    }
                };
                if let Err(e) = std::thread::Builder::new()
                    .name(thread_name.clone())
                    .spawn_scoped(scope, body)
                {
                    // Cancel: threads already running wake up and end; the
                    // closure (with its channels) was dropped with the error.
                    first_error.record(weir_spawn_error(&thread_name, e));
                    return;
                }
            }
        }
        // the subtasks hold their own senders: the report channel ends with them
        if let Some(h) = handle {
            h.close();
        }
    });
    drop(receivers);
    let savepoint = matches!(
        outcome,
        Some(CheckpointOutcome {
            end: LoopEnd::Savepoint(_),
            ..
        })
    );
    let result = match first_error.take_result() {
        Err(Error::Cancelled) if savepoint => Ok(()),
        r => r,
    };
    (result, outcome)
}

fn weir_spawn_error(task: &str, e: std::io::Error) -> Error {
    Error::Plan(format!(
        "cannot start a thread for `{task}` ({e}); lower --parallelism"
    ))
}

/// One pipelined subtask: which one, its inbox, and what it restores from
/// and reports checkpoints to.
struct Subtask<'a> {
    task: usize,
    subtask: usize,
    rx: Receiver<Envelope>,
    /// Channel index -> logical input of the task.
    channel_inputs: Vec<usize>,
    restore: Option<&'a RestoreSet>,
    checkpoints: Option<(&'a CheckpointHandle, Sender<Report>)>,
    savepoint_at: Option<&'a SavepointAt>,
}

/// `--savepoint-at T`: source subtasks stop reading where their watermark
/// reaches `T`; the last of them asks for the savepoint.
///
/// ```text
///  source subtask: poll ─► watermark ≥ T? ─► paused: only barriers go out
///  last source subtask paused or ended (and one paused) ─► this attempt's coordinator
///     takes a savepoint (a restart does not inherit the request)
///  savepoint complete ─► every task stops; a source's rows end where its watermark
///  reached T, the same rows in every run of the same input (and every shard)
/// ```
struct SavepointAt {
    // config
    at: i64,
    // state
    /// Source subtasks still reading.
    reading: AtomicUsize,
    paused: AtomicBool,
    /// This attempt's request (a restart gets a new one: the run's
    /// StopSignal would still carry it).
    requested: AtomicBool,
}

impl SavepointAt {
    fn new(at: i64, sources: usize) -> Self {
        SavepointAt {
            at,
            reading: AtomicUsize::new(sources),
            paused: AtomicBool::new(false),
            requested: AtomicBool::new(false),
        }
    }

    /// A source subtask stopped reading (`paused`) or ended; the last one
    /// asks for the savepoint if any paused.
    fn on_done(&self, paused: bool) {
        if paused {
            self.paused.store(true, Ordering::Release);
        }
        let left = self.reading.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && self.paused.load(Ordering::Acquire) {
            self.requested.store(true, Ordering::Release);
        }
    }

    /// True once every source subtask paused or ended (and one paused).
    fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}

fn run_subtask(run: RunContext<'_>, sub: Subtask<'_>, outlets: &mut [Outlet]) -> Result<()> {
    let RunContext {
        plan,
        physical,
        env,
        metrics,
        times,
        config,
        first_error,
    } = run;
    let Subtask {
        task: t,
        subtask: s,
        rx,
        channel_inputs,
        restore,
        checkpoints,
        savepoint_at,
    } = sub;
    let task = &physical.tasks[t];
    let _running = times.start(t, s);
    let mut chain = Chain::try_new(plan, physical, task, s, env, metrics, false, restore)?;
    let mut barriers = checkpoints.map(|(h, tx)| Barriers::new(h, tx, t, s));
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
    let cancel = &first_error.cancel_rx;
    let mut send = |edge: usize, target: usize, msg: Message| -> Result<()> {
        let (tx, idx) = outlets[edge].targets[target]
            .as_ref()
            .expect("the router only addresses connected subtasks");
        // a full queue downstream is back pressure: only then is the wait timed
        let to = (physical.edges[task.outputs[edge]].to_task, target);
        let msg = match tx.try_send((*idx, msg)) {
            Ok(()) => {
                times.set_queue(to.0, to.1, tx.len(), tx.capacity().unwrap_or(0));
                return Ok(());
            }
            Err(TrySendError::Disconnected(_)) => return Err(Error::Cancelled),
            Err(TrySendError::Full(msg)) => msg,
        };
        // the consumer's queue is full: it may be blocked and not say so
        times.set_queue(to.0, to.1, tx.len(), tx.capacity().unwrap_or(0));
        let _blocked = times.wait(t, s, Wait::Room);
        select! {
            send(tx, msg) -> r => r.map_err(|_| Error::Cancelled),
            recv(cancel) -> _ => Err(Error::Cancelled),
        }
    };
    let ends_in_sink = out_edges.is_empty();
    let latency = env.latency.clone();
    let mut emit = |msg: Message| match msg {
        Message::Latency(sent) if ends_in_sink => {
            latency.record(sent);
            Ok(())
        }
        msg => router.route(msg, &mut send),
    };

    if chain.has_source() {
        // the first marker goes out at once, then one every interval
        let mut last_marker: Option<std::time::Instant> = None;
        loop {
            if first_error.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if let Some(every) = config.latency_interval {
                if last_marker.is_none_or(|t| t.elapsed() >= every) {
                    last_marker = Some(std::time::Instant::now());
                    chain.send_latency_marker(weir_core::operator::now_us(), &mut emit)?;
                }
            }
            if let Some(b) = barriers.as_mut() {
                b.inject_due(&mut chain, &mut emit)?;
            }
            if let Some(at) = savepoint_at.filter(|at| chain.source_watermark() >= Some(at.at)) {
                // stop reading here (a restored source may be there already);
                // barriers still go out until the savepoint stops the job
                at.on_done(true);
                let b = barriers
                    .as_mut()
                    .expect("--savepoint-at runs are checkpointed");
                loop {
                    if first_error.is_cancelled() {
                        return Err(Error::Cancelled);
                    }
                    b.inject_due(&mut chain, &mut emit)?;
                    let _idle = times.wait(t, s, Wait::Input);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            match chain.poll_source(&mut emit)? {
                SourcePoll::Ready => {}
                SourcePoll::Pending => {
                    let _idle = times.wait(t, s, Wait::Input);
                    std::thread::sleep(Duration::from_millis(1));
                }
                SourcePoll::Exhausted => {
                    if let Some(b) = barriers.as_mut() {
                        b.on_finished(&mut chain)?;
                    }
                    if let Some(at) = savepoint_at {
                        at.on_done(false);
                    }
                    return Ok(());
                }
            }
            if chain.next_timer().is_some_and(|t| t <= now_ms()) {
                chain.fire_timers(now_ms(), &mut emit)?;
            }
        }
    }

    let capacity = rx.capacity().unwrap_or(0);
    let mut tracker = WatermarkTracker::new(channel_inputs.len());
    let mut open = channel_inputs.len();
    let mut ended = vec![false; channel_inputs.len()];
    // messages held back by barrier alignment, then replayed in order
    let mut replay: VecDeque<Envelope> = VecDeque::new();
    while open > 0 {
        if chain.next_timer().is_some_and(|t| t <= now_ms()) {
            chain.fire_timers(now_ms(), &mut emit)?;
        }
        let next = if let Some(m) = replay.pop_front() {
            m
        } else if let Ok(m) = rx.try_recv() {
            times.set_queue(t, s, rx.len(), capacity);
            m
        } else {
            // nothing queued: the wait for input is idle time
            let _idle = times.wait(t, s, Wait::Input);
            match chain.next_timer() {
                None => select! {
                    recv(rx) -> m => m.map_err(|_| Error::Cancelled)?,
                    recv(cancel) -> _ => return Err(Error::Cancelled),
                },
                Some(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(now_ms()).max(0) as u64);
                    select! {
                        recv(rx) -> m => m.map_err(|_| Error::Cancelled)?,
                        recv(cancel) -> _ => return Err(Error::Cancelled),
                        default(wait) => {
                            chain.fire_timers(now_ms(), &mut emit)?;
                            continue;
                        }
                    }
                }
            }
        };
        let (channel, msg) = next;
        let channel = channel as usize;
        if let Some(b) = barriers.as_mut() {
            if b.holds(channel) {
                b.hold((channel as u32, msg));
                continue;
            }
        }
        match msg {
            Message::Data(_) => chain.on_batch(channel_inputs[channel], msg, &mut emit)?,
            // the router delivers side outputs as Data; nothing else sends Side
            Message::Side(_, batch) => {
                chain.on_batch(channel_inputs[channel], Message::Data(batch), &mut emit)?
            }
            Message::Watermark(wm) => {
                if let Some(w) = tracker.update(channel, wm) {
                    chain.on_watermark(w, &mut emit)?;
                }
            }
            Message::Barrier(id) => {
                if let Some(b) = barriers.as_mut() {
                    b.on_barrier(id, channel, &ended)?;
                }
            }
            Message::Latency(_) => chain.on_batch(channel_inputs[channel], msg, &mut emit)?,
            Message::End => {
                open -= 1;
                ended[channel] = true;
                if let Some(w) = tracker.on_end(channel) {
                    if open > 0 {
                        chain.on_watermark(w, &mut emit)?;
                    }
                }
            }
        }
        if let Some(b) = barriers.as_mut() {
            if let Some(held) = b.complete_if_aligned(&ended, &mut chain, &mut emit)? {
                // held messages came before anything still queued for replay
                for m in held.into_iter().rev() {
                    replay.push_front(m);
                }
            }
        }
    }
    chain.finish(&mut emit)?;
    if let Some(b) = barriers.as_mut() {
        b.on_finished(&mut chain)?;
    }
    Ok(())
}
