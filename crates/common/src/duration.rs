//! Durations written as Flink writes them: `500 ms`, `500ms`, `1s`, `10 s`,
//! `1 min`, `2 h`, `1 d`; a bare number is milliseconds.

use std::time::Duration;

use crate::CommonError;

/// Parses a Flink duration string.
pub fn parse_duration(text: &str) -> Result<Duration, CommonError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let amount: u64 = number
        .parse()
        .map_err(|_| CommonError::InvalidDuration(text.to_string()))?;
    let millis_per_unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "m" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return Err(CommonError::InvalidDuration(text.to_string())),
    };
    amount
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| CommonError::InvalidDuration(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_forms() {
        assert_eq!(
            parse_duration("500 ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("1s").ok(), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("1 min").ok(), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250").ok(), Some(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }
}
