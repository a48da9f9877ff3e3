//! Moving messages between subtasks: the output side partitions batches over
//! the consumer's channels, the input side ([`InputGate`]) merges channels
//! and tracks the watermark.
//!
//! Channels are bounded tokio channels, so a full consumer makes its
//! producers wait: backpressure, with nothing dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Instant;

use arrow::array::UInt32Array;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use tokio::sync::mpsc;
use weir_common::{StreamBatch, Watermark};

use crate::graph::Partitioning;
use crate::message::{CheckpointBarrier, Message};
use crate::metrics::OperatorMetrics;

/// Capacity of each channel, in messages (batches are up to a few thousand rows).
pub const CHANNEL_CAPACITY: usize = 8;

/// Fixed seeds: the same key must land on the same subtask in every process,
/// and keyed state must be found again in the same key group after restore.
const KEY_HASH: RandomState = RandomState::with_seed(0x5745_4952);

/// The sending side of one edge for one producing subtask.
#[derive(Debug)]
pub struct OutputEdge {
    /// One sender per consuming subtask (just one for a forward edge).
    senders: Vec<mpsc::Sender<Message>>,
    partitioning: Partitioning,
    max_parallelism: usize,
    next_round_robin: usize,
    /// Where the time spent waiting for a full channel is counted.
    backpressure: Option<Arc<OperatorMetrics>>,
}

/// Where a batch goes: all of it to one channel, or a part to each.
enum Routed {
    Whole(usize),
    All,
    Parts(Vec<(usize, StreamBatch)>),
}

/// The consumer's channel closed: the job is ending or failing elsewhere.
#[derive(Debug)]
pub struct ConsumerGone;

impl OutputEdge {
    pub fn new(
        senders: Vec<mpsc::Sender<Message>>,
        partitioning: Partitioning,
        max_parallelism: usize,
        backpressure: Option<Arc<OperatorMetrics>>,
    ) -> Self {
        Self {
            senders,
            partitioning,
            max_parallelism,
            next_round_robin: 0,
            backpressure,
        }
    }

    pub async fn send_batch(&mut self, batch: StreamBatch) -> Result<Result<(), ConsumerGone>> {
        let routed = match &self.partitioning {
            _ if self.senders.len() == 1 => Routed::Whole(0),
            Partitioning::Forward | Partitioning::Global => Routed::Whole(0),
            Partitioning::Broadcast => Routed::All,
            Partitioning::Rebalance => {
                self.next_round_robin = (self.next_round_robin + 1) % self.senders.len();
                Routed::Whole(self.next_round_robin)
            }
            Partitioning::Hash(keys) => Routed::Parts(hash_split(
                &batch,
                keys,
                self.senders.len(),
                self.max_parallelism,
            )?),
        };
        Ok(match routed {
            Routed::Whole(i) => self.send(i, Message::Batch(batch)).await,
            Routed::All => self.broadcast(Message::Batch(batch)).await,
            Routed::Parts(parts) => {
                for (i, part) in parts {
                    if self.send(i, Message::Batch(part)).await.is_err() {
                        return Ok(Err(ConsumerGone));
                    }
                }
                Ok(())
            }
        })
    }

    /// Sends a control message to every consuming subtask.
    pub async fn broadcast(&self, message: Message) -> Result<(), ConsumerGone> {
        for i in 0..self.senders.len() {
            self.send(i, message.clone()).await?;
        }
        Ok(())
    }

    /// Sends to consumer `i`, counting the wait when its channel is full.
    async fn send(&self, i: usize, message: Message) -> Result<(), ConsumerGone> {
        let sender = &self.senders[i];
        let message = match sender.try_send(message) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(ConsumerGone),
            Err(mpsc::error::TrySendError::Full(message)) => message,
        };
        let waiting = Instant::now();
        let sent = sender.send(message).await.map_err(|_| ConsumerGone);
        if let Some(metrics) = &self.backpressure {
            metrics
                .backpressured_nanos
                .fetch_add(waiting.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        sent
    }

    pub async fn send_watermark(&self, watermark: Watermark) -> Result<(), ConsumerGone> {
        self.broadcast(Message::Watermark(watermark)).await
    }

    pub async fn send_barrier(&self, barrier: CheckpointBarrier) -> Result<(), ConsumerGone> {
        self.broadcast(Message::Barrier(barrier)).await
    }
}

/// The key group of each row: Flink's scheme, so keyed state can be
/// redistributed when a job is restored at another parallelism.
pub fn key_groups(
    batch: &StreamBatch,
    keys: &[Arc<dyn PhysicalExpr>],
    max_parallelism: usize,
) -> Result<Vec<usize>> {
    let rows = batch.num_rows();
    let arrays = keys
        .iter()
        .map(|k| k.evaluate(batch.data())?.into_array(rows))
        .collect::<Result<Vec<_>>>()?;
    key_groups_of(&arrays, rows, max_parallelism)
}

/// The key group of each row of evaluated key columns (all rows are in
/// group 0 when there are none, as they all go to one subtask).
pub fn key_groups_of(
    keys: &[arrow::array::ArrayRef],
    rows: usize,
    max_parallelism: usize,
) -> Result<Vec<usize>> {
    if keys.is_empty() {
        return Ok(vec![0; rows]);
    }
    let mut hashes = vec![0u64; rows];
    create_hashes(keys, &KEY_HASH, &mut hashes)?;
    Ok(hashes
        .iter()
        .map(|h| (*h % max_parallelism as u64) as usize)
        .collect())
}

/// The subtask that owns a key group (Flink's `computeOperatorIndexForKeyGroup`).
pub fn subtask_for_key_group(
    key_group: usize,
    parallelism: usize,
    max_parallelism: usize,
) -> usize {
    key_group * parallelism / max_parallelism
}

fn hash_split(
    batch: &StreamBatch,
    keys: &[Arc<dyn PhysicalExpr>],
    parallelism: usize,
    max_parallelism: usize,
) -> Result<Vec<(usize, StreamBatch)>> {
    let groups = key_groups(batch, keys, max_parallelism)?;
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); parallelism];
    for (row, group) in groups.into_iter().enumerate() {
        indices[subtask_for_key_group(group, parallelism, max_parallelism)].push(row as u32);
    }
    let mut parts = Vec::new();
    for (subtask, rows) in indices.into_iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let part = batch
            .take(&UInt32Array::from(rows))
            .map_err(crate::error::batch_error)?;
        parts.push((subtask, part));
    }
    Ok(parts)
}

/// What an [`InputGate`] yields.
#[derive(Debug)]
pub enum GateEvent {
    Batch {
        input: usize,
        batch: StreamBatch,
    },
    /// The minimum watermark over all live channels advanced.
    Watermark(Watermark),
    Barrier(CheckpointBarrier),
    /// Every live channel is idle: downstream should not wait for this one.
    Idle,
    /// Every channel ended.
    End,
}

/// One input channel of a subtask.
#[derive(Debug)]
pub struct InputChannel {
    pub receiver: mpsc::Receiver<Message>,
    /// The operator input this channel feeds.
    pub input: usize,
}

/// Merges the input channels of a subtask fairly, keeps their watermarks,
/// and aligns checkpoint barriers: a channel that delivered the barrier of
/// the checkpoint being aligned is not read again until every live channel
/// has delivered it, so the subtask's snapshot reflects exactly the rows
/// before the barrier on every channel.
#[derive(Debug)]
pub struct InputGate {
    channels: Vec<InputChannel>,
    watermarks: Vec<Watermark>,
    ended: Vec<bool>,
    idle: Vec<bool>,
    /// The checkpoint whose barrier is being aligned.
    aligning: Option<u64>,
    /// Channels that delivered the barrier being aligned.
    blocked: Vec<bool>,
    /// Whether `GateEvent::Idle` was returned and no data came since.
    reported_idle: bool,
    emitted: Watermark,
    next: usize,
}

impl InputGate {
    pub fn new(channels: Vec<InputChannel>) -> Self {
        let n = channels.len();
        Self {
            channels,
            watermarks: vec![Watermark::MIN; n],
            ended: vec![false; n],
            idle: vec![false; n],
            aligning: None,
            blocked: vec![false; n],
            reported_idle: false,
            emitted: Watermark::MIN,
            next: 0,
        }
    }

    pub async fn next(&mut self) -> GateEvent {
        loop {
            if let Some(barrier) = self.aligned() {
                return GateEvent::Barrier(barrier);
            }
            let Some((channel, message)) = self.receive().await else {
                return GateEvent::End;
            };
            if matches!(message, Message::Batch(_) | Message::Watermark(_)) {
                self.idle[channel] = false;
                self.reported_idle = false;
            }
            match message {
                Message::Batch(batch) => {
                    return GateEvent::Batch {
                        input: self.channels[channel].input,
                        batch,
                    };
                }
                Message::Watermark(w) => {
                    self.watermarks[channel] = self.watermarks[channel].max(w);
                    if let Some(w) = self.advance() {
                        return GateEvent::Watermark(w);
                    }
                }
                Message::Barrier(b) => {
                    match self.aligning {
                        // An older checkpoint's barrier that a newer one
                        // overtook cannot exist: channels are FIFO and
                        // sources inject barriers in order.
                        Some(id) if id > b.id => continue,
                        Some(id) if id < b.id => {
                            // The older checkpoint cannot complete here: a
                            // channel skipped it. Align the newer one.
                            self.blocked.iter_mut().for_each(|b| *b = false);
                            self.aligning = Some(b.id);
                        }
                        _ => self.aligning = Some(b.id),
                    }
                    self.blocked[channel] = true;
                }
                Message::Idle => {
                    self.idle[channel] = true;
                    if let Some(w) = self.advance() {
                        return GateEvent::Watermark(w);
                    }
                    let all_idle = (0..self.idle.len()).all(|i| self.idle[i] || self.ended[i]);
                    if all_idle && !self.reported_idle {
                        self.reported_idle = true;
                        return GateEvent::Idle;
                    }
                }
                Message::EndOfInput => {
                    self.ended[channel] = true;
                    if let Some(w) = self.advance() {
                        return GateEvent::Watermark(w);
                    }
                }
            }
        }
    }

    /// The barrier being aligned, once every channel delivered it or ended.
    fn aligned(&mut self) -> Option<CheckpointBarrier> {
        let id = self.aligning?;
        let done = (0..self.channels.len()).all(|i| self.blocked[i] || self.ended[i]);
        if !done {
            return None;
        }
        self.aligning = None;
        self.blocked.iter_mut().for_each(|b| *b = false);
        Some(CheckpointBarrier { id })
    }

    fn advance(&mut self) -> Option<Watermark> {
        // Ended and idle channels do not hold time back.
        let current = (0..self.watermarks.len())
            .filter(|i| !self.ended[*i] && !self.idle[*i])
            .map(|i| self.watermarks[i])
            .min()?;
        (current > self.emitted).then(|| {
            self.emitted = current;
            current
        })
    }

    /// The next message from any live channel, round-robin; `None` when all ended.
    async fn receive(&mut self) -> Option<(usize, Message)> {
        std::future::poll_fn(|cx| {
            let n = self.channels.len();
            let mut live = false;
            for step in 0..n {
                let i = (self.next + step) % n;
                if self.ended[i] || self.blocked[i] {
                    continue;
                }
                live = true;
                match self.channels[i].receiver.poll_recv(cx) {
                    Poll::Ready(Some(message)) => {
                        self.next = (i + 1) % n;
                        return Poll::Ready(Some((i, message)));
                    }
                    // A producer that vanished without EndOfInput failed; the
                    // job is being torn down, so treat the channel as ended.
                    Poll::Ready(None) => {
                        self.ended[i] = true;
                        return Poll::Ready(Some((i, Message::EndOfInput)));
                    }
                    Poll::Pending => {}
                }
            }
            if live {
                Poll::Pending
            } else {
                Poll::Ready(None)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a send that finds the channel full counts as backpressure.
    #[tokio::test]
    async fn waiting_for_a_full_channel_counts_as_backpressure() {
        let (tx, mut rx) = mpsc::channel(1);
        let metrics = Arc::new(OperatorMetrics::new("task", "op"));
        let edge = OutputEdge::new(
            vec![tx],
            Partitioning::Forward,
            128,
            Some(Arc::clone(&metrics)),
        );
        let backpressured = || metrics.backpressured_nanos.load(Ordering::Relaxed);
        edge.send_watermark(Watermark(1)).await.expect("room");
        assert_eq!(backpressured(), 0);
        let consumer = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            rx.recv().await
        };
        let (sent, received) = tokio::join!(edge.send_watermark(Watermark(2)), consumer);
        sent.expect("sent once the consumer took one");
        assert!(matches!(received, Some(Message::Watermark(Watermark(1)))));
        assert!(backpressured() >= 10_000_000, "{}", backpressured());
    }

    #[tokio::test]
    async fn watermark_is_the_minimum_over_live_channels() {
        let (tx0, rx0) = mpsc::channel(4);
        let (tx1, rx1) = mpsc::channel(4);
        let mut gate = InputGate::new(vec![
            InputChannel {
                receiver: rx0,
                input: 0,
            },
            InputChannel {
                receiver: rx1,
                input: 0,
            },
        ]);
        tx0.send(Message::Watermark(Watermark(10)))
            .await
            .expect("send");
        tx1.send(Message::Watermark(Watermark(5)))
            .await
            .expect("send");
        assert!(matches!(
            gate.next().await,
            GateEvent::Watermark(Watermark(5))
        ));
        tx1.send(Message::EndOfInput).await.expect("send");
        assert!(matches!(
            gate.next().await,
            GateEvent::Watermark(Watermark(10))
        ));
        tx0.send(Message::EndOfInput).await.expect("send");
        assert!(matches!(gate.next().await, GateEvent::End));
    }

    #[tokio::test]
    async fn idle_channels_do_not_hold_back_time() {
        let (tx0, rx0) = mpsc::channel(8);
        let (tx1, rx1) = mpsc::channel(8);
        let mut gate = InputGate::new(vec![
            InputChannel {
                receiver: rx0,
                input: 0,
            },
            InputChannel {
                receiver: rx1,
                input: 0,
            },
        ]);
        tx0.send(Message::Watermark(Watermark(10)))
            .await
            .expect("send");
        tx1.send(Message::Idle).await.expect("send");
        // Channel 1 never sent a watermark, but it is idle: time follows channel 0.
        assert!(matches!(
            gate.next().await,
            GateEvent::Watermark(Watermark(10))
        ));
        tx0.send(Message::Idle).await.expect("send");
        assert!(
            matches!(gate.next().await, GateEvent::Idle),
            "all channels idle"
        );
        // Data makes a channel active again; it holds time back from then on.
        tx1.send(Message::Watermark(Watermark(20)))
            .await
            .expect("send");
        assert!(matches!(
            gate.next().await,
            GateEvent::Watermark(Watermark(20))
        ));
        tx0.send(Message::Watermark(Watermark(15)))
            .await
            .expect("send");
        tx0.send(Message::Watermark(Watermark(30)))
            .await
            .expect("send");
        tx1.send(Message::EndOfInput).await.expect("send");
        // 30 waits for channel 1 (at 20) to end.
        assert!(matches!(
            gate.next().await,
            GateEvent::Watermark(Watermark(30))
        ));
    }

    #[tokio::test]
    async fn barriers_align_across_channels() {
        let (tx0, rx0) = mpsc::channel(8);
        let (tx1, rx1) = mpsc::channel(8);
        let mut gate = InputGate::new(vec![
            InputChannel {
                receiver: rx0,
                input: 0,
            },
            InputChannel {
                receiver: rx1,
                input: 0,
            },
        ]);
        let barrier = Message::Barrier(CheckpointBarrier { id: 1 });
        tx0.send(barrier.clone()).await.expect("send");
        tx0.send(Message::Watermark(Watermark(10)))
            .await
            .expect("send");
        tx1.send(Message::Watermark(Watermark(20)))
            .await
            .expect("send");
        tx1.send(barrier).await.expect("send");
        // Unaligned, watermark 10 (after channel 0's barrier) would come
        // out first; aligned, channel 0 is not read until channel 1's
        // barrier arrived.
        assert!(matches!(
            gate.next().await,
            GateEvent::Barrier(CheckpointBarrier { id: 1 })
        ));
        assert!(matches!(
            gate.next().await,
            GateEvent::Watermark(Watermark(10))
        ));
    }

    #[tokio::test]
    async fn an_ended_channel_counts_as_aligned() {
        let (tx0, rx0) = mpsc::channel(8);
        let (tx1, rx1) = mpsc::channel(8);
        let mut gate = InputGate::new(vec![
            InputChannel {
                receiver: rx0,
                input: 0,
            },
            InputChannel {
                receiver: rx1,
                input: 1,
            },
        ]);
        tx0.send(Message::Barrier(CheckpointBarrier { id: 3 }))
            .await
            .expect("send");
        tx1.send(Message::EndOfInput).await.expect("send");
        assert!(matches!(
            gate.next().await,
            GateEvent::Barrier(CheckpointBarrier { id: 3 })
        ));
    }

    #[test]
    fn hash_split_keeps_every_row_and_sends_equal_keys_together() {
        use arrow::array::{AsArray, Int64Array, RecordBatch};
        use arrow::datatypes::{DataType, Field, Int64Type, Schema};
        use datafusion::physical_expr::expressions::Column;

        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let keys: Vec<i64> = (0..1000).map(|i| i % 37).collect();
        let batch = StreamBatch::inserts(
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(keys))]).expect("batch"),
        );
        let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new("k", 0));
        let parts = hash_split(&batch, &[key], 4, 128).expect("split");
        let mut owner = std::collections::HashMap::new();
        let mut rows = 0;
        for (subtask, part) in &parts {
            rows += part.num_rows();
            for k in part.data().column(0).as_primitive::<Int64Type>().values() {
                assert_eq!(
                    *owner.entry(*k).or_insert(*subtask),
                    *subtask,
                    "key {k} on two subtasks"
                );
            }
        }
        assert_eq!(rows, 1000);
        assert!(
            parts.len() > 1,
            "37 keys should spread over several subtasks"
        );
    }

    #[test]
    fn key_groups_map_onto_subtasks_in_ranges() {
        assert_eq!(subtask_for_key_group(0, 4, 128), 0);
        assert_eq!(subtask_for_key_group(31, 4, 128), 0);
        assert_eq!(subtask_for_key_group(32, 4, 128), 1);
        assert_eq!(subtask_for_key_group(127, 4, 128), 3);
    }
}
