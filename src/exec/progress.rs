//! Live progress of a running job on a terminal: rows, rate, watermark, memory, spill.
//!
//! Reads the same atomic counters the final [`super::JobMetrics`] come from,
//! every 200 ms, from its own thread. Only used when stderr is a terminal;
//! pipes and CI stay quiet.

use crate::graph::{LogicalPlan, NodeKind, PhysicalPlan};
use crate::memory::format_bytes;
use crate::operator::{OperatorMetrics, RuntimeEnv};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Draws progress until `done` is set. The bar counts the rows the sources
/// read against `total_rows` (Parquet: the row groups left after time-range
/// pruning, counted as decoded); in batch mode `stages` gives the plan and
/// the running stage (from 1), shown as `stage i/n: operators`.
pub(crate) fn report(
    plan: &LogicalPlan,
    env: &RuntimeEnv,
    metrics: &[Arc<OperatorMetrics>],
    total_rows: Option<u64>,
    done: &AtomicBool,
    stages: Option<(&PhysicalPlan, &AtomicUsize)>,
) {
    let bar = match total_rows {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if total_rows.is_some() {
        "{elapsed:>4} [{bar:30}] {pos}/{len} rows  {msg}"
    } else {
        "{elapsed:>4} {spinner} {pos} rows  {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let sources: Vec<usize> = (0..plan.nodes.len())
        .filter(|&i| plan.nodes[i].kind.is_source())
        .collect();
    let sinks: Vec<usize> = (0..plan.nodes.len())
        .filter(|&i| matches!(plan.nodes[i].kind, NodeKind::Sink(_)))
        .collect();
    let started = Instant::now();
    while !done.load(Ordering::Acquire) {
        let read: u64 = sources
            .iter()
            .map(|&i| match &plan.nodes[i].kind {
                // e.g. Parquet: rows decoded, those outside a --from/--until range included
                NodeKind::Source(spec) if spec.rows_read().is_some() => {
                    spec.rows_read().unwrap_or_default()
                }
                _ => {
                    metrics[i].rows_out.load(Ordering::Relaxed)
                        + metrics[i].late_rows.load(Ordering::Relaxed)
                }
            })
            .sum();
        let wm = sinks
            .iter()
            .map(|&i| metrics[i].watermark.load(Ordering::Relaxed))
            .max()
            .filter(|&w| w > i64::MIN);
        let rate = read as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let bad: u64 = sources
            .iter()
            .map(|&i| metrics[i].bad_records.load(Ordering::Relaxed))
            .sum();
        // watermark lag behind the wall clock: shown for live input only
        // (a replay of history lags by its age, which says nothing)
        let lag = wm
            .map(|w| crate::operator::now_ms().saturating_sub(w))
            .filter(|l| (0..3_600_000).contains(l))
            .map_or(String::new(), |l| {
                format!(" (lag {:.1} s)", l as f64 / 1000.0)
            });
        let stage = stages
            .map(|(physical, running)| {
                let n = physical.tasks.len();
                let i = running.load(Ordering::Relaxed).clamp(1, n.max(1));
                let names: Vec<&str> = physical.tasks[i - 1]
                    .nodes
                    .iter()
                    .map(|&id| plan.nodes[id].name.as_str())
                    .collect();
                format!("stage {i}/{n}: {}  ", names.join(" → "))
            })
            .unwrap_or_default();
        bar.set_position(read);
        bar.set_message(format!(
            "{stage}{}rows/s  watermark {}{lag}  memory {}  spilled {}{}",
            format_rate(rate),
            wm.map_or("-".into(), format_event_time),
            format_bytes(env.pool.reserved() as u64),
            format_bytes(env.spill.metrics().bytes()),
            if bad > 0 {
                format!("  bad records {bad}")
            } else {
                String::new()
            },
        ));
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish_and_clear();
}

/// `2_345_678.0` → `2.35 M` (for rows per second).
pub fn format_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} K", per_sec / 1e3)
    } else {
        format!("{per_sec:.0} ")
    }
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
pub fn format_event_time(ms: i64) -> String {
    if ms == i64::MAX {
        return "end".into();
    }
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
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
    }
}
