//! Integer and time columns of a stored batch kept narrow: each value as
//! its distance from the batch's least value, in 1, 2 or 4 bytes, when the
//! batch's values span less than 2^32. The values a store keeps together
//! seldom span much: Nexmark's bids hold auction and bidder ids of a few
//! hundred thousand, prices below 2^32 and times a few seconds apart, 12
//! bytes a row in place of 32.

use std::sync::Arc;

use arrow::array::{Array, ArrayData, ArrayRef, make_array};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow::datatypes::DataType;
use datafusion::error::Result;

use super::{Column, internal};

/// Distances from the least value, in the fewest bytes that hold them all.
#[derive(Debug)]
enum Distances {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

/// A stored column of 8-byte integers (or times) as distances from `base`.
#[derive(Debug)]
pub(super) struct Narrow {
    data_type: DataType,
    base: i64,
    distances: Distances,
    nulls: Option<NullBuffer>,
}

/// Whether a column's values are 8-byte integers ordered as `i64`s.
fn narrows(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int64
            | DataType::Timestamp(..)
            | DataType::Date64
            | DataType::Time64(_)
            | DataType::Duration(_)
    )
}

impl Narrow {
    /// `array` narrowed; `None` when its type is not one of 8-byte
    /// integers, its values span 2^32 or more, or it holds no values.
    pub(super) fn of(array: &dyn Array) -> Option<Self> {
        if !narrows(array.data_type()) {
            return None;
        }
        let data = array.to_data();
        let values: &[i64] = data.buffer(0).get(..data.len())?;
        let nulls = data.nulls();
        let valid = |row: &usize| nulls.is_none_or(|n| n.is_valid(*row));
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for row in (0..values.len()).filter(valid) {
            min = min.min(values[row]);
            max = max.max(values[row]);
        }
        let span = u64::try_from(i128::from(max) - i128::from(min)).ok()?;
        // NULLs are stored as the least value, so they need no other width.
        let distance = |row: usize| {
            if valid(&row) {
                values[row].wrapping_sub(min) as u64
            } else {
                0
            }
        };
        let rows = 0..values.len();
        let distances = if span <= u64::from(u8::MAX) {
            Distances::U8(rows.map(|r| distance(r) as u8).collect())
        } else if span <= u64::from(u16::MAX) {
            Distances::U16(rows.map(|r| distance(r) as u16).collect())
        } else if span <= u64::from(u32::MAX) {
            Distances::U32(rows.map(|r| distance(r) as u32).collect())
        } else {
            return None;
        };
        Some(Self {
            data_type: array.data_type().clone(),
            base: min,
            distances,
            nulls: nulls.cloned(),
        })
    }

    fn value(&self, row: usize) -> i64 {
        let distance = match &self.distances {
            Distances::U8(d) => u64::from(d[row]),
            Distances::U16(d) => u64::from(d[row]),
            Distances::U32(d) => u64::from(d[row]),
        };
        self.base.wrapping_add(distance as i64)
    }

    fn is_valid(&self, row: usize) -> bool {
        self.nulls.as_ref().is_none_or(|n| n.is_valid(row))
    }
}

/// A column of `picks` from `sources`, some of them narrow, as a plain
/// column.
pub(super) fn gather(sources: &[&Column], picks: &[(usize, usize)]) -> Result<ArrayRef> {
    enum Source<'a> {
        Plain(&'a ArrayData),
        Narrow(&'a Narrow),
    }
    let plain: Vec<Option<ArrayData>> = sources
        .iter()
        .map(|s| match s {
            Column::Plain(array) => Some(array.to_data()),
            _ => None,
        })
        .collect();
    let mut data_type = None;
    let sources = sources
        .iter()
        .zip(&plain)
        .map(|(s, data)| match (s, data) {
            (Column::Narrow(narrow), _) => {
                data_type = Some(narrow.data_type.clone());
                Ok(Source::Narrow(narrow))
            }
            (_, Some(data)) if narrows(data.data_type()) => Ok(Source::Plain(data)),
            _ => Err(internal("a narrow column's batches hold other values")),
        })
        .collect::<Result<Vec<_>>>()?;
    let data_type = data_type.ok_or_else(|| internal("no narrow column to gather"))?;
    let mut values = Vec::with_capacity(picks.len());
    let mut valid = Vec::with_capacity(picks.len());
    for (source, row) in picks {
        let row = *row;
        match &sources[*source] {
            Source::Plain(data) => {
                values.push(data.buffer::<i64>(0)[row]);
                valid.push(data.nulls().is_none_or(|n| n.is_valid(row)));
            }
            Source::Narrow(narrow) => {
                values.push(narrow.value(row));
                valid.push(narrow.is_valid(row));
            }
        }
    }
    let nulls = NullBuffer::from(BooleanBuffer::from(valid));
    let data = ArrayData::builder(data_type)
        .len(picks.len())
        .add_buffer(Buffer::from_vec(values))
        .nulls((nulls.null_count() > 0).then_some(nulls))
        .build()?;
    Ok(Arc::new(make_array(data)) as ArrayRef)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, TimestampMillisecondArray};

    use super::*;

    #[test]
    fn values_of_every_span_come_back_as_they_were() {
        let spans = [0_i64, 200, 255, 256, 60_000, 65_535, 65_536, 4_000_000_000];
        for span in spans {
            let base = -1_000_000_i64;
            let values: Int64Array = (0..300_i64)
                .map(|i| (i % 7 != 3).then(|| base + (i * 7919) % (span + 1)))
                .chain([Some(base), Some(base + span)])
                .collect();
            let narrow = Narrow::of(&values).expect("narrows");
            let width = match narrow.distances {
                Distances::U8(_) => 1,
                Distances::U16(_) => 2,
                Distances::U32(_) => 4,
            };
            let expected_width = match span {
                0..=255 => 1,
                256..=65_535 => 2,
                _ => 4,
            };
            assert_eq!(width, expected_width, "span {span}");
            let column = Column::Narrow(narrow);
            let picks: Vec<(usize, usize)> = (0..values.len()).rev().map(|r| (0, r)).collect();
            let back = gather(&[&column], &picks).expect("gather");
            let expected: Int64Array = (0..values.len())
                .rev()
                .map(|r| values.is_valid(r).then(|| values.value(r)))
                .collect();
            assert_eq!(back.as_ref(), &expected as &dyn Array, "span {span}");
        }
    }

    #[test]
    fn wide_spans_and_other_types_stay_plain_and_mix_with_narrow_batches() {
        let wide = Int64Array::from(vec![i64::MIN, i64::MAX]);
        assert!(Narrow::of(&wide).is_none());
        assert!(Narrow::of(&Int64Array::from(vec![0, 1 << 32])).is_none());
        assert!(Narrow::of(&Int64Array::from(vec![1, 1 << 32])).is_some());
        assert!(Narrow::of(&arrow::array::Float64Array::from(vec![1.0])).is_none());
        assert!(Narrow::of(&Int64Array::from(vec![None, None])).is_none());

        let times = TimestampMillisecondArray::from(vec![1_700_000_000_000, 1_700_000_000_500]);
        let plain = TimestampMillisecondArray::from(vec![Some(5), None]);
        let narrow = Column::Narrow(Narrow::of(&times).expect("narrows"));
        let plain = Column::Plain(Arc::new(plain));
        let back = gather(&[&plain, &narrow], &[(1, 1), (0, 1), (0, 0), (1, 0)]).expect("gather");
        let expected = TimestampMillisecondArray::from(vec![
            Some(1_700_000_000_500),
            None,
            Some(5),
            Some(1_700_000_000_000),
        ]);
        assert_eq!(back.as_ref(), &expected as &dyn Array);
    }
}
