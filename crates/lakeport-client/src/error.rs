//! What can go wrong when calling an AEP-compatible endpoint.

use serde_json::Value;

/// A failed call: the endpoint could not be reached, refused the credentials, answered
/// with an error, or answered something this client cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid {name}: {reason}")]
    InvalidSetting { name: &'static str, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The gateway refused the headers (spec §1.2: flat `{error_code, message}` body).
    #[error("{request} was refused: {status} {message} (error_code {code})")]
    Refused {
        /// Method and path, e.g. `GET /data/foundation/catalog/dataSets`.
        request: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The service answered with an error status (problem body of spec §1.6 when there is
    /// one).
    #[error("{request}: {status} {}: {}", problem.title, problem.detail)]
    Api {
        /// Method and path, e.g. `GET /data/foundation/catalog/dataSets`.
        request: String,
        status: u16,
        problem: Box<Problem>,
    },
    #[error("unexpected answer to {request}: {reason}")]
    Decode { request: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The readable part of an error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The problem `type`, e.g. `http://ns.adobe.com/aep/errors/CAT-9004-404`.
    pub error_type: Option<String>,
    pub title: String,
    pub detail: String,
}

impl ClientError {
    /// Returns the HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } | Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Returns whether the server said the resource (or the route) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Returns whether the server refused the token, API key or organization.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Refused { .. }) || matches!(self.status(), Some(401 | 403))
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// Builds the error for a non-2xx answer from its body.
    pub(crate) fn from_answer(method: &str, path: &str, status: u16, body: &[u8]) -> Self {
        let request = request_line(method, path);
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let text = |value: &Value| -> Option<String> {
            value.as_str().map(one_line).filter(|s| !s.is_empty())
        };
        if let Some(json) = &json {
            if let Some(code) = json.get("error_code") {
                return Self::Refused {
                    request,
                    status,
                    code: code
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| code.to_string()),
                    message: json
                        .get("message")
                        .and_then(text)
                        .unwrap_or_else(|| "no message".to_owned()),
                };
            }
            let title = json.get("title").and_then(text);
            let detail = json
                .get("detail")
                .and_then(text)
                .or_else(|| json.get("message").and_then(text))
                // Schema Registry problems carry the useful text in the report.
                .or_else(|| json.pointer("/report/detailed-message").and_then(text));
            if title.is_some() || detail.is_some() {
                return Self::Api {
                    request,
                    status,
                    problem: Box::new(Problem {
                        error_type: json.get("type").and_then(text),
                        title: title.unwrap_or_else(|| reason_phrase(status).to_owned()),
                        detail: detail.unwrap_or_default(),
                    }),
                };
            }
        }
        let body_text = one_line(&String::from_utf8_lossy(body));
        let detail = if body_text.chars().count() > 300 {
            format!("{}…", body_text.chars().take(300).collect::<String>())
        } else if body_text.is_empty() {
            "(empty body)".to_owned()
        } else {
            body_text
        };
        Self::Api {
            request,
            status,
            problem: Box::new(Problem {
                error_type: None,
                title: reason_phrase(status).to_owned(),
                detail,
            }),
        }
    }
}

/// Returns `METHOD /path` without the query string.
pub(crate) fn request_line(method: &str, path: &str) -> String {
    format!("{method} {}", path.split('?').next().unwrap_or(path))
}

/// Folds whitespace runs (newlines included) into single spaces so an error stays on one
/// line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}
