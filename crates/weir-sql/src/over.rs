//! OVER aggregations: `AGG(x) OVER (PARTITION BY k ORDER BY ts
//! {ROWS | RANGE} BETWEEN … PRECEDING AND CURRENT ROW)`, one output row per
//! input row with the aggregate of its frame (Flink's over aggregation).
//!
//! Owns [`over_items`] (finding them in a select list), [`over`]
//! (planning) and [`OverAggregate`], the keyed process function that
//! computes the frames. May use `super::join`'s scope, `super::expr`,
//! `super::error`, the engine's builder and `weir-functions`' exact sum.
//!
//! ```text
//!  rows ─► key_by(PARTITION BY) ─► process(OverAggregate): per key, the rows of
//!  one event time once the watermark passes it, sorted by content (ties in
//!  one order in every mode):
//!     RANGE ... PRECEDING  frame = kept rows with time >= t - range, and all
//!                          rows at t (peers)        → one value for the peers
//!     ROWS n PRECEDING     frame = the n rows before, and the row itself
//!     UNBOUNDED PRECEDING  running accumulators instead of kept rows
//!  then keep what a later frame can still need (rows within the range, the
//!  last n rows); the output keeps the input's event time.
//! ```

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_cast::cast;
use arrow_ord::sort::{lexsort_to_indices, SortColumn};
use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use sqlparser::ast::{self, Expr as SqlExpr, SelectItem, WindowFrameBound, WindowFrameUnits};
use weir_core::error::{Error, Result};
use weir_engine::graph::Stream;
use weir_functions::aggregate::ExactSum;
use weir_functions::FunctionRegistry;
use weir_operators::{KeyRow, KeyedProcessFunction, ProcessContext};

use crate::error::{at_node, engine, unsupported, SqlError};
use crate::expr::{interval, scalar};
use crate::join::Scope;
use crate::query::in_scope;

/// An `AGG(x) OVER (…)` item of a select list.
pub(crate) struct OverItem<'a> {
    /// Its index in the select list.
    pub index: usize,
    /// Its output name.
    pub name: String,
    func: String,
    arg: Option<&'a SqlExpr>,
    spec: &'a ast::WindowSpec,
    node: &'a SqlExpr,
}

impl OverItem<'_> {
    /// The item's expression (for error places).
    pub fn node_ref(&self) -> &SqlExpr {
        self.node
    }
}

/// The aggregates with `OVER` in `items` (empty: none).
pub(crate) fn over_items(items: &[SelectItem]) -> Result<Vec<OverItem<'_>>, SqlError> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (e, name) = match item {
            SelectItem::UnnamedExpr(e) => (e, format!("EXPR${i}")),
            SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone()),
            _ => continue,
        };
        let SqlExpr::Function(f) = e else { continue };
        let Some(over) = &f.over else { continue };
        let func = f.name.to_string().to_ascii_lowercase();
        if !["count", "sum", "avg", "min", "max"].contains(&func.as_str()) {
            continue;
        }
        let ast::WindowType::WindowSpec(spec) = over else {
            return Err(unsupported(e, "a named window (WINDOW w AS …)"));
        };
        let ast::FunctionArguments::List(list) = &f.args else {
            return Err(at_node(e, format!("{}() needs an argument", f.name)));
        };
        if list.duplicate_treatment.is_some() || f.filter.is_some() {
            return Err(unsupported(e, "DISTINCT or FILTER in an OVER aggregation"));
        }
        let arg = match list.args.as_slice() {
            [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)] if func == "count" => None,
            [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x))] => Some(x),
            _ => return Err(at_node(e, format!("{}() takes one argument", f.name))),
        };
        out.push(OverItem {
            index: i,
            name,
            func,
            arg,
            spec,
            node: e,
        });
    }
    Ok(out)
}

/// Where a frame starts (it always ends at the current row).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`.
    Rows(usize),
    /// `RANGE BETWEEN INTERVAL … PRECEDING AND CURRENT ROW` (ms; 0: peers only).
    Range(i64),
    /// `… UNBOUNDED PRECEDING AND CURRENT ROW`.
    Unbounded {
        /// `ROWS`: each row sees the peers before it only.
        rows: bool,
    },
}

/// One aggregate of an over window.
#[derive(Debug, Clone)]
struct OverAgg {
    func: String,
    /// Its argument column (`None`: `COUNT(*)`).
    column: Option<String>,
    /// The argument is an integer (sums and extremes stay integers).
    integer: bool,
}

/// Plans the select list's OVER aggregations over `input` (event-time
/// rows): `input`'s columns plus one column per item, named as the item.
pub(crate) fn over(
    input: &Stream,
    scope: &Scope,
    items: &[OverItem<'_>],
    functions: &FunctionRegistry,
) -> Result<Stream, SqlError> {
    let first = &items[0];
    let Some(time) = input.time_column().map(str::to_string) else {
        return Err(at_node(
            first.node,
            "an OVER aggregation orders rows by their event time: read it from a table with \
             WATERMARK FOR",
        ));
    };
    for it in &items[1..] {
        if it.spec != first.spec {
            return Err(at_node(
                it.node,
                "every OVER aggregation of a SELECT has the same window (PARTITION BY, ORDER BY and frame)",
            ));
        }
    }
    let spec = first.spec;
    let column = |e: &SqlExpr| scope.column_of(e, "PARTITION BY an expression (use a column)");
    let partition = spec
        .partition_by
        .iter()
        .map(column)
        .collect::<Result<Vec<_>, _>>()?;
    let ordered_by_time = match spec.order_by.as_slice() {
        [o] => {
            column(&o.expr)? == time && matches!(o.options.sort, None | Some(ast::OrderBySort::Asc))
        }
        _ => false,
    };
    if !ordered_by_time {
        return Err(at_node(
            first.node,
            format!(
                "an OVER window is ORDER BY the event time `{time}` (ascending): a stream's rows \
                 have no other order"
            ),
        ));
    }
    let frame = frame(spec, first.node)?;
    // arguments that are not plain columns become columns first
    let mut input = input.clone();
    let mut aggs = Vec::with_capacity(items.len());
    for (k, it) in items.iter().enumerate() {
        let column = match it.arg {
            None => None,
            Some(e @ SqlExpr::Identifier(id)) => Some(scope.resolve(e, None, &id.value)?),
            Some(e) => {
                let name = format!("__over{k}");
                let x = scalar(e, &in_scope(scope), functions)?;
                input = input.with_column(&name, x).map_err(|err| engine(e, err))?;
                Some(name)
            }
        };
        let integer = match &column {
            None => true,
            Some(c) => {
                let t = input
                    .schema()
                    .field_with_name(c)
                    .map_err(|e| at_node(it.node, e.to_string()))?
                    .data_type()
                    .clone();
                if !(t.is_integer() || t.is_floating()) && it.func != "count" {
                    return Err(at_node(
                        it.node,
                        format!("{}() OVER takes a number, not {t}", it.func.to_uppercase()),
                    ));
                }
                t.is_integer()
            }
        };
        aggs.push(OverAgg {
            func: it.func.clone(),
            column,
            integer,
        });
    }
    let mut fields: Vec<Arc<Field>> = input.schema().fields().iter().cloned().collect();
    for (it, a) in items.iter().zip(&aggs) {
        if fields.iter().any(|f| f.name() == &it.name) {
            return Err(at_node(
                it.node,
                format!(
                    "`{}` is already a column: name the aggregate otherwise",
                    it.name
                ),
            ));
        }
        let t = match a.func.as_str() {
            "count" => DataType::Int64,
            "avg" => DataType::Float64,
            _ if a.integer => DataType::Int64,
            _ => DataType::Float64,
        };
        fields.push(Arc::new(Field::new(&it.name, t, a.func != "count")));
    }
    let output = Arc::new(Schema::new(fields));
    let (input, keys) = if partition.is_empty() {
        let all = input
            .with_column("__all", weir_core::expr::lit(0))
            .map_err(|e| engine(first.node, e))?;
        (all, vec!["__all".to_string()])
    } else {
        (input, partition)
    };
    let keyed = input.key_by(&keys).map_err(|e| engine(first.node, e))?;
    let output = if keys == ["__all"] {
        let mut f: Vec<Arc<Field>> = output.fields().iter().cloned().collect();
        let at = input.schema().fields().len() - 1;
        f.insert(at, Arc::new(Field::new("__all", DataType::Int64, false)));
        Arc::new(Schema::new(f))
    } else {
        output
    };
    let out = keyed
        .process(output, move || OverAggregate {
            frame,
            aggs: aggs.clone(),
        })
        .map_err(|e| engine(first.node, e))?;
    // each row leaves when the watermark passes its own time: it keeps it
    out.with_derived_event_time(&time)
        .map_err(|e| engine(first.node, e))
}

/// The frame of `spec` (default: `RANGE UNBOUNDED PRECEDING`).
fn frame(spec: &ast::WindowSpec, node: &SqlExpr) -> Result<Frame, SqlError> {
    let Some(f) = &spec.window_frame else {
        return Ok(Frame::Unbounded { rows: false });
    };
    if !matches!(f.end_bound, None | Some(WindowFrameBound::CurrentRow)) {
        return Err(unsupported(
            node,
            "a frame ending after the current row (FOLLOWING): a stream cannot wait for rows to come",
        ));
    }
    let rows = match f.units {
        WindowFrameUnits::Rows => true,
        WindowFrameUnits::Range => false,
        WindowFrameUnits::Groups => return Err(unsupported(node, "GROUPS frames")),
    };
    Ok(match &f.start_bound {
        WindowFrameBound::Preceding(None) => Frame::Unbounded { rows },
        WindowFrameBound::CurrentRow if rows => Frame::Rows(0),
        WindowFrameBound::CurrentRow => Frame::Range(0),
        WindowFrameBound::Preceding(Some(n)) if rows => {
            match n.as_ref() {
                SqlExpr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => Frame::Rows(n.parse().map_err(|_| {
                        at_node(node, format!("ROWS {n} PRECEDING: a count of rows"))
                    })?),
                    _ => return Err(at_node(node, "ROWS n PRECEDING takes a number")),
                },
                _ => return Err(at_node(node, "ROWS n PRECEDING takes a number")),
            }
        }
        WindowFrameBound::Preceding(Some(i)) => {
            Frame::Range(interval(i)?.as_millis().min(i64::MAX as u128) as i64)
        }
        WindowFrameBound::Following(_) => {
            return Err(unsupported(node, "a frame starting after the current row"))
        }
    })
}

/// A number the aggregates read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Num {
    I(i64),
    F(f64),
}

/// Running aggregates of an unbounded frame.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Running {
    rows: i64,
    count: i64,
    int_sum: i128,
    float_sum: (i64, i64, i32),
    min: Option<Num>,
    max: Option<Num>,
}

impl Running {
    fn add(&mut self, v: Option<Num>) {
        self.rows += 1;
        let Some(v) = v else { return };
        self.count += 1;
        match v {
            Num::I(i) => self.int_sum += i128::from(i),
            Num::F(f) => {
                let (hi, lo, lsb) = self.float_sum;
                let mut s = ExactSum::from_parts(hi, lo, lsb);
                s.add(f);
                self.float_sum = s.to_parts();
            }
        }
        let less = |a: Num, b: Num| match (a, b) {
            (Num::I(a), Num::I(b)) => a < b,
            (Num::F(a), Num::F(b)) => a.total_cmp(&b).is_lt(),
            _ => false,
        };
        if self.min.is_none_or(|m| less(v, m)) {
            self.min = Some(v);
        }
        if self.max.is_none_or(|m| less(m, v)) {
            self.max = Some(v);
        }
    }

    /// The aggregate's value: `(int, float)`, either `None` for null.
    fn value(&self, agg: &OverAgg) -> (Option<i64>, Option<f64>) {
        let float =
            || ExactSum::from_parts(self.float_sum.0, self.float_sum.1, self.float_sum.2).value();
        let num = |n: Option<Num>| match n {
            Some(Num::I(i)) => (Some(i), None),
            Some(Num::F(f)) => (None, Some(f)),
            None => (None, None),
        };
        match agg.func.as_str() {
            "count" if agg.column.is_none() => (Some(self.rows), None),
            "count" => (Some(self.count), None),
            _ if self.count == 0 => (None, None),
            "sum" if agg.integer => (i64::try_from(self.int_sum).ok(), None),
            "sum" => (None, Some(float())),
            "avg" if agg.integer => (None, Some(self.int_sum as f64 / self.count as f64)),
            "avg" => (None, Some(float() / self.count as f64)),
            "min" => num(self.min),
            _ => num(self.max),
        }
    }
}

/// Per key: the rows a later frame may still need (time, one value per
/// aggregate), and the running aggregates of unbounded frames.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct OverState {
    kept: VecDeque<(i64, Vec<Option<Num>>)>,
    running: Vec<Running>,
}

/// Computes every row's frame aggregates (see the module's diagram).
#[derive(Debug, Clone)]
pub(crate) struct OverAggregate {
    frame: Frame,
    aggs: Vec<OverAgg>,
}

impl OverAggregate {
    /// Each row's argument values, one per aggregate.
    fn values(&self, rows: &RecordBatch) -> Result<Vec<Vec<Option<Num>>>> {
        let n = rows.num_rows();
        let mut out = vec![Vec::with_capacity(self.aggs.len()); n];
        for a in &self.aggs {
            let Some(c) = &a.column else {
                out.iter_mut().for_each(|r| r.push(Some(Num::I(1))));
                continue;
            };
            let array = rows.column_by_name(c).ok_or_else(|| Error::Column {
                column: c.clone(),
                context: "OVER aggregation".into(),
                message: "not in its rows".into(),
            })?;
            let fail = |e: arrow_schema::ArrowError| Error::Expr {
                expr: format!("{}({c}) OVER", a.func),
                message: e.to_string(),
            };
            if a.integer || a.func == "count" && !array.data_type().is_floating() {
                let v = if array.data_type().is_integer() {
                    cast(array, &DataType::Int64).map_err(fail)?
                } else {
                    // COUNT of anything: only nulls matter
                    Arc::new(Int64Array::from_iter(
                        (0..n).map(|i| array.is_valid(i).then_some(1)),
                    )) as ArrayRef
                };
                let v = v.as_primitive::<Int64Type>();
                for (i, r) in out.iter_mut().enumerate() {
                    r.push(v.is_valid(i).then(|| Num::I(v.value(i))));
                }
            } else {
                let v = cast(array, &DataType::Float64).map_err(fail)?;
                let v = v.as_primitive::<Float64Type>();
                for (i, r) in out.iter_mut().enumerate() {
                    r.push(v.is_valid(i).then(|| Num::F(v.value(i))));
                }
            }
        }
        Ok(out)
    }

    /// The aggregates of a frame made of `rows`.
    fn of<'a>(&self, rows: impl Iterator<Item = &'a Vec<Option<Num>>> + Clone) -> Vec<Running> {
        let mut acc = vec![Running::default(); self.aggs.len()];
        for r in rows {
            for (a, v) in acc.iter_mut().zip(r) {
                a.add(*v);
            }
        }
        acc
    }
}

impl KeyedProcessFunction for OverAggregate {
    type State = OverState;

    fn state_size(&self, state: &OverState) -> usize {
        std::mem::size_of::<OverState>()
            + state.kept.len() * (32 + self.aggs.len() * std::mem::size_of::<Option<Num>>())
            + state.running.len() * std::mem::size_of::<Running>()
    }

    fn on_rows(
        &mut self,
        _key: &KeyRow,
        rows: &RecordBatch,
        state: &mut OverState,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let t = ctx.time();
        // one order for the peers in every mode: by content
        let sort: Vec<SortColumn> = rows
            .columns()
            .iter()
            .map(|c| SortColumn {
                values: Arc::clone(c),
                options: None,
            })
            .collect();
        let fail = |e: arrow_schema::ArrowError| Error::Expr {
            expr: "OVER aggregation".into(),
            message: e.to_string(),
        };
        let order = lexsort_to_indices(&sort, None).map_err(fail)?;
        let rows = arrow_select::take::take_record_batch(rows, &order).map_err(fail)?;
        let values = self.values(&rows)?;
        if state.running.is_empty() {
            state.running = vec![Running::default(); self.aggs.len()];
        }
        let results: Vec<Vec<Running>> = match self.frame {
            Frame::Range(range) => {
                while state.kept.front().is_some_and(|(k, _)| *k < t - range) {
                    state.kept.pop_front();
                }
                let acc = self.of(state.kept.iter().map(|(_, v)| v).chain(&values));
                state.kept.extend(values.iter().map(|v| (t, v.clone())));
                vec![acc; values.len()]
            }
            Frame::Rows(n) => {
                let mut out = Vec::with_capacity(values.len());
                for v in &values {
                    state.kept.push_back((t, v.clone()));
                    while state.kept.len() > n + 1 {
                        state.kept.pop_front();
                    }
                    out.push(self.of(state.kept.iter().map(|(_, v)| v)));
                }
                // the next row's frame is the last n of these
                while state.kept.len() > n {
                    state.kept.pop_front();
                }
                out
            }
            Frame::Unbounded { rows: false } => {
                for v in &values {
                    for (a, x) in state.running.iter_mut().zip(v) {
                        a.add(*x);
                    }
                }
                vec![state.running.clone(); values.len()]
            }
            Frame::Unbounded { rows: true } => {
                let mut out = Vec::with_capacity(values.len());
                for v in &values {
                    for (a, x) in state.running.iter_mut().zip(v) {
                        a.add(*x);
                    }
                    out.push(state.running.clone());
                }
                out
            }
        };
        let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
        let schema = ctx.output_schema().clone();
        for (k, agg) in self.aggs.iter().enumerate() {
            let field = schema.field(columns.len());
            let cells = results.iter().map(|r| r[k].value(agg));
            let array: ArrayRef = match field.data_type() {
                DataType::Int64 => Arc::new(cells.map(|(i, _)| i).collect::<Int64Array>()),
                _ => Arc::new(cells.map(|(_, f)| f).collect::<Float64Array>()),
            };
            columns.push(array);
        }
        let batch = RecordBatch::try_new(schema, columns).map_err(fail)?;
        ctx.emit(batch)
    }
}
