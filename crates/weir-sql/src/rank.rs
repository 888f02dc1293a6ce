//! Window Top-N: `ROW_NUMBER() OVER (PARTITION BY window_start,
//! window_end, … ORDER BY …)` over the rows of a window aggregation, and
//! the `rownum <= N` filter around it.
//!
//! Owns [`row_number_item`] (finding the ranking item of a select list),
//! [`rank`] (planning it) and [`RowNumber`], the keyed process function
//! that ranks one window's rows of one partition. May use `super::join`'s
//! scope, `super::error` and the engine's builder.
//!
//! ```text
//!  window aggregation ─► window_time = window_end - 1 (event time: every row
//!  of a window is emitted before the watermark passes it)
//!     ─► key_by(PARTITION BY …) ─► process(RowNumber): once the watermark
//!        passes window_time, the partition's rows arrive in one call,
//!        sorted by ORDER BY then by every other column (ties broken the
//!        same way in every mode), numbered 1, 2, …
//!     ─► the select list ─► WHERE rownum <= N (an ordinary filter)
//! ```

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_ord::sort::{lexsort_to_indices, SortColumn, SortOptions};
use arrow_schema::{DataType, Field, Schema};
use sqlparser::ast::{self, Expr as SqlExpr, SelectItem};
use weir_core::error::{Error, Result};
use weir_core::expr::{col, lit};
use weir_engine::graph::Stream;
use weir_operators::{KeyRow, KeyedProcessFunction, ProcessContext};

use crate::error::{at_node, engine, unsupported, SqlError};
use crate::join::Scope;

/// The event-time column a window aggregation's rows get for ranking.
const WINDOW_TIME: &str = "__window_time";

/// One `ORDER BY` column of a ranking.
#[derive(Debug, Clone)]
pub(crate) struct OrderKey {
    pub column: String,
    pub descending: bool,
    pub nulls_first: bool,
}

/// The select item `ROW_NUMBER() OVER (…) [AS name]`, if the list has one:
/// its index, output name and window specification.
pub(crate) fn row_number_item(
    items: &[SelectItem],
) -> Result<Option<(usize, String, &ast::WindowSpec)>, SqlError> {
    let mut found = None;
    for (i, item) in items.iter().enumerate() {
        let (e, name) = match item {
            SelectItem::UnnamedExpr(e) => (e, format!("EXPR${i}")),
            SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone()),
            _ => continue,
        };
        let SqlExpr::Function(f) = e else { continue };
        let Some(over) = &f.over else { continue };
        let fname = f.name.to_string().to_ascii_lowercase();
        if ["count", "sum", "avg", "min", "max"].contains(&fname.as_str()) {
            // an OVER aggregation (`super::over`)
            continue;
        }
        if fname != "row_number" {
            return Err(unsupported(
                e,
                &format!(
                    "{}() OVER (…) (OVER takes COUNT, SUM, AVG, MIN, MAX and ROW_NUMBER)",
                    f.name
                ),
            ));
        }
        let ast::WindowType::WindowSpec(spec) = over else {
            return Err(unsupported(e, "a named window (WINDOW w AS …)"));
        };
        if found.is_some() {
            return Err(at_node(e, "one ROW_NUMBER() per SELECT"));
        }
        found = Some((i, name, spec));
    }
    Ok(found)
}

/// Ranks `input`'s rows as `spec` says, adding the column `name`
/// (`Int64`, from 1). Partitioned by at least `window_start, window_end`,
/// `input` must be a window aggregation's rows (no event time of its own);
/// otherwise it is a stream ranked by [`top_n`](crate::top_n::top_n),
/// kept to `limit`.
pub(crate) fn rank(
    input: &Stream,
    scope: &Scope,
    name: &str,
    spec: &ast::WindowSpec,
    limit: Option<crate::top_n::TopLimit>,
    node: &impl ast::Spanned,
) -> Result<Stream, SqlError> {
    if spec.window_frame.is_some() {
        return Err(unsupported(node, "a window frame on ROW_NUMBER()"));
    }
    let column = |e: &SqlExpr| scope.column_of(e, "ranking by an expression (rank by a column)");
    let partition = spec
        .partition_by
        .iter()
        .map(column)
        .collect::<Result<Vec<_>, _>>()?;
    let windowed = ["window_start", "window_end"]
        .iter()
        .all(|bound| partition.iter().any(|p| p == bound));
    if spec.order_by.is_empty() {
        return Err(at_node(
            node,
            "ROW_NUMBER() needs ORDER BY (what ranks first)",
        ));
    }
    let mut order = Vec::with_capacity(spec.order_by.len());
    for o in &spec.order_by {
        let descending = match &o.options.sort {
            None | Some(ast::OrderBySort::Asc) => false,
            Some(ast::OrderBySort::Desc) => true,
            Some(other) => return Err(unsupported(&o.expr, &format!("ORDER BY … {other:?}"))),
        };
        order.push(OrderKey {
            column: column(&o.expr)?,
            descending,
            // as PostgreSQL: nulls sort as the largest value
            nulls_first: o.options.nulls_first.unwrap_or(descending),
        });
    }
    if !windowed {
        return crate::top_n::top_n(input, &partition, order, name, limit, node);
    }
    if input.time_column().is_some() {
        return Err(unsupported(
            node,
            "ROW_NUMBER() over rows that are not a window aggregation's (aggregate by \
             window_start, window_end first)",
        ));
    }
    let end = input
        .schema()
        .field_with_name("window_end")
        .map_err(|_| at_node(node, "no window_end column to rank the windows by"))?;
    if end.data_type() != &DataType::Int64 {
        return Err(at_node(
            node,
            "window_end must be the window's end (BIGINT)",
        ));
    }
    // every row of a window is emitted before the watermark passes its
    // last instant, so that instant is a valid event time for the ranking
    let timed = input
        .with_column(WINDOW_TIME, col("window_end").sub(lit(1)))
        .and_then(|s| s.with_derived_event_time(WINDOW_TIME))
        .map_err(|e| engine(node, e))?;
    let keyed = timed.key_by(&partition).map_err(|e| engine(node, e))?;
    let mut fields: Vec<Arc<Field>> = timed.schema().fields().iter().cloned().collect();
    if fields.iter().any(|f| f.name() == name) {
        return Err(at_node(
            node,
            format!("`{name}` is already a column: name the rank otherwise"),
        ));
    }
    fields.push(Arc::new(Field::new(name, DataType::Int64, false)));
    let output = Arc::new(Schema::new(fields));
    let ranked = keyed
        .process(output, move || RowNumber {
            order: order.clone(),
        })
        .map_err(|e| engine(node, e))?;
    let keep: Vec<String> = ranked
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != WINDOW_TIME)
        .collect();
    ranked.select(&keep).map_err(|e| engine(node, e))
}

/// `rows` sorted by `order`, ties by every other column in ascending order
/// (so each mode orders them alike); `what` names the construct in errors.
pub(crate) fn sorted(rows: &RecordBatch, order: &[OrderKey], what: &str) -> Result<RecordBatch> {
    let schema = rows.schema();
    let mut columns = Vec::with_capacity(schema.fields().len() + order.len());
    for o in order {
        let values = rows
            .column_by_name(&o.column)
            .ok_or_else(|| Error::Column {
                column: o.column.clone(),
                context: what.into(),
                message: "not in the sorted rows".into(),
            })?;
        columns.push(SortColumn {
            values: Arc::clone(values),
            options: Some(SortOptions {
                descending: o.descending,
                nulls_first: o.nulls_first,
            }),
        });
    }
    for (field, values) in schema.fields().iter().zip(rows.columns()) {
        if !order.iter().any(|o| &o.column == field.name()) {
            columns.push(SortColumn {
                values: Arc::clone(values),
                options: None,
            });
        }
    }
    let fail = |e: arrow_schema::ArrowError| Error::Expr {
        expr: what.into(),
        message: e.to_string(),
    };
    let indices = lexsort_to_indices(&columns, None).map_err(fail)?;
    arrow_select::take::take_record_batch(rows, &indices).map_err(fail)
}

/// Numbers one partition's rows of one window, best first (a
/// [`KeyedProcessFunction`] without state: the rows come in one call).
#[derive(Debug, Clone)]
pub(crate) struct RowNumber {
    order: Vec<OrderKey>,
}

impl KeyedProcessFunction for RowNumber {
    type State = ();

    fn on_rows(
        &mut self,
        _key: &KeyRow,
        rows: &RecordBatch,
        _state: &mut (),
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let sorted = sorted(rows, &self.order, "ROW_NUMBER() OVER (… ORDER BY …)")?;
        let n = sorted.num_rows() as i64;
        let mut out: Vec<ArrayRef> = sorted.columns().to_vec();
        out.push(Arc::new(Int64Array::from_iter_values(1..=n)));
        let batch =
            RecordBatch::try_new(ctx.output_schema().clone(), out).map_err(|e| Error::Expr {
                expr: "ROW_NUMBER()".into(),
                message: e.to_string(),
            })?;
        ctx.emit(batch)
    }
}
