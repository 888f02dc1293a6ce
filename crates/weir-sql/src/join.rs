//! Names in a `FROM` clause ([`Scope`]: which stream column `alias.name`
//! or `name` means) and joins: `L JOIN R ON …` planned onto the builder's
//! join, its kind read from the `ON` condition.
//!
//! ```text
//!  ON l.k = r.k AND l.window_start = r.window_start AND l.window_end = r.window_end
//!        ─► same-window join (both sides windowed aggregations)
//!  ON l.k = r.k AND l.ts BETWEEN r.ts - INTERVAL 'a' … AND r.ts + INTERVAL 'b' …
//!        ─► interval join (right.ts − a ≤ left.ts ≤ right.ts + b)
//!  ON l.k = r.k ─► regular join (state kept for every row; outer joins give a changelog;
//!        either side a changelog ─► super::join_changelog, a changelog of pairs)
//!  output columns: left's, then right's (renamed on a clash), then the window's, then op
//!  inner regular and interval joins of timed inputs: + __pair_time (the later
//!  row's time), the pairs' event time (so they can be ranked: Nexmark q9)
//! ```
//!
//! May use the builder, `weir-operators`' join spec, `super::expr`, `super::error`,
//! `super::join_changelog`.

use crate::error::{at_node, engine, unsupported, SqlError};
use crate::expr::{interval, scalar};
use crate::query::in_scope;
use sqlparser::ast::{
    self, BinaryOperator, Expr as SqlExpr, JoinConstraint, JoinOperator, Spanned,
};
use weir_engine::graph::Stream;
use weir_operators::join::{JoinSpec, JoinType};
use weir_operators::OP_COLUMN;

/// The columns a query's `FROM` makes visible.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// (qualifier, name as written, the stream's column).
    columns: Vec<(Option<String>, String, String)>,
    /// The stream columns that are the rows' window bounds (start, end):
    /// a window aggregation's output, kept through renames (Flink's window
    /// attributes). A `GROUP BY` of both aggregates per window again, and
    /// an `ON` equating both sides' makes a same-window join.
    window: Option<(String, String)>,
}

impl Scope {
    /// Every column of `stream`, qualified by `qualifier` (a table's name or
    /// alias; `None`: reachable by any qualifier, e.g. after an aggregation).
    pub fn of(stream: &Stream, qualifier: Option<&str>) -> Scope {
        Scope {
            columns: stream
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    (
                        qualifier.map(str::to_string),
                        f.name().clone(),
                        f.name().clone(),
                    )
                })
                .collect(),
            window: None,
        }
    }

    /// This scope with `window` as its rows' window bounds (stream columns).
    pub fn with_window(mut self, window: Option<(String, String)>) -> Scope {
        self.window = window;
        self
    }

    /// The stream columns that are the rows' window bounds, if any.
    pub fn window(&self) -> Option<&(String, String)> {
        self.window.as_ref()
    }

    /// The stream column `qualifier.name` (or `name`) means.
    /// The column `e` names (`c` or `q.c`); anything else is refused as
    /// `what` (e.g. "ranking by an expression").
    pub fn column_of(&self, e: &SqlExpr, what: &str) -> Result<String, SqlError> {
        match e {
            SqlExpr::Identifier(id) => self.resolve(e, None, &id.value),
            SqlExpr::CompoundIdentifier(p) if p.len() >= 2 => {
                self.resolve(e, Some(&p[p.len() - 2].value), &p[p.len() - 1].value)
            }
            other => Err(unsupported(other, what)),
        }
    }

    /// This scope plus the column `name` (reachable by any qualifier).
    pub fn with_column(&self, name: &str) -> Scope {
        let mut columns = self.columns.clone();
        columns.push((None, name.to_string(), name.to_string()));
        Scope {
            columns,
            window: self.window.clone(),
        }
    }

    pub fn resolve(
        &self,
        node: &SqlExpr,
        qualifier: Option<&str>,
        name: &str,
    ) -> Result<String, SqlError> {
        let hits: Vec<&(Option<String>, String, String)> = self
            .columns
            .iter()
            .filter(|(q, n, _)| {
                n == name && (qualifier.is_none() || q.is_none() || q.as_deref() == qualifier)
            })
            .collect();
        // both sides' window_start of a window join are one output column
        if hits.len() > 1 && hits.iter().all(|h| h.2 == hits[0].2) {
            return Ok(hits[0].2.clone());
        }
        match hits.as_slice() {
            [one] => Ok(one.2.clone()),
            [] => {
                let visible: Vec<String> = self
                    .columns
                    .iter()
                    .filter(|(_, n, _)| !n.starts_with("__"))
                    .map(|(q, n, _)| match q {
                        Some(q) if self.qualified() => format!("{q}.{n}"),
                        _ => n.clone(),
                    })
                    .collect();
                let hint =
                    crate::query::closest(name, self.columns.iter().map(|(_, n, _)| n.as_str()))
                        .map_or(String::new(), |c| format!("; did you mean `{c}`?"));
                let shown = match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None if name.starts_with("__agg") => "an aggregate".to_string(),
                    None => name.to_string(),
                };
                Err(at_node(
                    node,
                    format!(
                        "unknown column `{shown}`{hint} (available: {})",
                        visible
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
            many => Err(at_node(
                node,
                format!(
                    "`{name}` is ambiguous: qualify it ({})",
                    many.iter()
                        .filter_map(|(q, n, _)| q.as_ref().map(|q| format!("`{q}.{n}`")))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            )),
        }
    }

    /// A scope of `(qualifier, name as written, stream column)` entries.
    pub(crate) fn from_columns(columns: Vec<(Option<String>, String, String)>) -> Scope {
        Scope {
            columns,
            window: None,
        }
    }

    /// This scope plus `window_start`, `window_end` and `window_time`
    /// under its qualifier (a window table function's raw rows, before a
    /// window join gives them those columns).
    pub fn with_window_columns(&self) -> Scope {
        let q = self.columns.first().and_then(|c| c.0.clone());
        let mut columns = self.columns.clone();
        for c in ["window_start", "window_end", "window_time"] {
            columns.push((q.clone(), c.to_string(), c.to_string()));
        }
        Scope {
            columns,
            window: None,
        }
    }

    /// The names, as written, of the columns qualified by `qualifier`
    /// (`q.*`), in order; hidden (`__`) columns left out.
    pub fn qualified_by(&self, qualifier: &str) -> Vec<String> {
        self.columns
            .iter()
            .filter(|(q, n, _)| q.as_deref() == Some(qualifier) && !n.starts_with("__"))
            .map(|(_, n, _)| n.clone())
            .collect()
    }

    fn qualified(&self) -> bool {
        self.columns.iter().any(|(q, _, _)| q.is_some())
    }

    /// The columns of `side` (a scope over a join input) in the join's
    /// output, whose first columns are `side`'s, from position `from`,
    /// skipping `skipped` (a same-window join's window columns).
    pub(crate) fn moved(
        &self,
        out: &Stream,
        from: usize,
        skipped: &[&str],
    ) -> (Vec<(Option<String>, String, String)>, usize) {
        let fields = out.schema().fields();
        let mut pos = from;
        let mut moved = Vec::new();
        for (q, n, c) in &self.columns {
            if skipped.contains(&c.as_str()) {
                moved.push((q.clone(), n.clone(), c.clone()));
                continue;
            }
            moved.push((q.clone(), n.clone(), fields[pos].name().clone()));
            pos += 1;
        }
        (moved, pos)
    }
}

/// `left JOIN right ON …`: the joined stream and its scope.
///
/// `raw_window`: both sides are a window table function's raw rows (that
/// window): a window join (`ON` equates their `window_start` and
/// `window_end`), whose output gets the window's columns.
pub(crate) fn join(
    left: (Stream, Scope),
    right: (Stream, Scope),
    j: &ast::Join,
    raw_window: Option<weir_core::time::Window>,
    functions: &weir_functions::FunctionRegistry,
) -> Result<(Stream, Scope), SqlError> {
    // the window columns a raw-row window join gives, reachable by either
    // side's name (one output column each)
    let (left, right) = match raw_window {
        Some(_) => (
            (left.0, left.1.with_window_columns()),
            (right.0, right.1.with_window_columns()),
        ),
        None => (left, right),
    };
    let (join_type, constraint) = match &j.join_operator {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinType::Inner, c),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinType::Left, c),
        JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinType::Right, c),
        JoinOperator::FullOuter(c) => (JoinType::Full, c),
        _ => return Err(unsupported(&j.relation, "this kind of join")),
    };
    let JoinConstraint::On(on) = constraint else {
        return Err(unsupported(
            &j.relation,
            "a join without ON (USING, NATURAL, CROSS)",
        ));
    };
    // either side a changelog (rows that update earlier rows): a regular
    // join of its live rows (`super::join_changelog`)
    let changelog = [&left.0, &right.0]
        .iter()
        .any(|s| s.schema().field_with_name(OP_COLUMN).is_ok());
    let (ls, rs) = (&left.1, &right.1);
    let mut conjuncts = Vec::new();
    split_and(on, &mut conjuncts);
    let (mut lk, mut rk) = (Vec::new(), Vec::new());
    let mut window_bounds = 0u32;
    // the equalities of window bounds (keys again unless both bounds are)
    let mut bound_pairs: Vec<(String, String)> = Vec::new();
    let mut interval_ms: Option<(i64, i64)> = None;
    // an inner join's other conditions filter its pairs
    let inner = join_type == JoinType::Inner;
    let mut residual: Vec<&SqlExpr> = Vec::new();
    for c in conjuncts {
        match c {
            SqlExpr::BinaryOp {
                left: a,
                op: BinaryOperator::Eq,
                right: b,
            } => {
                let Some((l, r)) = sides(a, b, ls, rs) else {
                    if inner {
                        residual.push(c);
                        continue;
                    }
                    return Err(at_node(
                        c,
                        "an outer join's equality compares a column of each side (l.k = r.k)",
                    ));
                };
                if let Some(b) = bound_of(ls, &l).filter(|&b| Some(b) == bound_of(rs, &r)) {
                    window_bounds |= 1 << b;
                    bound_pairs.push((l, r));
                } else {
                    lk.push(l);
                    rk.push(r);
                }
            }
            SqlExpr::Between {
                expr,
                negated: false,
                low,
                high,
            } if interval_ms.is_none() => {
                match time_range(c, expr, low, high, &left.0, &right.0, ls, rs) {
                    Ok(range) => interval_ms = Some(range),
                    Err(_) if inner => residual.push(c),
                    Err(e) => return Err(e),
                }
            }
            other if inner => residual.push(other),
            other => {
                return Err(unsupported(
                    other,
                    "this outer join condition (equalities, one BETWEEN on the time columns)",
                ))
            }
        }
    }
    // a same-window join of window aggregations: their bounds under the
    // names the join reads (a projection may have renamed them), and the
    // window alone may be the key (rows of one window meet in one subtask)
    let mut window_bounds = window_bounds.count_ones();
    if window_bounds == 1 && raw_window.is_none() {
        // one bound alone is an ordinary key (a regular join), as in GROUP BY
        for (l, r) in bound_pairs {
            lk.push(l);
            rk.push(r);
        }
        window_bounds = 0;
    }
    let (mut left, mut right) = (left, right);
    if window_bounds == 2 && raw_window.is_none() {
        for side in [&mut left, &mut right] {
            *side = canonical_window(side, on)?;
        }
        if lk.is_empty() {
            lk.push("window_start".to_string());
            rk.push("window_start".to_string());
        }
    }
    if lk.is_empty() {
        return Err(at_node(
            on,
            "a join needs at least one key equality (l.k = r.k)",
        ));
    }
    // an inner join's condition on one side's columns only filters that
    // side before the join (fewer rows to hold and match)
    let mut after = Vec::new();
    for c in residual {
        if only_reads(c, &left.1, &right.1) {
            let e = scalar(c, &in_scope(&left.1), functions)?;
            left.0 = left.0.filter(e).map_err(|e| engine(c, e))?;
        } else if only_reads(c, &right.1, &left.1) {
            let e = scalar(c, &in_scope(&right.1), functions)?;
            right.0 = right.0.filter(e).map_err(|e| engine(c, e))?;
        } else {
            after.push(c);
        }
    }
    let residual = after;
    let (ls, rs) = (&left.1, &right.1);
    let spec = match (window_bounds, interval_ms) {
        (2, None) => match raw_window {
            Some(w) => JoinSpec::window(w),
            None => JoinSpec::same_window(),
        },
        (_, _) if raw_window.is_some() => {
            return Err(at_node(
                on,
                "a window join of window table functions equates both window_start and \
                 window_end (l.window_start = r.window_start AND l.window_end = r.window_end)",
            ))
        }
        (0, Some((lower, upper))) => JoinSpec::interval_ms(lower, upper),
        (0, None) => JoinSpec::regular(),
        (2, Some(_)) => return Err(at_node(on, "a join is a window join or an interval join, not both")),
        _ => {
            return Err(at_node(
                on,
                "a window join equates both window_start and window_end (l.window_start = r.window_start AND l.window_end = r.window_end)",
            ))
        }
    };
    if changelog && !(window_bounds == 0 && interval_ms.is_none() && raw_window.is_none()) {
        return Err(unsupported(
            on,
            "a window or interval join over a changelog (rows that update earlier rows, e.g. a \
             GROUP BY's result): join it on its keys alone (a regular join)",
        ));
    }
    let stamped = window_bounds == 0 && inner && raw_window.is_none() && !changelog;
    // the time columns' places in the output (left's columns, then right's)
    let width = left.0.schema().fields().len();
    let times = (
        left.0
            .time_column()
            .and_then(|t| left.0.schema().index_of(t).ok()),
        right
            .0
            .time_column()
            .and_then(|t| right.0.schema().index_of(t).ok())
            .map(|i| width + i),
    );
    let out = if changelog {
        crate::join_changelog::changelog_join(&left.0, &right.0, &lk, &rk, join_type, on)?
    } else {
        let spec = spec.on(lk, rk).with_type(join_type);
        left.0.join(&right.0, spec).map_err(|e| engine(on, e))?
    };
    // a changelog's `op` is not one of its side's columns in the output
    let unop = |s: &Scope| Scope {
        columns: s
            .columns
            .iter()
            .filter(|(_, _, c)| !(changelog && c == OP_COLUMN))
            .cloned()
            .collect(),
        window: s.window.clone(),
    };
    let (ls, rs) = (&unop(ls), &unop(rs));
    // a raw-row window join adds window_time as the window table function does
    let out = match raw_window {
        Some(_) => {
            use weir_core::expr::{col, lit};
            out.with_column("window_time", col("window_end").sub(lit(1)))
                .map_err(|e| engine(on, e))?
        }
        None => out,
    };
    let skipped: &[&str] = match (window_bounds, raw_window) {
        (2, Some(_)) => &["window_start", "window_end", "window_time"],
        (2, None) => &["window_start", "window_end"],
        _ => &[],
    };
    let (mut columns, next) = ls.moved(&out, 0, skipped);
    let (right_cols, _) = rs.moved(&out, next, skipped);
    columns.extend(right_cols);
    // the window columns and a changelog's op, unqualified
    for f in out.schema().fields() {
        if !columns.iter().any(|(_, _, c)| c == f.name()) {
            columns.push((None, f.name().clone(), f.name().clone()));
        }
    }
    // a same-window join's rows are still per window (they can be
    // aggregated per window again, or joined on it)
    let window = (window_bounds == 2 && raw_window.is_none())
        .then(|| ("window_start".to_string(), "window_end".to_string()));
    let scope = Scope { columns, window };
    let mut out = out;
    if let (true, (Some(lt), Some(rt))) = (stamped, times) {
        out = pair_time(&out, lt, rt).map_err(|e| engine(on, e))?;
    }
    for c in residual {
        let e = scalar(c, &in_scope(&scope), functions)?;
        out = out.filter(e).map_err(|e| engine(c, e))?;
    }
    Ok((out, scope))
}

/// Which window bound the stream column `column` of `scope` is: 0 the
/// start, 1 the end. The scope's window attributes say, or the names
/// `window_start`/`window_end` (a window table function's rows, or an
/// aggregation's output read under those names).
fn bound_of(scope: &Scope, column: &str) -> Option<u32> {
    match &scope.window {
        Some((s, _)) if s == column => Some(0),
        Some((_, e)) if e == column => Some(1),
        _ => match column {
            "window_start" => Some(0),
            "window_end" => Some(1),
            _ => None,
        },
    }
}

/// `side` with its window bounds (its scope's window attributes) renamed
/// `window_start` and `window_end`, the columns a same-window join reads;
/// the names as written still reach them.
fn canonical_window(side: &(Stream, Scope), on: &SqlExpr) -> Result<(Stream, Scope), SqlError> {
    let Some((s, e)) = side.1.window.clone() else {
        return Ok(side.clone());
    };
    let stream = with_canonical_bounds(&side.0, (&s, &e), "a same-window join", on)?;
    let columns = side
        .1
        .columns
        .iter()
        .map(|(q, n, c)| (q.clone(), n.clone(), canonical_bound(c, (&s, &e))))
        .collect();
    let window = Some(("window_start".to_string(), "window_end".to_string()));
    Ok((stream, Scope { columns, window }))
}

/// `column` as it is named once the window bounds `(start, end)` are
/// renamed `window_start` and `window_end`.
pub(crate) fn canonical_bound(column: &str, (start, end): (&str, &str)) -> String {
    match column {
        c if c == start => "window_start".into(),
        c if c == end => "window_end".into(),
        c => c.to_string(),
    }
}

/// `stream` with its window bounds `(start, end)` renamed `window_start`
/// and `window_end` (the names the window operators read), for `what`
/// (named in the error when a column already has one of those names).
pub(crate) fn with_canonical_bounds(
    stream: &Stream,
    (start, end): (&str, &str),
    what: &str,
    node: &impl Spanned,
) -> Result<Stream, SqlError> {
    if start == "window_start" && end == "window_end" {
        return Ok(stream.clone());
    }
    let mut exprs = Vec::new();
    for f in stream.schema().fields() {
        let to = canonical_bound(f.name(), (start, end));
        if to != *f.name() && stream.schema().field_with_name(&to).is_ok() {
            return Err(at_node(
                node,
                format!(
                    "{what} reads the window bounds `{start}` and `{end}` as window_start and \
                     window_end, but the rows also have a `{to}` column: drop or rename it"
                ),
            ));
        }
        exprs.push((to, weir_core::expr::col(f.name())));
    }
    stream.select_exprs(exprs).map_err(|err| engine(node, err))
}

/// The column an inner regular or interval join's pairs carry as their event time:
/// the later of the two rows' times. No pair is behind the watermark the
/// join forwards (the minimum of its inputs'): a pair is made when its
/// later row arrives, and that row was ahead of its own input's watermark.
/// So the rows of a regular join can be ranked or windowed by event time.
const PAIR_TIME: &str = "__pair_time";

fn pair_time(out: &Stream, left: usize, right: usize) -> weir_core::error::Result<Stream> {
    use weir_core::expr::{col, Expr};
    let schema = out.schema();
    let ms = |i: usize| col(schema.field(i).name()).cast(arrow_schema::DataType::Int64);
    let later = Expr::Case {
        branches: vec![(ms(left).gt_eq(ms(right)), ms(left))],
        otherwise: Some(Box::new(ms(right))),
    };
    out.with_column(PAIR_TIME, later)?
        .with_derived_event_time(PAIR_TIME)
}

/// True if every column `c` reads resolves in `this` and none in `other`.
fn only_reads(c: &SqlExpr, this: &Scope, other: &Scope) -> bool {
    let mut ok = true;
    let mut any = false;
    let _ = ast::visit_expressions(c, |e| {
        let (q, n) = match e {
            SqlExpr::Identifier(id) => (None, id.value.as_str()),
            SqlExpr::CompoundIdentifier(p) if p.len() >= 2 => (
                Some(p[p.len() - 2].value.as_str()),
                p[p.len() - 1].value.as_str(),
            ),
            _ => return std::ops::ControlFlow::<()>::Continue(()),
        };
        any = true;
        ok &= this.resolve(e, q, n).is_ok() && other.resolve(e, q, n).is_err();
        std::ops::ControlFlow::Continue(())
    });
    ok && any
}

/// The conjuncts of `e` (`a AND (b AND c)` gives `a`, `b`, `c`).
pub(crate) fn split_and<'a>(e: &'a SqlExpr, out: &mut Vec<&'a SqlExpr>) {
    match e {
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        SqlExpr::Nested(inner) => split_and(inner, out),
        other => out.push(other),
    }
}

/// A column reference's (qualifier, name).
fn reference(e: &SqlExpr) -> Option<(Option<&str>, &str)> {
    match e {
        SqlExpr::Identifier(id) => Some((None, id.value.as_str())),
        SqlExpr::CompoundIdentifier(p) if p.len() >= 2 => Some((
            Some(p[p.len() - 2].value.as_str()),
            p[p.len() - 1].value.as_str(),
        )),
        _ => None,
    }
}

/// The (left column, right column) of `a = b`, in whichever order written,
/// if it compares a column of each side.
pub(crate) fn sides(a: &SqlExpr, b: &SqlExpr, ls: &Scope, rs: &Scope) -> Option<(String, String)> {
    let (ra, rb) = (reference(a)?, reference(b)?);
    let on = |s: &Scope, e: &SqlExpr, r: (Option<&str>, &str)| s.resolve(e, r.0, r.1).ok();
    match (on(ls, a, ra), on(rs, b, rb)) {
        (Some(l), Some(r)) => Some((l, r)),
        _ => Some((on(ls, b, rb)?, on(rs, a, ra)?)),
    }
}

/// `l.ts BETWEEN r.ts [± INTERVAL] AND r.ts [± INTERVAL]` (or with the
/// sides swapped) as the bounds of left.ts − right.ts, in milliseconds.
#[allow(clippy::too_many_arguments)]
fn time_range(
    node: &SqlExpr,
    expr: &SqlExpr,
    low: &SqlExpr,
    high: &SqlExpr,
    left: &Stream,
    right: &Stream,
    ls: &Scope,
    rs: &Scope,
) -> Result<(i64, i64), SqlError> {
    let bad = || {
        at_node(
            node,
            "an interval join's range is l.ts BETWEEN r.ts - INTERVAL 'a' … AND r.ts + INTERVAL 'b' …, on the sides' event-time columns",
        )
    };
    let (lt, rt) = (
        left.time_column().ok_or_else(bad)?,
        right.time_column().ok_or_else(bad)?,
    );
    let is_time = |e: &SqlExpr, s: &Scope, t: &str| {
        reference(e).is_some_and(|r| s.resolve(e, r.0, r.1).ok().as_deref() == Some(t))
    };
    // bound = column ± interval: (is it that side's time, offset ms)
    let bound = |e: &SqlExpr, s: &Scope, t: &str| -> Option<i64> {
        match e {
            x if is_time(x, s, t) => Some(0),
            SqlExpr::BinaryOp {
                left: c,
                op,
                right: i,
            } if is_time(c, s, t) => {
                let ms = interval(i).ok()?.as_millis() as i64;
                match op {
                    BinaryOperator::Plus => Some(ms),
                    BinaryOperator::Minus => Some(-ms),
                    _ => None,
                }
            }
            SqlExpr::Nested(inner) => {
                if is_time(inner, s, t) {
                    Some(0)
                } else {
                    None
                }
            }
            _ => None,
        }
    };
    if is_time(expr, ls, lt) {
        let (lo, hi) = (
            bound(low, rs, rt).ok_or_else(bad)?,
            bound(high, rs, rt).ok_or_else(bad)?,
        );
        return Ok((lo, hi));
    }
    if is_time(expr, rs, rt) {
        // r.ts ∈ [l.ts + lo, l.ts + hi]  ⟺  l.ts − r.ts ∈ [−hi, −lo]
        let (lo, hi) = (
            bound(low, ls, lt).ok_or_else(bad)?,
            bound(high, ls, lt).ok_or_else(bad)?,
        );
        return Ok((-hi, -lo));
    }
    Err(bad())
}
