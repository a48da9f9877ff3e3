//! The checkpoint coordinator of one job (Flink's `CheckpointCoordinator`,
//! part of the job master): triggers checkpoints, collects the subtasks'
//! acknowledgements, writes completed checkpoints and announces them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use weir_common::CheckpointingOptions;

use super::storage::CheckpointStorage;
use super::{
    CheckpointChannels, CheckpointReport, Completed, SavepointRequest, TaskKey, TaskSnapshot,
};
use crate::RuntimeError;
use crate::graph::JobGraph;

/// How a checkpoint ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStatus {
    Completed,
    /// Not complete within 'execution.checkpointing.timeout', declined by
    /// a subtask, or failed to write.
    Failed(String),
}

/// One entry of a job's checkpoint history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    pub id: u64,
    pub status: CheckpointStatus,
    /// From the trigger to the manifest written (or the failure).
    pub duration: Duration,
    /// Bytes of state written.
    pub size: u64,
}

/// A checkpoint some subtasks have acknowledged.
struct Pending {
    started: Instant,
    acks: BTreeMap<TaskKey, TaskSnapshot>,
    /// The savepoint the checkpoint is taken for.
    savepoint: Option<SavepointRequest>,
}

/// A stop-with-savepoint whose savepoint is written: the job stops once
/// every sink has committed the savepoint's data.
struct Stopping {
    checkpoint: u64,
    path: String,
    reply: oneshot::Sender<Result<String, RuntimeError>>,
    sinks: BTreeSet<TaskKey>,
}

/// Triggers and completes one job's checkpoints; runs alongside its subtasks.
pub struct CheckpointCoordinator {
    options: CheckpointingOptions,
    storage: CheckpointStorage,
    graph: JobGraph,
    tasks: BTreeSet<TaskKey>,
    finished: BTreeMap<TaskKey, TaskSnapshot>,
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    last_completed: Option<Instant>,
    consecutive_failures: usize,
    triggers: watch::Sender<u64>,
    completed: watch::Sender<Completed>,
    reports: mpsc::UnboundedReceiver<CheckpointReport>,
    savepoints: mpsc::UnboundedReceiver<SavepointRequest>,
    stopping: Option<Stopping>,
    /// A stop-with-savepoint was asked for: no checkpoint follows it, so no
    /// sink commits data after the savepoint before the job stops.
    stopped: bool,
    history: Arc<Mutex<Vec<CheckpointStats>>>,
}

impl std::fmt::Debug for CheckpointCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointCoordinator")
            .field("storage", &self.storage.display())
            .field("next_id", &self.next_id)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// How a coordinator ended, with the savepoint requests it served.
pub struct CoordinatorExit {
    pub result: Result<(), RuntimeError>,
    pub savepoints: mpsc::UnboundedReceiver<SavepointRequest>,
}

impl CheckpointCoordinator {
    /// A coordinator for `graph`'s subtasks, numbering checkpoints after
    /// `restored_id` (0 for a fresh start); the channels go to the subtasks.
    pub fn new(
        options: CheckpointingOptions,
        storage: CheckpointStorage,
        graph: JobGraph,
        restored_id: u64,
        history: Arc<Mutex<Vec<CheckpointStats>>>,
        savepoints: mpsc::UnboundedReceiver<SavepointRequest>,
    ) -> (Self, CheckpointChannels) {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let (triggers, triggers_rx) = watch::channel(restored_id);
        let (completed, completed_rx) = watch::channel(Completed {
            checkpoint: restored_id,
            last: false,
        });
        let tasks = graph
            .vertices
            .iter()
            .flat_map(|v| {
                (0..v.parallelism).map(move |subtask| TaskKey {
                    vertex: v.id,
                    subtask,
                })
            })
            .collect();
        let coordinator = Self {
            options,
            storage,
            graph,
            tasks,
            finished: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_id: restored_id + 1,
            last_completed: None,
            consecutive_failures: 0,
            triggers,
            completed,
            reports,
            savepoints,
            stopping: None,
            stopped: false,
            history,
        };
        let channels = CheckpointChannels {
            reports: reports_tx,
            triggers: triggers_rx,
            completed: completed_rx,
        };
        (coordinator, channels)
    }

    /// Runs until every subtask has finished and the last checkpoint is
    /// written (then the job may end), or a checkpoint fails more often in a
    /// row than 'execution.checkpointing.tolerable-failed-checkpoints'.
    /// Gives back the savepoint requests, for the job's next attempt.
    pub async fn run(mut self) -> CoordinatorExit {
        let result = self.coordinate().await;
        CoordinatorExit {
            result,
            savepoints: self.savepoints,
        }
    }

    /// Runs the coordinator on a thread of its own, as Flink's job master
    /// runs apart from its task managers: subtasks that keep the job's
    /// runtime busy must not delay triggers and completions. The thread
    /// ends with the job: when its last subtask is gone, the report channel
    /// closes.
    pub fn spawn(self) -> Result<tokio::sync::oneshot::Receiver<CoordinatorExit>, RuntimeError> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let cannot_start =
            |e: &dyn std::fmt::Display| format!("cannot start the checkpoint coordinator: {e}");
        std::thread::Builder::new()
            .name("weir-checkpoints".into())
            .spawn(move || {
                let exit = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(self.run()),
                    Err(e) => CoordinatorExit {
                        result: Err(RuntimeError::Checkpoint(cannot_start(&e))),
                        savepoints: self.into_savepoints(),
                    },
                };
                let _ = done_tx.send(exit);
            })
            .map_err(|e| RuntimeError::Checkpoint(cannot_start(&e)))?;
        Ok(done_rx)
    }

    /// The savepoint requests of a coordinator that never ran.
    pub fn into_savepoints(self) -> mpsc::UnboundedReceiver<SavepointRequest> {
        self.savepoints
    }

    async fn coordinate(&mut self) -> Result<(), RuntimeError> {
        let start = tokio::time::Instant::now() + self.options.interval;
        let mut tick =
            tokio::time::interval_at(start, self.options.interval.min(self.options.timeout));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.expire()?;
                    self.maybe_trigger();
                }
                Some(request) = self.savepoints.recv(), if !self.stopped => {
                    self.stopped = request.stop;
                    // A savepoint is taken at once, whatever the pause
                    // and concurrency limits of periodic checkpoints.
                    self.trigger(Some(request));
                }
                report = self.reports.recv() => match report {
                    // Every subtask is gone: the job is being torn down.
                    None => return Ok(()),
                    Some(CheckpointReport::Acknowledged { checkpoint, task, snapshot }) => {
                        if let Some(pending) = self.pending.get_mut(&checkpoint) {
                            pending.acks.insert(task, snapshot);
                            self.try_complete(checkpoint).await?;
                        }
                    }
                    Some(CheckpointReport::Declined { checkpoint, task, reason }) => {
                        if let Some(pending) = self.pending.remove(&checkpoint) {
                            let reason = format!("{} declined it: {reason}", self.task_name(task));
                            self.abandon(checkpoint, pending, reason)?;
                        }
                    }
                    Some(CheckpointReport::Committed { checkpoint, task }) => {
                        self.committed(checkpoint, task);
                    }
                    Some(CheckpointReport::Finished { task, snapshot }) => {
                        self.finished.insert(task, snapshot);
                        if self.finished.len() == self.tasks.len() {
                            return self.complete_last().await;
                        }
                        let ids: Vec<u64> = self.pending.keys().copied().collect();
                        for id in ids {
                            self.try_complete(id).await?;
                        }
                    }
                },
            }
        }
    }

    fn maybe_trigger(&mut self) {
        if self.stopped {
            return;
        }
        if self.pending.len() >= self.options.max_concurrent {
            return;
        }
        if self
            .last_completed
            .is_some_and(|at| at.elapsed() < self.options.min_pause)
        {
            return;
        }
        self.trigger(None);
    }

    fn trigger(&mut self, savepoint: Option<SavepointRequest>) {
        let id = self.next_id;
        self.next_id += 1;
        tracing::debug!(
            checkpoint = id,
            savepoint = savepoint.is_some(),
            "checkpoint triggered"
        );
        self.pending.insert(
            id,
            Pending {
                started: Instant::now(),
                acks: BTreeMap::new(),
                savepoint,
            },
        );
        self.triggers.send_replace(id);
    }

    /// A sink committed checkpoint `checkpoint`: a stop waiting for it may end.
    fn committed(&mut self, checkpoint: u64, task: TaskKey) {
        if let Some(stopping) = &mut self.stopping
            && checkpoint >= stopping.checkpoint
        {
            stopping.sinks.remove(&task);
        }
        self.maybe_stop();
    }

    /// Answers a stop-with-savepoint once no sink has the savepoint's data
    /// left to commit.
    fn maybe_stop(&mut self) {
        if self.stopping.as_ref().is_some_and(|s| s.sinks.is_empty())
            && let Some(stopping) = self.stopping.take()
        {
            let _ = stopping.reply.send(Ok(stopping.path));
        }
    }

    /// Writes checkpoint `id` also as the savepoint `request` asked for, and
    /// answers it (a stop, once the sinks have committed).
    async fn write_savepoint(
        &mut self,
        id: u64,
        request: SavepointRequest,
        snapshots: &BTreeMap<TaskKey, TaskSnapshot>,
    ) {
        let written = async {
            let storage = CheckpointStorage::create_savepoint(&request.dir, &request.job)?;
            // What workers wrote into the checkpoint is copied over.
            let snapshots = self.storage.load_written(snapshots).await?;
            storage.write_savepoint(id, &self.graph, &snapshots).await?;
            Ok(storage.display().to_string())
        }
        .await;
        match written {
            Ok(path) if request.stop => {
                tracing::info!(checkpoint = id, %path, "savepoint written; stopping once the sinks have committed");
                self.stopping = Some(Stopping {
                    checkpoint: id,
                    path,
                    reply: request.reply,
                    sinks: self.sink_tasks(),
                });
                self.maybe_stop();
            }
            Ok(path) => {
                tracing::info!(checkpoint = id, %path, "savepoint written");
                let _ = request.reply.send(Ok(path));
            }
            Err(e) => {
                // A stop that failed leaves the job running, checkpointing as before.
                self.stopped &= !request.stop;
                let _ = request.reply.send(Err(e));
            }
        }
    }

    /// The subtasks that end in a sink, and have not finished.
    fn sink_tasks(&self) -> BTreeSet<TaskKey> {
        self.tasks
            .iter()
            .filter(|t| {
                self.graph
                    .vertices
                    .get(t.vertex.0)
                    .is_some_and(|v| matches!(v.output, crate::graph::VertexOutput::Sink(_)))
                    && !self.finished.contains_key(t)
            })
            .copied()
            .collect()
    }

    /// Fails checkpoints older than the timeout.
    fn expire(&mut self) -> Result<(), RuntimeError> {
        let timeout = self.options.timeout;
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.started.elapsed() > timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(pending) = self.pending.remove(&id) {
                let missing: Vec<String> = self
                    .tasks
                    .iter()
                    .filter(|t| !pending.acks.contains_key(t) && !self.finished.contains_key(t))
                    .take(3)
                    .map(|t| self.task_name(*t))
                    .collect();
                let reason = format!(
                    "not complete after {:?} ('execution.checkpointing.timeout'); waiting for {}",
                    timeout,
                    missing.join(", ")
                );
                self.abandon(id, pending, reason)?;
            }
        }
        Ok(())
    }

    fn task_name(&self, task: TaskKey) -> String {
        match self.graph.vertices.get(task.vertex.0) {
            Some(v) => format!("{} ({}/{})", v.name(), task.subtask + 1, v.parallelism),
            None => task.to_string(),
        }
    }

    /// Gives up pending checkpoint `id`: a savepoint waiting for it hears
    /// why, and the failure counts toward the tolerable ones.
    fn abandon(
        &mut self,
        id: u64,
        mut pending: Pending,
        reason: String,
    ) -> Result<(), RuntimeError> {
        if let Some(request) = pending.savepoint.take() {
            // A stop that failed leaves the job running, checkpointing as before.
            self.stopped &= !request.stop;
            let _ = request.reply.send(Err(RuntimeError::Checkpoint(format!(
                "the savepoint (checkpoint {id}) failed: {reason}"
            ))));
        }
        self.fail(id, pending.started, reason)
    }

    fn fail(&mut self, id: u64, started: Instant, reason: String) -> Result<(), RuntimeError> {
        tracing::warn!(checkpoint = id, %reason, "checkpoint failed");
        self.record(CheckpointStats {
            id,
            status: CheckpointStatus::Failed(reason.clone()),
            duration: started.elapsed(),
            size: 0,
        });
        self.consecutive_failures += 1;
        if self.consecutive_failures > self.options.tolerable_failures {
            return Err(RuntimeError::Checkpoint(format!(
                "checkpoint {id} failed: {reason} (more failures in a row than 'execution.checkpointing.tolerable-failed-checkpoints' = {})",
                self.options.tolerable_failures
            )));
        }
        Ok(())
    }

    fn record(&self, stats: CheckpointStats) {
        if let Ok(mut history) = self.history.lock() {
            history.push(stats);
        }
    }

    async fn try_complete(&mut self, id: u64) -> Result<(), RuntimeError> {
        let Some(pending) = self.pending.get(&id) else {
            return Ok(());
        };
        let covered = self
            .tasks
            .iter()
            .all(|t| pending.acks.contains_key(t) || self.finished.contains_key(t));
        if !covered {
            return Ok(());
        }
        let Some(mut pending) = self.pending.remove(&id) else {
            return Ok(());
        };
        let mut snapshots = std::mem::take(&mut pending.acks);
        for (task, snapshot) in &self.finished {
            snapshots.entry(*task).or_insert_with(|| snapshot.clone());
        }
        match self.storage.write(id, &self.graph, false, &snapshots).await {
            Ok(written) => {
                // A newer checkpoint subsumes older pending ones.
                self.pending.retain(|older, _| *older > id);
                self.consecutive_failures = 0;
                self.last_completed = Some(Instant::now());
                let duration = pending.started.elapsed();
                tracing::info!(
                    checkpoint = id,
                    ?duration,
                    bytes = written.bytes,
                    "checkpoint completed"
                );
                self.record(CheckpointStats {
                    id,
                    status: CheckpointStatus::Completed,
                    duration,
                    size: written.bytes,
                });
                self.completed.send_replace(Completed {
                    checkpoint: id,
                    last: false,
                });
                if let Err(e) = self.storage.prune(self.options.num_retained).await {
                    tracing::warn!(error = %e, "cannot delete old checkpoints");
                }
                if let Some(request) = pending.savepoint {
                    self.write_savepoint(id, request, &snapshots).await;
                }
                Ok(())
            }
            Err(e) => self.abandon(id, pending, e.to_string()),
        }
    }

    /// Every subtask finished: the last checkpoint records the sinks' last
    /// committables, then the sinks commit them.
    async fn complete_last(&mut self) -> Result<(), RuntimeError> {
        let id = self.next_id;
        self.storage
            .write(id, &self.graph, true, &self.finished)
            .await?;
        self.completed.send_replace(Completed {
            checkpoint: id,
            last: true,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir_common::RestartStrategy;

    use super::*;
    use crate::checkpoint::storage::tests::graph;
    use crate::graph::VertexId;

    fn options(tolerable_failures: usize) -> CheckpointingOptions {
        CheckpointingOptions {
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(60),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            dir: None,
            num_retained: 1,
            tolerable_failures,
            savepoint_dir: None,
            restore: None,
            restart: RestartStrategy::None,
        }
    }

    /// A declined checkpoint fails with the subtask and its reason, and the
    /// job fails only past the tolerable failures in a row.
    #[tokio::test]
    async fn a_declined_checkpoint_names_the_subtask_and_counts_toward_the_tolerable_failures() {
        let graph = graph();
        let storage = CheckpointStorage::open(None, &graph, crate::JobId(2)).expect("storage");
        let history = Arc::new(Mutex::new(Vec::new()));
        let (_savepoints, requests) = mpsc::unbounded_channel();
        let (coordinator, mut channels) = CheckpointCoordinator::new(
            options(1),
            storage,
            graph,
            0,
            Arc::clone(&history),
            requests,
        );
        let exit = coordinator.spawn().expect("spawn");
        let task = TaskKey {
            vertex: VertexId(0),
            subtask: 1,
        };
        for expected in [1, 2] {
            channels.triggers.changed().await.expect("triggered");
            let checkpoint = *channels.triggers.borrow_and_update();
            assert_eq!(checkpoint, expected);
            channels
                .reports
                .send(CheckpointReport::Declined {
                    checkpoint,
                    task,
                    reason: "disk full".into(),
                })
                .expect("report");
        }
        let exit = exit.await.expect("the coordinator ends");
        let error = exit
            .result
            .expect_err("two failures in a row, one tolerated");
        assert!(
            error
                .to_string()
                .contains("tolerable-failed-checkpoints' = 1"),
            "{error}"
        );
        let history = history.lock().expect("history").clone();
        assert_eq!(history.len(), 2, "{history:?}");
        for stats in &history {
            let CheckpointStatus::Failed(reason) = &stats.status else {
                panic!("{stats:?}");
            };
            assert!(reason.contains("(2/2) declined it: disk full"), "{reason}");
        }
    }
}
