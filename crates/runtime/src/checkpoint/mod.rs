//! Checkpoints: consistent snapshots of a running job, taken as Flink takes
//! them (aligned, asynchronous barrier snapshots), and the restore from one.
//!
//! # How a checkpoint flows
//! 1. The job's [`CheckpointCoordinator`] raises the trigger every
//!    'execution.checkpointing.interval'. Each source subtask sees it between
//!    two reads, records where its splits stand and sends a barrier
//!    downstream, in order with its batches.
//! 2. A subtask with several input channels aligns: a channel that delivered
//!    barrier n is not read again until every other live channel has, so the
//!    snapshot holds exactly the effects of the rows before the barrier.
//! 3. The subtask then copies its operators' state (Arrow batches), lets its
//!    sink stage what it wrote (the first phase of a two-phase commit),
//!    forwards the barrier and acknowledges with the state. It goes on
//!    processing at once: writing the state is the coordinator's work.
//! 4. When every subtask has acknowledged, the coordinator writes the state
//!    files and then the manifest: a checkpoint without its manifest does
//!    not exist. Then it announces completion: sinks make what they staged
//!    visible, sources commit offsets.
//! 5. A subtask whose input ended reports that it finished; checkpoints
//!    after that count it as acknowledged. When every subtask has finished,
//!    a last checkpoint commits what the sinks staged at the end, and the
//!    job ends.
//!
//! On a restart, [`RestoredCheckpoint`] gives each subtask the state of the
//! subtasks it takes over: sources their splits with positions, operators
//! and sinks their state, keyed state split by key group when the
//! parallelism changed.

mod coordinator;
mod keyed;
mod state_file;
mod storage;

pub use coordinator::{CheckpointCoordinator, CheckpointStats, CheckpointStatus, CoordinatorExit};
pub(crate) use keyed::{KeyedState, StateBatch, restored_parts, watermark_state};
pub(crate) use state_file::batch_bytes;
pub use state_file::{decode_state, encode_state};
pub use storage::{CheckpointStorage, RestoredCheckpoint, StateRead};

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use tokio::sync::{mpsc, watch};
use weir_connector::SourceSplit;

use crate::RuntimeError;
use crate::graph::VertexId;
use crate::operator::OperatorState;

/// The name of the column that marks a state batch as keyed state: the key
/// group (UInt32) of each row, so the rows can be split over subtasks when
/// a job is restored at another parallelism. Batches without it are
/// operator state, handed whole to one subtask.
pub const KEY_GROUP_COLUMN: &str = "__key_group";

/// The checkpoint id a sink stages its last data under when its input ends.
pub const FINAL_CHECKPOINT: u64 = u64::MAX;

/// One subtask of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKey {
    pub vertex: VertexId,
    pub subtask: usize,
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vertex {} subtask {}", self.vertex, self.subtask)
    }
}

/// Which part of a subtask a state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateSlot {
    /// The source's splits and positions.
    Source,
    /// The operator at this index of the vertex's chain.
    Operator(usize),
    /// The sink's committables.
    Sink,
}

impl StateSlot {
    pub fn name(&self) -> String {
        match self {
            StateSlot::Source => "source".to_string(),
            StateSlot::Operator(i) => format!("op-{i}"),
            StateSlot::Sink => "sink".to_string(),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "source" => Some(StateSlot::Source),
            "sink" => Some(StateSlot::Sink),
            _ => name
                .strip_prefix("op-")
                .and_then(|i| i.parse().ok())
                .map(StateSlot::Operator),
        }
    }
}

/// The state one subtask contributes to a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct TaskSnapshot {
    pub states: Vec<(StateSlot, SlotState)>,
}

impl TaskSnapshot {
    pub(crate) fn push(&mut self, slot: StateSlot, state: OperatorState) {
        self.states.push((slot, SlotState::Batches(state)));
    }

    /// Adds the sink's committables, if it staged any.
    pub(crate) fn add_committables(&mut self, committables: Option<RecordBatch>) {
        if let Some(batch) = committables {
            self.push(
                StateSlot::Sink,
                OperatorState {
                    batches: vec![batch],
                },
            );
        }
    }
}

/// One slot's part of a snapshot: its batches, or the state file a
/// cluster worker already wrote into the checkpoint's directory (workers
/// write their own state, as Flink's TaskManagers do; the job master only
/// records it in the manifest).
#[derive(Debug, Clone)]
pub enum SlotState {
    Batches(OperatorState),
    Written(WrittenState),
}

/// A state file a worker wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenState {
    /// Relative to the job's checkpoint directory.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// What subtasks tell the coordinator.
#[derive(Debug)]
pub enum CheckpointReport {
    /// The subtask took its part of checkpoint `checkpoint`.
    Acknowledged {
        checkpoint: u64,
        task: TaskKey,
        snapshot: TaskSnapshot,
    },
    /// The subtask could not take its part of checkpoint `checkpoint` (on
    /// a worker: it could not write its state); the checkpoint fails, and
    /// the job with it only past 'execution.checkpointing.tolerable-failed-checkpoints'.
    Declined {
        checkpoint: u64,
        task: TaskKey,
        reason: String,
    },
    /// The subtask's sink committed what it staged up to `checkpoint`.
    Committed { checkpoint: u64, task: TaskKey },
    /// The subtask's input ended and it emitted everything; it takes no more
    /// barriers. Its sink's last committables are in `snapshot`.
    Finished {
        task: TaskKey,
        snapshot: TaskSnapshot,
    },
}

/// A request for a savepoint of a running job: a checkpoint taken at once
/// and written also to a directory of its own, which outlives the job.
#[derive(Debug)]
pub struct SavepointRequest {
    /// The directory the savepoint directory is created in.
    pub dir: String,
    /// The job's id, which the savepoint is named after.
    pub job: String,
    /// Whether the job stops after it: the answer then waits until every
    /// sink has committed the savepoint's data.
    pub stop: bool,
    /// The savepoint's path, or why there is none.
    pub reply: tokio::sync::oneshot::Sender<Result<String, RuntimeError>>,
}

/// The latest completed checkpoint, as the coordinator announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Completed {
    pub checkpoint: u64,
    /// The job's last checkpoint, taken when every subtask had finished:
    /// sinks commit everything and end.
    pub last: bool,
}

/// The ends of the channels between a job's subtasks and its coordinator.
/// On a cluster, a worker holds local ones and relays them over RPC.
#[derive(Debug, Clone)]
pub struct CheckpointChannels {
    pub(crate) reports: mpsc::UnboundedSender<CheckpointReport>,
    pub(crate) triggers: watch::Receiver<u64>,
    pub(crate) completed: watch::Receiver<Completed>,
}

impl CheckpointChannels {
    pub fn new(
        reports: mpsc::UnboundedSender<CheckpointReport>,
        triggers: watch::Receiver<u64>,
        completed: watch::Receiver<Completed>,
    ) -> Self {
        Self {
            reports,
            triggers,
            completed,
        }
    }

    /// Where subtasks send their reports.
    pub fn reports(&self) -> mpsc::UnboundedSender<CheckpointReport> {
        self.reports.clone()
    }

    /// The latest triggered checkpoint, and every trigger after it.
    pub fn triggers(&self) -> watch::Receiver<u64> {
        self.triggers.clone()
    }

    /// The latest completed checkpoint, and every completion after it.
    pub fn completed(&self) -> watch::Receiver<Completed> {
        self.completed.clone()
    }
}

/// How a deployment takes part in checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointSetup {
    pub channels: CheckpointChannels,
    /// The checkpoint the job restarts from, if any.
    pub restored: Option<Arc<RestoredCheckpoint>>,
}

/// What one subtask needs to take part in checkpoints.
pub(crate) struct TaskCheckpointing {
    pub(crate) task: TaskKey,
    pub(crate) reports: mpsc::UnboundedSender<CheckpointReport>,
    /// The id of the latest triggered checkpoint; read by sources only.
    pub(crate) triggers: watch::Receiver<u64>,
    pub(crate) completed: watch::Receiver<Completed>,
}

impl TaskCheckpointing {
    pub(crate) fn new(task: TaskKey, channels: &CheckpointChannels) -> Self {
        let mut triggers = channels.triggers.clone();
        let mut completed = channels.completed.clone();
        // Only what happens from now on is news to this subtask.
        triggers.mark_unchanged();
        completed.mark_unchanged();
        Self {
            task,
            reports: channels.reports.clone(),
            triggers,
            completed,
        }
    }

    pub(crate) fn report(&self, report: CheckpointReport) -> Result<(), RuntimeError> {
        // The coordinator is gone only when the job is being torn down.
        self.reports
            .send(report)
            .map_err(|_| RuntimeError::Cancelled)
    }
}

fn split_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("split", DataType::Utf8, false),
        Field::new("size_hint", DataType::UInt64, false),
        Field::new("position", DataType::Utf8, true),
    ]))
}

/// A source's splits as operator state.
pub(crate) fn splits_to_state(splits: &[SourceSplit]) -> Result<OperatorState, RuntimeError> {
    let ids = StringArray::from_iter_values(splits.iter().map(|s| s.id.as_str()));
    let sizes = UInt64Array::from_iter_values(splits.iter().map(|s| s.size_hint));
    let positions: StringArray = splits.iter().map(|s| s.position.as_deref()).collect();
    let batch = RecordBatch::try_new(
        split_schema(),
        vec![Arc::new(ids), Arc::new(sizes), Arc::new(positions)],
    )
    .map_err(|e| RuntimeError::Internal(format!("cannot record source splits: {e}")))?;
    Ok(OperatorState {
        batches: vec![batch],
    })
}

/// The splits recorded by [`splits_to_state`].
pub(crate) fn splits_from_state(state: &OperatorState) -> Result<Vec<SourceSplit>, RuntimeError> {
    let broken = || RuntimeError::Internal("a checkpoint's source state is malformed".into());
    let mut splits = Vec::new();
    for batch in &state.batches {
        if batch.num_columns() != 3 {
            return Err(broken());
        }
        let ids = batch.column(0).as_string_opt::<i32>().ok_or_else(broken)?;
        let sizes = batch
            .column(1)
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(broken)?;
        let positions = batch.column(2).as_string_opt::<i32>().ok_or_else(broken)?;
        for row in 0..batch.num_rows() {
            splits.push(SourceSplit {
                id: ids.value(row).to_string(),
                size_hint: sizes.value(row),
                position: positions
                    .is_valid(row)
                    .then(|| positions.value(row).to_string()),
            });
        }
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_round_trip_through_state() {
        let mut resumed = SourceSplit::new("b", 7);
        resumed.position = Some("42".into());
        let splits = vec![SourceSplit::new("a", 3), resumed];
        let state = splits_to_state(&splits).expect("state");
        assert_eq!(splits_from_state(&state).expect("splits"), splits);
    }

    #[test]
    fn slots_round_trip_through_names() {
        for slot in [StateSlot::Source, StateSlot::Operator(3), StateSlot::Sink] {
            assert_eq!(StateSlot::parse(&slot.name()), Some(slot));
        }
        assert_eq!(StateSlot::parse("op-x"), None);
    }
}
