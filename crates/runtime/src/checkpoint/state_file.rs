//! The bytes of an operator's state, as state files and cluster workers'
//! checkpoint reports hold them.
//!
//! A state is a run of Arrow IPC streams, one per run of batches with one
//! schema (a join's two sides, a watermark), and a footer:
//!
//! ```text
//! stream 1 | stream 2 | ... | length of each stream | stream count | "WEIRST01"
//! ```
//!
//! (numbers as u64, little-endian). The footer goes last, so a state is
//! written while it is encoded, a chunk at a time, and never lies whole in
//! memory a second time; large batches go out in slices of about
//! [`SLICE_BYTES`]. A reader takes the file as one buffer and decodes it
//! without copying: the restored arrays point into that buffer.

use std::io::Write;

use arrow::buffer::Buffer;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;

use crate::operator::OperatorState;

const MAGIC: &[u8; 8] = b"WEIRST01";

/// About how many bytes of a batch one IPC message holds: the encoder
/// copies a message whole before writing it.
const SLICE_BYTES: usize = 8 << 20;

/// Writes `state` to `out` and returns `out`.
pub fn write_state<W: Write>(state: &OperatorState, out: W) -> Result<W, ArrowError> {
    let mut out = Counting {
        inner: out,
        written: 0,
    };
    let mut lengths = Vec::new();
    for run in state.batches.chunk_by(|a, b| a.schema() == b.schema()) {
        let start = out.written;
        let mut writer = StreamWriter::try_new(&mut out, &run[0].schema())?;
        for batch in run {
            for slice in slices(batch) {
                writer.write(&slice)?;
            }
        }
        writer.finish()?;
        drop(writer);
        lengths.push(out.written - start);
    }
    for length in &lengths {
        out.write_all(&length.to_le_bytes())?;
    }
    out.write_all(&(lengths.len() as u64).to_le_bytes())?;
    out.write_all(MAGIC)?;
    Ok(out.inner)
}

/// A state as bytes, in memory.
pub fn encode_state(state: &OperatorState) -> Result<Vec<u8>, ArrowError> {
    write_state(state, Vec::new())
}

/// The state [`write_state`] wrote; an error says what is damaged.
pub fn decode_state(data: Buffer) -> Result<OperatorState, String> {
    let number = |at: usize| -> Result<u64, String> {
        data.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| "truncated".to_string())
    };
    let size = data.len();
    if size < 16 || data.get(size - 8..) != Some(MAGIC.as_slice()) {
        return Err("not a Weir state file".to_string());
    }
    let streams = usize::try_from(number(size - 16)?).map_err(|_| "truncated".to_string())?;
    let footer = streams
        .checked_mul(8)
        .and_then(|lengths| size.checked_sub(16 + lengths))
        .ok_or_else(|| "truncated".to_string())?;
    let mut batches = Vec::new();
    let mut at = 0usize;
    for stream in 0..streams {
        let length =
            usize::try_from(number(footer + 8 * stream)?).map_err(|_| "truncated".to_string())?;
        let end = at
            .checked_add(length)
            .filter(|end| *end <= footer)
            .ok_or_else(|| "truncated".to_string())?;
        let mut bytes = data.slice_with_length(at, length);
        let mut decoder = StreamDecoder::new();
        while let Some(batch) = decoder.decode(&mut bytes).map_err(|e| e.to_string())? {
            batches.push(batch);
        }
        decoder.finish().map_err(|e| e.to_string())?;
        at = end;
    }
    if at != footer {
        return Err("bytes between its streams and its footer".to_string());
    }
    Ok(OperatorState { batches })
}

/// `batch` in slices of about [`SLICE_BYTES`] (zero-copy).
fn slices(batch: &RecordBatch) -> impl Iterator<Item = RecordBatch> + '_ {
    let rows = batch.num_rows();
    let bytes = batch_bytes(batch).max(1);
    let per_slice = if bytes <= SLICE_BYTES {
        rows.max(1)
    } else {
        (rows * SLICE_BYTES / bytes).max(1)
    };
    // A batch without rows still goes out once, for its schema's sake.
    let starts = (0..rows.max(1)).step_by(per_slice);
    starts.map(move |start| batch.slice(start, per_slice.min(rows - start)))
}

/// The bytes of the values `batch` holds (a slice of a larger buffer, as
/// restored batches are, counts only its part).
pub(crate) fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// A writer that counts what went through it.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn numbers(values: Vec<i64>) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("n", DataType::Int64, false)]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(Int64Array::from(values))])
            .expect("batch")
    }

    fn texts(rows: usize, width: usize) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("s", DataType::Utf8, true)]);
        let values = StringArray::from_iter_values((0..rows).map(|i| format!("{i:0width$}")));
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(values)]).expect("batch")
    }

    #[test]
    fn a_state_round_trips_with_its_runs_of_schemas() {
        let state = OperatorState {
            batches: vec![
                numbers(vec![1, 2]),
                numbers(vec![3]),
                texts(3, 4),
                numbers(vec![]),
            ],
        };
        let bytes = encode_state(&state).expect("encode");
        let read = decode_state(Buffer::from_vec(bytes)).expect("decode");
        let rows = |s: &OperatorState| {
            let batches: Vec<_> = s.batches.iter().filter(|b| b.num_rows() > 0).collect();
            let by_schema = |b: &&RecordBatch| b.schema();
            (
                s.batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
                batches.iter().map(by_schema).collect::<Vec<_>>(),
            )
        };
        assert_eq!(rows(&read), rows(&state));
        assert_eq!(
            read.batches[0].column(0).as_ref(),
            state.batches[0].column(0).as_ref()
        );
        assert_eq!(
            read.batches[2].column(0).as_ref(),
            state.batches[2].column(0).as_ref()
        );
        // The empty batch keeps its schema.
        assert_eq!(read.batches.last().map(RecordBatch::num_rows), Some(0));
    }

    #[test]
    fn a_large_batch_is_written_in_slices_and_read_back_whole() {
        let batch = texts(200_000, 100);
        let state = OperatorState {
            batches: vec![batch.clone()],
        };
        let read =
            decode_state(Buffer::from_vec(encode_state(&state).expect("encode"))).expect("decode");
        assert!(read.batches.len() > 1, "{} slices", read.batches.len());
        let joined =
            arrow::compute::concat_batches(&batch.schema(), &read.batches).expect("concat");
        assert_eq!(joined, batch);
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let bytes = encode_state(&OperatorState {
            batches: vec![texts(10, 3)],
        })
        .expect("encode");
        assert!(decode_state(Buffer::from_vec(b"ARROW1".to_vec())).is_err());
        for cut in [1, 9, 20, bytes.len() / 2] {
            let mut damaged = bytes.clone();
            damaged.drain(..cut);
            assert!(
                decode_state(Buffer::from_vec(damaged)).is_err(),
                "cut {cut}"
            );
        }
        let mut huge_count = bytes.clone();
        let at = huge_count.len() - 16;
        huge_count[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_state(Buffer::from_vec(huge_count)).is_err());
    }
}
