//! Group aggregation over an insert-only input, a batch at a time.
//!
//! DataFusion's `GroupsAccumulator`s are fast but can only evaluate all
//! their groups, destructively. So no accumulator lives across batches;
//! every key's *intermediate state* (and its last emitted result) is kept in
//! Arrow arrays instead, in a [`ChunkedRows`] store. For each batch:
//!
//! 1. find each row's group id in a persistent `GroupValues`, and number
//!    the touched groups from 0 for this batch;
//! 2. narrow each DISTINCT call to the first row of each value its key has
//!    not seen (see [`super::distinct`]);
//! 3. into fresh accumulators over the touched groups, merge their stored
//!    states and add the batch's rows; take the new states and evaluate the
//!    new results, all vectorized over the touched keys only;
//! 4. compare with the stored results and emit `+I`, or `-U`/`+U` for the
//!    keys whose result changed.
//!
//! The aggregation work per batch is proportional to the batch, not to the
//! number of keys; the store's bookkeeping adds a compaction once
//! superseded rows outnumber live ones or chunks pile up.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt8Array, UInt32Array};
use arrow::compute::kernels::cmp::distinct;
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use weir_common::{RowKind, StreamBatch};

use super::GroupAggregateSpec;
use super::distinct::DistinctCalls;
use crate::checkpoint::{KeyedState, StateBatch};
use crate::error::batch_error;
use crate::operator::Collector;
use crate::operators::aggregate::{AggregateCall, drain_group_values, output_batch};
use crate::operators::state_ttl::Expiry;

/// Rows of columns per group id, appended in chunks: a group's latest row
/// is wherever `index` points. Superseded rows are dropped by compaction
/// once they outnumber the live ones, or once there are [`MAX_CHUNKS`]
/// chunks: gathering rows reads every chunk's column, so a few keys
/// updated batch after batch must not leave thousands of one-row chunks.
#[derive(Debug, Default)]
struct ChunkedRows {
    chunks: Vec<Vec<ArrayRef>>,
    /// Per group id: (chunk, row), or `None` before the group's first row.
    index: Vec<Option<(usize, usize)>>,
    /// Rows in all chunks.
    stored: usize,
    /// Groups with a row.
    live: usize,
}

/// The most chunks a [`ChunkedRows`] keeps before compacting.
const MAX_CHUNKS: usize = 32;

impl ChunkedRows {
    fn has(&self, group: usize) -> bool {
        self.index.get(group).is_some_and(Option::is_some)
    }

    /// The latest row of each group in `groups` (all must have one).
    fn gather(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        let positions = groups
            .iter()
            .map(|g| self.index.get(*g).copied().flatten())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| DataFusionError::Internal("a group has no stored row".into()))?;
        let width = self.chunks.first().map_or(0, Vec::len);
        (0..width)
            .map(|column| {
                let arrays: Vec<&dyn Array> =
                    self.chunks.iter().map(|c| c[column].as_ref()).collect();
                Ok(arrow::compute::interleave(&arrays, &positions)?)
            })
            .collect()
    }

    /// Drops a group's row (its state expired).
    fn forget(&mut self, group: usize) {
        if let Some(slot) = self.index.get_mut(group)
            && slot.take().is_some()
        {
            self.live -= 1;
        }
    }

    /// Stores row `i` of `columns` as the latest row of `groups[i]`.
    fn append(&mut self, groups: &[usize], columns: Vec<ArrayRef>) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let chunk = self.chunks.len();
        for (row, group) in groups.iter().enumerate() {
            if self.index.len() <= *group {
                self.index.resize(group + 1, None);
            }
            if self.index[*group].replace((chunk, row)).is_none() {
                self.live += 1;
            }
        }
        self.chunks.push(columns);
        self.stored += groups.len();
        if self.chunks.len() > 1
            && (self.stored > 2 * self.live + 4096 || self.chunks.len() > MAX_CHUNKS)
        {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the store as one chunk of live rows.
    fn compact(&mut self) -> Result<()> {
        let groups: Vec<usize> = (0..self.index.len()).filter(|g| self.has(*g)).collect();
        let columns = self.gather(&groups)?;
        self.chunks = vec![columns];
        for (row, group) in groups.iter().enumerate() {
            self.index[*group] = Some((0, row));
        }
        self.stored = self.live;
        Ok(())
    }
}

pub(super) struct ColumnarGroups {
    spec: Arc<GroupAggregateSpec>,
    /// The spec's calls, DISTINCT ones as their plain function over the
    /// rows `distinct` lets through.
    calls: Vec<AggregateCall>,
    /// What the DISTINCT calls have seen; `None` without DISTINCT calls.
    distinct: Option<DistinctCalls>,
    /// Key to group id; `None` for a global aggregation (one group, id 0).
    ids: Option<Box<dyn GroupValues>>,
    /// Intermediate states, one column per state field of every call.
    states: ChunkedRows,
    /// The last emitted result of every group, one column per call; empty
    /// when every call's result is its state (`results_are_states`).
    results: ChunkedRows,
    results_are_states: bool,
    /// State fields per call, to split a stored row back into calls.
    state_widths: Vec<usize>,
    expiry: Option<Expiry>,
    /// The keys the batch being processed touches.
    touched: Touched,
}

/// The groups a batch touches, numbered from 0 in the order the batch
/// first has them; the numbers index the per-batch accumulators, so a
/// batch's keys are hashed once (to their group ids) and not again.
#[derive(Debug, Default)]
struct Touched {
    /// Group id of each touched group.
    groups: Vec<usize>,
    /// The first row of each touched group in the batch.
    first_rows: Vec<u32>,
    /// The touched group of each row of the batch.
    of_rows: Vec<usize>,
    /// Per group id: its touched number, or `u32::MAX`; reset after each
    /// batch for the groups it touched.
    number_of: Vec<u32>,
}

impl Touched {
    /// Numbers the groups of a batch whose row `i` is in group
    /// `row_groups[i]`; returns how many it touches.
    fn number(&mut self, row_groups: &[usize]) -> usize {
        for group in self.groups.drain(..) {
            self.number_of[group] = u32::MAX;
        }
        self.first_rows.clear();
        self.of_rows.clear();
        for (row, group) in row_groups.iter().enumerate() {
            if self.number_of.len() <= *group {
                self.number_of.resize(group + 1, u32::MAX);
            }
            let mut number = self.number_of[*group];
            if number == u32::MAX {
                number = self.groups.len() as u32;
                self.number_of[*group] = number;
                self.groups.push(*group);
                self.first_rows.push(row as u32);
            }
            self.of_rows.push(number as usize);
        }
        self.groups.len()
    }
}

impl std::fmt::Debug for ColumnarGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnarGroups")
            .field("groups", &self.states.index.len())
            .finish()
    }
}

impl ColumnarGroups {
    pub(super) fn try_new(spec: Arc<GroupAggregateSpec>) -> Result<Self> {
        let ids = if spec.grouping.keys.is_empty() {
            None
        } else {
            Some(new_group_values(
                Arc::clone(&spec.grouping.key_schema),
                &GroupOrdering::None,
            )?)
        };
        let calls = spec
            .calls
            .iter()
            .map(|c| match (c.function.is_distinct(), c.over_first_rows()) {
                (false, _) => Ok(c.clone()),
                (true, Some(plain)) => Ok(plain),
                (true, None) => Err(DataFusionError::Internal(format!(
                    "{} needs a row-wise accumulator per key",
                    c.name()
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        let state_widths = calls
            .iter()
            .map(|c| c.function.state_fields().map(|f| f.len()))
            .collect::<Result<_>>()?;
        let results_are_states = calls
            .iter()
            .map(AggregateCall::result_is_state)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .all(|is| is);
        Ok(Self {
            expiry: Expiry::new(spec.state_ttl, spec.final_only),
            distinct: DistinctCalls::try_new(&spec.calls)?,
            calls,
            spec,
            ids,
            states: ChunkedRows::default(),
            results: ChunkedRows::default(),
            state_widths,
            results_are_states,
            touched: Touched::default(),
        })
    }

    #[cfg(test)]
    pub(super) fn results_are_states(&self) -> bool {
        self.results_are_states
    }

    fn accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.calls.iter().map(|c| c.groups_accumulator()).collect()
    }

    /// Splits a row of all calls' state columns into one slice per call.
    fn per_call<'a>(&self, columns: &'a [ArrayRef]) -> Vec<&'a [ArrayRef]> {
        let mut start = 0;
        self.state_widths
            .iter()
            .map(|w| {
                let part = &columns[start.min(columns.len())..(start + w).min(columns.len())];
                start += w;
                part
            })
            .collect()
    }

    /// Processes a batch at processing time `now` (for state TTL).
    pub(super) fn process(
        &mut self,
        batch: &RecordBatch,
        out: &mut Collector,
        now: u64,
    ) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let keys = self.spec.grouping.evaluate(batch)?;
        let mut inputs = AggregateCall::evaluate_all(&self.calls, batch)?;
        let mut row_groups = Vec::with_capacity(rows);
        match &mut self.ids {
            Some(ids) => ids.intern(&keys, &mut row_groups)?,
            None => row_groups.resize(rows, 0),
        }
        if let Some(expiry) = &mut self.expiry {
            for group in expiry.expired(now) {
                self.states.forget(group);
                self.results.forget(group);
                if let Some(distinct) = &mut self.distinct {
                    distinct.forget(group);
                }
            }
        }
        // 1. The touched keys, numbered in the batch from 0.
        let touched = self.touched.number(&row_groups);
        // 2. DISTINCT calls take only the first row of each new value.
        if let Some(distinct) = &mut self.distinct {
            distinct.first_rows(&row_groups, &mut inputs)?;
        }
        let groups = &self.touched.groups;
        if let Some(expiry) = &mut self.expiry {
            expiry.touch(groups, now);
        }
        // 3. Stored state + the batch's rows = the new state and result.
        let seen: Vec<usize> = (0..touched)
            .filter(|i| self.states.has(groups[*i]))
            .collect();
        let seen_groups: Vec<usize> = seen.iter().map(|i| groups[*i]).collect();
        let stored_states = self.states.gather(&seen_groups)?;
        let stored = self.per_call(&stored_states);
        let all: Vec<usize> = (0..touched).collect();
        let mut new_states = Vec::new();
        let mut new_results = Vec::with_capacity(self.calls.len());
        for (call, (mut merged, input)) in self.accumulators()?.into_iter().zip(&inputs).enumerate()
        {
            if !seen.is_empty() {
                merged.merge_batch(stored[call], &seen, touched)?;
            }
            merged.update_batch(
                &input.args,
                &self.touched.of_rows,
                input.filter.as_ref(),
                touched,
            )?;
            let state = merged.state(EmitTo::All)?;
            match (self.results_are_states, state.as_slice()) {
                (true, [result]) => new_results.push(Arc::clone(result)),
                _ => {
                    let mut evaluator = self.calls[call].groups_accumulator()?;
                    evaluator.merge_batch(&state, &all, touched)?;
                    new_results.push(evaluator.evaluate(EmitTo::All)?);
                }
            }
            new_states.extend(state);
        }
        self.states.append(groups, new_states)?;
        if self.spec.final_only {
            return Ok(());
        }
        // 4. The changelog of the touched keys.
        let seen_results = if self.results_are_states {
            stored_states
        } else {
            self.results.gather(&seen_groups)?
        };
        let changed = changed_rows(&seen_results, &new_results, &seen)?;
        // Sources for interleave: 0 = previous results (rows of `seen`), 1 = new results.
        let mut picks = Vec::with_capacity(touched);
        let mut key_rows = Vec::with_capacity(touched);
        let mut kinds = Vec::with_capacity(touched);
        // A touched key's values are taken from its first row in the batch.
        let first_rows = &self.touched.first_rows;
        let mut next_seen = 0;
        for local_row in 0..touched {
            let was_seen = seen.get(next_seen) == Some(&local_row);
            if was_seen {
                let seen_row = next_seen;
                next_seen += 1;
                if !changed[seen_row] {
                    continue;
                }
                picks.push((0, seen_row));
                key_rows.push(first_rows[local_row]);
                kinds.push(RowKind::UpdateBefore as u8);
                picks.push((1, local_row));
                key_rows.push(first_rows[local_row]);
                kinds.push(RowKind::UpdateAfter as u8);
            } else {
                picks.push((1, local_row));
                key_rows.push(first_rows[local_row]);
                kinds.push(RowKind::Insert as u8);
            }
        }
        if !self.results_are_states {
            self.results.append(groups, new_results.clone())?;
        }
        if picks.is_empty() {
            return Ok(());
        }
        let results = new_results
            .iter()
            .enumerate()
            .map(|(call, new)| match seen_results.get(call) {
                Some(old) => Ok(arrow::compute::interleave(
                    &[old.as_ref(), new.as_ref()],
                    &picks,
                )?),
                // No key was seen before: every pick is from the new results.
                None => {
                    let rows: UInt32Array = picks.iter().map(|(_, r)| *r as u32).collect();
                    Ok(arrow::compute::take(new, &rows, None)?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let key_rows = UInt32Array::from(key_rows);
        let keys = keys
            .iter()
            .map(|k| arrow::compute::take(k, &key_rows, None))
            .collect::<Result<Vec<_>, _>>()?;
        let data = self.output(&keys, &results, picks.len())?;
        out.emit(
            StreamBatch::try_new_changelog(data, UInt8Array::from(kinds)).map_err(batch_error)?,
        );
        Ok(())
    }

    /// Batch mode: every key's final result, as inserts.
    pub(super) fn finish(&mut self, out: &mut Collector) -> Result<()> {
        if !self.spec.final_only {
            return Ok(());
        }
        let groups: Vec<usize> = (0..self.states.index.len()).collect();
        let (keys, results) = if groups.is_empty() {
            if self.ids.is_some() {
                return Ok(());
            }
            // A global aggregation over no rows still has one result row.
            (Vec::new(), self.empty_results()?)
        } else {
            let stored = self.states.gather(&groups)?;
            let stored = self.per_call(&stored);
            let results = self
                .accumulators()?
                .into_iter()
                .enumerate()
                .map(|(call, mut a)| {
                    a.merge_batch(stored[call], &groups, groups.len())?;
                    a.evaluate(EmitTo::All)
                })
                .collect::<Result<Vec<_>>>()?;
            let keys = match &mut self.ids {
                Some(ids) => ids.emit(EmitTo::All)?,
                None => Vec::new(),
            };
            (keys, results)
        };
        let rows = match keys.first() {
            Some(k) => k.len(),
            // A global aggregation has one row.
            None => 1,
        };
        let data = self.output(&keys, &results, rows)?;
        out.emit(StreamBatch::inserts(data));
        Ok(())
    }

    /// Every live key with its intermediate state and last emitted result,
    /// then what each DISTINCT call has seen.
    pub(super) fn snapshot(&mut self, max_parallelism: usize) -> Result<Vec<RecordBatch>> {
        let live: Vec<usize> = (0..self.states.index.len())
            .filter(|g| self.states.has(*g))
            .collect();
        let all_keys = match &mut self.ids {
            Some(ids) => {
                // `GroupValues` hands out its keys only by draining them;
                // interned again in id order, every key keeps its id.
                let all = drain_group_values(ids.as_mut())?;
                let mut again = Vec::with_capacity(all.first().map_or(0, |k| k.len()));
                ids.intern(&all, &mut again)?;
                if again.iter().enumerate().any(|(i, g)| i != *g) {
                    return Err(DataFusionError::Internal(
                        "group ids changed while snapshotting keys".into(),
                    ));
                }
                all
            }
            None => Vec::new(),
        };
        let keys_of = |groups: &[usize]| -> Result<Vec<ArrayRef>> {
            let rows = UInt32Array::from_iter_values(groups.iter().map(|g| *g as u32));
            Ok(all_keys
                .iter()
                .map(|k| arrow::compute::take(k, &rows, None))
                .collect::<Result<Vec<_>, _>>()?)
        };
        let keys = keys_of(&live)?;
        let key_groups = crate::exchange::key_groups_of(&keys, live.len(), max_parallelism)?;
        let states = self.states.gather(&live)?;
        let results = match (self.spec.final_only, self.results_are_states) {
            (true, _) => None,
            (false, true) => Some(states.clone()),
            (false, false) => Some(self.results.gather(&live)?),
        };
        let mut state = KeyedState::new("groups", key_groups)
            .group("key", keys)
            .group("state", states);
        if let Some(results) = results {
            state = state.group("result", results);
        }
        let mut batches = vec![state.build()?];
        if let Some(distinct) = &self.distinct {
            batches.extend(distinct.snapshot(keys_of, max_parallelism)?);
        }
        Ok(batches)
    }

    /// Takes over the keys of a batch written by [`ColumnarGroups::snapshot`].
    pub(super) fn restore(&mut self, state: &StateBatch<'_>) -> Result<()> {
        let rows = state.rows();
        if rows == 0 {
            return Ok(());
        }
        let keys = state.group("key", Some(self.spec.grouping.key_schema.fields().len()))?;
        let mut groups = Vec::with_capacity(rows);
        match &mut self.ids {
            Some(ids) => ids.intern(&keys, &mut groups)?,
            None => groups.resize(rows, 0),
        }
        if DistinctCalls::is_part(state.part()) {
            return match &mut self.distinct {
                Some(distinct) => distinct.restore(state, &groups),
                None => Err(DataFusionError::Execution(
                    "the checkpointed state has DISTINCT values but the query has no DISTINCT call"
                        .into(),
                )),
            };
        }
        if let Some(expiry) = &mut self.expiry {
            expiry.touch(&groups, 0);
        }
        let width = self.state_widths.iter().sum();
        self.states
            .append(&groups, state.group("state", Some(width))?)?;
        if !self.spec.final_only && !self.results_are_states {
            let results = state.group("result", Some(self.spec.calls.len()))?;
            self.results.append(&groups, results)?;
        }
        Ok(())
    }

    /// Results of accumulators that saw no rows, one row each.
    fn empty_results(&self) -> Result<Vec<ArrayRef>> {
        self.calls
            .iter()
            .map(|c| {
                let mut a = c.accumulator(false)?;
                a.evaluate()?.to_array_of_size(1)
            })
            .collect()
    }

    fn output(&self, keys: &[ArrayRef], results: &[ArrayRef], rows: usize) -> Result<RecordBatch> {
        output_batch(
            &self.spec.outputs,
            &self.spec.output_schema,
            rows,
            keys,
            results,
            None,
        )
    }
}

/// For each previously seen key (row `i` of `old`, local row `seen[i]` of
/// `new`), whether any result changed. Types `distinct` cannot compare
/// count as changed.
fn changed_rows(old: &[ArrayRef], new: &[ArrayRef], seen: &[usize]) -> Result<Vec<bool>> {
    let mut changed = vec![false; seen.len()];
    if seen.is_empty() {
        return Ok(changed);
    }
    let rows = UInt32Array::from_iter_values(seen.iter().map(|r| *r as u32));
    for (old, new) in old.iter().zip(new) {
        let new = arrow::compute::take(new, &rows, None)?;
        match distinct(old, &new) {
            Ok(mask) => mark(&mut changed, &mask),
            Err(_) => changed.iter_mut().for_each(|c| *c = true),
        }
    }
    Ok(changed)
}

fn mark(changed: &mut [bool], mask: &BooleanArray) {
    for (c, differs) in changed.iter_mut().zip(mask.iter()) {
        *c |= differs.unwrap_or(true);
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn the_store_keeps_each_groups_latest_row_through_compaction() {
        let mut store = ChunkedRows::default();
        for round in 0..3_000i64 {
            let values: ArrayRef = Arc::new(Int64Array::from(vec![round, -round]));
            // Groups 0 and 1 every round; group 2 once, at the start.
            let groups = if round == 0 { vec![2, 1] } else { vec![0, 1] };
            store.append(&groups, vec![values]).expect("append");
        }
        // Two live rows never outnumber the superseded ones by 4096, but
        // the chunks are compacted all the same.
        assert!(store.chunks.len() <= MAX_CHUNKS, "compaction ran");
        assert_eq!(store.live, 3);
        let latest = store.gather(&[0, 1, 2]).expect("gather");
        let latest = latest[0].as_primitive::<Int64Type>();
        assert_eq!(latest.values().to_vec(), vec![2_999, -2_999, 0]);
        assert!(!store.has(3));
        store.forget(2);
        store.forget(2);
        assert_eq!(store.live, 2);
        assert!(!store.has(2));
    }
}
