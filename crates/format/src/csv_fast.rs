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
        // Offsets are u32; a chunk is a few MB.
        if width == 0 || u32::try_from(bytes.len()).is_err() {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let scan = Scan {
            delimiter: plain.delimiter,
            special: [
                b'\r',
                plain.quote.unwrap_or(b'\r'),
                plain.escape.unwrap_or(b'\r'),
            ],
        };
        let mut cutter = Cutter {
            bounds: Vec::with_capacity(bytes.len() / 8),
            start: 0,
            in_record: 0,
            rows: 0,
            width,
        };
        let mut blocks = bytes.chunks_exact(BLOCK);
        let mut base = 0u32;
        for block in &mut blocks {
            cutter.cut(base, scan.block(block.try_into().ok()?))?;
            base += BLOCK as u32;
        }
        let rest = blocks.remainder();
        let mut last = [0u8; BLOCK];
        last[..rest.len()].copy_from_slice(rest);
        cutter.cut(base, scan.scalar(&last).within(rest.len()))?;
        let Cutter {
            mut bounds,
            start,
            in_record,
            mut rows,
            ..
        } = cutter;
        // A last record without a line break.
        if (start as usize) < bytes.len() || in_record > 0 {
            bounds.push((start, bytes.len() as u32));
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

/// The bytes one step of the scan looks at.
const BLOCK: usize = 64;

/// Bit `i` of each mask stands for byte `i` of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Masks {
    delimiters: u64,
    newlines: u64,
    /// Bytes that need the full parser.
    special: u64,
}

impl Masks {
    /// Only the first `len` bytes of the block.
    fn within(self, len: usize) -> Self {
        let keep = u64::MAX.checked_shr(BLOCK as u32 - len as u32).unwrap_or(0);
        Self {
            delimiters: self.delimiters & keep,
            newlines: self.newlines & keep,
            special: self.special & keep,
        }
    }
}

/// Finds the bytes that cut fields, and those that make a chunk not plain,
/// a block at a time: one pass of vector compares where memchr's iterator
/// stopped at every delimiter, and without a pass of its own for the
/// special bytes (the two took a quarter of reading the Nexmark bids).
#[derive(Debug, Clone, Copy)]
struct Scan {
    delimiter: u8,
    special: [u8; 3],
}

impl Scan {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    fn block(&self, block: &[u8; BLOCK]) -> Masks {
        // SAFETY: the build targets SSE2, so the CPU has it.
        unsafe { self.sse2(block) }
    }

    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    fn block(&self, block: &[u8; BLOCK]) -> Masks {
        self.scalar(block)
    }

    fn scalar(&self, block: &[u8; BLOCK]) -> Masks {
        let mut masks = Masks {
            delimiters: 0,
            newlines: 0,
            special: 0,
        };
        for (i, &byte) in block.iter().enumerate() {
            masks.delimiters |= u64::from(byte == self.delimiter) << i;
            masks.newlines |= u64::from(byte == b'\n') << i;
            masks.special |= u64::from(self.special.contains(&byte)) << i;
        }
        masks
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[target_feature(enable = "sse2")]
    fn sse2(&self, block: &[u8; BLOCK]) -> Masks {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let splat = |byte: u8| _mm_set1_epi8(byte as i8);
        let (delimiter, newline) = (splat(self.delimiter), splat(b'\n'));
        let special = self.special.map(splat);
        let mut masks = Masks {
            delimiters: 0,
            newlines: 0,
            special: 0,
        };
        // The masks of 16 bytes, as the low 16 bits of an i32.
        let bits = |mask: i32| u64::from(mask as u16);
        for (k, lane) in block.as_chunks::<16>().0.iter().enumerate() {
            // SAFETY: an unaligned load of the 16 bytes of `lane`.
            let v = unsafe { _mm_loadu_si128(lane.as_ptr().cast()) };
            let shift = 16 * k;
            masks.delimiters |= bits(_mm_movemask_epi8(_mm_cmpeq_epi8(v, delimiter))) << shift;
            masks.newlines |= bits(_mm_movemask_epi8(_mm_cmpeq_epi8(v, newline))) << shift;
            let any = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, special[0]), _mm_cmpeq_epi8(v, special[1])),
                _mm_cmpeq_epi8(v, special[2]),
            );
            masks.special |= bits(_mm_movemask_epi8(any)) << shift;
        }
        masks
    }
}

/// Cuts fields at the bytes a scan found, checking records as it goes.
struct Cutter {
    bounds: Vec<(u32, u32)>,
    /// Where the current field starts.
    start: u32,
    /// Fields of the current record cut so far.
    in_record: usize,
    rows: usize,
    width: usize,
}

impl Cutter {
    /// Cuts at the delimiters and line breaks of the block at `base`;
    /// `None` if the chunk is not plain.
    fn cut(&mut self, base: u32, masks: Masks) -> Option<()> {
        if masks.special != 0 {
            return None;
        }
        let mut cuts = masks.delimiters | masks.newlines;
        while cuts != 0 {
            let i = cuts.trailing_zeros();
            cuts &= cuts - 1;
            let at = base + i;
            let newline = (masks.newlines >> i) & 1 == 1;
            if newline && self.in_record == 0 && at == self.start {
                // A blank line, which csv-core skips.
                return None;
            }
            self.bounds.push((self.start, at));
            self.in_record += 1;
            self.start = at + 1;
            if newline {
                if self.in_record != self.width {
                    return None;
                }
                self.in_record = 0;
                self.rows += 1;
            }
        }
        Some(())
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
        DataType::Int8 => integers::<Int8Type>(fields, c)?,
        DataType::Int16 => integers::<Int16Type>(fields, c)?,
        DataType::Int32 => integers::<Int32Type>(fields, c)?,
        DataType::Int64 => integers::<Int64Type>(fields, c)?,
        DataType::UInt8 => integers::<UInt8Type>(fields, c)?,
        DataType::UInt16 => integers::<UInt16Type>(fields, c)?,
        DataType::UInt32 => integers::<UInt32Type>(fields, c)?,
        DataType::UInt64 => integers::<UInt64Type>(fields, c)?,
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
    // The column's exact size, so that its bytes are not copied as it grows.
    let bytes = fields
        .bounds
        .iter()
        .skip(c)
        .step_by(fields.width)
        .map(|&(start, end)| (end - start) as usize)
        .sum();
    let mut builder = StringBuilder::with_capacity(fields.rows, bytes);
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
    mut parse: impl FnMut(&str) -> Option<T::Native>,
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

/// Integers: digits with an optional `-` and no more than an `i64` always
/// holds are read here, anything else by arrow's parser (atoi's checked
/// steps took a twelfth of reading a Nexmark bid).
fn integers<T>(fields: &Fields<'_>, c: usize) -> Option<ArrayRef>
where
    T: ArrowPrimitiveType + Parser,
    T::Native: TryFrom<i64>,
{
    let array = built::<T>(fields, c, |text| {
        plain_integer(text)
            .and_then(|n| T::Native::try_from(n).ok())
            .or_else(|| T::parse(text))
    })?;
    Some(Arc::new(array))
}

/// Up to 18 digits after an optional `-`, which cannot overflow an `i64`.
fn plain_integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n = 0i64;
    for &digit in digits {
        let value = digit.wrapping_sub(b'0');
        if value > 9 {
            return None;
        }
        n = n * 10 + i64::from(value);
    }
    Some(if negative { -n } else { n })
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
        let mut plain = PlainTimestamps::default();
        let array = built::<T>(fields, c, |text| {
            if name.is_none()
                && let Some(value) = plain.read(text, T::UNIT)
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

/// Reads `yyyy-MM-dd HH:mm:ss[.f...]` (or with `T`), the shape
/// machine-written timestamps have, without arrow's general parser (which
/// took a tenth of the time of reading a table with one timestamp column):
/// the same value `string_to_datetime` gives for it in UTC. `None` for any
/// other shape, which then goes to `string_to_datetime`.
///
/// Event times come in order, so a field mostly has the date and time of
/// day of the field before (Nexmark makes 10,000 events a millisecond):
/// those are kept with their seconds, and such a field only has its
/// fraction read.
#[derive(Default)]
struct PlainTimestamps {
    /// The first 19 bytes of the last field read, and their seconds.
    last: Option<([u8; 19], i64)>,
}

impl PlainTimestamps {
    fn read(&mut self, text: &str, unit: TimeUnit) -> Option<i64> {
        let b = text.as_bytes();
        let (prefix, fraction) = b.split_first_chunk::<19>()?;
        let seconds = match self.last {
            Some((last, seconds)) if last == *prefix => seconds,
            _ => {
                let seconds = plain_seconds(prefix)?;
                self.last = Some((*prefix, seconds));
                seconds
            }
        };
        let nanos = match fraction {
            [] => 0,
            [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
                digits.iter().try_fold(0u32, |n, d| {
                    d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
                })? * 10u32.pow(9 - digits.len() as u32)
            }
            _ => return None,
        };
        Some(match unit {
            TimeUnit::Second => seconds,
            TimeUnit::Millisecond => seconds * 1_000 + i64::from(nanos / 1_000_000),
            TimeUnit::Microsecond => seconds * 1_000_000 + i64::from(nanos / 1_000),
            TimeUnit::Nanosecond => seconds
                .checked_mul(1_000_000_000)?
                .checked_add(i64::from(nanos))?,
        })
    }
}

/// The seconds since the epoch of `yyyy-MM-dd HH:mm:ss` (or with `T`).
fn plain_seconds(b: &[u8; 19]) -> Option<i64> {
    if b[4] != b'-'
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
    let days = days_from_civil(number(0..4)?, number(5..7)?, number(8..10)?)?;
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days * 86_400 + i64::from(hour * 3_600 + minute * 60 + second))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (year 0 to 9999), `None` if there is no such day. Howard Hinnant's
/// `days_from_civil`: chrono's date took a quarter of reading a
/// timestamp.
fn days_from_civil(year: u32, month: u32, day: u32) -> Option<i64> {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    // Years start in March, so that the leap day ends them.
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = i64::from((153 * ((month + 9) % 12) + 2) / 5 + day - 1);
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
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
    fn the_vector_scan_finds_what_the_scalar_one_finds() {
        let scan = Scan {
            delimiter: b'|',
            special: [b'\r', b'"', b'\\'],
        };
        let alphabet = b"|\n\r\"\\a,";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let block: [u8; BLOCK] = std::array::from_fn(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                alphabet[(state % alphabet.len() as u64) as usize]
            });
            assert_eq!(scan.block(&block), scan.scalar(&block));
        }
        let all = scan.scalar(&[b'|'; BLOCK]);
        assert_eq!(all.delimiters, u64::MAX);
        assert_eq!(all.within(3).delimiters, 0b111);
        assert_eq!(all.within(0).delimiters, 0);
        assert_eq!(all.within(BLOCK).delimiters, u64::MAX);
    }

    #[test]
    fn plain_timestamps_read_as_arrow_reads_them() {
        let texts = [
            "2015-07-15 00:00:01.000",
            "2015-07-15T08:05:03.5",
            "1969-12-31 23:59:59.999",
            "1969-12-31 23:59:59.123456789",
            "0001-01-01 00:00:00",
            "0000-03-01 00:00:00",
            "2024-02-29 12:00:00.000001",
            "2000-02-29 23:59:59",
            "2100-03-01 00:00:00",
            "9999-12-31 23:59:59.999",
            "1970-01-01 00:00:00",
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
                    assert_eq!(PlainTimestamps::default().read(text, unit), None, "{text}");
                    continue;
                }
                assert_eq!(
                    PlainTimestamps::default().read(text, unit),
                    Some(value),
                    "{text} in {unit:?}"
                );
            }
        }
        for other in [
            "2015-07-15",
            "2015-07-15 24:00:00",
            "2015-02-30 00:00:00",
            "2023-02-29 00:00:00",
            "2100-02-29 00:00:00",
            "2015-13-01 00:00:00",
            "2015-00-10 00:00:00",
            "2015-07-00 00:00:00",
            "2015-04-31 00:00:00",
            "2015-07-15 00:00:60",
            "2015-07-15 00:00:00Z",
            "2015-07-15 00:00:00.1234567890",
            "2015-07-15 00:00:00.",
        ] {
            assert_eq!(
                PlainTimestamps::default().read(other, TimeUnit::Millisecond),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn a_timestamp_repeating_the_seconds_before_reads_as_on_its_own() {
        let texts = [
            "2015-07-15 00:00:01.000",
            "2015-07-15 00:00:01.999",
            "2015-07-15 00:00:01",
            "2015-07-15 00:00:01.",
            "2015-07-15 00:00:01.5",
            "2015-07-15T00:00:01.5",
            "2015-07-16 00:00:01.5",
            "2015-07-16 00:00:01.1234567890",
            "2015-07-16 00:00:01.123456789",
            "2015-07-16 00:00:0",
            "2015-07-16 00:00:01.12x",
            "2015-02-30 00:00:01.1",
            "2015-02-30 00:00:01.2",
            "2015-07-16 00:00:01.7",
        ];
        for unit in [
            TimeUnit::Second,
            TimeUnit::Millisecond,
            TimeUnit::Nanosecond,
        ] {
            let mut memo = PlainTimestamps::default();
            for text in texts {
                let expected = string_to_datetime(&Utc, text)
                    .ok()
                    .and_then(|moment| match unit {
                        TimeUnit::Second => Some(moment.timestamp()),
                        TimeUnit::Millisecond => Some(moment.timestamp_millis()),
                        _ => moment.timestamp_nanos_opt(),
                    });
                let read = memo.read(text, unit);
                assert_eq!(read, PlainTimestamps::default().read(text, unit), "{text}");
                // Any plain reading is arrow's; what is not plain goes to arrow.
                if read.is_some() {
                    assert_eq!(read, expected, "{text} in {unit:?}");
                }
            }
        }
    }

    #[test]
    fn plain_integers_read_as_arrow_reads_them() {
        for text in [
            "0",
            "-0",
            "7",
            "-7",
            "00012",
            "123456789012345678",
            "-123456789012345678",
            "1234567890123456789",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "",
            "-",
            "+5",
            " 5",
            "5 ",
            "1x",
            "x1",
            "1.0",
            "--1",
        ] {
            let plain = plain_integer(text);
            if plain.is_some() {
                assert_eq!(plain, Int64Type::parse(text), "{text:?}");
            }
            let read = plain.or_else(|| Int64Type::parse(text));
            assert_eq!(read, Int64Type::parse(text), "{text:?}");
        }
        assert_eq!(
            plain_integer("123456789012345678"),
            Some(123_456_789_012_345_678)
        );
        assert_eq!(plain_integer("1234567890123456789"), None);
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
