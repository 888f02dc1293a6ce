//! The checkpoint coordinator: triggers checkpoints, collects every
//! subtask's state, and completes a checkpoint by writing its manifest.
//!
//! ```text
//!             trigger N (interval after the last completion; one at a time)
//!  coordinator ─────────────────────────► triggered = N  (sources poll it)
//!     ▲  Ack(N, task, subtask, states)      write the state files at once
//!     │  Finished(f, task, subtask, states) kept; part of every checkpoint >= f
//!     │
//!     └─ all (task, subtask) acked N or finished (f <= N):
//!          manifest N (fsync + rename) ─► publish staged sink files ─► commit_upto(N) ─► retain
//!        everything finished: a final checkpoint, then the loop ends
//! ```

use super::store::{CheckpointStore, Manifest, OperatorEntry, Publish, StateFile};
use super::{CheckpointMode, CheckpointStats};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_core::error::{Error, Result};
use weir_core::message::CheckpointId;
use weir_core::observe::{CheckpointEvent, RunMessage, RunObserver, StderrMessages};
use weir_core::operator::CommitLog;
use weir_core::state::{SubtaskState, PUBLISH_ENTRY};

/// States of the nodes of one subtask's chain: `(node id, state)`.
pub(crate) type ChainState = Vec<(usize, SubtaskState)>;

/// What a subtask tells the coordinator.
pub(crate) enum Report {
    /// The subtask snapshotted checkpoint `id`.
    Ack {
        id: CheckpointId,
        task: usize,
        subtask: usize,
        states: ChainState,
        /// From its first barrier to the snapshot (zero at a source).
        alignment: Duration,
    },
    /// The subtask ended; `states` is its final snapshot, part of every
    /// checkpoint from `from` on.
    Finished {
        from: CheckpointId,
        task: usize,
        subtask: usize,
        states: ChainState,
    },
}

/// The part of the coordinator every subtask shares.
#[derive(Debug)]
pub(crate) struct CheckpointHandle {
    // config
    pub(crate) mode: CheckpointMode,
    // state
    triggered: AtomicU64,
    savepoint_requested: AtomicBool,
    // resources
    reports: Mutex<Option<Sender<Report>>>,
}

impl CheckpointHandle {
    /// The highest checkpoint id triggered so far (0: none).
    pub(crate) fn triggered(&self) -> CheckpointId {
        self.triggered.load(Ordering::Acquire)
    }

    /// Asks for a savepoint, after which the job stops.
    pub(crate) fn request_savepoint(&self) {
        self.savepoint_requested.store(true, Ordering::Release);
    }

    /// A sender for reports (each subtask keeps one).
    pub(crate) fn sender(&self) -> Option<Sender<Report>> {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops the coordinator's own sender, so the report channel
    /// disconnects once every subtask has ended.
    pub(crate) fn close(&self) {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// How the coordinator's loop ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LoopEnd {
    /// Every subtask finished; the final checkpoint is written.
    Finished,
    /// A savepoint was taken as asked; the job should stop now.
    Savepoint(PathBuf),
    /// The job was cancelled (a task failed) or its tasks ended early.
    Stopped,
}

/// One operator (plan node) the coordinator collects state for.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) parallelism: usize,
    pub(crate) definition: Option<String>,
}

struct InFlight {
    id: CheckpointId,
    started: Instant,
    savepoint: bool,
    acked: HashMap<(usize, usize), Vec<(usize, StateFile)>>,
    publish: Vec<Publish>,
    /// The longest alignment an ack reported.
    alignment: Duration,
}

/// The coordinator's own loop state (runs on one thread).
pub(crate) struct Coordinator {
    // config
    store: CheckpointStore,
    interval: Duration,
    timeout: Duration,
    retain: usize,
    nodes: Vec<NodeInfo>,
    /// Every (task, subtask) that must report.
    subtasks: Vec<(usize, usize)>,
    /// The canonical targets of the job's file sinks: publishes go nowhere else.
    targets: Vec<PathBuf>,
    // state
    next_id: CheckpointId,
    in_flight: Option<InFlight>,
    finished: HashMap<(usize, usize), (CheckpointId, ChainState)>,
    stats: CheckpointStats,
    // resources
    handle: Arc<CheckpointHandle>,
    reports: Receiver<Report>,
    commits: Arc<CommitLog>,
    /// Who hears the run's warnings (e.g. an old checkpoint that could
    /// not be removed).
    observer: Arc<dyn RunObserver>,
}

impl Coordinator {
    /// A coordinator whose first checkpoint gets id `first_id`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: CheckpointStore,
        mode: CheckpointMode,
        interval: Duration,
        timeout: Duration,
        retain: usize,
        nodes: Vec<NodeInfo>,
        subtasks: Vec<(usize, usize)>,
        targets: Vec<PathBuf>,
        first_id: CheckpointId,
        commits: Arc<CommitLog>,
        stats: CheckpointStats,
    ) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = Arc::new(CheckpointHandle {
            mode,
            triggered: AtomicU64::new(first_id.saturating_sub(1)),
            savepoint_requested: AtomicBool::new(false),
            reports: Mutex::new(Some(tx)),
        });
        Coordinator {
            store,
            interval,
            timeout,
            retain,
            nodes,
            subtasks,
            targets,
            next_id: first_id,
            in_flight: None,
            finished: HashMap::new(),
            stats,
            handle,
            reports: rx,
            commits,
            observer: Arc::new(StderrMessages),
        }
    }

    /// Tells `observer` the coordinator's warnings (default: stderr).
    pub(crate) fn with_observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The handle subtasks use.
    pub(crate) fn handle(&self) -> Arc<CheckpointHandle> {
        self.handle.clone()
    }

    /// What happened so far.
    pub(crate) fn stats(&self) -> &CheckpointStats {
        &self.stats
    }

    /// Runs until every subtask finished, a savepoint was taken, or
    /// `stopped()` says the job is over. Returns how it ended.
    pub(crate) fn run(
        &mut self,
        stopped: &dyn Fn() -> bool,
        savepoint_wanted: &dyn Fn() -> bool,
    ) -> Result<LoopEnd> {
        let end = self.run_loop(stopped, savepoint_wanted);
        if let Err(e) = &end {
            self.observer.on_checkpoint_failed(&e.to_string());
        }
        end
    }

    fn run_loop(
        &mut self,
        stopped: &dyn Fn() -> bool,
        savepoint_wanted: &dyn Fn() -> bool,
    ) -> Result<LoopEnd> {
        let mut next_trigger = Instant::now() + self.interval;
        loop {
            if stopped() {
                return Ok(LoopEnd::Stopped);
            }
            if savepoint_wanted() {
                self.handle.request_savepoint();
            }
            let savepoint = self.handle.savepoint_requested.load(Ordering::Acquire);
            let all_finished = self.finished.len() == self.subtasks.len();
            if self.in_flight.is_none()
                && !all_finished
                && (Instant::now() >= next_trigger || savepoint)
            {
                self.trigger(savepoint)?;
            }
            if let Some(f) = &self.in_flight {
                if f.started.elapsed() > self.timeout {
                    return Err(Error::Checkpoint {
                        location: self.store.dir_of(f.id).display().to_string(),
                        message: format!(
                            "not complete after {:?} (a subtask never acknowledged it)",
                            self.timeout
                        ),
                    });
                }
            }
            let wait = if self.in_flight.is_some() {
                Duration::from_millis(20)
            } else {
                next_trigger
                    .saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(1), Duration::from_millis(50))
            };
            match self.reports.recv_timeout(wait) {
                Ok(report) => self.on_report(report)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if self.finished.len() == self.subtasks.len() {
                        self.write_final()?;
                        return Ok(LoopEnd::Finished);
                    }
                    return Ok(LoopEnd::Stopped);
                }
            }
            if self.is_complete() {
                let (dir, savepoint) = self.complete(false)?;
                next_trigger = Instant::now() + self.interval;
                if savepoint {
                    self.stats.savepoint = Some(dir.clone());
                    return Ok(LoopEnd::Savepoint(dir));
                }
            }
            if self.in_flight.is_none() && self.finished.len() == self.subtasks.len() {
                self.write_final()?;
                return Ok(LoopEnd::Finished);
            }
        }
    }

    fn trigger(&mut self, savepoint: bool) -> Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        self.store.begin(id)?;
        self.in_flight = Some(InFlight {
            id,
            started: Instant::now(),
            savepoint,
            acked: HashMap::new(),
            publish: Vec::new(),
            alignment: Duration::ZERO,
        });
        self.handle.triggered.store(id, Ordering::Release);
        Ok(())
    }

    fn on_report(&mut self, report: Report) -> Result<()> {
        match report {
            Report::Ack {
                id,
                task,
                subtask,
                states,
                alignment,
            } => {
                if self.in_flight.as_ref().is_none_or(|f| f.id != id) {
                    return Ok(()); // an ack of an abandoned checkpoint
                }
                let mut publish = Vec::new();
                let files = self.write_chain(id, subtask, &states, &mut publish)?;
                let f = self.in_flight.as_mut().expect("checked above");
                f.publish.extend(publish);
                f.acked.insert((task, subtask), files);
                f.alignment = f.alignment.max(alignment);
            }
            Report::Finished {
                from,
                task,
                subtask,
                states,
            } => {
                self.finished.insert((task, subtask), (from, states));
            }
        }
        Ok(())
    }

    /// Writes the state files of one subtask's chain; collects what its
    /// sinks ask to publish.
    fn write_chain(
        &self,
        id: CheckpointId,
        subtask: usize,
        states: &ChainState,
        publish: &mut Vec<Publish>,
    ) -> Result<Vec<(usize, StateFile)>> {
        let mut files = Vec::new();
        for (node, state) in states {
            publish.extend(publishes(state)?);
            let name = &self.nodes[self.node_index(*node)].name;
            let bytes = state.encode()?;
            files.push((
                *node,
                self.store.write_state(id, *node, name, subtask, &bytes)?,
            ));
        }
        Ok(files)
    }

    fn node_index(&self, node: usize) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == node)
            .expect("reports only name nodes of the plan")
    }

    fn is_complete(&self) -> bool {
        let Some(f) = &self.in_flight else {
            return false;
        };
        self.subtasks.iter().all(|k| {
            f.acked.contains_key(k) || self.finished.get(k).is_some_and(|(from, _)| *from <= f.id)
        })
    }

    /// Writes the manifest of the in-flight checkpoint and publishes its output.
    fn complete(&mut self, is_final: bool) -> Result<(PathBuf, bool)> {
        let mut f = self
            .in_flight
            .take()
            .expect("complete() follows is_complete()");
        // subtasks that had finished: their final snapshot stands in for an ack
        let mut stand_ins = Vec::new();
        for (k, (from, states)) in &self.finished {
            if *from <= f.id && !f.acked.contains_key(k) {
                stand_ins.push((*k, self.write_chain(f.id, k.1, states, &mut f.publish)?));
            }
        }
        f.acked.extend(stand_ins);
        let manifest = self.manifest(f.id, &f.acked, f.publish, f.savepoint, is_final);
        self.finish_checkpoint(manifest, f.started, f.alignment)
    }

    fn manifest(
        &self,
        id: CheckpointId,
        acked: &HashMap<(usize, usize), Vec<(usize, StateFile)>>,
        publish: Vec<Publish>,
        savepoint: bool,
        is_final: bool,
    ) -> Manifest {
        let mut by_node: HashMap<usize, Vec<StateFile>> = HashMap::new();
        for files in acked.values() {
            for (node, file) in files {
                by_node.entry(*node).or_default().push(file.clone());
            }
        }
        let operators = self
            .nodes
            .iter()
            .map(|n| {
                let mut files = by_node.remove(&n.id).unwrap_or_default();
                files.sort_by_key(|f| f.subtask);
                OperatorEntry {
                    name: n.name.clone(),
                    parallelism: n.parallelism,
                    definition: n.definition.clone(),
                    files,
                }
            })
            .collect();
        Manifest {
            version: super::store::MANIFEST_VERSION,
            job: self.store.job().to_string(),
            id,
            completed_ms: weir_core::operator::now_ms(),
            savepoint,
            is_final,
            operators,
            publish,
            checksum: 0, // set when written
        }
    }

    fn finish_checkpoint(
        &mut self,
        manifest: Manifest,
        started: Instant,
        alignment: Duration,
    ) -> Result<(PathBuf, bool)> {
        for p in &manifest.publish {
            p.check(&self.targets)?;
        }
        let dir = self.store.complete(&manifest)?;
        for p in &manifest.publish {
            p.apply()?;
        }
        self.commits.commit_upto(manifest.id)?;
        for w in self.store.retain(self.retain)? {
            self.observer
                .on_message(&RunMessage::Warning(w.to_string()));
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.stats.completed += 1;
        self.stats.last_id = Some(manifest.id);
        self.stats.last_duration_ms = ms;
        self.stats.max_duration_ms = self.stats.max_duration_ms.max(ms);
        self.stats.durations_ms.push(ms);
        let mut sorted = self.stats.durations_ms.clone();
        sorted.sort_by(f64::total_cmp);
        self.stats.median_duration_ms = sorted[sorted.len() / 2];
        self.stats.last_bytes = manifest.state_bytes();
        self.stats.max_bytes = self.stats.max_bytes.max(self.stats.last_bytes);
        self.observer.on_checkpoint(&CheckpointEvent {
            id: manifest.id,
            duration: started.elapsed(),
            alignment,
            bytes: self.stats.last_bytes,
            savepoint: manifest.savepoint,
        });
        Ok((dir, manifest.savepoint))
    }

    /// Every subtask finished: one last checkpoint holding their final
    /// states publishes what they staged at the end.
    fn write_final(&mut self) -> Result<()> {
        let from_max = self.finished.values().map(|(f, _)| *f).max().unwrap_or(0);
        self.next_id = self.next_id.max(from_max);
        self.trigger(false)?;
        self.complete(true)?;
        Ok(())
    }
}

/// The sink files a subtask's state asks to publish.
fn publishes(state: &SubtaskState) -> Result<Vec<Publish>> {
    let mut out = Vec::new();
    for e in state.entries.iter().filter(|e| e.name == PUBLISH_ENTRY) {
        let pairs: Vec<(PathBuf, PathBuf)> =
            postcard::from_bytes(&e.bytes).map_err(|err| Error::Checkpoint {
                location: "sink state".into(),
                message: format!("unreadable list of staged files: {err}"),
            })?;
        out.extend(pairs.into_iter().map(|(from, to)| Publish { from, to }));
    }
    Ok(out)
}
