//! Writing Kafka topics.
//!
//! Each sink subtask owns one librdkafka producer. A batch is encoded with
//! one encoder call for its values (and one for its keys), then every row
//! is handed to the producer without waiting; librdkafka batches, sends and
//! retries in the background and reports each record's fate to
//! [`DeliveryTracker`]. The first failure fails the job at the next write.
//!
//! 'sink.delivery-guarantee':
//! - `none`: records are sent as they come; the end of input still flushes.
//! - `at-least-once` (default): [`SinkWriter::prepare_commit`] (a
//!   checkpoint barrier) and the end of input wait until every record sent
//!   so far is acknowledged, so nothing before a checkpoint can be lost.
//! - `exactly-once`: records are written in Kafka transactions, under the
//!   transactional id 'sink.transactional-id-prefix'-table-subtask.
//!   Readers with `isolation.level=read_committed` see them once committed.
//!   Without checkpoints, one transaction holds everything and commits at
//!   the end of the input. With checkpoints, see [`WriteAheadLog`]: each
//!   checkpoint's records are kept in the checkpoint and written in one
//!   transaction when it completes, so a crash between the checkpoint and
//!   the Kafka commit loses nothing and repeats nothing.
//!
//! upsert-kafka writes a changelog as upserts: `+I` and `+U` write the key
//! and the row, `-D` writes the key with a null value (a tombstone), and
//! `-U` is dropped because the `+U` that follows overwrites it. A changelog
//! value format (debezium-json) writes every row, its kind in the record.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{
    Array, ArrayBuilder, AsArray, DictionaryArray, Int32Array, Int32Builder, Int64Builder,
    LargeBinaryArray, LargeBinaryBuilder, MapArray, MapBuilder, StringArray, StringBuilder,
    TimestampMillisecondArray, UInt64Array,
};
use arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, TimeUnit, TimestampMillisecondType, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use weir_common::{RowKind, StreamBatch};
use weir_connector::{ConnectorError, SinkContext, SinkFactory, SinkWriter};
use weir_format::{RecordEncoder, encode_messages};

use crate::options::{DeliveryGuarantee, KafkaConfig, Partitioner};
use crate::{blocking, kafka_error, records};

/// How long a flush or a transaction call may take before the job fails.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for room when the producer's queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// A Kafka table as a sink.
#[derive(Debug)]
pub struct KafkaSink {
    pub(crate) config: Arc<KafkaConfig>,
    pub(crate) metadata: WrittenMetadata,
}

/// Where the metadata an INSERT writes is among a sink batch's columns.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WrittenMetadata {
    /// 'timestamp': the record's timestamp (NULL: the producer's clock).
    pub timestamp: Option<usize>,
    /// 'headers': the record's headers.
    pub headers: Option<usize>,
}

impl WrittenMetadata {
    /// The persisted metadata columns of `table` (checked to be writable).
    pub(crate) fn of(table: &weir_connector::TableSpec) -> Self {
        let physical = table.schema.fields().len();
        let mut written = Self::default();
        for (index, column) in table.persisted_metadata().enumerate() {
            match column.key.as_str() {
                "timestamp" => written.timestamp = Some(physical + index),
                "headers" => written.headers = Some(physical + index),
                _ => {}
            }
        }
        written
    }
}

/// The metadata values of one batch's rows.
struct RowMetadata {
    timestamps: Option<TimestampMillisecondArray>,
    headers: Option<MapArray>,
}

impl RowMetadata {
    fn of(batch: &RecordBatch, written: WrittenMetadata) -> Result<Self, ConnectorError> {
        let timestamps = match written.timestamp {
            Some(index) => {
                let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
                let column = arrow::compute::cast(batch.column(index), &utc)?;
                Some(column.as_primitive::<TimestampMillisecondType>().clone())
            }
            None => None,
        };
        let headers = match written.headers {
            Some(index) => {
                let column = arrow::compute::cast(batch.column(index), &records::headers_type())?;
                Some(column.as_map().clone())
            }
            None => None,
        };
        Ok(Self {
            timestamps,
            headers,
        })
    }

    fn timestamp(&self, row: usize) -> Option<i64> {
        self.timestamps
            .as_ref()
            .and_then(|t| t.is_valid(row).then(|| t.value(row)))
    }

    /// Row `row`'s headers, as (name, value) pairs.
    fn headers(&self, row: usize) -> Vec<(&str, Option<&[u8]>)> {
        let Some(map) = self.headers.as_ref().filter(|m| m.is_valid(row)) else {
            return Vec::new();
        };
        let (Some(names), Some(values)) = (
            map.keys().as_string_opt::<i32>(),
            map.values().as_binary_opt::<i32>(),
        ) else {
            return Vec::new();
        };
        let offsets = map.value_offsets();
        (offsets[row] as usize..offsets[row + 1] as usize)
            .map(|i| (names.value(i), values.is_valid(i).then(|| values.value(i))))
            .collect()
    }
}

/// `headers` as librdkafka takes them; `None` when there are none.
fn owned_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> Option<OwnedHeaders> {
    let mut owned: Option<OwnedHeaders> = None;
    for (key, value) in headers {
        owned = Some(owned.unwrap_or_default().insert(Header { key, value }));
    }
    owned
}

/// Remembers the first record the brokers did not take.
#[derive(Default)]
pub(crate) struct DeliveryTracker {
    failure: Mutex<Option<String>>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result
            && let Ok(mut failure) = self.failure.lock()
            && failure.is_none()
        {
            *failure = Some(error.to_string());
        }
    }
}

impl DeliveryTracker {
    fn check(&self, topic: &str) -> Result<(), ConnectorError> {
        let failure = self.failure.lock().ok().and_then(|f| f.clone());
        match failure {
            None => Ok(()),
            Some(error) => Err(ConnectorError::NotFound(format!(
                "writing to topic '{topic}' failed: {error}"
            ))),
        }
    }
}

type KafkaProducer = ThreadedProducer<DeliveryTracker>;

#[async_trait]
impl SinkFactory for KafkaSink {
    fn accepts_updates(&self) -> bool {
        self.config.upsert || self.config.value_format.is_changelog()
    }

    async fn create_writer(
        &self,
        context: SinkContext,
    ) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        let config = Arc::clone(&self.config);
        let topic = config.sink_topic()?.to_string();
        let mut client = config.client_config();
        if config.partitioner == Partitioner::Default
            && !config.properties.contains_key("partitioner")
        {
            // Java's default partitioner, so that Flink and Weir put a key
            // in the same partition.
            client.set("partitioner", "murmur2_random");
        }
        let transactional = config.delivery == DeliveryGuarantee::ExactlyOnce;
        let mut wal = None;
        if let (true, Some(prefix)) = (transactional, &config.transactional_prefix) {
            // The same id across runs: a restarted subtask's producer fences
            // the crashed one and aborts its open transaction.
            client.set(
                "transactional.id",
                format!("{prefix}-{}-{}", config.table, context.subtask),
            );
            if context.checkpointing {
                wal = Some(WriteAheadLog::new(format!(
                    "{prefix}-{}-{}-{}",
                    config.table, context.job_id, context.subtask
                )));
            }
        }
        // Without checkpoints, one transaction runs from the start to the end.
        let open_transaction = transactional && wal.is_none();
        let table = config.table.clone();
        let setup_topic = topic.clone();
        let producer: Arc<KafkaProducer> = blocking(move || {
            let producer: KafkaProducer = client
                .create_with_context(DeliveryTracker::default())
                .map_err(|e| {
                    kafka_error(
                        format!("cannot create a Kafka producer for table '{table}'"),
                        e,
                    )
                })?;
            if transactional {
                producer
                    .init_transactions(FLUSH_TIMEOUT)
                    .map_err(|e| kafka_error("cannot start Kafka transactions", e))?;
            }
            if open_transaction {
                producer
                    .begin_transaction()
                    .map_err(|e| kafka_error("cannot begin a Kafka transaction", e))?;
            }
            Ok(Arc::new(producer))
        })
        .await?;
        let partitions = match config.partitioner {
            Partitioner::Default => 0,
            Partitioner::Fixed | Partitioner::RoundRobin => {
                let producer = Arc::clone(&producer);
                blocking(move || {
                    let metadata = producer
                        .client()
                        .fetch_metadata(Some(&setup_topic), FLUSH_TIMEOUT)
                        .map_err(|e| {
                            kafka_error(format!("cannot read the metadata of '{setup_topic}'"), e)
                        })?;
                    let count = metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == setup_topic)
                        .map_or(0, |t| t.partitions().len());
                    if count == 0 {
                        return Err(ConnectorError::NotFound(format!(
                            "topic '{setup_topic}' does not exist"
                        )));
                    }
                    Ok(count as i32)
                })
                .await?
            }
        };
        let value = config
            .value_format
            .create_encoder(Arc::clone(&config.value_schema))?;
        let key = match &config.key {
            Some(spec) => Some(spec.format.create_encoder(Arc::clone(&spec.schema))?),
            None => None,
        };
        Ok(Box::new(KafkaWriter {
            config,
            metadata: self.metadata,
            topic,
            producer,
            value,
            key,
            partitions,
            subtask: context.subtask as i32,
            next_partition: context.subtask as i32,
            encoded: Encoded::default(),
            in_transaction: open_transaction,
            wal,
        }))
    }
}

struct KafkaWriter {
    config: Arc<KafkaConfig>,
    metadata: WrittenMetadata,
    topic: String,
    producer: Arc<KafkaProducer>,
    value: Box<dyn RecordEncoder>,
    key: Option<Box<dyn RecordEncoder>>,
    /// The topic's partition count, for the fixed and round-robin partitioners.
    partitions: i32,
    subtask: i32,
    next_partition: i32,
    /// The current batch's records.
    encoded: Encoded,
    in_transaction: bool,
    /// Exactly-once with checkpoints.
    wal: Option<WriteAheadLog>,
}

/// The write-ahead log of an exactly-once sink in a checkpointing job.
///
/// librdkafka cannot resume another producer's transaction, which is how
/// Flink commits, after a restart, a transaction prepared before a crash.
/// So records are not sent as they come: they are staged, and at a
/// checkpoint barrier the records staged since the last commit become the
/// sink's committables, stored with the checkpoint. When the checkpoint
/// completes, its records go out in one transaction that also commits, for
/// the consumer group `marker_group`, the checkpoint id as the offset of
/// the topic's partition 0: a marker that commits or aborts with the
/// records. A restarted job gets the committables back and writes again,
/// in the same way, exactly those whose marker did not commit.
///
/// The cost: records reach Kafka when their checkpoint completes (when
/// read_committed readers would see them anyway), a checkpoint holds the
/// records of its interval, and each run leaves a small consumer group
/// behind, expired by the broker's 'offsets.retention.minutes' (7 days by
/// default): a savepoint restored after that finds no marker and writes its
/// last checkpoint's records again, as Flink's transactions expire after
/// 'transaction.max.timeout.ms'.
struct WriteAheadLog {
    /// Unique per job run and subtask, so a new run never mistakes an old
    /// run's marker for its own.
    marker_group: String,
    partitions: Int32Builder,
    // 64-bit offsets: a checkpoint interval may stage more than 2 GiB.
    keys: LargeBinaryBuilder,
    values: LargeBinaryBuilder,
    timestamps: Int64Builder,
    headers: MapBuilder<StringBuilder, LargeBinaryBuilder>,
    /// Prepared and not committed yet, by checkpoint.
    prepared: BTreeMap<u64, RecordBatch>,
    /// One client per marker group, for its group metadata and offsets.
    markers: HashMap<String, Arc<BaseConsumer>>,
}

impl WriteAheadLog {
    fn new(marker_group: String) -> Self {
        Self {
            marker_group,
            partitions: Int32Builder::new(),
            keys: LargeBinaryBuilder::new(),
            values: LargeBinaryBuilder::new(),
            timestamps: Int64Builder::new(),
            headers: MapBuilder::new(None, StringBuilder::new(), LargeBinaryBuilder::new()),
            prepared: BTreeMap::new(),
            markers: HashMap::new(),
        }
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("checkpoint", DataType::UInt64, false),
            // One group per writer: stored once, as a dictionary.
            Field::new(
                "marker_group",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                false,
            ),
            Field::new("partition", DataType::Int32, true),
            Field::new("key", DataType::LargeBinary, true),
            Field::new("value", DataType::LargeBinary, true),
            Field::new("timestamp", DataType::Int64, true),
            Field::new("headers", Self::headers_type(), true),
        ]))
    }

    /// The headers as staged: what [`MapBuilder`] builds.
    fn headers_type() -> DataType {
        records::headers_map_type(DataType::LargeBinary)
    }

    fn stage(&mut self, record: &Outgoing<'_>) -> Result<(), ConnectorError> {
        self.partitions.append_option(record.partition);
        self.keys.append_option(record.key);
        self.values.append_option(record.value);
        self.timestamps.append_option(record.timestamp);
        for (name, value) in &record.headers {
            self.headers.keys().append_value(name);
            self.headers.values().append_option(*value);
        }
        Ok(self.headers.append(true)?)
    }

    /// The records staged since the last checkpoint, as checkpoint `id`'s.
    fn prepare(&mut self, id: u64) -> Result<(), ConnectorError> {
        let rows = self.partitions.len();
        if rows == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new(
            Self::schema(),
            vec![
                Arc::new(UInt64Array::from(vec![id; rows])),
                Arc::new(DictionaryArray::<Int32Type>::new(
                    Int32Array::from(vec![0; rows]),
                    Arc::new(StringArray::from(vec![self.marker_group.as_str()])),
                )),
                Arc::new(self.partitions.finish()),
                Arc::new(self.keys.finish()),
                Arc::new(self.values.finish()),
                Arc::new(self.timestamps.finish()),
                Arc::new(self.headers.finish()),
            ],
        )?;
        self.prepared.insert(id, batch);
        Ok(())
    }

    /// Every prepared batch not committed yet: a checkpoint stores them
    /// all, since the commit of an earlier one may not have happened.
    fn committables(&self) -> Result<Option<RecordBatch>, ConnectorError> {
        if self.prepared.is_empty() {
            return Ok(None);
        }
        let batches: Vec<&RecordBatch> = self.prepared.values().collect();
        Ok(Some(arrow::compute::concat_batches(
            &Self::schema(),
            batches,
        )?))
    }

    fn marker_client(
        &mut self,
        config: &KafkaConfig,
        group: &str,
    ) -> Result<Arc<BaseConsumer>, ConnectorError> {
        if let Some(client) = self.markers.get(group) {
            return Ok(Arc::clone(client));
        }
        let mut client_config = config.client_config();
        client_config.set("group.id", group);
        client_config.set("enable.auto.commit", "false");
        let client: BaseConsumer = client_config.create().map_err(|e| {
            kafka_error(
                format!("cannot create a client for consumer group '{group}'"),
                e,
            )
        })?;
        let client = Arc::new(client);
        self.markers.insert(group.to_string(), Arc::clone(&client));
        Ok(client)
    }
}

/// The records of one checkpoint staged by one writer, as committables.
struct StagedCommit {
    checkpoint: u64,
    marker_group: String,
    records: RecordBatch,
}

/// Splits committables into their checkpoints, oldest first.
fn staged_commits(committables: &[RecordBatch]) -> Result<Vec<StagedCommit>, ConnectorError> {
    let malformed = || {
        ConnectorError::NotFound(
            "the Kafka sink's committables in the checkpoint are malformed".to_string(),
        )
    };
    let mut rows: BTreeMap<(u64, String), Vec<RecordBatch>> = BTreeMap::new();
    for batch in committables.iter().filter(|b| b.num_rows() > 0) {
        if batch.schema().fields() != WriteAheadLog::schema().fields() {
            return Err(malformed());
        }
        let checkpoints = batch.column(0).as_primitive::<UInt64Type>();
        let groups = batch
            .column(1)
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(malformed)?;
        let names = groups
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(malformed)?;
        let group = |row: usize| -> Result<&str, ConnectorError> {
            let key = usize::try_from(groups.keys().value(row)).map_err(|_| malformed())?;
            if key < names.len() {
                Ok(names.value(key))
            } else {
                Err(malformed())
            }
        };
        let mut start = 0;
        for row in 1..=batch.num_rows() {
            let boundary = row == batch.num_rows()
                || checkpoints.value(row) != checkpoints.value(start)
                || group(row)? != group(start)?;
            if boundary {
                rows.entry((checkpoints.value(start), group(start)?.to_string()))
                    .or_default()
                    .push(batch.slice(start, row - start));
                start = row;
            }
        }
    }
    rows.into_iter()
        .map(|((checkpoint, marker_group), batches)| {
            Ok(StagedCommit {
                checkpoint,
                marker_group,
                records: arrow::compute::concat_batches(&WriteAheadLog::schema(), &batches)?,
            })
        })
        .collect()
}

/// The staged commits whose marker group has not committed their checkpoint.
fn still_to_commit(
    commits: Vec<StagedCommit>,
    committed: &HashMap<String, Option<i64>>,
) -> Vec<StagedCommit> {
    commits
        .into_iter()
        .filter(|commit| {
            !committed
                .get(&commit.marker_group)
                .copied()
                .flatten()
                .is_some_and(|last| last >= marker_offset(commit.checkpoint))
        })
        .collect()
}

/// The offset that marks checkpoint `id` as committed.
fn marker_offset(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// Writes `commit`'s records and its marker in one transaction.
fn transact(
    producer: &KafkaProducer,
    marker: &BaseConsumer,
    topic: &str,
    commit: &StagedCommit,
) -> Result<(), ConnectorError> {
    let failed = |what: &str, e| {
        kafka_error(
            format!(
                "{what} (checkpoint {} of topic '{topic}')",
                commit.checkpoint
            ),
            e,
        )
    };
    let records = &commit.records;
    let malformed = || ConnectorError::NotFound("malformed Kafka committables".to_string());
    let partitions = records
        .column(2)
        .as_any()
        .downcast_ref::<Int32Array>()
        .ok_or_else(malformed)?;
    let keys = records
        .column(3)
        .as_any()
        .downcast_ref::<LargeBinaryArray>()
        .ok_or_else(malformed)?;
    let values = records
        .column(4)
        .as_any()
        .downcast_ref::<LargeBinaryArray>()
        .ok_or_else(malformed)?;
    let timestamps = records
        .column(5)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(malformed)?;
    let headers = records.column(6).as_map_opt().ok_or_else(malformed)?;
    let (header_names, header_values) = (
        headers
            .keys()
            .as_string_opt::<i32>()
            .ok_or_else(malformed)?,
        headers
            .values()
            .as_binary_opt::<i64>()
            .ok_or_else(malformed)?,
    );
    producer
        .begin_transaction()
        .map_err(|e| failed("cannot begin a Kafka transaction", e))?;
    for row in 0..records.num_rows() {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        record.partition = partitions.is_valid(row).then(|| partitions.value(row));
        record.key = keys.is_valid(row).then(|| keys.value(row));
        record.payload = values.is_valid(row).then(|| values.value(row));
        record.timestamp = timestamps.is_valid(row).then(|| timestamps.value(row));
        let entries =
            headers.value_offsets()[row] as usize..headers.value_offsets()[row + 1] as usize;
        record.headers = owned_headers(entries.map(|i| {
            let value = header_values.is_valid(i).then(|| header_values.value(i));
            (header_names.value(i), value)
        }));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((error, _)) => return Err(failed("cannot write a record", error)),
            }
        }
    }
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, 0, Offset::Offset(marker_offset(commit.checkpoint)))
        .map_err(|e| failed("cannot build the commit marker", e))?;
    let metadata = marker.group_metadata().ok_or_else(|| {
        ConnectorError::NotFound(format!(
            "no group metadata for consumer group '{}'",
            commit.marker_group
        ))
    })?;
    producer
        .send_offsets_to_transaction(&offsets, &metadata, FLUSH_TIMEOUT)
        .map_err(|e| failed("cannot add the commit marker to the transaction", e))?;
    producer
        .commit_transaction(FLUSH_TIMEOUT)
        .map_err(|e| failed("committing the Kafka transaction failed", e))
}

/// The last checkpoint whose marker `marker` committed, if any.
fn committed_marker(marker: &BaseConsumer, topic: &str) -> Result<Option<i64>, ConnectorError> {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    let committed = marker
        .committed_offsets(list, FLUSH_TIMEOUT)
        .map_err(|e| kafka_error("cannot read the Kafka sink's commit markers", e))?;
    Ok(committed
        .find_partition(topic, 0)
        .and_then(|elem| elem.offset().to_raw())
        .filter(|o| *o >= 0))
}

/// The keys and values of the batch being written.
#[derive(Default)]
struct Encoded {
    values: Vec<u8>,
    value_ranges: Vec<Range<usize>>,
    keys: Vec<u8>,
    key_ranges: Vec<Range<usize>>,
}

impl Encoded {
    /// What to send for input row `row`.
    fn outgoing<'a>(
        &'a self,
        row: usize,
        write: Write,
        partition: Option<i32>,
        metadata: &'a RowMetadata,
    ) -> Outgoing<'a> {
        Outgoing {
            partition,
            key: self.key_ranges.get(row).map(|r| &self.keys[r.clone()]),
            value: match write {
                Write::Value => Some(&self.values[self.value_ranges[row].clone()]),
                Write::Tombstone => None,
            },
            timestamp: metadata.timestamp(row),
            headers: metadata.headers(row),
        }
    }
}

/// Hands `outgoing` to the producer, waiting while its queue is full.
async fn send(
    producer: &KafkaProducer,
    topic: &str,
    outgoing: Outgoing<'_>,
) -> Result<(), ConnectorError> {
    loop {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        record.partition = outgoing.partition;
        record.key = outgoing.key;
        record.payload = outgoing.value;
        record.timestamp = outgoing.timestamp;
        record.headers = owned_headers(outgoing.headers.iter().copied());
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
            }
            Err((error, _)) => {
                return Err(kafka_error(
                    format!("cannot write to topic '{topic}'"),
                    error,
                ));
            }
        }
    }
}

/// One record on its way out.
struct Outgoing<'a> {
    partition: Option<i32>,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    timestamp: Option<i64>,
    headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

/// What to write for one input row.
#[derive(Clone, Copy)]
enum Write {
    /// The key and the row.
    Value,
    /// The key and a null value.
    Tombstone,
}

impl KafkaWriter {
    fn partition(&mut self) -> Option<i32> {
        match self.config.partitioner {
            Partitioner::Default => None,
            Partitioner::Fixed => Some(self.subtask % self.partitions),
            Partitioner::RoundRobin => {
                let partition = self.next_partition % self.partitions;
                self.next_partition = (partition + 1) % self.partitions;
                Some(partition)
            }
        }
    }

    /// Which rows to write, and how.
    fn writes(&self, batch: &StreamBatch) -> Result<Vec<(usize, Write)>, ConnectorError> {
        let mut writes = Vec::with_capacity(batch.num_rows());
        if self.config.value_format.is_changelog() {
            writes.extend((0..batch.num_rows()).map(|row| (row, Write::Value)));
            return Ok(writes);
        }
        for row in 0..batch.num_rows() {
            match (batch.row_kind(row), self.config.upsert) {
                (RowKind::Insert, _) | (RowKind::UpdateAfter, true) => {
                    writes.push((row, Write::Value))
                }
                (RowKind::UpdateBefore, true) => {}
                (RowKind::Delete, true) => writes.push((row, Write::Tombstone)),
                (kind, false) => {
                    return Err(ConnectorError::Unsupported {
                        connector: "kafka".to_string(),
                        what: format!(
                            "writes inserts only in format '{}', but table '{}' received a {kind} row; \
                             use 'upsert-kafka', or a changelog format such as 'debezium-json'",
                            self.config.value_format.kind().name(),
                            self.config.table
                        ),
                    });
                }
            }
        }
        Ok(writes)
    }

    /// Encodes the keys and values of `batch`; the values with their row
    /// kinds, which only a changelog format writes.
    fn encode(&mut self, batch: &StreamBatch) -> Result<(), ConnectorError> {
        let encoded = &mut self.encoded;
        encoded.values.clear();
        encoded.value_ranges.clear();
        encoded.keys.clear();
        encoded.key_ranges.clear();
        let data = batch.data();
        let values = data.project(&self.config.value_fields)?;
        let values = batch.with_data(RecordBatch::try_new(
            Arc::clone(&self.config.value_schema),
            values.columns().to_vec(),
        )?)?;
        let values = if self.config.value_format.is_changelog() {
            values
        } else {
            // Kinds were turned into upserts and tombstones.
            StreamBatch::inserts(values.into_data())
        };
        encode_messages(
            self.value.as_mut(),
            &values,
            &mut encoded.values,
            &mut encoded.value_ranges,
        )?;
        if let (Some(encoder), Some(spec)) = (&mut self.key, &self.config.key) {
            let keys = data.project(&spec.fields)?;
            let keys = StreamBatch::inserts(RecordBatch::try_new(
                Arc::clone(&spec.schema),
                keys.columns().to_vec(),
            )?);
            encode_messages(
                encoder.as_mut(),
                &keys,
                &mut encoded.keys,
                &mut encoded.key_ranges,
            )?;
        }
        Ok(())
    }

    /// Writes one checkpoint's staged records in a transaction of their own.
    async fn write_commit(&mut self, commit: StagedCommit) -> Result<(), ConnectorError> {
        let Some(wal) = &mut self.wal else {
            return Ok(());
        };
        let marker = wal.marker_client(&self.config, &commit.marker_group)?;
        let producer = Arc::clone(&self.producer);
        let topic = self.topic.clone();
        blocking(move || transact(&producer, &marker, &topic, &commit)).await?;
        self.producer.context().check(&self.topic)
    }

    /// Waits until every record sent so far is acknowledged.
    async fn flush(&mut self) -> Result<(), ConnectorError> {
        let producer = Arc::clone(&self.producer);
        let topic = self.topic.clone();
        blocking(move || {
            producer
                .flush(FLUSH_TIMEOUT)
                .map_err(|e| kafka_error(format!("flushing records to topic '{topic}' failed"), e))
        })
        .await?;
        self.producer.context().check(&self.topic)
    }

    async fn commit_transaction(&mut self, begin_next: bool) -> Result<(), ConnectorError> {
        if !self.in_transaction {
            return Ok(());
        }
        let producer = Arc::clone(&self.producer);
        blocking(move || {
            producer
                .commit_transaction(FLUSH_TIMEOUT)
                .map_err(|e| kafka_error("committing the Kafka transaction failed", e))?;
            if begin_next {
                producer
                    .begin_transaction()
                    .map_err(|e| kafka_error("cannot begin a Kafka transaction", e))?;
            }
            Ok(())
        })
        .await?;
        self.in_transaction = begin_next;
        self.producer.context().check(&self.topic)
    }
}

#[async_trait]
impl SinkWriter for KafkaWriter {
    async fn write(&mut self, batch: StreamBatch) -> Result<(), ConnectorError> {
        self.producer.context().check(&self.topic)?;
        let writes = self.writes(&batch)?;
        if writes.is_empty() {
            return Ok(());
        }
        self.encode(&batch)?;
        let metadata = RowMetadata::of(batch.data(), self.metadata)?;
        let partitions: Vec<Option<i32>> = writes.iter().map(|_| self.partition()).collect();
        if let Some(wal) = &mut self.wal {
            for (&(row, write), partition) in writes.iter().zip(partitions) {
                wal.stage(&self.encoded.outgoing(row, write, partition, &metadata))?;
            }
            return Ok(());
        }
        for ((row, write), partition) in writes.into_iter().zip(partitions) {
            let outgoing = self.encoded.outgoing(row, write, partition, &metadata);
            send(&self.producer, &self.topic, outgoing).await?;
        }
        Ok(())
    }

    async fn prepare_commit(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<Option<RecordBatch>, ConnectorError> {
        if let Some(wal) = &mut self.wal {
            wal.prepare(checkpoint_id)?;
            return wal.committables();
        }
        match self.config.delivery {
            DeliveryGuarantee::None => self.producer.context().check(&self.topic)?,
            DeliveryGuarantee::AtLeastOnce | DeliveryGuarantee::ExactlyOnce => self.flush().await?,
        }
        Ok(None)
    }

    async fn commit(&mut self, checkpoint_id: u64) -> Result<(), ConnectorError> {
        let Some(wal) = &mut self.wal else {
            return self.commit_transaction(true).await;
        };
        let marker_group = wal.marker_group.clone();
        let ready: Vec<(u64, RecordBatch)> = wal
            .prepared
            .range(..=checkpoint_id)
            .map(|(id, records)| (*id, records.clone()))
            .collect();
        for (id, records) in ready {
            self.write_commit(StagedCommit {
                checkpoint: id,
                marker_group: marker_group.clone(),
                records,
            })
            .await?;
            if let Some(wal) = &mut self.wal {
                wal.prepared.remove(&id);
            }
        }
        Ok(())
    }

    async fn recover(&mut self, committables: Vec<RecordBatch>) -> Result<(), ConnectorError> {
        let commits = staged_commits(&committables)?;
        if commits.is_empty() {
            return Ok(());
        }
        let Some(wal) = &mut self.wal else {
            return Err(ConnectorError::Unsupported {
                connector: "kafka".to_string(),
                what: format!(
                    "table '{}' restores staged records only with 'sink.delivery-guarantee' = 'exactly-once'",
                    self.config.table
                ),
            });
        };
        // The marker of each writer that staged records: what it committed.
        let mut committed: HashMap<String, Option<i64>> = HashMap::new();
        for commit in &commits {
            if committed.contains_key(&commit.marker_group) {
                continue;
            }
            let marker = wal.marker_client(&self.config, &commit.marker_group)?;
            let topic = self.topic.clone();
            let last = blocking(move || committed_marker(&marker, &topic)).await?;
            committed.insert(commit.marker_group.clone(), last);
        }
        for commit in still_to_commit(commits, &committed) {
            tracing::info!(
                table = %self.config.table,
                checkpoint = commit.checkpoint,
                records = commit.records.num_rows(),
                "writing the records of a checkpoint whose Kafka transaction did not commit"
            );
            self.write_commit(commit).await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), ConnectorError> {
        self.flush().await?;
        self.commit_transaction(false).await
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use rdkafka::ClientConfig;
    use rdkafka::Message;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;
    use weir_connector::{TableOptions, TableSpec};

    use super::*;

    fn exactly_once_sink(bootstrap: &str) -> KafkaSink {
        let options = [
            ("connector", "kafka"),
            ("topic", "out"),
            ("properties.bootstrap.servers", bootstrap),
            ("format", "json"),
            ("sink.delivery-guarantee", "exactly-once"),
            ("sink.transactional-id-prefix", "weir-test"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let table = TableSpec::new(
            "t",
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            TableOptions::new(options),
        );
        KafkaSink {
            config: Arc::new(KafkaConfig::parse(&table, false).expect("options")),
            metadata: WrittenMetadata::default(),
        }
    }

    async fn writer(sink: &KafkaSink, run: &str) -> Box<dyn SinkWriter> {
        sink.create_writer(SinkContext {
            subtask: 0,
            parallelism: 1,
            job_id: run.to_string(),
            checkpointing: true,
        })
        .await
        .expect("writer")
    }

    fn ids(ids: &[i64]) -> StreamBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        StreamBatch::inserts(
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))])
                .expect("batch"),
        )
    }

    /// Every value in the topic, sorted; waits until `at_least` arrived,
    /// then a moment longer for any extra.
    fn values(bootstrap: &str, at_least: usize) -> Vec<String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "reader")
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        for p in 0..2 {
            list.add_partition_offset("out", p, Offset::Beginning)
                .expect("offset");
        }
        consumer.assign(&list).expect("assign");
        let mut values = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut quiet_until = None;
        while std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(message) => {
                    let message = message.expect("message");
                    values.extend(
                        message
                            .payload()
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                    );
                }
                None if values.len() >= at_least => {
                    let until = *quiet_until.get_or_insert_with(|| {
                        std::time::Instant::now() + Duration::from_millis(500)
                    });
                    if std::time::Instant::now() >= until {
                        break;
                    }
                }
                None => {}
            }
        }
        values.sort();
        values
    }

    /// The mock cluster runs transactions but shows readers aborted records
    /// too, and it accepts but does not keep offsets committed in a
    /// transaction (the commit markers); so this checks what the sink sends:
    /// nothing before its checkpoint completes, and after a crash between a
    /// checkpoint and its Kafka commit, the checkpoint's records once. That
    /// a marker keeps a second restart from writing them again is checked
    /// by [`committed_markers_decide_what_is_written_again`].
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_between_checkpoint_and_commit_loses_and_repeats_nothing() {
        let kafka: MockCluster<'static, DefaultProducerContext> =
            MockCluster::new(1).expect("mock cluster");
        kafka.create_topic("out", 2, 1).expect("topic");
        let bootstrap = kafka.bootstrap_servers();
        let sink = exactly_once_sink(&bootstrap);

        let mut first = writer(&sink, "run-1").await;
        first.write(ids(&[1, 2, 3])).await.expect("write");
        let staged = first.prepare_commit(1).await.expect("prepare");
        assert_eq!(staged.map(|b| b.num_rows()), Some(3));
        first.commit(1).await.expect("commit");
        first.write(ids(&[4, 5])).await.expect("write");
        let crashed = first
            .prepare_commit(2)
            .await
            .expect("prepare")
            .expect("staged records");
        assert_eq!(
            crashed.num_rows(),
            2,
            "only what checkpoint 1 did not commit"
        );
        // The crash: checkpoint 2 completed, its commit never ran.
        drop(first);
        let expected =
            |n: i64| -> Vec<String> { (1..=n).map(|i| format!(r#"{{"id":{i}}}"#)).collect() };
        assert_eq!(values(&bootstrap, 3), expected(3));

        let mut restarted = writer(&sink, "run-2").await;
        restarted.recover(vec![crashed]).await.expect("recover");
        drop(restarted);
        assert_eq!(values(&bootstrap, 5), expected(5));
    }

    fn outgoing<'a>(
        partition: Option<i32>,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
    ) -> Outgoing<'a> {
        Outgoing {
            partition,
            key,
            value,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn the_log_keeps_each_records_timestamp_and_headers() {
        let mut log = WriteAheadLog::new("run-0".to_string());
        let mut record = outgoing(None, None, Some(b"v"));
        record.timestamp = Some(1_700_000_000_000);
        record.headers = vec![("trace", Some(b"t1".as_slice())), ("empty", None)];
        log.stage(&record).expect("staged");
        log.stage(&outgoing(None, None, Some(b"w")))
            .expect("staged");
        log.prepare(1).expect("prepared");
        let committables = [log.committables().expect("batch").expect("rows")];
        let commits = staged_commits(&committables).expect("commits");
        let records = &commits[0].records;
        let timestamps = records.column(5).as_primitive::<Int64Type>();
        assert_eq!(timestamps.value(0), 1_700_000_000_000);
        assert!(timestamps.is_null(1));
        let headers = records.column(6).as_map();
        assert_eq!(headers.value_offsets(), &[0, 2, 2]);
        assert_eq!(headers.keys().as_string::<i32>().value(0), "trace");
        assert_eq!(headers.values().as_binary::<i64>().value(0), b"t1");
        assert!(headers.values().is_null(1));
    }

    #[test]
    fn committed_markers_decide_what_is_written_again() {
        let mut log = WriteAheadLog::new("old-run-0".to_string());
        for (checkpoint, value) in [(3, b"a"), (4, b"b"), (5, b"c")] {
            log.stage(&outgoing(Some(0), None, Some(value)))
                .expect("staged");
            log.prepare(checkpoint).expect("prepared");
        }
        let mut other = WriteAheadLog::new("old-run-1".to_string());
        other
            .stage(&outgoing(None, Some(b"k"), None))
            .expect("staged");
        other.prepare(5).expect("prepared");
        let committables = vec![
            log.committables().expect("batch").expect("rows"),
            other.committables().expect("batch").expect("rows"),
        ];
        let commits = staged_commits(&committables).expect("commits");
        let found: Vec<(u64, &str, usize)> = commits
            .iter()
            .map(|c| (c.checkpoint, c.marker_group.as_str(), c.records.num_rows()))
            .collect();
        assert_eq!(
            found,
            [
                (3, "old-run-0", 1),
                (4, "old-run-0", 1),
                (5, "old-run-0", 1),
                (5, "old-run-1", 1)
            ]
        );
        // Subtask 0 committed checkpoint 4 before the crash; subtask 1
        // never committed anything.
        let committed = HashMap::from([
            ("old-run-0".to_string(), Some(4)),
            ("old-run-1".to_string(), None),
        ]);
        let redo: Vec<(u64, String)> = still_to_commit(commits, &committed)
            .into_iter()
            .map(|c| (c.checkpoint, c.marker_group))
            .collect();
        assert_eq!(
            redo,
            [(5, "old-run-0".to_string()), (5, "old-run-1".to_string())]
        );
    }
}
