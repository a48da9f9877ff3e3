//! A bounded source over rows known at planning time (`VALUES`, `SELECT 1`).

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use weir_common::StreamBatch;
use weir_connector::{
    Boundedness, ConnectorError, SourceContext, SourceEvent, SourceFactory, SourceReader,
    SourceSplit,
};

/// Emits fixed batches once, from one split.
#[derive(Debug, Clone)]
pub struct ValuesSource {
    batches: Vec<RecordBatch>,
}

impl ValuesSource {
    pub fn new(batches: Vec<RecordBatch>) -> Self {
        Self { batches }
    }
}

#[async_trait]
impl SourceFactory for ValuesSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    async fn plan_splits(&self, _parallelism: usize) -> Result<Vec<SourceSplit>, ConnectorError> {
        let rows: usize = self.batches.iter().map(RecordBatch::num_rows).sum();
        Ok(vec![SourceSplit::new("values", rows as u64)])
    }

    async fn create_reader(
        &self,
        context: SourceContext,
    ) -> Result<Box<dyn SourceReader>, ConnectorError> {
        let batches = if context.splits.is_empty() {
            Vec::new()
        } else {
            self.batches.clone()
        };
        Ok(Box::new(ValuesReader {
            pending: batches.into_iter(),
            has_split: !context.splits.is_empty(),
        }))
    }
}

struct ValuesReader {
    pending: std::vec::IntoIter<RecordBatch>,
    has_split: bool,
}

#[async_trait]
impl SourceReader for ValuesReader {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>, ConnectorError> {
        if let Some(data) = self.pending.next() {
            return Ok(Some(SourceEvent::Batch {
                split: 0,
                data: StreamBatch::inserts(data),
            }));
        }
        if std::mem::take(&mut self.has_split) {
            return Ok(Some(SourceEvent::SplitFinished { split: 0 }));
        }
        Ok(None)
    }
}
