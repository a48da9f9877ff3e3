//! Rows kept as Arrow columns by the ranks of insert-only inputs
//! ([`super::top_one`], [`super::top_n`]) and the sides of regular joins
//! ([`super::join`]): the rows of an input batch that are kept are gathered
//! (`take`) into one stored batch, and whoever keeps a row holds its
//! [`Slot`]: the stored batch and the row's position there.
//! So a row is copied once on its way in, never encoded to a row format,
//! and no row has an allocation of its own. Outputs are gathered with one
//! `interleave` per column from the input batch and the stored ones.
//!
//! Each stored row remembers its owner (a key id) and whether it was
//! released. A released row stays in its batch until that batch is less
//! than half live; then the live rows of every such batch (and of the small
//! batches, once there are several) are merged into one new batch and their
//! owners told where they went. Each row copied there was paid for by a row
//! let go, and stored rows take at most about twice the memory of the live
//! ones.
//!
//! A string column whose values repeat is stored as ids into a
//! [`Dictionary`] of its distinct values, and its values are looked up
//! when rows are gathered. One whose values do not repeat but use few
//! distinct bytes is stored [`packed`] at 4 or 5 bits a byte, as long as
//! its stored rows are seldom read: a store that unpacks more than one row
//! for every [`READS_PER_PACKED_ROW`] it stored (a join side that each row
//! of the other side reads, a Top-1 that keeps replacing its rows) stops
//! packing, since unpacking is many times slower than copying. A column of
//! 8-byte integers or times is kept [`narrow`] when its values in the
//! batch span less than 2^32.

mod dictionary;
mod narrow;
mod packed;

use std::cell::Cell;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, StringArray, StringBuilder, UInt32Array, new_empty_array,
};
use arrow::compute::{interleave, take};
use arrow::datatypes::{DataType, SchemaRef, UInt32Type};
use arrow::row::{Row, RowConverter, Rows};
use datafusion::error::{DataFusionError, Result};

use dictionary::Dictionary;
use narrow::Narrow;
use packed::{Packed, Packer};

/// A stored batch with fewer rows than this is merged with others like it.
const SMALL_BATCH_ROWS: usize = 4096;
/// How many small batches are merged at once: fewer would copy the same
/// rows again and again while small input batches trickle in.
const SMALL_BATCHES_TO_MERGE: usize = 8;

/// Stored rows per packed row read, past which a store stops packing.
const READS_PER_PACKED_ROW: usize = 4;
/// Rows stored before the reads are judged.
const READS_JUDGED_FROM: usize = 4096;

/// Where a kept row is: a stored batch and a row in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// A stored column.
#[derive(Debug)]
enum Column {
    Plain(ArrayRef),
    /// A string column's ids in its dictionary.
    Interned(UInt32Array),
    /// A string column's bytes as codes of its alphabet.
    Packed(Packed),
    /// An integer or time column's values as distances from the least.
    Narrow(Narrow),
}

/// Rows stored together.
#[derive(Debug)]
struct Stored {
    columns: Vec<Column>,
    /// The rows' sort keys, when rows are ordered by values.
    sort: Option<Rows>,
    /// The key id that keeps each row.
    owners: Vec<u32>,
    /// A bit per row, set once the row is released.
    released: Vec<u64>,
    live: usize,
}

impl Stored {
    fn new(columns: Vec<Column>, sort: Option<Rows>, owners: Vec<u32>) -> Self {
        Self {
            columns,
            sort,
            released: vec![0; owners.len().div_ceil(64)],
            live: owners.len(),
            owners,
        }
    }

    fn is_live(&self, row: usize) -> bool {
        self.released
            .get(row / 64)
            .is_some_and(|bits| bits & (1 << (row % 64)) == 0)
    }
}

/// Stored batches of kept rows.
#[derive(Debug, Default)]
pub(crate) struct RowStore {
    batches: Vec<Option<Stored>>,
    /// Indexes of `batches` that hold nothing.
    free: Vec<u32>,
    /// Batches that lost rows since the last [`RowStore::compact`].
    shrunk: Vec<u32>,
    /// By column: the dictionary of a string column, from the first store on.
    dictionaries: Vec<Option<Dictionary>>,
    /// By column: the alphabet of a string column's bytes, once its
    /// dictionary is off.
    packers: Vec<Packer>,
    /// Rows ever stored, and packed rows read, to judge whether to pack.
    stored_ever: usize,
    unpacked: Cell<usize>,
    /// Rows stored and not released.
    live: usize,
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
        if self.dictionaries.is_empty() {
            self.dictionaries = columns
                .iter()
                .map(|c| (c.data_type() == &DataType::Utf8).then(Dictionary::default))
                .collect();
            self.packers = columns.iter().map(|_| Packer::default()).collect();
        }
        let indices = UInt32Array::from(rows);
        self.stored_ever += owners.len();
        if self.stored_ever >= READS_JUDGED_FROM
            && self.unpacked.get() * READS_PER_PACKED_ROW > self.stored_ever
            && self.packers.iter().any(|p| !p.is_off())
        {
            self.stop_packing()?;
        }
        self.live += owners.len();
        let live = self.live;
        let columns = columns
            .iter()
            .zip(self.dictionaries.iter_mut().zip(&mut self.packers))
            .map(|(column, (dictionary, packer))| {
                if let (Some(dictionary), Some(strings)) = (dictionary, column.as_string_opt()) {
                    if let Some(ids) = dictionary.encode(strings, indices.values(), live) {
                        return Ok(Column::Interned(ids));
                    }
                    if let Some(packed) = packer.pack(strings, indices.values()) {
                        return Ok(Column::Packed(packed));
                    }
                }
                let taken = take(column, &indices, None)?;
                Ok(Narrow::of(taken.as_ref()).map_or(Column::Plain(taken), Column::Narrow))
            })
            .collect::<Result<Vec<_>>>()?;
        let stored = Stored::new(columns, sort, owners);
        let batch = self.next_batch();
        match self.free.pop() {
            Some(free) => self.batches[free as usize] = Some(stored),
            None => self.batches.push(Some(stored)),
        }
        Ok(batch)
    }

    /// Packs no more rows, and unpacks those packed: they are read often.
    fn stop_packing(&mut self) -> Result<()> {
        self.packers.iter_mut().for_each(Packer::turn_off);
        for stored in self.batches.iter_mut().flatten() {
            for column in &mut stored.columns {
                if let Column::Packed(packed) = column {
                    let plain = packed
                        .unpack()
                        .ok_or_else(|| internal("a packed column does not unpack"))?;
                    *column = Column::Plain(Arc::new(plain));
                }
            }
        }
        Ok(())
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
        let row = slot.row as usize;
        if stored.is_live(row) {
            stored.released[row / 64] |= 1 << (row % 64);
            stored.live -= 1;
            self.live -= 1;
            self.shrunk.push(slot.batch);
        }
        Ok(())
    }

    /// The columns of `picks` from `first` (source 0) and the stored
    /// `batches` (sources 1 on): one `interleave` per column, or a lookup
    /// of each interned value.
    pub(crate) fn gather(
        &self,
        first: &[ArrayRef],
        batches: &[u32],
        picks: &[(usize, usize)],
    ) -> Result<Vec<ArrayRef>> {
        let first: Vec<Column> = first.iter().map(|c| Column::Plain(Arc::clone(c))).collect();
        let mut sources = vec![first.as_slice()];
        for b in batches {
            sources.push(&self.stored(*b)?.columns);
        }
        self.pick(&sources, picks)
    }

    /// Every column of `picks` from `sources`, as plain columns.
    fn pick(&self, sources: &[&[Column]], picks: &[(usize, usize)]) -> Result<Vec<ArrayRef>> {
        let columns = sources.first().map_or(0, |s| s.len());
        (0..columns)
            .map(|c| {
                let column: Vec<&Column> = sources.iter().map(|s| &s[c]).collect();
                self.plain(c, &column, picks)
            })
            .collect()
    }

    /// Column `c` of `picks` from `sources`, as a plain column.
    fn plain(&self, c: usize, sources: &[&Column], picks: &[(usize, usize)]) -> Result<ArrayRef> {
        let plain: Vec<&dyn Array> = sources
            .iter()
            .filter_map(|s| match s {
                Column::Plain(array) => Some(array.as_ref()),
                Column::Interned(_) | Column::Packed(_) | Column::Narrow(_) => None,
            })
            .collect();
        if plain.len() == sources.len() {
            return Ok(interleave(&plain, picks)?);
        }
        if sources.iter().any(|s| matches!(s, Column::Narrow(_))) {
            return narrow::gather(sources, picks);
        }
        let dictionary = self.dictionaries.get(c).and_then(Option::as_ref);
        let unpacked = picks
            .iter()
            .filter(|(source, _)| matches!(sources.get(*source), Some(Column::Packed(_))))
            .count();
        self.unpacked.set(self.unpacked.get() + unpacked);
        strings(sources, dictionary, picks)
    }

    /// The rows at `slots`, in that order, as columns of `schema`.
    pub(crate) fn rows(&self, slots: &[Slot], schema: &SchemaRef) -> Result<Vec<ArrayRef>> {
        let mut sources = Sources::with_batches(self.batches.len());
        let picks: Vec<(usize, usize)> = slots
            .iter()
            .map(|slot| (sources.of(slot.batch) - 1, slot.row as usize))
            .collect();
        if sources.batches.is_empty() {
            let empty = schema
                .fields()
                .iter()
                .map(|f| new_empty_array(f.data_type()));
            return Ok(empty.collect());
        }
        let stored = sources
            .batches
            .iter()
            .map(|b| Ok(self.stored(*b)?.columns.as_slice()))
            .collect::<Result<Vec<_>>>()?;
        self.pick(&stored, &picks)
    }

    /// Frees the batches left empty since the last call and merges those
    /// left less than half live, with the small batches once there are
    /// enough. The live rows merged are returned with where they went.
    pub(crate) fn compact(&mut self, converter: Option<&RowConverter>) -> Result<Vec<Moved>> {
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
                if stored.is_live(row) {
                    picks.push((source, row));
                    owners.push(*owner);
                }
            }
        }
        let merged = merge
            .iter()
            .map(|b| Ok(self.stored(*b)?.columns.as_slice()))
            .collect::<Result<Vec<_>>>()?;
        let columns = (0..merged[0].len())
            .map(|c| self.merge_column(c, &merged, &picks))
            .collect::<Result<Vec<_>>>()?;
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
        self.batches[first as usize] = Some(Stored::new(columns, sort, owners));
        Ok(moved)
    }

    /// Rows stored, live or not, to tell how much memory released rows hold.
    #[cfg(test)]
    pub(crate) fn stored_rows(&self) -> usize {
        self.batches.iter().flatten().map(|s| s.owners.len()).sum()
    }

    /// Columns of all stored batches together.
    #[cfg(test)]
    pub(crate) fn stored_columns(&self) -> usize {
        self.batches.iter().flatten().map(|s| s.columns.len()).sum()
    }

    /// Column `c` of the rows `picks` of the stored batches `merged`:
    /// still ids when every batch's column is, packed again when one was.
    fn merge_column(
        &self,
        c: usize,
        merged: &[&[Column]],
        picks: &[(usize, usize)],
    ) -> Result<Column> {
        let column: Vec<&Column> = merged.iter().map(|s| &s[c]).collect();
        let ids: Vec<&dyn Array> = column
            .iter()
            .filter_map(|s| match s {
                Column::Interned(ids) => Some(ids as &dyn Array),
                Column::Plain(_) | Column::Packed(_) | Column::Narrow(_) => None,
            })
            .collect();
        if ids.len() < column.len() {
            let plain = self.plain(c, &column, picks)?;
            if let Some(narrow) = Narrow::of(plain.as_ref()) {
                return Ok(Column::Narrow(narrow));
            }
            let was_packed = column.iter().any(|s| matches!(s, Column::Packed(_)));
            if was_packed
                && let (Some(alphabet), Some(strings)) = (
                    self.packers.get(c).and_then(Packer::alphabet),
                    plain.as_string_opt(),
                )
            {
                let rows: Vec<u32> = (0..strings.len() as u32).collect();
                if let Some(packed) = packed::pack(alphabet, strings, &rows) {
                    return Ok(Column::Packed(packed));
                }
            }
            return Ok(Column::Plain(plain));
        }
        let ids = interleave(&ids, picks)?;
        Ok(Column::Interned(ids.as_primitive::<UInt32Type>().clone()))
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

/// A string column of `picks` from `sources`, some of them interned in
/// `dictionary` or packed.
fn strings(
    sources: &[&Column],
    dictionary: Option<&Dictionary>,
    picks: &[(usize, usize)],
) -> Result<ArrayRef> {
    enum Source<'a> {
        Plain(&'a StringArray),
        Ids(&'a UInt32Array, &'a Dictionary),
        Packed(&'a Packed),
    }
    let sources = sources
        .iter()
        .map(|s| match s {
            Column::Plain(array) => array
                .as_string_opt()
                .map(Source::Plain)
                .ok_or_else(|| internal("a column with encoded strings holds other values")),
            Column::Interned(ids) => dictionary
                .map(|d| Source::Ids(ids, d))
                .ok_or_else(|| internal("an interned column has no dictionary")),
            Column::Packed(packed) => Ok(Source::Packed(packed)),
            Column::Narrow(_) => Err(internal("a string column holds narrow integers")),
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = picks
        .iter()
        .map(|(source, row)| match &sources[*source] {
            Source::Plain(strings) => strings.value_length(*row) as usize,
            Source::Ids(ids, dictionary) if ids.is_valid(*row) => {
                dictionary.value(ids.value(*row)).len()
            }
            Source::Ids(..) => 0,
            Source::Packed(packed) => packed.value_length(*row),
        })
        .sum();
    let mut builder = StringBuilder::with_capacity(picks.len(), bytes);
    let mut unpacked = String::new();
    for (source, row) in picks {
        let row = *row;
        match &sources[*source] {
            Source::Plain(strings) => {
                builder.append_option(strings.is_valid(row).then(|| strings.value(row)));
            }
            Source::Ids(ids, dictionary) => {
                builder.append_option(ids.is_valid(row).then(|| dictionary.value(ids.value(row))));
            }
            Source::Packed(packed) if packed.is_valid(row) => {
                unpacked.clear();
                packed.value_into(row, &mut unpacked);
                builder.append_value(&unpacked);
            }
            Source::Packed(_) => builder.append_null(),
        }
    }
    Ok(Arc::new(builder.finish()))
}

fn missing(batch: u32) -> DataFusionError {
    internal(&format!(
        "a kept row points at stored batch {batch}, which is gone"
    ))
}

fn internal(message: &str) -> DataFusionError {
    DataFusionError::Internal(message.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Int64Type, Schema};

    use super::*;

    /// Row `i` of the test stream: a repeating string (NULL every 7th), a
    /// string of its own and a number.
    fn row(i: u32) -> (Option<String>, String, i64) {
        let url = (!i.is_multiple_of(7)).then(|| format!("https://example.com/{}", i % 50));
        (url, format!("extra-{i}"), i64::from(i))
    }

    fn columns(rows: impl Iterator<Item = u32>) -> Vec<ArrayRef> {
        let rows: Vec<_> = rows.map(row).collect();
        vec![
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0.clone()))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ]
    }

    fn values(columns: &[ArrayRef]) -> Vec<(Option<String>, String, i64)> {
        let (urls, extras) = (columns[0].as_string::<i32>(), columns[1].as_string::<i32>());
        let numbers = columns[2].as_primitive::<Int64Type>();
        (0..numbers.len())
            .map(|r| {
                let url = urls.is_valid(r).then(|| urls.value(r).to_string());
                (url, extras.value(r).to_string(), numbers.value(r))
            })
            .collect()
    }

    #[test]
    fn a_dictionary_with_more_values_than_rows_kept_turns_off() -> Result<()> {
        // 100 rows kept at a time, each batch replacing the one before; the
        // values repeat (2,000 of them) but would outgrow the rows.
        let mut store = RowStore::default();
        let url = |i: u32| format!("https://example.com/{}", i % 2000);
        let mut kept = Vec::new();
        for b in 0..700u32 {
            let input: ArrayRef = Arc::new(StringArray::from_iter_values(
                (0..100).map(|r| url(b * 100 + r)),
            ));
            let batch = store.store(&[input], None, (0..100).collect(), (0..100).collect())?;
            for slot in kept.drain(..) {
                store.release(slot)?;
            }
            kept.extend((0..100).map(|row| Slot { batch, row }));
            store.compact(None)?;
        }
        let dictionary = store.dictionaries[0].as_ref().expect("a string column");
        assert!(dictionary.is_off(), "{dictionary:?}");
        let schema = Arc::new(Schema::new(vec![Field::new("url", DataType::Utf8, false)]));
        let rows = store.rows(&kept, &schema)?;
        let expected: Vec<String> = (0..100).map(|r| url(699 * 100 + r)).collect();
        assert_eq!(
            rows[0]
                .as_string::<i32>()
                .iter()
                .flatten()
                .collect::<Vec<_>>(),
            expected
        );
        Ok(())
    }

    #[test]
    fn a_store_whose_packed_rows_are_read_often_stops_packing() -> Result<()> {
        let mut store = RowStore::default();
        let schema = Arc::new(Schema::new(vec![Field::new("hex", DataType::Utf8, false)]));
        let hex = |b: u32| -> ArrayRef {
            // Distinct values (the dictionary turns off) of 16 bytes.
            Arc::new(StringArray::from_iter_values((0..1000u32).map(|r| {
                format!("{:x}", u64::from(b * 1000 + r) * 2_654_435_761)
            })))
        };
        let read_back = |store: &mut RowStore, b: u32, reads: usize| -> Result<()> {
            let batch = store.store(&[hex(b)], None, (0..1000).collect(), (0..1000).collect())?;
            let slots: Vec<Slot> = (0..1000).map(|row| Slot { batch, row }).collect();
            for _ in 0..reads {
                let rows = store.rows(&slots, &schema)?;
                assert_eq!(rows[0].as_ref(), hex(b).as_ref());
            }
            Ok(())
        };
        // Read once for every 10 stored: packing goes on.
        for b in 0..80 {
            read_back(&mut store, b, usize::from(b % 10 == 0))?;
        }
        assert!(
            store.packers[0].alphabet().is_some(),
            "{:?}",
            store.packers[0]
        );
        // Every stored row read twice: it stops.
        for b in 80..200 {
            read_back(&mut store, b, 2)?;
        }
        assert!(store.packers[0].is_off(), "{:?}", store.packers[0]);
        // What was packed was unpacked, and reads back the same.
        let packed = |s: &Stored| matches!(s.columns[0], Column::Packed(_));
        assert!(!store.batches.iter().flatten().any(packed));
        let slots: Vec<Slot> = (0..1000).map(|row| Slot { batch: 0, row }).collect();
        assert_eq!(store.rows(&slots, &schema)?[0].as_ref(), hex(0).as_ref());
        Ok(())
    }

    #[test]
    fn repeated_strings_are_kept_once_and_read_back_through_merges() -> Result<()> {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("url", DataType::Utf8, true),
            Field::new("extra", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let mut store = RowStore::default();
        let mut slots: HashMap<u32, Slot> = HashMap::new();
        // Enough rows for the dictionary of `extra` to judge its values.
        const BATCH: u32 = 2000;
        for b in 0..80u32 {
            let first = b * BATCH;
            let input = columns(first..first + BATCH);
            // Every other row is kept: 25 distinct URLs.
            let kept: Vec<u32> = (0..BATCH).step_by(2).collect();
            let owners: Vec<u32> = kept.iter().map(|r| first + r).collect();
            let batch = store.store(&input, None, kept.clone(), owners.clone())?;
            for (row, owner) in owners.iter().enumerate() {
                slots.insert(
                    *owner,
                    Slot {
                        batch,
                        row: row as u32,
                    },
                );
            }
            // Kept rows, both from the input and from their stored batch.
            let picks: Vec<(usize, usize)> = (0..10).flat_map(|r| [(0, r * 2), (1, r)]).collect();
            let gathered = store.gather(&input, &[batch], &picks)?;
            let expected: Vec<_> = (0..10)
                .flat_map(|r| [row(first + r * 2), row(first + r * 2)])
                .collect();
            assert_eq!(values(&gathered), expected);
            // Three rows in four are let go of.
            for owner in owners.iter().filter(|o| *o % 8 != 0) {
                if let Some(slot) = slots.remove(owner) {
                    store.release(slot)?;
                }
            }
            for moved in store.compact(None)? {
                assert_eq!(slots.insert(moved.owner, moved.to), Some(moved.from));
            }
        }
        let urls = store.dictionaries[0].as_ref().expect("a string column");
        let extras = store.dictionaries[1].as_ref().expect("a string column");
        assert!(!urls.is_off() && urls.len() == 25, "{urls:?}");
        assert!(extras.is_off(), "{extras:?}");
        // `extra-N` uses 15 bytes: once not interned, it is packed.
        assert!(
            store.packers[1].alphabet().is_some(),
            "{:?}",
            store.packers[1]
        );
        let packed = |s: &&Stored| matches!(s.columns[1], Column::Packed(_));
        assert!(store.batches.iter().flatten().any(|s| packed(&s)));
        let mut owners: Vec<u32> = slots.keys().copied().collect();
        owners.sort_unstable();
        let kept: Vec<Slot> = owners.iter().map(|o| slots[o]).collect();
        let expected: Vec<_> = owners.iter().map(|o| row(*o)).collect();
        assert_eq!(values(&store.rows(&kept, &schema)?), expected);
        let merging = SMALL_BATCHES_TO_MERGE * BATCH as usize;
        assert!(store.stored_rows() <= 2 * owners.len() + merging);
        Ok(())
    }
}
