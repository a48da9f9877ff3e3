//! A client of a coordinator: the [`Dispatcher`] behind `weir sql
//! --coordinator` and `weir run --coordinator`, and the calls behind `weir
//! jobs`.
//!
//! Submitting sends the statement's program; the handle that comes back
//! follows the job's status and progress with `WatchJob` and, for a query,
//! streams its rows with `FetchResults`. An INSERT job on a remote cluster
//! is detached: it runs on when the client goes. A query, and every job of
//! the embedded cluster, is cancelled when its handle is dropped.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use weir_engine::{Dispatcher, EngineError, JobKind, JobProgram, PlannedJob};
use weir_runtime::{
    JobHandle, JobId, JobProgress, JobStatus, JobSummary, Message, RuntimeError, SubmittedJob,
};

use crate::exchange::decode;
use crate::progress::progress_from_proto;
use crate::proto::coordinator_client::CoordinatorClient;
use crate::worker::{Authed, coordinator_client, http_address, program_to_proto};
use crate::{ClusterError, proto};

/// A connection to a coordinator (made on first use).
#[derive(Debug, Clone)]
pub struct ClusterClient {
    address: String,
    client: CoordinatorClient<Authed>,
    /// Whether INSERT jobs end with their handles too (the embedded cluster).
    attached: bool,
}

/// A job's status from its reported name and message.
pub fn job_status(info: &proto::JobInfo) -> JobStatus {
    match info.status.as_str() {
        "RUNNING" => JobStatus::Running,
        "RESTARTING" => JobStatus::Restarting,
        "FINISHED" => JobStatus::Finished,
        "FAILED" => JobStatus::Failed(info.message.clone()),
        "CANCELED" => JobStatus::Cancelled,
        _ => JobStatus::Created,
    }
}

impl ClusterClient {
    pub fn new(address: &str, token: Option<&str>) -> Result<Self, ClusterError> {
        let address = http_address(address);
        Ok(Self {
            client: coordinator_client(&address, token)?,
            address,
            attached: false,
        })
    }

    /// A client whose INSERT jobs are cancelled when their handles are
    /// dropped, as a query's are.
    pub(crate) fn attached(self) -> Self {
        Self {
            attached: true,
            ..self
        }
    }

    fn unreachable(&self, status: tonic::Status) -> ClusterError {
        match status.code() {
            tonic::Code::Unavailable => ClusterError::Connect {
                address: self.address.clone(),
                message: status.message().to_string(),
            },
            _ => ClusterError::Rpc(status.message().to_string()),
        }
    }

    pub async fn list(&self) -> Result<Vec<proto::JobInfo>, ClusterError> {
        let response = self
            .client
            .clone()
            .list_jobs(proto::Empty {})
            .await
            .map_err(|s| self.unreachable(s))?;
        Ok(response.into_inner().jobs)
    }

    pub async fn status(&self, job: &str) -> Result<proto::JobInfo, ClusterError> {
        let request = proto::JobRequest {
            job_id: job.to_string(),
        };
        let response = self
            .client
            .clone()
            .get_job(request)
            .await
            .map_err(|s| self.unreachable(s))?;
        Ok(response.into_inner())
    }

    pub async fn cancel(&self, job: &str) -> Result<proto::JobInfo, ClusterError> {
        let request = proto::JobRequest {
            job_id: job.to_string(),
        };
        let response = self
            .client
            .clone()
            .cancel_job(request)
            .await
            .map_err(|s| self.unreachable(s))?;
        Ok(response.into_inner())
    }

    /// Takes a savepoint of a running job under `dir` (or the job's
    /// 'execution.checkpointing.savepoint-dir') and returns its path; with
    /// `stop`, the job is cancelled once its sinks have committed it.
    pub async fn savepoint(
        &self,
        job: &str,
        dir: Option<String>,
        stop: bool,
    ) -> Result<String, ClusterError> {
        let request = proto::TriggerSavepointRequest {
            job_id: job.to_string(),
            dir,
            stop,
        };
        let response = self
            .client
            .clone()
            .trigger_savepoint(request)
            .await
            .map_err(|s| self.unreachable(s))?;
        Ok(response.into_inner().path)
    }

    /// Follows a job until it ends, publishing its status and progress;
    /// its outcome.
    async fn follow(
        mut client: CoordinatorClient<Authed>,
        job: JobId,
        status: watch::Sender<JobStatus>,
        progress: watch::Sender<JobProgress>,
    ) -> Result<(), RuntimeError> {
        let lost = |s: tonic::Status| {
            RuntimeError::Failed(format!("lost track of job {job}: {}", s.message()))
        };
        let mut updates = client
            .watch_job(proto::JobRequest {
                job_id: job.to_string(),
            })
            .await
            .map_err(lost)?
            .into_inner();
        while let Some(info) = updates.message().await.map_err(lost)? {
            if let Some(reported) = &info.progress {
                let _ = progress.send(progress_from_proto(reported));
            }
            let current = job_status(&info);
            let _ = status.send(current.clone());
            match current {
                JobStatus::Finished => return Ok(()),
                JobStatus::Cancelled => return Err(RuntimeError::Cancelled),
                JobStatus::Failed(message) => return Err(RuntimeError::Failed(message)),
                _ => {}
            }
        }
        Err(RuntimeError::Failed(format!(
            "the coordinator stopped reporting job {job}"
        )))
    }

    /// Moves a query's rows from the coordinator into `rows`.
    async fn fetch(
        mut client: CoordinatorClient<Authed>,
        job: JobId,
        rows: mpsc::Sender<weir_common::StreamBatch>,
    ) -> Result<(), RuntimeError> {
        let failed = |m: String| RuntimeError::Failed(format!("fetching the rows of {job}: {m}"));
        let mut frames = client
            .fetch_results(proto::JobRequest {
                job_id: job.to_string(),
            })
            .await
            .map_err(|s| failed(s.message().to_string()))?
            .into_inner();
        while let Some(frame) = frames
            .message()
            .await
            .map_err(|s| failed(s.message().to_string()))?
        {
            if let Message::Batch(batch) = decode(frame).map_err(|e| failed(e.to_string()))?
                && rows.send(batch).await.is_err()
            {
                return Ok(());
            }
        }
        Ok(())
    }
}

impl From<ClusterError> for EngineError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Engine(e) => e,
            other => EngineError::Cluster(other.to_string()),
        }
    }
}

#[async_trait]
impl Dispatcher for ClusterClient {
    async fn submit(&self, job: PlannedJob, program: JobProgram) -> Result<JobHandle, EngineError> {
        let name = program.name.clone();
        let response = self
            .client
            .clone()
            .submit_job(proto::SubmitJobRequest {
                program: Some(program_to_proto(&program)),
            })
            .await
            .map_err(|s| self.unreachable(s))?
            .into_inner();
        let id: JobId = response.job_id.parse().map_err(|_| {
            EngineError::Cluster(format!(
                "the coordinator sent a bad job id '{}'",
                response.job_id
            ))
        })?;
        let (status_tx, status_rx) = watch::channel(JobStatus::Created);
        let (progress_tx, progress_rx) = watch::channel(JobProgress::default());
        let query = job.kind == JobKind::Query;
        let follow = Self::follow(self.client.clone(), id, status_tx, progress_tx);
        let (results, driver) = if query {
            let (tx, rx) = mpsc::channel(weir_runtime::exchange::CHANNEL_CAPACITY);
            let fetch = Self::fetch(self.client.clone(), id, tx);
            let driver = tokio::spawn(async move {
                let (fetched, followed) = tokio::join!(fetch, follow);
                followed.and(fetched)
            });
            (Some(rx), driver)
        } else {
            (None, tokio::spawn(follow))
        };
        let canceller = self.clone();
        let cancel = Arc::new(move || {
            let client = canceller.clone();
            let job = id.to_string();
            // The call outlives the handle by one round trip at most.
            tokio::spawn(async move {
                if let Err(e) = client.cancel(&job).await {
                    tracing::warn!(%job, error = %e, "cannot cancel the job");
                }
            });
        });
        Ok(JobHandle::new(
            SubmittedJob {
                id,
                name,
                status: status_rx,
                progress: progress_rx,
                results,
                driver,
                detached: !query && !self.attached,
            },
            cancel,
        ))
    }

    async fn list_jobs(&self) -> Result<Vec<JobSummary>, EngineError> {
        let jobs = self.list().await?;
        Ok(jobs
            .into_iter()
            .filter_map(|info| {
                Some(JobSummary {
                    id: info.job_id.parse().ok()?,
                    status: job_status(&info),
                    name: info.name,
                })
            })
            .collect())
    }

    async fn cancel_job(&self, id: JobId) -> Result<bool, EngineError> {
        match self.cancel(&id.to_string()).await {
            Ok(_) => Ok(true),
            Err(ClusterError::Rpc(message)) if message.starts_with("no job with id") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn stop_with_savepoint(&self, id: JobId) -> Result<String, EngineError> {
        Ok(self.savepoint(&id.to_string(), None, true).await?)
    }
}
