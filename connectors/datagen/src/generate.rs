//! Vectorised generation of one split's rows, straight into Arrow arrays.
//!
//! A split owns a contiguous share of the table's rows and of every sequence
//! ([`SplitPlan`]), so that N subtasks together produce each sequence value
//! exactly once. Its [`SplitGenerator`] makes batches column by column: random
//! columns draw from a per-column generator seeded from the table, split and
//! column (so projecting columns away does not change the others), sequence
//! columns count from the split's first value by row offset (so they do not
//! depend on the projection either). Integers, sequences and floats are drawn
//! as BIGINT or DOUBLE and cast to the column's type in one kernel call.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray,
    new_null_array,
};
use arrow::buffer::{BooleanBuffer, OffsetBuffer};
use arrow::compute::{cast, nullif};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rand::distr::{Distribution, Uniform};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use weir_connector::ConnectorError;

use crate::options::{CONNECTOR, ColumnGenerator, DatagenConfig, Sequence, Values};

/// The most rows in one batch.
pub(crate) const MAX_BATCH_ROWS: usize = 8192;
/// Caps the string bytes of one batch, so that a large `fields.#.length`
/// makes smaller batches rather than exhausting memory.
const MAX_BATCH_STRING_BYTES: usize = 16 << 20;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Which share of the table's rows and sequences a split generates: split
/// `index` of `count`, encoded in the split's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SplitPlan {
    pub index: usize,
    pub count: usize,
}

/// A contiguous part of `0..total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Share {
    offset: u128,
    len: u128,
}

impl SplitPlan {
    pub fn id(self) -> String {
        format!("{CONNECTOR}-{}-of-{}", self.index, self.count)
    }

    pub fn from_id(id: &str) -> Result<Self, ConnectorError> {
        let parsed = id
            .strip_prefix(CONNECTOR)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.split_once("-of-"))
            .and_then(|(index, count)| Some((index.parse().ok()?, count.parse().ok()?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Self { index, count }),
            _ => Err(ConnectorError::NotFound(format!(
                "'{id}' is not a split of a datagen source"
            ))),
        }
    }

    /// This split's part of `total` items; the first `total % count` splits
    /// take one more than the others.
    fn share(self, total: u128) -> Share {
        let (index, count) = (self.index as u128, self.count.max(1) as u128);
        let (base, extra) = (total / count, total % count);
        Share {
            offset: index * base + index.min(extra),
            len: base + u128::from(index < extra),
        }
    }

    /// How many rows the split generates: its share of `number-of-rows`,
    /// ended early by the shortest of its sequence shares. `None` if endless.
    pub fn rows(self, config: &DatagenConfig) -> Option<u64> {
        let row_share = config.number_of_rows.map(|n| self.share(u128::from(n)).len);
        let rows = config
            .columns
            .iter()
            .filter_map(|c| match c.values {
                Values::Sequence(sequence) => Some(self.share(sequence.len()).len),
                _ => None,
            })
            .chain(row_share)
            .min()?;
        // Only a sequence over all of BIGINT has more than u64::MAX values.
        Some(u64::try_from(rows).unwrap_or(u64::MAX))
    }

    /// The part of `sequence` this split counts through.
    fn sequence(self, sequence: Sequence) -> Sequence {
        let share = self.share(sequence.len());
        // An empty share has no first value; the split makes no rows then.
        let start = i64::try_from(i128::from(sequence.start) + share.offset as i128)
            .unwrap_or(sequence.start);
        Sequence {
            start,
            end: sequence.end,
        }
    }
}

/// Makes the batches of one split.
#[derive(Debug)]
pub(crate) struct SplitGenerator {
    schema: SchemaRef,
    columns: Vec<ColumnState>,
    /// Rows still to make; `None` for an endless split.
    remaining: Option<u64>,
    /// Rows made so far, the offset of the next row within the split.
    produced: u64,
}

/// A projected column's generator.
#[derive(Debug)]
struct ColumnState {
    /// For sequences, narrowed to the split's part.
    generator: ColumnGenerator,
    /// Per table, split and column; each batch's random values come from
    /// this seed and the batch's first row, so a split resumed at a row
    /// (from a checkpoint) makes the same rows as one that never stopped.
    seed: u64,
}

impl SplitGenerator {
    /// A generator for split `plan` of `table` producing the columns of
    /// `projection` (indices into the table's schema), with `schema` the
    /// projected schema.
    pub fn new(
        table: &str,
        config: &DatagenConfig,
        plan: SplitPlan,
        projection: &[usize],
        schema: SchemaRef,
    ) -> Result<Self, ConnectorError> {
        let columns = projection
            .iter()
            .map(|&index| {
                let mut generator = config.columns.get(index).cloned().ok_or_else(|| {
                    ConnectorError::NotFound(format!(
                        "projection index {index} is out of range for table '{table}' of {} columns",
                        config.columns.len()
                    ))
                })?;
                if let Values::Sequence(sequence) = generator.values {
                    generator.values = Values::Sequence(plan.sequence(sequence));
                }
                Ok(ColumnState {
                    generator,
                    seed: seed(table, plan, index),
                })
            })
            .collect::<Result<_, ConnectorError>>()?;
        Ok(Self {
            schema,
            columns,
            remaining: plan.rows(config),
            produced: 0,
        })
    }

    /// Rows made so far: where the split stands, for a checkpoint.
    pub fn position(&self) -> u64 {
        self.produced
    }

    /// Goes on from row `position` of the split, as restored from a checkpoint.
    pub fn resume_at(&mut self, position: u64) {
        let skipped = position.saturating_sub(self.produced);
        self.produced = position;
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(skipped);
        }
    }

    /// Whether every row of the split has been made.
    pub fn is_done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// The most rows one batch may have, given the columns' string lengths.
    pub fn max_batch_rows(&self) -> usize {
        let string_bytes: usize = self
            .columns
            .iter()
            .map(|c| match c.generator.values {
                Values::RandomString { length, .. } => length,
                _ => 0,
            })
            .sum();
        match string_bytes {
            0 => MAX_BATCH_ROWS,
            bytes => (MAX_BATCH_STRING_BYTES / bytes).clamp(1, MAX_BATCH_ROWS),
        }
    }

    /// How many rows the next batch has when up to `wanted` are asked for.
    pub fn next_batch_rows(&self, wanted: usize) -> usize {
        match self.remaining {
            None => wanted,
            Some(remaining) => usize::try_from(remaining).map_or(wanted, |r| r.min(wanted)),
        }
    }

    /// Makes the next `rows` rows (as [`Self::next_batch_rows`] allowed).
    pub fn generate(&mut self, rows: usize) -> Result<RecordBatch, ConnectorError> {
        let now = Now::capture();
        let offset = self.produced;
        let columns = self
            .columns
            .iter_mut()
            .map(|c| c.generate(offset, rows, now))
            .collect::<Result<Vec<_>, _>>()?;
        // The row count keeps batches of zero columns (e.g. for COUNT(*)) valid.
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        self.produced += rows as u64;
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(rows as u64);
        }
        Ok(batch)
    }
}

/// A deterministic seed per table, split and column, so runs are reproducible
/// while different tables, splits and columns differ.
fn seed(table: &str, plan: SplitPlan, column: usize) -> u64 {
    let mut hasher = DefaultHasher::new();
    (table, plan.index, plan.count, column).hash(&mut hasher);
    hasher.finish()
}

/// The wall-clock time a batch is made at, for dates and timestamps.
#[derive(Debug, Clone, Copy)]
struct Now {
    epoch_millis: i64,
}

impl Now {
    fn capture() -> Self {
        let epoch_millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self { epoch_millis }
    }
}

impl ColumnState {
    fn generate(&mut self, offset: u64, rows: usize, now: Now) -> Result<ArrayRef, ConnectorError> {
        let generator = &self.generator;
        let data_type = &generator.data_type;
        if generator.null_rate >= 1.0 {
            return Ok(new_null_array(data_type, rows));
        }
        let mut rng =
            SmallRng::seed_from_u64(self.seed ^ offset.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let rng = &mut rng;
        let values: ArrayRef = match &generator.values {
            Values::Sequence(sequence) => {
                let first = sequence.start.wrapping_add_unsigned(offset);
                let numbers = Int64Array::from_iter_values(
                    (0..rows as u64).map(|i| first.wrapping_add_unsigned(i)),
                );
                cast(&numbers, data_type)?
            }
            Values::RandomInt { min, max } => {
                let uniform = Uniform::new_inclusive(*min, *max).map_err(bad_range)?;
                let numbers =
                    Int64Array::from_iter_values(uniform.sample_iter(&mut *rng).take(rows));
                cast(&numbers, data_type)?
            }
            Values::RandomFloat { min, max } => {
                // Interpolating avoids overflowing `max - min` over the whole range.
                let numbers = Float64Array::from_iter_values((0..rows).map(|_| {
                    let t: f64 = rng.random();
                    min * (1.0 - t) + max * t
                }));
                cast(&numbers, data_type)?
            }
            Values::RandomDecimal { min, max } => {
                let uniform = Uniform::new_inclusive(*min, *max).map_err(bad_range)?;
                let numbers =
                    Decimal128Array::from_iter_values(uniform.sample_iter(&mut *rng).take(rows));
                Arc::new(numbers.with_data_type(data_type.clone()))
            }
            Values::RandomBoolean => Arc::new(BooleanArray::new(
                BooleanBuffer::collect_bool(rows, |_| rng.random()),
                None,
            )),
            Values::RandomString { length, var_len } => {
                Arc::new(random_strings(rng, rows, *length, *var_len)?)
            }
            Values::CurrentDate => {
                let days = now.epoch_millis.div_euclid(MILLIS_PER_DAY);
                Arc::new(Date32Array::from_value(
                    i32::try_from(days).unwrap_or(i32::MAX),
                    rows,
                ))
            }
            Values::PastTimestamp { max_past_millis } => {
                let unit = match data_type {
                    DataType::Timestamp(unit, _) => *unit,
                    _ => TimeUnit::Millisecond,
                };
                let pasts: Box<dyn Iterator<Item = u64>> = if *max_past_millis > 0 {
                    let uniform = Uniform::new(0, *max_past_millis).map_err(bad_range)?;
                    Box::new(uniform.sample_iter(&mut *rng).take(rows))
                } else {
                    Box::new(std::iter::repeat_n(0, rows))
                };
                let stamps = Int64Array::from_iter_values(pasts.map(|past| {
                    let millis = now
                        .epoch_millis
                        .saturating_sub(i64::try_from(past).unwrap_or(i64::MAX));
                    millis_to_unit(millis, unit)
                }));
                cast(&stamps, data_type)?
            }
        };
        if generator.null_rate <= 0.0 {
            return Ok(values);
        }
        let null_rate = generator.null_rate;
        let nulls = BooleanArray::new(
            BooleanBuffer::collect_bool(rows, |_| rng.random::<f64>() < null_rate),
            None,
        );
        Ok(nullif(&values, &nulls)?)
    }
}

fn bad_range(error: rand::distr::uniform::Error) -> ConnectorError {
    ConnectorError::external("datagen: invalid random range", error)
}

/// Flink's datagen makes timestamps with millisecond precision in any unit.
fn millis_to_unit(millis: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => millis.div_euclid(1_000),
        TimeUnit::Millisecond => millis,
        TimeUnit::Microsecond => millis.saturating_mul(1_000),
        TimeUnit::Nanosecond => millis.saturating_mul(1_000_000),
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `rows` strings of random hex digits, each `length` long or, with
/// `var_len`, 1 to `length` long.
fn random_strings(
    rng: &mut SmallRng,
    rows: usize,
    length: usize,
    var_len: bool,
) -> Result<StringArray, ConnectorError> {
    // Lengths are at most i32::MAX and batches of long strings hold few rows,
    // so offsets fit; the check keeps a mistake from wrapping them.
    let too_long = || {
        ArrowError::InvalidArgumentError(format!(
            "{rows} strings of length {length} do not fit in one string column"
        ))
    };
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0_i32);
    let mut bytes = Vec::with_capacity(rows.saturating_mul(length));
    for _ in 0..rows {
        let len = if var_len && length > 1 {
            rng.random_range(1..=length)
        } else {
            length
        };
        push_hex(rng, &mut bytes, len);
        offsets.push(i32::try_from(bytes.len()).map_err(|_| too_long())?);
    }
    Ok(StringArray::try_new(
        OffsetBuffer::new(offsets.into()),
        bytes.into(),
        None,
    )?)
}

/// Appends `len` random hex digits, sixteen from each random word.
fn push_hex(rng: &mut SmallRng, out: &mut Vec<u8>, len: usize) {
    let mut remaining = len;
    while remaining > 0 {
        let word = rng.next_u64();
        let take = remaining.min(16);
        out.extend((0..take).map(|i| HEX_DIGITS[((word >> (4 * i)) & 0xf) as usize]));
        remaining -= take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_contiguous_and_cover_everything() {
        let shares: Vec<Share> = (0..3)
            .map(|index| SplitPlan { index, count: 3 }.share(11))
            .collect();
        assert_eq!(
            shares,
            vec![
                Share { offset: 0, len: 4 },
                Share { offset: 4, len: 4 },
                Share { offset: 8, len: 3 },
            ]
        );
        let empty = SplitPlan { index: 2, count: 3 }.share(2);
        assert_eq!(empty.len, 0);
    }

    #[test]
    fn split_ids_round_trip() {
        let plan = SplitPlan { index: 2, count: 5 };
        assert_eq!(plan.id(), "datagen-2-of-5");
        assert_eq!(SplitPlan::from_id(&plan.id()).ok(), Some(plan));
        for bad in [
            "datagen-5-of-5",
            "datagen-x-of-2",
            "files-0-of-1",
            "datagen-0",
        ] {
            assert!(SplitPlan::from_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_sequence_over_all_of_bigint_is_split_without_overflow() {
        let whole = Sequence {
            start: i64::MIN,
            end: i64::MAX,
        };
        assert_eq!(whole.len(), 1 << 64);
        let second = SplitPlan { index: 1, count: 2 }.sequence(whole);
        assert_eq!(second.start, 0);
    }
}
