//! Object storage for staged uploads, the Parquet lake and diagnostics, through the
//! `object_store` crate: a local directory on the embedded default, or any S3-compatible
//! server (AWS, Garage, MinIO, Ceph RGW…) when several nodes share the data.
//!
//! This crate knows nothing of batches' rules or of SQL; it may be used by the API (to
//! stream uploads and downloads) and by jobs (to read staged files and write outputs).

pub mod keys;
mod watch;

pub use watch::{StartingUpload, UploadWatch, UploadWatcher, WatchReader};

/// A key in object storage.
pub use object_store::path::Path as Key;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// Size of the parts a streamed upload is cut into; a body no larger than one part is
/// written with a single `PUT`, a larger one through a multipart upload.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("object {key} does not exist")]
    NotFound { key: String },
    // The store's own message already holds its whole cause chain, so it is not chained
    // again as a `source` (which would print it once per level).
    #[error("object storage failed while {doing}: {error}")]
    Store {
        doing: &'static str,
        error: object_store::Error,
    },
    #[error("invalid storage URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("writing the local copy {path}: {reason}")]
    LocalCopy { path: String, reason: String },
}

fn store_error(doing: &'static str) -> impl FnOnce(object_store::Error) -> StorageError {
    move |source| match source {
        object_store::Error::NotFound { path, .. } => StorageError::NotFound { key: path },
        error => StorageError::Store { doing, error },
    }
}

/// Streams a body into the local file `target`: each chunk is written soon after it arrives
/// (and its memory freed then) into a staged file beside the target, `name#n` as
/// object_store names its own (never listed), renamed into place once whole. A body over
/// `limit`, a read error or a dropped future removes the staged file.
///
/// Chunks are handed to a blocking write as they are, not copied into a file buffer first
/// (tokio's `File` copies every byte once more). The chunks received while one write is in
/// flight are handed to the next write together, written with vectored writes: one
/// hand-over to the blocking thread (and back) for several chunks. At most
/// [`PENDING_WRITE_BYTES`] in [`PENDING_WRITE_CHUNKS`] chunks wait for their write; beyond,
/// receiving waits for the disk.
///
/// A `watch` learns of each write and of the end (see [`UploadWatch`]).
async fn put_local<S, E>(
    target: &std::path::Path,
    body: S,
    limit: u64,
    expected: Option<u64>,
    watch: Option<Arc<UploadWatch>>,
) -> Result<u64, StorageError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut ending = watch::EndGuard(watch.clone());
    let (file, staged) = create_staged(target).await.map_err(local_error)?;
    if let Some(watch) = &watch {
        watch.opened(file.try_clone().map_err(local_error)?);
    }
    // Disk reserved ahead of the data, never more than [`RESERVE_AHEAD`] beyond what came.
    let expected = expected.filter(|&length| length <= limit).unwrap_or(0);
    let mut reserved = 0u64;
    let mut staged = Staged(Some(staged));
    let mut file = Some(file);
    let mut writing: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>> = None;
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut written = 0u64;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| StorageError::Body(err.to_string()))?;
        written += chunk.len() as u64;
        if written > limit {
            return Err(StorageError::TooLarge { limit });
        }
        pending_bytes += chunk.len();
        pending.push(chunk);
        // A write is handed to a blocking thread only once a megabyte or so has come: a
        // handoff per network read (tens of kilobytes) cost as much CPU as the copies.
        let busy = writing.as_ref().is_some_and(|write| !write.is_finished());
        let room = pending_bytes < PENDING_WRITE_BYTES && pending.len() < PENDING_WRITE_CHUNKS;
        if room && (busy || pending_bytes < WRITE_AT_BYTES) {
            continue;
        }
        let mut open = match writing.take() {
            Some(write) => finished(write).await?,
            None => file
                .take()
                .expect("the file is here when no write is in flight"),
        };
        let mut chunks = std::mem::take(&mut pending);
        pending_bytes = 0;
        let range = reservation(expected, &mut reserved, written);
        let watch = watch.clone();
        writing = Some(tokio::task::spawn_blocking(move || {
            if let Some((offset, length)) = range {
                preallocate(&open, offset, length);
            }
            write_chunks(&mut open, &mut chunks, watch.as_deref()).map(|()| open)
        }));
    }
    let mut open = match writing.take() {
        Some(write) => finished(write).await?,
        None => file
            .take()
            .expect("the file is here when no write is in flight"),
    };
    // A body shorter than declared leaves reserved blocks past its end: give them back.
    let reserved_past_end = reserved > written;
    if !pending.is_empty() || reserved_past_end {
        let watch = watch.clone();
        open = tokio::task::spawn_blocking(move || {
            write_chunks(&mut open, &mut pending, watch.as_deref())?;
            if reserved_past_end {
                open.set_len(written)?;
            }
            Ok(open)
        })
        .await
        .map_err(|err| local_error(std::io::Error::other(err.to_string())))?
        .map_err(local_error)?;
    }
    drop(open);
    let from = staged
        .0
        .clone()
        .expect("the staged file is kept until renamed");
    let to = target.to_owned();
    tokio::task::spawn_blocking(move || std::fs::rename(from, to))
        .await
        .map_err(|err| local_error(std::io::Error::other(err.to_string())))?
        .map_err(local_error)?;
    staged.0 = None;
    if let Some(watch) = ending.0.take() {
        watch.stored(written);
    }
    Ok(written)
}

/// The most bytes of an upload received and waiting for their write to the staged file.
const PENDING_WRITE_BYTES: usize = 2 * 1024 * 1024;

/// The bytes gathered before a write starts when none is in flight.
const WRITE_AT_BYTES: usize = 1024 * 1024;

/// The most chunks waiting for their write, whatever their size: a client trickling its
/// body a few bytes at a time would otherwise queue a million tiny chunks (each with its
/// own allocation) under the byte bound. It is also the most slices one vectored write
/// takes (Linux's `IOV_MAX`).
const PENDING_WRITE_CHUNKS: usize = 1024;

/// Writes every chunk, in order, with as few vectored writes as the system takes, and tells
/// `watch` of them once written.
fn write_chunks(
    file: &mut std::fs::File,
    chunks: &mut [Bytes],
    watch: Option<&UploadWatch>,
) -> std::io::Result<()> {
    use std::io::{IoSlice, Write};
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|chunk| IoSlice::new(chunk)).collect();
    let mut slices = &mut slices[..];
    // Empty chunks would make a write of zero bytes look like a full disk.
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    if let Some(watch) = watch {
        watch.wrote(chunks.iter().map(|chunk| chunk.len() as u64).sum());
    }
    Ok(())
}

/// Waits for a chunk's write and takes the file back.
async fn finished(
    write: tokio::task::JoinHandle<std::io::Result<std::fs::File>>,
) -> Result<std::fs::File, StorageError> {
    write
        .await
        .map_err(|err| local_error(std::io::Error::other(err.to_string())))?
        .map_err(local_error)
}

fn local_error(err: std::io::Error) -> StorageError {
    StorageError::Store {
        doing: "writing an object",
        error: object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(err),
        },
    }
}

/// Creates `target#n` for the first free `n`, and `target`'s directories when missing.
async fn create_staged(
    target: &std::path::Path,
) -> std::io::Result<(std::fs::File, std::path::PathBuf)> {
    let target = target.to_owned();
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        for n in 1u32.. {
            let mut staged = target.clone().into_os_string();
            staged.push(format!("#{n}"));
            let staged = std::path::PathBuf::from(staged);
            // Readable too: a watched upload is read as it is written.
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&staged)
            {
                Ok(file) => return Ok((file, staged)),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err),
            }
        }
        Err(std::io::Error::other("no free staged file name"))
    })
    .await
    .map_err(|err| std::io::Error::other(err.to_string()))?
}

/// How far ahead of the bytes received an upload of declared length reserves disk: a
/// client that declares a large body and sends little holds at most this much.
const RESERVE_AHEAD: u64 = 64 << 20;

/// The next range to reserve of an upload expected to be `expected` bytes long, when
/// `written` have come and `reserved` are reserved (which it moves on).
fn reservation(expected: u64, reserved: &mut u64, written: u64) -> Option<(u64, u64)> {
    let want = expected.min(written.saturating_add(RESERVE_AHEAD));
    let range = (want > *reserved).then(|| (*reserved, want - *reserved));
    *reserved = (*reserved).max(want);
    range
}

/// Reserves `length` bytes of disk from `offset` for a file being written (an upload whose
/// length the client declared), without changing its size. The file system then allocates
/// the blocks at once instead of page by page as the data is written: about a third less
/// system time for a large upload on ext4. Best effort: without it (another file system, a
/// full disk) the writes go on as before and report any error themselves. A body shorter
/// than declared is truncated to its end, which frees what was reserved past it.
fn preallocate(file: &std::fs::File, offset: u64, length: u64) {
    #[cfg(target_os = "linux")]
    if let Err(err) =
        rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, offset, length)
    {
        tracing::debug!(error = %err, offset, length, "could not reserve disk space for an upload");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, length);
}

/// A staged file removed when dropped, unless it was renamed into place.
struct Staged(Option<std::path::PathBuf>);

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: Path,
    pub size: u64,
}

/// How to reach an S3-compatible server: everything is given here (the configuration
/// crate resolves the `AWS_*` environment variables); this crate reads no environment.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// `http://host:port` of a self-hosted server; unset means AWS.
    pub endpoint: Option<String>,
    /// Unset means `us-east-1`.
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
    /// `bucket.host` addressing instead of path style (`host/bucket`).
    pub virtual_hosted_style: bool,
    /// Allow `http://`; by default allowed exactly when the endpoint is `http://`.
    pub allow_http: Option<bool>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// The object store and, when it is a local directory, that directory.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The store whose root is the URL's: the filesystem root, or the bucket (for readers
    /// that address objects by URL, such as the Delta log's).
    url_root: Arc<dyn ObjectStore>,
    local: Option<Arc<LocalFileSystem>>,
    /// The URL storage was opened with, without a trailing slash.
    url: String,
}

impl Storage {
    /// Opens storage from a URL: `file:///absolute/dir` (created if missing), or
    /// `s3://bucket[/prefix]` on AWS with default settings (no credentials but those of the
    /// instance or web identity the S3 client finds itself).
    ///
    /// # Errors
    /// An unsupported scheme or a directory that cannot be created.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        Self::open_with(url, &S3Settings::default())
    }

    /// Opens storage from a URL: `file:///absolute/dir` (created if missing), or
    /// `s3://bucket[/prefix]` reached with `s3`. Nothing is contacted yet: [`Storage::check`]
    /// does that.
    ///
    /// # Errors
    /// An unsupported scheme, a directory that cannot be created or unusable S3 settings.
    pub fn open_with(url: &str, s3: &S3Settings) -> Result<Self, StorageError> {
        let bad = |reason: String| StorageError::Url {
            url: url.to_owned(),
            reason,
        };
        if let Some(path) = url.strip_prefix("file://") {
            let dir = PathBuf::from(path);
            std::fs::create_dir_all(&dir)
                .map_err(|err| bad(format!("cannot create {}: {err}", dir.display())))?;
            let local = Arc::new(
                LocalFileSystem::new_with_prefix(&dir)
                    .map_err(store_error("opening the local store"))?,
            );
            return Ok(Self {
                store: local.clone(),
                url_root: Arc::new(LocalFileSystem::new()),
                local: Some(local),
                url: url.trim_end_matches('/').to_owned(),
            });
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(bad(
                "use file:///<absolute dir> or s3://<bucket>[/<prefix>]".to_owned(),
            ));
        };
        // rustls is built with two crypto providers (ring, and aws-lc-rs for delta-rs's
        // unused HTTP engine), so none is picked by default: HTTPS to S3 uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the bucket name is missing".to_owned()));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(s3.virtual_hosted_style)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    // Whole requests, including streaming a large object's body.
                    .with_timeout(Duration::from_secs(600)),
            );
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let endpoint_is_http = s3
            .endpoint
            .as_deref()
            .is_some_and(|endpoint| endpoint.starts_with("http://"));
        builder = builder.with_allow_http(s3.allow_http.unwrap_or(endpoint_is_http));
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &s3.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &s3.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &s3.session_token {
            builder = builder.with_token(token);
        }
        let s3_store: Arc<dyn ObjectStore> = Arc::new(
            builder
                .build()
                .map_err(|err| bad(format!("the S3 settings are not usable: {err}")))?,
        );
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::clone(&s3_store)
        } else {
            Arc::new(PrefixStore::new(Arc::clone(&s3_store), prefix))
        };
        Ok(Self {
            store,
            url_root: s3_store,
            local: None,
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    /// Contacts the store once (a listing of at most one object), so that a wrong endpoint,
    /// a missing bucket or refused credentials are reported at start-up.
    ///
    /// # Errors
    /// The store's answer.
    pub async fn check(&self) -> Result<(), StorageError> {
        let mut listing = self.store.list(Some(&Path::from("lake")));
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(err)) => Err(store_error("checking access to the store")(err)),
        }
    }

    /// Returns the URL of a key, for display (`file:///…/lake` or `s3://bucket/…/lake`).
    pub fn url_of(&self, key: &Path) -> String {
        format!("{}/{}", self.url, key)
    }

    /// True when storage is a local directory.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// Returns the underlying object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Returns the store whose root is the root of [`Storage::url_of`]'s URLs: the
    /// filesystem's root for a local directory, the bucket for S3. The object of a URL
    /// `scheme://host/<path>` is `<path>` there.
    pub fn url_root(&self) -> &Arc<dyn ObjectStore> {
        &self.url_root
    }

    /// Returns the local file behind a key when storage is a local directory, so jobs can
    /// read staged files in place.
    pub fn local_path(&self, key: &Path) -> Option<PathBuf> {
        self.local.as_ref()?.path_to_filesystem(key).ok()
    }

    /// Opens an object for reading on a blocking thread, as a [`std::io::Read`] fed from
    /// the store by a task on the current runtime (a few chunks ahead), and returns it with
    /// the object's size. For decoders that read front to back (JSON, CSV): nothing is
    /// copied to disk. Call it from within the runtime; read from a blocking thread.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] or a store failure; read errors come from the reader.
    pub async fn blocking_reader(&self, key: &Path) -> Result<(BlockingReader, u64), StorageError> {
        let result = self
            .store
            .get_opts(key, object_store::GetOptions::default())
            .await
            .map_err(store_error("reading an object"))?;
        let size = result.meta.size;
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let mut stream = result.into_stream();
        tokio::spawn(async move {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|err| {
                    std::io::Error::other(store_error("reading an object")(err).to_string())
                });
                let failed = chunk.is_err();
                if sender.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok((
            BlockingReader {
                receiver,
                current: Bytes::new(),
                read: 0,
                size,
            },
            size,
        ))
    }

    /// Returns a local file holding an object, for readers that need random access (Parquet)
    /// or a plain file: the file itself on a local directory, otherwise a copy streamed into
    /// `scratch_dir` and deleted when the returned value is dropped.
    ///
    /// # Errors
    /// [`StorageError::NotFound`], a store failure or a scratch file that cannot be written.
    pub async fn readable_file(
        &self,
        key: &Path,
        scratch_dir: &std::path::Path,
    ) -> Result<ReadableFile, StorageError> {
        if let Some(path) = self.local_path(key) {
            return match tokio::fs::metadata(&path).await {
                Ok(meta) if meta.is_file() => Ok(ReadableFile {
                    path,
                    temporary: false,
                }),
                _ => Err(StorageError::NotFound {
                    key: key.to_string(),
                }),
            };
        }
        static COPIES: AtomicU64 = AtomicU64::new(0);
        let local_error = |path: &std::path::Path, err: std::io::Error| StorageError::LocalCopy {
            path: path.display().to_string(),
            reason: err.to_string(),
        };
        tokio::fs::create_dir_all(scratch_dir)
            .await
            .map_err(|err| local_error(scratch_dir, err))?;
        let name = format!(
            "fetched-{}-{}-{}",
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed),
            key.filename().unwrap_or("object")
        );
        // From here on, dropping the guard removes whatever was written.
        let copy = ReadableFile {
            path: scratch_dir.join(name),
            temporary: true,
        };
        let mut file = tokio::fs::File::create(&copy.path)
            .await
            .map_err(|err| local_error(&copy.path, err))?;
        let mut body = std::pin::pin!(self.get_stream(key, None).await?);
        while let Some(chunk) = body.next().await {
            use tokio::io::AsyncWriteExt;
            file.write_all(&chunk?)
                .await
                .map_err(|err| local_error(&copy.path, err))?;
        }
        {
            use tokio::io::AsyncWriteExt;
            file.flush()
                .await
                .map_err(|err| local_error(&copy.path, err))?;
        }
        Ok(copy)
    }

    /// Streams a body into `key` without buffering it whole, failing (and writing nothing)
    /// when it exceeds `limit` bytes. A body of at most [`PART_SIZE`] bytes is written with
    /// one `PUT`; a larger one through a multipart upload with a few parts in flight. The
    /// object appears atomically when complete.
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
        self.put_stream_expecting(key, body, limit, None).await
    }

    /// [`put_stream`](Self::put_stream) for a body whose length the sender declared
    /// (`Content-Length`): on the local disk, space for it is reserved as the data comes, at
    /// most 64 MiB beyond what has come. The body's real length still decides
    /// what is stored.
    ///
    /// # Errors
    /// As [`put_stream`](Self::put_stream).
    pub async fn put_stream_expecting<S, E>(
        &self,
        key: &Path,
        body: S,
        limit: u64,
        expected: Option<u64>,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        self.put_stream_watched(key, body, limit, expected, None)
            .await
    }

    /// [`put_stream_expecting`](Self::put_stream_expecting) that tells `watch` of the
    /// upload's progress, so that it can be read while it is written. Only a local
    /// directory is watched: on remote storage the watch fails at once.
    ///
    /// # Errors
    /// As [`put_stream`](Self::put_stream).
    pub async fn put_stream_watched<S, E>(
        &self,
        key: &Path,
        body: S,
        limit: u64,
        expected: Option<u64>,
        watch: Option<Arc<UploadWatch>>,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if let Some(target) = self.local_path(key) {
            return put_local(&target, body, limit, expected, watch).await;
        }
        if let Some(watch) = watch {
            watch.fail("only uploads to a local directory can be read while they are written");
        }
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let mut writer: Option<WriteMultipart> = None;
        let mut written = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let failure = match chunk {
                Err(err) => Some(StorageError::Body(err.to_string())),
                Ok(chunk) => {
                    written += chunk.len() as u64;
                    if written > limit {
                        Some(StorageError::TooLarge { limit })
                    } else if let Some(writer) = writer.as_mut() {
                        match writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                            Ok(()) => {
                                writer.put(chunk);
                                None
                            }
                            Err(err) => Some(store_error("uploading")(err)),
                        }
                    } else {
                        pending_len += chunk.len();
                        pending.push(chunk);
                        if pending_len > PART_SIZE {
                            let upload = self
                                .store
                                .put_multipart(key)
                                .await
                                .map_err(store_error("starting an upload"))?;
                            let mut started =
                                WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                            for chunk in pending.drain(..) {
                                started.put(chunk);
                            }
                            writer = Some(started);
                        }
                        None
                    }
                }
            };
            if let Some(failure) = failure {
                if let Some(writer) = writer {
                    let _ = writer.abort().await;
                }
                return Err(failure);
            }
        }
        match writer {
            Some(writer) => {
                writer
                    .finish()
                    .await
                    .map_err(store_error("finishing an upload"))?;
            }
            None => {
                self.store
                    .put(key, pending.into_iter().collect::<PutPayload>())
                    .await
                    .map_err(store_error("writing an object"))?;
            }
        }
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

    /// Moves a local scratch file into `key`: on a local directory it is renamed into place
    /// (one atomic step, no copy) when both are on one filesystem; otherwise it is written
    /// as [`put_file`](Self::put_file) does and the file stays where it was.
    ///
    /// # Errors
    /// The file cannot be read or the store fails.
    pub async fn move_file(&self, key: &Path, file: &std::path::Path) -> Result<u64, StorageError> {
        if let Some(target) = self.local_path(key) {
            let (source, size) = (file.to_owned(), tokio::fs::metadata(file).await);
            if let Ok(size) = size {
                let moved = tokio::task::spawn_blocking(move || {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::rename(&source, &target)
                })
                .await;
                if let Ok(Ok(())) = moved {
                    return Ok(size.len());
                }
            }
        }
        self.put_file(key, file).await
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

/// An object's bytes as a blocking [`std::io::Read`] (see [`Storage::blocking_reader`]).
/// A stream that ends before the object's size is an error, never a silent truncation.
#[derive(Debug)]
pub struct BlockingReader {
    receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
    read: u64,
    size: u64,
}

impl std::io::Read for BlockingReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None if self.read == self.size => return Ok(0),
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the object stream ended after {} of {} bytes",
                            self.read, self.size
                        ),
                    ));
                }
            }
        }
        let count = buffer.len().min(self.current.len());
        buffer[..count].copy_from_slice(&self.current.split_to(count));
        self.read += count as u64;
        Ok(count)
    }
}

/// A local file holding an object's bytes; a temporary copy is deleted when dropped.
#[derive(Debug)]
pub struct ReadableFile {
    path: PathBuf,
    temporary: bool,
}

impl ReadableFile {
    /// Returns the file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for ReadableFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
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
