//! The embedded cluster behind `weir run` and `weir sql` without
//! `--coordinator`: a [`Coordinator`] and one [`Worker`] in this process, as
//! Flink's MiniCluster runs a JobManager and a TaskManager in one JVM.
//!
//! They are the parts a cluster of processes runs, talking over the same
//! RPC: a job goes through the same dispatcher, job master, scheduling,
//! failover and checkpoint coordinator wherever it runs. Both listen on
//! loopback ports the system picks and accept only calls that carry a
//! token made for this process. Every subtask lands on the one worker, so
//! the channels between subtasks stay in memory, and a job's checkpoints
//! may stay in memory when it names no directory. Jobs are attached to
//! their client: dropping a handle cancels its job, INSERT jobs included,
//! and dropping the cluster stops everything it runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinSet;
use weir_engine::{Dispatcher, EngineError, JobProgram, PlannedJob};
use weir_runtime::{JobHandle, JobId, JobSummary};

use crate::coordinator::CoordinatorOptions;
use crate::worker::WorkerOptions;
use crate::{ClusterClient, ClusterConfig, ClusterError, Coordinator, Worker};

/// The embedded worker's slots: as many as jobs ask for (a job takes as
/// many as its largest parallelism).
const SLOTS: u32 = 1 << 16;

/// How often the worker reports metrics and progress: a progress display
/// refreshes about this often.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(200);

/// A coordinator and a worker running in this process.
#[derive(Debug)]
pub struct EmbeddedCluster {
    client: ClusterClient,
    /// The coordinator's and the worker's servers, aborted when the set is
    /// dropped; they stop every job master and subtask as they go.
    _servers: JoinSet<()>,
}

impl EmbeddedCluster {
    /// Starts the coordinator and the worker with `config`'s options
    /// (restart strategy, slot request timeout); must run on the tokio
    /// runtime the cluster is to run on.
    pub async fn start(config: ClusterConfig) -> Result<Self, ClusterError> {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let config = ClusterConfig {
            token: Some(uuid::Uuid::new_v4().simple().to_string()),
            heartbeat_interval: HEARTBEAT_INTERVAL,
            // The worker lives and dies with the coordinator: it is never
            // lost, however busy the process is.
            heartbeat_timeout: Duration::from_secs(24 * 60 * 60),
            in_process: true,
            ..config
        };
        let coordinator = Coordinator::bind(CoordinatorOptions {
            listen: loopback,
            rest_listen: None,
            config: config.clone(),
        })
        .await?;
        let address = coordinator
            .rpc_addr()
            .ok_or_else(|| ClusterError::Rpc("the embedded coordinator has no address".into()))?
            .to_string();
        let worker = Worker::bind(WorkerOptions {
            coordinator: address.clone(),
            listen: loopback,
            advertise: None,
            slots: SLOTS,
            config: config.clone(),
        })
        .await?;
        let mut servers = JoinSet::new();
        servers.spawn(async move {
            if let Err(e) = coordinator.run().await {
                tracing::error!(error = %e, "the embedded coordinator stopped");
            }
        });
        servers.spawn(async move {
            if let Err(e) = worker.run().await {
                tracing::error!(error = %e, "the embedded worker stopped");
            }
        });
        let client = ClusterClient::new(&address, config.token.as_deref())?.attached();
        Ok(Self {
            client,
            _servers: servers,
        })
    }
}

#[async_trait]
impl Dispatcher for EmbeddedCluster {
    async fn submit(&self, job: PlannedJob, program: JobProgram) -> Result<JobHandle, EngineError> {
        self.client.submit(job, program).await
    }

    async fn list_jobs(&self) -> Result<Vec<JobSummary>, EngineError> {
        self.client.list_jobs().await
    }

    async fn cancel_job(&self, id: JobId) -> Result<bool, EngineError> {
        self.client.cancel_job(id).await
    }

    async fn stop_with_savepoint(&self, id: JobId) -> Result<String, EngineError> {
        self.client.stop_with_savepoint(id).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use weir_engine::{Session, StatementResult};
    use weir_runtime::JobStatus;

    use super::*;

    /// An endless query: its rows and progress reach the client through
    /// the coordinator, and the job goes when the cluster does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_reports_progress_and_ends_with_its_cluster() {
        let cluster = EmbeddedCluster::start(ClusterConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let cluster = Arc::new(cluster);
        let mut session = Session::with_dispatcher(Arc::clone(&cluster) as Arc<dyn Dispatcher>)
            .unwrap_or_else(|e| panic!("{e}"));
        let script = "CREATE TABLE ticks (id BIGINT) \
                      WITH ('connector' = 'datagen', 'rows-per-second' = '1000');
                      SELECT id FROM ticks";
        let mut results = session
            .execute_script(script)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(StatementResult::Query(mut query)) = results.pop() else {
            panic!("the SELECT is a query");
        };
        let first = query.next().await;
        assert!(matches!(first, Some(Ok(_))), "{first:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while query.progress().source_rows == 0 {
            assert!(Instant::now() < deadline, "no progress reported");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            query.progress().done,
            None,
            "an endless input has no share done"
        );
        let jobs = cluster.list_jobs().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].status, JobStatus::Running);

        drop(session);
        drop(cluster);
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(Ok(_)) = query.next().await {
            assert!(Instant::now() < deadline, "the query outlived its cluster");
        }
    }
}
