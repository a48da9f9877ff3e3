//! The coordinator (Flink's JobManager): the dispatcher that accepts jobs
//! and answers for them, the resource manager that tracks workers and their
//! slots, and one job master per job.
//!
//! A job master plans the job's program once, and then for each attempt:
//! 1. It waits for enough free slots, and fails the job after
//!    'slot.request.timeout'. Slot sharing is as in Flink: a job needs as
//!    many slots as its largest parallelism, and slot i runs subtask i of
//!    every vertex. Slots are taken round-robin across workers, so a job
//!    spreads over the cluster.
//! 2. It plans the sources' splits and deploys every worker's share.
//! 3. It waits for every worker to report its share ended.
//!
//! A failed share, or a worker lost to missed heartbeats, cancels the rest
//! of the attempt, and the job restarts by 'restart-strategy.type'. A job
//! that takes checkpoints has its checkpoint coordinator here, one per
//! attempt ([`crate::checkpoints`]), and an attempt restores the latest
//! completed checkpoint; a job without starts its sources from the start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, WatchStream};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use weir_common::StreamBatch;
use weir_engine::{JobKind, JobProgram, plan_program};
use weir_runtime::checkpoint::{
    CheckpointCoordinator, CheckpointStats, CheckpointStorage, CoordinatorExit, RestoredCheckpoint,
    StateRead,
};
use weir_runtime::deploy::plan_splits;
use weir_runtime::restart::Restarts;
use weir_runtime::{InputPlan, JobGraph, JobId, JobProgress, JobStatus, Message};

use crate::auth::CallCheck;
use crate::checkpoints::{
    AttemptCheckpoints, EventStream, Restore, events, report_from_proto, restored_state,
};
use crate::config::ClusterConfig;
use crate::exchange::{CONNECTION_WINDOW, STREAM_WINDOW, decode, encode};
use crate::progress::{progress_from_proto, progress_to_proto};
use crate::proto::coordinator_server::{Coordinator as CoordinatorService, CoordinatorServer};
use crate::proto::frame::Kind;
use crate::worker::{
    MAX_MESSAGE, program_from_proto, program_to_proto, splits_to_proto, worker_client,
};
use crate::{ClusterError, proto};

/// How to start a coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorOptions {
    /// Where to serve RPC (port 0: any free port).
    pub listen: SocketAddr,
    /// Where to serve the REST API; `None` for no REST API.
    pub rest_listen: Option<SocketAddr>,
    pub config: ClusterConfig,
}

/// A worker as the resource manager knows it.
#[derive(Debug, Clone)]
pub(crate) struct WorkerEntry {
    pub(crate) id: String,
    pub(crate) address: String,
    pub(crate) slots: u32,
    pub(crate) last_heartbeat: Instant,
    /// The latest metrics of the worker's operators.
    pub(crate) metrics: Vec<proto::OperatorMetrics>,
}

/// Workers and the slots jobs hold on them.
#[derive(Debug, Default)]
pub(crate) struct Resources {
    pub(crate) workers: BTreeMap<String, WorkerEntry>,
    /// The worker of each slot a job's current attempt holds.
    pub(crate) allocations: BTreeMap<JobId, Vec<String>>,
}

impl Resources {
    pub(crate) fn used(&self, worker: &str) -> u32 {
        let used = self
            .allocations
            .values()
            .flatten()
            .filter(|w| w.as_str() == worker)
            .count();
        u32::try_from(used).unwrap_or(u32::MAX)
    }

    pub(crate) fn free(&self) -> u32 {
        self.workers
            .values()
            .map(|w| w.slots.saturating_sub(self.used(&w.id)))
            .sum()
    }

    /// Takes `needed` slots round-robin over the workers with free ones.
    fn allocate(&mut self, job: JobId, needed: usize) -> Option<Vec<WorkerEntry>> {
        let mut free: Vec<(WorkerEntry, u32)> = self
            .workers
            .values()
            .map(|w| (w.clone(), w.slots.saturating_sub(self.used(&w.id))))
            .filter(|(_, free)| *free > 0)
            .collect();
        let mut placement = Vec::with_capacity(needed);
        while placement.len() < needed {
            let before = placement.len();
            for (worker, left) in &mut free {
                if *left > 0 && placement.len() < needed {
                    *left -= 1;
                    placement.push(worker.clone());
                }
            }
            if placement.len() == before {
                return None;
            }
        }
        self.allocations
            .insert(job, placement.iter().map(|w| w.id.clone()).collect());
        Some(placement)
    }
}

/// What reaches a job master.
#[derive(Debug)]
enum JobEvent {
    Report(proto::TasksReport),
    WorkerLost { id: String, why: &'static str },
    Cancel,
}

/// A vertex of a job, for the REST API.
#[derive(Debug, Clone)]
pub(crate) struct VertexSummary {
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) parallelism: usize,
    /// `(upstream vertex, partitioning)` of each input edge.
    pub(crate) inputs: Vec<(usize, String)>,
}

/// What a job's running attempt has read: its whole input, and the latest
/// progress of each worker's share.
#[derive(Debug, Default)]
struct AttemptProgress {
    attempt: u32,
    input: InputPlan,
    shares: BTreeMap<String, JobProgress>,
}

/// A job the dispatcher accepted.
#[derive(Debug)]
pub(crate) struct JobRecord {
    pub(crate) id: JobId,
    pub(crate) vertices: Vec<VertexSummary>,
    pub(crate) info: watch::Sender<proto::JobInfo>,
    events: mpsc::UnboundedSender<JobEvent>,
    /// A query's rows: workers' streams send here, one client reads.
    results_tx: Mutex<Option<mpsc::Sender<StreamBatch>>>,
    results_rx: Mutex<Option<mpsc::Receiver<StreamBatch>>>,
    /// The checkpoints of the running attempt, for the workers' relays.
    checkpoints: Mutex<Option<AttemptCheckpoints>>,
    /// Every checkpoint of the job, over all attempts, oldest first.
    pub(crate) checkpoint_history: Arc<Mutex<Vec<CheckpointStats>>>,
    /// What the running attempt has read, for its progress.
    progress: Mutex<AttemptProgress>,
    /// The job master's task, stopped with the coordinator.
    master: Mutex<Option<tokio::task::AbortHandle>>,
}

impl JobRecord {
    pub(crate) fn snapshot(&self) -> proto::JobInfo {
        self.info.borrow().clone()
    }

    fn update(&self, change: impl FnOnce(&mut proto::JobInfo)) {
        self.info.send_modify(change);
    }

    /// Takes the latest progress of a worker's share of the job, and
    /// publishes the job's.
    fn record_progress(&self, worker: &str, share: &proto::JobProgress) {
        let Ok(mut attempt) = self.progress.lock() else {
            return;
        };
        // A share of an earlier attempt, reported late, is of no use.
        if share.attempt != attempt.attempt {
            return;
        }
        attempt
            .shares
            .insert(worker.to_string(), progress_from_proto(share));
        let mut total = JobProgress::default();
        for share in attempt.shares.values() {
            total.merge(share);
        }
        let progress =
            progress_to_proto(self.id, attempt.attempt, &total.with_plan(&attempt.input));
        self.info.send_if_modified(|info| {
            let changed = info.progress.as_ref() != Some(&progress);
            info.progress = Some(progress);
            changed
        });
    }
}

pub(crate) fn is_terminal(status: &str) -> bool {
    matches!(status, "FINISHED" | "FAILED" | "CANCELED")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The coordinator's state, shared by its RPC and REST services.
#[derive(Debug)]
pub(crate) struct CoordinatorState {
    pub(crate) config: ClusterConfig,
    pub(crate) resources: Mutex<Resources>,
    slots_changed: Notify,
    pub(crate) jobs: Mutex<Vec<Arc<JobRecord>>>,
}

impl CoordinatorState {
    pub(crate) fn job(&self, id: &str) -> Result<Arc<JobRecord>, Status> {
        let parsed: Option<JobId> = id.parse().ok();
        self.jobs
            .lock()
            .ok()
            .and_then(|jobs| jobs.iter().find(|j| Some(j.id) == parsed).cloned())
            .ok_or_else(|| Status::not_found(format!("no job with id '{id}'")))
    }

    pub(crate) fn job_list(&self) -> Vec<Arc<JobRecord>> {
        self.jobs.lock().map(|j| j.clone()).unwrap_or_default()
    }

    /// Stops every job master: the coordinator is going away. Its jobs
    /// fail, so clients following them learn it, and the rows of a query
    /// end.
    fn stop_job_masters(&self) {
        for job in self.job_list() {
            if let Some(master) = job.master.lock().ok().and_then(|mut m| m.take()) {
                master.abort();
            }
            if let Ok(mut results) = job.results_tx.lock() {
                results.take();
            }
            job.update(|info| {
                if !is_terminal(&info.status) {
                    info.status = "FAILED".to_string();
                    info.message = "the coordinator stopped".to_string();
                    info.end_time_ms = now_ms();
                }
            });
        }
    }

    fn release(&self, job: JobId) {
        if let Ok(mut resources) = self.resources.lock() {
            resources.allocations.remove(&job);
        }
        self.slots_changed.notify_waiters();
    }

    /// Declares workers lost whose last heartbeat is older than 'heartbeat.timeout'.
    fn expire_workers(&self) {
        let timeout = self.config.heartbeat_timeout;
        let silent: Vec<String> = match self.resources.lock() {
            Ok(resources) => resources
                .workers
                .values()
                .filter(|w| w.last_heartbeat.elapsed() > timeout)
                .map(|w| w.id.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        for id in silent {
            self.lose_worker(&id, "no heartbeat for 'heartbeat.timeout'");
        }
    }

    /// Forgets worker `id` and its slots, and tells every job. A worker
    /// that is in fact alive registers again with its next heartbeat.
    fn lose_worker(&self, id: &str, why: &'static str) {
        let removed = self
            .resources
            .lock()
            .is_ok_and(|mut resources| resources.workers.remove(id).is_some());
        if removed {
            tracing::warn!(worker = %id, "worker lost: {why}");
            for job in self.job_list() {
                let _ = job.events.send(JobEvent::WorkerLost {
                    id: id.to_string(),
                    why,
                });
            }
        }
    }

    async fn submit(self: &Arc<Self>, program: JobProgram) -> Result<Arc<JobRecord>, ClusterError> {
        let planned = plan_program(&program).await?;
        let graph = planned.graph;
        graph.validate()?;
        if !self.config.in_process
            && graph
                .checkpointing
                .as_ref()
                .is_some_and(|c| c.dir.is_none())
        {
            return Err(ClusterError::Config(
                "a job on a cluster keeps its checkpoints where every worker reads them: set 'execution.checkpointing.dir' (a shared path, s3://, gs://, az://)".to_string(),
            ));
        }
        let id = JobId(uuid::Uuid::new_v4().as_u128());
        let parallelism = graph
            .vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(1);
        let query = planned.kind == JobKind::Query;
        let (results_tx, results_rx) = if query {
            let (tx, rx) = mpsc::channel(weir_runtime::exchange::CHANNEL_CAPACITY);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (info, _) = watch::channel(proto::JobInfo {
            job_id: id.to_string(),
            name: program.name.clone(),
            status: JobStatus::Created.to_string(),
            message: String::new(),
            attempt: 0,
            start_time_ms: now_ms(),
            end_time_ms: 0,
            parallelism: u32::try_from(parallelism).unwrap_or(u32::MAX),
            slots: Vec::new(),
            progress: None,
        });
        let vertices = graph
            .vertices
            .iter()
            .map(|v| VertexSummary {
                id: v.id.0,
                name: v.name(),
                parallelism: v.parallelism,
                inputs: match &v.input {
                    weir_runtime::VertexInput::Edges(edges) => edges
                        .iter()
                        .map(|e| (e.from.0, e.partitioning.to_string()))
                        .collect(),
                    weir_runtime::VertexInput::Source(_) => Vec::new(),
                },
            })
            .collect();
        let record = Arc::new(JobRecord {
            id,
            vertices,
            info,
            events: events_tx,
            results_tx: Mutex::new(results_tx),
            results_rx: Mutex::new(results_rx),
            checkpoints: Mutex::new(None),
            checkpoint_history: Arc::default(),
            progress: Mutex::default(),
            master: Mutex::new(None),
        });
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.push(Arc::clone(&record));
        }
        tracing::info!(job = %id, name = %program.name, parallelism, "job submitted");
        let master = JobMaster {
            state: Arc::clone(self),
            job: Arc::clone(&record),
            graph,
            program,
            query,
            events: events_rx,
        };
        let task = tokio::spawn(master.run());
        if let Ok(mut master) = record.master.lock() {
            *master = Some(task.abort_handle());
        }
        Ok(record)
    }
}

/// Why an attempt ended.
enum Outcome {
    Finished,
    Failed(String),
    /// A failure no restart gets past: the state to restore is unreadable,
    /// or the job fails the same way every time (a malformed record).
    FailedForGood(String),
    Cancelled,
}

/// An attempt's checkpoint coordinator, running.
struct StartedCheckpoints {
    /// The state the attempt restores, if any.
    restore: Option<Restore>,
    /// The sources' splits in it.
    splits: Option<RestoredCheckpoint>,
    /// How the coordinator ended.
    coordinator: tokio::sync::oneshot::Receiver<CoordinatorExit>,
}

/// What an attempt restores: where from, and the sources' splits there.
#[derive(Clone, Copy)]
struct Restored<'a> {
    from: Option<Restore>,
    splits: Option<&'a RestoredCheckpoint>,
}

/// Runs one job's attempts; lives as long as the job.
struct JobMaster {
    state: Arc<CoordinatorState>,
    job: Arc<JobRecord>,
    graph: JobGraph,
    program: JobProgram,
    query: bool,
    events: mpsc::UnboundedReceiver<JobEvent>,
}

impl JobMaster {
    /// As in Flink, the job's own 'restart-strategy.*' wins over the
    /// cluster's, and without either a job that takes checkpoints restarts
    /// with exponential delays and another does not. A query's rows went
    /// to its client already: it does not restart.
    fn restart_strategy(&self) -> weir_common::RestartStrategy {
        if self.query {
            return weir_common::RestartStrategy::None;
        }
        let mut job = weir_common::Configuration::new();
        for (key, value) in &self.program.config {
            // The session validated them when they were set.
            let _ = job.set(key, value);
        }
        let checkpointing = self.graph.checkpointing.is_some();
        match &self.state.config.restart {
            Some(cluster) if job.get(weir_common::config::RESTART_STRATEGY).is_none() => {
                cluster.clone()
            }
            _ => job.restart_strategy(checkpointing),
        }
    }

    async fn run(mut self) {
        let mut restarts = Restarts::new(self.restart_strategy());
        let mut attempt = 0u32;
        let outcome = loop {
            let started = std::time::Instant::now();
            let outcome = self.attempt(attempt).await;
            self.state.release(self.job.id);
            let Outcome::Failed(reason) = outcome else {
                break outcome;
            };
            let Some(delay) = restarts.after_failure(started.elapsed(), std::time::Instant::now())
            else {
                break Outcome::Failed(reason);
            };
            attempt += 1;
            let from = if self.graph.checkpointing.is_some() {
                "its latest checkpoint"
            } else {
                "the start"
            };
            tracing::warn!(job = %self.job.id, attempt, error = %reason, ?delay, "job failed; restarting from {from}");
            self.job.update(|info| {
                info.status = JobStatus::Restarting.to_string();
                info.message = format!("restart {attempt} after: {reason}");
            });
            let cancelled = tokio::select! {
                () = tokio::time::sleep(delay) => false,
                cancelled = self.cancelled() => cancelled,
            };
            if cancelled {
                break Outcome::Cancelled;
            }
        };
        let (status, message) = match outcome {
            Outcome::Finished => (JobStatus::Finished.to_string(), String::new()),
            Outcome::Cancelled => (JobStatus::Cancelled.to_string(), String::new()),
            Outcome::Failed(reason) | Outcome::FailedForGood(reason) => {
                ("FAILED".to_string(), reason)
            }
        };
        tracing::info!(job = %self.job.id, %status, %message, "job ended");
        CheckpointStorage::release_memory(self.job.id);
        if let Ok(mut results) = self.job.results_tx.lock() {
            results.take();
        }
        self.job.update(|info| {
            info.status = status;
            info.message = message;
            info.end_time_ms = now_ms();
        });
    }

    /// Waits for a cancel event, ignoring others; true when one came.
    async fn cancelled(&mut self) -> bool {
        while let Some(event) = self.events.recv().await {
            if matches!(event, JobEvent::Cancel) {
                return true;
            }
        }
        false
    }

    async fn attempt(&mut self, attempt: u32) -> Outcome {
        let placement = match self.allocate().await {
            Ok(placement) => placement,
            Err(outcome) => return outcome,
        };
        let workers: BTreeMap<String, String> = placement
            .iter()
            .map(|w| (w.id.clone(), w.address.clone()))
            .collect();
        self.job.update(|info| {
            info.attempt = attempt;
            info.slots = placement.iter().map(|w| w.id.clone()).collect();
        });
        let checkpointing = match self.start_checkpoints(attempt).await {
            Ok(checkpointing) => checkpointing,
            Err(reason) => return Outcome::FailedForGood(reason),
        };
        let (restore, splits, mut coordinated) = match checkpointing {
            Some(c) => (c.restore, c.splits, Some(c.coordinator)),
            None => (None, None, None),
        };
        let restored = Restored {
            from: restore,
            splits: splits.as_ref(),
        };
        let outcome = match self.deploy(attempt, &placement, &workers, restored).await {
            Err(outcome) => outcome,
            Ok(()) => {
                // With its state restored and every subtask started.
                tracing::info!(job = %self.job.id, attempt, "job running");
                self.job.update(|info| {
                    info.status = JobStatus::Running.to_string();
                    info.message.clear();
                });
                self.await_workers(attempt, &workers, &mut coordinated)
                    .await
            }
        };
        if !matches!(outcome, Outcome::Finished) {
            self.cancel_tasks(&workers).await;
        }
        // Without the relays' sender the coordinator stops.
        if let Ok(mut checkpoints) = self.job.checkpoints.lock() {
            checkpoints.take();
        }
        if let Some(coordinated) = coordinated {
            let _ = coordinated.await;
        }
        if matches!(outcome, Outcome::Finished)
            && let Some(storage) = self.storage()
        {
            // As in Flink, a finished job's checkpoints are deleted.
            if let Err(e) = storage.discard_all().await {
                tracing::warn!(job = %self.job.id, error = %e, "cannot delete the job's checkpoints");
            }
        }
        outcome
    }

    fn storage(&self) -> Option<CheckpointStorage> {
        let options = self.graph.checkpointing.as_ref()?;
        CheckpointStorage::open(options.dir.as_deref(), &self.graph, self.job.id).ok()
    }

    /// For a job that takes checkpoints: the attempt's checkpoint
    /// coordinator, started on a thread of its own, from the latest
    /// completed checkpoint, which the attempt restores.
    async fn start_checkpoints(&self, attempt: u32) -> Result<Option<StartedCheckpoints>, String> {
        let Some(options) = self.graph.checkpointing.clone() else {
            return Ok(None);
        };
        let storage = CheckpointStorage::open(options.dir.as_deref(), &self.graph, self.job.id)
            .map_err(|e| e.to_string())?;
        let latest = storage.latest_id().await.map_err(|e| e.to_string())?;
        storage
            .clean_incomplete()
            .await
            .map_err(|e| e.to_string())?;
        // The job's own latest checkpoint is newer than its savepoint.
        let restore = match (latest, &options.restore) {
            (Some(id), _) => Some(Restore::Checkpoint(id)),
            (None, Some(_)) => Some(Restore::Savepoint),
            (None, None) => None,
        };
        // Only the sources' splits, to plan the attempt's: the workers read
        // the rest. Reading them also checks that the state fits the job.
        let splits = match restore {
            Some(restore) => Some(
                restored_state(&self.graph, self.job.id, restore, StateRead::SourceSplits)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let restored_id = splits.as_ref().map_or(0, |s| s.checkpoint);
        match restore {
            Some(Restore::Checkpoint(checkpoint)) => {
                tracing::info!(job = %self.job.id, attempt, checkpoint, dir = storage.display(), "restoring from checkpoint");
            }
            Some(Restore::Savepoint) => {
                let path = options.restore.as_ref().map_or("", |r| r.path.as_str());
                tracing::info!(job = %self.job.id, attempt, path, "restoring from savepoint");
            }
            None => {}
        }
        let (savepoints, requests) = mpsc::unbounded_channel();
        let savepoint_dir = options.savepoint_dir.clone();
        let (coordinator, channels) = CheckpointCoordinator::new(
            options,
            storage,
            self.graph.clone(),
            restored_id,
            Arc::clone(&self.job.checkpoint_history),
            requests,
        );
        if let Ok(mut checkpoints) = self.job.checkpoints.lock() {
            *checkpoints = Some(AttemptCheckpoints {
                attempt,
                channels,
                savepoints,
                savepoint_dir,
            });
        }
        let coordinator = coordinator.spawn().map_err(|e| e.to_string())?;
        Ok(Some(StartedCheckpoints {
            restore,
            splits,
            coordinator,
        }))
    }

    /// Waits for the slots the job needs, up to 'slot.request.timeout'.
    async fn allocate(&mut self) -> Result<Vec<WorkerEntry>, Outcome> {
        let needed = usize::try_from(self.job.snapshot().parallelism).unwrap_or(usize::MAX);
        let deadline = tokio::time::Instant::now() + self.state.config.slot_request_timeout;
        loop {
            let changed = self.state.slots_changed.notified();
            let (placement, free, workers) = match self.state.resources.lock() {
                Ok(mut resources) => (
                    resources.allocate(self.job.id, needed),
                    resources.free(),
                    resources.workers.len(),
                ),
                Err(_) => return Err(Outcome::Failed("the resource manager failed".into())),
            };
            if let Some(placement) = placement {
                return Ok(placement);
            }
            let waiting =
                format!("waiting for {needed} free slots; {free} free on {workers} worker(s)");
            self.job.update(|info| {
                if !is_terminal(&info.status) && info.status != JobStatus::Restarting.to_string() {
                    info.status = JobStatus::Created.to_string();
                }
                info.message.clone_from(&waiting);
            });
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(Outcome::Failed(format!(
                        "not enough slots within 'slot.request.timeout' ({:?}): {waiting}",
                        self.state.config.slot_request_timeout
                    )));
                }
                event = self.events.recv() => {
                    if matches!(event, Some(JobEvent::Cancel) | None) {
                        return Err(Outcome::Cancelled);
                    }
                }
            }
        }
    }

    async fn deploy(
        &self,
        attempt: u32,
        placement: &[WorkerEntry],
        workers: &BTreeMap<String, String>,
        restored: Restored<'_>,
    ) -> Result<(), Outcome> {
        let splits = plan_splits(&self.graph, restored.splits)
            .await
            .map_err(|e| {
                if e.is_recoverable() {
                    Outcome::Failed(e.to_string())
                } else {
                    Outcome::FailedForGood(e.to_string())
                }
            })?;
        let restore = restored.from;
        if let Ok(mut progress) = self.job.progress.lock() {
            *progress = AttemptProgress {
                attempt,
                input: splits.input,
                shares: BTreeMap::new(),
            };
        }
        let request = proto::DeployTasksRequest {
            job_id: self.job.id.to_string(),
            attempt,
            program: Some(program_to_proto(&self.program)),
            slots: placement
                .iter()
                .map(|w| proto::SlotPlacement {
                    worker_id: w.id.clone(),
                    address: w.address.clone(),
                })
                .collect(),
            splits: splits_to_proto(&splits),
            restore_checkpoint: match restore {
                Some(Restore::Checkpoint(id)) => Some(id),
                _ => None,
            },
            restore_savepoint: restore == Some(Restore::Savepoint),
        };
        let token = self.state.config.token.clone();
        let deployments = workers.iter().map(|(id, address)| {
            let request = request.clone();
            let token = token.clone();
            async move {
                let mut client = worker_client(address, token.as_deref())
                    .map_err(|e| Outcome::Failed(e.to_string()))?;
                client.deploy_tasks(request).await.map_err(|s| {
                    // As Flink's job master drops a task manager it cannot
                    // reach: the next attempt is placed on live workers,
                    // not on this one until its heartbeat times out.
                    if s.code() == tonic::Code::Unavailable {
                        self.state
                            .lose_worker(id, "unreachable while deploying tasks");
                    }
                    // The embedded cluster's one worker needs no naming.
                    let reason = if self.state.config.in_process {
                        s.message().to_string()
                    } else {
                        format!("deploying on {id}: {}", s.message())
                    };
                    match s.code() {
                        // The program or the job's options: every attempt
                        // would fail the same way.
                        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                            Outcome::FailedForGood(reason)
                        }
                        _ => Outcome::Failed(reason),
                    }
                })
            }
        });
        futures::future::try_join_all(deployments).await?;
        Ok(())
    }

    async fn await_workers(
        &mut self,
        attempt: u32,
        workers: &BTreeMap<String, String>,
        coordinator: &mut Option<tokio::sync::oneshot::Receiver<CoordinatorExit>>,
    ) -> Outcome {
        let mut pending: Vec<&String> = workers.keys().collect();
        loop {
            let event = tokio::select! {
                event = self.events.recv() => event,
                done = async {
                    match coordinator.as_mut() {
                        Some(done) => done.await,
                        None => std::future::pending().await,
                    }
                } => {
                    // Too many failed checkpoints fail the attempt.
                    *coordinator = None;
                    match done {
                        Ok(CoordinatorExit { result: Err(e), .. }) => {
                            return Outcome::Failed(e.to_string());
                        }
                        _ => continue,
                    }
                }
            };
            let Some(event) = event else { break };
            match event {
                JobEvent::Cancel => return Outcome::Cancelled,
                JobEvent::WorkerLost { id, why } if workers.contains_key(&id) => {
                    return Outcome::Failed(format!("worker {id} was lost: {why}"));
                }
                JobEvent::WorkerLost { .. } => {}
                JobEvent::Report(report) if report.attempt == attempt => {
                    if report.unrecoverable {
                        return Outcome::FailedForGood(report.error);
                    }
                    if !report.error.is_empty() {
                        return Outcome::Failed(report.error);
                    }
                    if report.cancelled {
                        return Outcome::Failed(format!(
                            "the tasks on worker {} were cancelled",
                            report.worker_id
                        ));
                    }
                    pending.retain(|w| **w != report.worker_id);
                    if pending.is_empty() {
                        return Outcome::Finished;
                    }
                }
                JobEvent::Report(_) => {}
            }
        }
        Outcome::Failed("the job master lost its events".into())
    }

    /// Stops what still runs of the attempt; a lost worker is skipped.
    async fn cancel_tasks(&self, workers: &BTreeMap<String, String>) {
        let token = self.state.config.token.clone();
        let job_id = self.job.id.to_string();
        let cancels = workers.values().map(|address| {
            let token = token.clone();
            let request = proto::JobRequest {
                job_id: job_id.clone(),
            };
            async move {
                if let Ok(mut client) = worker_client(address, token.as_deref()) {
                    let call = client.cancel_tasks(request);
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), call).await;
                }
            }
        });
        futures::future::join_all(cancels).await;
    }
}

/// A running coordinator process.
#[derive(Debug)]
pub struct Coordinator {
    state: Arc<CoordinatorState>,
    rpc: TcpListener,
    rest: Option<TcpListener>,
}

async fn bind(address: SocketAddr) -> Result<TcpListener, ClusterError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ClusterError::Listen {
            address: address.to_string(),
            source,
        })
}

impl Coordinator {
    pub async fn bind(options: CoordinatorOptions) -> Result<Self, ClusterError> {
        let rpc = bind(options.listen).await?;
        let rest = match options.rest_listen {
            Some(address) => Some(bind(address).await?),
            None => None,
        };
        Ok(Self {
            state: Arc::new(CoordinatorState {
                config: options.config,
                resources: Mutex::new(Resources::default()),
                slots_changed: Notify::new(),
                jobs: Mutex::new(Vec::new()),
            }),
            rpc,
            rest,
        })
    }

    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.rpc.local_addr().ok()
    }

    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves RPC and REST and watches heartbeats until a server fails.
    /// The job masters stop when this ends or is dropped, so no job
    /// outlives its coordinator.
    pub async fn run(self) -> Result<(), ClusterError> {
        let _stop = StopJobMasters(Arc::clone(&self.state));
        let check = CallCheck::new(self.state.config.token.as_deref());
        let service = InterceptedService::new(
            CoordinatorServer::new(CoordinatorRpc {
                state: Arc::clone(&self.state),
            })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
            check.clone(),
        );
        let rpc = Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(self.rpc));
        let rest = async {
            match self.rest {
                Some(listener) => {
                    crate::rest::serve(listener, Arc::clone(&self.state), check).await
                }
                None => std::future::pending().await,
            }
        };
        let state = Arc::clone(&self.state);
        let monitor = async move {
            let period =
                (state.config.heartbeat_interval / 2).max(std::time::Duration::from_millis(20));
            loop {
                tokio::time::sleep(period).await;
                state.expire_workers();
            }
        };
        tokio::select! {
            served = rpc => served.map_err(|e| ClusterError::Rpc(format!("coordinator server: {e}"))),
            served = rest => served,
            () = monitor => Ok(()),
        }
    }
}

/// Stops the job masters when dropped.
struct StopJobMasters(Arc<CoordinatorState>);

impl Drop for StopJobMasters {
    fn drop(&mut self) {
        self.0.stop_job_masters();
    }
}

struct CoordinatorRpc {
    state: Arc<CoordinatorState>,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<proto::Frame, Status>> + Send>>;
type JobInfoStream = Pin<Box<dyn Stream<Item = Result<proto::JobInfo, Status>> + Send>>;

#[tonic::async_trait]
impl CoordinatorService for CoordinatorRpc {
    async fn register_worker(
        &self,
        request: Request<proto::RegisterWorkerRequest>,
    ) -> Result<Response<proto::RegisterWorkerResponse>, Status> {
        let request = request.into_inner();
        tracing::info!(worker = %request.worker_id, address = %request.address, slots = request.slots, "worker registered");
        if let Ok(mut resources) = self.state.resources.lock() {
            resources.workers.insert(
                request.worker_id.clone(),
                WorkerEntry {
                    id: request.worker_id,
                    address: request.address,
                    slots: request.slots,
                    last_heartbeat: Instant::now(),
                    metrics: Vec::new(),
                },
            );
        }
        self.state.slots_changed.notify_waiters();
        let interval = self.state.config.heartbeat_interval.as_millis();
        Ok(Response::new(proto::RegisterWorkerResponse {
            heartbeat_interval_ms: u64::try_from(interval).unwrap_or(u64::MAX),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let known = match self.state.resources.lock() {
            Ok(mut resources) => match resources.workers.get_mut(&request.worker_id) {
                Some(worker) => {
                    worker.last_heartbeat = Instant::now();
                    worker.metrics = request.metrics;
                    true
                }
                None => false,
            },
            Err(_) => false,
        };
        if known {
            for share in &request.progress {
                if let Ok(job) = self.state.job(&share.job_id) {
                    job.record_progress(&request.worker_id, share);
                }
            }
        }
        Ok(Response::new(proto::HeartbeatResponse { known }))
    }

    type CheckpointEventsStream = EventStream;

    async fn checkpoint_events(
        &self,
        request: Request<proto::CheckpointEventsRequest>,
    ) -> Result<Response<Self::CheckpointEventsStream>, Status> {
        let request = request.into_inner();
        let job = self.state.job(&request.job_id)?;
        let checkpoints = job
            .checkpoints
            .lock()
            .map_err(|_| Status::internal("the job's checkpoints are poisoned"))?;
        match checkpoints.as_ref() {
            Some(c) if c.attempt == request.attempt => Ok(Response::new(events(&c.channels))),
            _ => Err(Status::failed_precondition(format!(
                "attempt {} of job '{}' takes no checkpoints now",
                request.attempt, request.job_id
            ))),
        }
    }

    async fn report_checkpoint(
        &self,
        request: Request<proto::CheckpointReport>,
    ) -> Result<Response<proto::Empty>, Status> {
        let report = request.into_inner();
        let job = self.state.job(&report.job_id)?;
        let attempt = report.attempt;
        let report = report_from_proto(report)?;
        let reports = job.checkpoints.lock().ok().and_then(|c| {
            c.as_ref()
                .filter(|c| c.attempt == attempt)
                .map(|c| c.channels.reports())
        });
        // A report of an attempt that is over is of no use any more.
        if let Some(reports) = reports {
            let _ = reports.send(report);
        }
        Ok(Response::new(proto::Empty {}))
    }

    async fn trigger_savepoint(
        &self,
        request: Request<proto::TriggerSavepointRequest>,
    ) -> Result<Response<proto::SavepointResponse>, Status> {
        let request = request.into_inner();
        let job = self.state.job(&request.job_id)?;
        let (savepoints, default_dir) = job
            .checkpoints
            .lock()
            .ok()
            .and_then(|c| {
                c.as_ref()
                    .map(|c| (c.savepoints.clone(), c.savepoint_dir.clone()))
            })
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "the job '{}' is not running with checkpoints, so it cannot take a savepoint; it takes them with 'execution.checkpointing.interval' set when it was submitted",
                    request.job_id
                ))
            })?;
        let dir = request.dir.or(default_dir).ok_or_else(|| {
            Status::invalid_argument(
                "no savepoint directory: name one, or set 'execution.checkpointing.savepoint-dir' (or 'state.savepoints.dir') for the job",
            )
        })?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        savepoints
            .send(weir_runtime::checkpoint::SavepointRequest {
                dir,
                job: request.job_id.clone(),
                stop: request.stop,
                reply,
            })
            .map_err(|_| Status::failed_precondition("the job's attempt has ended"))?;
        let path = answer
            .await
            .map_err(|_| Status::aborted("the job's attempt ended before its savepoint completed"))?
            .map_err(|e| Status::internal(e.to_string()))?;
        if request.stop {
            let _ = job.events.send(JobEvent::Cancel);
            // As Flink's stop returns once the job has stopped.
            let mut info = job.info.subscribe();
            let _ = info.wait_for(|i| is_terminal(&i.status)).await;
        }
        Ok(Response::new(proto::SavepointResponse { path }))
    }

    async fn report_tasks(
        &self,
        request: Request<proto::TasksReport>,
    ) -> Result<Response<proto::Empty>, Status> {
        let report = request.into_inner();
        let job = self.state.job(&report.job_id)?;
        if let Some(share) = &report.progress {
            job.record_progress(&report.worker_id, share);
        }
        let _ = job.events.send(JobEvent::Report(report));
        Ok(Response::new(proto::Empty {}))
    }

    async fn submit_job(
        &self,
        request: Request<proto::SubmitJobRequest>,
    ) -> Result<Response<proto::SubmitJobResponse>, Status> {
        let program = request
            .into_inner()
            .program
            .map(program_from_proto)
            .ok_or_else(|| Status::invalid_argument("a job submission without its program"))?;
        let job = self.state.submit(program).await?;
        let query = job.results_rx.lock().map(|r| r.is_some()).unwrap_or(false);
        Ok(Response::new(proto::SubmitJobResponse {
            job_id: job.id.to_string(),
            query,
        }))
    }

    async fn list_jobs(
        &self,
        _: Request<proto::Empty>,
    ) -> Result<Response<proto::ListJobsResponse>, Status> {
        let jobs = self.state.job_list().iter().map(|j| j.snapshot()).collect();
        Ok(Response::new(proto::ListJobsResponse { jobs }))
    }

    async fn get_job(
        &self,
        request: Request<proto::JobRequest>,
    ) -> Result<Response<proto::JobInfo>, Status> {
        let job = self.state.job(&request.into_inner().job_id)?;
        Ok(Response::new(job.snapshot()))
    }

    async fn cancel_job(
        &self,
        request: Request<proto::JobRequest>,
    ) -> Result<Response<proto::JobInfo>, Status> {
        let job = self.state.job(&request.into_inner().job_id)?;
        let _ = job.events.send(JobEvent::Cancel);
        Ok(Response::new(job.snapshot()))
    }

    type WatchJobStream = JobInfoStream;

    async fn watch_job(
        &self,
        request: Request<proto::JobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let job = self.state.job(&request.into_inner().job_id)?;
        let updates = WatchStream::new(job.info.subscribe());
        // Every change up to and including the terminal one.
        let stream = updates
            .scan(false, |ended, info| {
                let item = (!*ended).then(|| {
                    *ended = is_terminal(&info.status);
                    Ok(info)
                });
                std::future::ready(item)
            })
            .boxed();
        Ok(Response::new(stream))
    }

    type FetchResultsStream = FrameStream;

    async fn fetch_results(
        &self,
        request: Request<proto::JobRequest>,
    ) -> Result<Response<Self::FetchResultsStream>, Status> {
        let job = self.state.job(&request.into_inner().job_id)?;
        let rows = job
            .results_rx
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "job {} has no rows to fetch: not a query, or already fetched",
                    job.id
                ))
            })?;
        let stream = ReceiverStream::new(rows)
            .map(|batch| encode(Message::Batch(batch)).map_err(Status::from))
            .boxed();
        Ok(Response::new(stream))
    }

    async fn exchange(
        &self,
        request: Request<tonic::Streaming<proto::Frame>>,
    ) -> Result<Response<proto::Empty>, Status> {
        let mut frames = request.into_inner();
        let Some(proto::Frame {
            kind: Some(Kind::Header(header)),
        }) = frames.message().await?
        else {
            return Err(Status::invalid_argument(
                "a channel must start with its header",
            ));
        };
        let job = self.state.job(&header.job_id)?;
        let Some(rows) = job.results_tx.lock().ok().and_then(|r| r.clone()) else {
            return Err(Status::failed_precondition(format!(
                "job {} takes no rows",
                job.id
            )));
        };
        while let Some(frame) = frames.message().await? {
            match decode(frame)? {
                Message::Batch(batch) => {
                    if rows.send(batch).await.is_err() {
                        // The client stopped reading: the query is being cancelled.
                        return Ok(Response::new(proto::Empty {}));
                    }
                }
                Message::EndOfInput => return Ok(Response::new(proto::Empty {})),
                Message::Watermark(_) | Message::Barrier(_) | Message::Idle => {}
            }
        }
        Err(Status::aborted("the rows ended before their end of input"))
    }
}
