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
    /// Returns an error with a project-assigned code number of a service.
    pub fn new(
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
            (MetastoreError::NotFound { .. } | MetastoreError::ResourceNotFound { .. }, _) => {
                Self::not_found(service, err.to_string())
            }
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
    pub fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.error_code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}
