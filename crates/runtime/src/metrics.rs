//! Baseline metrics every operator reports, through one helper.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use weir_common::Watermark;
use weir_connector::SourceMetrics;

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
}

/// Totals over a job, for progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobProgress {
    pub source_rows: u64,
    pub source_bytes: u64,
    pub records_skipped: u64,
    pub splits_finished: u64,
    /// Rows windows dropped as late.
    pub late_rows_dropped: u64,
}

impl JobMetrics {
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

    /// A snapshot of every operator's metrics.
    pub fn operators(&self) -> Vec<Arc<OperatorMetrics>> {
        self.operators.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn progress(&self) -> JobProgress {
        let mut progress = JobProgress::default();
        for op in self.operators() {
            if op.operator.starts_with("Source:") {
                progress.source_rows += op.rows_out.load(Ordering::Relaxed);
            }
            progress.late_rows_dropped += op.late_rows_dropped.load(Ordering::Relaxed);
        }
        if let Ok(sources) = self.sources.lock() {
            for s in sources.iter() {
                progress.source_bytes += s.bytes_read.load(Ordering::Relaxed);
                progress.records_skipped += s.records_skipped.load(Ordering::Relaxed);
                progress.splits_finished += s.splits_finished.load(Ordering::Relaxed);
            }
        }
        progress
    }
}
