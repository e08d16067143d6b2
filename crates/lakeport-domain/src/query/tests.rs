use super::*;

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[track_caller]
fn parse(kind: ObjectKind, pairs: &[(&str, &str)]) -> Result<ListQuery, String> {
    ListQuery::parse(kind, &params(pairs), PageLimits::default()).map_err(|e| e.to_string())
}

#[test]
fn defaults_to_twenty_from_zero() {
    let query = parse(ObjectKind::Dataset, &[]).unwrap();
    assert_eq!((query.limit, query.start), (20, 0));
    assert!(query.order.is_empty() && query.filters.is_empty() && query.properties.is_none());
}

#[test]
fn limit_is_checked_and_clamped() {
    assert_eq!(
        parse(ObjectKind::Batch, &[("limit", "100")]).unwrap().limit,
        100
    );
    assert_eq!(
        parse(ObjectKind::Batch, &[("limit", "500")]).unwrap().limit,
        100
    );
    assert_eq!(
        parse(ObjectKind::Batch, &[("limit", "0")]).unwrap_err(),
        "query parameter \"limit\": 0 is too small; limit must be an integer from 1 to 100"
    );
    assert_eq!(
        parse(ObjectKind::Batch, &[("limit", "ten")]).unwrap_err(),
        "query parameter \"limit\": \"ten\" is not an integer; limit must be an integer from 1 to 100"
    );
    assert!(parse(ObjectKind::Batch, &[("limit", "-5")]).is_err());
    let strict = PageLimits {
        reject_over_max: true,
        ..PageLimits::default()
    };
    assert!(ListQuery::parse(ObjectKind::Batch, &params(&[("limit", "101")]), strict).is_err());
    let observable = parse(
        ObjectKind::Dataset,
        &[("limit", "50"), ("properties", "name,observableSchema")],
    )
    .unwrap();
    assert_eq!(observable.limit, 20);
}

#[test]
fn start_and_offset_are_synonyms() {
    assert_eq!(
        parse(ObjectKind::Batch, &[("start", "40")]).unwrap().start,
        40
    );
    assert_eq!(
        parse(ObjectKind::Batch, &[("offset", "7")]).unwrap().start,
        7
    );
    assert!(parse(ObjectKind::Batch, &[("start", "-1")]).is_err());
}

#[test]
fn order_by_and_sort() {
    let query = parse(ObjectKind::Dataset, &[("orderBy", "name,desc:updated")]).unwrap();
    assert_eq!(
        query.order,
        vec![
            SortKey {
                field: "name".into(),
                descending: false
            },
            SortKey {
                field: "updated".into(),
                descending: true
            }
        ]
    );
    let query = parse(ObjectKind::Dataset, &[("sort", "asc:created")]).unwrap();
    assert_eq!(query.order[0].field, "created");
    assert!(parse(ObjectKind::Dataset, &[("orderBy", "up:name")]).is_err());
    assert!(parse(ObjectKind::Dataset, &[("orderBy", "")]).is_err());
}

#[test]
fn simple_filters_any_of_and_none_of() {
    let query = parse(ObjectKind::Dataset, &[("name", "a,b"), ("state", "!DRAFT")]).unwrap();
    match &query.filters[..] {
        [
            Filter::AnyOf {
                field,
                values,
                negated: false,
            },
            Filter::AnyOf { negated: true, .. },
        ] => {
            assert_eq!(field, &vec!["name".to_owned()]);
            assert_eq!(values.len(), 2);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn status_filters_accept_synonyms_and_reject_unknown_names() {
    let query = parse(ObjectKind::Batch, &[("status", "active,failure")]).unwrap();
    let Filter::AnyOf { values, .. } = &query.filters[0] else {
        panic!()
    };
    let texts: Vec<_> = values.iter().map(|v| v.text.as_str()).collect();
    assert_eq!(texts, ["success", "failed"]);
    assert!(
        parse(ObjectKind::Batch, &[("status", "done")])
            .unwrap_err()
            .contains("is not one of")
    );
}

#[test]
fn relationship_filters_only_on_batches() {
    let query = parse(ObjectKind::Batch, &[("dataSet", "abc,def")]).unwrap();
    assert_eq!(
        query.filters[0],
        Filter::Related {
            relation: "dataSet",
            ids: vec!["abc".into(), "def".into()],
            negated: false
        }
    );
    // On datasets `dataSet` is just an unknown field filter.
    let query = parse(ObjectKind::Dataset, &[("dataSet", "abc")]).unwrap();
    assert!(matches!(query.filters[0], Filter::AnyOf { .. }));
}

#[test]
fn property_expressions() {
    let cases = [
        ("name", "Exists present"),
        ("!name", "Exists absent"),
        ("name==x", "Compare Eq"),
        ("name!=x", "Compare Ne"),
        ("recordCount<5", "Compare Lt"),
        ("recordCount<=5", "Compare Le"),
        ("recordCount>5", "Compare Gt"),
        ("recordCount>=5", "Compare Ge"),
        ("name~^lo.*", "Matches"),
    ];
    for (expression, expected) in cases {
        let query = parse(ObjectKind::Dataset, &[("property", expression)]).unwrap();
        let actual = match &query.filters[0] {
            Filter::Exists { present: true, .. } => "Exists present".to_owned(),
            Filter::Exists { present: false, .. } => "Exists absent".to_owned(),
            Filter::Compare { op, .. } => format!("Compare {op:?}"),
            Filter::Matches { .. } => "Matches".to_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(actual, expected, "{expression}");
    }
}

#[test]
fn bad_property_expressions_say_what_is_wrong() {
    let err = parse(ObjectKind::Dataset, &[("property", "name=x")]).unwrap_err();
    assert!(err.contains("write '=='"), "{err}");
    let err = parse(ObjectKind::Dataset, &[("property", "==x")]).unwrap_err();
    assert!(err.contains("no field name"), "{err}");
    let err = parse(ObjectKind::Dataset, &[("property", "name==")]).unwrap_err();
    assert!(err.contains("no value"), "{err}");
    let err = parse(ObjectKind::Dataset, &[("property", "name~(")]).unwrap_err();
    assert!(err.contains("not a valid regular expression"), "{err}");
    let err = parse(ObjectKind::Dataset, &[("property", "na me")]).unwrap_err();
    assert!(err.contains("expected f, !f"), "{err}");
}

/// Renders the first filter of a `property=` expression, or the parse error.
#[track_caller]
fn property(expression: &str) -> String {
    match parse(ObjectKind::Dataset, &[("property", expression)]) {
        Ok(query) => match &query.filters[0] {
            Filter::Exists { field, present } => {
                format!(
                    "{} {}",
                    field.join("/"),
                    if *present { "present" } else { "absent" }
                )
            }
            Filter::Compare { field, op, value } => {
                format!("{} {op:?} {}", field.join("/"), value.text)
            }
            Filter::Matches { field, pattern } => format!("{} ~ {pattern}", field.join("/")),
            other => format!("{other:?}"),
        },
        Err(err) => format!("error: {err}"),
    }
}

#[test]
fn dotted_property_paths_name_nested_fields() {
    // aepp's SchemaManager.getDatasets (issue 11).
    let schema = "https://ns.adobe.com/acme/schemas/0a1b2c.v1";
    assert_eq!(
        property(&format!("schemaRef.id=={schema}")),
        format!("schemaRef/id Eq {schema}")
    );
    assert_eq!(property("schemaRef.id!=x.y"), "schemaRef/id Ne x.y");
    assert_eq!(property("a.b<5"), "a/b Lt 5");
    assert_eq!(property("a.b<=5"), "a/b Le 5");
    assert_eq!(property("a.b>5"), "a/b Gt 5");
    assert_eq!(property("a.b>=5"), "a/b Ge 5");
    assert_eq!(property(r"a.b~^x\.y$"), r"a/b ~ ^x\.y$");
    assert_eq!(property("schemaRef.id"), "schemaRef/id present");
    assert_eq!(property("!schemaRef.id"), "schemaRef/id absent");
    assert_eq!(
        property("extensions.adobe_lakeHouse.rowExpiration.ttlValue"),
        "extensions/adobe_lakeHouse/rowExpiration/ttlValue present"
    );
    assert_eq!(property("a.0==x"), "a/0 Eq x");
    assert_eq!(property("a.b.c.d.e.f.g.h==1"), "a/b/c/d/e/f/g/h Eq 1");
    // Only the top-level `name` takes wildcards.
    let Filter::Compare { value, .. } = &parse(ObjectKind::Dataset, &[("property", "a.name==x*")])
        .unwrap()
        .filters[0]
    else {
        panic!()
    };
    assert_eq!(value.like, None);
}

#[test]
fn bad_dotted_paths_are_refused_with_the_reason() {
    let long = "x".repeat(129);
    for (expression, reason) in [
        (
            "a.b.c.d.e.f.g.h.i==1",
            "\"a.b.c.d.e.f.g.h.i\" has 9 path segments; a dotted path may have at most 8",
        ),
        ("a..b==1", "\"a..b\" has an empty path segment"),
        (".a==1", "\".a\" has an empty path segment"),
        ("a.==1", "\"a.\" has an empty path segment"),
        ("!a.", "\"a.\" has an empty path segment"),
        (".", "\".\" has an empty path segment"),
        (
            "a.b/c==1",
            "segment \"b/c\" of \"a.b/c\" is not a field name",
        ),
        (
            "a.b\"c==1",
            "segment \"b\\\"c\" of \"a.b\\\"c\" is not a field name",
        ),
        ("a.b'c", "segment \"b'c\" of \"a.b'c\" is not a field name"),
        ("a/b", "\"a/b\" is not a field name"),
        (&format!("a.{long}==1"), "is not a field name (at most 128"),
        (
            "a.b c==1",
            "segment \"b c\" of \"a.b c\" is not a field name",
        ),
        ("a. b", "expected f, !f"),
    ] {
        let actual = property(expression);
        assert!(
            actual.starts_with("error: query parameter \"property\": ") && actual.contains(reason),
            "{expression}: {actual}"
        );
    }
    // A path of the maximum length in segments and characters is accepted.
    let segment = "y".repeat(128);
    let longest = [segment.as_str(); MAX_PATH_SEGMENTS].join(".");
    assert!(!property(&format!("{longest}==1")).starts_with("error"));
}

#[test]
fn a_dotted_simple_filter_points_to_property() {
    let err = parse(ObjectKind::Dataset, &[("schemaRef.id", "x")]).unwrap_err();
    assert!(err.contains("property=schemaRef.id==<value>"), "{err}");
}

#[test]
fn dotted_paths_evaluate_in_memory() {
    let doc: crate::Doc = serde_json::from_value(serde_json::json!({
        "schemaRef": {"id": "https://ns.adobe.com/acme/schemas/s1", "contentType": "application/vnd.adobe.xed+json;version=1"},
        "stats": {"rows": 12, "flag": true, "tags": ["a", "b"], "none": null},
        "list": ["x"]
    }))
    .unwrap();
    let check = |expression: &str| {
        parse(ObjectKind::Dataset, &[("property", expression)])
            .unwrap()
            .filters[0]
            .matches(&doc)
    };
    assert!(check("schemaRef.id==https://ns.adobe.com/acme/schemas/s1"));
    assert!(!check("schemaRef.id==https://ns.adobe.com/acme/schemas/s2"));
    assert!(check("schemaRef.id!=https://ns.adobe.com/acme/schemas/s2"));
    assert!(check("schemaRef.id~/schemas/s[0-9]$"));
    assert!(check("stats.rows>11") && check("stats.rows<=12") && !check("stats.rows<12"));
    assert!(check("stats.flag==true") && check("stats.tags==b"));
    assert!(check("schemaRef.contentType") && check("!schemaRef.missing"));
    // JSON null is present but equals nothing; a path never descends into arrays or
    // through scalars (as the SQL backends evaluate it).
    assert!(check("stats.none") && !check("stats.none==null") && check("stats.none!=x"));
    assert!(check("!list.0") && check("!schemaRef.id.more"));
    assert!(check("missing.deeper!=x") && !check("missing.deeper==x"));
}

#[test]
fn tags_filters() {
    let query = parse(
        ObjectKind::Dataset,
        &[("tags", "adobe/pqs/table:loyalty,team:*,env:pro*")],
    )
    .unwrap();
    assert_eq!(
        query.filters,
        vec![
            Filter::Tag {
                name: "adobe/pqs/table".into(),
                value: TagValue::Exact("loyalty".into())
            },
            Filter::Tag {
                name: "team".into(),
                value: TagValue::Any
            },
            Filter::Tag {
                name: "env".into(),
                value: TagValue::Prefix("pro".into())
            },
        ]
    );
    assert!(parse(ObjectKind::Dataset, &[("tags", "novalue")]).is_err());
}

#[test]
fn time_bounds() {
    let query = parse(
        ObjectKind::Batch,
        &[("createdAfter", "100"), ("endBefore", "200")],
    )
    .unwrap();
    assert!(matches!(
        &query.filters[0],
        Filter::Compare {
            op: CompareOp::Gt,
            ..
        }
    ));
    let Filter::Compare {
        field,
        op: CompareOp::Lt,
        ..
    } = &query.filters[1]
    else {
        panic!()
    };
    assert_eq!(
        field,
        &vec!["availableDates".to_owned(), "endDate".to_owned()]
    );
    assert!(parse(ObjectKind::Batch, &[("createdAfter", "yesterday")]).is_err());
    assert!(parse(ObjectKind::Dataset, &[("startAfter", "1")]).is_err());
}

#[test]
fn wildcards_and_versions() {
    assert_eq!(wildcard_to_like("Loy*"), Some("Loy%".into()));
    assert_eq!(wildcard_to_like("a**b"), None);
    assert_eq!(wildcard_to_like("50%*"), Some("50\\%%".into()));
    assert_eq!(wildcard_to_like("plain"), None);
    assert!(version_key("1.0.10").unwrap() > version_key("1.0.9").unwrap());
    assert_eq!(version_key("1.0"), None);
    assert_eq!(version_key("x.y.z"), None);
}

#[test]
fn filters_evaluate_in_memory_like_sql() {
    let doc: crate::Doc = serde_json::from_value(serde_json::json!({
        "name": "Loyalty*", "rank": 3, "flag": true, "version": "1.0.10",
        "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
        "tags": {"team": ["blue"]}, "relatedObjects": [{"type": "dataSet", "id": "D1"}]
    }))
    .unwrap();
    let check = |pairs: &[(&str, &str)]| {
        let query =
            ListQuery::parse(ObjectKind::Batch, &params(pairs), PageLimits::default()).unwrap();
        query.filters.iter().all(|f| f.matches(&doc))
    };
    assert!(check(&[("name", "Loy*")]));
    assert!(check(&[("name", "Loyalty**")]));
    assert!(!check(&[("name", "loy*")]));
    assert!(check(&[("rank", "3"), ("flag", "true")]));
    assert!(check(&[
        ("property", "rank>2"),
        ("property", "version>1.0.9")
    ]));
    assert!(!check(&[("property", "rank>=4")]));
    assert!(check(&[(
        "property",
        "meta:intendedToExtend==https://ns.adobe.com/xdm/context/profile"
    )]));
    assert!(check(&[
        ("property", "name~^Loy"),
        ("property", "!missing"),
        ("property", "missing!=x")
    ]));
    assert!(check(&[("tags", "team:bl*"), ("dataSet", "D1")]));
    assert!(!check(&[("dataSet", "!D1")]));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const NAMES: &[&str] = &[
        "limit",
        "start",
        "offset",
        "orderBy",
        "sort",
        "properties",
        "property",
        "tags",
        "createdAfter",
        "createdBefore",
        "startAfter",
        "endBefore",
        "aggregate",
        "expansion",
        "dataSet",
        "batch",
        "connection",
        "status",
        "name",
        "version",
        "id",
    ];

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(NAMES).prop_map(str::to_owned),
            ".{0,12}",
        ]
    }

    /// Values built from the query language's own punctuation, big numbers and noise.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[!*,:~<>=a-z0-9.()\\[\\]\\\\+-]{0,24}",
            "-?[0-9]{1,30}",
            ".{0,40}",
        ]
    }

    fn kind() -> impl Strategy<Value = ObjectKind> {
        prop_oneof![
            Just(ObjectKind::Dataset),
            Just(ObjectKind::Batch),
            Just(ObjectKind::DatasetFile),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        /// Random query strings never panic the parser: each is a query within the page
        /// limits or a typed error naming a parameter that was sent (rendered as a 400).
        #[test]
        fn parser_answers_every_query(
            kind in kind(),
            params in proptest::collection::vec((name(), value()), 0..6),
            reject_over_max in any::<bool>(),
        ) {
            let limits = PageLimits { default_limit: 20, max_limit: 100, reject_over_max };
            match ListQuery::parse(kind, &params, limits) {
                Ok(query) => {
                    prop_assert!((1..=100).contains(&query.limit));
                    let doc = serde_json::json!({
                        "id": "b1", "name": "a*b", "version": "1.0.3", "created": 5,
                        "status": "success", "tags": {"team": ["x"]},
                        "relatedObjects": [{"type": "dataSet", "id": "d1"}],
                        "availableDates": {"startDate": 1}
                    });
                    let doc = doc.as_object().unwrap();
                    for filter in &query.filters {
                        // Evaluating a filter in memory never panics either.
                        let _ = filter.matches(doc);
                        let _ = filter.matches(&serde_json::Map::new());
                    }
                }
                Err(err) => {
                    prop_assert!(params.iter().any(|(name, _)| *name == err.parameter)
                        || err.parameter == "limit", "{err}");
                    prop_assert!(!err.reason.is_empty());
                }
            }
        }
    }
}
