//! The data model: what flows along an edge of the graph.
//!
//! Owns [`Message`], [`Watermark`] and [`CheckpointId`]. Every stream is a
//! sequence of messages: Arrow [`RecordBatch`]es interleaved with watermarks
//! and checkpoint barriers, closed by [`Message::End`]. May use nothing else
//! in the crate.

use arrow_array::RecordBatch;

/// Identifies a checkpoint; barriers carry it through the graph.
pub type CheckpointId = u64;

/// Event-time progress: "no row with a timestamp at or below this will follow".
///
/// Timestamps are epoch milliseconds (`i64`). An idle input says it has no
/// data for now and must not hold back the minimum across inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// All rows with event time `<= t` have been seen.
    EventTime(i64),
    /// The input has no data for now; ignore it when combining inputs.
    Idle,
}

impl Watermark {
    /// The watermark a bounded input emits after its last row: everything is complete.
    pub const MAX: Watermark = Watermark::EventTime(i64::MAX);

    /// The event time, if this is not [`Watermark::Idle`].
    pub fn event_time(self) -> Option<i64> {
        match self {
            Watermark::EventTime(t) => Some(t),
            Watermark::Idle => None,
        }
    }
}

/// One item on a channel between operators.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows.
    Data(RecordBatch),
    /// Rows on a side output (`port` >= 1), e.g. late rows of a source.
    Side(usize, RecordBatch),
    /// Event-time progress.
    Watermark(Watermark),
    /// A checkpoint barrier: state before it belongs to checkpoint `id`.
    Barrier(CheckpointId),
    /// A latency marker: the wall-clock time (epoch ms) a source subtask
    /// sent it. Executors pass it around operators (they never see it) to
    /// one consumer subtask per edge; the subtask ending in a sink records
    /// how long it took (Flink's latency markers).
    Latency(i64),
    /// No more messages will follow on this channel.
    End,
}

impl Message {
    /// Number of rows carried (0 for control messages).
    pub fn num_rows(&self) -> usize {
        match self {
            Message::Data(b) | Message::Side(_, b) => b.num_rows(),
            _ => 0,
        }
    }
}
