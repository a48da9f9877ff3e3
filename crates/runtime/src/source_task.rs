//! The input side of a source subtask: reads its splits, applies the
//! table's computed columns, and generates watermarks per split.

use std::sync::Arc;

use weir_common::{StreamBatch, Watermark};
use weir_connector::{SourceEvent, SourceReader};

use crate::RuntimeError;
use crate::exchange::GateEvent;
use crate::metrics::OperatorMetrics;
use crate::operators::watermark::SplitWatermarks;
use crate::operators::{Calc, WatermarkStrategy};

pub(crate) struct SourceDriver {
    pub(crate) task: String,
    pub(crate) reader: Box<dyn SourceReader>,
    pub(crate) transforms: Vec<Calc>,
    pub(crate) watermark: Option<(WatermarkStrategy, SplitWatermarks)>,
    pub(crate) metrics: Arc<OperatorMetrics>,
    /// A watermark to emit before reading on (it follows the batch that raised it).
    pending_watermark: Option<Watermark>,
    ended: bool,
}

impl SourceDriver {
    pub(crate) fn new(
        task: String,
        reader: Box<dyn SourceReader>,
        transforms: Vec<Calc>,
        watermark: Option<WatermarkStrategy>,
        splits: usize,
        metrics: Arc<OperatorMetrics>,
    ) -> Self {
        Self {
            task,
            reader,
            transforms,
            watermark: watermark.map(|w| (w, SplitWatermarks::new(splits))),
            metrics,
            pending_watermark: None,
            ended: false,
        }
    }

    pub(crate) async fn next(&mut self) -> Result<GateEvent, RuntimeError> {
        if let Some(w) = self.pending_watermark.take() {
            return Ok(GateEvent::Watermark(w));
        }
        if self.ended {
            return Ok(GateEvent::End);
        }
        loop {
            let event = self
                .reader
                .next_event()
                .await
                .map_err(|e| RuntimeError::connector(&self.task, e))?;
            match event {
                Some(SourceEvent::Batch { split, data }) => {
                    let batch = self.transform(StreamBatch::inserts(data))?;
                    if let Some((strategy, splits)) = &mut self.watermark {
                        let observed = strategy.batch_watermark(batch.data()).map_err(|e| {
                            RuntimeError::operator(&self.task, "WatermarkAssigner", e)
                        })?;
                        if let Some(w) = observed {
                            splits.observe(split, w);
                        }
                        self.pending_watermark = splits.advance();
                    }
                    if batch.num_rows() > 0 {
                        return Ok(GateEvent::Batch { input: 0, batch });
                    }
                    if let Some(w) = self.pending_watermark.take() {
                        return Ok(GateEvent::Watermark(w));
                    }
                }
                Some(SourceEvent::SplitStarted { split }) => {
                    if let Some((_, splits)) = &mut self.watermark {
                        splits.start_split(split);
                    }
                }
                Some(SourceEvent::SplitFinished { split }) => {
                    if let Some((_, splits)) = &mut self.watermark {
                        splits.finish_split(split);
                        if let Some(w) = splits.advance() {
                            return Ok(GateEvent::Watermark(w));
                        }
                    }
                }
                None => {
                    self.ended = true;
                    // The end of a bounded input moves time to the end, so
                    // every pending window and timer fires.
                    return Ok(GateEvent::Watermark(Watermark::END_OF_TIME));
                }
            }
        }
    }

    fn transform(&self, batch: StreamBatch) -> Result<StreamBatch, RuntimeError> {
        let rows = batch.num_rows();
        let result = self.metrics.record(rows, || {
            self.transforms.iter().try_fold(batch, |b, calc| {
                calc.apply(&b)
                    .map_err(|e| RuntimeError::operator(&self.task, crate::Operator::name(calc), e))
            })
        });
        if let Ok(out) = &result {
            self.metrics.add_rows_out(out.num_rows());
        }
        result
    }
}
