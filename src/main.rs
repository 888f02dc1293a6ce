//! The `weir` command: run job files, the demo, and benchmarks.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use weir::cli::jobfile::LoadedJob;
use weir::cli::metrics_table;
use weir::graph::PhysicalPlan;
use weir::memory::parse_size;
use weir::workloads::demo::{run_demo, DemoOptions};
use weir::{ExecConfig, ExecMode, Result};

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
        /// Compression of spill files: none (default), lz4 or zstd.
        #[arg(long, default_value = "none")]
        spill_compression: String,
        /// Print the physical plan and exit.
        #[arg(long)]
        explain: bool,
        /// Print run metrics as JSON on stdout instead of a table on stderr.
        #[arg(long)]
        json: bool,
        /// Time travel: replay the main source from this event time (RFC 3339 UTC or epoch ms).
        #[arg(long)]
        from: Option<String>,
        /// Time travel: replay up to (not including) this event time.
        #[arg(long)]
        until: Option<String>,
        /// Replay speed of the main source: max, realtime or a factor such as 60x.
        #[arg(long)]
        speed: Option<String>,
        /// Take checkpoints under this directory (`CHECKPOINT_DIR`; also the
        /// job file's `[checkpoint] dir`). Pipelined runs only.
        #[arg(long, env = "CHECKPOINT_DIR")]
        checkpoint_dir: Option<PathBuf>,
        /// Time between checkpoints, e.g. 1s (default: the job file's, else 10s).
        #[arg(long)]
        checkpoint_interval: Option<String>,
        /// Start from: latest, a checkpoint id, a checkpoint or savepoint
        /// directory, or `fresh`. Default: the newest valid checkpoint of
        /// this job, if any.
        #[arg(long)]
        restore: Option<String>,
        /// Restart from the last checkpoint this many times after a failure.
        #[arg(long)]
        restarts: Option<u32>,
    },
    /// Stop a running `weir run` (by process id) and wait for it to end:
    /// a checkpointed job takes a savepoint, a live job drains and commits,
    /// any other job is cancelled (nothing is published). Again: cancel.
    Stop {
        /// The process id of the `weir run`.
        pid: i32,
        /// Take a savepoint (a checkpoint kept until deleted) and stop
        /// without draining; resume with `weir run --restore <savepoint dir>`,
        /// at any parallelism.
        #[arg(long)]
        savepoint: bool,
        /// Seconds to wait for the process to end (0: do not wait).
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Run a job file, or a Nexmark query (`nexmark:q5`), in several modes
    /// and compare them side by side.
    Bench {
        /// The job file, or `nexmark:Q` for Nexmark query Q (q0 to q8).
        job: PathBuf,
        /// Modes to run: scan (bare arrow-rs read of the input), batch, pipelined.
        #[arg(long, default_value = "scan,batch,pipelined", value_delimiter = ',')]
        modes: Vec<String>,
        /// Runs per mode (the median time is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Default parallelism (default: number of cores).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Memory budget, e.g. 256MiB.
        #[arg(long, default_value = "512MiB")]
        memory: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also draw throughput and peak RSS per mode as an SVG chart.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Checkpoint the pipelined runs at this interval (e.g. 1s) and
        /// report their checkpoint figures.
        #[arg(long)]
        checkpoint_interval: Option<String>,
        /// Nexmark: events to generate (written once as Parquet, then replayed by every run).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Nexmark: keep the generated events in this directory (reused when
        /// it already holds them) instead of a temporary one.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Read Parquet files with plain arrow-rs and print rows, time and peak RSS as JSON (bench baseline).
    #[command(hide = true)]
    Scan {
        /// Files or directories.
        paths: Vec<PathBuf>,
    },
    /// Run a Nexmark query (q0 to q8) on generated events in each mode.
    Nexmark {
        /// The query.
        query: String,
        /// Events to generate (persons : auctions : bids = 1 : 3 : 46).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Modes to run, comma-separated.
        #[arg(long, default_value = "batch,pipelined")]
        modes: String,
        /// Parallelism (default: cores).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Memory budget.
        #[arg(long, default_value = "2GiB")]
        memory: String,
        /// Print one JSON object per mode instead of a table.
        #[arg(long)]
        json: bool,
        /// Replay from Parquet in this directory (`person/`, `auction/`,
        /// `bid/`), writing the generated events there first if it is empty.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Write the result as Parquet here (a directory of part files, one
        /// per mode when several run) instead of collecting it in memory.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Checkpoint pipelined runs under this directory (each run starts fresh).
        #[arg(long, env = "CHECKPOINT_DIR")]
        checkpoint_dir: Option<PathBuf>,
        /// Time between checkpoints, e.g. 1s (default 10s).
        #[arg(long)]
        checkpoint_interval: Option<String>,
    },
    /// Write sample OBD speed readings as Parquet (vehicles × seconds × 3 rows).
    Generate {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Vehicles.
        #[arg(long, default_value_t = 1000)]
        vehicles: usize,
        /// Seconds of readings.
        #[arg(long, default_value_t = 900)]
        seconds: usize,
        /// Files to split the data into.
        #[arg(long, default_value_t = 4)]
        files: usize,
        /// `obd` (3 readings/s, up to 30 s out of order) or `app` (~1/s, up to 9 min late).
        #[arg(long, default_value = "obd")]
        kind: String,
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
            match (&e, weir::operator::last_process_signal()) {
                // stopped by a signal: the shell's convention, 128 + its number
                (weir::Error::Stopped { .. }, Some(sig)) => signal_exit(sig),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Exit status 128 + `signal`.
fn signal_exit(signal: i32) -> ExitCode {
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run {
            job,
            mode,
            parallelism,
            memory,
            output,
            spill_dir,
            spill_compression,
            explain,
            json,
            from,
            until,
            speed,
            checkpoint_dir,
            checkpoint_interval,
            restore,
            restarts,
        } => {
            let mode: ExecMode = mode.parse()?;
            let memory = parse_size("--memory", &memory)?;
            let parallelism = parallelism.unwrap_or_else(default_parallelism);
            if parallelism == 0 {
                return Err(weir::Error::option("--parallelism", "must be at least 1"));
            }
            let spill_compression: weir::spill::SpillCompression = spill_compression.parse()?;
            let mut loaded = LoadedJob::load(&job)?;
            loaded.override_replay(from, until, speed)?;
            let built = loaded.build(output.as_deref())?;
            if let Some(note) = loaded.output_note(output.as_deref()).filter(|_| !explain) {
                eprintln!("{note}");
            }
            if explain {
                let plan = built.plan();
                print!(
                    "{}",
                    PhysicalPlan::try_new(&plan, parallelism)?.describe(&plan)
                );
                return Ok(ExitCode::SUCCESS);
            }
            // live progress on a terminal only; pipes, CI and --json stay quiet
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            // Ctrl-C / SIGTERM: savepoint (checkpointed), drain (live) or cancel
            let mut config = ExecConfig::new(mode)
                .with_parallelism(parallelism)
                .with_memory(memory)
                .with_spill_compression(spill_compression)
                .with_progress(tty && !json)
                .with_stop(weir::operator::StopSignal::new().follow_process_signals());
            if let Some(dir) = spill_dir {
                config = config.with_spill_dir(dir);
            }
            if let Some((mut checkpoints, mut restart)) =
                loaded.checkpoints(checkpoint_dir.as_deref())?
            {
                if let Some(i) = checkpoint_interval {
                    checkpoints = checkpoints
                        .with_interval(weir::time::parse_duration("--checkpoint-interval", &i)?);
                }
                if let Some(r) = restore {
                    checkpoints = checkpoints.with_restore(r.parse()?);
                }
                if let Some(n) = restarts {
                    restart.attempts = n;
                }
                config = config.with_checkpoints(checkpoints).with_restart(restart);
            } else if checkpoint_interval.is_some() || restore.is_some() {
                return Err(weir::Error::option(
                    "--checkpoint-dir",
                    "checkpoints need a directory (--checkpoint-dir, CHECKPOINT_DIR or \
                     [checkpoint] dir in the job file)",
                ));
            }
            let metrics = built.run(&config)?;
            let mut code = ExitCode::SUCCESS;
            if let Some(c) = &metrics.checkpoints {
                if c.already_finished {
                    eprintln!(
                        "weir: the job had already finished at checkpoint {}; nothing to run",
                        c.restored_from.unwrap_or(0)
                    );
                }
                if let Some(dir) = &c.savepoint {
                    eprintln!("weir: stopped with savepoint {}", dir.display());
                    if let Some(sig) = config.stop.process_signal() {
                        // stopped by SIGINT/SIGTERM, not by `weir stop --savepoint`
                        eprintln!(
                            "weir: {}: resume with `--restore {}`",
                            weir::operator::signal_name(sig),
                            dir.display()
                        );
                        code = signal_exit(sig);
                    }
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&metrics).expect("metrics serialize")
                );
            } else {
                eprint!("{}", metrics_table(std::slice::from_ref(&metrics)));
            }
            Ok(code)
        }
        Command::Bench {
            job,
            modes,
            runs,
            parallelism,
            memory,
            json,
            plot,
            checkpoint_interval,
            events,
            data,
        } => {
            parse_size("--memory", &memory)?;
            for m in &modes {
                if m != "scan" {
                    m.parse::<ExecMode>()?;
                }
            }
            if let Some(i) = &checkpoint_interval {
                weir::time::parse_duration("--checkpoint-interval", i)?;
            }
            let parallelism = parallelism.unwrap_or_else(default_parallelism);
            if parallelism == 0 {
                return Err(weir::Error::option("--parallelism", "must be at least 1"));
            }
            let exe = std::env::current_exe().map_err(|e| weir::Error::io("weir", e))?;
            // Nexmark events are written once, outside the timed runs
            let mut _scratch = None;
            let target = match job.to_str().and_then(|j| j.strip_prefix("nexmark:")) {
                Some(query) => {
                    if !weir::workloads::nexmark::QUERIES.contains(&query) {
                        return Err(weir::Error::option(
                            "JOB",
                            format!(
                                "unknown Nexmark query `{query}` (built: {})",
                                weir::workloads::nexmark::QUERIES.join(", ")
                            ),
                        ));
                    }
                    let dir = match data {
                        Some(d) => d,
                        None => {
                            let t = tempfile::Builder::new()
                                .prefix("weir-nexmark-")
                                .tempdir()
                                .map_err(|e| weir::Error::io(std::env::temp_dir(), e))?;
                            let d = t.path().to_path_buf();
                            _scratch = Some(t);
                            d
                        }
                    };
                    weir::workloads::nexmark::ensure_parquet(events, parallelism, &dir)?;
                    weir::bench::BenchTarget::Nexmark {
                        query: query.to_string(),
                        events,
                        data: dir,
                    }
                }
                None => {
                    let loaded = LoadedJob::load(&job)?;
                    weir::bench::BenchTarget::Job {
                        path: job.clone(),
                        inputs: loaded.source_paths(),
                        sink_path: loaded.sink_path(),
                    }
                }
            };
            let options = weir::bench::BenchOptions {
                modes,
                runs,
                parallelism,
                memory,
                checkpoint_interval,
            };
            let results = weir::bench::bench(&exe, &target, &options)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&results).expect("results serialize")
                );
            } else {
                print!("{}", weir::bench::table(&results));
            }
            if let Some(path) = plot {
                let title = format!("weir bench {}", job.display());
                std::fs::write(&path, weir::bench::plot_svg(&results, &title))
                    .map_err(|e| weir::Error::io(&path, e))?;
            }
            if results.iter().any(|r| r.identical == Some(false)) {
                Ok(ExitCode::FAILURE)
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Stop {
            pid,
            savepoint,
            wait,
        } => {
            weir::cli::stop_process(pid, savepoint, std::time::Duration::from_secs(wait))?;
            if wait > 0 {
                eprintln!("weir: process {pid} ended");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan { paths } => {
            let started = std::time::Instant::now();
            let rows = weir::bench::bare_scan(&paths)?;
            let v = serde_json::json!({
                "rows_in": rows,
                "rows_out": 0,
                "seconds": started.elapsed().as_secs_f64(),
                "peak_rss": weir::exec::peak_rss(),
            });
            println!("{v}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Nexmark {
            query,
            events,
            modes,
            parallelism,
            memory,
            json,
            data,
            output,
            checkpoint_dir,
            checkpoint_interval,
        } => {
            let parallelism = parallelism.unwrap_or_else(default_parallelism);
            let modes = modes
                .split(',')
                .map(|m| m.trim().parse::<ExecMode>())
                .collect::<Result<Vec<_>>>()?;
            let checkpoints = match (checkpoint_dir, checkpoint_interval) {
                (Some(dir), i) => Some((
                    dir,
                    weir::time::parse_duration(
                        "--checkpoint-interval",
                        i.as_deref().unwrap_or("10s"),
                    )?,
                )),
                (None, Some(_)) => {
                    return Err(weir::Error::option(
                        "--checkpoint-dir",
                        "checkpoints need a directory (--checkpoint-dir or CHECKPOINT_DIR)",
                    ))
                }
                (None, None) => None,
            };
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let run = weir::cli::nexmark_run::NexmarkRun {
                query: query.clone(),
                events,
                modes,
                parallelism,
                memory: parse_size("--memory", &memory)?,
                data,
                output,
                checkpoints,
                progress: tty && !json,
            };
            let results = run.run(|secs| {
                if !json {
                    println!(
                        "nexmark {query}: {} events ready in {secs:.2} s, parallelism {parallelism}\n",
                        weir::cli::thousands(events),
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
                        weir::cli::thousands(r.rows_read()),
                        weir::cli::thousands(events),
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate {
            out,
            vehicles,
            seconds,
            files,
            kind,
        } => {
            let batches = match kind.as_str() {
                "obd" => weir::workloads::vehicles::generate_obd(vehicles, seconds, 42, 65_536),
                "app" => {
                    weir::workloads::vehicles::seed::generate_app(vehicles, seconds, 42, 65_536)
                }
                other => {
                    return Err(weir::Error::option(
                        "--kind",
                        format!("unknown data kind `{other}` (use obd or app)"),
                    ))
                }
            };
            weir::workloads::vehicles::write_parquet_dir(&out, &batches, files, 131_072)?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            eprintln!(
                "wrote {} rows to {}",
                weir::cli::thousands(rows as u64),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            data_dir,
            vehicles,
            seconds,
            parallelism,
            memory,
        } => {
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
            println!(
                "input: {} rows, parallelism {}\n",
                weir::cli::thousands(report.input_rows),
                opts.parallelism
            );
            print!("{}", metrics_table(&report.runs));
            let same = |r: &std::result::Result<(), String>, rows: usize| match r {
                Ok(()) => format!("yes ({} rows)", weir::cli::thousands(rows as u64)),
                Err(why) => format!("NO: {why}"),
            };
            println!(
                "\nresults identical in both modes: {}",
                same(&report.identical, report.output_rows[0])
            );
            println!(
                "\nthe seed's join: OBD 1 s averages joined with phone-app 1 s averages in {} (watermark delay 9 min)\n",
                weir::workloads::demo::app_dir(&opts.data_dir).display()
            );
            print!("{}", metrics_table(&report.join_runs));
            println!(
                "\nresults identical in both modes: {}",
                same(&report.join_identical, report.join_rows[0])
            );
            println!(
                "\nthe same join as a live replay (pipelined, both inputs paced at {:.0}x real time): {:.2} s, results identical to batch: {}",
                report.live_speed,
                report.live_run.elapsed.as_secs_f64(),
                same(&report.live_identical, report.join_rows[0])
            );
            let d = &report.deviation;
            println!(
                "\nobd - app speed over {} vehicle-seconds: mean {:+.2} km/h, mean |diff| {:.2}, p95 |diff| {:.2}",
                weir::cli::thousands(d.seconds as u64),
                d.mean,
                d.mean_abs,
                d.p95_abs
            );
            let worst: Vec<String> = d
                .worst
                .iter()
                .map(|(v, m)| format!("vehicle {v} ({m:.2} km/h)"))
                .collect();
            println!("app speed most off: {}", worst.join(", "));
            if report.identical.is_ok()
                && report.join_identical.is_ok()
                && report.live_identical.is_ok()
            {
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
