//! Streaming joins: what the join operators share.
//!
//! - [`StreamingJoin`] (Flink's regular `Join`) keeps both inputs in state,
//!   forever or until 'table.exec.state.ttl', and answers every change on
//!   one side with the changes it makes to the join result: `+I`/`-D` of
//!   joined and NULL-padded rows, or the input's own kind for inner joins.
//! - [`IntervalJoin`] keeps each side's rows only while rows of the other
//!   side may still fall into their time interval; the watermark drops
//!   them (emitting NULL-padded rows for outer joins). Insert-only.
//! - [`WindowJoin`] buffers both sides per window and joins a window's
//!   rows once, when the watermark passes its end. Insert-only.
//! - [`TemporalJoin`] (event time) joins each left row, once the watermark
//!   passes it, with the version of a versioned table current at its time.
//! - [`LookupJoin`] (processing time) joins each row with a dimension table
//!   loaded whole from a connector and reloaded after its cache TTL.
//!
//! Every join evaluates its equi-join keys on both sides into one shared
//! key index, so equal keys of either side get the same dense id; rows
//! whose key holds a NULL never match (unless the join says NULLs are
//! equal, `IS NOT DISTINCT FROM`). A non-equi residual predicate is
//! evaluated, vectorized, over the candidate pairs a batch produces.

mod batch;
mod interval;
mod lookup;
mod regular;
mod temporal;
mod window;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;

pub use self::interval::{IntervalJoin, IntervalJoinFactory, IntervalJoinSpec};
pub use self::lookup::{LookupJoin, LookupJoinFactory, LookupJoinSpec};
pub use self::regular::{StreamingJoin, StreamingJoinFactory, StreamingJoinSpec};
pub use self::temporal::{TemporalJoin, TemporalJoinFactory, TemporalJoinSpec};
pub use self::window::{WindowJoin, WindowJoinFactory, WindowJoinSpec};

/// The join types, as Flink names them in plans. Semi and anti joins emit
/// the left input's columns only (the planner puts the side they filter
/// on the left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    LeftOuter,
    RightOuter,
    FullOuter,
    /// `IN` / `EXISTS`: left rows with at least one match.
    Semi,
    /// `NOT IN` / `NOT EXISTS`: left rows without a match.
    Anti,
}

impl JoinKind {
    pub fn flink_name(self) -> &'static str {
        match self {
            JoinKind::Inner => "InnerJoin",
            JoinKind::LeftOuter => "LeftOuterJoin",
            JoinKind::RightOuter => "RightOuterJoin",
            JoinKind::FullOuter => "FullOuterJoin",
            JoinKind::Semi => "LeftSemiJoin",
            JoinKind::Anti => "LeftAntiJoin",
        }
    }

    /// Whether rows of `side` without a match are emitted NULL-padded.
    pub(crate) fn is_outer(self, side: Side) -> bool {
        match side {
            Side::Left => matches!(self, JoinKind::LeftOuter | JoinKind::FullOuter),
            Side::Right => matches!(self, JoinKind::RightOuter | JoinKind::FullOuter),
        }
    }

    /// Semi and anti joins output the left columns only.
    pub(crate) fn emits_right_columns(self) -> bool {
        !matches!(self, JoinKind::Semi | JoinKind::Anti)
    }
}

/// One input of a two-input operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Left,
    Right,
}

impl Side {
    /// The side an operator input index stands for.
    pub(crate) fn of_input(input: usize) -> Result<Self> {
        match input {
            0 => Ok(Side::Left),
            1 => Ok(Side::Right),
            other => Err(DataFusionError::Internal(format!(
                "a join has inputs 0 and 1, not {other}"
            ))),
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Side::Left => 0,
            Side::Right => 1,
        }
    }

    /// The side's name in checkpointed state.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }

    /// The side of a checkpointed state batch, by [`Side::name`].
    pub(crate) fn of_state(state: &crate::checkpoint::StateBatch<'_>) -> Result<Self> {
        match state.part() {
            Some("left") => Ok(Side::Left),
            Some("right") => Ok(Side::Right),
            other => Err(DataFusionError::Execution(format!(
                "a checkpointed join state names no side but {other:?}"
            ))),
        }
    }

    pub(crate) fn other(self) -> Self {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// What every join evaluates: keys, residual predicate and layouts.
#[derive(Debug, Clone)]
pub struct JoinCondition {
    pub kind: JoinKind,
    /// Equi-join keys over the left input, pairwise equal to `right_keys`.
    pub left_keys: Vec<Arc<dyn PhysicalExpr>>,
    pub right_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The keys' types (the same on both sides), for the shared key index.
    pub key_schema: SchemaRef,
    /// `IS NOT DISTINCT FROM`: NULL keys match each other.
    pub nulls_equal: bool,
    /// The non-equi part of the condition, over the left columns followed
    /// by the right columns (`joined_schema`).
    pub residual: Option<Arc<dyn PhysicalExpr>>,
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
    /// Left columns then right columns, every field nullable.
    pub joined_schema: SchemaRef,
    pub output_schema: SchemaRef,
}

impl JoinCondition {
    pub(crate) fn schema(&self, side: Side) -> &SchemaRef {
        match side {
            Side::Left => &self.left_schema,
            Side::Right => &self.right_schema,
        }
    }

    pub(crate) fn keys(&self, side: Side) -> &[Arc<dyn PhysicalExpr>] {
        match side {
            Side::Left => &self.left_keys,
            Side::Right => &self.right_keys,
        }
    }

    /// The join keys of `batch`, a batch of `side`.
    pub(crate) fn key_columns(&self, side: Side, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let rows = batch.num_rows();
        self.keys(side)
            .iter()
            .zip(self.key_schema.fields())
            .map(|(key, field)| {
                let array = key.evaluate(batch)?.into_array(rows)?;
                if array.data_type() == field.data_type() {
                    Ok(array)
                } else {
                    Ok(arrow::compute::cast(&array, field.data_type())?)
                }
            })
            .collect()
    }

    /// Which rows may match at all: those without a NULL key part.
    pub(crate) fn matchable(&self, keys: &[ArrayRef], rows: usize) -> Vec<bool> {
        let mut matchable = vec![true; rows];
        if self.nulls_equal {
            return matchable;
        }
        for key in keys.iter().filter(|k| k.null_count() > 0) {
            for (row, ok) in matchable.iter_mut().enumerate() {
                *ok &= key.is_valid(row);
            }
        }
        matchable
    }

    /// Which candidate pairs, given as joined rows, pass the residual
    /// predicate (`None`: all of them).
    pub(crate) fn residual_mask(&self, joined: &RecordBatch) -> Result<Option<BooleanArray>> {
        let Some(residual) = &self.residual else {
            return Ok(None);
        };
        let mask = residual.evaluate(joined)?.into_array(joined.num_rows())?;
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataFusionError::Internal("a join condition is not boolean".into()))?;
        // NULL is not true.
        Ok(Some(match mask.nulls() {
            Some(nulls) => BooleanArray::new(mask.values() & nulls.inner(), None),
            None => mask.clone(),
        }))
    }

    /// `left = right AND ...` of the key pairs, for operator names.
    pub(crate) fn key_pairs(&self) -> String {
        self.left_keys
            .iter()
            .zip(&self.right_keys)
            .map(|(l, r)| format!("{l} = {r}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Keeps the candidate pairs whose joined rows (`left` and `right`
    /// columns gathered for them, in order) pass the residual predicate.
    pub(crate) fn retain_passing<T>(
        &self,
        candidates: &mut Vec<T>,
        left: Vec<ArrayRef>,
        right: Vec<ArrayRef>,
    ) -> Result<()> {
        let joined = self.joined(left, right, candidates.len())?;
        if let Some(mask) = self.residual_mask(&joined)? {
            let mut keep = mask.values().iter();
            candidates.retain(|_| keep.next().unwrap_or(false));
        }
        Ok(())
    }

    /// Lays out the columns of output rows from the left and right columns
    /// gathered for them (`right` is ignored by semi and anti joins).
    pub(crate) fn output(
        &self,
        left: Vec<ArrayRef>,
        right: Vec<ArrayRef>,
        rows: usize,
    ) -> Result<RecordBatch> {
        let mut columns = left;
        if self.kind.emits_right_columns() {
            columns.extend(right);
        }
        batch_of(&self.output_schema, columns, rows)
    }

    /// Candidate pairs as rows of `joined_schema`, for the residual.
    fn joined(
        &self,
        left: Vec<ArrayRef>,
        right: Vec<ArrayRef>,
        rows: usize,
    ) -> Result<RecordBatch> {
        let mut columns = left;
        columns.extend(right);
        batch_of(&self.joined_schema, columns, rows)
    }
}

fn batch_of(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// The rows `slots` of `columns`; a `None` slot is a NULL row (padding).
pub(crate) fn gather(columns: &[ArrayRef], slots: &[Option<u32>]) -> Result<Vec<ArrayRef>> {
    if columns.first().is_some_and(|c| c.is_empty()) {
        // Nothing to take from: every slot is padding.
        return Ok(columns
            .iter()
            .map(|c| arrow::array::new_null_array(c.data_type(), slots.len()))
            .collect());
    }
    let indices: UInt32Array = slots.iter().copied().collect();
    columns
        .iter()
        .map(|c| Ok(arrow::compute::take(c, &indices, None)?))
        .collect()
}

/// `rows` NULL rows of `schema`'s columns (the padding of outer joins).
pub(crate) fn null_columns(schema: &SchemaRef, rows: usize) -> Vec<ArrayRef> {
    schema
        .fields()
        .iter()
        .map(|f| arrow::array::new_null_array(f.data_type(), rows))
        .collect()
}

/// Places `values` (one row per `Some` slot, in order) at the `Some`
/// slots and NULL rows at the `None` slots.
pub(crate) fn spread(values: Vec<ArrayRef>, slots: &[bool]) -> Result<Vec<ArrayRef>> {
    if slots.iter().all(|s| *s) {
        return Ok(values);
    }
    let mut next = 0u32;
    let positions: Vec<Option<u32>> = slots
        .iter()
        .map(|present| {
            present.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    gather(&values, &positions)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A small join condition over (k BIGINT, v BIGINT) on both sides.

    use std::sync::Arc;

    use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
    use datafusion::physical_expr::expressions::Column;
    use weir_common::RowKind;

    use super::{JoinCondition, JoinKind};
    use crate::operator::Collector;

    pub(crate) fn side_schema(prefix: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(format!("{prefix}k"), DataType::Int64, true),
            Field::new(format!("{prefix}v"), DataType::Int64, false),
        ]))
    }

    pub(crate) fn condition(kind: JoinKind) -> JoinCondition {
        let left = side_schema("l");
        let right = side_schema("r");
        let nullable = |s: &SchemaRef| {
            s.fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>()
        };
        let mut joined = nullable(&left);
        joined.extend(nullable(&right));
        let joined: SchemaRef = Arc::new(Schema::new(joined));
        let output = if kind.emits_right_columns() {
            Arc::clone(&joined)
        } else {
            Arc::clone(&left)
        };
        JoinCondition {
            kind,
            left_keys: vec![Arc::new(Column::new("lk", 0))],
            right_keys: vec![Arc::new(Column::new("rk", 0))],
            key_schema: Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])),
            nulls_equal: false,
            residual: None,
            left_schema: left,
            right_schema: right,
            joined_schema: joined,
            output_schema: output,
        }
    }

    /// What a join emitted: each row's kind and BIGINT values (NULL as `None`).
    pub(crate) fn changelog(out: &mut Collector) -> Vec<(RowKind, Vec<Option<i64>>)> {
        out.take()
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |r| {
                    let values = b
                        .data()
                        .columns()
                        .iter()
                        .map(|c| {
                            let c = c.as_primitive::<Int64Type>();
                            (!c.is_null(r)).then(|| c.value(r))
                        })
                        .collect();
                    (b.row_kind(r), values)
                })
            })
            .collect()
    }

    pub(crate) fn rows(schema: &SchemaRef, rows: &[(Option<i64>, i64)]) -> RecordBatch {
        let k: Int64Array = rows.iter().map(|r| r.0).collect();
        let v: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
        RecordBatch::try_new(Arc::clone(schema), vec![Arc::new(k), Arc::new(v)])
            .expect("valid test batch")
    }
}
