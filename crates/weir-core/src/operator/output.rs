//! Where an operator puts what it emits during one callback: [`Output`].
//!
//! May use `message` and the arrow crates.

use crate::message::{Message, Watermark};
use arrow_array::RecordBatch;

/// Where an operator puts what it emits during one callback.
#[derive(Debug, Default)]
pub struct Output {
    items: Vec<Message>,
}

impl Output {
    /// An empty output buffer.
    pub fn new() -> Self {
        Output::default()
    }

    /// Emits rows downstream (empty batches are dropped).
    pub fn emit(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.items.push(Message::Data(batch));
        }
    }

    /// Emits rows on side output `port` (>= 1): they go only to the
    /// consumers of that port, e.g. a sink for late rows.
    pub fn emit_side(&mut self, port: usize, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.items.push(Message::Side(port, batch));
        }
    }

    /// Emits a watermark downstream.
    pub fn emit_watermark(&mut self, wm: Watermark) {
        self.items.push(Message::Watermark(wm));
    }

    /// Emits any message (barriers, for operators that forward them).
    pub fn push(&mut self, msg: Message) {
        self.items.push(msg);
    }

    /// True if nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes the emitted messages, in order.
    pub fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.items)
    }
}
