//! Input batches kept as operator state, their rows referenced by chunk and
//! row number: rows wait in state without being copied, and a batch is
//! freed when its last referenced row is released. Used by operators whose
//! rows leave state in time order (interval joins, OVER aggregations), so
//! batches die whole rather than fragment.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::error::{DataFusionError, Result};

/// A row in a [`ChunkStore`]: (chunk id, row in the chunk).
pub(crate) type RowRef = (u32, u32);

#[derive(Debug)]
struct Chunk {
    batch: RecordBatch,
    /// Rows still referring to the chunk.
    live: usize,
}

#[derive(Debug, Default)]
pub(crate) struct ChunkStore {
    chunks: HashMap<u32, Chunk>,
    next: u32,
}

impl ChunkStore {
    /// The id the next inserted batch gets.
    pub(crate) fn next_id(&self) -> u32 {
        self.next
    }

    /// Keeps `batch`, of which `live` rows are referenced; returns its id.
    pub(crate) fn insert(&mut self, batch: RecordBatch, live: usize) -> u32 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        if live > 0 {
            self.chunks.insert(id, Chunk { batch, live });
        }
        id
    }

    /// One referenced row of `chunk` left state.
    pub(crate) fn release(&mut self, chunk: u32) {
        if let Some(c) = self.chunks.get_mut(&chunk) {
            c.live = c.live.saturating_sub(1);
            if c.live == 0 {
                self.chunks.remove(&chunk);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The columns of the rows `refs`, in order.
    pub(crate) fn columns(&self, refs: &[RowRef]) -> Result<Vec<ArrayRef>> {
        let mut order: Vec<u32> = Vec::new();
        let positions: Vec<(usize, usize)> = refs
            .iter()
            .map(|(chunk, row)| {
                let at = match order.iter().position(|c| c == chunk) {
                    Some(at) => at,
                    None => {
                        order.push(*chunk);
                        order.len() - 1
                    }
                };
                (at, *row as usize)
            })
            .collect();
        let batches = order
            .iter()
            .map(|c| {
                self.chunks
                    .get(c)
                    .map(|chunk| &chunk.batch)
                    .ok_or_else(|| DataFusionError::Internal("a stored row lost its chunk".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = batches.first() else {
            return Ok(Vec::new());
        };
        (0..first.num_columns())
            .map(|column| {
                let arrays: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(column).as_ref()).collect();
                Ok(arrow::compute::interleave(&arrays, &positions)?)
            })
            .collect()
    }
}
