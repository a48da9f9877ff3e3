//! `Calc`: a filter followed by a projection, as Flink's `Calc` node. It is
//! how every stateless row transformation (WHERE, SELECT expressions,
//! computed columns, casts to a sink's types) runs.
//!
//! A function call the filter always evaluates and the projection uses
//! again (`SELECT REGEXP_EXTRACT(url, p) ... WHERE REGEXP_EXTRACT(url, p)
//! IS NOT NULL`) is computed once per batch: it is evaluated
//! before the filter as an extra column, which the filter passes on to the
//! projection with the rows it keeps. Only calls the filter evaluates on
//! every row are taken, so no row is computed that was not before.
//!
//! DataFusion's common-subexpression pass often puts a projection of its
//! own between a filter and the projection over it (Nexmark q21), so two
//! chained Calcs do the same: the lower one passes the call's column up as
//! an extra output column (`Calc::share_with`), which the upper one reads.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Operator as BinaryOp;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CastExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr, NegativeExpr,
    NotExpr, TryCastExpr,
};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_expr_common::physical_expr::is_volatile;
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
    /// The schema of the input batches: the types of the calls shared.
    input_schema: SchemaRef,
    /// The calls `predicate`, as planned, evaluates on every row.
    always: Vec<Arc<dyn PhysicalExpr>>,
    /// Calls computed once for the filter and the projections (this one's
    /// and the next Calc's).
    shared: Option<Shared>,
    /// Shown in plans, e.g. `Calc(select=[auction, price], where=[...])`.
    name: String,
}

/// The calls a Calc computes once, appended to its input's columns; the
/// predicate and projection read them there.
#[derive(Debug, Clone)]
struct Shared {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    fields: Vec<Arc<Field>>,
    input_width: usize,
}

impl Shared {
    fn new(input_width: usize) -> Self {
        Self {
            exprs: Vec::new(),
            fields: Vec::new(),
            input_width,
        }
    }

    /// The column `call` is read from, computing it from now on if it was not.
    fn column(&mut self, call: &Arc<dyn PhysicalExpr>, input_schema: &Schema) -> Result<Column> {
        let i = match self.exprs.iter().position(|e| e == call) {
            Some(i) => i,
            None => {
                let name = format!("__shared{}", self.exprs.len());
                let field = Field::new(name, call.data_type(input_schema)?, true);
                self.exprs.push(Arc::clone(call));
                self.fields.push(Arc::new(field));
                self.exprs.len() - 1
            }
        };
        Ok(Column::new(self.fields[i].name(), self.input_width + i))
    }

    /// `batch` with the shared calls' columns after its own.
    fn extend(&self, batch: &StreamBatch) -> Result<StreamBatch> {
        let data = batch.data();
        if data.num_columns() != self.input_width {
            return Err(DataFusionError::Internal(format!(
                "Calc planned for {} input columns received {}",
                self.input_width,
                data.num_columns()
            )));
        }
        let rows = data.num_rows();
        let mut columns = data.columns().to_vec();
        for expr in &self.exprs {
            columns.push(expr.evaluate(data)?.into_array(rows)?);
        }
        let input_schema = data.schema();
        let fields = input_schema.fields().iter().chain(&self.fields).cloned();
        let schema = Arc::new(Schema::new(fields.collect::<Vec<_>>()));
        let extended = RecordBatch::try_new_with_options(
            schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        batch.with_data(extended).map_err(batch_error)
    }
}

/// `expr` with every occurrence of `what` replaced by `with`.
fn replace(
    expr: &Arc<dyn PhysicalExpr>,
    what: &Arc<dyn PhysicalExpr>,
    with: &Arc<dyn PhysicalExpr>,
) -> Result<Arc<dyn PhysicalExpr>> {
    let replaced = Arc::clone(expr).transform_down(|sub| {
        Ok(if &sub == what {
            Transformed::yes(Arc::clone(with))
        } else {
            Transformed::no(sub)
        })
    })?;
    Ok(replaced.data)
}

/// Whether any of `exprs` contains `call`.
fn uses(exprs: &[Arc<dyn PhysicalExpr>], call: &Arc<dyn PhysicalExpr>) -> Result<bool> {
    for expr in exprs {
        if expr.exists(|sub| Ok(sub == call))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The deterministic function calls over columns that `expr` evaluates on
/// every row it is given, outermost first. Not those under a CASE, a
/// short-circuiting function (COALESCE) or the right side of AND and OR,
/// which may see only some rows: computing them for all could fail on a
/// row they were never meant to see.
fn always_evaluated_calls(expr: &Arc<dyn PhysicalExpr>, calls: &mut Vec<Arc<dyn PhysicalExpr>>) {
    let any: &dyn PhysicalExpr = expr.as_ref();
    if let Some(call) = any.downcast_ref::<ScalarFunctionExpr>() {
        let over_columns = expr.exists(|sub| Ok(sub.is::<Column>())).unwrap_or(false);
        if over_columns && !is_volatile(expr) {
            if !calls.contains(expr) {
                calls.push(Arc::clone(expr));
            }
            return;
        }
        if call.fun().short_circuits() {
            return;
        }
    } else if let Some(binary) = any.downcast_ref::<BinaryExpr>() {
        if matches!(binary.op(), BinaryOp::And | BinaryOp::Or) {
            always_evaluated_calls(binary.left(), calls);
            return;
        }
    } else if !(any.is::<IsNullExpr>()
        || any.is::<IsNotNullExpr>()
        || any.is::<NotExpr>()
        || any.is::<NegativeExpr>()
        || any.is::<CastExpr>()
        || any.is::<TryCastExpr>()
        || any.is::<InListExpr>()
        || any.is::<LikeExpr>())
    {
        return;
    }
    for child in expr.children() {
        always_evaluated_calls(child, calls);
    }
}

impl Calc {
    /// `predicate` and `projection` read rows of `input_schema`;
    /// `projection` must produce the fields of `output_schema`, in order.
    pub fn try_new(
        input_schema: &Schema,
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
        let mut always = Vec::new();
        if let Some(predicate) = &predicate {
            always_evaluated_calls(predicate, &mut always);
        }
        let mut calc = Self {
            predicate,
            projection,
            output_schema,
            input_schema: Arc::new(input_schema.clone()),
            always,
            shared: None,
            name,
        };
        for call in calc.always.clone() {
            if uses(&calc.projection, &call)? {
                calc.share(&call)?;
            }
        }
        Ok(calc)
    }

    /// Computes `call` once, before the filter, from now on; the predicate
    /// and projection read it from the column returned.
    fn share(&mut self, call: &Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let width = self.input_schema.fields().len();
        let shared = self.shared.get_or_insert_with(|| Shared::new(width));
        let column: Arc<dyn PhysicalExpr> = Arc::new(shared.column(call, &self.input_schema)?);
        if let Some(predicate) = &self.predicate {
            self.predicate = Some(replace(predicate, call, &column)?);
        }
        for expr in &mut self.projection {
            *expr = replace(expr, call, &column)?;
        }
        Ok(column)
    }

    /// Lets `next`, a Calc reading this one's output, take the calls this
    /// one's filter makes on every row from this one's output instead of
    /// making them again. DataFusion's common-subexpression pass often
    /// splits a filter and the projection over it in two (Nexmark q21).
    pub fn share_with(&mut self, next: &mut Calc) -> Result<()> {
        // A filter in `next` would compute its own shared calls, after the input's columns.
        if next.predicate.is_some() {
            return Ok(());
        }
        for call in self.always.clone() {
            let Some(above) = self.as_output(&call)? else {
                continue;
            };
            if !uses(&next.projection, &above)? {
                continue;
            }
            let column = self.share(&call)?;
            let at = self.projection.len();
            let field = Field::new(
                format!("__shared_out{at}"),
                call.data_type(&self.input_schema)?,
                true,
            );
            let read: Arc<dyn PhysicalExpr> = Arc::new(Column::new(field.name(), at));
            self.projection.push(column);
            let mut fields = self.output_schema.fields().to_vec();
            fields.push(Arc::new(field));
            self.output_schema = Arc::new(Schema::new(fields));
            for expr in &mut next.projection {
                *expr = replace(expr, &above, &read)?;
            }
            next.input_schema = Arc::clone(&self.output_schema);
        }
        Ok(())
    }

    /// `call` as an expression over this Calc's output: each input column
    /// it reads must be passed through as it is.
    fn as_output(&self, call: &Arc<dyn PhysicalExpr>) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        let mut missing = false;
        let mapped = Arc::clone(call).transform_up(|sub| {
            let Some(column) = sub.downcast_ref::<Column>() else {
                return Ok(Transformed::no(sub));
            };
            let passed = self.projection.iter().position(|e| {
                e.downcast_ref::<Column>()
                    .is_some_and(|c| c.index() == column.index())
            });
            Ok(match passed {
                Some(at) => Transformed::yes(Arc::new(Column::new(
                    self.output_schema.field(at).name(),
                    at,
                )) as Arc<dyn PhysicalExpr>),
                None => {
                    missing = true;
                    Transformed::no(sub)
                }
            })
        })?;
        Ok((!missing).then_some(mapped.data))
    }

    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// Applies the filter and projection to one batch.
    pub fn apply(&self, batch: &StreamBatch) -> Result<StreamBatch> {
        let extended;
        let batch = match &self.shared {
            Some(shared) => {
                extended = shared.extend(batch)?;
                &extended
            }
            None => batch,
        };
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arrow::array::{Int64Array, UInt8Array};
    use datafusion::config::ConfigOptions;
    use datafusion::logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    };
    use datafusion::physical_expr::expressions::Literal;
    use datafusion::scalar::ScalarValue;
    use weir_common::RowKind;

    use super::*;

    fn input_schema() -> Schema {
        Schema::new(vec![Field::new("v", DataType::Int64, true)])
    }

    fn input() -> StreamBatch {
        let data = RecordBatch::try_new(
            Arc::new(input_schema()),
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
        let calc =
            Calc::try_new(&input_schema(), Some(predicate), vec![doubled], schema).expect("calc");
        let out = calc.apply(&input()).expect("apply");
        let values = out
            .data()
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(values.values().to_vec(), vec![6, 8]);
        assert_eq!(out.row_kind(0), RowKind::UpdateAfter);
        assert_eq!(out.row_kind(1), RowKind::Delete);
    }

    /// A function that returns its argument and counts the rows it was given.
    #[derive(Debug)]
    struct Counted {
        rows: Arc<AtomicUsize>,
        signature: Signature,
    }

    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.rows, &other.rows)
        }
    }

    impl Eq for Counted {}

    impl std::hash::Hash for Counted {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            Arc::as_ptr(&self.rows).hash(state);
        }
    }

    impl ScalarUDFImpl for Counted {
        fn name(&self) -> &str {
            "counted"
        }

        fn signature(&self) -> &Signature {
            &self.signature
        }

        fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
            Ok(DataType::Int64)
        }

        fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
            self.rows.fetch_add(args.number_rows, Ordering::SeqCst);
            Ok(args.args[0].clone())
        }
    }

    /// `counted(arg)` calls counting their rows in `rows`.
    fn counted(
        rows: &Arc<AtomicUsize>,
    ) -> impl Fn(&Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        let udf = Arc::new(ScalarUDF::new_from_impl(Counted {
            rows: Arc::clone(rows),
            signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        }));
        move |arg| {
            Arc::new(
                ScalarFunctionExpr::try_new(
                    Arc::clone(&udf),
                    vec![Arc::clone(arg)],
                    &input_schema(),
                    Arc::new(ConfigOptions::default()),
                )
                .expect("call"),
            )
        }
    }

    #[test]
    fn a_call_the_filter_always_makes_is_computed_once_for_the_projection_too() {
        let rows = Arc::new(AtomicUsize::new(0));
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("v", 0));
        let counted = counted(&rows)(&v);
        let output = Arc::new(Schema::new(vec![Field::new("c", DataType::Int64, true)]));
        let calc = |predicate: Arc<dyn PhysicalExpr>| {
            Calc::try_new(
                &input_schema(),
                Some(predicate),
                vec![Arc::clone(&counted)],
                Arc::clone(&output),
            )
            .expect("calc")
        };
        let values = |out: StreamBatch| {
            out.data()
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .collect::<Vec<_>>()
        };

        let always = calc(Arc::new(IsNotNullExpr::new(Arc::clone(&counted))));
        assert_eq!(
            values(always.apply(&input()).expect("apply")),
            vec![Some(1), Some(3), Some(4)]
        );
        assert_eq!(rows.swap(0, Ordering::SeqCst), 4);

        // After AND the call may see only some rows: it is not moved before the filter.
        let some: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(
                Arc::clone(&v),
                BinaryOp::Gt,
                Arc::new(Literal::new(ScalarValue::Int64(Some(3)))),
            )),
            BinaryOp::And,
            Arc::new(IsNotNullExpr::new(Arc::clone(&counted))),
        ));
        let sometimes = calc(some);
        assert!(sometimes.shared.is_none());
        assert_eq!(
            values(sometimes.apply(&input()).expect("apply")),
            vec![Some(4)]
        );
    }

    #[test]
    fn a_calc_hands_the_calls_its_filter_made_to_the_calc_above() {
        let rows = Arc::new(AtomicUsize::new(0));
        let counted = counted(&rows);
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("v", 0));
        let schema = Arc::new(input_schema());
        let mut lower = Calc::try_new(
            &input_schema(),
            Some(Arc::new(IsNotNullExpr::new(counted(&v)))),
            vec![Arc::clone(&v)],
            Arc::clone(&schema),
        )
        .expect("lower");
        let output = Arc::new(Schema::new(vec![Field::new("c", DataType::Int64, true)]));
        let mut upper =
            Calc::try_new(&input_schema(), None, vec![counted(&v)], output).expect("upper");
        lower.share_with(&mut upper).expect("share");
        let out = upper
            .apply(&lower.apply(&input()).expect("lower"))
            .expect("upper");
        let values = out
            .data()
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(
            values.iter().collect::<Vec<_>>(),
            vec![Some(1), Some(3), Some(4)]
        );
        assert_eq!(rows.load(Ordering::SeqCst), 4);
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
            Calc::try_new(&input_schema(), None, vec![value, id], Arc::clone(&schema))
                .expect("calc")
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
