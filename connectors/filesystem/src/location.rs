//! Where a filesystem table lives: its 'path' resolved to an object store,
//! a prefix within it, and an optional glob over file names.
//!
//! Local paths (relative to the working directory, or absolute) use the local
//! file system; `file://`, `s3://`, `gs://`, `az://`/`abfs://` and
//! `memory://` URLs use object_store with credentials from the environment
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as object_store's builders read them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use url::Url;
use weir_connector::ConnectorError;

/// The resolved 'path' of a table.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// The store again when it is the local file system (at its root).
    pub local: Option<Arc<LocalFileSystem>>,
    /// The file or directory the path names (the part before any glob).
    pub prefix: Path,
    /// Matches whole object paths when the 'path' has glob characters.
    pub glob: Option<glob::Pattern>,
    /// The path as the user wrote it, for messages.
    pub display: String,
}

/// In-memory stores by bucket, so that a `memory://` table written by one
/// job can be read by the next within the process (used by tests).
static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(Default::default);

fn memory_store(bucket: &str) -> Arc<InMemory> {
    let mut stores = MEMORY_STORES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Arc::clone(
        stores
            .entry(bucket.to_string())
            .or_insert_with(|| Arc::new(InMemory::new())),
    )
}

const GLOB_CHARS: &[char] = &['*', '?', '['];

impl Location {
    pub fn parse(path: &str) -> Result<Self, ConnectorError> {
        let invalid = |reason: String| ConnectorError::InvalidOption {
            key: "path".to_string(),
            value: path.to_string(),
            reason,
        };
        let (store, full): (Arc<dyn ObjectStore>, String) = match Url::parse(path) {
            Ok(url) if url.scheme().len() > 1 => {
                let full = url.path().trim_start_matches('/').to_string();
                let store: Arc<dyn ObjectStore> = match url.scheme() {
                    "file" => {
                        let local = url
                            .to_file_path()
                            .map_err(|_| invalid("not a local file URL".to_string()))?;
                        return Self::local(&local.to_string_lossy(), path);
                    }
                    "memory" => memory_store(url.host_str().unwrap_or_default()),
                    "s3" | "s3a" => Arc::new(
                        object_store::aws::AmazonS3Builder::from_env()
                            .with_url(path)
                            .build()
                            .map_err(|e| invalid(e.to_string()))?,
                    ),
                    "gs" => Arc::new(
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                            .with_url(path)
                            .build()
                            .map_err(|e| invalid(e.to_string()))?,
                    ),
                    "az" | "abfs" | "abfss" | "azure" => Arc::new(
                        object_store::azure::MicrosoftAzureBuilder::from_env()
                            .with_url(path)
                            .build()
                            .map_err(|e| invalid(e.to_string()))?,
                    ),
                    other => {
                        return Err(invalid(format!(
                            "unsupported scheme '{other}://'; use a local path or one of file://, s3://, gs://, az://, memory://"
                        )));
                    }
                };
                (store, full)
            }
            _ => return Self::local(path, path),
        };
        Self::in_store(store, &full, path)
    }

    fn local(local: &str, display: &str) -> Result<Self, ConnectorError> {
        let absolute = std::path::absolute(local).map_err(|e| ConnectorError::Io {
            context: format!("cannot resolve path '{display}'"),
            source: e,
        })?;
        // `data/../x` means `x`, as in a shell; object_store paths cannot
        // hold `..`, so it is resolved here, by the text of the path.
        let mut resolved = std::path::PathBuf::new();
        for component in absolute.components() {
            match component {
                std::path::Component::ParentDir => {
                    resolved.pop();
                }
                std::path::Component::CurDir => {}
                other => resolved.push(other),
            }
        }
        let text = resolved
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        let local = Arc::new(LocalFileSystem::new());
        let mut location =
            Self::in_store(Arc::clone(&local) as Arc<dyn ObjectStore>, &text, display)?;
        location.local = Some(local);
        Ok(location)
    }

    fn in_store(
        store: Arc<dyn ObjectStore>,
        full: &str,
        display: &str,
    ) -> Result<Self, ConnectorError> {
        let (prefix, glob) = match full.find(GLOB_CHARS) {
            None => (full.trim_end_matches('/').to_string(), None),
            Some(at) => {
                let base = full[..at].rsplit_once('/').map(|(b, _)| b).unwrap_or("");
                let pattern =
                    glob::Pattern::new(full).map_err(|e| ConnectorError::InvalidOption {
                        key: "path".to_string(),
                        value: display.to_string(),
                        reason: format!("invalid glob pattern: {e}"),
                    })?;
                (base.to_string(), Some(pattern))
            }
        };
        let prefix = Path::parse(&prefix).map_err(|e| ConnectorError::InvalidOption {
            key: "path".to_string(),
            value: display.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            store,
            local: None,
            prefix,
            glob,
            display: display.to_string(),
        })
    }

    /// Whether `path` is a data file: hidden and in-progress files (names
    /// starting with `.` or `_`, as Flink skips them) are not.
    pub fn is_data_file(&self, path: &Path) -> bool {
        let hidden = path
            .parts()
            .skip(self.prefix.parts().count())
            .any(|p| p.as_ref().starts_with('.') || p.as_ref().starts_with('_'));
        !hidden && self.glob.as_ref().is_none_or(|g| g.matches(path.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_directories_resolve() {
        let location = Location::parse("/tmp/a/../b/./c.csv").expect("a local path");
        assert_eq!(location.prefix.as_ref(), "tmp/b/c.csv");
    }

    #[test]
    fn globs_split_into_prefix_and_pattern() {
        let l = Location::parse("memory://t/data/*.csv").expect("valid");
        assert_eq!(l.prefix.as_ref(), "data");
        assert!(l.is_data_file(&Path::from("data/a.csv")));
        assert!(!l.is_data_file(&Path::from("data/a.json")));
        assert!(!l.is_data_file(&Path::from("data/.a.csv")));
        let l = Location::parse("relative/dir/").expect("valid");
        assert!(l.prefix.as_ref().ends_with("relative/dir"));
        assert!(Location::parse("ftp://host/x").is_err());
    }
}
