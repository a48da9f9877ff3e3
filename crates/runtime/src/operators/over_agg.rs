//! OVER aggregation (Flink's `OverAggregate`): every input row comes out
//! once, with aggregates over the rows before it in its partition, ordered
//! by a time attribute:
//!
//! - `ROWS BETWEEN n PRECEDING AND CURRENT ROW`: the row and the n before it;
//! - `RANGE BETWEEN INTERVAL .. PRECEDING AND CURRENT ROW`: the rows whose
//!   time is at most the interval before the row's (rows with equal times
//!   are peers and get the same result);
//! - either with `UNBOUNDED PRECEDING`: every row so far.
//!
//! Over event time, rows wait (in their input batches, see [`ChunkStore`])
//! until the watermark passes them; then each partition's rows are handled
//! in time order. Rows behind the watermark when they arrive are late:
//! dropped and counted, as in Flink. Over processing time rows are handled
//! as they arrive.
//!
//! Each partition keeps DataFusion accumulators over its current frame,
//! retractable ("sliding") ones for bounded frames, and the argument values
//! of the frame's rows so they can be retracted when they leave it. Output
//! is insert-only.
//!
//! A checkpoint holds, keyed by partition, the rows still waiting, and for
//! a bounded frame the frame's rows (a restored partition adds them to new
//! accumulators again: a sliding accumulator's state cannot be restored),
//! for an unbounded one the accumulators' states; and the watermark.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt64Array};
use arrow::datatypes::{Int64Type, SchemaRef, UInt64Type};
use arrow::record_batch::RecordBatchOptions;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use weir_common::{StreamBatch, Watermark};

use super::aggregate::{
    AggregateCall, CallInput, accumulator_states, cast_to, merge_accumulator_states,
};
use super::chunks::{ChunkStore, RowRef};
use super::key_index::KeyIndex;
use super::window_agg::TimeDomain;
use super::window_assign::event_times;
use crate::checkpoint::{KeyedState, StateBatch, restored_parts, watermark_state};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};

/// Which rows before the current one an OVER aggregate sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`; `None` is UNBOUNDED.
    Rows(Option<u64>),
    /// `RANGE BETWEEN <ms> PRECEDING AND CURRENT ROW`; `None` is UNBOUNDED.
    Range(Option<i64>),
}

impl std::fmt::Display for OverFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverFrame::Rows(None) => {
                f.write_str("ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW")
            }
            OverFrame::Rows(Some(n)) => write!(f, "ROWS BETWEEN {n} PRECEDING AND CURRENT ROW"),
            OverFrame::Range(None) => {
                f.write_str("RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW")
            }
            OverFrame::Range(Some(ms)) => {
                write!(f, "RANGE BETWEEN {ms} ms PRECEDING AND CURRENT ROW")
            }
        }
    }
}

/// What an OVER aggregation computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct OverAggregateSpec {
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub partition_schema: SchemaRef,
    /// The time attribute rows are ordered by.
    pub order_time: Arc<dyn PhysicalExpr>,
    pub frame: OverFrame,
    pub calls: Vec<AggregateCall>,
    pub input_schema: SchemaRef,
    /// The input's columns, then one per call.
    pub output_schema: SchemaRef,
    pub time: TimeDomain,
}

impl OverAggregateSpec {
    pub fn name(&self) -> String {
        let partition: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
        let calls: Vec<&str> = self.calls.iter().map(AggregateCall::name).collect();
        format!(
            "OverAggregate(partitionBy=[{}], orderBy=[{} ASC], window=[{}], select=[*, {}])",
            partition.join(", "),
            self.order_time,
            self.frame,
            calls.join(", ")
        )
    }

    fn bounded(&self) -> bool {
        matches!(
            self.frame,
            OverFrame::Rows(Some(_)) | OverFrame::Range(Some(_))
        )
    }
}

/// A row still in a bounded frame: its time and each call's arguments.
struct FrameRow {
    time: i64,
    args: Vec<Vec<ScalarValue>>,
}

/// A row waiting for the watermark.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    time: i64,
    arrival: u64,
    at: RowRef,
}

struct OverPartition {
    accumulators: Vec<Box<dyn Accumulator>>,
    frame: VecDeque<FrameRow>,
    waiting: Vec<Waiting>,
}

pub struct OverAggregate {
    spec: Arc<OverAggregateSpec>,
    name: String,
    keys: KeyIndex,
    partitions: Vec<OverPartition>,
    chunks: ChunkStore,
    /// Partitions with waiting rows.
    dirty: HashSet<usize>,
    watermark: i64,
    arrivals: u64,
    max_parallelism: usize,
}

impl std::fmt::Debug for OverAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverAggregate")
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

/// A row to compute: its partition, time and place in state.
#[derive(Debug, Clone, Copy)]
struct Due {
    partition: usize,
    time: i64,
    arrival: u64,
    at: RowRef,
}

impl OverAggregate {
    pub fn try_new(spec: Arc<OverAggregateSpec>, max_parallelism: usize) -> Result<Self> {
        Ok(Self {
            name: spec.name(),
            keys: KeyIndex::for_keys(&spec.partition_schema)?,
            partitions: Vec::new(),
            chunks: ChunkStore::default(),
            dirty: HashSet::new(),
            watermark: Watermark::MIN.millis(),
            arrivals: 0,
            max_parallelism,
            spec,
        })
    }

    /// The partitions' ids, creating those not seen yet.
    fn partition_ids(&mut self, keys: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
        let ids = self.keys.ids(keys, rows)?;
        while self.partitions.len() < self.keys.len() {
            let partition = self.new_partition()?;
            self.partitions.push(partition);
        }
        Ok(ids)
    }

    /// The rows waiting for the watermark, in arrival order.
    fn waiting_state(&self) -> Result<Option<RecordBatch>> {
        let mut waiting: Vec<Waiting> = self
            .partitions
            .iter()
            .flat_map(|p| p.waiting.iter().copied())
            .collect();
        if waiting.is_empty() {
            return Ok(None);
        }
        waiting.sort_unstable_by_key(|w| w.arrival);
        let refs: Vec<RowRef> = waiting.iter().map(|w| w.at).collect();
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.input_schema),
            self.chunks.columns(&refs)?,
            &RecordBatchOptions::new().with_row_count(Some(refs.len())),
        )?;
        let arrivals = UInt64Array::from_iter_values(waiting.iter().map(|w| w.arrival));
        let state = KeyedState::rows(
            "waiting",
            &data,
            &self.spec.partition_by,
            self.max_parallelism,
        )?
        .column("arrival", Arc::new(arrivals));
        Ok(Some(state.build()?))
    }

    /// Bounded frames: every frame row with its partition's key, time and
    /// arguments. Unbounded: each partition's key and accumulator states.
    fn frame_state(&mut self) -> Result<Option<RecordBatch>> {
        if self.partitions.is_empty() {
            return Ok(None);
        }
        if !self.spec.bounded() {
            let ids: Vec<usize> = (0..self.partitions.len()).collect();
            let keys = self.keys.keys(&ids)?;
            let states =
                accumulator_states(self.partitions.iter_mut().map(|p| &mut p.accumulators))?;
            let groups = crate::exchange::key_groups_of(&keys, ids.len(), self.max_parallelism)?;
            let state = KeyedState::new("accumulators", groups)
                .group("key", keys)
                .group("state", states);
            return Ok(Some(state.build()?));
        }
        let mut ids = Vec::new();
        let mut times = Vec::new();
        let mut args: Vec<Vec<Vec<ScalarValue>>> =
            self.spec.calls.iter().map(|_| Vec::new()).collect();
        for (id, partition) in self.partitions.iter().enumerate() {
            for row in &partition.frame {
                ids.push(id);
                times.push(row.time);
                for (call, values) in row.args.iter().enumerate() {
                    let columns = &mut args[call];
                    columns.resize_with(values.len(), Vec::new);
                    for (arg, value) in values.iter().enumerate() {
                        columns[arg].push(value.clone());
                    }
                }
            }
        }
        if ids.is_empty() {
            return Ok(None);
        }
        let keys = self.keys.keys(&ids)?;
        let groups = crate::exchange::key_groups_of(&keys, ids.len(), self.max_parallelism)?;
        let mut state = KeyedState::new("frame", groups)
            .group("key", keys)
            .column("time", Arc::new(Int64Array::from(times)));
        for (call, columns) in args.into_iter().enumerate() {
            let arrays = columns
                .into_iter()
                .map(ScalarValue::iter_to_array)
                .collect::<Result<Vec<_>>>()?;
            state = state.group(&format!("arg{call}"), arrays);
        }
        Ok(Some(state.build()?))
    }

    fn restore_frames(&mut self, part: &StateBatch<'_>) -> Result<()> {
        let key_count = self.spec.partition_schema.fields().len();
        let keys = part.group("key", Some(key_count))?;
        let ids = self.partition_ids(&keys, part.rows())?;
        if part.part() == Some("accumulators") {
            let states = part.group("state", None)?;
            for (row, id) in ids.into_iter().enumerate() {
                merge_accumulator_states(&mut self.partitions[id].accumulators, &states, row)?;
            }
            return Ok(());
        }
        let times = part.primitive::<Int64Type>("time")?.clone();
        let args = (0..self.spec.calls.len())
            .map(|call| part.group(&format!("arg{call}"), None))
            .collect::<Result<Vec<_>>>()?;
        for (row, id) in ids.into_iter().enumerate() {
            let partition = &mut self.partitions[id];
            let mut values = Vec::with_capacity(args.len());
            for (accumulator, columns) in partition.accumulators.iter_mut().zip(&args) {
                let row_args: Vec<ArrayRef> = columns.iter().map(|c| c.slice(row, 1)).collect();
                accumulator.update_batch(&row_args)?;
                values.push(
                    columns
                        .iter()
                        .map(|c| ScalarValue::try_from_array(c, row))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
            partition.frame.push_back(FrameRow {
                time: times.value(row),
                args: values,
            });
        }
        Ok(())
    }

    fn new_partition(&self) -> Result<OverPartition> {
        let bounded = self.spec.bounded();
        Ok(OverPartition {
            accumulators: self
                .spec
                .calls
                .iter()
                .map(|c| c.accumulator(bounded))
                .collect::<Result<_>>()?,
            frame: VecDeque::new(),
            waiting: Vec::new(),
        })
    }

    fn process(&mut self, data: RecordBatch, out: &mut Collector) -> Result<()> {
        let n = data.num_rows();
        if n == 0 {
            return Ok(());
        }
        let times = event_times(
            &self.spec.order_time.evaluate(&data)?.into_array(n)?,
            &self.spec.order_time,
        )?;
        let keys = self
            .spec
            .partition_by
            .iter()
            .map(|k| k.evaluate(&data)?.into_array(n))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let ids = self.partition_ids(&keys, n)?;
        let chunk = self.chunks.next_id();
        let event_time = self.spec.time == TimeDomain::EventTime;
        let mut due = Vec::new();
        let mut late = 0;
        for row in 0..n {
            let arrival = self.arrivals;
            self.arrivals += 1;
            let at = (chunk, row as u32);
            if !event_time {
                due.push(Due {
                    partition: ids[row],
                    time: times[row],
                    arrival,
                    at,
                });
            } else if times[row] <= self.watermark {
                late += 1;
            } else {
                self.partitions[ids[row]].waiting.push(Waiting {
                    time: times[row],
                    arrival,
                    at,
                });
                self.dirty.insert(ids[row]);
            }
        }
        out.add_late_rows(late);
        let kept = if event_time { n - late } else { n };
        self.chunks.insert(data, kept);
        if !due.is_empty() {
            self.compute(due, out)?;
        }
        Ok(())
    }

    /// Event time reached `watermark`: compute every row at or before it.
    fn advance(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let mut due = Vec::new();
        let mut emptied = Vec::new();
        for id in &self.dirty {
            let partition = &mut self.partitions[*id];
            partition.waiting.retain(|w| {
                let ready = w.time <= self.watermark;
                if ready {
                    due.push(Due {
                        partition: *id,
                        time: w.time,
                        arrival: w.arrival,
                        at: w.at,
                    });
                }
                !ready
            });
            if partition.waiting.is_empty() {
                emptied.push(*id);
            }
        }
        for id in emptied {
            self.dirty.remove(&id);
        }
        if due.is_empty() {
            return Ok(());
        }
        self.compute(due, out)
    }

    /// Computes and emits rows, each partition's in time order.
    fn compute(&mut self, mut due: Vec<Due>, out: &mut Collector) -> Result<()> {
        due.sort_unstable_by_key(|d| (d.partition, d.time, d.arrival));
        let refs: Vec<RowRef> = due.iter().map(|d| d.at).collect();
        let columns = self.chunks.columns(&refs)?;
        for (chunk, _) in &refs {
            self.chunks.release(*chunk);
        }
        let rows = due.len();
        let input = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.input_schema),
            columns.clone(),
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let inputs = self
            .spec
            .calls
            .iter()
            .map(|c| c.evaluate(&input))
            .collect::<Result<Vec<_>>>()?;
        if inputs.iter().any(|i| i.filter.is_some()) {
            return Err(DataFusionError::NotImplemented(
                "FILTER in an OVER aggregation".into(),
            ));
        }
        let mut results: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(rows); inputs.len()];
        let mut start = 0;
        while start < rows {
            // A run of peers: same partition and, for RANGE, same time.
            let peers = match self.spec.frame {
                OverFrame::Range(_) => due[start..]
                    .iter()
                    .take_while(|d| {
                        d.partition == due[start].partition && d.time == due[start].time
                    })
                    .count(),
                OverFrame::Rows(_) => 1,
            };
            let values = self.step(&due[start], &inputs, start, peers)?;
            for (call, value) in values.into_iter().enumerate() {
                results[call].extend(std::iter::repeat_n(value, peers));
            }
            start += peers;
        }
        let mut output = columns;
        for (values, field) in results
            .into_iter()
            .zip(&self.spec.output_schema.fields()[output.len()..])
        {
            let array = ScalarValue::iter_to_array(values)?;
            output.push(cast_to(array, field.data_type())?);
        }
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.output_schema),
            output,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        out.emit(StreamBatch::inserts(batch));
        Ok(())
    }

    /// Adds rows `start..start + len` (peers of `first`) to their
    /// partition's frame, drops what falls out of it, and returns each
    /// call's value.
    fn step(
        &mut self,
        first: &Due,
        inputs: &[CallInput],
        start: usize,
        len: usize,
    ) -> Result<Vec<ScalarValue>> {
        let bounded = self.spec.bounded();
        let frame = self.spec.frame;
        let partition = &mut self.partitions[first.partition];
        for (accumulator, input) in partition.accumulators.iter_mut().zip(inputs) {
            let args: Vec<ArrayRef> = input.args.iter().map(|a| a.slice(start, len)).collect();
            accumulator.update_batch(&args)?;
        }
        if bounded {
            for row in start..start + len {
                let args = inputs
                    .iter()
                    .map(|i| {
                        i.args
                            .iter()
                            .map(|a| ScalarValue::try_from_array(a, row))
                            .collect::<Result<Vec<_>>>()
                    })
                    .collect::<Result<Vec<_>>>()?;
                partition.frame.push_back(FrameRow {
                    time: first.time,
                    args,
                });
            }
            loop {
                let leaves = match (frame, partition.frame.front()) {
                    (OverFrame::Rows(Some(n)), Some(_)) => {
                        partition.frame.len() as u64 > n.saturating_add(1)
                    }
                    (OverFrame::Range(Some(ms)), Some(oldest)) => {
                        oldest.time < first.time.saturating_sub(ms)
                    }
                    _ => false,
                };
                if !leaves {
                    break;
                }
                let Some(gone) = partition.frame.pop_front() else {
                    break;
                };
                for (accumulator, args) in partition.accumulators.iter_mut().zip(gone.args) {
                    let arrays = args
                        .into_iter()
                        .map(|v| v.to_array_of_size(1))
                        .collect::<Result<Vec<_>>>()?;
                    accumulator.retract_batch(&arrays)?;
                }
            }
        }
        partition
            .accumulators
            .iter_mut()
            .map(|a| a.evaluate())
            .collect()
    }
}

impl Operator for OverAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let mut batches = vec![watermark_state(self.watermark)?];
        batches.extend(self.frame_state()?);
        batches.extend(self.waiting_state()?);
        Ok(Some(OperatorState { batches }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let name = self.name.clone();
        let (watermark, parts) = restored_parts(&state, &name)?;
        let mut waiting = Vec::new();
        for part in &parts {
            match part.part() {
                Some("waiting") => {
                    let rows = part.group_batch("row", &self.spec.input_schema)?;
                    let arrivals = part.primitive::<UInt64Type>("arrival")?.clone();
                    waiting.push((rows, arrivals));
                }
                _ => self.restore_frames(part)?,
            }
        }
        // Waiting rows go back in their arrival order, before the watermark,
        // so none of them is late.
        if !waiting.is_empty() {
            let schema = Arc::clone(&self.spec.input_schema);
            let rows = arrow::compute::concat_batches(&schema, waiting.iter().map(|(r, _)| r))?;
            let arrivals: Vec<&dyn Array> = waiting.iter().map(|(_, a)| a as &dyn Array).collect();
            let arrivals = arrow::compute::concat(&arrivals)?;
            let order = arrow::compute::sort_to_indices(&arrivals, None, None)?;
            let rows = arrow::compute::take_record_batch(&rows, &order)?;
            self.process(rows, &mut Collector::default())?;
        }
        if let Some(at) = watermark {
            self.watermark = self.watermark.max(at);
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        if !batch.is_insert_only() {
            return Err(DataFusionError::Execution(
                "an OVER aggregation received updates; its input must be insert-only".into(),
            ));
        }
        self.process(batch.into_data(), out)
    }

    fn process_watermark(
        &mut self,
        watermark: Watermark,
        out: &mut Collector,
    ) -> Result<Option<Watermark>> {
        if self.spec.time == TimeDomain::EventTime {
            self.advance(watermark.millis(), out)?;
        }
        Ok(Some(watermark))
    }

    fn finish(&mut self, out: &mut Collector) -> Result<()> {
        if self.spec.time == TimeDomain::EventTime {
            self.advance(Watermark::END_OF_TIME.millis(), out)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct OverAggregateFactory(pub Arc<OverAggregateSpec>);

impl OperatorFactory for OverAggregateFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(OverAggregate::try_new(
            Arc::clone(&self.0),
            context.max_parallelism,
        )?))
    }
}
