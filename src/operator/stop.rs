//! Stopping a job: the [`StopSignal`] every part of a run may raise or
//! watch, and the process signals (SIGINT, SIGTERM, SIGUSR1) it can follow.
//!
//! May use `libc` only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// SIGINT / SIGTERM received since [`StopSignal::follow_process_signals`] ran.
static PROCESS_SIGNALS: AtomicU64 = AtomicU64::new(0);

/// The last of them (its number).
static LAST_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Set by SIGUSR1 once [`StopSignal::follow_process_signals`] ran.
static PROCESS_SAVEPOINT: AtomicBool = AtomicBool::new(false);

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
///   [`Error::Stopped`](crate::Error::Stopped).
///
/// Process signals (once [`follow_process_signals`](Self::follow_process_signals)
/// ran) are turned into one of these by the executor, by the kind of job:
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
    follows_process: bool,
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
        self.savepoint.load(Ordering::Acquire)
            || (self.follows_process && PROCESS_SAVEPOINT.load(Ordering::Acquire))
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
    /// type's table) and SIGUSR1 (savepoint). For the CLI.
    pub fn follow_process_signals(mut self) -> Self {
        install_signal_handlers();
        self.follows_process = true;
        self
    }

    /// SIGINT/SIGTERM received so far, if this signal follows them.
    pub fn process_signals(&self) -> u64 {
        if self.follows_process {
            PROCESS_SIGNALS.load(Ordering::Acquire)
        } else {
            0
        }
    }

    /// The last SIGINT/SIGTERM received, if this signal follows them and one came.
    pub fn process_signal(&self) -> Option<i32> {
        (self.process_signals() > 0).then(|| LAST_SIGNAL.load(Ordering::Acquire))
    }
}

/// The last SIGINT/SIGTERM the process got, once a [`StopSignal`] follows
/// process signals.
pub fn last_process_signal() -> Option<i32> {
    (PROCESS_SIGNALS.load(Ordering::Acquire) > 0).then(|| LAST_SIGNAL.load(Ordering::Acquire))
}

/// `SIGINT`, `SIGTERM`, or the number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

#[cfg(unix)]
fn install_signal_handlers() {
    extern "C" fn on_signal(signal: libc::c_int) {
        // only async-signal-safe calls here: atomics and _exit
        LAST_SIGNAL.store(signal, Ordering::Release);
        if PROCESS_SIGNALS.fetch_add(1, Ordering::AcqRel) >= 2 {
            // the third: the user insists; the next run removes what is left
            // SAFETY: _exit is async-signal-safe and ends the process.
            unsafe { libc::_exit(128 + signal) };
        }
    }
    extern "C" fn on_savepoint(_: libc::c_int) {
        PROCESS_SAVEPOINT.store(true, Ordering::Release);
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handlers only touch atomics and call _exit.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
            let savepoint = on_savepoint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::signal(libc::SIGUSR1, savepoint);
        }
    });
}

#[cfg(not(unix))]
fn install_signal_handlers() {}
