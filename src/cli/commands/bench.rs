//! `weir bench`: run a job file, or a Nexmark query (`nexmark:q5`), in
//! several modes and compare them side by side.
//!
//! May use every layer of the library.

use super::*;

/// Arguments of `weir bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The job file, a SQL script (`.sql`), or `nexmark:Q` for Nexmark
    /// query Q (q0 to q8).
    pub job: PathBuf,
    /// Modes to run: scan (bare arrow-rs read of the input), batch, pipelined.
    #[arg(long, default_value = "scan,batch,pipelined", value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Runs per mode (the median time is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Default parallelism (default: number of cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Memory budget, e.g. 256MiB.
    #[arg(long, default_value = "512MiB")]
    pub memory: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also draw throughput and peak RSS per mode as an SVG chart.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Checkpoint the pipelined runs at this interval (e.g. 1s) and
    /// report their checkpoint figures.
    #[arg(long)]
    pub checkpoint_interval: Option<String>,
    /// Replay speed of the pipelined runs' sources: max, realtime or a
    /// factor such as 500x; the latency columns then show latency under
    /// that load (e.g. half the rate an unpaced run reached).
    #[arg(long)]
    pub speed: Option<String>,
    /// Nexmark: events to generate (written once as Parquet, then replayed by every run).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Nexmark: keep the generated events in this directory (reused when
    /// it already holds them) instead of a temporary one.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Watch the first run of each mode over HTTP (see `weir run --http`).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub http: Option<String>,
    /// Write the modes' first runs side by side as one HTML report.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// Runs `weir bench`.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let BenchArgs {
        job,
        modes,
        runs,
        parallelism,
        memory,
        json,
        plot,
        checkpoint_interval,
        speed,
        events,
        data,
        http,
        report,
    } = args;
    if let Some(a) = &http {
        weir_monitor::parse_address("--http", a)?;
    }
    parse_size("--memory", &memory)?;
    for m in &modes {
        if m != "scan" {
            m.parse::<ExecMode>()?;
        }
    }
    if let Some(i) = &checkpoint_interval {
        weir_core::time::parse_duration("--checkpoint-interval", i)?;
    }
    if let Some(s) = &speed {
        s.parse::<weir_connectors::replay::ReplaySpeed>()?;
    }
    let parallelism = parallelism.unwrap_or_else(default_parallelism);
    if parallelism == 0 {
        return Err(weir_core::error::Error::option(
            "--parallelism",
            "must be at least 1",
        ));
    }
    let exe = std::env::current_exe().map_err(|e| weir_core::error::Error::io("weir", e))?;
    // Nexmark events are written once, outside the timed runs
    let mut _scratch = None;
    let target = match job.to_str().and_then(|j| j.strip_prefix("nexmark:")) {
        Some(query) => {
            if !weir_workloads::nexmark::QUERIES.contains(&query) {
                return Err(weir_core::error::Error::option(
                    "JOB",
                    format!(
                        "unknown Nexmark query `{query}` (built: {})",
                        weir_workloads::nexmark::QUERIES.join(", ")
                    ),
                ));
            }
            let dir = match data {
                Some(d) => d,
                None => {
                    let t = tempfile::Builder::new()
                        .prefix("weir-nexmark-")
                        .tempdir()
                        .map_err(|e| weir_core::error::Error::io(std::env::temp_dir(), e))?;
                    let d = t.path().to_path_buf();
                    _scratch = Some(t);
                    d
                }
            };
            weir_workloads::nexmark::ensure_parquet(events, parallelism, &dir)?;
            crate::bench::BenchTarget::Nexmark {
                query: query.to_string(),
                events,
                data: dir,
            }
        }
        None if job.extension().is_some_and(|e| e == "sql") => {
            for (flag, given) in [
                ("--speed", speed.is_some()),
                ("--checkpoint-interval", checkpoint_interval.is_some()),
            ] {
                if given {
                    return Err(weir_core::error::Error::option(
                        flag,
                        "applies to job files; a .sql job runs unpaced and without checkpoints",
                    ));
                }
            }
            let text =
                std::fs::read_to_string(&job).map_err(|e| weir_core::error::Error::io(&job, e))?;
            let base = job
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            let script = weir_sql::Script::try_new(&text, &base)
                .map_err(|e| weir_core::error::Error::Plan(format!("{}: {e}", job.display())))?;
            let inputs = script.source_paths();
            if let Some(r) = &report {
                let mut protected = inputs.clone();
                protected.push(job.clone());
                crate::cli::watch::check_report_path(r, &protected)?;
            }
            crate::bench::BenchTarget::Sql {
                path: job.clone(),
                inputs,
            }
        }
        None => {
            let loaded = LoadedJob::load(&job)?;
            if let Some(r) = &report {
                let mut inputs = loaded.source_paths();
                inputs.push(job.clone());
                crate::cli::watch::check_report_path(r, &inputs)?;
            }
            crate::bench::BenchTarget::Job {
                path: job.clone(),
                inputs: loaded.source_paths(),
                sink_path: loaded.sink_path(),
            }
        }
    };
    let options = crate::bench::BenchOptions {
        modes,
        runs,
        parallelism,
        memory,
        checkpoint_interval,
        speed,
        http,
        report,
    };
    let results = crate::bench::bench(&exe, &target, &options)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).expect("results serialize")
        );
    } else {
        print!("{}", crate::bench::table(&results));
    }
    if let Some(path) = plot {
        let title = format!("weir bench {}", job.display());
        std::fs::write(&path, crate::bench::plot_svg(&results, &title))
            .map_err(|e| weir_core::error::Error::io(&path, e))?;
    }
    if results.iter().any(|r| r.identical == Some(false)) {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
