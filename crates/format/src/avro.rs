//! Flink's `avro` format: rows as Avro records whose schema comes from the
//! table.
//!
//! The schema is the one Flink derives (its `AvroSchemaConverter`): a record
//! named `record` in namespace `org.apache.flink.avro.generated` with one
//! field per column; a nullable column is the union `["null", T]` with
//! default `null`; TINYINT, SMALLINT and INT are `int`; DECIMAL is `bytes`
//! with the `decimal` logical type; DATE, TIME and TIMESTAMP carry their
//! logical types (TIMESTAMP as `timestamp-millis`/`-micros`, or with
//! `'avro.timestamp_mapping.legacy' = 'false'` as `local-timestamp-*`);
//! a ROW is a nested record named after its column, `record_<column>`.
//!
//! Messages (a Kafka record's key or value) are one binary datum each, with
//! no header, as Flink writes them. Files are Avro object container files
//! carrying that schema, written with `'avro.codec'`; any container file
//! reads, whatever its schema, its fields matched to the columns by name.
//! Decoding goes through arrow-avro, straight into Arrow builders: a run of
//! messages is framed as Avro single-object encoding (a 10-byte header
//! naming the schema by its fingerprint) so that it decodes in one call;
//! only when that fails are the messages decoded one by one, to name the
//! bad one. arrow-avro also encodes the rows; the container around them is
//! written here.
//!
//! arrow-avro reads and writes its own Arrow types for Avro's (`int` is
//! Int32, `timestamp-millis` a UTC timestamp); columns are cast between
//! those and the table's declared types on the way in and out.

use std::io::{BufReader, Cursor, Write};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_avro::reader::{Decoder, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, SCHEMA_METADATA_KEY, SchemaStore};
use arrow_avro::writer::format::AvroBinaryFormat;
use arrow_avro::writer::{Encoder, WriterBuilder};
use serde_json::{Value, json};
use weir_common::StreamBatch;

use crate::display::sql_type_name;
use crate::{ChunkOrigin, Decoded, FormatError, OptionReader, RecordDecoder, RecordEncoder};

/// The option keys of the avro format.
pub(crate) const OPTIONS: &[&str] = &[
    "avro.encoding",
    "avro.codec",
    "avro.timestamp_mapping.legacy",
];

/// The header of Avro's single-object encoding.
const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];

/// Parsed `avro.*` options.
#[derive(Debug, Clone)]
pub(crate) struct AvroOptions {
    /// The codec of the files written (`'avro.codec'`).
    codec: Codec,
    /// TIMESTAMP as `timestamp-*` (Flink's legacy mapping, its default)
    /// rather than `local-timestamp-*`.
    legacy_timestamps: bool,
}

impl AvroOptions {
    pub(crate) fn parse(reader: &OptionReader<'_>) -> Result<Self, FormatError> {
        if reader.choice("avro.encoding", &["binary", "json"], "binary")? == "json" {
            return Err(crate::invalid(
                "avro.encoding",
                "json",
                "Weir reads and writes Avro's binary encoding only; set it to 'binary'",
            ));
        }
        let codec = match reader.choice(
            "avro.codec",
            &["null", "deflate", "snappy", "bzip2", "zstandard", "xz"],
            "null",
        )? {
            "deflate" => Codec::Deflate,
            "snappy" => Codec::Snappy,
            "bzip2" => Codec::Bzip2,
            "zstandard" => Codec::ZStandard,
            "xz" => {
                return Err(crate::invalid(
                    "avro.codec",
                    "xz",
                    "Weir writes null, deflate, snappy, bzip2 or zstandard \
                     (and reads files of any of them)",
                ));
            }
            _ => Codec::Null,
        };
        Ok(Self {
            codec,
            legacy_timestamps: reader.bool("avro.timestamp_mapping.legacy", true)?,
        })
    }
}

/// How the blocks of a file are compressed, by Avro's codec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Null,
    Deflate,
    Snappy,
    Bzip2,
    ZStandard,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Null => "null",
            Codec::Deflate => "deflate",
            Codec::Snappy => "snappy",
            Codec::Bzip2 => "bzip2",
            Codec::ZStandard => "zstandard",
        }
    }

    /// Appends `data` compressed as Avro's spec has it for this codec.
    fn compress(self, data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Codec::Null => out.extend_from_slice(data),
            Codec::Deflate => {
                let mut encoder =
                    flate2::write::DeflateEncoder::new(out, flate2::Compression::default());
                encoder.write_all(data)?;
                encoder.finish()?;
            }
            Codec::Snappy => {
                let compressed = snap::raw::Encoder::new()
                    .compress_vec(data)
                    .map_err(std::io::Error::other)?;
                out.extend_from_slice(&compressed);
                // Avro's snappy blocks end with the CRC-32 of the uncompressed data.
                let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data);
                out.extend_from_slice(&crc.to_be_bytes());
            }
            Codec::Bzip2 => {
                let mut encoder = bzip2::write::BzEncoder::new(out, bzip2::Compression::default());
                encoder.write_all(data)?;
                encoder.finish()?;
            }
            Codec::ZStandard => out.extend_from_slice(&zstd::encode_all(data, 0)?),
        }
        Ok(())
    }
}

/// Appends Avro's encoding of a `long`: zig-zag, then base-128 varint.
fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends Avro's encoding of `bytes` (and of a string's UTF-8).
fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// The Avro schema Flink derives for `schema`, as JSON.
pub(crate) fn table_schema(
    schema: &Schema,
    legacy_timestamps: bool,
) -> Result<String, FormatError> {
    let fields = schema
        .fields()
        .iter()
        .map(|field| record_field(field, "record", legacy_timestamps))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "type": "record",
        "name": "record",
        "namespace": "org.apache.flink.avro.generated",
        "fields": fields,
    })
    .to_string())
}

/// A field of the record named `record`.
fn record_field(field: &Field, record: &str, legacy: bool) -> Result<Value, FormatError> {
    let nested = format!("{record}_{}", field.name());
    let avro = avro_type(field, &nested, legacy)?;
    Ok(if field.is_nullable() {
        json!({"name": field.name(), "type": ["null", avro], "default": null})
    } else {
        json!({"name": field.name(), "type": avro})
    })
}

/// The Avro type of `field`'s values; `name` names it if it is a record.
fn avro_type(field: &Field, name: &str, legacy: bool) -> Result<Value, FormatError> {
    let unsupported = || FormatError::UnsupportedType {
        format: "avro".to_string(),
        column: field.name().clone(),
        data_type: sql_type_name(field.data_type()),
        hint: "Avro has no such type; cast the column to one it has".to_string(),
    };
    let base = match field.data_type() {
        DataType::Boolean => json!("boolean"),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => json!("int"),
        DataType::Int64 => json!("long"),
        DataType::Float32 => json!("float"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json!("string"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => json!("bytes"),
        DataType::Date32 => json!({"type": "int", "logicalType": "date"}),
        DataType::Time32(_) => json!({"type": "int", "logicalType": "time-millis"}),
        DataType::Time64(TimeUnit::Microsecond) => {
            json!({"type": "long", "logicalType": "time-micros"})
        }
        DataType::Timestamp(unit, zone) => {
            let utc = legacy || zone.is_some();
            let logical = match (unit, utc) {
                (TimeUnit::Second | TimeUnit::Millisecond, true) => "timestamp-millis",
                (TimeUnit::Microsecond, true) => "timestamp-micros",
                (TimeUnit::Second | TimeUnit::Millisecond, false) => "local-timestamp-millis",
                (TimeUnit::Microsecond, false) => "local-timestamp-micros",
                (TimeUnit::Nanosecond, _) => return Err(unsupported()),
            };
            json!({"type": "long", "logicalType": logical})
        }
        DataType::Decimal128(precision, scale) => json!({
            "type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale,
        }),
        DataType::List(item) | DataType::LargeList(item) => json!({
            "type": "array",
            "items": element_type(item, name, legacy)?,
        }),
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(unsupported());
            };
            match kv.iter().next().map(|key| key.data_type()) {
                Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {}
                _ => {
                    return Err(FormatError::UnsupportedType {
                        format: "avro".to_string(),
                        column: field.name().clone(),
                        data_type: sql_type_name(field.data_type()),
                        hint: "Avro maps have STRING keys".to_string(),
                    });
                }
            }
            let value = kv.iter().nth(1).ok_or_else(unsupported)?;
            json!({"type": "map", "values": element_type(value, name, legacy)?})
        }
        DataType::Struct(fields) => {
            let fields = fields
                .iter()
                .map(|f| record_field(f, name, legacy))
                .collect::<Result<Vec<_>, _>>()?;
            json!({"type": "record", "name": name, "fields": fields})
        }
        _ => return Err(unsupported()),
    };
    Ok(base)
}

/// The type of an array's items or a map's values, nullable as declared.
fn element_type(field: &Field, name: &str, legacy: bool) -> Result<Value, FormatError> {
    let avro = avro_type(field, name, legacy)?;
    Ok(if field.is_nullable() {
        json!(["null", avro])
    } else {
        avro
    })
}

/// The table's Avro schema, and the Arrow types arrow-avro reads it into.
#[derive(Debug, Clone)]
struct Layout {
    avro: AvroSchema,
    fingerprint: Fingerprint,
    /// The table's (projected) columns with their declared types.
    table: SchemaRef,
}

impl Layout {
    fn try_new(schema: &Schema, options: &AvroOptions) -> Result<Self, FormatError> {
        let avro = AvroSchema::new(table_schema(schema, options.legacy_timestamps)?);
        let mut store = SchemaStore::new();
        let fingerprint = store.register(avro.clone())?;
        Ok(Self {
            avro,
            fingerprint,
            table: Arc::new(schema.clone()),
        })
    }

    /// A decoder of the datums of the table's schema into `projection`.
    fn decoder(&self, projection: &[usize], batch_size: usize) -> Result<Decoder, FormatError> {
        let mut store = SchemaStore::new();
        store.register(self.avro.clone())?;
        Ok(ReaderBuilder::new()
            .with_batch_size(batch_size.max(1))
            .with_writer_schema_store(store)
            .with_reader_schema(self.avro.clone())
            .with_projection(projection.to_vec())
            .build_decoder()?)
    }

    /// The single-object header that precedes each datum fed to a decoder.
    fn header(&self) -> Vec<u8> {
        let mut header = SINGLE_OBJECT_MAGIC.to_vec();
        if let Fingerprint::Rabin(value) = self.fingerprint {
            header.extend_from_slice(&value.to_le_bytes());
        }
        header
    }
}

/// Casts `batch`'s columns to `schema`'s types (arrow-avro's to the
/// table's, or back).
fn cast_to(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, FormatError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// Decodes messages, one binary datum each.
pub(crate) struct AvroDecoder {
    layout: Layout,
    projection: Vec<usize>,
    output: SchemaRef,
    header: Vec<u8>,
    /// Messages framed for the decoder, reused between calls.
    framed: Vec<u8>,
}

impl AvroDecoder {
    pub(crate) fn try_new(
        options: &AvroOptions,
        schema: SchemaRef,
        projection: Vec<usize>,
    ) -> Result<Self, FormatError> {
        let layout = Layout::try_new(&schema, options)?;
        let output = Arc::new(schema.project(&projection)?);
        let header = layout.header();
        // Fails now, not at the first record, if arrow-avro cannot read a type.
        layout.decoder(&projection, 1)?;
        Ok(Self {
            layout,
            projection,
            output,
            header,
            framed: Vec::new(),
        })
    }

    /// Decodes `messages` in one call; an error if any is malformed.
    fn decode_all(&mut self, messages: &[&[u8]]) -> Result<RecordBatch, FormatError> {
        self.framed.clear();
        for message in messages {
            self.framed.extend_from_slice(&self.header);
            self.framed.extend_from_slice(message);
        }
        let mut decoder = self.layout.decoder(&self.projection, messages.len())?;
        let consumed = decoder.decode(&self.framed)?;
        let batch = decoder.flush()?;
        let rows = batch.as_ref().map_or(0, RecordBatch::num_rows);
        if consumed != self.framed.len() || rows != messages.len() {
            return Err(malformed(
                "the record ends before its last field (it is truncated or not Avro)",
            ));
        }
        match batch {
            Some(batch) => cast_to(&batch, &self.output),
            None => Ok(RecordBatch::new_empty(Arc::clone(&self.output))),
        }
    }
}

fn malformed(message: impl Into<String>) -> FormatError {
    FormatError::Malformed {
        format: "Avro",
        source_name: String::new(),
        line: None,
        byte_offset: 0,
        message: message.into(),
        hint: String::new(),
    }
}

impl RecordDecoder for AvroDecoder {
    fn decode(&mut self, _chunk: &[u8], _origin: &ChunkOrigin<'_>) -> Result<Decoded, FormatError> {
        Err(FormatError::NotLineOriented {
            format: "avro".to_string(),
            what: "decoder",
        })
    }

    fn decode_record(
        &mut self,
        record: &[u8],
        _origin: &ChunkOrigin<'_>,
    ) -> Result<Decoded, FormatError> {
        let batch = self.decode_all(&[record]).map_err(|error| match error {
            FormatError::Arrow(error) => malformed(crate::lines::arrow_message(&error)),
            other => other,
        })?;
        Ok(Decoded {
            batches: vec![batch],
            skipped: 0,
        })
    }

    fn decode_run(&mut self, messages: &[&[u8]]) -> Option<RecordBatch> {
        self.decode_all(messages).ok()
    }

    fn output_schema(&self) -> SchemaRef {
        Arc::clone(&self.output)
    }
}

/// Encodes rows as messages, one binary datum each.
pub(crate) struct AvroEncoder {
    encoder: Encoder,
}

impl AvroEncoder {
    pub(crate) fn try_new(options: &AvroOptions, schema: SchemaRef) -> Result<Self, FormatError> {
        let layout = Layout::try_new(&schema, options)?;
        let native = native_schema(&layout)?;
        let encoder = WriterBuilder::new(native).build_encoder::<AvroBinaryFormat>()?;
        Ok(Self { encoder })
    }
}

/// The Arrow schema arrow-avro reads the table's Avro schema into, with
/// that Avro schema attached for its writer.
fn native_schema(layout: &Layout) -> Result<Schema, FormatError> {
    let all: Vec<usize> = (0..layout.table.fields().len()).collect();
    let native = layout.decoder(&all, 1)?.schema();
    let mut metadata = native.metadata().clone();
    metadata.insert(
        SCHEMA_METADATA_KEY.to_string(),
        layout.avro.json_string.clone(),
    );
    Ok(Schema::new_with_metadata(native.fields().clone(), metadata))
}

impl RecordEncoder for AvroEncoder {
    fn format(&self) -> &'static str {
        "avro"
    }

    fn encode(&mut self, _batch: &RecordBatch, _out: &mut Vec<u8>) -> Result<(), FormatError> {
        Err(FormatError::NotLineOriented {
            format: "avro".to_string(),
            what: "encoder",
        })
    }

    fn encode_messages(
        &mut self,
        batch: &StreamBatch,
        out: &mut Vec<u8>,
        messages: &mut Vec<Range<usize>>,
    ) -> Result<(), FormatError> {
        crate::insert_only(batch, self.format())?;
        let native = cast_to(batch.data(), &self.encoder.schema())?;
        self.encoder.encode(&native)?;
        let rows = self.encoder.flush();
        let start = out.len();
        out.extend_from_slice(rows.bytes());
        messages.extend(
            rows.offsets()
                .windows(2)
                .map(|pair| start + pair[0]..start + pair[1]),
        );
        Ok(())
    }
}

/// Reads an Avro object container file into batches of the table's
/// `projection`. Columns are found in the file by name, so a file written
/// with any schema (Flink's, arrow-avro's, another tool's) reads as long as
/// its fields convert to the columns' types; a nullable column the file
/// lacks reads as NULL.
pub struct AvroFileReader {
    reader: arrow_avro::reader::Reader<BufReader<Cursor<bytes::Bytes>>>,
    /// For each output column, its position among the fields read.
    sources: Vec<Option<usize>>,
    output: SchemaRef,
}

impl AvroFileReader {
    pub(crate) fn try_new(
        schema: &Schema,
        projection: Vec<usize>,
        file: bytes::Bytes,
        batch_size: usize,
    ) -> Result<Self, FormatError> {
        let output = Arc::new(schema.project(&projection)?);
        let open = |projection: Option<Vec<usize>>| {
            let mut builder = ReaderBuilder::new().with_batch_size(batch_size.max(1));
            if let Some(projection) = projection {
                builder = builder.with_projection(projection);
            }
            builder.build(BufReader::new(Cursor::new(file.clone())))
        };
        let written = open(None)?.schema();
        let mut read: Vec<usize> = Vec::new();
        let mut sources = Vec::with_capacity(output.fields().len());
        for field in output.fields() {
            match written.index_of(field.name()) {
                Ok(index) => {
                    let position = read.iter().position(|i| *i == index).unwrap_or_else(|| {
                        read.push(index);
                        read.len() - 1
                    });
                    sources.push(Some(position));
                }
                Err(_) if field.is_nullable() => sources.push(None),
                Err(_) => {
                    return Err(FormatError::MissingField {
                        column: field.name().clone(),
                    });
                }
            }
        }
        Ok(Self {
            reader: open(Some(read))?,
            sources,
            output,
        })
    }

    /// The next batch, `None` at the end of the file.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>, FormatError> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch?;
        let columns = self
            .sources
            .iter()
            .zip(self.output.fields())
            .map(|(source, field)| match source {
                Some(position) => {
                    let column = batch.column(*position);
                    if column.data_type() == field.data_type() {
                        Ok(Arc::clone(column))
                    } else {
                        cast(column, field.data_type())
                    }
                }
                None => Ok(arrow::array::new_null_array(
                    field.data_type(),
                    batch.num_rows(),
                )),
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(Some(RecordBatch::try_new_with_options(
            Arc::clone(&self.output),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?))
    }
}

/// Writes an Avro object container file of the table's rows with Flink's
/// schema for the table, one block per batch, compressed with
/// `'avro.codec'`. (arrow-avro's own file writer advertises a schema of its
/// own making, which Flink's readers would not take for the table's.)
pub struct AvroFileWriter {
    encoder: Encoder,
    codec: Codec,
    sync: [u8; 16],
    file: Vec<u8>,
}

impl AvroFileWriter {
    pub(crate) fn try_new(options: &AvroOptions, schema: &Schema) -> Result<Self, FormatError> {
        let layout = Layout::try_new(schema, options)?;
        let encoder =
            WriterBuilder::new(native_schema(&layout)?).build_encoder::<AvroBinaryFormat>()?;
        let sync: [u8; 16] = rand::random();
        let mut file = b"Obj\x01".to_vec();
        write_long(&mut file, 2);
        write_bytes(&mut file, SCHEMA_METADATA_KEY.as_bytes());
        write_bytes(&mut file, layout.avro.json_string.as_bytes());
        write_bytes(&mut file, b"avro.codec");
        write_bytes(&mut file, options.codec.name().as_bytes());
        write_long(&mut file, 0);
        file.extend_from_slice(&sync);
        Ok(Self {
            encoder,
            codec: options.codec,
            sync,
            file,
        })
    }

    /// Appends the rows of `batch` as one block.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.encoder
            .encode(&cast_to(batch, &self.encoder.schema())?)?;
        let rows = self.encoder.flush();
        let mut block = Vec::with_capacity(rows.bytes().len());
        self.codec
            .compress(rows.bytes(), &mut block)
            .map_err(|e| FormatError::Arrow(e.into()))?;
        write_long(&mut self.file, rows.len() as i64);
        write_long(&mut self.file, block.len() as i64);
        self.file.extend_from_slice(&block);
        self.file.extend_from_slice(&self.sync);
        Ok(())
    }

    /// The file's size so far.
    pub fn bytes_written(&self) -> usize {
        self.file.len()
    }

    /// The whole file.
    pub fn finish(self) -> Vec<u8> {
        self.file
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        AsArray, Decimal128Array, Int16Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{Int16Type, Int64Type};

    use super::*;
    use crate::{FormatConfig, decode_messages, encode_messages};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("small", DataType::Int16, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    fn rows() -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![1, -2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Int16Array::from(vec![Some(7), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(1234), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_123),
                    None,
                ])),
            ],
        )
        .unwrap()
    }

    fn config(pairs: &[(&str, &str)]) -> FormatConfig {
        crate::test_config("avro", pairs)
    }

    #[test]
    fn the_schema_is_flinks() {
        let json = table_schema(&schema(), true).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"fields":[{"name":"id","type":"long"},"#,
                r#"{"default":null,"name":"name","type":["null","string"]},"#,
                r#"{"default":null,"name":"small","type":["null","int"]},"#,
                r#"{"default":null,"name":"price","type":["null",{"logicalType":"decimal","precision":10,"scale":2,"type":"bytes"}]},"#,
                r#"{"default":null,"name":"ts","type":["null",{"logicalType":"timestamp-millis","type":"long"}]}],"#,
                r#""name":"record","namespace":"org.apache.flink.avro.generated","type":"record"}"#
            )
        );
        let local = table_schema(&schema(), false).unwrap();
        assert!(local.contains("local-timestamp-millis"), "{local}");
        let nested = Schema::new(vec![Field::new(
            "address",
            DataType::Struct(vec![Field::new("city", DataType::Utf8, false)].into()),
            false,
        )]);
        assert!(
            table_schema(&nested, true)
                .unwrap()
                .contains(r#""name":"record_address","type":"record""#)
        );
        let nanos = Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        )]);
        let message = table_schema(&nanos, true).unwrap_err().to_string();
        assert!(
            message.contains("format 'avro' does not support column 't'"),
            "{message}"
        );
    }

    #[test]
    fn messages_are_plain_binary_datums_and_read_back() {
        let config = config(&[]);
        let mut encoder = config.create_encoder(schema()).unwrap();
        let (mut out, mut ranges) = (Vec::new(), Vec::new());
        let batch = StreamBatch::inserts(rows());
        encode_messages(encoder.as_mut(), &batch, &mut out, &mut ranges).unwrap();
        assert_eq!(ranges.len(), 2);
        // Row 2: id -2 (zigzag 3), then four nulls (union branch 0).
        assert_eq!(&out[ranges[1].clone()], &[0x03, 0, 0, 0, 0]);
        // Row 1: id 1, "a" (branch 1, length 1), 7 (branch 1, zigzag 14),
        // 12.34 as the two's-complement bytes of 1234, and the timestamp.
        let first = &out[ranges[0].clone()];
        assert_eq!(
            &first[..9],
            &[0x02, 0x02, 0x02, b'a', 0x02, 0x0e, 0x02, 0x04, 0x04]
        );
        assert_eq!(&first[9..11], &[0xd2, 0x02]);

        let messages: Vec<&[u8]> = ranges.iter().map(|r| &out[r.clone()]).collect();
        let mut decoder = config
            .create_decoder(schema(), Some(vec![2, 0, 4]))
            .unwrap();
        let locate = |i: usize| format!("at offset {i}");
        let decoded = decode_messages(decoder.as_mut(), "Avro", &messages, false, &locate).unwrap();
        let batch = decoded.batch;
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Int16);
        assert_eq!(batch.column(0).as_primitive::<Int16Type>().value(0), 7);
        assert_eq!(
            batch.column(1).as_primitive::<Int64Type>().values(),
            &[1, -2]
        );
        assert_eq!(batch.column(2).data_type(), schema().field(4).data_type());
        assert!(batch.column(2).is_null(1));

        // A message cut short names itself.
        let cut = [messages[0], &messages[0][..3]];
        let message = decode_messages(decoder.as_mut(), "Avro", &cut, false, &locate)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("malformed Avro record at offset 1: "),
            "{message}"
        );
    }

    #[test]
    fn files_round_trip_with_a_codec_and_a_projection() {
        for codec in ["null", "deflate", "snappy", "zstandard", "bzip2"] {
            let config = config(&[("avro.codec", codec)]);
            let mut writer = config.avro_file_writer(&schema()).unwrap();
            writer.write(&rows()).unwrap();
            assert!(writer.bytes_written() > 0);
            let file = writer.finish();
            assert_eq!(&file[..4], b"Obj\x01", "{codec}");
            let mut reader = config
                .avro_file_reader(&schema(), vec![1, 3], bytes::Bytes::from(file), 1024)
                .unwrap();
            let batch = reader.next_batch().unwrap().unwrap();
            assert_eq!(batch.column(0).as_string::<i32>().value(0), "a");
            assert_eq!(
                batch
                    .column(1)
                    .as_primitive::<arrow::datatypes::Decimal128Type>()
                    .value(0),
                1234
            );
            assert!(reader.next_batch().unwrap().is_none());
        }
        let message = FormatConfig::from_options(
            "avro",
            &[("avro.codec".to_string(), "xz".to_string())].into(),
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("Weir writes null, deflate"), "{message}");
    }
}
