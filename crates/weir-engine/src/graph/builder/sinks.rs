//! Where a stream's rows go: file sinks, brokers, stdout, collection.

use super::*;
use weir_connectors::files::{PartitionSpec, RollingPolicy};

impl Stream {
    fn sink(&self, name: &str, op: OperatorFactory, max_parallelism: Option<usize>) -> NodeId {
        let s = self.then(name, NodeKind::Sink(op), self.schema.clone());
        self.job.plan.borrow_mut().nodes[s.node].max_parallelism = max_parallelism;
        s.node
    }

    /// Writes Parquet: one file if `path` ends in `.parquet`, else a
    /// directory of part files. Published only when the job succeeds.
    pub fn sink_parquet(&self, path: impl Into<PathBuf>) -> Result<()> {
        self.sink_file(path.into(), FileFormat::Parquet)
    }

    /// Writes JSON lines: one file if `path` ends in `.jsonl`/`.json`, else a
    /// directory of part files. Published only when the job succeeds.
    pub fn sink_json(&self, path: impl Into<PathBuf>) -> Result<()> {
        self.sink_file(path.into(), FileFormat::JsonLines)
    }

    /// Writes CSV with a header line: one file if `path` ends in `.csv`,
    /// else a directory of part files (each with its header). Nulls are
    /// empty fields; nested columns (lists, structs, maps) are refused.
    /// Published only when the job succeeds.
    pub fn sink_csv(&self, path: impl Into<PathBuf>) -> Result<()> {
        self.check_csv()?;
        self.sink_file(path.into(), FileFormat::Csv)
    }

    /// Writes `format` into the directory `path`, one `k=v/…` directory per
    /// partition of `partitioning` (Hive layout: the files omit the
    /// partition columns), with `_SUCCESS` files when `partitioning`
    /// commits partitions. Published when the job succeeds, or checkpoint
    /// by checkpoint in a checkpointed job.
    pub fn sink_partitioned(
        &self,
        path: impl Into<PathBuf>,
        format: FileFormat,
        partitioning: PartitionSpec,
    ) -> Result<()> {
        if format == FileFormat::Csv {
            self.check_csv()?;
        }
        self.sink_file_as(path.into(), format, Some(partitioning))
    }

    /// Writes `format` into `path` as the other file sinks do, partitioned
    /// by `partitioning` if given, its parts closed and the next ones
    /// started as `rolling` says (a directory target: each subtask's K-th
    /// part of a run, or of a checkpoint, is `part-…-rKKKKK.EXT`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    /// use weir::connectors::files::{FileFormat, RollingPolicy};
    /// use weir::{ExecConfig, Job};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let x: ArrayRef = Arc::new(Int64Array::from_iter_values(0..10_000));
    /// let batches: Vec<RecordBatch> = (0..10)
    ///     .map(|i| RecordBatch::try_from_iter([("x", x.slice(i * 1000, 1000))]))
    ///     .collect::<Result<_, _>>()?;
    /// let job = Job::new();
    /// job.from_batches(batches[0].schema(), vec![batches])?.sink_files(
    ///     dir.path().join("out"),
    ///     FileFormat::Csv,
    ///     None,
    ///     RollingPolicy::default().with_file_size(4096)?,
    /// )?;
    /// job.run(&ExecConfig::batch())?;
    /// let parts = std::fs::read_dir(dir.path().join("out"))?
    ///     .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("part-")))
    ///     .count();
    /// assert!(parts > 1, "{parts} parts");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sink_files(
        &self,
        path: impl Into<PathBuf>,
        format: FileFormat,
        partitioning: Option<PartitionSpec>,
        rolling: RollingPolicy,
    ) -> Result<()> {
        if format == FileFormat::Csv {
            self.check_csv()?;
        }
        self.sink_file_with(path.into(), format, partitioning, rolling)
    }

    fn check_csv(&self) -> Result<()> {
        for f in self.schema.fields() {
            if f.data_type().is_nested() {
                return Err(Error::column(
                    f.name(),
                    "csv sink",
                    format!(
                        "a {} column has no CSV form: project it out or to text",
                        f.data_type()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn sink_file(&self, path: PathBuf, format: FileFormat) -> Result<()> {
        self.sink_file_as(path, format, None)
    }

    fn sink_file_as(
        &self,
        path: PathBuf,
        format: FileFormat,
        partitioning: Option<PartitionSpec>,
    ) -> Result<()> {
        self.sink_file_with(path, format, partitioning, RollingPolicy::default())
    }

    fn sink_file_with(
        &self,
        path: PathBuf,
        format: FileFormat,
        partitioning: Option<PartitionSpec>,
        rolling: RollingPolicy,
    ) -> Result<()> {
        if path.as_os_str().is_empty() {
            return Err(Error::option("sink.path", "is empty"));
        }
        if path.is_dir() && FileFormat::from_path(&path).is_some() {
            return Err(Error::option(
                "sink.path",
                format!("{} is a directory but names a file", path.display()),
            ));
        }
        match FileFormat::named_by(&path) {
            Err(message) => return Err(Error::option("sink.path", message)),
            Ok(Some(named)) if named != format => {
                return Err(Error::option(
                    "sink.path",
                    format!(
                        "{} names a {} file, but the sink writes {}",
                        path.display(),
                        named.name(),
                        format.name()
                    ),
                ))
            }
            Ok(_) => {}
        }
        let name = format!("{}_sink", format.extension());
        self.job.plan.borrow().check_new_output(&name, &path)?;
        let spec = match partitioning {
            None => FileSinkSpec::new(path.clone(), format, self.schema.clone()),
            Some(p) => {
                FileSinkSpec::try_new_partitioned(path.clone(), format, self.schema.clone(), p)?
            }
        }
        .try_with_rolling(rolling)?;
        spec.check_target()?;
        let single = spec.is_single_file();
        let fac: OperatorFactory =
            Arc::new(move |info: &TaskInfo| Ok(Box::new(spec.create(info)) as Box<dyn Operator>));
        let id = self.sink(&name, fac, single.then_some(1));
        self.job.plan.borrow_mut().nodes[id].writes = Some(path);
        Ok(())
    }

    /// Produces every row to a Kafka topic as one JSON object per record
    /// (at-least-once; see [`KafkaSinkSpec`]). Checks the key and timestamp
    /// columns and that the topic exists now.
    #[cfg(feature = "kafka")]
    pub fn sink_kafka(&self, spec: KafkaSinkSpec) -> Result<()> {
        let sink = spec.prepare(&self.schema)?;
        let fac: OperatorFactory =
            Arc::new(move |info: &TaskInfo| Ok(Box::new(sink.create(info)?) as Box<dyn Operator>));
        self.sink("kafka_sink", fac, None);
        Ok(())
    }

    /// Appends every row to a Redis stream as one entry holding the JSON
    /// object (at-least-once; see [`RedisSinkSpec`]). Checks the server now.
    #[cfg(feature = "redis")]
    pub fn sink_redis(&self, spec: RedisSinkSpec) -> Result<()> {
        spec.check()?;
        let spec = Arc::new(spec);
        let fac: OperatorFactory =
            Arc::new(move |_: &TaskInfo| Ok(Box::new(spec.create()?) as Box<dyn Operator>));
        self.sink("redis_sink", fac, None);
        Ok(())
    }

    /// Prints rows to standard output as JSON lines.
    pub fn sink_stdout(&self) {
        self.sink("stdout_sink", factory(StdoutSink), Some(1));
    }

    /// Collects every row in memory; read them after the job ran.
    pub fn collect(&self) -> Result<Collected> {
        let target = Collected::default();
        let t = target.clone();
        let fac: OperatorFactory = Arc::new(move |_: &TaskInfo| {
            Ok(Box::new(CollectSink::new(t.clone())) as Box<dyn Operator>)
        });
        self.sink("collect_sink", fac, None);
        Ok(target)
    }
}
