//! The contract of a repartition channel: how shards move rows to the shard
//! of another key (a broker topic), so a sharded job can re-key.
//!
//! ```text
//!  shard i:  ... ─► U ─► sink(edge) ══ topic, partition j = the shard owning the row's key group ══╗
//!  shard j:  source(edge) reads partition j ─► hash(keys) ─► X ...  ◄════════════════════════════╝
//! ```
//! The planner (`LogicalPlan::for_shard`) cuts a re-keying edge `U ─hash(keys)─► X`
//! into a sink and a source built here; it never names the connector.
//! May use `operator`, `shard` and `error`.

use super::{OperatorFactory, SourceSpec};
use crate::error::Result;
use crate::shard::Shard;
use arrow_schema::SchemaRef;
use std::sync::Arc;

/// One re-keying edge of a sharded job.
#[derive(Debug, Clone)]
pub struct RepartitionEdge {
    /// Unique within the job (the consuming operator and input): names
    /// the channel, with the job's and run's names.
    pub name: String,
    /// The rows' schema.
    pub schema: SchemaRef,
    /// The columns the rows are re-keyed by.
    pub keys: Vec<String>,
    /// The shard this process is.
    pub shard: Shard,
    /// True if every source of the job is bounded: the channel ends when
    /// every producer ended.
    pub bounded: bool,
}

/// Builds the two ends of a repartition channel (e.g. a Kafka topic with
/// one partition per shard; `weir_connectors::kafka::KafkaRepartition`).
pub trait Repartitioner: Send + Sync + std::fmt::Debug {
    /// The sink every shard runs: sends each row to the shard owning its
    /// key group under `edge.keys`, with the watermarks and end of input
    /// it receives.
    fn sink(&self, edge: &RepartitionEdge) -> Result<OperatorFactory>;

    /// The source of the rows sent to `edge.shard`; its watermark is the
    /// lowest of every producer's.
    fn source(&self, edge: &RepartitionEdge) -> Result<Arc<dyn SourceSpec>>;

    /// What it is, for the plan's description (e.g. `kafka topic T`).
    fn describe(&self, edge: &RepartitionEdge) -> String;
}
