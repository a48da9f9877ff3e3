//! The datagen source: split planning and the paced reader.
//!
//! `plan_splits(N)` makes N splits, one per subtask. A reader takes its
//! splits in turn, asks its [`Pacer`] when the next batch may go out (the
//! table's `rows-per-second` divided among the subtasks), makes the batch and
//! yields it; a split that made all its rows yields `SplitFinished`, and the
//! reader ends once all its splits have.
//!
//! Checkpoints: a split's position is the number of rows it made; a split
//! resumed there makes the same rows the undisturbed one would have.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use tokio::time::Instant;
use weir_common::StreamBatch;
use weir_connector::{
    Boundedness, ConnectorError, SourceContext, SourceEvent, SourceFactory, SourceMetrics,
    SourceReader, SourceSplit,
};

use crate::generate::{SplitGenerator, SplitPlan};
use crate::options::DatagenConfig;

/// How far behind its schedule a reader may fall (a slow consumer) and still
/// catch up at full speed; beyond it the schedule restarts, so that a stall
/// is not followed by an arbitrarily long burst.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// Batches hold about this much of a second's rows, so that at low rates
/// rows are not held back to fill a batch.
const BATCHES_PER_SECOND: f64 = 10.0;

/// Creates datagen readers for one table.
#[derive(Debug)]
pub(crate) struct DatagenSource {
    table: String,
    schema: SchemaRef,
    config: Arc<DatagenConfig>,
}

impl DatagenSource {
    pub fn new(table: String, schema: SchemaRef, config: DatagenConfig) -> Self {
        Self {
            table,
            schema,
            config: Arc::new(config),
        }
    }
}

#[async_trait]
impl SourceFactory for DatagenSource {
    fn boundedness(&self) -> Boundedness {
        if self.config.is_bounded() {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }

    async fn plan_splits(&self, parallelism: usize) -> Result<Vec<SourceSplit>, ConnectorError> {
        let count = parallelism.max(1);
        Ok((0..count)
            .map(|index| {
                let plan = SplitPlan { index, count };
                SourceSplit::new(plan.id(), plan.rows(&self.config).unwrap_or(0))
            })
            .collect())
    }

    async fn create_reader(
        &self,
        context: SourceContext,
    ) -> Result<Box<dyn SourceReader>, ConnectorError> {
        let projection: Vec<usize> = match context.projection {
            Some(projection) => projection,
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let splits = context
            .splits
            .iter()
            .map(|split| {
                let plan = SplitPlan::from_id(&split.id)?;
                let mut generator = SplitGenerator::new(
                    &self.table,
                    &self.config,
                    plan,
                    &projection,
                    schema.clone(),
                )?;
                if let Some(position) = &split.position {
                    generator.resume_at(position.parse().map_err(|_| {
                        ConnectorError::NotFound(format!(
                            "malformed position '{position}' of datagen split '{}'",
                            split.id
                        ))
                    })?);
                }
                Ok(SplitState {
                    split: split.clone(),
                    generator,
                    finished: false,
                })
            })
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        // Every subtask gets an equal part of the table's rate.
        let rows_per_second =
            self.config.rows_per_second as f64 / context.parallelism.max(1) as f64;
        Ok(Box::new(DatagenReader {
            splits,
            next: 0,
            pacer: Pacer::new(rows_per_second),
            metrics: context.metrics,
        }))
    }
}

/// Reads the splits of one subtask, in turn.
struct DatagenReader {
    splits: Vec<SplitState>,
    /// The split to try first on the next call, for round-robin.
    next: usize,
    pacer: Pacer,
    metrics: Arc<SourceMetrics>,
}

struct SplitState {
    split: SourceSplit,
    generator: SplitGenerator,
    /// Whether `SplitFinished` was yielded.
    finished: bool,
}

#[async_trait]
impl SourceReader for DatagenReader {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>, ConnectorError> {
        let count = self.splits.len();
        for step in 0..count {
            let index = (self.next + step) % count;
            let split = &mut self.splits[index];
            if split.finished {
                continue;
            }
            self.next = index + 1;
            if split.generator.is_done() {
                split.finished = true;
                self.metrics.splits_finished.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(SourceEvent::SplitFinished { split: index }));
            }
            let wanted = self.pacer.batch_rows(split.generator.max_batch_rows());
            let rows = split.generator.next_batch_rows(wanted);
            self.pacer.admit(rows).await;
            let data = split.generator.generate(rows)?;
            self.metrics.add_size_read(rows as u64);
            return Ok(Some(SourceEvent::Batch {
                split: index,
                data: StreamBatch::inserts(data),
            }));
        }
        Ok(None)
    }

    fn snapshot(&mut self, _checkpoint_id: u64) -> Result<Vec<SourceSplit>, ConnectorError> {
        Ok(self
            .splits
            .iter()
            .filter(|s| !s.finished)
            .map(|s| SourceSplit {
                position: Some(s.generator.position().to_string()),
                ..s.split.clone()
            })
            .collect())
    }
}

/// Spaces batches so that a reader emits `rows_per_second` on average,
/// sleeping only when it is ahead of its schedule.
#[derive(Debug)]
struct Pacer {
    rows_per_second: f64,
    /// When the next batch is due.
    next_due: Instant,
}

impl Pacer {
    fn new(rows_per_second: f64) -> Self {
        Self {
            rows_per_second,
            next_due: Instant::now(),
        }
    }

    /// The size of the next batch: a tenth of a second's rows, at least one,
    /// at most `max_rows`.
    fn batch_rows(&self, max_rows: usize) -> usize {
        // Float-to-int `as` saturates, which is what a huge rate needs.
        let rows = (self.rows_per_second / BATCHES_PER_SECOND) as usize;
        rows.clamp(1, max_rows.max(1))
    }

    /// Waits until a batch of `rows` may go out and books its time.
    async fn admit(&mut self, rows: usize) {
        let now = Instant::now();
        if self.next_due > now {
            tokio::time::sleep_until(self.next_due).await;
        } else if now.duration_since(self.next_due) > MAX_CATCH_UP {
            self.next_due = now;
        }
        let spacing = Duration::try_from_secs_f64(rows as f64 / self.rows_per_second).ok();
        if let Some(next_due) = spacing.and_then(|d| self.next_due.checked_add(d)) {
            self.next_due = next_due;
        }
    }
}
