//! How fast the Nexmark generator makes events on one core, with nothing
//! downstream: each table's reader is driven to the end and its batches
//! dropped.
//!
//! `cargo bench -p weir-connector-nexmark --bench generator [-- EVENTS RUNS CASE...]`
//! prints the median events/s per table over RUNS runs of EVENTS events
//! (default 10,000,000 and 5), for the named cases (default all: `bid`,
//! `bid-numbers`, `bid-channel`, `bid-url`, `bid-extra`, `auction`,
//! `person`). The bid table's figure is the one the Nexmark issue sets a
//! goal for (20M events/s). Besides every column of each table, it
//! measures the bid table's four numeric columns alone (auction, bidder,
//! price, dateTime), which is what most queries read (a source makes only
//! the columns a query projects), and each of its string columns alone,
//! to tell where a full row's time goes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use weir_connector::{Connector, SourceContext, SourceEvent, TableOptions, TableSpec};
use weir_connector_nexmark::NexmarkConnector;

fn table(kind: &str, events: u64) -> TableSpec {
    let string = |name: &str| Field::new(name, DataType::Utf8, true);
    let bigint = |name: &str| Field::new(name, DataType::Int64, true);
    let time =
        |name: &str| Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, None), true);
    let fields = match kind {
        "bid" => vec![
            bigint("auction"),
            bigint("bidder"),
            bigint("price"),
            string("channel"),
            string("url"),
            time("dateTime"),
            string("extra"),
        ],
        "auction" => vec![
            bigint("id"),
            string("itemName"),
            string("description"),
            bigint("initialBid"),
            bigint("reserve"),
            time("dateTime"),
            time("expires"),
            bigint("seller"),
            bigint("category"),
            string("extra"),
        ],
        _ => vec![
            bigint("id"),
            string("name"),
            string("emailAddress"),
            string("creditCard"),
            string("city"),
            string("state"),
            time("dateTime"),
            string("extra"),
        ],
    };
    let options: BTreeMap<String, String> = [
        ("connector", "nexmark"),
        ("table", kind),
        ("events.num", &events.to_string()),
        ("first-event.rate", "10000000"),
        ("next-event.rate", "10000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    TableSpec::new(
        kind,
        Arc::new(Schema::new(fields)),
        TableOptions::new(options),
    )
}

/// One measured case: a table, and the columns made (all when `None`).
struct Case {
    name: &'static str,
    kind: &'static str,
    projection: Option<Vec<usize>>,
}

/// Events of the whole stream (all kinds) per second of generating one table.
async fn run(case: &Case, events: u64) -> Result<(f64, u64), Box<dyn std::error::Error>> {
    let kind = case.kind;
    let spec = table(kind, events);
    let source = NexmarkConnector.create_source(&spec)?;
    let splits = source.plan_splits(1).await?;
    let started = Instant::now();
    let mut reader = source
        .create_reader(SourceContext {
            projection: case.projection.clone(),
            ..SourceContext::single(splits)
        })
        .await?;
    let mut rows = 0;
    while let Some(event) = reader.next_event().await? {
        if let SourceEvent::Batch { data, .. } = event {
            rows += data.num_rows() as u64;
        }
    }
    Ok((events as f64 / started.elapsed().as_secs_f64(), rows))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; the numbers and names are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let named: Vec<&str> = args
        .iter()
        .filter(|a| a.parse::<u64>().is_err())
        .map(String::as_str)
        .collect();
    let events = numbers.first().copied().unwrap_or(10_000_000);
    let runs = numbers.get(1).copied().unwrap_or(5).max(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    println!("{events} events, median of {runs} runs, one thread");
    println!(
        "{:<14} {:>14} {:>12} {:>16}",
        "table", "events/s", "rows", "rows/s"
    );
    let cases = [
        Case {
            name: "bid",
            kind: "bid",
            projection: None,
        },
        Case {
            name: "bid-numbers",
            kind: "bid",
            projection: Some(vec![0, 1, 2, 5]),
        },
        Case {
            name: "bid-channel",
            kind: "bid",
            projection: Some(vec![3]),
        },
        Case {
            name: "bid-url",
            kind: "bid",
            projection: Some(vec![4]),
        },
        Case {
            name: "bid-extra",
            kind: "bid",
            projection: Some(vec![6]),
        },
        Case {
            name: "auction",
            kind: "auction",
            projection: None,
        },
        Case {
            name: "person",
            kind: "person",
            projection: None,
        },
    ];
    if let Some(unknown) = named.iter().find(|n| !cases.iter().any(|c| c.name == **n)) {
        let valid: Vec<&str> = cases.iter().map(|c| c.name).collect();
        return Err(format!("no case '{unknown}'; the cases are {}", valid.join(", ")).into());
    }
    for case in cases
        .iter()
        .filter(|c| named.is_empty() || named.contains(&c.name))
    {
        let mut rates = Vec::new();
        let mut rows = 0;
        for _ in 0..runs {
            let (rate, n) = runtime.block_on(run(case, events))?;
            rates.push(rate);
            rows = n;
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let rows_per_second = median * rows as f64 / events as f64;
        println!(
            "{:<14} {:>14.0} {rows:>12} {rows_per_second:>16.0}",
            case.name, median
        );
    }
    Ok(())
}
