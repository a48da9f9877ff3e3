//! Sinks: one writer per subtask receiving changelog batches.

use std::fmt::Debug;

use async_trait::async_trait;
use weir_common::StreamBatch;

use crate::ConnectorError;

/// What a sink subtask is asked to write.
#[derive(Debug, Clone)]
pub struct SinkContext {
    pub subtask: usize,
    pub parallelism: usize,
    /// The job's id, so that part files and transactions can be named after it.
    pub job_id: String,
}

/// Creates writers for one table; shared by all its subtasks.
#[async_trait]
pub trait SinkFactory: Send + Sync + Debug {
    /// Whether the sink can write updates and deletes (`-U`, `+U`, `-D`) or
    /// only inserts; the planner refuses an updating query on an insert-only sink.
    fn accepts_updates(&self) -> bool;

    async fn create_writer(
        &self,
        context: SinkContext,
    ) -> Result<Box<dyn SinkWriter>, ConnectorError>;
}

/// Writes the batches of one subtask.
///
/// The checkpoint hooks give sinks a two-phase commit: `prepare_commit` runs
/// when a checkpoint barrier reaches the sink (flush, stage what was written),
/// `commit` once the whole checkpoint is complete (make it visible).
#[async_trait]
pub trait SinkWriter: Send {
    async fn write(&mut self, batch: StreamBatch) -> Result<(), ConnectorError>;

    /// Stages everything written since the last checkpoint.
    async fn prepare_commit(&mut self, _checkpoint_id: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Makes what `prepare_commit` staged for `checkpoint_id` visible.
    async fn commit(&mut self, _checkpoint_id: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// The input ended: write out and make visible everything received.
    async fn finish(&mut self) -> Result<(), ConnectorError>;
}
