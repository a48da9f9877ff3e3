//! The nexmark WITH options, named as nexmark-flink names them.

use weir_connector::{ConnectorError, OptionRules, TableOptions, TableSpec};

use crate::CONNECTOR;
use crate::columns::TableShape;
use crate::model::{EventKind, ModelConfig};

const TABLE: &str = "table";
const EVENTS_NUM: &str = "events.num";
const FIRST_EVENT_RATE: &str = "first-event.rate";
const NEXT_EVENT_RATE: &str = "next-event.rate";
const RATE_LIMITED: &str = "rate.limited";
const PERSON_PROPORTION: &str = "person.proportion";
const AUCTION_PROPORTION: &str = "auction.proportion";
const BID_PROPORTION: &str = "bid.proportion";
const HOT_AUCTIONS: &str = "bid.hot-ratio.auctions";
const HOT_BIDDERS: &str = "bid.hot-ratio.bidders";
const HOT_SELLERS: &str = "auction.hot-ratio.sellers";
const PERSON_AVG_SIZE: &str = "person.avg-size";
const AUCTION_AVG_SIZE: &str = "auction.avg-size";
const BID_AVG_SIZE: &str = "bid.avg-size";
const SEED: &str = "seed";

/// Event time starts here, as in Beam's Nexmark (2015-07-15T00:00:00Z),
/// so that every run makes the same stream.
const BASE_TIME_MILLIS: i64 = 1_436_918_400_000;

pub(crate) fn option_rules() -> OptionRules {
    OptionRules::new([
        TABLE,
        EVENTS_NUM,
        FIRST_EVENT_RATE,
        NEXT_EVENT_RATE,
        RATE_LIMITED,
        PERSON_PROPORTION,
        AUCTION_PROPORTION,
        BID_PROPORTION,
        HOT_AUCTIONS,
        HOT_BIDDERS,
        HOT_SELLERS,
        PERSON_AVG_SIZE,
        AUCTION_AVG_SIZE,
        BID_AVG_SIZE,
        SEED,
    ])
}

/// A nexmark table's options, checked.
#[derive(Debug, Clone)]
pub(crate) struct NexmarkConfig {
    pub model: ModelConfig,
    /// Events to generate (of all kinds); `None` for an endless stream.
    pub events: Option<u64>,
    /// Whether to emit events no faster than their event time advances.
    pub rate_limited: bool,
    pub shape: TableShape,
}

impl NexmarkConfig {
    pub fn parse(table: &TableSpec) -> Result<Self, ConnectorError> {
        let options = &table.options;
        option_rules().check(CONNECTOR, options)?;
        let kind = match options.get(TABLE) {
            None => None,
            Some(value) => Some(
                EventKind::ALL
                    .into_iter()
                    .find(|k| k.name().eq_ignore_ascii_case(value.trim()))
                    .ok_or_else(|| {
                        invalid(TABLE, value, "valid values are person, auction, bid")
                    })?,
            ),
        };
        let rate = positive(options, FIRST_EVENT_RATE, 10_000)?;
        if let Some(next) = options.get(NEXT_EVENT_RATE) {
            let next_rate = positive(options, NEXT_EVENT_RATE, rate)?;
            if next_rate != rate {
                return Err(invalid(
                    NEXT_EVENT_RATE,
                    next,
                    "event time advances at one rate; set it equal to 'first-event.rate'",
                ));
            }
        }
        let model = ModelConfig {
            person_proportion: positive(options, PERSON_PROPORTION, 1)?,
            auction_proportion: positive(options, AUCTION_PROPORTION, 3)?,
            bid_proportion: number(options, BID_PROPORTION, 46)?,
            hot_auction_ratio: positive(options, HOT_AUCTIONS, 2)?,
            hot_bidders_ratio: positive(options, HOT_BIDDERS, 4)?,
            hot_sellers_ratio: positive(options, HOT_SELLERS, 4)?,
            avg_person_bytes: size(options, PERSON_AVG_SIZE, 200)?,
            avg_auction_bytes: size(options, AUCTION_AVG_SIZE, 500)?,
            avg_bid_bytes: size(options, BID_AVG_SIZE, 100)?,
            events_per_second: rate,
            base_time_millis: BASE_TIME_MILLIS,
            seed: number(options, SEED, 0)?,
        };
        let total = [model.auction_proportion, model.bid_proportion]
            .into_iter()
            .try_fold(model.person_proportion, u64::checked_add)
            .filter(|total| *total <= MAX_EPOCH_EVENTS);
        if total.is_none() {
            return Err(invalid(
                PERSON_PROPORTION,
                &options.get(PERSON_PROPORTION).unwrap_or("1"),
                &format!(
                    "'person.proportion', 'auction.proportion' and 'bid.proportion' add up to \
                     more than {MAX_EPOCH_EVENTS}"
                ),
            ));
        }
        let events = match number(options, EVENTS_NUM, 0)? {
            0 => None,
            n => Some(n),
        };
        let rate_limited = match options.get(RATE_LIMITED).map(str::trim) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => return Err(invalid(RATE_LIMITED, v, "expected true or false")),
        };
        let shape = TableShape::bind(&table.name, kind, &table.schema)?;
        Ok(Self {
            model,
            events,
            rate_limited,
            shape,
        })
    }
}

/// The most events in one epoch of the three proportions, so that event
/// positions (epochs of chunks of epochs) stay far from overflowing.
const MAX_EPOCH_EVENTS: u64 = 1_000_000;

fn invalid(key: &str, value: &str, reason: &str) -> ConnectorError {
    ConnectorError::InvalidOption {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn number(options: &TableOptions, key: &str, default: u64) -> Result<u64, ConnectorError> {
    Ok(options.parse(key, "a whole number")?.unwrap_or(default))
}

fn positive(options: &TableOptions, key: &str, default: u64) -> Result<u64, ConnectorError> {
    let n = number(options, key, default)?;
    if n == 0 {
        return Err(invalid(key, "0", "must be at least 1"));
    }
    Ok(n)
}

/// A byte size as Flink's MemorySize writes it: `100`, `100b`, `1kb`, `2 mb`.
fn size(options: &TableOptions, key: &str, default: u64) -> Result<u64, ConnectorError> {
    let Some(value) = options.get(key) else {
        return Ok(default);
    };
    let text = value.trim().to_ascii_lowercase();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale: u64 = match unit.trim() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mebibytes" => 1 << 20,
        _ => {
            return Err(invalid(
                key,
                value,
                "expected a size such as 100b, 1kb or 1mb",
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n <= 1 << 20)
        .ok_or_else(|| invalid(key, value, "expected a size between 0 and 1mb"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use weir_connector::{TableOptions, TableSpec};

    use super::*;

    fn parse(options: &[(&str, &str)]) -> Result<NexmarkConfig, ConnectorError> {
        let mut all = BTreeMap::from([("connector".to_string(), "nexmark".to_string())]);
        all.extend(options.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let schema = Schema::new(vec![Field::new("price", DataType::Int64, true)]);
        let spec = TableSpec::new("bid", Arc::new(schema), TableOptions::new(all));
        NexmarkConfig::parse(&spec)
    }

    #[test]
    fn proportions_that_overflow_an_epoch_are_refused() {
        let huge = u64::MAX.to_string();
        let refused = parse(&[("table", "bid"), ("person.proportion", &huge)]);
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("add up to more than 1000000"), "{message}");
        assert!(parse(&[("table", "bid"), ("bid.proportion", "999996")]).is_ok());
        assert!(parse(&[("table", "bid"), ("bid.proportion", "999997")]).is_err());
    }
}
