//! `weir nexmark QUERY`: generate Nexmark events (or replay them from
//! Parquet), run one query in each requested mode, and report the rows the
//! query reads per second per core (not the events generated: q3 reads
//! only persons and auctions, 4 of every 50 events). `weir bench nexmark:QUERY` runs this command once per mode and run.
//!
//! May use every layer (it is part of the CLI).

use std::path::PathBuf;
use std::time::{Duration, Instant};
use weir_connectors::replay::ReplaySpeed;
use weir_core::error::{Error, Result};
use weir_engine::checkpoint::{CheckpointConfig, RestoreFrom};
use weir_engine::exec::{ExecConfig, ExecMode, JobMetrics};
use weir_workloads::nexmark::{ensure_parquet, generate, query_stream, Input, NexmarkConfig};

/// What `weir nexmark` was asked to do.
#[derive(Debug, Clone)]
pub struct NexmarkRun {
    /// q0 to q8.
    pub query: String,
    /// Events to generate.
    pub events: u64,
    /// Modes, in order.
    pub modes: Vec<ExecMode>,
    /// Parallelism (also the number of generated splits per stream).
    pub parallelism: usize,
    /// Memory budget in bytes.
    pub memory: usize,
    /// Replay from Parquet here (written first if absent; see
    /// [`ensure_parquet`]).
    pub data: Option<PathBuf>,
    /// Write the result here (Parquet) instead of collecting it in memory.
    pub output: Option<PathBuf>,
    /// Replay the Parquet under `data` at this pace (`Max`: as fast as the job goes).
    pub speed: ReplaySpeed,
    /// Checkpoint pipelined runs under this directory, at this interval.
    pub checkpoints: Option<(PathBuf, Duration)>,
    /// Live progress on stderr.
    pub progress: bool,
}

/// One mode's run.
#[derive(Debug)]
pub struct NexmarkResult {
    /// The run's metrics.
    pub metrics: JobMetrics,
    /// Seconds spent generating (and writing) the events, shared by every mode.
    pub generation_seconds: f64,
}

impl NexmarkResult {
    /// Rows the query read (its sources' input, late rows included): a
    /// query over bids alone reads 46 of every 50 events, q3 only 4.
    pub fn rows_read(&self) -> u64 {
        self.metrics.rows_in
    }

    /// Rows the query read per second per core, excluding generation.
    pub fn per_core(&self, run: &NexmarkRun) -> f64 {
        self.rows_read() as f64
            / self.metrics.elapsed.as_secs_f64().max(1e-9)
            / run.parallelism as f64
    }

    /// Rows the query read per second per core, generation time included.
    pub fn per_core_with_generation(&self, run: &NexmarkRun) -> f64 {
        let secs = self.metrics.elapsed.as_secs_f64() + self.generation_seconds;
        self.rows_read() as f64 / secs.max(1e-9) / run.parallelism as f64
    }

    /// The run's metrics as JSON, with the Nexmark figures added.
    pub fn to_json(&self, run: &NexmarkRun) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.metrics).expect("metrics serialize");
        let secs = self.metrics.elapsed.as_secs_f64().max(1e-9);
        let extra = serde_json::json!({
            "query": run.query,
            "events": run.events,
            "rows_read": self.rows_read(),
            "parallelism": run.parallelism,
            "seconds": secs,
            "rows_read_per_second": self.rows_read() as f64 / secs,
            "rows_read_per_second_per_core": self.per_core(run),
            "generation_seconds": self.generation_seconds,
            "rows_read_per_second_per_core_with_generation": self.per_core_with_generation(run),
        });
        if let (Some(obj), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
            obj.extend(extra);
        }
        v
    }
}

impl NexmarkRun {
    /// Generates or loads the events and runs the query in every mode.
    /// `on_generated` is called once the input is ready, with its seconds.
    pub fn run(&self, mut on_generated: impl FnMut(f64)) -> Result<Vec<NexmarkResult>> {
        if self.parallelism == 0 {
            return Err(Error::option("--parallelism", "must be at least 1"));
        }
        if self.speed != ReplaySpeed::Max && self.data.is_none() {
            return Err(Error::option(
                "--speed",
                "pacing replays Parquet: give --data DIR (the events are written there first)",
            ));
        }
        let config = NexmarkConfig {
            events: self.events,
            splits: self.parallelism,
            ..NexmarkConfig::default()
        };
        let started = Instant::now();
        let generated = match &self.data {
            Some(dir) => {
                ensure_parquet(self.events, self.parallelism, dir)?;
                None
            }
            None => Some(generate(&config)),
        };
        let generation_seconds = started.elapsed().as_secs_f64();
        on_generated(generation_seconds);
        let mut results = Vec::new();
        for (i, &mode) in self.modes.iter().enumerate() {
            let input = match (&self.data, &generated) {
                (Some(dir), _) if self.speed != ReplaySpeed::Max => {
                    Input::PacedParquet(dir, self.speed)
                }
                (Some(dir), _) => Input::Parquet(dir),
                (None, Some(generated)) => Input::Memory(generated),
                (None, None) => unreachable!("events are generated without --data"),
            };
            let (job, out) = query_stream(&self.query, input, config.max_delay_ms)?;
            match &self.output {
                // several modes each get their own copy of the output
                Some(p) if self.modes.len() > 1 => out.sink_parquet(p.join(format!("{mode}")))?,
                Some(p) => out.sink_parquet(p)?,
                None => drop(out.collect()?),
            }
            let mut exec = ExecConfig::new(mode)
                .with_parallelism(self.parallelism)
                .with_memory(self.memory)
                .with_observer(super::progress::observer(self.progress));
            if let (Some((dir, interval)), ExecMode::Pipelined) = (&self.checkpoints, mode) {
                let job_name = format!("nexmark-{}-{i}", self.query);
                exec = exec.with_checkpoints(
                    // a benchmark always starts fresh, never resumes an earlier run
                    CheckpointConfig::new(dir, job_name)
                        .with_interval(*interval)
                        .with_restore(RestoreFrom::Fresh),
                );
            }
            results.push(NexmarkResult {
                metrics: job.run(&exec)?,
                generation_seconds,
            });
        }
        Ok(results)
    }
}
