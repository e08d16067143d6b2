//! Reading a local upload while it is written: an [`UploadWatch`] handed to
//! [`Storage::put_stream_watched`](crate::Storage::put_stream_watched) learns of every
//! write to the staged file, and its [`WatchReader`] reads the bytes written so far,
//! waiting for more until the upload is whole (end of file) or fails (an error).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// What a watched upload has done so far.
#[derive(Debug, Default)]
struct Progress {
    /// The staged file, opened for reading once it exists.
    file: Option<Arc<std::fs::File>>,
    /// The bytes written to it.
    written: u64,
    /// `Some(Ok(size))` once the upload is stored whole, `Some(Err(reason))` once it failed.
    end: Option<Result<u64, String>>,
}

/// Follows one upload into a local staged file (see the module's documentation).
#[derive(Debug, Default)]
pub struct UploadWatch {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl UploadWatch {
    /// A watch of an upload that has not started.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A reader of the upload's bytes, from the first.
    #[must_use]
    pub fn reader(self: &Arc<Self>) -> WatchReader {
        WatchReader {
            watch: Arc::clone(self),
            offset: 0,
        }
    }

    /// Fails the upload for its readers (a reader that is no longer wanted stops at its next
    /// read); an upload that already ended keeps its end.
    pub fn fail(&self, reason: &str) {
        self.update(|progress| {
            progress.end.get_or_insert_with(|| Err(reason.to_owned()));
        });
    }

    /// The upload's size, once it is stored whole.
    #[must_use]
    pub fn stored_size(&self) -> Option<u64> {
        match self.lock().end {
            Some(Ok(size)) => Some(size),
            _ => None,
        }
    }

    /// Whether the upload ended, stored whole or failed.
    #[must_use]
    pub fn ended(&self) -> bool {
        self.lock().end.is_some()
    }

    pub(crate) fn opened(&self, file: std::fs::File) {
        self.update(|progress| progress.file = Some(Arc::new(file)));
    }

    pub(crate) fn wrote(&self, bytes: u64) {
        self.update(|progress| progress.written += bytes);
    }

    pub(crate) fn stored(&self, size: u64) {
        self.update(|progress| {
            progress.end.get_or_insert(Ok(size));
        });
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Fails a watched upload that did not end (an error or a dropped future), so that its
/// readers stop instead of waiting for bytes that will never come.
pub(crate) struct EndGuard(pub(crate) Option<Arc<UploadWatch>>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        if let Some(watch) = &self.0 {
            watch.fail("the upload did not complete");
        }
    }
}

/// The bytes of a watched upload as a blocking [`std::io::Read`]: it waits while the reader
/// is ahead of the upload, ends where the stored upload ends, and fails when the upload
/// fails, even after its last byte was read.
#[derive(Debug)]
pub struct WatchReader {
    watch: Arc<UploadWatch>,
    offset: u64,
}

impl std::io::Read for WatchReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let mut progress = self.watch.lock();
        loop {
            if let Some(Err(reason)) = &progress.end {
                return Err(std::io::Error::other(reason.clone()));
            }
            let file = progress.file.clone();
            let ready = progress.written - self.offset;
            match (&progress.end, file) {
                (_, Some(file)) if ready > 0 && !buffer.is_empty() => {
                    drop(progress);
                    let wanted = buffer
                        .len()
                        .min(usize::try_from(ready).unwrap_or(usize::MAX));
                    let count = read_at(&file, &mut buffer[..wanted], self.offset)?;
                    if count == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the staged upload is shorter than the bytes written to it",
                        ));
                    }
                    self.offset += count as u64;
                    return Ok(count);
                }
                (Some(Ok(_)), _) => return Ok(0),
                _ if buffer.is_empty() => return Ok(0),
                _ => {
                    progress = self
                        .watch
                        .changed
                        .wait(progress)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }
}

#[cfg(unix)]
fn read_at(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    loop {
        match file.read_at(buffer, offset) {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

#[cfg(not(unix))]
fn read_at(_file: &std::fs::File, _buffer: &mut [u8], _offset: u64) -> std::io::Result<usize> {
    Err(std::io::Error::other(
        "reading an upload while it is written needs positioned reads",
    ))
}

/// An upload about to be stored, for an [`UploadWatcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartingUpload {
    pub org: String,
    pub sandbox: String,
    pub batch_id: String,
    pub dataset_id: String,
    /// The file's path in the batch.
    pub path: String,
    pub upload_id: String,
    /// The body's length, when the client declared it.
    pub declared_bytes: Option<u64>,
}

/// Something that reads uploads while they are stored: the API asks it before storing a
/// file, and uploads with the watch it returns (`None`: not wanted).
pub trait UploadWatcher: Send + Sync {
    fn watch(
        &self,
        upload: StartingUpload,
    ) -> futures::future::BoxFuture<'static, Option<Arc<UploadWatch>>>;
}
