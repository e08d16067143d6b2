//! The Catalog query conventions of spec §2.2 over HTTP.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

/// Creates `count` datasets named `ds-00`, `ds-01`, … and returns their ids in creation
/// order.
async fn datasets(app: &TestApp, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for index in 0..count {
        let tags = if index % 3 == 0 {
            json!({"team": ["blue"]})
        } else {
            json!({"team": ["red"]})
        };
        ids.push(
            app.create_dataset(
                json!({"name": format!("ds-{index:02}"), "rank": index % 5, "tags": tags,
                                       "enableErrorDiagnostics": index % 2 == 0}),
            )
            .await,
        );
    }
    ids
}

#[tokio::test]
async fn limit_defaults_to_20_is_clamped_at_100_and_checked() {
    let app = TestApp::new().await;
    let ids = datasets(&app, 25).await;
    let reply = app.get(CATALOG_DATASETS).send().await;
    assert_eq!(reply.keys(), ids[..20]);
    let reply = app
        .get(&format!("{CATALOG_DATASETS}?limit=500"))
        .send()
        .await;
    assert_eq!(reply.keys().len(), 25);
    for bad in ["0", "-1", "ten", "1.5"] {
        let reply = app
            .get(&format!("{CATALOG_DATASETS}?limit={bad}"))
            .send()
            .await;
        assert!(
            reply
                .problem(400, "CAT-9001-400")
                .contains("limit must be an integer from 1 to 100"),
            "{bad}"
        );
    }
    let strict = TestApp::with_config(|c| c.catalog.reject_limit_over_max = true).await;
    strict
        .get(&format!("{CATALOG_DATASETS}?limit=101"))
        .send()
        .await
        .problem(400, "CAT-9001-400");
}

#[tokio::test]
async fn paging_with_start_or_offset_is_stable() {
    let app = TestApp::new().await;
    let ids = datasets(&app, 25).await;
    let mut seen = Vec::new();
    let mut start = 0;
    loop {
        let reply = app
            .get(&format!("{CATALOG_DATASETS}?limit=7&start={start}"))
            .send()
            .await;
        let page = reply.keys();
        seen.extend(page.clone());
        if page.len() < 7 {
            break;
        }
        start += 7;
    }
    assert_eq!(seen, ids);
    let reply = app
        .get(&format!("{CATALOG_DATASETS}?limit=2&offset=3"))
        .send()
        .await;
    assert_eq!(reply.keys(), ids[3..5]);
    app.get(&format!("{CATALOG_DATASETS}?start=-2"))
        .send()
        .await
        .problem(400, "CAT-9001-400");
}

#[tokio::test]
async fn order_by_sort_and_projection() {
    let app = TestApp::new().await;
    let ids = datasets(&app, 6).await;
    let reply = app
        .get(&format!("{CATALOG_DATASETS}?orderBy=desc:name&limit=3"))
        .send()
        .await;
    assert_eq!(
        reply.keys(),
        [ids[5].clone(), ids[4].clone(), ids[3].clone()]
    );
    let reply = app
        .get(&format!(
            "{CATALOG_DATASETS}?sort=desc:rank,asc:name&limit=3"
        ))
        .send()
        .await;
    assert_eq!(
        reply.keys(),
        [ids[4].clone(), ids[3].clone(), ids[2].clone()]
    );
    let reply = app
        .get(&format!("{CATALOG_DATASETS}?orderBy=rank,desc:created"))
        .send()
        .await;
    assert_eq!(reply.keys()[..2], [ids[5].clone(), ids[0].clone()]);
    let reply = app
        .get(&format!(
            "{CATALOG_DATASETS}?properties=name,nothing&limit=2"
        ))
        .send()
        .await;
    assert_eq!(
        reply.body,
        json!({ids[0].clone(): {"name": "ds-00"}, ids[1].clone(): {"name": "ds-01"}})
    );
    let reply = app
        .get(&format!("{CATALOG_DATASETS}?orderBy=sideways:name"))
        .send()
        .await;
    assert!(
        reply
            .problem(400, "CAT-9001-400")
            .contains("must be asc or desc")
    );
}

#[tokio::test]
async fn simple_filters_property_expressions_and_tags() {
    let app = TestApp::new().await;
    let ids = datasets(&app, 10).await;
    let get = |query: String| {
        let app = &app;
        async move {
            app.get(&format!("{CATALOG_DATASETS}?{query}"))
                .send()
                .await
                .keys()
        }
    };
    assert_eq!(
        get("name=ds-01,ds-03".into()).await,
        [ids[1].clone(), ids[3].clone()]
    );
    assert_eq!(
        get("name=!ds-01,ds-03&limit=3".into()).await,
        [ids[0].clone(), ids[2].clone(), ids[4].clone()]
    );
    assert_eq!(
        get("name=ds-0*&rank=4".into()).await,
        [ids[4].clone(), ids[9].clone()]
    );
    assert_eq!(
        get("name=DS-0*".into()).await,
        Vec::<String>::new(),
        "wildcards are case-sensitive"
    );
    assert_eq!(
        get("enableErrorDiagnostics=false&rank=!1,3".into()).await,
        [ids[5].clone(), ids[7].clone(), ids[9].clone()]
    );
    assert_eq!(
        get("property=rank>=4".into()).await,
        [ids[4].clone(), ids[9].clone()]
    );
    assert_eq!(
        get("property=rank<1&property=name!=ds-00".into()).await,
        [ids[5].clone()]
    );
    assert_eq!(get("property=name~7$".into()).await, [ids[7].clone()]);
    assert_eq!(
        get("property=!description&limit=1".into()).await,
        [ids[0].clone()]
    );
    assert_eq!(
        get("property=description".into()).await,
        Vec::<String>::new()
    );
    assert_eq!(
        get("tags=team:blue".into()).await,
        [
            ids[0].clone(),
            ids[3].clone(),
            ids[6].clone(),
            ids[9].clone()
        ]
    );
    assert_eq!(
        get("tags=team:bl*,adobe/pqs/table:ds_03".into()).await,
        [ids[3].clone()]
    );
    assert_eq!(get("tags=team:*&limit=1".into()).await, [ids[0].clone()]);
    let created = app
        .get(&format!("{CATALOG_DATASETS}/{}", ids[4]))
        .send()
        .await
        .body[&ids[4]]["created"]
        .as_i64()
        .unwrap();
    assert!(
        get(format!("createdAfter={}", created - 1))
            .await
            .contains(&ids[4])
    );
    assert!(
        !get(format!("createdAfter={created}"))
            .await
            .contains(&ids[4])
    );
    assert!(
        get(format!("createdBefore={created}"))
            .await
            .iter()
            .all(|id| id != &ids[4])
    );

    for (query, expected) in [
        ("property=name=x", "write '=='"),
        ("property===x", "no field name"),
        ("property=rank>", "no value"),
        ("property=name~(", "not a valid regular expression"),
        ("tags=team", "must be <tag name>:<value>"),
        ("createdAfter=yesterday", "Unix epoch milliseconds"),
        ("orderBy=", "expected <asc|desc>:<field>"),
    ] {
        let reply = app.get(&format!("{CATALOG_DATASETS}?{query}")).send().await;
        assert!(
            reply.problem(400, "CAT-9001-400").contains(expected),
            "{query}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn batch_filters_relationships_and_status_synonyms() {
    let app = TestApp::new().await;
    let first = app.create_dataset(json!({"name": "a"})).await;
    let second = app.create_dataset(json!({"name": "b"})).await;
    let mut batches = Vec::new();
    for dataset in [&first, &second, &first] {
        batches.push(
            app.create_batch(json!({"datasetId": dataset})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.patch(&format!("{CATALOG_BATCHES}/{}", batches[2]))
        .json(json!({"status": "active"}))
        .send()
        .await;
    let get = |query: String| {
        let app = &app;
        async move {
            app.get(&format!("{CATALOG_BATCHES}?{query}"))
                .send()
                .await
                .keys()
        }
    };
    assert_eq!(
        get(format!("dataSet={first}")).await,
        [batches[0].clone(), batches[2].clone()]
    );
    assert_eq!(
        get(format!("dataSet={first},{second}&limit=2")).await,
        batches[..2]
    );
    assert_eq!(get("status=success".into()).await, [batches[2].clone()]);
    assert_eq!(get("status=active".into()).await, [batches[2].clone()]);
    assert_eq!(
        get(format!("status=loading&dataSet={first}")).await,
        [batches[0].clone()]
    );
    assert_eq!(get("status=!loading".into()).await, [batches[2].clone()]);
    assert_eq!(
        get(format!("externalId={}", batches[1])).await,
        [batches[1].clone()]
    );
    assert_eq!(
        get("property=version>1.0.0".into()).await,
        [batches[2].clone()]
    );
    assert_eq!(get("orderBy=desc:created&limit=1".into()).await.len(), 1);
    let reply = app
        .get(&format!("{CATALOG_BATCHES}?status=done"))
        .send()
        .await;
    assert!(
        reply
            .problem(400, "CAT-9001-400")
            .contains("status \"done\" is not one of")
    );
    let reply = app.get(&format!("{CATALOG_BATCHES}?dataSet=")).send().await;
    reply.problem(400, "CAT-9001-400");
}

/// Adobe's dataset tutorial polls `GET /batches?batch={BATCH_ID}` and expects that batch
/// back, keyed by its id (spec §2.2.3); it used to answer `{}`.
#[tokio::test]
async fn batch_filter_matches_the_batch_own_id() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "tutorial"})).await;
    let mut batches = Vec::new();
    for _ in 0..3 {
        batches.push(
            app.create_batch(json!({"datasetId": dataset})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let reply = app
        .get(&format!("{CATALOG_BATCHES}?batch={}", batches[1]))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.keys(), [batches[1].clone()]);
    assert_eq!(reply.body[&batches[1]]["status"], "loading");
    let reply = app
        .get(&format!(
            "{CATALOG_BATCHES}?batch={},{}",
            batches[2], batches[0]
        ))
        .send()
        .await;
    assert_eq!(reply.keys(), [batches[0].clone(), batches[2].clone()]);
    let reply = app
        .get(&format!("{CATALOG_BATCHES}?batch=!{}", batches[0]))
        .send()
        .await;
    assert_eq!(reply.keys(), batches[1..]);
    let reply = app.get(&format!("{CATALOG_BATCHES}?batch=")).send().await;
    assert!(reply.problem(400, "CAT-9001-400").contains("batch"));
    assert_eq!(app.get(CATALOG_BATCHES).send().await.keys().len(), 3);
}

/// aepp 0.6.0's `SchemaManager.getDatasets` lists the datasets of a schema with
/// `property=schemaRef.id==<schema $id>`; a dotted path used to be a 400 (issue 11).
#[tokio::test]
async fn property_filters_follow_dotted_paths_into_nested_fields() {
    let app = TestApp::new().await;
    let loyalty = app.create_profile_schema("Loyalty").await;
    let orders = app.create_profile_schema("Orders").await;
    let schema_ref =
        |id: &str| json!({"id": id, "contentType": "application/vnd.adobe.xed+json;version=1"});
    let first = app
        .create_dataset(
            json!({"name": "loyalty-1", "schemaRef": schema_ref(&loyalty), "stats": {"rows": 10}}),
        )
        .await;
    let second = app
        .create_dataset(
            json!({"name": "orders", "schemaRef": schema_ref(&orders), "stats": {"rows": 3}}),
        )
        .await;
    let third = app
        .create_dataset(json!({"name": "loyalty-2", "schemaRef": schema_ref(&loyalty)}))
        .await;
    let bare = app.create_dataset(json!({"name": "no schema"})).await;

    // As aepp sends it: requests percent-encodes the whole expression.
    let encoded: String = format!("schemaRef.id=={loyalty}")
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let reply = app
        .get(&format!("{CATALOG_DATASETS}?property={encoded}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.keys(), [first.clone(), third.clone()]);
    assert_eq!(reply.body[&first]["schemaRef"]["id"], loyalty.as_str());

    let get = |query: String| {
        let app = &app;
        async move {
            let reply = app.get(&format!("{CATALOG_DATASETS}?{query}")).send().await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
            reply
        }
    };
    // As typed in a tutorial, with a projection as in Adobe's filter examples.
    let reply = get(format!(
        "limit=20&properties=name,schemaRef&property=schemaRef.id=={orders}"
    ))
    .await;
    assert_eq!(
        reply.body,
        json!({&second: {"name": "orders", "schemaRef": schema_ref(&orders)}})
    );
    assert_eq!(
        get(format!("property=schemaRef.id!={loyalty}"))
            .await
            .keys(),
        [second.clone(), bare.clone()]
    );
    assert_eq!(
        get("property=schemaRef.id~/schemas/".into()).await.keys(),
        [first.clone(), second.clone(), third.clone()]
    );
    assert_eq!(
        get("property=!schemaRef.id".into()).await.keys(),
        [bare.as_str()]
    );
    assert_eq!(
        get("property=stats.rows".into()).await.keys(),
        [first.clone(), second.clone()]
    );
    assert_eq!(
        get("property=stats.rows>3".into()).await.keys(),
        [first.as_str()]
    );
    assert_eq!(
        get("property=stats.rows<=3&property=schemaRef.contentType".into())
            .await
            .keys(),
        [second.as_str()]
    );
    // Another tenant does not see these datasets.
    let reply = app
        .get(&format!("{CATALOG_DATASETS}?property={encoded}"))
        .tenant(ORG_B, "prod")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.keys().is_empty());

    let too_deep = "a.b.c.d.e.f.g.h.i";
    for (query, expected) in [
        (
            format!("property={too_deep}==1"),
            "has 9 path segments; a dotted path may have at most 8".to_owned(),
        ),
        (
            "property=schemaRef..id==x".into(),
            "has an empty path segment".into(),
        ),
        (
            "property=!schemaRef.".into(),
            "has an empty path segment".into(),
        ),
        (
            "property=schemaRef.i%27d==x".into(),
            "segment \"i'd\" of \"schemaRef.i'd\" is not a field name".into(),
        ),
        (
            format!("property=schemaRef.{}==x", "x".repeat(129)),
            "is not a field name (at most 128".into(),
        ),
        (
            format!("schemaRef.id={loyalty}"),
            "filter a nested field with property=schemaRef.id==<value>".into(),
        ),
    ] {
        let reply = app.get(&format!("{CATALOG_DATASETS}?{query}")).send().await;
        assert!(
            reply.problem(400, "CAT-9001-400").contains(&expected),
            "{query}: {}",
            reply.text
        );
    }
    // The server still answers, with all four datasets.
    assert_eq!(app.get(CATALOG_DATASETS).send().await.keys().len(), 4);
}

#[tokio::test]
async fn headers_carry_list_controls_and_legacy_object_ranges() {
    let app = TestApp::new().await;
    let ids = datasets(&app, 5).await;
    let reply = app
        .get(CATALOG_DATASETS)
        .header("limit", "2")
        .header("start", "1")
        .send()
        .await;
    assert_eq!(reply.keys(), ids[1..3]);
    let reply = app
        .get(&format!("{CATALOG_DATASETS}?limit=1"))
        .header("limit", "3")
        .send()
        .await;
    assert_eq!(reply.keys(), ids[..1], "query parameters win over headers");
    let reply = app
        .get(CATALOG_DATASETS)
        .header("range", "objects=1-3")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.keys(), ids[1..4]);
    assert_eq!(reply.header("content-range"), Some("objects 1-3/5"));
    let reply = app
        .get(CATALOG_DATASETS)
        .header("range", "objects=3-1")
        .send()
        .await;
    reply.problem(400, "CAT-9001-400");
    let reply = app
        .get(&format!(
            "{CATALOG_DATASETS}?limit=50&properties=observableSchema"
        ))
        .send()
        .await;
    assert_eq!(reply.keys().len(), 5);
}

/// Random Catalog query strings through the real router and metastore: each is a 200 map
/// or a 400 problem naming what is wrong, never a 5xx or a panic.
#[test]
fn random_query_strings_are_answered_200_or_400() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(async {
        let app = TestApp::new().await;
        datasets(&app, 3).await;
        app
    });
    const NAMES: &[&str] = &[
        "limit",
        "start",
        "orderBy",
        "sort",
        "properties",
        "property",
        "tags",
        "createdAfter",
        "startBefore",
        "aggregate",
        "dataSet",
        "batch",
        "status",
        "name",
        "version",
        "rank",
    ];
    let name = prop_oneof![
        proptest::sample::select(NAMES).prop_map(str::to_owned),
        ".{0,10}",
    ];
    let value = prop_oneof![
        "[!*,:~<>=a-z0-9.()\\[\\]\\\\+-]{0,20}",
        "-?[0-9]{1,25}",
        ".{0,30}",
    ];
    // Encoded pairs, sometimes followed by raw bytes that are not valid encoding.
    let query = (
        proptest::collection::vec((name, value), 0..5),
        prop_oneof![Just(""), Just("&%ff=1"), Just("&a=%zz"), Just("&&=")],
    )
        .prop_map(|(pairs, tail)| {
            serde_urlencoded::to_string(&pairs)
                .unwrap()
                .replace('+', "%20")
                + tail
        });
    let collections = proptest::sample::select(&["dataSets", "batches", "dataSetFiles"][..]);
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    let answered = std::cell::Cell::new((0u32, 0u32));
    runner
        .run(&(collections, query), |(collection, query)| {
            let path = format!("/data/foundation/catalog/{collection}?{query}");
            let reply = runtime.block_on(app.get(&path).send());
            match reply.status.as_u16() {
                200 => {
                    prop_assert!(reply.body.is_object(), "{path}: {}", reply.text);
                    answered.set((answered.get().0 + 1, answered.get().1));
                }
                400 => {
                    answered.set((answered.get().0, answered.get().1 + 1));
                    prop_assert_eq!(reply.header("content-type"), Some("application/json"));
                    let kind = reply.body["type"].as_str().unwrap_or_default();
                    prop_assert!(kind.contains("/CAT-"), "{path}: {}", reply.text);
                    prop_assert!(
                        reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                        "{path}: {}",
                        reply.text
                    );
                }
                status => prop_assert!(false, "{path}: {status} {}", reply.text),
            }
            Ok(())
        })
        .unwrap();
    let (ok, refused) = answered.get();
    assert!(ok > 10 && refused > 10, "{ok} answered, {refused} refused");
}

/// A `property=f~regex` pattern whose counted repetitions unroll past the bound is refused
/// before any row is scanned: `a{1000}a{1000}a{1000}a{1000}` against a 50,000-character
/// name held a request for seconds per row. A pattern at the bound still filters. Counts stay
/// at or under 255, the most PostgreSQL's regular expressions allow in one repetition.
#[tokio::test]
async fn regex_filters_that_unroll_past_the_bound_are_refused() {
    let app = TestApp::new().await;
    let long = app
        .create_dataset(json!({"name": "a".repeat(50_000)}))
        .await;
    let short = app.create_dataset(json!({"name": "b"})).await;

    let exploding = "a%7B250%7D".repeat(5);
    for path in [
        CATALOG_DATASETS.to_owned(),
        format!("{REGISTRY}/tenant/schemas"),
    ] {
        let reply = app
            .get(&format!("{path}?property=title~{exploding}"))
            .header("accept", XED_ID)
            .send()
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        assert!(
            reply.text.contains("expands to 1250 positions"),
            "{path}: {}",
            reply.text
        );
    }
    let reply = app
        .get(&format!(
            "{CATALOG_DATASETS}?property=name~{}",
            "a%7B250%7D".repeat(4)
        ))
        .send()
        .await;
    assert_eq!(reply.keys(), std::slice::from_ref(&long), "{}", reply.text);
    let reply = app
        .get(&format!(
            "{CATALOG_DATASETS}?property=name~(b%7C(aa)%7B10%7D)%24"
        ))
        .send()
        .await;
    let mut keys = reply.keys();
    keys.sort();
    let mut expected = vec![long, short];
    expected.sort();
    assert_eq!(keys, expected, "{}", reply.text);
    assert_eq!(app.get("/health").send().await.status, StatusCode::OK);
}

/// PostgreSQL text cannot hold U+0000: a NUL in a query parameter, a JSON body (value or
/// key) or a file path is a 400 naming where it is, on every backend, never a database error.
#[tokio::test]
async fn nul_characters_are_refused_wherever_they_arrive() {
    let app = TestApp::new().await;
    for query in [
        "dataSet=%00",
        "name=a%00b",
        "property=name%3D%3Da%00",
        "a%00=1",
    ] {
        let reply = app
            .get(&format!("/data/foundation/catalog/batches?{query}"))
            .send()
            .await;
        assert!(
            reply.problem(400, "CAT-9001-400").contains("NUL character"),
            "{query}: {}",
            reply.text
        );
    }
    let catalog = "/data/foundation/catalog/dataSets";
    for (body, at) in [
        (json!({"name": "a\u{0}b"}), "#/name"),
        (
            json!({"name": "ok", "tags": {"t": ["x", "y\u{0}"]}}),
            "#/tags/t/1",
        ),
        (
            json!({"name": "ok", "tags": {"t\u{0}": ["x"]}}),
            "#/tags/t\\u0000",
        ),
    ] {
        let reply = app.post(catalog).json(body).send().await;
        let detail = reply.problem(400, "CAT-9002-400");
        assert!(detail.starts_with(&format!("{at}: ")), "{detail}");
    }
    // An escaped backslash before `u0000` is text, not a NUL.
    let reply = app
        .post(catalog)
        .raw(r#"{"name":"back\\u0000slash"}"#)
        .header("content-type", "application/json")
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let reply = app
        .post("/data/foundation/import/batches")
        .json(json!({"datasetId": "x\u{0}", "inputFormat": {"format": "json"}}))
        .send()
        .await;
    assert!(
        reply
            .problem(400, "INGEST-9013-400")
            .starts_with("#/datasetId: ")
    );
    let reply = app
        .post("/data/foundation/schemaregistry/tenant/datatypes")
        .json(json!({"title": "t\u{0}", "type": "object", "properties": {}}))
        .send()
        .await;
    assert!(reply.problem(400, "XDM-9001-400").starts_with("#/title: "));
    let reply = app.get(&format!("{catalog}?name=back*")).send().await;
    assert_eq!(reply.keys().len(), 1, "{}", reply.text);
}
