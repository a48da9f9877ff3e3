//! The nexmark source: splits over the event sequence and the reader.
//!
//! Events are numbered 0, 1, 2, ... and cut into chunks of
//! `CHUNK_EPOCHS` epochs; split `i` of `n` owns chunks `i`, `i + n`,
//! `i + 2n`, ..., so every subtask's event time advances at the same pace
//! and no subtask holds the watermark far behind the others. A reader walks
//! its splits' events of the table's kind in order and makes batches of
//! them; with 'rate.limited' it emits each batch no earlier than its event
//! time, counted from the start of the job.

use std::ops::Range;
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

use crate::CONNECTOR;
use crate::columns::{BatchBuilder, TableShape};
use crate::model::Model;
use crate::options::NexmarkConfig;
use crate::recycle::Pools;

/// Epochs (of 50 events, by default) per chunk.
const CHUNK_EPOCHS: u64 = 100;
/// The most rows in one batch.
const MAX_BATCH_ROWS: usize = 8192;
/// A rate-limited batch spans at most this much event time, so that rows
/// are not held back to fill it.
const PACED_BATCH_MILLIS: i64 = 100;

/// Creates nexmark readers for one table.
#[derive(Debug)]
pub(crate) struct NexmarkSource {
    config: NexmarkConfig,
    schema: SchemaRef,
    model: Arc<Model>,
}

impl NexmarkSource {
    pub fn new(config: NexmarkConfig, schema: SchemaRef) -> Self {
        let model = Arc::new(Model::new(config.model.clone()));
        Self {
            config,
            schema,
            model,
        }
    }

    /// The event ids of the table's kind within an epoch.
    fn offsets(&self) -> Range<u64> {
        match self.config.shape.kind() {
            Some(kind) => self.config.model.offsets(kind),
            None => 0..self.config.model.total_proportion(),
        }
    }
}

/// Split `index` of `count`, encoded in the split's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SplitPlan {
    index: u64,
    count: u64,
}

impl SplitPlan {
    fn id(self) -> String {
        format!("{CONNECTOR}-{}-of-{}", self.index, self.count)
    }

    fn from_id(id: &str) -> Result<Self, ConnectorError> {
        id.strip_prefix(&format!("{CONNECTOR}-"))
            .and_then(|rest| rest.split_once("-of-"))
            .and_then(|(index, count)| Some((index.parse().ok()?, count.parse().ok()?)))
            .filter(|(index, count)| index < count)
            .map(|(index, count)| SplitPlan { index, count })
            .ok_or_else(|| ConnectorError::NotFound(format!("not a nexmark split: '{id}'")))
    }
}

/// Walks the event ids of one split, of one kind (or all), in order.
#[derive(Debug, Clone)]
struct EventCursor {
    plan: SplitPlan,
    /// Event ids at these offsets of each epoch belong to the table.
    offsets: Range<u64>,
    total: u64,
    /// One past the last event id; `None` for an endless stream.
    end: Option<u64>,
    /// The split's chunk being walked: global chunk `index + chunk * count`.
    chunk: u64,
    epoch: u64,
    offset: u64,
}

impl EventCursor {
    fn new(plan: SplitPlan, offsets: Range<u64>, total: u64, end: Option<u64>) -> Self {
        let offset = offsets.start;
        Self {
            plan,
            offsets,
            total,
            end,
            chunk: 0,
            epoch: 0,
            offset,
        }
    }

    /// The next event id, without moving on.
    fn peek(&self) -> Option<u64> {
        if self.offsets.is_empty() {
            return None;
        }
        let chunk = self
            .plan
            .index
            .checked_add(self.chunk.checked_mul(self.plan.count)?)?;
        let epoch = chunk.checked_mul(CHUNK_EPOCHS)?.checked_add(self.epoch)?;
        let id = epoch.checked_mul(self.total)?.checked_add(self.offset)?;
        match self.end {
            Some(end) if id >= end => None,
            _ => Some(id),
        }
    }

    /// Where the cursor stands, for a checkpoint: `chunk:epoch:offset`.
    fn position(&self) -> String {
        format!("{}:{}:{}", self.chunk, self.epoch, self.offset)
    }

    /// Moves to a position written by [`EventCursor::position`].
    fn seek(&mut self, position: &str) -> Result<(), ConnectorError> {
        let bad = || ConnectorError::NotFound(format!("'{position}' is not a nexmark position"));
        let parts: Vec<u64> = position
            .split(':')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let [chunk, epoch, offset] = parts[..] else {
            return Err(bad());
        };
        if epoch >= CHUNK_EPOCHS || !self.offsets.contains(&offset) {
            return Err(bad());
        }
        (self.chunk, self.epoch, self.offset) = (chunk, epoch, offset);
        Ok(())
    }

    /// The next ids, consecutive, up to `most` of them: to the end of the
    /// epoch's events of the table's kind, or of the stream.
    fn run(&self, most: usize) -> Option<Range<u64>> {
        let first = self.peek()?;
        let mut len = (self.offsets.end - self.offset).min(most as u64);
        if let Some(end) = self.end {
            len = len.min(end - first);
        }
        Some(first..first + len)
    }

    fn advance(&mut self) {
        self.advance_by(1);
    }

    /// Moves past `steps` ids, which must not pass the end of the epoch's
    /// events of the table's kind (as a [`EventCursor::run`] does not).
    fn advance_by(&mut self, steps: u64) {
        self.offset += steps;
        if self.offset >= self.offsets.end {
            self.offset = self.offsets.start;
            self.epoch += 1;
            if self.epoch == CHUNK_EPOCHS {
                self.epoch = 0;
                self.chunk += 1;
            }
        }
    }

    /// How many of the split's events of the table's kind there are, when bounded.
    fn count(&self) -> Option<u64> {
        let end = self.end?;
        let mut cursor = self.clone();
        let events_per_chunk = CHUNK_EPOCHS * self.total;
        let mut rows = 0;
        // Whole chunks first, then the last partial one event by event.
        let kind_per_chunk = CHUNK_EPOCHS * (self.offsets.end - self.offsets.start);
        let chunks = end / events_per_chunk;
        let mine = chunks / self.plan.count + u64::from(chunks % self.plan.count > self.plan.index);
        rows += mine * kind_per_chunk;
        cursor.chunk = mine;
        while cursor.peek().is_some() {
            rows += 1;
            cursor.advance();
        }
        Some(rows)
    }
}

#[async_trait]
impl SourceFactory for NexmarkSource {
    fn boundedness(&self) -> Boundedness {
        if self.config.events.is_some() {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }

    async fn plan_splits(&self, parallelism: usize) -> Result<Vec<SourceSplit>, ConnectorError> {
        let count = parallelism.max(1) as u64;
        Ok((0..count)
            .map(|index| {
                let plan = SplitPlan { index, count };
                let cursor = EventCursor::new(
                    plan,
                    self.offsets(),
                    self.config.model.total_proportion(),
                    self.config.events,
                );
                SourceSplit::new(plan.id(), cursor.count().unwrap_or(0))
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
        let shape = self.config.shape.project(&projection);
        let splits = context
            .splits
            .iter()
            .map(|split| {
                let plan = SplitPlan::from_id(&split.id)?;
                let mut cursor = EventCursor::new(
                    plan,
                    self.offsets(),
                    self.config.model.total_proportion(),
                    self.config.events,
                );
                if let Some(position) = &split.position {
                    cursor.seek(position)?;
                }
                Ok(SplitState {
                    split: split.clone(),
                    cursor,
                    finished: false,
                })
            })
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        Ok(Box::new(NexmarkReader {
            model: Arc::clone(&self.model),
            shape,
            schema,
            splits,
            next: 0,
            pacing: self.config.rate_limited.then(Instant::now),
            // A fresh start paces every subtask from the stream's start, a
            // restored one from where it resumes.
            pacing_origin: context
                .splits
                .iter()
                .all(|s| s.position.is_none())
                .then_some(self.model.config.base_time_millis),
            pending: None,
            pools: Pools::new(),
            metrics: context.metrics,
        }))
    }
}

struct SplitState {
    /// The split as assigned, for checkpoints.
    split: SourceSplit,
    cursor: EventCursor,
    /// Whether `SplitFinished` was yielded.
    finished: bool,
}

/// A batch made but not yet handed out, because it is not due yet.
struct PendingBatch {
    split: usize,
    /// The split's cursor position at the batch's first event.
    from: String,
    data: StreamBatch,
    /// With 'rate.limited': when the batch may be handed out.
    due: Option<Instant>,
}

/// Reads the splits of one subtask, in turn.
struct NexmarkReader {
    model: Arc<Model>,
    shape: TableShape,
    schema: SchemaRef,
    splits: Vec<SplitState>,
    /// The split to try first on the next call, for round-robin.
    next: usize,
    /// When the reader started, with 'rate.limited'.
    pacing: Option<Instant>,
    /// The event time paced from: the stream's start, or the reader's
    /// first event when it resumes from a checkpoint.
    pacing_origin: Option<i64>,
    /// Kept across calls so that a cancelled call loses no rows.
    pending: Option<PendingBatch>,
    /// The vectors of batches downstream has dropped, for the next ones.
    pools: Pools,
    metrics: Arc<SourceMetrics>,
}

impl NexmarkReader {
    /// The next batch of split `index`, up to `MAX_BATCH_ROWS` rows (and,
    /// when paced, `PACED_BATCH_MILLIS` of event time).
    fn make_batch(&mut self, index: usize) -> Result<PendingBatch, ConnectorError> {
        let config = &self.model.config;
        let cursor = &mut self.splits[index].cursor;
        let from = cursor.position();
        let mut builder = BatchBuilder::new(
            &self.model,
            &self.pools,
            &self.shape,
            Arc::clone(&self.schema),
            MAX_BATCH_ROWS,
        );
        let mut first_time = None;
        let mut last_time = config.base_time_millis;
        while builder.rows() < MAX_BATCH_ROWS {
            if self.pacing.is_none() {
                let Some(run) = cursor.run(MAX_BATCH_ROWS - builder.rows()) else {
                    break;
                };
                cursor.advance_by(run.end - run.start);
                builder.push_run(run);
                continue;
            }
            let Some(id) = cursor.peek() else { break };
            let start = config.timestamp(id);
            let first = *first_time.get_or_insert(start);
            if start - first > PACED_BATCH_MILLIS {
                break;
            }
            last_time = start;
            builder.push_run(id..id + 1);
            cursor.advance();
        }
        self.metrics.add_size_read(builder.rows() as u64);
        let data = StreamBatch::inserts(builder.finish()?);
        let origin = *self
            .pacing_origin
            .get_or_insert(first_time.unwrap_or(config.base_time_millis));
        let due = self.pacing.map(|started| {
            let offset = (last_time - origin).max(0) as u64;
            started
                .checked_add(Duration::from_millis(offset))
                .unwrap_or(started)
        });
        Ok(PendingBatch {
            split: index,
            from,
            data,
            due,
        })
    }
}

#[async_trait]
impl SourceReader for NexmarkReader {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>, ConnectorError> {
        if self.pending.is_none() {
            let count = self.splits.len();
            let mut made = None;
            for step in 0..count {
                let index = (self.next + step) % count;
                let split = &mut self.splits[index];
                if split.finished {
                    continue;
                }
                self.next = index + 1;
                if split.cursor.peek().is_none() {
                    split.finished = true;
                    self.metrics.splits_finished.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(SourceEvent::SplitFinished { split: index }));
                }
                made = Some(self.make_batch(index)?);
                break;
            }
            let Some(batch) = made else {
                return Ok(None);
            };
            self.pending = Some(batch);
        }
        if let Some(due) = self.pending.as_ref().and_then(|p| p.due) {
            tokio::time::sleep_until(due).await;
        }
        Ok(self.pending.take().map(|batch| SourceEvent::Batch {
            split: batch.split,
            data: batch.data,
        }))
    }

    fn snapshot(&mut self, _checkpoint_id: u64) -> Result<Vec<SourceSplit>, ConnectorError> {
        let mut splits = Vec::new();
        for (index, state) in self.splits.iter().enumerate() {
            if state.finished {
                continue;
            }
            let mut split = state.split.clone();
            // A batch made but not handed out is not read yet.
            split.position = Some(match &self.pending {
                Some(pending) if pending.split == index => pending.from.clone(),
                _ => state.cursor.position(),
            });
            splits.push(split);
        }
        Ok(splits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(index: u64, count: u64, offsets: Range<u64>, end: Option<u64>) -> EventCursor {
        EventCursor::new(SplitPlan { index, count }, offsets, 50, end)
    }

    fn ids(mut cursor: EventCursor) -> Vec<u64> {
        let mut ids = Vec::new();
        while let Some(id) = cursor.peek() {
            ids.push(id);
            cursor.advance();
        }
        ids
    }

    #[test]
    fn splits_share_the_events_exactly_once() {
        let end = 3 * CHUNK_EPOCHS * 50 + 777;
        let mut all: Vec<u64> = (0..3)
            .flat_map(|i| ids(cursor(i, 3, 0..50, Some(end))))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..end).collect::<Vec<_>>());
        for i in 0..3 {
            let c = cursor(i, 3, 0..50, Some(end));
            assert_eq!(c.count(), Some(ids(c.clone()).len() as u64));
        }
    }

    #[test]
    fn a_kind_walks_only_its_offsets() {
        let bids = ids(cursor(0, 1, 4..50, Some(120)));
        assert_eq!(bids.first(), Some(&4));
        assert!(!bids.contains(&50));
        assert_eq!(bids.len(), 46 + 46 + 16);
        let persons = ids(cursor(1, 2, 0..1, Some(CHUNK_EPOCHS * 50 * 2)));
        assert_eq!(persons.first(), Some(&(CHUNK_EPOCHS * 50)));
        assert_eq!(persons.len() as u64, CHUNK_EPOCHS);
    }

    #[test]
    fn runs_walk_the_same_ids() {
        for (offsets, most) in [(4..50, 1000), (4..50, 7), (0..1, 3), (0..50, 64)] {
            let end = Some(2 * CHUNK_EPOCHS * 50 * 3 + 1234);
            let one_by_one = ids(cursor(1, 3, offsets.clone(), end));
            let mut by_runs = Vec::new();
            let mut walked = cursor(1, 3, offsets, end);
            while let Some(run) = walked.run(most) {
                assert!(run.end - run.start <= most as u64);
                walked.advance_by(run.end - run.start);
                by_runs.extend(run);
            }
            assert_eq!(by_runs, one_by_one);
        }
    }

    #[test]
    fn a_cursor_resumes_where_it_stood() {
        let mut walked = cursor(1, 2, 4..50, Some(CHUNK_EPOCHS * 50 * 6));
        for _ in 0..777 {
            walked.advance();
        }
        let mut resumed = cursor(1, 2, 4..50, Some(CHUNK_EPOCHS * 50 * 6));
        resumed.seek(&walked.position()).expect("seek");
        assert_eq!(ids(resumed), ids(walked));
        assert!(
            cursor(0, 1, 4..50, None).seek("0:0:2").is_err(),
            "offset of another kind"
        );
    }

    /// Reads the next batch of a one-split reader.
    async fn next_batch(reader: &mut Box<dyn SourceReader>) -> arrow::array::RecordBatch {
        loop {
            match reader.next_event().await.expect("read") {
                Some(SourceEvent::Batch { data, .. }) => return data.into_data(),
                Some(_) => {}
                None => panic!("the table ended early"),
            }
        }
    }

    #[tokio::test]
    async fn a_dropped_batch_lends_its_vectors_to_the_next() {
        use arrow::array::AsArray;
        use arrow::datatypes::{DataType, Field, Int64Type, Schema};
        use std::collections::BTreeMap;
        use weir_connector::{Connector, TableOptions, TableSpec};

        let schema = Arc::new(Schema::new(vec![
            Field::new("extra", DataType::Utf8, true),
            Field::new("price", DataType::Int64, true),
        ]));
        let options = BTreeMap::from(
            [
                ("connector", "nexmark"),
                ("table", "bid"),
                ("events.num", "100000"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let spec = TableSpec::new("bid", schema, TableOptions::new(options));
        let source = crate::NexmarkConnector
            .create_source(&spec)
            .expect("source");
        let splits = source.plan_splits(1).await.expect("splits");
        let mut reader = source
            .create_reader(SourceContext::single(splits))
            .await
            .expect("reader");
        let text = |batch: &arrow::array::RecordBatch| {
            batch.column(0).as_string::<i32>().values().as_ptr()
        };
        let prices = |batch: &arrow::array::RecordBatch| {
            batch
                .column(1)
                .as_primitive::<Int64Type>()
                .values()
                .as_ptr()
        };
        let first = next_batch(&mut reader).await;
        let copy = first.clone();
        drop(first);
        // Still in use through the copy: the next batch gets other vectors.
        let second = next_batch(&mut reader).await;
        assert_ne!(text(&second), text(&copy));
        let lent_text = [text(&copy), text(&second)];
        let lent_prices = [prices(&copy), prices(&second)];
        drop((copy, second));
        let third = next_batch(&mut reader).await;
        assert!(lent_text.contains(&text(&third)));
        assert!(lent_prices.contains(&prices(&third)));
        assert_eq!(third.num_rows(), MAX_BATCH_ROWS);
        assert!(third.column(0).as_string::<i32>().value(0).len() > 40);
    }

    #[test]
    fn split_ids_round_trip() {
        let plan = SplitPlan { index: 2, count: 3 };
        assert_eq!(SplitPlan::from_id(&plan.id()).ok(), Some(plan));
        assert!(SplitPlan::from_id("nexmark-3-of-3").is_err());
    }
}
