//! String functions whose Flink semantics differ from DataFusion's or that DataFusion lacks:
//! `CONCAT`, `SPLIT_INDEX`, `SUBSTRING`/`SUBSTR`, `LPAD` and `RPAD`.
//!
//! Flink counts characters in UTF-16 code units; these functions count Unicode scalar values,
//! which only differs for characters outside the Basic Multilingual Plane (such as emoji).

use arrow::array::{Array, ArrayRef, StringBuilder, new_null_array};
use arrow::compute::can_cast_types;
use arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::call::{self, Call, Strings};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(Concat::new()),
        ScalarUDF::new_from_impl(SplitIndex::new()),
        ScalarUDF::new_from_impl(Substring::new()),
        ScalarUDF::new_from_impl(Pad::new(Side::Left)),
        ScalarUDF::new_from_impl(Pad::new(Side::Right)),
    ]
}

/// `CONCAT(s1, s2, ...)`: NULL if any argument is NULL.
///
/// A UDF because DataFusion's `concat` skips NULL arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Concat {
    signature: Signature,
}

impl Concat {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Concat {
    fn name(&self) -> &str {
        "concat"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        call::check_arity("CONCAT", "one or more strings", arg_types, 1..=usize::MAX)?;
        // Values that print as text (numbers, dates) are accepted as their string form, as
        // DataFusion's own concat does.
        arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| {
                call::coerce_string("CONCAT", position, data_type).or_else(|error| {
                    if can_cast_types(data_type, &DataType::Utf8) {
                        Ok(DataType::Utf8)
                    } else {
                        Err(error)
                    }
                })
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = Call::new("CONCAT", args.args)?;
        let parts = (0..call.arity())
            .map(|position| call.strings(position))
            .collect::<Result<Vec<_>>>()?;
        let mut out = StringBuilder::with_capacity(call.rows(), call.rows() * 8);
        let mut joined = String::new();
        for row in 0..call.rows() {
            joined.clear();
            let complete = parts.iter().all(|part| match part.get(row) {
                Some(value) => {
                    joined.push_str(value);
                    true
                }
                None => false,
            });
            if complete {
                out.append_value(&joined);
            } else {
                out.append_null();
            }
        }
        call.finish(call::array(out.finish()))
    }
}

/// `SPLIT_INDEX(s, separator, index)`: the `index`-th (0-based) piece of `s` split on the
/// whole `separator`; NULL when `index` is negative or past the last piece, or any argument
/// is NULL.
///
/// A UDF because DataFusion only has `split_part`, which counts from 1 and returns `''` when
/// out of range. Mirrors Flink's use of commons-lang `splitByWholeSeparatorPreserveAllTokens`:
/// empty pieces count, an empty `s` has no pieces, and an empty separator splits on whitespace.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SplitIndex {
    signature: Signature,
}

impl SplitIndex {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        "split_index"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "(string, separator string, integer index)";
        call::check_arity("SPLIT_INDEX", EXPECTED, arg_types, 3..=3)?;
        Ok(vec![
            call::coerce_string("SPLIT_INDEX", 0, &arg_types[0])?,
            call::coerce_string("SPLIT_INDEX", 1, &arg_types[1])?,
            call::coerce_int("SPLIT_INDEX", 2, &arg_types[2])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = Call::new("SPLIT_INDEX", args.args)?;
        let (text, separator, index) = (call.strings(0)?, call.strings(1)?, call.ints(2)?);
        if let (Some(separator), Some(index)) = (separator.literal(), index.literal()) {
            return call.finish(split_column(&text, separator, index, call.rows()));
        }
        let mut out = StringBuilder::with_capacity(call.rows(), 0);
        for row in 0..call.rows() {
            let piece = match (text.get(row), separator.get(row), index.get(row)) {
                (Some(text), Some(separator), Some(index)) => split_index(text, separator, index),
                _ => None,
            };
            out.append_option(piece);
        }
        call.finish(call::array(out.finish()))
    }
}

/// SPLIT_INDEX over a column with a literal separator and index (q22's
/// `SPLIT_INDEX(url, '/', 3)`): both are looked at once, not per row, and a
/// one-byte separator cuts each row's bytes straight from the column.
fn split_column(
    text: &Strings<'_>,
    separator: Option<&str>,
    index: Option<i64>,
    rows: usize,
) -> ArrayRef {
    let (Some(separator), Some(index)) = (separator, index.and_then(|i| usize::try_from(i).ok()))
    else {
        return new_null_array(&DataType::Utf8, rows);
    };
    let mut out = StringBuilder::with_capacity(rows, rows * 8);
    match (separator.as_bytes(), text.utf8()) {
        ([byte], Some(array)) if byte.is_ascii() => {
            for row in 0..rows {
                if array.is_null(row) {
                    out.append_null();
                    continue;
                }
                let value = array.value(row);
                match piece_between(value.as_bytes(), *byte, index) {
                    Some((start, end)) => out.append_value(value.get(start..end).unwrap_or("")),
                    None => out.append_null(),
                }
            }
        }
        _ => {
            let index = i64::try_from(index).unwrap_or(i64::MAX);
            for row in 0..rows {
                out.append_option(
                    text.get(row)
                        .and_then(|text| split_index(text, separator, index)),
                );
            }
        }
    }
    call::array(out.finish())
}

fn split_index<'a>(text: &'a str, separator: &str, index: i64) -> Option<&'a str> {
    let index = usize::try_from(index).ok()?;
    if text.is_empty() {
        return None;
    }
    match separator.as_bytes() {
        [] => text.split(char::is_whitespace).nth(index),
        // The common case (Nexmark's q22 splits URLs on '/'): an ASCII byte
        // never occurs inside a multi-byte character, so a byte search
        // finds the same pieces as `str::split`, faster.
        [byte] if byte.is_ascii() => {
            let (start, end) = piece_between(text.as_bytes(), *byte, index)?;
            text.get(start..end)
        }
        _ => text.split(separator).nth(index),
    }
}

/// Where the `index`-th piece of `bytes` split on `byte` starts and ends;
/// None when `bytes` is empty or has fewer pieces.
fn piece_between(bytes: &[u8], byte: u8, index: usize) -> Option<(usize, usize)> {
    if bytes.is_empty() {
        return None;
    }
    let mut found = BytePositions::new(bytes, byte);
    let start = match index.checked_sub(1) {
        Some(before) => found.nth(before)? + 1,
        None => 0,
    };
    let end = found.next().unwrap_or(bytes.len());
    Some((start, end))
}

/// The positions of one byte in a string, in order, found eight bytes at a
/// time. The pieces SPLIT_INDEX looks for are a few bytes apart: one
/// `memchr` call per piece cost more in setting up than in searching.
struct BytePositions<'a> {
    bytes: &'a [u8],
    pattern: u64,
    /// Where the block `hits` marks begins; the next block starts 8 later.
    block: usize,
    /// The top bit of each byte of the block that equals the byte looked for.
    hits: u64,
}

impl<'a> BytePositions<'a> {
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;

    fn new(bytes: &'a [u8], byte: u8) -> Self {
        let mut found = Self {
            bytes,
            pattern: u64::from_le_bytes([byte; 8]),
            block: 0,
            hits: 0,
        };
        found.hits = found.hits_at(0);
        found
    }

    fn hits_at(&self, at: usize) -> u64 {
        let rest = self.bytes.get(at..).unwrap_or_default();
        let word = match rest.first_chunk::<8>() {
            Some(word) => *word,
            None => {
                // Past the end: bytes that differ from the one looked for.
                let mut word = (!self.pattern).to_le_bytes();
                word[..rest.len()].copy_from_slice(rest);
                word
            }
        };
        let diff = u64::from_le_bytes(word) ^ self.pattern;
        // A byte's top bit ends up set exactly when the byte of `diff` is 0.
        !(((diff & Self::LOW).wrapping_add(Self::LOW)) | diff | Self::LOW)
    }
}

impl Iterator for BytePositions<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.hits == 0 {
            self.block += 8;
            if self.block >= self.bytes.len() {
                return None;
            }
            self.hits = self.hits_at(self.block);
        }
        let at = self.block + self.hits.trailing_zeros() as usize / 8;
        self.hits &= self.hits - 1;
        Some(at)
    }

    /// Skips whole blocks by counting their hits instead of visiting each.
    fn nth(&mut self, mut n: usize) -> Option<usize> {
        loop {
            let in_block = self.hits.count_ones() as usize;
            if n < in_block {
                for _ in 0..n {
                    self.hits &= self.hits - 1;
                }
                return self.next();
            }
            n -= in_block;
            self.block += 8;
            if self.block >= self.bytes.len() {
                self.hits = 0;
                return None;
            }
            self.hits = self.hits_at(self.block);
        }
    }
}

/// `SUBSTRING(s, start [, length])`, also reached from `SUBSTRING(s FROM start [FOR length])`
/// through the rewrite, and as `SUBSTR`.
///
/// A UDF because DataFusion follows PostgreSQL: there a start of 0 or below eats into the
/// length and a negative length is an error. In Flink a start of 0 means 1, a negative start
/// counts from the end of the string, and a negative length yields NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Substring {
    signature: Signature,
    aliases: Vec<String>,
}

impl Substring {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["substr".to_owned()],
        }
    }
}

impl ScalarUDFImpl for Substring {
    fn name(&self) -> &str {
        "substring"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        const EXPECTED: &str = "(string, integer start [, integer length])";
        call::check_arity("SUBSTRING", EXPECTED, arg_types, 2..=3)?;
        let mut coerced = vec![call::coerce_string("SUBSTRING", 0, &arg_types[0])?];
        for (position, data_type) in arg_types.iter().enumerate().skip(1) {
            coerced.push(call::coerce_int("SUBSTRING", position, data_type)?);
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = Call::new("SUBSTRING", args.args)?;
        let (text, start) = (call.strings(0)?, call.ints(1)?);
        let length = call.ints_or(2, i64::MAX)?;
        let mut out = StringBuilder::with_capacity(call.rows(), 0);
        for row in 0..call.rows() {
            let piece = match (text.get(row), start.get(row), length.get(row)) {
                (Some(text), Some(start), Some(length)) => substring(text, start, length),
                _ => None,
            };
            out.append_option(piece);
        }
        call.finish(call::array(out.finish()))
    }
}

/// Flink's `BinaryStringDataUtil.substringSQL`, on characters.
fn substring(text: &str, start: i64, length: i64) -> Option<&str> {
    if length < 0 {
        return None;
    }
    let chars = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    let first = match start {
        1.. if start > chars => return Some(""),
        1.. => start - 1,
        0 => 0,
        _ if chars + start < 0 => return Some(""),
        _ => chars + start,
    };
    let end = if chars - first < length {
        chars
    } else {
        first + length
    };
    Some(&text[byte_offset(text, first)..byte_offset(text, end)])
}

fn byte_offset(text: &str, chars: i64) -> usize {
    let chars = usize::try_from(chars).unwrap_or(0);
    if text.is_ascii() {
        chars.min(text.len())
    } else {
        text.char_indices()
            .nth(chars)
            .map_or(text.len(), |(offset, _)| offset)
    }
}

/// Which end of the string `LPAD` / `RPAD` pads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Left,
    Right,
}

/// `LPAD(s, length, pad)` and `RPAD(s, length, pad)`: `s` padded with repetitions of `pad` at
/// one end, or cut, to `length` characters; NULL when `length` is negative or `pad` is empty.
///
/// UDFs because DataFusion's `lpad`/`rpad` return `''` for a negative length and `s` itself
/// for an empty pad, where Flink returns NULL. The pad may be left out and defaults to a
/// space, as DataFusion allows.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Pad {
    side: Side,
    signature: Signature,
}

impl Pad {
    fn new(side: Side) -> Self {
        Self {
            side,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn flink_name(&self) -> &'static str {
        match self.side {
            Side::Left => "LPAD",
            Side::Right => "RPAD",
        }
    }
}

impl ScalarUDFImpl for Pad {
    fn name(&self) -> &str {
        match self.side {
            Side::Left => "lpad",
            Side::Right => "rpad",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let function = self.flink_name();
        const EXPECTED: &str = "(string, integer length, pad string)";
        call::check_arity(function, EXPECTED, arg_types, 2..=3)?;
        let mut coerced = vec![
            call::coerce_string(function, 0, &arg_types[0])?,
            call::coerce_int(function, 1, &arg_types[1])?,
        ];
        if let Some(pad) = arg_types.get(2) {
            coerced.push(call::coerce_string(function, 2, pad)?);
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = Call::new(self.flink_name(), args.args)?;
        let (text, length, fill) = (call.strings(0)?, call.ints(1)?, call.strings_or(2, " ")?);
        let mut out = StringBuilder::with_capacity(call.rows(), 0);
        let mut padded = String::new();
        for row in 0..call.rows() {
            let (Some(text), Some(length), Some(fill)) =
                (text.get(row), length.get(row), fill.get(row))
            else {
                out.append_null();
                continue;
            };
            let Ok(length) = usize::try_from(length) else {
                out.append_null();
                continue;
            };
            if fill.is_empty() {
                out.append_null();
                continue;
            }
            padded.clear();
            pad(&mut padded, text, length, fill, self.side);
            out.append_value(&padded);
        }
        call.finish(call::array(out.finish()))
    }
}

/// Flink's `SqlFunctionUtils.lpad` / `rpad`, on characters; `fill` is not empty.
fn pad(out: &mut String, text: &str, length: usize, fill: &str, side: Side) {
    let kept = text.chars().count().min(length);
    let filler = fill.chars().cycle().take(length - kept);
    match side {
        Side::Left => {
            out.extend(filler);
            out.extend(text.chars().take(kept));
        }
        Side::Right => {
            out.extend(text.chars().take(kept));
            out.extend(filler);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{row, row_in};

    #[tokio::test]
    async fn concat_is_null_if_any_argument_is_null() {
        assert_eq!(
            row("SELECT CONCAT('AA', 'BB', 'CC'), CONCAT('a', NULL, 'b'), concat('x')").await,
            ["AABBCC", "NULL", "x"]
        );
    }

    #[tokio::test]
    async fn concat_over_columns_and_numbers() {
        let sql = "SELECT CONCAT(a, '-', b, 7) FROM (VALUES ('x', 'y'), ('p', NULL)) AS t(a, b)";
        let rows = crate::test_support::rows(sql).await;
        assert_eq!(rows, [["x-y7"], ["NULL"]]);
    }

    #[tokio::test]
    async fn concat_ws_is_datafusions_and_matches_flink() {
        assert_eq!(
            row(
                "SELECT CONCAT_WS('~', 'AA', CAST(NULL AS STRING), 'BB', '', 'CC'), \
                 CONCAT_WS(NULL, 'a')"
            )
            .await,
            ["AA~BB~~CC", "NULL"]
        );
    }

    #[test]
    fn byte_positions_are_every_occurrence_in_order() {
        for text in [
            "",
            "/",
            "abc",
            "a/b",
            "https://www.nexmark.com/abc/item.htm?query=1&channel_id=7",
            "////////////////////",
            "/1234567/1234567//x",
            "é/ü//\u{7f}/\u{ff}",
        ] {
            let expected: Vec<usize> = text.match_indices('/').map(|(at, _)| at).collect();
            let found: Vec<usize> = super::BytePositions::new(text.as_bytes(), b'/').collect();
            assert_eq!(found, expected, "{text:?}");
            for skip in 0..=expected.len() + 9 {
                let mut found = super::BytePositions::new(text.as_bytes(), b'/');
                let nth = found.nth(skip);
                assert_eq!(nth, expected.get(skip).copied(), "{text:?} nth({skip})");
                assert_eq!(
                    found.next(),
                    expected.get(skip + 1).copied(),
                    "{text:?} after"
                );
            }
            for index in 0..=expected.len() + 1 {
                assert_eq!(
                    super::split_index(text, "/", index as i64),
                    text.split('/').nth(index).filter(|_| !text.is_empty()),
                    "{text:?} {index}"
                );
            }
        }
    }

    #[test]
    fn split_index_of_a_column_with_a_literal_separator_and_index_cuts_every_row() {
        use std::sync::Arc;

        use arrow::array::{Array, AsArray, StringArray};
        use datafusion::common::ScalarValue;
        use datafusion::logical_expr::ColumnarValue;

        let all = StringArray::from(vec![
            Some("https://www.nexmark.com/abc/def/item.htm?query=1"),
            None,
            Some(""),
            Some("a/b"),
            Some("////////////////////"),
            Some("é/ü//x/1234567/1234567//y"),
            Some("no separator"),
            Some("a--b--c d"),
        ]);
        // Sliced, so that the column's offsets do not start at 0.
        let texts = all.slice(1, 7);
        for separator in [Some("/"), Some("--"), Some(""), None] {
            for index in [Some(0), Some(1), Some(3), Some(8), Some(9), Some(-1), None] {
                let call = super::Call::new(
                    "SPLIT_INDEX",
                    vec![
                        ColumnarValue::Array(Arc::new(texts.clone())),
                        ColumnarValue::Scalar(ScalarValue::Utf8(separator.map(str::to_owned))),
                        ColumnarValue::Scalar(ScalarValue::Int64(index)),
                    ],
                )
                .unwrap();
                let (text, sep, at) = (
                    call.strings(0).unwrap(),
                    call.strings(1).unwrap(),
                    call.ints(2).unwrap(),
                );
                let (Some(sep), Some(at)) = (sep.literal(), at.literal()) else {
                    panic!("literal arguments are not seen as literals");
                };
                let result = super::split_column(&text, sep, at, call.rows());
                let result = result.as_string::<i32>();
                assert_eq!(result.len(), 7);
                for row in 0..7 {
                    let expected = match (texts.is_valid(row), separator, index) {
                        (true, Some(separator), Some(index)) => {
                            super::split_index(texts.value(row), separator, index)
                        }
                        _ => None,
                    };
                    assert_eq!(
                        result.is_valid(row).then(|| result.value(row)),
                        expected,
                        "row {row}, separator {separator:?}, index {index:?}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn split_index_is_zero_based_and_null_out_of_range() {
        assert_eq!(
            row(
                "SELECT SPLIT_INDEX('a,b,,c', ',', 0), SPLIT_INDEX('a,b,,c', ',', 2), \
                 SPLIT_INDEX('a,b,,c', ',', 3), SPLIT_INDEX('a,b,,c', ',', 4), \
                 SPLIT_INDEX('a,b', ',', -1), SPLIT_INDEX('a--b', '--', 1), \
                 SPLIT_INDEX('', ',', 0), SPLIT_INDEX(NULL, ',', 0), SPLIT_INDEX('a', NULL, 0), \
                 SPLIT_INDEX('a,', ',', 1), SPLIT_INDEX('é/ü/x', '/', 1), SPLIT_INDEX('a b', '', 1)"
            )
            .await,
            [
                "a", "", "c", "NULL", "NULL", "b", "NULL", "NULL", "NULL", "", "ü", "b"
            ]
        );
    }

    #[tokio::test]
    async fn substring_follows_flink_positions() {
        assert_eq!(
            row(
                "SELECT SUBSTRING('hello' FROM 2 FOR 3), SUBSTRING('hello' FROM 2), \
                 SUBSTRING('hello', 0, 2), SUBSTRING('hello', -2), SUBSTR('hello', -9), \
                 SUBSTRING('hello', 9), SUBSTRING('hello', 2, -1), substring('héllo', 2, 2), \
                 SUBSTRING(NULL, 1)"
            )
            .await,
            ["ell", "ello", "he", "lo", "", "", "NULL", "él", "NULL"]
        );
    }

    #[tokio::test]
    async fn substring_over_a_column() {
        let sql = "SELECT SUBSTRING(s, n, 2) \
                   FROM (VALUES ('abcd', 1), ('abcd', 3), (NULL, 1)) AS t(s, n)";
        let rows = crate::test_support::rows(sql).await;
        assert_eq!(rows, [["ab"], ["cd"], ["NULL"]]);
    }

    #[tokio::test]
    async fn pad_follows_flink() {
        assert_eq!(
            row(
                "SELECT LPAD('hi', 4, '??'), LPAD('hi', 1, '??'), LPAD('hi', 7, 'ab'), \
                 RPAD('hi', 4, '??'), RPAD('hi', 1, '??'), RPAD('hé', 5, 'xy'), LPAD('a', 3), \
                 LPAD('hi', 0, 'x'), LPAD('hi', -1, 'x'), RPAD('hi', 5, ''), LPAD(NULL, 2, 'x'), \
                 RPAD('a', NULL, 'x')"
            )
            .await,
            [
                "??hi", "h", "ababahi", "hi??", "h", "héxyx", "  a", "", "NULL", "NULL", "NULL",
                "NULL"
            ]
        );
    }

    #[tokio::test]
    async fn datafusion_string_functions_match_flink() {
        assert_eq!(
            row_in(
                "UTC",
                "SELECT CHAR_LENGTH('héllo'), CHARACTER_LENGTH('abc'), UPPER('aBc'), lower('aBc'), \
                 INITCAP('hello wORLD'), REPEAT('ab', 2), REPEAT('ab', -1), REVERSE('abc'), \
                 TRIM('  a  '), \
                 TRIM(LEADING 'x' FROM 'xxaxx'), LTRIM('  a'), RTRIM('a  '), \
                 POSITION('b' IN 'abc'), POSITION('z' IN 'abc'), \
                 OVERLAY('xxxxxtest' PLACING 'xxxx' FROM 6 FOR 2), REPLACE('ababab', 'abab', 'z')"
            )
            .await,
            [
                "5",
                "3",
                "ABC",
                "abc",
                "Hello World",
                "abab",
                "",
                "cba",
                "a",
                "axx",
                "a",
                "a",
                "2",
                "0",
                "xxxxxxxxxst",
                "zab"
            ]
        );
    }

    #[tokio::test]
    async fn wrong_argument_type_is_a_clear_error() {
        let error = crate::test_support::error("SELECT SPLIT_INDEX('a,b', ',', 'x')").await;
        assert!(
            error.contains("SPLIT_INDEX cannot take Utf8 as argument 3; it expects an integer"),
            "{error}"
        );
    }
}
