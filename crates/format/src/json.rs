//! Flink's `json` format: options, decoder and encoder.
//!
//! Decoding feeds the whole chunk (one JSON object per line) to arrow-json's
//! tape decoder with only the projected fields in its schema, so other fields
//! are skipped without being materialised. Strings, numbers and booleans read
//! into a STRING column keep their text (Flink's `asText`), and timestamps
//! accept both `yyyy-MM-dd HH:mm:ss.SSS` and the ISO `T` form, with or without
//! a trailing `Z`, whatever `json.timestamp-format.standard` says.
//!
//! Under `json.ignore-parse-errors` values that do not fit their column become
//! NULL inside the vectorised decoder (arrow's type-conflict mode, Flink's
//! per-field rule); lines that are not JSON objects at all are found by the
//! shared bisection and skipped. Without it the first bad line fails the chunk.
//! `json.fail-on-missing-field` needs to tell an absent field from an explicit
//! `null`, which arrow cannot, so when set every line's top-level keys are
//! scanned with serde (keys only, values skipped unparsed).
//!
//! Encoding uses arrow-json's writer with Flink's spellings of floats,
//! decimals, dates, times, timestamps and bytes plugged in.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatchOptions};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::ReaderBuilder;
use arrow::json::reader::Decoder;
use arrow::json::writer::{
    Encoder, EncoderFactory, EncoderOptions, LineDelimited, NullableEncoder, WriterBuilder,
};
use arrow::record_batch::RecordBatch;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use weir_common::StreamBatch;

use crate::debezium::Envelope;
use crate::display::{Dialect, TextStyle, sql_type_name, write_value};
use crate::lines::{
    BadRecord, Conversion, RecordSpan, arrow_message, malformed, max_records, recover, split_lines,
};
use crate::{
    ChangelogRows, ChunkOrigin, Decoded, FormatError, FormatKind, OptionReader, RecordDecoder,
    RecordEncoder,
};

/// The option keys of the json format.
pub(crate) const OPTIONS: &[&str] = &[
    "json.fail-on-missing-field",
    "json.ignore-parse-errors",
    "json.timestamp-format.standard",
    "json.map-null-key.mode",
    "json.map-null-key.literal",
    "json.encode.decimal-as-plain-number",
    "json.encode.ignore-null-fields",
    "json.decode.json-parser.enabled",
];

/// `json.timestamp-format.standard`: how timestamps are written (all are read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimestampStandard {
    /// `2020-12-30 12:13:14.123`, TIMESTAMP_LTZ with a `Z` suffix.
    Sql,
    /// `2020-12-30T12:13:14.123`, TIMESTAMP_LTZ with a `Z` suffix.
    Iso8601,
    /// `2020-12-30T12:13:14.123Z` for both TIMESTAMP and TIMESTAMP_LTZ.
    Iso8601WithOffset,
}

/// Parsed `json.*` options (or the same options of a format built on
/// JSON, such as `debezium-json.*`).
#[derive(Debug, Clone)]
pub(crate) struct JsonOptions {
    /// The options' prefix without its dot: `json` or `debezium-json`.
    prefix: &'static str,
    fail_on_missing_field: bool,
    pub ignore_parse_errors: bool,
    timestamp_standard: TimestampStandard,
    plain_decimals: bool,
    ignore_null_fields: bool,
}

impl JsonOptions {
    /// Reads the options under `prefix` (`json` or `debezium-json`); a key
    /// the format does not define was already refused, so reads as unset.
    pub(crate) fn parse(
        reader: &OptionReader<'_>,
        prefix: &'static str,
    ) -> Result<Self, FormatError> {
        let key = |name: &str| format!("{prefix}.{name}");
        let fail_on_missing_field = reader.bool(&key("fail-on-missing-field"), false)?;
        let ignore_parse_errors = reader.bool(&key("ignore-parse-errors"), false)?;
        if fail_on_missing_field && ignore_parse_errors {
            return Err(crate::invalid(
                &key("fail-on-missing-field"),
                "true",
                &format!(
                    "'{}' and '{}' cannot both be 'true'; set one of them to 'false'",
                    key("fail-on-missing-field"),
                    key("ignore-parse-errors")
                ),
            ));
        }
        let timestamp_standard = match reader.choice(
            &key("timestamp-format.standard"),
            &["SQL", "ISO-8601", "ISO-8601-WITH-OFFSET"],
            "SQL",
        )? {
            "ISO-8601" => TimestampStandard::Iso8601,
            "ISO-8601-WITH-OFFSET" => TimestampStandard::Iso8601WithOffset,
            _ => TimestampStandard::Sql,
        };
        // Arrow map keys can never be NULL, so the null-key handling Flink offers
        // has nothing to act on; the options are still validated as Flink does.
        reader.choice(
            &key("map-null-key.mode"),
            &["FAIL", "DROP", "LITERAL"],
            "FAIL",
        )?;
        reader.bool(&key("decode.json-parser.enabled"), true)?;
        Ok(Self {
            prefix,
            fail_on_missing_field,
            ignore_parse_errors,
            timestamp_standard,
            plain_decimals: reader.bool(&key("encode.decimal-as-plain-number"), false)?,
            ignore_null_fields: reader.bool(&key("encode.ignore-null-fields"), false)?,
        })
    }

    fn text_style(&self) -> TextStyle<'static> {
        TextStyle {
            separator: match self.timestamp_standard {
                TimestampStandard::Sql => ' ',
                TimestampStandard::Iso8601 | TimestampStandard::Iso8601WithOffset => 'T',
            },
            naive_zone_suffix: self.timestamp_standard == TimestampStandard::Iso8601WithOffset,
            scientific_decimals: !self.plain_decimals,
            element_delimiter: ", ",
        }
    }
}

/// Decodes JSON lines into batches of the projected schema, or (for
/// debezium-json) of the change events' envelope.
pub(crate) struct JsonDecoder {
    options: JsonOptions,
    /// The change-event envelope the lines hold; `None` for plain rows.
    envelope: Option<Envelope>,
    /// The projected fields with stand-in read types, all nullable.
    read_schema: SchemaRef,
    output_schema: SchemaRef,
    /// Per output column: how its stand-in read type becomes the real type.
    conversions: Vec<Conversion>,
}

impl JsonDecoder {
    pub(crate) fn try_new(
        options: JsonOptions,
        schema: SchemaRef,
        projection: Vec<usize>,
    ) -> Result<Self, FormatError> {
        let output_schema = Arc::new(schema.project(&projection)?);
        let mut read_fields = Vec::with_capacity(projection.len());
        let mut conversions = Vec::with_capacity(projection.len());
        for field in output_schema.fields() {
            let (conversion, read_field) = read_field(field, options.prefix)?;
            read_fields.push(read_field);
            conversions.push(conversion);
        }
        Ok(Self {
            options,
            envelope: None,
            read_schema: Arc::new(Schema::new(read_fields)),
            output_schema,
            conversions,
        })
    }

    /// A decoder of change events: each line is one `envelope`, decoded
    /// into one row of [`Envelope::output_schema`].
    pub(crate) fn for_envelope(options: JsonOptions, envelope: Envelope) -> Self {
        let read_schema = envelope.read_schema();
        Self {
            options,
            conversions: vec![Conversion::None; read_schema.fields().len()],
            read_schema,
            output_schema: envelope.output_schema(),
            envelope: Some(envelope),
        }
    }

    /// `JSON`, or the name of the format built on it, for messages.
    fn label(&self) -> &'static str {
        match self.envelope {
            Some(_) => FormatKind::DebeziumJson.label(),
            None => FormatKind::Json.label(),
        }
    }

    fn arrow_decoder(&self, schema: SchemaRef, batch_size: usize) -> Result<Decoder, ArrowError> {
        ReaderBuilder::new(schema)
            .with_batch_size(batch_size)
            .with_coerce_primitive(true)
            .with_ignore_type_conflicts(self.options.ignore_parse_errors)
            .build_decoder()
    }

    /// Decodes `bytes` (whole lines) into one batch of the output schema,
    /// `None` if it holds no record.
    fn decode_bytes(&self, bytes: &[u8]) -> Result<Option<RecordBatch>, ArrowError> {
        let mut decoder = self.arrow_decoder(self.read_schema.clone(), max_records(bytes))?;
        let batches = run_decoder(&mut decoder, bytes)?;
        let batch = match batches.len() {
            0 => return Ok(None),
            1 => batches.into_iter().next(),
            _ => Some(concat_batches(&self.read_schema, &batches)?),
        };
        let Some(batch) = batch else { return Ok(None) };
        if self.options.fail_on_missing_field
            && let Some((_, name)) = self.first_missing_field(bytes)
        {
            return Err(ArrowError::JsonError(format!(
                "could not find field '{name}'"
            )));
        }
        if let Some(envelope) = &self.envelope {
            return envelope.finish(&batch).map(Some);
        }
        let columns = batch
            .columns()
            .iter()
            .zip(&self.conversions)
            .map(|(column, conversion)| conversion.apply(column.clone()))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(Some(RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?))
    }

    /// The first line of `bytes` lacking a projected field, with that field's name.
    fn first_missing_field(&self, bytes: &[u8]) -> Option<(RecordSpan, &str)> {
        let names: Vec<&str> = self
            .read_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        if names.is_empty() {
            return None;
        }
        let mut seen = vec![false; names.len()];
        for span in split_lines(bytes) {
            seen.fill(false);
            let mut deserializer =
                serde_json::Deserializer::from_slice(&bytes[span.start..span.end]);
            // A line that is not an object already failed in arrow; here only
            // the keys matter.
            let _ = KeyScan {
                names: &names,
                seen: &mut seen,
            }
            .deserialize(&mut deserializer);
            if let Some(missing) = seen.iter().position(|found| !found) {
                return Some((span, names[missing]));
            }
        }
        None
    }

    /// Explains why `line` does not decode, with the advice to show.
    fn diagnose(&self, line: &[u8], error: &ArrowError) -> (String, String) {
        let skip_hint = format!(
            "; fix the record, or set '{}.ignore-parse-errors' = 'true' to skip \
             malformed records and read unparsable fields as NULL",
            self.options.prefix
        );
        if self.options.fail_on_missing_field
            && let Some((_, name)) = self.first_missing_field(line)
        {
            return (
                format!("could not find field '{name}'"),
                format!(
                    "; add the field, or set '{}.fail-on-missing-field' = 'false' to read \
                     missing fields as NULL",
                    self.options.prefix
                ),
            );
        }
        // Decodes the line with only `schema`'s fields, finishing column `column`.
        let probe = |schema: SchemaRef, column: Option<usize>| -> Result<(), ArrowError> {
            let mut decoder = self.arrow_decoder(schema, 1)?;
            for batch in run_decoder(&mut decoder, line)? {
                if let Some(i) = column {
                    self.conversions[i].apply(batch.column(0).clone())?;
                }
            }
            Ok(())
        };
        if let Err(error) = probe(Arc::new(Schema::empty()), None) {
            return (
                format!("invalid JSON object: {}", arrow_message(&error)),
                skip_hint,
            );
        }
        for (i, field) in self.read_schema.fields().iter().enumerate() {
            let checked = probe(Arc::new(Schema::new(vec![field.clone()])), Some(i));
            if let Err(error) = checked {
                return (
                    format!(
                        "cannot parse field '{}' as {}: {}",
                        field.name(),
                        sql_type_name(self.output_schema.field(i).data_type()),
                        arrow_message(&error)
                    ),
                    skip_hint,
                );
            }
        }
        (arrow_message(error), skip_hint)
    }
}

impl RecordDecoder for JsonDecoder {
    fn decode(&mut self, chunk: &[u8], origin: &ChunkOrigin<'_>) -> Result<Decoded, FormatError> {
        if let Ok(batch) = self.decode_bytes(chunk) {
            return Ok(Decoded {
                batches: batch.into_iter().collect(),
                skipped: 0,
            });
        }
        let spans = split_lines(chunk);
        let this = &*self;
        let recovered = recover(
            chunk,
            &spans,
            &this.output_schema,
            &mut |bytes| this.decode_bytes(bytes),
            &mut |span, error| {
                if this.options.ignore_parse_errors {
                    return Ok(BadRecord::Skip);
                }
                let (message, hint) = this.diagnose(&chunk[span.start..span.end], &error);
                Err(malformed(this.label(), origin, span, message, hint))
            },
        )?;
        Ok(Decoded {
            batches: recovered.batch.into_iter().collect(),
            skipped: recovered.skipped,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    fn changelog_rows(&self, records: RecordBatch) -> Result<ChangelogRows, FormatError> {
        match &self.envelope {
            Some(envelope) => envelope.unfold(&records),
            None => Ok(ChangelogRows {
                rows: StreamBatch::inserts(records),
                records: None,
            }),
        }
    }
}

/// How a column of `field`'s type is read (a stand-in type and its
/// conversion), or why it cannot be.
pub(crate) fn read_field(field: &Field, format: &str) -> Result<(Conversion, Field), FormatError> {
    let (conversion, read_type) = Conversion::for_type(field.data_type());
    let read_field = Field::new(field.name(), read_type, true);
    // Building a one-field decoder is how arrow reports a type it cannot read.
    if ReaderBuilder::new(Arc::new(Schema::new(vec![read_field.clone()])))
        .build_decoder()
        .is_err()
    {
        return Err(FormatError::UnsupportedType {
            format: format.to_string(),
            column: field.name().clone(),
            data_type: sql_type_name(field.data_type()),
            hint: "declare the column with a supported type such as STRING".to_string(),
        });
    }
    Ok((conversion, read_field))
}

/// Feeds all of `bytes` through `decoder`, flushing whenever a batch fills up.
fn run_decoder(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let consumed = decoder.decode(&bytes[pos..])?;
        pos += consumed;
        if pos < bytes.len() {
            match decoder.flush()? {
                Some(batch) => batches.push(batch),
                None if consumed == 0 => {
                    return Err(ArrowError::JsonError(
                        "the JSON decoder stopped making progress".to_string(),
                    ));
                }
                None => {}
            }
        }
    }
    batches.extend(decoder.flush()?);
    Ok(batches)
}

/// Records which of `names` occur among an object's top-level keys.
struct KeyScan<'a> {
    names: &'a [&'a str],
    seen: &'a mut [bool],
}

impl<'de> DeserializeSeed<'de> for KeyScan<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyScan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(index) = map.next_key_seed(KeyIndex { names: self.names })? {
            if let Some(index) = index {
                self.seen[index] = true;
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Maps a key to its position in `names` without allocating.
struct KeyIndex<'a> {
    names: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for KeyIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.names.iter().position(|name| *name == key))
    }
}

/// Encodes batches as JSON lines.
pub(crate) struct JsonEncoder {
    options: JsonOptions,
}

impl JsonEncoder {
    pub(crate) fn new(options: JsonOptions) -> Self {
        Self { options }
    }
}

impl RecordEncoder for JsonEncoder {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let factory = FlinkJsonValues {
            style: self.options.text_style(),
        };
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(!self.options.ignore_null_fields)
            .with_encoder_factory(Arc::new(factory))
            .build::<_, LineDelimited>(out);
        writer.write(batch)?;
        writer.finish()?;
        Ok(())
    }

    fn format(&self) -> &'static str {
        self.options.prefix
    }
}

/// Plugs Flink's spellings into arrow-json's writer for the types where they
/// differ from arrow's (floats, decimals, temporal types, bytes).
#[derive(Debug)]
struct FlinkJsonValues {
    style: TextStyle<'static>,
}

impl EncoderFactory for FlinkJsonValues {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let quoted = match array.data_type() {
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _) => false,
            DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Timestamp(_, _)
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => true,
            _ => return Ok(None),
        };
        let encoder = TextValueEncoder {
            array,
            style: self.style,
            quoted,
            scratch: String::new(),
        };
        Ok(Some(NullableEncoder::new(
            Box::new(encoder),
            array.nulls().cloned(),
        )))
    }
}

/// Writes one column's values through [`write_value`], as a JSON string or number.
struct TextValueEncoder<'a> {
    array: &'a dyn Array,
    style: TextStyle<'static>,
    /// Always a JSON string; otherwise a number unless the text is not numeric.
    quoted: bool,
    scratch: String,
}

impl Encoder for TextValueEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        self.scratch.clear();
        write_value(
            &mut self.scratch,
            self.array,
            idx,
            &Dialect::Text(self.style),
        );
        // Jackson writes NaN and the infinities as strings, which keeps the line valid JSON.
        let quote =
            self.quoted || matches!(self.scratch.as_str(), "NaN" | "Infinity" | "-Infinity");
        if quote {
            out.push(b'"');
        }
        out.extend_from_slice(self.scratch.as_bytes());
        if quote {
            out.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, BinaryArray, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Int64Type, TimeUnit, TimestampMillisecondType};

    use super::*;
    use crate::FormatConfig;

    fn config(pairs: &[(&str, &str)]) -> FormatConfig {
        crate::test_config("json", pairs)
    }

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(name, dt)| Field::new(*name, dt.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn origin() -> ChunkOrigin<'static> {
        ChunkOrigin {
            source: "topic/0",
            byte_offset: 0,
            first_line: Some(1),
        }
    }

    fn one_batch(decoded: &Decoded) -> &RecordBatch {
        assert_eq!(decoded.batches.len(), 1, "{decoded:?}");
        &decoded.batches[0]
    }

    fn longs(batch: &RecordBatch, column: usize) -> Vec<Option<i64>> {
        batch
            .column(column)
            .as_primitive::<Int64Type>()
            .iter()
            .collect()
    }

    fn strings(batch: &RecordBatch, column: usize) -> Vec<Option<String>> {
        batch
            .column(column)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    fn id_name() -> SchemaRef {
        schema(&[("id", DataType::Int64), ("name", DataType::Utf8)])
    }

    #[test]
    fn missing_fields_are_null_by_default() {
        let mut decoder = config(&[]).create_decoder(id_name(), None).unwrap();
        let decoded = decoder
            .decode(
                b"{\"id\": 1}\n\n{\"name\": \"x\", \"other\": [1, {\"a\": 2}]}\r\n",
                &origin(),
            )
            .unwrap();
        let batch = one_batch(&decoded);
        assert_eq!(longs(batch, 0), vec![Some(1), None]);
        assert_eq!(strings(batch, 1), vec![None, Some("x".into())]);
    }

    #[test]
    fn fail_on_missing_field_rejects_absent_but_not_null_fields() {
        let config = config(&[("json.fail-on-missing-field", "true")]);
        let mut decoder = config.create_decoder(id_name(), None).unwrap();
        let decoded = decoder
            .decode(b"{\"id\": 1, \"name\": null}\n", &origin())
            .unwrap();
        assert_eq!(strings(one_batch(&decoded), 1), vec![None]);
        let err = decoder
            .decode(b"{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2}\n", &origin())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "malformed JSON record in 'topic/0' at line 2 (byte 23): could not find field \
             'name'; add the field, or set 'json.fail-on-missing-field' = 'false' to read \
             missing fields as NULL"
        );
        // Projected away, the field is not required.
        let mut projected = config.create_decoder(id_name(), Some(vec![0])).unwrap();
        let decoded = projected.decode(b"{\"id\": 2}\n", &origin()).unwrap();
        assert_eq!(longs(one_batch(&decoded), 0), vec![Some(2)]);
        let both = FormatConfig::from_options(
            "json",
            &[
                ("json.fail-on-missing-field", "true"),
                ("json.ignore-parse-errors", "true"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        assert!(both.is_err());
    }

    #[test]
    fn malformed_line_is_reported_with_field_and_type() {
        let mut decoder = config(&[]).create_decoder(id_name(), None).unwrap();
        let err = decoder
            .decode(b"{\"id\": 1}\n{\"id\": \"abc\"}\n", &origin())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "malformed JSON record in 'topic/0' at line 2 (byte 10): cannot parse field 'id' as BIGINT: "
            ),
            "{err}"
        );
        assert!(err.ends_with("'json.ignore-parse-errors' = 'true' to skip malformed records and read unparsable fields as NULL"), "{err}");
        let err = decoder
            .decode(b"{\"id\": 1}\n{\"id\": 2,\n", &origin())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "malformed JSON record in 'topic/0' at line 2 (byte 10): invalid JSON object"
            ),
            "{err}"
        );
    }

    #[test]
    fn ignore_parse_errors_nulls_fields_and_skips_broken_lines() {
        let config = config(&[("json.ignore-parse-errors", "true")]);
        let mut decoder = config.create_decoder(id_name(), None).unwrap();
        let decoded = decoder
            .decode(
                b"{\"id\": 1, \"name\": \"a\"}\n{\"id\": \"abc\", \"name\": \"b\"}\nnot json\n[1, 2]\n7\n{\"id\": 4}\n",
                &origin(),
            )
            .unwrap();
        let batch = one_batch(&decoded);
        assert_eq!(longs(batch, 0), vec![Some(1), None, Some(4)]);
        assert_eq!(
            strings(batch, 1),
            vec![Some("a".into()), Some("b".into()), None]
        );
        assert_eq!(decoded.skipped, 3);
    }

    #[test]
    fn primitives_read_into_strings_keep_their_text() {
        let mut decoder = config(&[]).create_decoder(id_name(), None).unwrap();
        let decoded = decoder
            .decode(
                b"{\"id\": \"7\", \"name\": 1.50}\n{\"name\": true}\n",
                &origin(),
            )
            .unwrap();
        let batch = one_batch(&decoded);
        assert_eq!(longs(batch, 0), vec![Some(7), None]);
        assert_eq!(
            strings(batch, 1),
            vec![Some("1.50".into()), Some("true".into())]
        );
    }

    #[test]
    fn both_timestamp_forms_are_read() {
        let schema = schema(&[
            ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
            (
                "ltz",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ),
        ]);
        for standard in ["SQL", "ISO-8601"] {
            let mut decoder = config(&[("json.timestamp-format.standard", standard)])
                .create_decoder(schema.clone(), None)
                .unwrap();
            let decoded = decoder
                .decode(
                    b"{\"ts\": \"2015-07-15 00:00:01.123\", \"ltz\": \"2015-07-15 00:00:01.123Z\"}\n\
                      {\"ts\": \"2015-07-15T00:00:01.123\", \"ltz\": \"2015-07-15T00:00:01.123\"}\n",
                    &origin(),
                )
                .unwrap();
            let batch = one_batch(&decoded);
            for column in 0..2 {
                let values = batch
                    .column(column)
                    .as_primitive::<TimestampMillisecondType>();
                assert_eq!(values.values().to_vec(), vec![1_436_918_401_123; 2]);
            }
        }
    }

    #[test]
    fn option_values_are_validated() {
        let err = FormatConfig::from_options(
            "json",
            &[("json.timestamp-format.standard", "RFC")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid value 'RFC' for option 'json.timestamp-format.standard': expected one of \
             'SQL', 'ISO-8601', 'ISO-8601-WITH-OFFSET'"
        );
        config(&[
            ("json.map-null-key.mode", "literal"),
            ("json.map-null-key.literal", "n/a"),
            ("json.encode.decimal-as-plain-number", "true"),
            ("json.decode.json-parser.enabled", "false"),
        ]);
    }

    fn encode(config: &FormatConfig, batch: &RecordBatch) -> String {
        let mut out = Vec::new();
        config
            .create_encoder(batch.schema())
            .unwrap()
            .encode(batch, &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encodes_flink_spellings() {
        let batch = crate::csv::tests::all_types_batch();
        assert_eq!(
            encode(&config(&[]), &batch),
            "{\"big\":-9000000000,\"int\":42,\"small\":-7,\"tiny\":3,\"dbl\":1.5E10,\"flt\":0.25,\
             \"dec\":-123.45,\"bool\":true,\"str\":\"a, \\\"quoted\\\"\\nline\",\"date\":\"2020-04-15\",\
             \"ts\":\"2020-04-15 08:05:00.12\",\"ltz\":\"2020-04-15 08:05:00Z\"}\n\
             {\"big\":null,\"int\":null,\"small\":null,\"tiny\":null,\"dbl\":null,\"flt\":null,\
             \"dec\":null,\"bool\":null,\"str\":null,\"date\":null,\"ts\":null,\"ltz\":null}\n"
        );
        let iso = encode(
            &config(&[
                ("json.timestamp-format.standard", "ISO-8601"),
                ("json.encode.ignore-null-fields", "true"),
            ]),
            &batch,
        );
        assert!(
            iso.contains("\"ts\":\"2020-04-15T08:05:00.12\",\"ltz\":\"2020-04-15T08:05:00Z\"}"),
            "{iso}"
        );
        assert!(iso.ends_with("\n{}\n"), "{iso}");
        let offset = encode(
            &config(&[("json.timestamp-format.standard", "ISO-8601-WITH-OFFSET")]),
            &batch,
        );
        assert!(
            offset.contains("\"ts\":\"2020-04-15T08:05:00.12Z\""),
            "{offset}"
        );
    }

    #[test]
    fn decimals_and_bytes() {
        let schema = schema(&[("d", DataType::Decimal128(12, 9)), ("b", DataType::Binary)]);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    arrow::array::Decimal128Array::from(vec![27])
                        .with_precision_and_scale(12, 9)
                        .unwrap(),
                ),
                Arc::new(BinaryArray::from(vec![&[1u8, 2, 3][..]])),
            ],
        )
        .unwrap();
        assert_eq!(
            encode(&config(&[]), &batch),
            "{\"d\":2.7E-8,\"b\":\"AQID\"}\n"
        );
        let plain = config(&[("json.encode.decimal-as-plain-number", "true")]);
        let text = encode(&plain, &batch);
        assert_eq!(text, "{\"d\":0.000000027,\"b\":\"AQID\"}\n");
        let mut decoder = plain.create_decoder(batch.schema(), None).unwrap();
        let decoded = decoder.decode(text.as_bytes(), &origin()).unwrap();
        assert_eq!(one_batch(&decoded), &batch);
    }

    #[test]
    fn round_trip_of_every_type() {
        let batch = crate::csv::tests::all_types_batch();
        for standard in ["SQL", "ISO-8601", "ISO-8601-WITH-OFFSET"] {
            let config = config(&[("json.timestamp-format.standard", standard)]);
            let text = encode(&config, &batch);
            let mut decoder = config.create_decoder(batch.schema(), None).unwrap();
            let decoded = decoder.decode(text.as_bytes(), &origin()).unwrap();
            assert_eq!(one_batch(&decoded), &batch, "{standard}: {text}");
        }
    }

    #[test]
    fn projection_and_empty_projection() {
        let schema = schema(&[
            ("a", DataType::Int64),
            ("b", DataType::Utf8),
            ("c", DataType::Int64),
        ]);
        let mut decoder = config(&[])
            .create_decoder(schema.clone(), Some(vec![2, 1]))
            .unwrap();
        let decoded = decoder
            .decode(
                b"{\"a\": \"not a number\", \"b\": \"x\", \"c\": 3}\n",
                &origin(),
            )
            .unwrap();
        let batch = one_batch(&decoded);
        assert_eq!(decoder.output_schema().field(0).name(), "c");
        assert_eq!(longs(batch, 0), vec![Some(3)]);
        assert_eq!(strings(batch, 1), vec![Some("x".into())]);
        let mut counting = config(&[]).create_decoder(schema, Some(vec![])).unwrap();
        let decoded = counting.decode(b"{}\n{\"a\": 1}\n", &origin()).unwrap();
        assert_eq!(one_batch(&decoded).num_rows(), 2);
    }

    #[test]
    fn timestamps_with_nulls_encode_and_sql_strings() {
        let schema = schema(&[
            ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
            ("s", DataType::Utf8),
            ("i", DataType::Int64),
        ]);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![Some(0)])),
                Arc::new(StringArray::from(vec![Some("é\"")])),
                Arc::new(Int64Array::from(vec![None])),
            ],
        )
        .unwrap();
        assert_eq!(
            encode(&config(&[]), &batch),
            "{\"ts\":\"1970-01-01 00:00:00\",\"s\":\"é\\\"\",\"i\":null}\n"
        );
    }
}
