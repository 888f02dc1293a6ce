//! The checkpoint layout both pipelined joins share (so a checkpoint of
//! one restores into the other): the unkeyed watermark and epoch, and per
//! side the stored rows with their key group, epoch age and matched flag.
//!
//! May use `weir_core::key`, `weir_core::state`, `weir_core::error` and
//! the arrow crates.

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir_core::error::Result;
use weir_core::key::{key_group, stable_hash, KeyEncoder};
use weir_core::state::StateWriter;

/// The unkeyed checkpoint value (see [`JoinMeta`]).
pub(super) const META_ENTRY: &str = "join";

/// The keyed checkpoint entries of the stored rows of each side.
pub(super) const SIDE_ENTRIES: [&str; 2] = ["left_rows", "right_rows"];

/// The columns after a side's input columns in its checkpoint rows: the
/// row's epoch age (current epoch minus its epoch) and matched flag.
pub(super) const EXTRA: [&str; 2] = ["__weir_join_age", "__weir_join_matched"];

/// The unkeyed part of a join's checkpoint.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(super) struct JoinMeta {
    /// The last watermark processed (windows up to it fired).
    pub(super) watermark: i64,
    /// The epoch of rows arriving now (the symmetric join's spills so far).
    pub(super) epoch: u32,
}

/// The state columns of a side's checkpoint rows: the input columns, then
/// the epoch age and matched flag.
pub(super) fn state_schema(input: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(EXTRA[0], DataType::UInt32, false)));
    fields.push(Arc::new(Field::new(EXTRA[1], DataType::Boolean, false)));
    Arc::new(Schema::new(fields))
}

/// Writes the rows `input` of side `s` (its input schema `schema`) with
/// their epoch ages and matched flags as keyed state, each under the key
/// group of its join key (`keys`: the side's key encoder, as the exchange
/// hashes it).
pub(super) fn put_side_rows(
    s: usize,
    schema: &SchemaRef,
    keys: &KeyEncoder,
    input: &RecordBatch,
    ages: Vec<u32>,
    matched: Vec<bool>,
    state: &mut StateWriter,
) -> Result<()> {
    let n = input.num_rows();
    if n == 0 {
        return Ok(());
    }
    let encoded = keys.encode(input)?;
    let groups: Vec<u16> = (0..n)
        .map(|r| key_group(stable_hash(encoded.row(r).as_ref())) as u16)
        .collect();
    let mut columns: Vec<ArrayRef> = input.columns().to_vec();
    columns.push(Arc::new(UInt32Array::from(ages)));
    columns.push(Arc::new(BooleanArray::from(matched)));
    let batch = RecordBatch::try_new(state_schema(schema), columns)?;
    state.put_keyed(SIDE_ENTRIES[s], &batch, &groups)
}
