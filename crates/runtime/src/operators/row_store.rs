//! Rows kept as Arrow columns by the ranks of insert-only inputs
//! ([`super::top_one`], [`super::top_n`]): the rows of an input batch that
//! are kept are gathered (`take`) into one stored batch, and whoever keeps
//! a row holds its [`Slot`]: the stored batch and the row's position there.
//! So a row is copied once on its way in, never encoded to a row format,
//! and no row has an allocation of its own. Outputs are gathered with one
//! `interleave` per column from the input batch and the stored ones.
//!
//! Each stored row remembers its owner (a key id). A row its owner let go
//! of stays in its batch until that batch is less than half live; then the
//! live rows of every such batch (and of the small batches, once there are
//! several) are merged into one new batch and their owners told where they
//! went. Each row copied there was paid for by a row let go, and stored
//! rows take at most about twice the memory of the live ones.

use arrow::array::{Array, ArrayRef, UInt32Array, new_empty_array};
use arrow::compute::{interleave, take};
use arrow::datatypes::SchemaRef;
use arrow::row::{Row, RowConverter, Rows};
use datafusion::error::{DataFusionError, Result};

/// A stored batch with fewer rows than this is merged with others like it.
const SMALL_BATCH_ROWS: usize = 4096;
/// How many small batches are merged at once: fewer would copy the same
/// rows again and again while small input batches trickle in.
const SMALL_BATCHES_TO_MERGE: usize = 8;

/// Where a kept row is: a stored batch and a row in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub batch: u32,
    pub row: u32,
}

/// A row [`RowStore::compact`] moved, for its owner to follow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moved {
    pub owner: u32,
    pub from: Slot,
    pub to: Slot,
}

/// Rows stored together.
#[derive(Debug)]
struct Stored {
    columns: Vec<ArrayRef>,
    /// The rows' sort keys, when rows are ordered by values.
    sort: Option<Rows>,
    /// The key id that keeps each row.
    owners: Vec<u32>,
    live: usize,
}

/// Stored batches of kept rows.
#[derive(Debug, Default)]
pub(crate) struct RowStore {
    batches: Vec<Option<Stored>>,
    /// Indexes of `batches` that hold nothing.
    free: Vec<u32>,
    /// Batches that lost rows since the last [`RowStore::compact`].
    shrunk: Vec<u32>,
}

impl RowStore {
    /// The batch index the next [`RowStore::store`] will use.
    pub(crate) fn next_batch(&self) -> u32 {
        self.free
            .last()
            .copied()
            .unwrap_or(self.batches.len() as u32)
    }

    /// Stores rows `rows` of `columns` (and of `sort`, their sort keys)
    /// kept by `owners`, as batch [`RowStore::next_batch`]; row `i` of it is
    /// `rows[i]`.
    pub(crate) fn store(
        &mut self,
        columns: &[ArrayRef],
        sort: Option<(&RowConverter, &Rows)>,
        rows: Vec<u32>,
        owners: Vec<u32>,
    ) -> Result<u32> {
        let sort = sort.map(|(converter, keys)| {
            let mut sort = converter.empty_rows(rows.len(), 0);
            for row in &rows {
                sort.push(keys.row(*row as usize));
            }
            sort
        });
        let indices = UInt32Array::from(rows);
        let columns = columns
            .iter()
            .map(|c| take(c, &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let stored = Stored {
            columns,
            sort,
            live: owners.len(),
            owners,
        };
        let batch = self.next_batch();
        match self.free.pop() {
            Some(free) => self.batches[free as usize] = Some(stored),
            None => self.batches.push(Some(stored)),
        }
        Ok(batch)
    }

    /// The sort key of a stored row, when rows are ordered by values.
    pub(crate) fn sort_key(&self, slot: Slot) -> Result<Option<Row<'_>>> {
        let stored = self.stored(slot.batch)?;
        Ok(stored.sort.as_ref().map(|s| s.row(slot.row as usize)))
    }

    /// Its owner no longer keeps the row at `slot`. The row can still be
    /// gathered until the next [`RowStore::compact`].
    pub(crate) fn release(&mut self, slot: Slot) -> Result<()> {
        let stored = self
            .batches
            .get_mut(slot.batch as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| missing(slot.batch))?;
        stored.live -= 1;
        self.shrunk.push(slot.batch);
        Ok(())
    }

    /// One `interleave` per column of `picks` from `first` (source 0) and
    /// the stored `batches` (sources 1 on).
    pub(crate) fn gather(
        &self,
        first: &[ArrayRef],
        batches: &[u32],
        picks: &[(usize, usize)],
    ) -> Result<Vec<ArrayRef>> {
        let stored = batches
            .iter()
            .map(|b| self.stored(*b))
            .collect::<Result<Vec<_>>>()?;
        (0..first.len())
            .map(|c| {
                let mut arrays: Vec<&dyn Array> = Vec::with_capacity(stored.len() + 1);
                arrays.push(first[c].as_ref());
                arrays.extend(stored.iter().map(|s| s.columns[c].as_ref()));
                Ok(interleave(&arrays, picks)?)
            })
            .collect()
    }

    /// The rows at `slots`, in that order, as columns of `schema`.
    pub(crate) fn rows(&self, slots: &[Slot], schema: &SchemaRef) -> Result<Vec<ArrayRef>> {
        let mut sources = Sources::with_batches(self.batches.len());
        let picks: Vec<(usize, usize)> = slots
            .iter()
            .map(|slot| (sources.of(slot.batch) - 1, slot.row as usize))
            .collect();
        let Some((first, rest)) = sources.batches.split_first() else {
            let empty = schema
                .fields()
                .iter()
                .map(|f| new_empty_array(f.data_type()));
            return Ok(empty.collect());
        };
        self.gather(&self.stored(*first)?.columns, rest, &picks)
    }

    /// Frees the batches left empty since the last call and merges those
    /// left less than half live, with the small batches once there are
    /// enough. `holds(owner, slot)` tells whether a row is still kept; the
    /// rows merged are returned with where they went.
    pub(crate) fn compact(
        &mut self,
        converter: Option<&RowConverter>,
        holds: impl Fn(u32, Slot) -> bool,
    ) -> Result<Vec<Moved>> {
        let mut shrunk = std::mem::take(&mut self.shrunk);
        shrunk.sort_unstable();
        shrunk.dedup();
        let mut merge = Vec::new();
        for b in shrunk {
            let stored = self.stored(b)?;
            if stored.live == 0 {
                self.batches[b as usize] = None;
                self.free.push(b);
            } else if stored.live * 2 < stored.owners.len() {
                merge.push(b);
            }
        }
        let small: Vec<u32> = self
            .batches
            .iter()
            .enumerate()
            .filter(|(b, s)| {
                s.as_ref().is_some_and(|s| {
                    s.owners.len() < SMALL_BATCH_ROWS && !merge.contains(&(*b as u32))
                })
            })
            .map(|(b, _)| b as u32)
            .collect();
        if small.len() >= SMALL_BATCHES_TO_MERGE {
            merge.extend(small);
        }
        let Some(first) = merge.first().copied() else {
            return Ok(Vec::new());
        };
        let mut picks = Vec::new();
        let mut owners = Vec::new();
        for (source, b) in merge.iter().enumerate() {
            let stored = self.stored(*b)?;
            for (row, owner) in stored.owners.iter().enumerate() {
                let slot = Slot {
                    batch: *b,
                    row: row as u32,
                };
                if holds(*owner, slot) {
                    picks.push((source, row));
                    owners.push(*owner);
                }
            }
        }
        let columns = self.gather(&self.stored(first)?.columns, &merge[1..], &picks)?;
        let sort = match converter {
            Some(converter) => {
                let mut sort = converter.empty_rows(picks.len(), 0);
                for (source, row) in &picks {
                    if let Some(rows) = &self.stored(merge[*source])?.sort {
                        sort.push(rows.row(*row));
                    }
                }
                Some(sort)
            }
            None => None,
        };
        let moved = picks
            .iter()
            .zip(&owners)
            .enumerate()
            .map(|(row, ((source, old_row), owner))| Moved {
                owner: *owner,
                from: Slot {
                    batch: merge[*source],
                    row: *old_row as u32,
                },
                to: Slot {
                    batch: first,
                    row: row as u32,
                },
            })
            .collect();
        for b in &merge[1..] {
            self.batches[*b as usize] = None;
            self.free.push(*b);
        }
        self.batches[first as usize] = Some(Stored {
            columns,
            sort,
            live: owners.len(),
            owners,
        });
        Ok(moved)
    }

    /// Rows stored, live or not, to tell how much memory released rows hold.
    #[cfg(test)]
    pub(crate) fn stored_rows(&self) -> usize {
        self.batches.iter().flatten().map(|s| s.owners.len()).sum()
    }

    fn stored(&self, batch: u32) -> Result<&Stored> {
        self.batches
            .get(batch as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| missing(batch))
    }
}

/// The stored batches an output gathers from, numbered from 1 in the order
/// first met (source 0 is the input batch).
pub(crate) struct Sources {
    pub batches: Vec<u32>,
    /// By batch index: its source number, or 0 if not yet met.
    numbers: Vec<usize>,
}

impl Sources {
    pub(crate) fn new(store: &RowStore) -> Self {
        Self::with_batches(store.batches.len())
    }

    fn with_batches(batches: usize) -> Self {
        Self {
            batches: Vec::new(),
            numbers: vec![0; batches],
        }
    }

    pub(crate) fn of(&mut self, batch: u32) -> usize {
        let number = &mut self.numbers[batch as usize];
        if *number == 0 {
            self.batches.push(batch);
            *number = self.batches.len();
        }
        *number
    }
}

fn missing(batch: u32) -> DataFusionError {
    DataFusionError::Internal(format!(
        "a kept row points at stored batch {batch}, which is gone"
    ))
}
