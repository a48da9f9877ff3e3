//! Where checkpoints live: 'execution.checkpointing.dir' through
//! object_store (a local path or `file://` URL, `s3://`, `gs://`, `az://`),
//! or memory when no directory is set.
//!
//! A job's checkpoints go under `<dir>/<job-key>/`, where the key is derived
//! from the job's plan, so the same script run again finds them:
//!
//! ```text
//! <dir>/<job-key>/chk-7/<vertex>-<subtask>-<slot>.arrow   state, Arrow IPC files
//! <dir>/<job-key>/chk-7/_metadata                          the manifest, written last
//! ```
//!
//! A checkpoint directory without `_metadata` is an incomplete checkpoint
//! and is ignored (and deleted with the next cleanup).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::{AsArray, UInt32Array};
use arrow::buffer::Buffer;
use arrow::datatypes::UInt32Type;
use arrow::error::ArrowError;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::state_file::{decode_state, write_state};
use super::{KEY_GROUP_COLUMN, SlotState, StateSlot, TaskKey, TaskSnapshot, WrittenState};
use crate::RuntimeError;
use crate::exchange::subtask_for_key_group;
use crate::graph::{JobGraph, VertexId};
use crate::job::JobId;
use crate::operator::OperatorState;

const MANIFEST: &str = "_metadata";

/// The size of the chunks (and upload parts) state files are written in.
const CHUNK_BYTES: usize = 8 << 20;

/// Upload parts of one file written at once.
const PARTS_IN_FLIGHT: usize = 2;

/// One state file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StateFile {
    task: TaskKey,
    slot: StateSlot,
    /// Relative to the job's directory.
    path: String,
    rows: u64,
    bytes: u64,
}

/// A vertex as a checkpoint recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VertexRecord {
    id: VertexId,
    name: String,
    parallelism: usize,
}

/// What `_metadata` says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Manifest {
    checkpoint: u64,
    job: String,
    /// Written when every subtask had finished: the job's last checkpoint.
    finished: bool,
    vertices: Vec<VertexRecord>,
    files: Vec<StateFile>,
}

impl Manifest {
    fn to_json(&self) -> Value {
        json!({
            "checkpoint": self.checkpoint,
            "job": self.job,
            "finished": self.finished,
            "vertices": self.vertices.iter().map(|v| json!({
                "id": v.id.0, "name": v.name, "parallelism": v.parallelism,
            })).collect::<Vec<_>>(),
            "files": self.files.iter().map(|f| json!({
                "vertex": f.task.vertex.0, "subtask": f.task.subtask, "slot": f.slot.name(),
                "path": f.path, "rows": f.rows, "bytes": f.bytes,
            })).collect::<Vec<_>>(),
        })
    }

    fn from_json(value: &Value) -> Option<Self> {
        let number = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64);
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let vertices = value
            .get("vertices")?
            .as_array()?
            .iter()
            .map(|v| {
                Some(VertexRecord {
                    id: VertexId(number(v, "id")? as usize),
                    name: text(v, "name")?,
                    parallelism: number(v, "parallelism")? as usize,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let files = value
            .get("files")?
            .as_array()?
            .iter()
            .map(|f| {
                Some(StateFile {
                    task: TaskKey {
                        vertex: VertexId(number(f, "vertex")? as usize),
                        subtask: number(f, "subtask")? as usize,
                    },
                    slot: StateSlot::parse(f.get("slot")?.as_str()?)?,
                    path: text(f, "path")?,
                    rows: number(f, "rows")?,
                    bytes: number(f, "bytes")?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            checkpoint: number(value, "checkpoint")?,
            job: text(value, "job")?,
            finished: value.get("finished")?.as_bool()?,
            vertices,
            files,
        })
    }
}

/// How much of a checkpoint a read loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRead {
    /// Every state file: what a restoring worker needs.
    Whole,
    /// The sources' splits and positions only: what a job master plans an
    /// attempt's splits from, without reading keyed state it never uses.
    SourceSplits,
}

/// The checkpoints of one job.
#[derive(Debug, Clone)]
pub struct CheckpointStorage {
    store: Arc<dyn ObjectStore>,
    /// The job's directory in the store.
    root: Path,
    /// The job's directory as the user would write it, for messages.
    display: String,
    /// The job's directory on local disk, for a local store.
    local_dir: Option<std::path::PathBuf>,
}

/// What a completed checkpoint wrote, for its statistics.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WrittenCheckpoint {
    pub(crate) bytes: u64,
}

/// The checkpoints of jobs that name no directory, kept in this process's
/// memory (as Flink's JobManagerCheckpointStorage keeps them) by job id.
/// The job master and the workers of the embedded cluster all run in this
/// process, so they share them.
static IN_MEMORY: LazyLock<Mutex<HashMap<JobId, Arc<InMemory>>>> = LazyLock::new(Mutex::default);

impl CheckpointStorage {
    /// The storage of `graph`'s checkpoints under `dir`; without one, job
    /// `job`'s checkpoints in this process's memory.
    pub fn open(dir: Option<&str>, graph: &JobGraph, job: JobId) -> Result<Self, RuntimeError> {
        let key = job_key(graph);
        let Some(dir) = dir else {
            let store = IN_MEMORY
                .lock()
                .map_err(|_| {
                    RuntimeError::Internal("the in-memory checkpoints are poisoned".into())
                })?
                .entry(job)
                .or_insert_with(|| Arc::new(InMemory::new()))
                .clone();
            return Ok(Self {
                store,
                root: Path::from(key.as_str()),
                display: format!("memory://{key}"),
                local_dir: None,
            });
        };
        Ok(Self::at(dir, "'execution.checkpointing.dir'", true)?.under(&key))
    }

    /// The directory `name` under this one.
    fn under(self, name: &str) -> Self {
        Self {
            root: self.root.clone().join(name),
            display: format!("{}/{name}", self.display),
            local_dir: self.local_dir.map(|dir| dir.join(name)),
            store: self.store,
        }
    }

    /// Frees the in-memory checkpoints of a job that has ended; a job with
    /// a checkpoint directory keeps its checkpoints there.
    pub fn release_memory(job: JobId) {
        if let Ok(mut jobs) = IN_MEMORY.lock() {
            jobs.remove(&job);
        }
    }

    /// A savepoint's directory, to restore from ('execution.savepoint.path').
    pub fn open_savepoint(path: &str) -> Result<Self, RuntimeError> {
        Self::at(path, "'execution.savepoint.path'", false)
    }

    /// A new savepoint directory under `dir`, named as Flink names them:
    /// `savepoint-<first 6 digits of the job id>-<12 random digits>`.
    pub fn create_savepoint(dir: &str, job: &str) -> Result<Self, RuntimeError> {
        let base = Self::at(dir, "the savepoint directory", true)?;
        let random = uuid::Uuid::new_v4().simple().to_string();
        let name = format!(
            "savepoint-{}-{}",
            job.get(..6).unwrap_or(job),
            &random[..12]
        );
        Ok(base.under(&name))
    }

    /// The store and directory a path or URL names; `what` names the option
    /// it came from, for errors. A local directory is created if `create`,
    /// and must exist otherwise.
    fn at(dir: &str, what: &str, create: bool) -> Result<Self, RuntimeError> {
        let invalid = |reason: String| {
            RuntimeError::Checkpoint(format!("{what} = '{dir}' is not usable: {reason}"))
        };
        let (store, root, local_dir): (Arc<dyn ObjectStore>, Path, _) = match url::Url::parse(dir) {
            Ok(url) if url.scheme().len() > 1 && url.scheme() != "file" => {
                let (store, path) =
                    object_store::parse_url(&url).map_err(|e| invalid(e.to_string()))?;
                (Arc::from(store), path, None)
            }
            _ => {
                let local = match url::Url::parse(dir) {
                    Ok(url) => url
                        .to_file_path()
                        .map_err(|_| invalid("not a local file URL".to_string()))?,
                    Err(_) => std::path::PathBuf::from(dir),
                };
                if create {
                    std::fs::create_dir_all(&local).map_err(|e| invalid(e.to_string()))?;
                }
                let local = local.canonicalize().map_err(|e| invalid(e.to_string()))?;
                // Deleted checkpoints leave no empty directories behind.
                let store = object_store::local::LocalFileSystem::new_with_prefix(&local)
                    .map_err(|e| invalid(e.to_string()))?
                    .with_automatic_cleanup(true);
                (Arc::new(store), Path::default(), Some(local))
            }
        };
        Ok(Self {
            store,
            root,
            display: dir.trim_end_matches('/').to_string(),
            local_dir,
        })
    }

    /// The job's checkpoint directory, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// A path relative to the job's directory, `/`-separated.
    fn location(&self, relative: &str) -> Path {
        relative
            .split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> RuntimeError {
        RuntimeError::Checkpoint(format!("{what} in '{}': {e}", self.display))
    }

    /// Writes the state files of checkpoint `id` and then its manifest.
    pub(crate) async fn write(
        &self,
        id: u64,
        graph: &JobGraph,
        finished: bool,
        snapshots: &BTreeMap<TaskKey, TaskSnapshot>,
    ) -> Result<WrittenCheckpoint, RuntimeError> {
        self.write_in(&checkpoint_dir(id), id, graph, finished, snapshots)
            .await
    }

    /// Writes checkpoint `id` as a savepoint: into this storage's directory itself.
    pub(crate) async fn write_savepoint(
        &self,
        id: u64,
        graph: &JobGraph,
        snapshots: &BTreeMap<TaskKey, TaskSnapshot>,
    ) -> Result<WrittenCheckpoint, RuntimeError> {
        self.write_in("", id, graph, false, snapshots).await
    }

    /// Writes the state files of checkpoint `id` under `directory` (relative
    /// to the storage's root), then the manifest.
    async fn write_in(
        &self,
        directory: &str,
        id: u64,
        graph: &JobGraph,
        finished: bool,
        snapshots: &BTreeMap<TaskKey, TaskSnapshot>,
    ) -> Result<WrittenCheckpoint, RuntimeError> {
        let mut writes = Vec::new();
        let mut files = Vec::new();
        for (task, snapshot) in snapshots {
            for (slot, state) in &snapshot.states {
                let path = within(directory, &state_file_name(*task, *slot));
                match state {
                    SlotState::Batches(state) if is_empty(state) => {}
                    SlotState::Batches(state) => {
                        writes.push(self.write_state(*task, *slot, path, state));
                    }
                    SlotState::Written(written) if written.path == path => files.push(StateFile {
                        task: *task,
                        slot: *slot,
                        path,
                        rows: written.rows,
                        bytes: written.bytes,
                    }),
                    SlotState::Written(written) => {
                        return Err(RuntimeError::Checkpoint(format!(
                            "{task} reported state '{}' for '{path}' (load it first to write it elsewhere)",
                            written.path
                        )));
                    }
                }
            }
        }
        files.extend(futures::future::try_join_all(writes).await?);
        let manifest = Manifest {
            checkpoint: id,
            job: graph.name.clone(),
            finished,
            vertices: graph
                .vertices
                .iter()
                .map(|v| VertexRecord {
                    id: v.id,
                    name: v.name(),
                    parallelism: v.parallelism,
                })
                .collect(),
            files,
        };
        let bytes = manifest.files.iter().map(|f| f.bytes).sum();
        let text = manifest.to_json().to_string();
        let path = self.location(&within(directory, MANIFEST));
        self.store
            .put(&path, PutPayload::from(text.into_bytes()))
            .await
            .map_err(|e| self.error("cannot write a checkpoint's manifest", e))?;
        Ok(WrittenCheckpoint { bytes })
    }

    async fn write_state(
        &self,
        task: TaskKey,
        slot: StateSlot,
        path: String,
        state: &OperatorState,
    ) -> Result<StateFile, RuntimeError> {
        let rows = state.batches.iter().map(|b| b.num_rows() as u64).sum();
        // Encoding is CPU work: on a blocking thread, files in parallel,
        // handing chunks to the upload as they fill.
        let (chunks_tx, chunks) = mpsc::channel(2);
        let batches = state.clone();
        let encoder = tokio::task::spawn_blocking(move || {
            write_state(&batches, ChunkSender::new(chunks_tx))?.finish()
        });
        let location = self.location(&path);
        let size = self.upload(&location, chunks, encoder).await?;
        Ok(StateFile {
            task,
            slot,
            path,
            rows,
            bytes: size,
        })
    }

    /// Writes the chunks `encoder` produces to `location`: with one put if
    /// there is one chunk, as a multipart upload otherwise. Returns the size.
    async fn upload(
        &self,
        location: &Path,
        mut chunks: mpsc::Receiver<Bytes>,
        encoder: tokio::task::JoinHandle<Result<u64, ArrowError>>,
    ) -> Result<u64, RuntimeError> {
        let write_error = |e: object_store::Error| self.error("cannot write checkpoint state", e);
        let mut first = None;
        let mut parts: Option<WriteMultipart> = None;
        let mut failed = None;
        while let Some(chunk) = chunks.recv().await {
            let writer = match (&mut parts, first.take()) {
                (Some(writer), _) => writer,
                (None, None) => {
                    first = Some(chunk);
                    continue;
                }
                (None, Some(first)) => match self.store.put_multipart(location).await {
                    Ok(upload) => {
                        let writer =
                            parts.insert(WriteMultipart::new_with_chunk_size(upload, CHUNK_BYTES));
                        writer.put(first);
                        writer
                    }
                    Err(e) => {
                        failed = Some(write_error(e));
                        break;
                    }
                },
            };
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                failed = Some(write_error(e));
                break;
            }
            writer.put(chunk);
        }
        // The encoder stops at its next chunk once nobody receives.
        drop(chunks);
        let encoded = encoder
            .await
            .map_err(|e| self.error("cannot encode checkpoint state", e))
            .and_then(|r| r.map_err(|e| self.error("cannot encode checkpoint state", e)));
        let size = match (failed, encoded) {
            (None, Ok(size)) => size,
            (Some(e), _) | (None, Err(e)) => {
                if let Some(parts) = parts {
                    // The error that matters is the one above.
                    let _ = parts.abort().await;
                }
                return Err(e);
            }
        };
        match parts {
            Some(parts) => parts.finish().await.map_err(write_error)?,
            None => self
                .store
                .put(location, PutPayload::from(first.unwrap_or_default()))
                .await
                .map_err(write_error)?,
        };
        Ok(size)
    }

    /// Writes the non-empty states of `task`'s part of checkpoint `id` where
    /// the checkpoint's manifest will list them, as a cluster worker does
    /// before it acknowledges.
    pub async fn write_task_snapshot(
        &self,
        id: u64,
        task: TaskKey,
        snapshot: TaskSnapshot,
    ) -> Result<TaskSnapshot, RuntimeError> {
        // Every slot's file at once, as the job master writes them.
        let writes = snapshot.states.into_iter().map(|(slot, state)| async move {
            let state = match state {
                SlotState::Batches(batches) if !is_empty(&batches) => {
                    let path = within(&checkpoint_dir(id), &state_file_name(task, slot));
                    let file = self.write_state(task, slot, path, &batches).await?;
                    SlotState::Written(WrittenState {
                        path: file.path,
                        rows: file.rows,
                        bytes: file.bytes,
                    })
                }
                other => other,
            };
            Ok::<_, RuntimeError>((slot, state))
        });
        let states = futures::future::try_join_all(writes).await?;
        Ok(TaskSnapshot { states })
    }

    /// `snapshots` with the state files workers wrote read back, to be
    /// written elsewhere (a savepoint).
    pub(crate) async fn load_written(
        &self,
        snapshots: &BTreeMap<TaskKey, TaskSnapshot>,
    ) -> Result<BTreeMap<TaskKey, TaskSnapshot>, RuntimeError> {
        let mut loaded = BTreeMap::new();
        for (task, snapshot) in snapshots {
            let mut states = Vec::with_capacity(snapshot.states.len());
            for (slot, state) in &snapshot.states {
                let state = match state {
                    SlotState::Written(written) => {
                        SlotState::Batches(self.read_state(&written.path).await?)
                    }
                    batches => batches.clone(),
                };
                states.push((*slot, state));
            }
            loaded.insert(*task, TaskSnapshot { states });
        }
        Ok(loaded)
    }

    async fn read_state(&self, path: &str) -> Result<OperatorState, RuntimeError> {
        let location = self.location(path);
        let data = self
            .store
            .get(&location)
            .await
            .map_err(|e| self.error("cannot read checkpoint state", e))?
            .bytes()
            .await
            .map_err(|e| self.error("cannot read checkpoint state", e))?;
        // Decoding is CPU work: off the async threads, files in parallel.
        let decoded = tokio::task::spawn_blocking(move || decode_state(Buffer::from(data)))
            .await
            .map_err(|e| self.error("cannot decode checkpoint state", e))?;
        decoded.map_err(|e| self.error(&format!("state file '{path}' is damaged"), e))
    }

    /// The job's `chk-<id>` directories, with their ids (none when the
    /// job's directory does not exist yet).
    async fn checkpoint_dirs(&self) -> Vec<(u64, Path)> {
        let Ok(listing) = self.store.list_with_delimiter(Some(&self.root)).await else {
            return Vec::new();
        };
        listing
            .common_prefixes
            .into_iter()
            .filter_map(|prefix| {
                let id = prefix
                    .filename()?
                    .strip_prefix("chk-")?
                    .parse::<u64>()
                    .ok()?;
                Some((id, prefix))
            })
            .collect()
    }

    /// Ids of the checkpoints with a manifest, ascending.
    async fn completed_ids(&self) -> Result<Vec<u64>, RuntimeError> {
        let mut ids = Vec::new();
        for (id, prefix) in self.checkpoint_dirs().await {
            if self.store.head(&prefix.join(MANIFEST)).await.is_ok() {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The id of the latest completed checkpoint, if there is one.
    pub async fn latest_id(&self) -> Result<Option<u64>, RuntimeError> {
        Ok(self.completed_ids().await?.last().copied())
    }

    /// Completed checkpoint `id`: whole for a worker that restores its
    /// subtasks, or only the sources' splits for a job master that plans
    /// them.
    pub async fn checkpoint(
        &self,
        id: u64,
        graph: &JobGraph,
        what: StateRead,
    ) -> Result<RestoredCheckpoint, RuntimeError> {
        self.read(&checkpoint_dir(id), graph, false, what).await
    }

    /// The savepoint this storage was opened at. Its state must belong to
    /// the job's operators unless `ignore_unclaimed`.
    pub async fn read_savepoint(
        &self,
        graph: &JobGraph,
        ignore_unclaimed: bool,
        what: StateRead,
    ) -> Result<RestoredCheckpoint, RuntimeError> {
        self.read("", graph, ignore_unclaimed, what).await
    }

    /// Reads the checkpoint whose manifest is in `directory`. A vertex of
    /// the checkpoint the job does not have (by position and name) is
    /// refused if it holds state, unless `ignore_unclaimed` drops its state.
    async fn read(
        &self,
        directory: &str,
        graph: &JobGraph,
        ignore_unclaimed: bool,
        what: StateRead,
    ) -> Result<RestoredCheckpoint, RuntimeError> {
        let manifest_path = within(directory, MANIFEST);
        let text = self
            .store
            .get(&self.location(&manifest_path))
            .await
            .map_err(|e| self.error("cannot read the manifest", e))?
            .bytes()
            .await
            .map_err(|e| self.error("cannot read the manifest", e))?;
        let mut manifest = serde_json::from_slice::<Value>(&text)
            .ok()
            .as_ref()
            .and_then(Manifest::from_json)
            .ok_or_else(|| self.error("the manifest is damaged", &manifest_path))?;
        let id = manifest.checkpoint;
        let mut unclaimed = Vec::new();
        for recorded in &manifest.vertices {
            let current = graph.vertices.get(recorded.id.0).map(|v| v.name());
            if current.as_deref() == Some(recorded.name.as_str()) {
                continue;
            }
            let has_state = manifest.files.iter().any(|f| f.task.vertex == recorded.id);
            if has_state && !ignore_unclaimed {
                return Err(RuntimeError::Checkpoint(format!(
                    "checkpoint {id} in '{}' holds state of an operator the job does not have: its vertex {} is '{}', the job's is '{}'; set 'execution.savepoint.ignore-unclaimed-state' = 'true' to start without that state",
                    self.display,
                    recorded.id,
                    recorded.name,
                    current.unwrap_or_else(|| "missing".into())
                )));
            }
            unclaimed.push(recorded.id);
        }
        if !unclaimed.is_empty() {
            tracing::warn!(checkpoint = id, vertices = ?unclaimed, "state of operators the job does not have is ignored");
            manifest
                .files
                .retain(|f| !unclaimed.contains(&f.task.vertex));
            manifest.vertices.retain(|v| !unclaimed.contains(&v.id));
        }
        if what == StateRead::SourceSplits {
            manifest.files.retain(|f| f.slot == StateSlot::Source);
        }
        let mut states: HashMap<(VertexId, StateSlot), Vec<(usize, OperatorState)>> =
            HashMap::new();
        // Every file at once: reads and decoding overlap.
        let read =
            futures::future::try_join_all(manifest.files.iter().map(|f| self.read_state(&f.path)));
        for (file, state) in manifest.files.iter().zip(read.await?) {
            states
                .entry((file.task.vertex, file.slot))
                .or_default()
                .push((file.task.subtask, state));
        }
        Ok(RestoredCheckpoint {
            checkpoint: id,
            finished: manifest.finished,
            parallelism: manifest
                .vertices
                .iter()
                .map(|v| (v.id, v.parallelism))
                .collect(),
            states,
        })
    }

    /// Deletes every checkpoint but the latest `keep` completed ones, and
    /// incomplete ones older than the latest.
    pub(crate) async fn prune(&self, keep: usize) -> Result<(), RuntimeError> {
        let completed = self.completed_ids().await?;
        let Some(latest) = completed.last().copied() else {
            return Ok(());
        };
        let kept: Vec<u64> = completed.iter().rev().take(keep).copied().collect();
        for (id, prefix) in self.checkpoint_dirs().await {
            if id < latest && !kept.contains(&id) {
                self.delete_prefix(&prefix).await?;
            }
        }
        Ok(())
    }

    /// Deletes checkpoint directories without a manifest: what a run that
    /// crashed while writing a checkpoint left.
    pub async fn clean_incomplete(&self) -> Result<(), RuntimeError> {
        let completed = self.completed_ids().await?;
        for (id, prefix) in self.checkpoint_dirs().await {
            if !completed.contains(&id) {
                self.delete_prefix(&prefix).await?;
            }
        }
        Ok(())
    }

    /// Deletes every checkpoint of the job (it finished).
    pub async fn discard_all(&self) -> Result<(), RuntimeError> {
        self.delete_prefix(&self.root).await?;
        // A state upload cut short (its attempt was cancelled mid-write)
        // leaves a staging file the store does not list: on local disk the
        // job's directory goes whole.
        if let Some(dir) = &self.local_dir {
            match tokio::fs::remove_dir_all(dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.error("cannot delete the job's checkpoints", e)),
            }
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &Path) -> Result<(), RuntimeError> {
        let objects: Vec<_> = self
            .store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| self.error("cannot list checkpoints", e))?;
        // The manifest goes first, so a half-deleted checkpoint is incomplete.
        let (manifests, others): (Vec<_>, Vec<_>) = objects
            .into_iter()
            .partition(|m| m.location.filename() == Some(MANIFEST));
        for meta in manifests.into_iter().chain(others) {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("cannot delete an old checkpoint", e)),
            }
        }
        Ok(())
    }
}

/// A stable key for a job's checkpoint directory: its name and the FNV-1a
/// hash of its plan and of the savepoint it starts from, so the same script
/// run again finds its checkpoints, and a changed one (or one restored from
/// a savepoint) does not pick up foreign state.
fn job_key(graph: &JobGraph) -> String {
    let savepoint = graph
        .checkpointing
        .as_ref()
        .and_then(|c| c.restore.as_ref())
        .map_or("", |r| r.path.as_str());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in graph
        .to_string()
        .bytes()
        .chain(graph.name.bytes())
        .chain(savepoint.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let name: String = graph
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!("{name}-{hash:016x}")
}

/// `file` in `directory` (relative to a storage's root; empty for the root).
fn within(directory: &str, file: &str) -> String {
    if directory.is_empty() {
        file.to_string()
    } else {
        format!("{directory}/{file}")
    }
}

/// Checkpoint `id`'s directory, relative to the job's: where the job
/// master writes its manifest and workers their state files.
fn checkpoint_dir(id: u64) -> String {
    format!("chk-{id}")
}

/// A state file's name within its checkpoint's directory.
fn state_file_name(task: TaskKey, slot: StateSlot) -> String {
    format!("{}-{}-{}.arrow", task.vertex, task.subtask, slot.name())
}

fn is_empty(state: &OperatorState) -> bool {
    state.batches.iter().all(|b| b.num_rows() == 0)
}

/// The `Write` end of a state file's upload: fills chunks of
/// [`CHUNK_BYTES`] on a blocking thread and hands them to the upload.
struct ChunkSender {
    chunk: Vec<u8>,
    chunks: mpsc::Sender<Bytes>,
    size: u64,
}

impl ChunkSender {
    fn new(chunks: mpsc::Sender<Bytes>) -> Self {
        Self {
            // Most states are small: the first chunk grows as needed.
            chunk: Vec::new(),
            chunks,
            size: 0,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES));
        self.size += full.len() as u64;
        self.chunks
            .blocking_send(Bytes::from(full))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Sends the last chunk; the state's size.
    fn finish(mut self) -> Result<u64, ArrowError> {
        if !self.chunk.is_empty() {
            self.send()?;
        }
        Ok(self.size)
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK_BYTES - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A completed checkpoint loaded for a restart.
#[derive(Debug)]
pub struct RestoredCheckpoint {
    pub checkpoint: u64,
    /// Whether every subtask had finished when it was taken.
    pub finished: bool,
    parallelism: HashMap<VertexId, usize>,
    states: HashMap<(VertexId, StateSlot), Vec<(usize, OperatorState)>>,
}

impl RestoredCheckpoint {
    /// Whether the checkpoint has the vertex (its sources resume from their
    /// recorded splits, even if none are left).
    pub fn has_vertex(&self, vertex: VertexId) -> bool {
        self.parallelism.contains_key(&vertex)
    }

    /// The state subtask `subtask` of `parallelism` takes over. At the
    /// recorded parallelism that is its own; at another, keyed state (with
    /// a [`KEY_GROUP_COLUMN`]) is split by key group and every other state
    /// goes whole to subtask `old % parallelism`.
    pub fn state_for(
        &self,
        vertex: VertexId,
        slot: StateSlot,
        subtask: usize,
        parallelism: usize,
        max_parallelism: usize,
    ) -> Result<Option<OperatorState>, RuntimeError> {
        let Some(&recorded) = self.parallelism.get(&vertex) else {
            return Ok(None);
        };
        let Some(states) = self.states.get(&(vertex, slot)) else {
            return Ok(None);
        };
        let mut batches = Vec::new();
        for (old, state) in states {
            for batch in &state.batches {
                if recorded == parallelism {
                    if *old == subtask {
                        batches.push(batch.clone());
                    }
                    continue;
                }
                match batch.schema().index_of(KEY_GROUP_COLUMN) {
                    Ok(column) => {
                        let groups = batch
                            .column(column)
                            .as_primitive_opt::<UInt32Type>()
                            .ok_or_else(|| {
                                RuntimeError::Checkpoint(format!(
                                    "the {KEY_GROUP_COLUMN} column of a state batch is not UInt32"
                                ))
                            })?;
                        let rows: UInt32Array = (0..batch.num_rows() as u32)
                            .filter(|&row| {
                                subtask_for_key_group(
                                    groups.value(row as usize) as usize,
                                    parallelism,
                                    max_parallelism,
                                ) == subtask
                            })
                            .collect();
                        let taken =
                            arrow::compute::take_record_batch(batch, &rows).map_err(|e| {
                                RuntimeError::Checkpoint(format!("cannot split keyed state: {e}"))
                            })?;
                        batches.push(taken);
                    }
                    Err(_) if old % parallelism == subtask => batches.push(batch.clone()),
                    Err(_) => {}
                }
            }
        }
        Ok(Some(OperatorState { batches }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;
    use crate::graph::{JobVertex, VertexInput, VertexOutput};

    /// One vertex of two subtasks.
    pub(crate) fn graph() -> JobGraph {
        JobGraph {
            name: "test job".into(),
            vertices: vec![JobVertex {
                id: VertexId(0),
                parallelism: 2,
                input: VertexInput::Edges(Vec::new()),
                operators: Vec::new(),
                output: VertexOutput::Collect,
            }],
            max_parallelism: 128,
            checkpointing: None,
        }
    }

    fn keyed(groups: &[u32], values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(KEY_GROUP_COLUMN, DataType::UInt32, false),
            Field::new("v", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt32Array::from(groups.to_vec())),
                Arc::new(Int64Array::from(values.to_vec())),
            ],
        )
        .expect("batch")
    }

    #[tokio::test]
    async fn a_checkpoint_round_trips_and_rescales_by_key_group() {
        let storage = CheckpointStorage::open(None, &graph(), JobId(1)).expect("storage");
        let mut snapshots = BTreeMap::new();
        for subtask in 0..2 {
            let groups: Vec<u32> = if subtask == 0 {
                vec![0, 40]
            } else {
                vec![64, 127]
            };
            let task = TaskKey {
                vertex: VertexId(0),
                subtask,
            };
            let mut snapshot = TaskSnapshot::default();
            snapshot.push(
                StateSlot::Operator(0),
                OperatorState {
                    batches: vec![keyed(&groups, &[1, 2])],
                },
            );
            // Subtask 1 runs on a worker, which writes its own state.
            if subtask == 1 {
                snapshot = storage
                    .write_task_snapshot(1, task, snapshot)
                    .await
                    .expect("worker writes");
                assert!(matches!(&snapshot.states[0].1, SlotState::Written(w) if w.rows == 2));
            }
            snapshots.insert(task, snapshot);
        }
        // The worker's file belongs to checkpoint 1 only.
        let wrong = storage.write(2, &graph(), false, &snapshots).await;
        assert!(wrong.is_err(), "{wrong:?}");
        storage
            .write(1, &graph(), false, &snapshots)
            .await
            .expect("write");
        let loaded = storage.load_written(&snapshots).await.expect("load");
        assert!(
            loaded
                .values()
                .all(|s| matches!(s.states[0].1, SlotState::Batches(_)))
        );
        // A checkpoint without a manifest does not count.
        let orphan = storage.location("chk-2/0-0-op-0.arrow");
        storage
            .store
            .put(&orphan, PutPayload::from(vec![1u8]))
            .await
            .expect("put");
        let latest = storage.latest_id().await.expect("list");
        assert_eq!(latest, Some(1));
        let restored = storage
            .checkpoint(1, &graph(), StateRead::Whole)
            .await
            .expect("read");
        assert_eq!(restored.checkpoint, 1);
        let rows = |subtask, parallelism| {
            restored
                .state_for(
                    VertexId(0),
                    StateSlot::Operator(0),
                    subtask,
                    parallelism,
                    128,
                )
                .expect("state")
                .expect("present")
                .batches
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>()
        };
        assert_eq!((rows(0, 2), rows(1, 2)), (2, 2));
        // At parallelism 3, key groups 0..42 | 43..85 | 86..127.
        assert_eq!((rows(0, 3), rows(1, 3), rows(2, 3)), (2, 1, 1));
        // A job master planning splits reads no keyed state.
        let splits = storage
            .checkpoint(1, &graph(), StateRead::SourceSplits)
            .await
            .expect("read");
        let keyed = splits.state_for(VertexId(0), StateSlot::Operator(0), 0, 2, 128);
        assert!(matches!(keyed, Ok(None)), "{keyed:?}");
        storage.clean_incomplete().await.expect("clean");
        assert!(
            storage.store.head(&orphan).await.is_err(),
            "incomplete checkpoint removed"
        );
        storage.discard_all().await.expect("discard");
        assert_eq!(storage.latest_id().await.expect("list"), None);
    }
}
