//! Partitioned tables: `PARTITIONED BY (dt, hm)` lays a table's rows out in
//! directories named after their partition values, as Flink's (and Hive's)
//! filesystem tables do:
//!
//! ```text
//! <path>/dt=2015-07-15/hm=00%3A00/part-<uuid>-0-0.csv
//! ```
//!
//! The partition columns are not written into the files. A writer groups
//! each batch's rows by their directory ([`Partitioning::split`]); a reader
//! takes the values from the directories a file is in and adds them to the
//! rows it decodes ([`ReadLayout::assemble`]). A value is spelled as Java's
//! `toString` of Flink's external object for it, with Hive's escaping of
//! characters that are unsafe in a path (`:` is `%3A`); NULL and the empty
//! string go to 'partition.default-name' (`__DEFAULT_PARTITION__`), which
//! reads back as NULL.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, StringArray, UInt32Array};
use arrow::compute::{cast, partition, take};
use arrow::datatypes::SchemaRef;
use object_store::path::Path;
use weir_common::StreamBatch;
use weir_connector::ConnectorError;

/// Flink's default for 'partition.default-name'.
pub const DEFAULT_PARTITION_NAME: &str = "__DEFAULT_PARTITION__";

/// How a partitioned table's columns split into directory names and file
/// contents.
#[derive(Debug)]
pub struct Partitioning {
    /// The partition columns' indices in the table schema, in
    /// `PARTITIONED BY` order (the order of the directory levels).
    keys: Vec<usize>,
    /// The other columns' indices in the table schema: what files hold.
    data: Vec<usize>,
    table_schema: SchemaRef,
    data_schema: SchemaRef,
    default_name: String,
}

/// A batch's rows that belong to one partition, without the partition
/// columns.
#[derive(Debug)]
pub struct PartitionRows {
    /// The partition's directory under the table's path: `dt=.../hm=...`.
    pub directory: String,
    pub rows: StreamBatch,
}

impl Partitioning {
    /// `None` for a table without partition columns.
    pub fn new(
        schema: &SchemaRef,
        keys: &[String],
        default_name: &str,
    ) -> Result<Option<Self>, ConnectorError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let keys = keys
            .iter()
            .map(|key| {
                schema.index_of(key).map_err(|_| {
                    ConnectorError::NotFound(format!(
                        "the partition column '{key}' is not a physical column of the table"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let data: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !keys.contains(i))
            .collect();
        let data_schema = Arc::new(schema.project(&data)?);
        Ok(Some(Self {
            keys,
            data,
            table_schema: Arc::clone(schema),
            data_schema,
            default_name: default_name.to_string(),
        }))
    }

    /// The columns the files hold.
    pub fn data_schema(&self) -> &SchemaRef {
        &self.data_schema
    }

    /// Splits a batch of the table's rows by partition. Rows usually come in
    /// runs of one partition (partitions by time), so runs of equal keys
    /// are found first and each run's directory is spelled once; a
    /// partition's rows keep their order.
    pub fn split(&self, batch: &StreamBatch) -> Result<Vec<PartitionRows>, ConnectorError> {
        let data = batch.with_data(batch.data().project(&self.data)?)?;
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let keys: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|i| Arc::clone(batch.data().column(*i)))
            .collect();
        let runs = partition(&keys)?.ranges();
        let mut order: Vec<String> = Vec::new();
        let mut ranges: HashMap<String, Vec<Range<usize>>> = HashMap::new();
        for run in runs {
            let directory = self.directory_of(&keys, run.start);
            match ranges.get_mut(&directory) {
                Some(list) => list.push(run),
                None => {
                    order.push(directory.clone());
                    ranges.insert(directory, vec![run]);
                }
            }
        }
        order
            .into_iter()
            .map(|directory| {
                let runs = ranges.remove(&directory).unwrap_or_default();
                let rows = match runs.as_slice() {
                    [run] => data.slice(run.start, run.len()),
                    _ => {
                        let indices: UInt32Array = runs
                            .iter()
                            .flat_map(|r| r.clone())
                            .map(|i| i as u32)
                            .collect();
                        data.take(&indices)?
                    }
                };
                Ok(PartitionRows { directory, rows })
            })
            .collect()
    }

    /// `k1=v1/k2=v2` for row `row`.
    fn directory_of(&self, keys: &[ArrayRef], row: usize) -> String {
        let mut directory = String::new();
        for (level, (index, column)) in self.keys.iter().zip(keys).enumerate() {
            if level > 0 {
                directory.push('/');
            }
            directory.push_str(&escape(self.table_schema.field(*index).name()));
            directory.push('=');
            match weir_format::display::java_string(column.as_ref(), row) {
                Some(value) if !value.is_empty() => directory.push_str(&escape(&value)),
                _ => directory.push_str(&escape(&self.default_name)),
            }
        }
        directory
    }

    /// Where a read's columns come from, for the table columns at
    /// `projection` (all when `None`).
    pub fn read_layout(&self, projection: Option<&[usize]>) -> Result<ReadLayout, ConnectorError> {
        let wanted: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..self.table_schema.fields().len()).collect(),
        };
        let mut data_projection: Vec<usize> = wanted
            .iter()
            .filter_map(|c| self.data.iter().position(|d| d == c))
            .collect();
        data_projection.sort_unstable();
        data_projection.dedup();
        let sources = wanted
            .iter()
            .map(|c| match self.keys.iter().position(|k| k == c) {
                Some(key) => ColumnSource::Partition(key),
                None => {
                    let in_data = self.data.iter().position(|d| d == c).unwrap_or_default();
                    let at = data_projection
                        .iter()
                        .position(|d| *d == in_data)
                        .unwrap_or_default();
                    ColumnSource::Data(at)
                }
            })
            .collect();
        Ok(ReadLayout {
            data_output_schema: Arc::new(self.data_schema.project(&data_projection)?),
            output_schema: Arc::new(self.table_schema.project(&wanted)?),
            data_projection,
            sources,
        })
    }

    /// The partition values of a file at `file` under the table's directory
    /// `root`, as one-row arrays of the partition columns' types.
    pub fn values_of(&self, root: &Path, file: &Path) -> Result<Vec<ArrayRef>, ConnectorError> {
        let levels: Vec<(String, String)> = file
            .parts()
            .skip(root.parts().count())
            .filter_map(|part| {
                let (key, value) = part.as_ref().split_once('=')?;
                Some((unescape(key), unescape(value)))
            })
            .collect();
        self.keys
            .iter()
            .map(|index| {
                let field = self.table_schema.field(*index);
                let Some((_, value)) = levels.iter().find(|(key, _)| key == field.name()) else {
                    return Err(ConnectorError::NotFound(format!(
                        "the file '/{file}' is not in a '{}=<value>' directory of the partitioned \
                         table at '/{root}'",
                        field.name()
                    )));
                };
                let value = java_timestamp(field.data_type(), value);
                let text =
                    StringArray::from(vec![(value != self.default_name).then_some(value.as_str())]);
                let typed = cast(&text, field.data_type())?;
                if typed.null_count() > text.null_count() {
                    return Err(ConnectorError::NotFound(format!(
                        "the directory '{}={value}' of file '/{file}' does not hold a {} value",
                        field.name(),
                        weir_format::display::sql_type_name(field.data_type())
                    )));
                }
                Ok(typed)
            })
            .collect()
    }
}

/// Java's `LocalDateTime#toString` leaves out zero seconds
/// (`2015-07-15T00:01`), which arrow's timestamp parser does not take.
fn java_timestamp(data_type: &arrow::datatypes::DataType, value: &str) -> String {
    let minutes_only = value
        .split_once('T')
        .is_some_and(|(_, time)| time.len() == 5 && time.as_bytes().get(2) == Some(&b':'));
    if matches!(data_type, arrow::datatypes::DataType::Timestamp(..)) && minutes_only {
        format!("{value}:00")
    } else {
        value.to_string()
    }
}

/// Where an output column of a read comes from.
#[derive(Debug, Clone, Copy)]
enum ColumnSource {
    /// A column of the decoded batch, by position.
    Data(usize),
    /// A partition column, by its level.
    Partition(usize),
}

/// How a reader of a partitioned table builds its rows.
#[derive(Debug)]
pub struct ReadLayout {
    /// The data columns the decoder reads, as indices into the data schema,
    /// ascending.
    pub data_projection: Vec<usize>,
    /// The decoded batches' schema.
    pub data_output_schema: SchemaRef,
    output_schema: SchemaRef,
    sources: Vec<ColumnSource>,
}

impl ReadLayout {
    /// The rows of `decoded` with the partition columns of their file added.
    pub fn assemble(
        &self,
        decoded: &RecordBatch,
        values: &[ArrayRef],
    ) -> Result<RecordBatch, ConnectorError> {
        let rows = decoded.num_rows();
        let every_row = UInt32Array::from(vec![0u32; rows]);
        let columns = self
            .sources
            .iter()
            .map(|source| match source {
                ColumnSource::Data(at) => Ok(Arc::clone(decoded.column(*at))),
                ColumnSource::Partition(level) => match values.get(*level) {
                    Some(value) => Ok(take(value.as_ref(), &every_row, None)?),
                    None => Err(ConnectorError::NotFound(
                        "a partition value is missing".to_string(),
                    )),
                },
            })
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.output_schema),
            columns,
            &options,
        )?)
    }
}

/// Whether Hive (and so Flink) escapes `c` in a partition directory name.
fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\u{01}'
            ..='\u{1F}'
                | '"'
                | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '\u{7F}'
                | '{'
                | '['
                | ']'
                | '^'
    )
}

/// Flink's `PartitionPathUtils.escapePathName`: unsafe characters as `%XX`.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Flink's `unescapePathName`: `%XX` back to its character; a `%` not
/// followed by two hex digits stays as it is.
pub fn unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("dt", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    fn partitioning() -> Partitioning {
        Partitioning::new(
            &schema(),
            &["dt".to_string(), "ts".to_string()],
            DEFAULT_PARTITION_NAME,
        )
        .expect("valid")
        .expect("partitioned")
    }

    #[test]
    fn escaping_follows_hive() {
        assert_eq!(escape("00:00"), "00%3A00");
        assert_eq!(escape("a/b=c%"), "a%2Fb%3Dc%25");
        assert_eq!(escape("plain-text 1"), "plain-text 1");
        for value in ["00:00", "a/b=c%", "%zz", "100%", "é:ü"] {
            assert_eq!(unescape(&escape(value)), value);
        }
        assert_eq!(unescape("%zz"), "%zz");
    }

    #[test]
    fn rows_split_by_directory_and_keep_their_order() {
        let p = partitioning();
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
                Arc::new(StringArray::from(vec![
                    Some("x"),
                    Some("x"),
                    Some("y:z"),
                    None,
                    Some("x"),
                ])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    60_000, 60_000, 60_000, 60_000, 60_000,
                ])),
            ],
        )
        .expect("batch");
        // Rows keep their kinds: a changelog format writes them.
        let kinds = arrow::array::UInt8Array::from(vec![0, 3, 0, 0, 1]);
        let batch = StreamBatch::try_new_changelog(batch, kinds).expect("changelog");
        let split = p.split(&batch).expect("split");
        let directories: Vec<&str> = split.iter().map(|s| s.directory.as_str()).collect();
        assert_eq!(
            directories,
            vec![
                "dt=x/ts=1970-01-01T00%3A01",
                "dt=y%3Az/ts=1970-01-01T00%3A01",
                "dt=__DEFAULT_PARTITION__/ts=1970-01-01T00%3A01",
            ]
        );
        let kinds: Vec<String> = (0..3)
            .map(|row| split[0].rows.row_kind(row).to_string())
            .collect();
        assert_eq!(kinds, ["+I", "-D", "-U"]);
        let x = split[0].rows.data();
        assert_eq!(x.num_columns(), 1, "partition columns are not in the files");
        let values = x
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("v");
        assert_eq!(values.values().to_vec(), vec![1, 2, 5]);
    }

    #[test]
    fn a_file_reads_back_its_directory_values() {
        let p = partitioning();
        let root = Path::from("out");
        let file = Path::parse("out/dt=y%3Az/ts=1970-01-01T00%3A01/part-0.csv").expect("path");
        let values = p.values_of(&root, &file).expect("values");
        let layout = p.read_layout(Some(&[2, 0, 1])).expect("layout");
        assert_eq!(layout.data_projection, vec![0]);
        let decoded = RecordBatch::try_new(
            Arc::clone(&layout.data_output_schema),
            vec![Arc::new(Int64Array::from(vec![7, 8]))],
        )
        .expect("decoded");
        let rows = layout.assemble(&decoded, &values).expect("assemble");
        assert_eq!(rows.num_columns(), 3);
        assert_eq!(
            weir_format::display::java_string(rows.column(0).as_ref(), 1).as_deref(),
            Some("1970-01-01T00:01")
        );
        assert_eq!(
            weir_format::display::java_string(rows.column(2).as_ref(), 0).as_deref(),
            Some("y:z")
        );
        let default =
            Path::parse("out/dt=__DEFAULT_PARTITION__/ts=1970-01-01T00%3A01/p.csv").expect("path");
        assert!(p.values_of(&root, &default).expect("values")[0].is_null(0));
        let outside = Path::parse("out/part-0.csv").expect("path");
        assert!(p.values_of(&root, &outside).is_err());
        let bad = Path::parse("out/dt=x/ts=yesterday/p.csv").expect("path");
        assert!(p.values_of(&root, &bad).is_err());
    }
}
