//! The datagen WITH options, checked against the table's columns and turned
//! into one [`ColumnGenerator`] per column.
//!
//! Names and semantics follow Flink's datagen connector: `rows-per-second`,
//! `number-of-rows` and the per-column `fields.<column>.<property>` options.
//! Which properties a column accepts depends on its generator kind and type,
//! as in Flink, so `fields.id.length` on an INT column is refused rather than
//! silently ignored.

use std::collections::BTreeMap;
use std::str::FromStr;

use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema};
use weir_common::duration::parse_duration;
use weir_connector::{ConnectorError, OptionRules, TableSpec};
use weir_format::display::sql_type_name;

/// The value of `'connector'` that selects datagen.
pub(crate) const CONNECTOR: &str = "datagen";

const ROWS_PER_SECOND: &str = "rows-per-second";
const NUMBER_OF_ROWS: &str = "number-of-rows";
const FIELDS_PREFIX: &str = "fields.";

const DEFAULT_ROWS_PER_SECOND: u64 = 10_000;
/// Flink's default length of random strings.
const DEFAULT_LENGTH: usize = 100;

/// A property of one column, the `<property>` of `fields.<column>.<property>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Property {
    Kind,
    Min,
    Max,
    MaxPast,
    Length,
    VarLen,
    Start,
    End,
    NullRate,
}

impl Property {
    const ALL: [Property; 9] = [
        Property::Kind,
        Property::Min,
        Property::Max,
        Property::MaxPast,
        Property::Length,
        Property::VarLen,
        Property::Start,
        Property::End,
        Property::NullRate,
    ];

    fn name(self) -> &'static str {
        match self {
            Property::Kind => "kind",
            Property::Min => "min",
            Property::Max => "max",
            Property::MaxPast => "max-past",
            Property::Length => "length",
            Property::VarLen => "var-len",
            Property::Start => "start",
            Property::End => "end",
            Property::NullRate => "null-rate",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The keys datagen accepts, with `#` standing for a column name.
pub(crate) fn option_rules() -> OptionRules {
    let mut keys = vec![ROWS_PER_SECOND.to_string(), NUMBER_OF_ROWS.to_string()];
    keys.extend(
        Property::ALL
            .iter()
            .map(|p| format!("{FIELDS_PREFIX}#.{}", p.name())),
    );
    OptionRules::new(keys)
}

/// A datagen table's options, parsed and checked against its schema.
#[derive(Debug, Clone)]
pub(crate) struct DatagenConfig {
    /// The emit rate of the whole source, shared by its subtasks.
    pub rows_per_second: u64,
    /// The total number of rows; `None` for an endless source (unless a
    /// sequence column ends it).
    pub number_of_rows: Option<u64>,
    /// One generator per column of the table, in schema order.
    pub columns: Vec<ColumnGenerator>,
}

impl DatagenConfig {
    /// Parses and checks every option of `table`.
    pub fn parse(table: &TableSpec) -> Result<Self, ConnectorError> {
        option_rules().check(CONNECTOR, &table.options)?;
        let options = &table.options;
        let rows_per_second =
            match options.parse::<u64>(ROWS_PER_SECOND, "a positive whole number")? {
                None => DEFAULT_ROWS_PER_SECOND,
                Some(0) => {
                    return Err(invalid(
                        ROWS_PER_SECOND,
                        options.get(ROWS_PER_SECOND).unwrap_or_default(),
                        "expected a positive whole number",
                    ));
                }
                Some(rate) => rate,
            };
        let number_of_rows = options.parse::<u64>(NUMBER_OF_ROWS, "a whole number of rows")?;
        let mut per_column = field_options(table)?;
        let columns = table
            .schema
            .fields()
            .iter()
            .map(|field| {
                let own = per_column.remove(field.name().as_str()).unwrap_or_default();
                ColumnGenerator::parse(
                    field,
                    &FieldOptions {
                        column: field.name(),
                        values: own,
                    },
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rows_per_second,
            number_of_rows,
            columns,
        })
    }

    /// Whether the source ends: a row count or any sequence column bounds it.
    pub fn is_bounded(&self) -> bool {
        self.number_of_rows.is_some()
            || self
                .columns
                .iter()
                .any(|c| matches!(c.values, Values::Sequence(_)))
    }
}

/// How one column's values are made.
#[derive(Debug, Clone)]
pub(crate) struct ColumnGenerator {
    /// The column's Arrow type; values are generated in a wider type and cast.
    pub data_type: DataType,
    /// The probability of a NULL; 0 for sequences.
    pub null_rate: f64,
    pub values: Values,
}

/// The generator of one column and its settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    /// Uniform integers in `min..=max`, generated as BIGINT and cast to the
    /// column's integer type (whose range holds both bounds).
    RandomInt {
        min: i64,
        max: i64,
    },
    /// Uniform floating point numbers between `min` and `max`.
    RandomFloat {
        min: f64,
        max: f64,
    },
    /// Uniform decimals, as unscaled values in `min..=max`.
    RandomDecimal {
        min: i128,
        max: i128,
    },
    RandomBoolean,
    /// Random lowercase hex digits, as Flink's `nextHexString`: `length`
    /// characters, or 1 to `length` with `var-len`.
    RandomString {
        length: usize,
        var_len: bool,
    },
    /// Today's date (UTC), as Flink's datagen always gives the current date.
    CurrentDate,
    /// The current time minus a random amount below `max_past_millis`.
    PastTimestamp {
        max_past_millis: u64,
    },
    /// Each number of `start..=end` once, generated as BIGINT and cast to the
    /// column's type (numbers, decimals, strings).
    Sequence(Sequence),
}

/// An inclusive range of numbers a sequence column counts through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sequence {
    pub start: i64,
    pub end: i64,
}

impl Sequence {
    /// How many values the sequence has (up to 2^64, hence `u128`).
    pub fn len(&self) -> u128 {
        // `end >= start` is checked when parsing.
        (i128::from(self.end) - i128::from(self.start) + 1).unsigned_abs()
    }
}

/// The families of column types datagen treats alike.
#[derive(Debug, Clone, Copy)]
enum TypeClass {
    /// TINYINT to BIGINT, with the type's range.
    Integer {
        min: i64,
        max: i64,
    },
    /// FLOAT or DOUBLE, with Flink's default bounds and the largest finite value.
    Float {
        default_min: f64,
        largest: f64,
    },
    Decimal {
        precision: u8,
        scale: i8,
    },
    Boolean,
    String,
    Date,
    Timestamp,
}

impl TypeClass {
    fn of(data_type: &DataType) -> Option<Self> {
        let integer = |min: i64, max: i64| Some(TypeClass::Integer { min, max });
        match data_type {
            DataType::Int8 => integer(i8::MIN.into(), i8::MAX.into()),
            DataType::Int16 => integer(i16::MIN.into(), i16::MAX.into()),
            DataType::Int32 => integer(i32::MIN.into(), i32::MAX.into()),
            DataType::Int64 => integer(i64::MIN, i64::MAX),
            // Flink's defaults are Java's MIN_VALUE (the smallest positive
            // number) and MAX_VALUE, so default random floats are positive.
            DataType::Float32 => Some(TypeClass::Float {
                default_min: f32::from_bits(1).into(),
                largest: f32::MAX.into(),
            }),
            DataType::Float64 => Some(TypeClass::Float {
                default_min: f64::from_bits(1),
                largest: f64::MAX,
            }),
            DataType::Decimal128(precision, scale) => Some(TypeClass::Decimal {
                precision: *precision,
                scale: *scale,
            }),
            DataType::Boolean => Some(TypeClass::Boolean),
            DataType::Utf8 => Some(TypeClass::String),
            DataType::Date32 => Some(TypeClass::Date),
            DataType::Timestamp(_, _) => Some(TypeClass::Timestamp),
            _ => None,
        }
    }

    /// The properties a column of this class accepts besides `kind`.
    fn properties(self, kind: Kind) -> &'static [Property] {
        match (kind, self) {
            (Kind::Sequence, _) => &[Property::Start, Property::End],
            (
                Kind::Random,
                TypeClass::Integer { .. } | TypeClass::Float { .. } | TypeClass::Decimal { .. },
            ) => &[Property::Min, Property::Max, Property::NullRate],
            (Kind::Random, TypeClass::Boolean | TypeClass::Date) => &[Property::NullRate],
            (Kind::Random, TypeClass::String) => {
                &[Property::Length, Property::VarLen, Property::NullRate]
            }
            (Kind::Random, TypeClass::Timestamp) => &[Property::MaxPast, Property::NullRate],
        }
    }

    fn supports_sequence(self) -> bool {
        matches!(
            self,
            TypeClass::Integer { .. }
                | TypeClass::Float { .. }
                | TypeClass::Decimal { .. }
                | TypeClass::String
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Random,
    Sequence,
}

/// The `fields.<column>.*` options of one column, by property.
#[derive(Debug)]
struct FieldOptions<'a> {
    column: &'a str,
    values: BTreeMap<Property, &'a str>,
}

impl FieldOptions<'_> {
    fn key(&self, property: Property) -> String {
        format!("{FIELDS_PREFIX}{}.{}", self.column, property.name())
    }

    fn get(&self, property: Property) -> Option<&str> {
        self.values.get(&property).copied()
    }

    fn parse<T: FromStr>(
        &self,
        property: Property,
        expected: &str,
    ) -> Result<Option<T>, ConnectorError> {
        self.get(property)
            .map(|value| {
                value.trim().parse().map_err(|_| {
                    invalid(&self.key(property), value, &format!("expected {expected}"))
                })
            })
            .transpose()
    }

    fn required(&self, property: Property) -> Result<&str, ConnectorError> {
        self.get(property)
            .ok_or_else(|| ConnectorError::MissingOption {
                connector: CONNECTOR.to_string(),
                key: self.key(property),
            })
    }
}

/// Groups the `fields.<column>.<property>` options by column, refusing
/// options about columns the table does not have.
fn field_options(
    table: &TableSpec,
) -> Result<BTreeMap<&str, BTreeMap<Property, &str>>, ConnectorError> {
    let mut grouped: BTreeMap<&str, BTreeMap<Property, &str>> = BTreeMap::new();
    for (key, value) in table.options.iter() {
        let Some(rest) = key.strip_prefix(FIELDS_PREFIX) else {
            continue;
        };
        // Column names may contain dots; property names do not.
        let Some((column, property)) = rest.rsplit_once('.') else {
            continue;
        };
        let Some(property) = Property::from_name(property) else {
            continue;
        };
        if table.schema.field_with_name(column).is_err() {
            return Err(ConnectorError::NotFound(format!(
                "option '{key}' refers to column '{column}', but table '{}' has no such column; its columns are: {}",
                table.name,
                column_names(&table.schema)
            )));
        }
        grouped.entry(column).or_default().insert(property, value);
    }
    Ok(grouped)
}

fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ColumnGenerator {
    fn parse(field: &Field, options: &FieldOptions<'_>) -> Result<Self, ConnectorError> {
        let data_type = field.data_type().clone();
        let class = TypeClass::of(&data_type).ok_or_else(|| ConnectorError::Unsupported {
            connector: CONNECTOR.to_string(),
            what: format!(
                "cannot generate column '{}' of type {}; supported types are TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL, BOOLEAN, STRING, DATE, TIMESTAMP and TIMESTAMP_LTZ",
                field.name(),
                sql_type_name(&data_type)
            ),
        })?;
        let kind = match options.get(Property::Kind) {
            None => Kind::Random,
            Some(value) if value.trim().eq_ignore_ascii_case("random") => Kind::Random,
            Some(value) if value.trim().eq_ignore_ascii_case("sequence") => Kind::Sequence,
            Some(value) => {
                return Err(invalid(
                    &options.key(Property::Kind),
                    value,
                    "expected 'random' or 'sequence'",
                ));
            }
        };
        if kind == Kind::Sequence && !class.supports_sequence() {
            return Err(invalid(
                &options.key(Property::Kind),
                "sequence",
                &format!(
                    "column '{}' of type {} supports only the 'random' generator",
                    field.name(),
                    sql_type_name(&data_type)
                ),
            ));
        }
        check_applicable(options, class.properties(kind))?;

        let null_rate = options
            .parse::<f64>(Property::NullRate, "a number from 0 to 1")?
            .unwrap_or(0.0);
        if !(0.0..=1.0).contains(&null_rate) {
            return Err(invalid(
                &options.key(Property::NullRate),
                options.get(Property::NullRate).unwrap_or_default(),
                "expected a number from 0 to 1",
            ));
        }
        if null_rate > 0.0 && !field.is_nullable() {
            return Err(invalid(
                &options.key(Property::NullRate),
                options.get(Property::NullRate).unwrap_or_default(),
                &format!("column '{}' is NOT NULL", field.name()),
            ));
        }

        let values = match kind {
            Kind::Sequence => Values::Sequence(parse_sequence(options, class)?),
            Kind::Random => random_values(options, class)?,
        };
        Ok(Self {
            data_type,
            null_rate,
            values,
        })
    }
}

/// Refuses properties that do not apply to the column's kind and type,
/// listing the ones that do.
fn check_applicable(
    options: &FieldOptions<'_>,
    allowed: &[Property],
) -> Result<(), ConnectorError> {
    let unexpected = options
        .values
        .keys()
        .find(|p| **p != Property::Kind && !allowed.contains(p));
    match unexpected {
        None => Ok(()),
        Some(property) => {
            let mut valid: Vec<String> = std::iter::once(Property::Kind)
                .chain(allowed.iter().copied())
                .map(|p| options.key(p))
                .collect();
            valid.sort();
            Err(ConnectorError::UnknownOption {
                connector: CONNECTOR.to_string(),
                key: options.key(*property),
                valid,
            })
        }
    }
}

fn random_values(options: &FieldOptions<'_>, class: TypeClass) -> Result<Values, ConnectorError> {
    match class {
        TypeClass::Integer { min, max } => {
            let expected = format!("a whole number from {min} to {max}");
            let bound = |property: Property, default: i64| -> Result<i64, ConnectorError> {
                match options.parse::<i64>(property, &expected)? {
                    None => Ok(default),
                    Some(v) if (min..=max).contains(&v) => Ok(v),
                    Some(_) => Err(invalid(
                        &options.key(property),
                        options.get(property).unwrap_or_default(),
                        &format!("expected {expected}"),
                    )),
                }
            };
            let (lo, hi) = (bound(Property::Min, min)?, bound(Property::Max, max)?);
            check_order(options, lo, hi)?;
            Ok(Values::RandomInt { min: lo, max: hi })
        }
        TypeClass::Float {
            default_min,
            largest,
        } => {
            let expected = format!("a number from {:e} to {largest:e}", -largest);
            let bound = |property: Property, default: f64| -> Result<f64, ConnectorError> {
                match options.parse::<f64>(property, &expected)? {
                    None => Ok(default),
                    Some(v) if v.is_finite() && v.abs() <= largest => Ok(v),
                    Some(_) => Err(invalid(
                        &options.key(property),
                        options.get(property).unwrap_or_default(),
                        &format!("expected {expected}"),
                    )),
                }
            };
            let (lo, hi) = (
                bound(Property::Min, default_min)?,
                bound(Property::Max, largest)?,
            );
            check_order(options, lo, hi)?;
            Ok(Values::RandomFloat { min: lo, max: hi })
        }
        TypeClass::Decimal { precision, scale } => {
            let largest = decimal_largest(precision);
            // As Flink, bounds beyond what the type holds are clamped to it.
            let bound = |property: Property, default: i128| -> Result<i128, ConnectorError> {
                match options.get(property) {
                    None => Ok(default),
                    Some(text) => parse_decimal::<Decimal128Type>(text.trim(), 38, scale)
                        .map(|v| v.clamp(-largest, largest))
                        .map_err(|_| {
                            invalid(&options.key(property), text, "expected a decimal number")
                        }),
                }
            };
            // Flink's default minimum is Double.MIN_VALUE, which rounds to 0.
            let (lo, hi) = (bound(Property::Min, 0)?, bound(Property::Max, largest)?);
            check_order(options, lo, hi)?;
            Ok(Values::RandomDecimal { min: lo, max: hi })
        }
        TypeClass::Boolean => Ok(Values::RandomBoolean),
        TypeClass::String => {
            let expected = "a whole number from 0 to 2147483647";
            let length = match options.parse::<i32>(Property::Length, expected)? {
                None => DEFAULT_LENGTH,
                Some(n) => usize::try_from(n).map_err(|_| {
                    invalid(
                        &options.key(Property::Length),
                        options.get(Property::Length).unwrap_or_default(),
                        &format!("expected {expected}"),
                    )
                })?,
            };
            let var_len = match options.get(Property::VarLen) {
                None => false,
                Some(v) if v.trim().eq_ignore_ascii_case("true") => true,
                Some(v) if v.trim().eq_ignore_ascii_case("false") => false,
                Some(v) => {
                    return Err(invalid(
                        &options.key(Property::VarLen),
                        v,
                        "expected 'true' or 'false'",
                    ));
                }
            };
            Ok(Values::RandomString { length, var_len })
        }
        TypeClass::Date => Ok(Values::CurrentDate),
        TypeClass::Timestamp => {
            let max_past = match options.get(Property::MaxPast) {
                None => 0,
                Some(text) => parse_duration(text)
                    .map_err(|e| invalid(&options.key(Property::MaxPast), text, &e.to_string()))?
                    .as_millis()
                    .try_into()
                    .unwrap_or(u64::MAX),
            };
            Ok(Values::PastTimestamp {
                max_past_millis: max_past,
            })
        }
    }
}

/// The largest unscaled value of a DECIMAL with `precision` digits.
fn decimal_largest(precision: u8) -> i128 {
    10_i128.saturating_pow(u32::from(precision)) - 1
}

fn check_order<T: PartialOrd + std::fmt::Display>(
    options: &FieldOptions<'_>,
    min: T,
    max: T,
) -> Result<(), ConnectorError> {
    if min <= max {
        return Ok(());
    }
    let (key, value) = if options.get(Property::Max).is_some() {
        (Property::Max, options.get(Property::Max))
    } else {
        (Property::Min, options.get(Property::Min))
    };
    Err(invalid(
        &options.key(key),
        value.unwrap_or_default(),
        &format!(
            "'{}' must not be greater than '{}'",
            options.key(Property::Min),
            options.key(Property::Max)
        ),
    ))
}

fn parse_sequence(
    options: &FieldOptions<'_>,
    class: TypeClass,
) -> Result<Sequence, ConnectorError> {
    let (min, max) = match class {
        TypeClass::Integer { min, max } => (min, max),
        _ => (i64::MIN, i64::MAX),
    };
    let expected = format!("a whole number from {min} to {max}");
    let bound = |property: Property| -> Result<i64, ConnectorError> {
        let text = options.required(property)?;
        match text.trim().parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(invalid(
                &options.key(property),
                text,
                &format!("expected {expected}"),
            )),
        }
    };
    let sequence = Sequence {
        start: bound(Property::Start)?,
        end: bound(Property::End)?,
    };
    if sequence.start > sequence.end {
        return Err(invalid(
            &options.key(Property::End),
            options.get(Property::End).unwrap_or_default(),
            &format!("must not be less than '{}'", options.key(Property::Start)),
        ));
    }
    if let TypeClass::Decimal { precision, scale } = class {
        // The numbers are cast to the decimal type, so they must fit its integer digits.
        let largest =
            decimal_largest(precision) / 10_i128.saturating_pow(u32::try_from(scale).unwrap_or(0));
        for (property, v) in [
            (Property::Start, sequence.start),
            (Property::End, sequence.end),
        ] {
            if i128::from(v).abs() > largest {
                return Err(invalid(
                    &options.key(property),
                    options.get(property).unwrap_or_default(),
                    &format!("expected a whole number from {} to {largest}", -largest),
                ));
            }
        }
    }
    Ok(sequence)
}

fn invalid(key: &str, value: &str, reason: &str) -> ConnectorError {
    ConnectorError::InvalidOption {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}
