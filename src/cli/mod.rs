//! The command-line layer: job files, the demo, and human-readable reports.
//!
//! `main.rs` parses arguments and calls into here. May use every layer.

pub mod bench;
pub mod demo;
pub mod generators;
pub mod jobfile;
pub mod nexmark;
pub mod nexmark_closed;
pub mod nexmark_run;
pub mod seed;
pub mod sources;

use crate::exec::JobMetrics;
use crate::memory::format_bytes;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub use crate::exec::progress::format_rate as rate;

/// A table with one row per run: mode, rows, late rows, time, rate, memory, spill.
pub fn metrics_table(runs: &[JobMetrics]) -> String {
    let header = [
        "mode",
        "rows in",
        "rows out",
        "late",
        "bad",
        "time",
        "rows/s",
        "peak memory",
        "spilled",
    ];
    let rows: Vec<[String; 9]> = runs
        .iter()
        .map(|m| {
            [
                m.mode.to_string(),
                thousands(m.rows_in),
                thousands(m.rows_out),
                thousands(m.late_rows),
                thousands(m.bad_records),
                format!("{:.2} s", m.elapsed.as_secs_f64()),
                rate(m.rows_per_sec()),
                format_bytes(m.peak_memory),
                format!(
                    "{} ({} files)",
                    format_bytes(m.spilled_bytes),
                    m.spill_files
                ),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r.iter().map(|s| s.as_str()).collect()));
        out.push('\n');
    }
    for m in runs {
        if let Some(c) = &m.checkpoints {
            out.push_str(&format!("{}: {}\n", m.mode, checkpoint_summary(c)));
        }
    }
    out
}

/// What checkpointing did, in a few words: count, median and longest
/// duration (ms), largest size.
pub fn checkpoint_figures(completed: u64, median_ms: f64, max_ms: f64, max_bytes: u64) -> String {
    format!(
        "{completed} checkpoints, {median_ms:.0} ms median, {max_ms:.0} ms max, largest {}",
        format_bytes(max_bytes)
    )
}

/// One line on what checkpointing did: [`checkpoint_figures`], where the
/// run was restored from, restarts.
pub fn checkpoint_summary(c: &crate::checkpoint::CheckpointStats) -> String {
    let mut s = checkpoint_figures(
        c.completed,
        c.median_duration_ms,
        c.max_duration_ms,
        c.max_bytes,
    );
    if let Some(id) = c.restored_from {
        s.push_str(&format!(", restored from {id}"));
    }
    if c.restarts > 0 {
        s.push_str(&format!(", {} restarts", c.restarts));
    }
    s
}

/// `weir stop PID [--savepoint]`: SIGTERM asks a `weir run` to stop the
/// way its kind of job does (a checkpointed job takes a savepoint, a live
/// job drains and commits, any other job is cancelled and publishes
/// nothing); SIGUSR1 asks a checkpointed job for a savepoint and to stop.
/// Then waits up to `wait` for the process to end (zero: not at all).
pub fn stop_process(pid: i32, savepoint: bool, wait: std::time::Duration) -> crate::Result<()> {
    if pid <= 0 {
        return Err(crate::Error::option(
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
        return Err(crate::Error::option(
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
            return Err(crate::Error::option(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(rate(2_345_678.0), "2.35 M");
    }
}
