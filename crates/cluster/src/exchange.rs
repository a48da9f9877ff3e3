//! Channels between subtasks in different processes: each channel is one
//! client-streaming gRPC call whose first frame names the channel and whose
//! other frames are the channel's messages in order (Arrow IPC batches,
//! watermarks, barriers, idleness and the end of input).
//!
//! Backpressure: the receiving side awaits room in the consumer's bounded
//! channel before it reads the next frame, HTTP/2 flow control then stops
//! the sender, and the sending side stops taking from the producer's
//! bounded channel. Nothing is dropped, and memory stays bounded.
//!
//! A stream that ends before its end-of-input frame (a worker died, a
//! connection broke) fails the consuming job rather than looking like the
//! end of the data: the receiving side reports the failure and keeps the
//! consumer's channel open until the job is torn down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::UInt8Array;
use arrow::buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use futures::{Stream, StreamExt};
use tokio::sync::{Notify, mpsc};
use tonic::transport::{Channel, Endpoint};
use weir_common::{StreamBatch, Watermark};
use weir_runtime::deploy::ChannelId;
use weir_runtime::{CheckpointBarrier, JobId, Message, VertexId};

use crate::ClusterError;
use crate::proto::{self, frame::Kind};

/// How long a channel's first frame waits for its consumer to be deployed.
const DEPLOY_WAIT: Duration = Duration::from_secs(30);

pub fn encode(message: Message) -> Result<proto::Frame, ClusterError> {
    let kind = match message {
        Message::Batch(batch) => Kind::Batch(encode_batch(&batch)?),
        Message::Watermark(w) => Kind::Watermark(w.millis()),
        Message::Barrier(b) => Kind::Barrier(b.id),
        Message::Idle => Kind::Idle(proto::Empty {}),
        Message::EndOfInput => Kind::EndOfInput(proto::Empty {}),
    };
    Ok(proto::Frame { kind: Some(kind) })
}

/// The message a frame carries; a header is not a message.
pub fn decode(frame: proto::Frame) -> Result<Message, ClusterError> {
    match frame.kind {
        Some(Kind::Batch(batch)) => Ok(Message::Batch(decode_batch(batch)?)),
        Some(Kind::Watermark(w)) => Ok(Message::Watermark(Watermark(w))),
        Some(Kind::Barrier(id)) => Ok(Message::Barrier(CheckpointBarrier { id })),
        Some(Kind::Idle(_)) => Ok(Message::Idle),
        Some(Kind::EndOfInput(_)) => Ok(Message::EndOfInput),
        Some(Kind::Header(_)) => Err(ClusterError::Frame("a second header".into())),
        None => Err(ClusterError::Frame("an empty frame".into())),
    }
}

fn encode_batch(batch: &StreamBatch) -> Result<proto::Batch, ClusterError> {
    let data = batch.data();
    let mut ipc = Vec::with_capacity(data.get_array_memory_size() + 1024);
    let mut writer = StreamWriter::try_new(&mut ipc, &data.schema())
        .map_err(|e| ClusterError::Frame(e.to_string()))?;
    writer
        .write(data)
        .and_then(|()| writer.finish())
        .map_err(|e| ClusterError::Frame(e.to_string()))?;
    drop(writer);
    let ipc = bytes::Bytes::from(ipc);
    let row_kinds = batch
        .kinds()
        .map(|k| k.values().to_vec())
        .unwrap_or_default();
    Ok(proto::Batch { ipc, row_kinds })
}

fn decode_batch(batch: proto::Batch) -> Result<StreamBatch, ClusterError> {
    let bad = |e: &dyn std::fmt::Display| ClusterError::Frame(e.to_string());
    // The decoder reads the columns in place from the frame's bytes.
    let mut buffer = Buffer::from(batch.ipc);
    let data = StreamDecoder::new()
        .decode(&mut buffer)
        .map_err(|e| bad(&e))?
        .ok_or_else(|| ClusterError::Frame("a batch frame without a batch".into()))?;
    if batch.row_kinds.is_empty() {
        Ok(StreamBatch::inserts(data))
    } else {
        StreamBatch::try_new_changelog(data, UInt8Array::from(batch.row_kinds)).map_err(|e| bad(&e))
    }
}

/// The header naming a channel of a job attempt.
pub fn header(job: JobId, attempt: u32, channel: ChannelId) -> proto::ChannelHeader {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    proto::ChannelHeader {
        job_id: job.to_string(),
        attempt,
        from_vertex: n(channel.from.0),
        to_vertex: n(channel.to.0),
        producer: n(channel.producer),
        consumer: n(channel.consumer),
    }
}

/// Identifies an inbound channel of a job attempt on this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    pub job: JobId,
    pub attempt: u32,
    pub channel: ChannelId,
}

impl ChannelKey {
    pub fn from_header(header: &proto::ChannelHeader) -> Result<Self, ClusterError> {
        let job = header
            .job_id
            .parse()
            .map_err(|_| ClusterError::Frame(format!("bad job id '{}'", header.job_id)))?;
        Ok(Self {
            job,
            attempt: header.attempt,
            channel: ChannelId {
                from: VertexId(header.from_vertex as usize),
                to: VertexId(header.to_vertex as usize),
                producer: header.producer as usize,
                consumer: header.consumer as usize,
            },
        })
    }
}

/// Where an inbound channel's messages go, and where its failure goes.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub sender: mpsc::Sender<Message>,
    pub failures: mpsc::UnboundedSender<String>,
}

/// The inbound channels deployed on this process, waiting for their streams.
#[derive(Debug, Default)]
pub struct InboundRegistry {
    channels: Mutex<HashMap<ChannelKey, Inbound>>,
    registered: Notify,
}

impl InboundRegistry {
    pub fn register(&self, key: ChannelKey, inbound: Inbound) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.insert(key, inbound);
        }
        self.registered.notify_waiters();
    }

    /// Forgets a job's channels that never got their stream.
    pub fn remove_job(&self, job: JobId) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.retain(|key, _| key.job != job);
        }
    }

    /// Takes a channel, waiting for its consumer to be deployed.
    async fn take(&self, key: &ChannelKey) -> Option<Inbound> {
        let deadline = tokio::time::Instant::now() + DEPLOY_WAIT;
        loop {
            let registered = self.registered.notified();
            if let Some(inbound) = self.channels.lock().ok()?.remove(key) {
                return Some(inbound);
            }
            if tokio::time::timeout_at(deadline, registered).await.is_err() {
                return None;
            }
        }
    }

    /// Serves one inbound stream: its header, then its messages into the
    /// consumer's channel.
    pub async fn receive(
        &self,
        mut frames: tonic::Streaming<proto::Frame>,
    ) -> Result<(), tonic::Status> {
        let first = frames.message().await?;
        let Some(proto::Frame {
            kind: Some(Kind::Header(header)),
        }) = first
        else {
            return Err(tonic::Status::invalid_argument(
                "a channel must start with its header",
            ));
        };
        let key = ChannelKey::from_header(&header)?;
        let inbound = self.take(&key).await.ok_or_else(|| {
            tonic::Status::not_found(format!(
                "no subtask of job {} attempt {} waits for {}",
                key.job, key.attempt, key.channel
            ))
        })?;
        let outcome = forward_frames(&mut frames, &inbound.sender).await;
        if let Err(reason) = outcome {
            let message = format!("the channel {} broke: {reason}", key.channel);
            let _ = inbound.failures.send(message.clone());
            // Closing the consumer's channel now would read as its end of
            // input; hold it until the failed job is torn down.
            inbound.sender.closed().await;
            return Err(tonic::Status::aborted(message));
        }
        Ok(())
    }
}

/// Moves a stream's messages into a channel until its end of input.
async fn forward_frames(
    frames: &mut tonic::Streaming<proto::Frame>,
    sender: &mpsc::Sender<Message>,
) -> Result<(), String> {
    loop {
        let frame = frames
            .message()
            .await
            .map_err(|s| s.message().to_string())?
            .ok_or("the stream ended before its end of input")?;
        let message = decode(frame).map_err(|e| e.to_string())?;
        let last = matches!(message, Message::EndOfInput);
        if sender.send(message).await.is_err() {
            // The consumer is gone: its job is ending anyway.
            return Ok(());
        }
        if last {
            return Ok(());
        }
    }
}

/// HTTP/2 flow-control windows. The default 64 KiB stream window stalls a
/// sender after a fraction of one batch; these let a few batches be in
/// flight per channel, which still bounds memory.
pub(crate) const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
pub(crate) const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// A lazily connected channel to a peer's address.
pub fn connect_lazy(address: &str) -> Result<Channel, ClusterError> {
    Ok(Endpoint::from_shared(address.to_string())
        .map_err(|e| ClusterError::Connect {
            address: address.to_string(),
            message: e.to_string(),
        })?
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .connect_lazy())
}

/// The frames of an outbound channel: its header, then its messages.
/// Encoding runs in the sending task; the stream stops at the first frame
/// that does not encode, which the receiving side sees as a broken channel.
pub fn outbound_frames(
    header: proto::ChannelHeader,
    messages: impl Stream<Item = Message> + Send + 'static,
    failure: Arc<Mutex<Option<ClusterError>>>,
) -> impl Stream<Item = proto::Frame> + Send + 'static {
    let head = futures::stream::once(async move {
        proto::Frame {
            kind: Some(Kind::Header(header)),
        }
    });
    let body = messages
        .map(move |m| match encode(m) {
            Ok(frame) => Some(frame),
            Err(e) => {
                if let Ok(mut slot) = failure.lock() {
                    slot.get_or_insert(e);
                }
                None
            }
        })
        .take_while(|f| std::future::ready(f.is_some()))
        .filter_map(std::future::ready);
    head.chain(body)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn messages_survive_encoding() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        let data = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let changelog = StreamBatch::try_new_changelog(data.clone(), UInt8Array::from(vec![1, 2]))
            .unwrap_or_else(|e| panic!("{e}"));
        for message in [
            Message::Batch(StreamBatch::inserts(data)),
            Message::Batch(changelog),
            Message::Watermark(Watermark(42)),
            Message::Barrier(CheckpointBarrier { id: 7 }),
            Message::Idle,
            Message::EndOfInput,
        ] {
            let expected = format!("{message:?}");
            let frame = encode(message).unwrap_or_else(|e| panic!("{e}"));
            let back = decode(frame).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(format!("{back:?}"), expected);
        }
    }
}
