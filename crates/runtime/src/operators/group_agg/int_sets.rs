//! The integer values each group's DISTINCT calls have seen, each value
//! with the calls (bits) that have seen it.
//!
//! A group's set starts as a hash table. Ids are mostly dense (Nexmark's
//! bidders and auctions are numbered from 1000 up): once a table holds
//! enough values that a bitmap over their range would take less memory, it
//! becomes one, `width` bits per value, and a lookup is one word instead of
//! a cache miss or two in a table of hundreds of thousands of entries (the
//! largest part of Nexmark q16). A bitmap that would grow far larger than a
//! table of its values (a stray value far away) turns back into a table.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// Fewer values than this stay in a hash table.
const DENSE_FROM: usize = 1024;
/// Bytes a table takes per value (the entry and its control byte), roughly.
const TABLE_BYTES_PER_VALUE: usize = 17;
/// A bitmap may take this many times a table's bytes before it is one again.
const DENSE_SLACK: usize = 4;

/// Which calls have seen a value, one bit per call. A set of one call
/// keeps nothing: a value in it has been seen by its call.
pub(super) trait Members: Copy {
    fn of(bits: u32) -> Self;
    fn bits(self) -> u32;
}

impl Members for () {
    fn of(_: u32) -> Self {}
    fn bits(self) -> u32 {
        1
    }
}

impl Members for u32 {
    fn of(bits: u32) -> Self {
        bits
    }
    fn bits(self) -> u32 {
        self
    }
}

/// A group's values.
enum IntSet<M> {
    Table(HashTable<(i64, M)>),
    Dense(Dense),
}

/// Values `base..base + words.len() * 64 / width`, `width` bits each.
struct Dense {
    base: i64,
    words: Vec<u64>,
    /// Values with any bit set.
    len: usize,
}

/// One set of values per group id, sharing one hasher.
pub(super) struct IntSets<M> {
    sets: Vec<IntSet<M>>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Bits per value in a bitmap: the number of calls, up to a power of two.
    width: u32,
}

impl<M: Members> IntSets<M> {
    /// Sets for `calls` calls (at most 32).
    pub(super) fn new(calls: usize) -> Self {
        Self {
            sets: Vec::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            width: (calls.clamp(1, 32) as u32).next_power_of_two(),
        }
    }

    /// Records that the calls `bits` saw `value` in `group`; returns those
    /// of them that had not seen it before.
    pub(super) fn insert(&mut self, group: usize, value: i64, bits: u32) -> u32 {
        if self.sets.len() <= group {
            self.sets
                .resize_with(group + 1, || IntSet::Table(HashTable::new()));
        }
        let (width, hasher) = (self.width, &self.hasher);
        let set = &mut self.sets[group];
        match set {
            IntSet::Dense(dense) => {
                if let Some(new) = dense.insert(value, bits, width) {
                    return new;
                }
                // Too sparse for a bitmap: a table again.
                let mut table = dense.table(width, hasher);
                let new = table_insert(&mut table, hasher, value, bits);
                *set = IntSet::Table(table);
                new
            }
            IntSet::Table(table) => {
                let before = table.len();
                let new = table_insert(table, hasher, value, bits);
                // Tried once per doubling, when the value was a new one.
                if table.len() > before
                    && table.len() >= DENSE_FROM
                    && table.len().is_power_of_two()
                    && let Some(dense) = Dense::of(table, width)
                {
                    *set = IntSet::Dense(dense);
                }
                new
            }
        }
    }

    pub(super) fn forget(&mut self, group: usize) {
        if let Some(set) = self.sets.get_mut(group) {
            *set = IntSet::Table(HashTable::new());
        }
    }

    /// Every (group, value) the calls `bits` have seen, group by group.
    pub(super) fn entries(&self, bits: u32) -> (Vec<usize>, Vec<i64>) {
        let mut groups = Vec::new();
        let mut values = Vec::new();
        for (group, set) in self.sets.iter().enumerate() {
            let mut push = |value: i64| {
                groups.push(group);
                values.push(value);
            };
            match set {
                IntSet::Table(table) => table
                    .iter()
                    .filter(|(_, m)| m.bits() & bits != 0)
                    .for_each(|(v, _)| push(*v)),
                IntSet::Dense(dense) => dense.for_each(self.width, |value, members| {
                    if members & bits != 0 {
                        push(value);
                    }
                }),
            }
        }
        (groups, values)
    }
}

/// Records that the calls `bits` saw `value` in `table`; returns those of
/// them that had not seen it before.
fn table_insert<M: Members>(
    table: &mut HashTable<(i64, M)>,
    hasher: &hashbrown::DefaultHashBuilder,
    value: i64,
    bits: u32,
) -> u32 {
    let hash = hasher.hash_one(value);
    if let Some((_, members)) = table.find_mut(hash, |(v, _)| *v == value) {
        let new = bits & !members.bits();
        *members = M::of(members.bits() | bits);
        return new;
    }
    table.insert_unique(hash, (value, M::of(bits)), |(v, _)| hasher.hash_one(v));
    bits
}

impl Dense {
    /// A bitmap of `table`'s values, if it takes fewer bytes than the table.
    fn of<M: Members>(table: &HashTable<(i64, M)>, width: u32) -> Option<Self> {
        let low = table.iter().map(|(v, _)| *v).min()?;
        let high = table.iter().map(|(v, _)| *v).max()?;
        let bytes = bitmap_bytes(low, high, width)?;
        if bytes > table.len() * TABLE_BYTES_PER_VALUE {
            return None;
        }
        let per_word = 64 / i128::from(width);
        let words = usize::try_from((i128::from(high) - i128::from(low)) / per_word + 1).ok()?;
        let mut dense = Dense {
            base: low,
            words: vec![0; words],
            len: 0,
        };
        for (value, members) in table {
            dense.insert(*value, members.bits(), width)?;
        }
        Some(dense)
    }

    /// Records `bits` for `value` and returns those not set before; `None`
    /// when covering `value` would make the bitmap too large for its values.
    fn insert(&mut self, value: i64, bits: u32, width: u32) -> Option<u32> {
        // `width` is a power of two, so is the number of values a word
        // holds: a value's word and place in it are a shift and a mask of
        // its offset, in 64 bits (a 128-bit division was 3% of Nexmark q16).
        let per_word_log = 6 - width.trailing_zeros();
        let covered = (self.words.len() as u64) << per_word_log;
        let mut offset = value.wrapping_sub(self.base) as u64;
        if value < self.base || offset >= covered {
            self.cover(value, width)?;
            offset = value.wrapping_sub(self.base) as u64;
        }
        let word = &mut self.words[(offset >> per_word_log) as usize];
        let shift = (offset & ((1 << per_word_log) - 1)) as u32 * width;
        let mask = u64::MAX >> (64 - width);
        let old = ((*word >> shift) & mask) as u32;
        if old == 0 && bits != 0 {
            self.len += 1;
        }
        *word |= (u64::from(bits) & mask) << shift;
        Some(bits & !old)
    }

    /// Grows the bitmap to cover `value`, with room to spare on that side;
    /// `None` if it would take more than [`DENSE_SLACK`] times a table.
    fn cover(&mut self, value: i64, width: u32) -> Option<()> {
        let per_word = 64 / i128::from(width);
        let high = i128::from(self.base) + self.words.len() as i128 * per_word - 1;
        let low = i128::from(self.base);
        let (value, span) = (i128::from(value), high - low + 1);
        let (low, high) = if value < low {
            ((value - span / 4).max(i128::from(i64::MIN)), high)
        } else {
            (low, (value + span / 4).min(i128::from(i64::MAX)))
        };
        let limit = (self.len + 1) * TABLE_BYTES_PER_VALUE * DENSE_SLACK;
        if bitmap_bytes(low as i64, high as i64, width)? > limit {
            return None;
        }
        if low < i128::from(self.base) {
            // Whole words in front, so the values held keep their bits.
            let words_before = (i128::from(self.base) - low + per_word - 1) / per_word;
            self.base = (i128::from(self.base) - words_before * per_word) as i64;
            let front = vec![0; words_before as usize];
            self.words.splice(0..0, front);
        } else {
            let words = (high - i128::from(self.base)) / per_word + 1;
            self.words.resize(words as usize, 0);
        }
        Some(())
    }

    /// Calls `f(value, members)` for each value held.
    fn for_each(&self, width: u32, mut f: impl FnMut(i64, u32)) {
        let per_word = 64 / width;
        let mask = u64::MAX >> (64 - width);
        for (w, word) in self.words.iter().enumerate() {
            let mut rest = *word;
            while rest != 0 {
                let slot = rest.trailing_zeros() / width;
                let members = ((word >> (slot * width)) & mask) as u32;
                rest &= !(mask << (slot * width));
                let value = i128::from(self.base) + (w as i128) * i128::from(per_word);
                f((value + i128::from(slot)) as i64, members);
            }
        }
    }

    /// The values as a hash table again.
    fn table<M: Members>(
        &self,
        width: u32,
        hasher: &hashbrown::DefaultHashBuilder,
    ) -> HashTable<(i64, M)> {
        let mut table = HashTable::with_capacity(self.len + 1);
        self.for_each(width, |value, members| {
            let hash = hasher.hash_one(value);
            table.insert_unique(hash, (value, M::of(members)), |(v, _)| hasher.hash_one(v));
        });
        table
    }
}

/// The bytes of a bitmap of `width` bits per value over `low..=high`;
/// `None` past what memory could hold.
fn bitmap_bytes(low: i64, high: i64, width: u32) -> Option<usize> {
    let values = i128::from(high) - i128::from(low) + 1;
    usize::try_from(values.checked_mul(i128::from(width))? / 8 + 8).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Offers the same values to the sets and to a model, and compares
    /// what each says was new, and what each lists after.
    fn check(calls: usize, values: impl IntoIterator<Item = (usize, i64, u32)>) -> IntSets<u32> {
        let mut sets = IntSets::<u32>::new(calls);
        let mut model: BTreeMap<(usize, i64), u32> = BTreeMap::new();
        for (i, (group, value, bits)) in values.into_iter().enumerate() {
            let seen = model.entry((group, value)).or_default();
            let expected = bits & !*seen;
            *seen |= bits;
            assert_eq!(
                sets.insert(group, value, bits),
                expected,
                "offer {i}: {value}"
            );
        }
        for bit in 0..calls {
            let (groups, values) = sets.entries(1 << bit);
            let mut listed: Vec<(usize, i64)> = groups.into_iter().zip(values).collect();
            listed.sort_unstable();
            let expected: Vec<(usize, i64)> = model
                .iter()
                .filter(|(_, seen)| **seen & (1 << bit) != 0)
                .map(|(key, _)| *key)
                .collect();
            assert_eq!(listed, expected, "call {bit}");
        }
        sets
    }

    fn dense_groups(sets: &IntSets<u32>) -> usize {
        sets.sets
            .iter()
            .filter(|s| matches!(s, IntSet::Dense(_)))
            .count()
    }

    /// A deterministic stream of numbers.
    fn numbers(seed: u64) -> impl Iterator<Item = u64> {
        let mut state = seed;
        std::iter::from_fn(move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            Some(state >> 24)
        })
    }

    #[test]
    fn dense_ids_become_a_bitmap_that_answers_as_the_table_did() {
        for calls in [1, 3, 4, 5, 32] {
            let all = if calls == 32 {
                u32::MAX
            } else {
                (1 << calls) - 1
            };
            // Two groups of ids from 1000 up, offered out of order, some twice.
            let values = numbers(calls as u64).take(20_000).map(|n| {
                let bits = ((n >> 20) as u32 & all).max(1);
                ((n % 2) as usize, 1000 + (n % 5000) as i64, bits)
            });
            let sets = check(calls, values);
            assert_eq!(dense_groups(&sets), 2, "{calls} calls");
        }
    }

    #[test]
    fn a_bitmap_grows_both_ways_and_turns_back_into_a_table_for_a_stray_value() {
        let mut values: Vec<(usize, i64, u32)> = (0..3000).map(|v| (0, 10_000 + v, 1)).collect();
        // Below the base, above the end, then negative numbers.
        values.extend((0..2000).map(|v| (0, 9_999 - v, 2)));
        values.extend((0..2000).map(|v| (0, 13_000 + v * 3, 3)));
        values.extend((0..100).map(|v| (0, -v, 1)));
        let sets = check(2, values.clone());
        assert_eq!(dense_groups(&sets), 1);
        // A value far away: the group becomes a table, and can become dense again.
        values.push((0, i64::MAX, 1));
        values.push((0, i64::MIN, 2));
        let sets = check(2, values.clone());
        assert_eq!(dense_groups(&sets), 0);
        values.extend((0..20_000).map(|v| (0, 20_000 + v, 1)));
        check(2, values);
    }

    #[test]
    fn sparse_values_stay_in_a_table_and_a_forgotten_group_starts_over() {
        let values = numbers(9)
            .take(5000)
            .map(|n| (0, (n as i64) << 20, 1 + (n % 3) as u32));
        let mut sets = check(2, values);
        assert_eq!(dense_groups(&sets), 0);
        for v in 0..4096 {
            sets.insert(1, v, 1);
        }
        assert_eq!(dense_groups(&sets), 1);
        sets.forget(1);
        assert_eq!(sets.insert(1, 7, 1), 1);
        assert_eq!(sets.entries(1).1.iter().filter(|v| **v == 7).count(), 1);
    }
}
