//! Watching a run from outside: `--http [ADDR]`, `--linger DURATION` and
//! `--report FILE` (also the job file's `[http]`), shared by `weir run`
//! and `weir bench`. Wraps the terminal's observer in a
//! [`weir_monitor::Monitor`], starts its [`weir_monitor::HttpServer`],
//! and after the run writes the report and lingers.
//!
//! May use `weir_monitor` and the CLI's progress observer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir_core::error::{Error, Result};
use weir_core::observe::RunObserver;
use weir_monitor::{HttpServer, Monitor};

/// The flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WatchArgs {
    /// Serve Prometheus metrics (/metrics), a JSON API (/api/v1/job,
    /// /api/v1/metrics) and a web UI (/) while the job runs. ADDR is PORT,
    /// IP:PORT or localhost:PORT; default 127.0.0.1:8081. Only an address
    /// written out (e.g. 0.0.0.0:8081) listens beyond this machine.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub http: Option<String>,
    /// Keep serving this long after the job ends (e.g. 30s).
    #[arg(long, value_name = "DURATION")]
    pub linger: Option<String>,
    /// Write the run's page as one self-contained HTML file when it ends.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// `weir bench`'s runs: write the run's figures as JSON here, for the
    /// bench's report of all modes.
    #[arg(long, value_name = "FILE", hide = true)]
    pub report_data: Option<PathBuf>,
}

/// A run being watched: the monitor (pass [`Watch::observer`] to the run)
/// and its server, if any.
pub struct Watch {
    monitor: Option<Arc<Monitor>>,
    /// The run's observer: the monitor, or the terminal's unwatched.
    observer: Arc<dyn RunObserver>,
    server: Option<HttpServer>,
    linger: Duration,
    report: Option<PathBuf>,
    report_data: Option<PathBuf>,
}

impl Watch {
    /// Starts watching as `args` (then the job file's `[http]`) say;
    /// `inner` is the terminal's observer. `inputs` are the job's input
    /// paths: a report never replaces one.
    pub fn try_start(
        args: &WatchArgs,
        file: Option<&crate::cli::jobfile::HttpSpec>,
        title: &str,
        inner: Arc<dyn RunObserver>,
        inputs: &[PathBuf],
    ) -> Result<Self> {
        let address = args
            .http
            .clone()
            .or_else(|| file.map(|f| f.address.clone().unwrap_or_default()));
        let linger = match (&args.linger, file.and_then(|f| f.linger.as_ref())) {
            (Some(l), _) => weir_core::time::parse_duration("--linger", l)?,
            (None, Some(l)) => weir_core::time::parse_duration("[http] linger", l)?,
            (None, None) => Duration::ZERO,
        };
        if !linger.is_zero() && address.is_none() {
            return Err(Error::option(
                "--linger",
                "lingers only with --http (or [http])",
            ));
        }
        if let Some(report) = &args.report {
            check_report_path(report, inputs)?;
        }
        if address.is_none() && args.report.is_none() && args.report_data.is_none() {
            return Ok(Watch {
                monitor: None,
                observer: inner,
                server: None,
                linger,
                report: None,
                report_data: None,
            });
        }
        let monitor = Arc::new(Monitor::new(inner).with_title(title));
        let server = match &address {
            Some(a) => {
                let server = HttpServer::try_bind(a, monitor.clone())?;
                let at = server.local_addr();
                if !at.ip().is_loopback() {
                    eprintln!(
                        "weir: warning: serving metrics on {at}, beyond this machine \
                         (anyone who can reach it can read them)"
                    );
                }
                eprintln!("weir: watching on {}", server.url());
                Some(server)
            }
            None => None,
        };
        Ok(Watch {
            observer: monitor.clone(),
            monitor: Some(monitor),
            server,
            linger,
            report: args.report.clone(),
            report_data: args.report_data.clone(),
        })
    }

    /// The observer to run with: the monitor, or the terminal's unwatched.
    pub fn observer(&self) -> Arc<dyn RunObserver> {
        self.observer.clone()
    }

    /// Where the server listens, if it does.
    pub fn address(&self) -> Option<String> {
        self.server.as_ref().map(|s| s.local_addr().to_string())
    }

    /// The monitor, if watching.
    pub fn monitor(&self) -> Option<&Arc<Monitor>> {
        self.monitor.as_ref()
    }

    /// The run ended with `result` (its metrics as JSON, or the error):
    /// shown by the server and written to the report. Then
    /// [`Watch::linger`].
    pub fn finish(&self, result: std::result::Result<serde_json::Value, String>) -> Result<()> {
        let Some(monitor) = &self.monitor else {
            return Ok(());
        };
        monitor.on_result(result);
        if let Some(path) = &self.report {
            weir_monitor::report::write(path, &[monitor.as_ref()])?;
            eprintln!("weir: report written to {}", path.display());
        }
        if let Some(path) = &self.report_data {
            let data = weir_monitor::report::run_data(monitor);
            std::fs::write(path, data.to_string()).map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }

    /// True if [`Watch::linger`] will wait.
    pub fn lingers(&self) -> bool {
        self.server.is_some() && !self.linger.is_zero()
    }

    /// Serves the finished run for the linger time (after its output was
    /// printed), then stops the server.
    pub fn linger(self) {
        self.linger_now();
    }

    fn linger_now(&self) {
        if let Some(server) = &self.server {
            if !self.linger.is_zero() {
                eprintln!(
                    "weir: the job ended; still serving {} for {:?}",
                    server.url(),
                    self.linger
                );
                std::thread::sleep(self.linger);
            }
        }
    }
}

/// The input paths of `plan`'s sources, after `extra` (the job or script
/// file): what a report must never replace.
pub fn inputs(plan: &crate::graph::LogicalPlan, extra: Option<&Path>) -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = extra.map(Path::to_path_buf).into_iter().collect();
    for node in &plan.nodes {
        if let crate::graph::NodeKind::Source(spec) = &node.kind {
            inputs.extend(spec.input_paths());
        }
    }
    inputs
}

impl Watch {
    /// The run's outcome: on failure, shown, lingered over and returned;
    /// on success, shown and the metrics returned.
    pub fn outcome(
        &self,
        result: weir_core::error::Result<weir_engine::exec::JobMetrics>,
    ) -> Result<weir_engine::exec::JobMetrics> {
        match result {
            Ok(m) => {
                self.finish(Ok(serde_json::to_value(&m).expect("metrics serialize")))?;
                Ok(m)
            }
            Err(e) => {
                self.finish(Err(e.to_string()))?;
                if self.lingers() {
                    // the error is printed when the server has gone: say it now too
                    eprintln!("weir: the job failed: {e}");
                }
                self.linger_now();
                Err(e)
            }
        }
    }

    /// Prints the metrics (JSON on stdout, with the server's address, or
    /// the table on stderr), then lingers.
    pub fn print_and_linger(self, metrics: &weir_engine::exec::JobMetrics, json: bool) {
        if json {
            let mut value = serde_json::to_value(metrics).expect("metrics serialize");
            if let (Some(a), Some(map)) = (self.address(), value.as_object_mut()) {
                map.insert("http".into(), serde_json::Value::String(a));
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("metrics serialize")
            );
        } else {
            eprint!(
                "{}",
                weir_engine::format::metrics_table(std::slice::from_ref(metrics))
            );
        }
        self.linger();
    }
}

/// A report is an output: it never replaces a directory or one of the
/// job's inputs.
pub fn check_report_path(report: &Path, inputs: &[PathBuf]) -> Result<()> {
    if report.is_dir() {
        return Err(Error::option(
            "--report",
            format!(
                "{} is a directory: give a file name such as run.html",
                report.display()
            ),
        ));
    }
    let canon = |p: &Path| p.canonicalize().ok();
    if let Some(r) = canon(report) {
        for input in inputs {
            let hit = canon(input).is_some_and(|i| r == i || r.starts_with(&i));
            if hit {
                return Err(Error::option(
                    "--report",
                    format!(
                        "{} is an input of the job ({}): a report never replaces its input",
                        report.display(),
                        input.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}
