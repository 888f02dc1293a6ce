//! Plans a `SELECT` onto the builder: `FROM` a table, a view, a subquery
//! or a window table function (`TUMBLE`, `HOP`), then `WHERE` (a filter),
//! `GROUP BY window_start, window_end, keys…` with aggregates (a keyed
//! window aggregation), `HAVING` (a filter on its output) and the select
//! list (a projection, in order, with names).
//!
//! ```text
//!  FROM ─► stream ─► WHERE filter ─► aggregate arguments as columns
//!        ─► key_by(keys).window(TUMBLE|HOP).aggregate(COUNT|SUM|AVG|MIN|MAX)
//!        ─► HAVING filter ─► SELECT list (aggregates read as their output columns)
//!
//!  changelogs: a GROUP BY plans its FROM with `retract` (every changelog under
//!  it is retractions: insert / delete of whole rows), then
//!     op ─► __sign (+1 insert, -1 delete) ─► COUNT = SUM(sign),
//!     SUM / AVG = SUM(x * sign) over SUM(sign if x not null) ─► CASE n = 0 → null
//!     a group with no rows left: dropped (retractions) or a `delete` of its key (upserts)
//!
//!  window attributes: window agg ─► SELECT window_start AS s, window_end AS e
//!     (WindowAttrs: this stream's bounds are s, e) ─► GROUP BY s, e, keys…
//!     ─► rename s, e → window_start, window_end ─► aggregate_per_window
//! ```
//!
//! May use the builder, `super::catalog`, `super::expr`, `super::error`.

use crate::catalog::Table;
use crate::dialect::TABLE_ARG;
use crate::error::{at_node, engine, unsupported, SqlError};
use crate::expr::{interval, scalar};
use crate::join::Scope;
use sqlparser::ast::{
    self, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    SelectItem, SetExpr, Spanned, TableFactor,
};
use std::collections::BTreeMap;
use std::path::Path;
use weir_core::expr::Expr;
use weir_core::time::Window;
use weir_engine::graph::{Job, Stream};
use weir_functions::Agg;
use weir_functions::FunctionRegistry;

/// The column a changelog's rows carry: `insert` or `update` (weir's
/// running aggregates, as in job files).
const OP_COLUMN: &str = "op";
/// An aggregated changelog row's sign: +1 insert, -1 delete.
const SIGN: &str = "__sign";
/// The live rows of a group of an aggregated changelog.
const SIGNED_ROWS: &str = "__signed_rows";

/// What a query can read.
pub(crate) struct Planner<'a> {
    pub job: &'a Job,
    pub base: &'a Path,
    pub tables: &'a BTreeMap<String, Table>,
    pub views: &'a BTreeMap<String, ast::Query>,
    pub functions: &'a FunctionRegistry,
    pub generated: &'a crate::catalog::Generated,
    /// The bound an enclosing `WHERE rownum <= N` puts on this query's
    /// ranking (see `top_n::bound`).
    pub top: Option<crate::top_n::TopLimit>,
    /// The query's changelog must be retractions (`insert` and `delete` of
    /// whole rows, no `update`): an enclosing aggregation reads it.
    pub retract: bool,
    /// An aggregation reads what this query plans: a table's own `op`
    /// column must not reach it (it would be read as a changelog).
    pub aggregated: bool,
    /// What this job's planning remembers (window attributes, sources).
    pub memo: &'a PlanMemo,
    /// The names the script's queries may read (lowercased; `None`: every
    /// column, see `pruning`): a table's source reads only these columns.
    pub reads: Option<&'a std::collections::BTreeSet<String>>,
}

/// What planning the queries of one job remembers across them: which
/// streams' columns are window bounds ([`WindowAttrs`]), the source of
/// each table read (a table read twice, as Nexmark q5 reads `bid`, is read
/// once and its rows go to both readers), and the window aggregations
/// planned (the same one over the same rows is computed once), as Flink
/// reuses common sub-plans. Both name streams of one job: a job planned apart (an
/// `EXPLAIN`'s, a scratch job) has its own.
#[derive(Default, Debug)]
pub(crate) struct PlanMemo {
    pub windows: WindowAttrs,
    pub sources: std::cell::RefCell<std::collections::HashMap<String, Stream>>,
    /// Window aggregations planned, by what they compute (input stream,
    /// keys, window, aggregates): the same one asked again is reused.
    pub aggregates: std::cell::RefCell<std::collections::HashMap<String, Stream>>,
}

/// Which columns of a planned query's rows are its window bounds (start,
/// end), by stream (see [`Stream::id`]): a window aggregation's select list
/// may rename them (`window_start AS starttime`), and a query reading it
/// still knows them for what they are (Flink's window attributes survive
/// projections too), so it can aggregate per window again or join on the
/// window (Nexmark q5).
pub(crate) type WindowAttrs =
    std::cell::RefCell<std::collections::HashMap<(usize, usize), (String, String)>>;

/// The window a window table function puts over its table's rows.
#[derive(Debug, Clone)]
pub(crate) struct TvfWindow {
    window: Window,
    /// `SESSION(TABLE t PARTITION BY …)`: the keys sessions are per.
    partition: Option<Vec<String>>,
}

/// An aggregate call of the select list or `HAVING`.
#[derive(Debug, Clone)]
struct AggCall {
    /// `count`, `sum`, `avg`, `min`, `max`.
    func: String,
    /// Its argument (`None`: `COUNT(*)`).
    arg: Option<SqlExpr>,
    /// The output column.
    name: String,
}

impl Planner<'_> {
    /// The rows of `q`.
    pub fn query(&self, q: &ast::Query) -> Result<Stream, SqlError> {
        if let Some(with) = &q.with {
            if with.recursive {
                return Err(unsupported(q, "WITH RECURSIVE"));
            }
            // the CTEs are views seen by this query (and by later CTEs)
            let mut views = self.views.clone();
            for cte in &with.cte_tables {
                if !cte.alias.columns.is_empty() {
                    return Err(crate::error::at_ident(
                        &cte.alias.name,
                        "a CTE's column list is not supported yet (alias in its SELECT)",
                    ));
                }
                views.insert(cte.alias.name.value.clone(), (*cte.query).clone());
            }
            let inner = Planner {
                views: &views,
                ..*self
            };
            let mut body = q.clone();
            body.with = None;
            return inner.query(&body);
        }
        if q.order_by.is_none() && q.limit_clause.is_none() && q.fetch.is_none() {
            return self.set_expr(q.body.as_ref());
        }
        let limit = crate::top_n::limit_of(q)?;
        // a Top-N reads a changelog under it as retractions
        let rows = Planner {
            retract: self.retract || limit.is_some(),
            ..*self
        }
        .set_expr(q.body.as_ref())?;
        match (limit, &q.order_by) {
            (Some(n), order) => crate::top_n::order_limit(&rows, order.as_ref(), n, q),
            (None, Some(order)) => crate::sort::temporal_sort(&rows, order),
            (None, None) => Ok(rows),
        }
    }

    fn set_expr(&self, body: &SetExpr) -> Result<Stream, SqlError> {
        match body {
            SetExpr::Select(s) => self.select(s),
            SetExpr::Query(inner) => self.query(inner),
            SetExpr::SetOperation {
                op: ast::SetOperator::Union,
                set_quantifier: ast::SetQuantifier::All,
                left,
                right,
            } => {
                let (l, r) = (self.set_expr(left)?, self.set_expr(right)?);
                let names = |s: &Stream| -> Vec<String> {
                    s.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect()
                };
                let (ln, rn) = (names(&l), names(&r));
                if ln.len() != rn.len() {
                    return Err(at_node(
                        body,
                        format!(
                            "UNION ALL of {} columns ({}) and {} ({})",
                            ln.len(),
                            ln.join(", "),
                            rn.len(),
                            rn.join(", ")
                        ),
                    ));
                }
                // by position, named as the left side
                let r = if ln == rn {
                    r
                } else {
                    let r = if r.time_column().is_some() {
                        r.without_event_time()
                    } else {
                        r
                    };
                    let renamed = ln.iter().zip(&rn);
                    r.select_exprs(
                        renamed
                            .map(|(to, from)| (to.clone(), weir_core::expr::col(from)))
                            .collect(),
                    )
                    .map_err(|e| engine(body, e))?
                };
                l.union(&r).map_err(|e| engine(body, e))
            }
            SetExpr::SetOperation {
                op, set_quantifier, ..
            } => Err(unsupported(body, format!("{op} {set_quantifier}").trim())),
            other => Err(unsupported(other, "this query form")),
        }
    }

    fn select(&self, s: &ast::Select) -> Result<Stream, SqlError> {
        match &s.distinct {
            None | Some(ast::Distinct::All) => {}
            Some(ast::Distinct::Distinct) => return self.distinct(s),
            Some(on) => return Err(unsupported(s, &on.to_string())),
        }
        // FROM a, b WHERE …: an inner join ON the WHERE (its key equalities
        // join, the rest filters the pairs)
        let comma_join;
        let (from, selection) = match (s.from.as_slice(), &s.selection) {
            // an inner join's WHERE is part of its condition (so the parts on
            // one side's columns filter that side before the join)
            ([only], Some(w))
                if only.joins.len() == 1
                    && matches!(
                        &only.joins[0].join_operator,
                        ast::JoinOperator::Join(ast::JoinConstraint::On(_))
                            | ast::JoinOperator::Inner(ast::JoinConstraint::On(_))
                    ) =>
            {
                let mut merged = only.clone();
                let j = &mut merged.joins[0];
                if let ast::JoinOperator::Join(ast::JoinConstraint::On(on))
                | ast::JoinOperator::Inner(ast::JoinConstraint::On(on)) = &mut j.join_operator
                {
                    *on = SqlExpr::BinaryOp {
                        left: Box::new(SqlExpr::Nested(Box::new(on.clone()))),
                        op: ast::BinaryOperator::And,
                        right: Box::new(SqlExpr::Nested(Box::new(w.clone()))),
                    };
                }
                comma_join = merged;
                (&comma_join, None)
            }
            ([only], w) => (only, w.as_ref()),
            ([a, b], Some(w)) if a.joins.is_empty() && b.joins.is_empty() => {
                comma_join = ast::TableWithJoins {
                    relation: a.relation.clone(),
                    joins: vec![ast::Join {
                        relation: b.relation.clone(),
                        global: false,
                        join_operator: ast::JoinOperator::Inner(ast::JoinConstraint::On(w.clone())),
                    }],
                };
                (&comma_join, None)
            }
            _ => {
                return Err(at_node(
                    s,
                    "a query reads one table, a JOIN … ON, or two tables joined by its WHERE \
                     (FROM a, b WHERE a.k = b.k)",
                ))
            }
        };
        // FROM (SELECT …, ROW_NUMBER() … AS rownum …) WHERE rownum <= N: the
        // subquery keeps N rows per partition
        // an aggregation reads its input's changelog as retractions
        // (and so does a ranking)
        let aggregates = matches!(&s.group_by, GroupByExpr::Expressions(g, _) if !g.is_empty());
        let ranks = crate::rank::row_number_item(&s.projection)?.is_some();
        let inner = Planner {
            top: crate::top_n::bound(from, selection, &s.projection),
            retract: self.retract || aggregates || ranks,
            aggregated: self.aggregated || aggregates,
            ..*self
        };
        let (input, window, scope) = inner.from(from)?;
        let input = match selection {
            Some(w) => {
                let e = scalar(w, &in_scope(&scope), self.functions)?;
                input.filter(e).map_err(|e| engine(w, e))?
            }
            None => input,
        };
        if let Some((i, name, spec)) = crate::rank::row_number_item(&s.projection)? {
            return self.ranked(s, input, window, &scope, i, &name, spec);
        }
        let overs = crate::over::over_items(&s.projection)?;
        if !overs.is_empty() {
            if window.is_some()
                || !matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
            {
                return Err(unsupported(
                    overs[0].node_ref(),
                    "an OVER aggregation with GROUP BY or a window table function in one SELECT",
                ));
            }
            let out = crate::over::over(&input, &scope, &overs, self.functions)?;
            let mut scope = scope.clone();
            for o in &overs {
                scope = scope.with_column(&o.name);
            }
            let items = select_items(&s.projection, &input, &scope, |i| {
                overs.iter().find(|o| o.index == i).map(|o| o.name.clone())
            })?;
            return self.project(&out, &scope, &items);
        }
        let group: Vec<&SqlExpr> = match &s.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if let Some(m) = modifiers.first() {
                    return Err(unsupported(s, &format!("GROUP BY … {m}")));
                }
                exprs.iter().collect()
            }
            GroupByExpr::All(_) => return Err(unsupported(s, "GROUP BY ALL")),
        };
        let mut projection = s.projection.clone();
        let mut having_expr = s.having.clone();
        // legacy group windows: GROUP BY TUMBLE(ts, size), HOP(ts, slide,
        // size), SESSION(ts, gap) are the window table functions, and
        // TUMBLE_START(…) / _END / _ROWTIME read the window's bounds
        let legacy_group;
        let (group, window) = match self.legacy_window(&group, &input, &scope)? {
            None => (group, window),
            Some((at, kind, w)) => {
                if window.is_some() {
                    return Err(at_node(
                        group[at],
                        "a group window over a window table function",
                    ));
                }
                let mut g: Vec<SqlExpr> = group
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != at)
                    .map(|(_, e)| (*e).clone())
                    .collect();
                g.push(SqlExpr::Identifier(ast::Ident::new("window_start")));
                g.push(SqlExpr::Identifier(ast::Ident::new("window_end")));
                legacy_group = g;
                let bound = |e: &mut SqlExpr| {
                    let SqlExpr::Function(f) = e else { return };
                    let name = f.name.to_string().to_ascii_lowercase();
                    let Some(part) = name.strip_prefix(&format!("{kind}_")) else {
                        return;
                    };
                    let end = SqlExpr::Identifier(ast::Ident::new("window_end"));
                    *e = match part {
                        "start" => SqlExpr::Identifier(ast::Ident::new("window_start")),
                        "end" => end,
                        "rowtime" => SqlExpr::Nested(Box::new(SqlExpr::BinaryOp {
                            left: Box::new(end),
                            op: ast::BinaryOperator::Minus,
                            right: Box::new(SqlExpr::value(ast::Value::Number("1".into(), false))),
                        })),
                        _ => return,
                    };
                };
                let _ = ast::visit_expressions_mut(&mut projection, |e| {
                    bound(e);
                    std::ops::ControlFlow::<()>::Continue(())
                });
                let _ = ast::visit_expressions_mut(&mut having_expr, |e| {
                    bound(e);
                    std::ops::ControlFlow::<()>::Continue(())
                });
                (legacy_group.iter().collect(), Some(w))
            }
        };
        // an aggregation over a changelog (its input planned as retractions):
        // each row counts +1 (insert) or -1 (delete), see `signed`
        let changelog = !group.is_empty() && input.schema().field_with_name(OP_COLUMN).is_ok();
        if changelog && window.is_some() {
            return Err(unsupported(
                s,
                "a window over a changelog (rows that update earlier rows, e.g. another \
                 GROUP BY's result)",
            ));
        }
        // GROUP BY an expression: computed as a column first; the select
        // list and HAVING read that column wherever they repeat the expression
        let mut input = input;
        let mut scope = scope;
        let mut computed: Vec<SqlExpr> = Vec::with_capacity(group.len());
        for (k, g) in group.iter().enumerate() {
            if matches!(g, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)) {
                computed.push((*g).clone());
                continue;
            }
            let name = format!("__group{k}");
            let x = scalar(g, &in_scope(&scope), self.functions)?;
            input = input.with_column(&name, x).map_err(|e| engine(*g, e))?;
            scope = scope.with_column(&name);
            let column = SqlExpr::Identifier(ast::Ident::new(&name));
            let same = |e: &SqlExpr| e == *g;
            let _ = ast::visit_expressions_mut(&mut projection, |e| {
                if same(e) {
                    *e = column.clone();
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            let _ = ast::visit_expressions_mut(&mut having_expr, |e| {
                if same(e) {
                    *e = column.clone();
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            computed.push(column);
        }
        let group: Vec<&SqlExpr> = computed.iter().collect();
        let mut aggs = Vec::new();
        if !group.is_empty() {
            if let Some(w) = projection
                .iter()
                .find(|it| matches!(it, SelectItem::Wildcard(_)))
            {
                return Err(unsupported(w, "this select item"));
            }
        }
        let mut items = Vec::new();
        for (name, e, aliased) in select_items(&projection, &input, &scope, |_| None)? {
            items.push((name, take_aggs(&e, &mut aggs, self.functions)?, aliased));
        }
        let having = having_expr
            .as_ref()
            .map(|h| take_aggs(h, &mut aggs, self.functions))
            .transpose()?;
        if group.is_empty() && aggs.is_empty() {
            if let Some(h) = &s.having {
                return Err(at_node(h, "HAVING needs GROUP BY"));
            }
            if let Some(w) = &window {
                // a window table function's rows, as Flink gives them: each
                // row once per window it falls in, with the window's columns
                let (rows, scope) = window_rows(
                    &input,
                    &scope,
                    w.window,
                    &from.relation,
                    "a SESSION's rows without GROUP BY",
                )?;
                let items = select_items(&projection, &rows, &scope, |_| None)?;
                return self.project(&rows, &scope, &items);
            }
            return self.project(&input, &scope, &items);
        }
        if group.is_empty() {
            return Err(at_node(
                s,
                "an aggregate over the whole stream needs GROUP BY (a key, or a window's \
                 window_start, window_end)",
            ));
        }
        // keys: every GROUP BY column but the window's bounds, which must both be there
        let mut keys = Vec::new();
        let mut bounds = 0;
        // GROUP BY both window bounds of a window aggregation's rows (even
        // renamed): an aggregation per window again (cascading windows)
        let attrs = scope.window().cloned().filter(|_| window.is_none());
        let mut attr_bounds: [Option<String>; 2] = [None, None];
        for g in &group {
            let (qualifier, name) = match g {
                SqlExpr::Identifier(id) => (None, id.value.clone()),
                SqlExpr::CompoundIdentifier(p) if p.len() >= 2 => (
                    Some(p[p.len() - 2].value.clone()),
                    p[p.len() - 1].value.clone(),
                ),
                other => {
                    return Err(unsupported(
                        *other,
                        "GROUP BY an expression (group by a column)",
                    ))
                }
            };
            let column = match &attrs {
                Some(_) => Some(scope.resolve(g, qualifier.as_deref(), &name)?),
                None => None,
            };
            match (&attrs, column) {
                (Some((s, _)), Some(c)) if c == *s => attr_bounds[0] = Some(c),
                (Some((_, e)), Some(c)) if c == *e => attr_bounds[1] = Some(c),
                (Some(_), Some(c)) => keys.push(c),
                _ if name == "window_start" || name == "window_end" => bounds += 1,
                _ => keys.push(scope.resolve(g, qualifier.as_deref(), &name)?),
            }
        }
        let cascaded = attr_bounds.iter().all(Option::is_some);
        if cascaded && changelog {
            return Err(unsupported(
                s,
                "a window over a changelog (rows that update earlier rows, e.g. another \
                 GROUP BY's result)",
            ));
        }
        if !cascaded {
            // one bound alone is an ordinary key
            keys.extend(attr_bounds.iter().flatten().cloned());
        }
        match (&window, bounds) {
            (Some(_), 2) | (None, 0) => {}
            (Some(_), _) => {
                return Err(at_node(
                    s,
                    "a window aggregation groups by window_start and window_end (and any keys)",
                ))
            }
            (None, _) => {
                return Err(at_node(
                    s,
                    "window_start and window_end come from a window table function (FROM \
                     TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)))",
                ))
            }
        }
        // aggregate arguments that are not plain columns become columns first
        let mut input = input;
        let mut weir_aggs = Vec::new();
        if changelog {
            let (signed, aggs) = self.signed(s, input, &scope, &aggs)?;
            input = signed;
            weir_aggs = aggs;
        }
        for (k, a) in aggs.iter().enumerate().filter(|_| !changelog) {
            let column = match &a.arg {
                None => None,
                Some(e @ SqlExpr::Identifier(id)) => Some(scope.resolve(e, None, &id.value)?),
                Some(e) => {
                    let name = format!("__arg{k}");
                    let x = scalar(e, &in_scope(&scope), self.functions)?;
                    input = input.with_column(&name, x).map_err(|err| engine(e, err))?;
                    Some(name)
                }
            };
            let agg = match (a.func.as_str(), column) {
                ("count", None) => Agg::count(),
                ("count", Some(c)) => Agg::count_column(c),
                ("count_distinct", Some(c)) => Agg::count_distinct(c),
                ("sum_distinct", Some(c)) => Agg::sum_distinct(c),
                ("avg_distinct", Some(c)) => Agg::avg_distinct(c),
                ("sum", Some(c)) => Agg::sum(c),
                ("avg", Some(c)) => Agg::avg(c),
                ("min", Some(c)) => Agg::min(c),
                ("max", Some(c)) => Agg::max(c),
                (f, Some(c)) if self.functions.aggregate(f).is_some() => Agg::udf(
                    std::sync::Arc::clone(self.functions.aggregate(f).expect("checked")),
                    c,
                ),
                (f, None) => {
                    return Err(at_node(
                        s,
                        format!(
                            "{}(*) is not an aggregate; {f}(column) is",
                            f.to_uppercase()
                        ),
                    ))
                }
                (f, Some(_)) => unreachable!("take_aggs admits only known aggregates, not {f}"),
            };
            weir_aggs.push(agg.alias(a.name.clone()));
        }
        // GROUP BY without aggregates over rows that are not a changelog:
        // the distinct groups, each emitted once when first seen (append-only)
        let distinct = weir_aggs.is_empty() && window.is_none() && !cascaded;
        if weir_aggs.is_empty() {
            // the operators need an aggregate; its column is hidden
            weir_aggs.push(Agg::count().alias("__rows"));
        }
        if cascaded {
            let [Some(start), Some(end)] = attr_bounds else {
                unreachable!("cascaded: both bounds grouped")
            };
            return self.per_window(s, &input, (&start, &end), &keys, weir_aggs, items, having);
        }
        // a window over all rows: the engine's unkeyed window (partial
        // results per subtask are not needed: one subtask gets every row
        // without a key to hash or encode); a running aggregate of all
        // rows: one key for everything
        let (input, key_columns) = if keys.is_empty() && window.is_none() {
            let all = input
                .with_column("__all", weir_core::expr::lit(0))
                .map_err(|e| engine(s, e))?;
            (all, vec!["__all".to_string()])
        } else {
            (input, keys.clone())
        };
        let keyed = || input.key_by(&key_columns).map_err(|e| engine(s, e));
        if let Some(TvfWindow {
            window: Window::Session { .. },
            partition: None,
        }) = &window
        {
            // sessions over all rows (one gap splits them for everyone):
            // weir keeps sessions per key, so only an unkeyed grouping fits
            if !keys.is_empty() {
                return Err(at_node(
                    s,
                    format!(
                        "SESSION without PARTITION BY, grouped by {}: sessions over all rows, \
                         then split by key, are not supported yet; for sessions per key write \
                         SESSION(TABLE t PARTITION BY {}, DESCRIPTOR(ts), INTERVAL gap)",
                        keys.join(", "),
                        keys.join(", ")
                    ),
                ));
            }
        }
        if let Some(TvfWindow {
            partition: Some(by),
            ..
        }) = &window
        {
            let mut want = by.clone();
            let mut have = keys.clone();
            want.sort();
            have.sort();
            if want != have {
                return Err(at_node(
                    s,
                    format!(
                        "SESSION is partitioned by {} but grouped by {}: group by window_start, window_end and the partition keys",
                        by.join(", "),
                        if keys.is_empty() { "no key".to_string() } else { keys.join(", ") }
                    ),
                ));
            }
        }
        let out = match &window {
            // the same window aggregation of the same rows is computed once
            // (Nexmark q5 counts bids per auction and window twice)
            Some(w) => {
                let digest = format!(
                    "{:?} {key_columns:?} {:?} {weir_aggs:?}",
                    input.id(),
                    w.window
                );
                let done = self.memo.aggregates.borrow().get(&digest).cloned();
                match done {
                    Some(out) => Ok(out),
                    None => if key_columns.is_empty() {
                        input.window_all(w.window)
                    } else {
                        keyed()?.window(w.window)
                    }
                    .aggregate(weir_aggs)
                    .inspect(|out| {
                        self.memo
                            .aggregates
                            .borrow_mut()
                            .insert(digest, out.clone());
                    }),
                }
            }
            // a running aggregate: a changelog (its `op` column says insert or
            // update; as retractions, insert or delete)
            None if distinct => keyed()?.aggregate(weir_aggs).and_then(|o| {
                // a group's first row is its only one
                without_op(
                    &o.filter(weir_core::expr::col(OP_COLUMN).eq(weir_core::expr::lit("insert")))?,
                )
            }),
            None if self.retracting(s) => keyed()?.aggregate_retracting(weir_aggs),
            None => keyed()?.aggregate(weir_aggs),
        }
        .map_err(|e| engine(s, e))?;
        let out = if changelog {
            self.unsigned(s, out, &aggs)?
        } else {
            out
        };
        let changelog = out.schema().fields().iter().any(|f| f.name() == OP_COLUMN);
        if changelog && !items.iter().any(|(n, _, _)| n == OP_COLUMN) {
            items.push((
                OP_COLUMN.to_string(),
                SqlExpr::Identifier(ast::Ident::new(OP_COLUMN)),
                false,
            ));
        }
        // a window aggregation's rows carry their window's bounds
        let scope = Scope::of(&out, None).with_window(
            window
                .is_some()
                .then(|| ("window_start".to_string(), "window_end".to_string())),
        );
        self.having_and_project(s, out, &scope, &items, having.as_ref())
    }

    /// `HAVING` (`having`, aggregates read as their columns) over an
    /// aggregation's rows `out`, then the select list `items`.
    fn having_and_project(
        &self,
        s: &ast::Select,
        out: Stream,
        scope: &Scope,
        items: &[(String, SqlExpr, bool)],
        having: Option<&SqlExpr>,
    ) -> Result<Stream, SqlError> {
        let out = match (having, &s.having) {
            (Some(h), Some(node)) => {
                let e = scalar(h, &in_scope(scope), self.functions)?;
                out.filter(e).map_err(|e| engine(node, e))?
            }
            _ => out,
        };
        self.project(&out, scope, items)
    }

    /// `GROUP BY keys…, start, end` where `start` and `end` are the window
    /// bounds of `input`'s rows (a window aggregation's output): `aggs` per
    /// key and window, each group emitted once the watermark passes its
    /// window's end (cascading windows). The bounds are read as
    /// `window_start`/`window_end` (renamed so if a projection renamed
    /// them), and the select list reaches them by their names as written.
    #[allow(clippy::too_many_arguments)]
    fn per_window(
        &self,
        s: &ast::Select,
        input: &Stream,
        (start, end): (&str, &str),
        keys: &[String],
        aggs: Vec<Agg>,
        items: Vec<(String, SqlExpr, bool)>,
        having: Option<SqlExpr>,
    ) -> Result<Stream, SqlError> {
        let renamed =
            crate::join::with_canonical_bounds(input, (start, end), "aggregating per window", s)?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        // an aggregate of a bound itself (COUNT(ws)) reads it under its new name
        let aggs: Vec<Agg> = aggs
            .into_iter()
            .map(|mut a| {
                a.column = a
                    .column
                    .map(|c| crate::join::canonical_bound(&c, (start, end)));
                a
            })
            .collect();
        let out = renamed
            .aggregate_per_window(&keys, aggs)
            .map_err(|e| engine(s, e))?;
        // the bounds' names as the input's rows had them reach the output's
        let mut columns: Vec<(Option<String>, String, String)> = out
            .schema()
            .fields()
            .iter()
            .map(|f| (None, f.name().clone(), f.name().clone()))
            .collect();
        for (from, to) in [(start, "window_start"), (end, "window_end")] {
            if from != to {
                columns.push((None, from.to_string(), to.to_string()));
            }
        }
        let scope = Scope::from_columns(columns)
            .with_window(Some(("window_start".to_string(), "window_end".to_string())));
        self.having_and_project(s, out, &scope, &items, having.as_ref())
    }

    /// Whether `s`'s running aggregate emits retractions rather than
    /// upserts: an enclosing aggregation reads it, or its HAVING filters it
    /// (an upsert HAVING dropped would leave the key's old row in place).
    fn retracting(&self, s: &ast::Select) -> bool {
        self.retract || s.having.is_some()
    }

    /// `SELECT DISTINCT items FROM …`: `GROUP BY` the items (rows that are
    /// not a changelog give each distinct row once, as they first appear).
    fn distinct(&self, s: &ast::Select) -> Result<Stream, SqlError> {
        if !matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty()) {
            return Err(unsupported(s, "SELECT DISTINCT with GROUP BY"));
        }
        let mut grouped = s.clone();
        grouped.distinct = None;
        let is_star = |i: &SelectItem| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        };
        if s.projection.iter().any(is_star) {
            // `*` is the columns the list gives without DISTINCT (planned on a
            // scratch job: it reads the inputs' schemas, not their rows)
            let scratch = Job::new();
            let memo = PlanMemo::default();
            let planner = Planner {
                job: &scratch,
                memo: &memo,
                ..*self
            };
            let columns = planner.select(&grouped)?.schema().clone();
            if columns.field_with_name("window_time").is_ok() {
                return Err(unsupported(
                    s,
                    "SELECT DISTINCT * over a window table function's rows (name the columns: \
                     SELECT DISTINCT window_start, window_end, …; window_time is not a group key)",
                ));
            }
            let names: Vec<&String> = columns
                .fields()
                .iter()
                .map(|f| f.name())
                .filter(|n| n.as_str() != OP_COLUMN)
                .collect();
            if !(s.projection.iter().all(is_star)
                && s.from.len() == 1
                && s.from[0].joins.is_empty())
            {
                // a join, or a star beside other items: the distinct rows of the
                // list as a subquery, SELECT cols FROM (SELECT <the list> …) GROUP BY cols
                let list: Vec<String> = names
                    .iter()
                    .map(|n| ast::Ident::with_quote('`', n.as_str()).to_string())
                    .collect();
                let list = list.join(", ");
                let text =
                    format!("SELECT {list} FROM ({grouped}) AS __weir_distinct GROUP BY {list}");
                let query = sqlparser::parser::Parser::new(&crate::FlinkDialect)
                    .try_with_sql(&text)
                    .and_then(|mut p| p.parse_query())
                    .map_err(|e| {
                        at_node(s, format!("SELECT DISTINCT * could not be planned: {e}"))
                    })?;
                return self.query(&query);
            }
            // one relation (a table or a subquery): its columns by name
            grouped.projection = names
                .iter()
                .map(|n| SelectItem::UnnamedExpr(SqlExpr::Identifier(ast::Ident::new(n.as_str()))))
                .collect();
        }
        let mut group = Vec::with_capacity(grouped.projection.len());
        for item in &grouped.projection {
            match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    group.push(e.clone())
                }
                other => return Err(unsupported(other, "this item in SELECT DISTINCT")),
            }
        }
        grouped.group_by = GroupByExpr::Expressions(group, Vec::new());
        self.select(&grouped)
    }

    /// The aggregates `aggs` over a retraction changelog, as sums of signed
    /// values (`__sign`: +1 for an insert, -1 for a delete; the `op` column
    /// is dropped): `COUNT` sums signs, `SUM` and `AVG` a signed value and
    /// the signed count of non-null values; [`unsigned`](Self::unsigned)
    /// turns them back into the aggregates. `__signed_rows` counts a
    /// group's live rows.
    fn signed(
        &self,
        s: &ast::Select,
        input: Stream,
        scope: &Scope,
        aggs: &[AggCall],
    ) -> Result<(Stream, Vec<Agg>), SqlError> {
        use weir_core::expr::{col, lit};
        let sign = Expr::Case {
            branches: vec![
                (col(OP_COLUMN).eq(lit("insert")), lit(1i64)),
                (col(OP_COLUMN).eq(lit("delete")), lit(-1i64)),
            ],
            otherwise: None,
        };
        let mut input = input.with_column(SIGN, sign).map_err(|e| engine(s, e))?;
        let mut out = vec![Agg::sum(SIGN).alias(SIGNED_ROWS)];
        for (k, a) in aggs.iter().enumerate() {
            let arg = match &a.arg {
                None => None,
                Some(e) => Some(scalar(e, &in_scope(scope), self.functions)?),
            };
            let refuse = || {
                Err(at_node(
                    s,
                    format!(
                        "{} over a changelog (rows that update earlier rows, e.g. another \
                         GROUP BY's result): the built-in aggregates take back what is \
                         deleted, and user aggregates that implement `retract` (their \
                         AggregateUdf::retracts says so); this one does not",
                        match a.func.strip_suffix("_distinct") {
                            Some(f) => format!("{}(DISTINCT …)", f.to_uppercase()),
                            None => format!("{}(…)", a.func.to_uppercase()),
                        }
                    ),
                ))
            };
            let counted = |x: Expr| Expr::Case {
                branches: vec![(x.is_null(), lit(0i64))],
                otherwise: Some(Box::new(col(SIGN))),
            };
            let mut add = |name: String, x: Expr| -> Result<(), SqlError> {
                input = input.with_column(&name, x).map_err(|e| engine(s, e))?;
                Ok(())
            };
            match (a.func.as_str(), arg) {
                ("count", None) => out.push(Agg::sum(SIGN).alias(a.name.clone())),
                ("count", Some(x)) => {
                    add(format!("__arg{k}_n"), counted(x))?;
                    out.push(Agg::sum(format!("__arg{k}_n")).alias(a.name.clone()));
                }
                ("sum" | "avg", Some(x)) => {
                    add(format!("__arg{k}_s"), x.clone().mul(col(SIGN)))?;
                    add(format!("__arg{k}_n"), counted(x))?;
                    out.push(Agg::sum(format!("__arg{k}_s")).alias(format!("{}_s", a.name)));
                    out.push(Agg::sum(format!("__arg{k}_n")).alias(format!("{}_n", a.name)));
                }
                // each group's multiset of values: a deleted value is taken
                // back, and the extreme is found again when it was the one
                // (the distinct aggregates: of the values with a count left);
                // a user aggregate that retracts takes rows back itself
                (f, Some(x)) => {
                    let v = format!("__arg{k}_v");
                    let agg = match f {
                        "min" => Agg::min(&v),
                        "max" => Agg::max(&v),
                        "count_distinct" => Agg::count_distinct(&v),
                        "sum_distinct" => Agg::sum_distinct(&v),
                        "avg_distinct" => Agg::avg_distinct(&v),
                        _ => match self.functions.aggregate(f).filter(|u| u.retracts()) {
                            Some(u) => Agg::udf(std::sync::Arc::clone(u), &v),
                            None => return refuse(),
                        },
                    };
                    add(v, x)?;
                    out.push(agg.retracting(SIGN).alias(a.name.clone()));
                }
                _ => return refuse(),
            }
        }
        let input = without_op(&input).map_err(|e| engine(s, e))?;
        Ok((input, out))
    }

    /// The aggregates of [`signed`](Self::signed) sums, and the groups left
    /// with no rows: dropped from retractions; as upserts, a group whose
    /// last row was deleted is a `delete` of its key.
    fn unsigned(&self, s: &ast::Select, out: Stream, aggs: &[AggCall]) -> Result<Stream, SqlError> {
        use arrow_schema::DataType;
        use weir_core::expr::{col, lit};
        let mut out = out;
        for a in aggs {
            let (sum, n) = (col(format!("{}_s", a.name)), col(format!("{}_n", a.name)));
            let value = match a.func.as_str() {
                "sum" => sum,
                "avg" => sum
                    .cast(DataType::Float64)
                    .div(n.clone().cast(DataType::Float64)),
                _ => continue,
            };
            let x = Expr::Case {
                branches: vec![(
                    n.eq(lit(0i64)),
                    Expr::Literal(weir_core::expr::ScalarValue::Null),
                )],
                otherwise: Some(Box::new(value)),
            };
            out = out.with_column(&a.name, x).map_err(|e| engine(s, e))?;
        }
        let empty = col(SIGNED_ROWS).eq(lit(0i64));
        if self.retracting(s) {
            return out.filter(empty.not()).map_err(|e| engine(s, e));
        }
        out.filter(empty.clone().and(col(OP_COLUMN).eq(lit("insert"))).not())
            .and_then(|o| {
                o.with_column(
                    OP_COLUMN,
                    Expr::Case {
                        branches: vec![(empty, lit("delete"))],
                        otherwise: Some(Box::new(col(OP_COLUMN))),
                    },
                )
            })
            .map_err(|e| engine(s, e))
    }

    /// The window bounds of `stream`'s rows, if a query of this script
    /// made it from a window aggregation (see [`WindowAttrs`]).
    fn window_of(&self, stream: &Stream) -> Option<(String, String)> {
        self.memo.windows.borrow().get(&stream.id()).cloned()
    }

    /// [`project`], remembering where the window bounds of `scope` (if
    /// any) went when the select list keeps both as plain columns.
    fn project(
        &self,
        stream: &Stream,
        scope: &Scope,
        items: &[(String, SqlExpr, bool)],
    ) -> Result<Stream, SqlError> {
        let out = project(stream, scope, items, self.functions)?;
        if let Some((s, e)) = scope.window() {
            let fields = out.schema().fields();
            let kept = |bound: &str| {
                items.iter().enumerate().find_map(|(i, (_, x, _))| {
                    let c = match x {
                        SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => {
                            scope.column_of(x, "").ok()?
                        }
                        _ => return None,
                    };
                    (c == bound).then(|| fields[i].name().clone())
                })
            };
            if let (Some(s), Some(e)) = (kept(s), kept(e)) {
                self.memo.windows.borrow_mut().insert(out.id(), (s, e));
            }
        }
        Ok(out)
    }

    /// A `FROM` item with its joins: the rows, the window of a window
    /// table function, and the names they are reached by.
    fn from(
        &self,
        from: &ast::TableWithJoins,
    ) -> Result<(Stream, Option<TvfWindow>, Scope), SqlError> {
        // a join reads a changelog under it as retractions
        let sides = Planner {
            retract: self.retract || !from.joins.is_empty(),
            ..*self
        };
        let (stream, window) = sides.relation(&from.relation)?;
        let scope =
            Scope::of(&stream, Some(&alias(&from.relation))).with_window(self.window_of(&stream));
        if from.joins.is_empty() {
            return Ok((stream, window, scope));
        }
        // a window join: two window table functions' raw rows, the same
        // TUMBLE, HOP or CUMULATE on both sides, joined within each window
        let raw = "a join of a window table function's raw rows with other rows (both sides \
                   the same TUMBLE, HOP or CUMULATE, ON … window_start and window_end; or \
                   aggregate it first)";
        let mut acc = (stream, scope);
        for (i, j) in from.joins.iter().enumerate() {
            // JOIN t FOR SYSTEM_TIME AS OF l.ts: a temporal join
            if let TableFactor::Table {
                name,
                version: Some(ast::TableVersion::ForSystemTimeAsOf(as_of)),
                args: None,
                ..
            } = &j.relation
            {
                if window.is_some() {
                    return Err(unsupported(&from.relation, raw));
                }
                let right = self.named(name, &j.relation)?;
                let rscope = Scope::of(&right, Some(&alias(&j.relation)));
                acc =
                    crate::temporal::temporal_join(acc, (right, rscope), j, as_of, self.functions)?;
                continue;
            }
            let (right, w) = sides.relation(&j.relation)?;
            let rscope =
                Scope::of(&right, Some(&alias(&j.relation))).with_window(self.window_of(&right));
            let windowed = match (&window, w) {
                (None, None) => None,
                (Some(l), Some(r))
                    if i == 0
                        && l.window == r.window
                        && l.partition.is_none()
                        && !matches!(l.window, Window::Session { .. }) =>
                {
                    Some(l.window)
                }
                (Some(_), _) if i > 0 => return Err(unsupported(&j.relation, raw)),
                (Some(_), _) => return Err(unsupported(&from.relation, raw)),
                (None, Some(_)) => return Err(unsupported(&j.relation, raw)),
            };
            acc = crate::join::join(acc, (right, rscope), j, windowed, self.functions)?;
        }
        Ok((acc.0, None, acc.1))
    }

    /// `SELECT …, ROW_NUMBER() OVER (…) AS name FROM …`: the rows ranked,
    /// then the select list with the ranking item read as column `name`.
    #[allow(clippy::too_many_arguments)]
    fn ranked(
        &self,
        s: &ast::Select,
        input: Stream,
        window: Option<TvfWindow>,
        scope: &Scope,
        item: usize,
        name: &str,
        spec: &ast::WindowSpec,
    ) -> Result<Stream, SqlError> {
        // a TUMBLE's rows: each gets its window's columns (as Flink's window
        // table function adds them), then ranks within it
        let (input, scope) = match window {
            None => (input, scope.clone()),
            Some(TvfWindow { window, .. }) => window_rows(
                &input,
                scope,
                window,
                &s.from[0].relation,
                "ROW_NUMBER() over the rows of a SESSION (rank a session aggregation's rows)",
            )?,
        };
        let scope = &scope;
        if !matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
            || s.having.is_some()
        {
            return Err(unsupported(
                s,
                "ROW_NUMBER() with GROUP BY in one SELECT (aggregate in a subquery, rank outside it)",
            ));
        }
        let ranked = crate::rank::rank(
            &input,
            scope,
            name,
            spec,
            // an enclosing aggregation, join or ranking reads retractions
            self.top.map(|t| crate::top_n::TopLimit {
                retract: self.retract,
                ..t
            }),
            &s.projection[item],
        )?;
        let scope = scope.with_column(name);
        let mut items = select_items(&s.projection, &input, &scope, |i| {
            (i == item).then(|| name.to_string())
        })?;
        // a ranked changelog's `op` is the ranking's own, last (`project`
        // appends it), not the input's in the place `*` found it
        if input.schema().field_with_name(OP_COLUMN).is_ok() {
            items.retain(|(n, e, _)| {
                !(n == OP_COLUMN && matches!(e, SqlExpr::Identifier(id) if id.value == OP_COLUMN))
            });
        }
        self.project(&ranked, &scope, &items)
    }

    /// The legacy group window among `group` (`TUMBLE(ts, size)`,
    /// `HOP(ts, slide, size)`, `SESSION(ts, gap)`): its index, its lower-case
    /// name and the window (a session's partition: the other GROUP BY columns).
    fn legacy_window(
        &self,
        group: &[&SqlExpr],
        input: &Stream,
        scope: &Scope,
    ) -> Result<Option<(usize, String, TvfWindow)>, SqlError> {
        let mut found = None;
        for (i, g) in group.iter().enumerate() {
            let SqlExpr::Function(f) = g else { continue };
            let kind = f.name.to_string().to_ascii_lowercase();
            if !["tumble", "hop", "session"].contains(&kind.as_str()) {
                continue;
            }
            if found.is_some() {
                return Err(at_node(*g, "one group window per GROUP BY"));
            }
            let args: Vec<&SqlExpr> = match &f.args {
                FunctionArguments::List(l) => l
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let want = if kind == "hop" { 3 } else { 2 };
            let column = match args.first() {
                Some(c @ SqlExpr::Identifier(id)) if args.len() == want => {
                    scope.resolve(c, None, &id.value)?
                }
                Some(c @ SqlExpr::CompoundIdentifier(p)) if args.len() == want && p.len() >= 2 => {
                    scope.resolve(c, Some(&p[p.len() - 2].value), &p[p.len() - 1].value)?
                }
                _ => {
                    return Err(at_node(
                        *g,
                        format!(
                            "{}(time_column, INTERVAL …{})",
                            kind.to_uppercase(),
                            if kind == "hop" { ", INTERVAL …" } else { "" }
                        ),
                    ))
                }
            };
            if input.time_column() != Some(column.as_str()) {
                return Err(at_node(
                    *g,
                    format!(
                        "{}({column}, …): `{column}` is not the rows' event time",
                        kind.to_uppercase()
                    ),
                ));
            }
            let ms = |e: &SqlExpr| -> Result<i64, SqlError> { Ok(interval(e)?.as_millis() as i64) };
            let (window, partition) = match kind.as_str() {
                "tumble" => (
                    Window::Tumbling {
                        size_ms: ms(args[1])?,
                        offset_ms: 0,
                    },
                    None,
                ),
                "hop" => {
                    let (slide, size) = (ms(args[1])?, ms(args[2])?);
                    if size % slide != 0 {
                        return Err(at_node(
                            args[2],
                            "HOP's size must be a whole number of slides",
                        ));
                    }
                    (
                        Window::Sliding {
                            size_ms: size,
                            slide_ms: slide,
                            offset_ms: 0,
                        },
                        None,
                    )
                }
                _ => {
                    let mut keys = Vec::new();
                    for (j, k) in group.iter().enumerate() {
                        if j == i {
                            continue;
                        }
                        match k {
                            SqlExpr::Identifier(id) => {
                                keys.push(scope.resolve(k, None, &id.value)?)
                            }
                            SqlExpr::CompoundIdentifier(p) if p.len() >= 2 => {
                                keys.push(scope.resolve(
                                    k,
                                    Some(&p[p.len() - 2].value),
                                    &p[p.len() - 1].value,
                                )?)
                            }
                            _ => {
                                return Err(at_node(
                                    *k,
                                    "a SESSION group window's other GROUP BY items are columns",
                                ))
                            }
                        }
                    }
                    (
                        Window::Session {
                            gap_ms: ms(args[1])?,
                        },
                        (!keys.is_empty()).then_some(keys),
                    )
                }
            };
            found = Some((i, kind, TvfWindow { window, partition }));
        }
        Ok(found)
    }

    /// A `FROM` item: its rows, and the window a window table function puts
    /// over them.
    fn relation(&self, r: &TableFactor) -> Result<(Stream, Option<TvfWindow>), SqlError> {
        match r {
            TableFactor::Table {
                version: Some(_), ..
            } => Err(unsupported(
                r,
                "FOR SYSTEM_TIME AS OF outside a join (a temporal join is \
                 `l JOIN t FOR SYSTEM_TIME AS OF l.ts ON l.k = t.k`)",
            )),
            TableFactor::Table {
                name, args: None, ..
            } => Ok((self.named(name, r)?, None)),
            TableFactor::Derived { subquery, .. } => Ok((self.query(subquery)?, None)),
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } if name.to_string().eq_ignore_ascii_case("TABLE") && args.args.len() == 1 => {
                match &args.args[0] {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Function(f))) => {
                        self.window_function(f)
                    }
                    other => Err(unsupported(other, "this table function")),
                }
            }
            TableFactor::TableFunction { expr, .. } => match expr {
                SqlExpr::Function(f) => self.window_function(f),
                other => Err(unsupported(other, "this table function")),
            },
            TableFactor::Function { name, .. } => {
                Err(unsupported(r, &format!("the table function {name}")))
            }
            other => Err(unsupported(other, "this FROM item")),
        }
    }

    fn named(&self, name: &ast::ObjectName, node: &impl Spanned) -> Result<Stream, SqlError> {
        let n = name.to_string();
        if let Some(t) = self.tables.get(&n) {
            if self.aggregated && t.columns.iter().any(|(c, _)| c == OP_COLUMN) {
                // weir's own changelogs are planned as retractions under an
                // aggregation; a table's `op` values are not known to be
                return Err(at_node(
                    node,
                    format!(
                        "table `{n}` has an `op` column, which an aggregation would read as a \
                         changelog: aggregating a table's own changelog is not supported (rename \
                         the column if it is not one)"
                    ),
                ));
            }
            if let Some(read) = self.memo.sources.borrow().get(&n) {
                return Ok(read.clone());
            }
            let read = t.source(self.job, self.base, self.generated, self.reads)?;
            self.memo.sources.borrow_mut().insert(n, read.clone());
            return Ok(read);
        }
        if let Some(v) = self.views.get(&n) {
            return self.query(v);
        }
        let known: Vec<&String> = self.tables.keys().chain(self.views.keys()).collect();
        Err(at_node(
            node,
            format!(
                "no table or view `{n}`{} (declared: {})",
                closest(&n, known.iter().map(|s| s.as_str()))
                    .map_or(String::new(), |c| format!("; did you mean `{c}`?")),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ))
    }

    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), size)` or
    /// `HOP(TABLE t, DESCRIPTOR(ts), slide, size)`.
    fn window_function(&self, f: &ast::Function) -> Result<(Stream, Option<TvfWindow>), SqlError> {
        let kind = f.name.to_string().to_ascii_uppercase();
        let FunctionArguments::List(list) = &f.args else {
            return Err(at_node(f, format!("{kind} needs arguments")));
        };
        let args: Vec<&SqlExpr> = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                other => Err(unsupported(other, "a named or wildcard window argument")),
            })
            .collect::<Result<_, _>>()?;
        let want = match kind.as_str() {
            "TUMBLE" => 3,
            "HOP" | "CUMULATE" => 4,
            "SESSION" => 3,
            _ => return Err(unsupported(f, &format!("the table function {kind}"))),
        };
        if args.len() != want {
            return Err(at_node(
                f,
                match kind.as_str() {
                    "TUMBLE" => "TUMBLE(TABLE t, DESCRIPTOR(time_column), INTERVAL size)",
                    "HOP" => "HOP(TABLE t, DESCRIPTOR(time_column), INTERVAL slide, INTERVAL size)",
                    "SESSION" => "SESSION(TABLE t PARTITION BY keys, DESCRIPTOR(time_column), INTERVAL gap)",
                    _ => "CUMULATE(TABLE t, DESCRIPTOR(time_column), INTERVAL step, INTERVAL max_size)",
                },
            ));
        }
        let mut partition: Option<Vec<String>> = None;
        let stream = match args[0] {
            SqlExpr::CompoundIdentifier(p) if p.len() >= 2 && p[0].value == TABLE_ARG => {
                if p.len() > 2 {
                    if kind != "SESSION" {
                        return Err(at_node(args[0], format!("{kind} takes no PARTITION BY")));
                    }
                    partition = Some(p[3..].iter().map(|i| i.value.clone()).collect());
                }
                let name = ast::ObjectName::from(vec![p[1].clone()]);
                self.named(&name, args[0])?
            }
            other => {
                return Err(at_node(
                    other,
                    format!("{kind}'s first argument is TABLE name"),
                ))
            }
        };
        let column = match args[1] {
            SqlExpr::Function(d) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
                match &d.args {
                    FunctionArguments::List(l) if l.args.len() == 1 => match &l.args[0] {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Identifier(id))) => {
                            id.value.clone()
                        }
                        other => return Err(at_node(other, "DESCRIPTOR names one column")),
                    },
                    _ => return Err(at_node(d, "DESCRIPTOR names one column")),
                }
            }
            other => {
                return Err(at_node(
                    other,
                    format!("{kind}'s second argument is DESCRIPTOR(time_column)"),
                ))
            }
        };
        match stream.time_column() {
            Some(t) if t == column => {}
            Some(t) => {
                return Err(at_node(
                    args[1],
                    format!("DESCRIPTOR({column}): the table's event time is `{t}` (its WATERMARK FOR column)"),
                ))
            }
            None => {
                return Err(at_node(
                    args[1],
                    format!("DESCRIPTOR({column}): the table has no event time; declare WATERMARK FOR {column} AS …"),
                ))
            }
        }
        let ms = |d: std::time::Duration| d.as_millis() as i64;
        let window = if kind == "TUMBLE" {
            Window::Tumbling {
                size_ms: ms(interval(args[2])?),
                offset_ms: 0,
            }
        } else if kind == "SESSION" {
            Window::Session {
                gap_ms: ms(interval(args[2])?),
            }
        } else {
            let (step, size) = (ms(interval(args[2])?), ms(interval(args[3])?));
            if size % step != 0 {
                let what = if kind == "HOP" { "slides" } else { "steps" };
                return Err(at_node(
                    args[3],
                    format!("{kind}'s size must be a whole number of {what}"),
                ));
            }
            if kind == "HOP" {
                Window::Sliding {
                    size_ms: size,
                    slide_ms: step,
                    offset_ms: 0,
                }
            } else {
                Window::Cumulative {
                    step_ms: step,
                    max_size_ms: size,
                    offset_ms: 0,
                }
            }
        };
        Ok((stream, Some(TvfWindow { window, partition })))
    }
}

/// Replaces aggregate calls in `e` by columns named for them (registering
/// each distinct call once in `aggs`).
fn take_aggs(
    e: &SqlExpr,
    aggs: &mut Vec<AggCall>,
    functions: &FunctionRegistry,
) -> Result<SqlExpr, SqlError> {
    let mut e = e.clone();
    replace_aggs(&mut e, aggs, functions)?;
    Ok(e)
}

fn replace_aggs(
    e: &mut SqlExpr,
    aggs: &mut Vec<AggCall>,
    functions: &FunctionRegistry,
) -> Result<(), SqlError> {
    match e {
        SqlExpr::Function(f) => {
            let func = f.name.to_string().to_ascii_lowercase();
            if !["count", "sum", "avg", "min", "max"].contains(&func.as_str())
                && functions.aggregate(&func).is_none()
            {
                // a scalar function (e.g. COALESCE): aggregates may be its arguments
                if let FunctionArguments::List(list) = &mut f.args {
                    for a in &mut list.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                            replace_aggs(x, aggs, functions)?;
                        }
                    }
                }
                return Ok(());
            }
            if f.over.is_some() {
                return Err(unsupported(&*f, "OVER (…) aggregation"));
            }
            let FunctionArguments::List(list) = &f.args else {
                return Err(at_node(&*f, format!("{func}() needs an argument")));
            };
            // COUNT/SUM/AVG(DISTINCT x) are weir's count_distinct, sum_distinct
            // and avg_distinct; MIN/MAX(DISTINCT x) are MIN/MAX(x)
            let distinct = matches!(
                list.duplicate_treatment,
                Some(ast::DuplicateTreatment::Distinct)
            );
            if distinct && !["count", "sum", "avg", "min", "max"].contains(&func.as_str()) {
                return Err(unsupported(
                    &*f,
                    &format!("{}(DISTINCT …)", func.to_uppercase()),
                ));
            }
            let arg = match list.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if func == "count" => None,
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] => {
                    // COUNT(SUM(x)): an aggregate inside an aggregate
                    let mut inner = Vec::new();
                    replace_aggs(&mut x.clone(), &mut inner, functions)?;
                    if !inner.is_empty() {
                        return Err(at_node(x, "an aggregate inside an aggregate"));
                    }
                    Some(x.clone())
                }
                _ => {
                    return Err(at_node(
                        &*f,
                        format!("{}() takes one argument", func.to_uppercase()),
                    ))
                }
            };
            // AGG(x) FILTER (WHERE c) is AGG(CASE WHEN c THEN x END): every
            // aggregate skips nulls, so rows failing `c` count for nothing
            let arg = match &f.filter {
                None => arg,
                Some(c) => {
                    let mut inner = Vec::new();
                    replace_aggs(&mut (**c).clone(), &mut inner, functions)?;
                    if !inner.is_empty() {
                        return Err(at_node(&**c, "an aggregate inside an aggregate's FILTER"));
                    }
                    let one = SqlExpr::value(ast::Value::Number("1".into(), false));
                    Some(SqlExpr::Case {
                        case_token: ast::helpers::attached_token::AttachedToken::empty(),
                        end_token: ast::helpers::attached_token::AttachedToken::empty(),
                        operand: None,
                        conditions: vec![ast::CaseWhen {
                            condition: (**c).clone(),
                            result: arg.unwrap_or(one),
                        }],
                        else_result: None,
                    })
                }
            };
            let func = match (func.as_str(), distinct) {
                ("count", true) if arg.is_none() => {
                    return Err(at_node(
                        &*f,
                        "COUNT(DISTINCT *) is not SQL; COUNT(DISTINCT column) is",
                    ))
                }
                ("count", true) => "count_distinct".to_string(),
                ("sum", true) => "sum_distinct".to_string(),
                ("avg", true) => "avg_distinct".to_string(),
                _ => func,
            };
            let existing = aggs.iter().find(|a| a.func == func && a.arg == arg);
            let name = match existing {
                Some(a) => a.name.clone(),
                None => {
                    let name = format!("__agg{}", aggs.len());
                    aggs.push(AggCall {
                        func,
                        arg,
                        name: name.clone(),
                    });
                    name
                }
            };
            *e = SqlExpr::Identifier(ast::Ident::new(name));
            Ok(())
        }
        SqlExpr::BinaryOp { left, right, .. } => {
            replace_aggs(left, aggs, functions)?;
            replace_aggs(right, aggs, functions)
        }
        SqlExpr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            for x in operand.iter_mut().chain(else_result.iter_mut()) {
                replace_aggs(x, aggs, functions)?;
            }
            for w in conditions {
                replace_aggs(&mut w.condition, aggs, functions)?;
                replace_aggs(&mut w.result, aggs, functions)?;
            }
            Ok(())
        }
        SqlExpr::Like { expr, pattern, .. } | SqlExpr::ILike { expr, pattern, .. } => {
            replace_aggs(expr, aggs, functions)?;
            replace_aggs(pattern, aggs, functions)
        }
        SqlExpr::Between {
            expr, low, high, ..
        } => {
            for x in [expr, low, high] {
                replace_aggs(x, aggs, functions)?;
            }
            Ok(())
        }
        SqlExpr::In {
            expr,
            target: ast::InTarget::List(list),
            ..
        } => {
            replace_aggs(expr, aggs, functions)?;
            for x in list {
                replace_aggs(x, aggs, functions)?;
            }
            Ok(())
        }
        SqlExpr::Position { expr, r#in } => {
            replace_aggs(expr, aggs, functions)?;
            replace_aggs(r#in, aggs, functions)
        }
        SqlExpr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            replace_aggs(expr, aggs, functions)?;
            for x in substring_from.iter_mut().chain(substring_for.iter_mut()) {
                replace_aggs(x, aggs, functions)?;
            }
            Ok(())
        }
        SqlExpr::UnaryOp { expr, .. }
        | SqlExpr::Nested(expr)
        | SqlExpr::Cast { expr, .. }
        | SqlExpr::IsNull(expr)
        | SqlExpr::IsNotNull(expr)
        | SqlExpr::Floor { expr, .. }
        | SqlExpr::Ceil { expr, .. }
        | SqlExpr::Extract { expr, .. }
        | SqlExpr::Trim { expr, .. } => replace_aggs(expr, aggs, functions),
        _ => Ok(()),
    }
}

/// `stream`'s columns but `op`.
fn without_op(stream: &Stream) -> weir_core::error::Result<Stream> {
    let keep: Vec<String> = stream
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != OP_COLUMN)
        .collect();
    stream.select(&keep)
}

/// A window table function's raw rows: each row once per window it falls
/// in, with `window_start`, `window_end`, `window_time` (`end - 1`), as
/// Flink's TUMBLE, HOP and CUMULATE give them, and `scope` with those
/// columns. A HOP of `k` slides or a CUMULATE of `k` steps is `k`
/// projections of the rows (the `j`-th window from the last one to start)
/// unioned. A SESSION (its windows depend on the other rows) is refused
/// as `session`.
///
/// ```text
///  HOP(slide, size = k·slide):  start_j = floor(t, slide) - j·slide,  j = 0..k
///  CUMULATE(step, max = k·step): start = floor(t, max), end_j = start + j·step,
///                                j = 1..=k, kept where end_j > t
/// ```
fn window_rows(
    input: &Stream,
    scope: &Scope,
    window: Window,
    node: &impl Spanned,
    session: &str,
) -> Result<(Stream, Scope), SqlError> {
    if matches!(window, Window::Session { .. }) {
        return Err(unsupported(node, session));
    }
    let rows = window_copies(input, window).map_err(|e| engine(node, e))?;
    let scope = scope
        .with_column("window_start")
        .with_column("window_end")
        .with_column("window_time");
    Ok((rows, scope))
}

/// The copies of [`window_rows`], unioned.
fn window_copies(input: &Stream, window: Window) -> weir_core::error::Result<Stream> {
    use weir_core::expr::{col, lit};
    let Some(t) = input.time_column().map(str::to_string) else {
        return Err(weir_core::error::Error::Plan(
            "a window's rows need their event time".into(),
        ));
    };
    for c in ["window_start", "window_end", "window_time"] {
        if input.schema().field_with_name(c).is_ok() {
            return Err(weir_core::error::Error::Plan(format!(
                "the rows already have a `{c}` column"
            )));
        }
    }
    let ms = col(&t).cast(arrow_schema::DataType::Int64);
    // floor to a multiple of `unit` (+ offset), before the epoch too
    let floor = |unit: i64, offset: i64| {
        let shifted = ms.clone().sub(lit(offset));
        ms.clone()
            .sub(shifted.modulo(lit(unit)).add(lit(unit)).modulo(lit(unit)))
    };
    // (start, end, keep) per copy of the rows
    let copies: Vec<(Expr, Expr, Option<Expr>)> = match window {
        Window::Tumbling { size_ms, offset_ms } => {
            let start = floor(size_ms, offset_ms);
            vec![(start.clone(), start.add(lit(size_ms)), None)]
        }
        Window::Sliding {
            size_ms,
            slide_ms,
            offset_ms,
        } => (0..size_ms / slide_ms)
            .map(|j| {
                let start = floor(slide_ms, offset_ms).sub(lit(j * slide_ms));
                (start.clone(), start.add(lit(size_ms)), None)
            })
            .collect(),
        Window::Cumulative {
            step_ms,
            max_size_ms,
            offset_ms,
        } => (1..=max_size_ms / step_ms)
            .map(|j| {
                let start = floor(max_size_ms, offset_ms);
                let end = start.clone().add(lit(j * step_ms));
                (start, end.clone(), Some(end.gt(ms.clone())))
            })
            .collect(),
        Window::Session { .. } => unreachable!("refused by window_rows"),
    };
    let columns: Vec<(String, Expr)> = input
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), col(f.name())))
        .collect();
    let mut out: Option<Stream> = None;
    for (start, end, keep) in copies {
        // one projection: the rows and their window's three columns
        let mut exprs = columns.clone();
        exprs.push(("window_start".into(), start));
        exprs.push(("window_end".into(), end.clone()));
        exprs.push(("window_time".into(), end.sub(lit(1))));
        let mut copy = input.without_event_time().select_exprs(exprs)?;
        if let Some(k) = keep {
            // `keep` reads the time column, still there under its name
            copy = copy.filter(k)?;
        }
        out = Some(match out {
            None => copy,
            Some(o) => o.union(&copy)?,
        });
    }
    Ok(out.expect("a window has at least one copy"))
}

/// A select list as `(name, expression, aliased)`, `*` expanded over
/// `input`'s columns; an item `replaced(i)` names is read as that column
/// (a ranking or OVER aggregate computed before the projection).
fn select_items(
    projection: &[SelectItem],
    input: &Stream,
    scope: &Scope,
    replaced: impl Fn(usize) -> Option<String>,
) -> Result<Vec<(String, SqlExpr, bool)>, SqlError> {
    let mut items = Vec::new();
    for (i, it) in projection.iter().enumerate() {
        if let Some(name) = replaced(i) {
            let id = ast::Ident::new(&name);
            items.push((name, SqlExpr::Identifier(id), true));
            continue;
        }
        match it {
            SelectItem::UnnamedExpr(e) => {
                let n = match e {
                    SqlExpr::Identifier(id) => id.value.clone(),
                    SqlExpr::CompoundIdentifier(p) => p.last().expect("parts").value.clone(),
                    _ => format!("EXPR${i}"),
                };
                items.push((n, e.clone(), false));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                items.push((alias.value.clone(), expr.clone(), true))
            }
            SelectItem::Wildcard(_) => {
                for f in input
                    .schema()
                    .fields()
                    .iter()
                    .filter(|f| !f.name().starts_with("__"))
                {
                    let id = ast::Ident::new(f.name());
                    items.push((f.name().clone(), SqlExpr::Identifier(id), false));
                }
            }
            SelectItem::QualifiedWildcard(
                ast::SelectItemQualifiedWildcardKind::ObjectName(q),
                _,
            ) => {
                let q = q.to_string();
                let columns = scope.qualified_by(&q);
                if columns.is_empty() {
                    return Err(at_node(it, format!("`{q}.*`: no table `{q}` in FROM")));
                }
                for name in columns {
                    let e = SqlExpr::CompoundIdentifier(vec![
                        ast::Ident::new(&q),
                        ast::Ident::new(&name),
                    ]);
                    items.push((name, e, false));
                }
            }
            other => return Err(unsupported(other, "this select item")),
        }
    }
    Ok(items)
}

/// The select list over `stream`: `(name, expression)` in order, names
/// resolved in `scope`. An aggregate's column is renamed to the item's name.
fn project(
    stream: &Stream,
    scope: &Scope,
    items: &[(String, SqlExpr, bool)],
    functions: &FunctionRegistry,
) -> Result<Stream, SqlError> {
    let resolve = in_scope(scope);
    let mut columns = Vec::with_capacity(items.len());
    for (name, e, explicit) in items {
        let taken = |n: &str| columns.iter().any(|(c, _): &(String, Expr)| c == n);
        let mut name = name.clone();
        if taken(&name) {
            if *explicit {
                return Err(at_node(
                    e,
                    format!("two result columns are named `{name}`: give one another alias"),
                ));
            }
            // as Flink: a second `avg_speed` becomes `avg_speed0`, then `avg_speed1`, …
            let base = name.clone();
            name = (0..)
                .map(|k| format!("{base}{k}"))
                .find(|n| !taken(n))
                .expect("a free name");
        }
        columns.push((name, scalar(e, &resolve, functions)?));
    }
    // a changelog stays one: its `op` column goes along
    if stream.schema().field_with_name(OP_COLUMN).is_ok()
        && !columns.iter().any(|(n, _)| n == OP_COLUMN)
    {
        columns.push((OP_COLUMN.to_string(), Expr::Column(OP_COLUMN.to_string())));
    }
    // a projection that does not keep the time column under its name ends
    // its role as event time (as Flink's time attributes)
    let kept = stream.time_column().is_some_and(|t| {
        columns
            .iter()
            .any(|(n, e)| n == t && *e == Expr::Column(t.to_string()))
    });
    let unkept;
    let stream = if kept || stream.time_column().is_none() {
        stream
    } else {
        unkept = stream.without_event_time();
        &unkept
    };
    // the stream's own columns, in order: no projection to run
    let fields = stream.schema().fields();
    let identity = columns.len() == fields.len()
        && columns
            .iter()
            .zip(fields.iter())
            .all(|((n, e), f)| n == f.name() && *e == Expr::Column(f.name().clone()));
    if identity {
        return Ok(stream.clone());
    }
    let node = items.first().map(|(_, e, _)| e.clone());
    stream.select_exprs(columns).map_err(|err| match &node {
        Some(n) => engine(n, err),
        None => SqlError::new(err.to_string()),
    })
}

/// Column resolution in `scope`, for [`scalar`].
pub(crate) fn in_scope(
    scope: &Scope,
) -> impl Fn(&SqlExpr, Option<&str>, &str) -> Result<String, SqlError> + '_ {
    move |node, qualifier, name| scope.resolve(node, qualifier, name)
}

/// The name a `FROM` item is qualified by: its alias, else its table name.
fn alias(r: &TableFactor) -> String {
    match r {
        TableFactor::Table { alias: Some(a), .. }
        | TableFactor::Derived { alias: Some(a), .. }
        | TableFactor::TableFunction { alias: Some(a), .. } => a.name.value.clone(),
        TableFactor::Table { name, .. } => name.to_string(),
        _ => String::new(),
    }
}

/// The name closest to `name` within an edit distance of a third of its
/// length (at least 2), if any.
pub(crate) fn closest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.len() / 3).max(2);
    names
        .map(|n| (edit_distance(&name.to_lowercase(), &n.to_lowercase()), n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_name_is_suggested_within_reason() {
        let names = ["vehicle_id", "event_time", "speed"];
        assert_eq!(closest("vehicle", names.iter().copied()), None);
        assert_eq!(
            closest("vehicle_di", names.iter().copied()),
            Some("vehicle_id")
        );
        assert_eq!(closest("sped", names.iter().copied()), Some("speed"));
        assert_eq!(closest("zzz", names.iter().copied()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
