//! `weir run`: run a job file (TOML).
//!
//! May use every layer of the library.

use super::*;

/// Arguments of `weir run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The job file.
    pub job: PathBuf,
    /// pipelined or batch.
    #[arg(long, default_value = "pipelined")]
    pub mode: String,
    /// Default parallelism of every operator (default: number of cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Memory budget for state and buffers, e.g. 256MiB.
    #[arg(long, default_value = "512MiB")]
    pub memory: String,
    /// Output path (replaces the job file's sink path).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Directory for spill files (default: the system temp directory).
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// Compression of spill files: none (default), lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub spill_compression: String,
    /// Print the physical plan and exit.
    #[arg(long)]
    pub explain: bool,
    /// Print run metrics as JSON on stdout instead of a table on stderr.
    #[arg(long)]
    pub json: bool,
    /// Time travel: replay the main source from this event time (RFC 3339 UTC or epoch ms).
    #[arg(long)]
    pub from: Option<String>,
    /// Time travel: replay up to (not including) this event time.
    #[arg(long)]
    pub until: Option<String>,
    /// Replay speed of the main source: max, realtime or a factor such as 60x.
    #[arg(long)]
    pub speed: Option<String>,
    /// Checkpoints: --checkpoint-dir, --checkpoint-interval, --restore, --restarts.
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
    /// Shards: --shard, --shard-from-hostname.
    #[command(flatten)]
    pub shards: ShardArgs,
    /// Watching the run: --http, --linger, --report.
    #[command(flatten)]
    pub watch: crate::cli::watch::WatchArgs,
}

/// Runs `weir run`.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let RunArgs {
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
        checkpoints:
            CheckpointArgs {
                checkpoint_dir,
                checkpoint_interval,
                restore,
                restarts,
                savepoint_at,
            },
        shards,
        watch,
    } = args;
    let mode: ExecMode = mode.parse()?;
    let memory = parse_size("--memory", &memory)?;
    let parallelism = parallelism.unwrap_or_else(default_parallelism);
    if parallelism == 0 {
        return Err(weir_core::error::Error::option(
            "--parallelism",
            "must be at least 1",
        ));
    }
    let spill_compression: weir_core::spill::SpillCompression = spill_compression.parse()?;
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
    let terminal = crate::cli::progress::observer(tty && !json);
    let inputs = crate::cli::watch::inputs(&built.plan(), Some(&job));
    let title = loaded
        .spec
        .name
        .clone()
        .unwrap_or_else(|| job.display().to_string());
    let watch = crate::cli::watch::Watch::try_start(
        &watch,
        loaded.spec.http.as_ref(),
        &title,
        terminal,
        &inputs,
    )?;
    // Ctrl-C / SIGTERM: savepoint (checkpointed), drain (live) or cancel
    let mut config = ExecConfig::new(mode)
        .with_parallelism(parallelism)
        .with_memory(memory)
        .with_spill_compression(spill_compression)
        .with_observer(watch.observer())
        .with_stop(crate::cli::signals::follow_process_signals(
            weir_core::operator::StopSignal::new(),
        ));
    if let Some(dir) = spill_dir {
        config = config.with_spill_dir(dir);
    }
    config = shards.apply(config, &topic_component(&title))?;
    if let Some((mut checkpoints, mut restart)) = loaded.checkpoints(checkpoint_dir.as_deref())? {
        if let Some(i) = checkpoint_interval {
            checkpoints = checkpoints.with_interval(weir_core::time::parse_duration(
                "--checkpoint-interval",
                &i,
            )?);
        }
        if let Some(r) = restore {
            checkpoints = checkpoints.with_restore(r.parse()?);
        }
        if let Some(n) = restarts {
            restart.attempts = n;
        }
        config = config.with_checkpoints(checkpoints).with_restart(restart);
    } else if checkpoint_interval.is_some() || restore.is_some() {
        return Err(weir_core::error::Error::option(
            "--checkpoint-dir",
            "checkpoints need a directory (--checkpoint-dir, CHECKPOINT_DIR or \
             [checkpoint] dir in the job file)",
        ));
    }
    let config = CheckpointArgs::savepoint_at(savepoint_at.as_deref(), config)?;
    let metrics = watch.outcome(built.run(&config))?;
    let code = checkpoint_report(&metrics, &config);
    watch.print_and_linger(&metrics, json);
    Ok(code)
}

/// The shard flags of `weir run` and `weir sql`: run as one of several
/// processes that divide the job (see README "Running on several machines").
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ShardArgs {
    /// Run as shard I of N processes, e.g. 0/3 (`WEIR_SHARD`): this
    /// process reads its share of the input and writes its own parts of
    /// the output directory.
    #[arg(long, env = "WEIR_SHARD", value_name = "I/N")]
    pub shard: Option<String>,
    /// Run as one of N shards, taking I from the host name's ordinal (a
    /// StatefulSet pod `weir-2` is shard 2; `HOSTNAME`, else the kernel's).
    #[arg(long, value_name = "N")]
    pub shard_from_hostname: Option<usize>,
    /// Shards: the Kafka brokers whose topics carry rows re-keyed between
    /// shards (`WEIR_REPARTITION_BROKERS`); without it a job that re-keys
    /// is refused.
    #[arg(long, env = "WEIR_REPARTITION_BROKERS", value_name = "HOST:PORT,…")]
    pub repartition_brokers: Option<String>,
    /// Shards: the run's name in its repartition topics (`WEIR_RUN_ID`):
    /// the same for all shards of a run and its restores, new for a new run.
    #[arg(long, env = "WEIR_RUN_ID")]
    pub run_id: Option<String>,
}

impl ShardArgs {
    /// The shard these flags name, if any.
    pub fn resolve(&self) -> Result<Option<weir_core::shard::Shard>> {
        use weir_core::shard::Shard;
        match (&self.shard, self.shard_from_hostname) {
            (Some(_), Some(_)) => Err(weir_core::error::Error::option(
                "--shard-from-hostname",
                "give either it or --shard (WEIR_SHARD), not both",
            )),
            (Some(s), None) => Shard::parse(s).map(Some),
            (None, Some(n)) => {
                let host = match std::env::var("HOSTNAME") {
                    Ok(h) if !h.trim().is_empty() => h,
                    _ => std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map_err(|e| weir_core::error::Error::io("/proc/sys/kernel/hostname", e))?,
                };
                Shard::from_hostname(&host, n).map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    /// `config` running as the shard these flags name, if any, re-keying
    /// through topics named after `job`.
    pub fn apply(&self, config: ExecConfig, job: &str) -> Result<ExecConfig> {
        use weir_core::error::Error;
        let Some(shard) = self.resolve()? else {
            if self.repartition_brokers.is_some() {
                return Err(Error::option(
                    "--repartition-brokers",
                    "carries rows between shards: give --shard or --shard-from-hostname too",
                ));
            }
            return Ok(config);
        };
        let config = config.with_shard(shard);
        let Some(brokers) = &self.repartition_brokers else {
            return Ok(config);
        };
        let run = self.run_id.as_deref().ok_or_else(|| {
            Error::option(
                "--run-id",
                "names this run's repartition topics (WEIR_RUN_ID): give every shard of the \
                 run the same one, and a new run a new one",
            )
        })?;
        #[cfg(feature = "kafka")]
        {
            let brokers = brokers.split(',').map(|b| b.trim().to_string());
            let repartition = weir_connectors::kafka::KafkaRepartition::try_new(brokers, job, run)?;
            Ok(config.with_repartition(std::sync::Arc::new(repartition)))
        }
        #[cfg(not(feature = "kafka"))]
        {
            let _ = (brokers, job, run);
            Err(Error::option(
                "--repartition-brokers",
                "this weir was built without Kafka (cargo feature `kafka`)",
            ))
        }
    }
}

/// A job's name as a topic name component: letters, digits, - and _.
pub(crate) fn topic_component(name: &str) -> String {
    let stem = std::path::Path::new(name)
        .file_stem()
        .map_or(name.to_string(), |s| s.to_string_lossy().into_owned());
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

/// The checkpoint flags of `weir run` and `weir sql`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CheckpointArgs {
    /// Take checkpoints under this directory (`CHECKPOINT_DIR`; also a job
    /// file's `[checkpoint] dir`, a script's `SET 'state.checkpoints.dir'`).
    /// Pipelined runs only.
    #[arg(long, env = "CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Time between checkpoints, e.g. 1s (default: the job file's or the
    /// script's, else 10s).
    #[arg(long)]
    pub checkpoint_interval: Option<String>,
    /// Start from: latest, a checkpoint id, a checkpoint or savepoint
    /// directory, `fresh`, or `shards:N` (with --shard I/M: this shard's
    /// own newest checkpoint, else the newest of each of the N shards of an
    /// earlier run at another count). Default: the newest valid checkpoint
    /// of this job, if any.
    #[arg(long)]
    pub restore: Option<String>,
    /// Restart from the last checkpoint this many times after a failure.
    #[arg(long)]
    pub restarts: Option<u32>,
    /// Take a savepoint and stop where every source's event-time watermark
    /// reaches this time (RFC 3339 UTC or epoch ms): the same rows in every
    /// run of the same input, so shards stopped this way restore together
    /// at another shard count (`--restore shards:N`).
    #[arg(long)]
    pub savepoint_at: Option<String>,
}

impl CheckpointArgs {
    /// `config` with `--savepoint-at` (checked by the engine: it needs a
    /// checkpointed pipelined run).
    pub(crate) fn savepoint_at(at: Option<&str>, config: ExecConfig) -> Result<ExecConfig> {
        Ok(match at {
            Some(t) => {
                config.with_savepoint_at(weir_connectors::replay::parse_time("--savepoint-at", t)?)
            }
            None => config,
        })
    }
}

/// Says on stderr what a checkpointed run's end means (it had finished
/// already; it stopped with a savepoint, and how to resume), and the exit
/// code: a signal's when SIGINT/SIGTERM stopped it.
pub(crate) fn checkpoint_report(
    metrics: &weir_engine::exec::JobMetrics,
    config: &ExecConfig,
) -> ExitCode {
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
                    weir_core::operator::signal_name(sig),
                    dir.display()
                );
                code = signal_exit(sig);
            }
        }
    }
    code
}
