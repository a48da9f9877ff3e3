//! What window and group aggregations share: DataFusion's aggregate
//! functions with their arguments and `FILTER (WHERE ...)`, the grouping
//! keys, and how output columns are laid out.
//!
//! Accumulators are DataFusion's own: vectorized `GroupsAccumulator`s where
//! a function has them (COUNT, SUM, MIN, MAX, AVG, ...), and its row-wise
//! `Accumulator`s behind DataFusion's adapter otherwise (DISTINCT,
//! STDDEV, approximate functions). An unbounded GROUP BY runs DISTINCT
//! COUNT, SUM, AVG, MIN and MAX as their plain call over each value's first
//! row instead ([`AggregateCall::over_first_rows`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

/// One aggregate call: `SUM(price) FILTER (WHERE ...)`.
#[derive(Debug, Clone)]
pub struct AggregateCall {
    pub function: Arc<AggregateFunctionExpr>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The arguments' types.
    arg_types: Vec<DataType>,
    /// For a DISTINCT call whose result is its function over the distinct
    /// values whatever their multiplicity (COUNT, SUM, AVG, MIN, MAX): the
    /// function without DISTINCT, which an aggregation may run over the
    /// first row of each value instead.
    over_first_rows: Option<Arc<AggregateFunctionExpr>>,
}

/// An aggregate call's evaluated arguments and filter for one batch.
pub(crate) struct CallInput {
    pub(crate) args: Vec<ArrayRef>,
    pub(crate) filter: Option<BooleanArray>,
}

impl CallInput {
    /// The rows at `indices`.
    pub(crate) fn take(&self, indices: &arrow::array::UInt32Array) -> Result<Self> {
        let args = self
            .args
            .iter()
            .map(|a| arrow::compute::take(a, indices, None))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = match &self.filter {
            Some(f) => Some(arrow::compute::take(f, indices, None)?.as_boolean().clone()),
            None => None,
        };
        Ok(Self { args, filter })
    }
}

impl AggregateCall {
    /// A call over rows of `input`.
    pub fn try_new(
        function: Arc<AggregateFunctionExpr>,
        filter: Option<Arc<dyn PhysicalExpr>>,
        input: &arrow::datatypes::Schema,
    ) -> Result<Self> {
        let arg_types = function
            .expressions()
            .iter()
            .map(|e| e.data_type(input))
            .collect::<Result<_>>()?;
        let over_first_rows = if function.is_distinct()
            && matches!(
                function.fun().name(),
                "count" | "sum" | "avg" | "min" | "max"
            ) {
            let plain =
                AggregateExprBuilder::new(Arc::new(function.fun().clone()), function.expressions())
                    .schema(Arc::new(input.clone()))
                    .alias(function.name())
                    .with_ignore_nulls(function.ignore_nulls())
                    .build()?;
            Some(Arc::new(plain))
        } else {
            None
        };
        Ok(Self {
            function,
            filter,
            arg_types,
            over_first_rows,
        })
    }

    /// This DISTINCT call as its function without DISTINCT, to be fed only
    /// the first row of each distinct value; `None` for a call that is not
    /// DISTINCT or whose function depends on more than the set of values.
    pub(crate) fn over_first_rows(&self) -> Option<AggregateCall> {
        self.over_first_rows.as_ref().map(|plain| AggregateCall {
            function: Arc::clone(plain),
            filter: self.filter.clone(),
            arg_types: self.arg_types.clone(),
            over_first_rows: None,
        })
    }

    /// The arguments' types.
    pub(crate) fn arg_types(&self) -> &[DataType] {
        &self.arg_types
    }

    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<CallInput> {
        let rows = batch.num_rows();
        let args = self
            .function
            .expressions()
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let filter = match &self.filter {
            Some(f) => {
                let mask = f.evaluate(batch)?.into_array(rows)?;
                let mask = mask.as_boolean_opt().ok_or_else(|| {
                    DataFusionError::Internal("an aggregate FILTER is not BOOLEAN".into())
                })?;
                // NULL counts as false, as in SQL.
                Some(match mask.nulls() {
                    None => mask.clone(),
                    Some(_) => arrow::compute::prep_null_mask_filter(mask),
                })
            }
            None => None,
        };
        Ok(CallInput { args, filter })
    }

    /// Every call's arguments and filter over `batch`.
    pub(crate) fn evaluate_all(
        calls: &[AggregateCall],
        batch: &RecordBatch,
    ) -> Result<Vec<CallInput>> {
        calls.iter().map(|c| c.evaluate(batch)).collect()
    }

    pub(crate) fn groups_accumulator(&self) -> Result<Box<dyn GroupsAccumulator>> {
        if self.function.groups_accumulator_supported() {
            return self.function.create_groups_accumulator();
        }
        let function = Arc::clone(&self.function);
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            function.create_accumulator()
        })))
    }

    /// A row-wise accumulator; `retracting` when the input has retractions
    /// of its oldest rows (a sliding frame).
    pub fn accumulator(&self, retracting: bool) -> Result<Box<dyn Accumulator>> {
        if retracting {
            self.function.create_sliding_accumulator()
        } else {
            self.function.create_accumulator()
        }
    }

    /// A row-wise accumulator for a changelog, whose retractions may remove
    /// any earlier row. DataFusion's sliding MIN and MAX retract the oldest
    /// value whatever the retracted one is, so those keep every value;
    /// DISTINCT ones count their values (see [`DistinctChangelog`]).
    pub fn changelog_accumulator(&self) -> Result<Box<dyn Accumulator>> {
        // MIN and MAX return their argument's type.
        let data_type = self.function.field().data_type().clone();
        match self.function.fun().name() {
            "min" => Ok(Box::new(Extreme::new(false, &data_type)?)),
            "max" => Ok(Box::new(Extreme::new(true, &data_type)?)),
            _ if self.function.is_distinct() => Ok(Box::new(DistinctChangelog {
                inner: self.function.create_sliding_accumulator()?,
                counts: datafusion::common::HashMap::default(),
                types: self.arg_types.clone(),
            })),
            _ => self.function.create_sliding_accumulator(),
        }
    }

    /// Whether the call's result is its one intermediate state field as it
    /// is (COUNT, SUM, MIN and MAX when the state has the result's type),
    /// so that a store of states need not keep results beside them.
    pub(crate) fn result_is_state(&self) -> Result<bool> {
        if self.function.is_distinct()
            || !matches!(self.function.fun().name(), "count" | "sum" | "min" | "max")
        {
            return Ok(false);
        }
        let state = self.function.state_fields()?;
        Ok(match state.as_slice() {
            [field] => field.data_type() == self.function.field().data_type(),
            _ => false,
        })
    }

    pub fn name(&self) -> &str {
        self.function
            .human_display()
            .unwrap_or(self.function.name())
    }
}

/// MIN or MAX over a multiset of values: any value can be retracted. Its
/// state is the whole multiset (values and counts, as two lists), so a
/// checkpoint restores it whole.
#[derive(Debug)]
struct Extreme {
    max: bool,
    /// Distinct non-NULL values in ascending order, with their counts.
    values: Vec<(ScalarValue, usize)>,
    data_type: DataType,
    /// The result when there are no values (a typed NULL).
    null: ScalarValue,
}

impl Extreme {
    fn new(max: bool, data_type: &DataType) -> Result<Self> {
        Ok(Self {
            max,
            values: Vec::new(),
            data_type: data_type.clone(),
            null: ScalarValue::try_from(data_type)?,
        })
    }

    fn add(&mut self, value: ScalarValue, count: usize) {
        match self.position(&value) {
            Ok(at) => self.values[at].1 += count,
            Err(at) => self.values.insert(at, (value, count)),
        }
    }

    fn position(&self, value: &ScalarValue) -> std::result::Result<usize, usize> {
        self.values
            .binary_search_by(|(v, _)| v.partial_cmp(value).unwrap_or(std::cmp::Ordering::Equal))
    }

    fn apply(&mut self, values: &[ArrayRef], add: bool) -> Result<()> {
        let Some(array) = values.first() else {
            return Ok(());
        };
        for row in 0..array.len() {
            if array.is_null(row) {
                continue;
            }
            let value = ScalarValue::try_from_array(array, row)?;
            match (self.position(&value), add) {
                (_, true) => self.add(value, 1),
                (Ok(at), false) => {
                    self.values[at].1 -= 1;
                    if self.values[at].1 == 0 {
                        self.values.remove(at);
                    }
                }
                // Retracting a value never added changes nothing.
                (Err(_), false) => {}
            }
        }
        Ok(())
    }
}

impl Accumulator for Extreme {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, true)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, false)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let extreme = if self.max {
            self.values.last()
        } else {
            self.values.first()
        };
        Ok(extreme.map_or_else(|| self.null.clone(), |(value, _)| value.clone()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .values
                .iter()
                .map(|(v, _)| v.size() + std::mem::size_of::<usize>())
                .sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self.values.iter().map(|(v, _)| v.clone()).collect();
        let counts: Vec<ScalarValue> = self
            .values
            .iter()
            .map(|(_, c)| ScalarValue::UInt64(Some(*c as u64)))
            .collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list(&values, &self.data_type, true)),
            ScalarValue::List(ScalarValue::new_list(&counts, &DataType::UInt64, true)),
        ])
    }

    /// Adds the multisets of other states (one per row).
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let malformed = || DataFusionError::Internal("a MIN/MAX state is malformed".into());
        let (Some(values), Some(counts)) = (
            states.first().and_then(|a| a.as_list_opt::<i32>()),
            states.get(1).and_then(|a| a.as_list_opt::<i32>()),
        ) else {
            return Err(malformed());
        };
        for row in 0..values.len() {
            let (row_values, row_counts) = (values.value(row), counts.value(row));
            let row_counts = row_counts
                .as_primitive_opt::<arrow::datatypes::UInt64Type>()
                .ok_or_else(malformed)?;
            for i in 0..row_values.len() {
                if row_values.is_null(i) {
                    continue;
                }
                let count = usize::try_from(row_counts.value(i)).map_err(|_| malformed())?;
                self.add(ScalarValue::try_from_array(&row_values, i)?, count);
            }
        }
        Ok(())
    }
}

/// A DISTINCT aggregate over a changelog: the multiset of its argument
/// values, in front of DataFusion's distinct accumulator, which sees a value
/// when its count goes from 0 to 1 and loses it when the count is 0 again.
/// DataFusion's distinct state is the values without their counts; this
/// one's is the multiset (a list per argument and a list of counts), so a
/// checkpoint restores it whole.
#[derive(Debug)]
struct DistinctChangelog {
    inner: Box<dyn Accumulator>,
    counts: datafusion::common::HashMap<Vec<ScalarValue>, u64>,
    types: Vec<DataType>,
}

impl DistinctChangelog {
    /// Counts `count` more of `value`; whether it is new.
    fn add(&mut self, value: Vec<ScalarValue>, count: u64) -> bool {
        let stored = self.counts.entry(value).or_insert(0);
        *stored += count;
        *stored == count
    }

    fn apply(&mut self, values: &[ArrayRef], add: bool) -> Result<()> {
        let rows = values.first().map_or(0, |a| a.len());
        let mut changed = Vec::new();
        for row in 0..rows {
            let value = values
                .iter()
                .map(|a| ScalarValue::try_from_array(a, row))
                .collect::<Result<Vec<_>>>()?;
            if add {
                if self.add(value, 1) {
                    changed.push(row as u32);
                }
            } else if let Some(count) = self.counts.get_mut(&value) {
                *count -= 1;
                if *count == 0 {
                    self.counts.remove(&value);
                    changed.push(row as u32);
                }
            }
            // Retracting a value never added changes nothing.
        }
        if changed.is_empty() {
            return Ok(());
        }
        let indices = arrow::array::UInt32Array::from(changed);
        let picked = values
            .iter()
            .map(|a| arrow::compute::take(a, &indices, None))
            .collect::<Result<Vec<_>, _>>()?;
        if add {
            self.inner.update_batch(&picked)
        } else {
            self.inner.retract_batch(&picked)
        }
    }
}

impl Accumulator for DistinctChangelog {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, true)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, false)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.inner.size()
            + self
                .counts
                .keys()
                .map(|v| v.iter().map(ScalarValue::size).sum::<usize>() + 8)
                .sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut columns = vec![Vec::with_capacity(self.counts.len()); self.types.len()];
        let mut counts = Vec::with_capacity(self.counts.len());
        for (value, count) in &self.counts {
            for (column, part) in columns.iter_mut().zip(value) {
                column.push(part.clone());
            }
            counts.push(ScalarValue::UInt64(Some(*count)));
        }
        let mut state: Vec<ScalarValue> = columns
            .iter()
            .zip(&self.types)
            .map(|(values, t)| ScalarValue::List(ScalarValue::new_list(values, t, true)))
            .collect();
        state.push(ScalarValue::List(ScalarValue::new_list(
            &counts,
            &DataType::UInt64,
            true,
        )));
        Ok(state)
    }

    /// Adds the multisets of other states (one per row); the inner
    /// accumulator sees the values that are new.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let malformed = || DataFusionError::Internal("a DISTINCT state is malformed".into());
        let arity = self.types.len();
        let lists = states
            .iter()
            .map(|a| a.as_list_opt::<i32>().ok_or_else(malformed))
            .collect::<Result<Vec<_>>>()?;
        let (Some(counts), true) = (lists.get(arity), lists.len() == arity + 1) else {
            return Err(malformed());
        };
        let mut new = vec![Vec::new(); arity];
        for row in 0..counts.len() {
            let row_counts = counts.value(row);
            let row_counts = row_counts
                .as_primitive_opt::<arrow::datatypes::UInt64Type>()
                .ok_or_else(malformed)?;
            let row_values: Vec<ArrayRef> = lists[..arity].iter().map(|l| l.value(row)).collect();
            if row_values.iter().any(|v| v.len() != row_counts.len()) {
                return Err(malformed());
            }
            for i in 0..row_counts.len() {
                let value = row_values
                    .iter()
                    .map(|a| ScalarValue::try_from_array(a, i))
                    .collect::<Result<Vec<_>>>()?;
                if self.add(value.clone(), row_counts.value(i)) {
                    for (column, part) in new.iter_mut().zip(value) {
                        column.push(part);
                    }
                }
            }
        }
        if new.first().is_none_or(Vec::is_empty) {
            return Ok(());
        }
        let arrays = new
            .into_iter()
            .map(ScalarValue::iter_to_array)
            .collect::<Result<Vec<_>>>()?;
        self.inner.update_batch(&arrays)
    }
}

/// Where an aggregation's output column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOutput {
    /// The i-th grouping key.
    Key(usize),
    WindowStart,
    WindowEnd,
    WindowTime,
    /// The i-th aggregate call's result.
    Aggregate(usize),
}

/// The grouping of an aggregation: key expressions over its input.
#[derive(Debug, Clone)]
pub struct Grouping {
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The keys' evaluated schema.
    pub key_schema: SchemaRef,
}

impl Grouping {
    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let rows = batch.num_rows();
        self.keys
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(rows))
            .collect()
    }
}

/// Accumulators of many groups: the key of every group and one
/// `GroupsAccumulator` per aggregate call. With no keys there is one group.
pub(crate) struct GroupedAccumulators {
    values: Option<Box<dyn GroupValues>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    groups: usize,
    ids: Vec<usize>,
}

/// Keys and intermediate states of groups, detached from their accumulators.
pub(crate) struct GroupStates {
    pub(crate) keys: Vec<ArrayRef>,
    pub(crate) states: Vec<Vec<ArrayRef>>,
}

impl GroupedAccumulators {
    pub(crate) fn new(grouping: &Grouping, calls: &[AggregateCall]) -> Result<Self> {
        let values = if grouping.keys.is_empty() {
            None
        } else {
            Some(new_group_values(
                Arc::clone(&grouping.key_schema),
                &GroupOrdering::None,
            )?)
        };
        Ok(Self {
            values,
            accumulators: calls
                .iter()
                .map(AggregateCall::groups_accumulator)
                .collect::<Result<_>>()?,
            groups: 0,
            ids: Vec::new(),
        })
    }

    fn intern(&mut self, keys: &[ArrayRef], rows: usize) -> Result<()> {
        match &mut self.values {
            Some(values) => {
                values.intern(keys, &mut self.ids)?;
                self.groups = values.len();
            }
            None => {
                self.ids.clear();
                self.ids.resize(rows, 0);
                self.groups = 1;
            }
        }
        Ok(())
    }

    pub(crate) fn update(
        &mut self,
        keys: &[ArrayRef],
        inputs: &[CallInput],
        rows: usize,
    ) -> Result<()> {
        self.intern(keys, rows)?;
        for (accumulator, input) in self.accumulators.iter_mut().zip(inputs) {
            accumulator.update_batch(&input.args, &self.ids, input.filter.as_ref(), self.groups)?;
        }
        Ok(())
    }

    pub(crate) fn merge(&mut self, states: &GroupStates) -> Result<()> {
        let rows = states
            .states
            .first()
            .and_then(|s| s.first())
            .map_or(0, |a| a.len());
        self.intern(&states.keys, rows)?;
        for (accumulator, state) in self.accumulators.iter_mut().zip(&states.states) {
            accumulator.merge_batch(state, &self.ids, self.groups)?;
        }
        Ok(())
    }

    pub(crate) fn num_groups(&self) -> usize {
        self.groups
    }

    /// The keys and intermediate states of every group, for a checkpoint;
    /// the accumulators keep them (DataFusion's `state` drains, so they are
    /// rebuilt from the states taken).
    pub(crate) fn snapshot(
        &mut self,
        grouping: &Grouping,
        calls: &[AggregateCall],
    ) -> Result<GroupStates> {
        let drained = std::mem::replace(self, Self::new(grouping, calls)?);
        let states = drained.into_states()?;
        self.merge(&states)?;
        Ok(states)
    }

    /// The keys and final values of every group; the accumulators are consumed.
    pub(crate) fn evaluate(mut self) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let keys = self.emit_keys()?;
        let results = self
            .accumulators
            .iter_mut()
            .map(|a| a.evaluate(EmitTo::All))
            .collect::<Result<Vec<_>>>()?;
        Ok((keys, results))
    }

    /// The keys and intermediate states of every group, for merging later.
    pub(crate) fn into_states(mut self) -> Result<GroupStates> {
        let keys = self.emit_keys()?;
        let states = self
            .accumulators
            .iter_mut()
            .map(|a| a.state(EmitTo::All))
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupStates { keys, states })
    }

    fn emit_keys(&mut self) -> Result<Vec<ArrayRef>> {
        match &mut self.values {
            Some(values) => values.emit(EmitTo::All),
            None => Ok(Vec::new()),
        }
    }
}

/// Every value of `values` in id order, leaving it empty to intern anew.
/// DataFusion's multi-column `GroupValues` keeps its hash table through
/// `emit(EmitTo::All)`, whose entries would then point past the emptied
/// columns, so the table is cleared as well.
pub(crate) fn drain_group_values(values: &mut dyn GroupValues) -> Result<Vec<ArrayRef>> {
    let all = values.emit(EmitTo::All)?;
    values.clear_shrink(0);
    Ok(all)
}

/// Group states as a batch of keyed state: the key group of each group's
/// key ([`KEY_GROUP_COLUMN`](crate::checkpoint::KEY_GROUP_COLUMN)), the
/// `leading` columns, the keys, then every call's state columns.
pub(crate) fn states_to_batch(
    states: &GroupStates,
    leading: Vec<(&str, ArrayRef)>,
    max_parallelism: usize,
) -> Result<RecordBatch> {
    use arrow::datatypes::{Field, Schema};
    let rows = states
        .keys
        .first()
        .or_else(|| states.states.first().and_then(|s| s.first()))
        .map_or(0, |a| a.len());
    let groups = crate::exchange::key_groups_of(&states.keys, rows, max_parallelism)?;
    let groups: ArrayRef = Arc::new(arrow::array::UInt32Array::from_iter_values(
        groups.into_iter().map(|g| g as u32),
    ));
    let mut columns: Vec<(String, ArrayRef)> =
        vec![(crate::checkpoint::KEY_GROUP_COLUMN.to_string(), groups)];
    columns.extend(leading.into_iter().map(|(n, a)| (n.to_string(), a)));
    columns.extend(
        states
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("key{i}"), Arc::clone(k))),
    );
    for (call, state) in states.states.iter().enumerate() {
        columns.extend(
            state
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("state{call}_{i}"), Arc::clone(s))),
        );
    }
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(name, array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    Ok(RecordBatch::try_new_with_options(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// The group states in a batch written by [`states_to_batch`] with
/// `leading` leading columns.
pub(crate) fn states_from_batch(
    batch: &RecordBatch,
    leading: usize,
    grouping: &Grouping,
    calls: &[AggregateCall],
) -> Result<GroupStates> {
    let mut at = 1 + leading;
    let key_count = grouping.key_schema.fields().len();
    let mut column = |n: usize| -> Result<Vec<ArrayRef>> {
        let columns = (at..at + n)
            .map(|i| {
                batch.columns().get(i).cloned().ok_or_else(|| {
                    DataFusionError::Execution(
                        "the checkpointed aggregation state does not match the query".into(),
                    )
                })
            })
            .collect();
        at += n;
        columns
    };
    let keys = column(key_count)?;
    let mut states = Vec::with_capacity(calls.len());
    for call in calls {
        states.push(column(call.function.state_fields()?.len())?);
    }
    Ok(GroupStates { keys, states })
}

/// The intermediate states of sets of row-wise accumulators as columns, one
/// row per set: each call's state fields in turn. What a checkpoint keeps of
/// them; [`merge_accumulator_states`] reads it back.
pub(crate) fn accumulator_states<'a>(
    sets: impl Iterator<Item = &'a mut Vec<Box<dyn Accumulator>>>,
) -> Result<Vec<ArrayRef>> {
    let mut columns: Vec<Vec<ScalarValue>> = Vec::new();
    for set in sets {
        let mut column = 0;
        for accumulator in set.iter_mut() {
            for value in accumulator.state()? {
                if columns.len() <= column {
                    columns.push(Vec::new());
                }
                columns[column].push(value);
                column += 1;
            }
        }
    }
    columns
        .into_iter()
        .map(ScalarValue::iter_to_array)
        .collect()
}

/// Merges row `row` of columns written by [`accumulator_states`] into
/// `accumulators` (fresh ones, to restore them).
pub(crate) fn merge_accumulator_states(
    accumulators: &mut [Box<dyn Accumulator>],
    states: &[ArrayRef],
    row: usize,
) -> Result<()> {
    let mut column = 0;
    for accumulator in accumulators {
        let width = accumulator.state()?.len();
        let values: Vec<ArrayRef> = states
            .get(column..column + width)
            .ok_or_else(|| {
                DataFusionError::Execution(
                    "the checkpointed aggregation state does not match the query".into(),
                )
            })?
            .iter()
            .map(|a| a.slice(row, 1))
            .collect();
        accumulator.merge_batch(&values)?;
        column += width;
    }
    Ok(())
}

/// The window bounds of an aggregation's output rows: `window_start` and
/// `window_end` (wall-clock ms) and `window_time` (an instant, ms).
pub(crate) struct WindowBounds {
    pub(crate) start: Vec<i64>,
    pub(crate) end: Vec<i64>,
    pub(crate) time: Vec<i64>,
}

/// Lays out an aggregation's output batch of `rows` rows: key columns,
/// aggregate results and window bounds in the order of `outputs`, each cast
/// to its field's type.
pub(crate) fn output_batch(
    outputs: &[AggregateOutput],
    schema: &SchemaRef,
    rows: usize,
    keys: &[ArrayRef],
    results: &[ArrayRef],
    window: Option<&WindowBounds>,
) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (output, field) in outputs.iter().zip(schema.fields()) {
        let bound = |pick: fn(&WindowBounds) -> &Vec<i64>| {
            window.map(|w| super::window_assign::timestamps(pick(w).clone(), field.data_type()))
        };
        let column = match *output {
            AggregateOutput::Key(i) => keys.get(i).cloned(),
            AggregateOutput::Aggregate(i) => results.get(i).cloned(),
            AggregateOutput::WindowStart => bound(|w| &w.start),
            AggregateOutput::WindowEnd => bound(|w| &w.end),
            AggregateOutput::WindowTime => bound(|w| &w.time),
        }
        .ok_or_else(|| {
            DataFusionError::Internal(format!("no value for output column {}", field.name()))
        })?;
        columns.push(cast_to(column, field.data_type())?);
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// `array` as `data_type`, casting only when the types differ.
pub(crate) fn cast_to(array: ArrayRef, data_type: &DataType) -> Result<ArrayRef> {
    if array.data_type() == data_type {
        Ok(array)
    } else {
        Ok(arrow::compute::cast(&array, data_type)?)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use arrow::datatypes::{Schema, SchemaRef};
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::col;

    use super::{AggregateCall, Grouping};

    /// `SUM(column)` over `schema`.
    pub(crate) fn sum(column: &str, schema: &SchemaRef) -> AggregateCall {
        let arg = col(column, schema).expect("column exists");
        let function = AggregateExprBuilder::new(sum_udaf(), vec![arg])
            .schema(Arc::clone(schema))
            .alias(format!("SUM({column})"))
            .build()
            .expect("SUM builds");
        AggregateCall::try_new(Arc::new(function), None, schema).expect("SUM call")
    }

    /// Grouping by `column` of `schema`.
    pub(crate) fn group_by(column: &str, schema: &SchemaRef) -> Grouping {
        let key = col(column, schema).expect("column exists");
        let field = schema.field_with_name(column).expect("field").clone();
        Grouping {
            keys: vec![key],
            key_schema: Arc::new(Schema::new(vec![field])),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn drained_multi_column_group_values_intern_anew_in_the_same_order() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Int64, true),
        ]);
        let mut values =
            new_group_values(Arc::new(schema), &GroupOrdering::None).expect("group values");
        let keys: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["x", "y", "x", "z"])),
            Arc::new(Int64Array::from(vec![1, 1, 1, 2])),
        ];
        let mut ids = Vec::new();
        values.intern(&keys, &mut ids).expect("intern");
        assert_eq!(ids, vec![0, 1, 0, 2]);
        let all = drain_group_values(values.as_mut()).expect("drain");
        assert_eq!(all[0].len(), 3);
        values.intern(&all, &mut ids).expect("intern again");
        assert_eq!(ids, vec![0, 1, 2]);
        values.intern(&keys, &mut ids).expect("intern the keys");
        assert_eq!(ids, vec![0, 1, 0, 2]);
    }

    #[test]
    fn min_and_max_retract_any_value_not_just_the_oldest() {
        let values = |v: &[i64]| -> Vec<ArrayRef> { vec![Arc::new(Int64Array::from(v.to_vec()))] };
        let mut min = Extreme::new(false, &DataType::Int64).expect("min");
        let mut max = Extreme::new(true, &DataType::Int64).expect("max");
        for a in [&mut min, &mut max] {
            a.update_batch(&values(&[5, 1, 3, 9])).expect("update");
            // Rows of a changelog retract in any order: here the middle ones.
            a.retract_batch(&values(&[1, 9])).expect("retract");
        }
        assert_eq!(min.evaluate().expect("min"), ScalarValue::Int64(Some(3)));
        assert_eq!(max.evaluate().expect("max"), ScalarValue::Int64(Some(5)));
        // Its state is the whole multiset: merged into a new accumulator,
        // later retractions fall back as they would have.
        let state: Vec<ArrayRef> = max
            .state()
            .expect("state")
            .into_iter()
            .map(|v| v.to_array().expect("array"))
            .collect();
        let mut restored = Extreme::new(true, &DataType::Int64).expect("max");
        restored.merge_batch(&state).expect("merge");
        restored.retract_batch(&values(&[5])).expect("retract");
        assert_eq!(
            restored.evaluate().expect("max"),
            ScalarValue::Int64(Some(3))
        );
        min.retract_batch(&values(&[5, 3])).expect("retract");
        assert_eq!(min.evaluate().expect("min"), ScalarValue::Int64(None));
    }
}
