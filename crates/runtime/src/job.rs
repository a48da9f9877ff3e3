//! A job as its client holds it: its id, status, progress and rows.
//!
//! Jobs run on a cluster's workers, in this process (the embedded cluster
//! behind `weir run` and `weir sql`) or in others; either way the client
//! follows a job through a [`JobHandle`]. The handle's driver task follows
//! the job to its end, so awaiting the handle awaits the job, and cancelling
//! or dropping it (unless the job is detached) cancels the job.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weir_common::StreamBatch;

use crate::RuntimeError;
use crate::metrics::JobProgress;

/// Identifies a job, printed as 32 hex digits as Flink prints job ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u128);

impl std::str::FromStr for JobId {
    type Err = std::num::ParseIntError;

    /// Parses the 32 hex digits a job id prints as.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u128::from_str_radix(s.trim(), 16).map(JobId)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Created,
    Running,
    /// Between a failed attempt and the next.
    Restarting,
    Finished,
    Failed(String),
    Cancelled,
}

impl JobStatus {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Failed(_) | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobStatus::Created => f.write_str("CREATED"),
            JobStatus::Running => f.write_str("RUNNING"),
            JobStatus::Restarting => f.write_str("RESTARTING"),
            JobStatus::Finished => f.write_str("FINISHED"),
            JobStatus::Failed(_) => f.write_str("FAILED"),
            JobStatus::Cancelled => f.write_str("CANCELED"),
        }
    }
}

/// Stops a job on its cluster; called by [`JobHandle::cancel`].
pub type CancelHook = Arc<dyn Fn() + Send + Sync>;

/// A submitted job. Dropping the handle cancels the job, unless the job is
/// detached (an INSERT job on a remote cluster outlives its client).
pub struct JobHandle {
    pub id: JobId,
    pub name: String,
    status: watch::Receiver<JobStatus>,
    progress: watch::Receiver<JobProgress>,
    results: Option<mpsc::Receiver<StreamBatch>>,
    /// Follows the job; its result is the job's.
    driver: Option<JoinHandle<Result<(), RuntimeError>>>,
    detached: bool,
    cancel: CancelHook,
}

impl fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("status", &*self.status.borrow())
            .field("detached", &self.detached)
            .finish_non_exhaustive()
    }
}

/// The parts of a handle, as a cluster client makes them.
#[derive(Debug)]
pub struct SubmittedJob {
    pub id: JobId,
    pub name: String,
    pub status: watch::Receiver<JobStatus>,
    /// The job's progress as its cluster reports it.
    pub progress: watch::Receiver<JobProgress>,
    pub results: Option<mpsc::Receiver<StreamBatch>>,
    /// Follows the job to its end.
    pub driver: JoinHandle<Result<(), RuntimeError>>,
    /// Whether the job keeps running when the handle is dropped.
    pub detached: bool,
}

impl JobHandle {
    pub fn new(job: SubmittedJob, cancel: CancelHook) -> Self {
        Self {
            id: job.id,
            name: job.name,
            status: job.status,
            progress: job.progress,
            results: job.results,
            driver: Some(job.driver),
            detached: job.detached,
            cancel,
        }
    }

    pub fn status(&self) -> JobStatus {
        self.status.borrow().clone()
    }

    /// Whether the job runs on when the handle is dropped.
    pub fn is_detached(&self) -> bool {
        self.detached
    }

    /// Rows read, watermark and share done so far, as last reported.
    pub fn progress(&self) -> JobProgress {
        *self.progress.borrow()
    }

    /// The rows of a query that ends in `Collect`; taken once.
    pub fn take_results(&mut self) -> Option<mpsc::Receiver<StreamBatch>> {
        self.results.take()
    }

    /// Waits for the job to end; the error of the subtask that failed it.
    pub async fn wait(&mut self) -> Result<(), RuntimeError> {
        let Some(driver) = self.driver.take() else {
            return match self.status() {
                JobStatus::Failed(message) => Err(RuntimeError::Failed(message)),
                JobStatus::Cancelled => Err(RuntimeError::Cancelled),
                _ => Ok(()),
            };
        };
        match driver.await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(RuntimeError::Cancelled),
            Err(e) => Err(RuntimeError::Internal(format!("job driver failed: {e}"))),
        }
    }

    /// Stops every subtask of the job.
    pub fn cancel(&mut self) {
        if !self.status().is_terminal() {
            (self.cancel)();
        }
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if self.detached {
            if let Some(driver) = &self.driver {
                driver.abort();
            }
        } else {
            self.cancel();
        }
    }
}

/// A job as SHOW JOBS lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub id: JobId,
    pub name: String,
    pub status: JobStatus,
}
