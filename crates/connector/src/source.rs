//! Sources: split planning, readers and their events.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use weir_common::StreamBatch;

use crate::ConnectorError;

/// Whether a source ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundedness {
    /// A finite stream: the reader returns `None` after the last batch.
    Bounded,
    /// An endless stream, such as a Kafka topic or an unbounded datagen.
    Unbounded,
}

/// A unit of source work: a file, a byte range of a file, a partition.
///
/// Splits are plain data so that they can be assigned to subtasks on other
/// workers and recorded in checkpoints; each connector encodes what it needs
/// in `id` and decodes it again in its reader. A split taken from a
/// checkpoint also carries where reading stopped, in `position`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceSplit {
    /// Identifies the split within its source, e.g. `data/bids.csv[0..67108864]`.
    pub id: String,
    /// The split's size in bytes (or rows, when bytes mean nothing), to balance
    /// assignment and to report progress.
    pub size_hint: u64,
    /// Where to resume reading, as the connector's reader wrote it in
    /// [`SourceReader::snapshot`]; `None` to read the split from its start.
    pub position: Option<String>,
}

impl SourceSplit {
    /// A split read from its start.
    pub fn new(id: impl Into<String>, size_hint: u64) -> Self {
        Self {
            id: id.into(),
            size_hint,
            position: None,
        }
    }
}

/// What a source subtask is asked to read.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub subtask: usize,
    pub parallelism: usize,
    /// The splits assigned to this subtask.
    pub splits: Vec<SourceSplit>,
    /// Indices into the table's [read schema](crate::TableSpec::read_schema)
    /// of the columns to produce; `None` for all.
    pub projection: Option<Vec<usize>>,
    /// Counters the reader updates; the runtime reports them.
    pub metrics: Arc<SourceMetrics>,
}

impl SourceContext {
    /// The one subtask of a read at parallelism 1: every split and column,
    /// with counters of its own.
    pub fn single(splits: Vec<SourceSplit>) -> Self {
        Self {
            subtask: 0,
            parallelism: 1,
            splits,
            projection: None,
            metrics: Arc::new(SourceMetrics::default()),
        }
    }
}

/// Counters a source reader keeps up to date.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    /// Bytes read from storage or the network.
    pub bytes_read: AtomicU64,
    /// Malformed records skipped because the format's ignore-parse-errors is on.
    pub records_skipped: AtomicU64,
    /// Splits read to their end.
    pub splits_finished: AtomicU64,
    /// How much of the splits' [`size_hint`](SourceSplit::size_hint) has
    /// been read, in the same unit, for progress bars.
    pub size_read: AtomicU64,
}

impl SourceMetrics {
    pub fn add_bytes(&self, n: u64) {
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` units of `size_hint` as read.
    pub fn add_size_read(&self, n: u64) {
        self.size_read.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_skipped(&self, n: u64) {
        self.records_skipped.fetch_add(n, Ordering::Relaxed);
    }
}

/// What a reader yields.
#[derive(Debug)]
pub enum SourceEvent {
    /// Rows read from the split at index `split` of [`SourceContext::splits`];
    /// inserts, unless the factory [produces updates](SourceFactory::produces_updates).
    Batch { split: usize, data: StreamBatch },
    /// The reader opened the split at index `split`: from now until it
    /// finishes it holds back the watermark, even before its first rows.
    /// Readers of concurrent splits (Kafka partitions) send it; a split of a
    /// reader that goes through its splits one by one starts holding time
    /// back with its first batch.
    SplitStarted { split: usize },
    /// The split at index `split` has no more rows; it no longer holds back
    /// the watermark.
    SplitFinished { split: usize },
}

/// Creates readers for one table; shared by all its subtasks.
#[async_trait]
pub trait SourceFactory: Send + Sync + Debug {
    fn boundedness(&self) -> Boundedness;

    /// Whether batches carry updates and deletes (a changelog such as an
    /// upsert-kafka topic) rather than inserts only.
    fn produces_updates(&self) -> bool {
        false
    }

    /// Lists the splits of the input (files are listed here, once per job).
    async fn plan_splits(&self, parallelism: usize) -> Result<Vec<SourceSplit>, ConnectorError>;

    /// Opens a reader over the splits assigned to one subtask.
    async fn create_reader(
        &self,
        context: SourceContext,
    ) -> Result<Box<dyn SourceReader>, ConnectorError>;
}

/// Reads the splits of one subtask.
///
/// Cancellation: the runtime drops the reader (and the future of a pending
/// `next_event`) when the job is cancelled, so readers must not rely on being
/// polled to completion. `next_event` must also be cancel-safe: with
/// 'table.exec.source.idle-timeout' the runtime drops a pending call when it
/// times out and calls again later, and no record may be lost or repeated.
#[async_trait]
pub trait SourceReader: Send {
    /// The next event; `None` once every split of a bounded source ended.
    async fn next_event(&mut self) -> Result<Option<SourceEvent>, ConnectorError>;

    /// The splits not yet read to their end, each with the position right
    /// after the last row `next_event` returned, for checkpoint
    /// `checkpoint_id`: a reader created over them goes on exactly there,
    /// with no row lost or repeated. Called between `next_event` calls.
    fn snapshot(&mut self, _checkpoint_id: u64) -> Result<Vec<SourceSplit>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            connector: "this source".to_string(),
            what: "cannot be checkpointed yet (it cannot say where to resume reading)".to_string(),
        })
    }

    /// The checkpoint `checkpoint_id` completed (a Kafka reader commits its
    /// offsets to the consumer group here).
    async fn notify_checkpoint_complete(
        &mut self,
        _checkpoint_id: u64,
    ) -> Result<(), ConnectorError> {
        Ok(())
    }
}
