//! Reading Kafka topics: partitions are the splits.
//!
//! When a job starts, [`KafkaSource::plan_splits`] lists the partitions of
//! the table's topics and resolves where each starts ('scan.startup.mode')
//! and, for a bounded table, where it stops ('scan.bounded.mode'), so that
//! every subtask agrees on both and a split's offsets are plain data,
//! ready for checkpoints.
//!
//! Each subtask then runs one consumer on a thread of its own
//! ([`consume`]): librdkafka's calls block, and a thread per subtask also
//! decodes records in parallel with the operators downstream. The thread
//! assigns its partitions (no consumer-group rebalancing: the runtime
//! decides who reads what, as Flink does), buffers polled records per
//! partition, and turns a partition's buffer into one batch when the poll
//! runs dry or the buffer is full. Batches go to the subtask through a
//! small bounded channel, so a slow job slows the consumer instead of
//! growing memory. Dropping the reader closes the channel, and the thread
//! stops at its next send or poll.
//!
//! Checkpoints: each batch travels with the offset its partition is read
//! up to, so the reader knows, for the rows it handed out, where every
//! partition stands; that is a split's position in a checkpoint, and a
//! reader restored from it starts there. Offsets are committed to the
//! table's 'properties.group.id' every few seconds until the job takes its
//! first checkpoint, and from then on when a checkpoint completes, with the
//! offsets recorded in it (as Flink does; the group's offsets are for
//! monitoring and for 'group-offsets' startup, never for recovery).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use weir_connector::{
    Boundedness, ConnectorError, MetadataColumn, SourceContext, SourceEvent, SourceFactory,
    SourceMetrics, SourceReader, SourceSplit,
};

use crate::options::{BoundedMode, KafkaConfig, StartupMode, Topics};
use crate::records::{Record, RecordBuffer, RowAssembler};
use crate::{blocking, kafka_error};

/// How long metadata and offset lookups may take before the job fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows per batch at most.
const MAX_BATCH_ROWS: usize = 8192;
/// How long one poll waits for records; bounds how late a stop is noticed.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Batches in flight between the consumer thread and the subtask.
const CHANNEL_BATCHES: usize = 4;
/// How often read offsets are committed to the group (until checkpoints
/// commit them).
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// A Kafka table as a source.
#[derive(Debug)]
pub struct KafkaSource {
    pub(crate) config: Arc<KafkaConfig>,
    pub(crate) read_schema: SchemaRef,
    pub(crate) metadata: Vec<MetadataColumn>,
}

/// One partition to read, from `start` up to (not including) `stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionSplit {
    pub topic: String,
    pub partition: i32,
    pub start: i64,
    pub stop: Option<i64>,
}

impl PartitionSplit {
    /// `topic:partition:start:stop`, stop `-` when unbounded. Topic names
    /// cannot hold a `:`.
    fn to_split(&self) -> SourceSplit {
        let stop = self.stop.map_or_else(|| "-".to_string(), |s| s.to_string());
        SourceSplit::new(
            format!("{}:{}:{}:{stop}", self.topic, self.partition, self.start),
            self.stop.map_or(0, |s| (s - self.start).max(0) as u64),
        )
    }

    fn parse(split: &SourceSplit) -> Result<Self, ConnectorError> {
        let bad = || ConnectorError::NotFound(format!("'{}' is not a Kafka split", split.id));
        let mut parts = split.id.rsplitn(4, ':');
        let stop = parts.next().ok_or_else(bad)?;
        let start = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let partition = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let topic = parts.next().ok_or_else(bad)?.to_string();
        let stop = match stop {
            "-" => None,
            s => Some(s.parse().map_err(|_| bad())?),
        };
        Ok(Self {
            topic,
            partition,
            start,
            stop,
        })
    }

    /// The split to read: from its checkpointed position, if it has one.
    fn restore(split: &SourceSplit) -> Result<Self, ConnectorError> {
        let mut parsed = Self::parse(split)?;
        if let Some(position) = &split.position {
            parsed.start = position.parse().map_err(|_| {
                ConnectorError::NotFound(format!(
                    "malformed position '{position}' of Kafka split '{}'",
                    split.id
                ))
            })?;
        }
        Ok(parsed)
    }

    fn finished(&self, position: i64) -> bool {
        self.stop.is_some_and(|stop| position >= stop)
    }
}

/// A consumer for metadata and offset lookups, or for reading.
fn create_consumer(config: &KafkaConfig) -> Result<BaseConsumer, ConnectorError> {
    let mut client = config.client_config();
    // The runtime assigns partitions and offsets are committed by Weir.
    client.set("enable.auto.commit", "false");
    client.set("enable.auto.offset.store", "false");
    // librdkafka refuses assignments without a group; nothing is committed
    // for this one unless the table names its own 'properties.group.id'.
    if !config.properties.contains_key("group.id") {
        client.set("group.id", format!("weir-{}", config.table));
    }
    client.create().map_err(|e| {
        kafka_error(
            format!(
                "cannot create a Kafka consumer for table '{}'",
                config.table
            ),
            e,
        )
    })
}

/// Lists the partitions of the table's topics and resolves their offsets.
fn plan_partitions(config: &KafkaConfig) -> Result<Vec<PartitionSplit>, ConnectorError> {
    let consumer = create_consumer(config)?;
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|e| {
            kafka_error(
                format!("cannot list the topics of table '{}'", config.table),
                e,
            )
        })?;
    let mut partitions: Vec<(String, i32)> = Vec::new();
    let wanted = |name: &str| match &config.topics {
        Topics::Names(names) => names.iter().any(|n| n == name),
        Topics::Pattern(pattern) => pattern.is_match(name),
    };
    for topic in metadata.topics().iter().filter(|t| wanted(t.name())) {
        for partition in topic.partitions() {
            partitions.push((topic.name().to_string(), partition.id()));
        }
    }
    if let Topics::Names(names) = &config.topics
        && let Some(missing) = names
            .iter()
            .find(|n| !partitions.iter().any(|(t, _)| t == *n))
    {
        return Err(ConnectorError::NotFound(format!(
            "topic '{missing}' of table '{}' does not exist on {}",
            config.table,
            config
                .properties
                .get("bootstrap.servers")
                .map_or("the brokers", String::as_str)
        )));
    }
    partitions.sort();
    let mut splits = Vec::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, REQUEST_TIMEOUT)
            .map_err(|e| {
                kafka_error(
                    format!("cannot read the offsets of '{topic}' partition {partition}"),
                    e,
                )
            })?;
        let committed = || committed_offset(&consumer, config, &topic, partition);
        let start = match &config.startup {
            StartupMode::Earliest => low,
            StartupMode::Latest => high,
            StartupMode::Timestamp(millis) => {
                offset_for_time(&consumer, &topic, partition, *millis)?.unwrap_or(high)
            }
            StartupMode::Specific(offsets) => match offsets.get(&partition) {
                Some(offset) => *offset,
                None => committed()?.unwrap_or(low),
            },
            StartupMode::GroupOffsets => match committed()? {
                Some(offset) => offset,
                None => match config
                    .properties
                    .get("auto.offset.reset")
                    .map(String::as_str)
                {
                    Some("earliest" | "smallest" | "beginning") => low,
                    Some("latest" | "largest" | "end") => high,
                    _ => {
                        return Err(ConnectorError::NotFound(format!(
                            "group '{}' has no committed offset for topic '{topic}' partition \
                             {partition}; set 'properties.auto.offset.reset' to 'earliest' or \
                             'latest', or choose another 'scan.startup.mode'",
                            config.properties.get("group.id").map_or("", String::as_str)
                        )));
                    }
                },
            },
        }
        .clamp(low, high);
        let stop = match &config.bounded {
            BoundedMode::Unbounded => None,
            BoundedMode::Latest => Some(high),
            BoundedMode::Timestamp(millis) => {
                Some(offset_for_time(&consumer, &topic, partition, *millis)?.unwrap_or(high))
            }
            BoundedMode::Specific(offsets) => {
                Some(offsets.get(&partition).copied().unwrap_or(high))
            }
            BoundedMode::GroupOffsets => Some(committed()?.unwrap_or(high)),
        };
        splits.push(PartitionSplit {
            topic,
            partition,
            start,
            stop: stop.map(|s| s.max(start)),
        });
    }
    Ok(splits)
}

fn committed_offset(
    consumer: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, ConnectorError> {
    if !config.properties.contains_key("group.id") {
        return Ok(None);
    }
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    let committed = consumer
        .committed_offsets(list, REQUEST_TIMEOUT)
        .map_err(|e| kafka_error(format!("cannot read the group's offsets for '{topic}'"), e))?;
    let offset = committed
        .find_partition(topic, partition)
        .and_then(|elem| elem.offset().to_raw())
        .filter(|o| *o >= 0);
    Ok(offset)
}

/// The first offset whose record timestamp is at or after `millis`.
fn offset_for_time(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    millis: i64,
) -> Result<Option<i64>, ConnectorError> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(millis))
        .map_err(|e| kafka_error("cannot build an offset request", e))?;
    let found = consumer
        .offsets_for_times(list, REQUEST_TIMEOUT)
        .map_err(|e| kafka_error(format!("cannot look up offsets by time in '{topic}'"), e))?;
    Ok(found
        .find_partition(topic, partition)
        .and_then(|elem| elem.offset().to_raw())
        .filter(|o| *o >= 0))
}

#[async_trait]
impl SourceFactory for KafkaSource {
    fn boundedness(&self) -> Boundedness {
        match self.config.bounded {
            BoundedMode::Unbounded => Boundedness::Unbounded,
            _ => Boundedness::Bounded,
        }
    }

    fn produces_updates(&self) -> bool {
        self.config.upsert || self.config.value_format.is_changelog()
    }

    async fn plan_splits(&self, _parallelism: usize) -> Result<Vec<SourceSplit>, ConnectorError> {
        let config = Arc::clone(&self.config);
        let splits = blocking(move || plan_partitions(&config)).await?;
        Ok(splits.iter().map(PartitionSplit::to_split).collect())
    }

    async fn create_reader(
        &self,
        context: SourceContext,
    ) -> Result<Box<dyn SourceReader>, ConnectorError> {
        let splits = context
            .splits
            .iter()
            .map(PartitionSplit::restore)
            .collect::<Result<Vec<_>, _>>()?;
        let assembler = RowAssembler::try_new(
            &self.config,
            &self.read_schema,
            &self.metadata,
            context.projection.as_deref(),
        )?;
        let (sender, events) = mpsc::channel(CHANNEL_BATCHES);
        let (commit_sender, commits) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let checkpointed = Arc::new(AtomicBool::new(false));
        let positions = splits.iter().map(|s| s.start).collect();
        let finished = vec![false; splits.len()];
        let work = ConsumerThread {
            config: Arc::clone(&self.config),
            splits: splits.clone(),
            assembler,
            metrics: Arc::clone(&context.metrics),
            sender,
            stop: Arc::clone(&stop),
            checkpointed: Arc::clone(&checkpointed),
            commits,
        };
        std::thread::Builder::new()
            .name(format!("kafka-{}-{}", self.config.table, context.subtask))
            .spawn(move || work.run())
            .map_err(|e| ConnectorError::Io {
                context: "cannot start a Kafka consumer thread".to_string(),
                source: e,
            })?;
        Ok(Box::new(KafkaReader {
            events,
            stop,
            splits,
            positions,
            finished,
            checkpointed,
            pending_commits: VecDeque::new(),
            commits: self
                .config
                .properties
                .contains_key("group.id")
                .then_some(commit_sender),
        }))
    }
}

/// What the consumer thread hands to the reader.
struct Handed {
    event: Option<SourceEvent>,
    /// The split the event's rows come from is read up to (not including)
    /// this offset; with no event, offsets without rows were passed
    /// (records skipped as malformed, transaction markers).
    position: Option<(usize, i64)>,
}

/// Offsets to commit to the group: (topic, partition, next offset).
type GroupOffsets = Vec<(String, i32, i64)>;

/// The subtask's side: events from the consumer thread.
struct KafkaReader {
    events: mpsc::Receiver<Result<Handed, ConnectorError>>,
    stop: Arc<AtomicBool>,
    splits: Vec<PartitionSplit>,
    /// Per split, the offset after the last row handed out.
    positions: Vec<i64>,
    finished: Vec<bool>,
    /// Set at the first checkpoint: the thread stops committing by time.
    checkpointed: Arc<AtomicBool>,
    /// Offsets of checkpoints taken and not completed yet, oldest first.
    pending_commits: VecDeque<(u64, GroupOffsets)>,
    /// Offsets of completed checkpoints, for the thread to commit (to the
    /// table's 'properties.group.id'; none without one).
    commits: Option<std::sync::mpsc::Sender<GroupOffsets>>,
}

impl Drop for KafkaReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl SourceReader for KafkaReader {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>, ConnectorError> {
        loop {
            // `recv` is cancel-safe: an event is either returned or stays
            // queued, and a position is applied with the rows it follows.
            let Some(handed) = self.events.recv().await.transpose()? else {
                return Ok(None);
            };
            if let Some((split, offset)) = handed.position
                && let Some(position) = self.positions.get_mut(split)
            {
                *position = offset;
            }
            if let Some(SourceEvent::SplitFinished { split }) = &handed.event
                && let Some(finished) = self.finished.get_mut(*split)
            {
                *finished = true;
            }
            if handed.event.is_some() {
                return Ok(handed.event);
            }
        }
    }

    fn snapshot(&mut self, checkpoint_id: u64) -> Result<Vec<SourceSplit>, ConnectorError> {
        self.checkpointed.store(true, Ordering::Relaxed);
        let mut splits = Vec::new();
        let mut offsets = Vec::with_capacity(self.splits.len());
        for (i, split) in self.splits.iter().enumerate() {
            let position = self.positions[i];
            offsets.push((split.topic.clone(), split.partition, position));
            if !self.finished[i] {
                let mut split = split.to_split();
                split.position = Some(position.to_string());
                splits.push(split);
            }
        }
        self.pending_commits.push_back((checkpoint_id, offsets));
        Ok(splits)
    }

    async fn notify_checkpoint_complete(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<(), ConnectorError> {
        let mut latest = None;
        while self
            .pending_commits
            .front()
            .is_some_and(|(id, _)| *id <= checkpoint_id)
        {
            latest = self.pending_commits.pop_front().map(|(_, offsets)| offsets);
        }
        if let Some(offsets) = latest {
            // A thread that has ended committed its final offsets itself.
            if let Some(commits) = &self.commits {
                let _ = commits.send(offsets);
            }
        }
        Ok(())
    }
}

/// State of one assigned partition on the consumer thread.
struct Partition {
    split: PartitionSplit,
    buffer: RecordBuffer,
    /// The next offset to hand out.
    position: i64,
    finished: bool,
}

struct ConsumerThread {
    config: Arc<KafkaConfig>,
    splits: Vec<PartitionSplit>,
    assembler: RowAssembler,
    metrics: Arc<SourceMetrics>,
    sender: mpsc::Sender<Result<Handed, ConnectorError>>,
    stop: Arc<AtomicBool>,
    /// Set once the job checkpoints: offsets are then committed only for
    /// completed checkpoints, as they arrive on `commits`.
    checkpointed: Arc<AtomicBool>,
    commits: std::sync::mpsc::Receiver<GroupOffsets>,
}

/// Why the consumer thread stopped early.
enum Stop {
    /// The reader was dropped.
    Cancelled,
    Failed(ConnectorError),
}

impl From<ConnectorError> for Stop {
    fn from(error: ConnectorError) -> Self {
        Stop::Failed(error)
    }
}

impl ConsumerThread {
    fn run(mut self) {
        let sender = self.sender.clone();
        if let Err(Stop::Failed(error)) = self.consume() {
            let _ = sender.blocking_send(Err(error));
        }
    }

    fn send(&self, event: SourceEvent) -> Result<(), Stop> {
        self.hand(Handed {
            event: Some(event),
            position: None,
        })
    }

    fn hand(&self, handed: Handed) -> Result<(), Stop> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(Stop::Cancelled);
        }
        self.sender
            .blocking_send(Ok(handed))
            .map_err(|_| Stop::Cancelled)
    }

    fn consume(&mut self) -> Result<(), Stop> {
        let consumer = create_consumer(&self.config)?;
        let result = self.read(&consumer);
        // Every TopicPartitionList from the consumer is gone by now, so
        // dropping it (which blocks while it leaves) cannot hang.
        drop(consumer);
        result
    }

    fn read(&mut self, consumer: &BaseConsumer) -> Result<(), Stop> {
        let mut partitions: Vec<Partition> = self
            .splits
            .iter()
            .map(|split| Partition {
                position: split.start,
                finished: split.finished(split.start),
                split: split.clone(),
                buffer: RecordBuffer::default(),
            })
            .collect();
        // Topic, then partition, to the split: looked up by the message's
        // topic name without allocating.
        let mut index: HashMap<String, HashMap<i32, usize>> = HashMap::new();
        for (i, p) in partitions.iter().enumerate() {
            index
                .entry(p.split.topic.clone())
                .or_default()
                .insert(p.split.partition, i);
        }
        let mut assignment = TopicPartitionList::new();
        for p in partitions.iter().filter(|p| !p.finished) {
            assignment
                .add_partition_offset(
                    &p.split.topic,
                    p.split.partition,
                    Offset::Offset(p.position),
                )
                .map_err(|e| kafka_error("cannot assign a partition", e))?;
        }
        consumer.assign(&assignment).map_err(|e| {
            kafka_error(
                format!("cannot assign partitions of table '{}'", self.config.table),
                e,
            )
        })?;
        drop(assignment);
        for (split, p) in partitions.iter().enumerate() {
            self.send(SourceEvent::SplitStarted { split })?;
            if p.finished {
                self.send(SourceEvent::SplitFinished { split })?;
            }
        }
        let commits = self.config.properties.contains_key("group.id");
        let mut last_commit = Instant::now();
        loop {
            if partitions.iter().all(|p| p.finished) {
                break;
            }
            if self.stop.load(Ordering::Relaxed) {
                return Err(Stop::Cancelled);
            }
            let mut polled = 0;
            let mut timeout = POLL_TIMEOUT;
            while let Some(result) = consumer.poll(timeout) {
                timeout = Duration::ZERO;
                let message = match result {
                    Ok(message) => message,
                    Err(error) => {
                        self.on_error(error)?;
                        continue;
                    }
                };
                let Some(&i) = index
                    .get(message.topic())
                    .and_then(|partitions| partitions.get(&message.partition()))
                else {
                    continue;
                };
                let p = &mut partitions[i];
                if p.finished || p.split.finished(message.offset()) {
                    continue;
                }
                self.metrics
                    .add_bytes((message.payload_len() + message.key_len()) as u64);
                self.metrics.add_size_read(1);
                let (timestamp, timestamp_type) = match message.timestamp() {
                    rdkafka::Timestamp::NotAvailable => (None, "NoTimestampType"),
                    rdkafka::Timestamp::CreateTime(t) => (Some(t), "CreateTime"),
                    rdkafka::Timestamp::LogAppendTime(t) => (Some(t), "LogAppendTime"),
                };
                let headers = self.assembler.wants_headers.then(|| {
                    message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default()
                });
                p.buffer.push(Record {
                    key: message.key(),
                    value: message.payload(),
                    offset: message.offset(),
                    timestamp,
                    timestamp_type,
                    leader_epoch: None,
                    headers,
                });
                p.position = message.offset() + 1;
                polled += 1;
                let full = p.buffer.len() >= MAX_BATCH_ROWS;
                drop(message);
                if full {
                    self.flush(&mut partitions[i], i, consumer)?;
                }
                if polled >= 4 * MAX_BATCH_ROWS {
                    break;
                }
            }
            for i in 0..partitions.len() {
                self.flush(&mut partitions[i], i, consumer)?;
            }
            if polled == 0 {
                // Nothing came: a bounded partition may already be at its
                // stop (its last offsets were transaction markers or compacted).
                self.check_positions(&mut partitions, consumer)?;
            }
            if commits {
                if self.checkpointed.load(Ordering::Relaxed) {
                    while let Ok(offsets) = self.commits.try_recv() {
                        commit(consumer, &offsets);
                    }
                } else if last_commit.elapsed() >= COMMIT_INTERVAL {
                    commit(consumer, &positions(&partitions));
                    last_commit = Instant::now();
                }
            }
        }
        if commits {
            commit(consumer, &positions(&partitions));
        }
        Ok(())
    }

    /// Decodes and sends what a partition buffered; ends it at its stop.
    fn flush(
        &mut self,
        p: &mut Partition,
        split: usize,
        consumer: &BaseConsumer,
    ) -> Result<(), Stop> {
        if !p.buffer.is_empty() {
            let batch = self.assembler.assemble(
                &p.split.topic,
                p.split.partition,
                &p.buffer,
                &self.metrics,
            )?;
            p.buffer.clear();
            self.hand(Handed {
                event: batch.map(|data| SourceEvent::Batch { split, data }),
                position: Some((split, p.position)),
            })?;
        }
        if !p.finished && p.split.finished(p.position) {
            self.finish(p, split, consumer)?;
        }
        Ok(())
    }

    fn finish(&self, p: &mut Partition, split: usize, consumer: &BaseConsumer) -> Result<(), Stop> {
        p.finished = true;
        let mut list = TopicPartitionList::new();
        list.add_partition(&p.split.topic, p.split.partition);
        if let Err(error) = consumer.pause(&list) {
            tracing::debug!(%error, "cannot pause a finished partition");
        }
        drop(list);
        self.metrics.splits_finished.fetch_add(1, Ordering::Relaxed);
        self.send(SourceEvent::SplitFinished { split })
    }

    fn check_positions(
        &self,
        partitions: &mut [Partition],
        consumer: &BaseConsumer,
    ) -> Result<(), Stop> {
        if partitions
            .iter()
            .all(|p| p.finished || p.split.stop.is_none())
        {
            return Ok(());
        }
        let positions = consumer
            .position()
            .map_err(|e| kafka_error("cannot read the consumer's positions", e))?;
        let advanced: Vec<(usize, i64)> = partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.finished)
            .filter_map(|(i, p)| {
                let elem = positions.find_partition(&p.split.topic, p.split.partition)?;
                Some((i, elem.offset().to_raw()?))
            })
            .collect();
        drop(positions);
        for (i, position) in advanced {
            let p = &mut partitions[i];
            if position > p.position {
                p.position = position;
                self.hand(Handed {
                    event: None,
                    position: Some((i, position)),
                })?;
            }
            if p.split.finished(p.position) {
                self.finish(p, i, consumer)?;
            }
        }
        Ok(())
    }

    /// Transient broker trouble is logged and retried by librdkafka;
    /// anything that will not heal fails the job.
    fn on_error(&self, error: KafkaError) -> Result<(), Stop> {
        let fatal = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
                    | RDKafkaErrorCode::OffsetOutOfRange
                    | RDKafkaErrorCode::Fatal
            )
        );
        if fatal {
            return Err(Stop::Failed(kafka_error(
                format!("reading table '{}' failed", self.config.table),
                error,
            )));
        }
        tracing::warn!(table = %self.config.table, %error, "Kafka consumer error; retrying");
        Ok(())
    }
}

/// Where every partition stands on the consumer thread.
fn positions(partitions: &[Partition]) -> GroupOffsets {
    partitions
        .iter()
        .map(|p| (p.split.topic.clone(), p.split.partition, p.position))
        .collect()
}

/// Commits offsets to the consumer group, without waiting.
fn commit(consumer: &BaseConsumer, offsets: &[(String, i32, i64)]) {
    let mut list = TopicPartitionList::new();
    for (topic, partition, offset) in offsets {
        if list
            .add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .is_err()
        {
            return;
        }
    }
    if let Err(error) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(%error, "committing Kafka offsets failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_round_trip() {
        for split in [
            PartitionSplit {
                topic: "bids.v1".into(),
                partition: 3,
                start: 10,
                stop: Some(20),
            },
            PartitionSplit {
                topic: "x".into(),
                partition: 0,
                start: 0,
                stop: None,
            },
        ] {
            assert_eq!(PartitionSplit::parse(&split.to_split()).unwrap(), split);
        }
        assert!(PartitionSplit::parse(&SourceSplit::new("nonsense", 0)).is_err());
    }
}
