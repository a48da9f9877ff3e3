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
//! - `exactly-once`: records go into a Kafka transaction named after
//!   'sink.transactional-id-prefix' and the subtask, committed when the
//!   checkpoint it belongs to completes ([`SinkWriter::commit`]) or when the
//!   input ends. Readers with `isolation.level=read_committed` see records
//!   only then.
//!
//! upsert-kafka writes a changelog as upserts: `+I` and `+U` write the key
//! and the row, `-D` writes the key with a null value (a tombstone), and
//! `-U` is dropped because the `+U` that follows overwrites it.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use weir_common::{RowKind, StreamBatch};
use weir_connector::{ConnectorError, SinkContext, SinkFactory, SinkWriter};
use weir_format::{RecordEncoder, encode_messages};

use crate::options::{DeliveryGuarantee, KafkaConfig, Partitioner};
use crate::{blocking, kafka_error};

/// How long a flush or a transaction call may take before the job fails.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for room when the producer's queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// A Kafka table as a sink.
#[derive(Debug)]
pub struct KafkaSink {
    pub(crate) config: Arc<KafkaConfig>,
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
        self.config.upsert
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
        if let (true, Some(prefix)) = (transactional, &config.transactional_prefix) {
            client.set(
                "transactional.id",
                format!("{prefix}-{}-{}", config.table, context.subtask),
            );
        }
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
            topic,
            producer,
            value,
            key,
            partitions,
            subtask: context.subtask as i32,
            next_partition: context.subtask as i32,
            values: Vec::new(),
            value_ranges: Vec::new(),
            keys: Vec::new(),
            key_ranges: Vec::new(),
            in_transaction: transactional,
        }))
    }
}

struct KafkaWriter {
    config: Arc<KafkaConfig>,
    topic: String,
    producer: Arc<KafkaProducer>,
    value: Box<dyn RecordEncoder>,
    key: Option<Box<dyn RecordEncoder>>,
    /// The topic's partition count, for the fixed and round-robin partitioners.
    partitions: i32,
    subtask: i32,
    next_partition: i32,
    values: Vec<u8>,
    value_ranges: Vec<Range<usize>>,
    keys: Vec<u8>,
    key_ranges: Vec<Range<usize>>,
    in_transaction: bool,
}

/// What to write for one input row.
#[derive(Clone, Copy)]
enum Write {
    Upsert,
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
        for row in 0..batch.num_rows() {
            match (batch.row_kind(row), self.config.upsert) {
                (RowKind::Insert, _) | (RowKind::UpdateAfter, true) => {
                    writes.push((row, Write::Upsert))
                }
                (RowKind::UpdateBefore, true) => {}
                (RowKind::Delete, true) => writes.push((row, Write::Tombstone)),
                (kind, false) => {
                    return Err(ConnectorError::Unsupported {
                        connector: "kafka".to_string(),
                        what: format!(
                            "writes inserts only, but table '{}' received a {kind} row; use 'upsert-kafka'",
                            self.config.table
                        ),
                    });
                }
            }
        }
        Ok(writes)
    }

    fn encode(&mut self, data: &RecordBatch) -> Result<(), ConnectorError> {
        self.values.clear();
        self.value_ranges.clear();
        self.keys.clear();
        self.key_ranges.clear();
        let values = data.project(&self.config.value_fields)?;
        let values = RecordBatch::try_new(
            Arc::clone(&self.config.value_schema),
            values.columns().to_vec(),
        )?;
        encode_messages(
            self.value.as_mut(),
            &values,
            &mut self.values,
            &mut self.value_ranges,
        )?;
        if let (Some(encoder), Some(spec)) = (&mut self.key, &self.config.key) {
            let keys = data.project(&spec.fields)?;
            let keys = RecordBatch::try_new(Arc::clone(&spec.schema), keys.columns().to_vec())?;
            encode_messages(
                encoder.as_mut(),
                &keys,
                &mut self.keys,
                &mut self.key_ranges,
            )?;
        }
        Ok(())
    }

    async fn send(&mut self, row: usize, write: Write) -> Result<(), ConnectorError> {
        let partition = self.partition();
        let key = self.key_ranges.get(row).map(|r| &self.keys[r.clone()]);
        let value = match write {
            Write::Upsert => Some(&self.values[self.value_ranges[row].clone()]),
            Write::Tombstone => None,
        };
        loop {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic);
            record.partition = partition;
            record.key = key;
            record.payload = value;
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((error, _)) => {
                    return Err(kafka_error(
                        format!("cannot write to topic '{}'", self.topic),
                        error,
                    ));
                }
            }
        }
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
        self.encode(batch.data())?;
        for (row, write) in writes {
            self.send(row, write).await?;
        }
        Ok(())
    }

    async fn prepare_commit(
        &mut self,
        _checkpoint_id: u64,
    ) -> Result<Option<RecordBatch>, ConnectorError> {
        match self.config.delivery {
            DeliveryGuarantee::None => self.producer.context().check(&self.topic)?,
            DeliveryGuarantee::AtLeastOnce | DeliveryGuarantee::ExactlyOnce => self.flush().await?,
        }
        Ok(None)
    }

    async fn commit(&mut self, _checkpoint_id: u64) -> Result<(), ConnectorError> {
        self.commit_transaction(true).await
    }

    async fn finish(&mut self) -> Result<(), ConnectorError> {
        self.flush().await?;
        self.commit_transaction(false).await
    }
}
