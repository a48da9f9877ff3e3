//! Sinks: one writer per subtask receiving changelog batches.

use std::fmt::Debug;

use arrow::record_batch::RecordBatch;
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
    /// Whether the job takes checkpoints: a sink then makes rows visible
    /// only when a checkpoint covering them completes (exactly once).
    pub checkpointing: bool,
}

/// Creates writers for one table; shared by all its subtasks.
#[async_trait]
pub trait SinkFactory: Send + Sync + Debug {
    /// Whether the sink can write updates and deletes (`-U`, `+U`, `-D`) or
    /// only inserts; the planner refuses an updating query on an insert-only sink.
    fn accepts_updates(&self) -> bool;

    /// Whether the sink reads `-U` rows. One that does not (Flink's
    /// blackhole asks for `[I,UA,D]`) lets the planner have the nodes
    /// below it emit only the new version of an updated row, and keep less
    /// state for it.
    fn needs_update_before(&self) -> bool {
        true
    }

    async fn create_writer(
        &self,
        context: SinkContext,
    ) -> Result<Box<dyn SinkWriter>, ConnectorError>;
}

/// Writes the batches of one subtask.
///
/// The checkpoint hooks give sinks a two-phase commit:
/// 1. `prepare_commit` runs when a checkpoint barrier reaches the sink: it
///    flushes and stages what was written since the last checkpoint, and
///    returns the *committables* (what `commit` will need: staged file
///    names, a transaction id), which are stored with the checkpoint;
/// 2. `commit` runs once the whole checkpoint is complete and makes what was
///    staged up to it visible;
/// 3. after a crash, the writer of the restarted job gets the committables of
///    the checkpoint it restarts from in `recover`: it commits them (the
///    crash may have come between the checkpoint's completion and `commit`)
///    and discards whatever was staged after that checkpoint.
///
/// Without checkpoints (bounded jobs, or 'execution.checkpointing.interval'
/// unset), `finish` makes everything visible at the end of the input.
#[async_trait]
pub trait SinkWriter: Send {
    async fn write(&mut self, batch: StreamBatch) -> Result<(), ConnectorError>;

    /// Stages everything written since the last checkpoint; returns the
    /// committables to store with checkpoint `checkpoint_id`, if any.
    async fn prepare_commit(
        &mut self,
        _checkpoint_id: u64,
    ) -> Result<Option<RecordBatch>, ConnectorError> {
        Ok(None)
    }

    /// Makes what `prepare_commit` staged up to `checkpoint_id` visible.
    async fn commit(&mut self, _checkpoint_id: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Called before the first write of a job restarted from a checkpoint,
    /// with the committables stored in it (from every subtask whose state
    /// this one takes over).
    async fn recover(&mut self, committables: Vec<RecordBatch>) -> Result<(), ConnectorError> {
        if committables.iter().all(|b| b.num_rows() == 0) {
            Ok(())
        } else {
            Err(ConnectorError::Unsupported {
                connector: "this sink".to_string(),
                what: "cannot recover what it staged before a restart".to_string(),
            })
        }
    }

    /// The input ended: write out and make visible everything received.
    async fn finish(&mut self) -> Result<(), ConnectorError>;
}
