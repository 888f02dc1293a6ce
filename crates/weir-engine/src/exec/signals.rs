//! What a stop request or a process signal does to a run.
//!
//! ```text
//!  watcher thread (every 10 ms while the run lasts)
//!    caller cancel()            ─► FirstError::record(Stopped): every task ends, nothing is
//!                                  published, staging and spill files go (Drop)
//!    1st SIGINT/SIGTERM ─► by kind of job:
//!        checkpointed           ─► stop_with_savepoint(): the coordinator takes one and cancels
//!        live sources           ─► stop(): they end their input, the job drains and commits
//!        otherwise              ─► cancel, as above
//!    2nd SIGINT/SIGTERM         ─► cancel (a drain or savepoint in progress is abandoned)
//! ```
//! Each step prints one line on stderr saying what happens. The CLI exits
//! with 128 + the signal's number unless the job drained.

use super::FirstError;
use crate::graph::{LogicalPlan, NodeKind, Outputs, PhysicalPlan};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weir_core::error::Error;
use weir_core::observe::{RunMessage, RunObserver};
use weir_core::operator::{signal_name, StopSignal};

/// What the first SIGINT/SIGTERM does to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnSignal {
    /// Live sources end their input; the job drains and commits.
    Drain,
    /// A savepoint, then stop without draining.
    Savepoint,
    /// Stop at once, publish nothing.
    Cancel,
}

impl OnSignal {
    /// The policy for a run of `plan`: savepoint if it is checkpointed,
    /// drain if it reads live sources (unbounded connectors, generators
    /// and other custom sources), cancel otherwise.
    pub(super) fn of(plan: &LogicalPlan, physical: &PhysicalPlan, checkpointed: bool) -> Self {
        if checkpointed {
            return OnSignal::Savepoint;
        }
        let live = plan.nodes.iter().enumerate().any(|(id, n)| {
            physical.is_live(id)
                && match &n.kind {
                    NodeKind::Source(spec) => {
                        spec.boundedness() != weir_core::operator::Boundedness::Bounded
                    }
                    _ => false,
                }
        });
        if live {
            OnSignal::Drain
        } else {
            OnSignal::Cancel
        }
    }
}

/// Watches `stop` until `done`, acting on the run through `first_error`.
pub(super) fn watch(
    stop: &StopSignal,
    policy: OnSignal,
    first_error: &FirstError,
    outputs: &Outputs,
    done: &AtomicBool,
    observer: &dyn RunObserver,
) {
    let mut acted = false;
    let not_written = || {
        let paths: Vec<String> = outputs
            .outputs
            .iter()
            .map(|o| o.path.display().to_string())
            .collect();
        if paths.is_empty() {
            "no output was published".to_string()
        } else {
            format!("nothing was written to {}", paths.join(", "))
        }
    };
    let cancel = |by: String| {
        first_error.record(Error::Stopped {
            by,
            message: format!(
                "the run was cancelled before the end of its input; {} (staging and spill \
                 files were removed)",
                not_written()
            ),
        });
    };
    while !done.load(Ordering::Acquire) && !first_error.is_cancelled() {
        if stop.is_cancelled() {
            cancel("the caller".into());
            return;
        }
        let signals = stop.process_signals();
        let name = stop.process_signal().map(signal_name).unwrap_or_default();
        if signals >= 2 || (signals == 1 && policy == OnSignal::Cancel) {
            observer.on_message(&RunMessage::Signal(format!(
                "{name}: cancelling the run; {}",
                not_written()
            )));
            cancel(name);
            return;
        }
        if signals == 1 && !acted {
            acted = true;
            match policy {
                OnSignal::Savepoint => {
                    observer.on_message(&RunMessage::Signal(format!(
                        "{name}: taking a savepoint, then stopping (send it again to cancel)"
                    )));
                    stop.stop_with_savepoint();
                }
                OnSignal::Drain => {
                    observer.on_message(&RunMessage::Signal(format!(
                        "{name}: ending the live input; the job drains and commits \
                         (send it again to cancel)"
                    )));
                    stop.stop();
                }
                OnSignal::Cancel => unreachable!("handled above"),
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
