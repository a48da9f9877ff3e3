//! Flink's regular-expression functions `REGEXP_EXTRACT` and `REGEXP_REPLACE`.
//!
//! Flink compiles patterns with `java.util.regex`; these use the `regex` crate, whose syntax
//! is the same for everyday patterns but has no look-around and no back-references. A pattern
//! that does not compile is an error here, where Flink logs it and returns NULL: silently
//! returning NULL for a valid Java pattern would hide the difference.

use std::sync::Mutex;

use arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use hashbrown::HashMap;
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
    seen: Seen,
}

impl RegexpExtract {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            kept: Kept::default(),
            seen: Seen::default(),
        }
    }
}

/// The texts a literal pattern and group were extracted from before, kept
/// from batch to batch with where the group was in each. Columns such as
/// URLs repeat their values (each Nexmark channel has one URL), and a
/// match with captures costs a few hundred nanoseconds, a lookup tens. A
/// cache, so not part of the function's identity: any two are equal.
#[derive(Default)]
struct Seen(Mutex<Option<Extractions>>);

impl PartialEq for Seen {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Seen {}

impl std::hash::Hash for Seen {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seen")
    }
}

/// Lookups before the hit rate decides whether looking up pays.
const TRIAL_LOOKUPS: u64 = 4096;
/// The text held, at most; then it starts over.
const SEEN_BYTES: usize = 4 << 20;

/// Where group `group` of `pattern` is in each text seen (`None`: no match).
#[derive(Debug)]
struct Extractions {
    pattern: String,
    group: usize,
    results: HashMap<Box<str>, Option<(u32, u32)>>,
    bytes: usize,
    lookups: u64,
    hits: u64,
}

impl Extractions {
    fn new(pattern: &str, group: usize) -> Self {
        Self {
            pattern: pattern.to_owned(),
            group,
            results: HashMap::new(),
            bytes: 0,
            lookups: 0,
            hits: 0,
        }
    }

    /// Whether values repeat enough (a quarter of lookups hit) to look up.
    fn pays(&self) -> bool {
        self.lookups < TRIAL_LOOKUPS || self.hits * 4 >= self.lookups
    }

    fn get(&mut self, text: &str) -> Option<Option<(u32, u32)>> {
        self.lookups += 1;
        let found = self.results.get(text).copied();
        self.hits += u64::from(found.is_some());
        found
    }

    fn insert(&mut self, text: &str, at: Option<(u32, u32)>) {
        if self.bytes + text.len() > SEEN_BYTES {
            self.results.clear();
            self.bytes = 0;
        }
        self.bytes += text.len();
        self.results.insert(text.into(), at);
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
        if let (Some(Some(pattern)), Some(Some(group)), Some(texts)) =
            (pattern.literal(), group.literal(), text.utf8())
            && let Ok(group) = usize::try_from(group)
        {
            let (regex, slots) = compiled.get(pattern, |p| {
                let regex = compile(p)?;
                let slots = regex.capture_locations();
                Ok((regex, slots))
            })?;
            let out = self.extract_column(texts, pattern, group, regex, slots);
            compiled.keep(&self.kept);
            return call.finish(out);
        }
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

impl RegexpExtract {
    /// A column of texts with a literal pattern and group: a text seen
    /// before (in this batch or an earlier one) is not matched again while
    /// values repeat enough for that to pay.
    fn extract_column(
        &self,
        texts: &StringArray,
        pattern: &str,
        group: usize,
        regex: &Regex,
        slots: &mut CaptureLocations,
    ) -> ArrayRef {
        let taken = self.seen.0.lock().ok().and_then(|mut seen| seen.take());
        let mut seen = match taken {
            Some(seen) if seen.pattern == pattern && seen.group == group => seen,
            _ => Extractions::new(pattern, group),
        };
        let mut out = StringBuilder::with_capacity(texts.len(), 0);
        for text in texts {
            let Some(text) = text else {
                out.append_null();
                continue;
            };
            let pays = seen.pays();
            let at = match pays.then(|| seen.get(text)).flatten() {
                Some(at) => at,
                None => {
                    let at = regex
                        .captures_read(slots, text)
                        .and_then(|_| slots.get(group))
                        .and_then(|(start, end)| {
                            Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
                        });
                    if pays {
                        seen.insert(text, at);
                    }
                    at
                }
            };
            out.append_option(at.and_then(|(start, end)| text.get(start as usize..end as usize)));
        }
        if let Ok(mut slot) = self.seen.0.lock() {
            // Of two subtasks' caches, the fuller is kept.
            if slot
                .as_ref()
                .is_none_or(|kept| kept.results.len() <= seen.results.len())
            {
                *slot = Some(seen);
            }
        }
        call::array(out.finish())
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
    use arrow::array::{Array, AsArray, StringArray};
    use regex::Regex;

    use super::{Extractions, RegexpExtract, TRIAL_LOOKUPS};
    use crate::test_support::{error, row, rows};

    #[test]
    fn a_literal_pattern_extracts_from_texts_seen_before_as_from_new_ones() {
        let function = RegexpExtract::new();
        let pattern = "(&|^)channel_id=([^&]*)";
        let regex = Regex::new(pattern).unwrap();
        let mut slots = regex.capture_locations();
        let texts = StringArray::from(vec![
            Some("https://x.com/a?query=1&channel_id=7"),
            Some("https://x.com/a?query=1"),
            None,
            Some("channel_id=42&x=1"),
            Some("https://x.com/a?query=1&channel_id=7"),
            Some("https://x.com/a?query=1"),
            Some("channel_id=&x"),
        ]);
        for group in [0, 2, 3] {
            // The second batch finds every text in the first one's cache.
            for batch in 0..2 {
                let out = function.extract_column(&texts, pattern, group, &regex, &mut slots);
                let out = out.as_string::<i32>();
                for row in 0..texts.len() {
                    let expected = texts
                        .is_valid(row)
                        .then(|| texts.value(row))
                        .and_then(|t| regex.captures(t)?.get(group).map(|m| m.as_str()));
                    let got = out.is_valid(row).then(|| out.value(row));
                    assert_eq!(got, expected, "group {group}, batch {batch}, row {row}");
                }
            }
        }
        let seen = function.seen.0.lock().unwrap();
        let seen = seen.as_ref().expect("kept");
        assert_eq!((seen.group, seen.results.len()), (3, 4));
    }

    #[test]
    fn texts_that_do_not_repeat_stop_being_looked_up() {
        let mut seen = Extractions::new("x", 0);
        for i in 0..TRIAL_LOOKUPS {
            assert!(seen.pays());
            let text = format!("text {i}");
            assert_eq!(seen.get(&text), None);
            seen.insert(&text, None);
        }
        assert!(!seen.pays());
        let mut repeated = Extractions::new("x", 0);
        repeated.insert("a", Some((0, 1)));
        for _ in 0..TRIAL_LOOKUPS * 2 {
            assert_eq!(repeated.get("a"), Some(Some((0, 1))));
        }
        assert!(repeated.pays());
    }

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
