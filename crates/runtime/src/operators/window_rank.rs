//! Window Top-N and window deduplication (Flink's `WindowRank`):
//! `ROW_NUMBER() OVER (PARTITION BY window_start, window_end [, k] ORDER BY
//! ...)` filtered by `<= N` (or `= 1`).
//!
//! Rows of a window are buffered until the watermark passes the window's
//! end; then each partition is sorted and its first N rows are emitted,
//! insert-only, with their row number. Buffered rows are only those of
//! windows not fired yet, so memory follows the live windows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, partition, take};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatchOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use weir_common::window::instant;
use weir_common::{StreamBatch, Watermark, WindowSpec, ZoneShift};

use super::window_agg::TimeDomain;

use super::window_assign::{split_by_time, window_bounds};
use crate::checkpoint::{KeyedState, restored_parts, watermark_state};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};

/// What a window rank computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct WindowRankSpec {
    /// PARTITION BY, window_start and window_end among them.
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub order_by: Vec<PhysicalSortExpr>,
    /// Rows kept per partition: the N of `ROW_NUMBER() <= N`.
    pub limit: usize,
    /// The input's window_end column: when its window fires.
    pub window_end: Arc<dyn PhysicalExpr>,
    /// The input's columns, then the row number (BIGINT UNSIGNED).
    pub output_schema: SchemaRef,
    pub zone: Option<ZoneShift>,
    /// What fires the windows.
    pub time: TimeDomain,
}

impl WindowRankSpec {
    pub fn name(&self) -> String {
        let partition: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
        let order: Vec<String> = self.order_by.iter().map(|e| e.to_string()).collect();
        format!(
            "WindowRank(rankType=[ROW_NUMBER], rankRange=[rankStart=1, rankEnd={}], partitionBy=[{}], orderBy=[{}])",
            self.limit,
            partition.join(", "),
            order.join(", ")
        )
    }
}

#[derive(Debug)]
pub struct WindowRank {
    spec: Arc<WindowRankSpec>,
    name: String,
    /// Rows of windows that have not fired, by the instant their window fires.
    buffered: BTreeMap<i64, Vec<RecordBatch>>,
    watermark: i64,
    /// Key groups of the snapshotted rows.
    max_parallelism: usize,
}

impl WindowRank {
    pub fn new(spec: Arc<WindowRankSpec>) -> Self {
        Self {
            name: spec.name(),
            spec,
            buffered: BTreeMap::new(),
            watermark: Watermark::MIN.millis(),
            max_parallelism: 1,
        }
    }

    /// The event-time instant each buffered row's window fires at.
    fn fire_times(&self, batch: &RecordBatch) -> Result<Vec<i64>> {
        let ends = window_bounds(&self.spec.window_end, batch)?;
        Ok(ends
            .iter()
            .map(|e| instant(self.spec.zone.as_ref(), *e))
            .collect())
    }

    /// Ranks `batch` (rows of fired windows) and emits each partition's first rows.
    fn rank(&self, batch: &RecordBatch, out: &mut Collector) -> Result<()> {
        let rows = batch.num_rows();
        let evaluate = |e: &Arc<dyn PhysicalExpr>| e.evaluate(batch)?.into_array(rows);
        let partition_columns = self
            .spec
            .partition_by
            .iter()
            .map(evaluate)
            .collect::<Result<Vec<ArrayRef>>>()?;
        let mut sort: Vec<SortColumn> = partition_columns
            .iter()
            .map(|c| SortColumn {
                values: Arc::clone(c),
                options: None,
            })
            .collect();
        for order in &self.spec.order_by {
            sort.push(SortColumn {
                values: evaluate(&order.expr)?,
                options: Some(order.options),
            });
        }
        let order = lexsort_to_indices(&sort, None)?;
        let sorted_partitions = partition_columns
            .iter()
            .map(|c| take(c, &order, None))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keep = Vec::new();
        let mut numbers = Vec::new();
        for range in partition(&sorted_partitions)?.ranges() {
            let end = range.end.min(range.start + self.spec.limit);
            for (n, at) in (range.start..end).enumerate() {
                keep.push(order.value(at));
                numbers.push(n as u64 + 1);
            }
        }
        let keep = UInt32Array::from(keep);
        let mut columns = batch
            .columns()
            .iter()
            .map(|c| take(c, &keep, None))
            .collect::<Result<Vec<_>, _>>()?;
        columns.push(Arc::new(UInt64Array::from(numbers)));
        let ranked = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.output_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(keep.len())),
        )?;
        out.emit(StreamBatch::inserts(ranked));
        Ok(())
    }
}

impl WindowRank {
    /// Time reached `progress`: rank every window it completes.
    fn advance(&mut self, progress: i64, out: &mut Collector) -> Result<()> {
        self.watermark = self.watermark.max(progress);
        while let Some(entry) = self.buffered.first_entry() {
            if !WindowSpec::is_fired(*entry.key(), self.watermark) {
                break;
            }
            let batches = entry.remove();
            if let Some(first) = batches.first() {
                let rows = concat_batches(&first.schema(), &batches)?;
                self.rank(&rows, out)?;
            }
        }
        Ok(())
    }
}

impl Operator for WindowRank {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&mut self, context: &OperatorContext) -> Result<()> {
        self.max_parallelism = context.max_parallelism;
        Ok(())
    }

    /// The watermark, then the rows of windows that have not fired.
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let mut batches = vec![watermark_state(self.watermark)?];
        for rows in self.buffered.values().flatten() {
            let state =
                KeyedState::rows("rows", rows, &self.spec.partition_by, self.max_parallelism)?;
            batches.push(state.build()?);
        }
        Ok(Some(OperatorState { batches }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let name = self.name.clone();
        let fields = self.spec.output_schema.fields().len().saturating_sub(1);
        let input = Arc::new(
            self.spec
                .output_schema
                .project(&(0..fields).collect::<Vec<_>>())?,
        );
        let (watermark, parts) = restored_parts(&state, &name)?;
        // Rows go back before the watermark, so none of them counts as late.
        let mut late = Collector::default();
        for part in &parts {
            let rows = part.group_batch("row", &input)?;
            self.process_batch(0, StreamBatch::inserts(rows), &mut late)?;
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
                "a window Top-N received updates; its input must be insert-only".into(),
            ));
        }
        let data = batch.into_data();
        let fire = self.fire_times(&data)?;
        for (time, rows) in split_by_time(&data, &fire)? {
            if WindowSpec::is_fired(time, self.watermark) {
                out.add_late_rows(rows.num_rows());
            } else {
                self.buffered.entry(time).or_default().push(rows);
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
pub struct WindowRankFactory(pub Arc<WindowRankSpec>);

impl OperatorFactory for WindowRankFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WindowRank::new(Arc::clone(&self.0))))
    }
}
