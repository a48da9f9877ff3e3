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

/// The metrics of the subtasks of a job that run in this process.
#[derive(Debug, Default)]
pub struct JobMetrics {
    operators: Mutex<Vec<Arc<OperatorMetrics>>>,
    sources: Mutex<Vec<Arc<SourceMetrics>>>,
}

/// What a job attempt's split planning found: the whole of the input, for
/// the share of it read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputPlan {
    pub splits_total: u64,
    /// The sum of the bounded sources' split sizes.
    pub size_total: u64,
    /// Sources that never end: a job with one has no share done.
    pub unbounded_sources: u64,
}

impl InputPlan {
    /// Counts a source's planned splits.
    pub(crate) fn add(&mut self, boundedness: Boundedness, splits: &[SourceSplit]) {
        self.splits_total += splits.len() as u64;
        match boundedness {
            Boundedness::Bounded => {
                self.size_total += splits.iter().map(|s| s.size_hint).sum::<u64>()
            }
            Boundedness::Unbounded => self.unbounded_sources += 1,
        }
    }
}

/// Totals over a job, for progress displays. Each worker totals its own
/// subtasks; the job master merges the workers' totals and adds the
/// attempt's [`InputPlan`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobProgress {
    pub source_rows: u64,
    pub source_bytes: u64,
    pub records_skipped: u64,
    pub splits_finished: u64,
    pub splits_total: u64,
    /// Bytes of bounded splits read, against the plan's `size_total`.
    pub size_read: u64,
    /// Rows windows dropped as late.
    pub late_rows_dropped: u64,
    /// How far the sources' event time has come: the least watermark the
    /// sources that emitted one have emitted.
    pub watermark: Option<Watermark>,
    /// The share of the input read, from 0 to 1; `None` when an input is endless.
    pub done: Option<f64>,
}

impl JobProgress {
    /// Adds the progress of another share of the job's subtasks.
    pub fn merge(&mut self, other: &JobProgress) {
        self.source_rows += other.source_rows;
        self.source_bytes += other.source_bytes;
        self.records_skipped += other.records_skipped;
        self.splits_finished += other.splits_finished;
        self.size_read += other.size_read;
        self.late_rows_dropped += other.late_rows_dropped;
        self.watermark = match (self.watermark, other.watermark) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// The share done, against the whole input.
    pub fn with_plan(mut self, plan: &InputPlan) -> Self {
        self.splits_total = plan.splits_total;
        self.done = (plan.unbounded_sources == 0).then(|| {
            if plan.size_total > 0 {
                (self.size_read as f64 / plan.size_total as f64).min(1.0)
            } else if plan.splits_total > 0 {
                (self.splits_finished as f64 / plan.splits_total as f64).min(1.0)
            } else {
                0.0
            }
        });
        self
    }
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

    /// The progress of these subtasks, without the share done (which needs
    /// the whole job's [`InputPlan`]).
    pub fn progress(&self) -> JobProgress {
        let mut progress = JobProgress::default();
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
        if let Ok(sources) = self.sources.lock() {
            for s in sources.iter() {
                progress.source_bytes += s.bytes_read.load(Ordering::Relaxed);
                progress.records_skipped += s.records_skipped.load(Ordering::Relaxed);
                progress.splits_finished += s.splits_finished.load(Ordering::Relaxed);
                progress.size_read += s.size_read.load(Ordering::Relaxed);
            }
        }
        progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_progress_merges_into_the_jobs() {
        let plan = InputPlan {
            splits_total: 4,
            size_total: 1000,
            unbounded_sources: 0,
        };
        let mut job = JobProgress {
            source_rows: 10,
            size_read: 300,
            splits_finished: 1,
            watermark: Some(Watermark(2000)),
            ..JobProgress::default()
        };
        job.merge(&JobProgress {
            source_rows: 5,
            size_read: 200,
            watermark: Some(Watermark(1000)),
            ..JobProgress::default()
        });
        job.merge(&JobProgress::default());
        let job = job.with_plan(&plan);
        assert_eq!(job.source_rows, 15);
        assert_eq!(job.splits_total, 4);
        assert_eq!(job.watermark, Some(Watermark(1000)));
        assert_eq!(job.done, Some(0.5));
        let endless = InputPlan {
            unbounded_sources: 1,
            ..plan
        };
        assert_eq!(job.with_plan(&endless).done, None);
    }
}
