//! Flink's date and time functions: formatting and parsing with Java patterns, epoch
//! conversions, field extraction and the current time.
//!
//! `TIMESTAMP(3)` results are `Timestamp(Millisecond, None)`; `TIMESTAMP_LTZ(3)` results are
//! `Timestamp(Millisecond, Some("UTC"))` (see the [crate] docs for why). A time-zone-aware
//! input of any zone is read as an instant and shown in the session time zone
//! (`datafusion.execution.time_zone`), as Flink shows `TIMESTAMP_LTZ` in
//! `table.local-time-zone`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{Date32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::compute::kernels::cast::cast;
use arrow::compute::kernels::temporal::{DatePart, date_part};
use arrow::datatypes::{DataType, Date32Type, FieldRef, TimeUnit};
use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::FunctionError;
use crate::call::{self, Call, Compiled, Floats, Ints};
use crate::java_format::{self, DEFAULT_TIMESTAMP_PATTERN, JavaDateFormat, Trailing};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    let mut functions = vec![
        ScalarUDF::new_from_impl(DateFormat::new()),
        ScalarUDF::new_from_impl(ToTimestamp::new()),
        ScalarUDF::new_from_impl(ToDate::new()),
        ScalarUDF::new_from_impl(ToTimestampLtz::new()),
        ScalarUDF::new_from_impl(FromUnixtime::new()),
        ScalarUDF::new_from_impl(UnixTimestamp::new()),
        ScalarUDF::new_from_impl(CurrentTimestamp::new()),
        ScalarUDF::new_from_impl(Proctime::new()),
        ScalarUDF::new_from_impl(LocalTimestamp::new()),
    ];
    functions.extend(
        Field::ALL
            .into_iter()
            .map(|field| ScalarUDF::new_from_impl(Extract::new(field))),
    );
    functions
}

/// Flink's `TIMESTAMP_LTZ(3)`.
fn ltz_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from(UTC)))
}

const UTC: &str = "UTC";

/// The session time zone: Flink's `table.local-time-zone`, carried in DataFusion's
/// `datafusion.execution.time_zone`.
struct SessionZone {
    name: String,
    zone: Tz,
}

impl SessionZone {
    fn new(config: &ConfigOptions) -> Result<Self> {
        let name = config.execution.time_zone.as_deref().unwrap_or(UTC);
        let zone = name.parse::<Tz>().map_err(|_| FunctionError::TimeZone {
            name: name.to_owned(),
        })?;
        Ok(Self {
            name: name.to_owned(),
            zone,
        })
    }

    /// Wall-clock time and offset in this zone at a UTC instant.
    fn local(&self, utc: NaiveDateTime) -> (NaiveDateTime, FixedOffset) {
        let local = self.zone.from_utc_datetime(&utc);
        (local.naive_local(), local.offset().fix())
    }

    /// The instant a wall-clock time in this zone stands for. Like Java's lenient calendar,
    /// an ambiguous time (clocks going back) takes the earlier instant and a skipped time
    /// (clocks going forward) is moved forward by an hour.
    fn instant(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        let local = match self.zone.from_local_datetime(&wall) {
            LocalResult::None => self
                .zone
                .from_local_datetime(&(wall + TimeDelta::hours(1)))
                .earliest(),
            found => found.earliest(),
        };
        local.map(|t| t.with_timezone(&Utc))
    }
}

/// The instant a parsed text stands for: its own offset if it has one, else the session zone.
fn parsed_instant(
    parsed: java_format::ParsedDateTime,
    zone: &SessionZone,
) -> Option<DateTime<Utc>> {
    match parsed.offset {
        Some(offset) => offset
            .from_local_datetime(&parsed.wall)
            .single()
            .map(|t| t.with_timezone(&Utc)),
        None => zone.instant(parsed.wall),
    }
}

/// `DATE_FORMAT(timestamp | string, pattern)`: the value as a string in a Java date pattern.
///
/// A UDF because DataFusion's `date_format` is `to_char` with chrono patterns (`%Y`), where
/// Flink takes Java patterns (`yyyy`). A `TIMESTAMP_LTZ` is shown in the session time zone; a
/// string is first read as `yyyy-MM-dd HH:mm:ss`, and is NULL if it does not match.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "(timestamp or string, pattern string)";
        call::check_arity("DATE_FORMAT", EXPECTED, arg_types, 2..=2)?;
        let value = call::coerce_string("DATE_FORMAT", 0, &arg_types[0])
            .or_else(|_| call::coerce_timestamp("DATE_FORMAT", 0, &arg_types[0]))?;
        Ok(vec![
            value,
            call::coerce_string("DATE_FORMAT", 1, &arg_types[1])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zone = SessionZone::new(&args.config_options)?;
        let call = Call::new("DATE_FORMAT", args.args)?;
        let patterns = call.strings(1)?;
        let mut compiled = Compiled::new();
        let mut out = StringBuilder::with_capacity(call.rows(), call.rows() * 20);
        let (values, _) = call.column(0)?;
        if matches!(values.data_type(), DataType::Timestamp(_, _)) {
            let timestamps = call.timestamps(0)?;
            // Rows close in time share their text when the pattern is
            // coarser than their distance ('yyyy-MM-dd', 'HH:mm'): formatting
            // through chrono was most of a partitioned Nexmark q10's time.
            // Such a row is told from its value's seconds alone.
            let mut last: Option<Formatted> = None;
            let one_pattern = patterns.constant();
            for row in 0..call.rows() {
                let (Some(seconds), Some(pattern)) = (timestamps.seconds(row), patterns.get(row))
                else {
                    out.append_null();
                    continue;
                };
                if let Some(done) = &last
                    && let Some(resolution) = done.resolution
                    && seconds.div_euclid(resolution) == done.span
                    && (one_pattern || done.pattern == pattern)
                {
                    out.append_value(&done.text);
                    continue;
                }
                let Some(value) = timestamps.get(row)? else {
                    out.append_null();
                    continue;
                };
                if timestamps.zoned() {
                    let (wall, offset) = zone.local(value);
                    compiled.get(pattern, JavaDateFormat::new)?.format(
                        &mut out,
                        wall,
                        Some(offset),
                    )?;
                    out.append_value("");
                    continue;
                }
                let format = compiled.get(pattern, JavaDateFormat::new)?;
                let resolution = format.resolution_seconds();
                let mut text = String::new();
                format.format(&mut text, value, None)?;
                out.append_value(&text);
                last = Some(Formatted {
                    pattern: pattern.to_string(),
                    resolution,
                    span: resolution.map_or(0, |r| seconds.div_euclid(r)),
                    text,
                });
            }
        } else {
            let texts = call.strings(0)?;
            let input = JavaDateFormat::new(DEFAULT_TIMESTAMP_PATTERN)?;
            for row in 0..call.rows() {
                let (Some(text), Some(pattern)) = (texts.get(row), patterns.get(row)) else {
                    out.append_null();
                    continue;
                };
                // Flink parses and formats with the session zone, so a time the zone skips
                // comes out moved, and the offset letters show the zone's offset.
                let instant = input
                    .parse(text, Trailing::Ignore)
                    .and_then(|parsed| parsed_instant(parsed, &zone));
                let Some(instant) = instant else {
                    out.append_null();
                    continue;
                };
                let (wall, offset) = zone.local(instant.naive_utc());
                compiled
                    .get(pattern, JavaDateFormat::new)?
                    .format(&mut out, wall, Some(offset))?;
                out.append_value("");
            }
        }
        call.finish(call::array(out.finish()))
    }
}

/// The text `DATE_FORMAT` last wrote, and the span of time it stands for.
struct Formatted {
    pattern: String,
    /// The pattern's resolution in seconds, if it shows no fraction of one.
    resolution: Option<i64>,
    /// The value's seconds divided by the resolution.
    span: i64,
    text: String,
}

/// `TO_TIMESTAMP(string [, pattern])`: a `TIMESTAMP(3)` read from `string` in a Java pattern
/// (default `yyyy-MM-dd HH:mm:ss`, with optional fraction); NULL if it cannot be read.
///
/// A UDF because DataFusion's `to_timestamp` takes chrono patterns, returns nanoseconds and
/// fails on bad input.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestamp {
    signature: Signature,
}

impl ToTimestamp {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        "to_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "(string [, pattern string])";
        call::check_arity("TO_TIMESTAMP", EXPECTED, arg_types, 1..=2)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| call::coerce_string("TO_TIMESTAMP", position, data_type))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = Call::new("TO_TIMESTAMP", args.args)?;
        let texts = call.strings(0)?;
        let patterns = if call.arity() == 2 {
            Some(call.strings(1)?)
        } else {
            None
        };
        let mut compiled = Compiled::new();
        let mut out = TimestampMillisecondBuilder::with_capacity(call.rows());
        for row in 0..call.rows() {
            let Some(text) = texts.get(row) else {
                out.append_null();
                continue;
            };
            let wall = match &patterns {
                None => java_format::parse_timestamp(text),
                Some(patterns) => match patterns.get(row) {
                    None => None,
                    // Flink falls back to the default form when the pattern does not match.
                    Some(pattern) => compiled
                        .get(pattern, JavaDateFormat::new)?
                        .parse(text, Trailing::Reject)
                        .map(|parsed| parsed.wall)
                        .or_else(|| java_format::parse_timestamp(text.trim())),
                },
            };
            out.append_option(wall.map(|wall| wall.and_utc().timestamp_millis()));
        }
        call.finish(call::array(out.finish()))
    }
}

/// `TO_DATE(string [, pattern])`: a `DATE` read from `string` in a Java pattern; without a
/// pattern, Flink's lenient `y[-m[-d]]` reading of what precedes the first space. NULL if it
/// cannot be read (where Flink, given a pattern, returns a nonsense date instead).
///
/// A UDF because DataFusion's `to_date` takes chrono patterns and fails on bad input.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToDate {
    signature: Signature,
}

impl ToDate {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToDate {
    fn name(&self) -> &str {
        "to_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "(string [, pattern string])";
        call::check_arity("TO_DATE", EXPECTED, arg_types, 1..=2)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| call::coerce_string("TO_DATE", position, data_type))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = Call::new("TO_DATE", args.args)?;
        let texts = call.strings(0)?;
        let patterns = if call.arity() == 2 {
            Some(call.strings(1)?)
        } else {
            None
        };
        let mut compiled = Compiled::new();
        let mut out = Date32Builder::with_capacity(call.rows());
        for row in 0..call.rows() {
            let Some(text) = texts.get(row) else {
                out.append_null();
                continue;
            };
            let date = match &patterns {
                None => java_format::parse_date(text),
                Some(patterns) => match patterns.get(row) {
                    None => None,
                    Some(pattern) => compiled
                        .get(pattern, JavaDateFormat::new)?
                        .parse(text, Trailing::Ignore)
                        .map(|parsed| parsed.wall.date()),
                },
            };
            out.append_option(date.map(Date32Type::from_naive_date));
        }
        call.finish(call::array(out.finish()))
    }
}

/// Flink's valid epoch range, `0000-01-01 00:00:00` to `9999-12-31 23:59:59.999` UTC.
const EPOCH_MILLIS: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;

/// `TO_TIMESTAMP_LTZ(numeric [, precision])`: the `TIMESTAMP_LTZ(3)` instant `numeric`
/// seconds (precision 0) or milliseconds (precision 3, the default) after the epoch; NULL
/// outside years 0000-9999.
///
/// A UDF because DataFusion has no equivalent; `to_timestamp_millis` yields a `TIMESTAMP`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestampLtz {
    signature: Signature,
}

impl ToTimestampLtz {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToTimestampLtz {
    fn name(&self) -> &str {
        "to_timestamp_ltz"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "(numeric epoch value [, precision 0 or 3])";
        call::check_arity("TO_TIMESTAMP_LTZ", EXPECTED, arg_types, 1..=2)?;
        // Decimals truncate to whole units, as Flink's `setScale(0, DOWN)` does.
        let epoch = match &arg_types[0] {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
            DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _) => DataType::Int64,
            other => call::coerce_int("TO_TIMESTAMP_LTZ", 0, other)?,
        };
        let mut coerced = vec![epoch];
        if let Some(precision) = arg_types.get(1) {
            coerced.push(call::coerce_int("TO_TIMESTAMP_LTZ", 1, precision)?);
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(ltz_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = Call::new("TO_TIMESTAMP_LTZ", args.args)?;
        let precisions = call.ints_or(1, 3)?;
        let epochs = if call.column(0)?.0.data_type() == &DataType::Float64 {
            Epochs::Floats(call.floats(0)?)
        } else {
            Epochs::Ints(call.ints(0)?)
        };
        let mut out = TimestampMillisecondBuilder::with_capacity(call.rows());
        for row in 0..call.rows() {
            let Some(precision) = precisions.get(row) else {
                out.append_null();
                continue;
            };
            let millis_per_unit = match precision {
                0 => 1_000,
                3 => 1,
                other => {
                    return Err(FunctionError::InvalidArgument {
                        function: "TO_TIMESTAMP_LTZ",
                        message: format!(
                            "precision {other} is not supported; use 0 for epoch seconds or 3 \
                             for epoch milliseconds"
                        ),
                    }
                    .into());
                }
            };
            let millis = epochs.millis(row, millis_per_unit);
            out.append_option(millis.filter(|millis| EPOCH_MILLIS.contains(millis)));
        }
        call.finish(call::array(out.finish().with_timezone(UTC)))
    }
}

/// The epoch argument of `TO_TIMESTAMP_LTZ`.
enum Epochs<'a> {
    Ints(Ints<'a>),
    Floats(Floats<'a>),
}

impl Epochs<'_> {
    fn millis(&self, row: usize, millis_per_unit: i64) -> Option<i64> {
        match self {
            Epochs::Ints(ints) => ints.get(row)?.checked_mul(millis_per_unit),
            // Java's `(long)` cast truncates and saturates like Rust's `as`.
            Epochs::Floats(floats) => Some((floats.get(row)? * millis_per_unit as f64) as i64),
        }
    }
}

/// `FROM_UNIXTIME(seconds [, pattern])`: the instant `seconds` after the epoch as a string in
/// the session time zone, in a Java pattern (default `yyyy-MM-dd HH:mm:ss`).
///
/// A UDF because DataFusion's `from_unixtime` returns a timestamp, not a string.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FromUnixtime {
    signature: Signature,
}

impl FromUnixtime {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FromUnixtime {
    fn name(&self) -> &str {
        "from_unixtime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "(integer epoch seconds [, pattern string])";
        call::check_arity("FROM_UNIXTIME", EXPECTED, arg_types, 1..=2)?;
        let mut coerced = vec![call::coerce_int("FROM_UNIXTIME", 0, &arg_types[0])?];
        if let Some(pattern) = arg_types.get(1) {
            coerced.push(call::coerce_string("FROM_UNIXTIME", 1, pattern)?);
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zone = SessionZone::new(&args.config_options)?;
        let call = Call::new("FROM_UNIXTIME", args.args)?;
        let (seconds, patterns) = (
            call.ints(0)?,
            call.strings_or(1, DEFAULT_TIMESTAMP_PATTERN)?,
        );
        let mut compiled = Compiled::new();
        let mut out = StringBuilder::with_capacity(call.rows(), call.rows() * 19);
        for row in 0..call.rows() {
            let instant = seconds
                .get(row)
                .and_then(|seconds| DateTime::from_timestamp(seconds, 0));
            let (Some(instant), Some(pattern)) = (instant, patterns.get(row)) else {
                out.append_null();
                continue;
            };
            let (wall, offset) = zone.local(instant.naive_utc());
            compiled
                .get(pattern, JavaDateFormat::new)?
                .format(&mut out, wall, Some(offset))?;
            out.append_value("");
        }
        call.finish(call::array(out.finish()))
    }
}

/// `UNIX_TIMESTAMP()`: the current epoch seconds. `UNIX_TIMESTAMP(string [, pattern])`: the
/// epoch seconds of `string` read in a Java pattern (default `yyyy-MM-dd HH:mm:ss`) in the
/// session time zone, unless the pattern reads an offset; `-9223372036854775808`
/// (`Long.MIN_VALUE`) if it cannot be read, as Flink documents.
///
/// A UDF because DataFusion has no equivalent. Volatile, so the no-argument form reads the
/// clock for every batch rather than once at planning.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UnixTimestamp {
    signature: Signature,
}

impl UnixTimestamp {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for UnixTimestamp {
    fn name(&self) -> &str {
        "unix_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "() or (string [, pattern string])";
        call::check_arity("UNIX_TIMESTAMP", EXPECTED, arg_types, 0..=2)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| call::coerce_string("UNIX_TIMESTAMP", position, data_type))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.is_empty() {
            return Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(
                Utc::now().timestamp(),
            ))));
        }
        let zone = SessionZone::new(&args.config_options)?;
        let call = Call::new("UNIX_TIMESTAMP", args.args)?;
        let (texts, patterns) = (
            call.strings(0)?,
            call.strings_or(1, DEFAULT_TIMESTAMP_PATTERN)?,
        );
        let mut compiled = Compiled::new();
        let mut out = Int64Builder::with_capacity(call.rows());
        for row in 0..call.rows() {
            let (Some(text), Some(pattern)) = (texts.get(row), patterns.get(row)) else {
                out.append_null();
                continue;
            };
            let seconds = compiled
                .get(pattern, JavaDateFormat::new)?
                .parse(text, Trailing::Ignore)
                .and_then(|parsed| parsed_instant(parsed, &zone))
                // Java divides epoch milliseconds by 1000, rounding toward zero.
                .map_or(i64::MIN, |instant| instant.timestamp_millis() / 1000);
            out.append_value(seconds);
        }
        call.finish(call::array(out.finish()))
    }
}

/// `CURRENT_TIMESTAMP` and `NOW()`: the current instant as `TIMESTAMP_LTZ(3)`.
///
/// A UDF because DataFusion's `now()` is fixed when the query is planned, which would stop
/// the clock for the whole life of a streaming job; Flink evaluates it for each record in
/// streaming mode. Volatile, so it is read for every batch.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentTimestamp {
    signature: Signature,
    aliases: Vec<String>,
}

impl CurrentTimestamp {
    fn new() -> Self {
        Self {
            signature: Signature::nullary(Volatility::Volatile),
            aliases: vec!["now".to_owned()],
        }
    }
}

impl ScalarUDFImpl for CurrentTimestamp {
    fn name(&self) -> &str {
        "current_timestamp"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(ltz_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(Utc::now().timestamp_millis()),
            Some(Arc::from(UTC)),
        )))
    }
}

/// Field metadata key marking a time attribute, and its processing-time
/// value: windows, joins and OVER aggregations read the mark.
pub const TIME_ATTRIBUTE: &str = "weir.time-attribute";
pub const PROCTIME: &str = "proctime";

/// `PROCTIME()`: the current instant, as [`CurrentTimestamp`], in a column
/// marked as a processing-time attribute, so that `SELECT *, PROCTIME() AS
/// pt` in a view or subquery can drive windows and lookup joins, as in Flink.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Proctime {
    signature: Signature,
}

impl Proctime {
    fn new() -> Self {
        Self {
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for Proctime {
    fn name(&self) -> &str {
        PROCTIME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(ltz_type())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        let metadata = HashMap::from([(TIME_ATTRIBUTE.to_string(), PROCTIME.to_string())]);
        Ok(Arc::new(
            arrow::datatypes::Field::new(self.name(), ltz_type(), false).with_metadata(metadata),
        ))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(Utc::now().timestamp_millis()),
            Some(Arc::from(UTC)),
        )))
    }
}

/// `LOCALTIMESTAMP`: the current wall-clock time in the session time zone as `TIMESTAMP(3)`.
///
/// A UDF because DataFusion has none; volatile for the same reason as [`CurrentTimestamp`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct LocalTimestamp {
    signature: Signature,
}

impl LocalTimestamp {
    fn new() -> Self {
        Self {
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for LocalTimestamp {
    fn name(&self) -> &str {
        "localtimestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zone = SessionZone::new(&args.config_options)?;
        let (wall, _) = zone.local(Utc::now().naive_utc());
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(wall.and_utc().timestamp_millis()),
            None,
        )))
    }
}

/// A date-time field that Flink reads with its own function and with `EXTRACT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    Year,
    Quarter,
    Month,
    Week,
    DayOfYear,
    DayOfMonth,
    DayOfWeek,
    Hour,
    Minute,
    Second,
}

impl Field {
    const ALL: [Field; 10] = [
        Field::Year,
        Field::Quarter,
        Field::Month,
        Field::Week,
        Field::DayOfYear,
        Field::DayOfMonth,
        Field::DayOfWeek,
        Field::Hour,
        Field::Minute,
        Field::Second,
    ];

    /// The UDF's name, which is Flink's function name in lowercase.
    pub(crate) fn function_name(self) -> &'static str {
        match self {
            Field::Year => "year",
            Field::Quarter => "quarter",
            Field::Month => "month",
            Field::Week => "week",
            Field::DayOfYear => "dayofyear",
            Field::DayOfMonth => "dayofmonth",
            Field::DayOfWeek => "dayofweek",
            Field::Hour => "hour",
            Field::Minute => "minute",
            Field::Second => "second",
        }
    }

    fn flink_name(self) -> &'static str {
        match self {
            Field::Year => "YEAR",
            Field::Quarter => "QUARTER",
            Field::Month => "MONTH",
            Field::Week => "WEEK",
            Field::DayOfYear => "DAYOFYEAR",
            Field::DayOfMonth => "DAYOFMONTH",
            Field::DayOfWeek => "DAYOFWEEK",
            Field::Hour => "HOUR",
            Field::Minute => "MINUTE",
            Field::Second => "SECOND",
        }
    }

    fn date_part(self) -> DatePart {
        match self {
            Field::Year => DatePart::Year,
            Field::Quarter => DatePart::Quarter,
            Field::Month => DatePart::Month,
            // ISO 8601 weeks, as Calcite's EXTRACT(WEEK ...).
            Field::Week => DatePart::Week,
            Field::DayOfYear => DatePart::DayOfYear,
            Field::DayOfMonth => DatePart::Day,
            Field::DayOfWeek => DatePart::DayOfWeekSunday1,
            Field::Hour => DatePart::Hour,
            Field::Minute => DatePart::Minute,
            Field::Second => DatePart::Second,
        }
    }
}

/// `YEAR(t)`, `QUARTER(t)`, `MONTH(t)`, `WEEK(t)`, `DAYOFYEAR(t)`, `DAYOFMONTH(t)`,
/// `DAYOFWEEK(t)` (Sunday is 1), `HOUR(t)`, `MINUTE(t)`, `SECOND(t)` of a `DATE` or
/// timestamp, as `BIGINT`; a `TIMESTAMP_LTZ` is read in the session time zone. `EXTRACT`
/// of these units is rewritten to these functions.
///
/// UDFs because DataFusion has none of these names, and its `date_part` returns `INT`,
/// counts Sunday as 0 in `DOW`, and reads zoned timestamps in their own zone.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Extract {
    field: Field,
    signature: Signature,
}

impl Extract {
    fn new(field: Field) -> Self {
        Self {
            field,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Extract {
    fn name(&self) -> &str {
        self.field.function_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let function = self.field.flink_name();
        call::check_arity(function, "(date or timestamp)", arg_types, 1..=1)?;
        // EXTRACT also reads times and intervals, which arrow's date_part takes as they are.
        let coerced = match &arg_types[0] {
            DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Interval(_)
            | DataType::Duration(_) => arg_types[0].clone(),
            other => call::coerce_timestamp(function, 0, other)?,
        };
        Ok(vec![coerced])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let config = Arc::clone(&args.config_options);
        let call = Call::new(self.field.flink_name(), args.args)?;
        let (values, _) = call.column(0)?;
        let values = match values.data_type() {
            // Re-labelling the zone keeps the instants and makes arrow read them locally.
            DataType::Timestamp(unit, Some(_)) => {
                let zone = SessionZone::new(&config)?;
                cast(
                    values,
                    &DataType::Timestamp(*unit, Some(Arc::from(zone.name))),
                )?
            }
            _ => Arc::clone(values),
        };
        let parts = date_part(&values, self.field.date_part())?;
        call.finish(cast(&parts, &DataType::Int64)?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, TimeUnit};

    use crate::test_support::{error, error_in, row, row_in, rows, types};

    #[tokio::test]
    async fn date_format_takes_java_patterns() {
        assert_eq!(
            row("SELECT \
                 DATE_FORMAT(TIMESTAMP '2024-03-05 14:07:09.123', 'yyyy-MM-dd HH:mm:ss.SSS'), \
                 date_format(TIMESTAMP '2024-03-05 14:07:09', 'yy/M/d EEE'), \
                 DATE_FORMAT('2024-03-05 14:07:09', 'yyyyMMdd'), \
                 DATE_FORMAT('not a time', 'yyyy'), DATE_FORMAT(DATE '2024-03-05', 'dd.MM.yyyy'), \
                 DATE_FORMAT(CAST(NULL AS TIMESTAMP), 'yyyy')")
            .await,
            [
                "2024-03-05 14:07:09.123",
                "24/3/5 Tue",
                "20240305",
                "NULL",
                "05.03.2024",
                "NULL"
            ]
        );
    }

    #[tokio::test]
    async fn date_format_reuses_text_only_within_its_patterns_resolution() {
        let formatted = rows(
            "SELECT DATE_FORMAT(CAST(t AS TIMESTAMP(3)), p) FROM (VALUES \
             ('2024-03-05 14:07:09', 'yyyy-MM-dd'), ('2024-03-05 23:59:59', 'yyyy-MM-dd'), \
             ('2024-03-06 00:00:00', 'yyyy-MM-dd'), ('2024-03-06 00:00:00', 'HH:mm'), \
             ('2024-03-06 00:00:59.999', 'HH:mm'), ('2024-03-06 00:01:00', 'HH:mm'), \
             ('1969-12-31 23:59:59.5', 'HH:mm:ss'), ('1970-01-01 00:00:00', 'HH:mm:ss'), \
             (NULL, 'HH:mm'), ('1970-01-01 00:00:00', 'HH:mm:ss.SSS')) AS v(t, p)",
        )
        .await;
        assert_eq!(
            formatted.concat(),
            [
                "2024-03-05",
                "2024-03-05",
                "2024-03-06",
                "00:00",
                "00:00",
                "00:01",
                "23:59:59",
                "00:00:00",
                "NULL",
                "00:00:00.000"
            ]
        );
    }

    #[tokio::test]
    async fn date_format_shows_ltz_in_session_zone() {
        let sql = "SELECT DATE_FORMAT(TO_TIMESTAMP_LTZ(0, 0), 'yyyy-MM-dd HH:mm:ss XXX'), \
                   DATE_FORMAT(TIMESTAMP '1970-01-01 00:00:00', 'yyyy-MM-dd HH:mm:ss')";
        assert_eq!(
            row_in("Asia/Shanghai", sql).await,
            ["1970-01-01 08:00:00 +08:00", "1970-01-01 00:00:00"]
        );
        assert_eq!(
            row_in("UTC", sql).await,
            ["1970-01-01 00:00:00 +00:00", "1970-01-01 00:00:00"]
        );
    }

    #[tokio::test]
    async fn date_format_with_unsupported_pattern_is_an_error() {
        let message = error("SELECT DATE_FORMAT(TIMESTAMP '2024-03-05 14:07:09', 'yyyy G')").await;
        assert!(
            message.contains("unsupported date-time pattern 'yyyy G'"),
            "{message}"
        );
        let message = error("SELECT DATE_FORMAT(TIMESTAMP '2024-03-05 14:07:09', 'HH Z')").await;
        assert!(message.contains("TIMESTAMP_LTZ"), "{message}");
    }

    #[tokio::test]
    async fn to_timestamp_parses_into_timestamp_3() {
        let sql = "SELECT TO_TIMESTAMP('2024-03-05 14:07:09'), \
                   TO_TIMESTAMP('2024-3-5 14:07:09.123456'), \
                   TO_TIMESTAMP('05/03/2024 14:07', 'dd/MM/yyyy HH:mm'), \
                   TO_TIMESTAMP('2024-03-05', 'dd/MM/yyyy'), \
                   TO_TIMESTAMP('2024-03-05'), TO_TIMESTAMP('garbage'), TO_TIMESTAMP(NULL)";
        assert_eq!(
            row(sql).await,
            [
                "2024-03-05T14:07:09",
                "2024-03-05T14:07:09.123",
                "2024-03-05T14:07:00",
                "2024-03-05T00:00:00",
                "2024-03-05T00:00:00",
                "NULL",
                "NULL"
            ]
        );
        assert_eq!(
            types("SELECT TO_TIMESTAMP('2024-03-05 14:07:09')").await,
            [DataType::Timestamp(TimeUnit::Millisecond, None)]
        );
    }

    #[tokio::test]
    async fn datetime_functions_over_columns() {
        let sql = "SELECT TO_TIMESTAMP(s), DATE_FORMAT(TO_TIMESTAMP(s), f), UNIX_TIMESTAMP(s), \
                   FROM_UNIXTIME(UNIX_TIMESTAMP(s), f), TO_DATE(s) FROM (VALUES \
                   ('2024-01-02 03:04:05', 'yyyy/MM/dd'), (NULL, 'yyyy'), ('bad', 'yyyy'), \
                   ('1970-01-01 00:00:00', 'HH:mm')) AS t(s, f)";
        assert_eq!(
            rows(sql).await,
            [
                [
                    "2024-01-02T03:04:05",
                    "2024/01/02",
                    "1704164645",
                    "2024/01/02",
                    "2024-01-02"
                ],
                ["NULL", "NULL", "NULL", "NULL", "NULL"],
                ["NULL", "NULL", "-9223372036854775808", "NULL", "NULL"],
                ["1970-01-01T00:00:00", "00:00", "0", "00:00", "1970-01-01"]
            ]
        );
    }

    #[tokio::test]
    async fn to_timestamp_ignores_session_zone() {
        let sql = "SELECT TO_TIMESTAMP('1970-01-01 00:00:00')";
        assert_eq!(row_in("Asia/Shanghai", sql).await, ["1970-01-01T00:00:00"]);
    }

    #[tokio::test]
    async fn to_date_with_and_without_pattern() {
        assert_eq!(
            row(
                "SELECT TO_DATE('2024-03-05'), TO_DATE('2024-3-5 10:00:00'), \
                 TO_DATE('05/03/2024', 'dd/MM/yyyy'), TO_DATE('2024-02-30'), \
                 TO_DATE('x', 'yyyy'), TO_DATE(NULL)"
            )
            .await,
            [
                "2024-03-05",
                "2024-03-05",
                "2024-03-05",
                "NULL",
                "NULL",
                "NULL"
            ]
        );
    }

    #[tokio::test]
    async fn to_timestamp_ltz_is_an_instant() {
        assert_eq!(
            types("SELECT TO_TIMESTAMP_LTZ(0, 3)").await,
            [DataType::Timestamp(
                TimeUnit::Millisecond,
                Some("UTC".into())
            )]
        );
        let sql = "SELECT CAST(TO_TIMESTAMP_LTZ(1700000000, 0) AS BIGINT), \
                   CAST(TO_TIMESTAMP_LTZ(1700000000123, 3) AS BIGINT), \
                   CAST(TO_TIMESTAMP_LTZ(1700000000123) AS BIGINT), \
                   CAST(TO_TIMESTAMP_LTZ(1.5, 0) AS BIGINT), \
                   CAST(TO_TIMESTAMP_LTZ(CAST(1.9 AS DECIMAL(5, 1)), 0) AS BIGINT), \
                   TO_TIMESTAMP_LTZ(253402300800, 0), TO_TIMESTAMP_LTZ(NULL, 3)";
        let expected = [
            "1700000000000",
            "1700000000123",
            "1700000000123",
            "1500",
            "1000",
            "NULL",
            "NULL",
        ];
        // The instant does not depend on the session zone; only its display does.
        assert_eq!(row_in("UTC", sql).await, expected);
        assert_eq!(row_in("Asia/Shanghai", sql).await, expected);
        let error = error("SELECT TO_TIMESTAMP_LTZ(1, 6)").await;
        assert!(error.contains("precision 6 is not supported"), "{error}");
    }

    #[tokio::test]
    async fn from_unixtime_formats_in_session_zone() {
        let sql = "SELECT FROM_UNIXTIME(44), FROM_UNIXTIME(1700000000, 'yyyy-MM-dd HH:mm XX'), \
                   FROM_UNIXTIME(NULL)";
        assert_eq!(
            row_in("UTC", sql).await,
            ["1970-01-01 00:00:44", "2023-11-14 22:13 +0000", "NULL"]
        );
        assert_eq!(
            row_in("Asia/Shanghai", sql).await,
            ["1970-01-01 08:00:44", "2023-11-15 06:13 +0800", "NULL"]
        );
    }

    #[tokio::test]
    async fn unix_timestamp_reads_in_session_zone() {
        let sql = "SELECT UNIX_TIMESTAMP('1970-01-01 08:00:01'), \
                   UNIX_TIMESTAMP('1970-01-01 08:00:01.001', 'yyyy-MM-dd HH:mm:ss.SSS'), \
                   UNIX_TIMESTAMP('1970-01-01 08:00:01.001 +0800', 'yyyy-MM-dd HH:mm:ss.SSS X'), \
                   UNIX_TIMESTAMP('1970-01-01 08:00:01.001', 'yyyy-MM-dd HH:mm:ss.SSS X'), \
                   UNIX_TIMESTAMP(NULL)";
        assert_eq!(
            row_in("UTC", sql).await,
            ["28801", "28801", "1", "-9223372036854775808", "NULL"]
        );
        assert_eq!(
            row_in("Asia/Shanghai", sql).await,
            ["1", "1", "1", "-9223372036854775808", "NULL"]
        );
        // Flink's documented example, in a zone that was UTC+1 in January 1970.
        assert_eq!(
            row_in(
                "Europe/Berlin",
                "SELECT UNIX_TIMESTAMP('1970-01-01 08:00:01.001 +0800', 'yyyy-MM-dd HH:mm:ss.SSS')"
            )
            .await,
            ["25201"]
        );
    }

    #[tokio::test]
    async fn current_time_functions() {
        assert_eq!(
            types("SELECT NOW(), CURRENT_TIMESTAMP, LOCALTIMESTAMP, UNIX_TIMESTAMP()").await,
            [
                super::ltz_type(),
                super::ltz_type(),
                DataType::Timestamp(TimeUnit::Millisecond, None),
                DataType::Int64
            ]
        );
        // LOCALTIMESTAMP is the session wall clock: eight hours ahead of UTC in Shanghai.
        let sql = "SELECT CAST(LOCALTIMESTAMP AS BIGINT) - CAST(CURRENT_TIMESTAMP AS BIGINT), \
                   abs(UNIX_TIMESTAMP() - CAST(NOW() AS BIGINT) / 1000) <= 1";
        let shanghai = row_in("Asia/Shanghai", sql).await;
        let offset: i64 = shanghai[0].parse().unwrap_or(0);
        assert!((28_799_000..=28_801_000).contains(&offset), "{shanghai:?}");
        assert_eq!(shanghai[1], "true");
    }

    #[tokio::test]
    async fn field_functions_return_bigint() {
        let sql = "SELECT YEAR(DATE '1994-09-27'), QUARTER(DATE '1994-09-27'), \
                   MONTH(DATE '1994-09-27'), WEEK(DATE '1994-09-27'), \
                   DAYOFYEAR(DATE '1994-09-27'), DAYOFMONTH(DATE '1994-09-27'), \
                   DAYOFWEEK(DATE '1994-09-27'), HOUR(TIMESTAMP '1994-09-27 13:14:15'), \
                   MINUTE(TIMESTAMP '1994-09-27 13:14:15'), \
                   Second(TIMESTAMP '1994-09-27 13:14:15'), \
                   HOUR(CAST(NULL AS TIMESTAMP))";
        assert_eq!(
            row(sql).await,
            [
                "1994", "3", "9", "39", "270", "27", "3", "13", "14", "15", "NULL"
            ]
        );
        assert_eq!(
            types("SELECT HOUR(TIMESTAMP '1994-09-27 13:14:15')").await,
            [DataType::Int64]
        );
    }

    #[tokio::test]
    async fn extract_on_timestamp_3_columns() {
        let sql = "SELECT EXTRACT(YEAR FROM ts), EXTRACT(DOW FROM ts), EXTRACT(DAY FROM ts), \
                   EXTRACT(DOY FROM ts), EXTRACT(HOUR FROM ts), EXTRACT(SECOND FROM ts), \
                   EXTRACT(MILLISECOND FROM ts), EXTRACT(MICROSECOND FROM ts), \
                   EXTRACT(EPOCH FROM ts) \
                   FROM (SELECT CAST(s AS TIMESTAMP(3)) AS ts FROM \
                   (VALUES ('1994-09-27 13:14:15.250'), ('2024-01-07 00:00:00')) AS t(s))";
        assert_eq!(
            rows(sql).await,
            [
                [
                    "1994",
                    "3",
                    "27",
                    "270",
                    "13",
                    "15",
                    "250",
                    "250000",
                    "780671655"
                ],
                ["2024", "1", "7", "7", "0", "0", "0", "0", "1704585600"]
            ]
        );
    }

    #[tokio::test]
    async fn fields_of_ltz_follow_session_zone() {
        let sql = "SELECT HOUR(TO_TIMESTAMP_LTZ(0, 0)) AS h, \
                   DAYOFMONTH(TO_TIMESTAMP_LTZ(-3600, 0)) AS d, \
                   EXTRACT(HOUR FROM TO_TIMESTAMP_LTZ(0, 0)) AS e";
        assert_eq!(row_in("UTC", sql).await, ["0", "31", "0"]);
        assert_eq!(row_in("Asia/Shanghai", sql).await, ["8", "1", "8"]);
    }

    #[tokio::test]
    async fn field_of_a_string_is_a_clear_error() {
        let error = error("SELECT HOUR('13:14')").await;
        assert!(
            error.contains("HOUR cannot take Utf8 as argument 1; it expects a DATE or TIMESTAMP"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn unknown_session_zone_is_a_clear_error() {
        let error = error_in("Mars/Olympus", "SELECT FROM_UNIXTIME(0)").await;
        assert!(
            error.contains("session time zone 'Mars/Olympus'"),
            "{error}"
        );
    }
}
