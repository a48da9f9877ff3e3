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
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use weir_common::Watermark;

/// How a source derives watermarks from its rows.
#[derive(Debug, Clone)]
pub struct WatermarkStrategy {
    /// The watermark expression, evaluated on the source's output rows.
    expr: Arc<dyn PhysicalExpr>,
    /// Text for plans, e.g. `date_time - INTERVAL '1' SECOND`.
    display: String,
}

impl WatermarkStrategy {
    pub fn new(expr: Arc<dyn PhysicalExpr>, display: String) -> Self {
        Self { expr, display }
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    /// The largest watermark the rows of `batch` allow, if any row has one.
    pub fn batch_watermark(&self, batch: &RecordBatch) -> Result<Option<Watermark>> {
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
#[derive(Debug)]
pub(crate) struct SplitWatermarks {
    /// The watermark of each split; `None` once the split finished.
    splits: Vec<Option<Watermark>>,
    emitted: Watermark,
}

impl SplitWatermarks {
    pub(crate) fn new(splits: usize) -> Self {
        Self {
            splits: vec![Some(Watermark::MIN); splits],
            emitted: Watermark::MIN,
        }
    }

    pub(crate) fn observe(&mut self, split: usize, watermark: Watermark) {
        if let Some(Some(current)) = self.splits.get_mut(split) {
            *current = (*current).max(watermark);
        }
    }

    pub(crate) fn finish_split(&mut self, split: usize) {
        if let Some(slot) = self.splits.get_mut(split) {
            *slot = None;
        }
    }

    /// The new subtask watermark, if it advanced since the last call.
    pub(crate) fn advance(&mut self) -> Option<Watermark> {
        let current = self.splits.iter().flatten().min().copied()?;
        (current > self.emitted).then(|| {
            self.emitted = current;
            current
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_unfinished_split_holds_back_time() {
        let mut w = SplitWatermarks::new(2);
        w.observe(0, Watermark(100));
        assert_eq!(w.advance(), None, "split 1 has no watermark yet");
        w.observe(1, Watermark(50));
        assert_eq!(w.advance(), Some(Watermark(50)));
        w.observe(1, Watermark(40));
        assert_eq!(w.advance(), None, "watermarks never go back");
        w.finish_split(1);
        assert_eq!(w.advance(), Some(Watermark(100)));
    }
}
