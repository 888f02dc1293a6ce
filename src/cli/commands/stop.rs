//! `weir stop`: stop a running `weir run` (by process id) and wait for it to
//! end: a checkpointed job takes a savepoint, a live job drains and commits,
//! any other job is cancelled (nothing is published). Again: cancel.
//!
//! May use every layer of the library.

use super::*;

/// Arguments of `weir stop`.
#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// The process id of the `weir run`.
    pub pid: i32,
    /// Take a savepoint (a checkpoint kept until deleted) and stop
    /// without draining; resume with `weir run --restore <savepoint dir>`,
    /// at any parallelism.
    #[arg(long)]
    pub savepoint: bool,
    /// Seconds to wait for the process to end (0: do not wait).
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
}

/// Runs `weir stop`.
pub fn run(args: StopArgs) -> Result<ExitCode> {
    let StopArgs {
        pid,
        savepoint,
        wait,
    } = args;
    stop_process(pid, savepoint, std::time::Duration::from_secs(wait))?;
    if wait > 0 {
        eprintln!("weir: process {pid} ended");
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir stop PID [--savepoint]`: SIGTERM asks a `weir run` to stop the
/// way its kind of job does (a checkpointed job takes a savepoint, a live
/// job drains and commits, any other job is cancelled and publishes
/// nothing); SIGUSR1 asks a checkpointed job for a savepoint and to stop.
/// Then waits up to `wait` for the process to end (zero: not at all).
pub fn stop_process(
    pid: i32,
    savepoint: bool,
    wait: std::time::Duration,
) -> weir_core::error::Result<()> {
    if pid <= 0 {
        return Err(weir_core::error::Error::option(
            "pid",
            format!("{pid} is not a process id"),
        ));
    }
    let signal = if savepoint {
        libc::SIGUSR1
    } else {
        libc::SIGTERM
    };
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(weir_core::error::Error::option(
            "pid",
            format!(
                "cannot signal process {pid}: {}",
                std::io::Error::last_os_error()
            ),
        ));
    }
    let started = std::time::Instant::now();
    while !wait.is_zero() && process_alive(pid) {
        if started.elapsed() >= wait {
            return Err(weir_core::error::Error::option(
                "--wait",
                format!(
                    "process {pid} is still running after {wait:?}; `weir stop {pid}` again \
                     cancels it"
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// True while `pid` exists and has not exited (a zombie waiting for its
/// parent counts as ended).
fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) STATE ...": the state follows the last ')'
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}
