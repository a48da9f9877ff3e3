//! Flink's `debezium-json` format: Debezium's change events, read and
//! written as a changelog.
//!
//! A change event is a JSON object `{"before": {...}, "after": {...},
//! "op": "u", ...}`, wrapped in `{"schema": ..., "payload": ...}` when
//! `'debezium-json.schema-include'` is on. Other fields (`source`, `ts_ms`)
//! are skipped unread.
//!
//! Decoding runs the json format's vectorised decoder over the envelope:
//! `before` and `after` are struct columns of the table's projected fields,
//! so each line (or message) becomes one row of the [`Envelope`]. The row is
//! checked right there (a known `op`, the images it needs), so a bad event
//! fails at its line or offset like any malformed record, or is skipped
//! under `'debezium-json.ignore-parse-errors'`. [`Envelope::unfold`] then
//! turns the events into the changelog as Flink does: `c` (create) and `r`
//! (snapshot read) are `+I after`, `u` is `-U before, +U after`, and `d` is
//! `-D before`.
//!
//! Encoding is also Flink's: `+I` and `+U` rows are written as
//! `{"before":null,"after":{...},"op":"c"}`, `-U` and `-D` rows as
//! `{"before":{...},"after":null,"op":"d"}`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatchOptions, StringArray, StructArray, UInt8Array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use weir_common::{RowKind, StreamBatch};

use crate::json::{JsonDecoder, JsonEncoder, JsonOptions, read_field};
use crate::lines::Conversion;
use crate::{ChangelogRows, FormatError, OptionReader, RecordEncoder};

/// The option keys of the debezium-json format.
pub(crate) const OPTIONS: &[&str] = &[
    "debezium-json.schema-include",
    "debezium-json.ignore-parse-errors",
    "debezium-json.timestamp-format.standard",
    "debezium-json.map-null-key.mode",
    "debezium-json.map-null-key.literal",
    "debezium-json.encode.decimal-as-plain-number",
    "debezium-json.encode.ignore-null-fields",
];

const PREFIX: &str = "debezium-json";
const SCHEMA_INCLUDE: &str = "debezium-json.schema-include";

/// Parsed `debezium-json.*` options.
#[derive(Debug, Clone)]
pub(crate) struct DebeziumOptions {
    /// The options it shares with the json format.
    pub json: JsonOptions,
    /// Whether events are wrapped in `{"schema": ..., "payload": ...}`.
    schema_include: bool,
}

impl DebeziumOptions {
    pub(crate) fn parse(reader: &OptionReader<'_>) -> Result<Self, FormatError> {
        Ok(Self {
            json: JsonOptions::parse(reader, PREFIX)?,
            schema_include: reader.bool(SCHEMA_INCLUDE, false)?,
        })
    }
}

/// A decoder of the projected columns of `schema` from change events.
pub(crate) fn decoder(
    options: &DebeziumOptions,
    schema: SchemaRef,
    projection: Vec<usize>,
) -> Result<JsonDecoder, FormatError> {
    let rows = Arc::new(schema.project(&projection)?);
    let mut read_fields = Vec::with_capacity(rows.fields().len());
    let mut conversions = Vec::with_capacity(rows.fields().len());
    for field in rows.fields() {
        let (conversion, read_field) = read_field(field, PREFIX)?;
        read_fields.push(read_field);
        conversions.push(conversion);
    }
    let envelope = Envelope {
        rows,
        read_fields: Fields::from(read_fields),
        conversions,
        schema_include: options.schema_include,
    };
    Ok(JsonDecoder::for_envelope(options.json.clone(), envelope))
}

/// An encoder writing each row as a change event.
pub(crate) fn encoder(options: &DebeziumOptions) -> Result<DebeziumEncoder, FormatError> {
    if options.schema_include {
        return Err(crate::invalid(
            SCHEMA_INCLUDE,
            "true",
            "change events are written without a schema (as Flink writes them); \
             set it to 'false' on a table that is written to",
        ));
    }
    Ok(DebeziumEncoder {
        json: JsonEncoder::new(options.json.clone()),
    })
}

/// The envelope's columns, in the order Flink writes them.
const BEFORE: usize = 0;
const AFTER: usize = 1;
const OP: usize = 2;

/// `before`, `after` (both of type `row`) and `op`.
fn envelope_fields(row: DataType) -> Vec<Field> {
    vec![
        Field::new("before", row.clone(), true),
        Field::new("after", row, true),
        Field::new("op", DataType::Utf8, true),
    ]
}

/// What an event's `op` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `c` (create) or `r` (a snapshot's read): `+I after`.
    Insert,
    /// `u`: `-U before, +U after`.
    Update,
    /// `d`: `-D before`.
    Delete,
}

impl Op {
    fn parse(op: &str) -> Option<Self> {
        match op {
            "c" | "r" => Some(Op::Insert),
            "u" => Some(Op::Update),
            "d" => Some(Op::Delete),
            _ => None,
        }
    }

    /// The images the event must carry: `(before, after)`.
    fn needs(self) -> (bool, bool) {
        match self {
            Op::Insert => (false, true),
            Op::Update => (true, true),
            Op::Delete => (true, false),
        }
    }
}

/// The shape of the change events of one table, and how they become rows.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    /// The projected table columns: the fields of `before` and `after`.
    rows: SchemaRef,
    /// How each of them is read: the json decoder's stand-in types...
    read_fields: Fields,
    /// ...and the conversions back to the declared types.
    conversions: Vec<Conversion>,
    schema_include: bool,
}

impl Envelope {
    /// What the json decoder reads from each line.
    pub(crate) fn read_schema(&self) -> SchemaRef {
        let fields = envelope_fields(DataType::Struct(self.read_fields.clone()));
        Arc::new(if self.schema_include {
            Schema::new(vec![Field::new(
                "payload",
                DataType::Struct(Fields::from(fields)),
                true,
            )])
        } else {
            Schema::new(fields)
        })
    }

    /// One row per event: `before` and `after` with the declared types.
    pub(crate) fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(envelope_fields(DataType::Struct(
            self.row_fields(),
        ))))
    }

    /// The table's columns as fields of `before` and `after`, which may be null.
    fn row_fields(&self) -> Fields {
        self.rows
            .fields()
            .iter()
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
            .collect()
    }

    /// Turns decoded events (of [`Self::read_schema`]) into rows of
    /// [`Self::output_schema`], failing on the first event that cannot
    /// become rows.
    pub(crate) fn finish(&self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = if self.schema_include {
            struct_column(batch.column(0), "payload")?
                .columns()
                .to_vec()
        } else {
            batch.columns().to_vec()
        };
        let op = columns[OP]
            .as_string_opt::<i32>()
            .ok_or_else(|| ArrowError::JsonError("the \"op\" field is not a string".to_string()))?;
        let before = self.convert(struct_column(&columns[BEFORE], "before")?)?;
        let after = self.convert(struct_column(&columns[AFTER], "after")?)?;
        for row in 0..batch.num_rows() {
            let kind = self.op(op, row)?;
            let (needs_before, needs_after) = kind.needs();
            if needs_before {
                self.check_image(&before, row, "before", op.value(row))?;
            }
            if needs_after {
                self.check_image(&after, row, "after", op.value(row))?;
            }
        }
        let columns: Vec<ArrayRef> = vec![Arc::new(before), Arc::new(after), columns[OP].clone()];
        RecordBatch::try_new_with_options(
            self.output_schema(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
    }

    fn op(&self, op: &StringArray, row: usize) -> Result<Op, ArrowError> {
        if op.is_null(row) {
            let hint = if self.schema_include {
                ""
            } else {
                "; if the events are wrapped in {\"schema\": ..., \"payload\": ...}, set \
                 'debezium-json.schema-include' = 'true'"
            };
            return Err(ArrowError::JsonError(format!(
                "the event has no \"op\" field{hint}"
            )));
        }
        Op::parse(op.value(row)).ok_or_else(|| {
            ArrowError::JsonError(format!(
                "unknown \"op\" value \"{}\"; valid values are \"c\", \"r\", \"u\" and \"d\"",
                op.value(row)
            ))
        })
    }

    /// Checks that an event with `op` has the image `side` it needs, with a
    /// value in every NOT NULL column.
    fn check_image(
        &self,
        image: &StructArray,
        row: usize,
        side: &str,
        op: &str,
    ) -> Result<(), ArrowError> {
        if image.is_null(row) {
            // Flink's advice: Postgres only logs old rows in full with it.
            let hint = if side == "before" {
                "; if you are using Debezium's Postgres connector, check that the table's \
                 REPLICA IDENTITY is FULL"
            } else {
                ""
            };
            return Err(ArrowError::JsonError(format!(
                "\"op\" is \"{op}\" but the \"{side}\" field is null{hint}"
            )));
        }
        for (field, column) in self.rows.fields().iter().zip(image.columns()) {
            if !field.is_nullable() && column.is_null(row) {
                return Err(ArrowError::JsonError(format!(
                    "field '{}' of \"{side}\" is null, but the column is NOT NULL",
                    field.name()
                )));
            }
        }
        Ok(())
    }

    /// An image read with stand-in types, with its declared types.
    fn convert(&self, image: &StructArray) -> Result<StructArray, ArrowError> {
        let children = image
            .columns()
            .iter()
            .zip(&self.conversions)
            .map(|(column, conversion)| conversion.apply(Arc::clone(column)))
            .collect::<Result<Vec<_>, _>>()?;
        StructArray::try_new(self.row_fields(), children, image.nulls().cloned())
    }

    /// The rows of `events` (of [`Self::output_schema`], checked by
    /// [`Self::finish`]), with their kinds.
    pub(crate) fn unfold(&self, events: &RecordBatch) -> Result<ChangelogRows, FormatError> {
        let before = struct_column(events.column(BEFORE), "before")?;
        let after = struct_column(events.column(AFTER), "after")?;
        let op = events
            .column(OP)
            .as_string_opt::<i32>()
            .ok_or_else(|| ArrowError::JsonError("the \"op\" field is not a string".into()))?;
        let rows = events.num_rows();
        // (0 = before, 1 = after; row) for arrow's interleave.
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(rows);
        let mut kinds: Vec<u8> = Vec::with_capacity(rows);
        let mut records: Vec<u32> = Vec::with_capacity(rows);
        let mut one_to_one = true;
        for row in 0..rows {
            match self.op(op, row)? {
                Op::Insert => {
                    picks.push((1, row));
                    kinds.push(RowKind::Insert as u8);
                }
                Op::Update => {
                    picks.extend([(0, row), (1, row)]);
                    kinds.extend([RowKind::UpdateBefore as u8, RowKind::UpdateAfter as u8]);
                    records.push(row as u32);
                    one_to_one = false;
                }
                Op::Delete => {
                    picks.push((0, row));
                    kinds.push(RowKind::Delete as u8);
                }
            }
            records.push(row as u32);
        }
        let columns = before
            .columns()
            .iter()
            .zip(after.columns())
            .map(|(b, a)| interleave(&[b.as_ref(), a.as_ref()], &picks))
            .collect::<Result<Vec<_>, _>>()?;
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.rows),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(picks.len())),
        )?;
        Ok(ChangelogRows {
            rows: StreamBatch::try_new_changelog(data, UInt8Array::from(kinds))?,
            records: (!one_to_one).then_some(records),
        })
    }
}

fn struct_column<'a>(column: &'a ArrayRef, name: &str) -> Result<&'a StructArray, ArrowError> {
    column
        .as_struct_opt()
        .ok_or_else(|| ArrowError::JsonError(format!("the \"{name}\" field is not an object")))
}

/// Writes rows as change events.
pub(crate) struct DebeziumEncoder {
    json: JsonEncoder,
}

impl RecordEncoder for DebeziumEncoder {
    fn format(&self) -> &'static str {
        PREFIX
    }

    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), FormatError> {
        self.encode_changes(&StreamBatch::inserts(batch.clone()), out)
    }

    fn encode_changes(
        &mut self,
        batch: &StreamBatch,
        out: &mut Vec<u8>,
    ) -> Result<(), FormatError> {
        let retracts: BooleanBuffer = (0..batch.num_rows())
            .map(|row| !batch.row_kind(row).is_accumulate())
            .collect();
        let data = batch.data();
        let fields: Fields = data
            .schema()
            .fields()
            .iter()
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
            .collect();
        let image = |present: BooleanBuffer| {
            StructArray::try_new(
                fields.clone(),
                data.columns().to_vec(),
                Some(NullBuffer::new(present)),
            )
        };
        let before = image(retracts.clone())?;
        let after = image(!&retracts)?;
        let op = StringArray::from_iter_values(retracts.iter().map(|r| if r { "d" } else { "c" }));
        let events = RecordBatch::try_new(
            Arc::new(Schema::new(envelope_fields(DataType::Struct(
                fields.clone(),
            )))),
            vec![Arc::new(before), Arc::new(after), Arc::new(op)],
        )?;
        self.json.encode(&events, out)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{BinaryArray, Int32Array};
    use arrow::datatypes::Int64Type;

    use super::*;
    use crate::{ChunkOrigin, FormatConfig};

    fn config(pairs: &[(&str, &str)]) -> FormatConfig {
        crate::test_config("debezium-json", pairs)
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("c", DataType::Int64, false),
            Field::new("b", DataType::Binary, true),
        ]))
    }

    const ORIGIN: ChunkOrigin<'static> = ChunkOrigin {
        source: "events.json",
        byte_offset: 0,
        first_line: Some(1),
    };

    fn decode(config: &FormatConfig, lines: &str) -> Result<ChangelogRows, FormatError> {
        let mut decoder = config.create_decoder(schema(), None)?;
        let decoded = decoder.decode(lines.as_bytes(), &ORIGIN)?;
        let events = arrow::compute::concat_batches(&decoder.output_schema(), &decoded.batches)?;
        decoder.changelog_rows(events)
    }

    fn kinds(rows: &StreamBatch) -> Vec<String> {
        (0..rows.num_rows())
            .map(|r| rows.row_kind(r).to_string())
            .collect()
    }

    #[test]
    fn events_become_a_changelog() {
        let lines = concat!(
            r#"{"before":null,"after":{"k":"a","c":1,"b":"AQI="},"op":"c","source":{"db":"x"}}"#,
            "\n",
            r#"{"before":{"k":"a","c":1},"after":{"k":"a","c":2},"op":"u","ts_ms":5}"#,
            "\n",
            r#"{"after":{"k":"r","c":7},"op":"r"}"#,
            "\n",
            r#"{"before":{"k":"a","c":2},"after":null,"op":"d"}"#,
            "\n",
        );
        let decoded = decode(&config(&[]), lines).unwrap();
        assert_eq!(kinds(&decoded.rows), ["+I", "-U", "+U", "+I", "-D"]);
        assert_eq!(decoded.records, Some(vec![0, 1, 1, 2, 3]));
        let data = decoded.rows.data();
        assert_eq!(
            data.column(1).as_primitive::<Int64Type>().values(),
            &[1, 1, 2, 7, 2]
        );
        let bytes = data
            .column(2)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap();
        assert_eq!(bytes.value(0), &[1, 2]);
        assert!(bytes.is_null(1));
        assert!(!data.schema().field(1).is_nullable());
    }

    #[test]
    fn a_schema_wraps_the_events_when_included() {
        let line = r#"{"schema":{"type":"struct"},"payload":{"before":null,"after":{"k":"a","c":1},"op":"c"}}"#;
        let decoded = decode(&config(&[(SCHEMA_INCLUDE, "true")]), line).unwrap();
        assert_eq!(kinds(&decoded.rows), ["+I"]);
        assert_eq!(decoded.records, None);
        let message = decode(&config(&[]), line).unwrap_err().to_string();
        assert!(
            message.contains("the event has no \"op\" field; if the events are wrapped"),
            "{message}"
        );
    }

    #[test]
    fn bad_events_name_their_line_or_are_skipped() {
        let lines = concat!(
            r#"{"after":{"k":"a","c":1},"op":"c"}"#,
            "\n",
            r#"{"before":null,"after":{"k":"a","c":2},"op":"u"}"#,
            "\n",
            r#"{"after":{"k":"a","c":3},"op":"t"}"#,
            "\n",
            r#"{"after":{"k":"a"},"op":"c"}"#,
            "\n",
        );
        let message = decode(&config(&[]), lines).unwrap_err().to_string();
        assert!(
            message.starts_with(
                "malformed Debezium JSON record in 'events.json' at line 2 (byte 35): \
                 \"op\" is \"u\" but the \"before\" field is null"
            ),
            "{message}"
        );
        assert!(
            message.contains("set 'debezium-json.ignore-parse-errors' = 'true'"),
            "{message}"
        );
        let line = |n: usize| lines.lines().nth(n).unwrap();
        let third = decode(&config(&[]), line(2)).unwrap_err().to_string();
        assert!(third.contains("unknown \"op\" value \"t\""), "{third}");
        let fourth = decode(&config(&[]), line(3)).unwrap_err().to_string();
        assert!(
            fourth.contains("field 'c' of \"after\" is null, but the column is NOT NULL"),
            "{fourth}"
        );
        let config = config(&[("debezium-json.ignore-parse-errors", "true")]);
        let mut decoder = config.create_decoder(schema(), None).unwrap();
        let decoded = decoder.decode(lines.as_bytes(), &ORIGIN).unwrap();
        assert_eq!(decoded.skipped, 3);
    }

    #[test]
    fn rows_are_written_as_flink_writes_them() {
        let data = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, true),
                Field::new("c", DataType::Int32, false),
            ])),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("a"),
                    Some("a"),
                ])),
                Arc::new(Int32Array::from(vec![1, 2, 1, 2])),
            ],
        )
        .unwrap();
        let kinds = UInt8Array::from(vec![
            RowKind::Insert as u8,
            RowKind::Delete as u8,
            RowKind::UpdateBefore as u8,
            RowKind::UpdateAfter as u8,
        ]);
        let batch = StreamBatch::try_new_changelog(data, kinds).unwrap();
        let mut encoder = config(&[]).create_encoder(batch.schema()).unwrap();
        let mut out = Vec::new();
        encoder.encode_changes(&batch, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "{\"before\":null,\"after\":{\"k\":\"a\",\"c\":1},\"op\":\"c\"}\n",
                "{\"before\":{\"k\":null,\"c\":2},\"after\":null,\"op\":\"d\"}\n",
                "{\"before\":{\"k\":\"a\",\"c\":1},\"after\":null,\"op\":\"d\"}\n",
                "{\"before\":null,\"after\":{\"k\":\"a\",\"c\":2},\"op\":\"c\"}\n",
            )
        );
        let err = config(&[(SCHEMA_INCLUDE, "true")])
            .create_encoder(batch.schema())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("change events are written without a schema"),
            "{err}"
        );
    }
}
