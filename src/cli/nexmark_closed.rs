//! Nexmark's closed-auction queries, q4 and q6: an auction closes at its
//! `expires` time, and its final price is its highest bid placed between
//! its opening and its expiry.
//!
//! Owns the two keyed process functions and the query builders. May use
//! `graph`, `operators` and the sibling `nexmark` module.
//!
//! ```text
//!  auction ⋈ bid  (interval join on id = auction: bid within 22 s after the auction)
//!    ─► filter bid time <= expires ─► pair time = the bid's (never behind the join's watermark)
//!    ─► key_by auction: max price so far; timer at `expires` ─► one closed auction
//!  q4: key_by category ─► running average of final prices (a changelog: insert, update)
//!  q6: key_by seller  ─► average of the seller's last 10 final prices, per closed auction
//! ```
//! Auctions without a bid in their lifetime do not close (an inner join, as
//! Flink's Nexmark SQL).

use crate::col;
use crate::error::{Error, Result};
use crate::graph::Stream;
use crate::operators::join::JoinSpec;
use crate::operators::{Agg, KeyRow, KeyedProcessFunction, ProcessContext};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// The longest auction (the generator's `expires` is 2 to 22 s after opening).
const MAX_AUCTION_MS: i64 = 22_000;
/// q6's window: a seller's last this many closed auctions.
const LAST_AUCTIONS: usize = 10;

/// `auction, category, seller, final, date_time` (the close time).
pub fn closed_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, false),
        Field::new("category", DataType::Int64, false),
        Field::new("seller", DataType::Int64, false),
        Field::new("final", DataType::Int64, false),
        Field::new("date_time", DataType::Int64, false),
    ]))
}

/// Per auction: the highest bid so far and what the close row needs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Open {
    max: Option<i64>,
    category: i64,
    seller: i64,
    expires: i64,
}

/// Closes auctions at their expiry (keyed by auction id).
#[derive(Debug, Default)]
pub struct CloseAuctions;

fn int(rows: &RecordBatch, name: &str) -> Result<arrow_array::PrimitiveArray<Int64Type>> {
    let c = rows
        .column_by_name(name)
        .ok_or_else(|| Error::column(name, "nexmark close", "missing"))?;
    Ok(arrow_cast::cast(c, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

impl KeyedProcessFunction for CloseAuctions {
    type State = Open;

    fn on_rows(
        &mut self,
        _key: &KeyRow,
        rows: &RecordBatch,
        state: &mut Open,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let (price, category, seller, expires) = (
            int(rows, "price")?,
            int(rows, "category")?,
            int(rows, "seller")?,
            int(rows, "expires")?,
        );
        for i in 0..rows.num_rows() {
            state.max = Some(state.max.map_or(price.value(i), |m| m.max(price.value(i))));
            state.category = category.value(i);
            state.seller = seller.value(i);
            state.expires = expires.value(i);
            ctx.register_event_timer(state.expires);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        key: &KeyRow,
        time: i64,
        state: &mut Open,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let Some(max) = state.max else {
            return Ok(());
        };
        let id = int(key.columns(), "id")?.value(0);
        let row = RecordBatch::try_new(
            closed_schema(),
            vec![
                Arc::new(Int64Array::from(vec![id])),
                Arc::new(Int64Array::from(vec![state.category])),
                Arc::new(Int64Array::from(vec![state.seller])),
                Arc::new(Int64Array::from(vec![max])),
                Arc::new(Int64Array::from(vec![time])),
            ],
        )?;
        ctx.emit(row)?;
        ctx.clear_state();
        Ok(())
    }
}

/// The closed auctions of `auctions` and `bids` (both with event time `date_time`).
pub fn closed_auctions(auctions: &Stream, bids: &Stream) -> Result<Stream> {
    // bid time in [auction time, auction time + 22 s]: l.t in [r.t - 22 s, r.t]
    let pairs = auctions
        .join(
            bids,
            JoinSpec::interval(Duration::from_millis(MAX_AUCTION_MS as u64), Duration::ZERO)
                .on(["id"], ["auction"]),
        )?
        .filter(col("right_date_time").lt_eq(col("expires")))?;
    // a pair is emitted when its later row (the bid) arrives, so the bid's
    // time is never behind the join's watermark
    pairs
        .with_derived_event_time("right_date_time")?
        .key_by(["id"])?
        .process(closed_schema(), || CloseAuctions)?
        // emitted at the close timer, for the timer's time
        .with_derived_event_time("date_time")
}

/// q4: the running average final price per category.
pub fn q4(auctions: &Stream, bids: &Stream) -> Result<Stream> {
    closed_auctions(auctions, bids)?
        .key_by(["category"])?
        .aggregate([
            Agg::avg("final").alias("avg_final"),
            Agg::count().alias("auctions"),
        ])
}

/// `seller, avg_final, date_time`: q6's output.
pub fn q6_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("seller", DataType::Int64, false),
        Field::new("avg_final", DataType::Float64, false),
        Field::new("date_time", DataType::Int64, false),
    ]))
}

/// A seller's last final prices.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LastFinals {
    finals: VecDeque<i64>,
}

/// q6's function: per closed auction, the average of the seller's last 10.
#[derive(Debug, Default)]
pub struct AverageLastFinals;

impl KeyedProcessFunction for AverageLastFinals {
    type State = LastFinals;

    fn state_size(&self, state: &LastFinals) -> usize {
        std::mem::size_of::<LastFinals>() + state.finals.capacity() * 8
    }

    fn on_rows(
        &mut self,
        key: &KeyRow,
        rows: &RecordBatch,
        state: &mut LastFinals,
        ctx: &mut ProcessContext,
    ) -> Result<()> {
        let seller = int(key.columns(), "seller")?.value(0);
        let finals = int(rows, "final")?;
        let mut avg = Vec::with_capacity(rows.num_rows());
        for f in finals.values() {
            if state.finals.len() == LAST_AUCTIONS {
                state.finals.pop_front();
            }
            state.finals.push_back(*f);
            let sum: i64 = state.finals.iter().sum();
            avg.push(sum as f64 / state.finals.len() as f64);
        }
        let n = rows.num_rows();
        ctx.emit(RecordBatch::try_new(
            q6_schema(),
            vec![
                Arc::new(Int64Array::from(vec![seller; n])),
                Arc::new(Float64Array::from(avg)),
                Arc::new(Int64Array::from(vec![ctx.time(); n])),
            ],
        )?)
    }
}

/// q6: per closed auction, the average final price of its seller's last 10.
pub fn q6(auctions: &Stream, bids: &Stream) -> Result<Stream> {
    closed_auctions(auctions, bids)?
        .key_by(["seller"])?
        .process(q6_schema(), || AverageLastFinals)
}
