//! Joining two streams (`Stream::join`).

use super::*;

impl Stream {
    /// Joins this stream (left) with `other` (right) on equal keys, as
    /// `spec` says: window, interval or regular, inner or outer. Both inputs
    /// are hash-partitioned by their keys. Tumbling and same-window joins
    /// run a window hash join in both modes (one hash join per window as
    /// it closes); the other kinds a symmetric hash join pipelined and a
    /// sort-merge join in batch; both give the same rows (a
    /// regular outer join's changelog materializes to the batch result).
    /// The output has no event time.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use weir::operators::join::JoinSpec;
    /// use weir::{ExecConfig, Job};
    /// let batch = |k: Vec<i64>, v: Vec<i64>| {
    ///     RecordBatch::try_from_iter([
    ///         ("k", Arc::new(Int64Array::from(k)) as _),
    ///         ("v", Arc::new(Int64Array::from(v)) as _),
    ///     ])
    ///     .unwrap()
    /// };
    /// let left = batch(vec![1, 2], vec![10, 20]);
    /// let right = batch(vec![2, 3], vec![200, 300]);
    /// let job = Job::new();
    /// let l = job.from_batches(left.schema(), vec![vec![left]])?;
    /// let r = job.from_batches(right.schema(), vec![vec![right]])?;
    /// let joined = l.join(&r, JoinSpec::regular().on(["k"], ["k"]))?.collect()?;
    /// job.run(&ExecConfig::batch())?;
    /// let out = joined.batches();
    /// assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 1); // k = 2
    /// # Ok::<(), weir::Error>(())
    /// ```
    pub fn join(&self, other: &Stream, spec: JoinSpec) -> Result<Stream> {
        if !Rc::ptr_eq(&self.job.plan, &other.job.plan) {
            return Err(Error::Plan("join of streams from different jobs".into()));
        }
        let bounded = spec.needs_event_time() || spec.kind == JoinKind::SameWindow;
        if bounded && (self.lateness_ms > 0 || other.lateness_ms > 0) {
            return Err(Error::Plan(format!(
                "join: window, same-window, interval and TTL joins need inputs without allowed lateness (left {} ms, right {} ms): a row behind the watermark could miss its match",
                self.lateness_ms, other.lateness_ms
            )));
        }
        if spec.kind == JoinKind::SameWindow {
            for (side, s) in [("left", self), ("right", other)] {
                if s.schema.index_of(weir_operators::OP_COLUMN).is_ok() {
                    return Err(Error::Plan(format!(
                        "join: a same-window join of an updating window result (the {side} input's `{}` column: allowed lateness or early firing emits a window's rows again) would join every version of a row; join the final results (no allowed lateness or early firing)",
                        weir_operators::OP_COLUMN
                    )));
                }
            }
        }
        let layout = JoinLayout::try_new(
            &self.schema,
            &other.schema,
            self.time_column.as_deref(),
            other.time_column.as_deref(),
            &spec,
        )?;
        let inputs = vec![
            Edge {
                from: self.node,
                partitioning: Partitioning::Hash(spec.left_keys.clone()),
                port: self.port,
            },
            Edge {
                from: other.node,
                partitioning: Partitioning::Hash(spec.right_keys.clone()),
                port: other.port,
            },
        ];
        // tumbling and same-window joins: one hash join per window in both
        // modes; in batch it holds the watermarks back and fires every
        // window at the end (a batch stage may forward a watermark before
        // rows it emits at its end); the other kinds: a symmetric hash join
        // pipelined, a sort-merge join in batch
        let (pipelined, batch): (OperatorFactory, OperatorFactory) =
            if WindowHashJoin::supports(layout.spec()) {
                let window_hash = |blocking: bool| -> OperatorFactory {
                    let layout = layout.clone();
                    Arc::new(move |_: &TaskInfo| {
                        Ok(Box::new(
                            WindowHashJoin::try_new(layout.clone())?.with_blocking(blocking),
                        ) as Box<dyn Operator>)
                    })
                };
                (window_hash(false), window_hash(true))
            } else {
                let streaming = layout.clone();
                let blocking = layout.clone();
                (
                    Arc::new(move |_: &TaskInfo| {
                        Ok(Box::new(SymmetricHashJoin::try_new(streaming.clone())?)
                            as Box<dyn Operator>)
                    }),
                    Arc::new(move |_: &TaskInfo| {
                        Ok(Box::new(SortMergeJoin::try_new(blocking.clone())?)
                            as Box<dyn Operator>)
                    }),
                )
            };
        let schema = layout.schema().clone();
        let id = self.job.add(
            "join",
            NodeKind::Operator(pipelined),
            inputs,
            schema.clone(),
        );
        {
            let mut plan = self.job.plan.borrow_mut();
            plan.nodes[id].batch_variant = Some(batch);
            // a window join keeps a window's rows until it fires, like a window
            // aggregate; interval and regular joins need rows after the watermark
            if let JoinKind::Window(w) = layout.spec().kind {
                plan.nodes[id].lateness_rule = Some(LatenessRule::for_window(w));
            }
        }
        let mut out = self.job.stream(id, schema, None);
        out.define(format!("join {spec:?}"));
        out.time_sources = self
            .time_sources
            .iter()
            .chain(&other.time_sources)
            .copied()
            .collect();
        Ok(out)
    }
}
