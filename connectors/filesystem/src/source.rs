//! Reading files as a bounded stream.
//!
//! Splits: every data file under the path; line formats (csv, json, raw)
//! split large files further into byte ranges of [`SPLIT_BYTES`]. A range
//! owns the lines that start inside it, so the reader of a range skips the
//! partial line it starts in and reads past its end to finish its last line.
//! Parquet files are read whole, one split each.
//!
//! Reading: a range's bytes arrive in large reads that run ahead of the
//! decoder on another thread (local files straight into the reader's
//! buffer, other stores through object_store); complete lines are cut
//! from the buffer and decoded a few MB at a time by the table's format.
//! In a partitioned table the files hold the other columns, and the reader
//! adds each file's partition values from its directories.
//!
//! Checkpoints: a reader's position in a split is the number of rows it has
//! returned from it (Flink's "records to skip"); a reader restored from a
//! checkpoint reads the split again from its start and skips those rows.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use weir_common::StreamBatch;
use weir_connector::{
    Boundedness, ConnectorError, SourceContext, SourceEvent, SourceFactory, SourceMetrics,
    SourceReader, SourceSplit,
};
use weir_format::{AvroFileReader, ChunkOrigin, FormatConfig, FormatKind, RecordDecoder};

use crate::location::Location;
use crate::parquet_read::ParquetFileReader;
use crate::partition::{Partitioning, ReadLayout};

/// Line-format files larger than this are read as several splits.
pub const SPLIT_BYTES: u64 = 64 * 1024 * 1024;

/// A byte range of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileRange {
    path: Path,
    start: u64,
    end: u64,
    /// The whole file's size: a range's last line may end past `end`.
    file_size: u64,
}

impl FileRange {
    fn to_split(&self) -> SourceSplit {
        SourceSplit::new(
            format!(
                "{}|{}|{}|{}",
                self.path, self.start, self.end, self.file_size
            ),
            self.end - self.start,
        )
    }

    fn from_split(split: &SourceSplit) -> Result<Self, ConnectorError> {
        let broken = || ConnectorError::NotFound(format!("malformed file split '{}'", split.id));
        let mut parts = split.id.rsplitn(4, '|');
        let mut number = || parts.next().and_then(|s| s.parse().ok()).ok_or_else(broken);
        let file_size = number()?;
        let end = number()?;
        let start = number()?;
        let path = parts.next().ok_or_else(broken)?;
        let path = Path::parse(path).map_err(|_| broken())?;
        Ok(Self {
            path,
            start,
            end,
            file_size,
        })
    }
}

/// The source side of a filesystem table.
#[derive(Debug)]
pub struct FileSource {
    pub(crate) location: Location,
    pub(crate) format: FormatConfig,
    pub(crate) schema: SchemaRef,
    /// Line-format files larger than this are split ([`SPLIT_BYTES`] outside tests).
    pub(crate) split_bytes: u64,
    pub(crate) read_sizes: ReadSizes,
    pub(crate) partitioning: Option<Arc<Partitioning>>,
}

impl FileSource {
    /// Every data file under the location, in path order, with its size.
    async fn list_files(&self) -> Result<Vec<(Path, u64)>, ConnectorError> {
        let store = &self.location.store;
        if self.location.glob.is_none()
            && let Ok(meta) = store.head(&self.location.prefix).await
        {
            return Ok(vec![(meta.location, meta.size)]);
        }
        let listed: Vec<_> = store
            .list(Some(&self.location.prefix))
            .try_collect()
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => self.not_found(),
                other => ConnectorError::external(
                    format!("cannot list '{}'", self.location.display),
                    other,
                ),
            })?;
        let mut files: Vec<(Path, u64)> = listed
            .into_iter()
            .filter(|m| self.location.is_data_file(&m.location))
            .map(|m| (m.location, m.size))
            .collect();
        if files.is_empty() && self.location.glob.is_none() && !self.exists_as_directory().await {
            return Err(self.not_found());
        }
        files.sort();
        Ok(files)
    }

    async fn exists_as_directory(&self) -> bool {
        self.location
            .store
            .list_with_delimiter(Some(&self.location.prefix))
            .await
            .is_ok_and(|l| !l.objects.is_empty() || !l.common_prefixes.is_empty())
            || std::path::Path::new(&format!("/{}", self.location.prefix)).is_dir()
    }

    fn not_found(&self) -> ConnectorError {
        ConnectorError::NotFound(format!(
            "the path '{}' does not exist (set 'path' to an existing file, directory or glob)",
            self.location.display
        ))
    }
}

#[async_trait]
impl SourceFactory for FileSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn produces_updates(&self) -> bool {
        self.format.is_changelog()
    }

    async fn plan_splits(&self, _parallelism: usize) -> Result<Vec<SourceSplit>, ConnectorError> {
        let splittable = !matches!(self.format.kind(), FormatKind::Parquet | FormatKind::Avro);
        let mut splits = Vec::new();
        for (path, size) in self.list_files().await? {
            if !splittable || size <= self.split_bytes {
                splits.push(
                    FileRange {
                        path,
                        start: 0,
                        end: size,
                        file_size: size,
                    }
                    .to_split(),
                );
                continue;
            }
            let mut start = 0;
            while start < size {
                let end = (start + self.split_bytes).min(size);
                splits.push(
                    FileRange {
                        path: path.clone(),
                        start,
                        end,
                        file_size: size,
                    }
                    .to_split(),
                );
                start = end;
            }
        }
        Ok(splits)
    }

    async fn create_reader(
        &self,
        context: SourceContext,
    ) -> Result<Box<dyn SourceReader>, ConnectorError> {
        Ok(Box::new(self.reader(context)?))
    }
}

impl FileSource {
    fn reader(&self, context: SourceContext) -> Result<FileReader, ConnectorError> {
        let ranges = context
            .splits
            .iter()
            .map(FileRange::from_split)
            .collect::<Result<Vec<_>, _>>()?;
        let skip = context
            .splits
            .iter()
            .map(|split| match &split.position {
                None => Ok(0),
                Some(p) => p.parse::<u64>().map_err(|_| {
                    ConnectorError::NotFound(format!(
                        "malformed position '{p}' of file split '{}'",
                        split.id
                    ))
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let partitions = match &self.partitioning {
            Some(p) => Some(Partitions {
                layout: p.read_layout(context.projection.as_deref())?,
                partitioning: Arc::clone(p),
                root: self.location.prefix.clone(),
                values: Vec::new(),
            }),
            None => None,
        };
        // What the files hold and which of it to decode.
        let (file_schema, projection, output_schema) = match (&partitions, &self.partitioning) {
            (Some(partitions), Some(p)) => (
                Arc::clone(p.data_schema()),
                Some(partitions.layout.data_projection.clone()),
                Arc::clone(&partitions.layout.data_output_schema),
            ),
            _ => {
                let output = match &context.projection {
                    Some(p) => Arc::new(self.schema.project(p)?),
                    None => Arc::clone(&self.schema),
                };
                (Arc::clone(&self.schema), context.projection.clone(), output)
            }
        };
        let (decoder, avro) = match self.format.kind() {
            FormatKind::Parquet => (None, None),
            FormatKind::Avro => {
                let projection =
                    projection.unwrap_or_else(|| (0..file_schema.fields().len()).collect());
                let avro = AvroFiles {
                    format: self.format.clone(),
                    schema: file_schema,
                    projection,
                };
                (None, Some(avro))
            }
            _ => (
                Some(self.format.create_decoder(file_schema, projection)?),
                None,
            ),
        };
        Ok(FileReader {
            store: Arc::clone(&self.location.store),
            local: self.location.local.clone(),
            read_sizes: self.read_sizes,
            buffers: ReadBuffers::default(),
            ranges,
            skip,
            returned: 0,
            next_range: 0,
            current: None,
            decoder,
            avro,
            output_schema,
            partitions,
            metrics: context.metrics,
        })
    }
}

/// A partitioned table's reading state.
struct Partitions {
    partitioning: Arc<Partitioning>,
    layout: ReadLayout,
    /// The table's directory, which partition directories are under.
    root: Path,
    /// The partition values of the file being read.
    values: Vec<ArrayRef>,
}

/// The split a reader is in the middle of.
enum OpenSplit {
    Lines(LineSplit),
    Parquet(ParquetFileReader),
    Avro {
        reader: AvroFileReader,
        /// The file, for messages.
        display: String,
    },
}

/// How the files of an avro table are read: whole, by the format.
struct AvroFiles {
    format: FormatConfig,
    /// What the files hold (a partitioned table's files lack its
    /// partition columns)...
    schema: SchemaRef,
    /// ...and which of it to read.
    projection: Vec<usize>,
}

struct FileReader {
    store: Arc<dyn ObjectStore>,
    /// The store again when it is the local file system, which line splits
    /// read without it.
    local: Option<Arc<LocalFileSystem>>,
    read_sizes: ReadSizes,
    buffers: ReadBuffers,
    ranges: Vec<FileRange>,
    /// Rows of each range returned before the checkpoint this reader resumes from.
    skip: Vec<u64>,
    /// Rows of the current range returned so far (skipped ones included).
    returned: u64,
    next_range: usize,
    current: Option<(usize, OpenSplit)>,
    decoder: Option<Box<dyn RecordDecoder>>,
    /// Set when the table's files are Avro.
    avro: Option<AvroFiles>,
    /// What the decoder (or Parquet or Avro reader) produces.
    output_schema: SchemaRef,
    partitions: Option<Partitions>,
    metrics: Arc<SourceMetrics>,
}

#[async_trait]
impl SourceReader for FileReader {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>, ConnectorError> {
        loop {
            let Some((index, split)) = &mut self.current else {
                if !self.open_next().await? {
                    return Ok(None);
                }
                continue;
            };
            let index = *index;
            let batch = match split {
                OpenSplit::Lines(lines) => match &mut self.decoder {
                    Some(decoder) => lines.next_batch(decoder.as_mut(), &self.metrics).await?,
                    None => None,
                },
                OpenSplit::Parquet(parquet) => parquet.next_batch(&self.metrics).await?,
                OpenSplit::Avro { reader, display } => reader.next_batch().map_err(|e| {
                    ConnectorError::external(format!("cannot read Avro file '{display}'"), e)
                })?,
            };
            match batch {
                Some(data) => {
                    let rows = data.num_rows() as u64;
                    let skip = self.skip[index].saturating_sub(self.returned).min(rows);
                    self.returned += rows;
                    if skip == rows {
                        continue;
                    }
                    // Positions count records, which a changelog format
                    // turns into rows only now.
                    let records = data.slice(skip as usize, (rows - skip) as usize);
                    let mut data = match &self.decoder {
                        Some(decoder) => decoder.changelog_rows(records)?.rows,
                        None => StreamBatch::inserts(records),
                    };
                    if let Some(partitions) = &self.partitions {
                        data = data.with_data(
                            partitions
                                .layout
                                .assemble(data.data(), &partitions.values)?,
                        )?;
                    }
                    return Ok(Some(SourceEvent::Batch { split: index, data }));
                }
                None => {
                    if let Some((_, OpenSplit::Lines(lines))) = self.current.take() {
                        self.buffers = lines.into_buffers();
                    }
                    self.returned = 0;
                    self.metrics
                        .splits_finished
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(Some(SourceEvent::SplitFinished { split: index }));
                }
            }
        }
    }

    fn snapshot(&mut self, _checkpoint_id: u64) -> Result<Vec<SourceSplit>, ConnectorError> {
        Ok(self.remaining())
    }
}

impl FileReader {
    /// Opens the next range; false when every range was read.
    async fn open_next(&mut self) -> Result<bool, ConnectorError> {
        let Some(range) = self.ranges.get(self.next_range).cloned() else {
            return Ok(false);
        };
        if let Some(partitions) = &mut self.partitions {
            partitions.values = partitions
                .partitioning
                .values_of(&partitions.root, &range.path)?;
        }
        let open = match (&self.decoder, &self.avro) {
            (_, Some(avro)) => {
                let display = format!("/{}", range.path);
                let failed =
                    |e| ConnectorError::external(format!("cannot read Avro file '{display}'"), e);
                let file = self.store.get(&range.path).await.map_err(failed)?;
                let file = file.bytes().await.map_err(failed)?;
                self.metrics.add_bytes(file.len() as u64);
                self.metrics.add_size_read(file.len() as u64);
                let reader = avro
                    .format
                    .avro_file_reader(&avro.schema, avro.projection.clone(), file, 8192)
                    .map_err(|e| {
                        ConnectorError::external(format!("cannot read Avro file '{display}'"), e)
                    })?;
                OpenSplit::Avro { reader, display }
            }
            (Some(_), None) => {
                let source = match &self.local {
                    Some(local) => ReadSource::Local {
                        path: local.path_to_filesystem(&range.path).map_err(|e| {
                            ConnectorError::external(cannot_read(&format!("/{}", range.path)), e)
                        })?,
                        file: None,
                    },
                    None => ReadSource::Store {
                        store: Arc::clone(&self.store),
                        path: range.path.clone(),
                    },
                };
                let buffers = std::mem::take(&mut self.buffers);
                OpenSplit::Lines(LineSplit::open(source, range, self.read_sizes, buffers))
            }
            (None, None) => OpenSplit::Parquet(
                ParquetFileReader::open(
                    &self.store,
                    &range.path,
                    range.end,
                    Arc::clone(&self.output_schema),
                )
                .await?,
            ),
        };
        // Only now: a cancelled open (idle timeout, checkpoint) is retried, not skipped.
        self.current = Some((self.next_range, open));
        self.next_range += 1;
        self.returned = 0;
        Ok(true)
    }

    /// The ranges not read to their end, each with its position: the
    /// current one's rows returned so far, but never less than the position
    /// it was restored with; one not opened yet keeps that position. (A
    /// restored reader skips its rows a read at a time, so a checkpoint
    /// taken while it is still skipping must not move it back.)
    fn remaining(&self) -> Vec<SourceSplit> {
        let mut splits = Vec::new();
        if let Some((index, _)) = &self.current {
            let mut split = self.ranges[*index].to_split();
            split.position = Some(self.returned.max(self.skip[*index]).to_string());
            splits.push(split);
        }
        for (range, &skip) in self.ranges.iter().zip(&self.skip).skip(self.next_range) {
            let mut split = range.to_split();
            split.position = (skip > 0).then(|| skip.to_string());
            splits.push(split);
        }
        splits
    }
}

/// How a line split reads and decodes: the defaults outside tests, which
/// shrink them to make lines cross reads and pieces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadSizes {
    /// Bytes one read asks for. Large reads matter for remote stores, where
    /// each is a request.
    pub read: usize,
    /// Bytes of whole lines decoded into one batch (about 22,000 Nexmark
    /// bids). Not much less: the stateful operators downstream emit their
    /// changes once per batch, so smaller batches make more changes (1 MB
    /// pieces took q17 from 5.8 s to 9.4 s) and buy no speed in reading.
    pub decode: usize,
}

impl ReadSizes {
    pub(crate) const DEFAULT: Self = Self {
        read: 8 * 1024 * 1024,
        decode: 4 * 1024 * 1024,
    };
}

/// The two buffers of a line split, which a reader hands from split to
/// split: fresh ones would be page-faulted in for every split.
#[derive(Default)]
struct ReadBuffers {
    current: Vec<u8>,
    spare: Vec<u8>,
}

/// Reading the lines a byte range owns.
///
/// The bytes of a range arrive in reads that run ahead of decoding, into
/// the spare of two buffers: while the decoder works through one buffer a
/// piece at a time, the next read fills the other behind the first one's
/// unfinished last line.
struct LineSplit {
    range: FileRange,
    sizes: ReadSizes,
    reads: ReadAhead,
    /// Bytes read; `buffer[start..complete]` are whole lines owned and not
    /// decoded yet, and the bytes after `complete` an unfinished line.
    buffer: Vec<u8>,
    start: usize,
    complete: usize,
    /// The buffer the next read fills, when no read is in flight.
    spare: Vec<u8>,
    /// File offset of `buffer[0]`.
    offset: u64,
    /// Whether the partial line the range starts in is still to be skipped.
    skip_partial: bool,
    /// Set once the range's last owned line is in the buffer: no more reads.
    last: bool,
    /// The 1-based line number of `buffer[start]`, known when reading from the file start.
    line: Option<u64>,
    ready: VecDeque<RecordBatch>,
}

impl LineSplit {
    fn open(source: ReadSource, range: FileRange, sizes: ReadSizes, buffers: ReadBuffers) -> Self {
        let ReadBuffers {
            current: mut buffer,
            mut spare,
        } = buffers;
        buffer.clear();
        spare.clear();
        // Starting one byte early tells whether the range starts on a line boundary.
        let read_from = range.start.saturating_sub(1);
        let display = format!("/{}", range.path);
        Self {
            skip_partial: range.start > 0,
            line: (range.start == 0).then_some(1),
            offset: read_from,
            reads: ReadAhead {
                source,
                display,
                next_read: read_from,
                file_size: range.file_size,
                at_end: read_from >= range.file_size,
                in_flight: None,
            },
            range,
            sizes,
            buffer,
            start: 0,
            complete: 0,
            spare,
            last: false,
            ready: VecDeque::new(),
        }
    }

    async fn next_batch(
        &mut self,
        decoder: &mut dyn RecordDecoder,
        metrics: &SourceMetrics,
    ) -> Result<Option<RecordBatch>, ConnectorError> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(Some(batch));
            }
            if self.start < self.complete {
                self.decode_piece(decoder, metrics)?;
                continue;
            }
            if self.last {
                return Ok(None);
            }
            if !self.reads.in_flight() {
                if self.reads.at_end {
                    // The file's last line has no line break.
                    self.complete = self.buffer.len();
                    self.last = true;
                    continue;
                }
                self.start_read();
            }
            // Awaiting leaves the read in flight if this future is dropped.
            let Some(buffer) = self.reads.finish(metrics).await? else {
                continue;
            };
            self.offset += self.complete as u64;
            self.spare = std::mem::replace(&mut self.buffer, buffer);
            self.start = 0;
            self.scan();
        }
    }

    /// Starts the next read into the spare buffer, behind the unfinished
    /// line at the end of this one.
    fn start_read(&mut self) {
        let tail = &self.buffer[self.complete..];
        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        // A read fills the room the buffer has behind the tail, so that the
        // buffers keep their size rather than grow (and be copied) for
        // every longer tail.
        let room = next.capacity().saturating_sub(tail.len());
        let len = if room >= self.sizes.read / 2 {
            room
        } else {
            self.sizes.read
        };
        next.reserve(tail.len() + len);
        next.extend_from_slice(tail);
        self.reads.start(next, len);
    }

    /// The split's buffers, for the next split to read into.
    fn into_buffers(self) -> ReadBuffers {
        ReadBuffers {
            current: self.buffer,
            spare: self.spare,
        }
    }

    /// Finds the whole lines of a buffer just read that the range owns,
    /// and starts the next read unless they include the range's last.
    fn scan(&mut self) {
        if self.skip_partial {
            match memchr::memchr(b'\n', &self.buffer) {
                Some(at) => {
                    self.start = at + 1;
                    self.skip_partial = false;
                }
                // The partial line goes on past this buffer.
                None => self.start = self.buffer.len(),
            }
        }
        let end = self.range.end;
        let buffer_end = self.offset + self.buffer.len() as u64;
        let first = self.offset + self.start as u64;
        let last_newline = |from: usize| {
            memchr::memrchr(b'\n', &self.buffer[from..]).map_or(from, |at| from + at + 1)
        };
        if first >= end {
            // The next line starts in the next range (or the partial line
            // this one starts in covers it all).
            self.complete = self.start;
            self.last = true;
        } else if end - 1 < buffer_end {
            // The line holding byte `end - 1` is the range's last.
            let from = (end - 1 - self.offset) as usize;
            match memchr::memchr(b'\n', &self.buffer[from..]) {
                Some(at) => {
                    self.complete = from + at + 1;
                    self.last = true;
                }
                None => self.complete = last_newline(self.start),
            }
        } else {
            self.complete = last_newline(self.start);
        }
        if !self.last && !self.reads.at_end {
            self.start_read();
        }
    }

    /// Decodes the next piece of whole lines: at most `sizes.decode` bytes
    /// of them, or one line longer than that.
    fn decode_piece(
        &mut self,
        decoder: &mut dyn RecordDecoder,
        metrics: &SourceMetrics,
    ) -> Result<(), ConnectorError> {
        let rest = &self.buffer[self.start..self.complete];
        let cut = match rest.get(..self.sizes.decode) {
            Some(head) if head.len() < rest.len() => match memchr::memrchr(b'\n', head) {
                Some(at) => at + 1,
                None => memchr::memchr(b'\n', &rest[head.len()..])
                    .map_or(rest.len(), |at| head.len() + at + 1),
            },
            _ => rest.len(),
        };
        let chunk = &rest[..cut];
        let origin = ChunkOrigin {
            source: &self.reads.display,
            byte_offset: self.offset + self.start as u64,
            first_line: self.line,
        };
        let decoded = decoder.decode(chunk, &origin)?;
        metrics.add_skipped(decoded.skipped);
        if let Some(line) = &mut self.line {
            *line += memchr::memchr_iter(b'\n', chunk).count() as u64;
        }
        self.start += cut;
        self.ready
            .extend(decoded.batches.into_iter().filter(|b| b.num_rows() > 0));
        Ok(())
    }
}

fn cannot_read(display: &str) -> String {
    format!("cannot read '{display}'")
}

/// Where a line split's bytes come from.
enum ReadSource {
    /// A local file, read straight into the buffer on the blocking pool
    /// (the object store's reads would zero a buffer of their own and
    /// copy it into ours).
    Local {
        path: std::path::PathBuf,
        /// Opened by the first read, and carried by each read in flight.
        file: Option<std::fs::File>,
    },
    Store {
        store: Arc<dyn ObjectStore>,
        path: Path,
    },
}

/// The reads of one range: at most one in flight, on another thread.
struct ReadAhead {
    source: ReadSource,
    /// The file, for messages.
    display: String,
    next_read: u64,
    file_size: u64,
    /// Whether the file has been read to its end.
    at_end: bool,
    in_flight: Option<InFlight>,
}

/// A read's buffer, with the bytes read appended, and the local file read
/// from.
struct Filled {
    buffer: Vec<u8>,
    read: usize,
    file: Option<std::fs::File>,
}

/// A read in flight; dropping it (the split or the job ends) cancels it.
struct InFlight(tokio::task::JoinHandle<Result<Filled, ConnectorError>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ReadAhead {
    fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts reading up to `len` bytes onto the end of `buffer`.
    fn start(&mut self, mut buffer: Vec<u8>, len: usize) {
        let range = self.next_read..(self.next_read + len as u64).min(self.file_size);
        let failed = {
            let context = cannot_read(&self.display);
            move |e: std::io::Error| ConnectorError::Io {
                context: context.clone(),
                source: e,
            }
        };
        let task = match &mut self.source {
            ReadSource::Local { path, file } => {
                let (path, file) = (path.clone(), file.take());
                tokio::task::spawn_blocking(move || {
                    use std::io::{Read, Seek, SeekFrom};
                    let mut file = match file {
                        Some(file) => file,
                        None => {
                            let mut file = std::fs::File::open(&path).map_err(&failed)?;
                            file.seek(SeekFrom::Start(range.start)).map_err(&failed)?;
                            file
                        }
                    };
                    // Reads into the spare capacity without zeroing it first.
                    let read = (&mut file)
                        .take(range.end - range.start)
                        .read_to_end(&mut buffer)
                        .map_err(&failed)?;
                    Ok(Filled {
                        buffer,
                        read,
                        file: Some(file),
                    })
                })
            }
            ReadSource::Store { store, path } => {
                let (store, path, context) =
                    (Arc::clone(store), path.clone(), cannot_read(&self.display));
                tokio::spawn(async move {
                    let chunk = store
                        .get_range(&path, range)
                        .await
                        .map_err(|e| ConnectorError::external(context, e))?;
                    buffer.extend_from_slice(&chunk);
                    Ok(Filled {
                        buffer,
                        read: chunk.len(),
                        file: None,
                    })
                })
            }
        };
        self.in_flight = Some(InFlight(task));
    }

    /// The buffer of the read in flight once it is done; `None` if no read
    /// is in flight.
    async fn finish(&mut self, metrics: &SourceMetrics) -> Result<Option<Vec<u8>>, ConnectorError> {
        let Some(in_flight) = &mut self.in_flight else {
            return Ok(None);
        };
        let done = (&mut in_flight.0).await;
        self.in_flight = None;
        let filled =
            done.map_err(|e| ConnectorError::external(cannot_read(&self.display), e))??;
        if let (ReadSource::Local { file, .. }, Some(opened)) = (&mut self.source, filled.file) {
            *file = Some(opened);
        }
        self.next_read += filled.read as u64;
        // A file that shrank since it was listed ends early.
        self.at_end = filled.read == 0 || self.next_read >= self.file_size;
        metrics.add_bytes(filled.read as u64);
        metrics.add_size_read(filled.read as u64);
        Ok(Some(filled.buffer))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use bytes::Bytes;
    use object_store::ObjectStoreExt;

    use super::*;

    #[test]
    fn splits_round_trip_through_their_ids() {
        let range = FileRange {
            path: Path::from("a/b|c.csv"),
            start: 5,
            end: 99,
            file_size: 120,
        };
        assert_eq!(
            FileRange::from_split(&range.to_split()).expect("parses"),
            range
        );
    }

    async fn source_over(name: &str, content: &str, split_bytes: u64) -> FileSource {
        let location = Location::parse(&format!("memory://splits/{name}")).expect("location");
        location
            .store
            .put(&location.prefix, Bytes::from(content.to_string()).into())
            .await
            .expect("put");
        FileSource {
            location,
            format: FormatConfig::from_options("csv", &BTreeMap::new()).expect("csv"),
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ])),
            split_bytes,
            read_sizes: ReadSizes::DEFAULT,
            partitioning: None,
        }
    }

    /// Reads every split with its own reader, as separate subtasks would.
    async fn read_all(source: &FileSource) -> Result<Vec<(i64, String)>, ConnectorError> {
        let mut rows = Vec::new();
        for split in source.plan_splits(1).await? {
            let context = SourceContext {
                subtask: 0,
                parallelism: 1,
                splits: vec![split],
                projection: None,
                metrics: Arc::new(SourceMetrics::default()),
            };
            let mut reader = source.create_reader(context).await?;
            while let Some(event) = reader.next_event().await? {
                if let SourceEvent::Batch { data, .. } = event {
                    let data = data.into_data();
                    let ids = data.column(0).as_primitive::<Int64Type>();
                    let names = data
                        .column(1)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .expect("strings");
                    for i in 0..data.num_rows() {
                        rows.push((ids.value(i), names.value(i).to_string()));
                    }
                }
            }
        }
        Ok(rows)
    }

    #[tokio::test]
    async fn byte_range_splits_read_every_line_exactly_once() {
        let content: String = (0..200)
            .map(|i| format!("{i},name-{}\n", "x".repeat(i % 13)))
            .collect();
        for split_bytes in [1, 7, 37, 64, 1000, 100_000] {
            let mut source =
                source_over(&format!("lines-{split_bytes}.csv"), &content, split_bytes).await;
            // Lines cross the store's reads and the decoder's pieces, too.
            source.read_sizes = ReadSizes {
                read: 50,
                decode: 20,
            };
            let mut rows = read_all(&source).await.expect("reads");
            rows.sort();
            let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
            assert_eq!(
                ids,
                (0..200).collect::<Vec<_>>(),
                "split size {split_bytes}"
            );
            assert_eq!(rows[12].1, format!("name-{}", "x".repeat(12)));
        }
    }

    #[tokio::test]
    async fn a_reader_resumes_from_its_snapshot_without_loss_or_repeats() {
        let content: String = (0..300).map(|i| format!("{i},n{i}\n")).collect();
        let source = source_over("resume.csv", &content, 1000).await;
        let splits = source.plan_splits(1).await.expect("splits");
        let open = |splits: Vec<SourceSplit>| {
            source.create_reader(SourceContext {
                subtask: 0,
                parallelism: 1,
                splits,
                projection: None,
                metrics: Arc::new(SourceMetrics::default()),
            })
        };
        let ids = |event: SourceEvent| match event {
            SourceEvent::Batch { data, .. } => data
                .data()
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            _ => Vec::new(),
        };
        let mut reader = open(splits).await.expect("reader");
        let mut seen = Vec::new();
        // Read a little, snapshot, and continue in a new reader.
        for _ in 0..2 {
            if let Some(event) = reader.next_event().await.expect("event") {
                seen.extend(ids(event));
            }
        }
        let snapshot = reader.snapshot(1).expect("snapshot");
        assert!(snapshot.len() > 1, "the current split and the rest");
        let mut resumed = open(snapshot).await.expect("reader");
        while let Some(event) = resumed.next_event().await.expect("event") {
            seen.extend(ids(event));
        }
        assert_eq!(seen, (0..300).collect::<Vec<i64>>());
        // Inside a split, the position is the rows already returned.
        let mut first = source.plan_splits(1).await.expect("splits").remove(0);
        first.position = Some("5".into());
        let mut reader = open(vec![first.clone()]).await.expect("reader");
        let event = reader.next_event().await.expect("event").expect("rows");
        assert_eq!(ids(event).first(), Some(&5));
        // A checkpoint before the restored reader opened its split, or
        // while it is still skipping rows, keeps the restored position.
        let context = SourceContext {
            subtask: 0,
            parallelism: 1,
            splits: vec![first.clone()],
            projection: None,
            metrics: Arc::new(SourceMetrics::default()),
        };
        let mut reader = source.reader(context).expect("reader");
        assert_eq!(reader.snapshot(1).expect("snapshot"), vec![first.clone()]);
        assert!(reader.open_next().await.expect("opens"));
        assert_eq!(reader.snapshot(1).expect("snapshot"), vec![first]);
    }

    #[tokio::test]
    async fn lines_crossing_reads_and_pieces_are_read_once_from_local_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let content: String = (0..500)
            .map(|i| format!("{i},name-{}\n", "x".repeat(i % 29)))
            .collect();
        // A last line without a line break, too.
        let content = content + "500,end";
        let file = dir.path().join("lines.csv");
        std::fs::write(&file, &content).expect("write");
        for (split_bytes, read, decode) in
            [(1 << 20, 7, 5), (333, 64, 100), (97, 1000, 40), (5, 3, 1)]
        {
            let mut source = source_over("unused.csv", "", split_bytes).await;
            source.location = Location::parse(&file.to_string_lossy()).expect("location");
            source.read_sizes = ReadSizes { read, decode };
            let mut rows = read_all(&source).await.expect("reads");
            rows.sort();
            let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
            let sizes = format!("split {split_bytes}, read {read}, decode {decode}");
            assert_eq!(ids, (0..=500).collect::<Vec<_>>(), "{sizes}");
            assert_eq!(rows[28].1, format!("name-{}", "x".repeat(28)), "{sizes}");
            assert_eq!(rows[500].1, "end", "{sizes}");
        }
    }

    #[tokio::test]
    async fn a_last_line_without_newline_is_read() {
        let source = source_over("no-newline.csv", "1,a\n2,b\n3,c", 3).await;
        let rows = read_all(&source).await.expect("reads");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2], (3, "c".to_string()));
    }

    #[tokio::test]
    async fn malformed_lines_are_reported_with_file_and_line() {
        let source = source_over("bad.csv", "1,a\n2,b\nthree,c\n", SPLIT_BYTES).await;
        let err = read_all(&source).await.expect_err("malformed");
        let text = err.to_string();
        assert!(
            text.contains("bad.csv") && text.contains("line 3"),
            "{text}"
        );
    }
}
