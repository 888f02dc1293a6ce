//! Helpers for the snapshots of keyed operators (windows, aggregates, the
//! event-time buffer): the key group of an encoded key, and typed access to
//! restored columns with errors that name the operator instead of panics
//! (restored bytes are input: a corrupt or foreign checkpoint must fail
//! cleanly).
//!
//! ```text
//!  encoded key (arrow-row bytes of the edge's key columns) ──stable_hash──► key_group
//!  = what the hash router computes, so put_keyed rows follow their keys on rescale
//! ```
//! May use `weir_core::key`, `weir_core::error`, the aggregate accumulators and the arrow crates.

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::key::{key_group, stable_hash};
use weir_functions::aggregate::{Accumulators, BoundAgg};

/// The key group of every encoded key, as the hash router assigns it (the
/// keys must be encoded by a `KeyEncoder` over the edge's key columns).
pub(crate) fn key_groups<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Vec<u16> {
    keys.into_iter()
        .map(|k| key_group(stable_hash(k)) as u16)
        .collect()
}

/// An [`Error::State`] of `operator`.
pub(crate) fn state_error(operator: &str, message: impl std::fmt::Display) -> Error {
    Error::State {
        operator: operator.to_string(),
        message: message.to_string(),
    }
}

/// Column `name` of restored `batch` as `T`, or an error naming the
/// operator, the entry and the column.
pub(crate) fn column<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    entry: &str,
    operator: &str,
) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            state_error(
                operator,
                format!("restored `{entry}` has no column `{name}` of the expected type"),
            )
        })
}

/// Checks that a restored batch of `entry` has the column types of
/// `expected` (the layout this operator writes; a checkpoint of an operator
/// with other aggregates or key columns fails here).
pub(crate) fn check_layout(
    batch: &RecordBatch,
    expected: &SchemaRef,
    entry: &str,
    operator: &str,
) -> Result<()> {
    let got: Vec<&DataType> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.data_type())
        .collect();
    let want: Vec<&DataType> = expected.fields().iter().map(|f| f.data_type()).collect();
    if got == want {
        Ok(())
    } else {
        Err(state_error(
            operator,
            format!(
                "restored `{entry}` has columns {got:?}, this operator expects {want:?} \
                 (was the job changed since the checkpoint?)"
            ),
        ))
    }
}

/// `e` as an [`Error::State`] naming `operator` (state and Arrow errors
/// raised while writing or reading a snapshot do not know the operator).
pub(crate) fn with_operator(e: Error, operator: &str) -> Error {
    match e {
        Error::State { message, .. } => state_error(operator, message),
        other => state_error(operator, other),
    }
}

/// Merges the watermarks old subtasks saved (after a rescale every new
/// subtask reads all of them): the highest, since every subtask saw the
/// same watermarks before the barrier and the highest is the one reached.
pub(crate) fn max_watermark(values: impl IntoIterator<Item = Option<i64>>) -> Option<i64> {
    values.into_iter().flatten().max()
}

/// A state layout: `fixed` columns, then the partial-state columns of each
/// aggregate (the encoding the spill code uses too).
pub(crate) fn layout(fixed: Vec<Field>, aggs: &[BoundAgg]) -> SchemaRef {
    let mut fields = fixed;
    for a in aggs {
        fields.extend(Accumulators::state_fields(a));
    }
    Arc::new(Schema::new(fields))
}

/// The partial states of `slots` of every accumulator, as columns.
pub(crate) fn acc_columns(accs: &[Accumulators], slots: &[u32]) -> Result<Vec<ArrayRef>> {
    let mut columns = Vec::new();
    for acc in accs {
        columns.extend(acc.to_state(slots)?);
    }
    Ok(columns)
}

/// Merges the partial states in the columns of `batch` from `first` on
/// (laid out by [`layout`]) into `slots` (one per row) of `accs`, which
/// must have room for them.
pub(crate) fn merge_acc_columns(
    accs: &mut [Accumulators],
    aggs: &[BoundAgg],
    slots: &[u32],
    batch: &RecordBatch,
    first: usize,
) -> Result<()> {
    let mut col = first;
    for (acc, agg) in accs.iter_mut().zip(aggs) {
        let width = Accumulators::state_fields(agg).len();
        let state: Vec<ArrayRef> = (col..col + width)
            .map(|c| batch.column(c).clone())
            .collect();
        acc.merge_state(slots, &state)?;
        col += width;
    }
    Ok(())
}
