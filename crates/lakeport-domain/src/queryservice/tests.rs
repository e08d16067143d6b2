use serde_json::json;

use super::*;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[track_caller]
fn check_listing(kind: QsKind, items: &[(&str, &str)], expected: &str) {
    let actual = match QsListing::parse(kind, &pairs(items)) {
        Ok(listing) => format!(
            "{} limit={} start={:?} filters={:?} deleted={} hidden={}",
            listing.orderby(),
            listing.limit,
            listing.start,
            listing.filters,
            listing.exclude_soft_deleted,
            listing.exclude_hidden
        ),
        Err(err) => format!("error: {err}"),
    };
    assert_eq!(actual, expected);
}

#[test]
fn listings_parse_adobes_parameters() {
    check_listing(
        QsKind::Query,
        &[],
        "-created limit=20 start=Beginning filters=[] deleted=true hidden=true",
    );
    // A `+` decoded to a space is ascending.
    check_listing(
        QsKind::Query,
        &[("orderby", " updated"), ("limit", "1000"), ("start", "40")],
        "+updated limit=1000 start=Offset(40) filters=[] deleted=true hidden=true",
    );
    check_listing(
        QsKind::Query,
        &[("start", "2024-01-31T12:00:00.000Z"), ("startId", "q1")],
        "-created limit=20 start=After { millis: 1706702400000, id: Some(\"q1\") } filters=[] deleted=true hidden=true",
    );
    check_listing(
        QsKind::Query,
        &[
            ("property", "state==success,created>=2024-01-31T12:00:00Z"),
            ("excludeHidden", "false"),
        ],
        "-created limit=20 start=Beginning filters=[QsFilter { field: State, op: Eq, value: Text(\"SUCCESS\") }, QsFilter { field: Created, op: Ge, value: Millis(1706702400000) }] deleted=true hidden=false",
    );
    check_listing(
        QsKind::Query,
        &[("limit", "1001")],
        "error: query parameter \"limit\": \"1001\" is not an integer from 1 to 1000",
    );
    check_listing(
        QsKind::Query,
        &[("orderby", "name")],
        "error: query parameter \"orderby\": \"name\" is not created or updated with an optional + or - prefix",
    );
    check_listing(
        QsKind::Query,
        &[("property", "state>SUCCESS")],
        "error: property: state takes == or != only",
    );
    check_listing(
        QsKind::Query,
        &[("property", "sql~select")],
        "error: property: cannot filter on \"sql\"; query listings filter on created, updated, state and id",
    );
    check_listing(
        QsKind::Query,
        &[("start", "yesterday")],
        "error: query parameter \"start\": \"yesterday\" is neither an offset nor an RFC 3339 timestamp of the orderby field",
    );
    check_listing(
        QsKind::Template,
        &[("property", "name~daily")],
        "-created limit=20 start=Beginning filters=[QsFilter { field: Name, op: Contains, value: Text(\"daily\") }] deleted=true hidden=true",
    );
}

#[track_caller]
fn check_query(body: serde_json::Value, expected: &str) {
    let actual = match NewQuery::parse(body, "prod") {
        Ok(query) => format!(
            "db={} sql={:?} template={:?} ctas={:?} insert={:?}",
            query.db_name, query.sql, query.template_id, query.ctas, query.insert_into
        ),
        Err(err) => format!("error: {err}"),
    };
    assert_eq!(actual, expected);
}

#[test]
fn query_bodies_are_checked() {
    check_query(
        json!({"dbName": "prod:all", "sql": "SELECT 1", "name": "n"}),
        "db=prod:all sql=Some(\"SELECT 1\") template=None ctas=None insert=None",
    );
    check_query(
        json!({"sql": "SELECT 1", "ctasParameters": {"datasetName": "out", "description": "d"}}),
        "db=prod:all sql=Some(\"SELECT 1\") template=None ctas=Some(CtasParameters { dataset_name: \"out\", description: Some(\"d\"), target_schema_title: None }) insert=None",
    );
    check_query(
        json!({"dbName": "dev:all", "sql": "SELECT 1"}),
        "error: dbName \"dev:all\" is not this sandbox's database; use \"prod:all\" (the x-sandbox-name header's sandbox)",
    );
    check_query(
        json!({"name": "n"}),
        "error: either sql or templateId is required: the statement to run",
    );
    check_query(json!({"sql": 5}), "error: sql must be a string");
    check_query(json!([1]), "error: the body must be a JSON object");
    check_query(
        json!({"sql": "x".repeat(MAX_SQL_BYTES + 1)}),
        "error: sql is 262145 bytes; at most 262144 are accepted",
    );
    check_query(
        json!({"sql": "SELECT 1", "ctasParameters": {"datasetName": "a"}, "insertIntoParameters": {"datasetName": "b"}}),
        "error: ctasParameters and insertIntoParameters exclude each other",
    );
    check_query(
        json!({"sql": "SELECT 1", "queryParameters": {"a b": "x"}}),
        "error: queryParameters: \"a b\" is not a parameter name (letters, digits and _)",
    );
}

#[test]
fn parameters_are_substituted_longest_key_first() {
    let params = json!({"a": "1", "ab": "two", "flag": true});
    let serde_json::Value::Object(params) = params else {
        unreachable!()
    };
    assert_eq!(
        substitute("SELECT $a, '$ab', $flag, $missing", &params).unwrap(),
        "SELECT 1, 'two', true, $missing"
    );
}

#[test]
fn index_reads_timestamps_state_and_flags() {
    let doc = json!({"created": "2024-01-31T12:00:00.000Z", "updated": "2024-01-31T12:00:01.500Z",
        "state": "IN_PROGRESS", "softDeleted": true});
    let serde_json::Value::Object(doc) = doc else {
        unreachable!()
    };
    assert_eq!(
        index_of(&doc),
        QsIndex {
            created: 1_706_702_400_000,
            updated: 1_706_702_401_500,
            state: Some("IN_PROGRESS"),
            deleted: true,
            hidden: false
        }
    );
    assert!(!QueryState::InProgress.is_terminal());
    assert!(QueryState::Killed.is_terminal());
}
