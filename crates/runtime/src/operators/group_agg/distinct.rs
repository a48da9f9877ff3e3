//! DISTINCT calls of a columnar group aggregation over an insert-only
//! input.
//!
//! `COUNT(DISTINCT x)` (and SUM, AVG, MIN, MAX) over a key's rows is the
//! plain call over the first row of each distinct `x`: later rows with a
//! value the key has seen add nothing, and NULLs add nothing at all. So the
//! aggregation keeps, per DISTINCT call and key, the set of values seen so
//! far, and narrows the call's FILTER to the rows whose value is new. The
//! plain call then runs in DataFusion's vectorized `GroupsAccumulator`s like
//! any other, and a key's result is an Arrow value rather than a row-wise
//! accumulator's.
//!
//! DISTINCT calls over the same arguments (`COUNT(DISTINCT bidder)` with
//! several FILTERs, as in Nexmark q15 and q16) share one set, as in Flink:
//! each value carries which of the calls have seen it, so a row costs one
//! lookup however many of the calls take it.
//!
//! A set holds integers (an argument of an integer, date or time type:
//! [`super::int_sets`], which turns a key's dense ids into a bitmap) or
//! else the arguments in Arrow's row format. One set per key keeps a key's
//! values together, so that state TTL forgets a key by dropping its set,
//! and a snapshot lists them key by key.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Int64Array, RecordBatch,
};
use arrow::datatypes::{DataType, Int64Type};
use arrow::row::{RowConverter, SortField};
use datafusion::error::{DataFusionError, Result};
use hashbrown::HashTable;

use super::int_sets::{IntSets, Members};
use crate::checkpoint::{KeyedState, StateBatch};
use crate::operators::aggregate::{AggregateCall, CallInput};

/// The most calls one set is shared by: one bit each in [`Members`].
const MAX_MEMBERS: usize = 32;

/// One hash table of values per group id, sharing one hasher.
struct GroupSets<K, M> {
    sets: Vec<HashTable<(K, M)>>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl<K: Hash + Eq, M: Members> GroupSets<K, M> {
    fn new() -> Self {
        Self {
            sets: Vec::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    /// Records that the calls `bits` saw `value` in `group`; returns those
    /// of them that had not seen it before.
    fn insert<Q>(&mut self, group: usize, value: &Q, bits: u32, owned: impl FnOnce(&Q) -> K) -> u32
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.sets.len() <= group {
            self.sets.resize_with(group + 1, HashTable::new);
        }
        let hasher = &self.hasher;
        let hash = hasher.hash_one(value);
        let set = &mut self.sets[group];
        if let Some((_, members)) = set.find_mut(hash, |(k, _)| k.borrow() == value) {
            let new = bits & !members.bits();
            *members = M::of(members.bits() | bits);
            return new;
        }
        set.insert_unique(hash, (owned(value), M::of(bits)), |(k, _)| {
            hasher.hash_one(k.borrow())
        });
        bits
    }

    fn forget(&mut self, group: usize) {
        if let Some(set) = self.sets.get_mut(group) {
            *set = HashTable::new();
        }
    }

    /// Every (group, value) the calls `bits` have seen, group by group.
    fn entries(&self, bits: u32) -> impl Iterator<Item = (usize, &K)> {
        self.sets.iter().enumerate().flat_map(move |(group, set)| {
            set.iter()
                .filter(move |(_, m)| m.bits() & bits != 0)
                .map(move |(v, _)| (group, v))
        })
    }
}

/// The values seen by DISTINCT calls over the same arguments.
enum Values {
    /// Of one call.
    Single(Keys<()>),
    /// Of several calls, each value with the calls that have seen it.
    Shared(Keys<u32>),
}

/// Values as set elements.
enum Keys<M> {
    /// A single argument of a type that casts to BIGINT without loss.
    Ints(IntSets<M>),
    /// Any other arguments, in Arrow's row format.
    Rows(GroupSets<Box<[u8]>, M>, RowConverter),
}

impl<M: Members> Keys<M> {
    /// The values of `calls` calls over arguments of `arg_types`.
    fn new(arg_types: &[DataType], calls: usize) -> Result<Self> {
        Ok(match arg_types {
            [one] if fits_i64(one) => Keys::Ints(IntSets::new(calls)),
            _ => {
                let fields = arg_types
                    .iter()
                    .map(|t| SortField::new(t.clone()))
                    .collect();
                Keys::Rows(GroupSets::new(), RowConverter::new(fields)?)
            }
        })
    }

    /// See [`SharedSet::record`]; `rows` have no NULL argument.
    fn record(
        &mut self,
        groups: &[usize],
        args: &[ArrayRef],
        rows: &[(usize, u32)],
        first: &mut impl FnMut(u32, usize),
    ) -> Result<()> {
        match self {
            Keys::Ints(sets) => {
                let values = int_values(args)?;
                sets.insert_rows(groups, values.values(), rows, |new, row| {
                    report(new, row, first)
                });
            }
            Keys::Rows(sets, converter) => {
                let encoded = converter.convert_columns(args)?;
                let data = |r| encoded.row(r).data();
                offer(sets, groups, rows, data, |v: &[u8]| Box::from(v), first);
            }
        }
        Ok(())
    }

    /// See [`SharedSet::entries`].
    fn entries(&self, bit: u32, arg_types: &[DataType]) -> Result<(Vec<usize>, Vec<ArrayRef>)> {
        match self {
            Keys::Ints(sets) => {
                let (groups, values) = sets.entries(bit);
                let values: ArrayRef = Arc::new(Int64Array::from(values));
                let arg_type = arg_types.first().unwrap_or(&DataType::Int64);
                Ok((groups, vec![arrow::compute::cast(&values, arg_type)?]))
            }
            Keys::Rows(sets, converter) => {
                let parser = converter.parser();
                let (groups, rows): (Vec<usize>, Vec<_>) =
                    sets.entries(bit).map(|(g, v)| (g, parser.parse(v))).unzip();
                Ok((groups, converter.convert_rows(rows)?))
            }
        }
    }

    fn forget(&mut self, group: usize) {
        match self {
            Keys::Ints(sets) => sets.forget(group),
            Keys::Rows(sets, _) => sets.forget(group),
        }
    }
}

/// Whether values of `data_type` cast to BIGINT and back without loss.
fn fits_i64(data_type: &DataType) -> bool {
    data_type.is_integer() && *data_type != DataType::UInt64
        || matches!(
            data_type,
            DataType::Date32
                | DataType::Date64
                | DataType::Time32(_)
                | DataType::Time64(_)
                | DataType::Timestamp(_, _)
                | DataType::Duration(_)
        )
}

/// Offers the values of `rows` to `sets`: row `row` is in group
/// `groups[row]`, its value is `value(row)`, and `bits(row)` are the calls
/// that take it. Calls `first(call bit, row)` for each call that had not
/// seen the value in the group.
fn offer<'a, K, M, Q>(
    sets: &mut GroupSets<K, M>,
    groups: &[usize],
    rows: &[(usize, u32)],
    value: impl Fn(usize) -> &'a Q,
    owned: impl Fn(&Q) -> K,
    first: &mut impl FnMut(u32, usize),
) where
    K: Hash + Eq + Borrow<Q>,
    M: Members,
    Q: Hash + Eq + ?Sized + 'a,
{
    for &(row, bits) in rows {
        let new = sets.insert(groups[row], value(row), bits, &owned);
        report(new, row, first);
    }
}

/// Calls `first(call bit, row)` for each call bit in `new`.
fn report(mut new: u32, row: usize, first: &mut impl FnMut(u32, usize)) {
    while new != 0 {
        let bit = new & new.wrapping_neg();
        first(bit, row);
        new &= !bit;
    }
}

/// DISTINCT calls over the same arguments, sharing their seen values.
struct SharedSet {
    /// The calls' indices among the aggregation's calls; call `calls[i]`
    /// is bit `1 << i`.
    calls: Vec<usize>,
    arg_types: Vec<DataType>,
    values: Values,
}

impl SharedSet {
    fn try_new(calls: Vec<usize>, arg_types: &[DataType]) -> Result<Self> {
        let values = if calls.len() > 1 {
            Values::Shared(Keys::new(arg_types, calls.len())?)
        } else {
            Values::Single(Keys::new(arg_types, 1)?)
        };
        Ok(Self {
            calls,
            arg_types: arg_types.to_vec(),
            values,
        })
    }

    /// Records the values of `args` at `rows` (row and the bits of the
    /// calls that take it; row `i` is in group `groups[i]`), and calls
    /// `first(call bit, row)` for each call whose group had not seen the
    /// value. Rows with a NULL argument are skipped: no DISTINCT call
    /// counts them.
    fn record(
        &mut self,
        groups: &[usize],
        args: &[ArrayRef],
        rows: Vec<(usize, u32)>,
        mut first: impl FnMut(u32, usize),
    ) -> Result<()> {
        let nulls: Vec<_> = args.iter().filter_map(|a| a.logical_nulls()).collect();
        let rows: Vec<(usize, u32)> = if nulls.is_empty() {
            rows
        } else {
            rows.into_iter()
                .filter(|(row, _)| nulls.iter().all(|n| n.is_valid(*row)))
                .collect()
        };
        match &mut self.values {
            Values::Single(keys) => keys.record(groups, args, &rows, &mut first),
            Values::Shared(keys) => keys.record(groups, args, &rows, &mut first),
        }
    }

    /// Every (group, value) call bit `bit` has seen: the groups, and the
    /// values as arrays of the arguments' types.
    fn entries(&self, bit: u32) -> Result<(Vec<usize>, Vec<ArrayRef>)> {
        match &self.values {
            Values::Single(keys) => keys.entries(bit, &self.arg_types),
            Values::Shared(keys) => keys.entries(bit, &self.arg_types),
        }
    }

    fn forget(&mut self, group: usize) {
        match &mut self.values {
            Values::Single(keys) => keys.forget(group),
            Values::Shared(keys) => keys.forget(group),
        }
    }
}

/// A single integer-like argument as BIGINT values.
fn int_values(args: &[ArrayRef]) -> Result<Int64Array> {
    let arg = args
        .first()
        .ok_or_else(|| DataFusionError::Internal("DISTINCT without arguments".into()))?;
    Ok(arrow::compute::cast(arg, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// The seen values of every DISTINCT call of an aggregation.
pub(super) struct DistinctCalls {
    sets: Vec<SharedSet>,
}

impl std::fmt::Debug for DistinctCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let calls: Vec<&[usize]> = self.sets.iter().map(|s| s.calls.as_slice()).collect();
        f.debug_struct("DistinctCalls")
            .field("sets", &calls)
            .finish()
    }
}

/// The state part holding call `call`'s values.
fn part_name(call: usize) -> String {
    format!("distinct.{call}")
}

impl DistinctCalls {
    /// The seen values of `calls`' DISTINCT calls, one set per distinct
    /// list of arguments; `None` when there are no DISTINCT calls.
    pub(super) fn try_new(calls: &[AggregateCall]) -> Result<Option<Self>> {
        let mut shared: Vec<(Vec<usize>, &AggregateCall)> = Vec::new();
        for (index, call) in calls.iter().enumerate() {
            if !call.function.is_distinct() {
                continue;
            }
            let same_args = |c: &AggregateCall| {
                c.function.expressions() == call.function.expressions()
                    && c.arg_types() == call.arg_types()
            };
            match shared
                .iter_mut()
                .find(|(members, first)| members.len() < MAX_MEMBERS && same_args(first))
            {
                Some((members, _)) => members.push(index),
                None => shared.push((vec![index], call)),
            }
        }
        let sets = shared
            .into_iter()
            .map(|(members, first)| SharedSet::try_new(members, first.arg_types()))
            .collect::<Result<Vec<_>>>()?;
        Ok((!sets.is_empty()).then_some(Self { sets }))
    }

    /// Narrows each DISTINCT call's filter in `inputs` to the first row of
    /// each value its group (`groups`, one per row) has not seen, and
    /// records those values as seen. Rows the call's FILTER drops are not.
    pub(super) fn first_rows(&mut self, groups: &[usize], inputs: &mut [CallInput]) -> Result<()> {
        let rows = groups.len();
        for set in &mut self.sets {
            let mut bits = vec![0u32; rows];
            let mut firsts = Vec::with_capacity(set.calls.len());
            for (member, call) in set.calls.iter().enumerate() {
                let input = inputs.get(*call).ok_or_else(|| {
                    DataFusionError::Internal("a DISTINCT call has no input".into())
                })?;
                let bit = 1 << member;
                match &input.filter {
                    Some(mask) => mask.values().set_indices().for_each(|r| bits[r] |= bit),
                    None => bits.iter_mut().for_each(|b| *b |= bit),
                }
                let mut first = BooleanBufferBuilder::new(rows);
                first.append_n(rows, false);
                firsts.push(first);
            }
            let taken = bits
                .iter()
                .enumerate()
                .filter(|(_, b)| **b != 0)
                .map(|(row, b)| (row, *b))
                .collect();
            let args = match set.calls.first().and_then(|c| inputs.get(*c)) {
                Some(input) => input.args.clone(),
                None => continue,
            };
            set.record(groups, &args, taken, |bit, row| {
                firsts[bit.trailing_zeros() as usize].set_bit(row, true);
            })?;
            for (call, mut first) in set.calls.iter().zip(firsts) {
                if let Some(input) = inputs.get_mut(*call) {
                    input.filter = Some(BooleanArray::new(first.finish(), None));
                }
            }
        }
        Ok(())
    }

    /// Forgets what `group` has seen (its state expired).
    pub(super) fn forget(&mut self, group: usize) {
        for set in &mut self.sets {
            set.forget(group);
        }
    }

    /// One state batch per DISTINCT call: its values, under their groups'
    /// keys (`keys_of` gives the key columns of group ids).
    pub(super) fn snapshot(
        &self,
        keys_of: impl Fn(&[usize]) -> Result<Vec<ArrayRef>>,
        max_parallelism: usize,
    ) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        for set in &self.sets {
            for (member, call) in set.calls.iter().enumerate() {
                let (groups, values) = set.entries(1 << member)?;
                let keys = keys_of(&groups)?;
                let key_groups =
                    crate::exchange::key_groups_of(&keys, groups.len(), max_parallelism)?;
                batches.push(
                    KeyedState::new(&part_name(*call), key_groups)
                        .group("key", keys)
                        .group("value", values)
                        .build()?,
                );
            }
        }
        Ok(batches)
    }

    /// Whether `part` is the name of a DISTINCT call's state part.
    pub(super) fn is_part(part: Option<&str>) -> bool {
        part.is_some_and(|p| p.starts_with("distinct."))
    }

    /// Takes over the values of a batch written by
    /// [`DistinctCalls::snapshot`], whose keys are groups `groups`.
    pub(super) fn restore(&mut self, state: &StateBatch<'_>, groups: &[usize]) -> Result<()> {
        let part = state.part();
        let (set, member) = self
            .sets
            .iter_mut()
            .find_map(|set| {
                let member = set
                    .calls
                    .iter()
                    .position(|c| part == Some(part_name(*c).as_str()))?;
                Some((set, member))
            })
            .ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "the checkpointed state has a part {part:?} that no DISTINCT call of the query has"
                ))
            })?;
        let values = state.group("value", Some(set.arg_types.len()))?;
        let rows = (0..groups.len()).map(|row| (row, 1 << member)).collect();
        set.record(groups, &values, rows, |_, _| {})
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{StringArray, TimestampMillisecondArray};

    use super::*;

    /// The (call bit, row) pairs `record` reports, offering every row to
    /// the calls `bits`.
    fn firsts(
        set: &mut SharedSet,
        groups: &[usize],
        args: &[ArrayRef],
        bits: u32,
    ) -> Vec<(u32, usize)> {
        let mut firsts = Vec::new();
        let rows = (0..groups.len()).map(|r| (r, bits)).collect();
        set.record(groups, args, rows, |bit, row| firsts.push((bit, row)))
            .expect("record");
        firsts
    }

    #[test]
    fn each_groups_first_row_of_a_value_is_new_and_nulls_never_are() {
        let strings: ArrayRef = Arc::new(StringArray::from(vec![
            Some("x"),
            Some("x"),
            None,
            Some("y"),
            Some("x"),
        ]));
        let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(5),
            Some(5),
            None,
            Some(6),
            Some(5),
        ]));
        let groups = [0, 0, 0, 0, 1];
        for args in [strings, millis] {
            for members in [vec![0], vec![0, 1]] {
                let data_type = args.data_type().clone();
                let new_set =
                    || SharedSet::try_new(members.clone(), std::slice::from_ref(&data_type));
                let mut set = new_set().expect("set");
                let as_rows = matches!(
                    set.values,
                    Values::Single(Keys::Rows(..)) | Values::Shared(Keys::Rows(..))
                );
                assert_eq!(as_rows, data_type == DataType::Utf8, "{data_type}");
                let args = [Arc::clone(&args)];
                assert_eq!(
                    firsts(&mut set, &groups, &args, 1),
                    vec![(1, 0), (1, 3), (1, 4)]
                );
                assert!(firsts(&mut set, &groups, &args, 1).is_empty(), "all seen");
                // What a snapshot lists restores a set that knows the same.
                let (entry_groups, values) = set.entries(1).expect("entries");
                assert_eq!(values[0].data_type(), &data_type);
                let mut restored = new_set().expect("set");
                firsts(&mut restored, &entry_groups, &values, 1);
                assert!(firsts(&mut restored, &groups, &args, 1).is_empty());
                // A forgotten group sees its values anew.
                restored.forget(0);
                assert_eq!(
                    firsts(&mut restored, &groups, &args, 1),
                    vec![(1, 0), (1, 3)]
                );
            }
        }
    }

    #[test]
    fn calls_sharing_a_set_each_see_a_value_first_on_their_own_rows() {
        let mut set = SharedSet::try_new(vec![3, 7], &[DataType::Int64]).expect("set");
        let values: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 1, 2]));
        let groups = [0, 0, 0, 0];
        // Call bit 1 takes rows 0 and 2, bit 2 rows 1 and 2, both row 3.
        let rows = vec![(0, 1), (1, 2), (2, 3), (3, 3)];
        let mut firsts = Vec::new();
        set.record(&groups, &[values], rows, |bit, row| firsts.push((bit, row)))
            .expect("record");
        assert_eq!(firsts, vec![(1, 0), (2, 1), (1, 3), (2, 3)]);
        let (_, seen_by_second) = set.entries(2).expect("entries");
        let seen_by_second = seen_by_second[0].as_primitive::<Int64Type>();
        let mut seen: Vec<i64> = seen_by_second.values().to_vec();
        seen.sort_unstable();
        assert_eq!(seen, vec![1, 2]);
    }
}
