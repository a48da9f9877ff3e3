//! From Kafka records to table rows.
//!
//! A source thread copies the records it polls into one [`RecordBuffer`] per
//! partition; when the buffer is flushed, the [`RowAssembler`] decodes the
//! keys and values of all its records at once (see
//! [`weir_format::decode_messages`]) and puts the table's columns together:
//! value columns, key columns, then the metadata columns the table declares.
//!
//! For upsert-kafka the assembler also turns the topic's upserts into a
//! changelog, as Flink's ChangelogNormalize does: it keeps the latest value
//! of every key it has read, so an update emits `-U old, +U new`, a first
//! value `+I` and a tombstone `-D old`. A key always lives in one partition,
//! so the subtask reading that partition holds its whole history.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Array, Int64Array, MapBuilder, StringArray, StringBuilder,
    TimestampMillisecondArray, UInt8Array, UInt32Array,
};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Field, Fields, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use weir_common::{RowKind, StreamBatch};
use weir_connector::{ConnectorError, MetadataColumn, MetadataKey, SourceMetrics};
use weir_format::{RecordDecoder, decode_messages};

use crate::options::KafkaConfig;

/// The metadata a Kafka sink can write, with Flink's keys and types.
pub(crate) fn writable_metadata() -> Vec<MetadataKey> {
    readable_metadata()
        .into_iter()
        .filter(|m| matches!(m.key, "headers" | "timestamp"))
        .collect()
}

/// The metadata a Kafka source can read, with Flink's keys and types.
pub(crate) fn readable_metadata() -> Vec<MetadataKey> {
    let utc = Some(Arc::from("UTC"));
    vec![
        MetadataKey {
            key: "topic",
            data_type: DataType::Utf8,
        },
        MetadataKey {
            key: "partition",
            data_type: DataType::Int32,
        },
        MetadataKey {
            key: "headers",
            data_type: headers_type(),
        },
        MetadataKey {
            key: "leader-epoch",
            data_type: DataType::Int32,
        },
        MetadataKey {
            key: "offset",
            data_type: DataType::Int64,
        },
        MetadataKey {
            key: "timestamp",
            data_type: DataType::Timestamp(TimeUnit::Millisecond, utc),
        },
        MetadataKey {
            key: "timestamp-type",
            data_type: DataType::Utf8,
        },
    ]
}

/// `MAP<STRING, BYTES>`, the type of the 'headers' metadata.
pub(crate) fn headers_type() -> DataType {
    headers_map_type(DataType::Binary)
}

/// A map of header names to values of `values` type.
pub(crate) fn headers_map_type(values: DataType) -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", values, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

/// The records of one partition polled since the last flush.
#[derive(Debug, Default)]
pub(crate) struct RecordBuffer {
    bytes: Vec<u8>,
    keys: Vec<Option<Range<usize>>>,
    values: Vec<Option<Range<usize>>>,
    pub offsets: Vec<i64>,
    timestamps: Vec<Option<i64>>,
    timestamp_types: Vec<&'static str>,
    leader_epochs: Vec<Option<i32>>,
    /// Only filled when a column reads the headers.
    headers: Vec<Vec<(String, Option<Vec<u8>>)>>,
}

/// One polled record, borrowed from the client.
pub(crate) struct Record<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub timestamp_type: &'static str,
    pub leader_epoch: Option<i32>,
    pub headers: Option<Vec<(String, Option<Vec<u8>>)>>,
}

impl RecordBuffer {
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub(crate) fn push(&mut self, record: Record<'_>) {
        let mut copy = |data: Option<&[u8]>| {
            data.map(|d| {
                let start = self.bytes.len();
                self.bytes.extend_from_slice(d);
                start..self.bytes.len()
            })
        };
        let key = copy(record.key);
        let value = copy(record.value);
        self.keys.push(key);
        self.values.push(value);
        self.offsets.push(record.offset);
        self.timestamps.push(record.timestamp);
        self.timestamp_types.push(record.timestamp_type);
        self.leader_epochs.push(record.leader_epoch);
        if let Some(headers) = record.headers {
            self.headers.push(headers);
        }
    }

    fn key(&self, i: usize) -> Option<&[u8]> {
        self.keys[i].clone().map(|r| &self.bytes[r])
    }

    fn value(&self, i: usize) -> Option<&[u8]> {
        self.values[i].clone().map(|r| &self.bytes[r])
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.keys.clear();
        self.values.clear();
        self.offsets.clear();
        self.timestamps.clear();
        self.timestamp_types.clear();
        self.leader_epochs.clear();
        self.headers.clear();
    }
}

/// Where an output column comes from.
#[derive(Debug, Clone, Copy)]
enum ColumnSource {
    /// A column of the decoded value, by index into the value decoder's output.
    Value(usize),
    /// A column of the decoded key.
    Key(usize),
    /// A metadata column, by index into the table's metadata columns.
    Metadata(usize),
}

/// A row to be emitted: which record it describes and where its value is.
struct OutputRow<'a> {
    kind: RowKind,
    /// The record whose key and metadata the row carries.
    record: usize,
    /// The value bytes: the record's own, or (upsert) a previous value.
    value: Cow<'a, [u8]>,
}

/// Decodes buffers of one subtask into the table's rows.
pub(crate) struct RowAssembler {
    connector: &'static str,
    value: Box<dyn RecordDecoder>,
    value_format: &'static str,
    ignore_value_errors: bool,
    /// The key decoder, when an output column comes from the key.
    key: Option<(Box<dyn RecordDecoder>, &'static str, bool)>,
    columns: Vec<ColumnSource>,
    metadata: Vec<MetadataColumn>,
    output: SchemaRef,
    /// upsert-kafka: the latest value of every key read.
    latest: Option<HashMap<Vec<u8>, Vec<u8>>>,
    pub wants_headers: bool,
}

impl RowAssembler {
    /// `read_schema` is the table's physical columns then its metadata
    /// columns; `projection` picks the ones to produce.
    pub(crate) fn try_new(
        config: &KafkaConfig,
        read_schema: &SchemaRef,
        metadata: &[MetadataColumn],
        projection: Option<&[usize]>,
    ) -> Result<Self, ConnectorError> {
        let physical = read_schema.fields().len() - metadata.len();
        let wanted: Vec<usize> = projection
            .map(<[usize]>::to_vec)
            .unwrap_or_else(|| (0..read_schema.fields().len()).collect());
        let mut value_projection = Vec::new();
        let mut key_projection = Vec::new();
        let mut columns = Vec::with_capacity(wanted.len());
        for &index in &wanted {
            if index >= physical {
                columns.push(ColumnSource::Metadata(index - physical));
            } else if let Some(position) = config.value_fields.iter().position(|f| *f == index) {
                columns.push(ColumnSource::Value(value_projection.len()));
                value_projection.push(position);
            } else {
                let position = config
                    .key
                    .as_ref()
                    .and_then(|k| k.fields.iter().position(|f| *f == index))
                    .ok_or_else(|| {
                        ConnectorError::NotFound(format!(
                            "column {index} of table '{}' is in neither the key nor the value",
                            config.table
                        ))
                    })?;
                columns.push(ColumnSource::Key(key_projection.len()));
                key_projection.push(position);
            }
        }
        let value = config
            .value_format
            .create_decoder(Arc::clone(&config.value_schema), Some(value_projection))?;
        let key = match &config.key {
            Some(spec) if !key_projection.is_empty() => Some((
                spec.format
                    .create_decoder(Arc::clone(&spec.schema), Some(key_projection))?,
                spec.format.kind().label(),
                spec.format.ignore_parse_errors(),
            )),
            _ => None,
        };
        let used: Vec<&MetadataColumn> = columns
            .iter()
            .filter_map(|c| match c {
                ColumnSource::Metadata(i) => metadata.get(*i),
                _ => None,
            })
            .collect();
        Ok(Self {
            connector: config.connector,
            value,
            value_format: config.value_format.kind().label(),
            ignore_value_errors: config.value_format.ignore_parse_errors(),
            key,
            wants_headers: used.iter().any(|m| m.key == "headers"),
            columns,
            metadata: metadata.to_vec(),
            output: Arc::new(read_schema.project(&wanted)?),
            latest: config.upsert.then(HashMap::new),
        })
    }

    /// The rows for the records in `buffer`, or `None` when none gives a row.
    pub(crate) fn assemble(
        &mut self,
        topic: &str,
        partition: i32,
        buffer: &RecordBuffer,
        metrics: &SourceMetrics,
    ) -> Result<Option<StreamBatch>, ConnectorError> {
        let rows = self.output_rows(buffer);
        if rows.is_empty() {
            return Ok(None);
        }
        let locate = |row: usize| {
            format!(
                "in topic '{topic}' partition {partition} at offset {}",
                buffer.offsets[rows[row].record]
            )
        };
        let values: Vec<&[u8]> = rows.iter().map(|r| r.value.as_ref()).collect();
        let decoded = decode_messages(
            self.value.as_mut(),
            self.value_format,
            &values,
            self.ignore_value_errors,
            &locate,
        )?;
        // Row indices (into `rows`) that decoded, and the decoded value row of each.
        let mut kept: Vec<usize> = decoded.kept.unwrap_or_else(|| (0..rows.len()).collect());
        let mut value_rows: Vec<u32> = (0..kept.len() as u32).collect();
        let mut key_batch = None;
        if let Some((decoder, format, ignore)) = &mut self.key {
            let keys: Vec<&[u8]> = kept
                .iter()
                .map(|&r| buffer.key(rows[r].record).unwrap_or_default())
                .collect();
            let locate_key = |i: usize| format!("(key) {}", locate(kept[i]));
            let keys = decode_messages(decoder.as_mut(), format, &keys, *ignore, &locate_key)?;
            if let Some(key_kept) = keys.kept {
                value_rows = key_kept.iter().map(|&i| value_rows[i]).collect();
                kept = key_kept.iter().map(|&i| kept[i]).collect();
            }
            key_batch = Some(keys.batch);
        }
        metrics.add_skipped((rows.len() - kept.len()) as u64);
        if kept.is_empty() {
            return Ok(None);
        }
        let values = if value_rows.len() == decoded.batch.num_rows() {
            decoded.batch
        } else {
            take_record_batch(&decoded.batch, &UInt32Array::from(value_rows))?
        };
        // A changelog format (debezium-json) makes one or two rows of each
        // value; the key and metadata columns are repeated to match.
        let values = self.value.changelog_rows(values)?;
        if let Some(records) = &values.records {
            kept = records.iter().map(|&i| kept[i as usize]).collect();
            if let Some(keys) = &key_batch {
                key_batch = Some(take_record_batch(
                    keys,
                    &UInt32Array::from(records.clone()),
                )?);
            }
        }
        let kept_records: Vec<usize> = kept.iter().map(|&r| rows[r].record).collect();
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (position, source) in self.columns.iter().enumerate() {
            let column = match source {
                ColumnSource::Value(i) => Arc::clone(values.rows.data().column(*i)),
                ColumnSource::Key(i) => match &key_batch {
                    Some(batch) => Arc::clone(batch.column(*i)),
                    None => {
                        return Err(ConnectorError::NotFound(
                            "a key column without a key decoder".to_string(),
                        ));
                    }
                },
                ColumnSource::Metadata(i) => {
                    let column =
                        self.metadata_column(*i, topic, partition, buffer, &kept_records)?;
                    let declared = self.output.field(position).data_type();
                    if column.data_type() == declared {
                        column
                    } else {
                        cast(&column, declared)?
                    }
                }
            };
            out.push(column);
        }
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.output),
            out,
            &RecordBatchOptions::new().with_row_count(Some(kept.len())),
        )?;
        if self.latest.is_none() {
            return Ok(Some(values.rows.with_data(data)?));
        }
        let kinds = UInt8Array::from_iter_values(kept.iter().map(|&r| rows[r].kind as u8));
        Ok(Some(StreamBatch::try_new_changelog(data, kinds)?))
    }

    /// The rows the records give: one insert per record with a value, or
    /// (upsert) the changelog of each key.
    fn output_rows<'b>(&mut self, buffer: &'b RecordBuffer) -> Vec<OutputRow<'b>> {
        let Some(latest) = &mut self.latest else {
            // Flink's Kafka source skips records without a value (tombstones).
            return (0..buffer.len())
                .filter_map(|record| {
                    Some(OutputRow {
                        kind: RowKind::Insert,
                        record,
                        value: Cow::Borrowed(buffer.value(record)?),
                    })
                })
                .collect();
        };
        let mut rows = Vec::with_capacity(buffer.len());
        for record in 0..buffer.len() {
            let Some(key) = buffer.key(record) else {
                tracing::warn!(
                    connector = self.connector,
                    offset = buffer.offsets[record],
                    "skipping a record without a key"
                );
                continue;
            };
            match buffer.value(record) {
                Some(value) => match latest.insert(key.to_vec(), value.to_vec()) {
                    Some(previous) => {
                        rows.push(OutputRow {
                            kind: RowKind::UpdateBefore,
                            record,
                            value: Cow::Owned(previous),
                        });
                        rows.push(OutputRow {
                            kind: RowKind::UpdateAfter,
                            record,
                            value: Cow::Borrowed(value),
                        });
                    }
                    None => rows.push(OutputRow {
                        kind: RowKind::Insert,
                        record,
                        value: Cow::Borrowed(value),
                    }),
                },
                None => {
                    if let Some(previous) = latest.remove(key) {
                        rows.push(OutputRow {
                            kind: RowKind::Delete,
                            record,
                            value: Cow::Owned(previous),
                        });
                    }
                }
            }
        }
        rows
    }

    fn metadata_column(
        &self,
        index: usize,
        topic: &str,
        partition: i32,
        buffer: &RecordBuffer,
        records: &[usize],
    ) -> Result<ArrayRef, ConnectorError> {
        let column = self.metadata.get(index).ok_or_else(|| {
            ConnectorError::NotFound(format!("metadata column {index} is not declared"))
        })?;
        Ok(match column.key.as_str() {
            "topic" => Arc::new(StringArray::from_iter_values(records.iter().map(|_| topic))),
            "partition" => Arc::new(Int32Array::from_iter_values(
                records.iter().map(|_| partition),
            )),
            "offset" => Arc::new(Int64Array::from_iter_values(
                records.iter().map(|&r| buffer.offsets[r]),
            )),
            "timestamp" => Arc::new(
                TimestampMillisecondArray::from_iter(records.iter().map(|&r| buffer.timestamps[r]))
                    .with_timezone("UTC"),
            ),
            "timestamp-type" => Arc::new(StringArray::from_iter_values(
                records.iter().map(|&r| buffer.timestamp_types[r]),
            )),
            "leader-epoch" => Arc::new(Int32Array::from_iter(
                records.iter().map(|&r| buffer.leader_epochs[r]),
            )),
            "headers" => {
                let mut builder = MapBuilder::new(None, StringBuilder::new(), BinaryBuilder::new());
                for &r in records {
                    for (name, value) in buffer.headers.get(r).into_iter().flatten() {
                        builder.keys().append_value(name);
                        builder.values().append_option(value.as_deref());
                    }
                    builder.append(true)?;
                }
                Arc::new(builder.finish())
            }
            other => {
                return Err(ConnectorError::NotFound(format!(
                    "unknown metadata key '{other}'"
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, Schema};
    use weir_connector::{TableOptions, TableSpec};

    use super::*;

    fn spec(options: &[(&str, &str)], metadata: Vec<MetadataColumn>, key: &[&str]) -> TableSpec {
        let map: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut spec = TableSpec::new(
            "t",
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, true),
            ])),
            TableOptions::new(map),
        );
        spec.metadata = metadata;
        spec.primary_key = key.iter().map(|k| k.to_string()).collect();
        spec
    }

    fn record<'a>(key: Option<&'a str>, value: Option<&'a str>, offset: i64) -> Record<'a> {
        Record {
            key: key.map(str::as_bytes),
            value: value.map(str::as_bytes),
            offset,
            timestamp: Some(1000 + offset),
            timestamp_type: "CreateTime",
            leader_epoch: None,
            headers: None,
        }
    }

    fn assembler(spec: &TableSpec, upsert: bool) -> RowAssembler {
        let config = KafkaConfig::parse(spec, upsert).unwrap();
        RowAssembler::try_new(&config, &spec.read_schema(), &spec.metadata, None).unwrap()
    }

    fn kinds(batch: &StreamBatch) -> Vec<String> {
        (0..batch.num_rows())
            .map(|r| batch.row_kind(r).to_string())
            .collect()
    }

    /// `off BIGINT METADATA FROM 'offset'`.
    fn offset_column() -> MetadataColumn {
        MetadataColumn {
            name: "off".into(),
            key: "offset".into(),
            data_type: DataType::Int64,
            is_virtual: true,
        }
    }

    const JSON: [(&str, &str); 4] = [
        ("connector", "kafka"),
        ("topic", "t"),
        ("properties.bootstrap.servers", "127.0.0.1:1"),
        ("format", "json"),
    ];

    #[test]
    fn values_and_metadata_make_rows_and_tombstones_are_skipped() {
        let spec = spec(&JSON, vec![offset_column()], &[]);
        let mut assembler = assembler(&spec, false);
        let mut buffer = RecordBuffer::default();
        buffer.push(record(None, Some(r#"{"id": 1, "name": "a"}"#), 10));
        buffer.push(record(None, None, 11));
        buffer.push(record(None, Some("{\"id\": 2,\n \"name\": \"b\"}"), 12));
        let metrics = SourceMetrics::default();
        let batch = assembler
            .assemble("t", 0, &buffer, &metrics)
            .unwrap()
            .unwrap();
        let data = batch.data();
        assert_eq!(data.num_rows(), 2);
        assert_eq!(data.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        assert_eq!(
            data.column(2).as_primitive::<Int64Type>().values(),
            &[10, 12]
        );
    }

    #[test]
    fn malformed_values_name_the_offset_or_are_skipped() {
        let mut buffer = RecordBuffer::default();
        buffer.push(record(None, Some(r#"{"id": 1}"#), 5));
        buffer.push(record(None, Some("not json"), 6));
        let metrics = SourceMetrics::default();
        let message = assembler(&spec(&JSON, vec![], &[]), false)
            .assemble("bids", 3, &buffer, &metrics)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("malformed JSON record in topic 'bids' partition 3 at offset 6"),
            "{message}"
        );
        let mut options = JSON.to_vec();
        options.push(("json.ignore-parse-errors", "true"));
        let batch = assembler(&spec(&options, vec![], &[]), false)
            .assemble("bids", 3, &buffer, &metrics)
            .unwrap()
            .unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            metrics
                .records_skipped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn change_events_become_rows_that_keep_their_records_metadata() {
        let mut options = JSON.to_vec();
        options[3] = ("format", "debezium-json");
        let spec = spec(&options, vec![offset_column()], &[]);
        let mut assembler = assembler(&spec, false);
        let mut buffer = RecordBuffer::default();
        buffer.push(record(
            None,
            Some(r#"{"after":{"id":1,"name":"a"},"op":"c"}"#),
            7,
        ));
        buffer.push(record(None, None, 8));
        buffer.push(record(
            None,
            Some(r#"{"before":{"id":1,"name":"a"},"after":{"id":1,"name":"b"},"op":"u"}"#),
            9,
        ));
        buffer.push(record(
            None,
            Some(r#"{"before":{"id":1,"name":"b"},"op":"d"}"#),
            10,
        ));
        let batch = assembler
            .assemble("t", 0, &buffer, &SourceMetrics::default())
            .unwrap()
            .unwrap();
        assert_eq!(kinds(&batch), ["+I", "-U", "+U", "-D"]);
        let data = batch.data();
        let names: Vec<&str> = data.column(1).as_string::<i32>().iter().flatten().collect();
        assert_eq!(names, ["a", "a", "b", "b"]);
        assert_eq!(
            data.column(2).as_primitive::<Int64Type>().values(),
            &[7, 9, 9, 10]
        );
    }

    #[test]
    fn upserts_become_a_changelog() {
        let options = [
            ("connector", "upsert-kafka"),
            ("topic", "t"),
            ("properties.bootstrap.servers", "127.0.0.1:1"),
            ("key.format", "json"),
            ("value.format", "json"),
        ];
        let spec = spec(&options, vec![], &["id"]);
        let mut assembler = assembler(&spec, true);
        let mut buffer = RecordBuffer::default();
        buffer.push(record(
            Some(r#"{"id":1}"#),
            Some(r#"{"id":1,"name":"a"}"#),
            0,
        ));
        buffer.push(record(
            Some(r#"{"id":1}"#),
            Some(r#"{"id":1,"name":"b"}"#),
            1,
        ));
        buffer.push(record(Some(r#"{"id":2}"#), None, 2));
        buffer.push(record(Some(r#"{"id":1}"#), None, 3));
        let batch = assembler
            .assemble("t", 0, &buffer, &SourceMetrics::default())
            .unwrap()
            .unwrap();
        assert_eq!(kinds(&batch), ["+I", "-U", "+U", "-D"]);
        let names: Vec<&str> = batch
            .data()
            .column(1)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(names, ["a", "a", "b", "b"]);
    }
}
