//! The `weir` command: run job files, the demo, and benchmarks.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use weir::cli::demo::{run_demo, DemoOptions};
use weir::cli::jobfile::LoadedJob;
use weir::cli::metrics_table;
use weir::graph::PhysicalPlan;
use weir::memory::parse_size;
use weir::{ExecConfig, ExecMode, Result};

#[derive(Parser)]
#[command(name = "weir", version, about = "One dataflow graph, run pipelined or in batch stages")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job file (TOML).
    Run {
        /// The job file.
        job: PathBuf,
        /// pipelined or batch.
        #[arg(long, default_value = "pipelined")]
        mode: String,
        /// Default parallelism of every operator (default: number of cores).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Memory budget for state and buffers, e.g. 256MiB.
        #[arg(long, default_value = "512MiB")]
        memory: String,
        /// Output path (replaces the job file's sink path).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Directory for spill files (default: the system temp directory).
        #[arg(long)]
        spill_dir: Option<PathBuf>,
        /// Print the physical plan and exit.
        #[arg(long)]
        explain: bool,
        /// Print run metrics as JSON on stdout instead of a table on stderr.
        #[arg(long)]
        json: bool,
    },
    /// Generate sample vehicle data (if absent) and run the speed job in both modes.
    Demo {
        /// Where the sample data lives.
        #[arg(long, default_value = "data/obd")]
        data_dir: PathBuf,
        /// Vehicles to generate.
        #[arg(long, default_value_t = 1000)]
        vehicles: usize,
        /// Seconds of history to generate.
        #[arg(long, default_value_t = 900)]
        seconds: usize,
        /// Parallelism of both runs (default: number of cores).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Memory budget, e.g. 256MiB.
        #[arg(long, default_value = "512MiB")]
        memory: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { job, mode, parallelism, memory, output, spill_dir, explain, json } => {
            let mode: ExecMode = mode.parse()?;
            let memory = parse_size("--memory", &memory)?;
            let parallelism = parallelism.unwrap_or_else(default_parallelism);
            if parallelism == 0 {
                return Err(weir::Error::option("--parallelism", "must be at least 1"));
            }
            let loaded = LoadedJob::load(&job)?;
            let built = loaded.build(output.as_deref())?;
            if explain {
                let plan = built.plan();
                print!("{}", PhysicalPlan::try_new(&plan, parallelism)?.describe(&plan));
                return Ok(ExitCode::SUCCESS);
            }
            let mut config = ExecConfig::new(mode).with_parallelism(parallelism).with_memory(memory);
            if let Some(dir) = spill_dir {
                config = config.with_spill_dir(dir);
            }
            let metrics = built.run(&config)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&metrics).expect("metrics serialize"));
            } else {
                eprint!("{}", metrics_table(std::slice::from_ref(&metrics)));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { data_dir, vehicles, seconds, parallelism, memory } => {
            let opts = DemoOptions {
                data_dir,
                vehicles,
                seconds,
                parallelism: parallelism.unwrap_or_else(default_parallelism),
                memory: parse_size("--memory", &memory)?,
            };
            println!(
                "weir demo: per-vehicle 1 s average speed over OBD readings in {} (watermark delay 30 s)",
                opts.data_dir.display()
            );
            let report = run_demo(&opts)?;
            println!("input: {} rows, parallelism {}\n", weir::cli::thousands(report.input_rows), opts.parallelism);
            print!("{}", metrics_table(&report.runs));
            match &report.identical {
                Ok(()) => {
                    println!("\nresults identical in both modes: yes ({} rows)", weir::cli::thousands(report.output_rows[0] as u64));
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    println!("\nresults identical in both modes: NO: {why}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
