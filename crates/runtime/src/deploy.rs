//! Deploying a job's subtasks in one process: the task executor a cluster
//! worker runs the subtasks placed in its slots with (every subtask, when
//! the worker is the embedded cluster's only one).
//!
//! A deployment happens in three steps:
//! 1. The job master plans each source's splits once ([`plan_splits`]) and
//!    spreads them over the source's subtasks.
//! 2. Each process runs [`deploy`] for the subtasks placed on it. It creates
//!    one bounded channel per producer/consumer subtask pair of every edge,
//!    opens readers and writers, and spawns the subtasks. A channel whose
//!    other end runs in another process is handed back, as
//!    [`DeployedTasks::outbound`] or [`DeployedTasks::inbound`], for the
//!    cluster's network exchange to connect; on a lone worker there are none.
//! 3. [`supervise`] waits for the subtasks: the first one that fails fails
//!    the deployment, and the others are stopped.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use weir_common::StreamBatch;
use weir_connector::{SinkContext, SourceContext, SourceMetrics, SourceSplit};

use crate::RuntimeError;
use crate::checkpoint::{
    CheckpointSetup, RestoredCheckpoint, StateSlot, TaskCheckpointing, TaskKey, splits_from_state,
};
use crate::exchange::{CHANNEL_CAPACITY, InputChannel, InputGate, OutputEdge};
use crate::graph::{JobGraph, JobVertex, Partitioning, VertexId, VertexInput, VertexOutput};
use crate::job::JobId;
use crate::message::Message;
use crate::metrics::{InputPlan, JobMetrics, OperatorMetrics, SOURCE_PREFIX};
use crate::operator::OperatorContext;
use crate::source_task::SourceDriver;
use crate::task::{Chained, Subtask, SubtaskInput, SubtaskOutput};

/// One channel of an edge: from a producing subtask to a consuming one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId {
    pub from: VertexId,
    pub to: VertexId,
    pub producer: usize,
    pub consumer: usize,
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vertex {} subtask {} -> vertex {} subtask {}",
            self.from, self.producer, self.to, self.consumer
        )
    }
}

/// The splits each source subtask reads, by vertex then subtask.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitAssignment {
    pub splits: BTreeMap<VertexId, Vec<Vec<SourceSplit>>>,
    /// The whole input, for progress; known where the splits are planned.
    pub input: InputPlan,
}

impl SplitAssignment {
    fn take(&mut self, vertex: VertexId, subtask: usize) -> Result<Vec<SourceSplit>, RuntimeError> {
        self.splits
            .get_mut(&vertex)
            .and_then(|subtasks| subtasks.get_mut(subtask))
            .map(std::mem::take)
            .ok_or_else(|| {
                RuntimeError::Internal(format!(
                    "no split assignment for vertex {vertex} subtask {subtask}"
                ))
            })
    }
}

/// Plans every source's splits and spreads them over its subtasks; done
/// once per job attempt, by whoever schedules the job. A job restarted from
/// a checkpoint takes the splits recorded in it, with their positions.
pub async fn plan_splits(
    graph: &JobGraph,
    restored: Option<&RestoredCheckpoint>,
) -> Result<SplitAssignment, RuntimeError> {
    let mut assignment = SplitAssignment::default();
    for vertex in &graph.vertices {
        if let VertexInput::Source(source) = &vertex.input {
            if let Some(restored) = restored.filter(|r| r.has_vertex(vertex.id)) {
                let mut subtasks = Vec::with_capacity(vertex.parallelism);
                for subtask in 0..vertex.parallelism {
                    let state = restored.state_for(
                        vertex.id,
                        StateSlot::Source,
                        subtask,
                        vertex.parallelism,
                        graph.max_parallelism,
                    )?;
                    let splits = match state {
                        Some(state) => splits_from_state(&state)?,
                        None => Vec::new(),
                    };
                    assignment.input.add(source.factory.boundedness(), &splits);
                    subtasks.push(splits);
                }
                assignment.splits.insert(vertex.id, subtasks);
                continue;
            }
            let splits = source
                .factory
                .plan_splits(vertex.parallelism)
                .await
                .map_err(|e| {
                    RuntimeError::connector(&format!("{SOURCE_PREFIX}{}", source.table), e)
                })?;
            assignment.input.add(source.factory.boundedness(), &splits);
            assignment
                .splits
                .insert(vertex.id, assign_splits(splits, vertex.parallelism));
        }
    }
    Ok(assignment)
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

/// What one process deploys of a job.
pub struct TaskDeployment<'a> {
    pub job: JobId,
    pub graph: &'a JobGraph,
    pub splits: SplitAssignment,
    /// Whether this process runs subtask `s` of vertex `v`.
    pub runs_here: &'a (dyn Fn(VertexId, usize) -> bool + Sync),
    pub metrics: Arc<JobMetrics>,
    /// Where the local subtasks of a `Collect` vertex send their rows.
    pub results: Option<mpsc::Sender<StreamBatch>>,
    /// How the subtasks take part in checkpoints, if the job takes them.
    pub checkpoint: Option<CheckpointSetup>,
}

/// The running subtasks of a deployment and the channels that cross to
/// other processes.
pub struct DeployedTasks {
    pub tasks: JoinSet<Result<(), RuntimeError>>,
    /// Channels whose consumer runs elsewhere: what a local producer sends
    /// arrives on the receiver, to be forwarded.
    pub outbound: Vec<(ChannelId, mpsc::Receiver<Message>)>,
    /// Channels whose producer runs elsewhere: what arrives from it is to be
    /// sent on the sender, which feeds a local consumer.
    pub inbound: Vec<(ChannelId, mpsc::Sender<Message>)>,
}

impl fmt::Debug for DeployedTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeployedTasks")
            .field("tasks", &self.tasks.len())
            .field("outbound", &self.outbound.len())
            .field("inbound", &self.inbound.len())
            .finish()
    }
}

/// Creates the channels of the local subtasks and spawns them.
pub async fn deploy(deployment: TaskDeployment<'_>) -> Result<DeployedTasks, RuntimeError> {
    let TaskDeployment {
        job,
        graph,
        mut splits,
        runs_here,
        metrics,
        results,
        checkpoint,
    } = deployment;
    let restored = checkpoint.as_ref().and_then(|c| c.restored.as_deref());
    let mut outbound = Vec::new();
    let mut inbound = Vec::new();
    // Receivers per consuming (vertex, subtask), senders per edge and producer.
    let mut receivers: HashMap<(VertexId, usize), Vec<InputChannel>> = HashMap::new();
    let mut senders: HashMap<(VertexId, VertexId, usize), Vec<mpsc::Sender<Message>>> =
        HashMap::new();
    for vertex in &graph.vertices {
        let VertexInput::Edges(edges) = &vertex.input else {
            continue;
        };
        for edge in edges {
            let upstream = graph.vertices[edge.from.0].parallelism;
            for producer in 0..upstream {
                let consumers: Vec<usize> = match edge.partitioning {
                    Partitioning::Forward => vec![producer],
                    Partitioning::Global => vec![0],
                    _ => (0..vertex.parallelism).collect(),
                };
                let producer_here = runs_here(edge.from, producer);
                for consumer in consumers {
                    let consumer_here = runs_here(vertex.id, consumer);
                    if !producer_here && !consumer_here {
                        continue;
                    }
                    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                    let channel = ChannelId {
                        from: edge.from,
                        to: vertex.id,
                        producer,
                        consumer,
                    };
                    if producer_here {
                        senders
                            .entry((edge.from, vertex.id, producer))
                            .or_default()
                            .push(tx);
                    } else {
                        inbound.push((channel, tx));
                    }
                    if consumer_here {
                        receivers
                            .entry((vertex.id, consumer))
                            .or_default()
                            .push(InputChannel {
                                receiver: rx,
                                input: edge.input,
                            });
                    } else {
                        outbound.push((channel, rx));
                    }
                }
            }
        }
    }

    let mut chains = instantiate_chains(graph, runs_here, restored)?;
    let mut tasks = JoinSet::new();
    for vertex in &graph.vertices {
        let name = vertex.name();
        for subtask in (0..vertex.parallelism).filter(|&s| runs_here(vertex.id, s)) {
            let task_name = format!("{name} ({}/{})", subtask + 1, vertex.parallelism);
            // The source's own metrics, when the vertex reads a source.
            let mut source_op = None;
            let input = match &vertex.input {
                VertexInput::Source(source) => {
                    let splits = splits.take(vertex.id, subtask)?;
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
                    source_op = Some(Arc::clone(&op_metrics));
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
            let chain = chains.remove(&(vertex.id, subtask)).unwrap_or_default();
            for chained in &chain {
                metrics.register_operator(Arc::clone(&chained.metrics));
            }
            // The task's wait for room downstream counts on the operator
            // whose output leaves it.
            let last_op = chain.last().map(|c| Arc::clone(&c.metrics)).or(source_op);
            let output = match &vertex.output {
                VertexOutput::Downstream => {
                    let mut edges = Vec::new();
                    for (consumer, edge) in graph.downstream(vertex.id) {
                        let edge_senders = senders
                            .remove(&(vertex.id, consumer, subtask))
                            .ok_or_else(|| {
                                RuntimeError::Internal(format!(
                                    "no channels for edge {} -> {consumer}",
                                    vertex.id
                                ))
                            })?;
                        edges.push(OutputEdge::new(
                            edge_senders,
                            edge.partitioning.clone(),
                            graph.max_parallelism,
                            last_op.clone(),
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
                            job_id: job.to_string(),
                            checkpointing: checkpoint.is_some(),
                        })
                        .await
                        .map_err(|e| RuntimeError::connector(&task_name, e))?;
                    let mut writer = writer;
                    if let Some(restored) = restored {
                        let committables = restored
                            .state_for(
                                vertex.id,
                                StateSlot::Sink,
                                subtask,
                                vertex.parallelism,
                                graph.max_parallelism,
                            )?
                            .map(|s| s.batches)
                            .unwrap_or_default();
                        writer
                            .recover(committables)
                            .await
                            .map_err(|e| RuntimeError::connector(&task_name, e))?;
                    }
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
                checkpointing: checkpoint.as_ref().map(|c| {
                    TaskCheckpointing::new(
                        TaskKey {
                            vertex: vertex.id,
                            subtask,
                        },
                        &c.channels,
                    )
                }),
            };
            tasks.spawn(task.run());
        }
    }
    Ok(DeployedTasks {
        tasks,
        outbound,
        inbound,
    })
}

/// Waits for every task; the first failure stops the others and is returned.
pub async fn supervise(mut tasks: JoinSet<Result<(), RuntimeError>>) -> Result<(), RuntimeError> {
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

/// The operator chains of the subtasks that run here. Restoring state is
/// CPU work, so a restored job's chains are built on threads of their own,
/// as many at once as there are cores.
fn instantiate_chains(
    graph: &JobGraph,
    runs_here: &(dyn Fn(VertexId, usize) -> bool + Sync),
    restored: Option<&RestoredCheckpoint>,
) -> Result<HashMap<(VertexId, usize), Vec<Chained>>, RuntimeError> {
    let subtasks: Vec<(&JobVertex, usize)> = graph
        .vertices
        .iter()
        .flat_map(|v| (0..v.parallelism).map(move |s| (v, s)))
        .filter(|(v, s)| runs_here(v.id, *s))
        .collect();
    let build = |(vertex, subtask): (&JobVertex, usize)| {
        let context = OperatorContext {
            subtask,
            parallelism: vertex.parallelism,
            max_parallelism: graph.max_parallelism,
        };
        let task_name = format!("{} ({}/{})", vertex.name(), subtask + 1, vertex.parallelism);
        let chain = instantiate_chain(vertex, &context, &task_name, restored)?;
        Ok(((vertex.id, subtask), chain))
    };
    if restored.is_none() {
        return subtasks.into_iter().map(build).collect();
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut chains = HashMap::new();
    for group in subtasks.chunks(cores) {
        let built: Vec<Result<_, RuntimeError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|&subtask| scope.spawn(move || build(subtask)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(RuntimeError::Internal("restoring a subtask crashed".into()))
                    })
                })
                .collect()
        });
        for result in built {
            let (key, chain) = result?;
            chains.insert(key, chain);
        }
    }
    Ok(chains)
}

fn instantiate_chain(
    vertex: &JobVertex,
    context: &OperatorContext,
    task_name: &str,
    restored: Option<&RestoredCheckpoint>,
) -> Result<Vec<Chained>, RuntimeError> {
    vertex
        .operators
        .iter()
        .enumerate()
        .map(|(index, factory)| {
            let mut operator = factory
                .create(context)
                .map_err(|e| RuntimeError::operator(task_name, &factory.name(), e))?;
            let state = match restored {
                Some(restored) => restored.state_for(
                    vertex.id,
                    StateSlot::Operator(index),
                    context.subtask,
                    context.parallelism,
                    context.max_parallelism,
                )?,
                None => None,
            };
            if let Some(state) = state.filter(|s| s.batches.iter().any(|b| b.num_rows() > 0)) {
                operator
                    .restore_state(state)
                    .map_err(|e| RuntimeError::operator(task_name, &factory.name(), e))?;
            }
            operator
                .open(context)
                .map_err(|e| RuntimeError::operator(task_name, &factory.name(), e))?;
            let op_metrics = Arc::new(OperatorMetrics::new(task_name, operator.name()));
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
        SourceSplit::new(id, size)
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
