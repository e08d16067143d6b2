//! The closed set of failure kinds that the API maps to HTTP statuses.

/// What kind of failure an error is; the API layer maps each kind to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or not allowed in the current state (400).
    InvalidInput,
    /// The addressed object does not exist for this tenant (404).
    NotFound,
    /// An `If-Match` precondition failed (412).
    PreconditionFailed,
    /// A uniqueness or state conflict the client can resolve (400 in AEP's dialect).
    Conflict,
    /// The backend is temporarily unavailable (503).
    Unavailable,
    /// A fault inside the server (500).
    Internal,
}

/// Errors that can say which [`ErrorKind`] they are.
pub trait HasKind {
    /// Returns the kind of this failure.
    fn kind(&self) -> ErrorKind;
}
