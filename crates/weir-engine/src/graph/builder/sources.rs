//! Sources of a job (`Job::parquet`, `from_batches`, `live_source`,
//! `source_spec`, ...) and event time on their streams (`assign_timestamps`,
//! late rows, dead letters, ingestion time).

use super::*;

impl Job {
    /// A bounded source over a Parquet file, a directory of Parquet files or
    /// a glob pattern (see [`ParquetSourceSpec`]: Hive partitions, schema
    /// widening). Fails now if a file is missing or unreadable, or if the
    /// files' schemas cannot be widened to one.
    pub fn parquet(&self, path: impl AsRef<Path>) -> Result<Stream> {
        self.parquet_files(&[path.as_ref().to_path_buf()])
    }

    /// A bounded source over several Parquet files, directories or patterns.
    pub fn parquet_files(&self, paths: &[PathBuf]) -> Result<Stream> {
        self.parquet_with(paths, 8192)
    }

    /// A bounded Parquet source reading `batch_size` rows at a time.
    pub fn parquet_with(&self, paths: &[PathBuf], batch_size: usize) -> Result<Stream> {
        self.parquet_source(ParquetSourceSpec::try_new(paths)?.with_batch_size(batch_size))
    }

    /// A bounded Parquet source configured beforehand: time travel
    /// (`with_time_range`), replay pacing (`with_replay_speed`), projection
    /// (`with_projection`), read-ahead, batch size.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    /// use weir::connectors::replay::{parse_time, ReplaySpeed, TimeRange};
    /// use weir::connectors::ParquetSourceSpec;
    /// use weir::{Job, WatermarkStrategy};
    /// let from = parse_time("from", "2026-11-01T00:05:00Z")?;
    /// let spec = ParquetSourceSpec::try_new(&["data/obd".into()])?
    ///     .with_time_range("event_time", TimeRange { from: Some(from), until: None })?
    ///     .with_replay_speed("event_time", ReplaySpeed::Times(60.0))?;
    /// let job = Job::new();
    /// let readings = job
    ///     .parquet_source(spec)?
    ///     .assign_timestamps("event_time", WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(30)))?;
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn parquet_source(&self, spec: ParquetSourceSpec) -> Result<Stream> {
        Ok(self.add_source("parquet_source", Arc::new(spec)))
    }

    /// A bounded source over in-memory batches; each inner `Vec` is a split.
    pub fn from_batches(&self, schema: SchemaRef, splits: Vec<Vec<RecordBatch>>) -> Result<Stream> {
        let spec = MemorySourceSpec::try_new(schema, splits)?;
        Ok(self.add_source("memory_source", Arc::new(spec)))
    }

    /// A live source (broker, socket, stdin, watched directory): records
    /// decoded from JSON into the spec's schema. Event time is assigned with
    /// [`Stream::assign_timestamps`] as for Parquet, and watermarks are then
    /// kept per partition.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use arrow_schema::{DataType, Field, Schema, TimeUnit};
    /// use weir::connectors::live::{lines::LinesConnector, LiveSourceSpec, OnError};
    /// use weir::{ExecConfig, Job, WatermarkStrategy};
    /// let schema = Arc::new(Schema::new(vec![
    ///     Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
    ///     Field::new("speed", DataType::Float64, true),
    /// ]));
    /// let text = "{\"t\": 1000, \"speed\": 50}\n{\"t\": oops}\n{\"t\": 2000, \"speed\": 70}\n";
    /// let spec = LiveSourceSpec::new("lines", schema, Arc::new(move |_| {
    ///     Ok(Box::new(LinesConnector::from_reader("text", std::io::Cursor::new(text))?) as _)
    /// }), true)
    /// .with_on_error(OnError::DeadLetter);
    /// let job = Job::new();
    /// let rows = job.live_source(spec).assign_timestamps("t", WatermarkStrategy::monotonous())?;
    /// let bad = rows.dead_letters()?.collect()?;
    /// let good = rows.collect()?;
    /// let metrics = job.run(&ExecConfig::pipelined().with_parallelism(1))?;
    /// assert_eq!((good.num_rows(), bad.num_rows(), metrics.bad_records), (2, 1, 1));
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn live_source(&self, spec: LiveSourceSpec) -> Stream {
        self.add_source("live_source", Arc::new(spec))
    }

    /// Any source, built per subtask by `factory`. It assigns its own event
    /// time, if any ([`Stream::with_source_event_time`]); boundedness is
    /// not declared ([`Boundedness::Unknown`]).
    pub fn source(&self, name: &str, schema: SchemaRef, factory: SourceFactory) -> Stream {
        let spec = FactorySource {
            name: name.to_string(),
            schema,
            factory,
        };
        self.add_source(name, Arc::new(spec))
    }

    /// A source over any connector: the node is named `<connector>_source`.
    /// See [`SourceSpec`] for an example.
    pub fn source_spec(&self, spec: Arc<dyn SourceSpec>) -> Stream {
        let name = format!("{}_source", spec.name());
        self.add_source(&name, spec)
    }

    /// Adds source node `name` reading `spec`.
    fn add_source(&self, name: &str, spec: Arc<dyn SourceSpec>) -> Stream {
        let schema = spec.schema().clone();
        let max_parallelism = spec.max_parallelism();
        let id = self.add(name, NodeKind::Source(spec), vec![], schema.clone());
        self.plan.borrow_mut().nodes[id].max_parallelism = max_parallelism;
        self.stream(id, schema, None)
    }
}

/// A source made by a bare factory ([`Job::source`]).
struct FactorySource {
    // config
    name: String,
    schema: SchemaRef,
    factory: SourceFactory,
}

impl SourceSpec for FactorySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn boundedness(&self) -> Boundedness {
        Boundedness::Unknown
    }

    fn create(self: Arc<Self>, task: &TaskInfo) -> Result<Box<dyn Source>> {
        (self.factory)(task)
    }
}

impl Stream {
    /// Takes event time from `column` (Int64 epoch ms or Timestamp) and
    /// generates watermarks with `strategy`.
    ///
    /// Event time is always assigned where rows are read: per source split
    /// (a Parquet row group, an in-memory split), so which rows are late
    /// depends only on the data, never on parallelism, executor or timing.
    /// The stream must therefore come from a Parquet or in-memory source,
    /// possibly through `filter`, `select` and `with_column` steps that keep
    /// `column` unchanged (lateness is then judged on every row the source
    /// read, before those steps). Anything else is an error.
    pub fn assign_timestamps(&self, column: &str, strategy: WatermarkStrategy) -> Result<Stream> {
        let context = format!("assign_timestamps on `{}`", self.name());
        validate_time_column(&self.schema, column, &context)?;
        strategy.validate(&self.schema, &context)?;
        if let Some(t) = &self.time_column {
            return Err(Error::Plan(format!(
                "{context}: event time is already assigned (column `{t}`)"
            )));
        }
        if self.next_partitioning != Partitioning::Forward {
            return Err(Error::Plan(format!(
                "{context}: assign timestamps before rebalance/broadcast"
            )));
        }
        let mut plan = self.job.plan.borrow_mut();
        // Walk back to the source through operators that keep `column`.
        let mut path = vec![self.node];
        loop {
            let node = &plan.nodes[*path.last().expect("path starts non-empty")];
            if node.kind.is_source() {
                break;
            }
            let through = match (&node.passes, node.inputs.as_slice()) {
                (Some(passes), [e])
                    if e.partitioning == Partitioning::Forward
                        && e.port == 0
                        && passes.iter().any(|c| c == column) =>
                {
                    e.from
                }
                _ => {
                    return Err(Error::Plan(format!(
                        "{context}: event time must be assigned at a Parquet, in-memory or live source, \
                         through filter/select/with_column steps only (found `{}`); \
                         lateness decided elsewhere would depend on thread timing",
                        node.name
                    )))
                }
            };
            path.push(through);
        }
        path.reverse();
        let source = &plan.nodes[path[0]];
        let kind = match &source.kind {
            NodeKind::Source(spec) if spec.takes_event_time() => {
                NodeKind::Source(spec.with_event_time(column, &strategy)?)
            }
            _ => {
                return Err(Error::Plan(format!(
                    "{context}: `{}` is a custom source; it must assign event time itself",
                    source.name
                )))
            }
        };
        if self.port != 0 {
            return Err(Error::Plan(format!(
                "{context}: late rows already passed a source's event time"
            )));
        }
        // Copy the path with event time at its source; the originals stay for
        // any other branch that reads them (and are dropped if none does).
        let mut previous: Option<NodeId> = None;
        let source_copy = plan.nodes.len();
        for &id in &path {
            let mut copy = plan.nodes[id].clone();
            let original = &mut plan.nodes[id];
            original.replaced = true;
            original.name = format!("{} (without event time)", original.name);
            match previous {
                None => {
                    copy.kind = kind.clone();
                    copy.idle_timeout = strategy.idle_timeout;
                    copy.definition = Some(format!("event time {column}, {strategy:?}"));
                }
                Some(p) => copy.inputs[0].from = p,
            }
            plan.nodes.push(copy);
            previous = Some(plan.nodes.len() - 1);
        }
        drop(plan);
        let mut s = self.clone();
        s.node = previous.expect("the path holds at least the source");
        s.time_column = Some(column.to_string());
        s.lateness_ms = strategy.allowed_lateness_ms;
        s.time_sources = vec![source_copy];
        Ok(s)
    }

    /// Declares that this custom source (from [`Job::source`]) assigns event
    /// time itself from `column` and emits its own watermarks (per split,
    /// deciding late rows, like the built-in sources).
    pub fn with_source_event_time(&self, column: &str) -> Result<Stream> {
        let plan = self.job.plan.borrow();
        let custom = matches!(&plan.nodes[self.node].kind, NodeKind::Source(spec) if !spec.takes_event_time());
        if !custom || self.port != 0 {
            return Err(Error::Plan(
                "with_source_event_time applies to a custom source".into(),
            ));
        }
        drop(plan);
        validate_time_column(&self.schema, column, "with_source_event_time")?;
        let mut s = self.clone();
        s.time_column = Some(column.to_string());
        s.define(format!("event time {column} (assigned by the source)"));
        Ok(s)
    }

    /// Declares `column` this stream's event time where the producing
    /// operator guarantees no row is at or behind the watermark it has
    /// forwarded: an inner join's pairs stamped with the later of the two
    /// times, or rows a process function emits at an event-time timer for
    /// the timer's time. Hidden from the docs and meant for weir's own
    /// workloads (Nexmark): a wrong claim would make results depend on timing.
    #[doc(hidden)]
    pub fn with_derived_event_time(&self, column: &str) -> Result<Stream> {
        validate_time_column(&self.schema, column, "with_derived_event_time")?;
        let mut s = self.clone();
        s.time_column = Some(column.to_string());
        s.lateness_ms = 0;
        Ok(s)
    }

    /// Marks this source idle after `timeout` without rows: it then stops
    /// holding back the watermark of downstream operators (pipelined runs;
    /// results then depend on timing, as in Flink).
    pub fn with_idle_timeout(&self, timeout: std::time::Duration) -> Result<Stream> {
        let mut plan = self.job.plan.borrow_mut();
        let node = &mut plan.nodes[self.node];
        if !node.kind.is_source() {
            return Err(Error::Plan(format!(
                "with_idle_timeout applies to sources, not `{}`",
                node.name
            )));
        }
        node.idle_timeout = Some(timeout);
        Ok(self.clone())
    }

    /// Adds `column` (Timestamp ms, UTC) with the wall-clock time each row
    /// passes this point, and makes it the event time (ingestion time).
    /// Watermarks follow the clock, so no row is late; results depend on
    /// timing. Put it right after a source for "time the row entered weir".
    pub fn with_ingestion_time(&self, column: &str) -> Result<Stream> {
        if self.schema.field_with_name(column).is_ok() {
            return Err(Error::column(
                column,
                "with_ingestion_time",
                "already exists",
            ));
        }
        let op = IngestionTime::new(&self.schema, column);
        let schema = IngestionTime::output_schema(&self.schema, column);
        let mut s = self.then("ingestion_time", NodeKind::Operator(factory(op)), schema);
        s.time_column = Some(column.to_string());
        s.lateness_ms = 0;
        Ok(s)
    }

    /// The rows the source dropped as late (behind the watermark by more
    /// than the allowed lateness), as their own stream: route them to a
    /// sink to keep them. They are counted in `late_rows` either way.
    pub fn late_rows(&self) -> Result<Stream> {
        if self.time_sources.is_empty() {
            return Err(Error::Plan(
                "late_rows needs a stream whose event time was assigned at its source".into(),
            ));
        }
        let mut streams = self.time_sources.iter().map(|&source| {
            let schema = self.job.plan.borrow().nodes[source].schema.clone();
            let mut s = self.job.stream(source, schema, None);
            s.port = 1;
            s
        });
        let first = streams.next().expect("checked non-empty");
        streams.try_fold(first, |acc, s| acc.union(&s))
    }

    /// The records the live source behind this stream could not decode
    /// (with `on_error = dead_letter`): columns `source`, `partition`,
    /// `position`, `reason`, `record`, `seen_at`. Call it on the stream you
    /// keep using (after `assign_timestamps`), so both read one source.
    pub fn dead_letters(&self) -> Result<Stream> {
        let plan = self.job.plan.borrow();
        let mut id = self.node;
        loop {
            let node = &plan.nodes[id];
            if let NodeKind::Source(spec) = &node.kind {
                if let Some(schema) = spec.side_port_schema(DEAD_LETTER_PORT) {
                    drop(plan);
                    let mut s = self.job.stream(id, schema, None);
                    s.port = DEAD_LETTER_PORT;
                    return Ok(s);
                }
            }
            match (node.passes.is_some(), node.inputs.as_slice()) {
                (true, [e]) if e.port == 0 && e.partitioning == Partitioning::Forward => {
                    id = e.from
                }
                _ => {
                    return Err(Error::Plan(format!(
                        "dead_letters needs a stream read from a live source through \
                         filter/select/with_column steps only (found `{}`)",
                        node.name
                    )))
                }
            }
        }
    }
}
