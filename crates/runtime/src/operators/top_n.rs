//! The state of a Top-N over an insert-only input (Flink's
//! `AppendOnlyTopNFunction`): each key keeps only its best `rank_end` rows,
//! since a row pushed out can never come back, and a row that cannot enter
//! is dropped at once.
//!
//! A key's rows are a short sorted list of entries: the row's arrival order
//! (ties rank in arrival order, as in Flink) and where the row is, in the
//! input batch being applied or in a [`RowStore`], whose stored batches
//! also hold the rows' sort keys. After a batch, the input rows still kept
//! are gathered into one stored batch. So a row is copied once on its way
//! in and never encoded to a row format (q19 keeps the ten best bids of
//! each auction, whole rows of ~200 bytes).
//!
//! A batch's rows are applied key after key, so a key's list is read,
//! changed and compared with its ranks before the batch while it is in
//! cache; the changes are gathered with one `interleave` per column from
//! the input batch and the stored rows.

use std::cmp::Ordering;

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::row::{Row, RowConverter, Rows};
use datafusion::error::Result;

use crate::operators::rank::{Change, RankRange, ranked_changes};
use crate::operators::row_store::{RowStore, Slot, Sources};

/// Where a kept row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// A row of the input batch being applied.
    Input(u32),
    Stored(Slot),
}

/// A kept row: its arrival order (its identity among its key's rows) and
/// where it is.
#[derive(Debug, Clone, Copy)]
struct Entry {
    order: u64,
    held: Held,
}

/// An input batch to apply.
pub(crate) struct TopNInput<'a> {
    pub columns: &'a [ArrayRef],
    /// Each row's dense key id, of `keys` ids in all.
    pub ids: &'a [usize],
    pub keys: usize,
    /// The rows' sort keys and the converter that made them; `None` when
    /// rows rank by arrival alone.
    pub sort: Option<(&'a RowConverter, &'a Rows)>,
    /// Each row's arrival order: of two rows with equal sort keys, the
    /// smaller ranks first.
    pub orders: &'a [u64],
}

impl TopNInput<'_> {
    fn key(&self, row: usize) -> Option<Row<'_>> {
        self.sort.map(|(_, rows)| rows.row(row))
    }
}

/// What a batch changed: the rows to emit, their ranks and kinds.
#[derive(Debug)]
pub(crate) struct TopNChanges {
    pub columns: Vec<ArrayRef>,
    pub ranks: Vec<u64>,
    pub kinds: Vec<u8>,
}

/// The best rows of each key id, best first.
#[derive(Debug, Default)]
pub(crate) struct TopN {
    keys: Vec<Vec<Entry>>,
    store: RowStore,
}

impl TopN {
    /// Applies `input`, keeping `range.end` rows per key, and returns the
    /// changes to the ranks in `range`.
    pub(crate) fn apply(
        &mut self,
        input: &TopNInput<'_>,
        range: RankRange,
    ) -> Result<Option<TopNChanges>> {
        if self.keys.len() < input.keys {
            self.keys.resize_with(input.keys, Vec::new);
        }
        let limit = range.end;
        // Each key's rows one after another, in arrival order.
        let mut rows: Vec<u32> = (0..input.ids.len() as u32).collect();
        rows.sort_by_key(|row| input.ids[*row as usize]);
        let mut touched = Vec::new();
        let mut before = Vec::new();
        let mut sources = Sources::new(&self.store);
        let mut picks = Vec::new();
        let mut ranks = Vec::new();
        let mut kinds = Vec::new();
        for group in rows.chunk_by(|a, b| input.ids[*a as usize] == input.ids[*b as usize]) {
            let id = input.ids[group[0] as usize];
            let entries = &mut self.keys[id];
            let mut changed = false;
            for row in group.iter().map(|r| *r as usize) {
                let order = input.orders[row];
                let key = input.key(row);
                let precedes = |entry: &Entry| -> Result<bool> {
                    let entry_key = match entry.held {
                        Held::Input(r) => input.key(r as usize),
                        Held::Stored(slot) => self.store.sort_key(slot)?,
                    };
                    Ok(match entry_key.cmp(&key) {
                        Ordering::Less => true,
                        Ordering::Equal => entry.order < order,
                        Ordering::Greater => false,
                    })
                };
                // Most rows rank below a full top N.
                if entries.len() >= limit
                    && let Some(last) = entries.last()
                    && precedes(last)?
                {
                    continue;
                }
                let (mut low, mut high) = (0, entries.len());
                while low < high {
                    let middle = (low + high) / 2;
                    if precedes(&entries[middle])? {
                        low = middle + 1;
                    } else {
                        high = middle;
                    }
                }
                if !changed {
                    changed = true;
                    touched.push(id);
                    before.clear();
                    before.extend(ranked(entries, range).iter().copied());
                }
                let held = Held::Input(row as u32);
                entries.insert(low, Entry { order, held });
                if entries.len() > limit
                    && let Some(Entry {
                        held: Held::Stored(slot),
                        ..
                    }) = entries.pop()
                {
                    self.store.release(slot)?;
                }
            }
            if changed {
                let now = ranked(entries, range);
                let old_orders: Vec<u64> = before.iter().map(|e| e.order).collect();
                let new_orders: Vec<u64> = now.iter().map(|e| e.order).collect();
                ranked_changes(range, &old_orders, &new_orders, |change, rank, kind| {
                    let held = match change {
                        Change::Old(i) => before[i].held,
                        Change::New(i) => now[i].held,
                    };
                    picks.push(match held {
                        Held::Input(row) => (0, row as usize),
                        Held::Stored(slot) => (sources.of(slot.batch), slot.row as usize),
                    });
                    ranks.push(rank);
                    kinds.push(kind as u8);
                });
            }
        }
        let changes = (!picks.is_empty())
            .then(|| -> Result<TopNChanges> {
                Ok(TopNChanges {
                    columns: self.store.gather(input.columns, &sources.batches, &picks)?,
                    ranks,
                    kinds,
                })
            })
            .transpose()?;
        self.store_input_rows(input, &touched)?;
        Ok(changes)
    }

    /// Moves the input rows the keys `touched` still keep into a stored
    /// batch, then lets the store merge what has thinned out.
    fn store_input_rows(&mut self, input: &TopNInput<'_>, touched: &[usize]) -> Result<()> {
        let batch = self.store.next_batch();
        let mut rows = Vec::new();
        let mut owners = Vec::new();
        for id in touched {
            for entry in &mut self.keys[*id] {
                if let Held::Input(row) = entry.held {
                    entry.held = Held::Stored(Slot {
                        batch,
                        row: rows.len() as u32,
                    });
                    rows.push(row);
                    owners.push(*id as u32);
                }
            }
        }
        if !rows.is_empty() {
            self.store.store(input.columns, input.sort, rows, owners)?;
        }
        let moved = self
            .store
            .compact(input.sort.map(|(converter, _)| converter))?;
        for row in moved {
            if let Some(entry) = self.keys[row.owner as usize]
                .iter_mut()
                .find(|e| e.held == Held::Stored(row.from))
            {
                entry.held = Held::Stored(row.to);
            }
        }
        Ok(())
    }

    /// Every kept row, best first within each key: the key ids, the rows'
    /// arrival orders and their columns.
    pub(crate) fn rows(&self, schema: &SchemaRef) -> Result<(Vec<usize>, Vec<u64>, Vec<ArrayRef>)> {
        let mut ids = Vec::new();
        let mut orders = Vec::new();
        let mut slots = Vec::new();
        for (id, entries) in self.keys.iter().enumerate() {
            for entry in entries {
                if let Held::Stored(slot) = entry.held {
                    ids.push(id);
                    orders.push(entry.order);
                    slots.push(slot);
                }
            }
        }
        Ok((ids, orders, self.store.rows(&slots, schema)?))
    }

    /// How many rows key `id` keeps.
    #[cfg(test)]
    pub(crate) fn kept(&self, id: usize) -> usize {
        self.keys.get(id).map_or(0, Vec::len)
    }

    /// Rows stored, live or not, to tell how much memory released rows hold.
    #[cfg(test)]
    pub(crate) fn stored_rows(&self) -> usize {
        self.store.stored_rows()
    }
}

/// The entries ranked `range.start..=range.end`.
fn ranked(entries: &[Entry], range: RankRange) -> &[Entry] {
    let end = entries.len().min(range.end);
    entries.get(range.start - 1..end).unwrap_or_default()
}
