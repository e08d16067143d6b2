//! [`Metastore`] once, over any [`Backend`]: each call hands its operation (`catalog`,
//! `registry`, `ingest`) to the backend as one transaction.

use async_trait::async_trait;
use lakeport_domain::Doc;
use lakeport_domain::catalog::Actor;
use lakeport_domain::catalog::import::NewImportBatch;
use lakeport_domain::ids::{BatchId, DatasetId, QsObjectId, ResourceId};
use lakeport_domain::ingest::{Chunk, Job, JobKind, TableJob};
use lakeport_domain::now_millis;
use lakeport_domain::query::{ListQuery, ObjectKind};
use lakeport_domain::status::BatchAction;
use lakeport_domain::tenant::Tenant;
use lakeport_domain::xdm::registry::ResourceKind;

use crate::backend::{Backend, Conn, Lock};
use crate::catalog::{self, PendingChange};
use crate::{AppendOutcome, Inlet, SealedSegment, StreamAppend, StreamSegment, stream};
use crate::{
    BatchFile, DiagnosticsFile, DocChange, ExpiredDiagnostics, Metastore, MetastoreError,
    Promotion, StoredDatasetFile, UpdateOptions, UploadLimits, ingest, registry,
};
use lakeport_domain::flow::{FlowKind, Reference};
use lakeport_domain::queryservice::{QsKind, QsListing};

use std::sync::Arc;

use crate::queries;

/// A metastore over one SQL backend ([`crate::sqlite::SqliteMetastore`],
/// [`crate::postgres::PostgresMetastore`]).
#[derive(Clone)]
pub struct SqlStore<B> {
    pub(crate) backend: B,
    /// Rung when this node queues a job that is due now (see [`Metastore::job_bell`]).
    pub(crate) bell: Arc<tokio::sync::Notify>,
}

impl<B> SqlStore<B> {
    /// Wakes one idle worker of this node (or the next to wait) after a due job was queued.
    fn ring(&self) {
        self.bell.notify_one();
    }
}

/// Runs `$work` (an expression over the connection and owned copies of the listed
/// arguments, which it borrows) as one `read` or `write` of the backend. The work may run
/// again when the backend retries, so it gets fresh copies each time.
macro_rules! run {
    ($self:ident.$mode:ident($doing:literal, [$($arg:ident),*], |$conn:ident| $work:expr)) => {{
        $(let $arg = $arg.to_owned();)*
        $self
            .backend
            .$mode($doing, move |$conn| {
                $(let $arg = $arg.clone();)*
                Box::pin(async move { $work.await })
            })
            .await
    }};
}

type Dialect<B> = <<B as Backend>::Conn as Conn>::Dialect;

#[async_trait]
impl<B: Backend> Metastore for SqlStore<B> {
    async fn insert(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        doc: Doc,
    ) -> Result<Doc, MetastoreError> {
        run!(self.write("inserting an object", [tenant, doc], |conn| {
            catalog::insert(conn, &tenant, kind, doc)
        }))
    }

    async fn get(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<Doc>, MetastoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        run!(self.read("reading objects", [tenant, ids], |conn| {
            catalog::get(conn, &tenant, kind, &ids)
        }))
    }

    async fn list(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<Vec<Doc>, MetastoreError> {
        let statement = catalog::list_statement::<Dialect<B>>(tenant, kind, query, true);
        run!(self.read("listing objects", [statement], |conn| {
            catalog::list(conn, &statement)
        }))
    }

    async fn count(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<u64, MetastoreError> {
        let statement = catalog::list_statement::<Dialect<B>>(tenant, kind, query, false);
        run!(self.read("counting objects", [statement], |conn| {
            catalog::count(conn, &statement)
        }))
    }

    async fn update(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        id: &str,
        options: UpdateOptions,
        change: DocChange,
    ) -> Result<Doc, MetastoreError> {
        let pending = PendingChange::new(change);
        run!(self.write(
            "updating an object",
            [tenant, id, options, pending],
            |conn| { catalog::update(conn, &tenant, kind, &id, &options, &pending) }
        ))
    }

    async fn delete(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        id: &str,
        actor: &Actor,
    ) -> Result<bool, MetastoreError> {
        run!(
            self.write("deleting an object", [tenant, id, actor], |conn| {
                catalog::delete(conn, &tenant, kind, &id, &actor)
            })
        )
    }

    async fn create_import_batch(
        &self,
        tenant: &Tenant,
        request: &NewImportBatch,
        batch_id: &BatchId,
        actor: &Actor,
        now: i64,
    ) -> Result<Doc, MetastoreError> {
        run!(self.write(
            "creating a batch",
            [tenant, request, batch_id, actor],
            |conn| catalog::create_import_batch(conn, &tenant, &request, &batch_id, &actor, now)
        ))
    }

    async fn insert_resource(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        doc: Doc,
    ) -> Result<Doc, MetastoreError> {
        run!(self.write("storing a resource", [tenant, doc], |conn| {
            registry::insert(conn, &tenant, kind, doc)
        }))
    }

    async fn get_resource(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
    ) -> Result<Option<Doc>, MetastoreError> {
        run!(self.read("reading a resource", [tenant, id], |conn| {
            registry::get(conn, &tenant, &id)
        }))
    }

    async fn list_resources(
        &self,
        tenant: &Tenant,
        kind: Option<ResourceKind>,
    ) -> Result<Vec<Doc>, MetastoreError> {
        run!(self.read("listing resources", [tenant], |conn| {
            registry::list(conn, &tenant, kind)
        }))
    }

    async fn resources_containing(
        &self,
        tenant: &Tenant,
        needle: &str,
    ) -> Result<Vec<Doc>, MetastoreError> {
        run!(
            self.read("finding referring resources", [tenant, needle], |conn| {
                registry::containing(conn, &tenant, &needle)
            })
        )
    }

    async fn replace_resource(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        expected_version: &str,
        doc: Doc,
    ) -> Result<Doc, MetastoreError> {
        run!(self.write(
            "replacing a resource",
            [tenant, id, expected_version, doc],
            |conn| registry::replace(conn, &tenant, &id, &expected_version, doc)
        ))
    }

    async fn delete_resource(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
    ) -> Result<bool, MetastoreError> {
        run!(self.write("deleting a resource", [tenant, id], |conn| {
            registry::delete(conn, &tenant, &id)
        }))
    }

    async fn upload_target(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        dataset_id: &DatasetId,
    ) -> Result<Doc, MetastoreError> {
        run!(self.read(
            "checking an upload target",
            [tenant, batch_id, dataset_id],
            |conn| ingest::upload_target(conn, &tenant, &batch_id, &dataset_id, Lock::None)
        ))
    }

    async fn record_file(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        dataset_id: &DatasetId,
        path: &str,
        upload_id: &str,
        size: u64,
        limits: UploadLimits,
    ) -> Result<Option<String>, MetastoreError> {
        run!(self.write(
            "recording a batch file",
            [tenant, batch_id, dataset_id, path, upload_id],
            |conn| ingest::record_file(
                conn,
                &tenant,
                &batch_id,
                &dataset_id,
                &path,
                &upload_id,
                size,
                limits,
                now_millis(),
            )
        ))
    }

    async fn start_chunked_upload(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        dataset_id: &DatasetId,
        path: &str,
        upload_id: &str,
    ) -> Result<Option<String>, MetastoreError> {
        run!(self.write(
            "starting a chunked upload",
            [tenant, batch_id, dataset_id, path, upload_id],
            |conn| ingest::start_chunked_upload(
                conn,
                &tenant,
                &batch_id,
                &dataset_id,
                &path,
                &upload_id,
                now_millis(),
            )
        ))
    }

    async fn record_chunk(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        dataset_id: &DatasetId,
        path: &str,
        upload_id: &str,
        chunk: Chunk,
    ) -> Result<BatchFile, MetastoreError> {
        run!(self.write(
            "recording a chunk",
            [tenant, batch_id, dataset_id, path, upload_id, chunk],
            |conn| ingest::record_chunk(
                conn,
                &tenant,
                &batch_id,
                &dataset_id,
                &path,
                &upload_id,
                chunk,
                now_millis(),
            )
        ))
    }

    async fn batch_file(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        path: &str,
    ) -> Result<Option<BatchFile>, MetastoreError> {
        run!(
            self.read("reading a batch file", [tenant, batch_id, path], |conn| {
                ingest::batch_file(conn, &tenant, &batch_id, &path)
            })
        )
    }

    async fn batch_files(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<Vec<BatchFile>, MetastoreError> {
        run!(
            self.read("listing batch files", [tenant, batch_id], |conn| {
                ingest::batch_files(conn, &tenant, &batch_id)
            })
        )
    }

    async fn signal_batch(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        action: BatchAction,
        actor: &Actor,
        now: i64,
        cleanup_delay_ms: i64,
    ) -> Result<Doc, MetastoreError> {
        let batch = run!(
            self.write("signalling a batch", [tenant, batch_id, actor], |conn| {
                ingest::signal_batch(
                    conn,
                    &tenant,
                    &batch_id,
                    action,
                    &actor,
                    now,
                    cleanup_delay_ms,
                )
            })
        )?;
        self.ring();
        Ok(batch)
    }

    fn job_bell(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.bell)
    }

    async fn claim_job(
        &self,
        worker: &str,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Job>, MetastoreError> {
        run!(self.write("claiming a job", [worker], |conn| {
            ingest::claim_job(conn, &worker, lease_ms, now)
        }))
    }

    async fn renew_lease(&self, job: &Job, until: i64) -> Result<bool, MetastoreError> {
        run!(self.write("renewing a job lease", [job], |conn| {
            ingest::renew_lease(conn, &job, until)
        }))
    }

    async fn all_datasets(
        &self,
        after: &(String, String, String),
        limit: u32,
    ) -> Result<Vec<(Tenant, Doc)>, MetastoreError> {
        run!(
            self.read("reading every tenant's datasets", [after], |conn| {
                catalog::all_datasets(conn, &after, limit)
            })
        )
    }

    async fn lock_table(
        &self,
        job: &Job,
        dataset_id: &DatasetId,
        now: i64,
    ) -> Result<bool, MetastoreError> {
        run!(
            self.write("taking a table lock", [job, dataset_id], |conn| {
                ingest::lock_table(conn, &job, dataset_id.as_str(), now)
            })
        )
    }

    async fn unlock_table(&self, job: &Job, dataset_id: &DatasetId) -> Result<(), MetastoreError> {
        run!(
            self.write("releasing a table lock", [job, dataset_id], |conn| {
                ingest::unlock_table(conn, &job, dataset_id.as_str())
            })
        )
    }

    async fn begin_processing(&self, job: &Job, now: i64) -> Result<Option<Doc>, MetastoreError> {
        run!(self.write("beginning to process a batch", [job], |conn| {
            ingest::begin_processing(conn, &job, now)
        }))
    }

    async fn complete_promotion(
        &self,
        job: &Job,
        promotion: Promotion,
        now: i64,
    ) -> Result<Doc, MetastoreError> {
        run!(
            self.write("completing a promotion", [job, promotion], |conn| {
                ingest::complete_promotion(conn, &job, promotion, now)
            })
        )
    }

    async fn retry_job(
        &self,
        job: &Job,
        error: &str,
        retry_at: i64,
        max_attempts: u32,
        now: i64,
    ) -> Result<(), MetastoreError> {
        run!(self.write("scheduling a job retry", [job, error], |conn| {
            ingest::retry_job(conn, &job, &error, retry_at, max_attempts, now)
        }))
    }

    async fn finish_job(&self, job: &Job, now: i64) -> Result<(), MetastoreError> {
        run!(self.write("finishing a job", [job], |conn| {
            ingest::finish_job(conn, &job, now)
        }))
    }

    async fn enqueue_job(
        &self,
        tenant: &Tenant,
        kind: JobKind,
        batch_id: &BatchId,
        run_at: i64,
    ) -> Result<(), MetastoreError> {
        let now = now_millis();
        run!(self.write("enqueueing a job", [tenant, batch_id], |conn| {
            ingest::enqueue_job(conn, &tenant, kind, &batch_id, run_at, now)
        }))?;
        if run_at <= now {
            self.ring();
        }
        Ok(())
    }

    async fn enqueue_table_job(
        &self,
        tenant: &Tenant,
        kind: JobKind,
        dataset_id: &DatasetId,
    ) -> Result<i64, MetastoreError> {
        let id = run!(
            self.write("enqueueing a table job", [tenant, dataset_id], |conn| {
                ingest::enqueue_table_job(conn, &tenant, kind, dataset_id.as_str(), now_millis())
            })
        )?;
        self.ring();
        Ok(id)
    }

    async fn table_job(
        &self,
        tenant: &Tenant,
        dataset_id: &DatasetId,
        id: i64,
    ) -> Result<Option<TableJob>, MetastoreError> {
        run!(
            self.read("reading a table job", [tenant, dataset_id], |conn| {
                ingest::table_job(conn, &tenant, dataset_id.as_str(), id)
            })
        )
    }

    async fn finish_table_job(
        &self,
        job: &Job,
        result: &str,
        now: i64,
    ) -> Result<(), MetastoreError> {
        let result = result.to_owned();
        run!(self.write("finishing a table job", [job, result], |conn| {
            ingest::finish_table_job(conn, &job, &result, now)
        }))
    }

    async fn abandon_stale_batches(
        &self,
        created_before: i64,
        now: i64,
    ) -> Result<Vec<(Tenant, BatchId)>, MetastoreError> {
        run!(self.write("abandoning stale batches", [], |conn| {
            ingest::abandon_stale_batches(conn, created_before, now)
        }))
    }

    async fn dataset_file(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<StoredDatasetFile>, MetastoreError> {
        run!(self.read("reading a dataset file", [tenant, id], |conn| {
            ingest::dataset_file(conn, &tenant, &id)
        }))
    }

    async fn batch_dataset_files(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<Vec<StoredDatasetFile>, MetastoreError> {
        run!(
            self.read("reading dataset files", [tenant, batch_id], |conn| {
                ingest::batch_dataset_files(conn, &tenant, &batch_id)
            })
        )
    }

    async fn diagnostics_location(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<Option<String>, MetastoreError> {
        run!(
            self.read("reading diagnostics", [tenant, batch_id], |conn| {
                ingest::diagnostics_location(conn, &tenant, &batch_id)
            })
        )
    }

    async fn diagnostics_files(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<Option<Vec<DiagnosticsFile>>, MetastoreError> {
        run!(
            self.read("reading diagnostics files", [tenant, batch_id], |conn| {
                ingest::diagnostics_files(conn, &tenant, &batch_id)
            })
        )
    }

    async fn expired_diagnostics(
        &self,
        completed_before: i64,
        limit: u32,
    ) -> Result<Vec<ExpiredDiagnostics>, MetastoreError> {
        run!(self.read("finding expired diagnostics", [], |conn| {
            ingest::expired_diagnostics(conn, completed_before, limit)
        }))
    }

    async fn clear_diagnostics(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<bool, MetastoreError> {
        run!(
            self.write("clearing diagnostics", [tenant, batch_id], |conn| {
                ingest::clear_diagnostics(conn, &tenant, &batch_id)
            })
        )
    }

    async fn insert_qs_object(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        doc: Doc,
        cap: queries::QsCap,
    ) -> Result<Doc, MetastoreError> {
        run!(self.write("storing a query object", [tenant, doc], |conn| {
            queries::insert(conn, &tenant, kind, doc, cap)
        }))
    }

    async fn get_qs_object(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        id: &QsObjectId,
    ) -> Result<Option<Doc>, MetastoreError> {
        run!(self.read("reading a query object", [tenant, id], |conn| {
            queries::get(conn, &tenant, kind, &id, Lock::None)
        }))
    }

    async fn list_qs_objects(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        listing: &QsListing,
    ) -> Result<Vec<Doc>, MetastoreError> {
        run!(
            self.read("listing query objects", [tenant, listing], |conn| {
                queries::list(conn, &tenant, kind, &listing)
            })
        )
    }

    async fn update_qs_object(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        id: &QsObjectId,
        change: queries::QsChange,
    ) -> Result<Doc, MetastoreError> {
        run!(
            self.write("updating a query object", [tenant, id, change], |conn| {
                queries::update(conn, &tenant, kind, &id, &change)
            })
        )
    }

    async fn delete_qs_object(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        id: &QsObjectId,
    ) -> Result<bool, MetastoreError> {
        run!(self.write("deleting a query object", [tenant, id], |conn| {
            queries::delete(conn, &tenant, kind, &id)
        }))
    }

    async fn insert_flow_object(
        &self,
        tenant: &Tenant,
        kind: FlowKind,
        doc: Doc,
        reference: &Reference,
    ) -> Result<Doc, MetastoreError> {
        run!(
            self.write("storing a flow object", [tenant, doc, reference], |conn| {
                stream::insert_object(conn, &tenant, kind, doc, &reference)
            })
        )
    }

    async fn get_flow_object(
        &self,
        tenant: &Tenant,
        kind: FlowKind,
        id: &str,
    ) -> Result<Option<Doc>, MetastoreError> {
        run!(self.read("reading a flow object", [tenant, id], |conn| {
            stream::get_object(conn, &tenant, kind, &id)
        }))
    }

    async fn list_flow_objects(
        &self,
        tenant: &Tenant,
        kind: FlowKind,
    ) -> Result<Vec<Doc>, MetastoreError> {
        run!(self.read("listing flow objects", [tenant], |conn| {
            stream::list_objects(conn, &tenant, kind)
        }))
    }

    async fn delete_flow_object(
        &self,
        tenant: &Tenant,
        kind: FlowKind,
        id: &str,
    ) -> Result<bool, MetastoreError> {
        run!(self.write("deleting a flow object", [tenant, id], |conn| {
            stream::delete_object(conn, &tenant, kind, &id)
        }))
    }

    async fn inlet(&self, inlet_id: &str) -> Result<Option<Inlet>, MetastoreError> {
        run!(self.read("finding an inlet", [inlet_id], |conn| {
            stream::inlet(conn, &inlet_id)
        }))
    }

    async fn append_stream_groups(
        &self,
        groups: Vec<StreamAppend>,
        now: i64,
    ) -> Result<Vec<AppendOutcome>, MetastoreError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        run!(self.write("appending stream records", [groups], |conn| {
            stream::append(conn, &groups, now)
        }))
    }

    async fn seal_stream_segments(
        &self,
        opened_before: i64,
        max_bytes: u64,
        now: i64,
    ) -> Result<Vec<SealedSegment>, MetastoreError> {
        let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let sealed = run!(self.write("sealing stream segments", [], |conn| {
            stream::seal_due(conn, opened_before, max_bytes, 100, now)
        }))?;
        if !sealed.is_empty() {
            self.ring();
        }
        Ok(sealed)
    }

    async fn requeue_stalled_segments(
        &self,
        sealed_before: i64,
        now: i64,
    ) -> Result<Vec<SealedSegment>, MetastoreError> {
        let requeued = run!(
            self.write("requeueing stalled stream segments", [], |conn| {
                stream::requeue_stalled(conn, sealed_before, 100, now)
            })
        )?;
        if !requeued.is_empty() {
            self.ring();
        }
        Ok(requeued)
    }

    async fn stream_segment(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        after: Option<i64>,
        max_bytes: u64,
    ) -> Result<Option<StreamSegment>, MetastoreError> {
        run!(
            self.read("reading a stream segment", [tenant, batch_id], |conn| {
                stream::segment(conn, &tenant, &batch_id, after, max_bytes)
            })
        )
    }

    async fn submit_stream_segment(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        upload_id: &str,
        size: u64,
        now: i64,
    ) -> Result<bool, MetastoreError> {
        run!(self.write(
            "submitting a stream segment",
            [tenant, batch_id, upload_id],
            |conn| stream::submit(conn, &tenant, &batch_id, &upload_id, size, now)
        ))
    }

    async fn ping(&self) -> Result<(), MetastoreError> {
        run!(self.read("pinging the database", [], |conn| {
            crate::backend::fetch_one::<_, i64>(conn, "pinging the database", "SELECT 1", &[])
        }))?;
        Ok(())
    }
}
