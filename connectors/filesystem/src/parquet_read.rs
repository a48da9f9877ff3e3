//! Reading one Parquet file as a stream of batches in the table's schema.
//!
//! Columns are matched by name and cast to the declared types, so a file
//! written by another engine with, say, `Utf8View` or microsecond timestamps
//! reads as the table declares it.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use weir_connector::{ConnectorError, SourceMetrics};

/// Parquet's byte-range reads served by an object store.
#[derive(Debug, Clone)]
struct StoreFile {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn parquet_error(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(parquet_error)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(parquet_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

pub(crate) struct ParquetFileReader {
    stream: ParquetRecordBatchStream<StoreFile>,
    display: String,
    output_schema: SchemaRef,
    size: u64,
    counted: bool,
}

impl ParquetFileReader {
    pub(crate) async fn open(
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        size: u64,
        output_schema: SchemaRef,
    ) -> Result<Self, ConnectorError> {
        let display = format!("/{path}");
        let file = StoreFile {
            store: Arc::clone(store),
            path: path.clone(),
            size,
        };
        let builder = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(|e| {
                ConnectorError::external(format!("cannot read Parquet file '{display}'"), e)
            })?;
        let file_schema = Arc::clone(builder.schema());
        let roots: Vec<usize> = output_schema
            .fields()
            .iter()
            .filter_map(|f| file_schema.index_of(f.name()).ok())
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let stream = builder
            .with_projection(mask)
            .with_batch_size(8192)
            .build()
            .map_err(|e| {
                ConnectorError::external(format!("cannot read Parquet file '{display}'"), e)
            })?;
        Ok(Self {
            stream,
            display,
            output_schema,
            size,
            counted: false,
        })
    }

    pub(crate) async fn next_batch(
        &mut self,
        metrics: &SourceMetrics,
    ) -> Result<Option<RecordBatch>, ConnectorError> {
        if !std::mem::replace(&mut self.counted, true) {
            metrics.add_bytes(self.size);
            metrics.add_size_read(self.size);
        }
        let Some(batch) = self.stream.next().await else {
            return Ok(None);
        };
        let batch = batch.map_err(|e| {
            ConnectorError::external(format!("cannot read Parquet file '{}'", self.display), e)
        })?;
        let columns = self
            .output_schema
            .fields()
            .iter()
            .map(|field| match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
                Some(column) => arrow::compute::cast(column, field.data_type()).map_err(|e| {
                    ConnectorError::external(
                        format!(
                            "column '{}' of Parquet file '{}' cannot be read as {}",
                            field.name(),
                            self.display,
                            field.data_type()
                        ),
                        e,
                    )
                }),
                None => Ok(new_null_array(field.data_type(), batch.num_rows())),
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(Some(RecordBatch::try_new_with_options(
            Arc::clone(&self.output_schema),
            columns,
            &options,
        )?))
    }
}
