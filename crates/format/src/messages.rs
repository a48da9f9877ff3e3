//! Formats over messages: records that arrive one per message (a Kafka
//! record's key or value) rather than as lines of a file.
//!
//! Decoding first hands the whole run of messages to the format
//! ([`RecordDecoder::decode_run`]): a line format joins them into one chunk
//! of lines for its vectorised decoder, so a Kafka poll decodes as fast as
//! a file chunk; avro frames them for arrow-avro's. Only when that cannot
//! map rows back to messages (a message holds a line break, is empty, or
//! fails to decode) are the messages decoded one by one, which also pins
//! an error to the message that caused it. Encoding is the mirror image
//! ([`RecordEncoder::encode_messages`]): one encoder call per batch, cut at
//! line ends, with a row-by-row fallback when a value holds a line break.

use std::ops::Range;

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use weir_common::StreamBatch;

use crate::{ChunkOrigin, FormatError, RecordDecoder, RecordEncoder};

/// Errors name messages by `locate`, not by a chunk's lines.
const NO_ORIGIN: ChunkOrigin<'static> = ChunkOrigin {
    source: "",
    byte_offset: 0,
    first_line: None,
};

/// The rows decoded from a run of messages.
#[derive(Debug)]
pub struct DecodedMessages {
    /// One row per kept message, in message order.
    pub batch: RecordBatch,
    /// The indices of the messages that gave a row; `None` when all did.
    pub kept: Option<Vec<usize>>,
}

/// Decodes `messages`, one record each. `locate(i)` describes where message
/// `i` comes from (e.g. "in topic 'bids' partition 0 at offset 17") for
/// errors. A malformed or empty message fails the call, unless
/// `ignore_parse_errors`, when it is left out of [`DecodedMessages::kept`].
pub fn decode_messages(
    decoder: &mut dyn RecordDecoder,
    format: &'static str,
    messages: &[&[u8]],
    ignore_parse_errors: bool,
    locate: &dyn Fn(usize) -> String,
) -> Result<DecodedMessages, FormatError> {
    let schema = decoder.output_schema();
    if !messages.is_empty()
        && let Some(batch) = decoder.decode_run(messages)
    {
        return Ok(DecodedMessages { batch, kept: None });
    }
    let mut batches = Vec::with_capacity(messages.len());
    let mut kept = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let location = || locate(index);
        let decoded = decoder
            .decode_record(message, &NO_ORIGIN)
            .map_err(|e| at_message(e, format, location()))?;
        let rows: usize = decoded.batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 1 {
            batches.extend(decoded.batches);
            kept.push(index);
        } else if !ignore_parse_errors {
            return Err(FormatError::MalformedMessage {
                format,
                location: location(),
                message: if message.is_empty() {
                    "the message is empty".to_string()
                } else {
                    format!("the message holds {rows} records instead of one")
                },
                hint: String::new(),
            });
        }
    }
    let batch = concat_batches(&schema, &batches)?;
    let kept = (kept.len() < messages.len()).then_some(kept);
    Ok(DecodedMessages { batch, kept })
}

/// [`RecordDecoder::decode_run`] for a line format: the messages as one
/// chunk of lines, `None` unless each gives exactly one row.
pub(crate) fn decode_joined<D: RecordDecoder + ?Sized>(
    decoder: &mut D,
    messages: &[&[u8]],
) -> Option<RecordBatch> {
    let joinable = messages
        .iter()
        .all(|m| !m.is_empty() && memchr::memchr2(b'\n', b'\r', m).is_none());
    if !joinable {
        return None;
    }
    let mut chunk = Vec::with_capacity(messages.iter().map(|m| m.len() + 1).sum());
    for message in messages {
        chunk.extend_from_slice(message);
        chunk.push(b'\n');
    }
    let decoded = decoder.decode(&chunk, &NO_ORIGIN).ok()?;
    let rows: usize = decoded.batches.iter().map(RecordBatch::num_rows).sum();
    if decoded.skipped != 0 || rows != messages.len() {
        return None;
    }
    concat_batches(&decoder.output_schema(), &decoded.batches).ok()
}

/// Restates a decoding error for a message: where it is, not which line.
fn at_message(error: FormatError, format: &'static str, location: String) -> FormatError {
    match error {
        FormatError::Malformed { message, hint, .. } => FormatError::MalformedMessage {
            format,
            location,
            message,
            hint,
        },
        other => other,
    }
}

/// Encodes each row of `batch` as one message: `out` receives the bytes and
/// `messages` the range of `out` holding each row's message. Row kinds are
/// written by a changelog format and refused by the others.
pub fn encode_messages(
    encoder: &mut dyn RecordEncoder,
    batch: &StreamBatch,
    out: &mut Vec<u8>,
    messages: &mut Vec<Range<usize>>,
) -> Result<(), FormatError> {
    encoder.encode_messages(batch, out, messages)
}

/// [`RecordEncoder::encode_messages`] for a line format: the batch's lines,
/// one message each.
pub(crate) fn encode_lines<E: RecordEncoder + ?Sized>(
    encoder: &mut E,
    batch: &StreamBatch,
    out: &mut Vec<u8>,
    messages: &mut Vec<Range<usize>>,
) -> Result<(), FormatError> {
    let start = out.len();
    let first = messages.len();
    encoder.encode_changes(batch, out)?;
    let mut line_start = start;
    for newline in memchr::memchr_iter(b'\n', &out[start..]) {
        messages.push(line_start..start + newline);
        line_start = start + newline + 1;
    }
    if messages.len() - first == batch.num_rows() {
        return Ok(());
    }
    // A value holds a line break: encode row by row.
    out.truncate(start);
    messages.truncate(first);
    for row in 0..batch.num_rows() {
        let row_start = out.len();
        encoder.encode_changes(&batch.slice(row, 1), out)?;
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        messages.push(row_start..out.len());
    }
    Ok(())
}
