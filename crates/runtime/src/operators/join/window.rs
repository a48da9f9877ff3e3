//! The window join (Flink's `WindowJoin`): both inputs windowed by the same
//! window table function and joined on window_start, window_end and keys.
//!
//! Rows are buffered per window and side until the watermark passes the
//! window's end; then the window's rows are joined at once (INNER, outer
//! with NULL padding, SEMI, ANTI) and dropped. Output is insert-only, and
//! rows for a window that has already fired are late: dropped and counted.
//!
//! Without window columns the whole input is one window that fires when
//! both inputs end: a join in batch runtime mode, final and insert-only.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use weir_common::window::instant;
use weir_common::{StreamBatch, Watermark, WindowSpec, ZoneShift};

use super::batch::join_batches;
use super::{JoinCondition, Side};
use crate::checkpoint::{KeyedState, restored_parts, watermark_state};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};
use crate::operators::window_agg::TimeDomain;
use crate::operators::window_assign::{split_by_time, window_bounds};

/// What a window join computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct WindowJoinSpec {
    /// Keys include both window_start and window_end.
    pub condition: JoinCondition,
    /// NOT IN semantics for an anti join.
    pub null_aware: bool,
    /// Each input's window_end column; `None` joins all rows once, when
    /// the inputs end (a join in batch runtime mode).
    pub window_ends: Option<[Arc<dyn PhysicalExpr>; 2]>,
    pub zone: Option<ZoneShift>,
    pub time: TimeDomain,
}

impl WindowJoinSpec {
    pub fn name(&self) -> String {
        let c = &self.condition;
        format!(
            "{}(joinType=[{}], where=[{}])",
            if self.window_ends.is_some() {
                "WindowJoin"
            } else {
                "HashJoin"
            },
            c.kind.flink_name(),
            c.key_pairs()
        )
    }
}

#[derive(Debug)]
pub struct WindowJoin {
    spec: Arc<WindowJoinSpec>,
    name: String,
    /// Per fire time, each side's rows of windows ending then.
    buffered: BTreeMap<i64, [Vec<RecordBatch>; 2]>,
    watermark: i64,
    /// Key groups of the snapshotted rows.
    max_parallelism: usize,
}

impl WindowJoin {
    pub fn new(spec: Arc<WindowJoinSpec>) -> Self {
        Self {
            name: spec.name(),
            spec,
            buffered: BTreeMap::new(),
            watermark: Watermark::MIN.millis(),
            max_parallelism: 1,
        }
    }

    fn advance(&mut self, progress: i64, out: &mut Collector) -> Result<()> {
        self.watermark = self.watermark.max(progress);
        while let Some(entry) = self.buffered.first_entry() {
            if !WindowSpec::is_fired(*entry.key(), self.watermark) {
                break;
            }
            let [left, right] = entry.remove();
            let c = &self.spec.condition;
            let left = concat_batches(&c.left_schema, &left)?;
            let right = concat_batches(&c.right_schema, &right)?;
            let joined = join_batches(c, &left, &right, self.spec.null_aware)?;
            out.emit(StreamBatch::inserts(joined));
        }
        Ok(())
    }
}

impl Operator for WindowJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&mut self, context: &OperatorContext) -> Result<()> {
        self.max_parallelism = context.max_parallelism;
        Ok(())
    }

    /// The watermark, then each side's rows of windows that have not fired.
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let mut batches = vec![watermark_state(self.watermark)?];
        let c = &self.spec.condition;
        for sides in self.buffered.values() {
            for side in [Side::Left, Side::Right] {
                for rows in &sides[side.index()] {
                    let state =
                        KeyedState::rows(side.name(), rows, c.keys(side), self.max_parallelism)?;
                    batches.push(state.build()?);
                }
            }
        }
        Ok(Some(OperatorState { batches }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let name = self.name.clone();
        let (watermark, parts) = restored_parts(&state, &name)?;
        // Rows go back before the watermark, so none of them counts as late.
        let mut late = Collector::default();
        for part in &parts {
            let side = Side::of_state(part)?;
            let rows = part.group_batch("row", self.spec.condition.schema(side))?;
            self.process_batch(side.index(), StreamBatch::inserts(rows), &mut late)?;
        }
        if let Some(at) = watermark {
            self.watermark = self.watermark.max(at);
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        if !batch.is_insert_only() {
            return Err(DataFusionError::Execution(
                "a window join received updates; its inputs must be insert-only".into(),
            ));
        }
        let side = Side::of_input(input)?;
        let data = batch.into_data();
        let fire: Vec<i64> = match &self.spec.window_ends {
            Some(ends) => window_bounds(&ends[side.index()], &data)?
                .iter()
                .map(|e| instant(self.spec.zone.as_ref(), *e))
                .collect(),
            None => vec![Watermark::END_OF_TIME.millis(); data.num_rows()],
        };
        for (time, rows) in split_by_time(&data, &fire)? {
            if WindowSpec::is_fired(time, self.watermark) {
                out.add_late_rows(rows.num_rows());
            } else {
                self.buffered.entry(time).or_default()[side.index()].push(rows);
            }
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

    fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.advance(Watermark::END_OF_TIME.millis(), out)
    }
}

#[derive(Debug)]
pub struct WindowJoinFactory(pub Arc<WindowJoinSpec>);

impl OperatorFactory for WindowJoinFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WindowJoin::new(Arc::clone(&self.0))))
    }
}
