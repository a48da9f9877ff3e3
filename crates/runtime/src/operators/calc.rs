//! `Calc`: a filter followed by a projection, as Flink's `Calc` node. It is
//! how every stateless row transformation (WHERE, SELECT expressions,
//! computed columns, casts to a sink's types) runs.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use weir_common::StreamBatch;

use crate::error::batch_error;
use crate::operator::{Collector, Operator};

/// A filter and a projection over one input.
#[derive(Debug, Clone)]
pub struct Calc {
    /// Rows where this is not true are dropped; `None` keeps every row.
    predicate: Option<Arc<dyn PhysicalExpr>>,
    /// The output columns, evaluated on the rows the predicate kept.
    projection: Vec<Arc<dyn PhysicalExpr>>,
    /// The schema of the projected batches.
    output_schema: SchemaRef,
    /// Shown in plans, e.g. `Calc(select=[auction, price], where=[...])`.
    name: String,
}

impl Calc {
    /// `projection` must produce the fields of `output_schema`, in order.
    pub fn try_new(
        predicate: Option<Arc<dyn PhysicalExpr>>,
        projection: Vec<Arc<dyn PhysicalExpr>>,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        if projection.len() != output_schema.fields().len() {
            return Err(DataFusionError::Internal(format!(
                "Calc has {} expressions for {} output fields",
                projection.len(),
                output_schema.fields().len()
            )));
        }
        let select = projection
            .iter()
            .zip(output_schema.fields())
            .map(|(e, f)| {
                let text = e.to_string();
                let bare = text.split('@').next().unwrap_or(&text);
                if bare == f.name() {
                    bare.to_string()
                } else {
                    format!("{text} AS {}", f.name())
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let name = match &predicate {
            Some(p) => format!("Calc(select=[{select}], where=[{p}])"),
            None => format!("Calc(select=[{select}])"),
        };
        Ok(Self {
            predicate,
            projection,
            output_schema,
            name,
        })
    }

    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// Applies the filter and projection to one batch.
    pub fn apply(&self, batch: &StreamBatch) -> Result<StreamBatch> {
        let filtered = match &self.predicate {
            None => batch.clone(),
            Some(predicate) => {
                let mask = predicate
                    .evaluate(batch.data())?
                    .into_array(batch.num_rows())?;
                let mask = boolean_mask(&mask)?;
                if mask.true_count() == batch.num_rows() {
                    batch.clone()
                } else {
                    batch.filter(&mask).map_err(batch_error)?
                }
            }
        };
        let rows = filtered.num_rows();
        let columns = self
            .projection
            .iter()
            .map(|e| e.evaluate(filtered.data())?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.output_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        filtered.with_data(data).map_err(batch_error)
    }
}

/// A predicate's result as a mask where NULL counts as false, as in SQL.
fn boolean_mask(array: &dyn Array) -> Result<BooleanArray> {
    if array.data_type() != &DataType::Boolean {
        return Err(DataFusionError::Internal(format!(
            "filter predicate evaluated to {} instead of BOOLEAN",
            array.data_type()
        )));
    }
    let mask = array.as_boolean();
    Ok(match mask.nulls() {
        None => mask.clone(),
        Some(_) => arrow::compute::prep_null_mask_filter(mask),
    })
}

impl Operator for Calc {
    fn name(&self) -> &str {
        &self.name
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        out.emit(self.apply(&batch)?);
        Ok(())
    }
}

/// Each row once per projection, as Flink's `Expand`: how GROUPING SETS,
/// ROLLUP and CUBE reach a plain aggregation, one copy of a row per
/// grouping set with the keys outside the set NULL. Row kinds go with
/// every copy, so an updating input retracts from each set.
#[derive(Debug, Clone)]
pub struct Expand {
    projections: Vec<Calc>,
    name: String,
}

impl Expand {
    /// `projections` must all produce the same schema.
    pub fn try_new(projections: Vec<Calc>) -> Result<Self> {
        let Some(first) = projections.first() else {
            return Err(DataFusionError::Internal(
                "Expand needs at least one projection".into(),
            ));
        };
        if let Some(other) = projections
            .iter()
            .find(|p| p.output_schema != first.output_schema)
        {
            return Err(DataFusionError::Internal(format!(
                "Expand projections disagree on their schema: {} against {}",
                other.output_schema, first.output_schema
            )));
        }
        let name = format!("Expand(sets={})", projections.len());
        Ok(Self { projections, name })
    }
}

impl Operator for Expand {
    fn name(&self) -> &str {
        &self.name
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        for projection in &self.projections {
            out.emit(projection.apply(&batch)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, UInt8Array};
    use arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::Operator as BinaryOp;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
    use datafusion::scalar::ScalarValue;
    use weir_common::RowKind;

    use super::*;

    fn input() -> StreamBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let data = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![
                Some(1),
                None,
                Some(3),
                Some(4),
            ]))],
        )
        .expect("batch");
        StreamBatch::try_new_changelog(data, UInt8Array::from(vec![0, 1, 2, 3])).expect("kinds")
    }

    #[test]
    fn filters_with_null_as_false_and_keeps_row_kinds() {
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("v", 0));
        let predicate: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::clone(&v),
            BinaryOp::Gt,
            Arc::new(Literal::new(ScalarValue::Int64(Some(1)))),
        ));
        let doubled: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::clone(&v),
            BinaryOp::Multiply,
            Arc::new(Literal::new(ScalarValue::Int64(Some(2)))),
        ));
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Int64, true)]));
        let calc = Calc::try_new(Some(predicate), vec![doubled], schema).expect("calc");
        let out = calc.apply(&input()).expect("apply");
        let values = out
            .data()
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(values.values().to_vec(), vec![6, 8]);
        assert_eq!(out.row_kind(0), RowKind::UpdateAfter);
        assert_eq!(out.row_kind(1), RowKind::Delete);
    }

    #[test]
    fn expand_emits_each_row_once_per_projection_with_its_row_kind() {
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("v", 0));
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("id", DataType::UInt8, false),
        ]));
        let projection = |id: u8, keep: bool| {
            let value: Arc<dyn PhysicalExpr> = if keep {
                Arc::clone(&v)
            } else {
                Arc::new(Literal::new(ScalarValue::Int64(None)))
            };
            let id: Arc<dyn PhysicalExpr> = Arc::new(Literal::new(ScalarValue::UInt8(Some(id))));
            Calc::try_new(None, vec![value, id], Arc::clone(&schema)).expect("calc")
        };
        let mut expand =
            Expand::try_new(vec![projection(0, true), projection(1, false)]).expect("expand");
        let mut out = Collector::default();
        expand.process_batch(0, input(), &mut out).expect("process");
        let batches = out.take();
        assert_eq!(batches.len(), 2);
        let values = |b: &StreamBatch| {
            b.data()
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(values(&batches[0]), vec![Some(1), None, Some(3), Some(4)]);
        assert_eq!(values(&batches[1]), vec![None; 4]);
        for batch in &batches {
            assert_eq!(batch.row_kind(3), RowKind::Delete);
        }
        assert!(Expand::try_new(Vec::new()).is_err());
    }
}
