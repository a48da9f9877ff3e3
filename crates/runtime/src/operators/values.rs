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
        let Some(split) = context.splits.into_iter().next() else {
            return Ok(Box::new(ValuesReader {
                pending: Vec::new().into_iter(),
                split: None,
                emitted: 0,
            }));
        };
        // A restored split goes on after the batches it had emitted.
        let emitted = match &split.position {
            Some(position) => position
                .parse::<usize>()
                .map_err(|e| ConnectorError::External {
                    context: format!("the VALUES source's checkpointed position '{position}'"),
                    source: Box::new(e),
                })?,
            None => 0,
        };
        let pending: Vec<RecordBatch> = self.batches.iter().skip(emitted).cloned().collect();
        Ok(Box::new(ValuesReader {
            pending: pending.into_iter(),
            split: Some(split),
            emitted,
        }))
    }
}

struct ValuesReader {
    pending: std::vec::IntoIter<RecordBatch>,
    /// The one split, until it is finished.
    split: Option<SourceSplit>,
    /// Batches emitted so far: the split's position.
    emitted: usize,
}

#[async_trait]
impl SourceReader for ValuesReader {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>, ConnectorError> {
        if let Some(data) = self.pending.next() {
            self.emitted += 1;
            return Ok(Some(SourceEvent::Batch {
                split: 0,
                data: StreamBatch::inserts(data),
            }));
        }
        if self.split.take().is_some() {
            return Ok(Some(SourceEvent::SplitFinished { split: 0 }));
        }
        Ok(None)
    }

    fn snapshot(&mut self, _checkpoint_id: u64) -> Result<Vec<SourceSplit>, ConnectorError> {
        Ok(self
            .split
            .iter()
            .map(|split| SourceSplit {
                position: Some(self.emitted.to_string()),
                ..split.clone()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn context(splits: Vec<SourceSplit>) -> SourceContext {
        SourceContext {
            subtask: 0,
            parallelism: 1,
            splits,
            projection: None,
            metrics: Arc::default(),
        }
    }

    fn batch(value: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![value]))])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A checkpoint between batches resumes after the ones emitted.
    #[tokio::test]
    async fn a_restored_reader_goes_on_after_the_batches_it_had_emitted() {
        let source = ValuesSource::new(vec![batch(1), batch(2), batch(3)]);
        let splits = source
            .plan_splits(1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut reader = source
            .create_reader(context(splits))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let first = reader.next_event().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(first, Some(SourceEvent::Batch { .. })));
        let snapshot = reader.snapshot(1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(snapshot[0].position.as_deref(), Some("1"));
        let mut restored = source
            .create_reader(context(snapshot))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut values = Vec::new();
        while let Some(event) = restored
            .next_event()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        {
            if let SourceEvent::Batch { data, .. } = event {
                let column = data.data().column(0);
                let column = column.as_any().downcast_ref::<Int64Array>();
                values.extend(column.into_iter().flatten().flatten());
            }
        }
        assert_eq!(values, vec![2, 3]);
        assert!(
            restored
                .snapshot(2)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
    }
}
