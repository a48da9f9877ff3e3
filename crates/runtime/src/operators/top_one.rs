//! The state of a rank that keeps one row per key of an insert-only input:
//! `ROW_NUMBER() ... = 1`, which Flink plans as a Deduplicate when it is
//! ordered by a time attribute. A key's row is replaced by a better one and
//! never removed, so a batch emits `+I` for a new key and `-U old`/`+U new`
//! for a replaced row.
//!
//! Rows are kept as Arrow columns, in the batches they were stored with: the
//! rows of an input batch that took their key's place are gathered (`take`)
//! into one stored batch, and a key's [`Slot`] names its row's batch and
//! position. So a row is copied once on its way in, not encoded to a row
//! format, and no key has an allocation of its own. The output is gathered
//! in one `interleave` per column from the newly stored rows and the
//! replaced ones.
//!
//! A replaced row stays in its batch until that batch is less than half
//! live, when the live rows of every such batch (and of the small batches,
//! once there are several) are merged into one new batch. Each row copied
//! there was paid for by a row replaced, and stored rows take at most about
//! twice the memory of the live ones.

use arrow::array::{Array, ArrayRef, UInt32Array, new_empty_array};
use arrow::compute::{interleave, take};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows};
use datafusion::error::{DataFusionError, Result};
use weir_common::RowKind;

/// A stored batch with fewer rows than this is merged with others like it.
const SMALL_BATCH_ROWS: usize = 4096;
/// How many small batches are merged at once: fewer would copy the same
/// rows again and again while small input batches trickle in.
const SMALL_BATCHES_TO_MERGE: usize = 8;

const NONE: u32 = u32::MAX;

/// Where a key's row is: a stored batch and a row in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    batch: u32,
    row: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        batch: NONE,
        row: NONE,
    };
}

/// Rows stored together.
#[derive(Debug)]
struct Stored {
    columns: Vec<ArrayRef>,
    /// The rows' sort keys, when rows are ordered by values.
    sort: Option<Rows>,
    /// The key each row was stored for; a row is live while its key's slot
    /// points at it.
    keys: Vec<u32>,
    live: usize,
}

/// How the rows of an input batch rank against each other and against the
/// rows kept.
pub(crate) struct BatchOrder<'a> {
    /// The rows' sort keys and the converter that made them; `None` when
    /// rows rank by arrival alone, the latest first.
    pub keys: Option<(&'a RowConverter, &'a Rows)>,
    /// A row that ties with an earlier one takes its place.
    pub latest_wins_ties: bool,
}

impl BatchOrder<'_> {
    /// Whether input row `row` takes the place of a row with sort key `old`
    /// that arrived before it.
    fn beats(&self, row: usize, old: Option<arrow::row::Row<'_>>) -> bool {
        match (self.keys, old) {
            (Some((_, rows)), Some(old)) => match rows.row(row).cmp(&old) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Equal => self.latest_wins_ties,
                std::cmp::Ordering::Greater => false,
            },
            _ => true,
        }
    }

    fn key(&self, row: usize) -> Option<arrow::row::Row<'_>> {
        self.keys.map(|(_, rows)| rows.row(row))
    }
}

/// What a batch changed: the rows to emit and their kinds.
#[derive(Debug)]
pub(crate) struct TopOneChanges {
    pub columns: Vec<ArrayRef>,
    pub kinds: Vec<u8>,
}

/// One row per key id, in stored batches.
#[derive(Debug, Default)]
pub(crate) struct TopOne {
    /// By key id.
    slots: Vec<Slot>,
    batches: Vec<Option<Stored>>,
    /// Indexes of `batches` that hold nothing.
    free: Vec<u32>,
    /// Per key id, the input row that wins it in the batch being applied;
    /// `NONE` between batches.
    winners: Vec<u32>,
}

impl TopOne {
    /// Applies an input batch whose rows have the dense key ids `ids` (of
    /// `keys` ids in all), and returns what it changed.
    pub(crate) fn apply(
        &mut self,
        columns: &[ArrayRef],
        ids: &[usize],
        keys: usize,
        order: &BatchOrder<'_>,
    ) -> Result<Option<TopOneChanges>> {
        if self.slots.len() < keys {
            self.slots.resize(keys, Slot::EMPTY);
            self.winners.resize(keys, NONE);
        }
        // The best row of each key within the batch, keys in first-seen order.
        let mut touched = Vec::new();
        for (row, id) in ids.iter().enumerate() {
            let winner = &mut self.winners[*id];
            if *winner == NONE {
                *winner = row as u32;
                touched.push(*id);
            } else if order.beats(row, order.key(*winner as usize)) {
                *winner = row as u32;
            }
        }
        // Against the rows kept.
        let new_batch = self
            .free
            .last()
            .copied()
            .unwrap_or(self.batches.len() as u32);
        let mut kept = Vec::new();
        let mut kept_keys = Vec::new();
        let mut sources = Sources::new(self.batches.len());
        let mut picks = Vec::new();
        let mut kinds = Vec::new();
        let mut shrunk = Vec::new();
        for id in touched {
            let row = std::mem::replace(&mut self.winners[id], NONE) as usize;
            let slot = self.slots[id];
            if slot == Slot::EMPTY {
                kinds.push(RowKind::Insert as u8);
            } else {
                let stored = stored_mut(&mut self.batches, slot.batch)?;
                let old = stored.sort.as_ref().map(|s| s.row(slot.row as usize));
                if !order.beats(row, old) {
                    continue;
                }
                stored.live -= 1;
                shrunk.push(slot.batch);
                picks.push((sources.of(slot.batch), slot.row as usize));
                kinds.push(RowKind::UpdateBefore as u8);
                kinds.push(RowKind::UpdateAfter as u8);
            }
            picks.push((0, kept.len()));
            self.slots[id] = Slot {
                batch: new_batch,
                row: kept.len() as u32,
            };
            kept.push(row as u32);
            kept_keys.push(id as u32);
        }
        if kept.is_empty() {
            return Ok(None);
        }
        let sort = order.keys.map(|(converter, rows)| {
            let mut sort = converter.empty_rows(kept.len(), 0);
            for row in &kept {
                sort.push(rows.row(*row as usize));
            }
            sort
        });
        let indices = UInt32Array::from(kept);
        let columns = columns
            .iter()
            .map(|c| take(c, &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let output = if sources.batches.is_empty() {
            columns.clone()
        } else {
            self.gather(&columns, &sources.batches, &picks)?
        };
        let stored = Stored {
            columns,
            sort,
            live: kept_keys.len(),
            keys: kept_keys,
        };
        match self.free.pop() {
            Some(free) => self.batches[free as usize] = Some(stored),
            None => self.batches.push(Some(stored)),
        }
        self.compact(shrunk, order.keys.map(|(converter, _)| converter))?;
        Ok(Some(TopOneChanges {
            columns: output,
            kinds,
        }))
    }

    /// One `interleave` per column of `picks` from `first` (source 0) and
    /// the stored `batches` (sources 1 on).
    fn gather(
        &self,
        first: &[ArrayRef],
        batches: &[u32],
        picks: &[(usize, usize)],
    ) -> Result<Vec<ArrayRef>> {
        let stored = batches
            .iter()
            .map(|b| stored_ref(&self.batches, *b))
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

    /// Frees the batches `shrunk` left empty and merges those left less
    /// than half live, with the small batches once there are enough.
    fn compact(&mut self, mut shrunk: Vec<u32>, converter: Option<&RowConverter>) -> Result<()> {
        shrunk.sort_unstable();
        shrunk.dedup();
        let mut merge = Vec::new();
        for b in shrunk {
            let stored = stored_ref(&self.batches, b)?;
            if stored.live == 0 {
                self.batches[b as usize] = None;
                self.free.push(b);
            } else if stored.live * 2 < stored.keys.len() {
                merge.push(b);
            }
        }
        let small: Vec<u32> = self
            .batches
            .iter()
            .enumerate()
            .filter(|(b, s)| {
                s.as_ref().is_some_and(|s| {
                    s.keys.len() < SMALL_BATCH_ROWS && !merge.contains(&(*b as u32))
                })
            })
            .map(|(b, _)| b as u32)
            .collect();
        if small.len() >= SMALL_BATCHES_TO_MERGE {
            merge.extend(small);
        }
        let Some(first) = merge.first().copied() else {
            return Ok(());
        };
        let mut picks = Vec::new();
        let mut keys = Vec::new();
        for (source, b) in merge.iter().enumerate() {
            let stored = stored_ref(&self.batches, *b)?;
            for (row, key) in stored.keys.iter().enumerate() {
                if self.slots[*key as usize]
                    == (Slot {
                        batch: *b,
                        row: row as u32,
                    })
                {
                    picks.push((source, row));
                    keys.push(*key);
                }
            }
        }
        let columns = {
            let stored = stored_ref(&self.batches, first)?;
            self.gather(&stored.columns, &merge[1..], &picks)?
        };
        let sort = match converter {
            Some(converter) => {
                let mut sort = converter.empty_rows(picks.len(), 0);
                for (source, row) in &picks {
                    if let Some(rows) = &stored_ref(&self.batches, merge[*source])?.sort {
                        sort.push(rows.row(*row));
                    }
                }
                Some(sort)
            }
            None => None,
        };
        for (row, key) in keys.iter().enumerate() {
            self.slots[*key as usize] = Slot {
                batch: first,
                row: row as u32,
            };
        }
        for b in &merge[1..] {
            self.batches[*b as usize] = None;
            self.free.push(*b);
        }
        self.batches[first as usize] = Some(Stored {
            columns,
            sort,
            live: keys.len(),
            keys,
        });
        Ok(())
    }

    /// Every key's row: the key ids and the rows' columns, in key order.
    pub(crate) fn rows(&self, schema: &SchemaRef) -> Result<(Vec<usize>, Vec<ArrayRef>)> {
        let mut ids = Vec::new();
        let mut sources = Sources::new(self.batches.len());
        let mut picks = Vec::new();
        for (id, slot) in self.slots.iter().enumerate() {
            if *slot != Slot::EMPTY {
                ids.push(id);
                picks.push((sources.of(slot.batch) - 1, slot.row as usize));
            }
        }
        let Some((first, rest)) = sources.batches.split_first() else {
            let empty = schema
                .fields()
                .iter()
                .map(|f| new_empty_array(f.data_type()));
            return Ok((ids, empty.collect()));
        };
        let columns = self.gather(&stored_ref(&self.batches, *first)?.columns, rest, &picks)?;
        Ok((ids, columns))
    }

    /// Rows stored, live or not, to tell how much memory replaced rows hold.
    #[cfg(test)]
    pub(crate) fn stored_rows(&self) -> usize {
        self.batches.iter().flatten().map(|s| s.keys.len()).sum()
    }
}

/// The stored batches an output gathers from, numbered from 1 in the order
/// first met (source 0 is the rows just stored).
struct Sources {
    batches: Vec<u32>,
    /// By batch index: its source number, or 0 if not yet met.
    numbers: Vec<usize>,
}

impl Sources {
    fn new(batches: usize) -> Self {
        Self {
            batches: Vec::new(),
            numbers: vec![0; batches],
        }
    }

    fn of(&mut self, batch: u32) -> usize {
        let number = &mut self.numbers[batch as usize];
        if *number == 0 {
            self.batches.push(batch);
            *number = self.batches.len();
        }
        *number
    }
}

fn stored_ref(batches: &[Option<Stored>], batch: u32) -> Result<&Stored> {
    batches
        .get(batch as usize)
        .and_then(Option::as_ref)
        .ok_or_else(|| missing(batch))
}

fn stored_mut(batches: &mut [Option<Stored>], batch: u32) -> Result<&mut Stored> {
    batches
        .get_mut(batch as usize)
        .and_then(Option::as_mut)
        .ok_or_else(|| missing(batch))
}

fn missing(batch: u32) -> DataFusionError {
    DataFusionError::Internal(format!(
        "a kept row points at stored batch {batch}, which is gone"
    ))
}
