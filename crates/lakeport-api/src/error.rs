//! The only place that turns failures into HTTP statuses and bodies.
//!
//! Service errors use the problem shape of spec §1.6; handlers return an [`ApiError`],
//! which travels to the [`render_problems`](crate::context::render_problems) middleware as
//! a response extension. That middleware knows the tenant and request id, writes the body
//! (with `report` and `errorId`) and logs internal errors once, with their cause chain.
//! Gateway-level header failures use the flat `{error_code, message}` body of §1.2.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lakeport_domain::catalog::DocumentError;
use lakeport_domain::query::QueryError;
use lakeport_domain::{ErrorKind, HasKind};
use lakeport_metastore::MetastoreError;
use serde_json::json;

/// The AEP service an error comes from; it sets the prefix of the error `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Catalog,
    Ingest,
    Registry,
    /// The Data Access API (`/data/foundation/export`); `DAS` is our choice (spec §1.6).
    Access,
    /// The Flow Service subset (`FLOW`, project-assigned, spec §10).
    Flow,
    /// The Query Service (`QS`, project-assigned, spec §11).
    Query,
    Gateway,
}

impl Service {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Self::Catalog => "CAT",
            Self::Ingest => "INGEST",
            Self::Registry => "XDM",
            Self::Access => "DAS",
            Self::Flow => "FLOW",
            Self::Query => "QS",
            Self::Gateway => "LAKEPORT",
        }
    }
}

/// A failure answered with the problem body of spec §1.6.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// `<PREFIX>-<NNNN>-<HTTP>`, the suffix of `type`.
    pub code: String,
    pub title: String,
    pub detail: String,
    /// For internal errors: the full cause chain, logged but never sent.
    pub cause: Option<String>,
}

impl ApiError {
    /// Returns an error with a project-assigned code number of a service. Private: every
    /// status and code is chosen in this module, by a named constructor.
    fn new(
        service: Service,
        number: u16,
        status: StatusCode,
        title: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: format!("{}-{number}-{}", service.prefix(), status.as_u16()),
            title: title.to_owned(),
            detail: detail.into(),
            cause: None,
        }
    }

    /// Returns a 400 for a body without a usable `Content-Type` (spec §1.2).
    pub fn content_type(service: Service, detail: impl Into<String>) -> Self {
        let number = body_number(service);
        Self::new(
            service,
            number,
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            detail,
        )
    }

    /// Returns a 400 for a body that is not valid for the call.
    pub fn invalid_body(service: Service, detail: impl Into<String>) -> Self {
        let number = body_number(service);
        Self::new(
            service,
            number,
            StatusCode::BAD_REQUEST,
            "Invalid request body",
            detail,
        )
    }

    /// Returns a 400 for an invalid query parameter.
    pub fn invalid_query(service: Service, detail: impl Into<String>) -> Self {
        let number = match service {
            Service::Catalog => 9001,
            Service::Registry => 9002,
            Service::Access => 9004,
            Service::Query => 9001,
            _ => 9015,
        };
        Self::new(
            service,
            number,
            StatusCode::BAD_REQUEST,
            "Invalid query parameter",
            detail,
        )
    }

    /// Returns a 404 for an unknown object.
    pub fn not_found(service: Service, detail: impl Into<String>) -> Self {
        let number = match service {
            Service::Catalog => 9004,
            // Adobe's documented "resource not found" code of the registry.
            Service::Registry => 1012,
            Service::Access => 9001,
            Service::Flow => 9005,
            _ => 9003,
        };
        Self::new(service, number, StatusCode::NOT_FOUND, "Not found", detail)
    }

    /// Returns a 500 whose cause is logged and never shown.
    pub fn internal(service: Service, cause: &dyn std::error::Error) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(next) = source {
            chain.push_str(": ");
            chain.push_str(&next.to_string());
            source = next.source();
        }
        Self {
            cause: Some(chain),
            ..Self::new(
                service,
                9999,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
                "The server failed to handle the request; the errorId identifies it in the server log.",
            )
        }
    }

    /// Maps an object storage failure: a missing object is a 404, a store that fails or
    /// cannot be reached a 503 the client may retry, anything else a 500.
    pub fn from_storage(service: Service, err: &lakeport_storage::StorageError) -> Self {
        use lakeport_storage::StorageError;
        match err {
            StorageError::NotFound { .. } => Self::not_found(service, err.to_string()),
            StorageError::Store { .. } => Self {
                cause: Some(err.to_string()),
                ..Self::new(
                    service,
                    9997,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Object storage unavailable",
                    "The object store failed or could not be reached; nothing was changed, retry the request.",
                )
            },
            _ => Self::internal(service, err),
        }
    }

    /// Maps a metastore failure of a call to the given service.
    pub fn from_metastore(service: Service, err: MetastoreError) -> Self {
        match (&err, service) {
            (MetastoreError::InvalidDocument(inner), _) => Self::from_document(service, inner),
            (
                MetastoreError::NotFound { .. }
                | MetastoreError::ResourceNotFound { .. }
                | MetastoreError::QsNotFound { .. },
                _,
            ) => Self::not_found(service, err.to_string()),
            (MetastoreError::DuplicateTitle { .. }, _) => {
                // Adobe answers a duplicate title with XDM-3005 (spec §1.6, §5.3).
                Self::new(
                    Service::Registry,
                    3005,
                    StatusCode::BAD_REQUEST,
                    "Duplicate title",
                    err.to_string(),
                )
            }
            (MetastoreError::ResourceExists { .. }, _) => Self::new(
                service,
                9006,
                StatusCode::BAD_REQUEST,
                "Resource already exists",
                err.to_string(),
            ),
            (MetastoreError::BatchNotLoading { .. }, _) => Self::new(
                Service::Ingest,
                9001,
                StatusCode::BAD_REQUEST,
                "Batch is not accepting uploads",
                err.to_string(),
            ),
            (MetastoreError::WrongDataset { .. }, _) => Self::new(
                Service::Ingest,
                9002,
                StatusCode::BAD_REQUEST,
                "Dataset differs from the batch's dataset",
                err.to_string(),
            ),
            (MetastoreError::LimitExceeded(_), Service::Query) => Self::new(
                service,
                9010,
                StatusCode::BAD_REQUEST,
                "Limit exceeded",
                err.to_string(),
            ),
            (MetastoreError::LimitExceeded(_), _) => Self::new(
                Service::Ingest,
                9009,
                StatusCode::BAD_REQUEST,
                "Batch limit exceeded",
                err.to_string(),
            ),
            (MetastoreError::InvalidSignal { .. }, _) => Self::new(
                Service::Ingest,
                9010,
                StatusCode::BAD_REQUEST,
                "Action not allowed",
                err.to_string(),
            ),
            (MetastoreError::UploadNotStarted { .. }, _) => Self::new(
                Service::Ingest,
                9003,
                StatusCode::NOT_FOUND,
                "Upload not found",
                err.to_string(),
            ),
            (MetastoreError::InvalidQuery(_), _) => Self::invalid_query(service, err.to_string()),
            (MetastoreError::InvalidReference(_), _) => Self::new(
                service,
                9003,
                StatusCode::BAD_REQUEST,
                "Invalid reference",
                err.to_string(),
            ),
            (MetastoreError::InUse(_), _) => Self::new(
                service,
                9004,
                StatusCode::BAD_REQUEST,
                "Still in use",
                err.to_string(),
            ),
            (MetastoreError::LostLease { .. }, _) => Self::internal(service, &err),
            (MetastoreError::StateConflict(_), _) => Self::new(
                service,
                9008,
                StatusCode::CONFLICT,
                "Conflict",
                err.to_string(),
            ),
            (MetastoreError::TooManyRequests(_), _) => Self::new(
                service,
                9009,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                err.to_string(),
            ),
            (MetastoreError::ConcurrentChange { .. }, _) => Self::new(
                service,
                9007,
                StatusCode::CONFLICT,
                "Concurrent change",
                err.to_string(),
            ),
            (MetastoreError::VersionMismatch { .. }, _) => Self::new(
                service,
                9005,
                StatusCode::PRECONDITION_FAILED,
                "Precondition failed",
                err.to_string(),
            ),
            (MetastoreError::DuplicateExternalId { .. }, Service::Ingest) => Self::new(
                service,
                9011,
                StatusCode::BAD_REQUEST,
                "Duplicate externalId",
                err.to_string(),
            ),
            (MetastoreError::InvalidReplay(_), _) => Self::new(
                Service::Ingest,
                9012,
                StatusCode::BAD_REQUEST,
                "Invalid replay predecessor",
                err.to_string(),
            ),
            (MetastoreError::UnknownDataset { .. }, _) => Self::new(
                service,
                9014,
                StatusCode::BAD_REQUEST,
                "Unknown dataset",
                err.to_string(),
            ),
            (
                MetastoreError::AlreadyExists { .. } | MetastoreError::DuplicateExternalId { .. },
                _,
            ) => Self::new(
                service,
                9006,
                StatusCode::BAD_REQUEST,
                "Object already exists",
                err.to_string(),
            ),
            (MetastoreError::Unavailable(_), _) => Self {
                cause: Some(err.to_string()),
                ..Self::new(
                    service,
                    9998,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service unavailable",
                    "The metadata store is temporarily unavailable; retry the request.",
                )
            },
            (MetastoreError::Backend { .. }, _) => Self::internal(service, &err),
        }
    }

    /// Maps an invalid document to a 400 with the field path in the detail.
    pub fn from_document(service: Service, err: &DocumentError) -> Self {
        Self::invalid_body(service, err.to_string())
    }

    /// Maps a query error to a 400 naming the parameter.
    pub fn from_query(service: Service, err: &QueryError) -> Self {
        Self::invalid_query(service, err.to_string())
    }

    /// Returns the kind of failure, for callers that branch on it.
    pub fn kind(&self) -> ErrorKind {
        match self.status {
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::PRECONDITION_FAILED => ErrorKind::PreconditionFailed,
            StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Unavailable,
            status if status.is_server_error() => ErrorKind::Internal,
            _ => ErrorKind::InvalidInput,
        }
    }
}

/// The named errors of the services: each picks its code number, status and title here;
/// handlers only say what went wrong (`detail`).
impl ApiError {
    /// 404: no route matches the path.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            Service::Gateway,
            9404,
            StatusCode::NOT_FOUND,
            "Not found",
            format!("no route matches {path}"),
        )
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed(method: &axum::http::Method, path: &str) -> Self {
        Self::new(
            Service::Gateway,
            9405,
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            format!("{method} is not supported on {path}"),
        )
    }

    /// 414: the request target is longer than `max` characters.
    pub fn uri_too_long(length: usize, max: usize) -> Self {
        Self::new(
            Service::Gateway,
            9414,
            StatusCode::URI_TOO_LONG,
            "URI too long",
            format!("the request target is {length} characters; at most {max} are accepted"),
        )
    }

    /// 413: a request body over its limit.
    pub fn payload_too_large(service: Service, detail: impl Into<String>) -> Self {
        Self::new(
            service,
            9016,
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload too large",
            detail,
        )
    }

    /// The problem for an error that an extractor or another layer answered with a bare
    /// status: the same status (a 422 of a body extractor becomes a 400), `detail` its text.
    pub fn from_bare_status(service: Service, status: StatusCode, detail: String) -> Self {
        match status {
            StatusCode::BAD_REQUEST if detail.starts_with("Invalid URL") => Self::invalid_query(
                service,
                format!("the request path cannot be decoded: {detail}"),
            ),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Self::invalid_body(service, detail)
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::content_type(service, detail),
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(service, detail),
            status if status.is_server_error() => {
                let cause = std::io::Error::other(detail);
                let mut problem = Self::internal(service, &cause);
                problem.status = status;
                problem.code = format!("{}-9999-{}", service.prefix(), status.as_u16());
                problem
            }
            status => Self::new(
                service,
                9000 + status.as_u16(),
                status,
                status.canonical_reason().unwrap_or("Request failed"),
                detail,
            ),
        }
    }

    /// Catalog 400: a dataset's `schemaRef.id` names no schema of the sandbox.
    pub fn unknown_schema(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Catalog,
            9003,
            StatusCode::BAD_REQUEST,
            "Unknown schema",
            detail,
        )
    }

    /// Registry 403: a write to the read-only global container.
    pub fn read_only_container(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Registry,
            9008,
            StatusCode::FORBIDDEN,
            "Read-only container",
            detail,
        )
    }

    /// Registry 400: a list call with an `Accept` header it cannot answer.
    pub fn invalid_accept(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Registry,
            1006,
            StatusCode::BAD_REQUEST,
            "Invalid Accept header",
            detail,
        )
    }

    /// Registry 400: a lookup's `Accept` header without the major version.
    pub fn accept_version_missing(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Registry,
            1007,
            StatusCode::BAD_REQUEST,
            "Missing version in Accept header",
            detail,
        )
    }

    /// Registry 406: no representation the `Accept` header allows.
    pub fn not_acceptable(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Registry,
            9009,
            StatusCode::NOT_ACCEPTABLE,
            "Not acceptable",
            detail,
        )
    }

    /// Registry 400: a change that would break a schema in use.
    pub fn breaking_schema_change(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Registry,
            9003,
            StatusCode::BAD_REQUEST,
            "Breaking schema change",
            detail,
        )
    }

    /// Registry 400: a resource that a dataset or another resource still uses.
    pub fn resource_in_use(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Registry,
            9004,
            StatusCode::BAD_REQUEST,
            "Resource in use",
            detail,
        )
    }

    /// Ingest 400: an upload body that ended early.
    pub fn incomplete_body(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9006,
            StatusCode::BAD_REQUEST,
            "Incomplete body",
            detail,
        )
    }

    /// Ingest 413: an upload over the single-request limit.
    pub fn upload_too_large(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9008,
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload too large",
            detail,
        )
    }

    /// Ingest 400: an `action` the call does not know.
    pub fn invalid_action(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9010,
            StatusCode::BAD_REQUEST,
            "Invalid action",
            detail,
        )
    }

    /// Ingest 400: a file path that cannot name a file of a batch.
    pub fn invalid_file_path(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9017,
            StatusCode::BAD_REQUEST,
            "Invalid file path",
            detail,
        )
    }

    /// Ingest 415: file bytes sent with another media type than `application/octet-stream`.
    pub fn upload_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9004,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            detail,
        )
    }

    /// Ingest 400: a completed chunked upload whose chunks do not tile the file.
    pub fn chunks_do_not_tile(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9007,
            StatusCode::BAD_REQUEST,
            "Chunks do not tile the file",
            detail,
        )
    }

    /// Ingest 400: a chunk's `Content-Range` that cannot be used.
    pub fn invalid_content_range(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9006,
            StatusCode::BAD_REQUEST,
            "Invalid Content-Range",
            detail,
        )
    }

    /// Ingest 416: a chunk that ends past the largest file a batch may hold.
    pub fn chunk_out_of_range(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9020,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Range not satisfiable",
            detail,
        )
    }

    /// Ingest 501: the server was built without an upload previewer.
    pub fn previewer_missing() -> Self {
        Self::new(
            Service::Ingest,
            9018,
            StatusCode::NOT_IMPLEMENTED,
            "Preview unavailable",
            "this server has no previewer",
        )
    }

    /// Ingest 415: a preview `format` other than json, parquet or csv.
    pub fn unsupported_preview_format(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9004,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported format",
            detail,
        )
    }

    /// Ingest 400: an uploaded file that cannot be previewed with the given options.
    pub fn preview_failed(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Ingest,
            9019,
            StatusCode::BAD_REQUEST,
            "Preview failed",
            detail,
        )
    }

    /// Data Access 400: a call that needs `?path=`.
    pub fn path_missing(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Access,
            9002,
            StatusCode::BAD_REQUEST,
            "Path missing",
            detail,
        )
    }

    /// Data Access 416: a `Range` that starts at or past the end of the file.
    pub fn range_not_satisfiable(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Access,
            9003,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Range not satisfiable",
            detail,
        )
    }

    /// Data Access 501: the server was built without a Parquet row reader.
    pub fn row_reader_missing() -> Self {
        Self::new(
            Service::Access,
            9005,
            StatusCode::NOT_IMPLEMENTED,
            "Preview unavailable",
            "this server has no Parquet reader",
        )
    }

    /// Data Access 501: the server reads no Delta tables, so a preview as of a version
    /// cannot be served.
    pub fn tables_missing() -> Self {
        Self::new(
            Service::Access,
            9005,
            StatusCode::NOT_IMPLEMENTED,
            "Preview unavailable",
            "this server reads no Delta tables",
        )
    }

    /// Flow Service 400: a request the Flow Service subset refuses.
    /// Returns a 400 for a Query Service request body that is not valid for the call.
    pub fn qs_invalid_request(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Query,
            9001,
            StatusCode::BAD_REQUEST,
            "Invalid request",
            detail,
        )
    }

    /// Returns a 400 for SQL the engine refuses (syntax, unknown table or column, a
    /// statement the Query Service does not run).
    pub fn invalid_sql(detail: impl Into<String>) -> Self {
        Self::new(
            Service::Query,
            9002,
            StatusCode::BAD_REQUEST,
            "Invalid SQL",
            detail,
        )
    }

    /// Returns a 503 when the server runs no SQL engine behind the Query Service.
    pub fn query_engine_missing() -> Self {
        Self::new(
            Service::Query,
            9503,
            StatusCode::SERVICE_UNAVAILABLE,
            "Query engine unavailable",
            "this server runs no SQL engine (a build without the Query Service)",
        )
    }

    /// Returns a 503 for connection parameters when the wire endpoint is turned off.
    pub fn wire_endpoint_off() -> Self {
        Self::new(
            Service::Query,
            9504,
            StatusCode::SERVICE_UNAVAILABLE,
            "Wire endpoint off",
            "the PostgreSQL wire endpoint is turned off on this server (query.enabled = false)",
        )
    }

    pub fn flow_request(err: &lakeport_domain::flow::FlowRequestError) -> Self {
        use lakeport_domain::flow::FlowRequestError;
        let number = match err {
            FlowRequestError::UnsupportedSpec(_) => 9001,
            FlowRequestError::InvalidBody(_) => 9002,
        };
        Self::new(
            Service::Flow,
            number,
            StatusCode::BAD_REQUEST,
            "Invalid request",
            err.to_string(),
        )
    }
}

fn body_number(service: Service) -> u16 {
    match service {
        Service::Catalog => 9002,
        Service::Registry => 9001,
        _ => 9013,
    }
}

impl From<(Service, MetastoreError)> for ApiError {
    fn from((service, err): (Service, MetastoreError)) -> Self {
        Self::from_metastore(service, err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The body is written by `render_problems`, which knows the tenant and request id.
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl HasKind for ApiError {
    fn kind(&self) -> ErrorKind {
        ApiError::kind(self)
    }
}

/// A failure of the gateway layer (token, API key, org and sandbox headers), answered with
/// the flat body `{"error_code", "message"}` of spec §1.2.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub status: StatusCode,
    pub error_code: &'static str,
    pub message: String,
}

impl GatewayError {
    fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }

    /// 403 403010: no `Authorization` header.
    pub fn token_missing() -> Self {
        Self::new(StatusCode::FORBIDDEN, "403010", "OAuth token is missing")
    }

    /// 401 401013: a token no rule knows.
    pub fn token_invalid() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "401013",
            "OAuth token is not valid",
        )
    }

    /// 403 403000: no `x-api-key`.
    pub fn api_key_required() -> Self {
        Self::new(StatusCode::FORBIDDEN, "403000", "Api Key is required")
    }

    /// 403 403003: an `x-api-key` that is not allowed.
    pub fn api_key_invalid() -> Self {
        Self::new(StatusCode::FORBIDDEN, "403003", "Api Key is invalid")
    }

    /// 400 400003: a gateway header missing or malformed.
    pub fn invalid_header(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "400003", message)
    }

    /// 403 403027: an org id that is not an IMS organization.
    pub fn user_region_missing(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "403027", message)
    }

    /// 403 403025: a token not entitled to the organization.
    pub fn profile_not_valid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "403025", message)
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.error_code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

/// A refusal of a streaming inlet (`/collection`), answered with the Data Collection
/// shape (`type`, `status`, `title`, `report.message`, spec §10.4) instead of §1.6's.
#[derive(Debug, Clone)]
pub struct InletProblem {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    report: serde_json::Value,
    retry_after: bool,
}

const INLET_PROBLEM: &str = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet";
const INLET_AUTH_PROBLEM: &str =
    "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization";

impl InletProblem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, message: String) -> Self {
        Self {
            status,
            kind,
            title,
            report: json!({"message": message}),
            retry_after: false,
        }
    }

    /// 400: a message or request the inlet cannot take.
    pub fn invalid_message(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            INLET_PROBLEM,
            "Invalid XDM Message Format",
            message.into(),
        )
    }

    /// 400: a message that failed synchronous validation, with its `_streamingValidation`
    /// report as the cause.
    pub fn invalid_record(message: impl Into<String>, validation: serde_json::Value) -> Self {
        let mut problem = Self::invalid_message(message);
        problem.report["cause"] = json!({"_streamingValidation": validation});
        problem
    }

    /// 404: no streaming connection has the inlet id.
    pub fn inlet_not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            INLET_PROBLEM,
            "Inlet not found",
            message.into(),
        )
    }

    /// 401: an authenticated inlet called without a valid token (Lakeport sends the integer
    /// status; Adobe writes it as a string and sometimes answers 403).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            INLET_AUTH_PROBLEM,
            "Authorization",
            message.into(),
        )
    }

    /// 403: a token not entitled to the inlet's organization.
    pub fn not_entitled(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            INLET_AUTH_PROBLEM,
            "Authorization",
            message.into(),
        )
    }

    /// 415: a body that is not JSON.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INLET_PROBLEM,
            "Unsupported Media Type",
            message.into(),
        )
    }

    /// 413: a body over `stream.max_body_bytes`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            INLET_PROBLEM,
            "Payload Too Large",
            message.into(),
        )
    }

    /// 503 with `Retry-After: 1`: the records could not be stored durably.
    pub fn unavailable() -> Self {
        Self::busy(
            "The records could not be stored durably; nothing was acknowledged. Retry the request.",
        )
    }

    /// 503 with `Retry-After: 1` and the reason nothing was acknowledged (the append queue
    /// is full, the routing kept changing): the client retries the whole request.
    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            retry_after: true,
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                INLET_PROBLEM,
                "Service Unavailable",
                message.into(),
            )
        }
    }
}

impl IntoResponse for InletProblem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": self.kind,
            "status": self.status.as_u16(),
            "title": self.title,
            "report": self.report,
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
