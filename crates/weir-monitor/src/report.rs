//! `--report FILE`: the run page as one self-contained HTML file (styles,
//! script and the run's figures inlined; no server, no network), for a
//! finished run or for several side by side (`weir bench --report`).
//!
//! The file is written next to its final name and renamed into place, so
//! a reader never sees half a report and a failed write leaves no file.
//! May use `super::monitor` and `super::view`.

use crate::Monitor;
use std::io::Write;
use std::path::Path;
use weir_core::error::{Error, Result};

const INDEX: &str = include_str!("../ui/index.html");
const APP: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");

/// One run's figures for a report: `{"job": JobView, "history": History}`.
/// A process that ran the job writes this (e.g. for `weir bench`); a
/// report of several runs is [`html_of`] their data.
pub fn run_data(monitor: &Monitor) -> serde_json::Value {
    serde_json::json!({ "job": monitor.job(), "history": monitor.history() })
}

/// The page for `monitors`' runs, one section each, as HTML text.
pub fn html(monitors: &[&Monitor]) -> String {
    html_of(monitors.iter().map(|m| run_data(m)).collect())
}

/// The page for runs given as [`run_data`], one section each.
pub fn html_of(runs: Vec<serde_json::Value>) -> String {
    let report = serde_json::json!({ "created": now_utc(), "runs": runs });
    let data = serde_json::to_string(&report)
        .expect("the views are plain data")
        // inside <script>: no `</script>` can close it early
        .replace("</", "<\\/");
    INDEX
        .replace(
            "<link rel=\"stylesheet\" href=\"style.css\">",
            &format!("<style>\n{STYLE}</style>"),
        )
        .replace(
            "<script src=\"app.js\"></script>",
            &format!("<script>window.WEIR_REPORT = {data};</script>\n<script>\n{APP}</script>"),
        )
}

/// Writes [`html`] to `path` (replacing a report already there).
///
/// # Errors
///
/// `path` is a directory, or cannot be written; nothing is left behind.
pub fn write(path: &Path, monitors: &[&Monitor]) -> Result<()> {
    write_html(path, &html(monitors))
}

/// Writes `page` to `path` through a temporary file beside it.
///
/// # Errors
///
/// `path` is a directory, or cannot be written; nothing is left behind.
pub fn write_html(path: &Path, page: &str) -> Result<()> {
    if path.is_dir() {
        return Err(Error::option(
            "report",
            format!(
                "{} is a directory: give a file name such as run.html",
                path.display()
            ),
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".weir-report-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(unix)]
    {
        // as any file the user writes (tempfile makes it private)
        use std::os::unix::fs::PermissionsExt;
        let mode = 0o666 & !current_umask();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(path, e))?;
    }
    file.write_all(page.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| Error::io(path, e))?;
    file.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// The process's umask (read from `/proc`, else the usual 022).
#[cfg(unix)]
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// Now as `YYYY-MM-DD HH:MM:SS UTC`, from the system clock.
fn now_utc() -> String {
    let now = weir_core::time::format_event_time(weir_core::operator::now_ms());
    format!("{} UTC", &now[..19])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_core::observe::StderrMessages;

    #[test]
    fn the_report_inlines_everything_and_escapes_the_data() {
        let m = Monitor::new(Arc::new(StderrMessages)).with_title("a </script> job");
        let page = html(&[&m]);
        assert!(!page.contains("src=\"app.js\"") && !page.contains("href=\"style.css\""));
        assert!(page.contains("window.WEIR_REPORT = {"));
        assert!(
            page.contains("a <\\/script> job"),
            "the title cannot close the script"
        );
        assert_eq!(page.matches("</script>").count(), 2);
    }

    #[test]
    fn a_report_replaces_only_its_own_file_and_refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let m = Monitor::new(Arc::new(StderrMessages));
        let path = dir.path().join("run.html");
        write(&path, &[&m]).unwrap();
        write(&path, &[&m, &m]).unwrap();
        let page = std::fs::read_to_string(&path).unwrap();
        assert!(page.contains("\"runs\":[{"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("run.html")],
            "no temporary file left"
        );
        let e = write(dir.path(), &[&m]).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn dates_are_civil_utc() {
        let now = now_utc();
        assert!(
            now.starts_with("20") && now.ends_with(" UTC") && now.len() == 23,
            "{now}"
        );
    }
}
