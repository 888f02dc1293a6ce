//! The progress line of a run on a terminal: rows (against the total when
//! known), rate, stage (batch), watermark and its lag, memory, spill, bad
//! records; messages printed above it.
//!
//! Owns [`TerminalProgress`], a [`RunObserver`]. The CLI uses it only when
//! stderr is a terminal and no JSON is asked for; pipes and CI get
//! [`weir_core::observe::StderrMessages`]. May use `observe`, `format` and
//! indicatif.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;
use weir_core::memory::format_bytes;
use weir_core::observe::{Progress, RunMessage, RunObserver};
use weir_engine::format::{format_event_time, rate};

/// Draws a run's progress on stderr.
#[derive(Debug, Default)]
pub struct TerminalProgress {
    // resources
    /// Made at the first progress report (when the total is known).
    bar: Mutex<Option<ProgressBar>>,
}

impl TerminalProgress {
    /// A progress line not drawn yet.
    pub fn new() -> Self {
        TerminalProgress::default()
    }
}

/// The observer of a CLI run: the progress line if `draw` (stderr is a
/// terminal and no JSON was asked for), else messages only.
pub fn observer(draw: bool) -> std::sync::Arc<dyn RunObserver> {
    if draw {
        std::sync::Arc::new(TerminalProgress::new())
    } else {
        std::sync::Arc::new(weir_core::observe::StderrMessages)
    }
}

/// The text after the row counts.
pub fn progress_message(p: &Progress, now_ms: i64) -> String {
    let stage = p.stage.as_ref().map_or(String::new(), |s| {
        format!(
            "stage {}/{}: {}  ",
            s.index,
            s.count,
            s.operators.join(" → ")
        )
    });
    // watermark lag behind the wall clock: shown for live input only
    // (a replay of history lags by its age, which says nothing)
    let lag = p
        .watermark
        .map(|w| now_ms.saturating_sub(w))
        .filter(|l| (0..3_600_000).contains(l))
        .map_or(String::new(), |l| {
            format!(" (lag {:.1} s)", l as f64 / 1000.0)
        });
    format!(
        "{stage}{}rows/s  watermark {}{lag}  memory {}  spilled {}{}",
        rate(p.rows_per_sec()),
        p.watermark.map_or("-".into(), format_event_time),
        format_bytes(p.memory_reserved),
        format_bytes(p.spilled_bytes),
        if p.bad_records > 0 {
            format!("  bad records {}", p.bad_records)
        } else {
            String::new()
        },
    )
}

impl RunObserver for TerminalProgress {
    fn wants_progress(&self) -> bool {
        true
    }

    fn on_progress(&self, p: &Progress) {
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(p.total_rows, ProgressDrawTarget::stderr());
            let template = if p.total_rows.is_some() {
                "{elapsed:>4} [{bar:30}] {pos}/{len} rows  {msg}"
            } else {
                "{elapsed:>4} {spinner} {pos} rows  {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        bar.set_position(p.rows_read);
        bar.set_message(progress_message(p, weir_core::operator::now_ms()));
    }

    fn on_message(&self, message: &RunMessage) {
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match bar.as_ref() {
            // above the line, which is redrawn below it
            Some(bar) => bar.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }

    fn on_finish(&self) {
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = bar.as_ref() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use weir_core::observe::Stage;

    #[test]
    fn the_message_shows_stage_rate_watermark_lag_memory_spill_and_bad_records() {
        let p = Progress {
            elapsed: Duration::from_secs(2),
            rows_read: 3_000_000,
            total_rows: Some(10_000_000),
            watermark: Some(1_793_491_200_123),
            memory_reserved: 64 << 20,
            spilled_bytes: 0,
            bad_records: 2,
            stage: Some(Stage {
                index: 1,
                count: 3,
                operators: vec!["parquet_source".into(), "window".into()],
            }),
            ..Progress::default()
        };
        let text = progress_message(&p, 1_793_491_201_623);
        assert_eq!(
            text,
            "stage 1/3: parquet_source → window  1.50 Mrows/s  watermark \
             2026-11-01 00:00:00.123 (lag 1.5 s)  memory 64.0 MiB  spilled 0 B  bad records 2"
        );
        // history hours old: no lag shown; nothing bad: no count
        let old = Progress {
            bad_records: 0,
            stage: None,
            ..p
        };
        let text = progress_message(&old, 1_793_491_200_123 + 86_400_000);
        assert!(
            !text.contains("lag") && !text.contains("bad") && !text.contains("stage"),
            "{text}"
        );
    }
}
