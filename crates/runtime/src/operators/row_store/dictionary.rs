//! Repeated strings of a stored column kept once: a [`Dictionary`] gives
//! each distinct value an id, and the stored batches hold the ids (4 bytes a
//! row) in place of the values and their offsets. Channels, URLs, countries,
//! user agents and the like repeat in every stream; Nexmark's bids carry
//! ~70 bytes of them (10,004 distinct channel and URL pairs).
//!
//! A column whose values do not repeat (Nexmark's random `extra`) would
//! only pay for the lookups and keep its values twice, so a dictionary
//! turns itself off for good once it holds more than a quarter of the
//! values offered to it, more values than the store keeps rows (a Top-1
//! replacing its rows meets ever new values but keeps few), or 64 MB; the
//! ids already handed out stay valid.

use std::hash::BuildHasher;

use arrow::array::{Array, StringArray, UInt32Array};
use arrow::buffer::NullBuffer;

/// Values offered before the share of new ones is judged: the first
/// batches meet most of a column's repeating values for the first time
/// (Nexmark's 10,004 URLs need about 40,000 bids to show it).
const JUDGED_FROM: usize = 1 << 16;
/// A dictionary stops growing past this many bytes of values.
const MAX_BYTES: usize = 64 << 20;

#[derive(Default)]
pub(super) struct Dictionary {
    /// Ids, found by their value's hash (foldhash, as the key index).
    table: hashbrown::HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Value `id` is `text[ends[id - 1]..ends[id]]` (from 0 for id 0).
    ends: Vec<u32>,
    text: String,
    /// Values looked up so far, to judge whether they repeat.
    offered: usize,
    off: bool,
}

impl Dictionary {
    /// The ids of rows `rows` of `values`, NULL where the value is, for a
    /// store keeping `live` rows with them; None once values have proved
    /// not to repeat.
    pub(super) fn encode(
        &mut self,
        values: &StringArray,
        rows: &[u32],
        live: usize,
    ) -> Option<UInt32Array> {
        if self.off {
            return None;
        }
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let row = *row as usize;
            ids.push(if values.is_valid(row) {
                self.id(values.value(row))
            } else {
                0
            });
        }
        self.offered += rows.len();
        let len = self.ends.len();
        let judged = self.offered >= JUDGED_FROM && (len * 4 > self.offered || len > live);
        if judged || self.text.len() > MAX_BYTES {
            // Only the ids handed out are looked up from now on: the
            // table goes, and the values keep no room to grow.
            self.off = true;
            self.table = hashbrown::HashTable::new();
            self.text.shrink_to_fit();
            self.ends.shrink_to_fit();
        }
        let nulls = values
            .nulls()
            .map(|nulls| NullBuffer::from_iter(rows.iter().map(|r| nulls.is_valid(*r as usize))));
        Some(UInt32Array::new(ids.into(), nulls))
    }

    /// The value of `id`.
    pub(super) fn value(&self, id: u32) -> &str {
        piece(&self.ends, &self.text, id)
    }

    /// Distinct values held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether values proved not to repeat.
    #[cfg(test)]
    pub(super) fn is_off(&self) -> bool {
        self.off
    }

    fn id(&mut self, value: &str) -> u32 {
        let hash = self.hasher.hash_one(value);
        let (ends, text) = (&self.ends, &self.text);
        if let Some(id) = self.table.find(hash, |id| piece(ends, text, *id) == value) {
            return *id;
        }
        let id = self.ends.len() as u32;
        self.text.push_str(value);
        self.ends.push(self.text.len() as u32);
        let hasher = &self.hasher;
        let (ends, text) = (&self.ends, &self.text);
        self.table
            .insert_unique(hash, id, |id| hasher.hash_one(piece(ends, text, *id)));
        id
    }
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("values", &self.ends.len())
            .field("bytes", &self.text.len())
            .field("off", &self.off)
            .finish()
    }
}

/// Value `id` of a dictionary's `ends` and `text` (empty for an id it never
/// gave out).
fn piece<'a>(ends: &[u32], text: &'a str, id: u32) -> &'a str {
    let id = id as usize;
    let start = if id == 0 {
        0
    } else {
        ends.get(id - 1).copied().unwrap_or(0)
    };
    let end = ends.get(id).copied().unwrap_or(start);
    text.get(start as usize..end as usize).unwrap_or_default()
}
