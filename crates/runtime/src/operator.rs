//! The operator contract.
//!
//! An [`Operator`] is synchronous and CPU-bound: it turns input batches into
//! output batches and never blocks or awaits. I/O belongs to sources and
//! sinks, with one exception: an operator that must fetch something before
//! it can go on (a lookup join loading its dimension table) returns that
//! work from [`Operator::prepare`], which its subtask awaits. Errors are returned, never panicked; the task that runs the
//! operator fails the job with the operator's name attached.
//!
//! The hooks with defaults are the ones later features fill in: watermark
//! handling (windows, interval joins), `finish` (flush at the end of a
//! bounded input), and state snapshot/restore plus checkpoint completion
//! (checkpoints). A stateless operator implements only `process_batch`.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use weir_common::{StreamBatch, Watermark};

/// How often subtasks with processing-time operators read the clock.
pub const PROCESSING_TIME_TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// Where an operator puts the batches it emits.
#[derive(Debug, Default)]
pub struct Collector {
    batches: Vec<StreamBatch>,
    late_rows: usize,
}

impl Collector {
    pub fn emit(&mut self, batch: StreamBatch) {
        if batch.num_rows() > 0 {
            self.batches.push(batch);
        }
    }

    pub fn take(&mut self) -> Vec<StreamBatch> {
        std::mem::take(&mut self.batches)
    }

    /// Counts rows dropped for arriving after the watermark passed their window.
    pub fn add_late_rows(&mut self, rows: usize) {
        self.late_rows += rows;
    }

    pub fn late_rows(&self) -> usize {
        self.late_rows
    }

    pub fn rows(&self) -> usize {
        self.batches.iter().map(StreamBatch::num_rows).sum()
    }
}

/// Where an operator runs.
#[derive(Debug, Clone)]
pub struct OperatorContext {
    pub subtask: usize,
    pub parallelism: usize,
    /// Flink's max parallelism: the number of key groups keyed state is
    /// split into, so it can be restored at another parallelism.
    pub max_parallelism: usize,
}

/// An operator's snapshotted state: Arrow batches, keyed state carrying a
/// key-group column so it can be redistributed on restore.
#[derive(Debug, Clone, Default)]
pub struct OperatorState {
    pub batches: Vec<RecordBatch>,
}

/// Asynchronous work an operator needs done before its next input.
pub type Preparation<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// A streaming operator in a chain.
pub trait Operator: Send + Debug {
    /// The name shown in EXPLAIN, metrics and errors, e.g. `Calc(...)`.
    fn name(&self) -> &str;

    fn open(&mut self, _context: &OperatorContext) -> Result<()> {
        Ok(())
    }

    /// I/O that must finish before the operator takes its next input
    /// (batch, watermark or end), such as (re)loading a lookup table. The
    /// subtask awaits it, so input waits meanwhile: backpressure, not loss.
    fn prepare(&mut self) -> Option<Preparation<'_>> {
        None
    }

    /// Processes a batch from input `input` (0 unless the operator has
    /// several inputs, like a join).
    fn process_batch(
        &mut self,
        input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()>;

    /// The watermark over all inputs advanced to `watermark`. Emit what it
    /// completes and return the watermark to pass downstream.
    fn process_watermark(
        &mut self,
        watermark: Watermark,
        _out: &mut Collector,
    ) -> Result<Option<Watermark>> {
        Ok(Some(watermark))
    }

    /// Whether the operator has processing-time timers: its subtask then
    /// calls [`Operator::process_time`] every [`PROCESSING_TIME_TICK`].
    fn uses_processing_time(&self) -> bool {
        false
    }

    /// The wall clock reached `now` (epoch milliseconds): fire what is due.
    fn process_time(&mut self, _now: i64, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    /// Every input ended; emit whatever is still buffered.
    fn finish(&mut self, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    /// A checkpoint barrier passed: return the state to store with checkpoint `id`.
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        Ok(None)
    }

    /// Called before `open` when the job restarts from a checkpoint.
    fn restore_state(&mut self, _state: OperatorState) -> Result<()> {
        Ok(())
    }

    /// The checkpoint `id` is complete on every subtask.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<()> {
        Ok(())
    }
}

/// Creates one operator instance per subtask; the job graph holds factories,
/// so the same graph can be deployed again on restart or on other workers.
pub trait OperatorFactory: Send + Sync + Debug {
    /// The name of the operators it creates, for plans and metrics.
    fn name(&self) -> String;

    fn create(&self, context: &OperatorContext) -> Result<Box<dyn Operator>>;
}

/// The factory of a stateless operator: each subtask gets a clone of the
/// compiled operator, which shares its expressions.
#[derive(Debug)]
pub struct CloningFactory<T>(pub T);

impl<T: Operator + Clone + Sync + Debug + 'static> OperatorFactory for CloningFactory<T> {
    fn name(&self) -> String {
        self.0.name().to_string()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.0.clone()))
    }
}
