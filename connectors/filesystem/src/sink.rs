//! Writing part files into the table's directory.
//!
//! Each sink subtask writes `part-<uuid>-<subtask>-<n>.<format>` files. A part
//! file is uploaded as a multipart upload (on the local file system: a
//! staging file renamed at the end), so it becomes visible only when it is
//! complete: when it reaches 'sink.rolling-policy.file-size' or when the input
//! ends. Readers never see a half-written file.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{WriterProperties, WriterVersion};
use weir_common::StreamBatch;
use weir_connector::{ConnectorError, SinkContext, SinkFactory, SinkWriter};
use weir_format::{FormatConfig, FormatKind, RecordEncoder};

use crate::location::Location;

/// Flink's default for 'sink.rolling-policy.file-size'.
pub const DEFAULT_ROLLING_BYTES: u64 = 128 * 1024 * 1024;
/// Parts of a multipart upload in flight at once.
const UPLOAD_CONCURRENCY: usize = 4;

#[derive(Debug)]
pub struct FileSink {
    pub(crate) location: Location,
    pub(crate) format: FormatConfig,
    pub(crate) schema: SchemaRef,
    pub(crate) rolling_bytes: u64,
    /// Names this sink's part files, as Flink's per-sink UUID does, so two
    /// sinks into one directory (a statement set) never write the same file.
    pub(crate) writer_id: uuid::Uuid,
}

#[async_trait]
impl SinkFactory for FileSink {
    fn accepts_updates(&self) -> bool {
        false
    }

    async fn create_writer(
        &self,
        context: SinkContext,
    ) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        let encoder = match self.format.kind() {
            FormatKind::Parquet => None,
            _ => Some(self.format.create_encoder(Arc::clone(&self.schema))?),
        };
        Ok(Box::new(FileWriter {
            store: Arc::clone(&self.location.store),
            directory: self.location.prefix.clone(),
            display: self.location.display.clone(),
            extension: extension(self.format.kind()),
            schema: Arc::clone(&self.schema),
            name_prefix: format!("part-{}-{}", self.writer_id, context.subtask),
            next_part: 0,
            rolling_bytes: self.rolling_bytes,
            encoder,
            parquet: parquet_properties(&self.format)?,
            current: None,
            buffer: Vec::new(),
        }))
    }
}

/// Writer settings from Flink's `parquet.*` options. The others Flink
/// accepts (`utc-timezone`, `timestamp.time.unit`, `write.int64.timestamp`,
/// `block.size`, `writer.max-padding`, `validation`) concern parquet-mr's
/// writer; they are accepted so Flink DDL runs, and Weir always writes
/// INT64 timestamps in the column's unit.
pub(crate) fn parquet_properties(
    format: &FormatConfig,
) -> Result<WriterProperties, ConnectorError> {
    let invalid = |key: &str, value: &str, reason: &str| ConnectorError::InvalidOption {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let mut builder = WriterProperties::builder().set_compression(Compression::SNAPPY);
    if let Some(codec) = format.option("parquet.compression") {
        let compression = match codec.to_ascii_lowercase().as_str() {
            "snappy" => Compression::SNAPPY,
            "zstd" => Compression::ZSTD(Default::default()),
            "uncompressed" | "none" => Compression::UNCOMPRESSED,
            _ => {
                return Err(invalid(
                    "parquet.compression",
                    codec,
                    "valid codecs are 'snappy', 'zstd' and 'uncompressed'",
                ));
            }
        };
        builder = builder.set_compression(compression);
    }
    let size = |key: &str| -> Result<Option<usize>, ConnectorError> {
        format
            .option(key)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| invalid(key, v, "expected a number of bytes"))
            })
            .transpose()
    };
    if let Some(bytes) = size("parquet.page.size")? {
        builder = builder.set_data_page_size_limit(bytes);
    }
    if let Some(bytes) = size("parquet.dictionary.page.size")? {
        builder = builder.set_dictionary_page_size_limit(bytes);
    }
    if let Some(enabled) = format.option("parquet.enable.dictionary") {
        let enabled = enabled.trim().parse::<bool>().map_err(|_| {
            invalid(
                "parquet.enable.dictionary",
                enabled,
                "expected 'true' or 'false'",
            )
        })?;
        builder = builder.set_dictionary_enabled(enabled);
    }
    if let Some(version) = format.option("parquet.writer.version") {
        let version = match version.trim() {
            "PARQUET_1_0" | "v1" | "1.0" => WriterVersion::PARQUET_1_0,
            "PARQUET_2_0" | "v2" | "2.0" => WriterVersion::PARQUET_2_0,
            _ => {
                return Err(invalid(
                    "parquet.writer.version",
                    version,
                    "valid versions are 'PARQUET_1_0' and 'PARQUET_2_0'",
                ));
            }
        };
        builder = builder.set_writer_version(version);
    }
    Ok(builder.build())
}

fn extension(kind: FormatKind) -> &'static str {
    match kind {
        FormatKind::Csv => "csv",
        FormatKind::Json => "json",
        FormatKind::Raw => "txt",
        FormatKind::Parquet => "parquet",
    }
}

/// The part file being written.
enum PartFile {
    Lines { upload: WriteMultipart, bytes: u64 },
    Parquet { writer: AsyncArrowWriter<BufWriter> },
}

struct FileWriter {
    store: Arc<dyn ObjectStore>,
    directory: Path,
    display: String,
    extension: &'static str,
    schema: SchemaRef,
    name_prefix: String,
    next_part: usize,
    rolling_bytes: u64,
    encoder: Option<Box<dyn RecordEncoder>>,
    parquet: WriterProperties,
    current: Option<PartFile>,
    buffer: Vec<u8>,
}

impl FileWriter {
    fn error(&self, e: impl std::error::Error + Send + Sync + 'static) -> ConnectorError {
        ConnectorError::external(format!("cannot write to '{}'", self.display), e)
    }

    async fn open_part(&mut self) -> Result<PartFile, ConnectorError> {
        let name = format!("{}-{}.{}", self.name_prefix, self.next_part, self.extension);
        self.next_part += 1;
        let path = self.directory.clone().join(name);
        Ok(match self.encoder {
            Some(_) => {
                let upload = self
                    .store
                    .put_multipart(&path)
                    .await
                    .map_err(|e| self.error(e))?;
                PartFile::Lines {
                    upload: WriteMultipart::new(upload),
                    bytes: 0,
                }
            }
            None => {
                let object = BufWriter::new(Arc::clone(&self.store), path);
                let properties = Some(self.parquet.clone());
                let writer =
                    AsyncArrowWriter::try_new(object, Arc::clone(&self.schema), properties)
                        .map_err(|e| self.error(e))?;
                PartFile::Parquet { writer }
            }
        })
    }

    async fn close_part(&mut self) -> Result<(), ConnectorError> {
        match self.current.take() {
            None => Ok(()),
            Some(PartFile::Lines { upload, .. }) => {
                upload.finish().await.map(|_| ()).map_err(|e| self.error(e))
            }
            Some(PartFile::Parquet { writer }) => {
                writer.close().await.map(|_| ()).map_err(|e| self.error(e))
            }
        }
    }
}

#[async_trait]
impl SinkWriter for FileWriter {
    async fn write(&mut self, batch: StreamBatch) -> Result<(), ConnectorError> {
        if !batch.is_insert_only() {
            return Err(ConnectorError::Unsupported {
                connector: "filesystem".to_string(),
                what: "only writes inserts; the query produced updates or deletes".to_string(),
            });
        }
        let part = match self.current.take() {
            Some(part) => part,
            None => self.open_part().await?,
        };
        let mut part = part;
        let roll = match &mut part {
            PartFile::Lines { upload, bytes } => {
                self.buffer.clear();
                if let Some(encoder) = &mut self.encoder {
                    encoder.encode(batch.data(), &mut self.buffer)?;
                }
                upload.write(&self.buffer);
                *bytes += self.buffer.len() as u64;
                upload
                    .wait_for_capacity(UPLOAD_CONCURRENCY)
                    .await
                    .map_err(|e| self.error(e))?;
                *bytes >= self.rolling_bytes
            }
            PartFile::Parquet { writer } => {
                writer
                    .write(batch.data())
                    .await
                    .map_err(|e| self.error(e))?;
                writer.bytes_written() as u64 >= self.rolling_bytes
            }
        };
        self.current = Some(part);
        if roll {
            self.close_part().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), ConnectorError> {
        self.close_part().await
    }
}
