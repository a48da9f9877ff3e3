//! The state of a rank that keeps one row per key of an insert-only input:
//! `ROW_NUMBER() ... = 1`, which Flink plans as a Deduplicate when it is
//! ordered by a time attribute. A key's row is replaced by a better one and
//! never removed, so a batch emits `+I` for a new key and `-U old`/`+U new`
//! for a replaced row.
//!
//! Rows are kept as Arrow columns in a [`RowStore`]; a key's [`Slot`] names
//! its row there. The output is gathered in one `interleave` per column
//! from the input batch and the replaced rows.
//!
//! Without `-U` rows (under a sink that ignores them), a replaced row is
//! never read again: the store keeps each key's sort key and no columns.

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::row::{Row, RowConverter, Rows};
use datafusion::error::Result;
use weir_common::RowKind;

use crate::operators::row_store::{RowStore, Slot, Sources};

const NONE: u32 = u32::MAX;

const EMPTY: Slot = Slot {
    batch: NONE,
    row: NONE,
};

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
    fn beats(&self, row: usize, old: Option<Row<'_>>) -> bool {
        match (self.keys, old) {
            (Some((_, rows)), Some(old)) => match rows.row(row).cmp(&old) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Equal => self.latest_wins_ties,
                std::cmp::Ordering::Greater => false,
            },
            _ => true,
        }
    }

    fn key(&self, row: usize) -> Option<Row<'_>> {
        self.keys.map(|(_, rows)| rows.row(row))
    }
}

/// What a batch changed: the rows to emit and their kinds.
#[derive(Debug)]
pub(crate) struct TopOneChanges {
    pub columns: Vec<ArrayRef>,
    pub kinds: Vec<u8>,
}

/// One row per key id, in a [`RowStore`].
#[derive(Debug)]
pub(crate) struct TopOne {
    /// By key id.
    slots: Vec<Slot>,
    store: RowStore,
    /// Per key id, the input row that wins it in the batch being applied;
    /// `NONE` between batches.
    winners: Vec<u32>,
    /// Whether a replaced row is emitted as `-U`, and so rows are kept.
    update_before: bool,
}

impl TopOne {
    pub(crate) fn new(update_before: bool) -> Self {
        Self {
            slots: Vec::new(),
            store: RowStore::default(),
            winners: Vec::new(),
            update_before,
        }
    }

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
            self.slots.resize(keys, EMPTY);
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
        let new_batch = self.store.next_batch();
        let mut kept = Vec::new();
        let mut kept_keys = Vec::new();
        let mut sources = Sources::new(&self.store);
        let mut picks = Vec::new();
        let mut kinds = Vec::new();
        for id in touched {
            let row = std::mem::replace(&mut self.winners[id], NONE) as usize;
            let slot = self.slots[id];
            if slot == EMPTY {
                kinds.push(RowKind::Insert as u8);
            } else {
                if !order.beats(row, self.store.sort_key(slot)?) {
                    continue;
                }
                self.store.release(slot)?;
                if self.update_before {
                    picks.push((sources.of(slot.batch), slot.row as usize));
                    kinds.push(RowKind::UpdateBefore as u8);
                }
                kinds.push(RowKind::UpdateAfter as u8);
            }
            picks.push((0, row));
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
        let output = self.store.gather(columns, &sources.batches, &picks)?;
        let stored = if self.update_before { columns } else { &[] };
        self.store.store(stored, order.keys, kept, kept_keys)?;
        let moved = self
            .store
            .compact(order.keys.map(|(converter, _)| converter))?;
        for row in moved {
            self.slots[row.owner as usize] = row.to;
        }
        Ok(Some(TopOneChanges {
            columns: output,
            kinds,
        }))
    }

    /// Every key's row: the key ids and the rows' columns, in key order.
    pub(crate) fn rows(&self, schema: &SchemaRef) -> Result<(Vec<usize>, Vec<ArrayRef>)> {
        let (ids, slots): (Vec<usize>, Vec<Slot>) = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| **slot != EMPTY)
            .map(|(id, slot)| (id, *slot))
            .unzip();
        Ok((ids, self.store.rows(&slots, schema)?))
    }

    /// Every key's sort key (none when rows rank by arrival), in key order;
    /// what is kept without `-U` rows.
    pub(crate) fn sort_keys(&self) -> Result<(Vec<usize>, Vec<Row<'_>>)> {
        let mut ids = Vec::new();
        let mut keys = Vec::new();
        for (id, slot) in self.slots.iter().enumerate() {
            if *slot == EMPTY {
                continue;
            }
            ids.push(id);
            keys.extend(self.store.sort_key(*slot)?);
        }
        Ok((ids, keys))
    }

    /// Rows stored, live or not, to tell how much memory replaced rows hold.
    #[cfg(test)]
    pub(crate) fn stored_rows(&self) -> usize {
        self.store.stored_rows()
    }

    /// Columns of all stored batches together.
    #[cfg(test)]
    pub(crate) fn stored_columns(&self) -> usize {
        self.store.stored_columns()
    }
}
