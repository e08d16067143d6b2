//! The batch state machine of spec §6, as pure functions.

use std::fmt;
use std::str::FromStr;

/// The lifecycle status of a batch. Synonyms (`active`, `failure`) parse to their
/// canonical variant; the server only ever emits canonical names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchStatus {
    Loading,
    Loaded,
    Queued,
    Staging,
    Processing,
    Staged,
    Retrying,
    Stalled,
    Success,
    Failed,
    Aborted,
    Abandoned,
    Inactive,
    Deleted,
    Archived,
    Retained,
}

/// A client signal sent with `POST /import/batches/{id}?action=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchAction {
    Complete,
    Abort,
    Fail,
    Revert,
}

/// Whether a batch has ever been accepted for completion (its `started` field is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionRequested {
    Yes,
    No,
}

/// What a legal signal does to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The batch moves to this status.
    To(BatchStatus),
    /// The signal's effect already happened; answer 200 and change nothing.
    NoOp,
}

/// A signal that is not allowed in the batch's current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("action {action} is not allowed on a batch in status '{status}'{hint}", hint = hint(*action))]
pub struct InvalidTransition {
    pub status: BatchStatus,
    pub action: BatchAction,
}

fn hint(action: BatchAction) -> &'static str {
    match action {
        BatchAction::Complete => " (only a loading batch can be completed)",
        BatchAction::Abort => " (only a batch that has not finished can be aborted)",
        BatchAction::Fail => " (only a batch that has not finished can be failed)",
        BatchAction::Revert => " (only a successful batch can be reverted)",
    }
}

/// An unknown status or action name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not one of: {allowed}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub allowed: &'static str,
}

const ALL: [(BatchStatus, &str); 16] = [
    (BatchStatus::Loading, "loading"),
    (BatchStatus::Loaded, "loaded"),
    (BatchStatus::Queued, "queued"),
    (BatchStatus::Staging, "staging"),
    (BatchStatus::Processing, "processing"),
    (BatchStatus::Staged, "staged"),
    (BatchStatus::Retrying, "retrying"),
    (BatchStatus::Stalled, "stalled"),
    (BatchStatus::Success, "success"),
    (BatchStatus::Failed, "failed"),
    (BatchStatus::Aborted, "aborted"),
    (BatchStatus::Abandoned, "abandoned"),
    (BatchStatus::Inactive, "inactive"),
    (BatchStatus::Deleted, "deleted"),
    (BatchStatus::Archived, "archived"),
    (BatchStatus::Retained, "retained"),
];

const STATUS_NAMES: &str = "loading, loaded, queued, staging, processing, staged, retrying, stalled, success (active), failed (failure), aborted, abandoned, inactive, deleted, archived, retained";

impl BatchStatus {
    /// Returns the canonical lower-case name the server emits.
    pub fn as_str(self) -> &'static str {
        ALL.iter()
            .find(|(status, _)| *status == self)
            .map(|(_, name)| *name)
            .expect("every status has a name")
    }

    /// Returns true when no further processing happens in this status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Success
                | Self::Failed
                | Self::Aborted
                | Self::Abandoned
                | Self::Inactive
                | Self::Deleted
                | Self::Archived
                | Self::Retained
        )
    }

    /// Returns the status a signal moves the batch to, or says that it is a no-op.
    ///
    /// # Errors
    /// Returns [`InvalidTransition`] when the signal is not allowed in this status; the
    /// batch must then stay unchanged.
    pub fn apply(
        self,
        action: BatchAction,
        completion: CompletionRequested,
    ) -> Result<Transition, InvalidTransition> {
        use BatchStatus::*;
        let invalid = Err(InvalidTransition {
            status: self,
            action,
        });
        match action {
            BatchAction::Complete => match self {
                Loading => Ok(Transition::To(Staging)),
                // COMPLETE is safe to retry once it has been accepted (spec §3.7).
                Loaded | Staging | Processing | Staged | Retrying | Stalled | Success | Failed
                    if completion == CompletionRequested::Yes =>
                {
                    Ok(Transition::NoOp)
                }
                _ => invalid,
            },
            BatchAction::Abort => match self {
                Loading | Loaded | Queued | Staging | Processing | Staged | Retrying | Stalled => {
                    Ok(Transition::To(Aborted))
                }
                Aborted => Ok(Transition::NoOp),
                _ => invalid,
            },
            BatchAction::Fail => match self {
                Loading | Loaded | Queued | Staging | Processing | Staged | Retrying | Stalled => {
                    Ok(Transition::To(Failed))
                }
                Failed => Ok(Transition::NoOp),
                _ => invalid,
            },
            BatchAction::Revert => match self {
                Success => Ok(Transition::To(Inactive)),
                Inactive | Deleted => Ok(Transition::NoOp),
                _ => invalid,
            },
        }
    }
}

impl fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BatchStatus {
    type Err = UnknownName;

    /// Parses a status name case-insensitively, accepting the synonyms `active` and
    /// `failure` (spec §8 item 6).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let lower = value.trim().to_ascii_lowercase();
        match lower.as_str() {
            "active" => return Ok(Self::Success),
            "failure" => return Ok(Self::Failed),
            _ => {}
        }
        ALL.iter()
            .find(|(_, name)| *name == lower)
            .map(|(status, _)| *status)
            .ok_or_else(|| UnknownName {
                what: "status",
                value: value.to_owned(),
                allowed: STATUS_NAMES,
            })
    }
}

impl fmt::Display for BatchAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Complete => "COMPLETE",
            Self::Abort => "ABORT",
            Self::Fail => "FAIL",
            Self::Revert => "REVERT",
        })
    }
}

impl FromStr for BatchAction {
    type Err = UnknownName;

    /// Parses an action name case-insensitively (clients send `complete` too).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_uppercase().as_str() {
            "COMPLETE" => Ok(Self::Complete),
            "ABORT" => Ok(Self::Abort),
            "FAIL" => Ok(Self::Fail),
            "REVERT" => Ok(Self::Revert),
            _ => Err(UnknownName {
                what: "action",
                value: value.to_owned(),
                allowed: "COMPLETE, ABORT, FAIL, REVERT",
            }),
        }
    }
}

#[cfg(test)]
mod tests;
