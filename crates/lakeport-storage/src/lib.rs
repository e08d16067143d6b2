//! Object storage for staged uploads, the Parquet lake and diagnostics, through the
//! `object_store` crate (a local directory on the embedded default; S3-compatible stores
//! later), plus the key layout.
//!
//! This crate knows nothing of batches' rules or of SQL; it may be used by the API (to
//! stream uploads and downloads) and by jobs (to read staged files and write outputs).

pub mod keys;

/// A key in object storage.
pub use object_store::path::Path as Key;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

/// Size of the parts a streamed upload is cut into.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("object {key} does not exist")]
    NotFound { key: String },
    #[error("object storage failed while {doing}: {source}")]
    Store {
        doing: &'static str,
        #[source]
        source: object_store::Error,
    },
    #[error("invalid storage URL {url:?}: {reason}")]
    Url { url: String, reason: String },
}

fn store_error(doing: &'static str) -> impl FnOnce(object_store::Error) -> StorageError {
    move |source| match source {
        object_store::Error::NotFound { path, .. } => StorageError::NotFound { key: path },
        source => StorageError::Store { doing, source },
    }
}

/// An object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: Path,
    pub size: u64,
}

/// The object store and, when it is a local directory, that directory.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    local: Option<Arc<LocalFileSystem>>,
}

impl Storage {
    /// Opens storage from a URL: `file:///absolute/dir` (created if missing).
    ///
    /// # Errors
    /// An unsupported scheme or a directory that cannot be created.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let Some(path) = url.strip_prefix("file://") else {
            return Err(StorageError::Url {
                url: url.to_owned(),
                reason: "only file:// URLs are supported on this build".to_owned(),
            });
        };
        let dir = PathBuf::from(path);
        std::fs::create_dir_all(&dir).map_err(|err| StorageError::Url {
            url: url.to_owned(),
            reason: format!("cannot create {}: {err}", dir.display()),
        })?;
        let local = Arc::new(
            LocalFileSystem::new_with_prefix(&dir)
                .map_err(store_error("opening the local store"))?,
        );
        Ok(Self {
            store: local.clone(),
            local: Some(local),
        })
    }

    /// Returns the underlying object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Returns the local file behind a key when storage is a local directory, so jobs can
    /// read staged files in place.
    pub fn local_path(&self, key: &Path) -> Option<PathBuf> {
        self.local.as_ref()?.path_to_filesystem(key).ok()
    }

    /// Streams a body into `key` without buffering it whole, failing (and writing nothing)
    /// when it exceeds `limit` bytes. The object appears atomically when complete.
    ///
    /// # Errors
    /// [`StorageError::TooLarge`], a body read error, or a store failure.
    pub async fn put_stream<S, E>(
        &self,
        key: &Path,
        body: S,
        limit: u64,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(store_error("starting an upload"))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut written = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::Body(err.to_string()));
                }
            };
            written += chunk.len() as u64;
            if written > limit {
                let _ = writer.abort().await;
                return Err(StorageError::TooLarge { limit });
            }
            if let Err(err) = writer.wait_for_capacity(4).await {
                return Err(store_error("uploading")(err));
            }
            writer.put(chunk);
        }
        writer
            .finish()
            .await
            .map_err(store_error("finishing an upload"))?;
        Ok(written)
    }

    /// Writes a local file into `key`, streaming it.
    ///
    /// # Errors
    /// The file cannot be read or the store fails.
    pub async fn put_file(&self, key: &Path, file: &std::path::Path) -> Result<u64, StorageError> {
        let handle = tokio::fs::File::open(file)
            .await
            .map_err(|err| StorageError::Body(format!("opening {}: {err}", file.display())))?;
        let stream = tokio_stream(handle);
        self.put_stream(key, stream, u64::MAX).await
    }

    /// Returns an object's bytes as a stream (optionally a byte range).
    ///
    /// # Errors
    /// [`StorageError::NotFound`] or a store failure.
    pub async fn get_stream(
        &self,
        key: &Path,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<impl Stream<Item = Result<Bytes, StorageError>> + Send + use<>, StorageError> {
        let options = object_store::GetOptions::new().with_range(range);
        let result = self
            .store
            .get_opts(key, options)
            .await
            .map_err(store_error("reading an object"))?;
        Ok(result
            .into_stream()
            .map(|chunk| chunk.map_err(store_error("reading an object"))))
    }

    /// Returns an object's size.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] or a store failure.
    pub async fn size(&self, key: &Path) -> Result<u64, StorageError> {
        Ok(self
            .store
            .head(key)
            .await
            .map_err(store_error("reading object metadata"))?
            .size)
    }

    /// Deletes one object; a missing object is not an error.
    ///
    /// # Errors
    /// A store failure.
    pub async fn delete(&self, key: &Path) -> Result<(), StorageError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(store_error("deleting an object")(err)),
        }
    }

    /// Lists every object key under a prefix.
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_keys(&self, prefix: &Path) -> Result<Vec<Path>, StorageError> {
        let mut listing = self.store.list(Some(prefix));
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            keys.push(meta.map_err(store_error("listing objects"))?.location);
        }
        Ok(keys)
    }

    /// Lists every object under a prefix with its size (Data Access listings of a batch's
    /// `failed/` and `meta/` folders).
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_objects(&self, prefix: &Path) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut listing = self.store.list(Some(prefix));
        let mut objects = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(store_error("listing objects"))?;
            objects.push(ObjectInfo {
                key: meta.location,
                size: meta.size,
            });
        }
        Ok(objects)
    }

    /// Deletes every object under a prefix.
    ///
    /// # Errors
    /// A store failure.
    pub async fn delete_prefix(&self, prefix: &Path) -> Result<u64, StorageError> {
        let mut listing = self.store.list(Some(prefix));
        let mut deleted = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(store_error("listing objects"))?;
            self.delete(&meta.location).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// Reads a tokio file as a stream of byte chunks.
fn tokio_stream(file: tokio::fs::File) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 1024 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), file))
            }
            Err(err) => Some((Err(err), file)),
        }
    })
}

#[cfg(test)]
mod tests;
