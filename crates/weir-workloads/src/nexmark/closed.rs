//! Nexmark's closed-auction queries, q4 and q6: an auction closes at its
//! `expires` time, and its final price is its highest bid placed between
//! its opening and its expiry.
//!
//! Owns the two keyed process functions and the query builders. May use
//! `graph`, `operators` and the parent `nexmark` module.
//!
//! ```text
//!  auction (id, category, seller, expires, date_time) ⋈ bid (auction, price, date_time)
//!         (interval join on id = auction: bid within 22 s after the auction)
//!    ─► filter bid time <= expires ─► pair time = the bid's (never behind the join's watermark)
//!    ─► key_by auction: max price so far; timer at `expires` ─► one closed auction
//!  q4: key_by category ─► running average of final prices (a changelog: insert, update)
//!  q6: key_by seller  ─► average of the seller's last 10 final prices, per closed auction
//! ```
//! Auctions without a bid in their lifetime do not close (an inner join, as
//! Flink's Nexmark SQL).

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use weir_core::error::{Error, Result};
use weir_core::expr::col;
use weir_engine::graph::Stream;
use weir_functions::Agg;
use weir_operators::join::JoinSpec;
use weir_operators::{KeyRow, KeyedProcessFunction, ProcessContext};

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

/// Column `name` of `rows` as BIGINT: borrowed when it is one (the
/// functions run once per key and watermark: no copy on that path).
fn int<'a>(
    rows: &'a RecordBatch,
    name: &str,
) -> Result<std::borrow::Cow<'a, arrow_array::PrimitiveArray<Int64Type>>> {
    let c = rows
        .column_by_name(name)
        .ok_or_else(|| Error::column(name, "nexmark close", "missing"))?;
    if let Some(a) = c.as_primitive_opt::<Int64Type>() {
        return Ok(std::borrow::Cow::Borrowed(a));
    }
    Ok(std::borrow::Cow::Owned(
        arrow_cast::cast(c, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone(),
    ))
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
    // only the columns closing needs go through the join and the
    // event-time buffer (not names, descriptions, urls)
    let auctions = auctions.select(["id", "category", "seller", "expires", "date_time"])?;
    let bids = bids.select(["auction", "price", "date_time"])?;
    // bid time in [auction time, auction time + 22 s]: l.t in [r.t - 22 s, r.t]
    let pairs = auctions
        .join(
            &bids,
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

#[cfg(test)]
mod checkpoint_tests {
    //! q4/q6's stateful steps (the interval join, the close and q6's
    //! averages) through snapshot and restore, against uninterrupted runs.

    use super::*;
    use crate::nexmark::{auction_schema, bid_schema};
    use arrow_array::{ArrayRef, StringArray};
    use weir_core::operator::{Operator, TaskInfo};
    use weir_operators::checkpoint_harness::{
        encoders, run_uninterrupted, run_with_restore, sorted_rows, Event,
    };
    use weir_operators::join::{JoinLayout, SymmetricHashJoin};
    use weir_operators::KeyedProcessOperator;

    const PARALLELISM: [(usize, usize); 4] = [(1, 1), (2, 2), (2, 3), (3, 1)];

    fn rand(x: &mut u64, m: u64) -> u64 {
        *x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*x >> 33) % m
    }

    /// 40 auctions and bids on them, as (input, time, row) sorted by time.
    fn nexmark_rows() -> Vec<(usize, i64, RecordBatch)> {
        let mut x = 17u64;
        let mut rows = Vec::new();
        for id in 0..40i64 {
            let t = id * 700;
            let expires = t + 2_000 + rand(&mut x, 20_000) as i64;
            let a = RecordBatch::try_new(
                auction_schema(),
                vec![
                    Arc::new(Int64Array::from(vec![id])) as ArrayRef,
                    Arc::new(StringArray::from(vec!["item"])),
                    Arc::new(Int64Array::from(vec![10])),
                    Arc::new(Int64Array::from(vec![20])),
                    Arc::new(Int64Array::from(vec![t])),
                    Arc::new(Int64Array::from(vec![expires])),
                    Arc::new(Int64Array::from(vec![id % 5])),
                    Arc::new(Int64Array::from(vec![id % 3])),
                ],
            )
            .expect("auction");
            rows.push((0, t, a));
            for _ in 0..rand(&mut x, 5) {
                let bt = t + rand(&mut x, 24_000) as i64;
                let b = RecordBatch::try_new(
                    bid_schema(),
                    vec![
                        Arc::new(Int64Array::from(vec![id])) as ArrayRef,
                        Arc::new(Int64Array::from(vec![rand(&mut x, 9) as i64])),
                        Arc::new(Int64Array::from(vec![rand(&mut x, 1_000) as i64])),
                        Arc::new(StringArray::from(vec!["web"])),
                        Arc::new(Int64Array::from(vec![bt])),
                    ],
                )
                .expect("bid");
                rows.push((1, bt, b));
            }
        }
        rows.sort_by_key(|r| r.1);
        rows
    }

    /// Rows in time order, `per` at a time, each group followed by the
    /// watermark just below the next group's first time.
    fn events_of(rows: Vec<(usize, i64, RecordBatch)>, per: usize) -> Vec<Event> {
        let mut out = Vec::new();
        let groups: Vec<&[(usize, i64, RecordBatch)]> = rows.chunks(per).collect();
        for (g, group) in groups.iter().enumerate() {
            for input in 0..2 {
                let batches: Vec<RecordBatch> = group
                    .iter()
                    .filter(|r| r.0 == input)
                    .map(|r| r.2.clone())
                    .collect();
                if let Some(first) = batches.first() {
                    let b = arrow_select::concat::concat_batches(&first.schema(), &batches)
                        .expect("same schema");
                    out.push(Event::Batch(input, b));
                }
            }
            if let Some(next) = groups.get(g + 1) {
                out.push(Event::Watermark(next[0].1 - 1));
            }
        }
        out
    }

    /// The rows of `batches` one per entry, with the time in column `time`,
    /// sorted by time.
    fn split_rows(batches: &[RecordBatch], time: &str) -> Vec<(usize, i64, RecordBatch)> {
        let mut rows = Vec::new();
        for b in batches {
            let t = int(b, time).expect("time column");
            for i in 0..b.num_rows() {
                rows.push((0, t.value(i), b.slice(i, 1)));
            }
        }
        rows.sort_by_key(|r| r.1);
        rows
    }

    fn check(
        make: &dyn Fn(&TaskInfo) -> Result<Box<dyn Operator>>,
        keys: &[weir_core::key::KeyEncoder],
        events: &[Event],
    ) -> Vec<RecordBatch> {
        let out = run_uninterrupted(make, events);
        let want = sorted_rows(&out);
        assert!(!want.is_empty(), "the oracle has rows");
        for cut in [
            1,
            events.len() / 4,
            events.len() / 2,
            events.len() / 2 + 1,
            events.len() - 2,
        ] {
            for (p0, p1) in PARALLELISM {
                let got = sorted_rows(&run_with_restore(make, keys, events, cut, p0, p1));
                assert_eq!(got, want, "cut {cut}, parallelism {p0} -> {p1}");
            }
        }
        out
    }

    #[test]
    fn q4_q6_steps_restore_at_any_cut_and_parallelism() {
        // the interval join, keyed by id on the left and auction on the right
        let spec = JoinSpec::interval(Duration::from_millis(MAX_AUCTION_MS as u64), Duration::ZERO)
            .on(["id"], ["auction"]);
        let layout = JoinLayout::try_new(
            &auction_schema(),
            &bid_schema(),
            Some("date_time"),
            Some("date_time"),
            &spec,
        )
        .expect("join layout");
        let pairs_schema = layout.schema().clone();
        let join = move |_: &TaskInfo| -> Result<Box<dyn Operator>> {
            Ok(Box::new(SymmetricHashJoin::try_new(layout.clone())?))
        };
        let keys = encoders(
            &[&auction_schema(), &bid_schema()],
            &[&["id"], &["auction"]],
        );
        let pairs = check(&join, &keys, &events_of(nexmark_rows(), 5));

        // the close: pairs with the bid within the auction's lifetime
        let mut lifetime = Vec::new();
        for b in &pairs {
            let (bt, expires) = (
                int(b, "right_date_time").expect("bid time"),
                int(b, "expires").expect("expires"),
            );
            let keep: arrow_array::BooleanArray = (0..b.num_rows())
                .map(|i| Some(bt.value(i) <= expires.value(i)))
                .collect();
            lifetime.push(arrow_select::filter::filter_record_batch(b, &keep).expect("filter"));
        }
        let keys = encoders(&[&pairs_schema], &[&["id"]]);
        let close = move |info: &TaskInfo| -> Result<Box<dyn Operator>> {
            Ok(Box::new(KeyedProcessOperator::try_new(
                &pairs_schema,
                "right_date_time",
                &["id".into()],
                closed_schema(),
                CloseAuctions,
                &info.operator,
            )?))
        };
        let closed = check(
            &close,
            &keys,
            &events_of(split_rows(&lifetime, "right_date_time"), 4),
        );

        // q6: a seller's last finals
        let q6 = |info: &TaskInfo| -> Result<Box<dyn Operator>> {
            Ok(Box::new(KeyedProcessOperator::try_new(
                &closed_schema(),
                "date_time",
                &["seller".into()],
                q6_schema(),
                AverageLastFinals,
                &info.operator,
            )?))
        };
        let keys = encoders(&[&closed_schema()], &[&["seller"]]);
        check(&q6, &keys, &events_of(split_rows(&closed, "date_time"), 3));
    }
}
