//! `LIMIT n [OFFSET m]` over a stream: passes the first rows through and
//! drops the rest. It runs as a single subtask so the count is global; its
//! state in a checkpoint is how many rows are still to skip and to pass.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use datafusion::error::{DataFusionError, Result};
use weir_common::StreamBatch;

use crate::operator::{Collector, Operator, OperatorState};

#[derive(Debug, Clone)]
pub struct Limit {
    /// Rows still to skip.
    skip: usize,
    /// Rows still to pass; `None` for no limit.
    fetch: Option<usize>,
    name: String,
}

impl Limit {
    pub fn new(skip: usize, fetch: Option<usize>) -> Self {
        let name = match fetch {
            Some(f) => format!("Limit(offset={skip}, fetch={f})"),
            None => format!("Limit(offset={skip})"),
        };
        Self { skip, fetch, name }
    }
}

impl Operator for Limit {
    fn name(&self) -> &str {
        &self.name
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("skip", DataType::UInt64, false),
            Field::new("fetch", DataType::UInt64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from(vec![self.skip as u64])),
                Arc::new(UInt64Array::from(vec![self.fetch.map(|f| f as u64)])),
            ],
        )?;
        Ok(Some(OperatorState {
            batches: vec![batch],
        }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let damaged = || DataFusionError::Internal(format!("damaged state of {}", self.name));
        let Some(batch) = state.batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(());
        };
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or_else(damaged)
        };
        let (skip, fetch) = (column("skip")?, column("fetch")?);
        self.skip = usize::try_from(skip.value(0)).map_err(|_| damaged())?;
        self.fetch = match fetch.is_valid(0) {
            true => Some(usize::try_from(fetch.value(0)).map_err(|_| damaged())?),
            false => None,
        };
        Ok(())
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        let rows = batch.num_rows();
        let skipped = self.skip.min(rows);
        self.skip -= skipped;
        let available = rows - skipped;
        let take = self.fetch.map_or(available, |f| f.min(available));
        if let Some(f) = &mut self.fetch {
            *f -= take;
        }
        if take > 0 {
            out.emit(batch.slice(skipped, take));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    #[test]
    fn skips_then_fetches_across_batches() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = |values: Vec<i64>| {
            StreamBatch::inserts(
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from(values))],
                )
                .expect("batch"),
            )
        };
        let mut limit = Limit::new(2, Some(3));
        let mut out = Collector::default();
        limit
            .process_batch(0, batch(vec![1, 2, 3]), &mut out)
            .expect("ok");
        limit
            .process_batch(0, batch(vec![4, 5, 6]), &mut out)
            .expect("ok");
        let values: Vec<i64> = out
            .take()
            .iter()
            .flat_map(|b| {
                b.data()
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(values, vec![3, 4, 5]);
    }

    #[test]
    fn a_restored_limit_goes_on_counting() {
        let mut limit = Limit::new(2, Some(3));
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = StreamBatch::inserts(
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])
                .expect("batch"),
        );
        limit
            .process_batch(0, batch, &mut Collector::default())
            .expect("ok");
        let state = limit.snapshot_state(1).expect("snapshot").expect("state");
        let mut restored = Limit::new(2, Some(3));
        restored.restore_state(state).expect("restores");
        assert_eq!((restored.skip, restored.fetch), (0, Some(2)));
    }
}
