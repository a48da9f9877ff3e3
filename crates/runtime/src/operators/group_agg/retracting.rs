//! Group aggregation one key at a time, with DataFusion's row-wise
//! `Accumulator`s: the mode for inputs with retractions (their "sliding"
//! accumulators can retract), and for deletes when a key's last row goes.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt8Array, UInt32Array};
use arrow::datatypes::Int64Type;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use weir_common::{RowKind, StreamBatch};

use super::GroupAggregateSpec;
use crate::checkpoint::{KeyedState, StateBatch};
use crate::error::batch_error;
use crate::operator::Collector;
use crate::operators::aggregate::{
    AggregateCall, CallInput, accumulator_states, merge_accumulator_states, output_batch,
};
use crate::operators::key_index::KeyIndex;
use crate::operators::state_ttl::Expiry;

/// One key's state.
struct Group {
    accumulators: Vec<Box<dyn Accumulator>>,
    /// Rows added minus rows retracted.
    rows: i64,
    /// The result last emitted, if the key is in the result now.
    emitted: Option<Vec<ScalarValue>>,
}

impl Group {
    /// Whether the key has rows or a result: what a snapshot keeps.
    fn is_live(&self) -> bool {
        self.rows != 0 || self.emitted.is_some()
    }
}

pub(super) struct RowGroups {
    spec: Arc<GroupAggregateSpec>,
    /// Key to group id.
    index: KeyIndex,
    groups: Vec<Group>,
    expiry: Option<Expiry>,
}

impl std::fmt::Debug for RowGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowGroups")
            .field("keys", &self.groups.len())
            .finish()
    }
}

/// Consecutive rows (in group order) of one group and one direction.
struct Run {
    group: usize,
    retract: bool,
    start: usize,
    len: usize,
}

/// A call's arguments for a batch in run order, and where each run's rows
/// are among them. A call with a FILTER keeps only the rows it passes, so
/// it is filtered once per batch rather than once per group (Nexmark q16's
/// twelve filtered calls over thousands of keys a batch).
struct RunInputs {
    args: Vec<ArrayRef>,
    /// Per run: the offset and length of its rows in `args`.
    bounds: Vec<(usize, usize)>,
}

impl RunInputs {
    fn new(sorted: &CallInput, runs: &[Run]) -> Result<Self> {
        let Some(mask) = &sorted.filter else {
            return Ok(Self {
                args: sorted.args.clone(),
                bounds: runs.iter().map(|r| (r.start, r.len)).collect(),
            });
        };
        let args = sorted
            .args
            .iter()
            .map(|a| arrow::compute::filter(a, mask))
            .collect::<Result<_, _>>()?;
        let mut offset = 0;
        let bounds = runs
            .iter()
            .map(|r| {
                // A NULL filter result drops the row, as `filter` does.
                let kept = mask.slice(r.start, r.len).true_count();
                let bound = (offset, kept);
                offset += kept;
                bound
            })
            .collect();
        Ok(Self { args, bounds })
    }
}

/// One output row: which group, with which kind and values.
struct Change {
    group: usize,
    kind: RowKind,
    values: Vec<ScalarValue>,
}

impl RowGroups {
    pub(super) fn try_new(spec: Arc<GroupAggregateSpec>) -> Result<Self> {
        Ok(Self {
            index: KeyIndex::for_keys(&spec.grouping.key_schema)?,
            expiry: Expiry::new(spec.state_ttl, spec.final_only),
            spec,
            groups: Vec::new(),
        })
    }

    fn new_group(&self) -> Result<Group> {
        Self::fresh_group(&self.spec)
    }

    fn fresh_group(spec: &GroupAggregateSpec) -> Result<Group> {
        Ok(Group {
            accumulators: spec
                .calls
                .iter()
                .map(|c| {
                    if spec.retracting_input {
                        c.changelog_accumulator()
                    } else {
                        c.accumulator(false)
                    }
                })
                .collect::<Result<_>>()?,
            rows: 0,
            emitted: None,
        })
    }

    /// The group id of every row, creating groups for new keys.
    fn group_ids(&mut self, keys: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
        let ids = self.index.ids(keys, rows)?;
        while self.groups.len() < self.index.len() {
            let group = self.new_group()?;
            self.groups.push(group);
        }
        Ok(ids)
    }

    /// Feeds each group its rows: one accumulate and one retract call per
    /// group and batch. Returns the touched groups in first-seen order.
    fn accumulate(
        &mut self,
        ids: &[usize],
        batch: &StreamBatch,
        inputs: &[CallInput],
    ) -> Result<Vec<usize>> {
        // Rows ordered by (group, retract?) so each run is one call.
        let mut order: Vec<(usize, bool, u32)> = ids
            .iter()
            .enumerate()
            .map(|(row, id)| (*id, !batch.row_kind(row).is_accumulate(), row as u32))
            .collect();
        order.sort_by_key(|(id, retract, _)| (*id, *retract));
        let indices: UInt32Array = order.iter().map(|(_, _, row)| *row).collect();
        let mut runs = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let (group, retract, _) = order[start];
            let len = order[start..]
                .iter()
                .take_while(|(i, r, _)| *i == group && *r == retract)
                .count();
            runs.push(Run {
                group,
                retract,
                start,
                len,
            });
            start += len;
        }
        let calls = inputs
            .iter()
            .map(|input| RunInputs::new(&input.take(&indices)?, &runs))
            .collect::<Result<Vec<_>>>()?;
        let mut touched = Vec::new();
        let mut args: Vec<ArrayRef> = Vec::new();
        for (r, run) in runs.iter().enumerate() {
            let group = self
                .groups
                .get_mut(run.group)
                .ok_or_else(|| DataFusionError::Internal("unknown group id".into()))?;
            if touched.last() != Some(&run.group) {
                touched.push(run.group);
            }
            group.rows += if run.retract {
                -(run.len as i64)
            } else {
                run.len as i64
            };
            for (accumulator, call) in group.accumulators.iter_mut().zip(&calls) {
                let (offset, len) = call.bounds[r];
                // A filter that passes none of the run's rows: nothing to add.
                if len == 0 {
                    continue;
                }
                args.clear();
                args.extend(call.args.iter().map(|a| a.slice(offset, len)));
                if run.retract {
                    accumulator.retract_batch(&args)?;
                } else {
                    accumulator.update_batch(&args)?;
                }
            }
        }
        Ok(touched)
    }

    fn changes(&mut self, touched: Vec<usize>) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        for id in touched {
            // Fresh accumulators only for a key whose rows are all gone.
            let emptied = self.groups.get(id).is_some_and(|g| g.rows <= 0);
            let fresh = if emptied {
                Some(self.new_group()?)
            } else {
                None
            };
            let group = self
                .groups
                .get_mut(id)
                .ok_or_else(|| DataFusionError::Internal("unknown group id".into()))?;
            if let Some(fresh) = fresh {
                if let Some(old) = group.emitted.take() {
                    changes.push(Change {
                        group: id,
                        kind: RowKind::Delete,
                        values: old,
                    });
                }
                // The key starts over if rows for it come back.
                *group = fresh;
                continue;
            }
            let new = group
                .accumulators
                .iter_mut()
                .map(|a| a.evaluate())
                .collect::<Result<Vec<_>>>()?;
            match group.emitted.replace(new.clone()) {
                None => changes.push(Change {
                    group: id,
                    kind: RowKind::Insert,
                    values: new,
                }),
                Some(old) if old != new => {
                    changes.push(Change {
                        group: id,
                        kind: RowKind::UpdateBefore,
                        values: old,
                    });
                    changes.push(Change {
                        group: id,
                        kind: RowKind::UpdateAfter,
                        values: new,
                    });
                }
                Some(_) => {}
            }
        }
        Ok(changes)
    }

    fn emit(&self, changes: Vec<Change>, insert_only: bool, out: &mut Collector) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let rows = changes.len();
        let ids: Vec<usize> = changes.iter().map(|c| c.group).collect();
        let keys = self.index.keys(&ids)?;
        let kinds: UInt8Array = changes.iter().map(|c| c.kind as u8).collect();
        // The changes' values moved into one column per call, not copied.
        let calls = self.spec.calls.len();
        let mut columns: Vec<Vec<ScalarValue>> =
            (0..calls).map(|_| Vec::with_capacity(rows)).collect();
        for change in changes {
            let mut values = change.values.into_iter();
            for column in &mut columns {
                column.push(values.next().unwrap_or(ScalarValue::Null));
            }
        }
        let results = columns
            .into_iter()
            .map(ScalarValue::iter_to_array)
            .collect::<Result<Vec<_>>>()?;
        let data = output_batch(
            &self.spec.outputs,
            &self.spec.output_schema,
            rows,
            &keys,
            &results,
            None,
        )?;
        let batch = if insert_only {
            StreamBatch::inserts(data)
        } else {
            StreamBatch::try_new_changelog(data, kinds).map_err(batch_error)?
        };
        out.emit(batch);
        Ok(())
    }
}

impl RowGroups {
    /// Every key with rows or a result, with its accumulators' states, row
    /// count and last emitted result. Only accumulators whose state holds
    /// all they know can be restored: a sliding MIN's state is its current
    /// minimum, not the values a retraction may fall back to.
    pub(super) fn snapshot(&mut self, name: &str, max_parallelism: usize) -> Result<RecordBatch> {
        let retracting = self.spec.retracting_input;
        if let Some(call) = self
            .spec
            .calls
            .iter()
            .find(|c| !state_is_complete(c, retracting))
        {
            return Err(DataFusionError::NotImplemented(format!(
                "{name} cannot be checkpointed yet: {} over an updating input keeps state that cannot be snapshotted; run this query without 'execution.checkpointing.interval'",
                call.name()
            )));
        }
        let ids: Vec<usize> = (0..self.groups.len())
            .filter(|g| self.groups[*g].is_live())
            .collect();
        let keys = self.index.keys(&ids)?;
        let mut results: Vec<Vec<ScalarValue>> = vec![Vec::new(); self.spec.calls.len()];
        for id in &ids {
            let emitted = self.groups[*id].emitted.as_ref();
            for (call, column) in results.iter_mut().enumerate() {
                column.push(match emitted.and_then(|values| values.get(call)) {
                    Some(value) => value.clone(),
                    None => {
                        ScalarValue::try_from(self.spec.calls[call].function.field().data_type())?
                    }
                });
            }
        }
        let results = if ids.is_empty() {
            Vec::new()
        } else {
            results
                .into_iter()
                .map(ScalarValue::iter_to_array)
                .collect::<Result<Vec<_>>>()?
        };
        let rows = Int64Array::from_iter_values(ids.iter().map(|id| self.groups[*id].rows));
        let emitted: BooleanArray = ids
            .iter()
            .map(|id| Some(self.groups[*id].emitted.is_some()))
            .collect();
        let states = accumulator_states(
            self.groups
                .iter_mut()
                .filter(|g| g.is_live())
                .map(|g| &mut g.accumulators),
        )?;
        let key_groups = crate::exchange::key_groups_of(&keys, ids.len(), max_parallelism)?;
        KeyedState::new("groups", key_groups)
            .group("key", keys)
            .column("rows", Arc::new(rows))
            .column("emitted", Arc::new(emitted))
            .group("result", results)
            .group("state", states)
            .build()
    }

    /// Takes over the keys of a batch written by [`RowGroups::snapshot`].
    pub(super) fn restore(&mut self, state: &StateBatch<'_>) -> Result<()> {
        let n = state.rows();
        if n == 0 {
            return Ok(());
        }
        let keys = state.group("key", Some(self.spec.grouping.key_schema.fields().len()))?;
        let ids = self.group_ids(&keys, n)?;
        let rows = state.primitive::<Int64Type>("rows")?;
        let emitted = state.boolean("emitted")?;
        let results = state.group("result", Some(self.spec.calls.len()))?;
        let states = state.group("state", None)?;
        if let Some(expiry) = &mut self.expiry {
            expiry.touch(&ids, 0);
        }
        for (row, id) in ids.iter().enumerate() {
            let mut group = self.new_group()?;
            group.rows = rows.value(row);
            merge_accumulator_states(&mut group.accumulators, &states, row)?;
            if emitted.value(row) {
                group.emitted = Some(
                    results
                        .iter()
                        .map(|r| ScalarValue::try_from_array(r, row))
                        .collect::<Result<_>>()?,
                );
            }
            self.groups[*id] = group;
        }
        Ok(())
    }

    /// Processes a batch at processing time `now` (for state TTL).
    pub(super) fn process(
        &mut self,
        batch: &StreamBatch,
        out: &mut Collector,
        now: u64,
    ) -> Result<()> {
        let rows = batch.num_rows();
        let keys = self.spec.grouping.evaluate(batch.data())?;
        let inputs = AggregateCall::evaluate_all(&self.spec.calls, batch.data())?;
        let ids = self.group_ids(&keys, rows)?;
        if let Some(expiry) = &mut self.expiry {
            for group in expiry.expired(now) {
                let fresh = Self::fresh_group(&self.spec)?;
                if let Some(slot) = self.groups.get_mut(group) {
                    *slot = fresh;
                }
            }
            expiry.touch(&ids, now);
        }
        let touched = self.accumulate(&ids, batch, &inputs)?;
        if self.spec.final_only {
            return Ok(());
        }
        let changes = self.changes(touched)?;
        self.emit(changes, false, out)
    }

    pub(super) fn finish(&mut self, out: &mut Collector) -> Result<()> {
        if !self.spec.final_only {
            return Ok(());
        }
        if self.spec.grouping.keys.is_empty() && self.groups.is_empty() {
            // A global aggregation over no rows still has one result row.
            let mut group = self.new_group()?;
            group.rows = 1;
            self.groups.push(group);
        }
        let all = (0..self.groups.len()).collect();
        let changes = self.changes(all)?;
        self.emit(changes, true, out)
    }
}

/// Whether a call's accumulator keeps nothing beyond its intermediate
/// state, so restoring that state restores it whole: plain accumulators
/// (an input without retractions) do; of the retractable ones SUM, COUNT,
/// AVG, our MIN/MAX multisets and DISTINCT value counts do.
fn state_is_complete(call: &AggregateCall, retracting_input: bool) -> bool {
    !retracting_input
        || call.function.is_distinct()
        || matches!(
            call.function.fun().name(),
            "sum" | "count" | "avg" | "min" | "max"
        )
}
