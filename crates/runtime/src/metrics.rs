//! Baseline metrics every operator reports, through one helper.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use weir_common::Watermark;
use weir_connector::{Boundedness, SourceMetrics, SourceSplit};

/// How source operators' names begin.
pub(crate) const SOURCE_PREFIX: &str = "Source: ";

/// Rows in and out and busy time of one operator in one subtask.
#[derive(Debug)]
pub struct OperatorMetrics {
    /// The task (vertex name and subtask index) the operator runs in.
    pub task: String,
    pub operator: String,
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    /// Nanoseconds spent inside the operator.
    pub busy_nanos: AtomicU64,
    /// Nanoseconds the task waited for room in a downstream channel, on
    /// the operator whose output leaves the task (the last of its chain):
    /// Flink's backpressured time.
    pub backpressured_nanos: AtomicU64,
    /// The last watermark the operator forwarded, in epoch milliseconds.
    pub watermark: AtomicI64,
    /// Rows dropped because their window had fired (Flink's numLateRecordsDropped).
    pub late_rows_dropped: AtomicU64,
}

impl OperatorMetrics {
    pub fn new(task: &str, operator: &str) -> Self {
        Self {
            task: task.to_string(),
            operator: operator.to_string(),
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            backpressured_nanos: AtomicU64::new(0),
            watermark: AtomicI64::new(Watermark::MIN.millis()),
            late_rows_dropped: AtomicU64::new(0),
        }
    }

    /// Runs `work` on `rows_in` input rows, recording its busy time.
    pub fn record<T>(&self, rows_in: usize, work: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = work();
        self.busy_nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.rows_in.fetch_add(rows_in as u64, Ordering::Relaxed);
        result
    }

    pub fn add_rows_out(&self, rows: usize) {
        self.rows_out.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Counts what an operator call emitted and dropped as late.
    pub fn add_output(&self, collector: &crate::Collector) {
        self.rows_out
            .fetch_add(collector.rows() as u64, Ordering::Relaxed);
        self.late_rows_dropped
            .fetch_add(collector.late_rows() as u64, Ordering::Relaxed);
    }

    pub fn set_watermark(&self, watermark: Watermark) {
        self.watermark.store(watermark.millis(), Ordering::Relaxed);
    }
}

/// The metrics of a running job, readable while it runs.
#[derive(Debug, Default)]
pub struct JobMetrics {
    operators: Mutex<Vec<Arc<OperatorMetrics>>>,
    sources: Mutex<Vec<Arc<SourceMetrics>>>,
    splits_total: AtomicU64,
    /// The sum of the bounded sources' split sizes.
    size_total: AtomicU64,
    /// Sources that never end: a job with one has no share done.
    unbounded_sources: AtomicU64,
    /// Every checkpoint of the job so far, oldest first.
    checkpoints: Arc<Mutex<Vec<crate::checkpoint::CheckpointStats>>>,
}

/// Totals over a job, for progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobProgress {
    pub source_rows: u64,
    pub source_bytes: u64,
    pub records_skipped: u64,
    pub splits_finished: u64,
    pub splits_total: u64,
    /// Rows windows dropped as late.
    pub late_rows_dropped: u64,
    /// How far the sources' event time has come: the least watermark the
    /// sources that emitted one have emitted.
    pub watermark: Option<Watermark>,
    /// The share of the input read, from 0 to 1; `None` when an input is endless.
    pub done: Option<f64>,
}

impl JobMetrics {
    /// The job's checkpoint history, shared with its checkpoint coordinator.
    pub fn checkpoint_history(&self) -> Arc<Mutex<Vec<crate::checkpoint::CheckpointStats>>> {
        Arc::clone(&self.checkpoints)
    }

    /// The checkpoints taken so far, oldest first.
    pub fn checkpoints(&self) -> Vec<crate::checkpoint::CheckpointStats> {
        self.checkpoints
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// A new attempt of the job is deployed: its subtasks and splits are
    /// counted afresh, as Flink's task metrics start again after a
    /// failover. The checkpoint history stays.
    pub(crate) fn restart(&self) {
        if let Ok(mut all) = self.operators.lock() {
            all.clear();
        }
        if let Ok(mut all) = self.sources.lock() {
            all.clear();
        }
        self.splits_total.store(0, Ordering::Relaxed);
        self.size_total.store(0, Ordering::Relaxed);
        self.unbounded_sources.store(0, Ordering::Relaxed);
    }

    pub(crate) fn register_operator(&self, metrics: Arc<OperatorMetrics>) {
        if let Ok(mut all) = self.operators.lock() {
            all.push(metrics);
        }
    }

    pub(crate) fn register_source(&self, metrics: Arc<SourceMetrics>) {
        if let Ok(mut all) = self.sources.lock() {
            all.push(metrics);
        }
    }

    /// Records a source's planned splits, for the share of the input read.
    pub(crate) fn register_splits(&self, boundedness: Boundedness, splits: &[SourceSplit]) {
        self.splits_total
            .fetch_add(splits.len() as u64, Ordering::Relaxed);
        match boundedness {
            Boundedness::Bounded => {
                let size: u64 = splits.iter().map(|s| s.size_hint).sum();
                self.size_total.fetch_add(size, Ordering::Relaxed);
            }
            Boundedness::Unbounded => {
                self.unbounded_sources.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A snapshot of every operator's metrics.
    pub fn operators(&self) -> Vec<Arc<OperatorMetrics>> {
        self.operators.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn progress(&self) -> JobProgress {
        let mut progress = JobProgress {
            splits_total: self.splits_total.load(Ordering::Relaxed),
            ..JobProgress::default()
        };
        let mut least_watermark: Option<i64> = None;
        for op in self.operators() {
            if op.operator.starts_with(SOURCE_PREFIX) {
                progress.source_rows += op.rows_out.load(Ordering::Relaxed);
                let w = op.watermark.load(Ordering::Relaxed);
                if w > Watermark::MIN.millis() {
                    least_watermark = Some(least_watermark.map_or(w, |l| l.min(w)));
                }
            }
            progress.late_rows_dropped += op.late_rows_dropped.load(Ordering::Relaxed);
        }
        progress.watermark = least_watermark.map(Watermark);
        let mut size_read = 0;
        if let Ok(sources) = self.sources.lock() {
            for s in sources.iter() {
                progress.source_bytes += s.bytes_read.load(Ordering::Relaxed);
                progress.records_skipped += s.records_skipped.load(Ordering::Relaxed);
                progress.splits_finished += s.splits_finished.load(Ordering::Relaxed);
                size_read += s.size_read.load(Ordering::Relaxed);
            }
        }
        if self.unbounded_sources.load(Ordering::Relaxed) == 0 {
            let size_total = self.size_total.load(Ordering::Relaxed);
            progress.done = Some(if size_total > 0 {
                (size_read as f64 / size_total as f64).min(1.0)
            } else if progress.splits_total > 0 {
                progress.splits_finished as f64 / progress.splits_total as f64
            } else {
                0.0
            });
        }
        progress
    }
}
