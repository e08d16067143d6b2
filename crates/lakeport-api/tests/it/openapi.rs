//! The served OpenAPI document: it lists exactly the routes the router serves, with exactly
//! the methods they answer, and its problem schema matches real error bodies.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;
use serde_json::Value;

use crate::support::TestApp;

const METHODS: [&str; 7] = ["get", "head", "post", "put", "patch", "delete", "options"];

/// Replaces each `{param}` (and axum's `{*rest}`) with `{}`, so that the router's and the
/// document's names of path parameters need not agree.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The route paths of the router, read from its `Debug` rendering (`paths: {RouteId(n):
/// "/…", …}`), without axum's private fallback routes.
fn served_paths(debug: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for (start, _) in debug.match_indices("paths: {") {
        let rest = &debug[start + "paths: {".len()..];
        let end = rest.find('}').map_or(rest.len(), |end| {
            // Path templates contain braces: the map ends at the first `}` not inside quotes.
            let mut quoted = false;
            rest.char_indices()
                .find(|(_, c)| {
                    if *c == '"' {
                        quoted = !quoted;
                    }
                    *c == '}' && !quoted
                })
                .map_or(end, |(index, _)| index)
        });
        for (index, quoted) in rest[..end].split('"').enumerate() {
            if index % 2 == 1 && !quoted.contains("__private__axum") {
                paths.insert(quoted.to_owned());
            }
        }
    }
    paths
}

fn document() -> Value {
    serde_json::from_str(lakeport_api::openapi::DOCUMENT).expect("openapi.json is valid JSON")
}

/// A value for a path parameter: the first of its enum, else a well-formed id.
fn sample(parameters: &[Value], name: &str) -> String {
    parameters
        .iter()
        .find(|p| p["in"] == "path" && p["name"] == name)
        .and_then(|p| p["schema"]["enum"][0].as_str())
        .unwrap_or("probe-1")
        .to_owned()
}

fn resolve<'a>(document: &'a Value, parameter: &'a Value) -> &'a Value {
    match parameter["$ref"].as_str() {
        Some(reference) => document
            .pointer(reference.trim_start_matches('#'))
            .expect("parameter references resolve"),
        None => parameter,
    }
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_and_methods_the_router_serves() {
    let app = TestApp::new().await;
    let document = document();
    let documented = document["paths"].as_object().unwrap();

    let served: BTreeSet<String> = served_paths(&app.router_debug())
        .iter()
        .map(|path| shape(path.trim_end_matches('/')))
        .filter(|path| !path.is_empty())
        .collect();
    assert!(
        served.len() > 20,
        "too few routes read from the router: {served:?}"
    );
    let in_document: BTreeSet<String> = documented.keys().map(|path| shape(path)).collect();
    assert_eq!(
        served.difference(&in_document).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes served but not documented"
    );
    assert_eq!(
        in_document.difference(&served).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "paths documented but not served"
    );

    let mut mismatches = BTreeMap::new();
    for (path, item) in documented {
        let mut parameters = Vec::new();
        for operation in item.as_object().unwrap().values() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                parameters.push(resolve(&document, parameter).clone());
            }
        }
        let mut concrete = String::new();
        let mut name = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => in_param = true,
                '}' => {
                    in_param = false;
                    concrete.push_str(&sample(&parameters, &name));
                    name.clear();
                }
                _ if in_param => name.push(c),
                _ => concrete.push(c),
            }
        }
        let mut expected: BTreeSet<&str> = METHODS
            .into_iter()
            .filter(|method| item.get(*method).is_some())
            .collect();
        if expected.contains("get") {
            // axum answers HEAD on every GET route.
            expected.insert("head");
        }
        let mut answered = BTreeSet::new();
        for method in METHODS {
            let reply = app
                .call(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &concrete,
                )
                .send()
                .await;
            let unknown = reply.status == 405
                || reply.body["type"] == "http://ns.adobe.com/aep/errors/LAKEPORT-9404-404";
            if !unknown {
                answered.insert(method);
            }
        }
        if answered != expected {
            mismatches.insert(path.clone(), (expected, answered));
        }
    }
    assert!(
        mismatches.is_empty(),
        "documented methods (left) differ from served ones (right): {mismatches:#?}"
    );
}

#[tokio::test]
async fn the_documents_are_served_without_credentials() {
    let app = TestApp::new().await;
    let full = app
        .get("/openapi.json")
        .without("authorization")
        .send()
        .await;
    assert_eq!(full.status, 200, "{}", full.text);
    assert_eq!(full.header("content-type"), Some("application/json"));
    assert_eq!(full.body, document());

    let import = app
        .get("/data/foundation/import/openapi.json")
        .without("authorization")
        .without("x-api-key")
        .send()
        .await;
    assert_eq!(import.status, 200, "{}", import.text);
    assert_eq!(import.body["servers"][0]["url"], "/data/foundation/import");
    let paths: BTreeSet<&str> = import.body["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(paths.contains("/batches"), "{paths:?}");
    assert!(paths.contains("/batches/{batchId}/datasets/{datasetId}/files/{filePath}"));
    assert!(
        !paths.iter().any(|path| path.contains("dataSets")),
        "{paths:?}"
    );

    let catalog = app
        .get("/data/foundation/catalog/openapi.json")
        .send()
        .await;
    assert!(
        catalog.body["paths"]["/"]["get"].is_object(),
        "{}",
        catalog.text
    );
    for root in ["export", "schemaregistry"] {
        let reply = app
            .get(&format!("/data/foundation/{root}/openapi.json"))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{root}: {}", reply.text);
    }
}

#[tokio::test]
async fn real_error_bodies_have_every_member_the_problem_schema_requires() {
    let app = TestApp::new().await;
    let problem = &document()["components"]["schemas"]["Problem"];
    for reply in [
        app.get("/data/foundation/catalog/dataSets/nope")
            .send()
            .await,
        app.get("/data/foundation/schemaregistry/tenant/schemas/nope")
            .header("accept", "application/vnd.adobe.xed+json; version=1")
            .send()
            .await,
        app.post("/data/foundation/import/batches/nope")
            .send()
            .await,
    ] {
        assert!(reply.status.is_client_error(), "{}", reply.text);
        for member in problem["required"].as_array().unwrap() {
            let member = member.as_str().unwrap();
            assert!(
                !reply.body[member].is_null(),
                "{member} missing in {}",
                reply.text
            );
        }
        let pattern = problem["properties"]["type"]["pattern"].as_str().unwrap();
        assert_eq!(
            pattern,
            "^http://ns\\.adobe\\.com/aep/errors/[A-Z]+-[0-9]{4}-[0-9]{3}$"
        );
        let code = reply.body["type"]
            .as_str()
            .unwrap()
            .strip_prefix("http://ns.adobe.com/aep/errors/")
            .unwrap();
        let parts: Vec<&str> = code.split('-').collect();
        assert_eq!(parts.len(), 3, "{code}");
        assert!(parts[0].chars().all(|c| c.is_ascii_uppercase()), "{code}");
        assert!(parts[1].len() == 4 && parts[2].len() == 3, "{code}");
    }
}
