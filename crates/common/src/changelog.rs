//! Changelog batches: Arrow record batches whose rows carry Flink's row kinds.
//!
//! Insert-only streams (the common case: scans, filters, projections, window
//! aggregates) carry no kinds column at all, so they pay nothing for the
//! changelog. Updating operators (unbounded aggregations, joins, Top-N)
//! attach a [`UInt8Array`] of [`RowKind`] codes, one per row, which every
//! operator, sink and client reads through [`StreamBatch::row_kind`].

use std::fmt;

use arrow::array::{Array, AsArray, BooleanArray, UInt8Array, UInt32Array};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::CommonError;

/// The kind of change a row describes, as Flink's `RowKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the old value of an updated row, retracted.
    UpdateBefore = 1,
    /// `+U`: the new value of an updated row.
    UpdateAfter = 2,
    /// `-D`: a deleted row.
    Delete = 3,
}

impl RowKind {
    /// Flink's short form: `+I`, `-U`, `+U`, `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// True for `+I` and `+U`, the kinds that add a row to a result.
    pub fn is_accumulate(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }

    /// Decodes the byte stored in a kinds column.
    pub fn from_code(code: u8) -> Result<Self, CommonError> {
        match code {
            0 => Ok(RowKind::Insert),
            1 => Ok(RowKind::UpdateBefore),
            2 => Ok(RowKind::UpdateAfter),
            3 => Ok(RowKind::Delete),
            other => Err(CommonError::Internal(format!(
                "invalid row kind code {other} in a changelog batch"
            ))),
        }
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_string())
    }
}

/// A batch of rows flowing between operators, with optional row kinds.
#[derive(Debug, Clone)]
pub struct StreamBatch {
    data: RecordBatch,
    /// One [`RowKind`] code per row; `None` means every row is an insert.
    kinds: Option<UInt8Array>,
}

impl StreamBatch {
    /// An insert-only batch.
    pub fn inserts(data: RecordBatch) -> Self {
        Self { data, kinds: None }
    }

    /// A changelog batch; `kinds` must have one entry per row.
    pub fn try_new_changelog(data: RecordBatch, kinds: UInt8Array) -> Result<Self, CommonError> {
        if kinds.len() != data.num_rows() {
            return Err(CommonError::Internal(format!(
                "changelog batch has {} rows but {} row kinds",
                data.num_rows(),
                kinds.len()
            )));
        }
        if kinds.null_count() > 0 {
            return Err(CommonError::Internal(
                "changelog batch has null row kinds".to_string(),
            ));
        }
        let kinds = (!kinds.values().iter().all(|k| *k == RowKind::Insert as u8)).then_some(kinds);
        Ok(Self { data, kinds })
    }

    pub fn data(&self) -> &RecordBatch {
        &self.data
    }

    pub fn into_data(self) -> RecordBatch {
        self.data
    }

    pub fn schema(&self) -> SchemaRef {
        self.data.schema()
    }

    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }

    /// True when every row is an insert.
    pub fn is_insert_only(&self) -> bool {
        self.kinds.is_none()
    }

    /// The kinds column, if the batch has non-insert rows.
    pub fn kinds(&self) -> Option<&UInt8Array> {
        self.kinds.as_ref()
    }

    /// The kind of row `row`.
    pub fn row_kind(&self, row: usize) -> RowKind {
        match &self.kinds {
            // Codes are validated on construction and by `with_data`.
            Some(kinds) => RowKind::from_code(kinds.value(row)).unwrap_or(RowKind::Insert),
            None => RowKind::Insert,
        }
    }

    /// Replaces the columns, keeping the row kinds (for projections).
    pub fn with_data(&self, data: RecordBatch) -> Result<Self, CommonError> {
        match &self.kinds {
            None => Ok(Self::inserts(data)),
            Some(kinds) => Self::try_new_changelog(data, kinds.clone()),
        }
    }

    /// The rows at `indices`, with their kinds (for hash partitioning).
    pub fn take(&self, indices: &UInt32Array) -> Result<Self, CommonError> {
        let data = take_record_batch(&self.data, indices)?;
        match &self.kinds {
            None => Ok(Self::inserts(data)),
            Some(kinds) => {
                let kinds = arrow::compute::take(kinds, indices, None)?;
                Self::try_new_changelog(data, kinds.as_primitive().clone())
            }
        }
    }

    /// `length` rows from `offset`, with their kinds (for limits).
    pub fn slice(&self, offset: usize, length: usize) -> Self {
        Self {
            data: self.data.slice(offset, length),
            kinds: self.kinds.as_ref().map(|k| k.slice(offset, length)),
        }
    }

    /// Keeps the rows where `mask` is true, with their kinds (for filters).
    pub fn filter(&self, mask: &BooleanArray) -> Result<Self, CommonError> {
        let data = filter_record_batch(&self.data, mask)?;
        match &self.kinds {
            None => Ok(Self::inserts(data)),
            Some(kinds) => {
                let kinds = arrow::compute::filter(kinds, mask)?;
                Self::try_new_changelog(data, kinds.as_primitive().clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("valid batch")
    }

    #[test]
    fn all_insert_kinds_are_dropped() {
        let b = StreamBatch::try_new_changelog(batch(&[1, 2]), UInt8Array::from(vec![0, 0]))
            .expect("valid");
        assert!(b.is_insert_only());
    }

    #[test]
    fn filter_keeps_kinds_aligned() {
        let b = StreamBatch::try_new_changelog(batch(&[1, 2, 3]), UInt8Array::from(vec![0, 1, 2]))
            .expect("valid");
        let f = b
            .filter(&BooleanArray::from(vec![false, true, true]))
            .expect("filter");
        assert_eq!(f.num_rows(), 2);
        assert_eq!(f.row_kind(0), RowKind::UpdateBefore);
        assert_eq!(f.row_kind(1), RowKind::UpdateAfter);
    }

    #[test]
    fn mismatched_kinds_are_refused() {
        let err = StreamBatch::try_new_changelog(batch(&[1]), UInt8Array::from(vec![0, 1]));
        assert!(err.is_err());
        let err = StreamBatch::try_new_changelog(batch(&[1]), UInt8Array::from(vec![9]));
        assert!(err.is_ok(), "codes are checked when read");
        assert!(RowKind::from_code(9).is_err());
    }
}
