//! Flink's regular-expression functions `REGEXP_EXTRACT` and `REGEXP_REPLACE`.
//!
//! Flink compiles patterns with `java.util.regex`; these use the `regex` crate, whose syntax
//! is the same for everyday patterns but has no look-around and no back-references. A pattern
//! that does not compile is an error here, where Flink logs it and returns NULL: silently
//! returning NULL for a valid Java pattern would hide the difference.

use arrow::array::StringBuilder;
use arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::{CaptureLocations, NoExpand, Regex};

use crate::FunctionError;
use crate::call::{self, Call, Compiled, Kept};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(RegexpExtract::new()),
        ScalarUDF::new_from_impl(RegexpReplace::new()),
    ]
}

fn compile(pattern: &str) -> Result<Regex, FunctionError> {
    Regex::new(pattern).map_err(|source| FunctionError::Regex {
        pattern: pattern.to_owned(),
        source,
    })
}

/// `REGEXP_EXTRACT(s, regex [, group])`: the text of capture `group` (default 0, the whole
/// match) in the first match of `regex` in `s`; NULL when nothing matches, the group does
/// not exist or did not take part in the match.
///
/// A UDF because DataFusion has no equivalent (`regexp_match` returns an array of groups).
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
    kept: Kept<(Regex, CaptureLocations)>,
}

impl RegexpExtract {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            kept: Kept::default(),
        }
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "(string, regex string [, integer group])";
        call::check_arity("REGEXP_EXTRACT", EXPECTED, arg_types, 2..=3)?;
        let mut coerced = vec![
            call::coerce_string("REGEXP_EXTRACT", 0, &arg_types[0])?,
            call::coerce_string("REGEXP_EXTRACT", 1, &arg_types[1])?,
        ];
        if let Some(group) = arg_types.get(2) {
            coerced.push(call::coerce_int("REGEXP_EXTRACT", 2, group)?);
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = Call::new("REGEXP_EXTRACT", args.args)?;
        let (text, pattern, group) = (call.strings(0)?, call.strings(1)?, call.ints_or(2, 0)?);
        let mut compiled = Compiled::from_kept(&self.kept);
        let mut out = StringBuilder::with_capacity(call.rows(), 0);
        for row in 0..call.rows() {
            let (Some(text), Some(pattern), Some(group)) =
                (text.get(row), pattern.get(row), group.get(row))
            else {
                out.append_null();
                continue;
            };
            // The capture slots are reused from row to row, not allocated per match.
            let (regex, slots) = compiled.get(pattern, |p| {
                let regex = compile(p)?;
                let slots = regex.capture_locations();
                Ok((regex, slots))
            })?;
            let extracted = usize::try_from(group).ok().and_then(|group| {
                regex.captures_read(slots, text)?;
                let (start, end) = slots.get(group)?;
                text.get(start..end)
            });
            out.append_option(extracted);
        }
        compiled.keep(&self.kept);
        call.finish(call::array(out.finish()))
    }
}

/// `REGEXP_REPLACE(s, regex, replacement)`: every match of `regex` in `s` replaced by
/// `replacement`, taken literally.
///
/// A UDF because DataFusion's `regexp_replace` follows PostgreSQL: it replaces only the first
/// match unless given the `g` flag, and expands `\1` group references in the replacement.
/// Flink calls `String.replaceAll` with `Matcher.quoteReplacement`, so `$1` stays `$1`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpReplace {
    signature: Signature,
    kept: Kept<Regex>,
}

impl RegexpReplace {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            kept: Kept::default(),
        }
    }
}

impl ScalarUDFImpl for RegexpReplace {
    fn name(&self) -> &str {
        "regexp_replace"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "(string, regex string, replacement string)";
        call::check_arity("REGEXP_REPLACE", EXPECTED, arg_types, 3..=3)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| call::coerce_string("REGEXP_REPLACE", position, data_type))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = Call::new("REGEXP_REPLACE", args.args)?;
        let (text, pattern, replacement) = (call.strings(0)?, call.strings(1)?, call.strings(2)?);
        let mut compiled = Compiled::from_kept(&self.kept);
        let mut out = StringBuilder::with_capacity(call.rows(), 0);
        for row in 0..call.rows() {
            match (text.get(row), pattern.get(row), replacement.get(row)) {
                (Some(text), Some(pattern), Some(replacement)) => {
                    let regex = compiled.get(pattern, compile)?;
                    out.append_value(regex.replace_all(text, NoExpand(replacement)));
                }
                _ => out.append_null(),
            }
        }
        compiled.keep(&self.kept);
        call.finish(call::array(out.finish()))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{error, row, rows};

    #[tokio::test]
    async fn regexp_extract_groups() {
        assert_eq!(
            row("SELECT REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)', 2), \
                 REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)'), \
                 regexp_extract('foothebar', 'foo(.*?)(bar)', 1), \
                 REGEXP_EXTRACT('foothebar', 'xyz', 0), \
                 REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)', 3), \
                 REGEXP_EXTRACT('foothebar', 'foo(x)?', 1), \
                 REGEXP_EXTRACT(NULL, 'a'), REGEXP_EXTRACT('a', NULL)")
            .await,
            [
                "bar",
                "foothebar",
                "the",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL"
            ]
        );
    }

    #[tokio::test]
    async fn regexp_extract_with_a_pattern_column() {
        let sql = "SELECT REGEXP_EXTRACT(s, p, 1) FROM \
                   (VALUES ('k=v', '(\\w)='), ('k=v', '=(\\w)'), ('k=v', '=(\\w)')) AS t(s, p)";
        assert_eq!(rows(sql).await, [["k"], ["v"], ["v"]]);
    }

    #[tokio::test]
    async fn regexp_replace_replaces_every_match_literally() {
        assert_eq!(
            row(
                "SELECT REGEXP_REPLACE('foobar', 'oo|ar', ''), REGEXP_REPLACE('aaa', 'a', 'b'), \
                 REGEXP_REPLACE('abc', '(b)', '$1$1'), REGEXP_REPLACE(NULL, 'a', 'b'), \
                 REGEXP_REPLACE('a', 'a', NULL)"
            )
            .await,
            ["fb", "bbb", "a$1$1c", "NULL", "NULL"]
        );
    }

    #[tokio::test]
    async fn invalid_regex_is_an_error() {
        let error = error("SELECT REGEXP_EXTRACT('abc', '(a')").await;
        assert!(error.contains("invalid regular expression '(a'"), "{error}");
    }
}
