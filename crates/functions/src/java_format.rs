//! Java date-time patterns (`yyyy-MM-dd HH:mm:ss`), which Flink's date functions take, turned
//! into chrono format items; and Flink's default, pattern-less parsing of timestamp and date
//! strings.
//!
//! Flink formats and parses with `SimpleDateFormat` in some functions and `DateTimeFormatter`
//! in others. Both read the letters below the same way, so one translation serves both:
//!
//! | Java | chrono | meaning |
//! |---|---|---|
//! | `yyyy`, `y` / `yy` | `%Y` / `%y` | year / two-digit year |
//! | `MM`, `M` / `MMM` / `MMMM` | `%m`, `%-m` / `%b` / `%B` | month number / short / full name |
//! | `dd`, `d` / `DDD`, `D` | `%d`, `%-d` / `%j`, `%-j` | day of month / of year |
//! | `HH`, `H` / `hh`, `h` / `a` | `%H`, `%-H` / `%I`, `%-I` / `%p` | 24-hour / 12-hour / AM-PM |
//! | `mm`, `m` / `ss`, `s` | `%M`, `%-M` / `%S`, `%-S` | minute / second |
//! | `SSS` / `SSSSSS` / `SSSSSSSSS` | `%3f` / `%6f` / `%9f` | fraction of a second |
//! | `E`..`EEE` / `EEEE` | `%a` / `%A` | short / full day name |
//! | `Z`, `X`, `XX`, `x` / `XXX` | `%z` / `%:z` | offset `+0800` / `+08:00` |
//!
//! Text in single quotes is literal (`''` is a quote). Any other letter is refused with an
//! error rather than guessed at, and so are `DateTimeFormatter`'s optional sections `[...]`.

use std::fmt::Write;
use std::sync::LazyLock;

use chrono::format::{Fixed, Item, Numeric, Parsed, StrftimeItems};
use chrono::{FixedOffset, NaiveDate, NaiveDateTime, TimeZone};

use crate::FunctionError;

/// Flink's default pattern for parsing and formatting timestamps as strings.
pub(crate) const DEFAULT_TIMESTAMP_PATTERN: &str = "yyyy-MM-dd HH:mm:ss";

/// A compiled Java date-time pattern.
#[derive(Debug)]
pub(crate) struct JavaDateFormat {
    pattern: String,
    items: Vec<Item<'static>>,
    /// See [`JavaDateFormat::resolution_seconds`]; worked out once here
    /// rather than for each row formatted.
    resolution: Option<i64>,
}

/// Whether parsing must consume the whole input.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trailing {
    /// `DateTimeFormatter` fails on text after the pattern.
    Reject,
    /// `SimpleDateFormat` ignores text after the pattern.
    Ignore,
}

/// A parsed date-time: the wall-clock time, and the offset if the pattern had one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParsedDateTime {
    pub(crate) wall: NaiveDateTime,
    pub(crate) offset: Option<FixedOffset>,
}

impl JavaDateFormat {
    pub(crate) fn new(pattern: &str) -> Result<Self, FunctionError> {
        let unsupported = |reason: String| FunctionError::DatePattern {
            pattern: pattern.to_owned(),
            reason,
        };
        let strftime = to_strftime(pattern).map_err(unsupported)?;
        let items = StrftimeItems::new(&strftime)
            .parse_to_owned()
            .map_err(|error| unsupported(error.to_string()))?;
        Ok(Self {
            pattern: pattern.to_owned(),
            resolution: resolution_of(&items),
            items,
        })
    }

    /// Writes `wall` in this pattern; `offset` is needed only by the offset letters.
    pub(crate) fn format(
        &self,
        out: &mut impl Write,
        wall: NaiveDateTime,
        offset: Option<FixedOffset>,
    ) -> Result<(), FunctionError> {
        let written = match offset.and_then(|offset| offset.from_local_datetime(&wall).single()) {
            Some(zoned) => write!(out, "{}", zoned.format_with_items(self.items.iter())),
            None => write!(out, "{}", wall.format_with_items(self.items.iter())),
        };
        written.map_err(|_| FunctionError::DatePattern {
            pattern: self.pattern.clone(),
            reason: "an offset (Z, X, x) can only be formatted from a TIMESTAMP_LTZ value, \
                     a TIMESTAMP has none"
                .to_owned(),
        })
    }

    /// The span of time over which the formatted text stays the same, in
    /// seconds: a day for `yyyy-MM-dd`, a minute for `HH:mm`; `None` when
    /// the pattern shows fractions of a second, an offset or anything else
    /// that does not follow from a whole second of wall-clock time.
    pub(crate) fn resolution_seconds(&self) -> Option<i64> {
        self.resolution
    }

    /// Parses `text`; fields the pattern leaves out default to 1970-01-01 00:00:00, as in
    /// Java. `None` if the text does not match.
    pub(crate) fn parse(&self, text: &str, trailing: Trailing) -> Option<ParsedDateTime> {
        let mut parsed = Parsed::new();
        match trailing {
            Trailing::Reject => chrono::format::parse(&mut parsed, text, self.items.iter()).ok()?,
            Trailing::Ignore => {
                chrono::format::parse_and_remainder(&mut parsed, text, self.items.iter()).ok()?;
            }
        }
        complete(parsed)
    }
}

/// The span [`JavaDateFormat::resolution_seconds`] reports, from the items.
fn resolution_of(items: &[Item<'static>]) -> Option<i64> {
    let mut finest = 86_400;
    for item in items {
        let seconds = match item {
            Item::Literal(_) | Item::OwnedLiteral(_) | Item::Space(_) | Item::OwnedSpace(_) => {
                continue;
            }
            Item::Numeric(numeric, _) => match numeric {
                Numeric::Second => 1,
                Numeric::Minute => 60,
                Numeric::Hour | Numeric::Hour12 => 3_600,
                Numeric::Year
                | Numeric::YearDiv100
                | Numeric::YearMod100
                | Numeric::Month
                | Numeric::Day
                | Numeric::Ordinal
                | Numeric::NumDaysFromSun
                | Numeric::WeekdayFromMon => 86_400,
                _ => return None,
            },
            Item::Fixed(fixed) => match fixed {
                Fixed::LowerAmPm | Fixed::UpperAmPm => 3_600,
                Fixed::ShortMonthName
                | Fixed::LongMonthName
                | Fixed::ShortWeekdayName
                | Fixed::LongWeekdayName => 86_400,
                _ => return None,
            },
            _ => return None,
        };
        finest = finest.min(seconds);
    }
    Some(finest)
}

fn complete(mut parsed: Parsed) -> Option<ParsedDateTime> {
    if parsed.year().is_none() && parsed.year_mod_100().is_none() {
        parsed.set_year(1970).ok()?;
    }
    if parsed.ordinal().is_none() {
        if parsed.month().is_none() {
            parsed.set_month(1).ok()?;
        }
        if parsed.day().is_none() {
            parsed.set_day(1).ok()?;
        }
    }
    if parsed.hour_mod_12().is_none() {
        parsed.set_hour(0).ok()?;
    } else if parsed.hour_div_12().is_none() {
        // `hh` without `a` reads as a morning hour in Java.
        parsed.set_ampm(false).ok()?;
    }
    if parsed.minute().is_none() {
        parsed.set_minute(0).ok()?;
    }
    let wall = parsed
        .to_naive_date()
        .ok()?
        .and_time(parsed.to_naive_time().ok()?);
    let offset = parsed.offset().and_then(FixedOffset::east_opt);
    Some(ParsedDateTime { wall, offset })
}

fn to_strftime(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.next_if_eq(&'\'').is_some() => out.push('\''),
            '\'' => loop {
                match chars.next() {
                    Some('\'') if chars.next_if_eq(&'\'').is_some() => out.push('\''),
                    Some('\'') => break,
                    Some(literal) => push_literal(&mut out, literal),
                    None => return Err("a quoted text is not closed".to_owned()),
                }
            },
            'a'..='z' | 'A'..='Z' => {
                let mut count = 1;
                while chars.next_if_eq(&c).is_some() {
                    count += 1;
                }
                let run = c.to_string().repeat(count);
                out.push_str(field(c, count).ok_or_else(|| format!("'{run}' is not supported"))?);
            }
            '[' | ']' | '{' | '}' | '#' => {
                return Err(format!("'{c}' (optional sections) is not supported"));
            }
            literal => push_literal(&mut out, literal),
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

fn field(letter: char, count: usize) -> Option<&'static str> {
    Some(match (letter, count) {
        ('y', 2) => "%y",
        ('y', _) => "%Y",
        ('M', 1) => "%-m",
        ('M', 2) => "%m",
        ('M', 3) => "%b",
        ('M', _) => "%B",
        ('d', 1) => "%-d",
        ('d', 2) => "%d",
        ('D', 1) => "%-j",
        ('D', 3) => "%j",
        ('H', 1) => "%-H",
        ('H', 2) => "%H",
        ('h', 1) => "%-I",
        ('h', 2) => "%I",
        ('m', 1) => "%-M",
        ('m', 2) => "%M",
        ('s', 1) => "%-S",
        ('s', 2) => "%S",
        ('S', 3) => "%3f",
        ('S', 6) => "%6f",
        ('S', 9) => "%9f",
        ('a', 1) => "%p",
        ('E', 1..=3) => "%a",
        ('E', _) => "%A",
        ('Z', 1..=3) | ('X' | 'x', 1 | 2) => "%z",
        ('X' | 'x', 3) => "%:z",
        _ => return None,
    })
}

static TIMESTAMP_ITEMS: LazyLock<Vec<Item<'static>>> =
    LazyLock::new(|| StrftimeItems::new("%Y-%m-%d %H:%M:%S%.f").collect());
static DATE_ITEMS: LazyLock<Vec<Item<'static>>> =
    LazyLock::new(|| StrftimeItems::new("%Y-%m-%d").collect());

/// Flink's pattern-less timestamp parsing (`TO_TIMESTAMP(s)`): `yyyy-M-d`, optionally
/// followed by ` H:m:s` and a fraction of up to nine digits.
pub(crate) fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    let mut parsed = Parsed::new();
    if chrono::format::parse(&mut parsed, text, TIMESTAMP_ITEMS.iter()).is_ok() {
        return Some(
            parsed
                .to_naive_date()
                .ok()?
                .and_time(parsed.to_naive_time().ok()?),
        );
    }
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, DATE_ITEMS.iter()).ok()?;
    parsed.to_naive_date().ok()?.and_hms_opt(0, 0, 0)
}

/// Flink's pattern-less date parsing (`TO_DATE(s)`): what precedes the first space, as
/// `y`, `y-m` or `y-m-d` with each number optionally padded by spaces; NULL if not a date.
pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    let date = text.split(' ').next().unwrap_or(text);
    let mut numbers = date.splitn(3, '-').map(|n| n.trim().parse::<u32>().ok());
    let year = i32::try_from(numbers.next()??).ok()?;
    let month = numbers.next().unwrap_or(Some(1))?;
    let day = numbers.next().unwrap_or(Some(1))?;
    NaiveDate::from_ymd_opt(year, month, day)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn a_pattern_knows_how_long_its_text_holds() {
        let resolution = |pattern: &str| {
            JavaDateFormat::new(pattern)
                .expect("pattern")
                .resolution_seconds()
        };
        assert_eq!(resolution("yyyy-MM-dd"), Some(86_400));
        assert_eq!(resolution("HH:mm"), Some(60));
        assert_eq!(resolution("hh a"), Some(3_600));
        assert_eq!(resolution("yyyy-MM-dd HH:mm:ss"), Some(1));
        assert_eq!(resolution("'at' EEEE"), Some(86_400));
        assert_eq!(resolution("ss.SSS"), None);
        assert_eq!(resolution("HH:mm XXX"), None);
    }

    fn wall(text: &str) -> NaiveDateTime {
        match NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
            Ok(wall) => wall,
            Err(error) => panic!("bad test timestamp {text}: {error}"),
        }
    }

    fn formatted(pattern: &str, text: &str) -> String {
        let mut out = String::new();
        let format = JavaDateFormat::new(pattern).map_err(|e| e.to_string());
        match format.and_then(|f| {
            f.format(&mut out, wall(text), None)
                .map_err(|e| e.to_string())
        }) {
            Ok(()) => out,
            Err(error) => panic!("{pattern}: {error}"),
        }
    }

    #[test]
    fn formats_java_letters() {
        let t = "2024-03-05 14:07:09.123456";
        assert_eq!(
            formatted("yyyy-MM-dd HH:mm:ss.SSS", t),
            "2024-03-05 14:07:09.123"
        );
        assert_eq!(formatted("yy/M/d H:m:s", t), "24/3/5 14:7:9");
        assert_eq!(formatted("MMM MMMM EEE EEEE", t), "Mar March Tue Tuesday");
        assert_eq!(formatted("hh a, DDD, SSSSSS", t), "02 PM, 065, 123456");
        assert_eq!(formatted("yyyyMMdd'T'HHmmss''%", t), "20240305T140709'%");
        assert_eq!(formatted("'o''clock' h", t), "o'clock 2");
    }

    #[test]
    fn refuses_what_it_cannot_translate() {
        for pattern in ["yyyy G", "SS", "'open", "yyyy[-MM]", "w", "u"] {
            assert!(
                matches!(
                    JavaDateFormat::new(pattern),
                    Err(FunctionError::DatePattern { .. })
                ),
                "{pattern} should be refused"
            );
        }
    }

    #[test]
    fn parses_with_java_defaults_and_leniency() {
        let format = JavaDateFormat::new("yyyy-MM-dd HH:mm:ss").map_err(|e| e.to_string());
        let Ok(format) = format else {
            panic!("default pattern must compile");
        };
        let parsed = format.parse("2024-1-2 3:04:05 trailing", Trailing::Ignore);
        assert_eq!(parsed.map(|p| p.wall), Some(wall("2024-01-02 03:04:05")));
        assert!(
            format
                .parse("2024-01-02 03:04:05 trailing", Trailing::Reject)
                .is_none()
        );
        assert!(format.parse("2024-01-02", Trailing::Ignore).is_none());

        let Ok(time_only) = JavaDateFormat::new("HH:mm") else {
            panic!("HH:mm must compile");
        };
        let parsed = time_only.parse("10:30", Trailing::Reject);
        assert_eq!(parsed.map(|p| p.wall), Some(wall("1970-01-01 10:30:00")));

        let Ok(zoned) = JavaDateFormat::new("yyyy-MM-dd HH:mm:ss.SSS X") else {
            panic!("zoned pattern must compile");
        };
        let parsed = zoned.parse("1970-01-01 08:00:01.001 +0800", Trailing::Ignore);
        assert_eq!(
            parsed.and_then(|p| p.offset),
            FixedOffset::east_opt(8 * 3600)
        );
    }

    #[test]
    fn flink_default_parsers() {
        assert_eq!(
            parse_timestamp("2024-1-2 3:04:05.123456789"),
            Some(wall("2024-01-02 03:04:05.123456789"))
        );
        assert_eq!(
            parse_timestamp("2024-01-02"),
            Some(wall("2024-01-02 00:00:00"))
        );
        assert_eq!(parse_timestamp("2024-13-02 00:00:00"), None);
        assert_eq!(
            parse_date("2024-3-5 10:00:00"),
            NaiveDate::from_ymd_opt(2024, 3, 5)
        );
        assert_eq!(parse_date("2024"), NaiveDate::from_ymd_opt(2024, 1, 1));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("x"), None);
    }
}
