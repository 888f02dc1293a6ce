//! The `weir` command: run job files, the demo, and benchmarks.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use weir::cli::commands;
use weir::Result;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "One dataflow graph, run pipelined or in batch stages"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job file (TOML).
    Run(commands::run::RunArgs),
    /// Run a SQL script (Flink's dialect): `weir sql job.sql` or `weir sql -e "…"`.
    Sql(commands::sql::SqlArgs),
    /// Stop a running `weir run` (by process id) and wait for it to end:
    /// a checkpointed job takes a savepoint, a live job drains and commits,
    /// any other job is cancelled (nothing is published). Again: cancel.
    Stop(commands::stop::StopArgs),
    /// Say whether an output directory is complete: which shards committed
    /// their parts (exit code 1 if one is missing).
    Status(commands::status::StatusArgs),
    /// Run a job file, or a Nexmark query (`nexmark:q5`), in several modes
    /// and compare them side by side.
    Bench(commands::bench::BenchArgs),
    /// Read Parquet files with plain arrow-rs and print rows, time and peak RSS as JSON (bench baseline).
    #[command(hide = true)]
    Scan(commands::scan::ScanArgs),
    /// Run a Nexmark query (q0 to q8) on generated events in each mode.
    Nexmark(commands::nexmark::NexmarkArgs),
    /// Write sample OBD speed readings as Parquet (vehicles × seconds × 3 rows).
    Generate(commands::generate::GenerateArgs),
    /// Generate sample vehicle data (if absent) and run the speed job in both modes.
    Demo(commands::demo::DemoArgs),
}

/// Caps glibc's malloc arenas at the number of cores (glibc's default is 8
/// per core), before any thread starts. Every operator thread otherwise
/// gets an arena of its own, and memory freed in one (batches handed to
/// another thread) stays in it: on the OBD/app join at `--memory 64MiB`
/// that was about 90 MiB of the process's anonymous memory outside the
/// budget. A `MALLOC_ARENA_MAX` set by the user wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; it is called
        // before this process starts any thread
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Every variant's message already includes its cause.
            eprintln!("error: {e}");
            match (&e, weir::cli::signals::last_process_signal()) {
                // stopped by a signal: the shell's convention, 128 + its number
                (weir::Error::Stopped { .. }, Some(sig)) => commands::signal_exit(sig),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Sql(args) => commands::sql::run(args),
        Command::Stop(args) => commands::stop::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Scan(args) => commands::scan::run(args),
        Command::Nexmark(args) => commands::nexmark::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Demo(args) => commands::demo::run(args),
    }
}
