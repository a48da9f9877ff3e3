//! Dense ids for keys, for operators that keep per-key state in vectors
//! indexed by id: the first key seen is 0, the next new one 1, and so on.
//!
//! A hash table maps each key to its id; the keys themselves are stored once,
//! by id, so an operator can turn ids back into key columns (to emit them,
//! or to snapshot its state). The table holds 8 bytes per key: the id and
//! 32 bits of the key's hash, so that growing the table, and most probes
//! that meet another key, do not read the stored keys (a cache miss each).
//!
//! How keys are stored depends on their columns:
//! - **packed**: fixed-width columns (integers, timestamps, dates, decimals
//!   up to 128 bits) of at most 16 bytes together, such as Nexmark's
//!   `(bidder, auction)`. Each key is its columns' bytes side by side in two
//!   words, made from the columns a whole column at a time, hashed as two
//!   words and compared as two words;
//! - **rows**: anything else, in Arrow's row format, which compares as bytes.

use std::hash::BuildHasher;

use arrow::array::{Array, ArrayData, ArrayRef, make_array};
use arrow::buffer::{Buffer, NullBuffer};
use arrow::datatypes::{DataType, Schema};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::{DataFusionError, Result};

/// Dense ids for grouping keys, and the key of every id. With no key columns
/// every row is id 0.
pub(crate) struct KeyIndex {
    /// The ids, found by their key's hash.
    ids: hashbrown::HashTable<Entry>,
    /// foldhash, as DataFusion's hash maps: hashing keys is on every row's path.
    hasher: hashbrown::DefaultHashBuilder,
    keys: Keys,
}

/// A key's id and the hash it was filed by.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u32,
    hash: u32,
}

impl Entry {
    /// The table's hash of a key: 32 bits of it in both halves, since the
    /// table takes its bucket from the low bits and a tag from the top ones.
    fn hash(hash32: u32) -> u64 {
        u64::from(hash32) << 32 | u64::from(hash32)
    }

    fn table_hash(&self) -> u64 {
        Self::hash(self.hash)
    }
}

/// A key's 32-bit hash.
fn hash32(hasher: &hashbrown::DefaultHashBuilder, key: impl std::hash::Hash) -> u32 {
    let hash = hasher.hash_one(key);
    (hash ^ (hash >> 32)) as u32
}

/// The keys of all ids, by id.
enum Keys {
    None,
    Packed {
        columns: Vec<PackedColumn>,
        keys: Vec<Packed>,
    },
    Rows {
        converter: RowConverter,
        keys: Rows,
    },
}

/// Where a column's values sit in a [`Packed`] key.
#[derive(Debug, Clone)]
struct PackedColumn {
    data_type: DataType,
    width: usize,
    /// Bits below the column's first byte.
    shift: u32,
}

/// A key of fixed-width columns: their little-endian bytes side by side,
/// and a bit per column that is null (whose bytes are then zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Packed {
    low: u64,
    high: u64,
    nulls: u16,
}

impl Packed {
    fn bits(&self) -> u128 {
        u128::from(self.low) | (u128::from(self.high) << 64)
    }

    fn set_bits(&mut self, bits: u128) {
        self.low = bits as u64;
        self.high = (bits >> 64) as u64;
    }
}

impl KeyIndex {
    /// An index over keys of `key_schema`; no columns means one key.
    pub(crate) fn for_keys(key_schema: &Schema) -> Result<Self> {
        let fields = key_schema.fields();
        let keys = if fields.is_empty() {
            Keys::None
        } else if let Some(columns) = packing(key_schema) {
            Keys::Packed {
                columns,
                keys: Vec::new(),
            }
        } else {
            let converter = RowConverter::new(
                fields
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?;
            let keys = converter.empty_rows(0, 0);
            Keys::Rows { converter, keys }
        };
        Ok(Self {
            ids: hashbrown::HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            keys,
        })
    }

    /// How many ids exist (always 1 without key columns).
    pub(crate) fn len(&self) -> usize {
        match &self.keys {
            Keys::None => 1,
            Keys::Packed { keys, .. } => keys.len(),
            Keys::Rows { keys, .. } => keys.num_rows(),
        }
    }

    /// The id of each row's key; new keys get the next ids in row order.
    pub(crate) fn ids(&mut self, keys: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
        // Large batches (a restore) would otherwise grow the table many times.
        self.reserve(rows);
        let mut ids = Vec::with_capacity(rows);
        let Self {
            ids: table,
            hasher,
            keys: stored,
        } = self;
        match stored {
            Keys::None => ids.resize(rows, 0),
            Keys::Packed { columns, keys: all } => {
                for key in pack(columns, keys, rows)? {
                    let hash = hash32(hasher, key);
                    let entry = table.entry(
                        Entry::hash(hash),
                        |e| e.hash == hash && all[e.id as usize] == key,
                        Entry::table_hash,
                    );
                    ids.push(id_of(entry, hash, all.len(), || all.push(key))?);
                }
            }
            Keys::Rows {
                converter,
                keys: all,
            } => {
                let encoded = converter.convert_columns(keys)?;
                for key in encoded.iter() {
                    let bytes = key.as_ref();
                    let hash = hash32(hasher, bytes);
                    let entry = table.entry(
                        Entry::hash(hash),
                        |e| e.hash == hash && all.row(e.id as usize).as_ref() == bytes,
                        Entry::table_hash,
                    );
                    let next = all.num_rows();
                    ids.push(id_of(entry, hash, next, || all.push(key))?);
                }
            }
        }
        Ok(ids)
    }

    /// Room for `additional` more keys, for an operator about to restore
    /// that many rows.
    pub(crate) fn reserve(&mut self, additional: usize) {
        if !matches!(self.keys, Keys::None) {
            self.ids.reserve(additional, Entry::table_hash);
        }
    }

    /// The id of each row's key if the index holds it; adds nothing.
    pub(crate) fn find(&self, keys: &[ArrayRef], rows: usize) -> Result<Vec<Option<usize>>> {
        let found = |e: Option<&Entry>| e.map(|e| e.id as usize);
        Ok(match &self.keys {
            Keys::None => vec![Some(0); rows],
            Keys::Packed { columns, keys: all } => pack(columns, keys, rows)?
                .into_iter()
                .map(|key| {
                    let hash = hash32(&self.hasher, key);
                    found(self.ids.find(Entry::hash(hash), |e| {
                        e.hash == hash && all[e.id as usize] == key
                    }))
                })
                .collect(),
            Keys::Rows {
                converter,
                keys: all,
            } => converter
                .convert_columns(keys)?
                .iter()
                .map(|key| {
                    let bytes = key.as_ref();
                    let hash = hash32(&self.hasher, bytes);
                    found(self.ids.find(Entry::hash(hash), |e| {
                        e.hash == hash && all.row(e.id as usize).as_ref() == bytes
                    }))
                })
                .collect(),
        })
    }

    /// The key columns of `ids`, in order.
    pub(crate) fn keys(&self, ids: &[usize]) -> Result<Vec<ArrayRef>> {
        match &self.keys {
            Keys::None => Ok(Vec::new()),
            Keys::Packed { columns, keys } => columns
                .iter()
                .enumerate()
                .map(|(c, column)| unpack(column, c, ids.iter().map(|id| &keys[*id])))
                .collect(),
            Keys::Rows { converter, keys } => {
                Ok(converter.convert_rows(ids.iter().map(|id| keys.row(*id)))?)
            }
        }
    }
}

/// The id of a key found in the table, or `next` for a new one, which
/// `store` keeps.
fn id_of(
    entry: hashbrown::hash_table::Entry<'_, Entry>,
    hash: u32,
    next: usize,
    store: impl FnOnce(),
) -> Result<usize> {
    match entry {
        hashbrown::hash_table::Entry::Occupied(found) => Ok(found.get().id as usize),
        hashbrown::hash_table::Entry::Vacant(vacant) => {
            let Ok(narrow) = u32::try_from(next) else {
                return Err(DataFusionError::ResourcesExhausted(
                    "more than 4294967295 distinct keys in one subtask".into(),
                ));
            };
            vacant.insert(Entry { id: narrow, hash });
            store();
            Ok(next)
        }
    }
}

/// Where each column of `schema` goes in a packed key, if they are all of
/// fixed width and fit in 16 bytes together.
fn packing(schema: &Schema) -> Option<Vec<PackedColumn>> {
    if schema.fields().len() > 16 {
        return None;
    }
    let mut shift = 0;
    let mut columns = Vec::new();
    for field in schema.fields() {
        let width = field.data_type().primitive_width()?;
        columns.push(PackedColumn {
            data_type: field.data_type().clone(),
            width,
            shift,
        });
        shift += u32::try_from(width * 8).ok()?;
    }
    (shift <= 128).then_some(columns)
}

/// The packed key of each of `rows` rows of `keys`, made a column at a time.
fn pack(columns: &[PackedColumn], keys: &[ArrayRef], rows: usize) -> Result<Vec<Packed>> {
    let mut packed = vec![Packed::default(); rows];
    for (c, (column, array)) in columns.iter().zip(keys).enumerate() {
        if array.data_type() != &column.data_type || array.len() != rows {
            return Err(DataFusionError::Internal(format!(
                "key column {c} is {} with {} rows, not {} with {rows}",
                array.data_type(),
                array.len(),
                column.data_type
            )));
        }
        let data = array.to_data();
        let Some(buffer) = data.buffers().first() else {
            return Err(DataFusionError::Internal(format!(
                "key column {c} has no values"
            )));
        };
        let start = data.offset() * column.width;
        let Some(values) = buffer.as_slice().get(start..start + rows * column.width) else {
            return Err(DataFusionError::Internal(format!(
                "key column {c} is shorter than its length"
            )));
        };
        let width = column.width;
        for (key, value) in packed.iter_mut().zip(values.chunks_exact(width)) {
            let mut bytes = [0u8; 16];
            bytes[..width].copy_from_slice(value);
            key.set_bits(key.bits() | u128::from_le_bytes(bytes) << column.shift);
        }
        if let Some(nulls) = data.nulls() {
            let mask = (u128::MAX >> (128 - 8 * width as u32)) << column.shift;
            for row in nulls
                .iter()
                .enumerate()
                .filter(|(_, valid)| !valid)
                .map(|(r, _)| r)
            {
                let key = &mut packed[row];
                // Whatever bytes a null slot holds, every null is the same key.
                key.set_bits(key.bits() & !mask);
                key.nulls |= 1 << c;
            }
        }
    }
    Ok(packed)
}

/// Column `c` of `keys`, back as an array.
fn unpack<'a>(
    column: &PackedColumn,
    c: usize,
    keys: impl ExactSizeIterator<Item = &'a Packed>,
) -> Result<ArrayRef> {
    let len = keys.len();
    let mut values = Vec::with_capacity(len * column.width);
    let mut valid = Vec::with_capacity(len);
    for key in keys {
        let bytes = (key.bits() >> column.shift).to_le_bytes();
        values.extend_from_slice(&bytes[..column.width]);
        valid.push(key.nulls & (1 << c) == 0);
    }
    let nulls = NullBuffer::from(valid);
    let data = ArrayData::builder(column.data_type.clone())
        .len(len)
        .add_buffer(Buffer::from_vec(values))
        .nulls((nulls.null_count() > 0).then_some(nulls))
        .align_buffers(true)
        .build()?;
    Ok(make_array(data))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, TimeUnit};

    use std::sync::Arc;

    use super::*;

    fn schema(types: &[DataType]) -> Schema {
        Schema::new(
            types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("k{i}"), t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn fixed_width_keys_of_16_bytes_are_packed_and_others_are_rows() {
        let packed = |types: &[DataType]| {
            matches!(
                KeyIndex::for_keys(&schema(types)).map(|k| k.keys),
                Ok(Keys::Packed { .. })
            )
        };
        assert!(packed(&[DataType::Int64, DataType::Int64]));
        assert!(!packed(&[DataType::Int32, DataType::Decimal128(20, 2)]));
        assert!(packed(&[DataType::Decimal128(20, 2)]));
        assert!(!packed(&[DataType::Int64, DataType::Utf8]));
        assert!(!packed(&[DataType::Int64, DataType::Int64, DataType::Int8]));
        assert!(!packed(&[DataType::Boolean]));
    }

    #[test]
    fn packed_and_row_keys_get_the_same_ids_and_give_the_same_keys_back() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("+01:00".into()));
        let types = [DataType::Int64, DataType::Int32, ts.clone()];
        let mut packed = KeyIndex::for_keys(&schema(&types[..2])).expect("index");
        let mut rows =
            KeyIndex::for_keys(&schema(&[DataType::Int64, DataType::Utf8])).expect("index");
        assert!(matches!(packed.keys, Keys::Packed { .. }));
        // Nulls whose slots hold different bytes are one key; a null is not 0.
        let a: ArrayRef = Arc::new(Int64Array::new(
            vec![-1, 5, 0, -1, 9, i64::MAX].into(),
            Some(NullBuffer::from(vec![true, false, true, true, false, true])),
        ));
        let b = Int32Array::from(vec![Some(7), Some(1), Some(7), Some(7), Some(1), None]);
        let b_text: ArrayRef = Arc::new(
            b.iter()
                .map(|v| v.map(|v| v.to_string()))
                .collect::<StringArray>(),
        );
        let b: ArrayRef = Arc::new(b);
        let ids = packed
            .ids(&[Arc::clone(&a), Arc::clone(&b)], 6)
            .expect("ids");
        assert_eq!(ids, [0, 1, 2, 0, 1, 3]);
        assert_eq!(
            rows.ids(&[Arc::clone(&a), b_text], 6).expect("ids"),
            ids,
            "row-format keys group the same"
        );
        // A slice: offsets into the columns' buffers.
        let tail = packed
            .find(&[a.slice(3, 3), b.slice(3, 3)], 3)
            .expect("find");
        assert_eq!(tail, [Some(0), Some(1), Some(3)]);
        let missing: ArrayRef = Arc::new(Int32Array::from(vec![8]));
        assert_eq!(
            packed.find(&[a.slice(0, 1), missing], 1).expect("find"),
            [None]
        );
        let keys = packed.keys(&[3, 0, 1]).expect("keys");
        assert_eq!(
            keys[0].as_ref(),
            &Int64Array::from(vec![Some(i64::MAX), Some(-1), None]) as &dyn Array
        );
        assert_eq!(
            keys[1].as_ref(),
            &Int32Array::from(vec![None, Some(7), Some(1)]) as &dyn Array
        );
        // A time zone stays with the type.
        let mut zoned = KeyIndex::for_keys(&schema(&types[2..])).expect("index");
        let times: ArrayRef =
            Arc::new(TimestampMillisecondArray::from(vec![5, 5, 6]).with_timezone("+01:00"));
        assert_eq!(zoned.ids(&[times], 3).expect("ids"), [0, 0, 1]);
        assert_eq!(zoned.keys(&[1]).expect("keys")[0].data_type(), &ts);
        assert_eq!(zoned.len(), 2);
    }
}
