//! The process's signals, for `weir run`: SIGINT (Ctrl-C) and SIGTERM ask
//! the run to stop the way its kind of job does, a third one exits at
//! once, SIGUSR1 asks for a savepoint (see `operator::StopSignal`'s table).
//!
//! Owns the handlers and the counters they write; the engine reads them
//! only through the probe [`follow_process_signals`] gives the run's
//! `StopSignal`. May use `operator` and `libc`.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use weir_core::operator::{ProcessSignals, StopSignal};

/// SIGINT / SIGTERM received since the handlers were installed.
static PROCESS_SIGNALS: AtomicU64 = AtomicU64::new(0);

/// The last of them (its number).
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Set by SIGUSR1.
static PROCESS_SAVEPOINT: AtomicBool = AtomicBool::new(false);

/// Installs the handlers (once per process) and makes `stop` follow them.
pub fn follow_process_signals(stop: StopSignal) -> StopSignal {
    install_signal_handlers();
    stop.with_process_signals(read)
}

/// What the handlers counted so far.
fn read() -> ProcessSignals {
    let count = PROCESS_SIGNALS.load(Ordering::Acquire);
    ProcessSignals {
        count,
        last: (count > 0).then(|| LAST_SIGNAL.load(Ordering::Acquire)),
        savepoint: PROCESS_SAVEPOINT.load(Ordering::Acquire),
    }
}

/// The last SIGINT/SIGTERM the process got, once the handlers are installed
/// (for the exit status, 128 + its number).
pub fn last_process_signal() -> Option<i32> {
    read().last
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
