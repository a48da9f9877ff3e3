//! The input side of a source subtask: reads its splits, applies the
//! table's computed columns, and generates watermarks per split.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// 'table.exec.source.idle-timeout'.
    idle_timeout: Option<Duration>,
    /// Idle was announced downstream and nothing was read since.
    idle: bool,
    started: Instant,
}

impl SourceDriver {
    pub(crate) fn new(
        task: String,
        reader: Box<dyn SourceReader>,
        transforms: Vec<Calc>,
        watermark: Option<WatermarkStrategy>,
        splits: usize,
        idle_timeout: Option<Duration>,
        metrics: Arc<OperatorMetrics>,
    ) -> Self {
        let timeout_ms = idle_timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        Self {
            task,
            reader,
            transforms,
            watermark: watermark.map(|w| (w, SplitWatermarks::new(splits, timeout_ms))),
            metrics,
            pending_watermark: None,
            ended: false,
            idle_timeout,
            idle: false,
            started: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The reader's next event; `None` once the subtask has read nothing for
    /// the idle timeout (readers' `next_event` is cancel-safe).
    async fn next_event(&mut self) -> Result<Option<Option<SourceEvent>>, RuntimeError> {
        let read = self.reader.next_event();
        let event = match self.idle_timeout {
            Some(timeout) if !self.idle => match tokio::time::timeout(timeout, read).await {
                Ok(event) => event,
                Err(_) => return Ok(None),
            },
            _ => read.await,
        };
        event
            .map(Some)
            .map_err(|e| RuntimeError::connector(&self.task, e))
    }

    pub(crate) async fn next(&mut self) -> Result<GateEvent, RuntimeError> {
        let event = self.next_from_reader().await?;
        if let GateEvent::Watermark(w) = &event {
            self.metrics.set_watermark(*w);
        }
        Ok(event)
    }

    async fn next_from_reader(&mut self) -> Result<GateEvent, RuntimeError> {
        if let Some(w) = self.pending_watermark.take() {
            return Ok(GateEvent::Watermark(w));
        }
        if self.ended {
            return Ok(GateEvent::End);
        }
        loop {
            let Some(event) = self.next_event().await? else {
                self.idle = true;
                return Ok(GateEvent::Idle);
            };
            self.idle = false;
            let now = self.now();
            match event {
                Some(SourceEvent::Batch { split, data }) => {
                    let batch = self.transform(data)?;
                    if let Some((strategy, splits)) = &mut self.watermark {
                        let observed = strategy.batch_watermark(batch.data()).map_err(|e| {
                            RuntimeError::operator(&self.task, "WatermarkAssigner", e)
                        })?;
                        if let Some(w) = observed {
                            splits.observe(split, w, now);
                        }
                        self.pending_watermark = splits.advance(now);
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
                        splits.start_split(split, now);
                    }
                }
                Some(SourceEvent::SplitFinished { split }) => {
                    if let Some((_, splits)) = &mut self.watermark {
                        splits.finish_split(split);
                        if let Some(w) = splits.advance(now) {
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
