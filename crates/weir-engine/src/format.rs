//! Human-readable figures: thousands separators, rates, the per-run metrics
//! table and checkpoint summaries, shared by the CLI, `weir bench` and the
//! demo.
//!
//! May use `exec` (for [`JobMetrics`]), `checkpoint`, `memory`.

use crate::exec::JobMetrics;
use weir_core::memory::format_bytes;

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

/// `2_345_678.0` → `2.35 M` (for rows per second).
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} K", per_sec / 1e3)
    } else {
        format!("{per_sec:.0} ")
    }
}

pub use weir_core::time::format_event_time;

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
    if !c.restored_from_shards.is_empty() {
        let from: Vec<String> = c
            .restored_from_shards
            .iter()
            .map(|(i, id)| format!("{i}/{}@{id}", c.restored_from_shards.len()))
            .collect();
        s.push_str(&format!(", restored from shards {}", from.join(" ")));
    }
    if c.restarts > 0 {
        s.push_str(&format!(", {} restarts", c.restarts));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_format_as_utc() {
        assert_eq!(format_event_time(0), "1970-01-01 00:00:00.000");
        assert_eq!(
            format_event_time(1_793_491_200_123),
            "2026-11-01 00:00:00.123"
        );
        assert_eq!(format_event_time(-1), "1969-12-31 23:59:59.999");
        assert_eq!(
            format_event_time(951_782_400_000),
            "2000-02-29 00:00:00.000"
        );
        assert_eq!(format_event_time(i64::MAX), "end");
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(rate(2_345_678.0), "2.35 M");
    }
}
