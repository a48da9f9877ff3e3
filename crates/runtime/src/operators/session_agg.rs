//! SESSION window aggregation (Flink's session `WindowAggregate`).
//!
//! The window assigner gives every row its own window `[ts, ts + gap)`.
//! Here, per grouping key, a row's window is merged with every session it
//! touches (Flink merges windows that intersect or meet), so a session ends
//! `gap` after its last row. A session fires when the watermark reaches its
//! end - 1; rows whose own window has already fired are late, dropped and
//! counted. Accumulators are DataFusion's row-wise ones, merged through
//! their intermediate state when sessions merge.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{BooleanArray, Int64Array};
use arrow::datatypes::Int64Type;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use weir_common::window::instant;
use weir_common::{StreamBatch, Watermark, WindowSpec, ZoneShift};

use super::aggregate::{
    AggregateCall, AggregateOutput, Grouping, KeyIndex, WindowBounds, accumulator_states,
    merge_accumulator_states, output_batch,
};
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
    accumulators: Vec<Box<dyn Accumulator>>,
}

pub struct SessionWindowAggregate {
    spec: Arc<SessionAggregateSpec>,
    name: String,
    keys: KeyIndex,
    /// Open sessions per key id, by start.
    sessions: HashMap<usize, Vec<Session>>,
    /// (end, key id) of every open session, to fire them in time order.
    timers: BTreeSet<(i64, usize)>,
    watermark: i64,
    /// Key groups of the snapshotted sessions.
    max_parallelism: usize,
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
            keys: KeyIndex::try_new(&spec.grouping)?,
            spec,
            sessions: HashMap::new(),
            timers: BTreeSet::new(),
            watermark: Watermark::MIN.millis(),
            max_parallelism: 1,
        })
    }

    fn fresh_accumulators(spec: &SessionAggregateSpec) -> Result<Vec<Box<dyn Accumulator>>> {
        spec.calls.iter().map(|c| c.accumulator(false)).collect()
    }

    fn fired(&self, end: i64) -> bool {
        WindowSpec::is_fired(instant(self.spec.zone.as_ref(), end), self.watermark)
    }

    /// The session of `key` that `[start, end)` joins, merging every session it touches.
    fn session(&mut self, key: usize, start: i64, end: i64) -> Result<&mut Session> {
        let sessions = self.sessions.entry(key).or_default();
        let (touching, mut rest): (Vec<Session>, Vec<Session>) = std::mem::take(sessions)
            .into_iter()
            .partition(|s| s.start <= end && s.end >= start);
        let mut merged = Session {
            start,
            end,
            accumulators: Vec::new(),
        };
        for session in touching {
            self.timers.remove(&(session.end, key));
            merged.start = merged.start.min(session.start);
            merged.end = merged.end.max(session.end);
            if merged.accumulators.is_empty() {
                merged.accumulators = session.accumulators;
            } else {
                for (into, mut from) in merged.accumulators.iter_mut().zip(session.accumulators) {
                    let state = from
                        .state()?
                        .iter()
                        .map(|v| v.to_array_of_size(1))
                        .collect::<Result<Vec<_>>>()?;
                    into.merge_batch(&state)?;
                }
            }
        }
        if merged.accumulators.is_empty() {
            merged.accumulators = Self::fresh_accumulators(&self.spec)?;
        }
        self.timers.insert((merged.end, key));
        let at = rest.partition_point(|s| s.start < merged.start);
        rest.insert(at, merged);
        *sessions = rest;
        sessions
            .get_mut(at)
            .ok_or_else(|| DataFusionError::Internal("a merged session vanished".into()))
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
        for (id, sessions) in self.sessions.iter_mut() {
            for session in sessions {
                ids.push(*id);
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
                let session = Session {
                    start: starts.value(row),
                    end: ends.value(row),
                    accumulators,
                };
                self.timers.insert((session.end, *id));
                let sessions = self.sessions.entry(*id).or_default();
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
        for (row, (end, key)) in ends.iter().zip(ids).enumerate() {
            if self.fired(*end) {
                late += 1;
                continue;
            }
            let session = self.session(key, end.saturating_sub(gap), *end)?;
            for (accumulator, input) in session.accumulators.iter_mut().zip(&inputs) {
                if input
                    .filter
                    .as_ref()
                    .is_some_and(|f: &BooleanArray| !f.value(row))
                {
                    continue;
                }
                let args: Vec<_> = input.args.iter().map(|a| a.slice(row, 1)).collect();
                accumulator.update_batch(&args)?;
            }
        }
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
            if let Some(sessions) = self.sessions.get_mut(&key)
                && let Some(at) = sessions.iter().position(|s| s.end == end)
            {
                fired.push((key, sessions.remove(at)));
                if sessions.is_empty() {
                    self.sessions.remove(&key);
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
