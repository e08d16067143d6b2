//! The shared state behind the streaming inlets' hot path (spec §10.2–10.3): a cache of
//! resolved inlets and the group committer that appends many requests' records in one
//! metastore transaction.
//!
//! **Cache.** An inlet id resolves to its connection, tenant and flows, and lazily to the
//! target datasets and their compiled streaming validators. An entry is used while it is
//! younger than `stream.cache_ttl_ms` and no write went through this process's Catalog,
//! Schema Registry or Flow Service routes since it was read (a local epoch). Other nodes'
//! changes show within the TTL, and a Flow Service change (a deleted connection or flow, a
//! new flow) never lets a record through: every append carries the tenant's Flow Service
//! generation its routing was read with, and the append transaction refuses it when the
//! generation has moved on (the handler then reads the inlet again and routes anew).
//!
//! **Group commit.** Handlers hand their records to one committer task and wait for its
//! answer. The committer takes every request that is waiting (up to
//! [`MAX_GROUP_REQUESTS`] requests or [`MAX_GROUP_BYTES`]), appends them in one
//! transaction — one commit, one fsync — and answers each only after that commit returned.
//! While a commit is in flight the next group gathers, so the group grows with the load.
//! What waits is bounded: at most `stream.max_queued_requests` requests and
//! `stream.max_queued_bytes` record bytes are queued or in the transaction; a request
//! over either is answered 503 at once, with nothing queued.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use lakeport_domain::Doc;
use lakeport_domain::now_millis;
use lakeport_domain::xdm::validate::Validator;
use lakeport_metastore::{AppendOutcome, Inlet, Metastore, MetastoreError, StreamAppend};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// The most inlets kept; a full cache is emptied (entries are cheap to read again).
const MAX_INLETS: usize = 10_000;
/// The most datasets (or validators) kept per inlet: messages may name any dataset id.
const MAX_DATASETS_PER_INLET: usize = 256;
/// The most requests one group commit takes.
pub(crate) const MAX_GROUP_REQUESTS: usize = 4096;
/// The most record bytes one group commit takes (a request is never split).
pub(crate) const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// A resolved inlet and what was looked up through it.
pub(crate) struct CachedInlet {
    pub(crate) inlet: Inlet,
    fetched: Instant,
    epoch: u64,
    datasets: Mutex<HashMap<String, Option<Arc<Doc>>>>,
    validators: Mutex<HashMap<String, Arc<Result<Validator, String>>>>,
}

impl CachedInlet {
    /// Returns the dataset looked up earlier through this inlet (`Some(None)`: it did not
    /// exist), or `None` when it was not looked up yet.
    pub(crate) fn dataset(&self, id: &str) -> Option<Option<Arc<Doc>>> {
        lock(&self.datasets).get(id).cloned()
    }

    /// Remembers a dataset lookup.
    pub(crate) fn remember_dataset(&self, id: &str, dataset: Option<Arc<Doc>>) {
        let mut datasets = lock(&self.datasets);
        if datasets.len() >= MAX_DATASETS_PER_INLET {
            datasets.clear();
        }
        datasets.insert(id.to_owned(), dataset);
    }

    /// Returns the streaming validator compiled earlier for a dataset.
    pub(crate) fn validator(&self, dataset_id: &str) -> Option<Arc<Result<Validator, String>>> {
        lock(&self.validators).get(dataset_id).cloned()
    }

    /// Remembers a dataset's compiled validator (or why it cannot be compiled).
    pub(crate) fn remember_validator(
        &self,
        dataset_id: &str,
        validator: Arc<Result<Validator, String>>,
    ) {
        let mut validators = lock(&self.validators);
        if validators.len() >= MAX_DATASETS_PER_INLET {
            validators.clear();
        }
        validators.insert(dataset_id.to_owned(), validator);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resolved inlets by id, each used for at most the TTL and until a local write.
pub(crate) struct InletCache {
    ttl: Duration,
    epoch: AtomicU64,
    entries: Mutex<HashMap<String, Arc<CachedInlet>>>,
    /// Held while an inlet is read from the metastore, so that when an entry expires
    /// under load one request reads it again, not every waiting one.
    refreshing: tokio::sync::Mutex<()>,
}

impl InletCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            epoch: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Drops every entry: a write went through this process's Catalog, Schema Registry or
    /// Flow Service routes.
    pub(crate) fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops this entry (an append found its routing stale).
    pub(crate) fn invalidate(&self, inlet_id: &str, entry: &Arc<CachedInlet>) {
        let mut entries = lock(&self.entries);
        if entries
            .get(inlet_id)
            .is_some_and(|cached| Arc::ptr_eq(cached, entry))
        {
            entries.remove(inlet_id);
        }
    }

    fn fresh(&self, inlet_id: &str) -> Option<Arc<CachedInlet>> {
        let epoch = self.epoch.load(Ordering::Acquire);
        lock(&self.entries)
            .get(inlet_id)
            .filter(|entry| entry.epoch == epoch && entry.fetched.elapsed() < self.ttl)
            .cloned()
    }

    /// Returns the inlet, from the cache while fresh, else read from the metastore.
    /// `None`: no such inlet (not remembered, so a new connection is found at once).
    pub(crate) async fn get(
        &self,
        metastore: &dyn Metastore,
        inlet_id: &str,
    ) -> Result<Option<Arc<CachedInlet>>, MetastoreError> {
        let caching = self.ttl > Duration::ZERO;
        if caching && let Some(entry) = self.fresh(inlet_id) {
            return Ok(Some(entry));
        }
        let _refreshing = if caching {
            let guard = self.refreshing.lock().await;
            if let Some(entry) = self.fresh(inlet_id) {
                return Ok(Some(entry));
            }
            Some(guard)
        } else {
            None
        };
        // The epoch before the read: a write during it makes the entry stale at once.
        let epoch = self.epoch.load(Ordering::Acquire);
        let fetched = Instant::now();
        let Some(inlet) = metastore.inlet(inlet_id).await? else {
            lock(&self.entries).remove(inlet_id);
            return Ok(None);
        };
        let entry = Arc::new(CachedInlet {
            inlet,
            fetched,
            epoch,
            datasets: Mutex::new(HashMap::new()),
            validators: Mutex::new(HashMap::new()),
        });
        if caching {
            let mut entries = lock(&self.entries);
            if entries.len() >= MAX_INLETS {
                entries.clear();
            }
            entries.insert(inlet_id.to_owned(), Arc::clone(&entry));
        }
        Ok(Some(entry))
    }
}

type Reply = oneshot::Sender<Result<AppendOutcome, Arc<MetastoreError>>>;

/// A request waiting for the committer. Its permits go back when the committer drops it,
/// after answering, whether or not its sender still waits.
struct Pending {
    group: StreamAppend,
    bytes: usize,
    reply: Reply,
    /// The request's permit and its bytes' permits.
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// Why an append was not made.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// The queue holds `stream.max_queued_requests` requests or `stream.max_queued_bytes`
    /// bytes already: nothing was queued.
    Full(String),
    /// The transaction failed (or the committer stopped): nothing was acknowledged.
    Store(Arc<MetastoreError>),
}

/// Hands records to the group committer (started on first use, inside the runtime).
pub(crate) struct Appender {
    metastore: Arc<dyn Metastore>,
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
    /// One permit per request queued or in the transaction (`stream.max_queued_requests`).
    requests: Arc<Semaphore>,
    max_requests: usize,
    /// One permit per record byte queued or in the transaction (`stream.max_queued_bytes`).
    bytes: Arc<Semaphore>,
    max_bytes: u32,
}

impl Appender {
    pub(crate) fn new(
        metastore: Arc<dyn Metastore>,
        max_requests: usize,
        max_bytes: usize,
    ) -> Self {
        let max_requests = max_requests.clamp(1, Semaphore::MAX_PERMITS);
        // Permits are taken as u32; a budget over 4 GiB is 4 GiB.
        let max_bytes =
            u32::try_from(max_bytes.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Self {
            metastore,
            queue: OnceLock::new(),
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            bytes: Arc::new(Semaphore::new(max_bytes as usize)),
            max_bytes,
        }
    }

    /// Appends one request's records with others' in one transaction; returns once that
    /// transaction committed (or failed). Refused at once, without waiting, when the queue
    /// is full.
    pub(crate) async fn append(&self, group: StreamAppend) -> Result<AppendOutcome, AppendError> {
        let bytes: usize = group.records.iter().map(|record| record.body.len()).sum();
        let Ok(request_permit) = Arc::clone(&self.requests).try_acquire_owned() else {
            return Err(AppendError::Full(format!(
                "{} requests are already waiting to be stored on this node (stream.max_queued_requests); nothing was acknowledged. Retry the request.",
                self.max_requests
            )));
        };
        // A request larger than the whole budget takes all of it.
        let wanted = u32::try_from(bytes).unwrap_or(u32::MAX).min(self.max_bytes);
        let Ok(bytes_permit) = Arc::clone(&self.bytes).try_acquire_many_owned(wanted) else {
            return Err(AppendError::Full(format!(
                "{} bytes of records are already waiting to be stored on this node (stream.max_queued_bytes); nothing was acknowledged. Retry the request.",
                self.max_bytes
            )));
        };
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(commit_groups(Arc::clone(&self.metastore), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        let stopped = || {
            AppendError::Store(Arc::new(MetastoreError::Unavailable(
                "the stream committer has stopped".to_owned(),
            )))
        };
        // The permits bound what the unbounded channel holds.
        queue
            .send(Pending {
                group,
                bytes,
                reply,
                permits: (request_permit, bytes_permit),
            })
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(AppendError::Store)
    }
}

/// The committer: takes what is waiting, appends it in one transaction, answers each.
async fn commit_groups(metastore: Arc<dyn Metastore>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut bytes = first.bytes;
        let mut waiting = vec![first];
        while waiting.len() < MAX_GROUP_REQUESTS && bytes < MAX_GROUP_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.bytes;
                    waiting.push(next);
                }
                Err(_) => break,
            }
        }
        let mut groups = Vec::with_capacity(waiting.len());
        let mut replies = Vec::with_capacity(waiting.len());
        let mut permits = Vec::with_capacity(waiting.len());
        for pending in waiting {
            groups.push(pending.group);
            replies.push(pending.reply);
            permits.push(pending.permits);
        }
        let requests = groups.len();
        let started = Instant::now();
        match metastore.append_stream_groups(groups, now_millis()).await {
            Ok(outcomes) => {
                tracing::trace!(
                    requests,
                    size_bytes = bytes,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "stream group committed"
                );
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A sender that stopped waiting has its records appended anyway.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                let err = Arc::new(err);
                for reply in replies {
                    let _ = reply.send(Err(Arc::clone(&err)));
                }
            }
        }
        // The queue has room again only once these requests are answered.
        drop(permits);
    }
}
