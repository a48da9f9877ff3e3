//! Record formats shared by every Weir connector.
//!
//! A table's `'format'` option (with its `<format>.xxx` options) is parsed once
//! into a [`FormatConfig`]. Connectors then ask it for a [`RecordDecoder`] that
//! turns chunks of whole lines into Arrow [`RecordBatch`]es, and for a
//! [`RecordEncoder`] that turns batches back into lines. Semantics follow
//! Apache Flink's `csv`, `json`, `raw`, `debezium-json` and `avro` formats so
//! that Flink SQL runs unchanged; `parquet` is only validated here because it
//! is a file format the connector reads and writes whole. Avro is both: one
//! datum per message through the decoder and encoder, and whole object
//! container files through [`AvroFileReader`] and [`AvroFileWriter`].
//!
//! Data flow when decoding: the connector hands over a chunk of complete
//! records plus a [`ChunkOrigin`] for error messages. The decoder first parses
//! the whole chunk with arrow's vectorised CSV/JSON decoders (the fast path).
//! Only if that fails does it cut the chunk into records and bisect to find the
//! malformed ones, which are then reported with their line and byte offset.
//! Under `<format>.ignore-parse-errors` Flink's rule applies instead: fields
//! that do not parse become NULL and records that cannot be read at all are
//! skipped and counted in [`Decoded::skipped`].
//!
//! A changelog format (`debezium-json`) decodes each record into one row of
//! its envelope (`before`, `after`, `op`), so that errors still point at one
//! record; [`RecordDecoder::changelog_rows`] then turns those rows into the
//! table's rows with their row kinds, one or two per record. Its encoder
//! writes a row kind with every row ([`RecordEncoder::encode_changes`]).
//!
//! The [`display`] module renders values the way Flink's print connector and
//! SQL client do.

mod avro;
mod csv;
mod csv_fast;
mod debezium;
pub mod display;
mod error;
mod json;
mod lines;
mod messages;
mod raw;

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use weir_common::StreamBatch;

pub use avro::{AvroFileReader, AvroFileWriter};
pub use error::FormatError;
pub use messages::{DecodedMessages, decode_messages, encode_messages};

/// The record formats Weir understands, by their Flink `'format'` identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatKind {
    /// `'csv'`: delimiter-separated text, one record per line.
    Csv,
    /// `'json'`: one JSON object per line.
    Json,
    /// `'raw'`: each line is the value of the table's single column.
    Raw,
    /// `'parquet'`: columnar files, read and written whole by the connector.
    Parquet,
    /// `'debezium-json'`: Debezium's JSON change events, read and written
    /// as a changelog.
    DebeziumJson,
    /// `'avro'`: Avro records of the table's schema; binary datums in
    /// messages, object container files on a filesystem.
    Avro,
}

impl FormatKind {
    /// Every kind, in the order they are listed in error messages.
    pub const ALL: [FormatKind; 6] = [
        FormatKind::Csv,
        FormatKind::Json,
        FormatKind::Raw,
        FormatKind::Parquet,
        FormatKind::DebeziumJson,
        FormatKind::Avro,
    ];

    /// The identifier used in `'format' = '...'` and as the option prefix.
    pub fn name(self) -> &'static str {
        match self {
            FormatKind::Csv => "csv",
            FormatKind::Json => "json",
            FormatKind::Raw => "raw",
            FormatKind::Parquet => "parquet",
            FormatKind::DebeziumJson => "debezium-json",
            FormatKind::Avro => "avro",
        }
    }

    /// How the format is named in messages about a malformed record.
    pub fn label(self) -> &'static str {
        match self {
            FormatKind::Csv => "CSV",
            FormatKind::Json => "JSON",
            FormatKind::Raw => "raw",
            FormatKind::Parquet => "Parquet",
            FormatKind::DebeziumJson => "Debezium JSON",
            FormatKind::Avro => "Avro",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl std::fmt::Display for FormatKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Option keys (without the `parquet.` prefix) accepted for parquet tables.
/// Flink passes these through to the Parquet writer; the connector interprets them.
const PARQUET_OPTIONS: &[&str] = &[
    "parquet.utc-timezone",
    "parquet.timestamp.time.unit",
    "parquet.write.int64.timestamp",
    "parquet.compression",
    "parquet.block.size",
    "parquet.page.size",
    "parquet.dictionary.page.size",
    "parquet.enable.dictionary",
    "parquet.writer.version",
    "parquet.writer.max-padding",
    "parquet.validation",
];

/// The per-format settings, parsed and validated.
#[derive(Debug, Clone)]
enum Settings {
    Csv(csv::CsvOptions),
    Json(json::JsonOptions),
    Raw(raw::RawOptions),
    Parquet,
    Debezium(debezium::DebeziumOptions),
    Avro(avro::AvroOptions),
}

/// A table's format, parsed and validated from its WITH options.
#[derive(Debug, Clone)]
pub struct FormatConfig {
    settings: Settings,
    /// The `<format>.xxx` options as written, keyed by full key, for the
    /// connector to read settings this crate only validates (e.g. parquet's).
    options: BTreeMap<String, String>,
}

impl FormatConfig {
    /// Parses the format named `format` (the value of `'format'` or `'value.format'`)
    /// from `options`, which may hold all of a table's options: only keys starting
    /// with `"<format>."` are looked at. Connectors using `'value.format'` strip their
    /// `value.` prefix from the format's keys before calling this.
    pub fn from_options(
        format: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Self, FormatError> {
        let kind = FormatKind::from_name(format).ok_or_else(|| FormatError::UnknownFormat {
            format: format.to_string(),
            valid: FormatKind::ALL.map(FormatKind::name).join(", "),
        })?;
        let prefix = format!("{format}.");
        let own: BTreeMap<String, String> = options
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let valid = Self::option_keys(kind);
        if let Some(unknown) = own.keys().find(|key| !valid.contains(&key.as_str())) {
            return Err(FormatError::UnknownOption {
                format: format.to_string(),
                key: unknown.clone(),
                valid: valid.join(", "),
            });
        }
        let reader = OptionReader { options: &own };
        let settings = match kind {
            FormatKind::Csv => Settings::Csv(csv::CsvOptions::parse(&reader)?),
            FormatKind::Json => Settings::Json(json::JsonOptions::parse(&reader, "json")?),
            FormatKind::DebeziumJson => {
                Settings::Debezium(debezium::DebeziumOptions::parse(&reader)?)
            }
            FormatKind::Avro => Settings::Avro(avro::AvroOptions::parse(&reader)?),
            FormatKind::Raw => Settings::Raw(raw::RawOptions::parse(&reader)?),
            FormatKind::Parquet => Settings::Parquet,
        };
        Ok(Self {
            settings,
            options: own,
        })
    }

    /// Which format this is.
    pub fn kind(&self) -> FormatKind {
        match self.settings {
            Settings::Csv(_) => FormatKind::Csv,
            Settings::Json(_) => FormatKind::Json,
            Settings::Raw(_) => FormatKind::Raw,
            Settings::Parquet => FormatKind::Parquet,
            Settings::Debezium(_) => FormatKind::DebeziumJson,
            Settings::Avro(_) => FormatKind::Avro,
        }
    }

    /// Whether records carry row kinds (debezium-json): a source of such a
    /// table reads a changelog, and its sink writes one.
    pub fn is_changelog(&self) -> bool {
        matches!(self.settings, Settings::Debezium(_))
    }

    /// The option keys this format accepts (for the connector's own "valid options" messages).
    pub fn option_keys(kind: FormatKind) -> &'static [&'static str] {
        match kind {
            FormatKind::Csv => csv::OPTIONS,
            FormatKind::Json => json::OPTIONS,
            FormatKind::Raw => raw::OPTIONS,
            FormatKind::Parquet => PARQUET_OPTIONS,
            FormatKind::DebeziumJson => debezium::OPTIONS,
            FormatKind::Avro => avro::OPTIONS,
        }
    }

    /// The value of one of this format's options as written (full key, e.g.
    /// `"parquet.compression"`), for settings the connector interprets itself.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// Whether malformed records are skipped (or, for CSV, their bad fields nulled)
    /// instead of failing the query.
    pub fn ignore_parse_errors(&self) -> bool {
        match &self.settings {
            Settings::Csv(options) => options.ignore_parse_errors,
            Settings::Json(options) => options.ignore_parse_errors,
            Settings::Debezium(options) => options.json.ignore_parse_errors,
            Settings::Raw(_) | Settings::Parquet | Settings::Avro(_) => false,
        }
    }

    /// A decoder producing batches of `schema` projected to `projection`
    /// (indices into `schema`; `None` keeps every column): of lines, or
    /// for avro of messages only. Parquet has none: the connector reads
    /// parquet files itself (and avro files through [`Self::avro_file_reader`]).
    pub fn create_decoder(
        &self,
        schema: SchemaRef,
        projection: Option<Vec<usize>>,
    ) -> Result<Box<dyn RecordDecoder>, FormatError> {
        let projection = match projection {
            Some(projection) => {
                if let Some(bad) = projection.iter().find(|i| **i >= schema.fields().len()) {
                    return Err(FormatError::Arrow(ArrowError::SchemaError(format!(
                        "projection index {bad} is out of range for a schema of {} columns",
                        schema.fields().len()
                    ))));
                }
                projection
            }
            None => (0..schema.fields().len()).collect(),
        };
        match &self.settings {
            Settings::Csv(options) => Ok(Box::new(csv::CsvDecoder::try_new(
                options.clone(),
                schema,
                projection,
            )?)),
            Settings::Json(options) => Ok(Box::new(json::JsonDecoder::try_new(
                options.clone(),
                schema,
                projection,
            )?)),
            Settings::Raw(options) => Ok(Box::new(raw::RawDecoder::try_new(
                options.clone(),
                schema,
                projection,
            )?)),
            Settings::Debezium(options) => {
                Ok(Box::new(debezium::decoder(options, schema, projection)?))
            }
            Settings::Avro(options) => Ok(Box::new(avro::AvroDecoder::try_new(
                options, schema, projection,
            )?)),
            Settings::Parquet => Err(FormatError::NotLineOriented {
                format: "parquet".to_string(),
                what: "decoder",
            }),
        }
    }

    /// An encoder for batches of `schema`: of lines, or for avro of
    /// messages only (files are written by [`Self::avro_file_writer`]).
    pub fn create_encoder(&self, schema: SchemaRef) -> Result<Box<dyn RecordEncoder>, FormatError> {
        match &self.settings {
            Settings::Csv(options) => Ok(Box::new(csv::CsvEncoder::new(options.clone()))),
            Settings::Json(options) => Ok(Box::new(json::JsonEncoder::new(options.clone()))),
            Settings::Raw(options) => {
                Ok(Box::new(raw::RawEncoder::try_new(options.clone(), schema)?))
            }
            Settings::Debezium(options) => Ok(Box::new(debezium::encoder(options)?)),
            Settings::Avro(options) => Ok(Box::new(avro::AvroEncoder::try_new(options, schema)?)),
            Settings::Parquet => Err(FormatError::NotLineOriented {
                format: "parquet".to_string(),
                what: "encoder",
            }),
        }
    }
}

impl FormatConfig {
    /// A reader of one Avro object container file (`file`, whole) into
    /// batches of `schema` projected to `projection`.
    pub fn avro_file_reader(
        &self,
        schema: &arrow::datatypes::Schema,
        projection: Vec<usize>,
        file: bytes::Bytes,
        batch_size: usize,
    ) -> Result<AvroFileReader, FormatError> {
        match &self.settings {
            Settings::Avro(_) => AvroFileReader::try_new(schema, projection, file, batch_size),
            _ => Err(self.not_avro()),
        }
    }

    /// A writer of one Avro object container file of `schema`'s rows.
    pub fn avro_file_writer(
        &self,
        schema: &arrow::datatypes::Schema,
    ) -> Result<AvroFileWriter, FormatError> {
        match &self.settings {
            Settings::Avro(options) => AvroFileWriter::try_new(options, schema),
            _ => Err(self.not_avro()),
        }
    }

    fn not_avro(&self) -> FormatError {
        FormatError::InvalidOption {
            key: "format".to_string(),
            value: self.kind().name().to_string(),
            expected: "an avro file needs 'format' = 'avro'".to_string(),
        }
    }
}

/// Where a chunk of input comes from, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOrigin<'a> {
    /// E.g. a file path or `topic/partition`.
    pub source: &'a str,
    /// Offset of the chunk's first byte within the source.
    pub byte_offset: u64,
    /// 1-based line number of the chunk's first line, when known.
    pub first_line: Option<u64>,
}

/// The result of decoding one chunk.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The decoded rows, in input order, with the decoder's output schema.
    pub batches: Vec<RecordBatch>,
    /// Malformed records dropped under `<format>.ignore-parse-errors`.
    pub skipped: u64,
}

/// Turns chunks of whole records into Arrow batches.
pub trait RecordDecoder: Send {
    /// Decodes `chunk`, which holds whole records (lines) only; output batches
    /// have [`Self::output_schema`].
    fn decode(&mut self, chunk: &[u8], origin: &ChunkOrigin<'_>) -> Result<Decoded, FormatError>;

    /// Decodes one record that arrived whole (a message), which may hold
    /// line breaks of its own; by default, as a chunk of lines.
    fn decode_record(
        &mut self,
        record: &[u8],
        origin: &ChunkOrigin<'_>,
    ) -> Result<Decoded, FormatError> {
        self.decode(record, origin)
    }

    /// The projected schema of every batch this decoder returns.
    fn output_schema(&self) -> SchemaRef;

    /// Decodes a run of messages (Kafka records), one record each, in one
    /// go: one row per message, or `None` when some message does not give
    /// exactly one (the caller then decodes them one by one to find it).
    fn decode_run(&mut self, messages: &[&[u8]]) -> Option<RecordBatch> {
        messages::decode_joined(self, messages)
    }

    /// The table's rows described by `records`, a batch of decoded records
    /// (one row per record, as `decode` returns them). Each record is one
    /// insert, except in a changelog format, where it may be one or two
    /// rows of any kind.
    fn changelog_rows(&self, records: RecordBatch) -> Result<ChangelogRows, FormatError> {
        Ok(ChangelogRows {
            rows: StreamBatch::inserts(records),
            records: None,
        })
    }
}

/// The rows of a batch of decoded records, from
/// [`RecordDecoder::changelog_rows`].
#[derive(Debug)]
pub struct ChangelogRows {
    /// The table's (projected) columns, with row kinds.
    pub rows: StreamBatch,
    /// For each row, the record it comes from; `None` when row `i` is
    /// record `i`.
    pub records: Option<Vec<u32>>,
}

/// Turns Arrow batches into records, one per line.
pub trait RecordEncoder: Send {
    /// Appends the encoded rows of `batch` to `out` (one record per line, each
    /// terminated by `\n`), all as inserts.
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), FormatError>;

    /// Like [`Self::encode`], for rows of any kind: a changelog format
    /// writes each row's kind; the others write inserts only.
    fn encode_changes(
        &mut self,
        batch: &StreamBatch,
        out: &mut Vec<u8>,
    ) -> Result<(), FormatError> {
        insert_only(batch, self.format())?;
        self.encode(batch.data(), out)
    }

    /// Encodes each row of `batch` as one message (a Kafka record): `out`
    /// receives the bytes and `messages` the range of `out` each row took.
    fn encode_messages(
        &mut self,
        batch: &StreamBatch,
        out: &mut Vec<u8>,
        messages: &mut Vec<std::ops::Range<usize>>,
    ) -> Result<(), FormatError> {
        messages::encode_lines(self, batch, out, messages)
    }

    /// The format's name, for messages.
    fn format(&self) -> &'static str;
}

/// Refuses a batch with rows other than inserts, for a format that writes
/// no row kinds.
pub(crate) fn insert_only(batch: &StreamBatch, format: &'static str) -> Result<(), FormatError> {
    let not_insert = (0..batch.num_rows())
        .map(|row| batch.row_kind(row))
        .find(|kind| *kind != weir_common::RowKind::Insert);
    match not_insert {
        None => Ok(()),
        Some(kind) => Err(FormatError::InsertOnly {
            format,
            kind: kind.to_string(),
        }),
    }
}

/// Typed access to one format's options, naming the key in every error.
struct OptionReader<'a> {
    options: &'a BTreeMap<String, String>,
}

impl OptionReader<'_> {
    fn string(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, FormatError> {
        match self.string(key) {
            None => Ok(default),
            Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
            Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
            Some(value) => Err(invalid(key, value, "expected 'true' or 'false'")),
        }
    }

    /// One of `choices`, compared case-insensitively; returns the canonical spelling.
    fn choice(
        &self,
        key: &str,
        choices: &[&'static str],
        default: &'static str,
    ) -> Result<&'static str, FormatError> {
        match self.string(key) {
            None => Ok(default),
            Some(value) => choices
                .iter()
                .find(|choice| choice.eq_ignore_ascii_case(value))
                .copied()
                .ok_or_else(|| {
                    invalid(
                        key,
                        value,
                        &format!("expected one of {}", quoted_list(choices)),
                    )
                }),
        }
    }

    /// A single ASCII character, after Java-style unescaping so that the two
    /// characters `\t` (as written in a SQL string literal) mean a tab, as in Flink.
    fn ascii_char(&self, key: &str) -> Result<Option<u8>, FormatError> {
        let Some(value) = self.string(key) else {
            return Ok(None);
        };
        let unescaped = unescape_java(value).ok_or_else(|| {
            invalid(
                key,
                value,
                "the value has an invalid escape sequence; use e.g. '\\t' or '\\u0001'",
            )
        })?;
        let mut chars = unescaped.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii() => Ok(Some(c as u8)),
            _ => Err(invalid(
                key,
                value,
                "expected a single ASCII character (escapes such as '\\t' are allowed)",
            )),
        }
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> FormatError {
    FormatError::InvalidOption {
        key: key.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("'{item}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves Java string escapes (`\t`, `\n`, `\r`, `\f`, `\b`, `\0`, `\\`, `\'`,
/// `\"`, `\uXXXX`), as Flink does for delimiter-like options. `None` if malformed.
fn unescape_java(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = match chars.next()? {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\u{c}',
            'b' => '\u{8}',
            '0' => '\0',
            '\\' => '\\',
            '\'' => '\'',
            '"' => '"',
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                if hex.len() != 4 {
                    return None;
                }
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        };
        out.push(escaped);
    }
    Some(out)
}

/// The format `format` with the options `pairs`, for tests.
#[cfg(test)]
pub(crate) fn test_config(format: &str, pairs: &[(&str, &str)]) -> FormatConfig {
    let options: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    FormatConfig::from_options(format, &options).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_format_lists_valid_formats() {
        let err = FormatConfig::from_options("protobuf", &options(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown format 'protobuf'; valid formats are: csv, json, raw, parquet, debezium-json, avro"
        );
    }

    #[test]
    fn unknown_option_lists_valid_keys() {
        let err =
            FormatConfig::from_options("csv", &options(&[("csv.delimiter", ";")])).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("unsupported option 'csv.delimiter' for format 'csv'"),
            "{message}"
        );
        assert!(message.contains("csv.field-delimiter"), "{message}");
    }

    #[test]
    fn other_formats_and_connector_options_are_ignored() {
        let config = FormatConfig::from_options(
            "json",
            &options(&[
                ("connector", "filesystem"),
                ("path", "/tmp/x"),
                ("csv.bogus", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(config.kind(), FormatKind::Json);
        assert!(!config.ignore_parse_errors());
    }

    #[test]
    fn bad_boolean_names_the_key() {
        let err =
            FormatConfig::from_options("json", &options(&[("json.ignore-parse-errors", "yes")]))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value 'yes' for option 'json.ignore-parse-errors': expected 'true' or 'false'"
        );
    }

    #[test]
    fn parquet_options_are_validated_and_readable() {
        let config =
            FormatConfig::from_options("parquet", &options(&[("parquet.compression", "SNAPPY")]))
                .unwrap();
        assert_eq!(config.kind(), FormatKind::Parquet);
        assert_eq!(config.option("parquet.compression"), Some("SNAPPY"));
        assert!(
            config
                .create_decoder(std::sync::Arc::new(arrow::datatypes::Schema::empty()), None)
                .is_err()
        );
        let err =
            FormatConfig::from_options("parquet", &options(&[("parquet.x", "1")])).unwrap_err();
        assert!(matches!(err, FormatError::UnknownOption { .. }));
    }

    #[test]
    fn option_keys_are_per_format() {
        assert!(FormatConfig::option_keys(FormatKind::Csv).contains(&"csv.null-literal"));
        assert!(
            FormatConfig::option_keys(FormatKind::Json).contains(&"json.fail-on-missing-field")
        );
        assert!(FormatConfig::option_keys(FormatKind::Raw).contains(&"raw.charset"));
    }

    #[test]
    fn java_unescape() {
        assert_eq!(unescape_java("\\t").as_deref(), Some("\t"));
        assert_eq!(unescape_java("\\u0001").as_deref(), Some("\u{1}"));
        assert_eq!(unescape_java("|").as_deref(), Some("|"));
        assert_eq!(unescape_java("\\q"), None);
        assert_eq!(unescape_java("\\u00"), None);
    }
}
