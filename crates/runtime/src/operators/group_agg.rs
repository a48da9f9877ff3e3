//! Unbounded GROUP BY (Flink's `GroupAggregate`): one result row per key,
//! kept up to date as a changelog.
//!
//! Rows arrive hash-partitioned by key. Each input batch updates the
//! accumulators of the keys it touches; then every touched key emits once
//! for the batch (like Flink with mini-batch on): `+I` for a new key,
//! `-U old` / `+U new` when its result changed, nothing when it did not,
//! and `-D old` when retractions removed its last row. Over an updating
//! input, `-U`/`-D` rows retract from DataFusion's retractable ("sliding")
//! accumulators.
//!
//! In batch runtime mode the operator emits only the final result, as
//! inserts, when its input ends.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, UInt8Array, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use weir_common::{RowKind, StreamBatch};

use super::aggregate::{AggregateCall, AggregateOutput, CallInput, Grouping, cast_to};
use crate::error::batch_error;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory};

/// What a group aggregation computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct GroupAggregateSpec {
    pub grouping: Grouping,
    pub calls: Vec<AggregateCall>,
    pub outputs: Vec<AggregateOutput>,
    pub output_schema: SchemaRef,
    /// The input has retractions (-U, -D).
    pub retracting_input: bool,
    /// Batch runtime mode: emit the final result only, as inserts.
    pub final_only: bool,
}

impl GroupAggregateSpec {
    pub fn name(&self) -> String {
        let keys: Vec<String> = self.grouping.keys.iter().map(|k| k.to_string()).collect();
        let calls: Vec<&str> = self.calls.iter().map(AggregateCall::name).collect();
        format!(
            "GroupAggregate(groupBy=[{}], select=[{}])",
            keys.join(", "),
            calls.join(", ")
        )
    }
}

/// One key's state.
struct Group {
    accumulators: Vec<Box<dyn Accumulator>>,
    /// Rows added minus rows retracted.
    rows: i64,
    /// The result last emitted, if the key is in the result now.
    emitted: Option<Vec<ScalarValue>>,
}

pub struct GroupAggregate {
    spec: Arc<GroupAggregateSpec>,
    name: String,
    converter: RowConverter,
    /// Key (in row format) to group id.
    index: HashMap<Box<[u8]>, usize>,
    /// The key of every group id.
    keys: Rows,
    groups: Vec<Group>,
}

impl std::fmt::Debug for GroupAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAggregate")
            .field("name", &self.name)
            .field("keys", &self.groups.len())
            .finish()
    }
}

/// One output row: which group, with which kind and values.
struct Change {
    group: usize,
    kind: RowKind,
    values: Vec<ScalarValue>,
}

impl GroupAggregate {
    pub fn try_new(spec: Arc<GroupAggregateSpec>) -> Result<Self> {
        let fields = spec
            .grouping
            .key_schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        let keys = converter.empty_rows(0, 0);
        Ok(Self {
            name: spec.name(),
            spec,
            converter,
            index: HashMap::new(),
            keys,
            groups: Vec::new(),
        })
    }

    fn new_group(&self) -> Result<Group> {
        Ok(Group {
            accumulators: self
                .spec
                .calls
                .iter()
                .map(|c| c.accumulator(self.spec.retracting_input))
                .collect::<Result<_>>()?,
            rows: 0,
            emitted: None,
        })
    }

    /// The group id of every row, creating groups for new keys.
    fn group_ids(&mut self, keys: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
        if keys.is_empty() {
            // A global aggregation: one group.
            if self.groups.is_empty() {
                let group = self.new_group()?;
                self.groups.push(group);
            }
            return Ok(vec![0; rows]);
        }
        let encoded = self.converter.convert_columns(keys)?;
        let mut ids = Vec::with_capacity(rows);
        for row in 0..rows {
            let key = encoded.row(row);
            let id = match self.index.get(key.as_ref()) {
                Some(id) => *id,
                None => {
                    let id = self.groups.len();
                    let group = self.new_group()?;
                    self.groups.push(group);
                    self.keys.push(key);
                    self.index.insert(key.as_ref().into(), id);
                    id
                }
            };
            ids.push(id);
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
        let sorted = inputs
            .iter()
            .map(|i| i.take(&indices))
            .collect::<Result<Vec<_>>>()?;
        let mut touched = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let (id, retract, _) = order[start];
            let len = order[start..]
                .iter()
                .take_while(|(i, r, _)| *i == id && *r == retract)
                .count();
            let group = self
                .groups
                .get_mut(id)
                .ok_or_else(|| DataFusionError::Internal("unknown group id".into()))?;
            if touched.last() != Some(&id) {
                touched.push(id);
            }
            group.rows += if retract { -(len as i64) } else { len as i64 };
            for (accumulator, input) in group.accumulators.iter_mut().zip(&sorted) {
                let mut args: Vec<ArrayRef> =
                    input.args.iter().map(|a| a.slice(start, len)).collect();
                if let Some(filter) = &input.filter {
                    let mask = filter.slice(start, len);
                    args = args
                        .iter()
                        .map(|a| arrow::compute::filter(a, &mask))
                        .collect::<Result<_, _>>()?;
                }
                if retract {
                    accumulator.retract_batch(&args)?;
                } else {
                    accumulator.update_batch(&args)?;
                }
            }
            start += len;
        }
        Ok(touched)
    }

    fn changes(&mut self, touched: Vec<usize>) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        for id in touched {
            let fresh = self.new_group()?;
            let group = self
                .groups
                .get_mut(id)
                .ok_or_else(|| DataFusionError::Internal("unknown group id".into()))?;
            if group.rows <= 0 {
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
        let keys = if self.spec.grouping.keys.is_empty() {
            Vec::new()
        } else {
            let key_rows = changes.iter().map(|c| self.keys.row(c.group));
            self.converter.convert_rows(key_rows)?
        };
        let fields = self.spec.output_schema.fields();
        let mut columns = Vec::with_capacity(fields.len());
        for (output, field) in self.spec.outputs.iter().zip(fields) {
            let column = match *output {
                AggregateOutput::Key(i) => keys.get(i).cloned().ok_or_else(|| {
                    DataFusionError::Internal(format!("no key for {}", field.name()))
                })?,
                AggregateOutput::Aggregate(i) => ScalarValue::iter_to_array(
                    changes.iter().map(|c| c.values.get(i).cloned().unwrap_or(ScalarValue::Null)),
                )?,
                _ => {
                    return Err(DataFusionError::Internal(
                        "a group aggregation has no window columns".into(),
                    ));
                }
            };
            columns.push(cast_to(column, field.data_type())?);
        }
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.output_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let batch = if insert_only {
            StreamBatch::inserts(data)
        } else {
            let kinds: UInt8Array = changes.iter().map(|c| c.kind as u8).collect();
            StreamBatch::try_new_changelog(data, kinds).map_err(batch_error)?
        };
        out.emit(batch);
        Ok(())
    }
}

impl Operator for GroupAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        let rows = batch.num_rows();
        let keys = self.spec.grouping.evaluate(batch.data())?;
        let inputs = self
            .spec
            .calls
            .iter()
            .map(|c| c.evaluate(batch.data()))
            .collect::<Result<Vec<_>>>()?;
        let ids = self.group_ids(&keys, rows)?;
        let touched = self.accumulate(&ids, &batch, &inputs)?;
        if self.spec.final_only {
            return Ok(());
        }
        let changes = self.changes(touched)?;
        self.emit(changes, false, out)
    }

    fn finish(&mut self, out: &mut Collector) -> Result<()> {
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

#[derive(Debug)]
pub struct GroupAggregateFactory(pub Arc<GroupAggregateSpec>);

impl OperatorFactory for GroupAggregateFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(GroupAggregate::try_new(Arc::clone(&self.0))?))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::operators::aggregate::test_support::{group_by, sum};

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    fn operator(retracting_input: bool, final_only: bool) -> GroupAggregate {
        let input = input_schema();
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("s", DataType::Int64, true),
        ]));
        GroupAggregate::try_new(Arc::new(GroupAggregateSpec {
            grouping: group_by("k", &input),
            calls: vec![sum("v", &input)],
            outputs: vec![AggregateOutput::Key(0), AggregateOutput::Aggregate(0)],
            output_schema: output,
            retracting_input,
            final_only,
        }))
        .expect("operator")
    }

    fn batch(k: &[&str], v: &[i64], kinds: Option<&[RowKind]>) -> StreamBatch {
        let data = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(StringArray::from(k.to_vec())),
                Arc::new(Int64Array::from(v.to_vec())),
            ],
        )
        .expect("batch");
        match kinds {
            None => StreamBatch::inserts(data),
            Some(kinds) => StreamBatch::try_new_changelog(
                data,
                kinds.iter().map(|k| *k as u8).collect::<UInt8Array>(),
            )
            .expect("kinds"),
        }
    }

    /// The changelog as Flink's print sink shows it: `+I[a, 3]`.
    fn changelog(out: &mut Collector) -> Vec<String> {
        let mut lines = Vec::new();
        for batch in out.take() {
            let data = batch.data();
            let k = data.column(0).as_string::<i32>();
            let s = data.column(1).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                lines.push(format!("{}[{}, {}]", batch.row_kind(row), k.value(row), s.value(row)));
            }
        }
        lines
    }

    #[test]
    fn updates_retract_the_previous_result_once_per_batch() {
        let mut op = operator(false, false);
        let mut out = Collector::default();
        op.process_batch(0, batch(&["a", "b", "a"], &[1, 2, 3], None), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["+I[a, 4]", "+I[b, 2]"]);
        op.process_batch(0, batch(&["a", "b"], &[5, 0], None), &mut out)
            .expect("batch");
        // b's sum did not change, so b emits nothing.
        assert_eq!(changelog(&mut out), vec!["-U[a, 4]", "+U[a, 9]"]);
    }

    #[test]
    fn retractions_update_and_delete_keys() {
        let mut op = operator(true, false);
        let mut out = Collector::default();
        op.process_batch(0, batch(&["a", "a"], &[1, 2], None), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["+I[a, 3]"]);
        let retract = [RowKind::UpdateBefore];
        op.process_batch(0, batch(&["a"], &[1], Some(&retract)), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["-U[a, 3]", "+U[a, 2]"]);
        let delete = [RowKind::Delete];
        op.process_batch(0, batch(&["a"], &[2], Some(&delete)), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["-D[a, 2]"]);
        // The key starts over.
        op.process_batch(0, batch(&["a"], &[7], None), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["+I[a, 7]"]);
    }

    #[test]
    fn batch_mode_emits_final_inserts_at_the_end() {
        let mut op = operator(false, true);
        let mut out = Collector::default();
        op.process_batch(0, batch(&["a", "b"], &[1, 2], None), &mut out)
            .expect("batch");
        op.process_batch(0, batch(&["a"], &[3], None), &mut out)
            .expect("batch");
        assert!(out.take().is_empty());
        op.finish(&mut out).expect("finish");
        assert_eq!(changelog(&mut out), vec!["+I[a, 4]", "+I[b, 2]"]);
    }
}
