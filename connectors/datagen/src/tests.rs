//! End-to-end tests of the datagen source: options in, batches out, through
//! the connector API as the runtime drives it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float64Type, Int8Type, Int32Type, Int64Type,
    Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
};
use weir_connector::{
    Boundedness, Connector, ConnectorError, SourceContext, SourceEvent, SourceFactory,
    SourceMetrics, TableOptions, TableSpec,
};

use crate::DatagenConnector;
use crate::generate::MAX_BATCH_ROWS;

fn table(fields: Vec<Field>, options: &[(&str, &str)]) -> TableSpec {
    let mut map: BTreeMap<String, String> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("connector".to_string(), "datagen".to_string());
    TableSpec::new("gen", Arc::new(Schema::new(fields)), TableOptions::new(map))
}

fn source(table: &TableSpec) -> Arc<dyn SourceFactory> {
    DatagenConnector
        .create_source(table)
        .expect("valid datagen table")
}

fn error(table: &TableSpec) -> String {
    let err = DatagenConnector
        .validate(table)
        .expect_err("options should be refused");
    let create = DatagenConnector
        .create_source(table)
        .expect_err("create_source checks the same options");
    assert_eq!(err.to_string(), create.to_string());
    err.to_string()
}

/// What one subtask's reader yielded until it ended.
struct Output {
    batches: Vec<RecordBatch>,
    /// The split indices of `SplitFinished` events, in order.
    finished: Vec<usize>,
    metrics: Arc<SourceMetrics>,
}

impl Output {
    fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    fn column<T: arrow::datatypes::ArrowPrimitiveType>(
        &self,
        index: usize,
    ) -> Vec<Option<T::Native>> {
        self.batches
            .iter()
            .flat_map(|b| {
                b.column(index)
                    .as_primitive::<T>()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn strings(&self, index: usize) -> Vec<Option<String>> {
        self.batches
            .iter()
            .flat_map(|b| {
                b.column(index)
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

async fn open(
    factory: &Arc<dyn SourceFactory>,
    parallelism: usize,
    subtask: usize,
    projection: Option<Vec<usize>>,
) -> (Box<dyn weir_connector::SourceReader>, Arc<SourceMetrics>) {
    let splits = factory.plan_splits(parallelism).await.expect("splits");
    assert_eq!(splits.len(), parallelism);
    let metrics = Arc::new(SourceMetrics::default());
    let reader = factory
        .create_reader(SourceContext {
            subtask,
            parallelism,
            splits: vec![splits[subtask].clone()],
            projection,
            metrics: metrics.clone(),
        })
        .await
        .expect("reader");
    (reader, metrics)
}

/// Reads one subtask's split to its end.
async fn read(
    factory: &Arc<dyn SourceFactory>,
    parallelism: usize,
    subtask: usize,
    projection: Option<Vec<usize>>,
) -> Output {
    let (mut reader, metrics) = open(factory, parallelism, subtask, projection).await;
    let mut output = Output {
        batches: Vec::new(),
        finished: Vec::new(),
        metrics,
    };
    while let Some(event) = reader.next_event().await.expect("event") {
        match event {
            SourceEvent::Batch { split, data } => {
                assert_eq!(split, 0);
                assert!(output.finished.is_empty(), "a batch after SplitFinished");
                output.batches.push(data.into_data());
            }
            SourceEvent::SplitFinished { split } => output.finished.push(split),
            SourceEvent::SplitStarted { .. } => {}
        }
    }
    output
}

async fn read_all(factory: &Arc<dyn SourceFactory>, parallelism: usize) -> Vec<Output> {
    let mut outputs = Vec::new();
    for subtask in 0..parallelism {
        outputs.push(read(factory, parallelism, subtask, None).await);
    }
    outputs
}

fn fast() -> (&'static str, &'static str) {
    ("rows-per-second", "1000000000")
}

#[tokio::test]
async fn bounded_row_count_is_exact_across_subtasks() {
    let table = table(
        vec![Field::new("v", DataType::Int64, true)],
        &[fast(), ("number-of-rows", "20003")],
    );
    let factory = source(&table);
    assert_eq!(factory.boundedness(), Boundedness::Bounded);
    let outputs = read_all(&factory, 3).await;
    let rows: Vec<usize> = outputs.iter().map(Output::rows).collect();
    // The remainder goes to the first splits.
    assert_eq!(rows, vec![6668, 6668, 6667]);
    for output in &outputs {
        assert_eq!(output.finished, vec![0], "each split finishes once");
        assert_eq!(output.metrics.splits_finished.load(Ordering::Relaxed), 1);
        assert!(
            output
                .batches
                .iter()
                .all(|b| b.num_rows() <= MAX_BATCH_ROWS)
        );
    }
}

#[tokio::test]
async fn zero_rows_finish_at_once() {
    let table = table(
        vec![Field::new("v", DataType::Int32, true)],
        &[("number-of-rows", "1")],
    );
    let outputs = read_all(&source(&table), 2).await;
    assert_eq!(outputs[0].rows(), 1);
    assert_eq!(outputs[1].rows(), 0);
    assert_eq!(outputs[1].finished, vec![0]);
}

#[tokio::test]
async fn sequences_yield_each_value_once_across_subtasks() {
    let table = table(
        vec![
            Field::new("id", DataType::Int32, false),
            Field::new("s", DataType::Utf8, true),
            Field::new("d", DataType::Decimal128(6, 2), true),
        ],
        &[
            fast(),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "11"),
            ("fields.s.kind", "sequence"),
            ("fields.s.start", "-5"),
            ("fields.s.end", "100"),
            ("fields.d.kind", "sequence"),
            ("fields.d.start", "10"),
            ("fields.d.end", "20"),
        ],
    );
    let factory = source(&table);
    // A sequence bounds the source without 'number-of-rows'.
    assert_eq!(factory.boundedness(), Boundedness::Bounded);
    let outputs = read_all(&factory, 2).await;
    let ids: Vec<Vec<i32>> = outputs
        .iter()
        .map(|o| o.column::<Int32Type>(0).into_iter().flatten().collect())
        .collect();
    // Contiguous shares, the remainder to the first split.
    assert_eq!(ids[0], (1..=6).collect::<Vec<_>>());
    assert_eq!(ids[1], (7..=11).collect::<Vec<_>>());
    // The shortest sequence ends each split; the longer one stops there.
    assert_eq!(
        outputs[0].strings(1),
        ["-5", "-4", "-3", "-2", "-1", "0"].map(|s| Some(s.to_string()))
    );
    assert_eq!(outputs[1].strings(1)[0].as_deref(), Some("48"));
    let decimals: Vec<i128> = outputs
        .iter()
        .flat_map(|o| o.column::<Decimal128Type>(2))
        .flatten()
        .collect();
    assert_eq!(decimals, (10..=20).map(|v| v * 100).collect::<Vec<_>>());
}

#[tokio::test]
async fn number_of_rows_cuts_sequences_short() {
    let table = table(
        vec![Field::new("id", DataType::Int64, false)],
        &[
            fast(),
            ("number-of-rows", "4"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "100"),
        ],
    );
    let outputs = read_all(&source(&table), 2).await;
    let ids: Vec<Vec<Option<i64>>> = outputs.iter().map(|o| o.column::<Int64Type>(0)).collect();
    assert_eq!(ids, vec![vec![Some(1), Some(2)], vec![Some(51), Some(52)]]);
}

#[tokio::test]
async fn projection_generates_only_the_asked_columns_consistently() {
    let table = table(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ],
        &[
            fast(),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "1000"),
            ("fields.s.length", "3"),
        ],
    );
    let factory = source(&table);
    let full = read(&factory, 2, 1, None).await;
    let swapped = read(&factory, 2, 1, Some(vec![1, 0])).await;
    assert_eq!(swapped.batches[0].schema().field(0).name(), "v");
    assert_eq!(swapped.batches[0].schema().field(1).name(), "id");
    assert_eq!(swapped.batches[0].num_columns(), 2);
    assert_eq!(swapped.column::<Int64Type>(1), full.column::<Int64Type>(0));
    assert_eq!(swapped.column::<Int32Type>(0), full.column::<Int32Type>(1));
    assert_eq!(full.column::<Int64Type>(0)[0], Some(501));

    // No columns at all (e.g. for COUNT(*)) still counts the rows.
    let none = read(&factory, 2, 1, Some(vec![])).await;
    assert_eq!(none.rows(), 500);
    assert!(none.batches.iter().all(|b| b.num_columns() == 0));
}

/// A reader restored from a snapshot goes on with exactly the rows the
/// undisturbed reader makes, random values included.
#[tokio::test]
async fn a_split_resumed_from_its_snapshot_makes_the_same_rows() {
    let table = table(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Int32, true),
        ],
        &[
            ("rows-per-second", "30000"),
            ("number-of-rows", "20000"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "20000"),
        ],
    );
    let factory = source(&table);
    let undisturbed = read(&factory, 1, 0, None).await;
    let (mut reader, metrics) = open(&factory, 1, 0, None).await;
    let mut batches = Vec::new();
    for _ in 0..3 {
        if let Some(SourceEvent::Batch { data, .. }) = reader.next_event().await.expect("event") {
            batches.push(data.into_data());
        }
    }
    let snapshot = reader.snapshot(1).expect("snapshot");
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].position.as_deref(), Some("9000"));
    let mut resumed = factory
        .create_reader(SourceContext {
            subtask: 0,
            parallelism: 1,
            splits: snapshot,
            projection: None,
            metrics,
        })
        .await
        .expect("reader");
    while let Some(event) = resumed.next_event().await.expect("event") {
        if let SourceEvent::Batch { data, .. } = event {
            batches.push(data.into_data());
        }
    }
    let resumed = Output {
        batches,
        finished: Vec::new(),
        metrics: Arc::new(SourceMetrics::default()),
    };
    assert_eq!(resumed.rows(), 20_000);
    assert_eq!(
        resumed.column::<Int64Type>(0),
        undisturbed.column::<Int64Type>(0)
    );
    assert_eq!(
        resumed.column::<Int32Type>(1),
        undisturbed.column::<Int32Type>(1)
    );
}

#[tokio::test]
async fn random_numbers_stay_within_min_and_max() {
    let table = table(
        vec![
            Field::new("i", DataType::Int32, true),
            Field::new("t", DataType::Int8, true),
            Field::new("d", DataType::Float64, true),
            Field::new("m", DataType::Decimal128(5, 2), true),
            Field::new("dflt", DataType::Float64, true),
        ],
        &[
            fast(),
            ("number-of-rows", "3000"),
            ("fields.i.min", "5"),
            ("fields.i.max", "10"),
            ("fields.t.min", "-3"),
            ("fields.t.max", "-1"),
            ("fields.d.min", "1.5"),
            ("fields.d.max", "2.5"),
            ("fields.m.min", "-1.25"),
            ("fields.m.max", "1.25"),
        ],
    );
    let output = read(&source(&table), 1, 0, None).await;
    assert_eq!(output.rows(), 3000);
    let ints: BTreeSet<i32> = output
        .column::<Int32Type>(0)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        ints,
        (5..=10).collect(),
        "every value of the range, nothing else"
    );
    let tiny: BTreeSet<i8> = output.column::<Int8Type>(1).into_iter().flatten().collect();
    assert_eq!(tiny, (-3..=-1).collect());
    let doubles: Vec<f64> = output
        .column::<Float64Type>(2)
        .into_iter()
        .flatten()
        .collect();
    assert!(
        doubles.iter().all(|d| (1.5..=2.5).contains(d)),
        "{doubles:?}"
    );
    assert!(doubles.iter().any(|d| *d < 1.6) && doubles.iter().any(|d| *d > 2.4));
    assert_eq!(
        output.batches[0].column(3).data_type(),
        &DataType::Decimal128(5, 2)
    );
    let decimals: Vec<i128> = output
        .column::<Decimal128Type>(3)
        .into_iter()
        .flatten()
        .collect();
    assert!(
        decimals.iter().all(|d| (-125..=125).contains(d)),
        "{decimals:?}"
    );
    assert!(decimals.iter().any(|d| *d < 0) && decimals.iter().any(|d| *d > 0));
    // Flink's default bounds for DOUBLE are Double.MIN_VALUE and MAX_VALUE.
    let defaults: Vec<f64> = output
        .column::<Float64Type>(4)
        .into_iter()
        .flatten()
        .collect();
    assert!(defaults.iter().all(|d| *d > 0.0 && d.is_finite()));
    assert_eq!(output.batches[0].column(0).null_count(), 0);
}

#[tokio::test]
async fn random_strings_have_the_configured_length() {
    let table = table(
        vec![
            Field::new("fixed", DataType::Utf8, true),
            Field::new("dflt", DataType::Utf8, true),
            Field::new("var", DataType::Utf8, true),
        ],
        &[
            fast(),
            ("number-of-rows", "500"),
            ("fields.fixed.length", "7"),
            ("fields.var.length", "5"),
            ("fields.var.var-len", "true"),
        ],
    );
    let output = read(&source(&table), 1, 0, None).await;
    let fixed = output.strings(0);
    assert_eq!(fixed.len(), 500);
    for s in fixed.iter().flatten() {
        assert_eq!(s.len(), 7, "{s}");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{s}"
        );
    }
    assert!(output.strings(1).iter().flatten().all(|s| s.len() == 100));
    let var_lengths: BTreeSet<usize> = output
        .strings(2)
        .iter()
        .flatten()
        .map(String::len)
        .collect();
    assert_eq!(var_lengths, (1..=5).collect());
    let distinct: BTreeSet<&String> = fixed.iter().flatten().collect();
    assert!(distinct.len() > 490, "strings are random");
}

#[tokio::test]
async fn null_rate_controls_nulls() {
    let table = table(
        vec![
            Field::new("never", DataType::Int32, true),
            Field::new("always", DataType::Utf8, true),
            Field::new("half", DataType::Boolean, true),
        ],
        &[
            fast(),
            ("number-of-rows", "1000"),
            ("fields.never.null-rate", "0"),
            ("fields.always.null-rate", "1"),
            ("fields.half.null-rate", "0.5"),
        ],
    );
    let output = read(&source(&table), 1, 0, None).await;
    let nulls = |column: usize| -> usize {
        output
            .batches
            .iter()
            .map(|b| b.column(column).null_count())
            .sum()
    };
    assert_eq!(nulls(0), 0);
    assert_eq!(nulls(1), 1000);
    assert!((300..700).contains(&nulls(2)), "{}", nulls(2));
}

fn now_millis() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("millis fit")
}

#[tokio::test]
async fn timestamps_lie_within_max_past_and_dates_are_today() {
    let table = table(
        vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new(
                "ltz",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("day", DataType::Date32, true),
        ],
        &[
            fast(),
            ("number-of-rows", "1000"),
            ("fields.ts.max-past", "5 s"),
        ],
    );
    let before = now_millis();
    let output = read(&source(&table), 1, 0, None).await;
    let after = now_millis();
    let stamps: Vec<i64> = output
        .column::<TimestampMillisecondType>(0)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(stamps.len(), 1000);
    assert!(stamps.iter().all(|t| (before - 5000..=after).contains(t)));
    assert!(
        stamps.iter().any(|t| *t < before - 1000),
        "spread over the past"
    );
    assert_eq!(
        output.batches[0].column(1).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let ltz: Vec<i64> = output
        .column::<TimestampMicrosecondType>(1)
        .into_iter()
        .flatten()
        .collect();
    // Without 'max-past' a timestamp is the current time.
    assert!(
        ltz.iter()
            .all(|t| (before * 1000..=after * 1000).contains(t))
    );
    let days: BTreeSet<i32> = output
        .column::<Date32Type>(2)
        .into_iter()
        .flatten()
        .collect();
    let today = i32::try_from(after.div_euclid(86_400_000)).expect("days fit");
    assert!(
        days.iter().all(|d| *d == today || *d == today - 1),
        "{days:?}"
    );
}

#[tokio::test]
async fn a_low_rate_is_honoured() {
    // 20 rows a second make batches of 2 rows every 100 ms: 10 rows take at
    // least 400 ms (the first batch goes out at once).
    let table = table(
        vec![Field::new("v", DataType::Int32, true)],
        &[("rows-per-second", "20"), ("number-of-rows", "10")],
    );
    let started = tokio::time::Instant::now();
    let output = read(&source(&table), 1, 0, None).await;
    let elapsed = started.elapsed();
    assert_eq!(output.rows(), 10);
    assert!(output.batches.iter().all(|b| b.num_rows() == 2));
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
}

#[tokio::test]
async fn the_rate_is_shared_by_the_subtasks() {
    // 40 rows a second over 2 subtasks is 20 each: the 5 rows of a subtask go
    // out as 2, 2 and 1 rows 100 ms apart.
    let table = table(
        vec![Field::new("v", DataType::Int32, true)],
        &[("rows-per-second", "40"), ("number-of-rows", "10")],
    );
    let started = tokio::time::Instant::now();
    let output = read(&source(&table), 2, 1, None).await;
    let elapsed = started.elapsed();
    assert_eq!(output.rows(), 5);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
}

#[tokio::test]
async fn a_high_rate_makes_full_batches_without_waiting() {
    let table = table(
        vec![Field::new("v", DataType::Int64, true)],
        &[
            ("rows-per-second", "100000000"),
            ("number-of-rows", "20000"),
        ],
    );
    let output = read(&source(&table), 1, 0, None).await;
    let sizes: Vec<usize> = output.batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, vec![8192, 8192, 3616]);
}

#[tokio::test]
async fn long_strings_make_smaller_batches() {
    let table = table(
        vec![Field::new("s", DataType::Utf8, true)],
        &[
            fast(),
            ("number-of-rows", "10"),
            ("fields.s.length", "4000000"),
        ],
    );
    let output = read(&source(&table), 1, 0, None).await;
    assert_eq!(output.rows(), 10);
    assert!(output.batches.iter().all(|b| b.num_rows() <= 4));
}

#[tokio::test]
async fn without_a_row_count_the_source_is_endless() {
    let table = table(vec![Field::new("v", DataType::Boolean, true)], &[fast()]);
    let factory = source(&table);
    assert_eq!(factory.boundedness(), Boundedness::Unbounded);
    let (mut reader, _) = open(&factory, 1, 0, None).await;
    let mut values = BTreeSet::new();
    for _ in 0..5 {
        match reader.next_event().await.expect("event") {
            Some(SourceEvent::Batch { data, .. }) => {
                let data = data.into_data();
                assert_eq!(data.num_rows(), MAX_BATCH_ROWS);
                values.extend(data.column(0).as_boolean().iter().flatten());
            }
            other => panic!("expected a batch, got {other:?}"),
        }
    }
    assert_eq!(values, BTreeSet::from([false, true]));
}

#[test]
fn unknown_options_list_the_valid_ones() {
    let text = error(&table(
        vec![Field::new("id", DataType::Int32, true)],
        &[("rows-per-secnd", "5")],
    ));
    assert!(text.contains("'rows-per-secnd'"), "{text}");
    assert!(text.contains("rows-per-second"), "{text}");
    assert!(text.contains("number-of-rows"), "{text}");
    assert!(text.contains("fields.<field>.kind"), "{text}");
    assert!(text.contains("fields.<field>.null-rate"), "{text}");
}

#[test]
fn options_for_missing_columns_are_refused() {
    let text = error(&table(
        vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ],
        &[("fields.nope.kind", "random")],
    ));
    assert!(text.contains("'fields.nope.kind'"), "{text}");
    assert!(text.contains("'nope'"), "{text}");
    assert!(text.contains("id, name"), "{text}");
}

/// Asserts that a table with `options` is refused with a message containing `expected`.
fn refused(fields: Vec<Field>, options: &[(&str, &str)], expected: &str) {
    let text = error(&table(fields, options));
    assert!(text.contains(expected), "{options:?}: {text}");
}

#[test]
fn bad_values_name_their_option() {
    let int = || vec![Field::new("id", DataType::Int32, true)];
    refused(int(), &[("fields.id.min", "abc")], "'fields.id.min'");
    refused(int(), &[("fields.id.max", "3000000000")], "'fields.id.max'");
    refused(
        int(),
        &[("fields.id.min", "9"), ("fields.id.max", "1")],
        "'fields.id.max'",
    );
    refused(int(), &[("rows-per-second", "fast")], "'rows-per-second'");
    refused(int(), &[("rows-per-second", "0")], "'rows-per-second'");
    refused(int(), &[("number-of-rows", "-1")], "'number-of-rows'");
    refused(
        int(),
        &[("fields.id.null-rate", "1.5")],
        "'fields.id.null-rate'",
    );
    refused(int(), &[("fields.id.kind", "zigzag")], "'fields.id.kind'");
    refused(
        vec![Field::new("t", DataType::Int8, true)],
        &[("fields.t.min", "300")],
        "from -128 to 127",
    );
    let string = || vec![Field::new("s", DataType::Utf8, true)];
    refused(string(), &[("fields.s.length", "-1")], "'fields.s.length'");
    refused(
        string(),
        &[("fields.s.var-len", "maybe")],
        "'fields.s.var-len'",
    );
    refused(
        vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )],
        &[("fields.ts.max-past", "soon")],
        "'fields.ts.max-past'",
    );
    refused(
        vec![Field::new("id", DataType::Int32, false)],
        &[("fields.id.null-rate", "0.1")],
        "NOT NULL",
    );
    // 100 does not fit DECIMAL(4, 2).
    refused(
        vec![Field::new("d", DataType::Decimal128(4, 2), true)],
        &[
            ("fields.d.kind", "sequence"),
            ("fields.d.start", "1"),
            ("fields.d.end", "100"),
        ],
        "'fields.d.end'",
    );
}

#[test]
fn sequences_need_start_and_end_in_order() {
    let int = || vec![Field::new("id", DataType::Int64, true)];
    let text = error(&table(
        int(),
        &[("fields.id.kind", "sequence"), ("fields.id.start", "1")],
    ));
    assert!(text.contains("'fields.id.end'"), "{text}");
    let text = error(&table(
        int(),
        &[("fields.id.kind", "sequence"), ("fields.id.end", "1")],
    ));
    assert!(text.contains("'fields.id.start'"), "{text}");
    let text = error(&table(
        int(),
        &[
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "5"),
            ("fields.id.end", "1"),
        ],
    ));
    assert!(
        text.contains("'fields.id.end'") && text.contains("'fields.id.start'"),
        "{text}"
    );
}

#[test]
fn sequences_of_timestamps_are_refused() {
    let text = error(&table(
        vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )],
        &[
            ("fields.ts.kind", "sequence"),
            ("fields.ts.start", "1"),
            ("fields.ts.end", "2"),
        ],
    ));
    assert!(text.contains("'fields.ts.kind'"), "{text}");
    assert!(text.contains("TIMESTAMP(3)"), "{text}");
}

#[test]
fn options_that_do_not_apply_to_a_column_are_refused() {
    let text = error(&table(
        vec![Field::new("id", DataType::Int32, true)],
        &[("fields.id.length", "5")],
    ));
    assert!(text.contains("'fields.id.length'"), "{text}");
    assert!(
        text.contains("fields.id.kind, fields.id.max, fields.id.min, fields.id.null-rate"),
        "{text}"
    );
    // A sequence has no random bounds.
    let text = error(&table(
        vec![Field::new("id", DataType::Int32, true)],
        &[
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "2"),
            ("fields.id.min", "0"),
        ],
    ));
    assert!(text.contains("'fields.id.min'"), "{text}");
}

#[test]
fn unsupported_types_and_sinks_are_refused() {
    let err = DatagenConnector
        .validate(&table(vec![Field::new("b", DataType::Binary, true)], &[]))
        .expect_err("binary is not generated");
    assert!(matches!(err, ConnectorError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("'b'"), "{err}");
    let err = DatagenConnector
        .create_sink(&table(vec![Field::new("v", DataType::Int32, true)], &[]))
        .expect_err("no sink");
    assert!(matches!(err, ConnectorError::Unsupported { .. }), "{err}");
}

#[test]
fn valid_tables_pass_validation() {
    let table = table(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ],
        &[
            ("rows-per-second", "5"),
            ("fields.id.kind", "SEQUENCE"),
            ("fields.id.start", "1"),
            ("fields.id.end", "10"),
            ("fields.price.min", "0.5"),
            ("fields.price.max", "99.99"),
            ("fields.ts.max-past", "1 min"),
            ("fields.ts.null-rate", "0.1"),
        ],
    );
    DatagenConnector.validate(&table).expect("valid");
}
