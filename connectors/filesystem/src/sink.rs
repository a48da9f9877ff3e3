//! Writing part files into the table's directory.
//!
//! Each sink subtask writes `part-<uuid>-<subtask>-<n>.<format>` files (in a
//! partitioned table, into each row's partition directory, with one part
//! open per partition: see [`crate::partition`]). A part
//! file is uploaded as a multipart upload (on the local file system: a
//! staging file renamed at the end), so it becomes visible only when it is
//! complete: when it reaches 'sink.rolling-policy.file-size' or when the input
//! ends. Readers never see a half-written file.
//!
//! When the job takes checkpoints the sink commits in two phases, as Flink's
//! FileSink does. Part files are written under hidden names
//! (`.part-...<format>.inprogress`, which readers skip); a checkpoint
//! barrier closes the open part and *stages* the hidden files written since
//! the last checkpoint, recording them in the checkpoint; when the
//! checkpoint completes they are renamed to their visible names. After a
//! crash, the restarted writer renames the files staged by the checkpoint
//! it restarts from (the crash may have come before the rename) and deletes
//! the hidden files its predecessor wrote after that checkpoint, whose rows
//! the restarted job writes again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{WriterProperties, WriterVersion};
use weir_common::StreamBatch;
use weir_connector::{ConnectorError, SinkContext, SinkFactory, SinkWriter};
use weir_format::{AvroFileWriter, FormatConfig, FormatKind, RecordEncoder};

use crate::location::Location;
use crate::partition::Partitioning;

/// Flink's default for 'sink.rolling-policy.file-size'.
pub const DEFAULT_ROLLING_BYTES: u64 = 128 * 1024 * 1024;
/// Parts of a multipart upload in flight at once.
const UPLOAD_CONCURRENCY: usize = 4;
/// Part files one writer keeps open, one per partition; past this the one
/// written least recently is closed (it becomes a complete part), so rows
/// spread over many partitions do not hold a buffer for each.
const MAX_OPEN_PARTS: usize = 32;

#[derive(Debug)]
pub struct FileSink {
    pub(crate) location: Location,
    pub(crate) format: FormatConfig,
    pub(crate) schema: SchemaRef,
    pub(crate) rolling_bytes: u64,
    pub(crate) partitioning: Option<Arc<Partitioning>>,
}

#[async_trait]
impl SinkFactory for FileSink {
    fn accepts_updates(&self) -> bool {
        self.format.is_changelog()
    }

    async fn create_writer(
        &self,
        context: SinkContext,
    ) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        // A partitioned table's files leave out the partition columns.
        let schema = match &self.partitioning {
            Some(p) => Arc::clone(p.data_schema()),
            None => Arc::clone(&self.schema),
        };
        let encoder = match self.format.kind() {
            FormatKind::Parquet | FormatKind::Avro => None,
            _ => Some(self.format.create_encoder(Arc::clone(&schema))?),
        };
        // Fails now, not at the first row, if Avro has no type for a column.
        if self.format.kind() == FormatKind::Avro {
            self.format.avro_file_writer(&schema)?;
        }
        Ok(Box::new(FileWriter {
            store: Arc::clone(&self.location.store),
            directory: self.location.prefix.clone(),
            display: self.location.display.clone(),
            extension: extension(self.format.kind()),
            schema,
            partitioning: self.partitioning.clone(),
            // A UUID per writer, not per sink: two sinks into one directory
            // (a statement set) never write the same file, nor does a
            // writer restarted in the same process (its counter starts
            // again at 0) overwrite the parts its predecessor committed.
            name_prefix: format!("part-{}-{}", uuid::Uuid::new_v4(), context.subtask),
            next_part: 0,
            rolling_bytes: self.rolling_bytes,
            encoder,
            format: self.format.clone(),
            parquet: parquet_properties(&self.format)?,
            open: HashMap::new(),
            writes: 0,
            buffer: Vec::new(),
            two_phase: context.checkpointing,
            staged: Vec::new(),
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
        FormatKind::DebeziumJson => "json",
        FormatKind::Avro => "avro",
    }
}

/// The part file being written, and where it goes.
struct PartFile {
    content: PartContent,
    /// Where the file is written: its visible name, or a hidden one until
    /// a checkpoint commits it.
    written: Path,
    visible: Path,
    /// The writer's write count when this part was last written to.
    last_write: u64,
}

enum PartContent {
    Lines {
        upload: WriteMultipart,
        bytes: u64,
    },
    Parquet {
        writer: AsyncArrowWriter<BufWriter>,
    },
    /// An Avro file is built in memory (a part is at most the rolling
    /// size) and stored whole when closed.
    Avro {
        writer: AvroFileWriter,
    },
}

/// A complete part file under its hidden name, waiting for its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StagedPart {
    hidden: Path,
    visible: Path,
    /// The checkpoint that staged it; `None` until a barrier comes.
    checkpoint: Option<u64>,
}

/// The schema of the sink's committables: its staged parts, and the name
/// prefix of its part files (in every row, so a writer without staged
/// parts still tells which hidden files were its own).
fn committable_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("prefix", DataType::Utf8, false),
        Field::new("hidden", DataType::Utf8, true),
        Field::new("visible", DataType::Utf8, true),
        Field::new("checkpoint", DataType::UInt64, true),
    ]))
}

fn hidden_name(visible: &str) -> String {
    format!(".{visible}.inprogress")
}

struct FileWriter {
    store: Arc<dyn ObjectStore>,
    directory: Path,
    display: String,
    extension: &'static str,
    /// What the files hold: the table's columns but its partition columns.
    schema: SchemaRef,
    partitioning: Option<Arc<Partitioning>>,
    name_prefix: String,
    next_part: usize,
    rolling_bytes: u64,
    encoder: Option<Box<dyn RecordEncoder>>,
    /// The table's format (avro files are written through it).
    format: FormatConfig,
    parquet: WriterProperties,
    /// Open part files by partition directory ("" in a table without
    /// partitions).
    open: HashMap<String, PartFile>,
    /// Writes so far, to tell which open part was written least recently.
    writes: u64,
    buffer: Vec<u8>,
    /// Whether part files wait for a checkpoint to become visible.
    two_phase: bool,
    staged: Vec<StagedPart>,
}

impl FileWriter {
    fn error(&self, e: impl std::error::Error + Send + Sync + 'static) -> ConnectorError {
        ConnectorError::external(format!("cannot write to '{}'", self.display), e)
    }

    /// The directory of a partition (`dt=.../hm=...`, already escaped).
    fn partition_directory(&self, partition: &str) -> Result<Path, ConnectorError> {
        if partition.is_empty() {
            return Ok(self.directory.clone());
        }
        // Parsed rather than joined: joining would escape the '%' of the
        // partition values' own escapes a second time.
        let text = format!("{}/{partition}", self.directory);
        Path::parse(&text).map_err(|e| self.error(e))
    }

    async fn open_part(&mut self, partition: &str) -> Result<PartFile, ConnectorError> {
        let name = format!("{}-{}.{}", self.name_prefix, self.next_part, self.extension);
        self.next_part += 1;
        let directory = self.partition_directory(partition)?;
        let visible = directory.clone().join(name.as_str());
        let written = if self.two_phase {
            directory.join(hidden_name(&name).as_str())
        } else {
            visible.clone()
        };
        let content = match self.encoder {
            None if self.format.kind() == FormatKind::Avro => PartContent::Avro {
                writer: self.format.avro_file_writer(&self.schema)?,
            },
            Some(_) => {
                let upload = self
                    .store
                    .put_multipart(&written)
                    .await
                    .map_err(|e| self.error(e))?;
                PartContent::Lines {
                    upload: WriteMultipart::new(upload),
                    bytes: 0,
                }
            }
            None => {
                let object = BufWriter::new(Arc::clone(&self.store), written.clone());
                let properties = Some(self.parquet.clone());
                let writer =
                    AsyncArrowWriter::try_new(object, Arc::clone(&self.schema), properties)
                        .map_err(|e| self.error(e))?;
                PartContent::Parquet { writer }
            }
        };
        Ok(PartFile {
            content,
            written,
            visible,
            last_write: self.writes,
        })
    }

    /// Closes every open part, in partition order.
    async fn close_all(&mut self) -> Result<(), ConnectorError> {
        let mut partitions: Vec<String> = self.open.keys().cloned().collect();
        partitions.sort();
        for partition in partitions {
            if let Some(part) = self.open.remove(&partition) {
                self.close_part(part).await?;
            }
        }
        Ok(())
    }

    /// Closes the part written least recently when too many are open.
    async fn close_idlest(&mut self) -> Result<(), ConnectorError> {
        if self.open.len() < MAX_OPEN_PARTS {
            return Ok(());
        }
        let idlest = self
            .open
            .iter()
            .min_by_key(|(_, part)| part.last_write)
            .map(|(partition, _)| partition.clone());
        if let Some(part) = idlest.and_then(|p| self.open.remove(&p)) {
            self.close_part(part).await?;
        }
        Ok(())
    }

    async fn close_part(&mut self, part: PartFile) -> Result<(), ConnectorError> {
        match part.content {
            PartContent::Lines { upload, .. } => upload
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.error(e))?,
            PartContent::Parquet { writer } => writer
                .close()
                .await
                .map(|_| ())
                .map_err(|e| self.error(e))?,
            PartContent::Avro { writer } => {
                let file = bytes::Bytes::from(writer.finish());
                self.store
                    .put(&part.written, file.into())
                    .await
                    .map(|_| ())
                    .map_err(|e| self.error(e))?
            }
        }
        if self.two_phase {
            self.staged.push(StagedPart {
                hidden: part.written,
                visible: part.visible,
                checkpoint: None,
            });
        }
        Ok(())
    }

    /// Writes rows of one partition into its open part, opening one first
    /// and closing it when it reaches the rolling size.
    async fn write_rows(
        &mut self,
        partition: String,
        rows: &StreamBatch,
    ) -> Result<(), ConnectorError> {
        self.writes += 1;
        let mut part = match self.open.remove(&partition) {
            Some(part) => part,
            None => {
                self.close_idlest().await?;
                self.open_part(&partition).await?
            }
        };
        part.last_write = self.writes;
        let roll = match &mut part.content {
            PartContent::Lines { upload, bytes } => {
                self.buffer.clear();
                if let Some(encoder) = &mut self.encoder {
                    encoder.encode_changes(rows, &mut self.buffer)?;
                }
                upload.write(&self.buffer);
                *bytes += self.buffer.len() as u64;
                upload
                    .wait_for_capacity(UPLOAD_CONCURRENCY)
                    .await
                    .map_err(|e| self.error(e))?;
                *bytes >= self.rolling_bytes
            }
            PartContent::Avro { writer } => {
                writer.write(rows.data())?;
                writer.bytes_written() as u64 >= self.rolling_bytes
            }
            PartContent::Parquet { writer } => {
                writer.write(rows.data()).await.map_err(|e| self.error(e))?;
                writer.bytes_written() as u64 >= self.rolling_bytes
            }
        };
        if roll {
            self.close_part(part).await
        } else {
            self.open.insert(partition, part);
            Ok(())
        }
    }

    fn committables(&self) -> Result<RecordBatch, ConnectorError> {
        let rows = self.staged.len().max(1);
        let prefix = StringArray::from(vec![self.name_prefix.as_str(); rows]);
        let hidden: StringArray = (0..rows)
            .map(|i| self.staged.get(i).map(|p| p.hidden.to_string()))
            .collect();
        let visible: StringArray = (0..rows)
            .map(|i| self.staged.get(i).map(|p| p.visible.to_string()))
            .collect();
        let checkpoint: UInt64Array = (0..rows)
            .map(|i| self.staged.get(i).and_then(|p| p.checkpoint))
            .collect();
        Ok(RecordBatch::try_new(
            committable_schema(),
            vec![
                Arc::new(prefix),
                Arc::new(hidden),
                Arc::new(visible),
                Arc::new(checkpoint),
            ],
        )?)
    }
}

/// Renames a staged part to its visible name; a part already renamed (by
/// a run that crashed right after) is fine.
async fn publish(
    store: &Arc<dyn ObjectStore>,
    display: &str,
    part: &StagedPart,
) -> Result<(), ConnectorError> {
    match store.rename(&part.hidden, &part.visible).await {
        Ok(()) => Ok(()),
        Err(object_store::Error::NotFound { .. }) if store.head(&part.visible).await.is_ok() => {
            Ok(())
        }
        Err(e) => Err(ConnectorError::external(
            format!(
                "cannot commit the part file '{}' of '{display}'",
                part.hidden
            ),
            e,
        )),
    }
}

/// The staged parts and name prefixes recorded in committables.
fn read_committables(
    batches: &[RecordBatch],
) -> Result<(Vec<StagedPart>, BTreeSet<String>), ConnectorError> {
    let broken =
        || ConnectorError::NotFound("a checkpoint's filesystem sink state is malformed".into());
    let mut parts = Vec::new();
    let mut prefixes = BTreeSet::new();
    for batch in batches {
        if batch.schema() != committable_schema() {
            return Err(broken());
        }
        let prefix = batch.column(0).as_string::<i32>();
        let hidden = batch.column(1).as_string::<i32>();
        let visible = batch.column(2).as_string::<i32>();
        let checkpoint = batch.column(3).as_primitive::<UInt64Type>();
        for row in 0..batch.num_rows() {
            prefixes.insert(prefix.value(row).to_string());
            if hidden.is_valid(row) && visible.is_valid(row) {
                parts.push(StagedPart {
                    hidden: Path::parse(hidden.value(row)).map_err(|_| broken())?,
                    visible: Path::parse(visible.value(row)).map_err(|_| broken())?,
                    checkpoint: checkpoint.is_valid(row).then(|| checkpoint.value(row)),
                });
            }
        }
    }
    Ok((parts, prefixes))
}

#[async_trait]
impl SinkWriter for FileWriter {
    async fn write(&mut self, batch: StreamBatch) -> Result<(), ConnectorError> {
        if !batch.is_insert_only() && self.encoder.is_none() {
            return Err(ConnectorError::Unsupported {
                connector: "filesystem".to_string(),
                what: "writes inserts only in this format; the query produced updates or \
                       deletes (a changelog format such as 'debezium-json' writes them)"
                    .to_string(),
            });
        }
        match self.partitioning.clone() {
            None => self.write_rows(String::new(), &batch).await,
            Some(partitioning) => {
                for piece in partitioning.split(&batch)? {
                    self.write_rows(piece.directory, &piece.rows).await?;
                }
                Ok(())
            }
        }
    }

    async fn prepare_commit(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<Option<RecordBatch>, ConnectorError> {
        self.close_all().await?;
        for part in &mut self.staged {
            part.checkpoint.get_or_insert(checkpoint_id);
        }
        self.committables().map(Some)
    }

    async fn commit(&mut self, checkpoint_id: u64) -> Result<(), ConnectorError> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.staged)
            .into_iter()
            .partition(|p| p.checkpoint.is_some_and(|c| c <= checkpoint_id));
        self.staged = later;
        for part in &due {
            publish(&self.store, &self.display, part).await?;
        }
        Ok(())
    }

    async fn recover(&mut self, committables: Vec<RecordBatch>) -> Result<(), ConnectorError> {
        let (parts, prefixes) = read_committables(&committables)?;
        for part in &parts {
            publish(&self.store, &self.display, part).await?;
        }
        if prefixes.is_empty() {
            return Ok(());
        }
        // What the previous run wrote after its last checkpoint is written
        // again by this one: its hidden files go.
        let listed: Vec<_> = self
            .store
            .list(Some(&self.directory))
            .try_collect()
            .await
            .map_err(|e| self.error(e))?;
        for meta in listed {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let leftover = name.ends_with(".inprogress")
                && prefixes.iter().any(|p| name.starts_with(&format!(".{p}-")));
            if leftover {
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.error(e)),
                }
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), ConnectorError> {
        self.close_all().await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::Int64Array;
    use object_store::memory::InMemory;

    use super::*;

    fn rows(values: &[i64]) -> StreamBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch");
        StreamBatch::inserts(batch)
    }

    fn sink_into_memory(
        store: &Arc<dyn ObjectStore>,
        schema: SchemaRef,
        partitioning: Option<Partitioning>,
    ) -> FileSink {
        FileSink {
            location: Location {
                store: Arc::clone(store),
                local: None,
                prefix: Path::from("out"),
                glob: None,
                display: "memory:///out".to_string(),
            },
            format: FormatConfig::from_options("csv", &BTreeMap::new()).expect("csv"),
            schema,
            rolling_bytes: DEFAULT_ROLLING_BYTES,
            partitioning: partitioning.map(Arc::new),
        }
    }

    fn checkpointing() -> SinkContext {
        SinkContext {
            subtask: 0,
            parallelism: 1,
            job_id: "job".to_string(),
            checkpointing: true,
        }
    }

    /// Every file under `out`, with its lines.
    async fn files(store: &Arc<dyn ObjectStore>) -> Vec<(Path, Vec<String>)> {
        let listed: Vec<_> = store
            .list(Some(&Path::from("out")))
            .try_collect()
            .await
            .expect("list");
        let mut files = Vec::new();
        for file in listed {
            let bytes = store
                .get(&file.location)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes");
            let lines = String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::to_string)
                .collect();
            files.push((file.location, lines));
        }
        files
    }

    #[tokio::test]
    async fn a_partitioned_table_commits_one_directory_per_partition() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("p", DataType::Int64, false),
        ]));
        let partitioning = Partitioning::new(
            &schema,
            &["p".to_string()],
            crate::partition::DEFAULT_PARTITION_NAME,
        )
        .expect("valid");
        let sink = sink_into_memory(&store, Arc::clone(&schema), partitioning);
        let mut writer = sink.create_writer(checkpointing()).await.expect("writer");
        // More partitions than a writer keeps open, each written twice.
        let partitions = MAX_OPEN_PARTS as i64 + 8;
        for round in 0..2 {
            for p in 0..partitions {
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(Int64Array::from(vec![p * 10 + round])),
                        Arc::new(Int64Array::from(vec![p])),
                    ],
                )
                .expect("batch");
                writer
                    .write(StreamBatch::inserts(batch))
                    .await
                    .expect("write");
            }
        }
        writer.prepare_commit(1).await.expect("stage");
        writer.commit(1).await.expect("commit");
        let mut found = BTreeMap::new();
        for (path, lines) in files(&store).await {
            let name = path.filename().unwrap_or_default();
            assert!(!name.ends_with(".inprogress"), "{name} not committed");
            let directory = path.parts().nth(1).expect("partition directory");
            found
                .entry(directory.as_ref().to_string())
                .or_insert_with(Vec::new)
                .extend(lines);
        }
        assert_eq!(found.len(), partitions as usize);
        for rows in found.values_mut() {
            rows.sort();
        }
        assert_eq!(found["p=3"], vec!["30", "31"]);
        assert_eq!(found["p=39"], vec!["390", "391"]);
    }

    #[tokio::test]
    async fn a_restarted_writer_keeps_the_parts_its_predecessor_committed() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let sink = sink_into_memory(&store, rows(&[]).data().schema(), None);
        let mut first = sink.create_writer(checkpointing()).await.expect("writer");
        first.write(rows(&[1, 2])).await.expect("write");
        let committables = first.prepare_commit(1).await.expect("stage");
        first.commit(1).await.expect("commit");
        // The same job restarts in this process from checkpoint 1.
        let mut second = sink.create_writer(checkpointing()).await.expect("writer");
        second
            .recover(committables.into_iter().collect())
            .await
            .expect("recover");
        second.write(rows(&[3])).await.expect("write");
        second.prepare_commit(2).await.expect("stage");
        second.commit(2).await.expect("commit");
        let files = files(&store).await;
        let mut lines: Vec<&String> = files.iter().flat_map(|(_, lines)| lines).collect();
        lines.sort();
        assert_eq!(lines, vec!["1", "2", "3"], "{files:?}");
    }
}
