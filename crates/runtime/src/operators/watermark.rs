//! Watermark generation from a table's `WATERMARK FOR col AS expr`.
//!
//! Watermarks are generated per source split, as Flink does: each split's
//! watermark is the largest value of the watermark expression seen on it,
//! and the subtask emits the minimum over its unfinished splits, so one
//! split that is behind holds back time for all. When a bounded input ends,
//! the source emits [`Watermark::END_OF_TIME`] so every window fires.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::kernels::aggregate::max;
use arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::scalar::ScalarValue;
use weir_common::Watermark;

/// How a source derives watermarks from its rows.
#[derive(Debug, Clone)]
pub struct WatermarkStrategy {
    /// The watermark expression, evaluated on the source's output rows.
    expr: Arc<dyn PhysicalExpr>,
    /// `Some` for Flink's usual `ts - INTERVAL ...` (or `ts`): the watermark is
    /// then the column's maximum minus a fixed delay, computed without
    /// evaluating interval arithmetic on every row.
    bounded: Option<BoundedOutOfOrderness>,
    /// Text for plans, e.g. `date_time - INTERVAL '1' SECOND`.
    display: String,
}

/// `column - delay`, with the delay in milliseconds.
#[derive(Debug, Clone, Copy)]
struct BoundedOutOfOrderness {
    column: usize,
    delay_millis: i64,
}

impl BoundedOutOfOrderness {
    fn recognize(expr: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        if let Some(column) = expr.downcast_ref::<Column>() {
            return Some(Self {
                column: column.index(),
                delay_millis: 0,
            });
        }
        let binary = expr.downcast_ref::<BinaryExpr>()?;
        if *binary.op() != datafusion::logical_expr::Operator::Minus {
            return None;
        }
        let column = binary.left().downcast_ref::<Column>()?;
        let literal = binary.right().downcast_ref::<Literal>()?;
        let delay_nanos: i64 = match literal.value() {
            ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => i64::from(v.days)
                .checked_mul(86_400_000_000_000)?
                .checked_add(v.nanoseconds)?,
            ScalarValue::IntervalDayTime(Some(v)) => (i64::from(v.days) * 86_400_000
                + i64::from(v.milliseconds))
            .checked_mul(1_000_000)?,
            _ => return None,
        };
        Some(Self {
            column: column.index(),
            delay_millis: delay_nanos.div_euclid(1_000_000),
        })
    }

    fn watermark(&self, batch: &RecordBatch) -> Option<Result<Option<Watermark>>> {
        let column = batch.columns().get(self.column)?;
        let millis = match column.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => {
                max(column.as_primitive::<TimestampSecondType>()).map(|v| v.saturating_mul(1_000))
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                max(column.as_primitive::<TimestampMillisecondType>())
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                max(column.as_primitive::<TimestampMicrosecondType>()).map(|v| v.div_euclid(1_000))
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                max(column.as_primitive::<TimestampNanosecondType>())
                    .map(|v| v.div_euclid(1_000_000))
            }
            _ => return None,
        };
        Some(Ok(
            millis.map(|m| Watermark(m.saturating_sub(self.delay_millis)))
        ))
    }
}

impl WatermarkStrategy {
    pub fn new(expr: Arc<dyn PhysicalExpr>, display: String) -> Self {
        let bounded = BoundedOutOfOrderness::recognize(&expr);
        Self {
            expr,
            bounded,
            display,
        }
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    /// The largest watermark the rows of `batch` allow, if any row has one.
    pub fn batch_watermark(&self, batch: &RecordBatch) -> Result<Option<Watermark>> {
        if let Some(result) = self.bounded.and_then(|b| b.watermark(batch)) {
            return result;
        }
        let values = self.expr.evaluate(batch)?.into_array(batch.num_rows())?;
        let millis = match values.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) => values,
            DataType::Timestamp(_, tz) => arrow::compute::cast(
                &values,
                &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
            )?,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "the watermark expression {} has type {other}; it must be a TIMESTAMP or TIMESTAMP_LTZ",
                    self.display
                )));
            }
        };
        let millis = millis.as_primitive::<TimestampMillisecondType>();
        Ok(max(millis).map(Watermark))
    }
}

/// Per-split watermark bookkeeping for one source subtask.
///
/// A split holds time back from when it starts (its first batch, or the
/// reader's `SplitStarted`) until it finishes, or until it has been idle
/// for 'table.exec.source.idle-timeout'; splits not started yet do not, so
/// a subtask reading its file splits one after another advances time as it
/// goes, not only at its end. Times are processing-time milliseconds.
#[derive(Debug)]
pub(crate) struct SplitWatermarks {
    splits: Vec<SplitTime>,
    emitted: Watermark,
    idle_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SplitTime {
    NotStarted,
    Reading {
        watermark: Watermark,
        active_at: u64,
    },
    Finished,
}

impl SplitWatermarks {
    pub(crate) fn new(splits: usize, idle_timeout_ms: Option<u64>) -> Self {
        Self {
            splits: vec![SplitTime::NotStarted; splits],
            emitted: Watermark::MIN,
            idle_timeout_ms,
        }
    }

    pub(crate) fn start_split(&mut self, split: usize, now: u64) {
        if let Some(slot @ SplitTime::NotStarted) = self.splits.get_mut(split) {
            *slot = SplitTime::Reading {
                watermark: Watermark::MIN,
                active_at: now,
            };
        }
    }

    pub(crate) fn observe(&mut self, split: usize, watermark: Watermark, now: u64) {
        if let Some(slot) = self.splits.get_mut(split) {
            *slot = match *slot {
                SplitTime::NotStarted => SplitTime::Reading {
                    watermark,
                    active_at: now,
                },
                SplitTime::Reading { watermark: w, .. } => SplitTime::Reading {
                    watermark: w.max(watermark),
                    active_at: now,
                },
                SplitTime::Finished => SplitTime::Finished,
            };
        }
    }

    pub(crate) fn finish_split(&mut self, split: usize) {
        if let Some(slot) = self.splits.get_mut(split) {
            *slot = SplitTime::Finished;
        }
    }

    /// The new subtask watermark at time `now`, if it advanced since the last call.
    pub(crate) fn advance(&mut self, now: u64) -> Option<Watermark> {
        let timeout = self.idle_timeout_ms;
        let current = self
            .splits
            .iter()
            .filter_map(|s| match s {
                SplitTime::Reading {
                    watermark,
                    active_at,
                } if timeout.is_none_or(|t| now.saturating_sub(*active_at) < t) => Some(*watermark),
                _ => None,
            })
            .min()?;
        (current > self.emitted).then(|| {
            self.emitted = current;
            current
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::Operator;

    use super::*;

    #[test]
    fn bounded_delay_matches_the_general_expression() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(TimestampMicrosecondArray::from(vec![
                Some(5_000_999),
                None,
                Some(-3_000_000),
            ]))],
        )
        .expect("batch");
        let interval = ScalarValue::new_interval_mdn(0, 0, 1_500_000_000);
        let expr: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("ts", 0)),
            Operator::Minus,
            Arc::new(Literal::new(interval)),
        ));
        let fast = WatermarkStrategy::new(Arc::clone(&expr), String::new());
        assert!(fast.bounded.is_some());
        let general = WatermarkStrategy {
            expr,
            bounded: None,
            display: String::new(),
        };
        assert_eq!(
            fast.batch_watermark(&batch).expect("ok"),
            Some(Watermark(3_500))
        );
        assert_eq!(
            general.batch_watermark(&batch).expect("ok"),
            Some(Watermark(3_500))
        );
    }

    #[test]
    fn the_slowest_unfinished_split_holds_back_time() {
        let mut w = SplitWatermarks::new(3, None);
        w.start_split(1, 0);
        w.observe(0, Watermark(100), 0);
        assert_eq!(
            w.advance(0),
            None,
            "split 1 started but has no watermark yet"
        );
        w.observe(1, Watermark(50), 0);
        assert_eq!(w.advance(0), Some(Watermark(50)));
        w.observe(1, Watermark(40), 0);
        assert_eq!(w.advance(0), None, "watermarks never go back");
        w.finish_split(1);
        assert_eq!(
            w.advance(0),
            Some(Watermark(100)),
            "split 2 has not started, so it does not hold time back"
        );
        w.observe(2, Watermark(90), 0);
        assert_eq!(w.advance(0), None);
        w.finish_split(0);
        w.observe(2, Watermark(120), 0);
        assert_eq!(w.advance(0), Some(Watermark(120)));
    }

    #[test]
    fn an_idle_split_stops_holding_back_time() {
        let mut w = SplitWatermarks::new(2, Some(1_000));
        w.observe(0, Watermark(10), 0);
        w.observe(1, Watermark(500), 0);
        assert_eq!(w.advance(0), Some(Watermark(10)));
        w.observe(1, Watermark(900), 999);
        assert_eq!(w.advance(999), None, "split 0 is not idle yet");
        w.observe(1, Watermark(950), 1_000);
        assert_eq!(
            w.advance(1_000),
            Some(Watermark(950)),
            "split 0 idle for 1 s"
        );
        w.observe(0, Watermark(20), 1_200);
        assert_eq!(
            w.advance(1_200),
            None,
            "an active split again, behind: time does not go back"
        );
    }
}
