//! Flink's `raw` format: each line is the value of the table's single column.
//!
//! The column is STRING (text decoded with `raw.charset`) or BYTES (the line's
//! bytes as they are). Lines are split at `\n` with a trailing `\r` dropped and
//! empty lines skipped, as for the other line formats. Raw has no
//! ignore-parse-errors option in Flink, so text that is not valid in the
//! charset fails the chunk, naming the line.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, RecordBatchOptions, StringBuilder, new_empty_array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::display::{is_null_at, sql_type_name};
use crate::lines::{malformed, split_lines};
use crate::{ChunkOrigin, Decoded, FormatError, OptionReader, RecordDecoder, RecordEncoder};

/// The option keys of the raw format.
pub(crate) const OPTIONS: &[&str] = &["raw.charset", "raw.endianness"];

/// Character sets the raw format can decode and encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
    Ascii,
}

impl Charset {
    fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Latin1 => "ISO-8859-1",
            Charset::Ascii => "US-ASCII",
        }
    }
}

/// Parsed `raw.*` options.
#[derive(Debug, Clone)]
pub(crate) struct RawOptions {
    charset: Charset,
}

impl RawOptions {
    pub(crate) fn parse(reader: &OptionReader<'_>) -> Result<Self, FormatError> {
        let charset = match reader.string("raw.charset") {
            None => Charset::Utf8,
            Some(name) => match name.to_ascii_uppercase().as_str() {
                "UTF-8" | "UTF8" => Charset::Utf8,
                "ISO-8859-1" | "LATIN1" | "ISO8859-1" | "ISO_8859_1" => Charset::Latin1,
                "US-ASCII" | "ASCII" => Charset::Ascii,
                _ => {
                    return Err(crate::invalid(
                        "raw.charset",
                        name,
                        "expected one of 'UTF-8', 'ISO-8859-1', 'US-ASCII'",
                    ));
                }
            },
        };
        // Byte order only matters for numeric raw columns, which Weir does not
        // support; the value is still checked so that typos are caught.
        reader.choice(
            "raw.endianness",
            &["big-endian", "little-endian"],
            "big-endian",
        )?;
        Ok(Self { charset })
    }
}

/// Whether the raw format can hold a column of this type, and whether it is text.
fn raw_column_kind(data_type: &DataType) -> Option<bool> {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(true),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Some(false),
        _ => None,
    }
}

fn check_schema(schema: &SchemaRef) -> Result<bool, FormatError> {
    let unsupported = |column: String, data_type: String| FormatError::UnsupportedType {
        format: "raw".to_string(),
        column,
        data_type,
        hint: "the raw format needs exactly one STRING or BYTES column".to_string(),
    };
    match schema.fields().as_ref() {
        [field] => raw_column_kind(field.data_type())
            .ok_or_else(|| unsupported(field.name().clone(), sql_type_name(field.data_type()))),
        fields => Err(unsupported(
            fields
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
            format!("a row of {} columns", fields.len()),
        )),
    }
}

/// Decodes lines into a single STRING or BYTES column.
pub(crate) struct RawDecoder {
    options: RawOptions,
    /// The column's type.
    data_type: DataType,
    /// Whether the column is STRING (decoded with the charset) rather than BYTES.
    text: bool,
    output_schema: SchemaRef,
}

impl RawDecoder {
    pub(crate) fn try_new(
        options: RawOptions,
        schema: SchemaRef,
        projection: Vec<usize>,
    ) -> Result<Self, FormatError> {
        let text = check_schema(&schema)?;
        let data_type = schema.field(0).data_type().clone();
        Ok(Self {
            options,
            data_type,
            text,
            output_schema: Arc::new(schema.project(&projection)?),
        })
    }

    fn decode_text(
        &self,
        chunk: &[u8],
        spans: &[crate::lines::RecordSpan],
        origin: &ChunkOrigin<'_>,
    ) -> Result<ArrayRef, FormatError> {
        let mut builder = StringBuilder::with_capacity(spans.len(), chunk.len());
        for span in spans {
            let line = &chunk[span.start..span.end];
            let bad = || {
                malformed(
                    "raw",
                    origin,
                    span,
                    format!("the line is not valid {}", self.options.charset.name()),
                    "; set 'raw.charset' to the data's character set, or declare the column as BYTES"
                        .to_string(),
                )
            };
            match self.options.charset {
                Charset::Utf8 => {
                    builder.append_value(std::str::from_utf8(line).map_err(|_| bad())?)
                }
                Charset::Ascii => {
                    if !line.is_ascii() {
                        return Err(bad());
                    }
                    builder.append_value(std::str::from_utf8(line).map_err(|_| bad())?);
                }
                Charset::Latin1 => {
                    let text: String = line.iter().map(|b| char::from(*b)).collect();
                    builder.append_value(text);
                }
            }
        }
        Ok(Arc::new(builder.finish()))
    }
}

impl RecordDecoder for RawDecoder {
    fn decode(&mut self, chunk: &[u8], origin: &ChunkOrigin<'_>) -> Result<Decoded, FormatError> {
        let spans = split_lines(chunk);
        if spans.is_empty() {
            return Ok(Decoded::default());
        }
        self.decode_spans(chunk, &spans, origin)
    }

    /// A message is one value, line breaks and all; an empty one is ''.
    fn decode_record(
        &mut self,
        record: &[u8],
        origin: &ChunkOrigin<'_>,
    ) -> Result<Decoded, FormatError> {
        let whole = crate::lines::RecordSpan {
            start: 0,
            end: record.len(),
            line: 0,
        };
        self.decode_spans(record, &[whole], origin)
    }

    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }
}

impl RawDecoder {
    fn decode_spans(
        &self,
        chunk: &[u8],
        spans: &[crate::lines::RecordSpan],
        origin: &ChunkOrigin<'_>,
    ) -> Result<Decoded, FormatError> {
        let mut columns = Vec::new();
        if !self.output_schema.fields().is_empty() {
            let read = if self.text {
                self.decode_text(chunk, spans, origin)?
            } else {
                let mut builder = BinaryBuilder::with_capacity(spans.len(), chunk.len());
                for span in spans {
                    builder.append_value(&chunk[span.start..span.end]);
                }
                Arc::new(builder.finish()) as ArrayRef
            };
            let column = if read.data_type() == &self.data_type {
                read
            } else {
                cast(&read, &self.data_type)?
            };
            columns.push(column);
        }
        let batch = RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(spans.len())),
        )?;
        Ok(Decoded {
            batches: vec![batch],
            skipped: 0,
        })
    }
}

/// Encodes the single column's values, one per line; NULL is an empty line.
pub(crate) struct RawEncoder {
    options: RawOptions,
}

impl RawEncoder {
    pub(crate) fn try_new(options: RawOptions, schema: SchemaRef) -> Result<Self, FormatError> {
        check_schema(&schema)?;
        Ok(Self { options })
    }

    fn write_text(&self, out: &mut Vec<u8>, text: &str) {
        match self.options.charset {
            Charset::Utf8 => out.extend_from_slice(text.as_bytes()),
            // Like Java's String#getBytes, unmappable characters become '?'.
            Charset::Latin1 => out.extend(text.chars().map(|c| u8::try_from(c).unwrap_or(b'?'))),
            Charset::Ascii => out.extend(
                text.chars()
                    .map(|c| if c.is_ascii() { c as u8 } else { b'?' }),
            ),
        }
    }
}

impl RecordEncoder for RawEncoder {
    fn format(&self) -> &'static str {
        "raw"
    }

    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let column = match batch.columns() {
            [column] => column.clone(),
            _ => new_empty_array(&DataType::Utf8),
        };
        let column = match column.data_type() {
            DataType::LargeUtf8 | DataType::Utf8View => cast(&column, &DataType::Utf8)?,
            DataType::LargeBinary | DataType::BinaryView => cast(&column, &DataType::Binary)?,
            _ => column,
        };
        if let Some(strings) = column.as_any().downcast_ref::<arrow::array::StringArray>() {
            for row in 0..batch.num_rows() {
                if !is_null_at(strings, row) {
                    self.write_text(out, strings.value(row));
                }
                out.push(b'\n');
            }
        } else if let Some(bytes) = column.as_any().downcast_ref::<arrow::array::BinaryArray>() {
            for row in 0..batch.num_rows() {
                if !is_null_at(bytes, row) {
                    out.extend_from_slice(bytes.value(row));
                }
                out.push(b'\n');
            }
        } else {
            return Err(FormatError::UnsupportedType {
                format: "raw".to_string(),
                column: batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                data_type: sql_type_name(column.data_type()),
                hint: "the raw format needs exactly one STRING or BYTES column".to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{AsArray, BinaryArray, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::FormatConfig;

    fn config(pairs: &[(&str, &str)]) -> Result<FormatConfig, FormatError> {
        let options: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        FormatConfig::from_options("raw", &options)
    }

    fn single(data_type: DataType) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("line", data_type, true)]))
    }

    fn origin() -> ChunkOrigin<'static> {
        ChunkOrigin {
            source: "logs/app.log",
            byte_offset: 100,
            first_line: Some(1),
        }
    }

    #[test]
    fn lines_become_string_rows() {
        let mut decoder = config(&[])
            .unwrap()
            .create_decoder(single(DataType::Utf8), None)
            .unwrap();
        let decoded = decoder
            .decode(b"first line\r\n\nsecond, with comma\n", &origin())
            .unwrap();
        let values: Vec<&str> = decoded.batches[0]
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(values, vec!["first line", "second, with comma"]);
        let mut counting = config(&[])
            .unwrap()
            .create_decoder(single(DataType::Utf8), Some(vec![]))
            .unwrap();
        let decoded = counting.decode(b"a\nb\nc", &origin()).unwrap();
        assert_eq!(decoded.batches[0].num_rows(), 3);
    }

    #[test]
    fn charsets() {
        let mut utf8 = config(&[])
            .unwrap()
            .create_decoder(single(DataType::Utf8), None)
            .unwrap();
        let err = utf8
            .decode(b"ok\ncaf\xe9\n", &origin())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("malformed raw record in 'logs/app.log' at line 2 (byte 103): the line is not valid UTF-8"),
            "{err}"
        );
        let latin1 = config(&[("raw.charset", "ISO-8859-1")]).unwrap();
        let mut decoder = latin1
            .create_decoder(single(DataType::LargeUtf8), None)
            .unwrap();
        let decoded = decoder.decode(b"caf\xe9\n", &origin()).unwrap();
        assert_eq!(
            decoded.batches[0].column(0).as_string::<i64>().value(0),
            "café"
        );
        let batch = RecordBatch::try_new(
            single(DataType::Utf8),
            vec![Arc::new(StringArray::from(vec![Some("café€"), None]))],
        )
        .unwrap();
        let mut out = Vec::new();
        latin1
            .create_encoder(single(DataType::Utf8))
            .unwrap()
            .encode(&batch, &mut out)
            .unwrap();
        assert_eq!(out, b"caf\xe9?\n\n");
        let err = config(&[("raw.charset", "EBCDIC")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'raw.charset'"), "{err}");
        assert!(config(&[("raw.endianness", "middle")]).is_err());
        assert!(config(&[("raw.endianness", "little-endian")]).is_ok());
    }

    #[test]
    fn bytes_round_trip() {
        let config = config(&[]).unwrap();
        let batch = RecordBatch::try_new(
            single(DataType::Binary),
            vec![Arc::new(BinaryArray::from(vec![&[0u8, 0xff, b'a'][..]]))],
        )
        .unwrap();
        let mut out = Vec::new();
        config
            .create_encoder(batch.schema())
            .unwrap()
            .encode(&batch, &mut out)
            .unwrap();
        let mut decoder = config.create_decoder(batch.schema(), None).unwrap();
        let decoded = decoder.decode(&out, &origin()).unwrap();
        assert_eq!(decoded.batches[0], batch);
    }

    #[test]
    fn only_one_text_or_bytes_column() {
        let config = config(&[]).unwrap();
        let two = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let err = config
            .create_decoder(two, None)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "format 'raw' does not support column 'a, b' of type a row of 2 columns; \
                 the raw format needs exactly one STRING or BYTES column"
            )
        );
        assert!(config.create_encoder(single(DataType::Int64)).is_err());
    }
}
