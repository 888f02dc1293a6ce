//! The output layout of a join and the assembly of output batches.

use super::{JoinKind, JoinSpec, OutRow};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    new_null_array, Array, ArrayRef, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::KeyEncoder;
use weir_core::time::{event_times, validate_time_column};

/// Event times and windows of the rows of one input batch.
#[derive(Debug)]
pub struct RowTimes {
    times: Option<ScalarBuffer<i64>>,
    windows: Option<(Int64Array, Int64Array)>,
}

impl RowTimes {
    /// Row `r`'s event time (0 if the join uses none).
    pub fn time(&self, r: usize) -> i64 {
        self.times.as_ref().map_or(0, |t| t[r])
    }

    /// Row `r`'s `window_start`/`window_end` (same-window joins; else `(0, 0)`).
    pub fn window(&self, r: usize) -> (i64, i64) {
        self.windows
            .as_ref()
            .map_or((0, 0), |(a, e)| (a.value(r), e.value(r)))
    }
}

/// Output columns of a join and where they come from.
///
/// ```text
///  output = left columns | right columns (renamed right_NAME on a clash) |
///           window_start, window_end (window joins) | op (regular outer joins)
///  a side that may be padded has all its columns nullable
///  same-window joins: the inputs' window_start/window_end become the output's
/// ```
#[derive(Debug, Clone)]
pub struct JoinLayout {
    // config
    spec: JoinSpec,
    schema: SchemaRef,
    left_columns: Vec<usize>,
    right_columns: Vec<usize>,
    left_time: Option<usize>,
    right_time: Option<usize>,
    /// `window_start`, `window_end` of each input (same-window joins).
    left_window: Option<(usize, usize)>,
    right_window: Option<(usize, usize)>,
    left_keys: Vec<String>,
    right_keys: Vec<String>,
    left_input: SchemaRef,
    right_input: SchemaRef,
}

impl JoinLayout {
    /// Checks `spec` against the input schemas (keys exist with equal types,
    /// time columns for event-time joins) and lays out the output.
    pub fn try_new(
        left: &SchemaRef,
        right: &SchemaRef,
        left_time: Option<&str>,
        right_time: Option<&str>,
        spec: &JoinSpec,
    ) -> Result<Self> {
        spec.validate()?;
        let lk = KeyEncoder::try_new(left, &spec.left_keys, "join (left keys)")?;
        let rk = KeyEncoder::try_new(right, &spec.right_keys, "join (right keys)")?;
        for ((&li, &ri), name) in lk.indices().iter().zip(rk.indices()).zip(&spec.right_keys) {
            let (lt, rt) = (left.field(li).data_type(), right.field(ri).data_type());
            if lt != rt {
                return Err(Error::SchemaMismatch {
                    location: "join".into(),
                    message: format!(
                        "key `{}` is {lt} on the left but `{name}` is {rt} on the right",
                        left.field(li).name()
                    ),
                });
            }
        }
        let (mut left_t, mut right_t) = (None, None);
        if spec.needs_event_time() {
            fn need<'a>(t: Option<&'a str>, side: &str) -> Result<&'a str> {
                t.ok_or_else(|| {
                    Error::Plan(format!(
                        "a window or interval join needs event time on its {side} input (assign_timestamps at its source)"
                    ))
                })
            }
            left_t = Some(validate_time_column(
                left,
                need(left_time, "left")?,
                "join (left)",
            )?);
            right_t = Some(validate_time_column(
                right,
                need(right_time, "right")?,
                "join (right)",
            )?);
        }
        let window_cols = |s: &Schema, side: &str| -> Result<(usize, usize)> {
            let col = |name: &str| {
                let i = s.index_of(name).map_err(|_| {
                    Error::column(name, format!("join ({side})"), "a same-window join needs window_start and window_end columns (a window aggregate's output)")
                })?;
                if s.field(i).data_type() != &DataType::Int64 {
                    return Err(Error::column(
                        name,
                        format!("join ({side})"),
                        "must be Int64 (epoch ms)",
                    ));
                }
                Ok(i)
            };
            Ok((col("window_start")?, col("window_end")?))
        };
        let (left_window, right_window) = if spec.kind == JoinKind::SameWindow {
            (
                Some(window_cols(left, "left")?),
                Some(window_cols(right, "right")?),
            )
        } else {
            (None, None)
        };
        let skip = |w: Option<(usize, usize)>, i: usize| w.is_some_and(|(a, b)| i == a || i == b);
        let left_columns: Vec<usize> = (0..left.fields().len())
            .filter(|&i| !skip(left_window, i))
            .collect();
        let right_columns: Vec<usize> = (0..right.fields().len())
            .filter(|&i| !skip(right_window, i))
            .collect();
        let windowed = matches!(spec.kind, JoinKind::Window(_) | JoinKind::SameWindow);
        let mut reserved: Vec<String> = Vec::new();
        if windowed {
            reserved.extend(["window_start".into(), "window_end".into()]);
        }
        if spec.emits_changelog() {
            reserved.push("op".into());
        }
        let mut fields: Vec<Field> = Vec::new();
        for &i in &left_columns {
            let f = left.field(i);
            if reserved.contains(f.name()) {
                return Err(Error::column(
                    f.name(),
                    "join (left)",
                    "clashes with a column the join adds; rename it first",
                ));
            }
            fields.push(
                f.clone()
                    .with_nullable(f.is_nullable() || spec.join_type.keeps_right()),
            );
        }
        for &i in &right_columns {
            let f = right.field(i);
            let mut name = f.name().clone();
            while fields.iter().any(|g| g.name() == &name) || reserved.contains(&name) {
                name = format!("right_{name}");
            }
            fields.push(
                Field::new(
                    name,
                    f.data_type().clone(),
                    f.is_nullable() || spec.join_type.keeps_left(),
                )
                .with_metadata(f.metadata().clone()),
            );
        }
        if windowed {
            fields.push(Field::new("window_start", DataType::Int64, false));
            fields.push(Field::new("window_end", DataType::Int64, false));
        }
        if spec.emits_changelog() {
            fields.push(Field::new("op", DataType::Utf8, false));
        }
        Ok(JoinLayout {
            spec: spec.clone(),
            schema: Arc::new(Schema::new(fields)),
            left_columns,
            right_columns,
            left_time: left_t,
            right_time: right_t,
            left_window,
            right_window,
            left_keys: spec.left_keys.clone(),
            right_keys: spec.right_keys.clone(),
            left_input: left.clone(),
            right_input: right.clone(),
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The join spec.
    pub fn spec(&self) -> &JoinSpec {
        &self.spec
    }

    /// The input schema of a side (0 left, 1 right).
    pub fn input(&self, side: usize) -> &SchemaRef {
        if side == 0 {
            &self.left_input
        } else {
            &self.right_input
        }
    }

    /// A key encoder for a side (0 left, 1 right); both encode equal keys equally.
    pub fn key_encoder(&self, side: usize) -> Result<KeyEncoder> {
        if side == 0 {
            KeyEncoder::try_new(&self.left_input, &self.left_keys, "join (left keys)")
        } else {
            KeyEncoder::try_new(&self.right_input, &self.right_keys, "join (right keys)")
        }
    }

    /// The event-time column of a side, if the join uses event time.
    pub fn time_column(&self, side: usize) -> Option<usize> {
        if side == 0 {
            self.left_time
        } else {
            self.right_time
        }
    }

    /// The `window_start`/`window_end` columns of a side (same-window joins).
    pub fn window_columns(&self, side: usize) -> Option<(usize, usize)> {
        if side == 0 {
            self.left_window
        } else {
            self.right_window
        }
    }

    /// The event time and window of every row of a side's `batch`
    /// (0 and `(0, 0)` where the join uses none); `context` names it in errors.
    pub fn row_times(&self, side: usize, batch: &RecordBatch, context: &str) -> Result<RowTimes> {
        let times = match self.time_column(side) {
            Some(c) => {
                let times = event_times(batch, c, context)?;
                if let JoinKind::Window(w) = self.spec().kind {
                    let column = batch.schema().field(c).name().clone();
                    w.check_times(&times, &column, context)?;
                }
                Some(times)
            }
            None => None,
        };
        let windows = self.window_columns(side).map(|(a, e)| {
            (
                batch.column(a).as_primitive::<Int64Type>().clone(),
                batch.column(e).as_primitive::<Int64Type>().clone(),
            )
        });
        Ok(RowTimes { times, windows })
    }

    /// Builds the output rows of one window of a window join: row `i` is
    /// `left[li[i]]` beside `right[ri[i]]` (a null index pads that side)
    /// with `window`'s start and end. One `take` per column, no row lists.
    pub fn assemble_window(
        &self,
        left: &RecordBatch,
        right: &RecordBatch,
        li: &UInt32Array,
        ri: &UInt32Array,
        window: (i64, i64),
    ) -> Result<RecordBatch> {
        debug_assert!(matches!(
            self.spec.kind,
            JoinKind::Window(_) | JoinKind::SameWindow
        ));
        let n = li.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (batch, cols, idx) in [
            (left, &self.left_columns, li),
            (right, &self.right_columns, ri),
        ] {
            for &c in cols.iter() {
                let column = batch.column(c);
                columns.push(if idx.null_count() == n {
                    new_null_array(column.data_type(), n)
                } else {
                    arrow_select::take::take(column.as_ref(), idx, None)?
                });
            }
        }
        columns.push(Arc::new(Int64Array::from_value(window.0, n)));
        columns.push(Arc::new(Int64Array::from_value(window.1, n)));
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(n));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    /// Builds an output batch: `rows` index into `left` / `right` batches
    /// (`(batch, row)`), `None` for a padded side; `op` for changelogs.
    pub fn assemble(
        &self,
        left: &[&RecordBatch],
        right: &[&RecordBatch],
        rows: &[OutRow],
        op: Option<&[&str]>,
    ) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let n = rows.len();
        let side = |batches: &[&RecordBatch],
                    input: &Schema,
                    cols: &[usize],
                    pick: &dyn Fn(&OutRow) -> Option<(usize, usize)>,
                    out: &mut Vec<ArrayRef>|
         -> Result<()> {
            for &c in cols {
                let dt = input.field(c).data_type();
                if batches.is_empty() {
                    // nothing from this side: every row is padded
                    out.push(new_null_array(dt, n));
                    continue;
                }
                let nulls = new_null_array(dt, 1);
                let mut sources: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(c).as_ref()).collect();
                sources.push(nulls.as_ref());
                let pad = (batches.len(), 0);
                let idx: Vec<(usize, usize)> =
                    rows.iter().map(|r| pick(r).unwrap_or(pad)).collect();
                out.push(arrow_select::interleave::interleave(&sources, &idx)?);
            }
            Ok(())
        };
        side(
            left,
            &self.left_input,
            &self.left_columns,
            &|r: &OutRow| r.0,
            &mut columns,
        )?;
        side(
            right,
            &self.right_input,
            &self.right_columns,
            &|r: &OutRow| r.1,
            &mut columns,
        )?;
        if matches!(self.spec.kind, JoinKind::Window(_) | JoinKind::SameWindow) {
            let w = |r: &OutRow| r.2.expect("window joins give every row a window");
            columns.push(Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| w(r).0),
            )));
            columns.push(Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| w(r).1),
            )));
        }
        if self.spec.emits_changelog() {
            let ops: Vec<&str> = match op {
                Some(ops) => ops.to_vec(),
                None => vec!["insert"; rows.len()],
            };
            columns.push(Arc::new(StringArray::from(ops)));
        }
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }
}
