//! Checkpoint barriers in one pipelined subtask: injection at sources,
//! alignment at operators with inputs, acknowledgements to the coordinator.
//!
//! [`Alignment`] is the decision logic alone (which channel waits, when a
//! barrier is aligned, what was held), so it is unit-tested without threads,
//! channels or operators; [`Barriers`] applies its decisions to the
//! subtask's chain and reports to the checkpoint coordinator.
//!
//! May use `crate::checkpoint` and `super::chain`; nothing else of the engine.

use super::super::chain::{Chain, Emit};
use super::Envelope;
use crate::checkpoint::coordinator::{CheckpointHandle, Report};
use crate::checkpoint::CheckpointMode;
use crossbeam_channel::Sender;
use weir_core::error::{Error, Result};
use weir_core::message::{CheckpointId, Message};

/// Barrier alignment of one subtask's input channels.
///
/// ```text
///  exactly once:  channel 0 ──B5──► held: every later message of channel 0
///                 channel 1 ──...data...──B5──► aligned: snapshot, Barrier(5) downstream,
///                 Ack(5) to the coordinator, then replay what channel 0 held
///  at least once: nothing is held; snapshot once B5 came on every open channel
///  an ended channel counts as having delivered every barrier
/// ```
///
/// `T` is what a held channel's messages are (an envelope in the executor).
#[derive(Debug)]
pub(super) struct Alignment<T> {
    // config
    exactly_once: bool,
    // state
    /// The last checkpoint this subtask took (0: none).
    last: CheckpointId,
    /// The barrier being aligned and, per channel, whether it arrived.
    aligning: Option<(CheckpointId, Vec<bool>)>,
    /// Messages of channels that delivered the barrier (exactly once).
    held: Vec<T>,
}

impl<T> Alignment<T> {
    pub(super) fn new(mode: CheckpointMode) -> Self {
        Alignment {
            exactly_once: mode == CheckpointMode::ExactlyOnce,
            last: 0,
            aligning: None,
            held: Vec::new(),
        }
    }

    /// True if the coordinator's `triggered` checkpoint is one this subtask
    /// has not taken (sources inject it).
    pub(super) fn is_due(&self, triggered: CheckpointId) -> bool {
        triggered > self.last
    }

    /// True if messages of `channel` must wait: it delivered the barrier
    /// being aligned (exactly-once mode only).
    pub(super) fn holds(&self, channel: usize) -> bool {
        self.exactly_once
            && self
                .aligning
                .as_ref()
                .is_some_and(|(_, arrived)| arrived[channel])
    }

    /// Keeps a message of a waiting channel until the alignment completes.
    pub(super) fn hold(&mut self, m: T) {
        self.held.push(m);
    }

    /// Barrier `id` arrived on `channel` of `channels`. A barrier already
    /// taken is ignored; a different barrier while one is being aligned is
    /// an error naming `location` (the coordinator triggers one at a time).
    pub(super) fn on_barrier(
        &mut self,
        id: CheckpointId,
        channel: usize,
        channels: usize,
        location: impl FnOnce() -> String,
    ) -> Result<()> {
        if id <= self.last {
            return Ok(());
        }
        let (aligning, arrived) = self
            .aligning
            .get_or_insert_with(|| (id, vec![false; channels]));
        if *aligning != id {
            return Err(Error::Checkpoint {
                location: location(),
                message: format!("barrier {id} arrived while aligning barrier {aligning}"),
            });
        }
        arrived[channel] = true;
        Ok(())
    }

    /// The barrier being aligned, if every channel has delivered it or
    /// ended (`ended[c]`); the alignment is then over (take the checkpoint,
    /// then replay [`Alignment::take_held`]).
    pub(super) fn aligned(&mut self, ended: &[bool]) -> Option<CheckpointId> {
        let (id, arrived) = self.aligning.as_ref()?;
        if !arrived.iter().zip(ended).all(|(a, e)| *a || *e) {
            return None;
        }
        let id = *id;
        self.aligning = None;
        Some(id)
    }

    /// Records that checkpoint `id` was taken.
    pub(super) fn on_taken(&mut self, id: CheckpointId) {
        self.last = id;
    }

    /// The held messages, in the order they arrived.
    pub(super) fn take_held(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held)
    }

    /// The checkpoint a subtask that ended belongs to: the one in flight it
    /// never saw, or the next.
    pub(super) fn final_checkpoint(&self, triggered: CheckpointId) -> CheckpointId {
        (self.last + 1).max(triggered)
    }
}

/// [`Alignment`] applied to one subtask: snapshots of its chain, barriers
/// downstream, reports to the coordinator.
pub(super) struct Barriers<'a> {
    // config
    handle: &'a CheckpointHandle,
    task: usize,
    subtask: usize,
    // state
    alignment: Alignment<Envelope>,
    /// When the first barrier of the alignment in progress arrived.
    aligning_since: Option<std::time::Instant>,
    // resources
    reports: Sender<Report>,
}

impl<'a> Barriers<'a> {
    pub(super) fn new(
        handle: &'a CheckpointHandle,
        reports: Sender<Report>,
        task: usize,
        subtask: usize,
    ) -> Self {
        Barriers {
            handle,
            task,
            subtask,
            alignment: Alignment::new(handle.mode),
            aligning_since: None,
            reports,
        }
    }

    fn report(&self, report: Report) {
        // a coordinator that stopped (the job is ending) needs no more reports
        let _ = self.reports.send(report);
    }

    /// Sources: if the coordinator triggered a checkpoint this subtask has
    /// not injected, snapshot and send its barrier after everything emitted.
    pub(super) fn inject_due(&mut self, chain: &mut Chain, emit: &mut Emit<'_>) -> Result<()> {
        let id = self.handle.triggered();
        if self.alignment.is_due(id) {
            self.checkpoint(id, chain, emit)?;
        }
        Ok(())
    }

    fn checkpoint(
        &mut self,
        id: CheckpointId,
        chain: &mut Chain,
        emit: &mut Emit<'_>,
    ) -> Result<()> {
        let states = chain.snapshot(id)?;
        let alignment = self
            .aligning_since
            .take()
            .map_or(std::time::Duration::ZERO, |t| t.elapsed());
        self.report(Report::Ack {
            id,
            task: self.task,
            subtask: self.subtask,
            states,
            alignment,
        });
        self.alignment.on_taken(id);
        emit(Message::Barrier(id))
    }

    /// See [`Alignment::holds`].
    pub(super) fn holds(&self, channel: usize) -> bool {
        self.alignment.holds(channel)
    }

    /// See [`Alignment::hold`].
    pub(super) fn hold(&mut self, m: Envelope) {
        self.alignment.hold(m);
    }

    /// See [`Alignment::on_barrier`].
    pub(super) fn on_barrier(
        &mut self,
        id: CheckpointId,
        channel: usize,
        ended: &[bool],
    ) -> Result<()> {
        let (task, subtask) = (self.task, self.subtask);
        self.aligning_since
            .get_or_insert_with(std::time::Instant::now);
        self.alignment.on_barrier(id, channel, ended.len(), || {
            format!("subtask {subtask} of task {task}")
        })
    }

    /// Completes the alignment once every open channel delivered the
    /// barrier; returns the held messages to replay.
    pub(super) fn complete_if_aligned(
        &mut self,
        ended: &[bool],
        chain: &mut Chain,
        emit: &mut Emit<'_>,
    ) -> Result<Option<Vec<Envelope>>> {
        let Some(id) = self.alignment.aligned(ended) else {
            return Ok(None);
        };
        self.checkpoint(id, chain, emit)?;
        Ok(Some(self.alignment.take_held()))
    }

    /// The subtask ended: its final snapshot goes to the coordinator, as
    /// part of the checkpoint in flight it never saw or of the next one.
    pub(super) fn on_finished(&mut self, chain: &mut Chain) -> Result<()> {
        let from = self.alignment.final_checkpoint(self.handle.triggered());
        let states = chain.snapshot(from)?;
        self.report(Report::Finished {
            from,
            task: self.task,
            subtask: self.subtask,
            states,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> String {
        "subtask 0 of task 1".into()
    }

    /// Exactly once, two channels: channel 0 delivers B5 first and its
    /// later messages wait; channel 1's flow on; once B5 arrives on channel
    /// 1 the barrier is aligned and the held messages come back in order.
    #[test]
    fn exactly_once_holds_the_early_channel_until_aligned() {
        let mut a = Alignment::new(CheckpointMode::ExactlyOnce);
        let open = [false, false];
        assert!(a.is_due(5));
        a.on_barrier(5, 0, 2, at).unwrap();
        assert!(a.holds(0));
        assert!(!a.holds(1));
        assert_eq!(a.aligned(&open), None);
        a.hold("c0-m1");
        a.hold("c0-m2");
        a.on_barrier(5, 1, 2, at).unwrap();
        assert_eq!(a.aligned(&open), Some(5));
        a.on_taken(5);
        assert_eq!(a.take_held(), vec!["c0-m1", "c0-m2"]);
        assert!(!a.holds(0), "no channel waits after the alignment");
        assert!(a.take_held().is_empty());
        assert!(!a.is_due(5));
        assert!(a.is_due(6));
    }

    /// At least once: nothing waits, but the snapshot still comes only
    /// when every channel delivered the barrier.
    #[test]
    fn at_least_once_never_holds() {
        let mut a: Alignment<u32> = Alignment::new(CheckpointMode::AtLeastOnce);
        let open = [false, false, false];
        a.on_barrier(2, 1, 3, at).unwrap();
        assert!(!a.holds(0) && !a.holds(1) && !a.holds(2));
        a.on_barrier(2, 0, 3, at).unwrap();
        assert_eq!(a.aligned(&open), None);
        a.on_barrier(2, 2, 3, at).unwrap();
        assert_eq!(a.aligned(&open), Some(2));
    }

    /// A channel that ended counts as having delivered every barrier,
    /// including one whose alignment started before it ended.
    #[test]
    fn an_ended_channel_counts_as_delivered() {
        let mut a: Alignment<u32> = Alignment::new(CheckpointMode::ExactlyOnce);
        a.on_barrier(3, 0, 2, at).unwrap();
        assert_eq!(a.aligned(&[false, false]), None);
        assert_eq!(a.aligned(&[false, true]), Some(3));
        // every channel ended: a barrier on the last open one aligns at once
        a.on_taken(3);
        a.on_barrier(4, 1, 2, at).unwrap();
        assert_eq!(a.aligned(&[true, false]), Some(4));
    }

    /// Barriers already taken are ignored (a replayed or duplicate barrier);
    /// a second barrier while aligning another is refused with the location.
    #[test]
    fn old_barriers_are_ignored_and_overlapping_ones_refused() {
        let mut a: Alignment<u32> = Alignment::new(CheckpointMode::ExactlyOnce);
        a.on_barrier(1, 0, 2, at).unwrap();
        a.on_barrier(1, 1, 2, at).unwrap();
        assert_eq!(a.aligned(&[false, false]), Some(1));
        a.on_taken(1);
        a.on_barrier(1, 0, 2, at).unwrap();
        assert!(!a.holds(0), "a barrier already taken starts no alignment");
        assert_eq!(a.aligned(&[false, false]), None);
        a.on_barrier(2, 0, 2, at).unwrap();
        let err = a.on_barrier(3, 1, 2, at).unwrap_err().to_string();
        assert!(
            err.contains("barrier 3 arrived while aligning barrier 2")
                && err.contains("subtask 0 of task 1"),
            "{err}"
        );
    }

    /// A subtask that ends reports its final state as part of the
    /// checkpoint in flight, or the one after its last.
    #[test]
    fn the_final_snapshot_joins_the_checkpoint_in_flight_or_the_next() {
        let mut a: Alignment<u32> = Alignment::new(CheckpointMode::ExactlyOnce);
        assert_eq!(a.final_checkpoint(0), 1);
        a.on_taken(4);
        assert_eq!(a.final_checkpoint(4), 5);
        assert_eq!(a.final_checkpoint(7), 7);
    }
}
