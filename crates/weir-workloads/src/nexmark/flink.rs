//! The generated events shaped as the Nexmark project's Flink tables, so
//! its SQL queries run unchanged: `person (id, name, emailAddress,
//! creditCard, city, state, dateTime, extra)`, `auction (id, itemName,
//! description, initialBid, reserve, dateTime, expires, seller, category,
//! extra)`, `bid (auction, bidder, price, channel, url, dateTime, extra)`.
//!
//! Owns [`FlinkTables`] and [`flink_tables`]. Times are epoch
//! milliseconds (SQL's `TIMESTAMP(3)` in weir). Columns weir's generator
//! has no source for are derived from the row, deterministically: a card
//! number from the person's id, a description from the item's name, a URL
//! from the bid's channel and bidder, and an empty `extra` (the reference
//! generator pads it with random text to reach an average event size).
//! May use `super`.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use weir_core::error::{Error, Result};

use super::Events;

/// The three Flink tables: each a schema and its splits of batches.
#[derive(Debug, Clone)]
pub struct FlinkTables {
    /// `person`.
    pub person: (SchemaRef, Vec<Vec<RecordBatch>>),
    /// `auction`.
    pub auction: (SchemaRef, Vec<Vec<RecordBatch>>),
    /// `bid`.
    pub bid: (SchemaRef, Vec<Vec<RecordBatch>>),
}

impl FlinkTables {
    /// The table called `name` (`person`, `auction` or `bid`).
    pub fn table(&self, name: &str) -> Option<&(SchemaRef, Vec<Vec<RecordBatch>>)> {
        match name {
            "person" => Some(&self.person),
            "auction" => Some(&self.auction),
            "bid" => Some(&self.bid),
            _ => None,
        }
    }
}

fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), false))
            .collect::<Vec<_>>(),
    ))
}

/// `events` as the Flink tables (see the module doc).
///
/// # Examples
/// ```
/// use weir::workloads::nexmark::{flink_tables, generate, NexmarkConfig};
/// let t = flink_tables(&generate(&NexmarkConfig { events: 500, ..NexmarkConfig::default() }))?;
/// let bid = &t.bid.0;
/// assert_eq!(bid.field(5).name(), "dateTime");
/// assert_eq!(t.bid.1.iter().flatten().map(|b| b.num_rows()).sum::<usize>(), 460);
/// # Ok::<(), weir::Error>(())
/// ```
pub fn flink_tables(events: &Events) -> Result<FlinkTables> {
    use DataType::{Int64, Utf8};
    let person = schema(&[
        ("id", Int64),
        ("name", Utf8),
        ("emailAddress", Utf8),
        ("creditCard", Utf8),
        ("city", Utf8),
        ("state", Utf8),
        ("dateTime", Int64),
        ("extra", Utf8),
    ]);
    let auction = schema(&[
        ("id", Int64),
        ("itemName", Utf8),
        ("description", Utf8),
        ("initialBid", Int64),
        ("reserve", Int64),
        ("dateTime", Int64),
        ("expires", Int64),
        ("seller", Int64),
        ("category", Int64),
        ("extra", Utf8),
    ]);
    let bid = schema(&[
        ("auction", Int64),
        ("bidder", Int64),
        ("price", Int64),
        ("channel", Utf8),
        ("url", Utf8),
        ("dateTime", Int64),
        ("extra", Utf8),
    ]);
    let reshape = |target: &SchemaRef,
                   splits: &[Vec<RecordBatch>],
                   make: &dyn Fn(&RecordBatch) -> Vec<ArrayRef>|
     -> Result<Vec<Vec<RecordBatch>>> {
        splits
            .iter()
            .map(|split| {
                split
                    .iter()
                    .map(|b| {
                        RecordBatch::try_new(target.clone(), make(b))
                            .map_err(|e| Error::Plan(format!("nexmark flink tables: {e}")))
                    })
                    .collect()
            })
            .collect()
    };
    let column = |b: &RecordBatch, name: &str| -> ArrayRef {
        Arc::clone(
            b.column_by_name(name)
                .expect("the generator's schemas hold every column read here"),
        )
    };
    let empty = |b: &RecordBatch| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            "",
            b.num_rows(),
        )))
    };
    let persons = reshape(&person, &events.persons, &|b| {
        let ids = b
            .column_by_name("id")
            .expect("id")
            .as_primitive::<Int64Type>();
        let cards: StringArray = ids
            .values()
            .iter()
            .map(|id| {
                let n = (*id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                Some(format!(
                    "{:04} {:04} {:04} {:04}",
                    n % 10_000,
                    (n >> 16) % 10_000,
                    (n >> 32) % 10_000,
                    (n >> 48) % 10_000
                ))
            })
            .collect();
        vec![
            column(b, "id"),
            column(b, "name"),
            column(b, "email"),
            Arc::new(cards),
            column(b, "city"),
            column(b, "state"),
            column(b, "date_time"),
            empty(b),
        ]
    })?;
    let auctions = reshape(&auction, &events.auctions, &|b| {
        let items = b
            .column_by_name("item_name")
            .expect("item_name")
            .as_string::<i32>();
        let description: StringArray = items
            .iter()
            .map(|i| i.map(|i| format!("{i} for sale")))
            .collect();
        vec![
            column(b, "id"),
            column(b, "item_name"),
            Arc::new(description),
            column(b, "initial_bid"),
            column(b, "reserve"),
            column(b, "date_time"),
            column(b, "expires"),
            column(b, "seller"),
            column(b, "category"),
            empty(b),
        ]
    })?;
    let bids = reshape(&bid, &events.bids, &|b| {
        let channel = b
            .column_by_name("channel")
            .expect("channel")
            .as_string::<i32>();
        let bidder = b
            .column_by_name("bidder")
            .expect("bidder")
            .as_primitive::<Int64Type>();
        let url: StringArray = channel
            .iter()
            .zip(bidder.values().iter())
            .map(|(c, who)| {
                c.map(|c| {
                    format!(
                        "https://www.nexmark.com/{}/item.htm?query=1&channel_id={}",
                        c.to_ascii_lowercase(),
                        who % 100
                    )
                })
            })
            .collect();
        vec![
            column(b, "auction"),
            column(b, "bidder"),
            column(b, "price"),
            column(b, "channel"),
            Arc::new(url),
            column(b, "date_time"),
            empty(b),
        ]
    })?;
    Ok(FlinkTables {
        person: (person, persons),
        auction: (auction, auctions),
        bid: (bid, bids),
    })
}
