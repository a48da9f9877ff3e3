//! The `kafka` and `upsert-kafka` connectors, on librdkafka (rdkafka).
//!
//! ```sql
//! CREATE TABLE bids (
//!   auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
//!   `offset` BIGINT METADATA VIRTUAL,
//!   kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', -- also written by INSERT
//!   WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
//! ) WITH (
//!   'connector' = 'kafka',
//!   'topic' = 'bids',                       -- or 'a;b', or 'topic-pattern' = 'bids-.*'
//!   'properties.bootstrap.servers' = 'localhost:9092',
//!   'properties.group.id' = 'weir',         -- any 'properties.*' goes to librdkafka
//!   'scan.startup.mode' = 'earliest-offset',
//!   'scan.bounded.mode' = 'latest-offset',  -- read what is there, then end
//!   'format' = 'json'
//! );
//! ```
//!
//! Options, metadata keys and behaviour follow Flink's Kafka SQL connector.
//! Data flows from [`source`] (partitions as splits, one consumer thread per
//! subtask, records decoded into batches by [`records`]) and into [`sink`]
//! (one producer per subtask). Formats are the shared ones of
//! `weir-format`, applied to each record's key and value.

mod options;
mod records;
pub mod sink;
pub mod source;

use std::sync::Arc;

use weir_connector::{
    Connector, ConnectorError, MetadataKey, OptionRules, SinkFactory, SourceFactory, TableSpec,
};

use crate::options::KafkaConfig;

fn kafka_error(context: impl Into<String>, error: rdkafka::error::KafkaError) -> ConnectorError {
    ConnectorError::external(context, error)
}

/// Runs blocking librdkafka calls off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ConnectorError> + Send + 'static,
) -> Result<T, ConnectorError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ConnectorError::external("a Kafka client call failed", e))?
}

/// `'connector' = 'kafka'`: a topic as an append-only stream of rows.
#[derive(Debug, Default)]
pub struct KafkaConnector;

/// `'connector' = 'upsert-kafka'`: a compacted topic as a changelog keyed by
/// the table's primary key.
#[derive(Debug, Default)]
pub struct UpsertKafkaConnector;

fn source(table: &TableSpec, upsert: bool) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
    let config = KafkaConfig::parse(table, upsert)?;
    config.check_source()?;
    Ok(Arc::new(source::KafkaSource {
        config: Arc::new(config),
        read_schema: table.read_schema(),
        metadata: table.metadata.clone(),
    }))
}

fn sink(table: &TableSpec, upsert: bool) -> Result<Arc<dyn SinkFactory>, ConnectorError> {
    let config = KafkaConfig::parse(table, upsert)?;
    config.sink_topic()?;
    Ok(Arc::new(sink::KafkaSink {
        config: Arc::new(config),
        metadata: sink::WrittenMetadata::of(table),
    }))
}

impl Connector for KafkaConnector {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn option_rules(&self, table: &TableSpec) -> Result<OptionRules, ConnectorError> {
        options::option_rules(table, false)
    }

    fn validate(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        KafkaConfig::parse(table, false).map(|_| ())
    }

    fn readable_metadata(&self) -> Vec<MetadataKey> {
        records::readable_metadata()
    }

    fn writable_metadata(&self) -> Vec<MetadataKey> {
        records::writable_metadata()
    }

    fn create_source(&self, table: &TableSpec) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        source(table, false)
    }

    fn create_sink(&self, table: &TableSpec) -> Result<Arc<dyn SinkFactory>, ConnectorError> {
        sink(table, false)
    }
}

impl Connector for UpsertKafkaConnector {
    fn name(&self) -> &'static str {
        "upsert-kafka"
    }

    fn option_rules(&self, table: &TableSpec) -> Result<OptionRules, ConnectorError> {
        options::option_rules(table, true)
    }

    fn validate(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        KafkaConfig::parse(table, true).map(|_| ())
    }

    fn readable_metadata(&self) -> Vec<MetadataKey> {
        records::readable_metadata()
    }

    fn writable_metadata(&self) -> Vec<MetadataKey> {
        records::writable_metadata()
    }

    fn create_source(&self, table: &TableSpec) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        source(table, true)
    }

    fn create_sink(&self, table: &TableSpec) -> Result<Arc<dyn SinkFactory>, ConnectorError> {
        sink(table, true)
    }
}
