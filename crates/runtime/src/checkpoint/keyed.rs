//! Keyed state as operators write it into a snapshot and read it back.
//!
//! A [`KeyedState`] batch starts with the key group of every row
//! ([`KEY_GROUP_COLUMN`]), so the storage can split it by key group when a
//! job restores at another parallelism, and is then a set of named columns:
//! plain columns (a count, a flag) and column groups under a prefix (a
//! side's rows, an aggregation's states). An operator that keeps several
//! kinds of state (a join's two sides) names each batch's part; the name
//! travels in the schema's metadata, through storage and rescaling.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::datatypes::{ArrowPrimitiveType, Field, Schema};
use arrow::record_batch::RecordBatchOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;

use super::KEY_GROUP_COLUMN;
use crate::operator::OperatorState;

/// The schema metadata key naming a state batch's part.
const PART: &str = "weir.state.part";

/// The part (and column) of a [`watermark_state`] batch.
const WATERMARK: &str = "watermark";

/// Builds one batch of keyed state.
pub(crate) struct KeyedState {
    part: String,
    key_groups: Vec<u32>,
    columns: Vec<(String, ArrayRef)>,
}

impl KeyedState {
    /// A batch named `part` of rows in `key_groups`.
    pub(crate) fn new(part: &str, key_groups: Vec<usize>) -> Self {
        Self {
            part: part.to_string(),
            key_groups: key_groups.into_iter().map(|g| g as u32).collect(),
            columns: Vec::new(),
        }
    }

    /// Input rows an operator buffers, under the key groups of `keys` (the
    /// keys its input is partitioned by), as a "row" group.
    pub(crate) fn rows(
        part: &str,
        batch: &RecordBatch,
        keys: &[Arc<dyn PhysicalExpr>],
        max_parallelism: usize,
    ) -> Result<Self> {
        let rows = batch.num_rows();
        let keys = keys
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let groups = crate::exchange::key_groups_of(&keys, rows, max_parallelism)?;
        Ok(Self::new(part, groups).group("row", batch.columns().to_vec()))
    }

    pub(crate) fn column(mut self, name: &str, array: ArrayRef) -> Self {
        self.columns.push((name.to_string(), array));
        self
    }

    /// Columns read back in order by [`StateBatch::group`] with `prefix`.
    pub(crate) fn group(mut self, prefix: &str, arrays: Vec<ArrayRef>) -> Self {
        for (i, array) in arrays.into_iter().enumerate() {
            self.columns.push((format!("{prefix}.{i}"), array));
        }
        self
    }

    pub(crate) fn build(self) -> Result<RecordBatch> {
        let rows = self.key_groups.len();
        let mut fields = vec![Field::new(
            KEY_GROUP_COLUMN,
            arrow::datatypes::DataType::UInt32,
            false,
        )];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(self.key_groups))];
        for (name, array) in self.columns {
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(array);
        }
        let metadata = HashMap::from([(PART.to_string(), self.part)]);
        let schema = Schema::new(fields).with_metadata(metadata);
        Ok(RecordBatch::try_new_with_options(
            Arc::new(schema),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

/// An operator's event-time watermark as a state batch, read back by
/// [`restored_parts`]. It is operator state, not keyed: at another
/// parallelism it goes whole to one subtask, and the others start from no
/// watermark, so they keep rows the watermark would drop rather than lose one.
pub(crate) fn watermark_state(watermark: i64) -> Result<RecordBatch> {
    let metadata = HashMap::from([(PART.to_string(), WATERMARK.to_string())]);
    let field = Field::new(WATERMARK, arrow::datatypes::DataType::Int64, false);
    let schema = Schema::new(vec![field]).with_metadata(metadata);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(arrow::array::Int64Array::from(vec![watermark]))],
    )?)
}

/// A restored operator state split into its watermark and its other
/// batches. The watermark is the lowest of the restored subtasks': at
/// another parallelism a subtask takes over rows of several, and none of
/// them is late under the lowest. Restore the rows first, then the watermark.
pub(crate) fn restored_parts<'a>(
    state: &'a OperatorState,
    operator: &'a str,
) -> Result<(Option<i64>, Vec<StateBatch<'a>>)> {
    let mut watermark: Option<i64> = None;
    let mut parts = Vec::with_capacity(state.batches.len());
    for batch in &state.batches {
        let part = StateBatch::new(batch, operator);
        match part.watermark()? {
            Some(at) => watermark = Some(watermark.map_or(at, |w| w.min(at))),
            None => parts.push(part),
        }
    }
    Ok((watermark, parts))
}

/// Reads a batch written by [`KeyedState`] or [`watermark_state`]; every error names the operator.
pub(crate) struct StateBatch<'a> {
    batch: &'a RecordBatch,
    operator: &'a str,
}

impl<'a> StateBatch<'a> {
    pub(crate) fn new(batch: &'a RecordBatch, operator: &'a str) -> Self {
        Self { batch, operator }
    }

    pub(crate) fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The part the batch holds, as named when it was written.
    pub(crate) fn part(&self) -> Option<&str> {
        self.batch
            .schema_ref()
            .metadata()
            .get(PART)
            .map(String::as_str)
    }

    /// The watermark of a [`watermark_state`] batch; `None` for other parts.
    fn watermark(&self) -> Result<Option<i64>> {
        if self.part() != Some(WATERMARK) {
            return Ok(None);
        }
        let values = self.primitive::<arrow::datatypes::Int64Type>(WATERMARK)?;
        Ok(values.values().iter().copied().min())
    }

    fn malformed(&self, what: &str) -> DataFusionError {
        DataFusionError::Execution(format!(
            "the checkpointed state of {} does not match the query: {what}",
            self.operator
        ))
    }

    pub(crate) fn column(&self, name: &str) -> Result<&'a ArrayRef> {
        self.batch
            .schema_ref()
            .index_of(name)
            .map(|i| self.batch.column(i))
            .map_err(|_| self.malformed(&format!("no column '{name}'")))
    }

    pub(crate) fn primitive<T: ArrowPrimitiveType>(
        &self,
        name: &str,
    ) -> Result<&'a arrow::array::PrimitiveArray<T>> {
        self.column(name)?
            .as_primitive_opt::<T>()
            .ok_or_else(|| self.malformed(&format!("column '{name}' has the wrong type")))
    }

    pub(crate) fn boolean(&self, name: &str) -> Result<&'a BooleanArray> {
        self.column(name)?
            .as_boolean_opt()
            .ok_or_else(|| self.malformed(&format!("column '{name}' has the wrong type")))
    }

    /// The columns written by [`KeyedState::group`] with `prefix`; exactly
    /// `expected` of them when given.
    pub(crate) fn group(&self, prefix: &str, expected: Option<usize>) -> Result<Vec<ArrayRef>> {
        let mut arrays = Vec::new();
        while let Ok(i) = self
            .batch
            .schema_ref()
            .index_of(&format!("{prefix}.{}", arrays.len()))
        {
            arrays.push(Arc::clone(self.batch.column(i)));
        }
        match expected {
            Some(n) if n != arrays.len() => Err(self.malformed(&format!(
                "{} '{prefix}' columns where {n} are expected",
                arrays.len()
            ))),
            _ => Ok(arrays),
        }
    }

    /// The `group` columns as a batch of `schema`, casting nothing.
    pub(crate) fn group_batch(&self, prefix: &str, schema: &Arc<Schema>) -> Result<RecordBatch> {
        let columns = self.group(prefix, Some(schema.fields().len()))?;
        RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(self.rows())),
        )
        .map_err(|e| self.malformed(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Int64Type};

    use super::*;

    #[test]
    fn a_state_batch_reads_back_by_name_and_part() {
        let values: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let batch = KeyedState::new("left", vec![3, 9])
            .column("count", Arc::clone(&values))
            .group("row", vec![Arc::clone(&values), values])
            .build()
            .expect("batch");
        let state = StateBatch::new(&batch, "Join");
        assert_eq!(state.part(), Some("left"));
        assert_eq!(
            state
                .primitive::<Int64Type>("count")
                .expect("count")
                .values(),
            &[1, 2]
        );
        assert_eq!(state.group("row", Some(2)).expect("row").len(), 2);
        let wrong = state.group("row", Some(3)).expect_err("three expected");
        assert!(wrong.to_string().contains("Join"), "{wrong}");
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        assert_eq!(
            state.group_batch("row", &schema).expect("rows").num_rows(),
            2
        );
        assert!(state.boolean("count").is_err());
    }

    #[test]
    fn restored_parts_take_the_lowest_watermark_of_the_subtasks() {
        let rows = KeyedState::new("rows", vec![1])
            .column("v", Arc::new(Int64Array::from(vec![7])))
            .build()
            .expect("rows");
        let state = OperatorState {
            batches: vec![
                watermark_state(50).expect("watermark"),
                rows,
                watermark_state(20).expect("watermark"),
            ],
        };
        let (watermark, parts) = restored_parts(&state, "WindowRank").expect("parts");
        assert_eq!(watermark, Some(20));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].part(), Some("rows"));
    }
}
