//! `weir nexmark`: run a Nexmark query (q0 to q8) on generated events in each
//! mode.
//!
//! May use every layer of the library.

use super::*;

/// Arguments of `weir nexmark`.
#[derive(clap::Args, Debug)]
pub struct NexmarkArgs {
    /// The query.
    pub query: String,
    /// Events to generate (persons : auctions : bids = 1 : 3 : 46).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Modes to run, comma-separated.
    #[arg(long, default_value = "batch,pipelined")]
    pub modes: String,
    /// Parallelism (default: cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Memory budget.
    #[arg(long, default_value = "2GiB")]
    pub memory: String,
    /// Print one JSON object per mode instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Replay from Parquet in this directory (`person/`, `auction/`,
    /// `bid/`), writing the generated events there first if it is empty.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Write the result as Parquet here (a directory of part files, one
    /// per mode when several run) instead of collecting it in memory.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Replay speed of the events (needs --data): max, realtime or a
    /// factor such as 500x (events carry 10,000 per second of event time).
    #[arg(long, default_value = "max")]
    pub speed: String,
    /// Checkpoint pipelined runs under this directory (each run starts fresh).
    #[arg(long, env = "CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Time between checkpoints, e.g. 1s (default 10s).
    #[arg(long)]
    pub checkpoint_interval: Option<String>,
}

/// Runs `weir nexmark`.
pub fn run(args: NexmarkArgs) -> Result<ExitCode> {
    let NexmarkArgs {
        query,
        events,
        modes,
        parallelism,
        memory,
        json,
        data,
        output,
        speed,
        checkpoint_dir,
        checkpoint_interval,
    } = args;
    let parallelism = parallelism.unwrap_or_else(default_parallelism);
    let modes = modes
        .split(',')
        .map(|m| m.trim().parse::<ExecMode>())
        .collect::<Result<Vec<_>>>()?;
    let checkpoints = match (checkpoint_dir, checkpoint_interval) {
        (Some(dir), i) => Some((
            dir,
            weir_core::time::parse_duration(
                "--checkpoint-interval",
                i.as_deref().unwrap_or("10s"),
            )?,
        )),
        (None, Some(_)) => {
            return Err(weir_core::error::Error::option(
                "--checkpoint-dir",
                "checkpoints need a directory (--checkpoint-dir or CHECKPOINT_DIR)",
            ))
        }
        (None, None) => None,
    };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let run = crate::cli::nexmark_run::NexmarkRun {
        query: query.clone(),
        events,
        modes,
        parallelism,
        memory: parse_size("--memory", &memory)?,
        data,
        output,
        speed: speed.parse()?,
        checkpoints,
        progress: tty && !json,
    };
    let results = run.run(|secs| {
        if !json {
            println!(
                "nexmark {query}: {} events ready in {secs:.2} s, parallelism {parallelism}\n",
                weir_engine::format::thousands(events),
            );
        }
    })?;
    if json {
        for r in &results {
            println!("{}", r.to_json(&run));
        }
    } else {
        let metrics: Vec<_> = results.iter().map(|r| r.metrics.clone()).collect();
        print!("{}", metrics_table(&metrics));
        for r in &results {
            println!(
                "{:<10} {:>10.0} K rows read/s per core ({:.0} K with generation; {} of {} events read)",
                r.metrics.mode.to_string(),
                r.per_core(&run) / 1000.0,
                r.per_core_with_generation(&run) / 1000.0,
                weir_engine::format::thousands(r.rows_read()),
                weir_engine::format::thousands(events),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
