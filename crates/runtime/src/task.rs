//! The run loop of one subtask: input (a source or an input gate) → chained
//! operators → output (edges, a sink, or the client).

use std::sync::Arc;

use tokio::sync::mpsc;
use weir_common::{StreamBatch, Watermark};
use weir_connector::SinkWriter;

use crate::RuntimeError;
use crate::checkpoint::{
    CheckpointReport, Completed, FINAL_CHECKPOINT, StateSlot, TaskCheckpointing, TaskSnapshot,
    splits_to_state,
};
use crate::exchange::{GateEvent, InputGate, OutputEdge};
use crate::message::{CheckpointBarrier, Message};
use crate::metrics::OperatorMetrics;
use crate::operator::{Collector, Operator, PROCESSING_TIME_TICK};
use crate::source_task::SourceDriver;

fn epoch_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) enum SubtaskInput {
    Source(SourceDriver),
    Gate(InputGate),
}

impl SubtaskInput {
    async fn next(&mut self) -> Result<GateEvent, RuntimeError> {
        match self {
            SubtaskInput::Source(source) => source.next().await,
            SubtaskInput::Gate(gate) => Ok(gate.next().await),
        }
    }
}

pub(crate) enum SubtaskOutput {
    Edges(Vec<OutputEdge>),
    Sink(Box<dyn SinkWriter>),
    Collect(mpsc::Sender<StreamBatch>),
}

/// An operator in a chain with its metrics.
pub(crate) struct Chained {
    pub(crate) operator: Box<dyn Operator>,
    pub(crate) metrics: Arc<OperatorMetrics>,
}

pub(crate) struct Subtask {
    pub(crate) name: String,
    pub(crate) input: SubtaskInput,
    pub(crate) chain: Vec<Chained>,
    pub(crate) output: SubtaskOutput,
    /// Set when the job takes checkpoints.
    pub(crate) checkpointing: Option<TaskCheckpointing>,
}

/// News from the checkpoint coordinator.
enum CheckpointSignal {
    /// Sources: inject the barrier of this checkpoint.
    Trigger(u64),
    Complete(Completed),
}

/// The next trigger (for a source) or completion; never resolves without
/// checkpointing or once the coordinator is gone.
async fn checkpoint_signal(
    checkpointing: Option<&mut TaskCheckpointing>,
    source: bool,
) -> CheckpointSignal {
    let Some(c) = checkpointing else {
        return std::future::pending().await;
    };
    tokio::select! {
        Ok(()) = c.triggers.changed(), if source => {
            CheckpointSignal::Trigger(*c.triggers.borrow_and_update())
        }
        Ok(()) = c.completed.changed() => {
            CheckpointSignal::Complete(*c.completed.borrow_and_update())
        }
        else => std::future::pending().await,
    }
}

impl Subtask {
    pub(crate) async fn run(mut self) -> Result<(), RuntimeError> {
        let timed = self.chain.iter().any(|c| c.operator.uses_processing_time());
        let source = matches!(self.input, SubtaskInput::Source(_));
        let mut clock = tokio::time::interval(PROCESSING_TIME_TICK);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // Inputs are cancel-safe, so a tick or a checkpoint trigger may
            // interrupt a pending read.
            let event = if timed || self.checkpointing.is_some() {
                tokio::select! {
                    event = self.input.next() => event?,
                    _ = clock.tick(), if timed => {
                        self.prepare_chain().await?;
                        let mut out = Vec::new();
                        self.push_time(0, epoch_millis(), &mut out)?;
                        self.emit(out).await?;
                        continue;
                    }
                    signal = checkpoint_signal(self.checkpointing.as_mut(), source) => {
                        match signal {
                            CheckpointSignal::Trigger(id) => self.inject_barrier(id).await?,
                            CheckpointSignal::Complete(done) => self.checkpoint_complete(done).await?,
                        }
                        continue;
                    }
                }
            } else {
                self.input.next().await?
            };
            match event {
                GateEvent::Batch { input, batch } => {
                    self.prepare_chain().await?;
                    let mut out = Vec::new();
                    self.push_batch(0, input, batch, &mut out)?;
                    self.emit(out).await?;
                }
                GateEvent::Watermark(w) => {
                    self.prepare_chain().await?;
                    let mut out = Vec::new();
                    let forwarded = self.push_watermark(0, w, &mut out)?;
                    self.emit(out).await?;
                    if let Some(w) = forwarded {
                        self.emit_watermark(w).await?;
                    }
                }
                GateEvent::Barrier(barrier) => self.take_checkpoint(barrier, None).await?,
                GateEvent::Idle => self.emit_idle().await?,
                GateEvent::End => {
                    let mut out = Vec::new();
                    self.finish_chain(0, &mut out)?;
                    self.emit(out).await?;
                    return self.finish_output().await;
                }
            }
        }
    }

    /// Awaits what each operator must fetch before its next batch,
    /// watermark or clock tick (not before barriers or the end of input).
    async fn prepare_chain(&mut self) -> Result<(), RuntimeError> {
        for index in 0..self.chain.len() {
            let result = match self.chain[index].operator.prepare() {
                Some(preparation) => preparation.await,
                None => Ok(()),
            };
            result.map_err(|e| self.operator_error(index, e))?;
        }
        Ok(())
    }

    fn operator_error(&self, index: usize, e: datafusion::error::DataFusionError) -> RuntimeError {
        RuntimeError::operator(&self.name, self.chain[index].operator.name(), e)
    }

    /// Pushes a batch into operator `index` and what it emits down the rest of the chain.
    fn push_batch(
        &mut self,
        index: usize,
        input: usize,
        batch: StreamBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<(), RuntimeError> {
        if index == self.chain.len() {
            out.push(batch);
            return Ok(());
        }
        let mut collector = Collector::default();
        let Chained { operator, metrics } = &mut self.chain[index];
        let result = metrics.record(batch.num_rows(), || {
            operator.process_batch(input, batch, &mut collector)
        });
        metrics.add_output(&collector);
        result.map_err(|e| self.operator_error(index, e))?;
        for b in collector.take() {
            self.push_batch(index + 1, 0, b, out)?;
        }
        Ok(())
    }

    fn push_watermark(
        &mut self,
        index: usize,
        watermark: Watermark,
        out: &mut Vec<StreamBatch>,
    ) -> Result<Option<Watermark>, RuntimeError> {
        if index == self.chain.len() {
            return Ok(Some(watermark));
        }
        let mut collector = Collector::default();
        let Chained { operator, metrics } = &mut self.chain[index];
        let result = metrics.record(0, || operator.process_watermark(watermark, &mut collector));
        metrics.add_output(&collector);
        let forwarded = result.map_err(|e| self.operator_error(index, e))?;
        for b in collector.take() {
            self.push_batch(index + 1, 0, b, out)?;
        }
        match forwarded {
            Some(w) => {
                self.chain[index].metrics.set_watermark(w);
                self.push_watermark(index + 1, w, out)
            }
            None => Ok(None),
        }
    }

    /// Tells operator `index` and those after it the wall-clock time.
    fn push_time(
        &mut self,
        index: usize,
        now: i64,
        out: &mut Vec<StreamBatch>,
    ) -> Result<(), RuntimeError> {
        if index == self.chain.len() {
            return Ok(());
        }
        let mut collector = Collector::default();
        let Chained { operator, metrics } = &mut self.chain[index];
        let result = metrics.record(0, || operator.process_time(now, &mut collector));
        metrics.add_output(&collector);
        result.map_err(|e| self.operator_error(index, e))?;
        for b in collector.take() {
            self.push_batch(index + 1, 0, b, out)?;
        }
        self.push_time(index + 1, now, out)
    }

    fn finish_chain(
        &mut self,
        index: usize,
        out: &mut Vec<StreamBatch>,
    ) -> Result<(), RuntimeError> {
        if index == self.chain.len() {
            return Ok(());
        }
        let mut collector = Collector::default();
        let Chained { operator, metrics } = &mut self.chain[index];
        let result = metrics.record(0, || operator.finish(&mut collector));
        metrics.add_output(&collector);
        result.map_err(|e| self.operator_error(index, e))?;
        for b in collector.take() {
            self.push_batch(index + 1, 0, b, out)?;
        }
        self.finish_chain(index + 1, out)
    }

    async fn emit(&mut self, batches: Vec<StreamBatch>) -> Result<(), RuntimeError> {
        for batch in batches {
            match &mut self.output {
                SubtaskOutput::Edges(edges) => {
                    for edge in edges.iter_mut() {
                        edge.send_batch(batch.clone())
                            .await
                            .map_err(|e| RuntimeError::operator(&self.name, "Exchange", e))?
                            .map_err(|_| RuntimeError::Cancelled)?;
                    }
                }
                SubtaskOutput::Sink(writer) => writer
                    .write(batch)
                    .await
                    .map_err(|e| RuntimeError::connector(&self.name, e))?,
                SubtaskOutput::Collect(sender) => sender
                    .send(batch)
                    .await
                    .map_err(|_| RuntimeError::Cancelled)?,
            }
        }
        Ok(())
    }

    async fn emit_watermark(&mut self, watermark: Watermark) -> Result<(), RuntimeError> {
        if let SubtaskOutput::Edges(edges) = &self.output {
            for edge in edges {
                edge.send_watermark(watermark)
                    .await
                    .map_err(|_| RuntimeError::Cancelled)?;
            }
        }
        Ok(())
    }

    async fn emit_idle(&mut self) -> Result<(), RuntimeError> {
        if let SubtaskOutput::Edges(edges) = &self.output {
            for edge in edges {
                edge.broadcast(Message::Idle)
                    .await
                    .map_err(|_| RuntimeError::Cancelled)?;
            }
        }
        Ok(())
    }

    /// A source's part of checkpoint `id`: record where its splits stand,
    /// then snapshot like any subtask and send the barrier on.
    async fn inject_barrier(&mut self, id: u64) -> Result<(), RuntimeError> {
        let SubtaskInput::Source(driver) = &mut self.input else {
            return Ok(());
        };
        let splits = driver
            .reader
            .snapshot(id)
            .map_err(|e| RuntimeError::connector(&self.name, e))?;
        let state = splits_to_state(&splits)?;
        self.take_checkpoint(CheckpointBarrier { id }, Some(state))
            .await
    }

    /// The barrier passed (aligned over every input): snapshot the chain's
    /// operators, let the sink stage what it wrote, forward the barrier and
    /// acknowledge with the state.
    async fn take_checkpoint(
        &mut self,
        barrier: CheckpointBarrier,
        source: Option<crate::OperatorState>,
    ) -> Result<(), RuntimeError> {
        let mut snapshot = TaskSnapshot::default();
        if let Some(state) = source {
            snapshot.push(StateSlot::Source, state);
        }
        for index in 0..self.chain.len() {
            let state = self.chain[index]
                .operator
                .snapshot_state(barrier.id)
                .map_err(|e| self.operator_error(index, e))?;
            if let Some(state) = state {
                snapshot.push(StateSlot::Operator(index), state);
            }
        }
        match &mut self.output {
            SubtaskOutput::Edges(edges) => {
                for edge in edges.iter() {
                    edge.send_barrier(barrier)
                        .await
                        .map_err(|_| RuntimeError::Cancelled)?;
                }
            }
            SubtaskOutput::Sink(writer) => {
                let committables = writer
                    .prepare_commit(barrier.id)
                    .await
                    .map_err(|e| RuntimeError::connector(&self.name, e))?;
                snapshot.add_committables(committables);
            }
            SubtaskOutput::Collect(_) => {}
        }
        tracing::debug!(task = %self.name, checkpoint = barrier.id, "checkpoint taken");
        if let Some(checkpointing) = &self.checkpointing {
            checkpointing.report(CheckpointReport::Acknowledged {
                checkpoint: barrier.id,
                task: checkpointing.task,
                snapshot,
            })?;
        }
        Ok(())
    }

    /// A checkpoint completed: sinks make what they staged visible, sources
    /// and operators hear of it.
    async fn checkpoint_complete(&mut self, done: Completed) -> Result<(), RuntimeError> {
        let id = done.checkpoint;
        for index in 0..self.chain.len() {
            let result = self.chain[index].operator.notify_checkpoint_complete(id);
            result.map_err(|e| self.operator_error(index, e))?;
        }
        if let SubtaskInput::Source(driver) = &mut self.input {
            driver
                .reader
                .notify_checkpoint_complete(id)
                .await
                .map_err(|e| RuntimeError::connector(&self.name, e))?;
        }
        if let SubtaskOutput::Sink(writer) = &mut self.output {
            writer
                .commit(id)
                .await
                .map_err(|e| RuntimeError::connector(&self.name, e))?;
            if let Some(checkpointing) = &self.checkpointing {
                // Only a stop-with-savepoint waits for this; a coordinator
                // that is gone waits for nothing.
                let _ = checkpointing.reports.send(CheckpointReport::Committed {
                    checkpoint: id,
                    task: checkpointing.task,
                });
            }
        }
        Ok(())
    }

    async fn finish_output(self) -> Result<(), RuntimeError> {
        let name = self.name;
        let connector_error = |e| RuntimeError::connector(&name, e);
        match (self.output, self.checkpointing) {
            (SubtaskOutput::Sink(mut writer), Some(mut checkpointing)) => {
                // The sink's last data is committed by the job's last
                // checkpoint, taken once every subtask has finished.
                let committables = writer
                    .prepare_commit(FINAL_CHECKPOINT)
                    .await
                    .map_err(connector_error)?;
                let mut snapshot = TaskSnapshot::default();
                snapshot.add_committables(committables);
                checkpointing.report(CheckpointReport::Finished {
                    task: checkpointing.task,
                    snapshot,
                })?;
                loop {
                    if checkpointing.completed.borrow_and_update().last {
                        break;
                    }
                    if checkpointing.completed.changed().await.is_err()
                        && !checkpointing.completed.borrow().last
                    {
                        return Err(RuntimeError::Cancelled);
                    }
                }
                writer
                    .commit(FINAL_CHECKPOINT)
                    .await
                    .map_err(connector_error)?;
                writer.finish().await.map_err(connector_error)?;
            }
            (output, checkpointing) => {
                match output {
                    SubtaskOutput::Edges(edges) => {
                        for edge in &edges {
                            // A consumer that is already gone needs no end marker.
                            let _ = edge.broadcast(Message::EndOfInput).await;
                        }
                    }
                    SubtaskOutput::Sink(mut writer) => {
                        writer.finish().await.map_err(connector_error)?
                    }
                    SubtaskOutput::Collect(_) => {}
                }
                if let Some(checkpointing) = checkpointing {
                    checkpointing.report(CheckpointReport::Finished {
                        task: checkpointing.task,
                        snapshot: TaskSnapshot::default(),
                    })?;
                }
            }
        }
        Ok(())
    }
}
