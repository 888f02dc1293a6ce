//! Stopping a job: the [`StopSignal`] every part of a run may raise or
//! watch, and what it knows of the process's signals ([`ProcessSignals`],
//! read through a probe the CLI gives it: the engine installs no handler).
//!
//! May use `libc` (signal numbers) only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The process's stop requests so far, as its signal handlers counted them
/// (the CLI's `cli/signals.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessSignals {
    /// SIGINT / SIGTERM received.
    pub count: u64,
    /// The last of them (its number), if any.
    pub last: Option<i32>,
    /// SIGUSR1 received: take a savepoint and stop.
    pub savepoint: bool,
}

/// A request to stop a job, shared by everything that may ask (the
/// caller, a test, or the process's Ctrl-C / SIGTERM handler).
///
/// - [`stop`](Self::stop): live sources report their input as finished,
///   so the job drains like a bounded one (windows fire, sinks commit):
///   Flink's `stop --drain`. Bounded sources ignore it.
/// - [`stop_with_savepoint`](Self::stop_with_savepoint): a checkpointed
///   job takes a savepoint and stops without draining.
/// - [`cancel`](Self::cancel): the job stops as soon as it can, publishes
///   nothing, removes its staging and spill files and fails with
///   [`Error::Stopped`](crate::error::Error::Stopped).
///
/// Process signals (with [`with_process_signals`](Self::with_process_signals))
/// are turned into one of these by the executor, by the kind of job:
///
/// ```text
///  first SIGINT/SIGTERM:  checkpointed ─► savepoint, then stop (exit 128 + signal)
///                         live sources ─► drain and commit (exit 0)
///                         otherwise    ─► cancel (exit 128 + signal)
///  second:                cancel (a drain or savepoint in progress is abandoned)
///  third:                 exit at once; the next run removes what was left
///  SIGUSR1 (`weir stop --savepoint`): savepoint, then stop (exit 0)
/// ```
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    savepoint: Arc<AtomicBool>,
    cancelled: Arc<AtomicBool>,
    /// Reads the process's signal counters, if this signal follows them.
    process: Option<fn() -> ProcessSignals>,
}

impl StopSignal {
    /// A signal nobody has raised yet.
    pub fn new() -> Self {
        StopSignal::default()
    }

    /// Asks the job to stop: live sources end their input, the job drains.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// True once [`stop`](Self::stop) was called (the executor calls it
    /// for a process signal when the job drains).
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Asks a checkpointed job to take a savepoint and stop without
    /// draining (Flink's stop-with-savepoint); resume it from that savepoint.
    /// A job without checkpoints ignores it.
    pub fn stop_with_savepoint(&self) {
        self.savepoint.store(true, Ordering::Release);
    }

    /// True once a savepoint was asked for (or the process got SIGUSR1, if
    /// this signal follows process signals).
    pub fn savepoint_requested(&self) -> bool {
        self.savepoint.load(Ordering::Acquire) || self.process.is_some_and(|p| p().savepoint)
    }

    /// Cancels the job: it stops as soon as it can and publishes nothing.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Also follows the process's SIGINT (Ctrl-C) and SIGTERM (see the
    /// type's table) and SIGUSR1 (savepoint), as `probe` reads them; the
    /// CLI installs the handlers and gives the probe.
    pub fn with_process_signals(mut self, probe: fn() -> ProcessSignals) -> Self {
        self.process = Some(probe);
        self
    }

    /// SIGINT/SIGTERM received so far, if this signal follows them.
    pub fn process_signals(&self) -> u64 {
        self.process.map_or(0, |p| p().count)
    }

    /// The last SIGINT/SIGTERM received, if this signal follows them and one came.
    pub fn process_signal(&self) -> Option<i32> {
        self.process.and_then(|p| {
            let s = p();
            s.last.filter(|_| s.count > 0)
        })
    }
}

/// `SIGINT`, `SIGTERM`, or the number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_terms_and_a_usr1() -> ProcessSignals {
        ProcessSignals {
            count: 2,
            last: Some(libc::SIGTERM),
            savepoint: true,
        }
    }

    #[test]
    fn process_signals_count_only_when_followed() {
        let plain = StopSignal::new();
        assert_eq!((plain.process_signals(), plain.process_signal()), (0, None));
        assert!(!plain.savepoint_requested());
        let following = StopSignal::new().with_process_signals(two_terms_and_a_usr1);
        assert_eq!(following.process_signals(), 2);
        assert_eq!(following.process_signal(), Some(libc::SIGTERM));
        assert!(following.savepoint_requested());
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(10), "signal 10");
    }
}
