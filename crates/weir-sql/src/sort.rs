//! `ORDER BY ts[, keys…]` without `LIMIT` (Flink's temporal sort): every
//! row, in event-time order, released as the watermark passes it.
//!
//! ```text
//!  rows (append-only, with event time ts) ─► + __weir_all = 0 ─► key_by(__weir_all)
//!   ─► process(SortRows): the rows of one event time once the watermark
//!      passes it, in one call ─► sorted by the other ORDER BY keys, ties by
//!      every other column (the same order in every mode) ─► emitted
//!   ─► without __weir_all
//! ```
//! A stream never ends, so a sort must start with the event-time column
//! ascending: what the watermark passed can be released in order. One
//! subtask sorts (all rows share one key); a one-file sink or stdout keeps
//! its order. May use `super::rank`'s sort, `super::top_n`'s order keys,
//! `super::error` and the engine's builder.

use arrow_array::RecordBatch;
use sqlparser::ast;
use weir_core::error::Result;
use weir_engine::graph::Stream;
use weir_operators::{KeyRow, KeyedProcessFunction, ProcessContext, OP_COLUMN};

use crate::error::{at_node, engine, unsupported, SqlError};
use crate::rank::OrderKey;

/// The constant key every row gets: one subtask sorts them all.
const ALL: &str = "__weir_all";

/// `rows ORDER BY order` without `LIMIT`: a temporal sort.
pub(crate) fn temporal_sort(rows: &Stream, order: &ast::OrderBy) -> Result<Stream, SqlError> {
    let ast::OrderByKind::Expressions(exprs) = &order.kind else {
        return Err(unsupported(order, "ORDER BY ALL"));
    };
    if rows.schema().field_with_name(OP_COLUMN).is_ok() {
        return Err(unsupported(
            order,
            "ORDER BY over a changelog (rows that update earlier rows, e.g. a GROUP BY's result)",
        ));
    }
    let names: Vec<String> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let keys = crate::top_n::order_keys(&names, exprs)?;
    let time = rows.time_column();
    match (keys.first(), time) {
        (Some(first), Some(t)) if first.column == t && !first.descending => {}
        _ => {
            return Err(at_node(
                order,
                format!(
                    "ORDER BY without LIMIT sorts rows that never end, so it must start with the \
                     event-time column ascending ({}): keep the best N with ORDER BY … LIMIT N, \
                     or rank per partition with ROW_NUMBER() OVER (…)",
                    match time {
                        Some(t) => format!("ORDER BY {t}[, …]"),
                        None => "these rows have none: keep the table's event-time column in \
                                 the select list"
                            .to_string(),
                    }
                ),
            ))
        }
    }
    let everything = rows
        .with_column(ALL, weir_core::expr::lit(0i64))
        .map_err(|e| engine(order, e))?;
    let output = everything.schema().clone();
    let rest: Vec<OrderKey> = keys[1..].to_vec();
    let sorted = everything
        .key_by(&[ALL.to_string()])
        .and_then(|k| {
            k.process(output, move || SortRows {
                order: rest.clone(),
            })
        })
        .map_err(|e| engine(order, e))?;
    sorted
        .select(names.iter().map(String::as_str))
        .map_err(|e| engine(order, e))
}

/// Emits the rows of one event time sorted by the remaining `ORDER BY`
/// keys (a [`KeyedProcessFunction`] without state: the rows come in one call).
#[derive(Debug, Clone)]
struct SortRows {
    order: Vec<OrderKey>,
}

impl KeyedProcessFunction for SortRows {
    type State = ();

    fn on_rows(
        &mut self,
        _key: &KeyRow,
        rows: &RecordBatch,
        _state: &mut (),
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        ctx.emit(crate::rank::sorted(rows, &self.order, "ORDER BY")?)
    }
}
