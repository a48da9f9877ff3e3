//! Machinery shared by the line-oriented decoders.
//!
//! Decoders parse a whole chunk at once; only when that fails do they cut the
//! chunk into [`RecordSpan`]s and call [`recover`], which bisects the chunk
//! (decoding halves with the same fast decoder) until each failure is pinned to
//! a single record. That keeps the common case vectorised and the bad case
//! O(bad · log n) decoder calls, while good records still come out in large
//! batches and in input order.
//!
//! It also holds the column conversions both CSV and JSON need because arrow's
//! decoders read some Flink types through a stand-in Arrow type (BYTES travel
//! as base64 text).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, LargeBinaryBuilder, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::{ChunkOrigin, FormatError};

/// One record's place within a chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordSpan {
    /// Offset of the record's first byte in the chunk.
    pub start: usize,
    /// Offset just past the record (its line terminator included when present).
    pub end: usize,
    /// 0-based index of the record's first line within the chunk.
    pub line: u64,
}

/// Splits a chunk at `\n`, dropping lines that are empty once a trailing `\r`
/// is removed. Spans exclude the terminator.
pub(crate) fn split_lines(chunk: &[u8]) -> Vec<RecordSpan> {
    let mut spans = Vec::new();
    let mut start = 0;
    let mut line = 0;
    let mut push = |start: usize, end: usize, line: u64| {
        let trimmed = if end > start && chunk[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        if trimmed > start {
            spans.push(RecordSpan {
                start,
                end: trimmed,
                line,
            });
        }
    };
    for newline in memchr::memchr_iter(b'\n', chunk) {
        push(start, newline, line);
        start = newline + 1;
        line += 1;
    }
    push(start, chunk.len(), line);
    spans
}

/// Upper bound on the number of records in `bytes`, used as the batch size so a
/// chunk decodes into one batch without over-allocating.
pub(crate) fn max_records(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count() + 1
}

/// What to do with a record that failed to decode on its own.
pub(crate) enum BadRecord {
    /// Drop it and count it as skipped.
    Skip,
    /// Keep this one-row batch in its place (a repaired record).
    Replace(RecordBatch),
}

/// The good rows of a chunk whose fast decode failed.
pub(crate) struct Recovered {
    pub batch: Option<RecordBatch>,
    pub skipped: u64,
}

/// Decodes a contiguous byte range of a chunk into at most one batch.
pub(crate) type DecodeRange<'a> = dyn FnMut(&[u8]) -> Result<Option<RecordBatch>, ArrowError> + 'a;

/// Decides the fate of one record that does not decode on its own.
pub(crate) type OnBad<'a> =
    dyn FnMut(&RecordSpan, ArrowError) -> Result<BadRecord, FormatError> + 'a;

/// Bisects `spans` to isolate the records that `decode_range` rejects, passing
/// each one to `on_bad` (which either fails the chunk or says how to recover).
/// `decode_range` decodes a contiguous byte range of the chunk into at most one batch.
pub(crate) fn recover(
    chunk: &[u8],
    spans: &[RecordSpan],
    schema: &SchemaRef,
    decode_range: &mut DecodeRange<'_>,
    on_bad: &mut OnBad<'_>,
) -> Result<Recovered, FormatError> {
    let mut state = Bisection {
        chunk,
        decode_range,
        on_bad,
        batches: Vec::new(),
        skipped: 0,
    };
    state.run(spans)?;
    let batch = match state.batches.len() {
        0 => None,
        1 => state.batches.pop(),
        _ => Some(concat_batches(schema, &state.batches)?),
    };
    Ok(Recovered {
        batch,
        skipped: state.skipped,
    })
}

struct Bisection<'a> {
    chunk: &'a [u8],
    decode_range: &'a mut DecodeRange<'a>,
    on_bad: &'a mut OnBad<'a>,
    batches: Vec<RecordBatch>,
    skipped: u64,
}

impl Bisection<'_> {
    fn run(&mut self, spans: &[RecordSpan]) -> Result<(), FormatError> {
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            return Ok(());
        };
        match (self.decode_range)(&self.chunk[first.start..last.end]) {
            Ok(batch) => {
                self.batches.extend(batch.filter(|b| b.num_rows() > 0));
                Ok(())
            }
            Err(error) if spans.len() == 1 => match (self.on_bad)(first, error)? {
                BadRecord::Skip => {
                    self.skipped += 1;
                    Ok(())
                }
                BadRecord::Replace(batch) => {
                    self.batches.push(batch);
                    Ok(())
                }
            },
            Err(_) => {
                let (left, right) = spans.split_at(spans.len() / 2);
                self.run(left)?;
                self.run(right)
            }
        }
    }
}

/// Builds the error for a record that cannot be decoded.
pub(crate) fn malformed(
    format: &'static str,
    origin: &ChunkOrigin<'_>,
    span: &RecordSpan,
    message: String,
    hint: String,
) -> FormatError {
    FormatError::Malformed {
        format,
        source_name: origin.source.to_string(),
        line: origin.first_line.map(|first| first + span.line),
        byte_offset: origin.byte_offset + span.start as u64,
        message,
        hint,
    }
}

/// Strips the category prefix arrow puts in front of its messages
/// ("Parser error: ...") so that ours read as one sentence.
pub(crate) fn arrow_message(error: &ArrowError) -> String {
    match error {
        ArrowError::ParseError(message)
        | ArrowError::CsvError(message)
        | ArrowError::JsonError(message)
        | ArrowError::CastError(message)
        | ArrowError::InvalidArgumentError(message)
        | ArrowError::SchemaError(message)
        | ArrowError::ComputeError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// How a column read through a stand-in type becomes its real type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conversion {
    /// Read as the real type.
    None,
    /// Read as Utf8, the column is LargeUtf8.
    LargeUtf8,
    /// Read as Utf8 holding base64 (Flink's encoding of BYTES in text formats).
    Base64 { large: bool },
}

impl Conversion {
    /// The stand-in type to read `data_type` as, for text formats.
    pub fn for_type(data_type: &DataType) -> (Conversion, DataType) {
        match data_type {
            DataType::LargeUtf8 => (Conversion::LargeUtf8, DataType::Utf8),
            DataType::Binary => (Conversion::Base64 { large: false }, DataType::Utf8),
            DataType::LargeBinary => (Conversion::Base64 { large: true }, DataType::Utf8),
            other => (Conversion::None, other.clone()),
        }
    }

    /// Converts a decoded stand-in column into the real type.
    pub fn apply(self, array: ArrayRef) -> Result<ArrayRef, ArrowError> {
        match self {
            Conversion::None => Ok(array),
            Conversion::LargeUtf8 => arrow::compute::cast(&array, &DataType::LargeUtf8),
            Conversion::Base64 { large } => decode_base64(&array, large),
        }
    }
}

fn decode_base64(array: &ArrayRef, large: bool) -> Result<ArrayRef, ArrowError> {
    let strings = array.as_string_opt::<i32>().ok_or_else(|| {
        ArrowError::CastError(format!(
            "expected base64 text, got a {} column",
            array.data_type()
        ))
    })?;
    let decode = |text: &str| {
        BASE64.decode(text).map_err(|error| {
            ArrowError::ParseError(format!("cannot decode '{text}' as base64: {error}"))
        })
    };
    if large {
        let mut builder = LargeBinaryBuilder::with_capacity(strings.len(), strings.len() * 8);
        for value in strings.iter() {
            match value {
                Some(text) => builder.append_value(decode(text)?),
                None => builder.append_null(),
            }
        }
        Ok(Arc::new(builder.finish()))
    } else {
        let mut builder = BinaryBuilder::with_capacity(strings.len(), strings.len() * 8);
        for value in strings.iter() {
            match value {
                Some(text) => builder.append_value(decode(text)?),
                None => builder.append_null(),
            }
        }
        Ok(Arc::new(builder.finish()))
    }
}

/// Turns the NULLs of a text column into empty strings: arrow's CSV reader reads
/// an empty field as NULL, but Flink reads it as `''` for STRING and BYTES columns.
pub(crate) fn nulls_to_empty(array: ArrayRef) -> ArrayRef {
    if array.null_count() == 0 {
        return array;
    }
    if let Some(strings) = array.as_string_opt::<i32>() {
        let filled: StringArray = strings.iter().map(|v| Some(v.unwrap_or(""))).collect();
        return Arc::new(filled);
    }
    if let Some(views) = array.as_string_view_opt() {
        let filled: arrow::array::StringViewArray =
            views.iter().map(|v| Some(v.unwrap_or(""))).collect();
        return Arc::new(filled);
    }
    array
}

/// Whether Flink treats an empty CSV field of this type as an empty value
/// rather than NULL (character and binary strings).
pub(crate) fn is_text_like(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_skips_blank_lines_and_carriage_returns() {
        let chunk = b"a\r\n\nbb\n\r\nccc";
        let spans = split_lines(chunk);
        let texts: Vec<(&[u8], u64)> = spans
            .iter()
            .map(|s| (&chunk[s.start..s.end], s.line))
            .collect();
        assert_eq!(
            texts,
            vec![(&b"a"[..], 0), (&b"bb"[..], 2), (&b"ccc"[..], 4)]
        );
    }

    #[test]
    fn base64_round_trip_and_error() {
        let input: ArrayRef = Arc::new(StringArray::from(vec![Some("AQID"), None]));
        let out = Conversion::Base64 { large: false }.apply(input).unwrap();
        let binary = out.as_binary::<i32>();
        assert_eq!(binary.value(0), &[1, 2, 3]);
        assert!(binary.is_null(1));
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["!!"]));
        assert!(Conversion::Base64 { large: true }.apply(bad).is_err());
    }
}
