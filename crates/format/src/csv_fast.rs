//! A fast path for plain CSV chunks: no quote, escape or carriage-return
//! byte, no comments, no blank lines, and every record with all its fields.
//! That is what most machine-written CSV looks like, and splitting it needs
//! no state machine: one SIMD scan for delimiters and newlines cuts every
//! field, where csv-core's byte-at-a-time parser took over a third of a
//! Nexmark query reading CSV.
//!
//! Fields are parsed with the same arrow-cast functions arrow-csv calls
//! (`Parser::parse`, `string_to_datetime`, `parse_decimal`, and its boolean
//! rule), and an empty field is NULL as in arrow-csv, so a batch is the same
//! as arrow-csv's. Anything else, a value that does not parse included,
//! returns `None` and the caller decodes the chunk with arrow-csv, which
//! reports errors as before.

use std::sync::Arc;

use arrow::array::builder::{NullBufferBuilder, StringBuilder};
use arrow::array::{
    ArrayRef, BooleanArray, NullArray, PrimitiveArray, RecordBatch, RecordBatchOptions,
};
use arrow::buffer::ScalarBuffer;
use arrow::compute::kernels::cast_utils::{Parser, parse_decimal, string_to_datetime};
use arrow::datatypes::{
    ArrowPrimitiveType, ArrowTimestampType, DataType, Date32Type, Date64Type, Decimal32Type,
    Decimal64Type, Decimal128Type, Decimal256Type, DecimalType, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema, SchemaRef,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use chrono::{TimeZone, Utc};

/// The bytes that make a chunk need the full parser.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plain {
    pub delimiter: u8,
    /// The quote and escape characters, when set.
    pub quote: Option<u8>,
    pub escape: Option<u8>,
}

/// The fields of a plain chunk: each record's fields' byte ranges.
struct Fields<'a> {
    /// The chunk, checked to be UTF-8 once, so fields need no check.
    text: &'a str,
    /// `(start, end)` of every field, record after record.
    bounds: Vec<(u32, u32)>,
    width: usize,
    rows: usize,
}

impl<'a> Fields<'a> {
    /// Cuts `bytes` into records of `width` fields; `None` if the chunk is
    /// not plain.
    fn split(bytes: &'a [u8], plain: Plain, width: usize) -> Option<Self> {
        let special = match (plain.quote, plain.escape) {
            (Some(quote), Some(escape)) => memchr::memchr3(b'\r', quote, escape, bytes),
            (Some(one), None) | (None, Some(one)) => memchr::memchr2(b'\r', one, bytes),
            (None, None) => memchr::memchr(b'\r', bytes),
        };
        // Offsets are u32; a chunk is a few MB.
        if width == 0 || u32::try_from(bytes.len()).is_err() || special.is_some() {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let mut bounds = Vec::with_capacity(bytes.len() / 8);
        let mut start = 0usize;
        let mut in_record = 0usize;
        let mut rows = 0;
        for at in memchr::memchr2_iter(plain.delimiter, b'\n', bytes) {
            if bytes[at] == b'\n' && in_record == 0 && at == start {
                // A blank line, which csv-core skips.
                return None;
            }
            bounds.push((start as u32, at as u32));
            in_record += 1;
            start = at + 1;
            if bytes[at] == b'\n' {
                if in_record != width {
                    return None;
                }
                in_record = 0;
                rows += 1;
            }
        }
        // A last record without a line break.
        if start < bytes.len() || in_record > 0 {
            bounds.push((start as u32, bytes.len() as u32));
            if in_record + 1 != width {
                return None;
            }
            rows += 1;
        }
        Some(Self {
            text,
            bounds,
            width,
            rows,
        })
    }

    /// A field: its bounds are at ASCII delimiters and line breaks, so
    /// always on character boundaries.
    fn field(&self, row: usize, column: usize) -> &'a str {
        let (start, end) = self.bounds[row * self.width + column];
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }
}

/// Decodes a plain chunk into the columns `projection` of `schema` (the
/// read types), as arrow-csv would; `None` when the chunk is not plain or a
/// column or value needs arrow-csv.
pub(crate) fn decode(
    bytes: &[u8],
    plain: Plain,
    schema: &Schema,
    projection: &[usize],
    output: &SchemaRef,
) -> Option<RecordBatch> {
    let fields = Fields::split(bytes, plain, schema.fields().len())?;
    let columns = projection
        .iter()
        .map(|c| column(&fields, *c, schema.field(*c).data_type()))
        .collect::<Option<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(fields.rows));
    RecordBatch::try_new_with_options(Arc::clone(output), columns, &options).ok()
}

fn column(fields: &Fields<'_>, c: usize, data_type: &DataType) -> Option<ArrayRef> {
    Some(match data_type {
        DataType::Utf8 => strings(fields, c)?,
        DataType::Null => Arc::new(NullArray::new(fields.rows)),
        DataType::Boolean => {
            let values = (0..fields.rows)
                .map(|row| match fields.field(row, c) {
                    "" => Some(None),
                    text => parse_bool(text).map(Some),
                })
                .collect::<Option<BooleanArray>>()?;
            Arc::new(values)
        }
        DataType::Int8 => parsed::<Int8Type>(fields, c)?,
        DataType::Int16 => parsed::<Int16Type>(fields, c)?,
        DataType::Int32 => parsed::<Int32Type>(fields, c)?,
        DataType::Int64 => parsed::<Int64Type>(fields, c)?,
        DataType::UInt8 => parsed::<UInt8Type>(fields, c)?,
        DataType::UInt16 => parsed::<UInt16Type>(fields, c)?,
        DataType::UInt32 => parsed::<UInt32Type>(fields, c)?,
        DataType::UInt64 => parsed::<UInt64Type>(fields, c)?,
        DataType::Float16 => parsed::<Float16Type>(fields, c)?,
        DataType::Float32 => parsed::<Float32Type>(fields, c)?,
        DataType::Float64 => parsed::<Float64Type>(fields, c)?,
        DataType::Date32 => parsed::<Date32Type>(fields, c)?,
        DataType::Date64 => parsed::<Date64Type>(fields, c)?,
        DataType::Time32(TimeUnit::Second) => parsed::<Time32SecondType>(fields, c)?,
        DataType::Time32(TimeUnit::Millisecond) => parsed::<Time32MillisecondType>(fields, c)?,
        DataType::Time64(TimeUnit::Microsecond) => parsed::<Time64MicrosecondType>(fields, c)?,
        DataType::Time64(TimeUnit::Nanosecond) => parsed::<Time64NanosecondType>(fields, c)?,
        DataType::Timestamp(unit, tz) => match tz {
            Some(name) => {
                let zone: arrow::array::timezone::Tz = name.parse().ok()?;
                timestamps(fields, c, *unit, &zone, Some(name))?
            }
            None => timestamps(fields, c, *unit, &Utc, None)?,
        },
        DataType::Decimal32(p, s) => decimals::<Decimal32Type>(fields, c, *p, *s)?,
        DataType::Decimal64(p, s) => decimals::<Decimal64Type>(fields, c, *p, *s)?,
        DataType::Decimal128(p, s) => decimals::<Decimal128Type>(fields, c, *p, *s)?,
        DataType::Decimal256(p, s) => decimals::<Decimal256Type>(fields, c, *p, *s)?,
        _ => return None,
    })
}

/// A text column, an empty field NULL. The builder takes `str`s, so the
/// column is not checked for UTF-8 again.
fn strings(fields: &Fields<'_>, c: usize) -> Option<ArrayRef> {
    let mut builder = StringBuilder::with_capacity(fields.rows, fields.text.len() / fields.width);
    for row in 0..fields.rows {
        match fields.field(row, c) {
            "" => builder.append_null(),
            text => builder.append_value(text),
        }
    }
    Some(Arc::new(builder.finish()))
}

/// A column of values built by `parse`, an empty field NULL.
fn built<T: ArrowPrimitiveType>(
    fields: &Fields<'_>,
    c: usize,
    parse: impl Fn(&str) -> Option<T::Native>,
) -> Option<PrimitiveArray<T>> {
    let mut values = Vec::with_capacity(fields.rows);
    let mut nulls = NullBufferBuilder::new(fields.rows);
    for row in 0..fields.rows {
        match fields.field(row, c) {
            "" => {
                nulls.append_null();
                values.push(T::Native::default());
            }
            text => {
                nulls.append_non_null();
                values.push(parse(text)?);
            }
        }
    }
    Some(PrimitiveArray::new(
        ScalarBuffer::from(values),
        nulls.finish(),
    ))
}

fn parsed<T: ArrowPrimitiveType + Parser>(fields: &Fields<'_>, c: usize) -> Option<ArrayRef> {
    Some(Arc::new(built::<T>(fields, c, T::parse)?))
}

fn decimals<T: DecimalType>(fields: &Fields<'_>, c: usize, p: u8, s: i8) -> Option<ArrayRef> {
    let array = built::<T>(fields, c, |text| parse_decimal::<T>(text, p, s).ok())?
        .with_precision_and_scale(p, s)
        .ok()?;
    Some(Arc::new(array))
}

fn timestamps<Z: TimeZone>(
    fields: &Fields<'_>,
    c: usize,
    unit: TimeUnit,
    zone: &Z,
    name: Option<&str>,
) -> Option<ArrayRef> {
    fn typed<T: ArrowTimestampType, Z: TimeZone>(
        fields: &Fields<'_>,
        c: usize,
        zone: &Z,
        name: Option<&str>,
    ) -> Option<ArrayRef> {
        let array = built::<T>(fields, c, |text| {
            if name.is_none()
                && let Some(value) = plain_timestamp(text, T::UNIT)
            {
                return Some(value);
            }
            let moment = string_to_datetime(zone, text).ok()?;
            match T::UNIT {
                TimeUnit::Second => Some(moment.timestamp()),
                TimeUnit::Millisecond => Some(moment.timestamp_millis()),
                TimeUnit::Microsecond => Some(moment.timestamp_micros()),
                TimeUnit::Nanosecond => moment.timestamp_nanos_opt(),
            }
        })?;
        Some(Arc::new(array.with_timezone_opt(name.map(str::to_string))))
    }
    match unit {
        TimeUnit::Second => typed::<TimestampSecondType, Z>(fields, c, zone, name),
        TimeUnit::Millisecond => typed::<TimestampMillisecondType, Z>(fields, c, zone, name),
        TimeUnit::Microsecond => typed::<TimestampMicrosecondType, Z>(fields, c, zone, name),
        TimeUnit::Nanosecond => typed::<TimestampNanosecondType, Z>(fields, c, zone, name),
    }
}

/// `yyyy-MM-dd HH:mm:ss[.f...]` (or with `T`), the shape machine-written
/// timestamps have, read without arrow's general parser (which took a tenth
/// of the time of reading a table with one timestamp column): the same
/// value `string_to_datetime` gives for it in UTC. `None` for any other
/// shape, which then goes to `string_to_datetime`.
fn plain_timestamp(text: &str, unit: TimeUnit) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let nanos = match b.get(19) {
        None => 0,
        Some(b'.') => {
            let digits = b.len() - 20;
            if !(1..=9).contains(&digits) {
                return None;
            }
            number(20..b.len())? * 10u32.pow(9 - digits as u32)
        }
        Some(_) => return None,
    };
    let seconds = date
        .and_hms_opt(hour, minute, second)?
        .and_utc()
        .timestamp();
    Some(match unit {
        TimeUnit::Second => seconds,
        TimeUnit::Millisecond => seconds * 1_000 + i64::from(nanos / 1_000_000),
        TimeUnit::Microsecond => seconds * 1_000_000 + i64::from(nanos / 1_000),
        TimeUnit::Nanosecond => seconds
            .checked_mul(1_000_000_000)?
            .checked_add(i64::from(nanos))?,
    })
}

/// arrow-csv's booleans: `true` or `false` in any case.
fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use arrow::csv::ReaderBuilder;
    use arrow::datatypes::Field;

    use super::*;

    const PLAIN: Plain = Plain {
        delimiter: b',',
        quote: Some(b'"'),
        escape: None,
    };

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new(
                "z",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+08:00".into())),
                true,
            ),
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new("b", DataType::Boolean, true),
            Field::new("day", DataType::Date32, true),
            Field::new("u", DataType::UInt16, true),
        ]))
    }

    /// What arrow-csv makes of the same bytes.
    fn arrow_csv(bytes: &[u8], schema: &SchemaRef, projection: &[usize]) -> RecordBatch {
        let mut decoder = ReaderBuilder::new(Arc::clone(schema))
            .with_header(false)
            .with_projection(projection.to_vec())
            .with_batch_size(1 << 20)
            .build_decoder();
        let mut at = 0;
        while at < bytes.len() {
            at += decoder.decode(&bytes[at..]).expect("arrow-csv decodes");
        }
        decoder.decode(&[]).expect("end");
        decoder.flush().expect("flush").expect("a batch")
    }

    fn fast(bytes: &[u8], schema: &SchemaRef, projection: &[usize]) -> Option<RecordBatch> {
        let output = Arc::new(schema.project(projection).expect("projection"));
        decode(bytes, PLAIN, schema, projection, &output)
    }

    /// A record of the schema's columns from `seed`, some fields empty.
    fn record(seed: u64) -> String {
        let pick = |n: u64, salt: u64| (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt) % n;
        let empty = |salt: u64| pick(7, salt) == 0;
        let mut fields = Vec::new();
        fields.push(if empty(1) {
            String::new()
        } else {
            format!("{}", seed as i64 - 500)
        });
        fields.push(if empty(2) {
            String::new()
        } else {
            format!("text {seed} é")
        });
        fields.push(if empty(3) {
            String::new()
        } else {
            format!("{}.{}", seed % 97, seed % 13)
        });
        fields.push(if empty(4) {
            String::new()
        } else {
            format!(
                "2015-07-{:02} 0{}:0{}:1{}.{:03}",
                1 + pick(28, 5),
                pick(10, 6),
                pick(10, 7),
                pick(10, 8),
                pick(1000, 9)
            )
        });
        fields.push(if empty(10) {
            String::new()
        } else {
            format!("1969-12-31T23:59:{:02}", pick(60, 11))
        });
        fields.push(if empty(12) {
            String::new()
        } else {
            format!("{}.{:02}", pick(100_000, 13), pick(100, 14))
        });
        fields.push(match pick(4, 15) {
            0 => String::new(),
            1 => "TRUE".to_string(),
            2 => "false".to_string(),
            _ => "True".to_string(),
        });
        fields.push(if empty(16) {
            String::new()
        } else {
            format!(
                "20{:02}-0{}-1{}",
                pick(30, 17),
                1 + pick(9, 18),
                pick(10, 19)
            )
        });
        fields.push(if empty(20) {
            String::new()
        } else {
            pick(65_536, 21).to_string()
        });
        fields.join(",")
    }

    #[test]
    fn plain_chunks_decode_as_arrow_csv_decodes_them() {
        let schema = schema();
        for (rows, trailing_newline) in [(1, true), (1, false), (300, true), (1000, false)] {
            let mut text: String = (0..rows).map(|r| record(r) + "\n").collect();
            if !trailing_newline {
                text.pop();
            }
            for projection in [vec![0, 1, 2, 3, 4, 5, 6, 7, 8], vec![8, 3, 1], vec![]] {
                if projection.is_empty() {
                    let batch = fast(text.as_bytes(), &schema, &projection).expect("plain");
                    assert_eq!(batch.num_rows(), rows as usize);
                    continue;
                }
                let expected = arrow_csv(text.as_bytes(), &schema, &projection);
                let batch = fast(text.as_bytes(), &schema, &projection).expect("plain");
                assert_eq!(batch, expected, "{rows} rows, projection {projection:?}");
            }
        }
    }

    #[test]
    fn plain_timestamps_read_as_arrow_reads_them() {
        let texts = [
            "2015-07-15 00:00:01.000",
            "2015-07-15T08:05:03.5",
            "1969-12-31 23:59:59.999",
            "1969-12-31 23:59:59.123456789",
            "0001-01-01 00:00:00",
            "2024-02-29 12:00:00.000001",
        ];
        for text in texts {
            let moment = string_to_datetime(&Utc, text).expect("arrow reads it");
            let expected = [
                (TimeUnit::Second, moment.timestamp()),
                (TimeUnit::Millisecond, moment.timestamp_millis()),
                (TimeUnit::Microsecond, moment.timestamp_micros()),
                (
                    TimeUnit::Nanosecond,
                    moment.timestamp_nanos_opt().unwrap_or(0),
                ),
            ];
            for (unit, value) in expected {
                if unit == TimeUnit::Nanosecond && moment.timestamp_nanos_opt().is_none() {
                    assert_eq!(plain_timestamp(text, unit), None, "{text}");
                    continue;
                }
                assert_eq!(
                    plain_timestamp(text, unit),
                    Some(value),
                    "{text} in {unit:?}"
                );
            }
        }
        for other in [
            "2015-07-15",
            "2015-07-15 24:00:00",
            "2015-02-30 00:00:00",
            "2015-07-15 00:00:60",
            "2015-07-15 00:00:00Z",
            "2015-07-15 00:00:00.1234567890",
            "2015-07-15 00:00:00.",
        ] {
            assert_eq!(
                plain_timestamp(other, TimeUnit::Millisecond),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn anything_not_plain_goes_to_arrow_csv() {
        let schema = schema();
        let good = record(1);
        let not_plain = [
            format!("{good}\r\n"),
            format!("{good}\n\n{good}\n"),
            format!("\"1\",{}\n", &good[good.find(',').unwrap_or(0) + 1..]),
            format!("{good},extra\n"),
            format!("1,2\n"),
            // A value that does not parse: arrow-csv reports it.
            format!("x{good}\n"),
        ];
        for text in not_plain {
            assert!(
                fast(text.as_bytes(), &schema, &[0, 1]).is_none(),
                "{text:?}"
            );
        }
        let nul_quote = Plain {
            quote: Some(0),
            ..PLAIN
        };
        let text = format!("{good}\n").replace("text", "te\0xt");
        let output = Arc::new(schema.project(&[1]).expect("projection"));
        assert!(decode(text.as_bytes(), nul_quote, &schema, &[1], &output).is_none());
    }
}
