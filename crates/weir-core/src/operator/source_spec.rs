//! The connector contract: what the planner and the executors know of a
//! source, so that neither names one.
//!
//! Owns [`SourceSpec`], [`Boundedness`] and [`DEAD_LETTER_PORT`]. A
//! connector (Parquet, in-memory batches, a broker, a watched directory, a
//! generator) implements [`SourceSpec`] once; the job graph holds it as
//! `NodeKind::Source(Arc<dyn SourceSpec>)`, the planner asks it for event
//! time, lateness, ports and paths, and each subtask gets its reader from
//! [`SourceSpec::create`].
//!
//! ```text
//!  Job::source_spec(spec) ──► NodeKind::Source(spec)
//!      assign_timestamps ──► spec.with_event_time(column, strategy)   (pushed into the source)
//!      plan()            ──► spec.with_lateness_rule(rule)            (what its consumers allow)
//!      physical plan     ──► spec.side_port_schema(port), max_parallelism()
//!      data safety       ──► spec.input_paths()                       (outputs never overlap them)
//!      run               ──► spec.create(task) per subtask ──► Box<dyn Source>
//! ```
//!
//! May use `error`, `time` and the parent module. Never `exec` or `graph`.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::SchemaRef;

use super::{Source, TaskInfo};
use crate::error::Result;
use crate::time::{LatenessRule, WatermarkStrategy};

/// The output port on which a source sends the records it could not
/// decode (port 0 is its rows, port 1 the rows behind the watermark).
pub const DEAD_LETTER_PORT: usize = 2;

/// Whether a source ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundedness {
    /// It ends by itself (files, in-memory batches, a bounded connector):
    /// batch mode can run it, and a signal cancels the run.
    Bounded,
    /// It may never end (a broker, a socket): batch mode refuses it, and a
    /// signal drains the run.
    Unbounded,
    /// Not declared (a custom source): batch mode runs it, a signal drains.
    Unknown,
}

/// A source as the planner sees it: its schema, whether it ends, what it
/// reads, and how to make a reader per subtask.
///
/// The optional methods have defaults for a source that assigns no event
/// time through the planner, reads no files, and has no side outputs.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use weir::operator::{Boundedness, Ctx, Output, Source, SourcePoll, SourceSpec, TaskInfo};
/// use weir::{ExecConfig, Job, SchemaRef};
///
/// /// Counts 0..n once, in subtask 0.
/// struct Count { schema: SchemaRef, n: i64 }
/// struct CountReader { batch: Option<RecordBatch> }
///
/// impl Source for CountReader {
///     fn poll_next(&mut self, _: &mut Ctx, out: &mut Output) -> weir::Result<SourcePoll> {
///         Ok(match self.batch.take() {
///             Some(b) => { out.emit(b); SourcePoll::Ready }
///             None => SourcePoll::Exhausted,
///         })
///     }
/// }
///
/// impl SourceSpec for Count {
///     fn name(&self) -> &str { "count" }
///     fn schema(&self) -> &SchemaRef { &self.schema }
///     fn boundedness(&self) -> Boundedness { Boundedness::Bounded }
///     fn create(self: Arc<Self>, task: &TaskInfo) -> weir::Result<Box<dyn Source>> {
///         let values = Int64Array::from_iter_values(0..self.n);
///         let batch = RecordBatch::try_new(self.schema.clone(), vec![Arc::new(values)])?;
///         Ok(Box::new(CountReader { batch: (task.subtask == 0).then_some(batch) }))
///     }
/// }
///
/// let batch = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![0])) as _)])?;
/// let job = Job::new();
/// let rows = job.source_spec(Arc::new(Count { schema: batch.schema(), n: 5 })).collect()?;
/// job.run(&ExecConfig::batch().with_parallelism(2))?;
/// assert_eq!(rows.num_rows(), 5);
/// # Ok::<(), weir::Error>(())
/// ```
pub trait SourceSpec: Send + Sync {
    /// The connector's name ("parquet", "memory", "kafka", ...), for errors
    /// and progress.
    fn name(&self) -> &str;

    /// The schema of the rows it emits on port 0.
    fn schema(&self) -> &SchemaRef;

    /// Whether it ends by itself.
    fn boundedness(&self) -> Boundedness;

    /// At most this many subtasks read it (1 for a socket or stdin).
    fn max_parallelism(&self) -> Option<usize> {
        None
    }

    /// The files and folders it reads: a job never writes into them.
    fn input_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Rows it will read in all, when known before the run (progress).
    fn rows_to_read(&self) -> Option<u64> {
        None
    }

    /// Rows read so far, where the source counts reads beyond what it
    /// emits (rows outside a time range); `None`: its emitted rows count.
    fn rows_read(&self) -> Option<u64> {
        None
    }

    /// Sources reading a broker: records between what they have read and
    /// the head of what they read, now (`None`: not known or not a broker).
    fn records_behind(&self) -> Option<u64> {
        None
    }

    /// The schema of side output `port` (>= 2), if it has that port: e.g.
    /// [`DEAD_LETTER_PORT`].
    fn side_port_schema(&self, _port: usize) -> Option<SchemaRef> {
        None
    }

    /// True if [`SourceSpec::with_event_time`] is supported: the planner
    /// then pushes `assign_timestamps` into the source, which decides late
    /// rows per split. A source without it assigns event time itself.
    fn takes_event_time(&self) -> bool {
        false
    }

    /// A copy that assigns event time from `column` with `strategy`.
    ///
    /// # Errors
    ///
    /// [`crate::error::Error::Plan`] if the column cannot carry event time, or the
    /// source does not take it (the default).
    fn with_event_time(
        &self,
        _column: &str,
        _strategy: &WatermarkStrategy,
    ) -> Result<Arc<dyn SourceSpec>> {
        Err(crate::error::Error::Plan(format!(
            "source `{}` assigns event time itself",
            self.name()
        )))
    }

    /// A copy that decides late rows by `rule` (what its first stateful
    /// consumers allow); `None` if lateness does not apply to it.
    fn with_lateness_rule(&self, _rule: LatenessRule) -> Option<Arc<dyn SourceSpec>> {
        None
    }

    /// This source's share of the input for `shard` (`--shard i/N`), or
    /// `None` if it cannot divide its input (a shard of a keyed job may
    /// still read all of a bounded one and keep its key groups).
    fn for_shard(&self, _shard: crate::shard::Shard) -> Option<ShardShare> {
        None
    }

    /// The reader of subtask `task`.
    ///
    /// # Errors
    ///
    /// Whatever opening the input fails with (a missing file, a refused
    /// connection), naming the source.
    fn create(self: Arc<Self>, task: &TaskInfo) -> Result<Box<dyn Source>>;
}

/// The event-time methods of [`SourceSpec`] (`takes_event_time`,
/// `with_event_time`, `with_lateness_rule`) for a connector spec that is
/// `Clone + 'static` and has the inherent builders
/// `with_event_time(self, &str, WatermarkStrategy) -> Result<Self>` and
/// `with_lateness_rule(self, LatenessRule) -> Self`; used inside its
/// `impl SourceSpec`.
#[macro_export]
macro_rules! event_time_pushdown {
    () => {
        fn takes_event_time(&self) -> bool {
            true
        }

        fn with_event_time(
            &self,
            column: &str,
            strategy: &$crate::time::WatermarkStrategy,
        ) -> $crate::error::Result<std::sync::Arc<dyn $crate::operator::SourceSpec>> {
            Ok(std::sync::Arc::new(
                self.clone().with_event_time(column, strategy.clone())?,
            ))
        }

        fn with_lateness_rule(
            &self,
            rule: $crate::time::LatenessRule,
        ) -> Option<std::sync::Arc<dyn $crate::operator::SourceSpec>> {
            Some(std::sync::Arc::new(self.clone().with_lateness_rule(rule)))
        }
    };
}

/// How a source divides its input among shards ([`SourceSpec::for_shard`]).
pub enum ShardShare {
    /// Its splits (files, row groups) dealt out by index: every shard reads
    /// different rows, keyed or not (jobs without keyed state use it).
    Splits(Arc<dyn SourceSpec>),
    /// Its broker partitions (or streams): shard `i` of `N` reads partition
    /// `p` when `p mod N == i`. Keyed state is then correct only if the
    /// producer put each key in one partition, as the job keys it.
    Partitions(Arc<dyn SourceSpec>),
}

impl std::fmt::Debug for dyn SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSpec")
            .field("name", &self.name())
            .field("boundedness", &self.boundedness())
            .finish()
    }
}
