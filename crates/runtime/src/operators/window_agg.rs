//! Window aggregation over slices (Flink's `WindowAggregate`).
//!
//! Input rows arrive from a [`WindowAssigner`](super::WindowAssigner) in
//! slice mode, hash-partitioned by the grouping keys: the assigner's
//! `window_end` column holds each row's slice end. Each live slice keeps
//! DataFusion accumulators per key. When the watermark reaches a window's
//! last millisecond the window fires, once, as insert-only rows:
//!
//! - TUMBLE: the window is its one slice, evaluated and dropped;
//! - HOP and CUMULATE: completed slices are turned into intermediate states
//!   (keys + accumulator states), and a window merges the states of its
//!   slices; a slice is dropped after the last window holding it fired.
//!
//! Rows of a slice whose end the watermark has passed still count for the
//! slice's windows that have not fired; once all have, they are late:
//! dropped and counted, as Flink does. Memory is bounded by live slices ×
//! keys.
//!
//! Windows over a `PROCTIME()` column fire by the wall clock instead (the
//! subtask's processing-time ticks), a short grace after their end.
//!
//! Checkpoints store every slice as keyed state: one batch per slice with
//! its end, whether it is complete, the operator's time, and each group's
//! key and accumulator states. Windows to fire are derived again on restore.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use weir_common::window::instant;
use weir_common::{StreamBatch, Watermark, WindowKind, WindowSpec, ZoneShift};

use super::aggregate::{
    AggregateCall, AggregateOutput, CallInput, GroupStates, GroupedAccumulators, Grouping,
    WindowBounds, output_batch, states_from_batch, states_to_batch,
};
use super::window_assign::window_bounds;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};

/// What a window aggregation computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct WindowAggregateSpec {
    pub window: WindowSpec,
    pub grouping: Grouping,
    /// The input's slice-end column (the assigner's `window_end`).
    pub slice_end: Arc<dyn PhysicalExpr>,
    pub calls: Vec<AggregateCall>,
    pub outputs: Vec<AggregateOutput>,
    pub output_schema: SchemaRef,
    /// Windows over TIMESTAMP_LTZ: slice ends are wall-clock times of this zone.
    pub zone: Option<ZoneShift>,
    /// What fires the windows.
    pub time: TimeDomain,
}

/// How long processing-time windows wait past their end for rows stamped
/// upstream that are still in flight.
pub const PROCTIME_GRACE_MS: i64 = 200;

/// Which clock fires a windowed operator's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    /// Watermarks (a rowtime attribute).
    EventTime,
    /// The wall clock (a `PROCTIME()` attribute), a grace after a window's end.
    ProcessingTime,
}

impl TimeDomain {
    pub fn processing(processing_time: bool) -> Self {
        if processing_time {
            TimeDomain::ProcessingTime
        } else {
            TimeDomain::EventTime
        }
    }

    /// How far a watermark moves time in this domain.
    pub(crate) fn by_watermark(self, watermark: Watermark) -> Option<i64> {
        (self == TimeDomain::EventTime).then_some(watermark.millis())
    }

    /// How far the wall clock moves time in this domain.
    pub(crate) fn by_clock(self, now: i64) -> Option<i64> {
        (self == TimeDomain::ProcessingTime).then(|| now.saturating_sub(PROCTIME_GRACE_MS))
    }
}

impl WindowAggregateSpec {
    /// The event-time instant of a (wall-clock) window bound.
    fn instant(&self, bound: i64) -> i64 {
        instant(self.zone.as_ref(), bound)
    }

    pub fn name(&self) -> String {
        let keys: Vec<String> = self.grouping.keys.iter().map(|k| k.to_string()).collect();
        let calls: Vec<&str> = self.calls.iter().map(AggregateCall::name).collect();
        format!(
            "WindowAggregate(groupBy=[{}], window=[{}], select=[{}])",
            keys.join(", "),
            self.window,
            calls.join(", ")
        )
    }
}

pub struct WindowAggregate {
    spec: Arc<WindowAggregateSpec>,
    name: String,
    /// Slices still taking rows, by slice end.
    live: BTreeMap<i64, GroupedAccumulators>,
    /// Completed slices of HOP and CUMULATE windows, by slice end.
    completed: BTreeMap<i64, GroupStates>,
    /// Ends of windows with at least one slice, not fired yet.
    pending: BTreeSet<i64>,
    watermark: i64,
    max_parallelism: usize,
}

impl std::fmt::Debug for WindowAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowAggregate")
            .field("name", &self.name)
            .field("live_slices", &self.live.len())
            .field("pending_windows", &self.pending.len())
            .finish()
    }
}

impl WindowAggregate {
    pub fn new(spec: Arc<WindowAggregateSpec>) -> Self {
        Self {
            name: spec.name(),
            spec,
            live: BTreeMap::new(),
            completed: BTreeMap::new(),
            pending: BTreeSet::new(),
            watermark: Watermark::MIN.millis(),
            max_parallelism: 1,
        }
    }

    /// One slice as keyed state.
    fn slice_state(&self, end: i64, completed: bool, states: &GroupStates) -> Result<RecordBatch> {
        let rows = states
            .keys
            .first()
            .or_else(|| states.states.first().and_then(|s| s.first()))
            .map_or(0, |a| a.len());
        let leading: Vec<(&str, ArrayRef)> = vec![
            ("slice_end", Arc::new(Int64Array::from(vec![end; rows]))),
            (
                "completed",
                Arc::new(BooleanArray::from(vec![completed; rows])),
            ),
            (
                "time",
                Arc::new(Int64Array::from(vec![self.watermark; rows])),
            ),
        ];
        states_to_batch(states, leading, self.max_parallelism)
    }

    fn slice(&mut self, end: i64) -> Result<&mut GroupedAccumulators> {
        if !self.live.contains_key(&end) {
            self.pending.extend(self.spec.window.windows_of_slice(end));
            let slice = GroupedAccumulators::new(&self.spec.grouping, &self.spec.calls)?;
            self.live.insert(end, slice);
        }
        self.live
            .get_mut(&end)
            .ok_or_else(|| DataFusionError::Internal("a new slice vanished".into()))
    }

    fn fired(&self, end: i64) -> bool {
        WindowSpec::is_fired(self.spec.instant(end), self.watermark)
    }

    /// Adds rows of the slice ending at `end`. As in Flink, rows of a slice
    /// whose end has passed still count for the slice's windows that have
    /// not fired (HOP, CUMULATE); they are late only once all have.
    fn accept(
        &mut self,
        end: i64,
        keys: &[ArrayRef],
        inputs: &[CallInput],
        rows: usize,
        out: &mut Collector,
    ) -> Result<()> {
        if !self.fired(end) {
            return self.slice(end)?.update(keys, inputs, rows);
        }
        if self.fired(self.spec.window.last_window_of_slice(end)) {
            out.add_late_rows(rows);
            return Ok(());
        }
        let mut slice = GroupedAccumulators::new(&self.spec.grouping, &self.spec.calls)?;
        if let Some(states) = self.completed.remove(&end) {
            slice.merge(&states)?;
        } else if let Some(live) = self.live.remove(&end) {
            slice.merge(&live.into_states()?)?;
        }
        slice.update(keys, inputs, rows)?;
        self.completed.insert(end, slice.into_states()?);
        let unfired: Vec<i64> = self
            .spec
            .window
            .windows_of_slice(end)
            .filter(|e| !self.fired(*e))
            .collect();
        self.pending.extend(unfired);
        Ok(())
    }

    fn fire(&mut self, window_end: i64, out: &mut Collector) -> Result<()> {
        let window = self.spec.window;
        let window_start = window.window_start(window_end);
        let groups = if window.kind == WindowKind::Tumble {
            match self.live.remove(&window_end) {
                Some(slice) => slice,
                None => return Ok(()),
            }
        } else {
            // Every slice up to the window's end is complete now.
            let done: Vec<i64> = self.live.range(..=window_end).map(|(e, _)| *e).collect();
            for end in done {
                if let Some(slice) = self.live.remove(&end) {
                    self.completed.insert(end, slice.into_states()?);
                }
            }
            let mut merged = GroupedAccumulators::new(&self.spec.grouping, &self.spec.calls)?;
            for (_, states) in self
                .completed
                .range(window_start.saturating_add(1)..=window_end)
            {
                merged.merge(states)?;
            }
            self.completed
                .retain(|end, _| window.last_window_of_slice(*end) > window_end);
            merged
        };
        if groups.num_groups() == 0 {
            return Ok(());
        }
        let rows = groups.num_groups();
        let (keys, results) = groups.evaluate()?;
        let bounds = WindowBounds {
            start: vec![window_start; rows],
            end: vec![window_end; rows],
            time: vec![self.spec.instant(window_end).saturating_sub(1); rows],
        };
        let batch = output_batch(
            &self.spec.outputs,
            &self.spec.output_schema,
            rows,
            &keys,
            &results,
            Some(&bounds),
        )?;
        out.emit(StreamBatch::inserts(batch));
        Ok(())
    }
}

impl WindowAggregate {
    /// Time (the watermark, or the wall clock for processing-time windows)
    /// reached `progress`: fire every window it completes.
    fn advance(&mut self, progress: i64, out: &mut Collector) -> Result<()> {
        self.watermark = self.watermark.max(progress);
        while let Some(&end) = self.pending.first() {
            if !WindowSpec::is_fired(self.spec.instant(end), self.watermark) {
                break;
            }
            self.pending.pop_first();
            self.fire(end, out)?;
        }
        Ok(())
    }
}

impl Operator for WindowAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        if !batch.is_insert_only() {
            return Err(DataFusionError::Execution(
                "a window aggregation received updates; its input must be insert-only".into(),
            ));
        }
        let data = batch.data();
        let rows = data.num_rows();
        let ends = window_bounds(&self.spec.slice_end, data)?;
        let keys = self.spec.grouping.evaluate(data)?;
        let inputs = AggregateCall::evaluate_all(&self.spec.calls, data)?;
        if let Some(&first) = ends.first()
            && ends.iter().all(|e| *e == first)
        {
            // The usual case: the whole batch falls into one slice.
            return self.accept(first, &keys, &inputs, rows, out);
        }
        let mut distinct: Vec<i64> = ends.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        for end in distinct {
            let indices: UInt32Array = ends
                .iter()
                .enumerate()
                .filter(|(_, e)| **e == end)
                .map(|(i, _)| i as u32)
                .collect();
            let slice_keys = keys
                .iter()
                .map(|k| arrow::compute::take(k, &indices, None))
                .collect::<Result<Vec<_>, _>>()?;
            let slice_inputs = inputs
                .iter()
                .map(|i| i.take(&indices))
                .collect::<Result<Vec<_>>>()?;
            self.accept(end, &slice_keys, &slice_inputs, indices.len(), out)?;
        }
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: Watermark,
        out: &mut Collector,
    ) -> Result<Option<Watermark>> {
        if let Some(progress) = self.spec.time.by_watermark(watermark) {
            self.advance(progress, out)?;
        }
        Ok(Some(watermark))
    }

    fn uses_processing_time(&self) -> bool {
        self.spec.time == TimeDomain::ProcessingTime
    }

    fn process_time(&mut self, now: i64, out: &mut Collector) -> Result<()> {
        match self.spec.time.by_clock(now) {
            Some(progress) => self.advance(progress, out),
            None => Ok(()),
        }
    }

    /// The end of a bounded input is the end of time: every window fires.
    fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.advance(Watermark::END_OF_TIME.millis(), out)
    }

    fn open(&mut self, context: &OperatorContext) -> Result<()> {
        self.max_parallelism = context.max_parallelism;
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let mut batches = Vec::with_capacity(self.live.len() + self.completed.len());
        let ends: Vec<i64> = self.live.keys().copied().collect();
        for end in ends {
            let (grouping, calls) = (&self.spec.grouping, &self.spec.calls);
            let states = match self.live.get_mut(&end) {
                Some(slice) => slice.snapshot(grouping, calls)?,
                None => continue,
            };
            batches.push(self.slice_state(end, false, &states)?);
        }
        for (end, states) in &self.completed {
            batches.push(self.slice_state(*end, true, states)?);
        }
        Ok(Some(OperatorState { batches }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let broken =
            || DataFusionError::Execution("the checkpointed window state is malformed".into());
        let mut completed: BTreeMap<i64, GroupedAccumulators> = BTreeMap::new();
        for batch in state.batches.iter().filter(|b| b.num_rows() > 0) {
            let column = |i: usize| batch.columns().get(i).ok_or_else(broken);
            let end = column(1)?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(broken)?
                .value(0);
            let done = column(2)?.as_boolean_opt().ok_or_else(broken)?.value(0);
            let time = column(3)?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(broken)?;
            self.watermark = self
                .watermark
                .max(time.values().iter().copied().max().unwrap_or(i64::MIN));
            let states = states_from_batch(batch, 3, &self.spec.grouping, &self.spec.calls)?;
            let target = if done { &mut completed } else { &mut self.live };
            let slice = match target.entry(end) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(
                    GroupedAccumulators::new(&self.spec.grouping, &self.spec.calls)?,
                ),
            };
            slice.merge(&states)?;
        }
        for (end, slice) in completed {
            self.completed.insert(end, slice.into_states()?);
        }
        let ends: Vec<i64> = self
            .live
            .keys()
            .chain(self.completed.keys())
            .copied()
            .collect();
        for end in ends {
            let unfired: Vec<i64> = self
                .spec
                .window
                .windows_of_slice(end)
                .filter(|e| !self.fired(*e))
                .collect();
            self.pending.extend(unfired);
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct WindowAggregateFactory(pub Arc<WindowAggregateSpec>);

impl OperatorFactory for WindowAggregateFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WindowAggregate::new(Arc::clone(&self.0))))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::TimestampMillisecondType;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::col;

    use super::*;
    use crate::operators::aggregate::test_support::{group_by, sum};

    pub(crate) fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
            Field::new(
                "window_end",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]))
    }

    pub(crate) fn rows(k: &[&str], v: &[i64], slice_end: &[i64]) -> StreamBatch {
        let batch = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(StringArray::from(k.to_vec())),
                Arc::new(Int64Array::from(v.to_vec())),
                Arc::new(TimestampMillisecondArray::from(slice_end.to_vec())),
            ],
        )
        .expect("batch");
        StreamBatch::inserts(batch)
    }

    fn operator(window: WindowSpec) -> WindowAggregate {
        operator_in(window, false)
    }

    fn operator_in(window: WindowSpec, processing_time: bool) -> WindowAggregate {
        let input = input_schema();
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new(
                "window_end",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("s", DataType::Int64, true),
        ]));
        WindowAggregate::new(Arc::new(WindowAggregateSpec {
            window,
            grouping: group_by("k", &input),
            slice_end: col("window_end", &input).expect("column"),
            calls: vec![sum("v", &input)],
            outputs: vec![
                AggregateOutput::Key(0),
                AggregateOutput::WindowEnd,
                AggregateOutput::Aggregate(0),
            ],
            output_schema: output,
            zone: None,
            time: TimeDomain::processing(processing_time),
        }))
    }

    /// (key, window end, sum) rows of what was emitted, sorted.
    pub(crate) fn emitted(out: &mut Collector) -> Vec<(String, i64, i64)> {
        let mut rows = Vec::new();
        for batch in out.take() {
            assert!(batch.is_insert_only());
            let data = batch.data();
            let k = data.column(0).as_string::<i32>();
            let end = data.column(1).as_primitive::<TimestampMillisecondType>();
            let s = data.column(2).as_primitive::<arrow::datatypes::Int64Type>();
            for i in 0..data.num_rows() {
                rows.push((k.value(i).to_string(), end.value(i), s.value(i)));
            }
        }
        rows.sort();
        rows
    }

    #[test]
    fn tumbling_windows_fire_on_the_watermark_and_drop_late_rows() {
        let mut op = operator(WindowSpec::tumble(10, 0).expect("valid"));
        let mut out = Collector::default();
        op.process_batch(
            0,
            rows(&["a", "a", "b"], &[1, 2, 3], &[10, 10, 20]),
            &mut out,
        )
        .expect("batch");
        assert!(out.take().is_empty(), "nothing fires before the watermark");
        op.process_watermark(Watermark(8), &mut out)
            .expect("watermark");
        assert!(out.take().is_empty(), "window [0, 10) is still open at 8");
        op.process_watermark(Watermark(9), &mut out)
            .expect("watermark");
        assert_eq!(emitted(&mut out), vec![("a".to_string(), 10, 3)]);
        // [0, 10) has fired: its rows are late now; [10, 20) still takes rows.
        op.process_batch(0, rows(&["a", "b"], &[5, 4], &[10, 20]), &mut out)
            .expect("batch");
        assert_eq!(out.late_rows(), 1);
        op.finish(&mut out).expect("finish");
        assert_eq!(emitted(&mut out), vec![("b".to_string(), 20, 7)]);
    }

    #[test]
    fn processing_time_windows_fire_by_the_clock_not_by_watermarks() {
        let mut op = operator_in(WindowSpec::tumble(10, 0).expect("valid"), true);
        assert!(op.uses_processing_time());
        let mut out = Collector::default();
        op.process_batch(0, rows(&["a"], &[1], &[10]), &mut out)
            .expect("batch");
        op.process_watermark(Watermark(1_000), &mut out)
            .expect("watermark");
        assert!(
            out.take().is_empty(),
            "watermarks do not fire processing-time windows"
        );
        op.process_time(9 + PROCTIME_GRACE_MS - 1, &mut out)
            .expect("time");
        assert!(out.take().is_empty(), "still within the grace period");
        op.process_time(9 + PROCTIME_GRACE_MS, &mut out)
            .expect("time");
        assert_eq!(emitted(&mut out), vec![("a".to_string(), 10, 1)]);
    }

    #[test]
    fn a_row_behind_its_slice_still_counts_for_the_unfired_windows() {
        // size 4, slide 2: slice [0, 2) is in windows ending at 2 and 4.
        let mut op = operator(WindowSpec::hop(2, 4, 0).expect("valid"));
        let mut out = Collector::default();
        op.process_batch(0, rows(&["a"], &[1], &[2]), &mut out)
            .expect("batch");
        op.process_watermark(Watermark(1), &mut out)
            .expect("watermark");
        assert_eq!(emitted(&mut out), vec![("a".to_string(), 2, 1)]);
        op.process_batch(0, rows(&["a"], &[10], &[2]), &mut out)
            .expect("batch");
        assert_eq!(out.late_rows(), 0, "window [0, 4) has not fired");
        op.process_watermark(Watermark(3), &mut out)
            .expect("watermark");
        assert_eq!(emitted(&mut out), vec![("a".to_string(), 4, 11)]);
        op.process_batch(0, rows(&["a"], &[100], &[2]), &mut out)
            .expect("batch");
        assert_eq!(out.late_rows(), 1, "every window of the slice has fired");
    }

    #[test]
    fn hopping_windows_merge_their_slices() {
        // size 4, slide 2: slices [0,2) [2,4) [4,6); windows end at 2, 4, 6, 8.
        let mut op = operator(WindowSpec::hop(2, 4, 0).expect("valid"));
        let mut out = Collector::default();
        op.process_batch(
            0,
            rows(&["a", "a", "a"], &[1, 10, 100], &[2, 4, 6]),
            &mut out,
        )
        .expect("batch");
        op.process_watermark(Watermark(3), &mut out)
            .expect("watermark");
        assert_eq!(
            emitted(&mut out),
            vec![("a".to_string(), 2, 1), ("a".to_string(), 4, 11)]
        );
        op.process_watermark(Watermark::END_OF_TIME, &mut out)
            .expect("watermark");
        assert_eq!(
            emitted(&mut out),
            vec![("a".to_string(), 6, 110), ("a".to_string(), 8, 100)]
        );
        assert!(op.live.is_empty() && op.completed.is_empty() && op.pending.is_empty());
    }

    #[test]
    fn a_restored_operator_goes_on_as_if_never_stopped() {
        // HOP size 4, slide 2, with window [0, 4) fired before the snapshot
        // of half its slices: restored, it must not fire again.
        let hop = WindowSpec::hop(2, 4, 0).expect("valid");
        let mut op = operator(hop);
        let mut out = Collector::default();
        op.process_batch(0, rows(&["a", "b", "a"], &[1, 2, 10], &[2, 2, 4]), &mut out)
            .expect("batch");
        op.process_watermark(Watermark(3), &mut out)
            .expect("watermark");
        let before = emitted(&mut out);
        let state = op.snapshot_state(1).expect("snapshot").expect("state");
        // The snapshot leaves the operator as it was.
        op.process_batch(0, rows(&["a"], &[100], &[6]), &mut out)
            .expect("batch");
        op.finish(&mut out).expect("finish");
        let undisturbed = emitted(&mut out);

        let mut restored = operator(hop);
        restored.restore_state(state).expect("restore");
        restored
            .process_batch(0, rows(&["a"], &[100], &[6]), &mut out)
            .expect("batch");
        restored.finish(&mut out).expect("finish");
        assert_eq!(emitted(&mut out), undisturbed);
        assert!(!before.is_empty() && !undisturbed.iter().any(|r| before.contains(r)));
    }
}
