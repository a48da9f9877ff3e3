//! Argument handling shared by every UDF in the crate: coercion rules for `coerce_types`,
//! typed row readers over the evaluated arguments, and turning a result column back into
//! DataFusion's [`ColumnarValue`].
//!
//! A constant argument stays a one-row column that every row reads, so a literal pattern or
//! separator is never copied once per row.

use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, LargeStringArray, StringArray,
    StringViewArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDateTime};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;

use crate::FunctionError;

/// The evaluated arguments of one UDF invocation.
pub(crate) struct Call {
    function: &'static str,
    operands: Vec<Operand>,
    rows: usize,
    all_constant: bool,
}

/// One argument as a column; a constant is a one-row column.
struct Operand {
    array: ArrayRef,
    constant: bool,
}

impl Call {
    pub(crate) fn new(function: &'static str, args: Vec<ColumnarValue>) -> Result<Self> {
        let rows = args.iter().find_map(|arg| match arg {
            ColumnarValue::Array(array) => Some(array.len()),
            ColumnarValue::Scalar(_) => None,
        });
        let operands = args
            .into_iter()
            .map(|arg| match arg {
                ColumnarValue::Array(array) => Ok(Operand {
                    array,
                    constant: false,
                }),
                ColumnarValue::Scalar(scalar) => Ok(Operand {
                    array: scalar.to_array()?,
                    constant: true,
                }),
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            function,
            operands,
            rows: rows.unwrap_or(1),
            all_constant: rows.is_none(),
        })
    }

    /// Number of result rows to produce.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Number of arguments the function was called with.
    pub(crate) fn arity(&self) -> usize {
        self.operands.len()
    }

    fn operand(&self, position: usize) -> Result<&Operand> {
        self.operands.get(position).ok_or_else(|| {
            FunctionError::InvalidArgument {
                function: self.function,
                message: format!("argument {} is missing", position + 1),
            }
            .into()
        })
    }

    fn type_error(&self, position: usize, expected: &'static str) -> DataFusionError {
        match self.operand(position) {
            Ok(operand) => type_error(self.function, position, operand.array.data_type(), expected),
            Err(missing) => missing,
        }
    }

    /// The argument's column as evaluated, and whether it is a constant.
    pub(crate) fn column(&self, position: usize) -> Result<(&ArrayRef, bool)> {
        let operand = self.operand(position)?;
        Ok((&operand.array, operand.constant))
    }

    pub(crate) fn strings(&self, position: usize) -> Result<Strings<'_>> {
        let operand = self.operand(position)?;
        let array = operand.array.as_ref();
        let column = if let Some(array) = array.as_string_opt::<i32>() {
            StringColumn::Utf8(array)
        } else if let Some(array) = array.as_string_opt::<i64>() {
            StringColumn::LargeUtf8(array)
        } else if let Some(array) = array.as_string_view_opt() {
            StringColumn::Utf8View(array)
        } else {
            return Err(self.type_error(position, "a string"));
        };
        Ok(Strings {
            column,
            constant: operand.constant,
        })
    }

    /// A string argument, or `default` at every row if the call has fewer arguments.
    pub(crate) fn strings_or(&self, position: usize, default: &'static str) -> Result<Strings<'_>> {
        if position < self.arity() {
            self.strings(position)
        } else {
            Ok(Strings {
                column: StringColumn::Absent(default),
                constant: true,
            })
        }
    }

    pub(crate) fn ints(&self, position: usize) -> Result<Ints<'_>> {
        let operand = self.operand(position)?;
        match operand.array.as_primitive_opt() {
            Some(array) => Ok(Ints {
                column: IntColumn::Int64(array),
                constant: operand.constant,
            }),
            None => Err(self.type_error(position, "a BIGINT")),
        }
    }

    /// An integer argument, or `default` at every row if the call has fewer arguments.
    pub(crate) fn ints_or(&self, position: usize, default: i64) -> Result<Ints<'_>> {
        if position < self.arity() {
            self.ints(position)
        } else {
            Ok(Ints {
                column: IntColumn::Absent(default),
                constant: true,
            })
        }
    }

    pub(crate) fn floats(&self, position: usize) -> Result<Floats<'_>> {
        let operand = self.operand(position)?;
        match operand.array.as_primitive_opt() {
            Some(array) => Ok(Floats {
                array,
                constant: operand.constant,
            }),
            None => Err(self.type_error(position, "a DOUBLE")),
        }
    }

    pub(crate) fn timestamps(&self, position: usize) -> Result<Timestamps<'_>> {
        let operand = self.operand(position)?;
        let array = operand.array.as_ref();
        let DataType::Timestamp(unit, zone) = array.data_type() else {
            return Err(self.type_error(position, "a TIMESTAMP"));
        };
        let values = match unit {
            TimeUnit::Second => array
                .as_primitive_opt::<arrow::datatypes::TimestampSecondType>()
                .map(|a| a.values().as_ref()),
            TimeUnit::Millisecond => array
                .as_primitive_opt::<arrow::datatypes::TimestampMillisecondType>()
                .map(|a| a.values().as_ref()),
            TimeUnit::Microsecond => array
                .as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>()
                .map(|a| a.values().as_ref()),
            TimeUnit::Nanosecond => array
                .as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>()
                .map(|a| a.values().as_ref()),
        };
        let Some(values) = values else {
            return Err(self.type_error(position, "a TIMESTAMP"));
        };
        Ok(Timestamps {
            function: self.function,
            values,
            nulls: array.logical_nulls(),
            unit: *unit,
            zoned: zone.is_some(),
            constant: operand.constant,
        })
    }

    /// Wraps a result column computed for [`Self::rows`] rows; a call on constants only
    /// yields a scalar so DataFusion can keep folding it.
    pub(crate) fn finish(&self, result: ArrayRef) -> Result<ColumnarValue> {
        if self.all_constant {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
}

/// Reads a string argument of any Arrow string type row by row.
pub(crate) struct Strings<'a> {
    column: StringColumn<'a>,
    constant: bool,
}

enum StringColumn<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Absent(&'static str),
}

impl<'a> Strings<'a> {
    /// Whether every row has the same value (a literal argument).
    pub(crate) fn constant(&self) -> bool {
        self.constant || matches!(self.column, StringColumn::Absent(_))
    }

    /// The value of a literal argument (None outside: a column).
    pub(crate) fn literal(&self) -> Option<Option<&'a str>> {
        self.constant().then(|| self.get(0))
    }

    /// The column as `Utf8` when it is one and not a literal.
    pub(crate) fn utf8(&self) -> Option<&'a StringArray> {
        match self.column {
            StringColumn::Utf8(array) if !self.constant => Some(array),
            _ => None,
        }
    }

    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        let i = if self.constant { 0 } else { row };
        match self.column {
            StringColumn::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            StringColumn::LargeUtf8(a) => a.is_valid(i).then(|| a.value(i)),
            StringColumn::Utf8View(a) => a.is_valid(i).then(|| a.value(i)),
            StringColumn::Absent(default) => Some(default),
        }
    }
}

/// Reads a `BIGINT` argument row by row.
pub(crate) struct Ints<'a> {
    column: IntColumn<'a>,
    constant: bool,
}

enum IntColumn<'a> {
    Int64(&'a Int64Array),
    Absent(i64),
}

impl Ints<'_> {
    /// The value of a literal argument (None outside: a column).
    pub(crate) fn literal(&self) -> Option<Option<i64>> {
        let constant = self.constant || matches!(self.column, IntColumn::Absent(_));
        constant.then(|| self.get(0))
    }

    pub(crate) fn get(&self, row: usize) -> Option<i64> {
        let i = if self.constant { 0 } else { row };
        match self.column {
            IntColumn::Int64(a) => a.is_valid(i).then(|| a.value(i)),
            IntColumn::Absent(default) => Some(default),
        }
    }
}

/// Reads a `DOUBLE` argument row by row.
pub(crate) struct Floats<'a> {
    array: &'a Float64Array,
    constant: bool,
}

impl Floats<'_> {
    pub(crate) fn get(&self, row: usize) -> Option<f64> {
        let i = if self.constant { 0 } else { row };
        self.array.is_valid(i).then(|| self.array.value(i))
    }
}

/// Reads a timestamp argument of any unit row by row.
pub(crate) struct Timestamps<'a> {
    function: &'static str,
    values: &'a [i64],
    nulls: Option<NullBuffer>,
    unit: TimeUnit,
    zoned: bool,
    constant: bool,
}

impl Timestamps<'_> {
    /// Whether the column holds instants (Flink `TIMESTAMP_LTZ`) rather than wall-clock times.
    pub(crate) fn zoned(&self) -> bool {
        self.zoned
    }

    /// The value at `row`: the UTC date-time for a zoned column, the wall-clock time otherwise.
    pub(crate) fn get(&self, row: usize) -> Result<Option<NaiveDateTime>> {
        let Some(value) = self.raw(row) else {
            return Ok(None);
        };
        let per_second = self.per_second();
        let nanos_per_tick = 1_000_000_000 / per_second;
        let seconds = value.div_euclid(per_second);
        let nanos = u32::try_from(value.rem_euclid(per_second) * nanos_per_tick).ok();
        nanos
            .and_then(|nanos| DateTime::from_timestamp(seconds, nanos))
            .map(|t| Some(t.naive_utc()))
            .ok_or_else(|| {
                FunctionError::TimestampRange {
                    function: self.function,
                    value,
                }
                .into()
            })
    }

    /// The whole seconds of the value at `row` since the epoch (of the
    /// wall clock, for a column that is not zoned), without making a
    /// date-time of it.
    pub(crate) fn seconds(&self, row: usize) -> Option<i64> {
        Some(self.raw(row)?.div_euclid(self.per_second()))
    }

    fn raw(&self, row: usize) -> Option<i64> {
        let i = if self.constant { 0 } else { row };
        if self.nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            return None;
        }
        self.values.get(i).copied()
    }

    fn per_second(&self) -> i64 {
        match self.unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        }
    }
}

/// Checks the number of arguments in `coerce_types`, before DataFusion plans the call.
pub(crate) fn check_arity(
    function: &'static str,
    expected: &'static str,
    arg_types: &[DataType],
    allowed: std::ops::RangeInclusive<usize>,
) -> Result<()> {
    if allowed.contains(&arg_types.len()) {
        Ok(())
    } else {
        Err(FunctionError::WrongArguments {
            function,
            expected,
            found: format!("{} argument(s)", arg_types.len()),
        }
        .into())
    }
}

/// The type a string argument is coerced to: string types stay as they are, NULL becomes
/// `Utf8`; anything else is refused.
pub(crate) fn coerce_string(
    function: &'static str,
    position: usize,
    data_type: &DataType,
) -> Result<DataType> {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(data_type.clone()),
        DataType::Null => Ok(DataType::Utf8),
        other => Err(type_error(function, position, other, "a string")),
    }
}

/// The type an integer argument is coerced to: every integer type and NULL become `Int64`.
pub(crate) fn coerce_int(
    function: &'static str,
    position: usize,
    data_type: &DataType,
) -> Result<DataType> {
    if data_type.is_integer() || data_type == &DataType::Null {
        Ok(DataType::Int64)
    } else {
        Err(type_error(function, position, data_type, "an integer"))
    }
}

/// The type a date-time argument is coerced to: timestamps keep their unit and zone, dates
/// become midnight `TIMESTAMP(3)`, NULL becomes `TIMESTAMP(3)`.
pub(crate) fn coerce_timestamp(
    function: &'static str,
    position: usize,
    data_type: &DataType,
) -> Result<DataType> {
    match data_type {
        DataType::Timestamp(_, _) => Ok(data_type.clone()),
        DataType::Date32 | DataType::Date64 | DataType::Null => {
            Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
        }
        other => Err(type_error(function, position, other, "a DATE or TIMESTAMP")),
    }
}

pub(crate) fn type_error(
    function: &'static str,
    position: usize,
    data_type: &DataType,
    expected: &'static str,
) -> DataFusionError {
    FunctionError::ArgumentType {
        function,
        position: position + 1,
        data_type: data_type.clone(),
        expected,
    }
    .into()
}

/// Remembers the last compiled pattern, so a constant pattern compiles once per batch (or once
/// with [`Kept`]) and a pattern column only recompiles when the value changes between rows.
pub(crate) struct Compiled<T> {
    last: Option<(String, T)>,
}

impl<T> Compiled<T> {
    pub(crate) fn new() -> Self {
        Self { last: None }
    }

    /// Starts from the pattern the function compiled last, in an earlier batch.
    pub(crate) fn from_kept(kept: &Kept<T>) -> Self
    where
        T: Clone,
    {
        let last = kept.0.lock().ok().and_then(|last| last.clone());
        Self { last }
    }

    /// Keeps the last pattern for the function's next batch.
    pub(crate) fn keep(self, kept: &Kept<T>) {
        if let (Ok(mut slot), Some(last)) = (kept.0.lock(), self.last) {
            *slot = Some(last);
        }
    }

    pub(crate) fn get(
        &mut self,
        source: &str,
        compile: impl FnOnce(&str) -> Result<T, FunctionError>,
    ) -> Result<&mut T> {
        let entry = match self.last.take() {
            Some((key, value)) if key == source => (key, value),
            _ => (source.to_owned(), compile(source)?),
        };
        Ok(&mut self.last.insert(entry).1)
    }
}

/// A function's last compiled pattern, kept from batch to batch: compiling
/// a regular expression takes about 150 µs, as long as matching it against
/// a few hundred rows. A cache, so not part of the function's identity: any
/// two are equal.
pub(crate) struct Kept<T>(Mutex<Option<(String, T)>>);

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<T> PartialEq for Kept<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Kept<T> {}

impl<T> std::hash::Hash for Kept<T> {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl<T> std::fmt::Debug for Kept<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kept")
    }
}

/// Shorthand for a result column.
pub(crate) fn array(array: impl Array + 'static) -> ArrayRef {
    Arc::new(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_pattern_is_not_compiled_again() {
        let kept = Kept::default();
        let mut compiles = 0;
        for _ in 0..3 {
            let mut compiled = Compiled::from_kept(&kept);
            let value = compiled
                .get("p", |p| {
                    compiles += 1;
                    Ok(p.len())
                })
                .map(|v| *v);
            assert_eq!(value.ok(), Some(1));
            compiled.keep(&kept);
        }
        assert_eq!(compiles, 1);
    }
}
