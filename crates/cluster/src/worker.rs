//! A worker (Flink's TaskManager): offers slots to the coordinator, runs
//! the subtasks the job masters place in them, and exchanges data with the
//! other workers.
//!
//! On `DeployTasks` the worker plans the job's program into its graph, runs
//! the subtasks of its slots with the runtime's task executor, registers
//! the channels other workers will stream into, and starts one stream per
//! channel to a subtask elsewhere. A job driver waits for the subtasks and
//! reports the outcome of the worker's share to the coordinator. The
//! worker heartbeats with its jobs' metrics. A coordinator silent for
//! 'heartbeat.timeout' gets the worker's jobs cancelled, and the worker
//! registers again when the coordinator is back.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};
use weir_connector::SourceSplit;
use weir_engine::{JobProgram, plan_program};
use weir_runtime::checkpoint::{CheckpointSetup, CheckpointStorage, StateRead};
use weir_runtime::deploy::{ChannelId, SplitAssignment, TaskDeployment, deploy, supervise};
use weir_runtime::{
    InputPlan, JobGraph, JobId, JobMetrics, Message, RuntimeError, VertexId, VertexOutput,
};

use crate::auth::{CallCheck, CallHeaders};
use crate::checkpoints::{Restore, restored_state, worker_relay};
use crate::config::ClusterConfig;
use crate::exchange::{
    CONNECTION_WINDOW, ChannelKey, Inbound, InboundRegistry, STREAM_WINDOW, connect_lazy, header,
    outbound_frames,
};
use crate::progress::progress_to_proto;
use crate::proto::coordinator_client::CoordinatorClient;
use crate::proto::worker_client::WorkerClient;
use crate::proto::worker_server::{Worker as WorkerService, WorkerServer};
use crate::{ClusterError, proto};

/// The largest message a cluster process accepts: a batch frame.
pub(crate) const MAX_MESSAGE: usize = 512 * 1024 * 1024;

pub(crate) type Authed = InterceptedService<Channel, CallHeaders>;

pub(crate) fn coordinator_client(
    address: &str,
    token: Option<&str>,
) -> Result<CoordinatorClient<Authed>, ClusterError> {
    Ok(
        CoordinatorClient::with_interceptor(connect_lazy(address)?, CallHeaders::new(token))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
    )
}

pub(crate) fn worker_client(
    address: &str,
    token: Option<&str>,
) -> Result<WorkerClient<Authed>, ClusterError> {
    Ok(
        WorkerClient::with_interceptor(connect_lazy(address)?, CallHeaders::new(token))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
    )
}

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The coordinator's address, `host:port` or `http://host:port`.
    pub coordinator: String,
    /// Where to serve other workers and the coordinator (port 0: any free port).
    pub listen: SocketAddr,
    /// The address others reach this worker at, when not the listening one.
    pub advertise: Option<String>,
    pub slots: u32,
    pub config: ClusterConfig,
}

/// The part of a job running on this worker.
#[derive(Debug)]
struct RunningJob {
    attempt: u32,
    metrics: Arc<JobMetrics>,
    driver: tokio::task::AbortHandle,
}

/// The threads a worker's subtasks run on. They are apart from the
/// runtime that serves the worker's RPC, heartbeats, channels to other
/// workers and checkpoint relays, as Flink's task threads are apart from
/// its RPC threads: subtasks that keep every thread busy cannot delay a
/// checkpoint acknowledgement or a heartbeat.
#[derive(Debug)]
struct TaskThreads {
    handle: tokio::runtime::Handle,
    /// Taken when the worker goes; shut down without waiting, since that
    /// may happen on an async thread.
    runtime: Option<tokio::runtime::Runtime>,
}

impl TaskThreads {
    /// One thread per core.
    fn start() -> Result<Self, ClusterError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("weir-task")
            .build()
            .map_err(|e| ClusterError::Rpc(format!("cannot start the task threads: {e}")))?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }
}

impl Drop for TaskThreads {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[derive(Debug)]
struct WorkerState {
    id: String,
    address: String,
    slots: u32,
    config: ClusterConfig,
    coordinator: CoordinatorClient<Authed>,
    inbound: InboundRegistry,
    jobs: Mutex<HashMap<JobId, RunningJob>>,
    task_threads: TaskThreads,
}

/// A running worker process.
#[derive(Debug)]
pub struct Worker {
    state: Arc<WorkerState>,
    local: SocketAddr,
    listener: TcpListener,
}

/// `http://host:port` for an address given with or without its scheme.
pub fn http_address(address: &str) -> String {
    if address.starts_with("http://") || address.starts_with("https://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

impl Worker {
    /// Binds the worker's port; [`Worker::run`] serves and registers.
    pub async fn bind(options: WorkerOptions) -> Result<Self, ClusterError> {
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ClusterError::Listen {
                    address: options.listen.to_string(),
                    source,
                })?;
        let local = listener
            .local_addr()
            .map_err(|source| ClusterError::Listen {
                address: options.listen.to_string(),
                source,
            })?;
        let address = http_address(
            &options
                .advertise
                .clone()
                .unwrap_or_else(|| local.to_string()),
        );
        let coordinator = coordinator_client(
            &http_address(&options.coordinator),
            options.config.token.as_deref(),
        )?;
        Ok(Self {
            state: Arc::new(WorkerState {
                id: format!(
                    "worker-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                ),
                address,
                slots: options.slots,
                config: options.config,
                coordinator,
                inbound: InboundRegistry::default(),
                task_threads: TaskThreads::start()?,
                jobs: Mutex::new(HashMap::new()),
            }),
            local,
            listener,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Serves until the server fails; registers and heartbeats meanwhile.
    /// The worker's tasks stop when this ends or is dropped.
    pub async fn run(self) -> Result<(), ClusterError> {
        let _stop = CancelJobs(Arc::clone(&self.state));
        let check = CallCheck::new(self.state.config.token.as_deref());
        let service = InterceptedService::new(
            WorkerServer::new(WorkerRpc {
                state: Arc::clone(&self.state),
            })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
            check,
        );
        let server = Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(self.listener));
        let heartbeats = heartbeat_loop(Arc::clone(&self.state));
        tokio::select! {
            served = server => served.map_err(|e| ClusterError::Rpc(format!("worker server: {e}"))),
            refused = heartbeats => Err(refused),
        }
    }
}

/// Cancels a worker's jobs when dropped.
struct CancelJobs(Arc<WorkerState>);

impl Drop for CancelJobs {
    fn drop(&mut self) {
        self.0.cancel_all();
    }
}

/// Registers, then heartbeats every 'heartbeat.interval'; registers again
/// when the coordinator has forgotten the worker, and cancels the worker's
/// jobs when the coordinator stays silent for 'heartbeat.timeout'. Ends
/// only when the coordinator refuses the worker.
async fn heartbeat_loop(state: Arc<WorkerState>) -> ClusterError {
    let mut registered = false;
    let mut last_contact = Instant::now();
    let mut interval = state.config.heartbeat_interval;
    loop {
        let mut coordinator = state.coordinator.clone();
        if registered {
            let request = proto::HeartbeatRequest {
                worker_id: state.id.clone(),
                metrics: state.metrics(),
                progress: state.progress(),
            };
            match coordinator.heartbeat(request).await {
                Ok(response) => {
                    last_contact = Instant::now();
                    registered = response.into_inner().known;
                }
                Err(status) => tracing::warn!(error = %status.message(), "heartbeat failed"),
            }
        } else {
            let request = proto::RegisterWorkerRequest {
                worker_id: state.id.clone(),
                address: state.address.clone(),
                slots: state.slots,
            };
            match coordinator.register_worker(request).await {
                Ok(response) => {
                    last_contact = Instant::now();
                    registered = true;
                    let ms = response.into_inner().heartbeat_interval_ms;
                    interval = Duration::from_millis(ms.max(10));
                    tracing::info!(worker = %state.id, address = %state.address, slots = state.slots, "registered with the coordinator");
                }
                Err(status) => {
                    tracing::warn!(error = %status.message(), "cannot register with the coordinator");
                    if status.code() == tonic::Code::FailedPrecondition
                        || status.code() == tonic::Code::Unauthenticated
                    {
                        // Another version, or the wrong token: retrying cannot help.
                        return ClusterError::Rpc(format!(
                            "the coordinator refused this worker: {}",
                            status.message()
                        ));
                    }
                }
            }
        }
        if last_contact.elapsed() > state.config.heartbeat_timeout {
            tracing::warn!("the coordinator is silent; cancelling this worker's jobs");
            state.cancel_all();
            registered = false;
            last_contact = Instant::now();
        }
        tokio::time::sleep(interval).await;
    }
}

impl WorkerState {
    fn metrics(&self) -> Vec<proto::OperatorMetrics> {
        let Ok(jobs) = self.jobs.lock() else {
            return Vec::new();
        };
        jobs.iter()
            .flat_map(|(id, job)| {
                job.metrics
                    .operators()
                    .into_iter()
                    .map(move |op| proto::OperatorMetrics {
                        job_id: id.to_string(),
                        task: op.task.clone(),
                        operator: op.operator.clone(),
                        rows_in: op.rows_in.load(Ordering::Relaxed),
                        rows_out: op.rows_out.load(Ordering::Relaxed),
                        busy_nanos: op.busy_nanos.load(Ordering::Relaxed),
                        backpressured_nanos: op.backpressured_nanos.load(Ordering::Relaxed),
                        watermark: op.watermark.load(Ordering::Relaxed),
                        late_rows_dropped: op.late_rows_dropped.load(Ordering::Relaxed),
                    })
            })
            .collect()
    }

    /// The progress of this worker's share of each job.
    fn progress(&self) -> Vec<proto::JobProgress> {
        let Ok(jobs) = self.jobs.lock() else {
            return Vec::new();
        };
        jobs.iter()
            .map(|(id, job)| progress_to_proto(*id, job.attempt, &job.metrics.progress()))
            .collect()
    }

    fn cancel_all(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            for (id, job) in jobs.drain() {
                job.driver.abort();
                self.inbound.remove_job(id);
            }
        }
    }

    fn cancel(&self, job: JobId) {
        if let Some(running) = self.jobs.lock().ok().and_then(|mut j| j.remove(&job)) {
            running.driver.abort();
        }
        self.inbound.remove_job(job);
    }

    /// Deploys this worker's share of a job attempt and starts its driver.
    async fn deploy(
        self: &Arc<Self>,
        request: proto::DeployTasksRequest,
    ) -> Result<(), ClusterError> {
        let job: JobId = request
            .job_id
            .parse()
            .map_err(|_| ClusterError::Frame(format!("bad job id '{}'", request.job_id)))?;
        let attempt = request.attempt;
        let program = request
            .program
            .map(program_from_proto)
            .ok_or_else(|| ClusterError::Frame("a deployment without its program".into()))?;
        let planned = plan_program(&program).await?;
        let graph = planned.graph;
        let slots = request.slots;
        let runs_here = |_: VertexId, subtask: usize| placed_on(&slots, &self.id, subtask);
        let collects_here = graph.vertices.iter().any(|v| {
            matches!(v.output, VertexOutput::Collect)
                && (0..v.parallelism).any(|s| runs_here(v.id, s))
        });
        let (results_tx, results_rx) = if collects_here {
            let (tx, rx) = mpsc::channel(weir_runtime::exchange::CHANNEL_CAPACITY);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let metrics = Arc::new(JobMetrics::default());
        let (checkpoint, relays) = match &graph.checkpointing {
            Some(options) => {
                // Where every worker reads it, as the job master did.
                let restore = match (request.restore_checkpoint, request.restore_savepoint) {
                    (Some(id), _) => Some(Restore::Checkpoint(id)),
                    (None, true) => Some(Restore::Savepoint),
                    (None, false) => None,
                };
                let restored = match restore {
                    Some(restore) => {
                        let state = restored_state(&graph, job, restore, StateRead::Whole).await?;
                        tracing::info!(%job, attempt, checkpoint = state.checkpoint, "checkpoint state read");
                        Some(Arc::new(state))
                    }
                    None => None,
                };
                // Only a directory the job master reaches takes the workers'
                // files, or the memory of the process they share.
                let storage = if options.dir.is_some() || self.config.in_process {
                    Some(CheckpointStorage::open(
                        options.dir.as_deref(),
                        &graph,
                        job,
                    )?)
                } else {
                    None
                };
                let relay = worker_relay(self.coordinator.clone(), job, attempt, storage).await?;
                let setup = CheckpointSetup {
                    channels: relay.channels,
                    restored,
                };
                (Some(setup), vec![relay.events, relay.reports])
            }
            None => (None, Vec::new()),
        };
        // The subtasks go to the task threads; the channels, relays and
        // the driver below stay on this runtime.
        let splits = splits_from_proto(request.splits);
        let placement = slots.clone();
        let worker = self.id.clone();
        let task_metrics = Arc::clone(&metrics);
        let (graph, deployed) = self
            .task_threads
            .spawn(async move {
                let runs_here =
                    |_: VertexId, subtask: usize| placed_on(&placement, &worker, subtask);
                let deployed = deploy(TaskDeployment {
                    job,
                    graph: &graph,
                    splits,
                    runs_here: &runs_here,
                    metrics: task_metrics,
                    results: results_tx,
                    checkpoint,
                })
                .await;
                (graph, deployed)
            })
            .await
            .map_err(|e| RuntimeError::Internal(format!("deploying the subtasks: {e}")))?;
        let mut deployed = deployed?;
        for relay in relays {
            deployed.tasks.spawn(relay);
        }
        let (failures_tx, mut failures_rx) = mpsc::unbounded_channel();
        for (channel, sender) in deployed.inbound.drain(..) {
            self.inbound.register(
                ChannelKey {
                    job,
                    attempt,
                    channel,
                },
                Inbound {
                    sender,
                    failures: failures_tx.clone(),
                },
            );
        }
        drop(failures_tx);
        let token = self.config.token.clone();
        let mut peers: BTreeMap<String, WorkerClient<Authed>> = BTreeMap::new();
        for (channel, receiver) in deployed.outbound.drain(..) {
            let address = consumer_address(&slots, channel)?;
            let client = match peers.get(&address) {
                Some(client) => client.clone(),
                None => {
                    let client = worker_client(&address, token.as_deref())?;
                    peers.insert(address.clone(), client.clone());
                    client
                }
            };
            let header = header(job, attempt, channel);
            deployed
                .tasks
                .spawn(send_channel(client, address, header, receiver));
        }
        if let Some(rows) = results_rx {
            let collect = collect_vertex(&graph)?;
            let header = header(
                job,
                attempt,
                ChannelId {
                    from: collect,
                    to: collect,
                    producer: 0,
                    consumer: 0,
                },
            );
            deployed
                .tasks
                .spawn(send_results(self.coordinator.clone(), header, rows));
        }

        let state = Arc::clone(self);
        let tasks = deployed.tasks;
        let driver = tokio::spawn(async move {
            let outcome = tokio::select! {
                result = supervise(tasks) => result,
                Some(reason) = failures_rx.recv() => Err(RuntimeError::Failed(reason)),
            };
            state.finish(job, attempt, outcome).await;
        });
        if let Ok(mut jobs) = self.jobs.lock() {
            if let Some(previous) = jobs.insert(
                job,
                RunningJob {
                    attempt,
                    metrics,
                    driver: driver.abort_handle(),
                },
            ) {
                previous.driver.abort();
            }
        }
        tracing::info!(%job, attempt, worker = %self.id, "deployed");
        Ok(())
    }

    /// Reports how this worker's share of an attempt ended.
    async fn finish(&self, job: JobId, attempt: u32, outcome: Result<(), RuntimeError>) {
        let mut progress = None;
        if let Ok(mut jobs) = self.jobs.lock()
            && jobs.get(&job).is_some_and(|j| j.attempt == attempt)
            && let Some(ended) = jobs.remove(&job)
        {
            progress = Some(progress_to_proto(job, attempt, &ended.metrics.progress()));
        }
        self.inbound.remove_job(job);
        let (error, cancelled) = match &outcome {
            Ok(()) => (String::new(), false),
            Err(RuntimeError::Cancelled) => (String::new(), true),
            Err(e) => (e.to_string(), false),
        };
        let unrecoverable = outcome.as_ref().is_err_and(|e| !e.is_recoverable());
        tracing::info!(%job, attempt, error = %error, "tasks ended");
        let report = proto::TasksReport {
            worker_id: self.id.clone(),
            job_id: job.to_string(),
            attempt,
            error,
            cancelled,
            unrecoverable,
            progress,
        };
        if let Err(status) = self.coordinator.clone().report_tasks(report).await {
            tracing::warn!(%job, error = %status.message(), "cannot report to the coordinator");
        }
    }
}

/// Whether slot `subtask` of a job's placement is on worker `worker`.
fn placed_on(slots: &[proto::SlotPlacement], worker: &str, subtask: usize) -> bool {
    slots.get(subtask).is_some_and(|s| s.worker_id == worker)
}

fn collect_vertex(graph: &JobGraph) -> Result<VertexId, ClusterError> {
    graph
        .vertices
        .iter()
        .find(|v| matches!(v.output, VertexOutput::Collect))
        .map(|v| v.id)
        .ok_or_else(|| ClusterError::Frame("a query without a collecting vertex".into()))
}

fn consumer_address(
    slots: &[proto::SlotPlacement],
    channel: ChannelId,
) -> Result<String, ClusterError> {
    slots
        .get(channel.consumer)
        .map(|s| s.address.clone())
        .ok_or_else(|| ClusterError::Frame(format!("no slot for the consumer of {channel}")))
}

/// Streams one channel to the worker running its consumer.
async fn send_channel(
    mut client: WorkerClient<Authed>,
    address: String,
    header: proto::ChannelHeader,
    receiver: mpsc::Receiver<Message>,
) -> Result<(), RuntimeError> {
    let failure = Arc::new(Mutex::new(None));
    let frames = outbound_frames(header, ReceiverStream::new(receiver), Arc::clone(&failure));
    let call = client.exchange(Request::new(frames)).await;
    sent(call, &failure, &format!("the worker at {address}"))
}

/// Streams a query's rows to the coordinator.
async fn send_results(
    mut coordinator: CoordinatorClient<Authed>,
    header: proto::ChannelHeader,
    rows: mpsc::Receiver<weir_common::StreamBatch>,
) -> Result<(), RuntimeError> {
    let failure = Arc::new(Mutex::new(None));
    let messages = ReceiverStream::new(rows)
        .map(Message::Batch)
        .chain(futures::stream::once(async { Message::EndOfInput }));
    let frames = outbound_frames(header, messages, Arc::clone(&failure));
    let call = coordinator.exchange(Request::new(frames)).await;
    sent(call, &failure, "the coordinator")
}

/// How a stream to `peer` ended: its call's error, or a frame that did not encode.
fn sent(
    call: Result<Response<proto::Empty>, Status>,
    failure: &Mutex<Option<ClusterError>>,
    peer: &str,
) -> Result<(), RuntimeError> {
    call.map_err(|s| RuntimeError::Failed(format!("sending to {peer}: {}", s.message())))?;
    match failure.lock().ok().and_then(|mut f| f.take()) {
        Some(e) => Err(RuntimeError::Failed(e.to_string())),
        None => Ok(()),
    }
}

pub(crate) fn program_from_proto(program: proto::JobProgram) -> JobProgram {
    JobProgram {
        name: program.name,
        config: program
            .config
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect(),
        catalog: program.catalog,
        statement: program.statement,
    }
}

pub(crate) fn program_to_proto(program: &JobProgram) -> proto::JobProgram {
    proto::JobProgram {
        name: program.name.clone(),
        config: program
            .config
            .iter()
            .map(|(key, value)| proto::ConfigEntry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        catalog: program.catalog.clone(),
        statement: program.statement.clone(),
    }
}

pub(crate) fn splits_to_proto(assignment: &SplitAssignment) -> Vec<proto::VertexSplits> {
    assignment
        .splits
        .iter()
        .map(|(vertex, subtasks)| proto::VertexSplits {
            vertex: u32::try_from(vertex.0).unwrap_or(u32::MAX),
            subtasks: subtasks
                .iter()
                .map(|splits| proto::SubtaskSplits {
                    splits: splits
                        .iter()
                        .map(|s| proto::Split {
                            id: s.id.clone(),
                            size_hint: s.size_hint,
                            position: s.position.clone(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

fn splits_from_proto(vertices: Vec<proto::VertexSplits>) -> SplitAssignment {
    SplitAssignment {
        splits: vertices
            .into_iter()
            .map(|v| {
                let subtasks = v
                    .subtasks
                    .into_iter()
                    .map(|s| {
                        s.splits
                            .into_iter()
                            .map(|split| SourceSplit {
                                id: split.id,
                                size_hint: split.size_hint,
                                position: split.position,
                            })
                            .collect()
                    })
                    .collect();
                (VertexId(v.vertex as usize), subtasks)
            })
            .collect(),
        // The job master keeps the input plan: progress is its to total.
        input: InputPlan::default(),
    }
}

struct WorkerRpc {
    state: Arc<WorkerState>,
}

#[tonic::async_trait]
impl WorkerService for WorkerRpc {
    async fn deploy_tasks(
        &self,
        request: Request<proto::DeployTasksRequest>,
    ) -> Result<Response<proto::Empty>, Status> {
        self.state.deploy(request.into_inner()).await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn cancel_tasks(
        &self,
        request: Request<proto::JobRequest>,
    ) -> Result<Response<proto::Empty>, Status> {
        let id = request.into_inner().job_id;
        let job: JobId = id
            .parse()
            .map_err(|_| Status::invalid_argument(format!("bad job id '{id}'")))?;
        self.state.cancel(job);
        Ok(Response::new(proto::Empty {}))
    }

    async fn exchange(
        &self,
        request: Request<tonic::Streaming<proto::Frame>>,
    ) -> Result<Response<proto::Empty>, Status> {
        self.state.inbound.receive(request.into_inner()).await?;
        Ok(Response::new(proto::Empty {}))
    }
}
