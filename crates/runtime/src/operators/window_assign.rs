//! The window table function operator: appends `window_start`,
//! `window_end` and `window_time` to every row.
//!
//! On its own it expands each row into every window holding it (HOP and
//! CUMULATE rows appear once per window, as in Flink). Under a window
//! aggregation it runs in *slice* mode: each row gets the bounds of its one
//! slice, and the aggregation merges slices into windows, so no row is ever
//! copied. Rows whose windows have all fired are late: dropped and counted.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray, UInt32Array};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use weir_common::window::instant;
use weir_common::{StreamBatch, Watermark, WindowFunction, WindowSpec, ZoneShift};

use super::window_agg::TimeDomain;
use crate::error::batch_error;
use crate::operator::{Collector, Operator};

#[derive(Debug, Clone)]
pub struct WindowAssigner {
    function: WindowFunction,
    /// The time column.
    time: Arc<dyn PhysicalExpr>,
    /// Slice mode: one row per input row, bounds of its slice.
    slices_only: bool,
    /// Set for a TIMESTAMP_LTZ time column: windows follow the session zone's wall clock.
    zone: Option<ZoneShift>,
    /// Processing-time windows are never late here (watermarks are event time).
    domain: TimeDomain,
    output_schema: SchemaRef,
    watermark: i64,
    name: String,
}

impl WindowAssigner {
    pub fn new(
        function: WindowFunction,
        time: Arc<dyn PhysicalExpr>,
        slices_only: bool,
        output_schema: SchemaRef,
        zone: Option<ZoneShift>,
        domain: TimeDomain,
    ) -> Result<Self> {
        let width = output_schema.fields().len();
        if width < 3 {
            return Err(DataFusionError::Internal(
                "a window table function's output lacks the window columns".into(),
            ));
        }
        let mode = if slices_only { ", slices" } else { "" };
        if matches!(function, WindowFunction::Session { .. }) && !slices_only {
            return Err(DataFusionError::NotImplemented(
                "a SESSION window table function must be followed by a window aggregation".into(),
            ));
        }
        let name = format!("WindowTableFunction(window=[{function}], timecol=[{time}]{mode})");
        Ok(Self {
            function,
            time,
            slices_only,
            zone,
            domain,
            output_schema,
            watermark: Watermark::MIN.millis(),
            name,
        })
    }
}

/// A rowtime column as epoch milliseconds; a NULL rowtime fails the job, as in Flink.
pub(crate) fn event_times(array: &ArrayRef, column: &dyn std::fmt::Display) -> Result<Vec<i64>> {
    let millis = match array.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => Arc::clone(array),
        DataType::Timestamp(_, zone) => arrow::compute::cast(
            array,
            &DataType::Timestamp(TimeUnit::Millisecond, zone.clone()),
        )?,
        other => {
            return Err(DataFusionError::Internal(format!(
                "the time column {column} is {other}, not a timestamp"
            )));
        }
    };
    if millis.null_count() > 0 {
        return Err(DataFusionError::Execution(format!(
            "the rowtime column {column} is NULL in some row; event-time windows need a time for every row"
        )));
    }
    Ok(millis
        .as_primitive::<TimestampMillisecondType>()
        .values()
        .to_vec())
}

/// A window-bound column (window_start or window_end, TIMESTAMP(3)) of the
/// rows of `batch`, as milliseconds.
pub(crate) fn window_bounds(
    column: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
) -> Result<ScalarBuffer<i64>> {
    let bounds = column.evaluate(batch)?.into_array(batch.num_rows())?;
    let bounds = bounds
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| DataFusionError::Internal(format!("{column} is not TIMESTAMP(3)")))?;
    Ok(bounds.values().clone())
}

/// The rows of `data` grouped by `times` (one per row), in time order:
/// the rows of each window by the instant it fires.
pub(crate) fn split_by_time(data: &RecordBatch, times: &[i64]) -> Result<Vec<(i64, RecordBatch)>> {
    let mut distinct = times.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
        .into_iter()
        .map(|time| {
            let rows: arrow::array::BooleanArray = times.iter().map(|t| Some(*t == time)).collect();
            Ok((time, arrow::compute::filter_record_batch(data, &rows)?))
        })
        .collect()
}

/// A timestamp column of `values` (epoch or wall-clock ms) typed as `data_type`.
pub(crate) fn timestamps(values: Vec<i64>, data_type: &DataType) -> ArrayRef {
    let array = TimestampMillisecondArray::from(values);
    match data_type {
        DataType::Timestamp(_, zone) => Arc::new(array.with_timezone_opt(zone.clone())),
        _ => Arc::new(array),
    }
}

impl Operator for WindowAssigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        let rows = batch.num_rows();
        let times = self.time.evaluate(batch.data())?.into_array(rows)?;
        let times = event_times(&times, &self.time)?;
        let mut indices = Vec::with_capacity(rows);
        let mut starts = Vec::with_capacity(rows);
        let mut ends = Vec::with_capacity(rows);
        let mut late = 0;
        let zone = self.zone.as_ref();
        for (row, ts) in times.into_iter().enumerate() {
            let local = zone.map_or(ts, |z| z.to_local(ts));
            let spec = match self.function {
                WindowFunction::Sliced(spec) => spec,
                WindowFunction::Session { gap } => {
                    // The row's own session window; the aggregation merges them.
                    indices.push(row as u32);
                    starts.push(local);
                    ends.push(local.saturating_add(gap));
                    continue;
                }
            };
            let slice_end = spec.slice_end(local);
            if self.slices_only {
                // The aggregation decides lateness by slice.
                indices.push(row as u32);
                starts.push(slice_end.saturating_sub(spec.slice));
                ends.push(slice_end);
                continue;
            }
            let before = indices.len();
            for end in spec.windows_of_slice(slice_end) {
                let late = self.domain == TimeDomain::EventTime
                    && WindowSpec::is_fired(instant(zone, end), self.watermark);
                if !late {
                    indices.push(row as u32);
                    starts.push(spec.window_start(end));
                    ends.push(end);
                }
            }
            if indices.len() == before {
                late += 1;
            }
        }
        out.add_late_rows(late);
        let selected =
            if indices.len() == rows && indices.iter().enumerate().all(|(i, r)| *r as usize == i) {
                batch
            } else {
                batch
                    .take(&UInt32Array::from(indices))
                    .map_err(batch_error)?
            };
        let fields = self.output_schema.fields();
        let width = fields.len();
        let times: Vec<i64> = ends
            .iter()
            .map(|e| instant(zone, *e).saturating_sub(1))
            .collect();
        let mut columns: Vec<ArrayRef> = selected.data().columns().to_vec();
        columns.push(timestamps(starts, fields[width - 3].data_type()));
        columns.push(timestamps(ends, fields[width - 2].data_type()));
        columns.push(timestamps(times, fields[width - 1].data_type()));
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.output_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(selected.num_rows())),
        )?;
        out.emit(selected.with_data(data).map_err(batch_error)?);
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: Watermark,
        _out: &mut Collector,
    ) -> Result<Option<Watermark>> {
        self.watermark = watermark.millis();
        Ok(Some(watermark))
    }
}
