//! `/metrics`: the run's figures in the Prometheus text format (0.0.4),
//! encoded by the `prometheus-client` crate from a [`JobView`] at each
//! scrape (a collector: nothing is counted twice, nothing kept between
//! scrapes).
//!
//! Names follow Prometheus' conventions: counters end in `_total`, times
//! are seconds, sizes bytes. Per-instance series carry `operator` and
//! `subtask` labels; the busy / idle / back-pressured seconds are those of
//! the task (thread) the instance runs in, so operators chained into one
//! task report the same time. `rate(weir_operator_busy_seconds_total[1m])`
//! is Flink's `busyTimeMsPerSecond` / 1000.
//!
//! May use `super::view`.

use crate::view::JobView;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The run's metrics as Prometheus text.
pub(crate) fn encode(job: &JobView) -> String {
    let mut registry = Registry::with_prefix("weir");
    registry.register_collector(Box::new(JobCollector(job.clone())));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

#[derive(Debug)]
struct JobCollector(JobView);

type Labels = Vec<(String, String)>;

/// One metric family: help, kind, and its series.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    counter: bool,
    series: Vec<(Labels, f64)>,
}

impl Family<'_> {
    fn encode(self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if self.series.is_empty() {
            return Ok(());
        }
        let kind = if self.counter {
            ConstCounter::new(0.0f64).metric_type()
        } else {
            ConstGauge::new(0.0f64).metric_type()
        };
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, kind)?;
        for (labels, value) in &self.series {
            let family = metric.encode_family(labels)?;
            if self.counter {
                ConstCounter::new(*value).encode(family)?;
            } else {
                ConstGauge::new(*value).encode(family)?;
            }
        }
        Ok(())
    }
}

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

impl Collector for JobCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let job = &self.0;
        let one = |v: f64| vec![(Labels::new(), v)];
        let counter = |name, help, series| Family {
            name,
            help,
            counter: true,
            series,
        };
        let gauge = |name, help, series| Family {
            name,
            help,
            counter: false,
            series,
        };
        let instance = |o: &crate::view::OperatorView, s: usize| {
            labels(&[("operator", o.name.clone()), ("subtask", s.to_string())])
        };
        let per_subtask = |f: fn(&crate::view::SubtaskView) -> f64| {
            job.operators
                .iter()
                .flat_map(|o| {
                    o.subtasks
                        .iter()
                        .map(move |s| (instance(o, s.subtask), f(s)))
                })
                .collect::<Vec<_>>()
        };
        let per_operator = |f: fn(&crate::view::OperatorView) -> Option<f64>| {
            job.operators
                .iter()
                .filter_map(|o| f(o).map(|v| (labels(&[("operator", o.name.clone())]), v)))
                .collect::<Vec<_>>()
        };
        let checkpoint = job.checkpoints.history.last();
        let families = [
            gauge(
                "job_info",
                "The run: its title, mode and state as labels (value 1).",
                vec![(
                    labels(&[
                        ("title", job.title.clone()),
                        ("mode", job.mode.clone()),
                        ("state", job.state.clone()),
                    ]),
                    1.0,
                )],
            ),
            gauge(
                "job_elapsed_seconds",
                "Seconds since the run started.",
                one(job.elapsed_s),
            ),
            counter(
                "rows_read",
                "Rows the sources read.",
                one(job.rows_read as f64),
            ),
            counter(
                "operator_rows_in",
                "Rows an operator instance received.",
                per_subtask(|s| s.rows_in as f64),
            ),
            counter(
                "operator_rows_out",
                "Rows an operator instance emitted.",
                per_subtask(|s| s.rows_out as f64),
            ),
            counter(
                "operator_bytes_in",
                "Arrow bytes an operator instance received.",
                per_subtask(|s| s.bytes_in as f64),
            ),
            counter(
                "operator_bytes_out",
                "Arrow bytes an operator instance emitted.",
                per_subtask(|s| s.bytes_out as f64),
            ),
            counter(
                "operator_busy_seconds",
                "Seconds the instance's task worked.",
                per_subtask(|s| s.busy_s),
            ),
            counter(
                "operator_idle_seconds",
                "Seconds the instance's task waited for input.",
                per_subtask(|s| s.idle_s),
            ),
            counter(
                "operator_backpressured_seconds",
                "Seconds the instance's task waited for room in a full queue downstream.",
                per_subtask(|s| s.backpressured_s),
            ),
            gauge(
                "operator_input_queue_length",
                "Messages waiting in the instance's input queue.",
                per_subtask(|s| s.queue_len as f64),
            ),
            gauge(
                "operator_input_queue_capacity",
                "Messages the instance's input queue holds at most.",
                per_subtask(|s| s.queue_capacity as f64),
            ),
            gauge(
                "operator_watermark_milliseconds",
                "The instance's watermark, epoch milliseconds.",
                job.operators
                    .iter()
                    .flat_map(|o| {
                        o.subtasks.iter().filter_map(move |s| {
                            s.watermark
                                .filter(|&w| w < i64::MAX)
                                .map(|w| (instance(o, s.subtask), w as f64))
                        })
                    })
                    .collect(),
            ),
            gauge(
                "operator_watermark_lag_seconds",
                "Wall clock minus the operator's lowest watermark.",
                job.operators
                    .iter()
                    .filter_map(|o| {
                        let w = o.watermark?;
                        let lag = (job.started_ms as f64 + job.elapsed_s * 1e3 - w as f64) / 1e3;
                        Some((labels(&[("operator", o.name.clone())]), lag))
                    })
                    .collect(),
            ),
            gauge(
                "source_event_time_skew_milliseconds",
                "Sources: the spread of their subtasks' watermarks.",
                per_operator(|o| o.event_time_skew_ms.map(|v| v as f64)),
            ),
            gauge(
                "operator_state_bytes",
                "Bytes the instance's state holds in memory.",
                per_subtask(|s| s.state_bytes as f64),
            ),
            counter(
                "operator_spilled_state_bytes",
                "Bytes of the operator's state its spills moved to disk.",
                per_operator(|o| Some(o.spilled_state_bytes as f64)),
            ),
            counter(
                "operator_late_rows",
                "Rows the operator dropped as late.",
                per_operator(|o| Some(o.late_rows as f64)),
            ),
            counter(
                "operator_dead_letters",
                "Malformed records the operator sent to its dead-letter output.",
                per_operator(|o| Some(o.bad_records as f64)),
            ),
            gauge(
                "source_records_behind",
                "Broker sources: records between their position and the head.",
                per_operator(|o| o.records_behind.map(|v| v as f64)),
            ),
            gauge(
                "memory_reserved_bytes",
                "Bytes reserved in the memory pool.",
                one(job.memory.reserved as f64),
            ),
            gauge(
                "memory_budget_bytes",
                "The memory pool's budget.",
                one(job.memory.budget as f64),
            ),
            counter(
                "spilled_bytes",
                "Bytes written to spill files.",
                one(job.spill.bytes as f64),
            ),
            counter(
                "spill_files",
                "Spill files written.",
                one(job.spill.files as f64),
            ),
            counter(
                "bad_records",
                "Malformed records the sources met.",
                one(job.bad_records as f64),
            ),
            counter(
                "checkpoints",
                "Checkpoints completed.",
                one(job.checkpoints.count as f64),
            ),
            counter(
                "checkpoint_failures",
                "Checkpoints that failed.",
                one(job.checkpoints.failures as f64),
            ),
            gauge(
                "checkpoint_last_duration_seconds",
                "Trigger to manifest of the newest checkpoint.",
                checkpoint.map_or(Vec::new(), |c| one(c.duration_ms / 1e3)),
            ),
            gauge(
                "checkpoint_last_alignment_seconds",
                "The newest checkpoint's longest barrier alignment.",
                checkpoint.map_or(Vec::new(), |c| one(c.alignment_ms / 1e3)),
            ),
            gauge(
                "checkpoint_last_size_bytes",
                "State bytes of the newest checkpoint.",
                checkpoint.map_or(Vec::new(), |c| one(c.bytes as f64)),
            ),
            counter(
                "restarts",
                "Restarts from a checkpoint after a failure.",
                one(job.restarts as f64),
            ),
        ];
        for family in families {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}
