//! Top-N and deduplication over a stream (Flink's Top-N): `ROW_NUMBER()
//! OVER (PARTITION BY k ORDER BY …)` over rows that are not a window's,
//! with `WHERE rownum <= N` in the enclosing query, emitted as a changelog.
//! Rows with an event time are ranked here in event-time order; a
//! changelog, or rows without an event time, go to `super::top_n_changelog`
//! (ranked as they arrive), which shares [`row_layout`] and [`changes`].
//!
//! Owns [`TopLimit`] (the bound found around the ranking), [`top_n`]
//! (planning), [`order_limit`] (`ORDER BY … LIMIT n`: the same over one
//! constant partition) and [`TopN`], the keyed process function that keeps each
//! partition's best N rows. May use `super::rank`'s order keys,
//! `super::error`, the engine's builder and the arrow crates.
//!
//! ```text
//!  rows (append-only, with event time) ─► key_by(PARTITION BY …)
//!   ─► process(TopN): per key, the rows of one event time once the watermark
//!      passes it (ties in content order: the same sequence in every mode)
//!        each row: encoded (arrow row format: ORDER BY columns with their
//!        direction, then every other column) ─► binary search in the key's
//!        best-first list ─► inserted if its place is < N; the list cut at N
//!      then the list before vs after the call:
//!        rownum kept (SELECT * or rownum selected): upserts keyed by
//!           (partition, rownum): a place filled the first time → insert,
//!           a place whose row changed → update
//!        rownum dropped: rows that left → delete (that exact row),
//!           rows that came → insert
//!   ─► rows | rownum | op ─► the select list ─► WHERE rownum <= N (kept: a no-op)
//! ```
//! State per key is at most N encoded rows; it spills and is checkpointed
//! with the process operator's keyed state. Rows are ranked in event-time
//! order (Flink ranks in arrival order), so pipelined, batch and replayed
//! runs emit the same changelog.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Schema, SortOptions};
use serde::{Deserialize, Serialize};
use sqlparser::ast;
use weir_core::error::{Error, Result};
use weir_engine::graph::Stream;
use weir_operators::{KeyRow, KeyedProcessFunction, ProcessContext, OP_COLUMN};

use crate::error::{at_node, engine, unsupported, SqlError};
use crate::rank::OrderKey;

/// The bound the enclosing query puts on a ranking: `WHERE rownum <= n`
/// (or `< n + 1`, `= 1`), and whether it reads the rank column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopLimit {
    /// Rows kept per partition (at least 1).
    pub n: usize,
    /// The enclosing select list reads the rank (`*` or by name).
    pub keep_rownum: bool,
    /// The result is read as retractions (an enclosing aggregation, join or
    /// ranking): whole rows inserted and deleted, never updated.
    pub retract: bool,
}

/// How a ranking's changes are emitted (see [`changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emit {
    /// Upserts keyed by (partition, rank).
    Upserts,
    /// Retractions of (row, rank): a place whose row changed deletes the
    /// old (row, rank) and inserts the new one.
    PlaceRetractions,
    /// Retractions of rows without their rank.
    Rows,
}

impl TopLimit {
    /// How this ranking's changes are emitted.
    pub(crate) fn emit(&self) -> Emit {
        match (self.keep_rownum, self.retract) {
            (true, false) => Emit::Upserts,
            (true, true) => Emit::PlaceRetractions,
            (false, _) => Emit::Rows,
        }
    }
}

/// The bound `WHERE rownum <= N` of an enclosing query puts on the
/// ranking of its `FROM (subquery)`, if it has both: the smallest of its
/// conjuncts `rownum <= N`, `rownum < N`, `rownum = 1` (either way round).
pub(crate) fn bound(
    from: &ast::TableWithJoins,
    selection: Option<&ast::Expr>,
    projection: &[ast::SelectItem],
) -> Option<TopLimit> {
    use ast::{BinaryOperator as Op, Expr as E};
    if !from.joins.is_empty() {
        return None;
    }
    let ast::TableFactor::Derived { subquery, .. } = &from.relation else {
        return None;
    };
    let ast::SetExpr::Select(inner) = subquery.body.as_ref() else {
        return None;
    };
    let (_, name, _) = crate::rank::row_number_item(&inner.projection).ok()??;
    let is_rank = |e: &E| match e {
        E::Identifier(id) => id.value.eq_ignore_ascii_case(&name),
        E::CompoundIdentifier(p) => p
            .last()
            .is_some_and(|id| id.value.eq_ignore_ascii_case(&name)),
        _ => false,
    };
    let number = |e: &E| match e {
        E::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse::<usize>().ok(),
            _ => None,
        },
        _ => None,
    };
    let mut conjuncts = Vec::new();
    crate::join::split_and(selection?, &mut conjuncts);
    let mut n: Option<usize> = None;
    for c in conjuncts {
        let E::BinaryOp { left, op, right } = c else {
            continue;
        };
        // rank OP number, or number OP' rank
        let kept = if is_rank(left) {
            number(right).and_then(|k| match op {
                Op::LtEq => Some(k),
                Op::Lt => k.checked_sub(1),
                Op::Eq if k == 1 => Some(1),
                _ => None,
            })
        } else if is_rank(right) {
            number(left).and_then(|k| match op {
                Op::GtEq => Some(k),
                Op::Gt => k.checked_sub(1),
                Op::Eq if k == 1 => Some(1),
                _ => None,
            })
        } else {
            None
        };
        if let Some(k) = kept {
            n = Some(n.map_or(k, |m| m.min(k)));
        }
    }
    let n = n?;
    let mut keep_rownum = false;
    for item in projection {
        match item {
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..) => {
                keep_rownum = true
            }
            ast::SelectItem::UnnamedExpr(e)
            | ast::SelectItem::ExprWithAlias { expr: e, .. }
            | ast::SelectItem::ExprWithAliases { expr: e, .. } => {
                let _ = ast::visit_expressions(e, |x| {
                    keep_rownum |= is_rank(x);
                    std::ops::ControlFlow::<()>::Continue(())
                });
            }
        }
    }
    Some(TopLimit {
        n,
        keep_rownum,
        retract: false,
    })
}

/// The `n` of a query's `LIMIT n` or `FETCH FIRST n ROWS ONLY` (a
/// literal; no `OFFSET`, `PERCENT` or `WITH TIES`); `None` for `ORDER BY`
/// alone (a temporal sort, [`crate::sort`]).
pub(crate) fn limit_of(q: &ast::Query) -> Result<Option<usize>, SqlError> {
    if let Some(fetch) = &q.fetch {
        if q.limit_clause.is_some() {
            return Err(unsupported(
                q,
                "OFFSET (skipping the first rows of a Top-N)",
            ));
        }
        if fetch.percent || fetch.with_ties {
            return Err(unsupported(
                q,
                &format!("{fetch} (write FETCH FIRST n ROWS ONLY)"),
            ));
        }
        return match &fetch.quantity {
            Some(n) => count_of(n, "FETCH FIRST").map(Some),
            None => Ok(Some(1)), // FETCH FIRST ROW ONLY
        };
    }
    let limit = match &q.limit_clause {
        None => return Ok(None), // ORDER BY alone: a temporal sort (crate::sort)
        Some(ast::LimitClause::LimitOffset {
            limit: Some(limit),
            offset: None,
            limit_by,
        }) if limit_by.is_empty() => limit,
        Some(other) => return Err(unsupported(q, &format!("{other} (write LIMIT n)"))),
    };
    count_of(limit, "LIMIT").map(Some)
}

/// A literal count of rows, at least 1, given to `clause`.
fn count_of(limit: &ast::Expr, clause: &str) -> Result<usize, SqlError> {
    match limit {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(text, _) => match text.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(at_node(
                    limit,
                    format!("{clause} {text}: give a count of rows of at least 1"),
                )),
            },
            _ => Err(at_node(limit, format!("{clause} takes a number of rows"))),
        },
        _ => Err(at_node(
            limit,
            format!("{clause} takes a number of rows, not an expression"),
        )),
    }
}

/// `… ORDER BY keys LIMIT n` (without `ORDER BY`: by event time) over
/// `rows`: the best `n` rows of all, as a changelog (a global Top-N, as
/// Flink plans it for a stream): a row that enters the best `n` is
/// inserted, one pushed out deleted. Ranks by output columns; ties in
/// content order, so every mode emits the same changelog.
pub(crate) fn order_limit(
    rows: &Stream,
    order_by: Option<&ast::OrderBy>,
    n: usize,
    node: &impl ast::Spanned,
) -> Result<Stream, SqlError> {
    const ALL: &str = "__weir_all";
    const RANK: &str = "__weir_rank";
    let schema = rows.schema();
    // a changelog's `op` is not a result column (the ranking gives its own)
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != OP_COLUMN)
        .collect();
    let order = match order_by.map(|o| &o.kind) {
        None => match rows.time_column() {
            Some(t) => vec![OrderKey {
                column: t.to_string(),
                descending: false,
                nulls_first: false,
            }],
            None => {
                return Err(at_node(
                    node,
                    "LIMIT without ORDER BY keeps the first rows in event time: its input \
                     needs an event time (or give ORDER BY)",
                ))
            }
        },
        Some(ast::OrderByKind::All(_)) => return Err(unsupported(node, "ORDER BY ALL")),
        Some(ast::OrderByKind::Expressions(exprs)) => order_keys(&names, exprs)?,
    };
    let everything = rows
        .with_column(ALL, weir_core::expr::lit(0i64))
        .map_err(|e| engine(node, e))?;
    let limit = TopLimit {
        n,
        keep_rownum: false,
        retract: true,
    };
    let ranked = top_n(
        &everything,
        &[ALL.to_string()],
        order,
        RANK,
        Some(limit),
        node,
    )?;
    let kept: Vec<(String, weir_core::expr::Expr)> = names
        .iter()
        .chain(std::iter::once(&OP_COLUMN.to_string()))
        .map(|c| (c.clone(), weir_core::expr::col(c)))
        .collect();
    ranked.select_exprs(kept).map_err(|e| engine(node, e))
}

/// The `ORDER BY` items `exprs` as sort keys over the result columns `names`.
pub(crate) fn order_keys(
    names: &[String],
    exprs: &[ast::OrderByExpr],
) -> Result<Vec<OrderKey>, SqlError> {
    let mut keys = Vec::with_capacity(exprs.len());
    for o in exprs {
        let column = match &o.expr {
            ast::Expr::Identifier(id) if names.contains(&id.value) => id.value.clone(),
            e => {
                return Err(at_node(
                    e,
                    format!(
                        "ORDER BY names a column of the result (one of: {}); sort by an \
                         expression by selecting it AS a name",
                        names.join(", ")
                    ),
                ))
            }
        };
        let descending = match &o.options.sort {
            None | Some(ast::OrderBySort::Asc) => false,
            Some(ast::OrderBySort::Desc) => true,
            Some(other) => return Err(unsupported(&o.expr, &format!("ORDER BY … {other:?}"))),
        };
        keys.push(OrderKey {
            column,
            descending,
            // as PostgreSQL: nulls sort as the largest value
            nulls_first: o.options.nulls_first.unwrap_or(descending),
        });
    }
    Ok(keys)
}

/// Plans the ranking of `input`'s rows per `partition` by `order`, kept to
/// `limit`: the rows, the rank column `name` (`BIGINT`) and `op`.
pub(crate) fn top_n(
    input: &Stream,
    partition: &[String],
    order: Vec<OrderKey>,
    name: &str,
    limit: Option<TopLimit>,
    node: &impl ast::Spanned,
) -> Result<Stream, SqlError> {
    let schema = input.schema();
    let Some(limit) = limit.filter(|l| l.n > 0) else {
        return Err(at_node(
            node,
            "ROW_NUMBER() over a stream keeps the best N rows of each partition: rank in a \
             subquery and bound it outside, `SELECT … FROM (SELECT …, ROW_NUMBER() OVER (…) AS \
             rownum FROM t) WHERE rownum <= N`",
        ));
    };
    if partition.iter().any(|p| p == OP_COLUMN) {
        return Err(at_node(node, "PARTITION BY op"));
    }
    // a changelog, or rows without an event time: ranked as they arrive
    if schema.field_with_name(OP_COLUMN).is_ok() || input.time_column().is_none() {
        return crate::top_n_changelog::arrival_top_n(input, partition, &order, name, limit, node);
    }
    if schema.field_with_name(name).is_ok() {
        return Err(at_node(
            node,
            format!("`{name}` is already a column: name the rank otherwise"),
        ));
    }
    let (columns, fields) = row_layout(schema, &order, node)?;
    let mut out_fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    out_fields.push(Arc::new(Field::new(name, DataType::Int64, false)));
    out_fields.push(Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false)));
    let output = Arc::new(Schema::new(out_fields));
    let keyed = input.key_by(partition).map_err(|e| engine(node, e))?;
    keyed
        .process(output, move || TopN {
            limit,
            columns: columns.clone(),
            converter: RowConverter::new(fields.clone())
                .expect("the row layout was checked when planned"),
        })
        .map_err(|e| engine(node, e))
}

/// The row layout a ranking compares rows in: the input column of each
/// row-format column and its sort field. ORDER BY columns first (their
/// byte order is the rank), then every other column but `op` (ties broken
/// by content, alike in every mode).
pub(crate) fn row_layout(
    schema: &Schema,
    order: &[OrderKey],
    node: &impl ast::Spanned,
) -> Result<(Vec<usize>, Vec<SortField>), SqlError> {
    let mut columns: Vec<usize> = Vec::with_capacity(schema.fields().len());
    let mut fields: Vec<SortField> = Vec::with_capacity(schema.fields().len());
    for o in order {
        if o.column == OP_COLUMN {
            return Err(at_node(
                node,
                "ORDER BY op: a changelog's op says what a row does, it is not ranked",
            ));
        }
        let (i, f) = schema
            .column_with_name(&o.column)
            .ok_or_else(|| at_node(node, format!("no column `{}` to rank by", o.column)))?;
        columns.push(i);
        fields.push(SortField::new_with_options(
            f.data_type().clone(),
            SortOptions {
                descending: o.descending,
                nulls_first: o.nulls_first,
            },
        ));
    }
    for (i, f) in schema.fields().iter().enumerate() {
        if !columns.contains(&i) && f.name() != OP_COLUMN {
            columns.push(i);
            fields.push(SortField::new(f.data_type().clone()));
        }
    }
    RowConverter::new(fields.clone()).map_err(|e| {
        at_node(
            node,
            format!("ROW_NUMBER() cannot rank rows of these column types: {e}"),
        )
    })?;
    Ok((columns, fields))
}

/// One changelog row: the encoded row, its rank, its op.
pub(crate) type Change<'a> = (&'a [u8], usize, &'static str);

/// What changed from a partition's best rows `old` to `new` (both best
/// first, encoded), in emission order, as `emit` says. Upserts: a place
/// filled the first time `insert`, a place whose row changed `update`, a
/// place left empty `delete`. Place retractions: a place whose row changed
/// or left `delete`s the old (row, rank), then one filled or changed
/// `insert`s the new. Rows: the rows that left `delete`d, then the rows
/// that came `insert`ed.
pub(crate) fn changes<'a>(old: &[&'a [u8]], new: &[&'a [u8]], emit: Emit) -> Vec<Change<'a>> {
    let mut out = Vec::new();
    match emit {
        Emit::Upserts => {
            for (i, &row) in new.iter().enumerate() {
                match old.get(i) {
                    None => out.push((row, i + 1, "insert")),
                    Some(&was) if was != row => out.push((row, i + 1, "update")),
                    Some(_) => {}
                }
            }
            for (i, &row) in old.iter().enumerate().skip(new.len()) {
                out.push((row, i + 1, "delete"));
            }
            return out;
        }
        Emit::PlaceRetractions => {
            let moved = |i: usize| old.get(i) != new.get(i);
            for (i, &row) in old.iter().enumerate().filter(|&(i, _)| moved(i)) {
                out.push((row, i + 1, "delete"));
            }
            for (i, &row) in new.iter().enumerate().filter(|&(i, _)| moved(i)) {
                out.push((row, i + 1, "insert"));
            }
            return out;
        }
        Emit::Rows => {}
    }
    // both lists are sorted: a merge finds what left and what came
    let (mut deletes, mut inserts) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(&a), Some(b)) if a < *b => {
                deletes.push((a, i + 1, "delete"));
                i += 1;
            }
            (Some(&a), None) => {
                deletes.push((a, i + 1, "delete"));
                i += 1;
            }
            (_, Some(&b)) => {
                inserts.push((b, j + 1, "insert"));
                j += 1;
            }
            (None, None) => unreachable!("the loop condition"),
        }
    }
    out.extend(deletes);
    out.extend(inserts);
    out
}

/// Per key: its best rows so far, best first (at most N), each in the
/// arrow row format of [`TopN`]'s layout.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct TopState {
    rows: Vec<Vec<u8>>,
}

/// Keeps each key's best N rows (see the module's diagram).
pub(crate) struct TopN {
    // config
    limit: TopLimit,
    /// The input column of each row-format column.
    columns: Vec<usize>,
    converter: RowConverter,
}

impl std::fmt::Debug for TopN {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopN").field("limit", &self.limit).finish()
    }
}

impl KeyedProcessFunction for TopN {
    type State = TopState;

    fn state_size(&self, state: &TopState) -> usize {
        std::mem::size_of::<TopState>()
            + state
                .rows
                .iter()
                .map(|r| r.len() + std::mem::size_of::<Vec<u8>>())
                .sum::<usize>()
    }

    fn on_rows(
        &mut self,
        _key: &KeyRow,
        rows: &RecordBatch,
        state: &mut TopState,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let fail = |e: arrow_schema::ArrowError| Error::Expr {
            expr: "ROW_NUMBER() OVER (… ORDER BY …)".into(),
            message: e.to_string(),
        };
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&i| Arc::clone(rows.column(i)))
            .collect();
        let encoded = self.converter.convert_columns(&arrays).map_err(fail)?;
        let old = state.rows.clone();
        let n = self.limit.n;
        for row in encoded.iter() {
            let bytes = row.as_ref();
            // after its equals: a later row ranks below an equal earlier one
            let at = state.rows.partition_point(|r| r.as_slice() <= bytes);
            if at < n {
                state.rows.insert(at, bytes.to_vec());
                state.rows.truncate(n);
            }
        }
        let old: Vec<&[u8]> = old.iter().map(Vec::as_slice).collect();
        let new: Vec<&[u8]> = state.rows.iter().map(Vec::as_slice).collect();
        let changes = changes(&old, &new, self.limit.emit());
        if changes.is_empty() {
            return Ok(());
        }
        let parser = self.converter.parser();
        let decoded = self
            .converter
            .convert_rows(changes.iter().map(|(b, _, _)| parser.parse(b)))
            .map_err(fail)?;
        let schema = ctx.output_schema().clone();
        let width = rows.num_columns();
        let mut out: Vec<Option<ArrayRef>> = vec![None; width];
        for (array, &i) in decoded.into_iter().zip(&self.columns) {
            out[i] = Some(array);
        }
        let mut columns: Vec<ArrayRef> = out
            .into_iter()
            .map(|c| c.expect("the layout covers every input column"))
            .collect();
        columns.push(Arc::new(Int64Array::from_iter_values(
            changes.iter().map(|&(_, rank, _)| rank as i64),
        )));
        columns.push(Arc::new(StringArray::from_iter_values(
            changes.iter().map(|&(_, _, op)| op),
        )));
        let batch = RecordBatch::try_new(schema, columns).map_err(fail)?;
        ctx.emit(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(xs: &[u8]) -> Vec<Vec<u8>> {
        xs.iter().map(|&x| vec![x]).collect()
    }

    fn diff(old: &[u8], new: &[u8], emit: Emit) -> Vec<(u8, usize, &'static str)> {
        let (old, new) = (rows(old), rows(new));
        let old: Vec<&[u8]> = old.iter().map(Vec::as_slice).collect();
        let new: Vec<&[u8]> = new.iter().map(Vec::as_slice).collect();
        changes(&old, &new, emit)
            .into_iter()
            .map(|(b, r, op)| (b[0], r, op))
            .collect()
    }

    #[test]
    fn kept_ranks_are_upserts_by_place() {
        assert_eq!(
            diff(&[1, 3], &[1, 2, 3], Emit::Upserts),
            vec![(2, 2, "update"), (3, 3, "insert")]
        );
        // a changelog's partition can shrink: the places left empty are deleted
        assert_eq!(
            diff(&[1, 2, 3], &[2], Emit::Upserts),
            vec![(2, 1, "update"), (2, 2, "delete"), (3, 3, "delete")]
        );
        assert_eq!(diff(&[4], &[], Emit::Upserts), vec![(4, 1, "delete")]);
    }

    #[test]
    fn place_retractions_take_back_each_moved_row_with_its_old_rank() {
        // 2 moves from rank 1 to 2 under a new 1; 3 leaves
        assert_eq!(
            diff(&[2, 3], &[1, 2], Emit::PlaceRetractions),
            vec![
                (2, 1, "delete"),
                (3, 2, "delete"),
                (1, 1, "insert"),
                (2, 2, "insert")
            ]
        );
        assert!(diff(&[5, 6], &[5, 6], Emit::PlaceRetractions).is_empty());
        assert_eq!(
            diff(&[5, 6], &[5], Emit::PlaceRetractions),
            vec![(6, 2, "delete")]
        );
    }

    #[test]
    fn dropped_ranks_delete_what_left_then_insert_what_came() {
        assert_eq!(
            diff(&[2, 5], &[1, 2], Emit::Rows),
            vec![(5, 2, "delete"), (1, 1, "insert")]
        );
        // equal rows count as many times as they occur
        assert_eq!(diff(&[4], &[4, 4], Emit::Rows), vec![(4, 2, "insert")]);
        assert!(diff(&[4, 4], &[4, 4], Emit::Rows).is_empty());
        assert_eq!(
            diff(&[3, 4], &[], Emit::Rows),
            vec![(3, 1, "delete"), (4, 2, "delete")]
        );
    }
}
