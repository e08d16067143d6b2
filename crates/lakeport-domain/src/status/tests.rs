use super::*;
use BatchAction::*;
use BatchStatus::*;
use CompletionRequested as Started;

#[track_caller]
fn check(from: BatchStatus, action: BatchAction, started: Started, expected: &str) {
    let actual = match from.apply(action, started) {
        Ok(Transition::To(next)) => next.to_string(),
        Ok(Transition::NoOp) => "no-op".to_owned(),
        Err(err) => format!("error: {err}"),
    };
    assert_eq!(actual, expected);
}

#[test]
fn complete_moves_loading_to_staging_and_is_safe_to_repeat() {
    check(Loading, Complete, Started::No, "staging");
    for status in [Staging, Processing, Retrying, Stalled, Success, Failed] {
        check(status, Complete, Started::Yes, "no-op");
    }
}

#[test]
fn complete_is_refused_on_batches_never_completed() {
    check(
        Aborted,
        Complete,
        Started::No,
        "error: action COMPLETE is not allowed on a batch in status 'aborted' (only a loading batch can be completed)",
    );
    check(
        Abandoned,
        Complete,
        Started::No,
        "error: action COMPLETE is not allowed on a batch in status 'abandoned' (only a loading batch can be completed)",
    );
    check(
        Failed,
        Complete,
        Started::No,
        "error: action COMPLETE is not allowed on a batch in status 'failed' (only a loading batch can be completed)",
    );
    check(
        Aborted,
        Complete,
        Started::Yes,
        "error: action COMPLETE is not allowed on a batch in status 'aborted' (only a loading batch can be completed)",
    );
}

#[test]
fn abort_and_fail_from_every_non_terminal_state() {
    for status in [Loading, Loaded, Staging, Processing, Retrying, Stalled] {
        check(status, Abort, Started::No, "aborted");
        check(status, Fail, Started::No, "failed");
    }
    check(Aborted, Abort, Started::No, "no-op");
    check(Failed, Fail, Started::Yes, "no-op");
    check(
        Success,
        Abort,
        Started::Yes,
        "error: action ABORT is not allowed on a batch in status 'success' (only a batch that has not finished can be aborted)",
    );
    check(
        Aborted,
        Fail,
        Started::No,
        "error: action FAIL is not allowed on a batch in status 'aborted' (only a batch that has not finished can be failed)",
    );
}

#[test]
fn revert_only_from_success() {
    check(Success, Revert, Started::Yes, "inactive");
    check(Inactive, Revert, Started::Yes, "no-op");
    check(Deleted, Revert, Started::Yes, "no-op");
    check(
        Loading,
        Revert,
        Started::No,
        "error: action REVERT is not allowed on a batch in status 'loading' (only a successful batch can be reverted)",
    );
}

#[test]
fn statuses_parse_with_synonyms_and_print_canonically() {
    assert_eq!("active".parse::<BatchStatus>().unwrap(), Success);
    assert_eq!("FAILURE".parse::<BatchStatus>().unwrap(), Failed);
    assert_eq!("Loading".parse::<BatchStatus>().unwrap(), Loading);
    assert!("done".parse::<BatchStatus>().is_err());
    for (status, name) in ALL {
        assert_eq!(status.to_string(), name);
        assert_eq!(name.parse::<BatchStatus>().unwrap(), status);
    }
    assert!(Success.is_terminal() && !Staging.is_terminal());
}

#[test]
fn actions_parse_case_insensitively() {
    assert_eq!("complete".parse::<BatchAction>().unwrap(), Complete);
    assert_eq!("Abort".parse::<BatchAction>().unwrap(), Abort);
    let err = "REPLAY".parse::<BatchAction>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "action \"REPLAY\" is not one of: COMPLETE, ABORT, FAIL, REVERT"
    );
}
