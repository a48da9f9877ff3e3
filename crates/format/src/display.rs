//! How values are spelled as text, the way Flink spells them.
//!
//! Three audiences read Weir's values as text and each expects Flink's exact
//! output: the print connector ([`flink_row`], Java's `Row#toString` over the
//! external objects, e.g. `+I[1001, abc, 2020-04-15T08:05:00.123, null]`), the
//! SQL client ([`sql_value`], Flink's `CAST(x AS STRING)` in printing mode, e.g.
//! `2020-04-15 08:05:00.123`, `TRUE`), and the text formats (CSV and JSON
//! writers, Flink's `TimeFormats` plus Jackson's number output). One renderer
//! serves all three, switched by a `Dialect`, so the Java quirks (`1.0E10`,
//! trimmed fractions, `BigDecimal` notation) live in one place.
//!
//! Rendering works on Arrow arrays directly: callers keep the array and ask for
//! a row, so there is no per-row allocation beyond the output string. Types
//! without a Flink rule fall back to arrow's own display; nothing panics.

use std::fmt::Write;

use arrow::array::{Array, ArrayRef, AsArray, downcast_dictionary_array};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, IntervalUnit,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

/// Renders row `row` of `batch` as Flink's print connector does (`Row#toString`):
/// `<kind>[v1, v2, ...]` with NULL as `null`, strings unquoted, timestamps as
/// `LocalDateTime#toString` (`2020-04-15T08:05`), TIMESTAMP_LTZ as
/// `Instant#toString` (`2020-04-15T08:05:00Z`). `kind_short` is e.g. `+I`.
pub fn flink_row(kind_short: &str, batch: &RecordBatch, row: usize) -> String {
    let mut out = String::with_capacity(16 * batch.num_columns() + kind_short.len() + 2);
    out.push_str(kind_short);
    out.push('[');
    for (i, column) in batch.columns().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_element(&mut out, column.as_ref(), row, &Dialect::Print);
    }
    out.push(']');
    out
}

/// Renders one value as Flink's SQL client shows it (`None` for NULL):
/// timestamps `2020-04-15 08:05:00.123` with as many fraction digits as the
/// column's unit, TIMESTAMP_LTZ in the column's time zone, dates `yyyy-MM-dd`,
/// decimals with their scale, booleans `TRUE`/`FALSE`, bytes `x'0a1b'`.
pub fn sql_value(array: &ArrayRef, row: usize) -> Option<String> {
    if is_null_at(array.as_ref(), row) {
        return None;
    }
    let mut out = String::new();
    write_value(&mut out, array.as_ref(), row, &Dialect::SqlClient);
    Some(out)
}

/// Renders one value as Java's `toString` of Flink's external object for it
/// (`None` for NULL): what the print connector shows inside a row, and what
/// Flink's filesystem sink names a partition directory after
/// (`2020-04-15T08:05` for a TIMESTAMP, `2020-04-15` for a DATE).
pub fn java_string(array: &dyn Array, row: usize) -> Option<String> {
    if is_null_at(array, row) {
        return None;
    }
    let mut out = String::new();
    write_value(&mut out, array, row, &Dialect::Print);
    Some(out)
}

/// The Flink SQL name of an Arrow type (`BIGINT`, `TIMESTAMP_LTZ(3)`, `ARRAY<INT>`),
/// for messages. Types without a Flink counterpart use Arrow's name.
pub fn sql_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Null => "NULL".to_string(),
        DataType::Boolean => "BOOLEAN".to_string(),
        DataType::Int8 => "TINYINT".to_string(),
        DataType::Int16 => "SMALLINT".to_string(),
        DataType::Int32 => "INT".to_string(),
        DataType::Int64 => "BIGINT".to_string(),
        DataType::Float16 | DataType::Float32 => "FLOAT".to_string(),
        DataType::Float64 => "DOUBLE".to_string(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".to_string(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".to_string(),
        DataType::FixedSizeBinary(n) => format!("BINARY({n})"),
        DataType::Date32 | DataType::Date64 => "DATE".to_string(),
        DataType::Time32(unit) | DataType::Time64(unit) => format!("TIME({})", digits(*unit)),
        DataType::Timestamp(unit, None) => format!("TIMESTAMP({})", digits(*unit)),
        DataType::Timestamp(unit, Some(_)) => format!("TIMESTAMP_LTZ({})", digits(*unit)),
        DataType::Interval(IntervalUnit::YearMonth) => "INTERVAL YEAR TO MONTH".to_string(),
        DataType::Interval(_) | DataType::Duration(_) => "INTERVAL DAY TO SECOND".to_string(),
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::ListView(field)
        | DataType::LargeListView(field)
        | DataType::FixedSizeList(field, _) => {
            format!("ARRAY<{}>", sql_type_name(field.data_type()))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) if fields.len() == 2 => format!(
                "MAP<{}, {}>",
                sql_type_name(fields[0].data_type()),
                sql_type_name(fields[1].data_type())
            ),
            other => format!("MAP<{other}>"),
        },
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("`{}` {}", f.name(), sql_type_name(f.data_type())))
                .collect();
            format!("ROW<{}>", inner.join(", "))
        }
        DataType::Dictionary(_, value) => sql_type_name(value),
        other => other.to_string(),
    }
}

/// Which Flink component's spelling to produce.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect<'a> {
    /// The print connector (`Row#toString`).
    Print,
    /// The SQL client (`CAST(x AS STRING)` when printing).
    SqlClient,
    /// The CSV and JSON formats.
    Text(TextStyle<'a>),
}

/// The knobs on which Flink's text formats differ.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextStyle<'a> {
    /// Between date and time: `' '` (SQL standard) or `'T'` (ISO-8601).
    pub separator: char,
    /// Whether TIMESTAMP (without time zone) also gets a `Z` suffix
    /// (JSON's ISO-8601-WITH-OFFSET); TIMESTAMP_LTZ always does.
    pub naive_zone_suffix: bool,
    /// `BigDecimal#toString` (may use `E` notation) instead of plain digits.
    pub scientific_decimals: bool,
    /// Joins ARRAY elements and ROW fields (CSV's `array-element-delimiter`).
    pub element_delimiter: &'a str,
}

fn digits(unit: TimeUnit) -> usize {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// Whether slot `row` is NULL, including arrays without a validity buffer
/// that are NULL by type.
pub(crate) fn is_null_at(array: &dyn Array, row: usize) -> bool {
    matches!(array.data_type(), DataType::Null) || array.is_null(row)
}

/// Writes a value nested in (or at the top of) a row, NULL included.
fn write_element(out: &mut String, array: &dyn Array, row: usize, dialect: &Dialect<'_>) {
    if is_null_at(array, row) {
        out.push_str(match dialect {
            Dialect::Print => "null",
            Dialect::SqlClient => "NULL",
            Dialect::Text(_) => "",
        });
    } else {
        write_value(out, array, row, dialect);
    }
}

/// Writes the non-NULL value at `row`.
pub(crate) fn write_value(out: &mut String, array: &dyn Array, row: usize, dialect: &Dialect<'_>) {
    match array.data_type() {
        DataType::Boolean => {
            let value = array.as_boolean().value(row);
            out.push_str(match (dialect, value) {
                (Dialect::SqlClient, true) => "TRUE",
                (Dialect::SqlClient, false) => "FALSE",
                (_, true) => "true",
                (_, false) => "false",
            });
        }
        DataType::Int8 => push_display(out, array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => push_display(out, array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => push_display(out, array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => push_display(out, array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => push_display(out, array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => push_display(out, array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => push_display(out, array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => push_display(out, array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => {
            write_java_float(out, array.as_primitive::<Float16Type>().value(row).to_f32());
        }
        DataType::Float32 => {
            write_java_float(out, array.as_primitive::<Float32Type>().value(row));
        }
        DataType::Float64 => {
            write_java_double(out, array.as_primitive::<Float64Type>().value(row));
        }
        DataType::Decimal32(_, scale) => {
            let unscaled = array.as_primitive::<Decimal32Type>().value(row).to_string();
            write_decimal(out, &unscaled, *scale, dialect);
        }
        DataType::Decimal64(_, scale) => {
            let unscaled = array.as_primitive::<Decimal64Type>().value(row).to_string();
            write_decimal(out, &unscaled, *scale, dialect);
        }
        DataType::Decimal128(_, scale) => {
            let unscaled = array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_string();
            write_decimal(out, &unscaled, *scale, dialect);
        }
        DataType::Decimal256(_, scale) => {
            let unscaled = array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_string();
            write_decimal(out, &unscaled, *scale, dialect);
        }
        DataType::Utf8 => out.push_str(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => out.push_str(array.as_string::<i64>().value(row)),
        DataType::Utf8View => out.push_str(array.as_string_view().value(row)),
        DataType::Binary => write_bytes(out, array.as_binary::<i32>().value(row), dialect),
        DataType::LargeBinary => write_bytes(out, array.as_binary::<i64>().value(row), dialect),
        DataType::BinaryView => write_bytes(out, array.as_binary_view().value(row), dialect),
        DataType::FixedSizeBinary(_) => {
            write_bytes(out, array.as_fixed_size_binary().value(row), dialect)
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            match NaiveDate::from_num_days_from_ce_opt(days.saturating_add(EPOCH_DAYS_FROM_CE)) {
                Some(date) => write_date(out, date),
                None => push_display(out, days),
            }
        }
        DataType::Date64 => {
            let millis = array.as_primitive::<Date64Type>().value(row);
            match DateTime::from_timestamp_millis(millis) {
                Some(date_time) => write_date(out, date_time.date_naive()),
                None => push_display(out, millis),
            }
        }
        DataType::Time32(unit) | DataType::Time64(unit) => {
            write_time_value(out, array, row, *unit, dialect)
        }
        DataType::Timestamp(unit, tz) => {
            let value = timestamp_value(array, row, *unit);
            write_timestamp(out, value, *unit, tz.as_deref(), dialect);
        }
        DataType::List(_) => write_list(out, array.as_list::<i32>().value(row).as_ref(), dialect),
        DataType::LargeList(_) => {
            write_list(out, array.as_list::<i64>().value(row).as_ref(), dialect)
        }
        DataType::FixedSizeList(_, _) => {
            write_list(out, array.as_fixed_size_list().value(row).as_ref(), dialect)
        }
        DataType::Struct(_) => {
            let fields = array.as_struct();
            let (open, separator, close) = match dialect {
                Dialect::Print => ("+I[", ", ", "]"),
                Dialect::SqlClient => ("(", ", ", ")"),
                Dialect::Text(style) => ("", style.element_delimiter, ""),
            };
            out.push_str(open);
            for (i, column) in fields.columns().iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                write_element(out, column.as_ref(), row, dialect);
            }
            out.push_str(close);
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            out.push('{');
            if entries.num_columns() == 2 {
                for i in 0..entries.len() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_element(out, entries.column(0).as_ref(), i, dialect);
                    out.push('=');
                    write_element(out, entries.column(1).as_ref(), i, dialect);
                }
            }
            out.push('}');
        }
        DataType::Dictionary(_, _) => write_dictionary_value(out, array, row, dialect),
        _ => write_arrow_display(out, array, row),
    }
}

fn write_dictionary_value(out: &mut String, array: &dyn Array, row: usize, dialect: &Dialect<'_>) {
    downcast_dictionary_array!(
        array => match array.key(row) {
            Some(key) => write_element(out, array.values().as_ref(), key, dialect),
            None => write_element(out, &arrow::array::NullArray::new(1), 0, dialect),
        },
        _ => write_arrow_display(out, array, row)
    )
}

fn write_arrow_display(out: &mut String, array: &dyn Array, row: usize) {
    match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(formatter) => {
            let _ = write!(out, "{}", formatter.value(row));
        }
        Err(_) => {
            let _ = write!(out, "<{}>", array.data_type());
        }
    }
}

fn push_display(out: &mut String, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
}

fn write_list(out: &mut String, elements: &dyn Array, dialect: &Dialect<'_>) {
    let (open, separator, close) = match dialect {
        Dialect::Print | Dialect::SqlClient => ("[", ", ", "]"),
        Dialect::Text(style) => ("", style.element_delimiter, ""),
    };
    out.push_str(open);
    for i in 0..elements.len() {
        if i > 0 {
            out.push_str(separator);
        }
        write_element(out, elements, i, dialect);
    }
    out.push_str(close);
}

fn write_bytes(out: &mut String, bytes: &[u8], dialect: &Dialect<'_>) {
    match dialect {
        // Java's Arrays.toString(byte[]): signed decimal bytes.
        Dialect::Print => {
            out.push('[');
            for (i, byte) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_display(out, *byte as i8);
            }
            out.push(']');
        }
        Dialect::SqlClient => {
            out.push_str("x'");
            for byte in bytes {
                let _ = write!(out, "{byte:02x}");
            }
            out.push('\'');
        }
        Dialect::Text(_) => BASE64.encode_string(bytes, out),
    }
}

fn write_decimal(out: &mut String, unscaled: &str, scale: i8, dialect: &Dialect<'_>) {
    match dialect {
        // The print connector shows java.math.BigDecimal#toString.
        Dialect::Print => java_big_decimal(out, unscaled, scale),
        // The SQL client shows DecimalData#toString, which is plain.
        Dialect::SqlClient => plain_decimal(out, unscaled, scale),
        // Flink's CSV and JSON writers hand the value to Jackson as a number
        // node, which strips trailing zeros: 2.50 is written 2.5, 10.00 1E+1.
        Dialect::Text(style) if style.scientific_decimals => {
            let (unscaled, scale) = strip_trailing_zeros(unscaled, scale);
            java_big_decimal(out, unscaled, scale);
        }
        Dialect::Text(_) => plain_decimal(out, unscaled, scale),
    }
}

/// `BigDecimal#stripTrailingZeros`: the same number with the fewest
/// digits, zero as `0`.
fn strip_trailing_zeros(unscaled: &str, scale: i8) -> (&str, i8) {
    let (_, digits) = split_sign(unscaled);
    if digits.bytes().all(|d| d == b'0') {
        return ("0", 0);
    }
    let zeros = digits.bytes().rev().take_while(|d| *d == b'0').count();
    // A scale below i8's range cannot come from a DECIMAL(38, s) value.
    let zeros = zeros.min((scale as i32 - i8::MIN as i32) as usize);
    (&unscaled[..unscaled.len() - zeros], scale - zeros as i8)
}

/// `BigDecimal#toPlainString`.
fn plain_decimal(out: &mut String, unscaled: &str, scale: i8) {
    let (negative, digits) = split_sign(unscaled);
    if negative {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(digits);
        if digits != "0" {
            out.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        }
        return;
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (int_part, frac_part) = digits.split_at(digits.len() - scale);
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac_part);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(digits);
    }
}

/// `BigDecimal#toString`: plain unless the scale is negative or the number is
/// smaller than 1e-6, then `d.dddE±n`.
fn java_big_decimal(out: &mut String, unscaled: &str, scale: i8) {
    let (negative, digits) = split_sign(unscaled);
    let adjusted = -(scale as i64) + (digits.len() as i64 - 1);
    if scale == 0 || (scale > 0 && adjusted >= -6) {
        plain_decimal(out, unscaled, scale);
        return;
    }
    if negative {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('E');
    if adjusted >= 0 {
        out.push('+');
    }
    push_display(out, adjusted);
}

fn split_sign(number: &str) -> (bool, &str) {
    match number.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, number),
    }
}

/// Java's `Double#toString`: shortest round-trip digits, plain between 1e-3 and
/// 1e7, otherwise `d.dddE±n`; always at least one fraction digit.
fn write_java_double(out: &mut String, value: f64) {
    if !write_non_finite(out, value.is_nan(), value.is_infinite(), value > 0.0) {
        let mut rust = StackText::default();
        let _ = write!(rust, "{value:e}");
        write_java_layout(out, rust.as_str());
    }
}

/// Java's `Float#toString`, the `f32` analogue of [`write_java_double`].
fn write_java_float(out: &mut String, value: f32) {
    if !write_non_finite(out, value.is_nan(), value.is_infinite(), value > 0.0) {
        let mut rust = StackText::default();
        let _ = write!(rust, "{value:e}");
        write_java_layout(out, rust.as_str());
    }
}

/// Writes Java's `NaN`/`Infinity`/`-Infinity`; false if the value is finite.
fn write_non_finite(out: &mut String, nan: bool, infinite: bool, positive: bool) -> bool {
    let text = match (nan, infinite, positive) {
        (true, _, _) => "NaN",
        (false, true, true) => "Infinity",
        (false, true, false) => "-Infinity",
        (false, false, _) => return false,
    };
    out.push_str(text);
    true
}

/// A small stack buffer for Rust's `{:e}` output, so formatting a float does
/// not allocate; text past its capacity (never produced for floats) is dropped.
struct StackText {
    bytes: [u8; 48],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        Self {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("0e0")
    }
}

impl Write for StackText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        if end > self.bytes.len() {
            return Err(std::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Rewrites Rust's shortest `{:e}` output (`-1.234e-5`) in Java's layout.
fn write_java_layout(out: &mut String, rust: &str) {
    let (negative, rest) = split_sign(rust);
    let (mantissa, exponent) = rest.split_once('e').unwrap_or((rest, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let mut digit_bytes = [b'0'; 48];
    let mut len = 0;
    for byte in mantissa.bytes().filter(|b| b.is_ascii_digit()) {
        if let Some(slot) = digit_bytes.get_mut(len) {
            *slot = byte;
            len += 1;
        }
    }
    let digits = std::str::from_utf8(&digit_bytes[..len]).unwrap_or("0");
    if negative {
        out.push('-');
    }
    if digits.bytes().all(|b| b == b'0') {
        out.push_str("0.0");
        return;
    }
    if (-3..7).contains(&exponent) {
        if exponent >= 0 {
            let int_len = exponent as usize + 1;
            if digits.len() > int_len {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            } else {
                out.push_str(digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            out.push_str(digits);
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        if digits.len() > 1 {
            out.push_str(&digits[1..]);
        } else {
            out.push('0');
        }
        out.push('E');
        push_display(out, exponent);
    }
}

/// Pushes `value` in decimal, zero-padded to `width` digits, without the
/// formatting machinery (dates and times are written for every row).
fn push_padded(out: &mut String, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut rest = value;
    let mut len = 0;
    while rest > 0 || len == 0 {
        digits[len] = b'0' + (rest % 10) as u8;
        rest /= 10;
        len += 1;
    }
    out.extend(std::iter::repeat_n('0', width.saturating_sub(len)));
    out.extend(digits[..len].iter().rev().map(|d| char::from(*d)));
}

/// Days from 0001-01-01 (chrono's CE day 1) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// `LocalDate#toString`: four-digit years, `+` for years past 9999.
fn write_date(out: &mut String, date: NaiveDate) {
    let year = date.year();
    if year > 9999 {
        out.push('+');
    } else if year < 0 {
        out.push('-');
    }
    push_padded(out, year.unsigned_abs(), 4);
    out.push('-');
    push_padded(out, date.month(), 2);
    out.push('-');
    push_padded(out, date.day(), 2);
}

/// How the fraction of a second is written.
#[derive(Debug, Clone, Copy)]
enum Fraction {
    /// `DateTimeFormatter.appendFraction(NANO, 0, 9, true)`: trailing zeros dropped.
    Trimmed,
    /// `LocalTime#toString` and `Instant#toString`: 3, 6 or 9 digits.
    JavaGroups,
    /// Exactly this many digits (the SQL client pads to the type's precision).
    Digits(usize),
}

fn write_fraction(out: &mut String, nanos: u32, fraction: Fraction) {
    // The nine digits of the nanoseconds, without allocating per value.
    let mut nine = [b'0'; 9];
    let mut rest = nanos.min(999_999_999);
    for digit in nine.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let len = match fraction {
        Fraction::Trimmed => nine
            .iter()
            .rposition(|d| *d != b'0')
            .map_or(0, |last| last + 1),
        Fraction::JavaGroups if nanos == 0 => 0,
        Fraction::JavaGroups if nanos.is_multiple_of(1_000_000) => 3,
        Fraction::JavaGroups if nanos.is_multiple_of(1_000) => 6,
        Fraction::JavaGroups => 9,
        Fraction::Digits(len) => len.min(9),
    };
    if len > 0 {
        out.push('.');
        out.extend(nine[..len].iter().map(|d| char::from(*d)));
    }
}

/// `HH:mm`, then `:ss` when `always_seconds` or the seconds/fraction are non-zero
/// (`LocalTime#toString` omits zero seconds), then the fraction.
fn write_clock(
    out: &mut String,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    always_seconds: bool,
    fraction: Fraction,
) {
    push_padded(out, hour, 2);
    out.push(':');
    push_padded(out, minute, 2);
    if always_seconds || second != 0 || nanos != 0 {
        out.push(':');
        push_padded(out, second, 2);
        write_fraction(out, nanos, fraction);
    }
}

fn write_time_value(
    out: &mut String,
    array: &dyn Array,
    row: usize,
    unit: TimeUnit,
    dialect: &Dialect<'_>,
) {
    let nanos_of_day = match unit {
        TimeUnit::Second => array
            .as_primitive_opt::<Time32SecondType>()
            .map(|a| a.value(row) as i64 * 1_000_000_000),
        TimeUnit::Millisecond => array
            .as_primitive_opt::<Time32MillisecondType>()
            .map(|a| a.value(row) as i64 * 1_000_000),
        TimeUnit::Microsecond => array
            .as_primitive_opt::<Time64MicrosecondType>()
            .map(|a| a.value(row).saturating_mul(1_000)),
        TimeUnit::Nanosecond => array
            .as_primitive_opt::<Time64NanosecondType>()
            .map(|a| a.value(row)),
    };
    // Arrow only builds Time32 in seconds/millis and Time64 in micros/nanos;
    // anything else is shown as arrow would.
    let Some(nanos_of_day) = nanos_of_day else {
        write_arrow_display(out, array, row);
        return;
    };
    if !(0..86_400_000_000_000).contains(&nanos_of_day) {
        push_display(out, nanos_of_day);
        return;
    }
    let seconds = (nanos_of_day / 1_000_000_000) as u32;
    let nanos = (nanos_of_day % 1_000_000_000) as u32;
    let (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match dialect {
        Dialect::Print => write_clock(
            out,
            hour,
            minute,
            second,
            nanos,
            false,
            Fraction::JavaGroups,
        ),
        Dialect::SqlClient => write_clock(
            out,
            hour,
            minute,
            second,
            nanos,
            true,
            Fraction::Digits(digits(unit)),
        ),
        Dialect::Text(_) => write_clock(out, hour, minute, second, nanos, true, Fraction::Trimmed),
    }
}

/// The raw i64 of a timestamp slot, whatever its unit.
fn timestamp_value(array: &dyn Array, row: usize, unit: TimeUnit) -> i64 {
    use arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
    }
}

/// The UTC date-time of a timestamp value, `None` when chrono cannot represent it.
fn timestamp_to_utc(value: i64, unit: TimeUnit) -> Option<NaiveDateTime> {
    let (per_second, nanos_per_tick) = match unit {
        TimeUnit::Second => (1, 1_000_000_000),
        TimeUnit::Millisecond => (1_000, 1_000_000),
        TimeUnit::Microsecond => (1_000_000, 1_000),
        TimeUnit::Nanosecond => (1_000_000_000, 1),
    };
    let seconds = value.div_euclid(per_second);
    let nanos = (value.rem_euclid(per_second) * nanos_per_tick) as u32;
    DateTime::from_timestamp(seconds, nanos).map(|utc| utc.naive_utc())
}

/// Local wall-clock time of a UTC instant in the time zone `tz` (an Arrow
/// time zone string); UTC itself needs no lookup.
fn in_zone(utc: NaiveDateTime, tz: &str) -> NaiveDateTime {
    if matches!(tz, "UTC" | "+00:00" | "Z" | "Etc/UTC" | "utc") {
        return utc;
    }
    match tz.parse::<arrow::array::timezone::Tz>() {
        Ok(zone) => utc.and_utc().with_timezone(&zone).naive_local(),
        Err(_) => utc,
    }
}

fn write_timestamp(
    out: &mut String,
    value: i64,
    unit: TimeUnit,
    tz: Option<&str>,
    dialect: &Dialect<'_>,
) {
    let Some(utc) = timestamp_to_utc(value, unit) else {
        push_display(out, value);
        return;
    };
    match dialect {
        Dialect::Print => {
            write_date(out, utc.date());
            out.push('T');
            match tz {
                // LocalDateTime#toString.
                None => write_clock(
                    out,
                    utc.hour(),
                    utc.minute(),
                    utc.second(),
                    utc.nanosecond(),
                    false,
                    Fraction::JavaGroups,
                ),
                // Instant#toString: always seconds, always UTC.
                Some(_) => {
                    write_clock(
                        out,
                        utc.hour(),
                        utc.minute(),
                        utc.second(),
                        utc.nanosecond(),
                        true,
                        Fraction::JavaGroups,
                    );
                    out.push('Z');
                }
            }
        }
        Dialect::SqlClient => {
            let local = match tz {
                Some(tz) => in_zone(utc, tz),
                None => utc,
            };
            write_date(out, local.date());
            out.push(' ');
            write_clock(
                out,
                local.hour(),
                local.minute(),
                local.second(),
                local.nanosecond(),
                true,
                Fraction::Digits(digits(unit)),
            );
        }
        Dialect::Text(style) => {
            write_date(out, utc.date());
            out.push(style.separator);
            write_clock(
                out,
                utc.hour(),
                utc.minute(),
                utc.second(),
                utc.nanosecond(),
                true,
                Fraction::Trimmed,
            );
            if tz.is_some() || style.naive_zone_suffix {
                out.push('Z');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
        DurationSecondArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
        Int64Array, ListArray, NullArray, StringArray, StructArray, Time64MicrosecondArray,
        TimestampMicrosecondArray, TimestampMillisecondArray, TimestampSecondArray,
    };
    use arrow::datatypes::{Field, Int32Type as I32, Schema};

    use super::*;

    fn sql(array: ArrayRef, row: usize) -> Option<String> {
        sql_value(&array, row)
    }

    fn print_one(array: ArrayRef, row: usize) -> String {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "c",
            array.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![array]).unwrap();
        flink_row("+I", &batch, row)
    }

    // 2020-04-15 08:05:00 UTC
    const T0: i64 = 1_586_937_900;

    #[test]
    fn flink_row_matches_print_connector() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("price", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1001])),
                Arc::new(StringArray::from(vec!["abc"])),
                Arc::new(TimestampMillisecondArray::from(vec![T0 * 1000 + 123])),
                Arc::new(Float64Array::from(vec![None])),
            ],
        )
        .unwrap();
        assert_eq!(
            flink_row("+I", &batch, 0),
            "+I[1001, abc, 2020-04-15T08:05:00.123, null]"
        );
        assert_eq!(flink_row("-U", &batch, 0).get(..3), Some("-U["));
    }

    #[test]
    fn print_timestamps_follow_local_date_time_to_string() {
        let ts = |v: i64| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(vec![v])) };
        assert_eq!(print_one(ts(T0 * 1_000_000), 0), "+I[2020-04-15T08:05]");
        assert_eq!(
            print_one(ts((T0 + 1) * 1_000_000), 0),
            "+I[2020-04-15T08:05:01]"
        );
        assert_eq!(
            print_one(ts(T0 * 1_000_000 + 120_000), 0),
            "+I[2020-04-15T08:05:00.120]"
        );
        assert_eq!(
            print_one(ts(T0 * 1_000_000 + 123_456), 0),
            "+I[2020-04-15T08:05:00.123456]"
        );
        let ltz: ArrayRef =
            Arc::new(TimestampMillisecondArray::from(vec![T0 * 1000]).with_timezone("UTC"));
        assert_eq!(print_one(ltz, 0), "+I[2020-04-15T08:05:00Z]");
    }

    #[test]
    fn print_of_each_type() {
        assert_eq!(print_one(Arc::new(Int8Array::from(vec![-8])), 0), "+I[-8]");
        assert_eq!(print_one(Arc::new(Int16Array::from(vec![16])), 0), "+I[16]");
        assert_eq!(print_one(Arc::new(Int32Array::from(vec![32])), 0), "+I[32]");
        assert_eq!(
            print_one(Arc::new(Float64Array::from(vec![1e10])), 0),
            "+I[1.0E10]"
        );
        assert_eq!(
            print_one(Arc::new(Float32Array::from(vec![1.5f32])), 0),
            "+I[1.5]"
        );
        assert_eq!(
            print_one(Arc::new(BooleanArray::from(vec![true])), 0),
            "+I[true]"
        );
        let decimal = Decimal128Array::from(vec![1230])
            .with_precision_and_scale(10, 2)
            .unwrap();
        assert_eq!(print_one(Arc::new(decimal), 0), "+I[12.30]");
        assert_eq!(
            print_one(Arc::new(Date32Array::from(vec![18367])), 0),
            "+I[2020-04-15]"
        );
        assert_eq!(
            print_one(
                Arc::new(Time64MicrosecondArray::from(vec![29_100_000_000])),
                0
            ),
            "+I[08:05]"
        );
        assert_eq!(
            print_one(Arc::new(BinaryArray::from(vec![&[1u8, 255][..]])), 0),
            "+I[[1, -1]]"
        );
        let list = ListArray::from_iter_primitive::<I32, _, _>(vec![Some(vec![Some(1), None])]);
        assert_eq!(print_one(Arc::new(list), 0), "+I[[1, null]]");
        let row = StructArray::from(vec![(
            Arc::new(Field::new("a", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
        )]);
        assert_eq!(print_one(Arc::new(row), 0), "+I[+I[x]]");
        assert_eq!(print_one(Arc::new(NullArray::new(1)), 0), "+I[null]");
    }

    #[test]
    fn sql_client_values() {
        assert_eq!(
            sql(Arc::new(Int64Array::from(vec![Some(7), None])), 1),
            None
        );
        assert_eq!(
            sql(Arc::new(Int64Array::from(vec![7])), 0).as_deref(),
            Some("7")
        );
        assert_eq!(
            sql(Arc::new(BooleanArray::from(vec![true, false])), 1).as_deref(),
            Some("FALSE")
        );
        assert_eq!(
            sql(
                Arc::new(TimestampMillisecondArray::from(vec![T0 * 1000 + 100])),
                0
            )
            .as_deref(),
            Some("2020-04-15 08:05:00.100")
        );
        assert_eq!(
            sql(Arc::new(TimestampSecondArray::from(vec![T0])), 0).as_deref(),
            Some("2020-04-15 08:05:00")
        );
        let ltz: ArrayRef = Arc::new(
            TimestampMillisecondArray::from(vec![T0 * 1000]).with_timezone("Asia/Shanghai"),
        );
        assert_eq!(sql(ltz, 0).as_deref(), Some("2020-04-15 16:05:00.000"));
        let decimal = Decimal128Array::from(vec![-5])
            .with_precision_and_scale(10, 2)
            .unwrap();
        assert_eq!(sql(Arc::new(decimal), 0).as_deref(), Some("-0.05"));
        assert_eq!(
            sql(Arc::new(Date32Array::from(vec![0])), 0).as_deref(),
            Some("1970-01-01")
        );
        assert_eq!(
            sql(Arc::new(Float64Array::from(vec![0.5])), 0).as_deref(),
            Some("0.5")
        );
        assert_eq!(
            sql(Arc::new(BinaryArray::from(vec![&[10u8, 27][..]])), 0).as_deref(),
            Some("x'0a1b'")
        );
        assert_eq!(
            sql(Arc::new(StringArray::from(vec!["a b"])), 0).as_deref(),
            Some("a b")
        );
        let list = ListArray::from_iter_primitive::<I32, _, _>(vec![Some(vec![Some(1), None])]);
        assert_eq!(sql(Arc::new(list), 0).as_deref(), Some("[1, NULL]"));
        assert_eq!(sql(Arc::new(NullArray::new(1)), 0), None);
    }

    #[test]
    fn fallbacks_never_panic() {
        let dictionary: DictionaryArray<I32> = vec!["a", "b", "a"].into_iter().collect();
        assert_eq!(sql(Arc::new(dictionary), 2).as_deref(), Some("a"));
        let duration: ArrayRef = Arc::new(DurationSecondArray::from(vec![61]));
        assert!(sql(duration, 0).is_some());
    }

    fn java_double(value: f64) -> String {
        let mut out = String::new();
        write_java_double(&mut out, value);
        out
    }

    fn java_float(value: f32) -> String {
        let mut out = String::new();
        write_java_float(&mut out, value);
        out
    }

    #[test]
    fn java_number_formats() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(-0.0), "-0.0");
        assert_eq!(java_double(123.456), "123.456");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(9_999_999.0), "9999999.0");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(1.234e-5), "1.234E-5");
        assert_eq!(java_double(f64::NAN), "NaN");
        assert_eq!(java_double(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(java_float(0.1), "0.1");
        assert_eq!(java_float(1e10), "1.0E10");
        assert_eq!(java_float(f32::INFINITY), "Infinity");
        assert_eq!(java_double(f64::MIN_POSITIVE), "2.2250738585072014E-308");
        assert_eq!(java_double(-123_456_789.0), "-1.23456789E8");
    }

    #[test]
    fn big_decimal_formats() {
        let java = |unscaled: &str, scale: i8| {
            let mut out = String::new();
            java_big_decimal(&mut out, unscaled, scale);
            out
        };
        let plain = |unscaled: &str, scale: i8| {
            let mut out = String::new();
            plain_decimal(&mut out, unscaled, scale);
            out
        };
        assert_eq!(java("1230", 2), "12.30");
        assert_eq!(java("27", 9), "2.7E-8");
        assert_eq!(plain("27", 9), "0.000000027");
        assert_eq!(java("-5", 2), "-0.05");
        assert_eq!(java("123", -2), "1.23E+4");
        assert_eq!(plain("123", -2), "12300");
        assert_eq!(java("0", 2), "0.00");
    }

    /// The figures Flink 2.3's JSON and CSV writers gave for DECIMAL(18, 8)
    /// values read from "10.00", "2.50", "0.00", "-0.10" and "0.0000001".
    #[test]
    fn text_decimals_lose_trailing_zeros_as_in_flink() {
        let text = |unscaled: &str, scale: i8, scientific: bool| {
            let mut out = String::new();
            let style = TextStyle {
                separator: ' ',
                naive_zone_suffix: false,
                scientific_decimals: scientific,
                element_delimiter: ",",
            };
            write_decimal(&mut out, unscaled, scale, &Dialect::Text(style));
            out
        };
        assert_eq!(text("1000000000", 8, true), "1E+1");
        assert_eq!(text("250000000", 8, true), "2.5");
        assert_eq!(text("0", 8, true), "0");
        assert_eq!(text("-10000000", 8, true), "-0.1");
        assert_eq!(text("10", 8, true), "1E-7");
        assert_eq!(text("12345678900000000", 8, true), "123456789");
        assert_eq!(text("1000000000", 8, false), "10.00000000");
        assert_eq!(text("250", 2, false), "2.50");
    }
}
