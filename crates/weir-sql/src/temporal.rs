//! Event-time temporal joins (Flink's `FOR SYSTEM_TIME AS OF`): each row
//! of the left side joined with the version of the right side's row of its
//! key that was current at the left row's time.
//!
//! Owns [`temporal_join`] (planning) and [`AsOf`], the keyed process
//! function that keeps each key's current version. May use `super::join`'s
//! scope, `super::expr`, `super::error`, the engine's builder and the arrow
//! crates.
//!
//! ```text
//!  left  ─► project: __side 0 | __t = left time | keys | left cols | null right cols ─┐
//!  right ─► project: __side 1 | __t = right time | keys | null left cols | right cols ─┴─► union
//!   ─► event time __t ─► key_by(keys) ─► process(AsOf): per key, the rows of one time
//!      once the watermark (the lower of both sides') passes it:
//!        right rows first: the key's version := the last of them (content order)
//!        then each left row ─► left cols | the version's cols (LEFT JOIN: nulls if none)
//! ```
//! A version is valid from its time until the key's next version, so a left
//! row at `t` meets the right row with the greatest time `<= t` (at equal
//! times, the greatest by content): the same rows in every mode, as the
//! process function sees each key's rows in event-time order. State is one
//! version per key (rows of a version that was replaced are dropped).

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use sqlparser::ast::{self, BinaryOperator, Expr as SqlExpr, JoinConstraint, JoinOperator};
use weir_core::error::{Error, Result};
use weir_core::expr::{col, lit, Expr, ScalarValue};
use weir_engine::graph::Stream;
use weir_operators::{KeyRow, KeyedProcessFunction, ProcessContext, OP_COLUMN};

use crate::error::{at_node, engine, unsupported, SqlError};
use crate::join::Scope;

/// The combined rows' side column: 0 left, 1 right.
const SIDE: &str = "__side";
/// The combined rows' event time (either side's, in milliseconds).
const TIME: &str = "__t";

/// `left [LEFT] JOIN right FOR SYSTEM_TIME AS OF left.t ON l.k = r.k …`:
/// the joined rows (left's columns, then right's, a clashing name as
/// `right_NAME`) and their scope.
pub(crate) fn temporal_join(
    left: (Stream, Scope),
    right: (Stream, Scope),
    j: &ast::Join,
    as_of: &SqlExpr,
    functions: &weir_functions::FunctionRegistry,
) -> Result<(Stream, Scope), SqlError> {
    let (keep_unmatched, constraint) = match &j.join_operator {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => (false, c),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (true, c),
        _ => {
            return Err(unsupported(
                &j.relation,
                "this kind of temporal join (it is an inner or a LEFT JOIN)",
            ))
        }
    };
    let JoinConstraint::On(on) = constraint else {
        return Err(unsupported(&j.relation, "a temporal join without ON"));
    };
    let (ls, rs) = (&left.1, &right.1);
    for (side, name) in [(&left.0, "left"), (&right.0, "right")] {
        if side.schema().field_with_name(OP_COLUMN).is_ok() {
            return Err(unsupported(
                &j.relation,
                &format!("a temporal join whose {name} side is a changelog"),
            ));
        }
    }
    let Some(lt) = left.0.time_column().map(str::to_string) else {
        return Err(at_node(
            as_of,
            "FOR SYSTEM_TIME AS OF needs the left side's event time (a table with a WATERMARK)",
        ));
    };
    let as_of_column = ls.column_of(as_of, "FOR SYSTEM_TIME AS OF an expression")?;
    if as_of_column != lt {
        return Err(at_node(
            as_of,
            format!(
                "FOR SYSTEM_TIME AS OF `{as_of_column}`: the left side's event time is `{lt}` \
                 (a processing-time temporal join is not supported)"
            ),
        ));
    }
    let Some(rt) = right.0.time_column().map(str::to_string) else {
        return Err(at_node(
            &j.relation,
            "a temporal join's right side is a versioned table: it needs event time (a \
             WATERMARK), whose column says when each version starts",
        ));
    };
    // ON: key equalities (left column = right column); an inner join's
    // other conditions filter the joined rows
    let mut conjuncts = Vec::new();
    crate::join::split_and(on, &mut conjuncts);
    let (mut lk, mut rk) = (Vec::new(), Vec::new());
    let mut residual = Vec::new();
    for c in conjuncts {
        let pair = match c {
            SqlExpr::BinaryOp {
                left: a,
                op: BinaryOperator::Eq,
                right: b,
            } => crate::join::sides(a, b, ls, rs),
            _ => None,
        };
        match pair {
            Some((l, r)) => {
                lk.push(l);
                rk.push(r);
            }
            None if !keep_unmatched => residual.push(c),
            None => {
                return Err(unsupported(
                    c,
                    "this LEFT temporal join condition (key equalities l.k = r.k)",
                ))
            }
        }
    }
    if lk.is_empty() {
        return Err(at_node(
            on,
            "a temporal join needs a key equality (l.k = r.k): the versioned table's key",
        ));
    }
    // the combined rows; both sides' keys in the left's types
    let (lschema, rschema) = (left.0.schema().clone(), right.0.schema().clone());
    let key_types: Vec<DataType> = lk
        .iter()
        .map(|l| lschema.field_with_name(l).map(|f| f.data_type().clone()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| engine(on, e.into()))?;
    let null = |t: &DataType| Expr::Literal(ScalarValue::Null).cast(t.clone());
    let ms = |c: &str| col(c).cast(DataType::Int64);
    let project = |s: &Stream, side: i64, time: &str, keys: &[String]| -> Result<Stream> {
        let mut exprs: Vec<(String, Expr)> =
            vec![(SIDE.into(), lit(side)), (TIME.into(), ms(time))];
        for (k, (key, t)) in keys.iter().zip(&key_types).enumerate() {
            exprs.push((format!("__k{k}"), col(key).cast(t.clone())));
        }
        for f in lschema.fields() {
            let e = if side == 0 {
                col(f.name())
            } else {
                null(f.data_type())
            };
            exprs.push((format!("__l_{}", f.name()), e));
        }
        for f in rschema.fields() {
            let e = if side == 1 {
                col(f.name())
            } else {
                null(f.data_type())
            };
            exprs.push((format!("__r_{}", f.name()), e));
        }
        s.without_event_time()
            .select_exprs(exprs)?
            .with_derived_event_time(TIME)
    };
    let both = project(&left.0, 0, &lt, &lk)
        .and_then(|l| project(&right.0, 1, &rt, &rk).and_then(|r| l.union(&r)))
        .map_err(|e| engine(&j.relation, e))?;
    // the output: left's columns, then right's (a clash renamed right_NAME)
    let mut fields: Vec<Arc<Field>> = Vec::new();
    for f in lschema.fields() {
        fields.push(Arc::new(f.as_ref().clone().with_nullable(true)));
    }
    for f in rschema.fields() {
        let mut name = f.name().clone();
        while fields.iter().any(|g| g.name() == &name) {
            name = format!("right_{name}");
        }
        fields.push(Arc::new(Field::new(name, f.data_type().clone(), true)));
    }
    let output = Arc::new(Schema::new(fields));
    let first = 2 + lk.len();
    let (nl, nr) = (lschema.fields().len(), rschema.fields().len());
    let right_types: Vec<SortField> = rschema
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    RowConverter::new(right_types.clone()).map_err(|e| {
        at_node(
            &j.relation,
            format!("a temporal join cannot keep versions of these column types: {e}"),
        )
    })?;
    let keys: Vec<String> = (0..lk.len()).map(|k| format!("__k{k}")).collect();
    let out = both
        .key_by(&keys)
        .and_then(|k| {
            k.process(output, move || AsOf {
                left: (first..first + nl).collect(),
                right: (first + nl..first + nl + nr).collect(),
                keep_unmatched,
                converter: RowConverter::new(right_types.clone())
                    .expect("the version layout was checked when planned"),
            })
        })
        .map_err(|e| engine(&j.relation, e))?;
    let (mut columns, next) = ls.moved(&out, 0, &[]);
    let (right_cols, _) = rs.moved(&out, next, &[]);
    columns.extend(right_cols);
    let scope = Scope::from_columns(columns);
    let mut out = out;
    for c in residual {
        let e = crate::expr::scalar(c, &crate::query::in_scope(&scope), functions)?;
        out = out.filter(e).map_err(|e| engine(c, e))?;
    }
    Ok((out, scope))
}

/// Per key: the current version of the right side's row (its time and its
/// columns in the arrow row format).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Version {
    current: Option<(i64, Vec<u8>)>,
}

/// Joins left rows with their key's current version (see the module's diagram).
pub(crate) struct AsOf {
    // config
    /// The combined rows' left and right columns.
    left: Vec<usize>,
    right: Vec<usize>,
    /// LEFT JOIN: a left row without a version comes with nulls.
    keep_unmatched: bool,
    converter: RowConverter,
}

impl std::fmt::Debug for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsOf")
            .field("keep_unmatched", &self.keep_unmatched)
            .finish()
    }
}

impl KeyedProcessFunction for AsOf {
    type State = Version;

    fn state_size(&self, state: &Version) -> usize {
        std::mem::size_of::<Version>() + state.current.as_ref().map_or(0, |(_, r)| r.len())
    }

    fn on_rows(
        &mut self,
        _key: &KeyRow,
        rows: &RecordBatch,
        state: &mut Version,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let fail = |e: arrow_schema::ArrowError| Error::Expr {
            expr: "FOR SYSTEM_TIME AS OF".into(),
            message: e.to_string(),
        };
        let sides = rows
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("the combined rows' first column is the side");
        let t = ctx.time();
        // right rows first: the last (by content) is the version from `t` on
        let versions: Vec<usize> = (0..rows.num_rows())
            .filter(|&i| sides.value(i) == 1)
            .collect();
        if let Some(&last) = versions.last() {
            let columns: Vec<ArrayRef> = self
                .right
                .iter()
                .map(|&c| rows.column(c).slice(last, 1))
                .collect();
            let encoded = self.converter.convert_columns(&columns).map_err(fail)?;
            state.current = Some((t, encoded.row(0).as_ref().to_vec()));
        }
        let lefts: Vec<u32> = (0..rows.num_rows() as u32)
            .filter(|&i| sides.value(i as usize) == 0)
            .collect();
        if lefts.is_empty() || (state.current.is_none() && !self.keep_unmatched) {
            return Ok(());
        }
        let n = lefts.len();
        let take = arrow_array::UInt32Array::from(lefts);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.left.len() + self.right.len());
        for &c in &self.left {
            columns.push(arrow_select::take::take(rows.column(c), &take, None).map_err(fail)?);
        }
        match &state.current {
            Some((_, version)) => {
                let parser = self.converter.parser();
                let one = self
                    .converter
                    .convert_rows(std::iter::once(parser.parse(version)))
                    .map_err(fail)?;
                let repeat = arrow_array::UInt32Array::from(vec![0u32; n]);
                for v in one {
                    columns.push(arrow_select::take::take(&v, &repeat, None).map_err(fail)?);
                }
            }
            None => {
                for &c in &self.right {
                    columns.push(arrow_array::new_null_array(rows.column(c).data_type(), n));
                }
            }
        }
        let batch = RecordBatch::try_new(ctx.output_schema().clone(), columns).map_err(fail)?;
        ctx.emit(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_kept_as_one_encoded_row() {
        let converter = RowConverter::new(vec![SortField::new(DataType::Int64)]).unwrap();
        let column: ArrayRef = Arc::new(Int64Array::from(vec![7]));
        let encoded = converter.convert_columns(&[column]).unwrap();
        let state = Version {
            current: Some((1, encoded.row(0).as_ref().to_vec())),
        };
        let parser = converter.parser();
        let back = converter
            .convert_rows(std::iter::once(
                parser.parse(&state.current.as_ref().unwrap().1),
            ))
            .unwrap();
        assert_eq!(back[0].len(), 1);
        assert_eq!(
            back[0]
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0),
            7
        );
    }
}
