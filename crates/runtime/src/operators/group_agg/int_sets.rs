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
//!
//! Most lookups miss the cache (Nexmark q16 spreads its rows over 10,000
//! channels, each with a set of its own), so a batch's values are looked
//! up in a pipeline: where a value further on will land (its group's set,
//! then its table slot or bitmap word) is prefetched while the current one
//! is recorded. The
//! tables are open-addressed for that: a value's slot is known from its
//! hash alone.

use std::hash::BuildHasher;

use weir_common::hint::prefetch;

/// Fewer values than this stay in a hash table.
const DENSE_FROM: usize = 1024;
/// Bytes a table takes per value, roughly (12-byte slots, at most 3/4 full).
const TABLE_BYTES_PER_VALUE: usize = 16;
/// How many values ahead of the one being recorded the value's slot or
/// word is prefetched; its group's set (which says where the slot is) is
/// prefetched twice as far ahead.
const PREFETCH_AHEAD: usize = 8;
/// A bitmap may take this many times a table's bytes before it is one again.
const DENSE_SLACK: usize = 4;

/// Which calls have seen a value, one bit per call. A set of one call
/// keeps nothing: a value in it has been seen by its call.
pub(super) trait Members: Copy + 'static {
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
    Table(ValueTable<M>),
    Dense(Dense),
}

/// A value and the calls that saw it, packed: 12 bytes with a `u32` of
/// members rather than 16, so a table takes less memory than hashbrown's
/// at its fuller load.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Slot<M> {
    value: i64,
    members: M,
}

/// A hash table of values and their members: open addressing with linear
/// probing, at most 3/4 full. A slot holding [`ValueTable::FREE`] is free;
/// that value itself, when seen, is kept aside.
struct ValueTable<M> {
    /// A power of two of slots, or none.
    slots: Vec<Slot<M>>,
    /// Values in `slots`.
    len: usize,
    /// The members of the value [`ValueTable::FREE`], once seen.
    free_value: Option<M>,
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
                .resize_with(group + 1, || IntSet::Table(ValueTable::new()));
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
                let new = table.insert(hasher, value, bits);
                *set = IntSet::Table(table);
                new
            }
            IntSet::Table(table) => {
                let before = table.len();
                let new = table.insert(hasher, value, bits);
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

    /// [`IntSets::insert`] for each `(row, bits)` of `rows`, whose value is
    /// `values[row]` in group `groups[row]`; then `report(new bits, row)`.
    pub(super) fn insert_rows(
        &mut self,
        groups: &[usize],
        values: &[i64],
        rows: &[(usize, u32)],
        mut report: impl FnMut(u32, usize),
    ) {
        for (i, &(row, bits)) in rows.iter().enumerate() {
            if let Some(set) = rows
                .get(i + 2 * PREFETCH_AHEAD)
                .and_then(|(ahead, _)| self.sets.get(groups[*ahead]))
            {
                prefetch(std::ptr::from_ref(set).cast());
            }
            if let Some(&(ahead, _)) = rows.get(i + PREFETCH_AHEAD) {
                self.prefetch(groups[ahead], values[ahead]);
            }
            report(self.insert(groups[row], values[row], bits), row);
        }
    }

    fn prefetch(&self, group: usize, value: i64) {
        let address = match self.sets.get(group) {
            Some(IntSet::Table(table)) => table.slot_of(&self.hasher, value),
            Some(IntSet::Dense(dense)) => dense.word_of(value, self.width),
            None => None,
        };
        if let Some(address) = address {
            prefetch(address);
        }
    }

    pub(super) fn forget(&mut self, group: usize) {
        if let Some(set) = self.sets.get_mut(group) {
            *set = IntSet::Table(ValueTable::new());
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
                    .for_each(|(v, _)| push(v)),
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

impl<M: Members> ValueTable<M> {
    /// The value that marks a free slot.
    const FREE: i64 = i64::MIN;

    fn new() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
            free_value: None,
        }
    }

    fn with_capacity(values: usize, hasher: &hashbrown::DefaultHashBuilder) -> Self {
        let mut table = Self::new();
        table.grow_to(slots_for(values), hasher);
        table
    }

    /// Values held.
    fn len(&self) -> usize {
        self.len + usize::from(self.free_value.is_some())
    }

    fn home(&self, hasher: &hashbrown::DefaultHashBuilder, value: i64) -> usize {
        hasher.hash_one(value) as usize & (self.slots.len() - 1)
    }

    /// Records that the calls `bits` saw `value`; returns those of them
    /// that had not seen it before.
    fn insert(&mut self, hasher: &hashbrown::DefaultHashBuilder, value: i64, bits: u32) -> u32 {
        if value == Self::FREE {
            let old = self.free_value.map_or(0, M::bits);
            self.free_value = Some(M::of(old | bits));
            return bits & !old;
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow_to((self.slots.len() * 2).max(8), hasher);
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(hasher, value);
        loop {
            let slot = &mut self.slots[at];
            let held = slot.value;
            if held == value {
                let old = slot.members.bits();
                slot.members = M::of(old | bits);
                return bits & !old;
            }
            if held == Self::FREE {
                *slot = Slot {
                    value,
                    members: M::of(bits),
                };
                self.len += 1;
                return bits;
            }
            at = (at + 1) & mask;
        }
    }

    /// Rehashes into `slots` slots (a power of two that holds every value).
    fn grow_to(&mut self, slots: usize, hasher: &hashbrown::DefaultHashBuilder) {
        let free = Slot {
            value: Self::FREE,
            members: M::of(0),
        };
        let old = std::mem::replace(&mut self.slots, vec![free; slots]);
        let mask = slots - 1;
        for slot in old.into_iter().filter(|s| s.value != Self::FREE) {
            let mut at = self.home(hasher, slot.value);
            while self.slots[at].value != Self::FREE {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }

    /// Where `value` would be looked up first.
    fn slot_of(&self, hasher: &hashbrown::DefaultHashBuilder, value: i64) -> Option<*const u8> {
        if self.slots.is_empty() {
            return None;
        }
        Some(std::ptr::from_ref(&self.slots[self.home(hasher, value)]).cast())
    }

    fn iter(&self) -> impl Iterator<Item = (i64, M)> + '_ {
        self.slots
            .iter()
            .filter(|s| s.value != Self::FREE)
            .map(|s| (s.value, s.members))
            .chain(self.free_value.map(|m| (Self::FREE, m)))
    }
}

/// Slots for a table of `values` values: a power of two, at most 3/4 full.
fn slots_for(values: usize) -> usize {
    (values.saturating_mul(4) / 3 + 1)
        .next_power_of_two()
        .max(8)
}

impl Dense {
    /// A bitmap of `table`'s values, if it takes fewer bytes than the table.
    fn of<M: Members>(table: &ValueTable<M>, width: u32) -> Option<Self> {
        let low = table.iter().map(|(v, _)| v).min()?;
        let high = table.iter().map(|(v, _)| v).max()?;
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
        for (value, members) in table.iter() {
            dense.insert(value, members.bits(), width)?;
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
    ) -> ValueTable<M> {
        let mut table = ValueTable::with_capacity(self.len + 1, hasher);
        self.for_each(width, |value, members| {
            table.insert(hasher, value, members);
        });
        table
    }

    /// Where `value`'s bits are, if the bitmap covers it.
    fn word_of(&self, value: i64, width: u32) -> Option<*const u8> {
        let per_word_log = 6 - width.trailing_zeros();
        let offset = value.checked_sub(self.base)?;
        let word = self
            .words
            .get(usize::try_from(offset).ok()? >> per_word_log)?;
        Some(std::ptr::from_ref(word).cast())
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

    /// Offers the same values to the sets (in batches of 37 rows, with
    /// prefetching) and to a model, and compares what each says was new,
    /// and what each lists after.
    fn check(calls: usize, values: impl IntoIterator<Item = (usize, i64, u32)>) -> IntSets<u32> {
        let mut sets = IntSets::<u32>::new(calls);
        let mut model: BTreeMap<(usize, i64), u32> = BTreeMap::new();
        let values: Vec<(usize, i64, u32)> = values.into_iter().collect();
        for (batch, offers) in values.chunks(37).enumerate() {
            let groups: Vec<usize> = offers.iter().map(|(g, _, _)| *g).collect();
            let ints: Vec<i64> = offers.iter().map(|(_, v, _)| *v).collect();
            let rows: Vec<(usize, u32)> = offers.iter().map(|(_, _, b)| *b).enumerate().collect();
            let mut reported = Vec::new();
            sets.insert_rows(&groups, &ints, &rows, |new, row| reported.push((row, new)));
            for (row, (group, value, bits)) in offers.iter().enumerate() {
                let seen = model.entry((*group, *value)).or_default();
                let expected = bits & !*seen;
                *seen |= bits;
                assert_eq!(
                    reported[row],
                    (row, expected),
                    "offer {}: {value}",
                    batch * 37 + row
                );
            }
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
