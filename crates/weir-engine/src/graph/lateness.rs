//! Choosing each event-time source's lateness rule from the operators it feeds.
//!
//! May use the plan's nodes and `weir_core::time::LatenessRule`.

use super::{LogicalPlan, NodeId, NodeKind};
use weir_core::time::LatenessRule;

impl LogicalPlan {
    /// Gives every Parquet, in-memory and live source the lateness rule its
    /// first stateful consumers allow, so it decides late rows window-aware
    /// where that is safe and per row elsewhere.
    ///
    /// ```text
    ///  source ─► filter/select/with_column/union ─► (any shuffle) ─► first stateful operator
    ///            (passed through)                                    its lateness_rule, or PerRow
    ///  sinks take any row; several consumers: the strictest rule (LatenessRule::and);
    ///  no stateful consumer at all: PerRow
    /// ```
    /// Only the main output (port 0) counts: late rows and dead letters go
    /// to streams of their own. [`Job::plan`](super::Job::plan) calls this on
    /// the copy it returns, so executors always see resolved sources.
    pub fn resolve_lateness(&mut self) {
        for id in 0..self.nodes.len() {
            let NodeKind::Source(spec) = &self.nodes[id].kind else {
                continue;
            };
            if let Some(spec) = spec.with_lateness_rule(self.lateness_rule_of(id)) {
                self.nodes[id].kind = NodeKind::Source(spec);
            }
        }
    }

    /// The rule the first stateful operators reading `source`'s main output allow.
    pub fn lateness_rule_of(&self, source: NodeId) -> LatenessRule {
        let mut rule: Option<LatenessRule> = None;
        let mut visited = vec![false; self.nodes.len()];
        let mut stack = vec![source];
        while let Some(from) = stack.pop() {
            for (id, node) in self.nodes.iter().enumerate() {
                if !node.inputs.iter().any(|e| e.from == from && e.port == 0) {
                    continue;
                }
                match &node.kind {
                    NodeKind::Sink(_) => {}
                    _ if node.passes.is_some() => {
                        if !std::mem::replace(&mut visited[id], true) {
                            stack.push(id);
                        }
                    }
                    _ => {
                        let r = node.lateness_rule.clone().unwrap_or_default();
                        rule = Some(match rule {
                            None => r,
                            Some(so_far) => so_far.and(r),
                        });
                    }
                }
            }
        }
        rule.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::Job;
    use arrow_array::{Int64Array, RecordBatch};
    use std::sync::Arc;
    use std::time::Duration;
    use weir_core::expr::{col, lit};
    use weir_core::time::WatermarkStrategy;
    use weir_core::time::{LatenessRule, Window};
    use weir_functions::Agg;
    use weir_operators::join::JoinSpec;

    fn input(job: &Job) -> crate::graph::Stream {
        let b = RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(vec![1])) as _),
            ("t", Arc::new(Int64Array::from(vec![1])) as _),
        ])
        .unwrap();
        job.from_batches(b.schema(), vec![vec![b]])
            .unwrap()
            .assign_timestamps("t", WatermarkStrategy::monotonous())
            .unwrap()
    }

    /// The rules of the plan's event-time sources, in node order.
    fn rules(job: &Job) -> Vec<LatenessRule> {
        let plan = job.plan();
        (0..plan.nodes.len())
            .filter(|&id| {
                matches!(&plan.nodes[id].kind, super::NodeKind::Source(s) if s.name() == "memory")
                    && !plan.nodes[id].replaced
            })
            .map(|id| plan.lateness_rule_of(id))
            .collect()
    }

    #[test]
    fn the_first_stateful_operators_decide_the_rule() {
        let s = Duration::from_secs;
        let tumbling = Window::tumbling(s(1));
        // through filter, select and a shuffle to a window
        let job = Job::new();
        let rows = input(&job).filter(col("k").gt(lit(0))).unwrap();
        rows.select(["k", "t"])
            .unwrap()
            .key_by(["k"])
            .unwrap()
            .window(tumbling)
            .aggregate([Agg::count()])
            .unwrap()
            .collect()
            .unwrap();
        rows.collect().unwrap(); // a sink takes any row
        rows.late_rows().unwrap().collect().unwrap(); // port 1 does not count
        assert_eq!(rules(&job), vec![LatenessRule::for_window(tumbling)]);

        // a second branch with a count window makes it per row
        rows.key_by(["k"])
            .unwrap()
            .count_window(2)
            .aggregate([Agg::count()])
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(rules(&job), vec![LatenessRule::PerRow]);

        // sessions, process-free pipelines: per row
        let job = Job::new();
        let rows = input(&job);
        rows.key_by(["k"])
            .unwrap()
            .window(Window::session(s(1)))
            .aggregate([Agg::count()])
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(rules(&job), vec![LatenessRule::PerRow]);
        let job = Job::new();
        input(&job).collect().unwrap();
        assert_eq!(rules(&job), vec![LatenessRule::PerRow]);

        // two windows: both; a window join like a window aggregate, through a union
        let job = Job::new();
        let a = input(&job);
        let b = input(&job);
        let u = a.union(&b).unwrap();
        let sliding = Window::sliding(s(2), s(1));
        u.join(&u, JoinSpec::window(sliding).on(["k"], ["k"]))
            .unwrap()
            .collect()
            .unwrap();
        u.key_by(["k"])
            .unwrap()
            .window(tumbling)
            .aggregate([Agg::count()])
            .unwrap()
            .collect()
            .unwrap();
        let want = LatenessRule::for_window(sliding).and(LatenessRule::for_window(tumbling));
        assert_eq!(rules(&job), vec![want.clone(), want]);
        // an interval join needs per row
        let job = Job::new();
        let a = input(&job);
        a.join(&a, JoinSpec::interval(s(1), s(1)).on(["k"], ["k"]))
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(rules(&job), vec![LatenessRule::PerRow]);
    }
}
