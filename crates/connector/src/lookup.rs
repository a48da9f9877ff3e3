//! Lookup tables: what a processing-time temporal join (a lookup join)
//! queries for the rows matching each input row.
//!
//! A connector that supports lookups returns a [`LookupTableFactory`] from
//! [`crate::Connector::create_lookup`]. The join loads the whole table into
//! memory, indexes it by the join keys and serves every lookup from that
//! copy until [`LookupTableFactory::cache_ttl`] has passed, then loads it
//! again (Flink's filesystem lookup with `lookup.join.cache.ttl`). Connectors
//! that can query single keys (JDBC) will add a per-key method beside `load`.

use std::fmt::Debug;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::{ConnectorError, SourceContext, SourceEvent, SourceFactory};

/// A table a lookup join reads; shared by the join's subtasks.
#[async_trait]
pub trait LookupTableFactory: Send + Sync + Debug {
    /// How long a loaded copy serves lookups before the table is read again.
    fn cache_ttl(&self) -> Duration;

    /// Reads every row of the table (its physical columns).
    async fn load(&self) -> Result<Vec<RecordBatch>, ConnectorError>;
}

/// Reads a bounded source to its end in one reader: every split, in order.
pub async fn read_all(source: &dyn SourceFactory) -> Result<Vec<RecordBatch>, ConnectorError> {
    let splits = source.plan_splits(1).await?;
    let mut reader = source.create_reader(SourceContext::single(splits)).await?;
    let mut batches = Vec::new();
    while let Some(event) = reader.next_event().await? {
        if let SourceEvent::Batch { data, .. } = event
            && data.num_rows() > 0
        {
            batches.push(data.into_data());
        }
    }
    Ok(batches)
}
