//! OVER aggregation over an updating input, or ordered by any columns:
//! what Flink cannot do (Nexmark q6 averages the final prices of each
//! seller's last auctions, an OVER over a GROUP BY's changelog).
//!
//! The result is a table: every current input row, with aggregates over the
//! rows before it in its partition in `ORDER BY` order. Each partition
//! keeps its current rows sorted by (order key, arrival), with the
//! aggregate values last emitted for each. A batch inserts and retracts
//! rows; then every partition it touched is evaluated again in order and
//! compared with what was emitted: a new row comes out as `+I`, a row whose
//! aggregates changed (its frame gained or lost rows) as `-U`/`+U`, and a
//! retracted row as `-D` with the values it had.
//!
//! Evaluating a touched partition costs its size, so this suits partitions
//! of moderate size (a seller's auctions, a user's sessions); the frame's
//! own bounds (`ROWS n PRECEDING`) cap the work per row, not per partition.
//!
//! A checkpoint holds every current row with the aggregates last emitted
//! for it and its arrival, keyed by partition.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt8Array, UInt64Array};
use arrow::datatypes::{SchemaRef, UInt64Type};
use arrow::record_batch::RecordBatchOptions;
use arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use weir_common::{RowKind, StreamBatch};

use super::aggregate::{AggregateCall, CallInput, cast_to};
use super::key_index::KeyIndex;
use super::over_agg::OverFrame;
use super::window_assign::event_times;
use crate::checkpoint::{KeyedState, StateBatch};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};

/// What an updating OVER aggregation computes; shared by its subtasks.
#[derive(Debug)]
pub struct UpdatingOverSpec {
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub partition_schema: SchemaRef,
    /// For `RANGE ... PRECEDING` with an interval: one timestamp, ascending.
    pub order_by: Vec<PhysicalSortExpr>,
    pub frame: OverFrame,
    pub calls: Vec<AggregateCall>,
    pub input_schema: SchemaRef,
    /// The input's columns, then one per call.
    pub output_schema: SchemaRef,
}

impl UpdatingOverSpec {
    pub fn name(&self) -> String {
        let partition: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
        let order: Vec<String> = self.order_by.iter().map(|e| e.to_string()).collect();
        let calls: Vec<&str> = self.calls.iter().map(AggregateCall::name).collect();
        format!(
            "OverAggregate(partitionBy=[{}], orderBy=[{}], window=[{}], select=[*, {}], updating=[true])",
            partition.join(", "),
            order.join(", "),
            self.frame,
            calls.join(", ")
        )
    }
}

/// A current input row and the aggregates last emitted with it.
struct Entry {
    row: Box<[u8]>,
    emitted: Option<Box<[u8]>>,
}

/// Rows by (order key, arrival).
type Partition = BTreeMap<(Box<[u8]>, u64), Entry>;

/// An output row: its kind, input row and aggregate values (encoded).
struct Change {
    kind: RowKind,
    row: Box<[u8]>,
    values: Box<[u8]>,
}

pub struct UpdatingOverAggregate {
    spec: Arc<UpdatingOverSpec>,
    name: String,
    keys: KeyIndex,
    partitions: Vec<Partition>,
    order: RowConverter,
    rows: RowConverter,
    values: RowConverter,
    arrivals: u64,
    max_parallelism: usize,
}

impl std::fmt::Debug for UpdatingOverAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdatingOverAggregate")
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

fn converter(fields: impl Iterator<Item = Result<SortField>>) -> Result<RowConverter> {
    Ok(RowConverter::new(fields.collect::<Result<Vec<_>>>()?)?)
}

impl UpdatingOverAggregate {
    pub fn try_new(spec: Arc<UpdatingOverSpec>, max_parallelism: usize) -> Result<Self> {
        let order = converter(spec.order_by.iter().map(|e| {
            Ok(SortField::new_with_options(
                e.expr.data_type(&spec.input_schema)?,
                e.options,
            ))
        }))?;
        let plain = |schema: &[arrow::datatypes::FieldRef]| {
            converter(
                schema
                    .iter()
                    .map(|f| Ok(SortField::new(f.data_type().clone()))),
            )
        };
        let inputs = spec.input_schema.fields().len();
        Ok(Self {
            name: spec.name(),
            keys: KeyIndex::for_keys(&spec.partition_schema)?,
            partitions: Vec::new(),
            order,
            rows: plain(&spec.input_schema.fields()[..])?,
            values: plain(&spec.output_schema.fields()[inputs..])?,
            arrivals: 0,
            max_parallelism,
            spec,
        })
    }

    /// The partitions' ids and each row's order key, for a batch of input rows.
    fn locate(&mut self, data: &RecordBatch) -> Result<(Vec<usize>, arrow::row::Rows)> {
        let n = data.num_rows();
        let keys = self
            .spec
            .partition_by
            .iter()
            .map(|k| k.evaluate(data)?.into_array(n))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let ids = self.keys.ids(&keys, n)?;
        self.partitions.resize_with(self.keys.len(), Partition::new);
        let order_columns = self
            .spec
            .order_by
            .iter()
            .map(|e| e.expr.evaluate(data)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        Ok((ids, self.order.convert_columns(&order_columns)?))
    }

    fn process(&mut self, batch: &StreamBatch, out: &mut Collector) -> Result<()> {
        let data = batch.data();
        let n = data.num_rows();
        let (ids, order) = self.locate(data)?;
        let rows = self.rows.convert_columns(data.columns())?;
        let mut touched = Vec::new();
        let mut seen = HashSet::new();
        let mut changes = Vec::new();
        for row in 0..n {
            let partition = &mut self.partitions[ids[row]];
            let key: Box<[u8]> = order.row(row).as_ref().into();
            let encoded = rows.row(row);
            let bytes = encoded.as_ref();
            if batch.row_kind(row).is_accumulate() {
                partition.insert(
                    (key, self.arrivals),
                    Entry {
                        row: bytes.into(),
                        emitted: None,
                    },
                );
                self.arrivals += 1;
            } else {
                let found = partition
                    .range((key.clone(), 0)..=(key, u64::MAX))
                    .find(|(_, e)| e.row.as_ref() == bytes)
                    .map(|(k, _)| k.clone());
                // A retraction of a row never seen changes nothing.
                let Some(entry) = found.and_then(|k| partition.remove(&k)) else {
                    continue;
                };
                if let Some(values) = entry.emitted {
                    changes.push(Change {
                        kind: RowKind::Delete,
                        row: entry.row,
                        values,
                    });
                }
            }
            if seen.insert(ids[row]) {
                touched.push(ids[row]);
            }
        }
        for id in touched {
            self.evaluate(id, &mut changes)?;
        }
        self.emit(changes, out)
    }

    /// Evaluates a partition again and notes what changed.
    fn evaluate(&mut self, id: usize, changes: &mut Vec<Change>) -> Result<()> {
        let partition = &mut self.partitions[id];
        let m = partition.len();
        if m == 0 {
            return Ok(());
        }
        let parser = self.rows.parser();
        let columns = self
            .rows
            .convert_rows(partition.values().map(|e| parser.parse(&e.row)))?;
        let input = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.input_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(m)),
        )?;
        let inputs = AggregateCall::evaluate_all(&self.spec.calls, &input)?;
        let order_keys: Vec<&[u8]> = partition.keys().map(|(k, _)| k.as_ref()).collect();
        let times = match self.spec.frame {
            OverFrame::Range(Some(_)) => {
                let order = self.spec.order_by.first().ok_or_else(|| {
                    DataFusionError::Internal("a RANGE frame without an ORDER BY".into())
                })?;
                event_times(&order.expr.evaluate(&input)?.into_array(m)?, &order.expr)?
            }
            _ => Vec::new(),
        };
        let mut results = Vec::with_capacity(inputs.len());
        for (call, call_input) in self.spec.calls.iter().zip(&inputs) {
            let values = frame_values(self.spec.frame, call, call_input, &order_keys, &times)?;
            results.push(values);
        }
        let inputs_len = self.spec.input_schema.fields().len();
        let arrays = results
            .into_iter()
            .zip(&self.spec.output_schema.fields()[inputs_len..])
            .map(|(values, field)| cast_to(ScalarValue::iter_to_array(values)?, field.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let encoded = self.values.convert_columns(&arrays)?;
        for (i, entry) in partition.values_mut().enumerate() {
            let new_row = encoded.row(i);
            let new = new_row.as_ref();
            match &entry.emitted {
                Some(old) if old.as_ref() == new => continue,
                Some(old) => {
                    changes.push(Change {
                        kind: RowKind::UpdateBefore,
                        row: entry.row.clone(),
                        values: old.clone(),
                    });
                    changes.push(Change {
                        kind: RowKind::UpdateAfter,
                        row: entry.row.clone(),
                        values: new.into(),
                    });
                }
                None => changes.push(Change {
                    kind: RowKind::Insert,
                    row: entry.row.clone(),
                    values: new.into(),
                }),
            }
            entry.emitted = Some(new.into());
        }
        Ok(())
    }

    fn emit(&self, changes: Vec<Change>, out: &mut Collector) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let (rows, values) = (self.rows.parser(), self.values.parser());
        let mut columns = self
            .rows
            .convert_rows(changes.iter().map(|c| rows.parse(&c.row)))?;
        columns.extend(
            self.values
                .convert_rows(changes.iter().map(|c| values.parse(&c.values)))?,
        );
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.output_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(changes.len())),
        )?;
        let kinds = UInt8Array::from(changes.iter().map(|c| c.kind as u8).collect::<Vec<_>>());
        out.emit(
            StreamBatch::try_new_changelog(data, kinds)
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
        );
        Ok(())
    }
}

/// One call's value for each row of a partition (in order) over its frame.
fn frame_values(
    frame: OverFrame,
    call: &AggregateCall,
    input: &CallInput,
    order_keys: &[&[u8]],
    times: &[i64],
) -> Result<Vec<ScalarValue>> {
    if input.filter.is_some() {
        return Err(DataFusionError::NotImplemented(
            "FILTER in an OVER aggregation".into(),
        ));
    }
    let m = order_keys.len();
    let slice = |from: usize, len: usize| -> Vec<ArrayRef> {
        input.args.iter().map(|a| a.slice(from, len)).collect()
    };
    let bounded = matches!(frame, OverFrame::Rows(Some(_)) | OverFrame::Range(Some(_)));
    let mut accumulator = call.accumulator(bounded)?;
    let mut values = Vec::with_capacity(m);
    // The frame is [first, i]; RANGE frames take peers (equal order keys) together.
    let mut first = 0;
    let mut i = 0;
    while i < m {
        let peers = match frame {
            OverFrame::Rows(_) => 1,
            OverFrame::Range(_) => order_keys[i..]
                .iter()
                .take_while(|k| **k == order_keys[i])
                .count(),
        };
        accumulator.update_batch(&slice(i, peers))?;
        let last = i + peers - 1;
        let start = match frame {
            OverFrame::Rows(Some(n)) => {
                last.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX))
            }
            OverFrame::Range(Some(ms)) => {
                let from = times[last].saturating_sub(ms);
                first + times[first..=last].partition_point(|t| *t < from)
            }
            OverFrame::Rows(None) | OverFrame::Range(None) => 0,
        };
        if start > first {
            accumulator.retract_batch(&slice(first, start - first))?;
            first = start;
        }
        let value = accumulator.evaluate()?;
        values.extend(std::iter::repeat_n(value, peers));
        i += peers;
    }
    Ok(values)
}

impl Operator for UpdatingOverAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let entries: Vec<(&u64, &Entry)> = self
            .partitions
            .iter()
            .flat_map(|p| p.iter().map(|((_, arrival), entry)| (arrival, entry)))
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        let (rows, values) = (self.rows.parser(), self.values.parser());
        let mut emitted = Vec::with_capacity(entries.len());
        for (_, entry) in &entries {
            // Between batches every current row has been emitted.
            let bytes = entry.emitted.as_ref().ok_or_else(|| {
                DataFusionError::Internal(format!("{}: a row without its result", self.name))
            })?;
            emitted.push(values.parse(bytes));
        }
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.input_schema),
            self.rows
                .convert_rows(entries.iter().map(|(_, e)| rows.parse(&e.row)))?,
            &RecordBatchOptions::new().with_row_count(Some(entries.len())),
        )?;
        let arrivals = UInt64Array::from_iter_values(entries.iter().map(|(a, _)| **a));
        let state = KeyedState::rows("rows", &data, &self.spec.partition_by, self.max_parallelism)?
            .group("value", self.values.convert_rows(emitted)?)
            .column("arrival", Arc::new(arrivals));
        Ok(Some(OperatorState {
            batches: vec![state.build()?],
        }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let name = self.name.clone();
        let calls = self.spec.calls.len();
        for batch in &state.batches {
            let part = StateBatch::new(batch, &name);
            let data = part.group_batch("row", &self.spec.input_schema)?;
            let values = self
                .values
                .convert_columns(&part.group("value", Some(calls))?)?;
            let arrivals = part.primitive::<UInt64Type>("arrival")?.clone();
            let rows = self.rows.convert_columns(data.columns())?;
            let (ids, order) = self.locate(&data)?;
            for (row, id) in ids.into_iter().enumerate() {
                let arrival = arrivals.value(row);
                self.arrivals = self.arrivals.max(arrival + 1);
                self.partitions[id].insert(
                    (order.row(row).as_ref().into(), arrival),
                    Entry {
                        row: rows.row(row).as_ref().into(),
                        emitted: Some(values.row(row).as_ref().into()),
                    },
                );
            }
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.process(&batch, out)
    }
}

#[derive(Debug)]
pub struct UpdatingOverAggregateFactory(pub Arc<UpdatingOverSpec>);

impl OperatorFactory for UpdatingOverAggregateFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(UpdatingOverAggregate::try_new(
            Arc::clone(&self.0),
            context.max_parallelism,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, Int64Array};
    use arrow::compute::SortOptions;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::physical_expr::expressions::col;

    use super::*;
    use crate::operators::aggregate::test_support::sum;

    /// `SUM(v) OVER (ORDER BY o ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)`
    /// over (o, v), one partition.
    fn over() -> UpdatingOverAggregate {
        let input: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("o", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let mut fields = input.fields().to_vec();
        fields.push(Arc::new(Field::new("s", DataType::Int64, true)));
        let spec = UpdatingOverSpec {
            partition_by: Vec::new(),
            partition_schema: Arc::new(Schema::empty()),
            order_by: vec![PhysicalSortExpr {
                expr: col("o", &input).expect("o"),
                options: SortOptions::default(),
            }],
            frame: OverFrame::Rows(Some(1)),
            calls: vec![sum("v", &input)],
            output_schema: Arc::new(Schema::new(fields)),
            input_schema: input,
        };
        UpdatingOverAggregate::try_new(Arc::new(spec), 128).expect("operator")
    }

    fn feed(op: &mut UpdatingOverAggregate, rows: &[(RowKind, i64, i64)]) -> Vec<String> {
        let o: Int64Array = rows.iter().map(|r| r.1).collect();
        let v: Int64Array = rows.iter().map(|r| r.2).collect();
        let data = RecordBatch::try_new(
            Arc::clone(&op.spec.input_schema),
            vec![Arc::new(o), Arc::new(v)],
        )
        .expect("batch");
        let kinds = UInt8Array::from(rows.iter().map(|r| r.0 as u8).collect::<Vec<_>>());
        let mut out = Collector::default();
        op.process_batch(
            0,
            StreamBatch::try_new_changelog(data, kinds).expect("changelog"),
            &mut out,
        )
        .expect("process");
        out.take()
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |r| {
                    let value = |c: usize| {
                        let c = b.data().column(c).as_primitive::<Int64Type>();
                        if c.is_null(r) {
                            "null".to_string()
                        } else {
                            c.value(r).to_string()
                        }
                    };
                    format!(
                        "{}({},{},{})",
                        b.row_kind(r).short_string(),
                        value(0),
                        value(1),
                        value(2)
                    )
                })
            })
            .collect()
    }

    #[test]
    fn rows_entering_and_leaving_frames_update_their_neighbours() {
        let mut op = over();
        let (i, d) = (RowKind::Insert, RowKind::Delete);
        assert_eq!(
            feed(&mut op, &[(i, 10, 1), (i, 30, 3)]),
            ["+I(10,1,1)", "+I(30,3,4)"]
        );
        // 20 slots in between: 30's frame is now 20 and 30.
        assert_eq!(
            feed(&mut op, &[(i, 20, 2)]),
            ["+I(20,2,3)", "-U(30,3,4)", "+U(30,3,5)"]
        );
        // Retracting 10 changes 20's frame; 30's stays.
        assert_eq!(
            feed(&mut op, &[(d, 10, 1)]),
            ["-D(10,1,1)", "-U(20,2,3)", "+U(20,2,2)"]
        );
        // A retraction of a row never seen changes nothing.
        assert!(feed(&mut op, &[(d, 99, 9)]).is_empty());
    }

    #[test]
    fn a_restored_aggregation_updates_what_it_emitted_before() {
        let mut op = over();
        let (i, d) = (RowKind::Insert, RowKind::Delete);
        feed(&mut op, &[(i, 10, 1), (i, 20, 2), (i, 30, 3)]);
        let state = op.snapshot_state(1).expect("snapshot").expect("state");
        let mut restored = over();
        restored.restore_state(state).expect("restore");
        let change = [(d, 10, 1), (i, 25, 4)];
        let after_restore = feed(&mut restored, &change);
        assert_eq!(after_restore, feed(&mut op, &change));
        assert!(
            after_restore.contains(&"-D(10,1,1)".to_string()),
            "{after_restore:?}"
        );
    }
}
