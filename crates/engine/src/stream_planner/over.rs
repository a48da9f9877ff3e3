//! Planning OVER aggregations: aggregate functions over a window of rows
//! before each row, partitioned by keys and ordered by a time attribute.
//! As in Flink, every OVER aggregate of a SELECT must share one window.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::{AggregateFunction, Sort as SortExpr, WindowFunction};
use datafusion::logical_expr::{
    Expr, Window, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
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
        let (order_time, proctime) = time_order(order_by, input_schema)?;
        let frame = over_frame(frame)?;
        let input = self.translate(&window.input)?;
        if !proctime && !input.keeps_rowtime() {
            return Err(EngineError::Unsupported(
                "an OVER aggregation ordered by a time column that an upstream join, rank or aggregation made a plain timestamp".into(),
            ));
        }
        if input.changelog_mode() != ChangelogMode::InsertOnly {
            return Err(EngineError::Unsupported(
                "an OVER aggregation over an updating input".into(),
            ));
        }
        Ok(StreamNode::OverAggregate {
            input: Box::new(input),
            partition_by: partition_by.to_vec(),
            order_time,
            frame,
            proctime,
            aggregates,
            schema: Arc::clone(&window.schema),
        })
    }
}

/// The one time attribute, ascending, that OVER windows order by on a
/// stream; and whether it is processing time.
fn time_order(order_by: &[SortExpr], schema: &DFSchema) -> Result<(Expr, bool), EngineError> {
    let refused = || {
        EngineError::Unsupported(
            "OVER windows not ordered by one time attribute ascending (ORDER BY a rowtime or PROCTIME() column)".into(),
        )
    };
    let [sort] = order_by else {
        return Err(refused());
    };
    let Expr::Column(column) = &sort.expr else {
        return Err(refused());
    };
    let (_, field) = schema
        .qualified_field_from_column(column)
        .map_err(|_| refused())?;
    let attribute = field.metadata().get(TIME_ATTRIBUTE).map(String::as_str);
    match attribute {
        Some(kind) if sort.asc && (kind == ROWTIME || kind == PROCTIME) => {
            Ok((sort.expr.clone(), kind == PROCTIME))
        }
        _ => Err(refused()),
    }
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
