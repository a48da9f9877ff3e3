//! Checkpoints of a job that runs on workers: the checkpoint coordinator
//! runs in the job master, its subtasks on the workers, and this module
//! relays between them.
//!
//! ```text
//! job master: CheckpointCoordinator ── triggers, completions ──> CheckpointEvents stream ──> worker
//!                      ^                                                                      │
//!                      └── reports <── ReportCheckpoint(acks naming the state files) <────────┘
//! ```
//!
//! A worker holds local ends of the channels its subtasks use in the
//! embedded cluster too ([`CheckpointChannels`]), fed by the event stream,
//! and relays its subtasks' reports one call each, in order. Before it
//! relays an acknowledgement it writes the subtask's state files into the
//! checkpoint's directory under 'execution.checkpointing.dir', as Flink's
//! TaskManagers do, so state of any size never crosses the RPC; the job
//! master writes the manifest that lists them. Every worker must reach the
//! directory: a restarted attempt's workers read the checkpoint they
//! restore from there.

use std::pin::Pin;

use arrow::buffer::Buffer;
use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tonic::Status;
use weir_runtime::checkpoint::{
    CheckpointChannels, CheckpointReport, CheckpointStorage, Completed, RestoredCheckpoint,
    SavepointRequest, SlotState, StateRead, StateSlot, TaskKey, TaskSnapshot, WrittenState,
    decode_state, encode_state,
};
use weir_runtime::{JobId, RuntimeError, VertexId};

use crate::proto::checkpoint_report::Kind;
use crate::proto::coordinator_client::CoordinatorClient;
use crate::worker::Authed;
use crate::{ClusterError, proto};

/// The job master's side of one attempt's checkpoints, which the RPC
/// handlers serve.
#[derive(Debug)]
pub(crate) struct AttemptCheckpoints {
    pub(crate) attempt: u32,
    pub(crate) channels: CheckpointChannels,
    /// Savepoint requests to the attempt's checkpoint coordinator.
    pub(crate) savepoints: mpsc::UnboundedSender<SavepointRequest>,
    /// 'execution.checkpointing.savepoint-dir'.
    pub(crate) savepoint_dir: Option<String>,
}

/// Where an attempt's operator state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restore {
    Checkpoint(u64),
    /// The job's 'execution.savepoint.path' (its first attempt, before it
    /// has a checkpoint of its own).
    Savepoint,
}

/// Reads the state an attempt restores: its sources' splits, as the job
/// master plans them, or the whole of it, as each worker restores it.
pub(crate) async fn restored_state(
    graph: &weir_runtime::JobGraph,
    job: JobId,
    restore: Restore,
    what: StateRead,
) -> Result<RestoredCheckpoint, RuntimeError> {
    let options = graph.checkpointing.as_ref().ok_or_else(|| {
        RuntimeError::Checkpoint("the job takes no checkpoints to restore".into())
    })?;
    match restore {
        Restore::Checkpoint(id) => {
            CheckpointStorage::open(options.dir.as_deref(), graph, job)?
                .checkpoint(id, graph, what)
                .await
        }
        Restore::Savepoint => {
            let savepoint = options.restore.as_ref().ok_or_else(|| {
                RuntimeError::Checkpoint("the job has no 'execution.savepoint.path'".into())
            })?;
            CheckpointStorage::open_savepoint(&savepoint.path)?
                .read_savepoint(graph, savepoint.ignore_unclaimed, what)
                .await
        }
    }
}

pub(crate) type EventStream =
    Pin<Box<dyn Stream<Item = Result<proto::CheckpointEvent, Status>> + Send>>;

/// The latest triggered and completed checkpoints now and at every change,
/// until the coordinator stops.
pub(crate) fn events(channels: &CheckpointChannels) -> EventStream {
    let state = (channels.triggers(), channels.completed(), true);
    Box::pin(futures::stream::unfold(
        state,
        |(mut triggers, mut completed, first)| async move {
            if !first {
                let changed = tokio::select! {
                    changed = triggers.changed() => changed,
                    changed = completed.changed() => changed,
                };
                // A coordinator that stops right after announcing the job's
                // last checkpoint closes both channels: that news must
                // still go out.
                if changed.is_err()
                    && !triggers.borrow().has_changed()
                    && !completed.borrow().has_changed()
                {
                    return None;
                }
            }
            let done = *completed.borrow_and_update();
            let event = proto::CheckpointEvent {
                triggered: *triggers.borrow_and_update(),
                completed: done.checkpoint,
                last: done.last,
            };
            Some((Ok(event), (triggers, completed, false)))
        },
    ))
}

/// A report from a worker, as the coordinator takes it.
pub(crate) fn report_from_proto(
    report: proto::CheckpointReport,
) -> Result<CheckpointReport, Status> {
    let task = TaskKey {
        vertex: VertexId(report.vertex as usize),
        subtask: report.subtask as usize,
    };
    match report.kind {
        Some(Kind::Acknowledged(snapshot)) => Ok(CheckpointReport::Acknowledged {
            checkpoint: snapshot.checkpoint,
            task,
            snapshot: snapshot_from_proto(snapshot)?,
        }),
        Some(Kind::Committed(checkpoint)) => Ok(CheckpointReport::Committed { checkpoint, task }),
        Some(Kind::Declined(declined)) => Ok(CheckpointReport::Declined {
            checkpoint: declined.checkpoint,
            task,
            reason: declined.reason,
        }),
        Some(Kind::Finished(snapshot)) => Ok(CheckpointReport::Finished {
            task,
            snapshot: snapshot_from_proto(snapshot)?,
        }),
        None => Err(Status::invalid_argument(
            "a checkpoint report without a kind",
        )),
    }
}

fn snapshot_from_proto(snapshot: proto::TaskSnapshot) -> Result<TaskSnapshot, Status> {
    let states = snapshot
        .states
        .into_iter()
        .map(|state| {
            let slot = StateSlot::parse(&state.slot).ok_or_else(|| {
                Status::invalid_argument(format!("no state slot '{}'", state.slot))
            })?;
            if !state.file.is_empty() {
                let written = WrittenState {
                    path: state.file,
                    rows: state.rows,
                    bytes: state.bytes,
                };
                return Ok((slot, SlotState::Written(written)));
            }
            let decoded = decode_state(Buffer::from_vec(state.state)).map_err(|e| {
                Status::invalid_argument(format!(
                    "the state of slot '{}' is damaged: {e}",
                    state.slot
                ))
            })?;
            Ok((slot, SlotState::Batches(decoded)))
        })
        .collect::<Result<_, Status>>()?;
    Ok(TaskSnapshot { states })
}

fn snapshot_to_proto(
    checkpoint: u64,
    snapshot: &TaskSnapshot,
) -> Result<proto::TaskSnapshot, RuntimeError> {
    let states = snapshot
        .states
        .iter()
        .map(|(slot, state)| {
            let slot = slot.name();
            Ok(match state {
                SlotState::Batches(batches) => proto::SlotState {
                    slot,
                    state: encode_state(batches).map_err(|e| {
                        RuntimeError::Checkpoint(format!("cannot encode state: {e}"))
                    })?,
                    ..Default::default()
                },
                SlotState::Written(written) => proto::SlotState {
                    slot,
                    file: written.path.clone(),
                    rows: written.rows,
                    bytes: written.bytes,
                    ..Default::default()
                },
            })
        })
        .collect::<Result<_, RuntimeError>>()?;
    Ok(proto::TaskSnapshot { checkpoint, states })
}

fn report_to_proto(
    job: JobId,
    attempt: u32,
    report: &CheckpointReport,
) -> Result<proto::CheckpointReport, RuntimeError> {
    let (task, kind) = match report {
        CheckpointReport::Acknowledged {
            checkpoint,
            task,
            snapshot,
        } => (
            *task,
            Kind::Acknowledged(snapshot_to_proto(*checkpoint, snapshot)?),
        ),
        CheckpointReport::Committed { checkpoint, task } => (*task, Kind::Committed(*checkpoint)),
        CheckpointReport::Declined {
            checkpoint,
            task,
            reason,
        } => (
            *task,
            Kind::Declined(proto::Declined {
                checkpoint: *checkpoint,
                reason: reason.clone(),
            }),
        ),
        CheckpointReport::Finished { task, snapshot } => {
            (*task, Kind::Finished(snapshot_to_proto(0, snapshot)?))
        }
    };
    Ok(proto::CheckpointReport {
        job_id: job.to_string(),
        attempt,
        vertex: u32::try_from(task.vertex.0).unwrap_or(u32::MAX),
        subtask: u32::try_from(task.subtask).unwrap_or(u32::MAX),
        kind: Some(kind),
    })
}

/// A worker's relay for one attempt of a checkpointing job.
pub(crate) struct WorkerRelay {
    /// What the worker's subtasks use.
    pub(crate) channels: CheckpointChannels,
    /// Feeds the local channels from the coordinator's events; ends when
    /// the events end or no subtask listens any more.
    pub(crate) events: Pin<Box<dyn std::future::Future<Output = Result<(), RuntimeError>> + Send>>,
    /// Sends the subtasks' reports, in order; ends when every subtask is done.
    pub(crate) reports: Pin<Box<dyn std::future::Future<Output = Result<(), RuntimeError>> + Send>>,
}

/// Subscribes to the coordinator's checkpoint events for `job`'s `attempt`
/// and sets up the local channels from the coordinator's current state.
/// Subtasks take what a channel holds when they start as seen, so a
/// checkpoint triggered before they started is passed on once the relay
/// runs (after they started): its barrier still has to be injected here.
pub(crate) async fn worker_relay(
    coordinator: CoordinatorClient<Authed>,
    job: JobId,
    attempt: u32,
    storage: Option<CheckpointStorage>,
) -> Result<WorkerRelay, ClusterError> {
    let mut events = coordinator
        .clone()
        .checkpoint_events(proto::CheckpointEventsRequest {
            job_id: job.to_string(),
            attempt,
        })
        .await?
        .into_inner();
    let first = events
        .message()
        .await?
        .ok_or_else(|| ClusterError::Rpc("the checkpoint events ended at once".into()))?;
    let (triggers_tx, triggers) = watch::channel(first.completed);
    let (completed_tx, completed) = watch::channel(Completed {
        checkpoint: first.completed,
        last: first.last,
    });
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let relay_events = async move {
        let pass_on = |event: &proto::CheckpointEvent| {
            triggers_tx
                .send_if_modified(|t| std::mem::replace(t, event.triggered) != event.triggered);
            let done = Completed {
                checkpoint: event.completed,
                last: event.last,
            };
            completed_tx.send_if_modified(|c| std::mem::replace(c, done) != done);
            done.last
        };
        let mut last = pass_on(&first);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => last = pass_on(&event),
                    // After the job's last checkpoint the coordinator stops.
                    None if last => return Ok(()),
                    Some(Err(_)) | None => {
                        return Err(RuntimeError::Failed(
                            "lost the job's checkpoint coordinator".into(),
                        ));
                    }
                },
                () = async { tokio::join!(triggers_tx.closed(), completed_tx.closed()); } => return Ok(()),
            }
        }
    };
    let relay_reports = async move {
        let mut coordinator = coordinator;
        // Each subtask's state is written as its acknowledgement arrives,
        // alongside the other subtasks' (a checkpoint's states are written
        // at once, as the job master would write them); the reports still
        // go out in the order they came.
        let mut written = FuturesOrdered::new();
        let mut open = true;
        while open || !written.is_empty() {
            tokio::select! {
                report = reports.recv(), if open => match report {
                    Some(report) => written.push_back(write_state(report, storage.clone())),
                    None => open = false,
                },
                Some(report) = written.next() => {
                    let message = report_to_proto(job, attempt, &report)?;
                    coordinator.report_checkpoint(message).await.map_err(|s| {
                        RuntimeError::Failed(format!("cannot report a checkpoint: {}", s.message()))
                    })?;
                }
                else => break,
            }
        }
        Ok(())
    };
    Ok(WorkerRelay {
        channels: CheckpointChannels::new(reports_tx, triggers, completed),
        events: Box::pin(relay_events),
        reports: Box::pin(relay_reports),
    })
}

/// An acknowledgement with its subtask's state written to `storage`: the
/// worker writes its subtasks' state itself, so the job master only records
/// the files, and no state crosses the RPC. A failed write declines the
/// checkpoint, which fails the checkpoint, not the job.
async fn write_state(
    report: CheckpointReport,
    storage: Option<CheckpointStorage>,
) -> CheckpointReport {
    match (report, storage) {
        (
            CheckpointReport::Acknowledged {
                checkpoint,
                task,
                snapshot,
            },
            Some(storage),
        ) => match storage
            .write_task_snapshot(checkpoint, task, snapshot)
            .await
        {
            Ok(snapshot) => CheckpointReport::Acknowledged {
                checkpoint,
                task,
                snapshot,
            },
            Err(e) => CheckpointReport::Declined {
                checkpoint,
                task,
                reason: e.to_string(),
            },
        },
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use weir_runtime::OperatorState;

    use super::*;

    #[test]
    fn reports_round_trip() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])
            .expect("batch");
        let task = TaskKey {
            vertex: VertexId(2),
            subtask: 1,
        };
        let written = WrittenState {
            path: "chk-7/2-1-sink.arrow".into(),
            rows: 3,
            bytes: 512,
        };
        let report = CheckpointReport::Acknowledged {
            checkpoint: 7,
            task,
            snapshot: TaskSnapshot {
                states: vec![
                    (
                        StateSlot::Operator(0),
                        SlotState::Batches(OperatorState {
                            batches: vec![batch.clone()],
                        }),
                    ),
                    (StateSlot::Sink, SlotState::Written(written.clone())),
                ],
            },
        };
        let message = report_to_proto(JobId(5), 0, &report).expect("encodes");
        match report_from_proto(message).expect("decodes") {
            CheckpointReport::Acknowledged {
                checkpoint,
                task: back,
                snapshot,
            } => {
                assert_eq!((checkpoint, back), (7, task));
                assert_eq!(snapshot.states[0].0, StateSlot::Operator(0));
                match &snapshot.states[..] {
                    [
                        (_, SlotState::Batches(state)),
                        (StateSlot::Sink, SlotState::Written(file)),
                    ] => {
                        assert_eq!(state.batches, vec![batch]);
                        assert_eq!(file, &written);
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    }
}
