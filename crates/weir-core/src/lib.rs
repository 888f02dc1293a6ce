//! # weir-core: what every layer of weir stands on
//!
//! Owns the vocabulary the other crates share: the one [`error::Error`], keys
//! and key groups, [`message::Message`] and watermarks, event time and
//! windows, expressions, the memory pool and its reservations, spill files,
//! state stores, and the operator contract ([`operator::Operator`],
//! [`operator::Source`], [`operator::SourceSpec`], `Ctx`, `Output`).
//!
//! May use the arrow crates and the standard library's neighbours (memmap2,
//! tempfile, postcard, serde, thiserror, libc); never another weir crate.
//! The compiler holds that: this crate depends on none.

pub mod compare;
pub mod error;
pub mod expr;
pub mod key;
pub mod lock;
pub mod memory;
pub mod message;
pub mod observe;
pub mod operator;
pub mod paths;
pub mod shard;
pub mod spill;
pub mod state;
pub mod time;

pub use error::{Error, Result};
