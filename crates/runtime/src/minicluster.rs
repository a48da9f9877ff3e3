//! Runs job graphs inside this process: the embedded cluster behind
//! `weir run` and `weir sql`.
//!
//! Deploying a job: plan each source's splits and spread them over its
//! subtasks, create one bounded channel per producer/consumer subtask pair
//! of every edge, open readers and writers, and spawn every subtask into the
//! job's [`JoinSet`]. The job's driver task owns that set, so cancelling or
//! dropping the [`JobHandle`] stops every subtask; no task outlives its job.
//! The first subtask that fails fails the job, and the others are stopped.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use weir_common::StreamBatch;
use weir_connector::{SinkContext, SourceContext, SourceMetrics, SourceSplit};

use crate::RuntimeError;
use crate::exchange::{CHANNEL_CAPACITY, InputChannel, InputGate, OutputEdge};
use crate::graph::{JobGraph, JobVertex, Partitioning, VertexId, VertexInput, VertexOutput};
use crate::message::Message;
use crate::metrics::{JobMetrics, OperatorMetrics, SOURCE_PREFIX};
use crate::operator::OperatorContext;
use crate::source_task::SourceDriver;
use crate::task::{Chained, Subtask, SubtaskInput, SubtaskOutput};

/// Identifies a job, printed as 32 hex digits as Flink prints job ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobId(pub u128);

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
            JobStatus::Finished => f.write_str("FINISHED"),
            JobStatus::Failed(_) => f.write_str("FAILED"),
            JobStatus::Cancelled => f.write_str("CANCELED"),
        }
    }
}

/// A submitted job. Dropping the handle cancels the job.
#[derive(Debug)]
pub struct JobHandle {
    pub id: JobId,
    pub name: String,
    status: watch::Receiver<JobStatus>,
    metrics: Arc<JobMetrics>,
    results: Option<mpsc::Receiver<StreamBatch>>,
    driver: Option<JoinHandle<Result<(), RuntimeError>>>,
}

impl JobHandle {
    pub fn status(&self) -> JobStatus {
        self.status.borrow().clone()
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
                JobStatus::Failed(message) => Err(RuntimeError::Internal(message)),
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
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The embedded cluster: runs jobs on this process's tokio runtime.
#[derive(Debug, Default)]
pub struct MiniCluster {}

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
        let job_metrics = Arc::clone(&metrics);
        let driver = tokio::spawn(async move {
            let _ = status_tx.send(JobStatus::Running);
            tracing::info!(job = %id, name = %graph.name, vertices = graph.vertices.len(), "job started");
            let result = run_job(id, graph, job_metrics, results_tx).await;
            match &result {
                Ok(()) => tracing::info!(job = %id, "job finished"),
                Err(RuntimeError::Cancelled) => tracing::info!(job = %id, "job cancelled"),
                Err(e) => tracing::warn!(job = %id, error = %e, "job failed"),
            }
            let _ = status_tx.send(match &result {
                Ok(()) => JobStatus::Finished,
                Err(RuntimeError::Cancelled) => JobStatus::Cancelled,
                Err(e) => JobStatus::Failed(e.to_string()),
            });
            result
        });
        Ok(JobHandle {
            id,
            name,
            status: status_rx,
            metrics,
            results: results_rx,
            driver: Some(driver),
        })
    }
}

/// Spreads splits over subtasks: largest first onto the least loaded, then
/// each subtask reads its splits in their listed order.
fn assign_splits(splits: Vec<SourceSplit>, parallelism: usize) -> Vec<Vec<SourceSplit>> {
    let mut order: Vec<usize> = (0..splits.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(splits[i].size_hint), i));
    let mut load = vec![0u64; parallelism];
    let mut owner = vec![0usize; splits.len()];
    for i in order {
        let target = (0..parallelism).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        load[target] += splits[i].size_hint.max(1);
        owner[i] = target;
    }
    let mut assigned = vec![Vec::new(); parallelism];
    for (i, split) in splits.into_iter().enumerate() {
        assigned[owner[i]].push(split);
    }
    assigned
}

/// The channels of one edge, indexed by producing then consuming subtask.
struct EdgeChannels {
    senders: Vec<Vec<mpsc::Sender<Message>>>,
}

async fn run_job(
    id: JobId,
    graph: JobGraph,
    metrics: Arc<JobMetrics>,
    results: Option<mpsc::Sender<StreamBatch>>,
) -> Result<(), RuntimeError> {
    // Receivers per consuming (vertex, subtask), senders per edge.
    let mut receivers: HashMap<(VertexId, usize), Vec<InputChannel>> = HashMap::new();
    let mut edge_senders: HashMap<(VertexId, VertexId), EdgeChannels> = HashMap::new();
    for vertex in &graph.vertices {
        let VertexInput::Edges(edges) = &vertex.input else {
            continue;
        };
        for edge in edges {
            let upstream = graph.vertices[edge.from.0].parallelism;
            let mut senders = vec![Vec::new(); upstream];
            for (producer, producer_senders) in senders.iter_mut().enumerate() {
                let consumers: Vec<usize> = match edge.partitioning {
                    Partitioning::Forward => vec![producer],
                    Partitioning::Global => vec![0],
                    _ => (0..vertex.parallelism).collect(),
                };
                for consumer in consumers {
                    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                    producer_senders.push(tx);
                    receivers
                        .entry((vertex.id, consumer))
                        .or_default()
                        .push(InputChannel {
                            receiver: rx,
                            input: edge.input,
                        });
                }
            }
            edge_senders.insert((edge.from, vertex.id), EdgeChannels { senders });
        }
    }

    let mut tasks = JoinSet::new();
    for vertex in &graph.vertices {
        let name = vertex.name();
        let mut assigned = match &vertex.input {
            VertexInput::Source(source) => {
                let splits = source
                    .factory
                    .plan_splits(vertex.parallelism)
                    .await
                    .map_err(|e| {
                        RuntimeError::connector(&format!("{SOURCE_PREFIX}{}", source.table), e)
                    })?;
                metrics.register_splits(source.factory.boundedness(), &splits);
                assign_splits(splits, vertex.parallelism)
            }
            VertexInput::Edges(_) => Vec::new(),
        };
        for subtask in 0..vertex.parallelism {
            let task_name = format!("{name} ({}/{})", subtask + 1, vertex.parallelism);
            let context = OperatorContext {
                subtask,
                parallelism: vertex.parallelism,
                max_parallelism: graph.max_parallelism,
            };
            let input = match &vertex.input {
                VertexInput::Source(source) => {
                    let splits = std::mem::take(assigned.get_mut(subtask).ok_or_else(|| {
                        RuntimeError::Internal(format!("no split assignment for subtask {subtask}"))
                    })?);
                    let source_metrics = Arc::new(SourceMetrics::default());
                    metrics.register_source(Arc::clone(&source_metrics));
                    let split_count = splits.len();
                    let reader = source
                        .factory
                        .create_reader(SourceContext {
                            subtask,
                            parallelism: vertex.parallelism,
                            splits,
                            projection: source.projection.clone(),
                            metrics: source_metrics,
                        })
                        .await
                        .map_err(|e| RuntimeError::connector(&task_name, e))?;
                    let op_metrics = Arc::new(OperatorMetrics::new(
                        &task_name,
                        &format!("{SOURCE_PREFIX}{}", source.table),
                    ));
                    metrics.register_operator(Arc::clone(&op_metrics));
                    SubtaskInput::Source(SourceDriver::new(
                        task_name.clone(),
                        reader,
                        source.transforms.clone(),
                        source.watermark.clone(),
                        split_count,
                        source.idle_timeout,
                        op_metrics,
                    ))
                }
                VertexInput::Edges(_) => {
                    let channels = receivers.remove(&(vertex.id, subtask)).unwrap_or_default();
                    SubtaskInput::Gate(InputGate::new(channels))
                }
            };
            let chain = instantiate_chain(vertex, &context, &task_name, &metrics)?;
            let output = match &vertex.output {
                VertexOutput::Downstream => {
                    let mut edges = Vec::new();
                    for (consumer, edge) in graph.downstream(vertex.id) {
                        let channels =
                            edge_senders
                                .get_mut(&(vertex.id, consumer))
                                .ok_or_else(|| {
                                    RuntimeError::Internal(format!(
                                        "no channels for edge {} -> {consumer}",
                                        vertex.id
                                    ))
                                })?;
                        let senders = std::mem::take(&mut channels.senders[subtask]);
                        edges.push(OutputEdge::new(
                            senders,
                            edge.partitioning.clone(),
                            graph.max_parallelism,
                        ));
                    }
                    SubtaskOutput::Edges(edges)
                }
                VertexOutput::Sink(sink) => {
                    let writer = sink
                        .factory
                        .create_writer(SinkContext {
                            subtask,
                            parallelism: vertex.parallelism,
                            job_id: id.to_string(),
                        })
                        .await
                        .map_err(|e| RuntimeError::connector(&task_name, e))?;
                    SubtaskOutput::Sink(writer)
                }
                VertexOutput::Collect => match &results {
                    Some(tx) => SubtaskOutput::Collect(tx.clone()),
                    None => {
                        return Err(RuntimeError::Internal(
                            "collect vertex without a result channel".into(),
                        ));
                    }
                },
            };
            let task = Subtask {
                name: task_name,
                input,
                chain,
                output,
            };
            tasks.spawn(task.run());
        }
    }
    // The client's receiver ends when every collecting subtask has dropped its sender.
    drop(results);

    let mut failure: Option<RuntimeError> = None;
    while let Some(joined) = tasks.join_next().await {
        let result =
            joined.unwrap_or_else(|e| Err(RuntimeError::Internal(format!("subtask crashed: {e}"))));
        match result {
            Ok(()) => {}
            Err(RuntimeError::Cancelled) => {
                failure.get_or_insert(RuntimeError::Cancelled);
            }
            Err(e) => {
                tasks.abort_all();
                if matches!(failure, None | Some(RuntimeError::Cancelled)) {
                    failure = Some(e);
                }
            }
        }
    }
    match failure {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

fn instantiate_chain(
    vertex: &JobVertex,
    context: &OperatorContext,
    task_name: &str,
    metrics: &JobMetrics,
) -> Result<Vec<Chained>, RuntimeError> {
    vertex
        .operators
        .iter()
        .map(|factory| {
            let mut operator = factory
                .create(context)
                .map_err(|e| RuntimeError::operator(task_name, &factory.name(), e))?;
            operator
                .open(context)
                .map_err(|e| RuntimeError::operator(task_name, &factory.name(), e))?;
            let op_metrics = Arc::new(OperatorMetrics::new(task_name, operator.name()));
            metrics.register_operator(Arc::clone(&op_metrics));
            Ok(Chained {
                operator,
                metrics: op_metrics,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(id: &str, size: u64) -> SourceSplit {
        SourceSplit {
            id: id.to_string(),
            size_hint: size,
        }
    }

    #[test]
    fn splits_are_balanced_by_size_and_keep_their_order() {
        let assigned = assign_splits(
            vec![
                split("a", 10),
                split("b", 100),
                split("c", 10),
                split("d", 10),
            ],
            2,
        );
        let ids: Vec<Vec<&str>> = assigned
            .iter()
            .map(|s| s.iter().map(|x| x.id.as_str()).collect())
            .collect();
        assert_eq!(ids, vec![vec!["b"], vec!["a", "c", "d"]]);
    }
}
