//! `weir sql`: run a SQL script (Flink's dialect) on the same graph as job
//! files: `weir sql FILE.sql` or `weir sql -e "…"`.
//!
//! May use every layer of the library.

use super::*;

/// Arguments of `weir sql`.
#[derive(clap::Args, Debug)]
pub struct SqlArgs {
    /// The script (statements separated by `;`). Without it, `-e` gives
    /// the text; without either, a terminal gets the interactive shell and
    /// a pipe is read as the script.
    pub file: Option<PathBuf>,
    /// The script's text, instead of a file.
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    pub execute: Option<String>,
    /// pipelined (streaming) or batch; overrides the script's
    /// `SET 'execution.runtime-mode'` (default pipelined).
    #[arg(long)]
    pub mode: Option<String>,
    /// Default parallelism; overrides `SET 'parallelism.default'` (default: cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Memory budget for state and buffers, e.g. 512MiB.
    #[arg(long, default_value = "512MiB")]
    pub memory: String,
    /// Where spill files go.
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// Write the script's one result (its only INSERT's target, or its only
    /// SELECT) here instead: Parquet, or JSON lines for .json/.jsonl.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Print the physical plan instead of running.
    #[arg(long)]
    pub explain: bool,
    /// Print the run's metrics as JSON on stdout (results of a bare SELECT
    /// go to stdout too: send those to a table to keep the JSON alone).
    #[arg(long)]
    pub json: bool,
    /// The shell: keep its history in this file (read at start, written at
    /// exit); without it the history lasts the session only.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Run the shell on standard input even when it is not a terminal.
    #[arg(long, hide = true)]
    pub shell: bool,
    /// Checkpoints: --checkpoint-dir, --checkpoint-interval, --restore, --restarts.
    #[command(flatten)]
    pub checkpoints: super::run::CheckpointArgs,
    /// Shards: --shard, --shard-from-hostname.
    #[command(flatten)]
    pub shards: super::run::ShardArgs,
    /// Watching the run: --http, --linger, --report.
    #[command(flatten)]
    pub watch: crate::cli::watch::WatchArgs,
}

/// Runs `weir sql`.
pub fn run(args: SqlArgs) -> Result<ExitCode> {
    let SqlArgs {
        file,
        execute,
        mode,
        parallelism,
        memory,
        spill_dir,
        output,
        explain,
        json,
        history,
        shell,
        checkpoints:
            super::run::CheckpointArgs {
                checkpoint_dir,
                checkpoint_interval,
                restore,
                restarts,
                savepoint_at,
            },
        shards,
        watch,
    } = args;
    let (text, base, title) = match (&file, execute) {
        (Some(f), None) => {
            let text = std::fs::read_to_string(f).map_err(|e| weir_core::error::Error::io(f, e))?;
            let base = f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            (text, base, f.display().to_string())
        }
        (None, Some(text)) => (text, PathBuf::from("."), "weir sql -e".to_string()),
        (None, None) => {
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
            if !(tty || shell) {
                // a pipe: the script
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|e| weir_core::error::Error::io("(standard input)", e))?;
                (
                    text,
                    PathBuf::from("."),
                    "weir sql (standard input)".to_string(),
                )
            } else {
                for (flag, given) in [
                    ("--output", output.is_some()),
                    ("--explain", explain),
                    ("--json", json),
                ] {
                    if given {
                        return Err(weir_core::error::Error::option(
                            flag,
                            "applies to a script (weir sql FILE); the shell prints each result",
                        ));
                    }
                }
                if history.as_deref().is_some_and(|h| h.is_dir()) {
                    return Err(weir_core::error::Error::option(
                        "--history",
                        "is a directory: name a file to keep the history in",
                    ));
                }
                let config = super::sql_shell::ShellConfig {
                    mode: mode.as_deref().map(str::parse).transpose()?,
                    parallelism,
                    memory: parse_size("--memory", &memory)?,
                    base: PathBuf::from("."),
                };
                // off a terminal (--shell) the editor reads plain lines
                let mut lines = super::sql_shell::Terminal::try_new(history)?;
                return super::sql_shell::run(&config, &mut lines);
            }
        }
        _ => {
            return Err(weir_core::error::Error::option(
                "sql",
                "give a script file (weir sql job.sql) or its text (weir sql -e \"…\")",
            ))
        }
    };
    let mut options = weir_sql::ScriptOptions::default();
    if let Some(o) = &output {
        options = options.with_output(o);
    }
    let script = weir_sql::Script::try_with(&text, &base, options).map_err(|e| match &file {
        Some(f) => weir_core::error::Error::Plan(format!("{}: {e}", f.display())),
        None => e,
    })?;
    let parallelism = parallelism
        .or(script.settings().parallelism)
        .unwrap_or_else(default_parallelism);
    if parallelism == 0 {
        return Err(weir_core::error::Error::option(
            "--parallelism",
            "must be at least 1",
        ));
    }
    for (statement, job) in script.explained() {
        let plan = job.plan();
        println!("== EXPLAIN {statement}");
        println!("-- logical plan");
        print!("{}", plan.describe());
        println!("-- physical plan");
        print!(
            "{}",
            PhysicalPlan::try_new(&plan, parallelism)?.describe(&plan)
        );
    }
    if script.queries() == 0 {
        if !script.explained().is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(weir_core::error::Error::option(
            "sql",
            "the script has no INSERT INTO or SELECT: nothing to run",
        ));
    }
    let mode: ExecMode = match mode {
        Some(m) => m.parse()?,
        None => script.settings().mode.unwrap_or(ExecMode::Pipelined),
    };
    let memory = parse_size("--memory", &memory)?;
    let job = script.job();
    if explain {
        let plan = job.plan();
        print!(
            "{}",
            PhysicalPlan::try_new(&plan, parallelism)?.describe(&plan)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let terminal = crate::cli::progress::observer(tty && !json);
    let inputs = crate::cli::watch::inputs(&job.plan(), file.as_deref());
    let watch = crate::cli::watch::Watch::try_start(&watch, None, &title, terminal, &inputs)?;
    let mut config = ExecConfig::new(mode)
        .with_parallelism(parallelism)
        .with_memory(memory)
        .with_observer(watch.observer())
        .with_stop(crate::cli::signals::follow_process_signals(
            weir_core::operator::StopSignal::new(),
        ));
    if let Some(dir) = spill_dir {
        config = config.with_spill_dir(dir);
    }
    let name = file
        .as_deref()
        .and_then(|f| f.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("sql");
    config = shards.apply(config, &super::run::topic_component(name))?;
    // checkpoints: the flags, else the script's SET options
    let settings = script.settings();
    match checkpoint_dir.or_else(|| settings.checkpoint_dir.clone()) {
        Some(dir) => {
            use weir_engine::checkpoint::{CheckpointConfig, RestartStrategy};
            // a script's checkpoints are known by its file's name
            let name = file
                .as_deref()
                .and_then(|f| f.file_stem())
                .and_then(|s| s.to_str())
                .unwrap_or("sql")
                .to_string();
            let mut checkpoints = CheckpointConfig::new(dir, name);
            let interval = match checkpoint_interval {
                Some(i) => Some(weir_core::time::parse_duration(
                    "--checkpoint-interval",
                    &i,
                )?),
                None => settings.checkpoint_interval,
            };
            if let Some(i) = interval {
                checkpoints = checkpoints.with_interval(i);
            }
            if let Some(r) = restore {
                checkpoints = checkpoints.with_restore(r.parse()?);
            }
            let restart = RestartStrategy {
                attempts: restarts.unwrap_or(0),
                ..RestartStrategy::default()
            };
            config = config.with_checkpoints(checkpoints).with_restart(restart);
        }
        None if checkpoint_interval.is_some()
            || settings.checkpoint_interval.is_some()
            || restore.is_some()
            || restarts.is_some() =>
        {
            return Err(weir_core::error::Error::option(
                "--checkpoint-dir",
                "checkpoints need a directory (--checkpoint-dir, CHECKPOINT_DIR or \
                 SET 'state.checkpoints.dir')",
            ));
        }
        None => {}
    }
    let config = super::run::CheckpointArgs::savepoint_at(savepoint_at.as_deref(), config)?;
    let metrics = watch.outcome(job.run(&config))?;
    let code = super::run::checkpoint_report(&metrics, &config);
    watch.print_and_linger(&metrics, json);
    Ok(code)
}
