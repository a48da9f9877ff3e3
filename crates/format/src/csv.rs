//! Flink's `csv` format: options, decoder and encoder.
//!
//! Decoding hands the whole chunk to arrow-csv's vectorised decoder. Flink
//! reads an empty field as `''` for STRING/BYTES columns but as NULL for every
//! other type, while arrow applies one NULL pattern to all columns; so text
//! columns are read with the same pass and their NULLs turned back into `''`,
//! or, when `csv.null-literal` is set (which makes both `''` and NULL
//! meaningful for text), text and non-text columns are read in two passes with
//! different NULL patterns.
//!
//! When the fast path fails, csv-core (the parser arrow-csv itself uses, so
//! record boundaries agree) cuts the chunk into records and the shared
//! bisection finds the bad ones. Without `csv.ignore-parse-errors` the first
//! bad record fails the chunk, naming the column and value that do not parse;
//! with it, Flink's rule applies: fields that do not parse become NULL, and
//! records that cannot be split into fields at all are skipped and counted.
//!
//! Encoding writes one line per row with Flink's spellings (see
//! [`crate::display`]), quoting a field only when it has to be.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatchOptions, StringArray, new_null_array,
};
use arrow::compute::concat_batches;
use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Decoder;
use arrow::datatypes::{
    ArrowNativeType, DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use csv_core::ReadRecordResult;
use regex::Regex;

use crate::csv_fast;
use crate::display::{Dialect, TextStyle, is_null_at, sql_type_name, write_value};
use crate::lines::{
    BadRecord, Conversion, RecordSpan, arrow_message, is_text_like, malformed, max_records,
    nulls_to_empty, recover,
};
use crate::{ChunkOrigin, Decoded, FormatError, OptionReader, RecordDecoder, RecordEncoder};

/// The option keys of the csv format.
pub(crate) const OPTIONS: &[&str] = &[
    "csv.field-delimiter",
    "csv.disable-quote-character",
    "csv.quote-character",
    "csv.allow-comments",
    "csv.ignore-parse-errors",
    "csv.array-element-delimiter",
    "csv.escape-character",
    "csv.null-literal",
    "csv.write-bigdecimal-in-scientific-notation",
];

/// Stands in for the quote character when quoting is disabled: arrow-csv has
/// no switch to turn quoting off, and a NUL byte does not occur in text data.
const NO_QUOTE: u8 = 0;

/// Parsed `csv.*` options.
#[derive(Debug, Clone)]
pub(crate) struct CsvOptions {
    delimiter: u8,
    /// `None` when `csv.disable-quote-character` is set.
    quote: Option<u8>,
    escape: Option<u8>,
    allow_comments: bool,
    pub ignore_parse_errors: bool,
    null_literal: Option<String>,
    array_element_delimiter: String,
    scientific_decimals: bool,
}

impl CsvOptions {
    pub(crate) fn parse(reader: &OptionReader<'_>) -> Result<Self, FormatError> {
        let delimiter = reader.ascii_char("csv.field-delimiter")?.unwrap_or(b',');
        let disable_quote = reader.bool("csv.disable-quote-character", false)?;
        let quote = reader.ascii_char("csv.quote-character")?;
        if disable_quote && let Some(value) = reader.string("csv.quote-character") {
            return Err(crate::invalid(
                "csv.quote-character",
                value,
                "it cannot be set while 'csv.disable-quote-character' is 'true'; remove one of the two options",
            ));
        }
        let quote = if disable_quote {
            None
        } else {
            Some(quote.unwrap_or(b'"'))
        };
        let escape = reader.ascii_char("csv.escape-character")?;
        if matches!(delimiter, b'\n' | b'\r') || Some(delimiter) == quote {
            return Err(crate::invalid(
                "csv.field-delimiter",
                reader.string("csv.field-delimiter").unwrap_or(","),
                "the delimiter must differ from the quote character and from line breaks",
            ));
        }
        Ok(Self {
            delimiter,
            quote,
            escape,
            allow_comments: reader.bool("csv.allow-comments", false)?,
            ignore_parse_errors: reader.bool("csv.ignore-parse-errors", false)?,
            null_literal: reader.string("csv.null-literal").map(str::to_string),
            array_element_delimiter: reader
                .string("csv.array-element-delimiter")
                .unwrap_or(";")
                .to_string(),
            scientific_decimals: reader
                .bool("csv.write-bigdecimal-in-scientific-notation", true)?,
        })
    }

    /// The csv-core parser arrow-csv builds from the same settings.
    fn core_reader(&self) -> csv_core::Reader {
        let mut builder = csv_core::ReaderBuilder::new();
        builder
            .delimiter(self.delimiter)
            .quote(self.quote.unwrap_or(NO_QUOTE))
            .escape(self.escape)
            .comment(self.allow_comments.then_some(b'#'));
        builder.build()
    }
}

/// One arrow-csv decoding pass over a chunk: a group of columns sharing a NULL pattern.
#[derive(Debug, Clone)]
struct Pass {
    /// Schema indices read by this pass.
    projection: Vec<usize>,
    /// The read schema of those columns: what a pass decodes.
    read_output: SchemaRef,
    /// Where each column read goes and how it is finished.
    slots: Vec<Slot>,
    /// The NULL pattern; `None` is arrow's default (the empty field).
    null_regex: Option<Regex>,
}

/// The destination of one column read by a [`Pass`].
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Position in the batch being built.
    position: usize,
    /// From the stand-in read type to the real type.
    conversion: Conversion,
    /// Turn NULLs back into `''`: a text column whose only NULL marker is the
    /// empty field (no `csv.null-literal`).
    fill_empty: bool,
}

/// Decodes CSV lines into batches of the projected schema.
pub(crate) struct CsvDecoder {
    options: CsvOptions,
    /// The table schema with stand-in read types, all nullable.
    read_schema: SchemaRef,
    output_schema: SchemaRef,
    /// Schema index of each output column.
    projection: Vec<usize>,
    /// Per output column: how its stand-in read type becomes the real type.
    conversions: Vec<Conversion>,
    passes: Vec<Pass>,
    /// NULL patterns when `csv.null-literal` is set.
    literal_patterns: Option<LiteralPatterns>,
}

/// The NULL patterns arrow-csv gets when `csv.null-literal` is set.
#[derive(Debug, Clone)]
struct LiteralPatterns {
    /// Text columns: only the literal (an empty field is `''`).
    text: Regex,
    /// Other columns: the literal or the empty field.
    other: Regex,
}

impl CsvDecoder {
    pub(crate) fn try_new(
        options: CsvOptions,
        schema: SchemaRef,
        projection: Vec<usize>,
    ) -> Result<Self, FormatError> {
        let mut read_fields = Vec::with_capacity(schema.fields().len());
        let mut conversions_by_index = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let (conversion, read_type) = Conversion::for_type(field.data_type());
            if !arrow_csv_reads(&read_type) && projection.contains(&read_fields.len()) {
                return Err(FormatError::UnsupportedType {
                    format: "csv".to_string(),
                    column: field.name().clone(),
                    data_type: sql_type_name(field.data_type()),
                    hint: "use the 'json' format for nested types, or declare the column as STRING"
                        .to_string(),
                });
            }
            // Unprojected columns are only split, never parsed, so any type will do.
            let read_type = if arrow_csv_reads(&read_type) {
                read_type
            } else {
                DataType::Utf8
            };
            read_fields.push(Field::new(field.name(), read_type, true));
            conversions_by_index.push(conversion);
        }
        let read_schema = Arc::new(Schema::new(read_fields));
        let output_schema = Arc::new(schema.project(&projection)?);
        let conversions = projection
            .iter()
            .map(|i| conversions_by_index[*i])
            .collect();

        let literal_patterns = match &options.null_literal {
            Some(literal) => {
                let escaped = regex::escape(literal);
                let text = Regex::new(&format!("^(?:{escaped})$"));
                let other = Regex::new(&format!("^(?:|{escaped})$"));
                match (text, other) {
                    (Ok(text), Ok(other)) => Some(LiteralPatterns { text, other }),
                    _ => {
                        return Err(crate::invalid(
                            "csv.null-literal",
                            literal,
                            "the literal is too long; use a shorter NULL marker",
                        ));
                    }
                }
            }
            None => None,
        };
        let mut decoder = Self {
            options,
            read_schema,
            output_schema,
            projection,
            conversions,
            passes: Vec::new(),
            literal_patterns,
        };
        let all: Vec<usize> = (0..decoder.projection.len()).collect();
        decoder.passes = match &decoder.literal_patterns {
            None => vec![decoder.pass_for(&all, false)],
            Some(_) => {
                let (text, other): (Vec<usize>, Vec<usize>) =
                    all.iter().partition(|out| decoder.is_text_output(**out));
                let passes: Vec<Pass> = [text, other]
                    .iter()
                    .filter(|outputs| !outputs.is_empty())
                    .map(|outputs| decoder.pass_for(outputs, false))
                    .collect();
                // An empty projection still needs a pass to count the rows.
                if passes.is_empty() {
                    vec![decoder.pass_for(&[], false)]
                } else {
                    passes
                }
            }
        };
        Ok(decoder)
    }

    fn is_text_output(&self, out: usize) -> bool {
        is_text_like(self.output_schema.field(out).data_type())
    }

    /// A pass reading output columns `outputs`, which must all be text or all be
    /// non-text, into positions `0..` of a probe batch when `probe` is set, else
    /// into their output positions.
    fn pass_for(&self, outputs: &[usize], probe: bool) -> Pass {
        let text = outputs.first().is_some_and(|out| self.is_text_output(*out));
        let null_regex = self.literal_patterns.as_ref().map(|patterns| {
            if text {
                patterns.text.clone()
            } else {
                patterns.other.clone()
            }
        });
        let slots = outputs
            .iter()
            .enumerate()
            .map(|(i, out)| Slot {
                position: if probe { i } else { *out },
                conversion: self.conversions[*out],
                fill_empty: self.literal_patterns.is_none() && self.is_text_output(*out),
            })
            .collect();
        let projection: Vec<usize> = outputs.iter().map(|out| self.projection[*out]).collect();
        Pass {
            read_output: Arc::new(Schema::new(
                projection
                    .iter()
                    .map(|i| self.read_schema.field(*i).clone())
                    .collect::<Vec<_>>(),
            )),
            projection,
            slots,
            null_regex,
        }
    }

    fn arrow_decoder(&self, pass: &Pass, batch_size: usize, truncated_rows: bool) -> Decoder {
        let mut builder = ReaderBuilder::new(self.read_schema.clone())
            .with_header(false)
            .with_delimiter(self.options.delimiter)
            .with_quote(self.options.quote.unwrap_or(NO_QUOTE))
            .with_projection(pass.projection.clone())
            .with_batch_size(batch_size)
            .with_truncated_rows(truncated_rows);
        if let Some(escape) = self.options.escape {
            builder = builder.with_escape(escape);
        }
        if self.options.allow_comments {
            builder = builder.with_comment(b'#');
        }
        if let Some(regex) = &pass.null_regex {
            builder = builder.with_null_regex(regex.clone());
        }
        builder.build_decoder()
    }

    /// Decodes `bytes` (whole records) with `passes` into one batch of
    /// `output_schema` (the decoder's, or a one-column probe), `None` if it holds
    /// no record.
    fn decode_bytes(
        &self,
        bytes: &[u8],
        passes: &[Pass],
        output_schema: &SchemaRef,
        truncated_rows: bool,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        let mut columns: Vec<Option<ArrayRef>> = vec![None; output_schema.fields().len()];
        let mut num_rows = 0;
        for pass in passes {
            let batch = match self.decode_plain(bytes, pass, truncated_rows) {
                Some(batch) if batch.num_rows() == 0 => return Ok(None),
                Some(batch) => batch,
                None => {
                    let batch_size = max_records(bytes);
                    let mut decoder = self.arrow_decoder(pass, batch_size, truncated_rows);
                    let batches = run_decoder(&mut decoder, bytes)?;
                    match batches.len() {
                        0 => return Ok(None),
                        1 => batches.into_iter().next().ok_or_else(no_batch)?,
                        _ => concat_batches(&batches[0].schema(), &batches)?,
                    }
                }
            };
            num_rows = batch.num_rows();
            for (read, slot) in pass.slots.iter().enumerate() {
                let mut column = batch.column(read).clone();
                if slot.fill_empty {
                    column = nulls_to_empty(column);
                }
                if let Some(target) = columns.get_mut(slot.position) {
                    *target = Some(slot.conversion.apply(column)?);
                }
            }
        }
        let columns = columns
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(no_batch)?;
        let batch = RecordBatch::try_new_with_options(
            output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(num_rows)),
        )?;
        Ok(Some(batch))
    }

    /// [`csv_fast`]'s batch for a pass over a plain chunk, when the pass
    /// reads with arrow's default NULL (the empty field) and records must
    /// have all their fields; `None` sends the chunk to arrow-csv.
    fn decode_plain(&self, bytes: &[u8], pass: &Pass, truncated_rows: bool) -> Option<RecordBatch> {
        if truncated_rows || pass.null_regex.is_some() || self.options.allow_comments {
            return None;
        }
        let plain = csv_fast::Plain {
            delimiter: self.options.delimiter,
            // Quoting off is a NUL quote to arrow-csv: such chunks go there too.
            quote: Some(self.options.quote.unwrap_or(NO_QUOTE)),
            escape: self.options.escape,
        };
        csv_fast::decode(
            bytes,
            plain,
            &self.read_schema,
            &pass.projection,
            &pass.read_output,
        )
    }

    /// Decodes output column `out` of a single record on its own.
    fn decode_one_column(
        &self,
        record: &[u8],
        out: usize,
        truncated_rows: bool,
    ) -> Result<ArrayRef, ArrowError> {
        let pass = self.pass_for(&[out], true);
        let schema = Arc::new(Schema::new(vec![self.output_schema.field(out).clone()]));
        let batch = self
            .decode_bytes(record, &[pass], &schema, truncated_rows)?
            .ok_or_else(no_batch)?;
        Ok(batch.column(0).clone())
    }

    /// Cuts `chunk` into records exactly as arrow-csv will (same csv-core settings).
    fn split_records(&self, chunk: &[u8]) -> Vec<RecordSpan> {
        let mut reader = self.options.core_reader();
        let mut scratch = vec![0u8; 8 * 1024];
        let mut ends = vec![0usize; 256];
        let mut spans = Vec::new();
        let mut pos = 0;
        let mut record_start = 0;
        let mut line = 0u64;
        let mut counted_to = 0;
        loop {
            let (result, consumed, _, _) =
                reader.read_record(&chunk[pos..], &mut scratch, &mut ends);
            pos += consumed;
            match result {
                ReadRecordResult::Record => {
                    let start = self.skip_non_records(chunk, record_start, pos);
                    line += memchr::memchr_iter(b'\n', &chunk[counted_to..start]).count() as u64;
                    counted_to = start;
                    if start < pos {
                        spans.push(RecordSpan {
                            start,
                            end: pos,
                            line,
                        });
                    }
                    record_start = pos;
                }
                ReadRecordResult::End => break,
                // Field data is not needed here, so full buffers are simply reused.
                ReadRecordResult::InputEmpty
                | ReadRecordResult::OutputFull
                | ReadRecordResult::OutputEndsFull => {}
            }
        }
        spans
    }

    /// Skips the blank and comment lines csv-core folds into the front of a record.
    fn skip_non_records(&self, chunk: &[u8], mut start: usize, end: usize) -> usize {
        while start < end {
            match chunk[start] {
                b'\n' | b'\r' => start += 1,
                b'#' if self.options.allow_comments => {
                    start = memchr::memchr(b'\n', &chunk[start..end])
                        .map_or(end, |offset| start + offset + 1);
                }
                _ => break,
            }
        }
        start
    }

    /// The fields of one record as text, as csv-core splits them.
    fn record_fields(&self, record: &[u8]) -> Vec<String> {
        let mut reader = self.options.core_reader();
        let mut data = vec![0u8; record.len() + 1];
        let mut ends = vec![0usize; record.len() + 2];
        let (mut pos, mut written, mut ended) = (0, 0, 0);
        // Bounded: each call consumes input or, once input is empty, finishes the record.
        for _ in 0..record.len() + 3 {
            let (result, consumed, out, end) =
                reader.read_record(&record[pos..], &mut data[written..], &mut ends[ended..]);
            pos += consumed;
            written += out;
            ended += end;
            match result {
                ReadRecordResult::InputEmpty => {}
                _ => break,
            }
        }
        let mut fields = Vec::with_capacity(ended);
        let mut field_start = 0;
        for end in &ends[..ended] {
            let end = (*end).min(written);
            fields.push(String::from_utf8_lossy(&data[field_start.min(end)..end]).into_owned());
            field_start = end;
        }
        fields
    }

    /// Explains why `record` does not decode.
    fn diagnose(&self, record: &[u8], error: &ArrowError) -> String {
        let fields = self.record_fields(record);
        let width = self.read_schema.fields().len();
        if fields.len() != width {
            return format!(
                "the record has {} fields but the table has {width} columns",
                fields.len()
            );
        }
        for (out, index) in self.projection.iter().enumerate() {
            if self.decode_one_column(record, out, false).is_err() {
                let field = self.output_schema.field(out);
                let text = fields.get(*index).map_or("", String::as_str);
                return format!(
                    "cannot parse '{text}' as {} for column '{}'",
                    sql_type_name(field.data_type()),
                    field.name()
                );
            }
        }
        if std::str::from_utf8(record).is_err() {
            return "the record is not valid UTF-8".to_string();
        }
        arrow_message(error)
    }

    /// Flink's `csv.ignore-parse-errors`: fields that do not parse (or are
    /// missing) become NULL; records that cannot be split into fields are dropped.
    fn repair(&self, record: &[u8]) -> BadRecord {
        if std::str::from_utf8(record).is_err() {
            return BadRecord::Skip;
        }
        let present = self.record_fields(record).len();
        if present > self.read_schema.fields().len() {
            return BadRecord::Skip;
        }
        let columns: Vec<ArrayRef> = self
            .projection
            .iter()
            .enumerate()
            .map(|(out, index)| {
                let data_type = self.output_schema.field(out).data_type();
                if *index >= present {
                    return new_null_array(data_type, 1);
                }
                match self.decode_one_column(record, out, true) {
                    Ok(column) if column.len() == 1 => column,
                    _ => new_null_array(data_type, 1),
                }
            })
            .collect();
        match RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(1)),
        ) {
            Ok(batch) => BadRecord::Replace(batch),
            Err(_) => BadRecord::Skip,
        }
    }
}

impl RecordDecoder for CsvDecoder {
    fn decode(&mut self, chunk: &[u8], origin: &ChunkOrigin<'_>) -> Result<Decoded, FormatError> {
        if let Ok(batch) = self.decode_bytes(chunk, &self.passes, &self.output_schema, false) {
            return Ok(Decoded {
                batches: batch.into_iter().collect(),
                skipped: 0,
            });
        }
        let spans = self.split_records(chunk);
        let this = &*self;
        let recovered = recover(
            chunk,
            &spans,
            &this.output_schema,
            &mut |bytes| this.decode_bytes(bytes, &this.passes, &this.output_schema, false),
            &mut |span, error| {
                let record = &chunk[span.start..span.end];
                if this.options.ignore_parse_errors {
                    Ok(this.repair(record))
                } else {
                    Err(malformed(
                        "CSV",
                        origin,
                        span,
                        this.diagnose(record, &error),
                        "; fix the record, or set 'csv.ignore-parse-errors' = 'true' to read \
                         unparsable fields as NULL and skip unreadable records"
                            .to_string(),
                    ))
                }
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
}

fn no_batch() -> ArrowError {
    ArrowError::CsvError("the CSV decoder produced no batch for a record".to_string())
}

/// Whether arrow-csv can parse a column of this type.
fn arrow_csv_reads(data_type: &DataType) -> bool {
    match data_type {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _)
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Timestamp(_, _)
        | DataType::Utf8
        | DataType::Utf8View => true,
        DataType::Dictionary(key, value) => key.is_integer() && value.as_ref() == &DataType::Utf8,
        _ => false,
    }
}

/// Feeds all of `bytes` through `decoder`, flushing whenever a batch fills up.
fn run_decoder(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let consumed = decoder.decode(&bytes[pos..])?;
        pos += consumed;
        if decoder.capacity() == 0 {
            batches.extend(decoder.flush()?);
        } else if consumed == 0 {
            return Err(ArrowError::CsvError(
                "the CSV decoder stopped making progress".to_string(),
            ));
        }
    }
    // An empty buffer tells csv-core the input ended, completing a last record
    // that has no line terminator.
    decoder.decode(&[])?;
    batches.extend(decoder.flush()?);
    Ok(batches)
}

/// Encodes batches as CSV lines.
pub(crate) struct CsvEncoder {
    options: CsvOptions,
    /// The bytes that make a field need quotes, by value.
    special: [bool; 256],
    scratch: String,
}

/// How the values of one column of a batch are written.
enum ColumnText<'a> {
    /// Strings none of which needs quotes, written as they are.
    Plain(&'a StringArray),
    /// Integers, when the special bytes have no digit nor `-`.
    Int64(&'a Int64Array),
    /// Rendered as text first, then quoted if need be.
    Rendered,
    /// Timestamps, rendered like that, where a row with the value of the
    /// row before copies its field: a stream's rows come in bursts of one
    /// time (Nexmark's ten thousand a millisecond), and formatting dates and
    /// clocks was a seventh of writing them.
    Timestamps {
        values: &'a [i64],
        last: Option<LastField>,
    },
}

/// The value and the written bytes of the last field of a column.
#[derive(Default)]
struct LastField {
    value: i64,
    bytes: Vec<u8>,
}

/// The raw values of a timestamp column of any unit.
fn timestamp_values(column: &dyn Array) -> Option<&[i64]> {
    let DataType::Timestamp(unit, _) = column.data_type() else {
        return None;
    };
    Some(match unit {
        TimeUnit::Second => column.as_primitive_opt::<TimestampSecondType>()?.values(),
        TimeUnit::Millisecond => column
            .as_primitive_opt::<TimestampMillisecondType>()?
            .values(),
        TimeUnit::Microsecond => column
            .as_primitive_opt::<TimestampMicrosecondType>()?
            .values(),
        TimeUnit::Nanosecond => column
            .as_primitive_opt::<TimestampNanosecondType>()?
            .values(),
    })
}

impl CsvEncoder {
    pub(crate) fn new(options: CsvOptions) -> Self {
        let mut special = [false; 256];
        for byte in [
            Some(options.delimiter),
            Some(b'\n'),
            Some(b'\r'),
            options.quote,
            options.escape,
        ]
        .into_iter()
        .flatten()
        {
            special[usize::from(byte)] = true;
        }
        Self {
            options,
            special,
            scratch: String::new(),
        }
    }

    fn needs_quotes(&self, text: &str, first_in_record: bool) -> bool {
        text.bytes().any(|b| self.special[usize::from(b)])
            || (first_in_record && self.options.allow_comments && text.starts_with('#'))
    }

    /// How column `i` of `columns` is written. Types are told apart once
    /// per column rather than per value, and a string column's bytes are
    /// checked for quoting in one pass: row by row, the checks and the
    /// formatting machinery took most of writing a CSV file.
    fn column_text<'a>(&self, columns: &'a [ArrayRef], i: usize) -> ColumnText<'a> {
        let column = columns[i].as_ref();
        // A lone empty field, or a `#` that starts a line, needs quotes of its own.
        let record_rules = columns.len() == 1 || (i == 0 && self.options.allow_comments);
        if let Some(strings) = column.as_string_opt::<i32>()
            && !record_rules
        {
            // The bytes of the rows the array holds (it may be a slice).
            let offsets = strings.value_offsets();
            let held = match (offsets.first(), offsets.last()) {
                (Some(first), Some(last)) => strings
                    .values()
                    .get(first.as_usize()..last.as_usize())
                    .unwrap_or_default(),
                _ => &[],
            };
            if !held.iter().any(|b| self.special[usize::from(*b)]) {
                return ColumnText::Plain(strings);
            }
        }
        if let Some(ints) = column.as_primitive_opt::<Int64Type>()
            && !b"0123456789-".iter().any(|b| self.special[usize::from(*b)])
        {
            return ColumnText::Int64(ints);
        }
        if let Some(values) = timestamp_values(column) {
            return ColumnText::Timestamps { values, last: None };
        }
        ColumnText::Rendered
    }

    fn write_field(&self, out: &mut Vec<u8>, text: &str, first_in_record: bool) {
        let Some(quote) = self.options.quote else {
            out.extend_from_slice(text.as_bytes());
            return;
        };
        if !self.needs_quotes(text, first_in_record) {
            out.extend_from_slice(text.as_bytes());
            return;
        }
        out.push(quote);
        for byte in text.bytes() {
            // A quote is doubled; an escape character escapes itself so that it
            // reads back literally.
            if byte == quote || Some(byte) == self.options.escape {
                out.push(if byte == quote { quote } else { byte });
            }
            out.push(byte);
        }
        out.push(quote);
    }
}

impl RecordEncoder for CsvEncoder {
    fn format(&self) -> &'static str {
        "csv"
    }

    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let dialect = Dialect::Text(TextStyle {
            separator: ' ',
            naive_zone_suffix: false,
            scientific_decimals: self.options.scientific_decimals,
            element_delimiter: &self.options.array_element_delimiter,
        });
        let columns = batch.columns();
        let mut texts: Vec<ColumnText<'_>> = (0..columns.len())
            .map(|i| self.column_text(columns, i))
            .collect();
        // A lone empty field would be an empty line, which readers skip; quoting
        // it keeps the row.
        let lone_column = columns.len() == 1;
        let mut digits = itoa::Buffer::new();
        for row in 0..batch.num_rows() {
            for (i, (column, text)) in columns.iter().zip(&mut texts).enumerate() {
                if i > 0 {
                    out.push(self.options.delimiter);
                }
                let column = column.as_ref();
                let null = is_null_at(column, row);
                if !null {
                    match text {
                        ColumnText::Plain(strings) => {
                            out.extend_from_slice(strings.value(row).as_bytes());
                            continue;
                        }
                        ColumnText::Int64(ints) => {
                            out.extend_from_slice(digits.format(ints.value(row)).as_bytes());
                            continue;
                        }
                        ColumnText::Timestamps {
                            values,
                            last: Some(last),
                        } if values.get(row) == Some(&last.value) => {
                            out.extend_from_slice(&last.bytes);
                            continue;
                        }
                        ColumnText::Timestamps { .. } | ColumnText::Rendered => {}
                    }
                }
                let field_start = out.len();
                scratch.clear();
                if null {
                    if let Some(literal) = &self.options.null_literal {
                        scratch.push_str(literal);
                    }
                } else {
                    write_value(&mut scratch, column, row, &dialect);
                }
                match self.options.quote {
                    Some(quote) if lone_column && scratch.is_empty() => {
                        out.extend_from_slice(&[quote, quote]);
                    }
                    _ => self.write_field(out, &scratch, i == 0),
                }
                if let ColumnText::Timestamps { values, last } = text
                    && !null
                    && let Some(value) = values.get(row)
                {
                    let field = last.get_or_insert_with(LastField::default);
                    field.value = *value;
                    field.bytes.clear();
                    field.bytes.extend_from_slice(&out[field_start..]);
                }
            }
            out.push(b'\n');
        }
        self.scratch = scratch;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{
        Array, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
        Int8Array, Int16Array, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{Int64Type, TimeUnit, TimestampMillisecondType};

    use super::*;
    use crate::FormatConfig;

    fn config(pairs: &[(&str, &str)]) -> FormatConfig {
        let options: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        FormatConfig::from_options("csv", &options).unwrap()
    }

    fn config_err(pairs: &[(&str, &str)]) -> String {
        let options: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        FormatConfig::from_options("csv", &options)
            .unwrap_err()
            .to_string()
    }

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(name, dt)| Field::new(*name, dt.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn origin(first_line: Option<u64>) -> ChunkOrigin<'static> {
        ChunkOrigin {
            source: "data/bids.csv",
            byte_offset: 1000,
            first_line,
        }
    }

    fn decode(config: &FormatConfig, schema: SchemaRef, input: &str) -> Decoded {
        let mut decoder = config.create_decoder(schema, None).unwrap();
        decoder.decode(input.as_bytes(), &origin(Some(1))).unwrap()
    }

    fn one_batch(decoded: &Decoded) -> &RecordBatch {
        assert_eq!(decoded.batches.len(), 1, "{decoded:?}");
        &decoded.batches[0]
    }

    fn strings(batch: &RecordBatch, column: usize) -> Vec<Option<String>> {
        batch
            .column(column)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    fn longs(batch: &RecordBatch, column: usize) -> Vec<Option<i64>> {
        batch
            .column(column)
            .as_primitive::<Int64Type>()
            .iter()
            .collect()
    }

    fn id_name() -> SchemaRef {
        schema(&[("id", DataType::Int64), ("name", DataType::Utf8)])
    }

    #[test]
    fn field_delimiter_accepts_backslash_t_and_rejects_long_values() {
        let decoded = decode(
            &config(&[("csv.field-delimiter", "\\t")]),
            id_name(),
            "1\ta,b\n",
        );
        assert_eq!(strings(one_batch(&decoded), 1), vec![Some("a,b".into())]);
        let decoded = decode(&config(&[("csv.field-delimiter", "|")]), id_name(), "1|x\n");
        assert_eq!(longs(one_batch(&decoded), 0), vec![Some(1)]);
        let message = config_err(&[("csv.field-delimiter", "ab")]);
        assert!(
            message.starts_with("invalid value 'ab' for option 'csv.field-delimiter'"),
            "{message}"
        );
    }

    #[test]
    fn quote_and_escape_characters() {
        let decoded = decode(&config(&[]), id_name(), "1,\"a,\"\"b\"\"\"\n");
        assert_eq!(
            strings(one_batch(&decoded), 1),
            vec![Some("a,\"b\"".into())]
        );
        let decoded = decode(
            &config(&[("csv.quote-character", "'")]),
            id_name(),
            "1,'x,y'\n",
        );
        assert_eq!(strings(one_batch(&decoded), 1), vec![Some("x,y".into())]);
        let decoded = decode(
            &config(&[("csv.escape-character", "\\\\")]),
            id_name(),
            "1,\"a\\\"b\"\n",
        );
        assert_eq!(strings(one_batch(&decoded), 1), vec![Some("a\"b".into())]);
    }

    #[test]
    fn disabled_quote_character_keeps_quotes_literal() {
        let decoded = decode(
            &config(&[("csv.disable-quote-character", "true")]),
            id_name(),
            "1,\"a\"\n",
        );
        assert_eq!(strings(one_batch(&decoded), 1), vec![Some("\"a\"".into())]);
        let message = config_err(&[
            ("csv.disable-quote-character", "true"),
            ("csv.quote-character", "'"),
        ]);
        assert!(message.contains("'csv.quote-character'"), "{message}");
    }

    #[test]
    fn comments_only_with_allow_comments() {
        let input = "# header comment\n1,a\n#2,b\n3,c\n";
        let decoded = decode(&config(&[("csv.allow-comments", "true")]), id_name(), input);
        assert_eq!(longs(one_batch(&decoded), 0), vec![Some(1), Some(3)]);
        let mut decoder = config(&[]).create_decoder(id_name(), None).unwrap();
        assert!(decoder.decode(input.as_bytes(), &origin(Some(1))).is_err());
    }

    #[test]
    fn blank_lines_crlf_and_missing_final_newline() {
        let decoded = decode(&config(&[]), id_name(), "\n1,a\r\n\r\n\n2,b\r\n3,c");
        let batch = one_batch(&decoded);
        assert_eq!(longs(batch, 0), vec![Some(1), Some(2), Some(3)]);
        assert_eq!(
            strings(batch, 1),
            vec![Some("a".into()), Some("b".into()), Some("c".into())]
        );
    }

    #[test]
    fn empty_fields_are_empty_strings_for_text_and_null_otherwise() {
        let schema = schema(&[
            ("s", DataType::Utf8),
            ("i", DataType::Int32),
            ("d", DataType::Float64),
            ("b", DataType::Boolean),
            ("dt", DataType::Date32),
            ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
            ("dec", DataType::Decimal128(10, 2)),
            ("bin", DataType::Binary),
        ]);
        let decoded = decode(&config(&[]), schema, ",,,,,,,\n");
        let batch = one_batch(&decoded);
        assert_eq!(strings(batch, 0), vec![Some(String::new())]);
        for column in 1..7 {
            assert!(batch.column(column).is_null(0), "column {column}");
        }
        assert_eq!(batch.column(7).as_binary::<i32>().value(0), b"");
        assert!(!batch.column(7).is_null(0));
    }

    #[test]
    fn null_literal_marks_nulls_for_every_type() {
        let schema = schema(&[
            ("s", DataType::Utf8),
            ("i", DataType::Int64),
            ("t", DataType::Utf8),
        ]);
        let config = config(&[("csv.null-literal", "n/a")]);
        let decoded = decode(&config, schema.clone(), "n/a,n/a,\n,,x\n");
        let batch = one_batch(&decoded);
        assert_eq!(strings(batch, 0), vec![None, Some(String::new())]);
        assert_eq!(longs(batch, 1), vec![None, None]);
        assert_eq!(
            strings(batch, 2),
            vec![Some(String::new()), Some("x".into())]
        );
        // Only the text columns, only the non-text one: single passes.
        let mut decoder = config
            .create_decoder(schema.clone(), Some(vec![2]))
            .unwrap();
        let decoded = decoder.decode(b"n/a,1,n/a\n", &origin(None)).unwrap();
        assert_eq!(strings(one_batch(&decoded), 0), vec![None]);
        let mut decoder = config.create_decoder(schema, Some(vec![1])).unwrap();
        let decoded = decoder.decode(b"a,7,b\n", &origin(None)).unwrap();
        assert_eq!(longs(one_batch(&decoded), 0), vec![Some(7)]);
    }

    #[test]
    fn projection_reorders_and_drops_columns() {
        let schema = schema(&[
            ("a", DataType::Int64),
            ("b", DataType::Utf8),
            ("c", DataType::Int64),
        ]);
        let mut decoder = config(&[])
            .create_decoder(schema, Some(vec![2, 0]))
            .unwrap();
        // Column b would not parse as a number but is never parsed.
        let decoded = decoder.decode(b"1,x,3\n4,y,6\n", &origin(None)).unwrap();
        let batch = one_batch(&decoded);
        assert_eq!(decoder.output_schema().field(0).name(), "c");
        assert_eq!(batch.schema().field(1).name(), "a");
        assert_eq!(longs(batch, 0), vec![Some(3), Some(6)]);
        assert_eq!(longs(batch, 1), vec![Some(1), Some(4)]);

        let mut counting = config(&[]).create_decoder(id_name(), Some(vec![])).unwrap();
        let decoded = counting.decode(b"1,a\n2,b\n", &origin(None)).unwrap();
        assert_eq!(one_batch(&decoded).num_rows(), 2);
        assert_eq!(one_batch(&decoded).num_columns(), 0);
    }

    #[test]
    fn malformed_record_names_source_line_byte_and_column() {
        let schema = schema(&[("id", DataType::Int64), ("price", DataType::Int64)]);
        let mut decoder = config(&[]).create_decoder(schema, None).unwrap();
        let input = "1,10\n2,20\n3,abc\n4,40\n";
        let origin = ChunkOrigin {
            source: "data/bids.csv",
            byte_offset: 1234,
            first_line: Some(15),
        };
        let err = decoder.decode(input.as_bytes(), &origin).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed CSV record in 'data/bids.csv' at line 17 (byte 1244): \
             cannot parse 'abc' as BIGINT for column 'price'; fix the record, or set \
             'csv.ignore-parse-errors' = 'true' to read unparsable fields as NULL and skip \
             unreadable records"
        );
        let err = decoder
            .decode(
                input.as_bytes(),
                &ChunkOrigin {
                    first_line: None,
                    ..origin
                },
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("malformed CSV record in 'data/bids.csv' (byte 1244): "),
            "{err}"
        );
    }

    #[test]
    fn wrong_field_count_is_reported() {
        let mut decoder = config(&[]).create_decoder(id_name(), None).unwrap();
        let err = decoder
            .decode(b"1,a\n2\n", &origin(Some(1)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "at line 2 (byte 1004): the record has 1 fields but the table has 2 columns"
            ),
            "{err}"
        );
    }

    #[test]
    fn ignore_parse_errors_nulls_bad_fields_and_skips_unreadable_records() {
        let schema = schema(&[("id", DataType::Int64), ("price", DataType::Int64)]);
        let config = config(&[("csv.ignore-parse-errors", "true")]);
        assert!(config.ignore_parse_errors());
        let mut decoder = config.create_decoder(schema, None).unwrap();
        let input = "1,10\n2,abc\n3,30,extra\n4\n5,50\n";
        let decoded = decoder.decode(input.as_bytes(), &origin(Some(1))).unwrap();
        let batch = one_batch(&decoded);
        // Row 2 keeps its id with a NULL price, row 4 has its missing field NULL,
        // row 3 (too many fields) is dropped.
        assert_eq!(longs(batch, 0), vec![Some(1), Some(2), Some(4), Some(5)]);
        assert_eq!(longs(batch, 1), vec![Some(10), None, None, Some(50)]);
        assert_eq!(decoded.skipped, 1);
    }

    #[test]
    fn ignore_parse_errors_skips_invalid_utf8() {
        let config = config(&[("csv.ignore-parse-errors", "true")]);
        let mut decoder = config.create_decoder(id_name(), None).unwrap();
        let decoded = decoder
            .decode(b"1,a\n2,\xff\n3,c\n", &origin(None))
            .unwrap();
        assert_eq!(longs(one_batch(&decoded), 0), vec![Some(1), Some(3)]);
        assert_eq!(decoded.skipped, 1);
    }

    #[test]
    fn timestamps_parse_in_sql_and_iso_forms() {
        let schema = schema(&[
            ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
            (
                "ltz",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ),
        ]);
        let decoded = decode(
            &config(&[]),
            schema,
            "2015-07-15 00:00:01.123,2015-07-15T00:00:01.123\n\
             2015-07-15T00:00:01.123,2015-07-15 00:00:01.123Z\n",
        );
        let batch = one_batch(&decoded);
        let expected = 1_436_918_401_123;
        for column in 0..2 {
            let values = batch
                .column(column)
                .as_primitive::<TimestampMillisecondType>();
            assert_eq!(values.values().to_vec(), vec![expected, expected]);
        }
    }

    #[test]
    fn unsupported_column_types_are_rejected_when_projected() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new_list("tags", Field::new("item", DataType::Utf8, true), true),
        ]));
        let err = config(&[])
            .create_decoder(schema.clone(), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("format 'csv' does not support column 'tags' of type ARRAY<STRING>"),
            "{err}"
        );
        let mut decoder = config(&[]).create_decoder(schema, Some(vec![0])).unwrap();
        let decoded = decoder.decode(b"1,whatever\n", &origin(None)).unwrap();
        assert_eq!(longs(one_batch(&decoded), 0), vec![Some(1)]);
    }

    fn all_types_schema() -> SchemaRef {
        schema(&[
            ("big", DataType::Int64),
            ("int", DataType::Int32),
            ("small", DataType::Int16),
            ("tiny", DataType::Int8),
            ("dbl", DataType::Float64),
            ("flt", DataType::Float32),
            ("dec", DataType::Decimal128(10, 2)),
            ("bool", DataType::Boolean),
            ("str", DataType::Utf8),
            ("date", DataType::Date32),
            ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
            (
                "ltz",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ),
        ])
    }

    pub(crate) fn all_types_batch() -> RecordBatch {
        RecordBatch::try_new(
            all_types_schema(),
            vec![
                Arc::new(Int64Array::from(vec![Some(-9_000_000_000), None])),
                Arc::new(Int32Array::from(vec![Some(42), None])),
                Arc::new(Int16Array::from(vec![Some(-7), None])),
                Arc::new(Int8Array::from(vec![Some(3), None])),
                Arc::new(Float64Array::from(vec![Some(1.5e10), None])),
                Arc::new(Float32Array::from(vec![Some(0.25), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(-12_345), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
                Arc::new(StringArray::from(vec![Some("a, \"quoted\"\nline"), None])),
                Arc::new(Date32Array::from(vec![Some(18_367), None])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_586_937_900_120),
                    None,
                ])),
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(1_586_937_900_000), None])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap()
    }

    #[test]
    fn encodes_flink_spellings() {
        let mut encoder = config(&[]).create_encoder(all_types_schema()).unwrap();
        let mut out = Vec::new();
        encoder.encode(&all_types_batch(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "-9000000000,42,-7,3,1.5E10,0.25,-123.45,true,\"a, \"\"quoted\"\"\nline\",\
             2020-04-15,2020-04-15 08:05:00.12,2020-04-15 08:05:00Z\n\
             ,,,,,,,,,,,\n"
        );
    }

    #[test]
    fn a_timestamp_repeated_from_the_row_before_is_written_the_same() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let (a, b) = (1_586_937_900_000, 1_586_937_900_120);
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(a),
                    Some(a),
                    Some(b),
                    None,
                    Some(b),
                    Some(a),
                ])),
            ],
        )
        .unwrap();
        // A delimiter that makes every timestamp quoted: the copy is of the field as written.
        let mut encoder = config(&[("csv.field-delimiter", ":")])
            .create_encoder(schema)
            .unwrap();
        let mut out = Vec::new();
        encoder.encode(&batch.slice(1, 5), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2:\"2020-04-15 08:05:00\"\n3:\"2020-04-15 08:05:00.12\"\n4:\n\
             5:\"2020-04-15 08:05:00.12\"\n6:\"2020-04-15 08:05:00\"\n"
        );
    }

    #[test]
    fn whole_columns_written_as_they_are_are_quoted_where_they_must_be() {
        let batch = RecordBatch::try_new(
            id_name(),
            vec![
                Arc::new(Int64Array::from(vec![Some(-1), None, Some(20)])),
                Arc::new(StringArray::from(vec![Some("a-b"), Some("#c"), None])),
            ],
        )
        .unwrap();
        let write = |pairs: &[(&str, &str)], batch: &RecordBatch| {
            let mut encoder = config(pairs).create_encoder(id_name()).unwrap();
            let mut out = Vec::new();
            encoder.encode(batch, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(write(&[], &batch), "-1,a-b\n,#c\n20,\n");
        // A delimiter among an integer's characters or a string column's bytes.
        assert_eq!(
            write(&[("csv.field-delimiter", "-")], &batch),
            "\"-1\"-\"a-b\"\n-#c\n20-\n"
        );
        // Only the bytes of the rows a sliced column holds count.
        assert_eq!(
            write(&[("csv.field-delimiter", "-")], &batch.slice(1, 2)),
            "-#c\n20-\n"
        );
        let swapped = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, true),
                Field::new("id", DataType::Int64, true),
            ])),
            vec![Arc::clone(batch.column(1)), Arc::clone(batch.column(0))],
        )
        .unwrap();
        let mut encoder = config(&[("csv.allow-comments", "true")])
            .create_encoder(swapped.schema())
            .unwrap();
        let mut out = Vec::new();
        encoder.encode(&swapped, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a-b,-1\n\"#c\",\n,20\n");
    }

    #[test]
    fn encodes_null_literal_and_lone_empty_fields() {
        let mut encoder = config(&[("csv.null-literal", "\\N")])
            .create_encoder(id_name())
            .unwrap();
        let batch = RecordBatch::try_new(
            id_name(),
            vec![
                Arc::new(Int64Array::from(vec![None, Some(1)])),
                Arc::new(StringArray::from(vec![Some(""), None])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        encoder.encode(&batch, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\\N,\n1,\\N\n");

        let lone = schema(&[("s", DataType::Utf8)]);
        let mut encoder = config(&[]).create_encoder(lone.clone()).unwrap();
        let batch = RecordBatch::try_new(lone.clone(), vec![Arc::new(StringArray::from(vec![""]))])
            .unwrap();
        let mut out = Vec::new();
        encoder.encode(&batch, &mut out).unwrap();
        assert_eq!(out, b"\"\"\n");
        let decoded = decode(&config(&[]), lone, std::str::from_utf8(&out).unwrap());
        assert_eq!(strings(one_batch(&decoded), 0), vec![Some(String::new())]);
    }

    #[test]
    fn array_element_delimiter_and_decimal_notation_when_writing() {
        let schema = Arc::new(Schema::new(vec![
            Field::new_list("tags", Field::new("item", DataType::Int32, true), true),
            Field::new("d", DataType::Decimal128(12, 9), true),
        ]));
        let tags = arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Int32Type, _, _>(
            vec![Some(vec![Some(1), None, Some(3)])],
        );
        let decimal = Decimal128Array::from(vec![27])
            .with_precision_and_scale(12, 9)
            .unwrap();
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(tags), Arc::new(decimal)]).unwrap();
        let encode = |config: FormatConfig| {
            let mut out = Vec::new();
            config
                .create_encoder(schema.clone())
                .unwrap()
                .encode(&batch, &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(encode(config(&[])), "1;;3,2.7E-8\n");
        assert_eq!(
            encode(config(&[
                ("csv.array-element-delimiter", "|"),
                ("csv.write-bigdecimal-in-scientific-notation", "false"),
            ])),
            "1||3,0.000000027\n"
        );
    }

    #[test]
    fn a_large_chunk_decodes_into_one_batch() {
        let input: String = (0..20_000).map(|i| format!("{i},name{i}\n")).collect();
        let decoded = decode(&config(&[]), id_name(), &input);
        let batch = one_batch(&decoded);
        assert_eq!(batch.num_rows(), 20_000);
        assert_eq!(longs(batch, 0)[19_999], Some(19_999));
    }

    fn round_trip(config: &FormatConfig, batch: &RecordBatch) -> RecordBatch {
        let mut out = Vec::new();
        config
            .create_encoder(batch.schema())
            .unwrap()
            .encode(batch, &mut out)
            .unwrap();
        let mut decoder = config.create_decoder(batch.schema(), None).unwrap();
        let decoded = decoder.decode(&out, &origin(Some(1))).unwrap();
        one_batch(&decoded).clone()
    }

    #[test]
    fn round_trip_of_every_type() {
        let batch = all_types_batch();
        // Without a null literal a NULL string reads back as '' (as in Flink).
        let back = round_trip(&config(&[]), &batch);
        for column in 0..batch.num_columns() {
            if column == 8 {
                assert_eq!(back.column(8).as_string::<i32>().value(1), "");
                assert_eq!(
                    back.column(8).as_string::<i32>().value(0),
                    batch.column(8).as_string::<i32>().value(0)
                );
            } else {
                assert_eq!(back.column(column), batch.column(column), "column {column}");
            }
        }
        // With one, every NULL survives.
        let back = round_trip(&config(&[("csv.null-literal", "null")]), &batch);
        assert_eq!(back, batch);
        // Other delimiter, escape character and a value containing it.
        let config = config(&[
            ("csv.field-delimiter", ";"),
            ("csv.escape-character", "\\\\"),
        ]);
        let schema = schema(&[("s", DataType::Utf8), ("i", DataType::Int32)]);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["back\\slash;\"q\""])),
                Arc::new(Int32Array::from(vec![1])),
            ],
        )
        .unwrap();
        assert_eq!(round_trip(&config, &batch), batch);
    }
}
