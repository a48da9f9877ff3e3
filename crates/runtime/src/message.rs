//! What flows over the channels between subtasks.

use weir_common::{StreamBatch, Watermark};

/// A checkpoint barrier: everything before it belongs to checkpoint `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointBarrier {
    pub id: u64,
}

/// One item on a channel; control messages travel in order with the data.
#[derive(Debug, Clone)]
pub enum Message {
    Batch(StreamBatch),
    Watermark(Watermark),
    Barrier(CheckpointBarrier),
    /// The sender has no data for now ('table.exec.source.idle-timeout'):
    /// receivers stop waiting for its watermark until it sends again.
    Idle,
    /// The sender has no more messages; sent once, last.
    EndOfInput,
}
