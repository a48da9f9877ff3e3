//! Planning OVER aggregations: aggregate functions over a window of rows
//! before each row, partitioned by keys. Ordered by a time attribute over
//! an insert-only input, as Flink runs them, each row comes out once; in
//! any other order or over an updating input (Nexmark q6, which Flink
//! cannot run) the result is a changelog kept up to date. As in Flink,
//! every OVER aggregate of a SELECT must share one window.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::{AggregateFunction, Sort as SortExpr, WindowFunction};
use datafusion::logical_expr::{
    Expr, ExprSchemable, Window, WindowFrame, WindowFrameBound, WindowFrameUnits,
    WindowFunctionDefinition,
};
use weir_runtime::operators::OverFrame;
use weir_sql::window_tvf::{PROCTIME, ROWTIME, TIME_ATTRIBUTE, interval_literal_millis};

use super::{ChangelogMode, StreamNode, StreamPlanner};
use crate::EngineError;

impl StreamPlanner<'_> {
    pub(super) fn over_aggregate(&self, window: &Window) -> Result<StreamNode, EngineError> {
        let mut shared: Option<(&[Expr], &[SortExpr], &WindowFrame)> = None;
        let mut aggregates = Vec::new();
        let functions: Vec<WindowFunction> = window
            .window_expr
            .iter()
            .map(|e| match e.clone().unalias_nested().data {
                Expr::WindowFunction(f) => Ok(*f),
                other => Err(EngineError::Internal(format!("{other} in a window node"))),
            })
            .collect::<Result<_, _>>()?;
        for f in &functions {
            let WindowFunctionDefinition::AggregateUDF(udaf) = &f.fun else {
                return Err(EngineError::Unsupported(format!(
                    "the window function {} on a stream (OVER takes aggregate functions; ROW_NUMBER() only filtered to a Top-N)",
                    f.fun.name()
                )));
            };
            let p = &f.params;
            let window_of = (
                p.partition_by.as_slice(),
                p.order_by.as_slice(),
                &p.window_frame,
            );
            match shared {
                None => shared = Some(window_of),
                Some(s) if s == window_of => {}
                Some(_) => {
                    return Err(EngineError::Unsupported(
                        "OVER aggregates with different windows in one window node (all must share PARTITION BY, ORDER BY and the frame)".into(),
                    ));
                }
            }
            aggregates.push(Expr::AggregateFunction(AggregateFunction::new_udf(
                Arc::clone(udaf),
                p.args.clone(),
                p.distinct,
                p.filter.clone(),
                Vec::new(),
                p.null_treatment,
            )));
        }
        let Some((partition_by, order_by, frame)) = shared else {
            return Err(EngineError::Internal(
                "a window node without functions".into(),
            ));
        };
        let input_schema = window.input.schema();
        let frame = over_frame(frame)?;
        let input = self.translate(&window.input)?;
        let insert_only = input.changelog_mode() == ChangelogMode::InsertOnly;
        let order = match time_order(order_by, input_schema) {
            Some((expr, proctime)) if insert_only && (proctime || input.keeps_rowtime()) => {
                OverOrder::Time { expr, proctime }
            }
            _ => {
                if matches!(frame, OverFrame::Range(Some(_)))
                    && !ascending_timestamp(order_by, input_schema)
                {
                    return Err(EngineError::Unsupported(
                        "a RANGE ... PRECEDING frame with an interval that is not ordered by one timestamp ascending".into(),
                    ));
                }
                if order_by.is_empty() {
                    return Err(EngineError::Unsupported(
                        "an OVER window without ORDER BY on a stream".into(),
                    ));
                }
                OverOrder::Values(order_by.to_vec())
            }
        };
        Ok(StreamNode::OverAggregate {
            input: Box::new(input),
            partition_by: partition_by.to_vec(),
            order,
            frame,
            aggregates,
            schema: Arc::clone(&window.schema),
        })
    }
}

/// How an OVER window's rows are ordered, which decides how it runs.
#[derive(Debug, Clone)]
pub enum OverOrder {
    /// An insert-only input ordered by a time attribute ascending, as Flink
    /// requires: each row comes out once, when its time is complete.
    Time { expr: Expr, proctime: bool },
    /// Any other order, or an updating input (which Flink refuses): the
    /// result is kept up to date as a changelog.
    Values(Vec<SortExpr>),
}

/// The one time attribute, ascending, an OVER window orders by, if it
/// does; and whether it is processing time.
fn time_order(order_by: &[SortExpr], schema: &DFSchema) -> Option<(Expr, bool)> {
    let [sort] = order_by else {
        return None;
    };
    let Expr::Column(column) = &sort.expr else {
        return None;
    };
    let (_, field) = schema.qualified_field_from_column(column).ok()?;
    let kind = field.metadata().get(TIME_ATTRIBUTE)?;
    (sort.asc && (kind == ROWTIME || kind == PROCTIME))
        .then(|| (sort.expr.clone(), kind == PROCTIME))
}

/// Whether the order is one timestamp ascending, as a RANGE frame with an
/// interval needs.
fn ascending_timestamp(order_by: &[SortExpr], schema: &DFSchema) -> bool {
    matches!(order_by, [sort] if sort.asc
        && matches!(sort.expr.get_type(schema), Ok(arrow::datatypes::DataType::Timestamp(_, _))))
}

fn over_frame(frame: &WindowFrame) -> Result<OverFrame, EngineError> {
    let refused = || {
        EngineError::Unsupported(format!(
            "the OVER frame {frame} (streams take ROWS or RANGE BETWEEN ... PRECEDING AND CURRENT ROW)"
        ))
    };
    if frame.end_bound != WindowFrameBound::CurrentRow {
        return Err(refused());
    }
    match (&frame.units, &frame.start_bound) {
        (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) if v.is_null() => {
            Ok(OverFrame::Rows(None))
        }
        (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) => {
            let n = v
                .cast_to(&arrow::datatypes::DataType::UInt64)
                .ok()
                .and_then(|v| match v {
                    datafusion::common::ScalarValue::UInt64(n) => n,
                    _ => None,
                })
                .ok_or_else(refused)?;
            Ok(OverFrame::Rows(Some(n)))
        }
        (WindowFrameUnits::Rows, WindowFrameBound::CurrentRow) => Ok(OverFrame::Rows(Some(0))),
        (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) if v.is_null() => {
            Ok(OverFrame::Range(None))
        }
        (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) => {
            let ms =
                interval_literal_millis(&Expr::Literal(v.clone(), None)).ok_or_else(refused)?;
            Ok(OverFrame::Range(Some(ms)))
        }
        (WindowFrameUnits::Range, WindowFrameBound::CurrentRow) => Ok(OverFrame::Range(Some(0))),
        _ => Err(refused()),
    }
}
