//! Runs job graphs inside this process: the embedded cluster behind
//! `weir run` and `weir sql`.
//!
//! A job here is planned and deployed by the same functions a cluster's job
//! master and workers use ([`crate::deploy`]), with every subtask local. The
//! job's driver task owns the subtasks' `JoinSet`, so cancelling or dropping
//! the [`JobHandle`] stops every subtask; no task outlives its job. The first
//! subtask that fails fails the job, and the others are stopped.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weir_common::StreamBatch;

use crate::RuntimeError;
use crate::checkpoint::{
    CheckpointCoordinator, CheckpointSetup, CheckpointStorage, CoordinatorExit, RestoredCheckpoint,
    SavepointRequest,
};
use crate::deploy::{TaskDeployment, deploy, plan_splits, supervise};
use crate::exchange::CHANNEL_CAPACITY;
use crate::graph::{JobGraph, VertexOutput};
use crate::metrics::JobMetrics;
use crate::restart::Restarts;

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
    /// Between a failed attempt and the next (on a cluster).
    Restarting,
    Finished,
    Failed(String),
    Cancelled,
}

impl JobStatus {
    /// The status a job ends in, from how its run ended.
    pub fn from_result(result: &Result<(), RuntimeError>) -> Self {
        match result {
            Ok(()) => JobStatus::Finished,
            Err(RuntimeError::Cancelled) => JobStatus::Cancelled,
            Err(e) => JobStatus::Failed(e.to_string()),
        }
    }

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

/// Stops a job that runs elsewhere; called by [`JobHandle::cancel`].
pub type CancelHook = Arc<dyn Fn() + Send + Sync>;

/// A submitted job. Dropping the handle cancels the job, unless the job is
/// detached (an INSERT job on a remote cluster outlives its client).
pub struct JobHandle {
    pub id: JobId,
    pub name: String,
    status: watch::Receiver<JobStatus>,
    metrics: Arc<JobMetrics>,
    results: Option<mpsc::Receiver<StreamBatch>>,
    /// Runs the job (embedded) or follows it (remote); its result is the job's.
    driver: Option<JoinHandle<Result<(), RuntimeError>>>,
    detached: bool,
    cancel_hook: Option<CancelHook>,
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

/// The parts of a handle for a job that runs in another process.
#[derive(Debug)]
pub struct RemoteJob {
    pub id: JobId,
    pub name: String,
    pub status: watch::Receiver<JobStatus>,
    pub results: Option<mpsc::Receiver<StreamBatch>>,
    /// Follows the job to its end.
    pub driver: JoinHandle<Result<(), RuntimeError>>,
    /// Whether the job keeps running when the handle is dropped.
    pub detached: bool,
}

impl JobHandle {
    /// A handle on a job that runs in another process.
    pub fn remote(job: RemoteJob, cancel: CancelHook) -> Self {
        Self {
            id: job.id,
            name: job.name,
            status: job.status,
            metrics: Arc::new(JobMetrics::default()),
            results: job.results,
            driver: Some(job.driver),
            detached: job.detached,
            cancel_hook: Some(cancel),
        }
    }

    pub fn status(&self) -> JobStatus {
        self.status.borrow().clone()
    }

    /// Whether the job runs on when the handle is dropped.
    pub fn is_detached(&self) -> bool {
        self.detached
    }

    pub fn metrics(&self) -> &Arc<JobMetrics> {
        &self.metrics
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
        if let Some(hook) = &self.cancel_hook
            && !self.status().is_terminal()
        {
            hook();
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

/// A job the embedded cluster has run or runs.
#[derive(Debug)]
struct JobEntry {
    id: JobId,
    name: String,
    status: watch::Receiver<JobStatus>,
    abort: tokio::task::AbortHandle,
    /// Where savepoint requests go, for a job that takes checkpoints.
    savepoints: Option<SavepointChannel>,
}

#[derive(Debug, Clone)]
struct SavepointChannel {
    requests: mpsc::UnboundedSender<SavepointRequest>,
    /// 'execution.checkpointing.savepoint-dir'.
    default_dir: Option<String>,
}

/// The embedded cluster: runs jobs on this process's tokio runtime, with the
/// same task executor ([`deploy`](crate::deploy)) a cluster worker uses.
#[derive(Debug, Default)]
pub struct MiniCluster {
    jobs: Mutex<Vec<JobEntry>>,
}

impl MiniCluster {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates and starts a job; its subtasks run until it ends or is cancelled.
    pub fn submit(&self, graph: JobGraph) -> Result<JobHandle, RuntimeError> {
        graph.validate()?;
        let id = JobId(uuid::Uuid::new_v4().as_u128());
        let (status_tx, status_rx) = watch::channel(JobStatus::Created);
        let metrics = Arc::new(JobMetrics::default());
        let collects = graph
            .vertices
            .iter()
            .any(|v| matches!(v.output, VertexOutput::Collect));
        let (results_tx, results_rx) = if collects {
            let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let name = graph.name.clone();
        let (savepoints, savepoint_requests) = match &graph.checkpointing {
            Some(options) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let channel = SavepointChannel {
                    requests: tx,
                    default_dir: options.savepoint_dir.clone(),
                };
                (Some(channel), Some(rx))
            }
            None => (None, None),
        };
        let job_metrics = Arc::clone(&metrics);
        let driver = tokio::spawn(async move {
            let _ = status_tx.send(JobStatus::Running);
            tracing::info!(job = %id, name = %graph.name, vertices = graph.vertices.len(), "job started");
            let result = run_job(
                id,
                graph,
                job_metrics,
                results_tx,
                savepoint_requests,
                &status_tx,
            )
            .await;
            match &result {
                Ok(()) => tracing::info!(job = %id, "job finished"),
                Err(RuntimeError::Cancelled) => tracing::info!(job = %id, "job cancelled"),
                Err(e) => tracing::warn!(job = %id, error = %e, "job failed"),
            }
            let _ = status_tx.send(JobStatus::from_result(&result));
            result
        });
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.push(JobEntry {
                id,
                name: name.clone(),
                status: status_rx.clone(),
                abort: driver.abort_handle(),
                savepoints,
            });
        }
        Ok(JobHandle {
            id,
            name,
            status: status_rx,
            metrics,
            results: results_rx,
            driver: Some(driver),
            detached: false,
            cancel_hook: None,
        })
    }

    /// Every job submitted here, oldest first.
    pub fn jobs(&self) -> Vec<JobSummary> {
        self.jobs
            .lock()
            .map(|jobs| {
                jobs.iter()
                    .map(|j| {
                        let mut status = j.status.borrow().clone();
                        // An aborted driver never reports how it ended.
                        if !status.is_terminal() && j.abort.is_finished() {
                            status = JobStatus::Cancelled;
                        }
                        JobSummary {
                            id: j.id,
                            name: j.name.clone(),
                            status,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Takes a savepoint of a running job under `dir` (or the job's
    /// 'execution.checkpointing.savepoint-dir') and returns its path; with
    /// `stop`, the job is cancelled once its sinks have committed the
    /// savepoint's data (Flink's stop-with-savepoint).
    pub async fn savepoint(
        &self,
        id: JobId,
        dir: Option<String>,
        stop: bool,
    ) -> Result<String, RuntimeError> {
        let (channel, status, abort) = {
            let jobs = self
                .jobs
                .lock()
                .map_err(|_| RuntimeError::Internal("the job list is poisoned".into()))?;
            let job = jobs
                .iter()
                .find(|j| j.id == id)
                .ok_or_else(|| RuntimeError::Failed(format!("no job with id '{id}'")))?;
            (
                job.savepoints.clone(),
                job.status.clone(),
                job.abort.clone(),
            )
        };
        let status = status.borrow().clone();
        if status.is_terminal() {
            return Err(RuntimeError::Failed(format!(
                "the job '{id}' is not running ({status})"
            )));
        }
        let channel = channel.ok_or_else(|| {
            RuntimeError::Checkpoint(format!(
                "the job '{id}' takes no checkpoints, so it cannot take a savepoint; set 'execution.checkpointing.interval' before submitting it"
            ))
        })?;
        let dir = dir.or(channel.default_dir).ok_or_else(|| {
            RuntimeError::Checkpoint(
                "no savepoint directory: set 'execution.checkpointing.savepoint-dir' (or 'state.savepoints.dir')"
                    .into(),
            )
        })?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        channel
            .requests
            .send(SavepointRequest {
                dir,
                job: id.to_string(),
                stop,
                reply,
            })
            .map_err(|_| RuntimeError::Failed(format!("the job '{id}' has ended")))?;
        let path = answer.await.map_err(|_| {
            RuntimeError::Failed(format!(
                "the job '{id}' ended before its savepoint completed"
            ))
        })??;
        if stop {
            abort.abort();
            // As Flink's stop returns once the job has stopped.
            while !abort.is_finished() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        Ok(path)
    }

    /// Cancels a job; false if no job has this id.
    pub fn cancel(&self, id: JobId) -> bool {
        let Ok(jobs) = self.jobs.lock() else {
            return false;
        };
        match jobs.iter().find(|j| j.id == id) {
            Some(job) => {
                job.abort.abort();
                true
            }
            None => false,
        }
    }
}

/// Plans the job's splits and runs all of its subtasks here. A job that
/// takes checkpoints first looks for its latest completed checkpoint (left
/// by an earlier run of the same job that did not finish) and restarts
/// from it; its checkpoint coordinator runs alongside the subtasks. When
/// such a job fails, it runs again from its latest checkpoint as its
/// 'restart-strategy.*' allows (a job that returns rows to a client does
/// not: the client has seen rows a rerun would send again).
async fn run_job(
    id: JobId,
    graph: JobGraph,
    metrics: Arc<JobMetrics>,
    results: Option<mpsc::Sender<StreamBatch>>,
    savepoints: Option<mpsc::UnboundedReceiver<SavepointRequest>>,
    status: &watch::Sender<JobStatus>,
) -> Result<(), RuntimeError> {
    let (Some(options), Some(mut savepoints)) = (graph.checkpointing.clone(), savepoints) else {
        let splits = plan_splits(&graph, &metrics, None).await?;
        let deployed = deploy_here(id, &graph, splits, metrics, results, None).await?;
        return supervise(deployed.tasks).await;
    };
    let storage = CheckpointStorage::open(options.dir.as_deref(), &graph)?;
    let mut restarts = Restarts::new(options.restart.clone());
    loop {
        let started = Instant::now();
        let attempt = Attempt {
            id,
            graph: &graph,
            options: &options,
            storage: &storage,
            metrics: Arc::clone(&metrics),
            results: results.clone(),
        };
        let (result, returned) = attempt.run(savepoints).await;
        let error = match result {
            Ok(()) => {
                // As in Flink, a finished job's checkpoints are deleted; a
                // failed or cancelled job keeps them to restart from.
                storage.discard_all().await?;
                return Ok(());
            }
            Err(AttemptError::Setup(e)) => return Err(e),
            Err(AttemptError::Run(e)) if !e.is_recoverable() => return Err(e),
            Err(AttemptError::Run(e)) => e,
        };
        let (None, Some(returned)) = (&results, returned) else {
            return Err(error);
        };
        savepoints = returned;
        let Some(delay) = restarts.after_failure(started.elapsed(), Instant::now()) else {
            return Err(error);
        };
        tracing::warn!(job = %id, error = %error, ?delay, "job failed; restarting from its latest checkpoint");
        let _ = status.send(JobStatus::Restarting);
        tokio::time::sleep(delay).await;
        let _ = status.send(JobStatus::Running);
        metrics.restart();
    }
}

/// How an attempt of a checkpointing job failed.
enum AttemptError {
    /// The checkpoint or savepoint to restore cannot be read or does not
    /// fit the job: running again would fail again.
    Setup(RuntimeError),
    /// Starting or running its subtasks failed.
    Run(RuntimeError),
}

/// One run of a checkpointing job, from its latest checkpoint (or, without
/// one, from its savepoint).
struct Attempt<'a> {
    id: JobId,
    graph: &'a JobGraph,
    options: &'a weir_common::CheckpointingOptions,
    storage: &'a CheckpointStorage,
    metrics: Arc<JobMetrics>,
    results: Option<mpsc::Sender<StreamBatch>>,
}

impl Attempt<'_> {
    /// The attempt's end, and the savepoint requests back for the next
    /// attempt once its coordinator has stopped.
    async fn run(
        self,
        savepoints: mpsc::UnboundedReceiver<SavepointRequest>,
    ) -> (
        Result<(), AttemptError>,
        Option<mpsc::UnboundedReceiver<SavepointRequest>>,
    ) {
        let started = Instant::now();
        let (coordinator, deployed) = match self.deploy(savepoints).await {
            Ok(started) => started,
            Err((e, savepoints)) => return (Err(e), Some(savepoints)),
        };
        // With its state restored and its subtasks started.
        tracing::info!(job = %self.id, setup = ?started.elapsed(), "job running");
        let coordinated = match coordinator.spawn() {
            Ok(coordinated) => coordinated,
            Err(e) => return (Err(AttemptError::Setup(e)), None),
        };
        let supervised = supervise(deployed.tasks);
        tokio::pin!(supervised, coordinated);
        let mut exit = None;
        let result = tokio::select! {
            result = &mut supervised => result,
            done = &mut coordinated => match done {
                // Dropping the subtasks' JoinSet stops them.
                Ok(CoordinatorExit { result: Err(e), savepoints }) => {
                    exit = Some(savepoints);
                    Err(e)
                }
                Ok(CoordinatorExit { result: Ok(()), savepoints }) => {
                    exit = Some(savepoints);
                    supervised.await
                }
                Err(_) => supervised.await,
            },
        };
        if exit.is_none() && result.is_err() {
            // The subtasks are gone, so the coordinator stops too.
            exit = coordinated.await.ok().map(|done| done.savepoints);
        }
        (result.map_err(AttemptError::Run), exit)
    }

    async fn deploy(
        &self,
        savepoints: mpsc::UnboundedReceiver<SavepointRequest>,
    ) -> Result<
        (CheckpointCoordinator, crate::deploy::DeployedTasks),
        (AttemptError, mpsc::UnboundedReceiver<SavepointRequest>),
    > {
        let restored = match self.restored().await {
            Ok(restored) => restored.map(Arc::new),
            Err(e) => return Err((AttemptError::Setup(e), savepoints)),
        };
        let (coordinator, channels) = CheckpointCoordinator::new(
            self.options.clone(),
            self.storage.clone(),
            self.graph.clone(),
            restored.as_ref().map_or(0, |r| r.checkpoint),
            self.metrics.checkpoint_history(),
            savepoints,
        );
        let deployed = async {
            let splits = plan_splits(self.graph, &self.metrics, restored.as_deref()).await?;
            let setup = CheckpointSetup { channels, restored };
            deploy_here(
                self.id,
                self.graph,
                splits,
                Arc::clone(&self.metrics),
                self.results.clone(),
                Some(setup),
            )
            .await
        }
        .await;
        match deployed {
            Ok(deployed) => Ok((coordinator, deployed)),
            // A source or sink that cannot start (a broker that is down)
            // may start on the next attempt.
            Err(e) => Err((AttemptError::Run(e), coordinator.into_savepoints())),
        }
    }

    /// The job's own latest checkpoint, left by an earlier attempt or run
    /// of it, is newer than the savepoint it started from.
    async fn restored(&self) -> Result<Option<RestoredCheckpoint>, RuntimeError> {
        let restored = self.storage.latest(self.graph).await?;
        self.storage.clean_incomplete().await?;
        if let Some(restored) = restored {
            tracing::info!(job = %self.id, checkpoint = restored.checkpoint, dir = self.storage.display(), "restoring from checkpoint");
            return Ok(Some(restored));
        }
        match &self.options.restore {
            Some(savepoint) => {
                let from = CheckpointStorage::open_savepoint(&savepoint.path)?;
                let restored = from
                    .read_savepoint(self.graph, savepoint.ignore_unclaimed)
                    .await?;
                tracing::info!(job = %self.id, path = %savepoint.path, "restoring from savepoint");
                Ok(Some(restored))
            }
            _ => Ok(None),
        }
    }
}

async fn deploy_here(
    id: JobId,
    graph: &JobGraph,
    splits: crate::deploy::SplitAssignment,
    metrics: Arc<JobMetrics>,
    results: Option<mpsc::Sender<StreamBatch>>,
    checkpoint: Option<CheckpointSetup>,
) -> Result<crate::deploy::DeployedTasks, RuntimeError> {
    let deployed = deploy(TaskDeployment {
        job: id,
        graph,
        splits,
        runs_here: &|_, _| true,
        metrics,
        results,
        checkpoint,
    })
    .await?;
    if !deployed.outbound.is_empty() || !deployed.inbound.is_empty() {
        return Err(RuntimeError::Internal(
            "a job deployed in one process has channels to another".into(),
        ));
    }
    Ok(deployed)
}
