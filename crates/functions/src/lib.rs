//! Flink's built-in scalar functions for Weir, on top of DataFusion.
//!
//! Flink SQL scripts call Flink's function names and expect Flink's semantics. DataFusion
//! already implements many of them under the same name with the same behaviour; this crate
//! supplies the rest in two ways:
//!
//! * [`flink_scalar_functions`] returns [`ScalarUDF`]s for the functions DataFusion lacks or
//!   defines differently. Register each with `SessionContext::register_udf`; a UDF replaces
//!   DataFusion's function of the same name for that session.
//! * [`rewrite_flink_syntax`] rewrites Flink-only syntax in a parsed statement in place, before
//!   DataFusion plans it, where the Flink form maps onto a DataFusion expression directly.
//!
//! # Where each function comes from
//!
//! | Flink | Provided by | Why |
//! |---|---|---|
//! | `MOD(a, b)` | rewrite to `a % b` | DataFusion has no `mod`; `%` has Flink's sign rule (sign of `a`) |
//! | `IF(c, a, b)` | rewrite to `CASE WHEN c THEN a ELSE b END` | DataFusion has no `if` |
//! | `CEILING(x)` | rewrite to `ceil(x)` | DataFusion only knows `ceil` |
//! | `LOG(x)` | rewrite to `ln(x)` | DataFusion's one-argument `log` is base 10, Flink's is natural |
//! | `EXTRACT(unit FROM t)` | rewrite to the `YEAR` ... `SECOND` UDFs below for the units they cover | Flink returns `BIGINT`, `DOW` counts Sunday as 1, and `TIMESTAMP_LTZ` is read in the session time zone |
//! | `EXTRACT(MILLISECOND / MICROSECOND / NANOSECOND / EPOCH FROM t)` | rewrite onto DataFusion's `date_part` | Flink counts these within the second and returns whole epoch seconds as `BIGINT` |
//! | `SUBSTRING(s FROM i [FOR n])`, `SUBSTRING(s, i [, n])`, `SUBSTR` | rewrite + UDF (`string.rs`) | DataFusion follows PostgreSQL: `i <= 0` and `n < 0` differ from Flink |
//! | `CONCAT` | UDF (`string.rs`) | Flink returns NULL if any argument is NULL; DataFusion skips NULLs |
//! | `LPAD`, `RPAD` | UDF (`string.rs`) | Flink returns NULL for a negative length or an empty pad; DataFusion returns `''` or the input |
//! | `SPLIT_INDEX` | UDF (`string.rs`) | missing in DataFusion (`split_part` is 1-based and returns `''` out of range) |
//! | `REGEXP_EXTRACT` | UDF (`regexp.rs`) | missing in DataFusion |
//! | `REGEXP_REPLACE` | UDF (`regexp.rs`) | DataFusion replaces only the first match and expands `\1` in the replacement; Flink replaces all matches with a literal replacement |
//! | `DATE_FORMAT`, `TO_TIMESTAMP`, `TO_DATE` | UDF (`datetime.rs`) | DataFusion's take chrono (`%Y`) formats; Flink's take Java patterns (`yyyy`) and return NULL on bad input |
//! | `TO_TIMESTAMP_LTZ`, `UNIX_TIMESTAMP` | UDF (`datetime.rs`) | missing in DataFusion |
//! | `FROM_UNIXTIME` | UDF (`datetime.rs`) | DataFusion's returns a timestamp; Flink's returns a string in the session time zone |
//! | `YEAR`, `QUARTER`, `MONTH`, `WEEK`, `DAYOFYEAR`, `DAYOFMONTH`, `DAYOFWEEK`, `HOUR`, `MINUTE`, `SECOND` | UDF (`datetime.rs`) | missing in DataFusion |
//! | `NOW()`, `CURRENT_TIMESTAMP`, `PROCTIME()`, `LOCALTIMESTAMP` | UDF (`datetime.rs`) | DataFusion fixes `now()` when the query is planned, which freezes it in a streaming job; Flink re-reads the clock for each record |
//! | `CHAR_LENGTH`, `CHARACTER_LENGTH`, `UPPER`, `LOWER`, `CONCAT_WS`, `INITCAP`, `REPEAT`, `REVERSE`, `TRIM`, `LTRIM`, `RTRIM`, `POSITION`, `OVERLAY`, `REPLACE`, `COALESCE`, `CAST`, `TRY_CAST` | DataFusion | same name, same result |
//! | `ABS`, `POWER`, `SQRT`, `LN`, `LOG10`, `ROUND`, `FLOOR`, `CEIL`, `RAND()`, `UUID()` | DataFusion | same name, same result |
//! | `MD5`, `SHA256` | not provided | DataFusion's `crypto_expressions` feature is off in this workspace |
//!
//! # Session configuration
//!
//! Function names: DataFusion's SQL planner lowercases unquoted function names whatever
//! `datafusion.sql_parser.enable_ident_normalization` says (it calls its `normalize_ident` on
//! the name unconditionally), so `UPPER(x)`, `upper(x)` and `Mod(a, b)` all resolve with ident
//! normalization off; quoted names are looked up as written. Every UDF here is registered
//! under a lowercase name, and the rewrite matches Flink names case-insensitively.
//!
//! Time zone: functions that depend on Flink's `table.local-time-zone` read DataFusion's
//! `datafusion.execution.time_zone` when they run (UTC when unset). It accepts IANA names such
//! as `Asia/Shanghai` and fixed offsets such as `+08:00`.
//!
//! # Types
//!
//! `TIMESTAMP(3)` is Arrow `Timestamp(Millisecond, None)`, holding the wall-clock time.
//! `TIMESTAMP_LTZ(3)` is `Timestamp(Millisecond, Some("UTC"))`, holding the instant: the type
//! does not depend on the session time zone, because a UDF's return type is fixed before the
//! session configuration reaches it (`SessionContext::register_udf` never calls
//! `with_updated_config`). Functions in this crate show a time-zone-aware timestamp of any
//! zone in the session time zone, as Flink shows `TIMESTAMP_LTZ`.

mod aggregate;
mod call;
mod datetime;
mod java_format;
mod regexp;
mod rewrite;
mod string;
#[cfg(test)]
mod test_support;

use arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub use datetime::{PROCTIME, TIME_ATTRIBUTE};
pub use rewrite::rewrite_flink_syntax;

/// All Flink-named scalar functions that DataFusion lacks or defines differently.
///
/// Register every one with `SessionContext::register_udf`; see the [crate] docs for the list.
pub fn flink_scalar_functions() -> Vec<ScalarUDF> {
    let mut functions = Vec::new();
    functions.extend(string::functions());
    functions.extend(regexp::functions());
    functions.extend(datetime::functions());
    functions
}

/// Flink's aggregate functions where DataFusion's differ (`AVG` of
/// integers is an integer); register each with `register_udaf`, replacing
/// DataFusion's of the same name.
pub fn flink_aggregate_functions() -> Vec<AggregateUDF> {
    vec![AggregateUDF::new_from_impl(aggregate::FlinkAvg::new())]
}

/// Everything that can go wrong in this crate, from rewriting a statement to evaluating a UDF.
///
/// Inside DataFusion it travels as [`DataFusionError::External`], so callers can downcast it.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// A Flink call in the SQL text has the wrong number or kind of arguments.
    #[error("{function} expects {expected}, but was called with {found}")]
    WrongArguments {
        /// Flink's name of the function.
        function: &'static str,
        /// The accepted argument list, in SQL terms.
        expected: &'static str,
        /// What the call had instead.
        found: String,
    },
    /// An argument's data type is one the function cannot take, even after coercion.
    #[error("{function} cannot take {data_type} as argument {position}; it expects {expected}")]
    ArgumentType {
        /// Flink's name of the function.
        function: &'static str,
        /// 1-based position of the argument.
        position: usize,
        /// The type that was passed.
        data_type: DataType,
        /// The accepted types, in SQL terms.
        expected: &'static str,
    },
    /// An argument value is outside what the function accepts.
    #[error("{function}: {message}")]
    InvalidArgument {
        /// Flink's name of the function.
        function: &'static str,
        /// What is wrong and what to pass instead.
        message: String,
    },
    /// A Java date-time pattern uses something this crate cannot translate to chrono.
    #[error(
        "unsupported date-time pattern '{pattern}': {reason}; supported letters are \
         y M d D H h m s S a E Z X x, and literal text goes in single quotes"
    )]
    DatePattern {
        /// The pattern as written in SQL.
        pattern: String,
        /// Which part of the pattern is the problem.
        reason: String,
    },
    /// A regular expression does not compile.
    #[error(
        "invalid regular expression '{pattern}' (Weir uses Rust regex syntax, which has no \
         look-around and no back-references)"
    )]
    Regex {
        /// The pattern as written in SQL.
        pattern: String,
        /// Why the regex crate rejected it.
        #[source]
        source: regex::Error,
    },
    /// `datafusion.execution.time_zone` holds a name this crate cannot resolve.
    #[error(
        "session time zone '{name}' is not a known time zone; set \
         datafusion.execution.time_zone to an IANA name such as 'Asia/Shanghai' or an offset \
         such as '+08:00'"
    )]
    TimeZone {
        /// The configured value.
        name: String,
    },
    /// A timestamp value lies outside the range chrono can represent.
    #[error("{function}: timestamp value {value} is out of range")]
    TimestampRange {
        /// Flink's name of the function.
        function: &'static str,
        /// The raw value in its column's time unit.
        value: i64,
    },
}

impl From<FunctionError> for DataFusionError {
    fn from(error: FunctionError) -> Self {
        DataFusionError::External(Box::new(error))
    }
}
