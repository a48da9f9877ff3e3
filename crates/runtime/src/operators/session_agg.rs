//! SESSION window aggregation (Flink's session `WindowAggregate`).
//!
//! The window assigner gives every row its own window `[ts, ts + gap)`.
//! Here, per grouping key, a row's window is merged with every session it
//! touches (Flink merges windows that intersect or meet), so a session ends
//! `gap` after its last row. A session fires when the watermark reaches its
//! end - 1; rows whose own window has already fired are late, dropped and
//! counted. Accumulators are DataFusion's row-wise ones, merged through
//! their intermediate state when sessions merge.
//!
//! A batch is applied in two passes. The first places each row: it finds
//! the sessions of its key that the row's window touches, merges them, and
//! notes the row in the one session left. The second gives each session
//! the batch touched all its rows in one `update_batch` call per
//! accumulator and moves its timer once. Calling the accumulators and
//! re-filing the timer per row cost more than the aggregation itself.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Int64Array, UInt32Array};
use arrow::datatypes::Int64Type;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use weir_common::window::instant;
use weir_common::{StreamBatch, Watermark, WindowSpec, ZoneShift};

use super::aggregate::{
    AggregateCall, AggregateOutput, CallInput, Grouping, WindowBounds, accumulator_states,
    merge_accumulator_states, output_batch,
};
use super::key_index::KeyIndex;
use super::window_assign::window_bounds;
use crate::checkpoint::{KeyedState, restored_parts, watermark_state};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};

/// What a session window aggregation computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct SessionAggregateSpec {
    pub gap: i64,
    pub grouping: Grouping,
    /// The input's `window_end` column: each row's own window end.
    pub window_end: Arc<dyn PhysicalExpr>,
    pub calls: Vec<AggregateCall>,
    pub outputs: Vec<AggregateOutput>,
    pub output_schema: SchemaRef,
    pub zone: Option<ZoneShift>,
}

impl SessionAggregateSpec {
    pub fn name(&self) -> String {
        let keys: Vec<String> = self.grouping.keys.iter().map(|k| k.to_string()).collect();
        let calls: Vec<&str> = self.calls.iter().map(AggregateCall::name).collect();
        format!(
            "WindowAggregate(groupBy=[{}], window=[SESSION(gap={}ms)], select=[{}])",
            keys.join(", "),
            self.gap,
            calls.join(", ")
        )
    }
}

struct Session {
    start: i64,
    end: i64,
    /// The end this session's timer is filed under; `None` until the
    /// batch that opened it has been applied.
    timer: Option<i64>,
    accumulators: Vec<Box<dyn Accumulator>>,
    /// Rows of the batch being applied that fall into this session.
    pending: Vec<u32>,
}

impl Session {
    fn new(start: i64, end: i64, accumulators: Vec<Box<dyn Accumulator>>) -> Self {
        Self {
            start,
            end,
            timer: None,
            accumulators,
            pending: Vec::new(),
        }
    }

    /// Takes `other` in: its bounds, its accumulators' states and its
    /// pending rows.
    fn absorb(&mut self, mut other: Session) -> Result<()> {
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        for (into, from) in self
            .accumulators
            .iter_mut()
            .zip(other.accumulators.iter_mut())
        {
            let state = from
                .state()?
                .iter()
                .map(|v| v.to_array_of_size(1))
                .collect::<Result<Vec<_>>>()?;
            into.merge_batch(&state)?;
        }
        self.pending.append(&mut other.pending);
        Ok(())
    }

    /// Gives the accumulators the pending rows, in arrival order.
    fn apply_pending(&mut self, inputs: &[CallInput]) -> Result<()> {
        self.pending.sort_unstable();
        let indices = UInt32Array::from(std::mem::take(&mut self.pending));
        for (accumulator, input) in self.accumulators.iter_mut().zip(inputs) {
            let rows = match &input.filter {
                Some(filter) => UInt32Array::from_iter_values(
                    indices
                        .values()
                        .iter()
                        .copied()
                        .filter(|&row| filter.value(row as usize)),
                ),
                None => indices.clone(),
            };
            if rows.is_empty() {
                continue;
            }
            let args = input
                .args
                .iter()
                .map(|a| arrow::compute::take(a, &rows, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            accumulator.update_batch(&args)?;
        }
        Ok(())
    }
}

/// The open sessions of key id `key`.
fn sessions_of(sessions: &mut Vec<Vec<Session>>, key: usize) -> &mut Vec<Session> {
    if key >= sessions.len() {
        sessions.resize_with(key + 1, Vec::new);
    }
    &mut sessions[key]
}

/// The sessions among `sessions` (ordered by start, disjoint and not
/// meeting) that `[start, end)` touches: a run, as their ends are ordered too.
fn touching(sessions: &[Session], start: i64, end: i64) -> Range<usize> {
    let first = sessions.partition_point(|s| s.end < start);
    let last = first + sessions[first..].partition_point(|s| s.start <= end);
    first..last
}

pub struct SessionWindowAggregate {
    spec: Arc<SessionAggregateSpec>,
    name: String,
    keys: KeyIndex,
    /// Open sessions by key id (ids are dense), each key's by start.
    sessions: Vec<Vec<Session>>,
    /// (end, key id) of every open session, to fire them in time order.
    timers: BTreeSet<(i64, usize)>,
    watermark: i64,
    /// Key groups of the snapshotted sessions.
    max_parallelism: usize,
    /// Keys with a session the batch being applied touched (repeats allowed).
    touched: Vec<usize>,
}

impl std::fmt::Debug for SessionWindowAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWindowAggregate")
            .field("name", &self.name)
            .field("open_sessions", &self.timers.len())
            .finish()
    }
}

impl SessionWindowAggregate {
    pub fn try_new(spec: Arc<SessionAggregateSpec>) -> Result<Self> {
        Ok(Self {
            name: spec.name(),
            keys: KeyIndex::for_keys(&spec.grouping.key_schema)?,
            spec,
            sessions: Vec::new(),
            timers: BTreeSet::new(),
            watermark: Watermark::MIN.millis(),
            max_parallelism: 1,
            touched: Vec::new(),
        })
    }

    fn fresh_accumulators(spec: &SessionAggregateSpec) -> Result<Vec<Box<dyn Accumulator>>> {
        spec.calls.iter().map(|c| c.accumulator(false)).collect()
    }

    fn fired(&self, end: i64) -> bool {
        WindowSpec::is_fired(instant(self.spec.zone.as_ref(), end), self.watermark)
    }

    /// Notes `row`, whose window is `[start, end)`, in the session of `key`
    /// it joins, merging every session the window touches into one.
    fn place(&mut self, key: usize, row: u32, start: i64, end: i64) -> Result<()> {
        let sessions = sessions_of(&mut self.sessions, key);
        let touched = touching(sessions, start, end);
        let at = touched.start;
        if touched.is_empty() {
            let accumulators = Self::fresh_accumulators(&self.spec)?;
            sessions.insert(at, Session::new(start, end, accumulators));
        } else {
            for merged in sessions.drain(at + 1..touched.end).collect::<Vec<_>>() {
                if let Some(timer) = merged.timer {
                    self.timers.remove(&(timer, key));
                }
                sessions[at].absorb(merged)?;
            }
        }
        let session = &mut sessions[at];
        session.start = session.start.min(start);
        session.end = session.end.max(end);
        if session.pending.is_empty() {
            self.touched.push(key);
        }
        session.pending.push(row);
        Ok(())
    }

    /// Applies the rows noted in the sessions of the touched keys and
    /// files their timers under their current ends.
    fn apply_pending(&mut self, inputs: &[CallInput]) -> Result<()> {
        for key in self.touched.drain(..) {
            let Some(sessions) = self.sessions.get_mut(key) else {
                continue;
            };
            for session in sessions.iter_mut().filter(|s| !s.pending.is_empty()) {
                session.apply_pending(inputs)?;
                if session.timer != Some(session.end) {
                    if let Some(timer) = session.timer {
                        self.timers.remove(&(timer, key));
                    }
                    self.timers.insert((session.end, key));
                    session.timer = Some(session.end);
                }
            }
        }
        Ok(())
    }

    fn emit(&self, mut fired: Vec<(usize, Session)>, out: &mut Collector) -> Result<()> {
        if fired.is_empty() {
            return Ok(());
        }
        let rows = fired.len();
        let ids: Vec<usize> = fired.iter().map(|(key, _)| *key).collect();
        let keys = self.keys.keys(&ids)?;
        let mut results: Vec<Vec<ScalarValue>> = (0..self.spec.calls.len())
            .map(|_| Vec::with_capacity(rows))
            .collect();
        for (_, session) in fired.iter_mut() {
            for (column, accumulator) in results.iter_mut().zip(session.accumulators.iter_mut()) {
                column.push(accumulator.evaluate()?);
            }
        }
        let results = results
            .into_iter()
            .map(ScalarValue::iter_to_array)
            .collect::<Result<Vec<_>>>()?;
        let zone = self.spec.zone.as_ref();
        let bounds = WindowBounds {
            start: fired.iter().map(|(_, s)| s.start).collect(),
            end: fired.iter().map(|(_, s)| s.end).collect(),
            time: fired
                .iter()
                .map(|(_, s)| instant(zone, s.end).saturating_sub(1))
                .collect(),
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

impl Operator for SessionWindowAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&mut self, context: &OperatorContext) -> Result<()> {
        self.max_parallelism = context.max_parallelism;
        Ok(())
    }

    /// The watermark, then every open session: its key, bounds and
    /// accumulator states (the states sessions merge through).
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let mut ids = Vec::with_capacity(self.timers.len());
        let mut starts = Vec::with_capacity(self.timers.len());
        let mut ends = Vec::with_capacity(self.timers.len());
        let mut sets = Vec::with_capacity(self.timers.len());
        for (id, sessions) in self.sessions.iter_mut().enumerate() {
            for session in sessions {
                ids.push(id);
                starts.push(session.start);
                ends.push(session.end);
                sets.push(&mut session.accumulators);
            }
        }
        let states = accumulator_states(sets.into_iter())?;
        let keys = self.keys.keys(&ids)?;
        let groups = crate::exchange::key_groups_of(&keys, ids.len(), self.max_parallelism)?;
        let sessions = KeyedState::new("sessions", groups)
            .group("key", keys)
            .column("start", Arc::new(Int64Array::from(starts)))
            .column("end", Arc::new(Int64Array::from(ends)))
            .group("state", states)
            .build()?;
        Ok(Some(OperatorState {
            batches: vec![watermark_state(self.watermark)?, sessions],
        }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let name = self.name.clone();
        let (watermark, parts) = restored_parts(&state, &name)?;
        if let Some(at) = watermark {
            self.watermark = self.watermark.max(at);
        }
        for state in &parts {
            let n = state.rows();
            if n == 0 {
                continue;
            }
            let keys = state.group("key", Some(self.spec.grouping.key_schema.fields().len()))?;
            let ids = self.keys.ids(&keys, n)?;
            let starts = state.primitive::<Int64Type>("start")?;
            let ends = state.primitive::<Int64Type>("end")?;
            let states = state.group("state", None)?;
            for (row, id) in ids.iter().enumerate() {
                let mut accumulators = Self::fresh_accumulators(&self.spec)?;
                merge_accumulator_states(&mut accumulators, &states, row)?;
                let mut session = Session::new(starts.value(row), ends.value(row), accumulators);
                session.timer = Some(session.end);
                self.timers.insert((session.end, *id));
                let sessions = sessions_of(&mut self.sessions, *id);
                let at = sessions.partition_point(|s| s.start < session.start);
                sessions.insert(at, session);
            }
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
                "a session window aggregation received updates; its input must be insert-only"
                    .into(),
            ));
        }
        let data = batch.data();
        let rows = data.num_rows();
        let ends = window_bounds(&self.spec.window_end, data)?;
        let keys = self.spec.grouping.evaluate(data)?;
        let ids = self.keys.ids(&keys, rows)?;
        let inputs = AggregateCall::evaluate_all(&self.spec.calls, data)?;
        let gap = self.spec.gap;
        let mut late = 0;
        for (row, (end, key)) in (0u32..).zip(ends.iter().zip(ids)) {
            if self.fired(*end) {
                late += 1;
                continue;
            }
            self.place(key, row, end.saturating_sub(gap), *end)?;
        }
        self.apply_pending(&inputs)?;
        out.add_late_rows(late);
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: Watermark,
        out: &mut Collector,
    ) -> Result<Option<Watermark>> {
        self.watermark = self.watermark.max(watermark.millis());
        let mut fired = Vec::new();
        while let Some(&(end, key)) = self.timers.first() {
            if !self.fired(end) {
                break;
            }
            self.timers.pop_first();
            if let Some(sessions) = self.sessions.get_mut(key)
                && let Some(at) = sessions.iter().position(|s| s.end == end)
            {
                fired.push((key, sessions.remove(at)));
                if sessions.is_empty() {
                    // A key seen once holds no memory once its sessions fired.
                    *sessions = Vec::new();
                }
            }
        }
        self.emit(fired, out)?;
        Ok(Some(watermark))
    }

    fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.process_watermark(Watermark::END_OF_TIME, out)?;
        Ok(())
    }
}

#[derive(Debug)]
pub struct SessionWindowAggregateFactory(pub Arc<SessionAggregateSpec>);

impl OperatorFactory for SessionWindowAggregateFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(SessionWindowAggregate::try_new(Arc::clone(
            &self.0,
        ))?))
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::col;

    use super::*;
    use crate::operators::aggregate::test_support::{group_by, sum};
    use crate::operators::window_agg::tests::{emitted, input_schema, rows};

    /// Sessions with a gap of 10 over rows whose own window ends at `window_end`.
    fn operator() -> SessionWindowAggregate {
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
        SessionWindowAggregate::try_new(Arc::new(SessionAggregateSpec {
            gap: 10,
            grouping: group_by("k", &input),
            window_end: col("window_end", &input).expect("column"),
            calls: vec![sum("v", &input)],
            outputs: vec![
                AggregateOutput::Key(0),
                AggregateOutput::WindowEnd,
                AggregateOutput::Aggregate(0),
            ],
            output_schema: output,
            zone: None,
        }))
        .expect("operator")
    }

    #[test]
    fn a_row_that_bridges_sessions_merges_them_within_a_batch_and_across_batches() {
        let mut op = operator();
        let mut out = Collector::default();
        // a: [0, 10) and [20, 30), then [10, 20) in the same batch meets
        // both; b: [-5, 5) and [40, 50) stay apart.
        op.process_batch(
            0,
            rows(
                &["a", "b", "a", "b", "a"],
                &[1, 2, 4, 8, 16],
                &[10, 5, 30, 50, 20],
            ),
            &mut out,
        )
        .expect("batch");
        assert_eq!(op.timers.len(), 3);
        // A later batch: b's [30, 40) joins [40, 50) and [4, 14) joins [-5, 5).
        op.process_batch(0, rows(&["b", "b"], &[32, 64], &[40, 14]), &mut out)
            .expect("batch");
        assert_eq!(op.timers.len(), 3);
        op.process_watermark(Watermark(20), &mut out)
            .expect("watermark");
        assert_eq!(emitted(&mut out), vec![("b".to_string(), 14, 66)]);
        // [25, 35) extends b's [30, 50); a window ending at 14 is late.
        op.process_batch(0, rows(&["b", "b"], &[128, 256], &[35, 14]), &mut out)
            .expect("batch");
        op.finish(&mut out).expect("finish");
        assert_eq!(
            emitted(&mut out),
            vec![("a".to_string(), 30, 21), ("b".to_string(), 50, 168)]
        );
        assert!(op.timers.is_empty() && op.sessions.iter().all(Vec::is_empty));
        assert_eq!(out.late_rows(), 1);
    }

    #[test]
    fn restored_sessions_merge_and_fire_as_if_never_stopped() {
        let mut op = operator();
        let mut out = Collector::default();
        // a: sessions [0, 10) and [20, 30); b: [5, 15). A watermark at 3.
        op.process_batch(
            0,
            rows(&["a", "a", "b"], &[1, 2, 3], &[10, 30, 15]),
            &mut out,
        )
        .expect("batch");
        op.process_watermark(Watermark(3), &mut out)
            .expect("watermark");
        let state = op.snapshot_state(1).expect("snapshot").expect("state");
        let mut restored = operator();
        restored.restore_state(state).expect("restore");
        // A row with window [15, 25) extends a's second session; a row for
        // a window ended by the watermark is late in both.
        for op in [&mut op, &mut restored] {
            op.process_batch(0, rows(&["a", "b"], &[4, 5], &[25, 2]), &mut out)
                .expect("batch");
            op.finish(&mut out).expect("finish");
        }
        let both = emitted(&mut out);
        assert_eq!(
            both,
            vec![
                ("a".to_string(), 10, 1),
                ("a".to_string(), 10, 1),
                ("a".to_string(), 30, 6),
                ("a".to_string(), 30, 6),
                ("b".to_string(), 15, 3),
                ("b".to_string(), 15, 3),
            ]
        );
        assert_eq!(out.late_rows(), 2);
    }
}
