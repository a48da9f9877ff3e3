//! The crate's single error type.
//!
//! Configuration errors (`UnknownFormat`, `UnknownOption`, `InvalidOption`,
//! `UnsupportedType`) surface when a table is declared, so they name the option
//! or column and list what would be accepted. `Malformed` surfaces while data
//! flows and names the source, line and byte offset of the offending record so
//! the user can find it, plus the option that would skip such records.

use arrow::error::ArrowError;

/// Everything that can go wrong while configuring a format or moving records through it.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The `'format'` option names no format this engine knows.
    #[error("unknown format '{format}'; valid formats are: {valid}")]
    UnknownFormat {
        /// The value given for `'format'`.
        format: String,
        /// Comma-separated list of the accepted format names.
        valid: String,
    },

    /// A `<format>.xxx` option that the format does not define.
    #[error("unsupported option '{key}' for format '{format}'; valid options are: {valid}")]
    UnknownOption {
        /// The format the option was meant for.
        format: String,
        /// The full option key as written in the WITH clause.
        key: String,
        /// Comma-separated list of the keys the format accepts.
        valid: String,
    },

    /// A known option with a value that cannot be used.
    #[error("invalid value '{value}' for option '{key}': {expected}")]
    InvalidOption {
        /// The full option key.
        key: String,
        /// The rejected value.
        value: String,
        /// What would be accepted instead.
        expected: String,
    },

    /// A column whose type the format cannot read or write.
    #[error("format '{format}' does not support column '{column}' of type {data_type}; {hint}")]
    UnsupportedType {
        /// The format name.
        format: String,
        /// The column name.
        column: String,
        /// The column's SQL type.
        data_type: String,
        /// What to do instead.
        hint: String,
    },

    /// A format that is not line oriented (parquet) asked for a line decoder or encoder.
    #[error(
        "format '{format}' is a file format and has no line-oriented {what}; \
         the connector must read and write it as whole files"
    )]
    NotLineOriented {
        /// The format name.
        format: String,
        /// `"decoder"` or `"encoder"`.
        what: &'static str,
    },

    /// A record that could not be decoded.
    #[error(
        "malformed {format} record in '{source_name}' {}(byte {byte_offset}): {message}{hint}",
        line.map(|l| format!("at line {l} ")).unwrap_or_default()
    )]
    Malformed {
        /// `CSV`, `JSON`, `Debezium JSON` or `raw`.
        format: &'static str,
        /// Where the chunk came from (file path, topic/partition, ...).
        source_name: String,
        /// 1-based line number of the record, when the chunk's first line is known.
        line: Option<u64>,
        /// Byte offset of the record's first byte within the source.
        byte_offset: u64,
        /// What is wrong with the record.
        message: String,
        /// Advice appended to the message, e.g. which option skips such records.
        hint: String,
    },

    /// A message (e.g. a Kafka record) that could not be decoded.
    #[error("malformed {format} record {location}: {message}{hint}")]
    MalformedMessage {
        /// `CSV`, `JSON` or `raw`.
        format: &'static str,
        /// Where the message is, e.g. "in topic 'bids' partition 0 at offset 17".
        location: String,
        /// What is wrong with the record.
        message: String,
        /// Advice appended to the message, e.g. which option skips such records.
        hint: String,
    },

    /// A file lacks the field of a NOT NULL column.
    #[error(
        "the file has no field '{column}' for NOT NULL column '{column}'; declare the column \
         without NOT NULL to read it as NULL"
    )]
    MissingField {
        /// The column name.
        column: String,
    },

    /// A changelog row given to a format that writes inserts only.
    #[error(
        "format '{format}' writes inserts only, but received a {kind} row; \
         use a changelog format such as 'debezium-json'"
    )]
    InsertOnly {
        /// The format name.
        format: &'static str,
        /// The row's kind, e.g. `-U`.
        kind: String,
    },

    /// A changelog batch that does not hold together.
    #[error(transparent)]
    Changelog(#[from] weir_common::CommonError),

    /// An Avro failure that is not tied to a particular record.
    #[error("avro error: {0}")]
    Avro(#[from] arrow_avro::errors::AvroError),

    /// An Arrow failure that is not tied to a particular record (e.g. while encoding).
    #[error("arrow error: {0}")]
    Arrow(#[from] ArrowError),
}
