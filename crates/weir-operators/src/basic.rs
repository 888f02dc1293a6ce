//! Stateless operators: filter, projection, user batch functions, pass-through.

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::expr::Expr;
use weir_core::operator::{Ctx, Operator, Output};
use weir_core::state::StateWriter;

/// Keeps the rows for which a boolean expression is true (null counts as false).
#[derive(Debug, Clone)]
pub struct Filter {
    predicate: Expr,
}

impl Filter {
    /// Checks that `predicate` is a boolean expression over `schema`.
    pub fn try_new(predicate: Expr, schema: &Schema) -> Result<Self> {
        let ty = predicate.data_type(schema)?;
        if ty != DataType::Boolean {
            return Err(Error::Expr {
                expr: predicate.to_string(),
                message: format!("a filter needs a boolean expression, this one is {ty}"),
            });
        }
        Ok(Filter { predicate })
    }
}

impl Operator for Filter {
    fn snapshot(&mut self, _: &mut Ctx, _: &mut StateWriter) -> Result<()> {
        Ok(()) // stateless
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        _: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let mask = self.predicate.evaluate(&batch)?;
        let mask = mask.as_boolean_opt().ok_or_else(|| Error::Expr {
            expr: self.predicate.to_string(),
            message: "did not evaluate to booleans".into(),
        })?;
        if mask.true_count() == batch.num_rows() && arrow_array::Array::null_count(mask) == 0 {
            out.emit(batch);
        } else {
            out.emit(arrow_select::filter::filter_record_batch(&batch, mask)?);
        }
        Ok(())
    }
}

/// Computes a new set of columns from expressions (`select`, `with_column`).
#[derive(Debug, Clone)]
pub struct Project {
    exprs: Vec<Expr>,
    schema: SchemaRef,
}

impl Project {
    /// Columns `(name, expr)` over `input`; fails on unknown columns or type errors.
    pub fn try_new(columns: Vec<(String, Expr)>, input: &Schema) -> Result<Self> {
        let mut fields = Vec::with_capacity(columns.len());
        let mut exprs = Vec::with_capacity(columns.len());
        for (name, expr) in columns {
            if fields.iter().any(|f: &Field| f.name() == &name) {
                return Err(Error::option(
                    "select",
                    format!("column `{name}` appears twice"),
                ));
            }
            let field = match &expr {
                Expr::Column(c) if c == &name => match input.field_with_name(c) {
                    Ok(f) => f.clone(),
                    Err(_) => Field::new(&name, expr.data_type(input)?, true),
                },
                _ => Field::new(&name, expr.data_type(input)?, true),
            };
            fields.push(field);
            exprs.push(expr);
        }
        Ok(Project {
            exprs,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The projected schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl Operator for Project {
    fn snapshot(&mut self, _: &mut Ctx, _: &mut StateWriter) -> Result<()> {
        Ok(()) // stateless
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        _: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let columns = self
            .exprs
            .iter()
            .map(|e| e.evaluate(&batch))
            .collect::<Result<Vec<_>>>()?;
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        out.emit(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?);
        Ok(())
    }
}

/// A user function from one batch to another.
pub type BatchFn = Arc<dyn Fn(RecordBatch) -> Result<RecordBatch> + Send + Sync>;

/// Applies a user function to every batch; checks the declared output schema.
pub struct MapBatches {
    f: BatchFn,
    schema: SchemaRef,
}

impl MapBatches {
    /// `f` must return batches whose schema equals `schema`.
    pub fn new(f: BatchFn, schema: SchemaRef) -> Self {
        MapBatches { f, schema }
    }
}

impl Operator for MapBatches {
    fn snapshot(&mut self, _: &mut Ctx, _: &mut StateWriter) -> Result<()> {
        Ok(()) // stateless
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        let result = (self.f)(batch)?;
        if result.schema().fields() != self.schema.fields() {
            return Err(Error::SchemaMismatch {
                location: format!("map_batches `{}`", ctx.operator()),
                message: format!(
                    "the function returned columns {:?}, declared {:?}",
                    field_list(&result.schema()),
                    field_list(&self.schema)
                ),
            });
        }
        out.emit(result);
        Ok(())
    }
}

fn field_list(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect()
}

/// Forwards everything unchanged (the body of `union`).
#[derive(Debug, Clone, Default)]
pub struct Passthrough;

impl Operator for Passthrough {
    fn snapshot(&mut self, _: &mut Ctx, _: &mut StateWriter) -> Result<()> {
        Ok(()) // stateless
    }

    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        _: &mut Ctx,
        out: &mut Output,
    ) -> Result<()> {
        out.emit(batch);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array};
    use weir_core::expr::{col, lit};
    use weir_core::message::Message;
    use weir_core::operator::{OperatorMetrics, RuntimeEnv, TaskInfo};

    pub(crate) fn test_ctx() -> Ctx {
        let env = RuntimeEnv::try_new(usize::MAX, None).unwrap();
        let info = TaskInfo {
            operator: "test".into(),
            subtask: 0,
            parallelism: 1,
        };
        Ctx::new(info, env, Arc::new(OperatorMetrics::default()))
    }

    pub(crate) fn batches(out: &mut Output) -> Vec<RecordBatch> {
        out.take()
            .into_iter()
            .filter_map(|m| match m {
                Message::Data(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    fn sample() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as _),
            (
                "speed",
                Arc::new(Float64Array::from(vec![
                    Some(10.0),
                    None,
                    Some(30.0),
                    Some(5.0),
                ])) as _,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn filter_keeps_true_rows_and_drops_nulls() {
        let b = sample();
        let mut f = Filter::try_new(col("speed").gt(lit(6.0)), &b.schema()).unwrap();
        let mut out = Output::new();
        f.on_batch(0, b, &mut test_ctx(), &mut out).unwrap();
        let got = batches(&mut out);
        let ids = got[0]
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(ids.values().to_vec(), vec![1, 3]);
    }

    #[test]
    fn filter_rejects_non_boolean_predicates() {
        let b = sample();
        let err = Filter::try_new(col("speed").add(lit(1.0)), &b.schema()).unwrap_err();
        assert!(err.to_string().contains("boolean"), "{err}");
    }

    #[test]
    fn project_computes_columns_and_names_them() {
        let b = sample();
        let mut p = Project::try_new(
            vec![
                ("id".into(), col("id")),
                ("double".into(), col("id").mul(lit(2))),
            ],
            &b.schema(),
        )
        .unwrap();
        assert_eq!(p.schema().field(1).name(), "double");
        let mut out = Output::new();
        p.on_batch(0, b, &mut test_ctx(), &mut out).unwrap();
        let got = batches(&mut out);
        let d = got[0]
            .column(1)
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(d.values().to_vec(), vec![2, 4, 6, 8]);
        let err =
            Project::try_new(vec![("x".into(), col("nope"))], &sample().schema()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn map_batches_checks_the_declared_schema() {
        let b = sample();
        let f: BatchFn = Arc::new(|b: RecordBatch| Ok(b.project(&[0])?));
        let mut m = MapBatches::new(f, b.schema());
        let err = m
            .on_batch(0, b, &mut test_ctx(), &mut Output::new())
            .unwrap_err();
        assert!(err.to_string().contains("map_batches"), "{err}");
    }
}
